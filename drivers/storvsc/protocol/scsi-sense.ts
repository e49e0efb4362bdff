/**
 * SCSI sense data (storvsc-netvsc.md §7.6): sense keys, the ASC/ASCQ pairs a
 * disk needs, and the 18-byte fixed format (SPC response codes 0x70/0x71)
 * with its sense-key-specific field pointer. The parser also reads the first
 * bytes of descriptor-format sense (0x72/0x73), which QEMU's hv-scsi sends
 * for missing LUNs (§6).
 */
import { ProtocolError } from "../../../core/index.js";
import { bit, checkRange, checkUint, copyBytes, flag, viewOf } from "./bytes.js";

// ---------------------------------------------------------------------------
// Sense keys (Linux `scsi_proto.h` names)

export const NO_SENSE = 0x0;
export const RECOVERED_ERROR = 0x1;
export const NOT_READY = 0x2;
export const MEDIUM_ERROR = 0x3;
export const HARDWARE_ERROR = 0x4;
export const ILLEGAL_REQUEST = 0x5;
export const UNIT_ATTENTION = 0x6;
export const DATA_PROTECT = 0x7;
export const BLANK_CHECK = 0x8;
export const COPY_ABORTED = 0xa;
export const ABORTED_COMMAND = 0xb;
export const VOLUME_OVERFLOW = 0xd;
export const MISCOMPARE = 0xe;

export const SENSE_KEY_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [NO_SENSE, "NO SENSE"],
  [RECOVERED_ERROR, "RECOVERED ERROR"],
  [NOT_READY, "NOT READY"],
  [MEDIUM_ERROR, "MEDIUM ERROR"],
  [HARDWARE_ERROR, "HARDWARE ERROR"],
  [ILLEGAL_REQUEST, "ILLEGAL REQUEST"],
  [UNIT_ATTENTION, "UNIT ATTENTION"],
  [DATA_PROTECT, "DATA PROTECT"],
  [BLANK_CHECK, "BLANK CHECK"],
  [COPY_ABORTED, "COPY ABORTED"],
  [ABORTED_COMMAND, "ABORTED COMMAND"],
  [VOLUME_OVERFLOW, "VOLUME OVERFLOW"],
  [MISCOMPARE, "MISCOMPARE"],
]);

// ---------------------------------------------------------------------------
// Sense key + ASC + ASCQ triples

export interface SenseCode {
  readonly senseKey: number;
  readonly asc: number;
  readonly ascq: number;
}

function code(senseKey: number, asc: number, ascq: number): SenseCode {
  return Object.freeze({ senseKey, asc, ascq });
}

/** 03/00/00: an I/O error without a more specific code (OV `Io`). */
export const SENSE_MEDIUM_ERROR_NO_ADDITIONAL_INFO = code(MEDIUM_ERROR, 0x00, 0x00);
/** 03/03/00 PERIPHERAL DEVICE WRITE FAULT. */
export const SENSE_WRITE_FAULT = code(MEDIUM_ERROR, 0x03, 0x00);
/** 03/11/00 UNRECOVERED READ ERROR. */
export const SENSE_UNRECOVERED_READ_ERROR = code(MEDIUM_ERROR, 0x11, 0x00);
/** 05/1A/00 PARAMETER LIST LENGTH ERROR. */
export const SENSE_PARAMETER_LIST_LENGTH_ERROR = code(ILLEGAL_REQUEST, 0x1a, 0x00);
/** 05/20/00 INVALID COMMAND OPERATION CODE. */
export const SENSE_INVALID_COMMAND_OPERATION_CODE = code(ILLEGAL_REQUEST, 0x20, 0x00);
/** 05/21/00 LOGICAL BLOCK ADDRESS OUT OF RANGE. */
export const SENSE_LBA_OUT_OF_RANGE = code(ILLEGAL_REQUEST, 0x21, 0x00);
/** 05/24/00 INVALID FIELD IN CDB. */
export const SENSE_INVALID_FIELD_IN_CDB = code(ILLEGAL_REQUEST, 0x24, 0x00);
/** 05/25/00 LOGICAL UNIT NOT SUPPORTED. */
export const SENSE_LOGICAL_UNIT_NOT_SUPPORTED = code(ILLEGAL_REQUEST, 0x25, 0x00);
/** 05/26/00 INVALID FIELD IN PARAMETER LIST. */
export const SENSE_INVALID_FIELD_IN_PARAMETER_LIST = code(ILLEGAL_REQUEST, 0x26, 0x00);
/** 07/27/00 WRITE PROTECTED. */
export const SENSE_WRITE_PROTECTED = code(DATA_PROTECT, 0x27, 0x00);
/** 06/29/00 POWER ON, RESET, OR BUS DEVICE RESET OCCURRED. */
export const SENSE_POWER_ON_RESET = code(UNIT_ATTENTION, 0x29, 0x00);
/** 06/2A/09 CAPACITY DATA HAS CHANGED. */
export const SENSE_CAPACITY_DATA_CHANGED = code(UNIT_ATTENTION, 0x2a, 0x09);
/** 06/3F/0E REPORTED LUNS DATA HAS CHANGED. */
export const SENSE_REPORTED_LUNS_DATA_CHANGED = code(UNIT_ATTENTION, 0x3f, 0x0e);
/** 02/3A/00 MEDIUM NOT PRESENT. */
export const SENSE_MEDIUM_NOT_PRESENT = code(NOT_READY, 0x3a, 0x00);
/** 0B/00/00 ABORTED COMMAND, no additional information (OV: PR preempt). */
export const SENSE_ABORTED_COMMAND = code(ABORTED_COMMAND, 0x00, 0x00);

