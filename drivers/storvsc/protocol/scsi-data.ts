/**
 * SCSI data-in/data-out payloads that are not INQUIRY or MODE SENSE
 * (storvsc-netvsc.md §6, §7.2, §7.3; T10 SBC/SPC): READ CAPACITY(10) and
 * (16) responses, the REPORT LUNS response, and the UNMAP parameter list.
 * All multi-byte fields are big-endian.
 *
 * Response builders are host side; response parsers are guest side and
 * throw `ProtocolError` for data no honest host sends. The UNMAP parameter
 * list travels the other way (guest builds, host parses) and its parser
 * throws `ScsiCheckConditionError`, which the host turns into sense.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { bit, checkBigUint, checkRange, checkUint, copyBytes, flag, viewOf } from "./bytes.js";
import { ScsiCheckConditionError } from "./errors.js";
import type { FieldSpec } from "./vstor-packet.js";
import {
  SENSE_INVALID_FIELD_IN_PARAMETER_LIST,
  SENSE_LBA_OUT_OF_RANGE,
  SENSE_PARAMETER_LIST_LENGTH_ERROR,
} from "./scsi-sense.js";

const U64_LIMIT = 1n << 64n;

/**
 * The largest logical block length either side accepts: the host's disk
 * specs allow powers of two up to this, and a guest that took a host's
 * word for 2 GiB blocks would size one-block buffers beyond what a typed
 * array can hold (the fuzzer found that: a RangeError instead of a typed
 * error on the first read).
 */
export const MAX_LOGICAL_BLOCK_LENGTH = 65536;

/**
 * A logical block length of 0 (or one that is not a power of two in
 * [512, MAX_LOGICAL_BLOCK_LENGTH]) would make a guest divide by zero,
 * misplace every LBA or allocate gigabytes per block; no disk has one.
 */
function isPlausibleBlockLength(n: number): boolean {
  return n >= 512 && n <= MAX_LOGICAL_BLOCK_LENGTH && (n & (n - 1)) === 0;
}

function checkBlockLength(n: number): void {
  checkUint("blockLength", n, 32);
  if (!isPlausibleBlockLength(n)) {
    throw new InvalidArgumentError("blockLength", n, `must be a power of two in [512, ${MAX_LOGICAL_BLOCK_LENGTH}]`);
  }
}

// ---------------------------------------------------------------------------
// READ CAPACITY(10) (§7.2)

