/**
 * NVSP and RNDIS messages from the real layouts (storvsc-netvsc.md §9–§13):
 * every NVSP message kind, every RNDIS message kind, the information
 * buffers of the OIDs a host handles (packet filter, RSS parameters with
 * their table and key, offload parameters, config parameters, the queries'
 * NDIS headers), PACKETs with per-packet info and Ethernet frames — built
 * with the driver's encoders, to be corrupted field by field afterwards.
 */
import fc from "fast-check";
import {
  NDIS_RECV_SCALE_PARAM_LAYOUT,
  NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT,
  NVSP_1_MESSAGE_SEND_BUFFER_LAYOUT,
  NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT,
  NVSP_1_MESSAGE_SEND_RNDIS_PACKET_COMPLETE_LAYOUT,
  NVSP_1_MESSAGE_SEND_RNDIS_PACKET_LAYOUT,
  NVSP_1_MESSAGE_SEND_SEND_BUFFER_COMPLETE_LAYOUT,
  NVSP_2_SEND_NDIS_CONFIG_LAYOUT,
  NVSP_5_SEND_INDIRECT_TABLE_LAYOUT,
  NVSP_5_SUBCHANNEL_REQUEST_LAYOUT,
  NVSP_MESSAGE_HEADER_LAYOUT,
  NVSP_MESSAGE_INIT_LAYOUT,
  OID_802_3_CURRENT_ADDRESS,
  OID_802_3_MULTICAST_LIST,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_LINK_SPEED,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_NETWORK_LAYER_ADDRESSES,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_GEN_RNDIS_CONFIG_PARAMETER,
  OID_GEN_SUPPORTED_LIST,
  OID_OFFLOAD_ENCAPSULATION,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_CONFIG_PARAM_TYPE_INTEGER,
  RNDIS_CONFIG_PARAM_TYPE_STRING,
  RNDIS_INDICATE_STATUS_LAYOUT,
  RNDIS_INITIALIZE_COMPLETE_LAYOUT,
  RNDIS_INITIALIZE_REQUEST_LAYOUT,
  RNDIS_MESSAGE_HEADER_LAYOUT,
  RNDIS_PACKET_LAYOUT,
  RNDIS_QUERY_COMPLETE_LAYOUT,
  RNDIS_QUERY_REQUEST_LAYOUT,
  RNDIS_STATUS_LINK_SPEED_CHANGE,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  RNDIS_STATUS_NETWORK_CHANGE,
  RNDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG,
  emptyNdisOffloadParams,
  encodeNdisOffloadParams,
  encodeNdisRecvScaleParam,
  encodeNvspMessage,
  encodeRndisConfigParameter,
  encodeRndisMessage,
  encodeU32Info,
  type NvspMessage,
  type RndisMessage,
  type RndisPpi,
} from "../../drivers/netvsc/protocol/index.js";
import { layoutFields, type Field } from "./mutate.js";

const u32 = fc.oneof(fc.constantFrom(0, 1, 2, 0x8000_0000, 0xffff_ffff), fc.nat());

/** A GPADL handle: the n-th one the hostile side knows of (its buffers, another device's) or a literal. */
export type HandleSpec = { readonly kind: "known"; readonly index: number } | { readonly kind: "lit"; readonly value: number };
export const handleSpec: fc.Arbitrary<HandleSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(7).map((index): HandleSpec => ({ kind: "known", index })) },
  { weight: 1, arbitrary: u32.map((value): HandleSpec => ({ kind: "lit", value })) },
);

/** An NVSP message a guest sends (and a few it should not), with handle references resolved later. */
export type NvspSpec =
  | { readonly m: "init"; readonly min: number; readonly max: number }
  | { readonly m: "ndis-config"; readonly mtu: number; readonly capability: bigint }
  | { readonly m: "ndis-ver"; readonly major: number; readonly minor: number }
  | { readonly m: "recv-buf" | "send-buf"; readonly handle: HandleSpec; readonly id: number }
  | { readonly m: "revoke-recv" | "revoke-send"; readonly id: number }
  | { readonly m: "rndis-pkt"; readonly channelType: number; readonly index: number; readonly size: number }
  | { readonly m: "subchannel"; readonly op: number; readonly count: number }
  | { readonly m: "oid-query-ex"; readonly oid: number }
  | { readonly m: "active-dp"; readonly dp: number }
  | { readonly m: "pkt-complete"; readonly status: number }
  | { readonly m: "send-table"; readonly table: readonly number[] }
  | { readonly m: "other"; readonly type: number; readonly body: Uint8Array };

