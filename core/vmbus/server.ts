/**
 * The host side of VMBus for one guest VM: the VMBus server in the host
 * partition (vmbus-core.md §3 signalling, §5 SynIC delivery, §6 monitor
 * pages, §7 channel management protocol, §8 CPU affinity, §12 checklist).
 *
 * Control plane. The guest posts channel messages with HvPostMessage to the
 * message ports the server connected: VMBUS_MESSAGE_CONNECTION_ID (1) and
 * VMBUS_MESSAGE_CONNECTION_ID_4 (4) for INITIATE_CONTACT, and, from protocol
 * 5.0 on, the `msg_conn_id` the server hands out in VERSION_RESPONSE. Every
 * message is decoded from the hypervisor's copy (`decodeChannelMessage`
 * copies and validates again); a malformed one is dropped and counted. A
 * well-formed message that breaks a state rule (OPEN of an unknown relid, a
 * second OPEN, a GPADL_BODY without a header, ...) is counted in
 * `rejectedMessages` and answered with a failure status where the protocol
 * has a reply. Nothing a guest sends makes the server throw into the
 * scheduler; only a simulator bug (an error that is not a VmbusSimError)
 * propagates.
 *
 * Messages are handled one at a time, in arrival order, across all ports
 * (one promise chain): OPENCHANNEL awaits the device's `open` before its
 * reply, and a CLOSECHANNEL or GPADL_TEARDOWN posted right behind it must
 * see the result. Host-initiated rescinds run on the same chain, between
 * guest messages, so no handler ever sees a channel change under it.
 *
 * Host → guest control messages go to SynIC message slot `msg_sint` (2) of
 * the VP the guest named in INITIATE_CONTACT (`target_vcpu`, §7.4 "all
 * control messages from the host arrive on CPU 0"). When the hypervisor's
 * queue for that slot is full (HV_STATUS_INSUFFICIENT_BUFFERS) the message
 * and every later one wait in an outbox — order is part of the protocol
 * (OFFER* before ALLOFFERS_DELIVERED) — retried every `messageDeliveryNs`.
 *
 * Data plane. Each offered channel gets its own event connection
 * (connection id 0x10000 + relid) and, if monitored, a monitor id whose
 * monitor-page entry the server configures. A guest signal wakes the
 * channel's `HostChannel.wake` (see host-channel.ts): retry blocked host
 * senders, drain the guest→host ring into the device's packet handler.
 *
 * Choices the spec leaves open, documented where they are made:
 * - GPADL_TEARDOWN of a GPADL that is the ring of an open channel is
 *   deferred: GPADL_TORNDOWN goes out when the channel closes (Linux always
 *   closes first; the host keeps the ring mapped while it services it).
 * - A second INITIATE_CONTACT while connected is refused (Linux sends one
 *   only after UNLOAD); a second REQUESTOFFERS in one connection is rejected
 *   without a reply.
 * - UNLOAD releases sub-channels and rescinded channels silently: boot-time
 *   offers exclude sub-channels (§7.5), so after reconnecting the guest sees
 *   only primaries again, with the same relids.
 * - Monitor ids run out at 128 per VM (§6); later monitored channels are
 *   offered unmonitored (counted in `monitorIdsExhausted`), so the guest
 *   signals them by hypercall.
 */
import { InvalidArgumentError, VmbusSimError, fmtNum } from "../errors.js";
import {
  HV_MONITOR_ID_COUNT,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_SUCCESS,
  HV_SYNIC_SINT_COUNT,
  VMBUS_MESSAGE_SINT,
  VMBUS_MESSAGE_TYPE_CHANNEL,
} from "../hv/constants.js";
import type { HostMessage, Hypervisor } from "../hv/hypervisor.js";
import type { GuestPartition } from "../hv/partition.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";
import { GpadlView } from "../memory/paged-view.js";
import { RingBuffer } from "../ring/ring-buffer.js";
import { MONITOR_LATENCY_UNIT_NS } from "../sim/cost-model.js";
import type { Timer } from "../sim/scheduler.js";
import { ChannelEndpoint } from "./endpoint.js";
import {
  HOST_DEFAULT_MAX_PACKET_SIZE,
  HostChannel,
  HostDevice,
  type HostChannelHandler,
  type HostChannelServer,
  type HostDeviceOffer,
  type HostGpadlRecord,
} from "./host-channel.js";
import {
  type AssembledGpadl,
  CHANNEL_MESSAGE_HEADER_SIZE,
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_COUNT,
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_HEADER,
  CHANNELMSG_GPADL_TEARDOWN,
  CHANNELMSG_GPADL_TORNDOWN,
  CHANNELMSG_INITIATE_CONTACT,
  CHANNELMSG_MODIFYCHANNEL,
  CHANNELMSG_MODIFYCHANNEL_RESPONSE,
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  CHANNELMSG_RELID_RELEASED,
  CHANNELMSG_REQUESTOFFERS,
  CHANNELMSG_RESCIND_CHANNELOFFER,
  CHANNELMSG_TL_CONNECT_REQUEST,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  type ChannelMessage,
  type CloseChannelMessage,
  GpadlAssembler,
  type GpadlBodyMessage,
  type GpadlHeaderMessage,
  type GpadlTeardownMessage,
  type InitiateContactMessage,
  MAX_USER_DEFINED_BYTES,
  type ModifyChannelMessage,
  type OfferChannelMessage,
  type OpenChannelMessage,
  type RelidReleasedMessage,
  channelMessageName,
  decodeChannelMessage,
  describeChannelMessage,
  encodeChannelMessage,
} from "./messages.js";
import {
  VERSION_WIN10_V5_3,
  VERSION_WIN8,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VmbusConnectState,
  formatVersion,
  isKnownVersion,
  supportsModifyChannel,
  supportsModifyChannelResponse,
  supportsUnload,
  usesNewContactMethod,
} from "./versions.js";

// The device-facing types, also reachable from here for callers that only
// know the server.
export { HostChannel, HostDevice } from "./host-channel.js";
export type { HostChannelHandler, HostDeviceOffer } from "./host-channel.js";

