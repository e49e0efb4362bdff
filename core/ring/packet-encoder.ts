/**
 * What every writer of a ring shares — vmbus-core.md §1.4, §2.1–§2.6, §3.1.
 *
 * Two writers fill rings: `RingWriter` (one producer, two-phase write and
 * commit) and `MultiProducerRingWriter` (several producers at once, seed
 * document 004). They differ only in how they get the bytes a packet goes
 * into and how they publish them. The packet itself — descriptor, the
 * type-specific header, payload, zero padding, trailer — is framed by the
 * one routine here, `encodePacket`, so a ring written either way holds the
 * same bytes for the same packets.
 *
 * `encodePacket` assumes the caller owns the bytes [start, start + total)
 * exclusively: a single writer because nobody else writes the ring, a
 * multi-producer writer because it reserved them.
 */
import type { GpaRange } from "../memory/paged-view.js";
import { InvalidArgumentError } from "../errors.js";
import {
  MAX_PAGE_BUFFER_COUNT,
  VMBUS_CHANNEL_PACKET_PAGE_BUFFER as PB,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_PACKET_MPB_ARRAY as MPB,
  VMBUS_PKT_TRAILER,
  VMPACKET_DESCRIPTOR as D,
  VMTRANSFER_PAGE_PACKET_HEADER as XFER,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
  align8,
  pagesSpanned,
} from "./layout.js";
import { type RingBuffer, copyBytes, copyToRing } from "./ring-buffer.js";

/** One `hv_page_buffer`: a byte range inside one page. */
export interface PageBufferEntry {
  readonly len: number;
  readonly offset: number;
  readonly pfn: number;
}

/** One `vmtransfer_page_range`: bytes inside the transfer page set. */
export interface XferPageRange {
  readonly byteCount: number;
  readonly byteOffset: number;
}

/** A transaction id: a number (≤ 2^53 − 1) on the fast path, or any u64 as bigint. */
export type TransId = number | bigint;

const ZEROS = new Uint8Array(8);
/**
 * From this many bytes a whole-array payload goes into the ring with one
 * `set` (about 20 ns flat) rather than a byte loop (about 1.2 ns a byte on
 * shared memory). Measured with bench/ring.bench.ts.
 */
const SET_MIN = 16;
/**
 * Whole-word payloads up to this many bytes go into the ring as 8-byte
 * words (about 1.3 ns a word against `set`'s 20 ns flat: 64 bytes in 11 ns
 * instead of 19) when a word view of the payload's buffer is at hand; longer
 * ones with `set`, whose memcpy wins beyond a few hundred bytes.
 */
const WORD_PAYLOAD_MAX = 256;
/** Consecutive packets with one payload array before `payloadWords` makes a word view of it. */
const WORD_VIEW_AFTER = 8;
const TWO32 = 2 ** 32;
const MAX_LEN8 = 0xffff;

/**
 * The packet kinds a guest or host sends, framed into a ring. Subclasses
 * decide where a packet goes (`writePacket`) and call `encodePacket` to
 * put it there.
 */
export abstract class RingPacketEncoder {
  /** Descriptor and range headers are assembled here, then copied into the ring. */
  private staging: Uint8Array;
  private stagingView: DataView;
  /** `staging` as 8-byte words, for the word copy of the headers into the ring. */
  private staging64: BigInt64Array;
  /** The ring's data area as 8-byte words (ring indices are 8-aligned, so packets start on a word). */
  private readonly ring64: BigInt64Array;
  /** The last payload array, and how many packets in a row carried it (see `payloadWords`). */
  private payloadLast: Uint8Array | null = null;
  private payloadRun = 0;
  /** `payloadLast` as 8-byte words, made once it has been sent `WORD_VIEW_AFTER` times in a row. */
  private payload64: BigInt64Array | null = null;

  constructor(readonly ring: RingBuffer) {
    this.staging = new Uint8Array(1024);
    this.stagingView = new DataView(this.staging.buffer);
    this.staging64 = new BigInt64Array(this.staging.buffer);
    this.ring64 = new BigInt64Array(ring.data.buffer, ring.data.byteOffset, ring.dataSize >> 3);
  }