/** T10 texts of the ASC/ASCQ pairs above, keyed `asc << 8 | ascq`. */
export const ASC_ASCQ_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [0x0000, "NO ADDITIONAL SENSE INFORMATION"],
  [0x0300, "PERIPHERAL DEVICE WRITE FAULT"],
  [0x1100, "UNRECOVERED READ ERROR"],
  [0x1a00, "PARAMETER LIST LENGTH ERROR"],
  [0x2000, "INVALID COMMAND OPERATION CODE"],
  [0x2100, "LOGICAL BLOCK ADDRESS OUT OF RANGE"],
  [0x2400, "INVALID FIELD IN CDB"],
  [0x2500, "LOGICAL UNIT NOT SUPPORTED"],
  [0x2600, "INVALID FIELD IN PARAMETER LIST"],
  [0x2700, "WRITE PROTECTED"],
  [0x2900, "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"],
  [0x2a09, "CAPACITY DATA HAS CHANGED"],
  [0x3a00, "MEDIUM NOT PRESENT"],
  [0x3f0e, "REPORTED LUNS DATA HAS CHANGED"],
]);

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, "0");
}

/** "MEDIUM ERROR 03/11/00 UNRECOVERED READ ERROR". */
export function formatSenseCode(c: SenseCode): string {
  const key = SENSE_KEY_NAMES.get(c.senseKey) ?? `SENSE KEY ${hex2(c.senseKey)}`;
  const text = ASC_ASCQ_NAMES.get((c.asc << 8) | c.ascq);
  return `${key} ${hex2(c.senseKey)}/${hex2(c.asc)}/${hex2(c.ascq)}${text ? ` ${text}` : ""}`;
}

// ---------------------------------------------------------------------------
// Fixed-format sense data

/** Response code of current errors, fixed format. */
export const SENSE_RESPONSE_CODE_FIXED_CURRENT = 0x70;
/** Response code of deferred errors, fixed format. */
export const SENSE_RESPONSE_CODE_FIXED_DEFERRED = 0x71;
export const SENSE_RESPONSE_CODE_DESCRIPTOR_CURRENT = 0x72;
export const SENSE_RESPONSE_CODE_DESCRIPTOR_DEFERRED = 0x73;
/** Length of fixed-format sense data as this simulation builds it. */
export const FIXED_SENSE_DATA_LENGTH = 18;
/** `additional sense length` of 18-byte fixed sense: bytes after byte 7. */
export const FIXED_SENSE_ADDITIONAL_LENGTH = 10;

