/** Tests for core/sysfs/sysfs.ts: the tree, every attribute's format, errors, writes (spec §9, §8.2). */
import { describe, expect, it } from "vitest";
import { ErrnoError } from "../../core/errors.js";
import { VmbusSysfs } from "../../core/sysfs/index.js";
import { Guid } from "../../core/vmbus/guid.js";
import { FakeBus, FakeChannel, FakeDevice, NIC_DIR, NIC_INSTANCE, SCSI_DIR, SCSI_INSTANCE, twoDevices } from "./fakes.js";

interface Failure {
  errno: string;
  op: string;
  detail: string;
}

function failure(fn: () => unknown): Failure {
  try {
    fn();
  } catch (e) {
    if (e instanceof ErrnoError) return { errno: e.errno, op: e.op, detail: e.detail };
    throw e;
  }
  throw new Error("expected an ErrnoError");
}

async function asyncFailure(p: Promise<unknown>): Promise<Failure & { error: ErrnoError }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ErrnoError) return { errno: e.errno, op: e.op, detail: e.detail, error: e };
    throw e;
  }
  throw new Error("expected an ErrnoError");
}

function setup() {
  const t = twoDevices();
  return { ...t, sysfs: new VmbusSysfs(t.bus) };
}

describe("tree", () => {
  it("lists the bus, devices, drivers and channels, sorted", () => {
    const { sysfs } = setup();
    expect(sysfs.ls("/")).toEqual(["sys"]);
    expect(sysfs.ls("/sys")).toEqual(["bus"]);
    expect(sysfs.ls("/sys/bus")).toEqual(["vmbus"]);
    expect(sysfs.ls("/sys/bus/vmbus")).toEqual(["devices", "drivers", "hibernation"]);
    expect(sysfs.ls("/sys/bus/vmbus/devices")).toEqual([SCSI_INSTANCE.toString(), NIC_INSTANCE.toString()]);
    expect(sysfs.ls("/sys/bus/vmbus/drivers")).toEqual(["hv_netvsc", "hv_storvsc"]);
    expect(sysfs.ls("/sys/bus/vmbus/drivers/hv_storvsc")).toEqual(["new_id", "remove_id"]);
    expect(sysfs.ls(`${SCSI_DIR}/channels`)).toEqual(["14", "15", "16"]);
    expect(sysfs.ls(`${NIC_DIR}/channels/`)).toEqual(["2"]);
  });

  it("shows every §9.2 attribute of a monitored, bound device", () => {
    const { sysfs } = setup();
    expect(sysfs.ls(SCSI_DIR)).toEqual([
      "channel_vp_mapping",
      "channels",
      "class_id",
      "client_monitor_conn_id",
      "client_monitor_latency",
      "client_monitor_pending",
      "device",
      "device_id",
      "driver",
      "driver_override",
      "id",
      "in_intr_mask",
      "in_read_bytes_avail",
      "in_read_index",
      "in_write_bytes_avail",
      "in_write_index",
      "modalias",
      "monitor_id",
      "out_intr_mask",
      "out_read_bytes_avail",
      "out_read_index",
      "out_write_bytes_avail",
      "out_write_index",
      "server_monitor_conn_id",
      "server_monitor_latency",
      "server_monitor_pending",
      "state",
      "uevent",
      "vendor",
    ]);
  });

  it("hides the seven monitor attributes and the driver link when not allocated / not bound", () => {
    const { sysfs } = setup();
    expect(sysfs.ls(NIC_DIR)).toEqual([
      "channel_vp_mapping",
      "channels",
      "class_id",
      "device",
      "device_id",
      "driver_override",
      "id",
      "in_intr_mask",
      "in_read_bytes_avail",
      "in_read_index",
      "in_write_bytes_avail",
      "in_write_index",
      "modalias",
      "out_intr_mask",
      "out_read_bytes_avail",
      "out_read_index",
      "out_write_bytes_avail",
      "out_write_index",
      "state",
      "uevent",
      "vendor",
    ]);
    for (const a of [
      "monitor_id",
      "server_monitor_pending",
      "client_monitor_pending",
      "server_monitor_latency",
      "client_monitor_latency",
      "server_monitor_conn_id",
      "client_monitor_conn_id",
      "driver",
    ]) {
      expect(failure(() => sysfs.cat(`${NIC_DIR}/${a}`))).toEqual({
        errno: "ENOENT",
        op: `read ${NIC_DIR}/${a}`,
        detail: `no such file or directory: ${NIC_DIR}/${a}`,
      });
    }
  });

  it("shows every §9.3 attribute of a monitored channel and hides pending/latency/monitor_id otherwise", () => {
    const { sysfs } = setup();
    const all = [
      "cpu",
      "events",
      "in_mask",
      "interrupts",
      "intr_in_full",
      "intr_out_empty",
      "latency",
      "monitor_id",
      "out_full_first",
      "out_full_total",
      "out_mask",
      "pending",
      "read_avail",
      "subchannel_id",
      "write_avail",
    ];
    expect(sysfs.ls(`${SCSI_DIR}/channels/14`)).toEqual(all);
    expect(sysfs.ls(`${NIC_DIR}/channels/2`)).toEqual(all.filter((a) => !["pending", "latency", "monitor_id"].includes(a)));
    for (const a of ["pending", "latency", "monitor_id"]) {
      expect(failure(() => sysfs.cat(`${NIC_DIR}/channels/2/${a}`)).errno).toBe("ENOENT");
    }
  });

  it("stat gives kind, mode and the driver link", () => {
    const { sysfs } = setup();
    expect(sysfs.stat("/sys/bus/vmbus")).toEqual({ kind: "dir", mode: 0o755 });
    expect(sysfs.stat(`${SCSI_DIR}/id`)).toEqual({ kind: "file", mode: 0o444 });
    expect(sysfs.stat(`${SCSI_DIR}/driver_override`)).toEqual({ kind: "file", mode: 0o644 });
    expect(sysfs.stat(`${SCSI_DIR}/uevent`)).toEqual({ kind: "file", mode: 0o644 });
    expect(sysfs.stat(`${SCSI_DIR}/channels/14/cpu`)).toEqual({ kind: "file", mode: 0o644 });
    expect(sysfs.stat(`${SCSI_DIR}/channels/14/events`)).toEqual({ kind: "file", mode: 0o444 });
    expect(sysfs.stat("/sys/bus/vmbus/drivers/hv_netvsc/new_id")).toEqual({ kind: "file", mode: 0o200 });
    expect(sysfs.stat("/sys/bus/vmbus/hibernation")).toEqual({ kind: "file", mode: 0o444 });
    expect(sysfs.stat(`${SCSI_DIR}/driver`)).toEqual({ kind: "file", mode: 0o444, link: "/sys/bus/vmbus/drivers/hv_storvsc" });
    expect(sysfs.exists(`${SCSI_DIR}/driver`)).toBe(true);
    expect(sysfs.exists(`${NIC_DIR}/driver`)).toBe(false);
    expect(failure(() => sysfs.stat(`${NIC_DIR}/nope`))).toEqual({
      errno: "ENOENT",
      op: `stat ${NIC_DIR}/nope`,
      detail: `no such file or directory: ${NIC_DIR}/nope`,
    });
  });

  it("normalises paths (double and trailing slashes, . and ..) and names the normalised path in errors", () => {
    const { sysfs } = setup();
    expect(sysfs.cat(`//sys/bus/./vmbus/devices/../devices/${SCSI_INSTANCE.toString()}//id`)).toBe("14\n");
    expect(failure(() => sysfs.cat(`${SCSI_DIR}/channels/14/../99/cpu`))).toEqual({
      errno: "ENOENT",
      op: `read ${SCSI_DIR}/channels/99/cpu`,
      detail: `no such file or directory: ${SCSI_DIR}/channels/99`,
    });
    expect(failure(() => sysfs.cat("sys/bus/vmbus/hibernation"))).toEqual({
      errno: "ENOENT",
      op: "read sys/bus/vmbus/hibernation",
      detail: "not an absolute path",
    });
  });

  it("sees the bus as it is now", () => {
    const { sysfs, bus, scsi } = setup();
    bus.devs.splice(0, 1); // the NIC is rescinded
    expect(sysfs.ls("/sys/bus/vmbus/devices")).toEqual([SCSI_INSTANCE.toString()]);
    scsi.primary.targetCpu = 2;
    expect(sysfs.cat(`${SCSI_DIR}/channels/14/cpu`)).toBe("2\n");
  });
});

