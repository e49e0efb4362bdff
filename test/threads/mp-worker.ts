/**
 * The two roles of the threaded ring test (mp-threads.test.ts), run in
 * worker threads over one SharedArrayBuffer ring:
 *
 * - producer: writes `count` inband packets with `MultiProducerRingWriter`
 *   (reserve, copy, publish in one call), signals the consumer when
 *   `commit` says so, and on a full ring blocks with pending_send_sz and
 *   sleeps on the space doorbell;
 * - consumer: drains with `RingReader` under the interrupt mask, checks
 *   every packet (producer, sequence number, length, checksum), signals the
 *   producers when `close` says a blocked writer can go on, and when the
 *   ring is empty unmasks and sleeps on the data doorbell until a producer
 *   signals.
 *
 * A doorbell is an Int32Array word: the signaller adds 1 and notifies, the
 * sleeper loads it before its last look at the ring and `Atomics.wait`s on
 * that value, so a signal sent after the look ends the wait at once.
 * Timeouts are long (a wait that times out is counted and fails the test);
 * they only keep a broken build from hanging the run.
 */
import { parentPort, workerData } from "node:worker_threads";
import { MultiProducerRingWriter } from "../../core/ring/multi-producer-writer.js";
import { RingBuffer } from "../../core/ring/ring-buffer.js";
import { RingReader } from "../../core/ring/ring-reader.js";

/** Doorbell word indices (64 bytes apart). */
export const BELL_DATA = 0;
export const BELL_SPACE = 16;
export const BELL_GO = 32;
export const BELL_WORDS = 48;

export interface ProducerParams {
  readonly role: "producer";
  readonly id: number;
  readonly count: number;
  readonly minSize: number;
  readonly maxSize: number;
  readonly spinsBeforeWait: number;
  /** 1: publish each write (one call). More: `publishOnWrite: false`, commit every `batch` writes. */
  readonly batch: number;
}

export interface ConsumerParams {
  readonly role: "consumer";
  readonly counts: readonly number[];
  readonly maxPacketSize: number;
  /** Close (publish read_index) after this many packets, besides when the ring is empty. */
  readonly closeEvery: number;
}

export interface SharedParams {
  readonly ring: SharedArrayBuffer;
  readonly state: SharedArrayBuffer;
  readonly bells: SharedArrayBuffer;
  readonly timeoutMs: number;
}

export interface ProducerResult {
  readonly role: "producer";
  readonly id: number;
  readonly written: number;
  readonly signals: number;
  readonly refused: number;
  readonly blocks: number;
  readonly retryNow: number;
  readonly spaceTimeouts: number;
  readonly reserveRetries: number;
  readonly publishWaits: number;
  readonly publishSleeps: number;
}

export interface ConsumerResult {
  readonly role: "consumer";
  readonly received: number;
  readonly perProducer: readonly number[];
  readonly errors: readonly string[];
  /** Unmasked windows: the initial state plus one per `endRead`. */
  readonly windows: number;
  /** Windows in which `endRead` found data itself (no sleep). */
  readonly raced: number;
  /** Sleeps ended by a doorbell change. */
  readonly woken: number;
  /** Sleeps that timed out with data in the ring: lost wakeups. */
  readonly lostWakeups: number;
  /** Sleeps that timed out with the ring empty. */
  readonly idleTimeouts: number;
  readonly spaceSignals: number;
}

