/** Tests for core/vmbus/device-classes.ts (spec §10, §9.4). */
import { describe, expect, it } from "vitest";
import * as d from "../../core/vmbus/device-classes.js";
import { Guid } from "../../core/vmbus/guid.js";
import { VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER } from "../../core/vmbus/messages.js";

// §10, copied by hand: [dev-type, name, class GUID, perf, isolated-ok, lsvmbus description]
const TABLE: readonly [number, string, string, boolean, boolean, string][] = [
  [0, "HV_IDE", "32412632-86cb-44a2-9b5c-50d1417354f5", true, false, "Synthetic IDE Controller"],
  [1, "HV_SCSI", "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f", true, true, "Synthetic SCSI Controller"],
  [2, "HV_FC", "2f9bcc4a-0069-4af3-b76b-6fd0be528cda", true, false, "Synthetic fiber channel adapter"],
  [3, "HV_NIC", "f8615163-df3e-46c5-913f-f2d2f965ed0e", true, true, "Synthetic network adapter"],
  [4, "HV_ND", "8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501", true, false, "Synthetic RDMA adapter"],
  [5, "HV_PCIE", "44c4f61d-4444-4400-9d52-802e27ede19f", false, true, "PCI Express pass-through"],
  [6, "HV_FB", "da0a7802-e377-4aac-8e77-0558eb1073f8", false, false, "Synthetic framebuffer adapter"],
  [7, "HV_KBD", "f912ad6d-2b17-48ea-bd65-f927a61c7684", false, false, "Synthetic keyboard"],
  [8, "HV_MOUSE", "cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a", false, false, "Synthetic mouse"],
  [9, "HV_KVP", "a9a0f4e7-5a45-4d96-b827-8a841e8c03e6", false, false, "[Data Exchange]"],
  [10, "HV_TS", "9527e630-d0ae-497b-adce-e80ab0175caf", false, true, "[Time Synchronization]"],
  [11, "HV_HB", "57164f39-9115-4e78-ab55-382f3bd5422d", false, true, "[Heartbeat]"],
  [12, "HV_SHUTDOWN", "0e0b6031-5213-4934-818b-38d90ced39db", false, true, "[Operating system shutdown]"],
  [13, "HV_FCOPY", "34d14be3-dee4-41c8-9ae7-6b174977c192", false, false, "[Guest services]"],
  [14, "HV_BACKUP", "35fa2e29-ea23-4236-96ae-3a6ebacba440", false, false, "[Backup (volume checkpoint)]"],
  [15, "HV_DM", "525074dc-8985-46e2-8057-a307dc18a502", false, false, "[Dynamic Memory]"],
];

describe("device classes", () => {
  it("has the §10 table indexed by dev-type, with HV_UNKNOWN = 16 last", () => {
    expect(d.DEVICE_CLASSES.length).toBe(17);
    for (const [devType, name, guid, perf, isolated, desc] of TABLE) {
      const e = d.DEVICE_CLASSES[devType];
      expect(e).toBeDefined();
      expect(e?.devType).toBe(devType);
      expect(e?.name).toBe(name);
      expect(e?.classId?.toString()).toBe(guid);
      expect(e?.perfDevice).toBe(perf);
      expect(e?.allowedInIsolated).toBe(isolated);
      expect(e?.description).toBe(desc);
      expect(d.lookupDeviceClass(Guid.parse(guid))).toBe(e);
      expect(d.lsvmbusDescription(Guid.parse(guid))).toBe(desc);
    }
    expect(d.HV_UNKNOWN).toBe(16);
    expect(d.UNKNOWN_DEVICE_CLASS.devType).toBe(16);
    expect(d.UNKNOWN_DEVICE_CLASS.classId).toBeNull();
    expect(d.DEVICE_CLASSES[d.HV_FCOPY]?.prefRingSize).toBe(0x4000);
    expect(d.UNKNOWN_DEVICE_CLASS.prefRingSize).toBe(0x11000);
    expect(d.HV_SCSI).toBe(1);
    expect(d.HV_NIC).toBe(3);
  });

  it("gives the modalias Linux shows for netvsc", () => {
    expect(`vmbus:${d.HV_NIC_GUID.modaliasHex()}`).toBe("vmbus:635161f83edfc546913ff2d2f965ed0e");
  });

  it("maps unknown, unsupported and hv_sock offers to HV_UNKNOWN", () => {
    expect(d.lookupDeviceClass(Guid.parse("01234567-89ab-cdef-0123-456789abcdef"))).toBe(d.UNKNOWN_DEVICE_CLASS);
    for (const g of [d.HV_AVMA1_GUID, d.HV_AVMA2_GUID, d.HV_RDV_GUID, d.HV_IMC_GUID]) {
      expect(d.isUnsupportedDevice(g)).toBe(true);
      expect(d.lookupDeviceClass(g).devType).toBe(d.HV_UNKNOWN);
    }
    expect(d.HV_AVMA1_GUID.toString()).toBe("f8e65716-3cb3-4a06-9a60-1889c5cccab5");
    expect(d.HV_AVMA2_GUID.toString()).toBe("3375baf4-9e15-4b30-b765-67acb10d607b");
    expect(d.HV_RDV_GUID.toString()).toBe("276aacf4-ac15-426c-98dd-7521ad3f01fe");
    expect(d.HV_IMC_GUID.toString()).toBe("c376c1c3-d276-48d2-90a9-c04748072c60");
    expect(d.isUnsupportedDevice(d.HV_SCSI_GUID)).toBe(false);
    expect(d.deviceClassForOffer(d.HV_SCSI_GUID, 0x4).devType).toBe(d.HV_SCSI);
    expect(d.deviceClassForOffer(d.HV_SCSI_GUID, VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER).devType).toBe(d.HV_UNKNOWN);
  });

  it("describes RDV/AVMA as reserved and anything else unknown as Unknown", () => {
    expect(d.lsvmbusDescription(d.HV_RDV_GUID)).toBe("[Reserved system device]");
    expect(d.lsvmbusDescription(d.HV_AVMA1_GUID)).toBe("[Reserved system device]");
    expect(d.lsvmbusDescription(d.HV_AVMA2_GUID)).toBe("[Reserved system device]");
    expect(d.lsvmbusDescription(d.HV_IMC_GUID)).toBe("Unknown");
    expect(d.lsvmbusDescription(Guid.NIL)).toBe("Unknown");
  });
});
