/**
 * NVSP messages (storvsc-netvsc.md §9.1, §10, §11, §12): byte layouts named
 * after the Linux structs, encoders and validating decoders.
 *
 * Every message is `struct nvsp_message_header` (u32 msg_type @0) followed by
 * a packed body. Offsets in the `*_LAYOUT` tables are ABSOLUTE within the
 * message, as the spec's table gives them. Linux sends every request as the
 * whole 40-byte `struct nvsp_message` (except its 8-byte receive completion);
 * an OV-like host answers with 28 bytes below v6.1 and 40 bytes from v6.1
 * (`nvspHostMessageSize`). A decoder therefore accepts any length that holds
 * the body of the type (plus what Linux additionally requires), and ignores
 * the rest.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkU64, checkUint, copyBytes, viewOf } from "./bytes.js";
import {
  NETVSC_INVALID_INDEX,
  NETVSC_MTU_MIN,
  NVSP_DATAPATH_SYNTHETIC,
  NVSP_DATAPATH_VF,
  NVSP_GUEST_TO_HOST_TYPES,
  NVSP_HOST_TO_GUEST_TYPES,
  NVSP_LINUX_INIT_COMPLETION_MIN_SIZE,
  NVSP_MESSAGE_HEADER_SIZE,
  NVSP_MESSAGE_SIZE,
  NVSP_MESSAGE_UNION_SIZE,
  NVSP_MSG1_TYPE_REVOKE_RECV_BUF,
  NVSP_MSG1_TYPE_REVOKE_SEND_BUF,
  NVSP_MSG1_TYPE_SEND_NDIS_VER,
  NVSP_MSG1_TYPE_SEND_RECV_BUF,
  NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG1_TYPE_SEND_SEND_BUF,
  NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE,
  NVSP_MSG2_TYPE_SEND_NDIS_CONFIG,
  NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION,
  NVSP_MSG4_TYPE_SWITCH_DATA_PATH,
  NVSP_MSG5_TYPE_OID_QUERY_EX,
  NVSP_MSG5_TYPE_OID_QUERY_EX_COMP,
  NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE,
  NVSP_MSG5_TYPE_SUBCHANNEL,
  NVSP_MSG_TYPE_INIT,
  NVSP_MSG_TYPE_INIT_COMPLETE,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_RNDIS_CHANNEL_TYPE_CONTROL,
  NVSP_RNDIS_CHANNEL_TYPE_DATA,
  NVSP_STAT_SUCCESS,
  NVSP_SUBCHANNEL_ALLOCATE,
  VRSS_SEND_TAB_SIZE,
  formatNvspVersion,
  isNvspMessageType,
  nvspMaxMessageType,
  nvspMessageTypeName,
} from "./nvsp-constants.js";

/** One field of a byte layout: absolute offset and size in bytes. */
export interface NvspFieldSpec {
  readonly offset: number;
  readonly size: number;
}
type Layout = Readonly<Record<string, NvspFieldSpec>>;

// ---------------------------------------------------------------------------
// Layouts (absolute offsets; §9.1)

