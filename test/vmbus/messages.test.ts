/**
 * Tests for core/vmbus/messages.ts: golden bytes against the offsets of spec
 * §7.3, round trips, the §7.4 receive checks and a decoder fuzz.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError, VmbusSimError } from "../../core/errors.js";
import { Guid } from "../../core/vmbus/guid.js";
import * as m from "../../core/vmbus/messages.js";
import type { ChannelMessage, ChannelMessageDirection } from "../../core/vmbus/messages.js";
import { usesNewContactMethod, VMBUS_VERSIONS } from "../../core/vmbus/versions.js";

/** A zeroed buffer of `size` bytes with hand-written hex bytes placed at offsets. */
function bytesAt(size: number, fields: Record<number, string>): Uint8Array {
  const out = new Uint8Array(size);
  for (const [off, hex] of Object.entries(fields)) {
    const parts = hex.split(" ").filter((p) => p !== "");
    parts.forEach((p, i) => {
      out[Number(off) + i] = Number.parseInt(p, 16);
    });
  }
  return out;
}

function directionOf(msgtype: number): ChannelMessageDirection {
  const d = m.CHANNEL_MESSAGE_TABLE[msgtype]?.direction;
  if (d === null || d === undefined) throw new Error(`no direction for ${msgtype}`);
  return d;
}

