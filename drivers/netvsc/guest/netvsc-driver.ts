/**
 * The guest netvsc driver (a VSC) and the network device it offers —
 * storvsc-netvsc.md §9 (NVSP messages, versions), §10 (initialization),
 * §11.1 (transmit), §11.2 (receive indications and their completions),
 * §12 (subchannels, send indirection table), §13 (RNDIS), §13.8 (Linux's
 * RNDIS bring-up).
 *
 * probe (Linux `netvsc_probe` → `rndis_filter_device_add`):
 * 1. open the primary channel (128-page rings each way by default);
 * 2. NVSP INIT with min = max = v for v in 6.1, 6, 5, 4, 2, 1 until
 *    INIT_COMPLETE says SUCCESS; SEND_NDIS_CONFIG (v ≥ 2) and SEND_NDIS_VER
 *    without completion; the receive buffer (GPADL, SEND_RECV_BUF id 0xCAFE,
 *    Linux's checks on the one section) and the send buffer (GPADL,
 *    SEND_SEND_BUF id 0, section size from the host);
 * 3. RNDIS in §13.8's order: INITIALIZE, MAXIMUM_FRAME_SIZE, PERMANENT_ADDRESS,
 *    FRIENDLY_NAME (optional), TCP_OFFLOAD_HARDWARE_CAPABILITIES, SET
 *    TCP_OFFLOAD_PARAMETERS, MEDIA_CONNECT_STATUS, LINK_SPEED (v ≥ 5),
 *    RECEIVE_SCALE_CAPABILITIES;
 * 4. subchannels (v ≥ 5, ≥ 2 queues): NVSP SUBCHANNEL ALLOCATE n − 1, open
 *    each offer, default send table, RSS parameters twice (disable, enable);
 * 5. "ifup": SET CURRENT_PACKET_FILTER 0x0D. Linux does that when the
 *    interface is brought up; a simulated NIC is up once probed.
 *
 * Transmit (`netvsc_send`): a frame becomes an RNDIS PACKET. Frames handed
 * to `send` in the same virtual-time instant are queued and flushed
 * together (the simulation's `xmit_more`): small ones are copied into a
 * send-buffer section, several per section (each msg_len but the last
 * padded to the host's packet alignment, up to its max packets per
 * message), one NVSP SEND_RNDIS_PKT per section; a frame too large for a
 * section, or when no section is free, goes by page buffer from guest pages
 * allocated for it, the RNDIS header at offset 0 of the first page (one GPA
 * range, as the host requires). The host's completion (matched by request
 * id) frees the section or pages and resolves the caller's promise.
 * A queue stops when its outbound ring is below 10 % free, when its request
 * ids run out, or when a frame needs a page buffer and its page-buffer
 * budget is spent; it wakes from a completion once the ring is above 20 %
 * free (or nothing of that queue is in flight) and resources are back.
 *
 * Receive (`netvsc_receive`): a transfer-page packet (set id 0xCAFE) names
 * ranges of the receive buffer, each one RNDIS message. A range outside the
 * buffer or a message that fails §13.2's checks is dropped and counted, and
 * the completion says FAIL; PACKET → the frame to the listeners; a control
 * completion → the waiting request (by request id); INDICATE_STATUS → the
 * link state. The completion ({108, status}, 8 bytes, the packet's
 * transaction id) is written with `tryWrite`; the channel's drain publishes
 * all of them with one commit.
 */
import { inject, injectable } from "tsyringe";
import {
  CHANNEL_OPENED_STATE,
  HV_DEVICE,
  MAX_PAGE_BUFFER_COUNT,
  PAGE_SIZE,
  ProtocolError,
  SIMULATION,
  VMBUS_CHANNEL,
  VM_CONTEXT,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_XFER_PAGES,
  VMTRANSFER_PAGE_PACKET_HEADER as XFER,
  VmbusSimError,
  type Completion,
  type GuestChannel,
  type GuestMemory,
  type IncomingPacket,
  type PageBufferEntry,
  type RingWriter,
  type Simulation,
  type Timer,
  type VmContext,
  type VmbusDevice,
  type VmbusDriver,
} from "../../../core/index.js";
import {
  ETH_HLEN,
  LINUX_DEFAULT_PACKET_FILTER,
  NDIS_HASH_FUNC_TOEPLITZ,
  NDIS_HASH_IPV4,
  NDIS_HASH_IPV6,
  NDIS_HASH_TCP_IPV4,
  NDIS_HASH_TCP_IPV6,
  NDIS_MEDIA_STATE_CONNECTED,
  NDIS_OBJECT_TYPE_OFFLOAD,
  NDIS_OFFLOAD_PARAMETERS_REVISION_1,
  NDIS_OFFLOAD_PARAMETERS_REVISION_2,
  NDIS_OFFLOAD_PARAMETERS_REVISION_3,
  NDIS_OFFLOAD_PARAMETERS_SIZE,
  NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
  NDIS_RECV_SCALE_CAP_SIZE,
  NDIS_RSS_PARAM_FLAG_DISABLE_RSS,
  NDIS_OBJECT_TYPE_RSS_CAPABILITIES,
  NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2,
  NETVSC_INVALID_INDEX,
  NETVSC_RECEIVE_BUFFER_ID,
  NETVSC_SEND_BUFFER_ID,
  NVSP_MESSAGE_SIZE,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_4,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_RECV_COMPLETION_SIZE,
  NVSP_RNDIS_CHANNEL_TYPE_CONTROL,
  NVSP_RNDIS_CHANNEL_TYPE_DATA,
  NVSP_STAT_FAIL,
  NVSP_STAT_SUCCESS,
  NVSP_SUBCHANNEL_ALLOCATE,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_LINK_SPEED,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_LINUX_MAX_XFER_SIZE,
  RNDIS_MAJOR_VERSION,
  RNDIS_MAX_PKT_DEFAULT,
  RNDIS_MINOR_VERSION,
  RNDIS_PACKET_MESSAGE_SIZE,
  RNDIS_PKT_ALIGN_DEFAULT,
  RNDIS_STATUS_LINK_SPEED_CHANGE,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  RNDIS_STATUS_NETWORK_CHANGE,
  RNDIS_STATUS_SUCCESS,
  VERSION_4_OFFLOAD_SIZE,
  VRSS_CHANNEL_MAX,
  VRSS_SEND_TAB_SIZE,
  checkLinuxRecvBufComplete,
  checkLinuxSendBufComplete,
  decodeFriendlyName,
  decodeMacInfo,
  decodeNdisOffload,
  decodeNdisRecvScaleCap,
  decodeNvspMessage,
  decodeRndisMessage,
  decodeU32Info,
  defaultIndirectionTable,
  emptyNdisOffloadParams,
  encodeNdisObjectHeaderInto,
  encodeNdisOffloadParams,
  encodeNdisRecvScaleParam,
  encodeNvspMessage,
  encodeRndisMessageInto,
  formatMac,
  formatNvspVersion,
  hashValuePpi,
  linuxNdisConfigCapabilities,
  linuxNdisVersion,
  NETVSC_RECEIVE_BUFFER_SIZE_LEGACY,
  ndisOffloadSize,
  netvscDefaultHashKey,
  oidName,
  rndisEncodedLength,
  rndisMessageTypeName,
  type NdisOffload,
  type NvspMessage,
  type RndisMessage,
  type RndisPacketMessage,
  type RndisPpi,
} from "../protocol/index.js";
import {
  NETVSC_CONFIG,
  NETVSC_MAX_PAGEBUF_INFLIGHT,
  NETVSC_MAX_PKT_SIZE,
  NETVSC_NETWORK_CHANGE_DELAY_NS,
  RING_AVAIL_PERCENT_HIWATER,
  RING_AVAIL_PERCENT_LOWATER,
  netvscRequestorSize,
  netvscVersionOrder,
  resolveNetvscConfig,
  type NetvscConfig,
  type ResolvedNetvscConfig,
} from "./config.js";
import { FrameArena } from "../protocol/frame-arena.js";
import { RndisPacketScan, rndisPacketLength, scanRndisPacket, writeRndisPacketInto } from "../protocol/rndis-fast.js";
import { NetvscFrameError, NetvscHandshakeError, NetvscRemovedError, NetvscSendError, NetvscTimeoutError } from "./errors.js";
import { SendSectionPool, defaultSendTable, flowHash } from "./send-path.js";

