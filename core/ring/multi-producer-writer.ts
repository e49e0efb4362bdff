/**
 * Several producers writing one ring without a lock — seed document 004
 * (Stephen Hemminger's "lockless ring write" RFC, after ftrace's ring, the
 * FreeBSD buf_ring and the DPDK rte_ring), with the signalling rules of
 * vmbus-core.md §3.1 kept.
 *
 * Each producer (a vCPU; in the threaded mode, a worker thread) has its own
 * `MultiProducerRingWriter` with its own staging buffers. They share the
 * ring and a small block of *producer-private* shared memory (`state`, an
 * Int32Array the guest owns, never part of the ring header the host reads):
 *
 * 1. Reserve: compare-and-swap the reservation word from `r` to
 *    `r + total`, if the ring has strictly more than `total` bytes free
 *    between `r` and the reader's `read_index` (the rule of §1.6: an exact
 *    fit is refused, so a full ring is never taken for an empty one).
 * 2. Copy the packet and its trailer into [r, r + total) with the same
 *    routine the single writer uses (`RingPacketEncoder.encodePacket`).
 *    Producers copy in parallel; nobody else writes those bytes.
 * 3. Publish in reservation order: wait until everything before `r` is
 *    published, then store `write_index = r + total`, decide whether to
 *    signal, and hand the turn to the producer whose reservation starts
 *    at `r + total`.
 *
 * Every step is an `Atomics` operation, and all `Atomics` operations are
 * sequentially consistent (one total order that every thread agrees on,
 * each also a full barrier). The comments at each step say which ordering
 * it needs and which race it prevents.
 *
 * A producer writing alone — nobody else reserved since its last write,
 * which the owner word tells it (`reserve`) — skips the loads that only
 * matter when others write: the reservation word (it is our own last end),
 * read_index (the free space left after our last write is still there, or
 * more), and the published word (our last write was published, so the
 * turn is ours). A packet then costs five `Atomics` operations: load the
 * owner word, swap the reservation word, store write_index, load the
 * interrupt mask, swap the published word. (Each is a call into the
 * runtime in V8, some 8 ns; they are most of a small packet's cost.)
 *
 * On one thread — the deterministic simulation — a write is reserve + copy
 * + publish in one call (`publishOnWrite`, the default). When a write
 * starts, every write before it has returned and so has published: no
 * producer ever waits for another, and the wait loop is never entered.
 * Waiting only happens between threads, when a producer finishes its copy
 * before a predecessor has finished its own.
 *
 * With `publishOnWrite: false` a producer batches like `RingWriter`:
 * `write*` reserves and copies, `commit` publishes everything written
 * since the last commit. Reservations of one producer that follow each
 * other directly (nobody reserved in between) merge into one, published by
 * one store of write_index. A producer holding unpublished writes delays
 * every producer that reserved after it, so it commits before it waits
 * for anything (`block` insists).
 */
import { InvalidArgumentError } from "../errors.js";
import { VMBUS_PKT_TRAILER } from "./layout.js";
import { RingPacketEncoder, type TransId, checkTransId, publishWriteIndex } from "./packet-encoder.js";
import type { RingBuffer } from "./ring-buffer.js";

/**
 * Word indices in the producers' state. The reservation word is CASed by
 * every reserving producer, the published word stored by every publisher:
 * they sit 64 bytes apart so the two kinds of traffic do not share a cache line.
 * (Word 17 once counted sleeping producers; that is now the `WAITING` bit of
 * the published word, and the word is unused.)
 */
const S_RESERVE = 0;
/**
 * The owner word (see `reserve`): the id of a producer that may be the only
 * one reserving, or 0. Next to the reservation word, which every
 * reservation touches anyway; written only when a producer finds itself
 * alone again, or finds another producer's id in it.
 */
const S_OWNER = 1;
/** Hands out producer ids (from 1; 0 means nobody). Never reset, so ids stay unique. */
const S_IDS = 2;
const S_PUBLISHED = 16;
const STATE_WORDS = 32;
/**
 * Bit 31 of the published word: some producer sleeps in `Atomics.wait` on
 * it. The tagged index (`tagging`) uses bits 0–30 only, so this bit is never
 * part of an index; every load of the published word masks it off
 * (`& INDEX_BITS`). The publisher swaps its end in with one
 * `Atomics.exchange` and learns from the old value whether to notify.
 */
