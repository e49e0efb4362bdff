/**
 * The whole machine: one host, guest VMs, VMBus between them, and the
 * plugins on both sides — DESIGN.md "Plugins" and "The walk of one I/O".
 *
 * Containers nest: root (plugin manifests applied) → host and each VM →
 * each device. A guest driver instance is resolved from its device's
 * container, where HV_DEVICE, VMBUS_CHANNEL and VM_CONTEXT are registered;
 * a host device instance from its own container, where HOST_DEVICE_CONFIG
 * and HOST_VM are. Two VMs never share a driver or device instance.
 *
 *     const sys = new VmbusSystem({ seed: 1, plugins: [echoPlugin] });
 *     const vm = sys.addVm({ name: "vm1", vcpus: 4 });
 *     sys.addHostDevice(vm, "echo");
 *     await sys.boot();                      // connect, offers, probes
 *     const echo = vm.driversOf<EchoDriver>("echo")[0];
 *     const reply = await sys.run(echo.echo(bytes));
 */
import { container as tsyringeRoot, type DependencyContainer } from "tsyringe";
import { InvalidArgumentError } from "../errors.js";
import { DriverBus } from "../driver/bus.js";
import { DisposableStore, toDisposable } from "../driver/disposable.js";
import { HOST_DEVICES, applyPlugins, resolveAllOrNone, type HostDeviceRegistration, type PluginManifest, type VmbusDriver } from "../driver/plugin.js";
import { Hypervisor } from "../hv/hypervisor.js";
import type { GuestPartition } from "../hv/partition.js";
import type { CostModel } from "../sim/cost-model.js";
import type { RngSeed } from "../sim/rng.js";
import { Simulation } from "../sim/simulation.js";
import type { SysfsBus } from "../sysfs/source.js";
import { VmbusSysfs } from "../sysfs/sysfs.js";
import type { Tracer } from "../trace/events.js";
import { VmbusClient } from "../vmbus/client.js";
import type { VmbusDevice } from "../vmbus/device.js";
import { Guid, InstanceGuidGenerator } from "../vmbus/guid.js";
import { VmbusServer, type HostChannelHandler, type HostDevice } from "../vmbus/server.js";
import { VMBUS_DEFAULT_MAX_VERSION } from "../vmbus/versions.js";
import { HOST_DEVICE_CONFIG, HOST_VM, HOST_VMBUS_SERVER, HV_DEVICE, SIMULATION, VMBUS_CHANNEL, VM_CONTEXT, type VmContext } from "./tokens.js";

export interface SystemOptions {
  /** Seed of every random choice (instance GUIDs, workloads, faults). */
  readonly seed?: RngSeed;
  readonly costs?: Partial<CostModel>;
  readonly plugins?: readonly PluginManifest[];
  /** The host's highest VMBus version (play an older host with less). */
  readonly hostMaxVersion?: number;
  readonly tracer?: Tracer;
}

export interface VmSpec {
  readonly name?: string;
  readonly vcpus?: number;
  readonly memoryBytes?: number;
  /** The guest's `max_version` (default 5.3). */
  readonly guestMaxVersion?: number;
}

export interface HostDeviceOptions {
  /** Instance GUID; default: drawn from the seeded RNG. */
  readonly instanceId?: string | Guid;
  /** Handed to the device class as HOST_DEVICE_CONFIG. */
  readonly config?: unknown;
  /** Override the registration's monitor choice. */
  readonly monitored?: boolean;
  readonly monitorLatencyNs?: number;
}

/** A guest VM with its VMBus client, driver core and sysfs. */
export class Vm implements VmContext {
  readonly client: VmbusClient;
  readonly bus: DriverBus<VmbusDevice>;
  readonly sysfs: VmbusSysfs;
  readonly server: VmbusServer;
  readonly container: DependencyContainer;
  readonly hostContainer: DependencyContainer;
  readonly store = new DisposableStore();

