/**
 * The `vstor_packet` and its union members (storvsc-netvsc.md §1, §3, §3.1,
 * §5.1–§5.2): byte layouts, encoders and validating decoders.
 *
 * Offsets in every `*_LAYOUT` table are ABSOLUTE within the packet, as the
 * spec's tables give them (union members start at 12). A packet is 64 bytes
 * from protocol 5.1 (Win8) on and 48 bytes before: the pre-Win8 SRB lacks the
 * 16-byte `vmscsi_win8_extension` (`vmscsi_size_delta`), and announces an
 * 18-byte instead of a 20-byte sense buffer. All fields are little-endian.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkUint, copyBytes, viewOf } from "./bytes.js";
import {
  READ_TYPE,
  SCSI_STATUS_GOOD,
  SP_UNTAGGED,
  SRB_FLAGS_DATA_IN,
  SRB_FLAGS_DATA_OUT,
  SRB_FLAGS_DISABLE_SYNCH_TRANSFER,
  SRB_FLAGS_NO_QUEUE_FREEZE,
  SRB_FLAGS_QUEUE_ACTION_ENABLE,
  SRB_SIMPLE_TAG_REQUEST,
  SRB_STATUS_AUTOSENSE_VALID,
  STORVSC_SRB_TIMEOUT_SECONDS,
  UNKNOWN_TYPE,
  WRITE_TYPE,
  ntStatusForSrbStatus,
} from "./srb-constants.js";
import {
  REQUEST_COMPLETION_FLAG,
  STATUS_SUCCESS,
  STORVSC_MAX_BUF_LEN_WITH_PADDING,
  STORVSC_MAX_CMD_LEN,
  VSTOR_GUEST_TO_HOST_OPERATIONS,
  VSTOR_HOST_TO_GUEST_OPERATIONS,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_EVENT_NOTIFICATION,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_NAMES,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_PACKET_SIZE_WIN8,
  type VstorOperation,
  formatVmstorVersion,
  isVstorOperation,
  isWin8OrLater,
  senseBufferSize,
  vmscsiRequestLength,
  vstorPacketSize,
} from "./vstor-constants.js";

/** One field of a byte layout: absolute offset and size in bytes. */
export interface FieldSpec {
  readonly offset: number;
  readonly size: number;
}

export type Layout = Readonly<Record<string, FieldSpec>>;

/** `struct vstor_packet` (§1). */
export const VSTOR_PACKET_LAYOUT = {
  operation: { offset: 0, size: 4 },
  flags: { offset: 4, size: 4 },
  status: { offset: 8, size: 4 },
  /** vm_srb / storage_channel_properties / version / sub_channel_count / wwn_packet / buffer[0x34]. */
  union: { offset: 12, size: 0x34 },
} as const satisfies Layout;

/** Where the union (and so every union member) starts. */
export const VSTOR_PACKET_UNION_OFFSET = 12;
/** The packet header that precedes the union. */
export const VSTOR_PACKET_HEADER_SIZE = 12;

/** `struct vmscsi_request` (§3), without the Win8 extension. Absolute offsets. */
export const VMSCSI_REQUEST_LAYOUT = {
  length: { offset: 12, size: 2 },
  srb_status: { offset: 14, size: 1 },
  scsi_status: { offset: 15, size: 1 },
  port_number: { offset: 16, size: 1 },
  path_id: { offset: 17, size: 1 },
  target_id: { offset: 18, size: 1 },
  lun: { offset: 19, size: 1 },
  cdb_length: { offset: 20, size: 1 },
  sense_info_length: { offset: 21, size: 1 },
  data_in: { offset: 22, size: 1 },
  reserved: { offset: 23, size: 1 },
  data_transfer_length: { offset: 24, size: 4 },
  /** cdb[16] on a request, sense_data[20] on a completion. */
  cdb_sense: { offset: 28, size: STORVSC_MAX_BUF_LEN_WITH_PADDING },
} as const satisfies Layout;

/** `struct vmscsi_win8_extension` (§3), present from protocol 5.1 on. Absolute offsets. */
export const VMSCSI_WIN8_EXTENSION_LAYOUT = {
  reserve: { offset: 48, size: 2 },
  queue_tag: { offset: 50, size: 1 },
  queue_action: { offset: 51, size: 1 },
  srb_flags: { offset: 52, size: 4 },
  time_out_value: { offset: 56, size: 4 },
  queue_sort_key: { offset: 60, size: 4 },
} as const satisfies Layout;

/** `struct vmstorage_channel_properties` (§3.1), 24 bytes. Absolute offsets. */
export const VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT = {
  reserved: { offset: 12, size: 4 },
  max_channel_cnt: { offset: 16, size: 2 },
  reserved1: { offset: 18, size: 2 },
  flags: { offset: 20, size: 4 },
  max_transfer_bytes: { offset: 24, size: 4 },
  reserved2: { offset: 28, size: 8 },
} as const satisfies Layout;
export const VMSTORAGE_CHANNEL_PROPERTIES_SIZE = 24;

/** `struct vmstorage_protocol_version` (§3.1). Absolute offsets. */
export const VMSTORAGE_PROTOCOL_VERSION_LAYOUT = {
  major_minor: { offset: 12, size: 2 },
  revision: { offset: 14, size: 2 },
} as const satisfies Layout;

/** The `sub_channel_count` union member of CREATE_SUB_CHANNELS (§3.1). */
export const VSTOR_SUB_CHANNEL_COUNT_LAYOUT = {
  sub_channel_count: { offset: 12, size: 2 },
} as const satisfies Layout;

