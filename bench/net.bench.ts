/**
 * bench:net — VM-to-VM frames through the whole network stack (netvsc →
 * VMBus → netvsp → virtual switch → netvsp → VMBus → netvsc) for 64-byte and
 * 1514-byte frames over one and four queues, and — measured in the same run —
 * the bare ring rate for packets of the same size (write, publish, read,
 * release), the ceiling for one hop — and the floor (see floors.ts): the
 * least work any simulator of a VM-to-VM frame must do here, timed
 * alternately with the ceiling.
 *
 * Each case runs `--reps` times, each time in a fresh system, and reports the
 * median wall-clock rate — as the ring ceiling is the median of five timed
 * runs. The first run of a process pays for compiling the whole stack; a
 * single short run measures mostly that (and whatever else the machine
 * is doing), not the frame path. The simulated figures of every rep must be
 * the same (the run is deterministic); the bench fails if they are not.
 *
 * Usage: npm run bench:net [-- --frames N] [-- --reps N] [-- --warmup N] [-- --json]
 */
import { VmbusSystem } from "../core/index.js";
import { NetvscDriver, buildUdpFrame, networkPlugin } from "../drivers/netvsc/index.js";
import { netCeilingAndFloor } from "./floors.js";
import { fmtFixed, fmtRate, intArg, table } from "./harness.js";

