/**
 * A tiny fixed-duration timing harness for the benches (wall clock is fine
 * here: bench/ is not part of the deterministic simulation).
 *
 * A case is a function `run(deadline)` that does whole units of work
 * (packets, copies) until `process.hrtime.bigint()` passes `deadline`, checking the
 * clock only between chunks of work, and returns how many units it did.
 */

/** Runs units of work until the deadline (ns, hrtime) and returns how many it did. */
export type RunFn = (deadlineNs: bigint) => number;

export interface Sample {
  readonly units: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/** Times one run of `run` lasting about `seconds`. */
export function timeOnce(run: RunFn, seconds: number): Sample {
  const t0 = process.hrtime.bigint();
  const units = run(t0 + BigInt(Math.round(seconds * 1e9)));
  const t1 = process.hrtime.bigint();
  const s = Number(t1 - t0) / 1e9;
  return { units, seconds: s, perSecond: units / s };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Formats a rate with thousands separators and no decimals. */
export function fmtRate(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export function fmtFixed(n: number, digits: number): string {
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Left- or right-pads cells into aligned columns. `align[i]` is "l" or "r". */
export function table(header: readonly string[], rows: readonly (readonly string[])[], align: string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (align[i] === "r" ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
