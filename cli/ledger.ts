/**
 * Request accounting of a scenario run: every request a workload (or a
 * fault's own traffic) issues ends as completed, failed with a typed error,
 * or — if it is still outstanding when the run's settle deadline passes —
 * lost. "Every outstanding request completes or fails with a clear error
 * within a bounded virtual time; nothing completes twice" is then three
 * numbers: `lost` and `duplicates` must be 0.
 *
 * The deadline is one scheduler event for the whole run (armed at the
 * start, cancelled at the end), so a request that never settles cannot hang
 * the run: when the deadline fires, everything still pending is declared
 * lost and the workloads waiting on it go on. A run without faults never
 * reaches it, and an event that never runs leaves the trace unchanged.
 */
import { VmbusSimError, type EventHandle, type Scheduler } from "../core/index.js";

/** How one request ended. */
export type Settled<T> =
  | { readonly status: "completed"; readonly value: T }
  | { readonly status: "failed"; readonly error: unknown }
  | { readonly status: "lost" };

/** Requests of one workload (or one fault's traffic), by outcome. */
export interface RequestTally {
  readonly issued: number;
  readonly completed: number;
  /** Failures by error type: the typed error's `code` (e.g. STORVSC_TIMEOUT), else the error's name. */
  readonly failed: Readonly<Record<string, number>>;
  readonly failedTotal: number;
  /** Still outstanding at the settle deadline (must be 0). */
  readonly lost: number;
  /** Requests whose promise settled more than once (must be 0). */
  readonly duplicates: number;
}

/** The name a failure is counted under. */
export function errorType(e: unknown): string {
  if (e instanceof VmbusSimError) return e.code;
  if (e instanceof Error) return e.name;
  return typeof e;
}

/** The run's settle deadline: one event; when it fires, every request still pending is lost. */
export class SettleDeadline {
  readonly atNs: number;
  private readonly pending = new Set<() => void>();
  private handle: EventHandle | null;
  private passedFlag = false;

  constructor(sched: Scheduler, atNs: number) {
    this.atNs = atNs;
    this.handle = sched.scheduleAt(atNs, () => this.fire(), "scenario settle deadline");
  }

  get passed(): boolean {
    return this.passedFlag;
  }

  /** Calls `onLost` when the deadline passes, unless the returned function was called first. */
  watch(onLost: () => void): () => void {
    if (this.passedFlag) {
      onLost();
      return () => undefined;
    }
    this.pending.add(onLost);
    return () => this.pending.delete(onLost);
  }

  /** The run is over: the event is not needed any more. */
  cancel(): void {
    this.handle?.cancel();
    this.handle = null;
  }

  private fire(): void {
    this.handle = null;
    this.passedFlag = true;
    const all = [...this.pending];
    this.pending.clear();
    for (const f of all) f();
  }
}

export class RequestLedger {
  private issued = 0;
  private completed = 0;
  private lost = 0;
  private duplicates = 0;
  private readonly failed = new Map<string, number>();

  constructor(private readonly deadline: SettleDeadline) {}

  /** The run's settle deadline passed: requests still pending were declared lost. */
  get deadlinePassed(): boolean {
    return this.deadline.passed;
  }

  /**
   * Waits for `p` or the deadline, whichever comes first, WITHOUT counting
   * the outcome (the caller decides what it means: `tally*`). Settlements
   * of `p` are still counted: a second one is a duplicate.
   */
  guard<T>(p: PromiseLike<T>): Promise<Settled<T>> {
    return new Promise<Settled<T>>((resolve) => {
      let settlements = 0;
      let done = false;
      let unwatch: (() => void) | null = null;
      const finish = (s: Settled<T>): void => {
        if (done) return;
        done = true;
        unwatch?.();
        resolve(s);
      };
      // After the deadline, `watch` calls back at once: the request is lost
      // unless `p` has already settled (it has not: it was just issued).
      unwatch = this.deadline.watch(() => finish({ status: "lost" }));
      p.then(
        (value) => {
          if (++settlements > 1) this.duplicates++;
          finish({ status: "completed", value });
        },
        (error: unknown) => {
          if (++settlements > 1) this.duplicates++;
          finish({ status: "failed", error });
        },
      );
    });
  }

  /** `guard` and count the outcome as this request's. */
  async track<T>(p: PromiseLike<T>): Promise<Settled<T>> {
    const s = await this.guard(p);
    this.count(s);
    return s;
  }

  /** Counts an outcome decided by the caller. */
  count(s: Settled<unknown>): void {
    if (s.status === "completed") {
      this.issued++;
      this.completed++;
    } else if (s.status === "lost") {
      this.issued++;
      this.lost++;
    } else this.countFailure(errorType(s.error));
  }

  /** Counts one failed request of type `type` (also for failures that are no error object, e.g. "NO_REPLY" for a ping). */
  countFailure(type: string): void {
    this.issued++;
    this.failed.set(type, (this.failed.get(type) ?? 0) + 1);
  }

  tally(): RequestTally {
    const failed: Record<string, number> = {};
    for (const [k, v] of [...this.failed.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) failed[k] = v;
    return { issued: this.issued, completed: this.completed, failed, failedTotal: this.failedTotal(), lost: this.lost, duplicates: this.duplicates };
  }

  private failedTotal(): number {
    let n = 0;
    for (const v of this.failed.values()) n += v;
    return n;
  }
}

/** Sum of several tallies. */
export function sumTallies(ts: readonly RequestTally[]): RequestTally {
  const failed: Record<string, number> = {};
  let issued = 0;
  let completed = 0;
  let lost = 0;
  let duplicates = 0;
  let failedTotal = 0;
  for (const t of ts) {
    issued += t.issued;
    completed += t.completed;
    lost += t.lost;
    duplicates += t.duplicates;
    failedTotal += t.failedTotal;
    for (const [k, v] of Object.entries(t.failed)) failed[k] = (failed[k] ?? 0) + v;
  }
  return { issued, completed, failed, failedTotal, lost, duplicates };
}

/** "STORVSC_TIMEOUT×3, SCSI_MEDIUM_ERROR×1", or "-". */
export function formatFailures(failed: Readonly<Record<string, number>>): string {
  const parts = Object.entries(failed).map(([k, v]) => `${k}×${v}`);
  return parts.length === 0 ? "-" : parts.join(", ");
}
