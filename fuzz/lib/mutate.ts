/**
 * Structure-aware corruption of byte layouts.
 *
 * A fuzz input starts as a well-formed message built by the project's own
 * encoders (so it gets past the first length and type checks and reaches
 * the deep code), then a few `Mutation`s corrupt chosen fields of the real
 * layout — a length, an offset, a count, a type, an index, an id — or cut,
 * extend or replace the bytes. Mutations name a field by its index in the
 * layout's field list, resolved when applied: the same mutation list works
 * for every message kind, and shrinks towards "no mutation" and "field 0".
 *
 * Values are chosen among the boundaries that break arithmetic (0, 1, the
 * maximum, the sign bit, page sizes, ±1 around them), "hints" (values that
 * mean something in the running simulation — a live relid, an outstanding
 * request id, a GPADL handle — known only when the message is sent), an
 * offset from the value already there, or any 64-bit value.
 */
import fc from "fast-check";

/** One field of a layout: absolute byte offset and size. */
export interface Field {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

/** A `{ name: { offset, size } }` table, the shape of the drivers' `*_LAYOUT` constants. */
export type SizedLayout = Readonly<Record<string, { readonly offset: number; readonly size: number }>>;

/** Fields of a `*_LAYOUT` table with sizes (VSTOR, SRB, NVSP, RNDIS). */
export function layoutFields(layout: SizedLayout, prefix = ""): Field[] {
  return Object.entries(layout).map(([name, f]) => ({ name: prefix + name, offset: f.offset, size: f.size }));
}

/**
 * Fields of an offsets-only table (the VMBus channel message layouts), with
 * the size of each named field given beside it; names without a size
 * (`size`, unions' aliases) are left out.
 */
export function offsetFields(layout: Readonly<Record<string, number>>, sizes: Readonly<Record<string, number>>): Field[] {
  const out: Field[] = [];
  for (const [name, size] of Object.entries(sizes)) {
    const offset = layout[name];
    if (offset !== undefined) out.push({ name, offset, size });
  }
  return out;
}

/** `count` consecutive fields `name[0..count)` of `size` bytes from `offset` (PFN lists, ranges). */
export function arrayFields(name: string, offset: number, size: number, count: number): Field[] {
  return Array.from({ length: count }, (_, i) => ({ name: `${name}[${i}]`, offset: offset + i * size, size }));
}

export type FieldValue =
  /** A fixed value, masked to the field's size when written. */
  | { readonly kind: "const"; readonly value: bigint }
  /** The n-th runtime hint for this field (a live relid, an outstanding id…), modulo their number. */
  | { readonly kind: "hint"; readonly index: number }
  /** The value already there plus `delta` (wrapping): off-by-one and off-by-a-page bugs. */
  | { readonly kind: "delta"; readonly delta: number };

export type Mutation =
  /** Overwrite field `field` (index into the field list, modulo its length). */
  | { readonly kind: "field"; readonly field: number; readonly value: FieldValue }
  /** Overwrite one byte at `at` (modulo the length). */
  | { readonly kind: "byte"; readonly at: number; readonly value: number }
  /** Keep only the first `keep` bytes (modulo length + 1). */
  | { readonly kind: "truncate"; readonly keep: number }
  /** Append bytes. */
  | { readonly kind: "extend"; readonly bytes: Uint8Array }
  /** Replace the whole message by raw bytes. */
  | { readonly kind: "raw"; readonly bytes: Uint8Array };

const BOUNDARIES: readonly bigint[] = [
  0n, 1n, 2n, 3n, 4n, 7n, 8n, 9n, 12n, 15n, 16n, 17n, 24n, 31n, 32n, 63n, 64n, 127n, 128n, 255n, 256n,
  511n, 512n, 4095n, 4096n, 4097n, 8192n, 0x7fffn, 0x8000n, 0xfffen, 0xffffn, 0x10000n, 0x7fff_ffffn,
  0x8000_0000n, 0xffff_fffen, 0xffff_ffffn, 0x1_0000_0000n, 0x1f_ffff_ffff_ffffn, 0x20_0000_0000_0000n,
  0x7fff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, 0xffff_ffff_ffff_fffen, 0xffff_ffff_ffff_ffffn,
];

/** A u64 biased towards the values that break length and index arithmetic. */
export const interestingU64: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...BOUNDARIES) },
  { weight: 2, arbitrary: fc.bigInt({ min: 0n, max: 0xffffn }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }) },
);

/** A non-negative integer biased towards boundaries, at most `max`. */
export function interestingInt(max: number): fc.Arbitrary<number> {
  const consts = [0, 1, 2, 7, 8, 15, 16, 255, 256, 4095, 4096, 65535, 65536, 0x7fffffff, 0xffffffff].filter((v) => v <= max);
  return fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...consts, max) }, { weight: 3, arbitrary: fc.integer({ min: 0, max }) });
}

