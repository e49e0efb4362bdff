/**
 * Fault: a throttled guest — every vCPU of a VM suspended for a window
 * (the hypervisor's throttling machinery, forced). Nothing runs on it and
 * its interrupts wait; its I/O completes after the window; the other VM
 * carries on meanwhile.
 */
import { describe, expect, it } from "vitest";
import { Ledger, MS, bootRig, pattern } from "./helpers.js";

describe("forced suspension (throttled guest)", () => {
  it("I/O issued to a suspended VM completes after the window, once each; the other VM's I/O completes during it", async () => {
    const { sys, vms } = await bootRig({ seed: 16, vms: 2 });
    const [a, b] = vms as [(typeof vms)[0], (typeof vms)[0]];
    const t0 = sys.sim.now;
    const f = sys.hv.faults.suspendVm(a.vm.partition, { durationNs: 25 * MS });
    expect(a.vm.partition.suspended).toBe(true);
    expect(a.vm.partition.vcpus.every((v) => v.suspended)).toBe(true);
    const ledger = new Ledger(sys);
    const mine = Array.from({ length: 8 }, (_, lba) => ledger.track(a.vm.partition.vcpus[lba % 2]!.issue(() => a.disk.write(lba, pattern(512, lba, 1)))));
    const theirs = await sys.run(ledger.track(b.vm.partition.vcpus[0]!.issue(() => b.disk.write(0, pattern(512, 0, 2)))));
    expect(theirs.ok).toBe(true);
    expect(theirs.atNs - t0).toBeLessThan(1 * MS);
    const out = await sys.run(Promise.all(mine));
    expect(out.every((o) => o.ok && o.atNs - t0 >= 25 * MS)).toBe(true);
    expect(a.vm.partition.counters.faultSuspensions).toBe(1);
    expect(a.vm.partition.counters.throttledNs).toBe(25 * MS);
    expect(f.activatedAtNs).toBe(t0);
    const back = await sys.run(ledger.track(a.disk.read(0, 8)));
    expect(back.ok).toBe(true);
    if (back.ok) for (let i = 0; i < 8; i++) expect(back.value.subarray(i * 512, (i + 1) * 512)).toEqual(pattern(512, i, 1));
    ledger.expectSettledOnce();
  });

  it("a suspension scheduled later starts at its time; a throttle never shortens it", async () => {
    const { sys, vms } = await bootRig({ seed: 17 });
    const vm = vms[0]!.vm.partition;
    const t0 = sys.sim.now;
    const f = sys.hv.faults.suspendVm(vm, { startNs: t0 + 5 * MS, durationNs: 10 * MS });
    expect(f.state).toBe("scheduled");
    expect(vm.suspended).toBe(false);
    await sys.run(sys.sim.scheduler.sleep(6 * MS));
    expect(f.state).toBe("active");
    expect(vm.suspended).toBe(true);
    expect(vm.vcpus[0]!.suspendedUntil).toBe(t0 + 15 * MS);
    await sys.run(sys.sim.scheduler.sleep(10 * MS));
    expect(vm.suspended).toBe(false);
    expect(f.state).toBe("ended");
  });
});
