/**
 * Configuration of the guest storvsc driver and the Linux sizing rules it
 * follows — storvsc-netvsc.md §4 step 6 (how many subchannels), §5.1 (ring
 * size, outstanding requests per channel, can_queue, request timeout, the
 * 10 % free-ring rule).
 *
 * A scenario provides a config by registering `STORVSC_CONFIG` in a
 * container the driver is resolved from (the simulation root or the VM's
 * container); without one every field takes the Linux default.
 *
 *     sys.root.register(STORVSC_CONFIG, { useValue: { ringBytes: 64 * 1024 } });
 */
import type { InjectionToken } from "tsyringe";
import { InvalidArgumentError, PAGE_SIZE, token } from "../../../core/index.js";
import {
  LINUX_VMSTOR_VERSION_ORDER,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN8,
  VSTOR_PACKET_SIZE_WIN8,
  formatVmstorVersion,
} from "../protocol/index.js";

export interface StorvscConfig {
  /**
   * Bytes of each ring (outbound and inbound alike), header page included,
   * for the primary channel and every subchannel. Linux module parameter
   * `storvsc_ringbuffer_size`; default 128 KiB.
   */
  readonly ringBytes?: number;
  /**
   * Linux module parameter `storvsc_vcpus_per_sub_channel`; default 4.
   * Current Linux does NOT use it to size the subchannel count (that is
   * min(online CPUs − 1, max_channel_cnt), see `storvscSubchannelCount`):
   * it sizes `can_queue`, which caps each disk's queue depth here.
   */
  readonly vcpusPerSubchannel?: number;
  /**
   * How long (virtual ns) a SCSI command may stay unanswered before its
   * caller gets a `StorvscTimeoutError`. Default 60 s: the `time_out_value`
   * every SRB carries (§3, Linux puts 60), i.e. the time the host itself was
   * promised. Linux's block-layer `storvsc_timeout` is 180 s and only re-arms
   * ("the host guarantees to respond"); a simulation wants a lost request to
   * surface, and 60 s of virtual time costs nothing.
   */
  readonly requestTimeoutNs?: number;
  /** Highest VSTOR version offered (u16 major<<8|minor); default 6.2. Must be ≥ 5.1 (Win8). */
  readonly maxVersion?: number;
  /**
   * Request-id slots of each channel (its requestor). Default
   * `max_outstanding_req_per_channel` for the ring size (352 for 128 KiB):
   * the number of maximal EXECUTE_SRB packets the outbound ring holds. When
   * a channel's ids are all taken, further commands for it wait in FIFO.
   */
  readonly requestsPerChannel?: number;
}

/** The config with every default applied. */
export interface ResolvedStorvscConfig {
  readonly ringBytes: number;
  readonly vcpusPerSubchannel: number;
  readonly requestTimeoutNs: number;
  readonly maxVersion: number;
  readonly requestsPerChannel: number;
}

/** DI token of the optional storvsc configuration. */
export const STORVSC_CONFIG: InjectionToken<StorvscConfig> = token<StorvscConfig>("vmbus.storvsc.Config");

// ---------------------------------------------------------------------------
// Linux constants (storvsc_drv.c)

/** `storvsc_ringbuffer_size` default: 128 KiB per direction. */
export const STORVSC_RINGBUFFER_SIZE = 128 * 1024;
/** `storvsc_vcpus_per_sub_channel` default. */
export const STORVSC_VCPUS_PER_SUB_CHANNEL = 4;
/** `ring_avail_percent_lowater`: a channel is "busy" at ≤ 10 % free outbound ring. */
export const RING_AVAIL_PERCENT_LOWATER = 10;
/** `storvsc_timeout` (s): Linux's block-layer request timeout (re-armed forever). */
export const STORVSC_LINUX_TIMEOUT_SECONDS = 180;
/** Default request timeout of this driver: the SRB `time_out_value` (60 s). */
export const STORVSC_DEFAULT_REQUEST_TIMEOUT_NS = 60 * 1_000_000_000;
/** Linux waits 5 s for each initialization step (`storvsc_execute_vstor_op`). */
export const STORVSC_INIT_TIMEOUT_NS = 5 * 1_000_000_000;
/** Linux waits 10 s for the CREATE_SUB_CHANNELS completion; we wait as long again for the offers. */
export const STORVSC_SUBCHANNEL_TIMEOUT_NS = 10 * 1_000_000_000;
/** `MAX_MULTIPAGE_BUFFER_PACKET`: 0x18 + 8 + 32 × 8 bytes (§0.2). */
export const MAX_MULTIPAGE_BUFFER_PACKET = 0x18 + 8 + 32 * 8;
/** `cmd_per_lun` of the storvsc host template. */
export const STORVSC_CMD_PER_LUN = 2048;
/** sd's `SD_MAX_RETRIES`: how often a command is retried after a UNIT ATTENTION. */
export const SD_MAX_RETRIES = 5;
/** `STORVSC_IDE_MAX_LUNS_PER_TARGET`. */
export const STORVSC_IDE_MAX_LUNS_PER_TARGET = 64;
/**
 * `MAX_SCSI_LUNS` of scsi_scan.c (module parameter `max_luns`): with the
 * host's max_lun it bounds the sequential LUN scan.
 */
