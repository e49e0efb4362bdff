/**
 * A minimal IP host on a virtual-switch port, with no VM behind it: it
 * answers ARP requests for its address, ICMP echo requests to it, and
 * echoes UDP datagrams sent to it back to their sender (ports swapped,
 * payload unchanged). Frames it cannot parse, or that are not for it, are
 * counted and ignored.
 *
 * Threaded mode uses it as the far end of a guest's NIC: one VM per
 * `ThreadedSystem`, so the switch's second port lives in the host worker,
 * put there by `networkResponderSetup` (a `HostSetup` hook named in
 * `ThreadedSystemOptions.hostSetup`). It works the same on one thread.
 *
 * Every frame it sends also goes into `digest`: the sum, modulo 2^52, of
 * each frame's FNV-1a hash — order-independent, so a receiver can prove it
 * got exactly the bytes built here without the frames crossing threads.
 */
import { InvalidArgumentError, type HostSetupContext, type HostSetupResult } from "../../../core/index.js";
import {
  ARPOP_REQUEST,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  buildArpReplyFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  formatMac,
  parseFrame,
  parseIpv4Address,
  parseMac,
  type ParsedFrame,
} from "../protocol/index.js";
import { NETWORK_SWITCHES, type SwitchPort, type VirtualSwitch } from "./virtual-switch.js";

export interface IpResponderOptions {
  /** The responder's MAC (unicast). */
  readonly mac: string;
  /** The responder's IPv4 address (dotted quad). */
  readonly ip: string;
  /** Echo UDP datagrams sent to `ip` (default true). */
  readonly udpEcho?: boolean;
}

export class IpResponderCounters {
  framesReceived = 0;
  arpReplies = 0;
  icmpEchoReplies = 0;
  udpEchoes = 0;
  /** Frames that parsed but were not for this host (other address, other protocol). */
  ignored = 0;
  /** Frames a layer of which failed to parse. */
  malformed = 0;
  /** Frames sent (= arpReplies + icmpEchoReplies + udpEchoes). */
  framesSent = 0;
  bytesSent = 0;
  /** Order-independent digest of every frame sent (see `frameDigest`). */
  digest = 0;
}

/** FNV-1a (32-bit) of a frame: one term of `IpResponderCounters.digest`. */
export function frameDigest(frame: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < frame.length; i++) h = Math.imul(h ^ (frame[i] as number), 0x01000193) >>> 0;
  return h;
}

/** Adds a frame's `frameDigest` to a running digest (sum modulo 2^52, exact in a double). */
export function addFrameDigest(digest: number, frame: Uint8Array): number {
  return (digest + frameDigest(frame)) % 2 ** 52;
}

export class IpResponder {
  readonly counters = new IpResponderCounters();
  readonly port: SwitchPort;
  readonly mac: string;
  readonly ip: string;
  private readonly udpEcho: boolean;

  constructor(sw: VirtualSwitch, options: IpResponderOptions) {
    const macBytes = parseMac(options.mac);
    if (((macBytes[0] as number) & 1) !== 0) throw new InvalidArgumentError("responder mac", options.mac, "must be a unicast address (I/G bit clear)");
    parseIpv4Address(options.ip);
    this.mac = formatMac(macBytes);
    this.ip = options.ip;
    this.udpEcho = options.udpEcho ?? true;
    this.port = sw.attach(`responder/${this.mac}`, (f) => this.receive(f), { synchronous: true });
  }

  private receive(frame: Uint8Array): void {
    const c = this.counters;
    c.framesReceived++;
    let f: ParsedFrame;
    try {
      f = parseFrame(frame);
    } catch {
      c.malformed++;
      return;
    }
    const reply = this.answer(f);
    if (reply === null) {
      c.ignored++;
      return;
    }
    c.framesSent++;
    c.bytesSent += reply.length;
    c.digest = addFrameDigest(c.digest, reply);
    this.port.sendOwned(reply);
  }

  private answer(f: ParsedFrame): Uint8Array | null {
    const c = this.counters;
    if (f.arp !== undefined) {
      if (f.arp.op !== ARPOP_REQUEST || f.arp.targetIp !== this.ip) return null;
      c.arpReplies++;
      return buildArpReplyFrame(f.arp, this.mac);
    }
    const ip = f.ipv4;
    if (ip === undefined || ip.dst !== this.ip || f.ethernet.vlan !== undefined) return null;
    const addresses = { srcMac: this.mac, dstMac: f.ethernet.src, srcIp: this.ip, dstIp: ip.src };
    if (f.icmp !== undefined && f.icmp.type === ICMP_ECHO) {
      c.icmpEchoReplies++;
      return buildIcmpEchoFrame({ ...addresses, type: ICMP_ECHOREPLY, identifier: f.icmp.identifier, sequence: f.icmp.sequence, data: f.icmp.data });
    }
    if (f.udp !== undefined && this.udpEcho) {
      c.udpEchoes++;
      return buildUdpFrame({ ...addresses, srcPort: f.udp.dstPort, dstPort: f.udp.srcPort, payload: f.udp.payload });
    }
    return null;
  }

