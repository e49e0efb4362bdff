/**
 * Threaded mode end to end: the storage sample with the guest (vCPUs,
 * VMBus client, storvsc) in this thread and the host (VMBus server,
 * storvsp) in a worker thread, over one SharedArrayBuffer of guest memory.
 *
 * The same data-integrity check as the deterministic storage test
 * (test/drivers/storvsc/e2e/storage.test.ts): random writes over several
 * disks, channels and vCPUs, then every written block read back, with its
 * neighbours, and compared byte for byte with a model. Then the counters
 * that prove the threads really talked through the link: doorbell rings
 * both ways, mailbox messages, signals, a host thread id that is not ours,
 * and a clean shutdown (report received, worker exited).
 */
import { fileURLToPath } from "node:url";
import { threadId } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { ThreadedSystem, type PluginModuleSpec } from "../../core/index.js";
import { storagePlugin, type ScsiDisk, type StorvscDriver } from "../../drivers/storvsc/index.js";
import { expectCrossThreadTraffic, expectStartFails } from "./link-checks.js";
import { transpiledModules } from "./transpile.js";

const MiB = 1024 * 1024;
const [workerUrl, storageUrl] = transpiledModules([
  fileURLToPath(new URL("../../core/threads/host-worker.ts", import.meta.url)),
  fileURLToPath(new URL("../../drivers/storvsc/index.ts", import.meta.url)),
]) as [URL, URL];
const hostPlugins: PluginModuleSpec[] = [{ module: storageUrl.href, exportName: "storagePlugin" }];

interface ChannelStat {
  readonly requests: number;
}

