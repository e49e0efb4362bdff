/**
 * The SCSI target behind the VSP (storvsc-netvsc.md §6 routing and command
 * table, §7.1–§7.5 CDB and data layouts, §7.6 sense data): logical units
 * addressed by (path_id, target_id, lun), each a disk backend, answering
 * every command the protocol layer's `parseCdb` knows.
 *
 * Routing, as OV's storvsp does it (§6): REPORT LUNS is answered by the
 * controller itself; a missing LUN answers only INQUIRY (peripheral 0x7F,
 * "no logical unit here") and fails everything else with SRB INVALID_LUN and
 * no sense. Errors are CHECK CONDITION with 18-byte fixed sense: ILLEGAL
 * REQUEST (invalid opcode 05/20/00, LBA out of range 05/21/00, invalid field
 * 05/24/00, parameter list errors 05/1A/00 and 05/26/00) with SRB
 * INVALID_REQUEST; DATA PROTECT 07/27/00, MEDIUM ERROR 03/11/00 (read) and
 * 03/0C/00 (write), UNIT ATTENTION 06/3F/0E (LUN inventory changed) and
 * 06/2A/09 (capacity changed, §6) with SRB ERROR.
 *
 * Data moves only through the request's `ScsiDataBuffer` (the VSP hands in a
 * bounds-checked view of the packet's GPA range): data-out is copied out of
 * guest memory before the backend sees it, so a guest rewriting its buffer
 * mid-I/O cannot change what was validated; data-in is copied in only when
 * the backend succeeded.
 */
import { InvalidArgumentError, VmbusSimError } from "../../../core/index.js";
import {
  ASSOCIATION_LOGICAL_UNIT,
  CODE_SET_ASCII,
  CODE_SET_BINARY,
  DESIGNATOR_TYPE_NAA,
  DESIGNATOR_TYPE_T10_VENDOR_ID,
  INQUIRY,
  MEDIUM_ERROR,
  MEDIUM_ROTATION_RATE_NON_ROTATING,
  MODE_PAGE_ALL,
  MODE_PAGE_CACHING,
  MODE_SENSE_PC_CHANGEABLE,
  MODE_SENSE_PC_SAVED,
  NO_SENSE,
  PERIPHERAL_QUALIFIER_NOT_SUPPORTED,
  PROVISIONING_TYPE_THIN,
  READ_10,
  READ_16,
  READ_TYPE,
  REPORT_LUNS,
  REQUEST_SENSE,
  SCSI_STATUS_CHECK_CONDITION,
  SCSI_STATUS_GOOD,
  SENSE_CAPACITY_DATA_CHANGED,
  SENSE_INVALID_FIELD_IN_CDB,
  SENSE_INVALID_COMMAND_OPERATION_CODE,
  SENSE_LBA_OUT_OF_RANGE,
  SENSE_MEDIUM_ERROR_NO_ADDITIONAL_INFO,
  SENSE_REPORTED_LUNS_DATA_CHANGED,
  SENSE_UNRECOVERED_READ_ERROR,
  SENSE_WRITE_PROTECTED,
  SRB_STATUS_DATA_OVERRUN,
  SRB_STATUS_ERROR,
  SRB_STATUS_INVALID_LUN,
  SRB_STATUS_INVALID_REQUEST,
  SRB_STATUS_SUCCESS,
  STANDARD_INQUIRY_DATA_LENGTH,
  ScsiCheckConditionError,
  TYPE_NO_LUN,
  UNIT_ATTENTION,
  ILLEGAL_REQUEST,
  DATA_PROTECT,
  VPD_BLOCK_DEVICE_CHARACTERISTICS,
  VPD_BLOCK_LIMITS,
  VPD_DEVICE_IDENTIFICATION,
  VPD_LOGICAL_BLOCK_PROVISIONING,
  VPD_SUPPORTED_PAGES,
  VPD_UNIT_SERIAL_NUMBER,
  WRITE_10,
  WRITE_16,
  WRITE_TYPE,
  buildBlockDeviceCharacteristicsPage,
  buildBlockLimitsPage,
  buildCachingModePage,
  buildDeviceIdentificationPage,
  buildFixedSenseData,
  buildLogicalBlockProvisioningPage,
  buildModeSenseData,
  buildReadCapacity10Data,
  buildReadCapacity16Data,
  buildReportLunsData,
  buildStandardInquiryData,
  buildSupportedVpdPagesPage,
  buildUnitSerialNumberPage,
  formatSenseCode,
  parseCdb,
  parseUnmapParameterList,
  type InquiryCommand,
  type ModeSenseCommand,
  type ReadWriteCommand,
  type RequestSenseCommand,
  type ScsiCommand,
  type SenseCode,
  type SenseFieldPointer,
  type UnmapCommand,
  type WriteSameCommand,
} from "../protocol/index.js";
import { DiskIoError, DiskMediumError, DiskRangeError, DiskWriteProtectedError, type GuestBufferView, isAllZero } from "./disk-backend.js";
import type { DiskStack } from "./disk-spec.js";
import { ReadOnlyDisk } from "./disk-wrappers.js";
import { SparseMemoryDisk } from "./memory-disk.js";

// ---------------------------------------------------------------------------
// Constants of this target

/** 03/0C/00 WRITE ERROR (T10 ASC 0x0C): what a failed write reports; the protocol layer names only the read triple. */
export const SENSE_WRITE_ERROR: SenseCode = Object.freeze({ senseKey: MEDIUM_ERROR, asc: 0x0c, ascq: 0x00 });
/** 04/44/00 INTERNAL TARGET FAILURE: a backend failed in a way no other sense describes. */
export const SENSE_INTERNAL_TARGET_FAILURE: SenseCode = Object.freeze({ senseKey: 0x4, asc: 0x44, ascq: 0x00 });

