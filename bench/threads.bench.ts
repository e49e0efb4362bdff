/**
 * Packets across threads: the VMBus ring written by `MultiProducerRingWriter`
 * in producer worker threads and read by `RingReader` in a consumer worker
 * thread, against `MessageChannel` `postMessage` and ringbuf.js between the
 * same threads, in one run.
 *
 *   npm run bench:threads                 # table on stdout
 *   npm run -s bench:threads -- --json    # one JSON object on stdout
 *   npm run bench:threads -- --help
 *
 * Every case moves whole packets with a copy on each side and checks every
 * one at the consumer (producer id, per-producer sequence number, a payload
 * byte), so a broken transport fails instead of producing a fast number.
 * This file is also the workers' script: a worker runs it with workerData.
 */
import { performance } from "node:perf_hooks";
import { MessageChannel, type MessagePort, Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { availableParallelism, loadavg } from "node:os";
import { RingBuffer as RbjsRingBuffer } from "ringbuf.js";
import { RING_HEADER_SIZE } from "../core/ring/layout.js";
import { MultiProducerRingWriter } from "../core/ring/multi-producer-writer.js";
import { RingBuffer } from "../core/ring/ring-buffer.js";
import { RingReader } from "../core/ring/ring-reader.js";
import { fmtFixed, fmtRate, median, table, parseTimedBenchArgs, type TimedBenchOptions } from "./harness.js";

const SIZES = [64, 4096] as const;
const PRODUCERS = [1, 2] as const;
const MECHANISMS = ["vmbus-ring", "vmbus-ring-b16", "postMessage", "ringbuf.js"] as const;
/** vmbus-ring-b16: packets written per commit (one store of write_index when nobody interleaves). */
const BATCH = 16;
type Mechanism = (typeof MECHANISMS)[number];
/** Data area of the ring, and capacity of each ringbuf.js ring, bytes. */
const DATA_BYTES = 256 * 1024;
const MAX_PACKET = 8192;
/** Packets between two looks at the stop flag / two stores of the consumed count. */
const CHUNK = 64;
/** postMessage flow control: messages a producer may have in flight. */
const PM_WINDOW = 2048;
const TARGET_VS_POSTMESSAGE_64 = 10;
const TAG = "vmbus-sim/threads-bench";
/** Polls of an empty ring (masked) before the consumer unmasks and sleeps. */
const POLLS = 2000;

// Control words (Int32Array over a SharedArrayBuffer), 64 bytes apart where
// different threads write them.
const C_GO = 0;
const C_STOP = 1;
const C_DONE = 2;
const C_CONSUMED = 16;
const C_PRODUCED = 32; // + producer id
const C_RECEIVED_FROM = 48; // + producer id (postMessage flow control)
const C_BELL_DATA = 64;
const C_BELL_SPACE = 80;
const C_WORDS = 96;

// ---------------------------------------------------------------- options

type Options = TimedBenchOptions;

const HELP = `Usage: node dist/bench/threads.bench.js [options]
       npm run -s bench:threads -- [options]

Measures packets/s and payload bytes/s from producer worker threads to a
consumer worker thread, for ${SIZES.join(" and ")} B payloads and ${PRODUCERS.join(" or ")} producers:

  vmbus-ring   MultiProducerRingWriter (lockless multi-producer write,
               publish per packet) into one ${DATA_BYTES / 1024} KiB VMBus ring over a
               SharedArrayBuffer; RingReader drains it under the interrupt mask,
               releasing read_index once per ${DATA_BYTES / 8 / 1024} KiB consumed (closeIfAtLeast)
               and before it sleeps on a doorbell (Atomics.wait) when the ring
               is empty; producers block with pending_send_sz when it is full
  vmbus-ring-b16  the same, each producer committing ${BATCH} writes at a time
               (publishOnWrite: false)
  postMessage  one MessageChannel per producer; each packet is a Uint8Array
               posted (structured clone); at most ${PM_WINDOW} in flight per producer
  ringbuf.js   one ${DATA_BYTES / 1024} KiB ringbuf.js ring per producer (it is single-producer);
               push/pop of the payload bytes, the consumer polls

Each case starts fresh threads, warms up, then counts packets the consumer
received over the timed window.

Options:
  --json         print exactly one JSON object on stdout (progress goes to stderr)
  --seconds S    timed seconds per repetition of each case (default 0.35)
  --reps N       repetitions per case, interleaved across cases; the median
                 is reported (default 3)
  --warmup S     untimed seconds per run before timing (default 0.15)
  --help         show this help

Runtime: 16 cases x reps x (seconds + warmup + thread start-up), about 30 s by default.
Target (reported, never fails the process): vmbus-ring >= ${TARGET_VS_POSTMESSAGE_64}x postMessage
at 64 B with one producer (ratios.vs_postmessage_64).
Use 'npm run -s' with --json: plain 'npm run' prints its own banner on stdout.`;

function parseArgs(argv: readonly string[]): Options {
  return parseTimedBenchArgs(argv, HELP, { json: false, seconds: 0.35, reps: 3, warmup: 0.15 }, 0.05);
}

// ---------------------------------------------------------------- workers

interface CaseSetup {
  readonly mechanism: Mechanism;
  readonly size: number;
  readonly producers: number;
  readonly ctrl: SharedArrayBuffer;
  /** vmbus-ring: the ring and the producers' state; ringbuf.js: one storage per producer. */
  readonly ring?: SharedArrayBuffer;
  readonly state?: SharedArrayBuffer;
  readonly rbjs?: readonly SharedArrayBuffer[];
}

type WorkerInput =
  | { readonly tag: typeof TAG; readonly role: "producer"; readonly id: number; readonly setup: CaseSetup; readonly port?: MessagePort }
  | { readonly tag: typeof TAG; readonly role: "consumer"; readonly setup: CaseSetup; readonly ports?: readonly MessagePort[] };

interface ProducerStats {
  readonly role: "producer";
  readonly id: number;
  readonly produced: number;
  readonly signals: number;
  readonly refused: number;
  readonly reserveRetries: number;
  readonly publishWaits: number;
  readonly publishSleeps: number;
}

interface ConsumerStats {
  readonly role: "consumer";
  readonly consumed: number;
  readonly sleeps: number;
  readonly error: string | null;
}

function fail(what: string): never {
  throw new Error(`threads bench: verification failed: ${what}`);
}

function waitGo(ctrl: Int32Array): void {
  while (Atomics.load(ctrl, C_GO) === 0) Atomics.wait(ctrl, C_GO, 0, 50);
}

function filledPayload(size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + 7) & 0xff;
  return p;
}