/** Packet i of producer `id`: its size, from a small deterministic generator. */
export function sizeOf(id: number, seq: number, min: number, max: number): number {
  let x = (Math.imul(id + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d) >>> 0;
  x = (x ^ (x >>> 12)) >>> 0;
  return min + (x % (max - min + 1));
}

/** FNV-1a over `len` bytes. */
export function fnv1a(b: Uint8Array, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h >>> 0;
}

/**
 * Payload layout: u32 id, u32 seq, u32 size, filler bytes from (id, seq),
 * then the FNV-1a of everything before it in the last 4 bytes. size ≥ 16.
 */
export function fillPayload(p: Uint8Array, id: number, seq: number): void {
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  v.setUint32(0, id, true);
  v.setUint32(4, seq, true);
  v.setUint32(8, p.length, true);
  let x = (seq * 2654435761 + id * 40503 + 1) >>> 0;
  for (let i = 12; i < p.length - 4; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    p[i] = x & 0xff;
  }
  v.setUint32(p.length - 4, fnv1a(p, p.length - 4), true);
}

function producer(params: ProducerParams, shared: SharedParams): ProducerResult {
  const ring = new RingBuffer(new Uint8Array(shared.ring), `producer ${params.id}`);
  const w = new MultiProducerRingWriter(ring, new Int32Array(shared.state), {
    spinsBeforeWait: params.spinsBeforeWait,
    publishOnWrite: params.batch === 1,
    waitForOthers: true, // one producer per thread
  });
  const bells = new Int32Array(shared.bells);
  const buf = new Uint8Array(params.maxSize);
  let signals = 0;
  let refused = 0;
  let blocks = 0;
  let retryNow = 0;
  let spaceTimeouts = 0;
  const commit = (): void => {
    if (w.commit()) {
      signals++;
      Atomics.add(bells, BELL_DATA, 1);
      Atomics.notify(bells, BELL_DATA);
    }
  };
  while (Atomics.load(bells, BELL_GO) === 0) Atomics.wait(bells, BELL_GO, 0, 100);
  for (let seq = 0; seq < params.count; seq++) {
    const size = sizeOf(params.id, seq, params.minSize, params.maxSize);
    const payload = buf.subarray(0, size);
    fillPayload(payload, params.id, seq);
    const transId = params.id * 2 ** 32 + seq;
    for (;;) {
      if (w.writeInband(transId, payload)) break;
      refused++;
      // Publish (and signal) what we hold before waiting: the reader can
      // only free space by reading it.
      commit();
      // Doorbell first, then the last look (block's re-check): a space
      // signal after the look changes the bell and ends the wait at once.
      const g = Atomics.load(bells, BELL_SPACE);
      if (w.block(MultiProducerRingWriter.packetTotal(0, size))) {
        retryNow++;
        continue;
      }
      blocks++;
      if (Atomics.wait(bells, BELL_SPACE, g, shared.timeoutMs) === "timed-out") spaceTimeouts++;
    }
    if ((seq + 1) % params.batch === 0) commit();
  }
  commit();
  return {
    role: "producer",
    id: params.id,
    written: w.packetsWritten,
    signals,
    refused,
    blocks,
    retryNow,
    spaceTimeouts,
    reserveRetries: w.reserveRetries,
    publishWaits: w.publishWaits,
    publishSleeps: w.publishSleeps,
  };
}

function consumer(params: ConsumerParams, shared: SharedParams): ConsumerResult {
  const ring = new RingBuffer(new Uint8Array(shared.ring), "consumer");
  const reader = new RingReader(ring, { maxPacketSize: params.maxPacketSize });
  const bells = new Int32Array(shared.bells);
  const expected = params.counts.reduce((a, b) => a + b, 0);
  const next = params.counts.map(() => 0);
  const errors: string[] = [];
  const err = (s: string): void => void (errors.length < 20 && errors.push(s));
  let received = 0;
  let windows = 1; // the ring starts unmasked
  let raced = 0;
  let woken = 0;
  let lostWakeups = 0;
  let idleTimeouts = 0;
  let spaceSignals = 0;

  const close = (): void => {
    if (reader.close()) {
      spaceSignals++;
      // The guest's handler of this interrupt: clear pending_send_sz (what
      // MultiProducerRingWriter.unblockAll does), then wake every blocked
      // producer; each retries and blocks again if it still does not fit.
      ring.storePendingSendSize(0);
      Atomics.add(bells, BELL_SPACE, 1);
      Atomics.notify(bells, BELL_SPACE);
    }
  };

  while (Atomics.load(bells, BELL_GO) === 0) Atomics.wait(bells, BELL_GO, 0, 100);
  reader.beginRead();
  for (;;) {
    let sinceClose = 0;
    for (let p = reader.first(); p !== null; p = reader.first()) {
      const d = p.buffer;
      const off = p.dataOffset;
      const v = new DataView(d.buffer, d.byteOffset + off, p.dataLength);
      const id = p.transIdHi;
      const seq = p.transIdLo;
      const want = next[id];
      if (want === undefined) err(`packet from unknown producer ${id}`);
      else if (seq !== want) err(`producer ${id}: got seq ${seq}, expected ${want}`);
      else {
        const size = v.getUint32(8, true);
        if (v.getUint32(0, true) !== id || v.getUint32(4, true) !== seq) err(`producer ${id} seq ${seq}: header mismatch`);
        else if (size < 16 || size > p.dataLength || p.dataLength - size >= 8) err(`producer ${id} seq ${seq}: size ${size} vs data ${p.dataLength}`);
        else if (v.getUint32(size - 4, true) !== fnv1a(d.subarray(off), size - 4)) err(`producer ${id} seq ${seq}: checksum (torn packet)`);
        next[id] = want + 1;
      }
      reader.advance();
      received++;
      if (++sinceClose >= params.closeEvery) {
        close();
        sinceClose = 0;
      }
    }
    close();
    if (received >= expected) break;
    // Nothing to read: unmask and sleep until a producer signals. The bell
    // is loaded before endRead's look at the ring, so a signal sent after
    // the look changes it and the wait returns at once.
    const g = Atomics.load(bells, BELL_DATA);
    windows++;
    if (reader.endRead() !== 0) {
      raced++;
      reader.beginRead();
      continue;
    }
    const r = Atomics.wait(bells, BELL_DATA, g, shared.timeoutMs);
    if (r === "timed-out") {
      if (reader.available() !== 0) lostWakeups++;
      else idleTimeouts++;
    } else {
      woken++;
    }
    reader.beginRead();
  }
  return { role: "consumer", received, perProducer: next, errors, windows, raced, woken, lostWakeups, idleTimeouts, spaceSignals };
}

/** Marks our workerData, so that importing this module elsewhere (a test runner's own worker) does nothing. */
export const WORKER_TAG = "vmbus-sim/mp-worker";

export interface WorkerInput {
  readonly tag: typeof WORKER_TAG;
  readonly params: ProducerParams | ConsumerParams;
  readonly shared: SharedParams;
}

const input = workerData as Partial<WorkerInput> | null;
if (parentPort !== null && input !== null && typeof input === "object" && input.tag === WORKER_TAG) {
  const { params, shared } = input as WorkerInput;
  const result = params.role === "producer" ? producer(params, shared) : consumer(params, shared);
  parentPort.postMessage(result);
}
