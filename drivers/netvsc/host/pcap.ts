/**
 * libpcap capture files (the classic format Wireshark and tshark open):
 * a 24-byte global header — magic 0xA1B2C3D4 written little-endian,
 * version 2.4, thiszone 0, sigfigs 0, snaplen 262144, linktype 1
 * (LINKTYPE_ETHERNET) — then per frame a 16-byte record header
 * {ts_sec, ts_usec, incl_len, orig_len} and the frame bytes.
 *
 * Timestamps are VIRTUAL time (nanoseconds since the simulation started,
 * cut to microseconds), so the same scenario and seed give the same file.
 * Files are written with synchronous node:fs: the simulation's run loop
 * drives promise continuations itself, and async fs callbacks would land
 * outside it.
 */
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_SNAPLEN = 262144;
export const LINKTYPE_ETHERNET = 1;
export const PCAP_GLOBAL_HEADER_SIZE = 24;
export const PCAP_RECORD_HEADER_SIZE = 16;

/** One captured frame. */
export interface PcapRecord {
  readonly timeNs: number;
  readonly frame: Uint8Array;
}

export function encodePcapGlobalHeader(snaplen = PCAP_SNAPLEN, linktype = LINKTYPE_ETHERNET): Uint8Array {
  const out = new Uint8Array(PCAP_GLOBAL_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, PCAP_VERSION_MAJOR, true);
  v.setUint16(6, PCAP_VERSION_MINOR, true);
  v.setInt32(8, 0, true); // thiszone: timestamps are "UTC" of the virtual clock
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linktype, true);
  return out;
}

/** The records encoded back to back (no global header); frames longer than snaplen are cut. */
export function encodePcapRecords(records: readonly PcapRecord[], snaplen = PCAP_SNAPLEN): Uint8Array {
  let total = 0;
  for (const r of records) total += PCAP_RECORD_HEADER_SIZE + Math.min(r.frame.length, snaplen);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  let at = 0;
  for (const r of records) {
    const incl = Math.min(r.frame.length, snaplen);
    const sec = Math.floor(r.timeNs / 1e9);
    const usec = Math.floor((r.timeNs - sec * 1e9) / 1000);
    v.setUint32(at, sec, true);
    v.setUint32(at + 4, usec, true);
    v.setUint32(at + 8, incl, true);
    v.setUint32(at + 12, r.frame.length, true);
    out.set(r.frame.subarray(0, incl), at + PCAP_RECORD_HEADER_SIZE);
    at += PCAP_RECORD_HEADER_SIZE + incl;
  }
  return out;
}

/**
 * An in-memory capture, optionally streamed to a file: `flush()` appends
 * the records not yet written (the global header goes out with the first).
 */
export class PcapCapture {
  private readonly records: PcapRecord[] = [];
  private flushed = 0;
  private headerWritten = false;

  constructor(
    /** Streamed to this path on `flush()`, or null for memory only. */
    readonly path: string | null = null,
    readonly snaplen = PCAP_SNAPLEN,
  ) {}

  get count(): number {
    return this.records.length;
  }

  add(timeNs: number, frame: Uint8Array): void {
    this.records.push({ timeNs, frame });
  }

  /** Every record so far (frames are the switch's private copies; do not modify). */
  list(): readonly PcapRecord[] {
    return this.records;
  }

  /** The whole capture as a pcap file. */
  bytes(): Uint8Array {
    const header = encodePcapGlobalHeader(this.snaplen);
    const body = encodePcapRecords(this.records, this.snaplen);
    const out = new Uint8Array(header.length + body.length);
    out.set(header, 0);
    out.set(body, header.length);
    return out;
  }

  /** Writes the whole capture to `path` (replacing it), creating its directory if need be. */
  writeFile(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.bytes());
  }

  /** Appends the records captured since the last flush to `path` (no-op without one). */
  flush(): void {
    if (this.path === null) return;
    if (!this.headerWritten) {
      mkdirSync(dirname(this.path), { recursive: true });
      writeFileSync(this.path, encodePcapGlobalHeader(this.snaplen));
      this.headerWritten = true;
    }
    if (this.flushed === this.records.length) return;
    appendFileSync(this.path, encodePcapRecords(this.records.slice(this.flushed), this.snaplen));
    this.flushed = this.records.length;
  }
}
