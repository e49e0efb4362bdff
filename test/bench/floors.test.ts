/**
 * The floor/ceiling pair the storage and network benches print. No timing is
 * asserted (the figures depend on the machine); what is checked is that each
 * measurement does its whole unit of work — every request and completion
 * found on its ring, every frame delivered — and yields a rate.
 */
import { describe, expect, it } from "vitest";
import { netCeilingAndFloor, storageCeilingAndFloor } from "../../bench/floors.js";

describe("bench floors", () => {
  it("storage: the ring round trip and the 4 KiB read floor both complete and yield rates", async () => {
    const r = await storageCeilingAndFloor(0.002, 1);
    for (const v of [r.ceiling, r.floor]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
  });

  it.each([64, 1514])("network %i B: the ring and the frame floor both complete and yield rates", async (bytes) => {
    const r = await netCeilingAndFloor(bytes, 0.002, 1);
    for (const v of [r.ceiling, r.floor]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
  });
});
