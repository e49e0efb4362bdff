/**
 * A scheduler with a `DoorbellGate` (threaded mode), on one thread: work
 * rung in through the doorbell enters between events, and virtual time does
 * not jump to a far timer while the other side may still answer — the
 * reason threaded mode bounds virtual time by real time. Ordering only; no
 * wall-clock assertion.
 */
import { describe, expect, it } from "vitest";
import { DoorbellGate, Scheduler } from "../../core/index.js";

function gateFor(words: Int32Array, drain: () => void, maxLeadNs: number): DoorbellGate {
  return new DoorbellGate({ words, bell: 0, waitsCounter: 1, wakeupsCounter: 2, pollsCounter: 3, drain, maxLeadNs });
}

describe("DoorbellGate", () => {
  it("a far timeout does not fire while the answer is still to come through the doorbell", async () => {
    const words = new Int32Array(new SharedArrayBuffer(64));
    const s = new Scheduler();
    let answer: ((v: string) => void) | undefined;
    const work = new Promise<string>((resolve) => (answer = resolve));
    let timedOut = false;
    s.schedule(60e9, () => void (timedOut = true), "60 s request timeout");
    let inbox: string | undefined;
    const gate = gateFor(words, () => {
      if (inbox !== undefined) answer?.(inbox);
    }, 1_000_000);
    s.setGate(gate);
    // "The other thread": publishes, then rings (add + notify), later on.
    setTimeout(() => {
      inbox = "done";
      Atomics.add(words, 0, 1);
      Atomics.notify(words, 0);
    }, 20);
    expect(await s.runUntilSettled(work)).toBe("done");
    expect(timedOut).toBe(false);
    expect(s.now).toBeLessThan(60e9);
    expect(Atomics.load(words, 1)).toBeGreaterThan(0); // it slept on the doorbell
    expect(Atomics.load(words, 3)).toBeGreaterThan(0); // and drained after the ring
    gate.close();
    s.setGate(undefined);
  });

  it("a ring that lands before the sleep is not lost (waitAsync sees the changed count)", async () => {
    const words = new Int32Array(new SharedArrayBuffer(64));
    const s = new Scheduler();
    let drains = 0;
    let release: (() => void) | undefined;
    const work = new Promise<void>((r) => (release = r));
    const gate = gateFor(words, () => {
      drains++;
      if (drains === 2) release?.();
    }, 0);
    s.setGate(gate);
    // Ring at once, before the scheduler's first look: the first poll
    // drains (drains = 1), and the count it recorded includes this ring.
    Atomics.add(words, 0, 1);
    const run = s.runUntilSettled(work);
    // A second ring while it sleeps: must wake it.
    setTimeout(() => {
      Atomics.add(words, 0, 1);
      Atomics.notify(words, 0);
    }, 5);
    await run;
    expect(drains).toBe(2);
    gate.close();
  });

  it("a closed gate lets an idle scheduler end as an ungated one does", async () => {
    const words = new Int32Array(new SharedArrayBuffer(64));
    const s = new Scheduler();
    const gate = gateFor(words, () => undefined, 0);
    s.setGate(gate);
    gate.close();
    await expect(s.runUntilSettled(new Promise<void>(() => undefined), { what: "never" })).rejects.toThrow(/never/);
  });
});
