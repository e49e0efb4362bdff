export * from "./tokens.js";
export * from "./system.js";
