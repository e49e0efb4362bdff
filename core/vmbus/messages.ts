/**
 * VMBus channel messages: numbers, byte layouts, encode / decode and
 * validation (spec/vmbus-core.md §7.1–§7.4, §7.7; Linux `include/linux/hyperv.h`
 * `struct vmbus_channel_*`, `drivers/hv/vmbus_drv.c` `vmbus_on_msg_dpc`).
 *
 * A channel message is what the guest posts with HvPostMessage and what the
 * host delivers into SynIC message slot 2: an 8-byte header (u32 `msgtype`,
 * u32 padding) and a body, at most MAX_SIZE_CHANNEL_MESSAGE (240) bytes, all
 * little-endian and `__packed`. Each layout below is a table of byte offsets
 * from the start of the message, named after its Linux struct, with the
 * fields under their C names; the encoder and decoder read the table.
 *
 * Numbers: every field is a JS `number`, including the u64 ones (GPADL PFNs,
 * INITIATE_CONTACT's interrupt page and monitor page addresses). Guest
 * physical addresses are at most 52 bits on x86-64 and PFNs at most 40, so a
 * number holds every valid value exactly; a decoded u64 above
 * Number.MAX_SAFE_INTEGER cannot be a valid address and is a ProtocolError.
 * Numbers also match `core/memory`, which addresses guest memory with numbers.
 *
 * Trust: `decodeChannelMessage` is the receive side of a trust boundary. It
 * copies the message before reading it (so a peer rewriting the shared slot
 * cannot change a value between its check and its use), and it applies
 * Linux's `vmbus_on_msg_dpc` checks plus the GPADL consistency checks a host
 * needs against a hostile guest. The encoder, on the other hand, writes any
 * value that fits its field, so that tests can build malformed messages.
 */
import { fmtNum, InvalidArgumentError, ProtocolError } from "../errors.js";
import { Guid } from "./guid.js";
import { formatVersion, usesNewContactMethod } from "./versions.js";

// --- message numbers (§7.2 `enum vmbus_channel_message_type`) ---------------

export const CHANNELMSG_INVALID = 0;
export const CHANNELMSG_OFFERCHANNEL = 1;
export const CHANNELMSG_RESCIND_CHANNELOFFER = 2;
export const CHANNELMSG_REQUESTOFFERS = 3;
export const CHANNELMSG_ALLOFFERS_DELIVERED = 4;
export const CHANNELMSG_OPENCHANNEL = 5;
export const CHANNELMSG_OPENCHANNEL_RESULT = 6;
export const CHANNELMSG_CLOSECHANNEL = 7;
export const CHANNELMSG_GPADL_HEADER = 8;
export const CHANNELMSG_GPADL_BODY = 9;
export const CHANNELMSG_GPADL_CREATED = 10;
export const CHANNELMSG_GPADL_TEARDOWN = 11;
export const CHANNELMSG_GPADL_TORNDOWN = 12;
export const CHANNELMSG_RELID_RELEASED = 13;
export const CHANNELMSG_INITIATE_CONTACT = 14;
export const CHANNELMSG_VERSION_RESPONSE = 15;
export const CHANNELMSG_UNLOAD = 16;
export const CHANNELMSG_UNLOAD_RESPONSE = 17;
export const CHANNELMSG_18 = 18;
export const CHANNELMSG_19 = 19;
export const CHANNELMSG_20 = 20;
export const CHANNELMSG_TL_CONNECT_REQUEST = 21;
export const CHANNELMSG_MODIFYCHANNEL = 22;
export const CHANNELMSG_TL_CONNECT_RESULT = 23;
export const CHANNELMSG_MODIFYCHANNEL_RESPONSE = 24;
export const CHANNELMSG_COUNT = 25;

// --- sizes and other constants ----------------------------------------------

/** The SynIC message payload (`HV_MESSAGE_PAYLOAD_BYTE_COUNT`): the largest channel message. */
export const MAX_SIZE_CHANNEL_MESSAGE = 240;
/**
 * `hv_message_header.message_type` / post-message `message_type` VMBus uses
 * (§5.2, §7.4). Defined by the hypervisor layer; re-exported here (the same
 * binding, so the core barrel sees no conflict) because every channel
 * message travels with it.
 */
export { VMBUS_MESSAGE_TYPE_CHANNEL } from "../hv/constants.js";
/** `INVALID_RELID` (U32_MAX); real relids start at 1. */
export const INVALID_RELID = 0xffff_ffff;
/** Bytes of `struct vmbus_channel_message_header`. */
export const CHANNEL_MESSAGE_HEADER_SIZE = 8;
/** `MAX_USER_DEFINED_BYTES`: the offer's `user_def` union and OPENCHANNEL's `userdata`. */
export const MAX_USER_DEFINED_BYTES = 120;
/** `MAX_PIPE_USER_DEFINED_BYTES`: `user_def` after the pipe-mode u32. */
export const MAX_PIPE_USER_DEFINED_BYTES = 116;
/** PFNs that fit in a GPADL_HEADER after its 20-byte header and one gpa_range: ⌊(240 − 20 − 8) / 8⌋ (a 236-byte message). */
export const GPADL_HEADER_MAX_PFNS = 26;
/** PFNs that fit in a GPADL_BODY after its 16-byte header: (240 − 16) / 8. */
export const GPADL_BODY_MAX_PFNS = 28;
/** First handle Linux hands out (`next_gpadl_handle`), §7.7. */
export const GPADL_FIRST_HANDLE = 0xe1e10;

/** `chn_flags` of an offer (§7.3). */
export const VMBUS_CHANNEL_ENUMERATE_DEVICE_INTERFACE = 0x1;
export const VMBUS_CHANNEL_SERVER_SUPPORTS_TRANSFER_PAGES = 0x2;
export const VMBUS_CHANNEL_SERVER_SUPPORTS_GPADLS = 0x4;
export const VMBUS_CHANNEL_NAMED_PIPE_MODE = 0x10;
export const VMBUS_CHANNEL_LOOPBACK_OFFER = 0x100;
export const VMBUS_CHANNEL_PARENT_OFFER = 0x200;
export const VMBUS_CHANNEL_REQUEST_MONITORED_NOTIFICATION = 0x400;
/** An hv_sock offer. */
export const VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER = 0x2000;

/** Pipe modes (`offer.u.pipe.pipe_mode`). */
export const VMBUS_PIPE_TYPE_BYTE = 0x0;
export const VMBUS_PIPE_TYPE_MESSAGE = 0x4;

/** Hyper-V page size (`HV_HYP_PAGE_SIZE`): GPADL PFNs count 4 KiB frames. */
const HV_HYP_PAGE_SIZE = 4096;
/**
 * Relids index the 2048-bit SynIC event-flag block (§5.3, §5.5
 * `MAX_CHANNEL_RELIDS`); an offer outside 1..2047 could never be signalled.
 */
const MAX_CHANNEL_RELIDS = 2048;
/** Monitor ids select one of 4 trigger groups × 32 bits (§6). */
const MAX_MONITOR_IDS = 128;

// --- layouts (§7.3; offsets from the start of the message) ------------------

/** §7.1 `struct vmbus_channel_message_header`. */
export const CHANNEL_MESSAGE_HEADER_LAYOUT = { msgtype: 0, padding: 4, size: 8 } as const;

/** Header-only messages: REQUESTOFFERS, ALLOFFERS_DELIVERED, UNLOAD, UNLOAD_RESPONSE. */
export const HEADER_ONLY_LAYOUT = { size: 8 } as const;

/**
 * §7.3 `struct vmbus_channel_offer_channel`, which embeds the 176-byte
 * `struct vmbus_channel_offer` at @8. `user_def` is a 120-byte union: the
 * standard view is all of it, the pipe view a u32 `pipe_mode` then 116 bytes.
 */
export const OFFER_LAYOUT = {
  if_type: 8,
  if_instance: 24,
  reserved1: 40,
  reserved2: 48,
  chn_flags: 56,
  mmio_megabytes: 58,
  user_def: 60,
  pipe_mode: 60,
  pipe_user_def: 64,
  sub_channel_index: 180,
  reserved3: 182,
  child_relid: 184,
  monitorid: 188,
  /** bit 0 `monitor_allocated`, bits 1–7 reserved. */
  monitor_allocated: 189,
  /** u16: bit 0 `is_dedicated_interrupt`, bits 1–15 reserved. */
  is_dedicated_interrupt: 190,
  connection_id: 192,
  size: 196,
} as const;

