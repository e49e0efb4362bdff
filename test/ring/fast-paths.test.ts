/**
 * The per-packet fast paths of the ring (issue 9), each against the slow
 * path it short-cuts or an independent model:
 *
 * - the encoder's one-piece path for in-band packets and the word copy of a
 *   reused payload: the ring holds, byte for byte, what a reference encoder
 *   written here from the layout of vmbus-core.md §1–§2 produces, wrapping
 *   at every offset, for every payload shape (reused, new each time, not
 *   8-aligned, over a resizable buffer, contents changed between writes);
 * - `MultiProducerRingWriter`'s short cut for a producer writing alone
 *   (guessed reservation word, cached free space, no look at the
 *   published word): stale guesses (another producer reserved since) never
 *   place, refuse or order a packet differently from a producer that loads
 *   the word, also with a racing producer between the look and the
 *   compare-and-swap; the owner word never names a producer other than the
 *   last writer; a failed guess is not counted as a lost race;
 * - `RingReader.closeIfAtLeast` (deferred release): read_index moves only
 *   once the threshold is crossed, and the full → not-full signal to a
 *   blocked writer comes exactly once, also when the writer's block
 *   interleaves with the reader's publication at every step.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MultiProducerRingWriter, RingBuffer, RingReader, RingWriter, VM_PKT_COMP, VM_PKT_DATA_INBAND } from "../../core/index.js";
import type { RingPacketEncoder } from "../../core/index.js";
import { makeRing } from "./helpers.js";

/** Reference framing: descriptor, payload, zero padding to 8, trailer (u32 0, u32 start), wrapping. Returns the next index. */
function refEncode(mem: Uint8Array, start: number, type: number, flags: number, id: bigint, payload: Uint8Array): number {
  const dsize = mem.length;
  const pktLen = (16 + payload.length + 7) & ~7;
  const put = (off: number, v: number, n: number): void => {
    for (let i = 0; i < n; i++) mem[(start + off + i) % dsize] = Math.floor(v / 2 ** (8 * i)) & 0xff;
  };
  put(0, type & 0xffff, 2);
  put(2, 2, 2);
  put(4, pktLen / 8, 2);
  put(6, flags & 0xffff, 2);
  put(8, Number(id & 0xffffffffn), 4);
  put(12, Number(id >> 32n), 4);
  for (let i = 0; i < payload.length; i++) put(16 + i, payload[i] as number, 1);
  for (let i = 16 + payload.length; i < pktLen; i++) put(i, 0, 1);
  put(pktLen, 0, 4);
  put(pktLen + 4, start, 4);
  return (start + pktLen + 8) % dsize;
}

/** Writes until a write is refused (a ring of 4096 data bytes takes fewer than 1000 packets). */
function fill(write: () => boolean): void {
  let n = 0;
  while (write()) if (++n > 1000) throw new Error("the ring never refused a write: free space miscounted");
}

/** `new ArrayBuffer(n, { maxByteLength })` (Node 20), which the TypeScript lib in use does not declare. */
const ResizableArrayBuffer = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;

/** How a step hands its payload to the writer. */
type Shape = "reused" | "fresh" | "unaligned" | "resizable";

interface Step {
  readonly size: number;
  readonly shape: Shape;
  readonly completion: boolean;
  readonly flags: number;
  readonly id: number | bigint;
  readonly drain: boolean;
  /** Writes of this step, all with the same payload array (8 or more make the writer take a word view of it). */
  readonly repeat: number;
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(8, 16, 56, 64, 256, 264)),
  shape: fc.constantFrom<Shape>("reused", "reused", "reused", "fresh", "unaligned", "resizable"),
  completion: fc.boolean(),
  // Beyond u16 and negative too: the descriptor keeps the low 16 bits, as setUint16 does.
  flags: fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: -3, max: 0x2ffff })),
  id: fc.oneof(fc.nat(), fc.constant(0xffffffff), fc.integer({ min: 2 ** 32, max: Number.MAX_SAFE_INTEGER }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  drain: fc.boolean(),
  repeat: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 14 })),
});

