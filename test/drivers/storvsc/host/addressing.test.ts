/**
 * LUNs addressed by path, target and LUN (storvsc-netvsc.md §3 SRB
 * path_id / target_id / lun, §6 host routing): disks at 0:0:0, 0:1:0 and
 * 1:0:0 each get their own data, through the fast READ/WRITE path and the
 * long one (FUA, READ CAPACITY), and an SRB to an address with no disk gets
 * the no-device answer — SRB INVALID_LUN without sense, and no byte moves.
 */
import { describe, expect, it } from "vitest";
import {
  buildInquiryCdb,
  buildReadCapacity10Cdb,
  buildReadCdb,
  buildReportLunsCdb,
  buildTestUnitReadyCdb,
  buildWriteCdb,
} from "../../../../drivers/storvsc/protocol/index.js";
import { bootStorvsp, pattern, toHex, type ScriptedGuest } from "./harness.js";

interface Addr {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
}

/** Three disks of different sizes (so READ CAPACITY tells them apart): 1, 2 and 3 MiB. */
const PLACES: readonly (Addr & { readonly sizeBytes: number })[] = [
  { pathId: 0, targetId: 0, lun: 0, sizeBytes: 1 << 20 },
  { pathId: 0, targetId: 1, lun: 0, sizeBytes: 2 << 20 },
  { pathId: 1, targetId: 0, lun: 0, sizeBytes: 3 << 20 },
];

/** Addresses next to the configured ones, with no disk. */
const EMPTY: readonly Addr[] = [
  { pathId: 0, targetId: 0, lun: 1 },
  { pathId: 0, targetId: 1, lun: 1 },
  { pathId: 0, targetId: 2, lun: 0 },
  { pathId: 1, targetId: 1, lun: 0 },
  { pathId: 1, targetId: 0, lun: 1 },
  { pathId: 2, targetId: 0, lun: 0 },
];

const name = (a: Addr): string => `${a.pathId}:${a.targetId}:${a.lun}`;

async function boot(): Promise<ScriptedGuest> {
  const g = await bootStorvsp({ disks: PLACES.map((p) => ({ kind: "memory" as const, ...p })) });
  await g.handshake();
  return g;
}