/**
 * NTSTATUS `STATUS_UNSUCCESSFUL`: the failure status the server puts in
 * OPENCHANNEL_RESULT, GPADL_CREATED and MODIFYCHANNEL_RESPONSE (Linux only
 * tests for non-zero).
 */
export const VMBUS_STATUS_UNSUCCESSFUL = 0xc000_0001;
/** The server's message connection id for a 5.0+ guest is this + the VM id. */
export const VMBUS_SERVER_MSG_CONN_ID_BASE = 0x1000;
/** A channel's event connection id (the offer's `connection_id`) is this + its relid. */
export const VMBUS_SERVER_EVENT_CONN_ID_BASE = 0x10000;
/** Relids index the 2048-bit SynIC event-flag block; relid 0 is the control path (§5.3, §5.5). */
const MAX_CHANNEL_RELIDS = 2048;
/** Sub-channels a device may declare (the plugin registry's limit). */
const MAX_SUBCHANNEL_LIMIT = 64;
/**
 * Outbox retries in a row before the server stops polling a guest that
 * never frees its message slot. Polling resumes with the guest's next
 * message or the server's next post; without the cap, a guest that stopped
 * reading would keep the event queue busy forever.
 */
const OUTBOX_MAX_POLLS = 1000;

export interface VmbusServerOptions {
  /** Newest protocol version the host accepts (default 5.3, VERSION_WIN10_V5_3): lets a simulation play an older host. */
  readonly maxVersion?: number;
}

/** What the guest said in its accepted INITIATE_CONTACT (§7.3). */
export interface VmbusContactInfo {
  readonly version: number;
  /** VP index all host → guest control messages go to. */
  readonly targetVcpu: number;
  /** SINT of those messages (`msg_sint` from 5.0, else VMBUS_MESSAGE_SINT). */
  readonly messageSint: number;
  /** Below 5.0: the guest's interrupt page GPA; else 0. */
  readonly interruptPage: number;
  readonly monitorPage1: number;
  readonly monitorPage2: number;
}

export class VmbusServerCounters {
  /** Messages dropped because they could not be decoded (bad size, type, layout). */
  malformedMessages = 0;
  /** Well-formed messages that broke a state rule. */
  rejectedMessages = 0;
  /** Decoded guest → host messages, indexed by msgtype. */
  readonly messagesIn: number[] = new Array<number>(CHANNELMSG_COUNT).fill(0);
  /** Host → guest messages accepted by the hypervisor. */
  messagesOut = 0;
  /** Host → guest messages posted (accepted now or queued in the outbox), indexed by msgtype. */
  readonly messagesOutByType: number[] = new Array<number>(CHANNELMSG_COUNT).fill(0);
  /** Messages that had to wait in the outbox (HV_STATUS_INSUFFICIENT_BUFFERS). */
  outboxDeferred = 0;
  /** Outbox retry rounds. */
  outboxRetries = 0;
  /** Times the outbox gave up polling (see OUTBOX_MAX_POLLS). */
  outboxStalls = 0;
  versionsAccepted = 0;
  versionsRefused = 0;
  gpadlsCreated = 0;
  gpadlsRefused = 0;
  gpadlsTornDown = 0;
  /** GPADL_TEARDOWNs of an open channel's ring, answered at its close. */
  teardownsDeferred = 0;
  channelsOpened = 0;
  openFailures = 0;
  /** Channels the host closed and rescinded because of malformed input (`HostChannel.fail`). */
  channelFailures = 0;
  rescinds = 0;
  /** CLOSECHANNELs for a channel the host had already closed (rescinded or failed): tolerated races. */
  closesAfterHostClose = 0;
  relidsReleased = 0;
  unloads = 0;
  /** Monitored channels offered without a monitor id because all 128 were in use. */
  monitorIdsExhausted = 0;
  /** Why the last message was dropped / rejected (for people reading a failed run). */
  lastMalformed = "";
  lastRejection = "";
}

interface OutboxEntry {
  readonly bytes: Uint8Array;
  readonly vpIndex: number;
  readonly sint: number;
}

function noop(): void {}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

export class VmbusServer implements HostChannelServer {
  readonly hv: Hypervisor;
  readonly vm: GuestPartition;
  readonly maxVersion: number;
  readonly counters = new VmbusServerCounters();

  private contactInfo: VmbusContactInfo | null = null;
  /** The 5.0+ message connection id, once connected (kept across UNLOAD and reused). */
  private msgConnIdValue: number | null = null;
  private offersRequested = false;
  /** Set while UNLOAD closes channels: no deferred TORNDOWN goes to a guest that is going away. */
  private unloading = false;
  private readonly deviceList: HostDevice[] = [];
  private readonly relids = new Map<number, HostChannel>();
  private readonly monitorIdsUsed = new Uint8Array(HV_MONITOR_ID_COUNT);
  private readonly gpadls = new Map<number, HostGpadlRecord>();
  private readonly assembler = new GpadlAssembler();
  /** child_relid of each GPADL in progress, to answer a failing GPADL_BODY. */
  private readonly gpadlInProgressRelid = new Map<number, number>();
  /** Channels whose servicing stopped and whose device `close` has not run yet, with their ring GPADL. */
  private readonly closing = new Map<HostChannel, number | null>();
  private readonly outbox: OutboxEntry[] = [];
  private readonly outboxTimer: Timer;
  private outboxPolls = 0;
  private tail: Promise<void> = Promise.resolve();
  private readonly portHandler: (m: HostMessage) => Promise<void>;

  constructor(hv: Hypervisor, vm: GuestPartition, options: VmbusServerOptions = {}) {
    const maxVersion = options.maxVersion ?? VERSION_WIN10_V5_3;
    if (!isKnownVersion(maxVersion) || maxVersion < VERSION_WIN8) {
      throw new InvalidArgumentError("maxVersion", maxVersion, "must be a VMBus version from 2.4 (VERSION_WIN8) to 5.3");
    }
    if (vm.hypervisor !== hv) throw new InvalidArgumentError("vm", vm.name, "belongs to another hypervisor");
    this.hv = hv;
    this.vm = vm;
    this.maxVersion = maxVersion;
    this.outboxTimer = hv.sim.scheduler.timer(`${vm.name} vmbus server outbox`, () => this.flushOutbox());
    this.portHandler = (m: HostMessage) => this.enqueue(() => this.handleMessage(m));
    // INITIATE_CONTACT arrives on 1 (below 5.0) or 4 (5.0 and later), §7.5.
    hv.connectMessagePort(vm, VMBUS_MESSAGE_CONNECTION_ID, this.portHandler);
    hv.connectMessagePort(vm, VMBUS_MESSAGE_CONNECTION_ID_4, this.portHandler);
  }

