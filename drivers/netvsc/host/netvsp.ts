/**
 * netvsp: the host's synthetic NIC (storvsc-netvsc.md §9 NVSP, §10 init and
 * host acceptance, §11 data path, §12 subchannels, §13 RNDIS, §14 host
 * behaviour, §15 checklist), plugged into a `VirtualSwitch` port.
 *
 * One worker per open channel (primary = queue 0, subchannel i = queue i).
 * - §10 initialization on the primary: before INIT only INIT is legal (an
 *   unsupported version is answered with status NONE and the guest may try
 *   again); after a successful INIT, NDIS_CONFIG, NDIS_VER, SEND_RECV_BUF and
 *   SEND_SEND_BUF in any order, each at most once (a duplicate is fatal);
 *   NVSP ≥ v2 needs NDIS_CONFIG before SEND_RECV_BUF. Init ends when all
 *   four are in, or when a SEND_RNDIS_PKT arrives with all but the send
 *   buffer (OV); anything else before that (SUBCHANNEL, OID_QUERY_EX,
 *   SWITCH_DATA_PATH, a revoke, an early SEND_RNDIS_PKT) is fatal, and so
 *   is an init message after it. Replies are 28 bytes below v6.1 and 40
 *   from v6.1 (OV), sent only when the guest asked.
 * - Receive buffer: sub-allocations of 256 + (MTU + 14) + 36 bytes (OV);
 *   ids 0–15 are reserved for RNDIS control responses, the rest are one
 *   pool shared by every queue (a choice: a busy queue can use what an idle
 *   one does not need). A sub-allocation is reused only after the guest's
 *   VM_PKT_COMP for the transfer-page packet that used it; that packet's
 *   transaction id is the first sub-allocation id of its batch (OV), so an
 *   unknown id in a completion is fatal.
 * - Send buffer: 6144-byte sections located at index × 6144 (OV).
 * - RNDIS control messages (channel type 1, primary only) are answered in
 *   the receive buffer inside a transfer-page packet with channel type 1,
 *   and the guest's SEND_RNDIS_PKT is completed with
 *   SEND_RNDIS_PKT_COMPLETE.
 * - Transmit: the RNDIS PACKETs of a section (several may share one) or of
 *   GPA ranges (section bytes first, then the ranges) are validated, all of
 *   them, before any frame goes to the switch; a bad one fails the whole
 *   NVSP packet with status FAIL (§14 per-packet error).
 * - Receive: frames from the switch pass the packet filter (§13.6), are
 *   hashed to a queue (below), batched per queue at the same virtual
 *   instant (≤ 375 per transfer-page packet, OV RX_BATCH_SIZE), written as
 *   RNDIS PACKETs {header, rndis_packet, PPIs, frame} at the start of a
 *   sub-allocation, and indicated with one range per message. No free
 *   sub-allocation, or no ring room → the frame is dropped and counted.
 * - Queue choice: Toeplitz hash (the key the guest set, or Linux's default)
 *   over IPv4/IPv6 source and destination addresses, plus TCP/UDP ports for
 *   an unfragmented TCP/UDP packet; the low 7 bits index the 128-entry
 *   indirection table of OID_GEN_RECEIVE_SCALE_PARAMETERS (default: entry i
 *   = i mod queues). Non-IP frames and RSS disabled → queue 0. The hash goes
 *   to the guest in an NBL_HASH_VALUE PPI when RSS is on.
 * - Offloads: the host computes no checksums and segments nothing, so the
 *   capabilities it reports are all zero (Linux then does both itself); the
 *   offload SET is accepted and stored (LSOv1 enable → NOT_SUPPORTED, OV).
 *
 * Reactions (§14): protocol errors fail the channel (`channel.fail`, the
 * other channels keep working): an unknown NVSP type or one newer than the
 * version, init messages out of order or repeated, a bad send-buffer
 * section, a GPA range outside guest memory, an unknown receive completion
 * id, control traffic on a subchannel or before the receive buffer, a second
 * RNDIS INITIALIZE, any other RNDIS message before INITIALIZE, RESET,
 * INDICATE_STATUS or SET_EX from the guest. Per-packet errors (bad RNDIS
 * lengths or offsets, unknown RNDIS type, OOB data, frame too long, a
 * PACKET header or PPIs split across GPA ranges) are answered with
 * SEND_RNDIS_PKT_COMPLETE status FAIL (`lastTxError` keeps the reason).
 * Nothing escapes into the scheduler: only simulator bugs (non-VmbusSimError)
 * propagate.
 */
import { inject, injectable } from "tsyringe";
import {
  GpaDirectRanges,
  HOST_DEVICE_CONFIG,
  HOST_VM,
  HOST_VMBUS_SERVER,
  InvalidArgumentError,
  ProtocolError,
  RingWriter,
  SIMULATION,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VmbusSimError,
  type HostChannel,
  type HostChannelHandler,
  type IncomingPacket,
  type PagedView,
  type Simulation,
  type Timer,
  type TransId,
  type VmContext,
  type VmbusServer,
  type XferPageRange,
} from "../../../core/index.js";
import {
  IEEE_8021Q_INFO,
  NDIS_HASH_FUNC_TOEPLITZ,
  NDIS_MAC_OPTION_8021P_PRIORITY,
  NDIS_MAC_OPTION_8021Q_VLAN,
  NDIS_MAC_OPTION_COPY_LOOKAHEAD_DATA,
  NDIS_MAC_OPTION_NO_LOOPBACK,
  NDIS_MAC_OPTION_TRANSFERS_NOT_PEND,
  NDIS_MEDIA_STATE_CONNECTED,
  NDIS_MEDIA_STATE_DISCONNECTED,
  NDIS_OBJECT_TYPE_OFFLOAD_ENCAPSULATION,
  NDIS_OFFLOAD_ENCAP_8023,
  NDIS_OFFLOAD_ENCAPSULATION_SIZE,
  NDIS_OFFLOAD_PARAMETERS_LSOV1_ENABLED,
  NDIS_OFFLOAD_PARAMETERS_REVISION_3,
  NDIS_PACKET_TYPE_ALL_MULTICAST,
  NDIS_PACKET_TYPE_BROADCAST,
  NDIS_PACKET_TYPE_DIRECTED,
  NDIS_PACKET_TYPE_MULTICAST,
  NDIS_PACKET_TYPE_PROMISCUOUS,
  NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4,
  NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6,
  NDIS_RSS_PARAM_FLAG_DISABLE_RSS,
  NDIS_RSS_PARAM_FLAG_HASH_KEY_UNCHANGED,
  NDIS_RSS_PARAM_FLAG_ITABLE_UNCHANGED,
  NETVSC_INVALID_INDEX,
  NETVSC_HASH_KEYLEN,
  ITAB_NUM,
  NVSP_MSG1_TYPE_SEND_NDIS_VER,
  NVSP_MSG1_TYPE_SEND_RECV_BUF,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG2_TYPE_SEND_NDIS_CONFIG,
  NVSP_OPENVMM_MAX_MDL_CHAIN_LEN,
  NVSP_PROTOCOL_VERSION_1,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSIONS,
  NVSP_RNDIS_CHANNEL_TYPE_CONTROL,
  NVSP_RNDIS_CHANNEL_TYPE_DATA,
  NVSP_STAT_FAIL,
  NVSP_STAT_NONE,
  NVSP_STAT_SUCCESS,
  NVSP_MSG5_TYPE_OID_QUERY_EX_COMP,
  OID_802_3_CURRENT_ADDRESS,
  OID_802_3_MAC_OPTIONS,
  OID_802_3_MAXIMUM_LIST_SIZE,
  OID_802_3_PERMANENT_ADDRESS,
  OID_802_3_RCV_ERROR_ALIGNMENT,
  OID_802_3_XMIT_MORE_COLLISIONS,
  OID_802_3_XMIT_ONE_COLLISION,
  OID_GEN_BYTES_RCV,
  OID_GEN_BYTES_XMIT,
  OID_GEN_CURRENT_LOOKAHEAD,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_DRIVER_VERSION,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_HARDWARE_STATUS,
  OID_GEN_LINK_SPEED,
  OID_GEN_LINK_STATE,
  OID_GEN_MAC_OPTIONS,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MAXIMUM_LOOKAHEAD,
  OID_GEN_MAXIMUM_SEND_PACKETS,
  OID_GEN_MAXIMUM_TOTAL_SIZE,
  OID_GEN_MAX_LINK_SPEED,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_MEDIA_IN_USE,
  OID_GEN_MEDIA_SUPPORTED,
  OID_GEN_NETWORK_LAYER_ADDRESSES,
  OID_GEN_RCV_ERROR,
  OID_GEN_RCV_NO_BUFFER,
  OID_GEN_RCV_OK,
  OID_GEN_RECEIVE_BLOCK_SIZE,
  OID_GEN_RECEIVE_BUFFER_SPACE,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_GEN_RNDIS_CONFIG_PARAMETER,
  OID_GEN_SUPPORTED_LIST,
  OID_GEN_TRANSMIT_BLOCK_SIZE,
  OID_GEN_TRANSMIT_BUFFER_SPACE,
  OID_GEN_VENDOR_DESCRIPTION,
  OID_GEN_VENDOR_DRIVER_VERSION,
  OID_GEN_VENDOR_ID,
  OID_GEN_XMIT_ERROR,
  OID_GEN_XMIT_OK,
  OID_OFFLOAD_ENCAPSULATION,
  OID_TCP_OFFLOAD_CURRENT_CONFIG,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_DF_CONNECTIONLESS,
  RNDIS_HEADER_SIZE,
  RNDIS_MSG_PACKET,
  RNDIS_PACKET_LAYOUT,
  RNDIS_PACKET_MESSAGE_SIZE,
  RNDIS_MAJOR_VERSION,
  RNDIS_MAX_PKT_DEFAULT,
  RNDIS_MEDIUM_802_3,
  RNDIS_MINOR_VERSION,
  RNDIS_STATUS_INVALID_DATA,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  RNDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
  RNDIS_STATUS_NOT_SUPPORTED,
  RNDIS_STATUS_SUCCESS,
  decodeNdisObjectHeader,
  decodeNdisOffloadEncapsulation,
  decodeNdisOffloadParams,
  decodeNdisRecvScaleParam,
  decodeNvspMessage,
  decodeRndisConfigParameter,
  decodeRndisMessage,
  emptyNdisOffload,
  encodeNdisLinkSpeed,
  encodeNdisLinkState,
  encodeNdisOffload,
  encodeNdisOffloadEncapsulation,
  encodeNdisRecvScaleCap,
  encodeNvspMessage,
  encodeRndisMessage,
  encodeRndisMessageInto,
  findPpi,
  formatMac,
  hashValuePpi,
  makeNdisLinkState,
  makeNdisRecvScaleCap,
  netvscDefaultHashKey,
  nvspHostMessageSize,
  nvspMessageTypeName,
  parseMac,
  ppiU32,
  rndisEncodedLength,
  splitRndisMessages,
  type NdisOffloadParams,
  type NvspMessage,
  type RndisMessage,
  type RndisPacketMessage,
  type RndisPpi,
} from "../protocol/index.js";
import { utf16le } from "../protocol/bytes.js";
import { FrameArena } from "../protocol/frame-arena.js";
import { RndisPacketScan, rndisPacketLength, scanRndisPacket, writeRndisPacketInto } from "../protocol/rndis-fast.js";
import { NETWORK_SWITCHES, type SwitchPort, type SwitchRegistry } from "./virtual-switch.js";

// ---------------------------------------------------------------------------
// Configuration

export interface NetvspConfig {
  /** The switch the NIC is plugged into (by name in the simulation's `SwitchRegistry`); default "default". */
  readonly switch?: string;
  /** The permanent MAC, "00:15:5d:xx:xx:xx". */
  readonly mac: string;
  /** MTU (payload bytes, without the 14-byte Ethernet header); default 1500, range 68–9000. */
  readonly mtu?: number;
  /** Queues = subchannels + 1 the host allows (RSS capabilities); default 8, range 1–64. */
  readonly maxQueues?: number;
  /** Link state at start; default true (connected). */
  readonly linkUp?: boolean;
  /** Link speed reported in OID_GEN_LINK_SPEED and friends, bits/s; default 10 Gbit/s. */
  readonly linkSpeedBps?: number;
}

