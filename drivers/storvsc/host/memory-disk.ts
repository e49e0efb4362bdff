/**
 * A sparse in-memory disk (storvsc-netvsc.md §6 disk commands, §7.2 LBPME /
 * LBPRZ). Storage is kept by chunk (64 KiB by default) in a Map keyed by
 * chunk index, so a multi-terabyte disk costs only the chunks written:
 * unwritten blocks read as zeros, writing zeros into a chunk that does not
 * exist allocates nothing, and UNMAP drops whole chunks and zeroes the
 * partial ones at its edges.
 */
import { InvalidArgumentError } from "../../../core/index.js";
import { type DiskBackend, checkBlockRange, isAllZero, isValidBlockSize } from "./disk-backend.js";

export const DEFAULT_MEMORY_CHUNK_BYTES = 64 * 1024;

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
  readonly blockCount: number;
  readonly readOnly = false;
  readonly unmapGranularity: number;
  readonly chunkBytes: number;
  readonly sizeBytes: number;
  private readonly chunks = new Map<number, Uint8Array>();

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
    this.sizeBytes = size;
    this.blockCount = size / blockSize;
    this.unmapGranularity = chunkBytes / blockSize;
    this.description = options.description ?? "memory";
  }

  /** Chunks holding data. */
  get allocatedChunks(): number {
    return this.chunks.size;
  }

  /** Bytes of host memory the disk holds. */
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
        this.chunks.delete(index);
      } else {
        const chunk = this.chunks.get(index);
        if (chunk !== undefined) {
          chunk.fill(0, inChunk, inChunk + n);
          // A chunk that is now all zeros is indistinguishable from an
          // unallocated one; dropping it keeps "costs only what is written".
          if (isAllZero(chunk)) this.chunks.delete(index);
        }
      }
      pos += n;
    }
  }

  close(): void {
    // Nothing to release; the data stays readable for reports and tests.
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
          chunk = new Uint8Array(cb);
          this.chunks.set(index, chunk);
          chunk.set(part, inChunk);
        }
      } else {
        chunk.set(part, inChunk);
      }
      done += n;
    }
  }
}
