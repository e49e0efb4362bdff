/**
 * Monitor pages (vmbus-core.md §6, §3.4; seed 002 "low latency" patch).
 *
 * Two `hv_monitor_page`s per VM: [0] parent→child (host→guest, "server"),
 * [1] child→parent (guest→host, "client"). A guest signalling a monitored
 * channel only sets the channel's pending bit in page [1] — group =
 * monitorId / 32, bit = monitorId % 32, atomically, because the hypervisor
 * clears bits of the same word concurrently — and makes no hypercall. The
 * hypervisor looks at the page once per the channel's latency window and
 * wakes the host once for everything that accumulated: N signals in a window
 * become one host wakeup. That batching is the throughput-for-latency trade
 * the seed describes; a low-latency channel bypasses the page (see
 * `signalChannel` in guest.ts).
 *
 * Latency unit: the u16 `latency[group][bit]` entries are in units of
 * MONITOR_LATENCY_UNIT_NS = 100 ns in this simulator (1000 = 100 µs). Linux
 * does not document Hyper-V's unit (§6); the choice only matters to readers
 * of the page.
 *
 * The real hypervisor polls the page. Polling on a fixed period would keep
 * the event queue busy forever, so the model arms a scan when a guest sets a
 * pending bit through `trigger` and the channel has no scan in flight: the
 * scan lands exactly one latency after the first signal of the window. A bit
 * set behind the model's back (a raw write to the page) is picked up by the
 * next scan of that entry.
 *
 * The host (VMBus server) fills `latency`, `parameter` and `armed` when it
 * offers a monitored channel, through `configure`.
 */
import { InvalidArgumentError } from "../errors.js";
import { PAGE_SIZE, type GuestMemory } from "../memory/guest-memory.js";
import { MONITOR_LATENCY_UNIT_NS } from "../sim/cost-model.js";
import type { Timer } from "../sim/scheduler.js";
import { HV_CONNECTION_ID_MASK, HV_MONITOR_ID_COUNT } from "./constants.js";
import {
  HV_MONITOR_PAGE,
  monitorArmedOffset,
  monitorLatencyOffset,
  monitorParameterOffset,
  monitorPendingOffset,
} from "./layout.js";
import type { GuestPartition } from "./partition.js";

export interface MonitorChannelConfig {
  /** Event connection id the hypervisor signals on a wakeup (the offer's connection_id). */
  readonly connectionId: number;
  /** Window in 100 ns units (default: the cost model's monitorLatencyNs / 100). */
  readonly latency?: number;
}

/** Index of `hv_monitor_page`s in a VM. */
export const MONITOR_PAGE_SERVER = 0;
export const MONITOR_PAGE_CLIENT = 1;

export class MonitorPages {
  /** GPAs of page [0] (server, host→guest) and page [1] (client, guest→host). */
  readonly pageGpa: readonly [number, number];

  private readonly words: Int32Array;
  private readonly view: DataView;
  private readonly timers: (Timer | undefined)[] = new Array<Timer | undefined>(HV_MONITOR_ID_COUNT).fill(undefined);
  /** Guest triggers since the entry's last scan (for the trace: signals folded into one wakeup). */
  private readonly triggers = new Uint32Array(HV_MONITOR_ID_COUNT);

  /**
   * @internal Threaded mode, guest side: the hypervisor that scans this
   * page runs in the host thread. `trigger` calls this after it set a
   * pending bit that was clear (the host thread's scan clears it), so the
   * host hears of every 0 → 1 transition and of nothing else.
   */
  remoteScanner: ((monitorId: number) => void) | undefined;

  /**
   * @param pageGpas the two pages when they already exist (threaded mode:
   *   the host thread's view of the guest's monitor pages); default:
   *   allocate them.
   */
  constructor(
    private readonly vm: GuestPartition,
    memory: GuestMemory,
    words: Int32Array,
    pageGpas?: readonly [number, number],
  ) {
    const server = pageGpas?.[0] ?? memory.allocContiguous(1) * PAGE_SIZE;
    const client = pageGpas?.[1] ?? memory.allocContiguous(1) * PAGE_SIZE;
    this.pageGpa = [server, client];
    this.words = words;
    this.view = memory.view;
  }

  /** GPA of the client (guest→host) page, where guests set pending bits. */
  get clientGpa(): number {
    return this.pageGpa[MONITOR_PAGE_CLIENT];
  }

  /** GPA of the server (host→guest) page. */
  get serverGpa(): number {
    return this.pageGpa[MONITOR_PAGE_SERVER];
  }

