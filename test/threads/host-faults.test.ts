/**
 * `hostFaults` specs arrive in the host thread by structured clone: each
 * shape is checked before anything is injected, and a bad one is named by
 * its index and field. (Run on one thread: no worker needed.)
 */
import { describe, expect, it } from "vitest";
import { FaultSpecError, Hypervisor, Simulation, injectHostFaults, hostFaultReport, type StallableHostDevice } from "../../core/index.js";

function injector() {
  const hv = new Hypervisor(new Simulation({ seed: 1 }));
  const stalls: string[] = [];
  const device: StallableHostDevice = { name: "dev0", beginStall: () => void stalls.push("begin"), endStall: () => void stalls.push("end") };
  return { hv, device, stalls };
}

describe("injectHostFaults", () => {
  it("injects each kind with its window, in order, and reports them", async () => {
    const { hv, device, stalls } = injector();
    const faults = injectHostFaults(hv.faults, [device], [
      { kind: "interrupt", dropProbability: 0.25, delayNs: 1000, startNs: 5, durationNs: 10 },
      { kind: "monitor", extraLatencyNs: 500, probability: 0.5 },
      { kind: "host-stall", device: 0, startNs: 100, durationNs: 50 },
    ]);
    expect(faults.map((f) => f.kind)).toEqual(["interrupt", "monitor", "host-stall"]);
    await hv.sim.scheduler.runUntil(200);
    expect(stalls).toEqual(["begin", "end"]);
    expect(faults.map(hostFaultReport)).toEqual([
      { id: 1, kind: "interrupt", state: "ended", activatedAtNs: 5, endedAtNs: 15, counters: { seen: 0, dropped: 0, delayed: 0 } },
      { id: 2, kind: "monitor", state: "active", activatedAtNs: 0, endedAtNs: null, counters: { seen: 0, delayed: 0 } },
      { id: 3, kind: "host-stall", state: "ended", activatedAtNs: 100, endedAtNs: 150, counters: {} },
    ]);
    expect(injectHostFaults(hv.faults, [], undefined)).toEqual([]);
  });

  it.each([
    ["not an array", { kind: "interrupt" }, "hostFaults"],
    ["not an object", [7], "hostFaults[0]"],
    ["an unknown kind", [{ kind: "throttle", durationNs: 5 }], "hostFaults[0].kind=throttle"],
    ["a field of another kind", [{ kind: "monitor", extraLatencyNs: 5, device: 0 }], "hostFaults[0].device"],
    ["a string number", [{ kind: "interrupt", delayNs: "5" }], "hostFaults[0].delayNs=5"],
    ["a probability above 1", [{ kind: "interrupt", dropProbability: 1.5 }], "hostFaults[0].dropProbability=1.5"],
    ["an interrupt fault with no effect", [{ kind: "interrupt" }], "hostFaults[0].interrupt"],
    ["a monitor delay without its latency", [{ kind: "monitor" }], "hostFaults[0].extraLatencyNs=missing"],
    ["a device index out of range", [{ kind: "host-stall", device: 0 }, { kind: "host-stall", device: 1 }], "hostFaults[1].device=1"],
    ["a negative window", [{ kind: "host-stall", device: 0, durationNs: -1 }], "hostFaults[0].durationNs=-1"],
  ])("rejects %s, naming it", (_what, specs, named) => {
    const { hv, device } = injector();
    let error: unknown;
    try {
      injectHostFaults(hv.faults, [device], specs);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FaultSpecError);
    expect((error as Error).message).toContain(named);
  });
});
