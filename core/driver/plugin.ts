/**
 * The plugin model — vmbus-core.md §11 (the Linux driver model) mapped onto
 * tsyringe.
 *
 * A plugin is a manifest function. The core calls it on a container it
 * chooses (the simulation's root); the manifest registers guest drivers and
 * host devices under the core's plugin-point tokens. Nothing registers into
 * tsyringe's global container, nothing happens at import time, and two
 * simulations in one process never see each other's plugins.
 *
 *     export function echoPlugin(c: DependencyContainer): void {
 *       registerGuestDriver(c, { name: "echo", classIds: [ECHO_CLASS] }, EchoDriver);
 *       registerHostDevice(c, { name: "echo", classId: ECHO_CLASS }, EchoDevice);
 *     }
 *
 * Plugin points are registered at one level only (the root): tsyringe does
 * not merge `resolveAll` lists across parent and child containers, so a
 * child that registered one more driver would hide all the others.
 */
import type { DependencyContainer, InjectionToken } from "tsyringe";
import { InvalidArgumentError } from "../errors.js";
import type { Guid } from "../vmbus/guid.js";
import { token } from "./tokens.js";

/** What a guest driver is for (`struct hv_driver`: name and id_table). */
export interface GuestDriverMeta {
  readonly name: string;
  readonly classIds: readonly Guid[];
}

/** A guest driver instance: one per bound device (`probe`, `remove`, `suspend`, `resume`). */
export interface VmbusDriver {
  probe(): void | Promise<void>;
  remove(): void | Promise<void>;
  suspend?(): void | Promise<void>;
  resume?(): void | Promise<void>;
}

/**
 * A class tsyringe can construct (its parameters carry `@inject` tokens):
 * tsyringe's own `constructor<T>`, taken out of its `InjectionToken<T>`
 * union so that no `any` is spelled here.
 */
export type Constructor<T> = Extract<InjectionToken<T>, new (...args: never[]) => unknown>;

export interface GuestDriverRegistration {
  readonly meta: GuestDriverMeta;
  readonly driver: Constructor<VmbusDriver>;
}

/** What a host device offers (§7.3 OFFERCHANNEL, as far as a device decides it). */
export interface HostDeviceMeta {
  readonly name: string;
  readonly classId: Guid;
  /** Subchannels the device may offer beyond the primary (default 0). */
  readonly subchannelLimit?: number;
  /** Offer with a monitor id, so guest signals go through the monitor page (default true). */
  readonly monitored?: boolean;
  /** The monitor latency of its channels, in ns (default: the simulation's cost model). */
  readonly monitorLatencyNs?: number;
  /** `mmio_megabytes` of the offer (default 0). */
  readonly mmioMegabytes?: number;
}

export interface HostDeviceRegistration<D = unknown> {
  readonly meta: HostDeviceMeta;
  readonly device: Constructor<D>;
}

/** Plugin point: guest drivers. Resolve with `resolveAll` on the root container. */
export const GUEST_DRIVERS: InjectionToken<GuestDriverRegistration> = token<GuestDriverRegistration>("vmbus.core.GuestDrivers");
/** Plugin point: host device types. */
export const HOST_DEVICES: InjectionToken<HostDeviceRegistration> = token<HostDeviceRegistration>("vmbus.core.HostDevices");

/** A plugin manifest: registers its drivers and devices into the container it is given. */
export type PluginManifest = (container: DependencyContainer) => void;

const DRIVER_NAME = /^[a-z0-9_][a-z0-9_-]{0,31}$/;

function checkName(kind: string, name: string): void {
  if (!DRIVER_NAME.test(name)) {
    throw new InvalidArgumentError(`${kind} name`, name, "must be 1–32 characters of a-z, 0-9, '_' or '-'");
  }
}

export function registerGuestDriver(container: DependencyContainer, meta: GuestDriverMeta, driver: Constructor<VmbusDriver>): void {
  checkName("guest driver", meta.name);
  container.register(GUEST_DRIVERS, { useValue: { meta, driver } });
}

export function registerHostDevice<D>(container: DependencyContainer, meta: HostDeviceMeta, device: Constructor<D>): void {
  checkName("host device", meta.name);
  if (meta.subchannelLimit !== undefined && (!Number.isInteger(meta.subchannelLimit) || meta.subchannelLimit < 0 || meta.subchannelLimit > 64)) {
    throw new InvalidArgumentError(`${meta.name} subchannelLimit`, meta.subchannelLimit, "must be an integer in [0, 64]");
  }
  container.register(HOST_DEVICES, { useValue: { meta, device: device as Constructor<unknown> } });
}

/** All registrations of a plugin point, or [] when none. */
export function resolveAllOrNone<T>(container: DependencyContainer, tok: InjectionToken<T>): T[] {
  return container.isRegistered(tok, true) ? container.resolveAll(tok) : [];
}

/** Applies manifests to `container`, rejecting two drivers or two devices with one name. */
export function applyPlugins(container: DependencyContainer, manifests: readonly PluginManifest[]): void {
  for (const m of manifests) m(container);
  const seen = new Set<string>();
  for (const d of resolveAllOrNone(container, GUEST_DRIVERS)) {
    if (seen.has(d.meta.name)) throw new InvalidArgumentError("guest driver name", d.meta.name, "is registered twice");
    seen.add(d.meta.name);
  }
  seen.clear();
  for (const d of resolveAllOrNone(container, HOST_DEVICES)) {
    if (seen.has(d.meta.name)) throw new InvalidArgumentError("host device name", d.meta.name, "is registered twice");
    seen.add(d.meta.name);
  }
}
