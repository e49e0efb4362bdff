/**
 * The shared control block of threaded mode: what crosses between the guest
 * thread and the host thread besides guest memory itself. It models what
 * crosses the partition boundary on Hyper-V — hypercalls, interrupts and
 * the EOM MSR — and nothing else:
 *
 * - guest → host HVCALL_POST_MESSAGE: a mailbox ring (a `RingBuffer` in its
 *   own SharedArrayBuffer, written with `RingWriter` and read with
 *   `RingReader` — the same ring code as every channel);
 * - guest → host HVCALL_SIGNAL_EVENT: one bit per connection id in a
 *   two-level bitmap (a summary bit per 32-bit word);
 * - guest → host EOM MSR writes: one word per vCPU;
 * - host → guest interrupts: one word of pending SINT bits per vCPU (the
 *   SynIC message and event-flag pages are guest memory already);
 * - which connection ids the host registered, so that a hypercall gets
 *   HV_STATUS_INVALID_CONNECTION_ID synchronously as it would on Hyper-V;
 * - two doorbells: a counter each thread sleeps on (`Atomics.waitAsync`)
 *   and the other increments and `Atomics.notify`s after publishing work;
 * - a state word (starting / running / stop / failed) and counters.
 *
 * Every access is an `Atomics` operation, and all of them are sequentially
 * consistent: a store (or read-modify-write) is ordered before every later
 * atomic access of the same thread, and is seen by the other thread in
 * that order. That single rule gives each protocol here its "publish the
 * data, then the flag / doorbell" ordering; the call sites say which race
 * each order prevents.
 */
import { InvalidArgumentError } from "../errors.js";

/** Connection ids the link can carry: [0, 2^17). The VMBus server uses 1, 4, 0x1000 + vm and 0x10000 + relid (< 2048). */
export const LINK_MAX_CONNECTION_ID = 1 << 17;
/** vCPUs one link serves. */
export const LINK_MAX_VCPUS = 64;

// Word indices in the control block (Int32Array). Doorbells and the state
// word sit on their own 64-byte lines.
/** Guest → host doorbell (counter). */
export const W_HOST_BELL = 0;
/** Host → guest doorbell (counter). */
export const W_GUEST_BELL = 16;
export const W_STATE = 32;
export const STATE_STARTING = 0;
export const STATE_RUNNING = 1;
export const STATE_STOP = 2;
export const STATE_FAILED = 3;

/**
 * Counters, each written by one thread (with Atomics.add), read by both.
 * Statistics only: no protocol decision depends on them, so their
 * ordering relative to other words does not matter.
 */
export const C_GUEST_NOTIFIES = 48;
export const C_HOST_NOTIFIES = 49;
export const C_HOST_WAITS = 50;
export const C_HOST_WAKEUPS = 51;
export const C_GUEST_WAITS = 52;
export const C_GUEST_WAKEUPS = 53;
export const C_MAILBOX_MESSAGES = 54;
export const C_MAILBOX_MALFORMED = 55;
export const C_EVENT_SIGNALS = 56;
export const C_MONITOR_RINGS = 57;
export const C_EOM_FORWARDS = 58;
export const C_SINT_FORWARDS = 59;
export const C_HOST_POLLS = 60;
export const C_GUEST_POLLS = 61;
export const C_MAILBOX_DEFERRALS = 62;

/** Pending SINT bits, one word per vCPU (host sets, guest takes). */
export const W_PENDING_SINTS = 64;
/** EOM MSR writes, one word per vCPU (guest sets, host takes). */
export const W_EOM = W_PENDING_SINTS + LINK_MAX_VCPUS;
const SIGNAL_WORDS = LINK_MAX_CONNECTION_ID / 32;
/** Summary: bit w set ⇒ word w of the signal bitmap may be non-zero. */
export const W_SIGNAL_SUMMARY = 256;
export const W_SIGNAL_BITS = W_SIGNAL_SUMMARY + SIGNAL_WORDS / 32;
/** Registered message ports (host sets/clears, guest reads). */
export const W_PORTS = W_SIGNAL_BITS + SIGNAL_WORDS;
/** Registered event connections (host sets/clears, guest reads). */
export const W_EVENTS = W_PORTS + SIGNAL_WORDS;
export const LINK_WORDS = W_EVENTS + SIGNAL_WORDS;

/** Mailbox ring size: one header page and 16 KiB of data (≈ 60 control messages). */
export const MAILBOX_BYTES = 4096 + 16384;
/** A mailbox packet's payload: vp_index, connection_id, message_type, payload_size (u32 each), then the payload. */
export const MAILBOX_HEADER_BYTES = 16;

