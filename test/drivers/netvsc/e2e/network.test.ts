/**
 * Network end to end: netvsc guests on two and three VMs, netvsp hosts and
 * one virtual switch, through the real VMBus control plane and rings.
 */
import { describe, expect, it } from "vitest";
import { VmbusSystem } from "../../../../core/index.js";
import {
  ARPOP_REPLY,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  NETWORK_SWITCHES,
  NetvscDriver,
  NetvspDevice,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  networkPlugin,
  parseFrame,
  type SwitchRegistry,
} from "../../../../drivers/netvsc/index.js";
import { expectLedgerBalanced, hex, station } from "./frame-ledger.js";
import { respond } from "./responder.js";

const MACS = ["00:15:5d:00:00:01", "00:15:5d:00:00:02", "00:15:5d:00:00:03"];
const IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];

async function boot(vmCount: number) {
  const sys = new VmbusSystem({ seed: 77, plugins: [networkPlugin] });
  const vms = [];
  for (let i = 0; i < vmCount; i++) {
    const vm = sys.addVm({ name: `vm${i + 1}`, vcpus: 2, memoryBytes: 64 << 20 });
    sys.addHostDevice(vm, "netvsp", { config: { mac: MACS[i], switch: "lan" } });
    vms.push(vm);
  }
  await sys.boot();
  const nics = vms.map((vm) => vm.drivers<NetvscDriver>("netvsc")[0]!);
  const received: Uint8Array[][] = nics.map(() => []);
  nics.forEach((nic, i) => nic.onReceive((f) => received[i]!.push(f.slice())));
  const sw = (vms[0]!.hostContainer.resolve(NETWORK_SWITCHES) as SwitchRegistry).get("lan");
  return { sys, vms, nics, received, sw };
}


