/**
 * The SCSI target's fast path (`executeReadWriteFast`) against `execute`
 * (storvsc-netvsc.md §6, §7.1): for random READ/WRITE CDBs — good and bad,
 * with flag bits, out of range, wrong direction, short buffers, read-only
 * and faulty disks — the fast path either declines having changed nothing,
 * or does exactly what `execute` does: the same bytes in the buffer and on
 * the disk, the same transfer, the same statistics.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createDisk, ScsiTarget, SparseMemoryDisk, type ScsiDataBuffer } from "../../../../drivers/storvsc/host/index.js";
import { READ_TYPE, SCSI_STATUS_GOOD, SRB_STATUS_SUCCESS, UNKNOWN_TYPE, WRITE_TYPE } from "../../../../drivers/storvsc/protocol/index.js";

/** A guest buffer as both paths see it: the target's `ScsiDataBuffer` and the fast path's view. */
class GuestBuffer {
  constructor(readonly bytes: Uint8Array) {}
  get length(): number {
    return this.bytes.length;
  }
  read(offset: number, n: number): Uint8Array {
    if (offset + n > this.bytes.length) throw new RangeError("read past the buffer");
    return this.bytes.slice(offset, offset + n);
  }
  write(offset: number, src: Uint8Array, srcOffset = 0, n = src.length - srcOffset): void {
    if (offset + n > this.bytes.length) throw new RangeError("write past the buffer");
    this.bytes.set(src.subarray(srcOffset, srcOffset + n), offset);
  }
  readInto(offset: number, dst: Uint8Array, dstOffset: number, n: number): void {
    if (offset + n > this.bytes.length) throw new RangeError("read past the buffer");
    dst.set(this.bytes.subarray(offset, offset + n), dstOffset);
  }
}

type Spec = Parameters<typeof createDisk>[0];

function target(spec: Spec): ScsiTarget {
  const t = new ScsiTarget({ maxTransferBytes: 256 * 1024 });
  t.attach({ pathId: 0, targetId: 0, lun: 0 }, createDisk(spec), false);
  return t;
}

function cdbBytes(opcode: number, size: 10 | 16, flags: number, lba: number, blocks: number): Uint8Array {
  const cdb = new Uint8Array(size);
  const v = new DataView(cdb.buffer);
  cdb[0] = opcode;
  cdb[1] = flags;
  if (size === 10) {
    v.setUint32(2, lba >>> 0, false);
    v.setUint16(7, blocks & 0xffff, false);
  } else {
    v.setBigUint64(2, BigInt(lba), false);
    v.setUint32(10, blocks >>> 0, false);
  }
  return cdb;
}

