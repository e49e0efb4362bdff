/**
 * Virtual clock and event scheduler (DESIGN.md "Time"; issue 3, core/sim).
 *
 * Virtual time is an integer count of nanoseconds. Events run in (time,
 * insertion) order; see `event-queue.ts` for why the tie-break is the
 * insertion sequence.
 *
 * ## Promise continuations run between events (microtask draining)
 *
 * Driver and example code is written with async/await. When an event resolves
 * a promise (say the one `sleep()` returned), the awaiting code continues in a
 * *microtask*, not inside the event. If the scheduler popped the next event
 * right away, that continuation would run after the clock had already moved,
 * and would schedule its follow-up work at the wrong time.
 *
 * So every `run*` method is async and, after each event, *drains* the
 * microtask queue before the next event, without ever yielding to the
 * macrotask queue (no timers, no I/O). There are two ways to know when the
 * queue is empty (`SchedulerOptions.microtaskDrain`):
 *
 * - **"next-tick"** (the default under Node): from inside a microtask the
 *   drain asks for a `process.nextTick` callback. Node runs such callbacks
 *   only once V8's microtask queue is empty — `processTicksAndRejections`
 *   runs the tick queue, then all microtasks, and loops while ticks were
 *   queued meanwhile — so the callback marks the exact end of every
 *   continuation chain, however long, for the price of one tick. (The first
 *   hop into a microtask matters: a tick queued from plain synchronous code
 *   runs *before* pending microtasks.)
 * - **"quiet-window"** (where there is no `process.nextTick`): the drain
 *   awaits an already-resolved promise in a loop. Each turn lets exactly one
 *   "generation" of pending microtasks run. The loop stops after
 *   `microtaskQuietTicks` consecutive turns in which nothing touched the
 *   scheduler (no event was scheduled, armed or cancelled, no error
 *   reported, no awaited promise settled). Any scheduler activity resets the
 *   count, so a chain of any length is followed as long as it interacts
 *   with the simulation at least once every `microtaskQuietTicks` turns; a
 *   longer pure-compute stretch still continues at the same point of the
 *   same run on every execution (microtasks run in FIFO order), only later
 *   in virtual time than intended. Before concluding that nothing is left
 *   to do (idle, `runUntil` reaching its time, deadlock), this mode spends
 *   up to `idleMicrotaskTicks` more turns looking for late work. It costs
 *   `microtaskQuietTicks` turns (about 1 µs) per event, where "next-tick"
 *   costs one.
 *
 * Either way the order of everything is fixed by the program, so the same
 * seed gives the same run. A chain that waits on a real macrotask (a timer,
 * file I/O with a callback) is not part of the drain in either mode.
 *
 * ## Errors in events
 *
 * An event handler that throws (or returns a promise that rejects), and any
 * error another layer reports through `reportError` (e.g. a vCPU interrupt
 * handler), is never swallowed: it is wrapped in a `SimEventError` naming the
 * event's label and time, emitted as a `schedulerError` trace event, queued,
 * and the running `run*` call rejects with it at the next event boundary.
 * The event queue is left intact, so a test can catch the error and run on;
 * further queued errors are thrown by the following `run*` calls, one each.
 */
import { InvalidArgumentError } from "../errors.js";
import type { Tracer } from "../trace/events.js";
import { SimDeadlineError, SimDeadlockError, SimEventError, SimReentrancyError } from "./errors.js";
import { EventQueue, SimEventNode } from "./event-queue.js";
import { isThenable } from "./settle.js";

/** See `SchedulerOptions.microtaskDrain`. */
export type MicrotaskDrain = "next-tick" | "quiet-window";

/** Node's `process.nextTick`, where there is one. */
const NEXT_TICK: ((fn: () => void) => void) | undefined = (() => {
  const p = (globalThis as { process?: { nextTick?: unknown } }).process;
  return typeof p?.nextTick === "function" ? (p.nextTick as (fn: () => void) => void).bind(p) : undefined;
})();

