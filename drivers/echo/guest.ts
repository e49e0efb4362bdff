/**
 * The echo device's guest driver (a VSC). Template for a new driver:
 * 1. declare what you bind (name, class GUIDs) in the plugin manifest;
 * 2. take the device, its channel and the VM by token in the constructor;
 * 3. `probe`: open the channel (ring sizes, your packet handler) and run
 *    your protocol's handshake, if it has one;
 * 4. offer an API to the rest of the guest (`echo` here);
 * 5. `remove`: close the channel unless the host already took it away.
 */
import { inject, injectable } from "tsyringe";
import {
  ChannelRescindedError,
  CHANNEL_OPENED_STATE,
  HV_DEVICE,
  InvalidArgumentError,
  ProtocolError,
  VMBUS_CHANNEL,
  VM_CONTEXT,
  type GuestChannel,
  type VmContext,
  type VmbusDevice,
  type VmbusDriver,
} from "../../core/index.js";
import { ECHO_MAX_DATA, ECHO_OP_REQUEST, ECHO_OP_RESPONSE, ECHO_STATUS_SUCCESS, decodeEcho, encodeEcho } from "./protocol.js";

/** Ring sizes of the echo channel: 16 KiB each way (header page included). */
export const ECHO_RING_BYTES = 16 * 1024;

@injectable()
export class EchoDriver implements VmbusDriver {
  /** Requests answered. */
  completed = 0;

  constructor(
    @inject(HV_DEVICE) readonly device: VmbusDevice,
    @inject(VMBUS_CHANNEL) readonly channel: GuestChannel,
    @inject(VM_CONTEXT) readonly vm: VmContext,
  ) {}

  async probe(): Promise<void> {
    await this.channel.open({ sendRingBytes: ECHO_RING_BYTES, recvRingBytes: ECHO_RING_BYTES });
  }

  async remove(): Promise<void> {
    if (this.channel.state === CHANNEL_OPENED_STATE && !this.channel.rescinded) await this.channel.close();
  }

  /** Sends `data` to the host and resolves with what came back. */
  async echo(data: Uint8Array): Promise<Uint8Array> {
    if (data.length > ECHO_MAX_DATA) throw new InvalidArgumentError("echo data length", data.length, `must be at most ${ECHO_MAX_DATA}`);
    if (this.channel.rescinded) throw new ChannelRescindedError(this.channel.name);
    const c = await this.channel.sendRequest(encodeEcho({ op: ECHO_OP_REQUEST, status: 0, data }));
    const reply = decodeEcho(c.data, "response");
    if (reply.op !== ECHO_OP_RESPONSE) throw new ProtocolError("echo response", "operation", reply.op, `is not ECHO_OP_RESPONSE (${ECHO_OP_RESPONSE})`);
    if (reply.status !== ECHO_STATUS_SUCCESS) throw new ProtocolError("echo response", "status", reply.status, "is not success");
    this.completed++;
    return reply.data;
  }
}