/** Encodes, checks the golden bytes, and decodes back in the message's direction. */
function checkGolden(msg: ChannelMessage, expected: Uint8Array): void {
  const bytes = m.encodeChannelMessage(msg);
  expect(bytes.length).toBe(expected.length);
  expect([...bytes]).toEqual([...expected]);
  // As the receiver sees it: a 240-byte slot, zero-padded, plus payload_size.
  const slot = new Uint8Array(240);
  slot.set(bytes);
  expect(m.decodeChannelMessage(slot, bytes.length, directionOf(msg.msgtype))).toEqual(msg);
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

/** Asserts a ProtocolError whose field and message name the field and value. */
function expectProtocolError(fn: () => unknown, field: string, value: number | string): void {
  const e = catchError(fn);
  expect(e).toBeInstanceOf(ProtocolError);
  const pe = e as ProtocolError;
  expect(pe.field).toBe(field);
  expect(pe.message).toContain(`${field}=${value}`);
}

const SCSI = Guid.parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
const INSTANCE = Guid.parse("12345678-9abc-def0-1122-334455667788");

describe("message numbers and constants (§7.2)", () => {
  it("has the enum values", () => {
    expect(m.CHANNELMSG_OFFERCHANNEL).toBe(1);
    expect(m.CHANNELMSG_OPENCHANNEL).toBe(5);
    expect(m.CHANNELMSG_GPADL_HEADER).toBe(8);
    expect(m.CHANNELMSG_INITIATE_CONTACT).toBe(14);
    expect(m.CHANNELMSG_UNLOAD_RESPONSE).toBe(17);
    expect(m.CHANNELMSG_TL_CONNECT_REQUEST).toBe(21);
    expect(m.CHANNELMSG_MODIFYCHANNEL).toBe(22);
    expect(m.CHANNELMSG_TL_CONNECT_RESULT).toBe(23);
    expect(m.CHANNELMSG_MODIFYCHANNEL_RESPONSE).toBe(24);
    expect(m.CHANNELMSG_COUNT).toBe(25);
    expect(m.CHANNEL_MESSAGE_TABLE.length).toBe(25);
    m.CHANNEL_MESSAGE_TABLE.forEach((e, i) => expect(e.msgtype).toBe(i));
    expect(m.channelMessageName(5)).toBe("CHANNELMSG_OPENCHANNEL");
    expect(m.channelMessageName(99)).toBe("CHANNELMSG_UNKNOWN(99)");
  });

  it("has the sizes and flags of §7.1, §7.3, §7.7", () => {
    expect(m.MAX_SIZE_CHANNEL_MESSAGE).toBe(240);
    expect(m.VMBUS_MESSAGE_TYPE_CHANNEL).toBe(1);
    expect(m.INVALID_RELID).toBe(0xffffffff);
    expect(m.GPADL_HEADER_MAX_PFNS).toBe(Math.floor((240 - 20 - 8) / 8));
    expect(m.GPADL_BODY_MAX_PFNS).toBe((240 - 16) / 8);
    expect(m.VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER).toBe(0x2000);
    expect(m.VMBUS_CHANNEL_REQUEST_MONITORED_NOTIFICATION).toBe(0x400);
    expect(m.VMBUS_PIPE_TYPE_MESSAGE).toBe(4);
  });
});

describe("golden bytes (§7.3 offsets)", () => {
  it("OFFERCHANNEL: 196 bytes", () => {
    const userDef = new Uint8Array(120);
    userDef[0] = 0x04; // pipe_mode = MESSAGE in the pipe view
    userDef[4] = 0x01; // pipe user_def[0]: hv_sock "host initiated"
    userDef[119] = 0xbb;
    const offer: m.OfferChannelMessage = {
      msgtype: 1,
      ifType: SCSI,
      ifInstance: INSTANCE,
      chnFlags: 0x0414,
      mmioMegabytes: 0x0102,
      userDef,
      subChannelIndex: 0x0203,
      childRelid: 0x0123,
      monitorId: 0x45,
      monitorAllocated: true,
      isDedicatedInterrupt: true,
      connectionId: 0x00012345,
    };
    checkGolden(
      offer,
      bytesAt(196, {
        0: "01 00 00 00",
        8: "d9 63 61 ba a1 04 29 4d b6 05 72 e2 ff b1 dc 7f",
        24: "78 56 34 12 bc 9a f0 de 11 22 33 44 55 66 77 88",
        56: "14 04",
        58: "02 01",
        60: "04 00 00 00 01",
        179: "bb",
        180: "03 02",
        184: "23 01 00 00",
        188: "45",
        189: "01",
        190: "01 00",
        192: "45 23 01 00",
      }),
    );
    expect(m.offerPipeMode(offer)).toBe(m.VMBUS_PIPE_TYPE_MESSAGE);
    expect(m.offerPipeUserDef(offer).length).toBe(116);
    expect(m.offerPipeUserDef(offer)[0]).toBe(1);
    expect(m.isHvSockOffer(offer)).toBe(false);
    expect(m.describeChannelMessage(offer)).toBe(
      "OFFERCHANNEL relid=291 class=ba6163d9-04a1-4d29-b605-72e2ffb1dc7f instance=12345678-9abc-def0-1122-334455667788" +
        " sub=515 flags=0x414 conn=0x12345 monitor=69 dedicated",
    );
  });

  it("OFFERCHANNEL: reserved bits beside monitor_allocated / is_dedicated_interrupt are ignored", () => {
    const bytes = bytesAt(196, { 0: "01", 184: "01", 188: "ff", 189: "fe", 190: "fe ff" });
    const offer = m.decodeChannelMessage(bytes, 196) as m.OfferChannelMessage;
    expect(offer.monitorAllocated).toBe(false);
    expect(offer.isDedicatedInterrupt).toBe(false);
    expect(offer.monitorId).toBe(0xff);
  });

  it("RESCIND_CHANNELOFFER, CLOSECHANNEL, RELID_RELEASED: 12 bytes, child_relid @8", () => {
    checkGolden({ msgtype: 2, childRelid: 0x0a0b0c0d }, bytesAt(12, { 0: "02", 8: "0d 0c 0b 0a" }));
    checkGolden({ msgtype: 7, childRelid: 3 }, bytesAt(12, { 0: "07", 8: "03" }));
    checkGolden({ msgtype: 13, childRelid: 0xffffffff }, bytesAt(12, { 0: "0d", 8: "ff ff ff ff" }));
  });

  it("header-only messages: 8 bytes", () => {
    checkGolden({ msgtype: 3 }, bytesAt(8, { 0: "03" }));
    checkGolden({ msgtype: 4 }, bytesAt(8, { 0: "04" }));
    checkGolden({ msgtype: 16 }, bytesAt(8, { 0: "10" }));
    checkGolden({ msgtype: 17 }, bytesAt(8, { 0: "11" }));
  });

  it("OPENCHANNEL: 148 bytes", () => {
    const userData = new Uint8Array(120);
    userData[0] = 0x11;
    userData[119] = 0x22;
    const open: m.OpenChannelMessage = {
      msgtype: 5,
      childRelid: 3,
      openId: 3,
      ringBufferGpadlHandle: 0xe1e10,
      targetVp: 1,
      downstreamRingBufferPageOffset: 32,
      userData,
    };
    checkGolden(
      open,
      bytesAt(148, { 0: "05", 8: "03", 12: "03", 16: "10 1e 0e 00", 20: "01", 24: "20", 28: "11", 147: "22" }),
    );
    expect(m.describeChannelMessage(open)).toBe("OPENCHANNEL relid=3 openid=3 gpadl=0xe1e10 target_vp=1 downstream=32");
  });

  it("OPENCHANNEL: shorter userdata is zero-filled to 120 bytes", () => {
    const bytes = m.encodeChannelMessage({
      msgtype: 5,
      childRelid: 1,
      openId: 1,
      ringBufferGpadlHandle: 1,
      targetVp: 0,
      downstreamRingBufferPageOffset: 1,
      userData: Uint8Array.of(9, 8, 7),
    });
    expect(bytes.length).toBe(148);
    expect([...bytes.subarray(28, 32)]).toEqual([9, 8, 7, 0]);
  });

  it("OPENCHANNEL_RESULT and GPADL_CREATED: 20 bytes", () => {
    checkGolden(
      { msgtype: 6, childRelid: 3, openId: 4, status: 0xc0000001 },
      bytesAt(20, { 0: "06", 8: "03", 12: "04", 16: "01 00 00 c0" }),
    );
    checkGolden(
      { msgtype: 10, childRelid: 3, gpadl: 0xe1e10, creationStatus: 0 },
      bytesAt(20, { 0: "0a", 8: "03", 12: "10 1e 0e 00" }),
    );
  });

  it("GPADL_HEADER: 28 + 8 x PFNs, range_buflen = 8 + 8 x total PFNs", () => {
    const header: m.GpadlHeaderMessage = {
      msgtype: 8,
      childRelid: 5,
      gpadl: 0xe1e10,
      rangeBufLen: 32,
      rangeCount: 1,
      byteCount: 0x3000,
      byteOffset: 0,
      pfns: [0x100, 0x101, 0x1_0000_0002],
    };
    checkGolden(
      header,
      bytesAt(52, {
        0: "08",
        8: "05",
        12: "10 1e 0e 00",
        16: "20 00",
        18: "01 00",
        20: "00 30 00 00",
        24: "00 00 00 00",
        28: "00 01 00 00 00 00 00 00",
        36: "01 01 00 00 00 00 00 00",
        44: "02 00 00 00 01 00 00 00",
      }),
    );
  });

  it("GPADL_BODY: 16 + 8 x PFNs", () => {
    checkGolden(
      { msgtype: 9, msgNumber: 0, gpadl: 0xe1e10, pfns: [0x200, 0xabcdef] },
      bytesAt(32, { 0: "09", 12: "10 1e 0e 00", 16: "00 02", 24: "ef cd ab" }),
    );
  });

  it("GPADL_TEARDOWN 16, GPADL_TORNDOWN 12", () => {
    checkGolden({ msgtype: 11, childRelid: 3, gpadl: 0xe1e10 }, bytesAt(16, { 0: "0b", 8: "03", 12: "10 1e 0e 00" }));
    checkGolden({ msgtype: 12, gpadl: 0xe1e10 }, bytesAt(12, { 0: "0c", 8: "10 1e 0e 00" }));
  });

  it("INITIATE_CONTACT below 5.0: interrupt_page u64 @16", () => {
    checkGolden(
      {
        msgtype: 14,
        versionRequested: 0x00040001,
        targetVcpu: 0,
        contact: { kind: "interruptPage", interruptPage: 0x12345000 },
        monitorPage1: 0x1_0000_2000,
        monitorPage2: 0x3000,
      },
      bytesAt(40, {
        0: "0e",
        8: "01 00 04 00",
        16: "00 50 34 12 00 00 00 00",
        24: "00 20 00 00 01 00 00 00",
        32: "00 30 00 00 00 00 00 00",
      }),
    );
  });

  it("INITIATE_CONTACT from 5.0: msg_sint @16, msg_vtl @17, reserved[6]", () => {
    const msg: m.InitiateContactMessage = {
      msgtype: 14,
      versionRequested: 0x00050003,
      targetVcpu: 7,
      contact: { kind: "sint", msgSint: 2, msgVtl: 1 },
      monitorPage1: 0x5000,
      monitorPage2: 0x6000,
    };
    checkGolden(msg, bytesAt(40, { 0: "0e", 8: "03 00 05 00", 12: "07", 16: "02 01", 24: "00 50", 32: "00 60" }));
    expect(m.describeChannelMessage(msg)).toBe(
      "INITIATE_CONTACT version=5.3 target_vcpu=7 msg_sint=2 msg_vtl=1 monitor_page1=0x5000 monitor_page2=0x6000",
    );
  });

  it("VERSION_RESPONSE: 16 bytes", () => {
    checkGolden(
      { msgtype: 15, versionSupported: true, connectionState: 2, msgConnId: 4 },
      bytesAt(16, { 0: "0f", 8: "01", 9: "02", 12: "04" }),
    );
    // Any non-zero version_supported means accepted.
    const b = bytesAt(16, { 0: "0f", 8: "7f" });
    expect((m.decodeChannelMessage(b, 16) as m.VersionResponseMessage).versionSupported).toBe(true);
  });

  it("TL_CONNECT_REQUEST: 40 bytes, two GUIDs", () => {
    checkGolden(
      { msgtype: 21, guestEndpointId: INSTANCE, hostServiceId: SCSI },
      bytesAt(40, {
        0: "15",
        8: "78 56 34 12 bc 9a f0 de 11 22 33 44 55 66 77 88",
        24: "d9 63 61 ba a1 04 29 4d b6 05 72 e2 ff b1 dc 7f",
      }),
    );
  });

  it("MODIFYCHANNEL and MODIFYCHANNEL_RESPONSE: 16 bytes", () => {
    checkGolden({ msgtype: 22, childRelid: 3, targetVp: 2 }, bytesAt(16, { 0: "16", 8: "03", 12: "02" }));
    checkGolden({ msgtype: 24, childRelid: 3, status: 1 }, bytesAt(16, { 0: "18", 8: "03", 12: "01" }));
  });
});

// --- round trip ------------------------------------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.maxSafeNat();
const guid = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Guid.fromBytes(b));
const bytes120 = fc.uint8Array({ minLength: 120, maxLength: 120 });
const pfnList = (max: number): fc.Arbitrary<number[]> => fc.array(u64, { maxLength: max });

