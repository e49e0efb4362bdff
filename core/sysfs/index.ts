/**
 * The guest's sysfs view of VMBus (vmbus-core.md §9): the tree, lsvmbus,
 * /proc/interrupts, and an exporter to a real directory.
 */
export * from "./source.js";
export * from "./store-parsers.js";
export * from "./sysfs.js";
export * from "./lsvmbus.js";
export * from "./proc-interrupts.js";
export * from "./export-tree.js";
