/**
 * The storvsc host side (storvsc-netvsc.md §4–§8): the VSP `StorvspDevice`,
 * its SCSI target, and the disk backends behind it (sparse memory, raw image
 * file, read-only, latency and fault-injection wrappers, and the factory
 * that builds them from a JSON-like `DiskSpec`).
 */
export * from "./disk-backend.js";
export * from "./memory-disk.js";
export * from "./file-disk.js";
export * from "./disk-wrappers.js";
export * from "./disk-spec.js";
export * from "./scsi-target.js";
export * from "./storvsp.js";
