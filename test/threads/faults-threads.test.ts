/**
 * Threaded mode with faults the host thread injects into its hypervisor
 * (`ThreadedSystemOptions.hostFaults`, core/threads/host-faults.ts): the
 * storage sample keeps every byte right while channel interrupts are
 * delayed or dropped, monitor scans come late and storvsp stalls, and the
 * host report says what each fault did.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ThreadedSystem, type HostFaultSpec, type PluginModuleSpec } from "../../core/index.js";
import { storagePlugin, type StorvscDriver } from "../../drivers/storvsc/index.js";
import { expectCrossThreadTraffic, expectStartFails } from "./link-checks.js";
import { transpiledModules } from "./transpile.js";

const MiB = 1024 * 1024;
const [workerUrl, storageUrl] = transpiledModules([
  fileURLToPath(new URL("../../core/threads/host-worker.ts", import.meta.url)),
  fileURLToPath(new URL("../../drivers/storvsc/index.ts", import.meta.url)),
]) as [URL, URL];
const hostPlugins: PluginModuleSpec[] = [{ module: storageUrl.href, exportName: "storagePlugin" }];

function system(seed: number, hostFaults: readonly HostFaultSpec[]): ThreadedSystem {
  const sys = new ThreadedSystem({ seed, plugins: [storagePlugin], hostPlugins, hostFaults, workerUrl }, { name: "vm1", vcpus: 4, memoryBytes: 64 * MiB });
  sys.addHostDevice("storvsp", { config: { disks: [{ kind: "memory", sizeBytes: 16 * MiB }] } });
  return sys;
}

/** Writes distinct patterns from every vCPU, reads them back, checks every byte; returns the I/Os done. */
async function writeAndVerify(sys: ThreadedSystem, rounds: number): Promise<number> {
  const disk = sys.vm.drivers<StorvscDriver>("storvsc")[0]!.disks[0]!;
  const vcpus = sys.vm.partition.vcpus;
  const rng = sys.sim.rng.fork("faults workload");
  let ios = 0;
  for (let round = 0; round < rounds; round++) {
    const writes = vcpus.map((v, i) => {
      const lba = (round * vcpus.length + i) * 16;
      const data = rng.bytes(8 * 512);
      return { v, lba, data };
    });
    await sys.run(Promise.all(writes.map((w) => w.v.issue(() => disk.write(w.lba, w.data)))));
    const back = await sys.run(Promise.all(writes.map((w, i) => vcpus[(i + 1) % vcpus.length]!.issue(() => disk.read(w.lba, 8)))));
    back.forEach((b, i) => expect(Buffer.from(b).equals(Buffer.from(writes[i]!.data))).toBe(true));
    ios += 2 * writes.length;
  }
  return ios;
}

describe("threaded mode: faults injected by the host thread", () => {
  it("delayed interrupts, late monitor scans and a storvsp stall: every byte right, and the report counts each fault", async () => {
    const sys = system(31, [
      { kind: "interrupt", delayNs: 200_000 },
      { kind: "monitor", extraLatencyNs: 150_000 },
      // From the host thread's start: the guest's bring-up waits for it.
      { kind: "host-stall", device: 0, durationNs: 20_000_000 },
    ]);
    await sys.start();
    let report;
    try {
      await sys.boot();
      expect(await writeAndVerify(sys, 6)).toBe(48);
    } finally {
      report = await sys.shutdown();
    }
    expectCrossThreadTraffic(report);
    const [interrupt, monitor, stall] = report.host.faults.injected;
    expect(interrupt).toMatchObject({ kind: "interrupt", state: "active", endedAtNs: null });
    expect(interrupt!.counters["delayed"]).toBeGreaterThan(0);
    expect(interrupt!.counters["delayed"]).toBe(interrupt!.counters["seen"]);
    expect(interrupt!.counters["dropped"]).toBe(0);
    expect(monitor).toMatchObject({ kind: "monitor", state: "active" });
    expect(monitor!.counters["delayed"]).toBeGreaterThan(0);
    expect(stall).toMatchObject({ kind: "host-stall", state: "ended", activatedAtNs: 0, endedAtNs: 20_000_000 });
    expect(report.host.faults.totals).toMatchObject({ hostStalls: 1, interruptsDropped: 0, interruptsDelayed: interrupt!.counters["delayed"] });
  }, 60_000);

  it("dropped interrupts: the guest's lost-interrupt watchdog finds the work, and nothing is lost", async () => {
    const sys = system(32, [{ kind: "interrupt", dropProbability: 0.5 }]);
    await sys.start();
    // Before the channels open: every channel gets the watchdog.
    sys.vm.client.setLostInterruptWatchdog(500_000);
    let report;
    let recoveries = 0;
    try {
      await sys.boot();
      expect(await writeAndVerify(sys, 4)).toBe(32);
      recoveries = sys.vm.drivers<StorvscDriver>("storvsc")[0]!.channels.reduce((n, c) => n + c.watchdogRecoveries, 0);
    } finally {
      report = await sys.shutdown();
    }
    const [drop] = report.host.faults.injected;
    expect(drop!.counters["dropped"]).toBeGreaterThan(0);
    expect(drop!.counters["seen"]).toBeGreaterThan(drop!.counters["dropped"]!);
    expect(report.host.faults.totals.interruptsDropped).toBe(drop!.counters["dropped"]);
    expect(recoveries).toBeGreaterThan(0);
  }, 60_000);

  it("a bad fault spec fails start() with a typed error naming it, and the worker is gone", async () => {
    const sys = system(33, [{ kind: "host-stall", device: 0 }, { kind: "host-stall", device: 3 } as HostFaultSpec]);
    await expectStartFails(sys, "hostFaults[1].device=3");
  }, 30_000);
});