const versions = fc.oneof(fc.constantFrom(0x00060001, 0x00060000, 0x00050000, 0x00040000, 0x00030002, 0x00000002), u32);

export const nvspSpec: fc.Arbitrary<NvspSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ m: fc.constant("init" as const), min: versions, max: versions }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("ndis-config" as const), mtu: fc.oneof(fc.constantFrom(0, 1514, 9000, 0xffff_ffff), u32), capability: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("ndis-ver" as const), major: fc.constantFrom(6, 0, 0xffff_ffff), minor: fc.constantFrom(30, 1, 0) }) },
  { weight: 2, arbitrary: fc.record({ m: fc.constantFrom("recv-buf" as const, "send-buf" as const), handle: handleSpec, id: fc.oneof(fc.constantFrom(0, 0xcafe), fc.nat(0xffff)) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constantFrom("revoke-recv" as const, "revoke-send" as const), id: fc.oneof(fc.constantFrom(0, 0xcafe), fc.nat(0xffff)) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      m: fc.constant("rndis-pkt" as const),
      channelType: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: u32 }),
      index: fc.oneof(fc.nat(8), fc.constantFrom(0xffff_ffff, 0x7fff_ffff, 63, 64)),
      size: fc.oneof(fc.constantFrom(0, 8, 44, 6144, 6145, 0xffff_ffff), fc.nat(2000)),
    }),
  },
  { weight: 2, arbitrary: fc.record({ m: fc.constant("subchannel" as const), op: fc.constantFrom(1, 1, 0, 2), count: fc.oneof(fc.constantFrom(0, 1, 7, 8, 64, 0xffff_ffff), fc.nat(10)) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("oid-query-ex" as const), oid: u32 }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("active-dp" as const), dp: fc.constantFrom(0, 1, 2, 0xffff_ffff) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("pkt-complete" as const), status: fc.constantFrom(0, 1, 2, 0xffff_ffff) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("send-table" as const), table: fc.array(fc.oneof(fc.nat(8), u32), { maxLength: 17 }) }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant("other" as const), type: fc.oneof(fc.nat(140), u32), body: fc.uint8Array({ maxLength: 36 }) }) },
);

export function buildNvsp(s: NvspSpec, handles: readonly number[]): NvspMessage {
  const handle = (h: HandleSpec): number => (h.kind === "lit" ? h.value >>> 0 : (handles[h.index % Math.max(1, handles.length)] ?? 0));
  switch (s.m) {
    case "init":
      return { kind: "init", minProtocolVersion: s.min >>> 0, maxProtocolVersion: s.max >>> 0 };
    case "ndis-config":
      return { kind: "send_ndis_config", mtu: s.mtu >>> 0, reserved: 0, capability: s.capability };
    case "ndis-ver":
      return { kind: "send_ndis_ver", ndisMajorVersion: s.major >>> 0, ndisMinorVersion: s.minor };
    case "recv-buf":
      return { kind: "send_recv_buf", gpadlHandle: handle(s.handle), id: s.id };
    case "send-buf":
      return { kind: "send_send_buf", gpadlHandle: handle(s.handle), id: s.id };
    case "revoke-recv":
      return { kind: "revoke_recv_buf", id: s.id };
    case "revoke-send":
      return { kind: "revoke_send_buf", id: s.id };
    case "rndis-pkt":
      return { kind: "send_rndis_pkt", channelType: s.channelType >>> 0, sendBufferSectionIndex: s.index >>> 0, sendBufferSectionSize: s.size >>> 0 };
    case "subchannel":
      return { kind: "subchn_req", op: s.op, numSubchannels: s.count >>> 0 };
    case "oid-query-ex":
      return { kind: "oid_query_ex", header: { type: 0x96, revision: 1, size: 16 }, oid: s.oid >>> 0 };
    case "active-dp":
      return { kind: "active_dp", activeDatapath: s.dp >>> 0 };
    case "pkt-complete":
      return { kind: "send_rndis_pkt_complete", status: s.status >>> 0 };
    case "send-table":
      return { kind: "send_table", table: s.table.map((x) => x >>> 0) };
    case "other":
      return { kind: "other", type: s.type >>> 0, body: s.body };
  }
}

