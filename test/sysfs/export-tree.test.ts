/** Tests for core/sysfs/export-tree.ts: the tree written to a real directory and read back. */
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { VmbusSysfs, exportTree } from "../../core/sysfs/index.js";
import { NIC_DIR, SCSI_DIR, twoDevices } from "./fakes.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vmbus-sysfs-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const host = (p: string) => join(dir, ...p.split("/").filter(Boolean));

describe("exportTree", () => {
  it("mirrors /sys under the directory with every readable attribute's content", async () => {
    const { bus } = twoDevices();
    const sysfs = new VmbusSysfs(bus);
    const report = await exportTree(sysfs, dir);

    expect(await readdir(host("/sys/bus/vmbus"))).toEqual(["devices", "drivers", "hibernation"]);
    expect((await readdir(host("/sys/bus/vmbus/devices"))).sort()).toEqual(sysfs.ls("/sys/bus/vmbus/devices"));
    expect(await readFile(host(`${SCSI_DIR}/id`), "utf8")).toBe("14\n");
    expect(await readFile(host(`${SCSI_DIR}/class_id`), "utf8")).toBe("{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}\n");
    expect(await readFile(host(`${SCSI_DIR}/channel_vp_mapping`), "utf8")).toBe("14:0\n16:3\n15:1\n");
    expect(await readFile(host(`${SCSI_DIR}/driver`), "utf8")).toBe("hv_storvsc\n");
    expect(await readFile(host(`${SCSI_DIR}/driver_override`), "utf8")).toBe("(null)\n");
    expect(await readFile(host(`${SCSI_DIR}/channels/14/cpu`), "utf8")).toBe("0\n");
    expect(await readFile(host(`${SCSI_DIR}/channels/14/read_avail`), "utf8")).toBe("24\n");
    expect(await readFile(host(`${NIC_DIR}/modalias`), "utf8")).toBe("vmbus:635161f83edfc546913ff2d2f965ed0e\n");
    expect(await readFile(host("/sys/bus/vmbus/hibernation"), "utf8")).toBe("0\n");

    // Every exported file holds exactly what cat shows.
    let checked = 0;
    for (const e of sysfs.walk("/sys")) {
      if (e.stat.kind === "dir") {
        expect((await stat(host(e.path))).isDirectory()).toBe(true);
        continue;
      }
      if (report.skipped.some((s) => s.path === e.path)) continue;
      expect(await readFile(host(e.path), "utf8")).toBe(sysfs.cat(e.path));
      checked++;
    }
    expect(checked).toBe(report.files);
    expect(report).toMatchObject({ root: dir, dirs: 15, files: 88 });
  });

  it("skips attributes that fail to read and lists them", async () => {
    const { bus } = twoDevices();
    const report = await exportTree(new VmbusSysfs(bus), dir);
    const ring = ["in_intr_mask", "in_read_bytes_avail", "in_read_index", "in_write_bytes_avail", "in_write_index"];
    const expected = [
      ...["out_mask", "in_mask", "read_avail", "write_avail"]
        .sort()
        .map((a) => ({ path: `${SCSI_DIR}/channels/15/${a}`, errno: "EINVAL" })),
      // "channels" sorts before "in_*" in the device directory.
      ...["in_mask", "out_mask", "read_avail", "write_avail"].map((a) => ({ path: `${NIC_DIR}/channels/2/${a}`, errno: "EINVAL" })),
      ...[...ring, ...ring.map((a) => a.replace("in_", "out_"))].sort().map((a) => ({ path: `${NIC_DIR}/${a}`, errno: "EINVAL" })),
      ...["hv_netvsc", "hv_storvsc"].flatMap((d) =>
        ["new_id", "remove_id"].map((a) => ({ path: `/sys/bus/vmbus/drivers/${d}/${a}`, errno: "EACCES" })),
      ),
    ];
    expect(report.skipped.map(({ path, errno }) => ({ path, errno }))).toEqual(expected);
    expect(report.skipped[0]?.detail).toBe("inbound ring of relid 15 is not mapped (channel not opened)");
    expect(report.skipped.at(-1)?.detail).toBe("write-only attribute");
    await expect(stat(host(`${NIC_DIR}/out_read_index`))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(host("/sys/bus/vmbus/drivers/hv_netvsc/new_id"))).rejects.toMatchObject({ code: "ENOENT" });
    expect((await stat(host("/sys/bus/vmbus/drivers/hv_netvsc"))).isDirectory()).toBe(true);
  });

  it("overwrites an earlier export with the current state", async () => {
    const { bus, scsi } = twoDevices();
    const sysfs = new VmbusSysfs(bus);
    await exportTree(sysfs, dir);
    await sysfs.write(`${SCSI_DIR}/driver_override`, "uio_hv_generic\n");
    scsi.primary.targetCpu = 2;
    await exportTree(sysfs, dir);
    expect(await readFile(host(`${SCSI_DIR}/driver_override`), "utf8")).toBe("uio_hv_generic\n");
    expect(await readFile(host(`${SCSI_DIR}/channel_vp_mapping`), "utf8")).toBe("14:2\n16:3\n15:1\n");
  });
});
