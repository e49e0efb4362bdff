/**
 * Virtual processors (DESIGN.md "Time": "A vCPU runs one handler at a time;
 * an interrupt for a busy vCPU waits"; vmbus-core.md §5, §8).
 *
 * A vCPU executes *handlers*: SINT interrupt handlers (the guest's vmbus_isr)
 * and queued guest work (`run`). Exactly one runs at a time; a handler that
 * returns a promise keeps the vCPU busy until the promise settles, which is
 * how a slow guest handler (one that awaits `sleep` or `compute`) holds its
 * CPU. Interrupts raised meanwhile are latched per SINT, like an APIC IRR:
 * a second raise of a SINT that is already pending merges with it — nothing
 * is lost, because the ISR scans every event flag and the message slot.
 * When the vCPU frees up, pending interrupts are taken before queued work
 * (interrupts preempt thread-level work at the next boundary; the simulator
 * cannot preempt the middle of a JS function).
 *
 * A vCPU is also unavailable while it is *suspended* (throttling) and while
 * it pays for hypercalls: a hypercall's cost cannot stall the synchronous JS
 * that issued it, so it is charged as busy time that extends past the end of
 * the current handler.
 *
 * `currentVcpu()` names the vCPU whose handler is executing. By default it
 * is set during the synchronous part of a handler only (after an `await`
 * the handler's own `vcpu` argument is the reliable source). With the
 * hypervisor option `asyncVcpuContext` it follows the handler across awaits
 * through node's AsyncLocalStorage, at the price of Node's promise hooks
 * (measured ~2.5× slower promise-heavy runs on Node 20).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { InvalidArgumentError } from "../errors.js";
import type { Timer } from "../sim/scheduler.js";
import { HV_SYNIC_SINT_COUNT, VMBUS_MESSAGE_SINT, type HvStatus } from "./constants.js";
import { VcpuCounters } from "./counters.js";
import type { GuestPartition } from "./partition.js";
import type { Synic } from "./synic.js";
import { isThenable } from "../sim/settle.js";

export type SintHandler = (vcpu: Vcpu, sint: number) => void | PromiseLike<void>;

interface WorkItem {
  readonly fn: (vcpu: Vcpu) => unknown;
  readonly label: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

const ignore = (): void => undefined;

let syncCurrent: Vcpu | undefined;
let asyncContext: AsyncLocalStorage<Vcpu> | undefined;

/** The vCPU whose handler is running (see the file comment for the async rule). */
export function currentVcpu(): Vcpu | undefined {
  return syncCurrent ?? asyncContext?.getStore();
}

/** @internal Turns on AsyncLocalStorage tracking for vCPUs created with `asyncContext`. */
export function enableAsyncVcpuContext(): void {
  asyncContext ??= new AsyncLocalStorage<Vcpu>();
}


export class Vcpu {
  readonly counters = new VcpuCounters();
  /** "vm1/cpu0": used in event labels and errors. */
  readonly name: string;

  private running = false;
  private inPump = false;
  private runStartNs = 0;
  private runLabel = "";
  private activeSint = -1;
  private pendingSints = 0;
  private readonly sintPendingSince = new Float64Array(HV_SYNIC_SINT_COUNT);
  private readonly sintHandlers: (SintHandler | undefined)[] = new Array<SintHandler | undefined>(HV_SYNIC_SINT_COUNT).fill(undefined);
  private readonly sintTimers: (Timer | undefined)[] = new Array<Timer | undefined>(HV_SYNIC_SINT_COUNT).fill(undefined);
  private readonly sintLabels: readonly string[];
  private readonly work: WorkItem[] = [];
  private busyUntilNs = 0;
  private suspendedSinceNs = 0;
  private suspendedUntilNs = 0;
  /** Suspension time of finished suspension episodes (for `compute`). */
  private suspendedDoneNs = 0;
  private readonly pumpTimer: Timer;
  private readonly useAsyncContext: boolean;
  private readonly onHandlerDone: () => void;
  private readonly onSintFailed: (e: unknown) => void;

  constructor(
    readonly partition: GuestPartition,
    /** Guest CPU number (Linux `cpu`, index in `partition.vcpus`). */
    readonly cpu: number,
    /** Hypervisor VP index (what VMBus messages such as OPENCHANNEL's target_vp carry). */
    readonly vpIndex: number,
    readonly synic: Synic,
    asyncVcpuContext: boolean,
  ) {
    this.name = `${partition.name}/cpu${cpu}`;
    this.sintLabels = Array.from({ length: HV_SYNIC_SINT_COUNT }, (_, s) => `${this.name} SINT${s}`);
    this.useAsyncContext = asyncVcpuContext;
    if (asyncVcpuContext) enableAsyncVcpuContext();
    this.pumpTimer = partition.hypervisor.sim.scheduler.timer(`${this.name} resume`, () => this.pump());
    this.onHandlerDone = () => this.endHandler();
    this.onSintFailed = (e: unknown) => {
      const label = this.sintLabels[this.activeSint] ?? this.name;
      this.endHandler();
      this.partition.hypervisor.sim.scheduler.reportError(label, e);
    };
  }