export const SCSI_VENDOR = "Msft";
export const SCSI_PRODUCT = "Virtual Disk";
export const SCSI_REVISION = "1.0";
/** IEEE OUI in the NAA designator of VPD 0x83 (the one Hyper-V uses for synthetic MACs). */
export const NAA_OUI = 0x00155d;
/** VPD 0xB0 MAXIMUM UNMAP LBA COUNT and MAXIMUM WRITE SAME LENGTH, in blocks: bounds the work of one command. */
export const MAX_UNMAP_LBA_COUNT = 0x100000;
export const MAX_WRITE_SAME_BLOCKS = 0x100000;
/** VPD 0xB0 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
export const MAX_UNMAP_DESCRIPTORS = 256;
/** WRITE SAME writes its pattern in pieces of at most this many bytes. */
const WRITE_SAME_CHUNK_BYTES = 1 << 20;

// ---------------------------------------------------------------------------
// Requests and results

export interface ScsiAddress {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
}

/** Where a command's data lives: the packet's GPA range as the VSP validated it (`PagedView` fits). */
export interface ScsiDataBuffer {
  /** Bytes the initiator offered (data_transfer_length). */
  readonly length: number;
  read(offset: number, length: number): Uint8Array;
  write(offset: number, src: Uint8Array): void;
}

export interface ScsiRequest {
  readonly address: ScsiAddress;
  /** cdb_length bytes. */
  readonly cdb: Uint8Array;
  /** SRB data_in: WRITE_TYPE, READ_TYPE or UNKNOWN_TYPE. */
  readonly dataIn: number;
  /** Null when the request carried no data range (an inband packet). */
  readonly buffer: ScsiDataBuffer | null;
}

/** What happened, for counters and reports. */
export type ScsiOutcome =
  | "good"
  | "invalid-opcode"
  | "invalid-field"
  | "lba-out-of-range"
  | "parameter-list"
  | "write-protected"
  | "medium-error"
  | "io-error"
  | "unit-attention"
  | "invalid-lun"
  | "target-failure";

export interface ScsiResult {
  /** SRB status without AUTOSENSE_VALID (the VSP adds it when `sense` is set). */
  readonly srbStatus: number;
  readonly scsiStatus: number;
  /** Bytes moved through the data buffer. */
  readonly transferred: number;
  /** Fixed-format sense for CHECK CONDITION, else null. */
  readonly sense: Uint8Array | null;
  readonly outcome: ScsiOutcome;
  /** Disk bytes read / written by the backend (READ, WRITE, WRITE SAME). */
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface ScsiLunStats {
  commands: number;
  reads: number;
  writes: number;
  bytesRead: number;
  bytesWritten: number;
  flushes: number;
  unmaps: number;
  errors: number;
}

/** One logical unit: a disk at an address. */
export class ScsiLun {
  /** Sense to report before the next command (unit attention) or from REQUEST SENSE. */
  pendingSense: SenseCode | null = null;
  /**
   * The block count the initiator was last given (OV's `last_sector_count`,
   * §6). A command other than INQUIRY that finds the disk's count different
   * takes the new count and fails with UNIT ATTENTION 06/2A/09 — so a
   * capacity change is reported once, on the next command, however many
   * resizes came before it, and not at all if the size came back. One
   * latch per LUN is one per I_T nexus: a controller has one initiator,
   * its guest.
   */
  reportedBlockCount: number;
  /** Commands running against the disk. */
  inFlight = 0;
  /** Detached from the target; the backend is closed when `inFlight` reaches 0. */
  removed = false;
  readonly stats: ScsiLunStats = { commands: 0, reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0, flushes: 0, unmaps: 0, errors: 0 };
  /**
   * The memory disk itself when the stack between it and the target is only
   * the fault injector (and maybe the read-only guard): no latency model
   * that would delay an I/O in virtual time, no other backend whose promise
   * could settle later. Then a READ/WRITE can be done synchronously
   * (`ScsiTarget.executeReadWriteFast`) as long as no fault rule is
   * installed — checked per command, since rules change at run time.
   */
  readonly plainMemory: SparseMemoryDisk | null;

  constructor(
    private readonly target: ScsiTarget,
    readonly address: ScsiAddress,
    readonly disk: DiskStack,
    readonly writeCacheEnabled: boolean,
  ) {
    this.plainMemory = plainMemoryDisk(disk);
    this.reportedBlockCount = disk.backend.blockCount;
  }

  /** VPD 0x80 serial: the spec's, or one derived from the controller and the address (read when asked, so the controller's tag set at open counts). */
  get serial(): string {
    return this.disk.spec.serial ?? this.target.defaultSerial(this.address);
  }

  get backend(): DiskStack["backend"] {
    return this.disk.backend;
  }
}

function plainMemoryDisk(stack: DiskStack): SparseMemoryDisk | null {
  const { backend, faults, base } = stack;
  if (stack.latency !== null || !(base instanceof SparseMemoryDisk) || faults.inner !== base) return null;
  if (backend === faults || (backend instanceof ReadOnlyDisk && backend.inner === faults)) return base;
  return null;
}

function isAddressByte(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 255;
}

function addressKey(a: ScsiAddress): number {
  return (a.pathId << 16) | (a.targetId << 8) | a.lun;
}

function u16be(b: Uint8Array, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number);
}

