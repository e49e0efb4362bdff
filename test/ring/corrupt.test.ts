/**
 * A corrupt or hostile ring: indices out of range or unaligned, len8 < 2,
 * offset8 > len8, a length beyond what is available. Every case must be a
 * typed RingCorruptError naming the field — never an out-of-bounds access or
 * another kind of exception — and random garbage anywhere in the header or
 * data must never produce anything else either.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { RingCorruptError, RingReader, RingWriter, VmbusSimError } from "../../core/index.js";
import { makeRing, pair } from "./helpers.js";

function corruptWith(mutate: (dv: DataView, hdr: DataView) => void): () => unknown {
  const { ring, w } = pair();
  w.writeInband(1, new Uint8Array(24));
  w.commit();
  const dv = new DataView(ring.data.buffer, ring.data.byteOffset, ring.dataSize);
  const hdr = new DataView(ring.header.buffer, ring.header.byteOffset, 4096);
  mutate(dv, hdr);
  const r = new RingReader(ring);
  return () => r.first();
}

describe("corrupt ring", () => {
  const cases: [string, (dv: DataView, hdr: DataView) => void, RegExp][] = [
    ["write_index beyond the data area", (_d, h) => h.setUint32(0, 5000, true), /write_index=5000 \(0x1388\) is not below the data size 4096/],
    ["write_index unaligned", (_d, h) => h.setUint32(0, 44, true), /write_index=44 \(0x2c\) is not 8-byte aligned/],
    ["len8 < 2", (d) => d.setUint16(4, 1, true), /len8=1 is below 2/],
    ["offset8 < 2", (d) => d.setUint16(2, 1, true), /offset8=1 is below 2/],
    ["offset8 > len8", (d) => d.setUint16(2, 6, true), /offset8=6 is beyond len8 5/],
    ["length beyond what is available", (d) => d.setUint16(4, 9, true), /len8=9 makes 80 bytes with the trailer, beyond the 48 bytes available/],
    ["too few bytes for any packet", (_d, h) => h.setUint32(0, 16, true), /bytes available=16 \(0x10\) is less than the smallest packet/],
    ["packet above the maximum size", (d, h) => {
      h.setUint32(0, 4088, true);
      d.setUint16(4, 600, true);
    }, /len8=600 \(0x258\) makes a 4800-byte packet, above the maximum packet size 4096/],
  ];
  for (const [name, mutate, msg] of cases) {
    it(name, () => {
      const read = corruptWith(mutate);
      expect(read).toThrow(RingCorruptError);
      expect(read).toThrow(msg);
    });
  }

  it("a read_index out of range stops the writer with a typed error", () => {
    const ring = makeRing();
    const w = new RingWriter(ring);
    ring.storeReadIndex(4097);
    // The writer trusts its last validated view of read_index while that
    // alone shows room (a stale index can only under-state the room); the
    // garbage is caught the moment it has to look again.
    expect(w.writeInband(1, new Uint8Array(1500))).toBe(true);
    expect(w.writeInband(2, new Uint8Array(1500))).toBe(true);
    expect(() => w.writeInband(3, new Uint8Array(1500))).toThrow(/read_index=4097 \(0x1001\) is not below the data size/);
    ring.storeReadIndex(0);
    ring.storeWriteIndex(3);
    // Attaching to a ring whose write index is garbage fails up front.
    expect(() => new RingWriter(ring)).toThrow(RingCorruptError);
  });

  it("a peer rewriting the packet after the reader copied it changes nothing we see", () => {
    const { ring, w, r } = pair();
    w.writeInband(77, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    w.commit();
    const p = r.first()!;
    ring.data.fill(0xff, 0, 32); // hostile writer scribbles over the packet
    expect(p.len8).toBe(3);
    expect(Array.from(p.data())).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(p.transIdNumber).toBe(77);
  });

  it("random garbage in header and data gives only typed errors (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
        fc.integer({ min: 0, max: 8191 }),
        fc.integer({ min: 0, max: 8191 }),
        fc.integer({ min: 0, max: 3 }),
        (garbage, wIdx, rIdx, pending) => {
          const ring = makeRing();
          ring.data.set(garbage);
          // Indices: sometimes sane (aligned, in range), sometimes not.
          ring.storeWriteIndex(wIdx & 1 ? wIdx : wIdx & ~7 & 4095);
          ring.storeReadIndex(0);
          ring.storePendingSendSize(pending * 1000);
          let r: RingReader;
          try {
            r = new RingReader(ring, { maxPacketSize: 2048 });
            for (let i = 0, p = r.first(); p && i < 600; i++, p = r.next()) {
              expect(p.length).toBeLessThanOrEqual(2048);
              expect(p.dataOffset).toBeLessThanOrEqual(p.length);
            }
            r.close();
          } catch (e) {
            expect(e).toBeInstanceOf(VmbusSimError);
          }
          try {
            ring.storeReadIndex(rIdx);
            const w = new RingWriter(ring);
            w.writeInband(1, new Uint8Array(100));
            w.commit();
          } catch (e) {
            expect(e).toBeInstanceOf(VmbusSimError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