describe("encoder fast paths: the same bytes as the reference framing", () => {
  for (const kind of ["RingWriter", "MultiProducerRingWriter"] as const) {
    it(`${kind}: every payload shape, every offset, wrapping`, () => {
      fc.assert(
        fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80 }), fc.nat({ max: 40 }), (steps, skew) => {
          const ring = makeRing(2); // 4096 data bytes: packets wrap often
          // Start at an arbitrary 8-aligned offset, so the one-piece path and the wrapping path both run.
          const at0 = (skew * 8 * 13) % ring.dataSize;
          ring.storeWriteIndex(at0);
          ring.storeReadIndex(at0);
          const w: RingPacketEncoder & { commit(): boolean } =
            kind === "RingWriter" ? new RingWriter(ring) : new MultiProducerRingWriter(ring, MultiProducerRingWriter.createState(ring));
          const reader = new RingReader(ring, { maxPacketSize: 8192 });
          const model = new Uint8Array(ring.dataSize);
          let at = at0;
          // One array per shape and size, handed over again and again; "fresh" is a new array each time.
          const stable = new Map<string, Uint8Array>();
          const backing = new Uint8Array(4096);
          const arrayFor = (shape: Shape, size: number): Uint8Array => {
            if (shape === "fresh") return new Uint8Array(size);
            const key = `${shape}:${size}`;
            let a = stable.get(key);
            if (a === undefined) {
              if (shape === "reused") a = new Uint8Array(size);
              else if (shape === "unaligned") a = backing.subarray(3 + 8 * stable.size, 3 + 8 * stable.size + size);
              else a = new Uint8Array(new ResizableArrayBuffer(size, { maxByteLength: 2 * size + 8 }), 0, size);
              stable.set(key, a);
            }
            return a;
          };
          let n = 0;
          for (const s of steps) {
           for (let rep = 0; rep < s.repeat; rep++) {
            const payload = arrayFor(s.shape, s.size);
            // New contents every time, also in an array the writer has a word view of.
            for (let i = 0; i < payload.length; i++) payload[i] = (n * 17 + i * 5 + 1) & 0xff;
            n++;
            if (ring.bytesToWrite(at, ring.loadReadIndex()) <= RingWriter.packetTotal(0, s.size) || s.drain) {
              for (let p = reader.first(); p !== null; p = reader.first()) reader.advance();
              reader.close();
            }
            const ok = s.completion ? w.writeCompletion(s.id, payload, s.flags) : w.writeInband(s.id, payload, s.flags);
            expect(ok).toBe(true);
            w.commit();
            at = refEncode(model, at, s.completion ? VM_PKT_COMP : VM_PKT_DATA_INBAND, s.flags, BigInt.asUintN(64, BigInt(s.id)), payload);
            expect(ring.loadWriteIndex()).toBe(at);
            expect(Buffer.from(ring.data).equals(Buffer.from(model))).toBe(true);
           }
          }
        }),
        { numRuns: 200 },
      );
    });
  }

  it("a reused payload array: the bytes it holds at each write, before and after the word view is made", () => {
    const ring = makeRing(4);
    const w = new RingWriter(ring);
    const r = new RingReader(ring);
    const p = new Uint8Array(64);
    for (let k = 0; k < 40; k++) {
      p.fill(k + 1);
      if (k === 20) expect(w.writeInband(999, new Uint8Array(64).fill(0xee))).toBe(true); // another array in between
      expect(w.writeInband(k, p)).toBe(true);
    }
    w.commit();
    let k = 0;
    for (let q = r.first(); q !== null; q = r.next()) {
      if (q.transIdNumber === 999) {
        expect(Array.from(q.data())).toEqual(new Array(64).fill(0xee));
        continue;
      }
      expect(q.transIdNumber).toBe(k);
      expect(Array.from(q.data())).toEqual(new Array(64).fill(k + 1));
      k++;
    }
    expect(k).toBe(40);
  });
});