/** Per-direction counters of the network device (Linux `netvsc_stats_tx/rx` + `rtnl_link_stats64` drops). */
export interface NicDirectionStats {
  packets: number;
  bytes: number;
  drops: number;
}

export interface NicStats {
  readonly tx: NicDirectionStats;
  readonly rx: NicDirectionStats;
}

/** The frame API of a synthetic NIC. */
export interface Nic {
  /** "00:15:5d:…" as the host's PERMANENT_ADDRESS said. */
  readonly mac: string;
  readonly macBytes: Uint8Array;
  /** Interface MTU (payload bytes; a frame may carry 14 more, 18 when VLAN-tagged). */
  readonly mtu: number;
  readonly linkUp: boolean;
  readonly stats: NicStats;
  /** Sends one Ethernet frame (without FCS). Resolves when the host completed it. */
  send(frame: Uint8Array): Promise<void>;
  /** Calls `cb` with every received frame (a private copy); returns the unsubscribe function. */
  onReceive(cb: (frame: Uint8Array) => void): () => void;
  /** Calls `cb` when the link goes up or down; returns the unsubscribe function. */
  onLinkChange(cb: (up: boolean) => void): () => void;
}

/** Driver counters beyond the NIC statistics (what Linux's ethtool -S shows, roughly). */
export class NetvscDriverStats {
  /** SEND_RNDIS_PKT messages naming a send-buffer section. */
  sectionSends = 0;
  /** Frames that shared a section with an earlier one (batched). */
  batchedFrames = 0;
  /** SEND_RNDIS_PKT messages sent by page buffer (data). */
  pageBufferSends = 0;
  /** Transmit queue stops / wakes, all queues. */
  queueStops = 0;
  queueWakes = 0;
  /** Transfer-page packets handled. */
  rxIndications = 0;
  /** Receive completions written. */
  rxCompletions = 0;
  /** Ranges or RNDIS messages dropped as malformed (§11.2, §13.2). */
  rxMalformed = 0;
  /** Inband or transfer-page packets dropped whole (wrong NVSP type, page set id, header). */
  droppedPackets = 0;
  /** Control completions whose request id matched nothing. */
  unmatchedControl = 0;
  /** INDICATE_STATUS messages. */
  statusIndications = 0;
  /** SEND_INDIRECTION_TABLE messages applied. */
  sendTableUpdates = 0;
}

/** A frame waiting in, or sent from, a transmit queue. */
interface TxFrame {
  readonly frame: Uint8Array;
  readonly hash: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** One transmit queue: a channel (primary = queue 0, subchannel i = queue i). */
export class NetvscQueue {
  readonly pending: TxFrame[] = [];
  stopped = false;
  stops = 0;
  wakes = 0;
  /**
   * Outbound ring free percent and sends in flight when the queue last woke
   * (−1 / 0 before any wake): the only record of which side of the 20 %
   * mark the wake rule saw, since the flush that follows fills the ring again.
   */
  lastWakeFreePercent = -1;
  lastWakeInFlight = 0;
  /** SEND_RNDIS_PKT of this queue not yet completed. */
  inFlight = 0;
  pageBuffersInFlight = 0;
  flushScheduled = false;
  /** @internal The flush of this instant's frames; one reusable event per queue (armed only while `flushScheduled` is false). */
  flushTimer: Timer | null = null;
  /** @internal Frames of `pending` a running flush has taken; removed from `pending` in one go when it returns. */
  taken = 0;

  constructor(
    readonly index: number,
    readonly channel: GuestChannel,
  ) {}

  /** Free space of the outbound ring in percent (Linux `hv_get_avail_to_write_percent`). */
  get ringFreePercent(): number {
    return this.channel.outbound?.availToWritePercent() ?? 0;
  }
}

/**
 * One SEND_RNDIS_PKT in flight: its frames and what to give back when the
 * host completes it. A section's send is reused for every SEND_RNDIS_PKT that
 * names that section: the section (and so this object) is owned by at most
 * one packet at a time, from `SendSectionPool.alloc` until its completion
 * released it, and the completion handler is done with the frames before it
 * releases the section.
 */
class TxSend {
  readonly frames: TxFrame[] = [];
  queue: NetvscQueue | null = null;
  /** The send-buffer section, or −1 for a page-buffer send. */
  readonly section: number;
  /** The guest pages of a page-buffer send. */
  pfns: number[] | null = null;
  /** The NVSP SEND_RNDIS_PKT of a section send: written when the section is filled, read by the ring writer (at once, or when a full ring frees up — still before the completion). */
  readonly nvsp = new Uint8Array(NVSP_MESSAGE_SIZE);
  readonly onCompleted: (c: Completion) => void;
  readonly onFailed: (e: unknown) => void;

  constructor(driver: NetvscDriver, section = -1) {
    this.section = section;
    if (section >= 0) {
      setU32(this.nvsp, 0, NVSP_MSG1_TYPE_SEND_RNDIS_PKT);
      setU32(this.nvsp, 4, NVSP_RNDIS_CHANNEL_TYPE_DATA);
      setU32(this.nvsp, 8, section);
    }
    this.onCompleted = (c) => driver.txCompleted(this, sendCompletionStatus(c.data), null);
    this.onFailed = (e) => driver.txCompleted(this, -1, e);
  }
}

/** An RNDIS control request waiting for its completion. */
interface PendingControl {
  readonly expect: RndisMessage["kind"];
  readonly what: string;
  readonly resolve: (m: RndisMessage) => void;
  readonly reject: (e: unknown) => void;
}

@injectable()
export class NetvscDriver implements VmbusDriver, Nic {
  readonly config: ResolvedNetvscConfig;
  readonly driverStats = new NetvscDriverStats();
  readonly stats: NicStats = { tx: { packets: 0, bytes: 0, drops: 0 }, rx: { packets: 0, bytes: 0, drops: 0 } };
  /** Negotiated NVSP version; 0 before INIT_COMPLETE. */
  nvspVersion = 0;
  /** Every INIT sent, with the status the host answered. */
  readonly versionAttempts: { readonly version: number; readonly status: number }[] = [];
  macBytes: Uint8Array = new Uint8Array(6);
  mtu: number;
  linkUp = false;
  /** Link speed in bps (OID_GEN_LINK_SPEED × 100), 0 if unknown. */
  linkSpeedBps = 0;
  friendlyName: string | null = null;
  /** The host's hardware offload capabilities (TCP_OFFLOAD_HARDWARE_CAPABILITIES). */
  offloadCaps: NdisOffload | null = null;
  /** Queues the host's RSS capabilities allow (1 if it has none). */
  rssQueues = 1;
  /** Subchannels asked for with NVSP SUBCHANNEL, and granted. */
  subchannelsRequested = 0;
  subchannelsGranted = 0;
  readonly subchannelErrors: unknown[] = [];
  /** Receive buffer: the host's one section (sub-allocation size and count). */
  recvSubAllocSize = 0;
  recvSubAllocCount = 0;
  /** Send buffer section size (6144 from Hyper-V) and count. */
  sendSectionSize = 0;
  sendSectionCount = 0;
  /** From RNDIS INITIALIZE_CMPLT: packets per message (batching limit) and alignment. */
  maxPacketsPerMessage = RNDIS_MAX_PKT_DEFAULT;
  packetAlignment = RNDIS_PKT_ALIGN_DEFAULT;
  packetFilter = 0;
  /** `tx_table`: queue per (hash & 15). */
  sendTable: number[] = defaultSendTable(1);
  readonly queues: NetvscQueue[] = [];

