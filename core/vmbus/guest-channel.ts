/**
 * A guest channel — vmbus-core.md §3 (signalling), §4.3 (request ids),
 * §7.7–§7.10 (GPADL, open/close, rescind, subchannels), §8 (affinity).
 *
 * What Linux spreads over `struct vmbus_channel`, `vmbus_open`,
 * `vmbus_sendpacket*`, `vmbus_setevent` and `vmbus_channel_set_cpu`: the
 * driver-facing API of one relid. The client (`client.ts`) creates it from
 * an offer and routes control messages to it; the ISR calls `onInterrupt`.
 */
import { ErrnoError, VmbusSimError } from "../errors.js";
import { signalChannel } from "../hv/guest.js";
import type { GuestPartition } from "../hv/partition.js";
import { currentVcpu, type Vcpu } from "../hv/vcpu.js";
import type { Timer } from "../sim/scheduler.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";
import type { GpaRange } from "../memory/paged-view.js";
import { VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_COMP } from "../ring/layout.js";
import type { IncomingPacket } from "../ring/ring-reader.js";
import { RingBuffer } from "../ring/ring-buffer.js";
import { type PageBufferEntry, RingWriter, type TransId, type XferPageRange } from "../ring/ring-writer.js";
import { VmbusRequestor } from "../ring/requestor.js";
import type { SysfsChannel } from "../sysfs/source.js";
import { ChannelClosedError, ChannelEndpoint } from "./endpoint.js";
import type { OfferChannelMessage } from "./messages.js";
import { MAX_USER_DEFINED_BYTES } from "./messages.js";

/** `enum vmbus_channel_state` (§7.6). */
export const CHANNEL_OFFER_STATE = 0;
export const CHANNEL_OPENING_STATE = 1;
export const CHANNEL_OPEN_STATE = 2;
export const CHANNEL_OPENED_STATE = 3;

/** What the channel needs from its client (the control plane). */
export interface ChannelControl {
  readonly vm: GuestPartition;
  readonly version: number;
  createGpadl(channel: GuestChannel, pfns: readonly number[], byteCount: number): Promise<number>;
  teardownGpadl(channel: GuestChannel, handle: number): Promise<void>;
  openChannel(channel: GuestChannel, gpadl: number, downstreamPages: number, userData: Uint8Array): Promise<number>;
  closeChannel(channel: GuestChannel): Promise<void>;
  modifyChannel(channel: GuestChannel, vpIndex: number): Promise<void>;
  /** Lost-interrupt watchdog period, ns (0 or absent: off). See `GuestChannel` "Lost-interrupt watchdog". */
  readonly lostInterruptPollNs?: number;
  /** Longest period the watchdog backs off to, ns (default: the period). */
  readonly lostInterruptMaxPollNs?: number;
}

export interface ChannelOpenOptions {
  /** Outbound (guest → host) ring bytes, header page included; a multiple of 4096, ≥ 8192. */
  readonly sendRingBytes: number;
  /** Inbound (host → guest) ring bytes; same rules. */
  readonly recvRingBytes: number;
  /** OPENCHANNEL user data, at most 120 bytes. */
  readonly userData?: Uint8Array;
  /** Packets that are not completions of this channel's own requests. Valid during the call only. */
  readonly onPacket?: (packet: IncomingPacket, channel: GuestChannel) => void;
  /** Largest packet accepted from the host (default 4096, `VMBUS_DEFAULT_MAX_PKT_SIZE`). */
  readonly maxPacketSize?: number;
  /** Request-id slots (`rqstor_size`; default 256). */
  readonly requestorSize?: number;
}

/** A completion returned to a request: its packet type, id and a copy of its payload. */
export interface Completion {
  readonly type: number;
  readonly transId: bigint;
  readonly data: Uint8Array;
}

/** A request failed because its channel went away (rescind) or broke. */
export class ChannelRescindedError extends VmbusSimError {
  readonly code = "CHANNEL_RESCINDED";
  constructor(readonly channel: string) {
    super(`${channel}: the host rescinded the channel; outstanding requests fail`);
  }
}

