/**
 * The lockless multi-producer write (seed 004) on one thread.
 *
 * - Same bytes: a ring written by `MultiProducerRingWriter` holds exactly
 *   what `RingWriter` writes for the same packets (one encoder).
 * - One call per write: producers interleaved on one thread never wait,
 *   and each write is published when it returns.
 * - The interleavings (property-based): N logical producers reserve, copy
 *   and publish in a random order (`publishOnWrite: false`, `tryPublish`),
 *   a reader reads and closes, masked or not, producers block on a full
 *   ring and are woken by the reader's signal. Checked against a FIFO
 *   model: publication only in reservation order, nothing lost,
 *   duplicated, reordered or torn, a signal exactly on each unmasked empty
 *   → non-empty transition, and no producer left blocked once the ring
 *   drains (no lost wakeup).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  InvalidArgumentError,
  MultiProducerRingWriter,
  RingBuffer,
  RingReader,
  RingWriter,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
} from "../../core/index.js";
import type { RingPacketEncoder } from "../../core/index.js";
import { makeRing } from "./helpers.js";

function payloadFor(seq: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (seq * 31 + i * 7 + 3) & 0xff;
  return p;
}

/** Packet kinds: 0 inband, 1 completion, 2 page buffer (1 range), 3 transfer pages (2 ranges), 4 mpb (1 range, 2 pfns). */
type Kind = 0 | 1 | 2 | 3 | 4;
const KIND_TYPE = [VM_PKT_DATA_INBAND, VM_PKT_COMP, VM_PKT_DATA_USING_GPA_DIRECT, VM_PKT_DATA_USING_XFER_PAGES, VM_PKT_DATA_USING_GPA_DIRECT];
const KIND_EXT = [0, 0, 8 + 16, 8 + 2 * 8, 8 + 8 + 2 * 8];

function writeKind(w: RingPacketEncoder, kind: Kind, seq: number, payload: Uint8Array): boolean {
  switch (kind) {
    case 0:
      return w.writeInband(seq + 1, payload);
    case 1:
      return w.writeCompletion(seq + 1, payload, 0);
    case 2:
      return w.writePageBuffer(seq + 1, [{ len: 16, offset: 8, pfn: seq }], payload);
    case 3:
      return w.writeXferPages(seq + 1, 0xcafe, [{ byteCount: 10, byteOffset: 20 }, { byteCount: 30, byteOffset: 40 }], payload);
    case 4:
      return w.writeMpb(seq + 1, [{ byteCount: 4096, byteOffset: 100, pfns: [seq, seq + 1] }], payload);
  }
}

function totalOf(kind: Kind, size: number): number {
  return RingWriter.packetTotal(KIND_EXT[kind] as number, size);
}

const kindArb = fc.constantFrom<Kind>(0, 1, 2, 3, 4);