/** `struct hv_fc_wwn_packet` (§3.1), 36 bytes. Absolute offsets. */
export const HV_FC_WWN_PACKET_LAYOUT = {
  primary_active: { offset: 12, size: 1 },
  reserved1: { offset: 13, size: 3 },
  primary_port_wwn: { offset: 16, size: 8 },
  primary_node_wwn: { offset: 24, size: 8 },
  secondary_port_wwn: { offset: 32, size: 8 },
  secondary_node_wwn: { offset: 40, size: 8 },
} as const satisfies Layout;
export const HV_FC_WWN_PACKET_SIZE = 36;

/**
 * OpenVMM `NotificationPacket` {u8 lun, target, path, flags}, carried by
 * EVENT_NOTIFICATION (OV only). The offsets assume the fields sit at the
 * start of the union in declaration order, like every other member.
 */
export const VSTOR_NOTIFICATION_PACKET_LAYOUT = {
  lun: { offset: 12, size: 1 },
  target: { offset: 13, size: 1 },
  path: { offset: 14, size: 1 },
  flags: { offset: 15, size: 1 },
} as const satisfies Layout;

/** OpenVMM `ClientProperties` {u32 flags}; no operation in the spec carries it. */
export const VSTOR_CLIENT_PROPERTIES_LAYOUT = {
  flags: { offset: 12, size: 4 },
} as const satisfies Layout;

// ---------------------------------------------------------------------------
// Types

export interface VmscsiWin8Extension {
  readonly reserve: number;
  readonly queueTag: number;
  readonly queueAction: number;
  readonly srbFlags: number;
  readonly timeOutValue: number;
  readonly queueSortKey: number;
}

export interface VmscsiRequest {
  readonly length: number;
  readonly srbStatus: number;
  readonly scsiStatus: number;
  readonly portNumber: number;
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  readonly cdbLength: number;
  readonly senseInfoLength: number;
  readonly dataIn: number;
  /** OV calls it `properties`. */
  readonly reserved: number;
  readonly dataTransferLength: number;
  /** The 20-byte cdb/sense_data union; see `srbCdb` and `srbSenseData`. */
  readonly cdbOrSense: Uint8Array;
  /** Present exactly when the protocol is 5.1 (Win8) or later. */
  readonly win8Extension: VmscsiWin8Extension | null;
}

export interface VmstorageChannelProperties {
  /** Number of sub-channels the host allows (OV `maximum_sub_channel_count`). */
  readonly maxChannelCount: number;
  /** STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL etc. */
  readonly flags: number;
  readonly maxTransferBytes: number;
}

export interface VmstorageProtocolVersion {
  /** (major << 8) | minor. */
  readonly majorMinor: number;
  readonly revision: number;
}

export interface HvFcWwnPacket {
  readonly primaryActive: number;
  readonly primaryPortWwn: Uint8Array;
  readonly primaryNodeWwn: Uint8Array;
  readonly secondaryPortWwn: Uint8Array;
  readonly secondaryNodeWwn: Uint8Array;
}

export interface VstorNotificationPacket {
  readonly lun: number;
  readonly target: number;
  readonly path: number;
  readonly flags: number;
}

/** The union, discriminated by what the operation (or the completed request) carries. */
export type VstorPayload =
  | { readonly kind: "srb"; readonly srb: VmscsiRequest }
  | { readonly kind: "version"; readonly version: VmstorageProtocolVersion }
  | { readonly kind: "properties"; readonly properties: VmstorageChannelProperties }
  | { readonly kind: "sub-channels"; readonly subChannelCount: number }
  | { readonly kind: "fc-wwn"; readonly wwn: HvFcWwnPacket }
  | { readonly kind: "notification"; readonly notification: VstorNotificationPacket }
  /** The union is not used by this operation (encoded as zeros, ignored on decode). */
  | { readonly kind: "none" }
  /** Union bytes whose meaning the decoder was not told (COMPLETE_IO without `completes`). */
  | { readonly kind: "raw"; readonly bytes: Uint8Array };

export type VstorPayloadKind = VstorPayload["kind"];

export interface VstorPacket {
  /** A VSTOR_OPERATION_*; decoded packets always carry a known one, encoders accept any u32. */
  readonly operation: number;
  readonly flags: number;
  /** NTSTATUS. */
  readonly status: number;
  readonly payload: VstorPayload;
}

// ---------------------------------------------------------------------------
// Which union member an operation carries

/**
 * The union member of a packet with `operation`. A COMPLETE_IO carries the
 * member of the request it completes; without that knowledge it is "raw".
 */
export function vstorPayloadKind(operation: number, completes?: number): VstorPayloadKind {
  switch (operation) {
    case VSTOR_OPERATION_EXECUTE_SRB:
      return "srb";
    case VSTOR_OPERATION_QUERY_PROTOCOL_VERSION:
      return "version";
    case VSTOR_OPERATION_QUERY_PROPERTIES:
      return "properties";
    case VSTOR_OPERATION_CREATE_SUB_CHANNELS:
      return "sub-channels";
    case VSTOR_OPERATION_FCHBA_DATA:
      return "fc-wwn";
    case VSTOR_OPERATION_EVENT_NOTIFICATION:
      return "notification";
    case VSTOR_OPERATION_COMPLETE_IO:
      if (completes === undefined) return "raw";
      // A CREATE_SUB_CHANNELS completion carries nothing the guest reads.
      if (completes === VSTOR_OPERATION_CREATE_SUB_CHANNELS) return "none";
      return completes === VSTOR_OPERATION_COMPLETE_IO ? "raw" : vstorPayloadKind(completes);
    default:
      return "none";
  }
}

// ---------------------------------------------------------------------------
// Encoding

