/**
 * The writing side of one ring — vmbus-core.md §1.4, §1.6, §2.3–§2.6, §3.1.
 *
 * Writes are two-phase, as in OpenVMM's ring: `write*` copies a packet into
 * the ring past the last published write index and advances a private
 * cursor; `commit` publishes every packet written since the last commit
 * with one store of `write_index` and returns whether the peer must be
 * signalled. A peer reading concurrently sees either none or all of the
 * packets of one commit, never a torn packet: the data is copied before the
 * index that makes it visible is stored.
 */
import { VMBUS_PKT_TRAILER } from "./layout.js";
import { RingPacketEncoder, type TransId, publishWriteIndex } from "./packet-encoder.js";
import type { RingBuffer } from "./ring-buffer.js";

// These lived here before the packet encoding moved to packet-encoder.ts;
// importers of this module keep finding them here.
export { type PageBufferEntry, type TransId, type XferPageRange, setTransId } from "./packet-encoder.js";

export class RingWriter extends RingPacketEncoder {
  /** Writes refused because the ring was full (`out_full_total`). */
  outFullTotal = 0;
  /** Refusals that started a full period (`out_full_first`). */
  outFullFirst = 0;
  /** Signals sent because the ring went empty → non-empty (`intr_out_empty`). */
  intrOutEmpty = 0;
  packetsWritten = 0;
  bytesWritten = 0;

  private outFullFlag = false;
  /** The reader's `read_index` as last loaded and validated; may lag the real one. */
  private peerRead: number;
  /** The write index as we last published it. Ours alone; never re-read from shared memory. */
  private committed: number;
  /** Where the next packet goes; ahead of `committed` while a batch is open. */
  private next: number;

  constructor(ring: RingBuffer) {
    super(ring);
    // Resume where the ring is. A fresh ring says 0; a hostile value fails here.
    this.committed = ring.checkedIndex("write_index", ring.loadWriteIndex());
    this.next = this.committed;
    this.peerRead = this.committed;
  }

  /** Bytes written but not yet published. */
  get uncommittedBytes(): number {
    return this.next >= this.committed ? this.next - this.committed : this.ring.dataSize - this.committed + this.next;
  }

  /**
   * Free bytes as the writer sees them now. A racing reader can only make
   * this larger by the time it is used, never smaller.
   */
  freeBytes(): number {
    this.peerRead = this.ring.checkedIndex("read_index", this.ring.loadReadIndex());
    return this.ring.bytesToWrite(this.next, this.peerRead);
  }

  /**
   * Copies one packet into the ring after the write cursor without
   * publishing it. `extLen` bytes of type-specific header must already be
   * staged after the descriptor (see `stage`). Returns false, writing
   * nothing, when the ring has not strictly more free bytes than the packet
   * needs: an exact fit is refused, so the ring never fills completely and
   * `read_index == write_index` always means empty, never full.
   */
  writePacket(type: number, flags: number, transId: TransId, extLen: number, payload: Uint8Array): boolean {
    const pktLen = this.packetLength(extLen, payload.length);
    const total = pktLen + VMBUS_PKT_TRAILER;
    // The reader's index as last seen can only be behind the real one, so a
    // packet that fits by it fits for sure; only when it does not do we pay
    // for a fresh (and freshly validated) load (OpenVMM caches it the same way).
    if (this.ring.bytesToWrite(this.next, this.peerRead) <= total && this.freeBytes() <= total) {
      this.outFullTotal++;
      if (!this.outFullFlag) {
        this.outFullFirst++;
        this.outFullFlag = true;
      }
      return false;
    }
    this.outFullFlag = false;
    this.next = this.encodePacket(this.next, type, flags, transId, extLen, pktLen, payload);
    this.packetsWritten++;
    this.bytesWritten += total;
    return true;
  }

  /**
   * Publishes everything written since the last commit and decides whether
   * to signal the reader (`hv_signal_on_write`): only if the reader has not
   * masked interrupts and the ring was empty before this batch. The store
   * and the two loads, and why they come in that order, are in
   * `publishWriteIndex`.
   */
  commit(): boolean {
    if (this.next === this.committed) return false;
    const old = this.committed;
    this.committed = this.next;
    if (!publishWriteIndex(this.ring, old, this.next)) return false;
    this.intrOutEmpty++;
    return true;
  }

  /** Drops packets written since the last commit (OpenVMM's revert). */
  discard(): void {
    this.next = this.committed;
  }

  /**
   * After a refused write: announce that we wait for `needed` free bytes
   * (`pending_send_sz`), then look again. Returns true when the space is
   * already there — retry now, nobody will signal — and false when the
   * caller must wait for the reader's signal.
   *
   * The second look is what makes this safe: the reader may have freed the
   * space after our failed write but before our store, and at that moment
   * it saw pending_send_sz = 0 and did not signal. Without the re-check we
   * would sleep with a ring that has room, forever.
   */
  block(needed: number): boolean {
    this.ring.storePendingSendSize(needed);
    if (this.freeBytes() > needed) {
      this.ring.storePendingSendSize(0);
      return true;
    }
    return false;
  }

  /** Clears `pending_send_sz` once the wait is over (space came, or the channel closes). */
  unblock(): void {
    this.ring.storePendingSendSize(0);
  }
}
