/**
 * Human-readable descriptions of VSTOR packets (storvsc-netvsc.md §1–§3),
 * CDBs (§7.1–§7.3) and sense data (§7.6), for the `decode` CLI and trace
 * labels. Field names are the Linux struct field names.
 *
 * These functions never throw: they describe hostile bytes too, and a trace
 * label must not be able to crash a run. Invalid input is shown as such,
 * with the decoder's error message and the raw bytes.
 */
import { VmbusSimError, fmtNum } from "../../../core/index.js";
import { hex, hexBytes } from "./bytes.js";
import { type ScsiCommand, parseCdb, scsiOpcodeName } from "./scsi-cdb.js";
import { formatSenseCode, parseSenseData } from "./scsi-sense.js";
import {
  DATA_IN_NAMES,
  SCSI_STATUS_NAMES,
  SRB_STATUS_AUTOSENSE_VALID,
  formatSrbFlags,
  formatSrbStatus,
} from "./srb-constants.js";
import {
  NTSTATUS_NAMES,
  REQUEST_COMPLETION_FLAG,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN7,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_NAMES,
  VSTOR_PACKET_SIZE_WIN8,
  formatVmstorVersion,
  vmscsiRequestLength,
  vstorPacketSize,
} from "./vstor-constants.js";
import { VSTOR_PACKET_UNION_OFFSET, type VmscsiRequest, type VstorPayload, decodeVstorPacket, srbCdb, srbSenseData } from "./vstor-packet.js";

interface DescNode {
  readonly text: string;
  readonly children: readonly DescNode[];
}

function node(text: string, children: readonly DescNode[] = []): DescNode {
  return { text, children };
}

function renderTree(n: DescNode, depth = 0): string {
  const lines = ["  ".repeat(depth) + n.text];
  for (const c of n.children) lines.push(renderTree(c, depth + 1));
  return lines.join("\n");
}

function renderLine(n: DescNode): string {
  return n.children.length === 0 ? n.text : `${n.text} { ${n.children.map(renderLine).join("; ")} }`;
}

