/**
 * The host side of one offered channel and of one host device
 * (vmbus-core.md §3 signalling rules, §3.4 throttling, §7.3 OFFERCHANNEL,
 * §7.8 open/close, §7.9 rescind, §7.10 sub-channels, §8 CPU affinity).
 *
 * A `HostDevice` is what a VSP registers with the `VmbusServer`: its offer
 * (class and instance GUIDs, monitor use, sub-channel limit) and a
 * `HostChannelHandler` told when each of its channels opens and closes. A
 * `HostChannel` is one offered channel — the primary or a sub-channel — with
 * the relid, connection id and monitor id the server gave it, and, while the
 * guest has it open, the host's `ChannelEndpoint` over the two rings of the
 * guest's ring GPADL (host out = host→guest ring, host in = guest→host ring).
 *
 * Trust (DESIGN.md principle 2): everything the host reaches of the guest
 * goes through a GPADL the guest created on this channel (`gpadl`) or a GPA
 * range a packet named (`gpaRange`), both bounds-checked. Malformed ring
 * contents or packets end in `fail`: the channel stops being serviced and is
 * rescinded; the error never escapes into the scheduler.
 *
 * The server owns the control plane; this file holds only what concerns one
 * channel: the wakeup on a guest signal, the throttling classifier, the
 * interrupt towards the guest and the device-facing API.
 */
import { InvalidArgumentError, ProtocolError, VmbusSimError } from "../errors.js";
import type { StallableHostDevice } from "../hv/faults.js";
import type { Hypervisor } from "../hv/hypervisor.js";
import type { GuestPartition } from "../hv/partition.js";
import { type GpaRange, type GpadlView, type PagedView, gpaRangeView } from "../memory/paged-view.js";
import type { RingBuffer } from "../ring/ring-buffer.js";
import type { IncomingPacket } from "../ring/ring-reader.js";
import { ChannelClosedError, type ChannelEndpoint, type PacketWrite } from "./endpoint.js";
import type { Guid } from "./guid.js";
import type { OfferChannelMessage } from "./messages.js";

/** What a host device offers (§7.3 OFFERCHANNEL, as far as the device decides it). */
export interface HostDeviceOffer {
  /** For messages and traces. */
  readonly name: string;
  /** `if_type`: the device class. */
  readonly classId: Guid;
  /** `if_instance`: this device. Class + instance must be unique per VM (the guest matches sub-channels by them, §7.6). */
  readonly instanceId: Guid;
  /** Allocate a monitor id (at most 128 per VM, §6) and configure the VM's monitor pages for it. */
  readonly monitored: boolean;
  /** Monitor latency of this device's channels; default `sim.costs.monitorLatencyNs`. A multiple of 100 ns. */
  readonly monitorLatencyNs?: number;
  /** `mmio_megabytes` (MiB), default 0. */
  readonly mmioMegabytes?: number;
  /** The 120-byte `user_def` union (shorter is zero-filled), default all zero. */
  readonly userDef?: Uint8Array;
  /** `chn_flags`, default 0. */
  readonly chnFlags?: number;
  /** Sub-channels the device may offer beyond the primary. */
  readonly subchannelLimit: number;
  /** Largest guest→host packet the host accepts (the reader's bounce buffer); default 64 KiB. */
  readonly maxPacketSize?: number;
}

/** Implemented by a host device (VSP). */
export interface HostChannelHandler {
  /**
   * The guest opened `channel`: its rings are mapped and `channel.endpoint`
   * is set. Register the packet handler here (`channel.onPacket`). Throwing
   * (or rejecting) refuses the open: the guest gets OPENCHANNEL_RESULT with a
   * non-zero status and the channel stays closed. Throw a `VmbusSimError`
   * to refuse; any other error is reported as a simulator bug as well.
   */
  open(channel: HostChannel): void | Promise<void>;
  /**
   * The channel stopped being serviced: the guest's CLOSECHANNEL, a rescind,
   * the guest's UNLOAD, or the host closing a broken channel. The endpoint is
   * already closed (waiting senders were rejected) when this runs.
   */
  close(channel: HostChannel): void | Promise<void>;
}

