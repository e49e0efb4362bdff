/**
 * Scenario files: what a `vmbus-sim run` simulates, as JSON — the host, the
 * VMs and their devices, the switches, the workloads and timed actions.
 *
 * The validator is hand-written so each error can say exactly where it is:
 * the FILE, the FIELD path (`vms[0].devices[1].disks[0].sizeBytes`), the
 * VALUE and what is ALLOWED. Unknown keys are errors: a misspelt
 * `queueDepht` must not silently run with the default. Disk specs are
 * checked by the storage sample's own validator (one set of rules), and its
 * errors re-worded into ours.
 */
import { readFileSync } from "node:fs";
import { defaultCostModel, formatVersion, MONITOR_LATENCY_UNIT_NS, resolveCostModel, VMBUS_DEFAULT_MAX_VERSION, VMBUS_VERSIONS, type CostModel } from "../core/index.js";
import { ECHO_MAX_DATA } from "../drivers/echo/protocol.js";
import { DiskSpecError, validateDiskSpec, type DiskSpec } from "../drivers/storvsc/host/disk-spec.js";
import { ScenarioError } from "./errors.js";

export interface HostScenario {
  /** Highest VMBus version the host offers, e.g. "5.3". */
  readonly maxVersion: string;
  /** Monitor latency of monitored channels, µs (multiple of 0.1). */
  readonly monitorLatencyUs?: number;
  readonly costs: Partial<CostModel>;
}

export interface StorageDeviceScenario {
  readonly type: "storage";
  readonly disks: readonly DiskSpec[];
  readonly maxSubchannels?: number;
  readonly queueDepth?: number;
}
export interface NicDeviceScenario {
  readonly type: "nic";
  readonly mac: string;
  readonly switch: string;
  readonly mtu?: number;
}
export interface EchoDeviceScenario {
  readonly type: "echo";
}
export type DeviceScenario = StorageDeviceScenario | NicDeviceScenario | EchoDeviceScenario;

export interface VmScenario {
  readonly name: string;
  readonly vcpus: number;
  readonly memoryMiB: number;
  readonly maxVersion: string;
  readonly devices: readonly DeviceScenario[];
  /** Period of the guest's lost-interrupt watchdog, µs (the simulator's recovery model; absent: off). */
  readonly lostInterruptPollUs?: number;
  /** storvsc request timeout of this VM's controllers, ms of virtual time (default 60000, the driver's). */
  readonly storageTimeoutMs?: number;
}

export interface SwitchScenario {
  readonly name: string;
  /** Capture file (relative: to the working directory); `true` in the file means "out/<name>.pcap". */
  readonly pcap?: string;
}

export const STORAGE_PATTERNS = ["randread", "randwrite", "seqread", "seqwrite", "randrw"] as const;
export type StoragePattern = (typeof STORAGE_PATTERNS)[number];

export interface StorageWorkload {
  readonly type: "storage";
  readonly vm: string;
  /** Index of the storage controller among the VM's storage devices (default 0). */
  readonly controller: number;
  /** LUN of the disk on that controller. */
  readonly disk: number;
  readonly pattern: StoragePattern;
  readonly blockSize: number;
  readonly queueDepth: number;
  readonly ios?: number;
  readonly durationMs?: number;
  /** Share of reads in a randrw mix, percent (default 50). */
  readonly readPercent: number;
}
export interface PingWorkload {
  readonly type: "ping";
  readonly from: string;
  readonly to: string;
  readonly count: number;
}
export interface UdpWorkload {
  readonly type: "udp";
  readonly from: string;
  readonly to: string;
  readonly bytes: number;
  readonly count: number;
}
export type Workload = StorageWorkload | PingWorkload | UdpWorkload;

export interface SysfsAction {
  readonly atMs: number;
  readonly vm: string;
  /** `channels/<relid>/<attr>` (the device is found by relid) or an absolute `/sys/...` path. */
  readonly path: string;
  readonly value: string;
}
export interface LowLatencyAction {
  readonly atMs: number;
  readonly vm: string;
  /** Index into the VM's `devices`. */
  readonly device: number;
  readonly lowLatency: boolean;
}
export type Action = SysfsAction | LowLatencyAction;

export const FAULT_KINDS = [
  "interrupt-drop",
  "interrupt-delay",
  "monitor-delay",
  "host-stall",
  "rescind",
  "disk-error",
  "throttle",
  "ring-full",
  "switch-drop",
] as const;
export type FaultKindName = (typeof FAULT_KINDS)[number];

