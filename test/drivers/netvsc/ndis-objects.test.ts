/**
 * NDIS objects in OID information buffers (storvsc-netvsc.md §13.5, §13.7,
 * §13.8): golden bytes of what Linux sets and queries and of OV's answers,
 * header rules, offsets inside the buffer, round trips, random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  NDIS_HASH_FUNC_TOEPLITZ,
  NDIS_HASH_IPV4,
  NDIS_HASH_IPV6,
  NDIS_HASH_TCP_IPV4,
  NDIS_HASH_TCP_IPV6,
  NDIS_OBJECT_TYPE_OFFLOAD,
  NDIS_OFFLOAD_ENCAP_8023,
  NDIS_OFFLOAD_PARAMETERS_LSOV2_ENABLED,
  NDIS_OFFLOAD_PARAMETERS_TX_RX_DISABLED,
  NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
  NDIS_OFFLOAD_SIZE,
  NDIS_OFFLOAD_SIZE_6_0,
  NDIS_OFFLOAD_SIZE_6_1,
  NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4,
  NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6,
  NDIS_RSS_PARAM_FLAG_DISABLE_RSS,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_CONFIG_PARAM_TYPE_INTEGER,
  VERSION_4_OFFLOAD_SIZE,
  decodeFriendlyName,
  decodeMacInfo,
  decodeNdisLinkSpeed,
  decodeNdisLinkState,
  decodeNdisObjectHeader,
  decodeNdisOffload,
  decodeNdisOffloadEncapsulation,
  decodeNdisOffloadParams,
  decodeNdisRecvScaleCap,
  decodeNdisRecvScaleParam,
  decodeRndisConfigParameter,
  decodeU32Info,
  defaultIndirectionTable,
  emptyNdisOffload,
  emptyNdisOffloadParams,
  encodeFriendlyName,
  encodeNdisLinkSpeed,
  encodeNdisLinkState,
  encodeNdisOffload,
  encodeNdisOffloadEncapsulation,
  encodeNdisOffloadParams,
  encodeNdisRecvScaleCap,
  encodeNdisRecvScaleParam,
  encodeRndisConfigParameter,
  encodeU32Info,
  makeNdisLinkState,
  makeNdisRecvScaleCap,
  ndisOffloadSize,
  netvscDefaultHashKey,
  networkAddressConfigParameter,
  formatPacketFilter,
  oidName,
} from "../../../drivers/netvsc/protocol/index.js";
import * as netProtocol from "../../../drivers/netvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, onlyTypedErrors, thrown, utf16, zeros } from "./helpers.js";

/** storvsc-netvsc.md §13.5, copied by hand: every OID the spec lists, with its value. */
const SPEC_13_5_OIDS: readonly (readonly [string, number])[] = [
  // General
  ["OID_GEN_SUPPORTED_LIST", 0x00010101],
  ["OID_GEN_HARDWARE_STATUS", 0x00010102],
  ["OID_GEN_MEDIA_SUPPORTED", 0x00010103],
  ["OID_GEN_MEDIA_IN_USE", 0x00010104],
  ["OID_GEN_MAXIMUM_LOOKAHEAD", 0x00010105],
  ["OID_GEN_MAXIMUM_FRAME_SIZE", 0x00010106],
  ["OID_GEN_LINK_SPEED", 0x00010107],
  ["OID_GEN_TRANSMIT_BUFFER_SPACE", 0x00010108],
  ["OID_GEN_RECEIVE_BUFFER_SPACE", 0x00010109],
  ["OID_GEN_TRANSMIT_BLOCK_SIZE", 0x0001010a],
  ["OID_GEN_RECEIVE_BLOCK_SIZE", 0x0001010b],
  ["OID_GEN_VENDOR_ID", 0x0001010c],
  ["OID_GEN_VENDOR_DESCRIPTION", 0x0001010d],
  ["OID_GEN_CURRENT_PACKET_FILTER", 0x0001010e],
  ["OID_GEN_CURRENT_LOOKAHEAD", 0x0001010f],
  ["OID_GEN_DRIVER_VERSION", 0x00010110],
  ["OID_GEN_MAXIMUM_TOTAL_SIZE", 0x00010111],
  ["OID_GEN_PROTOCOL_OPTIONS", 0x00010112],
  ["OID_GEN_MAC_OPTIONS", 0x00010113],
  ["OID_GEN_MEDIA_CONNECT_STATUS", 0x00010114],
  ["OID_GEN_MAXIMUM_SEND_PACKETS", 0x00010115],
  ["OID_GEN_VENDOR_DRIVER_VERSION", 0x00010116],
  ["OID_GEN_NETWORK_LAYER_ADDRESSES", 0x00010118],
  ["OID_GEN_TRANSPORT_HEADER_OFFSET", 0x00010119],
  ["OID_GEN_RECEIVE_SCALE_CAPABILITIES", 0x00010203],
  ["OID_GEN_RECEIVE_SCALE_PARAMETERS", 0x00010204],
  ["OID_GEN_MAX_LINK_SPEED", 0x00010206],
  ["OID_GEN_LINK_STATE", 0x00010207],
  ["OID_GEN_LINK_PARAMETERS", 0x00010208],
  ["OID_GEN_INTERRUPT_MODERATION", 0x00010209],
  ["OID_GEN_MACHINE_NAME", 0x0001021a],
  ["OID_GEN_RNDIS_CONFIG_PARAMETER", 0x0001021b],
  ["OID_GEN_VLAN_ID", 0x0001021c],
  // Statistics
  ["OID_GEN_XMIT_OK", 0x00020101],
  ["OID_GEN_RCV_OK", 0x00020102],
  ["OID_GEN_XMIT_ERROR", 0x00020103],
  ["OID_GEN_RCV_ERROR", 0x00020104],
  ["OID_GEN_RCV_NO_BUFFER", 0x00020105],
  ["OID_GEN_BYTES_RCV", 0x00020219],
  ["OID_GEN_BYTES_XMIT", 0x0002021a],
  ["OID_GEN_FRIENDLY_NAME", 0x00020216],
  // 802.3
  ["OID_802_3_PERMANENT_ADDRESS", 0x01010101],
  ["OID_802_3_CURRENT_ADDRESS", 0x01010102],
  ["OID_802_3_MULTICAST_LIST", 0x01010103],
  ["OID_802_3_MAXIMUM_LIST_SIZE", 0x01010104],
  ["OID_802_3_MAC_OPTIONS", 0x01010105],
  ["OID_OFFLOAD_ENCAPSULATION", 0x0101010a],
  ["OID_802_3_RCV_ERROR_ALIGNMENT", 0x01020101],
  ["OID_802_3_XMIT_ONE_COLLISION", 0x01020102],
  ["OID_802_3_XMIT_MORE_COLLISIONS", 0x01020103],
  // Offload
  ["OID_TCP_OFFLOAD_CURRENT_CONFIG", 0xfc01020b],
  ["OID_TCP_OFFLOAD_PARAMETERS", 0xfc01020c],
  ["OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES", 0xfc01020d],
  ["OID_TCP_CONNECTION_OFFLOAD_CURRENT_CONFIG", 0xfc01020e],
  ["OID_TCP_CONNECTION_OFFLOAD_HARDWARE_CAPABILITIES", 0xfc01020f],
];