describe("netvsc ↔ netvsp ↔ switch", () => {
  it("ARP and ICMP echo between two VMs; frames arrive byte-identical; the pcap has them in order", async () => {
    const { sys, nics, received, sw } = await boot(2);
    sw.startCapture();
    respond(nics[1]!, MACS[1]!, IPS[1]!);
    expect(nics[0]!.mac).toBe(MACS[0]);
    const arp = buildArpRequestFrame(MACS[0]!, IPS[0]!, IPS[1]!);
    await sys.run(nics[0]!.send(arp));
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    // vm2 got the broadcast byte-identical; vm1 got the reply.
    expect(received[1]!.some((f) => f.length === arp.length && f.every((b, i) => b === arp[i]))).toBe(true);
    const reply = received[0]!.map(parseFrame).find((f) => f.arp?.op === ARPOP_REPLY);
    expect(reply?.arp?.senderMac).toBe(MACS[1]);
    for (let seq = 1; seq <= 3; seq++) {
      const data = Uint8Array.from({ length: 56 }, (_, i) => (i + seq) & 0xff);
      await sys.run(
        nics[0]!.send(buildIcmpEchoFrame({ srcMac: MACS[0]!, dstMac: MACS[1]!, srcIp: IPS[0]!, dstIp: IPS[1]!, type: ICMP_ECHO, identifier: 7, sequence: seq, data })),
      );
    }
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    const replies = received[0]!.map(parseFrame).filter((f) => f.icmp?.type === ICMP_ECHOREPLY);
    expect(replies.map((f) => f.icmp!.sequence)).toEqual([1, 2, 3]);
    // The capture: ARP request, ARP reply, then three request/reply pairs.
    const pcap = sw.pcapBytes();
    const v = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
    expect(v.getUint32(0, true)).toBe(0xa1b2c3d4);
    expect(v.getUint32(20, true)).toBe(1);
    const frames: Uint8Array[] = [];
    let lastTs = 0;
    for (let off = 24; off < pcap.length; ) {
      const ts = v.getUint32(off, true) * 1e6 + v.getUint32(off + 4, true);
      expect(ts).toBeGreaterThanOrEqual(lastTs);
      lastTs = ts;
      const incl = v.getUint32(off + 8, true);
      frames.push(pcap.slice(off + 16, off + 16 + incl));
      off += 16 + incl;
    }
    expect(frames).toHaveLength(8);
    expect(frames[0]).toEqual(arp);
    const icmp = frames.slice(2).map((f) => parseFrame(f).icmp!);
    expect(icmp.filter((m) => m.type === ICMP_ECHO).map((m) => m.sequence)).toEqual([1, 2, 3]);
    expect(icmp.filter((m) => m.type === ICMP_ECHOREPLY).map((m) => m.sequence)).toEqual([1, 2, 3]);
    // Each reply is captured after its request.
    for (let seq = 1; seq <= 3; seq++) {
      expect(icmp.findIndex((m) => m.type === ICMP_ECHOREPLY && m.sequence === seq)).toBeGreaterThan(icmp.findIndex((m) => m.type === ICMP_ECHO && m.sequence === seq));
    }
  });

  it("every frame either VM sends (ARP, ICMP, UDP, minimum to MTU size) arrives byte-identical at its destination exactly once; the pcap holds each once", async () => {
    const { sys, nics, sw } = await boot(2);
    sw.startCapture();
    // Wrap send before the responders subscribe: their ARP and echo replies are recorded too.
    const st = nics.map((nic, i) => station(`vm${i + 1}`, nic));
    nics.forEach((nic, i) => respond(nic, MACS[i]!, IPS[i]!));
    const udp = (from: number, to: number, n: number, tag: number) =>
      buildUdpFrame({
        srcMac: MACS[from]!,
        dstMac: MACS[to]!,
        srcIp: IPS[from]!,
        dstIp: IPS[to]!,
        srcPort: 5000 + from,
        dstPort: 6000 + tag,
        payload: Uint8Array.from({ length: n }, (_, k) => (k * 13 + tag + from) & 0xff),
      });
    const ping = (from: number, to: number, seq: number, n: number) =>
      buildIcmpEchoFrame({
        srcMac: MACS[from]!,
        dstMac: MACS[to]!,
        srcIp: IPS[from]!,
        dstIp: IPS[to]!,
        type: ICMP_ECHO,
        identifier: 0x100 + from,
        sequence: seq,
        data: Uint8Array.from({ length: n }, (_, k) => (k + seq * 3 + from) & 0xff),
      });
    // ARP both ways (each answered), then pings and datagrams both ways, sent
    // one at a time and in a burst, 42 to 1514 bytes.
    await sys.run(st[0]!.nic.send(buildArpRequestFrame(MACS[0]!, IPS[0]!, IPS[1]!)));
    await sys.run(st[1]!.nic.send(buildArpRequestFrame(MACS[1]!, IPS[1]!, IPS[0]!)));
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    const sizes = [18, 1472, 0, 700, 1471, 19];
    for (let seq = 1; seq <= 4; seq++) {
      await sys.run(st[0]!.nic.send(ping(0, 1, seq, [56, 0, 1472, 18][seq - 1]!)));
      await sys.run(st[1]!.nic.send(ping(1, 0, seq, [1, 1472, 56, 300][seq - 1]!)));
    }
    await sys.run(
      Promise.all([...sizes.map((n, t) => st[0]!.nic.send(udp(0, 1, n, t))), ...sizes.map((n, t) => st[1]!.nic.send(udp(1, 0, n, t)))]),
    );
    await sys.run(sys.sim.scheduler.sleep(5_000_000));

    // 2 ARP requests + 2 replies, 8 echo requests + 8 replies, 12 datagrams.
    expect(st.map((s) => s.sent.length)).toEqual([1 + 1 + 4 + 4 + 6, 1 + 1 + 4 + 4 + 6]);
    const all = st.flatMap((s) => s.sent);
    // Unpadded 42-byte frames (ARP, empty ICMP and UDP), the 60-byte minimum and the 1514-byte MTU frame, both ways.
    for (const s of st) {
      const lengths = new Set(s.sent.map((f) => f.length));
      for (const n of [42, 60, 1514]) expect(lengths.has(n), `${s.name} sent a ${n}-byte frame`).toBe(true);
      expect(Math.max(...lengths)).toBe(1514);
    }
    expect(expectLedgerBalanced(st)).toBe(all.length);
    // Replies were made from what arrived: vm1 got an ARP reply and 4 echo replies, and so did vm2.
    for (const s of st) {
      const parsed = s.received.map(parseFrame);
      expect(parsed.filter((f) => f.arp?.op === ARPOP_REPLY)).toHaveLength(1);
      expect(parsed.filter((f) => f.icmp?.type === ICMP_ECHOREPLY).map((f) => f.icmp!.sequence)).toEqual([1, 2, 3, 4]);
    }
    // The switch saw each sent frame exactly once, intact.
    const pcap = sw.pcapBytes();
    const v = new DataView(pcap.buffer, pcap.byteOffset, pcap.byteLength);
    const captured = new Map<string, number>();
    let count = 0;
    for (let off = 24; off < pcap.length; count++) {
      const incl = v.getUint32(off + 8, true);
      expect(v.getUint32(off + 12, true)).toBe(incl);
      const key = hex(pcap.subarray(off + 16, off + 16 + incl));
      captured.set(key, (captured.get(key) ?? 0) + 1);
      off += 16 + incl;
    }
    expect(count).toBe(all.length);
    for (const f of all) expect(captured.get(hex(f)), hex(f)).toBe(1);
    // Each port's counters: frames in = what its NIC sent, frames out = what it received.
    expect(sw.ports().map((p) => [p.stats.framesIn, p.stats.framesOut])).toEqual(st.map((s) => [s.sent.length, s.received.length]));
  });

  it("a UDP stream, minimum- and MTU-size frames, arrives complete, in order and intact", async () => {
    const { sys, nics, received } = await boot(2);
    const sizes = [18, 1472, 100, 1472, 18, 600]; // 60-byte (minimum) and 1514-byte (MTU) frames
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 120; i++) {
      const n = sizes[i % sizes.length]!;
      frames.push(
        buildUdpFrame({ srcMac: MACS[0]!, dstMac: MACS[1]!, srcIp: IPS[0]!, dstIp: IPS[1]!, srcPort: 5000, dstPort: 6000, payload: Uint8Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff) }),
      );
    }
    expect(Math.min(...frames.map((f) => f.length))).toBe(60);
    expect(Math.max(...frames.map((f) => f.length))).toBe(1514);
    await sys.run(Promise.all(frames.map((f) => nics[0]!.send(f))));
    await sys.run(sys.sim.scheduler.sleep(5_000_000));
    expect(received[1]!).toHaveLength(frames.length);
    received[1]!.forEach((f, i) => expect(f).toEqual(frames[i]));
    expect(nics[1]!.stats.rx.packets).toBe(frames.length);
    expect(nics[0]!.stats.tx.packets).toBe(frames.length);
  });

  it("broadcast reaches every port but the sender; link down delivers nothing and the guest sees it", async () => {
    const { sys, vms, nics, received } = await boot(3);
    await sys.run(nics[1]!.send(buildArpRequestFrame(MACS[1]!, IPS[1]!, "10.0.0.99")));
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    expect(received.map((r) => r.length)).toEqual([1, 0, 1]);
    const host3 = vms[2]!.server.devices()[0]!.handler as NetvspDevice;
    host3.setLink(false);
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    expect(nics[2]!.linkUp).toBe(false);
    await sys.run(nics[0]!.send(buildArpRequestFrame(MACS[0]!, IPS[0]!, "10.0.0.98")));
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    expect(received.map((r) => r.length)).toEqual([1, 1, 1]);
  });
});

