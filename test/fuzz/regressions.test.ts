/**
 * Inputs a fuzz campaign once failed on, replayed by seed and path. Each
 * stays here after its fix so the failure cannot come back unnoticed.
 * A replay reproduces the same input only while the target's generators
 * are unchanged; the direct checks below pin the fix itself.
 */
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../core/index.js";
import { MAX_LOGICAL_BLOCK_LENGTH, parseReadCapacity10Data, parseReadCapacity16Data } from "../../drivers/storvsc/index.js";
import { findTarget } from "../../fuzz/targets/index.js";

// Campaign of 2026-12-06 (`--runs 2000 --seed 20261206`): a hostile host
// answered READ CAPACITY with a 2 GiB logical block length; the guest took
// it and the first read allocated count × 2 GiB, a RangeError (untyped).
const REPLAYS: readonly { target: string; seed: number; path: string }[] = [
  { target: "storvsc", seed: 20261206, path: "828:2:1:6:5:5:5:5:6:5" },
  { target: "storvsc", seed: -1620270329, path: "267:1:1:1:1:2:3:5:5:6:6:8:7:7:7:7:7:7:7:7:7:7" },
  { target: "storvsc", seed: 1034165432, path: "182:1:1:4:6:6:7:8:8:9:9:8:8:8:8:8:8:8:8:8:8" },
  // `--runs 3000 --seed 77`: a forged failing OPENCHANNEL_RESULT; the guest's
  // GPADL teardown that followed got no answer and the open hung. Control
  // requests now time out (VmbusClient.controlTimeoutNs).
  {
    target: "chan-host-to-client",
    seed: 77,
    path: "871:5:3:6:7:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:6:7:8:7:7:7:8:8:8:8:8:6:6:6:6",
  },
];

describe("fuzz regressions", () => {
  for (const r of REPLAYS) {
    it(`${r.target} seed ${r.seed} path ${r.path} passes`, async () => {
      const target = findTarget(r.target);
      if (target === undefined) throw new Error(`no target ${r.target}`);
      const res = await target.check({ seed: r.seed, numRuns: 1, path: r.path });
      if (res.failed) throw new Error(res.report ?? res.error ?? "failed");
      expect(res.failed).toBe(false);
    });
  }

  it("READ CAPACITY data with a block length above 64 KiB is a ProtocolError naming the field", () => {
    const rc10 = new Uint8Array(8);
    const v10 = new DataView(rc10.buffer);
    v10.setUint32(0, 7, false);
    v10.setUint32(4, 0x80000000, false);
    expect(() => parseReadCapacity10Data(rc10)).toThrow(ProtocolError);
    expect(() => parseReadCapacity10Data(rc10)).toThrow(/LOGICAL BLOCK LENGTH.*2147483648/);
    const rc16 = new Uint8Array(32);
    const v16 = new DataView(rc16.buffer);
    v16.setBigUint64(0, 7n, false);
    v16.setUint32(8, MAX_LOGICAL_BLOCK_LENGTH * 2, false);
    expect(() => parseReadCapacity16Data(rc16)).toThrow(ProtocolError);
    // The largest accepted length still parses.
    v16.setUint32(8, MAX_LOGICAL_BLOCK_LENGTH, false);
    expect(parseReadCapacity16Data(rc16).blockLength).toBe(MAX_LOGICAL_BLOCK_LENGTH);
  });
});
