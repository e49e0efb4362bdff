/** Tests for splitGpadl and GpadlAssembler (spec §7.7, core/vmbus/messages.ts). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../core/errors.js";
import {
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_HEADER,
  decodeChannelMessage,
  encodeChannelMessage,
  GpadlAssembler,
  splitGpadl,
} from "../../core/vmbus/messages.js";
import type { AssembledGpadl, GpadlBodyMessage, GpadlHeaderMessage } from "../../core/vmbus/messages.js";

const pfnsOf = (n: number, base = 0x1000): number[] => Array.from({ length: n }, (_, i) => base + i * 3);

/** Sends the split through the wire (encode, copy into a slot, decode toHost). */
function overTheWire(msgs: readonly (GpadlHeaderMessage | GpadlBodyMessage)[]): (GpadlHeaderMessage | GpadlBodyMessage)[] {
  return msgs.map((msg) => {
    const bytes = encodeChannelMessage(msg);
    expect(bytes.length).toBeLessThanOrEqual(240);
    const slot = new Uint8Array(240);
    slot.set(bytes);
    const out = decodeChannelMessage(slot, bytes.length, "toHost");
    if (out.msgtype !== CHANNELMSG_GPADL_HEADER && out.msgtype !== CHANNELMSG_GPADL_BODY) throw new Error("wrong type");
    return out;
  });
}

function feed(asm: GpadlAssembler, msgs: readonly (GpadlHeaderMessage | GpadlBodyMessage)[]): (AssembledGpadl | null)[] {
  return msgs.map((msg) => (msg.msgtype === CHANNELMSG_GPADL_HEADER ? asm.acceptHeader(msg) : asm.acceptBody(msg)));
}

describe("splitGpadl (Linux's split: 26 in the header, 28 per body)", () => {
  it.each([
    [1, 1],
    [26, 1],
    [27, 2],
    [54, 2],
    [55, 3],
    [100, 4],
  ])("%i PFNs -> %i message(s)", (n, count) => {
    const pfns = pfnsOf(n);
    const [head, ...bodies] = splitGpadl(0xe1e10, 7, n * 4096, pfns);
    expect(1 + bodies.length).toBe(count);
    expect(head.msgtype).toBe(CHANNELMSG_GPADL_HEADER);
    expect(head.gpadl).toBe(0xe1e10);
    expect(head.childRelid).toBe(7);
    expect(head.rangeCount).toBe(1);
    expect(head.byteOffset).toBe(0);
    expect(head.byteCount).toBe(n * 4096);
    expect(head.rangeBufLen).toBe(8 + 8 * n);
    expect(head.pfns).toEqual(pfns.slice(0, 26));
    bodies.forEach((b, i) => {
      expect(b.msgtype).toBe(CHANNELMSG_GPADL_BODY);
      expect(b.msgNumber).toBe(0);
      expect(b.gpadl).toBe(0xe1e10);
      expect(b.pfns).toEqual(pfns.slice(26 + 28 * i, 26 + 28 * (i + 1)));
      expect(b.pfns.length).toBeGreaterThan(0);
    });
    expect(encodeChannelMessage(head).length).toBe(28 + 8 * Math.min(n, 26));

    const asm = new GpadlAssembler();
    const results = feed(asm, overTheWire([head, ...bodies]));
    // Complete exactly at the last message, with exactly the PFN list.
    expect(results.slice(0, -1).every((r) => r === null)).toBe(true);
    expect(results.at(-1)).toEqual({ gpadl: 0xe1e10, childRelid: 7, byteOffset: 0, byteCount: n * 4096, pfns });
    expect(asm.pendingCount).toBe(0);
  });

  it("reassembles any size exactly (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 0, max: 4095 }), fc.nat(), (n, tail, handle) => {
        // byte_count that is not a page multiple still spans n pages.
        const byteCount = Math.max(1, n * 4096 - tail);
        const pfns = Array.from({ length: n }, (_, i) => (handle + i * 7919) % 2 ** 40);
        const msgs = splitGpadl(handle >>> 0, 1, byteCount, pfns);
        expect(msgs.length).toBe(n <= 26 ? 1 : 1 + Math.ceil((n - 26) / 28));
        const results = feed(new GpadlAssembler(), overTheWire(msgs));
        expect(results.at(-1)?.pfns).toEqual(pfns);
        expect(results.filter((r) => r !== null).length).toBe(1);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses inconsistent arguments", () => {
    expect(() => splitGpadl(1, 1, 0, [])).toThrow(InvalidArgumentError);
    expect(() => splitGpadl(1, 1, 4096, [1, 2])).toThrow(/PFN count=2/);
    expect(() => splitGpadl(1, 1, 4097, [1])).toThrow(/must be 2/);
    const tooMany = pfnsOf(8191);
    expect(() => splitGpadl(1, 1, 8191 * 4096, tooMany)).toThrow(/range_buflen/);
    expect(splitGpadl(1, 1, 8190 * 4096, pfnsOf(8190))[0].rangeBufLen).toBe(0xfff8);
  });
});

