/**
 * A ledger of every frame the NICs of an end-to-end test send and receive,
 * and the check that what arrived is exactly what was sent: each received
 * frame equals, byte for byte, exactly one frame another NIC sent to it
 * (unicast to its MAC, or broadcast/multicast), and every such frame
 * arrived exactly once.
 */
import { expect } from "vitest";
import type { NetvscDriver } from "../../../../drivers/netvsc/index.js";

export interface Station {
  readonly name: string;
  readonly nic: NetvscDriver;
  /** Every frame handed to `nic.send` (a copy taken at the call), in call order. */
  readonly sent: Uint8Array[];
  /** Every frame `nic` indicated (a copy), in arrival order. */
  readonly received: Uint8Array[];
}

/**
 * Records `nic`'s traffic: wraps its `send` (so responders that call
 * `nic.send` are recorded too) and listens for received frames. Call it
 * before anything else subscribes or sends.
 */
export function station(name: string, nic: NetvscDriver): Station {
  const s: Station = { name, nic, sent: [], received: [] };
  const send = nic.send.bind(nic);
  nic.send = (frame: Uint8Array): Promise<void> => {
    s.sent.push(frame.slice());
    return send(frame);
  };
  nic.onReceive((f) => s.received.push(f.slice()));
  return s;
}

export function hex(f: Uint8Array): string {
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("hex");
}

function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(":").map((x) => parseInt(x, 16)));
}

/** Whether `frame` is addressed to a NIC with MAC `mac` (its own unicast address, or a group address). */
export function addressedTo(frame: Uint8Array, mac: string): boolean {
  if (((frame[0] as number) & 1) !== 0) return true;
  const m = macBytes(mac);
  for (let i = 0; i < 6; i++) if (frame[i] !== m[i]) return false;
  return true;
}

/**
 * Asserts the ledger balances: every frame sent (by any station) is
 * distinct, so "equals exactly one sent frame" is unambiguous; each
 * station received exactly the frames the others addressed to it — each
 * one byte-identical to one sent frame, none missing, none twice, none
 * that nobody sent; and the NIC counters agree with the ledger.
 * Returns the total number of frames delivered.
 */
export function expectLedgerBalanced(stations: readonly Station[]): number {
  const owner = new Map<string, string>();
  for (const s of stations) {
    for (const f of s.sent) {
      const key = hex(f);
      expect(owner.has(key), `${s.name} sent a frame ${owner.get(key) ?? ""} also sent (frames must be distinct): ${key}`).toBe(false);
      owner.set(key, s.name);
    }
  }
  let delivered = 0;
  for (const r of stations) {
    // What the others sent to r, by bytes.
    const due = new Map<string, number>();
    let dueCount = 0;
    for (const s of stations) {
      if (s === r) continue;
      for (const f of s.sent) {
        if (!addressedTo(f, r.nic.mac)) continue;
        due.set(hex(f), 1);
        dueCount++;
      }
    }
    for (const f of r.received) {
      const key = hex(f);
      const left = due.get(key);
      if (left === undefined) {
        const who = owner.get(key);
        expect.fail(
          who === undefined
            ? `${r.name} received a frame nobody sent: ${key}`
            : who === r.name
              ? `${r.name} received its own frame: ${key}`
              : `${r.name} received a frame from ${who} not addressed to it: ${key}`,
        );
      }
      expect(left, `${r.name} received a frame a second time: ${key}`).toBe(1);
      due.set(key, 0);
    }
    const missing = [...due].filter(([, n]) => n === 1).map(([k]) => k);
    expect(missing, `${r.name} never received these frames`).toEqual([]);
    expect(r.received.length).toBe(dueCount);
    expect(r.nic.stats.rx.packets).toBe(r.received.length);
    expect(r.nic.stats.rx.bytes).toBe(r.received.reduce((a, f) => a + f.length, 0));
    expect(r.nic.stats.rx.drops).toBe(0);
    delivered += r.received.length;
  }
  for (const s of stations) {
    expect(s.nic.stats.tx.packets).toBe(s.sent.length);
    expect(s.nic.stats.tx.bytes).toBe(s.sent.reduce((a, f) => a + f.length, 0));
    expect(s.nic.stats.tx.drops).toBe(0);
  }
  return delivered;
}
