import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { UnknownRequestIdError, VmbusRequestor } from "../../core/index.js";

describe("VmbusRequestor (vmbus_requestor semantics)", () => {
  it("hands out slot + 1, never 0, and reuses freed slots", () => {
    const q = new VmbusRequestor<string>(3, "vm0 relid 1");
    expect(q.next("a")).toBe(1);
    expect(q.next("b")).toBe(2);
    expect(q.next("c")).toBe(3);
    expect(q.full).toBe(true);
    expect(q.next("d")).toBe(0); // no slot: 0 is never a valid id
    expect(q.complete(2)).toBe("b");
    expect(q.next("e")).toBe(2);
    expect(q.inFlight).toBe(3);
  });

  it("rejects unknown, zero, out-of-range and already completed ids, and counts them", () => {
    const q = new VmbusRequestor<number>(4, "vm0 relid 7");
    const id = q.next(42);
    expect(q.complete(id)).toBe(42);
    expect(() => q.complete(id)).toThrow(UnknownRequestIdError);
    expect(() => q.complete(id)).toThrow(/vm0 relid 7 completion: trans_id=1 names no outstanding request/);
    expect(() => q.complete(0)).toThrow(/trans_id=0 is 0, which is never a request id/);
    expect(() => q.complete(5)).toThrow(/is not in \[1, 4\]/);
    expect(() => q.complete(1, 1)).toThrow(/trans_id=4294967297/);
    expect(q.rejected).toBe(5);
    expect(q.inFlight).toBe(0);
  });

  it("never completes a request twice nor loses one (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 20 })), { maxLength: 200 }), (ops) => {
        const q = new VmbusRequestor<number>(8);
        const live = new Map<number, number>();
        let n = 0;
        for (const op of ops) {
          if (op === -1) {
            const id = q.next(n);
            if (id === 0) expect(live.size).toBe(8);
            else {
              expect(live.has(id)).toBe(false);
              live.set(id, n++);
            }
          } else if (live.has(op)) {
            expect(q.complete(op)).toBe(live.get(op));
            live.delete(op);
          } else {
            expect(() => q.complete(op)).toThrow(UnknownRequestIdError);
          }
        }
        expect(q.drain().sort((a, b) => a - b)).toEqual([...live.values()].sort((a, b) => a - b));
        expect(q.inFlight).toBe(0);
      }),
    );
  });
});
