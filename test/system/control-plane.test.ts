/**
 * The VMBus control plane end to end (issue 4): a guest VMBus client and a
 * host VMBus server talking only through SynIC message slots, hypercalls,
 * monitor pages and the rings in guest memory, with the echo device pair.
 */
import { describe, expect, it } from "vitest";
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_HEADER,
  CHANNELMSG_INITIATE_CONTACT,
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  CHANNELMSG_RELID_RELEASED,
  CHANNELMSG_REQUESTOFFERS,
  CHANNELMSG_VERSION_RESPONSE,
  ChannelRescindedError,
  ErrnoError,
  HOST_DEVICE_CONFIG,
  HOST_VM,
  HV_DEVICE,
  SIMULATION,
  VERSION_WIN10,
  VERSION_WIN10_V5_3,
  VMBUS_CHANNEL,
  VM_CONTEXT,
  VmbusSystem,
  lsvmbus,
} from "../../core/index.js";
import { ECHO_CLASS_ID, EchoDriver, EchoHostDevice, echoPlugin } from "../../drivers/echo/index.js";
import { bigRingPlugin, bootEcho } from "./helpers.js";

function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

describe("handshake", () => {
  it("connects at 5.3, takes the offer, creates the ring GPADL and opens the channel — byte for byte", async () => {
    const { sys, vm, echo } = await bootEcho({ plugins: [bigRingPlugin], vcpus: 2 });
    const log = vm.client.log;
    const types = log.map((e) => e.msgtype);
    expect(types.slice(0, 4)).toEqual([CHANNELMSG_INITIATE_CONTACT, CHANNELMSG_VERSION_RESPONSE, CHANNELMSG_REQUESTOFFERS, CHANNELMSG_OFFERCHANNEL]);
    // The probe starts as soon as the offer is taken in, so the GPADL may go
    // out before ALLOFFERS_DELIVERED has arrived, as on Linux.
    expect(types).toContain(CHANNELMSG_ALLOFFERS_DELIVERED);
    expect(types.indexOf(CHANNELMSG_OPENCHANNEL_RESULT)).toBeGreaterThan(types.indexOf(CHANNELMSG_OPENCHANNEL));
    expect(vm.client.version).toBe(VERSION_WIN10_V5_3);
    // INITIATE_CONTACT (40 bytes): version @8, target_vcpu @12, msg_sint @16 (5.0+), monitor pages @24/@32.
    const ic = log[0]!.bytes;
    expect(ic.length).toBe(40);
    expect(u32(ic, 0)).toBe(CHANNELMSG_INITIATE_CONTACT);
    expect(u32(ic, 8)).toBe(0x00050003);
    expect(ic[16]).toBe(2);
    expect(Number(new DataView(ic.buffer, ic.byteOffset).getBigUint64(24, true))).toBe(vm.partition.monitor.serverGpa);
    expect(Number(new DataView(ic.buffer, ic.byteOffset).getBigUint64(32, true))).toBe(vm.partition.monitor.clientGpa);
    // OFFERCHANNEL (196 bytes): class GUID @8, relid @184, monitor allocated @189.
    const offer = log[3]!.bytes;
    expect(offer.length).toBe(196);
    expect(Array.from(offer.subarray(8, 24))).toEqual(Array.from(ECHO_CLASS_ID.toBytes()));
    expect(u32(offer, 184)).toBe(1);
    expect(offer[189]! & 1).toBe(1);
    // 64 + 64 KiB of rings = 32 pages: a header with 26 PFNs and one body with 6.
    const hdr = log.find((e) => e.msgtype === CHANNELMSG_GPADL_HEADER)!.bytes;
    const body = log.find((e) => e.msgtype === CHANNELMSG_GPADL_BODY)!.bytes;
    expect(hdr.length).toBe(20 + 8 + 8 * 26);
    expect(u32(hdr, 12)).toBe(0xe1e10);
    expect(u32(hdr, 20)).toBe(128 * 1024); // byte_count
    expect(body.length).toBe(16 + 8 * 6);
    const created = log.find((e) => e.msgtype === CHANNELMSG_GPADL_CREATED)!.bytes;
    expect(u32(created, 12)).toBe(0xe1e10);
    expect(u32(created, 16)).toBe(0); // creation_status
    const open = log.find((e) => e.msgtype === CHANNELMSG_OPENCHANNEL)!.bytes;
    expect(open.length).toBe(148);
    expect(u32(open, 8)).toBe(1); // child_relid
    expect(u32(open, 12)).toBe(1); // openid = relid
    expect(u32(open, 16)).toBe(0xe1e10); // ring GPADL
    expect(u32(open, 24)).toBe(16); // downstream ring page offset: 64 KiB / 4 KiB
    const result = log.find((e) => e.msgtype === CHANNELMSG_OPENCHANNEL_RESULT)!.bytes;
    expect(u32(result, 16)).toBe(0);
    expect(echo).toEqual([]); // no echo guest driver in this system: bigring took the device
    expect(vm.drivers("bigring")).toHaveLength(1);
    expect(vm.client.devices[0]!.primary.state).toBe(3);
    await sys.dispose();
  });

  it("exchanges requests and completions through the rings (echo)", async () => {
    const { sys, echo } = await bootEcho();
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 13) & 0xff);
    const replies = await sys.run(() => Promise.all([echo[0]!.echo(data), echo[0]!.echo(data.subarray(0, 5))]));
    expect(replies[0]).toEqual(data);
    expect(Array.from(replies[1]!)).toEqual(Array.from(data.subarray(0, 5)));
    expect(echo[0]!.completed).toBe(2);
    expect(echo[0]!.channel.outstanding).toBe(0);
  });

  it("falls back to an older host's version; a CPU change then fails as Linux fails it", async () => {
    const { sys, vm } = await bootEcho({ hostMaxVersion: VERSION_WIN10 });
    expect(vm.client.version).toBe(VERSION_WIN10);
    const refused = vm.client.log.filter((e) => e.msgtype === CHANNELMSG_VERSION_RESPONSE && e.bytes[8] === 0);
    expect(refused).toHaveLength(5); // 5.3, 5.2, 5.1, 5.0 and 4.1 refused; 4.0 accepted
    const relid = vm.client.devices[0]!.primary.relid;
    const dev = vm.client.devices[0]!.name;
    await expect(sys.run(vm.sysfs.write(`/sys/bus/vmbus/devices/${dev}/channels/${relid}/cpu`, "1"))).rejects.toThrow(/EIO/);
  });
});

