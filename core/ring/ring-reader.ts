/**
 * The reading side of one ring — vmbus-core.md §2.7, §3.2, §3.3, §4.1.
 *
 * The reader walks packets with a private cursor and publishes how far it
 * got only at `close` (Linux `hv_pkt_iter_first/next/close`). Each packet is
 * copied into a private buffer before any field of it is trusted: the peer
 * can rewrite the ring at any moment, and a length checked in shared memory
 * and then re-read could have changed in between (a double fetch).
 *
 * Linux sanitises bad lengths and reads on; here a bad index or descriptor
 * is a `RingCorruptError` that names the field, because a simulator's user
 * wants to know, and the channel layer's reaction (close the channel) is
 * then explicit.
 */
import { RingCorruptError } from "../errors.js";
import { FEAT_PENDING_SEND_SZ, VMBUS_DEFAULT_MAX_PKT_SIZE, VMBUS_PKT_TRAILER, VMPACKET_DESCRIPTOR as D } from "./layout.js";
import { type RingBuffer, copyFromRing } from "./ring-buffer.js";

/** The smallest possible packet in the ring: a bare descriptor and its trailer. */
const MIN_RING_PACKET = D.SIZE + VMBUS_PKT_TRAILER;
/**
 * Packets up to this many bytes are copied out by 8-byte words, longer ones
 * with `set` on a view (whose creation costs about as much as copying a few
 * hundred bytes by words). Measured with bench/ring.bench.ts.
 */
const WORD_COPY_MAX = 512;

/**
 * Copies `n` 8-byte words of the ring starting at word `w` (wrapping at the
 * end of the data area) into `dst64[dstW..]`. The bytes move unchanged;
 * optimized code copies BigInt64Array elements without making BigInts, and
 * a byte loop over shared memory costs over a nanosecond a byte.
 */
function wordsFromRing(ring64: BigInt64Array, w: number, dst64: BigInt64Array, dstW: number, n: number): void {
  const first = Math.min(n, ring64.length - w);
  let i = 0;
  for (; i < first; i++) dst64[dstW + i] = ring64[w + i] as bigint;
  for (let j = 0; i < n; i++, j++) dst64[dstW + i] = ring64[j] as bigint;
}

/**
 * A packet as copied out of the ring. The reader reuses one instance: it is
 * valid until the next `first`/`next` call on the same reader. Copy what you
 * keep.
 */
export class IncomingPacket {
  type = 0;
  offset8 = 0;
  len8 = 0;
  flags = 0;
  transIdLo = 0;
  transIdHi = 0;
  /** Private copy; bytes [0, length) are this packet, descriptor included. */
  readonly buffer: Uint8Array;
  readonly view: DataView;

  constructor(capacity: number) {
    this.buffer = new Uint8Array(capacity);
    this.view = new DataView(this.buffer.buffer);
  }

