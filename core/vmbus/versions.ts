/**
 * VMBus protocol versions, connection ids and connection states
 * (spec/vmbus-core.md §7.5, Linux `hyperv_vmbus.h`, `connection.c`).
 *
 * A version is `(major << 16) | minor`, as INITIATE_CONTACT carries it in
 * `vmbus_version_requested`. The feature gates below are the version checks
 * Linux makes before using a message or behaviour that older hosts lack.
 */

/** `(major << 16) | minor`. */
export function vmbusVersion(major: number, minor: number): number {
  return ((major & 0xffff) << 16 | (minor & 0xffff)) >>> 0;
}

export function versionMajor(version: number): number {
  return (version >>> 16) & 0xffff;
}

export function versionMinor(version: number): number {
  return version & 0xffff;
}

/** "5.3", as Linux logs "Vmbus version:%d.%d". */
export function formatVersion(version: number): string {
  return `${versionMajor(version)}.${versionMinor(version)}`;
}

/** Windows Server 2008, 0.13. No longer supported by Linux. */
export const VERSION_WS2008 = 0x0000_000d;
/** Windows 7, 1.1. No longer supported by Linux. */
export const VERSION_WIN7 = 0x0001_0001;
/** Windows 8, 2.4: the oldest version Linux still tries. */
export const VERSION_WIN8 = 0x0002_0004;
/** Windows 8.1, 3.0: UNLOAD. */
export const VERSION_WIN8_1 = 0x0003_0000;
/** Windows 10, 4.0: required by hv_sock. */
export const VERSION_WIN10 = 0x0004_0000;
/** 4.1: MODIFYCHANNEL. */
export const VERSION_WIN10_V4_1 = 0x0004_0001;
/** 5.0: new contact method (message connection id 4, msg_sint/msg_vtl). */
export const VERSION_WIN10_V5 = 0x0005_0000;
/** 5.1 (RS4). */
export const VERSION_WIN10_V5_1 = 0x0005_0001;
/** 5.2 (WS2019); minimum for isolated (CoCo) VMs. */
export const VERSION_WIN10_V5_2 = 0x0005_0002;
/** 5.3 (WS2022): MODIFYCHANNEL_RESPONSE. */
export const VERSION_WIN10_V5_3 = 0x0005_0003;

/**
 * The versions a Linux guest offers in INITIATE_CONTACT, newest first
 * (`vmbus_versions[]`); each refused one is followed by the next.
 */
export const VMBUS_VERSIONS: readonly number[] = Object.freeze([
  VERSION_WIN10_V5_3,
  VERSION_WIN10_V5_2,
  VERSION_WIN10_V5_1,
  VERSION_WIN10_V5,
  VERSION_WIN10_V4_1,
  VERSION_WIN10,
  VERSION_WIN8_1,
  VERSION_WIN8,
]);

/** Linux's default `max_version` module parameter. */
export const VMBUS_DEFAULT_MAX_VERSION = VERSION_WIN10_V5_3;

/** Isolated (CoCo) VMs refuse anything older (§7.5). */
export const VMBUS_MIN_VERSION_ISOLATED = VERSION_WIN10_V5_2;

/** The try list with every version above `maxVersion` skipped, newest first. */
export function versionsToTry(maxVersion: number = VMBUS_DEFAULT_MAX_VERSION): number[] {
  return VMBUS_VERSIONS.filter((v) => v <= maxVersion);
}

/** Whether `version` is one of the versions of the try list. */
export function isKnownVersion(version: number): boolean {
  return VMBUS_VERSIONS.includes(version);
}

// --- connection ids and ports (§7.5) ----------------------------------------

/** Message connection id for INITIATE_CONTACT below 5.0 and all messages after. */
export const VMBUS_MESSAGE_CONNECTION_ID = 1;
/** Message connection id for INITIATE_CONTACT from 5.0 on. */
export const VMBUS_MESSAGE_CONNECTION_ID_4 = 4;
export const VMBUS_MESSAGE_PORT_ID = 1;
export const VMBUS_EVENT_CONNECTION_ID = 2;
export const VMBUS_EVENT_PORT_ID = 2;
export const VMBUS_MONITOR_CONNECTION_ID = 3;
export const VMBUS_MONITOR_PORT_ID = 3;

/**
 * The connection id a guest posts INITIATE_CONTACT on when requesting
 * `version`. From 5.0 on the guest then adopts VERSION_RESPONSE's
 * `msg_conn_id` for every later message.
 */
export function initiateContactConnectionId(version: number): number {
  return usesNewContactMethod(version) ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID;
}

// --- connection states (`enum vmbus_connect_state`) -------------------------

/**
 * Linux's enum names, kept inside one object so that the bare names
 * (DISCONNECTED, CONNECTED, ...) do not collide with other state enums in
 * the core barrel.
 */
export const VmbusConnectState = {
  DISCONNECTED: 0,
  CONNECTING: 1,
  CONNECTED: 2,
  DISCONNECTING: 3,
} as const;
export type VmbusConnectState = (typeof VmbusConnectState)[keyof typeof VmbusConnectState];

const CONNECT_STATE_NAMES: readonly string[] = ["DISCONNECTED", "CONNECTING", "CONNECTED", "DISCONNECTING"];

/** "CONNECTED" for 2; `UNKNOWN(n)` outside the enum. */
export function connectStateName(state: number): string {
  return CONNECT_STATE_NAMES[state] ?? `UNKNOWN(${state})`;
}

// --- feature gates (§7.5) ---------------------------------------------------

/** UNLOAD / UNLOAD_RESPONSE exist from 3.0 (WIN8_1); older guests just stop. */
export function supportsUnload(version: number): boolean {
  return version >= VERSION_WIN8_1;
}

/** hv_sock refuses to load below 4.0. */
export function supportsHvSock(version: number): boolean {
  return version >= VERSION_WIN10;
}

/** MODIFYCHANNEL (re-targeting a channel's interrupts) from 4.1. */
export function supportsModifyChannel(version: number): boolean {
  return version >= VERSION_WIN10_V4_1;
}

/**
 * The host acknowledges MODIFYCHANNEL with MODIFYCHANNEL_RESPONSE from 5.3;
 * older hosts get it fire-and-forget (and the guest cannot re-target channels
 * automatically when a CPU goes offline).
 */
export function supportsModifyChannelResponse(version: number): boolean {
  return version >= VERSION_WIN10_V5_3;
}

/**
 * From 5.0 INITIATE_CONTACT carries msg_sint/msg_vtl instead of the
 * interrupt page address and goes to connection id 4.
 */
export function usesNewContactMethod(version: number): boolean {
  return version >= VERSION_WIN10_V5;
}