interface PendingRequest {
  resolve(c: Completion): void;
  reject(e: unknown): void;
}

/**
 * What a request resolves with. The 64-bit id is built only when asked for:
 * a BigInt per completion is measurable on the I/O path, and drivers match
 * completions by their own request state, not by reading the id back.
 */
class PacketCompletion implements Completion {
  constructor(
    readonly type: number,
    private readonly idLo: number,
    private readonly idHi: number,
    readonly data: Uint8Array,
  ) {}
  get transId(): bigint {
    return (BigInt(this.idHi) << 32n) | BigInt(this.idLo);
  }
}

/**
 * One guest channel.
 *
 * ## Lost-interrupt watchdog (off by default)
 *
 * This is the simulator's recovery model for injected faults, not a Linux
 * mechanism: Linux trusts the hypervisor to deliver every channel
 * interrupt. When fault injection drops an interrupt, the relid's event
 * flag stays set and the next SINT2 on that vCPU finds it — but if no other
 * interrupt comes, the completion sits in the inbound ring, and because the
 * ring is no longer empty the host will not signal again: the channel would
 * wait for ever. With `VmbusClient.setLostInterruptWatchdog(pollNs)`, a
 * channel that has requests outstanding, senders blocked on a full ring, or
 * unread inbound data looks at its inbound ring every `pollNs` of virtual
 * time (from its target vCPU, as queued work, so it waits for a busy or
 * suspended vCPU like an interrupt would) and, if there is something to
 * read or room for a blocked sender, runs the same path as the channel's
 * interrupt callback. A poll that finds nothing doubles the period, up to
 * `maxPollNs`; one that finds work goes back to `pollNs`. The watchdog stops
 * when nothing is outstanding, so an idle simulation still ends.
 * Limitation: a channel that only receives (nothing of its own outstanding)
 * is recovered by the next interrupt on its vCPU or its next request.
 */
export class GuestChannel implements SysfsChannel {
  readonly relid: number;
  readonly subchannelIndex: number;
  readonly monitorAllocated: boolean;
  readonly monitorId: number;
  readonly connectionId: number;
  readonly name: string;

  state = CHANNEL_OFFER_STATE;
  targetCpu: number;
  /**
   * Signal with a hypercall even though the channel is monitored: the
   * latency trade-off of the low-latency seed document (≈100 µs of monitor
   * batching saved per signal, paid with one hypercall each).
   */
  lowLatency = false;
  rescinded = false;
  /** The error that broke the channel (a corrupt ring, a bad completion), if any. */
  lastError: unknown = null;

  // Counters (`struct vmbus_channel`).
  interrupts = 0;
  sigEvents = 0;
  malformedPackets = 0;
  /** Lost-interrupt watchdog (simulator only): polls run, and polls that found unread data or freed a blocked sender. */
  watchdogPolls = 0;
  watchdogRecoveries = 0;

  endpoint: ChannelEndpoint | null = null;
  primary: GuestChannel | null = null;
  readonly subchannels: GuestChannel[] = [];
  /** `sc_creation_callback`: the driver's hook for new subchannels of this primary. */
  onSubchannel: ((sc: GuestChannel) => void) | null = null;

  private ringGpadl = 0;
  private ringFirstPfn = -1;
  private ringPages = 0;
  private requestor: VmbusRequestor<PendingRequest> | null = null;
  private onPacket: ((p: IncomingPacket, ch: GuestChannel) => void) | null = null;
  private readonly gpadls = new Set<number>();
  private watchdogTimer: Timer | null = null;
  /** Current watchdog period (backs off while polls find nothing). */
  private watchdogNs = 0;
  private readonly signalTarget: { connectionId: number; monitorId: number | undefined; lowLatency: boolean } = {
    connectionId: 0,
    monitorId: undefined,
    lowLatency: false,
  };

