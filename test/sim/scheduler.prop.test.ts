import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Scheduler, type EventHandle } from "../../core/sim/index.js";

describe("Scheduler (properties)", () => {
  it.each(["next-tick", "quiet-window"] as const)("runs exactly the non-cancelled events, in (time, insertion) order, whatever the interleaving (%s drain)", async (microtaskDrain) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ delay: fc.integer({ min: 0, max: 20 }), cancel: fc.boolean() }), { maxLength: 200 }),
        async (ops) => {
          const s = new Scheduler({ microtaskDrain, microtaskQuietTicks: 1, idleMicrotaskTicks: 1 });
          const ran: number[] = [];
          const handles: EventHandle[] = ops.map((op, i) => s.schedule(op.delay, () => void ran.push(i)));
          ops.forEach((op, i) => {
            if (op.cancel) handles[i]!.cancel();
          });
          await s.runUntilIdle();
          const expected = ops
            .map((op, i) => ({ ...op, i }))
            .filter((e) => !e.cancel)
            .sort((a, b) => a.delay - b.delay || a.i - b.i)
            .map((e) => e.i);
          expect(ran).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});