/** What the disk at `a` holds at [lba, lba + blocks), read from its backend, not through the VSP. */
async function onDisk(g: ScriptedGuest, a: Addr, lba: number, blocks: number): Promise<Uint8Array> {
  const out = new Uint8Array(blocks * 512);
  await g.vsp.lunAt(a.lun, a.pathId, a.targetId)!.disk.base.read(lba, blocks, out);
  return out;
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

describe("storvsp routing by path, target and LUN (§3, §6)", () => {
  it("writes different data to 0:0:0, 0:1:0 and 1:0:0 and reads each back from its own disk (fast and long path)", async () => {
    const g = await boot();
    // The same LBAs on every disk, a different pattern per address.
    const fast = PLACES.map((_, i) => pattern(8 * 512, 100 + i));
    const slow = PLACES.map((_, i) => pattern(2 * 512, 200 + i));
    for (const [i, a] of PLACES.entries()) {
      // WRITE(10) with no flag bits: the synchronous fast path.
      const w = await g.srb(buildWriteCdb(10, 8n, 8), { ...a, out: fast[i]! });
      expect(w.srb.srbStatus).toBe(0x01);
      // WRITE(16) with FUA: the long path through `execute`.
      const wf = await g.srb(buildWriteCdb(16, 300n, 2, { fua: true }), { ...a, out: slow[i]! });
      expect(wf.srb.srbStatus).toBe(0x01);
      // The completion echoes the address it served.
      expect([wf.srb.pathId, wf.srb.targetId, wf.srb.lun]).toEqual([a.pathId, a.targetId, a.lun]);
    }
    for (const [i, a] of PLACES.entries()) {
      expect(same(await onDisk(g, a, 8, 8), fast[i]!), `disk ${name(a)} lba 8`).toBe(true);
      expect(same(await onDisk(g, a, 300, 2), slow[i]!), `disk ${name(a)} lba 300`).toBe(true);
      const r = await g.srb(buildReadCdb(10, 8n, 8), { ...a, inLength: 8 * 512 });
      expect(r.srb.srbStatus).toBe(0x01);
      expect(same(r.data, fast[i]!), `read ${name(a)} lba 8`).toBe(true);
      const rf = await g.srb(buildReadCdb(16, 300n, 2, { fua: true }), { ...a, inLength: 2 * 512 });
      expect(same(rf.data, slow[i]!), `read ${name(a)} lba 300`).toBe(true);
      // READ CAPACITY goes the long way too: each address reports its own disk (last LBA, 512).
      const cap = await g.srb(buildReadCapacity10Cdb(), { ...a, inLength: 8 });
      const lastLba = a.sizeBytes / 512 - 1;
      expect(toHex(cap.data)).toBe(toHex(Uint8Array.of(0, 0, lastLba >> 8, lastLba & 0xff, 0, 0, 2, 0)));
      const stats = g.vsp.lunAt(a.lun, a.pathId, a.targetId)!.stats;
      expect([stats.writes, stats.reads, stats.bytesWritten, stats.bytesRead]).toEqual([2, 2, 10 * 512, 10 * 512]);
    }
    expect(g.vsp.counters.errors["invalid-lun"]).toBe(0);
  });

  it("REPORT LUNS lists LUN 0 at each configured (path, target) and nothing at an empty one", async () => {
    const g = await boot();
    for (const a of PLACES) {
      const r = await g.srb(buildReportLunsCdb(64), { ...a, inLength: 64 });
      expect(toHex(r.data.subarray(0, r.srb.dataTransferLength)), name(a)).toBe("00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 00");
    }
    const none = await g.srb(buildReportLunsCdb(64), { pathId: 0, targetId: 2, lun: 0, inLength: 64 });
    expect(toHex(none.data.subarray(0, none.srb.dataTransferLength))).toBe("00 00 00 00 00 00 00 00");
  });

  it("an SRB to an address with no disk gets INVALID_LUN without sense, and moves no byte to or from any disk", async () => {
    const g = await boot();
    const before = await Promise.all(PLACES.map((a) => onDisk(g, a, 0, 16)));
    for (const a of EMPTY) {
      const w = await g.srb(buildWriteCdb(10, 0n, 16), { ...a, out: pattern(16 * 512, 7) });
      // SRB_STATUS_INVALID_LUN (0x20) without AUTOSENSE_VALID, CHECK CONDITION, nothing transferred,
      // NTSTATUS 0xC00000C0 STATUS_DEVICE_DOES_NOT_EXIST; the address is echoed.
      expect(w.srb.srbStatus, name(a)).toBe(0x20);
      expect(w.srb.scsiStatus).toBe(0x02);
      expect(w.srb.dataTransferLength).toBe(0);
      expect(w.sense.length).toBe(0);
      expect(toHex(w.completion.data.subarray(8, 12))).toBe("c0 00 00 c0");
      expect([w.srb.pathId, w.srb.targetId, w.srb.lun]).toEqual([a.pathId, a.targetId, a.lun]);
      const r = await g.srb(buildReadCdb(10, 0n, 16), { ...a, inLength: 16 * 512 });
      expect(r.srb.srbStatus).toBe(0x20);
      expect(r.srb.dataTransferLength).toBe(0);
      expect(r.data.every((b) => b === 0)).toBe(true);
      const tur = await g.srb(buildTestUnitReadyCdb(), a);
      expect(tur.srb.srbStatus).toBe(0x20);
      // INQUIRY alone is answered: peripheral qualifier 3, type 0x1F (no logical unit).
      const inq = await g.srb(buildInquiryCdb(36), { ...a, inLength: 36 });
      expect(inq.srb.srbStatus).toBe(0x01);
      expect(inq.data[0]).toBe(0x7f);
    }
    expect(g.vsp.counters.errors["invalid-lun"]).toBe(3 * EMPTY.length);
    for (const [i, a] of PLACES.entries()) {
      expect(same(await onDisk(g, a, 0, 16), before[i]!), name(a)).toBe(true);
      const stats = g.vsp.lunAt(a.lun, a.pathId, a.targetId)!.stats;
      expect([stats.commands, stats.writes, stats.reads]).toEqual([0, 0, 0]);
    }
  });

  it("an address field outside 0..255 finds no disk rather than another address's (the key packs three bytes)", async () => {
    const g = await boot();
    // 0:0:256 would pack to 0:1:0 — a configured disk — if the fields were not checked.
    expect(g.vsp.lunAt(256, 0, 0)).toBeUndefined();
    expect(g.vsp.lunAt(0, 0, 256)).toBeUndefined();
    expect(g.vsp.removeDisk(256)).toBe(false);
    expect(g.vsp.lunAt(0, 0, 1)).toBeDefined();
  });
});
