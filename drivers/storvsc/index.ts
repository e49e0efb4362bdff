/**
 * The storage sample: storvsc (guest SCSI controller driver) and storvsp
 * (host SCSI target over VMBus) — storvsc-netvsc.md §1–§8.
 *
 * Register with `new VmbusSystem({ plugins: [storagePlugin] })`, then give a
 * VM a controller: `sys.addHostDevice(vm, "storvsp", { config: { disks: [...] } })`.
 */
import type { DependencyContainer } from "tsyringe";
import { HV_IDE_GUID, HV_SCSI_GUID, registerGuestDriver, registerHostDevice } from "../../core/index.js";
import { StorvscDriver } from "./guest/index.js";
import { StorvspDevice } from "./host/index.js";

export * from "./protocol/index.js";
export * from "./guest/index.js";
export * from "./host/index.js";

/** Subchannels a storvsp offers at most (the registration's limit; `maxSubchannels` in the config may lower it). */
export const STORVSP_SUBCHANNEL_LIMIT = 64;

export function storagePlugin(container: DependencyContainer): void {
  registerGuestDriver(container, { name: "storvsc", classIds: [HV_SCSI_GUID, HV_IDE_GUID] }, StorvscDriver);
  registerHostDevice(container, { name: "storvsp", classId: HV_SCSI_GUID, subchannelLimit: STORVSP_SUBCHANNEL_LIMIT, monitored: true }, StorvspDevice);
}