export const fieldValue: fc.Arbitrary<FieldValue> = fc.oneof(
  { weight: 4, arbitrary: interestingU64.map((value): FieldValue => ({ kind: "const", value })) },
  { weight: 3, arbitrary: fc.nat(15).map((index): FieldValue => ({ kind: "hint", index })) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(-4096, -8, -1, 1, 8, 4096, 65536).map((delta): FieldValue => ({ kind: "delta", delta })),
  },
);

export interface MutationOptions {
  /** Largest appended / raw byte string (default 64). */
  readonly maxBytes?: number;
  /** Weight of "no mutation at all" against 3 for "some" (default 1). */
  readonly noneWeight?: number;
  /** Relative weight of whole-message raw replacement (default 1; 0 disables it). */
  readonly rawWeight?: number;
}

export function mutationArb(options: MutationOptions = {}): fc.Arbitrary<Mutation> {
  const maxBytes = options.maxBytes ?? 64;
  const arbs: fc.WeightedArbitrary<Mutation>[] = [
    { weight: 8, arbitrary: fc.record({ kind: fc.constant("field" as const), field: fc.nat(63), value: fieldValue }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("byte" as const), at: fc.nat(1 << 16), value: fc.nat(255) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat(1 << 16) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("extend" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: maxBytes }) }) },
  ];
  const raw = options.rawWeight ?? 1;
  if (raw > 0) arbs.push({ weight: raw, arbitrary: fc.record({ kind: fc.constant("raw" as const), bytes: fc.uint8Array({ maxLength: maxBytes }) }) });
  return fc.oneof(...arbs);
}

/**
 * Up to `max` mutations; an empty list (a well-formed message) comes often
 * on purpose: valid messages in a hostile order or context are inputs too.
 */
export function mutations(max = 3, options: MutationOptions = {}): fc.Arbitrary<Mutation[]> {
  return fc.oneof(
    { weight: options.noneWeight ?? 1, arbitrary: fc.constant([] as Mutation[]) },
    { weight: 3, arbitrary: fc.array(mutationArb(options), { minLength: 1, maxLength: max }) },
  );
}

/** Values that mean something at run time, by field name (e.g. `child_relid` → the live relids). */
export type Hints = (field: Field) => readonly bigint[] | undefined;

function readLe(bytes: Uint8Array, offset: number, size: number): bigint {
  let v = 0n;
  for (let i = Math.min(size, 8) - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i] ?? 0);
  return v;
}

function writeLe(bytes: Uint8Array, offset: number, size: number, value: bigint): void {
  const n = Math.min(size, bytes.length - offset);
  let v = value;
  for (let i = 0; i < n; i++) {
    // Past 8 bytes (GUIDs, CDB and sense areas) a value fills with its top byte's sign: 0 or 0xff.
    bytes[offset + i] = i < 8 ? Number(v & 0xffn) : value >> 63n !== 0n ? 0xff : 0;
    if (i < 8) v >>= 8n;
  }
}

function fieldMask(size: number): bigint {
  return (1n << BigInt(8 * Math.min(size, 8))) - 1n;
}

/**
 * Applies `muts` to a copy of `bytes`. Field mutations on a field that lies
 * (partly) past the end of the message write what fits; with no fields,
 * they fall back to a byte write.
 */
export function applyMutations(bytes: Uint8Array, fields: readonly Field[], muts: readonly Mutation[], hints?: Hints): Uint8Array {
  let out = bytes.slice();
  for (const m of muts) {
    switch (m.kind) {
      case "field": {
        const f = fields.length === 0 ? undefined : fields[m.field % fields.length];
        if (f === undefined || f.offset >= out.length) {
          const i = out.length === 0 ? -1 : m.field % out.length;
          if (i >= 0) out[i] = (out[i] ?? 0) ^ 0xff;
          break;
        }
        const mask = fieldMask(f.size);
        let value: bigint;
        if (m.value.kind === "const") value = m.value.value;
        else if (m.value.kind === "delta") value = (readLe(out, f.offset, f.size) + BigInt(m.value.delta)) & mask;
        else {
          const h = hints?.(f);
          value = h === undefined || h.length === 0 ? BigInt(m.value.index) : (h[m.value.index % h.length] as bigint);
        }
        writeLe(out, f.offset, f.size, value & (f.size > 8 ? (1n << 64n) - 1n : mask));
        break;
      }
      case "byte":
        if (out.length > 0) out[m.at % out.length] = m.value;
        break;
      case "truncate":
        out = out.slice(0, m.keep % (out.length + 1));
        break;
      case "extend": {
        const n = new Uint8Array(out.length + m.bytes.length);
        n.set(out);
        n.set(m.bytes, out.length);
        out = n;
        break;
      }
      case "raw":
        out = m.bytes.slice();
        break;
    }
  }
  return out;
}

/** A u32 little-endian at `offset` of `bytes` (0 past the end). */
export function u32At(bytes: Uint8Array, offset: number): number {
  return Number(readLe(bytes, offset, 4));
}