  private readonly memory: GuestMemory;
  private readonly requestorSize: number;
  private recvFirstPfn = -1;
  private recvPages = 0;
  private recvGpadl = 0;
  private sendFirstPfn = -1;
  private sendPages = 0;
  private sendGpadl = 0;
  private sections: SendSectionPool | null = null;
  private nextRequestId = 1;
  private readonly control = new Map<number, PendingControl>();
  private readonly rxListeners = new Set<(frame: Uint8Array) => void>();
  /** `rxListeners` as an array, rebuilt after a change: delivery walks a snapshot, as it did with a copy per frame. */
  private rxListenerList: readonly ((frame: Uint8Array) => void)[] = [];
  private readonly linkListeners = new Set<(up: boolean) => void>();
  private removedReason: string | null = null;
  private ready = false;
  /** One reusable send per send-buffer section (see TxSend). */
  private sectionSends: TxSend[] = [];
  private readonly rxScan = new RndisPacketScan();
  /** Where queued transmit frames and received messages are copied (see FrameArena). */
  private readonly txCopies = new FrameArena();
  private readonly rxCopies = new FrameArena();
  /** The ranges of the transfer-page packet being handled, copied out of it first (byte count, offset pairs). */
  private rxRanges = new Uint32Array(2 * 64);
  /** The receive completion being written by `writeRxCompletion` (set just before the synchronous `tryWrite`). */
  private rxCompletionId: number | bigint = 0;
  private rxCompletionPayload: Uint8Array = RECV_COMPLETION_SUCCESS;
  private readonly writeRxCompletion = (w: RingWriter): boolean => w.writeCompletion(this.rxCompletionId, this.rxCompletionPayload);

  constructor(
    @inject(HV_DEVICE) readonly device: VmbusDevice,
    @inject(VMBUS_CHANNEL) readonly channel: GuestChannel,
    @inject(VM_CONTEXT) readonly vm: VmContext,
    @inject(SIMULATION) readonly sim: Simulation,
    @inject(NETVSC_CONFIG, { isOptional: true }) config?: NetvscConfig,
  ) {
    this.config = resolveNetvscConfig(config);
    this.memory = vm.partition.memory;
    this.mtu = this.config.mtu;
    this.requestorSize = netvscRequestorSize(this.config.ringPages * PAGE_SIZE);
  }

  /** "vm1 netvsc <instance>": names the NIC in errors. */
  get nicName(): string {
    return `${this.vm.name} netvsc ${this.device.name}`;
  }

  get mac(): string {
    return formatMac(this.macBytes);
  }

  get removed(): boolean {
    return this.removedReason !== null;
  }

  /** GPA of the receive buffer (for tests and dumps). */
  get recvBufferGpa(): number {
    return this.recvFirstPfn * PAGE_SIZE;
  }

  get sendBufferGpa(): number {
    return this.sendFirstPfn * PAGE_SIZE;
  }

  onReceive(cb: (frame: Uint8Array) => void): () => void {
    this.rxListeners.add(cb);
    this.rxListenerList = [...this.rxListeners];
    return () => {
      const removed = this.rxListeners.delete(cb);
      this.rxListenerList = [...this.rxListeners];
      return removed;
    };
  }

  onLinkChange(cb: (up: boolean) => void): () => void {
    this.linkListeners.add(cb);
    return () => this.linkListeners.delete(cb);
  }

  // ---- probe / remove --------------------------------------------------------------