/** The producer's end: stop flag checked every CHUNK packets; the count goes to C_PRODUCED at the end. */
function finishProducer(ctrl: Int32Array, id: number, produced: number): void {
  Atomics.store(ctrl, C_PRODUCED + id, produced);
  Atomics.add(ctrl, C_DONE, 1);
  Atomics.notify(ctrl, C_DONE);
}

function ringProducer(id: number, s: CaseSetup, batch: number): ProducerStats {
  const ctrl = new Int32Array(s.ctrl);
  const ring = new RingBuffer(new Uint8Array(s.ring as SharedArrayBuffer), `producer ${id}`);
  // One producer per thread, so waiting for the others is always safe.
  const w = new MultiProducerRingWriter(ring, new Int32Array(s.state as SharedArrayBuffer), { publishOnWrite: batch === 1, waitForOthers: true });
  const payload = filledPayload(s.size);
  payload[0] = id;
  const total = MultiProducerRingWriter.packetTotal(0, s.size);
  let seq = 0;
  let signals = 0;
  let refused = 0;
  const commit = (): void => {
    if (w.commit()) {
      signals++;
      Atomics.add(ctrl, C_BELL_DATA, 1);
      Atomics.notify(ctrl, C_BELL_DATA);
    }
  };
  waitGo(ctrl);
  while (Atomics.load(ctrl, C_STOP) === 0) {
    for (let k = 0; k < CHUNK; k++, seq++) {
      while (!w.writeInband(seq >>> 0, payload)) {
        refused++;
        // Publish and signal what we hold before waiting for room.
        commit();
        const g = Atomics.load(ctrl, C_BELL_SPACE);
        if (!w.block(total)) Atomics.wait(ctrl, C_BELL_SPACE, g, 50);
      }
      if ((k + 1) % batch === 0) commit();
    }
  }
  commit();
  finishProducer(ctrl, id, seq);
  return { role: "producer", id, produced: seq, signals, refused, reserveRetries: w.reserveRetries, publishWaits: w.publishWaits, publishSleeps: w.publishSleeps };
}