  constructor(
    readonly offer: OfferChannelMessage,
    private readonly control: ChannelControl,
    targetCpu: number,
  ) {
    this.relid = offer.childRelid;
    this.subchannelIndex = offer.subChannelIndex;
    this.monitorAllocated = offer.monitorAllocated;
    this.monitorId = offer.monitorId;
    this.connectionId = offer.connectionId;
    this.targetCpu = targetCpu;
    this.name = `${control.vm.name} relid ${this.relid}`;
    this.state = CHANNEL_OPEN_STATE;
  }

  get vm(): GuestPartition {
    return this.control.vm;
  }

  get outbound(): RingBuffer | null {
    return this.endpoint?.writer.ring ?? null;
  }
  get inbound(): RingBuffer | null {
    return this.endpoint?.reader.ring ?? null;
  }
  get intrInFull(): number {
    return this.endpoint?.reader.intrInFull ?? 0;
  }
  get intrOutEmpty(): number {
    return this.endpoint?.writer.intrOutEmpty ?? 0;
  }
  get outFullFirst(): number {
    return this.endpoint?.writer.outFullFirst ?? 0;
  }
  get outFullTotal(): number {
    return this.endpoint?.writer.outFullTotal ?? 0;
  }
  /** Requests waiting for a completion. */
  get outstanding(): number {
    return this.requestor?.inFlight ?? 0;
  }
  /** Completions rejected because their id named no outstanding request. */
  get rejectedCompletions(): number {
    return this.requestor?.rejected ?? 0;
  }

  monitorPending(page: 0 | 1): number {
    if (!this.monitorAllocated) return 0;
    return this.vm.monitor.pendingWord(page, this.monitorId >> 5);
  }
  monitorLatency(page: 0 | 1): number {
    if (!this.monitorAllocated) return 0;
    return this.vm.monitor.latencyEntry(page, this.monitorId);
  }
  monitorConnectionId(page: 0 | 1): number {
    if (!this.monitorAllocated) return 0;
    return this.vm.monitor.connectionIdEntry(page, this.monitorId);
  }

  /**
   * `vmbus_open`: allocates the two rings as one contiguous block (outbound
   * first), initialises their headers, shares them with a GPADL, sends
   * OPENCHANNEL and waits for the result. Errors as Linux: EINVAL for bad
   * arguments or a channel not in the OPEN state, ENODEV if rescinded,
   * EAGAIN if the host refuses.
   */
  async open(options: ChannelOpenOptions): Promise<void> {
    const op = `vmbus_open ${this.name}`;
    const { sendRingBytes: send, recvRingBytes: recv } = options;
    const userData = options.userData ?? new Uint8Array(0);
    if (userData.length > MAX_USER_DEFINED_BYTES) {
      throw new ErrnoError("EINVAL", op, `userdatalen=${userData.length} exceeds ${MAX_USER_DEFINED_BYTES}`);
    }
    for (const [field, v] of [["send ring bytes", send], ["recv ring bytes", recv]] as const) {
      if (!Number.isInteger(v) || v % PAGE_SIZE !== 0 || v < 2 * PAGE_SIZE) {
        throw new ErrnoError("EINVAL", op, `${field}=${v} must be a multiple of ${PAGE_SIZE} and at least ${2 * PAGE_SIZE}`);
      }
    }
    if (this.rescinded) throw new ErrnoError("ENODEV", op, "the channel was rescinded");
    if (this.state !== CHANNEL_OPEN_STATE) throw new ErrnoError("EINVAL", op, `channel state is ${this.state}, not OPEN (2)`);
    this.state = CHANNEL_OPENING_STATE;
    const mem = this.vm.memory;
    const pages = (send + recv) / PAGE_SIZE;
    let first = -1;
    let gpadl = 0;
    try {
      first = mem.allocContiguous(pages);
      const out = new RingBuffer(mem.span(first * PAGE_SIZE, send), `${this.name} out`);
      const inb = new RingBuffer(mem.span(first * PAGE_SIZE + send, recv), `${this.name} in`);
      out.init();
      inb.init();
      const pfns = Array.from({ length: pages }, (_, i) => first + i);
      gpadl = await this.control.createGpadl(this, pfns, send + recv);
      const status = await this.control.openChannel(this, gpadl, send / PAGE_SIZE, userData);
      if (this.rescinded) throw new ErrnoError("ENODEV", op, "the channel was rescinded while opening");
      if (status !== 0) throw new ErrnoError("EAGAIN", op, `the host answered OPENCHANNEL with status 0x${(status >>> 0).toString(16)}`);
      this.ringGpadl = gpadl;
      this.ringFirstPfn = first;
      this.ringPages = pages;
      this.requestor = new VmbusRequestor<PendingRequest>(options.requestorSize ?? 256, this.name);
      this.onPacket = options.onPacket ?? null;
      this.endpoint = new ChannelEndpoint(out, inb, {
        name: this.name,
        maxPacketSize: options.maxPacketSize ?? 4096,
        signalPeer: () => this.signalHost(),
      });
      this.lastError = null;
      this.state = CHANNEL_OPENED_STATE;
    } catch (e) {
      // Undo in reverse: the GPADL (unless rescinded: the host forgot it), the pages.
      if (gpadl !== 0 && !this.rescinded) await this.control.teardownGpadl(this, gpadl).catch(() => undefined);
      if (first >= 0) mem.free(first, pages);
      if (this.state === CHANNEL_OPENING_STATE) this.state = CHANNEL_OPEN_STATE;
      throw e;
    }
  }

