import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../core/errors.js";
import {
  Scheduler,
  SimDeadlineError,
  SimDeadlockError,
  SimEventError,
  SimReentrancyError,
} from "../../core/sim/index.js";
import { Tracer, type SchedulerErrorTraceEvent } from "../../core/trace/index.js";

describe("Scheduler ordering", () => {
  it("runs events in (time, insertion) order", async () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.schedule(30, () => void log.push("c@30"), "c");
    s.schedule(10, () => void log.push("a1@10"), "a1");
    s.schedule(20, () => void log.push("b@20"), "b");
    s.schedule(10, () => void log.push("a2@10"), "a2");
    s.schedule(0, () => void log.push("z@0"), "z");
    s.schedule(10, () => void log.push("a3@10"), "a3");
    await s.runUntilIdle();
    expect(log).toEqual(["z@0", "a1@10", "a2@10", "a3@10", "b@20", "c@30"]);
    expect(s.now).toBe(30);
    expect(s.eventsRun).toBe(6);
  });

  it("orders events scheduled from events at the same time after earlier ones", async () => {
    const s = new Scheduler();
    const log: string[] = [];
    s.schedule(5, () => {
      log.push("first");
      s.schedule(0, () => void log.push("child"), "child");
    });
    s.schedule(5, () => void log.push("second"));
    await s.runUntilIdle();
    expect(log).toEqual(["first", "second", "child"]);
  });

  it("keeps order across many random insertions (heap vs sort)", async () => {
    const s = new Scheduler();
    const got: number[] = [];
    const times: number[] = [];
    let x = 12345;
    for (let i = 0; i < 500; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const t = x % 50;
      times.push(t);
      s.schedule(t, () => void got.push(i));
    }
    const expected = times.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t || a.i - b.i).map((e) => e.i);
    await s.runUntilIdle();
    expect(got).toEqual(expected);
  });

  it("cancels events and re-arms timers without duplicating them", async () => {
    const s = new Scheduler();
    const log: string[] = [];
    const h = s.schedule(10, () => void log.push("cancelled"), "x");
    expect(h.pending).toBe(true);
    expect(h.cancel()).toBe(true);
    expect(h.cancel()).toBe(false);
    const t = s.timer("t", () => void log.push(`timer@${s.now}`));
    t.arm(50);
    t.arm(20); // moves, does not duplicate
    expect(t.armed).toBe(true);
    expect(t.dueNs).toBe(20);
    await s.runUntilIdle();
    expect(log).toEqual(["timer@20"]);
    expect(t.armed).toBe(false);
    t.arm(5);
    await s.runUntilIdle();
    expect(log).toEqual(["timer@20", "timer@25"]);
  });

  it("rejects negative, fractional and past times with a typed error", () => {
    const s = new Scheduler();
    expect(() => s.schedule(-1, () => {})).toThrow(InvalidArgumentError);
    expect(() => s.schedule(1.5, () => {})).toThrow(/delayNs=1.5/);
    expect(() => s.schedule(Number.NaN, () => {})).toThrow(InvalidArgumentError);
    expect(() => s.scheduleAt(-5, () => {}, "late")).toThrow(/time of event 'late'/);
  });
});

