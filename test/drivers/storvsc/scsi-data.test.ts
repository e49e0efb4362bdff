/**
 * SCSI response and parameter data (storvsc-netvsc.md §6, §7.2–§7.5):
 * READ CAPACITY(10/16), standard INQUIRY and VPD pages, REPORT LUNS,
 * MODE SENSE headers and the caching page, the UNMAP parameter list —
 * golden bytes, round trips, rejections, random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  BLOCK_LIMITS_VPD_LAYOUT,
  CODE_SET_ASCII,
  CODE_SET_BINARY,
  DESIGNATOR_TYPE_NAA,
  DESIGNATOR_TYPE_T10_VENDOR_ID,
  type DesignationDescriptor,
  MEDIUM_ROTATION_RATE_NON_ROTATING,
  MODE_PAGE_CACHING,
  PROVISIONING_TYPE_THIN,
  SENSE_INVALID_FIELD_IN_PARAMETER_LIST,
  SENSE_LBA_OUT_OF_RANGE,
  SENSE_PARAMETER_LIST_LENGTH_ERROR,
  STANDARD_INQUIRY_DATA_LAYOUT,
  ScsiCheckConditionError,
  TYPE_NO_LUN,
  VPD_BLOCK_LIMITS,
  VPD_DEVICE_IDENTIFICATION,
  buildBlockDeviceCharacteristicsPage,
  buildBlockLimitsPage,
  buildCachingModePage,
  buildDeviceIdentificationPage,
  buildLogicalBlockProvisioningPage,
  buildModeSenseData,
  buildReadCapacity10Data,
  buildReadCapacity16Data,
  buildReportLunsData,
  buildStandardInquiryData,
  buildSupportedVpdPagesPage,
  buildUnitSerialNumberPage,
  buildUnmapParameterList,
  findModePage,
  parseCachingModePage,
  parseModeSenseData,
  parseReadCapacity10Data,
  parseReadCapacity16Data,
  parseReportLunsData,
  parseStandardInquiryData,
  parseUnmapParameterList,
  parseVpdPage,
} from "../../../drivers/storvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, ascii, bytesOf, expectTypedError, hexOf, onlyTypedErrors, printableAscii, thrown, zeros } from "./helpers.js";

const same = (actual: Uint8Array, hex: string): void => {
  expect(hexOf(actual)).toBe(hexOf(bytesOf(hex)));
};

describe("READ CAPACITY", () => {
  it("(10) golden bytes, and 0xFFFFFFFF when the last LBA does not fit", () => {
    same(buildReadCapacity10Data(0x1fffffn, 512), "00 1f ff ff 00 00 02 00");
    same(buildReadCapacity10Data(0x100000000n, 4096), "ff ff ff ff 00 00 10 00");
    expect(parseReadCapacity10Data(bytesOf("ff ff ff ff 00 00 10 00"))).toEqual({ returnedLba: 0xffffffff, blockLength: 4096, needsReadCapacity16: true });
  });

  it("(16) golden bytes: last LBA, block length, exponent, LBPME/LBPRZ", () => {
    const b = buildReadCapacity16Data({ lastLba: 0x123456789n, blockLength: 512, logicalPerPhysicalExponent: 3, lbpme: true, lbprz: true });
    same(b, `00 00 00 01 23 45 67 89 | 00 00 02 00 | 00 | 03 | c0 00 | ${zeros(16)}`);
    expect(parseReadCapacity16Data(b.subarray(0, 12))).toMatchObject({ lastLba: 0x123456789n, blockLength: 512, lbpme: false });
  });

  it("rejects short data and impossible block lengths", () => {
    expectTypedError(thrown(() => parseReadCapacity10Data(new Uint8Array(7))), ProtocolError, { field: "data length", value: 7 });
    expectTypedError(thrown(() => parseReadCapacity10Data(bytesOf("00 00 00 10 00 00 00 00"))), ProtocolError, { field: "LOGICAL BLOCK LENGTH", value: 0 });
    expectTypedError(thrown(() => parseReadCapacity16Data(new Uint8Array(11))), ProtocolError, { field: "data length", value: 11 });
    expectTypedError(thrown(() => parseReadCapacity16Data(bytesOf(`${zeros(8)} 00 00 03 00`))), ProtocolError, { field: "LOGICAL BLOCK LENGTH", value: 0x300 });
    expect(thrown(() => buildReadCapacity10Data(0n, 520))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("INQUIRY", () => {
  it("standard data: OV template for a present disk, byte for byte", () => {
    const b = buildStandardInquiryData({ vendor: "Msft", product: "Virtual Disk", revision: "1.0" });
    same(b, `00 00 05 02 63 00 00 02 | ${ascii("Msft    ")} | ${ascii("Virtual Disk    ")} | ${ascii("1.0 ")} | ${zeros(68)}`);
    expect(parseStandardInquiryData(b)).toMatchObject({ vendor: "Msft", product: "Virtual Disk", revision: "1.0", cmdQue: true, version: 5, additionalLength: 99, truncated: false });
    expect(parseStandardInquiryData(b.subarray(0, 36))).toMatchObject({ product: "Virtual Disk", truncated: true });
    expect(STANDARD_INQUIRY_DATA_LAYOUT.version_descriptors.offset).toBe(58);
  });

  it("standard data for a missing LUN starts 0x7F", () => {
    const b = buildStandardInquiryData({ vendor: "", product: "", revision: "", peripheralQualifier: 3, peripheralDeviceType: 0x1f, cmdQue: false });
    expect(b[0]).toBe(TYPE_NO_LUN);
    expect(parseStandardInquiryData(b)).toMatchObject({ peripheralQualifier: 3, peripheralDeviceType: 0x1f, vendor: "" });
  });

  it("VPD 0x00 supported pages", () => {
    same(buildSupportedVpdPagesPage([0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]), "00 00 00 06 00 80 83 b0 b1 b2");
    expect(parseVpdPage(bytesOf("00 00 00 06 00 80 83 b0 b1 b2"))).toMatchObject({ kind: "supported-pages", pages: [0, 0x80, 0x83, 0xb0, 0xb1, 0xb2] });
    expect(thrown(() => buildSupportedVpdPagesPage([0x80, 0x00]))).toBeInstanceOf(InvalidArgumentError);
  });

  it("VPD 0x80 unit serial number", () => {
    same(buildUnitSerialNumberPage("SN123"), "00 80 00 05 53 4e 31 32 33");
    expect(parseVpdPage(bytesOf("00 80 00 05 53 4e 31 32 33"))).toMatchObject({ kind: "unit-serial-number", serial: "SN123" });
  });

  const naa: DesignationDescriptor = {
    protocolIdentifier: 0,
    codeSet: CODE_SET_BINARY,
    piv: false,
    association: 0,
    designatorType: DESIGNATOR_TYPE_NAA,
    designator: bytesOf("60 02 24 80 11 22 33 44"),
  };
  const t10: DesignationDescriptor = {
    protocolIdentifier: 0,
    codeSet: CODE_SET_ASCII,
    piv: false,
    association: 0,
    designatorType: DESIGNATOR_TYPE_T10_VENDOR_ID,
    designator: bytesOf(ascii("MSFT")),
  };
  const page83 = `00 83 00 14 | 01 03 00 08 60 02 24 80 11 22 33 44 | 02 01 00 04 ${ascii("MSFT")}`;

  it("VPD 0x83 device identification", () => {
    same(buildDeviceIdentificationPage([naa, t10]), page83);
    expect(parseVpdPage(bytesOf(page83), VPD_DEVICE_IDENTIFICATION)).toEqual({
      kind: "device-identification",
      header: { peripheralQualifier: 0, peripheralDeviceType: 0, pageCode: 0x83, pageLength: 0x14, truncated: false },
      descriptors: [naa, t10],
    });
  });

  it("VPD 0x83: a truncated page keeps whole descriptors; an overrunning descriptor is refused", () => {
    const cut = bytesOf(page83).subarray(0, 20);
    expect(parseVpdPage(cut)).toMatchObject({ header: { truncated: true }, descriptors: [naa] });
    const bad = bytesOf(page83);
    bad[7] = 0x20;
    expectTypedError(thrown(() => parseVpdPage(bad)), ProtocolError, { field: "descriptor at byte 4 DESIGNATOR LENGTH", value: 0x20 });
    expectTypedError(thrown(() => parseVpdPage(bytesOf(page83), VPD_BLOCK_LIMITS)), ProtocolError, { field: "PAGE CODE", value: 0x83 });
    expectTypedError(thrown(() => parseVpdPage(bytesOf("00 83 00"))), ProtocolError, { field: "data length", value: 3 });
  });

  it("VPD 0xB0 block limits at their offsets", () => {
    const b = buildBlockLimitsPage({
      wsnz: true,
      maximumTransferLength: 0x800,
      optimalTransferLength: 0x100,
      maximumUnmapLbaCount: 0xffffffff,
      maximumUnmapBlockDescriptorCount: 0x100,
      optimalUnmapGranularity: 8,
      ugavalid: true,
      maximumWriteSameLength: 0x10000n,
    });
    same(
      b,
      `00 b0 00 3c | 01 | 00 | 00 00 | 00 00 08 00 | 00 00 01 00 | 00 00 00 00 | ff ff ff ff | 00 00 01 00 | 00 00 00 08
       80 00 00 00 | 00 00 00 00 00 01 00 00 | ${zeros(20)}`,
    );
    expect(BLOCK_LIMITS_VPD_LAYOUT.maximum_unmap_lba_count.offset).toBe(20);
    const p = parseVpdPage(b);
    expect(p).toMatchObject({ kind: "block-limits", limits: { maximumTransferLength: 0x800, ugavalid: true, maximumWriteSameLength: 0x10000n } });
    // Cut short: fields not sent read as 0.
    expect(parseVpdPage(b.subarray(0, 16))).toMatchObject({ header: { truncated: true }, limits: { maximumTransferLength: 0x800, maximumUnmapLbaCount: 0 } });
  });

  it("VPD 0xB1 block device characteristics (non-rotating)", () => {
    const b = buildBlockDeviceCharacteristicsPage({ mediumRotationRate: MEDIUM_ROTATION_RATE_NON_ROTATING });
    same(b, `00 b1 00 3c 00 01 ${zeros(58)}`);
    expect(parseVpdPage(b)).toMatchObject({ kind: "block-device-characteristics", characteristics: { mediumRotationRate: 1 } });
  });

  it("VPD 0xB2 logical block provisioning", () => {
    const b = buildLogicalBlockProvisioningPage({ lbpu: true, lbpws: true, lbprz: 1, provisioningType: PROVISIONING_TYPE_THIN });
    same(b, "00 b2 00 04 00 c4 02 00");
    expect(parseVpdPage(b)).toMatchObject({ kind: "logical-block-provisioning", provisioning: { lbpu: true, lbpws: true, lbpws10: false, lbprz: 1, provisioningType: 2 } });
  });

  it("rejects standard data shorter than 5 bytes", () => {
    expectTypedError(thrown(() => parseStandardInquiryData(new Uint8Array(4))), ProtocolError, { field: "data length", value: 4 });
    expect(thrown(() => buildStandardInquiryData({ vendor: "TOO LONG!", product: "", revision: "" }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildStandardInquiryData({ vendor: "a\u0001", product: "", revision: "" }))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("REPORT LUNS", () => {
  const golden = `00 00 00 18 00 00 00 00 | 00 00 00 00 00 00 00 00 | 00 01 00 00 00 00 00 00 | 00 05 00 00 00 00 00 00`;

  it("golden bytes and parse", () => {
    same(buildReportLunsData([0, 1, 5]), golden);
    expect(parseReportLunsData(bytesOf(golden))).toEqual({ lunListLength: 24, luns: [0, 1, 5], truncated: false });
    same(buildReportLunsData([]), "00 00 00 00 00 00 00 00");
  });

  it("a list cut by the allocation length is marked truncated", () => {
    expect(parseReportLunsData(bytesOf(golden).subarray(0, 20))).toEqual({ lunListLength: 24, luns: [0], truncated: true });
  });

  it("rejects a short header, a ragged list length and multi-level LUNs", () => {
    expectTypedError(thrown(() => parseReportLunsData(new Uint8Array(7))), ProtocolError, { field: "data length", value: 7 });
    const ragged = bytesOf(golden);
    ragged[3] = 0x0c;
    expectTypedError(thrown(() => parseReportLunsData(ragged)), ProtocolError, { field: "LUN LIST LENGTH", value: 12 });
    const multi = bytesOf(golden);
    multi[18] = 0x40;
    expectTypedError(thrown(() => parseReportLunsData(multi)), ProtocolError, { field: "LUN entry 1 byte 2", value: 0x40 });
  });
});

describe("MODE SENSE", () => {
  const caching = buildCachingModePage({ wce: true });

  it("caching page, short (OV) and full forms", () => {
    same(caching, "08 0a 04 00 00 00 00 00 00 00 00 00");
    const full = buildCachingModePage({ rcd: true, extended: { fsw: true, lbcss: false, dra: false, nvDis: false, numberOfCacheSegments: 4, cacheSegmentSize: 0x100 } });
    same(full, "08 12 01 00 00 00 00 00 00 00 00 00 80 04 01 00 00 00 00 00");
    expect(parseCachingModePage(full)).toMatchObject({ rcd: true, wce: false, extended: { fsw: true, numberOfCacheSegments: 4 } });
  });

  it("MODE SENSE(6) data: length 15, DPOFUA, caching page", () => {
    const d = buildModeSenseData({ cdbSize: 6, dpoFua: true, pages: [caching] });
    same(d, "0f 00 10 00 | 08 0a 04 00 00 00 00 00 00 00 00 00");
    const parsed = parseModeSenseData(d, 6);
    expect(parsed.header).toMatchObject({ modeDataLength: 15, dpoFua: true, writeProtected: false, blockDescriptorLength: 0 });
    const page = findModePage(parsed, MODE_PAGE_CACHING);
    expect(page && parseCachingModePage(page.bytes).wce).toBe(true);
  });

  it("MODE SENSE(10) data: length 18, write protected", () => {
    const d = buildModeSenseData({ cdbSize: 10, writeProtected: true, dpoFua: true, pages: [caching] });
    same(d, "00 12 00 90 00 00 00 00 | 08 0a 04 00 00 00 00 00 00 00 00 00");
    expect(parseModeSenseData(d, 10)).toMatchObject({ header: { modeDataLength: 18, writeProtected: true }, truncated: false });
    expect(parseModeSenseData(d.subarray(0, 8), 10)).toMatchObject({ pages: [], truncated: true });
  });

  it("rejects inconsistent lengths", () => {
    expectTypedError(thrown(() => parseModeSenseData(bytesOf("0f 00 00"), 6)), ProtocolError, { field: "data length", value: 3 });
    expectTypedError(thrown(() => parseModeSenseData(bytesOf("02 00 00 00"), 6)), ProtocolError, { field: "MODE DATA LENGTH", value: 2 });
    expectTypedError(thrown(() => parseModeSenseData(bytesOf("0f 00 00 20 | 08 0a 04 00 00 00 00 00 00 00 00 00"), 6)), ProtocolError, {
      field: "BLOCK DESCRIPTOR LENGTH",
      value: 0x20,
    });
    expectTypedError(thrown(() => parseModeSenseData(bytesOf("0f 00 00 00 | 08 0e 04 00 00 00 00 00 00 00 00 00"), 6)), ProtocolError, {
      field: "page at byte 4 PAGE LENGTH",
      value: 0x0e,
    });
    expectTypedError(thrown(() => parseCachingModePage(bytesOf("1c 0a 00 00 00 00 00 00 00 00 00 00"))), ProtocolError, { field: "PAGE CODE", value: 0x1c });
    expectTypedError(thrown(() => parseCachingModePage(bytesOf("08 06 00 00 00 00 00 00"))), ProtocolError, { field: "PAGE LENGTH", value: 6 });
  });
});

describe("UNMAP parameter list", () => {
  const golden = `00 26 00 20 00 00 00 00 | 00 00 00 00 00 00 10 00 | 00 00 00 08 | 00 00 00 00
                  00 00 00 01 23 45 67 89 | 00 00 01 00 | 00 00 00 00`;
  const descriptors = [
    { lba: 0x1000n, blocks: 8 },
    { lba: 0x123456789n, blocks: 0x100 },
  ];

  it("golden bytes and parse", () => {
    same(buildUnmapParameterList(descriptors), golden);
    expect(parseUnmapParameterList(bytesOf(golden))).toEqual(descriptors);
    expect(parseUnmapParameterList(new Uint8Array(0))).toEqual([]);
  });

  it("ignores a trailing partial descriptor (SBC)", () => {
    const b = bytesOf(golden);
    b[3] = 0x1c;
    expect(parseUnmapParameterList(b)).toEqual([descriptors[0]]);
  });

  it("rejects with the sense the host returns", () => {
    expectTypedError(thrown(() => parseUnmapParameterList(new Uint8Array(5))), ScsiCheckConditionError, {
      field: "PARAMETER LIST LENGTH",
      value: 5,
      sense: SENSE_PARAMETER_LIST_LENGTH_ERROR,
    });
    const longData = bytesOf(golden);
    longData[1] = 0x40;
    expectTypedError(thrown(() => parseUnmapParameterList(longData)), ScsiCheckConditionError, {
      field: "UNMAP DATA LENGTH",
      value: 0x40,
      sense: SENSE_INVALID_FIELD_IN_PARAMETER_LIST,
      fieldPointer: { inCdb: false, byte: 0, bit: null },
    });
    const longBd = bytesOf(golden);
    longBd[3] = 0x30;
    expectTypedError(thrown(() => parseUnmapParameterList(longBd)), ScsiCheckConditionError, {
      field: "UNMAP BLOCK DESCRIPTOR DATA LENGTH",
      value: 0x30,
      fieldPointer: { inCdb: false, byte: 2, bit: null },
    });
    const wrap = buildUnmapParameterList([{ lba: 0xffffffffffffffffn, blocks: 2 }]);
    expectTypedError(thrown(() => parseUnmapParameterList(wrap)), ScsiCheckConditionError, { sense: SENSE_LBA_OUT_OF_RANGE, fieldPointer: { inCdb: false, byte: 8, bit: null } });
    expectTypedError(thrown(() => parseUnmapParameterList(bytesOf(golden), { maxDescriptors: 1 })), ScsiCheckConditionError, { field: "descriptor count", value: 2 });
    expectTypedError(thrown(() => parseUnmapParameterList(bytesOf(golden), { maxLbaCount: 0xff })), ScsiCheckConditionError, {
      field: "descriptor 1 NUMBER OF LOGICAL BLOCKS",
      value: 0x100,
    });
  });
});

// ---------------------------------------------------------------------------
// Properties

const bool = fc.boolean();
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const blockLength = fc.integer({ min: 9, max: 16 }).map((e) => 2 ** e); // 512 … MAX_LOGICAL_BLOCK_LENGTH

describe("response data properties", () => {
  it("READ CAPACITY(16) round trip", () => {
    const arb = fc.record({
      lastLba: u64,
      blockLength,
      protectionType: fc.integer({ min: 0, max: 7 }),
      protectionEnabled: bool,
      piExponent: fc.integer({ min: 0, max: 15 }),
      logicalPerPhysicalExponent: fc.integer({ min: 0, max: 15 }),
      lbpme: bool,
      lbprz: bool,
      lowestAlignedLba: fc.integer({ min: 0, max: 0x3fff }),
    });
    fc.assert(fc.property(arb, (x) => {
      expect(parseReadCapacity16Data(buildReadCapacity16Data(x))).toEqual(x);
    }), FC_RUNS);
    fc.assert(
      fc.property(u64, blockLength, (lba, bl) => {
        const p = parseReadCapacity10Data(buildReadCapacity10Data(lba, bl));
        expect(p.returnedLba).toBe(lba >= 0xffffffffn ? 0xffffffff : Number(lba));
        expect(p.needsReadCapacity16).toBe(lba >= 0xffffffffn);
      }),
      FC_RUNS,
    );
  });

  it("standard INQUIRY round trip", () => {
    const arb = fc.record({
      peripheralQualifier: fc.integer({ min: 0, max: 7 }),
      peripheralDeviceType: fc.integer({ min: 0, max: 0x1f }),
      removable: bool,
      version: u8,
      normaca: bool,
      hisup: bool,
      responseDataFormat: fc.integer({ min: 0, max: 15 }),
      sccs: bool,
      acc: bool,
      tpgs: fc.integer({ min: 0, max: 3 }),
      thirdPartyCopy: bool,
      protect: bool,
      encserv: bool,
      multip: bool,
      cmdQue: bool,
      vendor: printableAscii(8),
      product: printableAscii(16),
      revision: printableAscii(4),
      versionDescriptors: fc.array(fc.integer({ min: 1, max: 0xffff }), { maxLength: 8 }),
    });
    fc.assert(
      fc.property(arb, (x) => {
        const p = parseStandardInquiryData(buildStandardInquiryData(x));
        expect(p).toEqual({ ...x, additionalLength: 99, truncated: false });
      }),
      FC_RUNS,
    );
  });

  it("VPD pages round trip", () => {
    const descriptor: fc.Arbitrary<DesignationDescriptor> = fc.record({
      protocolIdentifier: fc.integer({ min: 0, max: 15 }),
      codeSet: fc.integer({ min: 0, max: 15 }),
      piv: bool,
      association: fc.integer({ min: 0, max: 3 }),
      designatorType: fc.integer({ min: 0, max: 15 }),
      designator: fc.uint8Array({ maxLength: 40 }),
    });
    fc.assert(
      fc.property(fc.array(descriptor, { maxLength: 6 }), (ds) => {
        expect(parseVpdPage(buildDeviceIdentificationPage(ds))).toMatchObject({ kind: "device-identification", descriptors: ds });
      }),
      FC_RUNS,
    );
    fc.assert(
      fc.property(fc.uniqueArray(u8, { maxLength: 20 }), printableAscii(40), (pages, serial) => {
        const sorted = [...pages].sort((a, b) => a - b);
        expect(parseVpdPage(buildSupportedVpdPagesPage(sorted))).toMatchObject({ pages: sorted });
        expect(parseVpdPage(buildUnitSerialNumberPage(serial))).toMatchObject({ serial });
      }),
      FC_RUNS,
    );
    const limits = fc.record({
      wsnz: bool,
      maximumCompareAndWriteLength: u8,
      optimalTransferLengthGranularity: u16,
      maximumTransferLength: u32,
      optimalTransferLength: u32,
      maximumPrefetchLength: u32,
      maximumUnmapLbaCount: u32,
      maximumUnmapBlockDescriptorCount: u32,
      optimalUnmapGranularity: u32,
      ugavalid: bool,
      unmapGranularityAlignment: fc.integer({ min: 0, max: 0x7fffffff }),
      maximumWriteSameLength: u64,
    });
    fc.assert(fc.property(limits, (l) => {
      expect(parseVpdPage(buildBlockLimitsPage(l))).toMatchObject({ limits: l });
    }), FC_RUNS);
    const chars = fc.record({
      mediumRotationRate: u16,
      productType: u8,
      wabereq: fc.integer({ min: 0, max: 3 }),
      wacereq: fc.integer({ min: 0, max: 3 }),
      nominalFormFactor: fc.integer({ min: 0, max: 15 }),
      fuab: bool,
      vbuls: bool,
    });
    fc.assert(fc.property(chars, (c) => {
      expect(parseVpdPage(buildBlockDeviceCharacteristicsPage(c))).toMatchObject({ characteristics: c });
    }), FC_RUNS);
    const lbp = fc.record({
      thresholdExponent: u8,
      lbpu: bool,
      lbpws: bool,
      lbpws10: bool,
      lbprz: fc.integer({ min: 0, max: 7 }),
      ancSup: bool,
      dp: bool,
      minimumPercentage: fc.integer({ min: 0, max: 31 }),
      provisioningType: fc.integer({ min: 0, max: 7 }),
      thresholdPercentage: u8,
    });
    fc.assert(fc.property(lbp, (p) => {
      expect(parseVpdPage(buildLogicalBlockProvisioningPage(p))).toMatchObject({ provisioning: p });
    }), FC_RUNS);
  });

  it("REPORT LUNS round trip", () => {
    fc.assert(
      fc.property(fc.array(u16, { maxLength: 64 }), (luns) => {
        expect(parseReportLunsData(buildReportLunsData(luns))).toEqual({ lunListLength: 8 * luns.length, luns, truncated: false });
      }),
      FC_RUNS,
    );
  });

  it("MODE SENSE + caching page round trip", () => {
    const ext = fc.option(
      fc.record({ fsw: bool, lbcss: bool, dra: bool, nvDis: bool, numberOfCacheSegments: u8, cacheSegmentSize: u16 }),
      { nil: null },
    );
    const page = fc.record({
      ps: bool,
      ic: bool,
      abpf: bool,
      cap: bool,
      disc: bool,
      size: bool,
      wce: bool,
      mf: bool,
      rcd: bool,
      demandReadRetentionPriority: fc.integer({ min: 0, max: 15 }),
      writeRetentionPriority: fc.integer({ min: 0, max: 15 }),
      disablePrefetchTransferLength: u16,
      minimumPrefetch: u16,
      maximumPrefetch: u16,
      maximumPrefetchCeiling: u16,
      extended: ext,
    });
    fc.assert(
      fc.property(page, fc.constantFrom(6 as const, 10 as const), bool, bool, u8, (p, cdbSize, wp, dpoFua, mediumType) => {
        const data = buildModeSenseData({ cdbSize, writeProtected: wp, dpoFua, mediumType, pages: [buildCachingModePage(p)] });
        const parsed = parseModeSenseData(data, cdbSize);
        expect(parsed.header).toMatchObject({ writeProtected: wp, dpoFua, mediumType });
        const found = findModePage(parsed, MODE_PAGE_CACHING);
        expect(found && parseCachingModePage(found.bytes)).toEqual(p);
      }),
      FC_RUNS,
    );
  });

  it("UNMAP parameter list round trip", () => {
    const d = fc
      .record({ lba: u64, blocks: u32 })
      .filter((x) => x.lba + BigInt(x.blocks) <= 1n << 64n);
    fc.assert(fc.property(fc.array(d, { maxLength: 30 }), (ds) => {
      expect(parseUnmapParameterList(buildUnmapParameterList(ds))).toEqual(ds);
    }), FC_RUNS);
  });

  it("random bytes into every response parser throw only typed errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        onlyTypedErrors(() => parseReadCapacity10Data(b));
        onlyTypedErrors(() => parseReadCapacity16Data(b));
        onlyTypedErrors(() => parseStandardInquiryData(b));
        onlyTypedErrors(() => parseVpdPage(b));
        onlyTypedErrors(() => parseReportLunsData(b));
        onlyTypedErrors(() => parseModeSenseData(b, 6));
        onlyTypedErrors(() => parseModeSenseData(b, 10));
        onlyTypedErrors(() => parseCachingModePage(b));
        onlyTypedErrors(() => parseUnmapParameterList(b, { maxDescriptors: 4, maxLbaCount: 1000 }));
      }),
      FUZZ_RUNS,
    );
    // VPD pages with a known page code, so every page parser is reached.
    fc.assert(
      fc.property(fc.constantFrom(0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2), fc.uint8Array({ maxLength: 80 }), (code, rest) => {
        onlyTypedErrors(() => parseVpdPage(Uint8Array.of(0, code, ...rest)));
      }),
      FUZZ_RUNS,
    );
  });
});
