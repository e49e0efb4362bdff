/**
 * Chrome Trace Event JSON writer, the format Perfetto and chrome://tracing
 * open (toolchain.md §4.5).
 *
 * Mapping: one *process* per partition (pid = partitionId + 1: the host is
 * pid 1, VM n is pid n + 1), one *thread* per vCPU (tid = vpIndex + 2) plus a
 * "hypervisor" thread (tid 1) for partition-level events such as monitor
 * scans and throttling. Instants (`ph:"i"`) for signals, hypercalls,
 * interrupts and messages; complete events (`ph:"X"`) for vCPU handler runs;
 * counters (`ph:"C"`) for ring occupancy and the like (`counter()`); async
 * spans (`ph:"b"`/`"e"`, keyed by cat + id) for transactions and throttling,
 * since they may overlap. Timestamps: ts = virtual ns / 1000 (µs, fractions
 * allowed).
 *
 * Output is deterministic: events in emission order, each event's keys in a
 * fixed order and `args` keys sorted, so a hash of `toJSON()` can be compared
 * across runs.
 */
import { writeFileSync } from "node:fs";
import { InvalidArgumentError } from "../errors.js";
import type { TraceEventMap, TraceWhere, Tracer } from "./events.js";

/** Anything with a virtual clock (a Scheduler or Simulation). */
export interface TraceClock {
  readonly now: number;
}

export type TraceArgValue = string | number | boolean | null | readonly TraceArgValue[] | { readonly [k: string]: TraceArgValue };
export type TraceArgs = { readonly [k: string]: TraceArgValue };

export type InstantScope = "g" | "p" | "t";

interface ChromeEvent {
  readonly name: string;
  readonly cat: string;
  readonly ph: string;
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly dur?: number;
  readonly id?: string | number;
  readonly s?: InstantScope;
  readonly args?: TraceArgs;
}

/** The trace process of partition `partitionId` (null = hypervisor-wide → host process). */
export function tracePid(partitionId: number | null): number {
  return (partitionId ?? 0) + 1;
}

/** The trace thread of VP `vpIndex` (null = the partition's "hypervisor" thread). */
export function traceTid(vpIndex: number | null): number {
  return vpIndex === null ? 1 : vpIndex + 2;
}

/**
 * Names a VMBus transaction from its request (device class GUID and payload
 * bytes), e.g. with a protocol decoder: "EXECUTE_SRB READ(10) lba=…". Return
 * undefined to keep the default name.
 */
export type TransactionLabeler = (classId: string | undefined, payload: Uint8Array) => string | undefined;

export interface ChromeTraceWriterOptions {
  /** Supplies `ts` when a call omits the time. */
  readonly clock?: TraceClock;
  /** Labels transaction spans from their request bytes. */
  readonly labelTransaction?: TransactionLabeler;
  /** Written as `otherData` (e.g. seed, scenario name). */
  readonly otherData?: TraceArgs;
}

export class ChromeTraceWriter {
  private readonly events: ChromeEvent[] = [];
  private readonly namedProcesses = new Set<number>();
  private readonly namedThreads = new Set<string>();
  private readonly clock: TraceClock | undefined;
  private readonly otherData: TraceArgs;

  private readonly labeler: TransactionLabeler | undefined;

  constructor(options: ChromeTraceWriterOptions = {}) {
    this.clock = options.clock;
    this.otherData = options.otherData ?? {};
    this.labeler = options.labelTransaction;
  }

  get eventCount(): number {
    return this.events.length;
  }

  /** `M process_name` (+ `process_sort_index`). */
  processName(pid: number, name: string, sortIndex: number = pid): void {
    this.namedProcesses.add(pid);
    this.events.push({ name: "process_name", cat: "__metadata", ph: "M", ts: 0, pid, tid: 0, args: { name } });
    this.events.push({ name: "process_sort_index", cat: "__metadata", ph: "M", ts: 0, pid, tid: 0, args: { sort_index: sortIndex } });
  }

  /** `M thread_name` (+ `thread_sort_index`). */
  threadName(pid: number, tid: number, name: string, sortIndex: number = tid): void {
    this.namedThreads.add(`${pid}:${tid}`);
    this.events.push({ name: "thread_name", cat: "__metadata", ph: "M", ts: 0, pid, tid, args: { name } });
    this.events.push({ name: "thread_sort_index", cat: "__metadata", ph: "M", ts: 0, pid, tid, args: { sort_index: sortIndex } });
  }

  /** An instant event (`ph:"i"`). */
  instant(pid: number, tid: number, name: string, cat: string, args?: TraceArgs, timeNs?: number, scope: InstantScope = "t"): void {
    this.push({ name, cat, ph: "i", ts: this.ts(timeNs), pid, tid, s: scope, ...(args === undefined ? {} : { args }) });
  }

