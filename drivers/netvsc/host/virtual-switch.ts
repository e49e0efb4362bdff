/**
 * The virtual switch behind every netvsp NIC (issue 6 "Virtual switch";
 * storvsc-netvsc.md §14 host architecture): a learning Ethernet (L2)
 * switch with one port per NIC, across any number of VMs.
 *
 * - Learning: the source MAC of every frame that enters a port is bound to
 *   that port (a unicast source only; the newest port wins, so a NIC that
 *   moves is followed).
 * - Forwarding: a group address (I/G bit set: broadcast and multicast) and
 *   an unknown unicast are flooded to every port but the one the frame came
 *   in on; a known unicast goes to its port only; a known unicast whose port
 *   is the sender's is filtered (it is already on that segment).
 * - Delivery happens `latencyNs` of virtual time later, in a scheduler
 *   event — never inside the sender's call, so a NIC is never re-entered
 *   while it handles its own guest's packet. Frames a NIC sends in one
 *   burst (`beginBurst`/`endBurst`: the frames of one transmit packet) to
 *   ports whose sink is `synchronous` share one event: they are due at the
 *   same instant in consecutive event order anyway, and such a sink starts
 *   no promise work that could run between two deliveries, so nothing can
 *   tell them apart — except the scheduler's count of events run.
 * - Per-port statistics ("in" = from the NIC into the switch, "out" = from
 *   the switch to the NIC) and a per-port fault: drop every frame, or each
 *   with a probability drawn from the port's own fork of the seeded RNG.
 *   The fault acts on both directions at that port, like a bad cable.
 * - Capture: every frame that enters the switch (after the ingress fault,
 *   before forwarding) is recorded with its virtual time, for a pcap file.
 */
import type { InjectionToken, DependencyContainer } from "tsyringe";
import { InvalidArgumentError, SIMULATION, token, type Rng, type Simulation } from "../../../core/index.js";
import { FrameArena } from "../protocol/frame-arena.js";
import { PcapCapture } from "./pcap.js";

/** Ethernet header length: two MACs and the EtherType. */
const ETH_HLEN = 14;

/** A port's fault: drop every frame, or each with probability `dropProbability` (seeded). */
export interface PortFault {
  readonly dropAll?: boolean;
  readonly dropProbability?: number;
}

export class SwitchPortStats {
  /** Frames/bytes the NIC sent into the switch. */
  framesIn = 0;
  bytesIn = 0;
  /** Frames/bytes the switch delivered to the NIC. */
  framesOut = 0;
  bytesOut = 0;
  /** Frames lost at this port, by reason. */
  readonly drops = {
    /** Ingress or egress fault. */
    fault: 0,
    /** Shorter than an Ethernet header. */
    runt: 0,
    /** Known unicast whose port is the sender's own. */
    filtered: 0,
    /** The port was detached before a frame in flight reached it. */
    detached: 0,
  };
}

/** Receives the frames the switch delivers to a port (a private copy shared by all receivers: do not modify). */
export type FrameSink = (frame: Uint8Array) => void;

export interface AttachOptions {
  /**
   * The sink does all its work in the call and starts no promise work
   * (it may schedule events). Deliveries to it from one burst may then
   * share a scheduler event (see the file comment). Default false.
   */
  readonly synchronous?: boolean;
}

/** Deliveries due together in one scheduler event: the i-th frame goes to the i-th port. */
class DeliveryGroup {
  readonly ports: SwitchPort[] = [];
  readonly frames: Uint8Array[] = [];
}

export class SwitchPort {
  readonly stats = new SwitchPortStats();
  private faultValue: PortFault | null = null;
  /** @internal */
  attached = true;
  /** @internal Names the delivery events to this port (in errors). */
  deliverLabel = "";
  /** @internal See `AttachOptions.synchronous`. */
  synchronous = false;
  /** @internal The source last learned on this port and the switch's table version then. */
  learnedVersion = -1;
  learnedHi = 0;
  learnedLo = 0;

  /** @internal Created by `VirtualSwitch.attach`. */
  constructor(
    readonly sw: VirtualSwitch,
    readonly id: number,
    readonly name: string,
    /** @internal */
    readonly sink: FrameSink,
    /** @internal */
    readonly rng: Rng,
  ) {}

