/**
 * The scenario's `faults`: each is applied at its virtual time (`atMs`
 * after the run starts) and, when it has one, lifted at the end of its
 * window; at the end of the run it reports what happened — counters read
 * from the layer that did the damage (the hypervisor's fault injector, the
 * host device, the disk's fault rules, the switch port) and, for the faults
 * that bring their own traffic (`ring-full`), the fate of every request.
 *
 * | kind | mechanism | defined reaction |
 * | --- | --- | --- |
 * | interrupt-drop | `hv.faults.injectInterruptFault` (drop) | the event flag stays set; the next interrupt on that vCPU or the guest's lost-interrupt watchdog finds the work; without either, storvsc requests time out (STORVSC_TIMEOUT) |
 * | interrupt-delay | `hv.faults.injectInterruptFault` (delay) | completions arrive later; nothing fails |
 * | monitor-delay | `hv.faults.injectMonitorDelay` | the host wakes later on monitored channels; nothing fails |
 * | host-stall | `hv.faults.stallHostDevice` | requests wait in the ring; they complete when it comes back, or time out (storvsc) if it never does |
 * | rescind | `VmbusServer.rescind` | outstanding requests fail at once (CHANNEL_RESCINDED, STORVSC_REMOVED…), later ones are refused; other devices carry on |
 * | disk-error | the disk's `FaultInjectingDisk` rules | requests touching the range fail with SCSI_MEDIUM_ERROR naming the LBA; others complete |
 * | throttle | `hv.faults.suspendVm` | nothing runs on the VM for the window; its I/O completes after it |
 * | ring-full | a host stall of an echo device + `requests` echoes of `bytes` | the ring fills, senders wait on pending_send_sz and resume when the host comes back; every reply is checked against what was sent |
 * | switch-drop | the port's `setFault` | frames are lost at the switch (sends still complete); received frames stay intact |
 */
import type { GuestChannel, HostDevice, InterruptFault, MonitorFault, HostStallFault, SuspendFault, VmbusDevice, Vm } from "../core/index.js";
import type { EchoDriver } from "../drivers/echo/index.js";
import type { NetvspDevice } from "../drivers/netvsc/index.js";
import type { InstalledDiskFault, StorvspDevice } from "../drivers/storvsc/index.js";
import { RequestLedger, type RequestTally, type SettleDeadline } from "./ledger.js";
import type { FaultKindName, FaultScenario } from "./scenario.js";
import type { BuiltSystem, BuiltVm } from "./simulate.js";

const NS_PER_MS = 1_000_000;

/** What one fault did, for the report. */
export interface FaultResult {
  readonly fault: number;
  readonly kind: FaultKindName;
  readonly vm: string;
  /** What it hit: "vm1 (every channel)", "vm1 devices[0] (storvsp)", … */
  readonly target: string;
  readonly atMs: number;
  /** null: for ever. */
  readonly durationMs: number | null;
  /** One sentence: what happened and how the system reacted. */
  readonly outcome: string;
  readonly counters: Readonly<Record<string, number>>;
  /** Requests of the fault's own traffic (ring-full), else null. */
  readonly requests: RequestTally | null;
}

/** Applies fault `index` at its time; resolves (after its window, if it has one) with a function that reports it at the end of the run. */
export type FaultTask = Promise<() => FaultResult>;

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const ms = (ns: number): string => `${r3(ns / NS_PER_MS)} ms`;

function findVm(built: BuiltSystem, name: string): BuiltVm {
  const b = built.vms.find((x) => x.vm.name === name);
  if (b === undefined) throw new Error(`no VM ${name}`);
  return b;
}

function hostOf(b: BuiltVm, device: number): HostDevice {
  const d = b.devices[device];
  if (d === undefined) throw new Error(`${b.vm.name} has no devices[${device}]`);
  return d.host;
}

function guestOf(vm: Vm, host: HostDevice): VmbusDevice | undefined {
  const id = host.offer.instanceId.toString();
  return vm.client.devices.find((d) => d.instanceId.toString() === id);
}

function label(b: BuiltVm, device: number): string {
  return `${b.vm.name} devices[${device}] (${hostOf(b, device).name})`;
}