/** True once every producer is done and everything it produced has been consumed. */
function allConsumed(ctrl: Int32Array, producers: number, consumed: number): boolean {
  if (Atomics.load(ctrl, C_DONE) !== producers) return false;
  let total = 0;
  for (let i = 0; i < producers; i++) total += Atomics.load(ctrl, C_PRODUCED + i);
  return consumed === total;
}

function ringConsumer(s: CaseSetup): ConsumerStats {
  const ctrl = new Int32Array(s.ctrl);
  const ring = new RingBuffer(new Uint8Array(s.ring as SharedArrayBuffer), "consumer");
  const reader = new RingReader(ring, { maxPacketSize: MAX_PACKET });
  const next = new Uint32Array(s.producers);
  const last = filledPayload(s.size)[s.size - 1] as number;
  // Deferred release: read_index is published once an eighth of the ring
  // has been consumed, and before every sleep (see RingReader.closeIfAtLeast).
  const closeBytes = ring.dataSize >>> 3;
  let consumed = 0;
  let sleeps = 0;
  // The producers' interrupt handler: clear pending_send_sz, wake them all.
  const wakeProducers = (): void => {
    ring.storePendingSendSize(0);
    Atomics.add(ctrl, C_BELL_SPACE, 1);
    Atomics.notify(ctrl, C_BELL_SPACE);
  };
  waitGo(ctrl);
  reader.beginRead();
  let spins = 0;
  for (;;) {
    // `first` loads write_index only when the packets before the index it
    // last loaded are used up: one load per burst, and one per empty poll.
    const p = reader.first();
    if (p !== null) {
      spins = 0;
      const off = p.dataOffset;
      const id = p.buffer[off] as number;
      if (id >= s.producers || p.transIdLo !== next[id]) fail(`producer ${id}: packet ${p.transIdLo}, expected ${next[id]}`);
      if (p.buffer[off + s.size - 1] !== last) fail(`payload of packet ${p.transIdLo} from ${id}`);
      next[id] = (next[id] as number) + 1;
      reader.advance();
      if ((++consumed & (CHUNK - 1)) === 0) Atomics.store(ctrl, C_CONSUMED, consumed);
      if (reader.closeIfAtLeast(closeBytes)) wakeProducers();
      continue;
    }
    // Empty: poll a little (masked, so producers do not signal), then
    // release what we hold, unmask and sleep until a producer signals.
    if (++spins < POLLS) continue;
    spins = 0;
    if (reader.close()) wakeProducers();
    Atomics.store(ctrl, C_CONSUMED, consumed);
    if (allConsumed(ctrl, s.producers, consumed)) break;
    const g = Atomics.load(ctrl, C_BELL_DATA);
    if (reader.endRead() === 0) {
      sleeps++;
      Atomics.wait(ctrl, C_BELL_DATA, g, 20);
    }
    reader.beginRead();
  }
  if (reader.close()) wakeProducers();
  return { role: "consumer", consumed, sleeps, error: null };
}

function pmProducer(id: number, s: CaseSetup, port: MessagePort): ProducerStats {
  const ctrl = new Int32Array(s.ctrl);
  const payload = filledPayload(s.size);
  const v = new DataView(payload.buffer);
  payload[4] = id;
  let seq = 0;
  waitGo(ctrl);
  while (Atomics.load(ctrl, C_STOP) === 0) {
    for (let k = 0; k < CHUNK; k++, seq++) {
      // Flow control: without it the port's queue grows without bound.
      while (seq - Atomics.load(ctrl, C_RECEIVED_FROM + id) >= PM_WINDOW) Atomics.wait(ctrl, C_STOP, 0, 0.05);
      v.setUint32(0, seq, true);
      port.postMessage(payload);
    }
  }
  // The port is not closed here: closing could drop messages still queued.
  finishProducer(ctrl, id, seq);
  return { role: "producer", id, produced: seq, signals: 0, refused: 0, reserveRetries: 0, publishWaits: 0, publishSleeps: 0 };
}