describe("threaded mode: storvsc in the main thread, storvsp in a worker", () => {
  it("every byte read back is the byte written: random I/O over 2 disks, all channels, 4 vCPUs", async () => {
    const sys = new ThreadedSystem({ seed: 9, plugins: [storagePlugin], hostPlugins, workerUrl }, { name: "vm1", vcpus: 4, memoryBytes: 64 * MiB });
    sys.addHostDevice("storvsp", {
      config: {
        disks: [
          { kind: "memory", sizeBytes: 16 * MiB, lun: 0 },
          { kind: "memory", sizeBytes: 8 * MiB, lun: 1, latency: { readNs: 20_000, writeNs: 40_000, perBlockNs: 100 } },
        ],
      },
    });
    const ready = await sys.start();
    expect(ready.devices.map((d) => d.type)).toEqual(["storvsp"]);
    expect(sys.hostThreadId).not.toBe(threadId);
    let report;
    try {
      await sys.boot();
      const drv = sys.vm.drivers<StorvscDriver>("storvsc")[0]!;
      expect(drv.disks.map((d) => d.lun)).toEqual([0, 1]);
      expect(drv.channels.length).toBeGreaterThanOrEqual(2);
      const vcpus = sys.vm.partition.vcpus;
      const rng = sys.sim.rng.fork("workload");
      const model = new Map<string, Uint8Array>();
      const block = (d: ScsiDisk, lba: number) => model.get(`${d.lun}:${lba}`) ?? new Uint8Array(d.blockSize);
      const SLOT = 64;
      let bytesWritten = 0;
      for (let batch = 0; batch < 10; batch++) {
        const used = new Set<string>();
        const ops: Promise<unknown>[] = [];
        for (let k = 0; k < 12; k++) {
          const d = drv.disks[rng.int(0, 1)]!;
          const slots = Math.min(Number(d.capacityBlocks) / SLOT, 4096);
          const slot = rng.int(0, slots - 1);
          if (used.has(`${d.lun}:${slot}`)) continue;
          used.add(`${d.lun}:${slot}`);
          const start = slot * SLOT + rng.int(0, SLOT / 2);
          const count = rng.int(1, SLOT / 2);
          const data = rng.bytes(count * d.blockSize);
          for (let i = 0; i < count; i++) model.set(`${d.lun}:${start + i}`, data.slice(i * d.blockSize, (i + 1) * d.blockSize));
          bytesWritten += data.length;
          const vcpu = vcpus[rng.int(0, vcpus.length - 1)]!;
          ops.push(vcpu.issue(() => d.write(start, data)));
        }
        await sys.run(Promise.all(ops));
      }
      // Read every written block back, in runs with a neighbour on each side, from all vCPUs.
      const keys = [...model.keys()].map((k) => k.split(":").map(Number) as [number, number]);
      keys.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let checked = 0;
      let mismatches = 0;
      const reads: Promise<void>[] = [];
      for (let i = 0; i < keys.length; ) {
        const [lun, lba] = keys[i]!;
        let n = 1;
        while (i + n < keys.length && keys[i + n]![0] === lun && keys[i + n]![1] === lba + n && n < 64) n++;
        const d = drv.disks.find((x) => x.lun === lun)!;
        const first = lba > 0 ? lba - 1 : lba;
        const count = n + (lba > 0 ? 2 : 1);
        reads.push(
          vcpus[i % vcpus.length]!.issue(() => d.read(first, count)).then((got) => {
            for (let b = 0; b * d.blockSize < got.length; b++) {
              const want = block(d, first + b);
              const have = got.subarray(b * d.blockSize, (b + 1) * d.blockSize);
              if (Buffer.compare(have, want) !== 0) mismatches++;
              checked++;
            }
          }),
        );
        i += n;
      }
      await sys.run(Promise.all(reads));
      expect(mismatches).toBe(0);
      expect(checked).toBeGreaterThan(model.size);
      expect(bytesWritten).toBeGreaterThan(0);
      // Interrupts really arrived on several vCPUs of this thread.
      expect(vcpus.filter((v) => v.counters.vmbusInterrupts > 0).length).toBeGreaterThanOrEqual(2);
      expect(drv.stats.timeouts).toBe(0);
    } finally {
      report = await sys.shutdown();
    }
    // The host thread is another thread, and it answered through the link.
    expectCrossThreadTraffic(report);
    const link = report.link;
    expect(link.hostPolls).toBeGreaterThan(0);
    expect(link.guestPolls).toBeGreaterThan(0);
    // The work went over several channels, without a host-side error.
    const dev = report.host.devices[0]!;
    expect(dev.type).toBe("storvsp");
    const busy = (dev.channelStats as ChannelStat[]).filter((c) => c.requests > 0);
    expect(busy.length).toBeGreaterThanOrEqual(2);
    const errors = (dev.counters as { errors: Record<string, number> }).errors;
    expect(Object.values(errors).reduce((a, b) => a + b, 0)).toBe(0);
    expect(report.host.eventsRun).toBeGreaterThan(0);
  }, 60_000);

  it("unmonitored channels: the guest signals by HVCALL_SIGNAL_EVENT bits, and the data still round-trips", async () => {
    const sys = new ThreadedSystem({ seed: 10, plugins: [storagePlugin], hostPlugins, workerUrl }, { name: "vm1", vcpus: 2, memoryBytes: 32 * MiB });
    sys.addHostDevice("storvsp", { monitored: false, config: { disks: [{ kind: "memory", sizeBytes: 4 * MiB, lun: 0 }, { kind: "memory", sizeBytes: 4 * MiB, lun: 1 }] } });
    await sys.start();
    let report;
    try {
      await sys.boot();
      const drv = sys.vm.drivers<StorvscDriver>("storvsc")[0]!;
      expect(drv.channels).toHaveLength(2);
      const rng = sys.sim.rng.fork("hypercall workload");
      const writes: { d: ScsiDisk; lba: number; data: Uint8Array }[] = [];
      for (let i = 0; i < 40; i++) {
        const d = drv.disks[i % 2]!;
        writes.push({ d, lba: i * 16, data: rng.bytes(8 * d.blockSize) });
      }
      const vcpus = sys.vm.partition.vcpus;
      await sys.run(Promise.all(writes.map((w, i) => vcpus[i % 2]!.issue(() => w.d.write(w.lba, w.data)))));
      const got = await sys.run(Promise.all(writes.map((w, i) => vcpus[(i + 1) % 2]!.issue(() => w.d.read(w.lba, 8)))));
      got.forEach((g, i) => expect(Buffer.compare(g, writes[i]!.data)).toBe(0));
    } finally {
      report = await sys.shutdown();
    }
    expect(report.link.eventSignals).toBeGreaterThan(0);
    expect(report.link.monitorRings).toBe(0);
    const busy = (report.host.devices[0]!.channelStats as ChannelStat[]).filter((c) => c.requests > 0);
    expect(busy.length).toBe(2);
  }, 60_000);

  it("a host plugin that cannot be loaded fails start() with a typed error, and the worker is gone", async () => {
    const sys = new ThreadedSystem(
      { plugins: [storagePlugin], hostPlugins: [{ module: storageUrl.href, exportName: "noSuchPlugin" }], workerUrl },
      { vcpus: 1 },
    );
    sys.addHostDevice("storvsp", { config: { disks: [] } });
    await expectStartFails(sys, "noSuchPlugin");
  }, 30_000);
});
