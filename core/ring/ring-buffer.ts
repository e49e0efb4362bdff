/**
 * One VMBus ring: the header page and the data area (vmbus-core.md §1.1–§1.5).
 *
 * A channel has two rings in one GPADL, outbound (guest → host) first. The
 * guest writes its outbound ring and reads its inbound ring; the host does
 * the opposite on the same bytes. This class is only the shared memory and
 * the arithmetic; `RingWriter` and `RingReader` hold each side's private
 * state and the signalling rules.
 *
 * Header words are read and written with `Atomics` on an Int32Array over
 * the SharedArrayBuffer. In the single-threaded simulation that costs
 * little; when the host runs in a worker thread the same calls give the
 * ordering the Linux code gets from its barriers (`Atomics` operations are
 * sequentially consistent, so each one is also a full barrier).
 */
import { InvalidArgumentError, RingCorruptError } from "../errors.js";
import { FEAT_PENDING_SEND_SZ, HV_RING_BUFFER, RING_HEADER_SIZE } from "./layout.js";

const W_WRITE = HV_RING_BUFFER.write_index >> 2;
const W_READ = HV_RING_BUFFER.read_index >> 2;
const W_MASK = HV_RING_BUFFER.interrupt_mask >> 2;
const W_PENDING = HV_RING_BUFFER.pending_send_sz >> 2;
const W_FEATURES = HV_RING_BUFFER.feature_bits >> 2;

/** Snapshot of a ring's header, as the sysfs ring debug attributes show it. */
export interface RingDebugInfo {
  readonly writeIndex: number;
  readonly readIndex: number;
  readonly interruptMask: number;
  readonly pendingSendSize: number;
  readonly featureBits: number;
  readonly bytesAvailToRead: number;
  readonly bytesAvailToWrite: number;
}

export class RingBuffer {
  /** Header words (1024 × i32); only the first few are meaningful. */
  readonly header: Int32Array;
  /** The data area, `dataSize` bytes. */
  readonly data: Uint8Array;
  readonly dataView: DataView;
  readonly dataSize: number;
  /** Header + data, as the GPADL byte count counts it. */
  readonly ringSize: number;

  /**
   * @param memory a live view of header + data (≥ 2 pages, a whole number of
   *   pages) over a SharedArrayBuffer or ArrayBuffer
   * @param name used in error messages (`vm0 relid 3 in`)
   */
  constructor(
    memory: Uint8Array,
    readonly name: string,
  ) {
    if (memory.byteLength < 2 * RING_HEADER_SIZE || memory.byteLength % RING_HEADER_SIZE !== 0) {
      throw new InvalidArgumentError(
        `${name} ring bytes`,
        memory.byteLength,
        `must be a multiple of ${RING_HEADER_SIZE} and at least ${2 * RING_HEADER_SIZE}`,
      );
    }
    if (memory.byteOffset % 8 !== 0) {
      throw new InvalidArgumentError(`${name} ring byteOffset`, memory.byteOffset, "must be 8-aligned");
    }
    this.header = new Int32Array(memory.buffer, memory.byteOffset, RING_HEADER_SIZE / 4);
    this.ringSize = memory.byteLength;
    this.dataSize = memory.byteLength - RING_HEADER_SIZE;
    this.data = memory.subarray(RING_HEADER_SIZE);
    this.dataView = new DataView(memory.buffer, memory.byteOffset + RING_HEADER_SIZE, this.dataSize);
  }

  /**
   * `hv_ringbuffer_init`: zero the header page, both indices 0, and set
   * `feat_pending_send_sz` — the promise that the side owning this ring
   * will fill in pending_send_sz when it blocks and will read the peer's.
   * Only the side that creates the rings (the guest) calls this.
   */
  init(featureBits = FEAT_PENDING_SEND_SZ): void {
    this.header.fill(0);
    Atomics.store(this.header, W_FEATURES, featureBits);
  }

  // Raw header accessors. Values read here come from memory the peer can
  // write; callers that use an index for addressing validate it first
  // (`checkedIndex`).

