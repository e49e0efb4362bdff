/**
 * §8 reactions to hostile packets: each fatal case fails (closes and
 * rescinds) only the channel it came on; with sub-channels, the others keep
 * working. Non-fatal errors were covered in handshake/scsi tests.
 */
import { describe, expect, it } from "vitest";
import { VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, type GpaRange, type GuestChannel } from "../../../../core/index.js";
import {
  READ_TYPE,
  VMSTOR_PROTO_VERSION_WIN10,
  buildReadCdb,
  buildTestUnitReadyCdb,
  buildWriteCdb,
  encodeVstorPacket,
  makeExecuteSrbPacket,
} from "../../../../drivers/storvsc/protocol/index.js";
import { StorvspPacketError } from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, pattern, type ScriptedGuest } from "./harness.js";

const DISK = { kind: "memory", sizeBytes: 16 << 20 } as const;

function readSrb(dtl: number): Uint8Array {
  return encodeVstorPacket(makeExecuteSrbPacket({ protocolVersion: VMSTOR_PROTO_VERSION_WIN10, cdb: buildReadCdb(10, 0n, dtl / 512), dataIn: READ_TYPE, dataTransferLength: dtl }), VMSTOR_PROTO_VERSION_WIN10);
}

/** A guest with 2 sub-channels open, ready for I/O. */
async function withSubchannels(): Promise<{ g: ScriptedGuest; subs: GuestChannel[] }> {
  const g = await bootStorvsp({ disks: [DISK] });
  await g.handshake(VMSTOR_PROTO_VERSION_WIN10, 2);
  const subs = await g.openSubchannels(2);
  return { g, subs };
}

/** Sends `hostile` on sub-channel 1, then checks it was failed and the primary and sub-channel 2 still serve I/O. */
async function failsOnlyThatChannel(send: (g: ScriptedGuest, ch: GuestChannel) => Promise<unknown>): Promise<ScriptedGuest> {
  const { g, subs } = await withSubchannels();
  const [victim, other] = subs as [GuestChannel, GuestChannel];
  const pending = send(g, victim).catch(() => undefined);
  await g.run(pending);
  await g.settle();
  expect(victim.rescinded).toBe(true);
  expect(g.vsp.counters.channelsFailed).toBe(1);
  expect(g.vsp.counters.errors["fatal-packet"]).toBe(1);
  expect(g.vsp.lastFatalError).toBeInstanceOf(Error);
  expect(g.primary.rescinded).toBe(false);
  expect(other.rescinded).toBe(false);
  const data = pattern(4096, 9);
  for (const ch of [g.primary, other]) {
    expect((await g.srb(buildWriteCdb(10, 8n, 8), { out: data, channel: ch })).srb.srbStatus).toBe(0x01);
    const r = await g.srb(buildReadCdb(10, 8n, 8), { inLength: 4096, channel: ch });
    expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
  }
  expect(g.vsp.channelStats().map((s) => s.subchannelIndex)).toEqual([0, 2]);
  return g;
}

function range(g: ScriptedGuest, bytes: number): GpaRange {
  return g.allocBuffer(bytes);
}

