#!/usr/bin/env node
/**
 * `vmbus-sim`: the command line (commander 14) — run a scenario, look at a
 * booted system (lsvmbus, sysfs), decode bytes, run the benchmarks.
 *
 * Results go to stdout, progress and errors to stderr. Exit codes: 0 ok,
 * 1 the simulation failed, 2 bad usage or a bad scenario (the message on
 * stderr names what to change).
 */
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { exportTree, lsvmbus } from "../core/index.js";
import { DECODE_KINDS, decodeBytes, parseHex, type DecodeKind } from "./decode.js";
import { UsageError } from "./errors.js";
import { ProgressBar } from "./progress.js";
import { formatBoot, formatResults } from "./report.js";
import { loadScenario } from "./scenario.js";
import { buildAndBoot, bootSummary, resolveSysfsPath, runWorkloads, type BuiltSystem, type BuiltVm } from "./simulate.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist/cli → the package root, where scenarios/ lives. */
const packageRoot = join(here, "..", "..");
export const DEFAULT_SCENARIO = join(packageRoot, "scenarios", "default.json");

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min} (got "${v}")`);
    return n;
  };
}

const out = (s: string): void => {
  process.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
};

function pickVms(built: BuiltSystem, name: string | undefined): BuiltVm[] {
  if (name === undefined) return [...built.vms];
  const b = built.vms.find((v) => v.vm.name === name);
  if (b === undefined) throw new UsageError(`--vm ${name}: no such VM in ${built.scenario.file} (VMs: ${built.vms.map((v) => v.vm.name).join(", ")})`);
  return [b];
}

function ensureDir(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
}

interface RunOpts {
  seed?: number;
  duration?: number;
  trace?: string;
  pcap?: string;
  json?: boolean;
  progress: boolean;
}

async function runCommand(scenarioPath: string | undefined, o: RunOpts): Promise<void> {
  const scenario = loadScenario(scenarioPath ?? DEFAULT_SCENARIO);
  const built = await buildAndBoot(scenario, { ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.pcap !== undefined ? { pcap: o.pcap } : {}), trace: true });
  if (o.json !== true) {
    out(`vmbus-sim run ${scenario.file}${scenario.description !== undefined ? ` — ${scenario.description}` : ""}`);
    out(`== boot (seed ${built.seed}) ==`);
    for (const b of built.vms) out(formatBoot(bootSummary(b)));
  }
  const bar = new ProgressBar(process.stderr, "running", o.progress && process.stderr.isTTY === true);
  let results;
  try {
    results = await runWorkloads(built, { ...(o.duration !== undefined ? { durationMs: o.duration } : {}), onProgress: (f) => bar.update(f) });
  } finally {
    bar.done();
  }
  const tracePath = o.trace ?? join("out", "trace.json");
  ensureDir(tracePath);
  built.trace?.writeFile(tracePath);
  const pcaps: { switch: string; path: string; frames: number }[] = [];
  for (const s of built.switches) {
    if (s.pcap === null) continue;
    ensureDir(s.pcap);
    s.sw.writePcap(s.pcap);
    pcaps.push({ switch: s.name, path: s.pcap, frames: s.sw.capture?.count ?? 0 });
  }
  const files = { trace: tracePath, traceEvents: built.trace?.eventCount ?? 0, pcap: pcaps };
  if (o.json === true) {
    out(JSON.stringify({ ...results, files }, null, 2));
  } else {
    // The boot section was printed before the run; print the rest.
    const text = formatResults(built, results);
    out(text.slice(text.indexOf("== run:")));
    out(`trace: ${tracePath} (${files.traceEvents} events) — open it at https://ui.perfetto.dev`);
    for (const p of pcaps) out(`pcap: ${p.path} (switch ${p.switch}, ${p.frames} frames) — open it in Wireshark or: tshark -r ${p.path}`);
    if (o.pcap !== undefined && built.switches.length === 0) out(`pcap: not written (${o.pcap}): the scenario has no switches`);
  }
  await built.sys.dispose();
  // A lost or twice-completed request is a failure of the simulation, whatever else the run shows.
  const t = results.requests.total;
  if (t.lost > 0 || t.duplicates > 0) {
    process.stderr.write(`vmbus-sim: ${t.lost} request(s) lost and ${t.duplicates} completed twice (both must be 0)\n`);
    process.exitCode = 1;
  }
}

