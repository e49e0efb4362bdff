/**
 * NVSP constants (storvsc-netvsc.md §9–§12): message types (§9.1), status
 * codes (§9.2), protocol versions and Linux's negotiation order (§9.3), the
 * message sizes each side sends (§9), NDIS-config capability bits (§9.1),
 * and the Linux netvsc buffer/section constants (§10–§12).
 *
 * Names are the Linux `hyperv_net.h` names so a reader can grep for them.
 */

// ---------------------------------------------------------------------------
// §9.1 Message types (Linux anonymous enum in hyperv_net.h)

export const NVSP_MSG_TYPE_NONE = 0;
export const NVSP_MSG_TYPE_INIT = 1;
export const NVSP_MSG_TYPE_INIT_COMPLETE = 2;
export const NVSP_VERSION_MSG_START = 100;

// Version 1 messages
export const NVSP_MSG1_TYPE_SEND_NDIS_VER = 100;
export const NVSP_MSG1_TYPE_SEND_RECV_BUF = 101;
export const NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE = 102;
export const NVSP_MSG1_TYPE_REVOKE_RECV_BUF = 103;
export const NVSP_MSG1_TYPE_SEND_SEND_BUF = 104;
export const NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE = 105;
export const NVSP_MSG1_TYPE_REVOKE_SEND_BUF = 106;
export const NVSP_MSG1_TYPE_SEND_RNDIS_PKT = 107;
export const NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE = 108;
export const NVSP_MSG1_TYPE_MAX = NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE;

// Version 2 messages (all but SEND_NDIS_CONFIG obsolete; Linux never sends them)
export const NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF = 109;
export const NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF_COMP = 110;
export const NVSP_MSG2_TYPE_REVOKE_CHIMNEY_DELEGATED_BUF = 111;
export const NVSP_MSG2_TYPE_RESUME_CHIMNEY_RX_INDICATION = 112;
export const NVSP_MSG2_TYPE_TERMINATE_CHIMNEY = 113;
export const NVSP_MSG2_TYPE_TERMINATE_CHIMNEY_COMP = 114;
export const NVSP_MSG2_TYPE_INDICATE_CHIMNEY_EVENT = 115;
export const NVSP_MSG2_TYPE_SEND_CHIMNEY_PKT = 116;
export const NVSP_MSG2_TYPE_SEND_CHIMNEY_PKT_COMP = 117;
export const NVSP_MSG2_TYPE_POST_CHIMNEY_RECV_REQ = 118;
export const NVSP_MSG2_TYPE_POST_CHIMNEY_RECV_REQ_COMP = 119;
export const NVSP_MSG2_TYPE_ALLOC_RXBUF = 120;
export const NVSP_MSG2_TYPE_ALLOC_RXBUF_COMP = 121;
export const NVSP_MSG2_TYPE_FREE_RXBUF = 122;
export const NVSP_MSG2_TYPE_SEND_VMQ_RNDIS_PKT = 123;
export const NVSP_MSG2_TYPE_SEND_VMQ_RNDIS_PKT_COMP = 124;
export const NVSP_MSG2_TYPE_SEND_NDIS_CONFIG = 125;
export const NVSP_MSG2_TYPE_ALLOC_CHIMNEY_HANDLE = 126;
export const NVSP_MSG2_TYPE_ALLOC_CHIMNEY_HANDLE_COMP = 127;
export const NVSP_MSG2_MAX = NVSP_MSG2_TYPE_ALLOC_CHIMNEY_HANDLE_COMP;

// Version 4 messages
export const NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION = 128;
export const NVSP_MSG4_TYPE_SWITCH_DATA_PATH = 129;
export const NVSP_MSG4_TYPE_UPLINK_CONNECT_STATE_DEPRECATED = 130;
export const NVSP_MSG4_MAX = NVSP_MSG4_TYPE_UPLINK_CONNECT_STATE_DEPRECATED;

// Version 5 messages
export const NVSP_MSG5_TYPE_OID_QUERY_EX = 131;
export const NVSP_MSG5_TYPE_OID_QUERY_EX_COMP = 132;
/** Request and completion share the type; the direction tells them apart. */
export const NVSP_MSG5_TYPE_SUBCHANNEL = 133;
export const NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE = 134;
export const NVSP_MSG5_MAX = NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE;

// Version 6 messages (PacketDirect; unused)
export const NVSP_MSG6_TYPE_PD_API = 135;
export const NVSP_MSG6_TYPE_PD_POST_BATCH = 136;
export const NVSP_MSG6_MAX = NVSP_MSG6_TYPE_PD_POST_BATCH;