  /** Unplugs the responder from its switch. */
  detach(): void {
    this.port.detach();
  }
}

/** `networkResponderSetup`'s config: the switch (as netvsp's `config.switch`) and the responder's addresses. */
export interface NetworkResponderSetupConfig extends IpResponderOptions {
  /** Switch name in the host's `SwitchRegistry` (default "default", like netvsp). */
  readonly switch?: string;
  /**
   * Capture every frame the switch forwards to this pcap file, written by
   * the host thread when it stops (timestamps: the host thread's virtual
   * time). A relative path is taken from the process's working directory.
   */
  readonly pcap?: string;
}

const SETUP_KEYS = new Set(["switch", "mac", "ip", "udpEcho", "pcap"]);

/** Validates `networkResponderSetup`'s config (it crossed a thread: untrusted shape). */
export function validateResponderSetupConfig(input: unknown): NetworkResponderSetupConfig & { readonly switch: string } {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new InvalidArgumentError("responder config", String(input), "must be an object {mac, ip, switch?, udpEcho?, pcap?}");
  }
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!SETUP_KEYS.has(k)) throw new InvalidArgumentError("responder config key", k, `is not one of ${[...SETUP_KEYS].join(", ")}`);
  const sw = o["switch"] ?? "default";
  if (typeof sw !== "string" || sw.length === 0) throw new InvalidArgumentError("responder config.switch", String(sw), "must be a non-empty string");
  const mac = o["mac"];
  if (typeof mac !== "string") throw new InvalidArgumentError("responder config.mac", String(mac), "must be a MAC string like 00:15:5d:00:00:fe");
  const ip = o["ip"];
  if (typeof ip !== "string") throw new InvalidArgumentError("responder config.ip", String(ip), "must be a dotted-quad IPv4 address");
  const udpEcho = o["udpEcho"] ?? true;
  if (typeof udpEcho !== "boolean") throw new InvalidArgumentError("responder config.udpEcho", String(udpEcho), "must be a boolean");
  const pcap = o["pcap"];
  if (pcap !== undefined && (typeof pcap !== "string" || pcap.length === 0)) {
    throw new InvalidArgumentError("responder config.pcap", String(pcap), "must be a non-empty file path");
  }
  return { switch: sw, mac, ip, udpEcho, ...(pcap !== undefined ? { pcap } : {}) };
}

/**
 * A `HostSetup` hook for threaded mode (`ThreadedSystemOptions.hostSetup`,
 * export name "networkResponderSetup"): attaches an `IpResponder` to the
 * named switch of the host thread (the network plugin must be among the
 * host plugins); its counters come back as `HostReportMessage.setup`.
 * With `config.pcap` the switch captures every frame from the start, and
 * the report, made when the host thread stops, writes the file and names
 * it with its frame count (`pcap: {path, frames}`).
 */
export function networkResponderSetup(ctx: HostSetupContext): HostSetupResult {
  const config = validateResponderSetupConfig(ctx.config);
  if (!ctx.root.isRegistered(NETWORK_SWITCHES, true)) {
    throw new InvalidArgumentError("hostPlugins", "networkPlugin", "must be loaded in the host thread for networkResponderSetup (no SwitchRegistry)");
  }
  const sw = ctx.root.resolve(NETWORK_SWITCHES).get(config.switch);
  const capture = config.pcap !== undefined ? sw.startCapture() : null;
  const responder = new IpResponder(sw, config);
  return {
    report: () => {
      let pcap: { path: string; frames: number } | undefined;
      if (capture !== null && config.pcap !== undefined) {
        sw.stopCapture();
        capture.writeFile(config.pcap);
        pcap = { path: config.pcap, frames: capture.count };
      }
      return {
        ...responder.counters,
        switchPorts: sw.ports().map((p) => ({ name: p.name, ...p.stats, drops: { ...p.stats.drops } })),
        ...(pcap !== undefined ? { pcap } : {}),
      };
    },
    dispose: () => responder.detach(),
  };
}