interface FaultBase {
  /** Virtual time after the run starts (after boot), ms. */
  readonly atMs: number;
  readonly vm: string;
}
/** Host → guest channel interrupts of `vm` dropped with `probability`; absent durationMs: for ever. */
export interface InterruptDropFault extends FaultBase {
  readonly kind: "interrupt-drop";
  readonly durationMs?: number;
  readonly probability: number;
}
/** Channel interrupts of `vm` delivered `delayUs` late, with `probability`. */
export interface InterruptDelayFault extends FaultBase {
  readonly kind: "interrupt-delay";
  readonly durationMs?: number;
  readonly delayUs: number;
  readonly probability: number;
}
/** Monitor scans of `vm` `delayUs` late, with `probability`. */
export interface MonitorDelayFault extends FaultBase {
  readonly kind: "monitor-delay";
  readonly durationMs?: number;
  readonly delayUs: number;
  readonly probability: number;
}
/** The host device `vm.devices[device]` stops answering; absent durationMs: for ever. */
export interface HostStallFaultScenario extends FaultBase {
  readonly kind: "host-stall";
  readonly device: number;
  readonly durationMs?: number;
}
/** The host rescinds `vm.devices[device]` (I/O in flight fails). */
export interface RescindFault extends FaultBase {
  readonly kind: "rescind";
  readonly device: number;
}
/** MEDIUM ERROR on `count` blocks from `firstLba` of LUN `disk` of the storage device. */
export interface DiskErrorFault extends FaultBase {
  readonly kind: "disk-error";
  readonly device: number;
  readonly disk: number;
  readonly firstLba: number;
  readonly count: number;
  readonly op: "read" | "write" | "both";
  readonly durationMs?: number;
}
/** Every vCPU of `vm` suspended for `durationMs` (a throttled guest). */
export interface ThrottleFault extends FaultBase {
  readonly kind: "throttle";
  readonly durationMs: number;
}
/** The echo device `vm.devices[device]` stalls for `durationMs` while `requests` echoes of `bytes` fill its ring. */
export interface RingFullFault extends FaultBase {
  readonly kind: "ring-full";
  readonly device: number;
  readonly durationMs: number;
  readonly requests: number;
  readonly bytes: number;
}
/** The switch port of NIC `vm.devices[device]` drops frames with `probability` (1: all). */
export interface SwitchDropFault extends FaultBase {
  readonly kind: "switch-drop";
  readonly device: number;
  readonly durationMs?: number;
  readonly probability: number;
}
export type FaultScenario =
  | InterruptDropFault
  | InterruptDelayFault
  | MonitorDelayFault
  | HostStallFaultScenario
  | RescindFault
  | DiskErrorFault
  | ThrottleFault
  | RingFullFault
  | SwitchDropFault;

/** Largest echo payload (the echo protocol's ECHO_MAX_DATA: keeps a packet under the 4 KiB default maximum). */
export const RING_FULL_MAX_BYTES = ECHO_MAX_DATA;
/** Default storvsc request timeout (the driver's: the SRB time_out_value, 60 s). */
export const DEFAULT_STORAGE_TIMEOUT_MS = 60_000;

export interface Scenario {
  /** Where it was read from (for messages). */
  readonly file: string;
  readonly description?: string;
  readonly seed: number;
  /** Virtual time after boot within which workloads issue I/O. */
  readonly durationMs: number;
  readonly host: HostScenario;
  readonly vms: readonly VmScenario[];
  readonly switches: readonly SwitchScenario[];
  readonly workloads: readonly Workload[];
  readonly actions: readonly Action[];
  /** Injected faults, in file order. */
  readonly faults: readonly FaultScenario[];
  /**
   * Virtual time after `durationMs` within which every outstanding request
   * must complete or fail; what is still outstanding then is reported lost.
   * Default: the longest storage timeout of the VMs + 1 s.
   */
  readonly settleMs: number;
}

type Json = Record<string, unknown>;

const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const VERSION_NAMES = VMBUS_VERSIONS.map(formatVersion);
const NAME_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const MAX_DURATION_MS = 3_600_000;

/** Walks one file's JSON, carrying the file name into every error. */
class Checker {
  constructor(readonly file: string) {}

  fail(field: string, value: unknown, allowed: string): never {
    throw new ScenarioError(this.file, field, value, allowed);
  }