  /**
   * `vmbus_close`: subchannels first, then this channel: stop callbacks,
   * fail what is outstanding, CLOSECHANNEL (no reply), tear the ring GPADL
   * down (skipped when rescinded: the host has forgotten it), free the rings.
   */
  async close(): Promise<void> {
    for (const sc of this.subchannels) if (sc.state === CHANNEL_OPENED_STATE) await sc.close();
    if (this.state !== CHANNEL_OPENED_STATE) {
      throw new ErrnoError("EINVAL", `vmbus_close ${this.name}`, `channel state is ${this.state}, not OPENED (3)`);
    }
    this.shutdown(new ChannelClosedError(this.name, "the channel was closed"));
    this.state = CHANNEL_OPEN_STATE;
    if (!this.rescinded) {
      await this.control.closeChannel(this);
      await this.control.teardownGpadl(this, this.ringGpadl).catch(() => undefined);
    }
    this.vm.memory.free(this.ringFirstPfn, this.ringPages);
    this.ringFirstPfn = -1;
  }

  /** A GPADL over driver buffer pages (`vmbus_establish_gpadl`). Returns its handle. */
  async createGpadl(pfns: readonly number[], byteCount: number): Promise<number> {
    if (this.rescinded) throw new ErrnoError("ENODEV", `vmbus_establish_gpadl ${this.name}`, "the channel was rescinded");
    const h = await this.control.createGpadl(this, pfns, byteCount);
    this.gpadls.add(h);
    return h;
  }

  async teardownGpadl(handle: number): Promise<void> {
    if (!this.gpadls.delete(handle)) {
      throw new ErrnoError("EINVAL", `vmbus_teardown_gpadl ${this.name}`, `GPADL 0x${handle.toString(16)} was not created on this channel`);
    }
    if (!this.rescinded) await this.control.teardownGpadl(this, handle);
  }

  /**
   * `vmbus_sendpacket`: one inband packet with the caller's id and flags.
   * Waits (does not fail) while the ring is full.
   */
  sendPacket(payload: Uint8Array, transId: TransId = 0, flags = 0): Promise<void> {
    const ep = this.requireOpen("vmbus_sendpacket");
    return ep.send((w) => w.writeInband(transId, payload, flags), RingWriter.packetTotal(0, payload.length));
  }

  /** A completion packet (`VM_PKT_COMP`), e.g. acknowledging a transfer-page packet. */
  sendCompletion(transId: TransId, payload: Uint8Array = new Uint8Array(0)): Promise<void> {
    const ep = this.requireOpen("vmbus_sendpacket");
    return ep.send((w) => w.writeCompletion(transId, payload), RingWriter.packetTotal(0, payload.length));
  }

