import { describe, expect, it } from "vitest";
import {
  Hypervisor,
  VMBUS_MESSAGE_SINT,
  currentVcpu,
  installVmbusIsr,
  type ChannelInterruptHandler,
  type Vcpu,
} from "../../core/hv/index.js";
import { SimEventError, Simulation } from "../../core/sim/index.js";
import type { InterruptDeliveredTraceEvent } from "../../core/trace/index.js";

function setup(asyncVcpuContext = false) {
  const sim = new Simulation({ seed: 9 });
  const hv = new Hypervisor(sim, { asyncVcpuContext });
  const vm = hv.createVm({ vcpuCount: 2, vpIndexes: [0, 1] });
  return { sim, hv, vm };
}

describe("vCPUs and interrupts", () => {
  it("makes an interrupt for a busy vCPU wait until the handler's promise settles", async () => {
    const { sim, hv, vm } = setup();
    const v = vm.vcpus[1]!;
    const log: string[] = [];
    const delivered: InterruptDeliveredTraceEvent[] = [];
    sim.tracer.on("interruptDelivered", (e) => delivered.push(e));
    const onChannel: ChannelInterruptHandler = (relid, vcpu) => void log.push(`relid ${relid} on cpu${vcpu.cpu} @${sim.now}`);
    installVmbusIsr(vm, { lookupChannel: (relid) => (relid === 7 ? onChannel : undefined) });
    const work = v.run(async () => {
      log.push(`work start @${sim.now}`);
      await sim.scheduler.sleep(50_000);
      log.push(`work end @${sim.now}`);
      return 42;
    }, "slow work");
    sim.scheduler.schedule(10_000, () => hv.signalGuest(vm, 1, 7));
    expect(await sim.scheduler.runUntilSettled(work)).toBe(42);
    await sim.scheduler.runUntilIdle();
    expect(log).toEqual(["work start @0", "work end @50000", "relid 7 on cpu1 @50000"]);
    expect(v.counters.interruptsDeferred).toBe(1);
    expect(v.counters.vmbusInterrupts).toBe(1);
    expect(vm.vcpus[0]!.counters.vmbusInterrupts).toBe(0);
    expect(vm.relidInterrupts(7)).toBe(1);
    // Raised at 10 µs + 2 µs latency, taken at 50 µs.
    expect(delivered).toEqual([{ timeNs: 50_000, partitionId: vm.id, vpIndex: 1, sint: VMBUS_MESSAGE_SINT, waitedNs: 38_000 }]);
  });

  it("runs one handler at a time and takes pending interrupts before queued work", async () => {
    const { sim, hv, vm } = setup();
    const v = vm.vcpus[0]!;
    const log: string[] = [];
    installVmbusIsr(vm, { lookupChannel: () => () => void log.push(`isr @${sim.now}`) });
    let running = 0;
    const job = (name: string) => async () => {
      running++;
      expect(running).toBe(1);
      log.push(`${name} @${sim.now}`);
      await sim.scheduler.sleep(5_000);
      running--;
    };
    const a = v.run(job("a"));
    const b = v.run(job("b"));
    hv.signalGuest(vm, 0, 3); // due at 2 µs: while a runs
    await sim.scheduler.runUntilSettled(Promise.all([a, b]));
    expect(log).toEqual(["a @0", "isr @5000", "b @5000"]);
  });

  it("coalesces a raise while the same SINT is pending, and re-runs the ISR for a raise during the ISR", async () => {
    const { sim, hv, vm } = setup();
    const seen: number[] = [];
    installVmbusIsr(vm, {
      lookupChannel: (relid) => async () => {
        seen.push(relid);
        if (relid === 1) hv.signalGuest(vm, 0, 2); // arrives while this ISR runs
        await sim.scheduler.sleep(10_000);
      },
    });
    hv.signalGuest(vm, 0, 1);
    hv.signalGuest(vm, 0, 1); // same flag, same in-flight interrupt
    await sim.scheduler.runUntilIdle();
    expect(seen).toEqual([1, 2]);
    expect(vm.vcpus[0]!.counters.vmbusInterrupts).toBe(2);
    expect(vm.vcpus[0]!.counters.interruptsCoalesced).toBe(1);
  });

  it("counts an event bit for an unknown relid without throwing and skips relid 0", async () => {
    const { sim, hv, vm } = setup();
    const handled: number[] = [];
    installVmbusIsr(vm, { lookupChannel: (relid) => (relid === 5 ? (r) => void handled.push(r) : undefined) });
    hv.signalGuest(vm, 0, 0);
    hv.signalGuest(vm, 0, 5);
    hv.signalGuest(vm, 0, 99);
    hv.signalGuest(vm, 0, 2047);
    await sim.scheduler.runUntilIdle();
    expect(handled).toEqual([5]);
    expect(vm.counters.unknownRelidInterrupts).toBe(2);
    expect(vm.relidInterrupts(5)).toBe(1);
    expect(vm.relidInterrupts(99)).toBe(0);
    // Every bit was test-and-cleared, including relid 0.
    const s = vm.vcpus[0]!.synic;
    expect(vm.memory.u8.subarray(s.siefpGpa + 512, s.siefpGpa + 768).every((b) => b === 0)).toBe(true);
  });

  it("scans channels first, then the message slot", async () => {
    const { sim, hv, vm } = setup();
    const log: string[] = [];
    installVmbusIsr(vm, {
      lookupChannel: (relid) => () => void log.push(`channel ${relid}`),
      onMessage: (vcpu, sint) => {
        const m = vcpu.synic.readMessage(sint);
        log.push(`message ${m.payload[0]}`);
        vcpu.synic.endOfMessage(sint, m.messageType);
      },
    });
    hv.postMessageToGuest(vm, Uint8Array.of(77)); // due at 5 µs
    sim.scheduler.schedule(3_000, () => hv.signalGuest(vm, 0, 12)); // interrupt due at 5 µs too
    sim.scheduler.schedule(3_000, () => hv.signalGuest(vm, 0, 4));
    await sim.scheduler.runUntilIdle();
    expect(log).toEqual(["channel 4", "channel 12", "message 77"]);
    // The message's interrupt (queued first at 5 µs) found the flags set at 3 µs already; the
    // flags' own interrupt, also due at 5 µs, then finds nothing — a spurious interrupt, as on Linux.
    expect(vm.vcpus[0]!.counters.vmbusInterrupts).toBe(2);
    expect(vm.relidInterrupts(4) + vm.relidInterrupts(12)).toBe(2);
  });

  it("counts SINT2 interrupts without a handler and messages without a message handler", async () => {
    const { sim, hv, vm } = setup();
    hv.signalGuest(vm, 1, 3);
    await sim.scheduler.runUntilIdle();
    expect(vm.vcpus[1]!.counters.unhandledInterrupts).toBe(1);
    installVmbusIsr(vm, { lookupChannel: () => undefined });
    hv.postMessageToGuest(vm, Uint8Array.of(1));
    await sim.scheduler.runUntilIdle();
    expect(vm.counters.unhandledMessages).toBe(1);
  });

  it("surfaces a throwing channel handler through the scheduler with the vCPU's label", async () => {
    const { sim, hv, vm } = setup();
    installVmbusIsr(vm, {
      lookupChannel: () => () => {
        throw new Error("callback bug");
      },
    });
    hv.signalGuest(vm, 1, 3);
    const err = await sim.scheduler.runUntilIdle().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimEventError);
    expect((err as SimEventError).label).toBe("vm1/cpu1 SINT2");
    expect(vm.vcpus[1]!.busy).toBe(false);
  });

  it("charges hypercall cost as vCPU busy time", async () => {
    const { sim, hv, vm } = setup();
    hv.connectEvent(vm, 0x10, () => {});
    const v = vm.vcpus[0]!;
    const log: number[] = [];
    await sim.scheduler.runUntilSettled(
      v.run(() => {
        for (let i = 0; i < 3; i++) v.signalEvent(0x10);
      }),
    );
    const next = v.run(() => void log.push(sim.now));
    await sim.scheduler.runUntilSettled(next);
    expect(log).toEqual([3 * sim.costs.hypercallNs]);
  });

  it("reports currentVcpu during the synchronous part of a handler", async () => {
    const { sim, vm } = setup();
    const seen: (Vcpu | undefined)[] = [];
    await sim.scheduler.runUntilSettled(
      vm.vcpus[1]!.run(async () => {
        seen.push(currentVcpu());
        await sim.scheduler.sleep(10);
        seen.push(currentVcpu());
      }),
    );
    expect(seen).toEqual([vm.vcpus[1], undefined]);
    expect(currentVcpu()).toBeUndefined();
  });

  it("tracks currentVcpu across awaits with asyncVcpuContext", async () => {
    const { sim, hv, vm } = setup(true);
    const seen: (number | undefined)[] = [];
    const job = (v: Vcpu) =>
      v.run(async () => {
        await sim.scheduler.sleep(v.cpu === 0 ? 10 : 5);
        seen.push(hv.currentVcpu?.cpu);
        await sim.scheduler.sleep(10);
        seen.push(hv.currentVcpu?.cpu);
      });
    await sim.scheduler.runUntilSettled(Promise.all([job(vm.vcpus[0]!), job(vm.vcpus[1]!)]));
    expect(seen).toEqual([1, 0, 1, 0]);
    expect(hv.currentVcpu).toBeUndefined();
  });
});