const offerArb: fc.Arbitrary<m.OfferChannelMessage> = fc
  .record({
    ifType: guid,
    ifInstance: guid,
    chnFlags: u16,
    mmioMegabytes: u16,
    userDef: bytes120,
    subChannelIndex: u16,
    childRelid: fc.integer({ min: 1, max: 2047 }),
    monitorAllocated: fc.boolean(),
    monitorIdRaw: u8,
    isDedicatedInterrupt: fc.boolean(),
    connectionId: u32,
  })
  .map(({ monitorIdRaw, ...r }) => ({
    msgtype: 1 as const,
    ...r,
    monitorId: r.monitorAllocated ? monitorIdRaw % 128 : monitorIdRaw,
  }));

const gpadlHeaderArb: fc.Arbitrary<m.GpadlHeaderMessage> = fc
  .record({
    childRelid: u32,
    gpadl: u32,
    byteOffset: fc.integer({ min: 0, max: 4095 }),
    pages: fc.integer({ min: 1, max: 8190 }),
    countFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    pfnSeed: pfnList(26),
  })
  .map(({ childRelid, gpadl, byteOffset, pages, countFrac, pfnSeed }) => {
    // byte_count such that byte_offset + byte_count spans exactly `pages` pages.
    const lo = Math.max(1, (pages - 1) * 4096 - byteOffset + 1);
    const hi = pages * 4096 - byteOffset;
    const byteCount = lo + Math.floor(countFrac * (hi - lo));
    return {
      msgtype: 8 as const,
      childRelid,
      gpadl,
      rangeBufLen: 8 + 8 * pages,
      rangeCount: 1,
      byteCount,
      byteOffset,
      pfns: pfnSeed.slice(0, Math.min(pages, 26)),
    };
  });