/**
 * Handles one packet from the guest (a private copy, valid during the
 * call). Returning false leaves it in the ring, unconsumed — a device whose
 * queue is full, or that has no room reserved for the completion, takes it
 * later with `channel.service()`.
 */
export type HostPacketHandler = (packet: IncomingPacket, channel: HostChannel) => boolean | void;

/** Lifecycle of an offered channel as the host sees it. */
export type HostChannelState = "offered" | "open" | "rescinded" | "released";

/** A GPADL the guest created, as the server records it. @internal */
export interface HostGpadlRecord {
  readonly view: GpadlView;
  /** The `child_relid` of its GPADL_HEADER. */
  readonly relid: number;
  /** The channel using it as its ring GPADL while open. */
  ringOf: HostChannel | null;
  /** The guest asked to tear it down while it was a ring of an open channel (see server.ts). */
  teardownPending: boolean;
}

/** What a channel calls back into its server for. @internal */
export interface HostChannelServer {
  readonly hv: Hypervisor;
  readonly vm: GuestPartition;
  findGpadl(handle: number): HostGpadlRecord | undefined;
  channelFailed(channel: HostChannel, error: unknown): void;
}

/** Per-channel counters (the host's view; the guest's are in its channel). */
export class HostChannelCounters {
  /** Wakeups that found the channel open and serviced it. */
  hostWakeups = 0;
  /** Wakeups for a channel that was not open (a signal on a closed or rescinded channel). */
  spuriousWakeups = 0;
  /** Packets drained from the guest→host ring. */
  packetsIn = 0;
  /** Packets drained while no packet handler was set (dropped). */
  packetsDropped = 0;
  /** Interrupts the host raised towards the guest (relid bit in the target VP's SIEFP). */
  interruptsToGuest = 0;
  /** Guest signals the throttling classifier judged necessary / unnecessary. */
  signalsNecessary = 0;
  signalsUnnecessary = 0;
  /** Errors that failed the channel (`fail`), plus errors of its device's close handler. */
  errors = 0;
  opens = 0;
  closes = 0;
  /** Accepted MODIFYCHANNEL re-targets. */
  retargets = 0;
  /** Wakeups (guest signals, device `service()` calls) deferred because the device was stalled (fault injection). */
  wakeupsDeferred = 0;
  /** Interrupts towards the guest held while the device was stalled, raised when it came back. */
  interruptsHeld = 0;
}

/** Default `maxPacketSize` of a host endpoint. */
export const HOST_DEFAULT_MAX_PACKET_SIZE = 64 * 1024;

export class HostChannel {
  readonly relid: number;
  readonly subchannelIndex: number;
  /** The offer's `connection_id`: the event connection the guest signals this channel on. */
  readonly connectionId: number;
  /** The offer's `monitorid` when `monitor_allocated`, else undefined. */
  readonly monitorId: number | undefined;
  /** The OFFERCHANNEL message as sent to the guest. */
  readonly offer: OfferChannelMessage;
  readonly device: HostDevice;
  readonly counters = new HostChannelCounters();
  /** `vm/device relid N`, for error messages. */
  readonly name: string;

  state: HostChannelState = "offered";
  /** VP index the host interrupts (OPENCHANNEL `target_vp`, then MODIFYCHANNEL). */
  targetVp: number;
  /** OPENCHANNEL `userdata` (120 bytes) of the current / last open. */
  userData: Uint8Array = new Uint8Array(0);
  /** The host's endpoint while open; null otherwise. */
  endpoint: ChannelEndpoint | null = null;
  /** The error that failed the channel, if any. */
  lastError: unknown = undefined;

  /** @internal OFFERCHANNEL went out in the current connection (so a rescind must be announced). */
  offerSent = false;
  /** @internal The channel failed; the server is closing and rescinding it. */
  failed = false;
  /** @internal Handle of the ring GPADL while open. */
  ringGpadl: number | null = null;

