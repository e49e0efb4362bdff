/**
 * Typed trace events (DESIGN.md principle 5 "Observable"; layers: trace/).
 *
 * Every event carries the virtual time and the partition / VP it happened on,
 * so a listener can place it without asking anyone. Emitters build the event
 * object only when someone listens (`Tracer.wants`), so an untraced run pays
 * one property lookup per event and allocates nothing on the signal and
 * interrupt hot paths.
 *
 * Partition ids: 0 is the host (root) partition, VMs are 1..N. `null` means
 * "not tied to a partition / VP" (e.g. a scheduler error).
 */
import { EventEmitter } from "eventemitter3";

export interface TraceWhere {
  /** Virtual time in nanoseconds. */
  readonly timeNs: number;
  readonly partitionId: number | null;
  /** Hypervisor VP index of the vCPU, or null for partition-level events. */
  readonly vpIndex: number | null;
}

export interface PartitionTraceEvent extends TraceWhere {
  readonly name: string;
  readonly kind: "host" | "guest";
}

export interface VcpuTraceEvent extends TraceWhere {
  /** Guest CPU number (Linux `cpu`), which may differ from the VP index. */
  readonly cpu: number;
}

export type HypercallName = "HVCALL_POST_MESSAGE" | "HVCALL_SIGNAL_EVENT";

export interface HypercallTraceEvent extends TraceWhere {
  readonly code: number;
  readonly name: HypercallName;
  readonly connectionId: number;
  readonly status: number;
}

/** A guest → host signal as the hypervisor saw it, with Hyper-V's classification. */
export interface SignalTraceEvent extends TraceWhere {
  readonly connectionId: number;
  readonly via: "hypercall" | "monitor";
  readonly necessary: boolean;
  readonly monitorId: number | null;
}

export interface InterruptRaisedTraceEvent extends TraceWhere {
  readonly sint: number;
  /** The relid whose event flag was set, or null for a message interrupt. */
  readonly relid: number | null;
  readonly deliverAtNs: number;
}

export interface InterruptDeliveredTraceEvent extends TraceWhere {
  readonly sint: number;
  /** Time the interrupt waited for a busy or suspended vCPU. */
  readonly waitedNs: number;
}

export interface MessagePostedTraceEvent extends TraceWhere {
  readonly direction: "to-host" | "to-guest";
  /** For to-host: the connection id; for to-guest: the sender port written in the header. */
  readonly connectionId: number;
  readonly messageType: number;
  readonly payloadSize: number;
  readonly status: number;
  /** The other partition (the VM for host posts, the host for guest posts). */
  readonly peerPartitionId: number;
}

export interface MessageDeliveredTraceEvent extends TraceWhere {
  readonly direction: "to-host" | "to-guest";
  readonly connectionId: number;
  readonly messageType: number;
  /** to-guest: the SINT slot written. to-host: null. */
  readonly sint: number | null;
  /** to-guest: messages still queued behind this one (msg_pending was set if > 0). */
  readonly queued: number;
}

export interface MessageEomTraceEvent extends TraceWhere {
  readonly sint: number;
  /** True when the guest wrote the EOM MSR (msg_pending was set). */
  readonly msrWrite: boolean;
}

export interface MonitorScanTraceEvent extends TraceWhere {
  readonly monitorId: number;
  readonly connectionId: number;
  /** Guest triggers folded into this scan (signals in the window). */
  readonly triggers: number;
  /** Whether the host was woken (bit was pending, armed, connection known). */
  readonly wakeup: boolean;
}

export interface ThrottleTraceEvent extends TraceWhere {
  readonly phase: "begin" | "end";
  readonly unnecessarySignals: number;
  readonly untilNs: number;
}

export interface VcpuRunTraceEvent extends TraceWhere {
  readonly label: string;
  readonly startNs: number;
  readonly durNs: number;
}

export interface SchedulerErrorTraceEvent extends TraceWhere {
  readonly label: string;
  readonly message: string;
}

/** Event name → listener arguments (eventemitter3's typed-map form). */
/** Bytes in use in one of a channel's rings, sampled after the guest wrote or drained it. */
export interface RingOccupancyTraceEvent extends TraceWhere {
  readonly relid: number;
  /** "out" = guest → host ring, "in" = host → guest ring. */
  readonly ring: "out" | "in";
  readonly usedBytes: number;
  readonly freeBytes: number;
}

/** A guest request with a completion (a VMBus transaction), from send to completion. */
export interface TransactionTraceEvent extends TraceWhere {
  readonly relid: number;
  readonly requestId: number;
  readonly phase: "begin" | "end";
  /** "completed", or why it ended otherwise ("failed"). */
  readonly outcome?: string;
  /** Begin only: the device class GUID of the channel ("ba6163d9-…"). */
  readonly classId?: string;
  /** Begin only: a copy of the request's payload (after the VMBus headers), for labelling. */
  readonly payload?: Uint8Array;
}

export interface TraceEventMap {
  partitionCreated: [PartitionTraceEvent];
  vcpuCreated: [VcpuTraceEvent];
  hypercall: [HypercallTraceEvent];
  signal: [SignalTraceEvent];
  interruptRaised: [InterruptRaisedTraceEvent];
  interruptDelivered: [InterruptDeliveredTraceEvent];
  messagePosted: [MessagePostedTraceEvent];
  messageDelivered: [MessageDeliveredTraceEvent];
  messageEom: [MessageEomTraceEvent];
  monitorScan: [MonitorScanTraceEvent];
  throttle: [ThrottleTraceEvent];
  vcpuRun: [VcpuRunTraceEvent];
  schedulerError: [SchedulerErrorTraceEvent];
  ringOccupancy: [RingOccupancyTraceEvent];
  transaction: [TransactionTraceEvent];
}

export type TraceEventName = keyof TraceEventMap;

/** The simulation's event bus. One per simulation; layers emit, reporters listen. */
export class Tracer extends EventEmitter<TraceEventMap> {
  /** True if anyone listens to `event`: emitters skip building the event otherwise. */
  wants(event: TraceEventName): boolean {
    return this.listenerCount(event) > 0;
  }
}
