/**
 * The host thread's side of the link, run in this thread (no worker): what
 * the guest thread puts in the mailbox is untrusted input. Packets with a
 * short header, an oversized payload size or an unknown VP are dropped and
 * counted; a well-formed message to a port that does not exist is refused
 * by the hypervisor's own checks. Then a STOP ends the host's run.
 */
import { describe, expect, it } from "vitest";
import {
  GuestMemory,
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HostThread,
  Hypervisor,
  RingBuffer,
  RingWriter,
  Simulation,
  createLinkBuffers,
  readLinkCounters,
  type HostThreadParams,
} from "../../core/index.js";
import { storagePlugin } from "../../drivers/storvsc/index.js";

function u32s(...v: number[]): Uint8Array {
  const b = new Uint8Array(v.length * 4);
  const dv = new DataView(b.buffer);
  v.forEach((x, i) => dv.setUint32(i * 4, x >>> 0, true));
  return b;
}

describe("host thread: mailbox input is validated", () => {
  it("drops malformed mailbox packets, counts them, and stops on request", async () => {
    const link = createLinkBuffers();
    const mailbox = new RingBuffer(new Uint8Array(link.mailbox), "mailbox");
    mailbox.init();
    const memory = new GuestMemory({ bytes: 4 * 1024 * 1024 });
    const guestSide = new Hypervisor(new Simulation()).createVm({ vcpuCount: 2, memory });
    const params: HostThreadParams = {
      tag: "vmbus-sim-host-thread",
      link,
      memory: memory.buffer,
      vmName: "vm1",
      vpIndexes: [0, 1],
      layout: guestSide.layout,
      seed: 1,
      plugins: [],
      devices: [{ type: "storvsp", config: { disks: [{ kind: "memory", sizeBytes: 1024 * 1024 }] } }],
      maxLeadNs: 1_000_000,
    };
    const host = new HostThread(params, [storagePlugin]);
    const w = new RingWriter(mailbox);
    expect(w.writeInband(0, u32s(0))).toBe(true); // 4 bytes (8 with padding): no room for the 16-byte header
    expect(w.writeInband(0, u32s(0, 1, 1, HV_MESSAGE_PAYLOAD_BYTE_COUNT + 1))).toBe(true); // size > 240
    expect(w.writeInband(0, u32s(0, 1, 1, 64))).toBe(true); // size beyond the packet
    expect(w.writeInband(0, u32s(7, 1, 1, 0))).toBe(true); // VP 7 is not a VP of vm1
    expect(w.writeInband(0, u32s(1, 0x777, 1, 0))).toBe(true); // well-formed, no such port
    w.commit();
    const words = new Int32Array(link.control);
    // Ring the host, then ask it to stop (state word 32 = STOP, 2).
    Atomics.add(words, 0, 1);
    Atomics.store(words, 32, 2);
    Atomics.add(words, 0, 1);
    const report = await host.run();
    const c = readLinkCounters(words);
    expect(c.mailboxMessages).toBe(5);
    expect(c.mailboxMalformed).toBe(4);
    // Neither the malformed packets nor the unknown port reached the server.
    expect((report.server as { malformedMessages: number }).malformedMessages).toBe(0);
    expect((report.partition as { messagesToHost: number }).messagesToHost).toBe(0);
    expect(report.devices.map((d) => d.type)).toEqual(["storvsp"]);
    // The mailbox was drained completely.
    expect(mailbox.loadReadIndex()).toBe(mailbox.loadWriteIndex());
  });
});