function u32be(b: Uint8Array, o: number): number {
  return (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0;
}

export function formatScsiAddress(a: ScsiAddress): string {
  return `${a.pathId}:${a.targetId}:${a.lun}`;
}

/** A CHECK CONDITION decided while executing, with the SRB status to go with it (thrown, caught in `guard`). */
class CheckCondition extends VmbusSimError {
  readonly code = "SCSI_TARGET_CHECK_CONDITION";
  constructor(
    readonly sense: SenseCode,
    readonly srbStatus: number,
    readonly fieldPointer: SenseFieldPointer | null = null,
    readonly information?: number,
  ) {
    super(formatSenseCode(sense));
  }
}

function invalidField(byte: number, bit: number | null = null): CheckCondition {
  return new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST, { inCdb: true, byte, bit });
}

function lbaOutOfRange(byte = 2): CheckCondition {
  return new CheckCondition(SENSE_LBA_OUT_OF_RANGE, SRB_STATUS_INVALID_REQUEST, { inCdb: true, byte, bit: null });
}

/** Byte of the LBA field and of the length field in each READ/WRITE-like CDB size. */
function lengthByte(cdbSize: number): number {
  return cdbSize === 6 ? 4 : cdbSize === 10 ? 7 : cdbSize === 12 ? 6 : 10;
}

function outcomeOf(sense: SenseCode): ScsiOutcome {
  if (sense.senseKey === ILLEGAL_REQUEST) {
    if (sense.asc === 0x20) return "invalid-opcode";
    if (sense.asc === 0x21) return "lba-out-of-range";
    if (sense.asc === 0x1a || sense.asc === 0x26) return "parameter-list";
    return "invalid-field";
  }
  if (sense.senseKey === DATA_PROTECT) return "write-protected";
  if (sense.senseKey === UNIT_ATTENTION) return "unit-attention";
  if (sense.senseKey === MEDIUM_ERROR) return sense.asc === 0 ? "io-error" : "medium-error";
  return "target-failure";
}

export interface ScsiTargetOptions {
  /** The VSP's max_transfer_bytes (VPD 0xB0 MAXIMUM TRANSFER LENGTH). */
  readonly maxTransferBytes: number;
}

// ---------------------------------------------------------------------------

export class ScsiTarget {
  /**
   * Eight hex digits identifying the controller in default serial numbers
   * (the VSP sets it from its instance GUID), so two controllers' disks at
   * the same address never share a serial or an NAA name.
   */
  controllerTag = "00000000";
  private readonly lunMap = new Map<number, ScsiLun>();
  private readonly maxTransferBytes: number;

  constructor(options: ScsiTargetOptions) {
    this.maxTransferBytes = options.maxTransferBytes;
  }

  /** Present LUNs, sorted by (path, target, lun). */
  luns(): ScsiLun[] {
    return [...this.lunMap.values()].sort((a, b) => addressKey(a.address) - addressKey(b.address));
  }

  find(address: ScsiAddress): ScsiLun | undefined {
    // The key packs three bytes: a field outside 0..255 would alias
    // another address (lun 256 is target + 1, lun 0), so it finds nothing.
    if (!isAddressByte(address.pathId) || !isAddressByte(address.targetId) || !isAddressByte(address.lun)) return undefined;
    return this.lunMap.get(addressKey(address));
  }

  /** The lowest free LUN at (pathId, targetId), or undefined when all 256 are taken. */
  freeLun(pathId: number, targetId: number): number | undefined {
    for (let lun = 0; lun < 256; lun++) if (!this.lunMap.has(addressKey({ pathId, targetId, lun }))) return lun;
    return undefined;
  }

  /** The serial a disk gets when its spec names none. */
  defaultSerial(a: ScsiAddress): string {
    const h = (n: number): string => n.toString(16).toUpperCase().padStart(2, "0");
    return `${this.controllerTag}${h(a.pathId)}${h(a.targetId)}${h(a.lun)}`;
  }

  /**
   * Attaches a disk. With `announce`, the other LUNs of its (path, target)
   * get UNIT ATTENTION 06/3F/0E (REPORTED LUNS DATA HAS CHANGED) for their
   * next command, as SPC asks of a target whose inventory changed.
   */
  attach(address: ScsiAddress, disk: DiskStack, announce: boolean): ScsiLun {
    const key = addressKey(address);
    if (this.lunMap.has(key)) throw new DiskSpecAddressError(address);
    const lun = new ScsiLun(this, address, disk, disk.spec.writeCacheEnabled ?? true);
    this.lunMap.set(key, lun);
    if (announce) this.reportedLunsChanged(address);
    return lun;
  }

  /** Detaches a disk (its backend is closed once its in-flight commands finish); UNIT ATTENTION for the others. */
  detach(address: ScsiAddress): ScsiLun | undefined {
    const lun = this.find(address);
    if (lun === undefined) return undefined;
    this.lunMap.delete(addressKey(address));
    lun.removed = true;
    if (lun.inFlight === 0) lun.backend.close();
    this.reportedLunsChanged(address);
    return lun;
  }

  /**
   * Changes the capacity of the disk at `address` (its base backend must
   * have `resize`). Nothing is sent: the initiator learns of it from the
   * UNIT ATTENTION its next command to the LUN gets (`reportedBlockCount`).
   * Typed errors name the field: `pathId` / `targetId` / `lun` (not an
   * SRB address byte), `address` (no disk there), `disk` (a backend that
   * cannot change size), `newSizeBytes` (not a positive multiple of the
   * block size).
   */
  resize(address: ScsiAddress, newSizeBytes: number): ScsiLun {
    for (const field of ["pathId", "targetId", "lun"] as const) {
      if (!isAddressByte(address[field])) throw new InvalidArgumentError(field, address[field], "must be an integer in [0, 255] (an SRB address byte)");
    }
    const lun = this.find(address);
    if (lun === undefined) throw new InvalidArgumentError("address", formatScsiAddress(address), "has no disk (path:target:lun)");
    const base = lun.disk.base;
    if (base.resize === undefined) throw new InvalidArgumentError("disk", base.description, "cannot change size (no resize in its backend)");
    const blockSize = lun.backend.blockSize;
    if (!Number.isSafeInteger(newSizeBytes) || newSizeBytes <= 0 || newSizeBytes % blockSize !== 0) {
      throw new InvalidArgumentError("newSizeBytes", newSizeBytes, `must be a positive safe integer, a multiple of the block size ${blockSize}`);
    }
    try {
      base.resize(newSizeBytes);
    } catch (e) {
      // The backend's own refusal (a read-only image) keeps its reason under this call's name.
      if (e instanceof InvalidArgumentError) throw new InvalidArgumentError(`disk.${e.field}`, e.value, e.limit);
      throw e;
    }
    return lun;
  }

