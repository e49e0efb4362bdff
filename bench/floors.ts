/**
 * Ceilings and floors of bench:storage and bench:net, timed side by side.
 *
 * - The *ceiling* is what the issue defines: the bare ring — packets written,
 *   published, read and released, nothing else. The simulator cannot beat it.
 * - The *floor* is the least work that ANY simulator of the same I/O must do
 *   in this process, under the project's rules and the public API: the same
 *   ring packets, the bytes the "real bytes" rule makes move through guest
 *   memory (a SharedArrayBuffer), the copy the API returns, and one promise
 *   per call — no scheduler, no SynIC, no control plane, no SCSI or RNDIS
 *   logic, no checks. Its ratio to the ceiling bounds every ratio the
 *   benchmark can print on this machine: a simulator that did all its work
 *   for free would reach it and no more.
 *
 * The ceiling and the floor alternate, rep by rep, after one untimed warm-up
 * each, so that both see the same machine state (the JIT, the heap the cases
 * left, other load); each figure is the median of its reps.
 */
import { GpaDirectRanges, PAGE_SIZE, RingBuffer, RingReader, RingWriter } from "../core/index.js";
import { median } from "./harness.js";

export interface CeilingAndFloor {
  /** Ring operations per wall-clock second (round trips or packets; see the function). */
  readonly ceiling: number;
  /** I/Os or frames per wall-clock second of the floor. */
  readonly floor: number;
}

