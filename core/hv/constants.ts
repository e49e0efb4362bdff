/**
 * Hypervisor constants (vmbus-core.md §5.1, §5.2, §5.3, §7.4; Linux
 * `include/hyperv/hvgdk_mini.h`, `hvhdk.h`). Names are the kernel's.
 */

/** Hypercall codes. */
export const HVCALL_POST_MESSAGE = 0x005c;
export const HVCALL_SIGNAL_EVENT = 0x005d;

/** Hypercall status codes (the subset the VMBus paths see). */
export const HV_STATUS_SUCCESS = 0x0;
export const HV_STATUS_INVALID_PARAMETER = 0x5;
export const HV_STATUS_INSUFFICIENT_MEMORY = 0xb;
export const HV_STATUS_INVALID_CONNECTION_ID = 0x12;
export const HV_STATUS_INSUFFICIENT_BUFFERS = 0x13;

export type HvStatus =
  | typeof HV_STATUS_SUCCESS
  | typeof HV_STATUS_INVALID_PARAMETER
  | typeof HV_STATUS_INSUFFICIENT_MEMORY
  | typeof HV_STATUS_INVALID_CONNECTION_ID
  | typeof HV_STATUS_INSUFFICIENT_BUFFERS;

/** SynIC. */
export const HV_SYNIC_SINT_COUNT = 16;
/** The SINT every VMBus interrupt (channel events and control messages) uses. */
export const VMBUS_MESSAGE_SINT = 2;
/** x86 vector Linux programs into SINT2 (`HYPERVISOR_CALLBACK_VECTOR`). */
export const HYPERVISOR_CALLBACK_VECTOR = 0xf3;

/** SynIC MSRs (x86), for reference in traces and docs. */
export const HV_MSR_SCONTROL = 0x40000080;
export const HV_MSR_SIEFP = 0x40000082;
export const HV_MSR_SIMP = 0x40000083;
export const HV_MSR_EOM = 0x40000084;
export const HV_MSR_SINT0 = 0x40000090;

/** Message slots. */
export const HV_MESSAGE_SIZE = 256;
export const HV_MESSAGE_PAYLOAD_BYTE_COUNT = 240;
export const HV_MESSAGE_PAYLOAD_QWORD_COUNT = 30;

/** Message types: NONE marks a free slot; hypervisor-generated types have bit 31 set. */
export const HVMSG_NONE = 0x00000000;
export const HVMSG_TIMER_EXPIRED = 0x80000010;
/** Bit 31 of a message type is reserved to messages the hypervisor itself generates. */
export const HV_MESSAGE_TYPE_HYPERVISOR_MASK = 0x80000000;
/** The message type Linux's vmbus_post_msg passes to HVCALL_POST_MESSAGE (a literal 1 in connection.c). */
export const VMBUS_MESSAGE_TYPE_CHANNEL = 1;

/** `message_flags` bit 0. */
export const HV_MESSAGE_FLAG_MSG_PENDING = 0x1;

/** Event flags: 256 bytes = 2048 bits per SINT (`HV_EVENT_FLAGS_COUNT`). */
export const HV_EVENT_FLAGS_COUNT = 2048;
export const HV_EVENT_FLAGS_BYTE_COUNT = 256;

/** Connection ids are 24 bits (`union hv_connection_id`). */
export const HV_CONNECTION_ID_MASK = 0xffffff;

/** Monitor pages: 4 trigger groups × 32 = 128 monitored channels (monitorid is a u8). */
export const HV_MONITOR_GROUP_COUNT = 4;
export const HV_MONITOR_BITS_PER_GROUP = 32;
export const HV_MONITOR_ID_COUNT = HV_MONITOR_GROUP_COUNT * HV_MONITOR_BITS_PER_GROUP;