function watchdogRecoveries(vm: Vm): number {
  let n = 0;
  for (const d of vm.client.devices) for (const c of d.channels()) n += c.watchdogRecoveries;
  return n;
}

/** Starts fault `index` of the scenario; `t0` is the run's start. */
export function startFault(built: BuiltSystem, index: number, f: FaultScenario, t0: number, deadline: SettleDeadline): FaultTask {
  const { sys } = built;
  const sched = sys.sim.scheduler;
  const b = findVm(built, f.vm);
  const startNs = t0 + Math.round(f.atMs * NS_PER_MS);
  const durationMs = f.kind === "rescind" ? undefined : f.durationMs;
  const durationNs = durationMs === undefined ? undefined : Math.max(1, Math.round(durationMs * NS_PER_MS));
  const base = { fault: index, kind: f.kind, vm: f.vm, atMs: f.atMs, durationMs: durationMs ?? null, requests: null };
  const window = { startNs, ...(durationNs !== undefined ? { durationNs } : {}) };
  const untilStart = (): Promise<void> => sched.sleep(Math.max(0, startNs - sched.now), `fault ${index} (${f.kind})`);
  const untilEnd = (): Promise<void> => (durationNs === undefined ? Promise.resolve() : sched.sleep(Math.max(0, startNs + durationNs - sched.now), `fault ${index} (${f.kind}) end`));
  const forWindow = durationNs === undefined ? "for the rest of the run" : `for ${ms(durationNs)}`;

  switch (f.kind) {
    case "interrupt-drop":
    case "interrupt-delay": {
      const drop = f.kind === "interrupt-drop";
      const rule: InterruptFault = drop
        ? sys.hv.faults.injectInterruptFault({ vm: b.vm.partition, dropProbability: f.probability, ...window })
        : sys.hv.faults.injectInterruptFault({ vm: b.vm.partition, delayNs: Math.round(f.delayUs * 1000), delayProbability: f.probability, ...window });
      const recovered0 = watchdogRecoveries(b.vm);
      return untilEnd().then(() => (): FaultResult => {
        const recovered = watchdogRecoveries(b.vm) - recovered0;
        const watchdog = b.vm.client.lostInterruptPollNs > 0;
        const counters: Record<string, number> = drop ? { interrupts: rule.seen, dropped: rule.dropped, watchdogRecoveries: recovered } : { interrupts: rule.seen, delayed: rule.delayed };
        const outcome = drop
          ? `dropped ${rule.dropped} of ${rule.seen} channel interrupt(s) ${forWindow}; ` +
            (watchdog ? `the lost-interrupt watchdog found unread work ${recovered} time(s)` : "no watchdog (vms[].lostInterruptPollUs): later interrupts or request timeouts recover")
          : `delayed ${rule.delayed} of ${rule.seen} channel interrupt(s) by ${f.delayUs} µs ${forWindow}`;
        return {
          ...base,
          target: `${b.vm.name} (every channel)`,
          outcome,
          counters,
        };
      });
    }
    case "monitor-delay": {
      const rule: MonitorFault = sys.hv.faults.injectMonitorDelay({ vm: b.vm.partition, extraLatencyNs: Math.round(f.delayUs * 1000), probability: f.probability, ...window });
      return untilEnd().then(() => () => ({
        ...base,
        target: `${b.vm.name} (monitored channels)`,
        outcome: `delayed ${rule.delayed} of ${rule.seen} monitor scan(s) by ${f.delayUs} µs ${forWindow}`,
        counters: { scans: rule.seen, delayed: rule.delayed },
      }));
    }
    case "throttle": {
      const vcpus = b.vm.partition.vcpus;
      const deferred0 = vcpus.reduce((s, v) => s + v.counters.interruptsDeferred, 0);
      const rule: SuspendFault = sys.hv.faults.suspendVm(b.vm.partition, { startNs, durationNs: durationNs as number });
      return untilEnd().then(() => {
        const deferred = vcpus.reduce((s, v) => s + v.counters.interruptsDeferred, 0) - deferred0;
        return () => ({
          ...base,
          target: `${b.vm.name} (${vcpus.length} vCPU(s))`,
          outcome: `every vCPU suspended from ${ms((rule.activatedAtNs ?? startNs) - t0)} to ${ms((rule.endNs ?? startNs) - t0)}; ${deferred} interrupt(s) waited for the end`,
          counters: { suspendedUs: r3((durationNs as number) / 1000), interruptsDeferred: deferred },
        });
      });
    }
    case "host-stall": {
      const host = hostOf(b, f.device);
      const sum = (k: "wakeupsDeferred" | "interruptsHeld"): number => host.channels().reduce((s, c) => s + c.counters[k], 0);
      return untilStart().then(() => {
        const w0 = sum("wakeupsDeferred");
        const h0 = sum("interruptsHeld");
        const rule: HostStallFault = sys.hv.faults.stallHostDevice(host, window);
        return untilEnd().then(() => {
          const wakeups = sum("wakeupsDeferred") - w0;
          const held = sum("interruptsHeld") - h0;
          return () => ({
            ...base,
            target: label(b, f.device),
            outcome:
              rule.endNs === null
                ? `stopped answering at ${ms(startNs - t0)} for good: ${sum("wakeupsDeferred") - w0} wakeup(s) ignored, ${sum("interruptsHeld") - h0} interrupt(s) never raised`
                : `answered nothing ${forWindow}: ${wakeups} wakeup(s) deferred, ${held} interrupt(s) held, every channel serviced at ${ms(rule.endedAtNs === null ? rule.endNs - t0 : rule.endedAtNs - t0)}`,
            counters: rule.endNs === null ? { wakeupsDeferred: sum("wakeupsDeferred") - w0, interruptsHeld: sum("interruptsHeld") - h0 } : { wakeupsDeferred: wakeups, interruptsHeld: held },
          });
        });
      });
    }
    case "rescind": {
      const host = hostOf(b, f.device);
      return untilStart().then(async () => {
        const guest = guestOf(b.vm, host);
        const channels: readonly GuestChannel[] = guest?.channels() ?? [];
        const outstanding = channels.reduce((s, c) => s + c.outstanding + (c.endpoint?.blockedSenders ?? 0), 0);
        const at = sched.now;
        let error: string | null = null;
        try {
          const done = new RequestLedger(deadline).guard(b.vm.server.rescind(host));
          const s = await done;
          if (s.status === "failed") error = (s.error as Error).message;
          else if (s.status === "lost") error = "the guest did not release the channels before the settle deadline";
        } catch (e) {
          error = (e as Error).message;
        }
        const took = sched.now - at;
        return () => ({
          ...base,
          target: label(b, f.device),
          outcome:
            error === null
              ? `rescinded at ${ms(at - t0)} with ${outstanding} request(s) outstanding on its ${channels.length} channel(s); the guest released it ${r3(took / 1000)} µs later`
              : `rescind at ${ms(at - t0)} failed: ${error}`,
          counters: { outstandingAtRescind: outstanding, channels: channels.length, releasedAfterUs: r3(took / 1000) },
        });
      });
    }
    case "disk-error": {
      const storvsp = hostOf(b, f.device).handler as StorvspDevice;
      const lun = storvsp.lunAt(f.disk);
      if (lun === undefined) throw new Error(`${label(b, f.device)} has no LUN ${f.disk}`);
      const rules = lun.disk.faults;
      return untilStart().then(() => {
        const id = rules.addFault({ firstLba: f.firstLba, count: f.count, op: f.op, kind: "medium-error" });
        const installed = rules.faults.find((r) => r.id === id) as InstalledDiskFault;
        return untilEnd().then(() => {
          if (durationNs !== undefined) rules.removeFault(id);
          const hits = installed.hits;
          return () => ({
            ...base,
            target: `${label(b, f.device)} LUN ${f.disk} LBA ${f.firstLba}..${f.firstLba + f.count - 1} (${f.op})`,
            outcome: `${hits} ${f.op === "both" ? "read/write" : f.op}(s) of the range failed with MEDIUM ERROR ${forWindow}${durationNs === undefined ? "" : "; healed afterwards"}`,
            counters: { failedOps: hits },
          });
        });
      });
    }
    case "switch-drop": {
      const port = (hostOf(b, f.device).handler as NetvspDevice).port;
      return untilStart().then(() => {
        const drops0 = port.stats.drops.fault;
        const in0 = port.stats.framesIn + port.stats.framesOut;
        const fault = f.probability >= 1 ? { dropAll: true } : { dropProbability: f.probability };
        port.setFault(fault);
        return untilEnd().then(() => {
          if (durationNs !== undefined && port.fault === fault) port.setFault(null);
          const dropped = port.stats.drops.fault - drops0;
          const passed = port.stats.framesIn + port.stats.framesOut - in0;
          return () => ({
            ...base,
            target: `switch port ${port.name} (${label(b, f.device)})`,
            outcome: `dropped ${dropped} frame(s) ${forWindow} (p = ${f.probability}); ${passed} went through`,
            counters: { framesDropped: dropped, framesPassed: passed },
          });
        });
      });
    }
    case "ring-full":
      return ringFull(built, b, index, f, t0, startNs, durationNs as number, deadline, base);
  }
}