  /** Packet length in bytes (`len8 * 8`), descriptor included. */
  get length(): number {
    return this.len8 * 8;
  }
  /** Where the payload starts (`offset8 * 8`). */
  get dataOffset(): number {
    return this.offset8 * 8;
  }
  get dataLength(): number {
    return (this.len8 - this.offset8) * 8;
  }
  /** The 64-bit transaction id. */
  get transId(): bigint {
    return (BigInt(this.transIdHi) << 32n) | BigInt(this.transIdLo);
  }
  /** The id as a number when it is below 2^53 (always true for request ids), else NaN. */
  get transIdNumber(): number {
    return this.transIdHi < 0x200000 ? this.transIdHi * 2 ** 32 + this.transIdLo : Number.NaN;
  }
  /** A view of the payload (allocates a view object; hot paths read `buffer` at `dataOffset`). */
  data(): Uint8Array {
    return this.buffer.subarray(this.dataOffset, this.length);
  }
  /** The whole packet, descriptor included, as a new array. */
  copy(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

export interface RingReaderOptions {
  /** Largest packet accepted (`max_pkt_size`); default `VMBUS_DEFAULT_MAX_PKT_SIZE`. */
  readonly maxPacketSize?: number;
}

export class RingReader {
  /** Signals sent because our reading let a blocked writer continue (`intr_in_full`). */
  intrInFull = 0;
  packetsRead = 0;
  bytesRead = 0;
  readonly maxPacketSize: number;
  readonly packet: IncomingPacket;

  /** Where the next packet starts; published to `read_index` only by `close`. */
  private cursor: number;
  /** The read index as we last published it (ours alone). */
  private published: number;
  /** Bytes the current packet takes in the ring (with trailer); 0 when none is current. */
  private currentTotal = 0;
  /** The writer's `write_index` as last loaded and validated; may lag the real one. */
  private peerWrite: number;
  /** The ring's data area as 8-byte words (the cursor is 8-aligned). */
  private readonly ring64: BigInt64Array;
  /** `packet.buffer` as 8-byte words (packet lengths are multiples of 8). */
  private readonly packet64: BigInt64Array;

  constructor(
    readonly ring: RingBuffer,
    options: RingReaderOptions = {},
  ) {
    this.maxPacketSize = options.maxPacketSize ?? VMBUS_DEFAULT_MAX_PKT_SIZE;
    this.packet = new IncomingPacket(this.maxPacketSize);
    this.ring64 = new BigInt64Array(ring.data.buffer, ring.data.byteOffset, ring.dataSize >> 3);
    this.packet64 = new BigInt64Array(this.packet.buffer.buffer, 0, this.packet.buffer.length >> 3);
    this.published = ring.checkedIndex("read_index", ring.loadReadIndex());
    this.cursor = this.published;
    this.peerWrite = this.cursor;
  }

  /**
   * Bytes between our private cursor and the peer's write index. May be
   * stale by the time it is used: a racing writer can only make it larger.
   */
  available(): number {
    this.peerWrite = this.ring.checkedIndex("write_index", this.ring.loadWriteIndex());
    return this.ring.bytesToRead(this.peerWrite, this.cursor);
  }

  /**
   * The packet at the cursor, copied and validated, or null if the ring is
   * empty. Does not move the cursor: calling it twice returns the same packet.
   */
  first(): IncomingPacket | null {
    const ring = this.ring;
    // Packets before the writer's index as last seen are complete and
    // still unread, so there is no need to load it again until we reach it.
    let avail = this.ring.bytesToRead(this.peerWrite, this.cursor);
    if (avail === 0) avail = this.available();
    this.currentTotal = 0;
    if (avail === 0) return null;
    // A writer publishes whole packets only; fewer bytes than the smallest
    // packet means the write index is not at a packet boundary.
    if (avail < MIN_RING_PACKET) {
      throw new RingCorruptError(ring.name, "bytes available", avail, `is less than the smallest packet (${MIN_RING_PACKET} bytes)`);
    }
    const p = this.packet;
    // Copy the descriptor first and read its lengths from the copy, once.
    // The cursor is 8-aligned, so the copy goes by 8-byte words.
    wordsFromRing(this.ring64, this.cursor >> 3, this.packet64, 0, D.SIZE >> 3);
    const v = p.view;
    const len8 = v.getUint16(D.len8, true);
    const offset8 = v.getUint16(D.offset8, true);
    const pktLen = len8 * 8;
    if (len8 < 2) {
      throw new RingCorruptError(ring.name, "len8", len8, "is below 2 (a packet holds at least its 16-byte descriptor)");
    }
    if (offset8 < 2) {
      throw new RingCorruptError(ring.name, "offset8", offset8, "is below 2 (the payload cannot start inside the descriptor)");
    }
    if (offset8 > len8) {
      throw new RingCorruptError(ring.name, "offset8", offset8, `is beyond len8 ${len8}`);
    }
    if (pktLen > this.maxPacketSize) {
      throw new RingCorruptError(ring.name, "len8", len8, `makes a ${pktLen}-byte packet, above the maximum packet size ${this.maxPacketSize}`);
    }
    if (pktLen + VMBUS_PKT_TRAILER > avail) {
      throw new RingCorruptError(
        ring.name,
        "len8",
        len8,
        `makes ${pktLen + VMBUS_PKT_TRAILER} bytes with the trailer, beyond the ${avail} bytes available`,
      );
    }
    let rest = this.cursor + D.SIZE;
    if (rest >= ring.dataSize) rest -= ring.dataSize;
    // pktLen is a multiple of 8. Short packets go by words; long ones by
    // `set` on a view, whose allocation is noise next to the copy.
    if (pktLen <= WORD_COPY_MAX) {
      wordsFromRing(this.ring64, rest >> 3, this.packet64, D.SIZE >> 3, (pktLen - D.SIZE) >> 3);
    } else {
      copyFromRing(ring, rest, p.buffer, D.SIZE, pktLen - D.SIZE);
    }
    p.type = v.getUint16(D.type, true);
    p.offset8 = offset8;
    p.len8 = len8;
    p.flags = v.getUint16(D.flags, true);
    p.transIdLo = v.getUint32(D.trans_id, true);
    p.transIdHi = v.getUint32(D.trans_id + 4, true);
    this.currentTotal = pktLen + VMBUS_PKT_TRAILER;
    return p;
  }

  /** Steps past the current packet (if any) and returns the next one, or null. */
  next(): IncomingPacket | null {
    this.advance();
    return this.first();
  }

  /** Steps past the packet last returned by `first`/`next`. */
  advance(): void {
    if (this.currentTotal === 0) return;
    const n = this.cursor + this.currentTotal;
    this.cursor = n >= this.ring.dataSize ? n - this.ring.dataSize : n;
    this.packetsRead++;
    this.bytesRead += this.currentTotal;
    this.currentTotal = 0;
  }

  /**
   * Publishes the cursor — everything stepped past — as `read_index` and decides whether to signal a
   * writer blocked on this ring (`hv_pkt_iter_close`). Returns true when
   * the writer must be signalled.
   *
   * The order is the whole point, and it is fixed: (1) publish read_index,
   * (2) read pending_send_sz, (3) read write_index. A writer that blocks
   * stores pending_send_sz and then re-reads read_index. If we read
   * pending_send_sz *before* publishing, we could see 0, the writer could
   * then set it and re-read the old read_index (no room yet), and both
   * sides would go to sleep: the lost wakeup. Publishing first means either
   * we see its pending_send_sz, or it sees our read_index.
   *
   * We signal only on the transition from "not enough" to "enough" free
   * space: if there was already room for `pending_send_sz` before this
   * iteration, an earlier close already signalled (or the writer was never
   * blocked), and a second signal would be one Hyper-V throttles. An exact
   * fit counts as "not enough", because a write needs strictly more room.
   */
  close(): boolean {
    // As in Linux, a packet returned by first()/next() but not stepped past
    // (by next() or advance()) is not consumed: it is returned again.
    this.currentTotal = 0;
    const ring = this.ring;
    const start = this.published;
    if (this.cursor === start) return false;
    ring.storeReadIndex(this.cursor);
    this.published = this.cursor;
    // The Atomics.store above is sequentially consistent: it is the full
    // barrier between publishing read_index and reading pending_send_sz.
    // pending_send_sz is read first and the feature bits only when it is
    // set: nobody waits in the common case, and that costs one load.
    const pending = ring.loadPendingSendSize();
    if (pending === 0) return false;
    // Hosts before WS2012 do not implement pending_send_sz; they poll.
    // (Set once by the ring's creator, so its order does not matter.)
    if ((ring.loadFeatureBits() & FEAT_PENDING_SEND_SZ) === 0) return false;
    const write = ring.checkedIndex("write_index", ring.loadWriteIndex());
    const currWrite = ring.bytesToWrite(write, this.cursor);
    let bytesRead = this.cursor - start;
    if (bytesRead < 0) bytesRead += ring.dataSize;
    if (!crossedPendingSendSize(pending, currWrite, bytesRead)) return false;
    this.intrInFull++;
    return true;
  }

  /**
   * Bytes stepped past (`advance`/`next`) but not yet published as
   * `read_index`: what the next `close` would free for the writer.
   */
  get unreleasedBytes(): number {
    const n = this.cursor - this.published;
    return n < 0 ? n + this.ring.dataSize : n;
  }

  /**
   * Deferred release: `close` once at least `minBytes` have been stepped
   * past since the last publication of read_index, else nothing (false).
   * A consumer that drains packets as fast as they arrive calls this after
   * each packet instead of `close` after each burst, so it publishes
   * read_index — one sequentially consistent store to the header cache
   * line every writer works on, and one load of pending_send_sz — once per
   * `minBytes` rather than once per packet it finds. Linux defers the
   * same way (`hv_pkt_iter_close` once per batch).
   *
   * The signalling rule stays whole because every publication is a
   * `close`: it publishes, then reads pending_send_sz, and signals on the
   * full → not-full transition over everything it released. The caller
   * must still `close` before it stops reading (before `endRead` and a
   * sleep), or bytes it holds back stay unavailable to the writers. A
   * writer that blocked when the ring was full is never held up for long:
   * while it waits, the ring holds more than `dataSize − minBytes − its
   * packet` unread bytes, so with `minBytes` well below the data size
   * (an eighth, say) the reader soon crosses `minBytes` and signals.
   */
  closeIfAtLeast(minBytes: number): boolean {
    if (this.unreleasedBytes < minBytes) return false;
    return this.close();
  }

  /**
   * `hv_begin_read`: ask the writer not to signal while we drain. Racing
   * writers may still be mid-commit and signal once; that is harmless.
   */
  beginRead(): void {
    this.ring.storeInterruptMask(1);
  }

  /**
   * `hv_end_read`: unmask, then look again. A non-zero result means data
   * arrived while we were masked — the writer saw the mask and did not
   * signal — so the caller must drain again instead of waiting.
   */
  endRead(): number {
    this.ring.storeInterruptMask(0);
    return this.available();
  }
}

/**
 * The reader's signalling decision once the order has been kept: signal a
 * writer waiting for `pending` free bytes only if this read moved free
 * space from "not enough" (≤ pending, before the `bytesRead` bytes were
 * freed) to "enough" (> pending). Both comparisons are ≤ because a write
 * needs strictly more room than its size.
 */
export function crossedPendingSendSize(pending: number, freeNow: number, bytesRead: number): boolean {
  if (pending === 0) return false;
  if (freeNow - bytesRead > pending) return false; // there was room already: not blocked, or already woken
  if (freeNow <= pending) return false; // still not enough: no false hope
  return true;
}