/** §7.3 `struct vmbus_channel_rescind_offer`. */
export const RESCIND_CHANNELOFFER_LAYOUT = { child_relid: 8, size: 12 } as const;

/** §7.3 `struct vmbus_channel_open_channel`. */
export const OPENCHANNEL_LAYOUT = {
  child_relid: 8,
  openid: 12,
  ringbuffer_gpadlhandle: 16,
  target_vp: 20,
  /** In 4 KiB pages: where the host→guest ring starts inside the GPADL. */
  downstream_ringbuffer_pageoffset: 24,
  userdata: 28,
  size: 148,
} as const;

/** §7.3 `struct vmbus_channel_open_result`. */
export const OPENCHANNEL_RESULT_LAYOUT = { child_relid: 8, openid: 12, status: 16, size: 20 } as const;

/** §7.3 `struct vmbus_channel_close_channel`. */
export const CLOSECHANNEL_LAYOUT = { child_relid: 8, size: 12 } as const;

/**
 * §7.3 `struct vmbus_channel_gpadl_header` followed by its first
 * `struct gpa_range` (u32 `byte_count`, u32 `byte_offset`, u64 `pfn_array[]`).
 * `size` is the fixed part; the message is `size + 8 × PFNs` bytes.
 */
export const GPADL_HEADER_LAYOUT = {
  child_relid: 8,
  gpadl: 12,
  range_buflen: 16,
  rangecount: 18,
  range: 20,
  byte_count: 20,
  byte_offset: 24,
  pfn_array: 28,
  size: 28,
} as const;

/** §7.3 `struct vmbus_channel_gpadl_body`; the message is `size + 8 × PFNs` bytes. */
export const GPADL_BODY_LAYOUT = { msgnumber: 8, gpadl: 12, pfn: 16, size: 16 } as const;

/** §7.3 `struct vmbus_channel_gpadl_created`. */
export const GPADL_CREATED_LAYOUT = { child_relid: 8, gpadl: 12, creation_status: 16, size: 20 } as const;

/** §7.3 `struct vmbus_channel_gpadl_teardown`. */
export const GPADL_TEARDOWN_LAYOUT = { child_relid: 8, gpadl: 12, size: 16 } as const;

/** §7.3 `struct vmbus_channel_gpadl_torndown`. */
export const GPADL_TORNDOWN_LAYOUT = { gpadl: 8, size: 12 } as const;

/** §7.3 `struct vmbus_channel_relid_released`. */
export const RELID_RELEASED_LAYOUT = { child_relid: 8, size: 12 } as const;

/**
 * §7.3 `struct vmbus_channel_initiate_contact`. @16 is a union: u64
 * `interrupt_page` below protocol 5.0, or u8 `msg_sint`, u8 `msg_vtl`,
 * u8 reserved[6] from 5.0 on.
 */
export const INITIATE_CONTACT_LAYOUT = {
  vmbus_version_requested: 8,
  target_vcpu: 12,
  interrupt_page: 16,
  msg_sint: 16,
  msg_vtl: 17,
  monitor_page1: 24,
  monitor_page2: 32,
  size: 40,
} as const;

/** §7.3 `struct vmbus_channel_version_response`. */
export const VERSION_RESPONSE_LAYOUT = {
  version_supported: 8,
  connection_state: 9,
  padding: 10,
  msg_conn_id: 12,
  size: 16,
} as const;

/** §7.3 `struct vmbus_channel_tl_connect_request`. */
export const TL_CONNECT_REQUEST_LAYOUT = { guest_endpoint_id: 8, host_service_id: 24, size: 40 } as const;

/** §7.3 `struct vmbus_channel_modifychannel`. */
export const MODIFYCHANNEL_LAYOUT = { child_relid: 8, target_vp: 12, size: 16 } as const;

/** §7.3 `struct vmbus_channel_modifychannel_response`. */
export const MODIFYCHANNEL_RESPONSE_LAYOUT = { child_relid: 8, status: 12, size: 16 } as const;

// --- per-type table (§7.2, §7.4) --------------------------------------------

/** Which way a channel message travels. */
export type ChannelMessageDirection = "toGuest" | "toHost";

export interface ChannelMessageInfo {
  readonly msgtype: number;
  /** The enum name without `CHANNELMSG_`. */
  readonly name: string;
  /** Who receives it (§7.2); null for INVALID and the unused 18–20. */
  readonly direction: ChannelMessageDirection | null;
  /**
   * Whether the receiving side handles it. toGuest: Linux's
   * `channel_message_table` (TL_CONNECT_RESULT has no handler). toHost: the
   * simulated VMBus server.
   */
  readonly handled: boolean;
  /**
   * Smallest `payload_size` accepted. toGuest: Linux's `min_payload_len`
   * (§7.4; 0 for ALLOFFERS_DELIVERED and UNLOAD_RESPONSE, as in Linux).
   * toHost: the §7.2 size (GPADL_HEADER: with no PFN; GPADL_BODY: one PFN).
   */
  readonly minPayloadLen: number;
}

function info(
  msgtype: number,
  name: string,
  direction: ChannelMessageDirection | null,
  handled: boolean,
  minPayloadLen: number,
): ChannelMessageInfo {
  return Object.freeze({ msgtype, name, direction, handled, minPayloadLen });
}

/** Indexed by msgtype, 0..CHANNELMSG_COUNT−1. */
export const CHANNEL_MESSAGE_TABLE: readonly ChannelMessageInfo[] = Object.freeze([
  info(CHANNELMSG_INVALID, "INVALID", null, false, 0),
  info(CHANNELMSG_OFFERCHANNEL, "OFFERCHANNEL", "toGuest", true, OFFER_LAYOUT.size),
  info(CHANNELMSG_RESCIND_CHANNELOFFER, "RESCIND_CHANNELOFFER", "toGuest", true, RESCIND_CHANNELOFFER_LAYOUT.size),
  info(CHANNELMSG_REQUESTOFFERS, "REQUESTOFFERS", "toHost", true, HEADER_ONLY_LAYOUT.size),
  info(CHANNELMSG_ALLOFFERS_DELIVERED, "ALLOFFERS_DELIVERED", "toGuest", true, 0),
  info(CHANNELMSG_OPENCHANNEL, "OPENCHANNEL", "toHost", true, OPENCHANNEL_LAYOUT.size),
  info(CHANNELMSG_OPENCHANNEL_RESULT, "OPENCHANNEL_RESULT", "toGuest", true, OPENCHANNEL_RESULT_LAYOUT.size),
  info(CHANNELMSG_CLOSECHANNEL, "CLOSECHANNEL", "toHost", true, CLOSECHANNEL_LAYOUT.size),
  info(CHANNELMSG_GPADL_HEADER, "GPADL_HEADER", "toHost", true, GPADL_HEADER_LAYOUT.size),
  info(CHANNELMSG_GPADL_BODY, "GPADL_BODY", "toHost", true, GPADL_BODY_LAYOUT.size + 8),
  info(CHANNELMSG_GPADL_CREATED, "GPADL_CREATED", "toGuest", true, GPADL_CREATED_LAYOUT.size),
  info(CHANNELMSG_GPADL_TEARDOWN, "GPADL_TEARDOWN", "toHost", true, GPADL_TEARDOWN_LAYOUT.size),
  info(CHANNELMSG_GPADL_TORNDOWN, "GPADL_TORNDOWN", "toGuest", true, GPADL_TORNDOWN_LAYOUT.size),
  info(CHANNELMSG_RELID_RELEASED, "RELID_RELEASED", "toHost", true, RELID_RELEASED_LAYOUT.size),
  info(CHANNELMSG_INITIATE_CONTACT, "INITIATE_CONTACT", "toHost", true, INITIATE_CONTACT_LAYOUT.size),
  info(CHANNELMSG_VERSION_RESPONSE, "VERSION_RESPONSE", "toGuest", true, VERSION_RESPONSE_LAYOUT.size),
  info(CHANNELMSG_UNLOAD, "UNLOAD", "toHost", true, HEADER_ONLY_LAYOUT.size),
  info(CHANNELMSG_UNLOAD_RESPONSE, "UNLOAD_RESPONSE", "toGuest", true, 0),
  info(CHANNELMSG_18, "18", null, false, 0),
  info(CHANNELMSG_19, "19", null, false, 0),
  info(CHANNELMSG_20, "20", null, false, 0),
  info(CHANNELMSG_TL_CONNECT_REQUEST, "TL_CONNECT_REQUEST", "toHost", true, TL_CONNECT_REQUEST_LAYOUT.size),
  info(CHANNELMSG_MODIFYCHANNEL, "MODIFYCHANNEL", "toHost", true, MODIFYCHANNEL_LAYOUT.size),
  info(CHANNELMSG_TL_CONNECT_RESULT, "TL_CONNECT_RESULT", "toGuest", false, 0),
  info(CHANNELMSG_MODIFYCHANNEL_RESPONSE, "MODIFYCHANNEL_RESPONSE", "toGuest", true, MODIFYCHANNEL_RESPONSE_LAYOUT.size),
]);