describe("device attributes (§9.2)", () => {
  it("formats identity attributes exactly", () => {
    const { sysfs } = setup();
    const cat = (a: string) => sysfs.cat(`${SCSI_DIR}/${a}`);
    expect(cat("id")).toBe("14\n");
    expect(cat("state")).toBe("3\n");
    expect(cat("class_id")).toBe("{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}\n");
    expect(cat("device_id")).toBe("{3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d}\n");
    expect(cat("modalias")).toBe("vmbus:d96361baa104294db60572e2ffb1dc7f\n");
    expect(cat("vendor")).toBe("0x1414\n");
    expect(cat("device")).toBe("0x1\n");
    expect(cat("driver")).toBe("hv_storvsc\n");
    expect(cat("uevent")).toBe("DRIVER=hv_storvsc\nMODALIAS=vmbus:d96361baa104294db60572e2ffb1dc7f\n");
    expect(cat("driver_override")).toBe("(null)\n");
    const nic = (a: string) => sysfs.cat(`${NIC_DIR}/${a}`);
    expect(nic("id")).toBe("2\n");
    expect(nic("state")).toBe("0\n");
    expect(nic("class_id")).toBe("{f8615163-df3e-46c5-913f-f2d2f965ed0e}\n");
    expect(nic("modalias")).toBe("vmbus:635161f83edfc546913ff2d2f965ed0e\n");
    expect(nic("device")).toBe("0x3\n");
    expect(nic("uevent")).toBe("MODALIAS=vmbus:635161f83edfc546913ff2d2f965ed0e\n");
    expect(nic("channel_vp_mapping")).toBe("2:0\n");
  });

  it("prints device as 0x%x of the dev-type index", () => {
    const d = new FakeDevice(Guid.parse("00000000-0000-0000-0000-000000000001"), Guid.parse("c376c1c3-d276-48d2-90a9-c04748072c60"), 16, [
      new FakeChannel(1),
    ]);
    const sysfs = new VmbusSysfs(new FakeBus([d]));
    expect(sysfs.cat("/sys/bus/vmbus/devices/00000000-0000-0000-0000-000000000001/device")).toBe("0x10\n");
  });

  it("formats the monitor attributes with %d of the page words", () => {
    const { sysfs } = setup();
    const cat = (a: string) => sysfs.cat(`${SCSI_DIR}/${a}`);
    expect(cat("monitor_id")).toBe("3\n");
    expect(cat("server_monitor_pending")).toBe("8\n");
    expect(cat("client_monitor_pending")).toBe("-2147483640\n"); // 0x80000008 as %d
    expect(cat("server_monitor_latency")).toBe("100\n");
    expect(cat("client_monitor_latency")).toBe("50\n");
    expect(cat("server_monitor_conn_id")).toBe("131086\n");
    expect(cat("client_monitor_conn_id")).toBe("131086\n");
  });

  it("formats ring debug info from the primary's rings", () => {
    const { sysfs } = setup();
    const cat = (a: string) => sysfs.cat(`${SCSI_DIR}/${a}`);
    expect(cat("out_intr_mask")).toBe("0\n");
    expect(cat("out_read_index")).toBe("40\n");
    expect(cat("out_write_index")).toBe("104\n");
    expect(cat("out_read_bytes_avail")).toBe("64\n");
    expect(cat("out_write_bytes_avail")).toBe("4032\n");
    expect(cat("in_intr_mask")).toBe("1\n");
    expect(cat("in_read_index")).toBe("4088\n");
    expect(cat("in_write_index")).toBe("16\n");
    expect(cat("in_read_bytes_avail")).toBe("24\n");
    expect(cat("in_write_bytes_avail")).toBe("4072\n");
  });

  it("fails ring attributes with EINVAL when the rings are not mapped", () => {
    const { sysfs } = setup();
    for (const a of ["out_intr_mask", "out_read_index", "out_write_index", "out_read_bytes_avail", "out_write_bytes_avail"]) {
      expect(failure(() => sysfs.cat(`${NIC_DIR}/${a}`))).toEqual({
        errno: "EINVAL",
        op: `read ${NIC_DIR}/${a}`,
        detail: "outbound ring of relid 2 is not mapped (channel not opened)",
      });
    }
    for (const a of ["in_intr_mask", "in_read_index", "in_write_index", "in_read_bytes_avail", "in_write_bytes_avail"]) {
      expect(failure(() => sysfs.cat(`${NIC_DIR}/${a}`))).toEqual({
        errno: "EINVAL",
        op: `read ${NIC_DIR}/${a}`,
        detail: "inbound ring of relid 2 is not mapped (channel not opened)",
      });
    }
  });

  it("lists channel_vp_mapping primary first, then sub-channels in list order", () => {
    const { sysfs } = setup();
    expect(sysfs.cat(`${SCSI_DIR}/channel_vp_mapping`)).toBe("14:0\n16:3\n15:1\n");
  });
});