  /** True while a handler runs (including the time its promise is pending). */
  get busy(): boolean {
    return this.running;
  }

  /** True while the vCPU is suspended by throttling. */
  get suspended(): boolean {
    return this.partition.hypervisor.sim.scheduler.now < this.suspendedUntilNs;
  }

  get suspendedUntil(): number {
    return this.suspendedUntilNs;
  }

  /** Installs (or with undefined removes) the handler of SINT `sint` — the guest programming SINTx. */
  setSintHandler(sint: number, handler: SintHandler | undefined): void {
    checkSint(sint);
    this.sintHandlers[sint] = handler;
    if (handler !== undefined && (this.pendingSints & (1 << sint)) !== 0) this.pump();
  }

  /**
   * Queues guest work on this vCPU; it runs when no handler is running and
   * no interrupt is pending. Resolves with `fn`'s result (or rejects with
   * its error — such errors go to the caller, not to the scheduler).
   * Awaiting `run` on the vCPU you are running on deadlocks, as it would on
   * a real CPU.
   */
  /**
   * Runs `fn` on this vCPU (so `currentVcpu()` is this vCPU while it runs:
   * channel choice, signalling) and returns its promise WITHOUT keeping the
   * vCPU busy until that promise settles. This is how guest code submits
   * I/O: the completion comes back as an interrupt, which must be able to
   * run on this very vCPU — `run` with an awaited I/O would hold the vCPU
   * and the interrupt would wait for ever.
   */
  issue<T>(fn: (vcpu: Vcpu) => PromiseLike<T>, label = "issue"): Promise<T> {
    // One promise, not two: the work item itself resolves nothing (the vCPU
    // is free as soon as `fn` returns); `fn`'s promise settles the caller's.
    return new Promise<T>((resolve, reject) => {
      this.work.push({
        fn: (v) => {
          fn(v).then(resolve, reject);
        },
        label,
        resolve: ignore,
        reject,
      });
      this.pump();
    });
  }

