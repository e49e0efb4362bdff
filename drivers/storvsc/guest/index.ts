/**
 * The guest storvsc driver (storvsc-netvsc.md §4–§7): the VSC that binds
 * the SCSI and IDE controller classes, negotiates VSTOR, opens subchannels,
 * scans LUNs and offers each disk as a `ScsiDisk` with an async block API.
 */
export * from "./config.js";
export * from "./errors.js";
export * from "./channel-select.js";
export { ScsiDisk, type ScsiDiskCapacity, type ScsiDiskHost, type ScsiDiskIdentity, type ScsiRequest as ScsiDiskRequest, type ScsiResult as ScsiDiskResult } from "./scsi-disk.js";
export { StorvscDriver, StorvscStats, type RescanError, type RescanListener, type RescanResult } from "./storvsc-driver.js";
