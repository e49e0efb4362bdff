/**
 * Storage end to end: the storvsc guest driver against the storvsp host
 * device, through the real VMBus control plane, rings and guest memory.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidArgumentError, VmbusSystem } from "../../../../core/index.js";
import {
  DataProtectError,
  IllegalRequestError,
  MediumError,
  StorvscDriver,
  StorvspDevice,
  storagePlugin,
  type RescanResult,
  type ScsiDisk,
} from "../../../../drivers/storvsc/index.js";

const MiB = 1024 * 1024;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function boot(config: unknown, vcpus = 4) {
  const sys = new VmbusSystem({ seed: 2024, plugins: [storagePlugin] });
  const vm = sys.addVm({ name: "vm1", vcpus, memoryBytes: 64 * MiB });
  sys.addHostDevice(vm, "storvsp", { config });
  await sys.boot();
  const drv = vm.drivers<StorvscDriver>("storvsc")[0]!;
  const host = vm.server.devices()[0]!.handler as StorvspDevice;
  return { sys, vm, drv, host };
}

describe("storvsc ↔ storvsp", () => {
  it("every byte read back is the byte written: random I/O over 3 disks, all channels, all vCPUs", async () => {
    const { sys, vm, drv, host } = await boot({
      disks: [
        { kind: "memory", sizeBytes: 32 * MiB, lun: 0 },
        { kind: "memory", sizeBytes: 8 * MiB, lun: 1, latency: { readNs: 20_000, writeNs: 40_000, perBlockNs: 100 } },
        { kind: "memory", sizeBytes: 4 * 1024 * 1024 * MiB, lun: 2 }, // 4 TiB, sparse
      ],
    });
    expect(drv.disks.map((d) => d.lun)).toEqual([0, 1, 2]);
    expect(drv.channels).toHaveLength(4); // primary + min(4 − 1, max) subchannels
    const rng = sys.sim.rng.fork("workload");
    const model = new Map<string, Uint8Array>();
    const block = (d: ScsiDisk, lba: number) => model.get(`${d.lun}:${lba}`) ?? new Uint8Array(d.blockSize);
    const SLOT = 64;
    for (let batch = 0; batch < 12; batch++) {
      const used = new Set<string>();
      const ops: Promise<unknown>[] = [];
      for (let k = 0; k < 8; k++) {
        const d = drv.disks[rng.int(0, 2)]!;
        const slots = Math.min(Number(d.capacityBlocks) / SLOT, 4096);
        const slot = d.lun === 2 ? rng.int(0, 1) * 1_000_000 + rng.int(0, 100) : rng.int(0, slots - 1);
        if (used.has(`${d.lun}:${slot}`)) continue;
        used.add(`${d.lun}:${slot}`);
        const start = slot * SLOT + rng.int(0, SLOT / 2);
        const count = rng.int(1, SLOT / 2);
        const data = rng.bytes(count * d.blockSize);
        for (let i = 0; i < count; i++) model.set(`${d.lun}:${start + i}`, data.slice(i * d.blockSize, (i + 1) * d.blockSize));
        const vcpu = vm.partition.vcpus[rng.int(0, 3)]!;
        ops.push(vcpu.issue(() => d.write(start, data)));
      }
      await sys.run(Promise.all(ops));
    }
    // Read every written block back, in runs, from random vCPUs.
    const keys = [...model.keys()].map((k) => k.split(":").map(Number) as [number, number]);
    keys.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let checked = 0;
    for (let i = 0; i < keys.length; ) {
      const [lun, lba] = keys[i]!;
      let n = 1;
      while (i + n < keys.length && keys[i + n]![0] === lun && keys[i + n]![1] === lba + n && n < 64) n++;
      const d = drv.disks.find((x) => x.lun === lun)!;
      const got = await sys.run(vm.partition.vcpus[i % 4]!.issue(() => d.read(lba - 1 >= 0 ? lba - 1 : lba, n + (lba > 0 ? 2 : 1))));
      const first = lba > 0 ? lba - 1 : lba;
      for (let b = 0; b * d.blockSize < got.length; b++) {
        expect(got.subarray(b * d.blockSize, (b + 1) * d.blockSize)).toEqual(block(d, first + b));
        checked++;
      }
      i += n;
    }
    expect(checked).toBeGreaterThan(model.size);
    // The work really went over several channels.
    const busy = host.channelStats().filter((c) => c.requests > 0);
    expect(busy.length).toBeGreaterThanOrEqual(3);
    expect(Object.values(host.counters.errors as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it("read results are independent arrays, also where small ones share a slab", async () => {
    const { sys, vm, drv } = await boot({ disks: [{ kind: "memory", sizeBytes: 8 * MiB }] }, 1);
    const d = drv.disks[0]!;
    const vcpu = vm.partition.vcpus[0]!;
    // 40 distinct 4 KiB blocks (more than one 64 KiB slab of results), then one 32 KiB read (its own buffer).
    const pattern = (i: number) => new Uint8Array(4096).fill(i + 1);
    for (let i = 0; i < 40; i++) await sys.run(vcpu.issue(() => d.write(i * 8, pattern(i))));
    const reads: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) reads.push(await sys.run(vcpu.issue(() => d.read(i * 8, 8))));
    const big = await sys.run(vcpu.issue(() => d.read(0, 64)));
    for (let i = 0; i < 40; i++) {
      expect(reads[i]!.length).toBe(4096);
      expect(reads[i]!.every((b) => b === i + 1)).toBe(true);
    }
    // Small results share slabs but never overlap: scribbling one leaves every other intact.
    expect(reads[0]!.buffer).toBe(reads[1]!.buffer);
    expect(reads[0]!.buffer.byteLength).toBe(64 * 1024);
    expect(reads[16]!.buffer).not.toBe(reads[15]!.buffer);
    reads[3]!.fill(0xee);
    for (let i = 0; i < 40; i++) if (i !== 3) expect(reads[i]!.every((b) => b === i + 1)).toBe(true);
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(32 * 1024);
    for (let i = 0; i < 8; i++) expect(big.subarray(i * 4096, (i + 1) * 4096).every((b) => b === i + 1)).toBe(true);
    await sys.dispose();
  });

  it("the file backend: data written through the guest is byte-identical in the image file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmbus-sim-"));
    dirs.push(dir);
    const path = join(dir, "disk.img");
    const { sys, drv } = await boot({ disks: [{ kind: "file", path, sizeBytes: 4 * MiB }] }, 2);
    const d = drv.disks[0]!;
    const data = Uint8Array.from({ length: 9 * 512 }, (_, i) => (i * 31 + 7) & 0xff);
    await sys.run(d.write(1000, data));
    await sys.run(d.flush());
    const img = readFileSync(path);
    expect(img.length).toBe(4 * MiB);
    expect(new Uint8Array(img.subarray(1000 * 512, 1009 * 512))).toEqual(data);
    expect(await sys.run(d.read(1000, 9))).toEqual(data);
  });

  it("errors from the target arrive as typed errors; other I/O carries on", async () => {
    const { sys, drv, host } = await boot({
      disks: [
        { kind: "memory", sizeBytes: 1 * MiB, lun: 0, faults: [{ firstLba: 100, count: 10, op: "read", kind: "medium-error" }] },
        { kind: "memory", sizeBytes: 1 * MiB, lun: 1, readOnly: true },
      ],
    });
    const [d0, d1] = drv.disks as [ScsiDisk, ScsiDisk];
    await expect(sys.run(d0.read(105, 1))).rejects.toBeInstanceOf(MediumError);
    await expect(sys.run(d1.write(0, new Uint8Array(512)))).rejects.toBeInstanceOf(DataProtectError);
    // A read past the end never reaches the host: the guest's block layer
    // refuses it (the host's 05/21/00 → IllegalRequestError is the shrink test below).
    const requests = host.counters.requests;
    const past = await sys.run(d0.read(Number(d0.capacityBlocks), 1)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(past).toBeInstanceOf(InvalidArgumentError);
    expect((past as InvalidArgumentError).field).toBe(`${d0.name} read lba + count`);
    expect((past as InvalidArgumentError).value).toBe(2049n);
    expect((past as InvalidArgumentError).limit).toBe("exceeds the capacity of 2048 blocks");
    expect(host.counters.requests).toBe(requests);
    await sys.run(d0.write(5, new Uint8Array(512).fill(7)));
    expect((await sys.run(d0.read(5, 1)))[0]).toBe(7);
  });

  it("a disk added at run time appears after ENUMERATE_BUS and works", async () => {
    const { sys, drv, host } = await boot({ disks: [{ kind: "memory", sizeBytes: 1 * MiB, lun: 0 }] });
    expect(drv.disks).toHaveLength(1);
    const rescanned = new Promise<void>((resolve) => drv.onRescan(() => resolve()));
    host.addDisk({ kind: "memory", sizeBytes: 2 * MiB, lun: 3 });
    await sys.run(rescanned);
    expect(drv.disks.map((d) => d.lun)).toEqual([0, 3]);
    const d3 = drv.disks[1]!;
    await sys.run(d3.write(10, new Uint8Array(1024).fill(3)));
    expect((await sys.run(d3.read(10, 2))).every((x) => x === 3)).toBe(true);
  });
  it("a disk grown by the host (resizeDisk): the next I/O gets 06/2A/09, the guest rescans, capacityBlocks is the new size, I/O past the old end works", async () => {
    const { sys, drv, host } = await boot({ disks: [{ kind: "memory", sizeBytes: 1 * MiB, lun: 0 }] });
    const d = drv.disks[0]!;
    expect(d.capacityBlocks).toBe(2048n);
    const data = Uint8Array.from({ length: 8 * 512 }, (_, i) => (i * 13 + 1) & 0xff);
    await sys.run(d.write(0, data));
    const rescans: RescanResult[] = [];
    drv.onRescan((r) => rescans.push(r));
    const retries = drv.stats.unitAttentionRetries;

    host.resizeDisk(0, 4 * MiB);
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    // Nothing announced it: the guest still has the old size until it talks to the disk.
    expect(d.capacityBlocks).toBe(2048n);
    expect(rescans).toHaveLength(0);
    // This read gets UNIT ATTENTION 2A/09, the driver rescans, then retries it: it succeeds.
    expect(await sys.run(d.read(0, 8))).toEqual(data);
    expect(host.counters.errors["unit-attention"]).toBe(1);
    expect(drv.stats.unitAttentionRetries).toBe(retries + 1);
    expect(rescans).toHaveLength(1);
    expect(rescans[0]!.resized).toEqual([{ disk: d, oldBlocks: 2048n, newBlocks: 8192n }]);
    expect(rescans[0]!.added).toEqual([]);
    expect(rescans[0]!.removed).toEqual([]);
    expect(drv.disks).toEqual([d]);
    expect(d.capacityBlocks).toBe(8192n);
    expect(d.capacityBytes).toBe(BigInt(4 * MiB));
    // Past the old end (2048 blocks), up to the new last block.
    const tail = Uint8Array.from({ length: 16 * 512 }, (_, i) => (i * 7 + 3) & 0xff);
    await sys.run(d.write(8192 - 16, tail));
    expect(await sys.run(d.read(8192 - 16, 16))).toEqual(tail);
    await sys.run(d.write(3000, data));
    expect(await sys.run(d.read(3000, 8))).toEqual(data);
    expect(host.lunAt(0)!.stats.errors).toBe(1);
  });

  it("a disk shrunk under a request: the retried command's 05/21/00 arrives as IllegalRequestError, and the new end holds", async () => {
    const { sys, drv, host } = await boot({ disks: [{ kind: "memory", sizeBytes: 2 * MiB, lun: 0 }] });
    const d = drv.disks[0]!;
    expect(d.capacityBlocks).toBe(4096n);
    host.resizeDisk(0, 1 * MiB);
    // In range for the guest when issued; after the UNIT ATTENTION and the
    // rescan the same READ is past the end, and the host says so.
    const e = await sys.run(d.read(3000, 4)).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(IllegalRequestError);
    const ir = e as IllegalRequestError;
    expect([ir.senseKey, ir.asc, ir.ascq]).toEqual([0x05, 0x21, 0x00]);
    expect(ir.lun).toBe(0);
    expect(ir.lba).toBe(3000n);
    expect(ir.command).toBe("READ(10)");
    expect(ir.srbStatus).toBe(0x86); // INVALID_REQUEST | AUTOSENSE_VALID
    expect(ir.scsiStatus).toBe(0x02);
    expect(d.capacityBlocks).toBe(2048n);
    expect(host.counters.errors["unit-attention"]).toBe(1);
    expect(host.counters.errors["lba-out-of-range"]).toBe(1);
    // The guest now refuses that range itself, and the blocks that remain work.
    await expect(sys.run(d.read(3000, 4))).rejects.toBeInstanceOf(InvalidArgumentError);
    const data = new Uint8Array(512).fill(0x5a);
    await sys.run(d.write(2047, data));
    expect(await sys.run(d.read(2047, 1))).toEqual(data);
  });
});
