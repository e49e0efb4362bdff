/**
 * storvsp: the host's SCSI controller VSP (storvsc-netvsc.md §4 handshake,
 * §5 I/O path and completion, §5.3 hot-plug, §6 capacity change, §8 host
 * design and checks).
 *
 * One worker per open channel (the primary and each sub-channel), each with
 * its own queue depth. The primary runs the §4 state machine
 * Begin → QueryVersion → QueryProperties → EndInitialization → Ready;
 * sub-channel workers leave their packets in the ring until the controller
 * is Ready (I/O delayed, never lost). EXECUTE_SRB runs against the SCSI
 * target asynchronously (backend latency in virtual time) and is answered
 * with a COMPLETE_IO completion echoing the transaction id, sized like the
 * request (12 + min(payload − 12, 0x34)).
 *
 * Flow control (§8): before a worker takes a request off the ring it makes
 * sure the host→guest ring has room for one maximal completion (88 bytes)
 * for every request it has in flight plus this one. Completions therefore
 * never have to wait for room — a guest that stops reading its completions
 * stops the host from taking requests, instead of making the host buffer
 * an unbounded number of answers. When the room is not there the worker
 * announces it in pending_send_sz (so the guest's read signals the host)
 * and leaves the packet in the ring; at `queueDepth` requests in flight it
 * also stops reading, and the next completion resumes it.
 *
 * Hostile input (§8): a completion packet from the guest, a request without
 * COMPLETION_REQUESTED (it could never be answered), unknown flag bits, a
 * payload shorter than the 12-byte header, an operation a guest does not
 * send, an EXECUTE_SRB with other than exactly one GPA range or a range
 * shorter than data_transfer_length or outside guest memory, and ring
 * corruption fail that channel (`channel.fail`: closed and rescinded; the
 * other channels keep working). Everything else is answered: a wrong state
 * with INVALID_DEVICE_STATE, an unsupported version with REVISION_MISMATCH,
 * too many sub-channels with INVALID_PARAMETER, a malformed SRB with SRB
 * INVALID_REQUEST, SCSI errors with CHECK CONDITION and sense.
 */
import { inject, injectable } from "tsyringe";
import {
  GpaDirectRanges,
  HOST_DEVICE_CONFIG,
  HOST_VMBUS_SERVER,
  ProtocolError,
  RingWriter,
  SIMULATION,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VmbusSimError,
  type ChannelEndpoint,
  type HostChannel,
  type HostChannelHandler,
  type IncomingPacket,
  type PagedView,
  type Simulation,
  type TransId,
  type VmbusServer,
} from "../../../core/index.js";
import {
  OPENVMM_MAX_TRANSFER_BYTES,
  SCSI_REQUEST_LEN_V2,
  SCSI_STATUS_CHECK_CONDITION,
  SCSI_STATUS_GOOD,
  SRB_STATUS_ERROR,
  SRB_STATUS_INVALID_REQUEST,
  SRB_STATUS_SUCCESS,
  STORVSC_MAX_CMD_LEN,
  STATUS_INVALID_DEVICE_STATE,
  STATUS_INVALID_PARAMETER,
  STATUS_REVISION_MISMATCH,
  STATUS_SUCCESS,
  STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL,
  VMSTOR_PROTOCOL_VERSIONS,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN8,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_RESET_LUN,
  READ_10,
  READ_16,
  READ_TYPE,
  UNKNOWN_TYPE,
  VSTOR_CDB_OFFSET,
  VSTOR_PACKET_SIZE_WIN8,
  VSTOR_PACKET_UNION_OFFSET,
  WRITE_TYPE,
  buildFixedSenseData,
  decodeVstorPacket,
  encodeVstorPacket,
  formatVmstorVersion,
  isWin8OrLater,
  makeSrbCompletionPacket,
  makeVstorCompletionPacket,
  senseBufferSize,
  srbCdb,
  vmstorVersionInfo,
  vstorPacketSize,
  writeSrbCompletionPacket,
  type VmscsiRequest,
  type VstorPayload,
} from "../protocol/index.js";
import { type DiskSpec, DiskSpecError, checkKnownKeys, createDisk, isRecord, optInt } from "./disk-spec.js";
import { type ScsiAddress, type ScsiDataBuffer, type ScsiLun, type ScsiOutcome, type ScsiResult, SENSE_INTERNAL_TARGET_FAILURE, ScsiTarget } from "./scsi-target.js";

// ---------------------------------------------------------------------------
// Configuration

export interface StorvspConfig {
  /** The disks attached at start. */
  readonly disks?: readonly DiskSpec[];
  /** Sub-channels the host allows (max_channel_count in QUERY_PROPERTIES); default 8. */
  readonly maxSubchannels?: number;
  /** Requests in flight per channel before the worker stops reading its ring; default 256. */
  readonly queueDepth?: number;
  /** Highest VSTOR version accepted (play an older host with less); default 6.2 (WIN10). */
  readonly protocolMax?: number;
}

export interface ResolvedStorvspConfig {
  readonly disks: readonly DiskSpec[];
  readonly maxSubchannels: number;
  readonly queueDepth: number;
  readonly protocolMax: number;
}

export const STORVSP_DEFAULT_MAX_SUBCHANNELS = 8;
export const STORVSP_DEFAULT_QUEUE_DEPTH = 256;
/** What the VSP announces in max_transfer_bytes (OV's value, 256 KiB). */
export const STORVSP_MAX_TRANSFER_BYTES = OPENVMM_MAX_TRANSFER_BYTES;
/** Ring bytes of the largest completion: descriptor 16 + 12 + 52, padded, + 8-byte trailer = 88 (§8). */
export const STORVSP_MAX_COMPLETION_TOTAL = RingWriter.packetTotal(0, VSTOR_PACKET_UNION_OFFSET + SCSI_REQUEST_LEN_V2);

