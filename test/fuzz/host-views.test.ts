/**
 * The static half of the fuzz oracle's memory property: host-side code (the
 * VMBus server, host channels, every VSP) reaches guest memory only by
 * making a GPADL view or a packet's GPA-range view — both bounds-checked —
 * never through the guest's memory object itself. The dynamic half (secret
 * pages compared and their canary searched for after every fuzz input) is
 * in fuzz/lib/oracle.ts.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Code lines (comments dropped) that touch a guest's memory object. */
function memoryUses(file: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      if (/^\s*(\*|\/\*|\/\/)/.test(raw)) return;
      const code = raw.replace(/\/\/.*$/, "");
      if (/\.memory\b|\bGuestMemory\b|\.partition\b/.test(code)) out.push({ line: i + 1, text: raw.trim() });
    });
  return out;
}

describe("host code reaches guest memory only through views", () => {
  const hostDirs = readdirSync(join(root, "drivers"))
    .map((d) => join(root, "drivers", d, "host"))
    .filter((d) => {
      try {
        return statSync(d).isDirectory();
      } catch {
        return false;
      }
    });

  it("finds the host-side sources", () => {
    expect(hostDirs.length).toBeGreaterThanOrEqual(2);
  });

  it("no VSP touches the guest's memory object", () => {
    const bad = hostDirs.flatMap(tsFiles).flatMap((f) => memoryUses(f).map((u) => `${relative(root, f)}:${u.line}: ${u.text}`));
    expect(bad).toEqual([]);
  });

  it("the server and host channels use it only to make a GPADL or GPA-range view", () => {
    const bad = ["core/vmbus/server.ts", "core/vmbus/host-channel.ts"].flatMap((f) =>
      memoryUses(join(root, f))
        .filter((u) => !/new GpadlView\(|gpaRangeView\(/.test(u.text))
        .map((u) => `${f}:${u.line}: ${u.text}`),
    );
    expect(bad).toEqual([]);
  });
});
