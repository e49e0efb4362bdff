/**
 * A capacity change at run time (storvsc-netvsc.md §6 "Capacity change",
 * OV scsidisk's `last_sector_count`): `StorvspDevice.resizeDisk` changes
 * the disk, announces nothing, and the next command to that LUN other than
 * INQUIRY fails once with UNIT ATTENTION 06/2A/09 (REQUEST SENSE returns it
 * as data instead); the new capacity is then what READ CAPACITY reports and
 * what I/O is checked against.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../../core/index.js";
import {
  buildInquiryCdb,
  buildReadCapacity16Cdb,
  buildReadCdb,
  buildRequestSenseCdb,
  buildTestUnitReadyCdb,
  buildWriteCdb,
} from "../../../../drivers/storvsc/protocol/index.js";
import {
  FaultInjectingDisk,
  ScsiTarget,
  SparseMemoryDisk,
  type DiskBackend,
} from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, hex, pattern, toHex, type ScriptedGuest } from "./harness.js";

const MiB = 1 << 20;
/** Fixed sense 06/2A/09 CAPACITY DATA HAS CHANGED, in the 20-byte sense area. */
const CAPACITY_UA = toHex(hex(`70 00 06 00 00 00 00 0a 00 00 00 00 2a 09 00 00 00 00 00 00`));
/** Fixed sense 06/3F/0E REPORTED LUNS DATA HAS CHANGED. */
const LUNS_UA = toHex(hex(`70 00 06 00 00 00 00 0a 00 00 00 00 3f 0e 00 00 00 00 00 00`));

async function ready(disks: unknown[]): Promise<ScriptedGuest> {
  const g = await bootStorvsp({ disks: disks as never });
  await g.handshake();
  return g;
}

/** READ CAPACITY(16): the last LBA. */
async function lastLba(g: ScriptedGuest, lun = 0): Promise<bigint> {
  const r = await g.srb(buildReadCapacity16Cdb(32), { inLength: 32, lun });
  expect(r.srb.srbStatus).toBe(0x01);
  return new DataView(r.data.buffer, r.data.byteOffset).getBigUint64(0, false);
}

