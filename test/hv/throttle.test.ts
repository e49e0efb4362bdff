import { describe, expect, it } from "vitest";
import { Hypervisor, installVmbusIsr, signalChannel, type ChannelSignalTarget, type GuestPartition } from "../../core/hv/index.js";
import { Simulation } from "../../core/sim/index.js";
import type { ThrottleTraceEvent } from "../../core/trace/index.js";

const CONN = 0x2005;
const SUSPEND_NS = 1_000_000_000;

/**
 * A toy outbound ring per VM: the guest adds packets; the host drains all on
 * wakeup, 10 µs after being woken. The host's classifier is Hyper-V's rule: a signal is necessary
 * only if the ring just went empty → non-empty.
 */
function scenario() {
  const sim = new Simulation({
    seed: 11,
    costs: { throttleWindowNs: 1_000_000, throttleUnnecessaryLimit: 20, throttleSuspendNs: SUSPEND_NS },
  });
  const hv = new Hypervisor(sim);
  const rings = new Map<GuestPartition, { pending: number; drained: number }>();
  const mkVm = (name: string) => {
    const vm = hv.createVm({ name });
    const ring = { pending: 0, drained: 0 };
    rings.set(vm, ring);
    hv.connectEvent(
      vm,
      CONN,
      async () => {
        await sim.scheduler.sleep(10_000); // the host takes 10 µs to get to the ring
        ring.drained += ring.pending;
        ring.pending = 0;
      },
      () => ring.pending === 1,
    );
    return vm;
  };
  const target: ChannelSignalTarget = { connectionId: CONN, monitorId: undefined, lowLatency: false };
  /** 200 packets, 2 µs of guest CPU each; signal after every packet, or only on empty → non-empty. */
  const guest = async (vm: GuestPartition, signalEveryPacket: boolean): Promise<number> => {
    const v = vm.vcpus[0]!;
    const ring = rings.get(vm)!;
    for (let i = 0; i < 200; i++) {
      await v.run(async () => {
        await v.compute(2_000);
        const wasEmpty = ring.pending === 0;
        ring.pending++;
        if (signalEveryPacket || wasEmpty) signalChannel(v, target);
      });
    }
    return sim.now;
  };
  return { sim, hv, rings, mkVm, guest };
}

describe("throttling of unnecessary signals", () => {
  it("suspends a guest that signals after every packet and never one that signals only on transitions", async () => {
    const { sim, hv, rings, mkVm, guest } = scenario();
    const bad = mkVm("bad");
    const good = mkVm("good");
    const throttles: ThrottleTraceEvent[] = [];
    const suspendedAtThrottle: boolean[] = [];
    const isrTimes: number[] = [];
    installVmbusIsr(bad, { lookupChannel: () => () => void isrTimes.push(sim.now) });
    sim.tracer.on("throttle", (e) => {
      throttles.push(e);
      if (e.phase === "begin") {
        suspendedAtThrottle.push(bad.vcpus[0]!.suspended && bad.suspended);
        // A host interrupt during the suspension must wait for the end of it.
        sim.scheduler.schedule(1_000, () => hv.signalGuest(bad, 0, 9));
      }
    });

    const [badDone, goodDone] = await sim.scheduler.runUntilSettled(Promise.all([guest(bad, true), guest(good, false)]));
    await sim.scheduler.runUntilIdle();

    // Both rings got every packet.
    expect(rings.get(bad)!.drained).toBe(200);
    expect(rings.get(good)!.drained).toBe(200);

    // The well-behaved guest: all signals necessary, never throttled, done in well under a ms.
    expect(good.counters.signalsUnnecessary).toBe(0);
    expect(good.counters.signalsNecessary).toBe(good.counters.hypercalls.signalEvent);
    expect(good.counters.throttleEvents).toBe(0);
    expect(goodDone).toBeLessThan(1_000_000);

    // The chatty guest: over the limit within one window → suspended for SUSPEND_NS.
    expect(bad.counters.hypercalls.signalEvent).toBe(200);
    expect(bad.counters.signalsUnnecessary).toBeGreaterThan(20);
    expect(bad.counters.throttleEvents).toBeGreaterThanOrEqual(1);
    const begin = throttles.find((e) => e.phase === "begin")!;
    expect(begin.partitionId).toBe(bad.id);
    expect(begin.unnecessarySignals).toBe(21);
    expect(begin.untilNs).toBe(begin.timeNs + SUSPEND_NS);
    expect(suspendedAtThrottle[0]).toBe(true);
    expect(throttles.some((e) => e.phase === "end" && e.timeNs === begin.untilNs)).toBe(true);
    expect(bad.counters.throttledNs).toBeGreaterThanOrEqual(SUSPEND_NS);
    // Its work was delayed by the suspension…
    expect(badDone).toBeGreaterThanOrEqual(begin.untilNs);
    expect(badDone - goodDone).toBeGreaterThan(SUSPEND_NS - 1_000_000);
    // …and the interrupt raised during it waited until the end.
    expect(isrTimes[0]).toBe(begin.untilNs);
    expect(good.counters.throttledNs).toBe(0);
  });

  it("does not throttle below the limit or when the window rolls over", async () => {
    const { sim, mkVm } = scenario();
    const vm = mkVm("edge");
    const v = vm.vcpus[0]!;
    // Windows start at the first unnecessary signal after the previous one expired.
    // 20 unnecessary signals per 1 ms window, spread over 5 windows: never more than the limit in one.
    for (let w = 0; w < 5; w++) {
      for (let i = 0; i < 20; i++) {
        sim.scheduler.schedule(w * 1_000_000 + i * 10_000 + 1, () => {
          v.signalEvent(CONN); // classifier: pending 0 ≠ 1 → unnecessary
        });
      }
    }
    await sim.scheduler.runUntilIdle();
    expect(vm.counters.signalsUnnecessary).toBe(100);
    expect(vm.counters.throttleEvents).toBe(0);
    await sim.scheduler.runUntil(4_000_001 + 999_999);
    v.signalEvent(CONN); // 21st in the last window's last nanosecond
    expect(vm.counters.throttleEvents).toBe(1);
  });
});