describe("encoder fast paths: edge cases", () => {
  it("keeps the low 16 bits of type and flags, as the u16 descriptor fields do", () => {
    for (const kind of ["RingWriter", "MultiProducerRingWriter"] as const) {
      const ring = makeRing(2);
      const w = kind === "RingWriter" ? new RingWriter(ring) : new MultiProducerRingWriter(ring, MultiProducerRingWriter.createState(ring));
      const model = new Uint8Array(ring.dataSize);
      let at = 0;
      for (const [type, flags] of [
        [0x10006, 0x30001],
        [-1, -2],
        [0xfffff, 0],
        [6.9, 1.5],
      ] as const) {
        expect(w.writePacket(type, flags, 5, 0, new Uint8Array(24))).toBe(true);
        w.commit();
        at = refEncode(model, at, type, flags, 5n, new Uint8Array(24));
      }
      expect(Buffer.from(ring.data).equals(Buffer.from(model))).toBe(true);
    }
  });

  it("a length-tracking payload over a resizable buffer that grows after many writes", () => {
    const ring = makeRing(2);
    const w = new RingWriter(ring);
    const r = new RingReader(ring);
    const rab = new ResizableArrayBuffer(64, { maxByteLength: 256 }) as ArrayBuffer & { resize(n: number): void };
    const p = new Uint8Array(rab); // tracks the buffer's length
    const drain = (): number[][] => {
      w.commit();
      const out: number[][] = [];
      for (let q = r.first(); q !== null; q = r.next()) out.push(Array.from(q.data()));
      r.close();
      return out;
    };
    for (let i = 0; i < 12; i++) {
      p.fill(i);
      expect(w.writeInband(i, p)).toBe(true);
    }
    expect(drain()).toEqual(Array.from({ length: 12 }, (_, i) => new Array(64).fill(i)));
    rab.resize(128);
    p.fill(0x5a);
    expect(p.length).toBe(128);
    expect(w.writeInband(99, p)).toBe(true);
    expect(drain()).toEqual([new Array(128).fill(0x5a)]);
  });
});

// ------------------------------------------------------------ guessed reservations

