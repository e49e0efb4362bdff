/**
 * NDIS objects carried in RNDIS QUERY/SET information buffers
 * (storvsc-netvsc.md §13.5, §13.7, §13.8): the NDIS object header, the
 * offload capabilities (`struct ndis_offload`) and parameters
 * (`struct ndis_offload_params`), RSS capabilities and parameters, offload
 * encapsulation, link state and speed, RNDIS config parameters, and the
 * plain u32 / MAC / UTF-16 answers.
 *
 * Offsets in the `*_LAYOUT` tables are relative to the start of the object
 * (which is where the information buffer starts). Linux's structs are not
 * packed, so the compiler's padding is part of the layout (noted where it
 * matters). Decoders check the header's type, revision and size against the
 * buffer and throw `ProtocolError` naming the field, the value and the limit.
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { checkLength, checkU64, checkUint, copyBytes, fromUtf16le, utf16le, viewOf } from "./bytes.js";
import {
  ITAB_NUM,
  NDIS_OBJECT_TYPE_DEFAULT,
  NDIS_OBJECT_TYPE_OFFLOAD,
  NDIS_OBJECT_TYPE_OFFLOAD_ENCAPSULATION,
  NDIS_OBJECT_TYPE_RSS_CAPABILITIES,
  NDIS_OBJECT_TYPE_RSS_PARAMETERS,
  NDIS_OFFLOAD_PARAMETERS_REVISION_1,
  NDIS_OFFLOAD_PARAMETERS_REVISION_3,
  NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2,
  NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2,
  RNDIS_CONFIG_PARAM_TYPE_INTEGER,
  RNDIS_CONFIG_PARAM_TYPE_STRING,
} from "./rndis-constants.js";

const P = "NDIS";

interface FieldSpec {
  readonly offset: number;
  readonly size: 1 | 2 | 4 | 8;
}
type Layout = Readonly<Record<string, FieldSpec>>;

/** Numbers of a flat layout (u64 fields as numbers would lose bits; none of these tables has one). */
type FieldsOf<L extends Layout> = { readonly [K in keyof L]: number };

function readField(v: DataView, f: FieldSpec, base = 0): number {
  switch (f.size) {
    case 1:
      return v.getUint8(base + f.offset);
    case 2:
      return v.getUint16(base + f.offset, true);
    case 4:
      return v.getUint32(base + f.offset, true);
    case 8:
      throw new InvalidArgumentError("field.size", 8, "u64 fields are read with getBigUint64");
  }
}

function writeField(v: DataView, name: string, f: FieldSpec, value: number): void {
  switch (f.size) {
    case 1:
      checkUint(name, value, 8);
      v.setUint8(f.offset, value);
      return;
    case 2:
      checkUint(name, value, 16);
      v.setUint16(f.offset, value, true);
      return;
    case 4:
      checkUint(name, value, 32);
      v.setUint32(f.offset, value, true);
      return;
    case 8:
      throw new InvalidArgumentError(name, value, "u64 fields are written with setBigUint64");
  }
}

/** Reads every field of `layout` that lies inside the first `limit` bytes; the others read as 0. */
function readFields<L extends Layout>(bytes: Uint8Array, layout: L, limit: number): FieldsOf<L> {
  const v = viewOf(bytes);
  const out: Record<string, number> = {};
  for (const [name, f] of Object.entries(layout)) out[name] = f.offset + f.size <= limit ? readField(v, f) : 0;
  return out as FieldsOf<L>;
}

/** Writes every field of `layout` that lies inside the first `limit` bytes. */
function writeFields<L extends Layout>(bytes: Uint8Array, layout: L, values: FieldsOf<L>, limit: number): void {
  const v = viewOf(bytes);
  for (const [name, f] of Object.entries(layout)) {
    if (f.offset + f.size <= limit) writeField(v, name, f, values[name as keyof L] as number);
  }
}

// ---------------------------------------------------------------------------
// NDIS object header (`struct ndis_object_header` / `ndis_obj_header`)

export const NDIS_OBJECT_HEADER_LAYOUT = {
  type: { offset: 0, size: 1 },
  revision: { offset: 1, size: 1 },
  size: { offset: 2, size: 2 },
} as const satisfies Layout;
export const NDIS_OBJECT_HEADER_SIZE = 4;

export interface NdisObjectHeader {
  readonly type: number;
  readonly revision: number;
  /** Size of the whole object, header included. */
  readonly size: number;
}

export function encodeNdisObjectHeaderInto(bytes: Uint8Array, h: NdisObjectHeader): void {
  writeFields(bytes, NDIS_OBJECT_HEADER_LAYOUT, h, NDIS_OBJECT_HEADER_SIZE);
}

export function decodeNdisObjectHeader(bytes: Uint8Array): NdisObjectHeader {
  if (bytes.length < NDIS_OBJECT_HEADER_SIZE) {
    throw new ProtocolError(P, "buffer length", bytes.length, `is shorter than the ${NDIS_OBJECT_HEADER_SIZE}-byte NDIS object header`);
  }
  return readFields(bytes, NDIS_OBJECT_HEADER_LAYOUT, NDIS_OBJECT_HEADER_SIZE);
}