const CONFIG_KEYS = ["disks", "maxSubchannels", "queueDepth", "protocolMax"] as const;

/** Validates a scenario's config object (untrusted JSON-like input); errors are `DiskSpecError`s naming the field. */
export function validateStorvspConfig(input: unknown): ResolvedStorvspConfig {
  const where = "storvsp config";
  const obj = input ?? {};
  if (!isRecord(obj)) throw new DiskSpecError(where, obj, "must be an object {disks, maxSubchannels?, queueDepth?, protocolMax?}");
  checkKnownKeys(where, obj, CONFIG_KEYS);
  const disks = obj["disks"] ?? [];
  if (!Array.isArray(disks)) throw new DiskSpecError(`${where}.disks`, disks, "must be an array of disk specs");
  const protocolMax = obj["protocolMax"] ?? VMSTOR_PROTO_VERSION_WIN10;
  if (typeof protocolMax !== "number" || vmstorVersionInfo(protocolMax) === undefined) {
    throw new DiskSpecError(
      `${where}.protocolMax`,
      protocolMax,
      `must be a VSTOR version: ${VMSTOR_PROTOCOL_VERSIONS.map((v) => `0x${v.value.toString(16).padStart(4, "0")}`).join(", ")}`,
    );
  }
  return {
    disks: disks as DiskSpec[],
    maxSubchannels: optInt(where, obj, "maxSubchannels", 0, 64) ?? STORVSP_DEFAULT_MAX_SUBCHANNELS,
    queueDepth: optInt(where, obj, "queueDepth", 1, 65536) ?? STORVSP_DEFAULT_QUEUE_DEPTH,
    protocolMax,
  };
}

// ---------------------------------------------------------------------------
// State and counters

/** The §4 host state machine (OV names). */
export type StorvspState = "begin" | "query-version" | "query-properties" | "end-initialization" | "ready";

export type StorvspErrorKind =
  | "fatal-packet"
  | "invalid-device-state"
  | "revision-mismatch"
  | "invalid-parameter"
  | "invalid-srb"
  | Exclude<ScsiOutcome, "good">;

const ERROR_KINDS: readonly StorvspErrorKind[] = [
  "fatal-packet",
  "invalid-device-state",
  "revision-mismatch",
  "invalid-parameter",
  "invalid-srb",
  "invalid-opcode",
  "invalid-field",
  "lba-out-of-range",
  "parameter-list",
  "write-protected",
  "medium-error",
  "io-error",
  "unit-attention",
  "invalid-lun",
  "target-failure",
];

export class StorvspCounters {
  /** EXECUTE_SRB packets taken off a ring. */
  requests = 0;
  /** Handshake, reset and sub-channel packets taken. */
  controlRequests = 0;
  /** Completions written (SRB and control). */
  completions = 0;
  /** Completions that found no room and waited in the endpoint (should stay 0: room is reserved). */
  completionsQueued = 0;
  /** Completions of channels that closed while their request ran (the guest failed those requests itself). */
  completionsDropped = 0;
  /** Disk bytes read / written for the guest. */
  bytesRead = 0;
  bytesWritten = 0;
  /** SRBs in flight on all channels now, and the most ever. */
  inFlight = 0;
  inFlightMax = 0;
  /** Times a worker left a packet in the ring: no room for its completion / queue depth reached / not Ready yet. */
  ringFullStops = 0;
  queueFullStops = 0;
  readyWaits = 0;
  /** Unsolicited ENUMERATE_BUS packets sent (hot-plug). */
  enumerateBusSent = 0;
  /** Channels failed for hostile input. */
  channelsFailed = 0;
  /** Errors by kind: fatal packets, non-fatal VSTOR statuses, and SCSI outcomes. */
  readonly errors: Record<StorvspErrorKind, number>;

  constructor() {
    const e: Partial<Record<StorvspErrorKind, number>> = {};
    for (const k of ERROR_KINDS) e[k] = 0;
    this.errors = e as Record<StorvspErrorKind, number>;
  }
}

/** One worker's view, for reports. */
export interface StorvspChannelStats {
  readonly relid: number;
  readonly subchannelIndex: number;
  readonly requests: number;
  readonly inFlight: number;
  readonly inFlightMax: number;
  /** Why the worker is not reading, or "none". */
  readonly blocked: "none" | "queue-full" | "ring-full" | "not-ready";
}

/** A fatal packet error: the reason a channel was failed. */
export class StorvspPacketError extends ProtocolError {
  override readonly code = "STORVSP_FATAL_PACKET";
}

// ---------------------------------------------------------------------------

/** The operations a guest may send a SCSI controller (§8: anything else is fatal). */
const GUEST_OPERATIONS: ReadonlySet<number> = new Set([
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_RESET_LUN,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
]);

/** The header every VSTOR packet has: operation, flags, status. */
const VSTOR_HEADER_BYTES = VSTOR_PACKET_UNION_OFFSET;
/** data_transfer_length's absolute offset (§3). */
const DATA_TRANSFER_LENGTH_OFFSET = 24;
/** Offsets of the SRB bytes the fast path reads from the packet copy (§3). */
const SRB_PORT_OFFSET = 16;
const SRB_PATH_OFFSET = 17;
const SRB_TARGET_OFFSET = 18;
const SRB_LUN_OFFSET = 19;
const SRB_CDB_LENGTH_OFFSET = 20;
const SRB_SENSE_LENGTH_OFFSET = 21;
const SRB_DATA_IN_OFFSET = 22;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A request the SCSI target finished synchronously (`executeReadWriteFast`),
 * waiting for its completion to be written. Reused through the worker's
 * free list: one record per request in flight at most.
 */
