export * from "./tokens.js";
export * from "./disposable.js";
export * from "./plugin.js";
export * from "./bus.js";
