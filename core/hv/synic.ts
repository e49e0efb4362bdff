/**
 * The synthetic interrupt controller of one vCPU (vmbus-core.md §5; seed 003
 * "Synthetic Interrupt Controller"): the SIMP message page and the SIEFP
 * event-flags page, in guest memory at the real layout, and the hypervisor's
 * message queue behind each SINT slot.
 *
 * Message handshake (§5.2, §5.4 `vmbus_signal_eom`): a slot is free only
 * while its message_type is HVMSG_NONE. A message that finds the slot busy
 * waits in the hypervisor, which sets msg_pending in the slot's header. The
 * guest, after copying the message, sets message_type to HVMSG_NONE and
 * *then* reads msg_pending; if set it writes the EOM MSR (`eom()`), and the
 * hypervisor delivers the next queued message. That order is what prevents a
 * lost wakeup: if the guest read msg_pending first, the hypervisor could
 * find the slot busy and set the flag between the read and the release, and
 * nobody would ever ask for the queued message.
 *
 * Both pages are allocated from the VM's GuestMemory (one page each), as
 * Linux's `hv_synic_alloc` does per CPU; the hypervisor writes them with
 * atomics over the same SharedArrayBuffer the guest reads.
 */
import { InvalidArgumentError } from "../errors.js";
import { PAGE_SIZE, type GuestMemory } from "../memory/guest-memory.js";
import type { Timer } from "../sim/scheduler.js";
import {
  HV_EVENT_FLAGS_COUNT,
  HV_MESSAGE_FLAG_MSG_PENDING,
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HV_MESSAGE_SIZE,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_SUCCESS,
  HV_SYNIC_SINT_COUNT,
  HVMSG_NONE,
  type HvStatus,
} from "./constants.js";
import { HV_MESSAGE, decodeHvMessage, eventFlagsOffset, messageSlotOffset, type HvMessage } from "./layout.js";
import type { Vcpu } from "./vcpu.js";

// Atomics on an Int32Array and DataView little-endian accesses must see the
// same bytes; that holds only on a little-endian host (every x86/arm64 Node).
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error("vmbus-sim requires a little-endian host: SynIC pages are shared through Int32Array atomics");
}

/** Where one vCPU's SynIC pages are (GPAs). */
export interface SynicPages {
  readonly simpGpa: number;
  readonly siefpGpa: number;
}

interface QueuedMessage {
  readonly messageType: number;
  readonly port: number;
  readonly payload: Uint8Array;
  /** Earliest time the hypervisor may write it into the slot (post time + delivery latency). */
  readonly readyAt: number;
}

export class Synic {
  /** Guest physical address of the SIMP page (16 × 256-byte hv_message slots). */
  readonly simpGpa: number;
  /** Guest physical address of the SIEFP page (16 × 256-byte event-flag blocks). */
  readonly siefpGpa: number;
  /** Int32 view of all guest memory, shared with the partition: atomics on flags and headers. */
  readonly words: Int32Array;

  private vcpuRef: Vcpu | undefined;
  private readonly queues: QueuedMessage[][] = Array.from({ length: HV_SYNIC_SINT_COUNT }, () => []);
  private queuedSints = 0;
  private deliveryTimer: Timer | undefined;
  /**
   * @internal Threaded mode, guest side: the hypervisor half of this SynIC
   * (the message queues) runs in the host thread; a write to the EOM MSR
   * is forwarded there instead of rescanning local queues.
   */
  remoteEom: (() => void) | undefined;

  /**
   * @param pages the SIMP and SIEFP pages when they already exist (threaded
   *   mode: the host thread's view of the guest's own SynIC pages); default:
   *   allocate one page each.
   */
  constructor(
    private readonly memory: GuestMemory,
    words: Int32Array,
    pages?: SynicPages,
  ) {
    this.simpGpa = pages?.simpGpa ?? memory.allocContiguous(1) * PAGE_SIZE;
    this.siefpGpa = pages?.siefpGpa ?? memory.allocContiguous(1) * PAGE_SIZE;
    this.words = words;
  }

  /** The vCPU this SynIC belongs to. */
  get vcpu(): Vcpu {
    if (this.vcpuRef === undefined) throw new InvalidArgumentError("synic.vcpu", "unset", "SynIC is not attached to a vCPU");
    return this.vcpuRef;
  }

  /** @internal */
  attach(vcpu: Vcpu): void {
    this.vcpuRef = vcpu;
    this.deliveryTimer = vcpu.partition.hypervisor.sim.scheduler.timer(`${vcpu.name} SIMP delivery`, () => this.deliverQueued());
  }

  /** GPA of SINT `sint`'s message slot. */
  messageSlotGpa(sint: number): number {
    return this.simpGpa + messageSlotOffset(sint);
  }