/**
 * Reads an object header from an information buffer and checks it names
 * `type`, a revision ≥ `minRevision`, and a size in [minSize, buffer length]
 * — the size must not claim bytes the buffer does not have.
 */
function checkedHeader(object: string, bytes: Uint8Array, type: number, minRevision: number, minSize: number): NdisObjectHeader {
  const h = decodeNdisObjectHeader(bytes);
  if (h.type !== type) {
    throw new ProtocolError(P, `${object}.header.type`, h.type, `must be 0x${type.toString(16)}`);
  }
  if (h.revision < minRevision) {
    throw new ProtocolError(P, `${object}.header.revision`, h.revision, `must be at least ${minRevision}`);
  }
  if (h.size < minSize) {
    throw new ProtocolError(P, `${object}.header.size`, h.size, `is smaller than the ${minSize} bytes of revision ${minRevision}`);
  }
  if (h.size > bytes.length) {
    throw new ProtocolError(P, `${object}.header.size`, h.size, `exceeds the ${bytes.length}-byte information buffer`);
  }
  return h;
}

// ---------------------------------------------------------------------------
// NDIS_OFFLOAD (`struct ndis_offload`): OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES / _CURRENT_CONFIG

/** Fields of `struct ndis_offload` after the header, flattened (sub-struct name + Linux field). */
export const NDIS_OFFLOAD_LAYOUT = {
  // struct ndis_csum_offload csum @4
  csumIp4TxEnc: { offset: 4, size: 4 },
  csumIp4TxCsum: { offset: 8, size: 4 },
  csumIp4RxEnc: { offset: 12, size: 4 },
  csumIp4RxCsum: { offset: 16, size: 4 },
  csumIp6TxEnc: { offset: 20, size: 4 },
  csumIp6TxCsum: { offset: 24, size: 4 },
  csumIp6RxEnc: { offset: 28, size: 4 },
  csumIp6RxCsum: { offset: 32, size: 4 },
  // struct ndis_lsov1_offload lsov1 @36
  lsoV1Encap: { offset: 36, size: 4 },
  lsoV1MaxSize: { offset: 40, size: 4 },
  lsoV1MinSegs: { offset: 44, size: 4 },
  lsoV1Opts: { offset: 48, size: 4 },
  // struct ndis_ipsecv1_offload ipsecv1 @52
  ipsecV1Encap: { offset: 52, size: 4 },
  ipsecV1AhEsp: { offset: 56, size: 4 },
  ipsecV1XportTun: { offset: 60, size: 4 },
  ipsecV1Ip4Opts: { offset: 64, size: 4 },
  ipsecV1Flags: { offset: 68, size: 4 },
  ipsecV1Ip4Ah: { offset: 72, size: 4 },
  ipsecV1Ip4Esp: { offset: 76, size: 4 },
  // struct ndis_lsov2_offload lsov2 @80
  lsoV2Ip4Encap: { offset: 80, size: 4 },
  lsoV2Ip4MaxSize: { offset: 84, size: 4 },
  lsoV2Ip4MinSegs: { offset: 88, size: 4 },
  lsoV2Ip6Encap: { offset: 92, size: 4 },
  lsoV2Ip6MaxSize: { offset: 96, size: 4 },
  lsoV2Ip6MinSegs: { offset: 100, size: 4 },
  lsoV2Ip6Opts: { offset: 104, size: 4 },
  flags: { offset: 108, size: 4 },
  // NDIS ≥ 6.1: struct ndis_ipsecv2_offload ipsecv2 @112 (11 u8 then 1 pad byte)
  ipsecV2Encap: { offset: 112, size: 4 },
  ipsecV2Ip6: { offset: 116, size: 1 },
  ipsecV2Ip4Opt: { offset: 117, size: 1 },
  ipsecV2Ip6Ext: { offset: 118, size: 1 },
  ipsecV2Ah: { offset: 119, size: 1 },
  ipsecV2Esp: { offset: 120, size: 1 },
  ipsecV2AhEsp: { offset: 121, size: 1 },
  ipsecV2Xport: { offset: 122, size: 1 },
  ipsecV2Tun: { offset: 123, size: 1 },
  ipsecV2XportTun: { offset: 124, size: 1 },
  ipsecV2Lso: { offset: 125, size: 1 },
  ipsecV2ExtSeq: { offset: 126, size: 1 },
  ipsecV2UdpEsp: { offset: 128, size: 4 },
  ipsecV2Auth: { offset: 132, size: 4 },
  ipsecV2Crypto: { offset: 136, size: 4 },
  ipsecV2SaCaps: { offset: 140, size: 4 },
  // NDIS ≥ 6.30: struct ndis_rsc_offload rsc @144 (2 pad bytes), struct ndis_encap_offload encap_gre @148
  rscIp4: { offset: 144, size: 1 },
  rscIp6: { offset: 145, size: 1 },
  encapGreFlags: { offset: 148, size: 4 },
  encapGreMaxHdr: { offset: 152, size: 4 },
} as const satisfies Layout;

