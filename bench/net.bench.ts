/**
 * bench:net — VM-to-VM frames through the whole network stack (netvsc →
 * VMBus → netvsp → virtual switch → netvsp → VMBus → netvsc) for 64-byte and
 * 1514-byte frames over one and four queues, and — measured in the same run —
 * the bare ring rate for packets of the same size (write, publish, read,
 * release), the ceiling for one hop.
 *
 * Usage: npm run bench:net [-- --frames N] [-- --json]
 */
import { RingBuffer, RingReader, RingWriter, VmbusSystem } from "../core/index.js";
import { NetvscDriver, buildUdpFrame, networkPlugin } from "../drivers/netvsc/index.js";
import { fmtFixed, fmtRate, median, table, timeOnce } from "./harness.js";

interface Options {
  readonly frames: number;
  readonly json: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  let frames = 4000;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") json = true;
    else if (a === "--frames") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 100) throw new Error(`--frames ${argv[i]}: must be an integer ≥ 100`);
      frames = v;
    } else if (a === "--help" || a === "-h") {
      console.log(`npm run bench:net [-- options]

  --frames N   frames per case (default 4000)
  --json       print one JSON object (figures + ratios) instead of the table
  --help       this text

Cases: 64-byte and 1514-byte frames from vm1 to vm2, one and four queues.
Ratios: vs_ring_ceiling_64 / vs_ring_ceiling_1514 = VM-to-VM frames per wall-clock
second (one queue) over bare ring packets per second of that size.
Target: at least 1/3 of the ceiling for 64-byte frames.`);
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return { frames, json };
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

/** Bare ring: packets of `bytes` (plus the 44-byte RNDIS header) written and read in batches of 32. */
function ringRate(bytes: number): number {
  const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(129 * 4096)), "bench");
  ring.init();
  const w = new RingWriter(ring);
  const r = new RingReader(ring, { maxPacketSize: 4096 });
  const payload = new Uint8Array(bytes + 44);
  const samples: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    samples.push(
      timeOnce((deadline) => {
        let n = 0;
        while (process.hrtime.bigint() < deadline) {
          for (let k = 0; k < 32; k++) w.writeInband(k + 1, payload);
          w.commit();
          for (let p = r.first(); p !== null; p = r.next()) n++;
          r.close();
        }
        return n;
      }, 0.08).perSecond,
    );
  }
  return median(samples);
}

const opts = parseArgs(process.argv.slice(2));
const results: NetResult[] = [];
for (const size of [64, 1514]) for (const q of [1, 4]) results.push(await netCase(size, q, opts.frames));
const ceiling64 = ringRate(64);
const ceiling1514 = ringRate(1514);
const one = (size: number) => results.find((r) => r.frameBytes === size && r.queuesRequested === 1) as NetResult;
const ratios = {
  vs_ring_ceiling_64: one(64).framesPerWallSec / ceiling64,
  vs_ring_ceiling_1514: one(1514).framesPerWallSec / ceiling1514,
};
if (opts.json) {
  console.log(JSON.stringify({ frames: opts.frames, ringPacketsPerSec: { 64: ceiling64, 1514: ceiling1514 }, cases: results, ratios }, null, 2));
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
  console.log(`\nbare ring: ${fmtRate(ceiling64)} packets/s of 64 B, ${fmtRate(ceiling1514)} of 1514 B`);
  console.log(`vs_ring_ceiling_64    ${fmtFixed(ratios.vs_ring_ceiling_64, 4)}  target ≥ 0.333  ${ratios.vs_ring_ceiling_64 >= 1 / 3 ? "ok" : "BELOW TARGET"}`);
  console.log(`vs_ring_ceiling_1514  ${fmtFixed(ratios.vs_ring_ceiling_1514, 4)}`);
}
