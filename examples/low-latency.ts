/**
 * The low-latency trade-off, measured. A monitored channel signals the host
 * by setting a bit in the monitor page; the hypervisor scans the page every
 * monitor latency (≈100 µs), so a request waits for the next scan — but all
 * the signals set in between cost one host wakeup. A channel tagged
 * low-latency signals with a HvSignalEvent hypercall each time: the host
 * wakes at once, once per signal.
 *
 * The same echo request/response workload runs on both: one request at a
 * time (closed loop), and a request every 10 µs whether or not the previous
 * ones are answered (open loop); for each: mean latency, host wakeups per
 * request and guest signal hypercalls per request.
 *
 * Run: `npm run example:low-latency`.
 */
import { VmbusSystem } from "../core/index.js";
import { EchoDriver, echoPlugin } from "../drivers/echo/index.js";

const REQUESTS = 400;

interface Result {
  meanUs: number;
  wakeupsPerReq: number;
  hypercallsPerReq: number;
  monitorTriggersPerReq: number;
}

async function measure(lowLatency: boolean, gapNs: number | null): Promise<Result> {
  const sys = new VmbusSystem({ seed: 3, plugins: [echoPlugin] });
  const vm = sys.addVm({ name: "vm1", vcpus: 2 });
  sys.addHostDevice(vm, "echo");
  await sys.boot();
  const drv = vm.drivers<EchoDriver>("echo")[0];
  if (drv === undefined) throw new Error("the echo driver did not bind");
  drv.channel.lowLatency = lowLatency;
  const c = vm.partition.counters;
  const w0 = c.hostWakeups;
  const h0 = c.hypercalls.signalEvent;
  const m0 = c.monitorTriggers;
  let total = 0;
  const one = async (): Promise<void> => {
    const t = sys.sim.now;
    await drv.echo(Uint8Array.of(1, 2, 3, 4));
    total += sys.sim.now - t;
  };
  if (gapNs === null) {
    // Closed loop: the next request goes out when the previous one is answered.
    await sys.run((async () => { for (let i = 0; i < REQUESTS; i++) await one(); })());
  } else {
    // Open loop: a request every gapNs, answered or not.
    await sys.run(
      Promise.all(
        Array.from({ length: REQUESTS }, async (_, i) => {
          await sys.sim.scheduler.sleep(i * gapNs);
          await one();
        }),
      ),
    );
  }
  const r = {
    meanUs: total / REQUESTS / 1000,
    wakeupsPerReq: (c.hostWakeups - w0) / REQUESTS,
    hypercallsPerReq: (c.hypercalls.signalEvent - h0) / REQUESTS,
    monitorTriggersPerReq: (c.monitorTriggers - m0) / REQUESTS,
  };
  await sys.dispose();
  return r;
}

console.log(`echo workload: ${REQUESTS} requests of 4 bytes, on a monitored channel and on the same channel tagged low-latency\n`);
console.log("workload               channel       mean latency  host wakeups/req  signal hypercalls/req  monitor bits set/req");
const rows: Record<string, Result> = {};
for (const gap of [null, 10_000]) {
  for (const low of [false, true]) {
    const r = await measure(low, gap);
    rows[`${gap}/${low}`] = r;
    console.log(
      `${(gap === null ? "one at a time" : "one every 10 µs").padEnd(21)}  ${(low ? "low-latency" : "monitored").padEnd(12)}  ${`${r.meanUs.toFixed(1)} µs`.padStart(12)}  ` +
        `${r.wakeupsPerReq.toFixed(3).padStart(16)}  ${r.hypercallsPerReq.toFixed(3).padStart(21)}  ${r.monitorTriggersPerReq.toFixed(3).padStart(20)}`,
    );
  }
}
const m1 = rows["null/false"], l1 = rows["null/true"], m16 = rows["10000/false"], l16 = rows["10000/true"];
if (m1 && l1 && m16 && l16) {
  console.log(`\none at a time: low-latency is ${(m1.meanUs / l1.meanUs).toFixed(1)}× faster (${m1.meanUs.toFixed(1)} → ${l1.meanUs.toFixed(1)} µs): no waiting for the monitor scan; both wake the host once per request`);
  console.log(
    `one every 10 µs: the monitored channel wakes the host ${m16.wakeupsPerReq.toFixed(3)} times per request (one scan serves the requests of ~100 µs), ` +
      `low-latency ${l16.wakeupsPerReq.toFixed(3)} (${(l16.wakeupsPerReq / m16.wakeupsPerReq).toFixed(1)}× as many) — latency bought with host wakeups and hypercalls`,
  );
}
