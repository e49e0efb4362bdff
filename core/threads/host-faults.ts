/**
 * Threaded mode: faults the host thread injects into its own hypervisor
 * (core/hv/faults.ts, issue 8 "Fault injection"), named in
 * `ThreadedSystemOptions.hostFaults`.
 *
 * Only what the host side is in charge of can be broken from there:
 *
 * - **interrupt** — host → guest channel interrupts dropped or delayed. The
 *   host thread's `signalGuest` sets the channel's event flag in the shared
 *   SIEFP page either way; a dropped one just does not ring the guest's
 *   doorbell, so the next SINT2 on that vCPU (or the guest's lost-interrupt
 *   watchdog) finds the flag, as on one thread.
 * - **monitor** — the host's scans of monitor pages come later.
 * - **host-stall** — a host device (by its index in `addHostDevice` order)
 *   stops draining its rings and raising interrupts, then catches up.
 *
 * Suspending the guest (throttle) is not among them: the guest's vCPUs run
 * in the other thread. Times are the host thread's virtual time, which in
 * threaded mode follows real time within `maxLeadNs`.
 *
 * The specs cross a thread (structured clone): their shape is untrusted and
 * checked here; a bad one fails `start()` with a `FaultSpecError` naming
 * `hostFaults[i].<field>`.
 */
import { FaultSpecError, InterruptFault, MonitorFault, type FaultInjector, type InjectedFault, type StallableHostDevice } from "../hv/faults.js";

export interface HostFaultWindow {
  /** Host virtual time the fault starts, ns (default: when the host thread starts). */
  readonly startNs?: number;
  /** How long it lasts, ns (default: for ever). */
  readonly durationNs?: number;
}

/** One fault for the host thread (plain data: it is structured-cloned into the worker). */
export type HostFaultSpec =
  | (HostFaultWindow & {
      readonly kind: "interrupt";
      readonly dropProbability?: number;
      readonly delayNs?: number;
      readonly delayProbability?: number;
    })
  | (HostFaultWindow & { readonly kind: "monitor"; readonly extraLatencyNs: number; readonly probability?: number })
  | (HostFaultWindow & { readonly kind: "host-stall"; readonly device: number });

/** What one injected fault did, for the host report. */
export interface HostFaultReport {
  readonly id: number;
  readonly kind: HostFaultSpec["kind"];
  readonly state: InjectedFault["state"];
  readonly activatedAtNs: number | null;
  readonly endedAtNs: number | null;
  /** interrupt: seen, dropped, delayed; monitor: seen, delayed; host-stall: none. */
  readonly counters: Readonly<Record<string, number>>;
}

const KEYS: Readonly<Record<HostFaultSpec["kind"], readonly string[]>> = {
  interrupt: ["kind", "startNs", "durationNs", "dropProbability", "delayNs", "delayProbability"],
  monitor: ["kind", "startNs", "durationNs", "extraLatencyNs", "probability"],
  "host-stall": ["kind", "startNs", "durationNs", "device"],
};

/** Injects `specs` into `injector` (host devices by index in `devices`); returns the faults in spec order. */
export function injectHostFaults(injector: FaultInjector, devices: readonly StallableHostDevice[], specs: unknown): InjectedFault[] {
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) throw new FaultSpecError("hostFaults", String(specs), "must be an array of fault specs");
  return specs.map((spec: unknown, i) => {
    const at = `hostFaults[${i}]`;
    try {
      return injectOne(injector, devices, spec, at);
    } catch (e) {
      // The injector names its own fields ("dropProbability"); say which spec.
      if (e instanceof FaultSpecError && !e.field.startsWith(at)) throw new FaultSpecError(`${at}.${e.field}`, e.value, e.limit);
      throw e;
    }
  });
}

function injectOne(injector: FaultInjector, devices: readonly StallableHostDevice[], spec: unknown, at: string): InjectedFault {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new FaultSpecError(at, String(spec), "must be an object {kind, …}");
  const o = spec as Record<string, unknown>;
  const kind = o["kind"];
  if (kind !== "interrupt" && kind !== "monitor" && kind !== "host-stall") {
    throw new FaultSpecError(`${at}.kind`, String(kind), 'must be "interrupt", "monitor" or "host-stall" (the guest thread\'s faults cannot be injected from the host)');
  }
  for (const k of Object.keys(o)) {
    if (!KEYS[kind].includes(k)) throw new FaultSpecError(`${at}.${k}`, String(o[k]), `is not a field of a "${kind}" fault (${KEYS[kind].join(", ")})`);
  }
  const num = (field: string): number | undefined => {
    const v = o[field];
    if (v === undefined) return undefined;
    if (typeof v !== "number") throw new FaultSpecError(`${at}.${field}`, String(v), "must be a number");
    return v;
  };
  const window = { ...opt("startNs", num("startNs")), ...opt("durationNs", num("durationNs")) };
  switch (kind) {
    case "interrupt":
      return injector.injectInterruptFault({
        ...window,
        ...opt("dropProbability", num("dropProbability")),
        ...opt("delayNs", num("delayNs")),
        ...opt("delayProbability", num("delayProbability")),
      });
    case "monitor": {
      const extra = num("extraLatencyNs");
      if (extra === undefined) throw new FaultSpecError(`${at}.extraLatencyNs`, "missing", "is required (ns, > 0)");
      return injector.injectMonitorDelay({ ...window, extraLatencyNs: extra, ...opt("probability", num("probability")) });
    }
    case "host-stall": {
      const d = num("device");
      if (d === undefined || !Number.isInteger(d) || d < 0 || d >= devices.length) {
        throw new FaultSpecError(`${at}.device`, d === undefined ? "missing" : d, `must be the index of one of the ${devices.length} host device(s)`);
      }
      return injector.stallHostDevice(devices[d] as StallableHostDevice, window);
    }
  }
}

function opt<K extends string>(key: K, v: number | undefined): { [P in K]?: number } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: number };
}

/** The report entry of one injected fault. */
export function hostFaultReport(f: InjectedFault): HostFaultReport {
  const counters: Readonly<Record<string, number>> =
    f instanceof InterruptFault
      ? { seen: f.seen, dropped: f.dropped, delayed: f.delayed }
      : f instanceof MonitorFault
        ? { seen: f.seen, delayed: f.delayed }
        : {};
  return { id: f.id, kind: f.kind as HostFaultSpec["kind"], state: f.state, activatedAtNs: f.activatedAtNs, endedAtNs: f.endedAtNs, counters };
}
