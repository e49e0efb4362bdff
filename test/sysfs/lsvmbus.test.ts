/** Tests for core/sysfs/lsvmbus.ts against hand-written expected output (spec §9.4). */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../core/errors.js";
import { LSVMBUS_DESCRIPTIONS, VmbusSysfs, lsvmbus } from "../../core/sysfs/index.js";
import { DEVICE_CLASSES, HV_AVMA1_GUID, HV_AVMA2_GUID, HV_IMC_GUID, HV_RDV_GUID, lsvmbusDescription } from "../../core/vmbus/device-classes.js";
import { Guid } from "../../core/vmbus/guid.js";
import { FakeBus, FakeChannel, FakeDevice, twoDevices } from "./fakes.js";

const NIC = "f00dcafe-0123-4567-89ab-cdef01234567";
const SCSI = "3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";

describe("lsvmbus", () => {
  const { bus } = twoDevices();
  const sysfs = new VmbusSysfs(bus);

  it("default: one line per device, sorted by numeric id, id in %2s", () => {
    expect(lsvmbus(sysfs)).toBe("VMBUS ID  2: Synthetic network adapter\nVMBUS ID 14: Synthetic SCSI Controller\n");
    expect(lsvmbus(sysfs, 0)).toBe(lsvmbus(sysfs));
  });

  it("-v: Class_ID line, channels sorted by relid, a blank line after each device", () => {
    expect(lsvmbus(sysfs, 1)).toBe(
      [
        "VMBUS ID  2: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network adapter",
        "\tRel_ID=2, target_cpu=0",
        "",
        "VMBUS ID 14: Class_ID = {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f} - Synthetic SCSI Controller",
        "\tRel_ID=14, target_cpu=0",
        "\tRel_ID=15, target_cpu=1",
        "\tRel_ID=16, target_cpu=3",
        "",
        "",
      ].join("\n"),
    );
  });

  it("-vv (and more): Device_ID and Sysfs path too", () => {
    const expected = [
      "VMBUS ID  2: Class_ID = {f8615163-df3e-46c5-913f-f2d2f965ed0e} - Synthetic network adapter",
      `\tDevice_ID = {${NIC}}`,
      `\tSysfs path: /sys/bus/vmbus/devices/${NIC}`,
      "\tRel_ID=2, target_cpu=0",
      "",
      "VMBUS ID 14: Class_ID = {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f} - Synthetic SCSI Controller",
      `\tDevice_ID = {${SCSI}}`,
      `\tSysfs path: /sys/bus/vmbus/devices/${SCSI}`,
      "\tRel_ID=14, target_cpu=0",
      "\tRel_ID=15, target_cpu=1",
      "\tRel_ID=16, target_cpu=3",
      "",
      "",
    ].join("\n");
    expect(lsvmbus(sysfs, 2)).toBe(expected);
    expect(lsvmbus(sysfs, 5)).toBe(expected);
  });

  it("follows a cpu change", async () => {
    const t = twoDevices();
    const s = new VmbusSysfs(t.bus);
    await s.write(`/sys/bus/vmbus/devices/${SCSI}/channels/15/cpu`, "2");
    expect(lsvmbus(s, 1)).toContain("\tRel_ID=15, target_cpu=2\n");
  });

  it("sorts numerically (9 before 10, 100 after 99), never cuts a wide id, and says Unknown / Reserved", () => {
    const g = (n: number) => Guid.parse(`00000000-0000-0000-0000-${n.toString(16).padStart(12, "0")}`);
    const kvp = new FakeDevice(g(1), Guid.parse("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6"), 9, [
      new FakeChannel(9, { targetCpu: 0 }),
      new FakeChannel(100, { targetCpu: 1, subchannelIndex: 1 }),
      new FakeChannel(10, { targetCpu: 2, subchannelIndex: 2 }),
    ]);
    const unknown = new FakeDevice(g(2), Guid.parse("00000000-facb-11e6-bd58-64006a7986d3"), 16, [new FakeChannel(100)]);
    const rdv = new FakeDevice(g(3), HV_RDV_GUID, 16, [new FakeChannel(10)]);
    const s = new VmbusSysfs(new FakeBus([unknown, rdv, kvp]));
    expect(lsvmbus(s)).toBe("VMBUS ID  9: [Data Exchange]\nVMBUS ID 10: [Reserved system device]\nVMBUS ID 100: Unknown\n");
    expect(lsvmbus(s, 1).split("\n").slice(0, 5)).toEqual([
      "VMBUS ID  9: Class_ID = {a9a0f4e7-5a45-4d96-b827-8a841e8c03e6} - [Data Exchange]",
      "\tRel_ID=9, target_cpu=0",
      "\tRel_ID=10, target_cpu=2",
      "\tRel_ID=100, target_cpu=1",
      "",
    ]);
  });

  it("prints nothing for an empty bus", () => {
    expect(lsvmbus(new VmbusSysfs(new FakeBus([])), 2)).toBe("");
  });

  it("says Unknown for the nil class and refuses a bad verbosity", () => {
    const bad = new FakeDevice(Guid.parse("00000000-0000-0000-0000-000000000009"), Guid.NIL, 16, [new FakeChannel(1)]);
    const s = new VmbusSysfs(new FakeBus([bad]));
    expect(lsvmbus(s)).toBe("VMBUS ID  1: Unknown\n");
    expect(() => lsvmbus(s, -1)).toThrow(InvalidArgumentError);
    expect(() => lsvmbus(s, 1.5)).toThrow(InvalidArgumentError);
  });

  it("has the script's table, which agrees with device-classes' descriptions", () => {
    expect(LSVMBUS_DESCRIPTIONS.size).toBe(19);
    for (const c of DEVICE_CLASSES) {
      if (c.classId === null) continue;
      expect(LSVMBUS_DESCRIPTIONS.get(c.classId.toBracedString())).toBe(c.description);
    }
    for (const g of [HV_RDV_GUID, HV_AVMA1_GUID, HV_AVMA2_GUID]) {
      expect(LSVMBUS_DESCRIPTIONS.get(g.toBracedString())).toBe("[Reserved system device]");
      expect(lsvmbusDescription(g)).toBe("[Reserved system device]");
    }
    expect(LSVMBUS_DESCRIPTIONS.has(HV_IMC_GUID.toBracedString())).toBe(false);
    expect(lsvmbusDescription(HV_IMC_GUID)).toBe("Unknown");
  });
});
