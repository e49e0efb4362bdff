/**
 * One SCSI disk behind a storvsc controller, with an async block API —
 * DESIGN.md "The walk of one storage read" step 1; storvsc-netvsc.md §6
 * (the commands a disk answers), §7.1 (READ/WRITE CDBs), §7.3 (SYNCHRONIZE
 * CACHE, UNMAP).
 *
 * The disk plays the part of Linux's sd + block layer: it refuses I/O past
 * the end, splits transfers larger than the controller's max_transfer_bytes
 * (`max_sectors`), picks the CDB size as sd does (READ/WRITE(10) unless the
 * capacity needs 64-bit LBAs — `use_16_for_rw` — or a command moves more
 * than 0xFFFF blocks) and limits how many commands it has in flight to its
 * queue depth (`cmd_per_lun` clamped to `can_queue`). The controller
 * (`StorvscDriver`) moves the data through guest pages and turns
 * completions into results or typed errors.
 *
 * Capacities are bigints: a 64-bit LBA count of 512-byte blocks does not fit
 * a JS number once a disk passes 4 PiB, and READ CAPACITY(16) is a u64.
 */
import { InvalidArgumentError, currentVcpu } from "../../../core/index.js";
import {
  READ_TYPE,
  UNKNOWN_TYPE,
  WRITE_TYPE,
  buildReadCdb,
  buildSynchronizeCacheCdb,
  buildUnmapCdb,
  buildUnmapParameterList,
  buildWriteCdb,
  type UnmapBlockDescriptor,
} from "../protocol/index.js";
import { DiskGoneError, ShortTransferError, StorvscRemovedError, commandContext, type ScsiCommandContext } from "./errors.js";

/** One SCSI command as the controller sends it. */

/**
 * The most one `read` call returns (1 GiB): the result is one buffer, and a
 * count that asks for more would fail in the allocation with an untyped
 * RangeError instead of here with the values named.
 */
export const MAX_READ_BYTES = 1 << 30;

export interface ScsiRequest {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  readonly cdb: Uint8Array;
  /** WRITE_TYPE (to the device), READ_TYPE (from it) or UNKNOWN_TYPE (no data). */
  readonly dataIn: number;
  /** Bytes of the data buffer (0 for no data). */
  readonly length: number;
  /** For WRITE_TYPE: the `length` bytes to send. */
  readonly dataOut?: Uint8Array;
  /** The CPU the command is issued on (selects the channel, §5.1). */
  readonly cpu: number;
  /** First LBA and block count, for error messages (null for commands without). */
  readonly lba: bigint | null;
  readonly blocks: number | null;
  /**
   * A UNIT ATTENTION "capacity data has changed" (or 3F/xx) rescans the bus
   * before the command is retried, as Linux's `storvsc_handle_error`
   * requeues it behind `storvsc_device_scan`. False for the scan's own
   * commands, which must not wait for a scan.
   */
  readonly rescanOnUnitAttention: boolean;
}

/** A command that completed successfully. */
export interface ScsiResult {
  /** Bytes the host reported as transferred (clamped to the buffer). */
  readonly transferred: number;
  /** For READ_TYPE: the first `transferred` bytes of the buffer; empty otherwise. */
  readonly data: Uint8Array;
}

/** What a disk needs from its controller. */
export interface ScsiDiskHost {
  /** "vm1 storvsc 6b05…" — names the controller in messages. */
  readonly controllerName: string;
  /** Largest transfer of one command (max_transfer_bytes rounded down to 4 KiB). */
  readonly maxTransferBytes: number;
  /** Sends one command (retrying UNIT ATTENTIONs) and resolves with its result or rejects with a typed error. */
  runScsi(req: ScsiRequest): Promise<ScsiResult>;
  /**
   * Optional fast path for a read or write that is one READ/WRITE command
   * (the disk checked the range and holds a queue slot for it, which the
   * host releases through `releaseSlot`): the same result as `runScsi`
   * followed by the disk's own checks, without the request objects.
   */
  submitRead?(disk: ScsiDisk, lba: number, blocks: number, cdb16: boolean, out: Uint8Array, cpu: number): Promise<Uint8Array>;
  submitWrite?(disk: ScsiDisk, lba: number, blocks: number, cdb16: boolean, data: Uint8Array, cpu: number): Promise<void>;
}