const WAITING = 0x80000000 | 0;
const INDEX_BITS = 0x7fffffff;

export interface MultiProducerWriterOptions {
  /**
   * true (default): each `write*` reserves, copies and publishes, waiting
   * for predecessors if it has to; `commit` then only reports whether to
   * signal. false: `write*` reserves and copies, and `commit` (or
   * `publish`, or the non-waiting `tryPublish`) publishes every write
   * since the last one — batching, and the steps a test interleaves.
   */
  readonly publishOnWrite?: boolean;
  /**
   * Whether `block` may wait for other producers' unpublished reservations
   * to be published (instead of telling the caller to retry at once). Safe
   * only if none of those producers is on this thread holding writes it has
   * not committed, or the wait never ends — always true with
   * `publishOnWrite`, and with one producer per thread. Default:
   * `publishOnWrite`.
   */
  readonly waitForOthers?: boolean;
  /** Polls (`Atomics.load`) of the published word before a waiting producer sleeps. Default 4096. */
  readonly spinsBeforeWait?: number;
  /**
   * Longest single `Atomics.wait` (ms) while waiting for a predecessor.
   * Publishers notify sleepers, so this is only a safety net. Default 10.
   */
  readonly waitTimeoutMs?: number;
}

export class MultiProducerRingWriter extends RingPacketEncoder {
  /** Bytes of producer state (`createState`, `initState`). */
  static readonly STATE_BYTES = STATE_WORDS * 4;

  /** Writes refused because the ring was full (`out_full_total`), this producer's. */
  outFullTotal = 0;
  /** Refusals that started a full period (`out_full_first`). */
  outFullFirst = 0;
  /** Signals this producer reported (`commit` returned true): empty → non-empty transitions it published. */
  intrOutEmpty = 0;
  packetsWritten = 0;
  bytesWritten = 0;
  /** Reservation attempts lost to another producer's compare-and-swap. */
  reserveRetries = 0;
  /** Publications that found a predecessor unpublished and had to wait. */
  publishWaits = 0;
  /** `Atomics.wait` calls made waiting for other producers to publish (after the spins ran out). */
  publishSleeps = 0;

  readonly publishOnWrite: boolean;
  private readonly waitForOthers: boolean;
  private readonly spinsBeforeWait: number;
  private readonly waitTimeoutMs: number;
  /** Waiting for another producer is possible only if another thread can see `state`. */
  private readonly canWait: boolean;
  private outFullFlag = false;

  // The tagged index encoding, the same for every producer of the ring.
  private readonly dsize8: number;
  private readonly offBits: number;
  private readonly offMask: number;
  private readonly lapMask: number;

  /**
   * Unpublished reservations, oldest first, as tagged [start, end) words in
   * entries [openHead, openHead + openCount). A reservation that starts
   * where the newest one ends extends it, so a batch nobody interleaved
   * with is one entry.
   */
  private openStarts = new Int32Array(8);
  private openEnds = new Int32Array(8);
  private openHead = 0;
  private openCount = 0;
  /** Ring offset of the last reservation (where `writePacket` copies to). */
  private reservedAt = 0;
  /** A publication of ours found the ring empty and unmasked; `commit` reports it. */
  private signalDue = false;
  /** This producer's id in `S_OWNER` (unique among the producers of one state). */
  private readonly id: number;
  /** The tagged end of this producer's last reservation (-1: none yet). */
  private lastEnd = -1;
  /**
   * Free bytes after our last reservation, by the read_index it was checked
   * against: a lower bound of the free space at `lastEnd` for as long as
   * nobody else reserves (read_index only moves forward).
   */
  private freeAfter = 0;
  /** The last reservation was the alone case of `reserve`: nobody reserved since our previous one. */
  private alone = false;
  /**
   * Whether the alone case may be taken at all: only with at least 1024
   * laps of tag space (rings up to 16 MiB), so that the bound in `reserve`
   * holds for up to 512 producers.
   */
  private readonly mayBeAlone: boolean;