  /** Closes every backend (the device is going away). */
  closeAll(): void {
    for (const lun of this.lunMap.values()) lun.backend.close();
    this.lunMap.clear();
  }

  private reportedLunsChanged(changed: ScsiAddress): void {
    for (const lun of this.lunMap.values()) {
      const a = lun.address;
      if (a.pathId === changed.pathId && a.targetId === changed.targetId && a.lun !== changed.lun) {
        lun.pendingSense = SENSE_REPORTED_LUNS_DATA_CHANGED;
      }
    }
  }

  /**
   * `execute` for the command of every I/O, done synchronously: a
   * READ/WRITE(10/16) with no flag bits in byte 1, to a present LUN over a
   * plain memory disk (`ScsiLun.plainMemory`) without fault rules or a
   * pending unit attention, in range, fitting the buffer and going in the
   * direction its data_in says. Moves the data between the disk and `view`
   * (the request's buffer, `bufferLength` bytes of it usable) and returns
   * the bytes transferred: GOOD, with the same data and statistics as
   * `execute`. Returns -1, having changed nothing, for anything else; the
   * caller then runs `execute`, which reaches its verdict the long way.
   */
  executeReadWriteFast(
    pathId: number,
    targetId: number,
    lunId: number,
    cdb: Uint8Array,
    cdbOffset: number,
    cdbLength: number,
    dataIn: number,
    view: GuestBufferView | null,
    bufferLength: number,
  ): number {
    const opcode = cdb[cdbOffset];
    const read = opcode === READ_10 || opcode === READ_16;
    const size = opcode === READ_10 || opcode === WRITE_10 ? 10 : opcode === READ_16 || opcode === WRITE_16 ? 16 : 0;
    // RelAdr, FUA, DPO and protection bits all take the long way.
    if (size === 0 || cdbLength !== size || cdb[cdbOffset + 1] !== 0) return -1;
    const lun = this.lunMap.get((pathId << 16) | (targetId << 8) | lunId);
    if (lun === undefined || lun.pendingSense !== null) return -1;
    const disk = lun.plainMemory;
    // A changed capacity owes the initiator a UNIT ATTENTION: the long way reports it.
    if (disk === null || lun.disk.faults.faults.length !== 0 || disk.blockCount !== lun.reportedBlockCount) return -1;
    let lba: number;
    let blocks: number;
    if (size === 10) {
      lba = u32be(cdb, cdbOffset + 2);
      blocks = u16be(cdb, cdbOffset + 7);
    } else {
      const hi = u32be(cdb, cdbOffset + 2);
      // Beyond 2^53 the LBA is out of range anyway; `execute` says so.
      if (hi > 0x1fffff) return -1;
      lba = hi * 2 ** 32 + u32be(cdb, cdbOffset + 6);
      blocks = u32be(cdb, cdbOffset + 10);
    }
    const blockSize = disk.blockSize;
    const bytes = blocks * blockSize;
    if (blocks === 0 || bytes > 0xffffffff || lba >= disk.blockCount || lba + blocks > disk.blockCount || bytes > bufferLength || view === null) return -1;
    if (read ? dataIn === WRITE_TYPE : dataIn !== WRITE_TYPE || lun.backend.readOnly) return -1;
    lun.stats.commands++;
    if (read) {
      disk.readToView(lba, blocks, view, 0);
      lun.stats.reads++;
      lun.stats.bytesRead += bytes;
    } else {
      disk.writeFromView(lba, blocks, view, 0);
      lun.stats.writes++;
      lun.stats.bytesWritten += bytes;
    }
    return bytes;
  }

  /**
   * Executes one command. Resolves with the result; SCSI errors and typed
   * backend errors become CHECK CONDITION, so only a simulator bug (an
   * error that is not a `VmbusSimError`) rejects.
   */
  async execute(req: ScsiRequest): Promise<ScsiResult> {
    const opcode = req.cdb[0];
    // REPORT LUNS belongs to the controller: it works at any LUN address,
    // present or not (§6).
    if (opcode === REPORT_LUNS) return this.guard(null, req, async (cmd) => this.reportLuns(req, cmd));
    const lun = this.find(req.address);
    if (lun === undefined) {
      if (opcode === INQUIRY) return this.guard(null, req, async (cmd) => this.inquiryMissing(req, cmd));
      // OV: every other command to a missing LUN fails without sense; Linux
      // maps SRB INVALID_LUN to DID_NO_CONNECT and drops the device.
      return result(SRB_STATUS_INVALID_LUN, SCSI_STATUS_CHECK_CONDITION, 0, null, "invalid-lun");
    }
    lun.stats.commands++;
    lun.inFlight++;
    try {
      const r = await this.guard(lun, req, (cmd) => this.dispatch(lun, req, cmd));
      if (r.outcome !== "good") lun.stats.errors++;
      return r;
    } finally {
      lun.inFlight--;
      if (lun.removed && lun.inFlight === 0) lun.backend.close();
    }
  }

