/**
 * The guest's VMBus driver core — vmbus-core.md §11.2 (`vmbus_match`,
 * `hv_vmbus_get_id`, `vmbus_probe`, `vmbus_remove`, PM callbacks) and §9.1
 * (`new_id`, `remove_id`, `driver_override`).
 *
 * Each bound device gets its own driver instance, resolved from a child
 * container of the VM's container in which the device and its channel are
 * registered; the instance and everything it registers for teardown live in
 * that device's `DisposableStore`. A probe that throws leaves that device
 * unbound with the error recorded; other devices are unaffected.
 */
import type { DependencyContainer } from "tsyringe";
import { ErrnoError, VmbusSimError } from "../errors.js";
import { Guid } from "../vmbus/guid.js";
import { DisposableStore, toDisposable } from "./disposable.js";
import { GUEST_DRIVERS, type GuestDriverRegistration, type VmbusDriver, resolveAllOrNone } from "./plugin.js";

/** What the bus needs to know of a device. */
export interface BusDevice {
  /** The sysfs directory name: the instance GUID, lowercase, no braces. */
  readonly name: string;
  readonly classId: Guid;
  /** `driver_override`; null when unset (sysfs shows "(null)"). */
  driverOverride: string | null;
}

export interface Binding {
  readonly registration: GuestDriverRegistration;
  readonly driver: VmbusDriver;
  readonly container: DependencyContainer;
  readonly store: DisposableStore;
  /** True when bound only because driver_override named the driver. */
  readonly forced: boolean;
}

export type DeviceProvider<D> = (child: DependencyContainer, device: D, store: DisposableStore) => void;

export class DriverBus<D extends BusDevice> {
  private readonly bindings = new Map<D, Binding>();
  private readonly probeErrors = new Map<D, unknown>();
  private readonly devices: D[] = [];
  private readonly dynamicIds = new Map<string, Guid[]>();

  /**
   * @param container the VM's container; drivers are looked up in it
   *   (registered at the root by plugin manifests)
   * @param provide registers the device-specific tokens (HV_DEVICE, the
   *   channel, …) in each device's child container
   */
  constructor(
    private readonly container: DependencyContainer,
    private readonly provide: DeviceProvider<D>,
  ) {}

  get drivers(): GuestDriverRegistration[] {
    return resolveAllOrNone(this.container, GUEST_DRIVERS);
  }

  driverByName(name: string): GuestDriverRegistration | undefined {
    return this.drivers.find((d) => d.meta.name === name);
  }

  get allDevices(): readonly D[] {
    return this.devices;
  }

  binding(device: D): Binding | undefined {
    return this.bindings.get(device);
  }

  /** The error of the last failed probe of `device`, if any. */
  probeError(device: D): unknown {
    return this.probeErrors.get(device);
  }

  /** Dynamic ids added through `new_id`. */
  dynamicIdsOf(driverName: string): readonly Guid[] {
    return this.dynamicIds.get(driverName) ?? [];
  }

  /**
   * `hv_vmbus_get_id` for one driver: driver_override naming another driver
   * excludes it; dynamic ids first, then the static table; no id but an
   * override naming this driver binds anyway (forced).
   */
  matchDriver(device: D, reg: GuestDriverRegistration): { forced: boolean } | undefined {
    const override = device.driverOverride;
    if (override !== null && override !== reg.meta.name) return undefined;
    const dyn = this.dynamicIds.get(reg.meta.name) ?? [];
    if (dyn.some((g) => g.equals(device.classId))) return { forced: false };
    if (reg.meta.classIds.some((g) => g.equals(device.classId))) return { forced: false };
    if (override !== null) return { forced: true };
    return undefined;
  }

  /** The first driver (registration order) that matches, as the driver core walks its list. */
  match(device: D): { registration: GuestDriverRegistration; forced: boolean } | undefined {
    for (const reg of this.drivers) {
      const m = this.matchDriver(device, reg);
      if (m) return { registration: reg, forced: m.forced };
    }
    return undefined;
  }

  /** Registers a device and binds it if a driver matches. Resolves when probe has finished (or failed). */
  async add(device: D): Promise<Binding | undefined> {
    if (!this.devices.includes(device)) this.devices.push(device);
    return this.attach(device);
  }

