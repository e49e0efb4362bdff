/**
 * RNDIS codec (storvsc-netvsc.md §13.1–§13.4, §11): golden bytes written by
 * hand from the spec's offsets for every message type, PACKET with PPI
 * chains of 2–3 records, send-buffer sections with several messages, round
 * trips, every offset/length rule, random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  IEEE_8021Q_INFO,
  LINUX_DEFAULT_PACKET_FILTER,
  NBL_HASH_VALUE,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  RNDIS_MSG_INIT_C,
  RNDIS_MSG_KEEPALIVE_C,
  RNDIS_MSG_PACKET,
  RNDIS_MSG_QUERY,
  RNDIS_PKTINFO_1ST_FRAG,
  RNDIS_PKTINFO_ID,
  RNDIS_PKTINFO_SUBALLOC,
  RNDIS_STATUS_LINK_SPEED_CHANGE,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  RNDIS_STATUS_NOT_SUPPORTED,
  RNDIS_STATUS_SUCCESS,
  TCPIP_CHKSUM_PKTINFO,
  type RndisMessage,
  type RndisPpi,
  checksumRxPpi,
  checksumTxPpi,
  decode8021qInfo,
  decodeChecksumRxInfo,
  decodeChecksumTxInfo,
  decodeLsoV2Info,
  decodePpiChain,
  decodeRndisHeader,
  decodeRndisMessage,
  encode8021qInfo,
  encodeChecksumTxInfo,
  encodeLsoV2Info,
  encodePpiChain,
  encodeRndisMessage,
  encodeRndisMessageInto,
  encodeU32Info,
  findPpi,
  hashInfoPpi,
  hashValuePpi,
  interpretPpi,
  lsoV2Ppi,
  pktinfoIdPpi,
  ppiU32,
  rawPpi,
  rndisMessageType,
  rndisRequestId,
  splitRndisMessages,
  vlanPpi,
} from "../../../drivers/netvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, le32, onlyTypedErrors, patch32, thrown, zeros } from "./helpers.js";

function rndisError(bytes: Uint8Array): unknown {
  return thrown(() => decodeRndisMessage(bytes));
}

describe("RNDIS constants", () => {
  it("has the message type numbers", () => {
    expect(RNDIS_MSG_PACKET).toBe(1);
    expect(RNDIS_MSG_QUERY).toBe(4);
    expect(RNDIS_MSG_INIT_C).toBe(0x80000002);
    expect(RNDIS_MSG_KEEPALIVE_C).toBe(0x80000008);
    expect([RNDIS_STATUS_SUCCESS, RNDIS_STATUS_NOT_SUPPORTED, RNDIS_STATUS_MEDIA_CONNECT, RNDIS_STATUS_MEDIA_DISCONNECT]).toEqual([
      0, 0xc00000bb, 0x4001000b, 0x4001000c,
    ]);
  });
});

// ---------------------------------------------------------------------------
// Golden bytes for every message type

interface Golden {
  readonly name: string;
  readonly msg: RndisMessage;
  readonly hex: string;
}

const GOLDEN: readonly Golden[] = [
  {
    name: "INITIALIZE (Linux: 1.0, max_xfer 0x4000)",
    msg: { kind: "initialize", requestId: 1, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000, messageLength: 24 },
    hex: "02 00 00 00 | 18 00 00 00 | 01 00 00 00 | 01 00 00 00 | 00 00 00 00 | 00 40 00 00",
  },
  {
    name: "INITIALIZE_CMPLT (OV values)",
    msg: {
      kind: "initialize_cmplt",
      requestId: 1,
      status: 0,
      majorVersion: 1,
      minorVersion: 0,
      deviceFlags: 1,
      medium: 0,
      maxPacketsPerMessage: 8,
      maxTransferSize: 0xefffffff,
      packetAlignmentFactor: 3,
      afListOffset: 0,
      afListSize: 0,
      messageLength: 52,
    },
    hex:
      "02 00 00 80 | 34 00 00 00 | 01 00 00 00 | 00 00 00 00 | 01 00 00 00 | 00 00 00 00 | 01 00 00 00 | 00 00 00 00 | " +
      "08 00 00 00 | ff ff ff ef | 03 00 00 00 | 00 00 00 00 | 00 00 00 00",
  },
  {
    name: "HALT",
    msg: { kind: "halt", requestId: 9, messageLength: 12 },
    hex: "03 00 00 00 | 0c 00 00 00 | 09 00 00 00",
  },
  {
    name: "QUERY OID_GEN_MAXIMUM_FRAME_SIZE (Linux: offset 20, no input)",
    msg: { kind: "query", requestId: 2, oid: OID_GEN_MAXIMUM_FRAME_SIZE, deviceVcHandle: 0, info: new Uint8Array(0), infoBufferOffset: 20, messageLength: 28 },
    hex: "04 00 00 00 | 1c 00 00 00 | 02 00 00 00 | 06 01 01 00 | 00 00 00 00 | 14 00 00 00 | 00 00 00 00",
  },
  {
    name: "QUERY_CMPLT with a u32 (OV: offset 16)",
    msg: { kind: "query_cmplt", requestId: 2, status: 0, info: bytesOf("dc 05 00 00"), infoBufferOffset: 16, messageLength: 28 },
    hex: "04 00 00 80 | 1c 00 00 00 | 02 00 00 00 | 00 00 00 00 | 04 00 00 00 | 10 00 00 00 | dc 05 00 00",
  },
  {
    name: "SET OID_GEN_CURRENT_PACKET_FILTER 0x0d",
    msg: {
      kind: "set",
      requestId: 3,
      oid: OID_GEN_CURRENT_PACKET_FILTER,
      deviceVcHandle: 0,
      info: encodeU32Info(LINUX_DEFAULT_PACKET_FILTER),
      infoBufferOffset: 20,
      messageLength: 32,
    },
    hex: "05 00 00 00 | 20 00 00 00 | 03 00 00 00 | 0e 01 01 00 | 04 00 00 00 | 14 00 00 00 | 00 00 00 00 | 0d 00 00 00",
  },
  {
    name: "SET_CMPLT",
    msg: { kind: "set_cmplt", requestId: 3, status: 0, messageLength: 16 },
    hex: "05 00 00 80 | 10 00 00 00 | 03 00 00 00 | 00 00 00 00",
  },
  {
    name: "RESET",
    msg: { kind: "reset", reserved: 0, messageLength: 12 },
    hex: "06 00 00 00 | 0c 00 00 00 | 00 00 00 00",
  },
  {
    name: "RESET_CMPLT (no request id)",
    msg: { kind: "reset_cmplt", status: 0, addressingReset: 1, messageLength: 16 },
    hex: "06 00 00 80 | 10 00 00 00 | 00 00 00 00 | 01 00 00 00",
  },
  {
    name: "INDICATE_STATUS MEDIA_CONNECT (OV: no payload, offset 0)",
    msg: { kind: "indicate_status", status: RNDIS_STATUS_MEDIA_CONNECT, payload: new Uint8Array(0), statusBufferOffset: 0, messageLength: 20 },
    hex: "07 00 00 00 | 14 00 00 00 | 0b 00 01 40 | 00 00 00 00 | 00 00 00 00",
  },
  {
    name: "INDICATE_STATUS LINK_SPEED_CHANGE 10 Gbps (u32 in 100 bps)",
    msg: { kind: "indicate_status", status: RNDIS_STATUS_LINK_SPEED_CHANGE, payload: encodeU32Info(100_000_000), statusBufferOffset: 12, messageLength: 24 },
    hex: "07 00 00 00 | 18 00 00 00 | 13 00 01 40 | 04 00 00 00 | 0c 00 00 00 | 00 e1 f5 05",
  },
  {
    name: "KEEPALIVE",
    msg: { kind: "keepalive", requestId: 5, messageLength: 12 },
    hex: "08 00 00 00 | 0c 00 00 00 | 05 00 00 00",
  },
  {
    name: "KEEPALIVE_CMPLT",
    msg: { kind: "keepalive_cmplt", requestId: 5, status: 0, messageLength: 16 },
    hex: "08 00 00 80 | 10 00 00 00 | 05 00 00 00 | 00 00 00 00",
  },
  {
    name: "SET_EX",
    msg: { kind: "set_ex", requestId: 4, oid: 0x10203, deviceVcHandle: 0, info: new Uint8Array(0), infoBufferOffset: 20, messageLength: 28 },
    hex: "09 00 00 00 | 1c 00 00 00 | 04 00 00 00 | 03 02 01 00 | 00 00 00 00 | 14 00 00 00 | 00 00 00 00",
  },
  {
    name: "SET_EX_CMPLT",
    msg: { kind: "set_ex_cmplt", requestId: 4, status: RNDIS_STATUS_NOT_SUPPORTED, info: new Uint8Array(0), infoBufferOffset: 16, messageLength: 24 },
    hex: "09 00 00 80 | 18 00 00 00 | 04 00 00 00 | bb 00 00 c0 | 00 00 00 00 | 10 00 00 00",
  },
  {
    name: "PACKET without PPIs (Linux: per_pkt_info_offset 36, len 0)",
    msg: {
      kind: "packet",
      data: bytesOf("aa bb cc dd"),
      ppis: [],
      dataOffset: 36,
      perPacketInfoOffset: 36,
      oobDataOffset: 0,
      oobDataLength: 0,
      numOobDataElements: 0,
      vcHandle: 0,
      reserved: 0,
      messageLength: 48,
    },
    hex: "01 00 00 00 | 30 00 00 00 | 24 00 00 00 | 04 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00 | 24 00 00 00 | 00 00 00 00 | 00 00 00 00 | 00 00 00 00 | aa bb cc dd",
  },
];

describe("RNDIS golden bytes", () => {
  for (const g of GOLDEN) {
    it(`encodes and decodes ${g.name}`, () => {
      expect(hexOf(encodeRndisMessage(g.msg))).toBe(hexOf(bytesOf(g.hex)));
      expect(decodeRndisMessage(bytesOf(g.hex))).toEqual(g.msg);
    });
  }

  it("covers every message kind", () => {
    expect(new Set(GOLDEN.map((g) => g.msg.kind)).size).toBe(15);
  });

  it("PACKET with a VLAN and a checksum PPI, Linux TX layout (PPIs at 36, data right after)", () => {
    const frame = bytesOf("01 02 03 04 05 06");
    const msg: RndisMessage = {
      kind: "packet",
      data: frame,
      ppis: [vlanPpi({ priority: 3, cfi: 0, vlanId: 100 }), checksumTxPpi({ isIpv4: true, isIpv6: false, tcpChecksum: true, udpChecksum: false, ipHeaderChecksum: false, tcpHeaderOffset: 34 })],
    };
    // vlan: pri 3 | vid 100 << 4 = 0x643; csum: is_ipv4 | tcp_checksum | 34 << 16 = 0x00220005
    const hex =
      `01 00 00 00 | ${le32(44 + 32 + 6)} | ${le32(36 + 32)} | 06 00 00 00 | ${zeros(12)} | 24 00 00 00 | 20 00 00 00 | ${zeros(8)} | ` +
      `10 00 00 00 | 06 00 00 00 | 0c 00 00 00 | 43 06 00 00 | ` +
      `10 00 00 00 | 00 00 00 00 | 0c 00 00 00 | 05 00 22 00 | 01 02 03 04 05 06`;
    const bytes = encodeRndisMessage(msg);
    expect(hexOf(bytes)).toBe(hexOf(bytesOf(hex)));
    const back = decodeRndisMessage(bytes);
    expect(back).toMatchObject({ kind: "packet", data: frame, dataOffset: 68, perPacketInfoOffset: 36, messageLength: 82 });
    expect(back.kind === "packet" && back.ppis).toEqual(msg.ppis);
  });

  it("PACKET in OV's RX layout: frame at sub-allocation offset 256, msg_len = sub-allocation size", () => {
    const frame = new Uint8Array(60).map((_, i) => i);
    const msg: RndisMessage = {
      kind: "packet",
      data: frame,
      ppis: [checksumRxPpi({ ...decodeChecksumRxInfo(0), ipChecksumSucceeded: true, udpChecksumSucceeded: true }), vlanPpi({ priority: 0, cfi: 0, vlanId: 5 })],
      dataOffset: 248,
      messageLength: 1806,
    };
    const bytes = encodeRndisMessage(msg);
    expect(bytes.length).toBe(1806);
    expect(hexOf(bytes.subarray(0, 8))).toBe("01 00 00 00 0e 07 00 00");
    expect(hexOf(bytes.subarray(8, 12))).toBe("f8 00 00 00");
    expect(hexOf(bytes.subarray(256, 260))).toBe("00 01 02 03");
    // checksum RX value: ip_ok (bit 5) | udp_ok (bit 4) = 0x30
    expect(hexOf(bytes.subarray(44, 60))).toBe("10 00 00 00 00 00 00 00 0c 00 00 00 30 00 00 00");
    const back = decodeRndisMessage(bytes);
    expect(back.kind === "packet" && back.data).toEqual(frame);
    expect(back.kind === "packet" && interpretPpi(back.ppis[0] as RndisPpi, "rx")).toMatchObject({ kind: "checksum-rx", value: 0x30 });
  });
});

// ---------------------------------------------------------------------------
// PPIs

describe("RNDIS per-packet info", () => {
  it("lays out the checksum, VLAN and LSOv2 bitfields LSB first", () => {
    expect(encodeChecksumTxInfo({ isIpv4: false, isIpv6: true, tcpChecksum: false, udpChecksum: true, ipHeaderChecksum: true, tcpHeaderOffset: 0x3ff })).toBe(0x03ff001a);
    expect(decodeChecksumTxInfo(0x00220005)).toEqual({ isIpv4: true, isIpv6: false, tcpChecksum: true, udpChecksum: false, ipHeaderChecksum: false, tcpHeaderOffset: 34 });
    expect(decodeChecksumRxInfo(0x1ff)).toEqual({
      tcpChecksumFailed: true,
      udpChecksumFailed: true,
      ipChecksumFailed: true,
      tcpChecksumSucceeded: true,
      udpChecksumSucceeded: true,
      ipChecksumSucceeded: true,
      loopback: true,
      tcpChecksumValueInvalid: true,
      ipChecksumValueInvalid: true,
    });
    expect(encode8021qInfo({ priority: 7, cfi: 1, vlanId: 0xfff })).toBe(0xffff);
    expect(decode8021qInfo(0xabcd0643)).toEqual({ priority: 3, cfi: 0, vlanId: 100 });
    // mss 1460 | tcp header offset 34 << 20 | type 1 << 30 | IPv6 << 31
    expect(encodeLsoV2Info({ mss: 1460, tcpHeaderOffset: 34, type: 1, ipVersion: 1 })).toBe((1460 | (34 << 20) | (1 << 30) | (1 << 31)) >>> 0);
    expect(decodeLsoV2Info(0xc22005b4)).toEqual({ mss: 1460, tcpHeaderOffset: 34, type: 1, ipVersion: 1 });
    expect(thrown(() => encode8021qInfo({ priority: 8, cfi: 0, vlanId: 0 }))).toBeInstanceOf(InvalidArgumentError);
  });

  it("parses a chain of three records: checksum, VLAN, hash value", () => {
    const chain = bytesOf(
      "10 00 00 00 | 00 00 00 00 | 0c 00 00 00 | 30 00 00 00 | " +
        "10 00 00 00 | 06 00 00 00 | 0c 00 00 00 | 05 00 00 00 | " +
        "10 00 00 00 | 08 00 00 00 | 0c 00 00 00 | 78 56 34 12",
    );
    const ppis = decodePpiChain(chain);
    expect(ppis.map((p) => [p.type, p.internal, hexOf(p.data)])).toEqual([
      [TCPIP_CHKSUM_PKTINFO, false, "30 00 00 00"],
      [IEEE_8021Q_INFO, false, "05 00 00 00"],
      [NBL_HASH_VALUE, false, "78 56 34 12"],
    ]);
    expect(ppiU32(findPpi(ppis, NBL_HASH_VALUE) as RndisPpi)).toBe(0x12345678);
    expect(findPpi(ppis, IEEE_8021Q_INFO, true)).toBeUndefined();
    expect(hexOf(encodePpiChain(ppis))).toBe(hexOf(chain));
  });

  it("parses a chain of two records with a padded payload offset and an internal PKTINFO_ID", () => {
    const chain = bytesOf(
      "14 00 00 00 | 06 00 00 00 | 10 00 00 00 | ff ff ff ff | 64 00 00 00 | " + // ppi_offset 16: 4 bytes of padding skipped
        "10 00 00 00 | 01 00 00 80 | 0c 00 00 00 | 01 03 34 12",
    );
    const ppis = decodePpiChain(chain);
    expect(ppis).toHaveLength(2);
    expect(interpretPpi(ppis[0] as RndisPpi, "rx")).toMatchObject({ kind: "vlan", info: { vlanId: 6, priority: 4 } });
    expect(interpretPpi(ppis[1] as RndisPpi, "rx")).toEqual({
      kind: "pktinfo-id",
      info: { version: 1, flags: RNDIS_PKTINFO_SUBALLOC | RNDIS_PKTINFO_1ST_FRAG, pktId: 0x1234 },
    });
    expect(findPpi(ppis, RNDIS_PKTINFO_ID, true)).toEqual(pktinfoIdPpi({ version: 1, flags: 3, pktId: 0x1234 }));
  });

  it("interprets every builder's record", () => {
    expect(interpretPpi(hashValuePpi(7), "tx")).toEqual({ kind: "hash-value", value: 7 });
    expect(interpretPpi(hashInfoPpi(0x201), "rx")).toEqual({ kind: "hash-info", value: 0x201 });
    expect(interpretPpi(lsoV2Ppi({ mss: 1448, tcpHeaderOffset: 34, type: 1, ipVersion: 0 }), "tx")).toMatchObject({ kind: "lso-v2", info: { mss: 1448 } });
    expect(interpretPpi(rawPpi(11, bytesOf("01")), "tx")).toMatchObject({ kind: "other", type: 11 });
    expect(thrown(() => interpretPpi(rawPpi(TCPIP_CHKSUM_PKTINFO, bytesOf("01 02")), "tx"))).toBeInstanceOf(ProtocolError);
  });

  it("rejects records that overrun the chain or misplace their payload", () => {
    const rec = (size: number, offset: number): string => `${le32(size)} 00 00 00 00 ${le32(offset)} 00 00 00 00`;
    expectTypedError(thrown(() => decodePpiChain(bytesOf(rec(20, 12)))), ProtocolError, { field: "per_pkt_info[0] (at 0).size", value: 20 });
    expectTypedError(thrown(() => decodePpiChain(bytesOf(rec(8, 12)))), ProtocolError, { field: "per_pkt_info[0] (at 0).size", value: 8 });
    expectTypedError(thrown(() => decodePpiChain(bytesOf(rec(16, 16)))), ProtocolError, { field: "per_pkt_info[0] (at 0).ppi_offset", value: 16 });
    expectTypedError(thrown(() => decodePpiChain(bytesOf(rec(16, 4)))), ProtocolError, { field: "per_pkt_info[0] (at 0).ppi_offset", value: 4 });
    expectTypedError(thrown(() => decodePpiChain(bytesOf(`${rec(16, 12)} 01 02 03 04`), 36)), ProtocolError, {
      field: "per_pkt_info[1] (at 52) header",
      value: 4,
    });
  });
});

// ---------------------------------------------------------------------------
// Validation of messages

const PACKET = GOLDEN.find((g) => g.msg.kind === "packet") as Golden;
const QUERY_C = GOLDEN.find((g) => g.msg.kind === "query_cmplt") as Golden;

function vlanPacket(): Uint8Array {
  return encodeRndisMessage({ kind: "packet", data: bytesOf("aa bb cc dd"), ppis: [vlanPpi({ priority: 0, cfi: 0, vlanId: 1 })] });
}

describe("RNDIS validation", () => {
  it("checks the header against the buffer", () => {
    expectTypedError(rndisError(bytesOf("01 00 00 00 2c")), ProtocolError, { protocol: "RNDIS", field: "buffer length", value: 5 });
    expectTypedError(rndisError(patch32(bytesOf(PACKET.hex), 4, 4)), ProtocolError, { field: "msg_len", value: 4 });
    expectTypedError(rndisError(patch32(bytesOf(PACKET.hex), 4, 49)), ProtocolError, { field: "msg_len", value: 49, limit: "exceeds the 48 bytes available" });
    expectTypedError(rndisError(patch32(bytesOf(PACKET.hex), 0, 0x1234)), ProtocolError, { field: "ndis_msg_type", value: 0x1234 });
    expectTypedError(rndisError(patch32(bytesOf("01 00 00 00 28 00 00 00"), 4, 8)), ProtocolError, { field: "PACKET msg_len", value: 8 });
    expectTypedError(rndisError(bytesOf("02 00 00 80 | 10 00 00 00 | 01 00 00 00 | 00 00 00 00")), ProtocolError, { field: "INITIALIZE_CMPLT msg_len", value: 16 });
  });

  it("ignores bytes after msg_len (a receive range is a whole sub-allocation)", () => {
    const withTail = new Uint8Array(200).fill(0x5a);
    withTail.set(bytesOf(PACKET.hex));
    expect(decodeRndisMessage(withTail)).toEqual(PACKET.msg);
  });

  it("rejects a data offset inside the header or outside the message", () => {
    const p = bytesOf(PACKET.hex);
    expectTypedError(rndisError(patch32(p, 8, 35)), ProtocolError, { field: "rndis_packet.data_offset", value: 35 });
    expectTypedError(rndisError(patch32(p, 8, 41)), ProtocolError, { field: "rndis_packet.data_offset", value: 41 });
    expectTypedError(rndisError(patch32(p, 8, 0xfffffffc)), ProtocolError, { field: "rndis_packet.data_offset" });
  });

  it("rejects a data length beyond the message", () => {
    const p = bytesOf(PACKET.hex);
    expectTypedError(rndisError(patch32(p, 12, 5)), ProtocolError, { field: "rndis_packet.data_len", value: 5 });
    expectTypedError(rndisError(patch32(p, 12, 0xffffffff)), ProtocolError, { field: "rndis_packet.data_len", value: 0xffffffff });
    expect(decodeRndisMessage(patch32(p, 12, 0))).toMatchObject({ kind: "packet", data: new Uint8Array(0) });
  });

  it("rejects an OOB area outside the message", () => {
    const p = bytesOf(PACKET.hex);
    expectTypedError(rndisError(patch32(patch32(p, 16, 36), 20, 8)), ProtocolError, { field: "rndis_packet.oob_data_len", value: 8 });
  });

  it("rejects a per-packet info area inside the header, past the message, or over the frame", () => {
    const p = vlanPacket(); // PPI at 36 (16 bytes), data at 52 (4 bytes), msg_len 64
    expect(decodeRndisMessage(p)).toMatchObject({ kind: "packet", dataOffset: 52 });
    expectTypedError(rndisError(patch32(p, 28, 20)), ProtocolError, { field: "rndis_packet.per_pkt_info_offset", value: 20 });
    expectTypedError(rndisError(patch32(p, 28, 57)), ProtocolError, { field: "rndis_packet.per_pkt_info_offset", value: 57 });
    expectTypedError(rndisError(patch32(p, 32, 24)), ProtocolError, { field: "rndis_packet.per_pkt_info_len", value: 24 });
    expectTypedError(rndisError(patch32(p, 32, 20)), ProtocolError, { field: "rndis_packet.per_pkt_info_len", value: 20 });
  });

  it("rejects a PPI chain that does not walk cleanly", () => {
    const p = vlanPacket();
    expectTypedError(rndisError(patch32(p, 44, 17)), ProtocolError, { field: "per_pkt_info[0] (at 36).size", value: 17 });
    expectTypedError(rndisError(patch32(p, 44, 0)), ProtocolError, { field: "per_pkt_info[0] (at 36).size", value: 0 });
    expectTypedError(rndisError(patch32(p, 52, 16)), ProtocolError, { field: "per_pkt_info[0] (at 36).ppi_offset", value: 16 });
  });

  it("rejects information buffers outside the message or inside the body", () => {
    const q = bytesOf(QUERY_C.hex);
    expectTypedError(rndisError(patch32(q, 20, 12)), ProtocolError, { field: "rndis_query_complete.info_buf_offset", value: 12 });
    expectTypedError(rndisError(patch32(q, 20, 17)), ProtocolError, { field: "rndis_query_complete.info_buflen", value: 4 });
    expectTypedError(rndisError(patch32(q, 16, 0x10000)), ProtocolError, { field: "rndis_query_complete.info_buflen", value: 0x10000 });
    const set = bytesOf(GOLDEN.find((g) => g.msg.kind === "set")?.hex ?? "");
    expectTypedError(rndisError(patch32(set, 20, 16)), ProtocolError, { field: "rndis_set_request.info_buf_offset", value: 16 });
    expectTypedError(rndisError(patch32(set, 16, 8)), ProtocolError, { field: "rndis_set_request.info_buflen", value: 8 });
    const ind = bytesOf(GOLDEN.find((g) => g.name.includes("LINK_SPEED"))?.hex ?? "");
    expectTypedError(rndisError(patch32(ind, 16, 8)), ProtocolError, { field: "rndis_indicate_status.status_buf_offset", value: 8 });
    expectTypedError(rndisError(patch32(ind, 12, 5)), ProtocolError, { field: "rndis_indicate_status.status_buflen", value: 5 });
    const init = bytesOf(GOLDEN.find((g) => g.msg.kind === "initialize_cmplt")?.hex ?? "");
    expectTypedError(rndisError(patch32(patch32(init, 44, 44), 48, 12)), ProtocolError, { field: "rndis_initialize_complete.af_list_size", value: 12 });
  });

  it("accepts an empty buffer at any offset (Linux sends offset 20, length 0)", () => {
    const q = patch32(bytesOf(GOLDEN.find((g) => g.msg.kind === "query")?.hex ?? ""), 20, 0xdeadbeef);
    expect(decodeRndisMessage(q)).toMatchObject({ kind: "query", info: new Uint8Array(0), infoBufferOffset: 0xdeadbeef });
  });
});

describe("RNDIS encoder argument checks", () => {
  it("refuses layouts that would overwrite its own fields", () => {
    const data = bytesOf("01");
    expectTypedError(thrown(() => encodeRndisMessage({ kind: "packet", data, ppis: [], dataOffset: 20 })), InvalidArgumentError, { field: "dataOffset", value: 20 });
    expectTypedError(thrown(() => encodeRndisMessage({ kind: "packet", data, ppis: [hashValuePpi(1)], dataOffset: 40 })), InvalidArgumentError, {
      field: "dataOffset",
      value: 40,
    });
    expectTypedError(thrown(() => encodeRndisMessage({ kind: "query", requestId: 1, oid: 1, deviceVcHandle: 0, info: data, infoBufferOffset: 4 })), InvalidArgumentError, {
      field: "infoBufferOffset",
    });
    expectTypedError(thrown(() => encodeRndisMessage({ kind: "halt", requestId: 1, messageLength: 8 })), InvalidArgumentError, { field: "messageLength", value: 8 });
    expectTypedError(thrown(() => encodeRndisMessage({ kind: "halt", requestId: -1 })), InvalidArgumentError, { field: "requestId" });
    expect(thrown(() => encodeRndisMessageInto({ kind: "halt", requestId: 1 }, new Uint8Array(11)))).toBeInstanceOf(InvalidArgumentError);
  });

  it("knows request ids and types", () => {
    for (const g of GOLDEN) {
      expect(rndisMessageType(g.msg)).toBe(new DataView(bytesOf(g.hex).buffer).getUint32(0, true));
      const id = rndisRequestId(g.msg);
      if (g.msg.kind === "reset" || g.msg.kind === "reset_cmplt" || g.msg.kind === "indicate_status" || g.msg.kind === "packet") expect(id).toBeNull();
      else expect(id).not.toBeNull();
    }
  });
});

// ---------------------------------------------------------------------------
// Send-buffer sections with several messages (§11.1)

describe("splitRndisMessages", () => {
  it("splits a batched section by msg_len (each padded to 8 by Linux)", () => {
    const a = encodeRndisMessage({ kind: "packet", data: new Uint8Array(60).fill(1), ppis: [], messageLength: 104 }); // 44 + 60 = 104
    const b = encodeRndisMessage({ kind: "packet", data: new Uint8Array(61).fill(2), ppis: [hashValuePpi(9)], messageLength: 128 }); // 44+16+61 = 121 → 128
    const c = encodeRndisMessage({ kind: "packet", data: new Uint8Array(14).fill(3), ppis: [] });
    const section = new Uint8Array(a.length + b.length + c.length);
    section.set(a);
    section.set(b, a.length);
    section.set(c, a.length + b.length);
    const parts = splitRndisMessages(section);
    expect(parts.map((p) => p.length)).toEqual([104, 128, 58]);
    const decoded = parts.map((p) => decodeRndisMessage(p));
    expect(decoded.map((m) => (m.kind === "packet" ? [m.data.length, m.data[0], m.ppis.length] : null))).toEqual([
      [60, 1, 0],
      [61, 2, 1],
      [14, 3, 0],
    ]);
  });

  it("names the message that breaks the walk", () => {
    const a = encodeRndisMessage({ kind: "keepalive", requestId: 1 });
    const tail = new Uint8Array(a.length + 4);
    tail.set(a);
    expectTypedError(thrown(() => splitRndisMessages(tail)), ProtocolError, { field: "message[1] (at 12) buffer length", value: 4 });
    const zeroLen = new Uint8Array(a.length + 8);
    zeroLen.set(a);
    expectTypedError(thrown(() => splitRndisMessages(zeroLen)), ProtocolError, { field: "message[1] (at 12) msg_len", value: 0 });
    expect(decodeRndisHeader(a)).toEqual({ msgType: 8, msgLen: 12 });
  });
});

// ---------------------------------------------------------------------------
// Round trips and fuzzing

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const smallBytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });
const ppi: fc.Arbitrary<RndisPpi> = fc.oneof(
  fc.record({ type: fc.integer({ min: 0, max: 0x7fffffff }), internal: fc.boolean(), data: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
  u32.map(hashValuePpi),
  fc.record({ priority: fc.integer({ min: 0, max: 7 }), cfi: fc.integer({ min: 0, max: 1 }), vlanId: fc.integer({ min: 0, max: 4095 }) }).map(vlanPpi),
);

const message: fc.Arbitrary<RndisMessage> = fc.oneof(
  fc.record({ kind: fc.constant("packet" as const), data: smallBytes(200), ppis: fc.array(ppi, { maxLength: 3 }) }),
  fc.record({ kind: fc.constant("initialize" as const), requestId: u32, majorVersion: u32, minorVersion: u32, maxTransferSize: u32 }),
  fc.record({
    kind: fc.constant("initialize_cmplt" as const),
    requestId: u32,
    status: u32,
    majorVersion: u32,
    minorVersion: u32,
    deviceFlags: u32,
    medium: u32,
    maxPacketsPerMessage: u32,
    maxTransferSize: u32,
    packetAlignmentFactor: u32,
    afListOffset: u32,
    afListSize: fc.constant(0),
  }),
  fc.record({ kind: fc.constantFrom("halt" as const, "keepalive" as const), requestId: u32 }),
  fc.record({ kind: fc.constantFrom("query" as const, "set" as const, "set_ex" as const), requestId: u32, oid: u32, deviceVcHandle: u32, info: smallBytes(64) }),
  fc.record({ kind: fc.constantFrom("query_cmplt" as const, "set_ex_cmplt" as const), requestId: u32, status: u32, info: smallBytes(64) }),
  fc.record({ kind: fc.constantFrom("set_cmplt" as const, "keepalive_cmplt" as const), requestId: u32, status: u32 }),
  fc.record({ kind: fc.constant("reset" as const), reserved: u32 }),
  fc.record({ kind: fc.constant("reset_cmplt" as const), status: u32, addressingReset: u32 }),
  fc.record({ kind: fc.constant("indicate_status" as const), status: u32, payload: smallBytes(32) }),
);

describe("RNDIS round trips", () => {
  it("decode(encode(m)) carries every field of m; re-encoding gives the same bytes", () => {
    fc.assert(
      fc.property(message, fc.integer({ min: 0, max: 16 }), (m, pad) => {
        const bytes = encodeRndisMessage(m);
        const decoded = decodeRndisMessage(bytes);
        expect(decoded).toMatchObject(m);
        expect(decoded.messageLength).toBe(bytes.length);
        expect(hexOf(encodeRndisMessage(decoded))).toBe(hexOf(bytes));
        const padded = encodeRndisMessage({ ...m, messageLength: bytes.length + pad });
        expect(decodeRndisMessage(padded)).toMatchObject(m);
      }),
      FC_RUNS,
    );
  });

  it("packets placed at any data offset round-trip", () => {
    fc.assert(
      fc.property(smallBytes(100), fc.array(ppi, { maxLength: 3 }), fc.integer({ min: 0, max: 300 }), (data, ppis, gap) => {
        const chain = ppis.reduce((n, p) => n + 12 + p.data.length, 0);
        const m: RndisMessage = { kind: "packet", data, ppis, dataOffset: 36 + chain + gap };
        expect(decodeRndisMessage(encodeRndisMessage(m))).toMatchObject(m);
      }),
      FC_RUNS,
    );
  });
});

describe("RNDIS fuzzing", () => {
  const knownType = fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80000002, 0x80000004, 0x80000005, 0x80000006, 0x80000008, 0x80000009);

  it("random bytes only ever raise typed errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 160 }), (bytes) => {
        onlyTypedErrors(() => decodeRndisMessage(bytes));
        onlyTypedErrors(() => splitRndisMessages(bytes));
        onlyTypedErrors(() => decodePpiChain(bytes));
      }),
      FUZZ_RUNS,
    );
  });

  it("random bodies behind a valid header only ever raise typed errors", () => {
    fc.assert(
      fc.property(knownType, fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 40 }), (type, body, slack) => {
        const bytes = new Uint8Array(8 + body.length + slack);
        const v = new DataView(bytes.buffer);
        v.setUint32(0, type, true);
        v.setUint32(4, 8 + body.length, true);
        bytes.set(body, 8);
        onlyTypedErrors(() => decodeRndisMessage(bytes));
      }),
      FUZZ_RUNS,
    );
  });

  it("mutated valid packets only ever raise typed errors", () => {
    const base = encodeRndisMessage({
      kind: "packet",
      data: new Uint8Array(40).fill(7),
      ppis: [vlanPpi({ priority: 1, cfi: 0, vlanId: 2 }), hashValuePpi(3), checksumTxPpi(decodeChecksumTxInfo(0x00220005))],
    });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 4 }), u32, (at, value) => {
        onlyTypedErrors(() => decodeRndisMessage(patch32(base, at, value)));
      }),
      FUZZ_RUNS,
    );
  });
});
