/**
 * From a validated scenario to a booted `VmbusSystem`, and from there to a
 * run of its workloads and actions in virtual time, collecting the figures
 * `vmbus-sim run` prints.
 *
 * Everything that affects simulated results comes from the scenario and
 * the seed (the system's RNG, forked per workload): no wall clock, no
 * Math.random. The only wall-clock reader is the progress bar, which is
 * told fractions and decides itself when to draw.
 */
import { labelTransaction } from "./decode.js";
import { dirname, isAbsolute, resolve } from "node:path";
import {
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  ChromeTraceWriter,
  VmbusSystem,
  channelInterruptRows,
  channelMessageName,
  formatVersion,
  type ChannelInterruptRow,
  type ControlLogEntry,
  type HostDevice,
  type PluginManifest,
  type Vm,
  type VmbusDevice,
} from "../core/index.js";
import { echoPlugin } from "../drivers/echo/index.js";
import { NETWORK_SWITCHES, networkPlugin, type NetvscDriver, type SwitchRegistry, type VirtualSwitch } from "../drivers/netvsc/index.js";
import { STORVSC_CONFIG, storagePlugin, type DiskSpec, type ScsiDisk, type StorvscDriver } from "../drivers/storvsc/index.js";
import { startFault, type FaultResult } from "./faults.js";
import { RequestLedger, SettleDeadline, sumTallies, type RequestTally } from "./ledger.js";
import { IpHost, nicAddress, runPing, runUdp, type PingResult, type UdpResult } from "./network.js";
import type { DeviceScenario, NicDeviceScenario, PingWorkload, Scenario, StorageWorkload, UdpWorkload, VmScenario } from "./scenario.js";
import { versionNumber } from "./scenario.js";

const MiB = 1024 * 1024;
const NS_PER_MS = 1_000_000;

/** A failure while building or running (exit code 1), as opposed to a bad scenario (2). */
export class SimulationError extends Error {
  override readonly name = "SimulationError";
}

export interface BuiltDevice {
  readonly spec: DeviceScenario;
  readonly host: HostDevice;
}
export interface BuiltVm {
  readonly vm: Vm;
  readonly spec: VmScenario;
  readonly devices: readonly BuiltDevice[];
  /** Control-log entries up to the end of boot. */
  bootLog: readonly ControlLogEntry[];
}
export interface BuiltSystem {
  readonly sys: VmbusSystem;
  readonly scenario: Scenario;
  readonly seed: number;
  readonly vms: readonly BuiltVm[];
  readonly trace: ChromeTraceWriter | null;
  readonly bootNs: number;
  /** One IP host per NIC (empty without NICs). */
  readonly ipHosts: readonly IpHost[];
  /** The scenario's switches, with the pcap path when capturing. */
  readonly switches: readonly BuiltSwitch[];
}

export interface BuiltSwitch {
  readonly name: string;
  readonly sw: VirtualSwitch;
  /** Where the capture goes (relative paths: to the working directory); null when not capturing. */
  readonly pcap: string | null;
}

export interface BuildOptions {
  readonly seed?: number;
  /** Attach a Chrome/Perfetto trace writer before the first VM exists. */
  readonly trace?: boolean;
  /** Capture the first switch to this file (overrides its `pcap`). */
  readonly pcap?: string;
}

/** File disks are named relative to the scenario file, as a user writing it would expect. */
function resolveDisk(d: DiskSpec, scenarioFile: string): DiskSpec {
  if (d.kind !== "file" || isAbsolute(d.path)) return d;
  return { ...d, path: resolve(dirname(scenarioFile), d.path) };
}