  /**
   * @param ring this producer's view of the shared ring
   * @param state the producers' shared state, set up once by `initState`
   *   (or `createState`) before any producer writes; an Int32Array over a
   *   SharedArrayBuffer when producers run on several threads
   */
  constructor(
    ring: RingBuffer,
    readonly state: Int32Array,
    options: MultiProducerWriterOptions = {},
  ) {
    super(ring);
    if (state.length < STATE_WORDS) {
      throw new InvalidArgumentError("producer state words", state.length, `must be at least ${STATE_WORDS}`);
    }
    this.publishOnWrite = options.publishOnWrite ?? true;
    this.waitForOthers = options.waitForOthers ?? this.publishOnWrite;
    this.spinsBeforeWait = options.spinsBeforeWait ?? 4096;
    this.waitTimeoutMs = options.waitTimeoutMs ?? 10;
    this.canWait = typeof SharedArrayBuffer !== "undefined" && state.buffer instanceof SharedArrayBuffer;
    const t = tagging(ring.dataSize);
    this.dsize8 = t.dsize8;
    this.offBits = t.offBits;
    this.offMask = t.offMask;
    this.lapMask = t.lapMask;
    this.mayBeAlone = t.lapMask >= 1023;
    let id = (Atomics.add(state, S_IDS, 1) + 1) & 0x7fffffff;
    if (id === 0) id = (Atomics.add(state, S_IDS, 1) + 1) & 0x7fffffff; // after 2^31 producers
    this.id = id;
  }

  /**
   * Points the producers' state at the ring's current write index, with no
   * producer waiting. Call it once, before any producer writes (a fresh
   * ring says 0; a hostile index fails here).
   */
  static initState(ring: RingBuffer, state: Int32Array): void {
    if (state.length < STATE_WORDS) {
      throw new InvalidArgumentError("producer state words", state.length, `must be at least ${STATE_WORDS}`);
    }
    const write = ring.checkedIndex("write_index", ring.loadWriteIndex());
    const word = write >>> 3; // lap 0
    // Everything but the id counter: producers made before this keep ids
    // nobody else gets. Nobody is the owner, so every producer's next
    // reservation loads the word.
    const ids = Atomics.load(state, S_IDS);
    state.fill(0);
    Atomics.store(state, S_IDS, ids);
    Atomics.store(state, S_RESERVE, word);
    Atomics.store(state, S_PUBLISHED, word);
  }

  /** A new producer state in its own SharedArrayBuffer, initialised for `ring`. */
  static createState(ring: RingBuffer): Int32Array {
    const state = new Int32Array(new SharedArrayBuffer(MultiProducerRingWriter.STATE_BYTES));
    MultiProducerRingWriter.initState(ring, state);
    return state;
  }

  /** True between a write and its publication (only with `publishOnWrite: false`). */
  get unpublished(): boolean {
    return this.openCount !== 0;
  }

  /** Separate unpublished reservations this producer holds (contiguous ones count once). */
  get unpublishedRuns(): number {
    return this.openCount;
  }

  /**
   * Free bytes for a new reservation now: between the reservation index
   * and read_index. Other producers can make it smaller, the reader larger,
   * by the time it is used.
   */
  freeBytes(): number {
    const at = (Atomics.load(this.state, S_RESERVE) & this.offMask) << 3;
    const read = this.ring.checkedIndex("read_index", this.ring.loadReadIndex());
    return this.ring.bytesToWrite(at, read);
  }

  /**
   * Reserves room for one packet and copies it in; with `publishOnWrite`
   * also publishes it. Returns false, writing and reserving nothing, when
   * the ring has not strictly more free bytes than the packet needs.
   */
  writePacket(type: number, flags: number, transId: TransId, extLen: number, payload: Uint8Array): boolean {
    // Everything that can throw runs before the reservation: a reservation
    // left unfilled and unpublished would stop every producer after it.
    const pktLen = this.packetLength(extLen, payload.length);
    checkTransId(transId);
    const total = pktLen + VMBUS_PKT_TRAILER;
    const word = this.reserve(total);
    if (word === -1) {
      this.outFullTotal++;
      if (!this.outFullFlag) {
        this.outFullFirst++;
        this.outFullFlag = true;
      }
      return false;
    }
    this.outFullFlag = false;
    this.encodePacket(this.reservedAt, type, flags, transId, extLen, pktLen, payload);
    this.packetsWritten++;
    this.bytesWritten += total;
    const end = this.lastEnd;
    if (!this.publishOnWrite) {
      this.noteReservation(word, end);
    } else if (this.openCount === 0 && (this.alone || (Atomics.load(this.state, S_PUBLISHED) & INDEX_BITS) === word)) {
      // Our turn already (always, on one thread): publish without the
      // queue. Alone (see `reserve`), nobody reserved between our previous
      // reservation — published before this write began — and this one,
      // so nobody else can have published since: the published word is our
      // start without looking.
      this.publishRun(word, end);
    } else {
      this.noteReservation(word, end);
      this.publish();
    }
    return true;
  }

