/**
 * "SYNCHRONIZE CACHE flushes it" (issue 5, the raw file backend): every
 * SYNCHRONIZE CACHE(10) and (16) that reaches the image through storvsp
 * costs exactly one fsync of the image's descriptor, and plain writes cost
 * none. `node:fs` is wrapped in this file only, so the test sees the real
 * system call: a `flush` that stopped calling fsyncSync (or called it on
 * another descriptor) fails here even if it still counted itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildSynchronizeCacheCdb, buildWriteCdb } from "../../../../drivers/storvsc/protocol/index.js";
import { FileDiskBackend } from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, pattern } from "./harness.js";

const fsyncCalls = vi.hoisted(() => [] as number[]);

vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  return {
    ...real,
    fsyncSync: (fd: number): void => {
      fsyncCalls.push(fd);
      real.fsyncSync(fd);
    },
  };
});

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "storvsp-flush-"));
  fsyncCalls.length = 0;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("SYNCHRONIZE CACHE on a file image", () => {
  it("fsyncs the image once per SYNCHRONIZE CACHE(10)/(16) through storvsp, never for a plain write", async () => {
    const path = join(dir, "flush.img");
    const g = await bootStorvsp({ disks: [{ kind: "file", path, sizeBytes: 1 << 20 }] });
    await g.handshake();
    const lun = g.vsp.lunAt(0)!;
    const base = lun.disk.base;
    expect(base).toBeInstanceOf(FileDiskBackend);
    const file = base as FileDiskBackend;
    expect(file.flushes).toBe(0);
    expect(fsyncCalls).toEqual([]);

    // Plain writes (no FUA) reach the file but do not flush it.
    for (let i = 0; i < 3; i++) {
      const w = await g.srb(buildWriteCdb(10, BigInt(8 * i), 8), { out: pattern(4096, i + 1) });
      expect(w.srb.srbStatus).toBe(0x01);
    }
    expect(lun.stats.writes).toBe(3);
    expect(file.flushes).toBe(0);
    expect(fsyncCalls).toEqual([]);

    const s10 = await g.srb(buildSynchronizeCacheCdb(10));
    expect(s10.srb.srbStatus).toBe(0x01);
    expect(s10.srb.scsiStatus).toBe(0x00);
    expect(file.flushes).toBe(1);
    expect(fsyncCalls).toHaveLength(1);

    const s16 = await g.srb(buildSynchronizeCacheCdb(16));
    expect(s16.srb.srbStatus).toBe(0x01);
    expect(file.flushes).toBe(2);
    expect(fsyncCalls).toHaveLength(2);

    // A write after them still adds no fsync; the next SYNCHRONIZE CACHE adds one.
    expect((await g.srb(buildWriteCdb(16, 100n, 1), { out: pattern(512, 9) })).srb.srbStatus).toBe(0x01);
    expect(fsyncCalls).toHaveLength(2);
    expect((await g.srb(buildSynchronizeCacheCdb(10, 100n, 1))).srb.srbStatus).toBe(0x01);
    expect(file.flushes).toBe(3);
    expect(fsyncCalls).toHaveLength(3);
    // All on one descriptor: the image's (the only file this test opens).
    expect(new Set(fsyncCalls).size).toBe(1);
    expect(lun.stats.flushes).toBe(3);
    g.vsp.dispose();
  });

  it("a SYNCHRONIZE CACHE out of range fails before the backend: no fsync", async () => {
    const path = join(dir, "range.img");
    const g = await bootStorvsp({ disks: [{ kind: "file", path, sizeBytes: 1 << 20 }] });
    await g.handshake();
    const file = g.vsp.lunAt(0)!.disk.base as FileDiskBackend;
    const r = await g.srb(buildSynchronizeCacheCdb(10, 2048n, 1));
    expect(r.sense[2]).toBe(0x05);
    expect(r.sense[12]).toBe(0x21);
    expect(file.flushes).toBe(0);
    expect(fsyncCalls).toEqual([]);
    g.vsp.dispose();
  });
});
