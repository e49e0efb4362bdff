/**
 * Device classes (spec/vmbus-core.md §10; Linux `include/linux/hyperv.h`
 * `enum hv_dev_type` and the `HV_*_GUID` macros, `channel_mgmt.c`
 * `vmbus_devs[]` / `vmbus_unsupported_devs[]`) and the lsvmbus descriptions
 * (§9.4).
 *
 * The dev-type index is what sysfs `device` shows (`0x%x`, §9.2) and what
 * `hv_device.device_id` holds; `perfDevice` decides whether a channel's CPU
 * is spread across CPUs (§8.1).
 */
import { Guid } from "./guid.js";
import { VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER } from "./messages.js";

// --- enum hv_dev_type --------------------------------------------------------

export const HV_IDE = 0;
export const HV_SCSI = 1;
export const HV_FC = 2;
export const HV_NIC = 3;
export const HV_ND = 4;
export const HV_PCIE = 5;
export const HV_FB = 6;
export const HV_KBD = 7;
export const HV_MOUSE = 8;
export const HV_KVP = 9;
export const HV_TS = 10;
export const HV_HB = 11;
export const HV_SHUTDOWN = 12;
export const HV_FCOPY = 13;
export const HV_BACKUP = 14;
export const HV_DM = 15;
export const HV_UNKNOWN = 16;

// --- class GUIDs ---------------------------------------------------------------

export const HV_IDE_GUID: Guid = Guid.parse("32412632-86cb-44a2-9b5c-50d1417354f5");
export const HV_SCSI_GUID: Guid = Guid.parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
export const HV_SYNTHFC_GUID: Guid = Guid.parse("2f9bcc4a-0069-4af3-b76b-6fd0be528cda");
export const HV_NIC_GUID: Guid = Guid.parse("f8615163-df3e-46c5-913f-f2d2f965ed0e");
export const HV_ND_GUID: Guid = Guid.parse("8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501");
export const HV_PCIE_GUID: Guid = Guid.parse("44c4f61d-4444-4400-9d52-802e27ede19f");
export const HV_SYNTHVID_GUID: Guid = Guid.parse("da0a7802-e377-4aac-8e77-0558eb1073f8");
export const HV_KBD_GUID: Guid = Guid.parse("f912ad6d-2b17-48ea-bd65-f927a61c7684");
export const HV_MOUSE_GUID: Guid = Guid.parse("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a");
export const HV_KVP_GUID: Guid = Guid.parse("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6");
export const HV_TS_GUID: Guid = Guid.parse("9527e630-d0ae-497b-adce-e80ab0175caf");
export const HV_HEART_BEAT_GUID: Guid = Guid.parse("57164f39-9115-4e78-ab55-382f3bd5422d");
export const HV_SHUTDOWN_GUID: Guid = Guid.parse("0e0b6031-5213-4934-818b-38d90ced39db");
export const HV_FCOPY_GUID: Guid = Guid.parse("34d14be3-dee4-41c8-9ae7-6b174977c192");
export const HV_VSS_GUID: Guid = Guid.parse("35fa2e29-ea23-4236-96ae-3a6ebacba440");
export const HV_DM_GUID: Guid = Guid.parse("525074dc-8985-46e2-8057-a307dc18a502");

/** Offered by Hyper-V, driven by no Linux driver: treated as HV_UNKNOWN. */
export const HV_AVMA1_GUID: Guid = Guid.parse("f8e65716-3cb3-4a06-9a60-1889c5cccab5");
export const HV_AVMA2_GUID: Guid = Guid.parse("3375baf4-9e15-4b30-b765-67acb10d607b");
export const HV_RDV_GUID: Guid = Guid.parse("276aacf4-ac15-426c-98dd-7521ad3f01fe");
export const HV_IMC_GUID: Guid = Guid.parse("c376c1c3-d276-48d2-90a9-c04748072c60");

/** The AVMA, RDV and IMC classes (`vmbus_unsupported_devs[]`). */
export const UNSUPPORTED_DEVICE_GUIDS: readonly Guid[] = Object.freeze([
  HV_AVMA1_GUID,
  HV_AVMA2_GUID,
  HV_RDV_GUID,
  HV_IMC_GUID,
]);

/** hv_sock service GUIDs are `<port>-facb-11e6-bd58-64006a7986d3` (§7.12, §10). */
export const HV_SOCK_GUID_TEMPLATE: Guid = Guid.parse("00000000-facb-11e6-bd58-64006a7986d3");

/** `hv_device.vendor_id` of every VMBus device (sysfs `vendor`, §9.2). */
export const HV_VENDOR_ID = 0x1414;

/** lsvmbus prints this for a class it does not know (§9.4). */
export const LSVMBUS_UNKNOWN_DESCRIPTION = "Unknown";
/** lsvmbus's description of the RDV and AVMA classes. */
export const LSVMBUS_RESERVED_DESCRIPTION = "[Reserved system device]";

