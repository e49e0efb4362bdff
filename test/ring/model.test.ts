/**
 * The ring against a FIFO model (property-based): random packet sizes and
 * kinds, random interleavings of writes, commits, reads and closes, from a
 * random starting position so that wrap-around happens at every offset.
 * Nothing may be lost, duplicated or reordered; a blocked writer is woken
 * exactly when enough space frees; no signal on a non-transition.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RingBuffer, RingReader, RingWriter, VM_PKT_COMP, VM_PKT_DATA_INBAND, VM_PKT_DATA_USING_GPA_DIRECT } from "../../core/index.js";

type Op =
  | { kind: "write"; size: number; type: 0 | 1 | 2 }
  | { kind: "commit" }
  | { kind: "read"; count: number; masked: boolean }
  | { kind: "close" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("write" as const), size: fc.integer({ min: 0, max: 700 }), type: fc.constantFrom(0 as const, 1 as const, 2 as const) }) },
  { weight: 2, arbitrary: fc.constant({ kind: "commit" as const }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("read" as const), count: fc.integer({ min: 1, max: 6 }), masked: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: "close" as const }) },
);

function payloadFor(seq: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (seq * 31 + i * 7) & 0xff;
  return p;
}

/** Ring bytes of a packet as the writer frames it. */
function totalOf(type: number, size: number): number {
  const ext = type === 2 ? 8 + 16 : 0;
  return ((16 + ext + size + 7) & ~7) + 8;
}