/** "CHANNELMSG_OPENCHANNEL" for 5; "CHANNELMSG_UNKNOWN(99)" outside the enum. */
export function channelMessageName(msgtype: number): string {
  const entry = CHANNEL_MESSAGE_TABLE[msgtype];
  return entry === undefined ? `CHANNELMSG_UNKNOWN(${msgtype})` : `CHANNELMSG_${entry.name}`;
}

// --- message types ----------------------------------------------------------

/** Host → guest: a device channel (§7.3, §7.6). */
export interface OfferChannelMessage {
  readonly msgtype: typeof CHANNELMSG_OFFERCHANNEL;
  /** Device class GUID (`if_type`). */
  readonly ifType: Guid;
  /** Device instance GUID (`if_instance`). */
  readonly ifInstance: Guid;
  readonly chnFlags: number;
  readonly mmioMegabytes: number;
  /**
   * The 120-byte `u` union as raw bytes. For pipe / hv_sock offers read it
   * with `offerPipeMode` and `offerPipeUserDef`. Encoding accepts up to 120
   * bytes and zero-fills the rest; decoding always gives 120.
   */
  readonly userDef: Uint8Array;
  /** 0 = primary channel; sub-channels count from 1. */
  readonly subChannelIndex: number;
  readonly childRelid: number;
  readonly monitorId: number;
  readonly monitorAllocated: boolean;
  readonly isDedicatedInterrupt: boolean;
  /** The connection id the guest signals this channel on (`sig_event`). */
  readonly connectionId: number;
}

export interface RescindChannelOfferMessage {
  readonly msgtype: typeof CHANNELMSG_RESCIND_CHANNELOFFER;
  readonly childRelid: number;
}

export interface RequestOffersMessage {
  readonly msgtype: typeof CHANNELMSG_REQUESTOFFERS;
}

export interface AllOffersDeliveredMessage {
  readonly msgtype: typeof CHANNELMSG_ALLOFFERS_DELIVERED;
}

export interface OpenChannelMessage {
  readonly msgtype: typeof CHANNELMSG_OPENCHANNEL;
  readonly childRelid: number;
  readonly openId: number;
  readonly ringBufferGpadlHandle: number;
  /** Hyper-V VP index the host should interrupt. */
  readonly targetVp: number;
  /** In 4 KiB pages from the start of the ring GPADL. */
  readonly downstreamRingBufferPageOffset: number;
  /** Up to 120 bytes; encoding zero-fills the rest, decoding gives 120. */
  readonly userData: Uint8Array;
}

export interface OpenChannelResultMessage {
  readonly msgtype: typeof CHANNELMSG_OPENCHANNEL_RESULT;
  readonly childRelid: number;
  readonly openId: number;
  /** 0 = success. */
  readonly status: number;
}

export interface CloseChannelMessage {
  readonly msgtype: typeof CHANNELMSG_CLOSECHANNEL;
  readonly childRelid: number;
}

/**
 * The first message of a GPADL: one gpa_range (`byteOffset`, `byteCount`)
 * and the first PFNs; GPADL_BODY messages carry the rest. Only one range is
 * supported (`rangeCount` 1, as Linux always sends).
 */
export interface GpadlHeaderMessage {
  readonly msgtype: typeof CHANNELMSG_GPADL_HEADER;
  readonly childRelid: number;
  readonly gpadl: number;
  /** Bytes of all ranges: 8 + 8 × total PFNs. */
  readonly rangeBufLen: number;
  readonly rangeCount: number;
  readonly byteCount: number;
  readonly byteOffset: number;
  /** The PFNs this message carries (at most GPADL_HEADER_MAX_PFNS). */
  readonly pfns: readonly number[];
}

export interface GpadlBodyMessage {
  readonly msgtype: typeof CHANNELMSG_GPADL_BODY;
  /** Linux leaves it 0. */
  readonly msgNumber: number;
  readonly gpadl: number;
  /** At most GPADL_BODY_MAX_PFNS. */
  readonly pfns: readonly number[];
}

export interface GpadlCreatedMessage {
  readonly msgtype: typeof CHANNELMSG_GPADL_CREATED;
  readonly childRelid: number;
  readonly gpadl: number;
  /** 0 = success. */
  readonly creationStatus: number;
}

export interface GpadlTeardownMessage {
  readonly msgtype: typeof CHANNELMSG_GPADL_TEARDOWN;
  readonly childRelid: number;
  readonly gpadl: number;
}

export interface GpadlTorndownMessage {
  readonly msgtype: typeof CHANNELMSG_GPADL_TORNDOWN;
  readonly gpadl: number;
}

export interface RelidReleasedMessage {
  readonly msgtype: typeof CHANNELMSG_RELID_RELEASED;
  readonly childRelid: number;
}

/**
 * The @16 union of INITIATE_CONTACT. Which one is on the wire depends on the
 * version requested (`usesNewContactMethod`); the decoder picks by version,
 * the encoder writes the variant it is given.
 */
export type InitiateContactTarget =
  | { readonly kind: "interruptPage"; readonly interruptPage: number }
  | { readonly kind: "sint"; readonly msgSint: number; readonly msgVtl: number };

export interface InitiateContactMessage {
  readonly msgtype: typeof CHANNELMSG_INITIATE_CONTACT;
  readonly versionRequested: number;
  /** VP index of CPU 0. */
  readonly targetVcpu: number;
  readonly contact: InitiateContactTarget;
  /** GPA of monitor page [0] (host→guest, "server"). */
  readonly monitorPage1: number;
  /** GPA of monitor page [1] (guest→host, "client"). */
  readonly monitorPage2: number;
}

export interface VersionResponseMessage {
  readonly msgtype: typeof CHANNELMSG_VERSION_RESPONSE;
  /** The u8 `version_supported` is non-zero. */
  readonly versionSupported: boolean;
  readonly connectionState: number;
  /** Message connection id for later messages (adopted from 5.0 on). */
  readonly msgConnId: number;
}

export interface UnloadMessage {
  readonly msgtype: typeof CHANNELMSG_UNLOAD;
}

export interface UnloadResponseMessage {
  readonly msgtype: typeof CHANNELMSG_UNLOAD_RESPONSE;
}

export interface TlConnectRequestMessage {
  readonly msgtype: typeof CHANNELMSG_TL_CONNECT_REQUEST;
  readonly guestEndpointId: Guid;
  readonly hostServiceId: Guid;
}

export interface ModifyChannelMessage {
  readonly msgtype: typeof CHANNELMSG_MODIFYCHANNEL;
  readonly childRelid: number;
  readonly targetVp: number;
}

export interface ModifyChannelResponseMessage {
  readonly msgtype: typeof CHANNELMSG_MODIFYCHANNEL_RESPONSE;
  readonly childRelid: number;
  /** 0 = success. */
  readonly status: number;
}

/** Every channel message this layer encodes and decodes, discriminated by `msgtype`. */
export type ChannelMessage =
  | OfferChannelMessage
  | RescindChannelOfferMessage
  | RequestOffersMessage
  | AllOffersDeliveredMessage
  | OpenChannelMessage
  | OpenChannelResultMessage
  | CloseChannelMessage
  | GpadlHeaderMessage
  | GpadlBodyMessage
  | GpadlCreatedMessage
  | GpadlTeardownMessage
  | GpadlTorndownMessage
  | RelidReleasedMessage
  | InitiateContactMessage
  | VersionResponseMessage
  | UnloadMessage
  | UnloadResponseMessage
  | TlConnectRequestMessage
  | ModifyChannelMessage
  | ModifyChannelResponseMessage;