function checkWin8Extension(ext: VmscsiWin8Extension): void {
  checkUint("win8Extension.reserve", ext.reserve, 16);
  checkUint("win8Extension.queueTag", ext.queueTag, 8);
  checkUint("win8Extension.queueAction", ext.queueAction, 8);
  checkUint("win8Extension.srbFlags", ext.srbFlags, 32);
  checkUint("win8Extension.timeOutValue", ext.timeOutValue, 32);
  checkUint("win8Extension.queueSortKey", ext.queueSortKey, 32);
}

/**
 * Writes an SRB into the union of `packet` (a buffer of at least
 * `vstorPacketSize(protocolVersion)` bytes, offsets absolute).
 */
export function encodeVmscsiRequestInto(packet: Uint8Array, srb: VmscsiRequest, protocolVersion: number): void {
  const size = vstorPacketSize(protocolVersion);
  if (packet.length < size) {
    throw new InvalidArgumentError("packet.length", packet.length, `must hold the ${size}-byte vstor_packet`);
  }
  checkUint("srb.length", srb.length, 16);
  checkUint("srb.srbStatus", srb.srbStatus, 8);
  checkUint("srb.scsiStatus", srb.scsiStatus, 8);
  checkUint("srb.portNumber", srb.portNumber, 8);
  checkUint("srb.pathId", srb.pathId, 8);
  checkUint("srb.targetId", srb.targetId, 8);
  checkUint("srb.lun", srb.lun, 8);
  checkUint("srb.cdbLength", srb.cdbLength, 8);
  checkUint("srb.senseInfoLength", srb.senseInfoLength, 8);
  checkUint("srb.dataIn", srb.dataIn, 8);
  checkUint("srb.reserved", srb.reserved, 8);
  checkUint("srb.dataTransferLength", srb.dataTransferLength, 32);
  if (srb.cdbOrSense.length > STORVSC_MAX_BUF_LEN_WITH_PADDING) {
    throw new InvalidArgumentError("srb.cdbOrSense.length", srb.cdbOrSense.length, `must be at most ${STORVSC_MAX_BUF_LEN_WITH_PADDING}`);
  }
  const win8 = isWin8OrLater(protocolVersion);
  if (!win8 && srb.win8Extension !== null) {
    throw new InvalidArgumentError("srb.win8Extension", "present", `must be null for protocol ${formatVmstorVersion(protocolVersion)}`);
  }
  if (srb.win8Extension !== null) checkWin8Extension(srb.win8Extension);

  const v = viewOf(packet);
  const L = VMSCSI_REQUEST_LAYOUT;
  v.setUint16(L.length.offset, srb.length, true);
  packet[L.srb_status.offset] = srb.srbStatus;
  packet[L.scsi_status.offset] = srb.scsiStatus;
  packet[L.port_number.offset] = srb.portNumber;
  packet[L.path_id.offset] = srb.pathId;
  packet[L.target_id.offset] = srb.targetId;
  packet[L.lun.offset] = srb.lun;
  packet[L.cdb_length.offset] = srb.cdbLength;
  packet[L.sense_info_length.offset] = srb.senseInfoLength;
  packet[L.data_in.offset] = srb.dataIn;
  packet[L.reserved.offset] = srb.reserved;
  v.setUint32(L.data_transfer_length.offset, srb.dataTransferLength, true);
  packet.fill(0, L.cdb_sense.offset, L.cdb_sense.offset + L.cdb_sense.size);
  packet.set(srb.cdbOrSense, L.cdb_sense.offset);
  if (win8) {
    const E = VMSCSI_WIN8_EXTENSION_LAYOUT;
    const ext: VmscsiWin8Extension = srb.win8Extension ?? ZERO_WIN8_EXTENSION;
    v.setUint16(E.reserve.offset, ext.reserve, true);
    packet[E.queue_tag.offset] = ext.queueTag;
    packet[E.queue_action.offset] = ext.queueAction;
    v.setUint32(E.srb_flags.offset, ext.srbFlags, true);
    v.setUint32(E.time_out_value.offset, ext.timeOutValue, true);
    v.setUint32(E.queue_sort_key.offset, ext.queueSortKey, true);
  }
}

const ZERO_WIN8_EXTENSION: VmscsiWin8Extension = Object.freeze({
  reserve: 0,
  queueTag: 0,
  queueAction: 0,
  srbFlags: 0,
  timeOutValue: 0,
  queueSortKey: 0,
});

function checkWwn(field: string, wwn: Uint8Array): void {
  if (wwn.length !== 8) throw new InvalidArgumentError(field, wwn.length, "must be 8 bytes");
}