  /** Ring bytes a packet takes: descriptor + headers + payload, padded to 8, plus the trailer. */
  static packetTotal(extLen: number, payloadLen: number): number {
    return align8(D.SIZE + extLen + payloadLen) + VMBUS_PKT_TRAILER;
  }

  /**
   * Puts one packet into the ring. `extLen` bytes of type-specific header
   * must already be staged after the descriptor (see `stage`). Returns false,
   * writing nothing, when the ring has not strictly more free bytes than
   * the packet needs.
   */
  abstract writePacket(type: number, flags: number, transId: TransId, extLen: number, payload: Uint8Array): boolean;

  /** `VM_PKT_DATA_INBAND` (the `vmbus_sendpacket` layout: offset8 = 2). Returns false if the ring is full. */
  writeInband(transId: TransId, payload: Uint8Array, flags = 0): boolean {
    return this.writePacket(VM_PKT_DATA_INBAND, flags, transId, 0, payload);
  }

  /** `VM_PKT_COMP`: a completion echoing the request's transaction id. */
  writeCompletion(transId: TransId, payload: Uint8Array, flags = 0): boolean {
    return this.writePacket(VM_PKT_COMP, flags, transId, 0, payload);
  }

  /**
   * `VM_PKT_DATA_USING_GPA_DIRECT` in the `vmbus_sendpacket_pagebuffer`
   * layout: up to 32 single-page ranges.
   */
  writePageBuffer(
    transId: TransId,
    entries: readonly PageBufferEntry[],
    payload: Uint8Array,
    flags = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  ): boolean {
    const n = entries.length;
    if (n > MAX_PAGE_BUFFER_COUNT) {
      throw new InvalidArgumentError("page buffer count", n, `must be at most MAX_PAGE_BUFFER_COUNT (${MAX_PAGE_BUFFER_COUNT})`);
    }
    const extLen = PB.range - D.SIZE + n * PB.RANGE_SIZE;
    const v = this.stage(extLen);
    v.setUint32(PB.reserved, 0, true);
    v.setUint32(PB.rangecount, n, true);
    for (let i = 0; i < n; i++) {
      const e = entries[i] as PageBufferEntry;
      if (e.offset < 0 || e.offset >= 4096 || e.len < 0 || e.offset + e.len > 4096) {
        throw new InvalidArgumentError(`page buffer ${i} offset+len`, e.offset + e.len, "must stay inside one 4096-byte page");
      }
      const o = PB.range + i * PB.RANGE_SIZE;
      v.setUint32(o + PB.range_len, e.len, true);
      v.setUint32(o + PB.range_offset, e.offset, true);
      setU64(v, o + PB.range_pfn, e.pfn);
    }
    return this.writePacket(VM_PKT_DATA_USING_GPA_DIRECT, flags, transId, extLen, payload);
  }