/** Anything that can tell the virtual time. */
export interface Clock {
  /** Virtual time in nanoseconds. */
  readonly now: number;
}

export interface SchedulerOptions {
  /** Receives `schedulerError` events. */
  readonly tracer?: Tracer;
  /**
   * How the scheduler knows that the continuations of an event have all
   * run (see the file comment). Default "next-tick" where `process.nextTick`
   * exists, else "quiet-window".
   */
  readonly microtaskDrain?: MicrotaskDrain;
  /** "quiet-window" only: consecutive quiet microtask turns that end the drain after an event. Default 32. */
  readonly microtaskQuietTicks?: number;
  /** "quiet-window" only: extra microtask turns spent looking for late work before declaring idle or deadlock. Default 1000. */
  readonly idleMicrotaskTicks?: number;
}

/** A scheduled one-shot event. */
export interface EventHandle {
  readonly label: string;
  /** Virtual time the event is (or was) due. */
  readonly timeNs: number;
  /** True until the event ran or was cancelled. */
  readonly pending: boolean;
  /** Removes the event from the queue; returns false if it already ran or was cancelled. */
  cancel(): boolean;
}

export interface RunUntilSettledOptions {
  /** Names the promise in deadlock / deadline errors. */
  readonly what?: string;
  /** Give up (SimDeadlineError) rather than run events later than this. */
  readonly deadlineNs?: number;
}

export type EventFn = () => void | PromiseLike<void>;

/**
 * Threaded mode (core/threads): how a scheduler hears of work that another
 * thread posted, and when it may let virtual time move. Without a gate (the
 * default) the scheduler is the deterministic one described above.
 */
export interface SchedulerGate {
  /**
   * Called before each event and before the scheduler concludes it is
   * idle: moves work another thread posted into this scheduler (arms
   * timers, raises interrupts). Must be cheap when nothing arrived.
   */
  poll(): void;
  /**
   * May the next event, due at `dueNs` (undefined: the queue is empty), run
   * now? Returns undefined if so, else a promise that resolves when it may,
   * or when another thread posted work. Return undefined for an empty queue
   * to end the run as an ungated scheduler would (idle, or deadlock).
   */
  hold(dueNs: number | undefined): Promise<void> | undefined;
  /**
   * An event was queued at `timeNs`, or (with `timeNs` = now) the work a
   * `runUntilSettled` waits for settled — by a continuation that ran while
   * the scheduler waited on `hold`'s promise. A gate holding for a later
   * event, or for none, must end that hold so the scheduler looks again.
   */
  queued?(timeNs: number): void;
}

const RESOLVED: Promise<void> = Promise.resolve();


class ScheduledEvent extends SimEventNode implements EventHandle {
  constructor(
    private readonly owner: Scheduler,
    label: string,
    fn: () => unknown,
  ) {
    super(label, fn);
  }
  get timeNs(): number {
    return this.time;
  }
  get pending(): boolean {
    return this.index >= 0;
  }
  cancel(): boolean {
    return this.owner.cancelNode(this);
  }
}

/**
 * A reusable one-shot event: arming it again reuses the same queue node, so
 * hot paths (interrupt delivery, monitor scans, host wakeups) schedule work
 * without allocating.
 */
export class Timer {
  private readonly node: SimEventNode;

  constructor(
    private readonly scheduler: Scheduler,
    label: string,
    fn: () => void,
  ) {
    this.node = new SimEventNode(label, fn);
  }

  get armed(): boolean {
    return this.node.index >= 0;
  }

  /** Due time; meaningful only while armed. */
  get dueNs(): number {
    return this.node.time;
  }

  get label(): string {
    return this.node.label;
  }

  /** (Re)arms the timer `delayNs` from now; an armed timer is moved, not duplicated. */
  arm(delayNs: number): void {
    this.scheduler.enqueue(this.node, this.scheduler.now + checkDelay(delayNs));
  }

