/**
 * NVSP codec (storvsc-netvsc.md §9–§12): golden bytes written by hand from
 * the spec's offset table, one per message kind; round trips; every
 * validation rule; random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError, VmbusSimError } from "../../../core/index.js";
import {
  LINUX_NVSP_VERSION_ORDER,
  NETVSC_INVALID_INDEX,
  NETVSC_RECEIVE_BUFFER_ID,
  NVSP_MESSAGE_SIZE,
  NVSP_MSG1_TYPE_MAX,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_MSG2_MAX,
  NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF,
  NVSP_MSG2_TYPE_SEND_NDIS_CONFIG,
  NVSP_MSG4_MAX,
  NVSP_MSG5_MAX,
  NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE,
  NVSP_MSG5_TYPE_SUBCHANNEL,
  NVSP_MSG6_MAX,
  NVSP_MSG_TYPE_INIT,
  NVSP_MSG_TYPE_INIT_COMPLETE,
  NVSP_PACKET_SIZE_V1,
  NVSP_PACKET_SIZE_V61,
  NVSP_PROTOCOL_VERSION_1,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_4,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_PROTOCOL_VERSION_61,
  NVSP_STAT_FAIL,
  NVSP_STAT_NAMES,
  NVSP_STAT_PROTOCOL_UNSUPPORTED,
  NVSP_STAT_SUCCESS,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  RNDIS_STATUS_NOT_SUPPORTED,
  type NvspMessage,
  checkLinuxRecvBufComplete,
  checkLinuxSendBufComplete,
  decodeNvspMessage,
  encodeNvspMessage,
  encodeNvspMessageInto,
  formatNvspVersion,
  linuxNdisConfigCapabilities,
  linuxNdisVersion,
  nvspHostMessageSize,
  nvspMaxMessageType,
  nvspMessageType,
  nvspMinimumMessageSize,
  peekNvspMessageType,
} from "../../../drivers/netvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, le32, onlyTypedErrors, patch32, thrown, zeros } from "./helpers.js";

describe("NVSP constants", () => {
  it("has the message type numbers of hyperv_net.h", () => {
    expect([NVSP_MSG_TYPE_INIT, NVSP_MSG_TYPE_INIT_COMPLETE]).toEqual([1, 2]);
    expect(NVSP_MSG1_TYPE_SEND_RNDIS_PKT).toBe(107);
    expect(NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE).toBe(108);
    expect(NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF).toBe(109);
    expect(NVSP_MSG2_TYPE_SEND_NDIS_CONFIG).toBe(125);
    expect(NVSP_MSG5_TYPE_SUBCHANNEL).toBe(133);
    expect(NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE).toBe(134);
    expect([NVSP_MSG1_TYPE_MAX, NVSP_MSG2_MAX, NVSP_MSG4_MAX, NVSP_MSG5_MAX, NVSP_MSG6_MAX]).toEqual([108, 127, 130, 134, 136]);
  });

  it("has the versions and Linux's negotiation order", () => {
    expect([NVSP_PROTOCOL_VERSION_1, NVSP_PROTOCOL_VERSION_2, NVSP_PROTOCOL_VERSION_4]).toEqual([0x2, 0x30002, 0x40000]);
    expect([NVSP_PROTOCOL_VERSION_5, NVSP_PROTOCOL_VERSION_6, NVSP_PROTOCOL_VERSION_61]).toEqual([0x50000, 0x60000, 0x60001]);
    expect(LINUX_NVSP_VERSION_ORDER).toEqual([0x60001, 0x60000, 0x50000, 0x40000, 0x30002, 0x2]);
    expect(LINUX_NVSP_VERSION_ORDER.map(formatNvspVersion)).toEqual(["v6.1", "v6", "v5", "v4", "v2", "v1"]);
  });

  it("has the status codes", () => {
    expect([...NVSP_STAT_NAMES.entries()]).toEqual([
      [0, "NONE"],
      [1, "SUCCESS"],
      [2, "FAIL"],
      [3, "PROTOCOL_TOO_NEW"],
      [4, "PROTOCOL_TOO_OLD"],
      [5, "INVALID_RNDIS_PKT"],
      [6, "BUSY"],
      [7, "PROTOCOL_UNSUPPORTED"],
    ]);
  });

  it("knows the sizes each side sends and the highest type per version", () => {
    expect(NVSP_MESSAGE_SIZE).toBe(40);
    expect(nvspHostMessageSize(NVSP_PROTOCOL_VERSION_5)).toBe(NVSP_PACKET_SIZE_V1);
    expect(nvspHostMessageSize(NVSP_PROTOCOL_VERSION_6)).toBe(28);
    expect(nvspHostMessageSize(NVSP_PROTOCOL_VERSION_61)).toBe(NVSP_PACKET_SIZE_V61);
    expect(LINUX_NVSP_VERSION_ORDER.map(nvspMaxMessageType)).toEqual([136, 136, 134, 130, 127, 108]);
  });

  it("derives Linux's NDIS version and NDIS-config capabilities", () => {
    expect(linuxNdisVersion(NVSP_PROTOCOL_VERSION_4)).toEqual({ major: 6, minor: 1 });
    expect(linuxNdisVersion(NVSP_PROTOCOL_VERSION_5)).toEqual({ major: 6, minor: 30 });
    expect(linuxNdisConfigCapabilities(NVSP_PROTOCOL_VERSION_2)).toBe(0x8n);
    expect(linuxNdisConfigCapabilities(NVSP_PROTOCOL_VERSION_5)).toBe(0x2cn);
    expect(linuxNdisConfigCapabilities(NVSP_PROTOCOL_VERSION_61)).toBe(0xacn);
  });
});

// ---------------------------------------------------------------------------
// Golden bytes: one per message kind

interface Golden {
  readonly name: string;
  readonly msg: NvspMessage;
  readonly hex: string;
  readonly size?: number;
  readonly sender?: "guest" | "host";
}

const OV_SEND_TABLE = Array.from({ length: 16 }, (_, i) => i % 4);

const GOLDEN: readonly Golden[] = [
  {
    name: "INIT v6.1 (Linux: min = max, 40 bytes)",
    msg: { kind: "init", minProtocolVersion: NVSP_PROTOCOL_VERSION_61, maxProtocolVersion: NVSP_PROTOCOL_VERSION_61 },
    hex: `01 00 00 00 | 01 00 06 00 | 01 00 06 00 | ${zeros(28)}`,
    sender: "guest",
  },
  {
    name: "INIT_COMPLETE (OV, 28 bytes)",
    msg: { kind: "init_complete", negotiatedProtocolVersion: 0xffffffff, maxMdlChainLength: 34, status: NVSP_STAT_SUCCESS },
    hex: `02 00 00 00 | ff ff ff ff | 22 00 00 00 | 01 00 00 00 | ${zeros(12)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "SEND_NDIS_VER 6.30",
    msg: { kind: "send_ndis_ver", ndisMajorVersion: 6, ndisMinorVersion: 30 },
    hex: `64 00 00 00 | 06 00 00 00 | 1e 00 00 00 | ${zeros(28)}`,
    sender: "guest",
  },
  {
    name: "SEND_RECV_BUF {gpadl 0xe1e10, id 0xcafe}",
    msg: { kind: "send_recv_buf", gpadlHandle: 0xe1e10, id: NETVSC_RECEIVE_BUFFER_ID },
    hex: `65 00 00 00 | 10 1e 0e 00 | fe ca | ${zeros(30)}`,
    sender: "guest",
  },
  {
    name: "SEND_RECV_BUF_COMPLETE (OV: one section, 1806-byte sub-allocations)",
    msg: {
      kind: "send_recv_buf_complete",
      status: NVSP_STAT_SUCCESS,
      sections: [{ offset: 0, subAllocSize: 1806, numSubAllocs: 9289, endOffset: 1806 * 9289 }],
    },
    hex: `66 00 00 00 | 01 00 00 00 | 01 00 00 00 | 00 00 00 00 | 0e 07 00 00 | 49 24 00 00 | fe fa ff 00`,
    size: 28,
    sender: "host",
  },
  {
    name: "REVOKE_RECV_BUF",
    msg: { kind: "revoke_recv_buf", id: NETVSC_RECEIVE_BUFFER_ID },
    hex: `67 00 00 00 | fe ca | ${zeros(34)}`,
    sender: "guest",
  },
  {
    name: "SEND_SEND_BUF {gpadl 0xe1e11, id 0}",
    msg: { kind: "send_send_buf", gpadlHandle: 0xe1e11, id: 0 },
    hex: `68 00 00 00 | 11 1e 0e 00 | 00 00 | ${zeros(30)}`,
    sender: "guest",
  },
  {
    name: "SEND_SEND_BUF_COMPLETE {6144}",
    msg: { kind: "send_send_buf_complete", status: NVSP_STAT_SUCCESS, sectionSize: 6144 },
    hex: `69 00 00 00 | 01 00 00 00 | 00 18 00 00 | ${zeros(16)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "REVOKE_SEND_BUF",
    msg: { kind: "revoke_send_buf", id: 0 },
    hex: `6a 00 00 00 | 00 00 | ${zeros(34)}`,
    sender: "guest",
  },
  {
    name: "SEND_RNDIS_PKT (data, section 3, 98 bytes)",
    msg: { kind: "send_rndis_pkt", channelType: 0, sendBufferSectionIndex: 3, sendBufferSectionSize: 98 },
    hex: `6b 00 00 00 | 00 00 00 00 | 03 00 00 00 | 62 00 00 00 | ${zeros(24)}`,
    sender: "guest",
  },
  {
    name: "SEND_RNDIS_PKT (host receive indication: control, no section)",
    msg: { kind: "send_rndis_pkt", channelType: 1, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 },
    hex: `6b 00 00 00 | 01 00 00 00 | ff ff ff ff | 00 00 00 00 | ${zeros(12)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "SEND_RNDIS_PKT_COMPLETE (Linux receive completion, 8 bytes)",
    msg: { kind: "send_rndis_pkt_complete", status: NVSP_STAT_SUCCESS },
    hex: `6c 00 00 00 | 01 00 00 00`,
    size: 8,
    sender: "guest",
  },
  {
    name: "SEND_NDIS_CONFIG (MTU 1514, v5 capabilities: 802.1Q | SR-IOV | teaming)",
    msg: { kind: "send_ndis_config", mtu: 1514, reserved: 0, capability: 0x2cn },
    hex: `7d 00 00 00 | ea 05 00 00 | 00 00 00 00 | 2c 00 00 00 00 00 00 00 | ${zeros(20)}`,
    sender: "guest",
  },
  {
    name: "SEND_VF_ASSOCIATION",
    msg: { kind: "vf_assoc", allocated: 1, serial: 7 },
    hex: `80 00 00 00 | 01 00 00 00 | 07 00 00 00 | ${zeros(16)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "SWITCH_DATA_PATH to VF",
    msg: { kind: "active_dp", activeDatapath: 1 },
    hex: `81 00 00 00 | 01 00 00 00 | ${zeros(32)}`,
    sender: "guest",
  },
  {
    name: "OID_QUERY_EX",
    msg: { kind: "oid_query_ex", header: { type: 0x80, revision: 1, size: 20 }, oid: OID_GEN_MAXIMUM_FRAME_SIZE },
    hex: `83 00 00 00 | 80 01 14 00 | 06 01 01 00 | ${zeros(28)}`,
    sender: "guest",
  },
  {
    name: "OID_QUERY_EX_COMP (OV: NOT_SUPPORTED)",
    msg: { kind: "oid_query_ex_comp", status: RNDIS_STATUS_NOT_SUPPORTED, bytes: 0 },
    hex: `84 00 00 00 | bb 00 00 c0 | 00 00 00 00 | ${zeros(16)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "SUBCHANNEL request {ALLOCATE, 7}",
    msg: { kind: "subchn_req", op: 1, numSubchannels: 7 },
    hex: `85 00 00 00 | 01 00 00 00 | 07 00 00 00 | ${zeros(28)}`,
    sender: "guest",
  },
  {
    name: "SUBCHANNEL completion {SUCCESS, 3}",
    msg: { kind: "subchn_comp", status: NVSP_STAT_SUCCESS, numSubchannels: 3 },
    hex: `85 00 00 00 | 01 00 00 00 | 03 00 00 00 | ${zeros(16)}`,
    size: 28,
    sender: "host",
  },
  {
    name: "SEND_INDIRECTION_TABLE (OV: offset 12, entry i = i mod 4)",
    msg: { kind: "send_table", table: OV_SEND_TABLE, offset: 12, tableOffset: 12 },
    hex: `86 00 00 00 | 10 00 00 00 | 0c 00 00 00 | ${OV_SEND_TABLE.map(le32).join(" ")}`,
    sender: "host",
  },
  {
    name: "obsolete SEND_CHIMNEY_DELEGATED_BUF (kept as bytes)",
    msg: { kind: "other", type: NVSP_MSG2_TYPE_SEND_CHIMNEY_DELEGATED_BUF, body: bytesOf(`aa bb ${zeros(34)}`) },
    hex: `6d 00 00 00 | aa bb ${zeros(34)}`,
  },
];

describe("NVSP golden bytes", () => {
  for (const g of GOLDEN) {
    it(`encodes and decodes ${g.name}`, () => {
      const bytes = encodeNvspMessage(g.msg, g.size !== undefined ? { size: g.size } : {});
      expect(hexOf(bytes)).toBe(hexOf(bytesOf(g.hex)));
      const decoded = decodeNvspMessage(bytesOf(g.hex), g.sender !== undefined ? { sender: g.sender } : {});
      expect(decoded).toEqual(g.msg);
    });
  }

  it("covers every structured message kind", () => {
    const kinds = new Set(GOLDEN.map((g) => g.msg.kind));
    expect([...kinds].sort()).toEqual(
      [
        "active_dp",
        "init",
        "init_complete",
        "oid_query_ex",
        "oid_query_ex_comp",
        "other",
        "revoke_recv_buf",
        "revoke_send_buf",
        "send_ndis_config",
        "send_ndis_ver",
        "send_recv_buf",
        "send_recv_buf_complete",
        "send_rndis_pkt",
        "send_rndis_pkt_complete",
        "send_send_buf",
        "send_send_buf_complete",
        "send_table",
        "subchn_comp",
        "subchn_req",
        "vf_assoc",
      ].sort(),
    );
  });

  it("decodes SUBCHANNEL as a request unless the host sent it", () => {
    const bytes = encodeNvspMessage({ kind: "subchn_req", op: 1, numSubchannels: 3 });
    expect(decodeNvspMessage(bytes)).toEqual({ kind: "subchn_req", op: 1, numSubchannels: 3 });
    expect(decodeNvspMessage(bytes, { sender: "host" })).toEqual({ kind: "subchn_comp", status: 1, numSubchannels: 3 });
  });

  it("writes into a larger buffer at an offset and returns the size", () => {
    const target = new Uint8Array(50).fill(0xee);
    expect(encodeNvspMessageInto({ kind: "send_rndis_pkt_complete", status: 2 }, target, 5, { size: 8 })).toBe(8);
    expect(hexOf(target.subarray(4, 14))).toBe("ee 6c 00 00 00 02 00 00 00 ee");
  });

  it("pads multi-section buffers and tables past 40 bytes as needed", () => {
    const sections = [
      { offset: 0, subAllocSize: 100, numSubAllocs: 2, endOffset: 200 },
      { offset: 200, subAllocSize: 50, numSubAllocs: 4, endOffset: 400 },
      { offset: 400, subAllocSize: 8, numSubAllocs: 1, endOffset: 408 },
    ];
    const bytes = encodeNvspMessage({ kind: "send_recv_buf_complete", status: 1, sections });
    expect(bytes.length).toBe(12 + 3 * 16);
    expect(decodeNvspMessage(bytes)).toEqual({ kind: "send_recv_buf_complete", status: 1, sections });
  });
});

// ---------------------------------------------------------------------------
// Round trips

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

const validMessage: fc.Arbitrary<NvspMessage> = fc.oneof(
  fc.record({ kind: fc.constant("init" as const), minProtocolVersion: u32, maxProtocolVersion: u32 }),
  fc.record({ kind: fc.constant("init_complete" as const), negotiatedProtocolVersion: u32, maxMdlChainLength: u32, status: u32 }),
  fc.record({ kind: fc.constant("send_ndis_ver" as const), ndisMajorVersion: u32, ndisMinorVersion: u32 }),
  fc.record({ kind: fc.constantFrom("send_recv_buf" as const, "send_send_buf" as const), gpadlHandle: u32, id: u16 }),
  fc.record({
    kind: fc.constant("send_recv_buf_complete" as const),
    status: fc.integer({ min: 0, max: 7 }),
    sections: fc.array(
      fc.record({ offset: u32, subAllocSize: fc.integer({ min: 1, max: 0xffffffff }), numSubAllocs: u32, endOffset: u32 }),
      { minLength: 1, maxLength: 4 },
    ),
  }),
  fc.record({ kind: fc.constantFrom("revoke_recv_buf" as const, "revoke_send_buf" as const), id: u16 }),
  fc.record({ kind: fc.constant("send_send_buf_complete" as const), status: u32, sectionSize: fc.integer({ min: 1, max: 0xffffffff }) }),
  fc.oneof(
    fc.record({ kind: fc.constant("send_rndis_pkt" as const), channelType: fc.constantFrom(0, 1), sendBufferSectionIndex: fc.integer({ min: 0, max: 0xfffffffe }), sendBufferSectionSize: u32 }),
    fc.record({ kind: fc.constant("send_rndis_pkt" as const), channelType: fc.constantFrom(0, 1), sendBufferSectionIndex: fc.constant(0xffffffff), sendBufferSectionSize: fc.constant(0) }),
  ),
  fc.record({ kind: fc.constant("send_rndis_pkt_complete" as const), status: u32 }),
  fc.record({ kind: fc.constant("send_ndis_config" as const), mtu: u32, reserved: u32, capability: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  fc.record({ kind: fc.constant("vf_assoc" as const), allocated: u32, serial: u32 }),
  fc.record({ kind: fc.constant("active_dp" as const), activeDatapath: fc.constantFrom(0, 1) }),
  fc.record({
    kind: fc.constant("oid_query_ex" as const),
    header: fc.record({ type: fc.integer({ min: 0, max: 255 }), revision: fc.integer({ min: 0, max: 255 }), size: u16 }),
    oid: u32,
  }),
  fc.record({ kind: fc.constant("oid_query_ex_comp" as const), status: u32, bytes: u32 }),
  fc.record({ kind: fc.constant("subchn_req" as const), op: fc.constant(1), numSubchannels: u32 }),
  fc.integer({ min: 12, max: 200 }).chain((offset) =>
    fc.record({
      kind: fc.constant("send_table" as const),
      table: fc.array(u32, { minLength: 16, maxLength: 16 }),
      offset: fc.constant(offset),
      tableOffset: fc.constant(offset),
    }),
  ),
);

describe("NVSP round trips", () => {
  it("decode(encode(m)) = m for every valid message, at any size that holds it", () => {
    fc.assert(
      fc.property(validMessage, fc.integer({ min: 0, max: 24 }), (m, extra) => {
        const natural = encodeNvspMessage(m);
        expect(decodeNvspMessage(natural)).toEqual(m);
        const padded = encodeNvspMessage(m, { size: natural.length + extra });
        expect(decodeNvspMessage(padded)).toEqual(m);
        expect(peekNvspMessageType(padded)).toBe(nvspMessageType(m));
      }),
      FC_RUNS,
    );
  });

  it("subchannel completions round-trip when the host is the sender", () => {
    fc.assert(
      fc.property(u32, u32, (status, n) => {
        const m: NvspMessage = { kind: "subchn_comp", status, numSubchannels: n };
        expect(decodeNvspMessage(encodeNvspMessage(m, { size: 28 }), { sender: "host" })).toEqual(m);
      }),
      FC_RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// Validation rules

function nvspError(bytes: Uint8Array, options: Parameters<typeof decodeNvspMessage>[1] = {}): unknown {
  return thrown(() => decodeNvspMessage(bytes, options));
}

describe("NVSP validation", () => {
  it("rejects a message shorter than its header", () => {
    expectTypedError(nvspError(bytesOf("01 00 00")), ProtocolError, { protocol: "NVSP", field: "message length", value: 3 });
  });

  it("rejects unknown types", () => {
    for (const t of [0, 3, 99, 137, 0xffffffff]) {
      expectTypedError(nvspError(bytesOf(`${le32(t)} ${zeros(36)}`)), ProtocolError, { field: "msg_type", value: t });
    }
  });

  it("rejects a type newer than the negotiated version, but never INIT", () => {
    const sub = encodeNvspMessage({ kind: "subchn_req", op: 1, numSubchannels: 1 });
    expectTypedError(nvspError(sub, { version: NVSP_PROTOCOL_VERSION_4 }), ProtocolError, { field: "msg_type", value: "133 (SUBCHANNEL)" });
    expect(decodeNvspMessage(sub, { version: NVSP_PROTOCOL_VERSION_5 }).kind).toBe("subchn_req");
    const config = encodeNvspMessage({ kind: "send_ndis_config", mtu: 1514, reserved: 0, capability: 8n });
    expect(thrown(() => decodeNvspMessage(config, { version: NVSP_PROTOCOL_VERSION_1 }))).toBeInstanceOf(ProtocolError);
    const init = encodeNvspMessage({ kind: "init", minProtocolVersion: 2, maxProtocolVersion: 2 });
    expect(decodeNvspMessage(init, { version: NVSP_PROTOCOL_VERSION_1 }).kind).toBe("init");
  });

  it("rejects a type the sender does not send", () => {
    const ic = encodeNvspMessage({ kind: "init_complete", negotiatedProtocolVersion: 0, maxMdlChainLength: 0, status: 1 });
    expectTypedError(nvspError(ic, { sender: "guest" }), ProtocolError, { field: "msg_type", value: "2 (INIT_COMPLETE)", limit: "is not sent by the guest" });
    const init = encodeNvspMessage({ kind: "init", minProtocolVersion: 2, maxProtocolVersion: 2 });
    expectTypedError(nvspError(init, { sender: "host" }), ProtocolError, { limit: "is not sent by the host" });
    const table = encodeNvspMessage({ kind: "send_table", table: OV_SEND_TABLE });
    expectTypedError(nvspError(table, { sender: "guest" }), ProtocolError, { field: "msg_type", value: "134 (SEND_INDIRECTION_TABLE)" });
  });

  it("rejects a message shorter than its body", () => {
    expectTypedError(nvspError(bytesOf("01 00 00 00 02 00 00 00")), ProtocolError, { field: "INIT message length", value: 8 });
    expectTypedError(nvspError(bytesOf("6b 00 00 00 00 00 00 00 ff ff ff ff")), ProtocolError, { field: "SEND_RNDIS_PKT message length", value: 12 });
    expectTypedError(nvspError(bytesOf("7d 00 00 00 ea 05 00 00 00 00 00 00 08 00 00 00")), ProtocolError, {
      field: "SEND_NDIS_CONFIG message length",
      value: 16,
    });
  });

  it("applies Linux's 28-byte rule to host init completions", () => {
    const short = encodeNvspMessage({ kind: "init_complete", negotiatedProtocolVersion: 0, maxMdlChainLength: 0, status: 1 }, { size: 16 });
    expect(decodeNvspMessage(short).kind).toBe("init_complete");
    expectTypedError(nvspError(short, { sender: "host" }), ProtocolError, { field: "INIT_COMPLETE message length", value: 16 });
  });

  it("rejects a receive-buffer section count that overflows the message", () => {
    const good = bytesOf(GOLDEN.find((g) => g.msg.kind === "send_recv_buf_complete")?.hex ?? "");
    for (const n of [2, 0x10000000, 0xffffffff]) {
      expectTypedError(nvspError(patch32(good, 8, n)), ProtocolError, { field: "send_recv_buf_complete.num_sections", value: n });
    }
  });

  it("rejects a successful receive-buffer reply without sections or with 0-byte sub-allocations", () => {
    const good = bytesOf(GOLDEN.find((g) => g.msg.kind === "send_recv_buf_complete")?.hex ?? "");
    expectTypedError(nvspError(patch32(good, 8, 0)), ProtocolError, { field: "send_recv_buf_complete.num_sections", value: 0 });
    expectTypedError(nvspError(patch32(good, 16, 0)), ProtocolError, { field: "send_recv_buf_complete.sections[0].sub_alloc_size", value: 0 });
    // A failure reply may carry anything there.
    expect(decodeNvspMessage(patch32(patch32(good, 8, 0), 4, NVSP_STAT_FAIL))).toEqual({ kind: "send_recv_buf_complete", status: 2, sections: [] });
  });

  it("rejects a send-buffer section size of 0 in a successful reply", () => {
    const zero = encodeNvspMessage({ kind: "send_send_buf_complete", status: NVSP_STAT_SUCCESS, sectionSize: 0 });
    expectTypedError(nvspError(zero), ProtocolError, { field: "send_send_buf_complete.section_size", value: 0 });
    const failed = encodeNvspMessage({ kind: "send_send_buf_complete", status: NVSP_STAT_PROTOCOL_UNSUPPORTED, sectionSize: 0 });
    expect(decodeNvspMessage(failed)).toEqual({ kind: "send_send_buf_complete", status: 7, sectionSize: 0 });
  });

  it("rejects a bad SEND_RNDIS_PKT channel type, and a size without a section", () => {
    const pkt = encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 2, sendBufferSectionIndex: 0, sendBufferSectionSize: 0 });
    expectTypedError(nvspError(pkt), ProtocolError, { field: "send_rndis_pkt.channel_type", value: 2 });
    const sized = encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 0, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 60 });
    expectTypedError(nvspError(sized), ProtocolError, { field: "send_rndis_pkt.send_buf_section_size", value: 60 });
  });

  it("rejects an unknown data path and subchannel operation", () => {
    expectTypedError(nvspError(encodeNvspMessage({ kind: "active_dp", activeDatapath: 2 })), ProtocolError, { field: "active_dp.active_datapath", value: 2 });
    expectTypedError(nvspError(encodeNvspMessage({ kind: "subchn_req", op: 0, numSubchannels: 1 })), ProtocolError, { field: "subchn_req.op", value: 0 });
  });

  it("rejects an indirection table with a wrong count or an offset/count outside the message", () => {
    const table = encodeNvspMessage({ kind: "send_table", table: OV_SEND_TABLE }); // 76 bytes
    expectTypedError(nvspError(patch32(table, 4, 15)), ProtocolError, { field: "send_table.count", value: 15 });
    expectTypedError(nvspError(patch32(table, 4, 0xffffffff)), ProtocolError, { field: "send_table.count" });
    expectTypedError(nvspError(patch32(table, 8, 8)), ProtocolError, { field: "send_table.offset", value: 8 });
    expectTypedError(nvspError(patch32(table, 8, 13)), ProtocolError, { field: "send_table.offset", value: 13 });
    expectTypedError(nvspError(patch32(table, 8, 0xfffffff0)), ProtocolError, { field: "send_table.offset", value: 0xfffffff0 });
    // The 40-byte message Linux would send has no room for 16 entries at all.
    expectTypedError(nvspError(table.subarray(0, 40)), ProtocolError, { field: "send_table.offset", value: 12 });
  });

  it("applies Linux's ≤ v6 offset fix to long indirection-table messages only when asked", () => {
    // A 104-byte message: the table really sits at 40, the offset field lies (12).
    const bytes = new Uint8Array(104);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE, true);
    v.setUint32(4, 16, true);
    v.setUint32(8, 12, true);
    for (let i = 0; i < 16; i++) v.setUint32(40 + 4 * i, i % 3, true);
    const fixed = decodeNvspMessage(bytes, { version: NVSP_PROTOCOL_VERSION_6, linuxSendTableOffsetFix: true });
    expect(fixed).toEqual({ kind: "send_table", table: Array.from({ length: 16 }, (_, i) => i % 3), offset: 12, tableOffset: 40 });
    const raw = decodeNvspMessage(bytes);
    expect(raw.kind === "send_table" && raw.tableOffset).toBe(12);
    const v61 = decodeNvspMessage(bytes, { version: NVSP_PROTOCOL_VERSION_61, linuxSendTableOffsetFix: true });
    expect(v61.kind === "send_table" && v61.tableOffset).toBe(12);
  });
});

describe("NVSP encoder argument checks", () => {
  it("refuses values that do not fit their field", () => {
    expectTypedError(thrown(() => encodeNvspMessage({ kind: "revoke_recv_buf", id: 0x10000 })), InvalidArgumentError, { field: "id", value: 0x10000 });
    expectTypedError(thrown(() => encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: -1 })), InvalidArgumentError, { field: "status" });
    expect(thrown(() => encodeNvspMessage({ kind: "send_ndis_config", mtu: 1, reserved: 0, capability: 1n << 64n }))).toBeInstanceOf(InvalidArgumentError);
  });

  it("refuses a size that does not hold the message, and a table inside the header", () => {
    expectTypedError(thrown(() => encodeNvspMessage({ kind: "init", minProtocolVersion: 2, maxProtocolVersion: 2 }, { size: 8 })), InvalidArgumentError, {
      field: "size",
      value: 8,
    });
    expectTypedError(thrown(() => encodeNvspMessage({ kind: "send_table", table: [1], offset: 4 })), InvalidArgumentError, { field: "offset", value: 4 });
    expect(thrown(() => encodeNvspMessageInto({ kind: "send_rndis_pkt_complete", status: 1 }, new Uint8Array(10), 4, { size: 8 }))).toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it("has minimum sizes matching the packed structs", () => {
    expect([1, 2, 100, 101, 102, 103, 104, 105, 106, 107, 108, 125, 128, 129, 131, 132, 133, 134, 109].map(nvspMinimumMessageSize)).toEqual([
      12, 16, 12, 10, 12, 6, 10, 12, 6, 16, 8, 20, 12, 8, 12, 12, 12, 12, 4,
    ]);
  });
});

describe("Linux acceptance of buffer replies", () => {
  const section = { offset: 0, subAllocSize: 1806, numSubAllocs: 9289, endOffset: 1806 * 9289 };
  const ok: NvspMessage = { kind: "send_recv_buf_complete", status: 1, sections: [section] };

  it("accepts OV's reply for a 16 MiB buffer", () => {
    expect(checkLinuxRecvBufComplete(ok, 16 * 1024 * 1024)).toEqual(section);
    expect(checkLinuxSendBufComplete({ kind: "send_send_buf_complete", status: 1, sectionSize: 6144 })).toBe(6144);
  });

  it("names each rule it applies", () => {
    const err = (m: NvspMessage, size = 16 * 1024 * 1024): unknown => thrown(() => checkLinuxRecvBufComplete(m, size));
    expectTypedError(err({ ...ok, status: 2 } as NvspMessage), ProtocolError, { field: "send_recv_buf_complete.status", value: 2 });
    expectTypedError(err({ kind: "send_recv_buf_complete", status: 1, sections: [section, section] }), ProtocolError, {
      field: "send_recv_buf_complete.num_sections",
      value: 2,
    });
    expectTypedError(err({ kind: "send_recv_buf_complete", status: 1, sections: [{ ...section, offset: 4096 }] }), ProtocolError, {
      field: "send_recv_buf_complete.sections[0].offset",
    });
    expectTypedError(err({ kind: "send_recv_buf_complete", status: 1, sections: [{ ...section, subAllocSize: 67 }] }), ProtocolError, {
      field: "send_recv_buf_complete.sections[0].sub_alloc_size",
      value: 67,
    });
    expectTypedError(err(ok, 1024 * 1024), ProtocolError, { field: "send_recv_buf_complete.sections[0].num_sub_allocs", value: 9289 });
    expectTypedError(thrown(() => checkLinuxSendBufComplete({ kind: "send_send_buf_complete", status: 1, sectionSize: 1 })), ProtocolError, {
      field: "send_send_buf_complete.section_size",
      value: 1,
    });
  });
});

describe("NVSP fuzzing", () => {
  const options = fc.record(
    {
      version: fc.constantFrom(...LINUX_NVSP_VERSION_ORDER),
      sender: fc.constantFrom("guest" as const, "host" as const),
      linuxSendTableOffsetFix: fc.boolean(),
    },
    { requiredKeys: [] },
  );
  const knownType = fc.constantFrom(1, 2, ...Array.from({ length: 37 }, (_, i) => 100 + i));

  it("random bytes only ever raise typed errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), options, (bytes, o) => {
        onlyTypedErrors(() => decodeNvspMessage(bytes, o));
      }),
      FUZZ_RUNS,
    );
  });

  it("random bodies behind every known type only ever raise typed errors", () => {
    fc.assert(
      fc.property(knownType, fc.uint8Array({ maxLength: 124 }), options, (type, body, o) => {
        const bytes = new Uint8Array(4 + body.length);
        new DataView(bytes.buffer).setUint32(0, type, true);
        bytes.set(body, 4);
        try {
          const m = decodeNvspMessage(bytes, o);
          expect(nvspMessageType(m)).toBe(type);
          // Whatever decodes re-encodes (at the same size) to a message that
          // decodes the same way — except a table Linux's fix moved.
          if (o.linuxSendTableOffsetFix !== true) expect(decodeNvspMessage(encodeNvspMessage(m, { size: bytes.length }), o)).toEqual(m);
        } catch (e) {
          if (!(e instanceof VmbusSimError)) throw e;
        }
      }),
      FUZZ_RUNS,
    );
  });
});