function catchError(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

function expectArgError(e: unknown, field: string, value: unknown): void {
  expect(e).toBeInstanceOf(InvalidArgumentError);
  const a = e as InvalidArgumentError;
  expect(a.field).toBe(field);
  expect(a.value).toBe(value);
  expect(a.limit.length).toBeGreaterThan(0);
}

describe("StorvspDevice.resizeDisk (§6 capacity change)", () => {
  it("grows a memory disk: one UNIT ATTENTION 06/2A/09 on the next command (not INQUIRY), then the new capacity and I/O past the old end", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }, { kind: "memory", sizeBytes: 1 * MiB, lun: 1 }]);
    expect(await lastLba(g)).toBe(2047n);
    const data = pattern(8 * 512, 31);
    // Past the old end: refused before the resize.
    const before = await g.srb(buildWriteCdb(10, 3000n, 8), { out: data });
    expect(toHex(before.sense.subarray(0, 14))).toBe("70 00 05 00 00 00 00 0a 00 00 00 00 21 00");

    g.vsp.resizeDisk(0, 2 * MiB);
    await g.settle();
    // Nothing is announced (no ENUMERATE_BUS): the guest learns it from the next command.
    expect(g.unsolicited).toHaveLength(0);
    expect(g.vsp.counters.enumerateBusSent).toBe(0);
    // INQUIRY neither reports nor consumes it.
    const inq = await g.srb(buildInquiryCdb(36), { inLength: 36 });
    expect(inq.srb.srbStatus).toBe(0x01);
    // A READ(10) the fast path would take: CHECK CONDITION, SRB ERROR|AUTOSENSE_VALID, no data, STATUS_IO_DEVICE_ERROR.
    const ua = await g.srb(buildReadCdb(10, 0n, 8), { inLength: 8 * 512 });
    expect(ua.srb.srbStatus).toBe(0x84);
    expect(ua.srb.scsiStatus).toBe(0x02);
    expect(ua.srb.dataTransferLength).toBe(0);
    expect(toHex(ua.sense)).toBe(CAPACITY_UA);
    expect(toHex(ua.completion.data.subarray(8, 12))).toBe("85 01 00 c0");
    // Once: the same command now succeeds; the other LUN never saw a change.
    expect((await g.srb(buildReadCdb(10, 0n, 8), { inLength: 8 * 512 })).srb.srbStatus).toBe(0x01);
    expect((await g.srb(buildTestUnitReadyCdb(), { lun: 1 })).srb.srbStatus).toBe(0x01);
    expect(await lastLba(g)).toBe(4095n);
    expect(await lastLba(g, 1)).toBe(2047n);
    // I/O past the old end works now, and lands there.
    expect((await g.srb(buildWriteCdb(10, 3000n, 8), { out: data })).srb.srbStatus).toBe(0x01);
    const back = await g.srb(buildReadCdb(16, 3000n, 8), { inLength: data.length });
    expect(Buffer.from(back.data).equals(Buffer.from(data))).toBe(true);
    expect(g.vsp.counters.errors["unit-attention"]).toBe(1);
    expect(g.vsp.lunAt(0)!.backend.blockCount).toBe(4096);
  });

  it("REQUEST SENSE returns 06/2A/09 as data (GOOD) and clears it; a pending 06/3F/0E still comes after it", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }]);
    g.vsp.resizeDisk(0, 3 * MiB);
    // Hot add: LUN 0 now also owes 3F/0E.
    g.vsp.addDisk({ kind: "memory", sizeBytes: 1 * MiB, lun: 1 });
    const rs = await g.srb(buildRequestSenseCdb(18), { inLength: 18 });
    expect(rs.srb.srbStatus).toBe(0x01);
    expect(rs.srb.scsiStatus).toBe(0x00);
    expect(toHex(rs.data)).toBe(CAPACITY_UA.slice(0, 18 * 3 - 1));
    const tur = await g.srb(buildTestUnitReadyCdb());
    expect(tur.srb.srbStatus).toBe(0x84);
    expect(toHex(tur.sense)).toBe(LUNS_UA);
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    expect(await lastLba(g)).toBe(6143n);
  });

  it("the capacity UNIT ATTENTION comes before a pending 06/3F/0E, each reported once", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }]);
    g.vsp.addDisk({ kind: "memory", sizeBytes: 1 * MiB, lun: 1 });
    g.vsp.resizeDisk(0, 2 * MiB);
    const senses: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await g.srb(buildTestUnitReadyCdb());
      senses.push(r.srb.srbStatus === 0x01 ? "GOOD" : toHex(r.sense));
    }
    expect(senses).toEqual([CAPACITY_UA, LUNS_UA, "GOOD"]);
  });

  it("several resizes before a command give one UNIT ATTENTION; a size changed and changed back gives none", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }]);
    g.vsp.resizeDisk(0, 2 * MiB);
    g.vsp.resizeDisk(0, 3 * MiB);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(CAPACITY_UA);
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    expect(await lastLba(g)).toBe(6143n);
    // OV compares with the count last reported: there and back is no change.
    g.vsp.resizeDisk(0, 4 * MiB);
    g.vsp.resizeDisk(0, 3 * MiB);
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    expect(g.vsp.counters.errors["unit-attention"]).toBe(1);
  });

  it("shrinking drops the data past the new end: I/O there fails with 05/21/00, and growing again reads zeros there", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }]);
    const mem = g.vsp.lunAt(0)!.disk.base as SparseMemoryDisk;
    const far = pattern(8 * 512, 1);
    const edge = pattern(8 * 512, 2);
    // Chunks are 64 KiB (128 blocks): 1000 is in chunk 7, 500..507 in chunk 3, which the new end (505) cuts.
    expect((await g.srb(buildWriteCdb(10, 1000n, 8), { out: far })).srb.srbStatus).toBe(0x01);
    expect((await g.srb(buildWriteCdb(10, 500n, 8), { out: edge })).srb.srbStatus).toBe(0x01);
    expect(mem.allocatedChunks).toBe(2);
    g.vsp.resizeDisk(0, 505 * 512);
    expect(mem.allocatedChunks).toBe(1);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(CAPACITY_UA);
    expect(await lastLba(g)).toBe(504n);
    const past = await g.srb(buildReadCdb(10, 1000n, 8), { inLength: 8 * 512 });
    expect(toHex(past.sense.subarray(0, 14))).toBe("70 00 05 00 00 00 00 0a 00 00 00 00 21 00");
    const straddle = await g.srb(buildReadCdb(10, 500n, 8), { inLength: 8 * 512 });
    expect(straddle.sense[12]).toBe(0x21);
    const kept = await g.srb(buildReadCdb(10, 500n, 5), { inLength: 5 * 512 });
    expect(Buffer.from(kept.data).equals(Buffer.from(edge.subarray(0, 5 * 512)))).toBe(true);

    g.vsp.resizeDisk(0, 1 * MiB);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(CAPACITY_UA);
    const regrown = await g.srb(buildReadCdb(10, 500n, 8), { inLength: 8 * 512 });
    expect(Buffer.from(regrown.data.subarray(0, 5 * 512)).equals(Buffer.from(edge.subarray(0, 5 * 512)))).toBe(true);
    expect(regrown.data.subarray(5 * 512).every((b) => b === 0)).toBe(true);
    const farAgain = await g.srb(buildReadCdb(10, 1000n, 8), { inLength: 8 * 512 });
    expect(farAgain.srb.srbStatus).toBe(0x01);
    expect(farAgain.data.every((b) => b === 0)).toBe(true);
  });

  it("refuses a bad address, size or backend with InvalidArgumentError naming field and value, changing nothing", async () => {
    const g = await ready([{ kind: "memory", sizeBytes: 1 * MiB }]);
    expectArgError(catchError(() => g.vsp.resizeDisk(5, 2 * MiB)), "address", "0:0:5");
    expectArgError(catchError(() => g.vsp.resizeDisk(256, 2 * MiB)), "lun", 256);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, 2 * MiB, -1)), "pathId", -1);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, 2 * MiB, 0, 1.5)), "targetId", 1.5);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, 1000)), "newSizeBytes", 1000);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, 0)), "newSizeBytes", 0);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, Number.NaN)), "newSizeBytes", Number.NaN);
    // Nothing changed: no unit attention, the same capacity.
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    expect(await lastLba(g)).toBe(2047n);
  });

  it("refuses a backend that cannot change size, naming the disk", () => {
    /** A disk of fixed size: a DiskBackend without `resize`. */
    class FixedDisk implements DiskBackend {
      readonly description = "fixed test disk";
      readonly blockSize = 512;
      readonly blockCount = 64;
      readonly readOnly = false;
      readonly unmapGranularity = 1;
      async read(): Promise<void> {}
      async write(): Promise<void> {}
      async flush(): Promise<void> {}
      async unmap(): Promise<void> {}
      close(): void {}
    }
    const target = new ScsiTarget({ maxTransferBytes: 1 << 18 });
    const base = new FixedDisk();
    const faults = new FaultInjectingDisk(base);
    target.attach({ pathId: 0, targetId: 0, lun: 0 }, { spec: { kind: "memory", sizeBytes: 64 * 512 }, backend: faults, faults, base, latency: null }, false);
    expectArgError(catchError(() => target.resize({ pathId: 0, targetId: 0, lun: 0 }, 128 * 512)), "disk", "fixed test disk");
    expect(target.find({ pathId: 0, targetId: 0, lun: 0 })!.reportedBlockCount).toBe(64);
  });
});