  /**
   * `VM_PKT_DATA_USING_GPA_DIRECT` in the `vmbus_sendpacket_mpb_desc`
   * layout: `rangecount` multi-page ranges, each with as many PFNs as its
   * bytes touch. The caller sets the range count (since 2025, Linux too).
   */
  writeMpb(
    transId: TransId,
    ranges: readonly GpaRange[],
    payload: Uint8Array,
    flags = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  ): boolean {
    let extLen = MPB.range - D.SIZE;
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i] as GpaRange;
      const need = pagesSpanned(r.byteOffset, r.byteCount);
      if (r.byteOffset < 0 || r.byteOffset >= 4096 || r.pfns.length !== need) {
        throw new InvalidArgumentError(
          `mpb range ${i} pfn count`,
          r.pfns.length,
          `must be ${need}: the pages touched by ${r.byteCount} bytes at offset ${r.byteOffset}`,
        );
      }
      extLen += 8 + 8 * need;
    }
    const v = this.stage(extLen);
    v.setUint32(MPB.reserved, 0, true);
    v.setUint32(MPB.rangecount, ranges.length, true);
    let o: number = MPB.range;
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i] as GpaRange;
      v.setUint32(o + MPB.range_len, r.byteCount, true);
      v.setUint32(o + MPB.range_offset, r.byteOffset, true);
      o += MPB.range_pfn_array;
      for (let j = 0; j < r.pfns.length; j++, o += 8) setU64(v, o, r.pfns[j] as number);
    }
    return this.writePacket(VM_PKT_DATA_USING_GPA_DIRECT, flags, transId, extLen, payload);
  }

  /** `VM_PKT_DATA_USING_XFER_PAGES`: ranges of a transfer page set (netvsc receive). */
  writeXferPages(
    transId: TransId,
    xferPagesetId: number,
    ranges: readonly XferPageRange[],
    payload: Uint8Array,
    flags = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
    senderOwnsSet = false,
  ): boolean {
    const n = ranges.length;
    const extLen = XFER.ranges - D.SIZE + n * XFER.RANGE_SIZE;
    const v = this.stage(extLen);
    v.setUint16(XFER.xfer_pageset_id, xferPagesetId, true);
    v.setUint8(XFER.sender_owns_set, senderOwnsSet ? 1 : 0);
    v.setUint8(XFER.reserved, 0);
    v.setUint32(XFER.range_cnt, n, true);
    for (let i = 0; i < n; i++) {
      const r = ranges[i] as XferPageRange;
      const o = XFER.ranges + i * XFER.RANGE_SIZE;
      v.setUint32(o, r.byteCount, true);
      v.setUint32(o + 4, r.byteOffset, true);
    }
    return this.writePacket(VM_PKT_DATA_USING_XFER_PAGES, flags, transId, extLen, payload);
  }

  /**
   * The padded packet length (`len8 * 8`) of a packet with `extLen` header
   * and `payloadLen` payload bytes. Throws — before anything is written or
   * reserved — when it cannot be framed: len8 is a u16, and a packet must
   * leave at least one free byte in an otherwise empty ring.
   */
  protected packetLength(extLen: number, payloadLen: number): number {
    const pktLen = align8(D.SIZE + extLen + payloadLen);
    if (pktLen / 8 > MAX_LEN8 || pktLen + VMBUS_PKT_TRAILER >= this.ring.dataSize) {
      throw new InvalidArgumentError(
        `${this.ring.name} packet length`,
        pktLen,
        `must fit len8 (u16) and be smaller than the ring data size ${this.ring.dataSize}`,
      );
    }
    return pktLen;
  }

  /**
   * Frames one packet into the ring at `start` (8-aligned): descriptor,
   * the `extLen` staged header bytes, payload, zero padding up to `pktLen`,
   * and the 8-byte trailer. Returns the index after the trailer (wrapped).
   * Publishes nothing. It does not throw once `transId` has been checked
   * (`checkTransId`), which a multi-producer writer relies on: it calls
   * this after reserving, and a reservation it could not fill would block
   * every producer after it.
   */
  protected encodePacket(
    start: number,
    type: number,
    flags: number,
    transId: TransId,
    extLen: number,
    pktLen: number,
    payload: Uint8Array,
  ): number {
    const ring = this.ring;
    const hdrLen = D.SIZE + extLen;
    const payloadLen = payload.length;
    const dsize = ring.dataSize;
    const end = start + pktLen;
    if (extLen === 0 && end + VMBUS_PKT_TRAILER <= dsize && typeof transId === "number" && transId >>> 0 === transId) {
      // The common case in one piece: an in-band packet (or completion)
      // with a 32-bit id that does not wrap. Same bytes as the general path
      // below, with fewer stores: the descriptor as four u32 (type and
      // offset8, len8 and flags, the id's halves; `& 0xffff` is the u16
      // truncation `setUint16` does).
      const dv = ring.dataView;
      dv.setUint32(start, (type & 0xffff) | ((D.SIZE >>> 3) << 16), true);
      dv.setUint32(start + D.len8, (pktLen >>> 3) | ((flags & 0xffff) << 16), true);
      dv.setUint32(start + D.trans_id, transId, true);
      dv.setUint32(start + D.trans_id + 4, 0, true);
      // Zero the packet's last word, then copy the payload over its start:
      // whatever the payload does not cover there is the padding.
      if (pktLen - D.SIZE !== payloadLen) {
        dv.setUint32(end - 8, 0, true);
        dv.setUint32(end - 4, 0, true);
      }
      this.payloadToRing(payload, start + D.SIZE);
      dv.setUint32(end, 0, true);
      dv.setUint32(end + 4, start, true);
      const next = end + VMBUS_PKT_TRAILER;
      return next === dsize ? 0 : next;
    }
    // A bare descriptor that does not wrap goes straight into the ring;
    // everything else is staged first and copied in below.
    const direct = extLen === 0 && start + D.SIZE <= dsize;
    const v = direct ? ring.dataView : this.stagingView;
    const o = direct ? start : 0;
    v.setUint16(o + D.type, type, true);
    v.setUint16(o + D.offset8, hdrLen >>> 3, true);
    v.setUint16(o + D.len8, pktLen >>> 3, true);
    v.setUint16(o + D.flags, flags, true);
    setTransId(v, o + D.trans_id, transId);

    // The copies below are the cost of a packet, so each takes the fastest
    // path for its shape (byte loops on a SharedArrayBuffer view cost over
    // a nanosecond a byte): headers as 8-byte words (`start` is 8-aligned;
    // every header this class stages is a multiple of 8 bytes), the payload
    // with one `set` when it is a whole array that does not wrap.
    let at: number;
    if (direct) {
      at = start + D.SIZE;
      if (at === dsize) at = 0;
    } else if ((hdrLen & 7) === 0) {
      wordsToRing(this.ring64, start >> 3, this.staging64, hdrLen >> 3);
      at = start + hdrLen;
      if (at >= dsize) at -= dsize;
    } else {
      at = copyToRing(ring, start, this.staging, 0, hdrLen);
    }
    if (at + payloadLen <= dsize) {
      this.payloadToRing(payload, at);
      at += payloadLen;
      if (at === dsize) at = 0;
    } else {
      at = copyToRing(ring, at, payload, 0, payloadLen);
    }
    const pad = pktLen - hdrLen - payloadLen;
    if (pad !== 0) at = copyToRing(ring, at, ZEROS, 0, pad);
    // Trailer: the write index before this packet in the upper 32 bits.
    // Nobody reads it, but a real guest's ring dump has it, so ours does.
    // `at` is 8-aligned here (start + pktLen), so the trailer never wraps.
    ring.dataView.setUint32(at, 0, true);
    ring.dataView.setUint32(at + 4, start, true);
    at += VMBUS_PKT_TRAILER;
    if (at === dsize) at = 0;
    return at;
  }

  /** Copies all of `payload` into the ring at `at`, where it does not wrap. */
  private payloadToRing(payload: Uint8Array, at: number): void {
    const n = payload.length;
    if (n < SET_MIN) {
      copyBytes(this.ring.data, at, payload, 0, n);
      return;
    }
    const p64 = n <= WORD_PAYLOAD_MAX && ((at | n) & 7) === 0 ? this.payloadWords(payload) : null;
    if (p64 === null) {
      this.ring.data.set(payload, at);
      return;
    }
    const r64 = this.ring64;
    const w = at >> 3;
    for (let i = 0, k = n >> 3; i < k; i++) r64[w + i] = p64[i] as bigint;
  }

  /**
   * `payload` as 8-byte words, or null. A sender that sends one array again
   * and again (a staging buffer) gets a word view of it from the
   * `WORD_VIEW_AFTER`th packet on; one that hands over a new array each
   * time never causes a view to be made. So this allocates at most once
   * per `WORD_VIEW_AFTER` packets, and not at all in a steady state. The
   * test is identity: reading `payload.buffer` costs more (about 15 ns)
   * than the word copy saves. Arrays not 8-aligned in their buffer, and
   * arrays over a resizable buffer (whose length can change under a view),
   * keep the `set` path.
   */
  private payloadWords(payload: Uint8Array): BigInt64Array | null {
    if (payload !== this.payloadLast) {
      this.payloadLast = payload;
      this.payloadRun = 1;
      this.payload64 = null;
      return null;
    }
    const v = this.payload64;
    if (v !== null || ++this.payloadRun !== WORD_VIEW_AFTER) return v;
    const buf = payload.buffer as ArrayBufferLike & { readonly resizable?: boolean; readonly growable?: boolean };
    if ((payload.byteOffset & 7) !== 0 || buf.resizable === true || buf.growable === true) return null;
    return (this.payload64 = new BigInt64Array(buf, payload.byteOffset, payload.length >>> 3));
  }

  /** Grows the staging area if a header needs it and returns its view. */
  protected stage(extLen: number): DataView {
    const need = D.SIZE + extLen;
    if (need > this.staging.length) {
      this.staging = new Uint8Array(align8(need * 2));
      this.stagingView = new DataView(this.staging.buffer);
      this.staging64 = new BigInt64Array(this.staging.buffer);
    }
    return this.stagingView;
  }
}

