/**
 * Ring buffer throughput: this ring (core/ring) against ringbuf.js and
 * against the physical ceiling of a 4 KiB Buffer.copy, in one process.
 *
 *   npm run bench:ring                 # table on stdout
 *   npm run -s bench:ring -- --json    # one JSON object on stdout
 *   npm run bench:ring -- --help
 *
 * Every case is write-then-read on one thread, and every packet read is
 * checked (transaction id and first payload byte), so a broken ring throws
 * instead of producing a fast number.
 */
import { RingBuffer as RbjsRingBuffer } from "ringbuf.js";
import { RING_HEADER_SIZE } from "../core/ring/layout.js";
import { RingBuffer } from "../core/ring/ring-buffer.js";
import { RingReader } from "../core/ring/ring-reader.js";
import { RingWriter } from "../core/ring/ring-writer.js";
import { type RunFn, type Sample, fmtFixed, fmtRate, median, table, timeOnce, parseTimedBenchArgs, type TimedBenchOptions } from "./harness.js";

const SIZES = [64, 1500, 4096] as const;
const BATCH = 32;
/** Data area of the ring (and ringbuf.js capacity), bytes. */
const DATA_BYTES = 256 * 1024;
const MAX_PACKET = 8192;
/** Packets (or copies) between two looks at the clock. */
const CHUNK = 128;
const COPY_SIZE = 4096;

const TARGET_VS_RBJS_64 = 2;
const TARGET_VS_RBJS_4096 = 10;

// ---------------------------------------------------------------- options

type Options = TimedBenchOptions;

const HELP = `Usage: node dist/bench/ring.bench.js [options]
       npm run -s bench:ring -- [options]

Measures, in one process, write-then-read packets/s of the VMBus ring
(core/ring, ${DATA_BYTES / 1024} KiB data ring over a SharedArrayBuffer) for ${SIZES.join(", ")} B inband
payloads, published per packet and per batch of ${BATCH}; ringbuf.js push/pop of
the same bytes; and Buffer.copy of ${COPY_SIZE} B as the physical ceiling.

Options:
  --json         print exactly one JSON object on stdout (progress goes to stderr)
  --seconds S    timed seconds per repetition of each case (default 0.18)
  --reps N       repetitions per case, interleaved across cases; the median
                 is reported (default 7)
  --warmup S     untimed warm-up seconds per case before timing (default 0.15)
  --help         show this help

Runtime: 17 cases x (reps x seconds + warmup), about 24 s by default.
Targets (reported, never fail the process): this ring batched >= ${TARGET_VS_RBJS_64}x ringbuf.js
at 64 B and >= ${TARGET_VS_RBJS_4096}x at 4096 B.
Use 'npm run -s' with --json: plain 'npm run' prints its own banner on stdout.`;

function parseArgs(argv: readonly string[]): Options {
  return parseTimedBenchArgs(argv, HELP, { json: false, seconds: 0.18, reps: 7, warmup: 0.15 }, 0.01);
}

// ---------------------------------------------------------------- cases

type CaseName = "vmbus-ring" | "ringbuf.js" | "Buffer.copy" | "SAB set";
type Mode = "per-packet" | "batch32" | "batch32+copy-out" | "copy";

interface Case {
  readonly name: CaseName;
  readonly size: number;
  readonly mode: Mode;
  readonly note: string;
  readonly run: RunFn;
}

function fail(what: string): never {
  throw new Error(`ring bench: verification failed: ${what}`);
}

function filledPayload(size: number): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = (i * 31 + 7) & 0xff;
  return p;
}

/**
 * This ring, write-then-read. `batch` packets are written and published by
 * one commit, then read and released by one close; `batch = 1` is
 * per-packet publishing. Copies per packet: the writer copies the payload
 * into the ring and the reader copies the packet out into its private
 * buffer (first/next), which is where the payload is checked. With
 * `copyOut` the payload is copied once more, from the reader's packet
 * buffer into a destination buffer.
 */
