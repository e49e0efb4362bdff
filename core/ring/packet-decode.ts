/**
 * Decoding the type-specific headers of packets read from a ring —
 * vmbus-core.md §2.4–§2.6. Used by the side that receives GPA-direct or
 * transfer-page packets (a host VSP, the guest netvsc).
 *
 * Everything here reads the reader's private copy, and checks every count
 * against the bytes that are really there: a `rangecount` of 0x10000 in a
 * 40-byte header must fail, not make us read past the packet.
 */
import { ProtocolError } from "../errors.js";
import type { GpaRange } from "../memory/paged-view.js";
import {
  VMBUS_PACKET_MPB_ARRAY as MPB,
  VMPACKET_DESCRIPTOR as D,
  VMTRANSFER_PAGE_PACKET_HEADER as XFER,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
  pagesSpanned,
} from "./layout.js";
import type { IncomingPacket } from "./ring-reader.js";
import type { XferPageRange } from "./ring-writer.js";

/**
 * The ranges of a `VM_PKT_DATA_USING_GPA_DIRECT` packet, in either layout
 * (`hv_page_buffer` entries are `gpa_range`s of one PFN). One instance is
 * reused across packets; the typed arrays grow when a packet needs more.
 */
export class GpaDirectRanges {
  count = 0;
  private byteCounts = new Uint32Array(4);
  private byteOffsets = new Uint32Array(4);
  /** Index into `pfnList` of each range's first PFN. */
  private pfnStarts = new Uint32Array(4);
  private pfnList = new Float64Array(64);
  private pfnTotal = 0;

  /**
   * Parses the ranges of `p`. Throws `ProtocolError` if the packet is not
   * GPA-direct, or if any count or length disagrees with the header size
   * (`offset8 * 8`) the descriptor declared.
   */
  parse(p: IncomingPacket, maxRanges = 1024): this {
    const where = "GPA direct packet";
    if (p.type !== VM_PKT_DATA_USING_GPA_DIRECT) {
      throw new ProtocolError(where, "type", p.type, `is not VM_PKT_DATA_USING_GPA_DIRECT (${VM_PKT_DATA_USING_GPA_DIRECT})`);
    }
    const hdrEnd = p.dataOffset;
    if (hdrEnd < MPB.range) {
      throw new ProtocolError(where, "offset8", p.offset8, `leaves ${hdrEnd} header bytes, fewer than the ${MPB.range} a GPA direct header needs`);
    }
    const v = p.view;
    const n = v.getUint32(MPB.rangecount, true);
    if (n === 0 || n > maxRanges) {
      throw new ProtocolError(where, "rangecount", n, `must be in [1, ${maxRanges}]`);
    }
    this.ensure(n, 0);
    let o: number = MPB.range;
    this.pfnTotal = 0;
    for (let i = 0; i < n; i++) {
      if (o + MPB.range_pfn_array > hdrEnd) {
        throw new ProtocolError(where, `range[${i}]`, o, `starts past the header end ${hdrEnd} (rangecount ${n} claims more ranges than the header holds)`);
      }
      const len = v.getUint32(o + MPB.range_len, true);
      const off = v.getUint32(o + MPB.range_offset, true);
      if (off >= 4096) {
        throw new ProtocolError(where, `range[${i}].byte_offset`, off, "must be below the page size 4096");
      }
      if (len === 0) {
        throw new ProtocolError(where, `range[${i}].byte_count`, len, "must not be 0");
      }
      const pages = pagesSpanned(off, len);
      o += MPB.range_pfn_array;
      if (o + pages * 8 > hdrEnd) {
        throw new ProtocolError(
          where,
          `range[${i}].byte_count`,
          len,
          `needs ${pages} PFNs at offset ${off}, but the header ends after ${Math.max(0, Math.floor((hdrEnd - o) / 8))}`,
        );
      }
      this.ensure(n, this.pfnTotal + pages);
      this.byteCounts[i] = len;
      this.byteOffsets[i] = off;
      this.pfnStarts[i] = this.pfnTotal;
      for (let j = 0; j < pages; j++, o += 8) {
        const lo = v.getUint32(o, true);
        const hi = v.getUint32(o + 4, true);
        this.pfnList[this.pfnTotal++] = hi * 2 ** 32 + lo;
      }
    }
    this.count = n;
    return this;
  }

