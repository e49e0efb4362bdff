/**
 * SCSI CDBs (storvsc-netvsc.md §6, §7.1–§7.3): golden bytes for every
 * opcode written by hand from the T10 layouts, parse(build(x)) = x, every
 * rejection rule with its sense code, and random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../core/index.js";
import {
  PARSED_CDB_SIZES,
  READ_TYPE,
  SENSE_INVALID_COMMAND_OPERATION_CODE,
  SENSE_INVALID_FIELD_IN_CDB,
  SENSE_LBA_OUT_OF_RANGE,
  ScsiCheckConditionError,
  type ScsiCommand,
  UNKNOWN_TYPE,
  WRITE_TYPE,
  buildCdb,
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
  cdbSizeForGroup,
  dataInForCommand,
  parseCdb,
} from "../../../drivers/storvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, onlyTypedErrors, thrown } from "./helpers.js";

interface CdbGolden {
  readonly name: string;
  readonly build: () => Uint8Array;
  readonly hex: string;
  readonly parsed: Partial<ScsiCommand>;
}

const GOLDEN: readonly CdbGolden[] = [
  { name: "TEST UNIT READY", build: buildTestUnitReadyCdb, hex: "00 00 00 00 00 00", parsed: { kind: "TEST_UNIT_READY" } },
  {
    name: "REQUEST SENSE alloc 18",
    build: () => buildRequestSenseCdb(18),
    hex: "03 00 00 00 12 00",
    parsed: { kind: "REQUEST_SENSE", allocationLength: 18, desc: false },
  },
  {
    name: "READ(6) LBA 0x12345, 256 blocks (field 0)",
    build: () => buildReadCdb(6, 0x12345n, 256),
    hex: "08 01 23 45 00 00",
    parsed: { kind: "READ", cdbSize: 6, lba: 0x12345n, blocks: 256 },
  },
  {
    name: "WRITE(6) LBA 0x1FFFFF, 1 block",
    build: () => buildWriteCdb(6, 0x1fffffn, 1),
    hex: "0a 1f ff ff 01 00",
    parsed: { kind: "WRITE", cdbSize: 6, lba: 0x1fffffn, blocks: 1 },
  },
  {
    name: "READ(10) LBA 0x01020304, 0x0506 blocks, FUA",
    build: () => buildReadCdb(10, 0x01020304n, 0x0506, { fua: true }),
    hex: "28 08 01 02 03 04 00 05 06 00",
    parsed: { kind: "READ", cdbSize: 10, lba: 0x01020304n, blocks: 0x0506, fua: true, dpo: false },
  },
  {
    name: "WRITE(10) LBA 0x10, 8 blocks, DPO, group 3",
    build: () => buildWriteCdb(10, 0x10n, 8, { dpo: true, group: 3 }),
    hex: "2a 10 00 00 00 10 03 00 08 00",
    parsed: { kind: "WRITE", cdbSize: 10, lba: 0x10n, blocks: 8, dpo: true, group: 3 },
  },
  {
    name: "READ(12) LBA 0xAABBCCDD, 0x10000 blocks",
    build: () => buildReadCdb(12, 0xaabbccddn, 0x10000),
    hex: "a8 00 aa bb cc dd 00 01 00 00 00 00",
    parsed: { kind: "READ", cdbSize: 12, lba: 0xaabbccddn, blocks: 0x10000 },
  },
  {
    name: "WRITE(12) LBA 1, 2 blocks, FUA, WRPROTECT 1",
    build: () => buildWriteCdb(12, 1n, 2, { fua: true, protect: 1 }),
    hex: "aa 28 00 00 00 01 00 00 00 02 00 00",
    parsed: { kind: "WRITE", cdbSize: 12, lba: 1n, blocks: 2, fua: true, protect: 1 },
  },
  {
    name: "READ(16) LBA 0x123456789, 8 blocks",
    build: () => buildReadCdb(16, 0x123456789n, 8),
    hex: "88 00 00 00 00 01 23 45 67 89 00 00 00 08 00 00",
    parsed: { kind: "READ", cdbSize: 16, lba: 0x123456789n, blocks: 8 },
  },
  {
    name: "WRITE(16) ending exactly at 2^64",
    build: () => buildWriteCdb(16, 0xfffffffffffffff0n, 0x10),
    hex: "8a 00 ff ff ff ff ff ff ff f0 00 00 00 10 00 00",
    parsed: { kind: "WRITE", cdbSize: 16, lba: 0xfffffffffffffff0n, blocks: 0x10 },
  },
  {
    name: "READ CAPACITY(10)",
    build: buildReadCapacity10Cdb,
    hex: "25 00 00 00 00 00 00 00 00 00",
    parsed: { kind: "READ_CAPACITY_10", lba: 0, pmi: false },
  },
  {
    name: "READ CAPACITY(16) = SERVICE ACTION IN(16) sa 0x10, alloc 32",
    build: () => buildReadCapacity16Cdb(32),
    hex: "9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00",
    parsed: { kind: "READ_CAPACITY_16", lba: 0n, allocationLength: 32, pmi: false },
  },
  {
    name: "INQUIRY standard, alloc 36",
    build: () => buildInquiryCdb(36),
    hex: "12 00 00 00 24 00",
    parsed: { kind: "INQUIRY", evpd: false, pageCode: 0, allocationLength: 36 },
  },
  {
    name: "INQUIRY VPD 0x83, alloc 0x1ff",
    build: () => buildInquiryCdb(0x1ff, 0x83),
    hex: "12 01 83 01 ff 00",
    parsed: { kind: "INQUIRY", evpd: true, pageCode: 0x83, allocationLength: 0x1ff },
  },
  {
    name: "REPORT LUNS alloc 0x1000",
    build: () => buildReportLunsCdb(0x1000),
    hex: "a0 00 00 00 00 00 00 00 10 00 00 00",
    parsed: { kind: "REPORT_LUNS", selectReport: 0, allocationLength: 0x1000 },
  },
  {
    name: "MODE SENSE(6) all pages, alloc 0xC0",
    build: () => buildModeSenseCdb(6, 0x3f, 0xc0),
    hex: "1a 00 3f 00 c0 00",
    parsed: { kind: "MODE_SENSE", cdbSize: 6, pageCode: 0x3f, pageControl: 0, allocationLength: 0xc0 },
  },
  {
    name: "MODE SENSE(6) caching page, DBD, page control default",
    build: () => buildModeSenseCdb(6, 0x08, 0x14, { dbd: true, pageControl: 2 }),
    hex: "1a 08 88 00 14 00",
    parsed: { kind: "MODE_SENSE", cdbSize: 6, dbd: true, pageControl: 2, pageCode: 0x08, allocationLength: 0x14 },
  },
  {
    name: "MODE SENSE(10) caching page, LLBAA, alloc 0x200",
    build: () => buildModeSenseCdb(10, 0x08, 0x200, { llbaa: true }),
    hex: "5a 10 08 00 00 00 00 02 00 00",
    parsed: { kind: "MODE_SENSE", cdbSize: 10, llbaa: true, pageCode: 0x08, allocationLength: 0x200 },
  },
  {
    name: "SYNCHRONIZE CACHE(10) whole medium",
    build: () => buildSynchronizeCacheCdb(10),
    hex: "35 00 00 00 00 00 00 00 00 00",
    parsed: { kind: "SYNCHRONIZE_CACHE", cdbSize: 10, lba: 0n, blocks: 0, immed: false },
  },
  {
    name: "SYNCHRONIZE CACHE(16) LBA 0x100, 0x20 blocks, IMMED",
    build: () => buildSynchronizeCacheCdb(16, 0x100n, 0x20, true),
    hex: "91 02 00 00 00 00 00 00 01 00 00 00 00 20 00 00",
    parsed: { kind: "SYNCHRONIZE_CACHE", cdbSize: 16, lba: 0x100n, blocks: 0x20, immed: true },
  },
  {
    name: "UNMAP parameter list length 24",
    build: () => buildUnmapCdb(24),
    hex: "42 00 00 00 00 00 00 00 18 00",
    parsed: { kind: "UNMAP", parameterListLength: 24, anchor: false },
  },
  {
    name: "WRITE SAME(10) LBA 0x40, 0x10 blocks, UNMAP",
    build: () => buildWriteSameCdb(10, 0x40n, 0x10, { unmap: true }),
    hex: "41 08 00 00 00 40 00 00 10 00",
    parsed: { kind: "WRITE_SAME", cdbSize: 10, lba: 0x40n, blocks: 0x10, unmap: true },
  },
  {
    name: "WRITE SAME(16) LBA 2^32, 0x800 blocks, UNMAP + NDOB",
    build: () => buildWriteSameCdb(16, 0x100000000n, 0x800, { unmap: true, ndob: true }),
    hex: "93 09 00 00 00 01 00 00 00 00 00 00 08 00 00 00",
    parsed: { kind: "WRITE_SAME", cdbSize: 16, lba: 0x100000000n, blocks: 0x800, unmap: true, ndob: true },
  },
  {
    name: "START STOP UNIT start",
    build: () => buildStartStopUnitCdb(true),
    hex: "1b 00 00 00 01 00",
    parsed: { kind: "START_STOP_UNIT", start: true, immed: false },
  },
  {
    name: "START STOP UNIT stop, IMMED",
    build: () => buildStartStopUnitCdb(false, { immed: true }),
    hex: "1b 01 00 00 00 00",
    parsed: { kind: "START_STOP_UNIT", start: false, immed: true },
  },
];

describe("CDB golden bytes", () => {
  for (const g of GOLDEN) {
    it(`${g.name}`, () => {
      expect(hexOf(g.build())).toBe(hexOf(bytesOf(g.hex)));
      const cmd = parseCdb(bytesOf(g.hex));
      expect(cmd).toMatchObject(g.parsed);
      expect(hexOf(buildCdb(cmd))).toBe(hexOf(bytesOf(g.hex)));
    });
  }

  it("covers every parsed opcode", () => {
    const seen = new Set(GOLDEN.map((g) => bytesOf(g.hex)[0]));
    expect([...PARSED_CDB_SIZES.keys()].filter((op) => !seen.has(op))).toEqual([]);
  });

  it("group codes and data directions", () => {
    expect([0x00, 0x28, 0x5a, 0x88, 0xa8, 0xc0].map(cdbSizeForGroup)).toEqual([6, 10, 10, 16, 12, undefined]);
    expect(dataInForCommand(parseCdb(buildReadCdb(10, 0n, 1)))).toBe(READ_TYPE);
    expect(dataInForCommand(parseCdb(buildWriteCdb(16, 0n, 1)))).toBe(WRITE_TYPE);
    expect(dataInForCommand(parseCdb(buildUnmapCdb(24)))).toBe(WRITE_TYPE);
    expect(dataInForCommand(parseCdb(buildTestUnitReadyCdb()))).toBe(UNKNOWN_TYPE);
    expect(dataInForCommand(parseCdb(buildInquiryCdb(36)))).toBe(READ_TYPE);
  });

  it("builders refuse values that do not fit the CDB", () => {
    expect(thrown(() => buildReadCdb(6, 0x200000n, 1))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildReadCdb(6, 0n, 0))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildReadCdb(6, 0n, 1, { fua: true }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildReadCdb(10, 0x100000000n, 1))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildReadCdb(10, 0n, 0x10000))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildReadCdb(16, 1n << 64n, 1))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildModeSenseCdb(6, 0x40, 4))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildWriteSameCdb(10, 0n, 1, { ndob: true }))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("CDB validation (CHECK CONDITION sense, field, value)", () => {
  const invalid = (hex: string, fields: Record<string, unknown>): ScsiCheckConditionError => {
    const e = thrown(() => parseCdb(bytesOf(hex)));
    expectTypedError(e, ScsiCheckConditionError, fields);
    return e as ScsiCheckConditionError;
  };

  it("unknown opcode → 05/20/00 pointing at byte 0", () => {
    const e = invalid("c1 00 00 00 00 00 00 00 00 00", { field: "OPERATION CODE", value: 0xc1 });
    expect(e.sense).toEqual(SENSE_INVALID_COMMAND_OPERATION_CODE);
    expect(e.fieldPointer).toEqual({ inCdb: true, byte: 0, bit: null });
    expect(e.message).toContain("05/20/00");
  });

  it("empty CDB → 05/20/00", () => {
    expect((thrown(() => parseCdb(new Uint8Array(0))) as ScsiCheckConditionError).sense).toEqual(SENSE_INVALID_COMMAND_OPERATION_CODE);
  });

  it("wrong CDB length for the opcode → 05/24/00", () => {
    invalid("28 00 00 00 00 00 00 00 08 00 00 00 00 00 00 00", { command: "READ(10)", field: "CDB length", value: 16, sense: SENSE_INVALID_FIELD_IN_CDB });
    invalid("88 00 00 00 00 00 00 00 08 00", { command: "READ(16)", field: "CDB length", value: 10 });
    invalid("00 00 00 00 00", { command: "TEST UNIT READY", field: "CDB length", value: 5 });
  });

  it("TEST UNIT READY with a non-zero reserved byte", () => {
    const e = invalid("00 00 07 00 00 00", { field: "reserved byte 2", value: 7 });
    expect(e.fieldPointer).toEqual({ inCdb: true, byte: 2, bit: null });
  });

  it("READ/WRITE(10) and (12) with the obsolete RelAdr bit", () => {
    const e = invalid("28 01 00 00 00 00 00 00 08 00", { command: "READ(10)", field: "RELADR", value: 1 });
    expect(e.fieldPointer).toEqual({ inCdb: true, byte: 1, bit: 0 });
    invalid("aa 01 00 00 00 00 00 00 00 08 00 00", { command: "WRITE(12)", field: "RELADR" });
  });

  it("INQUIRY with CmdDt, or a page code without EVPD", () => {
    invalid("12 02 00 00 24 00", { field: "CMDDT", value: 1, fieldPointer: { inCdb: true, byte: 1, bit: 1 } });
    invalid("12 00 83 00 24 00", { field: "PAGE CODE", value: 0x83, fieldPointer: { inCdb: true, byte: 2, bit: null } });
  });

  it("READ CAPACITY with an LBA but no PMI", () => {
    invalid("25 00 00 00 00 01 00 00 00 00", { command: "READ CAPACITY(10)", field: "LOGICAL BLOCK ADDRESS", value: 1 });
    expect(parseCdb(bytesOf("25 00 00 00 00 01 00 00 01 00"))).toMatchObject({ lba: 1, pmi: true });
    invalid("9e 10 00 00 00 00 00 00 00 05 00 00 00 20 00 00", { command: "READ CAPACITY(16)", field: "LOGICAL BLOCK ADDRESS", value: 5n });
  });

  it("SERVICE ACTION IN(16) other than READ CAPACITY(16)", () => {
    invalid("9e 12 00 00 00 00 00 00 00 00 00 00 00 20 00 00", { field: "SERVICE ACTION", value: 0x12, fieldPointer: { inCdb: true, byte: 1, bit: 4 } });
  });

  it("REPORT LUNS with an unsupported select report", () => {
    invalid("a0 00 10 00 00 00 00 00 10 00 00 00", { field: "SELECT REPORT", value: 0x10 });
  });

  it("16-byte LBA ranges that wrap past 2^64 → 05/21/00", () => {
    const e = invalid("88 00 ff ff ff ff ff ff ff ff 00 00 00 02 00 00", { command: "READ(16)", field: "LOGICAL BLOCK ADDRESS", value: 0xffffffffffffffffn });
    expect(e.sense).toEqual(SENSE_LBA_OUT_OF_RANGE);
    invalid("91 00 ff ff ff ff ff ff ff ff 00 00 00 02 00 00", { command: "SYNCHRONIZE CACHE(16)", sense: SENSE_LBA_OUT_OF_RANGE });
    invalid("93 00 ff ff ff ff ff ff ff ff 00 00 00 02 00 00", { command: "WRITE SAME(16)", sense: SENSE_LBA_OUT_OF_RANGE });
  });

  it("a transfer larger than a u32 data_transfer_length, given the block size", () => {
    const cdb = buildReadCdb(16, 0n, 0x7fffff);
    expect(parseCdb(cdb, { blockSize: 512 })).toMatchObject({ blocks: 0x7fffff });
    const e = thrown(() => parseCdb(cdb, { blockSize: 4096 }));
    expectTypedError(e, ScsiCheckConditionError, { field: "TRANSFER LENGTH", value: 0x7fffff, sense: SENSE_INVALID_FIELD_IN_CDB });
    expect((e as ScsiCheckConditionError).fieldPointer).toEqual({ inCdb: true, byte: 10, bit: null });
  });
});

// ---------------------------------------------------------------------------
// Properties

const bool = fc.boolean();
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const group = fc.integer({ min: 0, max: 0x1f });

const rw = fc.oneof(
  fc.record({
    kind: fc.constantFrom("READ" as const, "WRITE" as const),
    cdbSize: fc.constant(6 as const),
    lba: fc.bigInt({ min: 0n, max: 0x1fffffn }),
    blocks: fc.integer({ min: 1, max: 256 }),
    protect: fc.constant(0),
    dpo: fc.constant(false),
    fua: fc.constant(false),
    group: fc.constant(0),
    control: u8,
  }),
  fc.record({
    kind: fc.constantFrom("READ" as const, "WRITE" as const),
    cdbSize: fc.constantFrom(10 as const, 12 as const),
    lba: fc.bigInt({ min: 0n, max: 0xffffffffn }),
    blocks: u16,
    protect: fc.integer({ min: 0, max: 7 }),
    dpo: bool,
    fua: bool,
    group,
    control: u8,
  }),
  fc
    .record({
      kind: fc.constantFrom("READ" as const, "WRITE" as const),
      cdbSize: fc.constant(16 as const),
      lba: u64,
      blocks: u32,
      protect: fc.integer({ min: 0, max: 7 }),
      dpo: bool,
      fua: bool,
      group,
      control: u8,
    })
    .filter((c) => c.lba + BigInt(c.blocks) <= 1n << 64n),
);

const commandArb: fc.Arbitrary<ScsiCommand> = fc.oneof(
  fc.record({ kind: fc.constant("TEST_UNIT_READY" as const), control: u8 }),
  fc.record({ kind: fc.constant("REQUEST_SENSE" as const), desc: bool, allocationLength: u8, control: u8 }),
  rw,
  bool.chain((pmi) =>
    fc.record({ kind: fc.constant("READ_CAPACITY_10" as const), lba: pmi ? u32 : fc.constant(0), pmi: fc.constant(pmi), control: u8 }),
  ),
  bool.chain((pmi) =>
    fc.record({
      kind: fc.constant("READ_CAPACITY_16" as const),
      lba: pmi ? u64 : fc.constant(0n),
      allocationLength: u32,
      pmi: fc.constant(pmi),
      control: u8,
    }),
  ),
  bool.chain((evpd) =>
    fc.record({ kind: fc.constant("INQUIRY" as const), evpd: fc.constant(evpd), pageCode: evpd ? u8 : fc.constant(0), allocationLength: u16, control: u8 }),
  ),
  fc.record({ kind: fc.constant("REPORT_LUNS" as const), selectReport: fc.integer({ min: 0, max: 2 }), allocationLength: u32, control: u8 }),
  fc.constantFrom(6 as const, 10 as const).chain((cdbSize) =>
    fc.record({
      kind: fc.constant("MODE_SENSE" as const),
      cdbSize: fc.constant(cdbSize),
      dbd: bool,
      llbaa: cdbSize === 6 ? fc.constant(false) : bool,
      pageControl: fc.integer({ min: 0, max: 3 }),
      pageCode: fc.integer({ min: 0, max: 0x3f }),
      subpageCode: u8,
      allocationLength: cdbSize === 6 ? u8 : u16,
      control: u8,
    }),
  ),
  fc.oneof(
    fc.record({
      kind: fc.constant("SYNCHRONIZE_CACHE" as const),
      cdbSize: fc.constant(10 as const),
      immed: bool,
      lba: fc.bigInt({ min: 0n, max: 0xffffffffn }),
      blocks: u16,
      group,
      control: u8,
    }),
    fc
      .record({ kind: fc.constant("SYNCHRONIZE_CACHE" as const), cdbSize: fc.constant(16 as const), immed: bool, lba: u64, blocks: u32, group, control: u8 })
      .filter((c) => c.lba + BigInt(c.blocks) <= 1n << 64n),
  ),
  fc.record({ kind: fc.constant("UNMAP" as const), anchor: bool, group, parameterListLength: u16, control: u8 }),
  fc.constantFrom(10 as const, 16 as const).chain((cdbSize) =>
    fc
      .record({
        kind: fc.constant("WRITE_SAME" as const),
        cdbSize: fc.constant(cdbSize),
        wrprotect: fc.integer({ min: 0, max: 7 }),
        anchor: bool,
        unmap: bool,
        pbdata: bool,
        lbdata: bool,
        ndob: cdbSize === 10 ? fc.constant(false) : bool,
        lba: cdbSize === 10 ? fc.bigInt({ min: 0n, max: 0xffffffffn }) : u64,
        blocks: cdbSize === 10 ? u16 : u32,
        group,
        control: u8,
      })
      .filter((c) => c.lba + BigInt(c.blocks) <= 1n << 64n),
  ),
  fc.record({
    kind: fc.constant("START_STOP_UNIT" as const),
    immed: bool,
    powerConditionModifier: fc.integer({ min: 0, max: 15 }),
    powerCondition: fc.integer({ min: 0, max: 15 }),
    noFlush: bool,
    loej: bool,
    start: bool,
    control: u8,
  }),
);

describe("CDB properties", () => {
  it("parse(build(x)) = x", () => {
    fc.assert(
      fc.property(commandArb, (cmd) => {
        expect(parseCdb(buildCdb(cmd))).toEqual(cmd);
      }),
      { numRuns: 2000 },
    );
  });

  it("random bytes into parseCdb throw only ScsiCheckConditionError; what parses re-encodes to the same command", () => {
    const opcodes = [...PARSED_CDB_SIZES.entries()];
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 20 }),
      fc.constantFrom(...opcodes).chain(([op, size]) =>
        fc.uint8Array({ minLength: size - 1, maxLength: size - 1 }).map((rest) => Uint8Array.of(op, ...rest)),
      ),
    );
    fc.assert(
      fc.property(arb, fc.option(fc.constantFrom(512, 4096), { nil: undefined }), (bytes, blockSize) => {
        let cmd: ScsiCommand | undefined;
        try {
          cmd = parseCdb(bytes, blockSize !== undefined ? { blockSize } : {});
        } catch (e) {
          expect(e).toBeInstanceOf(ScsiCheckConditionError);
          return;
        }
        expect(parseCdb(buildCdb(cmd))).toEqual(cmd);
      }),
      FUZZ_RUNS,
    );
  });

  it("parseCdb never throws anything untyped, whatever the length", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => onlyTypedErrors(() => parseCdb(bytes))),
      FC_RUNS,
    );
  });
});
