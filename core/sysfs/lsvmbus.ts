/**
 * Linux's `tools/hv/lsvmbus` (vmbus-core.md §9.4), run against a
 * `VmbusSysfs` instead of the real /sys: the same files read, the same
 * sorting, the same Python `%` formats, one `print()` (text + "\n") per
 * device.
 *
 * What the script does, step by step:
 * - for each entry of /sys/bus/vmbus/devices: read `id`, `class_id`,
 *   `device_id` (first line, stripped) and the lines of `channel_vp_mapping`
 *   (a read error gives no lines); look up the description by `class_id`
 *   (with braces) or "Unknown";
 * - sort the mapping lines by relid (numeric) and render each as
 *   "\tRel_ID=<relid>, target_cpu=<cpu>", joined with "\n", plus a final
 *   "\n" when there is any;
 * - sort the devices by numeric id (a stable sort: ties keep listing order,
 *   which here is the sorted directory listing);
 * - print 'VMBUS ID %2s: …' in the format of the verbosity.
 * A failed read of `id`, `class_id` or `device_id` makes the script die
 * (IndexError); here the `ErrnoError` of the read is thrown.
 */
import { ErrnoError, InvalidArgumentError } from "../errors.js";
import { SYSFS_VMBUS_DEVICES_PATH, type VmbusSysfs } from "./sysfs.js";

/** The script's `vmbus_dev_dict`: class_id as sysfs shows it (braces, lowercase) → description. */
export const LSVMBUS_DESCRIPTIONS: ReadonlyMap<string, string> = new Map([
  ["{0e0b6031-5213-4934-818b-38d90ced39db}", "[Operating system shutdown]"],
  ["{9527e630-d0ae-497b-adce-e80ab0175caf}", "[Time Synchronization]"],
  ["{57164f39-9115-4e78-ab55-382f3bd5422d}", "[Heartbeat]"],
  ["{a9a0f4e7-5a45-4d96-b827-8a841e8c03e6}", "[Data Exchange]"],
  ["{35fa2e29-ea23-4236-96ae-3a6ebacba440}", "[Backup (volume checkpoint)]"],
  ["{34d14be3-dee4-41c8-9ae7-6b174977c192}", "[Guest services]"],
  ["{525074dc-8985-46e2-8057-a307dc18a502}", "[Dynamic Memory]"],
  ["{cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a}", "Synthetic mouse"],
  ["{f912ad6d-2b17-48ea-bd65-f927a61c7684}", "Synthetic keyboard"],
  ["{da0a7802-e377-4aac-8e77-0558eb1073f8}", "Synthetic framebuffer adapter"],
  ["{f8615163-df3e-46c5-913f-f2d2f965ed0e}", "Synthetic network adapter"],
  ["{32412632-86cb-44a2-9b5c-50d1417354f5}", "Synthetic IDE Controller"],
  ["{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}", "Synthetic SCSI Controller"],
  ["{2f9bcc4a-0069-4af3-b76b-6fd0be528cda}", "Synthetic fiber channel adapter"],
  ["{8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501}", "Synthetic RDMA adapter"],
  ["{44c4f61d-4444-4400-9d52-802e27ede19f}", "PCI Express pass-through"],
  ["{276aacf4-ac15-426c-98dd-7521ad3f01fe}", "[Reserved system device]"],
  ["{f8e65716-3cb3-4a06-9a60-1889c5cccab5}", "[Reserved system device]"],
  ["{3375baf4-9e15-4b30-b765-67acb10d607b}", "[Reserved system device]"],
]);

/** Python's `%2s`: right-aligned in at least 2 columns, never cut. */
function pad2(s: string): string {
  return s.padStart(2, " ");
}

/** Python's str.strip() for the ASCII white space sysfs can contain. */
function strip(s: string): string {
  return s.replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "");
}

/** Python's file.readlines(): lines with their "\n", the last one possibly without. */
function readlines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) {
    out.push(text.slice(start, i + 1));
    start = i + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/** Python's int() of a decimal string; the script dies on anything else, so this throws. */
function pyInt(s: string, what: string): number {
  const t = strip(s);
  if (!/^[+-]?\d+$/.test(t)) throw new InvalidArgumentError(what, s, "lsvmbus needs a decimal integer (Python int())");
  return Number.parseInt(t, 10);
}

interface LsvmbusDevice {
  readonly sysfsPath: string;
  readonly vmbusId: string;
  readonly classId: string;
  readonly deviceId: string;
  readonly desc: string;
  readonly mapping: string;
}

/**
 * The output of `lsvmbus` (verbosity 0), `lsvmbus -v` (1) or `lsvmbus -vv`
 * (2 or more), the whole of it.
 */
export function lsvmbus(sysfs: VmbusSysfs, verbosity = 0): string {
  if (!Number.isInteger(verbosity) || verbosity < 0) {
    throw new InvalidArgumentError("lsvmbus verbosity", verbosity, "must be a non-negative integer (count of -v)");
  }
  const base = SYSFS_VMBUS_DEVICES_PATH;
  const firstLine = (name: string, attr: string): string => {
    const lines = readlines(sysfs.cat(`${base}/${name}/${attr}`));
    return strip(lines[0] ?? "");
  };
  const devices: LsvmbusDevice[] = [];
  for (const name of sysfs.ls(base)) {
    const vmbusId = firstLine(name, "id");
    const classId = firstLine(name, "class_id");
    const deviceId = firstLine(name, "device_id");
    let lines: string[];
    try {
      lines = readlines(sysfs.cat(`${base}/${name}/channel_vp_mapping`));
    } catch (e) {
      // `except IOError: lines = []`
      if (!(e instanceof ErrnoError)) throw e;
      lines = [];
    }
    const pairs = lines
      .map(strip)
      .map((c) => c.split(":"))
      .map((parts) => ({ parts, relid: pyInt(parts[0] ?? "", "channel_vp_mapping relid") }))
      .sort((a, b) => a.relid - b.relid)
      .map(({ parts }) => `\tRel_ID=${parts[0] ?? ""}, target_cpu=${parts[1] ?? ""}`);
    let mapping = pairs.join("\n");
    if (mapping !== "") mapping += "\n";
    devices.push({
      sysfsPath: `${base}/${name}`,
      vmbusId,
      classId,
      deviceId,
      desc: LSVMBUS_DESCRIPTIONS.get(classId) ?? "Unknown",
      mapping,
    });
  }
  const keyed = devices.map((d) => ({ d, id: pyInt(d.vmbusId, "id") }));
  keyed.sort((a, b) => a.id - b.id);
  let out = "";
  for (const { d } of keyed) {
    if (verbosity === 0) {
      out += `VMBUS ID ${pad2(d.vmbusId)}: ${d.desc}\n`;
    } else if (verbosity === 1) {
      out += `VMBUS ID ${pad2(d.vmbusId)}: Class_ID = ${d.classId} - ${d.desc}\n${d.mapping}\n`;
    } else {
      out +=
        `VMBUS ID ${pad2(d.vmbusId)}: Class_ID = ${d.classId} - ${d.desc}\n` +
        `\tDevice_ID = ${d.deviceId}\n\tSysfs path: ${d.sysfsPath}\n${d.mapping}\n`;
    }
  }
  return out;
}
