/**
 * Pieces of the guest transmit path — storvsc-netvsc.md §11.1 (send-buffer
 * sections), §12 (the send indirection table and the flow hash that
 * indexes it).
 */
import { ETH_P_8021Q, ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP, VRSS_SEND_TAB_SIZE } from "../protocol/index.js";

/**
 * The send buffer's sections, as Linux's `send_section_map` bitmap: a
 * section is taken when a batch starts filling it and given back when the
 * host completes the SEND_RNDIS_PKT that named it. Lowest free index first,
 * so runs are reproducible.
 */
export class SendSectionPool {
  private readonly used: Uint8Array;
  private free: number;
  private hint = 0;

  constructor(readonly count: number) {
    this.used = new Uint8Array(count);
    this.free = count;
  }

  get available(): number {
    return this.free;
  }

  /** A free section index, or null when all are in flight. */
  alloc(): number | null {
    if (this.free === 0) return null;
    for (let n = 0; n < this.count; n++) {
      const i = (this.hint + n) % this.count;
      if (this.used[i] === 0) {
        this.used[i] = 1;
        this.free--;
        this.hint = (i + 1) % this.count;
        return i;
      }
    }
    return null;
  }

  release(index: number): void {
    if (this.used[index] !== 1) return;
    this.used[index] = 0;
    this.free++;
  }
}

/**
 * The flow hash that picks a transmit queue (`tx_table[hash & 15]`). Linux
 * uses `skb_get_hash` (the kernel's flow dissector + jhash); here FNV-1a
 * over the same flow tuple: IPv4 addresses and protocol, plus the ports for
 * unfragmented TCP/UDP; for other frames the two MAC addresses. Any
 * deterministic hash serves: what matters is that one flow always takes
 * one queue (its frames stay in order) and flows spread.
 */
export function flowHash(frame: Uint8Array): number {
  let h = 0x811c9dc5;
  let l3 = 14;
  let type = ((frame[12] ?? 0) << 8) | (frame[13] ?? 0);
  if (type === ETH_P_8021Q) {
    type = ((frame[16] ?? 0) << 8) | (frame[17] ?? 0);
    l3 = 18;
  }
  if (type === ETH_P_IP && frame.length >= l3 + 20) {
    const ihl = ((frame[l3] as number) & 0x0f) * 4;
    const proto = frame[l3 + 9] as number;
    h = fnvMix(h, frame, l3 + 9, l3 + 10);
    h = fnvMix(h, frame, l3 + 12, l3 + 20);
    const fragmented = ((((frame[l3 + 6] as number) & 0x3f) << 8) | (frame[l3 + 7] as number)) !== 0;
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && !fragmented && frame.length >= l3 + ihl + 4) h = fnvMix(h, frame, l3 + ihl, l3 + ihl + 4);
  } else {
    h = fnvMix(h, frame, 0, 12);
  }
  return h >>> 0;
}

/** FNV-1a steps over `frame[from, to)` (stopping at its end). */
function fnvMix(h: number, frame: Uint8Array, from: number, to: number): number {
  const end = Math.min(to, frame.length);
  for (let i = from; i < end; i++) h = Math.imul(h ^ (frame[i] as number), 0x01000193);
  return h;
}

/** Linux `rndis_set_subchannel`: before the host sends its own, entry i = i mod queues. */
export function defaultSendTable(queues: number): number[] {
  return Array.from({ length: VRSS_SEND_TAB_SIZE }, (_, i) => i % Math.max(1, queues));
}