const initiateContactArb: fc.Arbitrary<m.InitiateContactMessage> = fc
  .record({
    versionRequested: fc.oneof(fc.constantFrom(...VMBUS_VERSIONS), u32),
    targetVcpu: u32,
    interruptPage: u64,
    msgSint: u8,
    msgVtl: u8,
    monitorPage1: u64,
    monitorPage2: u64,
  })
  .map(({ interruptPage, msgSint, msgVtl, ...r }) => ({
    msgtype: 14 as const,
    ...r,
    contact: usesNewContactMethod(r.versionRequested)
      ? { kind: "sint" as const, msgSint, msgVtl }
      : { kind: "interruptPage" as const, interruptPage },
  }));

const messageArb: fc.Arbitrary<ChannelMessage> = fc.oneof(
  offerArb,
  u32.map((childRelid) => ({ msgtype: 2 as const, childRelid })),
  fc.constant({ msgtype: 3 as const }),
  fc.constant({ msgtype: 4 as const }),
  fc
    .record({ childRelid: u32, openId: u32, ringBufferGpadlHandle: u32, targetVp: u32, downstreamRingBufferPageOffset: u32, userData: bytes120 })
    .map((r) => ({ msgtype: 5 as const, ...r })),
  fc.record({ childRelid: u32, openId: u32, status: u32 }).map((r) => ({ msgtype: 6 as const, ...r })),
  u32.map((childRelid) => ({ msgtype: 7 as const, childRelid })),
  gpadlHeaderArb,
  fc
    .record({ msgNumber: u32, gpadl: u32, pfns: fc.array(u64, { minLength: 1, maxLength: 28 }) })
    .map((r) => ({ msgtype: 9 as const, ...r })),
  fc.record({ childRelid: u32, gpadl: u32, creationStatus: u32 }).map((r) => ({ msgtype: 10 as const, ...r })),
  fc.record({ childRelid: u32, gpadl: u32 }).map((r) => ({ msgtype: 11 as const, ...r })),
  u32.map((gpadl) => ({ msgtype: 12 as const, gpadl })),
  u32.map((childRelid) => ({ msgtype: 13 as const, childRelid })),
  initiateContactArb,
  fc
    .record({ versionSupported: fc.boolean(), connectionState: u8, msgConnId: u32 })
    .map((r) => ({ msgtype: 15 as const, ...r })),
  fc.constant({ msgtype: 16 as const }),
  fc.constant({ msgtype: 17 as const }),
  fc.record({ guestEndpointId: guid, hostServiceId: guid }).map((r) => ({ msgtype: 21 as const, ...r })),
  fc.record({ childRelid: u32, targetVp: u32 }).map((r) => ({ msgtype: 22 as const, ...r })),
  fc.record({ childRelid: u32, status: u32 }).map((r) => ({ msgtype: 24 as const, ...r })),
);