/**
 * Publishes a writer's new `write_index` and makes the signalling decision
 * of `hv_signal_on_write` (vmbus-core.md §3.1): signal only if the reader
 * has not masked interrupts and the ring was empty before this publication
 * (`read_index == oldWrite`). Returns true when the reader must be signalled.
 *
 * Why only empty → non-empty: a reader that found the ring non-empty is
 * still draining and will see our packets before it stops; signalling it
 * again is the "unnecessary interrupt" Hyper-V throttles guests for.
 *
 * Why the mask and read index are loaded *after* the index store: the
 * reader clears its mask, then re-checks for data (`endRead`). If we
 * sampled the mask before publishing, the reader could unmask and find
 * nothing in between, and we would skip the signal — a lost wakeup. The
 * store is an `Atomics.store`, sequentially consistent, so it is also the
 * full barrier Linux issues: in the single total order of Atomics
 * operations either our store comes before the reader's write_index load
 * (it sees the packet) or its mask store comes before our mask load (we
 * see the mask clear and signal).
 *
 * The packet bytes were written with plain typed-array stores before this
 * call; the sequentially consistent store of write_index publishes them
 * (a reader that loads the new index with `Atomics.load` also sees them).
 */
export function publishWriteIndex(ring: RingBuffer, oldWrite: number, newWrite: number): boolean {
  ring.storeWriteIndex(newWrite);
  if (ring.loadInterruptMask() !== 0) return false;
  // Equality only: a garbage read index simply means "not empty before".
  return ring.loadReadIndex() === oldWrite;
}

