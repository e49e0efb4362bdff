/**
 * `vmbus-sim decode`: bytes (hex or a file) → a readable tree naming every
 * field. The per-protocol work is done by the describe functions the
 * drivers and core already ship (the same ones that label traces); this file
 * adds the input parsing, the VMBus packet-descriptor and channel-message
 * trees, and the guess of what the bytes are when `--as` is not given.
 */
import {
  CHANNELMSG_COUNT,
  CHANNEL_MESSAGE_HEADER_SIZE,
  CHANNEL_MESSAGE_TABLE,
  Guid,
  HV_IDE_GUID,
  HV_NIC_GUID,
  HV_SCSI_GUID,
  MAX_SIZE_CHANNEL_MESSAGE,
  VMBUS_PACKET_MPB_ARRAY as MPB,
  VMPACKET_DESCRIPTOR as D,
  VMTRANSFER_PAGE_PACKET_HEADER as XFER,
  VM_PKT_COMP,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
  VM_PKT_NAMES,
  channelMessageName,
  decodeChannelMessage,
  decodeDescriptor,
  describeChannelMessage,
  pagesSpanned,
  type ChannelMessage,
} from "../core/index.js";
import { describeNvsp, describeRndis, isNvspMessageType, NVSP_MESSAGE_SIZE, RNDIS_MSG_NAMES } from "../drivers/netvsc/protocol/index.js";
import {
  REQUEST_COMPLETION_FLAG,
  SCSI_OPCODE_NAMES,
  VSTOR_OPERATION_NAMES,
  VSTOR_PACKET_SIZE_PRE_WIN8,
  VSTOR_PACKET_SIZE_WIN8,
  describeCdb,
  describeSenseData,
  describeVstorPacket,
} from "../drivers/storvsc/protocol/index.js";
import { UsageError } from "./errors.js";

export const DECODE_KINDS = ["vmbus-packet", "channel-message", "vstor", "cdb", "sense", "nvsp", "rndis"] as const;
export type DecodeKind = (typeof DECODE_KINDS)[number];

/**
 * Hex from the command line: whitespace anywhere, an optional `0x` before a
 * group, `:`/`,`/`-` separators (as tools print MACs and dumps). The
 * position in an error is the 0-based character index in the arguments
 * joined by one space, so a user can count to it.
 */
export function parseHex(args: readonly string[]): Uint8Array {
  const text = args.join(" ");
  const digits: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (/\s|[:,-]/.test(c)) continue;
    if (c === "0" && (text[i + 1] === "x" || text[i + 1] === "X") && (i === 0 || /\s|[:,-]/.test(text[i - 1] as string))) {
      i++;
      continue;
    }
    const v = Number.parseInt(c, 16);
    if (Number.isNaN(v)) throw new UsageError(`bad hex digit '${c}' at position ${i} (allowed: 0-9, a-f, A-F, spaces, ':' and 0x prefixes)`);
    digits.push(v);
  }
  if (digits.length === 0) throw new UsageError("no bytes to decode: give hex digits or --file F");
  if (digits.length % 2 !== 0) throw new UsageError(`odd number of hex digits (${digits.length}): every byte needs two`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = ((digits[2 * i] as number) << 4) | (digits[2 * i + 1] as number);
  return out;
}

function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at, true);
}
function u16(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(at, true);
}
const hex = (n: number | bigint, w = 0): string => `0x${n.toString(16).padStart(w, "0")}`;
const hexBytes = (b: Uint8Array, max = 64): string =>
  Array.from(b.subarray(0, max), (x) => x.toString(16).padStart(2, "0")).join(" ") + (b.length > max ? ` … (${b.length} bytes)` : "");

export interface Guess {
  readonly kind: DecodeKind;
  readonly reason: string;
}