  /** Parses the CDB, reports a pending unit attention, runs `body`; turns every typed failure into CHECK CONDITION. */
  private async guard(lun: ScsiLun | null, req: ScsiRequest, body: (cmd: ScsiCommand) => Promise<ScsiResult>): Promise<ScsiResult> {
    try {
      // OV checks the capacity before it looks at the CDB: any command but
      // INQUIRY reports the change (even one it would refuse), and REQUEST
      // SENSE returns it as data instead.
      let capacityChanged = false;
      const opcode = req.cdb[0];
      if (lun !== null && opcode !== INQUIRY && lun.backend.blockCount !== lun.reportedBlockCount) {
        lun.reportedBlockCount = lun.backend.blockCount;
        if (opcode !== REQUEST_SENSE) return checkCondition(new CheckCondition(SENSE_CAPACITY_DATA_CHANGED, SRB_STATUS_ERROR));
        capacityChanged = true;
      }
      const blockSize = lun?.backend.blockSize;
      const cmd = parseCdb(req.cdb, blockSize === undefined ? {} : { blockSize });
      if (capacityChanged && cmd.kind === "REQUEST_SENSE") return this.requestSense(req, cmd, SENSE_CAPACITY_DATA_CHANGED);
      if (lun !== null && lun.pendingSense !== null && cmd.kind !== "INQUIRY" && cmd.kind !== "REPORT_LUNS" && cmd.kind !== "REQUEST_SENSE") {
        // SPC: a pending unit attention is reported on (and cleared by) the
        // next command that is not one of these three.
        const ua = lun.pendingSense;
        lun.pendingSense = null;
        return checkCondition(new CheckCondition(ua, SRB_STATUS_ERROR));
      }
      return await body(cmd);
    } catch (e) {
      if (e instanceof CheckCondition) return checkCondition(e);
      if (e instanceof ScsiCheckConditionError) {
        return checkCondition(new CheckCondition(e.sense, e.sense.senseKey === ILLEGAL_REQUEST ? SRB_STATUS_INVALID_REQUEST : SRB_STATUS_ERROR, e.fieldPointer));
      }
      if (e instanceof DiskMediumError) {
        return checkCondition(
          new CheckCondition(
            e.op === "read" ? SENSE_UNRECOVERED_READ_ERROR : SENSE_WRITE_ERROR,
            SRB_STATUS_ERROR,
            null,
            // INFORMATION holds the first bad LBA when it fits the 4-byte field.
            e.lba <= 0xffffffff ? e.lba : undefined,
          ),
        );
      }
      if (e instanceof DiskWriteProtectedError) return checkCondition(new CheckCondition(SENSE_WRITE_PROTECTED, SRB_STATUS_ERROR));
      if (e instanceof DiskRangeError) return checkCondition(new CheckCondition(SENSE_LBA_OUT_OF_RANGE, SRB_STATUS_ERROR));
      if (e instanceof DiskIoError) return checkCondition(new CheckCondition(SENSE_MEDIUM_ERROR_NO_ADDITIONAL_INFO, SRB_STATUS_ERROR));
      if (e instanceof VmbusSimError) return checkCondition(new CheckCondition(SENSE_INTERNAL_TARGET_FAILURE, SRB_STATUS_ERROR));
      throw e;
    }
  }

