/**
 * INQUIRY data (storvsc-netvsc.md §6, §7.4; T10 SPC/SBC): the standard
 * INQUIRY data (OV's 104-byte template) and the VPD pages a Linux sd probe
 * reads — 0x00 supported pages, 0x80 unit serial number, 0x83 device
 * identification, 0xB0 block limits, 0xB1 block device characteristics,
 * 0xB2 logical block provisioning. Builders are host side, parsers guest
 * side; parsers throw `ProtocolError` for data no honest host sends and
 * accept data cut short by the allocation length (marked `truncated`).
 */
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import { bit, checkBigUint, checkRange, checkUint, copyBytes, flag, readAscii, viewOf, writeAscii } from "./bytes.js";
import type { FieldSpec } from "./vstor-packet.js";

// ---------------------------------------------------------------------------
// Peripheral byte and version

/** Linux `TYPE_DISK`: direct-access block device. */
export const TYPE_DISK = 0x00;
/** Linux `TYPE_NO_LUN`: qualifier 3 + type 0x1F, "no logical unit here". */
export const TYPE_NO_LUN = 0x7f;
/** Peripheral qualifier: LU connected. */
export const PERIPHERAL_QUALIFIER_CONNECTED = 0;
/** Peripheral qualifier: the target cannot support an LU here. */
export const PERIPHERAL_QUALIFIER_NOT_SUPPORTED = 3;
/** VERSION byte values (Linux `SCSI_SPC_2`, `SCSI_SPC_3`; 6 = SPC-4). */
export const SCSI_SPC_2 = 0x04;
export const SCSI_SPC_3 = 0x05;
export const SCSI_SPC_4 = 0x06;

// ---------------------------------------------------------------------------
// Standard INQUIRY data (§7.4)

