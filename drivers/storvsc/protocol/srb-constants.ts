/**
 * SRB field values (storvsc-netvsc.md §3): SRB status, SCSI (SAM) status,
 * SRB flags, the `data_in` direction, queue tags; and the host's SRB status →
 * NTSTATUS mapping of §5.2.
 */
import {
  STATUS_BUFFER_OVERFLOW,
  STATUS_CANCELLED,
  STATUS_DEVICE_BUSY,
  STATUS_DEVICE_DOES_NOT_EXIST,
  STATUS_DEVICE_NOT_CONNECTED,
  STATUS_INVALID_DEVICE_REQUEST,
  STATUS_IO_DEVICE_ERROR,
  STATUS_IO_TIMEOUT,
  STATUS_SUCCESS,
  STATUS_UNSUCCESSFUL,
} from "./vstor-constants.js";

// ---------------------------------------------------------------------------
// SRB status (low 6 bits) and its two flag bits

export const SRB_STATUS_PENDING = 0x00;
export const SRB_STATUS_SUCCESS = 0x01;
export const SRB_STATUS_ABORTED = 0x02;
export const SRB_STATUS_ABORT_FAILED = 0x03;
export const SRB_STATUS_ERROR = 0x04;
export const SRB_STATUS_BUSY = 0x05;
export const SRB_STATUS_INVALID_REQUEST = 0x06;
export const SRB_STATUS_INVALID_PATH_ID = 0x07;
export const SRB_STATUS_NO_DEVICE = 0x08;
export const SRB_STATUS_TIMEOUT = 0x09;
export const SRB_STATUS_SELECTION_TIMEOUT = 0x0a;
export const SRB_STATUS_COMMAND_TIMEOUT = 0x0b;
export const SRB_STATUS_MESSAGE_REJECTED = 0x0d;
export const SRB_STATUS_BUS_RESET = 0x0e;
export const SRB_STATUS_PARITY_ERROR = 0x0f;
export const SRB_STATUS_REQUEST_SENSE_FAILED = 0x10;
export const SRB_STATUS_NO_HBA = 0x11;
export const SRB_STATUS_DATA_OVERRUN = 0x12;
export const SRB_STATUS_UNEXPECTED_BUS_FREE = 0x13;
export const SRB_STATUS_PHASE_SEQUENCE_FAILURE = 0x14;
export const SRB_STATUS_BAD_SRB_BLOCK_LENGTH = 0x15;
export const SRB_STATUS_REQUEST_FLUSHED = 0x16;
export const SRB_STATUS_INVALID_LUN = 0x20;
export const SRB_STATUS_INVALID_TARGET_ID = 0x21;
export const SRB_STATUS_BAD_FUNCTION = 0x22;
export const SRB_STATUS_ERROR_RECOVERY = 0x23;
export const SRB_STATUS_NOT_POWERED = 0x24;
export const SRB_STATUS_LINK_DOWN = 0x25;
/** Named by Linux only. */
export const SRB_STATUS_INTERNAL_ERROR = 0x30;
export const SRB_STATUS_QUEUE_FROZEN = 0x40;
export const SRB_STATUS_AUTOSENSE_VALID = 0x80;

export const SRB_STATUS_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [SRB_STATUS_PENDING, "PENDING"],
  [SRB_STATUS_SUCCESS, "SUCCESS"],
  [SRB_STATUS_ABORTED, "ABORTED"],
  [SRB_STATUS_ABORT_FAILED, "ABORT_FAILED"],
  [SRB_STATUS_ERROR, "ERROR"],
  [SRB_STATUS_BUSY, "BUSY"],
  [SRB_STATUS_INVALID_REQUEST, "INVALID_REQUEST"],
  [SRB_STATUS_INVALID_PATH_ID, "INVALID_PATH_ID"],
  [SRB_STATUS_NO_DEVICE, "NO_DEVICE"],
  [SRB_STATUS_TIMEOUT, "TIMEOUT"],
  [SRB_STATUS_SELECTION_TIMEOUT, "SELECTION_TIMEOUT"],
  [SRB_STATUS_COMMAND_TIMEOUT, "COMMAND_TIMEOUT"],
  [SRB_STATUS_MESSAGE_REJECTED, "MESSAGE_REJECTED"],
  [SRB_STATUS_BUS_RESET, "BUS_RESET"],
  [SRB_STATUS_PARITY_ERROR, "PARITY_ERROR"],
  [SRB_STATUS_REQUEST_SENSE_FAILED, "REQUEST_SENSE_FAILED"],
  [SRB_STATUS_NO_HBA, "NO_HBA"],
  [SRB_STATUS_DATA_OVERRUN, "DATA_OVERRUN"],
  [SRB_STATUS_UNEXPECTED_BUS_FREE, "UNEXPECTED_BUS_FREE"],
  [SRB_STATUS_PHASE_SEQUENCE_FAILURE, "PHASE_SEQUENCE_FAILURE"],
  [SRB_STATUS_BAD_SRB_BLOCK_LENGTH, "BAD_SRB_BLOCK_LENGTH"],
  [SRB_STATUS_REQUEST_FLUSHED, "REQUEST_FLUSHED"],
  [SRB_STATUS_INVALID_LUN, "INVALID_LUN"],
  [SRB_STATUS_INVALID_TARGET_ID, "INVALID_TARGET_ID"],
  [SRB_STATUS_BAD_FUNCTION, "BAD_FUNCTION"],
  [SRB_STATUS_ERROR_RECOVERY, "ERROR_RECOVERY"],
  [SRB_STATUS_NOT_POWERED, "NOT_POWERED"],
  [SRB_STATUS_LINK_DOWN, "LINK_DOWN"],
  [SRB_STATUS_INTERNAL_ERROR, "INTERNAL_ERROR"],
]);