  /**
   * Publishes this producer's unpublished reservations, oldest first, for
   * as long as each one's turn has come (every reservation before it is
   * published); stops at the first whose turn has not. Never waits.
   * Returns true when nothing is left unpublished.
   */
  tryPublish(): boolean {
    while (this.openCount !== 0) {
      if ((Atomics.load(this.state, S_PUBLISHED) & INDEX_BITS) !== this.openStarts[this.openHead]) return false;
      this.finishPublish();
    }
    return true;
  }

  /**
   * Publishes this producer's unpublished reservations, oldest first,
   * waiting for each one's turn: spin with `Atomics.load`, then sleep in
   * `Atomics.wait` on the published word (publishers notify sleepers).
   */
  publish(): void {
    while (this.openCount !== 0) {
      const mine = this.openStarts[this.openHead] as number;
      let waited = false;
      for (;;) {
        const seen = Atomics.load(this.state, S_PUBLISHED) & INDEX_BITS;
        if (seen === mine) break;
        if (!this.canWait) {
          // Nobody else can see this memory, so nobody can publish the
          // predecessor: waiting would never end.
          throw new InvalidArgumentError(
            `${this.ring.name} publication at`,
            (mine & this.offMask) << 3,
            "waits for an earlier reservation that no other thread can publish (producer state is not shared memory)",
          );
        }
        if (!waited) {
          this.publishWaits++;
          waited = true;
        }
        this.awaitPublishedChange(seen);
      }
      this.finishPublish();
    }
  }

  /**
   * Publishes everything this producer wrote (waiting for predecessors,
   * see `publish`) and reports whether the reader must be signalled: true
   * if one of this producer's publications since the last `commit` moved
   * the ring from empty to non-empty while the reader had not masked
   * interrupts. For every such transition exactly one producer — the one
   * whose publication made the ring non-empty — reports it.
   */
  commit(): boolean {
    if (this.openCount !== 0) this.publish();
    if (!this.signalDue) return false;
    this.signalDue = false;
    this.intrOutEmpty++;
    return true;
  }

