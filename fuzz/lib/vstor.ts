/**
 * VSTOR packets and SCSI CDBs from the real layouts (storvsc-netvsc.md
 * §1–§7): every operation a guest sends, SRBs carrying every command the
 * host answers (READ/WRITE 6/10/12/16, INQUIRY and its VPD pages, READ
 * CAPACITY, REPORT LUNS, MODE SENSE, SYNCHRONIZE CACHE, UNMAP, WRITE SAME,
 * START STOP, TEST UNIT READY, REQUEST SENSE) and raw CDBs, built with the
 * driver's own builders; then their fields — VSTOR header, SRB fields, CDB
 * bytes — are corrupted by `mutate.ts`.
 */
import fc from "fast-check";
import { InvalidArgumentError } from "../../core/index.js";
import {
  READ_TYPE,
  UNKNOWN_TYPE,
  VMSCSI_REQUEST_LAYOUT,
  VMSCSI_WIN8_EXTENSION_LAYOUT,
  VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT,
  VMSTORAGE_PROTOCOL_VERSION_LAYOUT,
  VMSTOR_PROTO_VERSION_WIN10,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_RESET_LUN,
  VSTOR_PACKET_LAYOUT,
  VSTOR_SUB_CHANNEL_COUNT_LAYOUT,
  WRITE_TYPE,
  buildInquiryCdb,
  buildModeSenseCdb,
  buildReadCapacity10Cdb,
  buildReadCapacity16Cdb,
  buildReadCdb,
  buildReportLunsCdb,
  buildRequestSenseCdb,
  buildStartStopUnitCdb,
  buildSynchronizeCacheCdb,
  buildTestUnitReadyCdb,
  buildUnmapCdb,
  buildWriteCdb,
  buildWriteSameCdb,
  encodeVstorPacket,
  makeExecuteSrbPacket,
  makeVstorRequestPacket,
} from "../../drivers/storvsc/protocol/index.js";
import { layoutFields, type Field } from "./mutate.js";

/** An LBA relative to the disk's end (`end`: capacity + delta) or absolute. */
export type LbaSpec = { readonly kind: "end"; readonly delta: number } | { readonly kind: "abs"; readonly lba: bigint };

export type CdbSpec =
  | { readonly k: "read" | "write"; readonly size: 6 | 10 | 12 | 16; readonly lba: LbaSpec; readonly blocks: number; readonly fua: boolean }
  | { readonly k: "inquiry"; readonly alloc: number; readonly vpd: number | null }
  | { readonly k: "rc10" | "tur" | "start-stop" }
  | { readonly k: "rc16" | "request-sense"; readonly alloc: number }
  | { readonly k: "report-luns"; readonly alloc: number; readonly select: number }
  | { readonly k: "mode-sense"; readonly size: 6 | 10; readonly page: number; readonly alloc: number; readonly pc: number }
  | { readonly k: "sync"; readonly size: 10 | 16; readonly lba: LbaSpec; readonly blocks: number }
  | { readonly k: "unmap"; readonly paramLen: number }
  | { readonly k: "write-same"; readonly size: 10 | 16; readonly lba: LbaSpec; readonly blocks: number; readonly unmap: boolean; readonly ndob: boolean }
  | { readonly k: "raw"; readonly bytes: Uint8Array };

const lbaSpec: fc.Arbitrary<LbaSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -8, max: 2 }).map((delta): LbaSpec => ({ kind: "end", delta })) },
  { weight: 3, arbitrary: fc.bigInt({ min: 0n, max: 64n }).map((lba): LbaSpec => ({ kind: "abs", lba })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(0x1f_ffffn, 0xffff_ffffn, 0x1_0000_0000n, 0x7fff_ffff_ffff_ffffn, 0xffff_ffff_ffff_ffffn).map((lba): LbaSpec => ({ kind: "abs", lba })),
  },
);
const blocks = fc.oneof(fc.constantFrom(0, 1, 8, 255, 256, 512, 65535, 65536), fc.nat(64));
const alloc = fc.oneof(fc.constantFrom(0, 1, 4, 5, 36, 255, 256, 4096, 65535), fc.nat(1024));