/** The message interface for one msgtype, e.g. `ChannelMessageOf<typeof CHANNELMSG_OPENCHANNEL>`. */
export type ChannelMessageOf<T extends ChannelMessage["msgtype"]> = Extract<ChannelMessage, { msgtype: T }>;

// --- offer helpers ----------------------------------------------------------

/** `offer.u.pipe.pipe_mode`: the first u32 of `user_def` (meaningful for pipe / hv_sock offers). */
export function offerPipeMode(offer: OfferChannelMessage): number {
  const b = offer.userDef;
  return ((b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24)) >>> 0;
}

/** `offer.u.pipe.user_def`: the 116 bytes after the pipe mode (a copy). */
export function offerPipeUserDef(offer: OfferChannelMessage): Uint8Array {
  const out = new Uint8Array(MAX_PIPE_USER_DEFINED_BYTES);
  out.set(offer.userDef.subarray(4, 4 + MAX_PIPE_USER_DEFINED_BYTES));
  return out;
}

/** An hv_sock offer (`chn_flags` & TLNPI_PROVIDER_OFFER), §7.12. */
export function isHvSockOffer(offer: OfferChannelMessage): boolean {
  return (offer.chnFlags & VMBUS_CHANNEL_TLNPI_PROVIDER_OFFER) !== 0;
}

// --- encoding ---------------------------------------------------------------

const TWO_32 = 2 ** 32;

function checkUint(value: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new InvalidArgumentError(field, value, `must be an integer in 0..${fmtNum(max)}`);
  }
}

/** Little-endian writes with a range check naming the field (a caller bug, not peer input). */
class MessageWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(
    size: number,
    msgtype: number,
    private readonly name: string,
  ) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.view.setUint32(CHANNEL_MESSAGE_HEADER_LAYOUT.msgtype, msgtype, true);
  }

  u8(offset: number, value: number, field: string): void {
    checkUint(value, 0xff, `${this.name}.${field}`);
    this.view.setUint8(offset, value);
  }

  u16(offset: number, value: number, field: string): void {
    checkUint(value, 0xffff, `${this.name}.${field}`);
    this.view.setUint16(offset, value, true);
  }

  u32(offset: number, value: number, field: string): void {
    checkUint(value, 0xffff_ffff, `${this.name}.${field}`);
    this.view.setUint32(offset, value, true);
  }

  u64(offset: number, value: number, field: string): void {
    checkUint(value, Number.MAX_SAFE_INTEGER, `${this.name}.${field}`);
    this.view.setUint32(offset, value % TWO_32, true);
    this.view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
  }

  guid(offset: number, value: Guid): void {
    value.write(this.bytes, offset);
  }

  userBytes(offset: number, value: Uint8Array, max: number, field: string): void {
    if (value.length > max) {
      throw new InvalidArgumentError(`${this.name}.${field} length`, value.length, `must be at most ${max}`);
    }
    this.bytes.set(value, offset);
  }

  pfns(offset: number, pfns: readonly number[], field: string): void {
    for (let i = 0; i < pfns.length; i++) {
      this.u64(offset + 8 * i, pfns[i] ?? 0, `${field}[${i}]`);
    }
  }
}

/** Exact encoded length of a message. */
export function channelMessageSize(msg: ChannelMessage): number {
  switch (msg.msgtype) {
    case CHANNELMSG_OFFERCHANNEL:
      return OFFER_LAYOUT.size;
    case CHANNELMSG_RESCIND_CHANNELOFFER:
      return RESCIND_CHANNELOFFER_LAYOUT.size;
    case CHANNELMSG_REQUESTOFFERS:
    case CHANNELMSG_ALLOFFERS_DELIVERED:
    case CHANNELMSG_UNLOAD:
    case CHANNELMSG_UNLOAD_RESPONSE:
      return HEADER_ONLY_LAYOUT.size;
    case CHANNELMSG_OPENCHANNEL:
      return OPENCHANNEL_LAYOUT.size;
    case CHANNELMSG_OPENCHANNEL_RESULT:
      return OPENCHANNEL_RESULT_LAYOUT.size;
    case CHANNELMSG_CLOSECHANNEL:
      return CLOSECHANNEL_LAYOUT.size;
    case CHANNELMSG_GPADL_HEADER:
      return GPADL_HEADER_LAYOUT.size + 8 * msg.pfns.length;
    case CHANNELMSG_GPADL_BODY:
      return GPADL_BODY_LAYOUT.size + 8 * msg.pfns.length;
    case CHANNELMSG_GPADL_CREATED:
      return GPADL_CREATED_LAYOUT.size;
    case CHANNELMSG_GPADL_TEARDOWN:
      return GPADL_TEARDOWN_LAYOUT.size;
    case CHANNELMSG_GPADL_TORNDOWN:
      return GPADL_TORNDOWN_LAYOUT.size;
    case CHANNELMSG_RELID_RELEASED:
      return RELID_RELEASED_LAYOUT.size;
    case CHANNELMSG_INITIATE_CONTACT:
      return INITIATE_CONTACT_LAYOUT.size;
    case CHANNELMSG_VERSION_RESPONSE:
      return VERSION_RESPONSE_LAYOUT.size;
    case CHANNELMSG_TL_CONNECT_REQUEST:
      return TL_CONNECT_REQUEST_LAYOUT.size;
    case CHANNELMSG_MODIFYCHANNEL:
      return MODIFYCHANNEL_LAYOUT.size;
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      return MODIFYCHANNEL_RESPONSE_LAYOUT.size;
    default:
      return assertNever(msg);
  }
}

function assertNever(x: never): never {
  const msgtype = (x as { msgtype?: unknown }).msgtype;
  throw new InvalidArgumentError("channel message msgtype", msgtype, "is not a message type this layer encodes");
}

/**
 * Encodes a message into a new array of exactly its size (OFFER 196,
 * OPENCHANNEL 148, GPADL_HEADER 28 + 8×PFNs, ...). Any value that fits its
 * field is written as given, consistent or not; a value that does not fit
 * (or a message over 240 bytes) is an InvalidArgumentError naming the field.
 */