function pmConsumer(s: CaseSetup, ports: readonly MessagePort[], done: (r: ConsumerStats) => void): void {
  const ctrl = new Int32Array(s.ctrl);
  const next = new Uint32Array(s.producers);
  const last = filledPayload(s.size)[s.size - 1] as number;
  let consumed = 0;
  let error: string | null = null;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearInterval(poll);
    for (const port of ports) port.close();
    done({ role: "consumer", consumed, sleeps: 0, error });
  };
  for (const port of ports) {
    port.on("message", (m: Uint8Array) => {
      const id = m[4] as number;
      const seq = (m[0] as number) | ((m[1] as number) << 8) | ((m[2] as number) << 16) | ((m[3] as number) << 24);
      if (error === null && (id >= s.producers || seq >>> 0 !== next[id] || m.length !== s.size || m[s.size - 1] !== last)) {
        error = `postMessage: producer ${id} message ${seq >>> 0}, expected ${next[id]}`;
      }
      next[id] = (next[id] as number) + 1;
      Atomics.store(ctrl, C_RECEIVED_FROM + id, next[id] as number);
      Atomics.store(ctrl, C_CONSUMED, ++consumed);
      if (Atomics.load(ctrl, C_STOP) !== 0 && allConsumed(ctrl, s.producers, consumed)) finish();
    });
  }
  const poll = setInterval(() => {
    if (allConsumed(ctrl, s.producers, consumed)) finish();
  }, 5);
}

function rbjsProducer(id: number, s: CaseSetup): ProducerStats {
  const ctrl = new Int32Array(s.ctrl);
  const rb = new RbjsRingBuffer((s.rbjs as SharedArrayBuffer[])[id] as SharedArrayBuffer, Uint8Array);
  const payload = filledPayload(s.size);
  const v = new DataView(payload.buffer);
  payload[4] = id;
  let seq = 0;
  let refused = 0;
  waitGo(ctrl);
  while (Atomics.load(ctrl, C_STOP) === 0) {
    for (let k = 0; k < CHUNK; k++, seq++) {
      v.setUint32(0, seq, true);
      // Whole packets only: wait for room, then push all of it.
      while (rb.availableWrite() < s.size) refused++;
      if (rb.push(payload, s.size) !== s.size) fail("ringbuf.js push");
    }
  }
  finishProducer(ctrl, id, seq);
  return { role: "producer", id, produced: seq, signals: 0, refused, reserveRetries: 0, publishWaits: 0, publishSleeps: 0 };
}

function rbjsConsumer(s: CaseSetup): ConsumerStats {
  const ctrl = new Int32Array(s.ctrl);
  const rbs = (s.rbjs as SharedArrayBuffer[]).map((sab) => new RbjsRingBuffer(sab, Uint8Array));
  const dst = new Uint8Array(s.size);
  const v = new DataView(dst.buffer);
  const next = new Uint32Array(s.producers);
  const last = filledPayload(s.size)[s.size - 1] as number;
  let consumed = 0;
  waitGo(ctrl);
  for (;;) {
    let got = 0;
    for (let id = 0; id < rbs.length; id++) {
      const rb = rbs[id] as RbjsRingBuffer;
      while (rb.availableRead() >= s.size) {
        if (rb.pop(dst, s.size) !== s.size) fail("ringbuf.js pop");
        if (dst[4] !== id || v.getUint32(0, true) !== next[id] || dst[s.size - 1] !== last) fail(`ringbuf.js: producer ${id} packet ${v.getUint32(0, true)}, expected ${next[id]}`);
        next[id] = (next[id] as number) + 1;
        got++;
        if ((++consumed & (CHUNK - 1)) === 0) Atomics.store(ctrl, C_CONSUMED, consumed);
      }
    }
    if (got === 0) {
      Atomics.store(ctrl, C_CONSUMED, consumed);
      if (allConsumed(ctrl, s.producers, consumed)) break;
    }
  }
  return { role: "consumer", consumed, sleeps: 0, error: null };
}

function workerMain(input: WorkerInput): void {
  const port = parentPort as MessagePort;
  const s = input.setup;
  port.postMessage({ ready: true });
  if (input.role === "producer") {
    const stats =
      s.mechanism === "vmbus-ring"
        ? ringProducer(input.id, s, 1)
        : s.mechanism === "vmbus-ring-b16"
          ? ringProducer(input.id, s, BATCH)
          : s.mechanism === "postMessage" ? pmProducer(input.id, s, input.port as MessagePort) : rbjsProducer(input.id, s);
    port.postMessage(stats);
  } else if (s.mechanism === "postMessage") {
    pmConsumer(s, input.ports as MessagePort[], (r) => port.postMessage(r));
  } else {
    port.postMessage(s.mechanism === "ringbuf.js" ? rbjsConsumer(s) : ringConsumer(s));
  }
}

// ---------------------------------------------------------------- main

