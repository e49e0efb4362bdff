/**
 * The tokens a plugin's classes inject. A guest driver is resolved from its
 * device's container, a host device from its own container on the host; the
 * core registers these values there before resolving.
 */
import type { InjectionToken } from "tsyringe";
import { token } from "../driver/tokens.js";
import type { GuestPartition } from "../hv/partition.js";
import type { Simulation } from "../sim/simulation.js";
import type { VmbusDevice } from "../vmbus/device.js";
import type { GuestChannel } from "../vmbus/guest-channel.js";
import type { VmbusServer } from "../vmbus/server.js";

/** The VM a guest driver runs in (name, vCPUs, memory, scheduler). */
export interface VmContext {
  readonly name: string;
  readonly partition: GuestPartition;
  readonly sim: Simulation;
}

/** Guest side: the device a driver instance is bound to (`struct hv_device`). */
export const HV_DEVICE: InjectionToken<VmbusDevice> = token<VmbusDevice>("vmbus.core.HvDevice");
/** Guest side: the device's primary channel. */
export const VMBUS_CHANNEL: InjectionToken<GuestChannel> = token<GuestChannel>("vmbus.core.VmbusChannel");
/** Guest side: the VM. */
export const VM_CONTEXT: InjectionToken<VmContext> = token<VmContext>("vmbus.core.VmContext");
/** Both sides: the simulation (clock, scheduler, seeded RNG, tracer). */
export const SIMULATION: InjectionToken<Simulation> = token<Simulation>("vmbus.core.Simulation");
/** Host side: the configuration object a scenario gave this device instance. */
export const HOST_DEVICE_CONFIG: InjectionToken<unknown> = token<unknown>("vmbus.core.HostDeviceConfig");
/** Host side: which VM the device is offered to. */
export const HOST_VM: InjectionToken<VmContext> = token<VmContext>("vmbus.core.HostVm");
/** Host side: the VMBus server of that VM (to offer subchannels, rescind, hot-plug). */
export const HOST_VMBUS_SERVER: InjectionToken<VmbusServer> = token<VmbusServer>("vmbus.core.HostVmbusServer");