  /** Index in `words` of the first u32 of SINT `sint`'s event-flag block. */
  eventFlagsWordIndex(sint: number): number {
    return (this.siefpGpa + eventFlagsOffset(sint)) >> 2;
  }

  // ---- guest side -------------------------------------------------------

  /** message_type of SINT `sint`'s slot (HVMSG_NONE = empty). */
  messageType(sint: number): number {
    return Atomics.load(this.words, this.messageSlotGpa(sint) >> 2) >>> 0;
  }

  /** msg_pending of SINT `sint`'s slot. */
  messagePending(sint: number): boolean {
    return (this.memory.u8[this.messageSlotGpa(sint) + HV_MESSAGE.messageFlags]! & HV_MESSAGE_FLAG_MSG_PENDING) !== 0;
  }

  /**
   * Copies the 256-byte slot (into `out` if given, to avoid allocating) — the
   * guest never works on the live slot, which the hypervisor may rewrite.
   */
  copyMessage(sint: number, out: Uint8Array = new Uint8Array(HV_MESSAGE_SIZE)): Uint8Array {
    const gpa = this.messageSlotGpa(sint);
    out.set(this.memory.u8.subarray(gpa, gpa + HV_MESSAGE_SIZE));
    return out;
  }

  /** Copies and decodes the slot. */
  readMessage(sint: number): HvMessage {
    return decodeHvMessage(this.copyMessage(sint));
  }

  /**
   * The guest's end of message (`vmbus_signal_eom`): compare-and-swap
   * message_type from `handledType` to HVMSG_NONE (returns false, touching
   * nothing, if the slot no longer holds that type), then — only after the
   * slot is released — read msg_pending and, if set, write the EOM MSR.
   */
  endOfMessage(sint: number, handledType: number): boolean {
    const typeIdx = this.messageSlotGpa(sint) >> 2;
    const prev = Atomics.compareExchange(this.words, typeIdx, handledType | 0, HVMSG_NONE);
    if (prev >>> 0 !== handledType >>> 0) return false;
    const pending = (Atomics.load(this.words, typeIdx + 1) >>> 8) & HV_MESSAGE_FLAG_MSG_PENDING;
    const vcpu = this.vcpu;
    const vm = vcpu.partition;
    vm.counters.eoms++;
    const tracer = vm.hypervisor.sim.tracer;
    if (tracer.wants("messageEom")) {
      tracer.emit("messageEom", {
        timeNs: vm.hypervisor.sim.scheduler.now,
        partitionId: vm.id,
        vpIndex: vcpu.vpIndex,
        sint,
        msrWrite: pending !== 0,
      });
    }
    if (pending !== 0) this.eom();
    return true;
  }

  /**
   * A write to the EOM MSR: the hypervisor rescans every SINT queue and
   * delivers into slots that are free again.
   */
  eom(): void {
    const vcpu = this.vcpu;
    vcpu.counters.eomMsrWrites++;
    vcpu.partition.counters.eomMsrWrites++;
    if (this.remoteEom !== undefined) {
      this.remoteEom();
      return;
    }
    if (this.queuedSints !== 0) this.armDelivery(vcpu.partition.hypervisor.sim.costs.eomNs);
  }

  // ---- hypervisor side --------------------------------------------------

  /** Messages waiting in the hypervisor for SINT `sint`'s slot. */
  queuedMessages(sint: number): number {
    return this.queues[sint]?.length ?? 0;
  }

  /**
   * @internal Queues a message for SINT `sint`. Fails with
   * HV_STATUS_INSUFFICIENT_BUFFERS when `depth` messages already wait.
   * `payload` is copied: the sender may reuse its buffer at once.
   */
  enqueueMessage(sint: number, messageType: number, port: number, payload: Uint8Array, depth: number, readyAt: number): HvStatus {
    const q = this.queues[sint] as QueuedMessage[];
    if (q.length >= depth) return HV_STATUS_INSUFFICIENT_BUFFERS;
    q.push({ messageType, port, payload: payload.slice(), readyAt });
    this.queuedSints |= 1 << sint;
    const t = this.deliveryTimer as Timer;
    if (!t.armed || t.dueNs > readyAt) t.armAt(Math.max(readyAt, this.vcpu.partition.hypervisor.sim.scheduler.now));
    return HV_STATUS_SUCCESS;
  }

