/**
 * Disks described as data (a scenario's JSON), validated and built into a
 * stack of backends (storvsc-netvsc.md §6: the disks behind the SCSI
 * target; §3 the SRB's path_id / target_id / lun that address them).
 *
 *     { kind: "memory", sizeBytes: 4 << 40, blockSize: 4096, lun: 1 }
 *     { kind: "file", path: "/tmp/disk.img", sizeBytes: 64 << 20, readOnly: true,
 *       latency: { readNs: 80_000, writeNs: 100_000, perBlockNs: 200, flushNs: 1_000_000 },
 *       faults: [{ firstLba: 100, count: 8, op: "read", kind: "medium-error" }] }
 *
 * The stack, inside out: the base backend, the fault injector (always
 * present, so faults can be added while the simulation runs), the read-only
 * guard, and the latency model outermost (an I/O that fails still took its
 * time). Validation errors are `DiskSpecError`s naming the field
 * (`disks[2].latency.readNs`), the value and the rule.
 */
import { InvalidArgumentError, VmbusSimError } from "../../../core/index.js";
import { STORVSC_MAX_CHANNELS, STORVSC_MAX_LUNS_PER_TARGET, STORVSC_MAX_TARGETS } from "../protocol/index.js";
import { type DiskBackend, isValidBlockSize } from "./disk-backend.js";
import { type DelayScheduler, type DiskFaultRule, type DiskLatencyModel, FaultInjectingDisk, LatencyDisk, ReadOnlyDisk } from "./disk-wrappers.js";
import { FileDiskBackend } from "./file-disk.js";
import { SparseMemoryDisk } from "./memory-disk.js";

/** Fields every disk kind takes. */
export interface DiskSpecCommon {
  /** SRB path_id (SCSI channel), 0..7 (see `DISK_ADDRESS_LIMITS`); default 0. */
  readonly pathId?: number;
  /** SRB target_id, 0..1; default 0. */
  readonly targetId?: number;
  /** SRB lun, 0..255; default: the lowest LUN not yet used at (pathId, targetId). */
  readonly lun?: number;
  readonly readOnly?: boolean;
  readonly latency?: DiskLatencyModel;
  readonly faults?: readonly DiskFaultRule[];
  /** VPD 0x80 unit serial number (printable ASCII, ≤ 64); default derived from the controller and address. */
  readonly serial?: string;
  /** WCE of the caching mode page; default true. */
  readonly writeCacheEnabled?: boolean;
}

export interface MemoryDiskSpec extends DiskSpecCommon {
  readonly kind: "memory";
  readonly sizeBytes: number;
  readonly blockSize?: number;
  /** Sparse allocation unit (default 64 KiB). */
  readonly chunkBytes?: number;
}

export interface FileDiskSpec extends DiskSpecCommon {
  readonly kind: "file";
  readonly path: string;
  /** Default: the existing file's size. */
  readonly sizeBytes?: number;
  readonly blockSize?: number;
}

export type DiskSpec = MemoryDiskSpec | FileDiskSpec;

/** A disk or controller configuration that breaks a rule; `field` is its path in the config. */
export class DiskSpecError extends VmbusSimError {
  readonly code = "DISK_SPEC";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly limit: string,
  ) {
    super(`${field}=${describeValue(value)}: ${limit}`);
  }
}

function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? "[array]" : "[object]";
}

export type Json = Record<string, unknown>;

export function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Refuses keys outside `known`: a misspelt `readonly` must not silently give a writable disk. */
export function checkKnownKeys(where: string, obj: Json, known: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) throw new DiskSpecError(`${where}.${k}`, obj[k], `is not a known field (known: ${known.join(", ")})`);
  }
}

export function optInt(where: string, obj: Json, key: string, min: number, max: number): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new DiskSpecError(`${where}.${key}`, v, `must be an integer in [${min}, ${max}]`);
  }
  return v;
}

function optBool(where: string, obj: Json, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new DiskSpecError(`${where}.${key}`, v, "must be a boolean");
  return v;
}

/**
 * The addresses a Linux guest scans on a storvsc SCSI controller — the host
 * template's max_channel (STORVSC_MAX_CHANNELS − 1), max_id
 * (STORVSC_MAX_TARGETS, ids below it) and max_lun
 * (STORVSC_MAX_LUNS_PER_TARGET, the REPORT LUNS scan takes it inclusive).
 * The SRB fields are bytes, but a disk outside these is never scanned: the
 * guest would not see it, so the config refuses it instead.
 */