describe("OIDs and packet filter", () => {
  it("every OID value listed in spec §13.5 equals the exported constant of that name, and oidName names it back", () => {
    expect(SPEC_13_5_OIDS.length).toBe(55);
    const exported = netProtocol as unknown as Record<string, unknown>;
    const mismatches = SPEC_13_5_OIDS.filter(([name, value]) => exported[name] !== value || oidName(value) !== name);
    expect(mismatches).toEqual([]);
    // No two spec names share a value (a copy-paste slip in the constants would show here).
    expect(new Set(SPEC_13_5_OIDS.map(([, v]) => v)).size).toBe(SPEC_13_5_OIDS.length);
  });

  it("names OIDs with their Linux names", () => {
    expect(oidName(OID_TCP_OFFLOAD_PARAMETERS)).toBe("OID_TCP_OFFLOAD_PARAMETERS");
    expect(oidName(0x00010106)).toBe("OID_GEN_MAXIMUM_FRAME_SIZE");
    expect(oidName(OID_802_3_PERMANENT_ADDRESS)).toBe("OID_802_3_PERMANENT_ADDRESS");
    expect(OID_GEN_FRIENDLY_NAME).toBe(0x00020216);
    expect(oidName(0x12345678)).toBe("OID_UNKNOWN");
  });

  it("formats packet filters", () => {
    expect(formatPacketFilter(0x0d)).toBe("DIRECTED|ALL_MULTICAST|BROADCAST");
    expect(formatPacketFilter(0)).toBe("NONE");
    expect(formatPacketFilter(0x20 | 0x10000)).toBe("PROMISCUOUS|0x10000");
  });
});

