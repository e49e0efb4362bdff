#!/usr/bin/env node
/**
 * `npm run soak -- --seconds N [--seed S] [--json]`: both VMs run mixed
 * storage and network load with faults injected at random (seeded) for N
 * wall-clock seconds; every block read and every frame received is checked
 * (see engine.ts). Prints requests completed, failed (by error type),
 * silent corruptions, lost requests, duplicated completions and peak
 * memory. Exit code 1 when any of corruptions, lost, duplicates (or an
 * internal simulator error) is not 0; 2 on bad arguments.
 *
 * Wall-clock time decides only how many steps run; each step is a fixed
 * slice of virtual time, so the same seed and the same step count give the
 * same figures (the step count is printed to reproduce a run).
 */
import "reflect-metadata";
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { SoakEngine, type SoakResult } from "./engine.js";

interface Options {
  seconds: number;
  seed: number;
  steps?: number;
  json?: boolean;
  progress: boolean;
}

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (got "${v}")`);
    return n;
  };
}

const MiB = 1024 * 1024;

function failures(r: Readonly<Record<string, number>>): string {
  const e = Object.entries(r).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? "none" : e.map(([k, v]) => `${k}×${v}`).join(", ");
}

function text(r: SoakResult, wallSeconds: number, peak: { rss: number; heap: number }): string {
  const lines = [
    `vmbus-sim soak: seed ${r.seed}, ${wallSeconds.toFixed(1)} s wall clock, ${r.steps} steps, ${r.virtualMs.toFixed(1)} ms of virtual time`,
    "",
    `requests completed        ${r.requests.completed}  (storage ${r.storage.completed}, network ${r.network.completed})`,
    `requests failed (typed)   ${r.requests.failed}  (${failures(r.requests.failedByType)})`,
    `silent corruptions        ${r.silentCorruptions}  (must be 0)`,
    `lost requests             ${r.requests.lost}  (must be 0)`,
    `duplicated completions    ${r.requests.duplicates + r.duplicateFrames}  (must be 0; frames delivered twice: ${r.duplicateFrames})`,
    `peak memory               rss ${(peak.rss / MiB).toFixed(1)} MiB, heap ${(peak.heap / MiB).toFixed(1)} MiB`,
    "",
    `blocks verified           ${r.blocksVerified} on reads, ${r.finalScanBlocks} in the final scan`,
    `frames                    ${r.framesSent} sent, ${r.framesReceived} received intact, ${r.framesDroppedBySwitch} dropped by faulty switch ports (the rest: lost to receive-buffer pressure or in flight at a fault)`,
    `faults injected           ${Object.values(r.faults).reduce((a, b) => a + b, 0)}  (${failures(r.faults)})`,
    `internal errors           ${r.internalErrors}${r.internalErrorSamples.length > 0 ? `: ${r.internalErrorSamples.join(" | ")}` : ""}`,
  ];
  for (const c of r.corruptionSamples) lines.push(`  corruption: ${c}`);
  return lines.join("\n") + "\n";
}

async function soak(o: Options): Promise<number> {
  const engine = new SoakEngine({ seed: o.seed });
  const start = performance.now();
  const limitMs = o.seconds * 1000;
  const peak = { rss: 0, heap: 0 };
  const sample = (): void => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heapUsed);
  };
  const tty = process.stderr.isTTY === true;
  let lastLine = 0;
  const progress = (r: SoakResult): void => {
    sample();
    if (!o.progress) return;
    const now = performance.now();
    if (now - lastLine < (tty ? 250 : 5000)) return;
    lastLine = now;
    const done = o.steps !== undefined ? `step ${r.steps}/${o.steps}` : `${((now - start) / 1000).toFixed(1)}/${o.seconds} s`;
    const line =
      `soak: ${done}, virtual ${r.virtualMs.toFixed(0)} ms, ` +
      `${r.requests.completed} completed, ${r.requests.failed} failed, ${r.silentCorruptions} corrupt, ` +
      `${Object.values(r.faults).reduce((a, b) => a + b, 0)} faults, rss ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`;
    process.stderr.write(tty ? `\r${line}\u001b[K` : `${line}\n`);
  };
  const more = (steps: number): boolean => (o.steps !== undefined ? steps < o.steps : performance.now() - start < limitMs);
  const r = await engine.run(more, progress);
  sample();
  if (o.progress && tty) process.stderr.write("\n");
  const wall = (performance.now() - start) / 1000;
  if (o.json === true) {
    process.stdout.write(`${JSON.stringify({ ...r, wallSeconds: Math.round(wall * 10) / 10, peakMemory: { rssBytes: peak.rss, heapUsedBytes: peak.heap } }, null, 2)}\n`);
  } else {
    process.stdout.write(text(r, wall, peak));
  }
  await engine.sys.dispose();
  const bad = r.silentCorruptions + r.requests.lost + r.requests.duplicates + r.duplicateFrames + r.internalErrors;
  if (bad > 0) process.stderr.write(`soak: FAILED (${r.silentCorruptions} corrupt, ${r.requests.lost} lost, ${r.requests.duplicates + r.duplicateFrames} duplicated, ${r.internalErrors} internal errors)\n`);
  return bad > 0 ? 1 : 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command()
    .name("soak")
    .description(
      "Both VMs run mixed storage and network load with faults injected at random (seeded) for N wall-clock seconds;\n" +
        "every block read is checked against what was written and every frame received against what was sent.\n" +
        "Prints requests completed and failed, silent corruptions, lost requests, duplicated completions and peak memory.\n" +
        "Exit code 1 if corruptions, lost or duplicated requests are not 0.",
    )
    .option("--seconds <n>", "wall-clock seconds to run", intArg("--seconds", 1), 10)
    .option("--seed <n>", "seed of the workload and of the faults", intArg("--seed", 0), 1)
    .option("--steps <n>", "run exactly N steps of 10 ms of virtual time instead of --seconds (reproduces a run)", intArg("--steps", 0))
    .option("--json", "print one JSON object on stdout")
    .option("--no-progress", "no progress line on stderr")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText("after", "\nExamples:\n  $ npm run soak -- --seconds 20\n  $ npm run -s soak -- --seconds 60 --seed 7 --json > soak.json\n  $ npm run soak -- --steps 300 --seed 7          # the same figures every time\n");
  try {
    program.parse(argv as string[], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return soak(program.opts<Options>());
}

process.exitCode = await main(process.argv.slice(2));