export const DISK_ADDRESS_LIMITS = {
  pathId: { max: STORVSC_MAX_CHANNELS - 1, why: "Linux storvsc scans SCSI channels 0..max_channel = STORVSC_MAX_CHANNELS − 1" },
  targetId: { max: STORVSC_MAX_TARGETS - 1, why: "Linux storvsc scans target ids 0..max_id − 1, max_id = STORVSC_MAX_TARGETS" },
  lun: { max: STORVSC_MAX_LUNS_PER_TARGET, why: "Linux storvsc drops reported LUNs above max_lun = STORVSC_MAX_LUNS_PER_TARGET" },
} as const;

function optAddress(where: string, obj: Json, key: keyof typeof DISK_ADDRESS_LIMITS): number | undefined {
  const { max, why } = DISK_ADDRESS_LIMITS[key];
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new DiskSpecError(`${where}.${key}`, v, `must be an integer in [0, ${max}] (${why}; a disk beyond is never found)`);
  }
  return v;
}

const COMMON_KEYS = ["kind", "pathId", "targetId", "lun", "readOnly", "latency", "faults", "serial", "writeCacheEnabled"] as const;
const LATENCY_KEYS = ["readNs", "writeNs", "perBlockNs", "flushNs"] as const;
const FAULT_KEYS = ["firstLba", "count", "op", "kind"] as const;
const SERIAL_MAX = 64;

function validateLatency(where: string, v: unknown): DiskLatencyModel {
  if (!isRecord(v)) throw new DiskSpecError(where, v, "must be an object {readNs, writeNs, perBlockNs, flushNs}");
  checkKnownKeys(where, v, LATENCY_KEYS);
  const out: Record<string, number> = {};
  for (const k of LATENCY_KEYS) {
    const n = optInt(where, v, k, 0, Number.MAX_SAFE_INTEGER);
    if (n !== undefined) out[k] = n;
  }
  return out;
}

function validateFault(where: string, v: unknown): DiskFaultRule {
  if (!isRecord(v)) throw new DiskSpecError(where, v, 'must be an object {firstLba, count, op, kind: "medium-error"}');
  checkKnownKeys(where, v, FAULT_KEYS);
  const firstLba = optInt(where, v, "firstLba", 0, Number.MAX_SAFE_INTEGER);
  if (firstLba === undefined) throw new DiskSpecError(`${where}.firstLba`, undefined, "is required");
  const count = optInt(where, v, "count", 1, Number.MAX_SAFE_INTEGER);
  if (count === undefined) throw new DiskSpecError(`${where}.count`, undefined, "is required");
  const op = v["op"];
  if (op !== "read" && op !== "write" && op !== "both") throw new DiskSpecError(`${where}.op`, op, 'must be "read", "write" or "both"');
  if (v["kind"] !== "medium-error") throw new DiskSpecError(`${where}.kind`, v["kind"], 'must be "medium-error"');
  return { firstLba, count, op, kind: "medium-error" };
}

function validateSize(where: string, obj: Json, blockSize: number, required: boolean): number | undefined {
  const v = obj["sizeBytes"];
  if (v === undefined) {
    if (required) throw new DiskSpecError(`${where}.sizeBytes`, v, "is required");
    return undefined;
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0 || v % blockSize !== 0) {
    throw new DiskSpecError(`${where}.sizeBytes`, v, `must be a positive safe integer, a multiple of blockSize ${blockSize}`);
  }
  return v;
}

/**
 * Checks a disk description (untrusted JSON-like input) and returns a clean
 * copy. `where` prefixes field names in errors (`disks[0]`).
 */
