/**
 * The scenario's `faults` (and the VM fields that go with them): each rule
 * of the validator with its exact message — file, field path, value, what
 * is allowed — and the defaults it fills in.
 */
import { describe, expect, it } from "vitest";
import { validateScenario } from "../../cli/scenario.js";

const F = "f.json";

function scenario(faults: unknown[], vmExtra: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    durationMs: 100,
    switches: [{ name: "sw" }],
    vms: [
      {
        name: "vm1",
        vcpus: 2,
        devices: [
          { type: "storage", disks: [{ kind: "memory", sizeBytes: 1048576 }, { kind: "memory", sizeBytes: 1048576, blockSize: 4096 }] },
          { type: "nic", mac: "00:15:5d:00:00:01", switch: "sw" },
          { type: "echo" },
        ],
        ...vmExtra,
      },
      { name: "vm2", devices: [] },
    ],
    faults,
    ...top,
  };
}

function err(input: unknown): string {
  try {
    validateScenario(input, F);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("validated");
}

describe("scenario faults", () => {
  it("accepts every kind and fills the defaults", () => {
    const s = validateScenario(
      scenario(
        [
          { kind: "interrupt-drop", vm: "vm1", atMs: 1 },
          { kind: "interrupt-delay", vm: "vm1", atMs: 1, durationMs: 5, delayUs: 300 },
          { kind: "monitor-delay", vm: "vm1", atMs: 2.5, delayUs: 1000, probability: 0.5 },
          { kind: "host-stall", vm: "vm1", device: 0, atMs: 3 },
          { kind: "rescind", vm: "vm1", device: 1, atMs: 90 },
          { kind: "disk-error", vm: "vm1", device: 0, disk: 1, firstLba: 10, count: 5, atMs: 0 },
          { kind: "throttle", vm: "vm1", atMs: 4, durationMs: 10 },
          { kind: "ring-full", vm: "vm1", device: 2, atMs: 5, durationMs: 20 },
          { kind: "switch-drop", vm: "vm1", device: 1, atMs: 0, probability: 0.25 },
        ],
        { lostInterruptPollUs: 150, storageTimeoutMs: 40 },
      ),
      F,
    );
    expect(s.faults).toEqual([
      { kind: "interrupt-drop", vm: "vm1", atMs: 1, probability: 1 },
      { kind: "interrupt-delay", vm: "vm1", atMs: 1, durationMs: 5, delayUs: 300, probability: 1 },
      { kind: "monitor-delay", vm: "vm1", atMs: 2.5, delayUs: 1000, probability: 0.5 },
      { kind: "host-stall", vm: "vm1", device: 0, atMs: 3 },
      { kind: "rescind", vm: "vm1", device: 1, atMs: 90 },
      { kind: "disk-error", vm: "vm1", device: 0, disk: 1, firstLba: 10, count: 5, op: "both", atMs: 0 },
      { kind: "throttle", vm: "vm1", atMs: 4, durationMs: 10 },
      { kind: "ring-full", vm: "vm1", device: 2, atMs: 5, durationMs: 20, requests: 32, bytes: 4000 },
      { kind: "switch-drop", vm: "vm1", device: 1, atMs: 0, probability: 0.25 },
    ]);
    expect(s.vms[0]).toMatchObject({ lostInterruptPollUs: 150, storageTimeoutMs: 40 });
    // The settle bound covers the longest storage timeout (vm2 keeps the driver's 60 s).
    expect(s.settleMs).toBe(61_000);
  });

  it("settleMs: given, or the longest storage timeout + 1 s", () => {
    expect(validateScenario(scenario([], {}, { settleMs: 500 }), F).settleMs).toBe(500);
    const two = scenario([]);
    (two["vms"] as Record<string, unknown>[])[1]!["storageTimeoutMs"] = 100;
    (two["vms"] as Record<string, unknown>[])[0]!["storageTimeoutMs"] = 30;
    expect(validateScenario(two, F).settleMs).toBe(1100);
  });

  it.each([
    ["no faults array", scenario([]) && { ...scenario([]), faults: 3 }, "f.json: faults = 3: must be an array of faults {kind, vm, atMs, ...}"],
    ["unknown kind", scenario([{ kind: "meteor", vm: "vm1", atMs: 0 }]), 'f.json: faults[0].kind = "meteor": must be one of "interrupt-drop", "interrupt-delay", "monitor-delay", "host-stall", "rescind", "disk-error", "throttle", "ring-full", "switch-drop"'],
    ["unknown key", scenario([{ kind: "throttle", vm: "vm1", atMs: 0, durationMs: 1, device: 0 }]), "f.json: faults[0].device = 0: is not a known field (known: kind, vm, atMs, durationMs)"],
    ["unknown vm", scenario([{ kind: "throttle", vm: "vm9", atMs: 0, durationMs: 1 }]), 'f.json: faults[0].vm = "vm9": must name a VM ("vm1", "vm2")'],
    ["atMs past the run", scenario([{ kind: "throttle", vm: "vm1", atMs: 101, durationMs: 1 }]), "f.json: faults[0].atMs = 101: must be a number of ms in [0, 100]"],
    ["durationMs required", scenario([{ kind: "throttle", vm: "vm1", atMs: 0 }]), 'f.json: faults[0].durationMs = (missing): is required for kind "throttle"'],
    ["durationMs zero", scenario([{ kind: "interrupt-drop", vm: "vm1", atMs: 0, durationMs: 0 }]), "f.json: faults[0].durationMs = 0: must be a number of ms in (0, 3600000]"],
    ["probability", scenario([{ kind: "interrupt-drop", vm: "vm1", atMs: 0, probability: 0 }]), "f.json: faults[0].probability = 0: must be a probability in (0, 1]"],
    ["delayUs", scenario([{ kind: "interrupt-delay", vm: "vm1", atMs: 0 }]), "f.json: faults[0].delayUs = (missing): must be a number of µs in [0.001, 10000000]"],
    ["device of the wrong type", scenario([{ kind: "switch-drop", vm: "vm1", device: 0, atMs: 0 }]), 'f.json: faults[0].device = 0: must be the index in vm1.devices of a "nic" device (1)'],
    ["ring-full needs an echo device", scenario([{ kind: "ring-full", vm: "vm1", device: 0, atMs: 0, durationMs: 1 }]), 'f.json: faults[0].device = 0: must be the index in vm1.devices of a "echo" device (2)'],
    ["a VM without such a device", scenario([{ kind: "host-stall", vm: "vm2", device: 0, atMs: 0 }]), 'f.json: faults[0].vm = "vm2": must have a "storage" or "nic" or "echo" device for kind "host-stall"'],
    ["disk LUN", scenario([{ kind: "disk-error", vm: "vm1", device: 0, disk: 7, firstLba: 0, count: 1, atMs: 0 }]), "f.json: faults[0].disk = 7: must be the LUN of a disk of vm1.devices[0] (0, 1)"],
    ["LBA past the disk", scenario([{ kind: "disk-error", vm: "vm1", device: 0, disk: 1, firstLba: 256, count: 1, atMs: 0 }]), "f.json: faults[0].firstLba = 256: must be an integer in [0, 255]"],
    ["count past the disk", scenario([{ kind: "disk-error", vm: "vm1", device: 0, disk: 1, firstLba: 250, count: 7, atMs: 0 }]), "f.json: faults[0].count = 7: must be an integer in [1, 6]"],
    ["op", scenario([{ kind: "disk-error", vm: "vm1", device: 0, disk: 0, firstLba: 0, count: 1, op: "erase", atMs: 0 }]), 'f.json: faults[0].op = "erase": must be one of "read", "write", "both"'],
    ["ring-full bytes", scenario([{ kind: "ring-full", vm: "vm1", device: 2, atMs: 0, durationMs: 1, bytes: 5000 }]), "f.json: faults[0].bytes = 5000: must be an integer in [1, 4000]"],
    ["watchdog period", scenario([], { lostInterruptPollUs: 0.5 }), "f.json: vms[0].lostInterruptPollUs = 0.5: must be a number of µs in [1, 1000000] (ns resolution)"],
    ["storage timeout", scenario([], { storageTimeoutMs: 0 }), "f.json: vms[0].storageTimeoutMs = 0: must be an integer in [1, 600000]"],
    ["settleMs", scenario([], {}, { settleMs: -1 }), "f.json: settleMs = -1: must be an integer in [1, 3600000]"],
  ])("%s", (_name, input, message) => {
    expect(err(input)).toBe(message);
  });
});
