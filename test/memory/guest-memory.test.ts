import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  GpadlAccessError,
  GpadlView,
  GuestMemory,
  GuestMemoryError,
  InvalidArgumentError,
  OutOfGuestMemoryError,
  PAGE_SIZE,
  PagedView,
  VmbusSimError,
  zeroBytes,
} from "../../core/index.js";

describe("GuestMemory", () => {
  it("is pages over one SharedArrayBuffer with bounds-checked access", () => {
    const m = new GuestMemory({ bytes: 64 * PAGE_SIZE });
    expect(m.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(m.pageCount).toBe(64);
    m.writeU32(0x1000, 0xdeadbeef);
    expect(m.readU32(0x1000)).toBe(0xdeadbeef);
    expect(Array.from(m.read(0x1000, 4))).toEqual([0xef, 0xbe, 0xad, 0xde]);
    m.writeU64(0x2000, 0x0102030405060708n);
    expect(m.readU64(0x2000)).toBe(0x0102030405060708n);
    expect(() => m.read(64 * PAGE_SIZE - 2, 4)).toThrow(GuestMemoryError);
    expect(() => m.write(-1, new Uint8Array(1))).toThrow(/gpa=-1/);
    expect(() => new GuestMemory({ bytes: 1000 })).toThrow(InvalidArgumentError);
  });

  it("zeroes a page when it is handed out again, and leaves never-used pages as they are", () => {
    const m = new GuestMemory({ bytes: 8 * PAGE_SIZE });
    const all = m.allocContiguous(7);
    m.fill(all * PAGE_SIZE, 7 * PAGE_SIZE, 0x77);
    m.free(all, 7);
    // Freed (dirty) pages come back zeroed, whichever allocator takes them.
    const c = m.allocContiguous(3);
    expect(c).toBe(1);
    expect(m.read(c * PAGE_SIZE, 3 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    const s = m.allocScattered(2);
    expect(s).toEqual([7, 6]);
    for (const p of s) expect(m.read(p * PAGE_SIZE, PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(m.u8[4 * PAGE_SIZE]).toBe(0x77); // still free: not touched until handed out

    // A page nobody was given is not written by the allocator: it is still
    // the zeros memory started with — unless something broke the rule and
    // wrote to memory it did not allocate, which the allocator does not repair.
    const fresh = new GuestMemory({ bytes: 8 * PAGE_SIZE });
    fresh.u8[5 * PAGE_SIZE] = 0x99;
    expect(fresh.allocContiguous(7)).toBe(1);
    expect(fresh.u8[5 * PAGE_SIZE]).toBe(0x99);
    expect(fresh.read(PAGE_SIZE, 4 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
  });

  it("zeroBytes clears exactly [from, to), short or long, page-aligned or not", () => {
    const m = new GuestMemory({ bytes: 8 * PAGE_SIZE });
    for (const [from, to] of [[10, 11], [100, 355], [4000, 4100], [1, 3 * PAGE_SIZE + 17], [PAGE_SIZE, 3 * PAGE_SIZE], [7, 7]] as const) {
      m.u8.fill(0xa5);
      zeroBytes(m.u8, from, to);
      expect(m.u8.subarray(from, to).every((b) => b === 0)).toBe(true);
      expect(m.u8[from - 1]).toBe(0xa5);
      expect(m.u8[to]).toBe(0xa5);
      expect(m.u8.subarray(0, from).every((b) => b === 0xa5) && m.u8.subarray(to).every((b) => b === 0xa5)).toBe(true);
    }
    // fill(…, 0) of guest memory and of a paged view take the same path.
    m.u8.fill(0xa5);
    m.fill(PAGE_SIZE + 5, 2 * PAGE_SIZE);
    expect(m.u8.subarray(PAGE_SIZE + 5, 3 * PAGE_SIZE + 5).every((b) => b === 0)).toBe(true);
    expect(m.u8[3 * PAGE_SIZE + 5]).toBe(0xa5);
    const v = new PagedView(m, "test", { byteOffset: 100, byteCount: 5000, pfns: [6, 2] });
    m.u8.fill(0xa5);
    v.fill(0, 5000);
    expect(m.u8.subarray(6 * PAGE_SIZE + 100, 7 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(m.u8.subarray(2 * PAGE_SIZE, 2 * PAGE_SIZE + 1004).every((b) => b === 0)).toBe(true);
    expect(m.u8[2 * PAGE_SIZE + 1004]).toBe(0xa5);
    expect(m.u8[6 * PAGE_SIZE + 99]).toBe(0xa5);
  });

  it("allocates contiguous and scattered pages, zeroed, and frees them", () => {
    const m = new GuestMemory({ bytes: 16 * PAGE_SIZE });
    expect(m.freePages).toBe(15); // page 0 reserved
    const a = m.allocContiguous(4);
    expect(a).toBe(1);
    m.fill(a * PAGE_SIZE, 4 * PAGE_SIZE, 0xaa);
    const b = m.allocContiguous(2);
    expect(b).toBe(5);
    m.free(a, 4);
    expect(m.freePages).toBe(13);
    // Freed pages come back zeroed.
    const c = m.allocContiguous(4);
    expect(m.read(c * PAGE_SIZE, 4 * PAGE_SIZE).every((x) => x === 0)).toBe(true);
    // Fragment memory, then a scattered allocation takes non-adjacent pages.
    m.free(c, 4);
    m.free(b, 2);
    const holes = [m.allocContiguous(1), m.allocContiguous(1), m.allocContiguous(1)];
    m.free(holes[1] as number, 1);
    const s = m.allocScattered(3);
    expect(new Set(s).size).toBe(3);
    expect(() => m.free(0, 1)).toThrow(/reserved/);
    // Recently freed pages are handed out again first (hot pages, LIFO).
    expect(s).toEqual([holes[1], b + 1, b]);
    const unused = Array.from({ length: m.pageCount }, (_, i) => i).find((i) => i > 0 && !m.isAllocated(i)) as number;
    expect(() => m.free(unused, 1)).toThrow(/not allocated/);
    expect(() => m.allocContiguous(100)).toThrow(InvalidArgumentError);
    const big = new GuestMemory({ bytes: 8 * PAGE_SIZE });
    big.allocContiguous(3);
    big.allocContiguous(1);
    big.free(1, 3);
    // 6 free pages but no run of 5.
    expect(() => big.allocContiguous(5)).toThrow(OutOfGuestMemoryError);
  });

  it("never hands out a page twice (random alloc/free sequences)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 6 }), fc.boolean()), { maxLength: 60 }), (ops) => {
        const m = new GuestMemory({ bytes: 32 * PAGE_SIZE });
        const live: number[][] = [];
        const owned = new Set<number>();
        for (const [alloc, n, contiguous] of ops) {
          if (alloc || live.length === 0) {
            let pfns: number[];
            try {
              if (contiguous) {
                const first = m.allocContiguous(n);
                pfns = Array.from({ length: n }, (_, i) => first + i);
              } else {
                pfns = m.allocScattered(n);
              }
            } catch (e) {
              expect(e).toBeInstanceOf(VmbusSimError);
              continue;
            }
            for (const p of pfns) {
              expect(owned.has(p)).toBe(false);
              owned.add(p);
            }
            live.push(pfns);
          } else {
            const pfns = live.shift() as number[];
            m.free(pfns);
            for (const p of pfns) owned.delete(p);
          }
          expect(m.freePages).toBe(31 - owned.size);
        }
      }),
    );
  });
});

describe("GPADL and GPA range views", () => {
  function setup() {
    const m = new GuestMemory({ bytes: 32 * PAGE_SIZE });
    const pfns = [7, 3, 12]; // scattered on purpose
    for (const [i, p] of pfns.entries()) m.fill(p * PAGE_SIZE, PAGE_SIZE, 0x10 + i);
    return { m, pfns };
  }

  it("maps GPADL offsets through its PFN list", () => {
    const { m, pfns } = setup();
    const v = new GpadlView(m, { handle: 0xe1e10, byteOffset: 100, byteCount: 3 * PAGE_SIZE - 200, pfns });
    expect(v.region).toBe("GPADL 0xe1e10");
    expect(v.gpaOf(0)).toBe(7 * PAGE_SIZE + 100);
    expect(v.gpaOf(PAGE_SIZE - 100)).toBe(3 * PAGE_SIZE);
    const across = v.read(PAGE_SIZE - 102, 4); // last 2 bytes of page 7, first 2 of page 3
    expect(Array.from(across)).toEqual([0x10, 0x10, 0x11, 0x11]);
    v.write(2 * PAGE_SIZE - 101, new Uint8Array([1, 2, 3]));
    expect(m.u8[3 * PAGE_SIZE + 4095]).toBe(1);
    expect(m.u8[12 * PAGE_SIZE]).toBe(2);
    expect(v.contiguous).toBe(false);
    expect(() => v.span(0, PAGE_SIZE)).toThrow(/not adjacent/);
  });

  it("refuses every access outside what was shared, naming GPADL, offset and length", () => {
    const { m, pfns } = setup();
    const v = new GpadlView(m, { handle: 0xe1e11, byteOffset: 0, byteCount: 2 * PAGE_SIZE, pfns });
    // The third PFN is listed but outside byte_count: unreachable.
    expect(() => v.read(2 * PAGE_SIZE - 1, 2)).toThrow(GpadlAccessError);
    try {
      v.read(8190, 4);
    } catch (e) {
      expect((e as Error).message).toBe("GPADL 0xe1e11: access offset=8190 length=4 outside the shared bytes (limit 8192 bytes)");
    }
    expect(() => v.write(-1, new Uint8Array(1))).toThrow(GpadlAccessError);
    // Too few PFNs for byte_count, a PFN beyond guest memory, an offset outside the page.
    expect(() => new GpadlView(m, { handle: 1, byteOffset: 0, byteCount: 3 * PAGE_SIZE + 1, pfns })).toThrow(/needs 4 page/);
    expect(() => new GpadlView(m, { handle: 1, byteOffset: 0, byteCount: 10, pfns: [99] })).toThrow(/PFN 99/);
    expect(() => new PagedView(m, "GPA range 0", { byteOffset: 4096, byteCount: 1, pfns: [1, 2] })).toThrow(/byte_offset/);
  });

  it("keeps its own copy of the PFN list", () => {
    const { m } = setup();
    const pfns = [5, 6];
    const v = new GpadlView(m, { handle: 2, byteOffset: 0, byteCount: 2 * PAGE_SIZE, pfns });
    pfns[1] = 20;
    expect(v.gpaOf(PAGE_SIZE)).toBe(6 * PAGE_SIZE);
    expect(v.contiguous).toBe(true);
    expect(v.span(0, 2 * PAGE_SIZE).byteOffset).toBe(5 * PAGE_SIZE);
  });

  it("reads back exactly what was written, at any offset and length (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4095 }),
        fc.integer({ min: 1, max: 5 * PAGE_SIZE }),
        fc.nat(),
        fc.nat(),
        (byteOffset, byteCount, a, b) => {
          const m = new GuestMemory({ bytes: 64 * PAGE_SIZE });
          const pages = Math.ceil((byteOffset + byteCount) / PAGE_SIZE);
          const pfns = m.allocScattered(pages).reverse();
          const v = new GpadlView(m, { handle: 9, byteOffset, byteCount, pfns });
          const off = a % byteCount;
          const len = b % (byteCount - off + 1);
          const data = Uint8Array.from({ length: len }, (_, i) => (i * 7 + 1) & 0xff);
          v.write(off, data);
          expect(v.read(off, len)).toEqual(data);
          // Every byte lands in a listed page.
          for (let i = 0; i < len; i += 997) {
            const gpa = v.gpaOf(off + i);
            expect(pfns).toContain(Math.floor(gpa / PAGE_SIZE));
          }
          expect(() => v.read(off, byteCount - off + 1)).toThrow(GpadlAccessError);
        },
      ),
      { numRuns: 200 },
    );
  });
});
