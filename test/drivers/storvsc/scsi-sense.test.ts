/**
 * Fixed-format sense data (storvsc-netvsc.md §7.6): golden bytes, named
 * codes, round trips, rejection of non-sense bytes, random bytes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  FIXED_SENSE_DATA_LAYOUT,
  ILLEGAL_REQUEST,
  MEDIUM_ERROR,
  SENSE_CAPACITY_DATA_CHANGED,
  SENSE_INVALID_COMMAND_OPERATION_CODE,
  SENSE_INVALID_FIELD_IN_CDB,
  SENSE_LBA_OUT_OF_RANGE,
  SENSE_LOGICAL_UNIT_NOT_SUPPORTED,
  SENSE_MEDIUM_NOT_PRESENT,
  SENSE_POWER_ON_RESET,
  SENSE_REPORTED_LUNS_DATA_CHANGED,
  SENSE_UNRECOVERED_READ_ERROR,
  SENSE_WRITE_PROTECTED,
  type FixedSenseDataInput,
  type SenseCode,
  buildFixedSenseData,
  formatSenseCode,
  parseSenseData,
} from "../../../drivers/storvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, onlyTypedErrors, thrown } from "./helpers.js";

describe("fixed-format sense golden bytes", () => {
  it("MEDIUM ERROR 03/11/00 unrecovered read error", () => {
    expect(hexOf(buildFixedSenseData(SENSE_UNRECOVERED_READ_ERROR))).toBe(
      hexOf(bytesOf("70 00 03 00 00 00 00 0a 00 00 00 00 11 00 00 00 00 00")),
    );
    const s = parseSenseData(bytesOf("70 00 03 00 00 00 00 0a 00 00 00 00 11 00 00 00 00 00"));
    expect(s).toMatchObject({ format: "fixed", responseCode: 0x70, senseKey: MEDIUM_ERROR, asc: 0x11, ascq: 0, valid: false, additionalSenseLength: 10 });
    expect(formatSenseCode(s)).toBe("MEDIUM ERROR 03/11/00 UNRECOVERED READ ERROR");
  });

  it("with INFORMATION (VALID bit) and as a deferred error", () => {
    expect(hexOf(buildFixedSenseData({ ...SENSE_UNRECOVERED_READ_ERROR, information: 0x1234, deferred: true }))).toBe(
      hexOf(bytesOf("f1 00 03 00 00 12 34 0a 00 00 00 00 11 00 00 00 00 00")),
    );
  });

  it("ILLEGAL REQUEST 05/24/00 with a field pointer to CDB byte 1 bit 0", () => {
    const b = buildFixedSenseData({ ...SENSE_INVALID_FIELD_IN_CDB, fieldPointer: { inCdb: true, byte: 1, bit: 0 } });
    expect(hexOf(b)).toBe(hexOf(bytesOf("70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 c8 00 01")));
    expect(parseSenseData(b).fieldPointer).toEqual({ inCdb: true, byte: 1, bit: 0 });
    const p = buildFixedSenseData({ ...SENSE_INVALID_FIELD_IN_CDB, fieldPointer: { inCdb: false, byte: 0x102, bit: null } });
    expect(hexOf(p.subarray(15))).toBe("80 01 02");
  });

  it("places key, ASC and ASCQ of every named code at bytes 2, 12, 13", () => {
    const codes: readonly (readonly [SenseCode, number, number, number])[] = [
      [SENSE_INVALID_COMMAND_OPERATION_CODE, 0x05, 0x20, 0x00],
      [SENSE_INVALID_FIELD_IN_CDB, 0x05, 0x24, 0x00],
      [SENSE_LBA_OUT_OF_RANGE, 0x05, 0x21, 0x00],
      [SENSE_LOGICAL_UNIT_NOT_SUPPORTED, 0x05, 0x25, 0x00],
      [SENSE_WRITE_PROTECTED, 0x07, 0x27, 0x00],
      [SENSE_POWER_ON_RESET, 0x06, 0x29, 0x00],
      [SENSE_REPORTED_LUNS_DATA_CHANGED, 0x06, 0x3f, 0x0e],
      [SENSE_CAPACITY_DATA_CHANGED, 0x06, 0x2a, 0x09],
      [SENSE_MEDIUM_NOT_PRESENT, 0x02, 0x3a, 0x00],
    ];
    for (const [c, key, asc, ascq] of codes) {
      const b = buildFixedSenseData(c);
      expect([b[0], b[2], b[7], b[12], b[13], b.length]).toEqual([0x70, key, 10, asc, ascq, 18]);
    }
    expect(FIXED_SENSE_DATA_LAYOUT.additionalSenseCode.offset).toBe(12);
    expect(formatSenseCode(SENSE_REPORTED_LUNS_DATA_CHANGED)).toBe("UNIT ATTENTION 06/3F/0E REPORTED LUNS DATA HAS CHANGED");
  });

  it("reads descriptor-format sense (QEMU hv-scsi) and zero-extends short fixed sense", () => {
    expect(parseSenseData(bytesOf("72 05 25 00 00 00 00 00"))).toMatchObject({ format: "descriptor", senseKey: ILLEGAL_REQUEST, asc: 0x25, ascq: 0 });
    expect(parseSenseData(bytesOf("70 00 06 00 00 00 00 0a 00 00 00 00 29 00"))).toMatchObject({ senseKey: 6, asc: 0x29, fieldPointer: null });
  });

  it("rejects bytes that are not sense data", () => {
    expectTypedError(thrown(() => parseSenseData(new Uint8Array(7))), ProtocolError, { field: "length", value: 7 });
    expectTypedError(thrown(() => parseSenseData(new Uint8Array(18))), ProtocolError, { field: "response code", value: 0 });
    expectTypedError(thrown(() => parseSenseData(bytesOf("74 00 00 00 00 00 00 00"))), ProtocolError, { field: "response code", value: 0x74 });
  });

  it("refuses unrepresentable input", () => {
    expect(thrown(() => buildFixedSenseData({ senseKey: 16, asc: 0, ascq: 0 }))).toBeInstanceOf(InvalidArgumentError);
    expect(thrown(() => buildFixedSenseData({ ...SENSE_INVALID_FIELD_IN_CDB, fieldPointer: { inCdb: true, byte: 1, bit: 8 } }))).toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});

describe("sense properties", () => {
  const u8 = fc.integer({ min: 0, max: 0xff });
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const inputArb: fc.Arbitrary<FixedSenseDataInput> = fc
    .record(
      {
        senseKey: fc.integer({ min: 0, max: 15 }),
        asc: u8,
        ascq: u8,
        deferred: fc.boolean(),
        information: u32,
        commandSpecificInformation: u32,
        fieldReplaceableUnitCode: u8,
        filemark: fc.boolean(),
        endOfMedium: fc.boolean(),
        incorrectLengthIndicator: fc.boolean(),
        fieldPointer: fc.record({
          inCdb: fc.boolean(),
          byte: fc.integer({ min: 0, max: 0xffff }),
          bit: fc.option(fc.integer({ min: 0, max: 7 }), { nil: null }),
        }),
      },
      { requiredKeys: ["senseKey", "asc", "ascq"] },
    )
    .map((i) => (i.senseKey === ILLEGAL_REQUEST ? i : { ...i, fieldPointer: undefined }));

  it("parse(build(x)) returns x", () => {
    fc.assert(
      fc.property(inputArb, (i) => {
        const s = parseSenseData(buildFixedSenseData(i));
        expect(s).toMatchObject({
          format: "fixed",
          senseKey: i.senseKey,
          asc: i.asc,
          ascq: i.ascq,
          deferred: i.deferred === true,
          valid: i.information !== undefined,
          information: i.information ?? 0,
          commandSpecificInformation: i.commandSpecificInformation ?? 0,
          fieldReplaceableUnitCode: i.fieldReplaceableUnitCode ?? 0,
          filemark: i.filemark === true,
          endOfMedium: i.endOfMedium === true,
          incorrectLengthIndicator: i.incorrectLengthIndicator === true,
          fieldPointer: i.fieldPointer ?? null,
        });
      }),
      FC_RUNS,
    );
  });

  it("random bytes throw only typed errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (b) => onlyTypedErrors(() => parseSenseData(b))),
      FUZZ_RUNS,
    );
  });
});
