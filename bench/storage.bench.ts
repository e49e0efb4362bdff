/**
 * bench:storage — 4 KiB random reads and writes through the whole storage
 * stack (storvsc → VMBus → storvsp → sparse memory disk and back), at queue
 * depth 1 and 32, on one and on four channels.
 *
 * Two kinds of figures:
 * - simulated: IOPS and latency percentiles in virtual time — what the
 *   modelled machine would do under the cost model;
 * - real: I/Os per wall-clock second — how fast the simulator runs — and,
 *   measured in the same run, the ratio to the bare ring round-trip rate
 *   (a request packet and a completion through two rings, no VMBus control
 *   plane, no SCSI), which is the ceiling for an I/O;
 * - the floor (see floors.ts): the least work any simulator of a 4 KiB read
 *   must do here — the ceiling's round trip plus the two copies and the
 *   promise the rules and `read()` demand — timed alternately with the
 *   ceiling. Its ratio to the ceiling bounds what the ratios can reach.
 *
 * Each case runs `--reps` times, each time in a fresh system, and reports
 * the median wall-clock rate, as bench:net does and as the ring ceiling is
 * the median of five timed runs: the first run of a process pays for
 * compiling the whole stack, so a single short run measures mostly that.
 * The simulated figures of every rep must be identical (the run is
 * deterministic); the bench fails if they are not.
 *
 * Usage: npm run bench:storage [-- --ios N] [-- --reps N] [-- --warmup N] [-- --json]
 */
import { VmbusSystem } from "../core/index.js";
import { StorvscDriver, storagePlugin } from "../drivers/storvsc/index.js";
import { storageCeilingAndFloor } from "./floors.js";
import { fmtFixed, fmtRate, intArg, median, table } from "./harness.js";

interface Options {
  readonly ios: number;
  readonly reps: number;
  readonly warmup: number;
  readonly json: boolean;
  readonly ringSeconds: number;
}

function parseArgs(argv: readonly string[]): Options {
  let ios = 20000;
  let reps = 5;
  let warmup = 1;
  let json = false;
  let ringSeconds = 0.4;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") json = true;
    else if (a === "--ios") {
      ios = intArg("--ios", argv[++i], 64);
    } else if (a === "--reps") {
      reps = intArg("--reps", argv[++i], 1);
    } else if (a === "--warmup") {
      warmup = intArg("--warmup", argv[++i], 0);
    } else if (a === "--ring-seconds") {
      const v = Number(argv[++i]);
      if (!(v > 0)) throw new Error(`--ring-seconds ${argv[i]}: must be a positive number`);
      ringSeconds = v;
    } else if (a === "--help" || a === "-h") {
      console.log(`npm run bench:storage [-- options]

  --ios N            I/Os per case (default 20000)
  --reps N           timed runs per case, each in a fresh system; wall-clock
                     figures are the median run (default 5)
  --warmup N         untimed runs per case first, also in fresh systems
                     (default 1; 0 with --reps 1 = a single, cold run)
  --ring-seconds S   how long to time the bare ring round trip, and again the
                     floor (default 0.4 each, in 5 reps after a warm-up)
  --json             print one JSON object (figures + ratios) instead of the table
  --help             this text

Cases: 4 KiB random read and write, queue depth 1 and 32, 1 and 4 channels.
Ratios: vs_ring_ceiling_qd1 / vs_ring_ceiling_qd32 = simulated I/Os per wall-clock
second (4 KiB random reads, one channel) over bare ring round trips per second.
Target: at least 1/3 of the ceiling.
Floor: the ring round trip + the host's 4 KiB copy into guest memory + the copy
read() returns + one promise, with no simulator logic at all; floor / ceiling
is the most any simulator can reach on this machine.`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return { ios, reps, warmup, json, ringSeconds };
}

interface CaseResult {
  readonly op: "randread" | "randwrite";
  readonly qd: number;
  readonly channels: number;
  readonly ios: number;
  readonly simIops: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly p999us: number;
  readonly wallIosPerSec: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function storageCase(op: "randread" | "randwrite", qd: number, channels: number, ios: number): Promise<CaseResult> {
  const sys = new VmbusSystem({ seed: 1, plugins: [storagePlugin] });
  const vm = sys.addVm({ name: "bench", vcpus: channels, memoryBytes: 128 * 1024 * 1024 });
  // 4 KiB chunks, the I/O size: with the default 64 KiB each random 4 KiB
  // write into a hole would allocate 16 times what it writes, and a run
  // would time the host's page faults more than the I/O path.
  sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: 1024 * 1024 * 1024, chunkBytes: 4096 }] } });
  await sys.boot();
  const drv = vm.drivers<StorvscDriver>("storvsc")[0];
  const disk = drv?.disks[0];
  if (drv === undefined || disk === undefined) throw new Error("storvsc did not find the disk");
  if (drv.channels.length !== channels) throw new Error(`expected ${channels} channel(s), got ${drv.channels.length}`);
  const rng = sys.sim.rng.fork("bench");
  const blocks = Number(disk.capacityBlocks) / 8; // 4 KiB units
  const data = new Uint8Array(4096).fill(0x5a);
  if (op === "randread") {
    // Touch what the reads will read so the sparse disk has real data.
    await sys.run(disk.write(0, new Uint8Array(64 * 1024)));
  }
  const latencies: number[] = [];
  let issued = 0;
  const t0 = sys.sim.now;
  const w0 = process.hrtime.bigint();
  await sys.run(
    Promise.all(
      Array.from({ length: qd }, async (_, worker) => {
        const vcpu = vm.partition.vcpus[worker % channels]!;
        while (issued < ios) {
          issued++;
          const lba = rng.int(0, blocks - 1) * 8;
          const start = sys.sim.now;
          if (op === "randread") await vcpu.issue(() => disk.read(lba, 8));
          else await vcpu.issue(() => disk.write(lba, data));
          latencies.push(sys.sim.now - start);
        }
      }),
    ),
  );
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const simSeconds = (sys.sim.now - t0) / 1e9;
  latencies.sort((a, b) => a - b);
  await sys.dispose();
  return {
    op,
    qd,
    channels,
    ios,
    simIops: ios / simSeconds,
    p50us: percentile(latencies, 50) / 1000,
    p99us: percentile(latencies, 99) / 1000,
    p999us: percentile(latencies, 99.9) / 1000,
    wallIosPerSec: ios / wall,
  };
}

