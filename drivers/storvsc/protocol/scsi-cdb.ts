/**
 * SCSI command descriptor blocks (storvsc-netvsc.md §6, §7.1–§7.3; T10
 * SBC/SPC): opcode constants, builders (guest side) and a validating parser
 * (host side). Multi-byte CDB fields are big-endian.
 *
 * The parser checks syntax only — what can be judged from the CDB alone:
 * the CDB length for the opcode, the reserved/obsolete bits the spec names
 * (TEST UNIT READY bytes 1–4, RelAdr in READ/WRITE(10/12), CmdDt and a page
 * code without EVPD in INQUIRY, an LBA without PMI in READ CAPACITY), the
 * service action of SERVICE ACTION IN(16), the REPORT LUNS select report,
 * and 16-byte LBA + length ranges that wrap past 2^64. Semantics that need
 * the disk (capacity, supported pages, read-only, IMMED policy) stay with the
 * host. Every rejection is a `ScsiCheckConditionError` carrying the sense the
 * host returns (ILLEGAL REQUEST 05/20/00, 05/24/00 or 05/21/00) and the field
 * pointer.
 */
import { InvalidArgumentError } from "../../../core/index.js";
import { bit, checkBigUint, checkRange, checkUint, copyBytes, flag, viewOf } from "./bytes.js";
import { ScsiCheckConditionError } from "./errors.js";
import {
  SENSE_INVALID_COMMAND_OPERATION_CODE,
  SENSE_INVALID_FIELD_IN_CDB,
  SENSE_LBA_OUT_OF_RANGE,
} from "./scsi-sense.js";
import { READ_TYPE, UNKNOWN_TYPE, WRITE_TYPE } from "./srb-constants.js";

// ---------------------------------------------------------------------------
// Opcodes (Linux `scsi_proto.h` names)

export const TEST_UNIT_READY = 0x00;
export const REQUEST_SENSE = 0x03;
export const FORMAT_UNIT = 0x04;
export const READ_6 = 0x08;
export const WRITE_6 = 0x0a;
export const INQUIRY = 0x12;
export const MODE_SELECT = 0x15;
export const RESERVE = 0x16;
export const RELEASE = 0x17;
export const MODE_SENSE = 0x1a;
export const START_STOP = 0x1b;
export const SEND_DIAGNOSTIC = 0x1d;
export const ALLOW_MEDIUM_REMOVAL = 0x1e;
export const SET_WINDOW = 0x24;
export const READ_CAPACITY = 0x25;
export const READ_10 = 0x28;
export const WRITE_10 = 0x2a;
export const WRITE_VERIFY = 0x2e;
export const VERIFY = 0x2f;
export const SYNCHRONIZE_CACHE = 0x35;
export const WRITE_SAME = 0x41;
export const UNMAP = 0x42;
export const MODE_SELECT_10 = 0x55;
export const MODE_SENSE_10 = 0x5a;
export const PERSISTENT_RESERVE_IN = 0x5e;
export const PERSISTENT_RESERVE_OUT = 0x5f;
export const READ_16 = 0x88;
export const WRITE_16 = 0x8a;
export const WRITE_VERIFY_16 = 0x8e;
export const VERIFY_16 = 0x8f;
export const SYNCHRONIZE_CACHE_16 = 0x91;
export const WRITE_SAME_16 = 0x93;
export const SERVICE_ACTION_IN_16 = 0x9e;
export const REPORT_LUNS = 0xa0;
export const READ_12 = 0xa8;
export const WRITE_12 = 0xaa;
export const WRITE_VERIFY_12 = 0xae;
export const VERIFY_12 = 0xaf;

/** Service actions of SERVICE ACTION IN(16). */
export const SAI_READ_CAPACITY_16 = 0x10;
export const SAI_GET_LBA_STATUS = 0x12;