/** Linux names of every message type, without the `NVSP_MSGn_TYPE_` prefix. */
export const NVSP_MSG_TYPE_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [NVSP_MSG_TYPE_NONE, "NONE"],
  [NVSP_MSG_TYPE_INIT, "INIT"],
  [NVSP_MSG_TYPE_INIT_COMPLETE, "INIT_COMPLETE"],
  [NVSP_MSG1_TYPE_SEND_NDIS_VER, "SEND_NDIS_VER"],
  [NVSP_MSG1_TYPE_SEND_RECV_BUF, "SEND_RECV_BUF"],
  [NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE, "SEND_RECV_BUF_COMPLETE"],
  [NVSP_MSG1_TYPE_REVOKE_RECV_BUF, "REVOKE_RECV_BUF"],
  [NVSP_MSG1_TYPE_SEND_SEND_BUF, "SEND_SEND_BUF"],
  [NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE, "SEND_SEND_BUF_COMPLETE"],
  [NVSP_MSG1_TYPE_REVOKE_SEND_BUF, "REVOKE_SEND_BUF"],
  [NVSP_MSG1_TYPE_SEND_RNDIS_PKT, "SEND_RNDIS_PKT"],
  [NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, "SEND_RNDIS_PKT_COMPLETE"],
  [NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF, "SEND_CHIMNEY_DELEGATED_BUF"],
  [NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF_COMP, "SEND_CHIMNEY_DELEGATED_BUF_COMP"],
  [NVSP_MSG2_TYPE_REVOKE_CHIMNEY_DELEGATED_BUF, "REVOKE_CHIMNEY_DELEGATED_BUF"],
  [NVSP_MSG2_TYPE_RESUME_CHIMNEY_RX_INDICATION, "RESUME_CHIMNEY_RX_INDICATION"],
  [NVSP_MSG2_TYPE_TERMINATE_CHIMNEY, "TERMINATE_CHIMNEY"],
  [NVSP_MSG2_TYPE_TERMINATE_CHIMNEY_COMP, "TERMINATE_CHIMNEY_COMP"],
  [NVSP_MSG2_TYPE_INDICATE_CHIMNEY_EVENT, "INDICATE_CHIMNEY_EVENT"],
  [NVSP_MSG2_TYPE_SEND_CHIMNEY_PKT, "SEND_CHIMNEY_PKT"],
  [NVSP_MSG2_TYPE_SEND_CHIMNEY_PKT_COMP, "SEND_CHIMNEY_PKT_COMP"],
  [NVSP_MSG2_TYPE_POST_CHIMNEY_RECV_REQ, "POST_CHIMNEY_RECV_REQ"],
  [NVSP_MSG2_TYPE_POST_CHIMNEY_RECV_REQ_COMP, "POST_CHIMNEY_RECV_REQ_COMP"],
  [NVSP_MSG2_TYPE_ALLOC_RXBUF, "ALLOC_RXBUF"],
  [NVSP_MSG2_TYPE_ALLOC_RXBUF_COMP, "ALLOC_RXBUF_COMP"],
  [NVSP_MSG2_TYPE_FREE_RXBUF, "FREE_RXBUF"],
  [NVSP_MSG2_TYPE_SEND_VMQ_RNDIS_PKT, "SEND_VMQ_RNDIS_PKT"],
  [NVSP_MSG2_TYPE_SEND_VMQ_RNDIS_PKT_COMP, "SEND_VMQ_RNDIS_PKT_COMP"],
  [NVSP_MSG2_TYPE_SEND_NDIS_CONFIG, "SEND_NDIS_CONFIG"],
  [NVSP_MSG2_TYPE_ALLOC_CHIMNEY_HANDLE, "ALLOC_CHIMNEY_HANDLE"],
  [NVSP_MSG2_TYPE_ALLOC_CHIMNEY_HANDLE_COMP, "ALLOC_CHIMNEY_HANDLE_COMP"],
  [NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION, "SEND_VF_ASSOCIATION"],
  [NVSP_MSG4_TYPE_SWITCH_DATA_PATH, "SWITCH_DATA_PATH"],
  [NVSP_MSG4_TYPE_UPLINK_CONNECT_STATE_DEPRECATED, "UPLINK_CONNECT_STATE_DEPRECATED"],
  [NVSP_MSG5_TYPE_OID_QUERY_EX, "OID_QUERY_EX"],
  [NVSP_MSG5_TYPE_OID_QUERY_EX_COMP, "OID_QUERY_EX_COMP"],
  [NVSP_MSG5_TYPE_SUBCHANNEL, "SUBCHANNEL"],
  [NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE, "SEND_INDIRECTION_TABLE"],
  [NVSP_MSG6_TYPE_PD_API, "PD_API"],
  [NVSP_MSG6_TYPE_PD_POST_BATCH, "PD_POST_BATCH"],
]);