export interface ResolvedNetvspConfig {
  readonly switch: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly maxQueues: number;
  readonly linkUp: boolean;
  readonly linkSpeedBps: number;
}

export const NETVSP_DEFAULT_SWITCH = "default";
export const NETVSP_DEFAULT_MTU = 1500;
export const NETVSP_DEFAULT_MAX_QUEUES = 8;
export const NETVSP_DEFAULT_LINK_SPEED_BPS = 10_000_000_000;
/** §10/§14: sections are 6144 bytes, located at index × 6144 whatever the guest thinks. */
export const NETVSP_SEND_SECTION_SIZE = 6144;
/** §11.2 OV: header room before the frame and a footer after it in every sub-allocation. */
export const NETVSP_RX_HEADER_ROOM = 256;
export const NETVSP_RX_FOOTER = 36;
/** §11.2 OV `RX_RESERVED_CONTROL_BUFFERS`: sub-allocations 0–15 carry RNDIS control responses. */
export const NETVSP_RX_RESERVED_CONTROL_BUFFERS = 16;
/** §14 OV `RX_BATCH_SIZE`: messages per transfer-page packet at most. */
export const NETVSP_RX_BATCH_SIZE = 375;
/** §14 OV: at most 100 KiB of control responses wait for a control sub-allocation. */
export const NETVSP_CONTROL_QUEUE_MAX_BYTES = 100 * 1024;
/** Frames a queue holds for its next batch before dropping. */
export const NETVSP_RX_PENDING_MAX = 4096;
/** §13.5 OV answers. */
export const NETVSP_VENDOR_ID = 0x0000155d;
export const NETVSP_VENDOR_DESCRIPTION = "Microsoft Corporation";
export const NETVSP_FRIENDLY_NAME = "Network Device";
export const NETVSP_BUFFER_SPACE = 256 * 1024;
/** §13.1 OV INITIALIZE_CMPLT max_xfer_size and alignment factor (alignment 8). */
export const NETVSP_MAX_XFER_SIZE = 0xefffffff;
export const NETVSP_PKT_ALIGNMENT_FACTOR = 3;
/** Largest NVSP reply (40 bytes) in the ring: the room reserved before taking a packet. */
const NVSP_REPLY_TOTAL = RingWriter.packetTotal(0, 40);
const ETH_HLEN = 14;
const VLAN_HLEN = 4;
const ETH_P_8021Q = 0x8100;

const CONFIG_KEYS = new Set(["switch", "mac", "mtu", "maxQueues", "linkUp", "linkSpeedBps"]);

/** Validates a scenario's config object (untrusted input); errors name the field. */
export function validateNetvspConfig(input: unknown): ResolvedNetvspConfig {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new InvalidArgumentError("netvsp config", String(input), "must be an object {mac, switch?, mtu?, maxQueues?, linkUp?, linkSpeedBps?}");
  }
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!CONFIG_KEYS.has(k)) throw new InvalidArgumentError("netvsp config key", k, `is not one of ${[...CONFIG_KEYS].join(", ")}`);
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const v = o[name] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new InvalidArgumentError(`netvsp config.${name}`, String(v), `must be an integer in [${min}, ${max}]`);
    return v;
  };
  const sw = o["switch"] ?? NETVSP_DEFAULT_SWITCH;
  if (typeof sw !== "string" || sw.length === 0) throw new InvalidArgumentError("netvsp config.switch", String(sw), "must be a non-empty string");
  const mac = o["mac"];
  if (typeof mac !== "string") throw new InvalidArgumentError("netvsp config.mac", String(mac), "must be a MAC string like 00:15:5d:00:00:01");
  const macBytes = parseMac(mac);
  // A group address as a NIC's own address would make every frame to it a flood.
  if (((macBytes[0] ?? 0) & 1) !== 0) throw new InvalidArgumentError("netvsp config.mac", mac, "must be a unicast address (I/G bit clear)");
  const linkUp = o["linkUp"] ?? true;
  if (typeof linkUp !== "boolean") throw new InvalidArgumentError("netvsp config.linkUp", String(linkUp), "must be a boolean");
  return {
    switch: sw,
    mac: macBytes,
    mtu: int("mtu", NETVSP_DEFAULT_MTU, 68, 9000),
    maxQueues: int("maxQueues", NETVSP_DEFAULT_MAX_QUEUES, 1, 64),
    linkUp,
    linkSpeedBps: int("linkSpeedBps", NETVSP_DEFAULT_LINK_SPEED_BPS, 100, 400_000_000_000),
  };
}

// ---------------------------------------------------------------------------
// Counters

export type NetvspDropReason =
  /** Link down: nothing is delivered. */
  | "link-down"
  /** No receive buffer, RNDIS not initialized, or the primary is closed. */
  | "not-ready"
  /** The packet filter refused the frame. */
  | "filtered"
  /** No free receive sub-allocation (§14). */
  | "no-buffer"
  /** No room in the host→guest ring for the batch (OV: batch dropped, buffers recycled). */
  | "ring-full"
  /** Too many frames waiting for one batch. */
  | "queue-full"
  /** A transmitted RNDIS message failed validation (packet completed with FAIL). */
  | "tx-invalid"
  /** A transmitted PACKET's header or PPIs crossed from its first GPA range into the next (§11.1; packet completed with FAIL). */
  | "tx-header-split";

const DROP_REASONS: readonly NetvspDropReason[] = ["link-down", "not-ready", "filtered", "no-buffer", "ring-full", "queue-full", "tx-invalid", "tx-header-split"];

export class NetvspCounters {
  txFrames = 0;
  txBytes = 0;
  rxFrames = 0;
  rxBytes = 0;
  /** SEND_RNDIS_PKT data packets taken, and those completed with FAIL. */
  txPackets = 0;
  txPacketsFailed = 0;
  /** Transfer-page packets sent (data and control) and guest completions of them. */
  rxPackets = 0;
  rxCompletions = 0;
  /** Control responses that waited for a control sub-allocation. */
  controlQueued = 0;
  /** Times a worker left a packet in the ring (no room for its reply). */
  ringFullStops = 0;
  channelsFailed = 0;
  readonly drops: Record<NetvspDropReason, number>;
  /** RNDIS messages by kind, both directions ("query", "query_cmplt", "packet"…). */
  readonly rndis: Record<string, number> = {};
  /** NVSP messages from the guest by Linux name. */
  readonly nvsp: Record<string, number> = {};

  constructor() {
    const d: Partial<Record<NetvspDropReason, number>> = {};
    for (const r of DROP_REASONS) d[r] = 0;
    this.drops = d as Record<NetvspDropReason, number>;
  }
}

/** A fatal input error: the reason a channel was failed. */
export class NetvspPacketError extends ProtocolError {
  override readonly code = "NETVSP_FATAL_PACKET";
}

/** RNDIS device state (§14 OV): Initializing until INITIALIZE, then Operational; HALT ends it. */
export type RndisState = "initializing" | "operational" | "halted";

// ---------------------------------------------------------------------------

interface ReceiveBuffer {
  readonly view: PagedView;
  /** The id from SEND_RECV_BUF: the transfer page set id of every indication (0xCAFE from Linux). */
  readonly id: number;
  readonly subAllocSize: number;
  readonly count: number;
  /**
   * When the GPADL's pages are adjacent in guest memory (Linux allocates
   * the buffer that way): its live bytes (`PagedView.span`) and a DataView
   * of them, so that a message is written in place. Null otherwise (the
   * view's `write` handles any page list).
   */
  readonly bytes: Uint8Array | null;
  readonly dataView: DataView | null;
}

interface SendBuffer {
  readonly view: PagedView;
  readonly sections: number;
}

class QueueWorker {
  closed = false;
  failedByUs = false;
  inHandler = false;
  readonly ranges = new GpaDirectRanges();
  /** Transfer-page packets the guest has not completed: trans id → sub-allocation ids. */
  readonly inflight = new Map<number, number[]>();
  pending: Uint8Array[] = [];
  /** RSS hash of each pending frame as `receiveFrame` computed it (−1: none), valid while the key is `pendingHashKey`. */
  pendingHashes: number[] = [];
  pendingHashKey: Uint8Array | null = null;
  flushScheduled = false;
  /** @internal The batch flush of this instant's frames (armed only while `flushScheduled` is false). */
  rxTimer: Timer | null = null;
  rxFrames = 0;
  txFrames = 0;
  /** (start, length) of each frame found in the packet being transmitted. */
  txSpans = new Uint32Array(2 * RNDIS_MAX_PKT_DEFAULT);
  /** Transfer-page ranges of a data indication, reused (written into the ring at once or dropped). */
  readonly rxRangePool: { byteOffset: number; byteCount: number }[] = [];
  readonly rxRanges: XferPageRange[] = [];
  /** The completion `writeReply` writes; set just before the synchronous `tryWrite`. */
  replyId: TransId = 0;
  replyBytes: Uint8Array = new Uint8Array(0);
  readonly writeReply = (wr: RingWriter): boolean => wr.writeCompletion(this.replyId, this.replyBytes);

  constructor(readonly channel: HostChannel) {}

  get queue(): number {
    return this.channel.subchannelIndex;
  }
}

/**
 * The free data sub-allocation ids, first in first out (the order decides
 * which slot the next frame lands in, so it is part of what the guest sees).
 */
class IdQueue {
  private ids = new Int32Array(64);
  private head = 0;
  private size = 0;

  static range(from: number, to: number): IdQueue {
    const q = new IdQueue();
    for (let id = from; id < to; id++) q.push(id);
    return q;
  }

  get length(): number {
    return this.size;
  }

  push(id: number): void {
    if (this.size === this.ids.length) {
      const grown = new Int32Array(2 * this.ids.length);
      for (let i = 0; i < this.size; i++) grown[i] = this.ids[(this.head + i) % this.ids.length] as number;
      this.ids = grown;
      this.head = 0;
    }
    this.ids[(this.head + this.size) % this.ids.length] = id;
    this.size++;
  }

  /** The oldest id, or −1 when none is free. */
  shift(): number {
    if (this.size === 0) return -1;
    const id = this.ids[this.head] as number;
    this.head = this.head + 1 === this.ids.length ? 0 : this.head + 1;
    this.size--;
    return id;
  }
}

/** Per-queue statistics, for reports. */
export interface NetvspQueueStats {
  readonly queue: number;
  readonly relid: number;
  readonly rxFrames: number;
  readonly txFrames: number;
  readonly rxInFlight: number;
}

@injectable()
export class NetvspDevice implements HostChannelHandler {
  readonly config: ResolvedNetvspConfig;
  readonly counters = new NetvspCounters();
  readonly port: SwitchPort;
  lastFatalError: VmbusSimError | null = null;
  /** Why the latest SEND_RNDIS_PKT was completed with FAIL (a per-packet error: the channel was kept), for reports and tests. */
  lastTxError: ProtocolError | null = null;

