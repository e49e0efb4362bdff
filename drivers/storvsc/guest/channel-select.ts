/**
 * Which channel a command goes out on — storvsc-netvsc.md §5.1 ("Channel
 * choice"), Linux `storvsc_do_io` and `get_og_chn`, with the bookkeeping of
 * `storvsc_change_target_cpu`.
 *
 * Linux keeps `stor_chns[cpu]` (the channel a CPU sends on) and
 * `alloced_cpus` (the CPUs some channel is bound to). A command issued on
 * CPU q:
 * 1. If `stor_chns[q]` is a channel bound to q itself, Linux prefers ANOTHER
 *    channel: the first CPU in `alloced_cpus` after q (wrapping) whose
 *    channel's outbound ring is more than 10 % free — completions of q's own
 *    channel interrupt q, so spreading sends keeps q's ring free for them;
 *    failing that, q's own channel if it is more than 10 % free; failing
 *    that (every channel on this NUMA node busy) a channel of another node
 *    (the simulation has one node, so none) and finally q's own channel.
 * 2. If `stor_chns[q]` is a channel bound elsewhere (cached by rule 3), use it.
 * 3. Otherwise (`get_og_chn`): with no subchannels, the primary; else the
 *    channel of the (q mod n)-th CPU of `alloced_cpus` (n = their number),
 *    cached in `stor_chns[q]`.
 *
 * The simulated VM has a single NUMA node, so "on the same node" is every
 * CPU. A channel's CPU can change (sysfs `channels/<relid>/cpu`, MODIFY
 * CHANNEL): the map notices on the next choice and rebuilds, dropping the
 * cached rule-3 entries as `storvsc_change_target_cpu` "flushes" them.
 */

/** What the selector needs of a channel (a `GuestChannel` fits). */
export interface SelectableChannel {
  readonly targetCpu: number;
  readonly rescinded: boolean;
  readonly state: number;
  readonly outbound: { availToWritePercent(): number } | null;
}

export class StorChannelMap<C extends SelectableChannel> {
  /** `stor_chns`: the channel each CPU sends on (own channel or a cached choice). */
  private readonly storChns = new Map<number, C>();
  /** `alloced_cpus`, kept sorted ascending (`for_each_cpu` order). */
  private alloced: number[] = [];
  /** Channels in use with the CPU recorded for each (to notice re-targeting). */
  private readonly channels = new Map<C, number>();
  /** The same pairs as arrays, for the check `choose` makes on every command. */
  private chanList: C[] = [];
  private chanCpus: number[] = [];
  /** `stor_device->num_sc`: subchannels requested (0 = primary only). */
  numSc = 0;

  constructor(
    private readonly primary: C,
    private readonly usable: (c: C) => boolean,
    private readonly lowater: number,
  ) {
    this.add(primary);
  }

  /** Records an opened channel at its current target CPU (`handle_sc_creation`). */
  add(ch: C): void {
    if (!this.channels.has(ch)) this.chanList.push(ch);
    this.channels.set(ch, ch.targetCpu);
    this.chanCpus = this.chanList.map((c) => this.channels.get(c) as number);
    this.storChns.set(ch.targetCpu, ch);
    if (!this.alloced.includes(ch.targetCpu)) {
      this.alloced.push(ch.targetCpu);
      this.alloced.sort((a, b) => a - b);
    }
  }

  /** Every channel in use: the primary first, then subchannels in the order they were added. */
  list(): C[] {
    return [...this.channels.keys()];
  }

  /** The channel a command issued on `cpu` is sent on. */
  choose(cpu: number): C {
    this.refresh();
    const own = this.storChns.get(cpu);
    if (own !== undefined) {
      if (own.targetCpu !== cpu) return own;
      // Rule 1: another channel first, starting after this CPU, wrapping.
      const alloced = this.alloced;
      const n = alloced.length;
      let start = 0;
      while (start < n && (alloced[start] as number) <= cpu) start++;
      if (start === n) start = 0;
      for (let i = 0; i < n; i++) {
        const tgt = alloced[(start + i) % n] as number;
        if (tgt === cpu) continue;
        const ch = this.storChns.get(tgt);
        if (ch !== undefined && this.percentFree(ch) > this.lowater) return ch;
      }
      // Own channel, whether or not it is above the low-water mark: there is
      // no other node to try, and Linux falls through to it too.
      return own;
    }
    return this.getOgChn(cpu);
  }

  /** `get_og_chn`: a CPU without a channel of its own. */
  private getOgChn(cpu: number): C {
    if (this.numSc === 0 || this.alloced.length === 0) {
      this.storChns.set(cpu, this.primary);
      return this.primary;
    }
    const slot = cpu % this.alloced.length;
    const tgt = this.alloced[slot] as number;
    const ch = this.storChns.get(tgt) ?? this.primary;
    this.storChns.set(cpu, ch);
    return ch;
  }

  private percentFree(ch: C): number {
    return ch.outbound?.availToWritePercent() ?? 0;
  }

  /**
   * Rebuilds the map when a channel moved to another CPU or stopped being
   * usable (closed, rescinded). The primary always stays, so there is
   * always a channel to choose (a dead one makes the send fail clearly).
   */
  private refresh(): void {
    const list = this.chanList;
    const cpus = this.chanCpus;
    let stale = false;
    for (let i = 0; i < list.length; i++) {
      const ch = list[i] as C;
      if (ch.targetCpu !== cpus[i] || (ch !== this.primary && !this.usable(ch))) {
        stale = true;
        break;
      }
    }
    if (!stale) return;
    const keep = [...this.channels.keys()].filter((ch) => ch === this.primary || this.usable(ch));
    this.channels.clear();
    this.storChns.clear();
    this.alloced = [];
    this.chanList = [];
    this.chanCpus = [];
    for (const ch of keep) this.add(ch);
  }
}