  byteCount(i: number): number {
    return this.byteCounts[i] ?? 0;
  }
  byteOffset(i: number): number {
    return this.byteOffsets[i] ?? 0;
  }
  pfnCount(i: number): number {
    return pagesSpanned(this.byteOffset(i), this.byteCount(i));
  }
  pfn(i: number, j: number): number {
    return this.pfnList[(this.pfnStarts[i] ?? 0) + j] ?? 0;
  }
  /** Total bytes named by all ranges. */
  totalBytes(): number {
    let t = 0;
    for (let i = 0; i < this.count; i++) t += this.byteCount(i);
    return t;
  }

  /** The ranges as plain objects (allocates; for views and tests). */
  toRanges(): GpaRange[] {
    const out: GpaRange[] = [];
    for (let i = 0; i < this.count; i++) {
      const pfns: number[] = [];
      for (let j = 0; j < this.pfnCount(i); j++) pfns.push(this.pfn(i, j));
      out.push({ byteCount: this.byteCount(i), byteOffset: this.byteOffset(i), pfns });
    }
    return out;
  }

  private ensure(ranges: number, pfns: number): void {
    if (ranges > this.byteCounts.length) {
      const size = Math.max(ranges, this.byteCounts.length * 2);
      this.byteCounts = new Uint32Array(size);
      this.byteOffsets = new Uint32Array(size);
      this.pfnStarts = new Uint32Array(size);
    }
    if (pfns > this.pfnList.length) {
      const grown = new Float64Array(Math.max(pfns, this.pfnList.length * 2));
      grown.set(this.pfnList);
      this.pfnList = grown;
    }
  }
}

/** The header of a `VM_PKT_DATA_USING_XFER_PAGES` packet. */
export interface XferPagesHeader {
  readonly xferPagesetId: number;
  readonly senderOwnsSet: boolean;
  readonly ranges: XferPageRange[];
}

/** Decodes a transfer-page packet's header, checking `range_cnt` against the header size. */
export function decodeXferPages(p: IncomingPacket, maxRanges = 4096): XferPagesHeader {
  const where = "transfer page packet";
  if (p.type !== VM_PKT_DATA_USING_XFER_PAGES) {
    throw new ProtocolError(where, "type", p.type, `is not VM_PKT_DATA_USING_XFER_PAGES (${VM_PKT_DATA_USING_XFER_PAGES})`);
  }
  const hdrEnd = p.dataOffset;
  if (hdrEnd < XFER.ranges) {
    throw new ProtocolError(where, "offset8", p.offset8, `leaves ${hdrEnd} header bytes, fewer than ${XFER.ranges}`);
  }
  const v = p.view;
  const n = v.getUint32(XFER.range_cnt, true);
  const fit = Math.floor((hdrEnd - XFER.ranges) / XFER.RANGE_SIZE);
  if (n > fit || n > maxRanges) {
    throw new ProtocolError(where, "range_cnt", n, `exceeds the ${Math.min(fit, maxRanges)} ranges the header holds`);
  }
  const ranges: XferPageRange[] = [];
  for (let i = 0; i < n; i++) {
    const o = XFER.ranges + i * XFER.RANGE_SIZE;
    ranges.push({ byteCount: v.getUint32(o, true), byteOffset: v.getUint32(o + 4, true) });
  }
  return {
    xferPagesetId: v.getUint16(XFER.xfer_pageset_id, true),
    senderOwnsSet: v.getUint8(XFER.sender_owns_set) !== 0,
    ranges,
  };
}

/** Reads a packet's descriptor fields from raw bytes (for decoders and dumps). */
export interface DescriptorFields {
  readonly type: number;
  readonly offset8: number;
  readonly len8: number;
  readonly flags: number;
  readonly transId: bigint;
}

export function decodeDescriptor(bytes: Uint8Array): DescriptorFields {
  if (bytes.length < D.SIZE) {
    throw new ProtocolError("vmpacket_descriptor", "length", bytes.length, `is below the descriptor size ${D.SIZE}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    type: v.getUint16(D.type, true),
    offset8: v.getUint16(D.offset8, true),
    len8: v.getUint16(D.len8, true),
    flags: v.getUint16(D.flags, true),
    transId: v.getBigUint64(D.trans_id, true),
  };
}
