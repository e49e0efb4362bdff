/**
 * The guest storvsc driver (a VSC) — storvsc-netvsc.md §4 (initialization
 * handshake), §5.1 (the I/O path: SRB, GPA ranges, channel choice), §5.2
 * (completions, sense, errors, unsolicited ENUMERATE_BUS), §5.3 (hot
 * plug), §6–§7 (the SCSI commands of a LUN scan). DESIGN.md "The walk of one
 * storage read", steps 1–2 and 6.
 *
 * probe (Linux `storvsc_probe` → `storvsc_connect_to_vsp` →
 * `storvsc_channel_init`, then `scsi_scan_host`):
 * 1. open the primary channel (128 KiB rings, 24 zero bytes of
 *    `vmstorage_channel_properties` as open data);
 * 2. BEGIN_INITIALIZATION; QUERY_PROTOCOL_VERSION 6.2 → 6.0 → 5.1 until the
 *    host answers status 0; QUERY_PROPERTIES; END_INITIALIZATION — each an
 *    inband packet with completion requested, waited for 5 s, checked for
 *    COMPLETE_IO and status 0;
 * 3. if the host supports multichannel: CREATE_SUB_CHANNELS with
 *    min(CPUs − 1, max_channel_cnt), open each offered subchannel as it
 *    arrives (`onSubchannel`, set before the request);
 * 4. scan (`scsi_scan_host`): every path 0..7 and target 0..1 of a SCSI
 *    controller — INQUIRY LUN 0, REPORT LUNS (or, if refused, a sequential
 *    INQUIRY of LUN 1, 2, … until one is absent), INQUIRY each listed LUN;
 *    IDE: LUN 0 of the one target its instance GUID names. READ
 *    CAPACITY(16) falling back to (10), one `ScsiDisk` per present
 *    direct-access LUN.
 *
 * Request ids: the channel's requestor hands out ids and frees one only
 * when its completion arrives or the channel closes (there is no "cancel").
 * A command that times out therefore keeps its id — and its data pages,
 * which the host may still be writing — until the late completion comes;
 * that completion then completes the abandoned request, never a newer one
 * that would have reused the id. The price: a host that never answers leaks
 * ids; once a channel has none left its commands wait (and time out) until
 * remove() closes the channel.
 *
 * Per-command state lives in reusable slots (`SrbSlot`, Linux's
 * `storvsc_cmd_request`): packet buffer, GPA range, timeout timer. A disk
 * read or write that is one command takes a fast path (`submitRead`,
 * `submitWrite`) that builds and reads the packets in place; it keeps the
 * general path's timing to the microtask turn (see `step`), so the two
 * paths can be mixed without changing the order of anything on the wire.
 */
import { inject, injectable } from "tsyringe";
import {
  CHANNEL_OPENED_STATE,
  HV_DEVICE,
  HV_IDE_GUID,
  PAGE_SIZE,
  ProtocolError,
  SIMULATION,
  VMBUS_CHANNEL,
  VM_CONTEXT,
  VM_PKT_DATA_INBAND,
  VmbusSimError,
  type Completion,
  type GpaRange,
  type GuestChannel,
  type GuestMemory,
  type IncomingPacket,
  type Simulation,
  type Timer,
  type VmContext,
  type VmbusDevice,
  type VmbusDriver,
} from "../../../core/index.js";
import {
  RECOVERED_ERROR,
  NO_SENSE,
  READ_10,
  READ_16,
  READ_TYPE,
  REPORT_LUNS_HEADER_LENGTH,
  SCSI_STATUS_CHECK_CONDITION,
  SCSI_STATUS_GOOD,
  SRB_STATUS_DATA_OVERRUN,
  SRB_STATUS_INVALID_LUN,
  SRB_STATUS_AUTOSENSE_VALID,
  SRB_STATUS_SUCCESS,
  STANDARD_INQUIRY_SHORT_LENGTH,
  STATUS_SUCCESS,
  STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL,
  TYPE_DISK,
  PERIPHERAL_QUALIFIER_CONNECTED,
  PERIPHERAL_QUALIFIER_NOT_SUPPORTED,
  UNKNOWN_TYPE,
  VMSCSI_REQUEST_LAYOUT,
  VMSTOR_PROTO_VERSION_WIN8,
  VSTOR_CDB_OFFSET,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_NAMES,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_REMOVE_DEVICE,
  READ_CAPACITY_10_DATA_LENGTH,
  READ_CAPACITY_16_DATA_LENGTH,
  buildInquiryCdb,
  buildReadCapacity10Cdb,
  buildReadCapacity16Cdb,
  WRITE_10,
  WRITE_16,
  WRITE_TYPE,
  buildReportLunsCdb,
  decodeVstorPacket,
  encodeVstorPacket,
  encodeVstorPacketInto,
  formatVmstorVersion,
  isPlainSrbCompletion,
  makeExecuteSrbPacket,
  makeVstorRequestPacket,
  parseReadCapacity10Data,
  parseReadCapacity16Data,
  parseReportLunsData,
  parseSenseData,
  parseStandardInquiryData,
  readU32,
  srbSenseData,
  srbStatusCode,
  vstorPacketSize,
  writeExecuteSrbPacket,
  type SenseData,
  type VmscsiRequest,
  type VmstorageChannelProperties,
  type VstorPacket,
  type VstorPayload,
  STORVSC_MAX_CHANNELS,
  STORVSC_MAX_LUNS_PER_TARGET,
  STORVSC_MAX_TARGETS,
} from "../protocol/index.js";
import { StorChannelMap } from "./channel-select.js";
import {
  RING_AVAIL_PERCENT_LOWATER,
  SD_MAX_RETRIES,
  STORVSC_CMD_PER_LUN,
  STORVSC_CONFIG,
  STORVSC_INIT_TIMEOUT_NS,
  MAX_SCSI_LUNS,
  STORVSC_SUBCHANNEL_TIMEOUT_NS,
  resolveStorvscConfig,
  storvscCanQueue,
  storvscSubchannelCount,
  storvscVersionOrder,
  type ResolvedStorvscConfig,
  type StorvscConfig,
} from "./config.js";
import {
  IllegalRequestError,
  ScsiSenseError,
  ShortTransferError,
  SrbStatusError,
  StorvscRemovedError,
  StorvscTimeoutError,
  UnitAttentionError,
  VstorHandshakeError,
  commandContext,
  senseError,
  type ScsiCommandContext,
} from "./errors.js";
import { ScsiDisk, type ScsiDiskCapacity, type ScsiDiskHost, type ScsiDiskIdentity, type ScsiRequest, type ScsiResult } from "./scsi-disk.js";

/** `sizeof(struct vmstorage_channel_properties)`: the zeroed OPENCHANNEL user data Linux sends. */
const OPEN_USER_DATA_BYTES = 24;

/** What a rescan changed. */
export interface RescanResult {
  /** Why it ran: "probe", "ENUMERATE_BUS from the host", "UNIT ATTENTION 2A/09 on …", "requested". */
  readonly reason: string;
  readonly added: readonly ScsiDisk[];
  readonly removed: readonly ScsiDisk[];
  readonly resized: readonly { readonly disk: ScsiDisk; readonly oldBlocks: bigint; readonly newBlocks: bigint }[];
  /** LUNs whose INQUIRY or READ CAPACITY failed; an existing disk there is kept as it was. */
  readonly errors: readonly RescanError[];
  /** The disks after the rescan. */
  readonly disks: readonly ScsiDisk[];
}

/** A LUN the scan could not probe. */
export interface RescanError {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  readonly error: unknown;
}

export type RescanListener = (result: RescanResult) => void;

/** Counters of the driver (what Linux would log). */
export class StorvscStats {
  /** EXECUTE_SRB packets sent. */
  commandsSent = 0;
  /** Commands that waited for a request id of their channel. */
  commandsQueued = 0;
  /** Commands whose caller got a StorvscTimeoutError. */
  timeouts = 0;
  /** Completions that arrived after their command had timed out (harmless: the id was still reserved). */
  lateCompletions = 0;
  /** Unsolicited packets from the host (trans id 0). */
  unsolicited = 0;
  /** ENUMERATE_BUS / REMOVE_DEVICE notifications. */
  busNotifications = 0;
  /** Packets that were neither a completion nor a valid notification (dropped, as Linux does). */
  droppedPackets = 0;
  /** Rescans run (the probe's scan included). */
  rescans = 0;
  /** Commands retried after a UNIT ATTENTION. */
  unitAttentionRetries = 0;
}