/** Runs `unit` until `seconds` pass; returns units per second. Awaits each unit. */
async function timeAsync(unit: (k: number) => Promise<unknown>, seconds: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let n = 0;
  while (process.hrtime.bigint() < deadline) {
    for (let k = 0; k < 256; k++, n++) await unit(n);
  }
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function timeSync(unit: (n: number) => number, seconds: number): number {
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  let n = 0;
  while (process.hrtime.bigint() < deadline) n += unit(n);
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function ring(pages: number, name: string): RingBuffer {
  const r = new RingBuffer(new Uint8Array(new SharedArrayBuffer(pages * PAGE_SIZE)), name);
  r.init();
  return r;
}

async function alternate(reps: number, seconds: number, ceiling: () => number, floor: () => Promise<number>): Promise<CeilingAndFloor> {
  ceiling();
  await floor();
  const c: number[] = [];
  const f: number[] = [];
  for (let i = 0; i < reps; i++) {
    c.push(ceiling());
    f.push(await floor());
  }
  return { ceiling: median(c), floor: median(f) };
}

/**
 * Storage, per 4 KiB read. Ceiling: the round trip of bench:storage — a
 * GPA-direct request (one range of one page, a 64-byte VSTOR packet) into
 * one ring and a 64-byte completion into the other, each written,
 * published, read and released. Floor: that round trip, plus the host's copy
 * of the block from its backing store into the guest page (the DMA), plus
 * the guest's copy of the page into the result `read()` returns (a view of a
 * 64 KiB slab, as storvsc does), plus one promise the caller awaits.
 */
export async function storageCeilingAndFloor(seconds: number, reps = 5): Promise<CeilingAndFloor> {
  const req = ring(32, "request");
  const cmp = ring(32, "completion");
  const wa = new RingWriter(req);
  const ra = new RingReader(req);
  const wb = new RingWriter(cmp);
  const rb = new RingReader(cmp);
  const vstor = new Uint8Array(64);
  const PFN = 7;
  const ranges = [{ byteCount: PAGE_SIZE, byteOffset: 0, pfns: [PFN] }];
  const parsed = new GpaDirectRanges();
  const guest = new Uint8Array(new SharedArrayBuffer(16 * PAGE_SIZE));
  const backing = new Uint8Array(512 * PAGE_SIZE).fill(0x5a);
  let slab = new ArrayBuffer(0);
  let slabNext = 0;
  let id = 1;

  // Returns the completion's transaction id (checked, so nothing is optimized away).
  const roundTrip = (dma: ((block: number) => void) | null, block: number): number => {
    wa.writeMpb(id, ranges, vstor);
    wa.commit();
    const p = ra.first();
    if (p === null) throw new Error("request lost");
    parsed.parse(p);
    ra.advance();
    ra.close();
    if (dma !== null) dma(block);
    wb.writeCompletion(id, vstor);
    wb.commit();
    const c = rb.first();
    if (c === null || c.transIdLo !== id) throw new Error("completion lost");
    const got = c.transIdLo;
    rb.advance();
    rb.close();
    id = id === 1000 ? 1 : id + 1;
    return got;
  };
  const dma = (block: number): void => {
    const at = (block & 511) * PAGE_SIZE;
    guest.set(backing.subarray(at, at + PAGE_SIZE), PFN * PAGE_SIZE);
  };
  const result = (): Uint8Array => {
    if (slabNext + PAGE_SIZE > slab.byteLength) {
      slab = new ArrayBuffer(64 * 1024);
      slabNext = 0;
    }
    const out = new Uint8Array(slab, slabNext, PAGE_SIZE);
    slabNext += PAGE_SIZE;
    out.set(guest.subarray(PFN * PAGE_SIZE, (PFN + 1) * PAGE_SIZE));
    return out;
  };
  const read = (block: number): Promise<Uint8Array> =>
    new Promise((resolve) => {
      roundTrip(dma, block);
      resolve(result());
    });
  return alternate(
    reps,
    seconds,
    () =>
      timeSync(() => {
        for (let k = 0; k < 256; k++) roundTrip(null, k);
        return 256;
      }, seconds),
    () => timeAsync(read, seconds),
  );
}

/**
 * Network, per 64-byte (or `frameBytes`) VM-to-VM frame. Ceiling: what
 * bench:net measured before — packets of the frame size plus the 44-byte
 * RNDIS header, written in batches of 32, published, read, released. Floor:
 * the sender's copy of the frame (behind a 44-byte RNDIS PACKET header) into
 * its send buffer in guest memory; the host's read of that header and copy
 * of the frame (behind a new header) into the receiver's receive buffer,
 * another guest's memory; the receiver's read of the header and copy of the
 * frame into the array its listener gets; one promise per `send()`; and the
 * NVSP packets on the rings at the best batching there is — one send, one
 * send completion, one receive indication and one receive completion per 32
 * frames.
 */
export async function netCeilingAndFloor(frameBytes: number, seconds: number, reps = 5): Promise<CeilingAndFloor> {
  const r0 = ring(129, "bench");
  const w = new RingWriter(r0);
  const r = new RingReader(r0, { maxPacketSize: 4096 });
  const payload = new Uint8Array(frameBytes + 44);
  const nvsp = new Uint8Array(32);
  const slot = (frameBytes + 44 + 63) & ~63;
  const sendBuf = new Uint8Array(new SharedArrayBuffer(64 * slot));
  const recvBuf = new Uint8Array(new SharedArrayBuffer(64 * slot));
  const sendView = new DataView(sendBuf.buffer);
  const recvView = new DataView(recvBuf.buffer);
  const frame = new Uint8Array(frameBytes).fill(0x42);
  let arena = new ArrayBuffer(0);
  let arenaNext = 0;
  let delivered = 0;
  const listener = (f: Uint8Array): void => {
    if (f.length === frameBytes) delivered++;
  };
  const writeHeader = (view: DataView, at: number, length: number): void => {
    view.setUint32(at, 1, true); // RNDIS_MSG_PACKET
    view.setUint32(at + 4, 44 + length, true);
    view.setUint32(at + 8, 36, true); // data offset, from byte 8
    view.setUint32(at + 12, length, true);
  };
  const one = (k: number): Promise<void> =>
    new Promise((resolve) => {
      const at = (k & 63) * slot;
      writeHeader(sendView, at, frameBytes);
      sendBuf.set(frame, at + 44);
      const length = sendView.getUint32(at + 12, true);
      writeHeader(recvView, at, length);
      recvBuf.set(sendBuf.subarray(at + 44, at + 44 + length), at + 44);
      const got = recvView.getUint32(at + 12, true);
      if (arenaNext + got > arena.byteLength) {
        arena = new ArrayBuffer(64 * 1024);
        arenaNext = 0;
      }
      const out = new Uint8Array(arena, arenaNext, got);
      arenaNext += got;
      out.set(recvBuf.subarray(at + 44, at + 44 + got));
      listener(out);
      resolve();
    });
  const floor = async (): Promise<number> => {
    delivered = 0;
    const sends: Promise<void>[] = new Array<Promise<void>>(32);
    const t0 = process.hrtime.bigint();
    const deadline = t0 + BigInt(Math.round(seconds * 1e9));
    let n = 0;
    while (process.hrtime.bigint() < deadline) {
      for (let b = 0; b < 8; b++) {
        for (let k = 0; k < 32; k++) sends[k] = one(n + k);
        for (let p = 1; p <= 4; p++) w.writeInband(p, nvsp);
        w.commit();
        for (let p = r.first(); p !== null; p = r.next());
        r.close();
        await Promise.all(sends);
        n += 32;
      }
    }
    if (delivered < n) throw new Error("floor lost frames");
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  };
  return alternate(
    reps,
    seconds,
    () =>
      timeSync(() => {
        let n = 0;
        for (let k = 0; k < 32; k++) w.writeInband(k + 1, payload);
        w.commit();
        for (let p = r.first(); p !== null; p = r.next()) n++;
        r.close();
        return n;
      }, seconds),
    floor,
  );
}
