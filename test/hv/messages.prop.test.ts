import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HV_STATUS_INSUFFICIENT_BUFFERS, HV_STATUS_SUCCESS, Hypervisor, installVmbusIsr } from "../../core/hv/index.js";
import { Simulation } from "../../core/sim/index.js";

describe("SynIC message handshake (properties)", () => {
  it("delivers every accepted message exactly once, in order, whatever the post times and handler delays", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 50_000 }), handleNs: fc.integer({ min: 0, max: 20_000 }) }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 8 }),
        async (msgs, depth) => {
          const sim = new Simulation({ costs: { messageQueueDepth: depth } });
          const hv = new Hypervisor(sim);
          const vm = hv.createVm();
          const accepted: number[] = [];
          const received: number[] = [];
          installVmbusIsr(vm, {
            lookupChannel: () => undefined,
            onMessage: async (vcpu, sint) => {
              const m = vcpu.synic.readMessage(sint);
              const id = m.payload[0]!;
              received.push(id);
              await sim.scheduler.sleep(msgs[id]!.handleNs);
              vcpu.synic.endOfMessage(sint, m.messageType);
            },
          });
          msgs.forEach((m, id) => {
            sim.scheduler.scheduleAt(m.at, () => {
              const st = hv.postMessageToGuest(vm, Uint8Array.of(id));
              expect([HV_STATUS_SUCCESS, HV_STATUS_INSUFFICIENT_BUFFERS]).toContain(st);
              if (st === HV_STATUS_SUCCESS) accepted.push(id);
            });
          });
          await sim.scheduler.runUntilIdle();
          expect(received).toEqual(accepted);
          expect(vm.counters.eoms).toBe(accepted.length);
          expect(vm.counters.messagesRejected).toBe(msgs.length - accepted.length);
          expect(vm.vcpus[0]!.synic.queuedMessages(2)).toBe(0);
          expect(vm.vcpus[0]!.synic.messageType(2)).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });
});
