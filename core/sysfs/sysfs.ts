/**
 * The guest's VMBus sysfs tree (vmbus-core.md §9): `/sys/bus/vmbus/devices/
 * <instance>/` with the §9.2 attributes and `channels/<relid>/` with the
 * §9.3 ones, `/sys/bus/vmbus/drivers/<name>/{new_id,remove_id}` and
 * `/sys/bus/vmbus/hibernation` (§9.1).
 *
 * The tree is built from the `SysfsBus` at each call, so it always shows the
 * bus as it is now (devices offered or rescinded, channels opened). Reading
 * formats what the bus reports with the printf formats of `vmbus_drv.c`;
 * writing goes through the same parse rules as the kernel's store callbacks
 * (`store-parsers.ts`) and then calls the bus (`setTargetCpu`, `newId`,
 * `removeId`) or sets `driverOverride`. Nothing else changes state.
 *
 * Errors are `ErrnoError`s whose `op` is `read <path>`, `write <path>`,
 * `readdir <path>` or `stat <path>` (the path normalised: no trailing slash,
 * no `.`/`..`). Where Linux would return an errno that `ERRNO` does not
 * model, the closest one is used and the detail says what Linux says:
 * - reading or writing a directory (Linux EISDIR) → EINVAL, "is a directory";
 * - listing a file, or a path through a file (Linux ENOTDIR) → EINVAL
 *   "not a directory" for `ls`, ENOENT for a path that goes through a file.
 * As root on Linux: reading a write-only attribute → EACCES, writing a
 * read-only one → EACCES ("read-only attribute"), a missing or hidden
 * attribute → ENOENT.
 *
 * Not modelled: `numa_node` (CONFIG_NUMA; the bus has no NUMA topology),
 * `subsystem`, `power/`, the binary `ring` file (§9.3, only with
 * uio_hv_generic), driver `bind`/`unbind`, and the PAGE_SIZE cut of show
 * output (no attribute here comes near 4 KiB). The `driver` symlink is a
 * read-only file whose content is the driver's name and a newline.
 */
import { ErrnoError, InvalidArgumentError } from "../errors.js";
import type { RingBuffer, RingDebugInfo } from "../ring/ring-buffer.js";
import type { SysfsBus, SysfsChannel, SysfsDevice } from "./source.js";
import {
  SYSFS_BUFFER_SIZE,
  driverSetOverride,
  kobjectActionType,
  parseUuidPrefix,
  scanUnsigned,
} from "./store-parsers.js";

export const SYSFS_VMBUS_PATH = "/sys/bus/vmbus";
export const SYSFS_VMBUS_DEVICES_PATH = "/sys/bus/vmbus/devices";
export const SYSFS_VMBUS_DRIVERS_PATH = "/sys/bus/vmbus/drivers";

/** Directory mode (`drwxr-xr-x`). */
export const SYSFS_MODE_DIR = 0o755;
/** Read-only attribute (`DEVICE_ATTR_RO`, `S_IRUGO`). */
export const SYSFS_MODE_RO = 0o444;
/** Read-write attribute (`DEVICE_ATTR_RW`, `channels/<relid>/cpu`). */
export const SYSFS_MODE_RW = 0o644;
/** Write-only attribute (`DRIVER_ATTR_WO`: `new_id`, `remove_id`). */
export const SYSFS_MODE_WO = 0o200;

export type SysfsNodeKind = "file" | "dir";

export interface SysfsStat {
  readonly kind: SysfsNodeKind;
  /** Permission bits (0o444, 0o644, 0o200, 0o755). */
  readonly mode: number;
  /** For a modelled symlink (the device's `driver`): the absolute path it points to. */
  readonly link?: string;
}

/** One entry of `VmbusSysfs.walk`. */
export interface SysfsEntry {
  readonly path: string;
  readonly stat: SysfsStat;
}

