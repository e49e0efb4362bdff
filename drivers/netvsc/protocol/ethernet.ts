/**
 * A tiny, exact frame toolkit for the network sample (storvsc-netvsc.md §11:
 * what an RNDIS PACKET carries): Ethernet II with an optional 802.1Q tag,
 * MAC and IPv4 address text, ARP (RFC 826), IPv4 headers with the header
 * checksum (RFC 791, RFC 1071), ICMP echo (RFC 792) and UDP with the
 * pseudo-header checksum (RFC 768). Enough for a ping and a UDP stream
 * between simulated VMs; no options are built, fragments are not reassembled.
 *
 * All multi-byte fields are big-endian (network order). Builders throw
 * `InvalidArgumentError` for unrepresentable input; parsers throw
 * `ProtocolError` naming the layer, field, value and limit.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkRange, checkUint, copyBytes, viewOf } from "./bytes.js";

export const ETH_ALEN = 6;
/** Ethernet II header: dst, src, ethertype. */
export const ETH_HLEN = 14;
/** 802.1Q tag: TPID 0x8100 + TCI. */
export const VLAN_HLEN = 4;
/** Smallest frame without FCS; shorter frames are padded on a real wire. */
export const ETH_ZLEN = 60;
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_IPV6 = 0x86dd;
export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";

export const ETHERTYPE_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [ETH_P_IP, "IPv4"],
  [ETH_P_ARP, "ARP"],
  [ETH_P_8021Q, "802.1Q"],
  [ETH_P_IPV6, "IPv6"],
]);

// ---------------------------------------------------------------------------
// Addresses

/** "00:15:5d:01:02:03" (or with '-') → 6 bytes. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== ETH_ALEN || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new InvalidArgumentError("mac", text, "must be six hex byte pairs separated by ':' or '-'");
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** 6 bytes → "00:15:5d:01:02:03" (lowercase). */
export function formatMac(bytes: Uint8Array): string {
  if (bytes.length !== ETH_ALEN) throw new InvalidArgumentError("mac.length", bytes.length, `must be ${ETH_ALEN}`);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Group bit (I/G) of the first octet: multicast and broadcast addresses. */
export function isMulticastMac(mac: string): boolean {
  return ((parseMac(mac)[0] ?? 0) & 1) === 1;
}

export function isBroadcastMac(mac: string): boolean {
  return parseMac(mac).every((b) => b === 0xff);
}

/** "10.0.0.1" → 4 bytes. */
export function parseIpv4Address(text: string): Uint8Array {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)) {
    throw new InvalidArgumentError("ipv4", text, "must be a dotted quad of decimal octets 0..255");
  }
  return Uint8Array.from(parts, Number);
}

export function formatIpv4Address(bytes: Uint8Array): string {
  if (bytes.length !== 4) throw new InvalidArgumentError("ipv4.length", bytes.length, "must be 4");
  return Array.from(bytes).join(".");
}

// ---------------------------------------------------------------------------
// Checksum (RFC 1071)