describe("Scheduler run modes", () => {
  it("runUntil runs events up to and including the time, then sets the clock", async () => {
    const s = new Scheduler();
    const log: number[] = [];
    for (const t of [5, 10, 15, 20]) s.schedule(t, () => void log.push(s.now));
    await s.runUntil(15);
    expect(log).toEqual([5, 10, 15]);
    expect(s.now).toBe(15);
    expect(s.pendingEvents).toBe(1);
    await s.runUntil(17);
    expect(s.now).toBe(17);
    expect(log).toEqual([5, 10, 15]);
    await s.runFor(3);
    expect(log).toEqual([5, 10, 15, 20]);
    expect(s.now).toBe(20);
    await expect(s.runUntil(3)).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it("runUntilSettled follows async/await chains across sleeps at the right virtual times", async () => {
    const s = new Scheduler();
    const seen: string[] = [];
    async function leaf(tag: string, ns: number): Promise<number> {
      await s.sleep(ns);
      seen.push(`${tag}@${s.now}`);
      return s.now;
    }
    async function middle(): Promise<number> {
      const a = await leaf("a", 100);
      const [b, c] = await Promise.all([leaf("b", 50), leaf("c", 20)]);
      return a + b + c;
    }
    const result = await s.runUntilSettled(async () => {
      const x = await middle();
      await s.sleep(1);
      return x * 2;
    });
    expect(seen).toEqual(["a@100", "c@120", "b@150"]);
    expect(result).toBe((100 + 150 + 120) * 2);
    expect(s.now).toBe(151);
  });

  async function deep(n: number): Promise<void> {
    if (n === 0) return;
    await Promise.resolve();
    await deep(n - 1);
  }

  async function continuationScenario(s: Scheduler, depth: number): Promise<string[]> {
    const log: string[] = [];
    const p = (async () => {
      await s.sleep(10);
      await deep(depth);
      // Scheduled from the continuation of the t=10 event: due at 15, and
      // the continuation itself must run before the t=12 event.
      s.schedule(5, () => void log.push(`follow-up@${s.now}`));
      log.push(`continuation@${s.now}`);
    })();
    s.schedule(12, () => void log.push(`other@${s.now}`));
    await s.runUntilSettled(p);
    await s.runUntilIdle();
    return log;
  }

  it("by default (next-tick drain) lets a continuation of any length run before the next event", async () => {
    const s = new Scheduler();
    expect(s.microtaskDrain).toBe("next-tick");
    // deep(5000) is ~10 000 microtask turns that never touch the scheduler.
    expect(await continuationScenario(s, 5000)).toEqual(["continuation@10", "other@12", "follow-up@15"]);
  });

  it("quiet-window drain: follows await chains within the window", async () => {
    // deep(10) is ~21 microtask turns without touching the scheduler: inside the default 32.
    const s = new Scheduler({ microtaskDrain: "quiet-window" });
    expect(s.microtaskDrain).toBe("quiet-window");
    expect(await continuationScenario(s, 10)).toEqual(["continuation@10", "other@12", "follow-up@15"]);
  });

  it("quiet-window drain: longer pure await chains need a larger microtaskQuietTicks, and are deterministic either way", async () => {
    // deep(40) is ~81 turns: beyond the default window, inside a window of 128.
    expect(await continuationScenario(new Scheduler({ microtaskDrain: "quiet-window", microtaskQuietTicks: 128 }), 40)).toEqual([
      "continuation@10",
      "other@12",
      "follow-up@15",
    ]);
    // Beyond the window the continuation runs after the t=12 event — the same way every time.
    const late = await continuationScenario(new Scheduler({ microtaskDrain: "quiet-window" }), 40);
    expect(late).toEqual(["other@12", "continuation@12", "follow-up@17"]);
    expect(late).toEqual(await continuationScenario(new Scheduler({ microtaskDrain: "quiet-window" }), 40));
  });

  it("rejects an unknown microtaskDrain, naming it", () => {
    expect(() => new Scheduler({ microtaskDrain: "sometimes" as never })).toThrow(InvalidArgumentError);
    expect(() => new Scheduler({ microtaskDrain: "sometimes" as never })).toThrow(/microtaskDrain.*sometimes/);
  });

  it("returns the rejection of the awaited promise", async () => {
    const s = new Scheduler();
    const p = (async () => {
      await s.sleep(7);
      throw new Error("nope");
    })();
    await expect(s.runUntilSettled(p)).rejects.toThrow("nope");
    expect(s.now).toBe(7);
  });

  it("throws a typed deadlock error when the queue empties while the promise is pending", async () => {
    const s = new Scheduler();
    let resolveLater: (() => void) | undefined;
    const never = new Promise<void>((r) => {
      resolveLater = r;
    });
    s.schedule(40, () => {});
    const err = await s.runUntilSettled(never, { what: "open channel" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimDeadlockError);
    expect((err as SimDeadlockError).timeNs).toBe(40);
    expect((err as Error).message).toMatch(/open channel: still pending at t=40 ns/);
    resolveLater?.();
  });

  it("throws a deadline error when events remain beyond the deadline", async () => {
    const s = new Scheduler();
    const p = s.sleep(1_000);
    const err = await s.runUntilSettled(p, { deadlineNs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimDeadlineError);
    expect((err as SimDeadlineError).nextEventNs).toBe(1_000);
    await s.runUntilSettled(p);
    expect(s.now).toBe(1_000);
  });

  it("refuses re-entrant runs", async () => {
    const s = new Scheduler();
    let inner: unknown;
    s.schedule(1, () => {
      s.runUntilIdle().catch((e: unknown) => {
        inner = e;
      });
    });
    await s.runUntilIdle();
    expect(inner).toBeInstanceOf(SimReentrancyError);
  });
});

describe("Scheduler errors", () => {
  it("surfaces a throwing event with its label, traces it, and keeps the queue", async () => {
    const tracer = new Tracer();
    const traced: SchedulerErrorTraceEvent[] = [];
    tracer.on("schedulerError", (e) => traced.push(e));
    const s = new Scheduler({ tracer });
    const log: number[] = [];
    s.schedule(5, () => {
      throw new TypeError("bad ring index");
    }, "vm1 ring drain");
    s.schedule(10, () => void log.push(s.now), "later");
    const err = await s.runUntilIdle().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimEventError);
    const ev = err as SimEventError;
    expect(ev.label).toBe("vm1 ring drain");
    expect(ev.timeNs).toBe(5);
    expect(ev.cause).toBeInstanceOf(TypeError);
    expect(ev.message).toBe("event 'vm1 ring drain' at t=5 ns threw: TypeError: bad ring index");
    expect(traced).toHaveLength(1);
    expect(traced[0]?.label).toBe("vm1 ring drain");
    expect(traced[0]?.timeNs).toBe(5);
    expect(log).toEqual([]);
    await s.runUntilIdle();
    expect(log).toEqual([10]);
  });

  it("surfaces a rejected promise returned by an event and errors reported by other layers", async () => {
    const s = new Scheduler();
    s.schedule(3, async () => {
      await s.sleep(2);
      throw new Error("async failure");
    }, "async event");
    const err = await s.runUntilIdle().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimEventError);
    expect((err as SimEventError).label).toBe("async event");
    expect((err as SimEventError).timeNs).toBe(5);

    s.schedule(1, () => s.reportError("vm1/cpu0 SINT2", new Error("isr")));
    const err2 = await s.runUntilSettled(s.sleep(100)).catch((e: unknown) => e);
    expect((err2 as SimEventError).label).toBe("vm1/cpu0 SINT2");
  });
});
