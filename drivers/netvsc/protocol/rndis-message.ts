/**
 * RNDIS messages (storvsc-netvsc.md §13.1, §13.2, §11.1–§11.2): the 8-byte
 * header, every message type's body, encoders and validating decoders, and
 * the split of a send-buffer section into its concatenated messages.
 *
 * Offsets in the `*_LAYOUT` tables are ABSOLUTE within the message. The
 * `*_offset` FIELDS on the wire, however, count from byte 8 — the byte after
 * the header (the request id, or data_offset of a PACKET) — never from the
 * message start. Decoders check every offset/length pair against msg_len and
 * throw a `ProtocolError` naming the field, the value and the limit.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkUint, copyBytes, viewOf } from "./bytes.js";
import {
  RNDIS_HEADER_SIZE,
  RNDIS_MSG_HALT,
  RNDIS_MSG_INDICATE,
  RNDIS_MSG_INIT,
  RNDIS_MSG_INIT_C,
  RNDIS_MSG_KEEPALIVE,
  RNDIS_MSG_KEEPALIVE_C,
  RNDIS_MSG_PACKET,
  RNDIS_MSG_QUERY,
  RNDIS_MSG_QUERY_C,
  RNDIS_MSG_RESET,
  RNDIS_MSG_RESET_C,
  RNDIS_MSG_SET,
  RNDIS_MSG_SET_C,
  RNDIS_MSG_SET_EX,
  RNDIS_MSG_SET_EX_C,
  rndisMessageTypeName,
} from "./rndis-constants.js";
import { type RndisPpi, decodePpiChain, encodePpiChain } from "./rndis-ppi.js";

interface FieldSpec {
  readonly offset: number;
  readonly size: number;
}
type Layout = Readonly<Record<string, FieldSpec>>;

// ---------------------------------------------------------------------------
// Layouts (absolute offsets; §13.1, §13.2)

/** `struct rndis_message` header. */
export const RNDIS_MESSAGE_HEADER_LAYOUT = {
  ndis_msg_type: { offset: 0, size: 4 },
  msg_len: { offset: 4, size: 4 },
} as const satisfies Layout;

/** `struct rndis_initialize_request`. */
export const RNDIS_INITIALIZE_REQUEST_LAYOUT = {
  req_id: { offset: 8, size: 4 },
  major_ver: { offset: 12, size: 4 },
  minor_ver: { offset: 16, size: 4 },
  max_xfer_size: { offset: 20, size: 4 },
} as const satisfies Layout;

/** `struct rndis_initialize_complete`. */
export const RNDIS_INITIALIZE_COMPLETE_LAYOUT = {
  req_id: { offset: 8, size: 4 },
  status: { offset: 12, size: 4 },
  major_ver: { offset: 16, size: 4 },
  minor_ver: { offset: 20, size: 4 },
  dev_flags: { offset: 24, size: 4 },
  medium: { offset: 28, size: 4 },
  max_pkt_per_msg: { offset: 32, size: 4 },
  max_xfer_size: { offset: 36, size: 4 },
  pkt_alignment_factor: { offset: 40, size: 4 },
  af_list_offset: { offset: 44, size: 4 },
  af_list_size: { offset: 48, size: 4 },
} as const satisfies Layout;

