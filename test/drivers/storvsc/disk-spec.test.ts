/**
 * The disk config's address rules: a disk may sit only where a Linux
 * storvsc guest looks for one — SCSI channel (path_id) 0..7, target 0..1,
 * LUN 0..255 (storvsc_drv.c: max_channel = STORVSC_MAX_CHANNELS − 1,
 * max_id = STORVSC_MAX_TARGETS, max_lun = STORVSC_MAX_LUNS_PER_TARGET).
 */
import { describe, expect, it } from "vitest";
import {
  DISK_ADDRESS_LIMITS,
  DiskSpecError,
  STORVSC_MAX_CHANNELS,
  STORVSC_MAX_LUNS_PER_TARGET,
  STORVSC_MAX_TARGETS,
  validateDiskSpec,
} from "../../../drivers/storvsc/index.js";

const base = { kind: "memory", sizeBytes: 4096 } as const;

function refusal(spec: unknown, where?: string): DiskSpecError {
  try {
    validateDiskSpec(spec, where);
  } catch (e) {
    if (e instanceof DiskSpecError) return e;
    throw e;
  }
  throw new Error(`accepted ${JSON.stringify(spec)}`);
}

describe("disk spec: addresses a Linux guest scans", () => {
  it("the limits are the guest's scan limits", () => {
    expect(STORVSC_MAX_CHANNELS).toBe(8);
    expect(STORVSC_MAX_TARGETS).toBe(2);
    expect(STORVSC_MAX_LUNS_PER_TARGET).toBe(255);
    expect(DISK_ADDRESS_LIMITS.pathId.max).toBe(STORVSC_MAX_CHANNELS - 1);
    expect(DISK_ADDRESS_LIMITS.targetId.max).toBe(STORVSC_MAX_TARGETS - 1);
    expect(DISK_ADDRESS_LIMITS.lun.max).toBe(STORVSC_MAX_LUNS_PER_TARGET);
  });

  it("accepts every corner of the scanned space and keeps the address", () => {
    for (const pathId of [0, 7]) {
      for (const targetId of [0, 1]) {
        for (const lun of [0, 255]) {
          expect(validateDiskSpec({ ...base, pathId, targetId, lun })).toMatchObject({ pathId, targetId, lun });
        }
      }
    }
    // Unset means "default" (0, 0, lowest free LUN), not a value.
    const d = validateDiskSpec(base);
    expect([d.pathId, d.targetId, d.lun]).toEqual([undefined, undefined, undefined]);
  });

  it.each([
    ["pathId", 8, 7, /disks\[1\]\.pathId=8: must be an integer in \[0, 7\] \(Linux storvsc scans SCSI channels 0\.\.max_channel = STORVSC_MAX_CHANNELS − 1; a disk beyond is never found\)/],
    ["pathId", 255, 7, /disks\[1\]\.pathId=255: must be an integer in \[0, 7\]/],
    ["targetId", 2, 1, /disks\[1\]\.targetId=2: must be an integer in \[0, 1\] \(Linux storvsc scans target ids 0\.\.max_id − 1, max_id = STORVSC_MAX_TARGETS/],
    ["targetId", 255, 1, /disks\[1\]\.targetId=255/],
    ["lun", 256, 255, /disks\[1\]\.lun=256: must be an integer in \[0, 255\] \(Linux storvsc drops reported LUNs above max_lun/],
    ["pathId", -1, 7, /disks\[1\]\.pathId=-1/],
    ["targetId", 0.5, 1, /disks\[1\]\.targetId=0\.5/],
    ["lun", "3", 255, /disks\[1\]\.lun="3"/],
  ] as const)("refuses %s=%j with a DiskSpecError naming field, value and limit", (field, value, max, message) => {
    const e = refusal({ ...base, [field]: value }, "disks[1]");
    expect(e.field).toBe(`disks[1].${field}`);
    expect(e.value).toBe(value);
    expect(e.limit).toContain(`[0, ${max}]`);
    expect(e.code).toBe("DISK_SPEC");
    expect(e.message).toMatch(message);
  });
});