/** Builds the system of `scenario` and boots it (connect, offers, probes). */
export async function buildAndBoot(scenario: Scenario, options: BuildOptions = {}): Promise<BuiltSystem> {
  const plugins: PluginManifest[] = [storagePlugin, echoPlugin];
  const hasNetwork = scenario.switches.length > 0 || scenario.vms.some((v) => v.devices.some((d) => d.type === "nic"));
  if (hasNetwork) plugins.push(networkPlugin);
  const seed = options.seed ?? scenario.seed;
  const costs = { ...scenario.host.costs, ...(scenario.host.monitorLatencyUs !== undefined ? { monitorLatencyNs: Math.round(scenario.host.monitorLatencyUs * 1000) } : {}) };
  const sys = new VmbusSystem({ seed, costs, plugins, hostMaxVersion: versionNumber(scenario.host.maxVersion) });
  let trace: ChromeTraceWriter | null = null;
  if (options.trace === true) {
    trace = new ChromeTraceWriter({ clock: sys.sim.scheduler, otherData: { seed, scenario: scenario.file }, labelTransaction });
    trace.attach(sys.sim.tracer);
  }
  const vms: BuiltVm[] = [];
  for (const spec of scenario.vms) {
    const vm = sys.addVm({ name: spec.name, vcpus: spec.vcpus, memoryBytes: spec.memoryMiB * MiB, guestMaxVersion: versionNumber(spec.maxVersion) });
    // Before boot: the storvsc driver reads its configuration at probe.
    if (spec.storageTimeoutMs !== undefined) vm.container.register(STORVSC_CONFIG, { useValue: { requestTimeoutNs: spec.storageTimeoutMs * NS_PER_MS } });
    if (spec.lostInterruptPollUs !== undefined) vm.client.setLostInterruptWatchdog(Math.round(spec.lostInterruptPollUs * 1000));
    const devices: BuiltDevice[] = [];
    for (const d of spec.devices) {
      if (d.type === "storage") {
        const config = {
          disks: d.disks.map((x) => resolveDisk(x, scenario.file)),
          ...(d.maxSubchannels !== undefined ? { maxSubchannels: d.maxSubchannels } : {}),
          ...(d.queueDepth !== undefined ? { queueDepth: d.queueDepth } : {}),
        };
        devices.push({ spec: d, host: sys.addHostDevice(vm, "storvsp", { config }) });
      } else if (d.type === "echo") {
        devices.push({ spec: d, host: sys.addHostDevice(vm, "echo") });
      } else {
        const config = { mac: d.mac, switch: d.switch, ...(d.mtu !== undefined ? { mtu: d.mtu } : {}) };
        devices.push({ spec: d, host: sys.addHostDevice(vm, "netvsp", { config }) });
      }
    }
    vms.push({ vm, spec, devices, bootLog: [] });
  }
  // Switches exist before boot so that the capture sees every frame.
  const switches: BuiltSwitch[] = [];
  if (hasNetwork) {
    const registry = sys.root.resolve(NETWORK_SWITCHES) as SwitchRegistry;
    scenario.switches.forEach((s, i) => {
      const pcap = (i === 0 ? options.pcap : undefined) ?? s.pcap ?? null;
      const sw = registry.get(s.name);
      if (pcap !== null) sw.startCapture();
      switches.push({ name: s.name, sw, pcap });
    });
  }
  try {
    await sys.boot();
  } catch (e) {
    throw new SimulationError(`boot failed: ${(e as Error).message}`);
  }
  for (const b of vms) b.bootLog = b.vm.client.log.slice();
  const ipHosts: IpHost[] = [];
  vms.forEach((b, i) => {
    let k = 0;
    for (const d of b.devices) {
      if (d.spec.type !== "nic") continue;
      const dev = guestDevice(b.vm, d.host);
      const nic = dev === undefined ? undefined : b.vm.driverOf<NetvscDriver>(dev);
      if (nic === undefined) throw new SimulationError(`${b.vm.name}: the NIC ${(d.spec as NicDeviceScenario).mac} has no netvsc driver after boot`);
      if (i >= 254) throw new SimulationError(`${b.vm.name}: NIC addresses are 10.0.<nic>.<vm index + 1>; at most 254 VMs can have NICs`);
      ipHosts.push(new IpHost(b.vm.name, nic, nicAddress(i, k++), (d.spec as NicDeviceScenario).switch, sys.sim.scheduler));
    }
  });
  return { sys, scenario, seed, vms, trace, bootNs: sys.sim.now, ipHosts, switches };
}

/** The guest-side device the host device `host` became. */
export function guestDevice(vm: Vm, host: HostDevice): VmbusDevice | undefined {
  const id = host.offer.instanceId.toString();
  return vm.client.devices.find((d) => d.instanceId.toString() === id);
}

// ---------------------------------------------------------------------------
// Boot summary

