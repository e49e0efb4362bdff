/**
 * The network side of `vmbus-sim run`: a minimal IP host on every NIC (it
 * answers ARP for its address and ICMP echo, as a guest kernel would), and
 * the `ping` and `udp` workloads between two VMs, measured in virtual time.
 *
 * Addresses: the scenario has no IP field, so the k-th NIC of the VM at
 * index i (in `vms`) gets 10.0.k.(i+1) — the first NIC of the first VM is
 * 10.0.0.1, of the second 10.0.0.2, and so on (254 VMs at most).
 *
 * ping: one ARP request (retried up to 3 times, 100 ms apart), then `count`
 * ICMP echo requests of 56 data bytes, one at a time: the next request goes
 * out when the reply to the previous one arrived, or after 100 ms of virtual
 * time without one (a loss) — ping -f with one request in flight. RTT runs
 * from handing the request to the sending vCPU to the reply's arrival.
 *
 * udp: ARP as above, then `count` datagrams of `bytes` payload bytes from
 * one sender (vCPU 0) with at most 64 sends in flight (a send is in flight
 * until the host completes it). Each payload starts with its sequence
 * number (big-endian u32, when bytes ≥ 4; the IPv4 identification carries
 * it too) and is otherwise seeded random; the receiver counts datagrams,
 * those in order (a sequence number above every one before) and those
 * intact (length and FNV-1a checksum equal to what was sent). Throughput is
 * payload bits received intact over the virtual time from the first send to
 * the last arrival. Both workloads stop issuing at the scenario's duration.
 */
import type { EventHandle, Rng, Scheduler, Vcpu } from "../core/index.js";
import {
  ARPOP_REPLY,
  ARPOP_REQUEST,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  buildArpReplyFrame,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  parseFrame,
  type NetvscDriver,
  type ParsedFrame,
} from "../drivers/netvsc/index.js";
import type { RequestLedger, RequestTally } from "./ledger.js";
import type { PingWorkload, UdpWorkload } from "./scenario.js";

export const ARP_TIMEOUT_NS = 100_000_000;
export const ARP_TRIES = 3;
export const PING_TIMEOUT_NS = 100_000_000;
export const PING_DATA_BYTES = 56;
export const UDP_WINDOW = 64;
/** How long after its last send a UDP workload waits for stragglers. */
export const UDP_DRAIN_NS = 100_000_000;

/** The address of the k-th NIC of the VM at index `vmIndex`. */
export function nicAddress(vmIndex: number, nicIndex: number): string {
  return `10.0.${nicIndex}.${vmIndex + 1}`;
}