/** `offsetof(struct ndis_offload, ipsecv2)`: revision 1 / NDIS 6.0. */
export const NDIS_OFFLOAD_SIZE_6_0 = 112;
/** `offsetof(struct ndis_offload, rsc)`: revision 2 / NDIS 6.1. */
export const NDIS_OFFLOAD_SIZE_6_1 = 144;
/** `sizeof(struct ndis_offload)`: revision 3 / NDIS 6.30. */
export const NDIS_OFFLOAD_SIZE = 156;

export type NdisOffloadFields = FieldsOf<typeof NDIS_OFFLOAD_LAYOUT>;

export interface NdisOffload extends NdisOffloadFields {
  readonly header: NdisObjectHeader;
}

/** The object size of a revision (1 → 112, 2 → 144, 3 → 156). */
export function ndisOffloadSize(revision: number): number {
  if (revision <= 1) return NDIS_OFFLOAD_SIZE_6_0;
  if (revision === 2) return NDIS_OFFLOAD_SIZE_6_1;
  return NDIS_OFFLOAD_SIZE;
}

/** An all-zero `ndis_offload` of `revision` (fields to be filled by the caller). */
export function emptyNdisOffload(revision = NDIS_OFFLOAD_PARAMETERS_REVISION_3): NdisOffload {
  const zero = readFields(new Uint8Array(0), NDIS_OFFLOAD_LAYOUT, 0);
  return { ...zero, header: { type: NDIS_OBJECT_TYPE_OFFLOAD, revision, size: ndisOffloadSize(revision) } };
}

/** Encodes an `ndis_offload` of `header.size` bytes (fields past the size are left out). */
export function encodeNdisOffload(o: NdisOffload): Uint8Array {
  const out = new Uint8Array(o.header.size);
  encodeNdisObjectHeaderInto(out, o.header);
  writeFields(out, NDIS_OFFLOAD_LAYOUT, o, o.header.size);
  return out;
}

/**
 * Decodes an `ndis_offload` as Linux `rndis_query_hwcaps` accepts it: type
 * OFFLOAD (0xa7), revision ≥ 1, size ≥ 112 and ≤ the buffer. Fields past the
 * size (older revisions) read as 0.
 */
export function decodeNdisOffload(info: Uint8Array): NdisOffload {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_offload", copy, NDIS_OBJECT_TYPE_OFFLOAD, NDIS_OFFLOAD_PARAMETERS_REVISION_1, NDIS_OFFLOAD_SIZE_6_0);
  return { ...readFields(copy, NDIS_OFFLOAD_LAYOUT, header.size), header };
}

// ---------------------------------------------------------------------------
// NDIS_OFFLOAD_PARAMETERS (`struct ndis_offload_params`): SET OID_TCP_OFFLOAD_PARAMETERS

export const NDIS_OFFLOAD_PARAMS_LAYOUT = {
  ipV4Csum: { offset: 4, size: 1 },
  tcpIpV4Csum: { offset: 5, size: 1 },
  udpIpV4Csum: { offset: 6, size: 1 },
  tcpIpV6Csum: { offset: 7, size: 1 },
  udpIpV6Csum: { offset: 8, size: 1 },
  lsoV1: { offset: 9, size: 1 },
  ipSecV1: { offset: 10, size: 1 },
  lsoV2Ipv4: { offset: 11, size: 1 },
  lsoV2Ipv6: { offset: 12, size: 1 },
  tcpConnectionIpV4: { offset: 13, size: 1 },
  tcpConnectionIpV6: { offset: 14, size: 1 },
  // one pad byte at 15
  flags: { offset: 16, size: 4 },
  ipSecV2: { offset: 20, size: 1 },
  ipSecV2IpV4: { offset: 21, size: 1 },
  rscIpV4: { offset: 22, size: 1 },
  rscIpV6: { offset: 23, size: 1 },
  encapsulatedPacketTaskOffload: { offset: 24, size: 1 },
  encapsulationTypes: { offset: 25, size: 1 },
} as const satisfies Layout;

/** `sizeof(struct ndis_offload_params)` (2 trailing pad bytes): what Linux sends from NVSP v5. */
export const NDIS_OFFLOAD_PARAMETERS_SIZE = 28;
/** Linux `VERSION_4_OFFLOAD_SIZE`: what it sends for NVSP ≤ v4 (through ip_sec_v2_ip_v4). */
export const VERSION_4_OFFLOAD_SIZE = 22;
/** Revision-1 size (through flags); OV requires at least this. */
export const NDIS_OFFLOAD_PARAMETERS_SIZE_REVISION_1 = 20;

export type NdisOffloadParamsFields = FieldsOf<typeof NDIS_OFFLOAD_PARAMS_LAYOUT>;

export interface NdisOffloadParams extends NdisOffloadParamsFields {
  readonly header: NdisObjectHeader;
}