  /** An inband request with COMPLETION_REQUESTED and a request id; resolves with the host's completion. */
  sendRequest(payload: Uint8Array): Promise<Completion> {
    return this.request("vmbus_sendpacket", RingWriter.packetTotal(0, payload.length), payload, (w, id) =>
      w.writeInband(id, payload, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED),
    );
  }

  /** `vmbus_sendpacket_pagebuffer`: GPA direct with up to 32 single-page ranges. */
  sendPacketPageBuffer(entries: readonly PageBufferEntry[], payload: Uint8Array): Promise<Completion> {
    return this.request("vmbus_sendpacket_pagebuffer", RingWriter.packetTotal(8 + 16 * entries.length, payload.length), payload, (w, id) =>
      w.writePageBuffer(id, entries, payload),
    );
  }

  /** `vmbus_sendpacket_mpb_desc`: GPA direct with multi-page ranges (range count set by the caller). */
  sendPacketMpbDesc(ranges: readonly GpaRange[], payload: Uint8Array): Promise<Completion> {
    let ext = 8;
    for (const r of ranges) ext += 8 + 8 * r.pfns.length;
    return this.request("vmbus_sendpacket_mpb_desc", RingWriter.packetTotal(ext, payload.length), payload, (w, id) => w.writeMpb(id, ranges, payload));
  }

  /** Transfer-page packets are host → guest; exposed for symmetry in tests of hostile guests. */
  sendXferPages(transId: TransId, setId: number, ranges: readonly XferPageRange[], payload: Uint8Array): Promise<void> {
    const ep = this.requireOpen("send xfer pages");
    return ep.send((w) => w.writeXferPages(transId, setId, ranges, payload), RingWriter.packetTotal(8 + 8 * ranges.length, payload.length));
  }

