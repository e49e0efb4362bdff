/**
 * §5.3 hot add/remove (unsolicited ENUMERATE_BUS, UNIT ATTENTION 06/3F/0E)
 * and §8 flow control (per-channel queue depth, room reserved for
 * completions).
 */
import { describe, expect, it } from "vitest";
import { VM_PKT_DATA_INBAND } from "../../../../core/index.js";
import {
  VMSTOR_PROTO_VERSION_WIN10,
  buildReadCdb,
  buildReportLunsCdb,
  buildRequestSenseCdb,
  buildTestUnitReadyCdb,
  buildWriteCdb,
} from "../../../../drivers/storvsc/protocol/index.js";
import { DiskSpecError } from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, hex, pattern, toHex } from "./harness.js";

const DISK = { kind: "memory", sizeBytes: 16 << 20 } as const;
const UA = toHex(hex("70 00 06 00 00 00 00 0a 00 00 00 00 3f 0e 00 00 00 00 00 00"));

describe("storvsp hot-plug (§5.3)", () => {
  it("hot add: ENUMERATE_BUS on the primary (op 11, trans id 0, no completion requested), new LUN reported, UA on the others", async () => {
    const g = await bootStorvsp({ disks: [DISK] });
    await g.handshake();
    expect(g.vsp.addDisk({ kind: "memory", sizeBytes: 1 << 20 })).toEqual({ pathId: 0, targetId: 0, lun: 1 });
    await g.settle();
    expect(g.unsolicited).toHaveLength(1);
    const n = g.unsolicited[0]!;
    expect(n.type).toBe(VM_PKT_DATA_INBAND);
    expect(n.transId).toBe(0n);
    expect(n.flags).toBe(0);
    expect(toHex(n.data)).toBe(toHex(hex(`0b 00 00 00 00 00 00 00 00 00 00 00 ${"00 ".repeat(52)}`)));
    expect(g.vsp.counters.enumerateBusSent).toBe(1);
    // REPORT LUNS does not consume the unit attention; the next TUR does.
    const rl = await g.srb(buildReportLunsCdb(64), { inLength: 64 });
    expect(toHex(rl.data.subarray(0, rl.srb.dataTransferLength))).toBe(toHex(hex(`00 00 00 10 00 00 00 00 ${"00 ".repeat(8)} 00 01 ${"00 ".repeat(6)}`)));
    const tur = await g.srb(buildTestUnitReadyCdb());
    expect(tur.srb.srbStatus).toBe(0x84);
    expect(tur.srb.scsiStatus).toBe(0x02);
    expect(toHex(tur.sense)).toBe(UA);
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    // The new LUN has no unit attention and works at once.
    const data = pattern(512, 3);
    expect((await g.srb(buildWriteCdb(10, 0n, 1), { out: data, lun: 1 })).srb.srbStatus).toBe(0x01);
    expect(g.vsp.counters.errors["unit-attention"]).toBe(1);
  });

  it("REQUEST SENSE returns the pending unit attention and clears it", async () => {
    const g = await bootStorvsp({ disks: [DISK] });
    await g.handshake();
    g.vsp.addDisk({ kind: "memory", sizeBytes: 1 << 20, lun: 4 });
    const rs = await g.srb(buildRequestSenseCdb(18), { inLength: 18 });
    expect(toHex(rs.data)).toBe(UA.slice(0, 18 * 3 - 1));
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
  });

  it("hot remove: ENUMERATE_BUS again; the removed LUN answers INVALID_LUN; an I/O already running finishes", async () => {
    const g = await bootStorvsp({ disks: [DISK, { ...DISK, latency: { readNs: 2_000_000 } }] });
    await g.handshake();
    const running = g.startSrb(buildReadCdb(10, 0n, 1), { inLength: 512, lun: 1 });
    await g.run(g.sys.sim.scheduler.sleep(500_000));
    expect(g.vsp.removeDisk(1)).toBe(true);
    expect(g.vsp.removeDisk(1)).toBe(false);
    expect((await g.run(running)).srb.srbStatus).toBe(0x01);
    await g.settle();
    expect(g.unsolicited.map((u) => u.data[0])).toEqual([11]);
    const gone = await g.srb(buildTestUnitReadyCdb(), { lun: 1 });
    expect(gone.srb.srbStatus).toBe(0x20);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(UA);
  });

  it("no ENUMERATE_BUS before the handshake is done; a LUN already in use is refused naming the field", async () => {
    const g = await bootStorvsp({ disks: [DISK] });
    g.vsp.addDisk({ kind: "memory", sizeBytes: 1 << 20 });
    await g.settle();
    expect(g.unsolicited).toHaveLength(0);
    expect(() => g.vsp.addDisk({ kind: "memory", sizeBytes: 1 << 20, lun: 0 })).toThrow(DiskSpecError);
    expect(() => g.vsp.addDisk({ kind: "memory", sizeBytes: 1 << 20, lun: 0 })).toThrow(/disk\.lun=0: is already used/);
    expect(() => g.vsp.addDisk({ kind: "memory", sizeBytes: 1000 })).toThrow(/disk\.sizeBytes=1000/);
  });
});

