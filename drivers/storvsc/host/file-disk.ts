/**
 * A raw disk image in a file on the host (storvsc-netvsc.md §6: the disk
 * behind READ/WRITE, SYNCHRONIZE CACHE, UNMAP). Byte `lba × blockSize` of
 * the disk is byte `lba × blockSize` of the file: the image can be inspected
 * or prepared with ordinary tools.
 *
 * Wall-clock I/O happens here, on purpose, and it is done with node:fs's
 * synchronous calls (openSync, readSync, writeSync, fsyncSync on one file
 * descriptor), for a reason that is not style: the simulation's run loop
 * (core/sim/scheduler.ts) drains only the microtask queue between events and
 * never yields to the macrotask queue, where libuv delivers the results of
 * `node:fs/promises`. An awaited `FileHandle.read` inside `sys.run(...)`
 * therefore never settles while the simulation runs — the run ends in
 * SimDeadlockError, or races ahead in virtual time without the data. A
 * synchronous call finishes before the backend's promise is returned, so the
 * I/O is complete, in order and deterministic by the time any simulated code
 * sees it; virtual time sees only what a `LatencyDisk` around this backend
 * models. The price: a long real I/O stalls the (single-threaded) simulation
 * for its wall-clock duration, which changes no simulated figure.
 *
 * Creating and extending: a missing file is created when `sizeBytes` is
 * given (without it the file must exist); a file shorter than
 * `sizeBytes` is extended with `ftruncate` (sparse on file systems that
 * support it); a longer file is used for its first `sizeBytes` only. Without
 * `sizeBytes` the disk is the file's current size. `resize` sets the file to
 * exactly the new size. UNMAP writes zeros (Node has no portable hole
 * punching), so unmapped blocks read as zeros (LBPRZ).
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { InvalidArgumentError } from "../../../core/index.js";
import { type DiskBackend, DiskIoError, checkBlockRange, isValidBlockSize } from "./disk-backend.js";

export interface FileDiskOptions {
  readonly path: string;
  /** Disk size; default: the existing file's size. */
  readonly sizeBytes?: number;
  readonly blockSize?: number;
  /** Open the file read-only (it must exist); writes are refused by `ReadOnlyDisk` above. */
  readonly readOnly?: boolean;
}

/** Zeros written per call when unmapping. */
const ZERO_CHUNK_BYTES = 1 << 20;

export class FileDiskBackend implements DiskBackend {
  readonly description: string;
  readonly blockSize: number;
  readonly readOnly: boolean;
  readonly unmapGranularity = 1;
  readonly path: string;
  /** Wall-clock system calls made (reads, writes, fsyncs), for reports. */
  syscalls = 0;
  private fd: number | null;
  private flushCount = 0;
  /** Changed only by `resize` (a host-side capacity change, §6). */
  private size: number;
  private blocks: number;
  private zeros: Uint8Array | null = null;

  /** Opens (creating or extending) the image. Throws `DiskIoError` for OS errors, `InvalidArgumentError` for bad options. */
  constructor(options: FileDiskOptions) {
    const blockSize = options.blockSize ?? 512;
    if (!isValidBlockSize(blockSize)) throw new InvalidArgumentError("blockSize", blockSize, "must be a power of two in [512, 65536]");
    if (typeof options.path !== "string" || options.path.length === 0) {
      throw new InvalidArgumentError("path", options.path, "must be a non-empty string");
    }
    if (options.sizeBytes !== undefined && (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0 || options.sizeBytes % blockSize !== 0)) {
      throw new InvalidArgumentError("sizeBytes", options.sizeBytes, `must be a positive safe integer, a multiple of the block size ${blockSize}`);
    }
    this.path = options.path;
    this.blockSize = blockSize;
    this.readOnly = options.readOnly === true;
    this.description = `file ${options.path}`;
    // Create only when told the size: a mistyped path without sizeBytes
    // must fail, not leave an empty file behind.
    const create = options.sizeBytes !== undefined && !this.readOnly;
    const flags = this.readOnly ? constants.O_RDONLY : create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDWR;
    let fd: number;
    try {
      fd = openSync(options.path, flags, 0o644);
    } catch (e) {
      throw new DiskIoError(this.description, "open", e);
    }
    try {
      const current = fstatSync(fd).size;
      const size = options.sizeBytes ?? current;
      if (size <= 0 || size % blockSize !== 0) {
        throw new InvalidArgumentError(
          "sizeBytes",
          size,
          options.sizeBytes === undefined
            ? `(the size of ${options.path}) must be a positive multiple of the block size ${blockSize}; give sizeBytes to create or extend it`
            : `must be a positive multiple of the block size ${blockSize}`,
        );
      }
      if (current < size) {
        if (this.readOnly) {
          throw new InvalidArgumentError("sizeBytes", size, `is larger than the read-only image ${options.path} (${current} bytes)`);
        }
        ftruncateSync(fd, size);
      }
      this.size = size;
      this.blocks = size / blockSize;
    } catch (e) {
      closeSync(fd);
      if (e instanceof InvalidArgumentError) throw e;
      throw new DiskIoError(this.description, "open", e);
    }
    this.fd = fd;
  }