describe("decode(encode(x)) = x", () => {
  it("holds for every message type, as exact bytes and inside a 240-byte slot", () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const bytes = m.encodeChannelMessage(msg);
        expect(bytes.length).toBe(m.channelMessageSize(msg));
        expect(bytes.length).toBeLessThanOrEqual(240);
        const dir = directionOf(msg.msgtype);
        expect(m.decodeChannelMessage(bytes, bytes.length, dir)).toEqual(msg);
        const slot = new Uint8Array(240).fill(0xa5);
        slot.set(bytes);
        expect(m.decodeChannelMessage(slot, bytes.length, dir)).toEqual(msg);
        expect(m.describeChannelMessage(msg)).toMatch(/^[A-Z_]+( |$)/);
      }),
      { numRuns: 2000 },
    );
  });

  it("covers every handled message type", () => {
    const seen = new Set<number>();
    fc.assert(
      fc.property(messageArb, (msg) => {
        seen.add(msg.msgtype);
      }),
      { numRuns: 2000 },
    );
    const handled = m.CHANNEL_MESSAGE_TABLE.filter((e) => e.handled).map((e) => e.msgtype);
    expect([...seen].sort((a, b) => a - b)).toEqual(handled);
  });

  it("returns a message that shares no memory with the input", () => {
    const userDef = new Uint8Array(120).fill(7);
    const bytes = m.encodeChannelMessage({
      msgtype: 1,
      ifType: SCSI,
      ifInstance: INSTANCE,
      chnFlags: 0,
      mmioMegabytes: 0,
      userDef,
      subChannelIndex: 0,
      childRelid: 1,
      monitorId: 0,
      monitorAllocated: false,
      isDedicatedInterrupt: false,
      connectionId: 1,
    });
    const offer = m.decodeChannelMessage(bytes, 196) as m.OfferChannelMessage;
    bytes.fill(0xee);
    expect(offer.userDef.every((b) => b === 7)).toBe(true);
    expect(offer.ifType.equals(SCSI)).toBe(true);
    expect(offer.childRelid).toBe(1);
  });
});

// --- validation ----------------------------------------------------------------

function slotWith(msg: ChannelMessage): Uint8Array {
  const slot = new Uint8Array(240);
  slot.set(m.encodeChannelMessage(msg));
  return slot;
}

function header(over: Partial<m.GpadlHeaderMessage> = {}): m.GpadlHeaderMessage {
  return {
    msgtype: 8,
    childRelid: 3,
    gpadl: 0xe1e10,
    rangeBufLen: 8 + 8 * 3,
    rangeCount: 1,
    byteCount: 3 * 4096,
    byteOffset: 0,
    pfns: [10, 11, 12],
    ...over,
  };
}