  run<T>(fn: (vcpu: Vcpu) => T | PromiseLike<T>, label = "work"): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.work.push({ fn, label, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  /**
   * Guest CPU work of `ns` nanoseconds: resolves after `ns` of time during
   * which this vCPU was *not* suspended (a throttled VM's computation stops).
   */
  async compute(ns: number): Promise<void> {
    const sched = this.partition.hypervisor.sim.scheduler;
    let remaining = ns;
    for (;;) {
      const resumeAt = Math.max(sched.now, this.suspendedUntilNs);
      const before = this.suspendedNsUpTo(resumeAt);
      await sched.sleep(resumeAt - sched.now + remaining, `${this.name} compute`);
      const lost = this.suspendedNsUpTo(sched.now) - before;
      if (lost <= 0) return;
      remaining = lost;
    }
  }

  /** HVCALL_POST_MESSAGE from this vCPU (vmbus-core.md §7.4). */
  postMessage(connectionId: number, messageType: number, payload: Uint8Array): HvStatus {
    return this.partition.hypervisor.hypercallPostMessage(this, connectionId, messageType, payload);
  }

  /** HVCALL_SIGNAL_EVENT from this vCPU (vmbus-core.md §3.4). */
  signalEvent(connectionId: number): HvStatus {
    return this.partition.hypervisor.hypercallSignalEvent(this, connectionId);
  }

  /** @internal Charges `ns` of vCPU time (a hypercall's cost). */
  charge(ns: number): void {
    if (ns <= 0) return;
    const now = this.partition.hypervisor.sim.scheduler.now;
    this.busyUntilNs = Math.max(this.busyUntilNs, now) + ns;
  }

  /** @internal Raises SINT `sint` after `delayNs`; a raise already in flight absorbs this one. */
  raiseSintAfter(sint: number, delayNs: number): void {
    if (delayNs <= 0) {
      this.raiseSint(sint);
      return;
    }
    let t = this.sintTimers[sint];
    if (t === undefined) {
      t = this.partition.hypervisor.sim.scheduler.timer(`${this.sintLabels[sint] ?? ""} raise`, () => this.raiseSint(sint));
      this.sintTimers[sint] = t;
    }
    if (t.armed) {
      this.counters.interruptsCoalesced++;
      return;
    }
    t.arm(delayNs);
  }

  /** @internal Latches SINT `sint` as pending and takes it as soon as the vCPU is free. */
  raiseSint(sint: number): void {
    const bit = 1 << sint;
    if ((this.pendingSints & bit) !== 0) {
      this.counters.interruptsCoalesced++;
      return;
    }
    this.pendingSints |= bit;
    const now = this.partition.hypervisor.sim.scheduler.now;
    this.sintPendingSince[sint] = now;
    if (this.running || this.busyUntilNs > now || this.suspendedUntilNs > now) this.counters.interruptsDeferred++;
    this.pump();
  }

  /** @internal Suspends the vCPU until `untilNs` (extends an ongoing suspension). */
  suspendUntil(untilNs: number): void {
    const now = this.partition.hypervisor.sim.scheduler.now;
    if (this.suspendedUntilNs <= now) {
      // A new episode: bank the previous one so compute() can measure lost time.
      this.suspendedDoneNs += this.suspendedUntilNs - this.suspendedSinceNs;
      this.suspendedSinceNs = now;
    }
    if (untilNs > this.suspendedUntilNs) this.suspendedUntilNs = untilNs;
  }

  private suspendedNsUpTo(t: number): number {
    const end = Math.min(t, this.suspendedUntilNs);
    return this.suspendedDoneNs + Math.max(0, end - this.suspendedSinceNs);
  }

  private pump(): void {
    if (this.running || this.inPump) return;
    this.inPump = true;
    try {
      while (!this.running && (this.pendingSints !== 0 || this.work.length > 0)) {
        const now = this.partition.hypervisor.sim.scheduler.now;
        const readyAt = Math.max(this.busyUntilNs, this.suspendedUntilNs);
        if (readyAt > now) {
          if (!this.pumpTimer.armed || this.pumpTimer.dueNs !== readyAt) this.pumpTimer.armAt(readyAt);
          return;
        }
        if (this.pendingSints !== 0) {
          const sint = 31 - Math.clz32(this.pendingSints & -this.pendingSints);
          this.pendingSints &= ~(1 << sint);
          this.takeInterrupt(sint, now);
        } else {
          this.runWork(this.work.shift() as WorkItem, now);
        }
      }
    } finally {
      this.inPump = false;
    }
  }

  private takeInterrupt(sint: number, now: number): void {
    const c = this.counters;
    c.sintInterrupts[sint] = (c.sintInterrupts[sint] as number) + 1;
    if (sint === VMBUS_MESSAGE_SINT) c.vmbusInterrupts++;
    const hv = this.partition.hypervisor;
    const tracer = hv.sim.tracer;
    if (tracer.wants("interruptDelivered")) {
      tracer.emit("interruptDelivered", {
        timeNs: now,
        partitionId: this.partition.id,
        vpIndex: this.vpIndex,
        sint,
        waitedNs: now - (this.sintPendingSince[sint] as number),
      });
    }
    const handler = this.sintHandlers[sint];
    if (handler === undefined) {
      c.unhandledInterrupts++;
      return;
    }
    this.activeSint = sint;
    this.beginHandler(this.sintLabels[sint] as string, now);
    let r: unknown;
    const prev = syncCurrent;
    syncCurrent = this;
    try {
      r = this.useAsyncContext && asyncContext !== undefined ? asyncContext.run(this, handler, this, sint) : handler(this, sint);
    } catch (e) {
      syncCurrent = prev;
      this.onSintFailed(e);
      return;
    }
    syncCurrent = prev;
    if (isThenable(r)) r.then(this.onHandlerDone, this.onSintFailed);
    else this.endHandler();
  }

  private runWork(item: WorkItem, now: number): void {
    this.beginHandler(item.label, now);
    let r: unknown;
    const prev = syncCurrent;
    syncCurrent = this;
    try {
      r = this.useAsyncContext && asyncContext !== undefined ? asyncContext.run(this, item.fn, this) : item.fn(this);
    } catch (e) {
      syncCurrent = prev;
      this.endHandler();
      item.reject(e);
      return;
    }
    syncCurrent = prev;
    if (isThenable(r)) {
      r.then(
        (v) => {
          this.endHandler();
          item.resolve(v);
        },
        (e: unknown) => {
          this.endHandler();
          item.reject(e);
        },
      );
    } else {
      this.endHandler();
      item.resolve(r);
    }
  }

  private beginHandler(label: string, now: number): void {
    this.running = true;
    this.runLabel = label;
    this.runStartNs = now;
  }

  private endHandler(): void {
    this.running = false;
    this.activeSint = -1;
    this.counters.handlersRun++;
    const hv = this.partition.hypervisor;
    const tracer = hv.sim.tracer;
    if (tracer.wants("vcpuRun")) {
      const now = hv.sim.scheduler.now;
      tracer.emit("vcpuRun", {
        timeNs: this.runStartNs,
        partitionId: this.partition.id,
        vpIndex: this.vpIndex,
        label: this.runLabel,
        startNs: this.runStartNs,
        durNs: now - this.runStartNs,
      });
    }
    this.pump();
  }
}

function checkSint(sint: number): void {
  if (!Number.isInteger(sint) || sint < 0 || sint >= HV_SYNIC_SINT_COUNT) {
    throw new InvalidArgumentError("sint", sint, `must be in [0, ${HV_SYNIC_SINT_COUNT})`);
  }
}
