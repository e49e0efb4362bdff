/** Tests for core/sysfs/store-parsers.ts: the kernel's parse rules for sysfs writes. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DRIVER_OVERRIDE_MAX,
  driverSetOverride,
  kobjectActionType,
  parseUuidPrefix,
  scanUnsigned,
} from "../../core/sysfs/store-parsers.js";
import { Guid } from "../../core/vmbus/guid.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("scanUnsigned (sscanf %u)", () => {
  it("handles the cases target_cpu_store sees", () => {
    expect(scanUnsigned(enc("3"))).toBe(3);
    expect(scanUnsigned(enc("3\n"))).toBe(3);
    expect(scanUnsigned(enc(" \t\n\v\f\r12"))).toBe(12);
    expect(scanUnsigned(Uint8Array.of(0xa0, 0x37))).toBe(7); // Latin-1 NBSP is kernel white space
    expect(scanUnsigned(enc("007"))).toBe(7);
    expect(scanUnsigned(enc("12abc"))).toBe(12);
    expect(scanUnsigned(enc("1 2"))).toBe(1);
    expect(scanUnsigned(enc("0x10"))).toBe(0);
    expect(scanUnsigned(enc("4294967295"))).toBe(4294967295);
    expect(scanUnsigned(enc("4294967296"))).toBe(0);
    expect(scanUnsigned(enc("18446744073709551617"))).toBe(1); // wraps in u64, then in u32
    for (const bad of ["", " ", "\n", "-1", "+1", "x1", "\u00001"]) expect(scanUnsigned(enc(bad))).toBeNull();
    expect(scanUnsigned(enc("5\u00009"))).toBe(5);
  });

  it("reads back any u32 with any white space before and any non-digit after", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffff_ffff }),
        fc.array(fc.constantFrom(" ", "\t", "\n", "\r"), { maxLength: 4 }),
        fc.string().filter((s) => !/^[0-9]/.test(s)),
        (n, ws, tail) => scanUnsigned(enc(`${ws.join("")}${n}${tail}`)) === n,
      ),
    );
  });

  it("wraps any run of digits modulo 2^32", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{1,40}$/), (digits) => {
        return BigInt(scanUnsigned(enc(digits)) ?? -1) === BigInt(digits) % 2n ** 32n;
      }),
    );
  });
});

describe("parseUuidPrefix (guid_parse)", () => {
  it("parses any GUID in either case, with anything after the 36 characters", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.constantFrom("", "\n", " junk"), (bytes, tail) => {
        const g = Guid.fromBytes(bytes);
        const a = parseUuidPrefix(enc(g.toString() + tail));
        const b = parseUuidPrefix(enc(g.toString().toUpperCase() + tail));
        return a !== null && b !== null && a.equals(g) && b.equals(g);
      }),
    );
  });

  it("refuses braces, short strings, misplaced dashes, non-hex and NULs", () => {
    for (const bad of [
      "{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}",
      "ba6163d9-04a1-4d29-b605-72e2ffb1dc7",
      "ba6163d904a1-4d29-b605-72e2ffb1dc7f0",
      "ba6163d9-04a1-4d29-b605-72e2ffb1dc7g",
      "ba6163d9-04a1-4d29-b605\u0000-72e2ffb1dc7f",
      "",
    ]) {
      expect(parseUuidPrefix(enc(bad))).toBeNull();
    }
  });
});

describe("driverSetOverride", () => {
  it("sets, cuts at the first newline or NUL, clears on empty", () => {
    expect(driverSetOverride(enc("hv_netvsc"))).toEqual({ ok: true, value: "hv_netvsc" });
    expect(driverSetOverride(enc("hv_netvsc\n"))).toEqual({ ok: true, value: "hv_netvsc" });
    expect(driverSetOverride(enc("a\nb"))).toEqual({ ok: true, value: "a" });
    expect(driverSetOverride(enc("ab\u0000cd"))).toEqual({ ok: true, value: "ab" });
    expect(driverSetOverride(enc("\n"))).toEqual({ ok: true, value: null });
    expect(driverSetOverride(enc("\nname"))).toEqual({ ok: true, value: null });
    expect(driverSetOverride(enc("\u0000"))).toEqual({ ok: true, value: null });
    expect(driverSetOverride(enc(""))).toEqual({ ok: true, value: null });
  });

  it("takes at most PAGE_SIZE - 2 bytes", () => {
    expect(DRIVER_OVERRIDE_MAX).toBe(4094);
    expect(driverSetOverride(enc("x".repeat(4094)))).toEqual({ ok: true, value: "x".repeat(4094) });
    expect(driverSetOverride(enc("x".repeat(4095)))).toEqual({
      ok: false,
      reason: "value of 4095 bytes is too long: driver_override takes at most 4094 bytes (count < PAGE_SIZE - 1)",
    });
    // The limit counts the written bytes, newline included.
    expect(driverSetOverride(enc(`${"x".repeat(4094)}\n`)).ok).toBe(false);
  });
});

describe("kobjectActionType", () => {
  it("accepts the eight actions with an optional newline and arguments", () => {
    for (const a of ["add", "remove", "change", "move", "online", "offline", "bind", "unbind"]) {
      expect(kobjectActionType(enc(a))).toBe(a);
      expect(kobjectActionType(enc(`${a}\n`))).toBe(a);
    }
    expect(kobjectActionType(enc("change 0b4a9b8e-7b1c-4f1c-9d5e-3a2b1c0d9e8f A=1\n"))).toBe("change");
    for (const bad of ["", "\n", "ad", "adds", "ADD", " add", "add\n\n"]) expect(kobjectActionType(enc(bad))).toBeNull();
  });
});