describe("ndis_offload_params (SET OID_TCP_OFFLOAD_PARAMETERS)", () => {
  const linux = {
    ...emptyNdisOffloadParams(),
    ipV4Csum: NDIS_OFFLOAD_PARAMETERS_TX_RX_DISABLED,
    tcpIpV4Csum: NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
    udpIpV4Csum: NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
    tcpIpV6Csum: NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
    udpIpV6Csum: NDIS_OFFLOAD_PARAMETERS_TX_RX_ENABLED,
    lsoV2Ipv4: NDIS_OFFLOAD_PARAMETERS_LSOV2_ENABLED,
    lsoV2Ipv6: NDIS_OFFLOAD_PARAMETERS_LSOV2_ENABLED,
  };

  it("encodes Linux's 28-byte object (NVSP ≥ v5), flags aligned at 16", () => {
    const bytes = encodeNdisOffloadParams(linux);
    expect(hexOf(bytes)).toBe(hexOf(bytesOf(`80 03 1c 00 | 01 04 04 04 04 00 00 02 02 00 00 | 00 | 00 00 00 00 | 00 00 | 00 00 | 00 00 | 00 00`)));
    expect(decodeNdisOffloadParams(bytes)).toEqual(linux);
  });

  it("encodes the 22-byte object Linux sends for NVSP ≤ v4 (no UDP checksum)", () => {
    const v4 = { ...linux, header: { ...linux.header, size: VERSION_4_OFFLOAD_SIZE }, udpIpV4Csum: 0, udpIpV6Csum: 0 };
    const bytes = encodeNdisOffloadParams(v4);
    expect(hexOf(bytes)).toBe(hexOf(bytesOf(`80 03 16 00 | 01 04 00 04 00 00 00 02 02 00 00 | 00 | 00 00 00 00 | 00 00`)));
    expect(decodeNdisOffloadParams(bytes)).toEqual(v4);
  });

  it("reads fields past the declared size as NO_CHANGE", () => {
    const bytes = new Uint8Array(28).fill(4);
    bytes.set(bytesOf("80 01 14 00"));
    const p = decodeNdisOffloadParams(bytes);
    expect(p.ipSecV2).toBe(0);
    expect(p.rscIpV4).toBe(0);
    expect(p.flags).toBe(0x04040404);
  });

  it("checks type, revision and size (OV rules)", () => {
    const ok = encodeNdisOffloadParams(linux);
    const bad = (patch: string): Uint8Array => {
      const b = ok.slice();
      b.set(bytesOf(patch));
      return b;
    };
    expectTypedError(thrown(() => decodeNdisOffloadParams(bad("a7"))), ProtocolError, { protocol: "NDIS", field: "ndis_offload_params.header.type", value: 0xa7 });
    expectTypedError(thrown(() => decodeNdisOffloadParams(bad("80 00"))), ProtocolError, { field: "ndis_offload_params.header.revision", value: 0 });
    expectTypedError(thrown(() => decodeNdisOffloadParams(bad("80 03 13 00"))), ProtocolError, { field: "ndis_offload_params.header.size", value: 19 });
    expectTypedError(thrown(() => decodeNdisOffloadParams(bad("80 03 1d 00"))), ProtocolError, { field: "ndis_offload_params.header.size", value: 29 });
    expectTypedError(thrown(() => decodeNdisOffloadParams(bytesOf("80 03"))), ProtocolError, { field: "buffer length", value: 2 });
  });
});

