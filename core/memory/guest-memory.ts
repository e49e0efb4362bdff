/**
 * Guest physical memory: 4 KiB pages over one SharedArrayBuffer.
 *
 * Everything the guest and the host share (ring headers and data, SynIC
 * message and event-flag pages, monitor pages, driver buffers) lives here at
 * a guest physical address (GPA). The guest reaches any byte of its own
 * memory; the host only what a GPADL or a packet's GPA ranges name (see
 * `paged-view.ts`). One SharedArrayBuffer backs the whole VM so that the
 * same bytes can later be shared with worker threads.
 */
import { GuestMemoryError, InvalidArgumentError, OutOfGuestMemoryError } from "../errors.js";

/** Hyper-V page size (`HV_HYP_PAGE_SIZE`); PFNs in GPADLs count these pages. */
export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

/** 16 MiB: enough for the demo VMs (rings, SynIC pages, a few MiB of I/O buffers). */
export const DEFAULT_GUEST_MEMORY_BYTES = 16 * 1024 * 1024;

export interface GuestMemoryConfig {
  /** Size of guest memory in bytes; a whole number of pages. */
  readonly bytes?: number;
  /**
   * Pages at the bottom that are never handed out, so that GPA 0 (and PFN 0)
   * never names a live buffer. Default 1.
   */
  readonly reservedLowPages?: number;
  /**
   * Threaded mode: the buffer of guest memory that another thread owns.
   * The result is a *view*: same bytes, same GPAs, but no page allocator —
   * `allocContiguous`, `allocScattered` and `free` throw, because the
   * allocator's state lives with the owner and a second allocator would
   * zero pages the owner handed out. `bytes` is taken from the buffer.
   */
  readonly shared?: SharedArrayBuffer;
}

/** A page of zeros: the source `zeroBytes` copies from. */
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

/**
 * Zeroes `u8[from, to)`. On a SharedArrayBuffer, `TypedArray.prototype.fill`
 * stores byte by byte (each store must be a valid shared-memory access), about
 * 0.3 ns a byte — 1.2 µs a page, more than a whole I/O of the storage bench —
 * while `set` from an unshared zero page is one block copy: about 45 ns a
 * call and 0.03 ns a byte. Below 256 bytes `fill`'s lower call cost wins.
 */
export function zeroBytes(u8: Uint8Array, from: number, to: number): void {
  if (to - from < 256) {
    u8.fill(0, from, to);
    return;
  }
  for (let at = from; at < to; at += PAGE_SIZE) {
    const n = Math.min(PAGE_SIZE, to - at);
    u8.set(n === PAGE_SIZE ? ZERO_PAGE : ZERO_PAGE.subarray(0, n), at);
  }
}

/** Page states of `GuestMemory.used`. */
const CLEAN = 0;
const IN_USE = 1;
const DIRTY = 2;

/** Freed pages remembered for reuse (see `GuestMemory.hot`). */
const HOT_PAGES = 1024;

export class GuestMemory {
  readonly buffer: SharedArrayBuffer;
  /** Byte view of all of guest memory. Guest-side code may use it directly. */
  readonly u8: Uint8Array;
  readonly view: DataView;
  readonly size: number;
  readonly pageCount: number;

  /**
   * Per page: IN_USE, or free — CLEAN (never handed out, so still the zeros
   * the SharedArrayBuffer started with) or DIRTY (freed; zeroed when handed
   * out again). Not zeroing clean pages keeps the host OS from mapping, and
   * the allocator from writing, memory nobody has used yet: a 16 MiB
   * receive buffer costs only the pages frames land in, and a VM boots
   * without touching all of its buffers. The rule this rests on: nothing
   * writes to a page it was not given (no driver may; the host reaches only
   * GPADL and GPA-range pages, which the guest allocated).
   */
  private readonly used: Uint8Array;
  private freeCount: number;
  /** Next-fit cursor: allocations start searching where the last one ended. */
  private cursor: number;
  private readonly reserved: number;
  /**
   * Recently freed single pages, most recent on top. allocScattered takes
   * from here first: a driver that frees an I/O buffer and allocates the
   * next one gets the same, already-touched pages back (Linux's per-CPU hot
   * page lists do the same), instead of walking the cursor through memory
   * the host OS has never mapped — a page fault per I/O otherwise.
   * Entries may be stale (taken since by allocContiguous): checked on pop.
   */
  private readonly hot = new Int32Array(HOT_PAGES);
  private hotCount = 0;
  /** True for a view of another thread's memory (`GuestMemoryConfig.shared`): no allocator. */
  readonly isSharedView: boolean;

