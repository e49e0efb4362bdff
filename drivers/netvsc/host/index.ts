/**
 * The network host side (storvsc-netvsc.md §9–§15): the netvsp device, the
 * virtual switch it plugs into, and pcap capture.
 */
export * from "./pcap.js";
export * from "./virtual-switch.js";
export * from "./netvsp.js";