  async read(lba: number, count: number, into: Uint8Array): Promise<void> {
    checkBlockRange(this, "read", lba, count);
    const length = count * this.blockSize;
    if (into.length < length) checkBlockRange(this, "read", lba, count, into.length);
    const fd = this.openFd("read");
    const base = lba * this.blockSize;
    let done = 0;
    try {
      while (done < length) {
        this.syscalls++;
        const n = readSync(fd, into, done, length - done, base + done);
        // End of file inside the disk cannot happen after the extend in the
        // constructor, unless someone truncated the image behind our back:
        // those blocks read as zeros, like a hole.
        if (n === 0) {
          into.fill(0, done, length);
          break;
        }
        done += n;
      }
    } catch (e) {
      throw new DiskIoError(this.description, "read", e);
    }
  }

  async write(lba: number, data: Uint8Array): Promise<void> {
    checkBlockRange(this, "write", lba, Math.floor(data.length / this.blockSize), data.length);
    this.writeAt(lba * this.blockSize, data, "write");
  }

  get sizeBytes(): number {
    return this.size;
  }

  get blockCount(): number {
    return this.blocks;
  }

  /**
   * Sets the image file to exactly `sizeBytes` with ftruncate: growing adds
   * zeros (sparse where the file system allows), shrinking cuts the data
   * past the new end, so that growing again shows zeros there — the same
   * as a memory disk, and as resizing a fixed-size virtual disk image.
   * A read-only image is never changed.
   */
  resize(sizeBytes: number): void {
    if (this.readOnly) throw new InvalidArgumentError("readOnly", true, `${this.description} is opened read-only: its size cannot change`);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % this.blockSize !== 0) {
      throw new InvalidArgumentError("sizeBytes", sizeBytes, `must be a positive safe integer, a multiple of the block size ${this.blockSize}`);
    }
    const fd = this.openFd("resize");
    try {
      this.syscalls++;
      ftruncateSync(fd, sizeBytes);
    } catch (e) {
      throw new DiskIoError(this.description, "resize", e);
    }
    this.size = sizeBytes;
    this.blocks = sizeBytes / this.blockSize;
  }

  /**
   * fsyncs that returned successfully. Counted after the call, so the
   * figure says the data reached stable storage, not merely that a flush
   * was asked for (SYNCHRONIZE CACHE, FUA, STOP must each cost one).
   */
  get flushes(): number {
    return this.flushCount;
  }

  async flush(): Promise<void> {
    const fd = this.openFd("flush");
    try {
      this.syscalls++;
      fsyncSync(fd);
    } catch (e) {
      throw new DiskIoError(this.description, "flush", e);
    }
    this.flushCount++;
  }

  async unmap(lba: number, count: number): Promise<void> {
    checkBlockRange(this, "unmap", lba, count);
    const zeros = (this.zeros ??= new Uint8Array(ZERO_CHUNK_BYTES));
    let pos = lba * this.blockSize;
    const end = pos + count * this.blockSize;
    while (pos < end) {
      const n = Math.min(zeros.length, end - pos);
      this.writeAt(pos, zeros.subarray(0, n), "unmap");
      pos += n;
    }
  }

  close(): void {
    const fd = this.fd;
    if (fd === null) return;
    this.fd = null;
    try {
      closeSync(fd);
    } catch (e) {
      throw new DiskIoError(this.description, "close", e);
    }
  }

  private openFd(op: "read" | "write" | "flush" | "unmap" | "resize"): number {
    if (this.fd === null) throw new DiskIoError(this.description, op, "the image file is closed");
    return this.fd;
  }

  private writeAt(position: number, data: Uint8Array, op: "write" | "unmap"): void {
    const fd = this.openFd(op);
    let done = 0;
    try {
      while (done < data.length) {
        this.syscalls++;
        done += writeSync(fd, data, done, data.length - done, position + done);
      }
    } catch (e) {
      throw new DiskIoError(this.description, op, e);
    }
  }
}