function ringCase(size: number, batch: number, copyOut: boolean): RunFn {
  const mem = new Uint8Array(new SharedArrayBuffer(RING_HEADER_SIZE + DATA_BYTES));
  const ring = new RingBuffer(mem, "bench");
  ring.init();
  const writer = new RingWriter(ring);
  const reader = new RingReader(ring, { maxPacketSize: MAX_PACKET });
  const payload = filledPayload(size);
  const dst = new Uint8Array(size);
  const last = payload[size - 1] as number;
  let id = 0;
  return (deadline) => {
    let n = 0;
    do {
      for (let c = 0; c < CHUNK; c += batch) {
        const base = id;
        for (let i = 0; i < batch; i++) {
          payload[0] = (base + i) & 0xff;
          if (!writer.writeInband(base + i, payload)) fail(`ring full at packet ${base + i}`);
        }
        writer.commit();
        let p = reader.first();
        for (let i = 0; i < batch; i++) {
          if (p === null) fail(`packet ${base + i} missing`);
          if (p.transIdLo !== base + i || p.transIdHi !== 0) fail(`trans id ${p.transIdLo} != ${base + i}`);
          const off = p.dataOffset;
          if (p.buffer[off] !== ((base + i) & 0xff)) fail(`payload byte of packet ${base + i}`);
          if (copyOut) {
            dst.set(p.buffer.subarray(off, off + size));
            if (dst[0] !== ((base + i) & 0xff) || dst[size - 1] !== last) fail(`copied payload of packet ${base + i}`);
          }
          // Step past every packet, the last one too: close() releases only
          // what next()/advance() stepped past.
          if (i + 1 < batch) p = reader.next();
          else reader.advance();
        }
        reader.close();
        id = base + batch;
        n += batch;
        // Keep ids small and exact (transIdLo is a u32).
        if (id >= 0x7fff0000) id = 0;
      }
    } while (process.hrtime.bigint() < deadline);
    if (reader.first() !== null) fail("ring not drained");
    return n;
  };
}

/** ringbuf.js: push the payload bytes, pop them into a destination; `batch` pushes then `batch` pops. */
function rbjsCase(size: number, batch: number): RunFn {
  const sab = RbjsRingBuffer.getStorageForCapacity(DATA_BYTES, Uint8Array);
  const rb = new RbjsRingBuffer(sab, Uint8Array);
  const payload = filledPayload(size);
  const dst = new Uint8Array(size);
  const last = payload[size - 1] as number;
  let id = 0;
  return (deadline) => {
    let n = 0;
    do {
      for (let c = 0; c < CHUNK; c += batch) {
        const base = id;
        for (let i = 0; i < batch; i++) {
          payload[0] = (base + i) & 0xff;
          if (rb.push(payload, size) !== size) fail(`ringbuf.js push ${base + i}`);
        }
        for (let i = 0; i < batch; i++) {
          if (rb.pop(dst, size) !== size) fail(`ringbuf.js pop ${base + i}`);
          if (dst[0] !== ((base + i) & 0xff) || dst[size - 1] !== last) fail(`ringbuf.js payload ${base + i}`);
        }
        id = (base + batch) & 0x3fffffff;
        n += batch;
      }
    } while (process.hrtime.bigint() < deadline);
    if (!rb.empty()) fail("ringbuf.js not drained");
    return n;
  };
}

/**
 * Buffer.copy of 4096 bytes, one copy per unit. Source and destination are
 * carved from one allocation half a page apart: on some CPUs memcpy runs
 * an order of magnitude slower when the destination sits a few bytes past
 * the source modulo 4096 (4K aliasing), and two separate allocations land
 * wherever the allocator puts them. A ceiling should not depend on that.
 */
function copyCase(size: number): RunFn {
  const block = Buffer.alloc(2 * size + 4096 + 2048);
  const src = block.subarray(0, size);
  const dst = block.subarray(size + 2048, 2 * size + 2048);
  src.set(filledPayload(size));
  let k = 0;
  return (deadline) => {
    let n = 0;
    do {
      for (let c = 0; c < CHUNK; c++) {
        src[0] = k & 0xff;
        if (src.copy(dst, 0, 0, size) !== size || dst[0] !== (k & 0xff)) fail("Buffer.copy");
        k++;
      }
      n += CHUNK;
    } while (process.hrtime.bigint() < deadline);
    return n;
  };
}

/**
 * `Uint8Array.set` of 4096 bytes from a SharedArrayBuffer into private
 * memory. V8 copies shared memory with relaxed-atomic word copies, not
 * memcpy (about 3x slower than Buffer.copy on the machine this was written
 * on). Every byte a ring in a SharedArrayBuffer moves pays this twice, so
 * this, not Buffer.copy, is the reachable ceiling. Context only.
 */
function sabCopyCase(size: number): RunFn {
  const shared = new Uint8Array(new SharedArrayBuffer(2 * size + 4096));
  const src = shared.subarray(size, 2 * size);
  src.set(filledPayload(size));
  const dst = new Uint8Array(size);
  let k = 0;
  return (deadline) => {
    let n = 0;
    do {
      for (let c = 0; c < CHUNK; c++) {
        src[0] = k & 0xff;
        dst.set(src);
        if (dst[0] !== (k & 0xff)) fail("SAB set");
        k++;
      }
      n += CHUNK;
    } while (process.hrtime.bigint() < deadline);
    return n;
  };
}