export function encodeChannelMessage(msg: ChannelMessage): Uint8Array {
  const size = channelMessageSize(msg);
  const name = CHANNEL_MESSAGE_TABLE[msg.msgtype]?.name ?? "?";
  // Only the GPADL messages vary in size; past 240 bytes they cannot be posted.
  if (size > MAX_SIZE_CHANNEL_MESSAGE && "pfns" in msg) {
    const max = msg.msgtype === CHANNELMSG_GPADL_HEADER ? GPADL_HEADER_MAX_PFNS : GPADL_BODY_MAX_PFNS;
    throw new InvalidArgumentError(
      `${name} PFN count`,
      msg.pfns.length,
      `must be at most ${max} to fit MAX_SIZE_CHANNEL_MESSAGE (${MAX_SIZE_CHANNEL_MESSAGE})`,
    );
  }
  const w = new MessageWriter(size, msg.msgtype, name);
  switch (msg.msgtype) {
    case CHANNELMSG_OFFERCHANNEL: {
      const L = OFFER_LAYOUT;
      w.guid(L.if_type, msg.ifType);
      w.guid(L.if_instance, msg.ifInstance);
      w.u16(L.chn_flags, msg.chnFlags, "chn_flags");
      w.u16(L.mmio_megabytes, msg.mmioMegabytes, "mmio_megabytes");
      w.userBytes(L.user_def, msg.userDef, MAX_USER_DEFINED_BYTES, "user_def");
      w.u16(L.sub_channel_index, msg.subChannelIndex, "sub_channel_index");
      w.u32(L.child_relid, msg.childRelid, "child_relid");
      w.u8(L.monitorid, msg.monitorId, "monitorid");
      w.u8(L.monitor_allocated, msg.monitorAllocated ? 1 : 0, "monitor_allocated");
      w.u16(L.is_dedicated_interrupt, msg.isDedicatedInterrupt ? 1 : 0, "is_dedicated_interrupt");
      w.u32(L.connection_id, msg.connectionId, "connection_id");
      break;
    }
    case CHANNELMSG_RESCIND_CHANNELOFFER:
      w.u32(RESCIND_CHANNELOFFER_LAYOUT.child_relid, msg.childRelid, "child_relid");
      break;
    case CHANNELMSG_REQUESTOFFERS:
    case CHANNELMSG_ALLOFFERS_DELIVERED:
    case CHANNELMSG_UNLOAD:
    case CHANNELMSG_UNLOAD_RESPONSE:
      break;
    case CHANNELMSG_OPENCHANNEL: {
      const L = OPENCHANNEL_LAYOUT;
      w.u32(L.child_relid, msg.childRelid, "child_relid");
      w.u32(L.openid, msg.openId, "openid");
      w.u32(L.ringbuffer_gpadlhandle, msg.ringBufferGpadlHandle, "ringbuffer_gpadlhandle");
      w.u32(L.target_vp, msg.targetVp, "target_vp");
      w.u32(L.downstream_ringbuffer_pageoffset, msg.downstreamRingBufferPageOffset, "downstream_ringbuffer_pageoffset");
      w.userBytes(L.userdata, msg.userData, MAX_USER_DEFINED_BYTES, "userdata");
      break;
    }
    case CHANNELMSG_OPENCHANNEL_RESULT: {
      const L = OPENCHANNEL_RESULT_LAYOUT;
      w.u32(L.child_relid, msg.childRelid, "child_relid");
      w.u32(L.openid, msg.openId, "openid");
      w.u32(L.status, msg.status, "status");
      break;
    }
    case CHANNELMSG_CLOSECHANNEL:
      w.u32(CLOSECHANNEL_LAYOUT.child_relid, msg.childRelid, "child_relid");
      break;
    case CHANNELMSG_GPADL_HEADER: {
      const L = GPADL_HEADER_LAYOUT;
      w.u32(L.child_relid, msg.childRelid, "child_relid");
      w.u32(L.gpadl, msg.gpadl, "gpadl");
      w.u16(L.range_buflen, msg.rangeBufLen, "range_buflen");
      w.u16(L.rangecount, msg.rangeCount, "rangecount");
      w.u32(L.byte_count, msg.byteCount, "byte_count");
      w.u32(L.byte_offset, msg.byteOffset, "byte_offset");
      w.pfns(L.pfn_array, msg.pfns, "pfn_array");
      break;
    }
    case CHANNELMSG_GPADL_BODY: {
      const L = GPADL_BODY_LAYOUT;
      w.u32(L.msgnumber, msg.msgNumber, "msgnumber");
      w.u32(L.gpadl, msg.gpadl, "gpadl");
      w.pfns(L.pfn, msg.pfns, "pfn");
      break;
    }
    case CHANNELMSG_GPADL_CREATED: {
      const L = GPADL_CREATED_LAYOUT;
      w.u32(L.child_relid, msg.childRelid, "child_relid");
      w.u32(L.gpadl, msg.gpadl, "gpadl");
      w.u32(L.creation_status, msg.creationStatus, "creation_status");
      break;
    }
    case CHANNELMSG_GPADL_TEARDOWN:
      w.u32(GPADL_TEARDOWN_LAYOUT.child_relid, msg.childRelid, "child_relid");
      w.u32(GPADL_TEARDOWN_LAYOUT.gpadl, msg.gpadl, "gpadl");
      break;
    case CHANNELMSG_GPADL_TORNDOWN:
      w.u32(GPADL_TORNDOWN_LAYOUT.gpadl, msg.gpadl, "gpadl");
      break;
    case CHANNELMSG_RELID_RELEASED:
      w.u32(RELID_RELEASED_LAYOUT.child_relid, msg.childRelid, "child_relid");
      break;
    case CHANNELMSG_INITIATE_CONTACT: {
      const L = INITIATE_CONTACT_LAYOUT;
      w.u32(L.vmbus_version_requested, msg.versionRequested, "vmbus_version_requested");
      w.u32(L.target_vcpu, msg.targetVcpu, "target_vcpu");
      if (msg.contact.kind === "interruptPage") {
        w.u64(L.interrupt_page, msg.contact.interruptPage, "interrupt_page");
      } else {
        w.u8(L.msg_sint, msg.contact.msgSint, "msg_sint");
        w.u8(L.msg_vtl, msg.contact.msgVtl, "msg_vtl");
      }
      w.u64(L.monitor_page1, msg.monitorPage1, "monitor_page1");
      w.u64(L.monitor_page2, msg.monitorPage2, "monitor_page2");
      break;
    }
    case CHANNELMSG_VERSION_RESPONSE: {
      const L = VERSION_RESPONSE_LAYOUT;
      w.u8(L.version_supported, msg.versionSupported ? 1 : 0, "version_supported");
      w.u8(L.connection_state, msg.connectionState, "connection_state");
      w.u32(L.msg_conn_id, msg.msgConnId, "msg_conn_id");
      break;
    }
    case CHANNELMSG_TL_CONNECT_REQUEST:
      w.guid(TL_CONNECT_REQUEST_LAYOUT.guest_endpoint_id, msg.guestEndpointId);
      w.guid(TL_CONNECT_REQUEST_LAYOUT.host_service_id, msg.hostServiceId);
      break;
    case CHANNELMSG_MODIFYCHANNEL:
      w.u32(MODIFYCHANNEL_LAYOUT.child_relid, msg.childRelid, "child_relid");
      w.u32(MODIFYCHANNEL_LAYOUT.target_vp, msg.targetVp, "target_vp");
      break;
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      w.u32(MODIFYCHANNEL_RESPONSE_LAYOUT.child_relid, msg.childRelid, "child_relid");
      w.u32(MODIFYCHANNEL_RESPONSE_LAYOUT.status, msg.status, "status");
      break;
    default:
      return assertNever(msg);
  }
  return w.bytes;
}

// --- decoding ---------------------------------------------------------------

/** Little-endian reads from the decoder's private copy. */
class MessageReader {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    /** "VMBus OPENCHANNEL": the `protocol` of errors. */
    readonly protocol: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(offset: number): number {
    return this.view.getUint8(offset);
  }

  u16(offset: number): number {
    return this.view.getUint16(offset, true);
  }

  u32(offset: number): number {
    return this.view.getUint32(offset, true);
  }

  /** A u64 as a number; above 2^53 − 1 it cannot be a GPA or PFN (see the file header). */
  u64(offset: number, field: string): number {
    const lo = this.view.getUint32(offset, true);
    const hi = this.view.getUint32(offset + 4, true);
    if (hi > 0x1f_ffff) {
      throw new ProtocolError(
        this.protocol,
        field,
        (BigInt(hi) << 32n) | BigInt(lo),
        "exceeds 2^53 - 1: not a guest physical address or page number",
      );
    }
    return hi * TWO_32 + lo;
  }

  guid(offset: number): Guid {
    return Guid.read(this.bytes, offset);
  }

  copy(offset: number, length: number): Uint8Array {
    return this.bytes.slice(offset, offset + length);
  }

  pfns(offset: number, count: number, field: string): number[] {
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = this.u64(offset + 8 * i, `${field}[${i}]`);
    return out;
  }
}

/**
 * Decodes one channel message received in `direction`, validating it as
 * Linux's `vmbus_on_msg_dpc` does (§7.4) and, for GPADL messages, as a host
 * must against a hostile guest.
 *
 * `bytes` is the message as the receiver copied it out of the SynIC slot (up
 * to 240 bytes; the decoder copies again before reading); `payloadSize` is
 * the `payload_size` of the `hv_message_header` it came with. The result
 * shares no memory with `bytes`.
 *
 * Peer mistakes are `ProtocolError`s naming the field (msgtype,
 * payload_size, range_buflen, ...); caller mistakes (a buffer shorter than
 * the header or than `payloadSize`) are `InvalidArgumentError`s.
 */