  // ---- state ------------------------------------------------------------------

  /** The negotiated protocol version, or null while not connected. */
  get version(): number | null {
    return this.contactInfo?.version ?? null;
  }

  get connected(): boolean {
    return this.contactInfo !== null;
  }

  /** What the guest's accepted INITIATE_CONTACT said, or null. */
  get contact(): VmbusContactInfo | null {
    return this.contactInfo;
  }

  /** The message connection id given to a 5.0+ guest (null before the first such connect). */
  get msgConnId(): number | null {
    return this.msgConnIdValue;
  }

  /** Whether the guest sent REQUESTOFFERS in this connection (later devices are hot-added). */
  get offersDelivered(): boolean {
    return this.offersRequested;
  }

  /** Live devices, in the order they were added. */
  devices(): readonly HostDevice[] {
    return this.deviceList;
  }

  /** The live channel with `relid`. */
  channel(relid: number): HostChannel | undefined {
    return this.relids.get(relid);
  }

  /** GPADLs the guest created and has not torn down. */
  get gpadlCount(): number {
    return this.gpadls.size;
  }

  /** Messages waiting for the guest's message slot. */
  get outboxLength(): number {
    return this.outbox.length;
  }

  /** VP index of the VM's first vCPU: the default target before the guest names one. */
  private get firstVp(): number {
    const v = this.vm.vcpus[0];
    if (v === undefined) throw new InvalidArgumentError("vm.vcpus", 0, "a VM has at least one vCPU");
    return v.vpIndex;
  }

  /** @internal HostChannelServer */
  findGpadl(handle: number): HostGpadlRecord | undefined {
    return this.gpadls.get(handle);
  }

  // ---- devices ----------------------------------------------------------------

  /**
   * Adds a device; its primary channel gets the lowest free relid (from 1).
   * If the guest already requested offers, OFFERCHANNEL goes out now (hot add).
   */
  addDevice(offer: HostDeviceOffer, handler: HostChannelHandler): HostDevice {
    checkOffer(offer);
    const latencyNs = offer.monitorLatencyNs ?? this.hv.sim.costs.monitorLatencyNs;
    if (!Number.isInteger(latencyNs) || latencyNs % MONITOR_LATENCY_UNIT_NS !== 0 || !isUint(latencyNs / MONITOR_LATENCY_UNIT_NS, 0xffff) || latencyNs === 0) {
      throw new InvalidArgumentError(
        `${offer.name} monitorLatencyNs`,
        latencyNs,
        `must be a multiple of ${MONITOR_LATENCY_UNIT_NS} ns in [${MONITOR_LATENCY_UNIT_NS}, ${0xffff * MONITOR_LATENCY_UNIT_NS}]`,
      );
    }
    // The guest treats a second offer with the same class and instance as a
    // sub-channel of the first (§7.6), so two devices must differ.
    for (const d of this.deviceList) {
      if (d.offer.classId.equals(offer.classId) && d.offer.instanceId.equals(offer.instanceId)) {
        throw new InvalidArgumentError(`${offer.name} instanceId`, offer.instanceId.toString(), `is already offered by ${d.name} with the same class`);
      }
    }
    const device = new HostDevice(offer, handler, (dev) => this.createChannel(dev, 0));
    this.deviceList.push(device);
    if (this.offersRequested) this.postOffer(device.primary);
    return device;
  }

  /**
   * Offers up to `count` more sub-channels of `device` (at most its
   * `subchannelLimit` in all), with the primary's GUIDs and the lowest free
   * `sub_channel_index` values from 1; the offers go out at once. Requires a
   * connected guest that requested offers (sub-channels are never part of
   * the boot-time offers, §7.5).
   */
  offerSubchannels(device: HostDevice, count: number): HostChannel[] {
    this.checkOwnDevice(device);
    if (!Number.isInteger(count) || count < 0) throw new InvalidArgumentError("count", count, "must be a non-negative integer");
    if (device.rescinding) throw new InvalidArgumentError("device", device.name, "is being rescinded");
    if (!this.offersRequested) {
      throw new InvalidArgumentError("offerSubchannels", device.name, "needs a connected guest that requested offers");
    }
    const room = Math.max(0, device.offer.subchannelLimit - device.subchannels().length);
    const out: HostChannel[] = [];
    for (let i = 0; i < Math.min(count, room); i++) {
      const ch = this.createChannel(device, device.nextSubchannelIndex());
      device.addChannel(ch);
      this.postOffer(ch);
      out.push(ch);
    }
    return out;
  }

  /**
   * Rescinds a device: RESCIND_CHANNELOFFER for its sub-channels, then its
   * primary, closing open channels on the host side first. Resolves when the
   * guest released every relid (RELID_RELEASED); then relids and monitor
   * ids are free again. A channel the guest was never offered is released at
   * once. Calling it again returns the same promise.
   */
  rescind(device: HostDevice): Promise<void> {
    this.checkOwnDevice(device);
    if (device.rescindRequested !== null) return device.rescindRequested;
    const channels = [...device.channels()];
    // Sub-channels first, highest index first; the primary last (§7.9: the
    // guest removes sub-channels before their primary's device goes).
    channels.sort((a, b) => b.subchannelIndex - a.subchannelIndex);
    const p = this.enqueue(() => this.rescindChannels(channels)).then(() => Promise.all(channels.map((c) => c.released))).then(noop);
    device.rescindRequested = p;
    return p;
  }