/** Linux `SRB_STATUS(status)`: the status without QUEUE_FROZEN and AUTOSENSE_VALID. */
export function srbStatusCode(srbStatus: number): number {
  return srbStatus & 0x3f;
}

/** "ERROR|AUTOSENSE_VALID" style rendering. */
export function formatSrbStatus(srbStatus: number): string {
  const code = srbStatusCode(srbStatus);
  const parts = [SRB_STATUS_NAMES.get(code) ?? `0x${code.toString(16).padStart(2, "0")}`];
  if (srbStatus & SRB_STATUS_QUEUE_FROZEN) parts.push("QUEUE_FROZEN");
  if (srbStatus & SRB_STATUS_AUTOSENSE_VALID) parts.push("AUTOSENSE_VALID");
  return parts.join("|");
}

// ---------------------------------------------------------------------------
// SCSI status (SAM status byte)

export const SCSI_STATUS_GOOD = 0x00;
export const SCSI_STATUS_CHECK_CONDITION = 0x02;
export const SCSI_STATUS_CONDITION_MET = 0x04;
export const SCSI_STATUS_BUSY = 0x08;
export const SCSI_STATUS_INTERMEDIATE = 0x10;
export const SCSI_STATUS_INTERMEDIATE_COND_MET = 0x14;
export const SCSI_STATUS_RESERVATION_CONFLICT = 0x18;
export const SCSI_STATUS_COMMAND_TERMINATED = 0x22;
export const SCSI_STATUS_QUEUE_FULL = 0x28;
export const SCSI_STATUS_TASK_ABORTED = 0x40;

export const SCSI_STATUS_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [SCSI_STATUS_GOOD, "GOOD"],
  [SCSI_STATUS_CHECK_CONDITION, "CHECK_CONDITION"],
  [SCSI_STATUS_CONDITION_MET, "CONDITION_MET"],
  [SCSI_STATUS_BUSY, "BUSY"],
  [SCSI_STATUS_INTERMEDIATE, "INTERMEDIATE"],
  [SCSI_STATUS_INTERMEDIATE_COND_MET, "INTERMEDIATE_COND_MET"],
  [SCSI_STATUS_RESERVATION_CONFLICT, "RESERVATION_CONFLICT"],
  [SCSI_STATUS_COMMAND_TERMINATED, "COMMAND_TERMINATED"],
  [SCSI_STATUS_QUEUE_FULL, "QUEUE_FULL"],
  [SCSI_STATUS_TASK_ABORTED, "TASK_ABORTED"],
]);

// ---------------------------------------------------------------------------
// SRB flags (`vmscsi_win8_extension.srb_flags`)

export const SRB_FLAGS_QUEUE_ACTION_ENABLE = 0x00000002;
export const SRB_FLAGS_DISABLE_DISCONNECT = 0x00000004;
export const SRB_FLAGS_DISABLE_SYNCH_TRANSFER = 0x00000008;
export const SRB_FLAGS_BYPASS_FROZEN_QUEUE = 0x00000010;
export const SRB_FLAGS_DISABLE_AUTOSENSE = 0x00000020;
export const SRB_FLAGS_DATA_IN = 0x00000040;
export const SRB_FLAGS_DATA_OUT = 0x00000080;
export const SRB_FLAGS_NO_DATA_TRANSFER = 0x00000000;
export const SRB_FLAGS_UNSPECIFIED_DIRECTION = SRB_FLAGS_DATA_IN | SRB_FLAGS_DATA_OUT;
export const SRB_FLAGS_NO_QUEUE_FREEZE = 0x00000100;
export const SRB_FLAGS_ADAPTER_CACHE_ENABLE = 0x00000200;
export const SRB_FLAGS_FREE_SENSE_BUFFER = 0x00000400;
export const SRB_FLAGS_D3_PROCESSING = 0x00000800;
export const SRB_FLAGS_IS_ACTIVE = 0x00010000;
export const SRB_FLAGS_PORT_DRIVER_RESERVED = 0x0f000000;
export const SRB_FLAGS_CLASS_DRIVER_RESERVED = 0xf0000000;

