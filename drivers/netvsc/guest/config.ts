/**
 * Configuration of the guest netvsc driver and the Linux sizing rules it
 * follows — storvsc-netvsc.md §10 (ring size, receive and send buffer
 * sizes), §11.1 (the 10 % / 20 % free-ring rule of the transmit queues),
 * §12 (how many queues), §9.3 (the versions offered).
 *
 * A scenario provides a config by registering `NETVSC_CONFIG` in a container
 * the driver is resolved from (the simulation root or the VM's container);
 * without one every field takes the Linux default.
 *
 *     sys.root.register(NETVSC_CONFIG, { useValue: { recvBufferBytes: 1 << 20 } });
 */
import type { InjectionToken } from "tsyringe";
import { InvalidArgumentError, PAGE_SIZE, token } from "../../../core/index.js";
import {
  LINUX_NVSP_VERSION_ORDER,
  NETVSC_MTU_MIN,
  NETVSC_RECEIVE_BUFFER_DEFAULT,
  NETVSC_RECEIVE_BUFFER_SIZE,
  NETVSC_SEND_BUFFER_DEFAULT,
  NETVSC_SEND_BUFFER_SIZE,
  NVSP_PROTOCOL_VERSION_61,
  VRSS_CHANNEL_DEFAULT,
  VRSS_CHANNEL_MAX,
  formatNvspVersion,
} from "../protocol/index.js";

export interface NetvscConfig {
  /** Pages of each ring (both directions, every channel). Linux `ring_size` module parameter: 128 (512 KiB), minimum 64 — here ≥ 2. */
  readonly ringPages?: number;
  /** Receive buffer bytes (multiple of 4 KiB). Linux `NETVSC_RECEIVE_BUFFER_DEFAULT`: 16 MiB. */
  readonly recvBufferBytes?: number;
  /** Send buffer bytes (multiple of 4 KiB). Linux `NETVSC_SEND_BUFFER_DEFAULT`: 1 MiB. */
  readonly sendBufferBytes?: number;
  /** Queues (channels) wanted, primary included. Linux `VRSS_CHANNEL_DEFAULT` 8; also capped by vCPUs and the host's RSS caps. */
  readonly maxQueues?: number;
  /** Highest NVSP version offered (u32 major<<16|minor); default 6.1. */
  readonly maxVersion?: number;
  /** How long (virtual ns) a handshake step or RNDIS request may stay unanswered. Default 5 s. */
  readonly requestTimeoutNs?: number;
  /** Interface MTU (without the 14-byte Ethernet header); default 1500. The host's MAXIMUM_FRAME_SIZE may lower it. */
  readonly mtu?: number;
}

export interface ResolvedNetvscConfig {
  readonly ringPages: number;
  readonly recvBufferBytes: number;
  readonly sendBufferBytes: number;
  readonly maxQueues: number;
  readonly maxVersion: number;
  readonly requestTimeoutNs: number;
  readonly mtu: number;
}

/** DI token of the optional netvsc configuration. */
export const NETVSC_CONFIG: InjectionToken<NetvscConfig> = token<NetvscConfig>("vmbus.netvsc.Config");

/** Linux `VMBUS_RING_SIZE`-based default of netvsc: 128 pages of 4 KiB per direction. */
export const NETVSC_RING_PAGES_DEFAULT = 128;
/** Linux `RING_AVAIL_PERCENT_LOWATER`: a transmit queue stops below 10 % free outbound ring. */
export const RING_AVAIL_PERCENT_LOWATER = 10;
/** Linux `RING_AVAIL_PERCENT_HIWATER`: a stopped queue wakes above 20 % free. */
export const RING_AVAIL_PERCENT_HIWATER = 20;
/** Default timeout of a handshake step / RNDIS request (virtual ns). */
export const NETVSC_REQUEST_TIMEOUT_NS = 5_000_000_000;
/** Linux: after NETWORK_CHANGE the carrier goes off and comes back 2 s later (so DHCP renews). */
export const NETVSC_NETWORK_CHANGE_DELAY_NS = 2_000_000_000;
/**
 * Page-buffer sends a queue may have in flight. Linux has no such counter
 * (the skb memory is the limit); the simulation allocates guest pages for
 * each one, so it bounds them and stops the queue when they are used up.
 */
