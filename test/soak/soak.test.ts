/**
 * The soak engine on a small, fixed amount of virtual work (never wall
 * time): mixed storage and network load on two VMs with faults every
 * millisecond or so. Every block read and frame received checks out, no
 * request is lost or completed twice, and the same seed gives the same
 * figures.
 */
import { describe, expect, it } from "vitest";
import type { StorvspDevice } from "../../drivers/storvsc/index.js";
import { SoakEngine } from "../../soak/engine.js";

const MS = 1_000_000;

async function soak(seed: number, steps: number) {
  const engine = new SoakEngine({ seed, meanFaultGapNs: 1 * MS, stepNs: 5 * MS });
  const r = await engine.run((n) => n < steps);
  await engine.sys.dispose();
  return r;
}

describe("soak engine", () => {
  it("under random faults: zero corruptions, zero lost, zero duplicates; every block and frame checked", async () => {
    const r = await soak(4, 12);
    expect(r.silentCorruptions).toBe(0);
    expect(r.corruptionSamples).toEqual([]);
    expect(r.requests.lost).toBe(0);
    expect(r.requests.duplicates).toBe(0);
    expect(r.duplicateFrames).toBe(0);
    expect(r.internalErrors).toBe(0);
    // Real work was done and checked, and faults really happened.
    expect(r.storage.completed).toBeGreaterThan(1000);
    expect(r.network.completed).toBeGreaterThan(1000);
    expect(r.blocksVerified).toBeGreaterThan(1000);
    expect(r.finalScanBlocks).toBe(2 * (8192 + 2048));
    expect(r.framesReceived).toBeGreaterThan(500);
    expect(r.framesReceived + r.framesDroppedBySwitch).toBeLessThanOrEqual(r.framesSent);
    const kinds = Object.keys(r.faults);
    expect(kinds.length).toBeGreaterThanOrEqual(5);
    expect(Object.values(r.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
    // Failures are typed errors with a code.
    for (const k of Object.keys(r.requests.failedByType)) expect(k).toMatch(/^[A-Z_]+$/);
    expect(r.requests.completed + r.requests.failed + r.requests.lost).toBe(r.requests.issued);
  });

  it("is deterministic: the same seed and steps give the same figures", async () => {
    const a = await soak(9, 6);
    const b = await soak(9, 6);
    expect(b).toEqual(a);
  });

  it("the checker sees corruption when there is some: blocks changed behind the guest's back are caught", async () => {
    const engine = new SoakEngine({ seed: 5, stepNs: 5 * MS, meanFaultGapNs: 1000 * MS });
    const r = await engine.run((n) => {
      if (n === 2) {
        // Scribble over 512 blocks of vm1's first disk in the host's backend.
        const storvsp = engine.sys.vms[0]!.server.devices()[0]!.handler as StorvspDevice;
        void storvsp.lunAt(0)!.disk.base.write(1000, new Uint8Array(512 * 512).fill(0x5a));
      }
      return n < 3;
    });
    await engine.sys.dispose();
    expect(r.silentCorruptions).toBeGreaterThan(0);
    expect(r.corruptionSamples[0]).toMatch(/disk 0 lba \d+: generation \d+ is neither/);
  });
});