describe("channel attributes (§9.3)", () => {
  it("formats an open, monitored channel", () => {
    const { sysfs } = setup();
    const cat = (a: string) => sysfs.cat(`${SCSI_DIR}/channels/14/${a}`);
    expect(cat("out_mask")).toBe("0\n");
    expect(cat("in_mask")).toBe("1\n");
    expect(cat("read_avail")).toBe("24\n");
    expect(cat("write_avail")).toBe("4032\n");
    expect(cat("cpu")).toBe("0\n");
    expect(cat("pending")).toBe("-2147483640\n");
    expect(cat("latency")).toBe("50\n");
    expect(cat("interrupts")).toBe("1234\n");
    expect(cat("events")).toBe("567\n");
    expect(cat("intr_in_full")).toBe("2\n");
    expect(cat("intr_out_empty")).toBe("89\n");
    expect(cat("out_full_first")).toBe("1\n");
    expect(cat("out_full_total")).toBe("3\n");
    expect(cat("monitor_id")).toBe("3\n");
    expect(cat("subchannel_id")).toBe("0\n");
    expect(sysfs.cat(`${SCSI_DIR}/channels/16/subchannel_id`)).toBe("2\n");
    expect(sysfs.cat(`${SCSI_DIR}/channels/16/cpu`)).toBe("3\n");
    expect(sysfs.cat(`${SCSI_DIR}/channels/16/monitor_id`)).toBe("5\n");
    expect(sysfs.cat(`${SCSI_DIR}/channels/16/read_avail`)).toBe("0\n");
    expect(sysfs.cat(`${SCSI_DIR}/channels/16/write_avail`)).toBe("4096\n");
  });

  it("prints 64-bit counters past 2^32 with %llu", () => {
    const { sysfs, ch } = setup();
    ch[14].interrupts = 2 ** 40 + 5;
    expect(sysfs.cat(`${SCSI_DIR}/channels/14/interrupts`)).toBe("1099511627781\n");
  });

  it("fails ring attributes of an unopened channel with EINVAL; the rest still read", () => {
    const { sysfs } = setup();
    const dir = `${SCSI_DIR}/channels/15`;
    for (const [a, which] of [
      ["out_mask", "outbound"],
      ["in_mask", "inbound"],
      ["read_avail", "inbound"],
      ["write_avail", "outbound"],
    ] as const) {
      expect(failure(() => sysfs.cat(`${dir}/${a}`))).toEqual({
        errno: "EINVAL",
        op: `read ${dir}/${a}`,
        detail: `${which} ring of relid 15 is not mapped (channel not opened)`,
      });
    }
    expect(sysfs.cat(`${dir}/cpu`)).toBe("1\n");
    expect(sysfs.cat(`${dir}/interrupts`)).toBe("0\n");
  });
});

