/**
 * The echo device's host side (a VSP). Template for a new host device:
 * 1. declare the offer (class GUID, subchannels, monitor) in the manifest;
 * 2. in `open`, install a packet handler on the channel;
 * 3. treat every packet as hostile: copy, validate, and answer a bad
 *    request with an error status (fail that request) — or, when the
 *    stream itself is broken, `channel.fail(err)` (close that channel);
 * 4. answer through the channel's endpoint: the completion is batched with
 *    the others of this drain and the guest is signalled at most once.
 */
import { inject, injectable } from "tsyringe";
import {
  HOST_DEVICE_CONFIG,
  RingWriter,
  VM_PKT_DATA_INBAND,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VmbusSimError,
  type HostChannel,
  type HostChannelHandler,
  type IncomingPacket,
} from "../../core/index.js";
import { ECHO_OP_REQUEST, ECHO_OP_RESPONSE, ECHO_STATUS_INVALID, ECHO_STATUS_SUCCESS, decodeEcho, encodeEcho } from "./protocol.js";

export interface EchoHostConfig {
  /** Transform applied to the data before it is sent back (default: none). */
  readonly transform?: "none" | "reverse";
}

@injectable()
export class EchoHostDevice implements HostChannelHandler {
  /** Requests answered, and requests refused as malformed. */
  answered = 0;
  refused = 0;
  readonly opened: HostChannel[] = [];
  private readonly transform: "none" | "reverse";

  constructor(@inject(HOST_DEVICE_CONFIG) config: unknown) {
    this.transform = (config as EchoHostConfig | undefined)?.transform ?? "none";
  }

  open(channel: HostChannel): void {
    this.opened.push(channel);
    channel.onPacket((p, ch) => this.onPacket(p, ch));
  }

  close(channel: HostChannel): void {
    const i = this.opened.indexOf(channel);
    if (i >= 0) this.opened.splice(i, 1);
  }

  private onPacket(p: IncomingPacket, ch: HostChannel): void {
    if (p.type !== VM_PKT_DATA_INBAND || (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) === 0) {
      // Nothing to answer; the echo protocol has no other packets.
      this.refused++;
      return;
    }
    let reply: Uint8Array;
    try {
      const req = decodeEcho(p.data(), "request");
      if (req.op !== ECHO_OP_REQUEST) throw new Error("not a request");
      const data = this.transform === "reverse" ? req.data.reverse() : req.data;
      reply = encodeEcho({ op: ECHO_OP_RESPONSE, status: ECHO_STATUS_SUCCESS, data });
      this.answered++;
    } catch (e) {
      if (!(e instanceof VmbusSimError) && !(e instanceof Error && e.message === "not a request")) throw e;
      // Fail this request only: the guest gets a completion with an error status.
      reply = encodeEcho({ op: ECHO_OP_RESPONSE, status: ECHO_STATUS_INVALID, data: new Uint8Array(0) });
      this.refused++;
    }
    const id = p.transId;
    const ep = ch.endpoint;
    if (ep === null) return;
    if (!ep.tryWrite((w) => w.writeCompletion(id, reply))) {
      // Ring full: queue it; it goes out when the guest frees room.
      void ep.send((w) => w.writeCompletion(id, reply), RingWriter.packetTotal(0, reply.length)).catch(() => undefined);
    }
  }
}
