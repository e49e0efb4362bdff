/**
 * vmbus-sim's public entry. Drivers (under `drivers/`) and examples import
 * from here and from nowhere else in `core/`.
 */
// tsyringe needs the Reflect metadata API before any decorated class loads.
import "reflect-metadata";
export * from "./errors.js";
export * from "./memory/guest-memory.js";
export * from "./memory/paged-view.js";
export * from "./ring/index.js";
export * from "./driver/index.js";
export * from "./vmbus/index.js";
export * from "./sim/index.js";
export * from "./hv/index.js";
export * from "./trace/index.js";
export * from "./sysfs/index.js";
export * from "./system/index.js";
export * from "./threads/index.js";
