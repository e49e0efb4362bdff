/**
 * The network host side (storvsc-netvsc.md §9–§15): the netvsp device, the
 * virtual switch it plugs into, pcap capture, and an IP responder for a
 * switch port with no VM behind it (threaded mode's far end).
 */
export * from "./pcap.js";
export * from "./virtual-switch.js";
export * from "./netvsp.js";
export * from "./responder.js";
