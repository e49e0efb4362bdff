/**
 * Fault injection: the hypervisor's monitor-page scans come late (a guest's
 * signal on a monitored channel reaches the host only after the monitor
 * latency plus the injected delay).
 */
import { describe, expect, it } from "vitest";
import { Ledger, MS, bootRig, pattern } from "./helpers.js";

describe("monitor scan delay", () => {
  it("a delayed scan delays the host's wakeup by the extra latency; every request completes once, data intact", async () => {
    const plainRig = await bootRig({ seed: 4, vcpus: 1 });
    const t0 = plainRig.sys.sim.now;
    await plainRig.sys.run(plainRig.vms[0]!.disk.write(3, pattern(512, 3, 1)));
    const plain = plainRig.sys.sim.now - t0;

    const { sys, vms } = await bootRig({ seed: 4, vcpus: 1 });
    const { vm, disk, storvsc } = vms[0]!;
    expect(storvsc.channels[0]!.monitorAllocated).toBe(true);
    const f = sys.hv.faults.injectMonitorDelay({ vm: vm.partition, extraLatencyNs: 2 * MS, durationNs: 50 * MS });
    const ledger = new Ledger(sys);
    const t1 = sys.sim.now;
    const w = await sys.run(ledger.track(disk.write(3, pattern(512, 3, 1))));
    expect(w.ok).toBe(true);
    expect(sys.sim.now - t1).toBeGreaterThanOrEqual(plain + 2 * MS);
    expect(f.delayed).toBe(1);
    expect(vm.partition.counters.monitorScansDelayed).toBe(1);
    // A burst: signals folded into one (late) scan still all complete.
    const burst = await sys.run(Promise.all(Array.from({ length: 32 }, (_, i) => ledger.track(disk.write(100 + i, pattern(512, 100 + i, 2))))));
    expect(burst.every((o) => o.ok)).toBe(true);
    const back = await sys.run(ledger.track(disk.read(100, 32)));
    expect(back.ok).toBe(true);
    if (back.ok) for (let i = 0; i < 32; i++) expect(back.value.subarray(i * 512, (i + 1) * 512)).toEqual(pattern(512, 100 + i, 2));
    ledger.expectSettledOnce();
    expect(ledger.completed).toBe(34);
    // After the window, scans are on time again.
    await sys.run(sys.sim.scheduler.sleep(50 * MS));
    expect(sys.hv.faults.monitorRules).toHaveLength(0);
    const before = f.delayed;
    const t2 = sys.sim.now;
    await sys.run(disk.write(3, pattern(512, 3, 3)));
    expect(sys.sim.now - t2).toBe(plain);
    expect(f.delayed).toBe(before);
  });

  it("a low-latency channel bypasses the monitor page, so a monitor fault does not touch it", async () => {
    const { sys, vms } = await bootRig({ seed: 4, vcpus: 1 });
    const { vm, disk, storvsc } = vms[0]!;
    for (const c of storvsc.channels) c.lowLatency = true;
    const f = sys.hv.faults.injectMonitorDelay({ vm: vm.partition, extraLatencyNs: 5 * MS });
    const t0 = sys.sim.now;
    await sys.run(disk.read(0, 1));
    expect(sys.sim.now - t0).toBeLessThan(1 * MS);
    expect(f.seen).toBe(0);
    f.remove();
    expect(f.state).toBe("removed");
    expect(sys.hv.faults.monitorRules).toHaveLength(0);
  });
});
