/**
 * Descriptions for the decode CLI and trace labels (storvsc-netvsc.md §9,
 * §13): every field named, OID payloads and PPIs interpreted, the carried
 * frame summarised, invalid input shown rather than thrown.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ICMP_ECHO,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_RNDIS_CONFIG_PARAMETER,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_STATUS_MEDIA_CONNECT,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  checksumRxPpi,
  decodeChecksumRxInfo,
  describeEthernetFrame,
  describeNvsp,
  describeRndis,
  emptyNdisOffloadParams,
  encodeNdisOffloadParams,
  encodeNvspMessage,
  encodeRndisConfigParameter,
  encodeRndisMessage,
  encodeU32Info,
  hashValuePpi,
  networkAddressConfigParameter,
  vlanPpi,
} from "../../../drivers/netvsc/protocol/index.js";
import { FUZZ_RUNS, bytesOf } from "./helpers.js";

const ping = buildIcmpEchoFrame({
  srcMac: "00:15:5d:00:00:01",
  dstMac: "00:15:5d:00:00:02",
  srcIp: "10.0.0.1",
  dstIp: "10.0.0.2",
  type: ICMP_ECHO,
  identifier: 1,
  sequence: 2,
  data: new Uint8Array(56),
});

describe("describeNvsp", () => {
  it("names the type and every field", () => {
    expect(describeNvsp(encodeNvspMessage({ kind: "init", minProtocolVersion: 0x60001, maxProtocolVersion: 0x60001 }))).toBe(
      "nvsp INIT(1) len=40 min_protocol_ver=0x00060001[v6.1] max_protocol_ver=0x00060001[v6.1]",
    );
    expect(
      describeNvsp(encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 1, sendBufferSectionIndex: 0xffffffff, sendBufferSectionSize: 0 }, { size: 28 })),
    ).toBe("nvsp SEND_RNDIS_PKT(107) len=28 channel_type=1[control] send_buf_section_index=0xffffffff[none] send_buf_section_size=0");
    expect(describeNvsp(encodeNvspMessage({ kind: "send_ndis_config", mtu: 1514, reserved: 0, capability: 0x2cn }))).toBe(
      "nvsp SEND_NDIS_CONFIG(125) len=40 mtu=1514 reserved=0 capability=0x2c[sriov|ieee8021q|teaming]",
    );
    expect(describeNvsp(encodeNvspMessage({ kind: "send_table", table: Array.from({ length: 16 }, (_, i) => i % 2) }))).toBe(
      "nvsp SEND_INDIRECTION_TABLE(134) len=76 count=16 offset=12 table=[0 1 0 1 0 1 0 1 0 1 0 1 0 1 0 1]",
    );
    expect(describeNvsp(encodeNvspMessage({ kind: "subchn_comp", status: 1, numSubchannels: 3 }), { sender: "host" })).toBe(
      "nvsp SUBCHANNEL(133) len=40 status=1[SUCCESS] num_subchannels=3",
    );
  });

  it("puts receive-buffer sections on their own lines (tree) or in braces (line)", () => {
    const bytes = encodeNvspMessage(
      { kind: "send_recv_buf_complete", status: 1, sections: [{ offset: 0, subAllocSize: 1806, numSubAllocs: 9289, endOffset: 1806 * 9289 }] },
      { size: 28 },
    );
    expect(describeNvsp(bytes)).toBe(
      "nvsp SEND_RECV_BUF_COMPLETE(102) len=28 status=1[SUCCESS] num_sections=1\n" +
        "  sections[0] offset=0 sub_alloc_size=1806 num_sub_allocs=9289 end_offset=16775934 (0xfffafe)",
    );
    expect(describeNvsp(bytes, { style: "line" })).toBe(
      "nvsp SEND_RECV_BUF_COMPLETE(102) len=28 status=1[SUCCESS] num_sections=1 { sections[0] offset=0 sub_alloc_size=1806 num_sub_allocs=9289 end_offset=16775934 (0xfffafe) }",
    );
  });

  it("shows invalid messages with the reason and the bytes", () => {
    expect(describeNvsp(bytesOf("05 00 00 00 01 02"))).toBe(
      "nvsp (invalid: NVSP: msg_type=5 is not a known NVSP message type (1, 2, 100..136))\n  bytes[6] 05 00 00 00 01 02",
    );
    expect(describeNvsp(encodeNvspMessage({ kind: "subchn_req", op: 1, numSubchannels: 1 }), { version: 0x40000 })).toMatch(/invalid: .*newer than protocol v4/);
  });
});

describe("describeRndis", () => {
  it("describes a data packet: rndis_packet fields, each PPI, and the frame", () => {
    const bytes = encodeRndisMessage({ kind: "packet", data: ping, ppis: [vlanPpi({ priority: 0, cfi: 0, vlanId: 5 }), hashValuePpi(0x1234)] });
    expect(describeRndis(bytes)).toBe(
      [
        "rndis PACKET(0x1) msg_len=174",
        "  rndis_packet data_offset=68 data_len=98 oob_data_offset=0 oob_data_len=0 num_oob_data_elements=0 per_pkt_info_offset=36 per_pkt_info_len=32 vc_handle=0 reserved=0",
        "  ppi[0] IEEE_8021Q_INFO value=0x00000050 pri=0 cfi=0 vlanid=5",
        "  ppi[1] NBL_HASH_VALUE value=0x00001234",
        "  eth 00:15:5d:00:00:01 > 00:15:5d:00:00:02 type 0x0800[IPv4] len=98: IPv4 10.0.0.1 > 10.0.0.2 ttl=64 id=0 len=84: ICMP echo request id=1 seq=2 len=56",
      ].join("\n"),
    );
  });

  it("reads the checksum PPI by direction", () => {
    const rx = encodeRndisMessage({ kind: "packet", data: ping, ppis: [checksumRxPpi({ ...decodeChecksumRxInfo(0), ipChecksumSucceeded: true })] });
    expect(describeRndis(rx, { direction: "rx" })).toContain("ppi[0] TCPIP_CHKSUM_PKTINFO value=0x00000020 ip_checksum_succeeded");
    expect(describeRndis(rx)).toContain("ppi[0] TCPIP_CHKSUM_PKTINFO value=0x00000020 tcp_header_offset=0");
  });

  it("interprets OID payloads of SETs and of QUERY_CMPLTs when told the OID", () => {
    const filter = encodeRndisMessage({ kind: "set", requestId: 3, oid: OID_GEN_CURRENT_PACKET_FILTER, deviceVcHandle: 0, info: encodeU32Info(13) });
    expect(describeRndis(filter)).toBe(
      "rndis SET(0x5) msg_len=32 req_id=3 oid=0x0001010e[OID_GEN_CURRENT_PACKET_FILTER] info_buflen=4 info_buf_offset=20 dev_vc_handle=0\n" +
        "  packet_filter=0x0000000d[DIRECTED|ALL_MULTICAST|BROADCAST]\n" +
        "  info[4] 0d 00 00 00",
    );
    const answer = encodeRndisMessage({ kind: "query_cmplt", requestId: 3, status: 0, info: encodeU32Info(1500) });
    expect(describeRndis(answer, { style: "line" })).toBe(
      "rndis QUERY_CMPLT(0x80000004) msg_len=28 req_id=3 status=0x00000000[SUCCESS] info_buflen=4 info_buf_offset=16 { info[4] dc 05 00 00 }",
    );
    expect(describeRndis(answer, { style: "line", oid: OID_GEN_MAXIMUM_FRAME_SIZE })).toContain("{ value=1500 (0x5dc); info[4] dc 05 00 00 }");
    const offload = encodeRndisMessage({
      kind: "set",
      requestId: 4,
      oid: OID_TCP_OFFLOAD_PARAMETERS,
      deviceVcHandle: 0,
      info: encodeNdisOffloadParams({ ...emptyNdisOffloadParams(), ipV4Csum: 1, tcpIpV4Csum: 4 }),
    });
    expect(describeRndis(offload)).toContain("ndis_offload_params header={type=0x80[DEFAULT] revision=3 size=28} ipV4Csum=0x1 tcpIpV4Csum=0x4");
    const mac = encodeRndisMessage({
      kind: "set",
      requestId: 5,
      oid: OID_GEN_RNDIS_CONFIG_PARAMETER,
      deviceVcHandle: 0,
      info: encodeRndisConfigParameter(networkAddressConfigParameter(bytesOf("00 15 5d 01 02 03"))),
    });
    expect(describeRndis(mac)).toContain('config_parameter "NetworkAddress"="00155d010203"');
    const badFilter = encodeRndisMessage({ kind: "set", requestId: 6, oid: OID_GEN_CURRENT_PACKET_FILTER, deviceVcHandle: 0, info: bytesOf("01") });
    expect(describeRndis(badFilter)).toContain("(invalid: NDIS: packet filter length=1 is shorter than the 4-byte u32)");
  });

  it("describes status indications and every message of a section", () => {
    expect(describeRndis(encodeRndisMessage({ kind: "indicate_status", status: RNDIS_STATUS_MEDIA_CONNECT, payload: new Uint8Array(0) }))).toBe(
      "rndis INDICATE_STATUS(0x7) msg_len=20 status=0x4001000b[MEDIA_CONNECT] status_buflen=0 status_buf_offset=0",
    );
    const a = encodeRndisMessage({ kind: "keepalive", requestId: 1 });
    const b = encodeRndisMessage({ kind: "halt", requestId: 2 });
    const section = new Uint8Array(24);
    section.set(a);
    section.set(b, 12);
    expect(describeRndis(section, { all: true, style: "line" })).toBe("rndis KEEPALIVE(0x8) msg_len=12 req_id=1 | rndis HALT(0x3) msg_len=12 req_id=2");
    expect(describeRndis(section.subarray(0, 20), { all: true })).toMatch(/^rndis section \(invalid: RNDIS: message\[1\] \(at 12\) msg_len=12 exceeds the 8 bytes available\)/);
  });

  it("shows invalid messages with the reason and the bytes", () => {
    expect(describeRndis(bytesOf("01 00 00 00 c8 00 00 00"))).toBe(
      "rndis (invalid: RNDIS: msg_len=200 (0xc8) exceeds the 8 bytes available)\n  bytes[8] 01 00 00 00 c8 00 00 00",
    );
  });
});

describe("describeEthernetFrame", () => {
  it("summarises ARP, ICMP and tagged UDP frames", () => {
    expect(describeEthernetFrame(buildArpRequestFrame("00:15:5d:00:00:01", "10.0.0.1", "10.0.0.2"))).toBe(
      "eth 00:15:5d:00:00:01 > ff:ff:ff:ff:ff:ff type 0x0806[ARP] len=42: ARP request who-has 10.0.0.2 tell 10.0.0.1",
    );
    const udp = buildUdpFrame({
      srcMac: "00:15:5d:00:00:01",
      dstMac: "00:15:5d:00:00:02",
      srcIp: "10.0.0.1",
      dstIp: "10.0.0.2",
      srcPort: 5000,
      dstPort: 6000,
      payload: new Uint8Array(100),
      vlan: { pcp: 1, dei: 0, vid: 7 },
    });
    expect(describeEthernetFrame(udp)).toBe(
      "eth 00:15:5d:00:00:01 > 00:15:5d:00:00:02 vlan 7 pcp 1 type 0x0800[IPv4] len=146: IPv4 10.0.0.1 > 10.0.0.2 ttl=64 id=0 len=128: UDP 10.0.0.1:5000 > 10.0.0.2:6000 len=100",
    );
    const broken = ping.slice();
    broken[14 + 8] = 1; // TTL changed without fixing the checksum
    expect(describeEthernetFrame(broken)).toMatch(/type 0x0800\[IPv4\] len=98 \(invalid: IPv4: header checksum=/);
    expect(describeEthernetFrame(bytesOf("01 02"))).toBe("eth (invalid: Ethernet: frame length=2 is shorter than the 14-byte header)");
  });
});

describe("descriptions never throw", () => {
  it("on random bytes, with any options", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.constantFrom("tx" as const, "rx" as const), (bytes, all, direction) => {
        expect(typeof describeNvsp(bytes)).toBe("string");
        expect(typeof describeNvsp(bytes, { sender: "host", version: 0x50000, style: "line" })).toBe("string");
        expect(typeof describeRndis(bytes, { all, direction })).toBe("string");
        expect(typeof describeEthernetFrame(bytes)).toBe("string");
      }),
      FUZZ_RUNS,
    );
  });

  it("on random bodies behind valid RNDIS headers", () => {
    const type = fc.constantFrom(1, 4, 5, 7, 0x80000002, 0x80000004);
    fc.assert(
      fc.property(type, fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 0xfc01020f }), (t, body, oid) => {
        const bytes = new Uint8Array(8 + body.length);
        const v = new DataView(bytes.buffer);
        v.setUint32(0, t, true);
        v.setUint32(4, bytes.length, true);
        bytes.set(body, 8);
        expect(typeof describeRndis(bytes, { oid })).toBe("string");
      }),
      FUZZ_RUNS,
    );
  });
});
