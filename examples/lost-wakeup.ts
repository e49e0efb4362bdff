/**
 * The lost wakeup of the ring-signalling seed document (Michael Kelley's
 * comments on hv_pkt_iter_close), step by step on a real ring header.
 *
 * A writer blocked on a full ring does two things:
 *   W0 store pending_send_sz = what it needs
 *   W1 load read_index once more: room after all → clear the request and
 *      retry; no room → sleep until signalled
 * A reader closing an iteration does three (correct order):
 *   R0 store read_index (publish what it consumed)
 *   R1 load pending_send_sz
 *   R2 load write_index and decide: signal when the free space crossed
 *      pending_send_sz (`crossedPendingSendSize`, the production rule)
 * Each step is one Atomics load or store, so every interleaving of the two
 * lists (10 of them: C(5,2)) is a schedule two real CPUs could run.
 *
 * Reversed — R1 before R0 — one interleaving leaves the writer asleep on a
 * ring that has room, with nobody left to signal it. In the correct order,
 * none does: either the writer's W1 sees the published read_index, or the
 * reader's R1 sees pending_send_sz.
 *
 * Run: `npm run example:lost-wakeup`.
 */
import { RingBuffer, RingReader, RingWriter, crossedPendingSendSize } from "../core/index.js";

interface World {
  ring: RingBuffer;
  cursor: number;
  startRead: number;
  need: number;
  pending: number;
  write: number;
  signalled: boolean;
  writerSleeps: boolean;
  writerRetries: boolean;
}

interface Step {
  label: string;
  run(w: World): string;
}

/** A 4 KiB ring full enough that a ~1 KiB packet does not fit; the reader has consumed (privately) two packets: enough room once published. */
function setup(): World {
  const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(2 * 4096)), "demo ring");
  ring.init();
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
  return { ring, cursor: 2 * need, startRead: 0, need, pending: -1, write: -1, signalled: false, writerSleeps: false, writerRetries: false };
}

const free = (w: World): number => w.ring.bytesToWrite(w.ring.loadWriteIndex(), w.ring.loadReadIndex());

const W: Step[] = [
  { label: "W0", run: (w) => (w.ring.storePendingSendSize(w.need), `writer stores pending_send_sz=${w.need}`) },
  {
    label: "W1",
    run: (w) => {
      const f = free(w);
      if (f > w.need) {
        w.ring.storePendingSendSize(0);
        w.writerRetries = true;
        return `writer loads read_index=${w.ring.loadReadIndex()}: ${f} B free > ${w.need} → clears pending_send_sz, retries`;
      }
      w.writerSleeps = true;
      return `writer loads read_index=${w.ring.loadReadIndex()}: ${f} B free ≤ ${w.need} → sleeps, waiting for a signal`;
    },
  },
];

const publish: Step = { label: "R0", run: (w) => (w.ring.storeReadIndex(w.cursor), `reader stores read_index=${w.cursor}`) };
const loadPending: Step = { label: "R1", run: (w) => ((w.pending = w.ring.loadPendingSendSize()), `reader loads pending_send_sz=${w.pending}`) };
const decide: Step = {
  label: "R2",
  run: (w) => {
    w.write = w.ring.loadWriteIndex();
    const freeNow = w.ring.bytesToWrite(w.write, w.cursor);
    w.signalled = crossedPendingSendSize(w.pending, freeNow, w.cursor - w.startRead);
    return `reader loads write_index=${w.write}: ${freeNow} B free, pending_send_sz seen=${w.pending} → ${w.signalled ? "SIGNALS the writer" : "no signal"}`;
  },
};
const correct: Step[] = [publish, loadPending, decide];
const reversed: Step[] = [{ ...loadPending, label: "R0'" }, { ...publish, label: "R1'" }, { ...decide, label: "R2'" }];

function interleavings<T>(a: T[], b: T[]): T[][] {
  if (a.length === 0) return [b];
  if (b.length === 0) return [a];
  return [
    ...interleavings(a.slice(1), b).map((rest) => [a[0] as T, ...rest]),
    ...interleavings(a, b.slice(1)).map((rest) => [b[0] as T, ...rest]),
  ];
}

function play(schedule: Step[], verbose: boolean): World {
  const w = setup();
  for (const s of schedule) {
    const what = s.run(w);
    if (verbose) console.log(`  ${s.label.padEnd(4)} ${what}`);
  }
  return w;
}

const lost = (w: World): boolean => w.writerSleeps && !w.signalled;
const outcome = (w: World): string =>
  w.writerRetries ? (w.signalled ? "writer retried on its own (and got a harmless extra signal)" : "writer retried on its own") : w.signalled ? "writer slept, woken by the signal" : "WAKEUP LOST";

console.log("── reversed order (reader loads pending_send_sz, then publishes read_index): the losing interleaving");
const bad = play([reversed[0]!, W[0]!, W[1]!, reversed[1]!, reversed[2]!], true);
console.log(
  `  → writer asleep: ${bad.writerSleeps}; ring has room: ${free(bad)} B free > ${bad.need} needed; pending_send_sz still ${bad.ring.loadPendingSendSize()}; signalled: ${bad.signalled}` +
    `\n    nobody will ever signal: the writer sleeps forever on a ring with room`,
);
const allReversed = interleavings(W, reversed).map((s) => ({ s, w: play(s, false) }));
console.log(`  ${allReversed.filter((x) => lost(x.w)).length} of ${allReversed.length} interleavings of the reversed order lose the wakeup`);

console.log("\n── correct order (publish read_index, then load pending_send_sz): all interleavings");
const allCorrect = interleavings(W, correct).map((s) => ({ s, w: play(s, false) }));
allCorrect.forEach(({ s, w }, i) => console.log(`  ${String(i + 1).padStart(2)}. ${s.map((x) => x.label).join(" ")}  → ${outcome(w)}`));
const lostCorrect = allCorrect.filter((x) => lost(x.w)).length;
console.log(`  ${allCorrect.length - lostCorrect} of ${allCorrect.length} interleavings of the correct order wake the writer (${lostCorrect} lose it)`);
console.log("\n── the same schedule as the losing one (reader, writer, writer, reader, reader), in the correct order");
const good = play([correct[0]!, W[0]!, W[1]!, correct[1]!, correct[2]!], true);
console.log(`  → ${outcome(good)}: the writer's second look sees the published read_index`);
if (lostCorrect !== 0) process.exit(1);