export interface BootSummary {
  readonly vm: string;
  readonly version: string;
  readonly offers: number;
  readonly channelsOpened: number;
  readonly handshakeUs: number;
  /** One line per message kind: "← OFFERCHANNEL ×4 (first: OFFERCHANNEL relid=1 …)". */
  readonly steps: readonly string[];
}

export function bootSummary(b: BuiltVm): BootSummary {
  const log = b.bootLog;
  // One line per message kind, in the order each first appeared, with its
  // count: the shape of the handshake on one screen, not every GPADL body.
  const steps: string[] = [];
  const seen = new Map<string, { index: number; count: number; text: string; name: string }>();
  for (const e of log) {
    const arrow = e.direction === "guest→host" ? "→" : "←";
    const key = `${arrow}${e.msgtype}`;
    const s = seen.get(key);
    if (s === undefined) seen.set(key, { index: steps.push(`${arrow} ${e.text}`) - 1, count: 1, text: e.text, name: `${arrow} ${channelMessageName(e.msgtype).replace("CHANNELMSG_", "")}` });
    else {
      s.count++;
      steps[s.index] = `${s.name} ×${s.count} (first: ${s.text})`;
    }
  }
  const first = log[0]?.timeNs ?? 0;
  const last = log[log.length - 1]?.timeNs ?? 0;
  return {
    vm: b.vm.name,
    version: formatVersion(b.vm.client.version),
    offers: log.filter((e) => e.msgtype === CHANNELMSG_OFFERCHANNEL).length,
    channelsOpened: log.filter((e) => e.msgtype === CHANNELMSG_OPENCHANNEL_RESULT && /status=0x0\b/.test(e.text)).length,
    handshakeUs: (last - first) / 1000,
    steps,
  };
}

// ---------------------------------------------------------------------------
// Running