describe("errors", () => {
  it("EINVAL for a directory, EACCES for write-only reads and read-only writes, ENOENT for missing", async () => {
    const { sysfs } = setup();
    expect(failure(() => sysfs.cat(`${SCSI_DIR}/channels`))).toEqual({
      errno: "EINVAL",
      op: `read ${SCSI_DIR}/channels`,
      detail: "is a directory (EISDIR)",
    });
    expect(failure(() => sysfs.cat("/sys/bus/vmbus/drivers/hv_netvsc/new_id"))).toEqual({
      errno: "EACCES",
      op: "read /sys/bus/vmbus/drivers/hv_netvsc/new_id",
      detail: "write-only attribute",
    });
    expect(failure(() => sysfs.ls(`${SCSI_DIR}/id`))).toEqual({
      errno: "EINVAL",
      op: `readdir ${SCSI_DIR}/id`,
      detail: "not a directory (ENOTDIR)",
    });
    expect(failure(() => sysfs.cat(`${SCSI_DIR}/id/x`))).toEqual({
      errno: "ENOENT",
      op: `read ${SCSI_DIR}/id/x`,
      detail: `${SCSI_DIR}/id is not a directory`,
    });
    expect(await asyncFailure(sysfs.write(`${SCSI_DIR}/channels/14/events`, "0"))).toMatchObject({
      errno: "EACCES",
      op: `write ${SCSI_DIR}/channels/14/events`,
      detail: "read-only attribute",
    });
    expect(await asyncFailure(sysfs.write(`${SCSI_DIR}/driver`, "hv_netvsc"))).toMatchObject({
      errno: "EACCES",
      op: `write ${SCSI_DIR}/driver`,
      detail: "read-only attribute",
    });
    expect(await asyncFailure(sysfs.write(`${SCSI_DIR}/channels/14`, "1"))).toMatchObject({
      errno: "EINVAL",
      op: `write ${SCSI_DIR}/channels/14`,
      detail: "is a directory (EISDIR)",
    });
    expect(await asyncFailure(sysfs.write(`${NIC_DIR}/channels/2/pending`, "1"))).toMatchObject({
      errno: "ENOENT",
      op: `write ${NIC_DIR}/channels/2/pending`,
    });
    expect(await asyncFailure(sysfs.write("/sys/bus/vmbus/drivers/nope/new_id", "x"))).toMatchObject({
      errno: "ENOENT",
      op: "write /sys/bus/vmbus/drivers/nope/new_id",
      detail: "no such file or directory: /sys/bus/vmbus/drivers/nope",
    });
  });
});

