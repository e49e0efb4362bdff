import { describe, expect, it } from "vitest";
import { container as globalContainer, inject, injectable, type DependencyContainer } from "tsyringe";
import {
  DriverBus,
  ErrnoError,
  GUEST_DRIVERS,
  Guid,
  applyPlugins,
  registerGuestDriver,
  token,
  type BusDevice,
  type VmbusDriver,
} from "../../core/index.js";

const CLASS_A = Guid.parse("11111111-2222-3333-4444-555555555555");
const CLASS_B = Guid.parse("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");

interface FakeDevice extends BusDevice {
  log: string[];
}
const DEVICE = token<FakeDevice>("test.Device");

let nextInstance = 0;
function device(classId: Guid): FakeDevice {
  return { name: `dev${nextInstance++}`, classId, driverOverride: null, log: [] };
}

@injectable()
class DriverA implements VmbusDriver {
  constructor(@inject(DEVICE) readonly device: FakeDevice) {}
  probe(): void {
    this.device.log.push("a.probe");
  }
  remove(): void {
    this.device.log.push("a.remove");
  }
  suspend(): void {
    this.device.log.push("a.suspend");
  }
  resume(): void {
    this.device.log.push("a.resume");
  }
}

@injectable()
class DriverB implements VmbusDriver {
  constructor(@inject(DEVICE) readonly device: FakeDevice) {}
  async probe(): Promise<void> {
    await Promise.resolve();
    if (this.device.name.endsWith("fail")) throw new Error("probe failed on purpose");
    this.device.log.push("b.probe");
  }
  remove(): void {
    this.device.log.push("b.remove");
  }
}

function pluginA(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "drv_a", classIds: [CLASS_A] }, DriverA);
}
function pluginB(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "drv_b", classIds: [CLASS_B] }, DriverB);
}

function makeBus(): { root: DependencyContainer; bus: DriverBus<FakeDevice> } {
  const root = globalContainer.createChildContainer();
  applyPlugins(root, [pluginA, pluginB]);
  const vm = root.createChildContainer();
  const bus = new DriverBus<FakeDevice>(vm, (child, dev) => child.registerInstance(DEVICE, dev));
  return { root, bus };
}

describe("DriverBus (vmbus_match / vmbus_probe)", () => {
  it("binds by class GUID, one driver instance per device, and removes in order", async () => {
    const { bus } = makeBus();
    const d1 = device(CLASS_A);
    const d2 = device(CLASS_A);
    const b1 = await bus.add(d1);
    const b2 = await bus.add(d2);
    expect(b1?.registration.meta.name).toBe("drv_a");
    expect(b1?.driver).not.toBe(b2?.driver);
    expect((b1?.driver as DriverA).device).toBe(d1);
    await bus.remove(d1);
    expect(d1.log).toEqual(["a.probe", "a.remove"]);
    expect(bus.binding(d1)).toBeUndefined();
    await bus.suspendAll();
    await bus.resumeAll();
    expect(d2.log).toEqual(["a.probe", "a.suspend", "a.resume"]);
  });

  it("a probe that throws leaves that device unbound with the error recorded; others are unaffected", async () => {
    const { bus } = makeBus();
    const bad: FakeDevice = { name: "devfail", classId: CLASS_B, driverOverride: null, log: [] };
    const good = device(CLASS_B);
    expect(await bus.add(bad)).toBeUndefined();
    expect(await bus.add(good)).toBeDefined();
    expect((bus.probeError(bad) as Error).message).toBe("probe failed on purpose");
    expect(good.log).toEqual(["b.probe"]);
    expect(bus.allDevices).toHaveLength(2);
    await expect(bus.suspendAll()).rejects.toThrow(/EOPNOTSUPP.*drv_b has no suspend/);
  });

  it("driver_override excludes other drivers and forces a bind to the named one", async () => {
    const { bus } = makeBus();
    const d = device(CLASS_A);
    d.driverOverride = "drv_b";
    const b = await bus.add(d);
    expect(b?.registration.meta.name).toBe("drv_b");
    expect(b?.forced).toBe(true);
    const unknown = device(Guid.parse("99999999-0000-0000-0000-000000000000"));
    expect(await bus.add(unknown)).toBeUndefined();
  });

  it("new_id adds a dynamic id and attaches unbound devices; duplicates give EEXIST", async () => {
    const { bus } = makeBus();
    const g = "99999999-0000-0000-0000-000000000001";
    const d = device(Guid.parse(g));
    expect(await bus.add(d)).toBeUndefined();
    await bus.newId("drv_a", g);
    expect(bus.binding(d)?.registration.meta.name).toBe("drv_a");
    await expect(bus.newId("drv_a", g)).rejects.toThrow(ErrnoError);
    await expect(bus.newId("drv_a", CLASS_A.toString())).rejects.toThrow(/EEXIST/);
    await expect(bus.newId("nope", g)).rejects.toThrow(/ENODEV/);
    await expect(bus.newId("drv_a", "not-a-guid")).rejects.toThrow(/EINVAL/);
    bus.removeId("drv_a", g);
    expect(() => bus.removeId("drv_a", g)).toThrow(/ENODEV/);
  });

  it("plugin registrations stay in the container they were applied to", () => {
    const a = makeBus();
    const other = globalContainer.createChildContainer();
    expect(other.isRegistered(GUEST_DRIVERS, true)).toBe(false);
    expect(globalContainer.isRegistered(GUEST_DRIVERS)).toBe(false);
    expect(a.root.resolveAll(GUEST_DRIVERS).map((r) => r.meta.name)).toEqual(["drv_a", "drv_b"]);
    expect(() => applyPlugins(globalContainer.createChildContainer(), [pluginA, pluginA])).toThrow(/registered twice/);
  });
});