  private nvspVersionValue: number | null = null;
  /** The §10 init messages taken since INIT, by NVSP name (each at most once). */
  private seen = new Set<string>();
  /**
   * §10: set once NDIS_CONFIG (from v2), NDIS_VER and both buffers are in,
   * or when a SEND_RNDIS_PKT arrives with all but the send buffer. Until
   * then only the init messages are legal; after it, none of them is.
   */
  private initDone = false;
  private recv: ReceiveBuffer | null = null;
  private send: SendBuffer | null = null;
  private freeControl: number[] = [];
  private freeData = new IdQueue();
  private controlQueue: Uint8Array[] = [];
  private controlQueueBytes = 0;
  private rndisStateValue: RndisState = "initializing";
  private filter = 0;
  private linkUpValue: boolean;
  private currentMac: Uint8Array;
  private offloadParams: NdisOffloadParams | null = null;
  private rssEnabled = false;
  private rssTable: number[] = [];
  private rssKey: Uint8Array = netvscDefaultHashKey();
  /** Toeplitz lookup table of `rssKey`, built on first use after the key changed. */
  private rssKeyTable: ToeplitzTable | null = null;
  /** The open worker of each queue number (the first in `workers` order), for RSS. */
  private queueWorkers: (QueueWorker | undefined)[] = [];
  /** RNDIS PACKETs for a receive buffer that is not one run of pages are built here, then copied in through its view. */
  private rxBytes = new Uint8Array(NETVSP_RX_HEADER_ROOM + NETVSP_DEFAULT_MTU + ETH_HLEN + NETVSP_RX_FOOTER);
  private rxView = new DataView(this.rxBytes.buffer);
  private readonly txScan = new RndisPacketScan();
  /**
   * The host's copies of the RNDIS bytes of each SEND_RNDIS_PKT (send-buffer
   * section, then GPA ranges), made before any byte is checked: the guest
   * can rewrite its buffers at any moment. The frames of a valid packet go
   * to the switch as views of this copy (`sendOwned`); nothing writes it
   * again. One arena for all queues: a packet is gathered, checked and sent
   * in one synchronous call.
   */
  private readonly txCopies = new FrameArena();
  /** NVSP messages this host sends over and over, encoded once for the version they were made for. */
  private encodedFor = -1;
  private pktCompleteSuccess: Uint8Array = new Uint8Array(0);
  private pktCompleteFail: Uint8Array = new Uint8Array(0);
  private indicationData: Uint8Array = new Uint8Array(0);
  private indicationControl: Uint8Array = new Uint8Array(0);
  private requestedSubchannels = 0;
  private sendTableSent = false;
  private primary: QueueWorker | null = null;
  private readonly workers = new Map<HostChannel, QueueWorker>();

  constructor(
    @inject(HOST_DEVICE_CONFIG) config: unknown,
    @inject(HOST_VMBUS_SERVER) private readonly server: VmbusServer,
    @inject(SIMULATION) private readonly sim: Simulation,
    @inject(HOST_VM) vm: VmContext,
    @inject(NETWORK_SWITCHES) switches: SwitchRegistry,
  ) {
    this.config = validateNetvspConfig(config);
    this.linkUpValue = this.config.linkUp;
    this.currentMac = this.config.mac.slice();
    this.port = switches.get(this.config.switch).attach(`${vm.name}/${formatMac(this.config.mac)}`, (f) => this.receiveFrame(f), {
      // receiveFrame only counts, queues and arms this instant's batch flush.
      synchronous: true,
    });
  }

  get nvspVersion(): number | null {
    return this.nvspVersionValue;
  }
  /** §10: INIT and the rest of NVSP initialization are done (data, subchannels and revokes are legal). */
  get nvspInitialized(): boolean {
    return this.initDone;
  }
  get rndisState(): RndisState {
    return this.rndisStateValue;
  }
  get packetFilter(): number {
    return this.filter;
  }
  get linkUp(): boolean {
    return this.linkUpValue;
  }
  /** The MAC in use (the permanent one unless the guest changed it with "NetworkAddress"). */
  get mac(): string {
    return formatMac(this.currentMac);
  }
  /** Sub-allocation layout of the receive buffer, once the guest sent one. */
  get receiveBufferLayout(): { readonly subAllocSize: number; readonly count: number; readonly freeData: number; readonly freeControl: number } | null {
    const r = this.recv;
    return r === null ? null : { subAllocSize: r.subAllocSize, count: r.count, freeData: this.freeData.length, freeControl: this.freeControl.length };
  }
  /** The offload parameters the guest last set (OID_TCP_OFFLOAD_PARAMETERS), or null before any. */
  get offloadParameters(): NdisOffloadParams | null {
    return this.offloadParams;
  }
  /** The RSS indirection table in use (128 queue numbers), or [] when RSS is off. */
  get indirectionTable(): readonly number[] {
    return this.rssEnabled ? this.rssTable : [];
  }

  queueStats(): NetvspQueueStats[] {
    return [...this.workers.values()]
      .sort((a, b) => a.queue - b.queue)
      .map((w) => ({ queue: w.queue, relid: w.channel.relid, rxFrames: w.rxFrames, txFrames: w.txFrames, rxInFlight: w.inflight.size }));
  }

  /** Link up/down: tells an initialized guest with RNDIS INDICATE_STATUS MEDIA_CONNECT/DISCONNECT (no payload). */
  setLink(up: boolean): void {
    if (up === this.linkUpValue) return;
    this.linkUpValue = up;
    if (this.rndisStateValue === "operational" && this.recv !== null) {
      this.queueControl({ kind: "indicate_status", status: up ? RNDIS_STATUS_MEDIA_CONNECT : RNDIS_STATUS_MEDIA_DISCONNECT, payload: new Uint8Array(0) });
    }
  }

  /** Unplugs the NIC from its switch. */
  dispose(): void {
    this.port.detach();
  }

  // ---- HostChannelHandler ---------------------------------------------------

  open(channel: HostChannel): void {
    const w = new QueueWorker(channel);
    if (channel.subchannelIndex === 0) {
      // A (re)opened primary starts from nothing (§10).
      this.reset();
      this.primary = w;
    }
    w.rxTimer = this.sim.scheduler.timer(`netvsp ${channel.name} rx`, () => this.flushRx(w));
    this.workers.set(channel, w);
    this.indexQueues();
    channel.onPacket((p) => this.onPacket(w, p));
    if (channel.subchannelIndex !== 0) this.maybeSendIndirectionTable();
  }

  close(channel: HostChannel): void {
    const w = this.workers.get(channel);
    if (w === undefined) return;
    w.closed = true;
    this.workers.delete(channel);
    this.indexQueues();
    if (channel.failed && !w.failedByUs) {
      // Ring corruption found by the channel layer.
      this.counters.channelsFailed++;
      if (channel.lastError instanceof VmbusSimError) this.lastFatalError = channel.lastError;
    }
    if (w === this.primary) {
      this.primary = null;
      this.reset();
      return;
    }
    // The guest can no longer complete what went to this queue: take the buffers back.
    for (const ids of w.inflight.values()) this.release(ids);
    w.inflight.clear();
  }

  private indexQueues(): void {
    const byQueue: (QueueWorker | undefined)[] = [];
    for (const w of this.workers.values()) if (!w.closed && byQueue[w.queue] === undefined) byQueue[w.queue] = w;
    this.queueWorkers = byQueue;
  }

  private reset(): void {
    this.nvspVersionValue = null;
    this.seen = new Set();
    this.initDone = false;
    this.recv = null;
    this.send = null;
    this.freeControl = [];
    this.freeData = new IdQueue();
    this.controlQueue = [];
    this.controlQueueBytes = 0;
    this.rndisStateValue = "initializing";
    this.filter = 0;
    this.rssEnabled = false;
    this.rssTable = [];
    this.requestedSubchannels = 0;
    this.sendTableSent = false;
  }

  // ---- the worker -------------------------------------------------------------

  private onPacket(w: QueueWorker, p: IncomingPacket): boolean | void {
    if (w.closed) return;
    const ep = w.channel.endpoint;
    if (ep === null) return;
    w.inHandler = true;
    try {
      if (p.type !== VM_PKT_COMP) {
        // Room for this packet's reply, so a reply never waits (storvsp's rule).
        if (ep.writer.freeBytes() <= NVSP_REPLY_TOTAL && !ep.writer.block(NVSP_REPLY_TOTAL)) {
          this.counters.ringFullStops++;
          return false;
        }
      }
      this.take(w, p);
      return;
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.failChannel(w, e);
      return;
    } finally {
      w.inHandler = false;
    }
  }

  private fatal(w: QueueWorker, field: string, value: number | bigint | string, limit: string): NetvspPacketError {
    return new NetvspPacketError(`netvsp ${w.channel.name}`, field, value, limit);
  }

  private failChannel(w: QueueWorker, e: VmbusSimError): void {
    this.counters.channelsFailed++;
    this.lastFatalError = e;
    w.failedByUs = true;
    w.channel.fail(e);
  }