describe("ndis_offload (OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES)", () => {
  it("encodes revision 3 (156 bytes) with the padded ipsecv2/rsc/encap_gre layout", () => {
    const o = {
      ...emptyNdisOffload(3),
      csumIp4TxEnc: NDIS_OFFLOAD_ENCAP_8023,
      csumIp4TxCsum: 0x155,
      lsoV2Ip4Encap: NDIS_OFFLOAD_ENCAP_8023,
      lsoV2Ip4MaxSize: 0xf53c,
      lsoV2Ip4MinSegs: 2,
      flags: 0xaabbccdd,
      ipsecV2ExtSeq: 0x11,
      ipsecV2UdpEsp: 0x22,
      rscIp6: 1,
      encapGreMaxHdr: 0x12345678,
    };
    const bytes = encodeNdisOffload(o);
    expect(bytes.length).toBe(NDIS_OFFLOAD_SIZE);
    const expected = bytesOf(zeros(156));
    expected.set(bytesOf("a7 03 9c 00 | 02 00 00 00 | 55 01 00 00"), 0);
    expected.set(bytesOf("02 00 00 00 | 3c f5 00 00 | 02 00 00 00"), 80);
    expected.set(bytesOf("dd cc bb aa"), 108);
    expected.set(bytesOf("11"), 126);
    expected.set(bytesOf("22 00 00 00"), 128);
    expected.set(bytesOf("00 01"), 144);
    expected.set(bytesOf("78 56 34 12"), 152);
    expect(hexOf(bytes)).toBe(hexOf(expected));
    expect(decodeNdisOffload(bytes)).toEqual(o);
  });

  it("sizes revisions as Linux does and ignores fields past the size", () => {
    expect([1, 2, 3].map(ndisOffloadSize)).toEqual([NDIS_OFFLOAD_SIZE_6_0, NDIS_OFFLOAD_SIZE_6_1, NDIS_OFFLOAD_SIZE]);
    const full = encodeNdisOffload({ ...emptyNdisOffload(3), rscIp4: 1, ipsecV2Encap: 5, flags: 9 });
    full.set(bytesOf("a7 01 70 00"));
    const rev1 = decodeNdisOffload(full);
    expect(rev1.header).toEqual({ type: NDIS_OBJECT_TYPE_OFFLOAD, revision: 1, size: 112 });
    expect([rev1.flags, rev1.ipsecV2Encap, rev1.rscIp4]).toEqual([9, 0, 0]);
  });

  it("checks type, revision and size (Linux rndis_query_hwcaps rules)", () => {
    const ok = encodeNdisOffload(emptyNdisOffload(2));
    const with4 = (h: string): Uint8Array => {
      const b = ok.slice();
      b.set(bytesOf(h));
      return b;
    };
    expectTypedError(thrown(() => decodeNdisOffload(with4("80 02 90 00"))), ProtocolError, { field: "ndis_offload.header.type", value: 0x80 });
    expectTypedError(thrown(() => decodeNdisOffload(with4("a7 00 90 00"))), ProtocolError, { field: "ndis_offload.header.revision", value: 0 });
    expectTypedError(thrown(() => decodeNdisOffload(with4("a7 02 6f 00"))), ProtocolError, { field: "ndis_offload.header.size", value: 111 });
    expectTypedError(thrown(() => decodeNdisOffload(with4("a7 03 9c 00"))), ProtocolError, { field: "ndis_offload.header.size", value: 156, limit: "exceeds the 144-byte information buffer" });
  });
});