/** Encodes (40 bytes as Linux, or the content length when longer). */
export function encodeNvsp(msg: NvspMessage): Uint8Array {
  return encodeNvspMessage(msg);
}

export const NVSP_FIELDS: readonly Field[] = [
  ...layoutFields(NVSP_MESSAGE_HEADER_LAYOUT),
  ...layoutFields(NVSP_MESSAGE_INIT_LAYOUT, "init."),
  ...layoutFields(NVSP_1_MESSAGE_SEND_BUFFER_LAYOUT, "buf."),
  ...layoutFields(NVSP_1_MESSAGE_REVOKE_BUFFER_LAYOUT, "revoke."),
  ...layoutFields(NVSP_1_MESSAGE_SEND_RNDIS_PACKET_LAYOUT, "rndis_pkt."),
  ...layoutFields(NVSP_1_MESSAGE_SEND_RNDIS_PACKET_COMPLETE_LAYOUT, "complete."),
  ...layoutFields(NVSP_2_SEND_NDIS_CONFIG_LAYOUT, "ndis_config."),
  ...layoutFields(NVSP_5_SUBCHANNEL_REQUEST_LAYOUT, "subchannel."),
  ...layoutFields(NVSP_5_SEND_INDIRECT_TABLE_LAYOUT, "send_table."),
  ...layoutFields(NVSP_1_MESSAGE_SEND_RECEIVE_BUFFER_COMPLETE_LAYOUT, "recv_buf_complete."),
  ...layoutFields(NVSP_1_MESSAGE_SEND_SEND_BUFFER_COMPLETE_LAYOUT, "send_buf_complete."),
];

// ---- RNDIS ------------------------------------------------------------------------------

/** An Ethernet frame: to `dst` (broadcast, the victim, a stranger), 14..1600 bytes. */
export interface FrameSpec {
  readonly dst: "broadcast" | "self" | "other";
  readonly length: number;
  readonly fill: number;
}

export const frameSpec: fc.Arbitrary<FrameSpec> = fc.record({
  dst: fc.constantFrom("broadcast" as const, "self" as const, "other" as const),
  length: fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 14, max: 1514 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 1, 13, 14, 60, 1514, 1515, 1518, 9014, 9015) },
  ),
  fill: fc.nat(255),
});

export function buildFrame(s: FrameSpec, self: Uint8Array, src: Uint8Array): Uint8Array {
  const f = new Uint8Array(s.length);
  const dst = s.dst === "broadcast" ? Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff) : s.dst === "self" ? self : Uint8Array.of(0x02, 0, 0, 0, 0, 0x99);
  f.set(dst.subarray(0, Math.min(6, f.length)));
  if (f.length > 6) f.set(src.subarray(0, Math.min(6, f.length - 6)), 6);
  if (f.length > 13) {
    f[12] = 0x88;
    f[13] = 0xb5;
  }
  for (let i = 14; i < f.length; i++) f[i] = (s.fill + i) & 0xff;
  return f;
}

export const ppiSpec: fc.Arbitrary<RndisPpi> = fc.record({
  type: fc.oneof(fc.constantFrom(0, 1, 2, 6, 8, 9, 11), fc.nat(0x7fffffff)),
  internal: fc.boolean(),
  data: fc.oneof(fc.constantFrom(Uint8Array.of(0, 0, 0, 0), Uint8Array.of(0xff, 0xff, 0xff, 0xff)), fc.uint8Array({ maxLength: 12 })),
});

/** Mostly none (as Linux sends most frames), else up to three records of any type. */
const ppiList: fc.Arbitrary<RndisPpi[]> = fc.oneof({ weight: 3, arbitrary: fc.constant([] as RndisPpi[]) }, { weight: 1, arbitrary: fc.array(ppiSpec, { minLength: 1, maxLength: 3 }) });

