/**
 * Typed errors of the guest storvsc driver — storvsc-netvsc.md §5.2 (how
 * Linux reads a completion: sense only with CHECK CONDITION and
 * AUTOSENSE_VALID, otherwise the SRB status), §7.6 (sense keys).
 *
 * A command that fails carries everything a reader needs to find the cause:
 * the command (name, opcode, LBA when it has one), the LUN, the SRB and SCSI
 * status bytes, and for sense errors the key/ASC/ASCQ with their T10 names.
 */
import { ProtocolError, VmbusSimError, fmtNum } from "../../../core/index.js";
import {
  ABORTED_COMMAND,
  DATA_PROTECT,
  HARDWARE_ERROR,
  ILLEGAL_REQUEST,
  MEDIUM_ERROR,
  NOT_READY,
  NTSTATUS_NAMES,
  SAI_READ_CAPACITY_16,
  SCSI_STATUS_NAMES,
  SERVICE_ACTION_IN_16,
  UNIT_ATTENTION,
  formatSenseCode,
  formatSrbStatus,
  scsiOpcodeName,
  srbStatusCode,
  type SenseData,
} from "../protocol/index.js";

/** What a failed command was: enough to name it in a message. */
export interface ScsiCommandContext {
  /** "vm1 storvsc relid 14" or similar: which controller. */
  readonly controller: string;
  /** T10 name, e.g. "READ(10)". */
  readonly command: string;
  readonly opcode: number;
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  /** First LBA of the command, when it addresses blocks. */
  readonly lba: bigint | null;
  /** Blocks it addresses, when it addresses blocks. */
  readonly blocks: number | null;
}

/** The T10 name of a CDB's command; SERVICE ACTION IN(16) is named by its action. */
export function scsiCommandName(cdb: Uint8Array): string {
  const opcode = cdb[0] ?? 0;
  if (opcode === SERVICE_ACTION_IN_16 && ((cdb[1] ?? 0) & 0x1f) === SAI_READ_CAPACITY_16) return "READ CAPACITY(16)";
  return scsiOpcodeName(opcode);
}

/** The context of a command addressed to `pathId:targetId:lun`. */
export function commandContext(
  controller: string,
  r: { readonly cdb: Uint8Array; readonly pathId: number; readonly targetId: number; readonly lun: number; readonly lba: bigint | null; readonly blocks: number | null },
): ScsiCommandContext {
  return {
    controller,
    command: scsiCommandName(r.cdb),
    opcode: r.cdb[0] ?? 0,
    pathId: r.pathId,
    targetId: r.targetId,
    lun: r.lun,
    lba: r.lba,
    blocks: r.blocks,
  };
}

function where(c: ScsiCommandContext): string {
  const range = c.lba === null ? "" : ` lba=${fmtNum(c.lba)}${c.blocks === null ? "" : ` blocks=${c.blocks}`}`;
  return `${c.controller} ${c.pathId}:${c.targetId}:${c.lun}: ${c.command}${range}`;
}

function scsiStatusName(s: number): string {
  return SCSI_STATUS_NAMES.get(s) ?? `0x${s.toString(16).padStart(2, "0")}`;
}