function buildCases(): Case[] {
  const cases: Case[] = [];
  for (const size of SIZES) {
    cases.push({ name: "vmbus-ring", size, mode: "per-packet", note: "write+commit, first+close per packet", run: ringCase(size, 1, false) });
    cases.push({ name: "vmbus-ring", size, mode: "batch32", note: "32 writes, 1 commit; 32 reads, 1 close", run: ringCase(size, BATCH, false) });
    cases.push({ name: "vmbus-ring", size, mode: "batch32+copy-out", note: "batch32 plus a 3rd copy of the payload to a destination", run: ringCase(size, BATCH, true) });
    cases.push({ name: "ringbuf.js", size, mode: "per-packet", note: "push, pop", run: rbjsCase(size, 1) });
    cases.push({ name: "ringbuf.js", size, mode: "batch32", note: "32 pushes, 32 pops", run: rbjsCase(size, BATCH) });
  }
  cases.push({ name: "Buffer.copy", size: COPY_SIZE, mode: "copy", note: "one memcpy per unit (plain memory)", run: copyCase(COPY_SIZE) });
  cases.push({ name: "SAB set", size: COPY_SIZE, mode: "copy", note: "one Uint8Array.set from shared memory per unit", run: sabCopyCase(COPY_SIZE) });
  return cases;
}

// ---------------------------------------------------------------- main

interface Result {
  readonly case: CaseName;
  readonly size: number;
  readonly mode: Mode;
  readonly note: string;
  /** Packets (copies for Buffer.copy) per second, median of the repetitions. */
  readonly packetsPerSec: number;
  /** Payload bytes per second. */
  readonly bytesPerSec: number;
  readonly mbPerSec: number;
  readonly samplesPerSec: readonly number[];
  readonly spread: number;
}

