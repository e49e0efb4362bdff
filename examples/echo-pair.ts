/**
 * The echo device pair from the offer to the first completion, and what
 * sysfs shows afterwards (vmbus-core.md §7–§9).
 *
 * One VM with 4 vCPUs and one echo device: the guest's VMBus client
 * connects, takes the offer, the echo driver opens the channel (GPADL +
 * OPENCHANNEL) and exchanges requests and completions with the host's echo
 * device through the rings. Then the channel is moved to another vCPU
 * through sysfs, and tagged low-latency.
 *
 * Run: `npm run example:echo`.
 */
import { VmbusSystem, channelInterruptTable, lsvmbus, procInterrupts } from "../core/index.js";
import { EchoDriver, echoPlugin } from "../drivers/echo/index.js";

function us(ns: number): string {
  return `${(ns / 1000).toFixed(1)} µs`;
}

const sys = new VmbusSystem({ seed: 42, plugins: [echoPlugin] });
const vm = sys.addVm({ name: "vm1", vcpus: 4 });
sys.addHostDevice(vm, "echo");
await sys.boot();

console.log("── VMBus handshake (guest's view of the control messages)");
for (const e of vm.client.log) console.log(`  ${us(e.timeNs).padStart(10)}  ${e.direction}  ${e.text}`);

console.log("\n── lsvmbus -vv");
process.stdout.write(lsvmbus(vm.sysfs, 2));

const drv = vm.drivers<EchoDriver>("echo")[0];
if (drv === undefined) throw new Error("the echo driver did not bind");
const dev = `/sys/bus/vmbus/devices/${drv.device.name}`;
const chan = `${dev}/channels/${drv.channel.relid}`;

let t = sys.sim.now;
const reply = await sys.run(drv.echo(new TextEncoder().encode("hello, host")));
console.log(`\n── first request: "${new TextDecoder().decode(reply)}" came back after ${us(sys.sim.now - t)} (monitored channel: the host notices within the 100 µs monitor latency)`);

for (let i = 0; i < 20; i++) await sys.run(drv.echo(Uint8Array.of(i)));
console.log(`\n── after 21 requests on vCPU ${drv.channel.targetCpu}`);
process.stdout.write(procInterrupts(vm.sysfs.bus));
process.stdout.write(channelInterruptTable(vm.sysfs.bus));

await sys.run(vm.sysfs.write(`${chan}/cpu`, "3"));
for (let i = 0; i < 20; i++) await sys.run(drv.echo(Uint8Array.of(i)));
console.log(`\n── echo 3 > ${chan}/cpu (MODIFYCHANNEL), then 20 more requests: the interrupts moved to CPU3`);
process.stdout.write(procInterrupts(vm.sysfs.bus));

drv.channel.lowLatency = true;
t = sys.sim.now;
await sys.run(drv.echo(Uint8Array.of(1)));
console.log(`\n── tagged low-latency: a round trip takes ${us(sys.sim.now - t)} (a SignalEvent hypercall per signal instead of the monitor page)`);
for (const attr of ["events", "interrupts", "intr_out_empty", "intr_in_full", "out_full_total", "latency", "pending"]) {
  console.log(`  ${attr.padEnd(15)} ${vm.sysfs.cat(`${chan}/${attr}`).trim()}`);
}
const c = vm.partition.counters;
console.log(
  `\n  hypercalls: post_message=${c.hypercalls.postMessage} signal_event=${c.hypercalls.signalEvent}; monitor triggers=${c.monitorTriggers}, scans=${c.monitorScans}; ` +
    `signals necessary=${c.signalsNecessary} unnecessary=${c.signalsUnnecessary}; throttled ${c.throttleEvents} time(s)`,
);