type Show = (op: string) => string;
/** Gets the bytes the kernel's store gets (already capped at PAGE_SIZE, never empty); returns the byte count. */
type Store = (buf: Uint8Array, op: string) => Promise<number>;

interface FileNode {
  readonly kind: "file";
  readonly mode: number;
  readonly show?: Show;
  readonly store?: Store;
  readonly link?: string;
}

interface DirNode {
  readonly kind: "dir";
  readonly mode: number;
  children(): ReadonlyMap<string, SysfsNode>;
}

type SysfsNode = FileNode | DirNode;

// --- printf helpers -----------------------------------------------------------

/** `%d` of a 32-bit field. */
function d32(n: number): string {
  return String(n | 0);
}

/** `%u` of a 32-bit field. */
function u32(n: number): string {
  return String(n >>> 0);
}

/** `0x%x` of a 32-bit field. */
function x32(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** `%llu` of a u64 counter. */
function u64(n: number, what: string): string {
  if (!Number.isInteger(n)) throw new InvalidArgumentError(what, n, "a counter must be an integer");
  return n >= 0 && Number.isSafeInteger(n) ? String(n) : BigInt.asUintN(64, BigInt(n)).toString();
}

const encoder = new TextEncoder();

function toBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

function printable(buf: Uint8Array): string {
  return JSON.stringify(new TextDecoder().decode(buf));
}

/**
 * Runs a bus call for a store; an `ErrnoError` it throws comes back with the
 * same errno and detail but this write's `op` (the original is its `cause`),
 * unless it already names this write.
 */
async function busCall<T>(op: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ErrnoError && e.op !== op) {
      const wrapped = new ErrnoError(e.errno, op, e.detail);
      wrapped.cause = e;
      throw wrapped;
    }
    throw e;
  }
}

function ringInfo(ring: RingBuffer | null, which: "outbound" | "inbound", relid: number, op: string): RingDebugInfo {
  if (ring === null) {
    throw new ErrnoError("EINVAL", op, `${which} ring of relid ${relid} is not mapped (channel not opened)`);
  }
  return ring.debugInfo();
}

function file(mode: number, show?: Show, store?: Store): FileNode {
  if (show && store) return { kind: "file", mode, show, store };
  if (show) return { kind: "file", mode, show };
  if (store) return { kind: "file", mode, store };
  return { kind: "file", mode };
}

function ro(show: Show): FileNode {
  return file(SYSFS_MODE_RO, show);
}

function dir(build: () => Iterable<readonly [string, SysfsNode]>): DirNode {
  return {
    kind: "dir",
    mode: SYSFS_MODE_DIR,
    children: () => {
      const m = new Map<string, SysfsNode>();
      for (const [name, node] of build()) if (!m.has(name)) m.set(name, node);
      return m;
    },
  };
}

// --- attributes ---------------------------------------------------------------

/** The §9.2 attributes whose visibility depends on `monitor_allocated`. */
export const DEVICE_MONITOR_ATTRIBUTES: readonly string[] = Object.freeze([
  "monitor_id",
  "server_monitor_pending",
  "client_monitor_pending",
  "server_monitor_latency",
  "client_monitor_latency",
  "server_monitor_conn_id",
  "client_monitor_conn_id",
]);

/** The §9.3 attributes whose visibility depends on `monitor_allocated`. */
export const CHANNEL_MONITOR_ATTRIBUTES: readonly string[] = Object.freeze(["pending", "latency", "monitor_id"]);

