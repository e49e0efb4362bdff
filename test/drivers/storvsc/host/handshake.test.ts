/**
 * storvsp's §4 handshake against a scripted guest: completions byte for
 * byte, REVISION_MISMATCH for an older host, INVALID_DEVICE_STATE for
 * operations out of order, INVALID_PARAMETER for too many sub-channels,
 * completion size mirroring, sub-channel workers waiting for Ready.
 */
import { describe, expect, it } from "vitest";
import {
  READ_TYPE,
  UNKNOWN_TYPE,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN8,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_RESET_BUS,
  buildReadCdb,
  buildTestUnitReadyCdb,
  encodeVstorPacket,
  makeExecuteSrbPacket,
  makeVstorRequestPacket,
} from "../../../../drivers/storvsc/protocol/index.js";
import { bootStorvsp, hex, pattern, toHex, type ScriptedGuest } from "./harness.js";

const Z = (n: number): string => "00 ".repeat(n);
const MEM = { kind: "memory", sizeBytes: 1 << 20 } as const;

function version(v: number) {
  return makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, { kind: "version", version: { majorMinor: v, revision: 0 } });
}

function createSubChannels(n: number) {
  return makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: n });
}

/** The whole 64-byte COMPLETE_IO for a refused control request: status 0xC0000184 STATUS_INVALID_DEVICE_STATE (LE at offset 8), union zero. */
const INVALID_STATE_COMPLETION = toHex(hex(`01 00 00 00 | 00 00 00 00 | 84 01 00 c0 | ${Z(52)}`));

/** Sub-channels offered so far, once every offer in flight has arrived. */
async function offered(g: ScriptedGuest): Promise<number> {
  await g.settle();
  return g.primary.subchannels.length;
}

/** A full 64-byte EXECUTE_SRB at 6.2, then cut or zero-extended to `n` bytes (the ring pads it to 8). */
function srbOfSize(n: number, cdb: Uint8Array, dataIn: number, dataTransferLength: number): Uint8Array {
  const full = encodeVstorPacket(
    makeExecuteSrbPacket({ protocolVersion: VMSTOR_PROTO_VERSION_WIN10, cdb, dataIn, dataTransferLength, lun: 0, pathId: 0, targetId: 0 }),
    VMSTOR_PROTO_VERSION_WIN10,
  );
  const out = new Uint8Array(n);
  out.set(full.subarray(0, Math.min(n, full.length)));
  return out;
}

