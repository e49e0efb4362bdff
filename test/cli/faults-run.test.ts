/**
 * scenarios/faults.json run in-process: every fault kind applied at its
 * virtual time, each reporting what it did, and every request of every
 * workload accounted for — completed, failed with a typed error, never lost
 * or completed twice — within the run's settle bound.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { formatResults } from "../../cli/report.js";
import { loadScenario, validateScenario } from "../../cli/scenario.js";
import { buildAndBoot, runWorkloads } from "../../cli/simulate.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("scenarios/faults.json", () => {
  it("applies every kind of fault; nothing lost, nothing twice, each fault's effect counted", async () => {
    const scenario = loadScenario(join(root, "scenarios", "faults.json"));
    const kinds = new Set(scenario.faults.map((f) => f.kind));
    expect([...kinds].sort()).toEqual(["disk-error", "host-stall", "interrupt-delay", "interrupt-drop", "monitor-delay", "rescind", "ring-full", "switch-drop", "throttle"]);
    const built = await buildAndBoot(scenario);
    const r = await runWorkloads(built);
    const t = r.requests.total;
    expect(t.lost).toBe(0);
    expect(t.duplicates).toBe(0);
    expect(t.completed + t.failedTotal).toBe(t.issued);
    expect(t.completed).toBeGreaterThan(10_000);
    // Bounded: the run ends well before its settle deadline.
    expect(r.requests.lastSettledMs).toBeLessThan(r.requests.settleDeadlineMs);
    expect(r.runUs / 1000).toBeLessThan(scenario.durationMs + 100);

    const by = (kind: string) => r.faults.filter((f) => f.kind === kind);
    const c = (kind: string, i = 0) => by(kind)[i]!.counters;
    expect(c("interrupt-drop")["dropped"]).toBeGreaterThan(0);
    expect(c("interrupt-drop")["watchdogRecoveries"]).toBeGreaterThan(0);
    expect(c("interrupt-delay")["delayed"]).toBeGreaterThan(0);
    expect(c("monitor-delay")["delayed"]).toBeGreaterThan(0);
    expect(c("disk-error")["failedOps"]).toBeGreaterThan(0);
    expect(c("throttle")["suspendedUs"]).toBe(10_000);
    expect(c("switch-drop")["framesDropped"]).toBeGreaterThan(0);
    expect(c("rescind")["outstandingAtRescind"]).toBeGreaterThan(0);
    expect(c("host-stall", 0)["wakeupsDeferred"]).toBeGreaterThan(0);
    const ring = by("ring-full")[0]!;
    expect(ring.counters).toMatchObject({ requests: 32, completed: 32, intact: 32, corrupt: 0, lost: 0 });
    expect(ring.counters["blockedSenders"]).toBeGreaterThan(0);
    expect(ring.counters["pendingSendSz"]).toBeGreaterThan(0);

    // Which requests failed, and how: each fault's typed error where it belongs.
    const storage = (i: number) => r.storage.find((s) => s.workload === i)!.requests;
    expect(Object.keys(storage(1).failed)).toEqual(["SCSI_MEDIUM_ERROR"]); // disk-error on vm1 LUN 1
    expect(Object.keys(storage(2).failed)).toEqual(["STORVSC_TIMEOUT"]); // the host that never came back
    expect(storage(0).failedTotal).toBe(0); // vm1 LUN 0: dropped interrupts, late scans, recovered
    for (const k of Object.keys(storage(3).failed)) expect(k).toMatch(/^(CHANNEL_RESCINDED|CHANNEL_CLOSED|STORVSC_REMOVED|STORVSC_DISK_GONE)$/); // rescinded
    expect(storage(3).failedTotal).toBeGreaterThan(0);
    const udp = r.network.udp[0]!;
    expect(udp.requests.lost).toBe(0);
    expect(udp.intact).toBe(udp.received);

    const text = formatResults(built, r);
    expect(text).toMatch(/== faults/);
    expect(text).toMatch(/ring-full .*\n.*32 completed, 32 intact, 0 corrupt, 0 failed, 0 lost/);
    expect(text).toMatch(/none lost, none completed twice/);
    await built.sys.dispose();
  });

  it("a request that never settles is counted lost at the settle deadline, and the run still ends", async () => {
    // netvsc has no transmit timeout: sends to a host that never answers again stay outstanding.
    const scenario = validateScenario(
      {
        durationMs: 20,
        settleMs: 200,
        switches: [{ name: "sw" }],
        vms: [
          { name: "a", vcpus: 2, lostInterruptPollUs: 200, devices: [{ type: "nic", mac: "00:15:5d:00:00:01", switch: "sw" }] },
          { name: "b", vcpus: 2, devices: [{ type: "nic", mac: "00:15:5d:00:00:02", switch: "sw" }] },
        ],
        workloads: [{ type: "udp", from: "a", to: "b", bytes: 500, count: 3000 }],
        faults: [{ kind: "host-stall", vm: "a", device: 0, atMs: 1 }],
      },
      "lost.json",
    );
    const built = await buildAndBoot(scenario);
    const r = await runWorkloads(built);
    const u = r.network.udp[0]!.requests;
    expect(u.lost).toBe(64); // the send window
    expect(u.completed + u.lost).toBe(u.issued);
    expect(r.requests.total.lost).toBe(64);
    expect(r.runUs / 1000).toBeLessThanOrEqual(r.requests.settleDeadlineMs + 1);
    expect(formatResults(built, r)).toMatch(/FAILED: 64 lost and 0 duplicated request\(s\)/);
    await built.sys.dispose();
  });
});
