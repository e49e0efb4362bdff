/**
 * What a fuzz target is, and how fast-check runs one.
 *
 * A target pairs an arbitrary (the structure-aware input: a sequence of
 * hostile actions built from the real layouts, then corrupted) with a run
 * that boots a fresh simulation, plays the input, and checks the oracle's
 * properties, throwing `FuzzViolation` when one fails. Each run starts from
 * nothing, so a failing input replays alone from its seed and path and
 * shrinks like any fast-check counterexample.
 */
import fc from "fast-check";
import { UnhandledRejections } from "./oracle.js";

/** Outcomes of the runs, by name ("victim channel failed", "messages dropped"…): what the inputs reached. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(key: string, n = 1): void {
    if (n !== 0) this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  entries(): [string, number][] {
    return [...this.counts.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }
}

/** One target, as its module defines it. */
export interface TargetDefinition<T> {
  /** Short name for `--target` (kebab-case). */
  readonly name: string;
  /** Who is hostile to whom. */
  readonly title: string;
  /** What the inputs corrupt, in one sentence. */
  readonly corrupts: string;
  readonly arbitrary: fc.Arbitrary<T>;
  /** Boots, plays `input`, checks the properties; throws `FuzzViolation` (or anything) on failure. */
  run(input: T, tally: Tally): Promise<void>;
}

export interface CheckParams {
  readonly seed: number;
  readonly numRuns: number;
  /** Replays this counterexample path (with `seed`). */
  readonly path?: string;
  /** Stop at the first failure without shrinking. */
  readonly endOnFailure?: boolean;
  readonly tally?: Tally;
  /** Called after each run of the property; `shrinking` once a failure was found. */
  readonly onRun?: (shrinking: boolean) => void;
  /**
   * Called before each run with the input's number and its printed form:
   * when an input hangs the run (a loop that never yields), the last one
   * called names it.
   */
  readonly onStart?: (index: number, input: () => string) => void;
}

export interface CheckResult {
  readonly failed: boolean;
  /** Inputs tried before the verdict (the failing one included). */
  readonly numRuns: number;
  readonly numShrinks: number;
  readonly seed: number;
  /** fast-check's path of the (shrunk) counterexample; replay with `seed`. */
  readonly path: string | null;
  /** The shrunk counterexample, printed by fast-check. */
  readonly counterexample: string | null;
  /** What the counterexample did. */
  readonly error: string | null;
  /** fast-check's whole report (seed, path, counterexample, error), for test failures. */
  readonly report: string | null;
}

/** A target with the element type hidden: what the registry, the CLI and the tests hold. */
export interface FuzzTarget {
  readonly name: string;
  readonly title: string;
  readonly corrupts: string;
  check(params: CheckParams): Promise<CheckResult>;
}

export function defineTarget<T>(def: TargetDefinition<T>): FuzzTarget {
  return {
    name: def.name,
    title: def.title,
    corrupts: def.corrupts,
    async check(params: CheckParams): Promise<CheckResult> {
      const tally = params.tally ?? new Tally();
      let shrinking = false;
      let index = 0;
      const property = fc.asyncProperty(def.arbitrary, async (input) => {
        params.onStart?.(index++, () => fc.stringify(input));
        const unhandled = new UnhandledRejections().start();
        try {
          await def.run(input, tally);
          await unhandled.check(`${def.name}`);
        } catch (e) {
          shrinking = true;
          // Let a pending unhandled-rejection check detach its listener.
          await unhandled.check(`${def.name}`).catch(() => undefined);
          throw e;
        } finally {
          params.onRun?.(shrinking);
        }
      });
      const details = await fc.check(property, {
        seed: params.seed,
        numRuns: params.numRuns,
        ...(params.path !== undefined ? { path: params.path } : {}),
        ...(params.endOnFailure === true ? { endOnFailure: true } : {}),
        includeErrorInReport: true,
      });
      const err = details.errorInstance;
      return {
        failed: details.failed,
        numRuns: details.numRuns,
        numShrinks: details.numShrinks,
        seed: details.seed,
        path: details.counterexamplePath,
        counterexample: details.counterexample === null ? null : fc.stringify(details.counterexample[0]),
        error: err === null || err === undefined ? null : err instanceof Error ? err.message : String(err),
        report: details.failed ? (fc.defaultReportMessage(details) ?? null) : null,
      };
    },
  };
}