/**
 * The Internet checksum: the ones'-complement of the ones'-complement sum of
 * big-endian 16-bit words (an odd last byte is padded with zero). `initial`
 * carries a partial sum in, e.g. a pseudo header. Verifying a block that
 * contains its own correct checksum gives 0.
 */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  if (bytes.length % 2 === 1) sum += (bytes[bytes.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The (not complemented) sum of the IPv4 pseudo header, to pass as `initial`. */
function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, protocol: number, length: number): number {
  const word = (b: Uint8Array, i: number): number => ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  return word(src, 0) + word(src, 2) + word(dst, 0) + word(dst, 2) + protocol + length;
}

// ---------------------------------------------------------------------------
// Ethernet II (+ 802.1Q)

export interface VlanTag {
  /** Priority code point, 0..7. */
  readonly pcp: number;
  /** Drop eligible indicator (formerly CFI), 0..1. */
  readonly dei: number;
  /** VLAN id, 0..4095. */
  readonly vid: number;
}

export interface EthernetHeader {
  readonly dst: string;
  readonly src: string;
  /** The ethertype of the payload (after the tag, if any). */
  readonly etherType: number;
  readonly vlan?: VlanTag;
}

export interface EthernetFrame extends EthernetHeader {
  readonly payload: Uint8Array;
  /** 14, or 18 with a tag. */
  readonly headerLength: number;
}

export interface BuildEthernetFrame extends EthernetHeader {
  readonly payload: Uint8Array;
  /** Zero-pad to ETH_ZLEN (60) bytes like a real NIC. Default false. */
  readonly padToMinimum?: boolean;
}

export function buildEthernetFrame(f: BuildEthernetFrame): Uint8Array {
  checkUint("etherType", f.etherType, 16);
  const headerLength = f.vlan ? ETH_HLEN + VLAN_HLEN : ETH_HLEN;
  const length = Math.max(headerLength + f.payload.length, f.padToMinimum === true ? ETH_ZLEN : 0);
  const out = new Uint8Array(length);
  const v = viewOf(out);
  out.set(parseMac(f.dst), 0);
  out.set(parseMac(f.src), ETH_ALEN);
  let at = 2 * ETH_ALEN;
  if (f.vlan) {
    checkRange("vlan.pcp", f.vlan.pcp, 0, 7);
    checkRange("vlan.dei", f.vlan.dei, 0, 1);
    checkRange("vlan.vid", f.vlan.vid, 0, 0xfff);
    v.setUint16(at, ETH_P_8021Q);
    v.setUint16(at + 2, (f.vlan.pcp << 13) | (f.vlan.dei << 12) | f.vlan.vid);
    at += VLAN_HLEN;
  }
  v.setUint16(at, f.etherType);
  out.set(f.payload, headerLength);
  return out;
}

/** Parses the Ethernet II header (and one 802.1Q tag); the payload is the rest of the frame. */
export function parseEthernetFrame(bytes: Uint8Array): EthernetFrame {
  const copy = copyBytes(bytes);
  if (copy.length < ETH_HLEN) {
    throw new ProtocolError("Ethernet", "frame length", copy.length, `is shorter than the ${ETH_HLEN}-byte header`);
  }
  const v = viewOf(copy);
  const dst = formatMac(copy.subarray(0, 6));
  const src = formatMac(copy.subarray(6, 12));
  let etherType = v.getUint16(12);
  if (etherType === ETH_P_8021Q) {
    // The tag and the inner ethertype must both be present.
    if (copy.length < ETH_HLEN + VLAN_HLEN) {
      throw new ProtocolError("Ethernet", "frame length", copy.length, `is shorter than the ${ETH_HLEN + VLAN_HLEN}-byte 802.1Q-tagged header`);
    }
    const tci = v.getUint16(14);
    etherType = v.getUint16(16);
    return {
      dst,
      src,
      etherType,
      vlan: { pcp: tci >>> 13, dei: (tci >>> 12) & 1, vid: tci & 0xfff },
      payload: copy.slice(ETH_HLEN + VLAN_HLEN),
      headerLength: ETH_HLEN + VLAN_HLEN,
    };
  }
  return { dst, src, etherType, payload: copy.slice(ETH_HLEN), headerLength: ETH_HLEN };
}

// ---------------------------------------------------------------------------
// ARP (Ethernet / IPv4 only)

export const ARPHRD_ETHER = 1;
export const ARPOP_REQUEST = 1;
export const ARPOP_REPLY = 2;
export const ARP_PACKET_SIZE = 28;

export interface ArpPacket {
  /** ARPOP_REQUEST (1) or ARPOP_REPLY (2). */
  readonly op: number;
  readonly senderMac: string;
  readonly senderIp: string;
  readonly targetMac: string;
  readonly targetIp: string;
}

export function buildArp(a: ArpPacket): Uint8Array {
  checkUint("op", a.op, 16);
  const out = new Uint8Array(ARP_PACKET_SIZE);
  const v = viewOf(out);
  v.setUint16(0, ARPHRD_ETHER); // htype
  v.setUint16(2, ETH_P_IP); // ptype
  out[4] = ETH_ALEN; // hlen
  out[5] = 4; // plen
  v.setUint16(6, a.op);
  out.set(parseMac(a.senderMac), 8);
  out.set(parseIpv4Address(a.senderIp), 14);
  out.set(parseMac(a.targetMac), 18);
  out.set(parseIpv4Address(a.targetIp), 24);
  return out;
}

/** Parses an Ethernet/IPv4 ARP packet; other hardware/protocol types are rejected. */
export function parseArp(bytes: Uint8Array): ArpPacket {
  const copy = copyBytes(bytes);
  if (copy.length < ARP_PACKET_SIZE) {
    throw new ProtocolError("ARP", "packet length", copy.length, `is shorter than the ${ARP_PACKET_SIZE}-byte Ethernet/IPv4 ARP packet`);
  }
  const v = viewOf(copy);
  // Address lengths other than 6/4 would move every field after them.
  const check = (field: string, value: number, want: number): void => {
    if (value !== want) throw new ProtocolError("ARP", field, value, `must be ${want} (Ethernet/IPv4 ARP)`);
  };
  check("htype", v.getUint16(0), ARPHRD_ETHER);
  check("ptype", v.getUint16(2), ETH_P_IP);
  check("hlen", copy[4] ?? 0, ETH_ALEN);
  check("plen", copy[5] ?? 0, 4);
  return {
    op: v.getUint16(6),
    senderMac: formatMac(copy.subarray(8, 14)),
    senderIp: formatIpv4Address(copy.subarray(14, 18)),
    targetMac: formatMac(copy.subarray(18, 24)),
    targetIp: formatIpv4Address(copy.subarray(24, 28)),
  };
}

/** A broadcast "who has targetIp? tell senderIp" frame. */
export function buildArpRequestFrame(senderMac: string, senderIp: string, targetIp: string): Uint8Array {
  const arp = buildArp({ op: ARPOP_REQUEST, senderMac, senderIp, targetMac: "00:00:00:00:00:00", targetIp });
  return buildEthernetFrame({ dst: BROADCAST_MAC, src: senderMac, etherType: ETH_P_ARP, payload: arp });
}

/** The unicast answer to `request`: "senderIp is at senderMac". */
export function buildArpReplyFrame(request: ArpPacket, senderMac: string): Uint8Array {
  const arp = buildArp({ op: ARPOP_REPLY, senderMac, senderIp: request.targetIp, targetMac: request.senderMac, targetIp: request.senderIp });
  return buildEthernetFrame({ dst: request.senderMac, src: senderMac, etherType: ETH_P_ARP, payload: arp });
}

// ---------------------------------------------------------------------------
// IPv4

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPV4_HEADER_SIZE = 20;
const IP_DF = 0x4000;
const IP_MF = 0x2000;

export const IPPROTO_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [IPPROTO_ICMP, "ICMP"],
  [IPPROTO_TCP, "TCP"],
  [IPPROTO_UDP, "UDP"],
]);

