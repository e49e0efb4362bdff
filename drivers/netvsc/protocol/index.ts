/**
 * The netvsc protocol layer (storvsc-netvsc.md §9–§15, network half): NVSP
 * messages, RNDIS messages and per-packet info, the NDIS objects carried by
 * OIDs, a small Ethernet/ARP/IPv4/ICMP/UDP toolkit, and descriptions —
 * layouts, encoders, validating decoders. Pure: no channels, no simulation
 * state.
 */
export * from "./nvsp-constants.js";
export * from "./nvsp-message.js";
export * from "./rndis-constants.js";
export * from "./rndis-ppi.js";
export * from "./rndis-message.js";
export * from "./ndis-objects.js";
export * from "./ethernet.js";
export * from "./describe.js";
