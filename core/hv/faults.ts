/**
 * Fault injection in the hypervisor model (issue 8 "Fault injection").
 *
 * One `FaultInjector` per hypervisor (`hv.faults`). It breaks the things the
 * hypervisor is in charge of, for a window of virtual time or for ever:
 *
 * - **channel interrupts** (host → guest `signalGuest`): dropped with a
 *   probability, or delivered later by an extra delay. A dropped interrupt
 *   still sets the channel's relid bit in the target vCPU's SINT2 event-flag
 *   page — only SINT2 is not raised — so the next interrupt on that vCPU
 *   (any channel) finds the bit, exactly as a lost edge on real hardware
 *   would be found by the next one. Control-plane messages are not touched.
 * - **monitor scans** (guest → host batching): the hypervisor's look at a
 *   monitor entry comes an extra latency after the guest set the bit.
 * - **a host device that stops answering**: its channels are not serviced
 *   (the guest → host rings are not drained, guest signals are deferred)
 *   and it raises no interrupt towards the guest, for a window or for ever.
 *   At the end of the window every channel of the device is serviced and
 *   the held interrupts are raised. Guest senders that fill a ring in the
 *   meantime wait on `pending_send_sz`, and resume when the host comes back.
 *   (The device side lives in core/vmbus: `HostDevice` implements
 *   `StallableHostDevice`; this layer only schedules it.)
 * - **a suspended (throttled) guest**: every vCPU of a VM is suspended for a
 *   window, through the same machinery as Hyper-V's throttling.
 *
 * Randomness comes from one fork of the simulation's seeded RNG
 * ("hv/faults"), drawn only for a rule whose probability is strictly
 * between 0 and 1, so the same seed and the same rules give the same run.
 *
 * Cost when nothing is configured: the hooks in `Hypervisor.signalGuest`
 * and `MonitorPages.trigger` test the length of an (empty) array of active
 * rules and go on; nothing is allocated per signal either way.
 *
 * Rules are activated and retired by scheduler events at their start and
 * end, so a hook never compares times: a rule is in the active list exactly
 * during [startNs, startNs + durationNs).
 */
import { VmbusSimError, fmtNum } from "../errors.js";
import type { Rng } from "../sim/rng.js";
import type { EventHandle } from "../sim/scheduler.js";
import type { Hypervisor } from "./hypervisor.js";
import type { GuestPartition } from "./partition.js";

/** A fault description that breaks a rule: names the field, the value and what is allowed. */
export class FaultSpecError extends VmbusSimError {
  readonly code = "FAULT_SPEC";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly limit: string,
  ) {
    super(`fault ${field}=${typeof value === "number" ? fmtNum(value) : String(value)}: ${limit}`);
  }
}

export type FaultKind = "interrupt" | "monitor" | "host-stall" | "suspend";

/** Lifecycle of an injected fault. */
export type FaultState = "scheduled" | "active" | "ended" | "removed";

/** When a fault applies: from `startNs` (default now) for `durationNs` (default for ever). */
export interface FaultWindow {
  /** Absolute virtual time the fault starts, ns; default: now. A time in the past means now. */
  readonly startNs?: number;
  /** How long it lasts, ns; default: for ever. */
  readonly durationNs?: number;
}

export interface InterruptFaultOptions extends FaultWindow {
  /** The VM whose channel interrupts are affected; default every VM. */
  readonly vm?: GuestPartition;
  /** Probability that an interrupt is dropped, in [0, 1]; default 0. */
  readonly dropProbability?: number;
  /** Extra delivery delay of an interrupt that is not dropped, ns; default 0. */
  readonly delayNs?: number;
  /** Probability that an interrupt (not dropped) is delayed, in [0, 1]; default 1. */
  readonly delayProbability?: number;
}

export interface MonitorFaultOptions extends FaultWindow {
  /** The VM whose monitor scans are delayed; default every VM. */
  readonly vm?: GuestPartition;
  /** Latency added to a scan armed during the window, ns (> 0). */
  readonly extraLatencyNs: number;
  /** Probability that a scan is delayed, in [0, 1]; default 1. */
  readonly probability?: number;
}