/**
 * What the bytes most likely are, checked in this order (first match wins;
 * each test needs a self-consistent length, which random bytes rarely have):
 * 1. vmbus-packet: ≥ 16 bytes, u16 type is a VM_PKT_* (not INVALID),
 *    2 ≤ offset8 ≤ len8 and len8 × 8 = the byte count;
 * 2. rndis: u32 type is an RNDIS_MSG_* and u32 message length = the byte count;
 * 3. vstor: 48 or 64 bytes, u32 operation is a VSTOR_OPERATION_* and flags = REQUEST_COMPLETION_FLAG;
 * 4. channel-message: 8–240 bytes, u32 msgtype in 1..24 with a handler, u32 padding = 0;
 * 5. nvsp: ≤ 40 bytes (+ padding), u32 type is an NVSP message type;
 * 6. sense: ≥ 8 bytes, response code 0x70–0x73;
 * 7. cdb: 6, 10, 12 or 16 bytes with a known SCSI opcode.
 */
export function guessKind(b: Uint8Array): Guess | undefined {
  const n = b.length;
  if (n >= D.SIZE) {
    const type = u16(b, D.type);
    const off8 = u16(b, D.offset8);
    const len8 = u16(b, D.len8);
    if (type !== 0 && VM_PKT_NAMES[type] !== undefined && off8 >= 2 && off8 <= len8 && len8 * 8 === n) {
      return { kind: "vmbus-packet", reason: `u16 type ${VM_PKT_NAMES[type]} and len8 × 8 = ${n} bytes` };
    }
  }
  if (n >= 8 && RNDIS_MSG_NAMES.has(u32(b, 0)) && u32(b, 4) === n) {
    return { kind: "rndis", reason: `u32 type ${RNDIS_MSG_NAMES.get(u32(b, 0))} and msg_len = ${n} bytes` };
  }
  if ((n === VSTOR_PACKET_SIZE_WIN8 || n === VSTOR_PACKET_SIZE_PRE_WIN8) && VSTOR_OPERATION_NAMES.has(u32(b, 0)) && u32(b, 4) === REQUEST_COMPLETION_FLAG) {
    return { kind: "vstor", reason: `${n} bytes, operation ${VSTOR_OPERATION_NAMES.get(u32(b, 0))}, flags REQUEST_COMPLETION_FLAG` };
  }
  if (n >= CHANNEL_MESSAGE_HEADER_SIZE && n <= MAX_SIZE_CHANNEL_MESSAGE) {
    const t = u32(b, 0);
    if (t > 0 && t < CHANNELMSG_COUNT && CHANNEL_MESSAGE_TABLE[t]?.handled === true && u32(b, 4) === 0) {
      return { kind: "channel-message", reason: `u32 msgtype ${channelMessageName(t)} and zero padding` };
    }
  }
  if (n >= 4 && n <= NVSP_MESSAGE_SIZE + 8 && isNvspMessageType(u32(b, 0))) {
    return { kind: "nvsp", reason: `u32 type is an NVSP message type (${u32(b, 0)})` };
  }
  if (n >= 8 && ((b[0] ?? 0) & 0x7f) >= 0x70 && ((b[0] ?? 0) & 0x7f) <= 0x73) {
    return { kind: "sense", reason: `response code ${hex((b[0] ?? 0) & 0x7f, 2)}` };
  }
  if ((n === 6 || n === 10 || n === 12 || n === 16) && SCSI_OPCODE_NAMES.has(b[0] ?? -1)) {
    return { kind: "cdb", reason: `${n} bytes starting with opcode ${SCSI_OPCODE_NAMES.get(b[0] ?? -1)}` };
  }
  return undefined;
}

