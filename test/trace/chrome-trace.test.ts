import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../core/errors.js";
import { Hypervisor, installVmbusIsr, signalChannel } from "../../core/hv/index.js";
import { Simulation } from "../../core/sim/index.js";
import { ChromeTraceWriter, Tracer, stableStringify, tracePid, traceTid } from "../../core/trace/index.js";

interface JsonEvent {
  name: string;
  cat: string;
  ph: string;
  ts: number;
  pid: number;
  tid: number;
  dur?: number;
  id?: string | number;
  s?: string;
  args?: Record<string, unknown>;
}

function parse(json: string): { traceEvents: JsonEvent[]; displayTimeUnit: string; otherData: Record<string, unknown> } {
  return JSON.parse(json) as { traceEvents: JsonEvent[]; displayTimeUnit: string; otherData: Record<string, unknown> };
}

describe("ChromeTraceWriter", () => {
  it("writes metadata, instants, counters, async spans and complete events with ts in µs", () => {
    const clock = { now: 1_500 };
    const w = new ChromeTraceWriter({ clock, otherData: { seed: 7, scenario: "unit" } });
    w.processName(2, "vm1");
    w.threadName(2, 3, "cpu1");
    w.instant(2, 3, "signal", "hv.signal", { z: 1, a: "x" });
    w.counter(2, "ring.out", { used: 4096, free: 12288 });
    clock.now = 2_250;
    w.asyncBegin(2, "vmbus.txn", 17, "EXECUTE_SRB", { lba: 8 });
    w.asyncEnd(2, "vmbus.txn", 17, "EXECUTE_SRB", undefined, 9_000);
    w.complete(2, 3, "SINT2", "hv.vcpu", 3_000, 500);
    const doc = parse(w.toJSON());
    expect(doc.displayTimeUnit).toBe("ns");
    expect(doc.otherData).toEqual({ scenario: "unit", seed: 7 });
    const ev = doc.traceEvents;
    expect(ev.filter((e) => e.ph === "M").map((e) => [e.name, e.pid, e.tid, e.args])).toEqual([
      ["process_name", 2, 0, { name: "vm1" }],
      ["process_sort_index", 2, 0, { sort_index: 2 }],
      ["thread_name", 2, 3, { name: "cpu1" }],
      ["thread_sort_index", 2, 3, { sort_index: 3 }],
    ]);
    expect(ev.find((e) => e.ph === "i")).toEqual({ name: "signal", cat: "hv.signal", ph: "i", ts: 1.5, pid: 2, tid: 3, s: "t", args: { a: "x", z: 1 } });
    expect(ev.find((e) => e.ph === "C")).toEqual({ name: "ring.out", cat: "counter", ph: "C", ts: 1.5, pid: 2, tid: 0, args: { free: 12288, used: 4096 } });
    expect(ev.find((e) => e.ph === "b")).toMatchObject({ cat: "vmbus.txn", id: 17, ts: 2.25, args: { lba: 8 } });
    expect(ev.find((e) => e.ph === "e")).toMatchObject({ cat: "vmbus.txn", id: 17, ts: 9 });
    expect(ev.find((e) => e.ph === "X")).toMatchObject({ ts: 3, dur: 0.5, pid: 2, tid: 3 });
  });

  it("serialises with a fixed key order and sorted args, one event per line", () => {
    const w = new ChromeTraceWriter();
    w.instant(1, 1, "n", "c", { b: { y: 2, x: [3, { k: true, a: null }] }, a: 0 }, 10);
    const lines = w.toJSON().split("\n");
    expect(lines[0]).toBe('{"displayTimeUnit":"ns","otherData":{},"traceEvents":[');
    expect(lines[1]).toBe('{"name":"n","cat":"c","ph":"i","ts":0.01,"pid":1,"tid":1,"s":"t","args":{"a":0,"b":{"x":[3,{"a":null,"k":true}],"y":2}}}');
    expect(stableStringify({ b: 1, a: Number.NaN })).toBe('{"a":null,"b":1}');
    expect(() => w.counter(1, "x", { v: 1 })).toThrow(InvalidArgumentError); // no clock, no time
  });

  it("maps partitions to processes and vCPUs to threads when attached to a simulation", async () => {
    const tracer = new Tracer();
    const sim = new Simulation({ seed: 1, tracer });
    const w = new ChromeTraceWriter({ clock: sim.scheduler });
    const detach = w.attach(tracer);
    const hv = new Hypervisor(sim);
    const vm = hv.createVm({ name: "web", vcpuCount: 2, vpIndexes: [0, 4] });
    hv.connectEvent(vm, 0x2000, () => {});
    installVmbusIsr(vm, { lookupChannel: () => () => {} });
    signalChannel(vm.vcpus[1]!, { connectionId: 0x2000, monitorId: undefined, lowLatency: true });
    hv.signalGuest(vm, 4, 6);
    await sim.scheduler.runUntilIdle();
    detach();
    hv.signalGuest(vm, 4, 6); // not recorded after detach
    const doc = parse(w.toJSON());
    const names = doc.traceEvents.filter((e) => e.ph === "M" && e.name.endsWith("_name")).map((e) => `${e.pid}/${e.tid}:${String(e.args?.name)}`);
    expect(names).toEqual(["1/0:host (host)", "2/0:web", "2/2:cpu0 (VP 0)", "2/6:cpu1 (VP 4)"]);
    expect(tracePid(vm.id)).toBe(2);
    expect(traceTid(4)).toBe(6);
    const hc = doc.traceEvents.find((e) => e.name === "HVCALL_SIGNAL_EVENT")!;
    expect(hc).toMatchObject({ ph: "i", pid: 2, tid: 6, ts: 0, args: { code: 0x5d, connectionId: 0x2000, status: 0 } });
    expect(doc.traceEvents.find((e) => e.cat === "hv.signal")).toMatchObject({ args: { via: "hypercall", necessary: true } });
    expect(doc.traceEvents.filter((e) => e.name === "raise SINT2")).toHaveLength(1);
    const isr = doc.traceEvents.find((e) => e.name === "SINT2 interrupt")!;
    expect(isr).toMatchObject({ pid: 2, tid: 6, ts: 2, args: { waitedNs: 0 } });
    expect(doc.traceEvents.find((e) => e.ph === "X")).toMatchObject({ name: "web/cpu1 SINT2", pid: 2, tid: 6, ts: 2, dur: 0 });
  });

  it("writes the same text to a file", () => {
    const w = new ChromeTraceWriter();
    w.instant(1, 1, "x", "y", undefined, 5);
    const dir = mkdtempSync(join(tmpdir(), "vmbus-trace-"));
    try {
      const path = join(dir, "t.json");
      w.writeFile(path);
      expect(readFileSync(path, "utf8")).toBe(w.toJSON());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