  /** @internal HostChannelServer: `HostChannel.fail`. */
  channelFailed(ch: HostChannel, error: unknown): void {
    this.counters.channelFailures++;
    // Stop servicing now: the endpoint closes at once (waiting senders are
    // rejected) and later wakeups find the channel closed. The device's
    // close and the rescind follow on the control chain.
    this.stopService(ch, `closed by the host: ${errorText(error)}`);
    const p = ch.subchannelIndex === 0 ? this.rescind(ch.device) : this.enqueue(() => this.rescindChannels([ch]));
    p.catch((e: unknown) => this.hv.sim.scheduler.reportError(`${ch.name} rescind after failure`, e));
  }

  private checkOwnDevice(device: HostDevice): void {
    if (!this.deviceList.includes(device)) {
      throw new InvalidArgumentError("device", device.name, `is not a live device of the VMBus server of ${this.vm.name}`);
    }
  }

  private createChannel(device: HostDevice, subchannelIndex: number): HostChannel {
    const offer = device.offer;
    const relid = this.allocRelid();
    let monitorId: number | undefined;
    if (offer.monitored) {
      monitorId = this.allocMonitorId();
      if (monitorId === undefined) this.counters.monitorIdsExhausted++;
    }
    const connectionId = VMBUS_SERVER_EVENT_CONN_ID_BASE + relid;
    const userDef = new Uint8Array(MAX_USER_DEFINED_BYTES);
    if (offer.userDef !== undefined) userDef.set(offer.userDef);
    const msg: OfferChannelMessage = {
      msgtype: CHANNELMSG_OFFERCHANNEL,
      ifType: offer.classId,
      ifInstance: offer.instanceId,
      chnFlags: offer.chnFlags ?? 0,
      mmioMegabytes: offer.mmioMegabytes ?? 0,
      userDef,
      subChannelIndex: subchannelIndex,
      childRelid: relid,
      monitorId: monitorId ?? 0,
      monitorAllocated: monitorId !== undefined,
      isDedicatedInterrupt: false,
      connectionId,
    };
    const ch = new HostChannel(this, device, msg, this.firstVp);
    this.hv.connectEvent(
      this.vm,
      connectionId,
      () => ch.wake(),
      () => ch.isSignalNecessary(),
    );
    if (monitorId !== undefined) {
      const latencyNs = offer.monitorLatencyNs ?? this.hv.sim.costs.monitorLatencyNs;
      this.vm.monitor.configure(monitorId, { connectionId, latency: Math.round(latencyNs / MONITOR_LATENCY_UNIT_NS) });
    }
    this.relids.set(relid, ch);
    return ch;
  }

  private allocRelid(): number {
    for (let r = 1; r < MAX_CHANNEL_RELIDS; r++) if (!this.relids.has(r)) return r;
    throw new InvalidArgumentError("relid", MAX_CHANNEL_RELIDS, `all relids 1..${MAX_CHANNEL_RELIDS - 1} of ${this.vm.name} are in use`);
  }

  private allocMonitorId(): number | undefined {
    const i = this.monitorIdsUsed.indexOf(0);
    if (i < 0) return undefined;
    this.monitorIdsUsed[i] = 1;
    return i;
  }

  private postOffer(ch: HostChannel): void {
    this.post(ch.offer);
    ch.offerSent = true;
  }

  // ---- the control chain -----------------------------------------------------

  /** Runs `work` after everything queued before it; the chain itself never rejects. */
  private enqueue(work: () => void | Promise<void>): Promise<void> {
    const run = this.tail.then(work);
    this.tail = run.then(noop, noop);
    return run;
  }

  private malformed(reason: string): void {
    this.counters.malformedMessages++;
    this.counters.lastMalformed = reason;
  }

  private reject(reason: string): void {
    this.counters.rejectedMessages++;
    this.counters.lastRejection = reason;
  }

  private async handleMessage(m: HostMessage): Promise<void> {
    // A guest that talks to us is reading its slot again.
    if (this.outbox.length > 0 && !this.outboxTimer.armed) this.flushOutbox();
    if (m.messageType !== VMBUS_MESSAGE_TYPE_CHANNEL) {
      this.malformed(`message_type ${fmtNum(m.messageType)} on connection ${m.connectionId} is not a VMBus channel message (1)`);
      return;
    }
    // Checked here because the decoder treats a buffer shorter than the
    // header as its caller's mistake; for us it is the guest's.
    if (m.payload.length < CHANNEL_MESSAGE_HEADER_SIZE) {
      this.malformed(`payload_size ${m.payload.length} is shorter than the ${CHANNEL_MESSAGE_HEADER_SIZE}-byte channel message header`);
      return;
    }
    let msg: ChannelMessage;
    try {
      msg = decodeChannelMessage(m.payload, m.payload.length, "toHost");
    } catch (e) {
      if (e instanceof VmbusSimError) {
        this.malformed(e.message);
        return;
      }
      throw e;
    }
    this.counters.messagesIn[msg.msgtype] = (this.counters.messagesIn[msg.msgtype] ?? 0) + 1;
    try {
      await this.dispatch(msg, m.connectionId);
    } catch (e) {
      if (e instanceof VmbusSimError) {
        this.reject(`${describeChannelMessage(msg)}: ${e.message}`);
        return;
      }
      throw e;
    }
  }

