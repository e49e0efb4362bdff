/**
 * Hostile VMBus packets (vmbus-core.md §2): built with the project's own
 * ring writer in every packet kind — inband, completion, GPA direct in both
 * layouts, transfer pages, any other type — then corrupted in place, field
 * by field, after the writer published them and before the peer reads them.
 * A real peer can rewrite shared memory at any moment; the reader copies
 * before it validates, so this is the same as writing them corrupt.
 *
 * Ranges name pages of a "pool" the hostile side allocated for I/O (so they
 * are legitimately shared), PFNs outside guest memory, or any value; the
 * secret pages of the oracle are scrubbed out before anything is written.
 */
import fc from "fast-check";
import {
  MAX_PAGE_BUFFER_COUNT,
  RingWriter,
  VMBUS_CHANNEL_PACKET_PAGE_BUFFER as PB,
  VMBUS_PACKET_MPB_ARRAY as MPB,
  VMPACKET_DESCRIPTOR as D,
  VMTRANSFER_PAGE_PACKET_HEADER as XFER,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  copyFromRing,
  copyToRing,
  pagesSpanned,
  type ChannelEndpoint,
  type GpaRange,
  type PageBufferEntry,
  type RingBuffer,
  type XferPageRange,
} from "../../core/index.js";
import { applyMutations, arrayFields, interestingInt, mutations, type Field, type Hints, type Mutation } from "./mutate.js";
import type { SecretPages } from "./oracle.js";

/** `struct vmpacket_descriptor`, fields for corruption. */
export const DESCRIPTOR_FIELDS: readonly Field[] = [
  { name: "type", offset: D.type, size: 2 },
  { name: "offset8", offset: D.offset8, size: 2 },
  { name: "len8", offset: D.len8, size: 2 },
  { name: "flags", offset: D.flags, size: 2 },
  { name: "trans_id", offset: D.trans_id, size: 8 },
];

/** A page of the hostile side's pool (by index), or a raw PFN (maybe outside guest memory). */
export type PfnSpec = { readonly kind: "pool"; readonly index: number } | { readonly kind: "raw"; readonly pfn: number };

export interface RangeSpec {
  readonly byteOffset: number;
  readonly byteCount: number;
  readonly firstPfn: PfnSpec;
}

export type PacketShape =
  | { readonly kind: "inband" }
  | { readonly kind: "completion" }
  /** Any type with the inband layout (offset8 = 2): SYNCH, ESTABLISH_GPADL, CANCEL, unknown numbers… */
  | { readonly kind: "other"; readonly type: number }
  | { readonly kind: "mpb"; readonly ranges: readonly RangeSpec[] }
  | { readonly kind: "pagebuffer"; readonly entries: readonly RangeSpec[] }
  | { readonly kind: "xfer"; readonly setId: number; readonly ranges: readonly XferPageRange[] };

export interface PacketSpec {
  readonly shape: PacketShape;
  readonly flags: number;
  /** Index into the id hints (outstanding requests…) or, when there are none, the id itself. */
  readonly transId: { readonly kind: "hint"; readonly index: number } | { readonly kind: "const"; readonly value: bigint };
  readonly payload: Uint8Array;
  /** Corruption applied in the ring after publishing (descriptor, type-specific header, payload fields). */
  readonly muts: readonly Mutation[];
}

export const pfnSpec: fc.Arbitrary<PfnSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(63).map((index): PfnSpec => ({ kind: "pool", index })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 0xfffff, 0x7fffffff, 0xffffffff, 2 ** 52).map((pfn): PfnSpec => ({ kind: "raw", pfn })) },
);

export const rangeSpec: fc.Arbitrary<RangeSpec> = fc.record({
  byteOffset: fc.oneof(fc.constantFrom(0, 1, 8, 512, 4088, 4095), fc.nat(4095)),
  byteCount: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(1, 8, 512, 4096, 8192, 65536) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 65536 }) }),
  firstPfn: pfnSpec,
});

export const transIdSpec: fc.Arbitrary<PacketSpec["transId"]> = fc.oneof(
  { weight: 3, arbitrary: fc.nat(15).map((index) => ({ kind: "hint" as const, index })) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(0n, 1n, 2n, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_fffdn, 0xffff_ffff_ffff_fffen, 0xffff_ffff_ffff_ffffn, 0x1_0000_0001n)
      .map((value) => ({ kind: "const" as const, value })),
  },
);

