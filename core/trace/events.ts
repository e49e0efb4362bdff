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

type Names = EventEmitter.EventNames<TraceEventMap>;
type Listener<T extends Names> = EventEmitter.EventListener<TraceEventMap, T>;

/** The simulation's event bus. One per simulation; layers emit, reporters listen. */
export class Tracer extends EventEmitter<TraceEventMap> {
  /**
   * Which events have listeners, kept up to date by every subscribe and
   * unsubscribe: `wants` is asked several times per packet on the I/O
   * path, and counting listeners each time costs more than the check saves.
   */
  private readonly listened = new Set<string>();

  /** True if anyone listens to `event`: emitters skip building the event otherwise. */
  wants(event: TraceEventName): boolean {
    return this.listened.size !== 0 && this.listened.has(event);
  }

  override on<T extends Names>(event: T, fn: Listener<T>, context?: unknown): this {
    super.on(event, fn, context);
    return this.refresh(event);
  }

  override addListener<T extends Names>(event: T, fn: Listener<T>, context?: unknown): this {
    super.addListener(event, fn, context);
    return this.refresh(event);
  }

  override once<T extends Names>(event: T, fn: Listener<T>, context?: unknown): this {
    super.once(event, fn, context);
    return this.refresh(event);
  }

  override removeListener<T extends Names>(event: T, fn?: Listener<T>, context?: unknown, once?: boolean): this {
    super.removeListener(event, fn, context, once);
    return this.refresh(event);
  }

  override off<T extends Names>(event: T, fn?: Listener<T>, context?: unknown, once?: boolean): this {
    super.off(event, fn, context, once);
    return this.refresh(event);
  }

  override removeAllListeners(event?: Names): this {
    super.removeAllListeners(event);
    if (event === undefined) this.listened.clear();
    else this.refresh(event);
    return this;
  }

  private refresh(event: Names): this {
    if (this.listenerCount(event) > 0) this.listened.add(event);
    else this.listened.delete(event);
    return this;
  }
}