export interface BuildIpv4Packet {
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly payload: Uint8Array;
  /** Default 64. */
  readonly ttl?: number;
  /** Default 0. */
  readonly identification?: number;
  /** DSCP/ECN byte; default 0. */
  readonly tos?: number;
  /** Default true (Linux sets DF on non-fragmented datagrams). */
  readonly dontFragment?: boolean;
}

export interface Ipv4Packet {
  readonly version: number;
  /** In bytes (IHL × 4). */
  readonly headerLength: number;
  readonly tos: number;
  readonly totalLength: number;
  readonly identification: number;
  readonly dontFragment: boolean;
  readonly moreFragments: boolean;
  /** In 8-byte units. */
  readonly fragmentOffset: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly headerChecksum: number;
  readonly src: string;
  readonly dst: string;
  readonly options: Uint8Array;
  /** total_length − header length bytes (link-layer padding dropped). */
  readonly payload: Uint8Array;
}

/** A 20-byte header (no options) with its checksum, followed by `payload`. */
export function buildIpv4Packet(p: BuildIpv4Packet): Uint8Array {
  const totalLength = IPV4_HEADER_SIZE + p.payload.length;
  checkUint("total length", totalLength, 16);
  const ttl = p.ttl ?? 64;
  const tos = p.tos ?? 0;
  const identification = p.identification ?? 0;
  checkUint("ttl", ttl, 8);
  checkUint("tos", tos, 8);
  checkUint("identification", identification, 16);
  checkUint("protocol", p.protocol, 8);
  const out = new Uint8Array(totalLength);
  const v = viewOf(out);
  out[0] = 0x45; // version 4, IHL 5
  out[1] = tos;
  v.setUint16(2, totalLength);
  v.setUint16(4, identification);
  v.setUint16(6, p.dontFragment === false ? 0 : IP_DF);
  out[8] = ttl;
  out[9] = p.protocol;
  out.set(parseIpv4Address(p.src), 12);
  out.set(parseIpv4Address(p.dst), 16);
  v.setUint16(10, internetChecksum(out.subarray(0, IPV4_HEADER_SIZE)));
  out.set(p.payload, IPV4_HEADER_SIZE);
  return out;
}