export const packetShape: fc.Arbitrary<PacketShape> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<PacketShape>({ kind: "inband" }) },
  { weight: 2, arbitrary: fc.constant<PacketShape>({ kind: "completion" }) },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 0xffff), fc.nat(0xffff)).map((type): PacketShape => ({ kind: "other", type })) },
  { weight: 2, arbitrary: fc.array(rangeSpec, { minLength: 0, maxLength: 3 }).map((ranges): PacketShape => ({ kind: "mpb", ranges })) },
  { weight: 1, arbitrary: fc.array(rangeSpec, { minLength: 0, maxLength: 4 }).map((entries): PacketShape => ({ kind: "pagebuffer", entries })) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        setId: fc.oneof(fc.constant(0xcafe), fc.nat(0xffff)),
        ranges: fc.array(fc.record({ byteCount: interestingInt(0x20000), byteOffset: interestingInt(0x200000) }), { maxLength: 4 }),
      })
      .map(({ setId, ranges }): PacketShape => ({ kind: "xfer", setId, ranges })),
  },
);

/** A hostile packet with a payload from `payload` (default: raw bytes). */
export function packetSpec(payload: fc.Arbitrary<Uint8Array> = fc.uint8Array({ maxLength: 256 })): fc.Arbitrary<PacketSpec> {
  return fc.record({
    shape: packetShape,
    flags: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(2, 3, 0x8000, 0xffff) }),
    transId: transIdSpec,
    payload,
    muts: mutations(3, { rawWeight: 0 }),
  });
}

/** What a hostile side resolves packet specs against. */
export interface PacketContext {
  /** PFNs the hostile side may name (its I/O pool). */
  readonly pool: readonly number[];
  readonly secrets: SecretPages;
  /** Transaction ids that mean something now (outstanding requests, transfer-page ids…). */
  readonly ids: () => readonly bigint[];
  /** Extra hints for payload fields, by name. */
  readonly hints?: Hints;
}

function resolvePfn(s: PfnSpec, ctx: PacketContext): number {
  const pfn = s.kind === "pool" ? (ctx.pool[s.index % Math.max(1, ctx.pool.length)] ?? 0) : s.pfn;
  return ctx.secrets.scrubPfn(pfn);
}

/** A GPA range with a PFN list consistent with its bytes (the writer insists); corruption comes later. */
function resolveRange(r: RangeSpec, ctx: PacketContext): GpaRange {
  const byteOffset = r.byteOffset % 4096;
  const pages = pagesSpanned(byteOffset, r.byteCount);
  const first = resolvePfn(r.firstPfn, ctx);
  const pfns = Array.from({ length: pages }, (_, i) =>
    r.firstPfn.kind === "pool" ? resolvePfn({ kind: "pool", index: r.firstPfn.index + i }, ctx) : ctx.secrets.scrubPfn(first + i),
  );
  return { byteOffset, byteCount: r.byteCount, pfns };
}

function resolveEntry(r: RangeSpec, ctx: PacketContext): PageBufferEntry {
  const offset = r.byteOffset % 4096;
  return { offset, len: Math.min(r.byteCount, 4096 - offset), pfn: resolvePfn(r.firstPfn, ctx) };
}

export function resolveTransId(t: PacketSpec["transId"], ctx: PacketContext): bigint {
  if (t.kind === "const") return t.value;
  const ids = ctx.ids();
  return ids.length === 0 ? BigInt(t.index) : (ids[t.index % ids.length] as bigint);
}

/** The write, its ring footprint and the fields of its headers, for one spec. */
export interface PreparedPacket {
  readonly write: (w: RingWriter) => boolean;
  readonly total: number;
  /** Descriptor, type-specific header and (shifted by the header length) `payloadFields`. */
  readonly fields: readonly Field[];
  readonly transId: bigint;
}