  /**
   * `target_cpu_store` → `vmbus_channel_set_cpu` (§8.2). Errors as Linux:
   * EIO below protocol 4.1 or when the channel is not opened, EINVAL for a
   * CPU out of range, EIO when the host refuses (5.3+).
   */
  async setTargetCpu(cpu: number): Promise<void> {
    const op = `write channels/${this.relid}/cpu`;
    if (this.control.version < 0x0004_0001) {
      throw new ErrnoError("EIO", op, `VMBus protocol ${this.control.version >>> 16}.${this.control.version & 0xffff} is below 4.1 (no MODIFYCHANNEL)`);
    }
    const vcpus = this.vm.vcpus;
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= vcpus.length) {
      throw new ErrnoError("EINVAL", op, `cpu ${cpu} is not one of the VM's ${vcpus.length} vCPUs`);
    }
    if (this.state !== CHANNEL_OPENED_STATE) throw new ErrnoError("EIO", op, `channel state is ${this.state}, not OPENED (3)`);
    if (cpu === this.targetCpu) return;
    try {
      await this.control.modifyChannel(this, (vcpus[cpu] as Vcpu).vpIndex);
    } catch (e) {
      throw new ErrnoError("EIO", op, e instanceof Error ? e.message : String(e));
    }
    // Interrupts already on their way to the old vCPU still arrive there and
    // are handled: the ISR finds the channel by relid on any vCPU.
    this.targetCpu = cpu;
  }

  /** Called by the VMBus ISR on whichever vCPU the host interrupted. */
  onInterrupt(): void {
    this.interrupts++;
    this.processInbound();
  }

  /** What an interrupt does for this channel: blocked senders retried, the inbound ring drained. */
  private processInbound(): void {
    const ep = this.endpoint;
    if (ep === null || this.state !== CHANNEL_OPENED_STATE) return;
    try {
      // The signal may mean "space freed" (we were blocked) or "packets".
      ep.retryBlocked();
      this.traceRing("in");
      ep.drain((p) => this.dispatch(p));
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      // A corrupt ring or a packet that breaks the rules: this channel is
      // done. Its requests fail with the error; other channels carry on.
      this.malformedPackets++;
      this.lastError = e;
      this.shutdown(e);
    }
  }

  /** @internal The host rescinded the offer. */
  markRescinded(): void {
    this.rescinded = true;
    this.shutdown(new ChannelRescindedError(this.name));
  }

  private dispatch(p: IncomingPacket): void {
    if (p.type === VM_PKT_COMP && this.requestor !== null && p.transIdHi === 0 && this.requestor.has(p.transIdLo)) {
      const req = this.requestor.complete(p.transIdLo, p.transIdHi);
      // The packet is valid only during this call: the completion owns a copy.
      const start = p.dataOffset;
      req.resolve(new PacketCompletion(p.type, p.transIdLo, p.transIdHi, p.buffer.slice(start, p.length)));
      return;
    }
    if (p.type === VM_PKT_COMP && this.requestor !== null) {
      // Names no outstanding request: counted by the requestor, never delivered.
      try {
        this.requestor.complete(p.transIdLo, p.transIdHi);
      } catch {
        return;
      }
    }
    this.onPacket?.(p, this);
  }

  private request(op: string, total: number, payload: Uint8Array, write: (w: RingWriter, id: number) => boolean): Promise<Completion> {
    const ep = this.requireOpen(op);
    const rq = this.requestor as VmbusRequestor<PendingRequest>;
    const tracer = this.vm.hypervisor.sim.tracer;
    return new Promise<Completion>((resolve, reject) => {
      let pending: PendingRequest = { resolve, reject };
      if (tracer.wants("transaction")) pending = this.traced(resolve, reject, () => id);
      const id = rq.next(pending);
      if (id === 0) {
        reject(new ErrnoError("EAGAIN", `${op} ${this.name}`, `all ${rq.size} request ids are in use`));
        return;
      }
      if (tracer.wants("transaction")) this.emitTransaction(id, "begin", undefined, payload);
      // The common case — room in the ring, nobody queued ahead — writes and
      // publishes now, without a promise for the send itself; only a full
      // ring (or senders already waiting) takes the queued path, which keeps
      // the channel's packets in order.
      const poll = this.control.lostInterruptPollNs;
      if (poll !== undefined && poll > 0) this.armWatchdog(poll);
      if (!ep.closed && ep.tryWrite((w) => write(w, id))) {
        ep.commit();
        this.traceRing("out");
        return;
      }
      ep.send((w) => write(w, id), total).then(
        () => this.traceRing("out"),
        (e: unknown) => {
          // Never sent: give the id back and fail the caller.
          if (rq.has(id)) rq.complete(id);
          pending.reject(e);
        },
      );
    });
  }

  /** Wraps a request's callbacks so its end is traced. */
  private traced(resolve: (c: Completion) => void, reject: (e: unknown) => void, id: () => number): PendingRequest {
    return {
      resolve: (c) => {
        this.emitTransaction(id(), "end", "completed");
        resolve(c);
      },
      reject: (e) => {
        this.emitTransaction(id(), "end", "failed");
        reject(e);
      },
    };
  }

  private emitTransaction(requestId: number, phase: "begin" | "end", outcome?: string, payload?: Uint8Array): void {
    const sim = this.vm.hypervisor.sim;
    sim.tracer.emit("transaction", {
      timeNs: sim.now,
      partitionId: this.vm.id,
      vpIndex: null,
      relid: this.relid,
      requestId,
      phase,
      outcome,
      ...(payload === undefined ? {} : { classId: this.offer.ifType.toString(), payload: payload.slice() }),
    });
  }

  /** Samples a ring's occupancy into the trace (only when someone listens). */
  private traceRing(which: "out" | "in"): void {
    const sim = this.vm.hypervisor.sim;
    if (!sim.tracer.wants("ringOccupancy")) return;
    const ring = which === "out" ? this.outbound : this.inbound;
    if (ring === null) return;
    const free = ring.bytesToWrite(ring.loadWriteIndex() % ring.dataSize, ring.loadReadIndex() % ring.dataSize);
    sim.tracer.emit("ringOccupancy", {
      timeNs: sim.now,
      partitionId: this.vm.id,
      vpIndex: null,
      relid: this.relid,
      ring: which,
      usedBytes: ring.dataSize - free,
      freeBytes: free,
    });
  }

  private requireOpen(op: string): ChannelEndpoint {
    if (this.rescinded) throw new ChannelRescindedError(this.name);
    const ep = this.endpoint;
    if (ep === null || this.state !== CHANNEL_OPENED_STATE) {
      throw new ErrnoError("EINVAL", `${op} ${this.name}`, `channel state is ${this.state}, not OPENED (3)`);
    }
    return ep;
  }

  /** Arms the lost-interrupt watchdog at `pollNs` unless it is already armed. */
  private armWatchdog(pollNs: number): void {
    let t = this.watchdogTimer;
    if (t === null) {
      t = this.vm.hypervisor.sim.scheduler.timer(`${this.name} lost-interrupt watchdog`, () => this.watchdogFired());
      this.watchdogTimer = t;
    }
    if (t.armed) return;
    this.watchdogNs = pollNs;
    t.arm(pollNs);
  }

  /** The watchdog's period is over: poll from the target vCPU, as queued work (it waits for a busy or suspended vCPU). */
  private watchdogFired(): void {
    const vcpu = this.vm.vcpus[this.targetCpu] ?? (this.vm.vcpus[0] as Vcpu);
    vcpu.run(() => this.watchdogPoll(), "lost-interrupt watchdog").catch((e: unknown) => {
      this.vm.hypervisor.sim.scheduler.reportError(`${this.name} lost-interrupt watchdog`, e);
    });
  }

  private watchdogPoll(): void {
    const ep = this.endpoint;
    const poll = this.control.lostInterruptPollNs ?? 0;
    if (ep === null || this.state !== CHANNEL_OPENED_STATE || poll <= 0) return;
    this.watchdogPolls++;
    const inb = ep.reader.ring;
    const unread = inb.loadWriteIndex() !== inb.loadReadIndex();
    const blocked = ep.blockedSenders;
    let found = unread;
    if (unread || blocked > 0) {
      this.processInbound();
      if (ep.blockedSenders < blocked) found = true;
    }
    if (found) this.watchdogRecoveries++;
    if (this.endpoint !== ep || this.state !== CHANNEL_OPENED_STATE) return;
    const stillUnread = inb.loadWriteIndex() !== inb.loadReadIndex();
    if (this.outstanding === 0 && ep.blockedSenders === 0 && !stillUnread) return;
    const max = Math.max(poll, this.control.lostInterruptMaxPollNs ?? poll);
    this.watchdogNs = found ? poll : Math.min(max, this.watchdogNs * 2);
    (this.watchdogTimer as Timer).arm(this.watchdogNs);
  }

  /** Stops the channel: waiting senders and outstanding requests fail with `reason`. */
  private shutdown(reason: unknown): void {
    this.watchdogTimer?.cancel();
    const ep = this.endpoint;
    if (ep !== null) ep.close(reason instanceof Error ? reason.message : String(reason));
    const rq = this.requestor;
    if (rq !== null) for (const r of rq.drain()) r.reject(reason);
  }

  /**
   * `vmbus_setevent`: a monitored channel that is not low-latency only sets
   * its monitor bit (the hypervisor batches within the monitor latency);
   * otherwise a SignalEvent hypercall, counted in `events`.
   */
  private signalHost(): void {
    const vcpu = currentVcpu() ?? (this.vm.vcpus[this.targetCpu] as Vcpu);
    // One reused target object: the signal is on every request's path.
    const target = this.signalTarget;
    target.connectionId = this.connectionId;
    target.monitorId = this.monitorAllocated ? this.monitorId : undefined;
    target.lowLatency = this.lowLatency;
    const path = signalChannel(vcpu, target);
    if (path === "hypercall") this.sigEvents++;
  }
}