describe("receive checks (vmbus_on_msg_dpc, §7.4)", () => {
  it("msgtype >= CHANNELMSG_COUNT", () => {
    for (const t of [25, 26, 0x7fffffff, 0xffffffff]) {
      const slot = new Uint8Array(240);
      new DataView(slot.buffer).setUint32(0, t, true);
      expectProtocolError(() => m.decodeChannelMessage(slot, 8), "msgtype", t >= 16 ? `${t} (0x${t.toString(16)})` : t);
      expectProtocolError(() => m.decodeChannelMessage(slot, 8, "toHost"), "msgtype", `${t} (0x${t.toString(16)})`);
    }
  });

  it("payload_size > 240", () => {
    const slot = slotWith({ msgtype: 4 });
    expectProtocolError(() => m.decodeChannelMessage(slot, 241), "payload_size", "241 (0xf1)");
    expectProtocolError(() => m.decodeChannelMessage(slot, 255), "payload_size", "255 (0xff)");
  });

  it("no handler: INVALID, 18-20, TL_CONNECT_RESULT, and messages of the other direction", () => {
    for (const t of [0, 18, 19, 20, 23]) {
      const slot = new Uint8Array(240);
      slot[0] = t;
      for (const dir of ["toGuest", "toHost"] as const) {
        const e = catchError(() => m.decodeChannelMessage(slot, 240, dir));
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as Error).message).toMatch(new RegExp(`msgtype=${t}( \\(0x[0-9a-f]+\\))? has no handler for messages sent ${dir}`));
      }
    }
    for (const e of m.CHANNEL_MESSAGE_TABLE) {
      if (e.direction === null) continue;
      const other = e.direction === "toGuest" ? "toHost" : "toGuest";
      const slot = new Uint8Array(240);
      slot[0] = e.msgtype;
      const err = catchError(() => m.decodeChannelMessage(slot, 240, other));
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toContain(`has no handler for messages sent ${other}`);
      expect((err as Error).message).toContain(e.name);
    }
  });

  it("payload_size below the minimum of each type", () => {
    const expectedMin: Record<string, number> = {
      OFFERCHANNEL: 196,
      RESCIND_CHANNELOFFER: 12,
      ALLOFFERS_DELIVERED: 0,
      OPENCHANNEL_RESULT: 20,
      GPADL_CREATED: 20,
      GPADL_TORNDOWN: 12,
      VERSION_RESPONSE: 16,
      UNLOAD_RESPONSE: 0,
      MODIFYCHANNEL_RESPONSE: 16,
      REQUESTOFFERS: 8,
      OPENCHANNEL: 148,
      CLOSECHANNEL: 12,
      GPADL_HEADER: 28,
      GPADL_BODY: 24,
      GPADL_TEARDOWN: 16,
      RELID_RELEASED: 12,
      INITIATE_CONTACT: 40,
      UNLOAD: 8,
      TL_CONNECT_REQUEST: 40,
      MODIFYCHANNEL: 16,
    };
    for (const e of m.CHANNEL_MESSAGE_TABLE.filter((x) => x.handled)) {
      expect(e.minPayloadLen).toBe(expectedMin[e.name]);
      if (e.minPayloadLen === 0) continue;
      const slot = new Uint8Array(240);
      slot[0] = e.msgtype;
      const dir = directionOf(e.msgtype);
      const below = e.minPayloadLen - 1;
      const err = catchError(() => m.decodeChannelMessage(slot, below, dir));
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as ProtocolError).field).toBe("payload_size");
      expect((err as Error).message).toContain(`payload_size=${below}`);
      expect((err as Error).message).toContain(`minimum ${e.minPayloadLen}`);
    }
  });

  it("accepts header-only host messages with payload_size 0, as Linux does", () => {
    const slot = slotWith({ msgtype: 4 });
    expect(m.decodeChannelMessage(slot, 0)).toEqual({ msgtype: 4 });
    expect(m.decodeChannelMessage(slotWith({ msgtype: 17 }), 0)).toEqual({ msgtype: 17 });
  });

  it("offer: child_relid outside 1..2047, monitorid >= 128 with a monitor", () => {
    const base: m.OfferChannelMessage = {
      msgtype: 1,
      ifType: SCSI,
      ifInstance: INSTANCE,
      chnFlags: 0,
      mmioMegabytes: 0,
      userDef: new Uint8Array(120),
      subChannelIndex: 0,
      childRelid: 1,
      monitorId: 0,
      monitorAllocated: true,
      isDedicatedInterrupt: false,
      connectionId: 0,
    };
    expectProtocolError(() => m.decodeChannelMessage(slotWith({ ...base, childRelid: 0 }), 196), "child_relid", 0);
    expectProtocolError(() => m.decodeChannelMessage(slotWith({ ...base, childRelid: 2048 }), 196), "child_relid", "2048 (0x800)");
    expectProtocolError(() => m.decodeChannelMessage(slotWith({ ...base, monitorId: 128 }), 196), "monitorid", "128 (0x80)");
    const unmonitored = { ...base, monitorId: 200, monitorAllocated: false };
    expect(m.decodeChannelMessage(slotWith(unmonitored), 196)).toEqual(unmonitored);
  });

  it("u64 values above 2^53 - 1 are refused, naming the field", () => {
    const slot = slotWith(header());
    new DataView(slot.buffer).setUint32(28 + 8 + 4, 0xffffffff, true);
    const e = catchError(() => m.decodeChannelMessage(slot, 52, "toHost"));
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).field).toBe("pfn_array[1]");
    const contact = slotWith({
      msgtype: 14,
      versionRequested: 0x40001,
      targetVcpu: 0,
      contact: { kind: "interruptPage", interruptPage: 0 },
      monitorPage1: 0,
      monitorPage2: 0,
    });
    new DataView(contact.buffer).setUint32(36, 0x00200000, true);
    expectProtocolError(() => m.decodeChannelMessage(contact, 40, "toHost"), "monitor_page2", "9007199254740992 (0x20000000000000)");
  });

  it("caller mistakes are InvalidArgumentErrors", () => {
    expect(() => m.decodeChannelMessage(new Uint8Array(7), 0)).toThrow(InvalidArgumentError);
    expect(() => m.decodeChannelMessage(m.encodeChannelMessage({ msgtype: 2, childRelid: 1 }), 20)).toThrow(InvalidArgumentError);
    expect(() => m.decodeChannelMessage(new Uint8Array(240), -1)).toThrow(InvalidArgumentError);
    expect(() => m.decodeChannelMessage(new Uint8Array(240), 1.5)).toThrow(InvalidArgumentError);
  });
});

