/**
 * Backends that wrap another backend (storvsc-netvsc.md §7.6 sense table,
 * DESIGN.md "Time"):
 * - `ReadOnlyDisk`: writes and unmaps fail with `DiskWriteProtectedError`
 *   (the target answers DATA PROTECT 07/27/00);
 * - `LatencyDisk`: delays each operation in virtual time by a per-operation
 *   base cost plus a per-block cost, through the simulation's scheduler —
 *   the only time an I/O takes as far as the simulation can tell;
 * - `FaultInjectingDisk`: medium errors on LBA ranges, per operation,
 *   changeable while the simulation runs (a scenario can break a sector in
 *   the middle of a workload and heal it later).
 */
import { InvalidArgumentError } from "../../../core/index.js";
import { type DiskBackend, DiskMediumError, DiskWriteProtectedError, checkBlockRange } from "./disk-backend.js";

/** What `LatencyDisk` needs of the scheduler (`sim.scheduler` satisfies it). */
export interface DelayScheduler {
  sleep(ns: number, label?: string): Promise<void>;
}

// ---------------------------------------------------------------------------

export class ReadOnlyDisk implements DiskBackend {
  readonly readOnly = true;
  readonly description: string;
  constructor(readonly inner: DiskBackend) {
    this.description = `read-only(${inner.description})`;
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  get blockCount(): number {
    return this.inner.blockCount;
  }
  get unmapGranularity(): number {
    return this.inner.unmapGranularity;
  }
  read(lba: number, count: number, into: Uint8Array): Promise<void> {
    return this.inner.read(lba, count, into);
  }
  write(_lba: number, _data: Uint8Array): Promise<void> {
    return Promise.reject(new DiskWriteProtectedError(this.description, "write"));
  }
  /** Nothing of ours is dirty; the inner disk may still hold earlier writes, so pass it on. */
  flush(): Promise<void> {
    return this.inner.flush();
  }
  unmap(_lba: number, _count: number): Promise<void> {
    return Promise.reject(new DiskWriteProtectedError(this.description, "unmap"));
  }
  close(): void {
    this.inner.close();
  }
}

// ---------------------------------------------------------------------------

/** Virtual-time costs of one backend, in nanoseconds. */
export interface DiskLatencyModel {
  /** Base cost of a read. */
  readonly readNs?: number;
  /** Base cost of a write (and of an unmap). */
  readonly writeNs?: number;
  /** Added per block read, written or unmapped. */
  readonly perBlockNs?: number;
  /** Cost of a flush. */
  readonly flushNs?: number;
}

function checkNs(field: string, v: number | undefined): number {
  const n = v ?? 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(field, n, "must be a non-negative safe integer of nanoseconds");
  return n;
}

export class LatencyDisk implements DiskBackend {
  readonly description: string;
  readonly readNs: number;
  readonly writeNs: number;
  readonly perBlockNs: number;
  readonly flushNs: number;
  /** Virtual nanoseconds spent waiting, for reports. */
  delayedNs = 0;