export function validateDiskSpec(input: unknown, where = "disk"): DiskSpec {
  if (!isRecord(input)) throw new DiskSpecError(where, input, 'must be an object with kind "memory" or "file"');
  const kind = input["kind"];
  if (kind !== "memory" && kind !== "file") throw new DiskSpecError(`${where}.kind`, kind, 'must be "memory" or "file"');
  const known: string[] = [...COMMON_KEYS, "sizeBytes", "blockSize", ...(kind === "memory" ? ["chunkBytes"] : ["path"])];
  checkKnownKeys(where, input, known);
  const blockSizeRaw = input["blockSize"];
  if (blockSizeRaw !== undefined && (typeof blockSizeRaw !== "number" || !isValidBlockSize(blockSizeRaw))) {
    throw new DiskSpecError(`${where}.blockSize`, blockSizeRaw, "must be a power of two in [512, 65536]");
  }
  const blockSize = blockSizeRaw ?? 512;
  const common: { -readonly [K in keyof DiskSpecCommon]: DiskSpecCommon[K] } = {};
  const pathId = optAddress(where, input, "pathId");
  const targetId = optAddress(where, input, "targetId");
  const lun = optAddress(where, input, "lun");
  if (pathId !== undefined) common.pathId = pathId;
  if (targetId !== undefined) common.targetId = targetId;
  if (lun !== undefined) common.lun = lun;
  const readOnly = optBool(where, input, "readOnly");
  if (readOnly !== undefined) common.readOnly = readOnly;
  const wce = optBool(where, input, "writeCacheEnabled");
  if (wce !== undefined) common.writeCacheEnabled = wce;
  if (input["latency"] !== undefined) common.latency = validateLatency(`${where}.latency`, input["latency"]);
  const faults = input["faults"];
  if (faults !== undefined) {
    if (!Array.isArray(faults)) throw new DiskSpecError(`${where}.faults`, faults, "must be an array");
    common.faults = faults.map((f: unknown, i) => validateFault(`${where}.faults[${i}]`, f));
  }
  const serial = input["serial"];
  if (serial !== undefined) {
    if (typeof serial !== "string" || serial.length === 0 || serial.length > SERIAL_MAX || !/^[\x20-\x7e]+$/.test(serial)) {
      throw new DiskSpecError(`${where}.serial`, serial, `must be 1..${SERIAL_MAX} printable ASCII characters`);
    }
    common.serial = serial;
  }
  if (kind === "memory") {
    const sizeBytes = validateSize(where, input, blockSize, true) as number;
    const chunkBytes = optInt(where, input, "chunkBytes", blockSize, 1 << 24);
    if (chunkBytes !== undefined && (chunkBytes & (chunkBytes - 1)) !== 0) {
      throw new DiskSpecError(`${where}.chunkBytes`, chunkBytes, "must be a power of two");
    }
    return { ...common, kind, sizeBytes, blockSize, ...(chunkBytes !== undefined ? { chunkBytes } : {}) };
  }
  const path = input["path"];
  if (typeof path !== "string" || path.length === 0) throw new DiskSpecError(`${where}.path`, path, "must be a non-empty string");
  const sizeBytes = validateSize(where, input, blockSize, false);
  return { ...common, kind, path, blockSize, ...(sizeBytes !== undefined ? { sizeBytes } : {}) };
}

/** A built disk: the backend the target uses, and handles on the layers a scenario may want to reach. */
export interface DiskStack {
  readonly spec: DiskSpec;
  /** The outermost backend (latency → read-only → faults → base). */
  readonly backend: DiskBackend;
  /** Add, remove or clear medium errors at run time. */
  readonly faults: FaultInjectingDisk;
  /** The storage itself (a `SparseMemoryDisk` or `FileDiskBackend`). */
  readonly base: DiskBackend;
  readonly latency: LatencyDisk | null;
}

export interface CreateDiskOptions {
  /** Needed when the spec has a latency model. */
  readonly scheduler?: DelayScheduler;
  /** Prefix of field names in errors. */
  readonly where?: string;
}

/** Validates `input` and builds its backend stack. Opening a file image is real (synchronous) I/O. */
export function createDisk(input: unknown, options: CreateDiskOptions = {}): DiskStack {
  const where = options.where ?? "disk";
  const spec = validateDiskSpec(input, where);
  let base: DiskBackend;
  try {
    base =
      spec.kind === "memory"
        ? new SparseMemoryDisk({ sizeBytes: spec.sizeBytes, blockSize: spec.blockSize, chunkBytes: spec.chunkBytes, description: `memory ${where}` })
        : new FileDiskBackend({ path: spec.path, sizeBytes: spec.sizeBytes, blockSize: spec.blockSize, readOnly: spec.readOnly });
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new DiskSpecError(`${where}.${e.field}`, e.value, e.limit);
    throw e;
  }
  let faults: FaultInjectingDisk;
  try {
    faults = new FaultInjectingDisk(base);
    (spec.faults ?? []).forEach((f, i) => {
      try {
        faults.addFault(f);
      } catch (e) {
        if (e instanceof InvalidArgumentError) throw new DiskSpecError(`${where}.faults[${i}]`, `${f.firstLba}+${f.count}`, e.message);
        throw e;
      }
    });
  } catch (e) {
    base.close();
    throw e;
  }
  let backend: DiskBackend = faults;
  if (spec.readOnly === true) backend = new ReadOnlyDisk(backend);
  let latency: LatencyDisk | null = null;
  if (spec.latency !== undefined) {
    if (options.scheduler === undefined) {
      base.close();
      throw new DiskSpecError(`${where}.latency`, "[object]", "needs a scheduler (create the disk through the VSP or pass options.scheduler)");
    }
    latency = new LatencyDisk(backend, options.scheduler, spec.latency);
    backend = latency;
  }
  return { spec, backend, faults, base, latency };
}
