/**
 * Regression (found by the fuzz target chan-host-to-client, seed 7): two
 * control requests of the guest client with the same response key — two
 * MODIFYCHANNELs of one channel in flight — must each get one response, in
 * order, as Linux completes the first matching `chn_msg_list` entry. The
 * second used to replace the first in the waiter table, and the first
 * `setTargetCpu` never settled.
 */
import { describe, expect, it } from "vitest";
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