  private packetHandler: HostPacketHandler | null = null;
  /** An interrupt towards the guest was held during a stall of the device. */
  private heldSignal = false;
  /**
   * Set when a drain finished with the guest→host ring empty, cleared by
   * every guest signal. A guest that follows `hv_signal_on_write` (§3.1)
   * signals only when the ring goes empty → non-empty, which can only happen
   * after the host drained it completely; a signal while this is clear came
   * with no such transition and is "unnecessary" (§3.4 throttling). The
   * rings start empty, so it starts set.
   */
  private drainedSinceSignal = true;
  private readonly onPacketBound: (p: IncomingPacket) => boolean | void;
  private releaseResolve: (() => void) | null = null;
  /** @internal Resolves when the guest released the relid (or the server dropped it). */
  readonly released: Promise<void>;

  constructor(
    private readonly server: HostChannelServer,
    device: HostDevice,
    offer: OfferChannelMessage,
    targetVp: number,
  ) {
    this.device = device;
    this.offer = offer;
    this.relid = offer.childRelid;
    this.subchannelIndex = offer.subChannelIndex;
    this.connectionId = offer.connectionId;
    this.monitorId = offer.monitorAllocated ? offer.monitorId : undefined;
    this.targetVp = targetVp;
    this.name = `${server.vm.name}/${device.offer.name} relid ${offer.childRelid}`;
    this.released = new Promise<void>((resolve) => {
      this.releaseResolve = resolve;
    });
    this.onPacketBound = (p: IncomingPacket) => this.deliver(p);
  }

  /** Sets the handler for packets from the guest (call it in `HostChannelHandler.open`). */
  onPacket(handler: HostPacketHandler): void {
    this.packetHandler = handler;
  }

  /**
   * Sends one packet to the guest through the endpoint (see
   * `ChannelEndpoint.send`); rejects with `ChannelClosedError` when the
   * channel is not open.
   */
  send(write: PacketWrite, total: number): Promise<void> {
    const ep = this.endpoint;
    if (ep === null) return Promise.reject(new ChannelClosedError(this.name, `channel is ${this.state}, not open`));
    return ep.send(write, total);
  }

  /**
   * The host's view of GPADL `handle`, which the guest must have created on
   * this channel's relid (a GPADL of another channel is not this device's to
   * read). Unknown, foreign, or being torn down → `ProtocolError`.
   */
  gpadl(handle: number): GpadlView {
    const g = this.server.findGpadl(handle);
    if (g === undefined) {
      throw new ProtocolError("VMBus GPADL", "gpadl", handle, `is not a GPADL of ${this.server.vm.name}`);
    }
    if (g.relid !== this.relid) {
      throw new ProtocolError("VMBus GPADL", "gpadl", handle, `belongs to relid ${g.relid}, not to ${this.name}`);
    }
    if (g.teardownPending) {
      throw new ProtocolError("VMBus GPADL", "gpadl", handle, "is being torn down by the guest");
    }
    return g.view;
  }

  /** A checked view of one GPA range of a packet (`GpadlAccessError` for PFNs outside guest memory). */
  gpaRange(range: GpaRange, label: string): PagedView {
    return gpaRangeView(this.server.vm.memory, range, `${this.name} ${label}`);
  }

  /**
   * The host's reaction to malformed input that must close the channel:
   * stop servicing it (endpoint closed, the handler's `close`), then
   * rescind it (a failing primary takes its whole device). Counted in
   * `counters.errors`; never throws.
   */
  fail(error: unknown): void {
    this.counters.errors++;
    this.lastError = error;
    if (this.failed || this.state === "rescinded" || this.state === "released") return;
    this.failed = true;
    this.server.channelFailed(this, error);
  }

  // ---- @internal: used by the server ----------------------------------------

  /** @internal Maps the endpoint of a new open (before `handler.open`). */
  attachEndpoint(endpoint: ChannelEndpoint, targetVp: number, userData: Uint8Array, ringGpadl: number): void {
    this.endpoint = endpoint;
    this.targetVp = targetVp;
    this.userData = userData;
    this.ringGpadl = ringGpadl;
    this.drainedSinceSignal = true;
  }

  /** @internal Stops servicing: closes and forgets the endpoint and the packet handler. */
  detachEndpoint(reason: string): void {
    this.endpoint?.close(reason);
    this.endpoint = null;
    this.ringGpadl = null;
    this.packetHandler = null;
  }

