/**
 * Regression (found by the fuzz target chan-host-to-client, seed 7): two
 * control requests of the guest client with the same response key — two
 * MODIFYCHANNELs of one channel in flight — must each get one response, in
 * order, as Linux completes the first matching `chn_msg_list` entry. The
 * second used to replace the first in the waiter table, and the first
 * `setTargetCpu` never settled.
 *
 * Regression (chan-host-to-client, seed 77): a forged failing
 * OPENCHANNEL_RESULT made the guest tear down the ring GPADL while the
 * server was opening the channel on it; the server never answered the
 * teardown and the open hung. Every control request now has a timeout.
 */
import { describe, expect, it } from "vitest";
import { CHANNELMSG_OPENCHANNEL, ErrnoError, InvalidArgumentError, VMBUS_CONTROL_TIMEOUT_NS } from "../../core/index.js";
import { bootEcho } from "../system/helpers.js";

describe("VMBus client: waiters with the same key", () => {
  it("two concurrent MODIFYCHANNELs of one channel both settle", async () => {
    const { sys, vm, echo } = await bootEcho({ devices: 1, vcpus: 2 });
    const ch = echo[0]!.channel;
    const unexpected = vm.client.counters.unexpectedMessages;
    const both = Promise.all([ch.setTargetCpu(1), ch.setTargetCpu(1)]);
    await sys.run(both);
    expect(ch.targetCpu).toBe(1);
    // Both MODIFYCHANNEL_RESPONSEs were taken by a waiter.
    expect(vm.client.counters.unexpectedMessages).toBe(unexpected);
    expect(vm.server.channel(ch.relid)!.counters.retargets).toBe(2);
  });

  it("a rescind fails every waiter of the channel, not only the newest", async () => {
    const { sys, vm, echo } = await bootEcho({ devices: 1, vcpus: 2 });
    const ch = echo[0]!.channel;
    const outcomes = [ch.setTargetCpu(1), ch.setTargetCpu(1)].map((p) => p.then(() => "ok", (e: unknown) => (e as Error).name));
    // The host rescinds before the responses can arrive (they are posted after the rescind).
    const dev = vm.server.devices()[0]!;
    void vm.server.rescind(dev);
    const r = await sys.run(Promise.all(outcomes));
    expect(r).toHaveLength(2);
    for (const o of r) expect(["ok", "ErrnoError"]).toContain(o);
  });
});

describe("VMBus client: control requests time out", () => {
  it("a host that never answers OPENCHANNEL: open fails with ETIMEDOUT after controlTimeoutNs of virtual time; a late answer is counted unexpected", async () => {
    const { sys, vm, echo } = await bootEcho({ devices: 2, vcpus: 2 });
    const [victim, bystander] = echo;
    const ch = victim!.channel;
    await sys.run(ch.close());
    // The host's message port drops OPENCHANNEL (and only that) while `withhold` is set.
    const ports = vm.partition.messagePorts;
    const port = ports.get(vm.client.msgConnId)!;
    let withhold = true;
    let withheld: Parameters<typeof port.handler>[0] | null = null;
    ports.delete(vm.client.msgConnId);
    sys.hv.connectMessagePort(vm.partition, vm.client.msgConnId, (m) => {
      if (withhold && m.payload[0] === CHANNELMSG_OPENCHANNEL) {
        withheld = m;
        return;
      }
      return port.handler(m);
    });
    vm.client.setControlTimeout(2_000_000);
    const t0 = sys.sim.now;
    const outcome = ch.open({ sendRingBytes: 16384, recvRingBytes: 16384 }).then(
      () => null,
      (e: unknown) => e,
    );
    const err = await sys.run(outcome);
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).errno).toBe("ETIMEDOUT");
    expect((err as ErrnoError).message).toContain(`open ${ch.relid}`);
    expect(vm.client.controlTimeouts).toBe(1);
    // Bounded: the timeout plus the GPADL round trips around it.
    expect(sys.sim.now - t0).toBeGreaterThanOrEqual(2_000_000);
    expect(sys.sim.now - t0).toBeLessThan(3_000_000);
    // The host answers after all: nobody waits for it any more.
    withhold = false;
    const unexpected = vm.client.counters.unexpectedMessages;
    expect(withheld).not.toBeNull();
    await sys.run(Promise.resolve(port.handler(withheld!)));
    await sys.sim.scheduler.runFor(1_000_000);
    expect(vm.client.counters.unexpectedMessages).toBe(unexpected + 1);
    // The other device still echoes.
    const reply = await sys.run(bystander!.echo(new Uint8Array(64).fill(7)));
    expect(reply).toEqual(new Uint8Array(64).fill(7));
  });

  it("controlTimeoutNs must be a positive safe integer", async () => {
    const { vm } = await bootEcho({ devices: 1, vcpus: 1 });
    expect(() => vm.client.setControlTimeout(0)).toThrow(/controlTimeoutNs=0/);
    expect(() => vm.client.setControlTimeout(1.5)).toThrow(InvalidArgumentError);
    expect(vm.client.controlTimeoutNs).toBe(VMBUS_CONTROL_TIMEOUT_NS);
  });
});
