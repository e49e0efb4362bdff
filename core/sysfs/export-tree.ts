/**
 * Writes a snapshot of the sysfs tree into a real directory, so that tools
 * that read sysfs files (the real Python lsvmbus with its
 * `/sys/bus/vmbus/devices` path pointed at `<dir>/sys/bus/vmbus/devices`,
 * shell scripts, diff) can run against a simulated guest.
 *
 * The whole path is mirrored: `/sys/bus/vmbus/devices/<guid>/id` becomes
 * `<dir>/sys/bus/vmbus/devices/<guid>/id`, each file holding what `cat`
 * shows. An attribute whose read fails (a ring attribute of an unopened
 * channel: EINVAL; a write-only `new_id`: EACCES) is left out, as a
 * read error would leave it unreadable, and listed in the report. The
 * modelled `driver` symlink is a plain file with the driver's name.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ErrnoError, type ErrnoName } from "../errors.js";
import type { VmbusSysfs } from "./sysfs.js";

export interface ExportSkipped {
  /** The sysfs path (`/sys/bus/vmbus/devices/<guid>/out_intr_mask`). */
  readonly path: string;
  readonly errno: ErrnoName;
  readonly detail: string;
}

export interface ExportReport {
  /** The directory the tree was written under. */
  readonly root: string;
  readonly dirs: number;
  readonly files: number;
  readonly skipped: readonly ExportSkipped[];
}

/**
 * Writes `/sys` and everything below it under `dir` (created if missing;
 * existing files are overwritten). Errors other than a failed attribute
 * read (file-system errors, bugs) reject.
 */
export async function exportTree(sysfs: VmbusSysfs, dir: string): Promise<ExportReport> {
  let dirs = 0;
  let files = 0;
  const skipped: ExportSkipped[] = [];
  for (const entry of sysfs.walk("/sys")) {
    const target = join(dir, ...entry.path.split("/").filter((s) => s !== ""));
    if (entry.stat.kind === "dir") {
      await mkdir(target, { recursive: true });
      dirs++;
      continue;
    }
    let content: string;
    try {
      content = sysfs.cat(entry.path);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      skipped.push({ path: entry.path, errno: e.errno, detail: e.detail });
      continue;
    }
    await writeFile(target, content, "utf8");
    files++;
  }
  return { root: dir, dirs, files, skipped };
}
