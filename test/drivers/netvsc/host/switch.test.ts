/**
 * The virtual switch alone: learning, flooding, broadcast to all but the
 * sender, per-port statistics, faults, latency in virtual time, and the
 * pcap capture parsed back (headers, virtual timestamps, frames in order).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Simulation } from "../../../../core/index.js";
import { buildEthernetFrame } from "../../../../drivers/netvsc/protocol/index.js";
import { VirtualSwitch } from "../../../../drivers/netvsc/host/index.js";

const A = "02:00:00:00:00:0a";
const B = "02:00:00:00:00:0b";
const C = "02:00:00:00:00:0c";
const BCAST = "ff:ff:ff:ff:ff:ff";

function frame(dst: string, src: string, n: number): Uint8Array {
  return buildEthernetFrame({ dst, src, etherType: 0x88b5, payload: Uint8Array.from({ length: 46 + n }, (_, i) => (i + n) & 0xff) });
}

function setup(latencyNs = 1000) {
  const sim = new Simulation({ seed: 3 });
  const sw = new VirtualSwitch("lan", sim, { latencyNs });
  const got: Record<string, Uint8Array[]> = { a: [], b: [], c: [] };
  const a = sw.attach("a", (f) => got["a"]!.push(f));
  const b = sw.attach("b", (f) => got["b"]!.push(f));
  const c = sw.attach("c", (f) => got["c"]!.push(f));
  return { sim, sw, got, a, b, c };
}

interface Rec {
  sec: number;
  usec: number;
  incl: number;
  orig: number;
  data: Uint8Array;
}

function parsePcap(bytes: Uint8Array): { header: number[]; records: Rec[] } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = [v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true), v.getInt32(8, true), v.getUint32(12, true), v.getUint32(16, true), v.getUint32(20, true)];
  const records: Rec[] = [];
  for (let at = 24; at < bytes.length; ) {
    const incl = v.getUint32(at + 8, true);
    records.push({ sec: v.getUint32(at, true), usec: v.getUint32(at + 4, true), incl, orig: v.getUint32(at + 12, true), data: bytes.slice(at + 16, at + 16 + incl) });
    at += 16 + incl;
  }
  return { header, records };
}

describe("VirtualSwitch", () => {
  it("floods unknown unicast, learns, then forwards to the learned port only; delivery after the latency", async () => {
    const { sim, sw, got, a, b } = setup(5000);
    a.send(frame(B, A, 1)); // B unknown: flooded to b and c
    expect(got["b"]!.length).toBe(0); // not yet: latency
    await sim.scheduler.runFor(4999);
    expect(got["b"]!.length).toBe(0);
    await sim.scheduler.runFor(1);
    expect([got["b"]!.length, got["c"]!.length, got["a"]!.length]).toEqual([1, 1, 0]);
    b.send(frame(A, B, 2)); // A learned: only a
    await sim.scheduler.runUntilIdle();
    expect([got["a"]!.length, got["c"]!.length]).toEqual([1, 1]);
    a.send(frame(B, A, 3)); // B learned now: only b
    await sim.scheduler.runUntilIdle();
    expect([got["b"]!.length, got["c"]!.length]).toEqual([2, 1]);
    expect(sw.macTable().get(A)).toBe(a);
    expect(sw.macTable().get(B)).toBe(b);
  });

  it("broadcast and multicast reach every port but the sender; frames arrive intact", async () => {
    const { sim, got, c } = setup();
    const f = frame(BCAST, C, 4);
    c.send(f);
    c.send(frame("01:00:5e:00:00:01", C, 5));
    await sim.scheduler.runUntilIdle();
    expect(got["a"]!.length).toBe(2);
    expect(got["b"]!.length).toBe(2);
    expect(got["c"]!.length).toBe(0);
    expect(Buffer.from(got["a"]![0]!).equals(Buffer.from(f))).toBe(true);
  });

  it("counts per port: frames/bytes in and out, runts, faults (seeded), detached", async () => {
    const { sim, got, a, b, c } = setup();
    const f = frame(BCAST, A, 0);
    a.send(f);
    a.send(new Uint8Array(10));
    await sim.scheduler.runUntilIdle();
    expect(a.stats).toMatchObject({ framesIn: 2, bytesIn: f.length + 10, framesOut: 0 });
    expect(a.stats.drops.runt).toBe(1);
    expect(b.stats).toMatchObject({ framesOut: 1, bytesOut: f.length });
    c.setFault({ dropAll: true });
    a.send(f);
    await sim.scheduler.runUntilIdle();
    expect(c.stats.drops.fault).toBe(1);
    expect(got["c"]!.length).toBe(1);
    c.setFault({ dropProbability: 0.5 });
    for (let i = 0; i < 200; i++) a.send(f);
    await sim.scheduler.runUntilIdle();
    const dropped = c.stats.drops.fault - 1;
    expect(dropped).toBeGreaterThan(60);
    expect(dropped).toBeLessThan(140);
    expect(got["c"]!.length).toBe(1 + 200 - dropped);
    // A detached port gets nothing more, and its MACs are forgotten.
    b.send(f);
    b.detach();
    a.send(frame(B, A, 9));
    await sim.scheduler.runUntilIdle();
    expect(b.stats.framesOut).toBe(202);
  });

  it("captures every frame to pcap: global header, virtual timestamps, frames in order and intact", async () => {
    const { sim, sw, a, b } = setup();
    sw.startCapture();
    const frames = [frame(BCAST, A, 1), frame(A, B, 2), frame(B, A, 1400)];
    a.send(frames[0]!);
    await sim.scheduler.runFor(1_500_000_000); // 1.5 s
    b.send(frames[1]!);
    await sim.scheduler.runFor(2_000_123);
    a.send(frames[2]!);
    await sim.scheduler.runUntilIdle();
    const { header, records } = parsePcap(sw.pcapBytes());
    expect(header).toEqual([0xa1b2c3d4, 2, 4, 0, 0, 262144, 1]);
    expect(records.map((r) => [r.sec, r.usec, r.incl, r.orig])).toEqual([
      [0, 0, frames[0]!.length, frames[0]!.length],
      [1, 500_000, frames[1]!.length, frames[1]!.length],
      [1, 502_000, frames[2]!.length, frames[2]!.length],
    ]);
    records.forEach((r, i) => expect(Buffer.from(r.data).equals(Buffer.from(frames[i]!))).toBe(true));
    const dir = mkdtempSync(join(tmpdir(), "vsw-"));
    sw.writePcap(join(dir, "all.pcap"));
    expect(Buffer.from(readFileSync(join(dir, "all.pcap"))).equals(Buffer.from(sw.pcapBytes()))).toBe(true);
  });

  it("streams the capture to a file on flush", async () => {
    const { sim, sw, a } = setup();
    const dir = mkdtempSync(join(tmpdir(), "vsw-"));
    const path = join(dir, "stream.pcap");
    sw.startCapture({ path });
    a.send(frame(BCAST, A, 1));
    sw.flushPcap();
    expect(parsePcap(new Uint8Array(readFileSync(path))).records.length).toBe(1);
    a.send(frame(BCAST, A, 2));
    await sim.scheduler.runUntilIdle();
    sw.flushPcap();
    const { records } = parsePcap(new Uint8Array(readFileSync(path)));
    expect(records.length).toBe(2);
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(sw.pcapBytes()))).toBe(true);
  });
});