describe("back-pressure", () => {
  it("a burst larger than the send buffer and the ring arrives complete and in order; the queue stops and wakes", async () => {
    const { sys, nics, received } = await boot(2);
    const frames: Uint8Array[] = [];
    // 1 MiB of send sections holds ~170 frames of 1514 bytes; send 600 at once.
    for (let i = 0; i < 600; i++) {
      frames.push(
        buildUdpFrame({ srcMac: MACS[0]!, dstMac: MACS[1]!, srcIp: IPS[0]!, dstIp: IPS[1]!, srcPort: 7000, dstPort: 7001, payload: new Uint8Array(1472).fill(i & 0xff) }),
      );
    }
    await sys.run(Promise.all(frames.map((f) => nics[0]!.send(f))));
    await sys.run(sys.sim.scheduler.sleep(5_000_000));
    expect(received[1]!).toHaveLength(600);
    received[1]!.forEach((f, i) => expect(f[f.length - 1]).toBe(i & 0xff));
    const stats = nics[0]!.driverStats;
    // Sections ran out (page-buffer sends took over, against the real host),
    // and the queue stopped and woke.
    expect(stats.sectionSends).toBeGreaterThan(0);
    expect(stats.pageBufferSends).toBeGreaterThan(0);
    expect(stats.queueStops).toBeGreaterThan(0);
    expect(nics[0]!.queues.reduce((a, q) => a + q.stops, 0)).toBe(nics[0]!.queues.reduce((a, q) => a + q.wakes, 0));
  });
});
