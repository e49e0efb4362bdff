/**
 * Guest-side helpers around the hypercalls: `vmbus_post_msg`'s retry loop
 * (vmbus-core.md §7.4) and `vmbus_setevent`'s choice between the monitor
 * page and the signal-event hypercall (§3.4, seed 002).
 */
import { InvalidArgumentError } from "../errors.js";
import {
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INSUFFICIENT_MEMORY,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
  type HvStatus,
} from "./constants.js";
import type { Vcpu } from "./vcpu.js";

/** Linux: `while (retries < 100)`. */
export const POST_MESSAGE_MAX_RETRIES = 100;
/** Linux: `usec = 1`, doubled after each of the first 21 retries (`if (retries < 22) usec *= 2`). */
export const POST_MESSAGE_BACKOFF_START_NS = 1_000;
export const POST_MESSAGE_BACKOFF_DOUBLINGS = 21;

export interface PostMessageRetryOptions {
  /** Default 100. */
  readonly maxRetries?: number;
  /**
   * Return at once on HV_STATUS_INVALID_CONNECTION_ID instead of retrying —
   * what Linux does for INITIATE_CONTACT, where that status means "old
   * host, try the older connection id".
   */
  readonly abortOnInvalidConnectionId?: boolean;
}

export interface PostMessageResult {
  readonly status: HvStatus;
  /** Hypercalls issued. */
  readonly attempts: number;
  /** Virtual time spent backing off. */
  readonly backoffNs: number;
}

/**
 * Posts a message from `vcpu`, retrying transient failures the way
 * `vmbus_post_msg` does: INSUFFICIENT_BUFFERS / INSUFFICIENT_MEMORY (and
 * INVALID_CONNECTION_ID unless told otherwise) back off and retry, starting
 * at 1 µs and doubling; SUCCESS and any other status return at once. The
 * backoff is virtual time (`sleep`), so a host that frees its queue within
 * the backoff lets the retry succeed deterministically.
 */
export async function postMessageWithRetry(
  vcpu: Vcpu,
  connectionId: number,
  messageType: number,
  payload: Uint8Array,
  options: PostMessageRetryOptions = {},
): Promise<PostMessageResult> {
  const maxRetries = options.maxRetries ?? POST_MESSAGE_MAX_RETRIES;
  if (!Number.isInteger(maxRetries) || maxRetries < 1) {
    throw new InvalidArgumentError("maxRetries", maxRetries, "must be a positive integer");
  }
  const sched = vcpu.partition.hypervisor.sim.scheduler;
  let backoff = POST_MESSAGE_BACKOFF_START_NS;
  let backoffNs = 0;
  let status: HvStatus = HV_STATUS_SUCCESS;
  let retries = 0;
  while (retries < maxRetries) {
    status = vcpu.postMessage(connectionId, messageType, payload);
    if (status === HV_STATUS_SUCCESS) return { status, attempts: retries + 1, backoffNs };
    if (status === HV_STATUS_INVALID_CONNECTION_ID) {
      if (options.abortOnInvalidConnectionId === true) return { status, attempts: retries + 1, backoffNs };
    } else if (status !== HV_STATUS_INSUFFICIENT_BUFFERS && status !== HV_STATUS_INSUFFICIENT_MEMORY) {
      return { status, attempts: retries + 1, backoffNs };
    }
    retries++;
    await sched.sleep(backoff, `${vcpu.name} post_msg backoff`);
    backoffNs += backoff;
    if (retries <= POST_MESSAGE_BACKOFF_DOUBLINGS) backoff *= 2;
  }
  return { status, attempts: retries, backoffNs };
}

/** What a channel needs to signal the host (from its offer). */
export interface ChannelSignalTarget {
  /** The offer's connection_id (`channel->sig_event`). */
  readonly connectionId: number;
  /** The offer's monitorid if `monitor_allocated`, else undefined. */
  readonly monitorId: number | undefined;
  /** Bypass the monitor page (the channel's `low_latency`). */
  readonly lowLatency: boolean;
}

export type SignalPath = "monitor" | "hypercall";

/**
 * `vmbus_setevent`: a monitored channel that is not low-latency sets its
 * pending bit in the VM's guest→host monitor page (no hypercall; the
 * hypervisor wakes the host within the monitor latency); otherwise issue
 * HVCALL_SIGNAL_EVENT with the connection id. Returns the path taken, so the
 * channel layer counts `events` (sig_events) only for "hypercall", as Linux
 * does. Allocates nothing.
 */
export function signalChannel(vcpu: Vcpu, target: ChannelSignalTarget): SignalPath {
  const vm = vcpu.partition;
  if (target.monitorId !== undefined && !target.lowLatency) {
    vm.monitor.trigger(target.monitorId);
    vm.counters.guestSignalsViaMonitor++;
    return "monitor";
  }
  vm.counters.guestSignalsViaHypercall++;
  vcpu.signalEvent(target.connectionId);
  return "hypercall";
}
