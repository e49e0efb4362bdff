/**
 * The quick run of the bus-level fuzz targets inside `npm test`: the ring in
 * both directions and the VMBus control plane in both directions, each for
 * a few dozen inputs from a fixed seed (CI sees the same inputs every time).
 * A failure shows fast-check's report: the seed, the path and the shrunk
 * counterexample; `npm run fuzz -- --target <name> --seed <seed> --path
 * <path> --runs 1` replays it. The long campaign is `npm run fuzz`.
 */
import { describe, expect, it } from "vitest";
import { findTarget } from "../../fuzz/targets/index.js";
import { QUICK_SEED } from "./quick-seed.js";

const RUNS: readonly [string, number][] = [
  ["ring-host-to-guest", 150],
  ["ring-guest-to-host", 150],
  ["chan-host-to-client", 120],
  ["chan-guest-to-server", 120],
];

describe("fuzz quick run: ring and control plane", () => {
  for (const [name, runs] of RUNS) {
    it(`${name}: ${runs} inputs, seed ${QUICK_SEED}`, async () => {
      const target = findTarget(name);
      if (target === undefined) throw new Error(`no target ${name}`);
      const r = await target.check({ seed: QUICK_SEED, numRuns: runs });
      if (r.failed) throw new Error(r.report ?? r.error ?? "failed");
      expect(r.numRuns).toBe(runs);
    });
  }
});
