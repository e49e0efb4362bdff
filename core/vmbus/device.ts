/**
 * A guest VMBus device (`struct hv_device`, vmbus-core.md §11.1): one per
 * primary offer, found by the driver core and handed to a driver.
 */
import type { GuestPartition } from "../hv/partition.js";
import type { SysfsDevice } from "../sysfs/source.js";
import type { DeviceClass } from "./device-classes.js";
import { HV_VENDOR_ID } from "./device-classes.js";
import type { Guid } from "./guid.js";
import type { GuestChannel } from "./guest-channel.js";

/** Structurally also a driver-core `BusDevice` (name, classId, driverOverride). */
export class VmbusDevice implements SysfsDevice {
  readonly instanceId: Guid;
  readonly classId: Guid;
  readonly deviceTypeIndex: number;
  readonly vendorId = HV_VENDOR_ID;
  /** The sysfs directory name: instance GUID, lowercase, no braces. */
  readonly name: string;
  driverOverride: string | null = null;
  /** Set by the driver core when a driver is bound. */
  driverName: string | null = null;

  constructor(
    readonly vm: GuestPartition,
    readonly primary: GuestChannel,
    readonly deviceClass: DeviceClass,
  ) {
    this.instanceId = primary.offer.ifInstance;
    this.classId = primary.offer.ifType;
    this.deviceTypeIndex = deviceClass.devType;
    this.name = this.instanceId.toString();
  }

  /** Primary first, then subchannels in offer order. */
  channels(): readonly GuestChannel[] {
    return [this.primary, ...this.primary.subchannels];
  }
}