describe("rescind and hot plug", () => {
  it("rescind during I/O fails outstanding requests with a clear error, nothing hangs, the relid is released", async () => {
    const { sys, vm, echo } = await bootEcho();
    const drv = echo[0]!;
    const hostDev = vm.server.devices()[0]!;
    const pending = [drv.echo(Uint8Array.of(1)), drv.echo(Uint8Array.of(2)), drv.echo(Uint8Array.of(3))];
    const settled = Promise.allSettled(pending);
    await sys.run(vm.server.rescind(hostDev));
    const results = await sys.run(settled);
    for (const r of results) {
      if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ChannelRescindedError);
    }
    expect(results.some((r) => r.status === "rejected")).toBe(true);
    expect(vm.client.devices).toHaveLength(0);
    expect(vm.client.log.some((e) => e.msgtype === CHANNELMSG_RELID_RELEASED)).toBe(true);
    expect(vm.client.channel(1)).toBeUndefined();
    await expect(sys.run(drv.echo(Uint8Array.of(9)))).rejects.toBeInstanceOf(ChannelRescindedError);
  });

  it("a device added at run time is offered, probed and works", async () => {
    const { sys, vm } = await bootEcho();
    sys.addHostDevice(vm, "echo");
    await sys.run(async () => {
      await sys.sim.scheduler.sleep(1_000_000);
      await vm.client.settle();
    });
    const drivers = vm.drivers<EchoDriver>("echo");
    expect(drivers).toHaveLength(2);
    expect(await sys.run(drivers[1]!.echo(Uint8Array.of(42)))).toEqual(Uint8Array.of(42));
  });
});

describe("signalling paths", () => {
  it("a monitored channel signals through the monitor page; tagged low-latency it uses hypercalls", async () => {
    const { sys, vm, echo } = await bootEcho();
    const drv = echo[0]!;
    const ch = drv.channel;
    const c = vm.partition.counters;
    const before = { monitor: c.guestSignalsViaMonitor, hyper: c.hypercalls.signalEvent };
    for (let i = 0; i < 5; i++) await sys.run(drv.echo(Uint8Array.of(i)));
    expect(c.guestSignalsViaMonitor - before.monitor).toBeGreaterThanOrEqual(5);
    expect(c.hypercalls.signalEvent - before.hyper).toBe(0);
    expect(ch.sigEvents).toBe(0);
    ch.lowLatency = true;
    const mid = { monitor: c.guestSignalsViaMonitor, hyper: c.hypercalls.signalEvent, t: sys.sim.now };
    for (let i = 0; i < 5; i++) await sys.run(drv.echo(Uint8Array.of(i)));
    expect(c.guestSignalsViaMonitor).toBe(mid.monitor);
    expect(c.hypercalls.signalEvent - mid.hyper).toBeGreaterThanOrEqual(5);
    expect(ch.sigEvents).toBeGreaterThanOrEqual(5);
  });

  it("a low-latency round trip is faster than a monitored one (the monitor latency is gone)", async () => {
    const { sys, echo } = await bootEcho();
    const drv = echo[0]!;
    let t = sys.sim.now;
    await sys.run(drv.echo(Uint8Array.of(1)));
    const monitored = sys.sim.now - t;
    drv.channel.lowLatency = true;
    t = sys.sim.now;
    await sys.run(drv.echo(Uint8Array.of(1)));
    const direct = sys.sim.now - t;
    expect(monitored).toBeGreaterThanOrEqual(100_000);
    expect(direct).toBeLessThan(100_000);
  });
});