function deviceAttributes(d: SysfsDevice): [string, SysfsNode][] {
  const p = d.primary;
  const out: [string, SysfsNode][] = [
    ["id", ro(() => `${d32(p.relid)}\n`)],
    ["state", ro(() => `${d32(p.state)}\n`)],
    ["class_id", ro(() => `${d.classId.toBracedString()}\n`)],
    ["device_id", ro(() => `${d.instanceId.toBracedString()}\n`)],
    ["modalias", ro(() => `vmbus:${d.classId.modaliasHex()}\n`)],
  ];
  if (p.monitorAllocated) {
    out.push(
      ["monitor_id", ro(() => `${d32(p.monitorId & 0xff)}\n`)],
      ["server_monitor_pending", ro(() => `${d32(p.monitorPending(0))}\n`)],
      ["client_monitor_pending", ro(() => `${d32(p.monitorPending(1))}\n`)],
      ["server_monitor_latency", ro(() => `${d32(p.monitorLatency(0))}\n`)],
      ["client_monitor_latency", ro(() => `${d32(p.monitorLatency(1))}\n`)],
      ["server_monitor_conn_id", ro(() => `${d32(p.monitorConnectionId(0))}\n`)],
      ["client_monitor_conn_id", ro(() => `${d32(p.monitorConnectionId(1))}\n`)],
    );
  }
  for (const [prefix, which] of [
    ["out", "outbound"],
    ["in", "inbound"],
  ] as const) {
    const info = (op: string): RingDebugInfo => ringInfo(p[which], which, p.relid, op);
    out.push(
      [`${prefix}_intr_mask`, ro((op) => `${d32(info(op).interruptMask)}\n`)],
      [`${prefix}_read_index`, ro((op) => `${d32(info(op).readIndex)}\n`)],
      [`${prefix}_write_index`, ro((op) => `${d32(info(op).writeIndex)}\n`)],
      [`${prefix}_read_bytes_avail`, ro((op) => `${d32(info(op).bytesAvailToRead)}\n`)],
      [`${prefix}_write_bytes_avail`, ro((op) => `${d32(info(op).bytesAvailToWrite)}\n`)],
    );
  }
  out.push(
    [
      "channel_vp_mapping",
      ro(() => {
        // The primary, then its sub-channel list (`sc_list`).
        let s = `${u32(p.relid)}:${u32(p.targetCpu)}\n`;
        for (const c of d.channels()) if (c.relid !== p.relid) s += `${u32(c.relid)}:${u32(c.targetCpu)}\n`;
        return s;
      }),
    ],
    ["vendor", ro(() => `${x32(d.vendorId)}\n`)],
    ["device", ro(() => `${x32(d.deviceTypeIndex)}\n`)],
    [
      "driver_override",
      file(
        SYSFS_MODE_RW,
        // `%s` of a NULL pointer prints "(null)".
        () => `${d.driverOverride ?? "(null)"}\n`,
        async (buf, op) => {
          const r = driverSetOverride(buf);
          if (!r.ok) throw new ErrnoError("EINVAL", op, r.reason);
          d.driverOverride = r.value;
          return buf.length;
        },
      ),
    ],
    [
      "uevent",
      file(
        SYSFS_MODE_RW,
        () => {
          // dev_uevent: DRIVER= when bound, then the bus's vmbus_uevent.
          const drv = d.driverName !== null ? `DRIVER=${d.driverName}\n` : "";
          return `${drv}MODALIAS=vmbus:${d.classId.modaliasHex()}\n`;
        },
        async (buf, op) => {
          if (kobjectActionType(buf) === null) {
            throw new ErrnoError("EINVAL", op, `unknown uevent action string ${printable(buf)}`);
          }
          return buf.length;
        },
      ),
    ],
    ["channels", dir(() => d.channels().map((c) => [u32(c.relid), channelDir(c)] as const))],
  );
  if (d.driverName !== null) {
    const name = d.driverName;
    out.push(["driver", { kind: "file", mode: SYSFS_MODE_RO, show: () => `${name}\n`, link: `${SYSFS_VMBUS_DRIVERS_PATH}/${name}` }]);
  }
  return out;
}

