/**
 * A fuzz campaign: each target for `runs` inputs from one seed. When a target
 * fails, fast-check shrinks the input and the failure is recorded with what
 * replays it (seed and path); the target then goes on from a derived seed
 * for the inputs left, up to `maxFailures` failures, so one campaign can
 * find more than one bug per target.
 */
import { Tally, type FuzzTarget } from "./lib/target.js";

export interface CampaignOptions {
  readonly runs: number;
  readonly seed: number;
  /** Replay one counterexample path (with `seed`); the runs then are the replay. */
  readonly path?: string;
  readonly shrink: boolean;
  readonly maxFailures: number;
  /** Called after every property run of `target`: inputs tried so far, failures so far, shrinking or not. */
  readonly onProgress?: (target: FuzzTarget, inputs: number, failures: number, shrinking: boolean) => void;
}

export interface FailureReport {
  /** The seed and path that replay the (shrunk) counterexample. */
  readonly seed: number;
  readonly path: string | null;
  readonly counterexample: string | null;
  readonly error: string | null;
  readonly shrinks: number;
  /** fast-check's report (seed, path, counterexample, error). */
  readonly report: string | null;
  /** A command line that replays it. */
  readonly replay: string;
}

export interface TargetReport {
  readonly name: string;
  readonly title: string;
  readonly corrupts: string;
  /** Inputs tried (shrinking runs not counted). */
  readonly inputs: number;
  readonly failures: readonly FailureReport[];
  readonly wallMs: number;
  /** What the inputs reached, summed over every run of the property (shrinking included). */
  readonly outcomes: Readonly<Record<string, number>>;
}

/**
 * The seed of the k-th round of a target after k failures (deterministic,
 * far from the first), as a signed 32-bit integer: fast-check reports seeds
 * that way, and the report's seed is what replays.
 */
export function roundSeed(seed: number, round: number): number {
  return round === 0 ? seed : (seed + Math.imul(round, 0x9e3779b1)) | 0;
}

export async function runTarget(target: FuzzTarget, o: CampaignOptions): Promise<TargetReport> {
  const tally = new Tally();
  const failures: FailureReport[] = [];
  const started = performance.now();
  let inputs = 0;
  for (let round = 0; inputs < o.runs && failures.length < o.maxFailures; round++) {
    const seed = roundSeed(o.seed, round);
    let counted = 0;
    const r = await target.check({
      seed,
      numRuns: o.runs - inputs,
      ...(o.path !== undefined ? { path: o.path } : {}),
      endOnFailure: !o.shrink,
      tally,
      onRun: (shrinking) => {
        if (!shrinking) counted++;
        o.onProgress?.(target, inputs + counted, failures.length + (shrinking ? 1 : 0), shrinking);
      },
    });
    inputs += r.failed ? r.numRuns : Math.max(r.numRuns, counted);
    if (!r.failed) break;
    const pathArg = r.path === null ? "" : ` --path ${r.path}`;
    failures.push({
      seed: r.seed,
      path: r.path,
      counterexample: r.counterexample,
      error: r.error,
      shrinks: r.numShrinks,
      report: r.report,
      replay: `npm run fuzz -- --target ${target.name} --seed ${r.seed}${pathArg} --runs 1`,
    });
    // A replayed path is one input: nothing more to try after it.
    if (o.path !== undefined) break;
  }
  return {
    name: target.name,
    title: target.title,
    corrupts: target.corrupts,
    inputs,
    failures,
    wallMs: performance.now() - started,
    outcomes: Object.fromEntries(tally.entries()),
  };
}

export async function runCampaign(targets: readonly FuzzTarget[], o: CampaignOptions): Promise<TargetReport[]> {
  const out: TargetReport[] = [];
  for (const t of targets) out.push(await runTarget(t, o));
  return out;
}