describe("ScsiTarget.executeReadWriteFast", () => {
  it("declines or matches execute, byte for byte", async () => {
    const specs: Spec[] = [
      { kind: "memory", sizeBytes: 1 << 20 },
      { kind: "memory", sizeBytes: 1 << 20, blockSize: 4096, chunkBytes: 8192 },
      { kind: "memory", sizeBytes: 1 << 20, readOnly: true },
      { kind: "memory", sizeBytes: 1 << 20, faults: [{ firstLba: 100, count: 4, op: "both", kind: "medium-error" }] },
    ];
    let taken = 0;
    let declined = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: specs.length - 1 }),
        fc.array(
          fc.record({
            opcode: fc.oneof({ arbitrary: fc.constantFrom(0x28, 0x2a, 0x88, 0x8a), weight: 5 }, { arbitrary: fc.constantFrom(0xa8, 0x12), weight: 1 }),
            size: fc.constantFrom<10 | 16>(10, 16),
            flags: fc.oneof({ arbitrary: fc.constant(0), weight: 5 }, { arbitrary: fc.nat({ max: 255 }), weight: 1 }),
            lba: fc.oneof({ arbitrary: fc.nat({ max: 300 }), weight: 5 }, { arbitrary: fc.nat({ max: 2100 }), weight: 2 }, { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 }),
            blocks: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 16 }), weight: 5 }, { arbitrary: fc.nat({ max: 0xffff }), weight: 1 }),
            dataIn: fc.constantFrom(WRITE_TYPE, READ_TYPE, UNKNOWN_TYPE),
            bufferLength: fc.oneof({ arbitrary: fc.constant(-1), weight: 5 }, { arbitrary: fc.nat({ max: 24 * 1024 }), weight: 1 }),
            fill: fc.nat({ max: 255 }),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        async (specIndex, commands) => {
          const spec = specs[specIndex]!;
          const fast = target(spec);
          const slow = target(spec);
          for (const c of commands) {
            const cdb = cdbBytes(c.opcode, c.size, c.flags, c.lba, c.blocks);
            const blockSize = fast.find({ pathId: 0, targetId: 0, lun: 0 })!.backend.blockSize;
            const length = c.bufferLength < 0 ? Math.min(c.blocks * blockSize, 64 * 1024) : c.bufferLength;
            const fastBuffer = new GuestBuffer(new Uint8Array(length).fill(c.fill));
            const slowBuffer = new GuestBuffer(new Uint8Array(length).fill(c.fill));
            const before = fastBuffer.bytes.slice();
            const fastStats = { ...fast.find({ pathId: 0, targetId: 0, lun: 0 })!.stats };
            const n = fast.executeReadWriteFast(0, 0, 0, cdb, 0, cdb.length, c.dataIn, length === 0 ? null : fastBuffer, length);
            const r = await slow.execute({ address: { pathId: 0, targetId: 0, lun: 0 }, cdb, dataIn: c.dataIn, buffer: length === 0 ? null : (slowBuffer as ScsiDataBuffer) });
            if (n < 0) {
              declined++;
              // Declined: nothing changed; the general path answers for both.
              expect(Buffer.compare(fastBuffer.bytes, before)).toBe(0);
              expect(fast.find({ pathId: 0, targetId: 0, lun: 0 })!.stats).toEqual(fastStats);
              const again = await fast.execute({ address: { pathId: 0, targetId: 0, lun: 0 }, cdb, dataIn: c.dataIn, buffer: length === 0 ? null : (fastBuffer as ScsiDataBuffer) });
              expect(again).toEqual(r);
            } else {
              taken++;
              expect(r.srbStatus).toBe(SRB_STATUS_SUCCESS);
              expect(r.scsiStatus).toBe(SCSI_STATUS_GOOD);
              expect(n).toBe(r.transferred);
            }
            expect(Buffer.compare(fastBuffer.bytes, slowBuffer.bytes)).toBe(0);
            const a = fast.find({ pathId: 0, targetId: 0, lun: 0 })!;
            const b = slow.find({ pathId: 0, targetId: 0, lun: 0 })!;
            expect(a.stats).toEqual(b.stats);
            const da = a.disk.base as SparseMemoryDisk;
            const db = b.disk.base as SparseMemoryDisk;
            expect(da.allocatedChunks).toBe(db.allocatedChunks);
            const all = new Uint8Array(da.sizeBytes);
            const all2 = new Uint8Array(db.sizeBytes);
            await da.read(0, da.blockCount, all);
            await db.read(0, db.blockCount, all2);
            // (toEqual on a MiB of typed array is far too slow.)
            expect(Buffer.compare(all, all2)).toBe(0);
          }
        },
      ),
      { numRuns: 100, seed: 20240607 },
    );
    // Both outcomes were really exercised.
    expect(taken).toBeGreaterThan(20);
    expect(declined).toBeGreaterThan(50);
  });

  it("takes the plain commands of the I/O path", async () => {
    const t = target({ kind: "memory", sizeBytes: 1 << 20 });
    const data = new GuestBuffer(new Uint8Array(4096).fill(7));
    expect(t.executeReadWriteFast(0, 0, 0, cdbBytes(0x2a, 10, 0, 8, 8), 0, 10, WRITE_TYPE, data, 4096)).toBe(4096);
    const back = new GuestBuffer(new Uint8Array(4096));
    expect(t.executeReadWriteFast(0, 0, 0, cdbBytes(0x88, 16, 0, 8, 8), 0, 16, READ_TYPE, back, 4096)).toBe(4096);
    expect(back.bytes).toEqual(data.bytes);
    // Another LUN, a pending unit attention, a fault rule: the long way.
    expect(t.executeReadWriteFast(0, 0, 1, cdbBytes(0x28, 10, 0, 8, 8), 0, 10, READ_TYPE, back, 4096)).toBe(-1);
    const lun = t.find({ pathId: 0, targetId: 0, lun: 0 })!;
    lun.disk.faults.addFault({ firstLba: 500, count: 1, op: "read", kind: "medium-error" });
    expect(t.executeReadWriteFast(0, 0, 0, cdbBytes(0x28, 10, 0, 8, 8), 0, 10, READ_TYPE, back, 4096)).toBe(-1);
    lun.disk.faults.clearFaults();
    expect(t.executeReadWriteFast(0, 0, 0, cdbBytes(0x28, 10, 0, 8, 8), 0, 10, READ_TYPE, back, 4096)).toBe(4096);
  });
});
