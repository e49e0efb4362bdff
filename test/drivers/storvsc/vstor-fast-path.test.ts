/**
 * The in-place VSTOR codecs of the I/O path (storvsc-netvsc.md §3, §5.1,
 * §5.2) give exactly the bytes, and accept exactly the packets, of the
 * object-based builders and decoder they stand in for.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../../../core/index.js";
import {
  READ_TYPE,
  SCSI_STATUS_GOOD,
  SRB_STATUS_DATA_OVERRUN,
  SRB_STATUS_SUCCESS,
  UNKNOWN_TYPE,
  VMSTOR_PROTOCOL_VERSIONS,
  VSTOR_CDB_OFFSET,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_EXECUTE_SRB,
  WRITE_TYPE,
  decodeVstorPacket,
  encodeVstorPacket,
  isPlainSrbCompletion,
  makeExecuteSrbPacket,
  makeSrbCompletionPacket,
  vstorPacketSize,
  writeExecuteSrbPacket,
  writeSrbCompletionPacket,
  type VmscsiRequest,
} from "../../../drivers/storvsc/protocol/index.js";

const versions = VMSTOR_PROTOCOL_VERSIONS.map((v) => v.value);
const dataIns = [WRITE_TYPE, READ_TYPE, UNKNOWN_TYPE];

describe("writeExecuteSrbPacket", () => {
  it("writes the bytes of encodeVstorPacket(makeExecuteSrbPacket(...)) for every version and direction", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...versions),
        fc.constantFrom(...dataIns),
        fc.uint8Array({ minLength: 1, maxLength: 16 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 255 }),
        fc.nat({ max: 255 }),
        fc.nat({ max: 255 }),
        (version, dataIn, cdb, length, pathId, targetId, lun) => {
          const expected = encodeVstorPacket(
            makeExecuteSrbPacket({ protocolVersion: version, cdb, dataIn, dataTransferLength: length, pathId, targetId, lun }),
            version,
          );
          // A reused buffer holding an earlier packet: everything must be rewritten.
          const packet = new Uint8Array(vstorPacketSize(version)).fill(0xa5);
          writeExecuteSrbPacket(packet, new DataView(packet.buffer), version, cdb.length, dataIn, length, pathId, targetId, lun);
          packet.set(cdb, VSTOR_CDB_OFFSET);
          expect(packet).toEqual(expected);
        },
      ),
    );
  });
});

describe("writeSrbCompletionPacket", () => {
  it("writes makeSrbCompletionPacket's bytes, cut or zero-padded to the completion size", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...versions),
        fc.constantFrom(...dataIns),
        fc.constantFrom(SRB_STATUS_SUCCESS, SRB_STATUS_DATA_OVERRUN, 0x04, 0x20),
        fc.nat({ max: 0xffffffff }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.constantFrom(48, 56, 64),
        (version, dataIn, srbStatus, transferred, addr, sizeWanted) => {
          const size = Math.max(sizeWanted, vstorPacketSize(version));
          const request = decodeVstorPacket(
            encodeVstorPacket(
              makeExecuteSrbPacket({ protocolVersion: version, cdb: Uint8Array.of(0x28), dataIn, dataTransferLength: 0, pathId: addr[1]!, targetId: addr[2]!, lun: addr[3]! }),
              version,
            ),
            { protocolVersion: version },
          ).payload as { kind: "srb"; srb: VmscsiRequest };
          const srb = { ...request.srb, portNumber: addr[0]! };
          const encoded = encodeVstorPacket(
            makeSrbCompletionPacket({ protocolVersion: version, request: srb, srbStatus, scsiStatus: SCSI_STATUS_GOOD, dataTransferLength: transferred }),
            version,
          );
          const expected = new Uint8Array(size);
          expected.set(encoded.subarray(0, size));
          const out = new Uint8Array(size).fill(0x5a);
          writeSrbCompletionPacket(out, new DataView(out.buffer), version, addr[0]!, addr[1]!, addr[2]!, addr[3]!, dataIn, srbStatus, SCSI_STATUS_GOOD, transferred);
          expect(out).toEqual(expected);
        },
      ),
    );
  });
});

describe("isPlainSrbCompletion", () => {
  it("is true exactly when the full decode of an EXECUTE_SRB completion succeeds with COMPLETE_IO", () => {
    const field = fc.oneof(fc.constant(-1), fc.nat({ max: 255 }));
    fc.assert(
      fc.property(
        fc.constantFrom(...versions),
        fc.uint8Array({ minLength: 40, maxLength: 72 }),
        fc.constantFrom(VSTOR_OPERATION_COMPLETE_IO, VSTOR_OPERATION_EXECUTE_SRB, 11, 12, 99),
        field,
        field,
        field,
        fc.nat({ max: 8192 }),
        fc.nat({ max: 8192 }),
        (version, raw, operation, cdbLength, senseLength, dataIn, dtl, requestLength) => {
          const bytes = raw.slice();
          if (bytes.length >= 28) {
            new DataView(bytes.buffer).setUint32(0, operation, true);
            // Mostly valid values, sometimes the random byte (-1) or an out-of-range one.
            if (cdbLength >= 0) bytes[20] = cdbLength % 20;
            if (senseLength >= 0) bytes[21] = senseLength % 24;
            if (dataIn >= 0) bytes[22] = dataIn % 4;
            new DataView(bytes.buffer).setUint32(24, dtl, true);
          }
          let decodes: boolean;
          try {
            const p = decodeVstorPacket(bytes, { protocolVersion: version, sender: "host", completes: VSTOR_OPERATION_EXECUTE_SRB, requestDataTransferLength: requestLength });
            decodes = p.operation === VSTOR_OPERATION_COMPLETE_IO && p.payload.kind === "srb";
          } catch (e) {
            if (!(e instanceof ProtocolError)) throw e;
            decodes = false;
          }
          expect(isPlainSrbCompletion(bytes, version, requestLength)).toBe(decodes);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