  /** Sends a frame into the switch from this port's NIC. */
  send(frame: Uint8Array): void {
    this.sw.ingress(this, frame, 0, frame.length);
  }

  /** Sends `buf[offset, offset + length)` as one frame (the switch copies it at once, like `send`). */
  sendFrom(buf: Uint8Array, offset: number, length: number): void {
    this.sw.ingress(this, buf, offset, length);
  }

  /**
   * Sends a frame that is already a private copy handed over for good:
   * nobody writes its bytes again. The switch keeps it as its own copy.
   */
  sendOwned(frame: Uint8Array): void {
    this.sw.ingress(this, frame, 0, frame.length, true);
  }

  /**
   * Starts a burst: the frames sent until `endBurst` (in the same call,
   * nothing else scheduled in between) may share delivery events.
   */
  beginBurst(): void {
    this.sw.beginBurst();
  }

  endBurst(): void {
    this.sw.endBurst();
  }

  get fault(): PortFault | null {
    return this.faultValue;
  }

  /** Sets (or with null clears) the port's fault. */
  setFault(fault: PortFault | null): void {
    if (fault !== null && fault.dropProbability !== undefined) {
      const p = fault.dropProbability;
      if (!(p >= 0 && p <= 1)) throw new InvalidArgumentError("dropProbability", p, "must be in [0, 1]");
    }
    this.faultValue = fault;
  }

  /** Detaches the port: frames in flight to it are dropped, its MACs are forgotten. */
  detach(): void {
    this.sw.detach(this);
  }

  /** @internal True when the fault says to drop this frame (draws from the port's RNG). */
  faultDrops(): boolean {
    const f = this.faultValue;
    if (f === null) return false;
    if (f.dropAll === true) return true;
    const p = f.dropProbability ?? 0;
    return p > 0 && this.rng.chance(p);
  }
}

export interface VirtualSwitchOptions {
  /** Virtual time from a frame entering the switch to its delivery, ns (default 1000). */
  readonly latencyNs?: number;
}

export const VIRTUAL_SWITCH_DEFAULT_LATENCY_NS = 1000;

export class VirtualSwitch {
  readonly latencyNs: number;
  private readonly portList: SwitchPort[] = [];
  /** The learned table as the API shows it; changed only when a binding is new or moves. */
  private readonly macs = new Map<string, SwitchPort>();
  /** The same table for forwarding: high 24 bits → low 24 bits → port (small integers, no boxed 48-bit keys). */
  private readonly macPorts = new Map<number, Map<number, SwitchPort>>();
  /** Bumped whenever `macPorts` changes; the one-entry lookup cache below is valid for one value. */
  private tableVersion = 0;
  private cachedVersion = -1;
  private cachedHi = 0;
  private cachedLo = 0;
  private cachedPort: SwitchPort | undefined = undefined;
  private nextPortId = 1;
  private captureValue: PcapCapture | null = null;
  /** Frames scheduled for delivery and not yet delivered. */
  private inFlight = 0;
  /** Where the switch's private copies of frames live. */
  private readonly copies = new FrameArena();
  /** Inside `beginBurst`/`endBurst`. */
  private inBurst = false;
  /** The open group of the burst: scheduled at its first delivery, filled until a delivery to another kind of sink or the burst's end. */
  private group: DeliveryGroup | null = null;
  /** Groups delivered, kept for reuse. */
  private readonly spareGroups: DeliveryGroup[] = [];

  constructor(
    readonly name: string,
    private readonly sim: Simulation,
    options: VirtualSwitchOptions = {},
  ) {
    const latency = options.latencyNs ?? VIRTUAL_SWITCH_DEFAULT_LATENCY_NS;
    if (!Number.isInteger(latency) || latency < 0) throw new InvalidArgumentError("latencyNs", latency, "must be a non-negative integer");
    this.latencyNs = latency;
  }

  /** Attaches a NIC: frames for it go to `sink`. */
  attach(name: string, sink: FrameSink, options: AttachOptions = {}): SwitchPort {
    const id = this.nextPortId++;
    const port = new SwitchPort(this, id, name, sink, this.sim.rng.fork(`switch/${this.name}/port/${id}`));
    port.deliverLabel = `switch ${this.name} → ${name}`;
    port.synchronous = options.synchronous === true;
    this.portList.push(port);
    return port;
  }

