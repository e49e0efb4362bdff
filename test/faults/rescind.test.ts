/**
 * Fault: the host rescinds a device while I/O is in flight. Every
 * outstanding request fails with a typed error at once, later ones are
 * refused, nothing is lost or completed twice, and the rest of the VM (its
 * NIC, the other VM) carries on.
 */
import { describe, expect, it } from "vitest";
import { VmbusSimError } from "../../core/index.js";
import { Ledger, MS, US, bootRig, pattern } from "./helpers.js";

describe("rescind with I/O in flight", () => {
  it("storage: in-flight and later requests fail with typed errors, once each; the NIC carries on", async () => {
    const { sys, vms } = await bootRig({ seed: 13, vms: 2, nic: true, diskLatencyNs: 500 * US });
    const [a, b] = vms as [(typeof vms)[0], (typeof vms)[0]];
    const ledger = new Ledger(sys);
    const inFlight = Array.from({ length: 24 }, (_, lba) => ledger.track(a.vm.partition.vcpus[lba % 2]!.issue(() => a.disk.write(lba, pattern(512, lba, 1)))));
    await sys.run(sys.sim.scheduler.sleep(100 * US));
    expect(a.storvsc.outstandingCommands).toBe(24);
    const t0 = sys.sim.now;
    const rescinded = a.vm.server.rescind(a.storageHost);
    const out = await sys.run(Promise.all(inFlight));
    // Failed at the rescind, not after the backend's latency or a timeout.
    expect(out.every((o) => !o.ok)).toBe(true);
    expect(Math.max(...out.map((o) => o.atNs)) - t0).toBeLessThan(1 * MS);
    for (const o of out) if (!o.ok) expect(o.error).toBeInstanceOf(VmbusSimError);
    await sys.run(rescinded);
    expect(a.disk.gone).toBe(true);
    const after = await sys.run(ledger.track(a.disk.read(0, 1)));
    expect(!after.ok && after.error instanceof VmbusSimError).toBe(true);
    expect(a.storvsc.outstandingCommands).toBe(0);
    // The NIC of the same VM and the other VM's disk still work.
    let got = 0;
    b.nic!.onReceive(() => got++);
    const frame = new Uint8Array(64);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x02], 0);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x01], 6);
    expect((await sys.run(ledger.track(a.nic!.send(frame)))).ok).toBe(true);
    await sys.run(sys.sim.scheduler.sleep(1 * MS));
    expect(got).toBe(1);
    expect((await sys.run(ledger.track(b.disk.write(5, pattern(512, 5, 2))))).ok).toBe(true);
    ledger.expectSettledOnce();
    expect(ledger.failed).toBe(25);
    const types = Object.keys(ledger.failuresByType);
    expect(types.length).toBeGreaterThan(0);
    for (const t of types) expect(t).toMatch(/^(CHANNEL_RESCINDED|CHANNEL_CLOSED|STORVSC_REMOVED|STORVSC_DISK_GONE)$/);
  });

  it("network: frames being sent when the NIC is rescinded fail with a typed error; storage carries on", async () => {
    const { sys, vms } = await bootRig({ seed: 14, vms: 2, nic: true });
    const [a] = vms as [(typeof vms)[0]];
    const ledger = new Ledger(sys);
    const frame = new Uint8Array(1000);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x02], 0);
    frame.set([0x00, 0x15, 0x5d, 0x00, 0x00, 0x01], 6);
    // A stalled host keeps the sends in flight until the rescind.
    sys.hv.faults.stallHostDevice(a.nicHost!);
    const sends = Array.from({ length: 32 }, () => ledger.track(a.nic!.send(frame)));
    await sys.run(sys.sim.scheduler.sleep(1 * MS));
    await sys.run(a.vm.server.rescind(a.nicHost!));
    const out = await sys.run(Promise.all(sends));
    expect(out.every((o) => !o.ok && o.error instanceof VmbusSimError)).toBe(true);
    expect(a.nic!.removed).toBe(true);
    const late = await sys.run(ledger.track(a.nic!.send(frame)));
    expect(!late.ok && late.error instanceof VmbusSimError && late.error.code).toBe("NETVSC_REMOVED");
    expect((await sys.run(ledger.track(a.disk.write(1, pattern(512, 1, 1))))).ok).toBe(true);
    ledger.expectSettledOnce();
  });
});