/** A message type some version defines (NONE is not a message). */
export function isNvspMessageType(type: number): boolean {
  return type !== NVSP_MSG_TYPE_NONE && NVSP_MSG_TYPE_NAMES.has(type);
}

export function nvspMessageTypeName(type: number): string {
  return NVSP_MSG_TYPE_NAMES.get(type) ?? "UNKNOWN";
}

// ---------------------------------------------------------------------------
// §9.2 Status codes

export const NVSP_STAT_NONE = 0;
export const NVSP_STAT_SUCCESS = 1;
export const NVSP_STAT_FAIL = 2;
export const NVSP_STAT_PROTOCOL_TOO_NEW = 3;
export const NVSP_STAT_PROTOCOL_TOO_OLD = 4;
export const NVSP_STAT_INVALID_RNDIS_PKT = 5;
export const NVSP_STAT_BUSY = 6;
export const NVSP_STAT_PROTOCOL_UNSUPPORTED = 7;

export const NVSP_STAT_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [NVSP_STAT_NONE, "NONE"],
  [NVSP_STAT_SUCCESS, "SUCCESS"],
  [NVSP_STAT_FAIL, "FAIL"],
  [NVSP_STAT_PROTOCOL_TOO_NEW, "PROTOCOL_TOO_NEW"],
  [NVSP_STAT_PROTOCOL_TOO_OLD, "PROTOCOL_TOO_OLD"],
  [NVSP_STAT_INVALID_RNDIS_PKT, "INVALID_RNDIS_PKT"],
  [NVSP_STAT_BUSY, "BUSY"],
  [NVSP_STAT_PROTOCOL_UNSUPPORTED, "PROTOCOL_UNSUPPORTED"],
]);

// ---------------------------------------------------------------------------
// §9.3 Versions (u32 = major << 16 | minor)

export const NVSP_INVALID_PROTOCOL_VERSION = 0xffffffff;
export const NVSP_PROTOCOL_VERSION_1 = 0x00000002;
export const NVSP_PROTOCOL_VERSION_2 = 0x00030002;
export const NVSP_PROTOCOL_VERSION_4 = 0x00040000;
export const NVSP_PROTOCOL_VERSION_5 = 0x00050000;
export const NVSP_PROTOCOL_VERSION_6 = 0x00060000;
export const NVSP_PROTOCOL_VERSION_61 = 0x00060001;

/** Linux `netvsc_connect_vsp` tries these in order; the first INIT_COMPLETE with SUCCESS wins. */
export const LINUX_NVSP_VERSION_ORDER: readonly number[] = Object.freeze([
  NVSP_PROTOCOL_VERSION_61,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_4,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_1,
]);

export const NVSP_PROTOCOL_VERSIONS: ReadonlySet<number> = new Set<number>(LINUX_NVSP_VERSION_ORDER);

export function isNvspProtocolVersion(v: number): boolean {
  return NVSP_PROTOCOL_VERSIONS.has(v);
}

/** "v1", "v2", "v4", "v5", "v6", "v6.1" for the known versions, else the hex value. */
export function formatNvspVersion(v: number): string {
  switch (v) {
    case NVSP_PROTOCOL_VERSION_1:
      return "v1";
    case NVSP_PROTOCOL_VERSION_2:
      return "v2";
    case NVSP_PROTOCOL_VERSION_4:
      return "v4";
    case NVSP_PROTOCOL_VERSION_5:
      return "v5";
    case NVSP_PROTOCOL_VERSION_6:
      return "v6";
    case NVSP_PROTOCOL_VERSION_61:
      return "v6.1";
    default:
      return `0x${v.toString(16).padStart(8, "0")}`;
  }
}

/**
 * The highest message type a version defines (OV). A host must not parse a
 * type newer than the negotiated version: its layout was never agreed on.
 */