function setU64(v: DataView, off: number, n: number): void {
  v.setUint32(off, n >>> 0, true);
  v.setUint32(off + 4, Math.floor(n / TWO32) >>> 0, true);
}

/** Throws the error `setTransId` would throw for `id`, without writing anything. */
export function checkTransId(id: TransId): void {
  if (typeof id === "number" && !(id >>> 0 === id || (Number.isSafeInteger(id) && id >= 0))) {
    throw new InvalidArgumentError("trans_id", id, "must be a non-negative safe integer (use a bigint for larger u64 values)");
  }
}

export function setTransId(v: DataView, off: number, id: TransId): void {
  // Request ids are small numbers: the common case, kept cheap.
  if (typeof id === "number" && id >>> 0 === id) {
    v.setUint32(off, id, true);
    v.setUint32(off + 4, 0, true);
    return;
  }
  if (typeof id === "bigint") {
    v.setBigUint64(off, BigInt.asUintN(64, id), true);
  } else {
    checkTransId(id);
    setU64(v, off, id);
  }
}

/**
 * Copies `n` 8-byte words from `src64[0..]` into the ring's words starting
 * at word `w`, wrapping at the end of the data area. The bytes move
 * unchanged (no byte order is involved); optimized code copies
 * BigInt64Array elements without making BigInts.
 */
function wordsToRing(ring64: BigInt64Array, w: number, src64: BigInt64Array, n: number): void {
  const first = Math.min(n, ring64.length - w);
  let i = 0;
  for (; i < first; i++) ring64[w + i] = src64[i] as bigint;
  for (let j = 0; i < n; i++, j++) ring64[j] = src64[i] as bigint;
}
