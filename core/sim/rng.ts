/**
 * Seeded random numbers (DESIGN.md principle 3 "Deterministic by default").
 *
 * Every random choice in the simulation draws from an `Rng`; nothing in
 * core/ uses the unseeded built-in generator. The generator is xoshiro128** (Blackman & Vigna),
 * 128 bits of state in four u32 words, written here from the published
 * recurrence; the state is expanded from the seed with a splitmix32-style
 * mixer so that nearby seeds (1, 2, 3…) give unrelated streams.
 *
 * `fork(label)` derives a child stream from the parent's *seed* and the
 * label only — not from the parent's current position — so adding a draw in
 * one component does not shift the numbers every other component sees. The
 * flip side: forking the same label twice from one parent gives the same
 * stream; use distinct labels ("vm1/disk0", "vm1/nic0").
 */
import { InvalidArgumentError } from "../errors.js";

export type RngSeed = number | string;

const TWO_POW_32 = 0x1_0000_0000;

/** splitmix32-style finaliser: a bijective avalanche on u32. */
function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad);
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0;
}

/** FNV-1a over the UTF-16 code units of `s`. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function seedWords(seed: RngSeed): [number, number] {
  if (typeof seed === "string") return [hashString(seed), hashString(`~${seed}`)];
  if (!Number.isSafeInteger(seed)) throw new InvalidArgumentError("seed", seed, "must be a safe integer or a string");
  const lo = seed >>> 0;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  return [lo, hi];
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** The initial state: what `fork` derives children from. */
  private readonly key: Uint32Array;

  constructor(seed: RngSeed = 0) {
    const [lo, hi] = seedWords(seed);
    const k = new Uint32Array(4);
    let x = lo ^ mix32(hi);
    for (let i = 0; i < 4; i++) {
      x = mix32(x + i * 0x632be5ab);
      k[i] = x ^ mix32(hi + i);
    }
    this.key = k;
    this.s0 = 0;
    this.s1 = 0;
    this.s2 = 0;
    this.s3 = 0;
    this.load(k);
  }

  /**
   * A generator started from the raw xoshiro128** state words (not all
   * zero). For reproducing a published test vector or a captured state.
   */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const k = Uint32Array.of(s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0);
    if ((k[0]! | k[1]! | k[2]! | k[3]!) === 0) throw new InvalidArgumentError("state", 0, "must not be all zero");
    return Rng.fromKey(k);
  }

  /** An independent stream derived from this generator's seed and `label`. */
  fork(label: string): Rng {
    const h = hashString(label);
    const k = new Uint32Array(4);
    for (let i = 0; i < 4; i++) k[i] = mix32((this.key[i] as number) ^ mix32(h + i * 0x9e3779b9));
    return Rng.fromKey(k);
  }

  private static fromKey(k: Uint32Array): Rng {
    const r = Object.create(Rng.prototype) as Rng;
    (r as unknown as { key: Uint32Array }).key = k;
    r.load(k);
    return r;
  }

  /** A uniformly distributed u32. */
  nextU32(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [min, max] (both inclusive, safe integers). Unbiased (rejection sampling). */
  int(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
      throw new InvalidArgumentError("int range", `[${min}, ${max}]`, "needs safe integers with min ≤ max");
    }
    const range = max - min + 1;
    if (range <= TWO_POW_32) {
      // Largest multiple of range below 2^32: draws above it would favour small results.
      const limit = TWO_POW_32 - (TWO_POW_32 % range);
      let x = this.nextU32();
      while (x >= limit) x = this.nextU32();
      return min + (x % range);
    }
    if (!Number.isSafeInteger(range)) {
      throw new InvalidArgumentError("int range", `[${min}, ${max}]`, "must span at most 2^53 values");
    }
    const limit = 9007199254740992 - (9007199254740992 % range);
    let x: number;
    do {
      x = (this.nextU32() >>> 11) * TWO_POW_32 + this.nextU32(); // 53 bits
    } while (x >= limit);
    return min + (x % range);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }

  /** A uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new InvalidArgumentError("pick: items.length", 0, "must be at least 1");
    return items[this.int(0, items.length - 1)] as T;
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError("bytes: n", n, "must be a non-negative integer");
    return this.fill(new Uint8Array(n));
  }

  /** Fills `out` with random bytes and returns it. */
  fill(out: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= out.length; i += 4) {
      const x = this.nextU32();
      out[i] = x & 0xff;
      out[i + 1] = (x >>> 8) & 0xff;
      out[i + 2] = (x >>> 16) & 0xff;
      out[i + 3] = x >>> 24;
    }
    if (i < out.length) {
      let x = this.nextU32();
      for (; i < out.length; i++, x >>>= 8) out[i] = x & 0xff;
    }
    return out;
  }

  private load(k: Uint32Array): void {
    this.s0 = k[0] as number;
    this.s1 = k[1] as number;
    this.s2 = k[2] as number;
    this.s3 = k[3] as number;
    // xoshiro's all-zero state is a fixed point; never start there.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }
}
