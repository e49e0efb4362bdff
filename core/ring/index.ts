export * from "./layout.js";
export * from "./ring-buffer.js";
export * from "./packet-encoder.js";
export * from "./ring-writer.js";
export * from "./multi-producer-writer.js";
export * from "./ring-reader.js";
export * from "./requestor.js";
export * from "./packet-decode.js";