  /** @internal Interrupt towards the guest: the endpoint's `signalPeer`. Reads `targetVp` now, so MODIFYCHANNEL takes effect at once. */
  signalGuest(): void {
    if (this.device.stallDepth !== 0) {
      // A stalled device raises nothing; `resumeAfterStall` raises it.
      if (!this.heldSignal) this.counters.interruptsHeld++;
      this.heldSignal = true;
      return;
    }
    this.counters.interruptsToGuest++;
    this.server.hv.signalGuest(this.server.vm, this.targetVp, this.relid);
  }

  /** @internal The relid was released: resolves `released`. */
  markReleased(): void {
    this.state = "released";
    this.endpoint = null;
    this.packetHandler = null;
    const r = this.releaseResolve;
    this.releaseResolve = null;
    r?.();
  }

  /**
   * @internal The wakeup of this channel's event connection (a signal-event
   * hypercall or a monitor scan). Order as the brief of §3: first give
   * blocked host senders their chance (the signal may mean "room freed in
   * the host→guest ring"), then drain the guest→host ring. A malformed ring
   * or packet (any VmbusSimError) fails the channel; anything else is a
   * simulator bug and propagates to the scheduler.
   */
  wake(): void {
    const ep = this.endpoint;
    if (this.state !== "open" || ep === null || this.failed) {
      this.counters.spuriousWakeups++;
      return;
    }
    if (this.device.stallDepth !== 0) {
      // Stalled (fault injection): the signal is noted, the ring stays as it is.
      this.counters.wakeupsDeferred++;
      return;
    }
    this.counters.hostWakeups++;
    this.service();
  }

  /**
   * @internal The device's stall ended: service the channel as a wakeup
   * would (blocked host senders retried, the guest → host ring drained,
   * completions published) and raise the interrupt held during the stall,
   * unless servicing raised one already.
   */
  resumeAfterStall(): void {
    const held = this.heldSignal;
    this.heldSignal = false;
    const before = this.counters.interruptsToGuest;
    this.service();
    if (held && this.counters.interruptsToGuest === before && this.state === "open" && this.endpoint !== null) this.signalGuest();
  }

  /**
   * Gives blocked host senders their chance, then drains the guest→host
   * ring. A device calls it when it can take packets again after refusing
   * one (its queue had filled). A malformed ring or packet (any
   * VmbusSimError) fails the channel; anything else is a simulator bug and
   * propagates to the scheduler.
   */
  service(): void {
    const ep = this.endpoint;
    if (this.state !== "open" || ep === null || this.failed) return;
    if (this.device.stallDepth !== 0) {
      // The device's own retry (its queue drained) waits for the stall's end too.
      this.counters.wakeupsDeferred++;
      return;
    }
    try {
      ep.retryBlocked();
      ep.drain(this.onPacketBound);
      // Drained to empty (not stopped by a full device queue): the next
      // guest signal is the empty → non-empty one Hyper-V expects.
      if (this.endpoint === ep && ep.reader.ring.loadWriteIndex() === ep.reader.ring.loadReadIndex()) this.drainedSinceSignal = true;
    } catch (e) {
      if (e instanceof VmbusSimError) this.fail(e);
      else throw e;
    }
  }

  /**
   * @internal The throttling classifier (§3.4): is this guest signal one
   * Hyper-V expects? Necessary iff
   * (a) the guest→host ring holds unread data and the host drained that ring
   *     completely since the previous signal — i.e. the ring went empty →
   *     non-empty, the only write-side signal `hv_signal_on_write` sends
   *     (§3.1); or
   * (b) the host is blocked on the host→guest ring (pending_send_sz ≠ 0) and
   *     the ring now has more than that free — the guest's read made room,
   *     the `hv_pkt_iter_close` rule (§3.2).
   * Every signal clears the drained flag, so a second signal for the same
   * non-empty period is unnecessary. Must not throw (it runs inside the
   * guest's hypercall): impossible indices count as necessary, and the
   * wakeup that follows finds the corruption and fails the channel.
   */
  isSignalNecessary(): boolean {
    const drained = this.drainedSinceSignal;
    this.drainedSinceSignal = false;
    const ep = this.endpoint;
    let necessary = false;
    if (this.state === "open" && ep !== null && !this.failed) {
      const inRing = ep.reader.ring;
      if (drained && inRing.loadWriteIndex() !== inRing.loadReadIndex()) {
        necessary = true;
      } else {
        necessary = roomForBlockedWriter(ep.writer.ring);
      }
    }
    if (necessary) this.counters.signalsNecessary++;
    else this.counters.signalsUnnecessary++;
    return necessary;
  }