  object(field: string, v: unknown, keys: readonly string[], shape: string): Json {
    if (!isRecord(v)) this.fail(field === "" ? "(top level)" : field, v, `must be an object ${shape}`);
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) this.fail(field === "" ? k : `${field}.${k}`, v[k], `is not a known field (known: ${keys.join(", ")})`);
    }
    return v;
  }

  array(field: string, v: unknown, what: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, v, `must be an array of ${what}`);
    return v;
  }

  int(field: string, v: unknown, min: number, max: number): number {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) this.fail(field, v, `must be an integer in [${min}, ${max}]`);
    return v;
  }

  optInt(field: string, v: unknown, min: number, max: number): number | undefined {
    return v === undefined ? undefined : this.int(field, v, min, max);
  }

  str(field: string, v: unknown, re: RegExp, rule: string): string {
    if (typeof v !== "string" || !re.test(v)) this.fail(field, v, rule);
    return v;
  }

  oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
    if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) this.fail(field, v, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
    return v as T;
  }
}

function checkVersion(c: Checker, field: string, v: unknown): string {
  if (v === undefined) return formatVersion(VMBUS_DEFAULT_MAX_VERSION);
  return c.oneOf(field, v, VERSION_NAMES);
}

function checkHost(c: Checker, v: unknown): HostScenario {
  if (v === undefined) return { maxVersion: checkVersion(c, "host.maxVersion", undefined), costs: {} };
  const o = c.object("host", v, ["maxVersion", "monitorLatencyUs", "costs"], "{maxVersion, monitorLatencyUs, costs}");
  const maxVersion = checkVersion(c, "host.maxVersion", o["maxVersion"]);
  let monitorLatencyUs: number | undefined;
  if (o["monitorLatencyUs"] !== undefined) {
    const m = o["monitorLatencyUs"];
    const units = typeof m === "number" ? Math.round((m * 1000) / MONITOR_LATENCY_UNIT_NS) : NaN;
    // Hyper-V counts monitor latency in 100 ns units in a u16.
    if (typeof m !== "number" || units < 1 || units > 0xffff || Math.abs(units * MONITOR_LATENCY_UNIT_NS - m * 1000) > 1e-6) {
      c.fail("host.monitorLatencyUs", m, "must be a multiple of 0.1 in [0.1, 6553.5] (µs)");
    }
    monitorLatencyUs = m;
  }
  const costs: Record<string, number> = {};
  if (o["costs"] !== undefined) {
    const keys = Object.keys(defaultCostModel);
    const co = c.object("host.costs", o["costs"], keys, `{${keys.join(", ")}}`);
    for (const [k, x] of Object.entries(co)) costs[k] = c.int(`host.costs.${k}`, x, 0, Number.MAX_SAFE_INTEGER);
    try {
      resolveCostModel(costs);
    } catch (e) {
      // The cost model knows finer rules (positive windows, monitor units); keep its wording.
      const err = e as { field?: string; value?: unknown; limit?: string; message: string };
      c.fail(`host.costs.${err.field ?? "?"}`, err.value, err.limit ?? err.message);
    }
  }
  return { maxVersion, ...(monitorLatencyUs !== undefined ? { monitorLatencyUs } : {}), costs: costs as Partial<CostModel> };
}

function checkDevice(c: Checker, where: string, v: unknown, switches: readonly string[]): DeviceScenario {
  if (!isRecord(v)) c.fail(where, v, 'must be an object with type "storage", "nic" or "echo"');
  const type = c.oneOf(`${where}.type`, v["type"], ["storage", "nic", "echo"] as const);
  switch (type) {
    case "storage": {
      const o = c.object(where, v, ["type", "disks", "maxSubchannels", "queueDepth"], "{type, disks, maxSubchannels?, queueDepth?}");
      const disks = c.array(`${where}.disks`, o["disks"], "disk specs").map((d, i) => {
        try {
          return validateDiskSpec(d, `${where}.disks[${i}]`);
        } catch (e) {
          if (e instanceof DiskSpecError) c.fail(e.field, e.value, e.limit);
          throw e;
        }
      });
      if (disks.length === 0) c.fail(`${where}.disks`, o["disks"], "must list at least one disk");
      const maxSubchannels = c.optInt(`${where}.maxSubchannels`, o["maxSubchannels"], 0, 64);
      const queueDepth = c.optInt(`${where}.queueDepth`, o["queueDepth"], 1, 65536);
      return { type, disks, ...(maxSubchannels !== undefined ? { maxSubchannels } : {}), ...(queueDepth !== undefined ? { queueDepth } : {}) };
    }
    case "nic": {
      const o = c.object(where, v, ["type", "mac", "switch", "mtu"], "{type, mac, switch, mtu?}");
      const mac = c.str(`${where}.mac`, o["mac"], MAC_RE, 'must be a MAC address "xx:xx:xx:xx:xx:xx"');
      if (((parseInt(mac.slice(0, 2), 16) & 1) !== 0)) c.fail(`${where}.mac`, mac, "must be a unicast address (first octet even)");
      const sw = o["switch"];
      if (typeof sw !== "string" || !switches.includes(sw)) c.fail(`${where}.switch`, sw, switches.length === 0 ? "must name a switch, but the scenario defines none" : `must name a switch (${switches.map((s) => JSON.stringify(s)).join(", ")})`);
      // netvsp's range (RNDIS OID_GEN_MAXIMUM_FRAME_SIZE: jumbo frames up to 9000).
      const mtu = c.optInt(`${where}.mtu`, o["mtu"], 68, 9000);
      return { type, mac: mac.toLowerCase(), switch: sw, ...(mtu !== undefined ? { mtu } : {}) };
    }
    case "echo":
      c.object(where, v, ["type"], "{type}");
      return { type };
  }
}