/** From INQUIRY. */
export interface ScsiDiskIdentity {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  /** INQUIRY VERSION byte (5 = SPC-3). */
  readonly scsiLevel: number;
}

/** From READ CAPACITY. */
export interface ScsiDiskCapacity {
  /** Number of logical blocks (last LBA + 1). */
  readonly capacityBlocks: bigint;
  /** Logical block size in bytes. */
  readonly blockSize: number;
  /** LBPME: the disk is thin provisioned (UNMAP frees blocks). False when only READ CAPACITY(10) answered. */
  readonly thinProvisioned: boolean;
  /** Which command answered. */
  readonly source: "READ CAPACITY(16)" | "READ CAPACITY(10)";
}

/** Largest block count a READ/WRITE(10) carries. */
const RW10_MAX_BLOCKS = 0xffff;
/** UNMAP descriptors per command: header + 255 × 16 bytes fit one 4 KiB page. */
const UNMAP_MAX_DESCRIPTORS = 255;
const U32_MAX = 0xffff_ffff;

/** The slabs `ResultBuffers` carves read results from. */
const RESULT_SLAB_BYTES = 64 * 1024;
/** Larger reads get an ArrayBuffer of their own. */
const RESULT_SLAB_MAX_TAKE = 16 * 1024;

/**
 * Where `read` results come from. `new Uint8Array(4096)` costs about 1.5 µs
 * in Node 20 (an ArrayBuffer backing store of its own, zeroed and reported to
 * the GC) — as much as the rest of a simulated 4 KiB read. Small results are
 * therefore views into 64 KiB slabs, handed out once each and never reused,
 * as Node's `Buffer.allocUnsafe` does with its pool (but zeroed, since a
 * fresh slab is). The cost: a result's `.buffer` is the slab, and a result
 * kept alive keeps its slab alive.
 */
class ResultBuffers {
  private slab = new ArrayBuffer(0);
  private next = 0;

  take(length: number): Uint8Array {
    if (length > RESULT_SLAB_MAX_TAKE) return new Uint8Array(length);
    if (this.next + length > this.slab.byteLength) {
      this.slab = new ArrayBuffer(RESULT_SLAB_BYTES);
      this.next = 0;
    }
    const out = new Uint8Array(this.slab, this.next, length);
    this.next += length;
    return out;
  }
}