  /**
   * After a refused write: raise `pending_send_sz` to at least `needed`,
   * then look again. Returns true when the caller should retry the write
   * now, false when it must wait for the reader's signal.
   *
   * The look again is the lost-wakeup guard of `RingWriter.block` (the
   * reader may have freed the space before our store and seen no pending
   * size). It measures free space as the reader does, from the *published*
   * write index, not from the reservation index: the reader signals when
   * free space by its measure crosses pending_send_sz, and reservations
   * not yet published are free space by its measure. A producer that
   * slept because unpublished reservations filled the ring could otherwise
   * watch the reader drain them packet by packet, each close starting
   * above pending_send_sz, and never be signalled. So true can also mean
   * "the room is held by other producers' reservations still being
   * copied"; then, between threads, this waits for the next publication
   * before returning, rather than letting the caller spin.
   *
   * Several producers may block at once, so pending_send_sz only ever
   * rises here (the largest need wins; one signal wakes all of them), and
   * no producer clears it for itself — another may still wait on it. The
   * code that receives the reader's signal clears it (`unblockAll`) and
   * then wakes every blocked producer; each retries and blocks again if
   * its packet still does not fit.
   */
  block(needed: number): boolean {
    if (this.openCount !== 0 || this.signalDue) {
      // Unpublished writes of ours would hold up every producer after
      // them while we sleep, and the reader needs the signal we owe it to
      // drain the ring and ever wake us: a deadlock either way.
      throw new InvalidArgumentError(
        `${this.ring.name} block with unpublished writes or an unsent signal`,
        this.openCount,
        "commit (and signal if it says so) before blocking",
      );
    }
    const ring = this.ring;
    const state = this.state;
    // The store must come before the loads below (both sequentially
    // consistent): a reader that publishes read_index after our loads
    // reads pending_send_sz after its store, so it sees ours.
    ring.raisePendingSendSize(needed);
    for (let tries = 0; tries < 4; tries++) {
      // The published index, read_index, the published index again: if it
      // did not move (the tag rules out a full lap) the two describe one
      // instant, and read_index is not past the published index.
      const published = Atomics.load(state, S_PUBLISHED) & INDEX_BITS;
      const read = ring.checkedIndex("read_index", ring.loadReadIndex());
      if ((Atomics.load(state, S_PUBLISHED) & INDEX_BITS) !== published) continue;
      if (ring.bytesToWrite((published & this.offMask) << 3, read) <= needed) return false;
      // Room by the reader's measure. If other producers' reservations
      // hold it (the reservation word is ahead of the published one, and
      // our packet does not fit after it), retrying at once would only
      // spin until they publish — for a whole time slice if one of them
      // was preempted mid-copy. Wait for the next publication instead; one
      // is certain to come — unless its owner is on this thread, which
      // `waitForOthers` rules out.
      const reserved = Atomics.load(state, S_RESERVE);
      if (
        this.waitForOthers &&
        this.canWait &&
        reserved !== published &&
        ring.bytesToWrite((reserved & this.offMask) << 3, read) <= needed
      ) {
        this.awaitPublishedChange(published);
      }
      return true;
    }
    return true; // the ring keeps moving: retrying beats sleeping on a stale measure
  }

  /**
   * Clears `pending_send_sz`: call it once per full → not-full signal from
   * the reader, before waking every producer blocked on this ring.
   */
  unblockAll(): void {
    this.ring.storePendingSendSize(0);
  }

  /**
   * Step 1. The reservation word is loaded first and read_index second
   * (unless the producer is alone, below).
   * That order bounds how stale read_index can be: if the compare-and-swap
   * succeeds, the word did not change from our load to the swap, so when
   * we loaded read_index the reservation index was `at`, and read_index ≤
   * write_index ≤ `at` held, less than a lap apart. The reader only moves
   * read_index forward, so the free space we compute is a lower bound of
   * the free space at the swap. (Loaded the other way round, read_index
   * could be a lap behind a reservation index other producers moved on, and
   * the modular arithmetic would report free space that holds unread
   * packets.)
   *
   * The word is tagged with a lap count (`tagging`) so that the swap cannot
   * succeed on a word that went round the ring and came back to the same
   * offset while we were preempted between the load and the swap (ABA): our
   * read_index would then be from the previous lap.
   */
  private reserve(total: number): number {
    const ring = this.ring;
    const state = this.state;
    // Alone: if the owner word holds our id, we take our own last end as
    // the reservation word, the free space left after our last
    // reservation as the free space, and (`writePacket`) the turn as ours,
    // loading neither the word, nor read_index, nor the published word.
    //
    // The owner word's rule: a producer that reserves without that short
    // cut stores, after its compare-and-swap, its own id if the word was
    // at its own last end (it is alone again), or else 0 if the owner word
    // held someone else's id when it looked (nobody may rely on being
    // alone any more). So while our id stays in it, every other producer
    // reserved at most twice since we stored it: once with its look before
    // our store, once with its store still to come (each producer has at
    // most one of each in flight). Give or take the few reservations that
    // fit between one compare-and-swap and the store after it (the short
    // window the tagging is for), that bounds what happened since our last
    // reservation too. Fewer than 2^lapBits such reservations (2^16 for a
    // 256 KiB ring; `mayBeAlone` keeps this case to rings where 2^lapBits
    // is at least 1024), each smaller than the ring, cannot take the word a
    // full turn of the tag space: if anyone reserved since our last
    // reservation, the word is not at our last end and the guessed
    // compare-and-swap fails. If it succeeds, nobody did: the free space is
    // at least what we left, since read_index only moves forward, and — with
    // `publishOnWrite`, our last reservation published before this write —
    // the published word is our start. A failed guess is not a race lost
    // between a look and a swap (we never looked), so it is not counted in
    // `reserveRetries`.
    const owner = Atomics.load(state, S_OWNER);
    let guessed = owner === this.id && this.lastEnd !== -1 && this.mayBeAlone;
    let word = guessed ? this.lastEnd : Atomics.load(state, S_RESERVE);
    for (;;) {
      const at = (word & this.offMask) << 3;
      let free = guessed ? this.freeAfter : 0;
      if (free <= total) {
        // Fresh read_index. Loaded after the word (or after the owner word
        // told us the word is our last end); if the swap below succeeds,
        // the word did not change from then to the swap (no ABA in so short
        // a window, see the tagging), so read_index was at most a lap
        // behind `at`: the free space computed is a lower bound of the free
        // space at the swap. (Loaded the other way round, read_index could
        // be a lap behind a reservation index other producers moved on, and
        // the modular arithmetic would report free space that holds unread
        // packets.)
        free = ring.bytesToWrite(at, ring.checkedIndex("read_index", ring.loadReadIndex()));
      }
      if (free <= total) {
        if (guessed) {
          // Refuse only on the real word, as a producer that loaded it
          // would (a pending reservation of another producer may have moved it).
          guessed = false;
          const cur = Atomics.load(state, S_RESERVE);
          if (cur !== word) {
            word = cur;
            continue;
          }
        }
        return -1;
      }
      const next = this.advance(word, total);
      const seen = Atomics.compareExchange(state, S_RESERVE, word, next);
      if (seen === word) {
        this.reservedAt = at;
        if (!guessed) {
          // The owner word's rule (above).
          if (word === this.lastEnd && this.mayBeAlone) Atomics.store(state, S_OWNER, this.id);
          else if (owner !== 0) Atomics.store(state, S_OWNER, 0);
        }
        this.alone = guessed;
        this.lastEnd = next;
        this.freeAfter = free - total;
        return word;
      }
      if (guessed) guessed = false;
      else this.reserveRetries++;
      word = seen;
    }
  }