/** A promise settled by `p`, or `null` after `ns` of virtual time. */
function withTimeout<T>(sched: Scheduler, p: Promise<T>, ns: number, label: string): Promise<T | null> {
  return new Promise<T | null>((resolve, reject) => {
    const h: EventHandle = sched.schedule(ns, () => resolve(null), label);
    p.then(
      (v) => {
        h.cancel();
        resolve(v);
      },
      (e: unknown) => {
        h.cancel();
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

type UdpListener = (f: ParsedFrame, timeNs: number) => void;

/** A minimal IP host on one NIC: ARP (answer, learn, resolve) and ICMP echo; UDP by port to listeners. */
export class IpHost {
  readonly arpTable = new Map<string, string>();
  readonly counters = { arpAnswered: 0, echoAnswered: 0, malformed: 0, unhandled: 0 };
  private arpWaiters = new Map<string, ((mac: string) => void)[]>();
  private echoWaiters = new Map<string, (f: ParsedFrame) => void>();
  private udpListeners = new Map<number, UdpListener>();

  constructor(
    readonly vmName: string,
    readonly nic: NetvscDriver,
    readonly ip: string,
    readonly switchName: string,
    private readonly sched: Scheduler,
  ) {
    nic.onReceive((frame) => this.receive(frame));
  }

  get mac(): string {
    return this.nic.mac;
  }

  private receive(frame: Uint8Array): void {
    let f: ParsedFrame;
    try {
      f = parseFrame(frame);
    } catch {
      this.counters.malformed++;
      return;
    }
    if (f.arp !== undefined) {
      const a = f.arp;
      if (a.targetIp !== this.ip) return;
      this.learn(a.senderIp, a.senderMac);
      if (a.op === ARPOP_REQUEST) {
        this.counters.arpAnswered++;
        void this.nic.send(buildArpReplyFrame(a, this.mac)).catch(() => undefined);
      }
      return;
    }
    if (f.ipv4 === undefined || f.ipv4.dst !== this.ip) return;
    if (f.icmp !== undefined) {
      const m = f.icmp;
      if (m.type === ICMP_ECHO) {
        this.counters.echoAnswered++;
        const reply = buildIcmpEchoFrame({
          srcMac: this.mac,
          dstMac: f.ethernet.src,
          srcIp: this.ip,
          dstIp: f.ipv4.src,
          type: ICMP_ECHOREPLY,
          identifier: m.identifier,
          sequence: m.sequence,
          data: m.data,
        });
        void this.nic.send(reply).catch(() => undefined);
      } else if (m.type === ICMP_ECHOREPLY) {
        const key = `${m.identifier}:${m.sequence}`;
        const w = this.echoWaiters.get(key);
        if (w === undefined) this.counters.unhandled++;
        else {
          this.echoWaiters.delete(key);
          w(f);
        }
      }
      return;
    }
    if (f.udp !== undefined) {
      const l = this.udpListeners.get(f.udp.dstPort);
      if (l === undefined) this.counters.unhandled++;
      else l(f, this.sched.now);
    }
  }

  private learn(ip: string, mac: string): void {
    this.arpTable.set(ip, mac);
    const ws = this.arpWaiters.get(ip);
    if (ws === undefined) return;
    this.arpWaiters.delete(ip);
    for (const w of ws) w(mac);
  }

  /**
   * The MAC of `ip`: from the table, or by ARP requests sent from `vcpu`;
   * null when nobody answers. With a ledger, a request that fails or never
   * completes (a fault) counts as an unanswered try instead of ending the run.
   */
  async resolve(ip: string, vcpu: Vcpu, ledger?: RequestLedger): Promise<string | null> {
    for (let attempt = 0; attempt < ARP_TRIES; attempt++) {
      const known = this.arpTable.get(ip);
      if (known !== undefined) return known;
      const answered = new Promise<string>((res) => this.arpWaiters.set(ip, [...(this.arpWaiters.get(ip) ?? []), res]));
      const sent = vcpu.issue(() => this.nic.send(buildArpRequestFrame(this.mac, this.ip, ip)), "arp request");
      if (ledger === undefined) await sent;
      else if ((await ledger.guard(sent)).status === "lost") return this.arpTable.get(ip) ?? null;
      const mac = await withTimeout(this.sched, answered, ARP_TIMEOUT_NS, "arp timeout");
      if (mac !== null) return mac;
    }
    return this.arpTable.get(ip) ?? null;
  }

  /** Resolves with the echo reply (identifier, sequence) or null after `timeoutNs`. */
  expectEchoReply(identifier: number, sequence: number, timeoutNs: number): Promise<ParsedFrame | null> {
    const key = `${identifier}:${sequence}`;
    const p = new Promise<ParsedFrame>((res) => this.echoWaiters.set(key, res));
    return withTimeout(this.sched, p, timeoutNs, "ping timeout").then((f) => {
      if (f === null) this.echoWaiters.delete(key);
      return f;
    });
  }

  listenUdp(port: number, l: UdpListener): () => void {
    this.udpListeners.set(port, l);
    return () => this.udpListeners.delete(port);
  }
}

// ---------------------------------------------------------------------------

export interface PingResult {
  readonly workload: number;
  readonly from: string;
  readonly to: string;
  readonly fromIp: string;
  readonly toIp: string;
  /** Virtual µs from the first ARP request to its reply (0 when the address was already known). */
  readonly arpUs: number;
  readonly arpResolved: boolean;
  readonly count: number;
  readonly sent: number;
  readonly replies: number;
  readonly lost: number;
  /** Replies whose data differed from the request's. */
  readonly corrupt: number;
  /** Round-trip times in µs of virtual time (one per reply, in sequence order). */
  readonly rttUs: { readonly min: number; readonly avg: number; readonly max: number; readonly all: readonly number[] };
  /** Echo requests by outcome: completed = answered; failed = the send failed (by error type) or NO_REPLY; lost = the send never settled. */
  readonly requests: RequestTally;
}

export interface UdpResult {
  readonly workload: number;
  readonly from: string;
  readonly to: string;
  readonly fromIp: string;
  readonly toIp: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly bytes: number;
  readonly count: number;
  readonly sent: number;
  readonly received: number;
  readonly inOrder: number;
  readonly intact: number;
  readonly lost: number;
  /** Sends the NIC refused or failed. */
  readonly sendErrors: number;
  /** Virtual µs from the first send to the last arrival. */
  readonly elapsedUs: number;
  /** Intact payload bits per second of virtual time, in Mbit/s. */
  readonly mbitPerSec: number;
  readonly framesPerSec: number;
  /** Datagram sends by outcome (a send completes when the host took the frame; arrival is `received`). */
  readonly requests: RequestTally;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export async function runPing(
  index: number,
  w: PingWorkload,
  src: IpHost,
  dst: IpHost,
  vcpu: Vcpu,
  sched: Scheduler,
  endAt: number,
  ledger: RequestLedger,
  progress: (f: number) => void,
): Promise<PingResult> {
  const t0 = sched.now;
  const mac = await src.resolve(dst.ip, vcpu, ledger);
  const arpUs = round3((sched.now - t0) / 1000);
  const identifier = (0x4000 + index) & 0xffff;
  const rtts: number[] = [];
  let sent = 0;
  let corrupt = 0;
  if (mac !== null) {
    for (let seq = 1; seq <= w.count && sched.now < endAt; seq++) {
      const data = Uint8Array.from({ length: PING_DATA_BYTES }, (_, i) => (i + seq * 13) & 0xff);
      const frame = buildIcmpEchoFrame({ srcMac: src.mac, dstMac: mac, srcIp: src.ip, dstIp: dst.ip, type: ICMP_ECHO, identifier, sequence: seq & 0xffff, data });
      const reply = src.expectEchoReply(identifier, seq & 0xffff, PING_TIMEOUT_NS);
      const start = sched.now;
      sent++;
      const s = await ledger.guard(vcpu.issue(() => src.nic.send(frame), "ping"));
      if (s.status !== "completed") {
        ledger.count(s);
        // The reply can still come (the frame may have left); wait for it or its timeout.
        await reply;
        if (s.status === "lost") break;
        continue;
      }
      const f = await reply;
      if (f !== null) {
        rtts.push(sched.now - start);
        const got = f.icmp?.data;
        if (got === undefined || got.length !== data.length || got.some((b, i) => b !== data[i])) corrupt++;
        ledger.count(s);
      } else ledger.countFailure("NO_REPLY");
      progress(seq / w.count);
    }
  }
  progress(1);
  const us = rtts.map((x) => round3(x / 1000));
  return {
    workload: index,
    from: w.from,
    to: w.to,
    fromIp: src.ip,
    toIp: dst.ip,
    arpUs,
    arpResolved: mac !== null,
    count: w.count,
    sent,
    replies: rtts.length,
    lost: sent - rtts.length,
    corrupt,
    rttUs: {
      min: us.length === 0 ? 0 : Math.min(...us),
      avg: us.length === 0 ? 0 : round3(us.reduce((a, b) => a + b, 0) / us.length),
      max: us.length === 0 ? 0 : Math.max(...us),
      all: us,
    },
    requests: ledger.tally(),
  };
}

/** FNV-1a, 32 bits. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

function udpPayload(rng: Rng, seq: number, bytes: number): Uint8Array {
  const p = rng.bytes(bytes);
  if (bytes >= 4) new DataView(p.buffer, p.byteOffset, p.byteLength).setUint32(0, seq >>> 0, false);
  return p;
}

export async function runUdp(
  index: number,
  w: UdpWorkload,
  src: IpHost,
  dst: IpHost,
  vcpu: Vcpu,
  sched: Scheduler,
  rng: Rng,
  endAt: number,
  ledger: RequestLedger,
  progress: (f: number) => void,
): Promise<UdpResult> {
  const srcPort = 40000 + index;
  const dstPort = 5001 + index;
  const sums: number[] = [];
  let received = 0;
  let inOrder = 0;
  let intact = 0;
  let lastSeq = -1;
  let lastArrival = 0;
  let onArrival: (() => void) | null = null;
  const stop = dst.listenUdp(dstPort, (f, now) => {
    const u = f.udp;
    if (u === undefined || f.ipv4?.src !== src.ip || u.srcPort !== srcPort) return;
    received++;
    lastArrival = now;
    let seq: number;
    if (u.payload.length >= 4) seq = new DataView(u.payload.buffer, u.payload.byteOffset, u.payload.byteLength).getUint32(0, false);
    else {
      // Too short to carry it: the IPv4 identification has its low 16 bits.
      const id = f.ipv4.identification;
      seq = lastSeq + 1 + ((id - ((lastSeq + 1) & 0xffff)) & 0xffff);
    }
    if (seq > lastSeq) {
      inOrder++;
      lastSeq = seq;
    }
    if (u.payload.length === w.bytes && sums[seq] === fnv1a(u.payload)) intact++;
    progress(0.5 + (0.5 * received) / w.count);
    onArrival?.();
  });
  const mac = await src.resolve(dst.ip, vcpu, ledger);
  let sent = 0;
  let sendErrors = 0;
  const first = sched.now;
  if (mac !== null) {
    let inFlight = 0;
    let slot: (() => void) | null = null;
    let idle: (() => void) | null = null;
    for (let seq = 0; seq < w.count && sched.now < endAt; seq++) {
      // A NIC that went away (rescinded) refuses every send: stop.
      if (src.nic.removed || ledger.deadlinePassed) break;
      if (inFlight >= UDP_WINDOW) {
        await new Promise<void>((r) => (slot = r));
        // The wait may have outlasted the run (or its settle deadline).
        if (sched.now >= endAt || ledger.deadlinePassed) break;
      }
      const payload = udpPayload(rng, seq, w.bytes);
      sums[seq] = fnv1a(payload);
      const frame = buildUdpFrame({ srcMac: src.mac, dstMac: mac, srcIp: src.ip, dstIp: dst.ip, srcPort, dstPort, payload, identification: seq & 0xffff });
      inFlight++;
      sent++;
      void ledger.track(vcpu.issue(() => src.nic.send(frame), "udp send")).then((s) => {
        if (s.status !== "completed") sendErrors++;
        inFlight--;
        const next = slot;
        slot = null;
        next?.();
        if (inFlight === 0) idle?.();
      });
      progress((0.5 * sent) / w.count);
    }
    // Stragglers: wait until everything sent arrived, or a drain period without it.
    if (received < sent && !ledger.deadlinePassed) {
      const all = new Promise<void>((r) => {
        onArrival = () => {
          if (received >= sent) r();
        };
      });
      await withTimeout(sched, all, UDP_DRAIN_NS, "udp drain");
      onArrival = null;
    }
    // Every send settles (or is declared lost at the settle deadline) before the count.
    if (inFlight > 0) await new Promise<void>((r) => (idle = r));
  }
  stop();
  progress(1);
  const elapsed = received > 0 ? lastArrival - first : 0;
  return {
    workload: index,
    from: w.from,
    to: w.to,
    fromIp: src.ip,
    toIp: dst.ip,
    srcPort,
    dstPort,
    bytes: w.bytes,
    count: w.count,
    sent,
    received,
    inOrder,
    intact,
    lost: sent - received,
    sendErrors,
    elapsedUs: round3(elapsed / 1000),
    mbitPerSec: elapsed > 0 ? round3((intact * w.bytes * 8) / (elapsed / 1e9) / 1e6) : 0,
    framesPerSec: elapsed > 0 ? Math.round((received / elapsed) * 1e9) : 0,
    requests: ledger.tally(),
  };
}