/** Information buffers of the OIDs a host answers, well-formed (corruption comes after). */
export type OidSpec =
  | { readonly o: "filter"; readonly value: number }
  | { readonly o: "rss"; readonly flags: number; readonly hash: number; readonly table: readonly number[]; readonly keyLen: number }
  | { readonly o: "offload"; readonly size: number; readonly lsoV1: number; readonly csum: number }
  | { readonly o: "config"; readonly name: string; readonly str: string | null; readonly int: number }
  | { readonly o: "plain"; readonly oid: number; readonly info: Uint8Array };

const knownOids = [
  OID_GEN_SUPPORTED_LIST, OID_GEN_MAXIMUM_FRAME_SIZE, OID_GEN_LINK_SPEED, OID_GEN_CURRENT_PACKET_FILTER, OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_FRIENDLY_NAME, OID_GEN_RECEIVE_SCALE_CAPABILITIES, OID_GEN_RECEIVE_SCALE_PARAMETERS, OID_GEN_NETWORK_LAYER_ADDRESSES,
  OID_GEN_RNDIS_CONFIG_PARAMETER, OID_802_3_PERMANENT_ADDRESS, OID_802_3_CURRENT_ADDRESS, OID_802_3_MULTICAST_LIST,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES, OID_TCP_OFFLOAD_PARAMETERS, OID_OFFLOAD_ENCAPSULATION, 0x00020101, 0x00020219, 0xfc01020b,
];

export const oidSpec: fc.Arbitrary<OidSpec> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ o: fc.constant("filter" as const), value: fc.oneof(fc.constantFrom(0, 0x0d, 0x20, 0xffff_ffff), u32) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      o: fc.constant("rss" as const),
      flags: fc.constantFrom(0, 0x10, 0x1, 0xe),
      hash: fc.constantFrom(0x301, 0x1, 0, 0xffff),
      table: fc.array(fc.oneof(fc.nat(3), fc.constantFrom(8, 64, 0xffff_ffff)), { minLength: 0, maxLength: 130 }),
      keyLen: fc.constantFrom(40, 0, 39, 41, 255),
    }),
  },
  { weight: 1, arbitrary: fc.record({ o: fc.constant("offload" as const), size: fc.constantFrom(28, 22, 20, 19, 8, 0xffff), lsoV1: fc.nat(3), csum: fc.nat(5) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      o: fc.constant("config" as const),
      name: fc.constantFrom("NetworkAddress", "*IPChecksumOffloadIPv4", "*LsoV2IPv4", "*UDPChecksumOffloadIPv6", "", "x".repeat(300)),
      str: fc.option(fc.constantFrom("00155d000099", "3", "", "zz", "y".repeat(300)), { nil: null }),
      int: fc.nat(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ o: fc.constant("plain" as const), oid: fc.oneof(fc.constantFrom(...knownOids), u32), info: fc.uint8Array({ maxLength: 64 }) }) },
);

function oidOf(s: OidSpec): number {
  switch (s.o) {
    case "filter":
      return OID_GEN_CURRENT_PACKET_FILTER;
    case "rss":
      return OID_GEN_RECEIVE_SCALE_PARAMETERS;
    case "offload":
      return OID_TCP_OFFLOAD_PARAMETERS;
    case "config":
      return OID_GEN_RNDIS_CONFIG_PARAMETER;
    case "plain":
      return s.oid >>> 0;
  }
}

function infoOf(s: OidSpec): Uint8Array {
  switch (s.o) {
    case "filter":
      return encodeU32Info(s.value >>> 0);
    case "rss":
      return encodeNdisRecvScaleParam({ flags: s.flags, hashInformation: s.hash, indirectionTable: s.table.map((x) => x >>> 0), hashKey: new Uint8Array(s.keyLen).fill(0x6d) });
    case "offload": {
      const p = { ...emptyNdisOffloadParams(Math.min(s.size, 28)), lsoV1: s.lsoV1, ipV4Checksum: s.csum };
      const bytes = encodeNdisOffloadParams(p);
      if (s.size > 28) {
        // A header that claims more than the buffer holds.
        new DataView(bytes.buffer).setUint16(2, s.size & 0xffff, true);
      }
      return bytes;
    }
    case "config":
      return encodeRndisConfigParameter(
        s.str === null
          ? { name: s.name, type: RNDIS_CONFIG_PARAM_TYPE_INTEGER, value: s.int >>> 0 }
          : { name: s.name, type: RNDIS_CONFIG_PARAM_TYPE_STRING, value: s.str },
      );
    case "plain":
      return s.info;
  }
}

