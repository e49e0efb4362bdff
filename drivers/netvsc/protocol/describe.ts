/**
 * Human-readable descriptions of NVSP messages (storvsc-netvsc.md §9),
 * RNDIS messages with their PPIs and OID payloads (§13) and the Ethernet
 * frames they carry, for the `decode` CLI and trace labels. Field names are
 * the Linux struct field names.
 *
 * These functions never throw: they describe hostile bytes too, and a trace
 * label must not be able to crash a run. Invalid input is shown as such,
 * with the decoder's error message and the raw bytes.
 */
import { VmbusSimError, fmtNum } from "../../../core/index.js";
import { hex, hexBytes, printable } from "./bytes.js";
import {
  ETHERTYPE_NAMES,
  ETH_P_ARP,
  ETH_P_IP,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  IPPROTO_ICMP,
  IPPROTO_NAMES,
  IPPROTO_UDP,
  parseArp,
  parseEthernetFrame,
  parseIcmp,
  parseIpv4Packet,
  parseUdpDatagram,
} from "./ethernet.js";
import {
  NDIS_OFFLOAD_LAYOUT,
  NDIS_OFFLOAD_PARAMS_LAYOUT,
  decodeNdisOffload,
  decodeNdisOffloadParams,
  decodeNdisRecvScaleCap,
  decodeNdisRecvScaleParam,
  decodeRndisConfigParameter,
  decodeU32Info,
} from "./ndis-objects.js";
import {
  NETVSC_INVALID_INDEX,
  NVSP_CAPABILITY_NAMES,
  NVSP_MESSAGE_SIZE,
  NVSP_STAT_NAMES,
  formatNvspVersion,
  nvspMessageTypeName,
} from "./nvsp-constants.js";
import { type NvspMessage, decodeNvspMessage, nvspMessageType } from "./nvsp-message.js";
import {
  NDIS_OBJECT_TYPE_NAMES,
  OID_802_3_CURRENT_ADDRESS,
  OID_802_3_MAXIMUM_LIST_SIZE,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_CURRENT_LOOKAHEAD,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_HARDWARE_STATUS,
  OID_GEN_LINK_SPEED,
  OID_GEN_MAC_OPTIONS,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MAXIMUM_LOOKAHEAD,
  OID_GEN_MAXIMUM_SEND_PACKETS,
  OID_GEN_MAXIMUM_TOTAL_SIZE,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_MEDIA_IN_USE,
  OID_GEN_MEDIA_SUPPORTED,
  OID_GEN_RECEIVE_BLOCK_SIZE,
  OID_GEN_RECEIVE_BUFFER_SPACE,
  OID_GEN_TRANSMIT_BLOCK_SIZE,
  OID_GEN_TRANSMIT_BUFFER_SPACE,
  OID_GEN_VENDOR_ID,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_GEN_RNDIS_CONFIG_PARAMETER,
  OID_TCP_OFFLOAD_CURRENT_CONFIG,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  PPI_TYPE_NAMES,
  RNDIS_STATUS_NAMES,
  formatPacketFilter,
  oidName,
  rndisMessageTypeName,
} from "./rndis-constants.js";
import { type RndisMessage, decodeRndisMessage, rndisMessageType, splitRndisMessages } from "./rndis-message.js";
import { type RndisPpi, interpretPpi } from "./rndis-ppi.js";

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

export type DescribeStyle = "tree" | "line";

function render(n: DescNode, style: DescribeStyle | undefined): string {
  return style === "line" ? renderLine(n) : renderTree(n);
}