describe("cpu writes (§8.2)", () => {
  it("parses like sscanf %u, calls setTargetCpu and returns the byte count", async () => {
    const { sysfs, ch } = setup();
    const path = `${SCSI_DIR}/channels/14/cpu`;
    expect(await sysfs.write(path, "2\n")).toBe(2);
    expect(ch[14].cpuWrites).toEqual([2]);
    expect(sysfs.cat(path)).toBe("2\n");
    expect(await sysfs.write(path, "  3abc")).toBe(6);
    expect(await sysfs.write(path, "0x5")).toBe(3); // base 10: "0", then stops at "x"
    expect(await sysfs.write(path, "4294967297\n")).toBe(11); // wraps to 1 in an unsigned int
    expect(ch[14].cpuWrites).toEqual([2, 3, 0, 1]);
  });

  it("fails with EIO when nothing parses, without calling setTargetCpu", async () => {
    const { sysfs, ch } = setup();
    const path = `${SCSI_DIR}/channels/14/cpu`;
    for (const v of ["abc", "-1", "+1", "\n", " ", "\u0000 1"]) {
      expect(await asyncFailure(sysfs.write(path, v))).toMatchObject({
        errno: "EIO",
        op: `write ${path}`,
        detail: `cannot parse ${JSON.stringify(v)} as an unsigned integer`,
      });
    }
    expect(ch[14].cpuWrites).toEqual([]);
  });

  it("a zero-byte write returns 0 and does nothing (sysfs_kf_write)", async () => {
    const { sysfs, ch } = setup();
    expect(await sysfs.write(`${SCSI_DIR}/channels/14/cpu`, "")).toBe(0);
    expect(ch[14].cpuWrites).toEqual([]);
  });

  it("propagates setTargetCpu's ErrnoError with the write's op and the original as cause", async () => {
    const { sysfs, ch } = setup();
    const path = `${SCSI_DIR}/channels/15/cpu`;
    const original = new ErrnoError("EIO", "vmbus_channel_set_cpu relid 15", "channel is not opened (state 0)");
    ch[15].failWith = original;
    const f = await asyncFailure(sysfs.write(path, "2"));
    expect(f).toMatchObject({ errno: "EIO", op: `write ${path}`, detail: "channel is not opened (state 0)" });
    expect(f.error.cause).toBe(original);
    expect(f.error.errnoValue).toBe(5);
    expect(ch[15].cpuWrites).toEqual([2]);

    // An error that already names this write comes through as it is.
    const same = new ErrnoError("EINVAL", `write ${path}`, "CPU 9 is offline");
    ch[15].failWith = same;
    const g = await asyncFailure(sysfs.write(path, "9"));
    expect(g.error).toBe(same);
  });

  it("lets errors that are not ErrnoErrors through unchanged", async () => {
    const { sysfs, ch } = setup();
    const bug = new TypeError("bug");
    ch[14].failWith = bug;
    await expect(sysfs.write(`${SCSI_DIR}/channels/14/cpu`, "1")).rejects.toBe(bug);
  });
});