  /** @internal See `SwitchPort.detach`. */
  detach(port: SwitchPort): void {
    if (!port.attached) return;
    port.attached = false;
    const i = this.portList.indexOf(port);
    if (i >= 0) this.portList.splice(i, 1);
    for (const [mac, p] of this.macs) if (p === port) this.macs.delete(mac);
    for (const low of this.macPorts.values()) for (const [mac, p] of low) if (p === port) low.delete(mac);
    this.tableVersion++;
  }

  /** Attached ports, in attach order. */
  ports(): readonly SwitchPort[] {
    return this.portList;
  }

  /** The learned table: MAC ("aa:bb:cc:dd:ee:ff") → port. */
  macTable(): ReadonlyMap<string, SwitchPort> {
    return this.macs;
  }

  /** Frames entered but not yet delivered. */
  get framesInFlight(): number {
    return this.inFlight;
  }

  // ---- capture ----------------------------------------------------------------

  /** Starts capturing every frame (in memory; streamed to `path` on `flushPcap()` when given). */
  startCapture(options: { readonly path?: string } = {}): PcapCapture {
    this.captureValue = new PcapCapture(options.path ?? null);
    return this.captureValue;
  }

  /** Stops capturing; the capture so far stays readable. */
  stopCapture(): PcapCapture | null {
    const c = this.captureValue;
    c?.flush();
    this.captureValue = null;
    return c;
  }

  get capture(): PcapCapture | null {
    return this.captureValue;
  }

  /** The capture as a pcap file (an empty capture if none was started). */
  pcapBytes(): Uint8Array {
    return (this.captureValue ?? new PcapCapture()).bytes();
  }

  /** Writes the capture to `path` (sync fs). */
  writePcap(path: string): void {
    (this.captureValue ?? new PcapCapture()).writeFile(path);
  }

  /** Appends the frames captured since the last flush to the streaming path. */
  flushPcap(): void {
    this.captureValue?.flush();
  }

  // ---- forwarding ---------------------------------------------------------------

  /** @internal A frame from `from`'s NIC: `buf[offset, offset + length)`; `owned`: `buf` is that frame, a copy handed over. */
  ingress(from: SwitchPort, buf: Uint8Array, offset: number, length: number, owned = false): void {
    if (!from.attached) return;
    const s = from.stats;
    s.framesIn++;
    s.bytesIn += length;
    if (length < ETH_HLEN) {
      s.drops.runt++;
      return;
    }
    if (from.faultDrops()) {
      s.drops.fault++;
      return;
    }
    // One private copy per frame: the sender may reuse its buffer at once.
    const copy = owned ? buf : this.copies.copy(buf, offset, length);
    this.captureValue?.add(this.sim.scheduler.now, copy);
    if (((copy[6] as number) & 1) === 0) this.learn(from, mac24(copy, 6), mac24(copy, 9), copy);
    const group = ((copy[0] as number) & 1) !== 0;
    if (!group) {
      const to = this.lookup(mac24(copy, 0), mac24(copy, 3));
      if (to !== undefined) {
        if (to === from) s.drops.filtered++;
        else this.schedule(to, copy);
        return;
      }
    }
    // Broadcast, multicast, unknown unicast: flood to all but the sender.
    for (const p of this.portList) if (p !== from) this.schedule(p, copy);
  }

  /** Binds a unicast source to `from` (new, or moved: the newest port wins). */
  private learn(from: SwitchPort, hi: number, lo: number, frame: Uint8Array): void {
    if (from.learnedVersion === this.tableVersion && from.learnedHi === hi && from.learnedLo === lo) return;
    let low = this.macPorts.get(hi);
    if (low === undefined) this.macPorts.set(hi, (low = new Map()));
    if (low.get(lo) !== from) {
      low.set(lo, from);
      this.macs.set(macKey(frame, 6), from);
      this.tableVersion++;
    }
    // Until the table changes, this source on this port needs no look-up.
    from.learnedVersion = this.tableVersion;
    from.learnedHi = hi;
    from.learnedLo = lo;
  }