interface RunResult {
  readonly packetsPerSec: number;
  readonly producers: readonly ProducerStats[];
  readonly consumer: ConsumerStats;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function spawn(input: WorkerInput, transfer: readonly MessagePort[]): { worker: Worker; ready: Promise<void>; result: Promise<ProducerStats | ConsumerStats> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: input, transferList: [...transfer] });
  let readyResolve: () => void = () => undefined;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const result = new Promise<ProducerStats | ConsumerStats>((resolve, reject) => {
    let out: ProducerStats | ConsumerStats | undefined;
    worker.on("message", (m: { ready: true } | ProducerStats | ConsumerStats) => {
      if ("role" in m) out = m;
      else readyResolve();
    });
    worker.once("error", reject);
    worker.once("exit", (code) => (out !== undefined ? resolve(out) : reject(new Error(`worker exited with code ${code} without a result`))));
  });
  return { worker, ready, result };
}

async function runCase(mechanism: Mechanism, size: number, producers: number, opt: Options): Promise<RunResult> {
  const ctrlSab = new SharedArrayBuffer(C_WORDS * 4);
  const ctrl = new Int32Array(ctrlSab);
  let setup: CaseSetup = { mechanism, size, producers, ctrl: ctrlSab };
  if (mechanism === "vmbus-ring" || mechanism === "vmbus-ring-b16") {
    const ringSab = new SharedArrayBuffer(RING_HEADER_SIZE + DATA_BYTES);
    const ring = new RingBuffer(new Uint8Array(ringSab), "bench");
    ring.init();
    const state = MultiProducerRingWriter.createState(ring);
    setup = { ...setup, ring: ringSab, state: state.buffer as SharedArrayBuffer };
  } else if (mechanism === "ringbuf.js") {
    setup = { ...setup, rbjs: Array.from({ length: producers }, () => RbjsRingBuffer.getStorageForCapacity(DATA_BYTES, Uint8Array)) };
  }
  const channels = mechanism === "postMessage" ? Array.from({ length: producers }, () => new MessageChannel()) : [];
  const consumerPorts = channels.map((c) => c.port2);
  const workers = [spawn({ tag: TAG, role: "consumer", setup, ports: consumerPorts }, consumerPorts)];
  for (let id = 0; id < producers; id++) {
    const port = channels[id]?.port1;
    workers.push(spawn({ tag: TAG, role: "producer", id, setup, ...(port !== undefined ? { port } : {}) }, port !== undefined ? [port] : []));
  }
  await Promise.all(workers.map((w) => w.ready));
  Atomics.store(ctrl, C_GO, 1);
  Atomics.notify(ctrl, C_GO);
  await sleep(opt.warmup * 1000);
  const c0 = Atomics.load(ctrl, C_CONSUMED);
  const t0 = performance.now();
  await sleep(opt.seconds * 1000);
  const c1 = Atomics.load(ctrl, C_CONSUMED);
  const t1 = performance.now();
  Atomics.store(ctrl, C_STOP, 1);
  const results = await Promise.all(workers.map((w) => w.result));
  const consumer = results[0] as ConsumerStats;
  if (consumer.error !== null) fail(consumer.error);
  const prods = results.slice(1) as ProducerStats[];
  const produced = prods.reduce((a, p) => a + p.produced, 0);
  if (consumer.consumed !== produced) fail(`${mechanism}: consumed ${consumer.consumed} of ${produced} packets`);
  return { packetsPerSec: ((c1 - c0) * 1000) / (t1 - t0), producers: prods, consumer };
}

interface Result {
  readonly case: Mechanism;
  readonly size: number;
  readonly producers: number;
  readonly packetsPerSec: number;
  readonly bytesPerSec: number;
  readonly mbPerSec: number;
  readonly samplesPerSec: readonly number[];
  readonly spread: number;
  /** vmbus-ring only, summed over producers and repetitions. */
  readonly ring?: { signals: number; refusedFull: number; reserveRetries: number; publishWaits: number; publishSleeps: number; consumerSleeps: number; packets: number };
}