export const cdbSpec: fc.Arbitrary<CdbSpec> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ k: fc.constantFrom("read" as const, "write" as const), size: fc.constantFrom(6 as const, 10 as const, 12 as const, 16 as const), lba: lbaSpec, blocks, fua: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("inquiry" as const), alloc, vpd: fc.option(fc.constantFrom(0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2, 0x42), { nil: null }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom("rc10" as const, "tur" as const, "start-stop" as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom("rc16" as const, "request-sense" as const), alloc }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("report-luns" as const), alloc, select: fc.constantFrom(0, 1, 2, 0xff) }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("mode-sense" as const), size: fc.constantFrom(6 as const, 10 as const), page: fc.constantFrom(0x3f, 0x08, 0x0a, 0x1c, 0x00, 0x2a), alloc, pc: fc.nat(3) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("sync" as const), size: fc.constantFrom(10 as const, 16 as const), lba: lbaSpec, blocks }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("unmap" as const), paramLen: fc.oneof(fc.constantFrom(0, 8, 24, 40), fc.nat(512)) }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("write-same" as const), size: fc.constantFrom(10 as const, 16 as const), lba: lbaSpec, blocks, unmap: fc.boolean(), ndob: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("raw" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
);

function lbaOf(s: LbaSpec, capacityBlocks: bigint): bigint {
  if (s.kind === "abs") return s.lba;
  const v = capacityBlocks + BigInt(s.delta);
  return v < 0n ? 0n : v;
}

/** The CDB bytes, built with the driver's builders; arguments a builder refuses become a raw CDB of that opcode. */
export function buildCdbFrom(s: CdbSpec, capacityBlocks: bigint): Uint8Array {
  try {
    switch (s.k) {
      case "read":
      case "write":
        return (s.k === "read" ? buildReadCdb : buildWriteCdb)(s.size, lbaOf(s.lba, capacityBlocks), s.blocks, { fua: s.fua });
      case "inquiry":
        return buildInquiryCdb(s.alloc, s.vpd ?? undefined);
      case "rc10":
        return buildReadCapacity10Cdb();
      case "rc16":
        return buildReadCapacity16Cdb(s.alloc);
      case "tur":
        return buildTestUnitReadyCdb();
      case "start-stop":
        return buildStartStopUnitCdb(true);
      case "request-sense":
        return buildRequestSenseCdb(s.alloc);
      case "report-luns":
        return buildReportLunsCdb(s.alloc, s.select);
      case "mode-sense":
        return buildModeSenseCdb(s.size, s.page, s.alloc, { pageControl: s.pc });
      case "sync":
        return buildSynchronizeCacheCdb(s.size, lbaOf(s.lba, capacityBlocks), s.blocks);
      case "unmap":
        return buildUnmapCdb(s.paramLen);
      case "write-same":
        return buildWriteSameCdb(s.size, lbaOf(s.lba, capacityBlocks), s.blocks, { unmap: s.unmap, ndob: s.ndob });
      case "raw":
        return s.bytes;
    }
  } catch (e) {
    if (!(e instanceof InvalidArgumentError)) throw e;
    // A value the builder refuses (an LBA beyond READ(6)'s 21 bits…): keep the opcode, garbage after.
    const raw = new Uint8Array(s.k === "read" || s.k === "write" ? s.size : 16);
    raw[0] = s.k === "read" ? 0x28 : s.k === "write" ? 0x2a : 0;
    raw.fill(0xff, 1);
    return raw;
  }
}

/** Data direction the command implies (what a correct guest puts in data_in). */
export function dataInOf(s: CdbSpec): number {
  switch (s.k) {
    case "write":
    case "unmap":
    case "write-same":
      return WRITE_TYPE;
    case "read":
    case "inquiry":
    case "rc10":
    case "rc16":
    case "request-sense":
    case "report-luns":
    case "mode-sense":
      return READ_TYPE;
    default:
      return UNKNOWN_TYPE;
  }
}

export type VstorBody =
  | { readonly k: "srb"; readonly cdb: CdbSpec; readonly lun: number; readonly target: number; readonly path: number; readonly dataIn: number | null; readonly dtl: number | null }
  | { readonly k: "version"; readonly version: number }
  | { readonly k: "sub-channels"; readonly count: number }
  | { readonly k: "none" };

export interface VstorSpec {
  readonly operation: number;
  readonly body: VstorBody;
}

const guestOps = [
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_RESET_LUN,
  VSTOR_OPERATION_RESET_ADAPTER,
  VSTOR_OPERATION_RESET_BUS,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
];

