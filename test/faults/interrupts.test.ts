/**
 * Fault injection: host → guest channel interrupts dropped or delayed
 * (core/hv/faults.ts), and the guest's lost-interrupt watchdog that makes
 * outstanding work end in bounded virtual time anyway.
 */
import { describe, expect, it } from "vitest";
import { FaultSpecError, InvalidArgumentError } from "../../core/index.js";
import { StorvscTimeoutError } from "../../drivers/storvsc/index.js";
import { Ledger, MS, US, bootRig, pattern } from "./helpers.js";

/** Writes blocks 0..n-1 then reads them back, `qd` at a time, from every vCPU; returns the ledger. */
async function writeThenRead(rig: Awaited<ReturnType<typeof bootRig>>, n: number, gen: number) {
  const { sys, vms } = rig;
  const { vm, disk } = vms[0]!;
  const ledger = new Ledger(sys);
  const vcpus = vm.partition.vcpus;
  await sys.run(Promise.all(Array.from({ length: n }, (_, lba) => ledger.track(vcpus[lba % vcpus.length]!.issue(() => disk.write(lba, pattern(disk.blockSize, lba, gen)))))));
  const reads = await sys.run(Promise.all(Array.from({ length: n }, (_, lba) => ledger.track(vcpus[lba % vcpus.length]!.issue(() => disk.read(lba, 1))))));
  return { ledger, reads };
}

