/**
 * The cost model (DESIGN.md "Time"): how much virtual time each hypervisor
 * operation takes, plus the few limits that shape queueing and throttling.
 *
 * Changing a value changes the simulated figures, never the code path.
 * Defaults are plausible orders of magnitude, not measurements, except the
 * 100 µs monitor latency, which is the figure Linux documents (vmbus-core.md
 * §6, seed 002 "currently around 100 usecs"). Hyper-V does not publish its
 * throttling thresholds; the defaults below are the simulator's choice.
 *
 * All `…Ns` fields are integer nanoseconds of virtual time.
 */
import { CostModelError } from "./errors.js";

/** Unit of the monitor page's `latency` u16 entries in this simulator: 100 ns (so 1000 = 100 µs). */
export const MONITOR_LATENCY_UNIT_NS = 100;

export interface CostModel {
  /** vCPU time a hypercall costs the caller (VM exit, dispatch, return). */
  readonly hypercallNs: number;
  /** From the moment an interrupt is raised (event flag set / signal) to its handler being runnable. */
  readonly interruptDeliveryNs: number;
  /** From an accepted post (either direction) to the message reaching the receiver's slot / port. */
  readonly messageDeliveryNs: number;
  /** Monitor latency used when a monitored channel is configured without one (100 µs, as Hyper-V). */
  readonly monitorLatencyNs: number;
  /** From the guest's EOM MSR write to the next queued message landing in the freed slot. */
  readonly eomNs: number;
  /** Messages the hypervisor holds per port (or per guest SINT) beyond the one in flight; more → HV_STATUS_INSUFFICIENT_BUFFERS. */
  readonly messageQueueDepth: number;
  /** Length of the throttling window. */
  readonly throttleWindowNs: number;
  /** Unnecessary guest signals a VM may send in one window; one more throttles it. */
  readonly throttleUnnecessaryLimit: number;
  /** How long a throttled VM's vCPUs stay suspended ("a few seconds", vmbus.rst). */
  readonly throttleSuspendNs: number;
}

export const defaultCostModel: CostModel = Object.freeze({
  hypercallNs: 1_000,
  interruptDeliveryNs: 2_000,
  messageDeliveryNs: 5_000,
  monitorLatencyNs: 100_000,
  eomNs: 1_000,
  messageQueueDepth: 16,
  throttleWindowNs: 10_000_000,
  throttleUnnecessaryLimit: 1_000,
  throttleSuspendNs: 2_000_000_000,
});

type Rule = "time" | "positiveTime" | "count" | "monitorLatency";

const RULES: Readonly<Record<keyof CostModel, Rule>> = {
  hypercallNs: "time",
  interruptDeliveryNs: "time",
  messageDeliveryNs: "time",
  monitorLatencyNs: "monitorLatency",
  eomNs: "time",
  messageQueueDepth: "count",
  throttleWindowNs: "positiveTime",
  throttleUnnecessaryLimit: "count",
  throttleSuspendNs: "positiveTime",
};

function isField(k: string): k is keyof CostModel {
  return Object.prototype.hasOwnProperty.call(RULES, k);
}

/**
 * Defaults overlaid with `overrides`, validated. Unknown fields and values
 * out of range throw `CostModelError` naming the field, so a typo in a
 * scenario does not silently run with the default.
 */
export function resolveCostModel(overrides: Partial<CostModel> = {}): CostModel {
  const out: Record<keyof CostModel, number> = { ...defaultCostModel };
  for (const [k, v] of Object.entries(overrides) as [string, unknown][]) {
    if (!isField(k)) throw new CostModelError(k, v, `is not a cost-model field (known: ${Object.keys(RULES).join(", ")})`);
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new CostModelError(k, v, "must be a safe integer");
    switch (RULES[k]) {
      case "time":
        if (v < 0) throw new CostModelError(k, v, "must be ≥ 0 ns");
        break;
      case "positiveTime":
        if (v < 1) throw new CostModelError(k, v, "must be ≥ 1 ns");
        break;
      case "count":
        if (v < 1) throw new CostModelError(k, v, "must be ≥ 1");
        break;
      case "monitorLatency":
        if (v < MONITOR_LATENCY_UNIT_NS || v % MONITOR_LATENCY_UNIT_NS !== 0 || v / MONITOR_LATENCY_UNIT_NS > 0xffff) {
          throw new CostModelError(
            k,
            v,
            `must be a multiple of ${MONITOR_LATENCY_UNIT_NS} ns in [${MONITOR_LATENCY_UNIT_NS}, ${0xffff * MONITOR_LATENCY_UNIT_NS}] (it is stored as a u16 latency entry)`,
          );
        }
        break;
    }
    out[k] = v;
  }
  return Object.freeze(out);
}
