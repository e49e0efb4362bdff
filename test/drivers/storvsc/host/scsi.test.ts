/**
 * The SCSI target through the VSP (storvsc-netvsc.md §5.2 completion, §6
 * commands, §7 data layouts, §7.6 sense): golden bytes of every response,
 * the error cases with their sense, data integrity through GPA ranges.
 */
import { describe, expect, it } from "vitest";
import {
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
  buildUnmapParameterList,
  buildWriteCdb,
  buildWriteSameCdb,
  READ_TYPE,
  VMSTOR_PROTO_VERSION_WIN7,
  VMSTOR_PROTO_VERSION_WIN10,
} from "../../../../drivers/storvsc/protocol/index.js";
import { type SparseMemoryDisk } from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, hex, pattern, toHex, type ScriptedGuest } from "./harness.js";

const Z = (n: number): string => "00 ".repeat(n);
const ascii = (s: string): string => Array.from(s, (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");
/** 64 MiB, 512-byte blocks: 0x20000 blocks, last LBA 0x1FFFF. */
const DISK = { kind: "memory", sizeBytes: 64 << 20, serial: "SERIAL01" } as const;

async function ready(config: Parameters<typeof bootStorvsp>[0] = { disks: [DISK] }): Promise<ScriptedGuest> {
  const g = await bootStorvsp(config);
  await g.handshake();
  return g;
}

/** Fixed sense, 18 bytes, as hex (+ the 2 padding bytes of the 20-byte sense area). */
function senseHex(key: number, asc: number, ascq: number, sks = "00 00 00", info = "00 00 00 00", valid = false): string {
  const h = (n: number): string => n.toString(16).padStart(2, "0");
  return toHex(hex(`${valid ? "f0" : "70"} 00 ${h(key)} ${info} 0a 00 00 00 00 ${h(asc)} ${h(ascq)} 00 ${sks} 00 00`));
}

describe("storvsp SCSI target: golden responses (§7)", () => {
  it("READ CAPACITY(16): last LBA, block length, LBPME|LBPRZ — and the whole COMPLETE_IO packet", async () => {
    const g = await ready();
    const r = await g.srb(buildReadCapacity16Cdb(32), { inLength: 32 });
    expect(toHex(r.data)).toBe(toHex(hex(`00 00 00 00 00 01 ff ff | 00 00 02 00 | 00 00 | c0 00 | ${Z(16)}`)));
    // §5.2: COMPLETE_IO, flags 0, SUCCESS; SRB length 0x34, srb SUCCESS, scsi GOOD, address echoed,
    // cdb_length 0x10, sense_info_length 0x14, data_in echoed, data_transfer_length = 32, zero sense and extension.
    expect(toHex(r.completion.data)).toBe(
      toHex(hex(`01 00 00 00 | 00 00 00 00 | 00 00 00 00 | 34 00 01 00 | 00 00 00 00 | 10 14 01 00 | 20 00 00 00 | ${Z(20)} | ${Z(16)}`)),
    );
    expect(r.completion.transId).toBeGreaterThan(0n);
  });

  it("READ CAPACITY(10): 8 bytes; 0xFFFFFFFF for a disk too big for it; DATA OVERRUN for a 4-byte buffer", async () => {
    const g = await ready({ disks: [DISK, { kind: "memory", sizeBytes: 4 * 2 ** 40, lun: 1 }] });
    expect(toHex((await g.srb(buildReadCapacity10Cdb(), { inLength: 8 })).data)).toBe("00 01 ff ff 00 00 02 00");
    expect(toHex((await g.srb(buildReadCapacity10Cdb(), { inLength: 8, lun: 1 })).data)).toBe("ff ff ff ff 00 00 02 00");
    const short = await g.srb(buildReadCapacity10Cdb(), { inLength: 4 });
    expect(short.srb.srbStatus).toBe(0x12 | 0x80);
    expect(short.srb.scsiStatus).toBe(0x02);
    expect(toHex(short.sense)).toBe(senseHex(5, 0x24, 0));
    expect(toHex(short.completion.data.subarray(8, 12))).toBe("05 00 00 80"); // STATUS_BUFFER_OVERFLOW
  });

  it("INQUIRY standard data: 36 and 104 bytes", async () => {
    const g = await ready();
    const std = `00 00 05 02 63 00 00 02 | ${ascii("Msft    ")} | ${ascii("Virtual Disk    ")} | ${ascii("1.0 ")}`;
    const r36 = await g.srb(buildInquiryCdb(36), { inLength: 36 });
    expect(toHex(r36.data)).toBe(toHex(hex(std)));
    expect(r36.srb.dataTransferLength).toBe(36);
    const r104 = await g.srb(buildInquiryCdb(255), { inLength: 255 });
    expect(r104.srb.dataTransferLength).toBe(104);
    expect(toHex(r104.data.subarray(0, 104))).toBe(toHex(hex(`${std} ${Z(68)}`)));
  });

  it("INQUIRY VPD 0x00 0x80 0x83 0xB0 0xB1 0xB2", async () => {
    const g = await ready();
    const vpd = async (page: number): Promise<string> => {
      const r = await g.srb(buildInquiryCdb(255, page), { inLength: 255 });
      return toHex(r.data.subarray(0, r.srb.dataTransferLength));
    };
    expect(await vpd(0x00)).toBe("00 00 00 06 00 80 83 b0 b1 b2");
    expect(await vpd(0x80)).toBe(toHex(hex(`00 80 00 08 ${ascii("SERIAL01")}`)));
    // NAA 5: OUI 00-15-5D, vendor-specific = FNV-1a("SERIAL01"); then T10 vendor id "Msft    SERIAL01".
    expect(await vpd(0x83)).toBe(toHex(hex(`00 83 00 20 | 01 03 00 08 50 01 55 d0 27 95 37 ee | 02 01 00 10 ${ascii("Msft    SERIAL01")}`)));
    // Block limits: WSNZ, max transfer 512 blocks (256 KiB), max unmap LBA count 0x100000, 256 descriptors,
    // optimal unmap granularity 128 blocks (the 64 KiB chunk), max WRITE SAME 0x100000.
    expect(await vpd(0xb0)).toBe(
      toHex(
        hex(
          `00 b0 00 3c | 01 00 00 00 | 00 00 02 00 | 00 00 00 00 | 00 00 00 00 | 00 10 00 00 | 00 00 01 00 | 00 00 00 80 | 00 00 00 00 | 00 00 00 00 00 10 00 00 | ${Z(20)}`,
        ),
      ),
    );
    expect(await vpd(0xb1)).toBe(toHex(hex(`00 b1 00 3c 00 01 ${Z(58)}`)));
    expect(await vpd(0xb2)).toBe("00 b2 00 04 00 e4 02 00");
    const bad = await g.srb(buildInquiryCdb(255, 0x8f), { inLength: 255 });
    expect(toHex(bad.sense)).toBe(senseHex(5, 0x24, 0, "c0 00 02"));
  });

  it("INQUIRY to a missing LUN: peripheral 0x7F; other commands: INVALID_LUN without sense", async () => {
    const g = await ready();
    const r = await g.srb(buildInquiryCdb(36), { inLength: 36, lun: 5 });
    expect(r.srb.srbStatus).toBe(0x01);
    expect(toHex(r.data)).toBe(toHex(hex(`7f 00 05 02 63 00 00 00 ${Z(28)}`)));
    const lun0 = await ready({ disks: [{ ...DISK, lun: 1 }] });
    const r0 = await lun0.srb(buildInquiryCdb(36), { inLength: 36, lun: 0 });
    expect(toHex(r0.data)).toBe(toHex(hex(`7f 00 05 02 63 00 00 00 ${ascii("Msft    ")} ${ascii("Virtual Disk    ")} ${ascii("1.0 ")}`)));
    const tur = await g.srb(buildTestUnitReadyCdb(), { lun: 5 });
    expect(tur.srb.srbStatus).toBe(0x20);
    expect(tur.srb.scsiStatus).toBe(0x02);
    expect(toHex(tur.completion.data.subarray(8, 12))).toBe("c0 00 00 c0"); // STATUS_DEVICE_DOES_NOT_EXIST
    const vpd = await g.srb(buildInquiryCdb(36, 0x80), { inLength: 36, lun: 5 });
    expect(toHex(vpd.sense)).toBe(senseHex(5, 0x24, 0, "c8 00 01"));
    expect(g.vsp.counters.errors["invalid-lun"]).toBe(1);
  });

  it("REPORT LUNS: sorted LUNs of the addressed path/target; GOOD with nothing for a buffer under 8 bytes", async () => {
    const g = await ready({ disks: [{ ...DISK, lun: 3 }, DISK, { kind: "memory", sizeBytes: 1 << 20, targetId: 1, lun: 7 }] });
    const r = await g.srb(buildReportLunsCdb(256), { inLength: 256, lun: 9 });
    expect(toHex(r.data.subarray(0, r.srb.dataTransferLength))).toBe(toHex(hex(`00 00 00 10 00 00 00 00 | 00 00 ${Z(6)} | 00 03 ${Z(6)}`)));
    const t1 = await g.srb(buildReportLunsCdb(256), { inLength: 256, targetId: 1 });
    expect(toHex(t1.data.subarray(0, t1.srb.dataTransferLength))).toBe(toHex(hex(`00 00 00 08 00 00 00 00 | 00 07 ${Z(6)}`)));
    const tiny = await g.srb(buildReportLunsCdb(256), { inLength: 4 });
    expect(tiny.srb.srbStatus).toBe(0x01);
    expect(tiny.srb.dataTransferLength).toBe(0);
  });

  it("MODE SENSE(6)/(10): the caching page (WCE), all pages, write-protect bit, errors", async () => {
    const g = await ready({ disks: [DISK, { kind: "memory", sizeBytes: 1 << 20, lun: 1, readOnly: true, writeCacheEnabled: false }] });
    const page = "08 0a 04 00 00 00 00 00 00 00 00 00";
    const ms6 = await g.srb(buildModeSenseCdb(6, 0x08, 0xff), { inLength: 0xff });
    expect(toHex(ms6.data.subarray(0, ms6.srb.dataTransferLength))).toBe(toHex(hex(`0f 00 10 00 ${page}`)));
    const all = await g.srb(buildModeSenseCdb(6, 0x3f, 0xff), { inLength: 0xff });
    expect(toHex(all.data.subarray(0, all.srb.dataTransferLength))).toBe(toHex(hex(`0f 00 10 00 ${page}`)));
    const ms10 = await g.srb(buildModeSenseCdb(10, 0x08, 0x100), { inLength: 0x100 });
    expect(toHex(ms10.data.subarray(0, ms10.srb.dataTransferLength))).toBe(toHex(hex(`00 12 00 10 00 00 00 00 ${page}`)));
    const ro = await g.srb(buildModeSenseCdb(6, 0x08, 0xff), { inLength: 0xff, lun: 1 });
    expect(toHex(ro.data.subarray(0, ro.srb.dataTransferLength))).toBe(toHex(hex("0f 00 90 00 08 0a 00 00 00 00 00 00 00 00 00 00")));
    const changeable = await g.srb(buildModeSenseCdb(6, 0x08, 0xff, { pageControl: 1 }), { inLength: 0xff });
    expect(toHex(changeable.data.subarray(4, 16))).toBe("08 0a 00 00 00 00 00 00 00 00 00 00");
    const saved = await g.srb(buildModeSenseCdb(6, 0x08, 0xff, { pageControl: 3 }), { inLength: 0xff });
    expect(toHex(saved.sense)).toBe(senseHex(5, 0x24, 0, "cf 00 02"));
    const other = await g.srb(buildModeSenseCdb(6, 0x1c, 0xff), { inLength: 0xff });
    expect(toHex(other.sense)).toBe(senseHex(5, 0x24, 0, "cd 00 02"));
  });

  it("REQUEST SENSE with nothing pending: NO SENSE fixed data", async () => {
    const g = await ready();
    const r = await g.srb(buildRequestSenseCdb(18), { inLength: 18 });
    expect(toHex(r.data)).toBe(toHex(hex(`70 00 00 00 00 00 00 0a 00 00 00 00 00 00 00 00 00 00`)));
  });

  it("TEST UNIT READY, SYNCHRONIZE CACHE(10/16), START STOP UNIT: GOOD, inband", async () => {
    const g = await ready();
    for (const cdb of [buildTestUnitReadyCdb(), buildSynchronizeCacheCdb(10), buildSynchronizeCacheCdb(16), buildStartStopUnitCdb(false), buildStartStopUnitCdb(true)]) {
      const r = await g.srb(cdb);
      expect(r.srb.srbStatus).toBe(0x01);
      expect(r.srb.scsiStatus).toBe(0);
    }
    const immed = await g.srb(buildStartStopUnitCdb(true, { immed: true }));
    expect(toHex(immed.sense)).toBe(senseHex(5, 0x24, 0, "c8 00 01"));
    expect(g.vsp.lunAt(0)!.stats.flushes).toBe(3);
  });
});

describe("storvsp SCSI target: errors (§7.6)", () => {
  it("LBA out of range → 05/21/00, srb INVALID_REQUEST, STATUS_IO_DEVICE_ERROR — the whole packet", async () => {
    const g = await ready();
    const r = await g.srb(buildReadCdb(16, 0x20000n, 1), { inLength: 512 });
    expect(toHex(r.completion.data)).toBe(
      toHex(hex(`01 00 00 00 | 00 00 00 00 | 85 01 00 c0 | 34 00 86 02 | 00 00 00 00 | 10 14 01 00 | 00 00 00 00 | ${senseHex(5, 0x21, 0, "c0 00 02")} | ${Z(16)}`)),
    );
    const straddle = await g.srb(buildWriteCdb(10, 0x1ffffn, 2), { out: new Uint8Array(1024) });
    expect(toHex(straddle.sense)).toBe(senseHex(5, 0x21, 0, "c0 00 02"));
    // More data than the buffer the guest offered.
    const short = await g.srb(buildReadCdb(10, 0n, 8), { inLength: 512 });
    expect(toHex(short.sense)).toBe(senseHex(5, 0x21, 0, "c0 00 07"));
    expect(g.vsp.counters.errors["lba-out-of-range"]).toBe(3);
  });

  it("invalid opcode → 05/20/00 with the field pointer on byte 0", async () => {
    const g = await ready();
    const r = await g.srb(hex("3c 02 00 00 00 00 00 01 00 00"), { inLength: 256 });
    expect(r.srb.srbStatus).toBe(0x86);
    expect(toHex(r.sense)).toBe(senseHex(5, 0x20, 0, "c0 00 00"));
    expect(g.vsp.counters.errors["invalid-opcode"]).toBe(1);
  });

  it("write to a read-only disk → 07/27/00, srb ERROR; reads work", async () => {
    const g = await ready({ disks: [{ ...DISK, readOnly: true }] });
    const w = await g.srb(buildWriteCdb(10, 0n, 1), { out: pattern(512, 1) });
    expect(w.srb.srbStatus).toBe(0x84);
    expect(w.srb.scsiStatus).toBe(0x02);
    expect(toHex(w.sense)).toBe(senseHex(7, 0x27, 0));
    for (const cdb of [buildWriteSameCdb(16, 0n, 8), buildUnmapCdb(24)]) {
      const data = cdb[0] === 0x42 ? buildUnmapParameterList([{ lba: 0n, blocks: 8 }]) : new Uint8Array(512);
      expect(toHex((await g.srb(cdb, { out: data })).sense)).toBe(senseHex(7, 0x27, 0));
    }
    const rd = await g.srb(buildReadCdb(10, 0n, 1), { inLength: 512 });
    expect(rd.srb.srbStatus).toBe(0x01);
    expect(g.vsp.counters.errors["write-protected"]).toBe(3);
  });

  it("medium error faults: 03/11/00 on read with the LBA in INFORMATION, 03/0C/00 on write, changeable at run time", async () => {
    const g = await ready({ disks: [{ ...DISK, faults: [{ firstLba: 100, count: 4, op: "read", kind: "medium-error" }] }] });
    const r = await g.srb(buildReadCdb(10, 98n, 8), { inLength: 4096 });
    expect(r.srb.srbStatus).toBe(0x84);
    expect(toHex(r.sense)).toBe(senseHex(3, 0x11, 0, "00 00 00", "00 00 00 64", true));
    expect(r.srb.dataTransferLength).toBe(0);
    // Writes to the range are not faulted by a read rule.
    expect((await g.srb(buildWriteCdb(10, 100n, 1), { out: pattern(512, 2) })).srb.srbStatus).toBe(0x01);
    const faults = g.vsp.lunAt(0)!.disk.faults;
    const id = faults.addFault({ firstLba: 200, count: 1, op: "write", kind: "medium-error" });
    const w = await g.srb(buildWriteCdb(16, 199n, 2), { out: pattern(1024, 3) });
    expect(toHex(w.sense)).toBe(senseHex(3, 0x0c, 0, "00 00 00", "00 00 00 c8", true));
    faults.removeFault(id);
    faults.clearFaults();
    expect((await g.srb(buildWriteCdb(16, 199n, 2), { out: pattern(1024, 3) })).srb.srbStatus).toBe(0x01);
    expect((await g.srb(buildReadCdb(10, 98n, 8), { inLength: 4096 })).srb.srbStatus).toBe(0x01);
    expect(g.vsp.counters.errors["medium-error"]).toBe(2);
  });

  it("a READ whose buffer is declared data-out is refused (the host must not write it)", async () => {
    const g = await ready();
    const r = await g.srb(buildReadCdb(10, 0n, 1), { out: pattern(512, 4) });
    expect(toHex(r.sense)).toBe(senseHex(5, 0x24, 0));
    expect(toHex(r.data)).toBe(toHex(pattern(512, 4)));
  });

  it("a bad SRB field fails the request, not the channel: cdb_length 17 → srb INVALID_REQUEST", async () => {
    const g = await ready();
    const r = g.startSrb(buildTestUnitReadyCdb());
    void r;
    const bad = new Uint8Array(64);
    bad.set([3, 0, 0, 0, 1, 0, 0, 0]);
    bad[12] = 0x34;
    bad[20] = 17;
    bad[22] = 2;
    const c = await g.run(g.primary.sendRequest(bad));
    expect(toHex(c.data.subarray(0, 16))).toBe("01 00 00 00 00 00 00 00 0d 00 00 c0 34 00 06 00");
    await g.run(r);
    expect(g.primary.rescinded).toBe(false);
    expect(g.vsp.counters.errors["invalid-srb"]).toBe(1);
  });
});

describe("storvsp data path (§5)", () => {
  it("data written through one GPA range reads back byte-identical, for every READ/WRITE size", async () => {
    const g = await ready();
    const sizes = [6, 10, 12, 16] as const;
    for (const [i, size] of sizes.entries()) {
      const lba = BigInt(1000 + i * 64);
      const data = pattern(8 * 512, 10 + i);
      // An unaligned buffer that spans three pages: byte_offset 100.
      const w = await g.srb(buildWriteCdb(size, lba, 8), { out: data, byteOffset: 100 });
      expect(w.srb.srbStatus).toBe(0x01);
      expect(w.srb.dataTransferLength).toBe(4096);
      const r = await g.srb(buildReadCdb(sizes[(i + 1) % 4]!, lba, 8), { inLength: 4096, byteOffset: 3000 });
      expect(r.srb.dataTransferLength).toBe(4096);
      expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
    }
    expect(g.vsp.counters.bytesWritten).toBe(4 * 4096);
    expect(g.vsp.counters.bytesRead).toBe(4 * 4096);
    expect(g.vsp.counters.requests).toBe(g.vsp.counters.completions - 4);
  });

  it("a full 256 KiB transfer (max_transfer_bytes) works; a larger one fails the request", async () => {
    const g = await ready();
    const data = pattern(0x40000, 77);
    expect((await g.srb(buildWriteCdb(16, 4096n, 512), { out: data })).srb.srbStatus).toBe(0x01);
    const r = await g.srb(buildReadCdb(16, 4096n, 512), { inLength: 0x40000 });
    expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
    const big = await g.srb(buildReadCdb(16, 0n, 513), { inLength: 0x40000 + 512 });
    expect(big.srb.srbStatus).toBe(0x06);
    expect(g.vsp.counters.errors["invalid-srb"]).toBe(1);
  });

  it("WRITE SAME writes the block repeatedly; with UNMAP and zeros it deallocates; UNMAP drops chunks", async () => {
    const g = await ready();
    const disk = g.vsp.lunAt(0)!.disk.base as SparseMemoryDisk;
    const block = pattern(512, 5);
    expect((await g.srb(buildWriteSameCdb(10, 256n, 256), { out: block })).srb.srbStatus).toBe(0x01);
    const r = await g.srb(buildReadCdb(10, 256n, 256), { inLength: 256 * 512 });
    for (let i = 0; i < 256; i++) expect(Buffer.from(r.data.subarray(i * 512, (i + 1) * 512)).equals(Buffer.from(block))).toBe(true);
    expect(disk.allocatedChunks).toBe(2);
    expect((await g.srb(buildWriteSameCdb(16, 256n, 128, { unmap: true }), { out: new Uint8Array(512) })).srb.srbStatus).toBe(0x01);
    expect(disk.allocatedChunks).toBe(1);
    const list = buildUnmapParameterList([{ lba: 384n, blocks: 128 }]);
    const u = await g.srb(buildUnmapCdb(list.length), { out: list });
    expect(u.srb.srbStatus).toBe(0x01);
    expect(disk.allocatedChunks).toBe(0);
    const zero = await g.srb(buildReadCdb(10, 256n, 256), { inLength: 256 * 512 });
    expect(zero.data.every((b) => b === 0)).toBe(true);
    // WSNZ: zero blocks is refused; NDOB writes zeros without a buffer.
    expect(toHex((await g.srb(buildWriteSameCdb(10, 0n, 0), { out: block })).sense)).toBe(senseHex(5, 0x24, 0, "c0 00 07"));
    expect((await g.srb(buildWriteSameCdb(16, 0n, 16, { ndob: true }))).srb.srbStatus).toBe(0x01);
    // UNMAP past the end: 05/21/00 pointing into the parameter list, and nothing unmapped.
    const outOfRange = buildUnmapParameterList([{ lba: 0x1ff00n, blocks: 0x200 }]);
    expect(toHex((await g.srb(buildUnmapCdb(outOfRange.length), { out: outOfRange })).sense)).toBe(senseHex(5, 0x21, 0, "80 00 08"));
  });

  it("a 4 TiB sparse disk costs only the chunks written: two far-apart LBAs", async () => {
    const g = await ready({ disks: [{ kind: "memory", sizeBytes: 4 * 2 ** 40 }] });
    const last = 4n * 2n ** 40n / 512n - 8n;
    const a = pattern(4096, 21);
    const b = pattern(4096, 22);
    await g.srb(buildWriteCdb(16, 8n, 8), { out: a });
    await g.srb(buildWriteCdb(16, last, 8), { out: b });
    const disk = g.vsp.lunAt(0)!.disk.base as SparseMemoryDisk;
    expect(disk.allocatedChunks).toBe(2);
    expect(disk.allocatedBytes).toBe(2 * 65536);
    expect(Buffer.from((await g.srb(buildReadCdb(16, 8n, 8), { inLength: 4096 })).data).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from((await g.srb(buildReadCdb(16, last, 8), { inLength: 4096 })).data).equals(Buffer.from(b))).toBe(true);
    const middle = await g.srb(buildReadCdb(16, 2n ** 32n, 8), { inLength: 4096 });
    expect(middle.data.every((x) => x === 0)).toBe(true);
    const rc16 = await g.srb(buildReadCapacity16Cdb(), { inLength: 32 });
    expect(toHex(rc16.data.subarray(0, 12))).toBe("00 00 00 01 ff ff ff ff 00 00 02 00");
    expect(toHex((await g.srb(buildReadCdb(16, last + 8n, 1), { inLength: 512 })).sense)).toBe(senseHex(5, 0x21, 0, "c0 00 02"));
  });

  it("latency is virtual time: a read takes readNs + blocks × perBlockNs", async () => {
    const g = await ready({ disks: [{ ...DISK, latency: { readNs: 100_000, writeNs: 200_000, perBlockNs: 1_000, flushNs: 5_000_000 } }] });
    const t0 = g.sys.sim.now;
    await g.srb(buildReadCdb(10, 0n, 8), { inLength: 4096 });
    const t1 = g.sys.sim.now;
    expect(t1 - t0).toBeGreaterThanOrEqual(108_000);
    expect(t1 - t0).toBeLessThan(108_000 + 1_000_000);
    await g.srb(buildSynchronizeCacheCdb(10));
    expect(g.sys.sim.now - t1).toBeGreaterThanOrEqual(5_000_000);
    expect(g.vsp.lunAt(0)!.disk.latency!.delayedNs).toBe(108_000 + 5_000_000);
  });

  it("does not transfer more than the allocation length or the buffer (READ_TYPE data only)", async () => {
    const g = await ready();
    const r = await g.srb(buildCdb({ kind: "INQUIRY", evpd: false, pageCode: 0, allocationLength: 8, control: 0 }), { inLength: 64, dataIn: READ_TYPE });
    expect(r.srb.dataTransferLength).toBe(8);
    expect(r.data.subarray(8).every((b) => b === 0)).toBe(true);
  });
});

describe("storvsp with older guests and twice the same run", () => {
  it("a pre-Win8 guest (4.2) gets 48-byte completions and 18-byte sense", async () => {
    const g = await bootStorvsp({ disks: [DISK] });
    await g.handshake(VMSTOR_PROTO_VERSION_WIN7);
    const ok = await g.srb(buildReadCapacity10Cdb(), { inLength: 8 });
    expect(ok.completion.data.length).toBe(48);
    expect(toHex(ok.completion.data.subarray(12, 28))).toBe("24 00 01 00 00 00 00 00 10 12 01 00 08 00 00 00");
    const bad = await g.srb(buildReadCdb(10, 0x20000n, 1), { inLength: 512 });
    expect(bad.completion.data.length).toBe(48);
    expect(bad.srb.senseInfoLength).toBe(0x12);
    expect(toHex(bad.sense)).toBe(senseHex(5, 0x21, 0, "c0 00 02").slice(0, 18 * 3 - 1));
  });

  it("is deterministic: the same workload ends at the same virtual time with the same per-channel figures", async () => {
    const once = async (): Promise<string> => {
      const g = await bootStorvsp({ disks: [{ ...DISK, latency: { readNs: 50_000, writeNs: 80_000, perBlockNs: 500 } }], queueDepth: 5 });
      await g.handshake(VMSTOR_PROTO_VERSION_WIN10, 2);
      const subs = await g.openSubchannels(2);
      const chans = [g.primary, ...subs];
      const work = Array.from({ length: 60 }, (_, i) =>
        i % 3 === 0
          ? g.startSrb(buildWriteCdb(10, BigInt(i * 8), 8), { out: pattern(4096, i), channel: chans[i % 3]! })
          : g.startSrb(buildReadCdb(16, BigInt(i * 4), 4), { inLength: 2048, channel: chans[i % 3]! }),
      );
      await g.run(Promise.all(work));
      return JSON.stringify({ now: g.sys.sim.now, stats: g.vsp.channelStats(), c: g.vsp.counters });
    };
    expect(await once()).toBe(await once());
  });
});