  /** A complete event (`ph:"X"`): a slice on a thread. */
  complete(pid: number, tid: number, name: string, cat: string, startNs: number, durNs: number, args?: TraceArgs): void {
    this.push({
      name,
      cat,
      ph: "X",
      ts: this.ts(startNs),
      pid,
      tid,
      dur: durNs / 1000,
      ...(args === undefined ? {} : { args }),
    });
  }

  /**
   * A counter sample (`ph:"C"`): each key of `values` is one series of the
   * `name` track of process `pid` (e.g. ring occupancy `{ used, free }`).
   */
  counter(pid: number, name: string, values: Readonly<Record<string, number>>, timeNs?: number): void {
    this.push({ name, cat: "counter", ph: "C", ts: this.ts(timeNs), pid, tid: 0, args: values });
  }

  /** Begins an async span (`ph:"b"`), matched with `asyncEnd` by cat + id. */
  asyncBegin(pid: number, cat: string, id: string | number, name: string, args?: TraceArgs, timeNs?: number): void {
    this.push({ name, cat, ph: "b", ts: this.ts(timeNs), pid, tid: 0, id, ...(args === undefined ? {} : { args }) });
  }

  /** Ends an async span (`ph:"e"`). */
  asyncEnd(pid: number, cat: string, id: string | number, name: string, args?: TraceArgs, timeNs?: number): void {
    this.push({ name, cat, ph: "e", ts: this.ts(timeNs), pid, tid: 0, id, ...(args === undefined ? {} : { args }) });
  }

  /**
   * Subscribes to every event of `tracer` and records it. Returns a function
   * that unsubscribes. Processes and threads are named from
   * `partitionCreated` / `vcpuCreated`, or with a default name the first
   * time an unnamed one appears.
   */
  attach(tracer: Tracer): () => void {
    const offs: (() => void)[] = [];
    const on = <K extends keyof TraceEventMap>(event: K, fn: (...a: TraceEventMap[K]) => void): void => {
      tracer.on(event, fn as never);
      offs.push(() => tracer.off(event, fn as never));
    };
    on("partitionCreated", (e) => {
      const pid = tracePid(e.partitionId);
      if (!this.namedProcesses.has(pid)) this.processName(pid, e.kind === "host" ? `host (${e.name})` : e.name);
    });
    on("vcpuCreated", (e) => {
      const pid = tracePid(e.partitionId);
      const tid = traceTid(e.vpIndex);
      if (!this.namedThreads.has(`${pid}:${tid}`)) this.threadName(pid, tid, `cpu${e.cpu} (VP ${e.vpIndex ?? 0})`);
    });
    on("hypercall", (e) => {
      this.at(e, e.name, "hv.hypercall", { code: e.code, connectionId: e.connectionId, status: e.status });
    });
    on("signal", (e) => {
      this.at(e, e.necessary ? "signal" : "signal (unnecessary)", "hv.signal", {
        connectionId: e.connectionId,
        via: e.via,
        necessary: e.necessary,
        monitorId: e.monitorId,
      });
    });
    on("interruptRaised", (e) => {
      this.at(e, `raise SINT${e.sint}`, "hv.interrupt", { relid: e.relid, deliverAtNs: e.deliverAtNs });
    });
    on("interruptDelivered", (e) => {
      this.at(e, `SINT${e.sint} interrupt`, "hv.interrupt", { waitedNs: e.waitedNs });
    });
    on("messagePosted", (e) => {
      this.at(e, `post message ${e.direction}`, "hv.message", {
        connectionId: e.connectionId,
        messageType: e.messageType,
        payloadSize: e.payloadSize,
        status: e.status,
        peer: e.peerPartitionId,
      });
    });
    on("messageDelivered", (e) => {
      this.at(e, `deliver message ${e.direction}`, "hv.message", {
        connectionId: e.connectionId,
        messageType: e.messageType,
        sint: e.sint,
        queued: e.queued,
      });
    });
    on("messageEom", (e) => {
      this.at(e, e.msrWrite ? "EOM (MSR write)" : "EOM", "hv.message", { sint: e.sint, msrWrite: e.msrWrite });
    });
    on("monitorScan", (e) => {
      this.at(e, e.wakeup ? "monitor wakeup" : "monitor scan", "hv.monitor", {
        monitorId: e.monitorId,
        connectionId: e.connectionId,
        triggers: e.triggers,
        wakeup: e.wakeup,
      });
    });
    on("throttle", (e) => {
      this.ensureNamed(e);
      const pid = tracePid(e.partitionId);
      if (e.phase === "begin") {
        this.asyncBegin(pid, "hv.throttle", `throttle-${pid}`, "throttled", { unnecessarySignals: e.unnecessarySignals, untilNs: e.untilNs }, e.timeNs);
      } else {
        this.asyncEnd(pid, "hv.throttle", `throttle-${pid}`, "throttled", undefined, e.timeNs);
      }
    });
    on("vcpuRun", (e) => {
      this.ensureNamed(e);
      this.complete(tracePid(e.partitionId), traceTid(e.vpIndex), e.label, "hv.vcpu", e.startNs, e.durNs);
    });
    on("ringOccupancy", (e) => {
      this.counter(tracePid(e.partitionId), `relid ${e.relid} ${e.ring} ring`, { used: e.usedBytes, free: e.freeBytes }, e.timeNs);
    });
    on("transaction", (e) => {
      const pid = tracePid(e.partitionId);
      const id = `${e.partitionId}.${e.relid}.${e.requestId}`;
      const name = `relid ${e.relid} request`;
      if (e.phase === "begin") {
        const label = e.payload !== undefined ? this.labeler?.(e.classId, e.payload) : undefined;
        const args: TraceArgs = label === undefined ? { relid: e.relid, requestId: e.requestId } : { relid: e.relid, requestId: e.requestId, request: label };
        this.asyncBegin(pid, "vmbus.transaction", id, name, args, e.timeNs);
      }
      else this.asyncEnd(pid, "vmbus.transaction", id, name, { outcome: e.outcome ?? "completed" }, e.timeNs);
    });
    on("schedulerError", (e) => {
      this.ensureNamed(e);
      this.instant(tracePid(e.partitionId), traceTid(e.vpIndex), "scheduler error", "sim.error", { label: e.label, message: e.message }, e.timeNs, "g");
    });
    return () => {
      for (const off of offs) off();
    };
  }