/** An RNDIS message; `frame` fields are filled in with the right MACs when built. */
export type RndisSpec =
  | { readonly r: "packet"; readonly frame: FrameSpec; readonly ppis: readonly RndisPpi[] }
  | { readonly r: "initialize"; readonly rid: number; readonly major: number; readonly minor: number; readonly maxXfer: number }
  | { readonly r: "query" | "set" | "set_ex"; readonly rid: number; readonly oid: OidSpec }
  | { readonly r: "halt" | "keepalive"; readonly rid: number }
  | { readonly r: "reset" }
  | { readonly r: "indicate"; readonly status: number; readonly payload: Uint8Array }
  /** A completion (host → guest kinds) sent the wrong way. */
  | { readonly r: "wrong-way"; readonly rid: number; readonly status: number };

export const rndisSpec: fc.Arbitrary<RndisSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ r: fc.constant("packet" as const), frame: frameSpec, ppis: ppiList }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("initialize" as const), rid: u32, major: fc.constantFrom(1, 0, 2), minor: fc.constantFrom(0, 1), maxXfer: u32 }) },
  { weight: 4, arbitrary: fc.record({ r: fc.constantFrom("query" as const, "set" as const, "set_ex" as const), rid: u32, oid: oidSpec }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constantFrom("halt" as const, "keepalive" as const), rid: u32 }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("reset" as const) }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("indicate" as const), status: u32, payload: fc.uint8Array({ maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("wrong-way" as const), rid: u32, status: u32 }) },
);

export function buildRndis(s: RndisSpec, self: Uint8Array, src: Uint8Array): RndisMessage {
  switch (s.r) {
    case "packet":
      return { kind: "packet", data: buildFrame(s.frame, self, src), ppis: s.ppis };
    case "initialize":
      return { kind: "initialize", requestId: s.rid >>> 0, majorVersion: s.major, minorVersion: s.minor, maxTransferSize: s.maxXfer >>> 0 };
    case "query":
    case "set":
    case "set_ex":
      return { kind: s.r, requestId: s.rid >>> 0, oid: oidOf(s.oid), deviceVcHandle: 0, info: infoOf(s.oid) };
    case "halt":
    case "keepalive":
      return { kind: s.r, requestId: s.rid >>> 0 };
    case "reset":
      return { kind: "reset", reserved: 0 };
    case "indicate":
      return { kind: "indicate_status", status: s.status >>> 0, payload: s.payload };
    case "wrong-way":
      return { kind: "set_cmplt", requestId: s.rid >>> 0, status: s.status >>> 0 };
  }
}

/** Host → guest RNDIS: what a netvsc receives in the receive buffer. */
export type RndisToGuestSpec =
  | { readonly r: "packet"; readonly frame: FrameSpec; readonly ppis: readonly RndisPpi[] }
  | { readonly r: "indicate"; readonly status: number; readonly payload: Uint8Array }
  | { readonly r: "init-cmplt"; readonly rid: number; readonly status: number; readonly maxPkts: number; readonly maxXfer: number; readonly align: number }
  | { readonly r: "query-cmplt" | "set-ex-cmplt"; readonly rid: number; readonly status: number; readonly info: Uint8Array }
  | { readonly r: "set-cmplt" | "keepalive-cmplt"; readonly rid: number; readonly status: number }
  | { readonly r: "reset-cmplt"; readonly status: number }
  /** A request type (query / initialize) sent to the guest. */
  | { readonly r: "request"; readonly rid: number };