  /** (Re)arms the timer at absolute virtual time `timeNs` (≥ now). */
  armAt(timeNs: number): void {
    this.scheduler.enqueue(this.node, timeNs);
  }

  cancel(): boolean {
    return this.scheduler.cancelNode(this.node);
  }
}

function checkDelay(delayNs: number): number {
  if (!Number.isSafeInteger(delayNs) || delayNs < 0) {
    throw new InvalidArgumentError("delayNs", delayNs, "must be a non-negative safe integer of nanoseconds");
  }
  return delayNs;
}

export class Scheduler implements Clock {
  private nowNs = 0;
  private seq = 0;
  /** Bumped by everything that can create more work; the microtask drain watches it. */
  private activity = 0;
  private running = false;
  private ran = 0;
  private readonly queue = new EventQueue();
  private readonly errors: SimEventError[] = [];
  private readonly tracer: Tracer | undefined;
  private readonly quietTicks: number;
  private readonly idleTicks: number;
  /** Set in "next-tick" mode. */
  private readonly nextTick: ((fn: () => void) => void) | undefined;
  private gate: SchedulerGate | undefined;

  constructor(options: SchedulerOptions = {}) {
    this.tracer = options.tracer;
    this.quietTicks = positiveInt("microtaskQuietTicks", options.microtaskQuietTicks ?? 32);
    this.idleTicks = positiveInt("idleMicrotaskTicks", options.idleMicrotaskTicks ?? 1000);
    const mode = options.microtaskDrain ?? (NEXT_TICK !== undefined ? "next-tick" : "quiet-window");
    if (mode !== "next-tick" && mode !== "quiet-window") {
      throw new InvalidArgumentError("microtaskDrain", mode, 'must be "next-tick" or "quiet-window"');
    }
    if (mode === "next-tick" && NEXT_TICK === undefined) {
      throw new InvalidArgumentError("microtaskDrain", mode, "needs process.nextTick, which this runtime does not have");
    }
    this.nextTick = mode === "next-tick" ? NEXT_TICK : undefined;
  }

  /** How this scheduler drains continuations after an event (see the file comment). */
  get microtaskDrain(): MicrotaskDrain {
    return this.nextTick !== undefined ? "next-tick" : "quiet-window";
  }

  get now(): number {
    return this.nowNs;
  }

  /** Events waiting in the queue. */
  get pendingEvents(): number {
    return this.queue.size;
  }

  /** Events run so far. */
  get eventsRun(): number {
    return this.ran;
  }

  /** Due time of the next queued event, or undefined when idle. */
  get nextEventNs(): number | undefined {
    return this.queue.peek()?.time;
  }

  /** Errors collected but not yet thrown by a `run*` call. */
  get pendingErrors(): readonly SimEventError[] {
    return this.errors;
  }

  /**
   * Threaded mode: installs (or with undefined removes) the gate through
   * which other threads' work enters this scheduler (see `SchedulerGate`).
   */
  setGate(gate: SchedulerGate | undefined): void {
    this.gate = gate;
  }

  /** Runs `fn` `delayNs` from now. `label` names the event in errors and traces. */
  schedule(delayNs: number, fn: EventFn, label = "event"): EventHandle {
    const ev = new ScheduledEvent(this, label, fn);
    this.enqueue(ev, this.nowNs + checkDelay(delayNs));
    return ev;
  }

  /** Runs `fn` at absolute virtual time `timeNs` (≥ now). */
  scheduleAt(timeNs: number, fn: EventFn, label = "event"): EventHandle {
    const ev = new ScheduledEvent(this, label, fn);
    this.enqueue(ev, timeNs);
    return ev;
  }

  /** A promise resolved by an event `ns` from now. */
  sleep(ns: number, label = "sleep"): Promise<void> {
    return new Promise<void>((resolve) => {
      this.schedule(ns, resolve, label);
    });
  }

  /** A reusable timer (see `Timer`). */
  timer(label: string, fn: () => void): Timer {
    return new Timer(this, label, fn);
  }

