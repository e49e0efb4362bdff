/**
 * The data path's in-place RNDIS PACKET codec (drivers/netvsc/protocol/
 * rndis-fast.ts) against the object codec it stands in for: the bytes
 * written are the encoder's, and the scan accepts only what the decoder
 * accepts — with the same frame, OOB and VC fields — so that every message
 * it refuses can be left to the decoder for the verdict. Also the frame
 * arena (copies are exact and never overlap) and the table-driven Toeplitz
 * hash (the bit-by-bit one's value for every frame shape).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  IEEE_8021Q_INFO,
  RNDIS_MSG_PACKET,
  decodeRndisMessage,
  encodeRndisMessage,
  encodeRndisMessageInto,
  hashValuePpi,
  rawPpi,
  type RndisPacketMessage,
} from "../../../drivers/netvsc/protocol/index.js";
import { ToeplitzTable, rssHash, rssHashWith } from "../../../drivers/netvsc/host/index.js";
import { FrameArena } from "../../../drivers/netvsc/protocol/frame-arena.js";
import { RndisPacketScan, rndisPacketLength, scanRndisPacket, writeRndisPacketInto } from "../../../drivers/netvsc/protocol/rndis-fast.js";
import { FC_RUNS, FUZZ_RUNS } from "./helpers.js";

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** The decoder's verdict: the PACKET it decodes, or null (another type, or an error). */
function decodedPacket(bytes: Uint8Array): RndisPacketMessage | null {
  try {
    const m = decodeRndisMessage(bytes);
    return m.kind === "packet" ? m : null;
  } catch {
    return null;
  }
}

describe("writeRndisPacketInto", () => {
  it("writes the object encoder's bytes: with and without the hash PPI, padded msg_len, at any offset, over old bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 1600 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 24 }),
        fc.integer({ min: 0, max: 40 }),
        (frame, withHash, hash, pad, at) => {
          const natural = rndisPacketLength(frame.length, withHash);
          const msg: RndisPacketMessage = { kind: "packet", data: frame, ppis: withHash ? [hashValuePpi(hash)] : [], messageLength: natural + pad };
          const expected = new Uint8Array(at + natural + pad + 8).fill(0xa5);
          encodeRndisMessageInto(msg, expected, at);
          const got = new Uint8Array(at + natural + pad + 8).fill(0xa5);
          writeRndisPacketInto(view(got), got, at, natural + pad, frame, 0, frame.length, withHash, hash);
          expect(got).toEqual(expected);
        },
      ),
      FC_RUNS,
    );
  });

  it("takes the frame from the middle of a larger buffer", () => {
    const big = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    const got = new Uint8Array(rndisPacketLength(100, false));
    writeRndisPacketInto(view(got), got, 0, got.length, big, 50, 100, false, 0);
    expect(got).toEqual(encodeRndisMessage({ kind: "packet", data: big.slice(50, 150), ppis: [] }));
  });
});

describe("scanRndisPacket", () => {
  const scan = new RndisPacketScan();

  /** A valid PACKET, then some of its u32 words overwritten. */
  const mutated = fc
    .record({
      frame: fc.uint8Array({ maxLength: 120 }),
      ppis: fc.array(fc.record({ type: fc.constantFrom(IEEE_8021Q_INFO, 8, 1, 0x7fffffff), internal: fc.boolean(), data: fc.uint8Array({ maxLength: 8 }) }), { maxLength: 3 }),
      pad: fc.integer({ min: 0, max: 16 }),
      // Anywhere: any value; in the header (msg_len … reserved): a nudge of the value there.
      edits: fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(0xffffffff), fc.integer({ min: 0, max: 0xffffffff }))), { maxLength: 3 }),
      nudges: fc.array(fc.tuple(fc.integer({ min: 1, max: 10 }), fc.integer({ min: -40, max: 40 })), { maxLength: 3 }),
      cut: fc.integer({ min: 0, max: 24 }),
    })
    .map(({ frame, ppis, pad, edits, nudges, cut }) => {
      const base = encodeRndisMessage({ kind: "packet", data: frame, ppis: ppis.map((p) => rawPpi(p.type, p.data, p.internal)) });
      const bytes = new Uint8Array(base.length + pad);
      bytes.set(base);
      const v = view(bytes);
      for (const [word, delta] of nudges) v.setUint32(4 * word, (v.getUint32(4 * word, true) + delta) >>> 0, true);
      for (const [word, value] of edits) if (4 * word + 4 <= bytes.length) v.setUint32(4 * word, value >>> 0, true);
      return bytes.subarray(0, Math.max(0, bytes.length - (cut > 16 ? cut - 16 : 0)));
    });

  function agrees(bytes: Uint8Array): void {
    const decoded = decodedPacket(bytes);
    const ok = scanRndisPacket(view(bytes), 0, bytes.length, scan);
    // What the scan takes, the decoder takes, with the same fields; what the
    // decoder takes as a PACKET, the scan takes too (else the data path
    // would fall back for nothing).
    expect(ok).toBe(decoded !== null);
    if (decoded === null) return;
    expect(scan.msgLen).toBe(decoded.messageLength);
    expect(bytes.subarray(scan.dataStart, scan.dataStart + scan.dataLength)).toEqual(decoded.data);
    expect(scan.oobDataLength).toBe(decoded.oobDataLength);
    expect(scan.numOobDataElements).toBe(decoded.numOobDataElements);
    expect(scan.vcHandle).toBe(decoded.vcHandle);
    expect(scan.hasVlanPpi).toBe(decoded.ppis.some((p) => p.type === IEEE_8021Q_INFO && !p.internal));
  }

  it("agrees with decodeRndisMessage on valid and mutated PACKETs", () => {
    fc.assert(fc.property(mutated, agrees), FUZZ_RUNS);
  });

  it("agrees with decodeRndisMessage on random bytes that start as a PACKET", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 120 }), fc.integer({ min: 0, max: 130 }), (tail, len) => {
        const bytes = new Uint8Array(8 + tail.length);
        view(bytes).setUint32(0, RNDIS_MSG_PACKET, true);
        view(bytes).setUint32(4, len, true);
        bytes.set(tail, 8);
        agrees(bytes);
      }),
      FUZZ_RUNS,
    );
  });

  it("refuses every other message type (the decoder handles them)", () => {
    const query = encodeRndisMessage({ kind: "query", requestId: 1, oid: 0x10101, deviceVcHandle: 0, info: new Uint8Array(0) });
    expect(scanRndisPacket(view(query), 0, query.length, scan)).toBe(false);
  });

  it("reads a message at an offset: data start is absolute", () => {
    const msg = encodeRndisMessage({ kind: "packet", data: Uint8Array.of(1, 2, 3), ppis: [hashValuePpi(7)] });
    const buf = new Uint8Array(64 + msg.length);
    buf.set(msg, 64);
    expect(scanRndisPacket(view(buf), 64, msg.length, scan)).toBe(true);
    expect(buf.subarray(scan.dataStart, scan.dataStart + scan.dataLength)).toEqual(Uint8Array.of(1, 2, 3));
  });
});