  /**
   * Host side: sets up monitor entry `monitorId` for a monitored channel —
   * latency and parameter (connection id) in both pages, as Linux's sysfs
   * reads both, and arms the entry in the client page, where the guest
   * signals. Reconfiguring an entry replaces it.
   */
  configure(monitorId: number, config: MonitorChannelConfig): void {
    checkMonitorId(monitorId);
    const cid = config.connectionId;
    if (!Number.isInteger(cid) || cid < 0 || cid > HV_CONNECTION_ID_MASK) {
      throw new InvalidArgumentError("connectionId", cid, `must be in [0, ${HV_CONNECTION_ID_MASK}] (24 bits)`);
    }
    const latency = config.latency ?? this.vm.hypervisor.sim.costs.monitorLatencyNs / MONITOR_LATENCY_UNIT_NS;
    if (!Number.isInteger(latency) || latency < 1 || latency > 0xffff) {
      throw new InvalidArgumentError("latency", latency, "must be in [1, 65535] (units of 100 ns)");
    }
    const group = monitorId >>> 5;
    const bit = monitorId & 31;
    for (const page of this.pageGpa) {
      this.view.setUint16(page + monitorLatencyOffset(group, bit), latency, true);
      const p = page + monitorParameterOffset(group, bit);
      this.view.setUint32(p + HV_MONITOR_PAGE.parameterConnectionId, cid, true);
      this.view.setUint16(p + HV_MONITOR_PAGE.parameterFlagNumber, 0, true);
    }
    const client = this.clientGpa;
    Atomics.or(this.words, (client + monitorArmedOffset(group)) >> 2, 1 << bit);
    Atomics.or(this.words, (client + HV_MONITOR_PAGE.triggerState) >> 2, 1 << group);
    if (this.timers[monitorId] === undefined) {
      this.timers[monitorId] = this.vm.hypervisor.sim.scheduler.timer(`${this.vm.name} monitor ${monitorId} scan`, () =>
        this.scan(monitorId),
      );
    }
  }

  /** Host side: disarms entry `monitorId` (channel rescinded). A pending bit is dropped at its scan. */
  unconfigure(monitorId: number): void {
    checkMonitorId(monitorId);
    const group = monitorId >>> 5;
    const bit = monitorId & 31;
    Atomics.and(this.words, (this.clientGpa + monitorArmedOffset(group)) >> 2, ~(1 << bit));
  }

  /** Whether entry `monitorId` is armed in the client page. */
  isArmed(monitorId: number): boolean {
    checkMonitorId(monitorId);
    const w = Atomics.load(this.words, (this.clientGpa + monitorArmedOffset(monitorId >>> 5)) >> 2);
    return (w & (1 << (monitorId & 31))) !== 0;
  }

  /** Whether `monitorId`'s pending bit is set in the client page. */
  isPending(monitorId: number): boolean {
    checkMonitorId(monitorId);
    const w = Atomics.load(this.words, (this.clientGpa + monitorPendingOffset(monitorId >>> 5)) >> 2);
    return (w & (1 << (monitorId & 31))) !== 0;
  }

  /** The latency entry of `monitorId` in the client page, in nanoseconds. */
  latencyNs(monitorId: number): number {
    checkMonitorId(monitorId);
    return this.view.getUint16(this.clientGpa + monitorLatencyOffset(monitorId >>> 5, monitorId & 31), true) * MONITOR_LATENCY_UNIT_NS;
  }

  /** The connection id in `monitorId`'s parameter entry (client page). */
  connectionId(monitorId: number): number {
    checkMonitorId(monitorId);
    const p = this.clientGpa + monitorParameterOffset(monitorId >>> 5, monitorId & 31);
    return this.view.getUint32(p + HV_MONITOR_PAGE.parameterConnectionId, true) & HV_CONNECTION_ID_MASK;
  }

  /** `trigger_group[group].pending` of page [0] (server) or [1] (client), as sysfs shows it. */
  pendingWord(page: 0 | 1, group: number): number {
    if (!Number.isInteger(group) || group < 0 || group >= 4) throw new InvalidArgumentError("monitor group", group, "must be in [0, 4)");
    return Atomics.load(this.words, (this.pageGpa[page] + monitorPendingOffset(group)) >> 2) >>> 0;
  }

  /** `latency[grp][bit]` of page [0] or [1], raw (units of 100 ns). */
  latencyEntry(page: 0 | 1, monitorId: number): number {
    checkMonitorId(monitorId);
    return this.view.getUint16(this.pageGpa[page] + monitorLatencyOffset(monitorId >>> 5, monitorId & 31), true);
  }

  /** `parameter[grp][bit].connectionid.id` of page [0] or [1]. */
  connectionIdEntry(page: 0 | 1, monitorId: number): number {
    checkMonitorId(monitorId);
    const p = this.pageGpa[page] + monitorParameterOffset(monitorId >>> 5, monitorId & 31);
    return this.view.getUint32(p + HV_MONITOR_PAGE.parameterConnectionId, true) & HV_CONNECTION_ID_MASK;
  }

