/**
 * RNDIS per-packet info (storvsc-netvsc.md §13.3): the record header
 * (`struct rndis_per_packet_info`), chains of records, and the exact bit
 * layouts of the records netvsc uses — TCP/IP checksum info (TX and RX
 * views), IEEE 802.1Q, LSOv2, RSS hash value / hash info, and the internal
 * RNDIS_PKTINFO_ID that marks RSC fragments.
 *
 * Every payload here is one little-endian u32 (the PKTINFO_ID is
 * {u8 ver, u8 flag, u16 pkt_id}, also 4 bytes). Bitfields are LSB first, as
 * GCC lays out Linux's `u32 x:n` members on little-endian machines.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkRange, checkUint, copyBytes, viewOf } from "./bytes.js";
import {
  IEEE_8021Q_INFO,
  NBL_HASH_INFO,
  NBL_HASH_VALUE,
  RNDIS_PKTINFO_ID,
  RNDIS_PPI_INTERNAL_BIT,
  TCPIP_CHKSUM_PKTINFO,
  TCP_LARGESEND_PKTINFO,
} from "./rndis-constants.js";

const P = "RNDIS";

/** `struct rndis_per_packet_info`; offsets relative to the record. */
export const RNDIS_PER_PACKET_INFO_LAYOUT = {
  size: { offset: 0, size: 4 },
  /** bits 30–0 type, bit 31 internal. */
  type: { offset: 4, size: 4 },
  ppi_offset: { offset: 8, size: 4 },
} as const;
export const RNDIS_PER_PACKET_INFO_SIZE = 12;
/** One record with a u32 payload, the size of every PPI Linux builds (`NDIS_*_PPI_SIZE`). */
export const NDIS_U32_PPI_SIZE = 16;

/** A per-packet-info record: its type and its payload bytes. */
export interface RndisPpi {
  /** 31-bit type (TCPIP_CHKSUM_PKTINFO, IEEE_8021Q_INFO, …). */
  readonly type: number;
  /** Bit 31 of the type word; set only for RNDIS_PKTINFO_ID. */
  readonly internal: boolean;
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------
// Chains

/** Bytes a chain of `ppis` occupies when encoded (each record 12 + payload). */
export function ppiChainLength(ppis: readonly RndisPpi[]): number {
  return ppis.reduce((n, p) => n + RNDIS_PER_PACKET_INFO_SIZE + p.data.length, 0);
}

/** Encodes records back to back, each {size = 12 + payload, type, ppi_offset = 12, payload}. */
export function encodePpiChain(ppis: readonly RndisPpi[]): Uint8Array {
  const out = new Uint8Array(ppiChainLength(ppis));
  const v = viewOf(out);
  let at = 0;
  ppis.forEach((p, i) => {
    checkRange(`ppis[${i}].type`, p.type, 0, 0x7fffffff);
    const size = RNDIS_PER_PACKET_INFO_SIZE + p.data.length;
    v.setUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.size.offset, size, true);
    v.setUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.type.offset, (p.type | (p.internal ? RNDIS_PPI_INTERNAL_BIT : 0)) >>> 0, true);
    v.setUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.ppi_offset.offset, RNDIS_PER_PACKET_INFO_SIZE, true);
    out.set(p.data, at + RNDIS_PER_PACKET_INFO_SIZE);
    at += size;
  });
  return out;
}

/**
 * Decodes a chain of records filling exactly `chain` (the per_pkt_info_len
 * bytes). `base` is where the chain starts, counted from byte 8 of the RNDIS
 * message, for error messages. Every record must fit in what is left of the
 * chain (Linux "Invalid ppi size") and its payload must start after its
 * header and inside it (Linux "Invalid ppi_offset").
 */