  private async dispatch(msg: ChannelMessage, port: number): Promise<void> {
    if (msg.msgtype === CHANNELMSG_INITIATE_CONTACT) {
      this.onInitiateContact(msg);
      return;
    }
    const contact = this.contactInfo;
    // Before a version is agreed there is no connection to answer on.
    if (contact === null) {
      this.reject(`${describeChannelMessage(msg)}: the guest is not connected (no accepted INITIATE_CONTACT)`);
      return;
    }
    // From 5.0 the guest must use the msg_conn_id it was given (§7.5).
    const expectedPort = usesNewContactMethod(contact.version) ? this.msgConnIdValue : VMBUS_MESSAGE_CONNECTION_ID;
    if (port !== expectedPort) {
      this.reject(`${describeChannelMessage(msg)}: arrived on connection id ${port}, protocol ${formatVersion(contact.version)} uses ${expectedPort ?? "?"}`);
      return;
    }
    switch (msg.msgtype) {
      case CHANNELMSG_REQUESTOFFERS:
        this.onRequestOffers();
        return;
      case CHANNELMSG_GPADL_HEADER:
        this.onGpadlHeader(msg);
        return;
      case CHANNELMSG_GPADL_BODY:
        this.onGpadlBody(msg);
        return;
      case CHANNELMSG_GPADL_TEARDOWN:
        this.onGpadlTeardown(msg);
        return;
      case CHANNELMSG_OPENCHANNEL:
        await this.onOpenChannel(msg);
        return;
      case CHANNELMSG_CLOSECHANNEL:
        await this.onCloseChannel(msg);
        return;
      case CHANNELMSG_MODIFYCHANNEL:
        this.onModifyChannel(msg, contact.version);
        return;
      case CHANNELMSG_RELID_RELEASED:
        this.onRelidReleased(msg);
        return;
      case CHANNELMSG_UNLOAD:
        await this.onUnload(contact.version);
        return;
      case CHANNELMSG_TL_CONNECT_REQUEST:
        // hv_sock (§7.12) needs a host service provider this server does not model.
        this.reject(`${describeChannelMessage(msg)}: no hv_sock service provider`);
        return;
      default:
        // The decoder accepts only guest → host messages; nothing else gets here.
        this.reject(`${channelMessageName(msg.msgtype)} is not a guest → host message`);
        return;
    }
  }

  // ---- connection ------------------------------------------------------------

  private onInitiateContact(m: InitiateContactMessage): void {
    const v = m.versionRequested;
    const isNew = usesNewContactMethod(v);
    const vpOk = this.vm.vcpuByVpIndex(m.targetVcpu) !== undefined;
    const sint = m.contact.kind === "sint" ? m.contact.msgSint : VMBUS_MESSAGE_SINT;
    const sintOk = Number.isInteger(sint) && sint >= 0 && sint < HV_SYNIC_SINT_COUNT;
    const refuse = (vp: number, s: number): void => {
      this.counters.versionsRefused++;
      this.post({ msgtype: CHANNELMSG_VERSION_RESPONSE, versionSupported: false, connectionState: VmbusConnectState.DISCONNECTED, msgConnId: 0 }, vp, s);
    };
    const current = this.contactInfo;
    if (current !== null) {
      // Linux contacts again only after UNLOAD; answering "no" keeps the
      // live connection intact.
      this.reject(`INITIATE_CONTACT ${formatVersion(v)}: already connected at ${formatVersion(current.version)} (UNLOAD first)`);
      refuse(current.targetVcpu, current.messageSint);
      return;
    }
    if (!vpOk || !sintOk) {
      this.reject(`INITIATE_CONTACT: ${!vpOk ? `target_vcpu ${m.targetVcpu} is not a VP of ${this.vm.name}` : `msg_sint ${sint} is not a SINT`}`);
      refuse(vpOk ? m.targetVcpu : this.firstVp, sintOk ? sint : VMBUS_MESSAGE_SINT);
      return;
    }
    // Not a state rule: the guest tries versions newest first and expects "no" to those the host lacks.
    if (!isKnownVersion(v) || v < VERSION_WIN8 || v > this.maxVersion) {
      refuse(m.targetVcpu, sint);
      return;
    }
    if (m.contact.kind === "sint" && m.contact.msgVtl !== 0) {
      // Virtual trust levels are not modelled; a VTL>0 guest would wait on a SINT of a VTL we never signal.
      this.reject(`INITIATE_CONTACT: msg_vtl ${m.contact.msgVtl} is not supported (only VTL 0)`);
      refuse(m.targetVcpu, sint);
      return;
    }
    let msgConnId = 0;
    if (isNew) {
      if (this.msgConnIdValue === null) {
        const id = VMBUS_SERVER_MSG_CONN_ID_BASE + this.vm.id;
        this.hv.connectMessagePort(this.vm, id, this.portHandler);
        this.msgConnIdValue = id;
      }
      msgConnId = this.msgConnIdValue;
    }
    this.contactInfo = {
      version: v,
      targetVcpu: m.targetVcpu,
      messageSint: sint,
      interruptPage: m.contact.kind === "interruptPage" ? m.contact.interruptPage : 0,
      monitorPage1: m.monitorPage1,
      monitorPage2: m.monitorPage2,
    };
    this.counters.versionsAccepted++;
    this.post({ msgtype: CHANNELMSG_VERSION_RESPONSE, versionSupported: true, connectionState: VmbusConnectState.CONNECTED, msgConnId });
  }

  private onRequestOffers(): void {
    if (this.offersRequested) {
      this.reject("REQUESTOFFERS: offers were already delivered in this connection");
      return;
    }
    this.offersRequested = true;
    // Primaries only (§7.5 "boot-time offers exclude sub-channels"), in relid order.
    const primaries = this.deviceList.map((d) => d.primary).filter((c) => c.state === "offered" || c.state === "open");
    primaries.sort((a, b) => a.relid - b.relid);
    for (const ch of primaries) this.postOffer(ch);
    this.post({ msgtype: CHANNELMSG_ALLOFFERS_DELIVERED });
  }

  private async onUnload(version: number): Promise<void> {
    // UNLOAD exists from 3.0 (§7.11); an older guest just stops.
    if (!supportsUnload(version)) {
      this.reject(`UNLOAD: protocol ${formatVersion(version)} has no UNLOAD`);
      return;
    }
    this.counters.unloads++;
    const all = [...this.relids.values()].sort((a, b) => b.subchannelIndex - a.subchannelIndex || a.relid - b.relid);
    this.unloading = true;
    try {
      for (const ch of all) await this.closeChannel(ch, "VMBus unloaded by the guest");
      for (const ch of [...this.closing.keys()]) await this.finishClose(ch);
    } finally {
      this.unloading = false;
    }
    for (const ch of all) {
      if (ch.state === "rescinded" || (ch.subchannelIndex !== 0 && ch.state !== "released")) this.release(ch);
    }
    this.gpadls.clear();
    this.assembler.clear();
    this.gpadlInProgressRelid.clear();
    for (const ch of this.relids.values()) ch.offerSent = false;
    this.post({ msgtype: CHANNELMSG_UNLOAD_RESPONSE });
    this.contactInfo = null;
    this.offersRequested = false;
  }

