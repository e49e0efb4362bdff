/**
 * Fault: a switch port that drops frames (all, or each with a seeded
 * probability). The sender's transmits still complete (the host took the
 * frame); the receiver gets only intact frames, each at most once.
 */
import { describe, expect, it } from "vitest";
import { buildUdpFrame, parseFrame } from "../../drivers/netvsc/index.js";
import { Ledger, MS, bootRig } from "./helpers.js";

async function blast(seed: number, probability: number) {
  const { sys, vms } = await bootRig({ seed, vms: 2, nic: true });
  const [a, b] = vms as [(typeof vms)[0], (typeof vms)[0]];
  const port = b.netvsp!.port;
  port.setFault({ dropProbability: probability });
  const seen = new Map<number, number>();
  let corrupt = 0;
  b.nic!.onReceive((frame) => {
    const f = parseFrame(frame);
    const p = f.udp?.payload;
    if (p === undefined || p.length !== 200) return void corrupt++;
    const seq = new DataView(p.buffer, p.byteOffset).getUint32(0);
    for (let i = 4; i < p.length; i++) if (p[i] !== ((seq * 7 + i) & 0xff)) return void corrupt++;
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
  });
  const ledger = new Ledger(sys);
  const sends = Array.from({ length: 200 }, (_, seq) => {
    const payload = Uint8Array.from({ length: 200 }, (_, i) => (seq * 7 + i) & 0xff);
    new DataView(payload.buffer).setUint32(0, seq);
    return ledger.track(a.nic!.send(buildUdpFrame({ srcMac: a.nic!.mac, dstMac: b.nic!.mac, srcIp: "10.0.0.1", dstIp: "10.0.0.2", srcPort: 1, dstPort: 2, payload })));
  });
  const out = await sys.run(Promise.all(sends));
  await sys.run(sys.sim.scheduler.sleep(5 * MS));
  port.setFault(null);
  return { out, seen, corrupt, ledger, drops: port.stats.drops.fault };
}

describe("switch port dropping frames", () => {
  it("a seeded drop probability: every send completes once, received frames are intact and unique, drops counted; same seed, same drops", async () => {
    const r = await blast(18, 0.3);
    expect(r.out.every((o) => o.ok)).toBe(true);
    r.ledger.expectSettledOnce();
    expect(r.corrupt).toBe(0);
    expect([...r.seen.values()].every((n) => n === 1)).toBe(true);
    expect(r.drops).toBeGreaterThan(20);
    expect(r.seen.size + r.drops).toBe(200);
    const again = await blast(18, 0.3);
    expect(again.drops).toBe(r.drops);
  });

  it("dropping every frame: nothing arrives, the sender is not blocked", async () => {
    const r = await blast(19, 1);
    expect(r.out.every((o) => o.ok)).toBe(true);
    expect(r.seen.size).toBe(0);
    expect(r.drops).toBe(200);
  });
});
