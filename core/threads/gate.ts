/**
 * `DoorbellGate`: the `SchedulerGate` of one thread in threaded mode.
 *
 * - `poll` loads the thread's doorbell (one `Atomics.load`); when the count
 *   moved since the last look it runs the thread's drain function, which
 *   takes whatever the other thread published (interrupts, messages,
 *   signals) into this thread's scheduler.
 * - `hold` keeps virtual time from running ahead of real elapsed time by
 *   more than `maxLeadNs` (see wall-clock.ts for why threaded mode must
 *   wait on real time), and, when nothing may run, sleeps with
 *   `Atomics.waitAsync` on the doorbell — never `Atomics.wait`: the main
 *   thread must not block, and a worker's own message port must stay live.
 *
 * No lost wakeup: `poll` records the count *before* draining, and `hold`
 * waits only while the count still equals that record. A ring after the
 * drain's last look changed the count, so `waitAsync` returns at once
 * ("not-equal") and the next `poll` drains again.
 */
import type { SchedulerGate } from "../sim/scheduler.js";
import { WallClock } from "./wall-clock.js";

const RESOLVED: Promise<void> = Promise.resolve();

/** `Atomics.waitAsync` (ES2024; Node ≥ 16). The project's lib setting is ES2022, so it is typed here. */
type WaitAsyncResult = { readonly async: false; readonly value: "not-equal" | "timed-out" } | { readonly async: true; readonly value: Promise<"ok" | "timed-out"> };
const waitAsync = (Atomics as unknown as { waitAsync: (ta: Int32Array, index: number, value: number, timeoutMs?: number) => WaitAsyncResult }).waitAsync;

export interface DoorbellGateOptions {
  readonly words: Int32Array;
  /** Word index of this thread's doorbell. */
  readonly bell: number;
  /** Counter indices (in `words`) for sleeps and for sleeps a ring ended. */
  readonly waitsCounter: number;
  readonly wakeupsCounter: number;
  readonly pollsCounter: number;
  /** Takes the other thread's work into this one (runs when the doorbell moved). */
  readonly drain: () => void;
  /** How far virtual time may run ahead of real time (ns). */
  readonly maxLeadNs: number;
}

export class DoorbellGate implements SchedulerGate {
  private seen: number;
  private closed = false;
  /** A lower bound of "real elapsed + lead": events due by then may run without reading the clock. */
  private bound: number;
  private readonly clock = new WallClock();
  private readonly onWoken = (r: string): void => {
    if (r === "ok") Atomics.add(this.o.words, this.o.wakeupsCounter, 1);
  };

  constructor(private readonly o: DoorbellGateOptions) {
    // Start one behind, so that the first poll drains whatever is there.
    this.seen = Atomics.load(o.words, o.bell) - 1;
    this.bound = o.maxLeadNs;
  }

  poll(): void {
    // Atomics.load: sequentially consistent, so every store the ringer
    // made before its Atomics.add on the bell is visible to the drain.
    const v = Atomics.load(this.o.words, this.o.bell);
    if (v === this.seen) return;
    this.seen = v;
    Atomics.add(this.o.words, this.o.pollsCounter, 1);
    this.o.drain();
  }

  hold(dueNs: number | undefined): Promise<void> | undefined {
    if (dueNs !== undefined) {
      if (dueNs <= this.bound) return undefined;
      this.bound = this.clock.elapsedNs() + this.o.maxLeadNs;
      if (dueNs <= this.bound) return undefined;
    } else if (this.closed) {
      return undefined;
    }
    // Wait for a ring, or (with an event queued) until real time lets it run,
    // or until this thread queues an earlier event (`queued`).
    const timeoutMs = dueNs === undefined ? Infinity : Math.max(0.05, (dueNs - this.bound) / 1e6);
    Atomics.add(this.o.words, this.o.waitsCounter, 1);
    const r = waitAsync(this.o.words, this.o.bell, this.seen, timeoutMs);
    if (!r.async) return RESOLVED; // "not-equal": rung since the last poll
    this.heldDue = dueNs ?? Infinity;
    const kicked = new Promise<void>((resolve) => (this.kick = resolve));
    return Promise.race([r.value.then(this.onWoken), kicked]).then(this.endHold);
  }

  /**
   * A continuation that ran while we slept queued an event (a retry's
   * backoff, say) before the one we hold for, or settled what the
   * scheduler's run waits for (`timeNs` = now): stop holding, so the
   * scheduler looks now rather than at the later event or the next ring.
   * The doorbell wait stays pending until a ring or its timeout; nothing
   * waits on it any more.
   */
  queued(timeNs: number): void {
    if (timeNs < this.heldDue) this.kick();
  }

  private heldDue = -Infinity;
  private kick: () => void = () => undefined;
  private readonly endHold = (): void => {
    this.heldDue = -Infinity;
    this.kick = () => undefined;
  };

  /** Ends the gate: an idle scheduler then finishes (or reports deadlock) as an ungated one would. */
  close(): void {
    this.closed = true;
    // Wake a sleeping hold so the scheduler notices: Atomics.add then
    // notify, as any ring (a sleeper that loaded the old count sees the
    // new one and returns "not-equal" if it was not yet asleep).
    Atomics.add(this.o.words, this.o.bell, 1);
    Atomics.notify(this.o.words, this.o.bell);
  }
}