describe("FrameArena", () => {
  it("copies exactly, and no copy changes when later ones are made", () => {
    const arena = new FrameArena();
    const made: { copy: Uint8Array; expected: Uint8Array }[] = [];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(40), (src, off) => {
        const padded = new Uint8Array(off + src.length + 5);
        padded.set(src, off);
        const copy = arena.copy(padded, off, src.length);
        expect(copy).toEqual(src);
        padded.fill(0xee);
        made.push({ copy, expected: src.slice() });
      }),
      FC_RUNS,
    );
    for (const { copy, expected } of made) expect(copy).toEqual(expected);
  });

  it("reserve/view/unreserve: views of filled bytes stay put", () => {
    const arena = new FrameArena();
    const a = arena.reserve(100);
    arena.bytes.fill(1, a, a + 100);
    const first = arena.view(a, 100);
    const b = arena.reserve(50);
    arena.unreserve(b);
    const c = arena.reserve(70_000);
    arena.bytes.fill(2, c, c + 70_000);
    expect(first.every((x) => x === 1)).toBe(true);
    expect(arena.view(c, 70_000).length).toBe(70_000);
  });
});

describe("rssHashWith", () => {
  /** IPv4 / IPv6 / VLAN-tagged / other frames with random addresses, ports, protocol and fragment bits. */
  const frame = fc
    .record({
      kind: fc.constantFrom("v4", "v6", "v4-vlan", "other", "short"),
      proto: fc.constantFrom(6, 17, 1, 132),
      ihl: fc.integer({ min: 5, max: 7 }),
      frag: fc.constantFrom(0, 0, 0x20, 0x01),
      body: fc.uint8Array({ minLength: 0, maxLength: 80 }),
    })
    .map(({ kind, proto, ihl, frag, body }) => {
      const vlan = kind === "v4-vlan" ? 4 : 0;
      const l3 = 14 + vlan;
      const f = new Uint8Array(l3 + body.length);
      f.set(body, l3);
      const type = kind === "v6" ? 0x86dd : kind === "other" ? 0x88b5 : 0x0800;
      if (vlan > 0) {
        f[12] = 0x81;
        f[13] = 0x00;
      }
      f[12 + vlan] = type >> 8;
      f[13 + vlan] = type & 0xff;
      if (kind === "v6" && f.length > l3 + 6) f[l3 + 6] = proto;
      if ((kind === "v4" || kind === "v4-vlan") && f.length > l3 + 9) {
        f[l3] = 0x40 | ihl;
        f[l3 + 6] = frag;
        f[l3 + 9] = proto;
      }
      return kind === "short" ? f.subarray(0, Math.min(f.length, 20)) : f;
    });

  it("is rssHash's value (−1 for its null) for any key", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 40, maxLength: 40 }), fc.array(frame, { minLength: 1, maxLength: 8 }), (key, frames) => {
        const table = new ToeplitzTable(key);
        for (const f of frames) expect(rssHashWith(table, f)).toBe(rssHash(key, f) ?? -1);
      }),
      FC_RUNS,
    );
  });
});