/** Single-bit flags, for rendering. (Multi-bit masks are shown as the remainder.) */
export const SRB_FLAG_NAMES: readonly (readonly [number, string])[] = [
  [SRB_FLAGS_QUEUE_ACTION_ENABLE, "QUEUE_ACTION_ENABLE"],
  [SRB_FLAGS_DISABLE_DISCONNECT, "DISABLE_DISCONNECT"],
  [SRB_FLAGS_DISABLE_SYNCH_TRANSFER, "DISABLE_SYNCH_TRANSFER"],
  [SRB_FLAGS_BYPASS_FROZEN_QUEUE, "BYPASS_FROZEN_QUEUE"],
  [SRB_FLAGS_DISABLE_AUTOSENSE, "DISABLE_AUTOSENSE"],
  [SRB_FLAGS_DATA_IN, "DATA_IN"],
  [SRB_FLAGS_DATA_OUT, "DATA_OUT"],
  [SRB_FLAGS_NO_QUEUE_FREEZE, "NO_QUEUE_FREEZE"],
  [SRB_FLAGS_ADAPTER_CACHE_ENABLE, "ADAPTER_CACHE_ENABLE"],
  [SRB_FLAGS_FREE_SENSE_BUFFER, "FREE_SENSE_BUFFER"],
  [SRB_FLAGS_D3_PROCESSING, "D3_PROCESSING"],
  [SRB_FLAGS_IS_ACTIVE, "IS_ACTIVE"],
];

/** "DISABLE_SYNCH_TRANSFER|DATA_IN" style rendering; unnamed bits shown as hex. */
export function formatSrbFlags(flags: number): string {
  const parts: string[] = [];
  let rest = flags >>> 0;
  for (const [bitValue, name] of SRB_FLAG_NAMES) {
    if (rest & bitValue) {
      parts.push(name);
      rest = (rest & ~bitValue) >>> 0;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length === 0 ? "NO_DATA_TRANSFER" : parts.join("|");
}

// ---------------------------------------------------------------------------
// `vmscsi_request.data_in`

/** Data flows to the device (guest memory is read). */
export const WRITE_TYPE = 0;
/** Data flows from the device (guest memory is written). */
export const READ_TYPE = 1;
/** No data, or direction unknown (OV writes guest memory for this one too). */
export const UNKNOWN_TYPE = 2;

export const DATA_IN_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [WRITE_TYPE, "WRITE_TYPE"],
  [READ_TYPE, "READ_TYPE"],
  [UNKNOWN_TYPE, "UNKNOWN_TYPE"],
]);

// ---------------------------------------------------------------------------
// Queue tags (Win8 extension)

/** `queue_tag` Linux uses with tagged queuing. */
export const SP_UNTAGGED = 0xff;
/** `queue_action` Linux uses. */
export const SRB_SIMPLE_TAG_REQUEST = 0x20;
/** `time_out_value` Linux puts in every SRB (seconds). */
export const STORVSC_SRB_TIMEOUT_SECONDS = 60;

// ---------------------------------------------------------------------------
// §5.2 SRB status → NTSTATUS (OV)

/** The NTSTATUS an OV-like host puts in `vstor_packet.status` for an SRB completing with `srbStatus`. */
export function ntStatusForSrbStatus(srbStatus: number): number {
  switch (srbStatusCode(srbStatus)) {
    case SRB_STATUS_SUCCESS:
      return STATUS_SUCCESS;
    case SRB_STATUS_BUSY:
      return STATUS_DEVICE_BUSY;
    case SRB_STATUS_INVALID_LUN:
    case SRB_STATUS_INVALID_TARGET_ID:
    case SRB_STATUS_NO_DEVICE:
    case SRB_STATUS_NO_HBA:
      return STATUS_DEVICE_DOES_NOT_EXIST;
    case SRB_STATUS_COMMAND_TIMEOUT:
    case SRB_STATUS_TIMEOUT:
      return STATUS_IO_TIMEOUT;
    case SRB_STATUS_SELECTION_TIMEOUT:
      return STATUS_DEVICE_NOT_CONNECTED;
    case SRB_STATUS_BAD_FUNCTION:
    case SRB_STATUS_BAD_SRB_BLOCK_LENGTH:
      return STATUS_INVALID_DEVICE_REQUEST;
    case SRB_STATUS_DATA_OVERRUN:
      return STATUS_BUFFER_OVERFLOW;
    case SRB_STATUS_REQUEST_FLUSHED:
      return STATUS_UNSUCCESSFUL;
    case SRB_STATUS_ABORTED:
      return STATUS_CANCELLED;
    default:
      return STATUS_IO_DEVICE_ERROR;
  }
}