/** A decoded EXECUTE_SRB completion. */
interface SrbCompletion {
  readonly srb: VmscsiRequest;
  /** vstor_packet.status (NTSTATUS). */
  readonly ntStatus: number;
  readonly transferred: number;
  readonly data: Uint8Array;
}

/** What a slot's completion is for: `runScsi`'s `executeSrb`, or a disk read / write of the fast path. */
const MODE_COMMAND = 0;
const MODE_READ = 1;
const MODE_WRITE = 2;

const RESOLVED: Promise<void> = Promise.resolve();
const NO_PFNS: readonly number[] = [];
const SRB_STATUS_OFFSET = VMSCSI_REQUEST_LAYOUT.srb_status.offset;
const SCSI_STATUS_OFFSET = VMSCSI_REQUEST_LAYOUT.scsi_status.offset;
const DATA_TRANSFER_LENGTH_OFFSET = VMSCSI_REQUEST_LAYOUT.data_transfer_length.offset;

/**
 * One SCSI command on its way — Linux's `struct storvsc_cmd_request`. The
 * driver keeps finished slots on a free list, so the packet buffer, the GPA
 * range, the timeout timer and the callbacks given to promises are made
 * once per slot, not once per I/O.
 *
 * Ownership: a slot belongs to its command from `takeSlot` until (a) the
 * channel is done with it — the completion or failure of its request,
 * even when the caller already gave up on a timeout: the host may still
 * write into its pages and its request id stays reserved — and (b) its
 * caller was answered (or the answer handed to the general path). Only
 * then does `recycle` put it back; nothing may keep a reference to it.
 */
class SrbSlot {
  mode = MODE_COMMAND;
  phase: "idle" | "queued" | "sent" | "done" = "idle";
  channel: GuestChannel | null = null;
  cpu = 0;
  pathId = 0;
  targetId = 0;
  lun = 0;
  /** The CDB of a disk I/O; `cdbLength` bytes of it count. */
  readonly cdb = new Uint8Array(16);
  cdbLength = 0;
  dataIn = UNKNOWN_TYPE;
  length = 0;
  /** First LBA and block count of a disk I/O. */
  lba = 0;
  blocks = 0;
  /** `runScsi`'s request (MODE_COMMAND). */
  req: ScsiRequest | null = null;
  /** Data to send (the caller's; copied into the pages when sent). */
  dataOut: Uint8Array | null = null;
  /** A disk I/O: its disk and, for a read, the caller's result buffer. */
  disk: ScsiDisk | null = null;
  out: Uint8Array | null = null;
  /** Guest pages of the data buffer while the host may use them. */
  pfns: number[] | null = null;
  /** The vstor_packet as sent (`vstorPacketSize` of the protocol). */
  packet = new Uint8Array(0);
  packetView = new DataView(this.packet.buffer);
  readonly range: { byteCount: number; byteOffset: number; pfns: readonly number[] } = { byteCount: 0, byteOffset: 0, pfns: NO_PFNS };
  readonly ranges: readonly GpaRange[] = [this.range];
  /** A disk I/O that completed with plain success: the turns of `step` still owe its caller the answer. */
  answerPending = false;
  /** Which turn after the completion `step` is at. */
  stage = 0;
  transferred = 0;
  error: unknown = null;
  resolveCommand: ((c: SrbCompletion) => void) | null = null;
  resolveRead: ((data: Uint8Array) => void) | null = null;
  resolveWrite: (() => void) | null = null;
  reject: ((e: unknown) => void) | null = null;

  // Made once per slot by the driver (`takeSlot`).
  timer!: Timer;
  start!: () => void;
  onCompleted!: (c: Completion) => void;
  onFailed!: (e: unknown) => void;
  step!: () => void;
  readonly executeCommand = (resolve: (c: SrbCompletion) => void, reject: (e: unknown) => void): void => {
    this.resolveCommand = resolve;
    this.reject = reject;
  };
  readonly executeRead = (resolve: (data: Uint8Array) => void, reject: (e: unknown) => void): void => {
    this.resolveRead = resolve;
    this.reject = reject;
  };
  readonly executeWrite = (resolve: () => void, reject: (e: unknown) => void): void => {
    this.resolveWrite = resolve;
    this.reject = reject;
  };

  reset(): void {
    this.mode = MODE_COMMAND;
    this.phase = "idle";
    this.channel = null;
    this.req = null;
    this.dataOut = null;
    this.disk = null;
    this.out = null;
    this.pfns = null;
    this.range.pfns = NO_PFNS;
    this.answerPending = false;
    this.stage = 0;
    this.transferred = 0;
    this.error = null;
    this.resolveCommand = null;
    this.resolveRead = null;
    this.resolveWrite = null;
    this.reject = null;
  }
}

interface FoundLun {
  readonly identity: ScsiDiskIdentity;
  readonly capacity: ScsiDiskCapacity;
}

/** What one scan collects (`doRescan`). */
interface ScanOutcome {
  readonly found: Map<string, FoundLun>;
  /** LUNs whose probe failed: a disk already there is kept. */
  readonly failed: Set<string>;
  readonly errors: RescanError[];
}

/** The INQUIRY of one LUN as the midlayer reads it (`scsi_probe_and_add_lun`). */
interface LunProbe {
  /** SCSI_SCAN_LUN_PRESENT: some device (not necessarily a disk) is at the LUN. */
  readonly present: boolean;
  /** A direct-access disk (the only type this driver offers), else null. */
  readonly identity: ScsiDiskIdentity | null;
  /**
   * The midlayer's `scsi_level` (SCSI_2 = 3, SCSI_3 = 4) from this answer —
   * set even when no LU is there, as `scsi_probe_lun` sets the target's
   * level from LUN 0 either way; 0 (SCSI_UNKNOWN) without usable data.
   */
  readonly scsiLevel: number;
}

/** The midlayer's `scsi_level` of SCSI-3 / SPC, the first that may be scanned past LUN 7. */
const SCSI_3 = 4;
/** PDT 0x1F "unknown or no device type": with qualifier 1 it means "no LUN here". */
const TYPE_UNKNOWN_OR_NONE = 0x1f;

@injectable()
export class StorvscDriver implements VmbusDriver, ScsiDiskHost {
  readonly config: ResolvedStorvscConfig;
  readonly stats = new StorvscStats();
  /** Negotiated VSTOR version (u16), 0 before the handshake. */
  protocolVersion = 0;
  /** Every version offered in QUERY_PROTOCOL_VERSION, in order, with the status the host answered. */
  readonly versionAttempts: { readonly version: number; readonly status: number }[] = [];
  /** QUERY_PROPERTIES as the host answered it. */
  channelProperties: VmstorageChannelProperties | null = null;
  /** max_transfer_bytes rounded down to 4 KiB (Linux `max_sectors << 9`). */
  maxTransferBytes = 0;
  /** Subchannels asked for with CREATE_SUB_CHANNELS (Linux `num_sc`). */
  subchannelsRequested = 0;
  /** Why subchannels could not be created or opened (Linux logs and goes on with fewer). */
  readonly subchannelErrors: unknown[] = [];
  /** `scsi_driver.can_queue`; each disk's queue depth is min(cmd_per_lun, can_queue). */
  readonly canQueue: number;
  /** The last rescan's error, if it failed as a whole. */
  lastRescanError: unknown = null;
  readonly isIde: boolean;

  private readonly diskMap = new Map<string, ScsiDisk>();
  private readonly listeners = new Set<RescanListener>();
  /** Commands waiting for a request id, per channel, in order. */
  private readonly waiting = new Map<GuestChannel, SrbSlot[]>();
  /** Commands queued or sent and not yet completed, failed or timed out. */
  private liveCount = 0;
  private readonly freeSlots: SrbSlot[] = [];
  private channelMap: StorChannelMap<GuestChannel> | null = null;
  private removedReason: string | null = null;
  private readyResolve: (() => void) | null = null;
  private rescanTail: Promise<unknown>;
  private pendingRescan: Promise<RescanResult> | null = null;
  private readonly memory: GuestMemory;