  /** Unbinds (driver `remove`) and forgets the device. */
  async remove(device: D): Promise<void> {
    await this.unbind(device);
    const i = this.devices.indexOf(device);
    if (i >= 0) this.devices.splice(i, 1);
    this.probeErrors.delete(device);
  }

  /** Tries to bind an unbound device (`device_attach`). */
  async attach(device: D): Promise<Binding | undefined> {
    if (this.bindings.has(device)) return this.bindings.get(device);
    const m = this.match(device);
    if (!m) return undefined;
    return this.bind(device, m.registration, m.forced);
  }

  /** Calls the driver's `remove`, then tears the device's container down. */
  async unbind(device: D): Promise<void> {
    const b = this.bindings.get(device);
    if (!b) return;
    this.bindings.delete(device);
    await b.store.dispose();
  }

  /** `new_id`: adds a dynamic id to a driver and attaches unbound devices (-EEXIST on a duplicate). */
  async newId(driverName: string, guidText: string): Promise<void> {
    const op = `write /sys/bus/vmbus/drivers/${driverName}/new_id`;
    const reg = this.driverByName(driverName);
    if (!reg) throw new ErrnoError("ENODEV", op, `no driver named ${driverName}`);
    const guid = parseGuidOr(guidText, op);
    const list = this.dynamicIds.get(driverName) ?? [];
    if (list.some((g) => g.equals(guid)) || reg.meta.classIds.some((g) => g.equals(guid))) {
      throw new ErrnoError("EEXIST", op, `${guid.toString()} is already an id of ${driverName}`);
    }
    list.push(guid);
    this.dynamicIds.set(driverName, list);
    for (const d of this.devices) if (!this.bindings.has(d)) await this.attach(d);
  }

  /** `remove_id`: drops a dynamic id (-ENODEV if absent). Bound devices stay bound, as in Linux. */
  removeId(driverName: string, guidText: string): void {
    const op = `write /sys/bus/vmbus/drivers/${driverName}/remove_id`;
    const guid = parseGuidOr(guidText, op);
    const list = this.dynamicIds.get(driverName) ?? [];
    const i = list.findIndex((g) => g.equals(guid));
    if (i < 0) throw new ErrnoError("ENODEV", op, `${guid.toString()} is not a dynamic id of ${driverName}`);
    list.splice(i, 1);
  }

  /** PM freeze: every bound driver's `suspend` (-EOPNOTSUPP if a bound driver lacks it). */
  async suspendAll(): Promise<void> {
    for (const [device, b] of this.bindings) {
      if (!b.driver.suspend) throw new ErrnoError("EOPNOTSUPP", `suspend ${device.name}`, `driver ${b.registration.meta.name} has no suspend`);
      await b.driver.suspend();
    }
  }

  async resumeAll(): Promise<void> {
    for (const [device, b] of this.bindings) {
      if (!b.driver.resume) throw new ErrnoError("EOPNOTSUPP", `resume ${device.name}`, `driver ${b.registration.meta.name} has no resume`);
      await b.driver.resume();
    }
  }

  private async bind(device: D, reg: GuestDriverRegistration, forced: boolean): Promise<Binding | undefined> {
    const child = this.container.createChildContainer();
    const store = new DisposableStore();
    store.add(toDisposable(() => child.dispose()));
    let driver: VmbusDriver;
    try {
      this.provide(child, device, store);
      driver = child.resolve(reg.driver);
    } catch (e) {
      await store.dispose();
      this.probeErrors.set(device, e);
      return undefined;
    }
    const binding: Binding = { registration: reg, driver, container: child, store, forced };
    // Registered now so that a probe that awaits sees itself bound; removed on failure.
    this.bindings.set(device, binding);
    try {
      await driver.probe();
    } catch (e) {
      this.bindings.delete(device);
      this.probeErrors.set(device, e);
      await store.dispose().catch(() => undefined);
      return undefined;
    }
    this.probeErrors.delete(device);
    // remove() runs first at teardown: the store disposes last-added first.
    store.add(toDisposable(() => driver.remove()));
    return binding;
  }
}

function parseGuidOr(text: string, op: string): Guid {
  try {
    return Guid.parse(text.trim());
  } catch (e) {
    if (e instanceof VmbusSimError) throw new ErrnoError("EINVAL", op, e.message);
    throw e;
  }
}
