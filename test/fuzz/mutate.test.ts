/**
 * The corruption primitives of the fuzz targets (fuzz/lib/mutate.ts,
 * packets.ts): a mutation does exactly what it says to the bytes of a real
 * layout, and packets corrupted in the ring are corrupted where the
 * descriptor says they are.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RingBuffer, RingReader, RingWriter, ChannelEndpoint, VMPACKET_DESCRIPTOR, GuestMemory } from "../../core/index.js";
import { VSTOR_PACKET_LAYOUT } from "../../drivers/storvsc/protocol/index.js";
import { applyMutations, arrayFields, layoutFields, mutations, offsetFields, type Field } from "../../fuzz/lib/mutate.js";
import { SecretPages } from "../../fuzz/lib/oracle.js";
import { DESCRIPTOR_FIELDS, mutateInRing, preparePacket, sendCorrupted } from "../../fuzz/lib/packets.js";

const FIELDS: Field[] = [
  { name: "a", offset: 0, size: 4 },
  { name: "b", offset: 4, size: 2 },
  { name: "c", offset: 6, size: 8 },
];

describe("applyMutations", () => {
  it("writes a constant little-endian into the chosen field, masked to its size", () => {
    const out = applyMutations(new Uint8Array(16), FIELDS, [{ kind: "field", field: 1, value: { kind: "const", value: 0x1_2345n } }]);
    expect(Array.from(out.subarray(4, 6))).toEqual([0x45, 0x23]);
    expect(out.subarray(0, 4).every((b) => b === 0)).toBe(true);
  });

  it("picks the field modulo the list, and runtime hints modulo theirs", () => {
    const hints = (f: Field) => (f.name === "a" ? [7n, 9n] : undefined);
    const out = applyMutations(new Uint8Array(16), FIELDS, [{ kind: "field", field: 3, value: { kind: "hint", index: 3 } }], hints);
    expect(new DataView(out.buffer).getUint32(0, true)).toBe(9);
  });

  it("adds a delta to the value already there, wrapping", () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setUint16(4, 0xffff, true);
    const out = applyMutations(bytes, FIELDS, [{ kind: "field", field: 1, value: { kind: "delta", delta: 1 } }]);
    expect(new DataView(out.buffer).getUint16(4, true)).toBe(0);
  });

  it("truncates, extends, replaces, and never changes its input", () => {
    const src = Uint8Array.of(1, 2, 3, 4);
    expect(Array.from(applyMutations(src, FIELDS, [{ kind: "truncate", keep: 2 }]))).toEqual([1, 2]);
    expect(Array.from(applyMutations(src, FIELDS, [{ kind: "extend", bytes: Uint8Array.of(9) }]))).toEqual([1, 2, 3, 4, 9]);
    expect(Array.from(applyMutations(src, FIELDS, [{ kind: "raw", bytes: Uint8Array.of(5) }]))).toEqual([5]);
    expect(Array.from(src)).toEqual([1, 2, 3, 4]);
  });

  it("a field past the end of a short message writes only what fits (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), mutations(4), (bytes, muts) => {
        const out = applyMutations(bytes, FIELDS, muts);
        const resized = muts.some((m) => m.kind === "truncate" || m.kind === "extend" || m.kind === "raw");
        if (!resized) expect(out.length).toBe(bytes.length);
      }),
      { numRuns: 300, seed: 1 },
    );
  });

  it("field lists come from the project's layout tables", () => {
    expect(layoutFields(VSTOR_PACKET_LAYOUT).map((f) => [f.name, f.offset, f.size])).toContainEqual(["status", 8, 4]);
    expect(offsetFields({ child_relid: 8, size: 12 }, { child_relid: 4, missing: 4 })).toEqual([{ name: "child_relid", offset: 8, size: 4 }]);
    expect(arrayFields("pfn", 28, 8, 2).map((f) => f.offset)).toEqual([28, 36]);
  });
});

describe("hostile packets", () => {
  function endpointPair(): { tx: ChannelEndpoint; rx: RingReader; ring: RingBuffer } {
    const a = new RingBuffer(new Uint8Array(new SharedArrayBuffer(4 * 4096)), "a");
    const b = new RingBuffer(new Uint8Array(new SharedArrayBuffer(4 * 4096)), "b");
    a.init();
    b.init();
    const tx = new ChannelEndpoint(a, b, { name: "tx", maxPacketSize: 4096, signalPeer: () => undefined });
    return { tx, rx: new RingReader(a), ring: a };
  }

  const memory = new GuestMemory({ bytes: 64 * 4096 });
  const secrets = SecretPages.plant(memory, 2);

  it("a corruption of len8 lands on the packet's descriptor and the reader refuses it", () => {
    const { tx, rx } = endpointPair();
    tx.send((w) => w.writeInband(1, new Uint8Array(8)), RingWriter.packetTotal(0, 8)).catch(() => undefined);
    const p = preparePacket(
      { shape: { kind: "inband" }, flags: 1, transId: { kind: "const", value: 5n }, payload: new Uint8Array(24), muts: [] },
      { pool: [], secrets, ids: () => [] },
    );
    const len8 = DESCRIPTOR_FIELDS.findIndex((f) => f.name === "len8");
    const r = sendCorrupted(tx, p, [{ kind: "field", field: len8, value: { kind: "const", value: 0xffffn } }]);
    expect(r.corrupted).toBe(true);
    expect(rx.first()?.transIdNumber).toBe(1);
    expect(() => rx.next()).toThrow(/len8=65535/);
  });

  it("in-place corruption wraps around the end of the data area", () => {
    const { ring } = endpointPair();
    const at = ring.dataSize - 8;
    mutateInRing(ring, at, 16, [{ name: "x", offset: 8, size: 4 }], [{ kind: "field", field: 0, value: { kind: "const", value: 0xabcdn } }]);
    expect(ring.data[0]).toBe(0xcd);
    expect(ring.data[1]).toBe(0xab);
  });

  it("GPA ranges never name a secret page, even when the spec asks for it by number", () => {
    const pfn = secrets.pfns[0]!;
    const p = preparePacket(
      {
        shape: { kind: "pagebuffer", entries: [{ byteOffset: 0, byteCount: 16, firstPfn: { kind: "raw", pfn } }] },
        flags: 1,
        transId: { kind: "const", value: 1n },
        payload: new Uint8Array(0),
        muts: [],
      },
      { pool: [], secrets, ids: () => [] },
    );
    const { tx, rx } = endpointPair();
    tx.send(p.write, p.total).catch(() => undefined);
    const got = rx.first()!;
    expect(got.view.getUint32(VMPACKET_DESCRIPTOR.SIZE + 16, true)).toBe(pfn + memory.pageCount);
  });
});