/** T10 names of the opcodes a disk meets (§6 table), for descriptions. */
export const SCSI_OPCODE_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [TEST_UNIT_READY, "TEST UNIT READY"],
  [REQUEST_SENSE, "REQUEST SENSE"],
  [FORMAT_UNIT, "FORMAT UNIT"],
  [READ_6, "READ(6)"],
  [WRITE_6, "WRITE(6)"],
  [INQUIRY, "INQUIRY"],
  [MODE_SELECT, "MODE SELECT(6)"],
  [RESERVE, "RESERVE(6)"],
  [RELEASE, "RELEASE(6)"],
  [MODE_SENSE, "MODE SENSE(6)"],
  [START_STOP, "START STOP UNIT"],
  [SEND_DIAGNOSTIC, "SEND DIAGNOSTIC"],
  [ALLOW_MEDIUM_REMOVAL, "PREVENT ALLOW MEDIUM REMOVAL"],
  [SET_WINDOW, "SET WINDOW"],
  [READ_CAPACITY, "READ CAPACITY(10)"],
  [READ_10, "READ(10)"],
  [WRITE_10, "WRITE(10)"],
  [WRITE_VERIFY, "WRITE AND VERIFY(10)"],
  [VERIFY, "VERIFY(10)"],
  [SYNCHRONIZE_CACHE, "SYNCHRONIZE CACHE(10)"],
  [WRITE_SAME, "WRITE SAME(10)"],
  [UNMAP, "UNMAP"],
  [MODE_SELECT_10, "MODE SELECT(10)"],
  [MODE_SENSE_10, "MODE SENSE(10)"],
  [PERSISTENT_RESERVE_IN, "PERSISTENT RESERVE IN"],
  [PERSISTENT_RESERVE_OUT, "PERSISTENT RESERVE OUT"],
  [READ_16, "READ(16)"],
  [WRITE_16, "WRITE(16)"],
  [WRITE_VERIFY_16, "WRITE AND VERIFY(16)"],
  [VERIFY_16, "VERIFY(16)"],
  [SYNCHRONIZE_CACHE_16, "SYNCHRONIZE CACHE(16)"],
  [WRITE_SAME_16, "WRITE SAME(16)"],
  [SERVICE_ACTION_IN_16, "SERVICE ACTION IN(16)"],
  [REPORT_LUNS, "REPORT LUNS"],
  [READ_12, "READ(12)"],
  [WRITE_12, "WRITE(12)"],
  [WRITE_VERIFY_12, "WRITE AND VERIFY(12)"],
  [VERIFY_12, "VERIFY(12)"],
]);

/** "READ(16)" or "opcode 0xc1". */
export function scsiOpcodeName(opcode: number): string {
  return SCSI_OPCODE_NAMES.get(opcode) ?? `opcode 0x${opcode.toString(16).padStart(2, "0")}`;
}

/** CDB size of every opcode `parseCdb` understands. */
export const PARSED_CDB_SIZES: ReadonlyMap<number, number> = new Map<number, number>([
  [TEST_UNIT_READY, 6],
  [REQUEST_SENSE, 6],
  [READ_6, 6],
  [WRITE_6, 6],
  [INQUIRY, 6],
  [MODE_SENSE, 6],
  [START_STOP, 6],
  [READ_CAPACITY, 10],
  [READ_10, 10],
  [WRITE_10, 10],
  [SYNCHRONIZE_CACHE, 10],
  [WRITE_SAME, 10],
  [UNMAP, 10],
  [MODE_SENSE_10, 10],
  [READ_16, 16],
  [WRITE_16, 16],
  [SYNCHRONIZE_CACHE_16, 16],
  [WRITE_SAME_16, 16],
  [SERVICE_ACTION_IN_16, 16],
  [REPORT_LUNS, 12],
  [READ_12, 12],
  [WRITE_12, 12],
]);