function ntStatusName(s: number): string {
  return NTSTATUS_NAMES.get(s >>> 0) ?? `0x${(s >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * The host answered CHECK CONDITION with valid sense data (§5.2). Subclasses
 * name the common sense keys; other keys (HARDWARE ERROR, ABORTED COMMAND…)
 * are this class itself.
 */
export class ScsiSenseError extends VmbusSimError {
  readonly code: string = "SCSI_SENSE";
  readonly senseKey: number;
  readonly asc: number;
  readonly ascq: number;
  readonly lba: bigint | null;
  readonly lun: number;
  readonly command: string;

  constructor(
    readonly context: ScsiCommandContext,
    readonly sense: SenseData,
    readonly srbStatus: number,
    readonly scsiStatus: number,
  ) {
    super(
      `${where(context)}: ${formatSenseCode(sense)} (srb_status=${formatSrbStatus(srbStatus)}, scsi_status=${scsiStatusName(scsiStatus)})`,
    );
    this.senseKey = sense.senseKey;
    this.asc = sense.asc;
    this.ascq = sense.ascq;
    this.lba = context.lba;
    this.lun = context.lun;
    this.command = context.command;
  }
}

/** Sense key MEDIUM ERROR (03): unrecovered read error, write fault… */
export class MediumError extends ScsiSenseError {
  override readonly code = "SCSI_MEDIUM_ERROR";
}
/** Sense key ILLEGAL REQUEST (05): bad opcode, LBA out of range, invalid field… */
export class IllegalRequestError extends ScsiSenseError {
  override readonly code = "SCSI_ILLEGAL_REQUEST";
}
/** Sense key DATA PROTECT (07): write protected. */
export class DataProtectError extends ScsiSenseError {
  override readonly code = "SCSI_DATA_PROTECT";
}
/** Sense key UNIT ATTENTION (06), still reported after the retries sd allows. */
export class UnitAttentionError extends ScsiSenseError {
  override readonly code = "SCSI_UNIT_ATTENTION";
}
/** Sense key NOT READY (02): medium not present, becoming ready… */
export class NotReadyError extends ScsiSenseError {
  override readonly code = "SCSI_NOT_READY";
}

/** The typed error for `sense` (a subclass when the key has one). */
export function senseError(context: ScsiCommandContext, sense: SenseData, srbStatus: number, scsiStatus: number): ScsiSenseError {
  switch (sense.senseKey) {
    case MEDIUM_ERROR:
      return new MediumError(context, sense, srbStatus, scsiStatus);
    case ILLEGAL_REQUEST:
      return new IllegalRequestError(context, sense, srbStatus, scsiStatus);
    case DATA_PROTECT:
      return new DataProtectError(context, sense, srbStatus, scsiStatus);
    case UNIT_ATTENTION:
      return new UnitAttentionError(context, sense, srbStatus, scsiStatus);
    case NOT_READY:
      return new NotReadyError(context, sense, srbStatus, scsiStatus);
    case HARDWARE_ERROR:
    case ABORTED_COMMAND:
    default:
      return new ScsiSenseError(context, sense, srbStatus, scsiStatus);
  }
}

/**
 * The command failed without usable sense data: the SRB status (e.g.
 * INVALID_LUN, ERROR without AUTOSENSE_VALID) or a non-GOOD SCSI status
 * (BUSY, RESERVATION CONFLICT) tells why.
 */
export class SrbStatusError extends VmbusSimError {
  readonly code = "STORVSC_SRB_STATUS";
  /** `SRB_STATUS(srb_status)`: without QUEUE_FROZEN and AUTOSENSE_VALID. */
  readonly srbStatusCode: number;
  readonly lun: number;
  readonly command: string;

  constructor(
    readonly context: ScsiCommandContext,
    readonly srbStatus: number,
    readonly scsiStatus: number,
    /** The NTSTATUS of the vstor_packet (Linux ignores it for EXECUTE_SRB; shown for the reader). */
    readonly ntStatus: number,
    detail = "",
  ) {
    super(
      `${where(context)}: srb_status=${formatSrbStatus(srbStatus)} (0x${srbStatus.toString(16).padStart(2, "0")}), ` +
        `scsi_status=${scsiStatusName(scsiStatus)}, status=${ntStatusName(ntStatus)}${detail ? `; ${detail}` : ""}`,
    );
    this.srbStatusCode = srbStatusCode(srbStatus);
    this.lun = context.lun;
    this.command = context.command;
  }
}

/** The host moved fewer bytes than the command asked for (a residual) on a read or write. */
export class ShortTransferError extends VmbusSimError {
  readonly code = "STORVSC_SHORT_TRANSFER";
  constructor(
    readonly context: ScsiCommandContext,
    readonly expected: number,
    readonly transferred: number,
  ) {
    super(`${where(context)}: data_transfer_length=${transferred} is short of the ${expected} bytes requested`);
  }
}

/** The host did not answer within the request timeout (virtual time). */
export class StorvscTimeoutError extends VmbusSimError {
  readonly code = "STORVSC_TIMEOUT";
  constructor(
    /** The command or handshake step, e.g. "READ(10) lba=8" or "QUERY_PROPERTIES". */
    readonly what: string,
    readonly channel: string,
    readonly timeoutNs: number,
    /** "queued": still waiting for a request id; "sent": in the ring or at the host. */
    readonly phase: "queued" | "sent",
  ) {
    super(
      `${channel}: ${what} got no completion within ${timeoutNs / 1e9} s of virtual time (${phase === "queued" ? "never sent: no request id became free" : "sent; the host did not answer"})`,
    );
  }
}

/** The driver was removed (or its probe failed) while the request was queued or outstanding. */
export class StorvscRemovedError extends VmbusSimError {
  readonly code = "STORVSC_REMOVED";
  constructor(
    readonly what: string,
    readonly controller: string,
    readonly reason: string,
  ) {
    super(`${controller}: ${what} failed: ${reason}`);
  }
}

/** A disk that a rescan dropped (its LUN is gone) refuses further I/O. */
export class DiskGoneError extends VmbusSimError {
  readonly code = "STORVSC_DISK_GONE";
  constructor(
    readonly disk: string,
    readonly what: string,
  ) {
    super(`${disk}: ${what}: the LUN is no longer present (removed by a rescan)`);
  }
}

/**
 * A step of the initialization handshake (§4) failed: the host answered
 * with another operation than COMPLETE_IO, a non-zero status, no acceptable
 * version, or properties the driver cannot work with. The probe fails.
 */
export class VstorHandshakeError extends ProtocolError {
  override readonly code = "STORVSC_HANDSHAKE";
}