export function decodeChannelMessage(
  bytes: Uint8Array,
  payloadSize: number,
  direction: ChannelMessageDirection = "toGuest",
): ChannelMessage {
  if (!Number.isSafeInteger(payloadSize) || payloadSize < 0) {
    throw new InvalidArgumentError("payload_size", payloadSize, "must be a non-negative integer");
  }
  if (bytes.length < CHANNEL_MESSAGE_HEADER_SIZE) {
    throw new InvalidArgumentError(
      "channel message buffer length",
      bytes.length,
      `must hold at least the ${CHANNEL_MESSAGE_HEADER_SIZE}-byte vmbus_channel_message_header`,
    );
  }
  // Read only from a private copy: the SynIC slot (or a ring) is shared with
  // the peer, which could otherwise change a field after it was checked.
  const copy = bytes.slice(0, Math.min(bytes.length, MAX_SIZE_CHANNEL_MESSAGE));
  const msgtype = new DataView(copy.buffer).getUint32(CHANNEL_MESSAGE_HEADER_LAYOUT.msgtype, true);

  // The same order of checks as vmbus_on_msg_dpc: msgtype indexes the
  // handler table, so it is checked first.
  const entry = CHANNEL_MESSAGE_TABLE[msgtype];
  if (entry === undefined) {
    throw new ProtocolError("VMBus", "msgtype", msgtype, `must be below CHANNELMSG_COUNT (${CHANNELMSG_COUNT})`);
  }
  const protocol = `VMBus ${entry.name}`;
  if (payloadSize > MAX_SIZE_CHANNEL_MESSAGE) {
    throw new ProtocolError(protocol, "payload_size", payloadSize, `exceeds MAX_SIZE_CHANNEL_MESSAGE (${MAX_SIZE_CHANNEL_MESSAGE})`);
  }
  if (bytes.length < payloadSize) {
    throw new InvalidArgumentError(
      "channel message buffer length",
      bytes.length,
      `is shorter than payload_size ${payloadSize}`,
    );
  }
  if (!entry.handled || entry.direction !== direction) {
    throw new ProtocolError(
      protocol,
      "msgtype",
      msgtype,
      `has no handler for messages sent ${direction}` +
        (entry.direction === null ? " (unused message number)" : ` (it is a ${entry.direction} message)`),
    );
  }
  // A message shorter than its struct would make the handler read fields
  // the peer never sent (stale bytes of an earlier message in the slot).
  if (payloadSize < entry.minPayloadLen) {
    throw new ProtocolError(protocol, "payload_size", payloadSize, `is below the minimum ${entry.minPayloadLen} for this message`);
  }

  const r = new MessageReader(copy, protocol);
  switch (msgtype) {
    case CHANNELMSG_OFFERCHANNEL:
      return decodeOffer(r);
    case CHANNELMSG_RESCIND_CHANNELOFFER:
      return { msgtype, childRelid: r.u32(RESCIND_CHANNELOFFER_LAYOUT.child_relid) };
    case CHANNELMSG_REQUESTOFFERS:
    case CHANNELMSG_ALLOFFERS_DELIVERED:
    case CHANNELMSG_UNLOAD:
    case CHANNELMSG_UNLOAD_RESPONSE:
      return { msgtype };
    case CHANNELMSG_OPENCHANNEL: {
      const L = OPENCHANNEL_LAYOUT;
      return {
        msgtype,
        childRelid: r.u32(L.child_relid),
        openId: r.u32(L.openid),
        ringBufferGpadlHandle: r.u32(L.ringbuffer_gpadlhandle),
        targetVp: r.u32(L.target_vp),
        downstreamRingBufferPageOffset: r.u32(L.downstream_ringbuffer_pageoffset),
        userData: r.copy(L.userdata, MAX_USER_DEFINED_BYTES),
      };
    }
    case CHANNELMSG_OPENCHANNEL_RESULT: {
      const L = OPENCHANNEL_RESULT_LAYOUT;
      return { msgtype, childRelid: r.u32(L.child_relid), openId: r.u32(L.openid), status: r.u32(L.status) };
    }
    case CHANNELMSG_CLOSECHANNEL:
      return { msgtype, childRelid: r.u32(CLOSECHANNEL_LAYOUT.child_relid) };
    case CHANNELMSG_GPADL_HEADER:
      return decodeGpadlHeader(r, payloadSize);
    case CHANNELMSG_GPADL_BODY:
      return decodeGpadlBody(r, payloadSize);
    case CHANNELMSG_GPADL_CREATED: {
      const L = GPADL_CREATED_LAYOUT;
      return { msgtype, childRelid: r.u32(L.child_relid), gpadl: r.u32(L.gpadl), creationStatus: r.u32(L.creation_status) };
    }
    case CHANNELMSG_GPADL_TEARDOWN:
      return { msgtype, childRelid: r.u32(GPADL_TEARDOWN_LAYOUT.child_relid), gpadl: r.u32(GPADL_TEARDOWN_LAYOUT.gpadl) };
    case CHANNELMSG_GPADL_TORNDOWN:
      return { msgtype, gpadl: r.u32(GPADL_TORNDOWN_LAYOUT.gpadl) };
    case CHANNELMSG_RELID_RELEASED:
      return { msgtype, childRelid: r.u32(RELID_RELEASED_LAYOUT.child_relid) };
    case CHANNELMSG_INITIATE_CONTACT: {
      const L = INITIATE_CONTACT_LAYOUT;
      const versionRequested = r.u32(L.vmbus_version_requested);
      // The union at @16 has no tag: the requested version says which
      // variant the guest wrote (Linux's vmbus_negotiate_version).
      const contact: InitiateContactTarget = usesNewContactMethod(versionRequested)
        ? { kind: "sint", msgSint: r.u8(L.msg_sint), msgVtl: r.u8(L.msg_vtl) }
        : { kind: "interruptPage", interruptPage: r.u64(L.interrupt_page, "interrupt_page") };
      return {
        msgtype,
        versionRequested,
        targetVcpu: r.u32(L.target_vcpu),
        contact,
        monitorPage1: r.u64(L.monitor_page1, "monitor_page1"),
        monitorPage2: r.u64(L.monitor_page2, "monitor_page2"),
      };
    }
    case CHANNELMSG_VERSION_RESPONSE: {
      const L = VERSION_RESPONSE_LAYOUT;
      return {
        msgtype,
        versionSupported: r.u8(L.version_supported) !== 0,
        connectionState: r.u8(L.connection_state),
        msgConnId: r.u32(L.msg_conn_id),
      };
    }
    case CHANNELMSG_TL_CONNECT_REQUEST:
      return {
        msgtype,
        guestEndpointId: r.guid(TL_CONNECT_REQUEST_LAYOUT.guest_endpoint_id),
        hostServiceId: r.guid(TL_CONNECT_REQUEST_LAYOUT.host_service_id),
      };
    case CHANNELMSG_MODIFYCHANNEL:
      return { msgtype, childRelid: r.u32(MODIFYCHANNEL_LAYOUT.child_relid), targetVp: r.u32(MODIFYCHANNEL_LAYOUT.target_vp) };
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      return {
        msgtype,
        childRelid: r.u32(MODIFYCHANNEL_RESPONSE_LAYOUT.child_relid),
        status: r.u32(MODIFYCHANNEL_RESPONSE_LAYOUT.status),
      };
    default:
      // Unreachable: every handled entry of the table has a case above.
      throw new ProtocolError(protocol, "msgtype", msgtype, "has no decoder");
  }
}

function decodeOffer(r: MessageReader): OfferChannelMessage {
  const L = OFFER_LAYOUT;
  const childRelid = r.u32(L.child_relid);
  const monitorId = r.u8(L.monitorid);
  const monitorAllocated = (r.u8(L.monitor_allocated) & 1) !== 0;
  // Stricter than Linux, which trusts the host: relid indexes the 2048-bit
  // event-flag block and the relid table, and relid 0 is the control path.
  if (childRelid === 0 || childRelid >= MAX_CHANNEL_RELIDS) {
    throw new ProtocolError(r.protocol, "child_relid", childRelid, `must be in 1..${MAX_CHANNEL_RELIDS - 1}`);
  }
  // monitorid / 32 picks a trigger group; the monitor page has only 4, so a
  // larger id would make the guest read and set bits outside them.
  if (monitorAllocated && monitorId >= MAX_MONITOR_IDS) {
    throw new ProtocolError(r.protocol, "monitorid", monitorId, `must be below ${MAX_MONITOR_IDS} (4 groups x 32) when monitor_allocated`);
  }
  return {
    msgtype: CHANNELMSG_OFFERCHANNEL,
    ifType: r.guid(L.if_type),
    ifInstance: r.guid(L.if_instance),
    chnFlags: r.u16(L.chn_flags),
    mmioMegabytes: r.u16(L.mmio_megabytes),
    userDef: r.copy(L.user_def, MAX_USER_DEFINED_BYTES),
    subChannelIndex: r.u16(L.sub_channel_index),
    childRelid,
    monitorId,
    monitorAllocated,
    isDedicatedInterrupt: (r.u16(L.is_dedicated_interrupt) & 1) !== 0,
    connectionId: r.u32(L.connection_id),
  };
}