  // ---- GPADLs (§7.7) -----------------------------------------------------------

  private gpadlCreated(relid: number, handle: number, status: number): void {
    this.post({ msgtype: CHANNELMSG_GPADL_CREATED, childRelid: relid, gpadl: handle, creationStatus: status });
  }

  private refuseGpadl(relid: number, handle: number, why: string): void {
    this.reject(`GPADL ${hex(handle)} on relid ${relid}: ${why}`);
    this.counters.gpadlsRefused++;
    this.gpadlCreated(relid, handle, VMBUS_STATUS_UNSUCCESSFUL);
  }

  private onGpadlHeader(m: GpadlHeaderMessage): void {
    let done: AssembledGpadl | null;
    try {
      done = this.assembler.acceptHeader(m);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.refuseGpadl(m.childRelid, m.gpadl, e.message);
      return;
    }
    if (done === null) this.gpadlInProgressRelid.set(m.gpadl, m.childRelid);
    else this.completeGpadl(done);
  }

  private onGpadlBody(m: GpadlBodyMessage): void {
    const relid = this.gpadlInProgressRelid.get(m.gpadl);
    let done: AssembledGpadl | null;
    try {
      done = this.assembler.acceptBody(m);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.gpadlInProgressRelid.delete(m.gpadl);
      // Without a header in progress there is no (relid, gpadl) request to answer.
      if (relid === undefined) this.reject(`GPADL_BODY gpadl=${hex(m.gpadl)}: ${e.message}`);
      else this.refuseGpadl(relid, m.gpadl, e.message);
      return;
    }
    if (done === null) return;
    this.gpadlInProgressRelid.delete(m.gpadl);
    this.completeGpadl(done);
  }

  private completeGpadl(g: AssembledGpadl): void {
    // Handles are the guest's; two GPADLs with one handle would make every
    // later OPENCHANNEL / TEARDOWN ambiguous.
    if (this.gpadls.has(g.gpadl)) {
      this.refuseGpadl(g.childRelid, g.gpadl, "the handle already names a GPADL");
      return;
    }
    const ch = this.relids.get(g.childRelid);
    if (ch === undefined || !ch.offerSent || (ch.state !== "offered" && ch.state !== "open")) {
      this.refuseGpadl(g.childRelid, g.gpadl, "child_relid is not an offered channel");
      return;
    }
    let view: GpadlView;
    try {
      // Checks every PFN against guest memory now, once, so that the host
      // never maps a page the guest does not have.
      view = new GpadlView(this.vm.memory, { handle: g.gpadl, byteOffset: g.byteOffset, byteCount: g.byteCount, pfns: g.pfns });
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.refuseGpadl(g.childRelid, g.gpadl, e.message);
      return;
    }
    this.gpadls.set(g.gpadl, { view, relid: g.childRelid, ringOf: null, teardownPending: false });
    this.counters.gpadlsCreated++;
    this.gpadlCreated(g.childRelid, g.gpadl, 0);
  }

  private onGpadlTeardown(m: GpadlTeardownMessage): void {
    const g = this.gpadls.get(m.gpadl);
    if (g === undefined) {
      this.reject(`GPADL_TEARDOWN gpadl=${hex(m.gpadl)}: no such GPADL`);
      return;
    }
    if (g.relid !== m.childRelid) {
      this.reject(`GPADL_TEARDOWN gpadl=${hex(m.gpadl)}: it belongs to relid ${g.relid}, not ${m.childRelid}`);
      return;
    }
    if (g.teardownPending) {
      this.reject(`GPADL_TEARDOWN gpadl=${hex(m.gpadl)}: a teardown is already pending`);
      return;
    }
    if (g.ringOf !== null || this.isClosingRing(m.gpadl)) {
      // The ring of a channel the host still services: tearing it down now
      // would pull the memory from under the device. Linux closes first; a
      // guest that does not gets its TORNDOWN when the channel closes.
      g.teardownPending = true;
      this.counters.teardownsDeferred++;
      return;
    }
    this.tearDown(m.gpadl);
  }

  private isClosingRing(handle: number): boolean {
    for (const ring of this.closing.values()) if (ring === handle) return true;
    return false;
  }

  private tearDown(handle: number): void {
    this.gpadls.delete(handle);
    this.counters.gpadlsTornDown++;
    this.post({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: handle });
  }

  // ---- open / close / modify (§7.8, §8.2) -------------------------------------

