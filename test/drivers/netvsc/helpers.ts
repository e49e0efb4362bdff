/** Shared helpers of the netvsc protocol tests. */
import { expect } from "vitest";
import { VmbusSimError } from "../../../core/index.js";

/** "03 00 | 00 01" → bytes; whitespace and `|` separators are ignored. */
export function bytesOf(hex: string): Uint8Array {
  const clean = hex.replace(/[\s|]/g, "");
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error(`bad hex: ${hex}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function hexOf(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** `n` zero bytes as hex. */
export function zeros(n: number): string {
  return "00 ".repeat(n);
}

/** Little-endian u32 as hex bytes. */
export function le32(n: number): string {
  return [0, 8, 16, 24].map((s) => ((n >>> s) & 0xff).toString(16).padStart(2, "0")).join(" ");
}

/** ASCII text as UTF-16LE hex bytes. */
export function utf16(s: string): string {
  return Array.from(s, (c) => `${c.charCodeAt(0).toString(16).padStart(2, "0")} 00`).join(" ");
}

/** Runs `fn` and returns what it threw; fails if it did not throw. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

/** Runs `fn`; anything it throws must be a typed simulation error. */
export function onlyTypedErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof VmbusSimError)) {
      throw new Error(`untyped error escaped: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
  }
}

export function expectTypedError(e: unknown, cls: abstract new (...args: never[]) => VmbusSimError, fields: Record<string, unknown>): void {
  expect(e).toBeInstanceOf(cls);
  expect(e).toMatchObject(fields);
}

/** Writes a little-endian u32 into a copy of `bytes`. */
export function patch32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setUint32(offset, value >>> 0, true);
  return out;
}

export const FC_RUNS = { numRuns: 400 } as const;
export const FUZZ_RUNS = { numRuns: 3000 } as const;