export interface SuspendFaultOptions {
  readonly startNs?: number;
  /** How long every vCPU of the VM stays suspended, ns (> 0). */
  readonly durationNs: number;
}

/**
 * What a host device must offer to be stalled. `HostDevice` (core/vmbus)
 * implements it. Stalls nest: each `beginStall` is matched by one
 * `endStall`, and the device answers again when the last one ends.
 */
export interface StallableHostDevice {
  readonly name: string;
  beginStall(): void;
  endStall(): void;
}

/** One injected fault: its window, its state and its counters. */
export abstract class InjectedFault {
  abstract readonly kind: FaultKind;
  state: FaultState = "scheduled";
  /** Virtual times it became active and stopped, once they happened. */
  activatedAtNs: number | null = null;
  endedAtNs: number | null = null;
  /** @internal */
  startEvent: EventHandle | null = null;
  /** @internal */
  endEvent: EventHandle | null = null;

  constructor(
    /** @internal */
    protected readonly injector: FaultInjector,
    readonly id: number,
    readonly startNs: number,
    /** null: for ever. */
    readonly endNs: number | null,
  ) {}

  /** Retires the fault now (cancels it if it has not started). */
  remove(): void {
    this.injector.remove(this);
  }

  /** @internal */
  abstract activate(): void;
  /** @internal */
  abstract deactivate(): void;
}

export class InterruptFault extends InjectedFault {
  readonly kind = "interrupt";
  /** Channel interrupts raised while the fault was active (for its VM). */
  seen = 0;
  dropped = 0;
  delayed = 0;

  constructor(
    injector: FaultInjector,
    id: number,
    startNs: number,
    endNs: number | null,
    readonly vm: GuestPartition | null,
    readonly dropProbability: number,
    readonly delayNs: number,
    readonly delayProbability: number,
  ) {
    super(injector, id, startNs, endNs);
  }

  /** @internal */
  activate(): void {
    this.injector.interruptRules.push(this);
  }
  /** @internal */
  deactivate(): void {
    removeFrom(this.injector.interruptRules, this);
  }
}

export class MonitorFault extends InjectedFault {
  readonly kind = "monitor";
  /** Scans armed while the fault was active (for its VM), and those it delayed. */
  seen = 0;
  delayed = 0;

  constructor(
    injector: FaultInjector,
    id: number,
    startNs: number,
    endNs: number | null,
    readonly vm: GuestPartition | null,
    readonly extraLatencyNs: number,
    readonly probability: number,
  ) {
    super(injector, id, startNs, endNs);
  }

  /** @internal */
  activate(): void {
    this.injector.monitorRules.push(this);
  }
  /** @internal */
  deactivate(): void {
    removeFrom(this.injector.monitorRules, this);
  }
}

export class HostStallFault extends InjectedFault {
  readonly kind = "host-stall";
  constructor(
    injector: FaultInjector,
    id: number,
    startNs: number,
    endNs: number | null,
    readonly device: StallableHostDevice,
  ) {
    super(injector, id, startNs, endNs);
  }
  /** @internal */
  activate(): void {
    this.device.beginStall();
  }
  /** @internal */
  deactivate(): void {
    this.device.endStall();
  }
}

export class SuspendFault extends InjectedFault {
  readonly kind = "suspend";
  constructor(
    injector: FaultInjector,
    id: number,
    startNs: number,
    endNs: number,
    readonly vm: GuestPartition,
  ) {
    super(injector, id, startNs, endNs);
  }
  /** @internal The suspension is the hypervisor's: it ends by itself at `endNs`. */
  activate(): void {
    this.injector.hv.suspendVm(this.vm, this.endNs as number);
  }
  /** @internal A suspension cannot be cut short (the vCPUs' wake-up is already set). */
  deactivate(): void {}
}

/** Totals over every fault ever injected (retired ones included). */
export interface FaultTotals {
  readonly interruptsDropped: number;
  readonly interruptsDelayed: number;
  readonly monitorScansDelayed: number;
  readonly hostStalls: number;
  readonly suspensions: number;
}