/** All fields NO_CHANGE (0), header {DEFAULT, rev 3, `size`}. */
export function emptyNdisOffloadParams(size = NDIS_OFFLOAD_PARAMETERS_SIZE): NdisOffloadParams {
  const zero = readFields(new Uint8Array(0), NDIS_OFFLOAD_PARAMS_LAYOUT, 0);
  return { ...zero, header: { type: NDIS_OBJECT_TYPE_DEFAULT, revision: NDIS_OFFLOAD_PARAMETERS_REVISION_3, size } };
}

/** Encodes `header.size` bytes, as Linux `rndis_filter_set_offload_params` does (22 or 28). */
export function encodeNdisOffloadParams(p: NdisOffloadParams): Uint8Array {
  const out = new Uint8Array(p.header.size);
  encodeNdisObjectHeaderInto(out, p.header);
  writeFields(out, NDIS_OFFLOAD_PARAMS_LAYOUT, p, p.header.size);
  return out;
}

/**
 * Decodes offload parameters as OV accepts them: type DEFAULT (0x80),
 * revision ≥ 1, size ≥ 20 and ≤ the buffer. Fields past the size read as 0
 * (NO_CHANGE).
 */
export function decodeNdisOffloadParams(info: Uint8Array): NdisOffloadParams {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_offload_params", copy, NDIS_OBJECT_TYPE_DEFAULT, NDIS_OFFLOAD_PARAMETERS_REVISION_1, NDIS_OFFLOAD_PARAMETERS_SIZE_REVISION_1);
  return { ...readFields(copy, NDIS_OFFLOAD_PARAMS_LAYOUT, header.size), header };
}

// ---------------------------------------------------------------------------
// RSS capabilities (`struct ndis_recv_scale_cap`, packed): QUERY OID_GEN_RECEIVE_SCALE_CAPABILITIES

export const NDIS_RECV_SCALE_CAP_LAYOUT = {
  capFlag: { offset: 4, size: 4 },
  numIntMsg: { offset: 8, size: 4 },
  numRecvQue: { offset: 12, size: 4 },
  /** Revision 2 only. */
  numIndirectTabent: { offset: 16, size: 2 },
} as const satisfies Layout;
/** Revision 2 (Linux sends this header as query input). */
export const NDIS_RECV_SCALE_CAP_SIZE = 18;
export const NDIS_RECV_SCALE_CAP_SIZE_REVISION_1 = 16;

export interface NdisRecvScaleCap extends FieldsOf<typeof NDIS_RECV_SCALE_CAP_LAYOUT> {
  readonly header: NdisObjectHeader;
}

export function encodeNdisRecvScaleCap(c: NdisRecvScaleCap): Uint8Array {
  const out = new Uint8Array(c.header.size);
  encodeNdisObjectHeaderInto(out, c.header);
  writeFields(out, NDIS_RECV_SCALE_CAP_LAYOUT, c, c.header.size);
  return out;
}

/** An RSS capabilities object {0x88, rev 2, 18}. */
export function makeNdisRecvScaleCap(capFlag: number, numIntMsg: number, numRecvQue: number, numIndirectTabent: number): NdisRecvScaleCap {
  return {
    header: { type: NDIS_OBJECT_TYPE_RSS_CAPABILITIES, revision: NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2, size: NDIS_RECV_SCALE_CAP_SIZE },
    capFlag,
    numIntMsg,
    numRecvQue,
    numIndirectTabent,
  };
}

/** Type RSS_CAPABILITIES (0x88), size ≥ 16 and ≤ the buffer; num_indirect_tabent is 0 below 18 bytes. */
export function decodeNdisRecvScaleCap(info: Uint8Array): NdisRecvScaleCap {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_recv_scale_cap", copy, NDIS_OBJECT_TYPE_RSS_CAPABILITIES, 1, NDIS_RECV_SCALE_CAP_SIZE_REVISION_1);
  return { ...readFields(copy, NDIS_RECV_SCALE_CAP_LAYOUT, header.size), header };
}

// ---------------------------------------------------------------------------
// RSS parameters (`struct ndis_recv_scale_param`, NOT packed: 40 bytes): SET OID_GEN_RECEIVE_SCALE_PARAMETERS

export const NDIS_RECV_SCALE_PARAM_LAYOUT = {
  flag: { offset: 4, size: 2 },
  baseCpuNumber: { offset: 6, size: 2 },
  hashinfo: { offset: 8, size: 4 },
  /** In BYTES (Linux 512 = 128 × u32); 2 pad bytes follow. */
  indirectTabsize: { offset: 12, size: 2 },
  /** From the start of this struct. */
  indirectTaboffset: { offset: 16, size: 4 },
  hashkeySize: { offset: 20, size: 2 },
  hashkeyOffset: { offset: 24, size: 4 },
  processorMasksOffset: { offset: 28, size: 4 },
  numProcessorMasks: { offset: 32, size: 4 },
  processorMasksEntrySize: { offset: 36, size: 4 },
} as const satisfies Layout;
export const NDIS_RECV_SCALE_PARAM_SIZE = 40;
/** Through hashkey_offset: the fields every revision has. */
export const NDIS_RECV_SCALE_PARAM_SIZE_REVISION_1 = 28;