describe("RSS capabilities and parameters", () => {
  it("encodes OV's capabilities {0x88, rev 2, 18}", () => {
    const caps = makeNdisRecvScaleCap(NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV4 | NDIS_RSS_CAPS_HASH_TYPE_TCP_IPV6 | 1, 1, 8, 128);
    const bytes = encodeNdisRecvScaleCap(caps);
    expect(hexOf(bytes)).toBe(hexOf(bytesOf("88 02 12 00 | 01 03 00 00 | 01 00 00 00 | 08 00 00 00 | 80 00")));
    expect(decodeNdisRecvScaleCap(bytes)).toEqual(caps);
    const rev1 = decodeNdisRecvScaleCap(bytesOf("88 01 10 00 | 01 03 00 00 | 01 00 00 00 | 04 00 00 00 | 80 00"));
    expect([rev1.numRecvQue, rev1.numIndirectTabent]).toEqual([4, 0]);
    expectTypedError(thrown(() => decodeNdisRecvScaleCap(bytesOf("88 02 12 00 | 01 03 00 00 | 01 00 00 00 | 08 00 00 00"))), ProtocolError, {
      field: "ndis_recv_scale_cap.header.size",
      value: 18,
    });
  });

  const hashinfo = NDIS_HASH_FUNC_TOEPLITZ | NDIS_HASH_IPV4 | NDIS_HASH_TCP_IPV4 | NDIS_HASH_IPV6 | NDIS_HASH_TCP_IPV6;
  const linuxParams = (): Uint8Array =>
    encodeNdisRecvScaleParam({ flags: 0, hashInformation: hashinfo, indirectionTable: defaultIndirectionTable(4), hashKey: netvscDefaultHashKey() });

  it("encodes Linux's parameters: 40-byte struct, 128-entry table at 40, 40-byte key at 552", () => {
    const bytes = linuxParams();
    expect(bytes.length).toBe(40 + 512 + 40);
    expect(hexOf(bytes.subarray(0, 40))).toBe(
      hexOf(bytesOf("89 02 28 00 | 00 00 | 00 00 | 01 17 00 00 | 00 02 | 00 00 | 28 00 00 00 | 28 00 | 00 00 | 28 02 00 00 | " + zeros(12))),
    );
    expect(hexOf(bytes.subarray(40, 56))).toBe("00 00 00 00 01 00 00 00 02 00 00 00 03 00 00 00");
    expect(hexOf(bytes.subarray(552, 556))).toBe("6d 5a 56 da");
    expect(hexOf(bytes.subarray(588))).toBe("be ac 01 fa");
    const p = decodeNdisRecvScaleParam(bytes);
    expect(p.indirectionTable).toEqual(defaultIndirectionTable(4));
    expect(p.hashKey).toEqual(netvscDefaultHashKey());
    expect([p.flag, p.hashinfo, p.indirectTabsize, p.indirectTaboffset, p.hashkeySize, p.hashkeyOffset]).toEqual([0, 0x1701, 512, 40, 40, 552]);
    expect(OID_GEN_RECEIVE_SCALE_PARAMETERS).toBe(0x00010204);
  });

  it("accepts a disable request with an empty table and key", () => {
    const p = decodeNdisRecvScaleParam(encodeNdisRecvScaleParam({ flags: NDIS_RSS_PARAM_FLAG_DISABLE_RSS, hashInformation: 0, indirectionTable: [], hashKey: new Uint8Array(0) }));
    expect([p.flag, p.indirectionTable.length, p.hashKey.length]).toEqual([0x10, 0, 0]);
  });

  it("rejects partial entries and a table or key outside the buffer", () => {
    const set16 = (b: Uint8Array, at: number, v: number): Uint8Array => {
      const c = b.slice();
      new DataView(c.buffer).setUint16(at, v, true);
      return c;
    };
    const set32 = (b: Uint8Array, at: number, v: number): Uint8Array => {
      const c = b.slice();
      new DataView(c.buffer).setUint32(at, v, true);
      return c;
    };
    const ok = linuxParams();
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(set16(ok, 12, 510))), ProtocolError, { field: "ndis_recv_scale_param.indirect_tabsize", value: 510 });
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(set32(ok, 16, 20))), ProtocolError, { field: "ndis_recv_scale_param.indirect_taboffset", value: 20 });
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(set32(ok, 16, 100))), ProtocolError, { field: "ndis_recv_scale_param.indirect_taboffset", value: 100 });
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(set32(ok, 24, 560))), ProtocolError, { field: "ndis_recv_scale_param.hashkey_offset", value: 560 });
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(set32(ok, 24, 0xffffffff))), ProtocolError, { field: "ndis_recv_scale_param.hashkey_offset" });
    expectTypedError(thrown(() => decodeNdisRecvScaleParam(ok.subarray(0, 30))), ProtocolError, { field: "ndis_recv_scale_param.header.size", value: 40 });
  });

  it("builds Linux's default table", () => {
    expect(defaultIndirectionTable(3).slice(0, 7)).toEqual([0, 1, 2, 0, 1, 2, 0]);
    expect(defaultIndirectionTable(1)).toHaveLength(128);
    expect(thrown(() => defaultIndirectionTable(0))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("other OID payloads", () => {
  it("encodes Linux's NetworkAddress config parameter", () => {
    const bytes = encodeRndisConfigParameter(networkAddressConfigParameter(bytesOf("00 15 5d 01 02 03")));
    expect(bytes.length).toBe(72);
    expect(hexOf(bytes)).toBe(
      hexOf(bytesOf(`14 00 00 00 | 1c 00 00 00 | 02 00 00 00 | 30 00 00 00 | 18 00 00 00 | ${utf16("NetworkAddress")} | ${utf16("00155d010203")}`)),
    );
    expect(decodeRndisConfigParameter(bytes)).toEqual({ name: "NetworkAddress", type: 2, value: "00155d010203" });
    const int = encodeRndisConfigParameter({ name: "*LsoV2IPv4", type: RNDIS_CONFIG_PARAM_TYPE_INTEGER, value: 1 });
    expect(decodeRndisConfigParameter(int)).toEqual({ name: "*LsoV2IPv4", type: 0, value: 1 });
  });

  it("rejects config parameters whose name or value leave the buffer", () => {
    const ok = encodeRndisConfigParameter({ name: "ab", type: 2, value: "1" }); // 20 + 4 + 2
    const set = (at: number, v: number): Uint8Array => {
      const c = ok.slice();
      new DataView(c.buffer).setUint32(at, v, true);
      return c;
    };
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(0, 8))), ProtocolError, { field: "rndis_config_parameter_info.parameter_name_offset", value: 8 });
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(4, 3))), ProtocolError, { field: "rndis_config_parameter_info.parameter_name_length", value: 3 });
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(12, 25))), ProtocolError, { field: "rndis_config_parameter_info.parameter_value_offset", value: 25 });
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(16, 256))), ProtocolError, { field: "rndis_config_parameter_info.parameter_value_length", value: 256 });
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(8, 1))), ProtocolError, { field: "rndis_config_parameter_info.parameter_type", value: 1 });
    expectTypedError(thrown(() => decodeRndisConfigParameter(set(8, 0))), ProtocolError, { field: "rndis_config_parameter_info.parameter_value_length", value: 2 });
  });

  it("encodes OV's link state, link speed and offload encapsulation", () => {
    const ls = makeNdisLinkState(true, 10_000_000_000n);
    const bytes = encodeNdisLinkState(ls);
    expect(hexOf(bytes)).toBe(hexOf(bytesOf(`80 01 28 00 | 01 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 e4 0b 54 02 00 00 00 | 00 e4 0b 54 02 00 00 00 | ${zeros(8)}`)));
    expect(decodeNdisLinkState(bytes)).toEqual(ls);
    expect(decodeNdisLinkSpeed(encodeNdisLinkSpeed(1n, 2n))).toEqual({ xmit: 1n, rcv: 2n });
    expectTypedError(thrown(() => decodeNdisLinkSpeed(new Uint8Array(15))), ProtocolError, { value: 15 });
    const encap = {
      header: { type: 0xa8, revision: 1, size: 28 },
      ipv4Enabled: 1,
      ipv4EncapsulationType: NDIS_OFFLOAD_ENCAP_8023,
      ipv4HeaderSize: 14,
      ipv6Enabled: 1,
      ipv6EncapsulationType: NDIS_OFFLOAD_ENCAP_8023,
      ipv6HeaderSize: 14,
    };
    const eb = encodeNdisOffloadEncapsulation(encap);
    expect(hexOf(eb)).toBe(hexOf(bytesOf("a8 01 1c 00 | 01 00 00 00 | 02 00 00 00 | 0e 00 00 00 | 01 00 00 00 | 02 00 00 00 | 0e 00 00 00")));
    expect(decodeNdisOffloadEncapsulation(eb)).toEqual(encap);
  });

  it("reads u32, MAC and friendly-name answers", () => {
    expect(hexOf(encodeU32Info(1500))).toBe("dc 05 00 00");
    expect(decodeU32Info(bytesOf("dc 05 00 00 ff"))).toBe(1500);
    expectTypedError(thrown(() => decodeU32Info(bytesOf("dc 05"), "OID_GEN_LINK_SPEED")), ProtocolError, { field: "OID_GEN_LINK_SPEED length", value: 2 });
    expect(decodeMacInfo(bytesOf("00 15 5d 01 02 03"))).toEqual(bytesOf("00 15 5d 01 02 03"));
    expect(thrown(() => decodeMacInfo(bytesOf("00 15 5d")))).toBeInstanceOf(ProtocolError);
    const name = encodeFriendlyName("Network Device");
    expect(name.length).toBe(512);
    expect(hexOf(name.subarray(0, 6))).toBe("4e 00 65 00 74 00");
    expect(decodeFriendlyName(name)).toBe("Network Device");
    expect(thrown(() => encodeFriendlyName("x".repeat(256)))).toBeInstanceOf(InvalidArgumentError);
    expect(decodeNdisObjectHeader(bytesOf("a7 03 9c 00"))).toEqual({ type: 0xa7, revision: 3, size: 156 });
  });
});

