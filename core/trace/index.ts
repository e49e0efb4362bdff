/** core/trace: typed trace events and the Chrome Trace Event / Perfetto JSON writer. */
export * from "./events.js";
export * from "./chrome-trace.js";
