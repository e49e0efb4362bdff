/**
 * Request ids with `struct vmbus_requestor` semantics — vmbus-core.md §4.3.
 *
 * A driver that wants a completion puts a request id in `trans_id`. The id
 * is a slot number + 1: 0 is never handed out, because Hyper-V uses
 * trans_id 0 for unsolicited messages and does not answer requests that
 * carry it. A completion names its request only by this id, and the id
 * comes from the peer, so it is untrusted: an id out of range, or for a
 * slot that is free (never used, or already completed), is rejected with a
 * typed error and counted. It is never delivered, so a hostile or confused
 * peer cannot complete a request twice or complete someone else's.
 */
import { ProtocolError, InvalidArgumentError } from "../errors.js";

export const VMBUS_NO_RQSTOR = 0xffff_ffff_ffff_ffffn;
export const VMBUS_RQST_ERROR = 0xffff_ffff_ffff_fffen;
export const VMBUS_RQST_ADDR_ANY = 0xffff_ffff_ffff_ffffn;

export class UnknownRequestIdError extends ProtocolError {
  override readonly code = "UNKNOWN_REQUEST_ID";
  constructor(
    readonly channel: string,
    readonly requestId: bigint,
    reason: string,
  ) {
    super(`${channel} completion`, "trans_id", requestId, reason);
  }
}

export class VmbusRequestor<T> {
  /** Completions rejected because their id named no outstanding request. */
  rejected = 0;
  private readonly values: (T | undefined)[];
  private readonly freeNext: Int32Array;
  private readonly busy: Uint8Array;
  private head = 0;
  private count = 0;

  constructor(
    readonly size: number,
    readonly channel = "channel",
  ) {
    if (!Number.isInteger(size) || size <= 0 || size > 1 << 24) {
      throw new InvalidArgumentError("requestor size", size, "must be in [1, 16777216]");
    }
    this.values = new Array<T | undefined>(size).fill(undefined);
    this.freeNext = new Int32Array(size);
    for (let i = 0; i < size; i++) this.freeNext[i] = i + 1;
    this.busy = new Uint8Array(size);
  }

  get inFlight(): number {
    return this.count;
  }

  get full(): boolean {
    return this.head >= this.size;
  }

  /** Reserves a slot for `value` and returns its id (≥ 1), or 0 when every slot is in use. */
  next(value: T): number {
    const slot = this.head;
    if (slot >= this.size) return 0;
    this.head = this.freeNext[slot] as number;
    this.values[slot] = value;
    this.busy[slot] = 1;
    this.count++;
    return slot + 1;
  }

  /**
   * Takes the request with this id out of the table and returns it.
   * `idLo`/`idHi` are the two halves of the u64 trans_id as read.
   */
  complete(idLo: number, idHi = 0): T {
    const slot = this.lookup(idLo, idHi);
    const v = this.values[slot] as T;
    this.values[slot] = undefined;
    this.busy[slot] = 0;
    this.freeNext[slot] = this.head;
    this.head = slot;
    this.count--;
    return v;
  }

  /** The request with this id, without completing it. */
  peek(idLo: number, idHi = 0): T {
    return this.values[this.lookup(idLo, idHi)] as T;
  }

  has(id: number): boolean {
    return Number.isInteger(id) && id >= 1 && id <= this.size && this.busy[id - 1] === 1;
  }

  /** Every outstanding request, in slot order (for failing them all on rescind or close). */
  drain(): T[] {
    const out: T[] = [];
    for (let s = 0; s < this.size; s++) {
      if (this.busy[s] === 1) out.push(this.complete(s + 1));
    }
    return out;
  }

  private lookup(idLo: number, idHi: number): number {
    if (idHi !== 0 || idLo === 0 || idLo > this.size) {
      this.rejected++;
      throw new UnknownRequestIdError(
        this.channel,
        u64(idLo, idHi),
        idLo === 0 && idHi === 0 ? "is 0, which is never a request id" : `is not in [1, ${this.size}]`,
      );
    }
    const slot = idLo - 1;
    if (this.busy[slot] !== 1) {
      this.rejected++;
      throw new UnknownRequestIdError(this.channel, u64(idLo, idHi), "names no outstanding request (never issued, or already completed)");
    }
    return slot;
  }
}

function u64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
