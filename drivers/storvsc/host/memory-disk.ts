/**
 * A sparse in-memory disk (storvsc-netvsc.md §6 disk commands, §7.2 LBPME /
 * LBPRZ). Storage is kept by chunk (64 KiB by default) in a Map keyed by
 * chunk index, so a multi-terabyte disk costs only the chunks written:
 * unwritten blocks read as zeros, writing zeros into a chunk that does not
 * exist allocates nothing, and UNMAP drops whole chunks and zeroes the
 * partial ones at its edges.
 *
 * Chunks are carved out of larger buffers (up to 4 MiB, growing with use):
 * a fresh 64 KiB buffer per newly written chunk would cost many times the
 * write itself. A chunk that UNMAP frees goes to a free list and is zeroed
 * when it is used again, so the memory a disk holds is what it held at its
 * fullest; `allocatedChunks` / `allocatedBytes` count the chunks holding
 * data, as before.
 */
import { InvalidArgumentError } from "../../../core/index.js";
import { type DiskBackend, type GuestBufferView, checkBlockRange, isAllZero, isValidBlockSize } from "./disk-backend.js";

export const DEFAULT_MEMORY_CHUNK_BYTES = 64 * 1024;

/**
 * Zeros to copy from (never written). Copying them is several times faster
 * than `fill` on guest memory, which is a SharedArrayBuffer.
 */
const ZEROS = new Uint8Array(64 * 1024);

/** The largest buffer chunks are carved from. */
const SLAB_MAX_BYTES = 4 * 1024 * 1024;

export interface SparseMemoryDiskOptions {
  readonly sizeBytes: number;
  readonly blockSize?: number;
  /** Allocation unit; a power of two, a multiple of the block size. Default 64 KiB. */
  readonly chunkBytes?: number;
  readonly description?: string;
}


export class SparseMemoryDisk implements DiskBackend {
  readonly description: string;
  readonly blockSize: number;
  readonly readOnly = false;
  readonly unmapGranularity: number;
  readonly chunkBytes: number;
  /** Changed only by `resize` (a host-side capacity change, §6). */
  private size: number;
  private blocks: number;
  private readonly chunks = new Map<number, Uint8Array>();
  /** Bounce buffer of `writeFromView` for data headed into a hole (grown on demand; the copy is synchronous). */
  private scratch = new Uint8Array(0);
  private scratch32 = new Uint32Array(0);
  /** Chunks freed by UNMAP (reused, zeroed, before new ones are carved). */
  private readonly freeChunks: Uint8Array[] = [];
  /** The buffer new chunks are carved from, where the next one starts, and how many chunks exist in all. */
  private slab: ArrayBuffer | null = null;
  private slabNext = 0;
  private slabChunks = 0;
  private carved = 0;