/** `struct nvsp_message_header`. */
export const NVSP_MESSAGE_HEADER_LAYOUT = {
  msg_type: { offset: 0, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_message_init`. */
export const NVSP_MESSAGE_INIT_LAYOUT = {
  min_protocol_ver: { offset: 4, size: 4 },
  max_protocol_ver: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_message_init_complete`. */
export const NVSP_MESSAGE_INIT_COMPLETE_LAYOUT = {
  negotiated_protocol_ver: { offset: 4, size: 4 },
  max_mdl_chain_len: { offset: 8, size: 4 },
  status: { offset: 12, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_ndis_version`. */
export const NVSP_1_MESSAGE_SEND_NDIS_VERSION_LAYOUT = {
  ndis_major_ver: { offset: 4, size: 4 },
  ndis_minor_ver: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_receive_buffer` (and `_send_buffer`, same layout). */
export const NVSP_1_MESSAGE_SEND_BUFFER_LAYOUT = {
  gpadl_handle: { offset: 4, size: 4 },
  id: { offset: 8, size: 2 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_receive_buffer_complete`; sections[] start at 12. */
export const NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT = {
  status: { offset: 4, size: 4 },
  num_sections: { offset: 8, size: 4 },
  sections: { offset: 12, size: 16 },
} as const satisfies Layout;

/** `struct nvsp_1_receive_buffer_section`; offsets relative to the section. */
export const NVSP_1_RECEIVE_BUFFER_SECTION_LAYOUT = {
  offset: { offset: 0, size: 4 },
  sub_alloc_size: { offset: 4, size: 4 },
  num_sub_allocs: { offset: 8, size: 4 },
  end_offset: { offset: 12, size: 4 },
} as const satisfies Layout;
export const NVSP_1_RECEIVE_BUFFER_SECTION_SIZE = 16;

/** `struct nvsp_1_message_revoke_receive_buffer` / `_revoke_send_buffer`. */
export const NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT = {
  id: { offset: 4, size: 2 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_send_buffer_complete`. */
export const NVSP_1_MESSAGE_SEND_SEND_BUFFER_COMPLETE_LAYOUT = {
  status: { offset: 4, size: 4 },
  section_size: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_rndis_packet`. */
export const NVSP_1_MESSAGE_SEND_RNDIS_PACKET_LAYOUT = {
  channel_type: { offset: 4, size: 4 },
  send_buf_section_index: { offset: 8, size: 4 },
  send_buf_section_size: { offset: 12, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_1_message_send_rndis_packet_complete`, and every other {u32 status} body. */
export const NVSP_1_MESSAGE_SEND_RNDIS_PACKET_COMPLETE_LAYOUT = {
  status: { offset: 4, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_2_send_ndis_config` (packed: the u64 sits at 12). */
export const NVSP_2_SEND_NDIS_CONFIG_LAYOUT = {
  mtu: { offset: 4, size: 4 },
  reserved: { offset: 8, size: 4 },
  capability: { offset: 12, size: 8 },
} as const satisfies Layout;

/** `struct nvsp_4_send_vf_association`. */
export const NVSP_4_SEND_VF_ASSOCIATION_LAYOUT = {
  allocated: { offset: 4, size: 4 },
  serial: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_4_sw_datapath`. */
export const NVSP_4_SW_DATAPATH_LAYOUT = {
  active_datapath: { offset: 4, size: 4 },
} as const satisfies Layout;

/** OID_QUERY_EX: NDIS object header {u8 type, u8 revision, u16 size} then u32 oid. */
export const NVSP_5_OID_QUERY_EX_LAYOUT = {
  header_type: { offset: 4, size: 1 },
  header_revision: { offset: 5, size: 1 },
  header_size: { offset: 6, size: 2 },
  oid: { offset: 8, size: 4 },
} as const satisfies Layout;

/** OID_QUERY_EX_COMP. */
export const NVSP_5_OID_QUERY_EX_COMP_LAYOUT = {
  status: { offset: 4, size: 4 },
  bytes: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_5_subchannel_request`. */
export const NVSP_5_SUBCHANNEL_REQUEST_LAYOUT = {
  op: { offset: 4, size: 4 },
  num_subchannels: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_5_subchannel_complete`. */
export const NVSP_5_SUBCHANNEL_COMPLETE_LAYOUT = {
  status: { offset: 4, size: 4 },
  num_subchannels: { offset: 8, size: 4 },
} as const satisfies Layout;

/** `struct nvsp_5_send_indirect_table`; offset counts from the message start. */
export const NVSP_5_SEND_INDIRECT_TABLE_LAYOUT = {
  count: { offset: 4, size: 4 },
  offset: { offset: 8, size: 4 },
} as const satisfies Layout;
/** Where the table can start at the earliest: right after count and offset (OV sends 12). */
export const NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET = 12;
/** Linux's override for NVSP ≤ v6: 4 + sizeof(union nvsp_6_message_uber). */
export const NVSP_LINUX_SEND_TABLE_FIXED_OFFSET = NVSP_MESSAGE_HEADER_SIZE + NVSP_MESSAGE_UNION_SIZE;

// ---------------------------------------------------------------------------
// Types

export interface NvspReceiveBufferSection {
  readonly offset: number;
  readonly subAllocSize: number;
  readonly numSubAllocs: number;
  readonly endOffset: number;
}

export interface NdisObjectHeaderFields {
  readonly type: number;
  readonly revision: number;
  readonly size: number;
}

/**
 * A decoded or to-be-encoded NVSP message. `kind` is the Linux union member
 * name where Linux has one. "other" covers the obsolete and unused types
 * (chimney/VMQ 109–127 except 125, 130, PacketDirect 135–136): their bodies
 * are kept as bytes.
 */
export type NvspMessage =
  | { readonly kind: "init"; readonly minProtocolVersion: number; readonly maxProtocolVersion: number }
  | {
      readonly kind: "init_complete";
      /** Deprecated; OV sends 0xFFFFFFFF (or 2 for v1). */
      readonly negotiatedProtocolVersion: number;
      readonly maxMdlChainLength: number;
      readonly status: number;
    }
  | { readonly kind: "send_ndis_ver"; readonly ndisMajorVersion: number; readonly ndisMinorVersion: number }
  | { readonly kind: "send_recv_buf"; readonly gpadlHandle: number; readonly id: number }
  | {
      readonly kind: "send_recv_buf_complete";
      readonly status: number;
      /** num_sections is the length of this list. */
      readonly sections: readonly NvspReceiveBufferSection[];
    }
  | { readonly kind: "revoke_recv_buf"; readonly id: number }
  | { readonly kind: "send_send_buf"; readonly gpadlHandle: number; readonly id: number }
  | { readonly kind: "send_send_buf_complete"; readonly status: number; readonly sectionSize: number }
  | { readonly kind: "revoke_send_buf"; readonly id: number }
  | {
      readonly kind: "send_rndis_pkt";
      /** NVSP_RNDIS_CHANNEL_TYPE_DATA (0) or _CONTROL (1). */
      readonly channelType: number;
      /** NETVSC_INVALID_INDEX (0xFFFFFFFF) when no send-buffer section is used. */
      readonly sendBufferSectionIndex: number;
      readonly sendBufferSectionSize: number;
    }
  | { readonly kind: "send_rndis_pkt_complete"; readonly status: number }
  | { readonly kind: "send_ndis_config"; readonly mtu: number; readonly reserved: number; readonly capability: bigint }
  | { readonly kind: "vf_assoc"; readonly allocated: number; readonly serial: number }
  | { readonly kind: "active_dp"; readonly activeDatapath: number }
  | { readonly kind: "oid_query_ex"; readonly header: NdisObjectHeaderFields; readonly oid: number }
  | { readonly kind: "oid_query_ex_comp"; readonly status: number; readonly bytes: number }
  | { readonly kind: "subchn_req"; readonly op: number; readonly numSubchannels: number }
  | { readonly kind: "subchn_comp"; readonly status: number; readonly numSubchannels: number }
  | {
      readonly kind: "send_table";
      /** The channel numbers; count is the length of this list. */
      readonly table: readonly number[];
      /** The offset field (from the message start). Encoders default to 12. */
      readonly offset?: number;
      /** Decoders only: where the table was actually read (differs under Linux's ≤ v6 fix). */
      readonly tableOffset?: number;
    }
  | { readonly kind: "other"; readonly type: number; readonly body: Uint8Array };

export type NvspMessageKind = NvspMessage["kind"];

const KIND_TYPES: Readonly<Record<Exclude<NvspMessageKind, "other">, number>> = {
  init: NVSP_MSG_TYPE_INIT,
  init_complete: NVSP_MSG_TYPE_INIT_COMPLETE,
  send_ndis_ver: NVSP_MSG1_TYPE_SEND_NDIS_VER,
  send_recv_buf: NVSP_MSG1_TYPE_SEND_RECV_BUF,
  send_recv_buf_complete: NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE,
  revoke_recv_buf: NVSP_MSG1_TYPE_REVOKE_RECV_BUF,
  send_send_buf: NVSP_MSG1_TYPE_SEND_SEND_BUF,
  send_send_buf_complete: NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE,
  revoke_send_buf: NVSP_MSG1_TYPE_REVOKE_SEND_BUF,
  send_rndis_pkt: NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  send_rndis_pkt_complete: NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  send_ndis_config: NVSP_MSG2_TYPE_SEND_NDIS_CONFIG,
  vf_assoc: NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION,
  active_dp: NVSP_MSG4_TYPE_SWITCH_DATA_PATH,
  oid_query_ex: NVSP_MSG5_TYPE_OID_QUERY_EX,
  oid_query_ex_comp: NVSP_MSG5_TYPE_OID_QUERY_EX_COMP,
  subchn_req: NVSP_MSG5_TYPE_SUBCHANNEL,
  subchn_comp: NVSP_MSG5_TYPE_SUBCHANNEL,
  send_table: NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE,
};

/** The msg_type of a message. */
export function nvspMessageType(msg: NvspMessage): number {
  return msg.kind === "other" ? msg.type : KIND_TYPES[msg.kind];
}

/**
 * The smallest message that holds the body of `type`: 4 + the packed body
 * struct. Obsolete types need only the header. SEND_RECV_BUF_COMPLETE needs
 * 12 + 16 × num_sections on top (checked when decoding); SEND_INDIRECTION_TABLE
 * needs its table too.
 */
export function nvspMinimumMessageSize(type: number): number {
  switch (type) {
    case NVSP_MSG_TYPE_INIT:
      return 12;
    case NVSP_MSG_TYPE_INIT_COMPLETE:
      return 16;
    case NVSP_MSG1_TYPE_SEND_NDIS_VER:
      return 12;
    case NVSP_MSG1_TYPE_SEND_RECV_BUF:
    case NVSP_MSG1_TYPE_SEND_SEND_BUF:
      return 10;
    case NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE:
      return 12;
    case NVSP_MSG1_TYPE_REVOKE_RECV_BUF:
    case NVSP_MSG1_TYPE_REVOKE_SEND_BUF:
      return 6;
    case NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE:
      return 12;
    case NVSP_MSG1_TYPE_SEND_RNDIS_PKT:
      return 16;
    case NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE:
      return 8;
    case NVSP_MSG2_TYPE_SEND_NDIS_CONFIG:
      return 20;
    case NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION:
      return 12;
    case NVSP_MSG4_TYPE_SWITCH_DATA_PATH:
      return 8;
    case NVSP_MSG5_TYPE_OID_QUERY_EX:
    case NVSP_MSG5_TYPE_OID_QUERY_EX_COMP:
    case NVSP_MSG5_TYPE_SUBCHANNEL:
    case NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE:
      return 12;
    default:
      return NVSP_MESSAGE_HEADER_SIZE;
  }
}

/** Bytes the content of `msg` occupies (without padding to a fixed message size). */
export function nvspContentLength(msg: NvspMessage): number {
  switch (msg.kind) {
    case "send_recv_buf_complete":
      return 12 + NVSP_1_RECEIVE_BUFFER_SECTION_SIZE * msg.sections.length;
    case "send_table":
      return (msg.offset ?? NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET) + 4 * msg.table.length;
    case "other":
      return NVSP_MESSAGE_HEADER_SIZE + msg.body.length;
    default:
      return nvspMinimumMessageSize(nvspMessageType(msg));
  }
}

// ---------------------------------------------------------------------------
// Encoding

export interface NvspEncodeOptions {
  /**
   * Total bytes to write (zero-padded). Default: `NVSP_MESSAGE_SIZE` (40, the
   * Linux `struct nvsp_message`) or the content length if that is larger. Use
   * `nvspHostMessageSize(version)` for an OV-like host, 8 for a Linux receive
   * completion.
   */
  readonly size?: number;
}

/** The size `encodeNvspMessage` will write for `msg`. */
export function nvspEncodedSize(msg: NvspMessage, options: NvspEncodeOptions = {}): number {
  const content = nvspContentLength(msg);
  if (options.size === undefined) return Math.max(NVSP_MESSAGE_SIZE, content);
  if (!Number.isInteger(options.size) || options.size < content) {
    throw new InvalidArgumentError("size", options.size, `must hold the ${content}-byte ${msg.kind} message`);
  }
  return options.size;
}

function writeBody(bytes: Uint8Array, msg: NvspMessage): void {
  const v = viewOf(bytes);
  const u32 = (field: string, f: NvspFieldSpec, value: number): void => {
    checkUint(field, value, 32);
    v.setUint32(f.offset, value, true);
  };
  const u16 = (field: string, f: NvspFieldSpec, value: number): void => {
    checkUint(field, value, 16);
    v.setUint16(f.offset, value, true);
  };
  switch (msg.kind) {
    case "init": {
      const L = NVSP_MESSAGE_INIT_LAYOUT;
      u32("minProtocolVersion", L.min_protocol_ver, msg.minProtocolVersion);
      u32("maxProtocolVersion", L.max_protocol_ver, msg.maxProtocolVersion);
      return;
    }
    case "init_complete": {
      const L = NVSP_MESSAGE_INIT_COMPLETE_LAYOUT;
      u32("negotiatedProtocolVersion", L.negotiated_protocol_ver, msg.negotiatedProtocolVersion);
      u32("maxMdlChainLength", L.max_mdl_chain_len, msg.maxMdlChainLength);
      u32("status", L.status, msg.status);
      return;
    }
    case "send_ndis_ver": {
      const L = NVSP_1_MESSAGE_SEND_NDIS_VERSION_LAYOUT;
      u32("ndisMajorVersion", L.ndis_major_ver, msg.ndisMajorVersion);
      u32("ndisMinorVersion", L.ndis_minor_ver, msg.ndisMinorVersion);
      return;
    }
    case "send_recv_buf":
    case "send_send_buf": {
      const L = NVSP_1_MESSAGE_SEND_BUFFER_LAYOUT;
      u32("gpadlHandle", L.gpadl_handle, msg.gpadlHandle);
      u16("id", L.id, msg.id);
      return;
    }
    case "send_recv_buf_complete": {
      const L = NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT;
      const S = NVSP_1_RECEIVE_BUFFER_SECTION_LAYOUT;
      u32("status", L.status, msg.status);
      u32("sections.length", L.num_sections, msg.sections.length);
      msg.sections.forEach((s, i) => {
        const base = L.sections.offset + i * NVSP_1_RECEIVE_BUFFER_SECTION_SIZE;
        const at = (f: NvspFieldSpec): NvspFieldSpec => ({ offset: base + f.offset, size: f.size });
        u32(`sections[${i}].offset`, at(S.offset), s.offset);
        u32(`sections[${i}].subAllocSize`, at(S.sub_alloc_size), s.subAllocSize);
        u32(`sections[${i}].numSubAllocs`, at(S.num_sub_allocs), s.numSubAllocs);
        u32(`sections[${i}].endOffset`, at(S.end_offset), s.endOffset);
      });
      return;
    }
    case "revoke_recv_buf":
    case "revoke_send_buf":
      u16("id", NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT.id, msg.id);
      return;
    case "send_send_buf_complete": {
      const L = NVSP_1_MESSAGE_SEND_SEND_BUFFER_COMPLETE_LAYOUT;
      u32("status", L.status, msg.status);
      u32("sectionSize", L.section_size, msg.sectionSize);
      return;
    }
    case "send_rndis_pkt": {
      const L = NVSP_1_MESSAGE_SEND_RNDIS_PACKET_LAYOUT;
      u32("channelType", L.channel_type, msg.channelType);
      u32("sendBufferSectionIndex", L.send_buf_section_index, msg.sendBufferSectionIndex);
      u32("sendBufferSectionSize", L.send_buf_section_size, msg.sendBufferSectionSize);
      return;
    }
    case "send_rndis_pkt_complete":
      u32("status", NVSP_1_MESSAGE_SEND_RNDIS_PACKET_COMPLETE_LAYOUT.status, msg.status);
      return;
    case "send_ndis_config": {
      const L = NVSP_2_SEND_NDIS_CONFIG_LAYOUT;
      u32("mtu", L.mtu, msg.mtu);
      u32("reserved", L.reserved, msg.reserved);
      checkU64("capability", msg.capability);
      v.setBigUint64(L.capability.offset, msg.capability, true);
      return;
    }
    case "vf_assoc": {
      const L = NVSP_4_SEND_VF_ASSOCIATION_LAYOUT;
      u32("allocated", L.allocated, msg.allocated);
      u32("serial", L.serial, msg.serial);
      return;
    }
    case "active_dp":
      u32("activeDatapath", NVSP_4_SW_DATAPATH_LAYOUT.active_datapath, msg.activeDatapath);
      return;
    case "oid_query_ex": {
      const L = NVSP_5_OID_QUERY_EX_LAYOUT;
      checkUint("header.type", msg.header.type, 8);
      checkUint("header.revision", msg.header.revision, 8);
      bytes[L.header_type.offset] = msg.header.type;
      bytes[L.header_revision.offset] = msg.header.revision;
      u16("header.size", L.header_size, msg.header.size);
      u32("oid", L.oid, msg.oid);
      return;
    }
    case "oid_query_ex_comp": {
      const L = NVSP_5_OID_QUERY_EX_COMP_LAYOUT;
      u32("status", L.status, msg.status);
      u32("bytes", L.bytes, msg.bytes);
      return;
    }
    case "subchn_req": {
      const L = NVSP_5_SUBCHANNEL_REQUEST_LAYOUT;
      u32("op", L.op, msg.op);
      u32("numSubchannels", L.num_subchannels, msg.numSubchannels);
      return;
    }
    case "subchn_comp": {
      const L = NVSP_5_SUBCHANNEL_COMPLETE_LAYOUT;
      u32("status", L.status, msg.status);
      u32("numSubchannels", L.num_subchannels, msg.numSubchannels);
      return;
    }
    case "send_table": {
      const L = NVSP_5_SEND_INDIRECT_TABLE_LAYOUT;
      const offset = msg.offset ?? NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET;
      // Writing the table below 12 would overwrite count/offset themselves.
      if (offset < NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET) {
        throw new InvalidArgumentError("offset", offset, `must be at least ${NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET} (after count and offset)`);
      }
      u32("table.length", L.count, msg.table.length);
      u32("offset", L.offset, offset);
      msg.table.forEach((entry, i) => u32(`table[${i}]`, { offset: offset + 4 * i, size: 4 }, entry));
      return;
    }
    case "other":
      bytes.set(msg.body, NVSP_MESSAGE_HEADER_SIZE);
      return;
  }
}

/**
 * Encodes `msg` into `target` at `offset`, zero-filling up to the message
 * size (see `NvspEncodeOptions.size`); returns the bytes written. Any
 * representable value is written, valid or not (see bytes.ts).
 */
export function encodeNvspMessageInto(msg: NvspMessage, target: Uint8Array, offset = 0, options: NvspEncodeOptions = {}): number {
  const size = nvspEncodedSize(msg, options);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > target.length) {
    throw new InvalidArgumentError("offset", offset, `must leave room for ${size} bytes in a ${target.length}-byte buffer`);
  }
  const type = nvspMessageType(msg);
  checkUint("type", type, 32);
  const bytes = target.subarray(offset, offset + size);
  bytes.fill(0);
  viewOf(bytes).setUint32(NVSP_MESSAGE_HEADER_LAYOUT.msg_type.offset, type, true);
  writeBody(bytes, msg);
  return size;
}

/** Encodes `msg` into a new buffer (40 bytes unless `options.size` or the content says otherwise). */
export function encodeNvspMessage(msg: NvspMessage, options: NvspEncodeOptions = {}): Uint8Array {
  const out = new Uint8Array(nvspEncodedSize(msg, options));
  encodeNvspMessageInto(msg, out, 0, options);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding

export interface NvspDecodeOptions {
  /** The negotiated version; a type newer than it is rejected (INIT/INIT_COMPLETE are always allowed). */
  readonly version?: number;
  /**
   * Who sent the message. When given, a type only the other side sends is
   * rejected, and Linux's extra length rule for host init completions
   * applies. It also picks the SUBCHANNEL layout: request from the guest,
   * completion from the host (without it, SUBCHANNEL decodes as a request).
   */
  readonly sender?: "guest" | "host";
  /**
   * SEND_INDIRECTION_TABLE only: apply Linux's work-around for a Hyper-V bug
   * — with NVSP ≤ v6 and a message of at least 40 + 4 × count bytes, read the
   * table at 40 whatever the offset field says. Needs `version`.
   */
  readonly linuxSendTableOffsetFix?: boolean;
}

const P = "NVSP";

function typeLabel(type: number): string {
  return `${type} (${nvspMessageTypeName(type)})`;
}

/** The msg_type of the first 4 bytes, or throws if there are fewer. */
export function peekNvspMessageType(bytes: Uint8Array): number {
  if (bytes.length < NVSP_MESSAGE_HEADER_SIZE) {
    throw new ProtocolError(P, "message length", bytes.length, `is shorter than the ${NVSP_MESSAGE_HEADER_SIZE}-byte nvsp_message_header`);
  }
  return viewOf(bytes).getUint32(0, true);
}

function readSections(copy: Uint8Array, status: number): NvspReceiveBufferSection[] {
  const v = viewOf(copy);
  const L = NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT;
  const S = NVSP_1_RECEIVE_BUFFER_SECTION_LAYOUT;
  const count = v.getUint32(L.num_sections.offset, true);
  const room = Math.floor((copy.length - L.sections.offset) / NVSP_1_RECEIVE_BUFFER_SECTION_SIZE);
  // The section array must lie inside the message: a count past the end
  // would make the guest read sections from whatever follows in the ring.
  if (count > room) {
    throw new ProtocolError(
      P,
      "send_recv_buf_complete.num_sections",
      count,
      `overflows the ${copy.length}-byte message (room for ${room} section(s) of ${NVSP_1_RECEIVE_BUFFER_SECTION_SIZE} bytes after offset ${L.sections.offset})`,
    );
  }
  // A successful reply without a section leaves the guest no receive buffer
  // layout to use.
  if (status === NVSP_STAT_SUCCESS && count === 0) {
    throw new ProtocolError(P, "send_recv_buf_complete.num_sections", 0, "must be at least 1 when status is SUCCESS");
  }
  const sections: NvspReceiveBufferSection[] = [];
  for (let i = 0; i < count; i++) {
    const base = L.sections.offset + i * NVSP_1_RECEIVE_BUFFER_SECTION_SIZE;
    const section: NvspReceiveBufferSection = {
      offset: v.getUint32(base + S.offset.offset, true),
      subAllocSize: v.getUint32(base + S.sub_alloc_size.offset, true),
      numSubAllocs: v.getUint32(base + S.num_sub_allocs.offset, true),
      endOffset: v.getUint32(base + S.end_offset.offset, true),
    };
    // Sub-allocations of 0 bytes cannot hold a message, and the guest would
    // divide by this size to locate slots.
    if (status === NVSP_STAT_SUCCESS && section.subAllocSize === 0) {
      throw new ProtocolError(P, `send_recv_buf_complete.sections[${i}].sub_alloc_size`, 0, "must be non-zero when status is SUCCESS");
    }
    sections.push(section);
  }
  return sections;
}

function readSendTable(copy: Uint8Array, options: NvspDecodeOptions): NvspMessage {
  const v = viewOf(copy);
  const L = NVSP_5_SEND_INDIRECT_TABLE_LAYOUT;
  const count = v.getUint32(L.count.offset, true);
  const offsetField = v.getUint32(L.offset.offset, true);
  // Linux's send table has exactly VRSS_SEND_TAB_SIZE slots and drops any
  // other count (`netvsc_send_table`).
  if (count !== VRSS_SEND_TAB_SIZE) {
    throw new ProtocolError(P, "send_table.count", count, `must be VRSS_SEND_TAB_SIZE (${VRSS_SEND_TAB_SIZE})`);
  }
  let tableOffset = offsetField;
  if (
    options.linuxSendTableOffsetFix === true &&
    options.version !== undefined &&
    options.version <= NVSP_PROTOCOL_VERSION_6 &&
    copy.length >= NVSP_LINUX_SEND_TABLE_FIXED_OFFSET + 4 * count
  ) {
    tableOffset = NVSP_LINUX_SEND_TABLE_FIXED_OFFSET;
  }
  // A table starting inside count/offset would read those fields as channel
  // numbers.
  if (tableOffset < NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET) {
    throw new ProtocolError(P, "send_table.offset", tableOffset, `must be at least ${NVSP_SEND_INDIRECTION_TABLE_MIN_OFFSET} (after count and offset)`);
  }
  // The table must end inside the message, or the guest reads channel
  // numbers from whatever follows it.
  if (tableOffset > copy.length - 4 * count) {
    throw new ProtocolError(
      P,
      "send_table.offset",
      tableOffset,
      `puts ${count} u32 entries past the end of the ${copy.length}-byte message (limit ${copy.length - 4 * count})`,
    );
  }
  const table: number[] = [];
  for (let i = 0; i < count; i++) table.push(v.getUint32(tableOffset + 4 * i, true));
  return { kind: "send_table", table, offset: offsetField, tableOffset };
}

/**
 * Decodes an NVSP message received from the peer. Works on a private copy,
 * validates it, and throws a `ProtocolError` naming the field, the value and
 * the limit on the first rule it breaks. Bytes past the body are ignored
 * (messages are padded to 28 or 40 bytes).
 */
export function decodeNvspMessage(bytes: Uint8Array, options: NvspDecodeOptions = {}): NvspMessage {
  const type = peekNvspMessageType(bytes);
  // An unknown type has no layout and no defined reaction; OV treats it as
  // fatal for the channel.
  if (!isNvspMessageType(type)) {
    throw new ProtocolError(P, "msg_type", type, "is not a known NVSP message type (1, 2, 100..136)");
  }
  // A type newer than the negotiated version was never agreed on; OV only
  // parses types whose version ≤ the negotiated one.
  if (options.version !== undefined && type > NVSP_MSG_TYPE_INIT_COMPLETE && type > nvspMaxMessageType(options.version)) {
    throw new ProtocolError(
      P,
      "msg_type",
      typeLabel(type),
      `is newer than protocol ${formatNvspVersion(options.version)} (highest type ${nvspMaxMessageType(options.version)})`,
    );
  }
  // A guest sending INIT_COMPLETE (or a host sending INIT) is confused or
  // hostile; answering it would loop.
  if (options.sender !== undefined) {
    const allowed = options.sender === "guest" ? NVSP_GUEST_TO_HOST_TYPES : NVSP_HOST_TO_GUEST_TYPES;
    if (!allowed.has(type)) throw new ProtocolError(P, "msg_type", typeLabel(type), `is not sent by the ${options.sender}`);
  }
  let minimum = nvspMinimumMessageSize(type);
  // Linux `netvsc_send_completion` drops INIT_COMPLETE and
  // SEND_RECV_BUF_COMPLETE shorter than 28 bytes (its checks fall through).
  if (options.sender === "host" && (type === NVSP_MSG_TYPE_INIT_COMPLETE || type === NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE)) {
    minimum = Math.max(minimum, NVSP_LINUX_INIT_COMPLETION_MIN_SIZE);
  }
  // A short message would make us read body fields the peer never sent.
  if (bytes.length < minimum) {
    throw new ProtocolError(P, `${nvspMessageTypeName(type)} message length`, bytes.length, `is shorter than the ${minimum} bytes its body needs`);
  }
  const copy = copyBytes(bytes);
  const v = viewOf(copy);
  const u32 = (f: NvspFieldSpec): number => v.getUint32(f.offset, true);
  const u16 = (f: NvspFieldSpec): number => v.getUint16(f.offset, true);
  switch (type) {
    case NVSP_MSG_TYPE_INIT: {
      const L = NVSP_MESSAGE_INIT_LAYOUT;
      return { kind: "init", minProtocolVersion: u32(L.min_protocol_ver), maxProtocolVersion: u32(L.max_protocol_ver) };
    }
    case NVSP_MSG_TYPE_INIT_COMPLETE: {
      const L = NVSP_MESSAGE_INIT_COMPLETE_LAYOUT;
      return {
        kind: "init_complete",
        negotiatedProtocolVersion: u32(L.negotiated_protocol_ver),
        maxMdlChainLength: u32(L.max_mdl_chain_len),
        status: u32(L.status),
      };
    }
    case NVSP_MSG1_TYPE_SEND_NDIS_VER: {
      const L = NVSP_1_MESSAGE_SEND_NDIS_VERSION_LAYOUT;
      return { kind: "send_ndis_ver", ndisMajorVersion: u32(L.ndis_major_ver), ndisMinorVersion: u32(L.ndis_minor_ver) };
    }
    case NVSP_MSG1_TYPE_SEND_RECV_BUF:
    case NVSP_MSG1_TYPE_SEND_SEND_BUF: {
      const L = NVSP_1_MESSAGE_SEND_BUFFER_LAYOUT;
      const kind = type === NVSP_MSG1_TYPE_SEND_RECV_BUF ? "send_recv_buf" : "send_send_buf";
      return { kind, gpadlHandle: u32(L.gpadl_handle), id: u16(L.id) };
    }
    case NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE: {
      const status = u32(NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT.status);
      return { kind: "send_recv_buf_complete", status, sections: readSections(copy, status) };
    }
    case NVSP_MSG1_TYPE_REVOKE_RECV_BUF:
      return { kind: "revoke_recv_buf", id: u16(NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT.id) };
    case NVSP_MSG1_TYPE_REVOKE_SEND_BUF:
      return { kind: "revoke_send_buf", id: u16(NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT.id) };
    case NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE: {
      const L = NVSP_1_MESSAGE_SEND_SEND_BUFFER_COMPLETE_LAYOUT;
      const status = u32(L.status);
      const sectionSize = u32(L.section_size);
      // The guest divides its send buffer by this size; 0 would give it an
      // infinite number of empty sections.
      if (status === NVSP_STAT_SUCCESS && sectionSize === 0) {
        throw new ProtocolError(P, "send_send_buf_complete.section_size", 0, "must be non-zero when status is SUCCESS");
      }
      return { kind: "send_send_buf_complete", status, sectionSize };
    }
    case NVSP_MSG1_TYPE_SEND_RNDIS_PKT: {
      const L = NVSP_1_MESSAGE_SEND_RNDIS_PACKET_LAYOUT;
      const channelType = u32(L.channel_type);
      // The channel type decides whether the RNDIS message is a frame or a
      // control message; there is no third kind.
      if (channelType !== NVSP_RNDIS_CHANNEL_TYPE_DATA && channelType !== NVSP_RNDIS_CHANNEL_TYPE_CONTROL) {
        throw new ProtocolError(P, "send_rndis_pkt.channel_type", channelType, "must be 0 (data) or 1 (control)");
      }
      const sendBufferSectionIndex = u32(L.send_buf_section_index);
      const sendBufferSectionSize = u32(L.send_buf_section_size);
      // A size without a section names bytes that do not exist (Linux sends 0).
      if (sendBufferSectionIndex === NETVSC_INVALID_INDEX && sendBufferSectionSize !== 0) {
        throw new ProtocolError(
          P,
          "send_rndis_pkt.send_buf_section_size",
          sendBufferSectionSize,
          "must be 0 when send_buf_section_index is NETVSC_INVALID_INDEX (0xffffffff)",
        );
      }
      return { kind: "send_rndis_pkt", channelType, sendBufferSectionIndex, sendBufferSectionSize };
    }
    case NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE:
      return { kind: "send_rndis_pkt_complete", status: u32(NVSP_1_MESSAGE_SEND_RNDIS_PACKET_COMPLETE_LAYOUT.status) };
    case NVSP_MSG2_TYPE_SEND_NDIS_CONFIG: {
      const L = NVSP_2_SEND_NDIS_CONFIG_LAYOUT;
      return { kind: "send_ndis_config", mtu: u32(L.mtu), reserved: u32(L.reserved), capability: v.getBigUint64(L.capability.offset, true) };
    }
    case NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION: {
      const L = NVSP_4_SEND_VF_ASSOCIATION_LAYOUT;
      return { kind: "vf_assoc", allocated: u32(L.allocated), serial: u32(L.serial) };
    }
    case NVSP_MSG4_TYPE_SWITCH_DATA_PATH: {
      const activeDatapath = u32(NVSP_4_SW_DATAPATH_LAYOUT.active_datapath);
      // Only two data paths exist; switching to an unknown one has no meaning.
      if (activeDatapath !== NVSP_DATAPATH_SYNTHETIC && activeDatapath !== NVSP_DATAPATH_VF) {
        throw new ProtocolError(P, "active_dp.active_datapath", activeDatapath, "must be 0 (synthetic) or 1 (VF)");
      }
      return { kind: "active_dp", activeDatapath };
    }
    case NVSP_MSG5_TYPE_OID_QUERY_EX: {
      const L = NVSP_5_OID_QUERY_EX_LAYOUT;
      return {
        kind: "oid_query_ex",
        header: { type: copy[L.header_type.offset] ?? 0, revision: copy[L.header_revision.offset] ?? 0, size: u16(L.header_size) },
        oid: u32(L.oid),
      };
    }
    case NVSP_MSG5_TYPE_OID_QUERY_EX_COMP: {
      const L = NVSP_5_OID_QUERY_EX_COMP_LAYOUT;
      return { kind: "oid_query_ex_comp", status: u32(L.status), bytes: u32(L.bytes) };
    }
    case NVSP_MSG5_TYPE_SUBCHANNEL: {
      if (options.sender === "host") {
        const L = NVSP_5_SUBCHANNEL_COMPLETE_LAYOUT;
        return { kind: "subchn_comp", status: u32(L.status), numSubchannels: u32(L.num_subchannels) };
      }
      const L = NVSP_5_SUBCHANNEL_REQUEST_LAYOUT;
      const op = u32(L.op);
      // ALLOCATE is the only operation; anything else asks the host to do
      // something undefined.
      if (op !== NVSP_SUBCHANNEL_ALLOCATE) {
        throw new ProtocolError(P, "subchn_req.op", op, "must be NVSP_SUBCHANNEL_ALLOCATE (1)");
      }
      return { kind: "subchn_req", op, numSubchannels: u32(L.num_subchannels) };
    }
    case NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE:
      return readSendTable(copy, options);
    default:
      return { kind: "other", type, body: copy.slice(NVSP_MESSAGE_HEADER_SIZE) };
  }
}

// ---------------------------------------------------------------------------
// Linux guest acceptance rules (§10 step 4–5, `netvsc_init_buf`)

/**
 * Applies Linux's checks to a SEND_RECV_BUF_COMPLETE for a receive buffer of
 * `bufferSize` bytes; returns the one section. Linux fails the device on any
 * of these.
 */
export function checkLinuxRecvBufComplete(msg: NvspMessage, bufferSize: number): NvspReceiveBufferSection {
  if (msg.kind !== "send_recv_buf_complete") throw new ProtocolError(P, "kind", msg.kind, "is not send_recv_buf_complete");
  if (msg.status !== NVSP_STAT_SUCCESS) throw new ProtocolError(P, "send_recv_buf_complete.status", msg.status, "is not NVSP_STAT_SUCCESS (1)");
  const section = msg.sections[0];
  // Linux describes the whole buffer with one section starting at 0.
  if (msg.sections.length !== 1 || section === undefined) {
    throw new ProtocolError(P, "send_recv_buf_complete.num_sections", msg.sections.length, "must be 1");
  }
  if (section.offset !== 0) throw new ProtocolError(P, "send_recv_buf_complete.sections[0].offset", section.offset, "must be 0");
  // A slot smaller than the minimum MTU cannot hold a frame.
  if (section.subAllocSize < NETVSC_MTU_MIN) {
    throw new ProtocolError(P, "send_recv_buf_complete.sections[0].sub_alloc_size", section.subAllocSize, `is below NETVSC_MTU_MIN (${NETVSC_MTU_MIN})`);
  }
  // Slots past the end of the buffer would make the host write outside it.
  const total = section.subAllocSize * section.numSubAllocs;
  if (total > bufferSize) {
    throw new ProtocolError(
      P,
      "send_recv_buf_complete.sections[0].num_sub_allocs",
      section.numSubAllocs,
      `× sub_alloc_size ${section.subAllocSize} = ${total} exceeds the ${bufferSize}-byte receive buffer`,
    );
  }
  return section;
}

/** Applies Linux's checks to a SEND_SEND_BUF_COMPLETE; returns the section size. */
export function checkLinuxSendBufComplete(msg: NvspMessage): number {
  if (msg.kind !== "send_send_buf_complete") throw new ProtocolError(P, "kind", msg.kind, "is not send_send_buf_complete");
  if (msg.status !== NVSP_STAT_SUCCESS) throw new ProtocolError(P, "send_send_buf_complete.status", msg.status, "is not NVSP_STAT_SUCCESS (1)");
  // A section smaller than the minimum MTU cannot hold a frame.
  if (msg.sectionSize < NETVSC_MTU_MIN) {
    throw new ProtocolError(P, "send_send_buf_complete.section_size", msg.sectionSize, `is below NETVSC_MTU_MIN (${NETVSC_MTU_MIN})`);
  }
  return msg.sectionSize;
}