describe("multi-producer writer: same bytes as RingWriter", () => {
  it("frames every packet kind identically, wrapping at every offset", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4096 / 8 - 1 }),
        fc.array(fc.record({ kind: kindArb, size: fc.integer({ min: 0, max: 900 }), producer: fc.integer({ min: 0, max: 2 }) }), { minLength: 1, maxLength: 40 }),
        (startSlot, packets) => {
          const a = makeRing(2);
          const b = makeRing(2);
          for (const r of [a, b]) {
            r.storeWriteIndex(startSlot * 8);
            r.storeReadIndex(startSlot * 8);
          }
          const single = new RingWriter(a);
          const state = MultiProducerRingWriter.createState(b);
          const multi = [0, 1, 2].map(() => new MultiProducerRingWriter(b, state));
          const readA = new RingReader(a);
          const readB = new RingReader(b);
          packets.forEach((p, seq) => {
            const payload = payloadFor(seq, p.size);
            const okA = writeKind(single, p.kind, seq, payload);
            single.commit();
            const okB = writeKind(multi[p.producer] as MultiProducerRingWriter, p.kind, seq, payload);
            expect(okB).toBe(okA);
            expect(b.loadWriteIndex()).toBe(a.loadWriteIndex());
            // (Buffer.equals: toEqual on 4 KiB typed arrays is slow.)
            expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.dataSize).equals(Buffer.from(a.data.buffer, a.data.byteOffset, a.dataSize))).toBe(true);
            // Drain both now and then so that the run goes round the ring.
            if (seq % 3 === 2 || !okA) {
              for (const r of [readA, readB]) {
                while (r.first() !== null) r.advance();
                r.close();
              }
            }
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("multi-producer writer on one thread", () => {
  it("publishes each write in the same call: no producer ever waits", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ producer: fc.integer({ min: 0, max: 3 }), size: fc.integer({ min: 0, max: 500 }), read: fc.boolean(), mask: fc.boolean() }), { minLength: 1, maxLength: 120 }),
        (steps) => {
          const ring = makeRing(3);
          const state = MultiProducerRingWriter.createState(ring);
          const ws = [0, 1, 2, 3].map(() => new MultiProducerRingWriter(ring, state));
          const reader = new RingReader(ring);
          const seqs = [0, 0, 0, 0];
          let seq = 0;
          for (const s of steps) {
            const w = ws[s.producer] as MultiProducerRingWriter;
            if (s.mask) reader.beginRead();
            const before = ring.loadWriteIndex();
            const empty = before === ring.loadReadIndex();
            const masked = ring.loadInterruptMask() !== 0;
            const total = totalOf(0, s.size);
            const ok = w.writeInband(s.producer * 2 ** 32 + (seqs[s.producer] as number), payloadFor(seq, s.size));
            if (ok) {
              seqs[s.producer]!++;
              expect(w.unpublished).toBe(false);
              expect(ring.loadWriteIndex()).toBe((before + total) % ring.dataSize);
              expect(w.commit()).toBe(empty && !masked);
            } else {
              expect(ring.loadWriteIndex()).toBe(before);
              expect(w.commit()).toBe(false);
            }
            seq++;
            if (s.read || !ok) {
              for (let p = reader.first(); p !== null; p = reader.first()) reader.advance();
              reader.close();
            }
            if (s.mask) reader.endRead();
          }
          for (const w of ws) {
            expect(w.publishWaits).toBe(0);
            expect(w.publishSleeps).toBe(0);
            expect(w.reserveRetries).toBe(0);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("refuses an exact fit and counts full periods like RingWriter", () => {
    const ring = makeRing(2); // 4096 data bytes
    const w = new MultiProducerRingWriter(ring, MultiProducerRingWriter.createState(ring));
    // A 4088-byte packet (4064 payload + 16 descriptor + 8 trailer) leaves
    // exactly 8 bytes: a bare descriptor and trailer (24) no longer fit.
    expect(w.writeInband(1, new Uint8Array(4096 - 8 - 16 - 8))).toBe(true);
    expect(w.freeBytes()).toBe(8);
    expect(w.writeInband(2, new Uint8Array(0))).toBe(false);
    expect(w.writeInband(3, new Uint8Array(0))).toBe(false);
    expect(w.outFullTotal).toBe(2);
    expect(w.outFullFirst).toBe(1);
    const r = new RingReader(ring);
    r.first();
    r.advance();
    r.close();
    // 4096 free: a packet of exactly 4096 bytes is still refused (never full).
    expect(() => w.writeInband(4, new Uint8Array(4096 - 16 - 8))).toThrow(InvalidArgumentError);
    expect(w.writeInband(5, new Uint8Array(4096 - 8 - 16 - 8))).toBe(true);
    expect(w.outFullFirst).toBe(1);
  });

  it("checks everything that can throw before reserving", () => {
    const ring = makeRing(2);
    const state = MultiProducerRingWriter.createState(ring);
    const w = new MultiProducerRingWriter(ring, state);
    const before = Array.from(state);
    expect(() => w.writeInband(-1, new Uint8Array(8))).toThrow(InvalidArgumentError);
    expect(() => w.writeInband(2 ** 60, new Uint8Array(8))).toThrow(InvalidArgumentError);
    expect(() => w.writeInband(1, new Uint8Array(5000))).toThrow(InvalidArgumentError);
    expect(Array.from(state)).toEqual(before);
    // A bigint transaction id is any u64.
    expect(w.writeInband(2n ** 64n - 1n, new Uint8Array(8))).toBe(true);
    const r = new RingReader(ring);
    expect(r.first()!.transId).toBe(2n ** 64n - 1n);
  });

  it("will not wait for a predecessor no other thread can publish", () => {
    const ring = makeRing(2);
    const state = new Int32Array(MultiProducerRingWriter.STATE_BYTES / 4); // not shared memory
    MultiProducerRingWriter.initState(ring, state);
    const a = new MultiProducerRingWriter(ring, state, { publishOnWrite: false });
    const b = new MultiProducerRingWriter(ring, state, { publishOnWrite: false });
    expect(a.writeInband(1, new Uint8Array(8))).toBe(true);
    expect(b.writeInband(2, new Uint8Array(8))).toBe(true);
    expect(b.tryPublish()).toBe(false);
    expect(() => b.publish()).toThrow(/no other thread can publish/);
    // b's next write follows its first directly: one run, published at once.
    expect(b.writeInband(3, new Uint8Array(8))).toBe(true);
    expect(b.unpublishedRuns).toBe(1);
    // a's next write comes after b's: a second run for a.
    expect(a.writeInband(4, new Uint8Array(8))).toBe(true);
    expect(a.unpublishedRuns).toBe(2);
    expect(() => a.block(100)).toThrow(/commit/);
    expect(a.tryPublish()).toBe(false); // its first run goes, the second waits for b
    expect(a.unpublishedRuns).toBe(1);
    expect(b.commit()).toBe(false); // not empty any more
    expect(a.commit()).toBe(true); // its first run made the ring non-empty, unmasked
    expect(ring.loadWriteIndex()).toBe(4 * 32);
    const r = new RingReader(ring);
    const ids: number[] = [];
    for (let p = r.first(); p !== null; p = r.next()) ids.push(p.transIdNumber);
    expect(ids).toEqual([1, 2, 3, 4]);
  });

  it("tags the reservation word with a lap count (no ABA after a full lap)", () => {
    const ring = makeRing(2);
    const state = MultiProducerRingWriter.createState(ring);
    const w = new MultiProducerRingWriter(ring, state);
    const r = new RingReader(ring);
    const first = Atomics.load(state, 0);
    // 4096 bytes = 16 packets of 256 bytes: back at offset 0, one lap later.
    for (let i = 0; i < 16; i++) {
      expect(w.writeInband(i, new Uint8Array(256 - 16 - 8))).toBe(true);
      r.first();
      r.advance();
      r.close();
    }
    expect(ring.loadWriteIndex()).toBe(0);
    const after = Atomics.load(state, 0);
    expect(after & 0x1ff).toBe(first & 0x1ff);
    expect(after).not.toBe(first);
  });
});

// ------------------------------------------------------------ interleavings

type Op =
  | { kind: "write"; producer: number; size: number; pkt: Kind }
  | { kind: "publish"; producer: number }
  | { kind: "read"; count: number; masked: boolean }
  | { kind: "close" };

const N = 3;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("write" as const), producer: fc.integer({ min: 0, max: N - 1 }), size: fc.integer({ min: 0, max: 1000 }), pkt: kindArb }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("publish" as const), producer: fc.integer({ min: 0, max: N - 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("read" as const), count: fc.integer({ min: 1, max: 6 }), masked: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ kind: "close" as const }) },
);

