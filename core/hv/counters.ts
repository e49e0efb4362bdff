/**
 * Counters the hypervisor model keeps, where Linux or Hyper-V keep them
 * (DESIGN.md principle 5). Per-channel counters (`events`, `intr_in_full`,
 * `intr_out_empty`, …) belong to the channel layer, not here.
 *
 * Plain mutable fields: the hypervisor increments them on hot paths without
 * allocating; readers treat them as read-only.
 */
import { HV_EVENT_FLAGS_COUNT, HV_SYNIC_SINT_COUNT } from "./constants.js";

export class HypercallCounters {
  /** HVCALL_POST_MESSAGE issued (any status). */
  postMessage = 0;
  /** HVCALL_SIGNAL_EVENT issued (any status). */
  signalEvent = 0;

  get total(): number {
    return this.postMessage + this.signalEvent;
  }
}

export class VcpuCounters {
  readonly hypercalls = new HypercallCounters();
  /** SINT2 interrupts taken: the vCPU's column of the "HYP" line in /proc/interrupts. */
  vmbusInterrupts = 0;
  /** Interrupts taken, by SINT. */
  readonly sintInterrupts = new Float64Array(HV_SYNIC_SINT_COUNT);
  /** Raises that merged into an interrupt already pending or in flight for the same SINT. */
  interruptsCoalesced = 0;
  /** Interrupts that had to wait because the vCPU was busy or suspended. */
  interruptsDeferred = 0;
  /** Interrupts taken on a SINT with no handler installed. */
  unhandledInterrupts = 0;
  /** Writes to the EOM MSR (end of message with msg_pending set). */
  eomMsrWrites = 0;
  /** Handlers (interrupts and queued work) run to completion. */
  handlersRun = 0;
}

export class PartitionCounters {
  readonly hypercalls = new HypercallCounters();
  /** Guest signals the host's classifier called necessary / unnecessary (Hyper-V's DoS accounting). */
  signalsNecessary = 0;
  signalsUnnecessary = 0;
  /** `signalChannel` calls that took the monitor page path / the signal-event hypercall path. */
  guestSignalsViaMonitor = 0;
  guestSignalsViaHypercall = 0;
  /** Guest sets of a monitor pending bit. */
  monitorTriggers = 0;
  /** Hypervisor scans of a monitor entry, and the host wakeups they produced. */
  monitorScans = 0;
  monitorWakeups = 0;
  /** Pending bits found on entries that were not armed or name no connected event. */
  monitorDropped = 0;
  /** Host event-connection handler invocations (hypercall and monitor paths). */
  hostWakeups = 0;
  /** Guest → host messages accepted / host → guest messages accepted. */
  messagesToHost = 0;
  messagesToGuest = 0;
  /** Posts refused with HV_STATUS_INSUFFICIENT_BUFFERS (either direction). */
  messagesRejected = 0;
  /** Messages written into a guest SIMP slot. */
  messagesDelivered = 0;
  /** Times the hypervisor set msg_pending in a busy slot. */
  msgPendingSet = 0;
  /** Guest EOMs (slot released) and EOM MSR writes among them. */
  eoms = 0;
  eomMsrWrites = 0;
  /** Host → guest channel signals (event flag set + SINT2 raised). */
  hostSignals = 0;
  /** Event flags the guest ISR found for a relid with no channel (counted, never thrown). */
  unknownRelidInterrupts = 0;
  /** SINT2 interrupts whose message slot held a message but no message handler was installed. */
  unhandledMessages = 0;
  /** Throttling episodes and the virtual time spent suspended (forced suspensions included). */
  throttleEvents = 0;
  throttledNs = 0;
  /** Suspensions forced by fault injection (`FaultInjector.suspendVm`). */
  faultSuspensions = 0;
  /** Channel interrupts fault injection dropped (flag set, SINT2 not raised) or delivered late. */
  interruptsDropped = 0;
  interruptsDelayed = 0;
  /** Monitor scans fault injection delayed. */
  monitorScansDelayed = 0;
  /** Channel interrupts delivered, by relid (Linux `channels/<relid>/interrupts` is kept from these). */
  readonly relidInterrupts = new Float64Array(HV_EVENT_FLAGS_COUNT);
}
