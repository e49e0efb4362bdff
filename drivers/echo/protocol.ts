/**
 * The echo protocol: the smallest useful device protocol, and the template
 * for writing a new one. Every message is an inband VMBus packet whose
 * payload starts with this header (little-endian):
 *
 * | offset | size | field                                   |
 * |--------|------|-----------------------------------------|
 * | 0      | u32  | operation (ECHO_OP_REQUEST / _RESPONSE) |
 * | 4      | u32  | status (0 = success; responses only)    |
 * | 8      | u32  | length of the data that follows         |
 * | 12     | u32  | reserved, 0                             |
 * | 16     | …    | data                                    |
 *
 * The guest sends ECHO_OP_REQUEST with COMPLETION_REQUESTED and a request
 * id; the host answers with a VM_PKT_COMP carrying the same id and an
 * ECHO_OP_RESPONSE holding the same data.
 */
import { Guid, ProtocolError } from "../../core/index.js";

/** The echo device's class GUID (made up for this sample; not a Hyper-V class). */
export const ECHO_CLASS_ID = Guid.parse("3c7e2a5c-0f3e-4c3a-9d7b-6e6f686f6563");

export const ECHO_OP_REQUEST = 1;
export const ECHO_OP_RESPONSE = 2;
export const ECHO_HEADER_SIZE = 16;
/** Largest data an echo message carries (keeps every packet under the 4 KiB default max packet size). */
export const ECHO_MAX_DATA = 4096 - 16 - ECHO_HEADER_SIZE - 64;
export const ECHO_STATUS_SUCCESS = 0;
/** STATUS_INVALID_PARAMETER. */
export const ECHO_STATUS_INVALID = 0xc000000d;

export interface EchoMessage {
  readonly op: number;
  readonly status: number;
  readonly data: Uint8Array;
}

export function encodeEcho(msg: EchoMessage): Uint8Array {
  const out = new Uint8Array(ECHO_HEADER_SIZE + msg.data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, msg.op, true);
  v.setUint32(4, msg.status >>> 0, true);
  v.setUint32(8, msg.data.length, true);
  out.set(msg.data, ECHO_HEADER_SIZE);
  return out;
}

/**
 * Decodes a copy of an echo message. The peer is untrusted: a length that
 * claims more bytes than the packet holds, or more than the protocol
 * allows, is a ProtocolError naming the field.
 */
export function decodeEcho(bytes: Uint8Array, who: string): EchoMessage {
  if (bytes.length < ECHO_HEADER_SIZE) {
    throw new ProtocolError(`echo ${who}`, "payload length", bytes.length, `is below the ${ECHO_HEADER_SIZE}-byte header`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = v.getUint32(0, true);
  if (op !== ECHO_OP_REQUEST && op !== ECHO_OP_RESPONSE) {
    throw new ProtocolError(`echo ${who}`, "operation", op, `is neither ECHO_OP_REQUEST (${ECHO_OP_REQUEST}) nor ECHO_OP_RESPONSE (${ECHO_OP_RESPONSE})`);
  }
  const len = v.getUint32(8, true);
  if (len > ECHO_MAX_DATA || ECHO_HEADER_SIZE + len > bytes.length) {
    throw new ProtocolError(`echo ${who}`, "length", len, `exceeds the ${Math.min(ECHO_MAX_DATA, bytes.length - ECHO_HEADER_SIZE)} data bytes present`);
  }
  return { op, status: v.getUint32(4, true), data: bytes.slice(ECHO_HEADER_SIZE, ECHO_HEADER_SIZE + len) };
}
