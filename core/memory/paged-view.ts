/**
 * Host views of guest memory: GPADLs (vmbus-core.md §7.7) and the GPA ranges
 * of a packet (§2.4, §2.5).
 *
 * Both have the same shape, the one of `struct gpa_range`: a byte offset into
 * the first page, a byte count, and the list of 4 KiB page frame numbers the
 * bytes run through. Byte `o` of the region lives at
 * `pfns[(byteOffset + o) >> 12] * 4096 + ((byteOffset + o) & 4095)`.
 *
 * The host must reach guest memory only through such a view. Every access is
 * checked against the byte count *and* the PFN list before a byte moves, so a
 * hostile guest that names a short PFN list, a PFN beyond guest memory, or an
 * offset past the end gets a `GpadlAccessError`, never a read of memory it
 * did not share. The PFN list is copied when the view is made: a guest that
 * rewrites its GPADL message afterwards cannot move the view.
 */
import { GpadlAccessError } from "../errors.js";
import { type GuestMemory, PAGE_SHIFT, PAGE_SIZE, zeroBytes } from "./guest-memory.js";

/** What a GPADL is: `vmbus_channel_gpadl_header` reduced to one range (Linux sends one). */
export interface GpadlDescriptor {
  readonly handle: number;
  readonly byteOffset: number;
  readonly byteCount: number;
  readonly pfns: readonly number[];
}

/** One `gpa_range` / `hv_mpb_array` / `hv_page_buffer` of a packet. */
export interface GpaRange {
  readonly byteCount: number;
  readonly byteOffset: number;
  readonly pfns: readonly number[];
}

/**
 * A bounds-checked window onto guest memory through a page list.
 * `region` is used in error messages (`GPADL 0xe1e10`, `GPA range 1`).
 */
export class PagedView {
  readonly byteOffset: number;
  readonly length: number;
  readonly pfns: Uint32Array;
  /** When every PFN follows the previous one, the GPA of byte 0; else -1. */
  private readonly flatGpa: number;