describe("driver_override", () => {
  it("shows (null), sets, strips the newline, clears with a newline or NUL", async () => {
    const { sysfs, scsi } = setup();
    const path = `${SCSI_DIR}/driver_override`;
    expect(sysfs.cat(path)).toBe("(null)\n");
    expect(await sysfs.write(path, "uio_hv_generic\n")).toBe(15);
    expect(scsi.driverOverride).toBe("uio_hv_generic");
    expect(sysfs.cat(path)).toBe("uio_hv_generic\n");
    expect(await sysfs.write(path, "hv_netvsc")).toBe(9);
    expect(sysfs.cat(path)).toBe("hv_netvsc\n");
    // Cut at the first newline, not only a trailing one.
    expect(await sysfs.write(path, "a\nb\n")).toBe(4);
    expect(scsi.driverOverride).toBe("a");
    expect(await sysfs.write(path, "\n")).toBe(1);
    expect(scsi.driverOverride).toBeNull();
    expect(sysfs.cat(path)).toBe("(null)\n");
    await sysfs.write(path, "x");
    expect(await sysfs.write(path, new Uint8Array([0]))).toBe(1);
    expect(scsi.driverOverride).toBeNull();
    await sysfs.write(path, "x");
    // A zero-byte write never reaches the store: the value stays.
    expect(await sysfs.write(path, "")).toBe(0);
    expect(scsi.driverOverride).toBe("x");
  });

  it("accepts 4094 bytes and refuses 4095 or more with EINVAL", async () => {
    const { sysfs, scsi } = setup();
    const path = `${SCSI_DIR}/driver_override`;
    const ok = "d".repeat(4094);
    expect(await sysfs.write(path, ok)).toBe(4094);
    expect(scsi.driverOverride).toBe(ok);
    expect(await asyncFailure(sysfs.write(path, `${"e".repeat(4094)}\n`))).toMatchObject({
      errno: "EINVAL",
      op: `write ${path}`,
      detail: "value of 4095 bytes is too long: driver_override takes at most 4094 bytes (count < PAGE_SIZE - 1)",
    });
    // Longer than a page: kernfs passes only PAGE_SIZE bytes to the store.
    expect(await asyncFailure(sysfs.write(path, "f".repeat(10000)))).toMatchObject({
      errno: "EINVAL",
      detail: "value of 4096 bytes is too long: driver_override takes at most 4094 bytes (count < PAGE_SIZE - 1)",
    });
    expect(scsi.driverOverride).toBe(ok);
  });

  it("counts bytes, not characters", async () => {
    const { sysfs, scsi } = setup();
    expect(await sysfs.write(`${SCSI_DIR}/driver_override`, "é\n")).toBe(3);
    expect(scsi.driverOverride).toBe("é");
  });
});