/**
 * Parses an IPv4 packet (`bytes` may carry link-layer padding after
 * total_length). Checks the version, the header length, the total length
 * and, unless told not to, the header checksum.
 */
export function parseIpv4Packet(bytes: Uint8Array, options: { readonly verifyChecksum?: boolean } = {}): Ipv4Packet {
  const copy = copyBytes(bytes);
  const L = "IPv4";
  if (copy.length < IPV4_HEADER_SIZE) {
    throw new ProtocolError(L, "packet length", copy.length, `is shorter than the ${IPV4_HEADER_SIZE}-byte header`);
  }
  const v = viewOf(copy);
  const version = (copy[0] ?? 0) >>> 4;
  if (version !== 4) throw new ProtocolError(L, "version", version, "must be 4");
  const headerLength = ((copy[0] ?? 0) & 0xf) * 4;
  // IHL below 5 would put the addresses outside the header; past the
  // buffer, the options would come from nowhere.
  if (headerLength < IPV4_HEADER_SIZE) throw new ProtocolError(L, "ihl", headerLength / 4, "must be at least 5 (20 bytes)");
  if (headerLength > copy.length) throw new ProtocolError(L, "ihl", headerLength / 4, `× 4 exceeds the ${copy.length}-byte packet`);
  const totalLength = v.getUint16(2);
  // total_length covers the header and must not claim bytes the frame lacks.
  if (totalLength < headerLength) {
    throw new ProtocolError(L, "total_length", totalLength, `is shorter than the ${headerLength}-byte header`);
  }
  if (totalLength > copy.length) {
    throw new ProtocolError(L, "total_length", totalLength, `exceeds the ${copy.length} bytes received`);
  }
  const headerChecksum = v.getUint16(10);
  if (options.verifyChecksum !== false) {
    const check = internetChecksum(copy.subarray(0, headerLength));
    // A header whose sum is off was corrupted (or forged) on the way.
    if (check !== 0) {
      const zeroed = copy.slice(0, headerLength);
      zeroed[10] = 0;
      zeroed[11] = 0;
      throw new ProtocolError(L, "header checksum", headerChecksum, `does not match the computed 0x${internetChecksum(zeroed).toString(16).padStart(4, "0")}`);
    }
  }
  const flagsFrag = v.getUint16(6);
  return {
    version,
    headerLength,
    tos: copy[1] ?? 0,
    totalLength,
    identification: v.getUint16(4),
    dontFragment: (flagsFrag & IP_DF) !== 0,
    moreFragments: (flagsFrag & IP_MF) !== 0,
    fragmentOffset: flagsFrag & 0x1fff,
    ttl: copy[8] ?? 0,
    protocol: copy[9] ?? 0,
    headerChecksum,
    src: formatIpv4Address(copy.subarray(12, 16)),
    dst: formatIpv4Address(copy.subarray(16, 20)),
    options: copy.slice(IPV4_HEADER_SIZE, headerLength),
    payload: copy.slice(headerLength, totalLength),
  };
}

// ---------------------------------------------------------------------------
// ICMP

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_HEADER_SIZE = 8;