  /**
   * Records an error thrown by simulated code that has no caller to receive
   * it (an interrupt handler, a host wakeup). The running `run*` rejects with
   * it. See the file comment.
   */
  reportError(label: string, error: unknown): void {
    const err = error instanceof SimEventError ? error : new SimEventError(label, this.nowNs, error);
    this.errors.push(err);
    this.activity++;
    const t = this.tracer;
    if (t !== undefined && t.wants("schedulerError")) {
      t.emit("schedulerError", {
        timeNs: this.nowNs,
        partitionId: null,
        vpIndex: null,
        label: err.label,
        message: err.message,
      });
    }
  }

  /** Runs events until none is left (and no continuation schedules more). */
  async runUntilIdle(): Promise<void> {
    await this.loop("runUntilIdle", Infinity, undefined);
  }

  /**
   * Runs every event due at or before `timeNs`, then sets the clock to
   * `timeNs` (the clock never moves backwards: `timeNs` must be ≥ now).
   */
  async runUntil(timeNs: number): Promise<void> {
    if (!Number.isSafeInteger(timeNs) || timeNs < this.nowNs) {
      throw new InvalidArgumentError("timeNs", timeNs, `must be a safe integer ≥ now (${this.nowNs} ns)`);
    }
    await this.loop("runUntil", timeNs, undefined);
    if (this.nowNs < timeNs) this.nowNs = timeNs;
  }

  /** `runUntil(now + ns)`. */
  async runFor(ns: number): Promise<void> {
    await this.runUntil(this.nowNs + checkDelay(ns));
  }

  /**
   * Runs events until `promise` settles; returns its value or throws its
   * error. Throws `SimDeadlockError` if the queue empties while it is still
   * pending, `SimDeadlineError` if `deadlineNs` is reached first. A function
   * is called first and its promise awaited.
   */
  async runUntilSettled<T>(
    promise: PromiseLike<T> | (() => PromiseLike<T>),
    options: RunUntilSettledOptions = {},
  ): Promise<T> {
    const what = options.what ?? "runUntilSettled";
    const deadline = options.deadlineNs ?? Infinity;
    if (this.running) throw new SimReentrancyError("runUntilSettled");
    const p = typeof promise === "function" ? promise() : promise;
    let state = 0;
    let value: T | undefined;
    let error: unknown;
    p.then(
      (v) => {
        state = 1;
        value = v;
        this.activity++;
        // Settled by a continuation that ran while a gate held us: look now.
        this.gate?.queued?.(this.nowNs);
      },
      (e: unknown) => {
        state = 2;
        error = e;
        this.activity++;
        this.gate?.queued?.(this.nowNs);
      },
    );
    await this.loop("runUntilSettled", deadline, () => state !== 0);
    if (state === 1) return value as T;
    if (state === 2) throw error;
    const next = this.queue.peek();
    if (next !== undefined) throw new SimDeadlineError(what, deadline, next.time);
    throw new SimDeadlockError(what, this.nowNs);
  }

  /** @internal Queues `node` at `timeNs`, moving it if already queued. */
  enqueue(node: SimEventNode, timeNs: number): void {
    if (!Number.isSafeInteger(timeNs) || timeNs < this.nowNs) {
      throw new InvalidArgumentError(
        `time of event '${node.label}'`,
        timeNs,
        `must be a safe integer ≥ now (${this.nowNs} ns)`,
      );
    }
    if (node.index >= 0) this.queue.remove(node);
    node.time = timeNs;
    node.seq = this.seq++;
    this.queue.push(node);
    this.activity++;
    this.gate?.queued?.(timeNs);
  }

  /** @internal */
  cancelNode(node: SimEventNode): boolean {
    const removed = this.queue.remove(node);
    if (removed) this.activity++;
    return removed;
  }