export class FaultInjector {
  /** @internal Active interrupt rules; `Hypervisor.signalGuest` tests the length. */
  readonly interruptRules: InterruptFault[] = [];
  /** @internal Active monitor rules; `MonitorPages.trigger` tests the length. */
  readonly monitorRules: MonitorFault[] = [];
  /** Faults scheduled or active. Retired ones are dropped (their counts go to `retired`): a long run must not keep every device it ever stalled. */
  private readonly list: InjectedFault[] = [];
  private readonly retired = { interruptsDropped: 0, interruptsDelayed: 0, monitorScansDelayed: 0, hostStalls: 0, suspensions: 0 };
  private readonly rng: Rng;
  private nextId = 1;

  constructor(
    /** @internal */
    readonly hv: Hypervisor,
  ) {
    this.rng = hv.sim.rng.fork("hv/faults");
  }

  /** The faults scheduled or in effect, in injection order (the caller keeps the handle of a retired one). */
  get faults(): readonly InjectedFault[] {
    return this.list;
  }

  /** Totals over every fault ever injected, retired ones included. */
  get totals(): FaultTotals {
    const t = { ...this.retired };
    for (const f of this.list) count(t, f);
    return t;
  }

  /** Drops and/or delays host → guest channel interrupts (of one VM or all) during a window. */
  injectInterruptFault(options: InterruptFaultOptions): InterruptFault {
    const drop = probability("dropProbability", options.dropProbability ?? 0);
    const delayNs = nonNegativeNs("delayNs", options.delayNs ?? 0);
    const delayP = probability("delayProbability", options.delayProbability ?? 1);
    if (drop === 0 && (delayNs === 0 || delayP === 0)) {
      throw new FaultSpecError("interrupt", "no effect", "needs dropProbability > 0, or delayNs > 0 with delayProbability > 0");
    }
    this.checkVm(options.vm);
    const [start, end] = this.window(options);
    return this.add(new InterruptFault(this, this.nextId++, start, end, options.vm ?? null, drop, delayNs, delayP));
  }

  /** Delays the hypervisor's monitor-page scans (of one VM or all) during a window. */
  injectMonitorDelay(options: MonitorFaultOptions): MonitorFault {
    const extra = nonNegativeNs("extraLatencyNs", options.extraLatencyNs);
    if (extra === 0) throw new FaultSpecError("extraLatencyNs", extra, "must be > 0");
    const p = probability("probability", options.probability ?? 1);
    this.checkVm(options.vm);
    const [start, end] = this.window(options);
    return this.add(new MonitorFault(this, this.nextId++, start, end, options.vm ?? null, extra, p));
  }

  /** Makes a host device stop answering during a window (default: from now, for ever). */
  stallHostDevice(device: StallableHostDevice, window: FaultWindow = {}): HostStallFault {
    const [start, end] = this.window(window);
    return this.add(new HostStallFault(this, this.nextId++, start, end, device));
  }

  /** Suspends every vCPU of `vm` for `durationNs` from `startNs` (a forced throttle). */
  suspendVm(vm: GuestPartition, options: SuspendFaultOptions): SuspendFault {
    this.checkVm(vm);
    const duration = nonNegativeNs("durationNs", options.durationNs);
    if (duration === 0) throw new FaultSpecError("durationNs", duration, "must be > 0");
    const [start, end] = this.window({ ...(options.startNs !== undefined ? { startNs: options.startNs } : {}), durationNs: duration });
    return this.add(new SuspendFault(this, this.nextId++, start, end as number, vm));
  }

  /** @internal Retires `f` (see `InjectedFault.remove`). */
  remove(f: InjectedFault): void {
    f.startEvent?.cancel();
    f.endEvent?.cancel();
    f.startEvent = null;
    f.endEvent = null;
    if (f.state === "active") {
      f.deactivate();
      f.endedAtNs = this.hv.sim.scheduler.now;
    }
    if (f.state === "scheduled" || f.state === "active") f.state = "removed";
    this.retire(f);
  }

  /** Drops a fault that will never act again, keeping its counts. */
  private retire(f: InjectedFault): void {
    const i = this.list.indexOf(f);
    if (i < 0) return;
    this.list.splice(i, 1);
    count(this.retired, f);
  }

