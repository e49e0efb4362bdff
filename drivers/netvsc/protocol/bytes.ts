/**
 * Small byte helpers shared by the netvsc protocol codecs (spec
 * storvsc-netvsc.md §9–§13). Not part of the public barrel.
 *
 * Encoders check that a value is representable in its field and throw
 * `InvalidArgumentError` otherwise: truncating it silently would put a
 * different number on the wire than the caller meant. Encoders deliberately
 * do NOT enforce protocol rules (a section size of 0, a PPI offset inside the
 * header): tests and fuzzers must be able to put hostile but representable
 * values on the wire. Decoders enforce those rules.
 */
import { InvalidArgumentError } from "../../../core/index.js";

const UINT_MAX: Readonly<Record<8 | 16 | 32, number>> = {
  8: 0xff,
  16: 0xffff,
  32: 0xffffffff,
};

/** Throws unless `value` is an integer that fits in an unsigned field of `bits` bits. */
export function checkUint(field: string, value: number, bits: 8 | 16 | 32): void {
  const max = UINT_MAX[bits];
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidArgumentError(field, value, `must be an integer in [0, ${max}] (u${bits})`);
  }
}

/** Throws unless `value` is an integer in [min, max]. */
export function checkRange(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, value, `must be an integer in [${min}, ${max}]`);
  }
}

/** Throws unless `value` fits in an unsigned 64-bit field. */
export function checkU64(field: string, value: bigint): void {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new InvalidArgumentError(field, value, "must be in [0, 2^64 - 1] (u64)");
  }
}

/** Throws unless `bytes` is exactly `length` long. */
export function checkLength(field: string, bytes: Uint8Array, length: number): void {
  if (bytes.length !== length) {
    throw new InvalidArgumentError(`${field}.length`, bytes.length, `must be ${length}`);
  }
}

/**
 * A private copy of the first `length` bytes of `src`, zero-extended.
 * Decoders read only from such a copy: the source may be guest (or host)
 * memory that the peer can rewrite between our check and our use.
 */
export function copyBytes(src: Uint8Array, length: number = src.length): Uint8Array {
  const out = new Uint8Array(length);
  out.set(src.subarray(0, Math.min(length, src.length)));
  return out;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Little-endian u32 at `offset`, 0 when out of range (callers check lengths first). */
export function u32le(bytes: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > bytes.length) return 0;
  return viewOf(bytes).getUint32(offset, true);
}

/** `0x` followed by at least `width` hex digits. */
export function hex(n: number | bigint, width = 0): string {
  return `0x${n.toString(16).padStart(width, "0")}`;
}

/** Bytes as space-separated hex pairs, at most `limit` of them (then "…"). */
export function hexBytes(bytes: Uint8Array, limit = Number.POSITIVE_INFINITY): string {
  const shown = bytes.length > limit ? bytes.subarray(0, limit) : bytes;
  const text = Array.from(shown, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > limit ? `${text} …` : text;
}

/** `n` rounded up to a multiple of `align` (a power of two). */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Encodes `text` as UTF-16LE code units (no terminator). */
export function utf16le(text: string): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  const v = viewOf(out);
  for (let i = 0; i < text.length; i++) v.setUint16(2 * i, text.charCodeAt(i), true);
  return out;
}

/**
 * Decodes UTF-16LE code units, stopping at the first NUL. An odd trailing
 * byte is ignored; lone surrogates come back as they are (a peer's string is
 * data, not something to fail on — callers that print it escape it).
 */
export function fromUtf16le(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const c = (bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Escapes non-printable characters so a peer's string cannot break a one-line description. */
export function printable(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c ? s[i] : `\\u${c.toString(16).padStart(4, "0")}`;
  }
  return out;
}