describe("ring vs FIFO model", () => {
  it("loses, duplicates and reorders nothing; signals only on transitions", () => {
    // Coverage of the interesting paths across all runs, asserted at the end
    // so the property cannot pass by never reaching them.
    const seen = { blocked: 0, woken: 0, writerSignals: 0, readerSignals: 0, wraps: 0, refusedThenRetryNow: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 / 8 - 1 }), fc.array(opArb, { minLength: 1, maxLength: 150, size: "max" }), (startSlot, ops) => {
        const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(2 * 4096)), "model");
        ring.init();
        const start = startSlot * 8;
        ring.storeWriteIndex(start);
        ring.storeReadIndex(start);
        const w = new RingWriter(ring);
        const r = new RingReader(ring, { maxPacketSize: 1024 });
        const dsize = ring.dataSize;

        // Model state.
        const written: { seq: number; type: number; size: number; total: number }[] = []; // uncommitted
        const published: { seq: number; type: number; size: number; total: number }[] = [];
        let consumedNotClosed = 0; // bytes the reader advanced past since its last close
        let usedPublished = 0; // bytes between published read_index and published write_index
        let usedUncommitted = 0;
        let seq = 0;
        let blocked: { need: number; size: number; type: number } | null = null;
        let wokenSinceBlock = false;
        let readerHasCurrent = false;
        let maskOn = false;

        for (const op of ops) {
          if (op.kind === "write") {
            if (blocked) continue; // a blocked writer waits for its signal
            const total = totalOf(op.type, op.size);
            const free = dsize - usedPublished - usedUncommitted; // the read index lags until close
            const payload = payloadFor(seq, op.size);
            const ok =
              op.type === 0
                ? w.writeInband(seq + 1, payload)
                : op.type === 1
                  ? w.writeCompletion(seq + 1, payload)
                  : w.writePageBuffer(seq + 1, [{ len: 16, offset: 8, pfn: seq }], payload);
            // Refused exactly when free <= total (an exact fit is refused).
            expect(ok).toBe(free > total);
            if (ok) {
              written.push({ seq, type: op.type, size: op.size, total });
              usedUncommitted += total;
              seq++;
            } else {
              // Publish what we have, then block on the packet that did not fit.
              const emptyBefore = usedPublished === 0;
              const sig = w.commit();
              if (written.length > 0) expect(sig).toBe(emptyBefore && ring.loadInterruptMask() === 0);
              published.push(...written.splice(0));
              usedPublished += usedUncommitted;
              usedUncommitted = 0;
              const retryNow = w.block(total);
              expect(retryNow).toBe(dsize - usedPublished > total);
              if (retryNow) seen.refusedThenRetryNow++;
              if (!retryNow) {
                seen.blocked++;
                blocked = { need: total, size: op.size, type: op.type };
                wokenSinceBlock = false;
                expect(ring.loadPendingSendSize()).toBe(total);
              }
            }
          } else if (op.kind === "commit") {
            const emptyBefore = usedPublished === 0;
            const masked = ring.loadInterruptMask() !== 0;
            const sig = w.commit();
            if (written.length === 0) expect(sig).toBe(false);
            else expect(sig).toBe(emptyBefore && !masked);
            if (sig) seen.writerSignals++;
            published.push(...written.splice(0));
            usedPublished += usedUncommitted;
            usedUncommitted = 0;
          } else if (op.kind === "read") {
            if (op.masked && !maskOn) {
              r.beginRead();
              maskOn = true;
            }
            for (let i = 0; i < op.count; i++) {
              let p;
              if (readerHasCurrent) {
                // next() steps past the current packet: now it is consumed.
                const done = published.shift()!;
                consumedNotClosed += done.total;
                p = r.next();
              } else {
                p = r.first();
              }
              readerHasCurrent = p !== null;
              const expected = published[0];
              if (!expected) {
                expect(p).toBeNull();
                break;
              }
              expect(p).not.toBeNull();
              expect(p!.type).toBe([VM_PKT_DATA_INBAND, VM_PKT_COMP, VM_PKT_DATA_USING_GPA_DIRECT][expected.type]);
              expect(p!.transIdNumber).toBe(expected.seq + 1);
              expect(p!.data().subarray(0, expected.size)).toEqual(payloadFor(expected.seq, expected.size));
            }
          } else {
            const before = dsize - usedPublished;
            const after = before + consumedNotClosed;
            const pending = ring.loadPendingSendSize();
            const sig = r.close();
            readerHasCurrent = false;
            if (maskOn) {
              // hv_end_read: what is left is exactly the published, unread packets.
              expect(r.endRead()).toBe(published.reduce((a, q) => a + q.total, 0));
              maskOn = false;
            }
            usedPublished -= consumedNotClosed;
            consumedNotClosed = 0;
            const shouldSignal = pending > 0 && after > pending && !(before > pending);
            expect(sig).toBe(shouldSignal);
            if (sig) {
              wokenSinceBlock = true;
              seen.readerSignals++;
            }
            if (blocked && dsize - usedPublished > blocked.need) {
              // Enough space: the blocked writer must have been signalled by now.
              expect(wokenSinceBlock).toBe(true);
              seen.woken++;
              w.unblock();
              const payload = payloadFor(seq, blocked.size);
              const ok =
                blocked.type === 0
                  ? w.writeInband(seq + 1, payload)
                  : blocked.type === 1
                    ? w.writeCompletion(seq + 1, payload)
                    : w.writePageBuffer(seq + 1, [{ len: 16, offset: 8, pfn: seq }], payload);
              expect(ok).toBe(true);
              written.push({ seq, type: blocked.type, size: blocked.size, total: blocked.need });
              usedUncommitted += blocked.need;
              seq++;
              blocked = null;
            }
          }
          if (ring.loadWriteIndex() < start && published.length + written.length > 0) seen.wraps++;
          // The header always tells the truth about published state.
          expect(ring.bytesToRead(ring.loadWriteIndex(), ring.loadReadIndex())).toBe(usedPublished);
        }
      }),
      { numRuns: 300 },
    );
    expect(seen.blocked).toBeGreaterThan(0);
    expect(seen.woken).toBeGreaterThan(0);
    expect(seen.writerSignals).toBeGreaterThan(0);
    expect(seen.readerSignals).toBeGreaterThan(0);
    expect(seen.wraps).toBeGreaterThan(0);
  });
});
