/**
 * The lockless multi-producer write (seed 004) between real threads:
 * several producer worker threads share one ring through
 * `MultiProducerRingWriter`, a consumer worker thread drains it with the
 * ordinary `RingReader`.
 *
 * - Nothing is lost, duplicated, reordered within a producer or torn: every
 *   packet carries (producer, sequence number, length) and a checksum, and
 *   the consumer expects each producer's sequence numbers in order.
 * - No lost wakeup: the consumer sleeps in `Atomics.wait` on a doorbell
 *   whenever the ring is empty and unmasked, and only a producer's signal
 *   rings it; producers on a full ring sleep on another doorbell that only
 *   the reader's full → not-full signal rings. The run must finish, and no
 *   wait may time out.
 * - Signals: exactly one per empty → non-empty transition the consumer
 *   could observe. Each unmasked window of the consumer admits at most one
 *   signal (two signals need read_index to move in between, which the
 *   consumer does only masked), and every sleep that ended needed one:
 *   woken ≤ signals ≤ woken + raced + 1 (raced: windows where the
 *   consumer's own last look found the packet that also drew a signal; +1:
 *   the window before the consumer first masks).
 */
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MultiProducerRingWriter, RING_HEADER_SIZE, RingBuffer } from "../../core/index.js";
import {
  BELL_GO,
  BELL_DATA,
  BELL_WORDS,
  type ConsumerParams,
  type ConsumerResult,
  type ProducerParams,
  type ProducerResult,
  type SharedParams,
  WORKER_TAG,
  type WorkerInput,
} from "./mp-worker.js";
import { transpiledWorker } from "./transpile.js";

const workerUrl = transpiledWorker(fileURLToPath(new URL("./mp-worker.ts", import.meta.url)));

interface Config {
  readonly producers: number;
  readonly count: number;
  readonly minSize: number;
  readonly maxSize: number;
  readonly dataPages: number;
  readonly spinsBeforeWait: number;
  readonly closeEvery: number;
  readonly batch: number;
}

function startWorker(input: WorkerInput): { worker: Worker; done: Promise<ProducerResult | ConsumerResult> } {
  const worker = new Worker(workerUrl, { workerData: input });
  const done = new Promise<ProducerResult | ConsumerResult>((resolveP, reject) => {
    let result: ProducerResult | ConsumerResult | undefined;
    worker.once("message", (m: ProducerResult | ConsumerResult) => void (result = m));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (result !== undefined) resolveP(result);
      else reject(new Error(`worker ${input.params.role} exited with code ${code} and no result (a hang stopped by the watchdog?)`));
    });
  });
  return { worker, done };
}

/** A run that has not finished by then is stuck: stop its threads instead of leaving them spinning. */
const WATCHDOG_MS = 30_000;

async function run(cfg: Config): Promise<{ producers: ProducerResult[]; consumer: ConsumerResult; bells: Int32Array; ring: RingBuffer }> {
  const ringSab = new SharedArrayBuffer(RING_HEADER_SIZE * (1 + cfg.dataPages));
  const ring = new RingBuffer(new Uint8Array(ringSab), "threads");
  ring.init();
  // Start somewhere in the middle so that the run wraps at an odd place.
  ring.storeWriteIndex(ring.dataSize - 8 * 37);
  ring.storeReadIndex(ring.dataSize - 8 * 37);
  const stateSab = new SharedArrayBuffer(MultiProducerRingWriter.STATE_BYTES);
  MultiProducerRingWriter.initState(ring, new Int32Array(stateSab));
  const bellsSab = new SharedArrayBuffer(BELL_WORDS * 4);
  const shared: SharedParams = { ring: ringSab, state: stateSab, bells: bellsSab, timeoutMs: 10_000 };
  const counts = Array.from({ length: cfg.producers }, () => cfg.count);
  const consumerParams: ConsumerParams = { role: "consumer", counts, maxPacketSize: 8192, closeEvery: cfg.closeEvery };
  const jobs = [startWorker({ tag: WORKER_TAG, params: consumerParams, shared })];
  for (let id = 0; id < cfg.producers; id++) {
    const p: ProducerParams = { role: "producer", id, count: cfg.count, minSize: cfg.minSize, maxSize: cfg.maxSize, spinsBeforeWait: cfg.spinsBeforeWait, batch: cfg.batch };
    jobs.push(startWorker({ tag: WORKER_TAG, params: p, shared }));
  }
  const bells = new Int32Array(bellsSab);
  Atomics.store(bells, BELL_GO, 1);
  Atomics.notify(bells, BELL_GO);
  const watchdog = setTimeout(() => {
    for (const j of jobs) void j.worker.terminate();
  }, WATCHDOG_MS);
  try {
    const results = await Promise.all(jobs.map((j) => j.done));
    return { consumer: results[0] as ConsumerResult, producers: results.slice(1) as ProducerResult[], bells, ring };
  } finally {
    clearTimeout(watchdog);
    for (const j of jobs) void j.worker.terminate();
  }
}