/** The descriptor, then the type-specific header (GPA ranges, transfer-page ranges), then the payload. */
export function describeVmbusPacket(b: Uint8Array): string {
  const lines: string[] = [];
  let d;
  try {
    d = decodeDescriptor(b);
  } catch (e) {
    return `vmpacket_descriptor (invalid: ${(e as Error).message})`;
  }
  const hdrEnd = d.offset8 * 8;
  const total = d.len8 * 8;
  lines.push(`vmpacket_descriptor ${VM_PKT_NAMES[d.type] ?? "UNKNOWN"}(${d.type})`);
  lines.push(`  type=${d.type} [${VM_PKT_NAMES[d.type] ?? "unknown"}]`);
  lines.push(`  offset8=${d.offset8} (header ${hdrEnd} bytes)`);
  lines.push(`  len8=${d.len8} (packet ${total} bytes${total !== b.length ? `; ${b.length} given` : ""})`);
  lines.push(`  flags=${hex(d.flags)}${d.flags & 1 ? " [VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED]" : ""}`);
  lines.push(`  trans_id=${d.transId} (${hex(d.transId)})`);
  const problems: string[] = [];
  if (hdrEnd < D.SIZE) problems.push(`offset8 ${d.offset8} puts the data inside the 16-byte descriptor`);
  if (hdrEnd > total) problems.push(`offset8 ${d.offset8} is past len8 ${d.len8}`);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const have = Math.min(hdrEnd, b.length);
  if (d.type === VM_PKT_DATA_USING_GPA_DIRECT && have >= MPB.range) {
    const count = view.getUint32(MPB.rangecount, true);
    lines.push(`  vmbus_packet_mpb_array reserved=${view.getUint32(MPB.reserved, true)} rangecount=${count}`);
    let o: number = MPB.range;
    for (let i = 0; i < count; i++) {
      if (o + MPB.range_pfn_array > have) {
        problems.push(`range[${i}] starts at ${o}, past the header end ${have}`);
        break;
      }
      const len = view.getUint32(o + MPB.range_len, true);
      const off = view.getUint32(o + MPB.range_offset, true);
      const pages = len === 0 ? 0 : pagesSpanned(off % 4096, len);
      o += MPB.range_pfn_array;
      const pfns: string[] = [];
      for (let j = 0; j < pages && o + 8 <= have; j++, o += 8) pfns.push(hex(view.getUint32(o + 4, true) * 2 ** 32 + view.getUint32(o, true)));
      if (pfns.length < pages) problems.push(`range[${i}] needs ${pages} PFNs, the header holds ${pfns.length}`);
      lines.push(`    range[${i}] len=${len} offset=${off} pfn_array[${pages}]=[${pfns.join(", ")}]`);
    }
  } else if (d.type === VM_PKT_DATA_USING_XFER_PAGES && have >= XFER.ranges) {
    const count = view.getUint32(XFER.range_cnt, true);
    lines.push(
      `  vmtransfer_page_packet_header xfer_pageset_id=${view.getUint16(XFER.xfer_pageset_id, true)} ` +
        `sender_owns_set=${view.getUint8(XFER.sender_owns_set)} reserved=${view.getUint8(XFER.reserved)} range_cnt=${count}`,
    );
    for (let i = 0; i < count; i++) {
      const o = XFER.ranges + i * XFER.RANGE_SIZE;
      if (o + XFER.RANGE_SIZE > have) {
        problems.push(`range_cnt ${count} claims more ranges than the header holds`);
        break;
      }
      lines.push(`    range[${i}] byte_count=${view.getUint32(o, true)} byte_offset=${view.getUint32(o + 4, true)}`);
    }
  } else if (hdrEnd > D.SIZE && d.type !== VM_PKT_COMP) {
    lines.push(`  header bytes 16..${hdrEnd}: ${hexBytes(b.subarray(D.SIZE, have))}`);
  }
  const payload = b.subarray(Math.min(hdrEnd, b.length), Math.min(total, b.length));
  lines.push(`  payload[${payload.length}]${payload.length > 0 ? ` ${hexBytes(payload)}` : ""}`);
  if (payload.length > 0) lines.push(`  (decode the payload with --as vstor, nvsp or rndis)`);
  for (const p of problems) lines.push(`  invalid: ${p}`);
  return lines.join("\n");
}