  constructor(
    readonly system: VmbusSystem,
    readonly partition: GuestPartition,
    options: VmSpec,
  ) {
    this.container = system.root.createChildContainer();
    this.container.registerInstance(VM_CONTEXT, this);
    this.hostContainer = system.root.createChildContainer();
    this.hostContainer.registerInstance(HOST_VM, this);
    this.store.add(toDisposable(() => this.container.dispose()));
    this.store.add(toDisposable(() => this.hostContainer.dispose()));
    this.server = new VmbusServer(system.hv, partition, { maxVersion: system.hostMaxVersion });
    this.hostContainer.registerInstance(HOST_VMBUS_SERVER, this.server);
    const g = buildGuestHalf(this.container, partition, options.guestMaxVersion);
    this.bus = g.bus;
    this.client = g.client;
    this.sysfs = g.sysfs;
  }

  get name(): string {
    return this.partition.name;
  }
  get sim(): Simulation {
    return this.system.sim;
  }

  /** Driver instances bound to devices, optionally only those of one driver. */
  drivers<T extends VmbusDriver = VmbusDriver>(driverName?: string): T[] {
    return boundDrivers<T>(this.client, this.bus, driverName);
  }

  /** The driver instance bound to `device`, if any. */
  driverOf<T extends VmbusDriver = VmbusDriver>(device: VmbusDevice): T | undefined {
    return this.bus.binding(device)?.driver as T | undefined;
  }
}

/**
 * @internal The guest half of a VM — driver bus, VMBus client, sysfs — in
 * `container` (which already holds VM_CONTEXT). Shared by `Vm` and threaded
 * mode's guest thread (core/threads), whose host half lives elsewhere.
 */
export function buildGuestHalf(
  container: DependencyContainer,
  partition: GuestPartition,
  guestMaxVersion: number | undefined,
): { bus: DriverBus<VmbusDevice>; client: VmbusClient; sysfs: VmbusSysfs } {
  const bus = new DriverBus<VmbusDevice>(container, (child, dev) => {
    child.registerInstance(HV_DEVICE, dev);
    child.registerInstance(VMBUS_CHANNEL, dev.primary);
  });
  const client = new VmbusClient(
    partition,
    {
      add: async (dev) => {
        const b = await bus.add(dev);
        dev.driverName = b?.registration.meta.name ?? null;
        if (b === undefined && bus.probeError(dev) !== undefined) throw bus.probeError(dev);
      },
      remove: async (dev) => {
        await bus.remove(dev);
        dev.driverName = null;
      },
    },
    { maxVersion: guestMaxVersion ?? VMBUS_DEFAULT_MAX_VERSION },
  );
  const sysBus: SysfsBus = {
    devices: () => client.devices,
    driverNames: () => bus.drivers.map((d) => d.meta.name),
    newId: async (driver, guid) => {
      await bus.newId(driver, guid);
      for (const d of client.devices) d.driverName = bus.binding(d)?.registration.meta.name ?? null;
    },
    removeId: (driver, guid) => bus.removeId(driver, guid),
    hibernation: false,
    hypervisorCallbackInterrupts: () => partition.vcpus.map((v) => v.counters.vmbusInterrupts),
    vcpuCount: partition.vcpus.length,
  };
  return { bus, client, sysfs: new VmbusSysfs(sysBus) };
}

/** @internal Driver instances bound to `client`'s devices, optionally only those of one driver. */
export function boundDrivers<T extends VmbusDriver>(client: VmbusClient, bus: DriverBus<VmbusDevice>, driverName?: string): T[] {
  const out: T[] = [];
  for (const d of client.devices) {
    const b = bus.binding(d);
    if (b !== undefined && (driverName === undefined || b.registration.meta.name === driverName)) out.push(b.driver as T);
  }
  return out;
}

/**
 * @internal Resolves host device type `type` (from `registrations`) in a
 * child of `hostContainer` with HOST_DEVICE_CONFIG, and offers it on
 * `server`. Shared by `VmbusSystem.addHostDevice` and threaded mode's host
 * thread. Returns the device and the disposable that releases its container.
 */