function check(cfg: Config, r: Awaited<ReturnType<typeof run>>): void {
  const { consumer, producers } = r;
  expect(consumer.errors).toEqual([]);
  expect(consumer.received).toBe(cfg.producers * cfg.count);
  expect(consumer.perProducer).toEqual(producers.map(() => cfg.count));
  for (const p of producers) expect(p.written).toBe(cfg.count);
  // No wait ended by its timeout: no lost wakeup on either side.
  expect(consumer.lostWakeups).toBe(0);
  expect(consumer.idleTimeouts).toBe(0);
  expect(producers.map((p) => p.spaceTimeouts)).toEqual(producers.map(() => 0));
  // Every signal rang the doorbell once.
  const signals = producers.reduce((a, p) => a + p.signals, 0);
  expect(Atomics.load(r.bells, BELL_DATA)).toBe(signals);
  expect(consumer.woken).toBeLessThanOrEqual(signals);
  expect(signals).toBeLessThanOrEqual(consumer.woken + consumer.raced + 1);
  expect(signals).toBeLessThanOrEqual(consumer.windows);
  // The ring ends empty and consistent.
  expect(r.ring.loadWriteIndex()).toBe(r.ring.loadReadIndex());
}

describe("multi-producer ring between threads", () => {
  it("3 producers, a small ring that fills: blocking, wrapping, sleeping on both sides", async () => {
    const cfg: Config = { producers: 3, count: 2500, minSize: 16, maxSize: 900, dataPages: 3, spinsBeforeWait: 64, closeEvery: 4, batch: 1 };
    const r = await run(cfg);
    check(cfg, r);
    // The ring was too small for the load: producers blocked and were woken.
    expect(r.producers.reduce((a, p) => a + p.refused, 0)).toBeGreaterThan(0);
  });

  it("2 producers, small packets, a roomy ring: contention on the reservation", async () => {
    const cfg: Config = { producers: 2, count: 20_000, minSize: 16, maxSize: 64, dataPages: 16, spinsBeforeWait: 4096, closeEvery: 32, batch: 1 };
    check(cfg, await run(cfg));
  });

  it("4 producers on a one-page data area, packets up to a quarter of it", async () => {
    const cfg: Config = { producers: 4, count: 1500, minSize: 16, maxSize: 1000, dataPages: 1, spinsBeforeWait: 16, closeEvery: 1, batch: 1 };
    check(cfg, await run(cfg));
  });

  it("4 producers that sleep at once when a predecessor has not published (spinsBeforeWait 0): the WAITING bit and its notify", async () => {
    // With more producer threads than CPUs, a producer is often preempted
    // between its reservation and its publication; its successors then
    // sleep in Atomics.wait on the published word at once. A lost notify
    // would show as a run that still finishes (the wait has a 10 ms safety
    // timeout) but the data checks below are what must hold either way.
    const cfg: Config = { producers: 4, count: 3000, minSize: 16, maxSize: 200, dataPages: 8, spinsBeforeWait: 0, closeEvery: 4, batch: 1 };
    const r = await run(cfg);
    check(cfg, r);
    // The case exercised what it is for (thousands of sleeps per run here).
    expect(r.producers.reduce((a, p) => a + p.publishSleeps, 0)).toBeGreaterThan(0);
  });

  it("3 producers committing batches of 8 writes (publishOnWrite: false)", async () => {
    const cfg: Config = { producers: 3, count: 8000, minSize: 16, maxSize: 300, dataPages: 4, spinsBeforeWait: 256, closeEvery: 8, batch: 8 };
    check(cfg, await run(cfg));
  });
});
