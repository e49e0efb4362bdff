/**
 * VSTOR constants: operations (storvsc-netvsc.md §1.1), packet flags (§1),
 * NTSTATUS values (§1.2), protocol versions and their size rules (§2), and the
 * packet/SRB sizes that follow from them (§1, §3).
 *
 * Names are the Linux `storvsc_drv.c` names where Linux has one, otherwise
 * the OpenVMM or Windows name, so a reader can grep the sources for them.
 */

// ---------------------------------------------------------------------------
// §1.1 Operation codes (`enum vstor_packet_operation`)

export const VSTOR_OPERATION_COMPLETE_IO = 1;
export const VSTOR_OPERATION_REMOVE_DEVICE = 2;
export const VSTOR_OPERATION_EXECUTE_SRB = 3;
export const VSTOR_OPERATION_RESET_LUN = 4;
export const VSTOR_OPERATION_RESET_ADAPTER = 5;
export const VSTOR_OPERATION_RESET_BUS = 6;
export const VSTOR_OPERATION_BEGIN_INITIALIZATION = 7;
export const VSTOR_OPERATION_END_INITIALIZATION = 8;
export const VSTOR_OPERATION_QUERY_PROTOCOL_VERSION = 9;
export const VSTOR_OPERATION_QUERY_PROPERTIES = 10;
export const VSTOR_OPERATION_ENUMERATE_BUS = 11;
export const VSTOR_OPERATION_FCHBA_DATA = 12;
export const VSTOR_OPERATION_CREATE_SUB_CHANNELS = 13;
/** Defined by OpenVMM only and unused there; Linux's enum stops at 13. */
export const VSTOR_OPERATION_EVENT_NOTIFICATION = 14;
/** Linux `VSTOR_OPERATION_MAXIMUM`. */
export const VSTOR_OPERATION_MAXIMUM = 13;

export type VstorOperation =
  | typeof VSTOR_OPERATION_COMPLETE_IO
  | typeof VSTOR_OPERATION_REMOVE_DEVICE
  | typeof VSTOR_OPERATION_EXECUTE_SRB
  | typeof VSTOR_OPERATION_RESET_LUN
  | typeof VSTOR_OPERATION_RESET_ADAPTER
  | typeof VSTOR_OPERATION_RESET_BUS
  | typeof VSTOR_OPERATION_BEGIN_INITIALIZATION
  | typeof VSTOR_OPERATION_END_INITIALIZATION
  | typeof VSTOR_OPERATION_QUERY_PROTOCOL_VERSION
  | typeof VSTOR_OPERATION_QUERY_PROPERTIES
  | typeof VSTOR_OPERATION_ENUMERATE_BUS
  | typeof VSTOR_OPERATION_FCHBA_DATA
  | typeof VSTOR_OPERATION_CREATE_SUB_CHANNELS
  | typeof VSTOR_OPERATION_EVENT_NOTIFICATION;

/** Spec names of the operations, without the `VSTOR_OPERATION_` prefix. */
export const VSTOR_OPERATION_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [VSTOR_OPERATION_COMPLETE_IO, "COMPLETE_IO"],
  [VSTOR_OPERATION_REMOVE_DEVICE, "REMOVE_DEVICE"],
  [VSTOR_OPERATION_EXECUTE_SRB, "EXECUTE_SRB"],
  [VSTOR_OPERATION_RESET_LUN, "RESET_LUN"],
  [VSTOR_OPERATION_RESET_ADAPTER, "RESET_ADAPTER"],
  [VSTOR_OPERATION_RESET_BUS, "RESET_BUS"],
  [VSTOR_OPERATION_BEGIN_INITIALIZATION, "BEGIN_INITIALIZATION"],
  [VSTOR_OPERATION_END_INITIALIZATION, "END_INITIALIZATION"],
  [VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, "QUERY_PROTOCOL_VERSION"],
  [VSTOR_OPERATION_QUERY_PROPERTIES, "QUERY_PROPERTIES"],
  [VSTOR_OPERATION_ENUMERATE_BUS, "ENUMERATE_BUS"],
  [VSTOR_OPERATION_FCHBA_DATA, "FCHBA_DATA"],
  [VSTOR_OPERATION_CREATE_SUB_CHANNELS, "CREATE_SUB_CHANNELS"],
  [VSTOR_OPERATION_EVENT_NOTIFICATION, "EVENT_NOTIFICATION"],
]);

