/**
 * VSTOR packet codec (storvsc-netvsc.md §1–§3.1, §5): golden bytes written by
 * hand from the spec's offset tables, in both packet sizes; round trips;
 * every validation rule; random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  HV_FC_WWN_PACKET_LAYOUT,
  READ_TYPE,
  SCSI_STATUS_CHECK_CONDITION,
  SENSE_UNRECOVERED_READ_ERROR,
  SRB_STATUS_ERROR,
  SRB_STATUS_SUCCESS,
  STATUS_IO_DEVICE_ERROR,
  STATUS_REVISION_MISMATCH,
  STATUS_SUCCESS,
  UNKNOWN_TYPE,
  VMSCSI_REQUEST_LAYOUT,
  VMSCSI_WIN8_EXTENSION_LAYOUT,
  VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT,
  VMSTOR_PROTOCOL_VERSIONS,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN6,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN8,
  VMSTOR_PROTO_VERSION_WIN8_1,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_EVENT_NOTIFICATION,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_FCHBA_DATA,
  VSTOR_OPERATION_NAMES,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_REMOVE_DEVICE,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_RESET_LUN,
  VSTOR_PACKET_LAYOUT,
  type VmscsiRequest,
  type VmscsiWin8Extension,
  type VstorPacket,
  type VstorPayload,
  WRITE_TYPE,
  buildFixedSenseData,
  buildReadCdb,
  buildTestUnitReadyCdb,
  buildWriteCdb,
  decodeChannelProperties,
  decodeFcWwnPacket,
  decodeNotificationPacket,
  decodeProtocolVersion,
  decodeSubChannelCount,
  decodeVmscsiRequest,
  decodeVstorPacket,
  encodeVstorPacket,
  encodeVstorPacketInto,
  isWin8OrLater,
  makeExecuteSrbPacket,
  makeSrbCompletionPacket,
  makeVstorCompletionPacket,
  makeVstorRequestPacket,
  senseBufferSize,
  srbCdb,
  srbSenseData,
  vmscsiRequestLength,
  vstorPacketSize,
  vstorPayloadKind,
  LINUX_VMSTOR_VERSION_ORDER,
  LEGACY_VMSTOR_VERSION_ORDER,
  OPENVMM_ACCEPTED_VMSTOR_VERSIONS,
} from "../../../drivers/storvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, onlyTypedErrors, thrown, zeros } from "./helpers.js";

const WIN10 = VMSTOR_PROTO_VERSION_WIN10;
const WIN7 = VMSTOR_PROTO_VERSION_WIN7;

function srbOf(p: VstorPacket): VmscsiRequest {
  if (p.payload.kind !== "srb") throw new Error("not an SRB packet");
  return p.payload.srb;
}

const read16 = (version: number): VstorPacket =>
  makeExecuteSrbPacket({
    protocolVersion: version,
    cdb: buildReadCdb(16, 0x123456789n, 8),
    dataIn: READ_TYPE,
    dataTransferLength: 4096,
    lun: 1,
  });

interface Golden {
  readonly name: string;
  readonly version: number;
  readonly packet: VstorPacket;
  readonly completes?: number;
  readonly hex: string;
}

const wwn = (base: number): Uint8Array => Uint8Array.from({ length: 8 }, (_, i) => base + i);

const GOLDEN: readonly Golden[] = [
  {
    name: "EXECUTE_SRB READ(16), Win10, 64 bytes",
    version: WIN10,
    packet: read16(WIN10),
    hex: `03 00 00 00 | 01 00 00 00 | 00 00 00 00
          34 00 | 00 | 00 | 00 | 00 | 00 | 01
          10 | 14 | 01 | 00 | 00 10 00 00
          88 00 00 00 00 01 23 45 67 89 00 00 00 08 00 00 | 00 00 00 00
          00 00 | ff | 20 | 4a 01 00 00 | 3c 00 00 00 | 00 00 00 00`,
  },
  {
    name: "EXECUTE_SRB READ(16), Win7, 48 bytes (no Win8 extension, 18-byte sense buffer)",
    version: WIN7,
    packet: read16(WIN7),
    hex: `03 00 00 00 | 01 00 00 00 | 00 00 00 00
          24 00 | 00 | 00 | 00 | 00 | 00 | 01
          10 | 12 | 01 | 00 | 00 10 00 00
          88 00 00 00 00 01 23 45 67 89 00 00 00 08 00 00 | 00 00 00 00`,
  },
  {
    name: "EXECUTE_SRB WRITE(10), untagged, addressed port 3 target 1 lun 2",
    version: VMSTOR_PROTO_VERSION_WIN8,
    packet: makeExecuteSrbPacket({
      protocolVersion: VMSTOR_PROTO_VERSION_WIN8,
      cdb: buildWriteCdb(10, 0x10n, 8),
      dataIn: WRITE_TYPE,
      dataTransferLength: 4096,
      portNumber: 3,
      targetId: 1,
      lun: 2,
      tagged: false,
    }),
    hex: `03 00 00 00 | 01 00 00 00 | 00 00 00 00
          34 00 | 00 | 00 | 03 | 00 | 01 | 02
          0a | 14 | 00 | 00 | 00 10 00 00
          2a 00 00 00 00 10 00 00 08 00 | ${zeros(10)}
          00 00 | 00 | 00 | 88 00 00 00 | 3c 00 00 00 | 00 00 00 00`,
  },
  {
    name: "EXECUTE_SRB TEST UNIT READY (no data)",
    version: WIN10,
    packet: makeExecuteSrbPacket({ protocolVersion: WIN10, cdb: buildTestUnitReadyCdb(), dataIn: UNKNOWN_TYPE, dataTransferLength: 0 }),
    hex: `03 00 00 00 | 01 00 00 00 | 00 00 00 00
          34 00 | 00 00 | 00 00 00 00
          06 | 14 | 02 | 00 | 00 00 00 00
          ${zeros(20)}
          00 00 | ff | 20 | 0a 01 00 00 | 3c 00 00 00 | 00 00 00 00`,
  },
  {
    name: "COMPLETE_IO of an SRB: CHECK CONDITION, sense 03/11/00 at offset 28",
    version: WIN10,
    completes: VSTOR_OPERATION_EXECUTE_SRB,
    packet: makeSrbCompletionPacket({
      protocolVersion: WIN10,
      request: srbOf(read16(WIN10)),
      srbStatus: SRB_STATUS_ERROR,
      scsiStatus: SCSI_STATUS_CHECK_CONDITION,
      dataTransferLength: 0,
      sense: buildFixedSenseData(SENSE_UNRECOVERED_READ_ERROR),
    }),
    hex: `01 00 00 00 | 00 00 00 00 | 85 01 00 c0
          34 00 | 84 | 02 | 00 | 00 | 00 | 01
          10 | 14 | 01 | 00 | 00 00 00 00
          70 00 03 00 00 00 00 0a 00 00 00 00 11 00 00 00 00 00 | 00 00
          ${zeros(16)}`,
  },
  {
    name: "COMPLETE_IO of an SRB, Win7: success, 4096 bytes",
    version: WIN7,
    completes: VSTOR_OPERATION_EXECUTE_SRB,
    packet: makeSrbCompletionPacket({
      protocolVersion: WIN7,
      request: srbOf(read16(WIN7)),
      srbStatus: SRB_STATUS_SUCCESS,
      dataTransferLength: 4096,
    }),
    hex: `01 00 00 00 | 00 00 00 00 | 00 00 00 00
          24 00 | 01 | 00 | 00 00 00 01
          10 | 12 | 01 | 00 | 00 10 00 00
          ${zeros(20)}`,
  },
  {
    name: "BEGIN_INITIALIZATION, Win10",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION),
    hex: `07 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "BEGIN_INITIALIZATION, 48 bytes before a version is agreed (BSD)",
    version: VMSTOR_PROTO_VERSION_WIN6,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION),
    hex: `07 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(36)}`,
  },
  {
    name: "END_INITIALIZATION",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_END_INITIALIZATION),
    hex: `08 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "QUERY_PROTOCOL_VERSION 6.2",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, {
      kind: "version",
      version: { majorMinor: WIN10, revision: 0 },
    }),
    hex: `09 00 00 00 | 01 00 00 00 | 00 00 00 00 | 02 06 | 00 00 | ${zeros(48)}`,
  },
  {
    name: "QUERY_PROTOCOL_VERSION 4.2 in a 48-byte packet",
    version: VMSTOR_PROTO_VERSION_WIN6,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, {
      kind: "version",
      version: { majorMinor: WIN7, revision: 0 },
    }),
    hex: `09 00 00 00 | 01 00 00 00 | 00 00 00 00 | 02 04 | 00 00 | ${zeros(32)}`,
  },
  {
    name: "COMPLETE_IO of QUERY_PROTOCOL_VERSION: REVISION_MISMATCH, version echoed",
    version: WIN10,
    completes: VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
    packet: makeVstorCompletionPacket(STATUS_REVISION_MISMATCH, { kind: "version", version: { majorMinor: WIN10, revision: 0 } }),
    hex: `01 00 00 00 | 00 00 00 00 | 59 00 00 c0 | 02 06 00 00 | ${zeros(48)}`,
  },
  {
    name: "QUERY_PROPERTIES request",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROPERTIES, {
      kind: "properties",
      properties: { maxChannelCount: 0, flags: 0, maxTransferBytes: 0 },
    }),
    hex: `0a 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "COMPLETE_IO of QUERY_PROPERTIES: 7 sub-channels, multichannel, 256 KiB",
    version: WIN10,
    completes: VSTOR_OPERATION_QUERY_PROPERTIES,
    packet: makeVstorCompletionPacket(STATUS_SUCCESS, {
      kind: "properties",
      properties: { maxChannelCount: 7, flags: 1, maxTransferBytes: 0x40000 },
    }),
    hex: `01 00 00 00 | 00 00 00 00 | 00 00 00 00
          00 00 00 00 | 07 00 | 00 00 | 01 00 00 00 | 00 00 04 00 | ${zeros(8)}
          ${zeros(28)}`,
  },
  {
    name: "CREATE_SUB_CHANNELS 3",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: 3 }),
    hex: `0d 00 00 00 | 01 00 00 00 | 00 00 00 00 | 03 00 | ${zeros(50)}`,
  },
  {
    name: "RESET_LUN",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_RESET_LUN),
    hex: `04 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "RESET_ADAPTER",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_RESET_ADAPTER),
    hex: `05 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "RESET_BUS",
    version: WIN10,
    packet: makeVstorRequestPacket(VSTOR_OPERATION_RESET_BUS),
    hex: `06 00 00 00 | 01 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "REMOVE_DEVICE (host, unsolicited)",
    version: WIN10,
    packet: { operation: VSTOR_OPERATION_REMOVE_DEVICE, flags: 0, status: 0, payload: { kind: "none" } },
    hex: `02 00 00 00 | 00 00 00 00 | 00 00 00 00 | ${zeros(52)}`,
  },
  {
    name: "ENUMERATE_BUS (host, unsolicited), Win7 size",
    version: WIN7,
    packet: { operation: VSTOR_OPERATION_ENUMERATE_BUS, flags: 0, status: 0, payload: { kind: "none" } },
    hex: `0b 00 00 00 | 00 00 00 00 | 00 00 00 00 | ${zeros(36)}`,
  },
  {
    name: "FCHBA_DATA with WWNs",
    version: WIN10,
    packet: {
      operation: VSTOR_OPERATION_FCHBA_DATA,
      flags: 0,
      status: 0,
      payload: {
        kind: "fc-wwn",
        wwn: {
          primaryActive: 1,
          primaryPortWwn: wwn(0x10),
          primaryNodeWwn: wwn(0x20),
          secondaryPortWwn: wwn(0x30),
          secondaryNodeWwn: wwn(0x40),
        },
      },
    },
    hex: `0c 00 00 00 | 00 00 00 00 | 00 00 00 00
          01 | 00 00 00 | 10 11 12 13 14 15 16 17 | 20 21 22 23 24 25 26 27
          30 31 32 33 34 35 36 37 | 40 41 42 43 44 45 46 47 | ${zeros(16)}`,
  },
  {
    name: "EVENT_NOTIFICATION (OV)",
    version: WIN10,
    packet: {
      operation: VSTOR_OPERATION_EVENT_NOTIFICATION,
      flags: 0,
      status: 0,
      payload: { kind: "notification", notification: { lun: 5, target: 1, path: 2, flags: 0x80 } },
    },
    hex: `0e 00 00 00 | 00 00 00 00 | 00 00 00 00 | 05 01 02 80 | ${zeros(48)}`,
  },
];

describe("VSTOR layouts match the spec offsets", () => {
  it("names every field at its §1/§3/§3.1 offset", () => {
    expect(VSTOR_PACKET_LAYOUT.union).toEqual({ offset: 12, size: 52 });
    expect(VMSCSI_REQUEST_LAYOUT.data_transfer_length).toEqual({ offset: 24, size: 4 });
    expect(VMSCSI_REQUEST_LAYOUT.cdb_sense).toEqual({ offset: 28, size: 20 });
    expect(VMSCSI_WIN8_EXTENSION_LAYOUT.srb_flags).toEqual({ offset: 52, size: 4 });
    expect(VMSCSI_WIN8_EXTENSION_LAYOUT.queue_sort_key).toEqual({ offset: 60, size: 4 });
    expect(VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT.max_transfer_bytes).toEqual({ offset: 24, size: 4 });
    expect(HV_FC_WWN_PACKET_LAYOUT.secondary_node_wwn).toEqual({ offset: 40, size: 8 });
  });

  it("sizes packets and SRBs per protocol version (vmscsi_size_delta 16 before Win8)", () => {
    const rows = VMSTOR_PROTOCOL_VERSIONS.map((v) => [v.name, v.value, v.packetSize, v.srbLength, v.senseBufferSize, v.vmscsiSizeDelta]);
    expect(rows).toEqual([
      ["WIN10", 0x0602, 64, 0x34, 0x14, 0],
      ["WIN8_1", 0x0600, 64, 0x34, 0x14, 0],
      ["WIN8", 0x0501, 64, 0x34, 0x14, 0],
      ["WIN7", 0x0402, 48, 0x24, 0x12, 16],
      ["WIN6", 0x0200, 48, 0x24, 0x12, 16],
    ]);
    expect(LINUX_VMSTOR_VERSION_ORDER).toEqual([0x0602, 0x0600, 0x0501]);
    expect(LEGACY_VMSTOR_VERSION_ORDER).toEqual([0x0602, 0x0600, 0x0501, 0x0402, 0x0200]);
    expect(OPENVMM_ACCEPTED_VMSTOR_VERSIONS).not.toContain(0x0602);
    expect(vstorPacketSize(VMSTOR_PROTO_VERSION_WIN8_1)).toBe(64);
    expect(vmscsiRequestLength(VMSTOR_PROTO_VERSION_WIN6)).toBe(0x24);
  });
});

describe("VSTOR golden bytes", () => {
  for (const g of GOLDEN) {
    it(`${g.name}: encodes byte for byte`, () => {
      const expected = bytesOf(g.hex);
      expect(expected.length).toBe(vstorPacketSize(g.version));
      expect(hexOf(encodeVstorPacket(g.packet, g.version))).toBe(hexOf(expected));
    });
    it(`${g.name}: decodes back`, () => {
      const decoded = decodeVstorPacket(bytesOf(g.hex), {
        protocolVersion: g.version,
        ...(g.completes !== undefined ? { completes: g.completes } : {}),
      });
      expect(decoded).toEqual(g.packet);
    });
  }

  it("covers every operation", () => {
    const ops = new Set(GOLDEN.map((g) => g.packet.operation));
    expect([...VSTOR_OPERATION_NAMES.keys()].filter((op) => !ops.has(op))).toEqual([]);
  });

  it("SRB helpers return the CDB and the sense bytes", () => {
    expect(hexOf(srbCdb(srbOf(read16(WIN10))))).toBe("88 00 00 00 00 01 23 45 67 89 00 00 00 08 00 00");
    const completion = decodeVstorPacket(bytesOf(GOLDEN[4]?.hex ?? ""), {
      protocolVersion: WIN10,
      completes: VSTOR_OPERATION_EXECUTE_SRB,
    });
    expect(srbSenseData(srbOf(completion)).length).toBe(20);
    expect(srbOf(completion).srbStatus).toBe(0x84);
    expect(completion.status).toBe(STATUS_IO_DEVICE_ERROR);
  });

  it("per-struct decoders read their union member", () => {
    const props = bytesOf(GOLDEN.find((g) => g.name.startsWith("COMPLETE_IO of QUERY_PROPERTIES"))?.hex ?? "");
    expect(decodeChannelProperties(props, WIN10)).toEqual({ maxChannelCount: 7, flags: 1, maxTransferBytes: 0x40000 });
    const ver = bytesOf(GOLDEN.find((g) => g.name === "QUERY_PROTOCOL_VERSION 6.2")?.hex ?? "");
    expect(decodeProtocolVersion(ver, WIN10)).toEqual({ majorMinor: 0x0602, revision: 0 });
    const sub = bytesOf(GOLDEN.find((g) => g.name === "CREATE_SUB_CHANNELS 3")?.hex ?? "");
    expect(decodeSubChannelCount(sub, WIN10)).toBe(3);
    const fcp = bytesOf(GOLDEN.find((g) => g.name === "FCHBA_DATA with WWNs")?.hex ?? "");
    expect(hexOf(decodeFcWwnPacket(fcp, WIN10).secondaryPortWwn)).toBe("30 31 32 33 34 35 36 37");
    const ev = bytesOf(GOLDEN.find((g) => g.name === "EVENT_NOTIFICATION (OV)")?.hex ?? "");
    expect(decodeNotificationPacket(ev, WIN10)).toEqual({ lun: 5, target: 1, path: 2, flags: 0x80 });
    const srb = decodeVmscsiRequest(bytesOf(GOLDEN[0]?.hex ?? ""), { protocolVersion: WIN10 });
    expect(srb.dataTransferLength).toBe(4096);
  });

  it("a COMPLETE_IO whose request is unknown keeps the raw union", () => {
    const p = decodeVstorPacket(bytesOf(GOLDEN[4]?.hex ?? ""), { protocolVersion: WIN10 });
    expect(p.payload.kind).toBe("raw");
    if (p.payload.kind === "raw") expect(p.payload.bytes.length).toBe(52);
  });

  it("ignores bytes past the negotiated size (ring padding) and decodes a private copy", () => {
    const src = new Uint8Array(72);
    src.set(bytesOf(GOLDEN[0]?.hex ?? ""));
    src.fill(0xee, 64);
    const p = decodeVstorPacket(src, { protocolVersion: WIN10 });
    src.fill(0xff, 28, 48);
    expect(p).toEqual(read16(WIN10));
  });

  it("a 64-byte packet decoded as pre-Win8 reads only 48 bytes", () => {
    const b = bytesOf(GOLDEN[0]?.hex ?? "");
    // Its 20-byte sense length does not fit the pre-Win8 buffer...
    expectTypedError(thrown(() => decodeVstorPacket(b, { protocolVersion: WIN7 })), ProtocolError, {
      field: "vmscsi_request.sense_info_length",
      value: 20,
    });
    // ...with 18 it decodes, and the Win8 extension is not read.
    b[21] = 0x12;
    const p = decodeVstorPacket(b, { protocolVersion: WIN7 });
    expect(srbOf(p).win8Extension).toBeNull();
    expect(srbOf(p).cdbLength).toBe(16);
  });

  it("encodes into a larger buffer at an offset", () => {
    const buf = new Uint8Array(100).fill(0xaa);
    expect(encodeVstorPacketInto(read16(WIN7), WIN7, buf, 10)).toBe(48);
    expect(buf[9]).toBe(0xaa);
    expect(buf[58]).toBe(0xaa);
    expect(hexOf(buf.subarray(10, 58))).toBe(hexOf(bytesOf(GOLDEN[1]?.hex ?? "")));
  });
});

describe("VSTOR decoder validation (typed errors naming field, value, limit)", () => {
  const goodSrb = (): Uint8Array => bytesOf(GOLDEN[0]?.hex ?? "");

  it("rejects a packet shorter than the negotiated size", () => {
    expectTypedError(thrown(() => decodeVstorPacket(goodSrb().subarray(0, 63), { protocolVersion: WIN10 })), ProtocolError, {
      protocol: "VSTOR",
      field: "packet length",
      value: 63,
    });
    expectTypedError(thrown(() => decodeVstorPacket(goodSrb().subarray(0, 48), { protocolVersion: VMSTOR_PROTO_VERSION_WIN8 })), ProtocolError, {
      field: "packet length",
      value: 48,
    });
    expectTypedError(thrown(() => decodeVstorPacket(new Uint8Array(47), { protocolVersion: WIN7 })), ProtocolError, {
      field: "packet length",
      value: 47,
    });
    expect((thrown(() => decodeVstorPacket(new Uint8Array(10), { protocolVersion: WIN10 })) as Error).message).toMatch(/64-byte vstor_packet/);
  });

  it("rejects an unknown operation", () => {
    for (const op of [0, 15, 0xffffffff]) {
      const b = goodSrb();
      new DataView(b.buffer).setUint32(0, op, true);
      expectTypedError(thrown(() => decodeVstorPacket(b, { protocolVersion: WIN10 })), ProtocolError, { field: "operation", value: op });
    }
  });

  it("rejects an operation the sender never sends", () => {
    const completion = bytesOf(GOLDEN[4]?.hex ?? "");
    const e = thrown(() => decodeVstorPacket(completion, { protocolVersion: WIN10, sender: "guest" }));
    expectTypedError(e, ProtocolError, { field: "operation", value: "1 (COMPLETE_IO)" });
    expectTypedError(thrown(() => decodeVstorPacket(goodSrb(), { protocolVersion: WIN10, sender: "host" })), ProtocolError, {
      field: "operation",
    });
    expect(decodeVstorPacket(goodSrb(), { protocolVersion: WIN10, sender: "guest" }).operation).toBe(3);
  });

  it("rejects cdb_length > 16", () => {
    const b = goodSrb();
    b[20] = 17;
    const e = thrown(() => decodeVstorPacket(b, { protocolVersion: WIN10 }));
    expectTypedError(e, ProtocolError, { field: "vmscsi_request.cdb_length", value: 17 });
    expect((e as Error).message).toContain("STORVSC_MAX_CMD_LEN (16)");
  });

  it("rejects sense_info_length larger than the version's sense buffer", () => {
    const b = goodSrb();
    b[21] = 21;
    expectTypedError(thrown(() => decodeVstorPacket(b, { protocolVersion: WIN10 })), ProtocolError, {
      field: "vmscsi_request.sense_info_length",
      value: 21,
    });
    const old = bytesOf(GOLDEN[1]?.hex ?? "");
    old[21] = 0x13;
    expectTypedError(thrown(() => decodeVstorPacket(old, { protocolVersion: WIN7 })), ProtocolError, {
      field: "vmscsi_request.sense_info_length",
      value: 0x13,
    });
    // The same 19 fits the 20-byte buffer of Win8+.
    const win8 = goodSrb();
    win8[21] = 0x13;
    expect(srbOf(decodeVstorPacket(win8, { protocolVersion: WIN10 })).senseInfoLength).toBe(0x13);
  });

  it("rejects an unknown data_in", () => {
    const b = goodSrb();
    b[22] = 3;
    expectTypedError(thrown(() => decodeVstorPacket(b, { protocolVersion: WIN10 })), ProtocolError, {
      field: "vmscsi_request.data_in",
      value: 3,
    });
  });

  it("rejects data_transfer_length beyond max_transfer_bytes (host) or the request (guest)", () => {
    const b = goodSrb();
    new DataView(b.buffer).setUint32(24, 0x40001, true);
    expectTypedError(thrown(() => decodeVstorPacket(b, { protocolVersion: WIN10, maxTransferBytes: 0x40000 })), ProtocolError, {
      field: "vmscsi_request.data_transfer_length",
      value: 0x40001,
    });
    expect(srbOf(decodeVstorPacket(b, { protocolVersion: WIN10, maxTransferBytes: 0x40001 })).dataTransferLength).toBe(0x40001);
    const c = bytesOf(GOLDEN[5]?.hex ?? "");
    new DataView(c.buffer).setUint32(24, 8192, true);
    const e = thrown(() =>
      decodeVstorPacket(c, { protocolVersion: WIN7, completes: VSTOR_OPERATION_EXECUTE_SRB, requestDataTransferLength: 4096 }),
    );
    expectTypedError(e, ProtocolError, { field: "vmscsi_request.data_transfer_length", value: 8192 });
    expect((e as Error).message).toContain("request's data_transfer_length 4096");
  });

  it("encoders refuse unrepresentable values but write hostile representable ones", () => {
    const p = read16(WIN10);
    expect(thrown(() => encodeVstorPacket(p, WIN7))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => encodeVstorPacket({ ...p, status: 2 ** 32 }, WIN10))).toBeInstanceOf(InvalidArgumentError);
    const hostile: VstorPacket = { ...p, payload: { kind: "srb", srb: { ...srbOf(p), cdbLength: 200 } } };
    expect(encodeVstorPacket(hostile, WIN10)[20]).toBe(200);
    expect(thrown(() => encodeVstorPacket({ ...p, payload: { kind: "raw", bytes: new Uint8Array(40) } }, WIN7))).toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});

// ---------------------------------------------------------------------------
// Properties

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const versionArb = fc.constantFrom(...VMSTOR_PROTOCOL_VERSIONS.map((v) => v.value));
const opArb = fc.constantFrom(...VSTOR_OPERATION_NAMES.keys());

const extArb: fc.Arbitrary<VmscsiWin8Extension> = fc.record({
  reserve: u16,
  queueTag: u8,
  queueAction: u8,
  srbFlags: u32,
  timeOutValue: u32,
  queueSortKey: u32,
});

function srbArb(version: number): fc.Arbitrary<VmscsiRequest> {
  return fc.record({
    length: u16,
    srbStatus: u8,
    scsiStatus: u8,
    portNumber: u8,
    pathId: u8,
    targetId: u8,
    lun: u8,
    cdbLength: fc.integer({ min: 0, max: 16 }),
    senseInfoLength: fc.integer({ min: 0, max: senseBufferSize(version) }),
    dataIn: fc.integer({ min: 0, max: 2 }),
    reserved: u8,
    dataTransferLength: u32,
    cdbOrSense: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    win8Extension: isWin8OrLater(version) ? extArb : fc.constant(null),
  });
}

function payloadArb(kind: VstorPayload["kind"], version: number): fc.Arbitrary<VstorPayload> {
  const w = fc.uint8Array({ minLength: 8, maxLength: 8 });
  switch (kind) {
    case "srb":
      return srbArb(version).map((srb) => ({ kind: "srb" as const, srb }));
    case "version":
      return fc.record({ majorMinor: u16, revision: u16 }).map((v) => ({ kind: "version" as const, version: v }));
    case "properties":
      return fc
        .record({ maxChannelCount: u16, flags: u32, maxTransferBytes: u32 })
        .map((properties) => ({ kind: "properties" as const, properties }));
    case "sub-channels":
      return u16.map((subChannelCount) => ({ kind: "sub-channels" as const, subChannelCount }));
    case "fc-wwn":
      return fc
        .record({ primaryActive: u8, primaryPortWwn: w, primaryNodeWwn: w, secondaryPortWwn: w, secondaryNodeWwn: w })
        .map((wwnPacket) => ({ kind: "fc-wwn" as const, wwn: wwnPacket }));
    case "notification":
      return fc.record({ lun: u8, target: u8, path: u8, flags: u8 }).map((notification) => ({ kind: "notification" as const, notification }));
    case "raw": {
      const n = vstorPacketSize(version) - 12;
      return fc.uint8Array({ minLength: n, maxLength: n }).map((bytes) => ({ kind: "raw" as const, bytes }));
    }
    case "none":
      return fc.constant({ kind: "none" as const });
  }
}

const packetCaseArb = fc.tuple(versionArb, opArb, fc.option(opArb, { nil: undefined })).chain(([version, operation, completes]) => {
  const c = operation === VSTOR_OPERATION_COMPLETE_IO ? completes : undefined;
  return fc
    .record({ flags: u32, status: u32, payload: payloadArb(vstorPayloadKind(operation, c), version) })
    .map((rest) => ({ version, completes: c, packet: { operation, ...rest } satisfies VstorPacket }));
});

describe("VSTOR properties", () => {
  it("decode(encode(x)) = x for every operation, payload and version", () => {
    fc.assert(
      fc.property(packetCaseArb, ({ version, completes, packet }) => {
        const bytes = encodeVstorPacket(packet, version);
        expect(bytes.length).toBe(vstorPacketSize(version));
        const decoded = decodeVstorPacket(bytes, { protocolVersion: version, ...(completes !== undefined ? { completes } : {}) });
        expect(decoded).toEqual(packet);
      }),
      FC_RUNS,
    );
  });

  it("random bytes into every VSTOR decoder throw only typed errors", () => {
    const opts = fc.record(
      {
        protocolVersion: fc.oneof(versionArb, u16),
        sender: fc.constantFrom("guest" as const, "host" as const),
        completes: fc.integer({ min: 0, max: 16 }),
        maxTransferBytes: u32,
        requestDataTransferLength: u32,
      },
      { requiredKeys: ["protocolVersion"] },
    );
    // Half the inputs start with a valid operation so the union decoders are reached.
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.tuple(fc.integer({ min: 1, max: 14 }), fc.uint8Array({ minLength: 60, maxLength: 76 })).map(([op, rest]) => {
        const b = new Uint8Array(4 + rest.length);
        b[0] = op;
        b.set(rest, 4);
        return b;
      }),
    );
    fc.assert(
      fc.property(bytesArb, opts, (bytes, o) => {
        onlyTypedErrors(() => decodeVstorPacket(bytes, o));
        onlyTypedErrors(() => decodeVmscsiRequest(bytes, o));
        onlyTypedErrors(() => decodeChannelProperties(bytes, o.protocolVersion));
        onlyTypedErrors(() => decodeProtocolVersion(bytes, o.protocolVersion));
        onlyTypedErrors(() => decodeSubChannelCount(bytes, o.protocolVersion));
        onlyTypedErrors(() => decodeFcWwnPacket(bytes, o.protocolVersion));
        onlyTypedErrors(() => decodeNotificationPacket(bytes, o.protocolVersion));
      }),
      FUZZ_RUNS,
    );
  });
});
