/**
 * One side of an open channel: its outgoing ring's writer and its incoming
 * ring's reader, with the protocol both sides follow (vmbus-core.md §3).
 * The guest channel and the host channel each own one, over the same two
 * rings in opposite directions.
 *
 * - Sending: a packet is written and committed; the peer is signalled only
 *   when the commit says so (empty → non-empty, peer not masked). When the
 *   ring is full the sender does not fail: it announces pending_send_sz and
 *   waits for the peer's signal, and later packets queue behind it so one
 *   channel's packets never overtake each other.
 * - Receiving: interrupts masked while draining, drain completely, unmask,
 *   look once more (data that arrived while masked got no signal); after
 *   the reads, signal the peer if it was blocked and now has room.
 */
import { VmbusSimError } from "../errors.js";
import type { RingBuffer } from "../ring/ring-buffer.js";
import { type IncomingPacket, RingReader } from "../ring/ring-reader.js";
import { RingWriter } from "../ring/ring-writer.js";

/** Writes one packet; returns false if the ring is full (see RingWriter.write*). */
export type PacketWrite = (w: RingWriter) => boolean;

/** Why a waiting sender gave up. */
export class ChannelClosedError extends VmbusSimError {
  readonly code = "CHANNEL_CLOSED";
  constructor(
    readonly channel: string,
    readonly reason: string,
  ) {
    super(`${channel}: ${reason}`);
  }
}

interface Waiter {
  readonly write: PacketWrite;
  readonly total: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export interface EndpointOptions {
  readonly name: string;
  /** Largest incoming packet accepted (the reader's bounce buffer). */
  readonly maxPacketSize: number;
  /** Signals the peer (a hypercall / monitor bit from the guest, an interrupt from the host). */
  readonly signalPeer: () => void;
}

export class ChannelEndpoint {
  readonly writer: RingWriter;
  readonly reader: RingReader;
  readonly name: string;
  private readonly signalPeer: () => void;
  private readonly waiters: Waiter[] = [];
  private closedReason: string | null = null;
  private draining = false;

  constructor(out: RingBuffer, inbound: RingBuffer, options: EndpointOptions) {
    this.name = options.name;
    this.writer = new RingWriter(out);
    this.reader = new RingReader(inbound, { maxPacketSize: options.maxPacketSize });
    this.signalPeer = options.signalPeer;
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Senders waiting for ring space. */
  get blockedSenders(): number {
    return this.waiters.length;
  }

  /**
   * Sends one packet. Resolves once it is in the ring and published;
   * waits (does not fail) while the ring is full. Rejects with
   * `ChannelClosedError` if the channel closes first.
   */
  send(write: PacketWrite, total: number): Promise<void> {
    if (this.closedReason !== null) return Promise.reject(new ChannelClosedError(this.name, this.closedReason));
    // Queue behind earlier blocked packets: order on a channel is preserved.
    if (this.waiters.length === 0 && write(this.writer)) {
      this.commit();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ write, total, resolve, reject });
      if (this.waiters.length === 1) this.retryBlocked();
    });
  }

  /**
   * Writes without committing, for batches: several `tryWrite`s then one
   * `commit()` publish with one index update and at most one signal.
   * Returns false when the ring is full or senders are already waiting.
   */
  tryWrite(write: PacketWrite): boolean {
    if (this.closedReason !== null) throw new ChannelClosedError(this.name, this.closedReason);
    return this.waiters.length === 0 && write(this.writer);
  }

  /** Publishes what was written and signals the peer if the ring went empty → non-empty. */
  commit(): void {
    if (this.writer.commit()) this.signalPeer();
  }

  /**
   * Drains the incoming ring, calling `onPacket` for each packet (a private
   * copy, valid during the call). Returns the number of packets taken.
   * `onPacket` returning false stops the drain and leaves that packet (and
   * those after it) in the ring. A
   * `RingCorruptError` from the reader propagates: the caller closes the
   * channel. Re-entrant calls (a packet handler that triggers a drain) are
   * ignored: the outer loop will see the new packets.
   */
  drain(onPacket: (p: IncomingPacket) => boolean | void): number {
    if (this.draining) return 0;
    this.draining = true;
    let n = 0;
    const r = this.reader;
    try {
      r.beginRead();
      for (;;) {
        let stopped = false;
        for (let p = r.first(); p !== null; p = r.next()) {
          // A handler that cannot take the packet now (its queue is full, no
          // room reserved for the completion) returns false: the packet stays
          // in the ring, unconsumed, for the next drain.
          if (onPacket(p) === false) {
            stopped = true;
            break;
          }
          n++;
        }
        if (r.close()) this.signalPeer();
        if (stopped) {
          // Leave the mask clear so that the peer signals new data; the
          // caller drains again when it can take packets.
          r.endRead();
          break;
        }
        // Unmask, then look again: a packet published while we were masked
        // was not signalled, and nobody else will come for it.
        if (r.endRead() === 0) break;
        r.beginRead();
      }
    } finally {
      this.draining = false;
    }
    // Completions written by the handlers go out in one batch.
    this.commit();
    return n;
  }

  /**
   * Call when the peer signalled: blocked senders get another chance (the
   * signal may mean "space freed"). Incoming packets are the caller's
   * business (`drain`).
   */
  retryBlocked(): void {
    const w = this.writer;
    let wrote = false;
    while (this.waiters.length > 0) {
      const head = this.waiters[0] as Waiter;
      if (head.write(w)) {
        this.waiters.shift();
        wrote = true;
        head.resolve();
        continue;
      }
      // Still full: announce what we need. If the space appeared between
      // the failed write and the announcement, block() says so: try again.
      if (w.block(head.total)) continue;
      break;
    }
    if (this.waiters.length === 0) w.unblock();
    if (wrote) this.commit();
  }

  /** Fails every waiting sender; later sends reject at once. */
  close(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    const err = new ChannelClosedError(this.name, reason);
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