function encodePayload(packet: Uint8Array, payload: VstorPayload, protocolVersion: number, unionSize: number): void {
  const v = viewOf(packet);
  switch (payload.kind) {
    case "srb":
      encodeVmscsiRequestInto(packet, payload.srb, protocolVersion);
      return;
    case "version": {
      const L = VMSTORAGE_PROTOCOL_VERSION_LAYOUT;
      checkUint("version.majorMinor", payload.version.majorMinor, 16);
      checkUint("version.revision", payload.version.revision, 16);
      v.setUint16(L.major_minor.offset, payload.version.majorMinor, true);
      v.setUint16(L.revision.offset, payload.version.revision, true);
      return;
    }
    case "properties": {
      const L = VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT;
      const p = payload.properties;
      checkUint("properties.maxChannelCount", p.maxChannelCount, 16);
      checkUint("properties.flags", p.flags, 32);
      checkUint("properties.maxTransferBytes", p.maxTransferBytes, 32);
      v.setUint16(L.max_channel_cnt.offset, p.maxChannelCount, true);
      v.setUint32(L.flags.offset, p.flags, true);
      v.setUint32(L.max_transfer_bytes.offset, p.maxTransferBytes, true);
      return;
    }
    case "sub-channels":
      checkUint("subChannelCount", payload.subChannelCount, 16);
      v.setUint16(VSTOR_SUB_CHANNEL_COUNT_LAYOUT.sub_channel_count.offset, payload.subChannelCount, true);
      return;
    case "fc-wwn": {
      const L = HV_FC_WWN_PACKET_LAYOUT;
      const w = payload.wwn;
      checkUint("wwn.primaryActive", w.primaryActive, 8);
      checkWwn("wwn.primaryPortWwn", w.primaryPortWwn);
      checkWwn("wwn.primaryNodeWwn", w.primaryNodeWwn);
      checkWwn("wwn.secondaryPortWwn", w.secondaryPortWwn);
      checkWwn("wwn.secondaryNodeWwn", w.secondaryNodeWwn);
      packet[L.primary_active.offset] = w.primaryActive;
      packet.set(w.primaryPortWwn, L.primary_port_wwn.offset);
      packet.set(w.primaryNodeWwn, L.primary_node_wwn.offset);
      packet.set(w.secondaryPortWwn, L.secondary_port_wwn.offset);
      packet.set(w.secondaryNodeWwn, L.secondary_node_wwn.offset);
      return;
    }
    case "notification": {
      const L = VSTOR_NOTIFICATION_PACKET_LAYOUT;
      const n = payload.notification;
      checkUint("notification.lun", n.lun, 8);
      checkUint("notification.target", n.target, 8);
      checkUint("notification.path", n.path, 8);
      checkUint("notification.flags", n.flags, 8);
      packet[L.lun.offset] = n.lun;
      packet[L.target.offset] = n.target;
      packet[L.path.offset] = n.path;
      packet[L.flags.offset] = n.flags;
      return;
    }
    case "none":
      return;
    case "raw":
      if (payload.bytes.length > unionSize) {
        throw new InvalidArgumentError("payload.bytes.length", payload.bytes.length, `must be at most the ${unionSize}-byte union of protocol ${formatVmstorVersion(protocolVersion)}`);
      }
      packet.set(payload.bytes, VSTOR_PACKET_UNION_OFFSET);
      return;
  }
}

/**
 * Encodes `packet` into `target` at `offset` in the size of `protocolVersion`
 * (64 or 48 bytes), zero-filling unused bytes; returns the bytes written.
 * Any representable value is written, valid or not (see bytes.ts).
 */
export function encodeVstorPacketInto(
  packet: VstorPacket,
  protocolVersion: number,
  target: Uint8Array,
  offset = 0,
): number {
  const size = vstorPacketSize(protocolVersion);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > target.length) {
    throw new InvalidArgumentError("offset", offset, `must leave room for ${size} bytes in a ${target.length}-byte buffer`);
  }
  checkUint("operation", packet.operation, 32);
  checkUint("flags", packet.flags, 32);
  checkUint("status", packet.status, 32);
  const bytes = target.subarray(offset, offset + size);
  bytes.fill(0);
  const v = viewOf(bytes);
  v.setUint32(VSTOR_PACKET_LAYOUT.operation.offset, packet.operation, true);
  v.setUint32(VSTOR_PACKET_LAYOUT.flags.offset, packet.flags, true);
  v.setUint32(VSTOR_PACKET_LAYOUT.status.offset, packet.status, true);
  encodePayload(bytes, packet.payload, protocolVersion, size - VSTOR_PACKET_UNION_OFFSET);
  return size;
}