/** `storageCase` `reps` times: the median wall-clock rate; the simulated figures must agree. */
async function medianCase(op: "randread" | "randwrite", qd: number, channels: number, ios: number, reps: number, warmup: number): Promise<CaseResult> {
  const runs: CaseResult[] = [];
  const warm: CaseResult[] = [];
  for (let i = 0; i < warmup; i++) warm.push(await storageCase(op, qd, channels, ios));
  for (let i = 0; i < reps; i++) runs.push(await storageCase(op, qd, channels, ios));
  const first = runs[0] as CaseResult;
  const sim = (r: CaseResult) => JSON.stringify([r.simIops, r.p50us, r.p99us, r.p999us]);
  for (const r of [...warm, ...runs]) {
    if (sim(r) !== sim(first)) {
      throw new Error(`${op} qd ${qd}, ${channels} channel(s): the simulated figures differ between reps (${sim(first)} vs ${sim(r)})`);
    }
  }
  return { ...first, wallIosPerSec: median(runs.map((r) => r.wallIosPerSec)) };
}

const opts = parseArgs(process.argv.slice(2));
const results: CaseResult[] = [];
const CASES = (["randread", "randwrite"] as const).flatMap((op) => [1, 4].flatMap((channels) => [1, 32].map((qd) => ({ op, channels, qd }))));
for (const [i, c] of CASES.entries()) {
  if (process.stderr.isTTY) process.stderr.write(`\rbench:storage: case ${i + 1}/${CASES.length} (${c.op} qd ${c.qd}, ${c.channels} ch) × ${opts.warmup} + ${opts.reps}   `);
  results.push(await medianCase(c.op, c.qd, c.channels, opts.ios, opts.reps, opts.warmup));
}
if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
const { ceiling, floor } = await storageCeilingAndFloor(opts.ringSeconds / 5);
const find = (op: string, qd: number, ch: number) => results.find((r) => r.op === op && r.qd === qd && r.channels === ch) as CaseResult;
const ratios = {
  vs_ring_ceiling_qd1: find("randread", 1, 1).wallIosPerSec / ceiling,
  vs_ring_ceiling_qd32: find("randread", 32, 1).wallIosPerSec / ceiling,
};
if (opts.json) {
  const floorFigures = {
    iosPerSec: floor,
    vsRingCeiling: floor / ceiling,
    simulatorVsFloor: { qd1: find("randread", 1, 1).wallIosPerSec / floor, qd32: find("randread", 32, 1).wallIosPerSec / floor },
  };
  console.log(JSON.stringify({ ios: opts.ios, reps: opts.reps, warmup: opts.warmup, ringRoundTripsPerSec: ceiling, floor: floorFigures, cases: results, ratios }, null, 2));
} else {
  console.log(
    table(
      ["op", "qd", "ch", "sim IOPS", "p50 µs", "p99 µs", "p99.9 µs", "I/Os per wall s", "vs ring"],
      results.map((r) => [
        r.op,
        String(r.qd),
        String(r.channels),
        fmtRate(r.simIops),
        fmtFixed(r.p50us, 1),
        fmtFixed(r.p99us, 1),
        fmtFixed(r.p999us, 1),
        fmtRate(r.wallIosPerSec),
        fmtFixed(r.wallIosPerSec / ceiling, 3),
      ]),
      "lrrrrrrrr",
    ),
  );
  console.log(`\nwall-clock columns: median of ${opts.reps} run(s) per case after ${opts.warmup} untimed, ${opts.ios} I/Os each`);
  console.log(`bare ring round trip (request + completion): ${fmtRate(ceiling)} per wall-clock second`);
  console.log(
    `floor (that round trip + the DMA copy + the copy read() returns + one promise): ${fmtRate(floor)} per wall-clock second` +
      ` = ${fmtFixed(floor / ceiling, 3)} of the ring; the simulator runs at ${fmtFixed(find("randread", 1, 1).wallIosPerSec / floor, 3)} (QD1)` +
      ` / ${fmtFixed(find("randread", 32, 1).wallIosPerSec / floor, 3)} (QD32) of the floor`,
  );
  const mark = (v: number) => (v >= 1 / 3 ? "ok" : "BELOW TARGET");
  console.log(`vs_ring_ceiling_qd1   ${fmtFixed(ratios.vs_ring_ceiling_qd1, 3)}  target ≥ 0.333  ${mark(ratios.vs_ring_ceiling_qd1)}`);
  console.log(`vs_ring_ceiling_qd32  ${fmtFixed(ratios.vs_ring_ceiling_qd32, 3)}  target ≥ 0.333  ${mark(ratios.vs_ring_ceiling_qd32)}`);
}