  /**
   * Guest side (`vmbus_setevent`, monitor path): set the pending bit in the
   * client page. No hypercall. Allocates nothing.
   */
  trigger(monitorId: number): void {
    checkMonitorId(monitorId);
    const group = monitorId >>> 5;
    const mask = 1 << (monitorId & 31);
    const old = Atomics.or(this.words, (this.clientGpa + monitorPendingOffset(group)) >> 2, mask);
    this.vm.counters.monitorTriggers++;
    this.triggers[monitorId] = (this.triggers[monitorId] as number) + 1;
    if (this.remoteScanner !== undefined) {
      // The Atomics.or above is sequentially consistent: the ring data and
      // write_index the guest published before signalling are visible to a
      // scanner that sees this bit. Only a 0 → 1 transition needs telling:
      // a bit already set has not been scanned yet (the scan clears the
      // bit before it wakes the host), so its scan will find our packet.
      if ((old & mask) === 0) this.remoteScanner(monitorId);
      return;
    }
    const t = this.timers[monitorId];
    // Unconfigured or disarmed: the hypervisor does not watch this entry; the
    // bit just stays set (as on real hardware) until the host configures it.
    if (t === undefined || t.armed) return;
    const armed = Atomics.load(this.words, (this.clientGpa + monitorArmedOffset(group)) >> 2) & mask;
    if (armed === 0) return;
    const faults = this.vm.hypervisor.faults;
    // Fault injection: one length test when no monitor fault is active.
    if (faults.monitorRules.length !== 0) t.arm(this.latencyNs(monitorId) + faults.monitorExtraNs(this.vm));
    else t.arm(this.latencyNs(monitorId));
  }

  /**
   * @internal Threaded mode, host side: the guest sets pending bits from
   * another thread, so `trigger` never runs here. Arms the scan of every
   * configured, armed entry whose pending bit is set and that has no scan
   * in flight — one latency window from now, as `trigger` would have.
   * Returns the number of scans armed.
   */
  watchPending(): number {
    let armedScans = 0;
    const client = this.clientGpa;
    for (let group = 0; group < HV_MONITOR_ID_COUNT / 32; group++) {
      // Atomics.load: pairs with the guest's Atomics.or in `trigger`.
      let bits = Atomics.load(this.words, (client + monitorPendingOffset(group)) >> 2);
      if (bits === 0) continue;
      // Armed bits are the host's own (configure/unconfigure in this thread).
      bits &= Atomics.load(this.words, (client + monitorArmedOffset(group)) >> 2);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= ~(1 << bit);
        const monitorId = group * 32 + bit;
        const t = this.timers[monitorId];
        if (t === undefined || t.armed) continue;
        this.triggers[monitorId] = (this.triggers[monitorId] as number) + 1;
        const faults = this.vm.hypervisor.faults;
        t.arm(this.latencyNs(monitorId) + (faults.monitorRules.length !== 0 ? faults.monitorExtraNs(this.vm) : 0));
        armedScans++;
      }
    }
    return armedScans;
  }

  /** The hypervisor's look at one entry: clear the pending bit and wake the host once. */
  private scan(monitorId: number): void {
    const vm = this.vm;
    const group = monitorId >>> 5;
    const mask = 1 << (monitorId & 31);
    const client = this.clientGpa;
    // Clear before waking: a guest signal racing with the wakeup then sets
    // the bit again and gets its own scan, instead of being erased after
    // the host already looked at the ring.
    const old = Atomics.and(this.words, (client + monitorPendingOffset(group)) >> 2, ~mask);
    const armed = (Atomics.load(this.words, (client + monitorArmedOffset(group)) >> 2) & mask) !== 0;
    const triggers = this.triggers[monitorId] as number;
    this.triggers[monitorId] = 0;
    vm.counters.monitorScans++;
    const cid = this.connectionId(monitorId);
    let wakeup = false;
    if ((old & mask) !== 0) {
      wakeup = armed && vm.hypervisor.monitorWake(vm, cid, monitorId);
      if (!wakeup) vm.counters.monitorDropped++;
    }
    const tracer = vm.hypervisor.sim.tracer;
    if (tracer.wants("monitorScan")) {
      tracer.emit("monitorScan", {
        timeNs: vm.hypervisor.sim.scheduler.now,
        partitionId: vm.id,
        vpIndex: null,
        monitorId,
        connectionId: cid,
        triggers,
        wakeup,
      });
    }
  }
}

function checkMonitorId(monitorId: number): void {
  if (!Number.isInteger(monitorId) || monitorId < 0 || monitorId >= HV_MONITOR_ID_COUNT) {
    throw new InvalidArgumentError("monitorId", monitorId, `must be in [0, ${HV_MONITOR_ID_COUNT}) (4 groups × 32)`);
  }
}
