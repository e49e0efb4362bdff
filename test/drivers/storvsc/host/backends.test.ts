/**
 * Disk backends alone: the sparse memory disk (against a flat model), the
 * read-only, latency and fault wrappers, and the spec factory's validation
 * (errors name the field).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VmbusSystem } from "../../../../core/index.js";
import {
  type DelayScheduler,
  DiskMediumError,
  DiskRangeError,
  DiskSpecError,
  DiskWriteProtectedError,
  FaultInjectingDisk,
  LatencyDisk,
  ReadOnlyDisk,
  SparseMemoryDisk,
  createDisk,
  validateDiskSpec,
  validateStorvspConfig,
} from "../../../../drivers/storvsc/host/index.js";
import { pattern, storvspPlugin } from "./harness.js";

describe("SparseMemoryDisk", () => {
  it("allocates only written chunks; zeros into a hole allocate nothing; unmap drops whole chunks and zeroes partial ones", async () => {
    const d = new SparseMemoryDisk({ sizeBytes: 2 ** 40, blockSize: 512, chunkBytes: 4096 });
    expect(d.blockCount).toBe(2 ** 31);
    await d.write(6, pattern(2048, 1)); // blocks 6..9: chunk 0 (6,7) and chunk 1 (8,9)
    expect(d.allocatedChunks).toBe(2);
    await d.write(2 ** 31 - 8, new Uint8Array(4096));
    expect(d.allocatedChunks).toBe(2);
    const back = new Uint8Array(2048);
    await d.read(6, 4, back);
    expect(Buffer.from(back).equals(Buffer.from(pattern(2048, 1)))).toBe(true);
    await d.unmap(8, 8); // the whole of chunk 1
    expect(d.allocatedChunks).toBe(1);
    await d.unmap(7, 1); // part of chunk 0: zeroed, chunk kept (block 6 still has data)
    expect(d.allocatedChunks).toBe(1);
    await d.read(6, 4, back);
    expect(Buffer.from(back.subarray(0, 512)).equals(Buffer.from(pattern(2048, 1).subarray(0, 512)))).toBe(true);
    expect(back.subarray(512).every((b) => b === 0)).toBe(true);
    await d.unmap(6, 1); // the chunk is all zeros now: dropped
    expect(d.allocatedChunks).toBe(0);
    await expect(d.read(2 ** 31 - 1, 2, new Uint8Array(1024))).rejects.toThrow(DiskRangeError);
    await expect(d.write(0, new Uint8Array(100))).rejects.toThrow(DiskRangeError);
  });

  it("behaves like a flat byte array under any sequence of writes, unmaps and reads", async () => {
    const blocks = 64;
    const op = fc.oneof(
      fc.record({ kind: fc.constant("write" as const), lba: fc.nat(blocks - 1), count: fc.integer({ min: 1, max: 12 }), seed: fc.nat(), zero: fc.boolean() }),
      fc.record({ kind: fc.constant("unmap" as const), lba: fc.nat(blocks - 1), count: fc.integer({ min: 1, max: 20 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const d = new SparseMemoryDisk({ sizeBytes: blocks * 512, chunkBytes: 2048 });
        const model = new Uint8Array(blocks * 512);
        const touched = new Set<number>();
        for (const o of ops) {
          const count = Math.min(o.count, blocks - o.lba);
          if (o.kind === "write") {
            const data = o.zero ? new Uint8Array(count * 512) : pattern(count * 512, o.seed + 1);
            if (!o.zero) for (let b = o.lba; b < o.lba + count; b++) touched.add(Math.floor(b / 4));
            await d.write(o.lba, data);
            model.set(data, o.lba * 512);
          } else {
            await d.unmap(o.lba, count);
            model.fill(0, o.lba * 512, (o.lba + count) * 512);
          }
        }
        const all = new Uint8Array(blocks * 512);
        await d.read(0, blocks, all);
        expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
        // Sparse: a chunk no non-zero write ever touched is never allocated.
        expect(d.allocatedChunks).toBeLessThanOrEqual(touched.size);
      }),
      { numRuns: 200 },
    );
  });
});

describe("wrappers", () => {
  it("ReadOnlyDisk refuses writes and unmaps with DiskWriteProtectedError, passes reads", async () => {
    const inner = new SparseMemoryDisk({ sizeBytes: 1 << 20 });
    await inner.write(0, pattern(512, 3));
    const ro = new ReadOnlyDisk(inner);
    expect(ro.readOnly).toBe(true);
    await expect(ro.write(0, new Uint8Array(512))).rejects.toThrow(DiskWriteProtectedError);
    await expect(ro.unmap(0, 1)).rejects.toThrow(DiskWriteProtectedError);
    const b = new Uint8Array(512);
    await ro.read(0, 1, b);
    expect(Buffer.from(b).equals(Buffer.from(pattern(512, 3)))).toBe(true);
  });

  it("LatencyDisk sleeps base + per-block ns on the scheduler before each operation", async () => {
    const sleeps: [number, string | undefined][] = [];
    const sched: DelayScheduler = { sleep: (ns, label) => (sleeps.push([ns, label]), Promise.resolve()) };
    const d = new LatencyDisk(new SparseMemoryDisk({ sizeBytes: 1 << 20 }), sched, { readNs: 100, writeNs: 200, perBlockNs: 10, flushNs: 5000 });
    await d.read(0, 4, new Uint8Array(2048));
    await d.write(0, new Uint8Array(1024));
    await d.unmap(0, 3);
    await d.flush();
    expect(sleeps).toEqual([
      [140, "disk read"],
      [220, "disk write"],
      [230, "disk unmap"],
      [5000, "disk flush"],
    ]);
    expect(d.delayedNs).toBe(5590);
    expect(() => new LatencyDisk(d, sched, { readNs: -1 })).toThrow(/latency\.readNs=-1/);
  });

  it("LatencyDisk in a real simulation moves virtual time only", async () => {
    const sys = new VmbusSystem({ seed: 1 });
    const d = new LatencyDisk(new SparseMemoryDisk({ sizeBytes: 1 << 20 }), sys.sim.scheduler, { writeNs: 1_000_000, perBlockNs: 1000 });
    await sys.run(d.write(0, new Uint8Array(8 * 512)));
    expect(sys.sim.now).toBe(1_008_000);
  });

  it("FaultInjectingDisk: read/write/both rules, first bad LBA, hits, run-time changes", async () => {
    const f = new FaultInjectingDisk(new SparseMemoryDisk({ sizeBytes: 1 << 20 }), [
      { firstLba: 10, count: 5, op: "read", kind: "medium-error" },
      { firstLba: 12, count: 1, op: "both", kind: "medium-error" },
    ]);
    const e = await f.read(8, 8, new Uint8Array(4096)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DiskMediumError);
    expect(e).toMatchObject({ op: "read", lba: 10 });
    expect(f.faults.map((r) => r.hits)).toEqual([1, 1]);
    const w = await f.write(11, new Uint8Array(1024)).catch((x: unknown) => x);
    expect(w).toMatchObject({ op: "write", lba: 12 });
    await f.write(10, new Uint8Array(1024)); // the read rule does not fault writes
    const id = f.addFault({ firstLba: 0, count: 1, op: "write", kind: "medium-error" });
    await expect(f.write(0, new Uint8Array(512))).rejects.toThrow(/unrecovered write error at lba 0/);
    expect(f.removeFault(id)).toBe(true);
    expect(f.removeFault(id)).toBe(false);
    await f.write(0, new Uint8Array(512));
    f.clearFaults();
    await f.read(8, 8, new Uint8Array(4096));
    expect(f.injected).toBe(3);
    expect(() => f.addFault({ firstLba: 2047, count: 2, op: "read", kind: "medium-error" })).toThrow(/must be at most the block count 2048/);
  });
});

describe("disk specs and the controller config", () => {
  const bad: [unknown, RegExp][] = [
    [null, /^disk=null: must be an object/],
    [{ kind: "tape", sizeBytes: 512 }, /disk\.kind="tape"/],
    [{ kind: "memory" }, /disk\.sizeBytes=undefined: is required/],
    [{ kind: "memory", sizeBytes: 1000 }, /disk\.sizeBytes=1000: must be a positive safe integer, a multiple of blockSize 512/],
    [{ kind: "memory", sizeBytes: 4096, blockSize: 1000 }, /disk\.blockSize=1000/],
    [{ kind: "memory", sizeBytes: 4096, readonly: true }, /disk\.readonly=true: is not a known field/],
    [{ kind: "memory", sizeBytes: 4096, latency: { readNs: -5 } }, /disk\.latency\.readNs=-5/],
    [{ kind: "memory", sizeBytes: 4096, latency: { readNS: 5 } }, /disk\.latency\.readNS=5: is not a known field/],
    [{ kind: "memory", sizeBytes: 4096, faults: [{ firstLba: 0, count: 1, op: "read", kind: "bit-rot" }] }, /disk\.faults\[0\]\.kind="bit-rot"/],
    [{ kind: "memory", sizeBytes: 4096, faults: [{ firstLba: 0, count: 0, op: "read", kind: "medium-error" }] }, /disk\.faults\[0\]\.count=0/],
    [{ kind: "memory", sizeBytes: 4096, lun: 256 }, /disk\.lun=256: must be an integer in \[0, 255\]/],
    [{ kind: "memory", sizeBytes: 4096, serial: "tab\there" }, /disk\.serial/],
    [{ kind: "file", path: "" }, /disk\.path="": must be a non-empty string/],
    [{ kind: "memory", sizeBytes: 4096, chunkBytes: 3000 }, /disk\.chunkBytes=3000/],
  ];
  it.each(bad)("refuses %j naming the field", (spec, message) => {
    expect(() => validateDiskSpec(spec)).toThrow(DiskSpecError);
    expect(() => validateDiskSpec(spec)).toThrow(message);
  });

  it("refuses faults past the disk and latency without a scheduler, naming the field", () => {
    expect(() => createDisk({ kind: "memory", sizeBytes: 4096, faults: [{ firstLba: 7, count: 2, op: "read", kind: "medium-error" }] }, { where: "disks[2]" })).toThrow(
      /disks\[2\]\.faults\[0\]/,
    );
    expect(() => createDisk({ kind: "memory", sizeBytes: 4096, latency: { readNs: 1 } })).toThrow(/disk\.latency.*needs a scheduler/);
  });

  it("builds the stack latency → read-only → faults → base", () => {
    const sys = new VmbusSystem({ seed: 1 });
    const s = createDisk({ kind: "memory", sizeBytes: 1 << 20, readOnly: true, latency: { readNs: 5 } }, { scheduler: sys.sim.scheduler });
    expect(s.backend).toBe(s.latency);
    expect(s.latency!.inner).toBeInstanceOf(ReadOnlyDisk);
    expect((s.latency!.inner as ReadOnlyDisk).inner).toBe(s.faults);
    expect(s.faults.inner).toBe(s.base);
    expect(s.backend.readOnly).toBe(true);
  });

  it("validates the controller config: defaults, unknown keys, versions, and disk errors with their index", () => {
    expect(validateStorvspConfig(undefined)).toEqual({ disks: [], maxSubchannels: 8, queueDepth: 256, protocolMax: 0x0602 });
    expect(() => validateStorvspConfig({ queueDepth: 0 })).toThrow(/storvsp config\.queueDepth=0/);
    expect(() => validateStorvspConfig({ protocolMax: 0x0700 })).toThrow(/storvsp config\.protocolMax=1792/);
    expect(() => validateStorvspConfig({ disk: [] })).toThrow(/storvsp config\.disk=\[array\]: is not a known field/);
    const sys = new VmbusSystem({ seed: 1, plugins: [storvspPlugin()] });
    const vm = sys.addVm();
    const config = { disks: [{ kind: "memory", sizeBytes: 4096 }, { kind: "memory", sizeBytes: 4096, latency: { writeNs: 1.5 } }] };
    expect(() => sys.addHostDevice(vm, "storvsp", { config })).toThrow(/disks\[1\]\.latency\.writeNs=1\.5/);
    const dup = { disks: [{ kind: "memory", sizeBytes: 4096, lun: 2 }, { kind: "memory", sizeBytes: 4096, lun: 2 }] };
    expect(() => sys.addHostDevice(vm, "storvsp", { config: dup })).toThrow(/disks\[1\]\.lun=2: is already used/);
  });
});