  constructor(options: SparseMemoryDiskOptions) {
    const blockSize = options.blockSize ?? 512;
    const chunkBytes = options.chunkBytes ?? DEFAULT_MEMORY_CHUNK_BYTES;
    if (!isValidBlockSize(blockSize)) throw new InvalidArgumentError("blockSize", blockSize, "must be a power of two in [512, 65536]");
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < blockSize || (chunkBytes & (chunkBytes - 1)) !== 0 || chunkBytes > 1 << 24) {
      throw new InvalidArgumentError("chunkBytes", chunkBytes, `must be a power of two in [blockSize ${blockSize}, 16 MiB]`);
    }
    const size = options.sizeBytes;
    if (!Number.isSafeInteger(size) || size <= 0 || size % blockSize !== 0) {
      throw new InvalidArgumentError("sizeBytes", size, `must be a positive safe integer, a multiple of the block size ${blockSize}`);
    }
    this.blockSize = blockSize;
    this.chunkBytes = chunkBytes;
    this.size = size;
    this.blocks = size / blockSize;
    this.unmapGranularity = chunkBytes / blockSize;
    this.description = options.description ?? "memory";
  }

  get sizeBytes(): number {
    return this.size;
  }

  get blockCount(): number {
    return this.blocks;
  }

  /**
   * Grows or shrinks the disk. Growing allocates nothing (the new blocks
   * are holes, read as zeros). Shrinking drops the data past the new end —
   * whole chunks go to the free list, the tail of a straddling chunk is
   * zeroed — so that growing again later shows zeros there, as a new
   * region of a resized virtual disk does, never stale data.
   */
  resize(sizeBytes: number): void {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % this.blockSize !== 0) {
      throw new InvalidArgumentError("sizeBytes", sizeBytes, `must be a positive safe integer, a multiple of the block size ${this.blockSize}`);
    }
    if (sizeBytes < this.size) {
      const cb = this.chunkBytes;
      for (const index of [...this.chunks.keys()]) {
        const start = index * cb;
        if (start >= sizeBytes) {
          this.dropChunk(index);
        } else if (start + cb > sizeBytes) {
          const chunk = this.chunks.get(index) as Uint8Array;
          chunk.fill(0, sizeBytes - start);
          if (isAllZero(chunk)) this.dropChunk(index);
        }
      }
    }
    this.size = sizeBytes;
    this.blocks = sizeBytes / this.blockSize;
  }

  /** Chunks holding data. */
  get allocatedChunks(): number {
    return this.chunks.size;
  }

  /** Bytes of the chunks holding data (memory of chunks UNMAP freed is kept for reuse on top of this). */
  get allocatedBytes(): number {
    return this.chunks.size * this.chunkBytes;
  }

  async read(lba: number, count: number, into: Uint8Array): Promise<void> {
    checkBlockRange(this, "read", lba, count);
    const length = count * this.blockSize;
    if (into.length < length) checkBlockRange(this, "read", lba, count, into.length);
    this.copyOut(lba * this.blockSize, into.subarray(0, length));
  }

  async write(lba: number, data: Uint8Array): Promise<void> {
    const count = data.length / this.blockSize;
    checkBlockRange(this, "write", lba, Math.floor(count), data.length);
    this.copyIn(lba * this.blockSize, data);
  }

  async flush(): Promise<void> {
  }

  async unmap(lba: number, count: number): Promise<void> {
    checkBlockRange(this, "unmap", lba, count);
    let pos = lba * this.blockSize;
    const end = pos + count * this.blockSize;
    const cb = this.chunkBytes;
    while (pos < end) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(cb - inChunk, end - pos);
      if (n === cb) {
        this.dropChunk(index);
      } else {
        const chunk = this.chunks.get(index);
        if (chunk !== undefined) {
          chunk.fill(0, inChunk, inChunk + n);
          // A chunk that is now all zeros is indistinguishable from an
          // unallocated one; dropping it keeps "costs only what is written".
          if (isAllZero(chunk)) this.dropChunk(index);
        }
      }
      pos += n;
    }
  }

  close(): void {
    // Nothing to release; the data stays readable for reports and tests.
  }

  /**
   * `read(lba, count, into)` done at once, straight into `view` from
   * `viewOffset`: the same checks, the same bytes, no intermediate buffer.
   * For the SCSI target's fast path; nothing can fail once the range check
   * passed, so the view is only written when the read succeeds.
   */
  readToView(lba: number, count: number, view: GuestBufferView, viewOffset: number): void {
    checkBlockRange(this, "read", lba, count);
    const cb = this.chunkBytes;
    let pos = lba * this.blockSize;
    const end = pos + count * this.blockSize;
    let at = viewOffset;
    while (pos < end) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(cb - inChunk, end - pos);
      const chunk = this.chunks.get(index);
      if (chunk === undefined) {
        for (let done = 0; done < n; done += ZEROS.length) view.write(at + done, ZEROS, 0, Math.min(ZEROS.length, n - done));
      } else {
        view.write(at, chunk, inChunk, n);
      }
      pos += n;
      at += n;
    }
  }

  /**
   * `write(lba, data)` done at once with the data taken from `view` at
   * `viewOffset`, chunk by chunk: into an allocated chunk directly, into a
   * hole only when the bytes are not all zero (as `write`, holes stay holes).
   * Each byte of the view is read once, so the guest cannot make us check
   * one value and store another.
   */
  writeFromView(lba: number, count: number, view: GuestBufferView, viewOffset: number): void {
    checkBlockRange(this, "write", lba, count);
    const cb = this.chunkBytes;
    let pos = lba * this.blockSize;
    const end = pos + count * this.blockSize;
    let at = viewOffset;
    while (pos < end) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(cb - inChunk, end - pos);
      let chunk = this.chunks.get(index);
      if (chunk !== undefined) {
        view.readInto(at, chunk, inChunk, n);
      } else {
        if (this.scratch.length < n) {
          this.scratch = new Uint8Array(n);
          this.scratch32 = new Uint32Array(this.scratch.buffer, 0, n >> 2);
        }
        view.readInto(at, this.scratch, 0, n);
        if (!zeroPrefix(this.scratch, this.scratch32, n)) {
          chunk = this.newChunk(index);
          chunk.set(this.scratch.subarray(0, n), inChunk);
        }
      }
      pos += n;
      at += n;
    }
  }

  /** A zeroed chunk, now holding data at `index`. */
  private newChunk(index: number): Uint8Array {
    let chunk = this.freeChunks.pop();
    if (chunk !== undefined) {
      chunk.fill(0);
    } else {
      const cb = this.chunkBytes;
      if (this.slab === null || this.slabNext + cb > this.slab.byteLength) {
        // Every carved chunk is in use (the free list is empty), so at least
        // one more fits the disk; slabs double up to SLAB_MAX_BYTES.
        const left = Math.ceil(this.sizeBytes / cb) - this.carved;
        this.slabChunks = Math.max(1, Math.min(this.slabChunks * 2, Math.floor(SLAB_MAX_BYTES / cb), left));
        this.slab = new ArrayBuffer(this.slabChunks * cb);
        this.slabNext = 0;
      }
      chunk = new Uint8Array(this.slab, this.slabNext, cb);
      this.slabNext += cb;
      this.carved++;
    }
    this.chunks.set(index, chunk);
    return chunk;
  }

  private dropChunk(index: number): void {
    const chunk = this.chunks.get(index);
    if (chunk === undefined) return;
    this.chunks.delete(index);
    this.freeChunks.push(chunk);
  }

  private copyOut(offset: number, out: Uint8Array): void {
    const cb = this.chunkBytes;
    let done = 0;
    while (done < out.length) {
      const pos = offset + done;
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(cb - inChunk, out.length - done);
      const chunk = this.chunks.get(index);
      if (chunk === undefined) out.fill(0, done, done + n);
      else out.set(chunk.subarray(inChunk, inChunk + n), done);
      done += n;
    }
  }

  private copyIn(offset: number, data: Uint8Array): void {
    const cb = this.chunkBytes;
    let done = 0;
    while (done < data.length) {
      const pos = offset + done;
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(cb - inChunk, data.length - done);
      const part = data.subarray(done, done + n);
      let chunk = this.chunks.get(index);
      if (chunk === undefined) {
        // Zeros into a hole change nothing a reader can see: stay sparse
        // (WRITE SAME of a zero block over a big disk allocates nothing).
        if (!isAllZero(part)) {
          chunk = this.newChunk(index);
          chunk.set(part, inChunk);
        }
      } else {
        chunk.set(part, inChunk);
      }
      done += n;
    }
  }
}

/** True when the first `n` bytes of `b` are zero (`w` is `b` as u32 words). */
function zeroPrefix(b: Uint8Array, w: Uint32Array, n: number): boolean {
  const words = Math.min(n >> 2, w.length);
  for (let i = 0; i < words; i++) if (w[i] !== 0) return false;
  for (let i = words << 2; i < n; i++) if (b[i] !== 0) return false;
  return true;
}
