import { describe, expect, it } from "vitest";
import { Hypervisor, signalChannel, type ChannelSignalTarget, type SignalVia } from "../../core/hv/index.js";
import { Simulation } from "../../core/sim/index.js";
import type { MonitorScanTraceEvent } from "../../core/trace/index.js";

const CONN = 0x2001;

function setup() {
  const sim = new Simulation({ seed: 3 });
  const hv = new Hypervisor(sim);
  const vm = hv.createVm({ vcpuCount: 2 });
  const wakeups: { t: number; via: SignalVia }[] = [];
  hv.connectEvent(vm, CONN, (_vm, cid, via) => {
    expect(cid).toBe(CONN);
    wakeups.push({ t: sim.now, via });
  });
  vm.monitor.configure(37, { connectionId: CONN }); // default latency: 100 µs
  return { sim, hv, vm, wakeups };
}

describe("monitor page batching", () => {
  it("folds N guest signals inside one window into exactly one host wakeup at exactly the latency", async () => {
    const { sim, vm, wakeups } = setup();
    const scans: MonitorScanTraceEvent[] = [];
    sim.tracer.on("monitorScan", (e) => scans.push(e));
    const target: ChannelSignalTarget = { connectionId: CONN, monitorId: 37, lowLatency: false };
    const N = 25;
    const start = 7_000;
    for (let i = 0; i < N; i++) {
      sim.scheduler.schedule(start + i * 3_000, () => {
        expect(signalChannel(vm.vcpus[i % 2]!, target)).toBe("monitor");
      });
    }
    await sim.scheduler.runUntilIdle();
    expect(wakeups).toEqual([{ t: start + 100_000, via: "monitor" }]);
    expect(vm.counters.monitorTriggers).toBe(N);
    expect(vm.counters.guestSignalsViaMonitor).toBe(N);
    expect(vm.counters.monitorScans).toBe(1);
    expect(vm.counters.monitorWakeups).toBe(1);
    expect(vm.counters.hostWakeups).toBe(1);
    expect(vm.counters.hypercalls.total).toBe(0);
    expect(vm.monitor.isPending(37)).toBe(false); // the scan cleared it
    expect(scans).toEqual([
      { timeNs: start + 100_000, partitionId: vm.id, vpIndex: null, monitorId: 37, connectionId: CONN, triggers: N, wakeup: true },
    ]);
  });

  it("opens a new window for a signal after the scan", async () => {
    const { sim, vm, wakeups } = setup();
    const target: ChannelSignalTarget = { connectionId: CONN, monitorId: 37, lowLatency: false };
    for (const t of [0, 50_000, 100_000, 150_000]) sim.scheduler.schedule(t, () => void signalChannel(vm.vcpus[0]!, target));
    await sim.scheduler.runUntilIdle();
    // Window 1 [0, 100 µs]: signals at 0, 50 µs and — same instant as the scan but scheduled
    // earlier — 100 µs. Window 2 opens at 150 µs.
    expect(wakeups.map((w) => w.t)).toEqual([100_000, 250_000]);
  });

  it("uses the channel's latency entry (100 ns units)", async () => {
    const { sim, vm, wakeups } = setup();
    vm.monitor.configure(37, { connectionId: CONN, latency: 50 }); // 5 µs
    signalChannel(vm.vcpus[0]!, { connectionId: CONN, monitorId: 37, lowLatency: false });
    await sim.scheduler.runUntilIdle();
    expect(wakeups.map((w) => w.t)).toEqual([5_000]);
  });

  it("bypasses the page for a low-latency channel: N signals → N SIGNAL_EVENT hypercalls", async () => {
    const { sim, vm, wakeups } = setup();
    const target: ChannelSignalTarget = { connectionId: CONN, monitorId: 37, lowLatency: true };
    const N = 12;
    for (let i = 0; i < N; i++) {
      sim.scheduler.schedule(i * 10_000, () => {
        expect(signalChannel(vm.vcpus[1]!, target)).toBe("hypercall");
      });
    }
    await sim.scheduler.runUntilIdle();
    expect(vm.counters.hypercalls.signalEvent).toBe(N);
    expect(vm.vcpus[1]!.counters.hypercalls.signalEvent).toBe(N);
    expect(vm.counters.guestSignalsViaHypercall).toBe(N);
    expect(vm.counters.monitorTriggers).toBe(0);
    expect(vm.monitor.isPending(37)).toBe(false);
    // Each wakes the host after hypercall + interrupt latency.
    const lat = sim.costs.hypercallNs + sim.costs.interruptDeliveryNs;
    expect(wakeups.map((w) => w.t)).toEqual(Array.from({ length: N }, (_, i) => i * 10_000 + lat));
    expect(wakeups.every((w) => w.via === "hypercall")).toBe(true);
  });

  it("a channel without a monitor id always uses the hypercall; back-to-back signals coalesce into one wakeup", async () => {
    const { sim, vm, wakeups } = setup();
    for (let i = 0; i < 5; i++) signalChannel(vm.vcpus[0]!, { connectionId: CONN, monitorId: undefined, lowLatency: false });
    await sim.scheduler.runUntilIdle();
    expect(vm.counters.hypercalls.signalEvent).toBe(5);
    expect(wakeups).toHaveLength(1);
  });

  it("drops pending bits of disarmed entries or unknown connections at the scan, without waking anyone", async () => {
    const { sim, hv, vm, wakeups } = setup();
    vm.monitor.configure(38, { connectionId: 0x3333 }); // no such event connection
    vm.monitor.trigger(38);
    vm.monitor.trigger(37);
    vm.monitor.unconfigure(37);
    await sim.scheduler.runUntilIdle();
    expect(wakeups).toHaveLength(0);
    expect(vm.counters.monitorDropped).toBe(2);
    expect(vm.monitor.isPending(37)).toBe(false);
    expect(vm.monitor.isArmed(37)).toBe(false);
    // Disarmed: a trigger leaves the bit set and arms no scan.
    vm.monitor.trigger(37);
    expect(sim.scheduler.pendingEvents).toBe(0);
    expect(vm.monitor.isPending(37)).toBe(true);
    expect(hv.vms).toHaveLength(1);
  });
});
