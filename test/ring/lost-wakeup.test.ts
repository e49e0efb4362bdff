/**
 * The lost wakeup of the first seed document (Michael Kelley's comments on
 * hv_pkt_iter_close), as a test.
 *
 * A writer blocked on a full ring does two things: store pending_send_sz,
 * then look at read_index once more. A reader closing an iteration does
 * three: publish read_index, read pending_send_sz, read write_index (then
 * decide with `crossedPendingSendSize`, the production rule). Each step is a
 * single Atomics load or store on the real ring header, so every
 * interleaving of the two step lists is a schedule real threads could run.
 *
 * With the order reversed in the reader (pending_send_sz read before
 * read_index is published) there is an interleaving after which the writer
 * sleeps and nobody signals it. With the correct order, none of the
 * interleavings (all of them are enumerated) loses the wakeup.
 */
import { describe, expect, it } from "vitest";
import { RingBuffer, RingReader, RingWriter, crossedPendingSendSize } from "../../core/index.js";
import { makeRing } from "./helpers.js";

interface World {
  ring: RingBuffer;
  /** Where the reader's private cursor is (what it will publish). */
  cursor: number;
  /** The read index the reader published before this iteration. */
  startRead: number;
  need: number;
  // Reader's observations.
  pending: number;
  write: number;
  signalled: boolean;
  // Writer's outcome.
  writerSleeps: boolean;
}

type Step = (w: World) => void;

/** A ring filled so that a 1024-byte packet does not fit; the reader has consumed (privately) enough for it. */
function setup(): World {
  const ring = makeRing(2);
  const writer = new RingWriter(ring);
  const payload = new Uint8Array(1000);
  while (writer.writeInband(1, payload)) {
    /* fill */
  }
  writer.commit();
  const need = RingWriter.packetTotal(0, 1000);
  // The reader walks (privately) past two packets: enough room once published.
  const reader = new RingReader(ring);
  reader.first();
  reader.next();
  reader.next();
  const consumed = 2 * need;
  expect(ring.bytesToWrite(ring.loadWriteIndex(), ring.loadReadIndex())).toBeLessThanOrEqual(need);
  return { ring, cursor: consumed, startRead: 0, need, pending: -1, write: -1, signalled: false, writerSleeps: false };
}

const writerSteps: Step[] = [
  (w) => w.ring.storePendingSendSize(w.need),
  (w) => {
    const free = w.ring.bytesToWrite(w.ring.loadWriteIndex(), w.ring.loadReadIndex());
    // Enough room after all: clear the request and retry instead of sleeping.
    if (free > w.need) w.ring.storePendingSendSize(0);
    else w.writerSleeps = true;
  },
];

function decide(w: World): void {
  const freeNow = w.ring.bytesToWrite(w.write, w.cursor);
  const bytesRead = w.cursor - w.startRead;
  w.signalled = crossedPendingSendSize(w.pending, freeNow, bytesRead);
}

const readerCorrect: Step[] = [
  (w) => w.ring.storeReadIndex(w.cursor),
  (w) => (w.pending = w.ring.loadPendingSendSize()),
  (w) => {
    w.write = w.ring.loadWriteIndex();
    decide(w);
  },
];

const readerReversed: Step[] = [
  (w) => (w.pending = w.ring.loadPendingSendSize()),
  (w) => w.ring.storeReadIndex(w.cursor),
  (w) => {
    w.write = w.ring.loadWriteIndex();
    decide(w);
  },
];

/** Every interleaving of two step lists that keeps each list's own order. */
function interleavings<T>(a: T[], b: T[]): T[][] {
  if (a.length === 0) return [b];
  if (b.length === 0) return [a];
  return [
    ...interleavings(a.slice(1), b).map((rest) => [a[0] as T, ...rest]),
    ...interleavings(a, b.slice(1)).map((rest) => [b[0] as T, ...rest]),
  ];
}

function run(reader: Step[]): { schedules: number; lost: number } {
  const all = interleavings(
    writerSteps.map((s, i) => ({ s, label: `W${i}` })),
    reader.map((s, i) => ({ s, label: `R${i}` })),
  );
  let lost = 0;
  for (const schedule of all) {
    const w = setup();
    for (const { s } of schedule) s(w);
    if (w.writerSleeps && !w.signalled) lost++;
  }
  return { schedules: all.length, lost };
}

describe("lost wakeup (seed 000: publish read_index, then read pending_send_sz)", () => {
  it("with the reader's order reversed, some interleaving leaves the writer asleep forever", () => {
    const { schedules, lost } = run(readerReversed);
    expect(schedules).toBe(10);
    expect(lost).toBeGreaterThan(0);
    // The constructed one: reader samples pending (0), writer publishes
    // pending and re-reads the old read_index (no room) and sleeps, reader
    // publishes read_index but decided on pending = 0: no signal.
    const w = setup();
    readerReversed[0]!(w);
    writerSteps[0]!(w);
    writerSteps[1]!(w);
    readerReversed[1]!(w);
    readerReversed[2]!(w);
    expect(w.writerSleeps).toBe(true);
    expect(w.signalled).toBe(false);
    expect(w.ring.loadPendingSendSize()).toBe(w.need); // still waiting, ring has room
    expect(w.ring.bytesToWrite(w.ring.loadWriteIndex(), w.ring.loadReadIndex())).toBeGreaterThan(w.need);
  });

  it("with the correct order, every one of the interleavings wakes the writer", () => {
    const { schedules, lost } = run(readerCorrect);
    expect(schedules).toBe(10);
    expect(lost).toBe(0);
  });

  it("the production RingWriter.block and RingReader.close agree in both sequential orders", () => {
    for (const writerFirst of [true, false]) {
      const ring = makeRing(2);
      const writer = new RingWriter(ring);
      while (writer.writeInband(1, new Uint8Array(1000))) {
        /* fill */
      }
      writer.commit();
      const need = RingWriter.packetTotal(0, 1000);
      const reader = new RingReader(ring);
      reader.first();
      reader.next();
      reader.next();
      let retry = false;
      let signal = false;
      if (writerFirst) {
        retry = writer.block(need);
        signal = reader.close();
      } else {
        signal = reader.close();
        retry = writer.block(need);
      }
      // Exactly one of the two mechanisms lets the writer go on.
      expect(retry !== signal).toBe(true);
    }
  });
});
