/**
 * MODE SENSE(6)/(10) response data (storvsc-netvsc.md §7.5; T10 SPC/SBC):
 * the mode parameter headers, and the caching mode page 0x08 in OV's short
 * 12-byte form (page length 10) or the full 20-byte SBC form. Page 0x3F
 * ("all pages") is answered with every page the host has, so it needs no
 * layout of its own. Builders are host side, parsers guest side
 * (`ProtocolError` for data no honest host sends; data cut short by the
 * allocation length is parsed as far as it goes and marked `truncated`).
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { bit, checkRange, checkUint, copyBytes, flag, viewOf } from "./bytes.js";
import type { FieldSpec } from "./vstor-packet.js";

export const MODE_PAGE_CACHING = 0x08;
export const MODE_PAGE_ALL = 0x3f;
/** PAGE CONTROL values of the MODE SENSE CDB. */
export const MODE_SENSE_PC_CURRENT = 0;
export const MODE_SENSE_PC_CHANGEABLE = 1;
export const MODE_SENSE_PC_DEFAULT = 2;
export const MODE_SENSE_PC_SAVED = 3;
/** DEVICE-SPECIFIC PARAMETER bits for direct-access devices. */
export const MODE_DSP_WRITE_PROTECT = 0x80;
export const MODE_DSP_DPOFUA = 0x10;