class FastCompletion {
  transId: TransId = 0;
  version = 0;
  /** Completion bytes (the request's size, capped at the full packet). */
  size = 0;
  portNumber = 0;
  pathId = 0;
  targetId = 0;
  lun = 0;
  dataIn = 0;
  transferred = 0;
  read = false;
}

/**
 * The microtask turn, counted from the take, in which `execute` writes the
 * completion of a READ/WRITE on a memory disk: `execute` awaits `guard`,
 * which awaits `readWrite`, which awaits the fault injector, which awaits
 * the disk, and two `then`s of `executeSrb` follow. Completions of the fast
 * path are written in that same turn, so a drain that takes fast and slow
 * requests together answers them in the order it always did.
 */
const FAST_COMPLETION_TURN = 6;

/**
 * Requests taken one after another by one drain and finished by the fast
 * path. Nothing else queues a microtask between them, so one chain of
 * turns carries them all to `FAST_COMPLETION_TURN`, where they are written
 * in the order taken. Reused through the worker's free list.
 */
class FinishedBatch {
  readonly items: FastCompletion[] = [];
  turn = 0;
  step: () => void = () => undefined;
}

class ChannelWorker {
  inFlight = 0;
  inFlightMax = 0;
  requests = 0;
  blocked: StorvspChannelStats["blocked"] = "none";
  closed = false;
  /** This VSP failed the channel (and counted it). */
  failedByUs = false;
  /** True while the packet handler runs (inside the endpoint's drain, which commits at its end). */
  inHandler = false;
  /** Reused for every GPA-direct packet of this channel. */
  readonly ranges = new GpaDirectRanges();
  /**
   * The private, zero-extended copy of the packet being taken (copy, then
   * validate). One per worker suffices: every use of it — validation,
   * decoding, the synchronous fast path — ends before the handler returns,
   * and the ring is read for the next packet only after that. (Another
   * worker's handler may run inside ours — a sub-channel resumed by
   * END_INITIALIZATION — but it has its own copy.)
   */
  readonly copy = new Uint8Array(VSTOR_PACKET_SIZE_WIN8);
  readonly copyView = new DataView(this.copy.buffer);
  /** The one GPA range of the EXECUTE_SRB being taken; the view made from it copies the PFNs. */
  readonly range = { byteCount: 0, byteOffset: 0, pfns: [] as number[] };
  /**
   * The batch the next fast request joins: open from the first fast request
   * of a drain until another packet is handled or the drain is over (the
   * batch's first turn closes it).
   */
  openBatch: FinishedBatch | null = null;
  /** Set by a packet that joined `openBatch`; any other packet closes it. */
  joinedBatch = false;
  readonly spareBatches: FinishedBatch[] = [];
  readonly spare: FastCompletion[] = [];
  /** Completion bytes by size / 8 (48, 56 or 64), reused: `writeCompletion` copies them into the ring at once. */
  readonly completionBytes: ({ readonly bytes: Uint8Array; readonly view: DataView } | undefined)[] = [];
  /** What `writeCompletion` writes next (set just before `tryWrite`). */
  outTransId: TransId = 0;
  outBytes: Uint8Array = new Uint8Array(0);
  readonly writeCompletion = (wr: RingWriter): boolean => wr.writeCompletion(this.outTransId, this.outBytes);

  constructor(
    readonly channel: HostChannel,
    readonly primary: boolean,
  ) {}
}

@injectable()
export class StorvspDevice implements HostChannelHandler {
  readonly config: ResolvedStorvspConfig;
  readonly counters = new StorvspCounters();
  readonly target: ScsiTarget;
  /** The error that failed the last channel, for reports. */
  lastFatalError: VmbusSimError | null = null;

  private stateValue: StorvspState = "begin";
  private versionValue: number | null = null;
  private primaryChannel: HostChannel | null = null;
  private readonly workers = new Map<HostChannel, ChannelWorker>();

  constructor(
    @inject(HOST_DEVICE_CONFIG) config: unknown,
    @inject(SIMULATION) private readonly sim: Simulation,
    @inject(HOST_VMBUS_SERVER) private readonly server: VmbusServer,
  ) {
    this.config = validateStorvspConfig(config);
    this.target = new ScsiTarget({ maxTransferBytes: STORVSP_MAX_TRANSFER_BYTES });
    try {
      this.config.disks.forEach((spec, i) => this.attach(spec, `disks[${i}]`, false));
    } catch (e) {
      // A bad disk must not leave the good ones' image files open.
      this.target.closeAll();
      throw e;
    }
  }

  /** Where the §4 state machine is. */
  get state(): StorvspState {
    return this.stateValue;
  }

  /** The negotiated VSTOR version, or null before QUERY_PROTOCOL_VERSION succeeded. */
  get protocolVersion(): number | null {
    return this.versionValue;
  }

  /** Versions this host accepts: the known ones up to `protocolMax`. */
  get acceptedVersions(): readonly number[] {
    return VMSTOR_PROTOCOL_VERSIONS.map((v) => v.value).filter((v) => v <= this.config.protocolMax);
  }

  /** Per-channel statistics, primary first. */
  channelStats(): StorvspChannelStats[] {
    return [...this.workers.values()]
      .sort((a, b) => a.channel.subchannelIndex - b.channel.subchannelIndex)
      .map((w) => ({
        relid: w.channel.relid,
        subchannelIndex: w.channel.subchannelIndex,
        requests: w.requests,
        inFlight: w.inFlight,
        inFlightMax: w.inFlightMax,
        blocked: w.blocked,
      }));
  }

  /** The LUN at an address, to reach its disk, faults and statistics. */
  lunAt(lun: number, pathId = 0, targetId = 0): ScsiLun | undefined {
    return this.target.find({ pathId, targetId, lun });
  }

