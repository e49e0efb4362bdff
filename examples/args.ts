/**
 * Flag parsing shared by the examples: `--flag value` and `--flag=value`,
 * integer flags checked against a range, and a `UsageError` the examples
 * print with exit code 2.
 */

/** A bad command line: the message names the flag, the value and what is allowed. */
export class UsageError extends Error {}

/** `raw` as an integer in [min, max], or a UsageError naming `flag`. */
export function intFlag(flag: string, raw: string | undefined, min: number, max: number): number {
  if (raw === undefined) throw new UsageError(`${flag}: needs a value`);
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new UsageError(`${flag} ${raw}: must be an integer from ${min} to ${max}`);
  return v;
}

/**
 * Calls `each(flag, value, arg, inline)` for every argument: `flag` without
 * any `=value`, `value()` taking the inline value or the next argument,
 * `inline` the `=value` part if there was one.
 */
export function forEachFlag(
  argv: readonly string[],
  each: (flag: string, value: () => string | undefined, arg: string, inline: string | undefined) => void,
): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const flag = eq >= 0 ? a.slice(0, eq) : a;
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    each(flag, () => inline ?? argv[++i], a, inline);
  }
}