  /**
   * @internal The hook of `Hypervisor.signalGuest`, called only while an
   * interrupt rule is active: −1 to drop this interrupt, else the extra
   * delay in ns (0 for none).
   */
  interruptFate(vm: GuestPartition): number {
    let extra = 0;
    const rules = this.interruptRules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as InterruptFault;
      if (r.vm !== null && r.vm !== vm) continue;
      r.seen++;
      if (this.draw(r.dropProbability)) {
        r.dropped++;
        vm.counters.interruptsDropped++;
        return -1;
      }
      if (r.delayNs > 0 && this.draw(r.delayProbability)) {
        r.delayed++;
        extra += r.delayNs;
      }
    }
    if (extra > 0) vm.counters.interruptsDelayed++;
    return extra;
  }

  /** @internal The hook of `MonitorPages.trigger`, called only while a monitor rule is active: extra scan latency, ns. */
  monitorExtraNs(vm: GuestPartition): number {
    let extra = 0;
    const rules = this.monitorRules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i] as MonitorFault;
      if (r.vm !== null && r.vm !== vm) continue;
      r.seen++;
      if (this.draw(r.probability)) {
        r.delayed++;
        extra += r.extraLatencyNs;
      }
    }
    if (extra > 0) vm.counters.monitorScansDelayed++;
    return extra;
  }

  /** Draws only for a probability strictly between 0 and 1 (so p = 1 rules use no randomness). */
  private draw(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.rng.chance(p);
  }

  private window(w: FaultWindow): [number, number | null] {
    const now = this.hv.sim.scheduler.now;
    const start = w.startNs === undefined ? now : Math.max(now, nonNegativeNs("startNs", w.startNs));
    if (w.durationNs === undefined) return [start, null];
    const d = nonNegativeNs("durationNs", w.durationNs);
    if (d === 0) throw new FaultSpecError("durationNs", d, "must be > 0 (omit it for a fault that lasts for ever)");
    return [start, start + d];
  }

  private checkVm(vm: GuestPartition | undefined): void {
    if (vm !== undefined && vm.hypervisor !== this.hv) throw new FaultSpecError("vm", vm.name, "belongs to another hypervisor");
  }

  private add<F extends InjectedFault>(f: F): F {
    this.list.push(f);
    const sched = this.hv.sim.scheduler;
    const start = (): void => {
      f.startEvent = null;
      f.state = "active";
      f.activatedAtNs = sched.now;
      f.activate();
    };
    if (f.startNs <= sched.now) start();
    else f.startEvent = sched.scheduleAt(f.startNs, start, `fault ${f.id} (${f.kind}) start`);
    if (f.endNs !== null) {
      f.endEvent = sched.scheduleAt(f.endNs, () => {
        f.endEvent = null;
        if (f.state !== "active") return;
        f.deactivate();
        f.state = "ended";
        f.endedAtNs = sched.now;
        this.retire(f);
      }, `fault ${f.id} (${f.kind}) end`);
    }
    return f;
  }
}

type MutableTotals = { -readonly [K in keyof FaultTotals]: FaultTotals[K] };

function count(t: MutableTotals, f: InjectedFault): void {
  if (f instanceof InterruptFault) {
    t.interruptsDropped += f.dropped;
    t.interruptsDelayed += f.delayed;
  } else if (f instanceof MonitorFault) t.monitorScansDelayed += f.delayed;
  else if (f instanceof HostStallFault && f.activatedAtNs !== null) t.hostStalls++;
  else if (f instanceof SuspendFault && f.activatedAtNs !== null) t.suspensions++;
}

function probability(field: string, p: number): number {
  if (typeof p !== "number" || !(p >= 0 && p <= 1)) throw new FaultSpecError(field, p, "must be a probability in [0, 1]");
  return p;
}

function nonNegativeNs(field: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new FaultSpecError(field, v, "must be a non-negative safe integer of nanoseconds");
  return v;
}

function removeFrom<T>(list: T[], x: T): void {
  const i = list.indexOf(x);
  if (i >= 0) list.splice(i, 1);
}
