import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ChromeTraceWriter, Tracer, VmbusSystem } from "../../core/index.js";
import { EchoDriver, echoPlugin } from "../../drivers/echo/index.js";

async function tracedRun(seed: number): Promise<{ json: string; requests: number }> {
  const tracer = new Tracer();
  const writer = new ChromeTraceWriter();
  writer.attach(tracer);
  const sys = new VmbusSystem({ seed, plugins: [echoPlugin], tracer });
  const vm = sys.addVm({ vcpus: 2 });
  sys.addHostDevice(vm, "echo");
  await sys.boot();
  const drv = vm.drivers<EchoDriver>("echo")[0]!;
  const rng = sys.sim.rng.fork("workload");
  let requests = 0;
  for (let i = 0; i < 8; i++) {
    const n = rng.int(1, 200);
    await sys.run(Promise.all(Array.from({ length: n % 3 + 1 }, () => (requests++, drv.echo(rng.bytes(n))))));
  }
  return { json: writer.toJSON(), requests };
}

describe("trace of a whole system", () => {
  it("has a span per transaction, ring occupancy counters, and is identical for the same seed", async () => {
    const a = await tracedRun(11);
    const b = await tracedRun(11);
    const c = await tracedRun(12);
    const hash = (s: string) => createHash("sha256").update(s).digest("hex");
    expect(hash(a.json)).toBe(hash(b.json));
    expect(hash(a.json)).not.toBe(hash(c.json));
    const events = (JSON.parse(a.json) as { traceEvents: { ph: string; cat: string; name: string; id?: string }[] }).traceEvents;
    const begins = events.filter((e) => e.ph === "b" && e.cat === "vmbus.transaction");
    const ends = events.filter((e) => e.ph === "e" && e.cat === "vmbus.transaction");
    expect(begins).toHaveLength(a.requests);
    expect(ends.map((e) => e.id).sort()).toEqual(begins.map((e) => e.id).sort());
    expect(events.some((e) => e.ph === "C" && e.name === "relid 1 out ring")).toBe(true);
    expect(events.some((e) => e.ph === "M" && e.name === "process_name")).toBe(true);
  });
});
