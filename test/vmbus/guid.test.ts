/** Tests for core/vmbus/guid.ts (spec §7.3 GUID fields, §9.2 class_id / device_id / modalias). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, VmbusSimError } from "../../core/errors.js";
import { Guid, GuidFormatError, InstanceGuidGenerator, randomGuid } from "../../core/vmbus/guid.js";

const STORVSC = "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f";
// Written by hand: first three fields little-endian, last eight bytes as in the string.
const STORVSC_RAW = [0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, 0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f];

/** xorshift32: a tiny seeded u32 source for the tests. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe("Guid parse / format", () => {
  it("parses the storvsc class GUID into memory order", () => {
    const g = Guid.parse(STORVSC);
    expect([...g.toBytes()]).toEqual(STORVSC_RAW);
    expect(g.toString()).toBe(STORVSC);
    expect(g.toBracedString()).toBe(`{${STORVSC}}`);
    expect(g.modaliasHex()).toBe("d96361baa104294db60572e2ffb1dc7f");
    expect(JSON.stringify({ g })).toBe(`{"g":"${STORVSC}"}`);
  });

  it("accepts braces and any case, and formats lowercase", () => {
    const a = Guid.parse(`{${STORVSC.toUpperCase()}}`);
    const b = Guid.parse("BA6163D9-04a1-4D29-b605-72E2FFB1DC7F");
    expect(a.equals(Guid.parse(STORVSC))).toBe(true);
    expect(b.equals(a)).toBe(true);
    expect(a.toString()).toBe(STORVSC);
  });

  it.each([
    "",
    "ba6163d9-04a1-4d29-b605-72e2ffb1dc7",
    "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f0",
    "ba6163d904a14d29b60572e2ffb1dc7f",
    "{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f",
    "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}",
    "ga6163d9-04a1-4d29-b605-72e2ffb1dc7f",
    " ba6163d9-04a1-4d29-b605-72e2ffb1dc7f",
    "ba6163d9-04a14-d29-b605-72e2ffb1dc7f",
  ])("rejects %j with a GuidFormatError naming the string", (text) => {
    let err: unknown;
    try {
      Guid.parse(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuidFormatError);
    expect(err).toBeInstanceOf(VmbusSimError);
    expect((err as Error).message).toContain(JSON.stringify(text));
    expect(Guid.tryParse(text)).toBeUndefined();
  });

  it("round-trips any 16 bytes through both string forms and modalias", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const g = Guid.fromBytes(bytes);
        expect(Guid.parse(g.toString()).equals(g)).toBe(true);
        expect(Guid.parse(g.toBracedString()).equals(g)).toBe(true);
        expect(Guid.parse(g.toString().toUpperCase()).equals(g)).toBe(true);
        expect(g.modaliasHex()).toBe(Buffer.from(bytes).toString("hex"));
        expect(g.toString()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      }),
    );
  });
});

describe("Guid bytes", () => {
  it("reads and writes at an offset of a Uint8Array and of a DataView with its own byteOffset", () => {
    const g = Guid.parse(STORVSC);
    const buf = new Uint8Array(64);
    g.write(buf, 24);
    expect([...buf.subarray(24, 40)]).toEqual(STORVSC_RAW);
    expect(buf[23]).toBe(0);
    expect(buf[40]).toBe(0);
    expect(Guid.read(buf, 24).equals(g)).toBe(true);

    const view = new DataView(buf.buffer, 8, 40);
    const other = Guid.parse("00112233-4455-6677-8899-aabbccddeeff");
    other.write(view, 4);
    expect([...buf.subarray(12, 28)]).toEqual([
      0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    ]);
    expect(Guid.read(view, 4).equals(other)).toBe(true);
  });

  it("refuses offsets where 16 bytes do not fit", () => {
    const buf = new Uint8Array(20);
    expect(() => Guid.read(buf, 5)).toThrow(InvalidArgumentError);
    expect(() => Guid.read(buf, -1)).toThrow(InvalidArgumentError);
    expect(() => Guid.NIL.write(new DataView(buf.buffer), 4.5)).toThrow(InvalidArgumentError);
    expect(() => Guid.fromBytes(new Uint8Array(15))).toThrow(InvalidArgumentError);
  });

  it("does not share bytes with its source or with toBytes()", () => {
    const src = Uint8Array.from(STORVSC_RAW);
    const g = Guid.fromBytes(src);
    src[0] = 0;
    g.toBytes()[1] = 0;
    expect(g.toString()).toBe(STORVSC);
  });

  it("compares by value", () => {
    expect(Guid.parse(STORVSC).equals(Guid.parse(STORVSC))).toBe(true);
    expect(Guid.parse(STORVSC).equals(Guid.NIL)).toBe(false);
    expect(Guid.NIL.isNil()).toBe(true);
    expect(Guid.NIL.toString()).toBe("00000000-0000-0000-0000-000000000000");
  });
});

describe("instance GUID generator", () => {
  it("is deterministic for a seed and makes version-4 GUIDs", () => {
    const a = new InstanceGuidGenerator(xorshift32(42));
    const b = new InstanceGuidGenerator(xorshift32(42));
    const c = new InstanceGuidGenerator(xorshift32(43));
    const seqA = Array.from({ length: 20 }, () => a.next().toString());
    const seqB = Array.from({ length: 20 }, () => b.next().toString());
    const seqC = Array.from({ length: 20 }, () => c.next().toString());
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    expect(new Set(seqA).size).toBe(20);
    for (const s of seqA) {
      expect(s[14]).toBe("4");
      expect("89ab").toContain(s[19]);
    }
  });

  it("fills the bytes from four little-endian draws", () => {
    const draws = [0x04030201, 0x08070605, 0x0c0b0a09, 0x100f0e0d];
    let i = 0;
    const g = randomGuid(() => draws[i++] ?? 0);
    expect([...g.toBytes()]).toEqual([1, 2, 3, 4, 5, 6, 7, 0x48, 0x89, 10, 11, 12, 13, 14, 15, 16]);
  });

  it("refuses a source that does not give u32 integers", () => {
    expect(() => randomGuid(() => 0.5)).toThrow(InvalidArgumentError);
    expect(() => randomGuid(() => -1)).toThrow(InvalidArgumentError);
    expect(() => randomGuid(() => 2 ** 32)).toThrow(InvalidArgumentError);
  });
});