  constructor(
    @inject(HV_DEVICE) readonly device: VmbusDevice,
    @inject(VMBUS_CHANNEL) readonly channel: GuestChannel,
    @inject(VM_CONTEXT) readonly vm: VmContext,
    @inject(SIMULATION) readonly sim: Simulation,
    @inject(STORVSC_CONFIG, { isOptional: true }) config?: StorvscConfig,
  ) {
    this.config = resolveStorvscConfig(config);
    this.isIde = device.classId.equals(HV_IDE_GUID);
    this.memory = vm.partition.memory;
    this.canQueue = storvscCanQueue(this.config.ringBytes, vm.partition.vcpus.length, this.config.vcpusPerSubchannel, this.isIde);
    // Rescans wait for the handshake: an ENUMERATE_BUS may arrive before it ends.
    this.rescanTail = new Promise<void>((resolve) => {
      this.readyResolve = resolve;
    });
  }

  /** "vm1 storvsc <instance>": names the controller in errors. */
  get controllerName(): string {
    return `${this.vm.name} storvsc ${this.device.name}`;
  }

  /** The disks found by the last scan, by path, target and LUN. */
  get disks(): readonly ScsiDisk[] {
    return [...this.diskMap.values()].sort((a, b) => a.pathId - b.pathId || a.targetId - b.targetId || a.lun - b.lun);
  }

  /** The disk at `lun` (target 0, path 0 unless given). */
  disk(lun: number, targetId = 0, pathId = 0): ScsiDisk | undefined {
    return this.diskMap.get(key(pathId, targetId, lun));
  }

  /** Channels in use: the primary, then the opened subchannels. */
  get channels(): readonly GuestChannel[] {
    return this.channelMap?.list() ?? [this.channel];
  }

  /** Commands queued or outstanding (not yet completed, failed or timed out). */
  get outstandingCommands(): number {
    return this.liveCount;
  }

  /** True once `remove` ran (or the probe failed). */
  get removed(): boolean {
    return this.removedReason !== null;
  }

