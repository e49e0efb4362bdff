/**
 * The data path's RNDIS PACKET codec (storvsc-netvsc.md §11.1, §11.2,
 * §13.2, §13.3): writes a PACKET straight into a destination buffer and
 * checks one in place, without building message objects.
 *
 * These are not a second definition of the rules. `writeRndisPacketInto`
 * produces exactly the bytes `encodeRndisMessageInto` does for
 * `{kind: "packet", data, ppis: [hashValuePpi(h)] or []}` (optionally with a
 * larger msg_len), and `scanRndisPacket` accepts exactly the PACKET messages
 * `decodeRndisMessage` accepts. Anything it does not accept — another message
 * type, or a PACKET that breaks a rule — is left to the full decoder, so the
 * error a peer sees (its type, field and text) comes from one place only.
 */
import { RNDIS_PACKET_BODY_SIZE, RNDIS_PACKET_MESSAGE_SIZE } from "./rndis-message.js";
import { IEEE_8021Q_INFO, NBL_HASH_VALUE, RNDIS_HEADER_SIZE, RNDIS_MSG_PACKET, RNDIS_PPI_INTERNAL_BIT } from "./rndis-constants.js";
import { NDIS_U32_PPI_SIZE, RNDIS_PER_PACKET_INFO_SIZE } from "./rndis-ppi.js";

/** Bytes of a PACKET carrying `frameBytes`, with the 16-byte NBL_HASH_VALUE record when `withHash`. */
export function rndisPacketLength(frameBytes: number, withHash: boolean): number {
  return RNDIS_PACKET_MESSAGE_SIZE + (withHash ? NDIS_U32_PPI_SIZE : 0) + frameBytes;
}

/**
 * Writes a PACKET {header, rndis_packet, [NBL_HASH_VALUE], frame} at `at`
 * of `u8` (`view` is a DataView over the same bytes, `view.byteOffset ===
 * u8.byteOffset`), msg_len `msgLen` (≥ the natural length; the tail is
 * zeroed). Data offset right after the PPIs, PPI offset 36, as Linux and
 * the object encoder. The caller guarantees the room and that `hash` is a
 * u32; nothing is validated here.
 */
export function writeRndisPacketInto(
  view: DataView,
  u8: Uint8Array,
  at: number,
  msgLen: number,
  frame: Uint8Array,
  frameOffset: number,
  frameLength: number,
  withHash: boolean,
  hash: number,
): void {
  const ppiLen = withHash ? NDIS_U32_PPI_SIZE : 0;
  view.setUint32(at, RNDIS_MSG_PACKET, true);
  view.setUint32(at + 4, msgLen, true);
  view.setUint32(at + 8, RNDIS_PACKET_BODY_SIZE + ppiLen, true);
  view.setUint32(at + 12, frameLength, true);
  view.setUint32(at + 16, 0, true);
  view.setUint32(at + 20, 0, true);
  view.setUint32(at + 24, 0, true);
  view.setUint32(at + 28, RNDIS_PACKET_BODY_SIZE, true);
  view.setUint32(at + 32, ppiLen, true);
  view.setUint32(at + 36, 0, true);
  view.setUint32(at + 40, 0, true);
  let p = at + RNDIS_PACKET_MESSAGE_SIZE;
  if (withHash) {
    view.setUint32(p, NDIS_U32_PPI_SIZE, true);
    view.setUint32(p + 4, NBL_HASH_VALUE, true);
    view.setUint32(p + 8, RNDIS_PER_PACKET_INFO_SIZE, true);
    view.setUint32(p + 12, hash, true);
    p += NDIS_U32_PPI_SIZE;
  }
  if (frameLength > 0) u8.set(frameOffset === 0 && frameLength === frame.length ? frame : frame.subarray(frameOffset, frameOffset + frameLength), p);
  const end = at + msgLen;
  // Linux's padding to the packet alignment is a few bytes: a loop beats a builtin call.
  if (end - (p + frameLength) <= 16) for (let i = p + frameLength; i < end; i++) u8[i] = 0;
  else u8.fill(0, p + frameLength, end);
}