/** Encodes `packet` into a new buffer of `vstorPacketSize(protocolVersion)` bytes. */
export function encodeVstorPacket(packet: VstorPacket, protocolVersion: number): Uint8Array {
  const out = new Uint8Array(vstorPacketSize(protocolVersion));
  encodeVstorPacketInto(packet, protocolVersion, out, 0);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

export interface VstorDecodeOptions {
  /**
   * The negotiated protocol version; it fixes the expected packet size. Before
   * a version is agreed, pass VMSTOR_PROTO_VERSION_WIN6 (the smallest packet).
   */
  readonly protocolVersion: number;
  /** Who sent the packet; when given, an operation only the other side sends is rejected. */
  readonly sender?: "guest" | "host";
  /** For COMPLETE_IO: the operation of the request it completes (selects the union member). */
  readonly completes?: number;
  /** Host side: the max_transfer_bytes it announced; an SRB asking for more is rejected. */
  readonly maxTransferBytes?: number;
  /** Guest side, SRB completion: the request's data_transfer_length, which the host may not exceed. */
  readonly requestDataTransferLength?: number;
}

export interface VmscsiRequestDecodeOptions {
  readonly protocolVersion: number;
  readonly maxTransferBytes?: number;
  readonly requestDataTransferLength?: number;
}

const P = "VSTOR";

/** Throws unless `packet` is at least the negotiated size; returns a private zero-padded copy. */
function copyPacket(bytes: Uint8Array, protocolVersion: number): Uint8Array {
  const size = vstorPacketSize(protocolVersion);
  // A short packet would make us read fields the peer never sent (as zeros
  // or, worse, bytes of the next ring entry); current Linux drops such
  // packets too (§5.2).
  if (bytes.length < size) {
    throw new ProtocolError(
      P,
      "packet length",
      bytes.length,
      `is shorter than the ${size}-byte vstor_packet of protocol ${formatVmstorVersion(protocolVersion)}`,
    );
  }
  return copyBytes(bytes, VSTOR_PACKET_SIZE_WIN8).fill(0, size);
}

/** Reads the SRB of a private packet copy and validates it. */
function readVmscsiRequest(copy: Uint8Array, options: VmscsiRequestDecodeOptions): VmscsiRequest {
  const v = viewOf(copy);
  const L = VMSCSI_REQUEST_LAYOUT;
  const u8 = (f: FieldSpec): number => copy[f.offset] ?? 0;
  const cdbLength = u8(L.cdb_length);
  // The CDB lives in a 16-byte array; a longer cdb_length would make the
  // host read sense/extension bytes as command bytes.
  if (cdbLength > STORVSC_MAX_CMD_LEN) {
    throw new ProtocolError(P, "vmscsi_request.cdb_length", cdbLength, `exceeds STORVSC_MAX_CMD_LEN (${STORVSC_MAX_CMD_LEN})`);
  }
  const senseInfoLength = u8(L.sense_info_length);
  const senseLimit = senseBufferSize(options.protocolVersion);
  // A sense length past the buffer would make the reader copy bytes that are
  // not sense data (the Win8 extension or beyond the packet).
  if (senseInfoLength > senseLimit) {
    throw new ProtocolError(
      P,
      "vmscsi_request.sense_info_length",
      senseInfoLength,
      `exceeds the ${senseLimit}-byte sense buffer of protocol ${formatVmstorVersion(options.protocolVersion)}`,
    );
  }
  const dataIn = u8(L.data_in);
  // The direction decides whether the host writes or reads guest memory;
  // an unknown value must not silently pick one.
  if (dataIn !== WRITE_TYPE && dataIn !== READ_TYPE && dataIn !== UNKNOWN_TYPE) {
    throw new ProtocolError(P, "vmscsi_request.data_in", dataIn, "is not WRITE_TYPE (0), READ_TYPE (1) or UNKNOWN_TYPE (2)");
  }
  const dataTransferLength = v.getUint32(L.data_transfer_length.offset, true);
  // A guest asking for more than the host announced would make the host
  // allocate or map more than it agreed to serve.
  if (options.maxTransferBytes !== undefined && dataTransferLength > options.maxTransferBytes) {
    throw new ProtocolError(
      P,
      "vmscsi_request.data_transfer_length",
      dataTransferLength,
      `exceeds max_transfer_bytes ${options.maxTransferBytes}`,
    );
  }
  // A host claiming to have moved more bytes than the guest's buffer holds
  // would make the guest account (or copy) past its buffer.
  if (options.requestDataTransferLength !== undefined && dataTransferLength > options.requestDataTransferLength) {
    throw new ProtocolError(
      P,
      "vmscsi_request.data_transfer_length",
      dataTransferLength,
      `exceeds the request's data_transfer_length ${options.requestDataTransferLength}`,
    );
  }
  let win8Extension: VmscsiWin8Extension | null = null;
  if (isWin8OrLater(options.protocolVersion)) {
    const E = VMSCSI_WIN8_EXTENSION_LAYOUT;
    win8Extension = {
      reserve: v.getUint16(E.reserve.offset, true),
      queueTag: u8(E.queue_tag),
      queueAction: u8(E.queue_action),
      srbFlags: v.getUint32(E.srb_flags.offset, true),
      timeOutValue: v.getUint32(E.time_out_value.offset, true),
      queueSortKey: v.getUint32(E.queue_sort_key.offset, true),
    };
  }
  return {
    length: v.getUint16(L.length.offset, true),
    srbStatus: u8(L.srb_status),
    scsiStatus: u8(L.scsi_status),
    portNumber: u8(L.port_number),
    pathId: u8(L.path_id),
    targetId: u8(L.target_id),
    lun: u8(L.lun),
    cdbLength,
    senseInfoLength,
    dataIn,
    reserved: u8(L.reserved),
    dataTransferLength,
    cdbOrSense: copy.slice(L.cdb_sense.offset, L.cdb_sense.offset + L.cdb_sense.size),
    win8Extension,
  };
}

/** Decodes and validates the SRB of a packet (bytes of the whole packet). */
export function decodeVmscsiRequest(packet: Uint8Array, options: VmscsiRequestDecodeOptions): VmscsiRequest {
  return readVmscsiRequest(copyPacket(packet, options.protocolVersion), options);
}

function readChannelProperties(copy: Uint8Array): VmstorageChannelProperties {
  const v = viewOf(copy);
  const L = VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT;
  return {
    maxChannelCount: v.getUint16(L.max_channel_cnt.offset, true),
    flags: v.getUint32(L.flags.offset, true),
    maxTransferBytes: v.getUint32(L.max_transfer_bytes.offset, true),
  };
}

/** Decodes the channel properties of a packet (bytes of the whole packet). */
export function decodeChannelProperties(packet: Uint8Array, protocolVersion: number): VmstorageChannelProperties {
  return readChannelProperties(copyPacket(packet, protocolVersion));
}

function readProtocolVersion(copy: Uint8Array): VmstorageProtocolVersion {
  const v = viewOf(copy);
  const L = VMSTORAGE_PROTOCOL_VERSION_LAYOUT;
  return { majorMinor: v.getUint16(L.major_minor.offset, true), revision: v.getUint16(L.revision.offset, true) };
}

/** Decodes the protocol-version member of a packet. */
export function decodeProtocolVersion(packet: Uint8Array, protocolVersion: number): VmstorageProtocolVersion {
  return readProtocolVersion(copyPacket(packet, protocolVersion));
}

function readSubChannelCount(copy: Uint8Array): number {
  return viewOf(copy).getUint16(VSTOR_SUB_CHANNEL_COUNT_LAYOUT.sub_channel_count.offset, true);
}

/** Decodes `sub_channel_count` of a CREATE_SUB_CHANNELS packet. */
export function decodeSubChannelCount(packet: Uint8Array, protocolVersion: number): number {
  return readSubChannelCount(copyPacket(packet, protocolVersion));
}

function readFcWwn(copy: Uint8Array): HvFcWwnPacket {
  const L = HV_FC_WWN_PACKET_LAYOUT;
  const wwn = (f: FieldSpec): Uint8Array => copy.slice(f.offset, f.offset + f.size);
  return {
    primaryActive: copy[L.primary_active.offset] ?? 0,
    primaryPortWwn: wwn(L.primary_port_wwn),
    primaryNodeWwn: wwn(L.primary_node_wwn),
    secondaryPortWwn: wwn(L.secondary_port_wwn),
    secondaryNodeWwn: wwn(L.secondary_node_wwn),
  };
}

/** Decodes the FC WWN member of a packet. */
export function decodeFcWwnPacket(packet: Uint8Array, protocolVersion: number): HvFcWwnPacket {
  return readFcWwn(copyPacket(packet, protocolVersion));
}

function readNotification(copy: Uint8Array): VstorNotificationPacket {
  const L = VSTOR_NOTIFICATION_PACKET_LAYOUT;
  return {
    lun: copy[L.lun.offset] ?? 0,
    target: copy[L.target.offset] ?? 0,
    path: copy[L.path.offset] ?? 0,
    flags: copy[L.flags.offset] ?? 0,
  };
}

/** Decodes the OV notification member of a packet. */
export function decodeNotificationPacket(packet: Uint8Array, protocolVersion: number): VstorNotificationPacket {
  return readNotification(copyPacket(packet, protocolVersion));
}

/**
 * Decodes a `vstor_packet` received from the peer. Works on a private copy
 * of the first `vstorPacketSize(protocolVersion)` bytes (longer input, such
 * as ring padding, is ignored) and validates it; every failure is a
 * `ProtocolError` naming the field, the value and the limit.
 */
export function decodeVstorPacket(bytes: Uint8Array, options: VstorDecodeOptions): VstorPacket {
  const copy = copyPacket(bytes, options.protocolVersion);
  const v = viewOf(copy);
  const operation = v.getUint32(VSTOR_PACKET_LAYOUT.operation.offset, true);
  // An operation we do not know has no defined union member and no defined
  // reaction; OV treats it as fatal for the channel.
  if (!isVstorOperation(operation)) {
    throw new ProtocolError(P, "operation", operation, "is not a known VSTOR_OPERATION_* (1..14)");
  }
  // A guest sending COMPLETE_IO or ENUMERATE_BUS (or a host sending
  // EXECUTE_SRB) is confused or hostile; answering it would loop.
  if (options.sender !== undefined) {
    const allowed = options.sender === "guest" ? VSTOR_GUEST_TO_HOST_OPERATIONS : VSTOR_HOST_TO_GUEST_OPERATIONS;
    if (!allowed.has(operation)) {
      throw new ProtocolError(
        P,
        "operation",
        `${operation} (${VSTOR_OPERATION_NAMES.get(operation) ?? "?"})`,
        `is not sent by the ${options.sender}`,
      );
    }
  }
  const flags = v.getUint32(VSTOR_PACKET_LAYOUT.flags.offset, true);
  const status = v.getUint32(VSTOR_PACKET_LAYOUT.status.offset, true);
  const size = vstorPacketSize(options.protocolVersion);
  let payload: VstorPayload;
  switch (vstorPayloadKind(operation, options.completes)) {
    case "srb":
      payload = { kind: "srb", srb: readVmscsiRequest(copy, options) };
      break;
    case "version":
      payload = { kind: "version", version: readProtocolVersion(copy) };
      break;
    case "properties":
      payload = { kind: "properties", properties: readChannelProperties(copy) };
      break;
    case "sub-channels":
      payload = { kind: "sub-channels", subChannelCount: readSubChannelCount(copy) };
      break;
    case "fc-wwn":
      payload = { kind: "fc-wwn", wwn: readFcWwn(copy) };
      break;
    case "notification":
      payload = { kind: "notification", notification: readNotification(copy) };
      break;
    case "raw":
      payload = { kind: "raw", bytes: copy.slice(VSTOR_PACKET_UNION_OFFSET, size) };
      break;
    case "none":
      payload = { kind: "none" };
      break;
  }
  return { operation: operation satisfies VstorOperation, flags, status, payload };
}

// ---------------------------------------------------------------------------
// SRB helpers and packet builders (§5.1, §5.2)

/** The CDB bytes of a request SRB (the first cdb_length bytes of the union, at most 16). */
export function srbCdb(srb: VmscsiRequest): Uint8Array {
  return srb.cdbOrSense.subarray(0, Math.min(srb.cdbLength, STORVSC_MAX_CMD_LEN));
}

/** The sense bytes of a completed SRB (the first sense_info_length bytes of the union, at most 20). */
export function srbSenseData(srb: VmscsiRequest): Uint8Array {
  return srb.cdbOrSense.subarray(0, Math.min(srb.senseInfoLength, STORVSC_MAX_BUF_LEN_WITH_PADDING));
}

export interface ExecuteSrbParams {
  readonly protocolVersion: number;
  /** 1..16 CDB bytes. */
  readonly cdb: Uint8Array;
  /** WRITE_TYPE, READ_TYPE or UNKNOWN_TYPE (no data). */
  readonly dataIn: number;
  readonly dataTransferLength: number;
  readonly portNumber?: number;
  readonly pathId?: number;
  readonly targetId?: number;
  readonly lun?: number;
  /** The device supports tagged queuing (Linux adds queue flags and tags). Default true. */
  readonly tagged?: boolean;
}

/** The EXECUTE_SRB packet Linux `storvsc_queuecommand` builds (§5.1). */
export function makeExecuteSrbPacket(p: ExecuteSrbParams): VstorPacket {
  if (p.cdb.length < 1 || p.cdb.length > STORVSC_MAX_CMD_LEN) {
    throw new InvalidArgumentError("cdb.length", p.cdb.length, `must be 1..${STORVSC_MAX_CMD_LEN}`);
  }
  const cdbOrSense = new Uint8Array(STORVSC_MAX_BUF_LEN_WITH_PADDING);
  cdbOrSense.set(p.cdb);
  const tagged = p.tagged ?? true;
  let srbFlags = SRB_FLAGS_DISABLE_SYNCH_TRANSFER;
  if (tagged) srbFlags |= SRB_FLAGS_QUEUE_ACTION_ENABLE | SRB_FLAGS_NO_QUEUE_FREEZE;
  if (p.dataIn === READ_TYPE) srbFlags |= SRB_FLAGS_DATA_IN;
  else if (p.dataIn === WRITE_TYPE) srbFlags |= SRB_FLAGS_DATA_OUT;
  const win8Extension: VmscsiWin8Extension | null = isWin8OrLater(p.protocolVersion)
    ? {
        reserve: 0,
        queueTag: tagged ? SP_UNTAGGED : 0,
        queueAction: tagged ? SRB_SIMPLE_TAG_REQUEST : 0,
        srbFlags,
        timeOutValue: STORVSC_SRB_TIMEOUT_SECONDS,
        queueSortKey: 0,
      }
    : null;
  return {
    operation: VSTOR_OPERATION_EXECUTE_SRB,
    flags: REQUEST_COMPLETION_FLAG,
    status: STATUS_SUCCESS,
    payload: {
      kind: "srb",
      srb: {
        length: vmscsiRequestLength(p.protocolVersion),
        srbStatus: 0,
        scsiStatus: 0,
        portNumber: p.portNumber ?? 0,
        pathId: p.pathId ?? 0,
        targetId: p.targetId ?? 0,
        lun: p.lun ?? 0,
        cdbLength: p.cdb.length,
        senseInfoLength: senseBufferSize(p.protocolVersion),
        dataIn: p.dataIn,
        reserved: 0,
        dataTransferLength: p.dataTransferLength,
        cdbOrSense,
        win8Extension,
      },
    },
  };
}

export interface SrbCompletionParams {
  readonly protocolVersion: number;
  /** The request being completed; its address (port/path/target/lun) is echoed. */
  readonly request: VmscsiRequest;
  /** SRB_STATUS_* (AUTOSENSE_VALID is added when `sense` is given). */
  readonly srbStatus: number;
  readonly scsiStatus?: number;
  /** Bytes actually transferred. */
  readonly dataTransferLength: number;
  /** Sense data to return (at most 20 bytes). */
  readonly sense?: Uint8Array;
  /** NTSTATUS; defaults to the OV mapping of `srbStatus`. */
  readonly status?: number;
}

/** The COMPLETE_IO packet an OV-like host writes for an SRB (§5.2). */
export function makeSrbCompletionPacket(p: SrbCompletionParams): VstorPacket {
  const cdbOrSense = new Uint8Array(STORVSC_MAX_BUF_LEN_WITH_PADDING);
  if (p.sense !== undefined) {
    if (p.sense.length > STORVSC_MAX_BUF_LEN_WITH_PADDING) {
      throw new InvalidArgumentError("sense.length", p.sense.length, `must be at most ${STORVSC_MAX_BUF_LEN_WITH_PADDING}`);
    }
    cdbOrSense.set(p.sense);
  }
  const srbStatus = p.sense !== undefined ? p.srbStatus | SRB_STATUS_AUTOSENSE_VALID : p.srbStatus;
  return {
    operation: VSTOR_OPERATION_COMPLETE_IO,
    flags: 0,
    status: p.status ?? ntStatusForSrbStatus(srbStatus),
    payload: {
      kind: "srb",
      srb: {
        length: vmscsiRequestLength(p.protocolVersion),
        srbStatus,
        scsiStatus: p.scsiStatus ?? SCSI_STATUS_GOOD,
        portNumber: p.request.portNumber,
        pathId: p.request.pathId,
        targetId: p.request.targetId,
        lun: p.request.lun,
        cdbLength: STORVSC_MAX_CMD_LEN,
        senseInfoLength: senseBufferSize(p.protocolVersion),
        dataIn: p.request.dataIn,
        reserved: 0,
        dataTransferLength: p.dataTransferLength,
        cdbOrSense,
        win8Extension: isWin8OrLater(p.protocolVersion) ? ZERO_WIN8_EXTENSION : null,
      },
    },
  };
}

/** A guest request other than EXECUTE_SRB (init steps, resets, version, sub-channels). */
export function makeVstorRequestPacket(operation: number, payload: VstorPayload = { kind: "none" }): VstorPacket {
  return { operation, flags: REQUEST_COMPLETION_FLAG, status: STATUS_SUCCESS, payload };
}

/** A host COMPLETE_IO for a non-SRB request. */
export function makeVstorCompletionPacket(status: number, payload: VstorPayload = { kind: "none" }): VstorPacket {
  return { operation: VSTOR_OPERATION_COMPLETE_IO, flags: 0, status, payload };
}

// ---------------------------------------------------------------------------
// The per-I/O packets without intermediate objects (§5.1, §5.2)
//
// A 4 KiB read is one EXECUTE_SRB and one COMPLETE_IO. Building a
// `VstorPacket` tree and encoding it costs more than the rest of the I/O
// path, so the hot path writes and reads the same bytes in place. The
// functions below produce exactly the bytes of the object-based builders
// above (test/drivers/storvsc/vstor-fast-path.test.ts compares them); anything
// they do not cover (sense data, hostile sizes) stays with those builders.

/** Where the CDB (request) or the sense data (completion) starts in a packet. */
export const VSTOR_CDB_OFFSET = VMSCSI_REQUEST_LAYOUT.cdb_sense.offset;

/**
 * Writes the EXECUTE_SRB packet `makeExecuteSrbPacket` builds (tagged,
 * port 0) into `packet` — `vstorPacketSize(protocolVersion)` bytes, `view`
 * over the same bytes — and zeroes its CDB area. The caller then puts the
 * `cdbLength` CDB bytes at `VSTOR_CDB_OFFSET`. Values are not range-checked:
 * the caller passes what a LUN scan and a block count produced.
 */
export function writeExecuteSrbPacket(
  packet: Uint8Array,
  view: DataView,
  protocolVersion: number,
  cdbLength: number,
  dataIn: number,
  dataTransferLength: number,
  pathId: number,
  targetId: number,
  lun: number,
): void {
  packet.fill(0);
  const L = VMSCSI_REQUEST_LAYOUT;
  view.setUint32(VSTOR_PACKET_LAYOUT.operation.offset, VSTOR_OPERATION_EXECUTE_SRB, true);
  view.setUint32(VSTOR_PACKET_LAYOUT.flags.offset, REQUEST_COMPLETION_FLAG, true);
  view.setUint16(L.length.offset, vmscsiRequestLength(protocolVersion), true);
  packet[L.path_id.offset] = pathId;
  packet[L.target_id.offset] = targetId;
  packet[L.lun.offset] = lun;
  packet[L.cdb_length.offset] = cdbLength;
  packet[L.sense_info_length.offset] = senseBufferSize(protocolVersion);
  packet[L.data_in.offset] = dataIn;
  view.setUint32(L.data_transfer_length.offset, dataTransferLength, true);
  if (isWin8OrLater(protocolVersion)) {
    const E = VMSCSI_WIN8_EXTENSION_LAYOUT;
    let srbFlags = SRB_FLAGS_DISABLE_SYNCH_TRANSFER | SRB_FLAGS_QUEUE_ACTION_ENABLE | SRB_FLAGS_NO_QUEUE_FREEZE;
    if (dataIn === READ_TYPE) srbFlags |= SRB_FLAGS_DATA_IN;
    else if (dataIn === WRITE_TYPE) srbFlags |= SRB_FLAGS_DATA_OUT;
    packet[E.queue_tag.offset] = SP_UNTAGGED;
    packet[E.queue_action.offset] = SRB_SIMPLE_TAG_REQUEST;
    view.setUint32(E.srb_flags.offset, srbFlags, true);
    view.setUint32(E.time_out_value.offset, STORVSC_SRB_TIMEOUT_SECONDS, true);
  }
}

/**
 * Writes the COMPLETE_IO of an SRB without sense data — what
 * `encodeVstorPacket(makeSrbCompletionPacket(...))` cut or zero-padded to
 * `out.length` gives — into `out` (`view` over the same bytes). `out` must
 * be at least `vstorPacketSize(protocolVersion)` bytes; the echoed address
 * and data_in are the request's bytes.
 */
export function writeSrbCompletionPacket(
  out: Uint8Array,
  view: DataView,
  protocolVersion: number,
  portNumber: number,
  pathId: number,
  targetId: number,
  lun: number,
  dataIn: number,
  srbStatus: number,
  scsiStatus: number,
  dataTransferLength: number,
): void {
  out.fill(0);
  const L = VMSCSI_REQUEST_LAYOUT;
  view.setUint32(VSTOR_PACKET_LAYOUT.operation.offset, VSTOR_OPERATION_COMPLETE_IO, true);
  view.setUint32(VSTOR_PACKET_LAYOUT.status.offset, ntStatusForSrbStatus(srbStatus), true);
  view.setUint16(L.length.offset, vmscsiRequestLength(protocolVersion), true);
  out[L.srb_status.offset] = srbStatus;
  out[L.scsi_status.offset] = scsiStatus;
  out[L.port_number.offset] = portNumber;
  out[L.path_id.offset] = pathId;
  out[L.target_id.offset] = targetId;
  out[L.lun.offset] = lun;
  out[L.cdb_length.offset] = STORVSC_MAX_CMD_LEN;
  out[L.sense_info_length.offset] = senseBufferSize(protocolVersion);
  out[L.data_in.offset] = dataIn;
  view.setUint32(L.data_transfer_length.offset, dataTransferLength, true);
}

/**
 * The checks `decodeVstorPacket` makes of a COMPLETE_IO answering an
 * EXECUTE_SRB (`sender: "host"`, `completes: EXECUTE_SRB`,
 * `requestDataTransferLength`), read from `bytes` in place: true when that
 * decode would succeed with operation COMPLETE_IO. False means "decode it
 * the full way", which then names whatever is wrong.
 */
export function isPlainSrbCompletion(bytes: Uint8Array, protocolVersion: number, requestDataTransferLength: number): boolean {
  const L = VMSCSI_REQUEST_LAYOUT;
  if (bytes.length < vstorPacketSize(protocolVersion)) return false;
  if (readU32(bytes, VSTOR_PACKET_LAYOUT.operation.offset) !== VSTOR_OPERATION_COMPLETE_IO) return false;
  if ((bytes[L.cdb_length.offset] as number) > STORVSC_MAX_CMD_LEN) return false;
  if ((bytes[L.sense_info_length.offset] as number) > senseBufferSize(protocolVersion)) return false;
  const dataIn = bytes[L.data_in.offset] as number;
  if (dataIn !== WRITE_TYPE && dataIn !== READ_TYPE && dataIn !== UNKNOWN_TYPE) return false;
  return readU32(bytes, L.data_transfer_length.offset) <= requestDataTransferLength;
}

/** A little-endian u32 of `bytes` at `offset` (no view object; the caller checked the length). */
export function readU32(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] as number) | ((bytes[offset + 1] as number) << 8) | ((bytes[offset + 2] as number) << 16) | ((bytes[offset + 3] as number) << 24)) >>> 0;
}
