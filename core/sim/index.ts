/** core/sim: virtual clock, event scheduler, seeded RNG, cost model, simulation context. */
export * from "./errors.js";
export { Scheduler, Timer } from "./scheduler.js";
export type { Clock, EventFn, EventHandle, MicrotaskDrain, RunUntilSettledOptions, SchedulerGate, SchedulerOptions } from "./scheduler.js";
export { Rng } from "./rng.js";
export type { RngSeed } from "./rng.js";
export * from "./cost-model.js";
export * from "./simulation.js";
export * from "./settle.js";