function fieldValue(v: unknown, indent: string): string[] {
  if (v instanceof Guid) return [String(v)];
  if (typeof v === "number") return [Number.isInteger(v) && v > 9 ? `${v} (${hex(v)})` : String(v)];
  if (typeof v === "bigint") return [`${v} (${hex(v)})`];
  if (v instanceof Uint8Array) return [`[${v.length}] ${hexBytes(v)}`];
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "number")) return [`[${v.length}] ${v.slice(0, 16).map((x: number) => hex(x)).join(", ")}${v.length > 16 ? ", …" : ""}`];
    return [`[${v.length}]`, ...v.flatMap((x, i) => fieldLines(`[${i}]`, x, indent + "  "))];
  }
  if (typeof v === "object" && v !== null) return ["", ...Object.entries(v).flatMap(([k, x]) => fieldLines(k, x, indent + "  "))];
  return [JSON.stringify(v) ?? String(v)];
}

function fieldLines(name: string, v: unknown, indent: string): string[] {
  const [first, ...rest] = fieldValue(v, indent);
  return [`${indent}${name}${first === "" ? ":" : `=${first}`}`, ...rest];
}

/**
 * A channel message in either direction: the decoder validates as the
 * receiver would, so we ask it for the direction the table says the
 * message travels.
 */
export function describeChannelMessageBytes(b: Uint8Array): string {
  if (b.length < CHANNEL_MESSAGE_HEADER_SIZE) return `channel message (invalid: ${b.length} bytes, below the 8-byte vmbus_channel_message_header)`;
  const t = u32(b, 0);
  const dir = CHANNEL_MESSAGE_TABLE[t]?.direction ?? "toGuest";
  let msg: ChannelMessage;
  try {
    msg = decodeChannelMessage(b, b.length, dir);
  } catch (e) {
    return `${channelMessageName(t)} (invalid: ${(e as Error).message})\n  bytes[${b.length}] ${hexBytes(b)}`;
  }
  const lines = [`${channelMessageName(t)} (${dir === "toHost" ? "guest → host" : "host → guest"}, ${b.length} bytes)`, `  summary: ${describeChannelMessage(msg)}`];
  for (const [k, v] of Object.entries(msg)) lines.push(...fieldLines(k, v, "  "));
  return lines.join("\n");
}

export function describeAs(kind: DecodeKind, b: Uint8Array): string {
  switch (kind) {
    case "vmbus-packet":
      return describeVmbusPacket(b);
    case "channel-message":
      return describeChannelMessageBytes(b);
    case "vstor":
      return describeVstorPacket(b);
    case "cdb":
      return describeCdb(b);
    case "sense":
      return describeSenseData(b);
    case "nvsp":
      return describeNvsp(b);
    case "rndis":
      return describeRndis(b, { all: true });
  }
}

/** The text `decode` prints: a first line saying what was assumed, if it guessed, then the tree. */
export function decodeBytes(b: Uint8Array, kind?: DecodeKind): string {
  if (kind !== undefined) return describeAs(kind, b);
  const g = guessKind(b);
  if (g === undefined) {
    throw new UsageError(`cannot tell what these ${b.length} bytes are; pass --as KIND (one of: ${DECODE_KINDS.join(", ")})`);
  }
  return `assumed --as ${g.kind}: ${g.reason}\n${describeAs(g.kind, b)}`;
}

/**
 * Labels a VMBus transaction in the trace with the same decoders `decode`
 * uses: the request's payload is decoded by the device class of its channel
 * (VSTOR for SCSI/IDE controllers, NVSP for NICs), first line only.
 */
export function labelTransaction(classId: string | undefined, payload: Uint8Array): string | undefined {
  let kind: DecodeKind | undefined;
  if (classId === HV_SCSI_GUID.toString() || classId === HV_IDE_GUID.toString()) kind = "vstor";
  else if (classId === HV_NIC_GUID.toString()) kind = "nvsp";
  if (kind === undefined) return undefined;
  const lines = describeAs(kind, payload).split("\n");
  const first = lines[0]?.trim();
  if (first === undefined || first.length === 0) return undefined;
  // A SCSI request is best named by its command: add the CDB line of the tree.
  const cdb = lines.find((l) => /\bcdb\b/i.test(l) && l !== lines[0]);
  return cdb === undefined ? first : `${first} · ${cdb.trim()}`;
}
