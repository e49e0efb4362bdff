/**
 * The guest netvsc driver (storvsc-netvsc.md §9–§13): the VSC that binds
 * the synthetic network class, negotiates NVSP, shares the receive and send
 * buffers, brings RNDIS up, opens subchannels and offers a `Nic` with a
 * frame API (send, receive event, link state, statistics).
 */
export * from "./config.js";
export * from "./errors.js";
export * from "./send-path.js";
export { NetvscDriver, NetvscDriverStats, NetvscQueue, rndisPacketBytes, type Nic, type NicDirectionStats, type NicStats } from "./netvsc-driver.js";