/** Byte offsets of fixed-format sense data (SPC; spec §7.6). */
export const FIXED_SENSE_DATA_LAYOUT = {
  /** bit7 VALID, bits6–0 response code. */
  responseCode: { offset: 0, size: 1 },
  obsolete: { offset: 1, size: 1 },
  /** bit7 FILEMARK, bit6 EOM, bit5 ILI, bits3–0 sense key. */
  senseKey: { offset: 2, size: 1 },
  information: { offset: 3, size: 4 },
  additionalSenseLength: { offset: 7, size: 1 },
  commandSpecificInformation: { offset: 8, size: 4 },
  additionalSenseCode: { offset: 12, size: 1 },
  additionalSenseCodeQualifier: { offset: 13, size: 1 },
  fieldReplaceableUnitCode: { offset: 14, size: 1 },
  /** bit7 SKSV; for ILLEGAL REQUEST: bit6 C/D, bit3 BPV, bits2–0 bit pointer, then BE16 field pointer. */
  senseKeySpecific: { offset: 15, size: 3 },
} as const;

/**
 * Where in the CDB (or parameter list) the offending field is: the
 * sense-key-specific "field pointer" of ILLEGAL REQUEST sense.
 */
export interface SenseFieldPointer {
  /** C/D bit: true when the field is in the CDB, false when in the parameter data. */
  readonly inCdb: boolean;
  readonly byte: number;
  /** The bit within the byte (BPV set), or null when the whole byte is meant. */
  readonly bit: number | null;
}

export interface FixedSenseDataInput extends SenseCode {
  /** Deferred error (response code 0x71) instead of current (0x70). */
  readonly deferred?: boolean;
  /** INFORMATION field; sets VALID when given. */
  readonly information?: number;
  readonly commandSpecificInformation?: number;
  readonly fieldReplaceableUnitCode?: number;
  readonly filemark?: boolean;
  readonly endOfMedium?: boolean;
  readonly incorrectLengthIndicator?: boolean;
  /** Field pointer for ILLEGAL REQUEST; sets SKSV. */
  readonly fieldPointer?: SenseFieldPointer;
}

/** Builds 18 bytes of fixed-format sense data (host side). */
export function buildFixedSenseData(input: FixedSenseDataInput): Uint8Array {
  checkRange("senseKey", input.senseKey, 0, 0xf);
  checkUint("asc", input.asc, 8);
  checkUint("ascq", input.ascq, 8);
  const out = new Uint8Array(FIXED_SENSE_DATA_LENGTH);
  const view = viewOf(out);
  const valid = input.information !== undefined;
  out[0] = (valid ? 0x80 : 0) | (input.deferred === true ? SENSE_RESPONSE_CODE_FIXED_DEFERRED : SENSE_RESPONSE_CODE_FIXED_CURRENT);
  out[2] =
    flag(input.filemark === true, 7) |
    flag(input.endOfMedium === true, 6) |
    flag(input.incorrectLengthIndicator === true, 5) |
    input.senseKey;
  if (input.information !== undefined) {
    checkUint("information", input.information, 32);
    view.setUint32(3, input.information, false);
  }
  out[7] = FIXED_SENSE_ADDITIONAL_LENGTH;
  if (input.commandSpecificInformation !== undefined) {
    checkUint("commandSpecificInformation", input.commandSpecificInformation, 32);
    view.setUint32(8, input.commandSpecificInformation, false);
  }
  out[12] = input.asc;
  out[13] = input.ascq;
  if (input.fieldReplaceableUnitCode !== undefined) {
    checkUint("fieldReplaceableUnitCode", input.fieldReplaceableUnitCode, 8);
    out[14] = input.fieldReplaceableUnitCode;
  }
  const fp = input.fieldPointer;
  if (fp !== undefined) {
    checkUint("fieldPointer.byte", fp.byte, 16);
    if (fp.bit !== null) checkRange("fieldPointer.bit", fp.bit, 0, 7);
    out[15] = 0x80 | flag(fp.inCdb, 6) | (fp.bit !== null ? 0x08 | fp.bit : 0);
    view.setUint16(16, fp.byte, false);
  }
  return out;
}