/** CDB size implied by an opcode's group code (SPC), or undefined for vendor/reserved groups. */
export function cdbSizeForGroup(opcode: number): number | undefined {
  switch (opcode >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------
// Command objects

interface CdbCommon {
  /** CONTROL byte (last byte of the CDB). */
  readonly control: number;
}

export interface TestUnitReadyCommand extends CdbCommon {
  readonly kind: "TEST_UNIT_READY";
}

export interface RequestSenseCommand extends CdbCommon {
  readonly kind: "REQUEST_SENSE";
  /** DESC: descriptor-format sense wanted. */
  readonly desc: boolean;
  readonly allocationLength: number;
}

export interface ReadWriteCommand extends CdbCommon {
  readonly kind: "READ" | "WRITE";
  readonly cdbSize: 6 | 10 | 12 | 16;
  readonly lba: bigint;
  /** Logical blocks; READ/WRITE(6) field 0 means 256 (SBC). */
  readonly blocks: number;
  /** RDPROTECT / WRPROTECT (3 bits); 0 for the 6-byte CDB. */
  readonly protect: number;
  readonly dpo: boolean;
  readonly fua: boolean;
  /** GROUP NUMBER (5 bits); 0 for the 6-byte CDB. */
  readonly group: number;
}

export interface ReadCapacity10Command extends CdbCommon {
  readonly kind: "READ_CAPACITY_10";
  /** Obsolete; must be 0 unless PMI. */
  readonly lba: number;
  readonly pmi: boolean;
}

export interface ReadCapacity16Command extends CdbCommon {
  readonly kind: "READ_CAPACITY_16";
  readonly lba: bigint;
  readonly allocationLength: number;
  readonly pmi: boolean;
}

export interface InquiryCommand extends CdbCommon {
  readonly kind: "INQUIRY";
  readonly evpd: boolean;
  readonly pageCode: number;
  readonly allocationLength: number;
}

export interface ReportLunsCommand extends CdbCommon {
  readonly kind: "REPORT_LUNS";
  readonly selectReport: number;
  readonly allocationLength: number;
}

export interface ModeSenseCommand extends CdbCommon {
  readonly kind: "MODE_SENSE";
  readonly cdbSize: 6 | 10;
  /** Disable block descriptors. */
  readonly dbd: boolean;
  /** Long LBA accepted (10-byte CDB only). */
  readonly llbaa: boolean;
  /** 0 current, 1 changeable, 2 default, 3 saved. */
  readonly pageControl: number;
  readonly pageCode: number;
  readonly subpageCode: number;
  readonly allocationLength: number;
}

export interface SynchronizeCacheCommand extends CdbCommon {
  readonly kind: "SYNCHRONIZE_CACHE";
  readonly cdbSize: 10 | 16;
  readonly immed: boolean;
  readonly lba: bigint;
  /** 0 = to the end of the medium. */
  readonly blocks: number;
  readonly group: number;
}

export interface UnmapCommand extends CdbCommon {
  readonly kind: "UNMAP";
  readonly anchor: boolean;
  readonly group: number;
  readonly parameterListLength: number;
}

export interface WriteSameCommand extends CdbCommon {
  readonly kind: "WRITE_SAME";
  readonly cdbSize: 10 | 16;
  readonly wrprotect: number;
  readonly anchor: boolean;
  readonly unmap: boolean;
  readonly pbdata: boolean;
  readonly lbdata: boolean;
  /** No data-out buffer (16-byte CDB only). */
  readonly ndob: boolean;
  readonly lba: bigint;
  /** 0 = to the end of the medium (when the device allows it). */
  readonly blocks: number;
  readonly group: number;
}

export interface StartStopUnitCommand extends CdbCommon {
  readonly kind: "START_STOP_UNIT";
  readonly immed: boolean;
  readonly powerConditionModifier: number;
  readonly powerCondition: number;
  readonly noFlush: boolean;
  readonly loej: boolean;
  readonly start: boolean;
}

export type ScsiCommand =
  | TestUnitReadyCommand
  | RequestSenseCommand
  | ReadWriteCommand
  | ReadCapacity10Command
  | ReadCapacity16Command
  | InquiryCommand
  | ReportLunsCommand
  | ModeSenseCommand
  | SynchronizeCacheCommand
  | UnmapCommand
  | WriteSameCommand
  | StartStopUnitCommand;

// ---------------------------------------------------------------------------
// Building (guest side)

const U64_LIMIT = 1n << 64n;

function rwOpcode(kind: "READ" | "WRITE", size: 6 | 10 | 12 | 16): number {
  const read = kind === "READ";
  switch (size) {
    case 6:
      return read ? READ_6 : WRITE_6;
    case 10:
      return read ? READ_10 : WRITE_10;
    case 12:
      return read ? READ_12 : WRITE_12;
    case 16:
      return read ? READ_16 : WRITE_16;
  }
}

function mustBeZero(field: string, value: number | boolean): void {
  if (value !== 0 && value !== false) {
    throw new InvalidArgumentError(field, String(value), "has no field in this CDB size and must be 0/false");
  }
}

/**
 * Encodes a command as CDB bytes. Throws `InvalidArgumentError` when a value
 * does not fit its field (e.g. an LBA ≥ 2^21 in READ(6)).
 */
export function buildCdb(cmd: ScsiCommand): Uint8Array {
  checkUint("control", cmd.control, 8);
  switch (cmd.kind) {
    case "TEST_UNIT_READY": {
      const out = new Uint8Array(6);
      out[5] = cmd.control;
      return out;
    }
    case "REQUEST_SENSE": {
      checkUint("allocationLength", cmd.allocationLength, 8);
      return Uint8Array.of(REQUEST_SENSE, flag(cmd.desc, 0), 0, 0, cmd.allocationLength, cmd.control);
    }
    case "READ":
    case "WRITE":
      return buildReadWrite(cmd);
    case "READ_CAPACITY_10": {
      checkUint("lba", cmd.lba, 32);
      const out = new Uint8Array(10);
      const v = viewOf(out);
      out[0] = READ_CAPACITY;
      v.setUint32(2, cmd.lba, false);
      out[8] = flag(cmd.pmi, 0);
      out[9] = cmd.control;
      return out;
    }
    case "READ_CAPACITY_16": {
      checkBigUint("lba", cmd.lba, 64);
      checkUint("allocationLength", cmd.allocationLength, 32);
      const out = new Uint8Array(16);
      const v = viewOf(out);
      out[0] = SERVICE_ACTION_IN_16;
      out[1] = SAI_READ_CAPACITY_16;
      v.setBigUint64(2, cmd.lba, false);
      v.setUint32(10, cmd.allocationLength, false);
      out[14] = flag(cmd.pmi, 0);
      out[15] = cmd.control;
      return out;
    }
    case "INQUIRY": {
      checkUint("pageCode", cmd.pageCode, 8);
      checkUint("allocationLength", cmd.allocationLength, 16);
      const out = Uint8Array.of(INQUIRY, flag(cmd.evpd, 0), cmd.pageCode, 0, 0, cmd.control);
      viewOf(out).setUint16(3, cmd.allocationLength, false);
      return out;
    }
    case "REPORT_LUNS": {
      checkUint("selectReport", cmd.selectReport, 8);
      checkUint("allocationLength", cmd.allocationLength, 32);
      const out = new Uint8Array(12);
      out[0] = REPORT_LUNS;
      out[2] = cmd.selectReport;
      viewOf(out).setUint32(6, cmd.allocationLength, false);
      out[11] = cmd.control;
      return out;
    }
    case "MODE_SENSE": {
      checkRange("pageControl", cmd.pageControl, 0, 3);
      checkRange("pageCode", cmd.pageCode, 0, 0x3f);
      checkUint("subpageCode", cmd.subpageCode, 8);
      const b2 = (cmd.pageControl << 6) | cmd.pageCode;
      if (cmd.cdbSize === 6) {
        mustBeZero("llbaa", cmd.llbaa);
        checkUint("allocationLength", cmd.allocationLength, 8);
        return Uint8Array.of(MODE_SENSE, flag(cmd.dbd, 3), b2, cmd.subpageCode, cmd.allocationLength, cmd.control);
      }
      checkUint("allocationLength", cmd.allocationLength, 16);
      const out = new Uint8Array(10);
      out[0] = MODE_SENSE_10;
      out[1] = flag(cmd.llbaa, 4) | flag(cmd.dbd, 3);
      out[2] = b2;
      out[3] = cmd.subpageCode;
      viewOf(out).setUint16(7, cmd.allocationLength, false);
      out[9] = cmd.control;
      return out;
    }
    case "SYNCHRONIZE_CACHE": {
      checkRange("group", cmd.group, 0, 0x1f);
      if (cmd.cdbSize === 10) {
        checkBigUint("lba", cmd.lba, 32);
        checkUint("blocks", cmd.blocks, 16);
        const out = new Uint8Array(10);
        const v = viewOf(out);
        out[0] = SYNCHRONIZE_CACHE;
        out[1] = flag(cmd.immed, 1);
        v.setUint32(2, Number(cmd.lba), false);
        out[6] = cmd.group;
        v.setUint16(7, cmd.blocks, false);
        out[9] = cmd.control;
        return out;
      }
      checkBigUint("lba", cmd.lba, 64);
      checkUint("blocks", cmd.blocks, 32);
      const out = new Uint8Array(16);
      const v = viewOf(out);
      out[0] = SYNCHRONIZE_CACHE_16;
      out[1] = flag(cmd.immed, 1);
      v.setBigUint64(2, cmd.lba, false);
      v.setUint32(10, cmd.blocks, false);
      out[14] = cmd.group;
      out[15] = cmd.control;
      return out;
    }
    case "UNMAP": {
      checkRange("group", cmd.group, 0, 0x1f);
      checkUint("parameterListLength", cmd.parameterListLength, 16);
      const out = new Uint8Array(10);
      out[0] = UNMAP;
      out[1] = flag(cmd.anchor, 0);
      out[6] = cmd.group;
      viewOf(out).setUint16(7, cmd.parameterListLength, false);
      out[9] = cmd.control;
      return out;
    }
    case "WRITE_SAME": {
      checkRange("wrprotect", cmd.wrprotect, 0, 7);
      checkRange("group", cmd.group, 0, 0x1f);
      const b1 =
        (cmd.wrprotect << 5) |
        flag(cmd.anchor, 4) |
        flag(cmd.unmap, 3) |
        flag(cmd.pbdata, 2) |
        flag(cmd.lbdata, 1) |
        flag(cmd.ndob, 0);
      if (cmd.cdbSize === 10) {
        mustBeZero("ndob", cmd.ndob);
        checkBigUint("lba", cmd.lba, 32);
        checkUint("blocks", cmd.blocks, 16);
        const out = new Uint8Array(10);
        const v = viewOf(out);
        out[0] = WRITE_SAME;
        out[1] = b1;
        v.setUint32(2, Number(cmd.lba), false);
        out[6] = cmd.group;
        v.setUint16(7, cmd.blocks, false);
        out[9] = cmd.control;
        return out;
      }
      checkBigUint("lba", cmd.lba, 64);
      checkUint("blocks", cmd.blocks, 32);
      const out = new Uint8Array(16);
      const v = viewOf(out);
      out[0] = WRITE_SAME_16;
      out[1] = b1;
      v.setBigUint64(2, cmd.lba, false);
      v.setUint32(10, cmd.blocks, false);
      out[14] = cmd.group;
      out[15] = cmd.control;
      return out;
    }
    case "START_STOP_UNIT": {
      checkRange("powerConditionModifier", cmd.powerConditionModifier, 0, 0xf);
      checkRange("powerCondition", cmd.powerCondition, 0, 0xf);
      return Uint8Array.of(
        START_STOP,
        flag(cmd.immed, 0),
        0,
        cmd.powerConditionModifier,
        (cmd.powerCondition << 4) | flag(cmd.noFlush, 2) | flag(cmd.loej, 1) | flag(cmd.start, 0),
        cmd.control,
      );
    }
  }
}

function buildReadWrite(cmd: ReadWriteCommand): Uint8Array {
  const opcode = rwOpcode(cmd.kind, cmd.cdbSize);
  if (cmd.cdbSize === 6) {
    checkBigUint("lba", cmd.lba, 21);
    checkRange("blocks", cmd.blocks, 1, 256);
    mustBeZero("protect", cmd.protect);
    mustBeZero("dpo", cmd.dpo);
    mustBeZero("fua", cmd.fua);
    mustBeZero("group", cmd.group);
    const lba = Number(cmd.lba);
    return Uint8Array.of(opcode, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, cmd.blocks & 0xff, cmd.control);
  }
  checkRange("protect", cmd.protect, 0, 7);
  checkRange("group", cmd.group, 0, 0x1f);
  const b1 = (cmd.protect << 5) | flag(cmd.dpo, 4) | flag(cmd.fua, 3);
  const out = new Uint8Array(cmd.cdbSize);
  const v = viewOf(out);
  out[0] = opcode;
  out[1] = b1;
  switch (cmd.cdbSize) {
    case 10:
      checkBigUint("lba", cmd.lba, 32);
      checkUint("blocks", cmd.blocks, 16);
      v.setUint32(2, Number(cmd.lba), false);
      out[6] = cmd.group;
      v.setUint16(7, cmd.blocks, false);
      out[9] = cmd.control;
      break;
    case 12:
      checkBigUint("lba", cmd.lba, 32);
      checkUint("blocks", cmd.blocks, 32);
      v.setUint32(2, Number(cmd.lba), false);
      v.setUint32(6, cmd.blocks, false);
      out[10] = cmd.group;
      out[11] = cmd.control;
      break;
    case 16:
      checkBigUint("lba", cmd.lba, 64);
      checkUint("blocks", cmd.blocks, 32);
      v.setBigUint64(2, cmd.lba, false);
      v.setUint32(10, cmd.blocks, false);
      out[14] = cmd.group;
      out[15] = cmd.control;
      break;
  }
  return out;
}

// Convenience builders with Linux-like defaults.

export interface ReadWriteOptions {
  readonly fua?: boolean;
  readonly dpo?: boolean;
  readonly protect?: number;
  readonly group?: number;
  readonly control?: number;
}

export function buildTestUnitReadyCdb(): Uint8Array {
  return buildCdb({ kind: "TEST_UNIT_READY", control: 0 });
}

export function buildRequestSenseCdb(allocationLength: number, desc = false): Uint8Array {
  return buildCdb({ kind: "REQUEST_SENSE", desc, allocationLength, control: 0 });
}

function rw(kind: "READ" | "WRITE", cdbSize: 6 | 10 | 12 | 16, lba: bigint, blocks: number, o: ReadWriteOptions): Uint8Array {
  return buildCdb({
    kind,
    cdbSize,
    lba,
    blocks,
    protect: o.protect ?? 0,
    dpo: o.dpo ?? false,
    fua: o.fua ?? false,
    group: o.group ?? 0,
    control: o.control ?? 0,
  });
}

export function buildReadCdb(cdbSize: 6 | 10 | 12 | 16, lba: bigint, blocks: number, options: ReadWriteOptions = {}): Uint8Array {
  return rw("READ", cdbSize, lba, blocks, options);
}

export function buildWriteCdb(cdbSize: 6 | 10 | 12 | 16, lba: bigint, blocks: number, options: ReadWriteOptions = {}): Uint8Array {
  return rw("WRITE", cdbSize, lba, blocks, options);
}

export function buildReadCapacity10Cdb(): Uint8Array {
  return buildCdb({ kind: "READ_CAPACITY_10", lba: 0, pmi: false, control: 0 });
}

/** READ CAPACITY(16); Linux asks for 32 bytes (`RC16_LEN`). */
export function buildReadCapacity16Cdb(allocationLength = 32): Uint8Array {
  return buildCdb({ kind: "READ_CAPACITY_16", lba: 0n, allocationLength, pmi: false, control: 0 });
}

/** Standard INQUIRY, or the VPD page `vpdPage` when given. */
export function buildInquiryCdb(allocationLength: number, vpdPage?: number): Uint8Array {
  return buildCdb({
    kind: "INQUIRY",
    evpd: vpdPage !== undefined,
    pageCode: vpdPage ?? 0,
    allocationLength,
    control: 0,
  });
}

export function buildReportLunsCdb(allocationLength: number, selectReport = 0): Uint8Array {
  return buildCdb({ kind: "REPORT_LUNS", selectReport, allocationLength, control: 0 });
}

export interface ModeSenseOptions {
  readonly pageControl?: number;
  readonly subpageCode?: number;
  readonly dbd?: boolean;
  readonly llbaa?: boolean;
}

export function buildModeSenseCdb(cdbSize: 6 | 10, pageCode: number, allocationLength: number, options: ModeSenseOptions = {}): Uint8Array {
  return buildCdb({
    kind: "MODE_SENSE",
    cdbSize,
    dbd: options.dbd ?? false,
    llbaa: options.llbaa ?? false,
    pageControl: options.pageControl ?? 0,
    pageCode,
    subpageCode: options.subpageCode ?? 0,
    allocationLength,
    control: 0,
  });
}

/** SYNCHRONIZE CACHE of the whole medium by default (LBA 0, 0 blocks). */
export function buildSynchronizeCacheCdb(cdbSize: 10 | 16, lba = 0n, blocks = 0, immed = false): Uint8Array {
  return buildCdb({ kind: "SYNCHRONIZE_CACHE", cdbSize, immed, lba, blocks, group: 0, control: 0 });
}

export function buildUnmapCdb(parameterListLength: number, anchor = false): Uint8Array {
  return buildCdb({ kind: "UNMAP", anchor, group: 0, parameterListLength, control: 0 });
}

export interface WriteSameOptions {
  readonly unmap?: boolean;
  readonly anchor?: boolean;
  readonly ndob?: boolean;
  readonly wrprotect?: number;
}

export function buildWriteSameCdb(cdbSize: 10 | 16, lba: bigint, blocks: number, options: WriteSameOptions = {}): Uint8Array {
  return buildCdb({
    kind: "WRITE_SAME",
    cdbSize,
    wrprotect: options.wrprotect ?? 0,
    anchor: options.anchor ?? false,
    unmap: options.unmap ?? false,
    pbdata: false,
    lbdata: false,
    ndob: options.ndob ?? false,
    lba,
    blocks,
    group: 0,
    control: 0,
  });
}

export interface StartStopOptions {
  readonly immed?: boolean;
  readonly loej?: boolean;
  readonly noFlush?: boolean;
  readonly powerCondition?: number;
}

export function buildStartStopUnitCdb(start: boolean, options: StartStopOptions = {}): Uint8Array {
  return buildCdb({
    kind: "START_STOP_UNIT",
    immed: options.immed ?? false,
    powerConditionModifier: 0,
    powerCondition: options.powerCondition ?? 0,
    noFlush: options.noFlush ?? false,
    loej: options.loej ?? false,
    start,
    control: 0,
  });
}

// ---------------------------------------------------------------------------
// Parsing (host side)

export interface ParseCdbOptions {
  /**
   * Logical block size of the addressed disk. When given, a READ/WRITE whose
   * blocks × blockSize does not fit the u32 data_transfer_length is rejected.
   */
  readonly blockSize?: number;
}

function invalidField(command: string, field: string, value: number | bigint | string, limit: string, byte: number, bitNo: number | null): ScsiCheckConditionError {
  return new ScsiCheckConditionError(command, field, value, limit, SENSE_INVALID_FIELD_IN_CDB, { inCdb: true, byte, bit: bitNo });
}

/**
 * An LBA range of a 16-byte CDB that wraps past 2^64 - 1 names blocks that
 * cannot exist; without this check a host that adds LBA and length in
 * 64-bit arithmetic would see a small, valid-looking end.
 */
function checkLbaRange(command: string, lba: bigint, blocks: number): void {
  if (lba + BigInt(blocks) > U64_LIMIT) {
    throw new ScsiCheckConditionError(
      command,
      "LOGICAL BLOCK ADDRESS",
      lba,
      `+ ${blocks} blocks wraps past 2^64`,
      SENSE_LBA_OUT_OF_RANGE,
      { inCdb: true, byte: 2, bit: null },
    );
  }
}

/**
 * data_transfer_length is a u32: a transfer larger than 4 GiB - 1 cannot be
 * described by one SRB, so a host computing blocks × block size must not
 * silently wrap it to a small buffer.
 */
function checkTransferBytes(command: string, blocks: number, blockSize: number | undefined, byte: number): void {
  if (blockSize !== undefined && blocks * blockSize > 0xffffffff) {
    throw invalidField(
      command,
      "TRANSFER LENGTH",
      blocks,
      `× block size ${blockSize} exceeds the u32 data_transfer_length`,
      byte,
      null,
    );
  }
}

/** Reads a READ/WRITE(10/12) byte 1; legacy RelAdr is refused as OV does (§7.1). */
function rwFlags(name: string, b1: number, checkRelAdr: boolean): { protect: number; dpo: boolean; fua: boolean } {
  // RelAdr (relative addressing, SCSI-2) would make the LBA relative to a
  // linked command we do not have; honouring it silently would address the
  // wrong blocks.
  if (checkRelAdr && bit(b1, 0)) {
    throw invalidField(name, "RELADR", 1, "is obsolete and not supported", 1, 0);
  }
  return { protect: b1 >> 5, dpo: bit(b1, 4), fua: bit(b1, 3) };
}

/**
 * Parses and validates a CDB (the first cdb_length bytes of the SRB's CDB
 * area). Operates on a copy. Throws `ScsiCheckConditionError` for anything
 * the host must answer with CHECK CONDITION / ILLEGAL REQUEST.
 */
export function parseCdb(cdbBytes: Uint8Array, options: ParseCdbOptions = {}): ScsiCommand {
  const cdb = copyBytes(cdbBytes);
  const v = viewOf(cdb);
  const at = (i: number): number => cdb[i] ?? 0;
  if (cdb.length === 0) {
    throw new ScsiCheckConditionError("CDB", "OPERATION CODE", "missing", "(cdb_length is 0)", SENSE_INVALID_COMMAND_OPERATION_CODE, null);
  }
  const opcode = at(0);
  const name = scsiOpcodeName(opcode);
  const size = PARSED_CDB_SIZES.get(opcode);
  if (size === undefined) {
    throw new ScsiCheckConditionError(name, "OPERATION CODE", opcode, "is not supported", SENSE_INVALID_COMMAND_OPERATION_CODE, {
      inCdb: true,
      byte: 0,
      bit: null,
    });
  }
  // A CDB shorter than its opcode's size would have fields read from bytes
  // the guest never set; a longer one is not what any initiator sends and
  // hints at a confused or hostile guest.
  if (cdb.length !== size) {
    throw new ScsiCheckConditionError(name, "CDB length", cdb.length, `must be ${size} for this opcode`, SENSE_INVALID_FIELD_IN_CDB, null);
  }
  const control = at(size - 1);
  switch (opcode) {
    case TEST_UNIT_READY:
      // §7.3: the CDB is six zero bytes (but for CONTROL); anything else is
      // a different, unsupported command in disguise.
      for (let i = 1; i <= 4; i++) {
        if (at(i) !== 0) throw invalidField(name, `reserved byte ${i}`, at(i), "must be 0", i, null);
      }
      return { kind: "TEST_UNIT_READY", control };
    case REQUEST_SENSE:
      return { kind: "REQUEST_SENSE", desc: bit(at(1), 0), allocationLength: at(4), control };
    case READ_6:
    case WRITE_6: {
      const field = at(4);
      return {
        kind: opcode === READ_6 ? "READ" : "WRITE",
        cdbSize: 6,
        lba: BigInt(((at(1) & 0x1f) << 16) | (at(2) << 8) | at(3)),
        blocks: field === 0 ? 256 : field,
        protect: 0,
        dpo: false,
        fua: false,
        group: 0,
        control,
      };
    }
    case READ_10:
    case WRITE_10:
    case READ_12:
    case WRITE_12:
    case READ_16:
    case WRITE_16: {
      const f = rwFlags(name, at(1), size !== 16);
      let lba: bigint;
      let blocks: number;
      let group: number;
      let lengthByte: number;
      if (size === 10) {
        lba = BigInt(v.getUint32(2, false));
        blocks = v.getUint16(7, false);
        group = at(6) & 0x1f;
        lengthByte = 7;
      } else if (size === 12) {
        lba = BigInt(v.getUint32(2, false));
        blocks = v.getUint32(6, false);
        group = at(10) & 0x1f;
        lengthByte = 6;
      } else {
        lba = v.getBigUint64(2, false);
        blocks = v.getUint32(10, false);
        group = at(14) & 0x1f;
        lengthByte = 10;
        checkLbaRange(name, lba, blocks);
      }
      checkTransferBytes(name, blocks, options.blockSize, lengthByte);
      const read = opcode === READ_10 || opcode === READ_12 || opcode === READ_16;
      const cdbSize: 10 | 12 | 16 = size === 10 ? 10 : size === 12 ? 12 : 16;
      return { kind: read ? "READ" : "WRITE", cdbSize, lba, blocks, ...f, group, control };
    }
    case READ_CAPACITY: {
      const lba = v.getUint32(2, false);
      const pmi = bit(at(8), 0);
      // SBC: without PMI the LBA field must be 0; a non-zero one asks a
      // question this command no longer answers.
      if (!pmi && lba !== 0) throw invalidField(name, "LOGICAL BLOCK ADDRESS", lba, "must be 0 when PMI is 0", 2, null);
      return { kind: "READ_CAPACITY_10", lba, pmi, control };
    }
    case SERVICE_ACTION_IN_16: {
      const sa = at(1) & 0x1f;
      // Only READ CAPACITY(16) is modelled; other service actions (GET LBA
      // STATUS, vendor ones) must not be answered with capacity data.
      if (sa !== SAI_READ_CAPACITY_16) {
        throw invalidField(name, "SERVICE ACTION", sa, "is not READ CAPACITY(16) (0x10)", 1, 4);
      }
      const lba = v.getBigUint64(2, false);
      const pmi = bit(at(14), 0);
      if (!pmi && lba !== 0n) {
        throw invalidField("READ CAPACITY(16)", "LOGICAL BLOCK ADDRESS", lba, "must be 0 when PMI is 0", 2, null);
      }
      return { kind: "READ_CAPACITY_16", lba, allocationLength: v.getUint32(10, false), pmi, control };
    }
    case INQUIRY: {
      const b1 = at(1);
      const evpd = bit(b1, 0);
      const pageCode = at(2);
      // CmdDt asked for command support data (SPC-2), a format we do not
      // produce; answering with standard data would be misread.
      if (bit(b1, 1)) throw invalidField(name, "CMDDT", 1, "is obsolete and not supported", 1, 1);
      // A page code without EVPD is meaningless; answering standard data
      // would hand the guest a page it did not ask for.
      if (!evpd && pageCode !== 0) throw invalidField(name, "PAGE CODE", pageCode, "must be 0 when EVPD is 0", 2, null);
      return { kind: "INQUIRY", evpd, pageCode, allocationLength: v.getUint16(3, false), control };
    }
    case REPORT_LUNS: {
      const selectReport = at(2);
      // SELECT REPORT 0..2 are the classic reports; well-known-LUN reports
      // are not modelled and must not get an ordinary LUN list.
      if (selectReport > 2) throw invalidField(name, "SELECT REPORT", selectReport, "must be 0, 1 or 2", 2, null);
      return { kind: "REPORT_LUNS", selectReport, allocationLength: v.getUint32(6, false), control };
    }
    case MODE_SENSE:
    case MODE_SENSE_10: {
      const six = opcode === MODE_SENSE;
      return {
        kind: "MODE_SENSE",
        cdbSize: six ? 6 : 10,
        dbd: bit(at(1), 3),
        llbaa: six ? false : bit(at(1), 4),
        pageControl: at(2) >> 6,
        pageCode: at(2) & 0x3f,
        subpageCode: at(3),
        allocationLength: six ? at(4) : v.getUint16(7, false),
        control,
      };
    }
    case SYNCHRONIZE_CACHE:
    case SYNCHRONIZE_CACHE_16: {
      const immed = bit(at(1), 1);
      if (size === 10) {
        return {
          kind: "SYNCHRONIZE_CACHE",
          cdbSize: 10,
          immed,
          lba: BigInt(v.getUint32(2, false)),
          blocks: v.getUint16(7, false),
          group: at(6) & 0x1f,
          control,
        };
      }
      const lba = v.getBigUint64(2, false);
      const blocks = v.getUint32(10, false);
      checkLbaRange(name, lba, blocks);
      return { kind: "SYNCHRONIZE_CACHE", cdbSize: 16, immed, lba, blocks, group: at(14) & 0x1f, control };
    }
    case UNMAP:
      return {
        kind: "UNMAP",
        anchor: bit(at(1), 0),
        group: at(6) & 0x1f,
        parameterListLength: v.getUint16(7, false),
        control,
      };
    case WRITE_SAME:
    case WRITE_SAME_16: {
      const b1 = at(1);
      const common = {
        kind: "WRITE_SAME" as const,
        wrprotect: b1 >> 5,
        anchor: bit(b1, 4),
        unmap: bit(b1, 3),
        pbdata: bit(b1, 2),
        lbdata: bit(b1, 1),
        control,
      };
      if (size === 10) {
        return {
          ...common,
          cdbSize: 10,
          ndob: false,
          lba: BigInt(v.getUint32(2, false)),
          blocks: v.getUint16(7, false),
          group: at(6) & 0x1f,
        };
      }
      const lba = v.getBigUint64(2, false);
      const blocks = v.getUint32(10, false);
      checkLbaRange(name, lba, blocks);
      return { ...common, cdbSize: 16, ndob: bit(b1, 0), lba, blocks, group: at(14) & 0x1f };
    }
    case START_STOP: {
      const b4 = at(4);
      return {
        kind: "START_STOP_UNIT",
        immed: bit(at(1), 0),
        powerConditionModifier: at(3) & 0x0f,
        powerCondition: b4 >> 4,
        noFlush: bit(b4, 2),
        loej: bit(b4, 1),
        start: bit(b4, 0),
        control,
      };
    }
    default:
      // PARSED_CDB_SIZES and this switch list the same opcodes.
      throw new ScsiCheckConditionError(name, "OPERATION CODE", opcode, "is not supported", SENSE_INVALID_COMMAND_OPERATION_CODE, {
        inCdb: true,
        byte: 0,
        bit: null,
      });
  }
}

/** The SRB data_in a command needs: READ_TYPE, WRITE_TYPE, or UNKNOWN_TYPE for no data. */
export function dataInForCommand(cmd: ScsiCommand): number {
  switch (cmd.kind) {
    case "WRITE":
    case "UNMAP":
      return WRITE_TYPE;
    case "WRITE_SAME":
      return cmd.ndob ? UNKNOWN_TYPE : WRITE_TYPE;
    case "TEST_UNIT_READY":
    case "SYNCHRONIZE_CACHE":
    case "START_STOP_UNIT":
      return UNKNOWN_TYPE;
    default:
      return READ_TYPE;
  }
}
