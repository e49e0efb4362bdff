/**
 * VMBus ring buffer and packet layouts — vmbus-core.md §1 (struct
 * hv_ring_buffer) and §2 (struct vmpacket_descriptor and the packet kinds).
 *
 * Offsets are byte offsets. A ring is one header page followed by the data
 * area; ring indices are byte offsets into the data area, always 8-aligned
 * and always below the data size.
 */

/** `struct hv_ring_buffer` is padded to exactly one page (x86). */
export const RING_HEADER_SIZE = 4096;

/** Offsets inside the header page (`struct hv_ring_buffer`, `__packed`). */
export const HV_RING_BUFFER = {
  write_index: 0,
  read_index: 4,
  interrupt_mask: 8,
  pending_send_sz: 12,
  reserved1: 16,
  feature_bits: 64,
} as const;

/** `feature_bits` bit 0: this side sets pending_send_sz when blocked and honours the peer's. */
export const FEAT_PENDING_SEND_SZ = 1;

/** Every packet is followed by an 8-byte trailer (`VMBUS_PKT_TRAILER`): u64 old write index << 32. */
export const VMBUS_PKT_TRAILER = 8;

/** Default bounce-buffer size for incoming packets (`VMBUS_DEFAULT_MAX_PKT_SIZE`). */
export const VMBUS_DEFAULT_MAX_PKT_SIZE = 4096;

/** `enum vmbus_packet_type` (§2.2). */
export const VM_PKT_INVALID = 0x0;
export const VM_PKT_SYNCH = 0x1;
export const VM_PKT_ADD_XFER_PAGESET = 0x2;
export const VM_PKT_RM_XFER_PAGESET = 0x3;
export const VM_PKT_ESTABLISH_GPADL = 0x4;
export const VM_PKT_TEARDOWN_GPADL = 0x5;
export const VM_PKT_DATA_INBAND = 0x6;
export const VM_PKT_DATA_USING_XFER_PAGES = 0x7;
export const VM_PKT_DATA_USING_GPADL = 0x8;
export const VM_PKT_DATA_USING_GPA_DIRECT = 0x9;
export const VM_PKT_CANCEL_REQUEST = 0xa;
export const VM_PKT_COMP = 0xb;
export const VM_PKT_DATA_USING_ADDITIONAL_PKT = 0xc;
export const VM_PKT_ADDITIONAL_DATA = 0xd;

export const VM_PKT_NAMES: Readonly<Record<number, string>> = {
  [VM_PKT_INVALID]: "VM_PKT_INVALID",
  [VM_PKT_SYNCH]: "VM_PKT_SYNCH",
  [VM_PKT_ADD_XFER_PAGESET]: "VM_PKT_ADD_XFER_PAGESET",
  [VM_PKT_RM_XFER_PAGESET]: "VM_PKT_RM_XFER_PAGESET",
  [VM_PKT_ESTABLISH_GPADL]: "VM_PKT_ESTABLISH_GPADL",
  [VM_PKT_TEARDOWN_GPADL]: "VM_PKT_TEARDOWN_GPADL",
  [VM_PKT_DATA_INBAND]: "VM_PKT_DATA_INBAND",
  [VM_PKT_DATA_USING_XFER_PAGES]: "VM_PKT_DATA_USING_XFER_PAGES",
  [VM_PKT_DATA_USING_GPADL]: "VM_PKT_DATA_USING_GPADL",
  [VM_PKT_DATA_USING_GPA_DIRECT]: "VM_PKT_DATA_USING_GPA_DIRECT",
  [VM_PKT_CANCEL_REQUEST]: "VM_PKT_CANCEL_REQUEST",
  [VM_PKT_COMP]: "VM_PKT_COMP",
  [VM_PKT_DATA_USING_ADDITIONAL_PKT]: "VM_PKT_DATA_USING_ADDITIONAL_PKT",
  [VM_PKT_ADDITIONAL_DATA]: "VM_PKT_ADDITIONAL_DATA",
};

export const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1;

/** `struct vmpacket_descriptor` (16 bytes, §2.1). */
export const VMPACKET_DESCRIPTOR = {
  type: 0,
  offset8: 2,
  len8: 4,
  flags: 6,
  trans_id: 8,
  SIZE: 16,
} as const;

/**
 * `struct vmbus_channel_packet_page_buffer` (§2.4): descriptor, u32 reserved
 * @16, u32 rangecount @20, then `hv_page_buffer` entries (16 B each:
 * u32 len, u32 offset, u64 pfn) from @24.
 */
export const VMBUS_CHANNEL_PACKET_PAGE_BUFFER = {
  reserved: 16,
  rangecount: 20,
  range: 24,
  RANGE_SIZE: 16,
  range_len: 0,
  range_offset: 4,
  range_pfn: 8,
} as const;
export const MAX_PAGE_BUFFER_COUNT = 32;

/**
 * `struct vmbus_packet_mpb_array` / `vmdata_gpa_direct` (§2.5): descriptor,
 * u32 reserved @16, u32 rangecount @20, then ranges from @24, each
 * `hv_mpb_array` = u32 len, u32 offset, u64 pfn_array[n] where n is the
 * number of pages the bytes [offset, offset+len) touch.
 */
export const VMBUS_PACKET_MPB_ARRAY = {
  reserved: 16,
  rangecount: 20,
  range: 24,
  range_len: 0,
  range_offset: 4,
  range_pfn_array: 8,
} as const;

/**
 * `struct vmtransfer_page_packet_header` (§2.6): descriptor,
 * u16 xfer_pageset_id @16, u8 sender_owns_set @18, u8 reserved @19,
 * u32 range_cnt @20, `vmtransfer_page_range` (u32 byte_count, u32
 * byte_offset) from @24.
 */
export const VMTRANSFER_PAGE_PACKET_HEADER = {
  xfer_pageset_id: 16,
  sender_owns_set: 18,
  reserved: 19,
  range_cnt: 20,
  ranges: 24,
  RANGE_SIZE: 8,
} as const;

/** Pages touched by `len` bytes starting `offset` bytes into the first page. */
export function pagesSpanned(offset: number, len: number): number {
  if (len === 0) return 0;
  return Math.ceil(((offset & 4095) + len) / 4096);
}

export function align8(n: number): number {
  return (n + 7) & ~7;
}