  /**
   * @internal Sets bit `relid` of SINT `sint`'s event-flag block. Returns
   * true if the bit was clear. Atomic because the guest ISR clears bits of
   * the same words concurrently on real hardware.
   */
  setEventFlag(sint: number, relid: number): boolean {
    if (!Number.isInteger(relid) || relid < 0 || relid >= HV_EVENT_FLAGS_COUNT) {
      throw new InvalidArgumentError("relid", relid, `must be in [0, ${HV_EVENT_FLAGS_COUNT})`);
    }
    const mask = 1 << (relid & 31);
    const old = Atomics.or(this.words, this.eventFlagsWordIndex(sint) + (relid >>> 5), mask);
    return (old & mask) === 0;
  }

  private armDelivery(delayNs: number): void {
    const t = this.deliveryTimer as Timer;
    const sched = this.vcpu.partition.hypervisor.sim.scheduler;
    const at = sched.now + delayNs;
    if (!t.armed || t.dueNs > at) t.armAt(at);
  }

  /** Tries to move the head of every non-empty SINT queue into its slot. */
  private deliverQueued(): void {
    const vcpu = this.vcpu;
    const vm = vcpu.partition;
    const sched = vm.hypervisor.sim.scheduler;
    const now = sched.now;
    let nextReady = Infinity;
    for (let sint = 0; sint < HV_SYNIC_SINT_COUNT; sint++) {
      if ((this.queuedSints & (1 << sint)) === 0) continue;
      const q = this.queues[sint] as QueuedMessage[];
      const head = q[0] as QueuedMessage;
      if (head.readyAt > now) {
        nextReady = Math.min(nextReady, head.readyAt);
        continue;
      }
      const slot = this.messageSlotGpa(sint);
      if (Atomics.load(this.words, slot >> 2) !== HVMSG_NONE) {
        // Slot busy: flag it, and wait for the guest's EOM to rescan.
        this.setMsgPending(slot);
        // Then look at the slot once more. The guest releases the slot
        // (store message_type = NONE) and *then* reads msg_pending; we set
        // msg_pending and *then* read message_type. Both are sequentially
        // consistent Atomics, so at least one side sees the other's write:
        // either the guest sees msg_pending and EOMs, or we see the free
        // slot here. Without this second look, a guest on another thread
        // (threaded mode) that released the slot between our first load
        // and our Atomics.or would leave the queued message waiting for an
        // EOM that never comes. On one thread the look is always "busy".
        if (Atomics.load(this.words, slot >> 2) !== HVMSG_NONE) continue;
      }
      q.shift();
      if (q.length === 0) this.queuedSints &= ~(1 << sint);
      this.writeSlot(slot, head);
      // More behind it: the slot is busy now, so tell the guest to EOM.
      if (q.length > 0) this.setMsgPending(slot);
      vm.counters.messagesDelivered++;
      const tracer = vm.hypervisor.sim.tracer;
      if (tracer.wants("messageDelivered")) {
        tracer.emit("messageDelivered", {
          timeNs: now,
          partitionId: vm.id,
          vpIndex: vcpu.vpIndex,
          direction: "to-guest",
          connectionId: head.port,
          messageType: head.messageType,
          sint,
          queued: q.length,
        });
      }
      if (tracer.wants("interruptRaised")) {
        tracer.emit("interruptRaised", {
          timeNs: now,
          partitionId: vm.id,
          vpIndex: vcpu.vpIndex,
          sint,
          relid: null,
          deliverAtNs: now,
        });
      }
      vcpu.raiseSint(sint);
    }
    if (nextReady !== Infinity) {
      const t = this.deliveryTimer as Timer;
      if (!t.armed || t.dueNs > nextReady) t.armAt(nextReady);
    }
  }

  private setMsgPending(slot: number): void {
    const flagsWord = (slot + 4) >> 2;
    const bit = HV_MESSAGE_FLAG_MSG_PENDING << 8; // byte 5 of the slot = bits 8..15 of the u32 at +4
    const old = Atomics.or(this.words, flagsWord, bit);
    if ((old & bit) === 0) this.vcpu.partition.counters.msgPendingSet++;
  }

  private writeSlot(slot: number, m: QueuedMessage): void {
    const mem = this.memory;
    const n = m.payload.length;
    mem.u8.fill(0, slot + HV_MESSAGE.payload, slot + HV_MESSAGE.payload + HV_MESSAGE_PAYLOAD_BYTE_COUNT);
    mem.u8.set(m.payload, slot + HV_MESSAGE.payload);
    mem.view.setUint32(slot + HV_MESSAGE.port, m.port >>> 0, true);
    mem.view.setUint32(slot + HV_MESSAGE.port + 4, 0, true);
    // payload_size, message_flags (msg_pending clear), reserved[2].
    Atomics.store(this.words, (slot + 4) >> 2, n & 0xff);
    // message_type last: the guest treats a non-NONE type as "the rest is there".
    Atomics.store(this.words, slot >> 2, m.messageType | 0);
  }
}