  /** The trace as a JSON object string (`{"traceEvents":[…],…}`), one event per line. */
  toJSON(): string {
    const lines: string[] = [];
    for (const e of this.events) lines.push(stringifyEvent(e));
    return (
      `{"displayTimeUnit":"ns","otherData":${stableStringify(this.otherData)},"traceEvents":[\n` +
      lines.join(",\n") +
      "\n]}\n"
    );
  }

  /** Writes `toJSON()` to `path`. */
  writeFile(path: string): void {
    writeFileSync(path, this.toJSON(), "utf8");
  }

  private at(e: TraceWhere, name: string, cat: string, args: TraceArgs): void {
    this.ensureNamed(e);
    this.instant(tracePid(e.partitionId), traceTid(e.vpIndex), name, cat, args, e.timeNs);
  }

  private ensureNamed(e: TraceWhere): void {
    const pid = tracePid(e.partitionId);
    if (!this.namedProcesses.has(pid)) this.processName(pid, pid === 1 ? "host" : `partition ${pid - 1}`);
    const tid = traceTid(e.vpIndex);
    if (!this.namedThreads.has(`${pid}:${tid}`)) {
      this.threadName(pid, tid, e.vpIndex === null ? "hypervisor" : `VP ${e.vpIndex}`);
    }
  }

  private ts(timeNs: number | undefined): number {
    const t = timeNs ?? this.clock?.now;
    if (t === undefined) throw new InvalidArgumentError("timeNs", "undefined", "give a time or construct the writer with a clock");
    if (!Number.isFinite(t)) throw new InvalidArgumentError("timeNs", t, "must be finite");
    return t / 1000;
  }

  private push(e: ChromeEvent): void {
    this.events.push(e);
  }
}

const EVENT_KEYS = ["name", "cat", "ph", "ts", "dur", "pid", "tid", "id", "s", "args"] as const;

function stringifyEvent(e: ChromeEvent): string {
  let out = "{";
  let first = true;
  for (const k of EVENT_KEYS) {
    const v = e[k];
    if (v === undefined) continue;
    if (!first) out += ",";
    first = false;
    out += `${JSON.stringify(k)}:${stableStringify(v)}`;
  }
  return out + "}";
}

/** JSON with object keys sorted at every level, so equal data gives equal text. */
export function stableStringify(v: TraceArgValue | undefined): string {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : "null";
  if (typeof v === "string" || typeof v === "boolean") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${(v as readonly TraceArgValue[]).map((x) => stableStringify(x)).join(",")}]`;
  const obj = v as { readonly [k: string]: TraceArgValue };
  const keys = Object.keys(obj).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const x = obj[k];
    if (x === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${stableStringify(x)}`);
  }
  return `{${parts.join(",")}}`;
}