describe("storvsp flow control (§8)", () => {
  it("more concurrent requests than queueDepth all complete; in flight never exceeds it", async () => {
    const g = await bootStorvsp({ disks: [{ ...DISK, latency: { readNs: 1_000_000, writeNs: 1_000_000 } }], queueDepth: 4 });
    await g.handshake();
    const data = pattern(32 * 512, 8);
    await g.srb(buildWriteCdb(16, 0n, 32), { out: data });
    const reads = Array.from({ length: 20 }, (_, i) => g.startSrb(buildReadCdb(10, BigInt(i), 1), { inLength: 512 }));
    const results = await g.run(Promise.all(reads));
    results.forEach((r, i) => {
      expect(r.srb.srbStatus).toBe(0x01);
      expect(Buffer.from(r.data).equals(Buffer.from(data.subarray(i * 512, (i + 1) * 512)))).toBe(true);
    });
    const c = g.vsp.counters;
    expect(g.vsp.channelStats()[0]!.inFlightMax).toBe(4);
    expect(c.inFlightMax).toBe(4);
    expect(c.queueFullStops).toBeGreaterThan(0);
    expect(c.requests).toBe(21);
    // 4 handshake completions + 21 SRBs, each exactly once; none waited for room.
    expect(c.completions).toBe(25);
    expect(c.completionsQueued).toBe(0);
    expect(c.inFlight).toBe(0);
    // 20 reads, 4 at a time, 1 ms each: at least 5 ms of virtual time.
    expect(g.sys.sim.now).toBeGreaterThan(5_000_000);
  });

  it("queue depth is per channel: each of three channels reaches it", async () => {
    const g = await bootStorvsp({ disks: [{ ...DISK, latency: { readNs: 1_000_000 } }], queueDepth: 3 });
    await g.handshake(VMSTOR_PROTO_VERSION_WIN10, 2);
    const subs = await g.openSubchannels(2);
    const all = [g.primary, ...subs].flatMap((ch) => Array.from({ length: 7 }, () => g.startSrb(buildReadCdb(10, 0n, 1), { inLength: 512, channel: ch })));
    const results = await g.run(Promise.all(all));
    expect(results.every((r) => r.srb.srbStatus === 0x01)).toBe(true);
    expect(g.vsp.channelStats().map((s) => [s.subchannelIndex, s.requests, s.inFlightMax])).toEqual([
      [0, 7, 3],
      [1, 7, 3],
      [2, 7, 3],
    ]);
    expect(g.vsp.counters.inFlightMax).toBeLessThanOrEqual(9);
  });

  it("reserves completion room: with a 4 KiB inbound ring at most 46 requests are taken, none is lost", async () => {
    const g = await bootStorvsp({ disks: [{ ...DISK, latency: { readNs: 1_000_000 } }] }, { recvRingBytes: 8192 });
    await g.handshake();
    const reads = Array.from({ length: 100 }, () => g.startSrb(buildReadCdb(10, 0n, 1), { inLength: 512 }));
    const results = await g.run(Promise.all(reads));
    expect(results).toHaveLength(100);
    expect(results.every((r) => r.srb.srbStatus === 0x01)).toBe(true);
    const c = g.vsp.counters;
    // 4096 data bytes / 88 bytes per maximal completion = 46.
    expect(c.inFlightMax).toBe(46);
    expect(c.ringFullStops).toBeGreaterThan(0);
    expect(c.completionsQueued).toBe(0);
    expect(c.completions).toBe(104);
  });

  it("resumes when the guest drains completions it had left unread", async () => {
    const g = await bootStorvsp({ disks: [DISK] }, { recvRingBytes: 8192 });
    await g.handshake();
    // Keep the guest from reading its inbound ring: mask its interrupts at the ring level.
    const inbound = g.primary.inbound!;
    inbound.storeInterruptMask(1);
    const reads = Array.from({ length: 60 }, () => g.startSrb(buildTestUnitReadyCdb()));
    await g.run(g.sys.sim.scheduler.sleep(5_000_000));
    // 46 completions fit; the rest wait in the guest→host ring.
    expect(g.vsp.counters.requests).toBe(46);
    expect(g.vsp.counters.ringFullStops).toBeGreaterThan(0);
    inbound.storeInterruptMask(0);
    g.primary.onInterrupt();
    const results = await g.run(Promise.all(reads));
    expect(results.every((r) => r.srb.srbStatus === 0x01)).toBe(true);
    expect(g.vsp.counters.requests).toBe(60);
    expect(g.vsp.counters.completionsQueued).toBe(0);
  });
});
