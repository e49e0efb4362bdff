/** Tests for core/sysfs/proc-interrupts.ts: the /proc/interrupts HYP row and the per-channel table. */
import { describe, expect, it } from "vitest";
import {
  channelInterruptRows,
  channelInterruptTable,
  formatChannelInterruptTable,
  onlineVcpus,
  procInterrupts,
} from "../../core/sysfs/index.js";
import { FakeBus, twoDevices } from "./fakes.js";

describe("procInterrupts", () => {
  it("prints the header and the HYP row as x86 Linux does", () => {
    const { bus } = twoDevices();
    expect(procInterrupts(bus)).toBe(
      "           CPU0       CPU1       CPU2       CPU3       \n" +
        "HYP:       1234          0         17 4294967295   Hypervisor callback interrupts\n",
    );
  });

  it("has a column per online vCPU only, with its number", () => {
    const { bus } = twoDevices();
    bus.offline.add(2);
    expect(onlineVcpus(bus)).toEqual([0, 1, 3]);
    expect(procInterrupts(bus)).toBe(
      "           CPU0       CPU1       CPU3       \n" +
        "HYP:       1234          0 4294967295   Hypervisor callback interrupts\n",
    );
  });

  it("prints 0 for a vCPU the counts do not reach, wraps counts as unsigned int, keeps two-digit CPU columns 11 wide", () => {
    const bus = new FakeBus([]);
    bus.vcpuCount = 12;
    bus.hyp = [4294967296 + 7];
    const out = procInterrupts(bus).split("\n");
    expect(out[0]).toBe(`${" ".repeat(11)}${Array.from({ length: 12 }, (_, i) => `CPU${String(i).padEnd(8)}`).join("")}`);
    expect(out[0]?.slice(11 + 10 * 11)).toBe("CPU10      CPU11      ");
    expect(out[1]).toBe(`HYP:          7 ${"         0 ".repeat(11)}  Hypervisor callback interrupts`);
    expect(out[2]).toBe("");
  });
});

describe("channel interrupt table", () => {
  it("collects every channel's counters sorted by relid", () => {
    const { bus } = twoDevices();
    expect(channelInterruptRows(bus).map((r) => [r.relid, r.cpu, r.interrupts, r.events])).toEqual([
      [2, 0, 0, 0],
      [14, 0, 1234, 567],
      [15, 1, 0, 0],
      [16, 3, 0, 0],
    ]);
    expect(channelInterruptRows(bus)[1]).toEqual({
      device: "3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
      relid: 14,
      cpu: 0,
      interrupts: 1234,
      events: 567,
      intrInFull: 2,
      intrOutEmpty: 89,
      outFullFirst: 1,
      outFullTotal: 3,
    });
  });

  it("formats a fixed-width table", () => {
    const { bus } = twoDevices();
    expect(channelInterruptTable(bus)).toBe(
      [
        "device                                relid  cpu  interrupts  events  intr_in_full  intr_out_empty  out_full_first  out_full_total",
        "f00dcafe-0123-4567-89ab-cdef01234567      2    0           0       0             0               0               0               0",
        "3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d     14    0        1234     567             2              89               1               3",
        "3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d     15    1           0       0             0               0               0               0",
        "3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d     16    3           0       0             0               0               0               0",
        "",
      ].join("\n"),
    );
    expect(formatChannelInterruptTable([])).toBe(
      "device  relid  cpu  interrupts  events  intr_in_full  intr_out_empty  out_full_first  out_full_total\n",
    );
  });
});