export function preparePacket(spec: PacketSpec, ctx: PacketContext, payloadFields: readonly Field[] = []): PreparedPacket {
  const transId = resolveTransId(spec.transId, ctx);
  const payload = ctx.secrets.scrubBytes(spec.payload);
  const flags = spec.flags;
  const s = spec.shape;
  let ext = 0;
  let extFields: Field[] = [];
  let write: (w: RingWriter) => boolean;
  switch (s.kind) {
    case "inband":
      write = (w) => w.writePacket(VM_PKT_DATA_INBAND, flags, transId, 0, payload);
      break;
    case "completion":
      write = (w) => w.writePacket(VM_PKT_COMP, flags, transId, 0, payload);
      break;
    case "other":
      write = (w) => w.writePacket(s.type, flags, transId, 0, payload);
      break;
    case "mpb": {
      const ranges = s.ranges.map((r) => resolveRange(r, ctx));
      ext = 8;
      let o: number = MPB.range;
      extFields = [
        { name: "reserved", offset: MPB.reserved, size: 4 },
        { name: "rangecount", offset: MPB.rangecount, size: 4 },
      ];
      ranges.forEach((r, i) => {
        extFields.push({ name: `range[${i}].byte_count`, offset: o, size: 4 }, { name: `range[${i}].byte_offset`, offset: o + 4, size: 4 });
        extFields.push(...arrayFields(`range[${i}].pfn`, o + 8, 8, Math.min(r.pfns.length, 4)));
        o += 8 + 8 * r.pfns.length;
        ext += 8 + 8 * r.pfns.length;
      });
      write = (w) => w.writeMpb(transId, ranges, payload, flags);
      break;
    }
    case "pagebuffer": {
      const entries = s.entries.slice(0, MAX_PAGE_BUFFER_COUNT).map((r) => resolveEntry(r, ctx));
      ext = 8 + PB.RANGE_SIZE * entries.length;
      extFields = [{ name: "rangecount", offset: PB.rangecount, size: 4 }];
      entries.forEach((_, i) => {
        const o = PB.range + i * PB.RANGE_SIZE;
        extFields.push(
          { name: `range[${i}].byte_count`, offset: o + PB.range_len, size: 4 },
          { name: `range[${i}].byte_offset`, offset: o + PB.range_offset, size: 4 },
          { name: `range[${i}].pfn`, offset: o + PB.range_pfn, size: 8 },
        );
      });
      write = (w) => w.writePageBuffer(transId, entries, payload, flags);
      break;
    }
    case "xfer": {
      ext = 8 + XFER.RANGE_SIZE * s.ranges.length;
      extFields = [
        { name: "xfer_pageset_id", offset: XFER.xfer_pageset_id, size: 2 },
        { name: "sender_owns_set", offset: XFER.sender_owns_set, size: 1 },
        { name: "range_cnt", offset: XFER.range_cnt, size: 4 },
      ];
      s.ranges.forEach((_, i) => {
        const o = XFER.ranges + i * XFER.RANGE_SIZE;
        extFields.push({ name: `range[${i}].byte_count`, offset: o, size: 4 }, { name: `range[${i}].byte_offset`, offset: o + 4, size: 4 });
      });
      write = (w) => w.writeXferPages(transId, s.setId, s.ranges, payload, flags);
      break;
    }
  }
  const hdr = D.SIZE + ext;
  const fields = [...DESCRIPTOR_FIELDS, ...extFields, ...payloadFields.map((f) => ({ ...f, offset: f.offset + hdr }))];
  return { write, total: RingWriter.packetTotal(ext, payload.length), fields, transId };
}

/**
 * Applies field and byte mutations to the `length` ring bytes at `start`
 * (wrapping), in place. Length-changing mutations make no sense inside a
 * ring and are skipped.
 */
export function mutateInRing(ring: RingBuffer, start: number, length: number, fields: readonly Field[], muts: readonly Mutation[], hints?: Hints): void {
  const inPlace = muts.filter((m) => m.kind === "field" || m.kind === "byte");
  if (inPlace.length === 0 || length <= 0) return;
  const dsize = ring.dataSize;
  const at = ((start % dsize) + dsize) % dsize & ~7;
  const n = Math.min(length, dsize);
  const copy = new Uint8Array(n);
  copyFromRing(ring, at, copy, 0, n);
  const out = applyMutations(copy, fields, inPlace, hints);
  copyToRing(ring, at, out, 0, Math.min(out.length, n));
}

/**
 * Sends a prepared packet through `ep` (queued behind blocked senders like
 * any packet) and, when it went into the ring at once, corrupts it in place
 * before anyone reads it. Returns the send's promise (it may reject with a
 * typed ChannelClosedError) and whether the corruption happened.
 */
export function sendCorrupted(ep: ChannelEndpoint, p: PreparedPacket, muts: readonly Mutation[], hints?: Hints): { sent: Promise<void>; corrupted: boolean } {
  const ring = ep.writer.ring;
  const before = ring.loadWriteIndex();
  let sent: Promise<void>;
  try {
    sent = ep.send(p.write, p.total);
  } catch (e) {
    sent = Promise.reject(e);
  }
  sent.catch(() => undefined);
  const after = ring.loadWriteIndex();
  const corrupted = after !== before && muts.length > 0;
  if (corrupted) mutateInRing(ring, before, p.total - 8, p.fields, muts, hints);
  return { sent, corrupted };
}