function errorText(e: unknown): string {
  if (e instanceof VmbusSimError) return e.message;
  // Not expected from our decoders; still, a description must not throw.
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function named(value: number, names: ReadonlyMap<number, string>, width = 2): string {
  const name = names.get(value);
  return `${hex(value, width)}${name ? `[${name}]` : ""}`;
}

// ---------------------------------------------------------------------------
// CDB

function cdbFields(cmd: ScsiCommand): string {
  const parts: string[] = [];
  const add = (name: string, value: number | bigint): void => {
    parts.push(`${name}=${fmtNum(value)}`);
  };
  const flags = (pairs: readonly (readonly [string, boolean])[]): void => {
    for (const [name, on] of pairs) if (on) parts.push(name);
  };
  switch (cmd.kind) {
    case "TEST_UNIT_READY":
      break;
    case "REQUEST_SENSE":
      add("allocation_length", cmd.allocationLength);
      flags([["DESC", cmd.desc]]);
      break;
    case "READ":
    case "WRITE":
      add("lba", cmd.lba);
      add("blocks", cmd.blocks);
      flags([
        ["FUA", cmd.fua],
        ["DPO", cmd.dpo],
      ]);
      if (cmd.protect !== 0) add(cmd.kind === "READ" ? "rdprotect" : "wrprotect", cmd.protect);
      if (cmd.group !== 0) add("group", cmd.group);
      break;
    case "READ_CAPACITY_10":
      if (cmd.pmi) add("lba", cmd.lba);
      flags([["PMI", cmd.pmi]]);
      break;
    case "READ_CAPACITY_16":
      add("allocation_length", cmd.allocationLength);
      if (cmd.pmi) add("lba", cmd.lba);
      flags([["PMI", cmd.pmi]]);
      break;
    case "INQUIRY":
      if (cmd.evpd) parts.push(`EVPD page=${hex(cmd.pageCode, 2)}`);
      add("allocation_length", cmd.allocationLength);
      break;
    case "REPORT_LUNS":
      add("select_report", cmd.selectReport);
      add("allocation_length", cmd.allocationLength);
      break;
    case "MODE_SENSE":
      parts.push(`page=${hex(cmd.pageCode, 2)}`);
      if (cmd.subpageCode !== 0) parts.push(`subpage=${hex(cmd.subpageCode, 2)}`);
      add("pc", cmd.pageControl);
      add("allocation_length", cmd.allocationLength);
      flags([
        ["DBD", cmd.dbd],
        ["LLBAA", cmd.llbaa],
      ]);
      break;
    case "SYNCHRONIZE_CACHE":
      add("lba", cmd.lba);
      add("blocks", cmd.blocks);
      flags([["IMMED", cmd.immed]]);
      break;
    case "UNMAP":
      add("parameter_list_length", cmd.parameterListLength);
      flags([["ANCHOR", cmd.anchor]]);
      break;
    case "WRITE_SAME":
      add("lba", cmd.lba);
      add("blocks", cmd.blocks);
      flags([
        ["UNMAP", cmd.unmap],
        ["ANCHOR", cmd.anchor],
        ["NDOB", cmd.ndob],
        ["PBDATA", cmd.pbdata],
        ["LBDATA", cmd.lbdata],
      ]);
      if (cmd.wrprotect !== 0) add("wrprotect", cmd.wrprotect);
      break;
    case "START_STOP_UNIT":
      parts.push(cmd.start ? "START" : "STOP");
      flags([
        ["IMMED", cmd.immed],
        ["LOEJ", cmd.loej],
        ["NO_FLUSH", cmd.noFlush],
      ]);
      if (cmd.powerCondition !== 0) add("power_condition", cmd.powerCondition);
      break;
  }
  if (cmd.control !== 0) parts.push(`control=${hex(cmd.control, 2)}`);
  return parts.join(" ");
}

function cdbName(cmd: ScsiCommand, opcode: number): string {
  if (cmd.kind === "READ_CAPACITY_16") return "READ CAPACITY(16)";
  return scsiOpcodeName(opcode);
}

/** One line: "READ(16) lba=4886718345 (0x123456789) blocks=8 FUA", or the bytes and why they are invalid. */
export function describeCdb(bytes: Uint8Array): string {
  if (bytes.length === 0) return "CDB (empty)";
  const opcode = bytes[0] ?? 0;
  try {
    const cmd = parseCdb(bytes);
    const fields = cdbFields(cmd);
    return fields.length > 0 ? `${cdbName(cmd, opcode)} ${fields}` : cdbName(cmd, opcode);
  } catch (e) {
    return `${scsiOpcodeName(opcode)} [${hexBytes(bytes)}] (invalid: ${errorText(e)})`;
  }
}

/** One line: "ILLEGAL REQUEST 05/24/00 INVALID FIELD IN CDB (fixed, field pointer CDB byte 1 bit 0)". */
export function describeSenseData(bytes: Uint8Array): string {
  try {
    const s = parseSenseData(bytes);
    const extras: string[] = [s.format + (s.deferred ? " deferred" : "")];
    if (s.valid) extras.push(`information=${fmtNum(s.information)}`);
    if (s.fieldPointer !== null) {
      const fp = s.fieldPointer;
      extras.push(`field pointer ${fp.inCdb ? "CDB" : "parameter"} byte ${fp.byte}${fp.bit !== null ? ` bit ${fp.bit}` : ""}`);
    }
    return `${formatSenseCode(s)} (${extras.join(", ")})`;
  } catch (e) {
    return `sense [${hexBytes(bytes)}] (invalid: ${errorText(e)})`;
  }
}

// ---------------------------------------------------------------------------
// VSTOR packet

function srbNode(srb: VmscsiRequest, isRequest: boolean): DescNode {
  const children: DescNode[] = [];
  if (isRequest) {
    children.push(node(`cdb: ${describeCdb(srbCdb(srb))}`));
  } else if ((srb.srbStatus & SRB_STATUS_AUTOSENSE_VALID) !== 0 && srb.senseInfoLength > 0) {
    children.push(node(`sense_data: ${describeSenseData(srbSenseData(srb))}`));
  }
  const ext = srb.win8Extension;
  if (ext !== null) {
    children.push(
      node(
        `win8_extension reserve=${ext.reserve} queue_tag=${hex(ext.queueTag, 2)} queue_action=${hex(ext.queueAction, 2)} ` +
          `srb_flags=${hex(ext.srbFlags)}[${formatSrbFlags(ext.srbFlags)}] time_out_value=${ext.timeOutValue} queue_sort_key=${ext.queueSortKey}`,
      ),
    );
  }
  return node(
    `vmscsi_request length=${fmtNum(srb.length)} srb_status=${hex(srb.srbStatus, 2)}[${formatSrbStatus(srb.srbStatus)}] ` +
      `scsi_status=${named(srb.scsiStatus, SCSI_STATUS_NAMES)} port_number=${srb.portNumber} path_id=${srb.pathId} ` +
      `target_id=${srb.targetId} lun=${srb.lun} cdb_length=${srb.cdbLength} sense_info_length=${srb.senseInfoLength} ` +
      `data_in=${srb.dataIn}${DATA_IN_NAMES.has(srb.dataIn) ? `[${DATA_IN_NAMES.get(srb.dataIn)}]` : ""} reserved=${srb.reserved} ` +
      `data_transfer_length=${fmtNum(srb.dataTransferLength)}`,
    children,
  );
}

function payloadNodes(payload: VstorPayload, operation: number): DescNode[] {
  switch (payload.kind) {
    case "srb":
      return [srbNode(payload.srb, operation === VSTOR_OPERATION_EXECUTE_SRB)];
    case "version":
      return [
        node(
          `vmstorage_protocol_version major_minor=${hex(payload.version.majorMinor, 4)}[${formatVmstorVersion(payload.version.majorMinor)}] revision=${payload.version.revision}`,
        ),
      ];
    case "properties": {
      const p = payload.properties;
      return [
        node(
          `vmstorage_channel_properties max_channel_cnt=${p.maxChannelCount} flags=${hex(p.flags)}` +
            `${p.flags & 1 ? "[SUPPORTS_MULTI_CHANNEL]" : ""} max_transfer_bytes=${fmtNum(p.maxTransferBytes)}`,
        ),
      ];
    }
    case "sub-channels":
      return [node(`sub_channel_count=${payload.subChannelCount}`)];
    case "fc-wwn": {
      const w = payload.wwn;
      return [
        node(
          `hv_fc_wwn_packet primary_active=${w.primaryActive} primary_port_wwn=${hexBytes(w.primaryPortWwn)} ` +
            `primary_node_wwn=${hexBytes(w.primaryNodeWwn)} secondary_port_wwn=${hexBytes(w.secondaryPortWwn)} ` +
            `secondary_node_wwn=${hexBytes(w.secondaryNodeWwn)}`,
        ),
      ];
    }
    case "notification": {
      const n = payload.notification;
      return [node(`notification lun=${n.lun} target=${n.target} path=${n.path} flags=${hex(n.flags, 2)}`)];
    }
    case "raw":
      return payload.bytes.some((b) => b !== 0) ? [node(`union [${hexBytes(payload.bytes)}]`)] : [];
    case "none":
      return [];
  }
}

export interface DescribeVstorOptions {
  /** Negotiated version; by default inferred from the length (≥ 64 → 6.2, else 4.2). */
  readonly protocolVersion?: number;
  /** For COMPLETE_IO: the operation it completes. By default an SRB is assumed when the union starts with the SRB length. */
  readonly completes?: number;
  /** "tree" (default, one field group per line) or "line". */
  readonly style?: "tree" | "line";
}

/** Describes a `vstor_packet`, naming every field. */
export function describeVstorPacket(bytes: Uint8Array, options: DescribeVstorOptions = {}): string {
  const version =
    options.protocolVersion ?? (bytes.length >= VSTOR_PACKET_SIZE_WIN8 ? VMSTOR_PROTO_VERSION_WIN10 : VMSTOR_PROTO_VERSION_WIN7);
  const render = options.style === "line" ? renderLine : renderTree;
  let completes = options.completes;
  const op = bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) : -1;
  if (completes === undefined && op === VSTOR_OPERATION_COMPLETE_IO && bytes.length >= VSTOR_PACKET_UNION_OFFSET + 2) {
    // Heuristic for traces: an SRB completion starts its union with the SRB length.
    const len = (bytes[VSTOR_PACKET_UNION_OFFSET] ?? 0) | ((bytes[VSTOR_PACKET_UNION_OFFSET + 1] ?? 0) << 8);
    if (len === vmscsiRequestLength(version)) completes = VSTOR_OPERATION_EXECUTE_SRB;
  }
  try {
    const p = decodeVstorPacket(bytes, { protocolVersion: version, ...(completes !== undefined ? { completes } : {}) });
    const flagsText = p.flags === REQUEST_COMPLETION_FLAG ? "[REQUEST_COMPLETION_FLAG]" : "";
    return render(
      node(
        `vstor_packet ${VSTOR_OPERATION_NAMES.get(p.operation) ?? "?"}(${p.operation}) flags=${hex(p.flags)}${flagsText} ` +
          `status=${named(p.status, NTSTATUS_NAMES, 8)} size=${vstorPacketSize(version)} protocol=${formatVmstorVersion(version)}`,
        payloadNodes(p.payload, p.operation),
      ),
    );
  } catch (e) {
    const shown = bytes.subarray(0, VSTOR_PACKET_SIZE_WIN8);
    return render(
      node(`vstor_packet (invalid: ${errorText(e)})`, [
        node(`bytes[${bytes.length}] ${hexBytes(shown)}${bytes.length > shown.length ? " …" : ""}`),
      ]),
    );
  }
}
