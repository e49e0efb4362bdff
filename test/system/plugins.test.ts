/**
 * Every plugin shipped with the project, together in one system: each
 * registered guest driver and host device type resolves from the
 * containers the core builds, with every token it injects.
 */
import { describe, expect, it } from "vitest";
import {
  GUEST_DRIVERS,
  HOST_DEVICES,
  HOST_DEVICE_CONFIG,
  HV_DEVICE,
  SIMULATION,
  VMBUS_CHANNEL,
  VM_CONTEXT,
  VmbusSystem,
} from "../../core/index.js";
import { echoPlugin } from "../../drivers/echo/index.js";
import { networkPlugin } from "../../drivers/netvsc/index.js";
import { storagePlugin } from "../../drivers/storvsc/index.js";

describe("all plugins in one system", () => {
  it("registers distinct drivers and devices, binds each device, and resolves every token", async () => {
    const sys = new VmbusSystem({ seed: 9, plugins: [echoPlugin, storagePlugin, networkPlugin] });
    expect(sys.root.resolveAll(GUEST_DRIVERS).map((r) => r.meta.name)).toEqual(["echo", "storvsc", "netvsc"]);
    expect(sys.root.resolveAll(HOST_DEVICES).map((r) => r.meta.name)).toEqual(["echo", "storvsp", "netvsp"]);
    const vm = sys.addVm({ vcpus: 2, memoryBytes: 64 << 20 });
    sys.addHostDevice(vm, "echo");
    sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: 1 << 20 }] } });
    sys.addHostDevice(vm, "netvsp", { config: { mac: "00:15:5d:12:34:56" } });
    await sys.boot();
    expect(vm.client.devices.map((d) => d.driverName)).toEqual(["echo", "storvsc", "netvsc"]);
    for (const dev of vm.client.devices) {
      const b = vm.bus.binding(dev)!;
      expect(b.container.resolve(HV_DEVICE)).toBe(dev);
      expect(b.container.resolve(VMBUS_CHANNEL)).toBe(dev.primary);
      expect(b.container.resolve(VM_CONTEXT)).toBe(vm);
      expect(b.container.resolve(SIMULATION)).toBe(sys.sim);
      expect(b.container.resolve(b.registration.driver)).toBeInstanceOf(b.registration.driver);
    }
    const configs: Record<string, unknown> = { echo: {}, storvsp: { disks: [] }, netvsp: { mac: "00:15:5d:00:00:09" } };
    for (const reg of sys.hostDeviceTypes) {
      const c = vm.hostContainer.createChildContainer();
      c.registerInstance(HOST_DEVICE_CONFIG, configs[reg.meta.name]);
      expect(c.resolve(reg.device)).toBeInstanceOf(reg.device);
    }
  });
});
