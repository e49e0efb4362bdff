/**
 * The one place in core/ that reads real time (test/architecture.test.ts
 * allows this file and no other).
 *
 * Threaded mode inherently waits on real time: two threads run at their own
 * pace, so a thread's virtual clock must not race ahead of the other's
 * while it only waits for an answer — a guest whose queue holds nothing but
 * a 60 s request timeout would otherwise jump to it at once and time out a
 * request the host thread is still serving. `DoorbellGate` therefore lets
 * virtual time run ahead of real elapsed time by at most a bounded lead.
 * The deterministic mode never uses this file.
 */
import { performance } from "node:perf_hooks";

/** Real nanoseconds since this clock was made (monotonic). */
export class WallClock {
  private readonly startMs = performance.now();

  elapsedNs(): number {
    return Math.floor((performance.now() - this.startMs) * 1e6);
  }
}