/** The buffers both threads map. Structured-cloneable (SharedArrayBuffers are shared, not copied). */
export interface ThreadLinkBuffers {
  readonly control: SharedArrayBuffer;
  readonly mailbox: SharedArrayBuffer;
}

export function createLinkBuffers(): ThreadLinkBuffers {
  return { control: new SharedArrayBuffer(LINK_WORDS * 4), mailbox: new SharedArrayBuffer(MAILBOX_BYTES) };
}

/** The doorbell/flag counters of a link, as numbers. */
export interface ThreadLinkCounters {
  /** Guest → host doorbell rings (`Atomics.notify` calls on the host's bell). */
  readonly guestToHostNotifies: number;
  /** Host → guest doorbell rings. */
  readonly hostToGuestNotifies: number;
  /** Times the host thread went to sleep on its doorbell (`Atomics.waitAsync`). */
  readonly hostWaits: number;
  /** Host sleeps ended by a ring (not by the real-time bound). */
  readonly hostWakeups: number;
  readonly guestWaits: number;
  readonly guestWakeups: number;
  /** Messages the host took from the mailbox. */
  readonly mailboxMessages: number;
  /** Mailbox packets the host dropped as malformed. */
  readonly mailboxMalformed: number;
  /**
   * Times the host left a message in the mailbox because its port's queue
   * was full (it looks again after the port's delivery time; the guest's
   * posts meanwhile back off once the mailbox is full).
   */
  readonly mailboxDeferrals: number;
  /** Signal-event bits the host took. */
  readonly eventSignals: number;
  /** Monitor pending bits the guest set from clear (each rang the host). */
  readonly monitorRings: number;
  /** EOM MSR writes forwarded to the host. */
  readonly eomForwards: number;
  /** SINTs the host raised on guest vCPUs. */
  readonly sintForwards: number;
  /** Doorbell changes each side handled. */
  readonly hostPolls: number;
  readonly guestPolls: number;
}

export function readLinkCounters(words: Int32Array): ThreadLinkCounters {
  const c = (i: number): number => Atomics.load(words, i) >>> 0;
  return {
    guestToHostNotifies: c(C_GUEST_NOTIFIES),
    hostToGuestNotifies: c(C_HOST_NOTIFIES),
    hostWaits: c(C_HOST_WAITS),
    hostWakeups: c(C_HOST_WAKEUPS),
    guestWaits: c(C_GUEST_WAITS),
    guestWakeups: c(C_GUEST_WAKEUPS),
    mailboxMessages: c(C_MAILBOX_MESSAGES),
    mailboxMalformed: c(C_MAILBOX_MALFORMED),
    mailboxDeferrals: c(C_MAILBOX_DEFERRALS),
    eventSignals: c(C_EVENT_SIGNALS),
    monitorRings: c(C_MONITOR_RINGS),
    eomForwards: c(C_EOM_FORWARDS),
    sintForwards: c(C_SINT_FORWARDS),
    hostPolls: c(C_HOST_POLLS),
    guestPolls: c(C_GUEST_POLLS),
  };
}

/**
 * Rings a doorbell: increment, then notify. Everything the caller stored
 * before (Atomics, sequentially consistent) is visible to a thread that
 * sees the new count. The sleeper loads the count *before* it looks for
 * work and waits only while the count is unchanged, so a ring that lands
 * after its look ends the wait at once: no lost wakeup.
 */
export function ring(words: Int32Array, bell: number, counter: number): void {
  Atomics.add(words, bell, 1);
  Atomics.add(words, counter, 1);
  Atomics.notify(words, bell);
}

export function checkConnectionId(connectionId: number): void {
  if (!Number.isInteger(connectionId) || connectionId < 0 || connectionId >= LINK_MAX_CONNECTION_ID) {
    throw new InvalidArgumentError("connectionId", connectionId, `must be in [0, ${LINK_MAX_CONNECTION_ID}) in threaded mode`);
  }
}

/** Sets (or clears) connection id `id` in the table at `base`. Atomics.or/and: the guest reads the table concurrently. */
export function setTableBit(words: Int32Array, base: number, id: number, on: boolean): void {
  const mask = 1 << (id & 31);
  if (on) Atomics.or(words, base + (id >>> 5), mask);
  else Atomics.and(words, base + (id >>> 5), ~mask);
}

/**
 * Reads connection id `id` in the table at `base`. Atomics.load (sequentially
 * consistent): a host registration made before a message that named the
 * port is seen by a guest that read that message.
 */
export function tableBit(words: Int32Array, base: number, id: number): boolean {
  if (!Number.isInteger(id) || id < 0 || id >= LINK_MAX_CONNECTION_ID) return false;
  return (Atomics.load(words, base + (id >>> 5)) & (1 << (id & 31))) !== 0;
}
