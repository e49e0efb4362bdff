/**
 * What a simulated disk is to the SCSI target (storvsc-netvsc.md §6, §7.1,
 * §7.6): a row of fixed-size logical blocks that can be read, written,
 * flushed and unmapped — and the typed errors a backend reports, which the
 * target turns into sense data (§7.6 table: write protected 07/27/00,
 * unrecovered read error 03/11/00, write error 03/0C/00, I/O error 03/00/00).
 *
 * Every method returns a promise so that a wrapper can delay it in virtual
 * time (`LatencyDisk`), and reports failure by rejecting it. The base
 * backends do their work before they return, so nothing outside the
 * simulation's event queue decides when an I/O completes (DESIGN.md
 * principle 3).
 *
 * LBAs and counts are plain numbers: a disk of 2^53 bytes is far beyond any
 * scenario, and the SCSI target has range-checked the CDB's 64-bit LBA
 * before it converts it.
 */
import { VmbusSimError, fmtNum } from "../../../core/index.js";

export interface DiskBackend {
  /** For messages and reports: "memory", "file /tmp/a.img", "read-only(memory)"… */
  readonly description: string;
  /** Logical block size in bytes (a power of two, 512..65536). */
  readonly blockSize: number;
  readonly blockCount: number;
  /** Writes and unmaps fail with `DiskWriteProtectedError`. */
  readonly readOnly: boolean;
  /** Preferred unmap granularity in blocks (VPD 0xB0 OPTIMAL UNMAP GRANULARITY). */
  readonly unmapGranularity: number;
  /** Reads `count` blocks from `lba` into `into[0 .. count × blockSize)`. */
  read(lba: number, count: number, into: Uint8Array): Promise<void>;
  /** Writes `data` (a whole number of blocks) at `lba`. */
  write(lba: number, data: Uint8Array): Promise<void>;
  /** Makes every completed write durable (SYNCHRONIZE CACHE, FUA, stop). */
  flush(): Promise<void>;
  /** Deallocates `count` blocks from `lba`; they read back as zeros afterwards (LBPRZ). */
  unmap(lba: number, count: number): Promise<void>;
  /** Releases what the backend holds (a file descriptor). Idempotent. */
  close(): void;
  /**
   * Changes the disk's size to `sizeBytes` (a positive multiple of the
   * block size); blocks past the old end read as zeros, blocks past the new
   * end are dropped. Only base backends that can change size have it: the
   * wrappers read `blockCount` through to their inner disk, so resizing the
   * base resizes the whole stack. Throws `InvalidArgumentError` for a bad
   * size, `DiskIoError` when the storage cannot follow.
   */
  resize?(sizeBytes: number): void;
}

export type DiskOp = "read" | "write" | "flush" | "unmap";

/**
 * A bounds-checked window onto the guest's data buffer (core's `PagedView`
 * fits): what a backend's direct transfer reads from and writes into.
 */
export interface GuestBufferView {
  write(offset: number, src: Uint8Array, srcOffset: number, length: number): void;
  readInto(offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
}

/** A block range outside the disk, or a buffer that does not match it: a caller bug or a hostile LBA the target missed. */
export class DiskRangeError extends VmbusSimError {
  readonly code = "DISK_RANGE";
  constructor(
    readonly disk: string,
    readonly op: DiskOp,
    readonly lba: number,
    readonly count: number,
    readonly limit: string,
  ) {
    super(`${disk}: ${op} lba=${fmtNum(lba)} count=${count} ${limit}`);
  }
}

/** A write or unmap on a read-only disk (sense DATA PROTECT 07/27/00). */
export class DiskWriteProtectedError extends VmbusSimError {
  readonly code = "DISK_WRITE_PROTECTED";
  constructor(
    readonly disk: string,
    readonly op: DiskOp,
  ) {
    super(`${disk}: ${op} refused: the disk is read-only`);
  }
}

/** A medium error at `lba` (injected, or reported by a backend): sense 03/11/00 for reads, 03/0C/00 for writes. */
export class DiskMediumError extends VmbusSimError {
  readonly code = "DISK_MEDIUM";
  constructor(
    readonly disk: string,
    readonly op: "read" | "write",
    /** The first block that failed. */
    readonly lba: number,
  ) {
    super(`${disk}: unrecovered ${op} error at lba ${fmtNum(lba)}`);
  }
}

/** The host's storage under a backend failed (an OS error of the image file): sense 03/00/00. */
export class DiskIoError extends VmbusSimError {
  readonly code = "DISK_IO";
  constructor(
    readonly disk: string,
    readonly op: DiskOp | "open" | "close" | "resize",
    override readonly cause: unknown,
  ) {
    super(`${disk}: ${op} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * Throws `DiskRangeError` unless [lba, lba + count) lies inside the disk and
 * `bytes` (when given) is exactly count × blockSize long. Backends call it
 * before touching storage so that a missed check upstream can never reach
 * memory or file offsets outside the disk.
 */
export function checkBlockRange(disk: DiskBackend, op: DiskOp, lba: number, count: number, bytes?: number): void {
  if (!Number.isSafeInteger(lba) || !Number.isSafeInteger(count) || lba < 0 || count < 0) {
    throw new DiskRangeError(disk.description, op, lba, count, "must be non-negative integers");
  }
  if (lba + count > disk.blockCount) {
    throw new DiskRangeError(disk.description, op, lba, count, `runs past the last block ${disk.blockCount - 1}`);
  }
  if (bytes !== undefined && bytes !== count * disk.blockSize) {
    throw new DiskRangeError(disk.description, op, lba, count, `needs ${count * disk.blockSize} bytes, the buffer has ${bytes}`);
  }
}

/** Block sizes a disk may have: powers of two from 512 to 64 KiB (READ CAPACITY needs a power of two ≥ 512). */
export function isValidBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

/** True when every byte of `b` is zero. */
export function isAllZero(b: Uint8Array): boolean {
  // Four bytes at a time where alignment allows: WRITE SAME and sparse
  // writes call this on whole chunks.
  const n4 = b.byteOffset % 4 === 0 ? b.length >> 2 : 0;
  if (n4 > 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset, n4);
    for (let i = 0; i < n4; i++) if (w[i] !== 0) return false;
  }
  for (let i = n4 << 2; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