  constructor(
    private readonly memory: GuestMemory,
    readonly region: string,
    range: GpaRange,
  ) {
    const { byteOffset, byteCount } = range;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset >= PAGE_SIZE) {
      throw new GpadlAccessError(region, byteOffset, 0, PAGE_SIZE, "has a byte_offset not inside the first page");
    }
    const pagesNeeded = byteCount === 0 ? 0 : Math.ceil((byteOffset + byteCount) / PAGE_SIZE);
    if (!Number.isInteger(byteCount) || byteCount < 0 || pagesNeeded > range.pfns.length) {
      throw new GpadlAccessError(
        region,
        0,
        byteCount,
        range.pfns.length * PAGE_SIZE - byteOffset,
        `byte_count needs ${pagesNeeded} page(s) but only ${range.pfns.length} PFN(s) are listed`,
      );
    }
    // Checked and copied in one pass, each entry read once (no slice, no
    // Uint32Array.from: this runs for every data packet of every VSP).
    const pfns = new Uint32Array(Math.max(pagesNeeded, 0));
    for (let i = 0; i < pfns.length; i++) {
      const pfn = range.pfns[i] ?? -1;
      if (!Number.isInteger(pfn) || pfn < 0 || pfn >= memory.pageCount) {
        throw new GpadlAccessError(
          region,
          i * PAGE_SIZE,
          PAGE_SIZE,
          memory.size,
          `lists PFN ${pfn} (entry ${i}) outside guest memory of ${memory.pageCount} pages`,
        );
      }
      pfns[i] = pfn;
    }
    this.pfns = pfns;
    this.byteOffset = byteOffset;
    this.length = byteCount;
    let flat = true;
    for (let i = 1; i < this.pfns.length; i++) {
      if (this.pfns[i] !== (this.pfns[i - 1] ?? 0) + 1) {
        flat = false;
        break;
      }
    }
    this.flatGpa = flat && this.pfns.length > 0 ? (this.pfns[0] ?? 0) * PAGE_SIZE + byteOffset : -1;
  }

  /** True when the whole region is one run of adjacent guest pages. */
  get contiguous(): boolean {
    return this.flatGpa >= 0 || this.length === 0;
  }

  private check(offset: number, length: number): void {
    if (!(Number.isInteger(offset) && Number.isInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.length)) {
      throw new GpadlAccessError(this.region, offset, length, this.length);
    }
  }

  /** The guest physical address of byte `offset` of the region. */
  gpaOf(offset: number): number {
    this.check(offset, 0);
    const abs = this.byteOffset + offset;
    return (this.pfns[abs >>> PAGE_SHIFT] ?? 0) * PAGE_SIZE + (abs & (PAGE_SIZE - 1));
  }

  /**
   * A live view of [offset, offset+length) when those bytes are adjacent in
   * guest memory. Rings need this (their indices address one linear data
   * area); a region that is not contiguous there fails with a typed error.
   */
  span(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    if (this.flatGpa >= 0) return this.memory.u8.subarray(this.flatGpa + offset, this.flatGpa + offset + length);
    // Not flat as a whole; the requested part may still be within adjacent pages.
    const first = (this.byteOffset + offset) >>> PAGE_SHIFT;
    const last = length === 0 ? first : (this.byteOffset + offset + length - 1) >>> PAGE_SHIFT;
    for (let i = first + 1; i <= last; i++) {
      if (this.pfns[i] !== (this.pfns[i - 1] ?? 0) + 1) {
        throw new GpadlAccessError(this.region, offset, length, this.length, "spans pages that are not adjacent in guest memory");
      }
    }
    const gpa = this.gpaOf(offset);
    return this.memory.u8.subarray(gpa, gpa + length);
  }

  /** Copies `length` bytes at `offset` into `dst` at `dstOffset`. */
  readInto(offset: number, dst: Uint8Array, dstOffset = 0, length = dst.length - dstOffset): void {
    this.check(offset, length);
    const u8 = this.memory.u8;
    if (this.flatGpa >= 0) {
      const g = this.flatGpa + offset;
      dst.set(u8.subarray(g, g + length), dstOffset);
      return;
    }
    let abs = this.byteOffset + offset;
    let done = 0;
    while (done < length) {
      const inPage = abs & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      const g = (this.pfns[abs >>> PAGE_SHIFT] ?? 0) * PAGE_SIZE + inPage;
      dst.set(u8.subarray(g, g + n), dstOffset + done);
      done += n;
      abs += n;
    }
  }

  /** A copy of `length` bytes at `offset`. */
  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(offset, out, 0, length);
    return out;
  }

  /** Copies `src` (or `length` bytes of it from `srcOffset`) to `offset`. */
  write(offset: number, src: Uint8Array, srcOffset = 0, length = src.length - srcOffset): void {
    this.check(offset, length);
    const u8 = this.memory.u8;
    if (this.flatGpa >= 0) {
      u8.set(src.subarray(srcOffset, srcOffset + length), this.flatGpa + offset);
      return;
    }
    let abs = this.byteOffset + offset;
    let done = 0;
    while (done < length) {
      const inPage = abs & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      const g = (this.pfns[abs >>> PAGE_SHIFT] ?? 0) * PAGE_SIZE + inPage;
      u8.set(src.subarray(srcOffset + done, srcOffset + done + n), g);
      done += n;
      abs += n;
    }
  }

  fill(offset: number, length: number, value = 0): void {
    this.check(offset, length);
    let abs = this.byteOffset + offset;
    let done = 0;
    while (done < length) {
      const inPage = abs & (PAGE_SIZE - 1);
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      const g = (this.pfns[abs >>> PAGE_SHIFT] ?? 0) * PAGE_SIZE + inPage;
      if (value === 0) zeroBytes(this.memory.u8, g, g + n);
      else this.memory.u8.fill(value, g, g + n);
      done += n;
      abs += n;
    }
  }
}

/** The host's view of one GPADL. */
export class GpadlView extends PagedView {
  readonly handle: number;
  constructor(memory: GuestMemory, desc: GpadlDescriptor) {
    super(memory, `GPADL 0x${desc.handle.toString(16)}`, desc);
    this.handle = desc.handle;
  }
}

/** The host's view of one GPA range of a packet. */
export function gpaRangeView(memory: GuestMemory, range: GpaRange, label: string): PagedView {
  return new PagedView(memory, label, range);
}
