import { RingBuffer, RingReader, RingWriter } from "../../core/index.js";

/** A fresh ring of `pages` pages (one header page + data) over its own SharedArrayBuffer. */
export function makeRing(pages = 2, name = "test ring"): RingBuffer {
  const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(pages * 4096)), name);
  ring.init();
  return ring;
}

export function pair(pages = 2, maxPacketSize = 4096): { ring: RingBuffer; w: RingWriter; r: RingReader } {
  const ring = makeRing(pages);
  return { ring, w: new RingWriter(ring), r: new RingReader(ring, { maxPacketSize }) };
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Bytes from a hex string with spaces: "06 00 02 00". */
export function bytes(s: string): Uint8Array {
  const t = s.trim().split(/\s+/).filter(Boolean);
  return Uint8Array.from(t, (x) => parseInt(x, 16));
}
