/**
 * The echo device pair from the offer to the first completion, printed as it
 * happens: every control message as the guest's VMBus client logs it
 * (vm.client.log), the driver's probe, the host device's open, the first
 * request and its completion. The guide is examples/write-a-driver/README.md.
 *
 * The hooks below (wrapping log.push, EchoDriver.prototype.probe and
 * EchoHostDevice.prototype.open) are instrumentation for this example only.
 *
 * Run: `npm run example:write-a-driver`.
 */
import { VmbusSystem, type ControlLogEntry } from "../../core/index.js";
import { EchoDriver, EchoHostDevice, echoPlugin } from "../../drivers/echo/index.js";

const EXPLAIN: Record<string, string> = {
  INITIATE_CONTACT: "the guest's VMBus client connects, offering its highest protocol version",
  VERSION_RESPONSE: "the host accepts the version",
  REQUESTOFFERS: "the guest asks for the devices",
  OFFERCHANNEL: "step 1 — the OFFER: the host offers the echo device (class GUID = ECHO_CLASS_ID in protocol.ts); the DriverBus matches it to the manifest in index.ts",
  ALLOFFERS_DELIVERED: "no more offers",
  GPADL_HEADER: "step 3 — GPADL: channel.open() shares the ring pages (send + receive rings) with the host",
  GPADL_CREATED: "the host maps the ring pages",
  OPENCHANNEL: "step 4 — OPENCHANNEL: names the GPADL, where the inbound ring starts, and the target vCPU",
  OPENCHANNEL_RESULT: "status 0: the channel is open; probe() returns",
};

const sys = new VmbusSystem({ seed: 42, plugins: [echoPlugin] });
const vm = sys.addVm({ name: "vm1", vcpus: 2 });
sys.addHostDevice(vm, "echo");
const us = (): string => `${(sys.sim.now / 1000).toFixed(1).padStart(7)} µs`;

// Print every control message the moment the client logs it.
const log = vm.client.log;
const push = log.push.bind(log);
log.push = (...entries: ControlLogEntry[]): number => {
  for (const e of entries) {
    const name = e.text.split(" ")[0] ?? "";
    console.log(`${(e.timeNs / 1000).toFixed(1).padStart(7)} µs  ${e.direction}  ${e.text}`);
    const why = EXPLAIN[name];
    if (why !== undefined) console.log(`${" ".repeat(22)}↳ ${why}`);
  }
  return push(...entries);
};

// The driver's probe and the host device's open, as they run.
const probe = EchoDriver.prototype.probe;
EchoDriver.prototype.probe = async function (this: EchoDriver): Promise<void> {
  console.log(`${us()}  guest       step 2 — PROBE: the DriverBus built EchoDriver (HV_DEVICE, VMBUS_CHANNEL, VM_CONTEXT injected) for relid ${this.channel.relid} and calls probe()`);
  await probe.call(this);
  console.log(`${us()}  guest       probe() done: channel ${this.channel.relid} open, rings ready`);
};
const open = EchoHostDevice.prototype.open;
EchoHostDevice.prototype.open = function (this: EchoHostDevice, ...args: Parameters<typeof open>): void {
  console.log(`${us()}  host        EchoHostDevice.open(): installs its packet handler on the host channel`);
  open.apply(this, args);
};

console.log("── boot: from the offer to the open channel");
await sys.boot();

const drv = vm.drivers<EchoDriver>("echo")[0];
if (drv === undefined) throw new Error("the echo driver did not bind");

console.log("\n── the first request and its completion");
const payload = new TextEncoder().encode("hello, host");
console.log(`${us()}  guest       step 5 — FIRST REQUEST: echo("hello, host") → channel.sendRequest(): an inband packet (16-byte echo header + ${payload.length} bytes) with COMPLETION_REQUESTED into the outbound ring; the monitor bit signals the host`);
const reply = await sys.run(drv.echo(payload));
console.log(`${us()}  guest       step 6 — FIRST COMPLETION: VM_PKT_COMP with the same request id, ECHO_OP_RESPONSE status 0: "${new TextDecoder().decode(reply)}"`);
console.log(`\n   requests completed by the driver: ${drv.completed}; channel interrupts: ${vm.sysfs.cat(`/sys/bus/vmbus/devices/${drv.device.name}/channels/${drv.channel.relid}/interrupts`).trim()}`);
console.log("   next: examples/write-a-driver/README.md walks through each file of drivers/echo/");
await sys.dispose();
