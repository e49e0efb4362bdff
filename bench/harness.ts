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

/** `raw` (the value after `flag`) as an integer ≥ `min`, or an error naming both (bench:storage, bench:net). */
export function intArg(flag: string, raw: string | undefined, min: number): number {
  const v = Number(raw);
  if (raw === undefined || !Number.isInteger(v) || v < min) throw new Error(`${flag} ${raw ?? "(missing)"}: must be an integer ≥ ${min}`);
  return v;
}

/** Options of a timed bench (bench:ring, bench:threads). */
export interface TimedBenchOptions {
  json: boolean;
  /** Seconds timed per case and repetition. */
  seconds: number;
  reps: number;
  /** Seconds of untimed warm-up per case. */
  warmup: number;
}

/**
 * Parses `--json`, `--seconds S`, `--reps N`, `--warmup S` (also as
 * `--flag=value`) and `--help` (prints `help`, exits 0) over `defaults`;
 * an unknown flag or a bad number throws naming it.
 */
export function parseTimedBenchArgs(argv: readonly string[], help: string, defaults: TimedBenchOptions, minSeconds: number): TimedBenchOptions {
  const o: TimedBenchOptions = { ...defaults };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) {
      throw new Error(`${flag} needs a number >= ${min}, got ${v ?? "nothing"}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case "--help":
      case "-h":
        process.stdout.write(help + "\n");
        process.exit(0);
        break;
      case "--json":
        o.json = true;
        break;
      case "--seconds":
        o.seconds = num(flag, value(), minSeconds);
        break;
      case "--reps":
        o.reps = Math.floor(num(flag, value(), 1));
        break;
      case "--warmup":
        o.warmup = num(flag, value(), 0);
        break;
      default:
        throw new Error(`unknown option ${a} (try --help)`);
    }
  }
  return o;
}