export const NETVSC_MAX_PAGEBUF_INFLIGHT = 64;
/** Largest packet accepted from the inbound ring: 2 pages, room for `NVSP_RSC_MAX` (562) transfer ranges. */
export const NETVSC_MAX_PKT_SIZE = 2 * PAGE_SIZE;
/**
 * Request ids per channel. Linux `netvsc_rqstor_size`: the number of
 * smallest outbound packets the ring holds (here 64 bytes: descriptor + 40-byte NVSP + trailer).
 */
export function netvscRequestorSize(ringBytes: number): number {
  return Math.max(64, Math.floor(ringBytes / 64));
}

export function resolveNetvscConfig(c: NetvscConfig | undefined): ResolvedNetvscConfig {
  const r: ResolvedNetvscConfig = {
    ringPages: c?.ringPages ?? NETVSC_RING_PAGES_DEFAULT,
    recvBufferBytes: c?.recvBufferBytes ?? NETVSC_RECEIVE_BUFFER_DEFAULT,
    sendBufferBytes: c?.sendBufferBytes ?? NETVSC_SEND_BUFFER_DEFAULT,
    maxQueues: c?.maxQueues ?? VRSS_CHANNEL_DEFAULT,
    maxVersion: c?.maxVersion ?? NVSP_PROTOCOL_VERSION_61,
    requestTimeoutNs: c?.requestTimeoutNs ?? NETVSC_REQUEST_TIMEOUT_NS,
    mtu: c?.mtu ?? 1500,
  };
  if (!Number.isInteger(r.ringPages) || r.ringPages < 2) throw new InvalidArgumentError("NetvscConfig.ringPages", r.ringPages, "must be an integer ≥ 2");
  for (const [field, v, max] of [
    ["recvBufferBytes", r.recvBufferBytes, NETVSC_RECEIVE_BUFFER_SIZE],
    ["sendBufferBytes", r.sendBufferBytes, NETVSC_SEND_BUFFER_SIZE],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % PAGE_SIZE !== 0 || v > max) {
      throw new InvalidArgumentError(`NetvscConfig.${field}`, v, `must be a positive multiple of ${PAGE_SIZE} up to ${max}`);
    }
  }
  if (!Number.isInteger(r.maxQueues) || r.maxQueues < 1 || r.maxQueues > VRSS_CHANNEL_MAX) {
    throw new InvalidArgumentError("NetvscConfig.maxQueues", r.maxQueues, `must be an integer in 1..${VRSS_CHANNEL_MAX}`);
  }
  if (!LINUX_NVSP_VERSION_ORDER.includes(r.maxVersion)) {
    throw new InvalidArgumentError("NetvscConfig.maxVersion", r.maxVersion, `is not one of ${LINUX_NVSP_VERSION_ORDER.map(formatNvspVersion).join(", ")}`);
  }
  if (!(r.requestTimeoutNs > 0)) throw new InvalidArgumentError("NetvscConfig.requestTimeoutNs", r.requestTimeoutNs, "must be positive");
  if (!Number.isInteger(r.mtu) || r.mtu < NETVSC_MTU_MIN || r.mtu > 9000) throw new InvalidArgumentError("NetvscConfig.mtu", r.mtu, `must be an integer in ${NETVSC_MTU_MIN}..9000`);
  return r;
}

/** Linux `netvsc_connect_vsp`: the versions offered, newest first, up to `maxVersion`. */
export function netvscVersionOrder(maxVersion: number): number[] {
  return LINUX_NVSP_VERSION_ORDER.filter((v) => v <= maxVersion);
}
