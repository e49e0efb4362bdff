/**
 * Fault injection: a host device that stops answering (for a window or for
 * ever), and its consequence when the guest keeps sending: a ring full for
 * a long time, with senders waiting on pending_send_sz.
 */
import { describe, expect, it } from "vitest";
import { ECHO_MAX_DATA } from "../../drivers/echo/index.js";
import { StorvscTimeoutError } from "../../drivers/storvsc/index.js";
import { Ledger, MS, bootRig, pattern } from "./helpers.js";

describe("host stall", () => {
  it("a stalled storvsp keeps the requests in the ring; they complete, once each, when it comes back; the other VM carries on", async () => {
    const { sys, vms } = await bootRig({ seed: 9, vms: 2 });
    const [a, b] = vms as [(typeof vms)[0], (typeof vms)[0]];
    const t0 = sys.sim.now;
    const taken = () => a.storvsp.channelStats().reduce((s, c) => s + c.requests, 0);
    const takenBefore = taken();
    const f = sys.hv.faults.stallHostDevice(a.storageHost, { startNs: t0, durationNs: 30 * MS });
    expect(a.storageHost.stalled).toBe(true);
    const ledger = new Ledger(sys);
    const writes = Array.from({ length: 16 }, (_, lba) => ledger.track(a.vm.partition.vcpus[lba % 2]!.issue(() => a.disk.write(lba, pattern(512, lba, 1)))));
    // Meanwhile the other VM's disk answers as usual.
    const other = await sys.run(ledger.track(b.disk.write(0, pattern(512, 0, 9))));
    expect(other.ok).toBe(true);
    expect(sys.sim.now - t0).toBeLessThan(1 * MS);
    await sys.run(sys.sim.scheduler.sleep(10 * MS));
    // Nothing taken: the guest → host rings still hold the packets.
    const unread = a.storvsc.channels.filter((c) => c.outbound !== null && c.outbound.loadWriteIndex() !== c.outbound.loadReadIndex());
    expect(unread.length).toBeGreaterThan(0);
    expect(taken()).toBe(takenBefore);
    const done = await sys.run(Promise.all(writes));
    expect(done.every((o) => o.ok)).toBe(true);
    expect(Math.min(...done.map((o) => o.atNs)) - t0).toBeGreaterThanOrEqual(30 * MS);
    expect(f.state).toBe("ended");
    expect(a.storageHost.stalled).toBe(false);
    const deferred = a.storageHost.channels().reduce((s, c) => s + c.counters.wakeupsDeferred, 0);
    expect(deferred).toBeGreaterThan(0);
    const back = await sys.run(ledger.track(a.disk.read(0, 16)));
    expect(back.ok).toBe(true);
    if (back.ok) for (let i = 0; i < 16; i++) expect(back.value.subarray(i * 512, (i + 1) * 512)).toEqual(pattern(512, i, 1));
    ledger.expectSettledOnce();
  });

  it("a host that never comes back: every request fails with a typed timeout in bounded virtual time, later ones too; the NIC and the other VM carry on", async () => {
    const { sys, vms } = await bootRig({ seed: 10, vms: 2, nic: true, storvsc: { requestTimeoutNs: 20 * MS } });
    const [a, b] = vms as [(typeof vms)[0], (typeof vms)[0]];
    const f = sys.hv.faults.stallHostDevice(a.storageHost);
    expect(f.endNs).toBeNull();
    const ledger = new Ledger(sys);
    const t0 = sys.sim.now;
    const reads = Array.from({ length: 8 }, (_, lba) => ledger.track(a.vm.partition.vcpus[lba % 2]!.issue(() => a.disk.read(lba, 1))));
    let got = 0;
    b.nic!.onReceive(() => got++);
    const frame = new Uint8Array(60);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x02], 0);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x01], 6);
    const sends = Array.from({ length: 4 }, () => ledger.track(a.nic!.send(frame)));
    const out = await sys.run(Promise.all([...reads, ...sends]));
    expect(out.slice(0, 8).every((o) => !o.ok && o.error instanceof StorvscTimeoutError)).toBe(true);
    expect(Math.max(...out.slice(0, 8).map((o) => o.atNs)) - t0).toBe(20 * MS);
    expect(out.slice(8).every((o) => o.ok)).toBe(true);
    expect(got).toBe(4);
    const late = await sys.run(ledger.track(a.disk.write(1, pattern(512, 1, 1))));
    expect(!late.ok && late.error instanceof StorvscTimeoutError).toBe(true);
    expect((await sys.run(ledger.track(b.disk.read(0, 1)))).ok).toBe(true);
    ledger.expectSettledOnce();
    expect(ledger.failuresByType).toEqual({ STORVSC_TIMEOUT: 9 });
    f.remove();
    expect(a.storageHost.stalled).toBe(false);
  });

  it("a full ring for a long time: senders wait on pending_send_sz and resume when the host comes back; every reply intact, once", async () => {
    const { sys, vms } = await bootRig({ seed: 12, echo: true, vcpus: 1 });
    const { echo, echoHost, vm } = vms[0]!;
    const ch = echo!.channel;
    const rng = sys.sim.rng.fork("payloads");
    const t0 = sys.sim.now;
    const f = sys.hv.faults.stallHostDevice(echoHost!, { durationNs: 40 * MS });
    const ledger = new Ledger(sys);
    const payloads = Array.from({ length: 24 }, () => rng.bytes(ECHO_MAX_DATA));
    const replies = payloads.map((p) => ledger.track(vm.partition.vcpus[0]!.issue(() => echo!.echo(p))));
    await sys.run(sys.sim.scheduler.sleep(20 * MS));
    // The 12 KiB ring took what fit; the rest wait, with pending_send_sz announced.
    const out = ch.outbound!;
    expect(ch.endpoint!.blockedSenders).toBeGreaterThan(0);
    expect(out.loadPendingSendSize()).toBeGreaterThan(0);
    expect(ch.outFullTotal).toBeGreaterThan(0);
    expect(echo!.completed).toBe(0);
    const done = await sys.run(Promise.all(replies));
    done.forEach((o, i) => {
      expect(o.ok).toBe(true);
      if (o.ok) expect(o.value).toEqual(payloads[i]);
      expect(o.atNs - t0).toBeGreaterThanOrEqual(40 * MS);
    });
    expect(ch.endpoint!.blockedSenders).toBe(0);
    expect(out.loadPendingSendSize()).toBe(0);
    expect(f.state).toBe("ended");
    ledger.expectSettledOnce();
    expect(ledger.completed).toBe(24);
  });
});