  constructor(
    readonly inner: DiskBackend,
    private readonly scheduler: DelayScheduler,
    model: DiskLatencyModel,
  ) {
    this.readNs = checkNs("latency.readNs", model.readNs);
    this.writeNs = checkNs("latency.writeNs", model.writeNs);
    this.perBlockNs = checkNs("latency.perBlockNs", model.perBlockNs);
    this.flushNs = checkNs("latency.flushNs", model.flushNs);
    this.description = inner.description;
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  get blockCount(): number {
    return this.inner.blockCount;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get unmapGranularity(): number {
    return this.inner.unmapGranularity;
  }

  async read(lba: number, count: number, into: Uint8Array): Promise<void> {
    await this.delay(this.readNs, count, "disk read");
    await this.inner.read(lba, count, into);
  }
  async write(lba: number, data: Uint8Array): Promise<void> {
    await this.delay(this.writeNs, Math.floor(data.length / this.blockSize), "disk write");
    await this.inner.write(lba, data);
  }
  async flush(): Promise<void> {
    await this.delay(this.flushNs, 0, "disk flush");
    await this.inner.flush();
  }
  async unmap(lba: number, count: number): Promise<void> {
    await this.delay(this.writeNs, count, "disk unmap");
    await this.inner.unmap(lba, count);
  }
  close(): void {
    this.inner.close();
  }

  private async delay(base: number, blocks: number, label: string): Promise<void> {
    // Clamp so that a huge (and later refused) request cannot make an
    // unsafe integer delay, which the scheduler would reject.
    const ns = Math.min(base + this.perBlockNs * blocks, Number.MAX_SAFE_INTEGER);
    if (ns === 0) return;
    this.delayedNs += ns;
    await this.scheduler.sleep(ns, label);
  }
}

// ---------------------------------------------------------------------------

export type DiskFaultOp = "read" | "write" | "both";

/** A range of blocks that fails with a medium error. */
export interface DiskFaultRule {
  readonly firstLba: number;
  readonly count: number;
  readonly op: DiskFaultOp;
  readonly kind: "medium-error";
}

/** A rule as installed, with the id `removeFault` takes and how often it fired. */
export interface InstalledDiskFault extends DiskFaultRule {
  readonly id: number;
  hits: number;
}

export class FaultInjectingDisk implements DiskBackend {
  readonly description: string;
  /** Operations failed by a rule. */
  injected = 0;
  private readonly rules: InstalledDiskFault[] = [];
  private nextId = 1;

  constructor(
    readonly inner: DiskBackend,
    rules: readonly DiskFaultRule[] = [],
  ) {
    this.description = inner.description;
    for (const r of rules) this.addFault(r);
  }
  get blockSize(): number {
    return this.inner.blockSize;
  }
  get blockCount(): number {
    return this.inner.blockCount;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get unmapGranularity(): number {
    return this.inner.unmapGranularity;
  }

  /** The installed rules (live objects: `hits` counts up). */
  get faults(): readonly InstalledDiskFault[] {
    return this.rules;
  }

  /** Installs a rule; returns its id. Takes effect for operations that start afterwards. */
  addFault(rule: DiskFaultRule): number {
    if (!Number.isSafeInteger(rule.firstLba) || rule.firstLba < 0) {
      throw new InvalidArgumentError("fault.firstLba", rule.firstLba, "must be a non-negative safe integer");
    }
    if (!Number.isSafeInteger(rule.count) || rule.count < 1) throw new InvalidArgumentError("fault.count", rule.count, "must be a positive safe integer");
    if (rule.op !== "read" && rule.op !== "write" && rule.op !== "both") {
      throw new InvalidArgumentError("fault.op", rule.op, 'must be "read", "write" or "both"');
    }
    if (rule.kind !== "medium-error") throw new InvalidArgumentError("fault.kind", rule.kind, 'must be "medium-error"');
    if (rule.firstLba + rule.count > this.blockCount) {
      throw new InvalidArgumentError("fault.firstLba + count", rule.firstLba + rule.count, `must be at most the block count ${this.blockCount}`);
    }
    const id = this.nextId++;
    this.rules.push({ id, firstLba: rule.firstLba, count: rule.count, op: rule.op, kind: rule.kind, hits: 0 });
    return id;
  }

  /** Removes rule `id`; false if there is none. */
  removeFault(id: number): boolean {
    const i = this.rules.findIndex((r) => r.id === id);
    if (i < 0) return false;
    this.rules.splice(i, 1);
    return true;
  }

  clearFaults(): void {
    this.rules.length = 0;
  }

  async read(lba: number, count: number, into: Uint8Array): Promise<void> {
    const hit = this.match("read", lba, count);
    if (hit !== null) throw new DiskMediumError(this.description, "read", hit);
    await this.inner.read(lba, count, into);
  }
  async write(lba: number, data: Uint8Array): Promise<void> {
    const hit = this.match("write", lba, Math.floor(data.length / this.blockSize));
    if (hit !== null) throw new DiskMediumError(this.description, "write", hit);
    await this.inner.write(lba, data);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  /** Unmapping a bad block is how a real disk remaps it; it is never failed. */
  unmap(lba: number, count: number): Promise<void> {
    return this.inner.unmap(lba, count);
  }
  close(): void {
    this.inner.close();
  }

  /** The first faulty LBA of [lba, lba + count) for `op`, or null. */
  private match(op: "read" | "write", lba: number, count: number): number | null {
    if (this.rules.length === 0) return null;
    checkBlockRange(this, op, lba, count);
    let first: number | null = null;
    for (const r of this.rules) {
      if (r.op !== op && r.op !== "both") continue;
      const start = Math.max(lba, r.firstLba);
      if (start >= Math.min(lba + count, r.firstLba + r.count)) continue;
      r.hits++;
      if (first === null || start < first) first = start;
    }
    if (first !== null) this.injected++;
    return first;
  }
}
