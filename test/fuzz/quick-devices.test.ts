/**
 * The quick run of the device fuzz targets inside `npm test`: storvsp and
 * netvsp against hostile guests, storvsc and netvsc against hostile hosts,
 * each for a few dozen inputs from a fixed seed. See quick-bus.test.ts.
 */
import { describe, expect, it } from "vitest";
import { findTarget } from "../../fuzz/targets/index.js";
import { QUICK_SEED } from "./quick-seed.js";

const RUNS: readonly [string, number][] = [
  ["storvsp", 80],
  ["storvsc", 80],
  ["netvsp", 40],
  ["netvsc", 60],
];

describe("fuzz quick run: storage and network devices", () => {
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
