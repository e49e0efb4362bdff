import { describe, expect, it } from "vitest";
import {
  HV_MESSAGE_SIZE,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_INVALID_PARAMETER,
  HV_STATUS_SUCCESS,
  HVMSG_NONE,
  Hypervisor,
  VMBUS_MESSAGE_SINT,
  decodeHvMessage,
  installVmbusIsr,
  postMessageWithRetry,
  type HostMessage,
  type Vcpu,
} from "../../core/hv/index.js";
import { Simulation, type CostModel } from "../../core/sim/index.js";

function setup(costs: Partial<CostModel> = {}) {
  const sim = new Simulation({ seed: 1, costs });
  const hv = new Hypervisor(sim);
  const vm = hv.createVm({ vcpuCount: 2 });
  return { sim, hv, vm };
}

describe("host → guest message handshake", () => {
  it("delivers 50 messages to a slow guest through one slot: none lost or reordered, msg_pending and EOM exercised", async () => {
    const { sim, hv, vm } = setup({ messageQueueDepth: 64 });
    const received: number[] = [];
    const pendingSeen: boolean[] = [];
    const copy = new Uint8Array(HV_MESSAGE_SIZE);
    installVmbusIsr(vm, {
      lookupChannel: () => undefined,
      onMessage: async (vcpu: Vcpu, sint: number) => {
        // vmbus_on_msg_dpc: copy first, then handle, then EOM.
        vcpu.synic.copyMessage(sint, copy);
        const m = decodeHvMessage(copy);
        // msg_pending as the guest sees it in the live slot bytes (byte 5 bit 0).
        const slot = vcpu.synic.messageSlotGpa(sint);
        pendingSeen.push((vm.memory.u8[slot + 5]! & 1) === 1);
        received.push(new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(0, true));
        await sim.scheduler.sleep(20_000); // slow handler holds the vCPU
        expect(vcpu.synic.endOfMessage(sint, m.messageType)).toBe(true);
      },
    });
    for (let i = 0; i < 50; i++) {
      const p = new Uint8Array(8);
      new DataView(p.buffer).setUint32(0, i, true);
      expect(hv.postMessageToGuest(vm, p)).toBe(HV_STATUS_SUCCESS);
    }
    expect(vm.vcpus[0]!.synic.queuedMessages(VMBUS_MESSAGE_SINT)).toBe(50);
    await sim.scheduler.runUntilIdle();

    expect(received).toEqual([...Array(50).keys()]);
    // Every message but the last had one queued behind it.
    expect(pendingSeen.slice(0, 49).every((x) => x)).toBe(true);
    expect(pendingSeen[49]).toBe(false);
    expect(vm.counters.messagesToGuest).toBe(50);
    expect(vm.counters.messagesDelivered).toBe(50);
    expect(vm.counters.msgPendingSet).toBe(49);
    expect(vm.counters.eoms).toBe(50);
    expect(vm.counters.eomMsrWrites).toBe(49);
    expect(vm.vcpus[0]!.counters.eomMsrWrites).toBe(49);
    expect(vm.vcpus[0]!.counters.vmbusInterrupts).toBe(50);
    expect(vm.vcpus[1]!.counters.vmbusInterrupts).toBe(0);
    expect(vm.vcpus[0]!.synic.messageType(VMBUS_MESSAGE_SINT)).toBe(HVMSG_NONE);
    expect(vm.vcpus[0]!.synic.queuedMessages(VMBUS_MESSAGE_SINT)).toBe(0);
    // Timing: first at messageDeliveryNs (5 µs), each later one 20 µs handler + 1 µs EOM later.
    expect(sim.now).toBe(5_000 + 49 * 21_000 + 20_000);
  });

  it("keeps a message queued until the guest releases the slot; an EOM without msg_pending is not needed", async () => {
    const { sim, hv, vm } = setup();
    const v = vm.vcpus[0]!;
    hv.postMessageToGuest(vm, Uint8Array.of(1));
    await sim.scheduler.runUntilIdle();
    hv.postMessageToGuest(vm, Uint8Array.of(2));
    await sim.scheduler.runUntilIdle();
    // Second message found the slot busy: msg_pending set, still queued.
    expect(v.synic.messagePending(VMBUS_MESSAGE_SINT)).toBe(true);
    expect(v.synic.queuedMessages(VMBUS_MESSAGE_SINT)).toBe(1);
    expect(v.synic.readMessage(VMBUS_MESSAGE_SINT).payload[0]).toBe(1);
    // A stale EOM (wrong type) changes nothing.
    expect(v.synic.endOfMessage(VMBUS_MESSAGE_SINT, 7)).toBe(false);
    expect(v.synic.endOfMessage(VMBUS_MESSAGE_SINT, 1)).toBe(true);
    expect(v.counters.eomMsrWrites).toBe(1);
    await sim.scheduler.runUntilIdle();
    expect(v.synic.readMessage(VMBUS_MESSAGE_SINT).payload[0]).toBe(2);
    expect(v.synic.messagePending(VMBUS_MESSAGE_SINT)).toBe(false);
    expect(v.synic.endOfMessage(VMBUS_MESSAGE_SINT, 1)).toBe(true);
    expect(v.counters.eomMsrWrites).toBe(1); // no msg_pending → no MSR write
  });

  it("bounds the per-SINT queue: a post beyond it gets HV_STATUS_INSUFFICIENT_BUFFERS", () => {
    const { hv, vm } = setup({ messageQueueDepth: 4 });
    const st = Array.from({ length: 6 }, () => hv.postMessageToGuest(vm, new Uint8Array(1)));
    expect(st).toEqual([0, 0, 0, 0, HV_STATUS_INSUFFICIENT_BUFFERS, HV_STATUS_INSUFFICIENT_BUFFERS]);
    expect(vm.counters.messagesRejected).toBe(2);
  });
});