/** `struct rndis_halt_request`, `struct rndis_keepalive_request`: just a request id. */
export const RNDIS_REQUEST_ID_ONLY_LAYOUT = {
  req_id: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct rndis_query_request`, `struct rndis_set_request` (and SET_EX): same layout. */
export const RNDIS_QUERY_REQUEST_LAYOUT = {
  req_id: { offset: 8, size: 4 },
  oid: { offset: 12, size: 4 },
  info_buflen: { offset: 16, size: 4 },
  info_buf_offset: { offset: 20, size: 4 },
  dev_vc_handle: { offset: 24, size: 4 },
} as const satisfies Layout;

/** `struct rndis_query_complete` (and OV's SET_EX_CMPLT). */
export const RNDIS_QUERY_COMPLETE_LAYOUT = {
  req_id: { offset: 8, size: 4 },
  status: { offset: 12, size: 4 },
  info_buflen: { offset: 16, size: 4 },
  info_buf_offset: { offset: 20, size: 4 },
} as const satisfies Layout;

/** `struct rndis_set_complete`, `struct rndis_keepalive_complete`. */
export const RNDIS_SET_COMPLETE_LAYOUT = {
  req_id: { offset: 8, size: 4 },
  status: { offset: 12, size: 4 },
} as const satisfies Layout;

/** `struct rndis_reset_request`. */
export const RNDIS_RESET_REQUEST_LAYOUT = {
  reserved: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct rndis_reset_complete` (the only completion without a request id). */
export const RNDIS_RESET_COMPLETE_LAYOUT = {
  status: { offset: 8, size: 4 },
  addressing_reset: { offset: 12, size: 4 },
} as const satisfies Layout;

/** `struct rndis_indicate_status`. */
export const RNDIS_INDICATE_STATUS_LAYOUT = {
  status: { offset: 8, size: 4 },
  status_buflen: { offset: 12, size: 4 },
  status_buf_offset: { offset: 16, size: 4 },
} as const satisfies Layout;

/** `struct rndis_packet`. */
export const RNDIS_PACKET_LAYOUT = {
  data_offset: { offset: 8, size: 4 },
  data_len: { offset: 12, size: 4 },
  oob_data_offset: { offset: 16, size: 4 },
  oob_data_len: { offset: 20, size: 4 },
  num_oob_data_elements: { offset: 24, size: 4 },
  per_pkt_info_offset: { offset: 28, size: 4 },
  per_pkt_info_len: { offset: 32, size: 4 },
  vc_handle: { offset: 36, size: 4 },
  reserved: { offset: 40, size: 4 },
} as const satisfies Layout;

/** `sizeof(struct rndis_packet)`: the smallest data/PPI offset (offsets count from byte 8). */
export const RNDIS_PACKET_BODY_SIZE = 36;
/** Header + `struct rndis_packet`: the smallest PACKET message. */
export const RNDIS_PACKET_MESSAGE_SIZE = 44;
/** `sizeof(struct rndis_query_request)`: Linux's info_buf_offset in QUERY/SET. */
export const RNDIS_QUERY_REQUEST_BODY_SIZE = 20;
/** `sizeof(struct rndis_query_complete)`: the smallest info_buf_offset of a QUERY_CMPLT (OV uses it). */
export const RNDIS_QUERY_COMPLETE_BODY_SIZE = 16;
/** `sizeof(struct rndis_indicate_status)`. */
export const RNDIS_INDICATE_STATUS_BODY_SIZE = 12;
/** `sizeof(struct rndis_initialize_complete)`. */
export const RNDIS_INITIALIZE_COMPLETE_BODY_SIZE = 44;

/** The smallest msg_len of each message type (header + body struct). */
export const RNDIS_MESSAGE_MIN_SIZE: ReadonlyMap<number, number> = new Map<number, number>([
  [RNDIS_MSG_PACKET, RNDIS_PACKET_MESSAGE_SIZE],
  [RNDIS_MSG_INIT, 24],
  [RNDIS_MSG_INIT_C, 52],
  [RNDIS_MSG_HALT, 12],
  [RNDIS_MSG_QUERY, 28],
  [RNDIS_MSG_QUERY_C, 24],
  [RNDIS_MSG_SET, 28],
  [RNDIS_MSG_SET_C, 16],
  [RNDIS_MSG_RESET, 12],
  [RNDIS_MSG_RESET_C, 16],
  [RNDIS_MSG_INDICATE, 20],
  [RNDIS_MSG_KEEPALIVE, 12],
  [RNDIS_MSG_KEEPALIVE_C, 16],
  [RNDIS_MSG_SET_EX, 28],
  [RNDIS_MSG_SET_EX_C, 24],
]);

// ---------------------------------------------------------------------------
// Types

interface RndisCommon {
  /**
   * msg_len. Decoders fill it in; encoders default to the natural length and
   * accept a larger value (the tail is zero-filled) — an OV-like host sets
   * msg_len to the whole receive sub-allocation, Linux pads batched packets to 8.
   */
  readonly messageLength?: number;
}

export interface RndisPacketMessage extends RndisCommon {
  readonly kind: "packet";
  /** The Ethernet frame. */
  readonly data: Uint8Array;
  readonly ppis: readonly RndisPpi[];
  /** From byte 8. Encoders default to Linux's: right after the PPIs. */
  readonly dataOffset?: number;
  /** From byte 8. Encoders default to 36 (Linux sets it even without PPIs). */
  readonly perPacketInfoOffset?: number;
  /** Written as given (default 0); decoders check an OOB area lies in the message. */
  readonly oobDataOffset?: number;
  readonly oobDataLength?: number;
  readonly numOobDataElements?: number;
  /** 0 = connectionless. */
  readonly vcHandle?: number;
  readonly reserved?: number;
}

export interface RndisInitializeRequest extends RndisCommon {
  readonly kind: "initialize";
  readonly requestId: number;
  readonly majorVersion: number;
  readonly minorVersion: number;
  readonly maxTransferSize: number;
}

export interface RndisInitializeComplete extends RndisCommon {
  readonly kind: "initialize_cmplt";
  readonly requestId: number;
  readonly status: number;
  readonly majorVersion: number;
  readonly minorVersion: number;
  readonly deviceFlags: number;
  readonly medium: number;
  readonly maxPacketsPerMessage: number;
  readonly maxTransferSize: number;
  /** Alignment = 1 << factor. */
  readonly packetAlignmentFactor: number;
  readonly afListOffset: number;
  readonly afListSize: number;
}

export interface RndisOidRequest extends RndisCommon {
  readonly kind: "query" | "set" | "set_ex";
  readonly requestId: number;
  readonly oid: number;
  readonly deviceVcHandle: number;
  /** The information buffer (input of a QUERY, value of a SET). */
  readonly info: Uint8Array;
  /** From byte 8. Encoders default to 20 (right after the body, as Linux). */
  readonly infoBufferOffset?: number;
}

export interface RndisOidComplete extends RndisCommon {
  readonly kind: "query_cmplt" | "set_ex_cmplt";
  readonly requestId: number;
  readonly status: number;
  readonly info: Uint8Array;
  /** From byte 8. Encoders default to 16 (right after the body, as OV). */
  readonly infoBufferOffset?: number;
}

export interface RndisStatusComplete extends RndisCommon {
  readonly kind: "set_cmplt" | "keepalive_cmplt";
  readonly requestId: number;
  readonly status: number;
}

export interface RndisRequestIdOnly extends RndisCommon {
  readonly kind: "halt" | "keepalive";
  readonly requestId: number;
}

export interface RndisResetRequest extends RndisCommon {
  readonly kind: "reset";
  readonly reserved: number;
}

export interface RndisResetComplete extends RndisCommon {
  readonly kind: "reset_cmplt";
  readonly status: number;
  readonly addressingReset: number;
}

export interface RndisIndicateStatus extends RndisCommon {
  readonly kind: "indicate_status";
  readonly status: number;
  /** Status buffer (e.g. the u32 link speed of LINK_SPEED_CHANGE); empty for MEDIA_CONNECT. */
  readonly payload: Uint8Array;
  /** From byte 8. Encoders default to 12 with a payload, 0 without (as OV). */
  readonly statusBufferOffset?: number;
}

export type RndisMessage =
  | RndisPacketMessage
  | RndisInitializeRequest
  | RndisInitializeComplete
  | RndisOidRequest
  | RndisOidComplete
  | RndisStatusComplete
  | RndisRequestIdOnly
  | RndisResetRequest
  | RndisResetComplete
  | RndisIndicateStatus;

export type RndisMessageKind = RndisMessage["kind"];

const KIND_TYPES: Readonly<Record<RndisMessageKind, number>> = {
  packet: RNDIS_MSG_PACKET,
  initialize: RNDIS_MSG_INIT,
  initialize_cmplt: RNDIS_MSG_INIT_C,
  halt: RNDIS_MSG_HALT,
  query: RNDIS_MSG_QUERY,
  query_cmplt: RNDIS_MSG_QUERY_C,
  set: RNDIS_MSG_SET,
  set_cmplt: RNDIS_MSG_SET_C,
  reset: RNDIS_MSG_RESET,
  reset_cmplt: RNDIS_MSG_RESET_C,
  indicate_status: RNDIS_MSG_INDICATE,
  keepalive: RNDIS_MSG_KEEPALIVE,
  keepalive_cmplt: RNDIS_MSG_KEEPALIVE_C,
  set_ex: RNDIS_MSG_SET_EX,
  set_ex_cmplt: RNDIS_MSG_SET_EX_C,
};

/** The ndis_msg_type of a message. */
export function rndisMessageType(msg: RndisMessage): number {
  return KIND_TYPES[msg.kind];
}

// ---------------------------------------------------------------------------
// Encoding

interface Placed {
  /** Absolute offset of the variable part. */
  readonly at: number;
  readonly bytes: Uint8Array;
  /** The offset field value (from byte 8). */
  readonly field: number;
}

/** Where a variable buffer goes: `offset` (from byte 8) or the default, never inside the body. */
function place(field: string, bytes: Uint8Array, offset: number | undefined, defaultOffset: number, minOffset: number): Placed {
  const o = offset ?? defaultOffset;
  checkUint(field, o, 32);
  // Writing the buffer inside the fixed body would overwrite the fields that describe it.
  if (bytes.length > 0 && o < minOffset) {
    throw new InvalidArgumentError(field, o, `must be at least ${minOffset} (after the message body) when the buffer is not empty`);
  }
  return { at: RNDIS_HEADER_SIZE + o, bytes, field: o };
}

function packetPlan(msg: RndisPacketMessage): { ppiBytes: Uint8Array; ppiOffset: number; dataOffset: number } {
  const ppiBytes = encodePpiChain(msg.ppis);
  const ppiOffset = msg.perPacketInfoOffset ?? RNDIS_PACKET_BODY_SIZE;
  checkUint("perPacketInfoOffset", ppiOffset, 32);
  if (ppiBytes.length > 0 && ppiOffset < RNDIS_PACKET_BODY_SIZE) {
    throw new InvalidArgumentError("perPacketInfoOffset", ppiOffset, `must be at least ${RNDIS_PACKET_BODY_SIZE} (after rndis_packet) with PPIs`);
  }
  const dataOffset = msg.dataOffset ?? RNDIS_PACKET_BODY_SIZE + ppiBytes.length;
  checkUint("dataOffset", dataOffset, 32);
  if (dataOffset < RNDIS_PACKET_BODY_SIZE) {
    throw new InvalidArgumentError("dataOffset", dataOffset, `must be at least ${RNDIS_PACKET_BODY_SIZE} (after rndis_packet)`);
  }
  // Frame bytes on top of PPI bytes would corrupt one or the other.
  if (ppiBytes.length > 0 && msg.data.length > 0) {
    const ppiEnd = ppiOffset + ppiBytes.length;
    const dataEnd = dataOffset + msg.data.length;
    if (dataOffset < ppiEnd && ppiOffset < dataEnd) {
      throw new InvalidArgumentError("dataOffset", dataOffset, `overlaps the per-packet info at [${ppiOffset}, ${ppiEnd})`);
    }
  }
  return { ppiBytes, ppiOffset, dataOffset };
}

/** The msg_len `encodeRndisMessage` writes when `messageLength` is not given. */
export function rndisNaturalLength(msg: RndisMessage): number {
  const fixed = RNDIS_MESSAGE_MIN_SIZE.get(rndisMessageType(msg)) ?? RNDIS_HEADER_SIZE;
  switch (msg.kind) {
    case "packet": {
      const { ppiBytes, ppiOffset, dataOffset } = packetPlan(msg);
      return Math.max(fixed, RNDIS_HEADER_SIZE + dataOffset + msg.data.length, ppiBytes.length > 0 ? RNDIS_HEADER_SIZE + ppiOffset + ppiBytes.length : 0);
    }
    case "query":
    case "set":
    case "set_ex": {
      if (msg.info.length === 0) return fixed;
      const p = place("infoBufferOffset", msg.info, msg.infoBufferOffset, RNDIS_QUERY_REQUEST_BODY_SIZE, RNDIS_QUERY_REQUEST_BODY_SIZE);
      return Math.max(fixed, p.at + p.bytes.length);
    }
    case "query_cmplt":
    case "set_ex_cmplt": {
      if (msg.info.length === 0) return fixed;
      const p = place("infoBufferOffset", msg.info, msg.infoBufferOffset, RNDIS_QUERY_COMPLETE_BODY_SIZE, RNDIS_QUERY_COMPLETE_BODY_SIZE);
      return Math.max(fixed, p.at + p.bytes.length);
    }
    case "indicate_status": {
      if (msg.payload.length === 0) return fixed;
      const p = place("statusBufferOffset", msg.payload, msg.statusBufferOffset, RNDIS_INDICATE_STATUS_BODY_SIZE, RNDIS_INDICATE_STATUS_BODY_SIZE);
      return Math.max(fixed, p.at + p.bytes.length);
    }
    default:
      return fixed;
  }
}

/** The msg_len (and buffer size) `encodeRndisMessage` will produce. */
export function rndisEncodedLength(msg: RndisMessage): number {
  const natural = rndisNaturalLength(msg);
  if (msg.messageLength === undefined) return natural;
  checkUint("messageLength", msg.messageLength, 32);
  if (msg.messageLength < natural) {
    throw new InvalidArgumentError("messageLength", msg.messageLength, `must be at least the ${natural} bytes of the ${msg.kind} message`);
  }
  return msg.messageLength;
}

/**
 * Encodes `msg` into `target` at `offset`; returns msg_len (the bytes
 * written). Any representable value is written, valid or not (see bytes.ts);
 * only layouts that would make the encoder overwrite its own fields are refused.
 */
export function encodeRndisMessageInto(msg: RndisMessage, target: Uint8Array, offset = 0): number {
  const length = rndisEncodedLength(msg);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > target.length) {
    throw new InvalidArgumentError("offset", offset, `must leave room for ${length} bytes in a ${target.length}-byte buffer`);
  }
  const bytes = target.subarray(offset, offset + length);
  bytes.fill(0);
  const v = viewOf(bytes);
  const put = (field: string, f: FieldSpec, value: number): void => {
    checkUint(field, value, 32);
    v.setUint32(f.offset, value, true);
  };
  v.setUint32(RNDIS_MESSAGE_HEADER_LAYOUT.ndis_msg_type.offset, rndisMessageType(msg), true);
  v.setUint32(RNDIS_MESSAGE_HEADER_LAYOUT.msg_len.offset, length, true);
  switch (msg.kind) {
    case "packet": {
      const L = RNDIS_PACKET_LAYOUT;
      const { ppiBytes, ppiOffset, dataOffset } = packetPlan(msg);
      put("dataOffset", L.data_offset, dataOffset);
      put("data.length", L.data_len, msg.data.length);
      put("oobDataOffset", L.oob_data_offset, msg.oobDataOffset ?? 0);
      put("oobDataLength", L.oob_data_len, msg.oobDataLength ?? 0);
      put("numOobDataElements", L.num_oob_data_elements, msg.numOobDataElements ?? 0);
      put("perPacketInfoOffset", L.per_pkt_info_offset, ppiOffset);
      put("ppis length", L.per_pkt_info_len, ppiBytes.length);
      put("vcHandle", L.vc_handle, msg.vcHandle ?? 0);
      put("reserved", L.reserved, msg.reserved ?? 0);
      bytes.set(ppiBytes, RNDIS_HEADER_SIZE + ppiOffset);
      bytes.set(msg.data, RNDIS_HEADER_SIZE + dataOffset);
      break;
    }
    case "initialize": {
      const L = RNDIS_INITIALIZE_REQUEST_LAYOUT;
      put("requestId", L.req_id, msg.requestId);
      put("majorVersion", L.major_ver, msg.majorVersion);
      put("minorVersion", L.minor_ver, msg.minorVersion);
      put("maxTransferSize", L.max_xfer_size, msg.maxTransferSize);
      break;
    }
    case "initialize_cmplt": {
      const L = RNDIS_INITIALIZE_COMPLETE_LAYOUT;
      put("requestId", L.req_id, msg.requestId);
      put("status", L.status, msg.status);
      put("majorVersion", L.major_ver, msg.majorVersion);
      put("minorVersion", L.minor_ver, msg.minorVersion);
      put("deviceFlags", L.dev_flags, msg.deviceFlags);
      put("medium", L.medium, msg.medium);
      put("maxPacketsPerMessage", L.max_pkt_per_msg, msg.maxPacketsPerMessage);
      put("maxTransferSize", L.max_xfer_size, msg.maxTransferSize);
      put("packetAlignmentFactor", L.pkt_alignment_factor, msg.packetAlignmentFactor);
      put("afListOffset", L.af_list_offset, msg.afListOffset);
      put("afListSize", L.af_list_size, msg.afListSize);
      break;
    }
    case "halt":
    case "keepalive":
      put("requestId", RNDIS_REQUEST_ID_ONLY_LAYOUT.req_id, msg.requestId);
      break;
    case "query":
    case "set":
    case "set_ex": {
      const L = RNDIS_QUERY_REQUEST_LAYOUT;
      const p = place("infoBufferOffset", msg.info, msg.infoBufferOffset, RNDIS_QUERY_REQUEST_BODY_SIZE, RNDIS_QUERY_REQUEST_BODY_SIZE);
      put("requestId", L.req_id, msg.requestId);
      put("oid", L.oid, msg.oid);
      put("info.length", L.info_buflen, msg.info.length);
      put("infoBufferOffset", L.info_buf_offset, p.field);
      put("deviceVcHandle", L.dev_vc_handle, msg.deviceVcHandle);
      bytes.set(p.bytes, p.at);
      break;
    }
    case "query_cmplt":
    case "set_ex_cmplt": {
      const L = RNDIS_QUERY_COMPLETE_LAYOUT;
      const p = place("infoBufferOffset", msg.info, msg.infoBufferOffset, RNDIS_QUERY_COMPLETE_BODY_SIZE, RNDIS_QUERY_COMPLETE_BODY_SIZE);
      put("requestId", L.req_id, msg.requestId);
      put("status", L.status, msg.status);
      put("info.length", L.info_buflen, msg.info.length);
      put("infoBufferOffset", L.info_buf_offset, p.field);
      bytes.set(p.bytes, p.at);
      break;
    }
    case "set_cmplt":
    case "keepalive_cmplt": {
      const L = RNDIS_SET_COMPLETE_LAYOUT;
      put("requestId", L.req_id, msg.requestId);
      put("status", L.status, msg.status);
      break;
    }
    case "reset":
      put("reserved", RNDIS_RESET_REQUEST_LAYOUT.reserved, msg.reserved);
      break;
    case "reset_cmplt": {
      const L = RNDIS_RESET_COMPLETE_LAYOUT;
      put("status", L.status, msg.status);
      put("addressingReset", L.addressing_reset, msg.addressingReset);
      break;
    }
    case "indicate_status": {
      const L = RNDIS_INDICATE_STATUS_LAYOUT;
      const defaultOffset = msg.payload.length > 0 ? RNDIS_INDICATE_STATUS_BODY_SIZE : 0;
      const p = place("statusBufferOffset", msg.payload, msg.statusBufferOffset, defaultOffset, RNDIS_INDICATE_STATUS_BODY_SIZE);
      put("status", L.status, msg.status);
      put("payload.length", L.status_buflen, msg.payload.length);
      put("statusBufferOffset", L.status_buf_offset, p.field);
      bytes.set(p.bytes, p.at);
      break;
    }
  }
  return length;
}