  private dispatch(lun: ScsiLun, req: ScsiRequest, cmd: ScsiCommand): Promise<ScsiResult> {
    switch (cmd.kind) {
      case "TEST_UNIT_READY":
        return Promise.resolve(good(0));
      case "REQUEST_SENSE": {
        const code = lun.pendingSense ?? { senseKey: NO_SENSE, asc: 0, ascq: 0 };
        const r = this.requestSense(req, cmd, code);
        lun.pendingSense = null;
        return Promise.resolve(r);
      }
      case "READ":
      case "WRITE":
        return this.readWrite(lun, req, cmd);
      case "READ_CAPACITY_10": {
        const buf = bufferLength(req);
        // OV: a buffer too small for the 8 bytes is a DATA OVERRUN with 05/24/00.
        if (buf < 8) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_DATA_OVERRUN);
        const d = lun.backend;
        return Promise.resolve(good(dataIn(req, buildReadCapacity10Data(BigInt(d.blockCount - 1), d.blockSize), 8)));
      }
      case "READ_CAPACITY_16": {
        const buf = bufferLength(req);
        if (cmd.allocationLength === 0) return Promise.resolve(good(0));
        if (buf < 12) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_DATA_OVERRUN);
        const d = lun.backend;
        const data = buildReadCapacity16Data({
          lastLba: BigInt(d.blockCount - 1),
          blockLength: d.blockSize,
          // Every backend unmaps, and unmapped blocks read as zeros.
          lbpme: true,
          lbprz: true,
        });
        return Promise.resolve(good(dataIn(req, data, cmd.allocationLength)));
      }
      case "INQUIRY":
        return Promise.resolve(this.inquiry(lun, req, cmd));
      case "REPORT_LUNS":
        return Promise.resolve(this.reportLuns(req, cmd));
      case "MODE_SENSE":
        return Promise.resolve(this.modeSense(lun, req, cmd));
      case "SYNCHRONIZE_CACHE": {
        const count = lun.backend.blockCount;
        // BigInt comparisons: the LBA is a full 64-bit field.
        if (cmd.lba >= BigInt(count) || cmd.lba + BigInt(cmd.blocks) > BigInt(count)) throw lbaOutOfRange();
        return this.flush(lun);
      }
      case "UNMAP":
        return this.unmap(lun, req, cmd);
      case "WRITE_SAME":
        return this.writeSame(lun, req, cmd);
      case "START_STOP_UNIT":
        // OV: IMMED is refused (the command always completes synchronously here).
        if (cmd.immed) throw invalidField(1, 0);
        if (!cmd.start && !cmd.noFlush) return this.flush(lun);
        return Promise.resolve(good(0));
    }
  }

  /** REQUEST SENSE answered with `code` as fixed-format sense data. */
  private requestSense(req: ScsiRequest, cmd: RequestSenseCommand, code: SenseCode): ScsiResult {
    // Descriptor-format sense is not produced by this target.
    if (cmd.desc) throw invalidField(1, 0);
    return good(dataIn(req, buildFixedSenseData(code), cmd.allocationLength));
  }

  private async flush(lun: ScsiLun): Promise<ScsiResult> {
    lun.stats.flushes++;
    await lun.backend.flush();
    return good(0);
  }

  // §7.1 ---------------------------------------------------------------------

  private async readWrite(lun: ScsiLun, req: ScsiRequest, cmd: ReadWriteCommand): Promise<ScsiResult> {
    const d = lun.backend;
    const lb = lengthByte(cmd.cdbSize);
    // OV rejects a zero transfer length with 05/21/00 (§7.1), though SBC
    // allows it for the 10/12/16-byte CDBs.
    if (cmd.blocks === 0) throw lbaOutOfRange(lb);
    if (cmd.lba >= BigInt(d.blockCount) || cmd.lba + BigInt(cmd.blocks) > BigInt(d.blockCount)) throw lbaOutOfRange();
    const bytes = cmd.blocks * d.blockSize;
    // The data must fit the buffer the guest offered: moving more would
    // read or write guest memory it did not share for this request.
    if (bytes > bufferLength(req)) throw lbaOutOfRange(lb);
    const lba = Number(cmd.lba);
    const buffer = req.buffer as ScsiDataBuffer;
    if (cmd.kind === "READ") {
      // The direction decides whether the host writes guest memory; a guest
      // that declared this buffer as data-out must not have it overwritten.
      if (req.dataIn === WRITE_TYPE) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST);
      const data = new Uint8Array(bytes);
      await d.read(lba, cmd.blocks, data);
      buffer.write(0, data);
      lun.stats.reads++;
      lun.stats.bytesRead += bytes;
      return { ...good(bytes), bytesRead: bytes };
    }
    if (req.dataIn !== WRITE_TYPE) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST);
    if (d.readOnly) throw new CheckCondition(SENSE_WRITE_PROTECTED, SRB_STATUS_ERROR);
    // Copy first: the backend sees bytes the guest can no longer change.
    const data = buffer.read(0, bytes);
    await d.write(lba, data);
    if (cmd.fua) await d.flush();
    lun.stats.writes++;
    lun.stats.bytesWritten += bytes;
    return { ...good(bytes), bytesWritten: bytes };
  }

  // §7.4 ---------------------------------------------------------------------

  private standardInquiry(present: boolean, lun: number): Uint8Array {
    if (present) return buildStandardInquiryData({ vendor: SCSI_VENDOR, product: SCSI_PRODUCT, revision: SCSI_REVISION });
    const data = buildStandardInquiryData({
      peripheralQualifier: PERIPHERAL_QUALIFIER_NOT_SUPPORTED,
      peripheralDeviceType: TYPE_NO_LUN & 0x1f,
      vendor: SCSI_VENDOR,
      product: SCSI_PRODUCT,
      revision: SCSI_REVISION,
      cmdQue: false,
    });
    // OV zeroes the identification of an absent LUN other than 0.
    if (lun !== 0) data.fill(0, 8, 36);
    return data;
  }

  private inquiryMissing(req: ScsiRequest, cmd: ScsiCommand): ScsiResult {
    if (cmd.kind !== "INQUIRY") throw invalidField(0);
    // OV's conditions for answering an absent LUN (§6); anything else is
    // 05/24/00 rather than data about a unit that does not exist.
    if (cmd.evpd || cmd.pageCode !== 0) throw invalidField(1, 0);
    if (cmd.allocationLength < 5 || cmd.allocationLength > bufferLength(req) || req.dataIn !== READ_TYPE) throw invalidField(3);
    return good(dataIn(req, this.standardInquiry(false, req.address.lun), cmd.allocationLength));
  }

  private inquiry(lun: ScsiLun, req: ScsiRequest, cmd: InquiryCommand): ScsiResult {
    if (!cmd.evpd) {
      // OV: fewer than 5 bytes cannot even carry the additional length.
      if (cmd.allocationLength < 5) throw invalidField(3);
      return good(dataIn(req, this.standardInquiry(true, lun.address.lun), Math.min(cmd.allocationLength, STANDARD_INQUIRY_DATA_LENGTH)));
    }
    const page = this.vpdPage(lun, cmd.pageCode);
    if (page === null) throw invalidField(2);
    return good(dataIn(req, page, cmd.allocationLength));
  }

  /** The VPD pages of a disk, in the order of the supported-pages list. */
  static readonly VPD_PAGES: readonly number[] = [
    VPD_SUPPORTED_PAGES,
    VPD_UNIT_SERIAL_NUMBER,
    VPD_DEVICE_IDENTIFICATION,
    VPD_BLOCK_LIMITS,
    VPD_BLOCK_DEVICE_CHARACTERISTICS,
    VPD_LOGICAL_BLOCK_PROVISIONING,
  ];

  private vpdPage(lun: ScsiLun, code: number): Uint8Array | null {
    const d = lun.backend;
    switch (code) {
      case VPD_SUPPORTED_PAGES:
        return buildSupportedVpdPagesPage(ScsiTarget.VPD_PAGES);
      case VPD_UNIT_SERIAL_NUMBER:
        return buildUnitSerialNumberPage(lun.serial);
      case VPD_DEVICE_IDENTIFICATION:
        return buildDeviceIdentificationPage([
          {
            protocolIdentifier: 0,
            codeSet: CODE_SET_BINARY,
            piv: false,
            association: ASSOCIATION_LOGICAL_UNIT,
            designatorType: DESIGNATOR_TYPE_NAA,
            designator: naaDesignator(lun.serial),
          },
          {
            protocolIdentifier: 0,
            codeSet: CODE_SET_ASCII,
            piv: false,
            association: ASSOCIATION_LOGICAL_UNIT,
            designatorType: DESIGNATOR_TYPE_T10_VENDOR_ID,
            designator: asciiBytes(`${SCSI_VENDOR.padEnd(8, " ")}${lun.serial}`),
          },
        ]);
      case VPD_BLOCK_LIMITS:
        return buildBlockLimitsPage({
          // WRITE SAME with 0 blocks ("to the end") is refused.
          wsnz: true,
          maximumTransferLength: Math.floor(this.maxTransferBytes / d.blockSize),
          maximumUnmapLbaCount: MAX_UNMAP_LBA_COUNT,
          maximumUnmapBlockDescriptorCount: MAX_UNMAP_DESCRIPTORS,
          optimalUnmapGranularity: d.unmapGranularity,
          maximumWriteSameLength: BigInt(MAX_WRITE_SAME_BLOCKS),
        });
      case VPD_BLOCK_DEVICE_CHARACTERISTICS:
        return buildBlockDeviceCharacteristicsPage({ mediumRotationRate: MEDIUM_ROTATION_RATE_NON_ROTATING });
      case VPD_LOGICAL_BLOCK_PROVISIONING:
        return buildLogicalBlockProvisioningPage({ lbpu: true, lbpws: true, lbpws10: true, lbprz: 1, provisioningType: PROVISIONING_TYPE_THIN });
      default:
        return null;
    }
  }

  // §6 REPORT LUNS -------------------------------------------------------------

  private reportLuns(req: ScsiRequest, cmd: ScsiCommand): ScsiResult {
    if (cmd.kind !== "REPORT_LUNS") throw new CheckCondition(SENSE_INVALID_COMMAND_OPERATION_CODE, SRB_STATUS_INVALID_REQUEST);
    // OV: a buffer too small for the header is GOOD with nothing transferred.
    if (bufferLength(req) < 8) return good(0);
    const { pathId, targetId } = req.address;
    const luns = this.luns()
      .filter((l) => l.address.pathId === pathId && l.address.targetId === targetId)
      .map((l) => l.address.lun);
    return good(dataIn(req, buildReportLunsData(luns), cmd.allocationLength));
  }

  // §7.5 MODE SENSE ------------------------------------------------------------

  private modeSense(lun: ScsiLun, req: ScsiRequest, cmd: ModeSenseCommand): ScsiResult {
    // Saved values are not kept (OV refuses them too).
    if (cmd.pageControl === MODE_SENSE_PC_SAVED) throw invalidField(2, 7);
    if (cmd.pageCode !== MODE_PAGE_CACHING && cmd.pageCode !== MODE_PAGE_ALL) throw invalidField(2, 5);
    if (cmd.subpageCode !== 0 && !(cmd.pageCode === MODE_PAGE_ALL && cmd.subpageCode === 0xff)) throw invalidField(3);
    if (cmd.allocationLength === 0) return good(0);
    // MODE SELECT is not supported, so no field is changeable: the
    // changeable-values page is all zeros.
    const page = cmd.pageControl === MODE_SENSE_PC_CHANGEABLE ? buildCachingModePage({}) : buildCachingModePage({ wce: lun.writeCacheEnabled });
    const data = buildModeSenseData({ cdbSize: cmd.cdbSize, writeProtected: lun.backend.readOnly, dpoFua: true, pages: [page] });
    return good(dataIn(req, data, cmd.allocationLength));
  }

  // §6 UNMAP, WRITE SAME -----------------------------------------------------

  private async unmap(lun: ScsiLun, req: ScsiRequest, cmd: UnmapCommand): Promise<ScsiResult> {
    const d = lun.backend;
    // ANC_SUP is 0 in VPD 0xB2: anchored unmaps are not supported.
    if (cmd.anchor) throw invalidField(1, 0);
    if (cmd.parameterListLength === 0) return good(0);
    if (req.dataIn !== WRITE_TYPE) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST);
    const n = Math.min(cmd.parameterListLength, bufferLength(req));
    const list = n === 0 ? new Uint8Array(0) : (req.buffer as ScsiDataBuffer).read(0, n);
    const descriptors = parseUnmapParameterList(list, { maxDescriptors: MAX_UNMAP_DESCRIPTORS, maxLbaCount: MAX_UNMAP_LBA_COUNT });
    // Validate every descriptor before unmapping any: a bad one must not
    // leave the disk half-unmapped.
    descriptors.forEach((desc, i) => {
      if (desc.lba + BigInt(desc.blocks) > BigInt(d.blockCount)) {
        throw new CheckCondition(SENSE_LBA_OUT_OF_RANGE, SRB_STATUS_INVALID_REQUEST, { inCdb: false, byte: 8 + 16 * i, bit: null });
      }
    });
    if (d.readOnly) throw new CheckCondition(SENSE_WRITE_PROTECTED, SRB_STATUS_ERROR);
    for (const desc of descriptors) {
      if (desc.blocks === 0) continue;
      lun.stats.unmaps++;
      await d.unmap(Number(desc.lba), desc.blocks);
    }
    return good(n);
  }

  private async writeSame(lun: ScsiLun, req: ScsiRequest, cmd: WriteSameCommand): Promise<ScsiResult> {
    const d = lun.backend;
    const lb = cmd.cdbSize === 10 ? 7 : 10;
    // No protection information, anchors, or LBDATA/PBDATA patterns.
    if (cmd.wrprotect !== 0) throw invalidField(1, 7);
    if (cmd.anchor) throw invalidField(1, 4);
    if (cmd.pbdata) throw invalidField(1, 2);
    if (cmd.lbdata) throw invalidField(1, 1);
    // WSNZ = 1 (VPD 0xB0): 0 blocks would mean "to the end of the medium".
    if (cmd.blocks === 0 || cmd.blocks > MAX_WRITE_SAME_BLOCKS) throw invalidField(lb);
    if (cmd.lba >= BigInt(d.blockCount) || cmd.lba + BigInt(cmd.blocks) > BigInt(d.blockCount)) throw lbaOutOfRange();
    let block: Uint8Array;
    if (cmd.ndob) {
      block = new Uint8Array(d.blockSize);
    } else {
      if (req.dataIn !== WRITE_TYPE) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST);
      if (bufferLength(req) < d.blockSize) throw lbaOutOfRange(lb);
      block = (req.buffer as ScsiDataBuffer).read(0, d.blockSize);
    }
    if (d.readOnly) throw new CheckCondition(SENSE_WRITE_PROTECTED, SRB_STATUS_ERROR);
    const lba = Number(cmd.lba);
    const transferred = cmd.ndob ? 0 : d.blockSize;
    // With UNMAP and a zero block the blocks may be deallocated instead of
    // written (LBPRZ = 1 makes that indistinguishable); Linux discards so.
    if (cmd.unmap && isAllZero(block)) {
      lun.stats.unmaps++;
      await d.unmap(lba, cmd.blocks);
      return good(transferred);
    }
    const perChunk = Math.max(1, Math.min(cmd.blocks, Math.floor(WRITE_SAME_CHUNK_BYTES / d.blockSize)));
    const pattern = new Uint8Array(perChunk * d.blockSize);
    for (let i = 0; i < perChunk; i++) pattern.set(block, i * d.blockSize);
    let done = 0;
    while (done < cmd.blocks) {
      const n = Math.min(perChunk, cmd.blocks - done);
      await d.write(lba + done, pattern.subarray(0, n * d.blockSize));
      done += n;
    }
    const bytes = cmd.blocks * d.blockSize;
    lun.stats.writes++;
    lun.stats.bytesWritten += bytes;
    return { ...good(transferred), bytesWritten: bytes };
  }
}

