/**
 * Threaded mode: the storage sample with the host in a worker thread.
 *
 * The guest (vCPUs, VMBus client, storvsc) runs in the main thread; the
 * host (VMBus server, storvsp with memory disks) runs in a `worker_threads`
 * worker; both work on the same guest memory (one SharedArrayBuffer). The
 * rings, SynIC pages and monitor pages are shared bytes; hypercalls and
 * interrupts cross through doorbells (`Atomics.notify` / `Atomics.waitAsync`).
 *
 * The workload writes a distinct pattern to `--ios` / 2 random block ranges
 * spread over the disks, with `--qd` I/Os in flight issued from all vCPUs,
 * then reads every range back and checks every byte. Figures are wall-clock
 * (real threads), unlike the other examples.
 *
 * Run: `npm run example:threads -- --ios 4000 --qd 16 --vcpus 4 --disks 2`
 * (`-- --help` lists the flags).
 */
import { performance } from "node:perf_hooks";
import { threadId } from "node:worker_threads";
import { ThreadedSystem } from "../core/index.js";
import { storagePlugin, type ScsiDisk, type StorvscDriver } from "../drivers/storvsc/index.js";
import { UsageError, forEachFlag, intFlag } from "./args.js";

interface Options {
  ios: number;
  qd: number;
  bs: number;
  vcpus: number;
  disks: number;
  seed: number;
  json: boolean;
}

const HELP = `npm run example:threads -- [flags]

  --ios N        I/Os in all, half writes then half reads of the same ranges, 2..1000000 (default 4000)
  --qd N         I/Os in flight, 1..256 (default 16)
  --bs BYTES     I/O size, a multiple of 512 up to 256 KiB (default 4096)
  --vcpus N      guest vCPUs (one storage channel each), 1..16 (default 4)
  --disks N      memory disks (LUNs) on the controller, 1..8 (default 2)
  --seed N       seed of the workload and the simulation (default 1)
  --json         print the figures as JSON
  --help         this text

The guest runs in the main thread and storvsp in a worker thread over
shared guest memory; every byte read back is checked against what was
written. Figures are wall-clock.`;

function parseArgs(argv: readonly string[]): Options | null {
  const o: Options = { ios: 4000, qd: 16, bs: 4096, vcpus: 4, disks: 2, seed: 1, json: false };
  let help = false;
  forEachFlag(argv, (flag, value, a, inline) => {
    switch (flag) {
      case "--help":
      case "-h":
        help = true;
        break;
      case "--ios":
        o.ios = intFlag("--ios", value(), 2, 1_000_000);
        break;
      case "--qd":
        o.qd = intFlag("--qd", value(), 1, 256);
        break;
      case "--bs":
        o.bs = intFlag("--bs", value(), 512, 256 * 1024);
        if (o.bs % 512 !== 0) throw new UsageError(`--bs ${o.bs}: must be a multiple of 512 (the disks' block size)`);
        break;
      case "--vcpus":
        o.vcpus = intFlag("--vcpus", value(), 1, 16);
        break;
      case "--disks":
        o.disks = intFlag("--disks", value(), 1, 8);
        break;
      case "--seed":
        o.seed = intFlag("--seed", value(), 0, 2 ** 31 - 1);
        break;
      case "--json":
        if (inline !== undefined) throw new UsageError("--json takes no value");
        o.json = true;
        break;
      default:
        throw new UsageError(`unknown flag ${a} (try --help)`);
    }
  });
  return help ? null : o;
}

/** The bytes range `tag` holds: a cheap xorshift stream, so nothing needs remembering. */
function fillPattern(out: Uint8Array, tag: number): void {
  let x = (tag * 0x9e3779b1) ^ 0x5bd1e995 | 1;
  const w = new Uint32Array(out.buffer, out.byteOffset, out.byteLength >> 2);
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x >>> 0;
  }
}

