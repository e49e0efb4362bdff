/**
 * Golden bytes: every packet kind as it lands in the ring, compared byte
 * for byte with the layouts of vmbus-core.md §1–§2 (written out by hand
 * from the spec tables, not produced by the code under test).
 */
import { describe, expect, it } from "vitest";
import {
  GpaDirectRanges,
  HV_RING_BUFFER,
  RingReader,
  RingWriter,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VM_PKT_DATA_USING_XFER_PAGES,
  decodeDescriptor,
  decodeXferPages,
} from "../../core/index.js";
import { bytes, hex, makeRing, pair } from "./helpers.js";

describe("ring header", () => {
  it("has its fields at their struct hv_ring_buffer offsets, data from +4096", () => {
    const { ring, w, r } = pair(3);
    const raw = new DataView(ring.header.buffer, ring.header.byteOffset, 8192);
    expect(HV_RING_BUFFER).toMatchObject({ write_index: 0, read_index: 4, interrupt_mask: 8, pending_send_sz: 12, feature_bits: 64 });
    expect(raw.getUint32(64, true)).toBe(1); // feat_pending_send_sz set by init
    expect(ring.dataSize).toBe(8192);
    expect(ring.data.byteOffset - ring.header.byteOffset).toBe(4096);
    w.writeInband(1, new Uint8Array(8));
    w.commit();
    expect(raw.getUint32(0, true)).toBe(32); // write_index
    r.first();
    r.beginRead();
    expect(raw.getUint32(8, true)).toBe(1); // interrupt_mask
    r.close();
    expect(raw.getUint32(4, true)).toBe(0); // a packet not stepped past is not consumed
    expect(r.first()?.transIdNumber).toBe(1); // returned again
    expect(r.next()).toBeNull();
    r.close();
    expect(raw.getUint32(4, true)).toBe(32); // read_index
    w.block(100);
    expect(raw.getUint32(12, true)).toBe(0); // space was there: block() cleared it again
  });
});

