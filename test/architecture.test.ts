/**
 * The layering rules, checked on the source text:
 * - `core/` never imports `drivers/`;
 * - a driver imports only core's public entry (`core/index.js`), never
 *   another core file and never another driver;
 * - no wall-clock time or unseeded randomness in `core/` or `drivers/`
 *   (the simulation must be deterministic) — except core/threads/wall-clock.ts,
 *   through which threaded mode bounds virtual time by real time.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every module specifier in import/export-from statements and dynamic imports. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s*["']([^"']+)["']/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push((m[1] ?? m[2] ?? m[3]) as string);
  return out;
}

function target(file: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  return relative(root, resolve(dirname(file), spec)).split(sep).join("/");
}

describe("architecture", () => {
  const coreFiles = tsFiles(join(root, "core"));
  const driverFiles = tsFiles(join(root, "drivers"));

  it("finds the source trees", () => {
    expect(coreFiles.length).toBeGreaterThan(10);
  });

  it("core/ never imports drivers/", () => {
    const bad: string[] = [];
    for (const f of coreFiles) {
      for (const s of specifiers(f)) {
        const t = target(f, s);
        if (t !== null && t.startsWith("drivers/")) bad.push(`${relative(root, f)} imports ${s}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("drivers import only core's public entry and never another driver", () => {
    const bad: string[] = [];
    for (const f of driverFiles) {
      const rel = relative(root, f).split(sep).join("/");
      const own = rel.split("/").slice(0, 2).join("/"); // drivers/<name>
      for (const s of specifiers(f)) {
        const t = target(f, s);
        if (t === null) continue;
        if (t.startsWith("core/") && t !== "core/index.js") bad.push(`${rel} imports ${s} (only core/index.js is public)`);
        if (t.startsWith("drivers/") && !t.startsWith(`${own}/`)) bad.push(`${rel} imports another driver: ${s}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("the checker itself sees a violation when there is one", () => {
    const f = join(root, "core", "x.ts");
    expect(target(f, "../drivers/storvsc/index.js")).toBe("drivers/storvsc/index.js");
    expect(target(join(root, "drivers", "a", "b.ts"), "../../core/ring/ring-buffer.js")).toBe("core/ring/ring-buffer.js");
  });

  it("no wall-clock time or Math.random in core/ or drivers/", () => {
    const bad: string[] = [];
    const re = /\b(Math\.random|Date\.now|performance\.now|setTimeout|setInterval|setImmediate|process\.hrtime)\b/;
    // Threaded mode inherently waits on real time; that one file says why.
    const allowed = new Set(["core/threads/wall-clock.ts"]);
    for (const f of [...coreFiles, ...driverFiles]) {
      if (allowed.has(relative(root, f).split(sep).join("/"))) continue;
      const lines = readFileSync(f, "utf8").split("\n");
      lines.forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "");
        if (re.test(code) && !/^\s*\*/.test(line)) bad.push(`${relative(root, f)}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(bad).toEqual([]);
  });
});