function channelDir(c: SysfsChannel): DirNode {
  return dir(() => {
    const out: [string, SysfsNode][] = [
      ["out_mask", ro((op) => `${u32(ringInfo(c.outbound, "outbound", c.relid, op).interruptMask)}\n`)],
      ["in_mask", ro((op) => `${u32(ringInfo(c.inbound, "inbound", c.relid, op).interruptMask)}\n`)],
      ["read_avail", ro((op) => `${u32(ringInfo(c.inbound, "inbound", c.relid, op).bytesAvailToRead)}\n`)],
      ["write_avail", ro((op) => `${u32(ringInfo(c.outbound, "outbound", c.relid, op).bytesAvailToWrite)}\n`)],
      [
        "cpu",
        file(
          SYSFS_MODE_RW,
          () => `${u32(c.targetCpu)}\n`,
          async (buf, op) => {
            // target_cpu_store: sscanf(buf, "%uu", &target_cpu) != 1 → -EIO (§8.2);
            // every other check is vmbus_channel_set_cpu's (setTargetCpu).
            const cpu = scanUnsigned(buf);
            if (cpu === null) {
              throw new ErrnoError("EIO", op, `cannot parse ${printable(buf)} as an unsigned integer`);
            }
            await busCall(op, () => c.setTargetCpu(cpu));
            return buf.length;
          },
        ),
      ],
      ["interrupts", ro(() => `${u64(c.interrupts, "interrupts")}\n`)],
      ["events", ro(() => `${u64(c.sigEvents, "events")}\n`)],
      ["intr_in_full", ro(() => `${u64(c.intrInFull, "intr_in_full")}\n`)],
      ["intr_out_empty", ro(() => `${u64(c.intrOutEmpty, "intr_out_empty")}\n`)],
      ["out_full_first", ro(() => `${u64(c.outFullFirst, "out_full_first")}\n`)],
      ["out_full_total", ro(() => `${u64(c.outFullTotal, "out_full_total")}\n`)],
      ["subchannel_id", ro(() => `${u32(c.subchannelIndex & 0xffff)}\n`)],
    ];
    if (c.monitorAllocated) {
      out.push(
        ["pending", ro(() => `${d32(c.monitorPending(1))}\n`)],
        ["latency", ro(() => `${d32(c.monitorLatency(1))}\n`)],
        ["monitor_id", ro(() => `${u32(c.monitorId & 0xff)}\n`)],
      );
    }
    return out;
  });
}

