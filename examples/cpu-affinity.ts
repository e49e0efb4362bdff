/**
 * Moving a channel's interrupts to another vCPU through sysfs, while I/O
 * runs — Linux's `echo 3 > /sys/bus/vmbus/devices/<dev>/channels/<relid>/cpu`.
 * The guest sends CHANNELMSG_MODIFYCHANNEL (protocol 4.1+); from then on the
 * host signals the new vCPU. Completions already on their way may still
 * arrive on the old one; nothing is lost.
 *
 * One VM with 4 vCPUs and the echo device (one channel); four workers keep
 * requests in flight. Halfway through, the channel moves from its CPU to
 * CPU 3.
 *
 * Run: `npm run example:cpu-affinity`.
 */
import { VmbusSystem, channelInterruptTable, procInterrupts } from "../core/index.js";
import { EchoDriver, echoPlugin } from "../drivers/echo/index.js";

const REQUESTS = 400;
const TARGET = 3;

const sys = new VmbusSystem({ seed: 7, plugins: [echoPlugin] });
const vm = sys.addVm({ name: "vm1", vcpus: 4 });
sys.addHostDevice(vm, "echo");
await sys.boot();
const drv = vm.drivers<EchoDriver>("echo")[0];
if (drv === undefined) throw new Error("the echo driver did not bind");
const cpuPath = `/sys/bus/vmbus/devices/${drv.device.name}/channels/${drv.channel.relid}/cpu`;
const counts = (): number[] => vm.partition.vcpus.map((v) => v.counters.vmbusInterrupts);
const fmt = (ns: readonly number[]): string => ns.map((n, i) => `CPU${i}=${n}`).join(" ");

console.log(`echo device ${drv.device.name}: channel relid ${drv.channel.relid} bound to CPU ${drv.channel.targetCpu} (cat ${cpuPath} → ${vm.sysfs.cat(cpuPath).trim()})`);
console.log(`${REQUESTS} echo requests, 4 in flight; after ${REQUESTS / 2}: echo ${TARGET} > ${cpuPath}\n`);
console.log("── /proc/interrupts before the workload");
process.stdout.write(procInterrupts(vm.sysfs.bus));

const start = counts();
let atMove: number[] = [];
let done = 0;
let move: Promise<void> | null = null;
await sys.run(
  Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = w; i < REQUESTS; i += 4) {
        await drv.echo(Uint8Array.of(i & 0xff));
        done++;
        if (done === REQUESTS / 2) {
          atMove = counts();
          // The write runs while the other workers' requests are in flight.
          move = vm.sysfs.write(cpuPath, String(TARGET)).then(() => {
            console.log(`\n   t=${(sys.sim.now / 1000).toFixed(0)} µs, ${done} requests done: MODIFYCHANNEL sent; cat ${cpuPath} → ${vm.sysfs.cat(cpuPath).trim()}`);
          });
        }
      }
    }),
  ).then(() => move),
);
const end = counts();
const diff = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x - (b[i] ?? 0));
console.log(`   interrupts during the first half:  ${fmt(diff(atMove, start))}`);
console.log(`   interrupts during the second half: ${fmt(diff(end, atMove))}`);

console.log(`\n── /proc/interrupts after: the channel's interrupts moved to CPU${TARGET}`);
process.stdout.write(procInterrupts(vm.sysfs.bus));
process.stdout.write(channelInterruptTable(vm.sysfs.bus));
await sys.dispose();