function decodeGpadlHeader(r: MessageReader, payloadSize: number): GpadlHeaderMessage {
  const L = GPADL_HEADER_LAYOUT;
  // The PFNs in this message are counted from payload_size, never from
  // range_buflen: a range_buflen claiming more would read past the payload.
  const pfnBytes = payloadSize - L.size;
  if (pfnBytes % 8 !== 0) {
    throw new ProtocolError(r.protocol, "payload_size", payloadSize, `must be ${L.size} + 8 x PFNs: the message ends inside a PFN`);
  }
  const msg: GpadlHeaderMessage = {
    msgtype: CHANNELMSG_GPADL_HEADER,
    childRelid: r.u32(L.child_relid),
    gpadl: r.u32(L.gpadl),
    rangeBufLen: r.u16(L.range_buflen),
    rangeCount: r.u16(L.rangecount),
    byteCount: r.u32(L.byte_count),
    byteOffset: r.u32(L.byte_offset),
    pfns: r.pfns(L.pfn_array, pfnBytes / 8, "pfn_array"),
  };
  checkGpadlHeader(msg, r.protocol);
  return msg;
}

function decodeGpadlBody(r: MessageReader, payloadSize: number): GpadlBodyMessage {
  const L = GPADL_BODY_LAYOUT;
  const pfnBytes = payloadSize - L.size;
  if (pfnBytes % 8 !== 0) {
    throw new ProtocolError(r.protocol, "payload_size", payloadSize, `must be ${L.size} + 8 x PFNs: the message ends inside a PFN`);
  }
  return {
    msgtype: CHANNELMSG_GPADL_BODY,
    msgNumber: r.u32(L.msgnumber),
    gpadl: r.u32(L.gpadl),
    pfns: r.pfns(L.pfn, pfnBytes / 8, "pfn"),
  };
}

/** Pages spanned by a range starting `byteOffset` into its first page. */
export function gpaRangePfnCount(byteOffset: number, byteCount: number): number {
  return Math.ceil((byteOffset + byteCount) / HV_HYP_PAGE_SIZE);
}

/**
 * The consistency rules of a GPADL_HEADER, shared by the decoder and the
 * assembler (which may be handed a message that was never decoded):
 * one range, a non-empty range, byte_offset inside the first page,
 * range_buflen = 8 + 8 × the pages the range spans, and no more PFNs in the
 * header than that.
 */
export function checkGpadlHeader(msg: GpadlHeaderMessage, protocol = "VMBus GPADL_HEADER"): void {
  if (msg.rangeCount === 0) {
    throw new ProtocolError(protocol, "rangecount", 0, "must be at least 1: a GPADL without a range describes no memory");
  }
  // Linux always sends one range; several would put the next range's
  // byte_count/byte_offset among the PFNs, which this simulator does not model.
  if (msg.rangeCount !== 1) {
    throw new ProtocolError(protocol, "rangecount", msg.rangeCount, "must be 1: multi-range GPADLs are not supported");
  }
  if (msg.byteCount === 0) {
    throw new ProtocolError(protocol, "byte_count", 0, "must be at least 1: an empty range");
  }
  // byte_offset is the start inside the first PFN; a larger one would name
  // bytes of a page the guest did not list.
  if (msg.byteOffset >= HV_HYP_PAGE_SIZE) {
    throw new ProtocolError(protocol, "byte_offset", msg.byteOffset, `must be below the page size ${HV_HYP_PAGE_SIZE}`);
  }
  const pages = gpaRangePfnCount(msg.byteOffset, msg.byteCount);
  // range_buflen decides how many PFNs the host waits for. If it disagreed
  // with the range, the host would either wait for PFNs that never come or
  // map pages beyond what byte_count covers.
  const expected = 8 + 8 * pages;
  if (msg.rangeBufLen !== expected) {
    throw new ProtocolError(
      protocol,
      "range_buflen",
      msg.rangeBufLen,
      `must be 8 + 8 x ${pages} = ${expected}: byte_offset=${msg.byteOffset} byte_count=${msg.byteCount} span ${pages} page(s)`,
    );
  }
  if (msg.pfns.length > pages) {
    throw new ProtocolError(
      protocol,
      "payload_size",
      GPADL_HEADER_LAYOUT.size + 8 * msg.pfns.length,
      `carries ${msg.pfns.length} PFNs but range_buflen=${msg.rangeBufLen} announces ${pages}`,
    );
  }
}

// --- GPADL split and reassembly (§7.7) --------------------------------------

/**
 * Splits a one-range GPADL (byte_offset 0) the way Linux's
 * `create_gpadl_header` does: up to 26 PFNs in the GPADL_HEADER, then
 * GPADL_BODY messages of up to 28 PFNs each, all with msgnumber 0.
 * `pfns.length` must be the pages `byteCount` spans.
 */
export function splitGpadl(
  handle: number,
  childRelid: number,
  byteCount: number,
  pfns: readonly number[],
): [GpadlHeaderMessage, ...GpadlBodyMessage[]] {
  checkUint(byteCount, 0xffff_ffff, "GPADL byte_count");
  if (byteCount === 0) {
    throw new InvalidArgumentError("GPADL byte_count", byteCount, "must be at least 1");
  }
  const pages = gpaRangePfnCount(0, byteCount);
  if (pfns.length !== pages) {
    throw new InvalidArgumentError("GPADL PFN count", pfns.length, `must be ${pages}, the pages byte_count=${byteCount} spans`);
  }
  const rangeBufLen = 8 + 8 * pages;
  if (rangeBufLen > 0xffff) {
    throw new InvalidArgumentError("GPADL range_buflen", rangeBufLen, "must fit its u16 field (at most 8190 PFNs)");
  }
  const header: GpadlHeaderMessage = {
    msgtype: CHANNELMSG_GPADL_HEADER,
    childRelid,
    gpadl: handle,
    rangeBufLen,
    rangeCount: 1,
    byteCount,
    byteOffset: 0,
    pfns: pfns.slice(0, GPADL_HEADER_MAX_PFNS),
  };
  const bodies: GpadlBodyMessage[] = [];
  for (let i = GPADL_HEADER_MAX_PFNS; i < pfns.length; i += GPADL_BODY_MAX_PFNS) {
    bodies.push({ msgtype: CHANNELMSG_GPADL_BODY, msgNumber: 0, gpadl: handle, pfns: pfns.slice(i, i + GPADL_BODY_MAX_PFNS) });
  }
  return [header, ...bodies];
}

/** A GPADL whose PFNs have all arrived. */
export interface AssembledGpadl {
  readonly gpadl: number;
  readonly childRelid: number;
  readonly byteOffset: number;
  readonly byteCount: number;
  readonly pfns: readonly number[];
}

interface PendingGpadl {
  readonly header: GpadlHeaderMessage;
  readonly pfns: number[];
  readonly expected: number;
}

export interface GpadlAssemblerOptions {
  /**
   * How many GPADLs may be in progress at once (default 1024). A guest that
   * opens headers and never finishes them would otherwise grow host memory
   * without bound.
   */
  readonly maxInProgress?: number;
}

/**
 * Host side of GPADL creation: collects a GPADL_HEADER and the GPADL_BODY
 * messages that follow until all PFNs announced by range_buflen have arrived.
 * Every error is a ProtocolError (protocol "VMBus GPADL"); after an error on
 * a body the half-built GPADL is dropped, so a later header may reuse the
 * handle. A GPADL that never completes stays until `abort`/`abortRelid`
 * (the server calls them on CLOSECHANNEL, RELID_RELEASED or UNLOAD).
 */