describe("CPU affinity", () => {
  it("writing channels/<relid>/cpu sends MODIFYCHANNEL and moves the interrupts", async () => {
    const { sys, vm, echo } = await bootEcho({ vcpus: 4 });
    const drv = echo[0]!;
    const ch = drv.channel;
    const path = `/sys/bus/vmbus/devices/${drv.device.name}/channels/${ch.relid}/cpu`;
    // vCPU 0 also takes the control messages; compare two other vCPUs.
    expect(await sys.run(vm.sysfs.write(path, "1\n"))).toBe(2);
    expect(vm.sysfs.cat(path)).toBe("1\n");
    const counts = () => vm.partition.vcpus.map((v) => v.counters.vmbusInterrupts);
    for (let i = 0; i < 3; i++) await sys.run(drv.echo(Uint8Array.of(i)));
    const a = counts();
    expect(await sys.run(vm.sysfs.write(path, "3"))).toBe(1);
    for (let i = 0; i < 4; i++) await sys.run(drv.echo(Uint8Array.of(i)));
    const b = counts();
    expect(b[3]! - a[3]!).toBeGreaterThanOrEqual(4);
    expect(b[1]! - a[1]!).toBe(0);
    expect(a[1]).toBeGreaterThanOrEqual(3);
    expect(vm.server.channel(ch.relid)!.targetVp).toBe(3);
    // Out of range → EINVAL; not a number → EIO.
    await expect(sys.run(vm.sysfs.write(path, "9"))).rejects.toThrow(/EINVAL/);
    await expect(sys.run(vm.sysfs.write(path, "x"))).rejects.toThrow(/EIO/);
  });

  it("performance devices are spread over vCPUs, others start on vCPU 0", async () => {
    const { vm } = await bootEcho({ vcpus: 4, devices: 3 });
    // The echo class is not a Linux performance class: every channel on vCPU 0.
    expect(vm.client.devices.map((d) => d.primary.targetCpu)).toEqual([0, 0, 0]);
  });
});

describe("plugins and containers", () => {
  it("two VMs never share a driver instance; every registered token resolves", async () => {
    const { sys, vms } = await bootEcho({ vms: 2 });
    const [a, b] = vms.map((v) => v.drivers<EchoDriver>("echo")[0]!);
    expect(a).not.toBe(b);
    expect(a!.vm).not.toBe(b!.vm);
    for (const vm of vms) {
      const dev = vm.client.devices[0]!;
      const binding = vm.bus.binding(dev)!;
      expect(binding.container.resolve(HV_DEVICE)).toBe(dev);
      expect(binding.container.resolve(VMBUS_CHANNEL)).toBe(dev.primary);
      expect(binding.container.resolve(VM_CONTEXT)).toBe(vm);
      expect(binding.container.resolve(SIMULATION)).toBe(sys.sim);
      expect(binding.container.resolve(EchoDriver)).toBeInstanceOf(EchoDriver);
      const host = vm.hostContainer.createChildContainer();
      host.registerInstance(HOST_DEVICE_CONFIG, {});
      expect(host.resolve(HOST_VM)).toBe(vm);
      expect(host.resolve(EchoHostDevice)).toBeInstanceOf(EchoHostDevice);
    }
  });

  it("an unknown host device type is a clear error", () => {
    const sys = new VmbusSystem({ plugins: [echoPlugin] });
    const vm = sys.addVm();
    expect(() => sys.addHostDevice(vm, "storvsp")).toThrow(/host device type=storvsp: is not registered \(known: echo\)/);
  });
});

describe("sysfs on a booted VM", () => {
  it("lsvmbus -vv lists the device with its channels", async () => {
    const { vm } = await bootEcho({ devices: 2 });
    const out = lsvmbus(vm.sysfs, 2);
    const [d1, d2] = vm.client.devices;
    expect(out).toBe(
      `VMBUS ID  1: Class_ID = {${ECHO_CLASS_ID.toString()}} - Unknown\n\tDevice_ID = {${d1!.name}}\n\tSysfs path: /sys/bus/vmbus/devices/${d1!.name}\n\tRel_ID=1, target_cpu=0\n\n` +
        `VMBUS ID  2: Class_ID = {${ECHO_CLASS_ID.toString()}} - Unknown\n\tDevice_ID = {${d2!.name}}\n\tSysfs path: /sys/bus/vmbus/devices/${d2!.name}\n\tRel_ID=2, target_cpu=0\n\n`,
    );
    const base = `/sys/bus/vmbus/devices/${d1!.name}`;
    expect(vm.sysfs.cat(`${base}/id`)).toBe("1\n");
    expect(vm.sysfs.cat(`${base}/state`)).toBe("3\n");
    expect(vm.sysfs.cat(`${base}/driver`)).toBe("echo\n");
    expect(Number(vm.sysfs.cat(`${base}/channels/1/write_avail`))).toBe(16 * 1024 - 4096);
  });

  it("errors carry errnos", async () => {
    const { vm } = await bootEcho();
    expect(() => vm.sysfs.cat("/sys/bus/vmbus/devices/nope/id")).toThrow(ErrnoError);
  });
});