export function isVstorOperation(value: number): value is VstorOperation {
  return VSTOR_OPERATION_NAMES.has(value);
}

/** Operations a guest sends (host-bound). FCHBA_DATA goes both ways. */
export const VSTOR_GUEST_TO_HOST_OPERATIONS: ReadonlySet<number> = new Set<number>([
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_RESET_LUN,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
]);

/** Operations a host sends (guest-bound). EVENT_NOTIFICATION is OV-only; its direction is assumed. */
export const VSTOR_HOST_TO_GUEST_OPERATIONS: ReadonlySet<number> = new Set<number>([
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_REMOVE_DEVICE,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_EVENT_NOTIFICATION,
]);

// ---------------------------------------------------------------------------
// §1 Packet flags

/** The guest sets this on every request; host completions carry 0. */
export const REQUEST_COMPLETION_FLAG = 0x1;

// ---------------------------------------------------------------------------
// §1.2 NTSTATUS values carried in `vstor_packet.status`

export const STATUS_SUCCESS = 0x00000000;
export const STATUS_BUFFER_OVERFLOW = 0x80000005;
export const STATUS_DEVICE_BUSY = 0x80000011;
export const STATUS_UNSUCCESSFUL = 0xc0000001;
export const STATUS_INVALID_PARAMETER = 0xc000000d;
export const STATUS_INVALID_DEVICE_REQUEST = 0xc0000010;
export const STATUS_REVISION_MISMATCH = 0xc0000059;
export const STATUS_DEVICE_NOT_CONNECTED = 0xc000009d;
export const STATUS_IO_TIMEOUT = 0xc00000b5;
export const STATUS_DEVICE_DOES_NOT_EXIST = 0xc00000c0;
export const STATUS_CANCELLED = 0xc0000120;
export const STATUS_INVALID_DEVICE_STATE = 0xc0000184;
export const STATUS_IO_DEVICE_ERROR = 0xc0000185;

export const NTSTATUS_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [STATUS_SUCCESS, "STATUS_SUCCESS"],
  [STATUS_BUFFER_OVERFLOW, "STATUS_BUFFER_OVERFLOW"],
  [STATUS_DEVICE_BUSY, "STATUS_DEVICE_BUSY"],
  [STATUS_UNSUCCESSFUL, "STATUS_UNSUCCESSFUL"],
  [STATUS_INVALID_PARAMETER, "STATUS_INVALID_PARAMETER"],
  [STATUS_INVALID_DEVICE_REQUEST, "STATUS_INVALID_DEVICE_REQUEST"],
  [STATUS_REVISION_MISMATCH, "STATUS_REVISION_MISMATCH"],
  [STATUS_DEVICE_NOT_CONNECTED, "STATUS_DEVICE_NOT_CONNECTED"],
  [STATUS_IO_TIMEOUT, "STATUS_IO_TIMEOUT"],
  [STATUS_DEVICE_DOES_NOT_EXIST, "STATUS_DEVICE_DOES_NOT_EXIST"],
  [STATUS_CANCELLED, "STATUS_CANCELLED"],
  [STATUS_INVALID_DEVICE_STATE, "STATUS_INVALID_DEVICE_STATE"],
  [STATUS_IO_DEVICE_ERROR, "STATUS_IO_DEVICE_ERROR"],
]);

// ---------------------------------------------------------------------------
// §2 Protocol versions

/** Linux `VMSTOR_PROTO_VERSION(major, minor)`: u16 = (major << 8) | minor. */
export function vmstorProtoVersion(major: number, minor: number): number {
  return ((major & 0xff) << 8) | (minor & 0xff);
}