  async probe(): Promise<void> {
    try {
      await this.channel.open(this.openOptions());
      this.queues.push(this.newQueue(0, this.channel));
      await this.connectVsp();
      await this.rndisDeviceAdd();
      await this.openSubchannels();
      // ifup (`rndis_filter_open`): directed | all-multicast | broadcast.
      await this.setPacketFilter(LINUX_DEFAULT_PACKET_FILTER);
      this.ready = true;
    } catch (e) {
      await this.shutdown(`the probe failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  async remove(): Promise<void> {
    await this.shutdown("the netvsc driver was removed");
  }

  private newQueue(index: number, channel: GuestChannel): NetvscQueue {
    const q = new NetvscQueue(index, channel);
    q.flushTimer = this.sim.scheduler.timer(`${this.nicName} tx queue ${index} flush`, () => this.flush(q));
    return q;
  }

  private openOptions() {
    const ringBytes = this.config.ringPages * PAGE_SIZE;
    return {
      sendRingBytes: ringBytes,
      recvRingBytes: ringBytes,
      maxPacketSize: NETVSC_MAX_PKT_SIZE,
      requestorSize: this.requestorSize,
      onPacket: (p: IncomingPacket, ch: GuestChannel) => this.onHostPacket(p, ch),
    };
  }

  // ---- NVSP initialization (§10) -----------------------------------------------------

  /** `netvsc_connect_vsp`: version, NDIS config and version, receive and send buffers. */
  private async connectVsp(): Promise<void> {
    for (const version of netvscVersionOrder(this.config.maxVersion)) {
      const reply = await this.nvspRequest({ kind: "init", minProtocolVersion: version, maxProtocolVersion: version }, "INIT");
      const status = reply.kind === "init_complete" ? reply.status : -1;
      this.versionAttempts.push({ version, status });
      if (status === NVSP_STAT_SUCCESS) {
        this.nvspVersion = version;
        break;
      }
    }
    if (this.nvspVersion === 0) {
      throw new NetvscHandshakeError(
        "NVSP INIT",
        "versions offered",
        this.versionAttempts.map((a) => formatNvspVersion(a.version)).join(", "),
        "were all refused by the host",
      );
    }
    const v = this.nvspVersion;
    // Neither of these asks for a completion (Linux, DPDK).
    if (v >= NVSP_PROTOCOL_VERSION_2) {
      await this.channel.sendPacket(encodeNvspMessage({ kind: "send_ndis_config", mtu: this.mtu + ETH_HLEN, reserved: 0, capability: linuxNdisConfigCapabilities(v) }));
    }
    const ndis = linuxNdisVersion(v);
    await this.channel.sendPacket(encodeNvspMessage({ kind: "send_ndis_ver", ndisMajorVersion: ndis.major, ndisMinorVersion: ndis.minor }));

    // Receive buffer: contiguous guest pages, so a range is one subarray.
    // Hosts speaking NVSP v1/v2 take at most 15 MiB (Linux netvsc_init_buf:
    // NETVSC_RECEIVE_BUFFER_SIZE_LEGACY); a larger GPADL is what an old host
    // would refuse, so the configured size is capped, not rejected.
    const recvBytes = v <= NVSP_PROTOCOL_VERSION_2 ? Math.min(this.config.recvBufferBytes, NETVSC_RECEIVE_BUFFER_SIZE_LEGACY) : this.config.recvBufferBytes;
    this.recvPages = recvBytes / PAGE_SIZE;
    this.recvFirstPfn = this.memory.allocContiguous(this.recvPages);
    this.recvGpadl = await this.channel.createGpadl(pfnRange(this.recvFirstPfn, this.recvPages), recvBytes);
    const rb = await this.nvspRequest({ kind: "send_recv_buf", gpadlHandle: this.recvGpadl, id: NETVSC_RECEIVE_BUFFER_ID }, "SEND_RECV_BUF");
    const section = this.checked("SEND_RECV_BUF_COMPLETE", () => checkLinuxRecvBufComplete(rb, recvBytes));
    this.recvSubAllocSize = section.subAllocSize;
    this.recvSubAllocCount = section.numSubAllocs;

    const sendBytes = this.config.sendBufferBytes;
    this.sendPages = sendBytes / PAGE_SIZE;
    this.sendFirstPfn = this.memory.allocContiguous(this.sendPages);
    this.sendGpadl = await this.channel.createGpadl(pfnRange(this.sendFirstPfn, this.sendPages), sendBytes);
    const sb = await this.nvspRequest({ kind: "send_send_buf", gpadlHandle: this.sendGpadl, id: NETVSC_SEND_BUFFER_ID }, "SEND_SEND_BUF");
    this.sendSectionSize = this.checked("SEND_SEND_BUF_COMPLETE", () => checkLinuxSendBufComplete(sb));
    this.sendSectionCount = Math.floor(sendBytes / this.sendSectionSize);
    if (this.sendSectionCount === 0) {
      throw new NetvscHandshakeError("SEND_SEND_BUF_COMPLETE", "section_size", this.sendSectionSize, `leaves no section in the ${sendBytes}-byte send buffer`);
    }
    this.sections = new SendSectionPool(this.sendSectionCount);
    this.sectionSends = Array.from({ length: this.sendSectionCount }, (_, index) => new TxSend(this, index));
  }

  /** Turns a codec's ProtocolError on a host answer into a handshake error naming the step. */
  private checked<T>(step: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ProtocolError) throw new NetvscHandshakeError(step, e.field, String(e.value), e.limit);
      throw e;
    }
  }

  /** One NVSP request with completion on the primary, waited for `requestTimeoutNs`, decoded as a host message. */
  private async nvspRequest(msg: NvspMessage, what: string, ch: GuestChannel = this.channel): Promise<NvspMessage> {
    const c = await this.withTimeout(ch.sendRequest(encodeNvspMessage(msg)), `NVSP ${what}`, ch.name);
    return this.checked(`NVSP ${what} completion`, () =>
      decodeNvspMessage(c.data, { sender: "host", ...(this.nvspVersion !== 0 ? { version: this.nvspVersion } : {}) }),
    );
  }

  // ---- RNDIS bring-up (§13.8) -----------------------------------------------------------

  /** `rndis_filter_device_add` up to (not including) the subchannels. */
  private async rndisDeviceAdd(): Promise<void> {
    const init = await this.rndisRequest(
      { kind: "initialize", requestId: 0, majorVersion: RNDIS_MAJOR_VERSION, minorVersion: RNDIS_MINOR_VERSION, maxTransferSize: RNDIS_LINUX_MAX_XFER_SIZE },
      "initialize_cmplt",
      "INITIALIZE",
    );
    if (init.kind === "initialize_cmplt") {
      this.requireSuccess("RNDIS INITIALIZE", init.status);
      // Linux keeps max_pkt and pkt_align for send batching.
      if (init.maxPacketsPerMessage > 0) this.maxPacketsPerMessage = init.maxPacketsPerMessage;
      if (init.packetAlignmentFactor <= 12) this.packetAlignment = Math.max(1, 2 ** init.packetAlignmentFactor);
    }

    // MAXIMUM_FRAME_SIZE lowers the MTU if the host's is smaller (a failure keeps ours).
    const mfs = await this.query(OID_GEN_MAXIMUM_FRAME_SIZE);
    if (mfs !== null && mfs.length >= 4) {
      const hostMtu = decodeU32Info(mfs, "MAXIMUM_FRAME_SIZE");
      if (hostMtu > 0 && hostMtu < this.mtu) this.mtu = hostMtu;
    }

    // The MAC: a failure aborts the device.
    const mac = await this.query(OID_802_3_PERMANENT_ADDRESS);
    if (mac === null) throw new NetvscHandshakeError("RNDIS QUERY 802_3_PERMANENT_ADDRESS", "status", "failure", "(the MAC is required)");
    this.macBytes = this.checked("RNDIS QUERY 802_3_PERMANENT_ADDRESS", () => decodeMacInfo(mac));

    // Optional; Linux ignores "Network Adapter".
    const name = await this.query(OID_GEN_FRIENDLY_NAME);
    if (name !== null) this.friendlyName = decodeFriendlyName(name);

    // Hardware offload capabilities: the input is an NDIS_OFFLOAD header of the version's revision.
    const v = this.nvspVersion;
    const revision = v >= NVSP_PROTOCOL_VERSION_5 ? NDIS_OFFLOAD_PARAMETERS_REVISION_3 : v >= NVSP_PROTOCOL_VERSION_4 ? NDIS_OFFLOAD_PARAMETERS_REVISION_2 : NDIS_OFFLOAD_PARAMETERS_REVISION_1;
    const capsIn = new Uint8Array(ndisOffloadSize(revision));
    encodeNdisObjectHeaderInto(capsIn, { type: NDIS_OBJECT_TYPE_OFFLOAD, revision, size: capsIn.length });
    const caps = await this.query(OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES, capsIn);
    if (caps === null) throw new NetvscHandshakeError("RNDIS QUERY TCP_OFFLOAD_HARDWARE_CAPABILITIES", "status", "failure", "(required)");
    this.offloadCaps = this.checked("RNDIS QUERY TCP_OFFLOAD_HARDWARE_CAPABILITIES", () => decodeNdisOffload(caps));

    // Offload parameters: must succeed. The simulated frames carry their own
    // checksums, so we ask for checksum offload the way Linux does (TX+RX for
    // what the host supports) but never rely on it.
    const size = v <= NVSP_PROTOCOL_VERSION_4 ? VERSION_4_OFFLOAD_SIZE : NDIS_OFFLOAD_PARAMETERS_SIZE;
    const base = emptyNdisOffloadParams(size);
    const on = NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED;
    const params = encodeNdisOffloadParams({
      ...base,
      ipV4Csum: on,
      tcpIpV4Csum: on,
      tcpIpV6Csum: on,
      // NVSP ≤ v4: no UDP checksum offload (Linux).
      udpIpV4Csum: v <= NVSP_PROTOCOL_VERSION_4 ? 0 : on,
      udpIpV6Csum: v <= NVSP_PROTOCOL_VERSION_4 ? 0 : on,
    });
    const set = await this.rndisSet(OID_TCP_OFFLOAD_PARAMETERS, params);
    this.requireSuccess("RNDIS SET TCP_OFFLOAD_PARAMETERS", set);

    const media = await this.query(OID_GEN_MEDIA_CONNECT_STATUS);
    if (media !== null && media.length >= 4) this.setLink(decodeU32Info(media, "MEDIA_CONNECT_STATUS") === NDIS_MEDIA_STATE_CONNECTED);

    if (v >= NVSP_PROTOCOL_VERSION_5) {
      const speed = await this.query(OID_GEN_LINK_SPEED);
      if (speed !== null && speed.length >= 4) this.linkSpeedBps = decodeU32Info(speed, "LINK_SPEED") * 100;
    }

    const rssIn = new Uint8Array(NDIS_RECV_SCALE_CAP_SIZE);
    encodeNdisObjectHeaderInto(rssIn, { type: NDIS_OBJECT_TYPE_RSS_CAPABILITIES, revision: NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2, size: NDIS_RECV_SCALE_CAP_SIZE });
    const rss = await this.query(OID_GEN_RECEIVE_SCALE_CAPABILITIES, rssIn);
    if (rss !== null) {
      try {
        this.rssQueues = Math.max(1, decodeNdisRecvScaleCap(rss).numRecvQue);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        this.rssQueues = 1;
      }
    }
  }

  private requireSuccess(step: string, status: number): void {
    if (status !== RNDIS_STATUS_SUCCESS) throw new NetvscHandshakeError(step, "status", status, "is not RNDIS_STATUS_SUCCESS (0)");
  }

  /** QUERY `oid`: the information buffer, or null when the host answered a failure status. */
  async query(oid: number, input: Uint8Array = new Uint8Array(0)): Promise<Uint8Array | null> {
    const reply = await this.rndisRequest({ kind: "query", requestId: 0, oid, deviceVcHandle: 0, info: input }, "query_cmplt", `QUERY ${oidName(oid)}`);
    if (reply.kind !== "query_cmplt" || reply.status !== RNDIS_STATUS_SUCCESS) return null;
    return reply.info;
  }

  /** SET `oid` = `value`: the status the host answered. */
  async rndisSet(oid: number, value: Uint8Array): Promise<number> {
    const reply = await this.rndisRequest({ kind: "set", requestId: 0, oid, deviceVcHandle: 0, info: value }, "set_cmplt", `SET ${oidName(oid)}`);
    return reply.kind === "set_cmplt" ? reply.status : -1;
  }

  /** `rndis_filter_set_packet_filter`. */
  async setPacketFilter(filter: number): Promise<void> {
    const status = await this.rndisSet(OID_GEN_CURRENT_PACKET_FILTER, u32Bytes(filter));
    this.requireSuccess("RNDIS SET CURRENT_PACKET_FILTER", status);
    this.packetFilter = filter;
  }

  /**
   * `rndis_filter_send_request`: the control message in one guest page (the
   * RNDIS header must be in one GPA range), SEND_RNDIS_PKT channel_type 1 by
   * page buffer on the primary; the answer arrives through the receive
   * buffer and is matched by request id. One timeout covers both.
   */
  private rndisRequest(msg: RndisMessage, expect: RndisMessage["kind"], what: string): Promise<RndisMessage> {
    if (this.removedReason !== null) return Promise.reject(new NetvscRemovedError(`RNDIS ${what}`, this.nicName, this.removedReason));
    const requestId = this.nextRequestId++;
    const withId = { ...msg, requestId } as RndisMessage;
    const length = rndisEncodedLength(withId);
    const pages = Math.ceil(length / PAGE_SIZE);
    return this.withTimeout(
      new Promise<RndisMessage>((resolve, reject) => {
        this.control.set(requestId, { expect, what, resolve, reject });
        const pfns = this.memory.allocScattered(pages);
        const sent = this.sendPageBuffer(this.channel, withId, pfns, NVSP_RNDIS_CHANNEL_TYPE_CONTROL);
        sent.then(
          () => this.memory.free(pfns),
          (e: unknown) => {
            this.memory.free(pfns);
            const p = this.control.get(requestId);
            if (p === undefined) return;
            this.control.delete(requestId);
            p.reject(e);
          },
        );
      }),
      `RNDIS ${what}`,
      this.channel.name,
    ).finally(() => this.control.delete(requestId));
  }

  // ---- subchannels (§12) -----------------------------------------------------------------

  /**
   * `rndis_set_subchannel` / `netvsc_sc_open`: num_chn = min(maxQueues,
   * VRSS_CHANNEL_MAX, vCPUs, RSS queues); ask for num_chn − 1, open each
   * offer with the primary's ring size, then the default send table and
   * the RSS parameters (disable, then enable). Failures leave the NIC on
   * fewer queues, as Linux.
   */
  private async openSubchannels(): Promise<void> {
    const numChn = Math.min(this.config.maxQueues, VRSS_CHANNEL_MAX, this.vm.partition.vcpus.length, this.rssQueues);
    if (this.nvspVersion < NVSP_PROTOCOL_VERSION_5 || numChn < 2) return;
    const n = numChn - 1;
    this.subchannelsRequested = n;
    const opens: Promise<void>[] = [];
    let offered = 0;
    let allOffered: () => void = () => undefined;
    const offers = new Promise<void>((resolve) => {
      allOffered = resolve;
    });
    let expected = n;
    // Set before the request: the offers may come before its completion.
    this.channel.onSubchannel = (sc) => {
      if (this.removed) return;
      offered++;
      opens.push(this.openSubchannel(sc));
      if (offered >= expected) allOffered();
    };
    try {
      const reply = await this.nvspRequest({ kind: "subchn_req", op: NVSP_SUBCHANNEL_ALLOCATE, numSubchannels: n }, "SUBCHANNEL");
      if (reply.kind !== "subchn_comp" || reply.status !== NVSP_STAT_SUCCESS) {
        throw new NetvscHandshakeError("NVSP SUBCHANNEL completion", "status", reply.kind === "subchn_comp" ? reply.status : reply.kind, "is not NVSP_STAT_SUCCESS (1)");
      }
      if (reply.numSubchannels > n) {
        throw new NetvscHandshakeError("NVSP SUBCHANNEL completion", "num_subchannels", reply.numSubchannels, `exceeds the ${n} requested`);
      }
      this.subchannelsGranted = reply.numSubchannels;
      expected = reply.numSubchannels;
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.subchannelErrors.push(e);
      return;
    }
    if (offered >= expected) allOffered();
    const timer = this.sim.scheduler.schedule(this.config.requestTimeoutNs, () => allOffered(), `${this.nicName} subchannel offers`);
    await offers;
    timer.cancel();
    if (offered < expected) this.subchannelErrors.push(new NetvscTimeoutError(`${expected} subchannel offers (got ${offered})`, this.channel.name, this.config.requestTimeoutNs));
    await Promise.all(opens);
    this.queues.sort((a, b) => a.index - b.index);
    const queues = this.queues.length;
    // Keep a table the host already sent; otherwise Linux's default.
    if (this.driverStats.sendTableUpdates === 0) this.sendTable = defaultSendTable(queues);
    if (queues < 2) return;
    const rss = (flags: number) =>
      encodeNdisRecvScaleParam({
        flags,
        hashInformation: NDIS_HASH_FUNC_TOEPLITZ | NDIS_HASH_IPV4 | NDIS_HASH_TCP_IPV4 | NDIS_HASH_IPV6 | NDIS_HASH_TCP_IPV6,
        indirectionTable: defaultIndirectionTable(queues),
        hashKey: netvscDefaultHashKey(),
      });
    // A failing RSS set is not fatal (Linux logs it).
    await this.rndisSet(OID_GEN_RECEIVE_SCALE_PARAMETERS, rss(NDIS_RSS_PARAM_FLAG_DISABLE_RSS));
    await this.rndisSet(OID_GEN_RECEIVE_SCALE_PARAMETERS, rss(0));
  }

  private async openSubchannel(sc: GuestChannel): Promise<void> {
    try {
      await sc.open(this.openOptions());
      if (this.removed) return;
      this.queues.push(this.newQueue(sc.subchannelIndex, sc));
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.subchannelErrors.push(e);
    }
  }

  // ---- transmit (§11.1) -------------------------------------------------------------------

  /** Largest frame: MTU + Ethernet header + a VLAN tag. */
  get maxFrameBytes(): number {
    return this.mtu + ETH_HLEN + 4;
  }

  send(frame: Uint8Array): Promise<void> {
    if (this.removedReason !== null) return Promise.reject(new NetvscRemovedError(`send of a ${frame.length}-byte frame`, this.nicName, this.removedReason));
    if (!this.ready) return Promise.reject(new NetvscRemovedError(`send of a ${frame.length}-byte frame`, this.nicName, "the NIC is not up yet"));
    if (frame.length < ETH_HLEN || frame.length > this.maxFrameBytes) {
      this.stats.tx.drops++;
      return Promise.reject(new NetvscFrameError(this.nicName, frame.length, `is outside ${ETH_HLEN}..${this.maxFrameBytes} (MTU ${this.mtu} + 14 + 4)`));
    }
    const hash = flowHash(frame);
    const q = this.pickQueue(hash);
    try {
      const copy = this.txCopies.copy(frame, 0, frame.length);
      const sent = new Promise<void>(this.takeSettlers);
      q.pending.push({ frame: copy, hash, resolve: this.takenResolve, reject: this.takenReject });
      if (!q.flushScheduled && !q.stopped) {
        // Everything sent in this instant goes out together.
        q.flushScheduled = true;
        (q.flushTimer as Timer).arm(0);
      }
      return sent;
    } catch (e) {
      // As from a promise executor: a failure here rejects, it does not throw.
      return Promise.reject(e);
    }
  }

  /** One executor for every `send` promise (no closure per frame): it hands its settle functions over to the caller, which takes them at once. */
  private takenResolve: () => void = noop;
  private takenReject: (e: unknown) => void = noop;
  private readonly takeSettlers = (resolve: () => void, reject: (e: unknown) => void): void => {
    this.takenResolve = resolve;
    this.takenReject = reject;
  };

  /** `netvsc_pick_tx`: tx_table[hash & 15]; an entry naming a queue we do not have falls back modulo. */
  private pickQueue(hash: number): NetvscQueue {
    const entry = this.sendTable[hash & (VRSS_SEND_TAB_SIZE - 1)] ?? 0;
    return this.queues[entry % this.queues.length] as NetvscQueue;
  }

  /** Sends what queue `q` holds, until it is empty or has to stop. */
  private flush(q: NetvscQueue): void {
    q.flushScheduled = false;
    const sections = this.sections;
    if (sections === null) return;
    try {
      this.flushFrom(q, sections);
    } finally {
      // Nothing outside this call sees `pending` while it runs (no listener or continuation runs inside it).
      if (q.taken > 0) {
        q.pending.splice(0, q.taken);
        q.taken = 0;
      }
    }
  }

  private flushFrom(q: NetvscQueue, sections: SendSectionPool): void {
    const pending = q.pending;
    while (q.taken < pending.length && this.removedReason === null) {
      if (q.ringFreePercent < RING_AVAIL_PERCENT_LOWATER || q.channel.outstanding >= this.requestorSize - 1) {
        this.stop(q);
        return;
      }
      const head = pending[q.taken] as TxFrame;
      const headLen = rndisPacketLength(head.frame.length, this.queues.length > 1);
      // Linux: copy into a section if packet + pkt_align < section size.
      if (headLen + this.packetAlignment < this.sendSectionSize) {
        const index = sections.alloc();
        if (index !== null) {
          this.sendSection(q, index);
          continue;
        }
      }
      if (q.pageBuffersInFlight >= NETVSC_MAX_PAGEBUF_INFLIGHT) {
        this.stop(q);
        return;
      }
      q.taken++;
      this.sendFramePageBuffer(q, head);
    }
  }

  private stop(q: NetvscQueue): void {
    if (q.stopped) return;
    q.stopped = true;
    q.stops++;
    this.driverStats.queueStops++;
  }

  /** `netvsc_send_tx_complete`'s wake rule: ring above 20 % free, or nothing of this queue in flight. */
  private maybeWake(q: NetvscQueue): void {
    if (!q.stopped || this.removedReason !== null) return;
    const free = q.ringFreePercent;
    if (free <= RING_AVAIL_PERCENT_HIWATER && q.inFlight > 0) return;
    const canSend = (this.sections?.available ?? 0) > 0 || q.pageBuffersInFlight < NETVSC_MAX_PAGEBUF_INFLIGHT;
    if (!canSend) return;
    q.stopped = false;
    q.wakes++;
    q.lastWakeFreePercent = free;
    q.lastWakeInFlight = q.inFlight;
    this.driverStats.queueWakes++;
    this.flush(q);
  }

  private packetMessage(f: TxFrame, messageLength?: number): RndisPacketMessage {
    // Linux adds the hash-value PPI when it has more than one queue.
    const ppis: RndisPpi[] = this.queues.length > 1 ? [hashValuePpi(f.hash)] : [];
    return messageLength === undefined ? { kind: "packet", data: f.frame, ppis } : { kind: "packet", data: f.frame, ppis, messageLength };
  }

  /**
   * `netvsc_copy_to_send_buf`: packs the head of the queue and as many
   * following frames as fit (≤ max packets per message) into section
   * `index`, every msg_len but the last padded to the packet alignment;
   * one SEND_RNDIS_PKT names the section and the bytes used.
   */
  private sendSection(q: NetvscQueue, index: number): void {
    const size = this.sendSectionSize;
    const align = this.packetAlignment;
    const withHash = this.queues.length > 1;
    const tx = this.sectionSends[index] as TxSend;
    const batch = tx.frames;
    let used = 0;
    const pending = q.pending;
    while (q.taken < pending.length && batch.length < this.maxPacketsPerMessage) {
      const f = pending[q.taken] as TxFrame;
      const len = rndisPacketLength(f.frame.length, withHash);
      if (len + align >= size) break;
      const start = alignUp(used, align);
      if (start + len > size) break;
      used = start + len;
      batch.push(f);
      q.taken++;
    }
    // Straight into the section in guest memory: the bytes the host reads are these.
    const base = this.sendBufferGpa + index * size;
    const mem = this.memory;
    let at = 0;
    for (let i = 0; i < batch.length; i++) {
      const f = batch[i] as TxFrame;
      const len = rndisPacketLength(f.frame.length, withHash);
      const padded = i === batch.length - 1 ? len : alignUp(len, align);
      writeRndisPacketInto(mem.view, mem.u8, base + at, padded, f.frame, 0, f.frame.length, withHash, f.hash);
      at += padded;
    }
    // NVSP SEND_RNDIS_PKT {data, index, bytes used} in Linux's 40-byte nvsp_message.
    setU32(tx.nvsp, 12, at);
    this.driverStats.sectionSends++;
    this.driverStats.batchedFrames += batch.length - 1;
    q.inFlight++;
    tx.queue = q;
    this.track(q.channel.sendRequest(tx.nvsp), tx);
  }

  /** A frame by page buffer (§11.1 page-buffer path): its own guest pages, freed on completion. */
  private sendFramePageBuffer(q: NetvscQueue, f: TxFrame): void {
    const msg = this.packetMessage(f);
    const pages = Math.ceil(rndisEncodedLength(msg) / PAGE_SIZE);
    let pfns: number[];
    try {
      pfns = this.memory.allocScattered(pages);
    } catch (e) {
      this.stats.tx.drops++;
      f.reject(e);
      return;
    }
    q.inFlight++;
    q.pageBuffersInFlight++;
    this.driverStats.pageBufferSends++;
    const tx = new TxSend(this);
    tx.frames.push(f);
    tx.queue = q;
    tx.pfns = pfns;
    this.track(this.sendPageBuffer(q.channel, msg, pfns, NVSP_RNDIS_CHANNEL_TYPE_DATA), tx);
  }

  /**
   * Writes `msg` into `pfns` (header at offset 0 of the first page) and sends
   * SEND_RNDIS_PKT {channel_type, no section} naming them: one page-buffer
   * entry per page, or — past the 32 entries a page buffer holds — one
   * multi-page range.
   */
  private sendPageBuffer(ch: GuestChannel, msg: RndisMessage, pfns: readonly number[], channelType: number): Promise<Completion> {
    const length = rndisEncodedLength(msg);
    const bytes = new Uint8Array(length);
    encodeRndisMessageInto(msg, bytes, 0);
    const entries: PageBufferEntry[] = [];
    for (let off = 0, i = 0; off < length; off += PAGE_SIZE, i++) {
      const pfn = pfns[i] as number;
      const n = Math.min(PAGE_SIZE, length - off);
      this.memory.u8.set(bytes.subarray(off, off + n), pfn * PAGE_SIZE);
      entries.push({ pfn, offset: 0, len: n });
    }
    const nvsp = encodeNvspMessage({ kind: "send_rndis_pkt", channelType, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 });
    try {
      if (entries.length <= MAX_PAGE_BUFFER_COUNT) return ch.sendPacketPageBuffer(entries, nvsp);
      return ch.sendPacketMpbDesc([{ byteCount: length, byteOffset: 0, pfns }], nvsp);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Settles the frames of one SEND_RNDIS_PKT when its completion (or failure) arrives. */
  private track(sent: Promise<Completion>, tx: TxSend): void {
    sent.then(tx.onCompleted, tx.onFailed);
  }

  /**
   * @internal The host completed `tx` with `status`, or it failed with
   * `error` (status −1): its frames settle, then its section or pages are
   * given back and the queue may wake. A throw here is a simulator bug; it
   * surfaces in the run.
   */
  txCompleted(tx: TxSend, status: number, error: unknown): void {
    const q = tx.queue as NetvscQueue;
    try {
      try {
        const frames = tx.frames;
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i] as TxFrame;
          if (status === -1) {
            this.stats.tx.drops++;
            f.reject(this.removedReason !== null ? new NetvscRemovedError(`send of a ${f.frame.length}-byte frame`, this.nicName, `${this.removedReason} (${errorText(error)})`) : error);
          } else if (status === NVSP_STAT_SUCCESS) {
            this.stats.tx.packets++;
            this.stats.tx.bytes += f.frame.length;
            f.resolve();
          } else {
            this.stats.tx.drops++;
            f.reject(new NetvscSendError(this.nicName, status));
          }
        }
      } finally {
        // The section's next send reuses these; drop the frames first.
        tx.frames.length = 0;
        tx.queue = null;
        q.inFlight--;
        if (tx.section >= 0) {
          this.sections?.release(tx.section);
        } else {
          q.pageBuffersInFlight--;
          this.memory.free(tx.pfns as number[]);
        }
        this.maybeWake(q);
      }
    } catch (e) {
      this.sim.scheduler.reportError(`${this.nicName} transmit completion`, e);
    }
  }

  // ---- receive (§11.2) ----------------------------------------------------------------------

  private onHostPacket(p: IncomingPacket, ch: GuestChannel): void {
    if (p.type === VM_PKT_DATA_USING_XFER_PAGES) {
      this.onReceiveIndication(p, ch);
      return;
    }
    if (p.type === VM_PKT_DATA_INBAND) {
      this.onInband(p);
      return;
    }
    // A stray completion (its id named nothing) or an unknown type: dropped, as Linux.
    if (p.type !== VM_PKT_COMP) this.driverStats.droppedPackets++;
  }

  /** Host → guest inband NVSP: SEND_INDIRECTION_TABLE updates `tx_table`; the rest is ignored (counted). */
  private onInband(p: IncomingPacket): void {
    const data = p.data();
    if (data.length < 4 || p.view.getUint32(p.dataOffset, true) !== NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE) {
      this.driverStats.droppedPackets++;
      return;
    }
    try {
      const msg = decodeNvspMessage(data, { sender: "host", version: this.nvspVersion, linuxSendTableOffsetFix: true });
      // Linux: "Received wrong send-table size" for anything but 16 entries.
      if (msg.kind !== "send_table" || msg.table.length !== VRSS_SEND_TAB_SIZE) {
        this.driverStats.droppedPackets++;
        return;
      }
      this.sendTable = [...msg.table];
      this.driverStats.sendTableUpdates++;
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.driverStats.droppedPackets++;
    }
  }

  /**
   * `netvsc_receive`: checks the NVSP message and the transfer-page header,
   * processes each range as one RNDIS message, then completes the packet
   * (status FAIL if any range was bad). Headers that are wrong as a whole
   * drop the packet without a completion, as Linux does.
   */
  private onReceiveIndication(p: IncomingPacket, ch: GuestChannel): void {
    const v = p.view;
    const hdrEnd = p.dataOffset;
    if (p.length - hdrEnd < 4 || v.getUint32(hdrEnd, true) !== NVSP_MSG1_TYPE_SEND_RNDIS_PKT) {
      this.driverStats.droppedPackets++;
      return;
    }
    // The transfer-page header (`decodeXferPages`' rules): a range count the
    // header cannot hold, or another page set, drops the packet.
    if (hdrEnd < XFER.ranges) {
      this.driverStats.droppedPackets++;
      return;
    }
    const n = v.getUint32(XFER.range_cnt, true);
    if (n > Math.floor((hdrEnd - XFER.ranges) / XFER.RANGE_SIZE) || n > MAX_XFER_RANGES || v.getUint16(XFER.xfer_pageset_id, true) !== NETVSC_RECEIVE_BUFFER_ID) {
      this.driverStats.droppedPackets++;
      return;
    }
    // All ranges out of the packet before any is handled: listeners run in between.
    if (this.rxRanges.length < 2 * n) this.rxRanges = new Uint32Array(2 * n);
    const ranges = this.rxRanges;
    for (let i = 0; i < n; i++) {
      const o = XFER.ranges + i * XFER.RANGE_SIZE;
      ranges[2 * i] = v.getUint32(o, true);
      ranges[2 * i + 1] = v.getUint32(o + 4, true);
    }
    this.driverStats.rxIndications++;
    const transId = p.transIdHi < 0x200000 ? p.transIdNumber : p.transId;
    let status = NVSP_STAT_SUCCESS;
    const bufferBytes = this.recvPages * PAGE_SIZE;
    for (let i = 0; i < n; i++) {
      const byteCount = ranges[2 * i] as number;
      const byteOffset = ranges[2 * i + 1] as number;
      // A range outside the buffer would read memory the host never wrote for us.
      if (this.recvFirstPfn < 0 || byteCount > bufferBytes || byteOffset > bufferBytes - byteCount) {
        this.driverStats.rxMalformed++;
        this.stats.rx.drops++;
        status = NVSP_STAT_FAIL;
        continue;
      }
      if (!this.onReceiveRange(this.recvBufferGpa + byteOffset, byteCount)) status = NVSP_STAT_FAIL;
    }
    this.completeReceive(ch, transId, status);
  }

  /** `send_recv_completions`: {108, status} (8 bytes) with the transfer packet's id, batched into the drain's one commit. */
  private completeReceive(ch: GuestChannel, transId: number | bigint, status: number): void {
    const payload = status === NVSP_STAT_SUCCESS ? RECV_COMPLETION_SUCCESS : status === NVSP_STAT_FAIL ? RECV_COMPLETION_FAIL : recvCompletion(status);
    this.driverStats.rxCompletions++;
    const ep = ch.endpoint;
    try {
      if (ep !== null) {
        this.rxCompletionId = transId;
        this.rxCompletionPayload = payload;
        if (ep.tryWrite(this.writeRxCompletion)) return;
      }
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      return;
    }
    // Ring full (or senders waiting): queue it behind them, in order.
    ch.sendCompletion(transId, payload).catch(() => undefined);
  }

  /**
   * One range of the receive buffer (inside it, checked): a PACKET is
   * copied, checked and delivered here; any other message, or a PACKET the
   * checks refuse, goes through the full decoder, which gives the verdict.
   */
  private onReceiveRange(gpa: number, byteCount: number): boolean {
    const u8 = this.memory.u8;
    if (byteCount > RX_COPY_MAX) return this.onRndisMessage(u8.subarray(gpa, gpa + byteCount));
    // The host may rewrite its buffer at any time: the message is copied
    // once, checked and read only in the copy, and the frame a listener gets
    // is a view of the copy's frame bytes (nothing writes them again).
    const arena = this.rxCopies;
    const at = arena.reserve(byteCount);
    arena.bytes.set(u8.subarray(gpa, gpa + byteCount), at);
    const scan = this.rxScan;
    if (!scanRndisPacket(arena.dataView, at, byteCount, scan)) {
      arena.unreserve(at);
      return this.onRndisMessage(u8.subarray(gpa, gpa + byteCount));
    }
    // A valid PACKET after removal is dropped, uncounted, as `deliver` does.
    if (this.removedReason !== null) {
      arena.unreserve(at);
      return true;
    }
    this.deliver(arena.view(scan.dataStart, scan.dataLength));
    return true;
  }

  /** One RNDIS message of the receive buffer; false when it was dropped as malformed. */
  private onRndisMessage(bytes: Uint8Array): boolean {
    let msg: RndisMessage;
    try {
      msg = decodeRndisMessage(bytes);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.driverStats.rxMalformed++;
      this.stats.rx.drops++;
      return false;
    }
    switch (msg.kind) {
      case "packet":
        this.deliver(msg.data);
        return true;
      case "indicate_status":
        this.onStatus(msg.status, msg.payload);
        return true;
      case "initialize_cmplt":
      case "query_cmplt":
      case "set_cmplt":
      case "keepalive_cmplt":
      case "set_ex_cmplt": {
        const pending = this.control.get(msg.requestId);
        if (pending === undefined) {
          this.driverStats.unmatchedControl++;
          return true;
        }
        this.control.delete(msg.requestId);
        if (pending.expect !== msg.kind) {
          pending.reject(new NetvscHandshakeError(`RNDIS ${pending.what}`, "completion", rndisMessageTypeName(bytesType(bytes)), `does not answer it (expected ${pending.expect})`));
        } else {
          pending.resolve(msg);
        }
        return true;
      }
      default:
        // A request type from the host, or RESET_CMPLT (we never reset): Linux logs and drops.
        this.driverStats.droppedPackets++;
        return true;
    }
  }

  private deliver(frame: Uint8Array): void {
    if (this.removedReason !== null) return;
    this.stats.rx.packets++;
    this.stats.rx.bytes += frame.length;
    // A snapshot: listeners added or removed by a listener take effect from the next frame.
    const listeners = this.rxListenerList;
    for (let i = 0; i < listeners.length; i++) {
      const l = listeners[i] as (frame: Uint8Array) => void;
      try {
        l(frame);
      } catch (e) {
        // A listener's bug must not break the receive path; it surfaces in the run.
        this.sim.scheduler.reportError(`${this.nicName} onReceive listener`, e);
      }
    }
  }

  /** `rndis_filter_receive_status` / `netvsc_linkstatus_callback`. */
  private onStatus(status: number, payload: Uint8Array): void {
    this.driverStats.statusIndications++;
    switch (status) {
      case RNDIS_STATUS_MEDIA_CONNECT:
        this.setLink(true);
        return;
      case RNDIS_STATUS_MEDIA_DISCONNECT:
        this.setLink(false);
        return;
      case RNDIS_STATUS_LINK_SPEED_CHANGE:
        if (payload.length >= 4) this.linkSpeedBps = decodeU32Info(payload, "LINK_SPEED_CHANGE") * 100;
        return;
      case RNDIS_STATUS_NETWORK_CHANGE:
        // Carrier off, then on 2 s later, so that DHCP renews.
        this.setLink(false);
        this.sim.scheduler.schedule(NETVSC_NETWORK_CHANGE_DELAY_NS, () => {
          if (this.removedReason === null) this.setLink(true);
        }, `${this.nicName} network change`);
        return;
      default:
        return;
    }
  }

  private setLink(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    for (const l of [...this.linkListeners]) {
      try {
        l(up);
      } catch (e) {
        this.sim.scheduler.reportError(`${this.nicName} onLinkChange listener`, e);
      }
    }
  }

  // ---- shutdown ---------------------------------------------------------------------------

  /**
   * remove, or a failed probe (`netvsc_remove` → `rndis_filter_device_remove`):
   * queued frames and pending RNDIS requests fail now, in-flight sends when
   * the channel closes; HALT (no reply), REVOKE_RECV_BUF / REVOKE_SEND_BUF
   * (no completion), GPADL teardown, close, free the buffers.
   */
  private async shutdown(reason: string): Promise<void> {
    if (this.removedReason !== null) return;
    this.removedReason = reason;
    this.ready = false;
    this.channel.onSubchannel = null;
    for (const q of this.queues) {
      for (const f of q.pending.splice(0)) {
        this.stats.tx.drops++;
        f.reject(new NetvscRemovedError(`send of a ${f.frame.length}-byte frame`, this.nicName, reason));
      }
    }
    for (const [id, p] of [...this.control]) {
      this.control.delete(id);
      p.reject(new NetvscRemovedError(`RNDIS ${p.what}`, this.nicName, reason));
    }
    const primary = this.channel;
    const usable = primary.state === CHANNEL_OPENED_STATE && !primary.rescinded;
    if (usable) {
      if (this.nvspVersion !== 0) {
        const pfns = this.memory.allocScattered(1);
        this.sendPageBuffer(primary, { kind: "halt", requestId: this.nextRequestId++ }, pfns, NVSP_RNDIS_CHANNEL_TYPE_CONTROL).then(
          () => this.memory.free(pfns),
          () => this.memory.free(pfns),
        );
      }
      if (this.recvGpadl !== 0) await primary.sendPacket(encodeNvspMessage({ kind: "revoke_recv_buf", id: NETVSC_RECEIVE_BUFFER_ID })).catch(() => undefined);
      if (this.sendGpadl !== 0) await primary.sendPacket(encodeNvspMessage({ kind: "revoke_send_buf", id: NETVSC_SEND_BUFFER_ID })).catch(() => undefined);
      for (const h of [this.recvGpadl, this.sendGpadl]) if (h !== 0) await primary.teardownGpadl(h).catch(() => undefined);
      // Closes the subchannels first (vmbus_close of a primary); in-flight sends fail.
      await primary.close().catch(() => undefined);
    } else {
      for (const sc of primary.subchannels) if (sc.state === CHANNEL_OPENED_STATE && !sc.rescinded) await sc.close().catch(() => undefined);
    }
    if (this.recvFirstPfn >= 0) this.memory.free(this.recvFirstPfn, this.recvPages);
    if (this.sendFirstPfn >= 0) this.memory.free(this.sendFirstPfn, this.sendPages);
    this.recvFirstPfn = -1;
    this.sendFirstPfn = -1;
    this.recvGpadl = 0;
    this.sendGpadl = 0;
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** Races `work` against a virtual-time timer. */
  private withTimeout<T>(work: Promise<T>, what: string, channel: string): Promise<T> {
    const timeoutNs = this.config.requestTimeoutNs;
    return new Promise<T>((resolve, reject) => {
      const timer = this.sim.scheduler.schedule(timeoutNs, () => reject(new NetvscTimeoutError(what, channel, timeoutNs)), `${this.nicName} ${what} timeout`);
      work.then(
        (v) => {
          timer.cancel();
          resolve(v);
        },
        (e: unknown) => {
          timer.cancel();
          reject(e);
        },
      );
    });
  }
}

/** `n` rounded up to a multiple of `align` (the protocol's own helper is not exported). */
function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

function pfnRange(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}

function u32Bytes(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0, true);
  return out;
}

/** Largest message the receive path copies itself; longer ones (never from a well-behaved host) take the decoder's own copy. */
const RX_COPY_MAX = 64 * 1024;
/** `decodeXferPages`' default limit on a transfer-page packet's ranges. */
const MAX_XFER_RANGES = 4096;

function recvCompletion(status: number): Uint8Array {
  return encodeNvspMessage({ kind: "send_rndis_pkt_complete", status }, { size: NVSP_RECV_COMPLETION_SIZE });
}

/** The two receive completions Linux sends, encoded once; never modified (the ring writer only reads them). */
const RECV_COMPLETION_SUCCESS = recvCompletion(NVSP_STAT_SUCCESS);
const RECV_COMPLETION_FAIL = recvCompletion(NVSP_STAT_FAIL);

/** Little-endian u32 into `bytes` at `at`. */
function setU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = value >>> 24;
}

function getU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16) | ((bytes[at + 3] as number) << 24)) >>> 0;
}

function bytesType(bytes: Uint8Array): number {
  return bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) : 0;
}

/** The status of a SEND_RNDIS_PKT_COMPLETE ({108, status}); FAIL for anything else. */
function sendCompletionStatus(data: Uint8Array): number {
  if (data.length < 8) return NVSP_STAT_FAIL;
  return getU32(data, 0) === NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE ? getU32(data, 4) : NVSP_STAT_FAIL;
}

function noop(): void {}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Size of an RNDIS PACKET carrying `frameBytes` with `ppiBytes` of per-packet info. */
export function rndisPacketBytes(frameBytes: number, ppiBytes = 0): number {
  return RNDIS_PACKET_MESSAGE_SIZE + ppiBytes + frameBytes;
}
