import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../core/errors.js";
import {
  HV_MESSAGE_FLAG_MSG_PENDING,
  HV_STATUS_INVALID_PARAMETER,
  HV_STATUS_SUCCESS,
  Hypervisor,
  HVMSG_NONE,
  VMBUS_MESSAGE_SINT,
  decodeHvMessage,
  signalChannel,
} from "../../core/hv/index.js";
import { PAGE_SIZE } from "../../core/memory/guest-memory.js";
import { Simulation } from "../../core/sim/index.js";

function setup() {
  const sim = new Simulation({ seed: 1 });
  const hv = new Hypervisor(sim);
  const vm = hv.createVm({ vcpuCount: 2, vpIndexes: [0, 5] });
  return { sim, hv, vm };
}

describe("SynIC and monitor page bytes", () => {
  it("allocates page-aligned SIMP/SIEFP pages per vCPU and two monitor pages from guest memory", () => {
    const { vm } = setup();
    const gpas = [...vm.vcpus.flatMap((v) => [v.synic.simpGpa, v.synic.siefpGpa]), ...vm.monitor.pageGpa];
    expect(new Set(gpas).size).toBe(6);
    for (const g of gpas) {
      expect(g % PAGE_SIZE).toBe(0);
      expect(vm.memory.isAllocated(g / PAGE_SIZE)).toBe(true);
    }
    expect(vm.vcpuByVpIndex(5)?.cpu).toBe(1);
  });

  it("writes a posted message into SINT2's slot at page offset 512 at the hv_message offsets", async () => {
    const { sim, hv, vm } = setup();
    const payload = Uint8Array.from({ length: 20 }, (_, i) => 0xa0 + i);
    expect(hv.postMessageToGuest(vm, payload, { port: 0x123456, messageType: 1 })).toBe(HV_STATUS_SUCCESS);
    const slot = vm.vcpus[0]!.synic.simpGpa + 512;
    expect(vm.memory.readU32(slot)).toBe(HVMSG_NONE); // not before messageDeliveryNs
    await sim.scheduler.runUntilIdle();
    const u8 = vm.memory.u8;
    expect(vm.memory.readU32(slot + 0)).toBe(1); // message_type
    expect(u8[slot + 4]).toBe(20); // payload_size
    expect(u8[slot + 5]).toBe(0); // message_flags: nothing queued behind it
    expect(vm.memory.readU32(slot + 8)).toBe(0x123456); // port
    expect(Array.from(u8.subarray(slot + 16, slot + 36))).toEqual(Array.from(payload));
    expect(u8[slot + 36]).toBe(0);
    // Other slots untouched.
    expect(vm.memory.readU32(vm.vcpus[0]!.synic.simpGpa + 256)).toBe(HVMSG_NONE);
    const m = decodeHvMessage(vm.vcpus[0]!.synic.copyMessage(VMBUS_MESSAGE_SINT));
    expect(m.messageType).toBe(1);
    expect(m.payloadSize).toBe(20);
    expect(m.port).toBe(0x123456);
    expect(m.messageFlags & HV_MESSAGE_FLAG_MSG_PENDING).toBe(0);
    expect(Array.from(m.payload)).toEqual(Array.from(payload));
  });

  it("rejects an oversize payload or HVMSG_NONE type from the host with INVALID_PARAMETER", () => {
    const { hv, vm } = setup();
    expect(hv.postMessageToGuest(vm, new Uint8Array(241))).toBe(HV_STATUS_INVALID_PARAMETER);
    expect(hv.postMessageToGuest(vm, new Uint8Array(4), { messageType: HVMSG_NONE })).toBe(HV_STATUS_INVALID_PARAMETER);
    expect(() => hv.postMessageToGuest(vm, new Uint8Array(4), { vpIndex: 3 })).toThrow(InvalidArgumentError);
  });

  it("sets event-flag bit n at SIEFP byte 512 + n/8 of the target VP", () => {
    const { hv, vm } = setup();
    const v = vm.vcpuByVpIndex(5)!;
    for (const relid of [1, 9, 31, 32, 2047]) hv.signalGuest(vm, 5, relid);
    const base = v.synic.siefpGpa + 512;
    const u8 = vm.memory.u8;
    for (const relid of [1, 9, 31, 32, 2047]) {
      expect(u8[base + (relid >> 3)]! & (1 << (relid & 7))).not.toBe(0);
    }
    expect(u8[base + 0]).toBe(0b10);
    expect(u8[base + 1]).toBe(0b10);
    expect(u8[base + 3]).toBe(0x80);
    expect(u8[base + 4]).toBe(0x01);
    expect(u8[base + 255]).toBe(0x80);
    // Nothing outside the SINT2 block, nothing on the other vCPU.
    expect(u8.subarray(v.synic.siefpGpa, base).every((b) => b === 0)).toBe(true);
    expect(u8.subarray(vm.vcpus[0]!.synic.siefpGpa, vm.vcpus[0]!.synic.siefpGpa + PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(() => hv.signalGuest(vm, 5, 2048)).toThrow(InvalidArgumentError);
  });

  it("lays out the monitor page: pending at 0x08 + 8*group, armed at +4, latency at 0x240, parameter at 0x440", () => {
    const { hv, vm } = setup();
    hv.connectEvent(vm, 0x2001, () => {});
    vm.monitor.configure(70, { connectionId: 0x2001, latency: 1000 }); // group 2, bit 6
    const client = vm.monitor.clientGpa;
    const server = vm.monitor.serverGpa;
    const mem = vm.memory;
    expect(mem.readU32(client + 0x08 + 8 * 2 + 4)).toBe(1 << 6); // armed
    expect(mem.readU32(client + 0x000) & 0b100).toBe(0b100); // trigger_state group_enable
    for (const page of [client, server]) {
      expect(mem.view.getUint16(page + 0x240 + (2 * 32 + 6) * 2, true)).toBe(1000);
      expect(mem.readU32(page + 0x440 + (2 * 32 + 6) * 8)).toBe(0x2001);
    }
    expect(vm.monitor.latencyNs(70)).toBe(100_000);
    signalChannel(vm.vcpus[0]!, { connectionId: 0x2001, monitorId: 70, lowLatency: false });
    expect(mem.readU32(client + 0x08 + 8 * 2)).toBe(1 << 6); // pending
    expect(mem.readU32(server + 0x08 + 8 * 2)).toBe(0); // guest only writes page [1]
    vm.monitor.trigger(3); // group 0, bit 3 (not configured: bit just stays set)
    expect(mem.readU32(client + 0x08)).toBe(1 << 3);
    expect(() => vm.monitor.trigger(128)).toThrow(InvalidArgumentError);
  });
});