describe("multi-producer writer: the guessed reservation word", () => {
  it("a stale guess that would fit never writes into unread bytes: refused on the real word", () => {
    const ring = makeRing(2);
    const state = MultiProducerRingWriter.createState(ring);
    const a = new MultiProducerRingWriter(ring, state); // id 1
    const b = new MultiProducerRingWriter(ring, state);
    expect(a.writeInband(1, new Uint8Array(232))).toBe(true); // [0, 256)
    expect(a.writeInband(2, new Uint8Array(232))).toBe(true); // [256, 512): alone, 3584 bytes free after it
    expect(b.writeInband(3, new Uint8Array(3320))).toBe(true); // [512, 3856): 240 bytes left
    Atomics.store(state, 1, 1); // b's store of the owner word has not landed yet
    const before = Buffer.from(ring.data);
    // By a's guess and cached free space there is room for 256 bytes.
    expect(a.writeInband(4, new Uint8Array(232))).toBe(false);
    expect(ring.loadWriteIndex()).toBe(3856);
    expect(Buffer.from(ring.data).equals(before)).toBe(true);
    expect(a.outFullTotal).toBe(1);
    expect(a.reserveRetries).toBe(0);
    fill(() => b.writeInband(5, new Uint8Array(8)));
    expect(a.writeInband(6, new Uint8Array(8))).toBe(false);
  });

  it("a stale guess that would not fit does not refuse a packet that fits", () => {
    const ring = makeRing(2);
    const state = MultiProducerRingWriter.createState(ring);
    const a = new MultiProducerRingWriter(ring, state); // id 1
    const b = new MultiProducerRingWriter(ring, state);
    const r = new RingReader(ring);
    expect(a.writeInband(1, new Uint8Array(3000))).toBe(true); // [0, 3024)
    expect(a.writeInband(2, new Uint8Array(8))).toBe(true); // [3024, 3056): a is alone, owns the owner word
    expect(Atomics.load(state, 1)).toBe(1);
    expect(b.writeInband(3, new Uint8Array(56))).toBe(true); // [3056, 3136)
    Atomics.store(state, 1, 1); // b's store of the owner word has not landed yet
    for (let p = r.first(); p !== null; p = r.first()) r.advance();
    r.close(); // read_index 3136: by a's guess (3056) only 80 bytes are free
    expect(a.writeInband(4, new Uint8Array(1020))).toBe(true); // 1048 bytes, more than a's cached 1040
    expect(a.outFullTotal).toBe(0);
    expect(r.first()?.transIdNumber).toBe(4);
    expect(ring.loadWriteIndex()).toBe((3136 + 1048) % ring.dataSize); // wrapped
  });

  it("a racing producer: the swap fails and the write lands after the racer's, alone or not", () => {
    const setup = (): { mem: Uint8Array; ringA: RingBuffer; state: Int32Array; a: MultiProducerRingWriter; b: MultiProducerRingWriter } => {
      const mem = new Uint8Array(new SharedArrayBuffer(3 * 4096));
      const ringA = new RingBuffer(mem, "a");
      ringA.init();
      const state = MultiProducerRingWriter.createState(ringA);
      const a = new MultiProducerRingWriter(ringA, state); // id 1
      const b = new MultiProducerRingWriter(new RingBuffer(mem, "b"), state); // id 2
      return { mem, ringA, state, a, b };
    };
    const order = (mem: Uint8Array): number[] => {
      const r = new RingReader(new RingBuffer(mem, "reader"));
      const ids: number[] = [];
      for (let p = r.first(); p !== null; p = r.next()) ids.push(p.transIdNumber);
      return ids;
    };

    // Alone: a owns the owner word and takes the short cut. b reserves
    // between a's look at the owner word and a's compare-and-swap: b's
    // swap has landed, its store to the owner word not yet (undone here).
    {
      const { mem, state, a, b } = setup();
      expect(a.writeInband(1, new Uint8Array(40))).toBe(true);
      expect(a.writeInband(2, new Uint8Array(40))).toBe(true); // found the word at its own end: claims it
      expect(Atomics.load(state, 1)).toBe(1);
      expect(b.writeInband(10, new Uint8Array(40))).toBe(true);
      expect(Atomics.load(state, 1)).toBe(0); // b saw a's id: nobody may rely on being alone
      Atomics.store(state, 1, 1); // ... but that store has not landed yet
      expect(a.writeInband(11, new Uint8Array(40))).toBe(true);
      expect(a.reserveRetries).toBe(0); // a failed guess is not a lost race
      expect(order(mem)).toEqual([1, 2, 10, 11]);
      expect(Atomics.load(state, 16) & 0x7fffffff).toBe(Atomics.load(state, 0)); // everything reserved is published
    }

    // Not alone: b runs exactly between a's load of read_index and a's compare-and-swap.
    {
      const { mem, ringA, state, a, b } = setup();
      expect(a.writeInband(1, new Uint8Array(40))).toBe(true);
      expect(b.writeInband(2, new Uint8Array(40))).toBe(true);
      const load = ringA.loadReadIndex.bind(ringA);
      let raced = false;
      ringA.loadReadIndex = () => {
        const v = load();
        if (!raced) {
          raced = true;
          expect(b.writeInband(10, new Uint8Array(40))).toBe(true);
        }
        return v;
      };
      expect(a.writeInband(11, new Uint8Array(40))).toBe(true);
      expect(raced).toBe(true);
      expect(a.reserveRetries).toBe(1); // lost between its look and its swap
      expect(order(mem)).toEqual([1, 2, 10, 11]);
      expect(Atomics.load(state, 16) & 0x7fffffff).toBe(Atomics.load(state, 0));
    }
  });

  it("the owner word: after a producer's write it holds that producer's id or nobody's", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ producer: fc.integer({ min: 0, max: 2 }), size: fc.integer({ min: 0, max: 600 }), runs: fc.integer({ min: 1, max: 5 }) }), { minLength: 1, maxLength: 60 }),
        (steps) => {
          const ring = makeRing(3);
          const state = MultiProducerRingWriter.createState(ring);
          const ws = [0, 1, 2].map(() => new MultiProducerRingWriter(ring, state)); // ids 1, 2, 3
          const r = new RingReader(ring);
          const model: number[] = [];
          const got: number[] = [];
          let seq = 0;
          for (const s of steps) {
            for (let k = 0; k < s.runs; k++) {
              const w = ws[s.producer] as MultiProducerRingWriter;
              if (!w.writeInband(seq, new Uint8Array(s.size))) {
                for (let p = r.first(); p !== null; r.advance(), p = r.first()) got.push(p.transIdNumber);
                r.close();
                expect(w.writeInband(seq, new Uint8Array(s.size))).toBe(true);
              }
              model.push(seq++);
              // Another producer's id left in the owner word would let it skip looking.
              expect([0, s.producer + 1]).toContain(Atomics.load(state, 1));
            }
          }
          for (let p = r.first(); p !== null; r.advance(), p = r.first()) got.push(p.transIdNumber);
          expect(got).toEqual(model);
          for (const w of ws) expect(w.reserveRetries + w.publishWaits).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("alone, but not its turn: a batching producer holds an earlier reservation", () => {
    const ring = makeRing(2);
    const state = new Int32Array(MultiProducerRingWriter.STATE_BYTES / 4); // not shared memory: waiting throws
    MultiProducerRingWriter.initState(ring, state);
    const b = new MultiProducerRingWriter(ring, state);
    const a = new MultiProducerRingWriter(ring, state, { publishOnWrite: false });
    expect(b.writeInband(1, new Uint8Array(8))).toBe(true);
    expect(b.writeInband(2, new Uint8Array(8))).toBe(true); // b owns the owner word now
    expect(b.commit()).toBe(true); // its first write made the ring non-empty
    expect(a.writeInband(3, new Uint8Array(8))).toBe(true); // reserved, not published
    expect(() => b.writeInband(4, new Uint8Array(8))).toThrow(/no other thread can publish/);
    expect(ring.loadWriteIndex()).toBe(2 * 32); // nothing published out of order
    expect(a.commit()).toBe(false);
    expect(b.commit()).toBe(false);
    const r = new RingReader(ring);
    const ids: number[] = [];
    for (let p = r.first(); p !== null; p = r.next()) ids.push(p.transIdNumber);
    expect(ids).toEqual([1, 2, 3, 4]);
  });

  it("never takes the short cut on a ring too large for the bound (fewer than 1024 laps of tag space)", () => {
    const big = new RingBuffer(new Uint8Array(new SharedArrayBuffer(4096 + 16 * 1024 * 1024 + 4096)), "big");
    big.init();
    const state = MultiProducerRingWriter.createState(big);
    const w = new MultiProducerRingWriter(big, state);
    for (let i = 0; i < 5; i++) expect(w.writeInband(i, new Uint8Array(100))).toBe(true);
    expect(Atomics.load(state, 1)).toBe(0);
    const small = makeRing(2);
    const state2 = MultiProducerRingWriter.createState(small);
    const w2 = new MultiProducerRingWriter(small, state2);
    for (let i = 0; i < 5; i++) expect(w2.writeInband(i, new Uint8Array(100))).toBe(true);
    expect(Atomics.load(state2, 1)).toBe(1);
  });

  it("publishes with one swap of the published word and leaves the waiting bit clear", () => {
    const ring = makeRing(2);
    const state = MultiProducerRingWriter.createState(ring);
    const w = new MultiProducerRingWriter(ring, state);
    const r = new RingReader(ring);
    for (let i = 0; i < 100; i++) {
      expect(w.writeInband(i, new Uint8Array(100))).toBe(true);
      for (let p = r.first(); p !== null; p = r.first()) r.advance();
      r.close();
      const published = Atomics.load(state, 16);
      expect(published >= 0).toBe(true); // bit 31 (a sleeper) never set on one thread
      expect(published).toBe(Atomics.load(state, 0));
      expect((published & 0x1ff) << 3).toBe(ring.loadWriteIndex());
    }
    expect(w.reserveRetries + w.publishWaits + w.publishSleeps).toBe(0);
  });
});

