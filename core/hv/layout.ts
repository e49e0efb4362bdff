/**
 * Byte layouts of the SynIC pages and the monitor page (vmbus-core.md §5.2,
 * §5.3, §6). One offset table per struct, named after it; all little-endian,
 * all relative to the start of the page.
 */
import { HV_EVENT_FLAGS_BYTE_COUNT, HV_MESSAGE_SIZE } from "./constants.js";

/** `struct hv_message` (256 B): 16-byte `hv_message_header`, then a 240-byte payload. */
export const HV_MESSAGE = Object.freeze({
  /** u32 message_type. HVMSG_NONE (0) = slot free. */
  messageType: 0,
  /** u8 payload_size. */
  payloadSize: 4,
  /** u8 message_flags; bit 0 msg_pending. */
  messageFlags: 5,
  /** u8 reserved[2]. */
  reserved: 6,
  /** u64 sender / u32 port (id:24, reserved:8). */
  port: 8,
  /** u8 payload[240]. */
  payload: 16,
  size: HV_MESSAGE_SIZE,
});

/** Byte offset of SINT `sint`'s message slot in the SIMP page. */
export function messageSlotOffset(sint: number): number {
  return sint * HV_MESSAGE_SIZE;
}

/** Byte offset of SINT `sint`'s 2048-bit block in the SIEFP page. */
export function eventFlagsOffset(sint: number): number {
  return sint * HV_EVENT_FLAGS_BYTE_COUNT;
}

/** `struct hv_monitor_page` (4096 B). */
export const HV_MONITOR_PAGE = Object.freeze({
  /** u32 trigger_state; bits 0–3 group_enable. */
  triggerState: 0x000,
  /** trigger_group[4], 8 B each: u32 pending, u32 armed. */
  triggerGroup: 0x008,
  triggerGroupSize: 8,
  triggerGroupPending: 0,
  triggerGroupArmed: 4,
  /** s32 next_checktime[4][32]. */
  nextChecktime: 0x040,
  /** u16 latency[4][32]. */
  latency: 0x240,
  /** parameter[4][32], 8 B each: u32 connectionid (id:24), u16 flagnumber, u16 rsvd. */
  parameter: 0x440,
  parameterSize: 8,
  parameterConnectionId: 0,
  parameterFlagNumber: 4,
  size: 0x1000,
});

/** Offset of trigger_group[group].pending. */
export function monitorPendingOffset(group: number): number {
  return HV_MONITOR_PAGE.triggerGroup + group * HV_MONITOR_PAGE.triggerGroupSize + HV_MONITOR_PAGE.triggerGroupPending;
}

/** Offset of trigger_group[group].armed. */
export function monitorArmedOffset(group: number): number {
  return HV_MONITOR_PAGE.triggerGroup + group * HV_MONITOR_PAGE.triggerGroupSize + HV_MONITOR_PAGE.triggerGroupArmed;
}

/** Offset of latency[group][bit]. */
export function monitorLatencyOffset(group: number, bit: number): number {
  return HV_MONITOR_PAGE.latency + (group * 32 + bit) * 2;
}

/** Offset of next_checktime[group][bit]. */
export function monitorNextChecktimeOffset(group: number, bit: number): number {
  return HV_MONITOR_PAGE.nextChecktime + (group * 32 + bit) * 4;
}

/** Offset of parameter[group][bit]. */
export function monitorParameterOffset(group: number, bit: number): number {
  return HV_MONITOR_PAGE.parameter + (group * 32 + bit) * HV_MONITOR_PAGE.parameterSize;
}

/** A decoded `hv_message` (a copy; the payload is `payloadSize` bytes). */
export interface HvMessage {
  readonly messageType: number;
  readonly payloadSize: number;
  readonly messageFlags: number;
  readonly port: number;
  readonly payload: Uint8Array;
}

/**
 * Decodes a 256-byte message copy. `payloadSize` is reported as found; the
 * payload view is clamped to 240 bytes so a hostile size cannot read past
 * the slot (the receiver decides what to do with the bad size).
 */
export function decodeHvMessage(bytes: Uint8Array): HvMessage {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const payloadSize = dv.getUint8(HV_MESSAGE.payloadSize);
  const n = Math.min(payloadSize, HV_MESSAGE.size - HV_MESSAGE.payload);
  return {
    messageType: dv.getUint32(HV_MESSAGE.messageType, true),
    payloadSize,
    messageFlags: dv.getUint8(HV_MESSAGE.messageFlags),
    port: dv.getUint32(HV_MESSAGE.port, true) & 0xffffff,
    payload: bytes.subarray(HV_MESSAGE.payload, HV_MESSAGE.payload + n),
  };
}
