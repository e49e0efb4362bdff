/**
 * The network sample: netvsc (guest NIC driver), netvsp (host VSP) and the
 * virtual switch they plug into — storvsc-netvsc.md §9–§15.
 *
 * Register with `new VmbusSystem({ plugins: [networkPlugin] })`, then give
 * each VM a NIC: `sys.addHostDevice(vm, "netvsp", { config: { mac, switch } })`.
 * NICs on the same switch name share one learning L2 switch.
 */
import type { DependencyContainer } from "tsyringe";
import { HV_NIC_GUID, registerGuestDriver, registerHostDevice } from "../../core/index.js";
import { NetvscDriver } from "./guest/index.js";
import { NetvspDevice, registerNetworkSwitches } from "./host/index.js";

export * from "./protocol/index.js";
export * from "./guest/index.js";
export * from "./host/index.js";

/** Subchannels a netvsp offers at most (the NIC's `maxQueues` − 1 may lower it). */
export const NETVSP_SUBCHANNEL_LIMIT = 8;

export function networkPlugin(container: DependencyContainer): void {
  registerNetworkSwitches(container);
  registerGuestDriver(container, { name: "netvsc", classIds: [HV_NIC_GUID] }, NetvscDriver);
  registerHostDevice(container, { name: "netvsp", classId: HV_NIC_GUID, subchannelLimit: NETVSP_SUBCHANNEL_LIMIT, monitored: true }, NetvspDevice);
}