async function main(): Promise<void> {
  const opt = parseArgs(process.argv.slice(2));
  const log = (s: string): void => void process.stderr.write(s);
  const cases: { mechanism: Mechanism; size: number; producers: number }[] = [];
  for (const size of SIZES) for (const producers of PRODUCERS) for (const mechanism of MECHANISMS) cases.push({ mechanism, size, producers });

  // Threads here compete for few CPUs with whatever else runs: the load
  // average is part of the result.
  const loadBefore = loadavg()[0] as number;
  log(`threads bench: ${cases.length} cases, ${opt.reps} x (${opt.warmup}s warm-up + ${opt.seconds}s), ${availableParallelism()} CPUs\n`);
  const runs: RunResult[][] = cases.map(() => []);
  // Repetitions interleave the cases, so slow drift spreads over all of them.
  for (let r = 0; r < opt.reps; r++) {
    log(`  rep ${r + 1}/${opt.reps}\n`);
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i] as (typeof cases)[number];
      (runs[i] as RunResult[]).push(await runCase(c.mechanism, c.size, c.producers, opt));
    }
  }

  const loadAfter = loadavg()[0] as number;
  const results: Result[] = cases.map((c, i) => {
    const rs = runs[i] as RunResult[];
    const rates = rs.map((x) => x.packetsPerSec);
    const pps = median(rates);
    const base = {
      case: c.mechanism,
      size: c.size,
      producers: c.producers,
      packetsPerSec: pps,
      bytesPerSec: pps * c.size,
      mbPerSec: (pps * c.size) / 1e6,
      samplesPerSec: rates,
      spread: (Math.max(...rates) - Math.min(...rates)) / pps,
    };
    if (c.mechanism !== "vmbus-ring" && c.mechanism !== "vmbus-ring-b16") return base;
    const sum = (f: (p: ProducerStats) => number): number => rs.reduce((a, x) => a + x.producers.reduce((b, p) => b + f(p), 0), 0);
    return {
      ...base,
      ring: {
        signals: sum((p) => p.signals),
        refusedFull: sum((p) => p.refused),
        reserveRetries: sum((p) => p.reserveRetries),
        publishWaits: sum((p) => p.publishWaits),
        publishSleeps: sum((p) => p.publishSleeps),
        consumerSleeps: rs.reduce((a, x) => a + x.consumer.sleeps, 0),
        packets: sum((p) => p.produced),
      },
    };
  });
  const find = (m: Mechanism, size: number, producers: number): Result => {
    const r = results.find((x) => x.case === m && x.size === size && x.producers === producers);
    if (r === undefined) throw new Error(`no result ${m} ${size} ${producers}`);
    return r;
  };
  const ratio = (ring: Mechanism, vs: Mechanism, size: number, producers: number): number =>
    find(ring, size, producers).packetsPerSec / find(vs, size, producers).packetsPerSec;
  // Headline: publication per packet, as a message per postMessage call.
  // The _b16 ratios are the same ring committing 16 writes at a time.
  const ratios = {
    vs_postmessage_64: ratio("vmbus-ring", "postMessage", 64, 1),
    vs_ringbufjs_64: ratio("vmbus-ring", "ringbuf.js", 64, 1),
    vs_postmessage_4096: ratio("vmbus-ring", "postMessage", 4096, 1),
    vs_ringbufjs_4096: ratio("vmbus-ring", "ringbuf.js", 4096, 1),
    vs_postmessage_64_2p: ratio("vmbus-ring", "postMessage", 64, 2),
    vs_ringbufjs_64_2p: ratio("vmbus-ring", "ringbuf.js", 64, 2),
    vs_postmessage_4096_2p: ratio("vmbus-ring", "postMessage", 4096, 2),
    vs_ringbufjs_4096_2p: ratio("vmbus-ring", "ringbuf.js", 4096, 2),
    vs_postmessage_64_b16: ratio("vmbus-ring-b16", "postMessage", 64, 1),
    vs_ringbufjs_64_b16: ratio("vmbus-ring-b16", "ringbuf.js", 64, 1),
    vs_postmessage_64_2p_b16: ratio("vmbus-ring-b16", "postMessage", 64, 2),
    vs_ringbufjs_64_2p_b16: ratio("vmbus-ring-b16", "ringbuf.js", 64, 2),
  };
  const targets = {
    vs_postmessage_64: { target: TARGET_VS_POSTMESSAGE_64, value: ratios.vs_postmessage_64, pass: ratios.vs_postmessage_64 >= TARGET_VS_POSTMESSAGE_64 },
  };

  if (opt.json) {
    const out = {
      bench: "threads",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: availableParallelism(),
      loadAverage1m: { before: loadBefore, after: loadAfter },
      config: { ...opt, batch: BATCH, ringDataBytes: DATA_BYTES, rbjsCapacityBytes: DATA_BYTES, postMessageWindow: PM_WINDOW, sizes: SIZES, producers: PRODUCERS },
      results,
      ratios,
      targets,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return;
  }

  const isRing = (m: Mechanism): boolean => m === "vmbus-ring" || m === "vmbus-ring-b16";
  const rows = results.map((r) => [
    r.case,
    String(r.size),
    String(r.producers),
    fmtRate(r.packetsPerSec),
    fmtFixed(r.mbPerSec, 0),
    isRing(r.case) ? "" : `${fmtFixed(find("vmbus-ring", r.size, r.producers).packetsPerSec / r.packetsPerSec, 2)}x`,
    isRing(r.case) ? "" : `${fmtFixed(find("vmbus-ring-b16", r.size, r.producers).packetsPerSec / r.packetsPerSec, 2)}x`,
    `±${fmtFixed((r.spread * 100) / 2, 1)}%`,
  ]);
  const out: string[] = [];
  out.push(
    `Threads bench (node ${process.version}, ${availableParallelism()} CPUs, 1-min load average ${fmtFixed(loadBefore, 2)} before / ${fmtFixed(loadAfter, 2)} after, ${opt.reps} x ${opt.seconds}s per case, median; MB = 10^6 payload bytes)`,
  );
  out.push(table(["case", "size", "producers", "packets/s", "MB/s", "ring/this", "ring-b16/this", "spread"], rows, "lrrrrrrr"));
  out.push("");
  out.push("vmbus-ring details (summed over repetitions): signals / packets, full refusals, CAS retries, publications that waited, consumer sleeps");
  for (const r of results) {
    if (r.ring === undefined) continue;
    const g = r.ring;
    out.push(
      `  ${r.case.padEnd(14)} ${String(r.size).padStart(4)} B x ${r.producers}: ${g.signals}/${g.packets} signals, ${g.refusedFull} full, ${g.reserveRetries} CAS retries, ${g.publishWaits} waits (${g.publishSleeps} sleeps), ${g.consumerSleeps} consumer sleeps`,
    );
  }
  out.push("");
  out.push("Ratios (vmbus-ring packets/s over the peer's, same size and producer count):");
  out.push(
    `  vs_postmessage_64     ${fmtFixed(ratios.vs_postmessage_64, 2)}x   target >= ${TARGET_VS_POSTMESSAGE_64}x  ${targets.vs_postmessage_64.pass ? "PASS" : "FAIL"}`,
  );
  out.push(`  vs_ringbufjs_64       ${fmtFixed(ratios.vs_ringbufjs_64, 2)}x`);
  out.push(`  vs_postmessage_4096   ${fmtFixed(ratios.vs_postmessage_4096, 2)}x`);
  out.push(`  vs_ringbufjs_4096     ${fmtFixed(ratios.vs_ringbufjs_4096, 2)}x`);
  out.push(`  two producers: ${fmtFixed(ratios.vs_postmessage_64_2p, 2)}x / ${fmtFixed(ratios.vs_ringbufjs_64_2p, 2)}x at 64 B, ${fmtFixed(ratios.vs_postmessage_4096_2p, 2)}x / ${fmtFixed(ratios.vs_ringbufjs_4096_2p, 2)}x at 4096 B (postMessage / ringbuf.js)`);
  out.push(
    `  committing ${BATCH} writes at a time, 64 B: ${fmtFixed(ratios.vs_postmessage_64_b16, 2)}x / ${fmtFixed(ratios.vs_ringbufjs_64_b16, 2)}x with one producer, ${fmtFixed(ratios.vs_postmessage_64_2p_b16, 2)}x / ${fmtFixed(ratios.vs_ringbufjs_64_2p_b16, 2)}x with two (postMessage / ringbuf.js)`,
  );
  out.push("");
  out.push("Copies per packet: 2 for every mechanism (into the ring / structured clone / push, and out of it).");
  out.push("vmbus-ring frames packets (descriptor + trailer, 24 B each) and signals; ringbuf.js moves raw bytes and polls.");
  if (availableParallelism() < 2 + 1) out.push(`Note: ${availableParallelism()} CPUs for up to 3 busy threads; two-producer cases are oversubscribed.`);
  process.stdout.write(out.join("\n") + "\n");
}

const input = workerData as Partial<WorkerInput> | null;
if (!isMainThread) {
  if (input !== null && typeof input === "object" && input.tag === TAG) workerMain(input as WorkerInput);
} else {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
