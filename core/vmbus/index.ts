/**
 * The VMBus control plane's pure parts: GUIDs, protocol versions, device
 * classes and channel messages (spec/vmbus-core.md §7, §9, §10).
 */
export * from "./guid.js";
export * from "./versions.js";
export * from "./device-classes.js";
export * from "./messages.js";
export * from "./endpoint.js";
export * from "./guest-channel.js";
export * from "./device.js";
export * from "./client.js";
export * from "./host-channel.js";
export * from "./server.js";