  private take(w: QueueWorker, p: IncomingPacket): void {
    if (p.type === VM_PKT_COMP) {
      this.receiveCompletion(w, p);
      return;
    }
    if (p.type !== VM_PKT_DATA_INBAND && p.type !== VM_PKT_DATA_USING_GPA_DIRECT) {
      throw this.fatal(w, "packet type", p.type, "is none of VM_PKT_DATA_INBAND (6), VM_PKT_DATA_USING_GPA_DIRECT (9), VM_PKT_COMP (11)");
    }
    if (this.takeData(w, p)) return;
    // Unknown types, types newer than the version and host-only types are
    // fatal (§14): their layout was never agreed on.
    const msg = decodeNvspMessage(p.data(), { sender: "guest", ...(this.nvspVersionValue !== null ? { version: this.nvspVersionValue } : {}) });
    const name = nvspMessageTypeName(msgType(p.data()));
    this.counters.nvsp[name] = (this.counters.nvsp[name] ?? 0) + 1;
    if (p.type === VM_PKT_DATA_USING_GPA_DIRECT && msg.kind !== "send_rndis_pkt") {
      throw this.fatal(w, "packet type", p.type, `GPA direct carries only SEND_RNDIS_PKT, not ${msg.kind}`);
    }
    const wantsReply = (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0;
    // Subchannels carry only data (§12): transmit packets and receive completions.
    if (w !== this.primary && !(msg.kind === "send_rndis_pkt" && msg.channelType === NVSP_RNDIS_CHANNEL_TYPE_DATA)) {
      throw this.fatal(w, "msg_type", name, "is not legal on a subchannel (only SEND_RNDIS_PKT with channel type 0)");
    }
    if (msg.kind !== "init" && this.nvspVersionValue === null) {
      throw this.fatal(w, "msg_type", name, "arrived before a successful INIT (§10: only INIT is legal)");
    }
    if (msg.kind !== "init") this.checkInitPhase(w, msg.kind, name);
    switch (msg.kind) {
      case "init":
        return this.init(w, p, msg.minProtocolVersion, msg.maxProtocolVersion);
      case "send_ndis_config":
      case "send_ndis_ver":
        this.once(w, name);
        // §10: an empty completion if one was asked for (the UEFI client needs it).
        if (wantsReply) this.reply(w, p.transId, new Uint8Array(0));
        this.maybeCompleteInit();
        return;
      case "send_recv_buf":
        this.receiveBuffer(w, p, name, msg.gpadlHandle, msg.id, wantsReply);
        this.maybeCompleteInit();
        return;
      case "send_send_buf":
        this.sendBuffer(w, p, name, msg.gpadlHandle, wantsReply);
        this.maybeCompleteInit();
        return;
      case "revoke_recv_buf":
        // §13.8 removal: stop indicating; no completion.
        this.recv = null;
        this.freeControl = [];
        this.freeData = new IdQueue();
        return;
      case "revoke_send_buf":
        this.send = null;
        return;
      case "send_rndis_pkt":
        if (!this.initDone) this.completeInitByRndis(w, name);
        return this.sendRndisPacket(w, p, msg.channelType, msg.sendBufferSectionIndex, msg.sendBufferSectionSize, wantsReply);
      case "subchn_req":
        return this.allocateSubchannels(w, p, msg.numSubchannels);
      case "oid_query_ex":
        // §14 OV: not supported.
        if (wantsReply) this.reply(w, p.transId, this.nvsp({ kind: "oid_query_ex_comp", status: RNDIS_STATUS_NOT_SUPPORTED, bytes: 0 }));
        return;
      case "active_dp":
        // No VF: accepted (there is only the synthetic path), empty completion.
        if (wantsReply) this.reply(w, p.transId, new Uint8Array(0));
        return;
      case "send_rndis_pkt_complete":
        throw this.fatal(w, "msg_type", name, "must come as a VM_PKT_COMP completion of a transfer-page packet, not inband");
      default:
        throw this.fatal(w, "msg_type", name, "is not a message this host handles");
    }
  }

  /**
   * The data path: SEND_RNDIS_PKT with channel type 0, read in place from
   * the packet (the reader's private copy). It takes only what
   * `decodeNvspMessage` accepts with no further question — type 107 exists
   * in every version and is a guest's, 16 bytes hold its body, a size
   * without a section is refused — and is legal on any channel after INIT;
   * for anything else it returns false and the message is decoded in full.
   */
  private takeData(w: QueueWorker, p: IncomingPacket): boolean {
    // During init a SEND_RNDIS_PKT may end it, or be out of order: `take` decides.
    if (!this.initDone) return false;
    const off = p.dataOffset;
    if (p.length - off < NVSP_SEND_RNDIS_PKT_SIZE) return false;
    const v = p.view;
    if (v.getUint32(off, true) !== NVSP_MSG1_TYPE_SEND_RNDIS_PKT || v.getUint32(off + 4, true) !== NVSP_RNDIS_CHANNEL_TYPE_DATA) return false;
    const index = v.getUint32(off + 8, true);
    const size = v.getUint32(off + 12, true);
    if (index === NETVSC_INVALID_INDEX && size !== 0) return false;
    const counts = this.counters.nvsp;
    counts[SEND_RNDIS_PKT_NAME] = (counts[SEND_RNDIS_PKT_NAME] ?? 0) + 1;
    this.sendRndisPacket(w, p, NVSP_RNDIS_CHANNEL_TYPE_DATA, index, size, (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0);
    return true;
  }

  /**
   * SEND_RNDIS_PKT_COMPLETE {status} in this version's size. The two
   * statuses the data path answers are encoded once per version; the
   * arrays are shared by every reply and never written to (the ring writer
   * copies them).
   */
  private rndisPktComplete(status: number): Uint8Array {
    this.encodeRepeated();
    if (status === NVSP_STAT_SUCCESS) return this.pktCompleteSuccess;
    if (status === NVSP_STAT_FAIL) return this.pktCompleteFail;
    return this.nvsp({ kind: "send_rndis_pkt_complete", status });
  }

  /** The payload of a transfer-page packet: SEND_RNDIS_PKT {channel type, no section} (shared like `rndisPktComplete`'s). */
  private indicationPayload(channelType: number): Uint8Array {
    this.encodeRepeated();
    if (channelType === NVSP_RNDIS_CHANNEL_TYPE_DATA) return this.indicationData;
    if (channelType === NVSP_RNDIS_CHANNEL_TYPE_CONTROL) return this.indicationControl;
    return this.nvsp({ kind: "send_rndis_pkt", channelType, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 });
  }

  private encodeRepeated(): void {
    const version = this.nvspVersionValue ?? NVSP_PROTOCOL_VERSION_1;
    if (this.encodedFor === version) return;
    this.encodedFor = version;
    this.pktCompleteSuccess = this.nvsp({ kind: "send_rndis_pkt_complete", status: NVSP_STAT_SUCCESS });
    this.pktCompleteFail = this.nvsp({ kind: "send_rndis_pkt_complete", status: NVSP_STAT_FAIL });
    const indication = (channelType: number): Uint8Array =>
      this.nvsp({ kind: "send_rndis_pkt", channelType, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 });
    this.indicationData = indication(NVSP_RNDIS_CHANNEL_TYPE_DATA);
    this.indicationControl = indication(NVSP_RNDIS_CHANNEL_TYPE_CONTROL);
  }

  /** NVSP message in the host's size for the negotiated version (28 below v6.1, 40 from it). */
  private nvsp(msg: NvspMessage, version = this.nvspVersionValue ?? NVSP_PROTOCOL_VERSION_1): Uint8Array {
    return encodeNvspMessage(msg, { size: Math.max(nvspHostMessageSize(version), contentSize(msg)) });
  }

  private once(w: QueueWorker, what: string): void {
    // §10 OV: each init message at most once; a duplicate is fatal.
    if (this.seen.has(what)) throw this.fatal(w, "msg_type", what, "was already received (each init message at most once)");
    this.seen.add(what);
  }

  /**
   * §10 (OV `NetChannel::initialize`): between INIT and the end of init only
   * the four init messages and SEND_RNDIS_PKT are parsed; SUBCHANNEL,
   * OID_QUERY_EX, SWITCH_DATA_PATH, the revokes and the rest are fatal —
   * they name buffers and queues that do not exist yet. After init the four
   * are fatal (OV's ready state has no case for them): a duplicate says so,
   * and a send buffer offered after a SEND_RNDIS_PKT ended init without one
   * comes too late to be used.
   */
  private checkInitPhase(w: QueueWorker, kind: NvspMessage["kind"], name: string): void {
    const initMessage = kind === "send_ndis_config" || kind === "send_ndis_ver" || kind === "send_recv_buf" || kind === "send_send_buf";
    if (!this.initDone) {
      if (!initMessage && kind !== "send_rndis_pkt") {
        throw this.fatal(w, "msg_type", name, "arrived during NVSP initialization (§10: after INIT only SEND_NDIS_CONFIG, SEND_NDIS_VER, SEND_RECV_BUF, SEND_SEND_BUF, then SEND_RNDIS_PKT)");
      }
      return;
    }
    if (!initMessage) return;
    if (this.seen.has(name)) throw this.fatal(w, "msg_type", name, "was already received (each init message at most once)");
    throw this.fatal(w, "msg_type", name, "arrived after NVSP initialization ended (a SEND_RNDIS_PKT ended it; §10: init messages are legal only until then)");
  }

  /** What init still lacks for RNDIS to start (§10): SEND_NDIS_CONFIG from v2, SEND_NDIS_VER, a receive buffer. */
  private missingForRndis(): string[] {
    const missing: string[] = [];
    if ((this.nvspVersionValue ?? 0) >= NVSP_PROTOCOL_VERSION_2 && !this.seen.has(SEND_NDIS_CONFIG_NAME)) missing.push(SEND_NDIS_CONFIG_NAME);
    if (!this.seen.has(SEND_NDIS_VER_NAME)) missing.push(SEND_NDIS_VER_NAME);
    if (this.recv === null) missing.push(SEND_RECV_BUF_NAME);
    return missing;
  }

  private maybeCompleteInit(): void {
    if (!this.initDone && this.send !== null && this.missingForRndis().length === 0) this.initDone = true;
  }

  /**
   * §10 OV: a SEND_RNDIS_PKT during init ends it when everything but the
   * send buffer is in (it carries the RNDIS INITIALIZE); otherwise it is out
   * of order, which is fatal. Only the primary has an init phase.
   */
  private completeInitByRndis(w: QueueWorker, name: string): void {
    const missing = this.missingForRndis();
    if (w !== this.primary) throw this.fatal(w, "msg_type", name, "arrived on a subchannel before the primary finished NVSP initialization");
    if (missing.length > 0) throw this.fatal(w, "msg_type", name, `arrived during NVSP initialization before ${missing.join(", ")} (§10)`);
    this.initDone = true;
  }

  // ---- §10 initialization -----------------------------------------------------

  private init(w: QueueWorker, p: IncomingPacket, min: number, max: number): void {
    if (this.nvspVersionValue !== null) throw this.fatal(w, "msg_type", "INIT", "repeated after a successful INIT");
    let chosen: number | null = null;
    for (const v of NVSP_PROTOCOL_VERSIONS) if (v >= min && v <= max && (chosen === null || v > chosen)) chosen = v;
    // OV reads only min_protocol_ver; Linux sends min = max, so both agree for it.
    if (chosen === null && NVSP_PROTOCOL_VERSIONS.has(min)) chosen = min;
    if (chosen !== null) this.nvspVersionValue = chosen;
    const reply = this.nvsp(
      {
        kind: "init_complete",
        // Deprecated field: OV writes 2 for v1 and 0xFFFFFFFF otherwise.
        negotiatedProtocolVersion: chosen === NVSP_PROTOCOL_VERSION_1 ? 2 : 0xffffffff,
        maxMdlChainLength: NVSP_OPENVMM_MAX_MDL_CHAIN_LEN,
        // §9.2 OV: an unsupported version gets status NONE; the guest tries the next.
        status: chosen === null ? NVSP_STAT_NONE : NVSP_STAT_SUCCESS,
      },
      chosen ?? NVSP_PROTOCOL_VERSION_1,
    );
    if ((p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0) this.reply(w, p.transId, reply);
  }

  private receiveBuffer(w: QueueWorker, p: IncomingPacket, name: string, gpadl: number, id: number, wantsReply: boolean): void {
    this.once(w, name);
    const version = this.nvspVersionValue ?? NVSP_PROTOCOL_VERSION_1;
    // OV: from v2 the MTU comes with NDIS_CONFIG, which must come first.
    if (version >= NVSP_PROTOCOL_VERSION_2 && !this.seen.has(SEND_NDIS_CONFIG_NAME)) {
      throw this.fatal(w, "msg_type", name, `needs ${SEND_NDIS_CONFIG_NAME} first from NVSP v2 on`);
    }
    const view = w.channel.gpadl(gpadl); // unknown / foreign GPADL → ProtocolError → fatal
    const subAllocSize = NETVSP_RX_HEADER_ROOM + this.config.mtu + ETH_HLEN + NETVSP_RX_FOOTER;
    const count = Math.floor(view.length / subAllocSize);
    let status = NVSP_STAT_SUCCESS;
    // The control reserve plus at least one data sub-allocation, or the NIC could never receive.
    if (count <= NETVSP_RX_RESERVED_CONTROL_BUFFERS) {
      status = NVSP_STAT_FAIL;
    } else {
      const bytes = view.contiguous && view.length > 0 ? view.span(0, view.length) : null;
      const dataView = bytes === null ? null : new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.recv = { view, id, subAllocSize, count, bytes, dataView };
      this.freeControl = Array.from({ length: NETVSP_RX_RESERVED_CONTROL_BUFFERS }, (_, i) => i);
      this.freeData = IdQueue.range(NETVSP_RX_RESERVED_CONTROL_BUFFERS, count);
    }
    if (!wantsReply) return;
    const sections = status === NVSP_STAT_SUCCESS ? [{ offset: 0, subAllocSize, numSubAllocs: count, endOffset: subAllocSize * count }] : [];
    this.reply(w, p.transId, this.nvsp({ kind: "send_recv_buf_complete", status, sections }));
  }

  private sendBuffer(w: QueueWorker, p: IncomingPacket, name: string, gpadl: number, wantsReply: boolean): void {
    this.once(w, name);
    const view = w.channel.gpadl(gpadl);
    const sections = Math.floor(view.length / NETVSP_SEND_SECTION_SIZE);
    const status = sections > 0 ? NVSP_STAT_SUCCESS : NVSP_STAT_FAIL;
    if (sections > 0) this.send = { view, sections };
    if (wantsReply) this.reply(w, p.transId, this.nvsp({ kind: "send_send_buf_complete", status, sectionSize: status === NVSP_STAT_SUCCESS ? NETVSP_SEND_SECTION_SIZE : 0 }));
  }

  // ---- §12 subchannels --------------------------------------------------------

  private allocateSubchannels(w: QueueWorker, p: IncomingPacket, n: number): void {
    const limit = Math.min(this.config.maxQueues - 1, w.channel.device.offer.subchannelLimit);
    const dataSubAllocs = (this.recv?.count ?? 0) - NETVSP_RX_RESERVED_CONTROL_BUFFERS;
    // OV: n < max queues and at least one data sub-allocation per queue.
    const ok = n >= 1 && n <= limit && dataSubAllocs >= n + 1 && this.requestedSubchannels === 0;
    if ((p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0) {
      this.reply(w, p.transId, this.nvsp({ kind: "subchn_comp", status: ok ? NVSP_STAT_SUCCESS : NVSP_STAT_FAIL, numSubchannels: ok ? n : 0 }));
    }
    if (!ok) return;
    this.requestedSubchannels = n;
    this.rssTable = defaultTable(n + 1);
    const missing = n - w.channel.device.subchannels().length;
    if (missing > 0) {
      try {
        this.server.offerSubchannels(w.channel.device, missing);
      } catch (e) {
        // The guest is going away: nobody to offer to.
        if (!(e instanceof VmbusSimError)) throw e;
      }
    } else {
      this.maybeSendIndirectionTable();
    }
  }

  /** §12 OV: once every requested subchannel is open, SEND_INDIRECTION_TABLE (16 entries, i mod queues, offset 12) on the primary. */
  private maybeSendIndirectionTable(): void {
    const pw = this.primary;
    const n = this.requestedSubchannels;
    if (pw === null || n === 0 || this.sendTableSent) return;
    if ((this.nvspVersionValue ?? 0) < NVSP_PROTOCOL_VERSION_5) return;
    const open = [...this.workers.values()].filter((x) => x !== pw && x.queue <= n).length;
    if (open < n) return;
    this.sendTableSent = true;
    const table = Array.from({ length: 16 }, (_, i) => i % (n + 1));
    const bytes = encodeNvspMessage({ kind: "send_table", table, offset: 12 });
    pw.channel.send((wr) => wr.writeInband(0, bytes, 0), RingWriter.packetTotal(0, bytes.length)).catch(() => {
      // The primary closed first; a reopened one starts over.
    });
  }

  // ---- §11.1 / §13 SEND_RNDIS_PKT ---------------------------------------------

  private sendRndisPacket(w: QueueWorker, p: IncomingPacket, channelType: number, index: number, size: number, wantsReply: boolean): void {
    if (this.recv === null && this.rndisStateValue === "initializing") {
      // §10: RNDIS needs the receive buffer (its answers go there).
      throw this.fatal(w, "msg_type", "SEND_RNDIS_PKT", "arrived before SEND_RECV_BUF");
    }
    const length = this.gather(w, p, index, size);
    const at = this.txAt;
    if (channelType === NVSP_RNDIS_CHANNEL_TYPE_CONTROL) {
      if (w !== this.primary) throw this.fatal(w, "channel_type", channelType, "control messages are legal on the primary channel only");
      const bytes = this.txCopies.bytes.slice(at, at + length);
      this.txCopies.unreserve(at);
      const status = this.control(w, bytes);
      if (wantsReply) this.reply(w, packetTransId(p), this.rndisPktComplete(status));
      return;
    }
    this.counters.txPackets++;
    let status: number;
    const split = this.txPieces > 1 ? this.splitRndisHeader(at, length) : null;
    if (split !== null) {
      this.txCopies.unreserve(at);
      this.lastTxError = split;
      this.counters.drops["tx-header-split"]++;
      status = NVSP_STAT_FAIL;
    } else {
      status = this.transmit(w, at, length);
    }
    if (status !== NVSP_STAT_SUCCESS) this.counters.txPacketsFailed++;
    if (wantsReply) this.reply(w, packetTransId(p), this.rndisPktComplete(status));
  }

  /** Where `gather` put the bytes (in `txCopies`' current chunk). */
  private txAt = 0;
  /** End (from `txAt`) of each piece `gather` joined — the section's bytes, then each GPA range — and their number. */
  private txPieceEnds = new Uint32Array(8);
  private txPieces = 0;

  /**
   * Copies the RNDIS bytes of a SEND_RNDIS_PKT — the section's used bytes,
   * then the GPA ranges (§14 OV) — into `txCopies` (at `txAt`) and returns
   * their length. Every reference is checked before a byte is copied.
   */
  private gather(w: QueueWorker, p: IncomingPacket, index: number, size: number): number {
    let sectionBytes = 0;
    let section: SendBuffer | null = null;
    if (index !== NETVSC_INVALID_INDEX) {
      const sb = this.send;
      if (sb === null) throw this.fatal(w, "send_buf_section_index", index, "names a section but no send buffer was given");
      if (index >= sb.sections) throw this.fatal(w, "send_buf_section_index", index, `is outside the ${sb.sections}-section send buffer`);
      if (size === 0 || size > NETVSP_SEND_SECTION_SIZE) {
        throw this.fatal(w, "send_buf_section_size", size, `must be in [1, ${NETVSP_SEND_SECTION_SIZE}]`);
      }
      section = sb;
      sectionBytes = size;
    }
    let views: PagedView[] | null = null;
    let total = sectionBytes;
    let pieces = 0;
    if (section !== null) this.txPieceEnds[pieces++] = sectionBytes;
    if (p.type === VM_PKT_DATA_USING_GPA_DIRECT) {
      const list = w.ranges.parse(p).toRanges();
      views = [];
      if (this.txPieceEnds.length < list.length + 1) this.txPieceEnds = new Uint32Array(2 * (list.length + 1));
      for (let i = 0; i < list.length; i++) {
        const range = list[i];
        if (range === undefined) continue;
        // Outside guest memory → GpadlAccessError → fatal.
        const view = w.channel.gpaRange(range, `SEND_RNDIS_PKT range ${i}`);
        views.push(view);
        total += view.length;
        this.txPieceEnds[pieces++] = total;
      }
    }
    this.txPieces = pieces;
    const arena = this.txCopies;
    const at = arena.reserve(total);
    this.txAt = at;
    if (section !== null) section.view.readInto(index * NETVSP_SEND_SECTION_SIZE, arena.bytes, at, sectionBytes);
    if (views !== null) {
      let to = at + sectionBytes;
      for (const view of views) {
        view.readInto(0, arena.bytes, to, view.length);
        to += view.length;
      }
    }
    return total;
  }

  /**
   * §11.1: a PACKET's header, `rndis_packet` and PPIs must lie in the one
   * piece — send-buffer section or GPA range — its message starts in. OV
   * reads them from that range only (the spec quotes its error "rndis
   * headers missing or split across a page"), which is why Linux since May
   * 2025 sends one range per contiguous chunk instead of one per page: a
   * header straddling a page boundary was refused. One range may span pages;
   * two ranges never join. Joining the pieces first, as `gather` does, would
   * hide the split. Control messages are exempt: Linux splits them at a page
   * boundary (§11.1) and OV reads them through all ranges.
   * Returns the error for the first message that crosses, or null. A message
   * whose lengths are wrong is left to `transmit`, which fails it anyway.
   */
  private splitRndisHeader(at: number, length: number): ProtocolError | null {
    const dv = this.txCopies.dataView;
    const ends = this.txPieceEnds;
    let piece = 0;
    for (let off = 0, index = 0; off + RNDIS_HEADER_SIZE <= length; index++) {
      const type = dv.getUint32(at + off, true);
      const msgLen = dv.getUint32(at + off + 4, true);
      if (msgLen < RNDIS_HEADER_SIZE || msgLen > length - off) return null;
      if (type === RNDIS_MSG_PACKET) {
        let end = off + RNDIS_PACKET_MESSAGE_SIZE;
        if (msgLen >= RNDIS_PACKET_MESSAGE_SIZE) {
          const ppiOffset = dv.getUint32(at + off + RNDIS_PACKET_LAYOUT.per_pkt_info_offset.offset, true);
          const ppiLen = dv.getUint32(at + off + RNDIS_PACKET_LAYOUT.per_pkt_info_len.offset, true);
          if (ppiLen !== 0) end = Math.max(end, off + RNDIS_HEADER_SIZE + ppiOffset + ppiLen);
        }
        end = Math.min(end, off + msgLen);
        while ((ends[piece] as number) <= off) piece++;
        const pieceEnd = ends[piece] as number;
        if (end > pieceEnd) {
          return new ProtocolError(
            "RNDIS",
            `PACKET ${index} header and PPI bytes`,
            end - off,
            `must lie in the GPA range (or section) the message starts in, which holds ${pieceEnd - off} of them (§11.1: no header split across ranges)`,
          );
        }
      }
      off += msgLen;
    }
    return null;
  }

  private countRndis(kind: string): void {
    this.counters.rndis[kind] = (this.counters.rndis[kind] ?? 0) + 1;
  }

  /**
   * §13.2 / §14: every message of the gathered bytes must be a valid
   * PACKET; then the frames go to the switch. Checked in place first (no
   * side effect until all pass); a message that is not a plain valid PACKET
   * (another type, a rule broken, OOB data, a VLAN record to apply) sends
   * the whole packet through the decoder, which counts and answers exactly
   * as it always did.
   */
  private transmit(w: QueueWorker, at: number, length: number): number {
    const arena = this.txCopies;
    const bytes = arena.bytes;
    const scan = this.txScan;
    const maxUntagged = this.config.mtu + ETH_HLEN;
    const end = at + length;
    let spans = w.txSpans;
    let n = 0;
    let p = at;
    while (p < end) {
      if (!scanRndisPacket(arena.dataView, p, end - p, scan)) break;
      if (scan.oobDataLength !== 0 || scan.numOobDataElements !== 0 || scan.vcHandle !== 0 || scan.hasVlanPpi) break;
      const start = scan.dataStart;
      const len = scan.dataLength;
      const tagged = len >= ETH_HLEN && bytes[start + 12] === ETH_P_8021Q >> 8 && bytes[start + 13] === (ETH_P_8021Q & 0xff);
      if (len < ETH_HLEN || len > maxUntagged + (tagged ? VLAN_HLEN : 0)) break;
      if (2 * n + 2 > spans.length) {
        const grown = new Uint32Array(2 * spans.length);
        grown.set(spans);
        spans = w.txSpans = grown;
      }
      spans[2 * n] = start;
      spans[2 * n + 1] = len;
      n++;
      p += scan.msgLen;
    }
    if (p !== end || length === 0) {
      const copy = bytes.slice(at, end);
      arena.unreserve(at);
      return this.transmitDecoded(w, copy);
    }
    const c = this.counters;
    c.rndis["packet"] = (c.rndis["packet"] ?? 0) + n;
    const port = this.port;
    port.beginBurst();
    try {
      for (let i = 0; i < n; i++) {
        const len = spans[2 * i + 1] as number;
        c.txFrames++;
        c.txBytes += len;
        w.txFrames++;
        port.sendOwned(arena.view(spans[2 * i] as number, len));
      }
    } finally {
      port.endBurst();
    }
    return NVSP_STAT_SUCCESS;
  }

  /** `transmit` by the full decoder, for what the in-place check did not take. */
  private transmitDecoded(w: QueueWorker, bytes: Uint8Array): number {
    const frames: Uint8Array[] = [];
    try {
      if (bytes.length === 0) throw new ProtocolError("RNDIS", "SEND_RNDIS_PKT data length", 0, "must hold at least one RNDIS message");
      for (const raw of splitRndisMessages(bytes)) {
        const m = decodeRndisMessage(raw);
        this.countRndis(m.kind);
        if (m.kind !== "packet") throw new ProtocolError("RNDIS", "ndis_msg_type", m.kind, "must be PACKET on the data channel (§13.2)");
        frames.push(this.checkPacket(m));
      }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.lastTxError = e;
      this.counters.drops["tx-invalid"]++;
      return NVSP_STAT_FAIL;
    }
    const c = this.counters;
    this.port.beginBurst();
    try {
      for (const f of frames) {
        c.txFrames++;
        c.txBytes += f.length;
        w.txFrames++;
        this.port.send(f);
      }
    } finally {
      this.port.endBurst();
    }
    return NVSP_STAT_SUCCESS;
  }

  /** OV TX checks: no OOB data, connectionless, 14 ≤ data_len ≤ MTU + 14 (+ 4 tagged); a VLAN PPI becomes an 802.1Q tag. */
  private checkPacket(m: RndisPacketMessage): Uint8Array {
    if ((m.oobDataLength ?? 0) !== 0 || (m.numOobDataElements ?? 0) !== 0) {
      throw new ProtocolError("RNDIS", "rndis_packet.oob_data_len", m.oobDataLength ?? 0, "must be 0 (no out-of-band data)");
    }
    if ((m.vcHandle ?? 0) !== 0) throw new ProtocolError("RNDIS", "rndis_packet.vc_handle", m.vcHandle ?? 0, "must be 0 (connectionless)");
    let frame = m.data;
    const vlan = findPpi(m.ppis, IEEE_8021Q_INFO);
    if (vlan !== undefined && frame.length >= ETH_HLEN) {
      const info = ppiU32(vlan);
      // NDIS_NET_BUFLIST_8021Q_INFO: priority b0–2, CFI b3, VLAN id b4–15 → TCI pcp b13–15, dei b12, vid b0–11.
      const tci = (((info & 7) << 13) | (((info >> 3) & 1) << 12) | ((info >> 4) & 0xfff)) & 0xffff;
      const tagged = new Uint8Array(frame.length + VLAN_HLEN);
      tagged.set(frame.subarray(0, 12), 0);
      tagged[12] = ETH_P_8021Q >> 8;
      tagged[13] = ETH_P_8021Q & 0xff;
      tagged[14] = tci >> 8;
      tagged[15] = tci & 0xff;
      tagged.set(frame.subarray(12), 16);
      frame = tagged;
    }
    const tagged = frame.length >= ETH_HLEN && (((frame[12] ?? 0) << 8) | (frame[13] ?? 0)) === ETH_P_8021Q;
    const max = this.config.mtu + ETH_HLEN + (tagged ? VLAN_HLEN : 0);
    if (frame.length < ETH_HLEN || frame.length > max) {
      throw new ProtocolError("RNDIS", "rndis_packet.data_len", frame.length, `must be in [${ETH_HLEN}, ${max}] (MTU ${this.config.mtu} + headers)`);
    }
    return frame;
  }

  // ---- §13 RNDIS control ------------------------------------------------------

  /** Handles the control messages of one SEND_RNDIS_PKT; returns the NVSP status for its completion. */
  private control(w: QueueWorker, bytes: Uint8Array): number {
    let msgs: RndisMessage[];
    try {
      msgs = splitRndisMessages(bytes).map((b) => decodeRndisMessage(b));
    } catch (e) {
      // Bad lengths/offsets or an unknown type: this request fails (§14 per-packet).
      if (!(e instanceof ProtocolError)) throw e;
      this.lastTxError = e;
      this.countRndis("invalid");
      return NVSP_STAT_FAIL;
    }
    let status = NVSP_STAT_SUCCESS;
    for (const m of msgs) {
      this.countRndis(m.kind);
      if (m.kind === "initialize") {
        // §14 OV: a second INITIALIZE is fatal.
        if (this.rndisStateValue !== "initializing") throw this.fatal(w, "RNDIS INITIALIZE", m.requestId, "arrived while the device is already initialized");
        this.rndisStateValue = "operational";
        this.queueControl({
          kind: "initialize_cmplt",
          requestId: m.requestId,
          status: RNDIS_STATUS_SUCCESS,
          majorVersion: RNDIS_MAJOR_VERSION,
          minorVersion: RNDIS_MINOR_VERSION,
          deviceFlags: RNDIS_DF_CONNECTIONLESS,
          medium: RNDIS_MEDIUM_802_3,
          maxPacketsPerMessage: RNDIS_MAX_PKT_DEFAULT,
          maxTransferSize: NETVSP_MAX_XFER_SIZE,
          packetAlignmentFactor: NETVSP_PKT_ALIGNMENT_FACTOR,
          afListOffset: 0,
          afListSize: 0,
        });
        continue;
      }
      if (this.rndisStateValue === "halted") continue; // §14 OV: after HALT nothing is answered.
      if (this.rndisStateValue === "initializing") throw this.fatal(w, "RNDIS message", m.kind, "arrived before INITIALIZE");
      switch (m.kind) {
        case "query":
          this.queueControl(this.query(m.requestId, m.oid, m.info));
          break;
        case "set": {
          const status = this.set(m.oid, m.info);
          this.queueControl({ kind: "set_cmplt", requestId: m.requestId, status });
          // §13.4 (OV; NDIS requires it of a miniport): an applied
          // TCP_OFFLOAD_PARAMETERS set is followed by the configuration now in
          // force. This host offloads nothing, so the NDIS_OFFLOAD says so.
          if (m.oid === OID_TCP_OFFLOAD_PARAMETERS && status === RNDIS_STATUS_SUCCESS) {
            this.queueControl({ kind: "indicate_status", status: RNDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG, payload: encodeNdisOffload(emptyNdisOffload(NDIS_OFFLOAD_PARAMETERS_REVISION_3)) });
          }
          break;
        }
        case "keepalive":
          this.queueControl({ kind: "keepalive_cmplt", requestId: m.requestId, status: RNDIS_STATUS_SUCCESS });
          break;
        case "halt":
          // §13.8: no reply; the device stops indicating.
          this.rndisStateValue = "halted";
          break;
        case "reset":
        case "indicate_status":
        case "set_ex":
          // §14 OV: not implemented for a guest to send; the worker stops.
          throw this.fatal(w, "RNDIS message", m.kind, "is not implemented from the guest (OV: fatal)");
        default:
          // A PACKET or a completion on the control channel: this request fails.
          status = NVSP_STAT_FAIL;
      }
    }
    return status;
  }

  /** §13.5: the answers of OV, for every OID Linux queries at bring-up (§13.8). */
  private query(requestId: number, oid: number, input: Uint8Array): RndisMessage {
    const ok = (info: Uint8Array): RndisMessage => ({ kind: "query_cmplt", requestId, status: RNDIS_STATUS_SUCCESS, info });
    const c = this.config;
    const frameMax = c.mtu + ETH_HLEN;
    switch (oid) {
      case OID_GEN_SUPPORTED_LIST:
        return ok(u32s(...SUPPORTED_OIDS));
      case OID_GEN_HARDWARE_STATUS:
      case OID_GEN_MEDIA_SUPPORTED:
      case OID_GEN_MEDIA_IN_USE:
      case OID_802_3_MAXIMUM_LIST_SIZE:
      case OID_802_3_MAC_OPTIONS:
      case OID_802_3_RCV_ERROR_ALIGNMENT:
      case OID_802_3_XMIT_ONE_COLLISION:
      case OID_802_3_XMIT_MORE_COLLISIONS:
        return ok(u32s(0));
      case OID_GEN_MAXIMUM_LOOKAHEAD:
      case OID_GEN_CURRENT_LOOKAHEAD:
      case OID_GEN_MAXIMUM_FRAME_SIZE:
        return ok(u32s(c.mtu));
      case OID_GEN_MAXIMUM_TOTAL_SIZE:
      case OID_GEN_TRANSMIT_BLOCK_SIZE:
      case OID_GEN_RECEIVE_BLOCK_SIZE:
        return ok(u32s(frameMax));
      case OID_GEN_LINK_SPEED:
        // Units of 100 bit/s.
        return ok(u32s(Math.min(0xffffffff, Math.floor(c.linkSpeedBps / 100))));
      case OID_GEN_TRANSMIT_BUFFER_SPACE:
      case OID_GEN_RECEIVE_BUFFER_SPACE:
        return ok(u32s(NETVSP_BUFFER_SPACE));
      case OID_GEN_VENDOR_ID:
        return ok(u32s(NETVSP_VENDOR_ID));
      case OID_GEN_VENDOR_DESCRIPTION:
        return ok(new TextEncoder().encode(`${NETVSP_VENDOR_DESCRIPTION}\0`));
      case OID_GEN_DRIVER_VERSION:
      case OID_GEN_VENDOR_DRIVER_VERSION:
        return ok(Uint8Array.of(0x00, 0x01)); // u16 0x0100
      case OID_GEN_CURRENT_PACKET_FILTER:
        return ok(u32s(this.filter));
      case OID_GEN_MAC_OPTIONS:
        return ok(
          u32s(
            NDIS_MAC_OPTION_COPY_LOOKAHEAD_DATA |
              NDIS_MAC_OPTION_TRANSFERS_NOT_PEND |
              NDIS_MAC_OPTION_NO_LOOPBACK |
              NDIS_MAC_OPTION_8021P_PRIORITY |
              NDIS_MAC_OPTION_8021Q_VLAN,
          ),
        );
      case OID_GEN_MEDIA_CONNECT_STATUS:
        return ok(u32s(this.linkUpValue ? NDIS_MEDIA_STATE_CONNECTED : NDIS_MEDIA_STATE_DISCONNECTED));
      case OID_GEN_MAXIMUM_SEND_PACKETS:
        return ok(u32s(0xffffffff));
      case OID_GEN_FRIENDLY_NAME: {
        const out = new Uint8Array(512);
        out.set(utf16le(NETVSP_FRIENDLY_NAME).subarray(0, 510));
        return ok(out);
      }
      case OID_802_3_PERMANENT_ADDRESS:
        return ok(this.config.mac.slice());
      case OID_802_3_CURRENT_ADDRESS:
        return ok(this.currentMac.slice());
      case OID_GEN_LINK_STATE:
        return ok(encodeNdisLinkState(makeNdisLinkState(this.linkUpValue, BigInt(c.linkSpeedBps))));
      case OID_GEN_MAX_LINK_SPEED:
        return ok(encodeNdisLinkSpeed(BigInt(c.linkSpeedBps), BigInt(c.linkSpeedBps)));
      case OID_OFFLOAD_ENCAPSULATION:
        return ok(
          encodeNdisOffloadEncapsulation({
            header: { type: NDIS_OBJECT_TYPE_OFFLOAD_ENCAPSULATION, revision: 1, size: NDIS_OFFLOAD_ENCAPSULATION_SIZE },
            ipv4Enabled: 1,
            ipv4EncapsulationType: NDIS_OFFLOAD_ENCAP_8023,
            ipv4HeaderSize: ETH_HLEN,
            ipv6Enabled: 1,
            ipv6EncapsulationType: NDIS_OFFLOAD_ENCAP_8023,
            ipv6HeaderSize: ETH_HLEN,
          }),
        );
      case OID_GEN_RECEIVE_SCALE_CAPABILITIES:
        // §13.5 OV: Toeplitz, TCP/IPv4 and TCP/IPv6, one interrupt message, 128 entries (never 0).
        return ok(encodeNdisRecvScaleCap(makeNdisRecvScaleCap(NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4 | NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6 | NDIS_HASH_FUNC_TOEPLITZ, 1, c.maxQueues, ITAB_NUM)));
      case OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES:
      case OID_TCP_OFFLOAD_CURRENT_CONFIG: {
        // Linux passes an NDIS_OFFLOAD header naming the revision it can read (§13.7).
        let revision = NDIS_OFFLOAD_PARAMETERS_REVISION_3;
        if (input.length >= 4) {
          const h = decodeNdisObjectHeader(input);
          if (h.revision >= 1 && h.revision < revision) revision = h.revision;
        }
        // No checksum or segmentation offload: the host computes nothing for the guest.
        return ok(encodeNdisOffload(emptyNdisOffload(revision)));
      }
      case OID_GEN_XMIT_OK:
        return ok(u32s(this.counters.txFrames >>> 0));
      case OID_GEN_RCV_OK:
        return ok(u32s(this.counters.rxFrames >>> 0));
      case OID_GEN_XMIT_ERROR:
        return ok(u32s((this.counters.drops["tx-invalid"] + this.counters.drops["tx-header-split"]) >>> 0));
      case OID_GEN_RCV_ERROR:
        return ok(u32s(0));
      case OID_GEN_RCV_NO_BUFFER:
        return ok(u32s(this.counters.drops["no-buffer"] >>> 0));
      case OID_GEN_BYTES_XMIT:
        return ok(u64(this.counters.txBytes));
      case OID_GEN_BYTES_RCV:
        return ok(u64(this.counters.rxBytes));
      default:
        return { kind: "query_cmplt", requestId, status: RNDIS_STATUS_NOT_SUPPORTED, info: new Uint8Array(0) };
    }
  }

  /** §13.5 OV sets; others NOT_SUPPORTED, malformed input INVALID_DATA. */
  private set(oid: number, info: Uint8Array): number {
    try {
      switch (oid) {
        case OID_GEN_CURRENT_PACKET_FILTER: {
          if (info.length < 4) return RNDIS_STATUS_INVALID_DATA;
          this.filter = new DataView(info.buffer, info.byteOffset, 4).getUint32(0, true);
          return RNDIS_STATUS_SUCCESS;
        }
        case OID_TCP_OFFLOAD_PARAMETERS: {
          const params = decodeNdisOffloadParams(info);
          // OV: LSOv1 cannot be enabled.
          if (params.lsoV1 === NDIS_OFFLOAD_PARAMETERS_LSOV1_ENABLED) return RNDIS_STATUS_NOT_SUPPORTED;
          this.offloadParams = params;
          return RNDIS_STATUS_SUCCESS;
        }
        case OID_OFFLOAD_ENCAPSULATION: {
          const e = decodeNdisOffloadEncapsulation(info);
          const good = (enabled: number, type: number, size: number): boolean => enabled === 0 || (type === NDIS_OFFLOAD_ENCAP_8023 && size === ETH_HLEN);
          return good(e.ipv4Enabled, e.ipv4EncapsulationType, e.ipv4HeaderSize) && good(e.ipv6Enabled, e.ipv6EncapsulationType, e.ipv6HeaderSize)
            ? RNDIS_STATUS_SUCCESS
            : RNDIS_STATUS_INVALID_DATA;
        }
        case OID_GEN_RNDIS_CONFIG_PARAMETER: {
          const p = decodeRndisConfigParameter(info);
          if (p.name === "NetworkAddress") {
            // Linux `rndis_filter_set_device_mac`: 12 hex digits.
            if (typeof p.value !== "string" || !/^[0-9a-fA-F]{12}$/.test(p.value)) return RNDIS_STATUS_INVALID_DATA;
            const mac = Uint8Array.from({ length: 6 }, (_, i) => parseInt((p.value as string).slice(2 * i, 2 * i + 2), 16));
            if (((mac[0] ?? 0) & 1) !== 0) return RNDIS_STATUS_INVALID_DATA;
            this.currentMac = mac;
          }
          return RNDIS_STATUS_SUCCESS;
        }
        case OID_GEN_NETWORK_LAYER_ADDRESSES:
          return RNDIS_STATUS_SUCCESS;
        case OID_GEN_RECEIVE_SCALE_PARAMETERS:
          return this.setRss(info);
        default:
          return RNDIS_STATUS_NOT_SUPPORTED;
      }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return RNDIS_STATUS_INVALID_DATA;
    }
  }

  /** §13.7 OV rules for RSS parameters. */
  private setRss(info: Uint8Array): number {
    const p = decodeNdisRecvScaleParam(info);
    if ((p.flag & NDIS_RSS_PARAM_FLAG_DISABLE_RSS) !== 0 || (p.hashinfo & 0xff) === 0) {
      this.rssEnabled = false;
      return RNDIS_STATUS_SUCCESS;
    }
    const queues = 1 + this.requestedSubchannels;
    let table = this.rssTable.length > 0 ? this.rssTable : defaultTable(queues);
    if ((p.flag & NDIS_RSS_PARAM_FLAG_ITABLE_UNCHANGED) === 0) {
      if (p.indirectTabsize === 0) return RNDIS_STATUS_INVALID_DATA;
      if (p.indirectionTable.some((q) => q >= queues)) return RNDIS_STATUS_INVALID_DATA;
      // Shorter tables repeat (OV).
      table = Array.from({ length: ITAB_NUM }, (_, i) => p.indirectionTable[i % p.indirectionTable.length] ?? 0);
    }
    let key = this.rssKey;
    if ((p.flag & NDIS_RSS_PARAM_FLAG_HASH_KEY_UNCHANGED) === 0) {
      if (p.hashKey.length !== NETVSC_HASH_KEYLEN) return RNDIS_STATUS_INVALID_DATA;
      key = p.hashKey.slice();
    }
    this.rssTable = table;
    this.rssKey = key;
    this.rssEnabled = true;
    return RNDIS_STATUS_SUCCESS;
  }

  /** Puts a control response in the queue and sends what control sub-allocations allow. */
  private queueControl(msg: RndisMessage): void {
    const bytes = encodeRndisMessage(msg);
    const r = this.recv;
    if (r === null || bytes.length > r.subAllocSize) return;
    this.countRndis(msg.kind);
    if (this.freeControl.length === 0) this.counters.controlQueued++;
    this.controlQueue.push(bytes);
    this.controlQueueBytes += bytes.length;
    if (this.controlQueueBytes > NETVSP_CONTROL_QUEUE_MAX_BYTES && this.primary !== null) {
      // A guest that never completes our indications while asking more (§14).
      throw this.fatal(this.primary, "control queue", this.controlQueueBytes, `exceeds ${NETVSP_CONTROL_QUEUE_MAX_BYTES} bytes: the guest does not complete receive indications`);
    }
    this.flushControl();
  }

  private flushControl(): void {
    const pw = this.primary;
    const r = this.recv;
    if (pw === null || r === null || pw.closed) return;
    while (this.controlQueue.length > 0 && this.freeControl.length > 0) {
      const bytes = this.controlQueue.shift() as Uint8Array;
      this.controlQueueBytes -= bytes.length;
      const id = this.freeControl.shift() as number;
      r.view.write(id * r.subAllocSize, bytes);
      const ranges: XferPageRange[] = [{ byteOffset: id * r.subAllocSize, byteCount: bytes.length }];
      this.indicate(pw, id, [id], ranges, NVSP_RNDIS_CHANNEL_TYPE_CONTROL, true);
    }
  }

  // ---- §11.2 receive -----------------------------------------------------------

  /** A frame from the switch. */
  private receiveFrame(frame: Uint8Array): void {
    const c = this.counters;
    if (!this.linkUpValue) {
      c.drops["link-down"]++;
      return;
    }
    if (this.primary === null || this.recv === null || this.rndisStateValue !== "operational") {
      c.drops["not-ready"]++;
      return;
    }
    if (!this.passesFilter(frame)) {
      c.drops.filtered++;
      return;
    }
    const hash = this.rssEnabled ? rssHashWith(this.toeplitzTable(), frame) : -1;
    const w = this.pickQueue(hash);
    if (w.pending.length >= NETVSP_RX_PENDING_MAX) {
      c.drops["queue-full"]++;
      return;
    }
    if (w.pending.length === 0) w.pendingHashKey = this.rssKey;
    w.pending.push(frame);
    w.pendingHashes.push(hash);
    if (!w.flushScheduled) {
      w.flushScheduled = true;
      // Batch every frame that reaches this queue at this virtual instant.
      (w.rxTimer as Timer).arm(0);
    }
  }

  /** The Toeplitz table of the current key (keys change only by an RSS SET, which replaces the array). */
  private toeplitzTable(): ToeplitzTable {
    let t = this.rssKeyTable;
    if (t === null || t.key !== this.rssKey) t = this.rssKeyTable = new ToeplitzTable(this.rssKey);
    return t;
  }

  /** §13.6: directed to our MAC, broadcast, multicast (no list support: MULTICAST acts as ALL_MULTICAST), promiscuous. */
  private passesFilter(frame: Uint8Array): boolean {
    const f = this.filter;
    if (f === 0) return false;
    if ((f & NDIS_PACKET_TYPE_PROMISCUOUS) !== 0) return true;
    const first = frame[0] ?? 0;
    if ((first & 1) === 0) {
      if ((f & NDIS_PACKET_TYPE_DIRECTED) === 0) return false;
      for (let i = 0; i < 6; i++) if (frame[i] !== this.currentMac[i]) return false;
      return true;
    }
    let broadcast = true;
    for (let i = 0; i < 6; i++) if (frame[i] !== 0xff) broadcast = false;
    if (broadcast) return (f & NDIS_PACKET_TYPE_BROADCAST) !== 0;
    return (f & (NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST)) !== 0;
  }

  /** The queue for an RSS hash (−1: none → the primary). */
  private pickQueue(hash: number): QueueWorker {
    const pw = this.primary as QueueWorker;
    if (hash < 0 || this.rssTable.length === 0) return pw;
    const q = this.rssTable[hash & (ITAB_NUM - 1)] ?? 0;
    if (q === 0) return pw;
    return this.queueWorkers[q] ?? pw;
  }

  private flushRx(w: QueueWorker): void {
    w.flushScheduled = false;
    const frames = w.pending;
    const hashes = w.pendingHashes;
    // The hashes taken at arrival hold if the key is still the one they were taken with.
    const hashesValid = w.pendingHashKey === this.rssKey;
    w.pending = [];
    w.pendingHashes = [];
    const r = this.recv;
    const c = this.counters;
    if (w.closed || r === null || this.rndisStateValue !== "operational") {
      c.drops["not-ready"] += frames.length;
      return;
    }
    const withHash = this.rssEnabled;
    const subAllocSize = r.subAllocSize;
    const ranges = w.rxRanges;
    const pool = w.rxRangePool;
    for (let start = 0; start < frames.length; start += NETVSP_RX_BATCH_SIZE) {
      const end = Math.min(frames.length, start + NETVSP_RX_BATCH_SIZE);
      const ids: number[] = [];
      ranges.length = 0;
      let bytes = 0;
      for (let i = start; i < end; i++) {
        const frame = frames[i] as Uint8Array;
        const id = this.freeData.shift();
        if (id < 0) {
          c.drops["no-buffer"]++;
          continue;
        }
        let hash = 0;
        if (withHash) {
          const h = hashesValid ? (hashes[i] as number) : -1;
          hash = h >= 0 ? h : Math.max(0, rssHashWith(this.toeplitzTable(), frame));
        }
        const len = rndisPacketLength(frame.length, withHash);
        const at = id * subAllocSize;
        if (r.dataView !== null && at + len <= r.view.length) {
          writeRndisPacketInto(r.dataView, r.bytes as Uint8Array, at, len, frame, 0, frame.length, withHash, hash);
        } else {
          // Built in the host's own buffer, then copied through the view (which refuses bytes past the GPADL).
          if (len > this.rxBytes.length) {
            this.rxBytes = new Uint8Array(len);
            this.rxView = new DataView(this.rxBytes.buffer);
          }
          writeRndisPacketInto(this.rxView, this.rxBytes, 0, len, frame, 0, frame.length, withHash, hash);
          r.view.write(at, this.rxBytes, 0, len);
        }
        ids.push(id);
        let range = pool[ranges.length];
        if (range === undefined) {
          range = { byteOffset: 0, byteCount: 0 };
          pool.push(range);
        }
        range.byteOffset = id * subAllocSize;
        range.byteCount = len;
        ranges.push(range);
        bytes += frame.length;
      }
      if (ids.length === 0) continue;
      if (this.indicate(w, ids[0] as number, ids, ranges, NVSP_RNDIS_CHANNEL_TYPE_DATA, false)) {
        c.rxFrames += ids.length;
        c.rxBytes += bytes;
        w.rxFrames += ids.length;
        this.counters.rndis["packet"] = (this.counters.rndis["packet"] ?? 0) + ids.length;
      } else {
        c.drops["ring-full"] += ids.length;
      }
    }
  }

  /**
   * Sends one transfer-page packet (set id = the receive buffer id, payload
   * NVSP SEND_RNDIS_PKT {channel type, 0xFFFFFFFF, 0}, completion requested).
   * Data that finds no ring room is dropped and its sub-allocations recycled
   * (OV); control responses wait in the endpoint instead (they must not be lost).
   */
  private indicate(w: QueueWorker, transId: number, ids: number[], ranges: XferPageRange[], channelType: number, mustDeliver: boolean): boolean {
    const r = this.recv;
    const ep = w.channel.endpoint;
    if (r === null || ep === null || ep.closed) {
      this.release(ids);
      return false;
    }
    const payload = this.indicationPayload(channelType);
    const write = (wr: RingWriter): boolean => wr.writeXferPages(transId, r.id, ranges, payload);
    w.inflight.set(transId, ids);
    if (ep.tryWrite(write)) {
      if (!w.inHandler) ep.commit();
      this.counters.rxPackets++;
      return true;
    }
    if (mustDeliver) {
      this.counters.rxPackets++;
      // Transfer-page header after the descriptor: 8 bytes + 8 per range.
      const total = RingWriter.packetTotal(8 + 8 * ranges.length, payload.length);
      ep.send(write, total).catch(() => {
        // The channel closed: close() recycles the sub-allocations.
      });
      return true;
    }
    w.inflight.delete(transId);
    this.release(ids);
    return false;
  }

  /** The guest's VM_PKT_COMP for a transfer-page packet (§11.2): its sub-allocations are free again. */
  private receiveCompletion(w: QueueWorker, p: IncomingPacket): void {
    const id = p.transIdNumber;
    const ids = w.inflight.get(id);
    // §14: an unknown completion id is fatal (it would free buffers the guest still reads).
    if (ids === undefined) throw this.fatal(w, "completion transaction id", p.transId, "names no transfer-page packet in flight on this channel");
    const off = p.dataOffset;
    if (p.length - off >= 4) {
      const type = p.view.getUint32(off, true);
      if (type !== NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE) throw this.fatal(w, "completion msg_type", type, "is not SEND_RNDIS_PKT_COMPLETE (108)");
    }
    w.inflight.delete(id);
    this.counters.rxCompletions++;
    this.release(ids);
  }

  private release(ids: readonly number[]): void {
    if (this.recv === null) return;
    let control = false;
    for (const id of ids) {
      if (id < NETVSP_RX_RESERVED_CONTROL_BUFFERS) {
        this.freeControl.push(id);
        control = true;
      } else {
        this.freeData.push(id);
      }
    }
    if (control) this.flushControl();
  }

  // ---- replies -------------------------------------------------------------------

  /** A VM_PKT_COMP for the guest's request; room was reserved when the request was taken. */
  private reply(w: QueueWorker, transId: TransId, bytes: Uint8Array): void {
    const ep = w.channel.endpoint;
    if (w.closed || ep === null || ep.closed) return;
    w.replyId = transId;
    w.replyBytes = bytes;
    if (ep.tryWrite(w.writeReply)) {
      if (!w.inHandler) ep.commit();
      return;
    }
    // Only a control indication queued ahead of us can cause this: wait behind it, in order.
    ep.send((wr) => wr.writeCompletion(transId, bytes), RingWriter.packetTotal(0, bytes.length)).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// Helpers

const SUPPORTED_OIDS: readonly number[] = [
  OID_GEN_SUPPORTED_LIST,
  OID_GEN_HARDWARE_STATUS,
  OID_GEN_MEDIA_SUPPORTED,
  OID_GEN_MEDIA_IN_USE,
  OID_GEN_MAXIMUM_LOOKAHEAD,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_LINK_SPEED,
  OID_GEN_TRANSMIT_BUFFER_SPACE,
  OID_GEN_RECEIVE_BUFFER_SPACE,
  OID_GEN_TRANSMIT_BLOCK_SIZE,
  OID_GEN_RECEIVE_BLOCK_SIZE,
  OID_GEN_VENDOR_ID,
  OID_GEN_VENDOR_DESCRIPTION,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_CURRENT_LOOKAHEAD,
  OID_GEN_DRIVER_VERSION,
  OID_GEN_MAXIMUM_TOTAL_SIZE,
  OID_GEN_MAC_OPTIONS,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_MAXIMUM_SEND_PACKETS,
  OID_GEN_VENDOR_DRIVER_VERSION,
  OID_GEN_NETWORK_LAYER_ADDRESSES,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_GEN_MAX_LINK_SPEED,
  OID_GEN_LINK_STATE,
  OID_GEN_RNDIS_CONFIG_PARAMETER,
  OID_GEN_XMIT_OK,
  OID_GEN_RCV_OK,
  OID_GEN_XMIT_ERROR,
  OID_GEN_RCV_ERROR,
  OID_GEN_RCV_NO_BUFFER,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_BYTES_RCV,
  OID_GEN_BYTES_XMIT,
  OID_802_3_PERMANENT_ADDRESS,
  OID_802_3_CURRENT_ADDRESS,
  OID_802_3_MAXIMUM_LIST_SIZE,
  OID_802_3_MAC_OPTIONS,
  OID_OFFLOAD_ENCAPSULATION,
  OID_802_3_RCV_ERROR_ALIGNMENT,
  OID_802_3_XMIT_ONE_COLLISION,
  OID_802_3_XMIT_MORE_COLLISIONS,
  OID_TCP_OFFLOAD_CURRENT_CONFIG,
  OID_TCP_OFFLOAD_PARAMETERS,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
];

function u32s(...values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true));
  return out;
}

function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.floor(value)), true);
  return out;
}

/** SEND_RNDIS_PKT's body ends at 16. */
const NVSP_SEND_RNDIS_PKT_SIZE = 16;
const SEND_RNDIS_PKT_NAME = nvspMessageTypeName(NVSP_MSG1_TYPE_SEND_RNDIS_PKT);
const SEND_NDIS_CONFIG_NAME = nvspMessageTypeName(NVSP_MSG2_TYPE_SEND_NDIS_CONFIG);
const SEND_NDIS_VER_NAME = nvspMessageTypeName(NVSP_MSG1_TYPE_SEND_NDIS_VER);
const SEND_RECV_BUF_NAME = nvspMessageTypeName(NVSP_MSG1_TYPE_SEND_RECV_BUF);

/** The packet's transaction id, as a number when it is one (no BigInt on the data path). */
function packetTransId(p: IncomingPacket): TransId {
  return p.transIdHi < 0x200000 ? p.transIdNumber : p.transId;
}

function msgType(bytes: Uint8Array): number {
  return bytes.length < 4 ? 0 : new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
}

function contentSize(msg: NvspMessage): number {
  return msg.kind === "send_recv_buf_complete" ? 12 + 16 * msg.sections.length : 0;
}

function defaultTable(queues: number): number[] {
  return Array.from({ length: ITAB_NUM }, (_, i) => i % queues);
}

/**
 * The Toeplitz hash (Microsoft RSS) of the frame's IPv4/IPv6 addresses and,
 * for unfragmented TCP/UDP, ports; null for other frames (→ queue 0).
 */
export function rssHash(key: Uint8Array, frame: Uint8Array): number | null {
  let l3 = ETH_HLEN;
  let type = ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
  if (type === ETH_P_8021Q) {
    type = ((frame[16] ?? 0) << 8) | (frame[17] ?? 0);
    l3 += VLAN_HLEN;
  }
  let input: Uint8Array;
  if (type === 0x0800 && frame.length >= l3 + 20) {
    const ihl = ((frame[l3] ?? 0) & 0xf) * 4;
    const proto = frame[l3 + 9] ?? 0;
    const frag = (((frame[l3 + 6] ?? 0) & 0x3f) << 8) | (frame[l3 + 7] ?? 0);
    const l4 = l3 + ihl;
    const ports = (proto === 6 || proto === 17) && frag === 0 && frame.length >= l4 + 4;
    input = new Uint8Array(ports ? 12 : 8);
    input.set(frame.subarray(l3 + 12, l3 + 20), 0);
    if (ports) input.set(frame.subarray(l4, l4 + 4), 8);
  } else if (type === 0x86dd && frame.length >= l3 + 40) {
    const next = frame[l3 + 6] ?? 0;
    const l4 = l3 + 40;
    const ports = (next === 6 || next === 17) && frame.length >= l4 + 4;
    input = new Uint8Array(ports ? 36 : 32);
    input.set(frame.subarray(l3 + 8, l3 + 40), 0);
    if (ports) input.set(frame.subarray(l4, l4 + 4), 32);
  } else {
    return null;
  }
  return toeplitz(key, input);
}

/** Toeplitz: for every set input bit, XOR in the 32-bit key window at that bit position. */
export function toeplitz(key: Uint8Array, input: Uint8Array): number {
  const keyBit = (i: number): number => (((key[i >> 3] ?? 0) >> (7 - (i & 7))) & 1);
  let window = (((key[0] ?? 0) << 24) | ((key[1] ?? 0) << 16) | ((key[2] ?? 0) << 8) | (key[3] ?? 0)) >>> 0;
  let next = 32;
  let result = 0;
  for (const b of input) {
    for (let bit = 7; bit >= 0; bit--) {
      if (((b >> bit) & 1) !== 0) result = (result ^ window) >>> 0;
      window = ((window << 1) | keyBit(next++)) >>> 0;
    }
  }
  return result;
}

/**
 * `toeplitz` for one key as a table: entry [i × 256 + b] is what input byte
 * `b` at position `i` XORs into the hash (the key windows of its set bits).
 * Covers the 36 input bytes `rssHash` can produce.
 */
export class ToeplitzTable {
  readonly table = new Uint32Array(TOEPLITZ_MAX_INPUT * 256);