describe("packet kinds, byte for byte", () => {
  it("VM_PKT_DATA_INBAND: descriptor, payload, zero padding, trailer", () => {
    const { ring, w } = pair();
    expect(w.writeInband(0x1122334455667788n, Uint8Array.of(1, 2, 3, 4, 5), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED)).toBe(true);
    expect(w.writeInband(7, Uint8Array.of(0xaa))).toBe(true);
    w.commit();
    expect(hex(ring.data.subarray(0, 64))).toBe(
      hex(
        bytes(`
        06 00 02 00 03 00 01 00  88 77 66 55 44 33 22 11
        01 02 03 04 05 00 00 00  00 00 00 00 00 00 00 00
        06 00 02 00 03 00 00 00  07 00 00 00 00 00 00 00
        aa 00 00 00 00 00 00 00  00 00 00 00 20 00 00 00`),
      ),
    );
    expect(ring.loadWriteIndex()).toBe(64);
  });

  it("an empty inband packet is a bare descriptor (len8 = offset8 = 2)", () => {
    const { ring, w } = pair();
    w.writeInband(3, new Uint8Array(0));
    w.commit();
    expect(hex(ring.data.subarray(0, 24))).toBe(hex(bytes("06 00 02 00 02 00 00 00 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")));
  });

  it("VM_PKT_COMP echoes the transaction id", () => {
    const { ring, w } = pair();
    w.writeCompletion(0xfffffffffffffffen, Uint8Array.of(9, 9, 9, 9, 9, 9, 9, 9));
    w.commit();
    expect(hex(ring.data.subarray(0, 32))).toBe(
      hex(bytes("0b 00 02 00 03 00 00 00 fe ff ff ff ff ff ff ff 09 09 09 09 09 09 09 09 00 00 00 00 00 00 00 00")),
    );
  });

  it("GPA direct, vmbus_sendpacket_pagebuffer layout (hv_page_buffer ranges from @24)", () => {
    const { ring, w, r } = pair();
    w.writePageBuffer(
      5,
      [
        { len: 0x200, offset: 0x100, pfn: 0x1234 },
        { len: 0x1000, offset: 0, pfn: 0x1_0000_0042 },
      ],
      Uint8Array.of(0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7),
    );
    w.commit();
    // descsize = 24 + 16*2 = 56 → offset8 7; +8 payload → len8 8.
    expect(hex(ring.data.subarray(0, 72))).toBe(
      hex(
        bytes(`
        09 00 07 00 08 00 01 00  05 00 00 00 00 00 00 00
        00 00 00 00 02 00 00 00  00 02 00 00 00 01 00 00
        34 12 00 00 00 00 00 00  00 10 00 00 00 00 00 00
        42 00 00 00 01 00 00 00  c0 c1 c2 c3 c4 c5 c6 c7
        00 00 00 00 00 00 00 00`),
      ),
    );
    const p = r.first();
    expect(p?.type).toBe(VM_PKT_DATA_USING_GPA_DIRECT);
    const ranges = new GpaDirectRanges().parse(p!).toRanges();
    expect(ranges).toEqual([
      { byteCount: 0x200, byteOffset: 0x100, pfns: [0x1234] },
      { byteCount: 0x1000, byteOffset: 0, pfns: [0x1_0000_0042] },
    ]);
  });

  it("GPA direct, vmbus_sendpacket_mpb_desc layout (hv_mpb_array with its PFNs)", () => {
    const { ring, w, r } = pair();
    // 8192 bytes starting 100 into the first page touch 3 pages.
    w.writeMpb(0x42, [{ byteCount: 8192, byteOffset: 100, pfns: [0x10, 0x11, 0x20] }], Uint8Array.of(0xee));
    w.commit();
    // desc_size = 32 + 8*3 = 56 → offset8 7; +1 → 57 → len8 8.
    expect(hex(ring.data.subarray(0, 72))).toBe(
      hex(
        bytes(`
        09 00 07 00 08 00 01 00  42 00 00 00 00 00 00 00
        00 00 00 00 01 00 00 00  00 20 00 00 64 00 00 00
        10 00 00 00 00 00 00 00  11 00 00 00 00 00 00 00
        20 00 00 00 00 00 00 00  ee 00 00 00 00 00 00 00
        00 00 00 00 00 00 00 00`),
      ),
    );
    const ranges = new GpaDirectRanges().parse(r.first()!);
    expect(ranges.count).toBe(1);
    expect(ranges.pfnCount(0)).toBe(3);
    expect([ranges.pfn(0, 0), ranges.pfn(0, 1), ranges.pfn(0, 2)]).toEqual([0x10, 0x11, 0x20]);
  });

  it("VM_PKT_DATA_USING_XFER_PAGES: pageset id @16, sender_owns_set @18, range_cnt @20, ranges @24", () => {
    const { ring, w, r } = pair();
    w.writeXferPages(
      0x99,
      0xcafe,
      [
        { byteCount: 60, byteOffset: 0 },
        { byteCount: 1514, byteOffset: 6144 },
      ],
      new Uint8Array(0),
    );
    w.commit();
    // 16 + 8 + 16 = 40 → offset8 = len8 = 5.
    expect(hex(ring.data.subarray(0, 48))).toBe(
      hex(
        bytes(`
        07 00 05 00 05 00 01 00  99 00 00 00 00 00 00 00
        fe ca 00 00 02 00 00 00  3c 00 00 00 00 00 00 00
        ea 05 00 00 00 18 00 00  00 00 00 00 00 00 00 00`),
      ),
    );
    const p = r.first()!;
    expect(p.type).toBe(VM_PKT_DATA_USING_XFER_PAGES);
    expect(decodeXferPages(p)).toEqual({
      xferPagesetId: 0xcafe,
      senderOwnsSet: false,
      ranges: [
        { byteCount: 60, byteOffset: 0 },
        { byteCount: 1514, byteOffset: 6144 },
      ],
    });
  });

  it("a packet that straddles the end of the data area is split and read back whole", () => {
    const ring = makeRing();
    // Both indices 8 bytes before the end: the descriptor itself wraps.
    ring.storeWriteIndex(4088);
    ring.storeReadIndex(4088);
    const w2 = new RingWriter(ring);
    const r2 = new RingReader(ring);
    const payload = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
    w2.writeInband(0xabcdef, payload);
    w2.commit();
    expect(hex(ring.data.subarray(4088, 4096))).toBe(hex(bytes("06 00 02 00 05 00 00 00")));
    expect(hex(ring.data.subarray(0, 8))).toBe(hex(bytes("ef cd ab 00 00 00 00 00")));
    // trailer after 40 bytes of packet: at (4088 + 40) - 4096 = 32; holds old write index 4088.
    expect(hex(ring.data.subarray(32, 40))).toBe(hex(bytes("00 00 00 00 f8 0f 00 00")));
    expect(ring.loadWriteIndex()).toBe(40);
    const p = r2.first()!;
    expect(p.type).toBe(VM_PKT_DATA_INBAND);
    expect(p.transIdNumber).toBe(0xabcdef);
    expect(Array.from(p.data().subarray(0, 20))).toEqual(Array.from(payload));
    expect(decodeDescriptor(p.copy())).toMatchObject({ type: 6, offset8: 2, len8: 5, flags: 0, transId: 0xabcdefn });
    expect(VM_PKT_COMP).toBe(0xb);
  });
});
