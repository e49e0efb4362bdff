/**
 * GUIDs as VMBus carries them (spec/vmbus-core.md §7.3 offer `if_type` /
 * `if_instance`, §9.2 sysfs `class_id`, `device_id`, `modalias`, §10 class
 * GUIDs).
 *
 * A `Guid` holds the 16 raw bytes in the order they sit in memory in Linux's
 * `guid_t` and Windows' `GUID`: the first three fields (u32, u16, u16) are
 * little-endian, the last 8 bytes are in string order. So the storvsc class
 * "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f" is the bytes
 * d9 63 61 ba a1 04 29 4d b6 05 72 e2 ff b1 dc 7f. These bytes are what an
 * offer carries at @8/@24 and what `modalias` prints.
 */
import { InvalidArgumentError, VmbusSimError } from "../errors.js";

/** Number of bytes of a GUID in memory. */
export const GUID_SIZE = 16;

/** A string that is not a GUID in the 8-4-4-4-12 form (with or without braces). */
export class GuidFormatError extends VmbusSimError {
  readonly code = "GUID_FORMAT";
  constructor(
    readonly text: string,
    readonly reason: string,
  ) {
    super(`not a GUID: ${JSON.stringify(text)}: ${reason}`);
  }
}

const GUID_RE = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hexByte(b: number | undefined): string {
  // `b` is always defined for indexes 0..15 of a 16-byte array; the fallback
  // only satisfies noUncheckedIndexedAccess.
  return HEX[b ?? 0] ?? "00";
}

/** Byte positions, in memory order, of the hex digit pairs of the string form. */
const STRING_ORDER: readonly number[] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];

function checkRange(length: number, offset: number, what: string): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + GUID_SIZE > length) {
    throw new InvalidArgumentError(
      `${what} offset`,
      offset,
      `a GUID needs ${GUID_SIZE} bytes inside a buffer of ${length} bytes`,
    );
  }
}

/**
 * An immutable GUID. Compare with `equals` (or deep equality: the raw bytes
 * are an ordinary property, so `toEqual` in tests compares them).
 */
export class Guid {
  /** The 16 bytes in memory order. Never handed out: `toBytes` copies. */
  private readonly raw: Uint8Array;

  private constructor(raw: Uint8Array) {
    this.raw = raw;
  }

  /** The all-zero GUID (Linux `guid_null`; terminates `id_table`s). */
  static readonly NIL: Guid = new Guid(new Uint8Array(GUID_SIZE));

  /**
   * Parses "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f" or
   * "{BA6163D9-04A1-4D29-B605-72E2FFB1DC7F}" (braces optional but paired,
   * any case). Throws `GuidFormatError` naming the string.
   */
  static parse(text: string): Guid {
    let body = text;
    const open = body.startsWith("{");
    const close = body.endsWith("}");
    if (open !== close) {
      throw new GuidFormatError(text, "unbalanced braces");
    }
    if (open) body = body.slice(1, -1);
    const m = GUID_RE.exec(body);
    if (m === null) {
      throw new GuidFormatError(text, "expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx of hex digits");
    }
    const digits = body.replace(/-/g, "");
    const raw = new Uint8Array(GUID_SIZE);
    for (let i = 0; i < GUID_SIZE; i++) {
      raw[STRING_ORDER[i] ?? 0] = Number.parseInt(digits.slice(2 * i, 2 * i + 2), 16);
    }
    return new Guid(raw);
  }

  /** Like `parse`, but returns undefined instead of throwing. */
  static tryParse(text: string): Guid | undefined {
    try {
      return Guid.parse(text);
    } catch (e) {
      if (e instanceof GuidFormatError) return undefined;
      throw e;
    }
  }

  /** A GUID from 16 bytes in memory order (copied). */
  static fromBytes(bytes: Uint8Array): Guid {
    if (bytes.length !== GUID_SIZE) {
      throw new InvalidArgumentError("GUID bytes length", bytes.length, `must be ${GUID_SIZE}`);
    }
    return new Guid(bytes.slice());
  }

  /** Reads a GUID (memory order) at `offset` of a byte array or DataView. */
  static read(src: Uint8Array | DataView, offset: number): Guid {
    checkRange(src.byteLength, offset, "GUID read");
    const u8 = src instanceof Uint8Array ? src : new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
    return new Guid(u8.slice(offset, offset + GUID_SIZE));
  }

  /** Writes the 16 bytes (memory order) at `offset` of a byte array or DataView. */
  write(dst: Uint8Array | DataView, offset: number): void {
    checkRange(dst.byteLength, offset, "GUID write");
    const u8 = dst instanceof Uint8Array ? dst : new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    u8.set(this.raw, offset);
  }

  /** A copy of the 16 bytes in memory order. */
  toBytes(): Uint8Array {
    return this.raw.slice();
  }

  /** Byte `i` (0..15) in memory order. */
  byteAt(i: number): number {
    return this.raw[i] ?? 0;
  }

  equals(other: Guid): boolean {
    for (let i = 0; i < GUID_SIZE; i++) {
      if (this.raw[i] !== other.raw[i]) return false;
    }
    return true;
  }

  isNil(): boolean {
    return this.raw.every((b) => b === 0);
  }

  /** Lowercase with dashes, no braces: the sysfs device directory name (`%pUl`). */
  toString(): string {
    let s = "";
    for (let i = 0; i < GUID_SIZE; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
      s += hexByte(this.raw[STRING_ORDER[i] ?? 0]);
    }
    return s;
  }

  /** Lowercase with braces: sysfs `class_id` and `device_id` (`{%pUl}`). */
  toBracedString(): string {
    return `{${this.toString()}}`;
  }

  /**
   * The 16 raw bytes as 32 lowercase hex digits in memory order: the part of
   * sysfs `modalias` after "vmbus:" (§9.2).
   */
  modaliasHex(): string {
    let s = "";
    for (let i = 0; i < GUID_SIZE; i++) s += hexByte(this.raw[i]);
    return s;
  }

  /** JSON (traces, snapshots) shows the string form. */
  toJSON(): string {
    return this.toString();
  }
}

/**
 * A random (RFC 4122 version 4) GUID from a seeded source of u32 values, so
 * that instance GUIDs are the same in every run with the same seed (no
 * the unseeded built-in generator, DESIGN principle 3). Four draws fill the 16 bytes
 * little-endian; then the version nibble (high nibble of the third field,
 * byte 7 in memory order) is set to 4 and the variant bits (top bits of byte
 * 8) to 10.
 */
export function randomGuid(nextU32: () => number): Guid {
  const raw = new Uint8Array(GUID_SIZE);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < 4; i++) {
    const v = nextU32();
    // A source of floats in [0, 1) (like the built-in generator) would silently
    // give all-zero GUIDs; refuse it instead.
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
      throw new InvalidArgumentError("random u32 source value", v, "must be an integer in 0..0xffffffff");
    }
    view.setUint32(4 * i, v, true);
  }
  raw[7] = ((raw[7] ?? 0) & 0x0f) | 0x40;
  raw[8] = ((raw[8] ?? 0) & 0x3f) | 0x80;
  return Guid.fromBytes(raw);
}

/** Hands out instance GUIDs for offered devices from a seeded u32 source. */
export class InstanceGuidGenerator {
  constructor(private readonly nextU32: () => number) {}

  next(): Guid {
    return randomGuid(this.nextU32);
  }
}
