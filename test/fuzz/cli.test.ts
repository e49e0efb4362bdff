/**
 * `npm run fuzz` (fuzz/main.ts), run in-process: the target list, a tiny
 * campaign as JSON and as a table, usage errors with exit code 2.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "../../fuzz/main.js";
import { FUZZ_TARGETS } from "../../fuzz/targets/index.js";

function capture(): { out: () => string; err: () => string } {
  let out = "";
  let err = "";
  vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  return { out: () => out, err: () => err };
}

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

describe("npm run fuzz", () => {
  it("--list names every target and what it corrupts", async () => {
    const c = capture();
    expect(await main(["--list"])).toBe(0);
    for (const t of FUZZ_TARGETS) expect(c.out()).toContain(`${t.name}\n  ${t.title}\n  corrupts: `);
  });

  it("--json prints one object: per target the inputs tried and the failures", async () => {
    const c = capture();
    expect(await main(["--runs", "3", "--seed", "5", "--target", "ring-host-to-guest,chan-guest-to-server", "--json", "--no-progress"])).toBe(0);
    const r = JSON.parse(c.out()) as { seed: number; runs: number; failed: boolean; targets: { name: string; inputs: number; failures: unknown[]; outcomes: Record<string, number> }[] };
    expect(r.seed).toBe(5);
    expect(r.failed).toBe(false);
    expect(r.targets.map((t) => [t.name, t.inputs, t.failures.length])).toEqual([
      ["ring-host-to-guest", 3, 0],
      ["chan-guest-to-server", 3, 0],
    ]);
    expect(c.err()).toBe("");
  });

  it("the table names the seed and every target's inputs and failures", async () => {
    const c = capture();
    expect(await main(["--runs", "2", "--seed", "9", "--target", "storvsp", "--no-progress"])).toBe(0);
    expect(c.out()).toMatch(/^vmbus-sim fuzz: seed 9, 2 inputs per target/);
    expect(c.out()).toMatch(/storvsp\s+2\s+0\s+[\d.]+ s\s+hostile guest → storvsp/);
    expect(c.out()).toMatch(/no failures\n$/);
  });

  it("usage errors exit with 2 and say what is wrong", async () => {
    let c = capture();
    expect(await main(["--runs", "0"])).toBe(2);
    expect(c.err()).toMatch(/--runs must be an integer in \[1,/);
    vi.restoreAllMocks();
    c = capture();
    expect(await main(["--target", "nope"])).toBe(2);
    expect(c.err()).toMatch(/unknown target "nope" \(targets: ring-host-to-guest, /);
    vi.restoreAllMocks();
    c = capture();
    expect(await main(["--path", "1:2"])).toBe(2);
    expect(c.err()).toMatch(/--path replays one counterexample: give --seed and exactly one --target/);
  });

  it("--help exits with 0", async () => {
    const c = capture();
    expect(await main(["--help"])).toBe(0);
    expect(c.out()).toMatch(/Usage: fuzz \[options\]/);
    expect(c.out()).toMatch(/--runs <n>/);
  });
});