export interface NdisRecvScaleParam extends FieldsOf<typeof NDIS_RECV_SCALE_PARAM_LAYOUT> {
  readonly header: NdisObjectHeader;
  /** The indirection table: queue numbers, one u32 each. */
  readonly indirectionTable: readonly number[];
  readonly hashKey: Uint8Array;
}

export interface RssParamsInput {
  /** NDIS_RSS_PARAM_FLAG_*. */
  readonly flags: number;
  readonly hashInformation: number;
  readonly indirectionTable: readonly number[];
  readonly hashKey: Uint8Array;
  readonly baseCpuNumber?: number;
}

/**
 * Encodes RSS parameters in Linux's layout (`rndis_set_rss_param_msg`):
 * header {0x89, rev 2, 40}, table right after the struct, key right after
 * the table, no processor masks.
 */
export function encodeNdisRecvScaleParam(p: RssParamsInput): Uint8Array {
  const tableBytes = 4 * p.indirectionTable.length;
  checkUint("indirectionTable bytes", tableBytes, 16);
  checkUint("hashKey.length", p.hashKey.length, 16);
  const out = new Uint8Array(NDIS_RECV_SCALE_PARAM_SIZE + tableBytes + p.hashKey.length);
  encodeNdisObjectHeaderInto(out, {
    type: NDIS_OBJECT_TYPE_RSS_PARAMETERS,
    revision: NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2,
    size: NDIS_RECV_SCALE_PARAM_SIZE,
  });
  const keyOffset = NDIS_RECV_SCALE_PARAM_SIZE + tableBytes;
  writeFields(
    out,
    NDIS_RECV_SCALE_PARAM_LAYOUT,
    {
      flag: p.flags,
      baseCpuNumber: p.baseCpuNumber ?? 0,
      hashinfo: p.hashInformation,
      indirectTabsize: tableBytes,
      indirectTaboffset: NDIS_RECV_SCALE_PARAM_SIZE,
      hashkeySize: p.hashKey.length,
      hashkeyOffset: keyOffset,
      processorMasksOffset: 0,
      numProcessorMasks: 0,
      processorMasksEntrySize: 0,
    },
    NDIS_RECV_SCALE_PARAM_SIZE,
  );
  const v = viewOf(out);
  p.indirectionTable.forEach((q, i) => {
    checkUint(`indirectionTable[${i}]`, q, 32);
    v.setUint32(NDIS_RECV_SCALE_PARAM_SIZE + 4 * i, q, true);
  });
  out.set(p.hashKey, keyOffset);
  return out;
}

/** Linux's table: entry i = i mod `numQueues`, ITAB_NUM entries (`ethtool_rxfh_indir_default`). */
export function defaultIndirectionTable(numQueues: number, entries = ITAB_NUM): number[] {
  if (!Number.isInteger(numQueues) || numQueues < 1) throw new InvalidArgumentError("numQueues", numQueues, "must be a positive integer");
  return Array.from({ length: entries }, (_, i) => i % numQueues);
}

/**
 * Decodes RSS parameters: type RSS_PARAMETERS (0x89), size ≥ 28 and ≤ the
 * buffer; the table size must be a whole number of u32 entries, and the
 * table and the key must lie inside the buffer after the struct.
 */
export function decodeNdisRecvScaleParam(info: Uint8Array): NdisRecvScaleParam {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_recv_scale_param", copy, NDIS_OBJECT_TYPE_RSS_PARAMETERS, 1, NDIS_RECV_SCALE_PARAM_SIZE_REVISION_1);
  const f = readFields(copy, NDIS_RECV_SCALE_PARAM_LAYOUT, header.size);
  // Entries are u32 queue numbers; a partial entry has no meaning.
  if (f.indirectTabsize % 4 !== 0) {
    throw new ProtocolError(P, "ndis_recv_scale_param.indirect_tabsize", f.indirectTabsize, "must be a multiple of 4 (u32 entries)");
  }
  const region = (what: string, offsetField: string, offset: number, size: number): void => {
    if (size === 0) return;
    // Inside the struct the table/key would alias the fields describing it.
    if (offset < header.size) {
      throw new ProtocolError(P, `ndis_recv_scale_param.${offsetField}`, offset, `puts the ${what} inside the ${header.size}-byte parameters struct`);
    }
    if (offset > copy.length || size > copy.length - offset) {
      throw new ProtocolError(P, `ndis_recv_scale_param.${offsetField}`, offset, `+ ${size} ${what} bytes exceeds the ${copy.length}-byte information buffer`);
    }
  };
  region("indirection table", "indirect_taboffset", f.indirectTaboffset, f.indirectTabsize);
  region("hash key", "hashkey_offset", f.hashkeyOffset, f.hashkeySize);
  const v = viewOf(copy);
  const indirectionTable: number[] = [];
  for (let i = 0; i < f.indirectTabsize / 4; i++) indirectionTable.push(v.getUint32(f.indirectTaboffset + 4 * i, true));
  const hashKey = f.hashkeySize > 0 ? copy.slice(f.hashkeyOffset, f.hashkeyOffset + f.hashkeySize) : new Uint8Array(0);
  return { ...f, header, indirectionTable, hashKey };
}