describe("storvsp fatal packet errors (§8)", () => {
  it("a packet shorter than the 12-byte header fails the channel", async () => {
    const g = await failsOnlyThatChannel((_, ch) => ch.sendPacket(new Uint8Array(8), 5, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED));
    expect(g.vsp.lastFatalError).toBeInstanceOf(StorvspPacketError);
    expect(g.vsp.lastFatalError!.message).toMatch(/vstor_packet length=8 is shorter than the 12-byte header/);
  });

  it("an operation a guest does not send (REMOVE_DEVICE, 99) fails the channel", async () => {
    const g = await failsOnlyThatChannel((_, ch) => ch.sendRequest(Uint8Array.of(2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, ...new Uint8Array(52))));
    expect(g.vsp.lastFatalError!.message).toMatch(/operation=2 /);
    await failsOnlyThatChannel((_, ch) => ch.sendRequest(Uint8Array.of(99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)));
  });

  it("a VMBus completion from the guest fails the channel", async () => {
    const g = await failsOnlyThatChannel((_, ch) => ch.sendCompletion(7, readSrb(512)));
    expect(g.vsp.lastFatalError!.message).toMatch(/packet type=11 is VM_PKT_COMP/);
  });

  it("a request without COMPLETION_REQUESTED fails the channel (it could never be answered)", async () => {
    const g = await failsOnlyThatChannel((_, ch) => ch.sendPacket(readSrb(512), 3, 0));
    expect(g.vsp.lastFatalError!.message).toMatch(/lack VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED/);
  });

  it("a GPA range shorter than data_transfer_length fails the channel", async () => {
    const g = await failsOnlyThatChannel((g, ch) => ch.sendPacketMpbDesc([range(g, 512)], readSrb(4096)));
    expect(g.vsp.lastFatalError!.message).toMatch(/range\[0\]\.byte_count=512 \(0x200\) is shorter than data_transfer_length 4096/);
  });

  it("more than one GPA range fails the channel", async () => {
    const g = await failsOnlyThatChannel((g, ch) => ch.sendPacketMpbDesc([range(g, 512), range(g, 512)], readSrb(1024)));
    expect(g.vsp.lastFatalError!.message).toMatch(/GPA direct rangecount=2 must be 1/);
  });

  it("a PFN outside guest memory fails the channel before any byte moves", async () => {
    const g = await failsOnlyThatChannel((g, ch) => ch.sendPacketMpbDesc([{ byteCount: 512, byteOffset: 0, pfns: [g.vm.partition.memory.pageCount + 5] }], readSrb(512)));
    expect(g.vsp.lastFatalError!.code).toBe("GPADL_ACCESS");
  });

  it("a corrupt ring (a descriptor whose len8 runs past the data) fails the channel", async () => {
    const g = await failsOnlyThatChannel(async (_, ch) => {
      const out = ch.outbound!;
      const at = out.loadWriteIndex();
      await ch.sendPacket(readSrb(512), 1, 1);
      // Published, not yet read by the host: rewrite len8 to 0xffff.
      out.data[at + 4] = 0xff;
      out.data[at + 5] = 0xff;
    });
    expect(g.vsp.lastFatalError!.code).toBe("RING_CORRUPT");
  });

  it("hostile input on the primary takes the whole device (the primary's failure rescinds it)", async () => {
    const g = await bootStorvsp({ disks: [DISK] });
    await g.handshake();
    await g.raw(new Uint8Array(4));
    expect(g.primary.rescinded).toBe(true);
    expect(g.vsp.counters.channelsFailed).toBe(1);
  });

  it("requests in flight when a channel fails are not completed twice nor into a dead ring", async () => {
    const g = await bootStorvsp({ disks: [{ ...DISK, latency: { readNs: 1_000_000 } }] });
    await g.handshake();
    const reads = Array.from({ length: 4 }, () => g.startSrb(buildReadCdb(10, 0n, 1), { inLength: 512 }).catch((e: unknown) => e));
    await g.run(g.sys.sim.scheduler.sleep(300_000));
    expect(g.vsp.counters.inFlight).toBe(4);
    await g.run(g.primary.sendPacket(new Uint8Array(4), 1, 1));
    const outcomes = await g.run(Promise.all(reads));
    await g.settle();
    expect(outcomes.every((o) => o instanceof Error)).toBe(true);
    expect(g.vsp.counters.inFlight).toBe(0);
    expect(g.vsp.counters.completionsDropped).toBe(4);
    expect(g.vsp.counters.requests).toBe(4);
  });

  it("a TEST UNIT READY on the failed channel's sibling still completes (sanity of the helper)", async () => {
    const { g, subs } = await withSubchannels();
    const r = await g.srb(buildTestUnitReadyCdb(), { channel: subs[1]! });
    expect(r.srb.srbStatus).toBe(0x01);
  });
});