export const VMSTOR_PROTO_VERSION_WIN6 = 0x0200;
export const VMSTOR_PROTO_VERSION_WIN7 = 0x0402;
export const VMSTOR_PROTO_VERSION_WIN8 = 0x0501;
export const VMSTOR_PROTO_VERSION_WIN8_1 = 0x0600;
export const VMSTOR_PROTO_VERSION_WIN10 = 0x0602;

/** `sizeof(struct vstor_packet)` with the Win8 SRB extension. */
export const VSTOR_PACKET_SIZE_WIN8 = 0x40;
/** `sizeof(struct vmscsi_win8_extension)`: what pre-Win8 packets and SRBs lack. */
export const VMSCSI_WIN8_EXTENSION_SIZE = 16;
/** `sizeof(struct vstor_packet) - vmscsi_size_delta` on protocols before Win8. */
export const VSTOR_PACKET_SIZE_PRE_WIN8 = VSTOR_PACKET_SIZE_WIN8 - VMSCSI_WIN8_EXTENSION_SIZE;
/** OV `SCSI_REQUEST_LEN_V2`: `sizeof(struct vmscsi_request)` on Win8+. */
export const SCSI_REQUEST_LEN_V2 = 0x34;
/** OV `SCSI_REQUEST_LEN_V1`: the pre-Win8 SRB. */
export const SCSI_REQUEST_LEN_V1 = 0x24;
/** Linux `STORVSC_MAX_CMD_LEN`. */
export const STORVSC_MAX_CMD_LEN = 0x10;
/** Linux `STORVSC_SENSE_BUFFER_SIZE` (Win8+). */
export const STORVSC_SENSE_BUFFER_SIZE = 0x14;
/** Sense buffer size before Win8 (older Linux `PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE`). */
export const PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE = 0x12;
/** Linux `STORVSC_MAX_BUF_LEN_WITH_PADDING`: the cdb/sense union is this long in every version. */
export const STORVSC_MAX_BUF_LEN_WITH_PADDING = 0x14;

export interface VmstorProtocolVersionInfo {
  /** Linux constant suffix: WIN6, WIN7, WIN8, WIN8_1, WIN10. */
  readonly name: string;
  /** Marketing name as the sources use it. */
  readonly alias: string;
  readonly major: number;
  readonly minor: number;
  /** u16 on the wire. */
  readonly value: number;
  /** Sense buffer size the guest announces in `sense_info_length`. */
  readonly senseBufferSize: number;
  /** Bytes by which packet and SRB shrink against Win8+ (`vmscsi_size_delta`). */
  readonly vmscsiSizeDelta: number;
  /** `vstor_packet` size on the wire. */
  readonly packetSize: number;
  /** `vmscsi_request.length` the guest puts in. */
  readonly srbLength: number;
}

function versionInfo(name: string, alias: string, major: number, minor: number): VmstorProtocolVersionInfo {
  const win8 = vmstorProtoVersion(major, minor) >= VMSTOR_PROTO_VERSION_WIN8;
  return {
    name,
    alias,
    major,
    minor,
    value: vmstorProtoVersion(major, minor),
    senseBufferSize: win8 ? STORVSC_SENSE_BUFFER_SIZE : PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE,
    vmscsiSizeDelta: win8 ? 0 : VMSCSI_WIN8_EXTENSION_SIZE,
    packetSize: win8 ? VSTOR_PACKET_SIZE_WIN8 : VSTOR_PACKET_SIZE_PRE_WIN8,
    srbLength: win8 ? SCSI_REQUEST_LEN_V2 : SCSI_REQUEST_LEN_V1,
  };
}

/** Every VSTOR protocol version, newest first (§2 table). */
export const VMSTOR_PROTOCOL_VERSIONS: readonly VmstorProtocolVersionInfo[] = [
  versionInfo("WIN10", "Threshold", 6, 2),
  versionInfo("WIN8_1", "Blue", 6, 0),
  versionInfo("WIN8", "Win8", 5, 1),
  versionInfo("WIN7", "Win7", 4, 2),
  versionInfo("WIN6", "2008", 2, 0),
];

/** Order in which current Linux offers versions in QUERY_PROTOCOL_VERSION (Win7/Win6 support removed). */
export const LINUX_VMSTOR_VERSION_ORDER: readonly number[] = [
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VMSTOR_PROTO_VERSION_WIN8,
];