function errorText(e: unknown): string {
  if (e instanceof VmbusSimError) return e.message;
  // Not expected from our decoders; still, a description must not throw.
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function named(value: number, names: ReadonlyMap<number, string>, width = 0): string {
  const name = names.get(value);
  return `${hex(value, width)}${name ? `[${name}]` : ""}`;
}

/** How many payload bytes a description shows before "…". */
const SHOWN_BYTES = 64;

// ---------------------------------------------------------------------------
// NVSP

function nvspStatus(status: number): string {
  return `${status}${NVSP_STAT_NAMES.has(status) ? `[${NVSP_STAT_NAMES.get(status)}]` : ""}`;
}

function capabilityText(cap: bigint): string {
  const names = NVSP_CAPABILITY_NAMES.filter(([bit]) => (cap & bit) !== 0n).map(([, n]) => n);
  const known = NVSP_CAPABILITY_NAMES.reduce((m, [bit]) => m | bit, 0n);
  const rest = cap & ~known;
  if (rest !== 0n) names.push(hex(rest));
  return `${hex(cap)}[${names.length > 0 ? names.join("|") : "none"}]`;
}

function nvspFields(m: NvspMessage): string {
  switch (m.kind) {
    case "init":
      return `min_protocol_ver=${hex(m.minProtocolVersion, 8)}[${formatNvspVersion(m.minProtocolVersion)}] max_protocol_ver=${hex(m.maxProtocolVersion, 8)}[${formatNvspVersion(m.maxProtocolVersion)}]`;
    case "init_complete":
      return `negotiated_protocol_ver=${hex(m.negotiatedProtocolVersion, 8)} max_mdl_chain_len=${m.maxMdlChainLength} status=${nvspStatus(m.status)}`;
    case "send_ndis_ver":
      return `ndis_major_ver=${m.ndisMajorVersion} ndis_minor_ver=${m.ndisMinorVersion}`;
    case "send_recv_buf":
    case "send_send_buf":
      return `gpadl_handle=${hex(m.gpadlHandle)} id=${hex(m.id, 4)}`;
    case "send_recv_buf_complete":
      return `status=${nvspStatus(m.status)} num_sections=${m.sections.length}`;
    case "revoke_recv_buf":
    case "revoke_send_buf":
      return `id=${hex(m.id, 4)}`;
    case "send_send_buf_complete":
      return `status=${nvspStatus(m.status)} section_size=${fmtNum(m.sectionSize)}`;
    case "send_rndis_pkt":
      return (
        `channel_type=${m.channelType}[${m.channelType === 0 ? "data" : "control"}] ` +
        `send_buf_section_index=${m.sendBufferSectionIndex === NETVSC_INVALID_INDEX ? "0xffffffff[none]" : m.sendBufferSectionIndex} ` +
        `send_buf_section_size=${m.sendBufferSectionSize}`
      );
    case "send_rndis_pkt_complete":
      return `status=${nvspStatus(m.status)}`;
    case "send_ndis_config":
      return `mtu=${m.mtu} reserved=${m.reserved} capability=${capabilityText(m.capability)}`;
    case "vf_assoc":
      return `allocated=${m.allocated} serial=${m.serial}`;
    case "active_dp":
      return `active_datapath=${m.activeDatapath}[${m.activeDatapath === 0 ? "synthetic" : "VF"}]`;
    case "oid_query_ex":
      return `header={type=${hex(m.header.type, 2)} revision=${m.header.revision} size=${m.header.size}} oid=${named(m.oid, new Map([[m.oid, oidName(m.oid)]]), 8)}`;
    case "oid_query_ex_comp":
      return `status=${named(m.status, RNDIS_STATUS_NAMES, 8)} bytes=${m.bytes}`;
    case "subchn_req":
      return `op=${m.op}[ALLOCATE] num_subchannels=${m.numSubchannels}`;
    case "subchn_comp":
      return `status=${nvspStatus(m.status)} num_subchannels=${m.numSubchannels}`;
    case "send_table": {
      const where = m.tableOffset !== undefined && m.tableOffset !== m.offset ? ` (read at ${m.tableOffset})` : "";
      return `count=${m.table.length} offset=${m.offset ?? 12}${where} table=[${m.table.join(" ")}]`;
    }
    case "other":
      return m.body.some((b) => b !== 0) ? `body=[${hexBytes(m.body, SHOWN_BYTES)}]` : "body=zeros";
  }
}

function nvspChildren(m: NvspMessage): DescNode[] {
  if (m.kind !== "send_recv_buf_complete") return [];
  return m.sections.map((s, i) =>
    node(`sections[${i}] offset=${s.offset} sub_alloc_size=${s.subAllocSize} num_sub_allocs=${s.numSubAllocs} end_offset=${fmtNum(s.endOffset)}`),
  );
}

export interface DescribeNvspOptions {
  readonly version?: number;
  readonly sender?: "guest" | "host";
  readonly style?: DescribeStyle;
}

/** Describes an NVSP message, naming every field; invalid input is shown with the reason. */
export function describeNvsp(bytes: Uint8Array, options: DescribeNvspOptions = {}): string {
  try {
    const m = decodeNvspMessage(bytes, {
      ...(options.version !== undefined ? { version: options.version } : {}),
      ...(options.sender !== undefined ? { sender: options.sender } : {}),
    });
    const type = nvspMessageType(m);
    return render(node(`nvsp ${nvspMessageTypeName(type)}(${type}) len=${bytes.length} ${nvspFields(m)}`, nvspChildren(m)), options.style);
  } catch (e) {
    const shown = bytes.subarray(0, NVSP_MESSAGE_SIZE);
    return render(
      node(`nvsp (invalid: ${errorText(e)})`, [node(`bytes[${bytes.length}] ${hexBytes(shown)}${bytes.length > shown.length ? " …" : ""}`)]),
      options.style,
    );
  }
}

// ---------------------------------------------------------------------------
// Ethernet

function describeTransport(protocol: number, payload: Uint8Array, src: string, dst: string): string {
  if (protocol === IPPROTO_ICMP) {
    const icmp = parseIcmp(payload);
    const kind = icmp.type === ICMP_ECHO ? "echo request" : icmp.type === ICMP_ECHOREPLY ? "echo reply" : `type ${icmp.type} code ${icmp.code}`;
    return `ICMP ${kind} id=${icmp.identifier} seq=${icmp.sequence} len=${icmp.data.length}`;
  }
  if (protocol === IPPROTO_UDP) {
    const udp = parseUdpDatagram(payload, src, dst);
    return `UDP ${src}:${udp.srcPort} > ${dst}:${udp.dstPort} len=${udp.payload.length}`;
  }
  return `${IPPROTO_NAMES.get(protocol) ?? `protocol ${protocol}`} len=${payload.length}`;
}

/** One line: addresses, tag, ethertype and what the known layers say. Never throws. */
export function describeEthernetFrame(bytes: Uint8Array): string {
  let head = "eth";
  try {
    const eth = parseEthernetFrame(bytes);
    head = `eth ${eth.src} > ${eth.dst}${eth.vlan ? ` vlan ${eth.vlan.vid} pcp ${eth.vlan.pcp}` : ""} type ${hex(eth.etherType, 4)}` +
      `${ETHERTYPE_NAMES.has(eth.etherType) ? `[${ETHERTYPE_NAMES.get(eth.etherType)}]` : ""} len=${bytes.length}`;
    if (eth.etherType === ETH_P_ARP) {
      const arp = parseArp(eth.payload);
      const what =
        arp.op === 1 ? `request who-has ${arp.targetIp} tell ${arp.senderIp}` : arp.op === 2 ? `reply ${arp.senderIp} is-at ${arp.senderMac}` : `op ${arp.op}`;
      return `${head}: ARP ${what}`;
    }
    if (eth.etherType === ETH_P_IP) {
      const ip = parseIpv4Packet(eth.payload);
      const ipText = `IPv4 ${ip.src} > ${ip.dst} ttl=${ip.ttl} id=${ip.identification} len=${ip.totalLength}`;
      if (ip.fragmentOffset !== 0) return `${head}: ${ipText} fragment offset=${ip.fragmentOffset * 8}`;
      return `${head}: ${ipText}: ${describeTransport(ip.protocol, ip.payload, ip.src, ip.dst)}`;
    }
    return head;
  } catch (e) {
    return `${head} (invalid: ${errorText(e)})`;
  }
}

// ---------------------------------------------------------------------------
// RNDIS

function rndisStatus(status: number): string {
  return named(status, RNDIS_STATUS_NAMES, 8);
}

function oidText(oid: number): string {
  return `${hex(oid, 8)}[${oidName(oid)}]`;
}

function bitsText(b: boolean, name: string): string {
  return b ? ` ${name}` : "";
}

function ppiNode(p: RndisPpi, i: number, direction: "tx" | "rx"): DescNode {
  const typeName = p.internal ? (p.type === 1 ? "RNDIS_PKTINFO_ID" : `internal ${p.type}`) : (PPI_TYPE_NAMES.get(p.type) ?? `type ${p.type}`);
  let text: string;
  try {
    const ip = interpretPpi(p, direction);
    switch (ip.kind) {
      case "checksum-tx":
        text =
          `value=${hex(ip.value, 8)}${bitsText(ip.info.isIpv4, "is_ipv4")}${bitsText(ip.info.isIpv6, "is_ipv6")}` +
          `${bitsText(ip.info.tcpChecksum, "tcp_checksum")}${bitsText(ip.info.udpChecksum, "udp_checksum")}` +
          `${bitsText(ip.info.ipHeaderChecksum, "ip_header_checksum")} tcp_header_offset=${ip.info.tcpHeaderOffset}`;
        break;
      case "checksum-rx": {
        const i2 = ip.info;
        const flags = [
          [i2.tcpChecksumFailed, "tcp_checksum_failed"],
          [i2.udpChecksumFailed, "udp_checksum_failed"],
          [i2.ipChecksumFailed, "ip_checksum_failed"],
          [i2.tcpChecksumSucceeded, "tcp_checksum_succeeded"],
          [i2.udpChecksumSucceeded, "udp_checksum_succeeded"],
          [i2.ipChecksumSucceeded, "ip_checksum_succeeded"],
          [i2.loopback, "loopback"],
          [i2.tcpChecksumValueInvalid, "tcp_checksum_value_invalid"],
          [i2.ipChecksumValueInvalid, "ip_checksum_value_invalid"],
        ] as const;
        text = `value=${hex(ip.value, 8)}${flags.map(([b, n]) => bitsText(b, n)).join("")}`;
        break;
      }
      case "vlan":
        text = `value=${hex(ip.value, 8)} pri=${ip.info.priority} cfi=${ip.info.cfi} vlanid=${ip.info.vlanId}`;
        break;
      case "lso-v2":
        text = `value=${hex(ip.value, 8)} mss=${ip.info.mss} tcp_header_offset=${ip.info.tcpHeaderOffset} type=${ip.info.type} ip_version=${ip.info.ipVersion === 0 ? "v4" : "v6"}`;
        break;
      case "hash-value":
      case "hash-info":
        text = `value=${hex(ip.value, 8)}`;
        break;
      case "pktinfo-id":
        text = `ver=${ip.info.version} flag=${hex(ip.info.flags, 2)} pkt_id=${ip.info.pktId}`;
        break;
      case "other":
        text = `data=[${hexBytes(ip.data, SHOWN_BYTES)}]`;
        break;
    }
  } catch (e) {
    text = `(invalid: ${errorText(e)}) data=[${hexBytes(p.data, SHOWN_BYTES)}]`;
  }
  return node(`ppi[${i}] ${typeName} ${text}`);
}

function headerText(h: { readonly type: number; readonly revision: number; readonly size: number }): string {
  return `header={type=${named(h.type, NDIS_OBJECT_TYPE_NAMES, 2)} revision=${h.revision} size=${h.size}}`;
}

function nonZeroFields(o: object, names: readonly string[]): string {
  const parts: string[] = [];
  const fields = o as Readonly<Record<string, unknown>>;
  for (const n of names) {
    const v = fields[n];
    if (typeof v === "number" && v !== 0) parts.push(`${n}=${hex(v)}`);
  }
  return parts.length > 0 ? parts.join(" ") : "all fields 0";
}

/** OIDs whose answer is one u32 (§13.5 OV query answers). */
const U32_OIDS: ReadonlySet<number> = new Set<number>([
  OID_GEN_HARDWARE_STATUS,
  OID_GEN_MEDIA_SUPPORTED,
  OID_GEN_MEDIA_IN_USE,
  OID_GEN_MAXIMUM_LOOKAHEAD,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_LINK_SPEED,
  OID_GEN_TRANSMIT_BUFFER_SPACE,
  OID_GEN_RECEIVE_BUFFER_SPACE,
  OID_GEN_TRANSMIT_BLOCK_SIZE,
  OID_GEN_RECEIVE_BLOCK_SIZE,
  OID_GEN_VENDOR_ID,
  OID_GEN_CURRENT_LOOKAHEAD,
  OID_GEN_MAXIMUM_TOTAL_SIZE,
  OID_GEN_MAC_OPTIONS,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_MAXIMUM_SEND_PACKETS,
  OID_802_3_MAXIMUM_LIST_SIZE,
]);

/** What an OID's information buffer says, where this layer knows the OID. */
function oidInfoText(oid: number, info: Uint8Array): string | null {
  try {
    switch (oid) {
      case OID_GEN_CURRENT_PACKET_FILTER: {
        const f = decodeU32Info(info, "packet filter");
        return `packet_filter=${hex(f, 8)}[${formatPacketFilter(f)}]`;
      }
      case OID_TCP_OFFLOAD_PARAMETERS: {
        const p = decodeNdisOffloadParams(info);
        return `ndis_offload_params ${headerText(p.header)} ${nonZeroFields(p, Object.keys(NDIS_OFFLOAD_PARAMS_LAYOUT))}`;
      }
      case OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES:
      case OID_TCP_OFFLOAD_CURRENT_CONFIG: {
        const o = decodeNdisOffload(info);
        return `ndis_offload ${headerText(o.header)} ${nonZeroFields(o, Object.keys(NDIS_OFFLOAD_LAYOUT))}`;
      }
      case OID_GEN_RECEIVE_SCALE_CAPABILITIES: {
        const c = decodeNdisRecvScaleCap(info);
        return `ndis_recv_scale_cap ${headerText(c.header)} cap_flag=${hex(c.capFlag, 8)} num_int_msg=${c.numIntMsg} num_recv_que=${c.numRecvQue} num_indirect_tabent=${c.numIndirectTabent}`;
      }
      case OID_GEN_RECEIVE_SCALE_PARAMETERS: {
        const r = decodeNdisRecvScaleParam(info);
        const shown = r.indirectionTable.slice(0, 16).join(" ");
        return (
          `ndis_recv_scale_param ${headerText(r.header)} flag=${hex(r.flag, 4)} hashinfo=${hex(r.hashinfo, 8)} ` +
          `indirect_tabsize=${r.indirectTabsize} hashkey_size=${r.hashkeySize} table=[${shown}${r.indirectionTable.length > 16 ? " …" : ""}]`
        );
      }
      case OID_GEN_RNDIS_CONFIG_PARAMETER: {
        const c = decodeRndisConfigParameter(info);
        return `config_parameter "${printable(c.name)}"=${typeof c.value === "string" ? `"${printable(c.value)}"` : c.value}`;
      }
      case OID_802_3_PERMANENT_ADDRESS:
      case OID_802_3_CURRENT_ADDRESS:
        return info.length === 6 ? `mac=${Array.from(info, (b) => b.toString(16).padStart(2, "0")).join(":")}` : null;
      default:
        return U32_OIDS.has(oid) && info.length === 4 ? `value=${fmtNum(decodeU32Info(info))}` : null;
    }
  } catch (e) {
    return `(invalid: ${errorText(e)})`;
  }
}

function infoNode(info: Uint8Array, oid: number | null): DescNode[] {
  if (info.length === 0) return [];
  const meaning = oid !== null ? oidInfoText(oid, info) : null;
  const raw = node(`info[${info.length}] ${hexBytes(info, SHOWN_BYTES)}`);
  return meaning !== null ? [node(meaning), raw] : [raw];
}

function rndisNode(m: RndisMessage, direction: "tx" | "rx", oid: number | undefined): DescNode {
  const type = rndisMessageType(m);
  const head = `rndis ${rndisMessageTypeName(type)}(${hex(type)}) msg_len=${m.messageLength ?? "?"}`;
  switch (m.kind) {
    case "packet": {
      const children: DescNode[] = [
        node(
          `rndis_packet data_offset=${m.dataOffset} data_len=${m.data.length} oob_data_offset=${m.oobDataOffset} oob_data_len=${m.oobDataLength} ` +
            `num_oob_data_elements=${m.numOobDataElements} per_pkt_info_offset=${m.perPacketInfoOffset} per_pkt_info_len=${m.ppis.reduce((n, p) => n + 12 + p.data.length, 0)} ` +
            `vc_handle=${m.vcHandle} reserved=${m.reserved}`,
        ),
        ...m.ppis.map((p, i) => ppiNode(p, i, direction)),
      ];
      if (m.data.length > 0) children.push(node(describeEthernetFrame(m.data)));
      return node(head, children);
    }
    case "initialize":
      return node(`${head} req_id=${m.requestId} major_ver=${m.majorVersion} minor_ver=${m.minorVersion} max_xfer_size=${fmtNum(m.maxTransferSize)}`);
    case "initialize_cmplt":
      return node(
        `${head} req_id=${m.requestId} status=${rndisStatus(m.status)} major_ver=${m.majorVersion} minor_ver=${m.minorVersion} ` +
          `dev_flags=${hex(m.deviceFlags)} medium=${m.medium} max_pkt_per_msg=${m.maxPacketsPerMessage} max_xfer_size=${fmtNum(m.maxTransferSize)} ` +
          `pkt_alignment_factor=${m.packetAlignmentFactor} af_list_offset=${m.afListOffset} af_list_size=${m.afListSize}`,
      );
    case "halt":
    case "keepalive":
      return node(`${head} req_id=${m.requestId}`);
    case "query":
    case "set":
    case "set_ex":
      return node(
        `${head} req_id=${m.requestId} oid=${oidText(m.oid)} info_buflen=${m.info.length} info_buf_offset=${m.infoBufferOffset} dev_vc_handle=${m.deviceVcHandle}`,
        infoNode(m.info, m.oid),
      );
    case "query_cmplt":
    case "set_ex_cmplt":
      return node(
        `${head} req_id=${m.requestId} status=${rndisStatus(m.status)} info_buflen=${m.info.length} info_buf_offset=${m.infoBufferOffset}`,
        infoNode(m.info, oid ?? null),
      );
    case "set_cmplt":
    case "keepalive_cmplt":
      return node(`${head} req_id=${m.requestId} status=${rndisStatus(m.status)}`);
    case "reset":
      return node(`${head} reserved=${m.reserved}`);
    case "reset_cmplt":
      return node(`${head} status=${rndisStatus(m.status)} addressing_reset=${m.addressingReset}`);
    case "indicate_status":
      return node(
        `${head} status=${rndisStatus(m.status)} status_buflen=${m.payload.length} status_buf_offset=${m.statusBufferOffset}`,
        m.payload.length > 0 ? [node(`status_buf[${m.payload.length}] ${hexBytes(m.payload, SHOWN_BYTES)}`)] : [],
      );
  }
}

export interface DescribeRndisOptions {
  /** "tx" (guest → host, default) or "rx": how to read the checksum PPI. */
  readonly direction?: "tx" | "rx";
  /** For a QUERY_CMPLT: the OID it answers, to interpret the information buffer. */
  readonly oid?: number;
  /** Describe every message of a send-buffer section, not just the first. */
  readonly all?: boolean;
  readonly style?: DescribeStyle;
}

function describeOne(bytes: Uint8Array, options: DescribeRndisOptions): DescNode {
  try {
    return rndisNode(decodeRndisMessage(bytes), options.direction ?? "tx", options.oid);
  } catch (e) {
    const shown = bytes.subarray(0, SHOWN_BYTES);
    return node(`rndis (invalid: ${errorText(e)})`, [node(`bytes[${bytes.length}] ${hexBytes(shown)}${bytes.length > shown.length ? " …" : ""}`)]);
  }
}

/** Describes an RNDIS message (or, with `all`, every message in a section). Never throws. */
export function describeRndis(bytes: Uint8Array, options: DescribeRndisOptions = {}): string {
  if (options.all !== true) return render(describeOne(bytes, options), options.style);
  let parts: Uint8Array[];
  try {
    parts = splitRndisMessages(bytes);
  } catch (e) {
    return render(node(`rndis section (invalid: ${errorText(e)})`, [node(`bytes[${bytes.length}] ${hexBytes(bytes, SHOWN_BYTES)}`)]), options.style);
  }
  const nodes = parts.map((p) => describeOne(p, options));
  if (options.style === "line") return nodes.map(renderLine).join(" | ");
  return nodes.map((n) => renderTree(n)).join("\n");
}