export class GpadlAssembler {
  private readonly pending = new Map<number, PendingGpadl>();
  private readonly maxInProgress: number;

  constructor(options: GpadlAssemblerOptions = {}) {
    this.maxInProgress = options.maxInProgress ?? 1024;
  }

  /** Starts a GPADL; returns it at once when the header holds every PFN. */
  acceptHeader(msg: GpadlHeaderMessage): AssembledGpadl | null {
    checkGpadlHeader(msg, "VMBus GPADL");
    // A second header for a handle in progress would mix two PFN lists
    // into one GPADL.
    if (this.pending.has(msg.gpadl)) {
      throw new ProtocolError("VMBus GPADL", "gpadl", msg.gpadl, "already has a GPADL_HEADER in progress");
    }
    const expected = (msg.rangeBufLen - 8) / 8;
    if (msg.pfns.length === expected) return assembled(msg, msg.pfns.slice());
    if (this.pending.size >= this.maxInProgress) {
      throw new ProtocolError("VMBus GPADL", "gpadl", msg.gpadl, `would exceed ${this.maxInProgress} GPADLs in progress`);
    }
    this.pending.set(msg.gpadl, { header: msg, pfns: msg.pfns.slice(), expected });
    return null;
  }

  /** Adds a body's PFNs; returns the GPADL when it is complete. */
  acceptBody(msg: GpadlBodyMessage): AssembledGpadl | null {
    const p = this.pending.get(msg.gpadl);
    if (p === undefined) {
      throw new ProtocolError("VMBus GPADL", "gpadl", msg.gpadl, "has no GPADL_HEADER in progress");
    }
    if (msg.pfns.length === 0) {
      this.pending.delete(msg.gpadl);
      throw new ProtocolError("VMBus GPADL", "pfn count", 0, "a GPADL_BODY must carry at least one PFN");
    }
    const total = p.pfns.length + msg.pfns.length;
    // More PFNs than range_buflen announced: the extra pages are not part of
    // the range the host will map, and accepting them would let the list
    // grow past what was checked.
    if (total > p.expected) {
      this.pending.delete(msg.gpadl);
      throw new ProtocolError("VMBus GPADL", "pfn count", total, `exceeds the ${p.expected} PFNs range_buflen=${p.header.rangeBufLen} announced`);
    }
    for (const pfn of msg.pfns) p.pfns.push(pfn);
    if (total < p.expected) return null;
    this.pending.delete(msg.gpadl);
    return assembled(p.header, p.pfns);
  }

  /** Forgets a GPADL in progress; true when there was one. */
  abort(gpadl: number): boolean {
    return this.pending.delete(gpadl);
  }

  /** Forgets every GPADL in progress for a channel; returns how many. */
  abortRelid(childRelid: number): number {
    let n = 0;
    for (const [handle, p] of this.pending) {
      if (p.header.childRelid === childRelid) {
        this.pending.delete(handle);
        n++;
      }
    }
    return n;
  }

  isPending(gpadl: number): boolean {
    return this.pending.has(gpadl);
  }

  /** PFNs received so far and expected, for a GPADL in progress. */
  progress(gpadl: number): { readonly received: number; readonly expected: number } | undefined {
    const p = this.pending.get(gpadl);
    return p === undefined ? undefined : { received: p.pfns.length, expected: p.expected };
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  clear(): void {
    this.pending.clear();
  }
}

function assembled(h: GpadlHeaderMessage, pfns: number[]): AssembledGpadl {
  return { gpadl: h.gpadl, childRelid: h.childRelid, byteOffset: h.byteOffset, byteCount: h.byteCount, pfns };
}

// --- one-line summaries ------------------------------------------------------

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * A one-line summary for traces and the handshake log, e.g.
 * "OPENCHANNEL relid=3 openid=3 gpadl=0xe1e10 target_vp=1 downstream=32".
 */
export function describeChannelMessage(msg: ChannelMessage): string {
  switch (msg.msgtype) {
    case CHANNELMSG_OFFERCHANNEL:
      return (
        `OFFERCHANNEL relid=${msg.childRelid} class=${msg.ifType} instance=${msg.ifInstance}` +
        ` sub=${msg.subChannelIndex} flags=${hex(msg.chnFlags)} conn=${hex(msg.connectionId)}` +
        (msg.monitorAllocated ? ` monitor=${msg.monitorId}` : " monitor=none") +
        (msg.isDedicatedInterrupt ? " dedicated" : "")
      );
    case CHANNELMSG_RESCIND_CHANNELOFFER:
      return `RESCIND_CHANNELOFFER relid=${msg.childRelid}`;
    case CHANNELMSG_REQUESTOFFERS:
      return "REQUESTOFFERS";
    case CHANNELMSG_ALLOFFERS_DELIVERED:
      return "ALLOFFERS_DELIVERED";
    case CHANNELMSG_OPENCHANNEL:
      return (
        `OPENCHANNEL relid=${msg.childRelid} openid=${msg.openId} gpadl=${hex(msg.ringBufferGpadlHandle)}` +
        ` target_vp=${msg.targetVp} downstream=${msg.downstreamRingBufferPageOffset}`
      );
    case CHANNELMSG_OPENCHANNEL_RESULT:
      return `OPENCHANNEL_RESULT relid=${msg.childRelid} openid=${msg.openId} status=${hex(msg.status)}`;
    case CHANNELMSG_CLOSECHANNEL:
      return `CLOSECHANNEL relid=${msg.childRelid}`;
    case CHANNELMSG_GPADL_HEADER:
      return (
        `GPADL_HEADER relid=${msg.childRelid} gpadl=${hex(msg.gpadl)} range_buflen=${msg.rangeBufLen}` +
        ` rangecount=${msg.rangeCount} byte_offset=${msg.byteOffset} byte_count=${msg.byteCount} pfns=${msg.pfns.length}`
      );
    case CHANNELMSG_GPADL_BODY:
      return `GPADL_BODY gpadl=${hex(msg.gpadl)} msgnumber=${msg.msgNumber} pfns=${msg.pfns.length}`;
    case CHANNELMSG_GPADL_CREATED:
      return `GPADL_CREATED relid=${msg.childRelid} gpadl=${hex(msg.gpadl)} status=${hex(msg.creationStatus)}`;
    case CHANNELMSG_GPADL_TEARDOWN:
      return `GPADL_TEARDOWN relid=${msg.childRelid} gpadl=${hex(msg.gpadl)}`;
    case CHANNELMSG_GPADL_TORNDOWN:
      return `GPADL_TORNDOWN gpadl=${hex(msg.gpadl)}`;
    case CHANNELMSG_RELID_RELEASED:
      return `RELID_RELEASED relid=${msg.childRelid}`;
    case CHANNELMSG_INITIATE_CONTACT:
      return (
        `INITIATE_CONTACT version=${formatVersion(msg.versionRequested)} target_vcpu=${msg.targetVcpu}` +
        (msg.contact.kind === "sint"
          ? ` msg_sint=${msg.contact.msgSint} msg_vtl=${msg.contact.msgVtl}`
          : ` interrupt_page=${hex(msg.contact.interruptPage)}`) +
        ` monitor_page1=${hex(msg.monitorPage1)} monitor_page2=${hex(msg.monitorPage2)}`
      );
    case CHANNELMSG_VERSION_RESPONSE:
      return (
        `VERSION_RESPONSE supported=${msg.versionSupported ? 1 : 0} state=${msg.connectionState}` +
        ` msg_conn_id=${msg.msgConnId}`
      );
    case CHANNELMSG_UNLOAD:
      return "UNLOAD";
    case CHANNELMSG_UNLOAD_RESPONSE:
      return "UNLOAD_RESPONSE";
    case CHANNELMSG_TL_CONNECT_REQUEST:
      return `TL_CONNECT_REQUEST endpoint=${msg.guestEndpointId} service=${msg.hostServiceId}`;
    case CHANNELMSG_MODIFYCHANNEL:
      return `MODIFYCHANNEL relid=${msg.childRelid} target_vp=${msg.targetVp}`;
    case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
      return `MODIFYCHANNEL_RESPONSE relid=${msg.childRelid} status=${hex(msg.status)}`;
    default:
      return assertNever(msg);
  }
}