  private lookup(hi: number, lo: number): SwitchPort | undefined {
    if (this.cachedVersion === this.tableVersion && this.cachedHi === hi && this.cachedLo === lo) return this.cachedPort;
    const to = this.macPorts.get(hi)?.get(lo);
    this.cachedVersion = this.tableVersion;
    this.cachedHi = hi;
    this.cachedLo = lo;
    this.cachedPort = to;
    return to;
  }

  /** @internal See `SwitchPort.beginBurst`. */
  beginBurst(): void {
    this.inBurst = true;
  }

  /** @internal */
  endBurst(): void {
    this.inBurst = false;
    this.group = null;
  }

  private schedule(to: SwitchPort, frame: Uint8Array): void {
    if (this.inBurst && to.synchronous) {
      this.inFlight++;
      let g = this.group;
      if (g === null) {
        // Scheduled now, at the place in event order its first frame's own event would have had.
        g = this.group = this.spareGroups.pop() ?? new DeliveryGroup();
        const group = g;
        this.sim.scheduler.schedule(this.latencyNs, () => this.deliverGroup(group), to.deliverLabel);
      }
      g.ports.push(to);
      g.frames.push(frame);
      return;
    }
    // Any other delivery keeps its own event, after the group so far; later frames start a new group.
    this.group = null;
    this.inFlight++;
    this.sim.scheduler.schedule(
      this.latencyNs,
      () => {
        this.inFlight--;
        this.deliver(to, frame);
      },
      to.deliverLabel,
    );
  }

  private deliverGroup(g: DeliveryGroup): void {
    const { ports, frames } = g;
    for (let i = 0; i < ports.length; i++) {
      const to = ports[i] as SwitchPort;
      this.inFlight--;
      try {
        this.deliver(to, frames[i] as Uint8Array);
      } catch (e) {
        // As if the frame had its own event: the error names that event, the other frames still go.
        this.sim.scheduler.reportError(to.deliverLabel, e);
      }
    }
    ports.length = 0;
    frames.length = 0;
    this.spareGroups.push(g);
  }

  private deliver(to: SwitchPort, frame: Uint8Array): void {
    const s = to.stats;
    if (!to.attached) {
      s.drops.detached++;
      return;
    }
    if (to.faultDrops()) {
      s.drops.fault++;
      return;
    }
    s.framesOut++;
    s.bytesOut += frame.length;
    to.sink(frame);
  }
}

/** Three address bytes at `at` as one integer. */
function mac24(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 16) | ((b[at + 1] as number) << 8) | (b[at + 2] as number);
}

function macKey(b: Uint8Array, at: number): string {
  let s = "";
  for (let i = 0; i < 6; i++) {
    const x = b[at + i] ?? 0;
    s += (i === 0 ? "" : ":") + (x < 16 ? "0" : "") + x.toString(16);
  }
  return s;
}

/** The switches of one simulation, by name; a switch is created the first time it is named. */
export class SwitchRegistry {
  private readonly switches = new Map<string, VirtualSwitch>();

  constructor(
    private readonly sim: Simulation,
    private readonly defaults: VirtualSwitchOptions = {},
  ) {}

  /** The switch called `name`, created on first use (with `options`, or the registry's defaults). */
  get(name: string, options?: VirtualSwitchOptions): VirtualSwitch {
    let sw = this.switches.get(name);
    if (sw === undefined) {
      sw = new VirtualSwitch(name, this.sim, options ?? this.defaults);
      this.switches.set(name, sw);
    }
    return sw;
  }

  /** The switch called `name` if it exists. */
  find(name: string): VirtualSwitch | undefined {
    return this.switches.get(name);
  }

  names(): string[] {
    return [...this.switches.keys()];
  }
}

/** The simulation's `SwitchRegistry`, registered once in the root container by the network plugin. */
export const NETWORK_SWITCHES: InjectionToken<SwitchRegistry> = token<SwitchRegistry>("vmbus.netvsc.NetworkSwitches");

/**
 * Registers a `SwitchRegistry` for the simulation of `container` (the root a
 * plugin manifest is given; SIMULATION is already there). Idempotent.
 */
export function registerNetworkSwitches(container: DependencyContainer, defaults: VirtualSwitchOptions = {}): void {
  if (container.isRegistered(NETWORK_SWITCHES, false)) return;
  container.registerInstance(NETWORK_SWITCHES, new SwitchRegistry(container.resolve(SIMULATION), defaults));
}