export const MODE_PARAMETER_HEADER_6_LAYOUT = {
  mode_data_length: { offset: 0, size: 1 },
  medium_type: { offset: 1, size: 1 },
  device_specific_parameter: { offset: 2, size: 1 },
  block_descriptor_length: { offset: 3, size: 1 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const MODE_PARAMETER_HEADER_6_LENGTH = 4;

export const MODE_PARAMETER_HEADER_10_LAYOUT = {
  mode_data_length: { offset: 0, size: 2 },
  medium_type: { offset: 2, size: 1 },
  device_specific_parameter: { offset: 3, size: 1 },
  /** bit0 LONGLBA. */
  longlba: { offset: 4, size: 1 },
  reserved: { offset: 5, size: 1 },
  block_descriptor_length: { offset: 6, size: 2 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const MODE_PARAMETER_HEADER_10_LENGTH = 8;

/** Caching mode page, offsets within the page. */
export const CACHING_MODE_PAGE_LAYOUT = {
  /** bit7 PS, bit6 SPF, bits 5–0 PAGE CODE (0x08). */
  page_code: { offset: 0, size: 1 },
  page_length: { offset: 1, size: 1 },
  /** bit7 IC, 6 ABPF, 5 CAP, 4 DISC, 3 SIZE, 2 WCE, 1 MF, 0 RCD. */
  flags: { offset: 2, size: 1 },
  /** bits 7–4 DEMAND READ RETENTION PRIORITY, 3–0 WRITE RETENTION PRIORITY. */
  retention_priority: { offset: 3, size: 1 },
  disable_prefetch_transfer_length: { offset: 4, size: 2 },
  minimum_prefetch: { offset: 6, size: 2 },
  maximum_prefetch: { offset: 8, size: 2 },
  maximum_prefetch_ceiling: { offset: 10, size: 2 },
  /** Full form only: bit7 FSW, 6 LBCSS, 5 DRA, 0 NV_DIS. */
  flags12: { offset: 12, size: 1 },
  number_of_cache_segments: { offset: 13, size: 1 },
  cache_segment_size: { offset: 14, size: 2 },
  reserved: { offset: 16, size: 1 },
  obsolete: { offset: 17, size: 3 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
/** OV's Windows-style page: 12 bytes, page length 0x0A. */
export const CACHING_MODE_PAGE_SHORT_LENGTH = 12;
/** SBC's page: 20 bytes, page length 0x12. */
export const CACHING_MODE_PAGE_FULL_LENGTH = 20;

export interface CachingModePageExtension {
  readonly fsw: boolean;
  readonly lbcss: boolean;
  readonly dra: boolean;
  readonly nvDis: boolean;
  readonly numberOfCacheSegments: number;
  readonly cacheSegmentSize: number;
}

export interface CachingModePage {
  readonly ps: boolean;
  readonly ic: boolean;
  readonly abpf: boolean;
  readonly cap: boolean;
  readonly disc: boolean;
  readonly size: boolean;
  /** Write cache enabled. */
  readonly wce: boolean;
  readonly mf: boolean;
  /** Read cache disabled. */
  readonly rcd: boolean;
  readonly demandReadRetentionPriority: number;
  readonly writeRetentionPriority: number;
  readonly disablePrefetchTransferLength: number;
  readonly minimumPrefetch: number;
  readonly maximumPrefetch: number;
  readonly maximumPrefetchCeiling: number;
  /** The bytes of the full 20-byte form, or null for the 12-byte form. */
  readonly extended: CachingModePageExtension | null;
}

export type CachingModePageInput = Partial<CachingModePage>;

/** Host: the caching page, 12 bytes unless `extended` is given (then 20). */
export function buildCachingModePage(p: CachingModePageInput): Uint8Array {
  const ext = p.extended ?? null;
  const out = new Uint8Array(ext === null ? CACHING_MODE_PAGE_SHORT_LENGTH : CACHING_MODE_PAGE_FULL_LENGTH);
  const v = viewOf(out);
  const drrp = p.demandReadRetentionPriority ?? 0;
  const wrp = p.writeRetentionPriority ?? 0;
  checkRange("demandReadRetentionPriority", drrp, 0, 15);
  checkRange("writeRetentionPriority", wrp, 0, 15);
  out[0] = flag(p.ps === true, 7) | MODE_PAGE_CACHING;
  out[1] = out.length - 2;
  out[2] =
    flag(p.ic === true, 7) |
    flag(p.abpf === true, 6) |
    flag(p.cap === true, 5) |
    flag(p.disc === true, 4) |
    flag(p.size === true, 3) |
    flag(p.wce === true, 2) |
    flag(p.mf === true, 1) |
    flag(p.rcd === true, 0);
  out[3] = (drrp << 4) | wrp;
  const u16 = (name: string, value: number | undefined, off: number): void => {
    const n = value ?? 0;
    checkUint(name, n, 16);
    v.setUint16(off, n, false);
  };
  u16("disablePrefetchTransferLength", p.disablePrefetchTransferLength, 4);
  u16("minimumPrefetch", p.minimumPrefetch, 6);
  u16("maximumPrefetch", p.maximumPrefetch, 8);
  u16("maximumPrefetchCeiling", p.maximumPrefetchCeiling, 10);
  if (ext !== null) {
    checkUint("extended.numberOfCacheSegments", ext.numberOfCacheSegments, 8);
    out[12] = flag(ext.fsw, 7) | flag(ext.lbcss, 6) | flag(ext.dra, 5) | flag(ext.nvDis, 0);
    out[13] = ext.numberOfCacheSegments;
    u16("extended.cacheSegmentSize", ext.cacheSegmentSize, 14);
  }
  return out;
}

/** Guest: parses a complete caching page (as found by `parseModeSenseData`). */
export function parseCachingModePage(bytes: Uint8Array): CachingModePage {
  const P = "SCSI caching mode page";
  const d = copyBytes(bytes);
  if (d.length < 2) throw new ProtocolError(P, "length", d.length, "is below the 2-byte page header");
  const code = (d[0] ?? 0) & 0x3f;
  // Reading another page's bytes as caching flags would, e.g., report a
  // write cache that does not exist.
  if (code !== MODE_PAGE_CACHING) throw new ProtocolError(P, "PAGE CODE", code, "is not 0x08");
  // SPF set means the sub-page format, whose header is 4 bytes: not this page.
  if (bit(d[0] ?? 0, 6)) throw new ProtocolError(P, "SPF", 1, "must be 0 for the caching page");
  const pageLength = d[1] ?? 0;
  if (pageLength < CACHING_MODE_PAGE_SHORT_LENGTH - 2) {
    throw new ProtocolError(P, "PAGE LENGTH", pageLength, `is below ${CACHING_MODE_PAGE_SHORT_LENGTH - 2}`);
  }
  if (d.length < pageLength + 2) {
    throw new ProtocolError(P, "length", d.length, `is below PAGE LENGTH ${pageLength} + 2`);
  }
  const v = viewOf(d);
  const b2 = d[2] ?? 0;
  const full = pageLength >= CACHING_MODE_PAGE_FULL_LENGTH - 2;
  return {
    ps: bit(d[0] ?? 0, 7),
    ic: bit(b2, 7),
    abpf: bit(b2, 6),
    cap: bit(b2, 5),
    disc: bit(b2, 4),
    size: bit(b2, 3),
    wce: bit(b2, 2),
    mf: bit(b2, 1),
    rcd: bit(b2, 0),
    demandReadRetentionPriority: (d[3] ?? 0) >> 4,
    writeRetentionPriority: (d[3] ?? 0) & 0xf,
    disablePrefetchTransferLength: v.getUint16(4, false),
    minimumPrefetch: v.getUint16(6, false),
    maximumPrefetch: v.getUint16(8, false),
    maximumPrefetchCeiling: v.getUint16(10, false),
    extended: full
      ? {
          fsw: bit(d[12] ?? 0, 7),
          lbcss: bit(d[12] ?? 0, 6),
          dra: bit(d[12] ?? 0, 5),
          nvDis: bit(d[12] ?? 0, 0),
          numberOfCacheSegments: d[13] ?? 0,
          cacheSegmentSize: v.getUint16(14, false),
        }
      : null,
  };
}

export interface ModeSenseDataInput {
  readonly cdbSize: 6 | 10;
  readonly mediumType?: number;
  readonly writeProtected?: boolean;
  readonly dpoFua?: boolean;
  /** Complete mode pages, in order. */
  readonly pages: readonly Uint8Array[];
}

/** Host: mode parameter header (no block descriptors, as OV) followed by `pages`. */
export function buildModeSenseData(input: ModeSenseDataInput): Uint8Array {
  const headerLength = input.cdbSize === 6 ? MODE_PARAMETER_HEADER_6_LENGTH : MODE_PARAMETER_HEADER_10_LENGTH;
  const total = headerLength + input.pages.reduce((n, p) => n + p.length, 0);
  const modeDataLength = input.cdbSize === 6 ? total - 1 : total - 2;
  if (modeDataLength > (input.cdbSize === 6 ? 0xff : 0xffff)) {
    throw new InvalidArgumentError("mode data length", modeDataLength, `does not fit MODE SENSE(${input.cdbSize})`);
  }
  const mediumType = input.mediumType ?? 0;
  checkUint("mediumType", mediumType, 8);
  const dsp = flag(input.writeProtected === true, 7) | flag(input.dpoFua === true, 4);
  const out = new Uint8Array(total);
  if (input.cdbSize === 6) {
    out[0] = modeDataLength;
    out[1] = mediumType;
    out[2] = dsp;
  } else {
    viewOf(out).setUint16(0, modeDataLength, false);
    out[2] = mediumType;
    out[3] = dsp;
  }
  let off = headerLength;
  for (const p of input.pages) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export interface ModeParameterHeader {
  readonly modeDataLength: number;
  readonly mediumType: number;
  readonly deviceSpecificParameter: number;
  readonly writeProtected: boolean;
  readonly dpoFua: boolean;
  /** LONGLBA (10-byte header only). */
  readonly longLba: boolean;
  readonly blockDescriptorLength: number;
}

export interface ModePage {
  readonly pageCode: number;
  /** 0 unless SPF. */
  readonly subpageCode: number;
  readonly ps: boolean;
  readonly spf: boolean;
  /** The whole page, header included. */
  readonly bytes: Uint8Array;
}

export interface ModeSenseData {
  readonly header: ModeParameterHeader;
  readonly blockDescriptors: Uint8Array;
  /** Pages that arrived complete. */
  readonly pages: readonly ModePage[];
  /** Fewer bytes arrived than MODE DATA LENGTH announces. */
  readonly truncated: boolean;
}

/** Guest: parses MODE SENSE(6) or (10) data. */
export function parseModeSenseData(bytes: Uint8Array, cdbSize: 6 | 10): ModeSenseData {
  const P = `SCSI MODE SENSE(${cdbSize})`;
  const headerLength = cdbSize === 6 ? MODE_PARAMETER_HEADER_6_LENGTH : MODE_PARAMETER_HEADER_10_LENGTH;
  if (bytes.length < headerLength) {
    throw new ProtocolError(P, "data length", bytes.length, `is below the ${headerLength}-byte mode parameter header`);
  }
  const d = copyBytes(bytes);
  const v = viewOf(d);
  const header: ModeParameterHeader =
    cdbSize === 6
      ? {
          modeDataLength: d[0] ?? 0,
          mediumType: d[1] ?? 0,
          deviceSpecificParameter: d[2] ?? 0,
          writeProtected: bit(d[2] ?? 0, 7),
          dpoFua: bit(d[2] ?? 0, 4),
          longLba: false,
          blockDescriptorLength: d[3] ?? 0,
        }
      : {
          modeDataLength: v.getUint16(0, false),
          mediumType: d[2] ?? 0,
          deviceSpecificParameter: d[3] ?? 0,
          writeProtected: bit(d[3] ?? 0, 7),
          dpoFua: bit(d[3] ?? 0, 4),
          longLba: bit(d[4] ?? 0, 0),
          blockDescriptorLength: v.getUint16(6, false),
        };
  const total = header.modeDataLength + (cdbSize === 6 ? 1 : 2);
  // A mode data length too small for its own header is self-contradictory.
  if (total < headerLength) {
    throw new ProtocolError(P, "MODE DATA LENGTH", header.modeDataLength, `is too small for the ${headerLength}-byte header`);
  }
  const available = Math.min(total, d.length);
  const pagesStart = headerLength + header.blockDescriptorLength;
  // Block descriptors past the end of the mode data would swallow pages
  // that are not there.
  if (pagesStart > total) {
    throw new ProtocolError(P, "BLOCK DESCRIPTOR LENGTH", header.blockDescriptorLength, `runs past MODE DATA LENGTH ${header.modeDataLength}`);
  }
  const blockDescriptors = d.slice(headerLength, Math.min(pagesStart, available));
  const pages: ModePage[] = [];
  let off = pagesStart;
  let truncated = available < total;
  while (off < available) {
    const b0 = d[off] ?? 0;
    const spf = bit(b0, 6);
    const pageHeader = spf ? 4 : 2;
    const pageLength = spf ? (off + 3 < d.length ? v.getUint16(off + 2, false) : 0) : (d[off + 1] ?? 0);
    const end = off + pageHeader + pageLength;
    // A page that claims to extend past the mode data would be read from
    // bytes that belong to nothing.
    if (end > total) {
      throw new ProtocolError(P, `page at byte ${off} PAGE LENGTH`, pageLength, `runs past MODE DATA LENGTH ${header.modeDataLength}`);
    }
    if (end > available) {
      truncated = true;
      break;
    }
    pages.push({
      pageCode: b0 & 0x3f,
      subpageCode: spf ? (d[off + 1] ?? 0) : 0,
      ps: bit(b0, 7),
      spf,
      bytes: d.slice(off, end),
    });
    off = end;
  }
  return { header, blockDescriptors, pages, truncated };
}

/** The first page with `pageCode` (sub-page 0), or undefined. */
export function findModePage(data: ModeSenseData, pageCode: number): ModePage | undefined {
  return data.pages.find((p) => p.pageCode === pageCode && p.subpageCode === 0);
}