export const rndisToGuestSpec: fc.Arbitrary<RndisToGuestSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ r: fc.constant("packet" as const), frame: frameSpec, ppis: ppiList }) },
  {
    weight: 3,
    arbitrary: fc.record({
      r: fc.constant("indicate" as const),
      status: fc.oneof(
        fc.constantFrom(RNDIS_STATUS_MEDIA_CONNECT, RNDIS_STATUS_MEDIA_DISCONNECT, RNDIS_STATUS_LINK_SPEED_CHANGE, RNDIS_STATUS_NETWORK_CHANGE, RNDIS_STATUS_TASK_OFFLOAD_CURRENT_CONFIG),
        u32,
      ),
      payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 16 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("init-cmplt" as const), rid: u32, status: u32, maxPkts: u32, maxXfer: u32, align: fc.oneof(fc.nat(40), u32) }) },
  { weight: 2, arbitrary: fc.record({ r: fc.constantFrom("query-cmplt" as const, "set-ex-cmplt" as const), rid: fc.oneof(fc.nat(40), u32), status: u32, info: fc.uint8Array({ maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constantFrom("set-cmplt" as const, "keepalive-cmplt" as const), rid: fc.oneof(fc.nat(40), u32), status: u32 }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("reset-cmplt" as const), status: u32 }) },
  { weight: 1, arbitrary: fc.record({ r: fc.constant("request" as const), rid: u32 }) },
);

export function buildRndisToGuest(s: RndisToGuestSpec, self: Uint8Array, src: Uint8Array): RndisMessage {
  switch (s.r) {
    case "packet":
      return { kind: "packet", data: buildFrame(s.frame, self, src), ppis: s.ppis };
    case "indicate":
      return { kind: "indicate_status", status: s.status >>> 0, payload: s.payload };
    case "init-cmplt":
      return {
        kind: "initialize_cmplt",
        requestId: s.rid >>> 0,
        status: s.status >>> 0,
        majorVersion: 1,
        minorVersion: 0,
        deviceFlags: 1,
        medium: 0,
        maxPacketsPerMessage: s.maxPkts >>> 0,
        maxTransferSize: s.maxXfer >>> 0,
        packetAlignmentFactor: s.align >>> 0,
        afListOffset: 0,
        afListSize: 0,
      };
    case "query-cmplt":
      return { kind: "query_cmplt", requestId: s.rid >>> 0, status: s.status >>> 0, info: s.info };
    case "set-ex-cmplt":
      return { kind: "set_ex_cmplt", requestId: s.rid >>> 0, status: s.status >>> 0, info: s.info };
    case "set-cmplt":
      return { kind: "set_cmplt", requestId: s.rid >>> 0, status: s.status >>> 0 };
    case "keepalive-cmplt":
      return { kind: "keepalive_cmplt", requestId: s.rid >>> 0, status: s.status >>> 0 };
    case "reset-cmplt":
      return { kind: "reset_cmplt", status: s.status >>> 0, addressingReset: 0 };
    case "request":
      return { kind: "query", requestId: s.rid >>> 0, oid: OID_GEN_MAXIMUM_FRAME_SIZE, deviceVcHandle: 0, info: new Uint8Array(0) };
  }
}

export function encodeRndis(msg: RndisMessage): Uint8Array {
  return encodeRndisMessage(msg);
}

/** RNDIS fields: header, each message kind's body, and the RSS parameters inside a SET (info at 28). */
export const RNDIS_FIELDS: readonly Field[] = [
  ...layoutFields(RNDIS_MESSAGE_HEADER_LAYOUT),
  ...layoutFields(RNDIS_PACKET_LAYOUT, "packet."),
  ...layoutFields(RNDIS_INITIALIZE_REQUEST_LAYOUT, "init."),
  ...layoutFields(RNDIS_INITIALIZE_COMPLETE_LAYOUT, "init_cmplt."),
  ...layoutFields(RNDIS_QUERY_REQUEST_LAYOUT, "query."),
  ...layoutFields(RNDIS_QUERY_COMPLETE_LAYOUT, "query_cmplt."),
  ...layoutFields(RNDIS_INDICATE_STATUS_LAYOUT, "indicate."),
  ...layoutFields(NDIS_RECV_SCALE_PARAM_LAYOUT, "rss.").map((f) => ({ ...f, offset: f.offset + 28 })),
  // The first per-packet-info record after a PACKET's 44-byte header (size, type, offset).
  { name: "ppi.size", offset: 44, size: 4 },
  { name: "ppi.type", offset: 48, size: 4 },
  { name: "ppi.offset", offset: 52, size: 4 },
];