/** `READ_CAPACITY_DATA`: 8 bytes. */
export const READ_CAPACITY_10_DATA_LAYOUT = {
  returned_logical_block_address: { offset: 0, size: 4 },
  logical_block_length: { offset: 4, size: 4 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const READ_CAPACITY_10_DATA_LENGTH = 8;

export interface ReadCapacity10Data {
  /** Last LBA, or 0xFFFFFFFF when it does not fit (use READ CAPACITY(16)). */
  readonly returnedLba: number;
  readonly blockLength: number;
}

/** Host: the 8-byte response for a disk whose last LBA is `lastLba`. */
export function buildReadCapacity10Data(lastLba: bigint, blockLength: number): Uint8Array {
  checkBigUint("lastLba", lastLba, 64);
  checkBlockLength(blockLength);
  const out = new Uint8Array(READ_CAPACITY_10_DATA_LENGTH);
  const v = viewOf(out);
  v.setUint32(0, lastLba > 0xffffffffn ? 0xffffffff : Number(lastLba), false);
  v.setUint32(4, blockLength, false);
  return out;
}

/** Guest: parses READ CAPACITY(10) data. */
export function parseReadCapacity10Data(bytes: Uint8Array): ReadCapacity10Data & { readonly needsReadCapacity16: boolean } {
  // Fewer than 8 bytes leave the block length undefined.
  if (bytes.length < READ_CAPACITY_10_DATA_LENGTH) {
    throw new ProtocolError("SCSI READ CAPACITY(10)", "data length", bytes.length, `is below ${READ_CAPACITY_10_DATA_LENGTH}`);
  }
  const v = viewOf(copyBytes(bytes, READ_CAPACITY_10_DATA_LENGTH));
  const returnedLba = v.getUint32(0, false);
  const blockLength = v.getUint32(4, false);
  if (!isPlausibleBlockLength(blockLength)) {
    throw new ProtocolError("SCSI READ CAPACITY(10)", "LOGICAL BLOCK LENGTH", blockLength, `is not a power of two in [512, ${MAX_LOGICAL_BLOCK_LENGTH}]`);
  }
  return { returnedLba, blockLength, needsReadCapacity16: returnedLba === 0xffffffff };
}

// ---------------------------------------------------------------------------
// READ CAPACITY(16) (§7.2)

/** `READ_CAPACITY16_DATA`: 32 bytes. */
export const READ_CAPACITY_16_DATA_LAYOUT = {
  returned_logical_block_address: { offset: 0, size: 8 },
  logical_block_length: { offset: 8, size: 4 },
  /** bits 3–1 P_TYPE, bit0 PROT_EN. */
  protection: { offset: 12, size: 1 },
  /** bits 7–4 P_I_EXPONENT, bits 3–0 LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT. */
  exponents: { offset: 13, size: 1 },
  /** byte 14 bit7 LBPME, bit6 LBPRZ, bits 5–0 + byte 15: LOWEST ALIGNED LOGICAL BLOCK ADDRESS. */
  provisioning_alignment: { offset: 14, size: 2 },
  reserved: { offset: 16, size: 16 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const READ_CAPACITY_16_DATA_LENGTH = 32;
/** Smallest READ CAPACITY(16) response OV serves (§7.2). */
export const READ_CAPACITY_16_MIN_LENGTH = 12;

export interface ReadCapacity16Data {
  readonly lastLba: bigint;
  readonly blockLength: number;
  readonly protectionType: number;
  readonly protectionEnabled: boolean;
  readonly piExponent: number;
  /** log2(logical blocks per physical block). */
  readonly logicalPerPhysicalExponent: number;
  /** Logical block provisioning management enabled (thin provisioning / UNMAP). */
  readonly lbpme: boolean;
  /** Unmapped blocks read as zero. */
  readonly lbprz: boolean;
  readonly lowestAlignedLba: number;
}

export type ReadCapacity16Input = Pick<ReadCapacity16Data, "lastLba" | "blockLength"> &
  Partial<Omit<ReadCapacity16Data, "lastLba" | "blockLength">>;

/** Host: the 32-byte response. */
export function buildReadCapacity16Data(input: ReadCapacity16Input): Uint8Array {
  checkBigUint("lastLba", input.lastLba, 64);
  checkBlockLength(input.blockLength);
  const protectionType = input.protectionType ?? 0;
  const piExponent = input.piExponent ?? 0;
  const lpp = input.logicalPerPhysicalExponent ?? 0;
  const lowest = input.lowestAlignedLba ?? 0;
  checkRange("protectionType", protectionType, 0, 7);
  checkRange("piExponent", piExponent, 0, 15);
  checkRange("logicalPerPhysicalExponent", lpp, 0, 15);
  checkRange("lowestAlignedLba", lowest, 0, 0x3fff);
  const out = new Uint8Array(READ_CAPACITY_16_DATA_LENGTH);
  const v = viewOf(out);
  v.setBigUint64(0, input.lastLba, false);
  v.setUint32(8, input.blockLength, false);
  out[12] = (protectionType << 1) | flag(input.protectionEnabled === true, 0);
  out[13] = (piExponent << 4) | lpp;
  v.setUint16(14, lowest, false);
  out[14] = (out[14] ?? 0) | flag(input.lbpme === true, 7) | flag(input.lbprz === true, 6);
  return out;
}

/** Guest: parses READ CAPACITY(16) data; at least 12 bytes, shorter data zero-extended. */
export function parseReadCapacity16Data(bytes: Uint8Array): ReadCapacity16Data {
  if (bytes.length < READ_CAPACITY_16_MIN_LENGTH) {
    throw new ProtocolError("SCSI READ CAPACITY(16)", "data length", bytes.length, `is below ${READ_CAPACITY_16_MIN_LENGTH}`);
  }
  const d = copyBytes(bytes, READ_CAPACITY_16_DATA_LENGTH);
  const v = viewOf(d);
  const blockLength = v.getUint32(8, false);
  if (!isPlausibleBlockLength(blockLength)) {
    throw new ProtocolError("SCSI READ CAPACITY(16)", "LOGICAL BLOCK LENGTH", blockLength, `is not a power of two in [512, ${MAX_LOGICAL_BLOCK_LENGTH}]`);
  }
  const b12 = d[12] ?? 0;
  const b13 = d[13] ?? 0;
  const b14 = d[14] ?? 0;
  return {
    lastLba: v.getBigUint64(0, false),
    blockLength,
    protectionType: (b12 >> 1) & 0x7,
    protectionEnabled: bit(b12, 0),
    piExponent: b13 >> 4,
    logicalPerPhysicalExponent: b13 & 0xf,
    lbpme: bit(b14, 7),
    lbprz: bit(b14, 6),
    lowestAlignedLba: v.getUint16(14, false) & 0x3fff,
  };
}

// ---------------------------------------------------------------------------
// REPORT LUNS (§6, §7.3)

export const REPORT_LUNS_DATA_LAYOUT = {
  lun_list_length: { offset: 0, size: 4 },
  reserved: { offset: 4, size: 4 },
  /** 8-byte entries follow; an entry's bytes 0–1 hold the LUN (BE16), bytes 2–7 are 0. */
  lun_list: { offset: 8, size: 8 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const REPORT_LUNS_HEADER_LENGTH = 8;
export const REPORT_LUNS_ENTRY_LENGTH = 8;

/** Host: header + one 8-byte entry per LUN (single-level, LUN as BE16 in bytes 0–1). */
export function buildReportLunsData(luns: readonly number[]): Uint8Array {
  const out = new Uint8Array(REPORT_LUNS_HEADER_LENGTH + REPORT_LUNS_ENTRY_LENGTH * luns.length);
  const v = viewOf(out);
  v.setUint32(0, REPORT_LUNS_ENTRY_LENGTH * luns.length, false);
  luns.forEach((lun, i) => {
    checkUint(`luns[${i}]`, lun, 16);
    v.setUint16(REPORT_LUNS_HEADER_LENGTH + i * REPORT_LUNS_ENTRY_LENGTH, lun, false);
  });
  return out;
}

export interface ReportLunsData {
  /** LUN LIST LENGTH from the header: what the host has, not what it sent. */
  readonly lunListLength: number;
  /** The LUNs whose entries arrived in full. */
  readonly luns: readonly number[];
  /** The list is longer than the data returned (allocation length too small). */
  readonly truncated: boolean;
}

/** Guest: parses REPORT LUNS data. */
export function parseReportLunsData(bytes: Uint8Array): ReportLunsData {
  const P = "SCSI REPORT LUNS";
  if (bytes.length < REPORT_LUNS_HEADER_LENGTH) {
    throw new ProtocolError(P, "data length", bytes.length, `is below the ${REPORT_LUNS_HEADER_LENGTH}-byte header`);
  }
  const d = copyBytes(bytes);
  const v = viewOf(d);
  const lunListLength = v.getUint32(0, false);
  // Entries are 8 bytes; a ragged length means the host and guest disagree
  // about where entries start.
  if (lunListLength % REPORT_LUNS_ENTRY_LENGTH !== 0) {
    throw new ProtocolError(P, "LUN LIST LENGTH", lunListLength, "is not a multiple of 8");
  }
  const available = Math.min(lunListLength, d.length - REPORT_LUNS_HEADER_LENGTH);
  const count = Math.floor(available / REPORT_LUNS_ENTRY_LENGTH);
  const luns: number[] = [];
  for (let i = 0; i < count; i++) {
    const off = REPORT_LUNS_HEADER_LENGTH + i * REPORT_LUNS_ENTRY_LENGTH;
    // Multi-level (hierarchical) LUNs are not modelled; reading only the
    // first level would alias different LUNs onto one.
    for (let j = 2; j < 8; j++) {
      if ((d[off + j] ?? 0) !== 0) {
        throw new ProtocolError(P, `LUN entry ${i} byte ${j}`, d[off + j] ?? 0, "must be 0 (multi-level LUNs are not modelled)");
      }
    }
    luns.push(v.getUint16(off, false));
  }
  return { lunListLength, luns, truncated: lunListLength > count * REPORT_LUNS_ENTRY_LENGTH };
}

// ---------------------------------------------------------------------------
// UNMAP parameter list (§6)

export const UNMAP_PARAMETER_LIST_HEADER_LAYOUT = {
  unmap_data_length: { offset: 0, size: 2 },
  unmap_block_descriptor_data_length: { offset: 2, size: 2 },
  reserved: { offset: 4, size: 4 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
/** Offsets within one descriptor (descriptors start at byte 8, 16 bytes each). */
export const UNMAP_BLOCK_DESCRIPTOR_LAYOUT = {
  unmap_logical_block_address: { offset: 0, size: 8 },
  number_of_logical_blocks: { offset: 8, size: 4 },
  reserved: { offset: 12, size: 4 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const UNMAP_PARAMETER_LIST_HEADER_LENGTH = 8;
export const UNMAP_BLOCK_DESCRIPTOR_LENGTH = 16;

export interface UnmapBlockDescriptor {
  readonly lba: bigint;
  readonly blocks: number;
}

/** Guest: header + descriptors. */
export function buildUnmapParameterList(descriptors: readonly UnmapBlockDescriptor[]): Uint8Array {
  const bdLength = UNMAP_BLOCK_DESCRIPTOR_LENGTH * descriptors.length;
  checkUint("descriptors.length × 16 + 6", bdLength + 6, 16);
  const out = new Uint8Array(UNMAP_PARAMETER_LIST_HEADER_LENGTH + bdLength);
  const v = viewOf(out);
  v.setUint16(0, bdLength + 6, false);
  v.setUint16(2, bdLength, false);
  descriptors.forEach((d, i) => {
    checkBigUint(`descriptors[${i}].lba`, d.lba, 64);
    checkUint(`descriptors[${i}].blocks`, d.blocks, 32);
    const off = UNMAP_PARAMETER_LIST_HEADER_LENGTH + i * UNMAP_BLOCK_DESCRIPTOR_LENGTH;
    v.setBigUint64(off, d.lba, false);
    v.setUint32(off + 8, d.blocks, false);
  });
  return out;
}

export interface UnmapParseOptions {
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT the host advertised (VPD 0xB0). */
  readonly maxDescriptors?: number;
  /** MAXIMUM UNMAP LBA COUNT the host advertised (VPD 0xB0), per descriptor. */
  readonly maxLbaCount?: number;
}

/**
 * Host: parses the UNMAP parameter list — the data-out bytes, already cut to
 * the CDB's PARAMETER LIST LENGTH. An empty list is valid (nothing to do).
 */
export function parseUnmapParameterList(bytes: Uint8Array, options: UnmapParseOptions = {}): readonly UnmapBlockDescriptor[] {
  const C = "UNMAP parameter list";
  const d = copyBytes(bytes);
  if (d.length === 0) return [];
  // SBC: 1..7 bytes cannot hold the header.
  if (d.length < UNMAP_PARAMETER_LIST_HEADER_LENGTH) {
    throw new ScsiCheckConditionError(C, "PARAMETER LIST LENGTH", d.length, "is between 1 and 7", SENSE_PARAMETER_LIST_LENGTH_ERROR, null);
  }
  const v = viewOf(d);
  const unmapDataLength = v.getUint16(0, false);
  const bdLength = v.getUint16(2, false);
  // Lengths claiming more data than the guest sent would make us read
  // descriptors out of whatever lies past the transferred bytes.
  if (unmapDataLength + 2 > d.length) {
    throw new ScsiCheckConditionError(C, "UNMAP DATA LENGTH", unmapDataLength, `+ 2 exceeds the ${d.length} bytes sent`, SENSE_INVALID_FIELD_IN_PARAMETER_LIST, {
      inCdb: false,
      byte: 0,
      bit: null,
    });
  }
  if (bdLength + UNMAP_PARAMETER_LIST_HEADER_LENGTH > unmapDataLength + 2) {
    throw new ScsiCheckConditionError(
      C,
      "UNMAP BLOCK DESCRIPTOR DATA LENGTH",
      bdLength,
      `+ 8 exceeds UNMAP DATA LENGTH ${unmapDataLength} + 2`,
      SENSE_INVALID_FIELD_IN_PARAMETER_LIST,
      { inCdb: false, byte: 2, bit: null },
    );
  }
  // SBC: a trailing partial descriptor is ignored, not an error.
  const count = Math.floor(bdLength / UNMAP_BLOCK_DESCRIPTOR_LENGTH);
  // Bounding the count bounds the work one command can make the host do.
  if (options.maxDescriptors !== undefined && count > options.maxDescriptors) {
    throw new ScsiCheckConditionError(C, "descriptor count", count, `exceeds MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT ${options.maxDescriptors}`, SENSE_INVALID_FIELD_IN_PARAMETER_LIST, {
      inCdb: false,
      byte: 2,
      bit: null,
    });
  }
  const out: UnmapBlockDescriptor[] = [];
  for (let i = 0; i < count; i++) {
    const off = UNMAP_PARAMETER_LIST_HEADER_LENGTH + i * UNMAP_BLOCK_DESCRIPTOR_LENGTH;
    const lba = v.getBigUint64(off, false);
    const blocks = v.getUint32(off + 8, false);
    if (lba + BigInt(blocks) > U64_LIMIT) {
      throw new ScsiCheckConditionError(C, `descriptor ${i} UNMAP LOGICAL BLOCK ADDRESS`, lba, `+ ${blocks} blocks wraps past 2^64`, SENSE_LBA_OUT_OF_RANGE, {
        inCdb: false,
        byte: off,
        bit: null,
      });
    }
    if (options.maxLbaCount !== undefined && blocks > options.maxLbaCount) {
      throw new ScsiCheckConditionError(C, `descriptor ${i} NUMBER OF LOGICAL BLOCKS`, blocks, `exceeds MAXIMUM UNMAP LBA COUNT ${options.maxLbaCount}`, SENSE_INVALID_FIELD_IN_PARAMETER_LIST, {
        inCdb: false,
        byte: off + 8,
        bit: null,
      });
    }
    out.push({ lba, blocks });
  }
  return out;
}
