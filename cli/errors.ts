/**
 * The CLI's two kinds of failure, which decide the exit code: a
 * `UsageError` (bad arguments, bad scenario: exit 2, the user must change
 * what they typed) and anything else (the simulation failed: exit 1).
 */

/** Bad command-line input; exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * A scenario that breaks a rule. The message names the file, the field
 * path, the value and what is allowed, in one line:
 * `bad.json: vms[0].vcpus = 0: must be an integer in [1, 64]`.
 */
export class ScenarioError extends UsageError {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`${file}: ${field} = ${showValue(value)}: ${allowed}`);
  }
}

/** A value as the user wrote it in JSON, short. */
export function showValue(v: unknown): string {
  if (v === undefined) return "(missing)";
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}
