/**
 * Typed errors of the simulation.
 *
 * Every error a peer can provoke with bad input is one of these, and its
 * message names the field, the value and the limit, so that a person reading
 * a failed run can find the byte that was wrong. Code that catches errors at
 * a trust boundary (a host device draining a guest ring, a guest driver
 * reading a completion) tests `instanceof VmbusSimError` and treats anything
 * else as a bug in the simulator itself.
 */
export abstract class VmbusSimError extends Error {
  /** A stable, machine-readable name of the error kind. */
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** Formats a number as decimal and, when it helps, hexadecimal. */
export function fmtNum(n: number | bigint): string {
  const abs = typeof n === "bigint" ? (n < 0n ? -n : n) : Math.abs(n);
  return abs >= 16 ? `${n.toString()} (${hex(n)})` : n.toString();
}

/** A guest physical address (or range) outside guest memory. */
export class GuestMemoryError extends VmbusSimError {
  readonly code = "GUEST_MEMORY_RANGE";
  constructor(
    readonly gpa: number,
    readonly length: number,
    readonly limit: number,
  ) {
    super(
      `guest physical access gpa=${fmtNum(gpa)} length=${length} is outside guest memory of ${fmtNum(limit)} bytes`,
    );
  }
}

/** The page allocator could not satisfy a request. */
export class OutOfGuestMemoryError extends VmbusSimError {
  readonly code = "GUEST_MEMORY_EXHAUSTED";
  constructor(
    readonly requestedPages: number,
    readonly freePages: number,
    readonly contiguous: boolean,
  ) {
    super(
      `cannot allocate ${requestedPages} ${contiguous ? "contiguous " : ""}page(s): ${freePages} page(s) free` +
        (contiguous ? " (not necessarily in one run)" : ""),
    );
  }
}

/** A call with an argument outside what the API accepts (a caller bug, not peer input). */
export class InvalidArgumentError extends VmbusSimError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly limit: string,
  ) {
    super(`${field}=${typeof value === "number" || typeof value === "bigint" ? fmtNum(value) : String(value)}: ${limit}`);
  }
}

/**
 * A host access through a GPADL or a packet's GPA range fell outside what
 * the guest shared. `region` names the GPADL (`GPADL 0xe1e10`) or the range
 * (`GPA range 0`).
 */
export class GpadlAccessError extends VmbusSimError {
  readonly code = "GPADL_ACCESS";
  constructor(
    readonly region: string,
    readonly offset: number,
    readonly length: number,
    readonly limit: number,
    readonly reason = "outside the shared bytes",
  ) {
    super(`${region}: access offset=${offset} length=${length} ${reason} (limit ${limit} bytes)`);
  }
}

/**
 * Something read from a ring's shared memory is impossible: an index out of
 * range or unaligned, a descriptor whose lengths contradict each other.
 */
export class RingCorruptError extends VmbusSimError {
  readonly code: string = "RING_CORRUPT";
  constructor(
    readonly ring: string,
    readonly field: string,
    readonly value: number,
    readonly limit: string,
  ) {
    super(`${ring}: ${field}=${fmtNum(value)} ${limit}`);
  }
}

/**
 * A message of some protocol (VMBus channel message, VSTOR, NVSP, RNDIS, SCSI)
 * is malformed or not allowed in the current state.
 */
export class ProtocolError extends VmbusSimError {
  readonly code: string = "PROTOCOL";
  constructor(
    readonly protocol: string,
    readonly field: string,
    readonly value: number | bigint | string,
    readonly limit: string,
  ) {
    super(
      `${protocol}: ${field}=${typeof value === "string" ? value : fmtNum(value)} ${limit}`,
    );
  }
}

/** The errno values Linux returns from the operations the simulation models (sysfs writes, channel calls). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EDOM: 33,
  ENOBUFS: 105,
  ECONNREFUSED: 111,
  ETIMEDOUT: 110,
  EOPNOTSUPP: 95,
  EDQUOT: 122,
  EMSGSIZE: 90,
} as const;
export type ErrnoName = keyof typeof ERRNO;

/**
 * An operation failed the way Linux fails it: with an errno. `op` names the
 * operation (`write /sys/bus/vmbus/devices/…/channels/14/cpu`), `detail`
 * says why in words.
 */
export class ErrnoError extends VmbusSimError {
  readonly code = "ERRNO";
  readonly errnoValue: number;
  constructor(
    readonly errno: ErrnoName,
    readonly op: string,
    readonly detail: string,
  ) {
    super(`${op}: ${errno} (-${ERRNO[errno]}): ${detail}`);
    this.errnoValue = ERRNO[errno];
  }
}
