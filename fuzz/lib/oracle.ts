/**
 * The properties every fuzz target checks (issue 8, anchors.md §7), as
 * reusable pieces:
 *
 * - only typed errors surface: anything thrown, rejected or reported to the
 *   scheduler must be a `VmbusSimError`; a TypeError or RangeError is a bug
 *   (`requireTyped`, `SimDriver`);
 * - the scheduler keeps running: runs finish, awaited work settles before a
 *   virtual-time deadline, and hostile input cannot turn into an endless
 *   storm of events (`SimDriver`);
 * - guest memory that was never shared stays untouched and unread
 *   (`SecretPages`: canary pages planted next to the shared buffers, compared
 *   byte for byte, and their marker looked for in everything that comes out);
 * - no promise is left rejected with nobody listening (`UnhandledRejections`).
 *
 * A violated property throws `FuzzViolation`, which is not a `VmbusSimError`
 * on purpose: the harness itself must never mistake it for a typed error of
 * the simulation.
 */
import {
  PAGE_SIZE,
  SimDeadlineError,
  SimDeadlockError,
  SimEventError,
  VmbusSimError,
  type GuestMemory,
  type Scheduler,
} from "../../core/index.js";

/** A property of the fuzz oracle does not hold. `property` names which one. */
export class FuzzViolation extends Error {
  constructor(
    readonly property: string,
    message: string,
  ) {
    super(`[${property}] ${message}`);
    this.name = "FuzzViolation";
  }
}

export function isTyped(e: unknown): e is VmbusSimError {
  return e instanceof VmbusSimError;
}

export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `${typeof e}: ${String(e)}`;
}

/** Throws a `FuzzViolation` unless `e` is a typed simulation error. */
export function requireTyped(e: unknown, where: string): asserts e is VmbusSimError {
  if (e instanceof FuzzViolation) throw e;
  if (!isTyped(e)) {
    const stack = e instanceof Error && e.stack !== undefined ? `\n${e.stack.split("\n").slice(1, 6).join("\n")}` : "";
    throw new FuzzViolation("typed-errors", `${where}: an untyped error escaped: ${describeError(e)}${stack}`);
  }
}

/** Runs `fn`; anything it throws must be typed (and is returned). */
export function typedOnly<T>(where: string, fn: () => T): { ok: true; value: T } | { ok: false; error: VmbusSimError } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    requireTyped(e, where);
    return { ok: false, error: e };
  }
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: VmbusSimError };

/** Wraps a promise so that it never rejects; an untyped rejection becomes a violation when looked at. */
export function outcome<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** Virtual time one slice of a run covers: the granularity of the event-storm check. */
const SLICE_NS = 1_000_000;

export interface SimDriverOptions {
  /** Events one fuzz run may execute before it counts as an event storm (livelock). Default 2 000 000. */
  readonly maxEvents?: number;
  /** Scheduler errors with a typed cause tolerated before giving up. Default 1000. */
  readonly maxTypedErrors?: number;
}

/**
 * Runs the simulation for a fuzz target and turns what goes wrong into
 * violations. A `SimEventError` whose cause is typed is a defined reaction
 * that happened to have no caller (counted in `typedSchedulerErrors`, and
 * the run goes on with the queue intact); an untyped cause is a bug.
 */
export class SimDriver {
  typedSchedulerErrors = 0;
  private readonly startEvents: number;
  private readonly maxEvents: number;
  private readonly maxTypedErrors: number;

  constructor(
    readonly scheduler: Scheduler,
    options: SimDriverOptions = {},
  ) {
    this.startEvents = scheduler.eventsRun;
    this.maxEvents = options.maxEvents ?? 2_000_000;
    this.maxTypedErrors = options.maxTypedErrors ?? 1000;
  }

  get now(): number {
    return this.scheduler.now;
  }

  private onSchedulerError(e: unknown, what: string): void {
    if (e instanceof SimEventError) {
      requireTyped(e.cause, `${what}: event '${e.label}'`);
      if (++this.typedSchedulerErrors > this.maxTypedErrors) {
        throw new FuzzViolation("scheduler", `${what}: more than ${this.maxTypedErrors} errors reported to the scheduler (last: ${e.message})`);
      }
      return;
    }
    if (e instanceof SimDeadlockError || e instanceof SimDeadlineError) {
      throw new FuzzViolation("scheduler", `${what}: ${e.message}`);
    }
    requireTyped(e, what);
    throw new FuzzViolation("scheduler", `${what}: the run stopped with ${describeError(e)}`);
  }