describe("resizeDisk on an image file", () => {
  let dir = "";
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "storvsp-resize-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("sets the image file to the new size: grown blocks hold the guest's data at their offset, shrinking cuts the file", async () => {
    const path = join(dir, "grow.img");
    const g = await ready([{ kind: "file", path, sizeBytes: 1 * MiB }]);
    g.vsp.resizeDisk(0, 2 * MiB);
    expect(statSync(path).size).toBe(2 * MiB);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(CAPACITY_UA);
    const data = pattern(4 * 512, 77);
    expect((await g.srb(buildWriteCdb(10, 3000n, 4), { out: data })).srb.srbStatus).toBe(0x01);
    expect(Buffer.from(readFileSync(path).subarray(3000 * 512, 3004 * 512)).equals(Buffer.from(data))).toBe(true);
    g.vsp.resizeDisk(0, 1 * MiB);
    expect(statSync(path).size).toBe(1 * MiB);
    expect(toHex((await g.srb(buildTestUnitReadyCdb())).sense)).toBe(CAPACITY_UA);
    expect(await lastLba(g)).toBe(2047n);
    g.vsp.dispose();
  });

  it("refuses a read-only image (field disk.readOnly) and leaves the file as it was", async () => {
    const path = join(dir, "ro.img");
    const w = await ready([{ kind: "file", path, sizeBytes: 1 * MiB }]);
    w.vsp.dispose();
    const g = await ready([{ kind: "file", path, readOnly: true }]);
    expectArgError(catchError(() => g.vsp.resizeDisk(0, 2 * MiB)), "disk.readOnly", true);
    expect(statSync(path).size).toBe(1 * MiB);
    expect((await g.srb(buildTestUnitReadyCdb())).srb.srbStatus).toBe(0x01);
    expect(toHex((await g.srb(buildReadCapacity16Cdb(12), { inLength: 12 })).data)).toBe(toHex(hex(`00 00 00 00 00 00 07 ff 00 00 02 00`)));
    g.vsp.dispose();
  });
});