/** `INQUIRY_DATA` as OV's template fills it: 104 bytes. */
export const STANDARD_INQUIRY_DATA_LAYOUT = {
  /** bits 7–5 PERIPHERAL QUALIFIER, bits 4–0 PERIPHERAL DEVICE TYPE. */
  peripheral: { offset: 0, size: 1 },
  /** bit7 RMB. */
  rmb: { offset: 1, size: 1 },
  version: { offset: 2, size: 1 },
  /** bit5 NORMACA, bit4 HISUP, bits 3–0 RESPONSE DATA FORMAT. */
  response_data_format: { offset: 3, size: 1 },
  additional_length: { offset: 4, size: 1 },
  /** bit7 SCCS, bit6 ACC, bits 5–4 TPGS, bit3 3PC, bit0 PROTECT. */
  flags5: { offset: 5, size: 1 },
  /** bit6 ENCSERV, bit4 MULTIP. */
  flags6: { offset: 6, size: 1 },
  /** bit1 CMDQUE. */
  flags7: { offset: 7, size: 1 },
  vendor_identification: { offset: 8, size: 8 },
  product_identification: { offset: 16, size: 16 },
  product_revision_level: { offset: 32, size: 4 },
  vendor_specific: { offset: 36, size: 20 },
  reserved56: { offset: 56, size: 2 },
  version_descriptors: { offset: 58, size: 16 },
  reserved74: { offset: 74, size: 30 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const STANDARD_INQUIRY_DATA_LENGTH = 104;
/** What Linux asks for first. */
export const STANDARD_INQUIRY_SHORT_LENGTH = 36;
/** Allocation lengths below this cannot carry the additional length (OV: INVALID_REQUEST). */
export const INQUIRY_MIN_ALLOCATION_LENGTH = 5;

export interface StandardInquiryData {
  readonly peripheralQualifier: number;
  readonly peripheralDeviceType: number;
  readonly removable: boolean;
  readonly version: number;
  readonly normaca: boolean;
  readonly hisup: boolean;
  readonly responseDataFormat: number;
  readonly sccs: boolean;
  readonly acc: boolean;
  readonly tpgs: number;
  readonly thirdPartyCopy: boolean;
  readonly protect: boolean;
  readonly encserv: boolean;
  readonly multip: boolean;
  readonly cmdQue: boolean;
  /** Trailing spaces/NULs dropped. */
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  /** Non-zero version descriptors, in order (at most 8). */
  readonly versionDescriptors: readonly number[];
}

export type StandardInquiryInput = Pick<StandardInquiryData, "vendor" | "product" | "revision"> &
  Partial<Omit<StandardInquiryData, "vendor" | "product" | "revision">>;

/**
 * Host: the 104-byte standard INQUIRY data. Defaults follow OV's template
 * for a present disk: direct access, SPC-3, response data format 2, CMDQUE.
 */
export function buildStandardInquiryData(input: StandardInquiryInput): Uint8Array {
  const q = input.peripheralQualifier ?? PERIPHERAL_QUALIFIER_CONNECTED;
  const t = input.peripheralDeviceType ?? TYPE_DISK;
  const rdf = input.responseDataFormat ?? 2;
  const tpgs = input.tpgs ?? 0;
  const version = input.version ?? SCSI_SPC_3;
  const descriptors = input.versionDescriptors ?? [];
  checkRange("peripheralQualifier", q, 0, 7);
  checkRange("peripheralDeviceType", t, 0, 0x1f);
  checkRange("responseDataFormat", rdf, 0, 0xf);
  checkRange("tpgs", tpgs, 0, 3);
  checkUint("version", version, 8);
  if (descriptors.length > 8) {
    throw new InvalidArgumentError("versionDescriptors.length", descriptors.length, "must be at most 8");
  }
  const out = new Uint8Array(STANDARD_INQUIRY_DATA_LENGTH);
  const v = viewOf(out);
  out[0] = (q << 5) | t;
  out[1] = flag(input.removable === true, 7);
  out[2] = version;
  out[3] = flag(input.normaca === true, 5) | flag(input.hisup === true, 4) | rdf;
  out[4] = STANDARD_INQUIRY_DATA_LENGTH - 5;
  out[5] =
    flag(input.sccs === true, 7) |
    flag(input.acc === true, 6) |
    (tpgs << 4) |
    flag(input.thirdPartyCopy === true, 3) |
    flag(input.protect === true, 0);
  out[6] = flag(input.encserv === true, 6) | flag(input.multip === true, 4);
  out[7] = flag(input.cmdQue ?? true, 1);
  writeAscii(out, 8, 8, input.vendor, "vendor");
  writeAscii(out, 16, 16, input.product, "product");
  writeAscii(out, 32, 4, input.revision, "revision");
  descriptors.forEach((d, i) => {
    checkUint(`versionDescriptors[${i}]`, d, 16);
    v.setUint16(58 + 2 * i, d, false);
  });
  return out;
}

/** Guest: parses standard INQUIRY data (at least 5 bytes; shorter than 104 is zero-extended). */
export function parseStandardInquiryData(bytes: Uint8Array): StandardInquiryData & {
  readonly additionalLength: number;
  /** The host returned fewer bytes than its additional length announces. */
  readonly truncated: boolean;
} {
  // Without byte 4 the guest cannot know how much data the LU has.
  if (bytes.length < INQUIRY_MIN_ALLOCATION_LENGTH) {
    throw new ProtocolError("SCSI INQUIRY", "data length", bytes.length, `is below ${INQUIRY_MIN_ALLOCATION_LENGTH}`);
  }
  const d = copyBytes(bytes, Math.max(bytes.length, STANDARD_INQUIRY_DATA_LENGTH));
  const v = viewOf(d);
  const at = (i: number): number => d[i] ?? 0;
  const additionalLength = at(4);
  const versionDescriptors: number[] = [];
  for (let i = 0; i < 8; i++) {
    const vd = v.getUint16(58 + 2 * i, false);
    if (vd !== 0) versionDescriptors.push(vd);
  }
  return {
    peripheralQualifier: at(0) >> 5,
    peripheralDeviceType: at(0) & 0x1f,
    removable: bit(at(1), 7),
    version: at(2),
    normaca: bit(at(3), 5),
    hisup: bit(at(3), 4),
    responseDataFormat: at(3) & 0xf,
    additionalLength,
    sccs: bit(at(5), 7),
    acc: bit(at(5), 6),
    tpgs: (at(5) >> 4) & 3,
    thirdPartyCopy: bit(at(5), 3),
    protect: bit(at(5), 0),
    encserv: bit(at(6), 6),
    multip: bit(at(6), 4),
    cmdQue: bit(at(7), 1),
    vendor: readAscii(d, 8, 8),
    product: readAscii(d, 16, 16),
    revision: readAscii(d, 32, 4),
    versionDescriptors,
    truncated: bytes.length < additionalLength + 5,
  };
}

// ---------------------------------------------------------------------------
// VPD pages

export const VPD_SUPPORTED_PAGES = 0x00;
export const VPD_UNIT_SERIAL_NUMBER = 0x80;
export const VPD_DEVICE_IDENTIFICATION = 0x83;
/** Third-party copy (ODX); offered by OV only when enabled. Not modelled. */
export const VPD_THIRD_PARTY_COPY = 0x8f;
export const VPD_BLOCK_LIMITS = 0xb0;
export const VPD_BLOCK_DEVICE_CHARACTERISTICS = 0xb1;
export const VPD_LOGICAL_BLOCK_PROVISIONING = 0xb2;
/** Microsoft paging extent page (OV). Not modelled. */
export const VPD_MSFT_PAGING_EXTENT = 0xce;
/** Microsoft virtual device properties page (OV). Not modelled. */
export const VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES = 0xcf;

export const VPD_PAGE_NAMES: ReadonlyMap<number, string> = new Map<number, string>([
  [VPD_SUPPORTED_PAGES, "Supported VPD Pages"],
  [VPD_UNIT_SERIAL_NUMBER, "Unit Serial Number"],
  [VPD_DEVICE_IDENTIFICATION, "Device Identification"],
  [VPD_THIRD_PARTY_COPY, "Third-party Copy"],
  [VPD_BLOCK_LIMITS, "Block Limits"],
  [VPD_BLOCK_DEVICE_CHARACTERISTICS, "Block Device Characteristics"],
  [VPD_LOGICAL_BLOCK_PROVISIONING, "Logical Block Provisioning"],
  [VPD_MSFT_PAGING_EXTENT, "MSFT Paging Extent"],
  [VPD_MSFT_VIRTUAL_DEVICE_PROPERTIES, "MSFT Virtual Device Properties"],
]);

/** The 4-byte header every VPD page starts with. */
export const VPD_PAGE_HEADER_LAYOUT = {
  peripheral: { offset: 0, size: 1 },
  page_code: { offset: 1, size: 1 },
  page_length: { offset: 2, size: 2 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const VPD_PAGE_HEADER_LENGTH = 4;

export interface VpdPageHeader {
  readonly peripheralQualifier: number;
  readonly peripheralDeviceType: number;
  readonly pageCode: number;
  /** PAGE LENGTH field: bytes after the header the page has. */
  readonly pageLength: number;
  /** Fewer bytes arrived than the page has (allocation length too small). */
  readonly truncated: boolean;
}

/** The peripheral byte of VPD pages; a present disk by default. */
export interface VpdPeripheral {
  readonly peripheralQualifier?: number;
  readonly peripheralDeviceType?: number;
}

function vpdPage(pageCode: number, body: Uint8Array, p: VpdPeripheral): Uint8Array {
  const q = p.peripheralQualifier ?? PERIPHERAL_QUALIFIER_CONNECTED;
  const t = p.peripheralDeviceType ?? TYPE_DISK;
  checkRange("peripheralQualifier", q, 0, 7);
  checkRange("peripheralDeviceType", t, 0, 0x1f);
  checkUint("page length", body.length, 16);
  const out = new Uint8Array(VPD_PAGE_HEADER_LENGTH + body.length);
  out[0] = (q << 5) | t;
  out[1] = pageCode;
  viewOf(out).setUint16(2, body.length, false);
  out.set(body, VPD_PAGE_HEADER_LENGTH);
  return out;
}

// 0x00 -----------------------------------------------------------------------

/** Host: Supported VPD Pages; the list must be ascending (SPC), which is checked. */
export function buildSupportedVpdPagesPage(pages: readonly number[], peripheral: VpdPeripheral = {}): Uint8Array {
  pages.forEach((p, i) => {
    checkUint(`pages[${i}]`, p, 8);
    if (i > 0 && p <= (pages[i - 1] ?? -1)) throw new InvalidArgumentError(`pages[${i}]`, p, "must be ascending");
  });
  return vpdPage(VPD_SUPPORTED_PAGES, Uint8Array.from(pages), peripheral);
}

// 0x80 -----------------------------------------------------------------------

export function buildUnitSerialNumberPage(serial: string, peripheral: VpdPeripheral = {}): Uint8Array {
  const body = new Uint8Array(serial.length);
  writeAscii(body, 0, serial.length, serial, "serial");
  return vpdPage(VPD_UNIT_SERIAL_NUMBER, body, peripheral);
}

// 0x83 -----------------------------------------------------------------------

export const CODE_SET_BINARY = 1;
export const CODE_SET_ASCII = 2;
export const CODE_SET_UTF8 = 3;
export const ASSOCIATION_LOGICAL_UNIT = 0;
export const ASSOCIATION_TARGET_PORT = 1;
export const ASSOCIATION_TARGET_DEVICE = 2;
export const DESIGNATOR_TYPE_VENDOR_SPECIFIC = 0;
export const DESIGNATOR_TYPE_T10_VENDOR_ID = 1;
export const DESIGNATOR_TYPE_EUI64 = 2;
export const DESIGNATOR_TYPE_NAA = 3;
export const DESIGNATOR_TYPE_RELATIVE_TARGET_PORT = 4;
export const DESIGNATOR_TYPE_TARGET_PORT_GROUP = 5;
export const DESIGNATOR_TYPE_LOGICAL_UNIT_GROUP = 6;
export const DESIGNATOR_TYPE_MD5_LOGICAL_UNIT = 7;
export const DESIGNATOR_TYPE_SCSI_NAME_STRING = 8;

/** Offsets within one designation descriptor (they start at page byte 4). */
export const DESIGNATION_DESCRIPTOR_LAYOUT = {
  /** bits 7–4 PROTOCOL IDENTIFIER, bits 3–0 CODE SET. */
  protocol_code_set: { offset: 0, size: 1 },
  /** bit7 PIV, bits 5–4 ASSOCIATION, bits 3–0 DESIGNATOR TYPE. */
  piv_association_type: { offset: 1, size: 1 },
  reserved: { offset: 2, size: 1 },
  designator_length: { offset: 3, size: 1 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const DESIGNATION_DESCRIPTOR_HEADER_LENGTH = 4;

export interface DesignationDescriptor {
  readonly protocolIdentifier: number;
  readonly codeSet: number;
  readonly piv: boolean;
  readonly association: number;
  readonly designatorType: number;
  readonly designator: Uint8Array;
}

export function buildDeviceIdentificationPage(descriptors: readonly DesignationDescriptor[], peripheral: VpdPeripheral = {}): Uint8Array {
  const parts: Uint8Array[] = descriptors.map((d, i) => {
    checkRange(`descriptors[${i}].protocolIdentifier`, d.protocolIdentifier, 0, 0xf);
    checkRange(`descriptors[${i}].codeSet`, d.codeSet, 0, 0xf);
    checkRange(`descriptors[${i}].association`, d.association, 0, 3);
    checkRange(`descriptors[${i}].designatorType`, d.designatorType, 0, 0xf);
    checkUint(`descriptors[${i}].designator.length`, d.designator.length, 8);
    const out = new Uint8Array(DESIGNATION_DESCRIPTOR_HEADER_LENGTH + d.designator.length);
    out[0] = (d.protocolIdentifier << 4) | d.codeSet;
    out[1] = flag(d.piv, 7) | (d.association << 4) | d.designatorType;
    out[3] = d.designator.length;
    out.set(d.designator, DESIGNATION_DESCRIPTOR_HEADER_LENGTH);
    return out;
  });
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    body.set(p, off);
    off += p.length;
  }
  return vpdPage(VPD_DEVICE_IDENTIFICATION, body, peripheral);
}

// 0xB0 -----------------------------------------------------------------------

/** Block Limits page, offsets within the page. PAGE LENGTH 0x3C. */
export const BLOCK_LIMITS_VPD_LAYOUT = {
  /** bit0 WSNZ. */
  wsnz: { offset: 4, size: 1 },
  maximum_compare_and_write_length: { offset: 5, size: 1 },
  optimal_transfer_length_granularity: { offset: 6, size: 2 },
  maximum_transfer_length: { offset: 8, size: 4 },
  optimal_transfer_length: { offset: 12, size: 4 },
  maximum_prefetch_length: { offset: 16, size: 4 },
  maximum_unmap_lba_count: { offset: 20, size: 4 },
  maximum_unmap_block_descriptor_count: { offset: 24, size: 4 },
  optimal_unmap_granularity: { offset: 28, size: 4 },
  /** bit7 of byte 32 UGAVALID, remaining 31 bits UNMAP GRANULARITY ALIGNMENT. */
  unmap_granularity_alignment: { offset: 32, size: 4 },
  maximum_write_same_length: { offset: 36, size: 8 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const BLOCK_LIMITS_VPD_PAGE_LENGTH = 0x3c;

export interface BlockLimits {
  readonly wsnz: boolean;
  readonly maximumCompareAndWriteLength: number;
  readonly optimalTransferLengthGranularity: number;
  readonly maximumTransferLength: number;
  readonly optimalTransferLength: number;
  readonly maximumPrefetchLength: number;
  readonly maximumUnmapLbaCount: number;
  readonly maximumUnmapBlockDescriptorCount: number;
  readonly optimalUnmapGranularity: number;
  readonly ugavalid: boolean;
  readonly unmapGranularityAlignment: number;
  readonly maximumWriteSameLength: bigint;
}

export function buildBlockLimitsPage(limits: Partial<BlockLimits>, peripheral: VpdPeripheral = {}): Uint8Array {
  const body = new Uint8Array(BLOCK_LIMITS_VPD_PAGE_LENGTH);
  const v = viewOf(body);
  const u32 = (name: keyof BlockLimits, value: number | undefined, off: number): void => {
    const n = value ?? 0;
    checkUint(name, n, 32);
    v.setUint32(off - 4, n, false);
  };
  body[0] = flag(limits.wsnz === true, 0);
  const mcaw = limits.maximumCompareAndWriteLength ?? 0;
  checkUint("maximumCompareAndWriteLength", mcaw, 8);
  body[1] = mcaw;
  const otlg = limits.optimalTransferLengthGranularity ?? 0;
  checkUint("optimalTransferLengthGranularity", otlg, 16);
  v.setUint16(2, otlg, false);
  u32("maximumTransferLength", limits.maximumTransferLength, 8);
  u32("optimalTransferLength", limits.optimalTransferLength, 12);
  u32("maximumPrefetchLength", limits.maximumPrefetchLength, 16);
  u32("maximumUnmapLbaCount", limits.maximumUnmapLbaCount, 20);
  u32("maximumUnmapBlockDescriptorCount", limits.maximumUnmapBlockDescriptorCount, 24);
  u32("optimalUnmapGranularity", limits.optimalUnmapGranularity, 28);
  const uga = limits.unmapGranularityAlignment ?? 0;
  checkRange("unmapGranularityAlignment", uga, 0, 0x7fffffff);
  v.setUint32(28, ((limits.ugavalid === true ? 0x80000000 : 0) | uga) >>> 0, false);
  const mwsl = limits.maximumWriteSameLength ?? 0n;
  checkBigUint("maximumWriteSameLength", mwsl, 64);
  v.setBigUint64(32, mwsl, false);
  return vpdPage(VPD_BLOCK_LIMITS, body, peripheral);
}

function readBlockLimits(page: Uint8Array): BlockLimits {
  const v = viewOf(page);
  const uga = v.getUint32(32, false);
  return {
    wsnz: bit(page[4] ?? 0, 0),
    maximumCompareAndWriteLength: page[5] ?? 0,
    optimalTransferLengthGranularity: v.getUint16(6, false),
    maximumTransferLength: v.getUint32(8, false),
    optimalTransferLength: v.getUint32(12, false),
    maximumPrefetchLength: v.getUint32(16, false),
    maximumUnmapLbaCount: v.getUint32(20, false),
    maximumUnmapBlockDescriptorCount: v.getUint32(24, false),
    optimalUnmapGranularity: v.getUint32(28, false),
    ugavalid: uga >= 0x80000000,
    unmapGranularityAlignment: uga & 0x7fffffff,
    maximumWriteSameLength: v.getBigUint64(36, false),
  };
}

// 0xB1 -----------------------------------------------------------------------

/** Block Device Characteristics page, offsets within the page. PAGE LENGTH 0x3C. */
export const BLOCK_DEVICE_CHARACTERISTICS_VPD_LAYOUT = {
  medium_rotation_rate: { offset: 4, size: 2 },
  product_type: { offset: 6, size: 1 },
  /** bits 7–6 WABEREQ, 5–4 WACEREQ, 3–0 NOMINAL FORM FACTOR. */
  form_factor: { offset: 7, size: 1 },
  /** bit1 FUAB, bit0 VBULS. */
  flags: { offset: 8, size: 1 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const BLOCK_DEVICE_CHARACTERISTICS_VPD_PAGE_LENGTH = 0x3c;
/** MEDIUM ROTATION RATE of a non-rotating medium (SSD); Linux then clears `rotational`. */
export const MEDIUM_ROTATION_RATE_NON_ROTATING = 0x0001;

export interface BlockDeviceCharacteristics {
  readonly mediumRotationRate: number;
  readonly productType: number;
  readonly wabereq: number;
  readonly wacereq: number;
  readonly nominalFormFactor: number;
  readonly fuab: boolean;
  readonly vbuls: boolean;
}

export function buildBlockDeviceCharacteristicsPage(c: Partial<BlockDeviceCharacteristics>, peripheral: VpdPeripheral = {}): Uint8Array {
  const body = new Uint8Array(BLOCK_DEVICE_CHARACTERISTICS_VPD_PAGE_LENGTH);
  const rate = c.mediumRotationRate ?? 0;
  const productType = c.productType ?? 0;
  const wab = c.wabereq ?? 0;
  const wac = c.wacereq ?? 0;
  const nff = c.nominalFormFactor ?? 0;
  checkUint("mediumRotationRate", rate, 16);
  checkUint("productType", productType, 8);
  checkRange("wabereq", wab, 0, 3);
  checkRange("wacereq", wac, 0, 3);
  checkRange("nominalFormFactor", nff, 0, 0xf);
  viewOf(body).setUint16(0, rate, false);
  body[2] = productType;
  body[3] = (wab << 6) | (wac << 4) | nff;
  body[4] = flag(c.fuab === true, 1) | flag(c.vbuls === true, 0);
  return vpdPage(VPD_BLOCK_DEVICE_CHARACTERISTICS, body, peripheral);
}

function readBlockDeviceCharacteristics(page: Uint8Array): BlockDeviceCharacteristics {
  const b7 = page[7] ?? 0;
  return {
    mediumRotationRate: viewOf(page).getUint16(4, false),
    productType: page[6] ?? 0,
    wabereq: b7 >> 6,
    wacereq: (b7 >> 4) & 3,
    nominalFormFactor: b7 & 0xf,
    fuab: bit(page[8] ?? 0, 1),
    vbuls: bit(page[8] ?? 0, 0),
  };
}

// 0xB2 -----------------------------------------------------------------------

/** Logical Block Provisioning page, offsets within the page. PAGE LENGTH 4. */
export const LOGICAL_BLOCK_PROVISIONING_VPD_LAYOUT = {
  threshold_exponent: { offset: 4, size: 1 },
  /** bit7 LBPU, bit6 LBPWS, bit5 LBPWS10, bits 4–2 LBPRZ, bit1 ANC_SUP, bit0 DP. */
  flags: { offset: 5, size: 1 },
  /** bits 7–3 MINIMUM PERCENTAGE, bits 2–0 PROVISIONING TYPE. */
  provisioning_type: { offset: 6, size: 1 },
  threshold_percentage: { offset: 7, size: 1 },
} as const satisfies Readonly<Record<string, FieldSpec>>;
export const LOGICAL_BLOCK_PROVISIONING_VPD_PAGE_LENGTH = 4;
export const PROVISIONING_TYPE_FULL = 0;
export const PROVISIONING_TYPE_RESOURCE = 1;
export const PROVISIONING_TYPE_THIN = 2;

export interface LogicalBlockProvisioning {
  readonly thresholdExponent: number;
  /** UNMAP supported. */
  readonly lbpu: boolean;
  /** WRITE SAME(16) with UNMAP supported. */
  readonly lbpws: boolean;
  /** WRITE SAME(10) with UNMAP supported. */
  readonly lbpws10: boolean;
  /** 3 bits (SBC-4); 1 = unmapped blocks read as zero. */
  readonly lbprz: number;
  readonly ancSup: boolean;
  /** A provisioning group descriptor follows (not modelled). */
  readonly dp: boolean;
  readonly minimumPercentage: number;
  readonly provisioningType: number;
  readonly thresholdPercentage: number;
}

export function buildLogicalBlockProvisioningPage(p: Partial<LogicalBlockProvisioning>, peripheral: VpdPeripheral = {}): Uint8Array {
  const te = p.thresholdExponent ?? 0;
  const lbprz = p.lbprz ?? 0;
  const minPct = p.minimumPercentage ?? 0;
  const type = p.provisioningType ?? 0;
  const thrPct = p.thresholdPercentage ?? 0;
  checkUint("thresholdExponent", te, 8);
  checkRange("lbprz", lbprz, 0, 7);
  checkRange("minimumPercentage", minPct, 0, 0x1f);
  checkRange("provisioningType", type, 0, 7);
  checkUint("thresholdPercentage", thrPct, 8);
  const body = Uint8Array.of(
    te,
    flag(p.lbpu === true, 7) |
      flag(p.lbpws === true, 6) |
      flag(p.lbpws10 === true, 5) |
      (lbprz << 2) |
      flag(p.ancSup === true, 1) |
      flag(p.dp === true, 0),
    (minPct << 3) | type,
    thrPct,
  );
  return vpdPage(VPD_LOGICAL_BLOCK_PROVISIONING, body, peripheral);
}

function readLogicalBlockProvisioning(page: Uint8Array): LogicalBlockProvisioning {
  const b5 = page[5] ?? 0;
  const b6 = page[6] ?? 0;
  return {
    thresholdExponent: page[4] ?? 0,
    lbpu: bit(b5, 7),
    lbpws: bit(b5, 6),
    lbpws10: bit(b5, 5),
    lbprz: (b5 >> 2) & 7,
    ancSup: bit(b5, 1),
    dp: bit(b5, 0),
    minimumPercentage: b6 >> 3,
    provisioningType: b6 & 7,
    thresholdPercentage: page[7] ?? 0,
  };
}

// Parsing --------------------------------------------------------------------

export type VpdPage =
  | { readonly kind: "supported-pages"; readonly header: VpdPageHeader; readonly pages: readonly number[] }
  | { readonly kind: "unit-serial-number"; readonly header: VpdPageHeader; readonly serial: string }
  | { readonly kind: "device-identification"; readonly header: VpdPageHeader; readonly descriptors: readonly DesignationDescriptor[] }
  | { readonly kind: "block-limits"; readonly header: VpdPageHeader; readonly limits: BlockLimits }
  | { readonly kind: "block-device-characteristics"; readonly header: VpdPageHeader; readonly characteristics: BlockDeviceCharacteristics }
  | { readonly kind: "logical-block-provisioning"; readonly header: VpdPageHeader; readonly provisioning: LogicalBlockProvisioning }
  | { readonly kind: "other"; readonly header: VpdPageHeader; readonly data: Uint8Array };

/**
 * Guest: parses a VPD page (the data-in bytes, possibly cut short by the
 * allocation length). When `expectedPageCode` is given, a page with another
 * code is refused: a host answering a different page than asked would make
 * the guest misread every field.
 */
export function parseVpdPage(bytes: Uint8Array, expectedPageCode?: number): VpdPage {
  const P = "SCSI INQUIRY VPD";
  if (bytes.length < VPD_PAGE_HEADER_LENGTH) {
    throw new ProtocolError(P, "data length", bytes.length, `is below the ${VPD_PAGE_HEADER_LENGTH}-byte page header`);
  }
  const raw = copyBytes(bytes);
  const pageCode = raw[1] ?? 0;
  if (expectedPageCode !== undefined && pageCode !== expectedPageCode) {
    throw new ProtocolError(P, "PAGE CODE", pageCode, `is not the requested page 0x${expectedPageCode.toString(16)}`);
  }
  const pageLength = viewOf(raw).getUint16(2, false);
  const available = Math.min(pageLength, raw.length - VPD_PAGE_HEADER_LENGTH);
  const header: VpdPageHeader = {
    peripheralQualifier: (raw[0] ?? 0) >> 5,
    peripheralDeviceType: (raw[0] ?? 0) & 0x1f,
    pageCode,
    pageLength,
    truncated: available < pageLength,
  };
  const body = raw.subarray(VPD_PAGE_HEADER_LENGTH, VPD_PAGE_HEADER_LENGTH + available);
  // Fixed-layout pages are zero-extended so a short page reads as "not reported".
  const fixed = (length: number): Uint8Array => {
    const page = new Uint8Array(VPD_PAGE_HEADER_LENGTH + Math.max(length, available));
    page.set(raw.subarray(0, VPD_PAGE_HEADER_LENGTH + available));
    return page;
  };
  switch (pageCode) {
    case VPD_SUPPORTED_PAGES:
      return { kind: "supported-pages", header, pages: Array.from(body) };
    case VPD_UNIT_SERIAL_NUMBER:
      return { kind: "unit-serial-number", header, serial: readAscii(body, 0, body.length) };
    case VPD_DEVICE_IDENTIFICATION:
      return { kind: "device-identification", header, descriptors: readDesignationDescriptors(body, header.truncated) };
    case VPD_BLOCK_LIMITS:
      return { kind: "block-limits", header, limits: readBlockLimits(fixed(BLOCK_LIMITS_VPD_PAGE_LENGTH)) };
    case VPD_BLOCK_DEVICE_CHARACTERISTICS:
      return {
        kind: "block-device-characteristics",
        header,
        characteristics: readBlockDeviceCharacteristics(fixed(BLOCK_DEVICE_CHARACTERISTICS_VPD_PAGE_LENGTH)),
      };
    case VPD_LOGICAL_BLOCK_PROVISIONING:
      return {
        kind: "logical-block-provisioning",
        header,
        provisioning: readLogicalBlockProvisioning(fixed(LOGICAL_BLOCK_PROVISIONING_VPD_PAGE_LENGTH)),
      };
    default:
      return { kind: "other", header, data: body.slice() };
  }
}

function readDesignationDescriptors(body: Uint8Array, truncated: boolean): DesignationDescriptor[] {
  const out: DesignationDescriptor[] = [];
  let off = 0;
  while (off < body.length) {
    const headerEnd = off + DESIGNATION_DESCRIPTOR_HEADER_LENGTH;
    const len = body[off + 3] ?? 0;
    if (headerEnd > body.length || headerEnd + len > body.length) {
      // Cut by the allocation length: keep the complete descriptors.
      if (truncated) break;
      // Within a complete page, a descriptor running past PAGE LENGTH
      // would make the guest read the next descriptor (or nothing) as its
      // designator.
      throw new ProtocolError(
        "SCSI INQUIRY VPD 0x83",
        `descriptor at byte ${off + VPD_PAGE_HEADER_LENGTH} DESIGNATOR LENGTH`,
        len,
        `runs past the ${body.length}-byte page`,
      );
    }
    const b0 = body[off] ?? 0;
    const b1 = body[off + 1] ?? 0;
    out.push({
      protocolIdentifier: b0 >> 4,
      codeSet: b0 & 0xf,
      piv: bit(b1, 7),
      association: (b1 >> 4) & 3,
      designatorType: b1 & 0xf,
      designator: body.slice(headerEnd, headerEnd + len),
    });
    off = headerEnd + len;
  }
  return out;
}
