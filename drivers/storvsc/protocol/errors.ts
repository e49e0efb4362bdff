/**
 * The storvsc protocol's own error kind (storvsc-netvsc.md §6, §7.6).
 *
 * A SCSI command the host cannot accept (a malformed CDB, a bad parameter
 * list) is not a transport failure: the host must answer it with CHECK
 * CONDITION and sense data. This error carries exactly what the host needs
 * for that answer — the sense key/ASC/ASCQ and the field pointer — besides
 * the usual field/value/limit. Malformed VSTOR packets and malformed SCSI
 * response data (what a guest reads back) are `ProtocolError`s instead.
 */
import { VmbusSimError, fmtNum } from "../../../core/index.js";
import { type SenseCode, type SenseFieldPointer, formatSenseCode } from "./scsi-sense.js";

export class ScsiCheckConditionError extends VmbusSimError {
  readonly code = "SCSI_CHECK_CONDITION";
  constructor(
    /** The command (or parameter list) being parsed, e.g. "READ(10)" or "UNMAP parameter list". */
    readonly command: string,
    /** The T10 name of the offending field, e.g. "TRANSFER LENGTH". */
    readonly field: string,
    readonly value: number | bigint | string,
    readonly limit: string,
    /** The sense the host should return. */
    readonly sense: SenseCode,
    /** Where the field is, for the sense-key-specific bytes; null when no single field is to blame. */
    readonly fieldPointer: SenseFieldPointer | null,
  ) {
    super(
      `${command}: ${field}=${typeof value === "string" ? value : fmtNum(value)} ${limit} → ${formatSenseCode(sense)}`,
    );
  }
}
