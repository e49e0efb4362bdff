import { describe, expect, it } from "vitest";
import { CostModelError, MONITOR_LATENCY_UNIT_NS, Simulation, defaultCostModel, resolveCostModel } from "../../core/sim/index.js";

describe("CostModel", () => {
  it("has the documented defaults (100 µs monitor latency)", () => {
    expect(defaultCostModel.monitorLatencyNs).toBe(100_000);
    expect(defaultCostModel.monitorLatencyNs / MONITOR_LATENCY_UNIT_NS).toBe(1000);
    expect(resolveCostModel()).toEqual(defaultCostModel);
  });

  it("overlays overrides per simulation", () => {
    const c = resolveCostModel({ hypercallNs: 0, throttleSuspendNs: 5 });
    expect(c.hypercallNs).toBe(0);
    expect(c.throttleSuspendNs).toBe(5);
    expect(c.interruptDeliveryNs).toBe(defaultCostModel.interruptDeliveryNs);
    expect(new Simulation({ costs: { eomNs: 7 } }).costs.eomNs).toBe(7);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("rejects bad values with a typed error naming field, value and limit", () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ hypercallNs: -1 }, /^costs\.hypercallNs=-1: must be ≥ 0 ns$/],
      [{ interruptDeliveryNs: 1.5 }, /^costs\.interruptDeliveryNs=1\.5: must be a safe integer$/],
      [{ messageQueueDepth: 0 }, /^costs\.messageQueueDepth=0: must be ≥ 1$/],
      [{ throttleWindowNs: 0 }, /^costs\.throttleWindowNs=0: must be ≥ 1 ns$/],
      [{ monitorLatencyNs: 150 }, /^costs\.monitorLatencyNs=150 \(0x96\): must be a multiple of 100 ns/],
      [{ monitorLatencyNs: 100 * 70_000 }, /monitorLatencyNs=7000000 .*u16 latency entry/],
      [{ hypercalNs: 5 }, /^costs\.hypercalNs=5: is not a cost-model field/],
      [{ eomNs: "1" }, /^costs\.eomNs=1: must be a safe integer$/],
    ];
    for (const [overrides, message] of bad) {
      const err = (() => {
        try {
          resolveCostModel(overrides as never);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(CostModelError);
      expect((err as Error).message).toMatch(message);
    }
  });
});
