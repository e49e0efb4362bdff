/**
 * Fault: backend I/O errors on an LBA range, installed and removed while
 * the simulation runs. Requests touching the range fail with a typed
 * MEDIUM ERROR naming the LBA; the others complete with their data.
 */
import { describe, expect, it } from "vitest";
import { MediumError } from "../../drivers/storvsc/index.js";
import { Ledger, bootRig, pattern } from "./helpers.js";

describe("disk errors on an LBA range", () => {
  it("reads in the range fail with MediumError naming the LBA; others complete intact; healing the range restores the data", async () => {
    const { sys, vms } = await bootRig({ seed: 15 });
    const { vm, disk, storvsp } = vms[0]!;
    const ledger = new Ledger(sys);
    const vcpus = vm.partition.vcpus;
    await sys.run(Promise.all(Array.from({ length: 64 }, (_, lba) => ledger.track(vcpus[lba % 2]!.issue(() => disk.write(lba, pattern(512, lba, 1)))))));
    const faults = storvsp.lunAt(disk.lun)!.disk.faults;
    const id = faults.addFault({ firstLba: 20, count: 8, op: "read", kind: "medium-error" });
    const reads = await sys.run(Promise.all(Array.from({ length: 64 }, (_, lba) => ledger.track(vcpus[lba % 2]!.issue(() => disk.read(lba, 1))))));
    reads.forEach((o, lba) => {
      if (lba >= 20 && lba < 28) {
        expect(o.ok).toBe(false);
        if (!o.ok) {
          expect(o.error).toBeInstanceOf(MediumError);
          expect((o.error as MediumError).lba).toBe(BigInt(lba));
        }
      } else {
        expect(o.ok && o.value).toEqual(pattern(512, lba, 1));
      }
    });
    // Writes are not in the rule: they still land.
    expect((await sys.run(ledger.track(disk.write(21, pattern(512, 21, 2))))).ok).toBe(true);
    expect(faults.faults[0]!.hits).toBe(8);
    faults.removeFault(id);
    const healed = await sys.run(ledger.track(disk.read(20, 8)));
    expect(healed.ok).toBe(true);
    if (healed.ok) for (let i = 0; i < 8; i++) expect(healed.value.subarray(i * 512, (i + 1) * 512)).toEqual(pattern(512, 20 + i, i === 1 ? 2 : 1));
    ledger.expectSettledOnce();
    expect(ledger.failuresByType).toEqual({ SCSI_MEDIUM_ERROR: 8 });
  });
});
