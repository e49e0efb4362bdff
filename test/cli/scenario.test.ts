/**
 * The scenario validator, rule by rule: each error names the file, the
 * field path, the value and what is allowed — exact messages, because
 * they are the user interface of a bad scenario.
 */
import { describe, expect, it } from "vitest";
import { validateScenario } from "../../cli/scenario.js";

const F = "s.json";

/** A minimal valid scenario, with one part replaced. */
function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    seed: 1,
    durationMs: 100,
    vms: [{ name: "vm1", vcpus: 2, devices: [{ type: "storage", disks: [{ kind: "memory", sizeBytes: 1048576 }] }] }],
    ...over,
  };
}
const vmWith = (devices: unknown[], extra: Record<string, unknown> = {}) => [{ name: "vm1", vcpus: 2, devices, ...extra }];
const storage = { type: "storage", disks: [{ kind: "memory", sizeBytes: 1048576 }] };
const wl = (w: Record<string, unknown>) => base({ workloads: [{ type: "storage", vm: "vm1", disk: 0, pattern: "randread", blockSize: 4096, queueDepth: 1, ios: 10, ...w }] });

function err(input: unknown): string {
  try {
    validateScenario(input, F);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("validated");
}

describe("validateScenario", () => {
  it("accepts a minimal scenario and fills the defaults", () => {
    const s = validateScenario(base(), F);
    expect(s.vms[0]).toMatchObject({ name: "vm1", vcpus: 2, memoryMiB: 64, maxVersion: "5.3" });
    expect(s.host.maxVersion).toBe("5.3");
    expect(s.workloads).toEqual([]);
  });

  it.each([
    ["top-level unknown key", base({ sede: 1 }), 's.json: sede = 1: is not a known field (known: description, seed, durationMs, settleMs, host, vms, switches, workloads, actions, faults)'],
    ["not an object", [1], "s.json: (top level) = [1]: must be an object {description, seed, durationMs, settleMs, host, vms, switches, workloads, actions, faults}"],
    ["seed", base({ seed: -1 }), "s.json: seed = -1: must be an integer in [0, 4294967295]"],
    ["durationMs", base({ durationMs: 0 }), "s.json: durationMs = 0: must be an integer in [1, 3600000]"],
    ["host.maxVersion", base({ host: { maxVersion: "6.0" } }), 's.json: host.maxVersion = "6.0": must be one of "5.3", "5.2", "5.1", "5.0", "4.1", "4.0", "3.0", "2.4"'],
    ["host.monitorLatencyUs", base({ host: { monitorLatencyUs: 0.05 } }), "s.json: host.monitorLatencyUs = 0.05: must be a multiple of 0.1 in [0.1, 6553.5] (µs)"],
    ["host.costs unknown", base({ host: { costs: { hypercall: 5 } } }), "s.json: host.costs.hypercall = 5: is not a known field (known: hypercallNs, interruptDeliveryNs, messageDeliveryNs, monitorLatencyNs, eomNs, messageQueueDepth, throttleWindowNs, throttleUnnecessaryLimit, throttleSuspendNs)"],
    ["host.costs value", base({ host: { costs: { hypercallNs: -5 } } }), "s.json: host.costs.hypercallNs = -5: must be an integer in [0, 9007199254740991]"],
    ["vms empty", base({ vms: [] }), "s.json: vms = []: must list at least one VM"],
    ["vm unknown key", base({ vms: vmWith([], { cpus: 4 }) }), "s.json: vms[0].cpus = 4: is not a known field (known: name, vcpus, memoryMiB, maxVersion, devices, lostInterruptPollUs, storageTimeoutMs)"],
    ["vm name", base({ vms: [{ name: "a b" }] }), 's.json: vms[0].name = "a b": must be 1-32 characters of A-Z a-z 0-9 _ . -'],
    ["vm name unique", base({ vms: [{ name: "a" }, { name: "a" }] }), 's.json: vms[1].name = "a": must be unique among VMs'],
    ["vcpus", base({ vms: [{ name: "a", vcpus: 0 }] }), "s.json: vms[0].vcpus = 0: must be an integer in [1, 64]"],
    ["memoryMiB", base({ vms: [{ name: "a", memoryMiB: 4 }] }), "s.json: vms[0].memoryMiB = 4: must be an integer in [8, 4096]"],
    ["device type", base({ vms: vmWith([{ type: "gpu" }]) }), 's.json: vms[0].devices[0].type = "gpu": must be one of "storage", "nic", "echo"'],
    ["device unknown key", base({ vms: vmWith([{ ...storage, depth: 2 }]) }), "s.json: vms[0].devices[0].depth = 2: is not a known field (known: type, disks, maxSubchannels, queueDepth)"],
    ["disk sizeBytes (the disk validator's rule)", base({ vms: vmWith([storage, { type: "storage", disks: [{ kind: "memory", sizeBytes: -5 }] }]) }), "s.json: vms[0].devices[1].disks[0].sizeBytes = -5: must be a positive safe integer, a multiple of blockSize 512"],
    ["disk unknown key", base({ vms: vmWith([{ type: "storage", disks: [{ kind: "memory", sizeBytes: 512, readonly: true }] }]) }), "s.json: vms[0].devices[0].disks[0].readonly = true: is not a known field (known: kind, pathId, targetId, lun, readOnly, latency, faults, serial, writeCacheEnabled, sizeBytes, blockSize, chunkBytes)"],
    ["no disks", base({ vms: vmWith([{ type: "storage", disks: [] }]) }), "s.json: vms[0].devices[0].disks = []: must list at least one disk"],
    ["maxSubchannels", base({ vms: vmWith([{ ...storage, maxSubchannels: 65 }]) }), "s.json: vms[0].devices[0].maxSubchannels = 65: must be an integer in [0, 64]"],
    ["nic mac", base({ switches: [{ name: "sw" }], vms: vmWith([{ type: "nic", mac: "00:11:22:33:44", switch: "sw" }]) }), 's.json: vms[0].devices[0].mac = "00:11:22:33:44": must be a MAC address "xx:xx:xx:xx:xx:xx"'],
    ["nic multicast mac", base({ switches: [{ name: "sw" }], vms: vmWith([{ type: "nic", mac: "01:11:22:33:44:55", switch: "sw" }]) }), 's.json: vms[0].devices[0].mac = "01:11:22:33:44:55": must be a unicast address (first octet even)'],
    ["nic switch", base({ switches: [{ name: "sw" }], vms: vmWith([{ type: "nic", mac: "00:11:22:33:44:55", switch: "sw1" }]) }), 's.json: vms[0].devices[0].switch = "sw1": must name a switch ("sw")'],
    ["nic mtu", base({ switches: [{ name: "sw" }], vms: vmWith([{ type: "nic", mac: "00:11:22:33:44:55", switch: "sw", mtu: 9 }]) }), "s.json: vms[0].devices[0].mtu = 9: must be an integer in [68, 9000]"],
    ["duplicate mac", base({ switches: [{ name: "sw" }], vms: vmWith([{ type: "nic", mac: "00:11:22:33:44:55", switch: "sw" }, { type: "nic", mac: "00:11:22:33:44:55", switch: "sw" }]) }), 's.json: vms[0].devices[1].mac = "00:11:22:33:44:55": must be unique (also used by vms[0].devices[0])'],
    ["switch unknown key", base({ switches: [{ name: "sw", capture: "x" }] }), 's.json: switches[0].capture = "x": is not a known field (known: name, pcap)'],
    ["workload type", base({ workloads: [{ type: "fio" }] }), 's.json: workloads[0].type = "fio": must be one of "storage", "ping", "udp"'],
    ["workload vm", wl({ vm: "vm9" }), 's.json: workloads[0].vm = "vm9": must name a VM ("vm1")'],
    ["workload disk", wl({ disk: 3 }), "s.json: workloads[0].disk = 3: must be the LUN of a disk on vm1's storage controller 0 (0)"],
    ["workload pattern", wl({ pattern: "random" }), 's.json: workloads[0].pattern = "random": must be one of "randread", "randwrite", "seqread", "seqwrite", "randrw"'],
    ["workload blockSize", wl({ blockSize: 1000 }), "s.json: workloads[0].blockSize = 1000: must be a multiple of the disk's block size 512 in [512, 1048576]"],
    ["workload queueDepth", wl({ queueDepth: 0 }), "s.json: workloads[0].queueDepth = 0: must be an integer in [1, 1024]"],
    ["workload ios and durationMs", wl({ durationMs: 5 }), "s.json: workloads[0].ios = 10: give exactly one of ios (a count) and durationMs (virtual time)"],
    ["readPercent only with randrw", wl({ readPercent: 50 }), 's.json: workloads[0].readPercent = 50: is only allowed with pattern "randrw"'],
    ["readPercent range", wl({ pattern: "randrw", readPercent: 101 }), "s.json: workloads[0].readPercent = 101: must be an integer in [0, 100]"],
    ["ping needs a nic", base({ workloads: [{ type: "ping", from: "vm1", to: "vm1", count: 1 }] }), 's.json: workloads[0].from = "vm1": must name a VM with a nic device'],
    [
      "udp bytes must fit the smaller MTU",
      base({
        switches: [{ name: "sw" }],
        vms: [
          { name: "a", devices: [{ type: "nic", mac: "00:15:5d:00:00:01", switch: "sw", mtu: 9000 }] },
          { name: "b", devices: [{ type: "nic", mac: "00:15:5d:00:00:02", switch: "sw" }] },
        ],
        workloads: [{ type: "udp", from: "a", to: "b", bytes: 1473, count: 1 }],
      }),
      "s.json: workloads[0].bytes = 1473: must be an integer in [1, 1472]",
    ],
    ["switch pcap", base({ switches: [{ name: "sw", pcap: 5 }] }), 's.json: switches[0].pcap = 5: must be a file path, or true for "out/sw.pcap"'],
    ["action atMs", base({ actions: [{ atMs: 500, vm: "vm1", path: "channels/1/cpu", value: 1 }] }), "s.json: actions[0].atMs = 500: must be a number in [0, durationMs 100]"],
    ["action path", base({ actions: [{ atMs: 1, vm: "vm1", path: "chan/1/cpu", value: 1 }] }), 's.json: actions[0].path = "chan/1/cpu": must be "channels/<relid>/<attribute>" or an absolute "/sys/..." path'],
    ["action value", base({ actions: [{ atMs: 1, vm: "vm1", path: "channels/1/cpu", value: true }] }), "s.json: actions[0].value = true: must be a string or a number"],
    ["lowLatency action device", base({ actions: [{ atMs: 1, vm: "vm1", device: 4, lowLatency: true }] }), "s.json: actions[0].device = 4: must be an integer in [0, 0]"],
    ["lowLatency action unknown key", base({ actions: [{ atMs: 1, vm: "vm1", device: 0, lowlatency: true }] }), "s.json: actions[0].lowlatency = true: is not a known field (known: atMs, vm, device, lowLatency)"],
  ])("%s", (_name, input, message) => {
    expect(err(input)).toBe(message);
  });

  it("switch pcap: true means out/<name>.pcap; a path is kept", () => {
    const s = validateScenario(base({ switches: [{ name: "lan", pcap: true }, { name: "x", pcap: "cap/x.pcap" }, { name: "y" }] }), F);
    expect(s.switches).toEqual([{ name: "lan", pcap: "out/lan.pcap" }, { name: "x", pcap: "cap/x.pcap" }, { name: "y" }]);
  });

  it("gives an unnumbered disk the lowest free LUN, as storvsp does", () => {
    const s = validateScenario(
      base({
        vms: vmWith([{ type: "storage", disks: [{ kind: "memory", sizeBytes: 1048576, lun: 0 }, { kind: "memory", sizeBytes: 1048576 }] }]),
        workloads: [{ type: "storage", vm: "vm1", disk: 1, pattern: "seqwrite", blockSize: 4096, queueDepth: 2, durationMs: 5 }],
      }),
      F,
    );
    expect(s.workloads[0]).toMatchObject({ disk: 1, durationMs: 5, readPercent: 50 });
  });
});