  /**
   * Hot add (§5.3): attaches a disk and tells the guest with an unsolicited
   * ENUMERATE_BUS on the primary channel. Returns its address.
   */
  addDisk(spec: DiskSpec): ScsiAddress {
    const lun = this.attach(spec, "disk", true);
    this.notifyBusChange();
    return lun.address;
  }

  /** Hot remove (§5.3): detaches the disk at the address and tells the guest. False if there was none. */
  removeDisk(lun: number, pathId = 0, targetId = 0): boolean {
    const removed = this.target.detach({ pathId, targetId, lun });
    if (removed === undefined) return false;
    this.notifyBusChange();
    return true;
  }

  /**
   * Changes a disk's capacity at run time (memory disks; writable image
   * files). As on Hyper-V / OV (§6) nothing is announced — no ENUMERATE_BUS:
   * the next command to the LUN other than INQUIRY fails with UNIT
   * ATTENTION 06/2A/09 CAPACITY DATA HAS CHANGED (REQUEST SENSE returns it
   * as data), and the guest rereads the capacity and retries. Throws
   * `InvalidArgumentError` naming `lun` / `pathId` / `targetId`, `address`,
   * `disk` or `newSizeBytes` (`ScsiTarget.resize`).
   */
  resizeDisk(lun: number, newSizeBytes: number, pathId = 0, targetId = 0): void {
    this.target.resize({ pathId, targetId, lun }, newSizeBytes);
  }

  /** Closes every disk (image files). Call when the scenario is over. */
  dispose(): void {
    this.target.closeAll();
  }

  // ---- HostChannelHandler ---------------------------------------------------

  open(channel: HostChannel): void {
    const primary = channel.subchannelIndex === 0;
    if (primary) {
      // A (re)opened primary starts the handshake over.
      this.primaryChannel = channel;
      this.stateValue = "begin";
      this.versionValue = null;
      // Default serials carry the controller's instance, so that two
      // controllers' disks at one address never look like one disk.
      this.target.controllerTag = channel.device.offer.instanceId.toString().slice(0, 8).toUpperCase();
    }
    const w = new ChannelWorker(channel, primary);
    this.workers.set(channel, w);
    channel.onPacket((p) => this.onPacket(w, p));
  }

  close(channel: HostChannel): void {
    const w = this.workers.get(channel);
    if (w === undefined) return;
    // Requests still running finish against the disk; their completions
    // have no ring to go to (the guest failed them when the channel went).
    w.closed = true;
    this.workers.delete(channel);
    // Ring corruption is found by the channel layer, which fails the channel
    // itself; count it here with the failures this VSP decided.
    if (channel.failed && !w.failedByUs) {
      this.counters.errors["fatal-packet"]++;
      this.counters.channelsFailed++;
      if (channel.lastError instanceof VmbusSimError) this.lastFatalError = channel.lastError;
    }
    if (channel === this.primaryChannel) {
      this.primaryChannel = null;
      this.stateValue = "begin";
      this.versionValue = null;
    }
  }

  // ---- the worker -------------------------------------------------------------

  /** The channel's packet handler: admission (§8 flow control), then the packet. */
  private onPacket(w: ChannelWorker, p: IncomingPacket): boolean | void {
    if (w.closed) return;
    w.inHandler = true;
    try {
      // Sub-channels serve I/O only once the primary's handshake is done;
      // the packet waits in the ring (§8 "I/O delayed, not lost").
      if (!w.primary && this.stateValue !== "ready") {
        w.blocked = "not-ready";
        this.counters.readyWaits++;
        return false;
      }
      if (w.inFlight >= this.config.queueDepth) {
        w.blocked = "queue-full";
        this.counters.queueFullStops++;
        return false;
      }
      const ep = w.channel.endpoint;
      if (ep === null) return;
      // Room for this request's completion and for those of every request
      // already in flight, so no completion ever waits for ring space.
      const needed = (w.inFlight + 1) * STORVSP_MAX_COMPLETION_TOTAL;
      if (ep.writer.freeBytes() <= needed && !ep.writer.block(needed)) {
        // pending_send_sz is set: the guest's read that frees the room signals us.
        w.blocked = "ring-full";
        this.counters.ringFullStops++;
        return false;
      }
      w.blocked = "none";
      w.joinedBatch = false;
      this.take(w, p);
      return;
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.failChannel(w, e);
      return;
    } finally {
      w.inHandler = false;
      // Whatever else this packet did may have queued microtasks: the next
      // fast request must start a batch of its own to keep its turn.
      if (!w.joinedBatch) w.openBatch = null;
      w.joinedBatch = false;
    }
  }

  private fatal(w: ChannelWorker, field: string, value: number | bigint | string, limit: string): StorvspPacketError {
    return new StorvspPacketError(`storvsp ${w.channel.name}`, field, value, limit);
  }

  private failChannel(w: ChannelWorker, e: VmbusSimError): void {
    this.counters.errors["fatal-packet"]++;
    this.counters.channelsFailed++;
    this.lastFatalError = e;
    w.closed = true;
    w.failedByUs = true;
    w.channel.fail(e);
  }