export interface IcmpPacket {
  readonly type: number;
  readonly code: number;
  /** The two rest-of-header words; identifier and sequence for echo messages. */
  readonly identifier: number;
  readonly sequence: number;
  readonly data: Uint8Array;
}

/** An ICMP message with its checksum (computed over header and data). */
export function buildIcmp(p: IcmpPacket): Uint8Array {
  checkUint("type", p.type, 8);
  checkUint("code", p.code, 8);
  checkUint("identifier", p.identifier, 16);
  checkUint("sequence", p.sequence, 16);
  const out = new Uint8Array(ICMP_HEADER_SIZE + p.data.length);
  const v = viewOf(out);
  out[0] = p.type;
  out[1] = p.code;
  v.setUint16(4, p.identifier);
  v.setUint16(6, p.sequence);
  out.set(p.data, ICMP_HEADER_SIZE);
  v.setUint16(2, internetChecksum(out));
  return out;
}

/** Parses an ICMP message and verifies its checksum. */
export function parseIcmp(bytes: Uint8Array): IcmpPacket & { readonly checksum: number } {
  const copy = copyBytes(bytes);
  if (copy.length < ICMP_HEADER_SIZE) {
    throw new ProtocolError("ICMP", "message length", copy.length, `is shorter than the ${ICMP_HEADER_SIZE}-byte header`);
  }
  const v = viewOf(copy);
  const checksum = v.getUint16(2);
  if (internetChecksum(copy) !== 0) {
    const zeroed = copy.slice();
    zeroed[2] = 0;
    zeroed[3] = 0;
    throw new ProtocolError("ICMP", "checksum", checksum, `does not match the computed 0x${internetChecksum(zeroed).toString(16).padStart(4, "0")}`);
  }
  return {
    type: copy[0] ?? 0,
    code: copy[1] ?? 0,
    checksum,
    identifier: v.getUint16(4),
    sequence: v.getUint16(6),
    data: copy.slice(ICMP_HEADER_SIZE),
  };
}

// ---------------------------------------------------------------------------
// UDP

export const UDP_HEADER_SIZE = 8;

export interface UdpDatagram {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Uint8Array;
}

/** The UDP checksum of `udp` (header with checksum 0, plus payload) between `src` and `dst`. */
export function udpChecksum(src: string, dst: string, udp: Uint8Array): number {
  const sum = pseudoHeaderSum(parseIpv4Address(src), parseIpv4Address(dst), IPPROTO_UDP, udp.length);
  const c = internetChecksum(udp, sum);
  // RFC 768: a computed 0 is sent as all ones (0 means "no checksum").
  return c === 0 ? 0xffff : c;
}

/** A UDP datagram with its pseudo-header checksum. */
export function buildUdpDatagram(d: UdpDatagram, src: string, dst: string): Uint8Array {
  checkUint("srcPort", d.srcPort, 16);
  checkUint("dstPort", d.dstPort, 16);
  const length = UDP_HEADER_SIZE + d.payload.length;
  checkUint("length", length, 16);
  const out = new Uint8Array(length);
  const v = viewOf(out);
  v.setUint16(0, d.srcPort);
  v.setUint16(2, d.dstPort);
  v.setUint16(4, length);
  out.set(d.payload, UDP_HEADER_SIZE);
  v.setUint16(6, udpChecksum(src, dst, out));
  return out;
}