interface Pkt {
  readonly producer: number;
  readonly seq: number;
  readonly pseq: number;
  readonly kind: Kind;
  readonly size: number;
  readonly total: number;
}

describe("multi-producer writer: interleavings against a FIFO model", () => {
  it("publishes in reservation order, loses nothing, signals exactly on transitions, wakes every blocked producer", () => {
    const seen = { outOfTurn: 0, blocked: 0, woken: 0, writerSignals: 0, readerSignals: 0, retryNow: 0, wraps: 0, maxOpen: 0, batches: 0, maxRuns: 0, refusedBlock: 0 };
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4096 / 8 - 1 }), fc.array(opArb, { minLength: 1, maxLength: 200, size: "max" }), (startSlot, ops) => {
        const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(2 * 4096)), "interleave");
        ring.init();
        const start = startSlot * 8;
        ring.storeWriteIndex(start);
        ring.storeReadIndex(start);
        const state = MultiProducerRingWriter.createState(ring);
        const ws = Array.from({ length: N }, () => new MultiProducerRingWriter(ring, state, { publishOnWrite: false }));
        const r = new RingReader(ring, { maxPacketSize: 2048 });
        const dsize = ring.dataSize;

        // Model.
        const reserved: Pkt[] = []; // reservation order, not yet published
        const published: Pkt[] = []; // publication order, not yet consumed
        const openCount = ws.map(() => 0); // reservations of each producer not yet published
        const signalDue = ws.map(() => false); // a publication of this producer found the ring empty and unmasked
        const blocked: (number | null)[] = ws.map(() => null);
        const pseqs = ws.map(() => 0);
        const lastRead = ws.map(() => -1);
        let usedPublished = 0; // between the published read_index and write_index
        let usedReserved = 0; // reserved, unpublished
        let consumedNotClosed = 0;
        let readerHasCurrent = false;
        let maskOn = false;
        let pending = 0;
        let seq = 0;

        const doPublish = (p: number): void => {
          const w = ws[p] as MultiProducerRingWriter;
          const had = openCount[p] as number;
          const ok = w.tryPublish();
          // Model: while the oldest reservation is p's, publish the run of
          // p's reservations at the front (they are contiguous in the ring,
          // so the writer merged them), deciding the signal once per run.
          while (reserved[0]?.producer === p) {
            const emptyBefore = usedPublished === 0;
            if (emptyBefore && ring.loadInterruptMask() === 0) signalDue[p] = true;
            while (reserved[0]?.producer === p) {
              const q = reserved.shift() as Pkt;
              published.push(q);
              usedReserved -= q.total;
              usedPublished += q.total;
              openCount[p]!--;
            }
          }
          expect(ok).toBe(openCount[p] === 0);
          expect(w.unpublished).toBe(!ok);
          if (!ok) {
            seen.outOfTurn++;
            return;
          }
          if (had > 1) seen.batches++;
          const sig = w.commit();
          expect(sig).toBe(signalDue[p]);
          if (sig) seen.writerSignals++;
          signalDue[p] = false;
        };

        const doClose = (): void => {
          const before = dsize - usedPublished;
          const after = before + consumedNotClosed;
          expect(ring.loadPendingSendSize()).toBe(pending);
          const sig = r.close();
          readerHasCurrent = false;
          if (maskOn) {
            expect(r.endRead()).toBe(published.reduce((a, q) => a + q.total, 0));
            maskOn = false;
          }
          usedPublished -= consumedNotClosed;
          consumedNotClosed = 0;
          expect(sig).toBe(pending > 0 && after > pending && !(before > pending));
          if (sig) {
            // The guest's interrupt handler: clear pending_send_sz, wake every blocked producer.
            seen.readerSignals++;
            (ws[0] as MultiProducerRingWriter).unblockAll();
            pending = 0;
            for (let p = 0; p < N; p++) {
              if (blocked[p] !== null) seen.woken++;
              blocked[p] = null;
            }
          }
        };

        const doRead = (count: number): void => {
          for (let i = 0; i < count; i++) {
            let p;
            if (readerHasCurrent) {
              const done = published.shift() as Pkt;
              consumedNotClosed += done.total;
              // One producer's packets are consumed in its order.
              expect(done.pseq).toBe((lastRead[done.producer] as number) + 1);
              lastRead[done.producer] = done.pseq;
              p = r.next();
            } else {
              p = r.first();
            }
            readerHasCurrent = p !== null;
            const exp = published[0];
            if (exp === undefined) {
              expect(p).toBeNull();
              break;
            }
            expect(p).not.toBeNull();
            expect(p!.type).toBe(KIND_TYPE[exp.kind]);
            expect(p!.transIdNumber).toBe(exp.seq + 1);
            const d = p!.buffer.subarray(16 + (KIND_EXT[exp.kind] as number), 16 + (KIND_EXT[exp.kind] as number) + exp.size);
            expect(Buffer.from(d).equals(payloadFor(exp.seq, exp.size))).toBe(true);
          }
        };

        for (const op of ops) {
          if (op.kind === "write") {
            const p = op.producer;
            if (blocked[p] !== null) continue; // asleep until signalled
            const w = ws[p] as MultiProducerRingWriter;
            const total = totalOf(op.pkt, op.size);
            const free = dsize - usedPublished - usedReserved;
            const ok = writeKind(w, op.pkt, seq, payloadFor(seq, op.size));
            expect(ok).toBe(free > total);
            if (ok) {
              const pkt: Pkt = { producer: p, seq, pseq: pseqs[p] as number, kind: op.pkt, size: op.size, total };
              pseqs[p]!++;
              seq++;
              reserved.push(pkt);
              openCount[p]!++;
              seen.maxRuns = Math.max(seen.maxRuns, w.unpublishedRuns);
              usedReserved += total;
              seen.maxOpen = Math.max(seen.maxOpen, reserved.length);
            } else if (openCount[p] !== 0 || signalDue[p]) {
              // Writes of ours unpublished (or a signal unsent): a producer
              // must commit before it blocks, and block() refuses.
              expect(() => w.block(total)).toThrow(InvalidArgumentError);
              seen.refusedBlock++;
            } else {
              // Block: pending_send_sz only rises; retry now iff the reader's
              // measure (published write index) leaves strictly more room.
              const retryNow = w.block(total);
              pending = Math.max(pending, total);
              expect(ring.loadPendingSendSize()).toBe(pending);
              expect(retryNow).toBe(dsize - usedPublished > total);
              if (retryNow) seen.retryNow++;
              else {
                seen.blocked++;
                blocked[p] = total;
              }
            }
          } else if (op.kind === "publish") {
            doPublish(op.producer);
          } else if (op.kind === "read") {
            if (op.masked && !maskOn) {
              r.beginRead();
              maskOn = true;
            }
            doRead(op.count);
          } else {
            doClose();
          }
          if (ring.loadWriteIndex() < start && usedPublished > 0) seen.wraps++;
          // The header tells the truth about what is published.
          expect(ring.bytesToRead(ring.loadWriteIndex(), ring.loadReadIndex())).toBe(usedPublished);
        }

        // Drain: publish every reservation in order, read everything, close.
        while (reserved.length > 0) doPublish((reserved[0] as Pkt).producer);
        for (;;) {
          doRead(1_000);
          doClose();
          if (published.length === 0) break;
        }
        expect(usedPublished).toBe(0);
        expect(ring.loadWriteIndex()).toBe(ring.loadReadIndex());
        // The ring is empty: every producer that went to sleep was signalled.
        expect(blocked).toEqual(ws.map(() => null));
      }),
      { numRuns: 300 },
    );
    expect(seen.outOfTurn).toBeGreaterThan(0);
    expect(seen.blocked).toBeGreaterThan(0);
    expect(seen.woken).toBeGreaterThan(0);
    expect(seen.writerSignals).toBeGreaterThan(0);
    expect(seen.readerSignals).toBeGreaterThan(0);
    expect(seen.retryNow).toBeGreaterThan(0);
    expect(seen.wraps).toBeGreaterThan(0);
    expect(seen.maxOpen).toBeGreaterThanOrEqual(N);
    expect(seen.batches).toBeGreaterThan(0);
    expect(seen.maxRuns).toBeGreaterThan(1);
    expect(seen.refusedBlock).toBeGreaterThan(0);
  });
});