describe("interrupt faults", () => {
  it("no fault configured: the hooks see empty rule lists, nothing is counted, and two runs are identical", async () => {
    const a = await bootRig({ seed: 3 });
    expect(a.sys.hv.faults.interruptRules).toHaveLength(0);
    expect(a.sys.hv.faults.monitorRules).toHaveLength(0);
    const ra = await writeThenRead(a, 32, 1);
    const b = await bootRig({ seed: 3 });
    const rb = await writeThenRead(b, 32, 1);
    expect(a.sys.sim.now).toBe(b.sys.sim.now);
    expect(a.sys.sim.scheduler.eventsRun).toBe(b.sys.sim.scheduler.eventsRun);
    expect(ra.ledger.completed).toBe(64);
    expect(rb.ledger.completed).toBe(64);
    expect(a.vms[0]!.vm.partition.counters.interruptsDropped).toBe(0);
  });

  it("every interrupt of a VM dropped for a window: the watchdog finds the completions, all data intact, each request settles once", async () => {
    const rig = await bootRig({ seed: 5, watchdogNs: 200 * US });
    const { sys, vms } = rig;
    const vm = vms[0]!.vm;
    const t0 = sys.sim.now;
    const f = sys.hv.faults.injectInterruptFault({ vm: vm.partition, dropProbability: 1, startNs: t0, durationNs: 20 * MS });
    const { ledger, reads } = await writeThenRead(rig, 48, 2);
    ledger.expectSettledOnce();
    expect(ledger.completed).toBe(96);
    reads.forEach((o, lba) => {
      expect(o.ok).toBe(true);
      if (o.ok) expect(o.value).toEqual(pattern(512, lba, 2));
    });
    expect(f.dropped).toBeGreaterThan(0);
    expect(f.dropped).toBe(f.seen);
    expect(vm.partition.counters.interruptsDropped).toBe(f.dropped);
    const channels = vms[0]!.storvsc.channels;
    expect(channels.reduce((a, c) => a + c.watchdogRecoveries, 0)).toBeGreaterThan(0);
    // Bounded: the window is 20 ms; the watchdog backs off to at most 16 × 200 µs.
    expect(sys.sim.now - t0).toBeLessThan(30 * MS);
    expect(f.state).toBe("active");
    await sys.run(sys.sim.scheduler.sleep(20 * MS));
    expect(f.state).toBe("ended");
    expect(sys.hv.faults.interruptRules).toHaveLength(0);
    // Retired: no longer listed, still counted.
    expect(sys.hv.faults.faults).not.toContain(f);
    expect(sys.hv.faults.totals.interruptsDropped).toBe(f.dropped);
  });

  it("without the watchdog a channel whose interrupt is lost stays wedged: its requests time out with a typed error; the watchdog brings it back", async () => {
    // One vCPU, one channel: no other interrupt can find the flag.
    const rig = await bootRig({ seed: 6, vcpus: 1, storvsc: { requestTimeoutNs: 10 * MS } });
    const { sys, vms } = rig;
    const { vm, disk, storvsc } = vms[0]!;
    const f = sys.hv.faults.injectInterruptFault({ vm: vm.partition, dropProbability: 1, durationNs: 5 * MS });
    const ledger = new Ledger(sys);
    const t0 = sys.sim.now;
    const o = await sys.run(ledger.track(disk.write(7, pattern(512, 7, 1))));
    expect(o.ok).toBe(false);
    if (!o.ok) {
      expect(o.error).toBeInstanceOf(StorvscTimeoutError);
      expect((o.error as StorvscTimeoutError).phase).toBe("sent");
    }
    expect(o.atNs - t0).toBe(10 * MS);
    expect(f.dropped).toBe(1);
    // The fault window is over, but the completion still sits unread in the
    // inbound ring: the host signals only on empty → non-empty, so the next
    // completion raises no interrupt either. Bounded all the same: a timeout.
    const second = await sys.run(ledger.track(disk.read(7, 1)));
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.error).toBeInstanceOf(StorvscTimeoutError);
    expect(storvsc.stats.timeouts).toBe(2);
    // The simulator's recovery model: the watchdog reads the ring.
    vm.client.setLostInterruptWatchdog(100 * US);
    const third = await sys.run(ledger.track(disk.read(7, 1)));
    expect(third.ok).toBe(true);
    if (third.ok) expect(third.value).toEqual(pattern(512, 7, 1));
    expect(storvsc.stats.lateCompletions).toBe(2);
    expect(storvsc.channels[0]!.watchdogRecoveries).toBe(1);
    ledger.expectSettledOnce();
    expect(ledger.failuresByType).toEqual({ STORVSC_TIMEOUT: 2 });
  });

  it("a dropped interrupt with a seeded probability: same seed, same drops; every request settles once", async () => {
    const run = async (seed: number) => {
      const rig = await bootRig({ seed, watchdogNs: 100 * US });
      const { sys, vms } = rig;
      const { vm, disk } = vms[0]!;
      const f = sys.hv.faults.injectInterruptFault({ dropProbability: 0.5, durationNs: 500 * MS });
      const ledger = new Ledger(sys);
      // One request at a time: one interrupt per request.
      for (let lba = 0; lba < 64; lba++) {
        const vcpu = vm.partition.vcpus[lba % 2]!;
        const w = await sys.run(ledger.track(vcpu.issue(() => disk.write(lba, pattern(512, lba, seed)))));
        expect(w.ok).toBe(true);
        const r = await sys.run(ledger.track(vcpu.issue(() => disk.read(lba, 1))));
        expect(r.ok && r.value).toEqual(pattern(512, lba, seed));
      }
      ledger.expectSettledOnce();
      expect(ledger.completed).toBe(128);
      return { dropped: f.dropped, seen: f.seen, now: sys.sim.now };
    };
    const a = await run(21);
    const b = await run(21);
    expect(a).toEqual(b);
    expect(a.dropped).toBeGreaterThan(10);
    expect(a.dropped).toBeLessThan(a.seen);
    const c = await run(22);
    expect(c.dropped).not.toBe(a.dropped);
  });

  it("delayed interrupts: each completion arrives at least the extra delay later, nothing is lost", async () => {
    const base = await bootRig({ seed: 8, vcpus: 1 });
    const t0 = base.sys.sim.now;
    await base.sys.run(base.vms[0]!.disk.read(0, 1));
    const plain = base.sys.sim.now - t0;

    const rig = await bootRig({ seed: 8, vcpus: 1 });
    const f = rig.sys.hv.faults.injectInterruptFault({ vm: rig.vms[0]!.vm.partition, delayNs: 3 * MS, durationNs: 100 * MS });
    const ledger = new Ledger(rig.sys);
    const t1 = rig.sys.sim.now;
    const o = await rig.sys.run(ledger.track(rig.vms[0]!.disk.read(0, 1)));
    expect(o.ok).toBe(true);
    expect(rig.sys.sim.now - t1).toBeGreaterThanOrEqual(plain + 3 * MS);
    expect(f.delayed).toBe(1);
    expect(rig.vms[0]!.vm.partition.counters.interruptsDelayed).toBe(1);
    ledger.expectSettledOnce();
  });

  it("bad fault specifications are typed errors naming the field", async () => {
    const { sys } = await bootRig();
    expect(() => sys.hv.faults.injectInterruptFault({ dropProbability: 1.5 })).toThrow(FaultSpecError);
    expect(() => sys.hv.faults.injectInterruptFault({})).toThrow(/needs dropProbability > 0/);
    expect(() => sys.hv.faults.injectInterruptFault({ dropProbability: 1, durationNs: 0 })).toThrow(/durationNs=0/);
    expect(() => sys.hv.faults.injectMonitorDelay({ extraLatencyNs: -1 })).toThrow(/extraLatencyNs=-1/);
    expect(() => sys.vms[0]!.client.setLostInterruptWatchdog(-5)).toThrow(InvalidArgumentError);
  });
});