/** Sense data as a guest reads it. */
export interface SenseData extends SenseCode {
  readonly responseCode: number;
  readonly format: "fixed" | "descriptor";
  readonly deferred: boolean;
  /** VALID bit: the INFORMATION field means something (fixed format only). */
  readonly valid: boolean;
  readonly filemark: boolean;
  readonly endOfMedium: boolean;
  readonly incorrectLengthIndicator: boolean;
  readonly information: number;
  readonly additionalSenseLength: number;
  readonly commandSpecificInformation: number;
  readonly fieldReplaceableUnitCode: number;
  /** SKSV bit. */
  readonly senseKeySpecificValid: boolean;
  /** The 23 bits of the sense-key-specific field below SKSV. */
  readonly senseKeySpecific: number;
  /** Decoded field pointer when SKSV is set and the key is ILLEGAL REQUEST, else null. */
  readonly fieldPointer: SenseFieldPointer | null;
}

/** Smallest sense buffer this parser reads: up to and including the additional length byte. */
export const MIN_SENSE_DATA_LENGTH = 8;

/**
 * Parses sense data (guest side). Fixed-format data shorter than 18 bytes is
 * zero-extended, as a host may return fewer bytes than the format holds;
 * descriptor-format data yields only key/ASC/ASCQ.
 */
export function parseSenseData(bytes: Uint8Array): SenseData {
  // Fewer than 8 bytes cannot even say which format they are in; a host that
  // sends them (or a sense_info_length of 0 with AUTOSENSE_VALID) is broken.
  if (bytes.length < MIN_SENSE_DATA_LENGTH) {
    throw new ProtocolError("SCSI sense", "length", bytes.length, `is below the ${MIN_SENSE_DATA_LENGTH} bytes of a sense header`);
  }
  const data = copyBytes(bytes, Math.max(bytes.length, FIXED_SENSE_DATA_LENGTH));
  const view = viewOf(data);
  const b0 = data[0] ?? 0;
  const responseCode = b0 & 0x7f;
  // Any other response code (including all zero, "no sense here") is not
  // sense data at all; guessing at its fields would report a made-up error.
  if (responseCode < SENSE_RESPONSE_CODE_FIXED_CURRENT || responseCode > SENSE_RESPONSE_CODE_DESCRIPTOR_DEFERRED) {
    throw new ProtocolError("SCSI sense", "response code", responseCode, "is not 0x70..0x73 (fixed or descriptor format)");
  }
  if (responseCode >= SENSE_RESPONSE_CODE_DESCRIPTOR_CURRENT) {
    const senseKey = (data[1] ?? 0) & 0x0f;
    return {
      responseCode,
      format: "descriptor",
      deferred: responseCode === SENSE_RESPONSE_CODE_DESCRIPTOR_DEFERRED,
      valid: false,
      filemark: false,
      endOfMedium: false,
      incorrectLengthIndicator: false,
      senseKey,
      asc: data[2] ?? 0,
      ascq: data[3] ?? 0,
      information: 0,
      additionalSenseLength: data[7] ?? 0,
      commandSpecificInformation: 0,
      fieldReplaceableUnitCode: 0,
      senseKeySpecificValid: false,
      senseKeySpecific: 0,
      fieldPointer: null,
    };
  }
  const b2 = data[2] ?? 0;
  const senseKey = b2 & 0x0f;
  const b15 = data[15] ?? 0;
  const sksv = bit(b15, 7);
  const fieldPointerValue = view.getUint16(16, false);
  return {
    responseCode,
    format: "fixed",
    deferred: responseCode === SENSE_RESPONSE_CODE_FIXED_DEFERRED,
    valid: bit(b0, 7),
    filemark: bit(b2, 7),
    endOfMedium: bit(b2, 6),
    incorrectLengthIndicator: bit(b2, 5),
    senseKey,
    asc: data[12] ?? 0,
    ascq: data[13] ?? 0,
    information: view.getUint32(3, false),
    additionalSenseLength: data[7] ?? 0,
    commandSpecificInformation: view.getUint32(8, false),
    fieldReplaceableUnitCode: data[14] ?? 0,
    senseKeySpecificValid: sksv,
    senseKeySpecific: ((b15 & 0x7f) << 16) | fieldPointerValue,
    fieldPointer:
      sksv && senseKey === ILLEGAL_REQUEST
        ? { inCdb: bit(b15, 6), byte: fieldPointerValue, bit: bit(b15, 3) ? b15 & 0x07 : null }
        : null,
  };
}