export function decodePpiChain(chain: Uint8Array, base = 0): RndisPpi[] {
  const copy = copyBytes(chain);
  const v = viewOf(copy);
  const out: RndisPpi[] = [];
  let at = 0;
  for (let i = 0; at < copy.length; i++) {
    const left = copy.length - at;
    const where = `per_pkt_info[${i}] (at ${base + at})`;
    // The record header itself must fit, or its fields come from past the chain.
    if (left < RNDIS_PER_PACKET_INFO_SIZE) {
      throw new ProtocolError(P, `${where} header`, left, `bytes left in per_pkt_info_len; a record header needs ${RNDIS_PER_PACKET_INFO_SIZE}`);
    }
    const size = v.getUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.size.offset, true);
    const typeWord = v.getUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.type.offset, true);
    const ppiOffset = v.getUint32(at + RNDIS_PER_PACKET_INFO_LAYOUT.ppi_offset.offset, true);
    // A record larger than what is left overruns the chain (into frame data
    // or past the message); a record smaller than its header would make the
    // walk stand still or go backwards.
    if (size > left) {
      throw new ProtocolError(P, `${where}.size`, size, `overruns the per-packet info chain (${left} bytes left)`);
    }
    if (size < RNDIS_PER_PACKET_INFO_SIZE) {
      throw new ProtocolError(P, `${where}.size`, size, `is smaller than the ${RNDIS_PER_PACKET_INFO_SIZE}-byte record header`);
    }
    // The payload must start after the header (else it aliases size/type)
    // and before the end of the record.
    if (ppiOffset < RNDIS_PER_PACKET_INFO_SIZE || ppiOffset >= size) {
      throw new ProtocolError(P, `${where}.ppi_offset`, ppiOffset, `must be in [${RNDIS_PER_PACKET_INFO_SIZE}, size ${size})`);
    }
    out.push({
      type: typeWord & 0x7fffffff,
      internal: (typeWord & RNDIS_PPI_INTERNAL_BIT) !== 0,
      data: copy.slice(at + ppiOffset, at + size),
    });
    at += size;
  }
  return out;
}

/** The first record of `type` (and internal flag), as Linux `rndis_get_ppi` finds it. */
export function findPpi(ppis: readonly RndisPpi[], type: number, internal = false): RndisPpi | undefined {
  return ppis.find((p) => p.type === type && p.internal === internal);
}

/**
 * The u32 payload of a record. Linux ignores a record whose payload is
 * smaller than the object it expects; here that is an error naming it.
 */
export function ppiU32(ppi: RndisPpi): number {
  if (ppi.data.length < 4) {
    throw new ProtocolError(P, `per_pkt_info type ${ppi.type} payload length`, ppi.data.length, "is shorter than the 4-byte object");
  }
  return viewOf(ppi.data).getUint32(0, true);
}

function u32Ppi(type: number, value: number, internal = false): RndisPpi {
  checkUint("value", value, 32);
  const data = new Uint8Array(4);
  viewOf(data).setUint32(0, value, true);
  return { type, internal, data };
}

function bits(value: number, shift: number, width: number): number {
  return (value >>> shift) & ((1 << width) - 1);
}

function flag(on: boolean, shift: number): number {
  return on ? (1 << shift) >>> 0 : 0;
}

// ---------------------------------------------------------------------------
// TCPIP_CHKSUM_PKTINFO (`struct ndis_tcp_ip_checksum_info`)

/** TX view: what the guest asks the host to compute. */
export interface NdisTcpIpChecksumTx {
  readonly isIpv4: boolean;
  readonly isIpv6: boolean;
  readonly tcpChecksum: boolean;
  readonly udpChecksum: boolean;
  readonly ipHeaderChecksum: boolean;
  /** Bits 16–25: offset of the transport header in the frame. */
  readonly tcpHeaderOffset: number;
}

/** RX view: what the host verified. */
export interface NdisTcpIpChecksumRx {
  readonly tcpChecksumFailed: boolean;
  readonly udpChecksumFailed: boolean;
  readonly ipChecksumFailed: boolean;
  readonly tcpChecksumSucceeded: boolean;
  readonly udpChecksumSucceeded: boolean;
  readonly ipChecksumSucceeded: boolean;
  readonly loopback: boolean;
  readonly tcpChecksumValueInvalid: boolean;
  readonly ipChecksumValueInvalid: boolean;
}

export function encodeChecksumTxInfo(i: NdisTcpIpChecksumTx): number {
  checkRange("tcpHeaderOffset", i.tcpHeaderOffset, 0, 0x3ff);
  return (
    (flag(i.isIpv4, 0) |
      flag(i.isIpv6, 1) |
      flag(i.tcpChecksum, 2) |
      flag(i.udpChecksum, 3) |
      flag(i.ipHeaderChecksum, 4) |
      (i.tcpHeaderOffset << 16)) >>>
    0
  );
}

export function decodeChecksumTxInfo(value: number): NdisTcpIpChecksumTx {
  return {
    isIpv4: bits(value, 0, 1) === 1,
    isIpv6: bits(value, 1, 1) === 1,
    tcpChecksum: bits(value, 2, 1) === 1,
    udpChecksum: bits(value, 3, 1) === 1,
    ipHeaderChecksum: bits(value, 4, 1) === 1,
    tcpHeaderOffset: bits(value, 16, 10),
  };
}