function main(): void {
  const opt = parseArgs(process.argv.slice(2));
  const log = (s: string): void => void process.stderr.write(s);
  const cases = buildCases();

  log(`ring bench: ${cases.length} cases, warm-up ${opt.warmup}s, ${opt.reps} x ${opt.seconds}s each\n`);
  for (const c of cases) c.run(process.hrtime.bigint() + BigInt(Math.round(opt.warmup * 1e9)));
  const samples: Sample[][] = cases.map(() => []);
  // Repetitions interleave the cases, so slow drift (other load, thermal)
  // spreads over all of them instead of landing on one.
  for (let r = 0; r < opt.reps; r++) {
    log(`  rep ${r + 1}/${opt.reps}\n`);
    cases.forEach((c, i) => void (samples[i] as Sample[]).push(timeOnce(c.run, opt.seconds)));
  }

  const results: Result[] = cases.map((c, i) => {
    const rates = (samples[i] as Sample[]).map((s) => s.perSecond);
    const pps = median(rates);
    return {
      case: c.name,
      size: c.size,
      mode: c.mode,
      note: c.note,
      packetsPerSec: pps,
      bytesPerSec: pps * c.size,
      mbPerSec: (pps * c.size) / 1e6,
      samplesPerSec: rates,
      spread: (Math.max(...rates) - Math.min(...rates)) / pps,
    };
  });
  const find = (name: CaseName, size: number, mode: Mode): Result => {
    const r = results.find((x) => x.case === name && x.size === size && x.mode === mode);
    if (r === undefined) throw new Error(`no result ${name} ${size} ${mode}`);
    return r;
  };
  const vsRbjs = (size: number): number => find("vmbus-ring", size, "batch32").packetsPerSec / find("ringbuf.js", size, "batch32").packetsPerSec;
  const copy = find("Buffer.copy", COPY_SIZE, "copy");
  const sabCopy = find("SAB set", COPY_SIZE, "copy");
  const ratios = {
    vs_ringbufjs_64: vsRbjs(64),
    vs_ringbufjs_1500: vsRbjs(1500),
    vs_ringbufjs_4096: vsRbjs(4096),
    vs_copy_ceiling_4096: find("vmbus-ring", 4096, "batch32").bytesPerSec / (copy.bytesPerSec / 2),
  };
  const targets = {
    vs_ringbufjs_64: { target: TARGET_VS_RBJS_64, value: ratios.vs_ringbufjs_64, pass: ratios.vs_ringbufjs_64 >= TARGET_VS_RBJS_64 },
    vs_ringbufjs_4096: { target: TARGET_VS_RBJS_4096, value: ratios.vs_ringbufjs_4096, pass: ratios.vs_ringbufjs_4096 >= TARGET_VS_RBJS_4096 },
  };

  if (opt.json) {
    const out = {
      bench: "ring",
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      config: { ...opt, ringDataBytes: DATA_BYTES, ringMaxPacketSize: MAX_PACKET, batch: BATCH, sizes: SIZES, copySize: COPY_SIZE },
      results,
      copyCeiling: { bytesPerSec: copy.bytesPerSec, packetBytesPerSec: copy.bytesPerSec / 2, note: "a packet costs two copies: ceiling = half the Buffer.copy bandwidth" },
      sharedCopyCeiling: {
        bytesPerSec: sabCopy.bytesPerSec,
        packetBytesPerSec: sabCopy.bytesPerSec / 2,
        ring4096Ratio: find("vmbus-ring", 4096, "batch32").bytesPerSec / (sabCopy.bytesPerSec / 2),
        note: "context: V8 copies shared memory with relaxed atomics, slower than memcpy; each packet copies into and out of the SharedArrayBuffer",
      },
      ratios,
      targets,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return;
  }

  const rows = results.map((r) => {
    const vs = r.case === "vmbus-ring" && r.mode !== "per-packet" ? find("ringbuf.js", r.size, "batch32").packetsPerSec : r.case === "vmbus-ring" ? find("ringbuf.js", r.size, "per-packet").packetsPerSec : Number.NaN;
    return [
      r.case,
      String(r.size),
      r.mode,
      fmtRate(r.packetsPerSec),
      fmtFixed(r.mbPerSec, 0),
      Number.isNaN(vs) ? "" : `${fmtFixed(r.packetsPerSec / vs, 2)}x`,
      `±${fmtFixed((r.spread * 100) / 2, 1)}%`,
    ];
  });
  const out: string[] = [];
  out.push(`Ring bench (node ${process.version}, ${opt.reps} x ${opt.seconds}s per case, median; MB = 10^6 payload bytes)`);
  out.push(table(["case", "size", "mode", "packets/s", "MB/s", "vs rbjs", "spread"], rows, "lrrrrrr"));
  out.push("");
  out.push(`Buffer.copy ${COPY_SIZE} B: ${fmtFixed(copy.bytesPerSec / 1e6, 0)} MB/s -> packet ceiling (2 copies) ${fmtFixed(copy.bytesPerSec / 2e6, 0)} MB/s = ${fmtRate(copy.packetsPerSec / 2)} packets/s of ${COPY_SIZE} B`);
  out.push(`SAB set     ${COPY_SIZE} B: ${fmtFixed(sabCopy.bytesPerSec / 1e6, 0)} MB/s -> shared-memory ceiling ${fmtFixed(sabCopy.bytesPerSec / 2e6, 0)} MB/s; vmbus-ring 4096 batch32 reaches ${fmtFixed((100 * find("vmbus-ring", 4096, "batch32").bytesPerSec) / (sabCopy.bytesPerSec / 2), 0)}% of it`);
  out.push("");
  out.push("Ratios (vmbus-ring batch32 vs ringbuf.js batch32, packets/s):");
  const mark = (pass: boolean): string => (pass ? "PASS" : "FAIL");
  out.push(`  vs_ringbufjs_64       ${fmtFixed(ratios.vs_ringbufjs_64, 2)}x   target >= ${TARGET_VS_RBJS_64}x  ${mark(targets.vs_ringbufjs_64.pass)}`);
  out.push(`  vs_ringbufjs_1500     ${fmtFixed(ratios.vs_ringbufjs_1500, 2)}x`);
  out.push(`  vs_ringbufjs_4096     ${fmtFixed(ratios.vs_ringbufjs_4096, 2)}x   target >= ${TARGET_VS_RBJS_4096}x  ${mark(targets.vs_ringbufjs_4096.pass)}`);
  out.push(`  vs_copy_ceiling_4096  ${fmtFixed(ratios.vs_copy_ceiling_4096, 2)}    (bytes/s at 4 KiB batch32 / half Buffer.copy bandwidth)`);
  out.push("");
  out.push("Copies per packet: vmbus-ring per-packet/batch32 = 2 (writer into ring, reader into its packet buffer);");
  out.push("batch32+copy-out = 3 (plus payload to a destination); ringbuf.js = 2 (push, pop into destination).");
  process.stdout.write(out.join("\n") + "\n");
}

main();