  constructor(config: GuestMemoryConfig = {}) {
    const bytes = config.shared?.byteLength ?? config.bytes ?? DEFAULT_GUEST_MEMORY_BYTES;
    this.isSharedView = config.shared !== undefined;
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE !== 0) {
      throw new InvalidArgumentError("guest memory bytes", bytes, `must be a positive multiple of ${PAGE_SIZE}`);
    }
    if (bytes > 2 ** 32) {
      throw new InvalidArgumentError("guest memory bytes", bytes, "must be at most 4 GiB");
    }
    const reserved = config.reservedLowPages ?? 1;
    this.buffer = config.shared ?? new SharedArrayBuffer(bytes);
    this.u8 = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.size = bytes;
    this.pageCount = bytes / PAGE_SIZE;
    if (!Number.isInteger(reserved) || reserved < 0 || reserved >= this.pageCount) {
      throw new InvalidArgumentError("reservedLowPages", reserved, `must be in [0, ${this.pageCount})`);
    }
    this.reserved = reserved;
    this.used = new Uint8Array(this.pageCount).fill(CLEAN);
    this.used.fill(IN_USE, 0, reserved);
    this.freeCount = this.pageCount - reserved;
    this.cursor = reserved;
  }

  get freePages(): number {
    return this.freeCount;
  }

  /** Throws unless [gpa, gpa+length) lies inside guest memory. */
  check(gpa: number, length: number): void {
    if (!(gpa >= 0 && length >= 0 && Number.isInteger(gpa) && Number.isInteger(length) && gpa + length <= this.size)) {
      throw new GuestMemoryError(gpa, length, this.size);
    }
  }

  /**
   * Allocates `count` physically contiguous pages and returns the first PFN.
   * The pages are zeroed. Rings must be contiguous (Linux `vmbus_alloc_ring`
   * makes one contiguous allocation), so this is what ring setup uses.
   */
  allocContiguous(count: number): number {
    this.checkCount(count);
    const n = this.pageCount;
    // Next-fit over the page bitmap, wrapping once.
    for (let pass = 0; pass < 2; pass++) {
      let start = pass === 0 ? this.cursor : 0;
      const end = pass === 0 ? n : Math.min(this.cursor + count, n);
      while (start + count <= end) {
        let run = 0;
        while (run < count && this.used[start + run] !== IN_USE) run++;
        if (run === count) {
          for (let p = start; p < start + count; p++) this.take(p);
          this.freeCount -= count;
          this.cursor = start + count;
          return start;
        }
        start += run + 1;
      }
    }
    throw new OutOfGuestMemoryError(count, this.freeCount, true);
  }

  /**
   * Allocates `count` pages that need not be adjacent (like a driver buffer
   * built from single pages) and returns their PFNs in allocation order. The
   * pages are zeroed.
   */
  allocScattered(count: number): number[] {
    this.checkCount(count);
    if (count > this.freeCount) throw new OutOfGuestMemoryError(count, this.freeCount, false);
    const pfns: number[] = [];
    while (pfns.length < count && this.hotCount > 0) {
      const h = this.hot[--this.hotCount] as number;
      if (this.used[h] === IN_USE) continue;
      this.take(h);
      pfns.push(h);
    }
    let p = this.cursor;
    while (pfns.length < count) {
      if (p >= this.pageCount) p = 0;
      if (this.used[p] !== IN_USE) {
        this.take(p);
        pfns.push(p);
      }
      p++;
    }
    this.freeCount -= count;
    this.cursor = p;
    return pfns;
  }

  /** Returns pages to the allocator. Freeing a page twice is a caller bug and throws. */
  free(pfns: Iterable<number> | number, count = 1): void {
    if (typeof pfns === "number") {
      for (let i = 0; i < count; i++) this.freeOne(pfns + i);
      return;
    }
    for (const pfn of pfns) this.freeOne(pfn);
  }

  private freeOne(pfn: number): void {
    this.checkCount(1);
    if (!Number.isInteger(pfn) || pfn < 0 || pfn >= this.pageCount) {
      throw new InvalidArgumentError("pfn", pfn, `must be in [0, ${this.pageCount})`);
    }
    if (pfn < this.reserved) throw new InvalidArgumentError("pfn", pfn, `is one of the ${this.reserved} reserved low page(s) and was never allocated`);
    if (this.used[pfn] !== IN_USE) throw new InvalidArgumentError("pfn", pfn, "is not allocated (double free?)");
    this.used[pfn] = DIRTY;
    this.freeCount++;
    if (this.hotCount < HOT_PAGES) this.hot[this.hotCount++] = pfn;
  }

  isAllocated(pfn: number): boolean {
    return this.used[pfn] === IN_USE;
  }

  /** Marks free page `pfn` in use, zeroing it if it was used before. */
  private take(pfn: number): void {
    if (this.used[pfn] === DIRTY) zeroBytes(this.u8, pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
    this.used[pfn] = IN_USE;
  }

  /** A live (not copied) view of [gpa, gpa+length). */
  span(gpa: number, length: number): Uint8Array {
    this.check(gpa, length);
    return this.u8.subarray(gpa, gpa + length);
  }

  /** A copy of [gpa, gpa+length). */
  read(gpa: number, length: number): Uint8Array {
    this.check(gpa, length);
    return this.u8.slice(gpa, gpa + length);
  }

  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    this.u8.set(data, gpa);
  }

  fill(gpa: number, length: number, value = 0): void {
    this.check(gpa, length);
    if (value === 0) zeroBytes(this.u8, gpa, gpa + length);
    else this.u8.fill(value, gpa, gpa + length);
  }

  readU32(gpa: number): number {
    this.check(gpa, 4);
    return this.view.getUint32(gpa, true);
  }

  writeU32(gpa: number, value: number): void {
    this.check(gpa, 4);
    this.view.setUint32(gpa, value >>> 0, true);
  }

  readU64(gpa: number): bigint {
    this.check(gpa, 8);
    return this.view.getBigUint64(gpa, true);
  }

  writeU64(gpa: number, value: bigint): void {
    this.check(gpa, 8);
    this.view.setBigUint64(gpa, BigInt.asUintN(64, value), true);
  }

  private checkCount(count: number): void {
    if (this.isSharedView) {
      throw new InvalidArgumentError("guest memory", "shared view", "does not allocate or free pages: the thread that owns the memory does");
    }
    if (!Number.isInteger(count) || count <= 0 || count > this.pageCount) {
      throw new InvalidArgumentError("page count", count, `must be in [1, ${this.pageCount}]`);
    }
  }
}

export function pfnToGpa(pfn: number): number {
  return pfn * PAGE_SIZE;
}

export function gpaToPfn(gpa: number): number {
  return Math.floor(gpa / PAGE_SIZE);
}