/** Order of older Linux kernels and FreeBSD, which fall back to pre-Win8 packets. */
export const LEGACY_VMSTOR_VERSION_ORDER: readonly number[] = [
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VMSTOR_PROTO_VERSION_WIN8,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN6,
];

/** Versions the OpenVMM host accepts; 6.2 is answered STATUS_REVISION_MISMATCH. */
export const OPENVMM_ACCEPTED_VMSTOR_VERSIONS: readonly number[] = [
  VMSTOR_PROTO_VERSION_WIN6,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN8,
  VMSTOR_PROTO_VERSION_WIN8_1,
];

/** The table row of a known version, or undefined. */
export function vmstorVersionInfo(value: number): VmstorProtocolVersionInfo | undefined {
  return VMSTOR_PROTOCOL_VERSIONS.find((v) => v.value === value);
}

/** True from Win8 (5.1) on: 64-byte packets, 52-byte SRB, 20-byte sense buffer, multichannel. */
export function isWin8OrLater(version: number): boolean {
  return version >= VMSTOR_PROTO_VERSION_WIN8;
}

/** `vmscsi_size_delta` for a version: 0 from Win8 on, else 16. */
export function vmscsiSizeDelta(version: number): number {
  return isWin8OrLater(version) ? 0 : VMSCSI_WIN8_EXTENSION_SIZE;
}

/** On-wire `vstor_packet` size for a version (64 or 48). */
export function vstorPacketSize(version: number): number {
  return VSTOR_PACKET_SIZE_WIN8 - vmscsiSizeDelta(version);
}

/** `vmscsi_request.length` for a version (0x34 or 0x24). */
export function vmscsiRequestLength(version: number): number {
  return SCSI_REQUEST_LEN_V2 - vmscsiSizeDelta(version);
}

/** Sense buffer size for a version (0x14 or 0x12). */
export function senseBufferSize(version: number): number {
  return isWin8OrLater(version) ? STORVSC_SENSE_BUFFER_SIZE : PRE_WIN8_STORVSC_SENSE_BUFFER_SIZE;
}

/** "6.2 (WIN10)" or "7.7 (unknown)". */
export function formatVmstorVersion(value: number): string {
  const info = vmstorVersionInfo(value);
  return `${(value >> 8) & 0xff}.${value & 0xff} (${info ? info.name : "unknown"})`;
}

// ---------------------------------------------------------------------------
// §3.1 Channel property flags

/** Host supports sub-channels (multichannel). */
export const STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL = 0x1;
/** Legacy, named by Linux but unused. Shares its bit with SUPPORTS_MULTI_CHANNEL. */
export const STORAGE_CHANNEL_REMOVABLE_FLAG = 0x1;
/** Legacy, named by Linux but unused. */
export const STORAGE_CHANNEL_EMULATED_IDE_FLAG = 0x2;

/** What OpenVMM answers in max_transfer_bytes (256 KiB). */
export const OPENVMM_MAX_TRANSFER_BYTES = 0x40000;

// ---- addressing of a Hyper-V SCSI controller (Linux storvsc host template) ----
// Shared by the guest (what it scans) and the host disk config (what it accepts).

/**
 * `STORVSC_MAX_LUNS_PER_TARGET` (SCSI controller), the host's `max_lun`.
 * The REPORT LUNS scan takes LUNs up to and including it (it drops only
 * `lun > max_lun`); the sequential fallback stops one short (`lun < max_lun`).
 */
export const STORVSC_MAX_LUNS_PER_TARGET = 255;
/**
 * `STORVSC_MAX_TARGETS`, the host's `max_id`: the midlayer scans target ids
 * 0 .. max_id − 1, so a SCSI controller's disks live at target 0 or 1.
 */
export const STORVSC_MAX_TARGETS = 2;
/**
 * `STORVSC_MAX_CHANNELS`: the host's `max_channel` is this − 1 and the
 * midlayer scans channels (SRB path_id) 0 .. max_channel inclusive.
 */
export const STORVSC_MAX_CHANNELS = 8;
