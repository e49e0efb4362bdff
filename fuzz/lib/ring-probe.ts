/**
 * The ring reader and writer on their own, over a private copy of a ring
 * some hostile side has written: whatever the header and the descriptors
 * say, the reader either returns packets that lie inside the ring and its
 * bounce buffer or throws `RingCorruptError`; a writer attaching to the
 * same bytes either writes or throws a typed error. This runs the reader
 * over states the channel layer stops at (it fails the channel on the
 * first corrupt packet), with other bounce-buffer sizes.
 */
import { RingBuffer, RingReader, RingWriter, RING_HEADER_SIZE } from "../../core/index.js";
import { FuzzViolation, typedOnly } from "./oracle.js";

/** A copy of `ring`'s header and data over a fresh SharedArrayBuffer. */
export function copyRing(ring: RingBuffer): RingBuffer {
  const bytes = new Uint8Array(new SharedArrayBuffer(ring.ringSize));
  bytes.set(new Uint8Array(ring.header.buffer, ring.header.byteOffset, RING_HEADER_SIZE), 0);
  bytes.set(ring.data, RING_HEADER_SIZE);
  return new RingBuffer(bytes, `${ring.name} (copy)`);
}

/**
 * Reads up to `maxPackets` packets from a copy of `ring` with a bounce
 * buffer of `maxPacketSize`, checking each packet's geometry; then tries a
 * write. Returns how many packets were read before the end or an error.
 */
export function probeRing(ring: RingBuffer, maxPacketSize: number, maxPackets = 256): number {
  const copy = copyRing(ring);
  const where = `RingReader over ${copy.name} (max packet ${maxPacketSize})`;
  let n = 0;
  const r = typedOnly(where, () => new RingReader(copy, { maxPacketSize }));
  if (r.ok) {
    const reader = r.value;
    typedOnly(where, () => {
      for (let p = reader.first(); p !== null && n < maxPackets; p = reader.next()) {
        n++;
        const len = p.length;
        if (len < 16 || len > maxPacketSize || len + 8 > copy.dataSize) {
          throw new FuzzViolation("ring", `${where}: packet ${n} has length ${len} (bounce buffer ${maxPacketSize}, data ${copy.dataSize})`);
        }
        if (p.dataOffset < 16 || p.dataOffset > len || p.dataLength !== len - p.dataOffset) {
          throw new FuzzViolation("ring", `${where}: packet ${n} has data offset ${p.dataOffset} in a ${len}-byte packet`);
        }
        if (p.data().length !== p.dataLength) throw new FuzzViolation("ring", `${where}: packet ${n} payload view disagrees with its length`);
      }
      reader.close();
    });
  }
  typedOnly(`RingWriter over ${copy.name}`, () => {
    const w = new RingWriter(copy);
    w.writeInband(1, new Uint8Array(40), 1);
    w.commit();
  });
  return n;
}