  /**
   * Where the next slice ends: `SLICE_NS` past the next event (or now), so
   * that every slice runs at least one event — a quiet stretch of virtual
   * time is skipped in one step, not walked through slice by slice.
   */
  private sliceEnd(): number {
    const now = this.scheduler.now;
    const next = this.scheduler.nextEventNs;
    if (next === undefined) return Number.MAX_SAFE_INTEGER;
    return Math.max(now, next) + SLICE_NS;
  }

  private checkStorm(what: string): void {
    const n = this.scheduler.eventsRun - this.startEvents;
    if (n > this.maxEvents) throw new FuzzViolation("scheduler", `${what}: ${n} events in one fuzz run (an event storm: the simulation does not quiesce)`);
  }

  /**
   * Runs virtual time forward by `ns`, in slices of at most `SLICE_NS` so
   * that a storm of events is caught within one slice. (A storm at a
   * single instant never ends a slice: the scheduler offers no hook per
   * event, so that one shows as a hang of the run, caught by a test's
   * timeout or seen on the campaign's progress line.)
   */
  async runFor(ns: number, what = "runFor"): Promise<void> {
    const until = this.scheduler.now + ns;
    while (this.scheduler.now < until || ns === 0) {
      const to = Math.min(until, this.sliceEnd());
      try {
        await this.scheduler.runUntil(to);
      } catch (e) {
        this.onSchedulerError(e, what);
      }
      this.checkStorm(what);
      if (ns === 0) break;
    }
  }

  /**
   * Runs until `work` settles, at most `withinNs` of virtual time. Not
   * settling by then is a violation (a lost request, a hang); a rejection
   * must be typed and is returned as the outcome.
   */
  async settle<T>(work: Promise<T>, withinNs: number, what: string): Promise<Outcome<T>> {
    const wrapped = outcome(work);
    const deadline = this.scheduler.now + withinNs;
    let result: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    for (;;) {
      // In slices, as runFor, so that a storm is caught between two.
      const slice = Math.min(deadline, this.sliceEnd());
      try {
        result = await this.scheduler.runUntilSettled(wrapped, { what, deadlineNs: slice });
        break;
      } catch (e) {
        if (e instanceof SimDeadlineError && slice < deadline) {
          this.checkStorm(what);
          continue;
        }
        if (e instanceof SimDeadlineError) throw new FuzzViolation("settles", `${what}: not settled within ${withinNs} ns of virtual time (lost or hung)`);
        if (e instanceof SimDeadlockError) throw new FuzzViolation("settles", `${what}: never settles (the event queue ran dry)`);
        this.onSchedulerError(e, what);
      }
      this.checkStorm(what);
    }
    this.checkStorm(what);
    if (result.ok) return result;
    requireTyped(result.error, what);
    return { ok: false, error: result.error };
  }

  /** Like `settle`, but a rejection is a violation too: for the clean bystander's requests. */
  async expectOk<T>(work: Promise<T>, withinNs: number, what: string): Promise<T> {
    const r = await this.settle(work, withinNs, what);
    if (!r.ok) throw new FuzzViolation("bystander", `${what}: failed with ${describeError(r.error)}`);
    return r.value;
  }

  /** Errors still queued in the scheduler must be typed too. */
  finish(what = "end of run"): void {
    for (const e of this.scheduler.pendingErrors) requireTyped(e.cause, `${what}: queued scheduler error '${e.label}'`);
    this.checkStorm(what);
  }
}

/** 16 bytes that mark every byte of a secret page (and nothing else in a run). */
export const CANARY = Uint8Array.of(0xc4, 0x7a, 0x1b, 0x9e, 0x55, 0xd3, 0x0f, 0xe6, 0x3c, 0xa1, 0x68, 0xb2, 0x91, 0x2d, 0xf4, 0x07);

