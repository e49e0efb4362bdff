/**
 * Private copies of frames, carved out of shared chunks.
 *
 * Every frame crosses the simulated NIC as several private copies (the
 * guest's queued frame, the host's copy of what the guest sent, the frame
 * given to a receive listener). A `slice()` of more than 64 bytes gets its
 * own ArrayBuffer outside the JS heap, and making one costs several times
 * more than copying a full-size frame. A copy here is a view of bytes of a
 * chunk that no other copy overlaps and nobody writes again once handed
 * out: as private as a slice, with one ArrayBuffer per chunk. Chunks are
 * never recycled; the garbage collector frees a chunk once the last view of
 * it is dropped. The only visible difference from a slice is the view's
 * `buffer`/`byteOffset`.
 */

/** Frames up to this size get a `slice()`: V8 keeps such small arrays on its heap, where they are cheap. */
const ON_HEAP_MAX = 64;
const CHUNK_BYTES = 64 * 1024;

export class FrameArena {
  private chunk = new ArrayBuffer(0);
  /** The current chunk; `reserve` may replace it. */
  bytes = new Uint8Array(this.chunk);
  dataView = new DataView(this.chunk);
  private used = 0;

  /** A private copy of `src[offset, offset + length)`. */
  copy(src: Uint8Array, offset: number, length: number): Uint8Array {
    if (length <= ON_HEAP_MAX) return src.slice(offset, offset + length);
    const at = this.reserve(length);
    this.bytes.set(offset === 0 && length === src.length ? src : src.subarray(offset, offset + length), at);
    return new Uint8Array(this.chunk, at, length);
  }

  /**
   * Room for `length` bytes in the current chunk (`bytes`, `dataView`):
   * where they start. The caller fills them, then hands out views of them
   * (`view`) or gives the room back (`unreserve`).
   */
  reserve(length: number): number {
    if (this.used + length > this.chunk.byteLength) {
      this.chunk = new ArrayBuffer(Math.max(CHUNK_BYTES, length));
      this.bytes = new Uint8Array(this.chunk);
      this.dataView = new DataView(this.chunk);
      this.used = 0;
    }
    const at = this.used;
    // 8-aligned starts, as a fresh ArrayBuffer's would be.
    this.used = (at + length + 7) & ~7;
    return at;
  }

  /** Gives back the latest reservation, from which no view was handed out. */
  unreserve(at: number): void {
    this.used = at;
  }

  /** A view of `length` bytes at `at` of the current chunk (filled, never written again). */
  view(at: number, length: number): Uint8Array {
    return new Uint8Array(this.chunk, at, length);
  }
}
