/**
 * Small byte helpers shared by the storvsc protocol codecs (spec
 * storvsc-netvsc.md §1–§7). Not part of the public barrel.
 *
 * Encoders check that a value is representable in its field and throw
 * `InvalidArgumentError` otherwise: a value that does not fit is a bug in the
 * caller, and silently truncating it would put a different number on the wire
 * than the one the caller meant. Encoders deliberately do NOT enforce protocol
 * rules (cdb_length ≤ 16 and the like): tests and fuzzers must be able to put
 * hostile but representable values on the wire. Decoders enforce those rules.
 */
import { InvalidArgumentError } from "../../../core/index.js";

const UINT_MAX: Readonly<Record<8 | 16 | 24 | 32, number>> = {
  8: 0xff,
  16: 0xffff,
  24: 0xffffff,
  32: 0xffffffff,
};

/** Throws unless `value` is an integer that fits in an unsigned field of `bits` bits. */
export function checkUint(field: string, value: number, bits: 8 | 16 | 24 | 32): void {
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

/** Throws unless `value` fits in an unsigned field of `bits` bits. */
export function checkBigUint(field: string, value: bigint, bits: number): void {
  if (value < 0n || value >= 1n << BigInt(bits)) {
    throw new InvalidArgumentError(field, value, `must be in [0, 2^${bits} - 1]`);
  }
}

/** A bit of a flags byte as a boolean. */
export function bit(byte: number, n: number): boolean {
  return ((byte >> n) & 1) === 1;
}

/** `1 << n` when `on`, else 0. */
export function flag(on: boolean, n: number): number {
  return on ? 1 << n : 0;
}

/**
 * A private, zero-extended copy of the first `length` bytes of `src`.
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

/** `0x` followed by at least `width` hex digits. */
export function hex(n: number | bigint, width = 0): string {
  return `0x${n.toString(16).padStart(width, "0")}`;
}

/** Bytes as space-separated hex pairs. */
export function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * Writes `text` into a fixed-width SCSI ASCII field, left-aligned and padded
 * with spaces (SPC "ASCII data field" rule). Only printable ASCII is allowed:
 * anything else would not read back as the same string.
 */
export function writeAscii(target: Uint8Array, offset: number, width: number, text: string, field: string): void {
  if (text.length > width) {
    throw new InvalidArgumentError(field, text, `is longer than its ${width}-byte field`);
  }
  for (let i = 0; i < width; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x20;
    if (c < 0x20 || c > 0x7e) {
      throw new InvalidArgumentError(field, text, `must be printable ASCII (0x20..0x7e); char ${i} is ${hex(c)}`);
    }
    target[offset + i] = c;
  }
}

/**
 * Reads a fixed-width SCSI ASCII field, dropping trailing spaces and NULs
 * (OV zero-fills identification fields of absent LUNs). Bytes a
 * peer put there are taken as Latin-1 code units, so a hostile value can
 * never make this throw; callers that print it should escape it.
 */
export function readAscii(source: Uint8Array, offset: number, width: number): string {
  let end = offset + width;
  while (end > offset && (source[end - 1] === 0x20 || source[end - 1] === 0x00)) end--;
  let s = "";
  for (let i = offset; i < end; i++) s += String.fromCharCode(source[i] ?? 0);
  return s;
}

/** Escapes non-printable characters so a peer's string cannot break a one-line description. */
export function printable(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c ? s[i] : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return out;
}
