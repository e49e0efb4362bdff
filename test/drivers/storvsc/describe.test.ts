/**
 * Descriptions for the decode CLI and trace labels (storvsc-netvsc.md §1–§3,
 * §7): every field named, invalid input shown rather than thrown.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  READ_TYPE,
  SCSI_STATUS_CHECK_CONDITION,
  SENSE_UNRECOVERED_READ_ERROR,
  SRB_STATUS_ERROR,
  STATUS_SUCCESS,
  VMSTOR_PROTO_VERSION_WIN10,
  VMSTOR_PROTO_VERSION_WIN7,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  buildFixedSenseData,
  buildInquiryCdb,
  buildReadCapacity16Cdb,
  buildReadCdb,
  buildUnmapCdb,
  buildWriteSameCdb,
  describeCdb,
  describeSenseData,
  describeVstorPacket,
  encodeVstorPacket,
  makeExecuteSrbPacket,
  makeSrbCompletionPacket,
  makeVstorCompletionPacket,
} from "../../../drivers/storvsc/protocol/index.js";
import { FUZZ_RUNS, bytesOf } from "./helpers.js";

const WIN10 = VMSTOR_PROTO_VERSION_WIN10;

const request = makeExecuteSrbPacket({
  protocolVersion: WIN10,
  cdb: buildReadCdb(16, 0x123456789n, 8),
  dataIn: READ_TYPE,
  dataTransferLength: 4096,
  lun: 1,
});

describe("describeCdb", () => {
  it("names the command and its fields", () => {
    expect(describeCdb(buildReadCdb(16, 0x123456789n, 8))).toBe("READ(16) lba=4886718345 (0x123456789) blocks=8");
    expect(describeCdb(buildReadCdb(10, 5n, 1, { fua: true }))).toBe("READ(10) lba=5 blocks=1 FUA");
    expect(describeCdb(buildReadCapacity16Cdb())).toBe("READ CAPACITY(16) allocation_length=32 (0x20)");
    expect(describeCdb(buildInquiryCdb(255, 0xb0))).toBe("INQUIRY EVPD page=0xb0 allocation_length=255 (0xff)");
    expect(describeCdb(buildUnmapCdb(24))).toBe("UNMAP parameter_list_length=24 (0x18)");
    expect(describeCdb(buildWriteSameCdb(16, 0n, 8, { unmap: true }))).toBe("WRITE SAME(16) lba=0 blocks=8 UNMAP");
    expect(describeCdb(bytesOf("00 00 00 00 00 00"))).toBe("TEST UNIT READY");
  });

  it("shows invalid CDBs with their bytes and the reason", () => {
    expect(describeCdb(bytesOf("28 01 00 00 00 00 00 00 08 00"))).toBe(
      "READ(10) [28 01 00 00 00 00 00 00 08 00] (invalid: READ(10): RELADR=1 is obsolete and not supported → ILLEGAL REQUEST 05/24/00 INVALID FIELD IN CDB)",
    );
    expect(describeCdb(bytesOf("c1 00"))).toMatch(/^opcode 0xc1 \[c1 00\] \(invalid: .*05\/20\/00/);
    expect(describeCdb(new Uint8Array(0))).toBe("CDB (empty)");
  });
});

describe("describeSenseData", () => {
  it("names key, ASC/ASCQ and the field pointer", () => {
    expect(describeSenseData(buildFixedSenseData(SENSE_UNRECOVERED_READ_ERROR))).toBe("MEDIUM ERROR 03/11/00 UNRECOVERED READ ERROR (fixed)");
    expect(describeSenseData(bytesOf("70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c8 00 01"))).toBe(
      "ILLEGAL REQUEST 05/24/00 INVALID FIELD IN CDB (fixed, field pointer CDB byte 1 bit 0)",
    );
    expect(describeSenseData(new Uint8Array(3))).toMatch(/^sense \[00 00 00\] \(invalid: /);
  });
});

describe("describeVstorPacket", () => {
  it("renders an EXECUTE_SRB as a tree naming every field", () => {
    expect(describeVstorPacket(encodeVstorPacket(request, WIN10))).toBe(
      [
        "vstor_packet EXECUTE_SRB(3) flags=0x1[REQUEST_COMPLETION_FLAG] status=0x00000000[STATUS_SUCCESS] size=64 protocol=6.2 (WIN10)",
        "  vmscsi_request length=52 (0x34) srb_status=0x00[PENDING] scsi_status=0x00[GOOD] port_number=0 path_id=0 target_id=0 lun=1 cdb_length=16 sense_info_length=20 data_in=1[READ_TYPE] reserved=0 data_transfer_length=4096 (0x1000)",
        "    cdb: READ(16) lba=4886718345 (0x123456789) blocks=8",
        "    win8_extension reserve=0 queue_tag=0xff queue_action=0x20 srb_flags=0x14a[QUEUE_ACTION_ENABLE|DISABLE_SYNCH_TRANSFER|DATA_IN|NO_QUEUE_FREEZE] time_out_value=60 queue_sort_key=0",
      ].join("\n"),
    );
  });

  it("renders on one line on request", () => {
    const line = describeVstorPacket(encodeVstorPacket(request, WIN10), { style: "line" });
    expect(line).not.toContain("\n");
    expect(line).toContain("{ vmscsi_request ");
    expect(line).toContain("{ cdb: READ(16) lba=4886718345 (0x123456789) blocks=8; win8_extension ");
  });

  it("recognises an SRB completion and shows its sense", () => {
    const srb = request.payload.kind === "srb" ? request.payload.srb : undefined;
    if (srb === undefined) throw new Error("unreachable");
    const completion = makeSrbCompletionPacket({
      protocolVersion: VMSTOR_PROTO_VERSION_WIN7,
      request: { ...srb, win8Extension: null },
      srbStatus: SRB_STATUS_ERROR,
      scsiStatus: SCSI_STATUS_CHECK_CONDITION,
      dataTransferLength: 0,
      sense: buildFixedSenseData(SENSE_UNRECOVERED_READ_ERROR),
    });
    const text = describeVstorPacket(encodeVstorPacket(completion, VMSTOR_PROTO_VERSION_WIN7));
    expect(text).toContain("COMPLETE_IO(1) flags=0x0 status=0xc0000185[STATUS_IO_DEVICE_ERROR] size=48 protocol=4.2 (WIN7)");
    expect(text).toContain("srb_status=0x84[ERROR|AUTOSENSE_VALID] scsi_status=0x02[CHECK_CONDITION]");
    expect(text).toContain("sense_data: MEDIUM ERROR 03/11/00 UNRECOVERED READ ERROR (fixed)");
    expect(text).not.toContain("win8_extension");
  });

  it("shows channel properties when told what the completion answers", () => {
    const p = makeVstorCompletionPacket(STATUS_SUCCESS, { kind: "properties", properties: { maxChannelCount: 7, flags: 1, maxTransferBytes: 0x40000 } });
    const text = describeVstorPacket(encodeVstorPacket(p, WIN10), { completes: VSTOR_OPERATION_QUERY_PROPERTIES, style: "line" });
    expect(text).toContain("vmstorage_channel_properties max_channel_cnt=7 flags=0x1[SUPPORTS_MULTI_CHANNEL] max_transfer_bytes=262144 (0x40000)");
    // Without the context the union is shown raw.
    expect(describeVstorPacket(encodeVstorPacket(p, WIN10))).toContain("union [00 00 00 00 07 00");
  });

  it("shows invalid packets instead of throwing", () => {
    const bad = encodeVstorPacket(request, WIN10);
    bad[20] = 40;
    const text = describeVstorPacket(bad);
    expect(text).toContain("vstor_packet (invalid: VSTOR: vmscsi_request.cdb_length=40 (0x28) exceeds STORVSC_MAX_CMD_LEN (16))");
    expect(text).toContain("bytes[64] 03 00 00 00 01 00 00 00");
  });

  it("never throws on random bytes or options", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 100 }),
        fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
        fc.constantFrom("tree" as const, "line" as const),
        (bytes, protocolVersion, completes, style) => {
          if (bytes.length > 0 && completes !== undefined) bytes[0] = completes === 0 ? VSTOR_OPERATION_COMPLETE_IO : bytes[0] ?? 0;
          const text = describeVstorPacket(bytes, {
            style,
            ...(protocolVersion !== undefined ? { protocolVersion } : {}),
            ...(completes !== undefined ? { completes } : {}),
          });
          expect(typeof text).toBe("string");
          expect(typeof describeCdb(bytes.subarray(0, 16))).toBe("string");
          expect(typeof describeSenseData(bytes.subarray(0, 20))).toBe("string");
        },
      ),
      FUZZ_RUNS,
    );
  });
});