// ---------------------------------------------------------------------------
// NDIS_OFFLOAD_ENCAPSULATION: OID_OFFLOAD_ENCAPSULATION

export const NDIS_OFFLOAD_ENCAPSULATION_LAYOUT = {
  ipv4Enabled: { offset: 4, size: 4 },
  ipv4EncapsulationType: { offset: 8, size: 4 },
  ipv4HeaderSize: { offset: 12, size: 4 },
  ipv6Enabled: { offset: 16, size: 4 },
  ipv6EncapsulationType: { offset: 20, size: 4 },
  ipv6HeaderSize: { offset: 24, size: 4 },
} as const satisfies Layout;
export const NDIS_OFFLOAD_ENCAPSULATION_SIZE = 28;

export interface NdisOffloadEncapsulation extends FieldsOf<typeof NDIS_OFFLOAD_ENCAPSULATION_LAYOUT> {
  readonly header: NdisObjectHeader;
}

export function encodeNdisOffloadEncapsulation(e: NdisOffloadEncapsulation): Uint8Array {
  const out = new Uint8Array(e.header.size);
  encodeNdisObjectHeaderInto(out, e.header);
  writeFields(out, NDIS_OFFLOAD_ENCAPSULATION_LAYOUT, e, e.header.size);
  return out;
}

/** Type OFFLOAD_ENCAPSULATION (0xa8), revision ≥ 1, size ≥ 28 and ≤ the buffer. */
export function decodeNdisOffloadEncapsulation(info: Uint8Array): NdisOffloadEncapsulation {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_offload_encapsulation", copy, NDIS_OBJECT_TYPE_OFFLOAD_ENCAPSULATION, 1, NDIS_OFFLOAD_ENCAPSULATION_SIZE);
  return { ...readFields(copy, NDIS_OFFLOAD_ENCAPSULATION_LAYOUT, header.size), header };
}

// ---------------------------------------------------------------------------
// NDIS_LINK_STATE (OID_GEN_LINK_STATE) and NDIS_LINK_SPEED (OID_GEN_MAX_LINK_SPEED)

/** OV `LinkState`: 4 pad bytes at 12 put the u64 speeds on 8-byte boundaries. */
export const NDIS_LINK_STATE_LAYOUT = {
  mediaConnectState: { offset: 4, size: 4 },
  mediaDuplexState: { offset: 8, size: 4 },
  xmitLinkSpeed: { offset: 16, size: 8 },
  rcvLinkSpeed: { offset: 24, size: 8 },
  pauseFunctions: { offset: 32, size: 4 },
  autoNegotiationFlags: { offset: 36, size: 4 },
} as const satisfies Layout;
export const NDIS_LINK_STATE_SIZE = 40;
/** NDIS_LINK_STATE MediaConnectState values (unlike OID_GEN_MEDIA_CONNECT_STATUS: 1 = connected). */
export const MEDIA_CONNECT_STATE_UNKNOWN = 0;
export const MEDIA_CONNECT_STATE_CONNECTED = 1;
export const MEDIA_CONNECT_STATE_DISCONNECTED = 2;

export interface NdisLinkState {
  readonly header: NdisObjectHeader;
  readonly mediaConnectState: number;
  readonly mediaDuplexState: number;
  /** Bits per second. */
  readonly xmitLinkSpeed: bigint;
  readonly rcvLinkSpeed: bigint;
  readonly pauseFunctions: number;
  readonly autoNegotiationFlags: number;
}

export function encodeNdisLinkState(s: NdisLinkState): Uint8Array {
  const out = new Uint8Array(NDIS_LINK_STATE_SIZE);
  const v = viewOf(out);
  const L = NDIS_LINK_STATE_LAYOUT;
  encodeNdisObjectHeaderInto(out, s.header);
  writeField(v, "mediaConnectState", L.mediaConnectState, s.mediaConnectState);
  writeField(v, "mediaDuplexState", L.mediaDuplexState, s.mediaDuplexState);
  checkU64("xmitLinkSpeed", s.xmitLinkSpeed);
  checkU64("rcvLinkSpeed", s.rcvLinkSpeed);
  v.setBigUint64(L.xmitLinkSpeed.offset, s.xmitLinkSpeed, true);
  v.setBigUint64(L.rcvLinkSpeed.offset, s.rcvLinkSpeed, true);
  writeField(v, "pauseFunctions", L.pauseFunctions, s.pauseFunctions);
  writeField(v, "autoNegotiationFlags", L.autoNegotiationFlags, s.autoNegotiationFlags);
  return out;
}

/** An OV-style link state {DEFAULT, rev 1, 40}: connected or not, symmetric speed in bps. */
export function makeNdisLinkState(connected: boolean, speedBps: bigint): NdisLinkState {
  return {
    header: { type: NDIS_OBJECT_TYPE_DEFAULT, revision: 1, size: NDIS_LINK_STATE_SIZE },
    mediaConnectState: connected ? MEDIA_CONNECT_STATE_CONNECTED : MEDIA_CONNECT_STATE_DISCONNECTED,
    mediaDuplexState: 0,
    xmitLinkSpeed: speedBps,
    rcvLinkSpeed: speedBps,
    pauseFunctions: 0,
    autoNegotiationFlags: 0,
  };
}