/** Parses a UDP datagram carried between `src` and `dst`; checks the length field and a non-zero checksum. */
export function parseUdpDatagram(bytes: Uint8Array, src: string, dst: string): UdpDatagram & { readonly length: number; readonly checksum: number } {
  const copy = copyBytes(bytes);
  if (copy.length < UDP_HEADER_SIZE) {
    throw new ProtocolError("UDP", "datagram length", copy.length, `is shorter than the ${UDP_HEADER_SIZE}-byte header`);
  }
  const v = viewOf(copy);
  const length = v.getUint16(4);
  // The length field covers the header and must not claim missing bytes.
  if (length < UDP_HEADER_SIZE || length > copy.length) {
    throw new ProtocolError("UDP", "length", length, `must be in [${UDP_HEADER_SIZE}, ${copy.length}] (header .. bytes received)`);
  }
  const checksum = v.getUint16(6);
  const datagram = copy.subarray(0, length);
  // Checksum 0 means the sender did not compute one.
  if (checksum !== 0) {
    const sum = pseudoHeaderSum(parseIpv4Address(src), parseIpv4Address(dst), IPPROTO_UDP, length);
    if (internetChecksum(datagram, sum) !== 0) {
      const zeroed = datagram.slice();
      zeroed[6] = 0;
      zeroed[7] = 0;
      throw new ProtocolError("UDP", "checksum", checksum, `does not match the computed 0x${udpChecksum(src, dst, zeroed).toString(16).padStart(4, "0")}`);
    }
  }
  return { srcPort: v.getUint16(0), dstPort: v.getUint16(2), length, checksum, payload: copy.slice(UDP_HEADER_SIZE, length) };
}

// ---------------------------------------------------------------------------
// Whole frames

export interface FrameAddresses {
  readonly srcMac: string;
  readonly dstMac: string;
  readonly srcIp: string;
  readonly dstIp: string;
  readonly vlan?: VlanTag;
  readonly ttl?: number;
  readonly identification?: number;
}

/** An Ethernet frame carrying an ICMP echo request (ICMP_ECHO) or reply (ICMP_ECHOREPLY). */
export function buildIcmpEchoFrame(
  a: FrameAddresses & { readonly type: number; readonly identifier: number; readonly sequence: number; readonly data: Uint8Array },
): Uint8Array {
  const icmp = buildIcmp({ type: a.type, code: 0, identifier: a.identifier, sequence: a.sequence, data: a.data });
  return ipv4Frame(a, IPPROTO_ICMP, icmp);
}

/** An Ethernet frame carrying a UDP datagram. */
export function buildUdpFrame(a: FrameAddresses & UdpDatagram): Uint8Array {
  return ipv4Frame(a, IPPROTO_UDP, buildUdpDatagram(a, a.srcIp, a.dstIp));
}

function ipv4Frame(a: FrameAddresses, protocol: number, payload: Uint8Array): Uint8Array {
  const ip = buildIpv4Packet({
    src: a.srcIp,
    dst: a.dstIp,
    protocol,
    payload,
    ...(a.ttl !== undefined ? { ttl: a.ttl } : {}),
    ...(a.identification !== undefined ? { identification: a.identification } : {}),
  });
  return buildEthernetFrame({ dst: a.dstMac, src: a.srcMac, etherType: ETH_P_IP, payload: ip, ...(a.vlan ? { vlan: a.vlan } : {}) });
}

export interface ParsedFrame {
  readonly ethernet: EthernetFrame;
  readonly arp?: ArpPacket;
  readonly ipv4?: Ipv4Packet;
  readonly icmp?: IcmpPacket & { readonly checksum: number };
  readonly udp?: UdpDatagram & { readonly length: number; readonly checksum: number };
}

/**
 * Parses a frame down to the layers this toolkit knows (ARP; IPv4 with ICMP
 * or UDP; first fragments only). Throws on the first malformed layer.
 */
export function parseFrame(bytes: Uint8Array): ParsedFrame {
  const ethernet = parseEthernetFrame(bytes);
  if (ethernet.etherType === ETH_P_ARP) return { ethernet, arp: parseArp(ethernet.payload) };
  if (ethernet.etherType !== ETH_P_IP) return { ethernet };
  const ipv4 = parseIpv4Packet(ethernet.payload);
  // Later fragments carry no transport header.
  if (ipv4.fragmentOffset !== 0) return { ethernet, ipv4 };
  if (ipv4.protocol === IPPROTO_ICMP) return { ethernet, ipv4, icmp: parseIcmp(ipv4.payload) };
  if (ipv4.protocol === IPPROTO_UDP) return { ethernet, ipv4, udp: parseUdpDatagram(ipv4.payload, ipv4.src, ipv4.dst) };
  return { ethernet, ipv4 };
}