export const MAX_SCSI_LUNS = 512;

/**
 * `max_outstanding_req_per_channel` (`storvsc_drv_init`): the ring's data
 * bytes (ring minus its header page) divided by the largest request a
 * channel carries — a maximal multi-page-buffer packet, the 64-byte
 * vstor_packet and the u64 trailer, 8-aligned. 352 for 128 KiB.
 */
export function maxOutstandingReqPerChannel(ringBytes: number): number {
  const maxRequest = align8(MAX_MULTIPAGE_BUFFER_PACKET + VSTOR_PACKET_SIZE_WIN8 + 8);
  return Math.floor((ringBytes - PAGE_SIZE) / maxRequest);
}

/**
 * `scsi_driver.can_queue` (`storvsc_probe`): per-channel requests ×
 * (max_sub_channels + 1) × 90 %, where max_sub_channels =
 * (online CPUs − 1) / storvsc_vcpus_per_sub_channel (0 for IDE). The SCSI
 * midlayer clamps `cmd_per_lun` to it, so it is each disk's queue depth.
 */
export function storvscCanQueue(ringBytes: number, onlineCpus: number, vcpusPerSubchannel: number, isIde: boolean): number {
  const maxSubChannels = isIde ? 0 : Math.floor((onlineCpus - 1) / vcpusPerSubchannel);
  return Math.floor((maxOutstandingReqPerChannel(ringBytes) * (maxSubChannels + 1) * (100 - RING_AVAIL_PERCENT_LOWATER)) / 100);
}

/**
 * `handle_multichannel_storage`: the subchannels Linux asks for,
 * min(online CPUs − 1, max_channel_cnt). The primary already serves one
 * CPU, and a host may offer more subchannels than the guest has CPUs
 * (maxcpus=1), which would only sit idle.
 */
export function storvscSubchannelCount(onlineCpus: number, maxChannelCount: number): number {
  return Math.max(0, Math.min(onlineCpus - 1, maxChannelCount));
}

/** The versions offered in QUERY_PROTOCOL_VERSION, Linux order, none above `maxVersion`. */
export function storvscVersionOrder(maxVersion: number): readonly number[] {
  return LINUX_VMSTOR_VERSION_ORDER.filter((v) => v <= maxVersion);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Applies defaults and checks every field; a bad value is an `InvalidArgumentError` naming it. */
export function resolveStorvscConfig(config: StorvscConfig | undefined): ResolvedStorvscConfig {
  const c = config ?? {};
  const ringBytes = c.ringBytes ?? STORVSC_RINGBUFFER_SIZE;
  if (!Number.isInteger(ringBytes) || ringBytes % PAGE_SIZE !== 0 || ringBytes < 2 * PAGE_SIZE) {
    throw new InvalidArgumentError("storvsc ringBytes", ringBytes, `must be a multiple of ${PAGE_SIZE} and at least ${2 * PAGE_SIZE}`);
  }
  const vcpusPerSubchannel = c.vcpusPerSubchannel ?? STORVSC_VCPUS_PER_SUB_CHANNEL;
  if (!Number.isInteger(vcpusPerSubchannel) || vcpusPerSubchannel < 1) {
    throw new InvalidArgumentError("storvsc vcpusPerSubchannel", vcpusPerSubchannel, "must be a positive integer");
  }
  const requestTimeoutNs = c.requestTimeoutNs ?? STORVSC_DEFAULT_REQUEST_TIMEOUT_NS;
  if (!Number.isSafeInteger(requestTimeoutNs) || requestTimeoutNs <= 0) {
    throw new InvalidArgumentError("storvsc requestTimeoutNs", requestTimeoutNs, "must be a positive safe integer of nanoseconds");
  }
  const maxVersion = c.maxVersion ?? VMSTOR_PROTO_VERSION_WIN10;
  if (!Number.isInteger(maxVersion) || maxVersion < VMSTOR_PROTO_VERSION_WIN8 || maxVersion > 0xffff) {
    throw new InvalidArgumentError(
      "storvsc maxVersion",
      maxVersion,
      `must be a u16 of at least ${formatVmstorVersion(VMSTOR_PROTO_VERSION_WIN8)} (current Linux dropped pre-Win8 hosts)`,
    );
  }
  const perChannel = Math.max(1, maxOutstandingReqPerChannel(ringBytes));
  const requestsPerChannel = c.requestsPerChannel ?? perChannel;
  if (!Number.isInteger(requestsPerChannel) || requestsPerChannel < 1 || requestsPerChannel > 1 << 16) {
    throw new InvalidArgumentError("storvsc requestsPerChannel", requestsPerChannel, "must be an integer in [1, 65536]");
  }
  return { ringBytes, vcpusPerSubchannel, requestTimeoutNs, maxVersion, requestsPerChannel };
}
