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
 *   while it handles its own guest's packet.
 * - Per-port statistics ("in" = from the NIC into the switch, "out" = from
 *   the switch to the NIC) and a per-port fault: drop every frame, or each
 *   with a probability drawn from the port's own fork of the seeded RNG.
 *   The fault acts on both directions at that port, like a bad cable.
 * - Capture: every frame that enters the switch (after the ingress fault,
 *   before forwarding) is recorded with its virtual time, for a pcap file.
 */
import type { InjectionToken, DependencyContainer } from "tsyringe";
import { InvalidArgumentError, SIMULATION, token, type Rng, type Simulation } from "../../../core/index.js";
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

export class SwitchPort {
  readonly stats = new SwitchPortStats();
  private faultValue: PortFault | null = null;
  /** @internal */
  attached = true;

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
    this.sw.ingress(this, frame);
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
  private readonly macs = new Map<string, SwitchPort>();
  private nextPortId = 1;
  private captureValue: PcapCapture | null = null;
  /** Frames scheduled for delivery and not yet delivered. */
  private inFlight = 0;

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
  attach(name: string, sink: FrameSink): SwitchPort {
    const id = this.nextPortId++;
    const port = new SwitchPort(this, id, name, sink, this.sim.rng.fork(`switch/${this.name}/port/${id}`));
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

  /** @internal A frame from `from`'s NIC. */
  ingress(from: SwitchPort, frame: Uint8Array): void {
    if (!from.attached) return;
    const s = from.stats;
    s.framesIn++;
    s.bytesIn += frame.length;
    if (frame.length < ETH_HLEN) {
      s.drops.runt++;
      return;
    }
    if (from.faultDrops()) {
      s.drops.fault++;
      return;
    }
    // One private copy per frame: the sender may reuse its buffer at once.
    const copy = frame.slice();
    this.captureValue?.add(this.sim.scheduler.now, copy);
    const src = macKey(copy, 6);
    if (((copy[6] ?? 0) & 1) === 0) this.macs.set(src, from);
    const group = ((copy[0] ?? 0) & 1) !== 0;
    if (!group) {
      const to = this.macs.get(macKey(copy, 0));
      if (to !== undefined) {
        if (to === from) s.drops.filtered++;
        else this.schedule(to, copy);
        return;
      }
    }
    // Broadcast, multicast, unknown unicast: flood to all but the sender.
    for (const p of this.portList) if (p !== from) this.schedule(p, copy);
  }

  private schedule(to: SwitchPort, frame: Uint8Array): void {
    this.inFlight++;
    this.sim.scheduler.schedule(
      this.latencyNs,
      () => {
        this.inFlight--;
        this.deliver(to, frame);
      },
      `switch ${this.name} → ${to.name}`,
    );
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
