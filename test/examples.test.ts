/**
 * Every example runs as a user runs it (`node dist/examples/…` after one
 * build), exits 0 and prints what it teaches.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const tmp = mkdtempSync(join(tmpdir(), "vmbus-sim-examples-"));

function example(name: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, "dist", "examples", `${name}.js`), ...args], { cwd: tmp, encoding: "utf8", timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  // tsc exits non-zero while another file is half-written; it still emits, so check the output exists.
  spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], { cwd: root, encoding: "utf8" });
  if (!existsSync(join(root, "dist", "examples", "write-a-driver", "run.js"))) throw new Error("the build did not produce the examples");
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("examples", () => {
  it("ring-walkthrough", () => {
    const r = example("ring-walkthrough");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("guest → host: signal (ring went empty → non-empty)");
  });

  it("echo-pair", () => {
    const r = example("echo-pair");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("OPENCHANNEL_RESULT");
  });

  it("storage-workload: default, a randrw mix, --help, and a bad flag named", () => {
    const r = example("storage-workload", "--ios", "500");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/IOPS\s+\d+/);
    expect(r.stdout).toMatch(/p99=[\d.]+ µs/);
    expect(r.stdout).toContain("HYP:");
    const mix = example("storage-workload", "--pattern", "randrw", "--read-percent", "50", "--bs", "8192", "--qd", "4", "--ios", "300");
    expect(mix.code).toBe(0);
    expect(mix.stdout).toMatch(/MiB\/s\s+[\d.]+/);
    expect(example("storage-workload", "--help").stdout).toContain("--read-percent");
    const bad = example("storage-workload", "--pattern", "sideways");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--pattern sideways");
    expect(example("storage-workload", "--bs", "1000").stderr).toContain("--bs 1000");
  });

  it("threads-storage: the host in a worker thread, every byte checked; --help and a bad flag", () => {
    const r = example("threads-storage", "--ios", "400", "--qd", "8");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("bytes verified  819200 (0 mismatching reads)");
    expect(r.stdout).toMatch(/IOPS\s+\d+/);
    expect(r.stdout).toMatch(/guest→host [1-9]\d* notifies, host→guest [1-9]\d* notifies/);
    expect(example("threads-storage", "--help").stdout).toContain("--disks");
    const bad = example("threads-storage", "--qd", "0");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--qd 0");
    expect(example("threads-storage", "--frobnicate").stderr).toContain("unknown flag --frobnicate");
  });

  it("network-ping: replies with RTTs and a pcap", () => {
    const r = example("network-ping");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/64 bytes from 10\.0\.0\.2: icmp_seq=1 ttl=64 time=[\d.]+ µs/);
    expect(r.stdout).toContain("tshark -r out/ping.pcap");
    expect(existsSync(join(tmp, "out", "ping.pcap"))).toBe(true);
  });

  it("cpu-affinity: the interrupts move to CPU3", () => {
    const r = example("cpu-affinity");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/second half: CPU0=\d+ CPU1=0 CPU2=0 CPU3=[1-9]\d*/);
  });

  it("low-latency: faster, and more host wakeups per request", () => {
    const r = example("low-latency");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/low-latency is [\d.]+× faster/);
    expect(r.stdout).toMatch(/one every 10 µs\s+low-latency\s+[\d.]+ µs\s+1\.000/);
  });

  it("lost-wakeup: the reversed order loses it, the correct order never does", () => {
    const r = example("lost-wakeup");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("1 of 10 interleavings of the reversed order lose the wakeup");
    expect(r.stdout).toContain("10 of 10 interleavings of the correct order wake the writer");
  });

  it("write-a-driver: from the offer to the first completion", () => {
    const r = example("write-a-driver/run");
    expect(r.code).toBe(0);
    for (const step of ["OFFERCHANNEL", "PROBE", "GPADL_HEADER", "OPENCHANNEL relid", "FIRST REQUEST", 'FIRST COMPLETION: VM_PKT_COMP with the same request id, ECHO_OP_RESPONSE status 0: "hello, host"']) {
      expect(r.stdout).toContain(step);
    }
  });
});

/** A bench run as a user runs it (`node dist/bench/…`), with small sizes. */
function bench(name: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, "dist", "bench", `${name}.bench.js`), ...args], { cwd: tmp, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const positive = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v) && v > 0;

describe("benches: --json gives the issue's shape", () => {
  it("bench:storage: 8 cases, the ring ceiling, the floor, and ratios.vs_ring_ceiling_qd1/qd32", () => {
    const r = bench("storage", "--ios", "64", "--reps", "1", "--warmup", "0", "--ring-seconds", "0.05", "--json");
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as {
      ios: number;
      cases: { op: string; qd: number; channels: number; ios: number; simIops: number; wallIosPerSec: number }[];
      ratios: Record<string, unknown>;
      floor: { iosPerSec: unknown; vsRingCeiling: unknown };
      ringRoundTripsPerSec: unknown;
    };
    expect(o.ios).toBe(64);
    expect(o.cases.map((c) => `${c.op} ${c.qd} ${c.channels}`).sort()).toEqual(
      ["randread 1 1", "randread 32 1", "randread 1 4", "randread 32 4", "randwrite 1 1", "randwrite 32 1", "randwrite 1 4", "randwrite 32 4"].sort(),
    );
    for (const c of o.cases) expect(positive(c.simIops) && positive(c.wallIosPerSec) && c.ios === 64).toBe(true);
    expect(Object.keys(o.ratios).sort()).toEqual(["vs_ring_ceiling_qd1", "vs_ring_ceiling_qd32"]);
    expect(Object.values(o.ratios).every(positive)).toBe(true);
    expect([o.ringRoundTripsPerSec, o.floor.iosPerSec, o.floor.vsRingCeiling].every(positive)).toBe(true);
  }, 90_000);

  it("bench:net: 4 cases all delivered, the floor, and ratios.vs_ring_ceiling_64/1514", () => {
    const r = bench("net", "--frames", "100", "--reps", "1", "--warmup", "0", "--json");
    expect(r.code).toBe(0);
    const o = JSON.parse(r.stdout) as {
      cases: { frameBytes: number; queuesRequested: number; frames: number; delivered: number; framesPerWallSec: number }[];
      ratios: Record<string, unknown>;
      floor: { framesPerSec: Record<string, unknown> };
    };
    expect(o.cases.map((c) => `${c.frameBytes} ${c.queuesRequested}`)).toEqual(["64 1", "64 4", "1514 1", "1514 4"]);
    for (const c of o.cases) expect(c.delivered === c.frames && c.frames === 100 && positive(c.framesPerWallSec)).toBe(true);
    expect(Object.keys(o.ratios).sort()).toEqual(["vs_ring_ceiling_1514", "vs_ring_ceiling_64"]);
    expect(Object.values(o.ratios).every(positive)).toBe(true);
    expect([o.floor.framesPerSec["64"], o.floor.framesPerSec["1514"]].every(positive)).toBe(true);
  }, 90_000);

  it("a bad flag is named and exits non-zero", () => {
    const r = bench("storage", "--ios", "7");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--ios 7");
  });
});