/** ring-full: stall the echo host and push `requests` echoes through its one channel; every reply is compared with what was sent. */
async function ringFull(
  built: BuiltSystem,
  b: BuiltVm,
  index: number,
  f: Extract<FaultScenario, { kind: "ring-full" }>,
  t0: number,
  startNs: number,
  durationNs: number,
  deadline: SettleDeadline,
  base: Omit<FaultResult, "target" | "outcome" | "counters">,
): Promise<() => FaultResult> {
  const { sys } = built;
  const sched = sys.sim.scheduler;
  const host = hostOf(b, f.device);
  await sched.sleep(Math.max(0, startNs - sched.now), `fault ${index} (ring-full)`);
  const guest = guestOf(b.vm, host);
  const echo = guest === undefined ? undefined : b.vm.driverOf<EchoDriver>(guest);
  const target = label(b, f.device);
  if (echo === undefined) {
    return () => ({ ...base, target, outcome: "no echo driver bound to the device (rescinded?): nothing sent", counters: {} });
  }
  const ch = echo.channel;
  const full0 = ch.outFullTotal;
  const stall = sys.hv.faults.stallHostDevice(host, { startNs: sched.now, durationNs });
  const rng = sys.sim.rng.fork(`fault ${index}`);
  const ledger = new RequestLedger(deadline);
  const vcpu = b.vm.partition.vcpus[0];
  if (vcpu === undefined) throw new Error(`${b.vm.name}: no vCPU`);
  let intact = 0;
  let corrupt = 0;
  const sent = Array.from({ length: f.requests }, () => {
    const payload = rng.bytes(f.bytes);
    return ledger.track(vcpu.issue(() => echo.echo(payload))).then((s) => {
      if (s.status !== "completed") return;
      if (s.value.length === payload.length && s.value.every((x, i) => x === payload[i])) intact++;
      else corrupt++;
    });
  });
  // Look just before the host comes back: how full, how many waiting.
  let blocked = 0;
  let pendingSendSz = 0;
  let usedBytes = 0;
  const look = sched.sleep(Math.max(0, durationNs - 1), `fault ${index} (ring-full) look`).then(() => {
    blocked = ch.endpoint?.blockedSenders ?? 0;
    const out = ch.outbound;
    if (out !== null) {
      pendingSendSz = out.loadPendingSendSize();
      usedBytes = out.dataSize - out.bytesToWrite(out.loadWriteIndex(), out.loadReadIndex());
    }
  });
  await Promise.all([...sent, look]);
  const t = ledger.tally();
  const fullEvents = ch.outFullTotal - full0;
  return () => ({
    ...base,
    target,
    outcome:
      `host stalled ${ms(durationNs)}; ${f.requests} echo(es) of ${f.bytes} B: the ring held ${usedBytes} B with ${blocked} sender(s) waiting on ` +
      `pending_send_sz=${pendingSendSz} (${fullEvents} full-ring hit(s)); after the stall (ended ${ms((stall.endedAtNs ?? stall.endNs ?? startNs) - t0)}) ` +
      `${t.completed} completed, ${intact} intact, ${corrupt} corrupt, ${t.failedTotal} failed, ${t.lost} lost`,
    counters: { requests: f.requests, completed: t.completed, intact, corrupt, failed: t.failedTotal, lost: t.lost, blockedSenders: blocked, pendingSendSz, ringUsedBytes: usedBytes, outFullTotal: fullEvents },
    requests: t,
  });
}
