/**
 * Worker threads for tests, from a clean clone, without a build.
 *
 * vitest transforms the TypeScript it imports itself, but a
 * `worker_threads` Worker is plain Node: it cannot load a `.ts` file. This
 * helper transpiles a worker entry and every module it imports (relative
 * imports, followed through the emitted JavaScript so that type-only
 * imports are not followed) with the TypeScript compiler API
 * (`ts.transpileModule`, options from tsconfig.json), into a directory
 * under the OS temp directory named after a hash of the output. Each test
 * process does this once per entry; concurrent test files and later runs
 * with unchanged sources reuse the directory.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import ts from "typescript";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

function compilerOptions(): ts.CompilerOptions {
  const configPath = join(repoRoot, "tsconfig.json");
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  if (read.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, repoRoot);
  return {
    ...parsed.options,
    // The output goes next to a package.json that says "type": "module";
    // say ESM outright instead of letting NodeNext look for one.
    module: ts.ModuleKind.ESNext,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    // Stack traces from a failing worker point at the TypeScript source.
    inlineSourceMap: true,
    inlineSources: true,
  };
}

const done = new Map<string, string>();

/**
 * Transpiles `entry` (a path to a .ts file in this repository) and its
 * relative imports; returns the file URL of the emitted entry, for
 * `new Worker(url)`.
 */
export function transpiledWorker(entry: string): URL {
  return transpiledModules([entry])[0] as URL;
}

/**
 * Transpiles several entries into ONE tree and returns their URLs in
 * order: a worker and the plugin modules it imports then share one copy
 * of core/ (one set of DI tokens). The tree links the repository's
 * node_modules, so bare imports (tsyringe, reflect-metadata) resolve.
 */
export function transpiledModules(entries: readonly string[]): URL[] {
  const abs = entries.map((e) => resolve(e));
  const key = abs.join("\0");
  const cached = done.get(key);
  if (cached !== undefined) return cached.split("\0").map((p) => pathToFileURL(p));

  const options = compilerOptions();
  const outputs = new Map<string, string>(); // repo-relative .js path -> text
  const queue = [...abs];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = relative(repoRoot, file);
    if (rel.startsWith("..")) throw new Error(`${file} is outside the repository`);
    const out = ts.transpileModule(readFileSync(file, "utf8"), { compilerOptions: options, fileName: file, reportDiagnostics: false });
    outputs.set(rel.replace(/\.ts$/, ".js").split(sep).join("/"), out.outputText);
    for (const imp of ts.preProcessFile(out.outputText, true, true).importedFiles) {
      if (!imp.fileName.startsWith(".")) continue;
      queue.push(resolve(dirname(file), imp.fileName.replace(/\.js$/, ".ts")));
    }
  }

  const names = [...outputs.keys()].sort();
  const hash = createHash("sha256");
  for (const n of names) hash.update(n).update("\0").update(outputs.get(n) as string).update("\0");
  const dir = join(tmpdir(), `vmbus-sim-workers-${hash.digest("hex").slice(0, 16)}`);
  const entryJs = abs.map((a) => join(dir, relative(repoRoot, a).replace(/\.ts$/, ".js")));

  if (!existsSync(join(dir, ".complete"))) {
    // Write into a private directory, then rename it into place: another
    // test process may be doing the same at the same moment, and a reader
    // must never see half a tree.
    const tmp = `${dir}.${process.pid}.${Date.now()}`;
    for (const n of names) {
      const p = join(tmp, ...n.split("/"));
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, outputs.get(n) as string);
    }
    writeFileSync(join(tmp, "package.json"), '{ "type": "module" }\n');
    writeFileSync(join(tmp, ".complete"), "");
    try {
      renameSync(tmp, dir);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      // Someone else finished first: same hash, same content.
      if (!existsSync(join(dir, ".complete"))) throw e;
    }
  }
  const nm = join(dir, "node_modules");
  if (!existsSync(nm)) {
    try {
      symlinkSync(join(repoRoot, "node_modules"), nm, "dir");
    } catch (e) {
      if (!existsSync(nm)) throw e; // another process linked it first
    }
  }
  done.set(key, entryJs.join("\0"));
  return entryJs.map((p) => pathToFileURL(p));
}