// ------------------------------------------------------------ deferred release

describe("RingReader.closeIfAtLeast: deferred release", () => {
  it("moves read_index only once the threshold is crossed, then releases everything stepped past", () => {
    const ring = makeRing(2);
    const w = new RingWriter(ring);
    const r = new RingReader(ring);
    for (let i = 0; i < 10; i++) expect(w.writeInband(i, new Uint8Array(40))).toBe(true); // 64 B each
    w.commit();
    const seen: number[] = [];
    for (let p = r.first(); p !== null; p = r.first()) {
      r.advance();
      seen.push(r.unreleasedBytes);
      expect(r.closeIfAtLeast(200)).toBe(false); // nobody waits: never a signal
      seen.push(ring.loadReadIndex());
    }
    // unreleased, read_index after each packet: published at 256 (4 packets), then 512, ...
    expect(seen).toEqual([64, 0, 128, 0, 192, 0, 256, 256, 64, 256, 128, 256, 192, 256, 256, 512, 64, 512, 128, 512]);
    expect(r.unreleasedBytes).toBe(128);
    expect(r.close()).toBe(false);
    expect(ring.loadReadIndex()).toBe(640);
    expect(r.unreleasedBytes).toBe(0);
  });

  it("a packet returned but not stepped past is not released, and comes again", () => {
    const ring = makeRing(2);
    const w = new RingWriter(ring);
    const r = new RingReader(ring);
    w.writeInband(1, new Uint8Array(40));
    w.writeInband(2, new Uint8Array(40));
    w.commit();
    r.first();
    r.advance();
    expect(r.first()?.transIdNumber).toBe(2);
    expect(r.closeIfAtLeast(64)).toBe(false);
    expect(ring.loadReadIndex()).toBe(64);
    expect(r.first()?.transIdNumber).toBe(2);
  });

  it("signals a blocked writer exactly once, on the release that crosses pending_send_sz", () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 3000 }), fc.integer({ min: 8, max: 2048 }), fc.integer({ min: 10, max: 400 }), (need, threshold, size) => {
        const ring = makeRing(2);
        const w = new RingWriter(ring);
        const r = new RingReader(ring);
        fill(() => w.writeInband(1, new Uint8Array(size)));
        w.commit();
        const total = RingWriter.packetTotal(0, need);
        const blocked = !w.block(total);
        let signals = 0;
        let freeBefore = ring.bytesToWrite(ring.loadWriteIndex(), ring.loadReadIndex());
        for (let p = r.first(); p !== null; p = r.first()) {
          r.advance();
          const published = ring.loadReadIndex();
          const sig = r.closeIfAtLeast(threshold);
          const moved = ring.loadReadIndex() !== published;
          expect(!sig || moved).toBe(true); // a signal only with a publication
          const freeNow = ring.bytesToWrite(ring.loadWriteIndex(), ring.loadReadIndex());
          // The rule: signal iff this publication took free space from <= pending to > pending.
          const pending = ring.loadPendingSendSize();
          expect(sig).toBe(moved && pending !== 0 && freeBefore <= pending && freeNow > pending);
          if (sig) {
            signals++;
            w.unblock(); // the writer's interrupt handler
          }
          freeBefore = freeNow;
        }
        if (r.close()) {
          signals++;
          w.unblock();
        }
        expect(signals).toBe(blocked ? 1 : 0);
        expect(ring.loadPendingSendSize()).toBe(0);
        expect(w.writeInband(2, new Uint8Array(need))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("no lost wakeup when the writer's block interleaves with the deferred release at every step", () => {
    // Reader steps inside closeIfAtLeast: store read_index, load pending_send_sz, load write_index.
    // The writer's block (store pending_send_sz, load read_index) runs whole at each point between
    // them, and the reader's whole release runs between the writer's two steps.
    const points = ["before", "after store read_index", "after load pending_send_sz", "after", "inside block"] as const;
    for (const at of points) {
      const mem = new Uint8Array(new SharedArrayBuffer(2 * 4096));
      const rRing = new RingBuffer(mem, "reader");
      rRing.init();
      const wRing = new RingBuffer(mem, "writer");
      const w = new RingWriter(wRing);
      const r = new RingReader(rRing);
      const size = 1000;
      fill(() => w.writeInband(1, new Uint8Array(size)));
      w.commit();
      const need = RingWriter.packetTotal(0, size);
      // The reader steps past three packets (enough room once released) without releasing.
      for (let i = 0; i < 3; i++) {
        r.first();
        r.advance();
        expect(r.closeIfAtLeast(4 * need)).toBe(false);
      }
      let writerRetries: boolean | null = null;
      const block = (): void => {
        writerRetries = w.block(need);
      };
      let signalled = false;
      const release = (): void => {
        signalled = r.closeIfAtLeast(2 * need);
      };
      if (at === "after store read_index") {
        const orig = rRing.loadPendingSendSize.bind(rRing);
        rRing.loadPendingSendSize = () => {
          block();
          return orig();
        };
      } else if (at === "after load pending_send_sz") {
        const orig = rRing.loadWriteIndex.bind(rRing);
        rRing.loadWriteIndex = () => {
          block();
          return orig();
        };
      } else if (at === "inside block") {
        const orig = wRing.loadReadIndex.bind(wRing);
        wRing.loadReadIndex = () => {
          if (!signalled) release();
          return orig();
        };
      }
      if (at === "before") block();
      if (at === "inside block") block();
      else release();
      // (With pending_send_sz still 0 the reader never loads write_index: then this is "after".)
      if (writerRetries === null) block();
      expect(writerRetries).not.toBeNull();
      // Either the writer saw the room and retries, or the reader saw it waiting and signals.
      expect(writerRetries === true || signalled).toBe(true);
      expect(rRing.loadReadIndex()).toBe(3 * need);
    }
  });
});