  constructor(readonly key: Uint8Array) {
    // window[j]: the 32 key bits starting at bit j (bits past the key are 0, as `toeplitz` reads them).
    const bits = TOEPLITZ_MAX_INPUT * 8;
    const window = new Uint32Array(bits);
    let w = (((key[0] ?? 0) << 24) | ((key[1] ?? 0) << 16) | ((key[2] ?? 0) << 8) | (key[3] ?? 0)) >>> 0;
    for (let j = 0; j < bits; j++) {
      window[j] = w;
      const next = j + 32;
      w = ((w << 1) | (((key[next >> 3] ?? 0) >> (7 - (next & 7))) & 1)) >>> 0;
    }
    for (let i = 0; i < TOEPLITZ_MAX_INPUT; i++) {
      for (let b = 0; b < 256; b++) {
        let x = 0;
        for (let bit = 0; bit < 8; bit++) if (((b >> (7 - bit)) & 1) !== 0) x ^= window[i * 8 + bit] as number;
        this.table[i * 256 + b] = x >>> 0;
      }
    }
  }
}

const TOEPLITZ_MAX_INPUT = 36;

/** `rssHash` by table, reading the frame in place: the same hash, or −1 where `rssHash` says null. */
export function rssHashWith(t: ToeplitzTable, frame: Uint8Array): number {
  const tab = t.table;
  const n = frame.length;
  let l3 = ETH_HLEN;
  let type = ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
  if (type === ETH_P_8021Q) {
    type = ((frame[16] ?? 0) << 8) | (frame[17] ?? 0);
    l3 += VLAN_HLEN;
  }
  let h = 0;
  if (type === 0x0800 && n >= l3 + 20) {
    const ihl = ((frame[l3] as number) & 0xf) * 4;
    const proto = frame[l3 + 9] as number;
    const frag = (((frame[l3 + 6] as number) & 0x3f) << 8) | (frame[l3 + 7] as number);
    const l4 = l3 + ihl;
    for (let i = 0; i < 8; i++) h ^= tab[i * 256 + (frame[l3 + 12 + i] as number)] as number;
    if ((proto === 6 || proto === 17) && frag === 0 && n >= l4 + 4) {
      for (let i = 0; i < 4; i++) h ^= tab[(8 + i) * 256 + (frame[l4 + i] as number)] as number;
    }
    return h >>> 0;
  }
  if (type === 0x86dd && n >= l3 + 40) {
    const next = frame[l3 + 6] as number;
    const l4 = l3 + 40;
    for (let i = 0; i < 32; i++) h ^= tab[i * 256 + (frame[l3 + 8 + i] as number)] as number;
    if ((next === 6 || next === 17) && n >= l4 + 4) {
      for (let i = 0; i < 4; i++) h ^= tab[(32 + i) * 256 + (frame[l4 + i] as number)] as number;
    }
    return h >>> 0;
  }
  return -1;
}