  /** Checks the VMBus framing and the VSTOR header, then dispatches (§8 fatal checks). */
  private take(w: ChannelWorker, p: IncomingPacket): void {
    // A completion names one of *our* requests; the host sends the guest none.
    if (p.type === VM_PKT_COMP) throw this.fatal(w, "packet type", p.type, "is VM_PKT_COMP: the guest has nothing of the host's to complete");
    if (p.type !== VM_PKT_DATA_INBAND && p.type !== VM_PKT_DATA_USING_GPA_DIRECT) {
      throw this.fatal(w, "packet type", p.type, "is neither VM_PKT_DATA_INBAND (6) nor VM_PKT_DATA_USING_GPA_DIRECT (9)");
    }
    // Without COMPLETION_REQUESTED the request could never be answered, and
    // its guest would wait forever; other flag bits are undefined (OV: ring corruption).
    if ((p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) === 0) {
      throw this.fatal(w, "flags", p.flags, "lack VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED (no completion could be sent)");
    }
    if ((p.flags & ~VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0) {
      throw this.fatal(w, "flags", p.flags, "has bits other than COMPLETION_REQUESTED (0x1)");
    }
    const payloadLength = p.dataLength;
    // Fewer than 12 bytes: not even the operation/flags/status header.
    if (payloadLength < VSTOR_HEADER_BYTES) {
      throw this.fatal(w, "vstor_packet length", payloadLength, `is shorter than the ${VSTOR_HEADER_BYTES}-byte header`);
    }
    // A private, zero-extended copy: short SRBs read as zeros beyond what
    // was sent (OV), and the guest cannot change what we validated.
    const copy = w.copy;
    copy.fill(0);
    const start = p.dataOffset;
    copy.set(p.buffer.subarray(start, start + Math.min(payloadLength, VSTOR_PACKET_SIZE_WIN8)));
    const operation = w.copyView.getUint32(0, true);
    if (!GUEST_OPERATIONS.has(operation)) {
      throw this.fatal(w, "operation", operation, "is not an operation a guest sends a SCSI controller (3..10, 13)");
    }
    // OV / Hyper-V: the completion mirrors the request's size, capped at the full packet.
    const completionSize = VSTOR_HEADER_BYTES + Math.min(payloadLength - VSTOR_HEADER_BYTES, SCSI_REQUEST_LEN_V2);
    if (operation === VSTOR_OPERATION_EXECUTE_SRB) this.executeSrb(w, p, copy, completionSize);
    else this.control(w, operation, copy, completionSize, p.transId);
  }

  // ---- §4 handshake, resets, sub-channels ------------------------------------

  private control(w: ChannelWorker, operation: number, copy: Uint8Array, size: number, transId: TransId): void {
    this.counters.controlRequests++;
    const decoded = decodeVstorPacket(copy, { protocolVersion: VMSTOR_PROTO_VERSION_WIN8, sender: "guest" });
    let status = STATUS_SUCCESS;
    let payload: VstorPayload = { kind: "none" };
    let after: (() => void) | null = null;
    const state = this.stateValue;
    const primary = w.primary;
    switch (operation) {
      case VSTOR_OPERATION_BEGIN_INITIALIZATION:
        if (primary && state === "begin") this.stateValue = "query-version";
        else status = STATUS_INVALID_DEVICE_STATE;
        break;
      case VSTOR_OPERATION_QUERY_PROTOCOL_VERSION: {
        // OV echoes the requested version in the completion, accepted or not.
        const asked = decoded.payload.kind === "version" ? decoded.payload.version : { majorMinor: 0, revision: 0 };
        payload = { kind: "version", version: asked };
        if (!primary || state !== "query-version") status = STATUS_INVALID_DEVICE_STATE;
        else if (!this.acceptedVersions.includes(asked.majorMinor)) status = STATUS_REVISION_MISMATCH;
        else {
          this.versionValue = asked.majorMinor;
          this.stateValue = "query-properties";
        }
        break;
      }
      case VSTOR_OPERATION_QUERY_PROPERTIES:
        if (primary && state === "query-properties") {
          this.stateValue = "end-initialization";
          payload = { kind: "properties", properties: this.channelProperties(w.channel) };
        } else {
          status = STATUS_INVALID_DEVICE_STATE;
        }
        break;
      case VSTOR_OPERATION_END_INITIALIZATION:
        if (primary && state === "end-initialization") {
          this.stateValue = "ready";
          after = () => this.resumeWaitingSubchannels();
        } else {
          status = STATUS_INVALID_DEVICE_STATE;
        }
        break;
      case VSTOR_OPERATION_CREATE_SUB_CHANNELS: {
        const n = decoded.payload.kind === "sub-channels" ? decoded.payload.subChannelCount : 0;
        // Accepted before END_INITIALIZATION or once Ready, on the primary,
        // with a multichannel version (OV).
        if (!primary || (state !== "end-initialization" && state !== "ready") || !isWin8OrLater(this.versionValue ?? 0)) {
          status = STATUS_INVALID_DEVICE_STATE;
        } else if (n > this.maxSubchannels(w.channel)) {
          status = STATUS_INVALID_PARAMETER;
        } else {
          after = () => this.offerSubchannels(w.channel, n);
        }
        break;
      }
      case VSTOR_OPERATION_RESET_LUN:
      case VSTOR_OPERATION_RESET_ADAPTER:
      case VSTOR_OPERATION_RESET_BUS:
        // OV completes resets at once: there is no queue in the target to
        // abort, and every request in flight completes on its own.
        if (state !== "ready") status = STATUS_INVALID_DEVICE_STATE;
        break;
    }
    if (status === STATUS_INVALID_DEVICE_STATE) this.counters.errors["invalid-device-state"]++;
    else if (status === STATUS_REVISION_MISMATCH) this.counters.errors["revision-mismatch"]++;
    else if (status === STATUS_INVALID_PARAMETER) this.counters.errors["invalid-parameter"]++;
    this.complete(w, transId, sized(encodeVstorPacket(makeVstorCompletionPacket(status, payload), VMSTOR_PROTO_VERSION_WIN8), size));
    after?.();
  }

  private maxSubchannels(channel: HostChannel): number {
    return Math.min(this.config.maxSubchannels, channel.device.offer.subchannelLimit);
  }

  private channelProperties(channel: HostChannel): { maxChannelCount: number; flags: number; maxTransferBytes: number } {
    const version = this.versionValue ?? 0;
    // Multichannel needs Win8+ (§2); an older guest gets 0/0, as from OV.
    const max = isWin8OrLater(version) ? this.maxSubchannels(channel) : 0;
    return {
      maxChannelCount: max,
      flags: max > 0 ? STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL : 0,
      maxTransferBytes: STORVSP_MAX_TRANSFER_BYTES,
    };
  }

  /** Makes `n` sub-channels exist: offers the ones missing (a reopened primary may ask again). */
  private offerSubchannels(channel: HostChannel, n: number): void {
    const missing = n - channel.device.subchannels().length;
    if (missing <= 0) return;
    try {
      this.server.offerSubchannels(channel.device, missing);
    } catch (e) {
      // The device is being rescinded or the guest disconnected: nobody to offer to.
      if (!(e instanceof VmbusSimError)) throw e;
    }
  }

  private resumeWaitingSubchannels(): void {
    for (const w of this.workers.values()) {
      if (!w.primary && w.blocked === "not-ready") {
        w.blocked = "none";
        w.channel.service();
      }
    }
  }

  // ---- §5 EXECUTE_SRB -----------------------------------------------------------

  private executeSrb(w: ChannelWorker, p: IncomingPacket, copy: Uint8Array, size: number): void {
    // Request ids are small: a number avoids a bigint per packet (the same bytes go back).
    const transId: TransId = p.transIdHi === 0 ? p.transIdLo : p.transId;
    // §8 fatal range checks come first: they concern what the packet makes
    // the host touch, whatever the SRB says.
    let view: PagedView | null = null;
    const dtl = w.copyView.getUint32(DATA_TRANSFER_LENGTH_OFFSET, true);
    if (p.type === VM_PKT_DATA_USING_GPA_DIRECT) {
      const ranges = w.ranges.parse(p);
      // One range per I/O (Linux's virt_boundary guarantees it); more would
      // need a scatter-gather model OV does not have either.
      if (ranges.count !== 1) throw this.fatal(w, "GPA direct rangecount", ranges.count, "must be 1 for EXECUTE_SRB");
      if (ranges.byteCount(0) < dtl) {
        throw this.fatal(w, "range[0].byte_count", ranges.byteCount(0), `is shorter than data_transfer_length ${dtl}`);
      }
      const range = w.range;
      range.byteCount = ranges.byteCount(0);
      range.byteOffset = ranges.byteOffset(0);
      const pages = ranges.pfnCount(0);
      range.pfns.length = pages;
      for (let j = 0; j < pages; j++) range.pfns[j] = ranges.pfn(0, j);
      // Bounds-checked view: every PFN inside guest memory, or GpadlAccessError (fatal).
      view = w.channel.gpaRange(range, "EXECUTE_SRB data");
    }
    this.counters.requests++;
    w.requests++;
    if (this.stateValue !== "ready") {
      // Only the primary gets here before Ready (sub-channels wait).
      this.counters.errors["invalid-device-state"]++;
      this.complete(w, transId, sized(encodeVstorPacket(makeVstorCompletionPacket(STATUS_INVALID_DEVICE_STATE), VMSTOR_PROTO_VERSION_WIN8), size));
      return;
    }
    const version = this.versionValue ?? VMSTOR_PROTO_VERSION_WIN8;
    // What the decoder would refuse, read in place: when all of it holds the
    // SRB needs no decoding to be executed the fast way.
    const dataIn = copy[SRB_DATA_IN_OFFSET] as number;
    const valid =
      (copy[SRB_CDB_LENGTH_OFFSET] as number) <= STORVSC_MAX_CMD_LEN &&
      (copy[SRB_SENSE_LENGTH_OFFSET] as number) <= senseBufferSize(version) &&
      (dataIn === WRITE_TYPE || dataIn === READ_TYPE || dataIn === UNKNOWN_TYPE) &&
      dtl <= STORVSP_MAX_TRANSFER_BYTES;
    let srb: VmscsiRequest | null = null;
    if (!valid) {
      try {
        srb = this.decodeSrb(copy, version);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        // A bad SRB field (cdb_length > 16, unknown data_in, a transfer above
        // max_transfer_bytes…) fails this request only.
        this.counters.errors["invalid-srb"]++;
        const echo = rawSrb(copy, version);
        const pkt = makeSrbCompletionPacket({ protocolVersion: version, request: echo, srbStatus: SRB_STATUS_INVALID_REQUEST, dataTransferLength: 0, status: STATUS_INVALID_PARAMETER });
        this.complete(w, transId, sized(encodeVstorPacket(pkt, version), size));
        return;
      }
    }
    w.inFlight++;
    if (w.inFlight > w.inFlightMax) w.inFlightMax = w.inFlight;
    const c = this.counters;
    c.inFlight++;
    if (c.inFlight > c.inFlightMax) c.inFlightMax = c.inFlight;
    const bufferLength = view === null || dtl === 0 ? 0 : dtl;
    if (valid && size >= vstorPacketSize(version)) {
      const transferred = this.target.executeReadWriteFast(
        copy[SRB_PATH_OFFSET] as number,
        copy[SRB_TARGET_OFFSET] as number,
        copy[SRB_LUN_OFFSET] as number,
        copy,
        VSTOR_CDB_OFFSET,
        copy[SRB_CDB_LENGTH_OFFSET] as number,
        dataIn,
        view,
        bufferLength,
      );
      if (transferred >= 0) {
        this.queueFinished(w, transId, version, size, copy, transferred);
        return;
      }
    }
    if (srb === null) srb = this.decodeSrb(copy, version);
    const buffer: ScsiDataBuffer | null = view === null || bufferLength === 0 ? null : limitedBuffer(view, bufferLength);
    const request = { address: { pathId: srb.pathId, targetId: srb.targetId, lun: srb.lun }, cdb: srbCdb(srb), dataIn: srb.dataIn, buffer };
    const label = `storvsp ${w.channel.name} SCSI target`;
    const decoded = srb;
    this.target
      .execute(request)
      .then(
        (r) => r,
        (e: unknown): ScsiResult => {
          // Only a simulator bug gets here (typed errors became sense). The
          // request is still answered — nothing is lost — and the bug is
          // reported to the run loop rather than left as an unhandled rejection.
          this.sim.scheduler.reportError(label, e);
          return {
            srbStatus: SRB_STATUS_ERROR,
            scsiStatus: SCSI_STATUS_CHECK_CONDITION,
            transferred: 0,
            sense: buildFixedSenseData(SENSE_INTERNAL_TARGET_FAILURE),
            outcome: "target-failure",
            bytesRead: 0,
            bytesWritten: 0,
          };
        },
      )
      .then((r) => this.finishSrb(w, transId, decoded, version, size, r))
      .catch((e: unknown) => this.sim.scheduler.reportError(label, e));
  }

  private decodeSrb(copy: Uint8Array, version: number): VmscsiRequest {
    const decoded = decodeVstorPacket(copy, { protocolVersion: version, sender: "guest", maxTransferBytes: STORVSP_MAX_TRANSFER_BYTES });
    if (decoded.payload.kind !== "srb") throw new ProtocolError("VSTOR", "payload", decoded.payload.kind, "is not an SRB");
    return decoded.payload.srb;
  }

  /**
   * Queues the completion of a request the target finished synchronously,
   * to be written in the turn `execute` would have written it.
   */
  private queueFinished(w: ChannelWorker, transId: TransId, version: number, size: number, copy: Uint8Array, transferred: number): void {
    const f = w.spare.pop() ?? new FastCompletion();
    f.transId = transId;
    f.version = version;
    f.size = size;
    f.portNumber = copy[SRB_PORT_OFFSET] as number;
    f.pathId = copy[SRB_PATH_OFFSET] as number;
    f.targetId = copy[SRB_TARGET_OFFSET] as number;
    f.lun = copy[SRB_LUN_OFFSET] as number;
    f.dataIn = copy[SRB_DATA_IN_OFFSET] as number;
    f.transferred = transferred;
    f.read = copy[VSTOR_CDB_OFFSET] === READ_10 || copy[VSTOR_CDB_OFFSET] === READ_16;
    let batch = w.openBatch;
    if (batch === null) {
      batch = w.spareBatches.pop() ?? this.newBatch(w);
      batch.turn = 0;
      w.openBatch = batch;
      // `step` catches everything: the derived promise never rejects.
      void RESOLVED.then(batch.step);
    }
    batch.items.push(f);
    w.joinedBatch = true;
  }

  private newBatch(w: ChannelWorker): FinishedBatch {
    const b = new FinishedBatch();
    b.step = () => this.stepBatch(w, b);
    return b;
  }

  /** One microtask turn of a batch; in `FAST_COMPLETION_TURN` its completions are written, in order. */
  private stepBatch(w: ChannelWorker, b: FinishedBatch): void {
    b.turn++;
    // The drain that opened the batch is over.
    if (w.openBatch === b) w.openBatch = null;
    if (b.turn < FAST_COMPLETION_TURN) {
      void RESOLVED.then(b.step);
      return;
    }
    for (const f of b.items) {
      try {
        this.finishFast(w, f);
      } catch (e) {
        // A simulator bug, reported as `execute`'s chain reports it; the others are still answered.
        this.sim.scheduler.reportError(`storvsp ${w.channel.name} SCSI target`, e);
      }
      w.spare.push(f);
    }
    b.items.length = 0;
    w.spareBatches.push(b);
  }

  /** `finishSrb` for a fast-path request: GOOD, no sense. */
  private finishFast(w: ChannelWorker, f: FastCompletion): void {
    const c = this.counters;
    if (f.read) c.bytesRead += f.transferred;
    else c.bytesWritten += f.transferred;
    let out = w.completionBytes[f.size >> 3];
    if (out === undefined || out.bytes.length !== f.size) {
      const bytes = new Uint8Array(f.size);
      out = { bytes, view: new DataView(bytes.buffer) };
      w.completionBytes[f.size >> 3] = out;
    }
    writeSrbCompletionPacket(out.bytes, out.view, f.version, f.portNumber, f.pathId, f.targetId, f.lun, f.dataIn, SRB_STATUS_SUCCESS, SCSI_STATUS_GOOD, f.transferred);
    this.completeReused(w, f.transId, out.bytes);
    w.inFlight--;
    c.inFlight--;
    // A worker that stopped at its queue depth (or for room) may go on.
    if (!w.closed && w.blocked !== "none" && w.blocked !== "not-ready") {
      w.blocked = "none";
      w.channel.service();
    }
  }

  private finishSrb(w: ChannelWorker, transId: TransId, srb: VmscsiRequest, version: number, size: number, r: ScsiResult): void {
    const c = this.counters;
    c.bytesRead += r.bytesRead;
    c.bytesWritten += r.bytesWritten;
    if (r.outcome !== "good") c.errors[r.outcome]++;
    const pkt = makeSrbCompletionPacket({
      protocolVersion: version,
      request: srb,
      srbStatus: r.srbStatus,
      scsiStatus: r.scsiStatus,
      dataTransferLength: r.transferred,
      ...(r.sense !== null ? { sense: r.sense } : {}),
    });
    this.complete(w, transId, sized(encodeVstorPacket(pkt, version), size));
    w.inFlight--;
    c.inFlight--;
    // A worker that stopped at its queue depth (or for room) may go on.
    if (!w.closed && w.blocked !== "none" && w.blocked !== "not-ready") {
      w.blocked = "none";
      w.channel.service();
    }
  }

  /** Writes one completion; room was reserved when the request was taken. */
  private complete(w: ChannelWorker, transId: TransId, bytes: Uint8Array): void {
    const ep = w.channel.endpoint;
    if (w.closed || ep === null || ep.closed) {
      this.counters.completionsDropped++;
      return;
    }
    if (ep.tryWrite((wr) => wr.writeCompletion(transId, bytes))) {
      this.counters.completions++;
      // Inside the handler the drain commits once for the whole batch.
      if (!w.inHandler) ep.commit();
      return;
    }
    this.queueCompletion(ep, transId, bytes);
  }

  /**
   * Only an unsolicited packet ahead of us (ENUMERATE_BUS waiting for room)
   * makes a completion find no room: it queues behind it, in order.
   */
  private queueCompletion(ep: ChannelEndpoint, transId: TransId, bytes: Uint8Array): void {
    this.counters.completionsQueued++;
    ep.send((wr) => wr.writeCompletion(transId, bytes), RingWriter.packetTotal(0, bytes.length)).then(
      () => {
        this.counters.completions++;
      },
      () => {
        this.counters.completionsDropped++;
      },
    );
  }

  /**
   * `complete` for bytes the worker reuses: written at once through the
   * worker's writer function, or — only behind an unsolicited packet
   * waiting for room — copied and queued as `complete` does.
   */
  private completeReused(w: ChannelWorker, transId: TransId, bytes: Uint8Array): void {
    const ep = w.channel.endpoint;
    if (w.closed || ep === null || ep.closed) {
      this.counters.completionsDropped++;
      return;
    }
    w.outTransId = transId;
    w.outBytes = bytes;
    if (ep.tryWrite(w.writeCompletion)) {
      this.counters.completions++;
      if (!w.inHandler) ep.commit();
      return;
    }
    this.queueCompletion(ep, transId, bytes.slice());
  }

  // ---- §5.3 hot-plug ------------------------------------------------------------

  private attach(input: unknown, where: string, announce: boolean): ScsiLun {
    const stack = createDisk(input, { scheduler: this.sim.scheduler, where });
    const spec = stack.spec;
    const pathId = spec.pathId ?? 0;
    const targetId = spec.targetId ?? 0;
    const lun = spec.lun ?? this.target.freeLun(pathId, targetId);
    try {
      if (lun === undefined) throw new DiskSpecError(`${where}.lun`, undefined, `no free LUN left at path ${pathId} target ${targetId}`);
      if (this.target.find({ pathId, targetId, lun }) !== undefined) {
        throw new DiskSpecError(`${where}.lun`, lun, `is already used at path ${pathId} target ${targetId}`);
      }
      return this.target.attach({ pathId, targetId, lun }, stack, announce);
    } catch (e) {
      stack.backend.close();
      throw e;
    }
  }

  /** The unsolicited ENUMERATE_BUS (op 11, trans id 0, no completion requested) on the primary, once Ready and ≥ Win7. */
  private notifyBusChange(): void {
    const ch = this.primaryChannel;
    const version = this.versionValue;
    if (ch === null || this.stateValue !== "ready" || version === null || version < VMSTOR_PROTO_VERSION_WIN7) return;
    const bytes = encodeVstorPacket({ operation: VSTOR_OPERATION_ENUMERATE_BUS, flags: 0, status: STATUS_SUCCESS, payload: { kind: "none" } }, version);
    this.counters.enumerateBusSent++;
    ch.send((wr) => wr.writeInband(0, bytes, 0), RingWriter.packetTotal(0, bytes.length)).catch(() => {
      // The channel closed first; the guest rescans when it reopens.
    });
  }

  /** "5.1 (WIN8)", for reports. */
  describeVersion(): string {
    return this.versionValue === null ? "none" : formatVmstorVersion(this.versionValue);
  }
}

// ---------------------------------------------------------------------------
// Helpers

/** `encoded` cut or zero-padded to `size` (the mirrored completion size). */
function sized(encoded: Uint8Array, size: number): Uint8Array {
  if (encoded.length === size) return encoded;
  const out = new Uint8Array(size);
  out.set(encoded.subarray(0, Math.min(size, encoded.length)));
  return out;
}

/** A view limited to the bytes the SRB claims: the target can never touch the rest of the range. */
function limitedBuffer(view: PagedView, length: number): ScsiDataBuffer {
  return {
    length,
    read: (offset, n) => {
      if (offset + n > length) throw new ProtocolError("storvsp data buffer", "offset + length", offset + n, `exceeds data_transfer_length ${length}`);
      return view.read(offset, n);
    },
    write: (offset, src) => {
      if (offset + src.length > length) throw new ProtocolError("storvsp data buffer", "offset + length", offset + src.length, `exceeds data_transfer_length ${length}`);
      view.write(offset, src);
    },
  };
}

/** The SRB address fields as sent, unvalidated, to echo in the completion of a request that failed validation. */
function rawSrb(copy: Uint8Array, version: number): VmscsiRequest {
  const u8 = (o: number): number => copy[o] ?? 0;
  return {
    length: new DataView(copy.buffer).getUint16(12, true),
    srbStatus: 0,
    scsiStatus: SCSI_STATUS_GOOD,
    portNumber: u8(16),
    pathId: u8(17),
    targetId: u8(18),
    lun: u8(19),
    cdbLength: 0,
    senseInfoLength: 0,
    dataIn: u8(22),
    reserved: 0,
    dataTransferLength: 0,
    cdbOrSense: new Uint8Array(20),
    win8Extension: isWin8OrLater(version)
      ? { reserve: 0, queueTag: 0, queueAction: 0, srbFlags: 0, timeOutValue: 0, queueSortKey: 0 }
      : null,
  };
}