export function nvspMaxMessageType(version: number): number {
  if (version >= NVSP_PROTOCOL_VERSION_6) return NVSP_MSG6_MAX;
  if (version >= NVSP_PROTOCOL_VERSION_5) return NVSP_MSG5_MAX;
  if (version >= NVSP_PROTOCOL_VERSION_4) return NVSP_MSG4_MAX;
  if (version >= NVSP_PROTOCOL_VERSION_2) return NVSP_MSG2_MAX;
  return NVSP_MSG1_TYPE_MAX;
}

// NDIS version carried in SEND_NDIS_VER (§9.3)
export const NDIS_VERSION_6_1 = 0x00060001;
export const NDIS_VERSION_6_30 = 0x0006001e;

/** Linux/DPDK: NDIS 6.1 for NVSP ≤ v4, else 6.30. */
export function linuxNdisVersion(nvspVersion: number): { readonly major: number; readonly minor: number } {
  const v = nvspVersion > NVSP_PROTOCOL_VERSION_4 ? NDIS_VERSION_6_30 : NDIS_VERSION_6_1;
  return { major: v >>> 16, minor: v & 0xffff };
}

// ---------------------------------------------------------------------------
// §9 Message sizes

/** The message header (`struct nvsp_message_header`): u32 msg_type. */
export const NVSP_MESSAGE_HEADER_SIZE = 4;
/** `sizeof(union nvsp_all_messages)`; the v6 PD-API completion is the largest member. */
export const NVSP_MESSAGE_UNION_SIZE = 36;
/** `sizeof(struct nvsp_message)`: what Linux sends for every request, at every version. */
export const NVSP_MESSAGE_SIZE = 40;
/** OV replies with 28-byte messages when the negotiated version is below 6.1. */
export const NVSP_PACKET_SIZE_V1 = 28;
/** …and with 40-byte messages from 6.1 on. */
export const NVSP_PACKET_SIZE_V61 = 40;
/** Linux's receive completion is a packed {hdr, u32 status} (`send_recv_completions`). */
export const NVSP_RECV_COMPLETION_SIZE = 8;
/** FreeBSD pads requests to ≥ 32 bytes because "Hyper-V never replies" to shorter ones. */
export const HN_NVS_REQSIZE_MIN = 32;
/**
 * Linux `netvsc_send_completion` requires INIT_COMPLETE and
 * SEND_RECV_BUF_COMPLETE to be at least 4 + sizeof(send_receive_buffer_complete).
 */
export const NVSP_LINUX_INIT_COMPLETION_MIN_SIZE = 28;

/** The size an OV-like host uses for its NVSP messages at `version`. */
export function nvspHostMessageSize(version: number): number {
  return version >= NVSP_PROTOCOL_VERSION_61 ? NVSP_PACKET_SIZE_V61 : NVSP_PACKET_SIZE_V1;
}

// ---------------------------------------------------------------------------
// Field values

/** SEND_RNDIS_PKT channel_type. */
export const NVSP_RNDIS_CHANNEL_TYPE_DATA = 0; // RMC_DATA
export const NVSP_RNDIS_CHANNEL_TYPE_CONTROL = 1; // RMC_CONTROL
/** send_buf_section_index meaning "no send-buffer section" (`NETVSC_INVALID_INDEX`). */
export const NETVSC_INVALID_INDEX = 0xffffffff;

/** SWITCH_DATA_PATH active_datapath (`enum nvsp_vm_datapath`). */
export const NVSP_DATAPATH_SYNTHETIC = 0;
export const NVSP_DATAPATH_VF = 1;

/** SUBCHANNEL op (`enum nvsp_subchannel_operation`). */
export const NVSP_SUBCHANNEL_NONE = 0;
export const NVSP_SUBCHANNEL_ALLOCATE = 1;

/** `struct nvsp_2_vsc_capability` bits (u64). */
export const NVSP_CAPABILITY_VMQ = 1n << 0n;
export const NVSP_CAPABILITY_CHIMNEY = 1n << 1n;
export const NVSP_CAPABILITY_SRIOV = 1n << 2n;
export const NVSP_CAPABILITY_IEEE8021Q = 1n << 3n;
export const NVSP_CAPABILITY_CORRELATION_ID = 1n << 4n;
export const NVSP_CAPABILITY_TEAMING = 1n << 5n;
export const NVSP_CAPABILITY_VSUBNETID = 1n << 6n;
export const NVSP_CAPABILITY_RSC = 1n << 7n;