function driverDir(bus: SysfsBus, name: string): DirNode {
  return dir(() => [
    [
      "new_id",
      file(SYSFS_MODE_WO, undefined, async (buf, op) => {
        const guid = parseUuidPrefix(buf);
        if (guid === null) throw new ErrnoError("EINVAL", op, `${printable(buf)} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
        await busCall(op, () => bus.newId(name, guid.toString()));
        return buf.length;
      }),
    ],
    [
      "remove_id",
      file(SYSFS_MODE_WO, undefined, async (buf, op) => {
        const guid = parseUuidPrefix(buf);
        if (guid === null) throw new ErrnoError("EINVAL", op, `${printable(buf)} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
        await busCall(op, () => bus.removeId(name, guid.toString()));
        return buf.length;
      }),
    ],
  ]);
}

function rootDir(bus: SysfsBus): DirNode {
  const vmbus = dir(() => [
    ["devices", dir(() => bus.devices().map((d) => [d.instanceId.toString(), dir(() => deviceAttributes(d))] as const))],
    ["drivers", dir(() => bus.driverNames().map((n) => [n, driverDir(bus, n)] as const))],
    ["hibernation", ro(() => `${bus.hibernation ? 1 : 0}\n`)],
  ]);
  return dir(() => [["sys", dir(() => [["bus", dir(() => [["vmbus", vmbus]])]])]]);
}

// --- the tree -------------------------------------------------------------------

/** Splits an absolute path into names, dropping empty parts and `.`, applying `..`; null if relative. */
function splitPath(path: string): string[] | null {
  if (!path.startsWith("/")) return null;
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return out;
}

function statOf(node: SysfsNode): SysfsStat {
  if (node.kind === "file" && node.link !== undefined) return { kind: "file", mode: node.mode, link: node.link };
  return { kind: node.kind, mode: node.mode };
}

export class VmbusSysfs {
  constructor(readonly bus: SysfsBus) {}

  /** Resolves `path`; `verb` names the operation in errors. */
  private resolve(path: string, verb: string): { node: SysfsNode; path: string } {
    const segs = splitPath(path);
    if (segs === null) throw new ErrnoError("ENOENT", `${verb} ${path}`, "not an absolute path");
    const norm = `/${segs.join("/")}`;
    const op = `${verb} ${norm}`;
    let node: SysfsNode = rootDir(this.bus);
    let walked = "";
    for (const seg of segs) {
      if (node.kind !== "dir") throw new ErrnoError("ENOENT", op, `${walked} is not a directory`);
      const next: SysfsNode | undefined = node.children().get(seg);
      walked += `/${seg}`;
      if (next === undefined) throw new ErrnoError("ENOENT", op, `no such file or directory: ${walked}`);
      node = next;
    }
    return { node, path: norm };
  }

  /** The names in a directory, sorted (directories included). */
  ls(path: string): string[] {
    const { node, path: norm } = this.resolve(path, "readdir");
    if (node.kind !== "dir") throw new ErrnoError("EINVAL", `readdir ${norm}`, "not a directory (ENOTDIR)");
    return [...node.children().keys()].sort();
  }

  /** An attribute's content, as `cat` shows it (ends in "\n"). */
  cat(path: string): string {
    const { node, path: norm } = this.resolve(path, "read");
    const op = `read ${norm}`;
    if (node.kind === "dir") throw new ErrnoError("EINVAL", op, "is a directory (EISDIR)");
    if (node.show === undefined) throw new ErrnoError("EACCES", op, "write-only attribute");
    return node.show(op);
  }

  /**
   * One write(2) of `value` (a string is written as UTF-8) to an attribute.
   * Resolves to the byte count a successful sysfs write returns. As kernfs
   * and sysfs do: at most PAGE_SIZE bytes reach the store, and a write of
   * zero bytes returns 0 without calling it (so writing "" changes nothing;
   * write "\n" to clear `driver_override`).
   */
  async write(path: string, value: string | Uint8Array): Promise<number> {
    const { node, path: norm } = this.resolve(path, "write");
    const op = `write ${norm}`;
    if (node.kind === "dir") throw new ErrnoError("EINVAL", op, "is a directory (EISDIR)");
    if (node.store === undefined) throw new ErrnoError("EACCES", op, "read-only attribute");
    const bytes = toBytes(value);
    if (bytes.length === 0) return 0;
    return node.store(bytes.length > SYSFS_BUFFER_SIZE ? bytes.subarray(0, SYSFS_BUFFER_SIZE) : bytes, op);
  }

  stat(path: string): SysfsStat {
    return statOf(this.resolve(path, "stat").node);
  }

  exists(path: string): boolean {
    try {
      this.resolve(path, "stat");
      return true;
    } catch (e) {
      if (e instanceof ErrnoError && e.errno === "ENOENT") return false;
      throw e;
    }
  }

  /** `path` and everything below it, depth first, each directory's names sorted. */
  walk(path = "/sys"): SysfsEntry[] {
    const { node, path: norm } = this.resolve(path, "stat");
    const out: SysfsEntry[] = [];
    const visit = (n: SysfsNode, p: string): void => {
      out.push({ path: p, stat: statOf(n) });
      if (n.kind !== "dir") return;
      const children = n.children();
      for (const name of [...children.keys()].sort()) {
        const c = children.get(name);
        if (c !== undefined) visit(c, p === "/" ? `/${name}` : `${p}/${name}`);
      }
    };
    visit(node, norm);
    return out;
  }
}