async function main(o: Options): Promise<void> {
  const DISK_BYTES = 64 * 1024 * 1024;
  const sys = new ThreadedSystem(
    {
      seed: o.seed,
      plugins: [storagePlugin],
      hostPlugins: [{ module: new URL("../drivers/storvsc/index.js", import.meta.url).href, exportName: "storagePlugin" }],
    },
    { name: "vm1", vcpus: o.vcpus, memoryBytes: 128 * 1024 * 1024 },
  );
  sys.addHostDevice("storvsp", {
    config: { disks: Array.from({ length: o.disks }, (_, lun) => ({ kind: "memory", sizeBytes: DISK_BYTES, lun })) },
  });
  const t0 = performance.now();
  await sys.start();
  let result: { ios: number; bytesVerified: number; mismatches: number; seconds: number; channels: number } | undefined;
  try {
    await sys.boot();
    const bootMs = performance.now() - t0;
    const drv = sys.vm.drivers<StorvscDriver>("storvsc")[0];
    if (drv === undefined || drv.disks.length !== o.disks) throw new Error(`storvsc found ${drv?.disks.length ?? 0} disk(s), expected ${o.disks}`);
    const disks: readonly ScsiDisk[] = drv.disks;
    if (!o.json) {
      console.log(
        `threaded storage: guest in thread ${threadId}, storvsp in worker thread ${sys.hostThreadId}; ` +
          `${o.vcpus} vCPUs, ${drv.channels.length} channel(s), ${o.disks} × ${DISK_BYTES >> 20} MiB memory disks; booted in ${bootMs.toFixed(0)} ms`,
      );
    }
    // Distinct ranges: slot k of the shuffled list → (disk, offset).
    const writes = Math.floor(o.ios / 2);
    const blocks = o.bs / 512;
    const slotsPerDisk = Math.floor(DISK_BYTES / o.bs);
    if (writes > slotsPerDisk * o.disks) throw new UsageError(`--ios ${o.ios}: at most ${2 * slotsPerDisk * o.disks} with --bs ${o.bs} and ${o.disks} disk(s)`);
    const rng = sys.sim.rng.fork("threads example");
    const chosen = new Set<number>();
    const slots: number[] = [];
    while (slots.length < writes) {
      const s = rng.int(0, slotsPerDisk * o.disks - 1);
      if (!chosen.has(s)) {
        chosen.add(s);
        slots.push(s);
      }
    }
    const vcpus = sys.vm.partition.vcpus;
    let mismatches = 0;
    let bytesVerified = 0;
    const phase = async (write: boolean): Promise<void> => {
      let next = 0;
      await sys.run(
        Promise.all(
          Array.from({ length: o.qd }, async (_, worker) => {
            const vcpu = vcpus[worker % vcpus.length]!;
            const buf = new Uint8Array(o.bs);
            while (next < slots.length) {
              const slot = slots[next++]!;
              const disk = disks[slot % o.disks]!;
              const lba = Math.floor(slot / o.disks) * blocks;
              fillPattern(buf, slot + o.seed);
              if (write) {
                await vcpu.issue(() => disk.write(lba, buf));
              } else {
                const got = await vcpu.issue(() => disk.read(lba, blocks));
                if (Buffer.compare(got, buf) !== 0) mismatches++;
                else bytesVerified += got.length;
              }
            }
          }),
        ),
      );
    };
    const t1 = performance.now();
    await phase(true);
    await phase(false);
    const seconds = (performance.now() - t1) / 1000;
    result = { ios: 2 * writes, bytesVerified, mismatches, seconds, channels: drv.channels.length };
  } finally {
    const report = await sys.shutdown();
    if (result !== undefined) {
      const iops = result.ios / result.seconds;
      const figures = {
        ios: result.ios,
        bytesVerified: result.bytesVerified,
        mismatches: result.mismatches,
        wallSeconds: Number(result.seconds.toFixed(3)),
        wallIops: Math.round(iops),
        wallMiBps: Number(((iops * o.bs) / (1024 * 1024)).toFixed(1)),
        channels: result.channels,
        hostThreadId: report.hostThreadId,
        guestThreadId: threadId,
        link: report.link,
        hostEventsRun: report.host.eventsRun,
        guestInterrupts: sys.vm.partition.vcpus.map((v) => v.counters.vmbusInterrupts),
      };
      if (o.json) console.log(JSON.stringify(figures, null, 2));
      else {
        const l = report.link;
        console.log(`\n── results (wall clock, ${result.seconds.toFixed(2)} s for ${result.ios} I/Os of ${o.bs} B, qd ${o.qd})`);
        console.log(`  I/Os done       ${result.ios} (${result.ios / 2} writes, then ${result.ios / 2} reads of the same ranges)`);
        console.log(`  bytes verified  ${result.bytesVerified} (${result.mismatches} mismatching reads)`);
        console.log(`  IOPS            ${Math.round(iops)}   MiB/s ${figures.wallMiBps}`);
        console.log(`  doorbells       guest→host ${l.guestToHostNotifies} notifies, host→guest ${l.hostToGuestNotifies} notifies`);
        console.log(`  sleeps          host ${l.hostWaits} (woken by a ring ${l.hostWakeups}), guest ${l.guestWaits} (woken ${l.guestWakeups})`);
        console.log(`  crossings       ${l.mailboxMessages} messages, ${l.eventSignals} signal-event bits, ${l.monitorRings} monitor rings, ${l.sintForwards} SINTs, ${l.eomForwards} EOMs`);
        console.log(`  interrupts      per vCPU ${figures.guestInterrupts.join(" ")}`);
      }
      if (result.mismatches !== 0) process.exitCode = 1;
    }
  }
}

let opts: Options | null;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`threads-storage: ${e.message}`);
  process.exit(2);
}
if (opts === null) console.log(HELP);
else {
  try {
    await main(opts);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`threads-storage: ${e.message}`);
    process.exit(2);
  }
}