/** The canary's 8-byte windows at every phase, for a native search. */
const CANARY_WINDOWS: readonly Buffer[] = Array.from({ length: CANARY.length }, (_, k) =>
  Buffer.from(Array.from({ length: 8 }, (_, j) => CANARY[(k + j) % CANARY.length] as number)),
);

/** True when `bytes` contains 8 consecutive bytes of the canary (in any phase). */
export function containsCanary(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return CANARY_WINDOWS.some((w) => b.indexOf(w) >= 0);
}

/**
 * Guest pages that are never shared with the host: filled with the canary
 * when planted, compared byte for byte at the end. A host access outside
 * what the guest shared, or a guest that writes where it should not, shows
 * up as a changed page; a read shows up as the canary in what the reader
 * passed on (frames, disk data). Fuzz inputs are scrubbed of the secret
 * PFNs so that a hostile guest never names them legitimately.
 */
export class SecretPages {
  private readonly copies: Uint8Array[];

  private constructor(
    private readonly memory: GuestMemory,
    readonly pfns: readonly number[],
  ) {
    for (const pfn of pfns) {
      for (let o = 0; o < PAGE_SIZE; o += CANARY.length) memory.write(pfn * PAGE_SIZE + o, CANARY);
    }
    this.copies = pfns.map((pfn) => memory.read(pfn * PAGE_SIZE, PAGE_SIZE));
  }

  /**
   * Plants `count` secret pages: the allocator hands out the pages after the
   * last allocation first, so the first ones sit right behind the buffers
   * allocated just before (an overrun of those lands here).
   */
  static plant(memory: GuestMemory, count = 4): SecretPages {
    const pfns: number[] = [];
    for (let i = 0; i < count; i++) pfns.push(memory.allocContiguous(1));
    return new SecretPages(memory, pfns);
  }

  has(pfn: number): boolean {
    return this.pfns.includes(pfn);
  }

  /** `pfn`, or a PFN outside guest memory when it is a secret one. */
  scrubPfn(pfn: number): number {
    return this.has(pfn) ? this.memory.pageCount + pfn : pfn;
  }

  /** A copy of `bytes` in which no little-endian u32 (at any offset) names a secret PFN. */
  scrubBytes(bytes: Uint8Array): Uint8Array {
    const out = bytes.slice();
    const v = new DataView(out.buffer);
    for (let i = 0; i + 4 <= out.length; i++) {
      const x = v.getUint32(i, true);
      if (this.has(x)) v.setUint32(i, x + this.memory.pageCount, true);
    }
    return out;
  }

  /** Throws a violation listing the secret pages whose bytes changed. */
  verify(what: string): void {
    const changed: string[] = [];
    this.pfns.forEach((pfn, i) => {
      const now = this.memory.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
      const was = this.copies[i] as Uint8Array;
      for (let o = 0; o < PAGE_SIZE; o++) {
        if (now[o] !== was[o]) {
          changed.push(`PFN ${pfn} (first changed byte at +${o}: 0x${(was[o] ?? 0).toString(16)} → 0x${(now[o] ?? 0).toString(16)})`);
          break;
        }
      }
    });
    if (changed.length > 0) throw new FuzzViolation("memory", `${what}: guest pages never shared were written: ${changed.join(", ")}`);
  }

  /** Throws a violation when `bytes` carries the secret pages' canary (someone read them). */
  assertNotLeaked(bytes: Uint8Array, what: string): void {
    if (containsCanary(bytes)) throw new FuzzViolation("memory", `${what}: carries bytes of guest pages that were never shared (the canary)`);
  }
}

/**
 * Collects promise rejections nobody handled while a fuzz run was going on.
 * Node reports them only after the microtask queue drains, so `check`
 * yields to the event loop once before looking.
 */
export class UnhandledRejections {
  private readonly seen: unknown[] = [];
  private readonly listener = (reason: unknown): void => {
    this.seen.push(reason);
  };

  start(): this {
    process.on("unhandledRejection", this.listener);
    return this;
  }

  async check(what: string): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    process.off("unhandledRejection", this.listener);
    const first = this.seen[0];
    if (this.seen.length > 0) {
      throw new FuzzViolation("typed-errors", `${what}: ${this.seen.length} promise rejection(s) nobody handled, first: ${describeError(first)}`);
    }
  }
}
