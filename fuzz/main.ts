#!/usr/bin/env node
/**
 * `npm run fuzz`: a long fuzz campaign over every target (or some), with a
 * progress line on stderr and, per target, the inputs tried, the failures,
 * and for each failure its seed, its path and the shrunk counterexample —
 * everything needed to replay it. Exit code 0 when no target failed, 1 when
 * one did, 2 for bad usage.
 *
 * The wall clock here only decides when to redraw the progress line and
 * picks a seed when none is given; what is simulated is virtual time.
 */
import "reflect-metadata";
import { existsSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { runCampaign, type TargetReport } from "./campaign.js";
import type { FuzzTarget } from "./lib/target.js";
import { FUZZ_TARGETS, findTarget } from "./targets/index.js";

/** A bad combination of options (commander reports bad single options itself). */
class UsageError extends Error {}

function intArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}] (got "${v}")`);
    return n;
  };
}

function collectTargets(v: string, prev: string[] | undefined): string[] {
  const names = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (findTarget(n) === undefined) throw new InvalidArgumentError(`unknown target "${n}" (targets: ${FUZZ_TARGETS.map((t) => t.name).join(", ")})`);
  }
  return [...(prev ?? []), ...names];
}

interface Opts {
  runs: number;
  seed?: number;
  target?: string[];
  path?: string;
  json?: boolean;
  shrink: boolean;
  maxFailures: number;
  progress: boolean;
  list?: boolean;
  verbose?: boolean;
}

/** One line on stderr: redrawn in place on a terminal, else printed every 10 s so a CI log shows life. */
class ProgressLine {
  private last = -Infinity;
  private drawn = false;
  private readonly tty: boolean;

  constructor(
    private readonly enabled: boolean,
    private readonly started = performance.now(),
  ) {
    this.tty = process.stderr.isTTY === true;
    // Off a terminal, the first line comes after 10 s: a short run stays quiet.
    if (!this.tty) this.last = started;
  }

  update(text: string, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    const every = this.tty ? 100 : 10_000;
    if (!force && now - this.last < every) return;
    this.last = now;
    const line = `${text} — ${((now - this.started) / 1000).toFixed(0)} s`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      this.drawn = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  clear(): void {
    if (this.drawn) process.stderr.write("\r\x1b[K");
    this.drawn = false;
  }
}

function printText(reports: readonly TargetReport[], seed: number, runs: number, verbose: boolean): void {
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(`vmbus-sim fuzz: seed ${seed}, ${runs} inputs per target`);
  out("");
  const w = Math.max(...reports.map((r) => r.name.length), 6);
  out(`${"target".padEnd(w)}  ${"inputs".padStart(7)}  ${"failures".padStart(8)}  ${"time".padStart(8)}  who attacks whom`);
  for (const r of reports) {
    out(`${r.name.padEnd(w)}  ${String(r.inputs).padStart(7)}  ${String(r.failures.length).padStart(8)}  ${`${(r.wallMs / 1000).toFixed(1)} s`.padStart(8)}  ${r.title}`);
  }
  for (const r of reports) {
    for (const [i, f] of r.failures.entries()) {
      out("");
      out(`FAILED ${r.name} (#${i + 1}): seed ${f.seed}, path ${f.path ?? "-"}, shrunk ${f.shrinks} time(s)`);
      out(`  error: ${(f.error ?? "").split("\n")[0]}`);
      out(`  counterexample: ${f.counterexample ?? "-"}`);
      out(`  replay: ${f.replay}`);
    }
    if (verbose) {
      out("");
      out(`${r.name}: ${r.corrupts}`);
      for (const [k, n] of Object.entries(r.outcomes)) out(`  ${String(n).padStart(8)}  ${k}`);
    }
  }
  const failed = reports.reduce((n, r) => n + r.failures.length, 0);
  out("");
  out(failed === 0 ? "no failures" : `${failed} failure(s)`);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("fuzz")
    .description(
      "Structure-aware fuzzing of both sides of the simulated VMBus (fast-check): hostile hosts against the guest ring reader, VMBus client, storvsc and netvsc; hostile guests against the host ring reader, VMBus server, storvsp and netvsp. Every input is checked for: only typed errors, no access to guest memory outside what was shared, a scheduler that keeps running, other channels and devices still working, nothing completed twice.",
    )
    .option("--runs <n>", "inputs per target", intArg("--runs", 1), 1000)
    .option("--seed <s>", "seed of the campaign (default: from the clock, printed); the same seed replays the same inputs", intArg("--seed", -0x8000_0000, 0xffff_ffff))
    .option("--target <names>", "only these targets (repeat it, or a comma list; default: all); see --list", collectTargets)
    .option("--path <path>", "replay the counterexample at this fast-check path (with --seed and one --target)")
    .option("--no-shrink", "stop at a failure without shrinking it")
    .option("--max-failures <k>", "failures per target before moving on", intArg("--max-failures", 1, 1000), 3)
    .option("--json", "print one JSON object on stdout, nothing else")
    .option("--no-progress", "no progress line on stderr")
    .option("--verbose", "also print what the inputs reached, per target (the outcome counters)")
    .option("--list", "list the targets and what they corrupt, then exit")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText(
      "after",
      `
Examples:
  $ npm run fuzz -- --runs 2000
  $ npm run fuzz -- --runs 20000 --target storvsp,netvsp --seed 42
  $ npm run -s fuzz -- --runs 500 --json > fuzz.json
  $ npm run fuzz -- --target storvsc --seed 3 --path 227:1:0:4 --runs 1     # replay a failure

Exit code: 0 no failure, 1 a target failed, 2 bad usage.`,
    )
    .action(async (o: Opts) => {
      if (o.list === true) {
        for (const t of FUZZ_TARGETS) process.stdout.write(`${t.name}\n  ${t.title}\n  corrupts: ${t.corrupts}\n`);
        return;
      }
      const names = o.target ?? [];
      if (o.path !== undefined && (o.seed === undefined || names.length !== 1)) {
        throw new UsageError("--path replays one counterexample: give --seed and exactly one --target");
      }
      const targets: FuzzTarget[] = names.length === 0 ? [...FUZZ_TARGETS] : names.map((n) => findTarget(n) as FuzzTarget);
      // fast-check takes the seed as a signed 32-bit integer; print it the way its reports will.
      const seed = (o.seed ?? Date.now() ^ (process.pid << 16)) | 0;
      const progress = new ProgressLine(o.progress);
      const reports = await runCampaign(targets, {
        runs: o.runs,
        seed,
        ...(o.path !== undefined ? { path: o.path } : {}),
        shrink: o.shrink,
        maxFailures: o.maxFailures,
        onProgress: (t, inputs, failures, shrinking) => {
          const i = targets.indexOf(t) + 1;
          progress.update(`[${i}/${targets.length}] ${t.name}: ${inputs}/${o.runs} inputs, ${failures} failure(s)${shrinking ? ", shrinking" : ""}`);
        },
      });
      progress.clear();
      if (o.json === true) {
        process.stdout.write(`${JSON.stringify({ seed, runs: o.runs, failed: reports.some((r) => r.failures.length > 0), targets: reports }, null, 2)}\n`);
      } else {
        printText(reports, seed, o.runs, o.verbose === true);
      }
      if (reports.some((r) => r.failures.length > 0)) process.exitCode = 1;
    });
  return program;
}

/** Runs the command line `argv` (without node and the script); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  process.exitCode = undefined;
  try {
    await buildProgram().parseAsync(argv as string[], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    // --help ends with exit code 0; every other commander error is a usage error it already printed.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof UsageError) {
      process.stderr.write(`fuzz: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

// Run when executed, not when imported (the tests import `main`).
const invoked = process.argv[1];
if (invoked !== undefined && existsSync(invoked) && realpathSync(invoked) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
