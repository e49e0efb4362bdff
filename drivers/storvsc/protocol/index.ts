/**
 * The storvsc protocol layer (storvsc-netvsc.md §0–§8, storage half): VSTOR
 * packets and SRBs, SCSI CDBs, response data and sense data — layouts,
 * encoders, validating decoders and descriptions. Pure: no channels, no
 * simulation state.
 */
export * from "./vstor-constants.js";
export * from "./srb-constants.js";
export * from "./vstor-packet.js";
export * from "./errors.js";
export * from "./scsi-sense.js";
export * from "./scsi-cdb.js";
export * from "./scsi-data.js";
export * from "./scsi-inquiry.js";
export * from "./scsi-mode-sense.js";
export * from "./describe.js";