/** The LUN each disk of a controller ends up at (storvsp gives an unnumbered disk the lowest free LUN at its path/target). */
export function effectiveLuns(disks: readonly DiskSpec[]): { lun: number; blockSize: number; sizeBytes: number | undefined }[] {
  const used = new Map<string, Set<number>>();
  for (const d of disks) if (d.lun !== undefined) {
    const key = `${d.pathId ?? 0}:${d.targetId ?? 0}`;
    used.set(key, (used.get(key) ?? new Set()).add(d.lun));
  }
  return disks.map((d) => {
    let lun = d.lun;
    if (lun === undefined) {
      const key = `${d.pathId ?? 0}:${d.targetId ?? 0}`;
      const set = used.get(key) ?? new Set<number>();
      lun = 0;
      while (set.has(lun)) lun++;
      set.add(lun);
      used.set(key, set);
    }
    return { lun, blockSize: d.blockSize ?? 512, sizeBytes: d.sizeBytes };
  });
}

function checkWorkload(c: Checker, where: string, v: unknown, vms: readonly VmScenario[]): Workload {
  if (!isRecord(v)) c.fail(where, v, 'must be an object with type "storage", "ping" or "udp"');
  const type = c.oneOf(`${where}.type`, v["type"], ["storage", "ping", "udp"] as const);
  const vmNames = vms.map((m) => JSON.stringify(m.name)).join(", ");
  const vmByName = (field: string, x: unknown): VmScenario => {
    const vm = vms.find((m) => m.name === x);
    if (vm === undefined) c.fail(field, x, `must name a VM (${vmNames})`);
    return vm;
  };
  if (type === "storage") {
    const o = c.object(
      where,
      v,
      ["type", "vm", "controller", "disk", "pattern", "blockSize", "queueDepth", "ios", "durationMs", "readPercent"],
      "{type, vm, disk, pattern, blockSize, queueDepth, ios | durationMs, readPercent?, controller?}",
    );
    const vm = vmByName(`${where}.vm`, o["vm"]);
    const controllers = vm.devices.filter((d): d is StorageDeviceScenario => d.type === "storage");
    if (controllers.length === 0) c.fail(`${where}.vm`, o["vm"], "must name a VM with a storage device");
    const controller = c.optInt(`${where}.controller`, o["controller"], 0, controllers.length - 1) ?? 0;
    const luns = effectiveLuns((controllers[controller] as StorageDeviceScenario).disks);
    const lun = o["disk"];
    const disk = luns.find((l) => l.lun === lun);
    if (disk === undefined) c.fail(`${where}.disk`, lun, `must be the LUN of a disk on ${vm.name}'s storage controller ${controller} (${luns.map((l) => l.lun).join(", ")})`);
    const pattern = c.oneOf(`${where}.pattern`, o["pattern"], STORAGE_PATTERNS);
    const bs = o["blockSize"];
    if (typeof bs !== "number" || !Number.isSafeInteger(bs) || bs < disk.blockSize || bs > 1024 * 1024 || bs % disk.blockSize !== 0) {
      c.fail(`${where}.blockSize`, bs, `must be a multiple of the disk's block size ${disk.blockSize} in [${disk.blockSize}, 1048576]`);
    }
    if (disk.sizeBytes !== undefined && bs > disk.sizeBytes) c.fail(`${where}.blockSize`, bs, `must not exceed the disk size ${disk.sizeBytes}`);
    const queueDepth = c.int(`${where}.queueDepth`, o["queueDepth"], 1, 1024);
    const ios = c.optInt(`${where}.ios`, o["ios"], 1, 100_000_000);
    const durationMs = c.optInt(`${where}.durationMs`, o["durationMs"], 1, MAX_DURATION_MS);
    if ((ios === undefined) === (durationMs === undefined)) {
      c.fail(`${where}.ios`, o["ios"], "give exactly one of ios (a count) and durationMs (virtual time)");
    }
    let readPercent = 50;
    if (o["readPercent"] !== undefined) {
      if (pattern !== "randrw") c.fail(`${where}.readPercent`, o["readPercent"], 'is only allowed with pattern "randrw"');
      readPercent = c.int(`${where}.readPercent`, o["readPercent"], 0, 100);
    }
    return {
      type,
      vm: vm.name,
      controller,
      disk: disk.lun,
      pattern,
      blockSize: bs,
      queueDepth,
      ...(ios !== undefined ? { ios } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
      readPercent,
    };
  }
  const keys = type === "ping" ? ["type", "from", "to", "count"] : ["type", "from", "to", "bytes", "count"];
  const o = c.object(where, v, keys, type === "ping" ? "{type, from, to, count}" : "{type, from, to, bytes, count}");
  const nicOf = (field: string, x: unknown): NicDeviceScenario => {
    const vm = vmByName(field, x);
    const nic = vm.devices.find((d): d is NicDeviceScenario => d.type === "nic");
    if (nic === undefined) c.fail(field, x, "must name a VM with a nic device");
    return nic;
  };
  const a = nicOf(`${where}.from`, o["from"]);
  const b = nicOf(`${where}.to`, o["to"]);
  if (o["from"] === o["to"]) c.fail(`${where}.to`, o["to"], "must differ from `from`");
  if (a.switch !== b.switch) c.fail(`${where}.to`, o["to"], `must have a nic on the same switch as ${String(o["from"])} (${JSON.stringify(a.switch)})`);
  const count = c.int(`${where}.count`, o["count"], 1, 1_000_000);
  if (type === "ping") return { type, from: o["from"] as string, to: o["to"] as string, count };
  // No IP fragmentation: a datagram must fit both NICs' MTU (IPv4 20 + UDP 8 bytes of headers).
  const maxBytes = Math.min(a.mtu ?? 1500, b.mtu ?? 1500) - 28;
  const bytes = c.int(`${where}.bytes`, o["bytes"], 1, maxBytes);
  return { type, from: o["from"] as string, to: o["to"] as string, bytes, count };
}

const CHANNEL_PATH_RE = /^channels\/\d+\/[a-z_]+$/;

function checkAction(c: Checker, where: string, v: unknown, vms: readonly VmScenario[], durationMs: number): Action {
  if (!isRecord(v)) c.fail(where, v, "must be an object {atMs, vm, path, value} or {atMs, vm, device, lowLatency}");
  const isSysfs = v["path"] !== undefined || v["value"] !== undefined;
  const o = isSysfs
    ? c.object(where, v, ["atMs", "vm", "path", "value"], "{atMs, vm, path, value}")
    : c.object(where, v, ["atMs", "vm", "device", "lowLatency"], "{atMs, vm, device, lowLatency}");
  const atMs = o["atMs"];
  if (typeof atMs !== "number" || !Number.isFinite(atMs) || atMs < 0 || atMs > durationMs) c.fail(`${where}.atMs`, atMs, `must be a number in [0, durationMs ${durationMs}]`);
  const vm = vms.find((m) => m.name === o["vm"]);
  if (vm === undefined) c.fail(`${where}.vm`, o["vm"], `must name a VM (${vms.map((m) => JSON.stringify(m.name)).join(", ")})`);
  if (isSysfs) {
    const path = o["path"];
    if (typeof path !== "string" || !(CHANNEL_PATH_RE.test(path) || path.startsWith("/sys/"))) {
      c.fail(`${where}.path`, path, 'must be "channels/<relid>/<attribute>" or an absolute "/sys/..." path');
    }
    const value = o["value"];
    if (typeof value !== "string" && (typeof value !== "number" || !Number.isFinite(value))) c.fail(`${where}.value`, value, "must be a string or a number");
    return { atMs, vm: vm.name, path, value: String(value) };
  }
  const device = c.int(`${where}.device`, o["device"], 0, Math.max(0, vm.devices.length - 1));
  if (vm.devices.length === 0) c.fail(`${where}.device`, device, `must index ${vm.name}'s devices, but it has none`);
  if (o["lowLatency"] !== true && o["lowLatency"] !== false) c.fail(`${where}.lowLatency`, o["lowLatency"], "must be true or false");
  return { atMs, vm: vm.name, device, lowLatency: o["lowLatency"] };
}

/** A number of milliseconds (fractions allowed down to 1 ns) in [min, max]. */
function msNumber(c: Checker, field: string, v: unknown, min: number, max: number, minExclusive = false): number {
  if (typeof v !== "number" || !Number.isFinite(v) || (minExclusive ? v <= min : v < min) || v > max) {
    c.fail(field, v, `must be a number of ms in ${minExclusive ? "(" : "["}${min}, ${max}]`);
  }
  return v;
}

function probabilityOf(c: Checker, field: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !(v > 0 && v <= 1)) c.fail(field, v, "must be a probability in (0, 1]");
  return v;
}