  /**
   * Step 3, our turn (every reservation before ours is published).
   *
   * (a) Store write_index = end and decide whether to signal
   *     (`publishWriteIndex`: the store, then the mask and read_index
   *     loads, the order of `RingWriter.commit`). The packet bytes were
   *     copied with plain stores before; the sequentially consistent
   *     store of write_index makes them visible to a reader that loads it.
   * (b) Then hand the turn on: swap our end into the published word
   *     (`Atomics.exchange`, a sequentially consistent read-modify-write).
   *     After (a)'s store, so that the successor's store of write_index
   *     comes after ours in the total order — otherwise write_index could
   *     move backwards and the reader would see the successor's packet
   *     before ours, or lose it. After (a)'s loads too, so that while we
   *     decide, write_index is exactly our end: the publications form one
   *     sequence of (store, load mask, load read_index) in reservation
   *     order, the same as one `RingWriter` committing after every packet.
   *     The single-writer argument for "no lost wakeup, no signal but on
   *     empty → non-empty" then holds unchanged, and only the publisher
   *     whose packet made the ring non-empty can find read_index at its
   *     start.
   * (c) Wake producers sleeping on the published word — only if one
   *     announced itself by setting `WAITING` in the word we swapped out,
   *     so an uncontended publication costs no notify and no second
   *     Atomics operation (`awaitPublishedChange` has the sleeper's side).
   *
   * Producers wait on their own copy of the published index rather than on
   * the ring header's write_index: the header is memory the host can write,
   * and a host that rewrote write_index could otherwise stall every
   * producer or let two publish at once. The copy equals write_index
   * whenever no publication is in progress.
   */
  private finishPublish(): void {
    const h = this.openHead;
    const startWord = this.openStarts[h] as number;
    const endWord = this.openEnds[h] as number;
    if (--this.openCount === 0) this.openHead = 0;
    else this.openHead = h + 1;
    this.publishRun(startWord, endWord);
  }

