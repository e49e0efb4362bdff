/**
 * Disks addressed by path, target and LUN, end to end: the storvsc guest
 * against the storvsp host (storagePlugin). A Linux guest scans SCSI
 * channels 0..7 (STORVSC_MAX_CHANNELS − 1), target ids 0..1
 * (STORVSC_MAX_TARGETS) and LUNs up to 255 (STORVSC_MAX_LUNS_PER_TARGET);
 * a disk anywhere in that space must appear and work, and the disk config
 * refuses any address outside it (a disk there would never be found).
 */
import { describe, expect, it } from "vitest";
import { VmbusSystem } from "../../../../core/index.js";
import {
  DiskSpecError,
  STORVSC_MAX_CHANNELS,
  STORVSC_MAX_LUNS_PER_TARGET,
  STORVSC_MAX_TARGETS,
  StorvscDriver,
  StorvspDevice,
  storagePlugin,
  type RescanResult,
} from "../../../../drivers/storvsc/index.js";
import { pattern } from "./scripted-host.js";

const MiB = 1024 * 1024;

async function boot(disks: unknown[]) {
  const sys = new VmbusSystem({ seed: 7, plugins: [storagePlugin] });
  const vm = sys.addVm({ name: "vm1", vcpus: 2, memoryBytes: 64 * MiB });
  sys.addHostDevice(vm, "storvsp", { config: { disks } });
  await sys.boot();
  const drv = vm.drivers<StorvscDriver>("storvsc")[0]!;
  const host = vm.server.devices()[0]!.handler as StorvspDevice;
  return { sys, vm, drv, host };
}

describe("storvsc ↔ storvsp: disks at every address Linux scans", () => {
  it("the corners of the scanned space (path 7, target 1, LUN 255) and a mid address appear and keep their data apart", async () => {
    const lastPath = STORVSC_MAX_CHANNELS - 1;
    const lastTarget = STORVSC_MAX_TARGETS - 1;
    const { sys, drv, host } = await boot([
      { kind: "memory", sizeBytes: 1 * MiB, lun: 0 },
      { kind: "memory", sizeBytes: 2 * MiB, pathId: 3, lun: 9 },
      { kind: "memory", sizeBytes: 3 * MiB, pathId: lastPath, targetId: lastTarget, lun: STORVSC_MAX_LUNS_PER_TARGET },
      { kind: "memory", sizeBytes: 4 * MiB, pathId: lastPath, targetId: lastTarget, lun: 0 },
    ]);
    expect(drv.disks.map((d) => [d.address, d.capacityBytes])).toEqual([
      ["0:0:0", BigInt(1 * MiB)],
      ["3:0:9", BigInt(2 * MiB)],
      ["7:1:0", BigInt(4 * MiB)],
      ["7:1:255", BigInt(3 * MiB)],
    ]);
    // The same LBA on each disk gets its own bytes; each lands on the host's disk at that address.
    const data = drv.disks.map((_, i) => pattern(4096, 100 + i));
    await sys.run(Promise.all(drv.disks.map((d, i) => d.write(16, data[i]!))));
    const back = await sys.run(Promise.all(drv.disks.map((d) => d.read(16, 8))));
    expect(back).toEqual(data);
    for (const [i, d] of drv.disks.entries()) {
      const lun = host.lunAt(d.lun, d.pathId, d.targetId)!;
      const onHost = new Uint8Array(4096);
      await sys.run(lun.backend.read(16, 8, onHost));
      expect(onHost, d.address).toEqual(data[i]);
    }
  });

  it("a disk hot-added at path 6 / target 1 is found by the ENUMERATE_BUS rescan and does I/O", async () => {
    const { sys, drv, host } = await boot([{ kind: "memory", sizeBytes: 1 * MiB }]);
    const rescanned = new Promise<RescanResult>((resolve) => drv.onRescan(resolve));
    expect(host.addDisk({ kind: "memory", sizeBytes: 1 * MiB, pathId: 6, targetId: 1, lun: 2 })).toEqual({ pathId: 6, targetId: 1, lun: 2 });
    const r = await sys.run(rescanned);
    expect(r.added.map((d) => d.address)).toEqual(["6:1:2"]);
    const d = drv.disk(2, 1, 6)!;
    const data = pattern(1024, 5);
    await sys.run(d.write(0, data));
    expect(await sys.run(d.read(0, 2))).toEqual(data);
    expect(host.lunAt(2, 6, 1)!.stats.commands).toBeGreaterThan(0);
  });

  it("an address Linux never scans is refused up front, naming the field, value and limit", async () => {
    const { host } = await boot([{ kind: "memory", sizeBytes: 1 * MiB }]);
    const sent = host.counters.enumerateBusSent;
    for (const [spec, field, value, max] of [
      [{ pathId: STORVSC_MAX_CHANNELS }, "disk.pathId", 8, 7],
      [{ targetId: STORVSC_MAX_TARGETS }, "disk.targetId", 2, 1],
      [{ lun: STORVSC_MAX_LUNS_PER_TARGET + 1 }, "disk.lun", 256, 255],
    ] as const) {
      let err: unknown;
      try {
        host.addDisk({ kind: "memory", sizeBytes: 1 * MiB, ...spec });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(DiskSpecError);
      const e = err as DiskSpecError;
      expect([e.field, e.value]).toEqual([field, value]);
      expect(e.limit).toContain(`[0, ${max}]`);
    }
    // Nothing was attached, so the guest was not told of anything.
    expect(host.counters.enumerateBusSent).toBe(sent);
    expect(host.lunAt(0, 8, 0)).toBeUndefined();
  });

  it("a controller config with such an address does not boot a device", () => {
    const sys = new VmbusSystem({ seed: 7, plugins: [storagePlugin] });
    const vm = sys.addVm({ name: "vm1", vcpus: 1, memoryBytes: 64 * MiB });
    expect(() => sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: MiB, targetId: 2 }] } })).toThrow(
      /disks\[0\]\.targetId=2: must be an integer in \[0, 1\]/,
    );
  });
});