interface Options {
  readonly frames: number;
  readonly reps: number;
  readonly warmup: number;
  readonly json: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  let frames = 20000;
  let reps = 5;
  let warmup = 1;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") json = true;
    else if (a === "--frames") {
      frames = intArg("--frames", argv[++i], 100);
    } else if (a === "--reps") {
      reps = intArg("--reps", argv[++i], 1);
    } else if (a === "--warmup") {
      warmup = intArg("--warmup", argv[++i], 0);
    } else if (a === "--help" || a === "-h") {
      console.log(`npm run bench:net [-- options]

  --frames N   frames per case (default 20000)
  --reps N     timed runs per case, each in a fresh system; wall-clock figures
               are the median run (default 5)
  --warmup N   untimed runs per case first, also in fresh systems (default 1;
               0 with --reps 1 = a single, cold run)
  --json       print one JSON object (figures + ratios) instead of the table
  --help       this text

Cases: 64-byte and 1514-byte frames from vm1 to vm2, one and four queues.
Ratios: vs_ring_ceiling_64 / vs_ring_ceiling_1514 = VM-to-VM frames per wall-clock
second (one queue) over bare ring packets per second of that size.
Target: at least 1/3 of the ceiling for 64-byte frames.
Floor: per frame, the copies into the sender's send buffer, the receiver's receive
buffer and the listener's array, RNDIS headers written and read, one promise per
send, and 4 NVSP ring packets per 32 frames — no simulator logic at all;
floor / ceiling is the most any simulator can reach on this machine.`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return { frames, reps, warmup, json };
}

interface NetResult {
  readonly frameBytes: number;
  readonly queuesRequested: number;
  readonly queues: number;
  readonly frames: number;
  readonly delivered: number;
  readonly framesPerWallSec: number;
  readonly gbitPerWallSec: number;
  readonly simGbitPerSec: number;
}

async function netCase(frameBytes: number, queues: number, count: number): Promise<NetResult> {
  const sys = new VmbusSystem({ seed: 3, plugins: [networkPlugin] });
  const a = sys.addVm({ name: "vm1", vcpus: queues, memoryBytes: 96 << 20 });
  const b = sys.addVm({ name: "vm2", vcpus: queues, memoryBytes: 96 << 20 });
  sys.addHostDevice(a, "netvsp", { config: { mac: "00:15:5d:00:00:01", switch: "bench", maxQueues: queues } });
  sys.addHostDevice(b, "netvsp", { config: { mac: "00:15:5d:00:00:02", switch: "bench", maxQueues: queues } });
  await sys.boot();
  const tx = a.drivers<NetvscDriver>("netvsc")[0];
  const rx = b.drivers<NetvscDriver>("netvsc")[0];
  if (tx === undefined || rx === undefined) throw new Error("netvsc did not bind");
  let delivered = 0;
  rx.onReceive(() => delivered++);
  const payload = frameBytes - 42;
  const frames = Array.from({ length: 64 }, (_, flow) =>
    buildUdpFrame({
      srcMac: tx.mac,
      dstMac: rx.mac,
      srcIp: "10.0.0.1",
      dstIp: "10.0.0.2",
      srcPort: 10_000 + flow,
      dstPort: 20_000,
      payload: new Uint8Array(payload).fill(flow),
    }),
  );
  const t0 = sys.sim.now;
  const w0 = process.hrtime.bigint();
  const WINDOW = 64;
  await sys.run(async () => {
    for (let sent = 0; sent < count; sent += WINDOW) {
      const n = Math.min(WINDOW, count - sent);
      await Promise.all(Array.from({ length: n }, (_, k) => tx.send(frames[(sent + k) % frames.length] as Uint8Array)));
    }
    await sys.sim.scheduler.sleep(1_000_000);
  });
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const sim = (sys.sim.now - t0) / 1e9;
  const result: NetResult = {
    frameBytes,
    queuesRequested: queues,
    queues: tx.queues.length,
    frames: count,
    delivered,
    framesPerWallSec: delivered / wall,
    gbitPerWallSec: (delivered * frameBytes * 8) / wall / 1e9,
    simGbitPerSec: (delivered * frameBytes * 8) / sim / 1e9,
  };
  await sys.dispose();
  return result;
}

/** `netCase` `reps` times: the median wall-clock rate; the simulated figures must agree. */
async function medianCase(frameBytes: number, queues: number, count: number, reps: number, warmup: number): Promise<NetResult> {
  const runs: NetResult[] = [];
  const warm: NetResult[] = [];
  for (let i = 0; i < warmup; i++) warm.push(await netCase(frameBytes, queues, count));
  for (let i = 0; i < reps; i++) runs.push(await netCase(frameBytes, queues, count));
  const first = runs[0] as NetResult;
  for (const r of [...warm, ...runs]) {
    if (r.delivered !== first.delivered || r.simGbitPerSec !== first.simGbitPerSec || r.queues !== first.queues) {
      throw new Error(`${frameBytes}-byte frames, ${queues} queue(s): the simulated figures differ between reps (${JSON.stringify(first)} vs ${JSON.stringify(r)})`);
    }
  }
  const sorted = [...runs].sort((a, b) => a.framesPerWallSec - b.framesPerWallSec);
  return sorted[Math.floor((sorted.length - 1) / 2)] as NetResult;
}

const opts = parseArgs(process.argv.slice(2));
const results: NetResult[] = [];
for (const size of [64, 1514]) for (const q of [1, 4]) results.push(await medianCase(size, q, opts.frames, opts.reps, opts.warmup));
const bounds64 = await netCeilingAndFloor(64, 0.08);
const bounds1514 = await netCeilingAndFloor(1514, 0.08);
const ceiling64 = bounds64.ceiling;
const ceiling1514 = bounds1514.ceiling;
const one = (size: number) => results.find((r) => r.frameBytes === size && r.queuesRequested === 1) as NetResult;
const ratios = {
  vs_ring_ceiling_64: one(64).framesPerWallSec / ceiling64,
  vs_ring_ceiling_1514: one(1514).framesPerWallSec / ceiling1514,
};
if (opts.json) {
  const floor = {
    framesPerSec: { 64: bounds64.floor, 1514: bounds1514.floor },
    vsRingCeiling: { 64: bounds64.floor / ceiling64, 1514: bounds1514.floor / ceiling1514 },
    simulatorVsFloor: { 64: one(64).framesPerWallSec / bounds64.floor, 1514: one(1514).framesPerWallSec / bounds1514.floor },
  };
  console.log(JSON.stringify({ frames: opts.frames, reps: opts.reps, warmup: opts.warmup, ringPacketsPerSec: { 64: ceiling64, 1514: ceiling1514 }, floor, cases: results, ratios }, null, 2));
} else {
  console.log(
    table(
      ["frame B", "queues", "delivered", "frames per wall s", "Gbit/s wall", "Gbit/s simulated", "vs ring"],
      results.map((r) => [
        String(r.frameBytes),
        `${r.queues}${r.queues !== r.queuesRequested ? ` (of ${r.queuesRequested})` : ""}`,
        `${r.delivered}/${r.frames}`,
        fmtRate(r.framesPerWallSec),
        fmtFixed(r.gbitPerWallSec, 3),
        fmtFixed(r.simGbitPerSec, 2),
        fmtFixed(r.framesPerWallSec / (r.frameBytes === 64 ? ceiling64 : ceiling1514), 4),
      ]),
      "rrrrrrr",
    ),
  );
  console.log(`\nwall-clock columns: median of ${opts.reps} run(s) per case after ${opts.warmup} untimed, ${opts.frames} frames each`);
  console.log(`bare ring: ${fmtRate(ceiling64)} packets/s of 64 B, ${fmtRate(ceiling1514)} of 1514 B`);
  for (const [size, b] of [[64, bounds64], [1514, bounds1514]] as const) {
    console.log(
      `floor ${size} B (3 frame copies + RNDIS headers + 4 NVSP packets per 32 frames + one promise per send): ${fmtRate(b.floor)} frames/s` +
        ` = ${fmtFixed(b.floor / b.ceiling, 3)} of the ring; the simulator runs at ${fmtFixed(one(size).framesPerWallSec / b.floor, 3)} of the floor`,
    );
  }
  console.log(`vs_ring_ceiling_64    ${fmtFixed(ratios.vs_ring_ceiling_64, 4)}  target ≥ 0.333  ${ratios.vs_ring_ceiling_64 >= 1 / 3 ? "ok" : "BELOW TARGET"}`);
  console.log(`vs_ring_ceiling_1514  ${fmtFixed(ratios.vs_ring_ceiling_1514, 4)}`);
}