/** Two disks claimed one address. */
export class DiskSpecAddressError extends VmbusSimError {
  readonly code = "DISK_ADDRESS_IN_USE";
  constructor(readonly address: ScsiAddress) {
    super(`SCSI address ${formatScsiAddress(address)} (path:target:lun) is already in use`);
  }
}

// ---------------------------------------------------------------------------
// Helpers

function bufferLength(req: ScsiRequest): number {
  return req.buffer === null ? 0 : req.buffer.length;
}

/**
 * Copies response data into the buffer: min(data, allocation length,
 * buffer) bytes. A data-in response into a buffer declared data-out
 * (WRITE_TYPE) is refused: see `readWrite`.
 */
function dataIn(req: ScsiRequest, data: Uint8Array, allocationLength: number): number {
  const n = Math.min(data.length, allocationLength, bufferLength(req));
  if (n === 0) return 0;
  if (req.dataIn === WRITE_TYPE) throw new CheckCondition(SENSE_INVALID_FIELD_IN_CDB, SRB_STATUS_INVALID_REQUEST);
  (req.buffer as ScsiDataBuffer).write(0, data.subarray(0, n));
  return n;
}

function result(srbStatus: number, scsiStatus: number, transferred: number, sense: Uint8Array | null, outcome: ScsiOutcome): ScsiResult {
  return { srbStatus, scsiStatus, transferred, sense, outcome, bytesRead: 0, bytesWritten: 0 };
}