/** Type DEFAULT (0x80), size ≥ 40 and ≤ the buffer. */
export function decodeNdisLinkState(info: Uint8Array): NdisLinkState {
  const copy = copyBytes(info);
  const header = checkedHeader("ndis_link_state", copy, NDIS_OBJECT_TYPE_DEFAULT, 1, NDIS_LINK_STATE_SIZE);
  const v = viewOf(copy);
  const L = NDIS_LINK_STATE_LAYOUT;
  return {
    header,
    mediaConnectState: readField(v, L.mediaConnectState),
    mediaDuplexState: readField(v, L.mediaDuplexState),
    xmitLinkSpeed: v.getBigUint64(L.xmitLinkSpeed.offset, true),
    rcvLinkSpeed: v.getBigUint64(L.rcvLinkSpeed.offset, true),
    pauseFunctions: readField(v, L.pauseFunctions),
    autoNegotiationFlags: readField(v, L.autoNegotiationFlags),
  };
}

/** OID_GEN_MAX_LINK_SPEED: {u64 xmit, u64 rcv} in bps. */
export function encodeNdisLinkSpeed(xmit: bigint, rcv: bigint): Uint8Array {
  checkU64("xmit", xmit);
  checkU64("rcv", rcv);
  const out = new Uint8Array(16);
  viewOf(out).setBigUint64(0, xmit, true);
  viewOf(out).setBigUint64(8, rcv, true);
  return out;
}

export function decodeNdisLinkSpeed(info: Uint8Array): { readonly xmit: bigint; readonly rcv: bigint } {
  if (info.length < 16) throw new ProtocolError(P, "ndis_link_speed length", info.length, "is shorter than 16 bytes (u64 xmit, u64 rcv)");
  const v = viewOf(copyBytes(info, 16));
  return { xmit: v.getBigUint64(0, true), rcv: v.getBigUint64(8, true) };
}

// ---------------------------------------------------------------------------
// RNDIS config parameter (`struct rndis_config_parameter_info`): SET OID_GEN_RNDIS_CONFIG_PARAMETER

/** Offsets in the fields count from the start of this struct. */
export const RNDIS_CONFIG_PARAMETER_INFO_LAYOUT = {
  parameterNameOffset: { offset: 0, size: 4 },
  parameterNameLength: { offset: 4, size: 4 },
  parameterType: { offset: 8, size: 4 },
  parameterValueOffset: { offset: 12, size: 4 },
  parameterValueLength: { offset: 16, size: 4 },
} as const satisfies Layout;
export const RNDIS_CONFIG_PARAMETER_INFO_SIZE = 20;
/** OV limit on name and value. */
export const RNDIS_CONFIG_PARAMETER_MAX_BYTES = 255;

export type RndisConfigParameter =
  | { readonly name: string; readonly type: typeof RNDIS_CONFIG_PARAM_TYPE_STRING; readonly value: string }
  | { readonly name: string; readonly type: typeof RNDIS_CONFIG_PARAM_TYPE_INTEGER; readonly value: number };

/**
 * Encodes in Linux's layout (`rndis_filter_set_device_mac`): the struct,
 * then the UTF-16LE name, then the value (UTF-16LE string or u32).
 */
export function encodeRndisConfigParameter(p: RndisConfigParameter): Uint8Array {
  const name = utf16le(p.name);
  let value: Uint8Array;
  if (p.type === RNDIS_CONFIG_PARAM_TYPE_STRING) {
    value = utf16le(p.value);
  } else {
    checkUint("value", p.value, 32);
    value = new Uint8Array(4);
    viewOf(value).setUint32(0, p.value, true);
  }
  const out = new Uint8Array(RNDIS_CONFIG_PARAMETER_INFO_SIZE + name.length + value.length);
  writeFields(
    out,
    RNDIS_CONFIG_PARAMETER_INFO_LAYOUT,
    {
      parameterNameOffset: RNDIS_CONFIG_PARAMETER_INFO_SIZE,
      parameterNameLength: name.length,
      parameterType: p.type,
      parameterValueOffset: RNDIS_CONFIG_PARAMETER_INFO_SIZE + name.length,
      parameterValueLength: value.length,
    },
    RNDIS_CONFIG_PARAMETER_INFO_SIZE,
  );
  out.set(name, RNDIS_CONFIG_PARAMETER_INFO_SIZE);
  out.set(value, RNDIS_CONFIG_PARAMETER_INFO_SIZE + name.length);
  return out;
}

/**
 * Decodes a config parameter: name and value must lie in the buffer after
 * the struct, be at most 255 bytes (OV), and the name a whole number of
 * UTF-16 units; the type must be INTEGER (0, value ≥ 4 bytes) or STRING (2).
 */