const FAULT_SHAPES: Readonly<Record<FaultKindName, { readonly keys: readonly string[]; readonly shape: string }>> = {
  "interrupt-drop": { keys: ["kind", "vm", "atMs", "durationMs", "probability"], shape: "{kind, vm, atMs, durationMs?, probability?}" },
  "interrupt-delay": { keys: ["kind", "vm", "atMs", "durationMs", "delayUs", "probability"], shape: "{kind, vm, atMs, delayUs, durationMs?, probability?}" },
  "monitor-delay": { keys: ["kind", "vm", "atMs", "durationMs", "delayUs", "probability"], shape: "{kind, vm, atMs, delayUs, durationMs?, probability?}" },
  "host-stall": { keys: ["kind", "vm", "device", "atMs", "durationMs"], shape: "{kind, vm, device, atMs, durationMs?}" },
  rescind: { keys: ["kind", "vm", "device", "atMs"], shape: "{kind, vm, device, atMs}" },
  "disk-error": { keys: ["kind", "vm", "device", "disk", "firstLba", "count", "op", "atMs", "durationMs"], shape: "{kind, vm, device, disk, firstLba, count, op?, atMs, durationMs?}" },
  throttle: { keys: ["kind", "vm", "atMs", "durationMs"], shape: "{kind, vm, atMs, durationMs}" },
  "ring-full": { keys: ["kind", "vm", "device", "atMs", "durationMs", "requests", "bytes"], shape: "{kind, vm, device, atMs, durationMs, requests?, bytes?}" },
  "switch-drop": { keys: ["kind", "vm", "device", "atMs", "durationMs", "probability"], shape: "{kind, vm, device, atMs, durationMs?, probability?}" },
};

