/**
 * An fio-like storage workload through the whole storage stack
 * (storvsc → VMBus rings → storvsp → in-memory disk and back), measured in
 * virtual time: IOPS, MiB/s, latency percentiles, and which channels (and
 * so which vCPUs) took the completion interrupts.
 *
 * Run: `npm run example:storage-workload -- --pattern randrw --bs 8192 --qd 16 --ios 4000 --read-percent 70`
 * (`-- --help` lists the flags).
 */
import { VmbusSystem, channelInterruptTable, procInterrupts } from "../core/index.js";
import { StorvscDriver, storagePlugin } from "../drivers/storvsc/index.js";
import { UsageError, forEachFlag, intFlag } from "./args.js";

const PATTERNS = ["randread", "randwrite", "seqread", "seqwrite", "randrw"] as const;
type Pattern = (typeof PATTERNS)[number];

interface Options {
  pattern: Pattern;
  bs: number;
  qd: number;
  ios: number;
  readPercent: number;
  vcpus: number;
  seed: number;
}

const HELP = `npm run example:storage-workload -- [flags]

  --pattern P        ${PATTERNS.join(" | ")} (default randread)
  --bs BYTES         block size, a multiple of 512 up to 1 MiB (default 4096)
  --qd N             queue depth: I/Os in flight, 1..256 (default 8)
  --ios N            I/Os to issue, 1..1000000 (default 2000)
  --read-percent N   reads in a randrw mix, 0..100 (default 70)
  --vcpus N          vCPUs of the VM (one storage channel each), 1..16 (default 4)
  --seed N           simulation seed (default 1)
  --help             this text

Figures are in virtual time: what the modelled machine would do.`;

function parseArgs(argv: readonly string[]): Options | null {
  const o: Options = { pattern: "randread", bs: 4096, qd: 8, ios: 2000, readPercent: 70, vcpus: 4, seed: 1 };
  let help = false;
  forEachFlag(argv, (flag, value, a, inline) => {
    switch (flag) {
      case "--help":
      case "-h":
        help = true;
        break;
      case "--pattern": {
        const v = value();
        if (!PATTERNS.includes(v as Pattern)) throw new UsageError(`--pattern ${v ?? "(missing)"}: must be one of ${PATTERNS.join(", ")}`);
        o.pattern = v as Pattern;
        break;
      }
      case "--bs":
        o.bs = intFlag("--bs", value(), 512, 1024 * 1024);
        if (o.bs % 512 !== 0) throw new UsageError(`--bs ${o.bs}: must be a multiple of 512 (the disk's block size)`);
        break;
      case "--qd":
        o.qd = intFlag("--qd", value(), 1, 256);
        break;
      case "--ios":
        o.ios = intFlag("--ios", value(), 1, 1_000_000);
        break;
      case "--read-percent":
        o.readPercent = intFlag("--read-percent", value(), 0, 100);
        break;
      case "--vcpus":
        o.vcpus = intFlag("--vcpus", value(), 1, 16);
        break;
      case "--seed":
        o.seed = intFlag("--seed", value(), 0, 2 ** 31 - 1);
        break;
      default:
        throw new UsageError(`unknown flag ${a} (try --help)`);
    }
  });
  return help ? null : o;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function main(o: Options): Promise<void> {
  const DISK_BYTES = 256 * 1024 * 1024;
  const sys = new VmbusSystem({ seed: o.seed, plugins: [storagePlugin] });
  const vm = sys.addVm({ name: "vm1", vcpus: o.vcpus, memoryBytes: 128 * 1024 * 1024 });
  sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: DISK_BYTES }] } });
  await sys.boot();
  const drv = vm.drivers<StorvscDriver>("storvsc")[0];
  const disk = drv?.disks[0];
  if (drv === undefined || disk === undefined) throw new Error("storvsc did not find the disk");

  const blocksPerIo = o.bs / disk.blockSize;
  const slots = Math.floor(DISK_BYTES / o.bs);
  const rng = sys.sim.rng.fork("storage-workload");
  const data = new Uint8Array(o.bs).fill(0xa5);
  const readsOf = (p: Pattern): boolean | null => (p === "randread" || p === "seqread" ? true : p === "randrw" ? null : false);
  const fixedRead = readsOf(o.pattern);
  const sequential = o.pattern.startsWith("seq");

  console.log(
    `storage workload: ${o.pattern}, bs=${o.bs}, qd=${o.qd}, ios=${o.ios}` +
      (o.pattern === "randrw" ? `, reads ${o.readPercent}%` : "") +
      ` — VM with ${o.vcpus} vCPUs, storvsc with ${drv.channels.length} channel(s), a ${DISK_BYTES >> 20} MiB memory disk (${disk.name})`,
  );
  console.log(`  each of the ${o.qd} workers issues from vCPU (worker mod ${o.vcpus}); storvsc sends on that vCPU's channel, the host completes there`);

  const latencies: number[] = [];
  let issued = 0;
  let reads = 0;
  let writes = 0;
  let next = 0;
  const t0 = sys.sim.now;
  await sys.run(
    Promise.all(
      Array.from({ length: o.qd }, async (_, worker) => {
        const vcpu = vm.partition.vcpus[worker % o.vcpus];
        if (vcpu === undefined) throw new Error(`no vCPU ${worker % o.vcpus}`);
        while (issued < o.ios) {
          issued++;
          const slot = sequential ? next++ % slots : rng.int(0, slots - 1);
          const lba = slot * blocksPerIo;
          const isRead = fixedRead ?? rng.int(0, 99) < o.readPercent;
          const start = sys.sim.now;
          if (isRead) {
            await vcpu.issue(() => disk.read(lba, blocksPerIo));
            reads++;
          } else {
            await vcpu.issue(() => disk.write(lba, data));
            writes++;
          }
          latencies.push(sys.sim.now - start);
        }
      }),
    ),
  );
  const seconds = (sys.sim.now - t0) / 1e9;
  latencies.sort((a, b) => a - b);
  const mean = latencies.reduce((s, x) => s + x, 0) / latencies.length;
  const iops = latencies.length / seconds;
  const us = (ns: number): string => (ns / 1000).toFixed(1);

  console.log(`\n── results (virtual time: ${(seconds * 1000).toFixed(2)} ms for ${latencies.length} I/Os: ${reads} reads, ${writes} writes)`);
  console.log(`  IOPS     ${iops.toFixed(0)}`);
  console.log(`  MiB/s    ${((iops * o.bs) / (1024 * 1024)).toFixed(1)}`);
  console.log(
    `  latency  min=${us(latencies[0] ?? 0)} µs mean=${us(mean)} µs p50=${us(percentile(latencies, 50))} µs p90=${us(percentile(latencies, 90))} µs ` +
      `p99=${us(percentile(latencies, 99))} µs p99.9=${us(percentile(latencies, 99.9))} µs max=${us(latencies[latencies.length - 1] ?? 0)} µs`,
  );
  console.log(`  (Little's law: qd / mean latency = ${(o.qd / (mean / 1e9)).toFixed(0)} IOPS — the queue was kept full)`);

  console.log("\n── /proc/interrupts (HYP: VMBus interrupts per vCPU)");
  process.stdout.write(procInterrupts(vm.sysfs.bus));
  console.log("\n── per channel: each channel interrupts the vCPU it is bound to");
  process.stdout.write(channelInterruptTable(vm.sysfs.bus));
  await sys.dispose();
}

let opts: Options | null;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`storage-workload: ${e.message}`);
  process.exit(2);
}
if (opts === null) console.log(HELP);
else await main(opts);