export function encodeChecksumRxInfo(i: NdisTcpIpChecksumRx): number {
  return (
    (flag(i.tcpChecksumFailed, 0) |
      flag(i.udpChecksumFailed, 1) |
      flag(i.ipChecksumFailed, 2) |
      flag(i.tcpChecksumSucceeded, 3) |
      flag(i.udpChecksumSucceeded, 4) |
      flag(i.ipChecksumSucceeded, 5) |
      flag(i.loopback, 6) |
      flag(i.tcpChecksumValueInvalid, 7) |
      flag(i.ipChecksumValueInvalid, 8)) >>>
    0
  );
}

export function decodeChecksumRxInfo(value: number): NdisTcpIpChecksumRx {
  return {
    tcpChecksumFailed: bits(value, 0, 1) === 1,
    udpChecksumFailed: bits(value, 1, 1) === 1,
    ipChecksumFailed: bits(value, 2, 1) === 1,
    tcpChecksumSucceeded: bits(value, 3, 1) === 1,
    udpChecksumSucceeded: bits(value, 4, 1) === 1,
    ipChecksumSucceeded: bits(value, 5, 1) === 1,
    loopback: bits(value, 6, 1) === 1,
    tcpChecksumValueInvalid: bits(value, 7, 1) === 1,
    ipChecksumValueInvalid: bits(value, 8, 1) === 1,
  };
}

export function checksumTxPpi(i: NdisTcpIpChecksumTx): RndisPpi {
  return u32Ppi(TCPIP_CHKSUM_PKTINFO, encodeChecksumTxInfo(i));
}

export function checksumRxPpi(i: NdisTcpIpChecksumRx): RndisPpi {
  return u32Ppi(TCPIP_CHKSUM_PKTINFO, encodeChecksumRxInfo(i));
}

// ---------------------------------------------------------------------------
// IEEE_8021Q_INFO (`struct ndis_pkt_8021q_info`)

export interface Ndis8021qInfo {
  /** Bits 0–2. */
  readonly priority: number;
  /** Bit 3 (CFI / DEI). */
  readonly cfi: number;
  /** Bits 4–15. */
  readonly vlanId: number;
}

export function encode8021qInfo(i: Ndis8021qInfo): number {
  checkRange("priority", i.priority, 0, 7);
  checkRange("cfi", i.cfi, 0, 1);
  checkRange("vlanId", i.vlanId, 0, 0xfff);
  return (i.priority | (i.cfi << 3) | (i.vlanId << 4)) >>> 0;
}

/** Bits 16–31 are reserved and ignored, as Linux does. */
export function decode8021qInfo(value: number): Ndis8021qInfo {
  return { priority: bits(value, 0, 3), cfi: bits(value, 3, 1), vlanId: bits(value, 4, 12) };
}

export function vlanPpi(i: Ndis8021qInfo): RndisPpi {
  return u32Ppi(IEEE_8021Q_INFO, encode8021qInfo(i));
}

// ---------------------------------------------------------------------------
// TCP_LARGESEND_PKTINFO (`struct ndis_tcp_lso_info`, lso_v2_transmit view)

export interface NdisTcpLsoV2Info {
  /** Bits 0–19. */
  readonly mss: number;
  /** Bits 20–29. */
  readonly tcpHeaderOffset: number;
  /** Bit 30: NDIS_TCP_LARGE_SEND_OFFLOAD_V2_TYPE (1) for LSOv2. */
  readonly type: number;
  /** Bit 31: NDIS_TCP_LARGE_SEND_OFFLOAD_IPV4 (0) or _IPV6 (1). */
  readonly ipVersion: number;
}

export function encodeLsoV2Info(i: NdisTcpLsoV2Info): number {
  checkRange("mss", i.mss, 0, 0xfffff);
  checkRange("tcpHeaderOffset", i.tcpHeaderOffset, 0, 0x3ff);
  checkRange("type", i.type, 0, 1);
  checkRange("ipVersion", i.ipVersion, 0, 1);
  return (i.mss | (i.tcpHeaderOffset << 20) | (i.type << 30) | (i.ipVersion << 31)) >>> 0;
}

export function decodeLsoV2Info(value: number): NdisTcpLsoV2Info {
  return { mss: bits(value, 0, 20), tcpHeaderOffset: bits(value, 20, 10), type: bits(value, 30, 1), ipVersion: bits(value, 31, 1) };
}

export function lsoV2Ppi(i: NdisTcpLsoV2Info): RndisPpi {
  return u32Ppi(TCP_LARGESEND_PKTINFO, encodeLsoV2Info(i));
}

// ---------------------------------------------------------------------------
// NBL_HASH_VALUE / hash info