export function decodeRndisConfigParameter(info: Uint8Array): RndisConfigParameter {
  const copy = copyBytes(info);
  if (copy.length < RNDIS_CONFIG_PARAMETER_INFO_SIZE) {
    throw new ProtocolError(P, "rndis_config_parameter_info length", copy.length, `is shorter than the ${RNDIS_CONFIG_PARAMETER_INFO_SIZE}-byte struct`);
  }
  const f = readFields(copy, RNDIS_CONFIG_PARAMETER_INFO_LAYOUT, RNDIS_CONFIG_PARAMETER_INFO_SIZE);
  const region = (what: "name" | "value", offset: number, length: number): Uint8Array => {
    const field = `rndis_config_parameter_info.parameter_${what}`;
    // The OV host caps these; a longer one is a malformed (or hostile) request.
    if (length > RNDIS_CONFIG_PARAMETER_MAX_BYTES) {
      throw new ProtocolError(P, `${field}_length`, length, `exceeds ${RNDIS_CONFIG_PARAMETER_MAX_BYTES} bytes`);
    }
    if (offset < RNDIS_CONFIG_PARAMETER_INFO_SIZE) {
      throw new ProtocolError(P, `${field}_offset`, offset, `must be at least ${RNDIS_CONFIG_PARAMETER_INFO_SIZE} (after the struct)`);
    }
    if (offset > copy.length || length > copy.length - offset) {
      throw new ProtocolError(P, `${field}_offset`, offset, `+ length ${length} exceeds the ${copy.length}-byte information buffer`);
    }
    return copy.subarray(offset, offset + length);
  };
  // UTF-16 names come in 2-byte units; an odd length cuts a character.
  if (f.parameterNameLength % 2 !== 0) {
    throw new ProtocolError(P, "rndis_config_parameter_info.parameter_name_length", f.parameterNameLength, "must be even (UTF-16)");
  }
  const name = fromUtf16le(region("name", f.parameterNameOffset, f.parameterNameLength));
  const valueBytes = region("value", f.parameterValueOffset, f.parameterValueLength);
  if (f.parameterType === RNDIS_CONFIG_PARAM_TYPE_STRING) {
    return { name, type: RNDIS_CONFIG_PARAM_TYPE_STRING, value: fromUtf16le(valueBytes) };
  }
  if (f.parameterType === RNDIS_CONFIG_PARAM_TYPE_INTEGER) {
    if (valueBytes.length < 4) {
      throw new ProtocolError(P, "rndis_config_parameter_info.parameter_value_length", valueBytes.length, "is shorter than the 4-byte integer");
    }
    return { name, type: RNDIS_CONFIG_PARAM_TYPE_INTEGER, value: viewOf(valueBytes).getUint32(0, true) };
  }
  throw new ProtocolError(P, "rndis_config_parameter_info.parameter_type", f.parameterType, "must be RNDIS_CONFIG_PARAM_TYPE_INTEGER (0) or _STRING (2)");
}

/** Linux's MAC change: name "NetworkAddress", value 12 hex digits (`%pm`, lowercase). */
export function networkAddressConfigParameter(mac: Uint8Array): RndisConfigParameter {
  checkLength("mac", mac, 6);
  const value = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  return { name: "NetworkAddress", type: RNDIS_CONFIG_PARAM_TYPE_STRING, value };
}

// ---------------------------------------------------------------------------
// Plain answers

/** A u32 information buffer (MAXIMUM_FRAME_SIZE, LINK_SPEED, MEDIA_CONNECT_STATUS, packet filter…). */
export function encodeU32Info(value: number): Uint8Array {
  checkUint("value", value, 32);
  const out = new Uint8Array(4);
  viewOf(out).setUint32(0, value, true);
  return out;
}

/** The u32 at the start of an information buffer; `what` names it in the error. */
export function decodeU32Info(info: Uint8Array, what = "information buffer"): number {
  // Linux reads sizeof(u32) and checks info_buflen ≥ 4 before it does.
  if (info.length < 4) throw new ProtocolError(P, `${what} length`, info.length, "is shorter than the 4-byte u32");
  return viewOf(copyBytes(info, 4)).getUint32(0, true);
}

/** OID_802_3_PERMANENT_ADDRESS / CURRENT_ADDRESS: the 6-byte MAC. */
export function decodeMacInfo(info: Uint8Array): Uint8Array {
  if (info.length < 6) throw new ProtocolError(P, "802_3 address length", info.length, "is shorter than the 6-byte MAC address");
  return copyBytes(info, 6);
}

/** OV's OID_GEN_FRIENDLY_NAME answer: 255 UTF-16 units + NUL (512 bytes), zero-padded. */
export const FRIENDLY_NAME_SIZE = 512;

export function encodeFriendlyName(name: string): Uint8Array {
  if (name.length > FRIENDLY_NAME_SIZE / 2 - 1) {
    throw new InvalidArgumentError("name.length", name.length, `must be at most ${FRIENDLY_NAME_SIZE / 2 - 1} UTF-16 units`);
  }
  const out = new Uint8Array(FRIENDLY_NAME_SIZE);
  out.set(utf16le(name));
  return out;
}

/** UTF-16LE up to the first NUL (or the end of the buffer). */
export function decodeFriendlyName(info: Uint8Array): string {
  return fromUtf16le(copyBytes(info));
}