describe("GPADL_HEADER / GPADL_BODY consistency (hostile guest)", () => {
  const dec = (msg: ChannelMessage, size = m.channelMessageSize(msg)): ChannelMessage =>
    m.decodeChannelMessage(slotWith(msg), size, "toHost");

  it("accepts a consistent header, also with an offset and fewer PFNs than announced", () => {
    expect(dec(header())).toEqual(header());
    const partial = header({ byteOffset: 100, byteCount: 3 * 4096, rangeBufLen: 8 + 8 * 4, pfns: [1, 2] });
    expect(dec(partial)).toEqual(partial);
  });

  it("rangecount must be 1", () => {
    expectProtocolError(() => dec(header({ rangeCount: 0 })), "rangecount", 0);
    expectProtocolError(() => dec(header({ rangeCount: 2 })), "rangecount", 2);
  });

  it("range_buflen must be 8 + 8 x the pages byte_offset + byte_count span", () => {
    expectProtocolError(() => dec(header({ rangeBufLen: 40 })), "range_buflen", "40 (0x28)");
    expectProtocolError(() => dec(header({ rangeBufLen: 24 })), "range_buflen", "24 (0x18)");
    expectProtocolError(() => dec(header({ byteCount: 3 * 4096 + 1 })), "range_buflen", "32 (0x20)");
    expectProtocolError(() => dec(header({ byteOffset: 1 })), "range_buflen", "32 (0x20)");
    // A range_buflen that would claim ~8190 PFNs for a 3-page range.
    expectProtocolError(() => dec(header({ rangeBufLen: 0xffff })), "range_buflen", "65535 (0xffff)");
  });

  it("byte_count must be non-zero and byte_offset inside the first page", () => {
    expectProtocolError(() => dec(header({ byteCount: 0 })), "byte_count", 0);
    expectProtocolError(() => dec(header({ byteOffset: 4096 })), "byte_offset", "4096 (0x1000)");
  });

  it("the header may not carry more PFNs than range_buflen announces", () => {
    const e = catchError(() => dec(header({ byteCount: 4096, rangeBufLen: 16, pfns: [1, 2] })));
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).field).toBe("payload_size");
    expect((e as Error).message).toContain("carries 2 PFNs but range_buflen=16 announces 1");
  });

  it("payload_size must end on a PFN boundary", () => {
    expectProtocolError(() => dec(header(), 51), "payload_size", "51 (0x33)");
    const body: m.GpadlBodyMessage = { msgtype: 9, msgNumber: 0, gpadl: 1, pfns: [1, 2] };
    expectProtocolError(() => dec(body, 31), "payload_size", "31 (0x1f)");
    expectProtocolError(() => dec(body, 16), "payload_size", "16 (0x10)");
  });
});