function checkFault(c: Checker, where: string, v: unknown, vms: readonly VmScenario[], durationMs: number): FaultScenario {
  if (!isRecord(v)) c.fail(where, v, `must be an object {kind, vm, atMs, ...} with kind one of ${FAULT_KINDS.map((k) => JSON.stringify(k)).join(", ")}`);
  const kind = c.oneOf(`${where}.kind`, v["kind"], FAULT_KINDS);
  const { keys, shape } = FAULT_SHAPES[kind];
  const o = c.object(where, v, keys, shape);
  const vm = vms.find((m) => m.name === o["vm"]);
  if (vm === undefined) c.fail(`${where}.vm`, o["vm"], `must name a VM (${vms.map((m) => JSON.stringify(m.name)).join(", ")})`);
  const atMs = msNumber(c, `${where}.atMs`, o["atMs"], 0, durationMs);
  const base = { atMs, vm: vm.name };
  const optDuration = (): { durationMs?: number } => (o["durationMs"] === undefined ? {} : { durationMs: msNumber(c, `${where}.durationMs`, o["durationMs"], 0, MAX_DURATION_MS, true) });
  const duration = (): number => {
    if (o["durationMs"] === undefined) c.fail(`${where}.durationMs`, undefined, `is required for kind ${JSON.stringify(kind)}`);
    return msNumber(c, `${where}.durationMs`, o["durationMs"], 0, MAX_DURATION_MS, true);
  };
  const delayUs = (): number => {
    const d = o["delayUs"];
    if (typeof d !== "number" || !Number.isFinite(d) || d < 0.001 || d > 10_000_000) c.fail(`${where}.delayUs`, d, "must be a number of µs in [0.001, 10000000]");
    return d;
  };
  // `device` indexes the VM's devices; some kinds need a certain type.
  const device = (types: readonly DeviceScenario["type"][]): number => {
    const types_ = types.map((t) => JSON.stringify(t)).join(" or ");
    const list = vm.devices.map((d, i) => ({ d, i })).filter(({ d }) => types.includes(d.type));
    if (list.length === 0) c.fail(`${where}.vm`, vm.name, `must have a ${types_} device for kind ${JSON.stringify(kind)}`);
    const i = o["device"];
    if (typeof i !== "number" || !Number.isInteger(i) || !list.some((x) => x.i === i)) {
      c.fail(`${where}.device`, i, `must be the index in ${vm.name}.devices of a ${types_} device (${list.map((x) => x.i).join(", ")})`);
    }
    return i;
  };
  switch (kind) {
    case "interrupt-drop":
      return { kind, ...base, ...optDuration(), probability: probabilityOf(c, `${where}.probability`, o["probability"], 1) };
    case "interrupt-delay":
    case "monitor-delay":
      return { kind, ...base, ...optDuration(), delayUs: delayUs(), probability: probabilityOf(c, `${where}.probability`, o["probability"], 1) };
    case "host-stall":
      return { kind, ...base, device: device(["storage", "nic", "echo"]), ...optDuration() };
    case "rescind":
      return { kind, ...base, device: device(["storage", "nic", "echo"]) };
    case "disk-error": {
      const dev = device(["storage"]);
      const luns = effectiveLuns((vm.devices[dev] as StorageDeviceScenario).disks);
      const disk = luns.find((l) => l.lun === o["disk"]);
      if (disk === undefined) c.fail(`${where}.disk`, o["disk"], `must be the LUN of a disk of ${vm.name}.devices[${dev}] (${luns.map((l) => l.lun).join(", ")})`);
      const blocks = disk.sizeBytes === undefined ? Number.MAX_SAFE_INTEGER : Math.floor(disk.sizeBytes / disk.blockSize);
      const firstLba = c.int(`${where}.firstLba`, o["firstLba"], 0, Math.max(0, blocks - 1));
      const count = c.int(`${where}.count`, o["count"], 1, Math.max(1, blocks - firstLba));
      const op = o["op"] === undefined ? "both" : c.oneOf(`${where}.op`, o["op"], ["read", "write", "both"] as const);
      return { kind, ...base, device: dev, disk: disk.lun, firstLba, count, op, ...optDuration() };
    }
    case "throttle":
      return { kind, ...base, durationMs: duration() };
    case "ring-full": {
      const dev = device(["echo"]);
      const requests = c.optInt(`${where}.requests`, o["requests"], 1, 100_000) ?? 32;
      const bytes = c.optInt(`${where}.bytes`, o["bytes"], 1, RING_FULL_MAX_BYTES) ?? RING_FULL_MAX_BYTES;
      return { kind, ...base, device: dev, durationMs: duration(), requests, bytes };
    }
    case "switch-drop":
      return { kind, ...base, device: device(["nic"]), ...optDuration(), probability: probabilityOf(c, `${where}.probability`, o["probability"], 1) };
  }
}