/** A FIFO of command slots (the disk's queue depth). */
class CommandSlots {
  private used = 0;
  /** Commands that found every slot taken and waited (see `ScsiDisk.slotWaits`). */
  waited = 0;
  private readonly waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }
  get waiting(): number {
    return this.waiters.length;
  }

  /** Takes a slot at once if one is free and nobody waits; false otherwise. */
  tryAcquire(): boolean {
    if (this.used < this.limit && this.waiters.length === 0) {
      this.used++;
      return true;
    }
    return false;
  }

  acquire(): Promise<void> {
    if (this.used < this.limit && this.waiters.length === 0) {
      this.used++;
      return Promise.resolve();
    }
    this.waited++;
    return new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  release(): void {
    const next = this.waiters.shift();
    // The slot passes straight to the next waiter.
    if (next !== undefined) next.resolve();
    else this.used--;
  }

  failAll(e: unknown): void {
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}

function toLba(what: string, lba: bigint | number): bigint {
  if (typeof lba === "bigint") {
    if (lba < 0n) throw new InvalidArgumentError(`${what} lba`, lba, "must not be negative");
    return lba;
  }
  if (!Number.isSafeInteger(lba) || lba < 0) throw new InvalidArgumentError(`${what} lba`, lba, "must be a non-negative safe integer or a bigint");
  return BigInt(lba);
}

/** The CPU a command is issued on: the vCPU whose handler runs now (read before any await), else CPU 0. */
function issuingCpu(): number {
  return currentVcpu()?.cpu ?? 0;
}

export class ScsiDisk {
  readonly pathId: number;
  readonly targetId: number;
  readonly lun: number;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly scsiLevel: number;
  /** "path:target:lun" (Linux's C:T:L of H:C:T:L). */
  readonly address: string;
  /** Commands this disk may have in flight (`min(cmd_per_lun, can_queue)`). */
  readonly queueDepth: number;
  private cap: ScsiDiskCapacity;
  /** The capacity as a number (exact up to 2^53; above, larger than any safe LBA + count). */
  private capBlocks = 0;
  /** `sd`'s `use_16_for_rw`: the capacity needs 64-bit LBAs. */
  private use16 = false;
  private goneKind: "lun" | "controller" | null = null;
  private readonly slots: CommandSlots;
  private readonly results = new ResultBuffers();

  constructor(
    private readonly host: ScsiDiskHost,
    identity: ScsiDiskIdentity,
    capacity: ScsiDiskCapacity,
    queueDepth: number,
  ) {
    this.pathId = identity.pathId;
    this.targetId = identity.targetId;
    this.lun = identity.lun;
    this.vendor = identity.vendor;
    this.product = identity.product;
    this.revision = identity.revision;
    this.scsiLevel = identity.scsiLevel;
    this.address = `${identity.pathId}:${identity.targetId}:${identity.lun}`;
    this.cap = capacity;
    this.cacheCapacity();
    this.queueDepth = Math.max(1, queueDepth);
    this.slots = new CommandSlots(this.queueDepth);
  }

  get name(): string {
    return `${this.host.controllerName} ${this.address}`;
  }
  /** Logical blocks (a bigint: disks may be multi-terabyte; READ CAPACITY(16) is u64). */
  get capacityBlocks(): bigint {
    return this.cap.capacityBlocks;
  }
  get capacityBytes(): bigint {
    return this.cap.capacityBlocks * BigInt(this.cap.blockSize);
  }
  get blockSize(): number {
    return this.cap.blockSize;
  }
  get thinProvisioned(): boolean {
    return this.cap.thinProvisioned;
  }
  get capacitySource(): ScsiDiskCapacity["source"] {
    return this.cap.source;
  }
  /** True once a rescan found the LUN gone or the controller was removed. */
  get gone(): boolean {
    return this.goneKind !== null;
  }
  /** Commands holding one of the queue slots (sent, or on their way to the channel). */
  get inFlight(): number {
    return this.slots.inUse;
  }
  /** Commands waiting now for a queue slot (all `queueDepth` are taken). */
  get waitingForSlot(): number {
    return this.slots.waiting;
  }
  /**
   * Commands since the disk appeared that found all `queueDepth` slots
   * taken and waited for one — the block layer holding a request until the
   * device has budget again, where Linux waits instead of failing it.
   */
  get slotWaits(): number {
    return this.slots.waited;
  }

  /**
   * Reads `count` blocks from `lba`. A result of up to 16 KiB is a view into
   * a 64 KiB ArrayBuffer shared with other results (see `ResultBuffers`):
   * use its `byteOffset` and `length`, not its `.buffer` alone.
   */
  read(lba: bigint | number, count: number): Promise<Uint8Array> {
    const cpu = issuingCpu();
    const submit = this.host.submitRead;
    // One command for the whole range and a queue slot free now: the fast
    // path. Anything else — bigint or invalid arguments, chunking, waiting
    // for a slot, a gone disk — takes the general path below.
    if (submit !== undefined && typeof lba === "number" && this.fits(lba, count) && this.slots.tryAcquire()) {
      return submit.call(this.host, this, lba, count, this.use16 || count > RW10_MAX_BLOCKS, this.results.take(count * this.cap.blockSize), cpu);
    }
    return this.readChunks(lba, count, cpu);
  }

  private async readChunks(lba: bigint | number, count: number, cpu: number): Promise<Uint8Array> {
    const first = this.checkRange("read", lba, count);
    const bs = this.cap.blockSize;
    if (count * bs > MAX_READ_BYTES) {
      throw new InvalidArgumentError(`${this.name} read count × block size`, count * bs, `must be at most ${MAX_READ_BYTES} bytes per call`);
    }
    const out = this.results.take(count * bs);
    await Promise.all(
      this.chunks(first, count).map(async ({ lba: at, blocks, index }) => {
        const length = blocks * bs;
        const cdb = buildReadCdb(this.cdbSize(blocks), at, blocks);
        const r = await this.run({
          cdb,
          dataIn: READ_TYPE,
          length,
          cpu,
          lba: at,
          blocks,
        });
        if (r.transferred < length) throw new ShortTransferError(this.context(cdb, at, blocks), length, r.transferred);
        out.set(r.data, index * bs);
      }),
    );
    return out;
  }

  /** Writes `data` (a whole number of blocks) at `lba`. */
  write(lba: bigint | number, data: Uint8Array): Promise<void> {
    const cpu = issuingCpu();
    const submit = this.host.submitWrite;
    const bs = this.cap.blockSize;
    if (submit !== undefined && typeof lba === "number" && data.length % bs === 0) {
      const count = data.length / bs;
      if (this.fits(lba, count) && this.slots.tryAcquire()) {
        return submit.call(this.host, this, lba, count, this.use16 || count > RW10_MAX_BLOCKS, data, cpu);
      }
    }
    return this.writeChunks(lba, data, cpu);
  }

  private async writeChunks(lba: bigint | number, data: Uint8Array, cpu: number): Promise<void> {
    const bs = this.cap.blockSize;
    if (data.length % bs !== 0) {
      throw new InvalidArgumentError(`${this.name} write data.length`, data.length, `must be a multiple of the block size ${bs}`);
    }
    const count = data.length / bs;
    const first = this.checkRange("write", lba, count);
    await Promise.all(
      this.chunks(first, count).map(async ({ lba: at, blocks, index }) => {
        const length = blocks * bs;
        const cdb = buildWriteCdb(this.cdbSize(blocks), at, blocks);
        const r = await this.run({
          cdb,
          dataIn: WRITE_TYPE,
          length,
          dataOut: data.subarray(index * bs, index * bs + length),
          cpu,
          lba: at,
          blocks,
        });
        if (r.transferred < length) throw new ShortTransferError(this.context(cdb, at, blocks), length, r.transferred);
      }),
    );
  }

  /** SYNCHRONIZE CACHE of the whole medium (what sd sends for a flush). */
  async flush(): Promise<void> {
    const cpu = issuingCpu();
    this.checkPresent("flush");
    const size = this.cap.capacityBlocks > BigInt(U32_MAX) ? 16 : 10;
    await this.run({ cdb: buildSynchronizeCacheCdb(size), dataIn: UNKNOWN_TYPE, length: 0, cpu, lba: null, blocks: null });
  }

  /** UNMAP (discard) `count` blocks from `lba`. */
  async unmap(lba: bigint | number, count: number): Promise<void> {
    const cpu = issuingCpu();
    const first = this.checkRange("unmap", lba, count);
    const descriptors: UnmapBlockDescriptor[] = [];
    let at = first;
    let left = count;
    while (left > 0) {
      const n = Math.min(left, U32_MAX);
      descriptors.push({ lba: at, blocks: n });
      at += BigInt(n);
      left -= n;
    }
    const commands: Promise<ScsiResult>[] = [];
    for (let i = 0; i < descriptors.length; i += UNMAP_MAX_DESCRIPTORS) {
      const part = descriptors.slice(i, i + UNMAP_MAX_DESCRIPTORS);
      const list = buildUnmapParameterList(part);
      const firstLba = (part[0] as UnmapBlockDescriptor).lba;
      const blocks = part.reduce((s, d) => s + d.blocks, 0);
      commands.push(this.run({ cdb: buildUnmapCdb(list.length), dataIn: WRITE_TYPE, length: list.length, dataOut: list, cpu, lba: firstLba, blocks }));
    }
    await Promise.all(commands);
  }

  // ---- @internal: the controller's side ----------------------------------------

  /** @internal New READ CAPACITY data from a rescan; true when the capacity or block size changed. */
  updateCapacity(c: ScsiDiskCapacity): boolean {
    const changed = c.capacityBlocks !== this.cap.capacityBlocks || c.blockSize !== this.cap.blockSize;
    this.cap = c;
    this.cacheCapacity();
    return changed;
  }

  /** @internal The controller is done with a command of the fast path: its queue slot is free. */
  releaseSlot(): void {
    this.slots.release();
  }

  /**
   * @internal The LUN is gone (a rescan no longer found it) or the
   * controller was removed: commands waiting for a slot and later I/O fail.
   */
  markGone(kind: "lun" | "controller"): void {
    if (this.goneKind !== null) return;
    this.goneKind = kind;
    this.slots.failAll(this.goneError("queued command"));
  }

  // ---- internals --------------------------------------------------------------

  private async run(r: Omit<ScsiRequest, "pathId" | "targetId" | "lun" | "rescanOnUnitAttention">): Promise<ScsiResult> {
    await this.slots.acquire();
    try {
      return await this.host.runScsi({ ...r, pathId: this.pathId, targetId: this.targetId, lun: this.lun, rescanOnUnitAttention: true });
    } finally {
      this.slots.release();
    }
  }

  private goneError(what: string): Error {
    return this.goneKind === "lun"
      ? new DiskGoneError(this.name, what)
      : new StorvscRemovedError(`${this.address} ${what}`, this.host.controllerName, "the storvsc driver was removed");
  }

  private checkPresent(what: string): void {
    if (this.goneKind !== null) throw this.goneError(what);
  }

  /** Validates an I/O range and returns its first LBA. The block layer refuses I/O past the end. */
  private checkRange(what: string, lba: bigint | number, count: number): bigint {
    this.checkPresent(what);
    const first = toLba(`${this.name} ${what}`, lba);
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new InvalidArgumentError(`${this.name} ${what} count`, count, "must be a non-negative safe integer of blocks");
    }
    if (first + BigInt(count) > this.cap.capacityBlocks) {
      throw new InvalidArgumentError(
        `${this.name} ${what} lba + count`,
        first + BigInt(count),
        `exceeds the capacity of ${this.cap.capacityBlocks} blocks`,
      );
    }
    return first;
  }

  private cacheCapacity(): void {
    this.capBlocks = Number(this.cap.capacityBlocks);
    this.use16 = this.cap.capacityBlocks > BigInt(U32_MAX);
  }

  /**
   * True when a present disk can take [lba, lba + count) as ONE command:
   * valid numbers (`checkRange` would accept them), at least one block,
   * inside the capacity, no more than `chunks` puts in one command.
   */
  private fits(lba: number, count: number): boolean {
    if (this.goneKind !== null || !Number.isSafeInteger(lba) || lba < 0 || !Number.isSafeInteger(count) || count <= 0) return false;
    const end = lba + count;
    if (end > Number.MAX_SAFE_INTEGER || end > this.capBlocks) return false;
    return count <= Math.max(1, Math.floor(this.host.maxTransferBytes / this.cap.blockSize));
  }

  /** Splits [first, first+count) into commands of at most max_transfer_bytes. */
  private chunks(first: bigint, count: number): { lba: bigint; blocks: number; index: number }[] {
    const perCommand = Math.max(1, Math.floor(this.host.maxTransferBytes / this.cap.blockSize));
    const out: { lba: bigint; blocks: number; index: number }[] = [];
    for (let done = 0; done < count; ) {
      const blocks = Math.min(perCommand, count - done);
      out.push({ lba: first + BigInt(done), blocks, index: done });
      done += blocks;
    }
    return out;
  }

  /** sd_setup_read_write_cmnd: 16-byte CDBs when the disk needs 64-bit LBAs or the count exceeds 16 bits. */
  private cdbSize(blocks: number): 10 | 16 {
    return this.cap.capacityBlocks > BigInt(U32_MAX) || blocks > RW10_MAX_BLOCKS ? 16 : 10;
  }

  private context(cdb: Uint8Array, lba: bigint, blocks: number): ScsiCommandContext {
    return commandContext(this.host.controllerName, { cdb, pathId: this.pathId, targetId: this.targetId, lun: this.lun, lba, blocks });
  }
}
