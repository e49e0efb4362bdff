/**
 * How Linux turns the bytes of a sysfs write into a value (vmbus-core.md
 * §8.2, §9.1, §9.2). Each function works on the bytes the kernel's store
 * callback receives: kernfs copies at most PAGE_SIZE bytes of the write and
 * NUL-terminates the copy, so C string functions stop at the first NUL.
 */
import { PAGE_SIZE } from "../memory/guest-memory.js";
import { Guid } from "../vmbus/guid.js";

/** The size of a sysfs attribute buffer: `PAGE_SIZE` on x86-64. */
export const SYSFS_BUFFER_SIZE = PAGE_SIZE;

/** The longest string (in bytes, newline stripped) `driver_override` accepts: PAGE_SIZE - 2. */
export const DRIVER_OVERRIDE_MAX = PAGE_SIZE - 2;

function at(buf: Uint8Array, i: number): number {
  return buf[i] ?? 0;
}

/** Kernel `isspace` (`lib/ctype.c`): HT, LF, VT, FF, CR, space, and Latin-1 NBSP (0xa0). */
export function isKernelSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d) || b === 0xa0;
}

/** `strlen` of the NUL-terminated copy: the bytes before the first NUL. */
export function cStringLength(buf: Uint8Array): number {
  const i = buf.indexOf(0);
  return i < 0 ? buf.length : i;
}

/**
 * `sscanf(buf, "%u", &v) == 1` with the kernel's `vsscanf` (what
 * `target_cpu_store` uses, §8.2): leading white space is skipped, the next
 * byte must be a decimal digit (no sign, no "0x"), the run of digits is the
 * value, and whatever follows is ignored ("3abc" is 3). The digits are
 * accumulated in a u64 and stored into an `unsigned int`, so the value wraps
 * modulo 2^32. Returns null when nothing is converted (the store then fails
 * with EIO).
 */
export function scanUnsigned(buf: Uint8Array): number | null {
  const end = cStringLength(buf);
  let i = 0;
  while (i < end && isKernelSpace(at(buf, i))) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const b = at(buf, i);
    if (b < 0x30 || b > 0x39) break;
    // value < 2^32, so value * 10 + 9 < 2^36 is exact in a double; the
    // modulus commutes with the u64 wrap because 2^32 divides 2^64.
    value = (value * 10 + (b - 0x30)) % 0x1_0000_0000;
    digits++;
  }
  return digits === 0 ? null : value;
}

/** Characters of the textual UUID form (`UUID_STRING_LEN`). */
export const UUID_STRING_LEN = 36;

/**
 * `guid_parse` (`lib/uuid.c`), what `new_id` and `remove_id` use (§9.1):
 * `uuid_is_valid` checks exactly the first 36 bytes (hex digits of either
 * case, dashes at 8, 13, 18 and 23); anything after them, such as the
 * newline of `echo`, is ignored. No braces. Returns null when invalid
 * (the store then fails with EINVAL).
 */
export function parseUuidPrefix(buf: Uint8Array): Guid | null {
  if (cStringLength(buf) < UUID_STRING_LEN) return null;
  let text = "";
  for (let i = 0; i < UUID_STRING_LEN; i++) {
    const b = at(buf, i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (b !== 0x2d) return null;
    } else {
      const hex = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
      if (!hex) return null;
    }
    text += String.fromCharCode(b);
  }
  return Guid.parse(text);
}

/** Result of `driverSetOverride`: the new value (null clears), or why it was refused (-EINVAL). */
export type DriverOverrideResult =
  | { readonly ok: true; readonly value: string | null }
  | { readonly ok: false; readonly reason: string };

const utf8 = new TextDecoder("utf-8");

/**
 * The driver-core `driver_set_override` rules (`drivers/base/driver.c`), as
 * `driver_override_store` applies them to `count` bytes:
 * - `count >= PAGE_SIZE - 1` → -EINVAL (the show callback must still fit the
 *   value and a newline in one page);
 * - the string ends at the first NUL; an empty string clears the override;
 * - the string is cut at the first newline (not only a trailing one), and
 *   a string that starts with a newline clears the override.
 * A write of zero bytes never gets here: `sysfs_kf_write` returns 0 before
 * calling the store (see `VmbusSysfs.write`).
 */
export function driverSetOverride(buf: Uint8Array): DriverOverrideResult {
  if (buf.length >= PAGE_SIZE - 1) {
    return {
      ok: false,
      reason: `value of ${buf.length} bytes is too long: driver_override takes at most ${PAGE_SIZE - 2} bytes (count < PAGE_SIZE - 1)`,
    };
  }
  let len = cStringLength(buf);
  const nl = buf.subarray(0, len).indexOf(0x0a);
  if (nl >= 0) len = nl;
  if (len === 0) return { ok: true, value: null };
  return { ok: true, value: utf8.decode(buf.subarray(0, len)) };
}

/** `kobject_actions[]` (`lib/kobject_uevent.c`): what a write to `uevent` may ask for. */
export const KOBJECT_ACTIONS = ["add", "remove", "change", "move", "online", "offline", "bind", "unbind"] as const;
export type KobjectAction = (typeof KOBJECT_ACTIONS)[number];

/**
 * `kobject_action_type`: one trailing newline or NUL is dropped, the first
 * word (up to a space) must be one of `KOBJECT_ACTIONS` exactly. Returns the
 * action, or null (-EINVAL). Arguments after the word (a UUID and KEY=VALUE
 * pairs for synthetic uevents) are not checked here.
 */
export function kobjectActionType(buf: Uint8Array): KobjectAction | null {
  let count = buf.length;
  const last = at(buf, count - 1);
  if (count > 0 && (last === 0x0a || last === 0x00)) count--;
  if (count === 0) return null;
  const head = buf.subarray(0, count);
  const sp = head.indexOf(0x20);
  const first = sp < 0 ? head : head.subarray(0, sp);
  let word = "";
  for (const b of first) word += String.fromCharCode(b);
  return (KOBJECT_ACTIONS as readonly string[]).includes(word) ? (word as KobjectAction) : null;
}