  /** (a)–(c) above for the run [startWord, endWord), whose turn it is. */
  private publishRun(startWord: number, endWord: number): void {
    if (publishWriteIndex(this.ring, (startWord & this.offMask) << 3, (endWord & this.offMask) << 3)) this.signalDue = true;
    if ((Atomics.exchange(this.state, S_PUBLISHED, endWord) & WAITING) !== 0) Atomics.notify(this.state, S_PUBLISHED);
  }

  /** Records the reservation [word, next): extends the newest one if it ends at `word`. */
  private noteReservation(word: number, next: number): void {
    const n = this.openCount;
    const last = this.openHead + n - 1;
    if (n !== 0 && this.openEnds[last] === word) {
      this.openEnds[last] = next;
      return;
    }
    let i = this.openHead + n;
    if (i === this.openStarts.length) {
      // Grow (or compact): only when one producer holds many interleaved runs.
      const cap = n + 1 > this.openStarts.length >> 1 ? this.openStarts.length * 2 : this.openStarts.length;
      const starts = new Int32Array(cap);
      const ends = new Int32Array(cap);
      starts.set(this.openStarts.subarray(this.openHead, this.openHead + n));
      ends.set(this.openEnds.subarray(this.openHead, this.openHead + n));
      this.openStarts = starts;
      this.openEnds = ends;
      this.openHead = 0;
      i = n;
    }
    this.openStarts[i] = word;
    this.openEnds[i] = next;
    this.openCount = n + 1;
  }

  /**
   * Waits until the published index is no longer `seen`: spins with
   * `Atomics.load`, then sleeps in `Atomics.wait`. Sleeping: set `WAITING`
   * in the published word with a compare-and-swap from the value we saw,
   * then wait on that value with the bit set. A publisher swaps its end in
   * (`publishRun`, `Atomics.exchange`) and notifies if the old value had
   * the bit. In the one order of these sequentially consistent operations,
   * either the publisher's swap comes first — our compare-and-swap fails
   * (we look again, no sleep), or `Atomics.wait` finds the value changed
   * and returns "not-equal" — or our compare-and-swap comes first, the
   * publisher sees the bit and notifies, and `Atomics.wait` compares and
   * enqueues atomically with respect to `Atomics.notify`, so the notify
   * cannot fall between our compare and our sleep. The timeout is only a
   * safety net. The bit stays set until the next publication clears it.
   */
  private awaitPublishedChange(seen: number): void {
    const state = this.state;
    let spins = 0;
    for (;;) {
      const cur = Atomics.load(state, S_PUBLISHED);
      if ((cur & INDEX_BITS) !== seen) return;
      if (++spins <= this.spinsBeforeWait) continue;
      const flagged = cur | WAITING;
      if (cur !== flagged && Atomics.compareExchange(state, S_PUBLISHED, cur, flagged) !== cur) continue;
      Atomics.wait(state, S_PUBLISHED, flagged, this.waitTimeoutMs);
      this.publishSleeps++;
    }
  }

  /** The tagged word `bytes` after `word` (wrapping at the data size; the lap count goes up on a wrap). */
  private advance(word: number, bytes: number): number {
    let off8 = (word & this.offMask) + (bytes >>> 3);
    let lap = word >>> this.offBits;
    if (off8 >= this.dsize8) {
      off8 -= this.dsize8;
      lap = (lap + 1) & this.lapMask;
    }
    return (lap << this.offBits) | off8;
  }
}

/**
 * The tagged index encoding of the reservation and published words: the
 * ring offset in 8-byte units in the low `offBits` bits, a lap counter in
 * the rest of bits 0–30 (bit 31 of the published word is `WAITING`). For a
 * 1 MiB ring that is 17 + 14 bits: the same offset and tag come back only
 * after 16384 laps, 16 GiB of packets, far more than passes while one
 * producer sits between a load and its compare-and-swap.
 */
function tagging(dataSize: number): { dsize8: number; offBits: number; offMask: number; lapMask: number } {
  const dsize8 = dataSize >>> 3;
  const offBits = 32 - Math.clz32(dsize8 - 1);
  const offMask = offBits >= 32 ? -1 : (1 << offBits) - 1;
  const lapBits = 31 - offBits;
  const lapMask = (1 << lapBits) - 1;
  return { dsize8, offBits, offMask, lapMask };
}
