/**
 * Two VMs with a netvsc NIC each on one virtual switch: vm1 resolves vm2's
 * MAC with ARP, then pings it (ICMP echo). vm2 runs a small responder —
 * what its kernel would do: answer ARP for its address and ICMP echo.
 * Every frame crosses the full stack: netvsc → send buffer / ring → netvsp
 * → switch → netvsp → receive buffer → netvsc. The switch is captured to
 * out/ping.pcap (virtual timestamps), which Wireshark and tshark open.
 *
 * Run: `npm run example:network-ping`.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { VmbusSystem } from "../core/index.js";
import {
  ARPOP_REPLY,
  ARPOP_REQUEST,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  NETWORK_SWITCHES,
  buildArpReplyFrame,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  networkPlugin,
  parseFrame,
  type NetvscDriver,
  type ParsedFrame,
  type SwitchRegistry,
} from "../drivers/netvsc/index.js";

const COUNT = 5;
const IP1 = "10.0.0.1";
const IP2 = "10.0.0.2";

const sys = new VmbusSystem({ seed: 1, plugins: [networkPlugin] });
const vm1 = sys.addVm({ name: "vm1", vcpus: 2 });
const vm2 = sys.addVm({ name: "vm2", vcpus: 2 });
sys.addHostDevice(vm1, "netvsp", { config: { mac: "00:15:5d:00:00:01", switch: "lan" } });
sys.addHostDevice(vm2, "netvsp", { config: { mac: "00:15:5d:00:00:02", switch: "lan" } });
// The switch exists before boot, so the capture sees every frame.
const lan = (sys.root.resolve(NETWORK_SWITCHES) as SwitchRegistry).get("lan");
lan.startCapture();
await sys.boot();

const nic1 = vm1.drivers<NetvscDriver>("netvsc")[0];
const nic2 = vm2.drivers<NetvscDriver>("netvsc")[0];
if (nic1 === undefined || nic2 === undefined) throw new Error("netvsc did not bind");
console.log(`vm1 ${IP1} (${nic1.mac}) and vm2 ${IP2} (${nic2.mac}) on switch "lan"`);

// vm2: the responder.
nic2.onReceive((bytes) => {
  const f = parseFrame(bytes);
  if (f.arp !== undefined && f.arp.op === ARPOP_REQUEST && f.arp.targetIp === IP2) {
    console.log(`  vm2: ARP who-has ${IP2} tell ${f.arp.senderIp} → reply ${IP2} is-at ${nic2.mac}`);
    void nic2.send(buildArpReplyFrame(f.arp, nic2.mac));
  } else if (f.icmp !== undefined && f.icmp.type === ICMP_ECHO && f.ipv4?.dst === IP2) {
    void nic2.send(
      buildIcmpEchoFrame({
        srcMac: nic2.mac,
        dstMac: f.ethernet.src,
        srcIp: IP2,
        dstIp: f.ipv4.src,
        type: ICMP_ECHOREPLY,
        identifier: f.icmp.identifier,
        sequence: f.icmp.sequence,
        data: f.icmp.data,
      }),
    );
  }
});

// vm1: one waiter for the next frame that matches.
let waiter: { match: (f: ParsedFrame) => boolean; resolve: (f: ParsedFrame) => void } | null = null;
nic1.onReceive((bytes) => {
  const f = parseFrame(bytes);
  if (waiter?.match(f)) {
    const w = waiter;
    waiter = null;
    w.resolve(f);
  }
});
function expectFrame(match: (f: ParsedFrame) => boolean): Promise<ParsedFrame> {
  return new Promise((resolve) => (waiter = { match, resolve }));
}

const cpu0 = vm1.partition.vcpus[0];
if (cpu0 === undefined) throw new Error("vm1 has no vCPU 0");
const us = (ns: number): string => `${(ns / 1000).toFixed(1)} µs`;

// ARP.
let t = sys.sim.now;
const arpReply = expectFrame((f) => f.arp?.op === ARPOP_REPLY && f.arp.senderIp === IP2);
await sys.run(cpu0.issue(() => nic1.send(buildArpRequestFrame(nic1.mac, IP1, IP2))));
const arp = await sys.run(arpReply);
const mac2 = arp.arp?.senderMac ?? "";
console.log(`vm1: ${IP2} is-at ${mac2} (ARP round trip ${us(sys.sim.now - t)})`);

// ICMP echo.
console.log(`\nPING ${IP2} 56(84) bytes of data, from vm1's vCPU 0`);
const rtts: number[] = [];
const data = new Uint8Array(56).map((_, i) => i);
for (let seq = 1; seq <= COUNT; seq++) {
  const reply = expectFrame((f) => f.icmp?.type === ICMP_ECHOREPLY && f.icmp.sequence === seq);
  t = sys.sim.now;
  const req = buildIcmpEchoFrame({ srcMac: nic1.mac, dstMac: mac2, srcIp: IP1, dstIp: IP2, type: ICMP_ECHO, identifier: 0x1234, sequence: seq, data });
  await sys.run(cpu0.issue(() => nic1.send(req)));
  const f = await sys.run(reply);
  const rtt = sys.sim.now - t;
  rtts.push(rtt);
  console.log(`64 bytes from ${f.ipv4?.src}: icmp_seq=${seq} ttl=${f.ipv4?.ttl} time=${us(rtt)} (virtual)`);
  await sys.run(sys.sim.scheduler.sleep(1_000_000)); // 1 ms between pings
}
const avg = rtts.reduce((s, x) => s + x, 0) / rtts.length;
console.log(`--- ${IP2} ping statistics ---`);
console.log(`${COUNT} packets transmitted, ${rtts.length} received, 0% packet loss`);
console.log(`rtt min/avg/max = ${us(Math.min(...rtts))} / ${us(avg)} / ${us(Math.max(...rtts))}`);

mkdirSync("out", { recursive: true });
const path = join("out", "ping.pcap");
lan.writePcap(path);
console.log(`\nwrote ${path}: ${lan.capture?.count ?? 0} frames seen by switch "lan" (timestamps are virtual time)`);
console.log(`  tshark -r ${path}`);
await sys.dispose();