/** What `scanRndisPacket` found in a PACKET it accepted. Reused by its owner; valid until the next scan. */
export class RndisPacketScan {
  /** msg_len. */
  msgLen = 0;
  /** Absolute offset (in the scanned buffer) and length of the frame. */
  dataStart = 0;
  dataLength = 0;
  oobDataLength = 0;
  numOobDataElements = 0;
  vcHandle = 0;
  /** An IEEE_8021Q_INFO record (not internal) is in the chain: the host turns it into a tag. */
  hasVlanPpi = false;
}

/**
 * Checks the message at `at` of `view` (at most `avail` bytes are its own)
 * the way `decodeRndisMessage` does and, when it is a PACKET that decoder
 * would accept, fills `out` and returns true. Returns false for every other
 * message — valid or not — so that the caller runs the full decoder on it.
 * `view` must be the reader's private copy: each field is read once.
 */
export function scanRndisPacket(view: DataView, at: number, avail: number, out: RndisPacketScan): boolean {
  if (avail < RNDIS_HEADER_SIZE) return false;
  const msgType = view.getUint32(at, true);
  const msgLen = view.getUint32(at + 4, true);
  if (msgType !== RNDIS_MSG_PACKET || msgLen < RNDIS_PACKET_MESSAGE_SIZE || msgLen > avail) return false;
  const room = msgLen - RNDIS_HEADER_SIZE;
  const dataOffset = view.getUint32(at + 8, true);
  const dataLength = view.getUint32(at + 12, true);
  const oobDataOffset = view.getUint32(at + 16, true);
  const oobDataLength = view.getUint32(at + 20, true);
  const ppiOffset = view.getUint32(at + 28, true);
  const ppiLength = view.getUint32(at + 32, true);
  if (!inMessage(dataOffset, dataLength, room)) return false;
  if (oobDataLength > 0 && !inMessage(oobDataOffset, oobDataLength, room)) return false;
  let vlan = false;
  if (ppiLength > 0) {
    if (!inMessage(ppiOffset, ppiLength, room)) return false;
    if (dataLength > 0 && ppiOffset < dataOffset + dataLength && dataOffset < ppiOffset + ppiLength) return false;
    const chain = at + RNDIS_HEADER_SIZE + ppiOffset;
    let p = 0;
    while (p < ppiLength) {
      const left = ppiLength - p;
      if (left < RNDIS_PER_PACKET_INFO_SIZE) return false;
      const size = view.getUint32(chain + p, true);
      const typeWord = view.getUint32(chain + p + 4, true);
      const recordOffset = view.getUint32(chain + p + 8, true);
      if (size > left || size < RNDIS_PER_PACKET_INFO_SIZE) return false;
      if (recordOffset < RNDIS_PER_PACKET_INFO_SIZE || recordOffset >= size) return false;
      if (typeWord === IEEE_8021Q_INFO && (typeWord & RNDIS_PPI_INTERNAL_BIT) === 0) vlan = true;
      p += size;
    }
  }
  out.msgLen = msgLen;
  out.dataStart = at + RNDIS_HEADER_SIZE + dataOffset;
  out.dataLength = dataLength;
  out.oobDataLength = oobDataLength;
  out.numOobDataElements = view.getUint32(at + 24, true);
  out.vcHandle = view.getUint32(at + 36, true);
  out.hasVlanPpi = vlan;
  return true;
}

/** The decoder's `bufferRange` rule for a PACKET: after the 36-byte body, inside msg_len − 8. */
function inMessage(offset: number, length: number, room: number): boolean {
  return offset >= RNDIS_PACKET_BODY_SIZE && offset <= room && length <= room - offset;
}