describe("NDIS round trips and fuzzing", () => {
  it("offload params and RSS params round-trip", () => {
    const u8 = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(fc.array(u8, { minLength: 17, maxLength: 17 }), fc.integer({ min: 0, max: 0xffffffff }), (v, flags) => {
        const p = {
          ...emptyNdisOffloadParams(),
          ipV4Csum: v[0] ?? 0,
          tcpIpV4Csum: v[1] ?? 0,
          udpIpV4Csum: v[2] ?? 0,
          tcpIpV6Csum: v[3] ?? 0,
          udpIpV6Csum: v[4] ?? 0,
          lsoV1: v[5] ?? 0,
          ipSecV1: v[6] ?? 0,
          lsoV2Ipv4: v[7] ?? 0,
          lsoV2Ipv6: v[8] ?? 0,
          tcpConnectionIpV4: v[9] ?? 0,
          tcpConnectionIpV6: v[10] ?? 0,
          flags,
          ipSecV2: v[11] ?? 0,
          ipSecV2IpV4: v[12] ?? 0,
          rscIpV4: v[13] ?? 0,
          rscIpV6: v[14] ?? 0,
          encapsulatedPacketTaskOffload: v[15] ?? 0,
          encapsulationTypes: v[16] ?? 0,
        };
        expect(decodeNdisOffloadParams(encodeNdisOffloadParams(p))).toEqual(p);
      }),
      FC_RUNS,
    );
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 256 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 0, max: 0xffff }),
        (table, key, flags) => {
          const p = decodeNdisRecvScaleParam(encodeNdisRecvScaleParam({ flags, hashInformation: 0x1701, indirectionTable: table, hashKey: key }));
          expect([p.indirectionTable, p.hashKey, p.flag]).toEqual([table, key, flags]);
        },
      ),
      FC_RUNS,
    );
  });

  it("random information buffers only ever raise typed errors", () => {
    const decoders = [
      decodeNdisOffload,
      decodeNdisOffloadParams,
      decodeNdisRecvScaleCap,
      decodeNdisRecvScaleParam,
      decodeNdisOffloadEncapsulation,
      decodeNdisLinkState,
      decodeRndisConfigParameter,
      decodeNdisLinkSpeed,
      decodeU32Info,
      decodeMacInfo,
      decodeFriendlyName,
    ];
    const header = fc.constantFrom("80", "88", "89", "a7", "a8").map((t) => bytesOf(t));
    fc.assert(
      fc.property(fc.option(header), fc.uint8Array({ maxLength: 700 }), (h, body) => {
        const bytes = new Uint8Array((h?.length ?? 0) + body.length);
        if (h) bytes.set(h);
        bytes.set(body, h?.length ?? 0);
        for (const d of decoders) onlyTypedErrors(() => d(bytes));
      }),
      FUZZ_RUNS,
    );
    expect(OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES).toBe(0xfc01020d);
  });
});