  private deliver(p: IncomingPacket): boolean | void {
    // A handler may fail the channel in the middle of a drain; the rest of
    // the batch is consumed without being looked at.
    if (this.failed || this.state !== "open") return;
    const h = this.packetHandler;
    if (h === null) {
      this.counters.packetsIn++;
      this.counters.packetsDropped++;
      return;
    }
    const took = h(p, this);
    if (took !== false) this.counters.packetsIn++;
    return took;
  }
}

/** Condition (b) of the classifier, from the raw header words. */
function roomForBlockedWriter(out: RingBuffer): boolean {
  const pending = out.loadPendingSendSize();
  if (pending === 0) return false;
  const read = out.loadReadIndex();
  const write = out.loadWriteIndex();
  if (read >= out.dataSize || (read & 7) !== 0 || write >= out.dataSize) return true;
  return out.bytesToWrite(write, read) > pending;
}

/**
 * A host device: its offer, its handler and its channels (primary first).
 *
 * Fault injection can *stall* it (`hv.faults.stallHostDevice`): while
 * stalled, none of its channels is serviced — guest signals are counted and
 * deferred, the guest → host rings keep their packets, guest senders that
 * fill a ring wait on pending_send_sz — and no interrupt goes to the guest.
 * Work the device had already taken still finishes (its backend is not
 * stalled) and may write completions into the host → guest ring; only the
 * interrupt that would announce them is held. When the last stall ends,
 * every channel is serviced and the held interrupts are raised.
 */
export class HostDevice implements StallableHostDevice {
  readonly offer: HostDeviceOffer;
  readonly handler: HostChannelHandler;
  readonly primary: HostChannel;
  /** @internal Set when a rescind of the whole device was requested. */
  rescindRequested: Promise<void> | null = null;
  /** @internal > 0 while stalled (stalls nest); the channels' hot paths test it. */
  stallDepth = 0;
  /** Stall episodes begun (fault injection). */
  stalls = 0;
  private readonly list: HostChannel[] = [];

  /** @internal Created by `VmbusServer.addDevice`. */
  constructor(offer: HostDeviceOffer, handler: HostChannelHandler, makePrimary: (device: HostDevice) => HostChannel) {
    this.offer = offer;
    this.handler = handler;
    this.primary = makePrimary(this);
    this.list.push(this.primary);
  }

  get name(): string {
    return this.offer.name;
  }

  /** True while a stall (fault injection) is in effect. */
  get stalled(): boolean {
    return this.stallDepth !== 0;
  }

  /** Stops answering (see the class comment). Nests with `endStall`. */
  beginStall(): void {
    if (this.stallDepth++ === 0) this.stalls++;
  }

  /** Ends one stall; the last one services every channel and raises the held interrupts. */
  endStall(): void {
    if (this.stallDepth === 0) return;
    if (--this.stallDepth !== 0) return;
    for (const ch of this.list.slice()) ch.resumeAfterStall();
  }

  /** Live channels (not released), primary first, then sub-channels by index. */
  channels(): readonly HostChannel[] {
    return this.list;
  }

  subchannels(): readonly HostChannel[] {
    return this.list.filter((c) => c.subchannelIndex !== 0);
  }

  /** True once a rescind of the device was requested. */
  get rescinding(): boolean {
    return this.rescindRequested !== null;
  }

  /** @internal */
  addChannel(ch: HostChannel): void {
    if (ch.device !== this) throw new InvalidArgumentError("channel.device", ch.device.name, `is not ${this.name}`);
    this.list.push(ch);
    this.list.sort((a, b) => a.subchannelIndex - b.subchannelIndex);
  }

  /** @internal */
  removeChannel(ch: HostChannel): void {
    const i = this.list.indexOf(ch);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** @internal Lowest sub_channel_index ≥ 1 not in use. */
  nextSubchannelIndex(): number {
    const used = new Set(this.list.map((c) => c.subchannelIndex));
    let i = 1;
    while (used.has(i)) i++;
    return i;
  }
}