describe("GpadlAssembler", () => {
  it("interleaves GPADLs by handle", () => {
    const a = splitGpadl(0xe1e10, 1, 60 * 4096, pfnsOf(60, 0x100));
    const b = splitGpadl(0xe1e11, 2, 40 * 4096, pfnsOf(40, 0x900));
    const asm = new GpadlAssembler();
    expect(asm.acceptHeader(a[0])).toBeNull();
    expect(asm.acceptHeader(b[0])).toBeNull();
    expect(asm.pendingCount).toBe(2);
    expect(asm.progress(0xe1e10)).toEqual({ received: 26, expected: 60 });
    expect(asm.acceptBody(a[1] as GpadlBodyMessage)).toBeNull();
    expect(asm.acceptBody(b[1] as GpadlBodyMessage)?.pfns).toEqual(pfnsOf(40, 0x900));
    expect(asm.acceptBody(a[2] as GpadlBodyMessage)?.pfns).toEqual(pfnsOf(60, 0x100));
    expect(asm.pendingCount).toBe(0);
  });

  it("accepts a split other than Linux's, as long as the totals agree", () => {
    const asm = new GpadlAssembler();
    const head: GpadlHeaderMessage = { ...splitGpadl(5, 1, 3 * 4096, [1, 2, 3])[0], pfns: [1] };
    expect(asm.acceptHeader(head)).toBeNull();
    expect(asm.acceptBody({ msgtype: 9, msgNumber: 1, gpadl: 5, pfns: [2] })).toBeNull();
    expect(asm.acceptBody({ msgtype: 9, msgNumber: 2, gpadl: 5, pfns: [3] })?.pfns).toEqual([1, 2, 3]);
  });

  it("rejects a body for an unknown handle", () => {
    const asm = new GpadlAssembler();
    const e = (() => {
      try {
        asm.acceptBody({ msgtype: 9, msgNumber: 0, gpadl: 0xabc, pfns: [1] });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).field).toBe("gpadl");
    expect((e as Error).message).toContain("gpadl=2748 (0xabc) has no GPADL_HEADER in progress");
  });

  it("rejects a second header for a handle in progress", () => {
    const asm = new GpadlAssembler();
    const [head] = splitGpadl(0xe1e10, 1, 30 * 4096, pfnsOf(30));
    asm.acceptHeader(head);
    expect(() => asm.acceptHeader(head)).toThrow(/gpadl=.*already has a GPADL_HEADER in progress/);
    // A complete one-message GPADL is never pending, so its handle is free again.
    const [small] = splitGpadl(9, 1, 4096, [1]);
    expect(asm.acceptHeader(small)).not.toBeNull();
    expect(asm.acceptHeader(small)).not.toBeNull();
  });

  it("rejects more PFNs than range_buflen announced and drops the GPADL", () => {
    const asm = new GpadlAssembler();
    const [head, body] = splitGpadl(0xe1e10, 1, 30 * 4096, pfnsOf(30));
    asm.acceptHeader(head);
    const tooBig: GpadlBodyMessage = { ...(body as GpadlBodyMessage), pfns: pfnsOf(5) };
    expect(() => asm.acceptBody(tooBig)).toThrow(/pfn count=31 \(0x1f\) exceeds the 30 PFNs range_buflen=248 announced/);
    expect(asm.isPending(0xe1e10)).toBe(false);
    // An extra body after completion is a body for an unknown handle.
    asm.acceptHeader(head);
    expect(asm.acceptBody(body as GpadlBodyMessage)).not.toBeNull();
    expect(() => asm.acceptBody(body as GpadlBodyMessage)).toThrow(/has no GPADL_HEADER in progress/);
  });

  it("rejects an empty body and an inconsistent header that was never decoded", () => {
    const asm = new GpadlAssembler();
    const [head] = splitGpadl(3, 1, 30 * 4096, pfnsOf(30));
    asm.acceptHeader(head);
    expect(() => asm.acceptBody({ msgtype: 9, msgNumber: 0, gpadl: 3, pfns: [] })).toThrow(ProtocolError);
    expect(() => asm.acceptHeader({ ...head, rangeBufLen: 16 })).toThrow(/range_buflen=16/);
    expect(() => asm.acceptHeader({ ...head, rangeCount: 0 })).toThrow(/rangecount=0/);
  });

  it("bounds the GPADLs in progress and forgets them on abort", () => {
    const asm = new GpadlAssembler({ maxInProgress: 2 });
    const h = (handle: number, relid: number): GpadlHeaderMessage => splitGpadl(handle, relid, 30 * 4096, pfnsOf(30))[0];
    asm.acceptHeader(h(1, 10));
    asm.acceptHeader(h(2, 11));
    expect(() => asm.acceptHeader(h(3, 11))).toThrow(/would exceed 2 GPADLs in progress/);
    expect(asm.abortRelid(11)).toBe(1);
    asm.acceptHeader(h(3, 11));
    expect(asm.abort(1)).toBe(true);
    expect(asm.abort(1)).toBe(false);
    expect(asm.pendingCount).toBe(1);
    asm.clear();
    expect(asm.pendingCount).toBe(0);
  });
});