describe("encoder", () => {
  it("refuses values that do not fit their field, naming it", () => {
    const e = catchError(() => m.encodeChannelMessage({ msgtype: 22, childRelid: 1, targetVp: 2 ** 32 }));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect((e as Error).message).toContain("MODIFYCHANNEL.target_vp=4294967296");
    expect(() => m.encodeChannelMessage({ msgtype: 2, childRelid: -1 })).toThrow(/RESCIND_CHANNELOFFER.child_relid=-1/);
    expect(() => m.encodeChannelMessage({ msgtype: 12, gpadl: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => m.encodeChannelMessage(header({ rangeBufLen: 0x10000 }))).toThrow(/range_buflen/);
    expect(() => m.encodeChannelMessage(header({ pfns: [2 ** 53] }))).toThrow(/pfn_array\[0\]/);
    expect(() =>
      m.encodeChannelMessage({ msgtype: 15, versionSupported: true, connectionState: 256, msgConnId: 1 }),
    ).toThrow(/connection_state/);
  });

  it("refuses GPADL messages over 240 bytes and userdata over 120 bytes", () => {
    const pfns27 = Array.from({ length: 27 }, (_, i) => i);
    expect(() => m.encodeChannelMessage(header({ pfns: pfns27 }))).toThrow(/GPADL_HEADER PFN count=27/);
    expect(m.encodeChannelMessage(header({ pfns: pfns27.slice(0, 26) })).length).toBe(236);
    const pfns29 = Array.from({ length: 29 }, (_, i) => i);
    expect(() => m.encodeChannelMessage({ msgtype: 9, msgNumber: 0, gpadl: 1, pfns: pfns29 })).toThrow(/GPADL_BODY PFN count=29/);
    expect(m.encodeChannelMessage({ msgtype: 9, msgNumber: 0, gpadl: 1, pfns: pfns29.slice(0, 28) }).length).toBe(240);
    expect(() =>
      m.encodeChannelMessage({
        msgtype: 5,
        childRelid: 1,
        openId: 1,
        ringBufferGpadlHandle: 1,
        targetVp: 0,
        downstreamRingBufferPageOffset: 1,
        userData: new Uint8Array(121),
      }),
    ).toThrow(/userdata length=121/);
  });
});

describe("decoder fuzz", () => {
  const isTyped = (fn: () => unknown): boolean => {
    try {
      fn();
      return true;
    } catch (e) {
      if (e instanceof VmbusSimError) return true;
      throw e;
    }
  };
  const dir = fc.constantFrom<ChannelMessageDirection>("toGuest", "toHost");

  it("random bytes and payload sizes throw nothing but VmbusSimError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 260 }), fc.integer({ min: -3, max: 300 }), dir, (bytes, size, d) =>
        isTyped(() => m.decodeChannelMessage(bytes, size, d)),
      ),
      { numRuns: 3000 },
    );
  });

  it("random bodies with a plausible msgtype reach every decoder and throw nothing but VmbusSimError", () => {
    let decoded = 0;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 240, maxLength: 240 }),
        fc.integer({ min: 0, max: 26 }),
        fc.integer({ min: 0, max: 240 }),
        dir,
        (bytes, type, size, d) => {
          new DataView(bytes.buffer).setUint32(0, type, true);
          return isTyped(() => {
            m.decodeChannelMessage(bytes, size, d);
            decoded++;
          });
        },
      ),
      { numRuns: 5000 },
    );
    expect(decoded).toBeGreaterThan(0);
  });

  it("mutated valid messages throw nothing but VmbusSimError", () => {
    fc.assert(
      fc.property(messageArb, fc.array(fc.tuple(fc.nat(239), u8), { maxLength: 8 }), fc.integer({ min: -8, max: 8 }), (msg, flips, delta) => {
        const slot = slotWith(msg);
        for (const [i, v] of flips) slot[i] = v;
        const size = m.channelMessageSize(msg) + delta;
        return isTyped(() => m.decodeChannelMessage(slot, size, directionOf(msg.msgtype)));
      }),
      { numRuns: 3000 },
    );
  });
});