function addExamples(cmd: Command, lines: readonly string[]): Command {
  return cmd.addHelpText("after", `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name("vmbus-sim")
    .description("A deterministic simulator of the Hyper-V VMBus: run scenarios, inspect a booted system, decode VMBus/VSTOR/SCSI/NVSP/RNDIS bytes.")
    .version(readVersion())
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
  addExamples(program, [
    "vmbus-sim run                                  # scenarios/default.json: storage, ping, UDP; out/trace.json, out/sw0.pcap",
    "vmbus-sim run scenarios/storage-only.json --json --no-progress",
    "vmbus-sim lsvmbus scenarios/storage-only.json -vv",
    "vmbus-sim decode 28 00 00 00 10 00 00 00 08 00",
  ]);

  addExamples(
    program
      .command("run")
      .description("build the scenario's system, boot it, run its workloads and actions in virtual time, print the results")
      .argument("[scenario]", "scenario JSON file", undefined)
      .option("--seed <n>", "seed of every random choice (default: the scenario's)", intArg("--seed", 0))
      .option("--duration <ms>", "virtual time the workloads may run, ms (default: the scenario's durationMs)", intArg("--duration", 1))
      .option("--trace <file>", "Perfetto / Chrome trace JSON to write", undefined)
      .option("--pcap <file>", "capture the scenario's first switch to this pcap file (default: each switch's \"pcap\" field)")
      .option("--json", "print one JSON object with the results, nothing else, on stdout")
      .option("--no-progress", "no progress bar on stderr (there is none when stderr is not a terminal anyway)")
      .action(async (scenario: string | undefined, opts: RunOpts) => runCommand(scenario, opts)),
    ["vmbus-sim run", "vmbus-sim run --pcap /tmp/lan.pcap --no-progress", "vmbus-sim run scenarios/storage-only.json", "vmbus-sim run scenarios/faults.json   # every kind of fault; exit 1 if a request is lost", "vmbus-sim run scenarios/storage-only.json --seed 7 --duration 20 --trace /tmp/t.json", "vmbus-sim run --json --no-progress > results.json"],
  );

  addExamples(
    program
      .command("lsvmbus")
      .description("boot the scenario and print lsvmbus for each VM")
      .argument("[scenario]", "scenario JSON file")
      .option("-v, --verbose", "more detail; repeat for more (-vv)", (_: string, prev: number) => prev + 1, 0)
      .option("--vm <name>", "only this VM")
      .action(async (scenario: string | undefined, opts: { verbose: number; vm?: string }) => {
        const built = await buildAndBoot(loadScenario(scenario ?? DEFAULT_SCENARIO));
        const vms = pickVms(built, opts.vm);
        for (const b of vms) {
          if (vms.length > 1) out(`# ${b.vm.name}`);
          out(lsvmbus(b.vm.sysfs, Math.min(2, opts.verbose)));
        }
        await built.sys.dispose();
      }),
    ["vmbus-sim lsvmbus scenarios/storage-only.json", "vmbus-sim lsvmbus -vv --vm vm1"],
  );

  addExamples(
    program
      .command("sysfs")
      .description(
        "boot the scenario and read or write its /sys/bus/vmbus tree.\n" +
          "PATH is absolute (/sys/bus/vmbus/...), relative to /sys/bus/vmbus/devices, or channels/<relid>/<attribute>.\n" +
          "write prints the attribute read back after the write; export writes every VM's tree under DIR/<vm>.",
      )
      .addArgument(new Command().createArgument("<op>", "ls | cat | write | export").choices(["ls", "cat", "write", "export"]))
      .argument("[path]", "sysfs path (or DIR for export)")
      .argument("[value]", "value to write")
      .option("--scenario <file>", "scenario JSON file (default: scenarios/default.json)")
      .option("--vm <name>", "the VM (default: the first)")
      .action(async (op: string, path: string | undefined, value: string | undefined, opts: { scenario?: string; vm?: string }) => {
        const needsPath = op !== "ls";
        if (needsPath && path === undefined) throw new UsageError(`sysfs ${op} needs a ${op === "export" ? "DIR" : "PATH"}`);
        if (op === "write" && value === undefined) throw new UsageError("sysfs write needs a PATH and a VALUE");
        const built = await buildAndBoot(loadScenario(opts.scenario ?? DEFAULT_SCENARIO));
        if (op === "export") {
          for (const b of pickVms(built, opts.vm)) {
            const dir = join(path as string, b.vm.name);
            const r = await exportTree(b.vm.sysfs, dir);
            out(`${b.vm.name}: exported to ${dir}${r.skipped.length > 0 ? ` (${r.skipped.length} skipped)` : ""}`);
          }
        } else {
          const b = pickVms(built, opts.vm ?? built.vms[0]?.vm.name)[0] as BuiltVm;
          const p = resolveSysfsPath(b.vm, path ?? "/sys/bus/vmbus/devices");
          if (op === "ls") out(b.vm.sysfs.ls(p).join("\n"));
          else if (op === "cat") out(b.vm.sysfs.cat(p));
          else {
            await built.sys.run(b.vm.sysfs.write(p, value as string), "sysfs write");
            out(`${p}: ${b.vm.sysfs.cat(p).trimEnd()}`);
          }
        }
        await built.sys.dispose();
      }),
    [
      "vmbus-sim sysfs ls --scenario scenarios/storage-only.json",
      "vmbus-sim sysfs cat channels/1/cpu --scenario scenarios/storage-only.json",
      "vmbus-sim sysfs write channels/1/cpu 2 --scenario scenarios/storage-only.json",
      "vmbus-sim sysfs export /tmp/sys --scenario scenarios/storage-only.json",
    ],
  );

  addExamples(
    program
      .command("decode")
      .description("turn bytes into a readable tree naming each field (the first line says what was assumed when --as is not given)")
      .addHelpText(
        "after",
        [
          "",
          "Without --as, the first of these that fits is assumed:",
          "  vmbus-packet     known VM_PKT_* type, 2 <= offset8 <= len8, len8 x 8 = byte count",
          "  rndis            known RNDIS_MSG_* type, msg_len = byte count",
          "  vstor            48 or 64 bytes, known VSTOR operation, flags = REQUEST_COMPLETION_FLAG",
          "  channel-message  8-240 bytes, msgtype 1-24, zero padding",
          "  nvsp             at most 48 bytes, known NVSP message type",
          "  sense            at least 8 bytes, response code 0x70-0x73",
          "  cdb              6, 10, 12 or 16 bytes, known SCSI opcode",
        ].join("\n"),
      )
      .argument("[hex...]", "bytes in hex; spaces, ':' and 0x prefixes allowed")
      .option("--file <file>", "read the bytes from a binary file instead")
      .addOption(new Option("--as <kind>", "what the bytes are").choices(DECODE_KINDS))
      .action((hexArgs: string[], opts: { file?: string; as?: DecodeKind }) => {
        if (opts.file !== undefined && hexArgs.length > 0) throw new UsageError("give hex bytes or --file, not both");
        let bytes: Uint8Array;
        if (opts.file !== undefined) {
          if (!existsSync(opts.file)) throw new UsageError(`--file ${opts.file}: no such file`);
          bytes = new Uint8Array(readFileSync(opts.file));
          if (bytes.length === 0) throw new UsageError(`--file ${opts.file}: the file is empty`);
        } else bytes = parseHex(hexArgs);
        out(decodeBytes(bytes, opts.as));
      }),
    [
      "vmbus-sim decode 06000000 00000000 03000000 03000000 00000000      # guessed: a channel message",
      "vmbus-sim decode 28 00 00 00 10 00 00 00 08 00 --as cdb",
      "vmbus-sim decode --file packet.bin --as vmbus-packet",
    ],
  );

  addExamples(
    program
      .command("bench")
      .description("run a benchmark (the compiled bench scripts) with the remaining arguments")
      .addArgument(new Command().createArgument("<which>", "ring | storage").choices(["ring", "storage"]))
      .argument("[args...]", "passed to the benchmark (e.g. --json, --ios N)")
      .allowUnknownOption()
      .helpOption("-h, --help", "this help (the benchmark's own: vmbus-sim bench storage -- --help)")
      .action((which: string, args: string[]) => {
        const file = join(here, "..", "bench", `${which}.bench.js`);
        if (!existsSync(file)) throw new UsageError(`${file} not found: build first (npm run build)`);
        const r = spawnSync(process.execPath, [file, ...args], { stdio: "inherit" });
        process.exitCode = r.status ?? 1;
      }),
    ["vmbus-sim bench ring", "vmbus-sim bench storage --ios 1000 --json"],
  );
  return program;
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "0.0.0";
  } catch {
    return "0.0.0";
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version end with exit code 0; every other commander error is a usage error it already printed.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`vmbus-sim: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`vmbus-sim: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env["VMBUS_SIM_DEBUG"] !== undefined && e instanceof Error) process.stderr.write(`${e.stack ?? ""}\n`);
    return 1;
  }
}

// Run when executed — directly or through the npm bin symlink — not when imported.
const invoked = process.argv[1];
if (invoked !== undefined && existsSync(invoked) && realpathSync(invoked) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
