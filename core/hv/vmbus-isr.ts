/**
 * The guest's VMBus interrupt service routine (vmbus-core.md §5.4 `vmbus_isr`,
 * seed 003 "VMBus interrupts"): the demultiplexing of one SINT2 interrupt.
 *
 * 1. Channel interrupts: walk the SINT2 block of this vCPU's event-flags page
 *    (2048 bits) in ascending relid order; atomically test-and-clear each set
 *    bit — the clear must be atomic because the hypervisor sets bits of the
 *    same word concurrently, and a plain read-modify-write would erase a
 *    signal that landed in between — skip relid 0 (reserved for the control
 *    path), look the relid up through the guest VMBus layer's callback, count
 *    and run the channel handler. Channels are processed sequentially; an
 *    async handler keeps the vCPU until it settles. An unknown relid is
 *    counted (`unknownRelidInterrupts`), never thrown: the host may signal a
 *    channel the guest has just closed.
 * 2. Then the control path: if SIMP slot 2 holds a message, call the message
 *    handler, which copies the 256 bytes, handles them and does the EOM
 *    (`Synic.endOfMessage`). Channels first, messages second is Linux's order.
 *
 * The scan allocates nothing while every handler is synchronous; only an
 * async handler makes it continue in a promise.
 */
import { HV_EVENT_FLAGS_COUNT, HVMSG_NONE, VMBUS_MESSAGE_SINT } from "./constants.js";
import type { GuestPartition } from "./partition.js";
import type { Vcpu } from "./vcpu.js";
import { isThenable } from "../sim/settle.js";

/** A channel's interrupt callback (the channel layer's `onchannel_callback`). */
export type ChannelInterruptHandler = (relid: number, vcpu: Vcpu) => void | PromiseLike<void>;

/** relid → the channel's callback, or undefined for no such (open) channel. */
export type ChannelLookup = (relid: number) => ChannelInterruptHandler | undefined;

/** Handles the message in SIMP slot `sint` of `vcpu` (copy, handle, EOM). */
export type SynicMessageHandler = (vcpu: Vcpu, sint: number) => void | PromiseLike<void>;

export interface VmbusIsrOptions {
  readonly lookupChannel: ChannelLookup;
  readonly onMessage?: SynicMessageHandler;
}

const WORDS = HV_EVENT_FLAGS_COUNT / 32;


/** Bits at positions ≥ `bit` of a 32-bit word. */
function bitsFrom(bit: number): number {
  return bit >= 32 ? 0 : -1 << bit;
}

export class VmbusIsr {
  private lookup: ChannelLookup;
  private onMessage: SynicMessageHandler | undefined;

  constructor(
    readonly vm: GuestPartition,
    options: VmbusIsrOptions,
  ) {
    this.lookup = options.lookupChannel;
    this.onMessage = options.onMessage;
    const handler = (vcpu: Vcpu): void | Promise<void> => this.handle(vcpu);
    for (const v of vm.vcpus) v.setSintHandler(VMBUS_MESSAGE_SINT, handler);
  }

  setChannelLookup(lookup: ChannelLookup): void {
    this.lookup = lookup;
  }

  setMessageHandler(handler: SynicMessageHandler | undefined): void {
    this.onMessage = handler;
  }

  /** Removes the ISR from every vCPU (SINT2 interrupts are then counted as unhandled). */
  uninstall(): void {
    for (const v of this.vm.vcpus) v.setSintHandler(VMBUS_MESSAGE_SINT, undefined);
  }

  /** One SINT2 interrupt on `vcpu`. */
  handle(vcpu: Vcpu): void | Promise<void> {
    return this.scanFrom(vcpu, 0, 0);
  }

  private scanFrom(vcpu: Vcpu, startWord: number, startBit: number): void | Promise<void> {
    const words = vcpu.synic.words;
    const base = vcpu.synic.eventFlagsWordIndex(VMBUS_MESSAGE_SINT);
    const counters = this.vm.counters;
    let bitFloor = startBit;
    for (let w = startWord; w < WORDS; w++, bitFloor = 0) {
      const idx = base + w;
      // A plain read finds the words worth looking at (Linux's
      // for_each_set_bit reads the page the same way); only a set bit is
      // taken with an atomic test-and-clear. A bit the hypervisor sets just
      // after this read is not lost: setting it raised SINT2 again, and that
      // interrupt, latched while this one runs, scans once more.
      if (((words[idx] as number) & bitsFrom(bitFloor)) === 0) continue;
      for (;;) {
        // Re-read the live word each time: bits the host sets above the
        // current position during this scan are still taken in this pass.
        const word = Atomics.load(words, idx) & bitsFrom(bitFloor);
        if (word === 0) break;
        const bit = 31 - Math.clz32(word & -word);
        const mask = 1 << bit;
        bitFloor = bit + 1;
        const old = Atomics.and(words, idx, ~mask);
        if ((old & mask) === 0) continue;
        const relid = w * 32 + bit;
        if (relid === 0) continue;
        const handler = this.lookup(relid);
        if (handler === undefined) {
          counters.unknownRelidInterrupts++;
          continue;
        }
        counters.relidInterrupts[relid] = (counters.relidInterrupts[relid] as number) + 1;
        const r = handler(relid, vcpu);
        if (isThenable(r)) {
          const nextWord = bitFloor >= 32 ? w + 1 : w;
          const nextBit = bitFloor >= 32 ? 0 : bitFloor;
          return Promise.resolve(r).then(() => this.scanFrom(vcpu, nextWord, nextBit));
        }
      }
    }
    return this.checkMessage(vcpu);
  }

  private checkMessage(vcpu: Vcpu): void | Promise<void> {
    if (vcpu.synic.messageType(VMBUS_MESSAGE_SINT) === HVMSG_NONE) return;
    const h = this.onMessage;
    if (h === undefined) {
      this.vm.counters.unhandledMessages++;
      return;
    }
    const r = h(vcpu, VMBUS_MESSAGE_SINT);
    if (isThenable(r)) return Promise.resolve(r);
  }
}

/** Installs the VMBus ISR on SINT2 of every vCPU of `vm`. */
export function installVmbusIsr(vm: GuestPartition, options: VmbusIsrOptions): VmbusIsr {
  return new VmbusIsr(vm, options);
}