function good(transferred: number): ScsiResult {
  return result(SRB_STATUS_SUCCESS, SCSI_STATUS_GOOD, transferred, null, "good");
}

function checkCondition(c: CheckCondition): ScsiResult {
  const sense = buildFixedSenseData({
    ...c.sense,
    ...(c.fieldPointer !== null ? { fieldPointer: c.fieldPointer } : {}),
    ...(c.information !== undefined ? { information: c.information } : {}),
  });
  return result(c.srbStatus, SCSI_STATUS_CHECK_CONDITION, 0, sense, outcomeOf(c.sense));
}

function asciiBytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0x7f);
}

/** 32-bit FNV-1a of a string: a stable, dependency-free name for a serial. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** NAA 5 (IEEE Registered): 4-bit NAA, 24-bit OUI, 36-bit vendor-specific id (here the serial's hash). */
function naaDesignator(serial: string): Uint8Array {
  const out = new Uint8Array(8);
  const v = (5n << 60n) | (BigInt(NAA_OUI) << 36n) | BigInt(fnv1a(serial));
  new DataView(out.buffer).setBigUint64(0, v, false);
  return out;
}

/** "ILLEGAL REQUEST 05/21/00 …" for the sense in a result, or "GOOD". */
export function describeScsiResult(r: ScsiResult): string {
  if (r.sense === null) return r.outcome === "good" ? "GOOD" : r.outcome;
  return formatSenseCode({ senseKey: (r.sense[2] ?? 0) & 0xf, asc: r.sense[12] ?? 0, ascq: r.sense[13] ?? 0 });
}