export interface LatencySummary {
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export interface StorageResult {
  readonly workload: number;
  readonly vm: string;
  readonly disk: number;
  readonly pattern: string;
  readonly blockSize: number;
  readonly queueDepth: number;
  readonly ios: number;
  readonly reads: number;
  readonly writes: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly elapsedUs: number;
  readonly iops: number;
  readonly mibPerSec: number;
  /** Completion latency in µs of virtual time. */
  readonly latencyUs: LatencySummary;
  /** Every I/O by outcome: completed, failed by error type, lost (outstanding at the settle deadline). */
  readonly requests: RequestTally;
}

export interface ActionResult {
  readonly atMs: number;
  readonly vm: string;
  readonly what: string;
  readonly result: string;
}

export interface VmResult {
  readonly boot: BootSummary;
  /** VMBus interrupts taken per vCPU (the /proc/interrupts HYP row). */
  readonly interruptsPerVcpu: readonly number[];
  readonly channels: readonly ChannelInterruptRow[];
}

export interface NicResult {
  readonly vm: string;
  readonly mac: string;
  readonly ip: string;
  readonly switch: string;
  readonly tx: { readonly packets: number; readonly bytes: number; readonly drops: number };
  readonly rx: { readonly packets: number; readonly bytes: number; readonly drops: number };
  /** ARP requests and ICMP echo requests the NIC's responder answered. */
  readonly arpAnswered: number;
  readonly echoAnswered: number;
}

export interface SwitchResult {
  readonly name: string;
  /** The pcap file (written by the caller after the run), or null. */
  readonly pcap: string | null;
  readonly framesCaptured: number;
  readonly ports: readonly { readonly name: string; readonly framesIn: number; readonly framesOut: number; readonly bytesIn: number; readonly bytesOut: number; readonly drops: number }[];
}

export interface NetworkResults {
  readonly ping: readonly PingResult[];
  readonly udp: readonly UdpResult[];
  readonly nics: readonly NicResult[];
  readonly switches: readonly SwitchResult[];
}

/** Requests of the whole run, and the bound they were held to. */
export interface RequestSummary {
  /** Every workload's requests and the faults' own (ring-full), summed. */
  readonly total: RequestTally;
  /** Virtual time (from the run's start) by which every request had to settle: durationMs + settleMs. */
  readonly settleDeadlineMs: number;
  /** Virtual time (from the run's start) the last request settled, ms. */
  readonly lastSettledMs: number;
}

export interface RunResults {
  readonly scenario: string;
  readonly seed: number;
  readonly bootUs: number;
  readonly runUs: number;
  readonly vms: readonly VmResult[];
  readonly storage: readonly StorageResult[];
  readonly network: NetworkResults;
  readonly actions: readonly ActionResult[];
  /** What each scenario fault did (empty without faults). */
  readonly faults: readonly FaultResult[];
  readonly requests: RequestSummary;
}

export interface RunOptions {
  /** Overrides the scenario's durationMs. */
  readonly durationMs?: number;
  /** Called with the completed fraction of all workloads, in [0, 1]. */
  readonly onProgress?: (fraction: number) => void;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

function summarize(latNs: number[]): LatencySummary {
  latNs.sort((a, b) => a - b);
  const us = (x: number): number => round3(x / 1000);
  const mean = latNs.length === 0 ? 0 : latNs.reduce((a, b) => a + b, 0) / latNs.length;
  return {
    min: us(latNs[0] ?? 0),
    p50: us(percentile(latNs, 50)),
    p90: us(percentile(latNs, 90)),
    p99: us(percentile(latNs, 99)),
    p999: us(percentile(latNs, 99.9)),
    max: us(latNs[latNs.length - 1] ?? 0),
    mean: us(mean),
  };
}

function findDisk(b: BuiltVm, w: StorageWorkload): ScsiDisk {
  const controllers = b.devices.filter((d) => d.spec.type === "storage");
  const host = controllers[w.controller]?.host;
  const dev = host === undefined ? undefined : guestDevice(b.vm, host);
  const drv = dev === undefined ? undefined : b.vm.driverOf<StorvscDriver>(dev);
  const disk = drv?.disks.find((d) => d.lun === w.disk);
  if (disk === undefined) throw new SimulationError(`${b.vm.name}: storage controller ${w.controller} has no disk at LUN ${w.disk} after boot`);
  return disk;
}

/** Pause after an I/O that failed without any virtual time passing, so a broken disk cannot spin a workload in one instant. */
const FAILED_IO_BACKOFF_NS = 100_000;

async function runStorage(built: BuiltSystem, index: number, w: StorageWorkload, durationNs: number, ledger: RequestLedger, progress: (f: number) => void): Promise<StorageResult> {
  const { sys } = built;
  const b = built.vms.find((x) => x.vm.name === w.vm) as BuiltVm;
  const disk = findDisk(b, w);
  const blocks = w.blockSize / disk.blockSize;
  const units = Number(disk.capacityBlocks / BigInt(blocks));
  const rng = sys.sim.rng.fork(`workload ${index}`);
  const data = new Uint8Array(w.blockSize).fill(0xa5);
  const vcpus = b.vm.partition.vcpus;
  const start = sys.sim.now;
  const limitNs = w.durationMs !== undefined ? Math.min(durationNs, w.durationMs * NS_PER_MS) : durationNs;
  const endAt = start + limitNs;
  const latencies: number[] = [];
  let issued = 0;
  let reads = 0;
  let writes = 0;
  let errors = 0;
  let firstError: string | null = null;
  let cursor = 0;
  const more = (): boolean => sys.sim.now < endAt && (w.ios === undefined || issued < w.ios);
  const fraction = (): number => (w.ios !== undefined ? Math.max(latencies.length / w.ios, (sys.sim.now - start) / limitNs) : (sys.sim.now - start) / limitNs);
  await Promise.all(
    Array.from({ length: w.queueDepth }, async (_, k) => {
      const vcpu = vcpus[k % vcpus.length];
      if (vcpu === undefined) return;
      while (more()) {
        // A disk whose LUN or controller went away (a rescind) refuses
        // everything at once: stop rather than spin.
        if (disk.gone) break;
        issued++;
        const unit = w.pattern.startsWith("seq") ? cursor++ % units : rng.int(0, units - 1);
        const isRead = w.pattern === "randread" || w.pattern === "seqread" || (w.pattern === "randrw" && rng.int(0, 99) < w.readPercent);
        const t0 = sys.sim.now;
        const io: Promise<unknown> = isRead ? vcpu.issue(() => disk.read(unit * blocks, blocks)) : vcpu.issue(() => disk.write(unit * blocks, data));
        const s = await ledger.track(io);
        if (s.status === "lost") break;
        if (s.status === "failed") {
          errors++;
          firstError ??= (s.error as Error).message;
          if (sys.sim.now === t0) await sys.sim.scheduler.sleep(FAILED_IO_BACKOFF_NS, "failed I/O backoff");
        }
        if (isRead) reads++;
        else writes++;
        latencies.push(sys.sim.now - t0);
        progress(Math.min(1, fraction()));
      }
    }),
  );
  progress(1);
  const elapsed = sys.sim.now - start;
  const done = latencies.length;
  return {
    workload: index,
    vm: w.vm,
    disk: w.disk,
    pattern: w.pattern,
    blockSize: w.blockSize,
    queueDepth: w.queueDepth,
    ios: done,
    reads,
    writes,
    errors,
    firstError,
    elapsedUs: round3(elapsed / 1000),
    iops: elapsed > 0 ? Math.round((done / elapsed) * 1e9) : 0,
    mibPerSec: elapsed > 0 ? round3((done * w.blockSize) / MiB / (elapsed / 1e9)) : 0,
    latencyUs: summarize(latencies),
    requests: ledger.tally(),
  };
}

/** The IP host of `vm`'s first NIC. */
function firstNic(built: BuiltSystem, vm: string): IpHost {
  const h = built.ipHosts.find((x) => x.vmName === vm);
  if (h === undefined) throw new SimulationError(`${vm}: no NIC after boot`);
  return h;
}

async function runNetwork(built: BuiltSystem, index: number, w: PingWorkload | UdpWorkload, durationNs: number, ledger: RequestLedger, progress: (f: number) => void): Promise<PingResult | UdpResult> {
  const { sys } = built;
  const src = firstNic(built, w.from);
  const dst = firstNic(built, w.to);
  const b = built.vms.find((x) => x.vm.name === w.from) as BuiltVm;
  const vcpu = b.vm.partition.vcpus[0];
  if (vcpu === undefined) throw new SimulationError(`${w.from}: no vCPU`);
  const endAt = sys.sim.now + durationNs;
  if (w.type === "ping") return runPing(index, w, src, dst, vcpu, sys.sim.scheduler, endAt, ledger, progress);
  return runUdp(index, w, src, dst, vcpu, sys.sim.scheduler, sys.sim.rng.fork(`workload ${index}`), endAt, ledger, progress);
}

/** `channels/<relid>/<attr>` → the absolute path under the device that owns that relid. */
export function resolveSysfsPath(vm: Vm, path: string): string {
  if (path.startsWith("/")) return path;
  const m = /^channels\/(\d+)(\/.*)?$/.exec(path);
  if (m !== null) {
    const relid = Number(m[1]);
    const dev = vm.client.devices.find((d) => d.channels().some((c) => c.relid === relid));
    if (dev === undefined) throw new SimulationError(`${vm.name}: no channel with relid ${relid} (relids: ${vm.client.devices.flatMap((d) => d.channels().map((c) => c.relid)).join(", ")})`);
    return `/sys/bus/vmbus/devices/${dev.name}/${path}`;
  }
  return `/sys/bus/vmbus/devices/${path}`;
}

/** Runs the workloads and actions from the current virtual time; returns the figures. */
export async function runWorkloads(built: BuiltSystem, options: RunOptions = {}): Promise<RunResults> {
  const { sys, scenario } = built;
  const durationNs = (options.durationMs ?? scenario.durationMs) * NS_PER_MS;
  const fractions = scenario.workloads.map(() => 0);
  const report = (i: number) => (f: number) => {
    fractions[i] = f;
    options.onProgress?.(fractions.reduce((a, b) => a + b, 0) / Math.max(1, fractions.length));
  };
  const actions: ActionResult[] = [];
  const network: (PingResult | UdpResult)[] = [];
  const t0 = sys.sim.now;
  // Every request must settle by then; see ledger.ts.
  const deadline = new SettleDeadline(sys.sim.scheduler, t0 + durationNs + scenario.settleMs * NS_PER_MS);
  const ledgers = scenario.workloads.map(() => new RequestLedger(deadline));
  let lastSettled = t0;
  const settled = <T>(p: Promise<T>): Promise<T> =>
    p.then((v) => {
      lastSettled = Math.max(lastSettled, sys.sim.now);
      return v;
    });
  const faultReports: (() => FaultResult)[] = [];
  const storage = await sys.run(
    () =>
      Promise.all([
        Promise.all(scenario.workloads.map((w, i) => (w.type === "storage" ? settled(runStorage(built, i, w, durationNs, ledgers[i] as RequestLedger, report(i))) : Promise.resolve(null)))),
        Promise.all(scenario.workloads.map((w, i) => (w.type !== "storage" ? settled(runNetwork(built, i, w, durationNs, ledgers[i] as RequestLedger, report(i))) : Promise.resolve(null)))).then((r) => {
          for (const x of r) if (x !== null) network.push(x);
        }),
        ...scenario.faults.map((f, i) =>
          settled(startFault(built, i, f, t0, deadline)).then((r) => {
            faultReports[i] = r;
          }),
        ),
        ...scenario.actions.map(async (a) => {
          await sys.sim.scheduler.sleep(a.atMs * NS_PER_MS, "scenario action");
          const b = built.vms.find((x) => x.vm.name === a.vm) as BuiltVm;
          if ("path" in a) {
            let what = `write ${a.value} to ${a.path}`;
            try {
              const path = resolveSysfsPath(b.vm, a.path);
              what = `write ${a.value} to ${path}`;
              await b.vm.sysfs.write(path, a.value);
              actions.push({ atMs: a.atMs, vm: a.vm, what, result: "ok" });
            } catch (e) {
              actions.push({ atMs: a.atMs, vm: a.vm, what, result: (e as Error).message });
            }
          } else {
            const dev = b.devices[a.device];
            const g = dev === undefined ? undefined : guestDevice(b.vm, dev.host);
            for (const c of g?.channels() ?? []) c.lowLatency = a.lowLatency;
            actions.push({ atMs: a.atMs, vm: a.vm, what: `devices[${a.device}] lowLatency=${a.lowLatency}`, result: g === undefined ? "no such guest device" : "ok" });
          }
        }),
      ]).then(([s]) => s.filter((x): x is StorageResult => x !== null)),
    "scenario",
  );
  deadline.cancel();
  const runNs = sys.sim.now - t0;
  const faults = faultReports.map((r) => r());
  const ping = network.filter((x): x is PingResult => "replies" in x);
  const udp = network.filter((x): x is UdpResult => "intact" in x);
  const tallies = [...storage.map((x) => x.requests), ...ping.map((x) => x.requests), ...udp.map((x) => x.requests), ...faults.flatMap((f) => (f.requests === null ? [] : [f.requests]))];
  return {
    scenario: scenario.file,
    seed: built.seed,
    bootUs: round3(built.bootNs / 1000),
    runUs: round3(runNs / 1000),
    vms: built.vms.map((b) => ({
      boot: bootSummary(b),
      interruptsPerVcpu: b.vm.partition.vcpus.map((v) => v.counters.vmbusInterrupts),
      channels: channelInterruptRows(b.vm.sysfs.bus),
    })),
    storage,
    network: {
      ping,
      udp,
      nics: built.ipHosts.map((h) => ({
        vm: h.vmName,
        mac: h.mac,
        ip: h.ip,
        switch: h.switchName,
        tx: { ...h.nic.stats.tx },
        rx: { ...h.nic.stats.rx },
        arpAnswered: h.counters.arpAnswered,
        echoAnswered: h.counters.echoAnswered,
      })),
      switches: built.switches.map((s) => ({
        name: s.name,
        pcap: s.pcap,
        framesCaptured: s.sw.capture?.count ?? 0,
        ports: s.sw.ports().map((p) => ({
          name: p.name,
          framesIn: p.stats.framesIn,
          framesOut: p.stats.framesOut,
          bytesIn: p.stats.bytesIn,
          bytesOut: p.stats.bytesOut,
          drops: p.stats.drops.fault + p.stats.drops.runt + p.stats.drops.filtered + p.stats.drops.detached,
        })),
      })),
    },
    actions: actions.sort((a, b) => a.atMs - b.atMs),
    faults,
    requests: {
      total: sumTallies(tallies),
      settleDeadlineMs: round3((deadline.atNs - t0) / NS_PER_MS),
      lastSettledMs: round3((lastSettled - t0) / NS_PER_MS),
    },
  };
}