const TOP_KEYS = ["description", "seed", "durationMs", "settleMs", "host", "vms", "switches", "workloads", "actions", "faults"] as const;

/** Validates parsed JSON; `file` names the source in errors. */
export function validateScenario(input: unknown, file: string): Scenario {
  const c = new Checker(file);
  const o = c.object("", input, TOP_KEYS, `{${TOP_KEYS.join(", ")}}`);
  const description = o["description"];
  if (description !== undefined && typeof description !== "string") c.fail("description", description, "must be a string");
  const desc = typeof description === "string" ? { description } : {};
  const seed = c.optInt("seed", o["seed"], 0, 0xffff_ffff) ?? 1;
  const durationMs = c.optInt("durationMs", o["durationMs"], 1, MAX_DURATION_MS) ?? 1000;
  const host = checkHost(c, o["host"]);

  const switches: SwitchScenario[] = [];
  c.array("switches", o["switches"] ?? [], "switches {name, pcap?}").forEach((s, i) => {
    const so = c.object(`switches[${i}]`, s, ["name", "pcap"], "{name, pcap?}");
    const name = c.str(`switches[${i}].name`, so["name"], NAME_RE, "must be 1-32 characters of A-Z a-z 0-9 _ . -");
    if (switches.some((x) => x.name === name)) c.fail(`switches[${i}].name`, name, "must be unique among switches");
    const pcap = so["pcap"];
    if (pcap !== undefined && pcap !== true && (typeof pcap !== "string" || pcap.length === 0)) c.fail(`switches[${i}].pcap`, pcap, `must be a file path, or true for "out/${name}.pcap"`);
    const path = pcap === true ? `out/${name}.pcap` : pcap;
    switches.push({ name, ...(typeof path === "string" ? { pcap: path } : {}) });
  });

  const vms: VmScenario[] = [];
  const vmList = c.array("vms", o["vms"], "VMs {name, vcpus, memoryMiB, maxVersion, devices}");
  if (vmList.length === 0) c.fail("vms", o["vms"], "must list at least one VM");
  const macs = new Map<string, string>();
  vmList.forEach((v, i) => {
    const w = `vms[${i}]`;
    const vo = c.object(
      w,
      v,
      ["name", "vcpus", "memoryMiB", "maxVersion", "devices", "lostInterruptPollUs", "storageTimeoutMs"],
      "{name, vcpus, memoryMiB, maxVersion, devices, lostInterruptPollUs?, storageTimeoutMs?}",
    );
    const name = c.str(`${w}.name`, vo["name"], NAME_RE, "must be 1-32 characters of A-Z a-z 0-9 _ . -");
    if (vms.some((x) => x.name === name)) c.fail(`${w}.name`, name, "must be unique among VMs");
    const vcpus = c.optInt(`${w}.vcpus`, vo["vcpus"], 1, 64) ?? 1;
    const memoryMiB = c.optInt(`${w}.memoryMiB`, vo["memoryMiB"], 8, 4096) ?? 64;
    const maxVersion = checkVersion(c, `${w}.maxVersion`, vo["maxVersion"]);
    const devices = c.array(`${w}.devices`, vo["devices"] ?? [], "devices").map((d, j) => {
      const dev = checkDevice(c, `${w}.devices[${j}]`, d, switches.map((s) => s.name));
      if (dev.type === "nic") {
        const prev = macs.get(dev.mac);
        if (prev !== undefined) c.fail(`${w}.devices[${j}].mac`, dev.mac, `must be unique (also used by ${prev})`);
        macs.set(dev.mac, `${w}.devices[${j}]`);
      }
      return dev;
    });
    let lostInterruptPollUs: number | undefined;
    if (vo["lostInterruptPollUs"] !== undefined) {
      const p = vo["lostInterruptPollUs"];
      if (typeof p !== "number" || !Number.isFinite(p) || p < 1 || p > 1_000_000 || Math.round(p * 1000) !== p * 1000) {
        c.fail(`${w}.lostInterruptPollUs`, p, "must be a number of µs in [1, 1000000] (ns resolution)");
      }
      lostInterruptPollUs = p as number;
    }
    const storageTimeoutMs = c.optInt(`${w}.storageTimeoutMs`, vo["storageTimeoutMs"], 1, 600_000);
    vms.push({
      name,
      vcpus,
      memoryMiB,
      maxVersion,
      devices,
      ...(lostInterruptPollUs !== undefined ? { lostInterruptPollUs } : {}),
      ...(storageTimeoutMs !== undefined ? { storageTimeoutMs } : {}),
    });
  });

  const workloads = c.array("workloads", o["workloads"] ?? [], "workloads").map((w, i) => checkWorkload(c, `workloads[${i}]`, w, vms));
  const actions = c.array("actions", o["actions"] ?? [], "actions").map((a, i) => checkAction(c, `actions[${i}]`, a, vms, durationMs));
  const faults = c.array("faults", o["faults"] ?? [], "faults {kind, vm, atMs, ...}").map((f, i) => checkFault(c, `faults[${i}]`, f, vms, durationMs));
  const longestTimeout = Math.max(...vms.map((m) => m.storageTimeoutMs ?? DEFAULT_STORAGE_TIMEOUT_MS));
  const settleMs = c.optInt("settleMs", o["settleMs"], 1, MAX_DURATION_MS) ?? longestTimeout + 1000;
  return { file, ...desc, seed, durationMs, settleMs, host, vms, switches, workloads, actions, faults };
}

/** Reads and validates a scenario file; JSON syntax errors name the file too. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ScenarioError(path, "(file)", path, `cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ScenarioError(path, "(file)", path, `is not valid JSON: ${(e as Error).message}`);
  }
  return validateScenario(json, path);
}

/** "5.3" → the version word (validated before, so it is always found). */
export function versionNumber(name: string): number {
  return VMBUS_VERSIONS.find((v) => formatVersion(v) === name) ?? VMBUS_DEFAULT_MAX_VERSION;
}