  /** Calls `listener` after every rescan; returns the function that unsubscribes it. */
  onRescan(listener: RescanListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Rescans the bus (what an ENUMERATE_BUS from the host triggers). Rescans
   * run one at a time; a request while one is waiting to start joins it.
   */
  rescan(reason = "requested"): Promise<RescanResult> {
    if (this.pendingRescan !== null) return this.pendingRescan;
    const p = this.rescanTail.then(() => {
      this.pendingRescan = null;
      return this.doRescan(reason);
    });
    this.pendingRescan = p;
    this.rescanTail = p.catch((e: unknown) => {
      this.lastRescanError = e;
    });
    return p;
  }

  // ---- probe / remove ------------------------------------------------------------

  async probe(): Promise<void> {
    try {
      await this.channel.open(this.openOptions());
      this.channelMap = new StorChannelMap<GuestChannel>(this.channel, (c) => c.state === CHANNEL_OPENED_STATE && !c.rescinded, RING_AVAIL_PERCENT_LOWATER);
      const multichannel = await this.channelInit();
      if (multichannel) await this.createSubchannels();
      this.readyResolve?.();
      // As scsi_scan_host, a failed scan does not fail the probe: the
      // controller stays bound with the disks found (see lastRescanError).
      await this.rescan("probe").catch(() => undefined);
    } catch (e) {
      await this.shutdown(`the probe failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  async remove(): Promise<void> {
    await this.shutdown("the storvsc driver was removed");
  }

  // ---- initialization handshake (§4) ---------------------------------------------

  private openOptions() {
    return {
      sendRingBytes: this.config.ringBytes,
      recvRingBytes: this.config.ringBytes,
      userData: new Uint8Array(OPEN_USER_DATA_BYTES),
      requestorSize: this.config.requestsPerChannel,
      onPacket: (p: IncomingPacket, ch: GuestChannel) => this.onHostPacket(p, ch),
    };
  }

  /** `storvsc_channel_init`. Returns whether the host offers multichannel. */
  private async channelInit(): Promise<boolean> {
    await this.executeVstorOp(VSTOR_OPERATION_BEGIN_INITIALIZATION, { kind: "none" }, true);

    for (const version of storvscVersionOrder(this.config.maxVersion)) {
      const reply = await this.executeVstorOp(
        VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
        { kind: "version", version: { majorMinor: version, revision: 0 } },
        false,
      );
      this.versionAttempts.push({ version, status: reply.status });
      // Linux moves on for any non-zero status, not only REVISION_MISMATCH.
      if (reply.status === STATUS_SUCCESS) {
        this.protocolVersion = version;
        break;
      }
    }
    if (this.protocolVersion === 0) {
      throw new VstorHandshakeError(
        "VSTOR QUERY_PROTOCOL_VERSION",
        "versions offered",
        this.versionAttempts.map((a) => formatVmstorVersion(a.version)).join(", "),
        "were all refused by the host (Linux: \"Obsolete Hyper-V version\")",
      );
    }

    const props = await this.executeVstorOp(VSTOR_OPERATION_QUERY_PROPERTIES, { kind: "none" }, true);
    if (props.payload.kind !== "properties") {
      throw new VstorHandshakeError("VSTOR QUERY_PROPERTIES completion", "payload", props.payload.kind, "is not channel properties");
    }
    const p = props.payload.properties;
    this.channelProperties = p;
    // "Any reasonable Hyper-V configuration should provide max_transfer_bytes
    // aligning to HV_HYP_PAGE_SIZE" — Linux rounds down, and so do we.
    this.maxTransferBytes = p.maxTransferBytes - (p.maxTransferBytes % PAGE_SIZE);
    if (this.maxTransferBytes === 0) {
      throw new VstorHandshakeError("VSTOR QUERY_PROPERTIES completion", "max_transfer_bytes", p.maxTransferBytes, `rounds down to 0 (below one ${PAGE_SIZE}-byte page)`);
    }

    await this.executeVstorOp(VSTOR_OPERATION_END_INITIALIZATION, { kind: "none" }, true);
    return (p.flags & STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL) !== 0;
  }

  /**
   * `storvsc_execute_vstor_op`: one initialization packet on the primary,
   * waited for 5 s; checks COMPLETE_IO and (when `statusCheck`) status 0.
   */
  private async executeVstorOp(operation: number, payload: VstorPayload, statusCheck: boolean, timeoutNs = STORVSC_INIT_TIMEOUT_NS): Promise<VstorPacket> {
    const name = VSTOR_OPERATION_NAMES.get(operation) ?? String(operation);
    // Every supported version is ≥ Win8: full 64-byte packets from the first one on, as current Linux sends.
    const version = this.protocolVersion || VMSTOR_PROTO_VERSION_WIN8;
    const bytes = encodeVstorPacket(makeVstorRequestPacket(operation, payload), version);
    const c = await this.withTimeout(this.channel.sendRequest(bytes), name, this.channel.name, timeoutNs);
    const reply = decodeVstorPacket(c.data, { protocolVersion: version, sender: "host", completes: operation });
    if (reply.operation !== VSTOR_OPERATION_COMPLETE_IO) {
      throw new VstorHandshakeError(`VSTOR ${name} completion`, "operation", `${reply.operation} (${VSTOR_OPERATION_NAMES.get(reply.operation) ?? "?"})`, "is not COMPLETE_IO (1)");
    }
    if (statusCheck && reply.status !== STATUS_SUCCESS) {
      throw new VstorHandshakeError(`VSTOR ${name} completion`, "status", `0x${(reply.status >>> 0).toString(16).padStart(8, "0")}`, "is not STATUS_SUCCESS");
    }
    return reply;
  }

  /**
   * `handle_multichannel_storage`: asks for min(CPUs − 1, max_channel_cnt)
   * subchannels and opens each offer as it arrives. Linux does not wait for
   * the offers; we wait (up to 10 s) so that probe returns with every
   * channel in place. Failures leave the driver on fewer channels, as Linux.
   */
  private async createSubchannels(): Promise<void> {
    const props = this.channelProperties as VmstorageChannelProperties;
    const n = storvscSubchannelCount(this.vm.partition.vcpus.length, props.maxChannelCount);
    if (n === 0) return;
    const map = this.channelMap as StorChannelMap<GuestChannel>;
    this.subchannelsRequested = n;
    map.numSc = n;

    const opens: Promise<void>[] = [];
    let offered = 0;
    let allOffered: () => void = () => undefined;
    const offers = new Promise<void>((resolve) => {
      allOffered = resolve;
    });
    // Set before the request: the offers may arrive before its completion.
    this.channel.onSubchannel = (sc) => {
      if (this.removed) return;
      offered++;
      opens.push(this.openSubchannel(sc));
      if (offered >= n) allOffered();
    };

    try {
      await this.executeVstorOp(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: n }, true, STORVSC_SUBCHANNEL_TIMEOUT_NS);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      // Linux: "Failed to create sub-channel" and carries on with the primary.
      this.subchannelErrors.push(e);
      return;
    }
    const timer = this.sim.scheduler.schedule(STORVSC_SUBCHANNEL_TIMEOUT_NS, () => allOffered(), `${this.controllerName} subchannel offers`);
    await offers;
    timer.cancel();
    if (offered < n) {
      this.subchannelErrors.push(
        new StorvscTimeoutError(`${n} subchannel offers (got ${offered})`, this.channel.name, STORVSC_SUBCHANNEL_TIMEOUT_NS, "sent"),
      );
    }
    await Promise.all(opens);
  }

  /** `handle_sc_creation`: open with the primary's ring size and open data; use it only if that worked. */
  private async openSubchannel(sc: GuestChannel): Promise<void> {
    try {
      await sc.open(this.openOptions());
      if (this.removed) return;
      this.channelMap?.add(sc);
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      this.subchannelErrors.push(e);
    }
  }

  // ---- unsolicited packets (§5.2, §5.3) ------------------------------------------------

  /**
   * `storvsc_on_channel_callback` for what is not a completion of ours.
   * Only trans id 0 means "unsolicited"; it needs 4 bytes (the operation),
   * as Linux's `minlen`. ENUMERATE_BUS and REMOVE_DEVICE queue a rescan (the
   * packet is valid only during this call, and the scan sends commands).
   */
  private onHostPacket(p: IncomingPacket, ch: GuestChannel): void {
    if (p.type !== VM_PKT_DATA_INBAND || p.transIdLo !== 0 || p.transIdHi !== 0) {
      this.stats.droppedPackets++;
      return;
    }
    this.stats.unsolicited++;
    if (p.dataLength < 4) {
      this.stats.droppedPackets++;
      return;
    }
    const operation = p.view.getUint32(p.dataOffset, true);
    if (operation === VSTOR_OPERATION_ENUMERATE_BUS || operation === VSTOR_OPERATION_REMOVE_DEVICE) {
      this.stats.busNotifications++;
      if (this.removed) return;
      const name = VSTOR_OPERATION_NAMES.get(operation) ?? String(operation);
      void this.rescan(`${name} from the host on ${ch.name}`).catch(() => undefined);
      return;
    }
    // COMPLETE_IO / FCHBA_DATA with id 0 are rejected by Linux; anything else is ignored.
    this.stats.droppedPackets++;
  }

  // ---- the I/O path (§5.1, §5.2) ---------------------------------------------------------

  /**
   * One SCSI command with sd's reaction to UNIT ATTENTION: retried (up to
   * SD_MAX_RETRIES), after a rescan when the capacity or the LUN inventory
   * changed (2A/09, 3F/xx — Linux's `storvsc_handle_error` requeues behind
   * `storvsc_device_scan`). INVALID_LUN schedules a rescan that drops the
   * LUN (Linux `storvsc_remove_lun`).
   */
  runScsi(req: ScsiRequest): Promise<ScsiResult> {
    return this.runScsiFrom(req, null);
  }

  /**
   * `runScsi`, optionally picking up a command whose first attempt has
   * already settled (`first`: a disk I/O of the fast path that did not end
   * in plain success) — it is awaited where the first `executeSrb` would
   * be, so what follows happens exactly as for any other command.
   */
  private async runScsiFrom(req: ScsiRequest, first: Promise<SrbCompletion> | null): Promise<ScsiResult> {
    for (let attempt = 0; ; attempt++) {
      const c = attempt === 0 && first !== null ? await first : await this.executeSrb(req);
      const error = this.completionError(req, c);
      if (error === null) return { transferred: c.transferred, data: c.data };
      if (error instanceof UnitAttentionError && attempt < SD_MAX_RETRIES) {
        this.stats.unitAttentionRetries++;
        if (req.rescanOnUnitAttention && (error.asc === 0x2a && error.ascq === 0x09 || error.asc === 0x3f)) {
          await this.rescan(`UNIT ATTENTION ${hex2(error.asc)}/${hex2(error.ascq)} on ${error.command} of LUN ${req.lun}`).catch(() => undefined);
        }
        continue;
      }
      if (error instanceof SrbStatusError && error.srbStatusCode === SRB_STATUS_INVALID_LUN && req.rescanOnUnitAttention) {
        void this.rescan(`INVALID_LUN on ${error.command} of LUN ${req.lun}`).catch(() => undefined);
      }
      throw error;
    }
  }

  /**
   * Linux `storvsc_on_io_completion` + `storvsc_command_completion`: sense
   * counts only with CHECK CONDITION and AUTOSENSE_VALID; without it the
   * SRB status (or a non-GOOD SCSI status) is the error. DATA_OVERRUN with
   * GOOD is a short transfer, not an error (the midlayer sees no error).
   */
  private completionError(req: ScsiRequest, c: SrbCompletion): VmbusSimError | null {
    const srb = c.srb;
    const code = srbStatusCode(srb.srbStatus);
    if ((code === SRB_STATUS_SUCCESS || code === SRB_STATUS_DATA_OVERRUN) && srb.scsiStatus === SCSI_STATUS_GOOD) return null;
    const ctx = commandContext(this.controllerName, req);
    if (srb.scsiStatus === SCSI_STATUS_CHECK_CONDITION && (srb.srbStatus & SRB_STATUS_AUTOSENSE_VALID) !== 0) {
      let sense: SenseData;
      try {
        sense = parseSenseData(srbSenseData(srb));
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        return new SrbStatusError(ctx, srb.srbStatus, srb.scsiStatus, c.ntStatus, `AUTOSENSE_VALID, but the sense data is unusable: ${e.message}`);
      }
      // A recovered error is a success with a note; sd completes the command.
      if (code === SRB_STATUS_SUCCESS && (sense.senseKey === NO_SENSE || sense.senseKey === RECOVERED_ERROR)) return null;
      return senseError(ctx, sense, srb.srbStatus, srb.scsiStatus);
    }
    return new SrbStatusError(ctx, srb.srbStatus, srb.scsiStatus, c.ntStatus);
  }

  /**
   * `storvsc_queuecommand` + `storvsc_do_io`: picks the channel for the
   * issuing CPU, waits for a request id of that channel if all are taken,
   * sends, and arms the request timeout (it covers the wait too).
   */
  private executeSrb(req: ScsiRequest): Promise<SrbCompletion> {
    const s = this.takeSlot();
    s.mode = MODE_COMMAND;
    s.req = req;
    s.cpu = req.cpu;
    s.pathId = req.pathId;
    s.targetId = req.targetId;
    s.lun = req.lun;
    s.dataIn = req.dataIn;
    s.length = req.length;
    s.dataOut = req.dataOut ?? null;
    const p = new Promise<SrbCompletion>(s.executeCommand);
    this.start(s);
    return p;
  }

  /**
   * The fast path of a disk read of one command (`ScsiDisk` has checked the
   * range and taken one of its queue slots): the same command, packet,
   * pages, timeout and answer as `runScsi` through the disk's general path,
   * without the objects. The work starts one microtask turn later, where the
   * general path's `await` of its queue slot resumes — out of the issuing
   * vCPU's handler, as there, so the signal to the host is made the same way
   * — and every later step happens in the same turn as there (see `step`),
   * so I/Os of both paths that complete together keep their order.
   * @internal
   */
  submitRead(disk: ScsiDisk, lba: number, blocks: number, cdb16: boolean, out: Uint8Array, cpu: number): Promise<Uint8Array> {
    const s = this.prepareBlockIo(disk, false, lba, blocks, cdb16, out.length, cpu);
    s.out = out;
    const p = new Promise<Uint8Array>(s.executeRead);
    void RESOLVED.then(s.start);
    return p;
  }

  /** `submitRead` for a write of `data` (copied into the pages when the command is sent). @internal */
  submitWrite(disk: ScsiDisk, lba: number, blocks: number, cdb16: boolean, data: Uint8Array, cpu: number): Promise<void> {
    const s = this.prepareBlockIo(disk, true, lba, blocks, cdb16, data.length, cpu);
    s.dataOut = data;
    const p = new Promise<void>(s.executeWrite);
    void RESOLVED.then(s.start);
    return p;
  }

  /** A slot holding READ/WRITE(10) or (16) of `blocks` at `lba` (what the disk's `buildReadCdb` / `buildWriteCdb` give). */
  private prepareBlockIo(disk: ScsiDisk, write: boolean, lba: number, blocks: number, cdb16: boolean, length: number, cpu: number): SrbSlot {
    const s = this.takeSlot();
    s.mode = write ? MODE_WRITE : MODE_READ;
    s.disk = disk;
    s.cpu = cpu;
    s.pathId = disk.pathId;
    s.targetId = disk.targetId;
    s.lun = disk.lun;
    s.dataIn = write ? WRITE_TYPE : READ_TYPE;
    s.length = length;
    s.lba = lba;
    s.blocks = blocks;
    const cdb = s.cdb;
    cdb.fill(0);
    if (cdb16) {
      s.cdbLength = 16;
      cdb[0] = write ? WRITE_16 : READ_16;
      putU32be(cdb, 2, Math.floor(lba / 2 ** 32));
      putU32be(cdb, 6, lba >>> 0);
      putU32be(cdb, 10, blocks);
    } else {
      s.cdbLength = 10;
      cdb[0] = write ? WRITE_10 : READ_10;
      putU32be(cdb, 2, lba);
      cdb[7] = blocks >>> 8;
      cdb[8] = blocks & 0xff;
    }
    return s;
  }

  /** The rest of `executeSrb` (for a disk I/O, one turn after `submitRead` / `submitWrite`). */
  private start(s: SrbSlot): void {
    if (this.removedReason !== null) {
      this.answerEarly(s, new StorvscRemovedError(describe(this.contextOf(s)), this.controllerName, this.removedReason));
      return;
    }
    const map = this.channelMap;
    if (map === null || this.protocolVersion === 0) {
      this.answerEarly(s, new StorvscRemovedError(describe(this.contextOf(s)), this.controllerName, "the channel is not initialized"));
      return;
    }
    const channel = map.choose(s.cpu);
    s.channel = channel;
    s.phase = "queued";
    this.liveCount++;
    s.timer.arm(this.config.requestTimeoutNs);
    let queue = this.waiting.get(channel);
    if ((queue !== undefined && queue.length > 0) || channel.outstanding >= this.config.requestsPerChannel) {
      this.stats.commandsQueued++;
      if (queue === undefined) {
        queue = [];
        this.waiting.set(channel, queue);
      }
      queue.push(s);
      return;
    }
    this.send(s);
  }

  /** A command that failed before it was queued or sent: answered, and its slot is free again. */
  private answerEarly(s: SrbSlot, e: unknown): void {
    this.answerFailure(s, e);
    this.recycle(s);
  }

  /** Sends queued commands of `ch` while it has free request ids. */
  private pump(ch: GuestChannel): void {
    const queue = this.waiting.get(ch);
    while (queue !== undefined && queue.length > 0 && ch.outstanding < this.config.requestsPerChannel) {
      this.send(queue.shift() as SrbSlot);
    }
  }

  /**
   * Builds the 64-byte EXECUTE_SRB packet; with data, allocates guest pages
   * for the buffer (copying write data in) and names them in ONE GPA range
   * (byte_offset 0, byte_count = length, one PFN per page, as
   * `storvsc_queuecommand` builds its `vmbus_packet_mpb_array`); without,
   * an inband packet. The pages are freed when the completion arrives —
   * late or not — or the channel closes, never earlier: the host may write
   * into them until it answers. The packet and the range live in the slot,
   * which is not reused before then either: a packet waiting for ring space
   * is written from them later.
   */
  private send(s: SrbSlot): void {
    const channel = s.channel as GuestChannel;
    s.phase = "sent";
    let pfns: number[] | null = null;
    let sent: Promise<Completion>;
    try {
      const bytes = this.encodeSrb(s);
      if (s.length > 0) {
        pfns = this.memory.allocScattered(Math.ceil(s.length / PAGE_SIZE));
        if (s.dataOut !== null) copyToPages(this.memory, pfns, s.dataOut, s.length);
        s.range.byteCount = s.length;
        s.range.pfns = pfns;
        sent = channel.sendPacketMpbDesc(s.ranges, bytes);
      } else {
        sent = channel.sendRequest(bytes);
      }
    } catch (e) {
      if (pfns !== null) this.memory.free(pfns);
      this.fail(s, e);
      this.recycle(s);
      return;
    }
    s.pfns = pfns;
    this.stats.commandsSent++;
    // Both handlers catch everything: the derived promise never rejects.
    void sent.then(s.onCompleted, s.onFailed);
  }

  /** The slot's packet for the negotiated version, holding this command. */
  private encodeSrb(s: SrbSlot): Uint8Array {
    const version = this.protocolVersion;
    const size = vstorPacketSize(version);
    if (s.packet.length !== size) {
      s.packet = new Uint8Array(size);
      s.packetView = new DataView(s.packet.buffer);
    }
    if (s.req !== null) {
      const req = s.req;
      const packet = makeExecuteSrbPacket({
        protocolVersion: version,
        cdb: req.cdb,
        dataIn: req.dataIn,
        dataTransferLength: req.length,
        pathId: req.pathId,
        targetId: req.targetId,
        lun: req.lun,
      });
      encodeVstorPacketInto(packet, version, s.packet, 0);
    } else {
      const packet = s.packet;
      writeExecuteSrbPacket(packet, s.packetView, version, s.cdbLength, s.dataIn, s.length, s.pathId, s.targetId, s.lun);
      for (let i = 0; i < s.cdbLength; i++) packet[VSTOR_CDB_OFFSET + i] = s.cdb[i] as number;
    }
    return s.packet;
  }

  /**
   * The host's COMPLETE_IO of `s` (a microtask turn after the channel got
   * it). A disk I/O answered with plain success is finished here and in
   * `step`; everything else is decoded the full way, into what `runScsi`
   * works with.
   */
  private onCompleted(s: SrbSlot, c: Completion): void {
    try {
      if (s.phase === "done") {
        // Its caller already got a timeout; the id was kept for exactly this packet.
        this.stats.lateCompletions++;
      } else if (s.mode !== MODE_COMMAND && this.finishPlain(s, c.data)) {
        s.answerPending = true;
      } else {
        let first: SrbCompletion | null = null;
        try {
          first = this.decodeCompletion(s, c.data);
        } catch (e) {
          this.fail(s, e);
        }
        if (first !== null) {
          this.settle(s, false);
          if (s.mode === MODE_COMMAND) (s.resolveCommand as (c: SrbCompletion) => void)(first);
          else this.continueBlockIo(s, Promise.resolve(first));
        }
      }
    } catch (e) {
      this.sim.scheduler.reportError(`${this.controllerName} completion of ${describe(this.contextOf(s))}`, e);
    }
    s.stage = 1;
    void RESOLVED.then(s.step);
  }

  /** The request of `s` failed in the channel (closed, rescinded, never written). */
  private onFailed(s: SrbSlot, e: unknown): void {
    this.fail(s, e);
    s.stage = 1;
    void RESOLVED.then(s.step);
  }

  /**
   * The turns after a completion, one per call, as the general path takes
   * them: pages freed and the channel's queue pumped (turn 2, the
   * `finally` of a send), the disk's queue slot released (3), the short
   * transfer found (4), the caller answered (6, where the general path's
   * `read` / `write` returns). A slot with no caller left to answer goes
   * back to the free list after turn 2.
   */
  private step(s: SrbSlot): void {
    try {
      s.stage++;
      if (s.stage === 2) {
        const pfns = s.pfns;
        s.pfns = null;
        if (pfns !== null) this.memory.free(pfns);
        if (s.channel !== null) this.pump(s.channel);
        if (!s.answerPending) {
          this.recycle(s);
          return;
        }
      } else if (s.stage === 3) {
        (s.disk as ScsiDisk).releaseSlot();
      } else if (s.stage === 4) {
        if (s.transferred < s.length) {
          s.error = new ShortTransferError(this.contextOf(s), s.length, s.transferred);
        }
      } else if (s.stage === 6) {
        const { mode, out, error, resolveRead, resolveWrite, reject } = s;
        this.recycle(s);
        if (error !== null) (reject as (e: unknown) => void)(error);
        else if (mode === MODE_READ) (resolveRead as (data: Uint8Array) => void)(out as Uint8Array);
        else (resolveWrite as () => void)();
        return;
      }
    } catch (e) {
      this.sim.scheduler.reportError(`${this.controllerName} completion of ${describe(this.contextOf(s))}`, e);
      return;
    }
    void RESOLVED.then(s.step);
  }

  /**
   * A disk I/O's completion read in place: true when it is a COMPLETE_IO
   * that decodes and completes the command without error (SUCCESS or
   * DATA_OVERRUN, GOOD) — then the read data is copied to the caller's
   * buffer and the command settled. False (nothing changed) otherwise.
   */
  private finishPlain(s: SrbSlot, bytes: Uint8Array): boolean {
    if (!isPlainSrbCompletion(bytes, this.protocolVersion, s.length)) return false;
    const code = srbStatusCode(bytes[SRB_STATUS_OFFSET] as number);
    if ((code !== SRB_STATUS_SUCCESS && code !== SRB_STATUS_DATA_OVERRUN) || bytes[SCSI_STATUS_OFFSET] !== SCSI_STATUS_GOOD) return false;
    // Linux: on errors other than DATA_OVERRUN the transfer length is 0.
    const transferred = Math.min(readU32(bytes, DATA_TRANSFER_LENGTH_OFFSET), s.length);
    s.transferred = transferred;
    if (s.out !== null && s.pfns !== null && transferred === s.length) copyFromPagesInto(this.memory, s.pfns, s.out, transferred);
    this.settle(s, false);
    return true;
  }

  /** The general decode of a completion (old `onCompletion`), for anything `finishPlain` does not take. */
  private decodeCompletion(s: SrbSlot, bytes: Uint8Array): SrbCompletion {
    const reply = decodeVstorPacket(bytes, {
      protocolVersion: this.protocolVersion,
      sender: "host",
      completes: VSTOR_OPERATION_EXECUTE_SRB,
      requestDataTransferLength: s.length,
    });
    if (reply.operation !== VSTOR_OPERATION_COMPLETE_IO || reply.payload.kind !== "srb") {
      throw new ProtocolError("VSTOR EXECUTE_SRB completion", "operation", `${reply.operation} (${VSTOR_OPERATION_NAMES.get(reply.operation) ?? "?"})`, "is not COMPLETE_IO (1)");
    }
    const srb = reply.payload.srb;
    const code = srbStatusCode(srb.srbStatus);
    // Linux: on errors other than DATA_OVERRUN the transfer length is 0.
    const transferred = code === SRB_STATUS_SUCCESS || code === SRB_STATUS_DATA_OVERRUN ? Math.min(srb.dataTransferLength, s.length) : 0;
    const data = s.dataIn === READ_TYPE && s.pfns !== null ? copyFromPages(this.memory, s.pfns, transferred) : new Uint8Array(0);
    return { srb, ntStatus: reply.status, transferred, data };
  }

  /**
   * A disk I/O of the fast path whose first attempt did not end in plain
   * success (an error, sense, a timeout, removal): from here on it is the
   * general path — `runScsi`'s retries, the disk's queue slot, the short
   * transfer check, the caller's answer — with the same awaits, so the
   * caller hears in the same turn as there. The slot keeps only its duty
   * to the channel.
   */
  private continueBlockIo(s: SrbSlot, first: Promise<SrbCompletion>): void {
    const disk = s.disk as ScsiDisk;
    const req = this.requestOf(s);
    const out = s.out;
    const length = s.length;
    const answer = this.answerOf(s);
    const reject = s.reject as (e: unknown) => void;
    s.answerPending = false;
    s.resolveRead = null;
    s.resolveWrite = null;
    s.reject = null;
    const run = (async (): Promise<ScsiResult> => {
      try {
        return await this.runScsiFrom(req, first);
      } finally {
        disk.releaseSlot();
      }
    })();
    const chunk = (async (): Promise<void> => {
      const r = await run;
      if (r.transferred < length) throw new ShortTransferError(commandContext(this.controllerName, req), length, r.transferred);
      if (out !== null) out.set(r.data, 0);
    })();
    Promise.all([chunk]).then(answer, reject);
  }

  /** The success answer of a disk I/O: the read data, or nothing for a write. */
  private answerOf(s: SrbSlot): () => void {
    if (s.mode === MODE_READ) {
      const resolve = s.resolveRead as (data: Uint8Array) => void;
      const out = s.out as Uint8Array;
      return () => resolve(out);
    }
    const resolve = s.resolveWrite as () => void;
    return () => resolve();
  }

  private onTimeout(s: SrbSlot): void {
    if (s.phase === "done") return;
    const phase = s.phase === "queued" ? "queued" : "sent";
    const channel = s.channel as GuestChannel;
    if (phase === "queued") {
      const q = this.waiting.get(channel);
      const i = q?.indexOf(s) ?? -1;
      if (q !== undefined && i >= 0) q.splice(i, 1);
    }
    this.settle(s, true);
    this.stats.timeouts++;
    this.answerFailure(s, new StorvscTimeoutError(describe(this.contextOf(s)), channel.name, this.config.requestTimeoutNs, phase));
    // Never sent: nothing of the channel's refers to the slot.
    if (phase === "queued") this.recycle(s);
  }

  /** Fails `s` (once); after remove, with a StorvscRemovedError naming the command. */
  private fail(s: SrbSlot, e: unknown): void {
    if (s.phase === "done") return;
    this.settle(s, false);
    if (this.removedReason !== null) {
      this.answerFailure(s, new StorvscRemovedError(describe(this.contextOf(s)), this.controllerName, `${this.removedReason} (${e instanceof Error ? e.message : String(e)})`));
    } else {
      this.answerFailure(s, e);
    }
  }

  /** The caller of `s` learns that the command failed with `e` (a disk I/O through `runScsi`'s error handling). */
  private answerFailure(s: SrbSlot, e: unknown): void {
    if (s.mode === MODE_COMMAND) {
      const reject = s.reject as (e: unknown) => void;
      s.resolveCommand = null;
      s.reject = null;
      reject(e);
    } else {
      this.continueBlockIo(s, Promise.reject(e));
    }
  }

  private settle(s: SrbSlot, timerFired: boolean): void {
    // "queued"/"sent" → "done"; a slot that never got that far was never counted.
    if (s.phase === "queued" || s.phase === "sent") this.liveCount--;
    s.phase = "done";
    if (!timerFired) s.timer.cancel();
  }

  /** A free slot (Linux keeps one `storvsc_cmd_request` per SCSI command the same way). */
  private takeSlot(): SrbSlot {
    const s = this.freeSlots.pop();
    if (s !== undefined) return s;
    const n = new SrbSlot();
    n.timer = this.sim.scheduler.timer(`${this.controllerName} SCSI command timeout`, () => this.onTimeout(n));
    n.start = () => this.start(n);
    n.onCompleted = (c) => this.onCompleted(n, c);
    n.onFailed = (e) => this.onFailed(n, e);
    n.step = () => this.step(n);
    return n;
  }

  private recycle(s: SrbSlot): void {
    s.reset();
    this.freeSlots.push(s);
  }

  /** The request a slot stands for, as `runScsi` takes it (for the general path and for errors). */
  private requestOf(s: SrbSlot): ScsiRequest {
    if (s.req !== null) return s.req;
    return {
      pathId: s.pathId,
      targetId: s.targetId,
      lun: s.lun,
      cdb: s.cdb.slice(0, s.cdbLength),
      dataIn: s.dataIn,
      length: s.length,
      ...(s.dataOut !== null ? { dataOut: s.dataOut } : {}),
      cpu: s.cpu,
      lba: BigInt(s.lba),
      blocks: s.blocks,
      rescanOnUnitAttention: true,
    };
  }

  /** What names the command of `s` in messages; built only when one is needed. */
  private contextOf(s: SrbSlot): ScsiCommandContext {
    return commandContext(this.controllerName, this.requestOf(s));
  }

  /**
   * remove, or a failed probe: later commands fail at once, queued ones now,
   * outstanding ones when the channels close (their pages are freed then);
   * the channels close unless the host rescinded them. Disks are marked gone.
   */
  private async shutdown(reason: string): Promise<void> {
    if (this.removedReason !== null) return;
    this.removedReason = reason;
    this.channel.onSubchannel = null;
    this.readyResolve?.();
    for (const queue of this.waiting.values()) {
      for (const s of queue.splice(0)) {
        this.fail(s, new StorvscRemovedError(describe(this.contextOf(s)), this.controllerName, reason));
        // Never sent: nothing of the channel's refers to the slot.
        this.recycle(s);
      }
    }
    for (const d of this.diskMap.values()) d.markGone("controller");
    const primary = this.channel;
    if (primary.state === CHANNEL_OPENED_STATE && !primary.rescinded) {
      // Closes the subchannels first (vmbus_close of a primary).
      await primary.close();
    } else {
      for (const sc of primary.subchannels) if (sc.state === CHANNEL_OPENED_STATE && !sc.rescinded) await sc.close();
    }
  }

  // ---- the LUN scan (§6, §7.2–§7.4) -------------------------------------------------

  /** `storvsc_host_scan` / `scsi_scan_host`, then sd's capacity read for each LUN. */
  private async doRescan(reason: string): Promise<RescanResult> {
    if (this.removedReason !== null) {
      return { reason, added: [], removed: [], resized: [], errors: [], disks: this.disks };
    }
    this.stats.rescans++;
    this.lastRescanError = null;
    const scan: ScanOutcome = { found: new Map(), failed: new Set(), errors: [] };
    for (const t of this.scanTargets()) await this.scanTarget(t.pathId, t.targetId, scan);
    const { found, failed, errors } = scan;
    if (this.removedReason !== null) return { reason, added: [], removed: [], resized: [], errors, disks: this.disks };

    const added: ScsiDisk[] = [];
    const removed: ScsiDisk[] = [];
    const resized: { disk: ScsiDisk; oldBlocks: bigint; newBlocks: bigint }[] = [];
    for (const [k, disk] of [...this.diskMap]) {
      if (found.has(k) || failed.has(k)) continue;
      this.diskMap.delete(k);
      disk.markGone("lun");
      removed.push(disk);
    }
    for (const [k, f] of found) {
      const disk = this.diskMap.get(k);
      if (disk === undefined) {
        const d = new ScsiDisk(this, f.identity, f.capacity, Math.min(STORVSC_CMD_PER_LUN, this.canQueue));
        this.diskMap.set(k, d);
        added.push(d);
        continue;
      }
      const oldBlocks = disk.capacityBlocks;
      if (disk.updateCapacity(f.capacity)) resized.push({ disk, oldBlocks, newBlocks: f.capacity.capacityBlocks });
    }
    const result: RescanResult = { reason, added, removed, resized, errors, disks: this.disks };
    for (const l of [...this.listeners]) {
      try {
        l(result);
      } catch (e) {
        // A listener's bug must not break the scan; it surfaces in the run.
        this.sim.scheduler.reportError(`${this.controllerName} onRescan listener`, e);
      }
    }
    return result;
  }

  /**
   * The targets `scsi_scan_host` walks: channels (SRB path_id) 0 ..
   * max_channel and ids 0 .. max_id − 1 — for a SCSI controller
   * STORVSC_MAX_CHANNELS − 1 = 7 and STORVSC_MAX_TARGETS = 2, so 16 targets,
   * path-major as the midlayer's loops. Hyper-V itself puts its disks at
   * path 0 / target 0, but a host may use any of these and Linux finds them.
   * IDE: only Linux's `scsi_add_device(host, 0, target, 0)`, target =
   * instance GUID bytes 5:4.
   */
  private scanTargets(): { pathId: number; targetId: number }[] {
    if (this.isIde) {
      const id = this.device.instanceId;
      return [{ pathId: 0, targetId: ((id.byteAt(5) << 8) | id.byteAt(4)) & 0xff }];
    }
    const out: { pathId: number; targetId: number }[] = [];
    for (let pathId = 0; pathId < STORVSC_MAX_CHANNELS; pathId++) {
      for (let targetId = 0; targetId < STORVSC_MAX_TARGETS; targetId++) out.push({ pathId, targetId });
    }
    return out;
  }

  /**
   * `__scsi_scan_target`: LUN 0 first; if the target answered (a LUN there
   * or qualifier 3 "no LU here, but the target exists"), REPORT LUNS and
   * each listed LUN up to max_lun, or — REPORT LUNS refused — the
   * sequential scan. IDE stops after LUN 0.
   */
  private async scanTarget(pathId: number, targetId: number, scan: ScanOutcome): Promise<void> {
    const lun0 = await this.probeLun(pathId, targetId, 0, scan);
    // No response at LUN 0: Linux skips the target (SCSI_SCAN_NO_RESPONSE).
    if (lun0 === null || this.isIde) return;
    const luns = await this.reportLuns(pathId, targetId);
    if (luns === null) {
      await this.sequentialLunScan(pathId, targetId, lun0, scan);
      return;
    }
    for (const lun of luns) {
      // LUN 0 was probed above; Linux's REPORT LUNS scan finds it again as an existing device.
      if (lun === 0) continue;
      // scsi_report_lun_scan: "has a LUN larger than allowed by the host adapter".
      if (lun > STORVSC_MAX_LUNS_PER_TARGET) continue;
      await this.probeLun(pathId, targetId, lun, scan);
    }
  }

  /**
   * `scsi_sequential_lun_scan` (REPORT LUNS refused): LUN 1, 2, … while each
   * is present, below min(MAX_SCSI_LUNS, max_lun) — and below 8 unless LUN
   * 0's answer (present or not: it sets the target's `scsi_level`) said
   * SCSI-3 or later. storvsc sets neither BLIST_SPARSELUN nor
   * BLIST_FORCELUN, so the first absent LUN ends the scan.
   */
  private async sequentialLunScan(pathId: number, targetId: number, lun0: LunProbe, scan: ScanOutcome): Promise<void> {
    const maxDevLun = Math.min(MAX_SCSI_LUNS, STORVSC_MAX_LUNS_PER_TARGET);
    const limit = lun0.scsiLevel < SCSI_3 ? Math.min(8, maxDevLun) : Math.min(256, maxDevLun);
    for (let lun = 1; lun < limit; lun++) {
      const p = await this.probeLun(pathId, targetId, lun, scan);
      if (p === null || !p.present) return;
    }
  }

  /**
   * `scsi_probe_and_add_lun` and sd's capacity read: INQUIRY, then READ
   * CAPACITY for a disk, into `scan`. Null when the INQUIRY could not be
   * completed (the failure is recorded; a disk already there is kept).
   */
  private async probeLun(pathId: number, targetId: number, lun: number, scan: ScanOutcome): Promise<LunProbe | null> {
    let p: LunProbe;
    try {
      p = await this.inquiry(pathId, targetId, lun);
    } catch (e) {
      this.scanFailed(scan, pathId, targetId, lun, e);
      return null;
    }
    if (p.identity === null) return p;
    try {
      scan.found.set(key(pathId, targetId, lun), { identity: p.identity, capacity: await this.readCapacity(pathId, targetId, lun) });
    } catch (e) {
      // The LUN answered INQUIRY, so it is there (the sequential scan goes on).
      this.scanFailed(scan, pathId, targetId, lun, e);
    }
    return p;
  }

  /** Records a LUN whose probe failed with a SCSI or protocol error; anything else fails the whole rescan. */
  private scanFailed(scan: ScanOutcome, pathId: number, targetId: number, lun: number, e: unknown): void {
    if (!(e instanceof ScsiSenseError || e instanceof SrbStatusError || e instanceof ProtocolError)) throw e;
    scan.failed.add(key(pathId, targetId, lun));
    scan.errors.push({ pathId, targetId, lun, error: e });
  }

  private scanRequest(pathId: number, targetId: number, lun: number, cdb: Uint8Array, length: number): ScsiRequest {
    return { pathId, targetId, lun, cdb, dataIn: length > 0 ? READ_TYPE : UNKNOWN_TYPE, length, cpu: 0, lba: null, blocks: null, rescanOnUnitAttention: false };
  }

  /**
   * REPORT LUNS with a one-page buffer (511 entries, Linux's default), again
   * with the full length if the list did not fit. Null when the target
   * refuses it (any error status, as `scsi_report_lun_scan` returns 1 for a
   * non-zero result) or its answer is unreadable: the caller then scans
   * sequentially.
   */
  private async reportLuns(pathId: number, targetId: number): Promise<number[] | null> {
    let length = PAGE_SIZE;
    for (let attempt = 0; attempt < 2; attempt++) {
      let list: ReturnType<typeof parseReportLunsData>;
      try {
        const r = await this.runScsi(this.scanRequest(pathId, targetId, 0, buildReportLunsCdb(length), length));
        list = parseReportLunsData(r.data);
      } catch (e) {
        if (e instanceof ScsiSenseError || e instanceof SrbStatusError || e instanceof ProtocolError) return null;
        throw e;
      }
      if (!list.truncated || attempt === 1) return [...new Set(list.luns)].sort((a, b) => a - b);
      length = REPORT_LUNS_HEADER_LENGTH + list.lunListLength;
    }
    return null;
  }

  /**
   * Standard INQUIRY (36 bytes), read as the midlayer does. Not present:
   * qualifier 3 (0x7F, "no LU here") or qualifier 1 with type 0x1F. Present
   * but not a disk: any other type (no `ScsiDisk`, yet the LUN counts for
   * the sequential scan). Linux forces INQUIRY completions to SUCCESS
   * whatever the host says (§5.2 quirk), so a failed INQUIRY — or one of
   * fewer than 5 bytes — is "nothing there", with the target answering.
   */
  private async inquiry(pathId: number, targetId: number, lun: number): Promise<LunProbe> {
    let r: ScsiResult;
    try {
      r = await this.runScsi(this.scanRequest(pathId, targetId, lun, buildInquiryCdb(STANDARD_INQUIRY_SHORT_LENGTH), STANDARD_INQUIRY_SHORT_LENGTH));
    } catch (e) {
      if (e instanceof ScsiSenseError || e instanceof SrbStatusError) return NOT_PRESENT;
      throw e;
    }
    if (r.data.length < 5) return NOT_PRESENT;
    const d = parseStandardInquiryData(r.data);
    // scsi_probe_lun: the version's low nibble, one up from SCSI-2 on (and for SCSI-1 CCS).
    const ansi = d.version & 0x0f;
    const scsiLevel = ansi >= 2 || (ansi === 1 && d.responseDataFormat === 1) ? ansi + 1 : ansi;
    const q = d.peripheralQualifier;
    if (q === PERIPHERAL_QUALIFIER_NOT_SUPPORTED || (q === 1 && d.peripheralDeviceType === TYPE_UNKNOWN_OR_NONE)) {
      return { present: false, identity: null, scsiLevel };
    }
    const identity =
      q === PERIPHERAL_QUALIFIER_CONNECTED && d.peripheralDeviceType === TYPE_DISK
        ? { pathId, targetId, lun, vendor: d.vendor, product: d.product, revision: d.revision, scsiLevel: d.version }
        : null;
    return { present: true, identity, scsiLevel };
  }

  /** READ CAPACITY(16), or (10) when the disk refuses (16) — sd's `read_capacity_16` → `read_capacity_10`. */
  private async readCapacity(pathId: number, targetId: number, lun: number): Promise<ScsiDiskCapacity> {
    let rc16Error: VmbusSimError;
    try {
      const r = await this.runScsi(this.scanRequest(pathId, targetId, lun, buildReadCapacity16Cdb(READ_CAPACITY_16_DATA_LENGTH), READ_CAPACITY_16_DATA_LENGTH));
      const d = parseReadCapacity16Data(r.data);
      return { capacityBlocks: d.lastLba + 1n, blockSize: d.blockLength, thinProvisioned: d.lbpme, source: "READ CAPACITY(16)" };
    } catch (e) {
      if (!(e instanceof IllegalRequestError || e instanceof SrbStatusError)) throw e;
      rc16Error = e;
    }
    const r = await this.runScsi(this.scanRequest(pathId, targetId, lun, buildReadCapacity10Cdb(), READ_CAPACITY_10_DATA_LENGTH));
    const d = parseReadCapacity10Data(r.data);
    if (d.needsReadCapacity16) {
      throw new ProtocolError(
        "SCSI READ CAPACITY(10)",
        "RETURNED LOGICAL BLOCK ADDRESS",
        d.returnedLba,
        `says the disk needs READ CAPACITY(16), which failed: ${rc16Error.message}`,
      );
    }
    return { capacityBlocks: BigInt(d.returnedLba) + 1n, blockSize: d.blockLength, thinProvisioned: false, source: "READ CAPACITY(10)" };
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** Races `work` against a virtual-time timer; the loser is ignored (an id stays reserved, see the file comment). */
  private withTimeout<T>(work: Promise<T>, what: string, channel: string, timeoutNs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.sim.scheduler.schedule(
        timeoutNs,
        () => {
          this.stats.timeouts++;
          reject(new StorvscTimeoutError(what, channel, timeoutNs, "sent"));
        },
        `${this.controllerName} ${what} timeout`,
      );
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

const NOT_PRESENT: LunProbe = { present: false, identity: null, scsiLevel: 0 };

function key(pathId: number, targetId: number, lun: number): string {
  return `${pathId}:${targetId}:${lun}`;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}

function describe(ctx: ScsiCommandContext): string {
  const range = ctx.lba === null ? "" : ` lba=${ctx.lba}${ctx.blocks === null ? "" : ` blocks=${ctx.blocks}`}`;
  return `${ctx.command} of ${ctx.pathId}:${ctx.targetId}:${ctx.lun}${range}`;
}

/** Copies `length` bytes of `src` into the pages (in list order). */
function copyToPages(mem: GuestMemory, pfns: readonly number[], src: Uint8Array, length: number): void {
  if (length === src.length && length <= PAGE_SIZE) {
    mem.u8.set(src, (pfns[0] as number) * PAGE_SIZE);
    return;
  }
  for (let off = 0, i = 0; off < length; off += PAGE_SIZE, i++) {
    const n = Math.min(PAGE_SIZE, length - off);
    mem.u8.set(src.subarray(off, off + n), (pfns[i] as number) * PAGE_SIZE);
  }
}

/** Copies the first `length` bytes of the pages into `out` (from its start). */
function copyFromPagesInto(mem: GuestMemory, pfns: readonly number[], out: Uint8Array, length: number): void {
  const u8 = mem.u8;
  for (let off = 0, i = 0; off < length; off += PAGE_SIZE, i++) {
    const n = Math.min(PAGE_SIZE, length - off);
    const at = (pfns[i] as number) * PAGE_SIZE;
    out.set(u8.subarray(at, at + n), off);
  }
}

function putU32be(b: Uint8Array, offset: number, v: number): void {
  b[offset] = v >>> 24;
  b[offset + 1] = (v >>> 16) & 0xff;
  b[offset + 2] = (v >>> 8) & 0xff;
  b[offset + 3] = v & 0xff;
}

/** A copy of the first `length` bytes of the pages. */
function copyFromPages(mem: GuestMemory, pfns: readonly number[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  copyFromPagesInto(mem, pfns, out, length);
  return out;
}