  private async onOpenChannel(m: OpenChannelMessage): Promise<void> {
    const refuse = (why: string): void => {
      this.reject(`OPENCHANNEL relid ${m.childRelid}: ${why}`);
      this.counters.openFailures++;
      this.post({ msgtype: CHANNELMSG_OPENCHANNEL_RESULT, childRelid: m.childRelid, openId: m.openId, status: VMBUS_STATUS_UNSUCCESSFUL });
    };
    const ch = this.relids.get(m.childRelid);
    if (ch === undefined || !ch.offerSent) return refuse("no such channel was offered");
    if (ch.failed || ch.state !== "offered") return refuse(`the channel is ${ch.failed ? "failed" : ch.state}`);
    const g = this.gpadls.get(m.ringBufferGpadlHandle);
    if (g === undefined || g.relid !== ch.relid) {
      return refuse(`ringbuffer_gpadlhandle ${hex(m.ringBufferGpadlHandle)} is not a GPADL of this channel`);
    }
    if (g.teardownPending || g.ringOf !== null || this.isClosingRing(g.view.handle)) {
      return refuse(`ring GPADL ${hex(g.view.handle)} is ${g.teardownPending ? "being torn down" : "in use"}`);
    }
    const total = g.view.length;
    // Rings are whole pages (a header page + data pages, §1.1).
    if (g.view.byteOffset !== 0 || total % PAGE_SIZE !== 0) {
      return refuse(`ring GPADL byte_offset=${g.view.byteOffset} byte_count=${total} is not whole pages`);
    }
    const pages = total / PAGE_SIZE;
    const down = m.downstreamRingBufferPageOffset;
    // Each ring needs its header page and at least one data page.
    if (down < 2 || pages - down < 2) {
      return refuse(`downstream_ringbuffer_pageoffset=${down} must leave at least 2 pages to each ring of the ${pages}-page GPADL`);
    }
    if (this.vm.vcpuByVpIndex(m.targetVp) === undefined) return refuse(`target_vp ${m.targetVp} is not a VP of ${this.vm.name}`);
    let endpoint: ChannelEndpoint;
    try {
      const split = down * PAGE_SIZE;
      // The guest→host ring comes first in the GPADL, the host→guest ring at the downstream offset (§7.3).
      const toHost = new RingBuffer(g.view.span(0, split), `${ch.name} guest->host`);
      const toGuest = new RingBuffer(g.view.span(split, total - split), `${ch.name} host->guest`);
      endpoint = new ChannelEndpoint(toGuest, toHost, {
        name: ch.name,
        maxPacketSize: ch.device.offer.maxPacketSize ?? HOST_DEFAULT_MAX_PACKET_SIZE,
        signalPeer: () => ch.signalGuest(),
      });
    } catch (e) {
      // Non-contiguous pages (GpadlAccessError), impossible indices (RingCorruptError).
      if (!(e instanceof VmbusSimError)) throw e;
      return refuse(e.message);
    }
    ch.attachEndpoint(endpoint, m.targetVp, m.userData, g.view.handle);
    g.ringOf = ch;
    let threw = false;
    let error: unknown;
    try {
      await ch.device.handler.open(ch);
    } catch (e) {
      threw = true;
      error = e;
    }
    if (threw || ch.failed || ch.state !== "offered") {
      ch.detachEndpoint(threw ? "the device refused the open" : "the channel failed while opening");
      if (g.ringOf === ch) g.ringOf = null;
      // The device accepted but the channel failed meanwhile: undo its open.
      if (!threw) await this.callClose(ch);
      refuse(threw ? `the device refused: ${errorText(error)}` : "the channel failed while opening");
      if (threw && !(error instanceof VmbusSimError)) throw error;
      return;
    }
    ch.state = "open";
    ch.counters.opens++;
    this.counters.channelsOpened++;
    this.post({ msgtype: CHANNELMSG_OPENCHANNEL_RESULT, childRelid: m.childRelid, openId: m.openId, status: 0 });
  }

  private async onCloseChannel(m: CloseChannelMessage): Promise<void> {
    const ch = this.relids.get(m.childRelid);
    // The host rescinded or failed the channel while the guest was closing
    // it: a race, not a broken rule; the host already closed its side.
    if (ch !== undefined && (ch.state === "rescinded" || (ch.failed && ch.state !== "open"))) {
      this.counters.closesAfterHostClose++;
      return;
    }
    if (ch === undefined || ch.state !== "open") {
      this.reject(`CLOSECHANNEL relid ${m.childRelid}: ${ch === undefined ? "no such channel" : `the channel is ${ch.state}`}`);
      return;
    }
    // No reply: Linux does not wait for one (§7.8).
    await this.closeChannel(ch, "closed by the guest");
  }

  private onModifyChannel(m: ModifyChannelMessage, version: number): void {
    if (!supportsModifyChannel(version)) {
      this.reject(`MODIFYCHANNEL: protocol ${formatVersion(version)} has no MODIFYCHANNEL (from 4.1)`);
      return;
    }
    const respond = supportsModifyChannelResponse(version);
    const ch = this.relids.get(m.childRelid);
    let why: string | null = null;
    if (ch === undefined) why = "no such channel";
    else if (ch.state !== "open" || ch.failed) why = `the channel is ${ch.failed ? "failed" : ch.state}`;
    else if (this.vm.vcpuByVpIndex(m.targetVp) === undefined) why = `target_vp ${m.targetVp} is not a VP of ${this.vm.name}`;
    if (why !== null || ch === undefined) {
      this.reject(`MODIFYCHANNEL relid ${m.childRelid}: ${why ?? ""}`);
      if (respond) this.post({ msgtype: CHANNELMSG_MODIFYCHANNEL_RESPONSE, childRelid: m.childRelid, status: VMBUS_STATUS_UNSUCCESSFUL });
      return;
    }
    // Interrupts raised from now on go to the new VP (the endpoint's signalPeer reads targetVp each time).
    ch.targetVp = m.targetVp;
    ch.counters.retargets++;
    if (respond) this.post({ msgtype: CHANNELMSG_MODIFYCHANNEL_RESPONSE, childRelid: m.childRelid, status: 0 });
  }

  /**
   * Stops servicing an open channel at once: state back to "offered", the
   * endpoint closed (waiting senders rejected), later wakeups ignored. The
   * device's `close` runs in `finishClose`.
   */
  private stopService(ch: HostChannel, reason: string): void {
    if (ch.state !== "open") return;
    ch.state = "offered";
    this.closing.set(ch, ch.ringGpadl);
    ch.detachEndpoint(reason);
  }

  /** Runs the device's `close` for a stopped channel, then releases its ring GPADL (answering a deferred teardown). */
  private async finishClose(ch: HostChannel): Promise<void> {
    if (!this.closing.has(ch)) return;
    const ring = this.closing.get(ch) ?? null;
    this.closing.delete(ch);
    ch.counters.closes++;
    await this.callClose(ch);
    if (ring === null) return;
    const g = this.gpadls.get(ring);
    if (g === undefined) return;
    if (g.ringOf === ch) g.ringOf = null;
    if (g.teardownPending && this.contactInfo !== null && !this.unloading) this.tearDown(ring);
  }

  private async closeChannel(ch: HostChannel, reason: string): Promise<void> {
    this.stopService(ch, reason);
    await this.finishClose(ch);
  }

  /** The device's `close`; its typed errors are the device's and are counted, not thrown. */
  private async callClose(ch: HostChannel): Promise<void> {
    try {
      await ch.device.handler.close(ch);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      ch.counters.errors++;
      ch.lastError = e;
    }
  }