  private async loop(method: string, untilNs: number, settled: (() => boolean) | undefined): Promise<void> {
    if (this.running) throw new SimReentrancyError(method);
    this.running = true;
    try {
      for (;;) {
        const gate = this.gate;
        if (gate !== undefined) gate.poll();
        await this.drain();
        this.throwFirstError();
        if (settled !== undefined && settled()) return;
        if (gate !== undefined) {
          const next = this.queue.peek();
          const due = next !== undefined && next.time <= untilNs ? next.time : undefined;
          if (due === undefined) {
            // Look for late work first, as below; then wait for the other thread.
            await this.idleDrain(untilNs, settled);
            this.throwFirstError();
            if (settled !== undefined && settled()) return;
            if (this.hasEventBy(untilNs)) continue;
            const seen = this.activity;
            gate.poll();
            if (this.activity !== seen) continue;
          }
          const wait = gate.hold(due);
          if (wait !== undefined) {
            await wait;
            continue;
          }
          if (due === undefined) return;
          this.step();
          continue;
        }
        if (!this.hasEventBy(untilNs)) {
          // A slow continuation chain may still schedule something: look
          // harder before concluding that this run is over.
          await this.idleDrain(untilNs, settled);
          this.throwFirstError();
          if (settled !== undefined && settled()) return;
          if (!this.hasEventBy(untilNs)) return;
          // Late work appeared: drain its chain fully before running it.
          continue;
        }
        this.step();
      }
    } finally {
      this.running = false;
    }
  }

  private hasEventBy(untilNs: number): boolean {
    const next = this.queue.peek();
    return next !== undefined && next.time <= untilNs;
  }

  private step(): void {
    const node = this.queue.pop() as SimEventNode;
    this.nowNs = node.time;
    this.ran++;
    let r: unknown;
    try {
      r = node.fn();
    } catch (e) {
      this.reportError(node.label, e);
      return;
    }
    if (isThenable(r)) {
      const label = node.label;
      r.then(undefined, (e: unknown) => this.reportError(label, e));
    }
  }

  /**
   * The drain after one event (see the file comment).
   *
   * "quiet-window": a chain of `.then` callbacks on an already-resolved
   * promise rather than an async loop of `await`s — one turn then costs one
   * reaction job instead of an await's suspend and resume. Each turn is
   * still exactly one microtask generation.
   */
  private drain(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.drainDone = resolve;
      if (this.nextTick !== undefined) {
        RESOLVED.then(this.drainHop);
        return;
      }
      this.drainSeen = this.activity;
      this.drainQuiet = 0;
      RESOLVED.then(this.drainTick);
    });
  }

  private drainSeen = 0;
  private drainQuiet = 0;
  private drainDone: (() => void) | null = null;
  private readonly drainTick = (): void => {
    if (this.activity !== this.drainSeen) {
      this.drainSeen = this.activity;
      this.drainQuiet = 0;
    } else if (++this.drainQuiet >= this.quietTicks) {
      this.drainEnd();
      return;
    }
    RESOLVED.then(this.drainTick);
  };
  /** "next-tick": runs as a microtask, so the tick it asks for runs once the microtask queue is empty. */
  private readonly drainHop = (): void => {
    (this.nextTick as (fn: () => void) => void)(this.drainEnd);
  };
  private readonly drainEnd = (): void => {
    const done = this.drainDone as () => void;
    this.drainDone = null;
    done();
  };

  private async idleDrain(untilNs: number, settled: (() => boolean) | undefined): Promise<void> {
    if (this.nextTick !== undefined) {
      // The drain was exact: one more finds whatever the checks since then started.
      await this.drain();
      return;
    }
    for (let i = 0; i < this.idleTicks; i++) {
      if (this.errors.length > 0 || this.hasEventBy(untilNs) || (settled !== undefined && settled())) return;
      await RESOLVED;
    }
  }

  private throwFirstError(): void {
    const e = this.errors.shift();
    if (e !== undefined) throw e;
  }
}

function positiveInt(field: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(field, v, "must be a positive integer");
  return v;
}
