/**
 * The decoder of `vmbus-sim decode` labels VMBus transactions in the trace.
 */
import { describe, expect, it } from "vitest";
import { ChromeTraceWriter, Tracer, VmbusSystem } from "../../core/index.js";
import { StorvscDriver, storagePlugin } from "../../drivers/storvsc/index.js";
import { labelTransaction } from "../../cli/decode.js";

describe("trace labels", () => {
  it("names storage requests by their VSTOR packet and CDB", async () => {
    const tracer = new Tracer();
    const writer = new ChromeTraceWriter({ labelTransaction });
    writer.attach(tracer);
    const sys = new VmbusSystem({ seed: 4, plugins: [storagePlugin], tracer });
    const vm = sys.addVm({ vcpus: 1 });
    sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: 1 << 20 }] } });
    await sys.boot();
    const disk = vm.drivers<StorvscDriver>("storvsc")[0]!.disks[0]!;
    await sys.run(disk.read(8, 1));
    const spans = (JSON.parse(writer.toJSON()) as { traceEvents: { ph: string; cat: string; args?: { request?: string } }[] }).traceEvents.filter(
      (e) => e.ph === "b" && e.cat === "vmbus.transaction",
    );
    const labels = spans.map((e) => e.args?.request ?? "");
    expect(labels[0]).toMatch(/^vstor_packet BEGIN_INITIALIZATION\(7\)/);
    expect(labels.some((l) => /EXECUTE_SRB\(3\).* · cdb: READ\(10\) lba=8 blocks=1/.test(l))).toBe(true);
    expect(labelTransaction("00000000-0000-0000-0000-000000000000", new Uint8Array(8))).toBeUndefined();
  });
});