  loadWriteIndex(): number {
    return Atomics.load(this.header, W_WRITE) >>> 0;
  }
  storeWriteIndex(v: number): void {
    Atomics.store(this.header, W_WRITE, v | 0);
  }
  loadReadIndex(): number {
    return Atomics.load(this.header, W_READ) >>> 0;
  }
  storeReadIndex(v: number): void {
    Atomics.store(this.header, W_READ, v | 0);
  }
  loadInterruptMask(): number {
    return Atomics.load(this.header, W_MASK) >>> 0;
  }
  storeInterruptMask(v: number): void {
    Atomics.store(this.header, W_MASK, v | 0);
  }
  loadPendingSendSize(): number {
    return Atomics.load(this.header, W_PENDING) >>> 0;
  }
  storePendingSendSize(v: number): void {
    Atomics.store(this.header, W_PENDING, v | 0);
  }
  /**
   * Raises pending_send_sz to at least `v` (compare-and-swap loop), for
   * several writers that may block on one ring at once: a store could
   * lower a value another blocked writer still needs.
   */
  raisePendingSendSize(v: number): void {
    for (;;) {
      const cur = Atomics.load(this.header, W_PENDING);
      if (cur >>> 0 >= v) return;
      if (Atomics.compareExchange(this.header, W_PENDING, cur, v | 0) === cur) return;
    }
  }
  loadFeatureBits(): number {
    return Atomics.load(this.header, W_FEATURES) >>> 0;
  }

  /**
   * Validates an index read from shared memory before it is used to address
   * the data area: a peer that writes 0xfffffff8 or 13 into an index must
   * not make us read or write outside the ring or mis-frame packets.
   */
  checkedIndex(field: "write_index" | "read_index", value: number): number {
    if (value >= this.dataSize) {
      throw new RingCorruptError(this.name, field, value, `is not below the data size ${this.dataSize}`);
    }
    if ((value & 7) !== 0) {
      throw new RingCorruptError(this.name, field, value, "is not 8-byte aligned");
    }
    return value;
  }

  /** `hv_get_bytes_to_read` for given indices. */
  bytesToRead(write: number, read: number): number {
    return write >= read ? write - read : this.dataSize - read + write;
  }

  /** `hv_get_bytes_to_write` for given indices (r == w means empty: all bytes free). */
  bytesToWrite(write: number, read: number): number {
    return write >= read ? this.dataSize - (write - read) : read - write;
  }

  /** `hv_get_avail_to_write_percent`: writable share of the whole ring, header included. */
  availToWritePercent(): number {
    const w = this.bytesToWrite(this.loadWriteIndex() % this.dataSize, this.loadReadIndex() % this.dataSize);
    return Math.floor((w * 10) / Math.floor(this.ringSize / 10));
  }

  /**
   * `hv_ringbuffer_get_debuginfo`: the header as it is now. Raw values are
   * shown as found (sysfs shows them so); the available-bytes figures use
   * them modulo the data size so that a corrupt header still prints.
   */
  debugInfo(): RingDebugInfo {
    const w = this.loadWriteIndex();
    const r = this.loadReadIndex();
    const towrite = this.bytesToWrite(w % this.dataSize, r % this.dataSize);
    return {
      writeIndex: w,
      readIndex: r,
      interruptMask: this.loadInterruptMask(),
      pendingSendSize: this.loadPendingSendSize(),
      featureBits: this.loadFeatureBits(),
      bytesAvailToWrite: towrite,
      bytesAvailToRead: this.dataSize - towrite,
    };
  }
}

/**
 * Copies `len` bytes from `src[srcOff..]` into the ring data at `at`,
 * wrapping at the end of the data area (the double mapping of Linux,
 * emulated by splitting the copy). Returns the index after the bytes.
 *
 * Short copies go byte by byte: a `subarray` view would be an allocation
 * per packet, and for a few dozen bytes the loop is cheaper than the view.
 * Long copies use `set` on a view; the one small object is noise next to
 * the copy itself.
 */
export function copyToRing(ring: RingBuffer, at: number, src: Uint8Array, srcOff: number, len: number): number {
  const dsize = ring.dataSize;
  const data = ring.data;
  const first = Math.min(len, dsize - at);
  copyBytes(data, at, src, srcOff, first);
  if (first < len) copyBytes(data, 0, src, srcOff + first, len - first);
  const end = at + len;
  return end >= dsize ? end - dsize : end;
}

/** Copies `len` bytes of ring data starting at `at` (wrapping) into `dst[dstOff..]`. */
export function copyFromRing(ring: RingBuffer, at: number, dst: Uint8Array, dstOff: number, len: number): void {
  const dsize = ring.dataSize;
  const first = Math.min(len, dsize - at);
  copyBytes(dst, dstOff, ring.data, at, first);
  if (first < len) copyBytes(dst, dstOff + first, ring.data, 0, len - first);
}

const SHORT_COPY = 96;

export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void {
  if (len <= SHORT_COPY) {
    for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i] as number;
  } else if (srcOff === 0 && len === src.length) {
    dst.set(src, dstOff);
  } else {
    dst.set(src.subarray(srcOff, srcOff + len), dstOff);
  }
}