export const vstorSpec: fc.Arbitrary<VstorSpec> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      operation: fc.constant(VSTOR_OPERATION_EXECUTE_SRB),
      body: fc.record({
        k: fc.constant("srb" as const),
        cdb: cdbSpec,
        lun: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(2, 7, 63, 255) }),
        target: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 255) }),
        path: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 255) }),
        dataIn: fc.option(fc.constantFrom(0, 1, 2, 3, 255), { nil: null, freq: 4 }),
        dtl: fc.option(fc.oneof(fc.constantFrom(0, 1, 511, 512, 4096, 0x40000, 0x40001, 0xffff_ffff), fc.nat(0x10000)), { nil: null, freq: 2 }),
      }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      operation: fc.constant(VSTOR_OPERATION_QUERY_PROTOCOL_VERSION),
      body: fc.record({ k: fc.constant("version" as const), version: fc.oneof(fc.constantFrom(0x0602, 0x0600, 0x0501, 0x0402, 0x0200), fc.nat(0xffff)) }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      operation: fc.constant(VSTOR_OPERATION_CREATE_SUB_CHANNELS),
      body: fc.record({ k: fc.constant("sub-channels" as const), count: fc.oneof(fc.constantFrom(0, 1, 2, 8, 64, 65, 0xffff), fc.nat(16)) }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ operation: fc.oneof(fc.constantFrom(...guestOps), fc.nat(20), fc.constant(0xffff_ffff)), body: fc.constant<VstorBody>({ k: "none" }) }),
  },
);

export interface BuiltVstor {
  readonly bytes: Uint8Array;
  /** The data buffer the request names, in bytes (what data_transfer_length says). */
  readonly dataLength: number;
}

/** A 64-byte (Win8+) VSTOR packet for `s`, as a correct guest would build it; corruption comes after. */
export function buildVstor(s: VstorSpec, capacityBlocks: bigint, blockSize = 512): BuiltVstor {
  const v = VMSTOR_PROTO_VERSION_WIN10;
  switch (s.body.k) {
    case "srb": {
      const b = s.body;
      const cdb = buildCdbFrom(b.cdb, capacityBlocks);
      const natural = b.cdb.k === "read" || b.cdb.k === "write" ? b.cdb.blocks * blockSize : b.cdb.k === "unmap" ? b.cdb.paramLen : "alloc" in b.cdb ? b.cdb.alloc : b.cdb.k === "write-same" ? blockSize : 0;
      const dtl = (b.dtl ?? Math.min(natural, 0x40000)) >>> 0;
      const pkt = makeExecuteSrbPacket({ protocolVersion: v, cdb, dataIn: b.dataIn ?? dataInOf(b.cdb), dataTransferLength: dtl, lun: b.lun, targetId: b.target, pathId: b.path });
      const bytes = encodeVstorPacket(pkt, v);
      new DataView(bytes.buffer).setUint32(0, s.operation, true);
      return { bytes, dataLength: dtl };
    }
    case "version":
      return {
        bytes: encodeVstorPacket(makeVstorRequestPacket(s.operation, { kind: "version", version: { majorMinor: s.body.version, revision: 0 } }), v),
        dataLength: 0,
      };
    case "sub-channels":
      return { bytes: encodeVstorPacket(makeVstorRequestPacket(s.operation, { kind: "sub-channels", subChannelCount: s.body.count }), v), dataLength: 0 };
    case "none": {
      const bytes = encodeVstorPacket(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION), v);
      new DataView(bytes.buffer).setUint32(0, s.operation, true);
      return { bytes, dataLength: 0 };
    }
  }
}

/** Fields of a VSTOR packet: header, SRB, Win8 extension, the other union members, and CDB sub-fields. */
export const VSTOR_FIELDS: readonly Field[] = [
  ...layoutFields(VSTOR_PACKET_LAYOUT),
  ...layoutFields(VMSCSI_REQUEST_LAYOUT, "srb."),
  ...layoutFields(VMSCSI_WIN8_EXTENSION_LAYOUT, "srb."),
  ...layoutFields(VMSTORAGE_CHANNEL_PROPERTIES_LAYOUT, "properties."),
  ...layoutFields(VMSTORAGE_PROTOCOL_VERSION_LAYOUT, "version."),
  ...layoutFields(VSTOR_SUB_CHANNEL_COUNT_LAYOUT, "subch."),
  // The CDB starts at 28: opcode, flags, the LBA and length fields of the 10- and 16-byte forms.
  { name: "cdb.opcode", offset: 28, size: 1 },
  { name: "cdb.flags", offset: 29, size: 1 },
  { name: "cdb.lba10", offset: 30, size: 4 },
  { name: "cdb.len10", offset: 35, size: 2 },
  { name: "cdb.lba16", offset: 30, size: 8 },
  { name: "cdb.len16", offset: 38, size: 4 },
  { name: "cdb.control", offset: 37, size: 1 },
];
