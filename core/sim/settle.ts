/**
 * Handlers in the simulation may be synchronous or return a promise. These
 * helpers treat both alike without allocating a promise for the synchronous
 * case (the common one on signal and interrupt paths).
 */

export function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

/**
 * Runs `fn`; calls `onDone` when it has finished (at once, or when its
 * promise resolves) and `onFail` with the error if it throws or rejects.
 * Exactly one of the two is called, once.
 */
export function runSettled(fn: () => unknown, onDone: () => void, onFail: (e: unknown) => void): void {
  let r: unknown;
  try {
    r = fn();
  } catch (e) {
    onFail(e);
    return;
  }
  if (isThenable(r)) r.then(onDone, onFail);
  else onDone();
}