/** Encodes `msg` into a new buffer of msg_len bytes. */
export function encodeRndisMessage(msg: RndisMessage): Uint8Array {
  const out = new Uint8Array(rndisEncodedLength(msg));
  encodeRndisMessageInto(msg, out, 0);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

const P = "RNDIS";

export interface RndisHeader {
  readonly msgType: number;
  readonly msgLen: number;
}

/**
 * Reads and checks the 8-byte header of the message at the start of `bytes`
 * (a receive-buffer range, or what is left of a send-buffer section). The
 * message must fit in `bytes`; bytes after msg_len are not part of it.
 */
export function decodeRndisHeader(bytes: Uint8Array): RndisHeader {
  // Linux `rndis_filter_receive`: a range shorter than the header is dropped.
  if (bytes.length < RNDIS_HEADER_SIZE) {
    throw new ProtocolError(P, "buffer length", bytes.length, `is shorter than the ${RNDIS_HEADER_SIZE}-byte RNDIS header`);
  }
  const v = viewOf(bytes);
  const msgType = v.getUint32(0, true);
  const msgLen = v.getUint32(4, true);
  // msg_len must cover the header, and must not claim bytes the range does
  // not have (those would come from the next message or another guest's slot).
  if (msgLen < RNDIS_HEADER_SIZE) {
    throw new ProtocolError(P, "msg_len", msgLen, `is shorter than the ${RNDIS_HEADER_SIZE}-byte RNDIS header`);
  }
  if (msgLen > bytes.length) {
    throw new ProtocolError(P, "msg_len", msgLen, `exceeds the ${bytes.length} bytes available`);
  }
  return { msgType, msgLen };
}

/**
 * Checks that [offset, offset + length) — counted from byte 8 — lies in the
 * message after the fixed body of `bodySize` bytes; returns the absolute range.
 */
function bufferRange(
  kind: string,
  offsetField: string,
  lengthField: string,
  offset: number,
  length: number,
  bodySize: number,
  msgLen: number,
): { start: number; end: number } {
  const room = msgLen - RNDIS_HEADER_SIZE;
  // A buffer inside the fixed body would alias the fields that describe it.
  if (offset < bodySize) {
    throw new ProtocolError(P, `${kind}.${offsetField}`, offset, `must be at least ${bodySize} (sizeof the ${kind} body; offsets count from byte 8)`);
  }
  // The buffer must end inside msg_len, or the reader takes bytes of
  // whatever follows the message.
  if (offset > room) {
    throw new ProtocolError(P, `${kind}.${offsetField}`, offset, `is past the end of the message (msg_len ${msgLen} − 8 = ${room})`);
  }
  if (length > room - offset) {
    throw new ProtocolError(P, `${kind}.${lengthField}`, length, `overruns the message: ${offsetField} ${offset} + ${length} > msg_len ${msgLen} − 8 = ${room}`);
  }
  return { start: RNDIS_HEADER_SIZE + offset, end: RNDIS_HEADER_SIZE + offset + length };
}

function decodePacket(copy: Uint8Array, msgLen: number): RndisPacketMessage {
  const v = viewOf(copy);
  const L = RNDIS_PACKET_LAYOUT;
  const u32 = (f: FieldSpec): number => v.getUint32(f.offset, true);
  const dataOffset = u32(L.data_offset);
  const dataLength = u32(L.data_len);
  const oobDataOffset = u32(L.oob_data_offset);
  const oobDataLength = u32(L.oob_data_len);
  const numOobDataElements = u32(L.num_oob_data_elements);
  const ppiOffset = u32(L.per_pkt_info_offset);
  const ppiLength = u32(L.per_pkt_info_len);
  const data = bufferRange("rndis_packet", "data_offset", "data_len", dataOffset, dataLength, RNDIS_PACKET_BODY_SIZE, msgLen);
  if (oobDataLength > 0) bufferRange("rndis_packet", "oob_data_offset", "oob_data_len", oobDataOffset, oobDataLength, RNDIS_PACKET_BODY_SIZE, msgLen);
  let ppis: RndisPpi[] = [];
  // per_pkt_info_len 0 means no PPIs, whatever the offset (Linux sends offset 36, length 0).
  if (ppiLength > 0) {
    const r = bufferRange("rndis_packet", "per_pkt_info_offset", "per_pkt_info_len", ppiOffset, ppiLength, RNDIS_PACKET_BODY_SIZE, msgLen);
    // OV: the PPIs are part of the header area; a chain reaching into the
    // frame would let a record be read from frame bytes (and vice versa).
    if (dataLength > 0 && ppiOffset < dataOffset + dataLength && dataOffset < ppiOffset + ppiLength) {
      throw new ProtocolError(P, "rndis_packet.per_pkt_info_len", ppiLength, `overlaps the frame data at [${dataOffset}, ${dataOffset + dataLength}) (per_pkt_info_offset ${ppiOffset})`);
    }
    ppis = decodePpiChain(copy.subarray(r.start, r.end), ppiOffset);
  }
  return {
    kind: "packet",
    data: copy.slice(data.start, data.end),
    ppis,
    dataOffset,
    perPacketInfoOffset: ppiOffset,
    oobDataOffset,
    oobDataLength,
    numOobDataElements,
    vcHandle: u32(L.vc_handle),
    reserved: u32(L.reserved),
    messageLength: msgLen,
  };
}

/**
 * Decodes the RNDIS message at the start of `bytes` (a receive range or a
 * send-buffer section; bytes after msg_len are ignored). Works on a private
 * copy and validates every offset/length against msg_len.
 */
export function decodeRndisMessage(bytes: Uint8Array): RndisMessage {
  const { msgType, msgLen } = decodeRndisHeader(bytes);
  const minimum = RNDIS_MESSAGE_MIN_SIZE.get(msgType);
  // An unknown type has no layout; Linux logs "unhandled rndis message" and fails the range.
  if (minimum === undefined) {
    throw new ProtocolError(P, "ndis_msg_type", msgType, "is not a known RNDIS message type");
  }
  // A message shorter than its body would make us read fields from past msg_len.
  if (msgLen < minimum) {
    throw new ProtocolError(P, `${rndisMessageTypeName(msgType)} msg_len`, msgLen, `is shorter than the ${minimum} bytes of its header and body`);
  }
  const copy = copyBytes(bytes, msgLen);
  const v = viewOf(copy);
  const u32 = (f: FieldSpec): number => v.getUint32(f.offset, true);
  switch (msgType) {
    case RNDIS_MSG_PACKET:
      return decodePacket(copy, msgLen);
    case RNDIS_MSG_INIT: {
      const L = RNDIS_INITIALIZE_REQUEST_LAYOUT;
      return {
        kind: "initialize",
        requestId: u32(L.req_id),
        majorVersion: u32(L.major_ver),
        minorVersion: u32(L.minor_ver),
        maxTransferSize: u32(L.max_xfer_size),
        messageLength: msgLen,
      };
    }
    case RNDIS_MSG_INIT_C: {
      const L = RNDIS_INITIALIZE_COMPLETE_LAYOUT;
      const afListOffset = u32(L.af_list_offset);
      const afListSize = u32(L.af_list_size);
      if (afListSize > 0) {
        bufferRange("rndis_initialize_complete", "af_list_offset", "af_list_size", afListOffset, afListSize, RNDIS_INITIALIZE_COMPLETE_BODY_SIZE, msgLen);
      }
      return {
        kind: "initialize_cmplt",
        requestId: u32(L.req_id),
        status: u32(L.status),
        majorVersion: u32(L.major_ver),
        minorVersion: u32(L.minor_ver),
        deviceFlags: u32(L.dev_flags),
        medium: u32(L.medium),
        maxPacketsPerMessage: u32(L.max_pkt_per_msg),
        maxTransferSize: u32(L.max_xfer_size),
        packetAlignmentFactor: u32(L.pkt_alignment_factor),
        afListOffset,
        afListSize,
        messageLength: msgLen,
      };
    }
    case RNDIS_MSG_HALT:
    case RNDIS_MSG_KEEPALIVE:
      return {
        kind: msgType === RNDIS_MSG_HALT ? "halt" : "keepalive",
        requestId: u32(RNDIS_REQUEST_ID_ONLY_LAYOUT.req_id),
        messageLength: msgLen,
      };
    case RNDIS_MSG_QUERY:
    case RNDIS_MSG_SET:
    case RNDIS_MSG_SET_EX: {
      const L = RNDIS_QUERY_REQUEST_LAYOUT;
      const kind = msgType === RNDIS_MSG_QUERY ? "query" : msgType === RNDIS_MSG_SET ? "set" : "set_ex";
      const infoLength = u32(L.info_buflen);
      const infoBufferOffset = u32(L.info_buf_offset);
      let info = new Uint8Array(0);
      if (infoLength > 0) {
        const r = bufferRange(`rndis_${kind}_request`, "info_buf_offset", "info_buflen", infoBufferOffset, infoLength, RNDIS_QUERY_REQUEST_BODY_SIZE, msgLen);
        info = copy.slice(r.start, r.end);
      }
      return {
        kind,
        requestId: u32(L.req_id),
        oid: u32(L.oid),
        deviceVcHandle: u32(L.dev_vc_handle),
        info,
        infoBufferOffset,
        messageLength: msgLen,
      };
    }
    case RNDIS_MSG_QUERY_C:
    case RNDIS_MSG_SET_EX_C: {
      const L = RNDIS_QUERY_COMPLETE_LAYOUT;
      const kind = msgType === RNDIS_MSG_QUERY_C ? "query_cmplt" : "set_ex_cmplt";
      const infoLength = u32(L.info_buflen);
      const infoBufferOffset = u32(L.info_buf_offset);
      let info = new Uint8Array(0);
      // Linux `rndis_filter_query_device`: info_buf_offset ≥ sizeof(rndis_query_complete)
      // and offset + length inside msg_len.
      if (infoLength > 0) {
        const r = bufferRange("rndis_query_complete", "info_buf_offset", "info_buflen", infoBufferOffset, infoLength, RNDIS_QUERY_COMPLETE_BODY_SIZE, msgLen);
        info = copy.slice(r.start, r.end);
      }
      return { kind, requestId: u32(L.req_id), status: u32(L.status), info, infoBufferOffset, messageLength: msgLen };
    }
    case RNDIS_MSG_SET_C:
    case RNDIS_MSG_KEEPALIVE_C: {
      const L = RNDIS_SET_COMPLETE_LAYOUT;
      return {
        kind: msgType === RNDIS_MSG_SET_C ? "set_cmplt" : "keepalive_cmplt",
        requestId: u32(L.req_id),
        status: u32(L.status),
        messageLength: msgLen,
      };
    }
    case RNDIS_MSG_RESET:
      return { kind: "reset", reserved: u32(RNDIS_RESET_REQUEST_LAYOUT.reserved), messageLength: msgLen };
    case RNDIS_MSG_RESET_C: {
      const L = RNDIS_RESET_COMPLETE_LAYOUT;
      return { kind: "reset_cmplt", status: u32(L.status), addressingReset: u32(L.addressing_reset), messageLength: msgLen };
    }
    case RNDIS_MSG_INDICATE: {
      const L = RNDIS_INDICATE_STATUS_LAYOUT;
      const payloadLength = u32(L.status_buflen);
      const statusBufferOffset = u32(L.status_buf_offset);
      let payload = new Uint8Array(0);
      if (payloadLength > 0) {
        const r = bufferRange("rndis_indicate_status", "status_buf_offset", "status_buflen", statusBufferOffset, payloadLength, RNDIS_INDICATE_STATUS_BODY_SIZE, msgLen);
        payload = copy.slice(r.start, r.end);
      }
      return { kind: "indicate_status", status: u32(L.status), payload, statusBufferOffset, messageLength: msgLen };
    }
    default:
      // Every type with a minimum size is handled above.
      throw new ProtocolError(P, "ndis_msg_type", msgType, "is not a known RNDIS message type");
  }
}

/**
 * The request id of a completion (every completion but RESET_CMPLT carries
 * one as its first body word); null for messages without one.
 */
export function rndisRequestId(msg: RndisMessage): number | null {
  return "requestId" in msg ? msg.requestId : null;
}

/**
 * Splits a send-buffer section (or any buffer of back-to-back messages) into
 * its RNDIS messages, by msg_len. Linux batches several PACKET messages in
 * one section, padding each msg_len to the packet alignment (§11.1); the
 * NVSP section size says how many bytes are used. Returns views of `bytes`;
 * decode each (decoders copy).
 */
export function splitRndisMessages(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const rest = bytes.subarray(at);
    let header: RndisHeader;
    try {
      header = decodeRndisHeader(rest);
    } catch (e) {
      if (e instanceof ProtocolError) {
        throw new ProtocolError(P, `message[${out.length}] (at ${at}) ${e.field}`, e.value, e.limit);
      }
      throw e;
    }
    out.push(rest.subarray(0, header.msgLen));
    at += header.msgLen;
  }
  return out;
}