export function instantiateHostDevice(
  hostContainer: DependencyContainer,
  server: VmbusServer,
  registrations: readonly HostDeviceRegistration[],
  type: string,
  options: HostDeviceOptions,
  nextGuid: () => Guid,
): { device: HostDevice; store: DisposableStore } {
  const reg = registrations.find((r) => r.meta.name === type);
  if (reg === undefined) {
    throw new InvalidArgumentError("host device type", type, `is not registered (known: ${registrations.map((r) => r.meta.name).join(", ") || "none"})`);
  }
  const child = hostContainer.createChildContainer();
  child.registerInstance(HOST_DEVICE_CONFIG, options.config ?? {});
  const handler = child.resolve(reg.device) as HostChannelHandler;
  if (typeof handler.open !== "function" || typeof handler.close !== "function") {
    throw new InvalidArgumentError(`host device ${type}`, "class", "must implement open(channel) and close(channel)");
  }
  const instanceId = options.instanceId === undefined ? nextGuid() : typeof options.instanceId === "string" ? Guid.parse(options.instanceId) : options.instanceId;
  const device = server.addDevice(
    {
      name: type,
      classId: reg.meta.classId,
      instanceId,
      monitored: options.monitored ?? reg.meta.monitored ?? true,
      monitorLatencyNs: options.monitorLatencyNs ?? reg.meta.monitorLatencyNs,
      mmioMegabytes: reg.meta.mmioMegabytes,
      subchannelLimit: reg.meta.subchannelLimit ?? 0,
    },
    handler,
  );
  const store = new DisposableStore();
  store.add(toDisposable(() => child.dispose()));
  return { device, store };
}

export class VmbusSystem {
  readonly sim: Simulation;
  readonly hv: Hypervisor;
  readonly root: DependencyContainer;
  readonly vms: Vm[] = [];
  readonly hostMaxVersion: number;
  private readonly guids: InstanceGuidGenerator;
  private readonly hostStores: DisposableStore[] = [];

  constructor(options: SystemOptions = {}) {
    this.sim = new Simulation({ seed: options.seed, costs: options.costs, tracer: options.tracer });
    this.hv = new Hypervisor(this.sim);
    this.hostMaxVersion = options.hostMaxVersion ?? VMBUS_DEFAULT_MAX_VERSION;
    // Our own root: nothing goes into tsyringe's global container.
    this.root = tsyringeRoot.createChildContainer();
    this.root.registerInstance(SIMULATION, this.sim);
    applyPlugins(this.root, options.plugins ?? []);
    const rng = this.sim.rng.fork("instance guids");
    this.guids = new InstanceGuidGenerator(() => rng.nextU32());
  }

  addVm(options: VmSpec = {}): Vm {
    const partition = this.hv.createVm({
      name: options.name ?? `vm${this.vms.length + 1}`,
      vcpuCount: options.vcpus ?? 1,
      memory: { bytes: options.memoryBytes ?? 32 * 1024 * 1024 },
    });
    const vm = new Vm(this, partition, options);
    this.vms.push(vm);
    return vm;
  }

  /** Host device types registered by the plugins. */
  get hostDeviceTypes(): HostDeviceRegistration[] {
    return resolveAllOrNone(this.root, HOST_DEVICES);
  }

  /**
   * Creates an instance of host device type `type` for `vm` and offers it
   * (at once if the VM already asked for offers: a hot add).
   */
  addHostDevice(vm: Vm, type: string, options: HostDeviceOptions = {}): HostDevice {
    const { device, store } = instantiateHostDevice(vm.hostContainer, vm.server, this.hostDeviceTypes, type, options, () => this.guids.next());
    this.hostStores.push(store);
    return device;
  }

  /** Runs the scheduler until `work` settles and returns its value. */
  run<T>(work: PromiseLike<T> | (() => PromiseLike<T>), what?: string): Promise<T> {
    return this.sim.scheduler.runUntilSettled(work, { what });
  }

  /** Connects every VM's VMBus, takes the offers and probes the drivers. */
  async boot(): Promise<void> {
    await this.run(
      () =>
        Promise.all(
          this.vms.map(async (vm) => {
            await vm.client.connect();
            await vm.client.requestOffers();
          }),
        ),
      "boot",
    );
  }

  async dispose(): Promise<void> {
    for (const vm of this.vms) await vm.store.dispose();
    for (const s of this.hostStores) await s.dispose();
    await this.root.dispose();
  }
}