describe("uevent writes", () => {
  it("accepts a kobject action and refuses anything else with EINVAL", async () => {
    const { sysfs } = setup();
    const path = `${SCSI_DIR}/uevent`;
    expect(await sysfs.write(path, "change\n")).toBe(7);
    expect(await sysfs.write(path, "add")).toBe(3);
    expect(await asyncFailure(sysfs.write(path, "poke\n"))).toMatchObject({
      errno: "EINVAL",
      op: `write ${path}`,
      detail: 'unknown uevent action string "poke\\n"',
    });
  });
});

describe("drivers and the bus", () => {
  it("new_id / remove_id parse the GUID like guid_parse and call the bus", async () => {
    const { sysfs, bus } = setup();
    const newId = "/sys/bus/vmbus/drivers/hv_storvsc/new_id";
    const removeId = "/sys/bus/vmbus/drivers/hv_storvsc/remove_id";
    expect(await sysfs.write(newId, "F8615163-DF3E-46C5-913F-F2D2F965ED0E\n")).toBe(37);
    expect(bus.calls).toEqual(["newId hv_storvsc f8615163-df3e-46c5-913f-f2d2f965ed0e"]);
    expect(await asyncFailure(sysfs.write(newId, "f8615163-df3e-46c5-913f-f2d2f965ed0e"))).toMatchObject({
      errno: "EEXIST",
      op: `write ${newId}`,
      detail: "f8615163-df3e-46c5-913f-f2d2f965ed0e is already an id of hv_storvsc",
    });
    expect(await asyncFailure(sysfs.write(newId, "{f8615163-df3e-46c5-913f-f2d2f965ed0e}"))).toMatchObject({
      errno: "EINVAL",
      op: `write ${newId}`,
      detail: '"{f8615163-df3e-46c5-913f-f2d2f965ed0e}" is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)',
    });
    expect(await sysfs.write(removeId, "f8615163-df3e-46c5-913f-f2d2f965ed0e")).toBe(36);
    expect(await asyncFailure(sysfs.write(removeId, "f8615163-df3e-46c5-913f-f2d2f965ed0e"))).toMatchObject({
      errno: "ENODEV",
      op: `write ${removeId}`,
    });
    expect(await asyncFailure(sysfs.write(removeId, "f8615163-df3e-46c5-913f"))).toMatchObject({ errno: "EINVAL" });
    expect(bus.calls).toEqual([
      "newId hv_storvsc f8615163-df3e-46c5-913f-f2d2f965ed0e",
      "newId hv_storvsc f8615163-df3e-46c5-913f-f2d2f965ed0e",
      "removeId hv_storvsc f8615163-df3e-46c5-913f-f2d2f965ed0e",
      "removeId hv_storvsc f8615163-df3e-46c5-913f-f2d2f965ed0e",
    ]);
  });

  it("hibernation shows 0/1", () => {
    const { sysfs, bus } = setup();
    expect(sysfs.cat("/sys/bus/vmbus/hibernation")).toBe("0\n");
    bus.hibernation = true;
    expect(sysfs.cat("/sys/bus/vmbus/hibernation")).toBe("1\n");
  });

  it("walks the whole tree depth first in sorted order", () => {
    const { sysfs } = setup();
    const paths = sysfs.walk("/sys/bus/vmbus").map((e) => e.path);
    expect(paths.slice(0, 4)).toEqual([
      "/sys/bus/vmbus",
      "/sys/bus/vmbus/devices",
      SCSI_DIR,
      `${SCSI_DIR}/channel_vp_mapping`,
    ]);
    expect(paths.slice(-6)).toEqual([
      "/sys/bus/vmbus/drivers/hv_netvsc/new_id",
      "/sys/bus/vmbus/drivers/hv_netvsc/remove_id",
      "/sys/bus/vmbus/drivers/hv_storvsc",
      "/sys/bus/vmbus/drivers/hv_storvsc/new_id",
      "/sys/bus/vmbus/drivers/hv_storvsc/remove_id",
      "/sys/bus/vmbus/hibernation",
    ]);
    // vmbus + devices; SCSI: dir + 29 names + 3 channel dirs of 15 attributes;
    // NIC: dir + 21 names + relid 2's dir of 12; drivers: 1 + 2 × 3; hibernation
    expect(paths.length).toBe(2 + (1 + 29 + 3 * (1 + 15)) + (1 + 21 + 1 + 12) + 7 + 1);
  });
});