describe("guest → host HVCALL_POST_MESSAGE", () => {
  it("returns the documented statuses and counts every hypercall per VM, vCPU and kind", () => {
    const { hv, vm } = setup();
    hv.connectMessagePort(vm, 4, () => {});
    hv.connectEvent(vm, 0x2000, () => {});
    const v = vm.vcpus[1]!;
    expect(v.postMessage(4, 1, new Uint8Array(240))).toBe(HV_STATUS_SUCCESS);
    expect(v.postMessage(4, 1, new Uint8Array(241))).toBe(HV_STATUS_INVALID_PARAMETER);
    expect(v.postMessage(4, HVMSG_NONE, new Uint8Array(4))).toBe(HV_STATUS_INVALID_PARAMETER);
    expect(v.postMessage(4, 0x80000010, new Uint8Array(4))).toBe(HV_STATUS_INVALID_PARAMETER);
    expect(v.postMessage(1, 1, new Uint8Array(4))).toBe(HV_STATUS_INVALID_CONNECTION_ID);
    expect(v.postMessage(0x2000, 1, new Uint8Array(4))).toBe(HV_STATUS_INVALID_CONNECTION_ID); // an event, not a port
    expect(v.signalEvent(0x2000)).toBe(HV_STATUS_SUCCESS);
    expect(v.signalEvent(4)).toBe(HV_STATUS_INVALID_CONNECTION_ID);
    expect(v.counters.hypercalls.postMessage).toBe(6);
    expect(v.counters.hypercalls.signalEvent).toBe(2);
    expect(v.counters.hypercalls.total).toBe(8);
    expect(vm.vcpus[0]!.counters.hypercalls.total).toBe(0);
    expect(vm.counters.hypercalls.postMessage).toBe(6);
    expect(vm.counters.hypercalls.signalEvent).toBe(2);
  });

  it("copies the payload at hypercall time and delivers after hypercall + delivery latency", async () => {
    const { sim, hv, vm } = setup();
    const got: { t: number; m: HostMessage }[] = [];
    hv.connectMessagePort(vm, 4, (m) => void got.push({ t: sim.now, m }));
    const buf = Uint8Array.of(1, 2, 3);
    vm.vcpus[1]!.postMessage(4, 1, buf);
    buf[0] = 99; // the guest reuses its buffer at once
    await sim.scheduler.runUntilIdle();
    expect(got).toHaveLength(1);
    expect(got[0]!.t).toBe(sim.costs.hypercallNs + sim.costs.messageDeliveryNs);
    expect(Array.from(got[0]!.m.payload)).toEqual([1, 2, 3]);
    expect(got[0]!.m.vpIndex).toBe(1);
    expect(got[0]!.m.messageType).toBe(1);
  });

  it("fails beyond the port's queue bound with 0x13; the guest retry helper backs off and succeeds, in order", async () => {
    const { sim, hv, vm } = setup({ messageQueueDepth: 8 });
    const got: number[] = [];
    hv.connectMessagePort(vm, 4, async (m) => {
      got.push(m.payload[0]!);
      await sim.scheduler.sleep(50_000); // a slow host port
    });
    const v = vm.vcpus[0]!;
    const statuses = Array.from({ length: 10 }, (_, i) => v.postMessage(4, 1, Uint8Array.of(i)));
    expect(statuses.slice(0, 8).every((s) => s === HV_STATUS_SUCCESS)).toBe(true);
    expect(statuses.slice(8)).toEqual([HV_STATUS_INSUFFICIENT_BUFFERS, HV_STATUS_INSUFFICIENT_BUFFERS]);

    const result = await sim.scheduler.runUntilSettled(postMessageWithRetry(v, 4, 1, Uint8Array.of(100)));
    expect(result.status).toBe(HV_STATUS_SUCCESS);
    expect(result.attempts).toBeGreaterThan(1);
    // Linux backoff: 1, 2, 4, … µs → after k failures, (2^k − 1) µs waited.
    expect(result.backoffNs).toBe((2 ** (result.attempts - 1) - 1) * 1_000);
    await sim.scheduler.runUntilIdle();
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 100]);
    expect(vm.counters.messagesRejected).toBe(2 + (result.attempts - 1));
  });

  it("stops retrying on INVALID_CONNECTION_ID when asked (INITIATE_CONTACT) and on INVALID_PARAMETER always", async () => {
    const { sim, vm } = setup();
    const v = vm.vcpus[0]!;
    const a = await sim.scheduler.runUntilSettled(postMessageWithRetry(v, 4, 1, new Uint8Array(4), { abortOnInvalidConnectionId: true }));
    expect(a).toEqual({ status: HV_STATUS_INVALID_CONNECTION_ID, attempts: 1, backoffNs: 0 });
    const b = await sim.scheduler.runUntilSettled(postMessageWithRetry(v, 4, 1, new Uint8Array(300)));
    expect(b).toEqual({ status: HV_STATUS_INVALID_PARAMETER, attempts: 1, backoffNs: 0 });
    const c = await sim.scheduler.runUntilSettled(postMessageWithRetry(v, 4, 1, new Uint8Array(4), { maxRetries: 5 }));
    expect(c).toEqual({ status: HV_STATUS_INVALID_CONNECTION_ID, attempts: 5, backoffNs: 31_000 });
  });
});