export const NVSP_CAPABILITY_NAMES: readonly (readonly [bigint, string])[] = [
  [NVSP_CAPABILITY_VMQ, "vmq"],
  [NVSP_CAPABILITY_CHIMNEY, "chimney"],
  [NVSP_CAPABILITY_SRIOV, "sriov"],
  [NVSP_CAPABILITY_IEEE8021Q, "ieee8021q"],
  [NVSP_CAPABILITY_CORRELATION_ID, "correlation_id"],
  [NVSP_CAPABILITY_TEAMING, "teaming"],
  [NVSP_CAPABILITY_VSUBNETID, "vsubnetid"],
  [NVSP_CAPABILITY_RSC, "rsc"],
];

/** Linux `negotiate_nvsp_ver`: 802.1Q always; SR-IOV and teaming from v5; RSC from v6.1. */
export function linuxNdisConfigCapabilities(version: number): bigint {
  let cap = NVSP_CAPABILITY_IEEE8021Q;
  if (version >= NVSP_PROTOCOL_VERSION_5) cap |= NVSP_CAPABILITY_SRIOV | NVSP_CAPABILITY_TEAMING;
  if (version >= NVSP_PROTOCOL_VERSION_61) cap |= NVSP_CAPABILITY_RSC;
  return cap;
}

/** SEND_NDIS_CONFIG mtu: Linux sends the interface MTU + ETH_HLEN (14), 1514 by default. */
export const NVSP_LINUX_DEFAULT_NDIS_CONFIG_MTU = 1500 + 14;

// ---------------------------------------------------------------------------
// §10–§12 Linux netvsc buffer and channel constants

export const NETVSC_RECEIVE_BUFFER_ID = 0xcafe;
export const NETVSC_SEND_BUFFER_ID = 0;
export const NETVSC_RECEIVE_BUFFER_SIZE = 1024 * 1024 * 31;
export const NETVSC_RECEIVE_BUFFER_SIZE_LEGACY = 1024 * 1024 * 15;
export const NETVSC_RECEIVE_BUFFER_DEFAULT = 1024 * 1024 * 16;
export const NETVSC_SEND_BUFFER_SIZE = 1024 * 1024 * 15;
export const NETVSC_SEND_BUFFER_DEFAULT = 1024 * 1024;
export const NETVSC_SEND_SECTION_SIZE = 6144;
export const NETVSC_RECV_SECTION_SIZE = 1728;
/**
 * Linux rejects receive sub-allocations and send sections smaller than
 * this: 68 = `NETVSC_MTU_MIN` (68, ETH_MIN_MTU), the smallest frame it can put there.
 */
export const NETVSC_MTU_MIN = 68;
/** Entries in the send indirection table (`VRSS_SEND_TAB_SIZE`). */
export const VRSS_SEND_TAB_SIZE = 16;
export const VRSS_CHANNEL_MAX = 64;
export const VRSS_CHANNEL_DEFAULT = 8;
/** Most transfer-page ranges Linux accepts in one receive packet (`NVSP_RSC_MAX`). */
export const NVSP_RSC_MAX = 562;
/** OV `max_mdl_chain_len` in INIT_COMPLETE. */
export const NVSP_OPENVMM_MAX_MDL_CHAIN_LEN = 34;

/** Types a guest sends; SEND_RNDIS_PKT(_COMPLETE), SWITCH_DATA_PATH and SUBCHANNEL go both ways. */
export const NVSP_GUEST_TO_HOST_TYPES: ReadonlySet<number> = new Set<number>([
  NVSP_MSG_TYPE_INIT,
  NVSP_MSG1_TYPE_SEND_NDIS_VER,
  NVSP_MSG1_TYPE_SEND_RECV_BUF,
  NVSP_MSG1_TYPE_REVOKE_RECV_BUF,
  NVSP_MSG1_TYPE_SEND_SEND_BUF,
  NVSP_MSG1_TYPE_REVOKE_SEND_BUF,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG2_TYPE_SEND_NDIS_CONFIG,
  NVSP_MSG4_TYPE_SWITCH_DATA_PATH,
  NVSP_MSG5_TYPE_OID_QUERY_EX,
  NVSP_MSG5_TYPE_SUBCHANNEL,
]);

/** Types a host sends. */
export const NVSP_HOST_TO_GUEST_TYPES: ReadonlySet<number> = new Set<number>([
  NVSP_MSG_TYPE_INIT_COMPLETE,
  NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE,
  NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION,
  NVSP_MSG4_TYPE_SWITCH_DATA_PATH,
  NVSP_MSG5_TYPE_OID_QUERY_EX_COMP,
  NVSP_MSG5_TYPE_SUBCHANNEL,
  NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE,
]);