export interface DeviceClass {
  /** `enum hv_dev_type` value: sysfs `device`, `hv_device.device_id`. */
  readonly devType: number;
  /** "HV_SCSI". */
  readonly name: string;
  /** The class GUID; null only for HV_UNKNOWN. */
  readonly classId: Guid | null;
  /** Channels of this class are spread over CPUs (`perf_device`, §8.1). */
  readonly perfDevice: boolean;
  /** Offered in isolated (CoCo) VMs (`allowed_in_isolated`). */
  readonly allowedInIsolated: boolean;
  /** Preferred ring size in bytes (`pref_ring_size`), where Linux sets one. */
  readonly prefRingSize?: number;
  /** lsvmbus's description (§9.4). */
  readonly description: string;
}

function cls(
  devType: number,
  name: string,
  classId: Guid | null,
  perfDevice: boolean,
  allowedInIsolated: boolean,
  description: string,
  prefRingSize?: number,
): DeviceClass {
  const entry: DeviceClass =
    prefRingSize === undefined
      ? { devType, name, classId, perfDevice, allowedInIsolated, description }
      : { devType, name, classId, perfDevice, allowedInIsolated, description, prefRingSize };
  return Object.freeze(entry);
}

/** §10, indexed by dev-type (0..16). */
export const DEVICE_CLASSES: readonly DeviceClass[] = Object.freeze([
  cls(HV_IDE, "HV_IDE", HV_IDE_GUID, true, false, "Synthetic IDE Controller"),
  cls(HV_SCSI, "HV_SCSI", HV_SCSI_GUID, true, true, "Synthetic SCSI Controller"),
  cls(HV_FC, "HV_FC", HV_SYNTHFC_GUID, true, false, "Synthetic fiber channel adapter"),
  cls(HV_NIC, "HV_NIC", HV_NIC_GUID, true, true, "Synthetic network adapter"),
  cls(HV_ND, "HV_ND", HV_ND_GUID, true, false, "Synthetic RDMA adapter"),
  cls(HV_PCIE, "HV_PCIE", HV_PCIE_GUID, false, true, "PCI Express pass-through"),
  cls(HV_FB, "HV_FB", HV_SYNTHVID_GUID, false, false, "Synthetic framebuffer adapter"),
  cls(HV_KBD, "HV_KBD", HV_KBD_GUID, false, false, "Synthetic keyboard"),
  cls(HV_MOUSE, "HV_MOUSE", HV_MOUSE_GUID, false, false, "Synthetic mouse"),
  cls(HV_KVP, "HV_KVP", HV_KVP_GUID, false, false, "[Data Exchange]"),
  cls(HV_TS, "HV_TS", HV_TS_GUID, false, true, "[Time Synchronization]"),
  cls(HV_HB, "HV_HB", HV_HEART_BEAT_GUID, false, true, "[Heartbeat]"),
  cls(HV_SHUTDOWN, "HV_SHUTDOWN", HV_SHUTDOWN_GUID, false, true, "[Operating system shutdown]"),
  cls(HV_FCOPY, "HV_FCOPY", HV_FCOPY_GUID, false, false, "[Guest services]", 0x4000),
  cls(HV_BACKUP, "HV_BACKUP", HV_VSS_GUID, false, false, "[Backup (volume checkpoint)]"),
  cls(HV_DM, "HV_DM", HV_DM_GUID, false, false, "[Dynamic Memory]"),
  cls(HV_UNKNOWN, "HV_UNKNOWN", null, false, false, LSVMBUS_UNKNOWN_DESCRIPTION, 0x11000),
]);

function entryAt(devType: number): DeviceClass {
  const e = DEVICE_CLASSES[devType];
  if (e === undefined) throw new RangeError(`no device class ${devType}`); // table is complete; unreachable
  return e;
}

/** The HV_UNKNOWN entry. */
export const UNKNOWN_DEVICE_CLASS: DeviceClass = entryAt(HV_UNKNOWN);

/** Whether `classId` is one of the AVMA/RDV/IMC classes Linux ignores. */
export function isUnsupportedDevice(classId: Guid): boolean {
  return UNSUPPORTED_DEVICE_GUIDS.some((g) => g.equals(classId));
}

/** The §10 entry of a class GUID, or HV_UNKNOWN (also for AVMA/RDV/IMC). */
export function lookupDeviceClass(classId: Guid): DeviceClass {
  for (const e of DEVICE_CLASSES) {
    if (e.classId !== null && e.classId.equals(classId)) return e;
  }
  return UNKNOWN_DEVICE_CLASS;
}

/**
 * `hv_get_dev_type`: hv_sock offers (chn_flags & TLNPI_PROVIDER_OFFER) are
 * HV_UNKNOWN whatever their GUID; otherwise look the class up.
 */
export function deviceClassForOffer(ifType: Guid, chnFlags: number): DeviceClass {
  if ((chnFlags & VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER) !== 0) return UNKNOWN_DEVICE_CLASS;
  return lookupDeviceClass(ifType);
}

/**
 * lsvmbus's description of a class (§9.4): the table's, "[Reserved system
 * device]" for RDV and AVMA, "Unknown" otherwise (IMC included).
 */
export function lsvmbusDescription(classId: Guid): string {
  if (classId.equals(HV_RDV_GUID) || classId.equals(HV_AVMA1_GUID) || classId.equals(HV_AVMA2_GUID)) {
    return LSVMBUS_RESERVED_DESCRIPTION;
  }
  const e = lookupDeviceClass(classId);
  return e.description;
}
