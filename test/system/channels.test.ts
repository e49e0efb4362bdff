/**
 * More of the control plane: subchannels, the relid array under odd
 * interrupts, interrupts on the old vCPU after a retarget, UNLOAD.
 */
import { describe, expect, it } from "vitest";
import type { DependencyContainer } from "tsyringe";
import { VMBUS_MESSAGE_SINT, VmbusSystem, registerGuestDriver, registerHostDevice, type GuestChannel } from "../../core/index.js";
import { ECHO_CLASS_ID, ECHO_OP_REQUEST, EchoDriver, EchoHostDevice, encodeEcho } from "../../drivers/echo/index.js";
import { bootEcho } from "./helpers.js";

function multiQueueEcho(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "echo", classIds: [ECHO_CLASS_ID] }, EchoDriver);
  registerHostDevice(c, { name: "echo", classId: ECHO_CLASS_ID, subchannelLimit: 2 }, EchoHostDevice);
}

describe("subchannels", () => {
  it("offers with the primary's GUIDs attach to it, get the driver's callback, open and carry requests", async () => {
    const sys = new VmbusSystem({ seed: 3, plugins: [multiQueueEcho] });
    const vm = sys.addVm({ vcpus: 4 });
    const hostDev = sys.addHostDevice(vm, "echo");
    await sys.boot();
    const drv = vm.drivers<EchoDriver>("echo")[0]!;
    const seen: GuestChannel[] = [];
    drv.channel.onSubchannel = (sc) => seen.push(sc);
    vm.server.offerSubchannels(hostDev, 2);
    await sys.run(async () => {
      await sys.sim.scheduler.sleep(1_000_000);
      await vm.client.settle();
    });
    expect(seen.map((s) => s.subchannelIndex)).toEqual([1, 2]);
    expect(drv.channel.subchannels).toEqual(seen);
    expect(vm.client.devices).toHaveLength(1); // no new device for a subchannel
    const sc = seen[0]!;
    await sys.run(sc.open({ sendRingBytes: 8192, recvRingBytes: 8192 }));
    const c = await sys.run(sc.sendRequest(encodeEcho({ op: ECHO_OP_REQUEST, status: 0, data: Uint8Array.of(5, 6, 7) })));
    expect(Array.from(c.data.subarray(16, 19))).toEqual([5, 6, 7]);
    const mapping = vm.sysfs.cat(`/sys/bus/vmbus/devices/${drv.device.name}/channel_vp_mapping`);
    expect(mapping.trim().split("\n").map((l) => Number(l.split(":")[0]))).toEqual([drv.channel.relid, seen[0]!.relid, seen[1]!.relid]);
    // Closing the primary closes its open subchannels first.
    await sys.run(drv.channel.close());
    expect(sc.state).toBe(2);
    expect(drv.channel.state).toBe(2);
  });
});

describe("relid array and interrupts", () => {
  it("an event bit for a relid nobody owns is counted and harmless", async () => {
    const { sys, vm, echo } = await bootEcho({ vcpus: 2 });
    const before = vm.partition.counters.unknownRelidInterrupts;
    sys.hv.signalGuest(vm.partition, 1, 777);
    await sys.run(sys.sim.scheduler.sleep(100_000));
    expect(vm.partition.counters.unknownRelidInterrupts).toBe(before + 1);
    expect(await sys.run(echo[0]!.echo(Uint8Array.of(1)))).toEqual(Uint8Array.of(1));
    // The bit was cleared by the scan.
    const flags = vm.partition.vcpus[1]!.synic;
    expect(flags.messageType(VMBUS_MESSAGE_SINT)).toBe(0);
  });

  it("an interrupt that still arrives on the old vCPU after a retarget is handled, not lost", async () => {
    const { sys, vm, echo } = await bootEcho({ vcpus: 4 });
    const drv = echo[0]!;
    const relid = drv.channel.relid;
    await sys.run(drv.channel.setTargetCpu(2));
    // A completion lands in the ring, but the host's interrupt goes to the old vCPU (0).
    const p = drv.echo(Uint8Array.of(9, 9));
    const host = vm.server.channel(relid)!;
    host.targetVp = 0; // as if the host had not seen MODIFYCHANNEL yet
    const reply = await sys.run(p);
    expect(Array.from(reply)).toEqual([9, 9]);
    expect(vm.partition.relidInterrupts(relid)).toBeGreaterThan(0);
  });
});

describe("UNLOAD", () => {
  it("UNLOAD gets UNLOAD_RESPONSE and the client is disconnected", async () => {
    const { sys, vm } = await bootEcho();
    await sys.run(vm.client.unload());
    expect(vm.client.connectState).toBe(0);
    expect(vm.server.connected).toBe(false);
  });
});

describe("initial target vCPU (init_vp_index)", () => {
  it("channels of a performance class (SCSI) are spread round-robin over the vCPUs", async () => {
    const { HV_SCSI_GUID } = await import("../../core/index.js");
    const plugin = (c: DependencyContainer): void => {
      registerGuestDriver(c, { name: "echo", classIds: [HV_SCSI_GUID] }, EchoDriver);
      registerHostDevice(c, { name: "scsi-echo", classId: HV_SCSI_GUID }, EchoHostDevice);
    };
    const sys = new VmbusSystem({ seed: 5, plugins: [plugin] });
    const vm = sys.addVm({ vcpus: 4 });
    for (let i = 0; i < 5; i++) sys.addHostDevice(vm, "scsi-echo");
    await sys.boot();
    expect(vm.client.devices.map((d) => d.primary.targetCpu)).toEqual([0, 1, 2, 3, 0]);
    // The host interrupts the VP the guest asked for in OPENCHANNEL.
    expect(vm.client.devices.map((d) => vm.server.channel(d.primary.relid)!.targetVp)).toEqual([0, 1, 2, 3, 0]);
    expect(vm.sysfs.cat(`/sys/bus/vmbus/devices/${vm.client.devices[2]!.name}/device`)).toBe("0x1\n");
  });
});