/** The 32-bit RSS hash (Linux TX when more than one queue; RX from the host). */
export function hashValuePpi(hash: number): RndisPpi {
  return u32Ppi(NBL_HASH_VALUE, hash);
}

/** The hash type bits (NDIS_HASH_*), under ORIGINAL_NET_BUFLIST as BSD/DPDK send them. */
export function hashInfoPpi(info: number): RndisPpi {
  return u32Ppi(NBL_HASH_INFO, info);
}

// ---------------------------------------------------------------------------
// RNDIS_PKTINFO_ID (`struct rndis_pktinfo_id`), internal

export interface RndisPktinfoId {
  readonly version: number;
  /** RNDIS_PKTINFO_SUBALLOC | _1ST_FRAG | _LAST_FRAG. */
  readonly flags: number;
  readonly pktId: number;
}

export function pktinfoIdPpi(i: RndisPktinfoId): RndisPpi {
  checkUint("version", i.version, 8);
  checkUint("flags", i.flags, 8);
  checkUint("pktId", i.pktId, 16);
  const data = new Uint8Array(4);
  data[0] = i.version;
  data[1] = i.flags;
  viewOf(data).setUint16(2, i.pktId, true);
  return { type: RNDIS_PKTINFO_ID, internal: true, data };
}

export function decodePktinfoId(ppi: RndisPpi): RndisPktinfoId {
  if (ppi.data.length < 4) {
    throw new ProtocolError(P, "rndis_pktinfo_id payload length", ppi.data.length, "is shorter than the 4-byte object");
  }
  return { version: ppi.data[0] ?? 0, flags: ppi.data[1] ?? 0, pktId: viewOf(ppi.data).getUint16(2, true) };
}

// ---------------------------------------------------------------------------
// Interpretation (for descriptions and the channel layer)

export type InterpretedPpi =
  | { readonly kind: "checksum-tx"; readonly info: NdisTcpIpChecksumTx; readonly value: number }
  | { readonly kind: "checksum-rx"; readonly info: NdisTcpIpChecksumRx; readonly value: number }
  | { readonly kind: "vlan"; readonly info: Ndis8021qInfo; readonly value: number }
  | { readonly kind: "lso-v2"; readonly info: NdisTcpLsoV2Info; readonly value: number }
  | { readonly kind: "hash-value"; readonly value: number }
  | { readonly kind: "hash-info"; readonly value: number }
  | { readonly kind: "pktinfo-id"; readonly info: RndisPktinfoId }
  | { readonly kind: "other"; readonly type: number; readonly internal: boolean; readonly data: Uint8Array };

/**
 * Gives a record its meaning. The checksum record means different things by
 * direction: "tx" (guest → host: what to compute) or "rx" (host → guest:
 * what was verified). Throws `ProtocolError` if a known record's payload is
 * shorter than its 4-byte object.
 */
export function interpretPpi(ppi: RndisPpi, direction: "tx" | "rx"): InterpretedPpi {
  if (ppi.internal) {
    if (ppi.type === RNDIS_PKTINFO_ID) return { kind: "pktinfo-id", info: decodePktinfoId(ppi) };
    return { kind: "other", type: ppi.type, internal: true, data: ppi.data };
  }
  switch (ppi.type) {
    case TCPIP_CHKSUM_PKTINFO: {
      const value = ppiU32(ppi);
      return direction === "tx"
        ? { kind: "checksum-tx", info: decodeChecksumTxInfo(value), value }
        : { kind: "checksum-rx", info: decodeChecksumRxInfo(value), value };
    }
    case IEEE_8021Q_INFO: {
      const value = ppiU32(ppi);
      return { kind: "vlan", info: decode8021qInfo(value), value };
    }
    case TCP_LARGESEND_PKTINFO: {
      const value = ppiU32(ppi);
      return { kind: "lso-v2", info: decodeLsoV2Info(value), value };
    }
    case NBL_HASH_VALUE:
      return { kind: "hash-value", value: ppiU32(ppi) };
    case NBL_HASH_INFO:
      return { kind: "hash-info", value: ppiU32(ppi) };
    default:
      return { kind: "other", type: ppi.type, internal: false, data: ppi.data };
  }
}

/** A record of any type with raw payload bytes (for tests and unusual records). */
export function rawPpi(type: number, data: Uint8Array, internal = false): RndisPpi {
  if (!Number.isInteger(type) || type < 0 || type > 0x7fffffff) {
    throw new InvalidArgumentError("type", type, "must be a 31-bit PPI type");
  }
  return { type, internal, data: Uint8Array.from(data) };
}
