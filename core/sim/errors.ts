/**
 * Typed errors of the simulation kernel (DESIGN.md "Time": one event queue,
 * virtual time). Messages name the field or event, the value and the limit.
 */
import { VmbusSimError, fmtNum } from "../errors.js";

/**
 * `runUntilSettled` ran out of events while the awaited promise was still
 * pending: nothing left in the simulation can ever settle it.
 */
export class SimDeadlockError extends VmbusSimError {
  readonly code = "SIM_DEADLOCK";
  constructor(
    readonly what: string,
    readonly timeNs: number,
  ) {
    super(`${what}: still pending at t=${timeNs} ns but the event queue is empty (deadlock: nothing can settle it)`);
  }
}

/** `runUntilSettled` reached its `deadlineNs` before the promise settled. */
export class SimDeadlineError extends VmbusSimError {
  readonly code = "SIM_DEADLINE";
  constructor(
    readonly what: string,
    readonly deadlineNs: number,
    readonly nextEventNs: number,
  ) {
    super(`${what}: still pending at deadline t=${deadlineNs} ns (next event at t=${nextEventNs} ns)`);
  }
}

/**
 * An event handler (or the promise it returned, or a handler another layer
 * reported through `Scheduler.reportError`) threw. `label` names the event;
 * `cause` is what it threw.
 */
export class SimEventError extends VmbusSimError {
  readonly code = "SIM_EVENT_HANDLER";
  constructor(
    readonly label: string,
    readonly timeNs: number,
    override readonly cause: unknown,
  ) {
    super(`event '${label}' at t=${timeNs} ns threw: ${describe(cause)}`);
  }
}

/** A `run*` method was called while another one is running (e.g. from inside an event). */
export class SimReentrancyError extends VmbusSimError {
  readonly code = "SIM_REENTRANT_RUN";
  constructor(readonly method: string) {
    super(`${method}: the scheduler is already running (run* must not be called from an event or while another run* is pending)`);
  }
}

/** A value given for a cost-model field is out of range. */
export class CostModelError extends VmbusSimError {
  readonly code = "COST_MODEL";
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly limit: string,
  ) {
    super(`costs.${field}=${typeof value === "number" ? fmtNum(value) : String(value)}: ${limit}`);
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}
