/**
 * The simulation context (DESIGN.md "Layers", sim/): one virtual clock and
 * event queue, one seeded random generator, one cost model and one trace bus
 * per simulation. The hypervisor (core/hv) and everything above it take a
 * `Simulation` and draw time, randomness, costs and tracing from it only.
 */
import { Tracer } from "../trace/events.js";
import { type CostModel, resolveCostModel } from "./cost-model.js";
import { Rng, type RngSeed } from "./rng.js";
import { Scheduler, type SchedulerOptions } from "./scheduler.js";

export interface SimulationOptions {
  /** Seed of the root random generator. Default 0. */
  readonly seed?: RngSeed;
  readonly costs?: Partial<CostModel>;
  /** Share a trace bus; default a fresh one. */
  readonly tracer?: Tracer;
  readonly scheduler?: Omit<SchedulerOptions, "tracer">;
}

export class Simulation {
  readonly tracer: Tracer;
  readonly scheduler: Scheduler;
  /** The root stream. Components should `rng.fork("their/name")` rather than share it. */
  readonly rng: Rng;
  readonly costs: CostModel;
  readonly seed: RngSeed;

  constructor(options: SimulationOptions = {}) {
    this.seed = options.seed ?? 0;
    this.costs = resolveCostModel(options.costs);
    this.tracer = options.tracer ?? new Tracer();
    this.scheduler = new Scheduler({ ...options.scheduler, tracer: this.tracer });
    this.rng = new Rng(this.seed);
  }

  /** Virtual time in nanoseconds. */
  get now(): number {
    return this.scheduler.now;
  }
}