describe("storvsp handshake (§4)", () => {
  it("answers BEGIN / VERSION 6.2 / PROPERTIES / END byte for byte and ends Ready", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    const [begin, ver, props, end] = await g.handshake(VMSTOR_PROTO_VERSION_WIN10);
    // COMPLETE_IO (1), flags 0, status SUCCESS, union zero: 64 bytes (the request's size).
    expect(toHex(begin!)).toBe(toHex(hex(`01 00 00 00 | 00 00 00 00 | 00 00 00 00 | ${Z(52)}`)));
    // The requested version is echoed: major_minor 0x0602 LE, revision 0.
    expect(toHex(ver!)).toBe(toHex(hex(`01 00 00 00 | 00 00 00 00 | 00 00 00 00 | 02 06 00 00 | ${Z(48)}`)));
    // Properties: reserved u32, max_channel_cnt 8, reserved u16, flags MULTI_CHANNEL, max_transfer_bytes 0x40000, reserved u64.
    expect(toHex(props!)).toBe(toHex(hex(`01 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00 | 08 00 00 00 | 01 00 00 00 | 00 00 04 00 | ${Z(36)}`)));
    expect(toHex(end!)).toBe(toHex(begin!));
    expect(g.vsp.state).toBe("ready");
    expect(g.vsp.protocolVersion).toBe(VMSTOR_PROTO_VERSION_WIN10);
    expect(g.vsp.counters.controlRequests).toBe(4);
    expect(g.vsp.counters.completions).toBe(4);
  });

  it("answers REVISION_MISMATCH for a version above protocolMax and accepts the next one (an older host)", async () => {
    const g = await bootStorvsp({ disks: [MEM], protocolMax: VMSTOR_PROTO_VERSION_WIN8_1 });
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION));
    const mismatch = await g.control(version(VMSTOR_PROTO_VERSION_WIN10));
    // status 0xC0000059 STATUS_REVISION_MISMATCH, version still echoed.
    expect(toHex(mismatch.subarray(0, 16))).toBe("01 00 00 00 00 00 00 00 59 00 00 c0 02 06 00 00");
    expect(g.vsp.state).toBe("query-version");
    const bogus = await g.control(version(0x0703));
    expect(toHex(bogus.subarray(8, 12))).toBe("59 00 00 c0");
    const ok = await g.control(version(VMSTOR_PROTO_VERSION_WIN8_1));
    expect(toHex(ok.subarray(0, 16))).toBe("01 00 00 00 00 00 00 00 00 00 00 00 00 06 00 00");
    expect(g.vsp.protocolVersion).toBe(VMSTOR_PROTO_VERSION_WIN8_1);
    expect(g.vsp.counters.errors["revision-mismatch"]).toBe(2);
  });

  it("gives a pre-Win8 guest no multichannel: max_channel_count 0, flags 0", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    const [, , props] = await g.handshake(VMSTOR_PROTO_VERSION_WIN7);
    expect(toHex(props!.subarray(12, 28))).toBe("00 00 00 00 00 00 00 00 00 00 00 00 00 00 04 00");
  });

  it("answers INVALID_DEVICE_STATE to operations out of order, I/O before Ready and BEGIN when Ready", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    const INVALID_STATE = "84 01 00 c0";
    // I/O before the handshake: a completion with STATUS_INVALID_DEVICE_STATE, not a closed channel.
    const io = await g.srb(buildTestUnitReadyCdb(), { version: VMSTOR_PROTO_VERSION_WIN8 });
    expect(toHex(io.completion.data.subarray(0, 12))).toBe(`01 00 00 00 00 00 00 00 ${INVALID_STATE}`);
    expect(io.completion.data.length).toBe(64);
    for (const op of [VSTOR_OPERATION_END_INITIALIZATION, VSTOR_OPERATION_QUERY_PROPERTIES, VSTOR_OPERATION_RESET_BUS]) {
      const c = await g.control(makeVstorRequestPacket(op));
      expect(toHex(c.subarray(8, 12))).toBe(INVALID_STATE);
    }
    expect(toHex((await g.control(version(VMSTOR_PROTO_VERSION_WIN10))).subarray(8, 12))).toBe(INVALID_STATE);
    expect(g.vsp.state).toBe("begin");
    await g.handshake();
    const again = await g.control(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION));
    expect(toHex(again.subarray(8, 12))).toBe(INVALID_STATE);
    expect(g.vsp.state).toBe("ready");
    // Resets are accepted once Ready (no-ops, as OV).
    expect(toHex((await g.control(makeVstorRequestPacket(VSTOR_OPERATION_RESET_BUS))).subarray(8, 12))).toBe("00 00 00 00");
    expect(g.vsp.counters.errors["invalid-device-state"]).toBe(6);
    expect(g.primary.rescinded).toBe(false);
  });

  it("mirrors the request size in the completion: 48/50/56/64/72 → 48/56/56/64/64 (OV test)", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    const begin = encodeVstorPacket(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION), VMSTOR_PROTO_VERSION_WIN10);
    const sizes: number[] = [];
    for (const n of [48, 50, 56, 64, 72]) {
      const req = new Uint8Array(n);
      req.set(begin.subarray(0, Math.min(n, 64)));
      sizes.push((await g.control(req)).length);
    }
    expect(sizes).toEqual([48, 56, 56, 64, 64]);
  });

  it("refuses more sub-channels than allowed (INVALID_PARAMETER) and offers the allowed ones", async () => {
    const g = await bootStorvsp({ disks: [MEM], maxSubchannels: 2 });
    const [, , props] = await g.handshake(VMSTOR_PROTO_VERSION_WIN10);
    expect(props![16]).toBe(2);
    const tooMany = await g.control(makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: 3 }));
    expect(toHex(tooMany.subarray(8, 12))).toBe("0d 00 00 c0");
    const ok = await g.control(makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: 2 }));
    expect(toHex(ok.subarray(8, 12))).toBe("00 00 00 00");
    const subs = await g.openSubchannels(2);
    expect(subs.map((s) => s.subchannelIndex)).toEqual([1, 2]);
    expect(g.vsp.channelStats().map((s) => s.subchannelIndex)).toEqual([0, 1, 2]);
  });

  it("reports the smaller of maxSubchannels and the registration's subchannelLimit", async () => {
    const g = await bootStorvsp({ disks: [MEM], maxSubchannels: 8 }, { subchannelLimit: 3 });
    const [, , props] = await g.handshake();
    expect(props![16]).toBe(3);
  });

  it("holds sub-channel I/O until END_INITIALIZATION, then runs it (delayed, not lost)", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION));
    await g.control(version(VMSTOR_PROTO_VERSION_WIN10));
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROPERTIES));
    // CREATE_SUB_CHANNELS is accepted before END_INITIALIZATION (OV).
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: 1 }));
    const [sub] = await g.openSubchannels(1);
    let done = false;
    const pending = g.startSrb(buildTestUnitReadyCdb(), { channel: sub! }).then((r) => {
      done = true;
      return r;
    });
    await g.run(g.sys.sim.scheduler.sleep(5_000_000));
    expect(done).toBe(false);
    expect(g.vsp.counters.readyWaits).toBeGreaterThan(0);
    expect(g.vsp.channelStats()[1]!.blocked).toBe("not-ready");
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_END_INITIALIZATION));
    const r = await g.run(pending);
    expect(r.srb.srbStatus).toBe(0x01);
    expect(r.packet.status).toBe(0);
  });
  it("CREATE_SUB_CHANNELS in state begin: INVALID_DEVICE_STATE, state kept, nothing offered", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    const c = await g.control(createSubChannels(1));
    expect(toHex(c)).toBe(INVALID_STATE_COMPLETION);
    expect(g.vsp.state).toBe("begin");
    expect(await offered(g)).toBe(0);
    expect(g.vsp.counters.errors["invalid-device-state"]).toBe(1);
    // The refusal changed nothing: the handshake still runs from the start.
    await g.handshake();
    expect(g.vsp.state).toBe("ready");
  });

  it("CREATE_SUB_CHANNELS in query-version and query-properties: INVALID_DEVICE_STATE, state kept, nothing offered", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    await g.control(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION));
    expect(g.vsp.state).toBe("query-version");
    expect(toHex(await g.control(createSubChannels(1)))).toBe(INVALID_STATE_COMPLETION);
    expect(g.vsp.state).toBe("query-version");
    await g.control(version(VMSTOR_PROTO_VERSION_WIN10));
    expect(g.vsp.state).toBe("query-properties");
    expect(toHex(await g.control(createSubChannels(1)))).toBe(INVALID_STATE_COMPLETION);
    expect(g.vsp.state).toBe("query-properties");
    expect(await offered(g)).toBe(0);
    expect(g.vsp.counters.errors["invalid-device-state"]).toBe(2);
  });

  it("CREATE_SUB_CHANNELS on a sub-channel: INVALID_DEVICE_STATE, no further offer, the sub-channel keeps working", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    await g.handshake(VMSTOR_PROTO_VERSION_WIN10, 1);
    const [sub] = await g.openSubchannels(1);
    expect(await offered(g)).toBe(1);
    const c = await g.control(createSubChannels(2), sub!);
    expect(toHex(c)).toBe(INVALID_STATE_COMPLETION);
    expect(await offered(g)).toBe(1);
    expect(g.vsp.state).toBe("ready");
    expect(g.vsp.counters.errors["invalid-device-state"]).toBe(1);
    // Refused, not fatal: the sub-channel still serves I/O.
    const tur = await g.srb(buildTestUnitReadyCdb(), { channel: sub! });
    expect(tur.srb.srbStatus).toBe(0x01);
    expect(sub!.rescinded).toBe(false);
    // The same request on the primary is accepted.
    expect(toHex((await g.control(createSubChannels(2))).subarray(8, 12))).toBe("00 00 00 00");
    expect(await offered(g)).toBe(2);
  });

  it("CREATE_SUB_CHANNELS after a 4.2 (WIN7) handshake: INVALID_DEVICE_STATE (multichannel needs 5.1), nothing offered", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    await g.handshake(VMSTOR_PROTO_VERSION_WIN7);
    expect(g.vsp.state).toBe("ready");
    expect(g.vsp.protocolVersion).toBe(VMSTOR_PROTO_VERSION_WIN7);
    const c = await g.control(createSubChannels(1));
    expect(toHex(c)).toBe(INVALID_STATE_COMPLETION);
    expect(g.vsp.state).toBe("ready");
    expect(await offered(g)).toBe(0);
    expect(g.vsp.counters.errors["invalid-device-state"]).toBe(1);
  });

  it("sizes EXECUTE_SRB completions from the request at 6.2: 48/50/56/64/72 → 48/56/56/64/64 (TEST UNIT READY, READ, a failed READ)", async () => {
    const g = await bootStorvsp({ disks: [MEM] });
    await g.handshake(VMSTOR_PROTO_VERSION_WIN10);
    const data = pattern(4096, 5);
    await g.vsp.lunAt(0)!.disk.base.write(16, data);
    const sizes = [48, 50, 56, 64, 72];
    const tur: number[] = [];
    const read: number[] = [];
    const failed: number[] = [];
    for (const n of sizes) {
      // No data: an inband packet.
      const t = await g.run(g.primary.sendRequest(srbOfSize(n, buildTestUnitReadyCdb(), UNKNOWN_TYPE, 0)));
      tur.push(t.data.length);
      // COMPLETE_IO, status SUCCESS; SRB length 0x34, srb SUCCESS, scsi GOOD.
      expect(toHex(t.data.subarray(0, 16))).toBe("01 00 00 00 00 00 00 00 00 00 00 00 34 00 01 00");

      // 8 blocks through one GPA range: below 64 bytes the long path, from 64 the fast one.
      const range = g.allocBuffer(4096);
      const r = await g.run(g.primary.sendPacketMpbDesc([range], srbOfSize(n, buildReadCdb(10, 16n, 8), READ_TYPE, 4096)));
      read.push(r.data.length);
      expect(toHex(r.data.subarray(8, 16))).toBe("00 00 00 00 34 00 01 00");
      expect(new DataView(r.data.buffer, r.data.byteOffset).getUint32(24, true)).toBe(4096);
      expect(Buffer.from(g.readBuffer(range)).equals(Buffer.from(data))).toBe(true);
      g.freeBuffer(range);

      // Past the end (2048 blocks): CHECK CONDITION with 05/21/00 sense at offset 28, inside even 48 bytes.
      const range2 = g.allocBuffer(512);
      const e = await g.run(g.primary.sendPacketMpbDesc([range2], srbOfSize(n, buildReadCdb(10, 2048n, 1), READ_TYPE, 512)));
      failed.push(e.data.length);
      expect(toHex(e.data.subarray(8, 16))).toBe("85 01 00 c0 34 00 86 02"); // STATUS_IO_DEVICE_ERROR; INVALID_REQUEST|AUTOSENSE, CHECK CONDITION
      expect(toHex(e.data.subarray(28, 31))).toBe("70 00 05");
      expect(toHex(e.data.subarray(40, 42))).toBe("21 00");
      g.freeBuffer(range2);
    }
    expect(tur).toEqual([48, 56, 56, 64, 64]);
    expect(read).toEqual([48, 56, 56, 64, 64]);
    expect(failed).toEqual([48, 56, 56, 64, 64]);
    expect(g.vsp.counters.requests).toBe(15);
    expect(g.vsp.counters.completions).toBe(4 + 15);
    expect(g.primary.rescinded).toBe(false);
  });
});