  // ---- rescind and release (§7.9) ---------------------------------------------

  private async rescindChannels(channels: readonly HostChannel[]): Promise<void> {
    for (const ch of channels) {
      if (ch.state === "rescinded" || ch.state === "released") continue;
      // Also finishes a channel that `fail` already stopped.
      await this.closeChannel(ch, "rescinded by the host");
      if (ch.state !== "offered") continue;
      ch.state = "rescinded";
      this.counters.rescinds++;
      // A guest that never saw the offer has nothing to release.
      if (ch.offerSent && this.contactInfo !== null) this.post({ msgtype: CHANNELMSG_RESCIND_CHANNELOFFER, childRelid: ch.relid });
      else this.release(ch);
    }
  }

  private onRelidReleased(m: RelidReleasedMessage): void {
    const ch = this.relids.get(m.childRelid);
    if (ch === undefined || ch.state !== "rescinded") {
      this.reject(`RELID_RELEASED relid ${m.childRelid}: ${ch === undefined ? "no such channel" : `the channel is ${ch.state}, not rescinded`}`);
      return;
    }
    this.release(ch);
  }

  /** Frees the relid, the monitor id, the event connection and the channel's GPADLs. */
  private release(ch: HostChannel): void {
    if (ch.state === "released") return;
    this.relids.delete(ch.relid);
    if (ch.monitorId !== undefined) {
      this.vm.monitor.unconfigure(ch.monitorId);
      this.monitorIdsUsed[ch.monitorId] = 0;
    }
    this.hv.disconnect(this.vm, ch.connectionId);
    // The guest skips GPADL teardown for a rescinded channel (§7.7), so the host drops them.
    for (const [handle, g] of this.gpadls) if (g.relid === ch.relid) this.gpadls.delete(handle);
    this.assembler.abortRelid(ch.relid);
    for (const [handle, relid] of this.gpadlInProgressRelid) if (relid === ch.relid) this.gpadlInProgressRelid.delete(handle);
    const device = ch.device;
    device.removeChannel(ch);
    if (device.channels().length === 0) {
      const i = this.deviceList.indexOf(device);
      if (i >= 0) this.deviceList.splice(i, 1);
    }
    this.counters.relidsReleased++;
    ch.markReleased();
  }

  // ---- host → guest messages -------------------------------------------------

  /**
   * Posts a control message to the guest's control VP. While anything waits
   * in the outbox, later messages queue behind it: order is part of the
   * protocol.
   */
  private post(msg: ChannelMessage, vpIndex?: number, sint?: number): void {
    const c = this.contactInfo;
    const entry: OutboxEntry = {
      bytes: encodeChannelMessage(msg),
      vpIndex: vpIndex ?? c?.targetVcpu ?? this.firstVp,
      sint: sint ?? c?.messageSint ?? VMBUS_MESSAGE_SINT,
    };
    this.counters.messagesOutByType[msg.msgtype] = (this.counters.messagesOutByType[msg.msgtype] ?? 0) + 1;
    if (this.outbox.length === 0 && this.tryPost(entry)) return;
    this.outbox.push(entry);
    this.counters.outboxDeferred++;
    if (!this.outboxTimer.armed) {
      this.outboxPolls = 0;
      this.outboxTimer.arm(Math.max(1, this.hv.sim.costs.messageDeliveryNs));
    }
  }

  private tryPost(e: OutboxEntry): boolean {
    const st = this.hv.postMessageToGuest(this.vm, e.bytes, { vpIndex: e.vpIndex, sint: e.sint });
    if (st === HV_STATUS_SUCCESS) {
      this.counters.messagesOut++;
      return true;
    }
    if (st === HV_STATUS_INSUFFICIENT_BUFFERS) return false;
    // Every message the server builds is ≤ 240 bytes to a VP it checked.
    throw new Error(`VmbusServer(${this.vm.name}): postMessageToGuest returned status ${hex(st)} (simulator bug)`);
  }

  private flushOutbox(): void {
    this.counters.outboxRetries++;
    for (let head = this.outbox[0]; head !== undefined; head = this.outbox[0]) {
      if (!this.tryPost(head)) {
        if (++this.outboxPolls >= OUTBOX_MAX_POLLS) {
          this.counters.outboxStalls++;
          return;
        }
        this.outboxTimer.arm(Math.max(1, this.hv.sim.costs.messageDeliveryNs));
        return;
      }
      this.outbox.shift();
      this.outboxPolls = 0;
    }
  }
}

function checkOffer(offer: HostDeviceOffer): void {
  if (typeof offer.name !== "string" || offer.name.length === 0) throw new InvalidArgumentError("offer.name", offer.name, "must be a non-empty string");
  if (!isUint(offer.subchannelLimit, MAX_SUBCHANNEL_LIMIT)) {
    throw new InvalidArgumentError(`${offer.name} subchannelLimit`, offer.subchannelLimit, `must be an integer in [0, ${MAX_SUBCHANNEL_LIMIT}]`);
  }
  if (offer.mmioMegabytes !== undefined && !isUint(offer.mmioMegabytes, 0xffff)) {
    throw new InvalidArgumentError(`${offer.name} mmioMegabytes`, offer.mmioMegabytes, "must fit the u16 mmio_megabytes");
  }
  if (offer.chnFlags !== undefined && !isUint(offer.chnFlags, 0xffff)) {
    throw new InvalidArgumentError(`${offer.name} chnFlags`, offer.chnFlags, "must fit the u16 chn_flags");
  }
  if (offer.userDef !== undefined && offer.userDef.length > MAX_USER_DEFINED_BYTES) {
    throw new InvalidArgumentError(`${offer.name} userDef length`, offer.userDef.length, `must be at most ${MAX_USER_DEFINED_BYTES}`);
  }
  if (offer.maxPacketSize !== undefined && (!Number.isInteger(offer.maxPacketSize) || offer.maxPacketSize < 64 || offer.maxPacketSize > 16 * 1024 * 1024)) {
    throw new InvalidArgumentError(`${offer.name} maxPacketSize`, offer.maxPacketSize, "must be an integer in [64, 16 MiB]");
  }
}
