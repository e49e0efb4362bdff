/**
 * NVSP versions v1 to v6.1 end to end (storvsc-netvsc.md §9.3, §10, §12):
 * a guest whose netvsc offers at most version V, next to a default (v6.1)
 * guest on the same switch, through the real control plane, rings, netvsp
 * hosts and switch. The older guest negotiates V, sends NDIS_CONFIG only
 * from v2, has subchannels only from v5, and its ARP, ICMP and UDP frames
 * (minimum to MTU size) arrive byte-identical both ways.
 */
import { describe, expect, it } from "vitest";
import { VmbusSystem } from "../../../../core/index.js";
import {
  ARPOP_REPLY,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  NETVSC_CONFIG,
  NVSP_PROTOCOL_VERSION_1,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_4,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_PROTOCOL_VERSION_61,
  NVSP_STAT_SUCCESS,
  NetvspDevice,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  formatNvspVersion,
  networkPlugin,
  parseFrame,
  type NetvscDriver,
} from "../../../../drivers/netvsc/index.js";
import { expectLedgerBalanced, station } from "./frame-ledger.js";
import { respond } from "./responder.js";

const MACS = ["00:15:5d:00:01:01", "00:15:5d:00:01:02"];
const IPS = ["192.168.7.1", "192.168.7.2"];
const VCPUS = 4;
/** Queues the old guest asks for: 3 subchannels where the version allows them. */
const QUEUES = 4;

const VERSIONS = [
  NVSP_PROTOCOL_VERSION_1,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_4,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_PROTOCOL_VERSION_61,
].map((v) => ({ name: formatNvspVersion(v), version: v }));

/** vm1's netvsc offers at most `maxVersion`; vm2's takes every default (v6.1, 8 queues). */
async function boot(maxVersion: number) {
  const sys = new VmbusSystem({ seed: 606, plugins: [networkPlugin] });
  const vm1 = sys.addVm({ name: "old", vcpus: VCPUS, memoryBytes: 64 << 20 });
  vm1.container.register(NETVSC_CONFIG, { useValue: { maxVersion, maxQueues: QUEUES } });
  const vm2 = sys.addVm({ name: "new", vcpus: VCPUS, memoryBytes: 64 << 20 });
  const dev1 = sys.addHostDevice(vm1, "netvsp", { config: { mac: MACS[0], switch: "lan" } });
  const dev2 = sys.addHostDevice(vm2, "netvsp", { config: { mac: MACS[1], switch: "lan" } });
  await sys.boot();
  const nics = [vm1, vm2].map((vm) => vm.drivers<NetvscDriver>("netvsc")[0]!);
  const hosts = [dev1, dev2].map((d) => d.handler as NetvspDevice);
  return { sys, nics, hosts, devices: [dev1, dev2] };
}


describe("NVSP versions end to end: a guest offering at most V next to a v6.1 guest", () => {
  it.each(VERSIONS)("maxVersion $name: negotiated, NDIS_CONFIG from v2, subchannels from v5, ARP/ICMP/UDP byte-identical both ways", async ({ version }) => {
    const { sys, nics, hosts, devices } = await boot(version);
    const [old, cur] = [nics[0]!, nics[1]!];

    // Negotiation: the old guest's first offer is accepted; the other guest is unaffected.
    expect(old.nvspVersion).toBe(version);
    expect(old.versionAttempts).toEqual([{ version, status: NVSP_STAT_SUCCESS }]);
    expect(hosts[0]!.nvspVersion).toBe(version);
    expect(cur.nvspVersion).toBe(NVSP_PROTOCOL_VERSION_61);
    expect(hosts[1]!.nvspVersion).toBe(NVSP_PROTOCOL_VERSION_61);
    expect(hosts.map((h) => h.rndisState)).toEqual(["operational", "operational"]);
    expect(hosts.map((h) => h.lastFatalError)).toEqual([null, null]);

    // §10: NDIS_CONFIG only from v2 (v1 has no such message); NDIS_VER, RECV_BUF, SEND_BUF once each.
    const nvsp = hosts[0]!.counters.nvsp;
    expect(nvsp["INIT"]).toBe(1);
    expect(nvsp["SEND_NDIS_CONFIG"] ?? 0).toBe(version >= NVSP_PROTOCOL_VERSION_2 ? 1 : 0);
    expect(nvsp["SEND_NDIS_VER"]).toBe(1);
    expect(nvsp["SEND_RECV_BUF"]).toBe(1);
    expect(nvsp["SEND_SEND_BUF"]).toBe(1);
    expect(hosts[1]!.counters.nvsp["SEND_NDIS_CONFIG"]).toBe(1);
    // §10 step 4: the 16 MiB default receive buffer is capped at 15 MiB up to v2
    // (Linux NETVSC_RECEIVE_BUFFER_SIZE_LEGACY), so 8709 sections of 1806 bytes, else 9289.
    expect(hosts[0]!.receiveBufferLayout).toMatchObject({ subAllocSize: 1806, count: version <= NVSP_PROTOCOL_VERSION_2 ? 8709 : 9289 });
    expect(hosts[1]!.receiveBufferLayout).toMatchObject({ subAllocSize: 1806, count: 9289 });
    // §13.4: the host follows the applied SET TCP_OFFLOAD_PARAMETERS with one
    // TASK_OFFLOAD_CURRENT_CONFIG status, which the guest (as Linux) counts and ignores.
    expect(hosts.map((h) => h.counters.rndis["indicate_status"])).toEqual([1, 1]);
    expect(nics.map((n) => [n.driverStats.statusIndications, n.linkUp])).toEqual([[1, true], [1, true]]);

    // §12: subchannels (and the host's send table) only from v5; 4 vCPUs and 4 queues asked for.
    const multi = version >= NVSP_PROTOCOL_VERSION_5;
    const subchannels = multi ? QUEUES - 1 : 0;
    expect(old.subchannelsRequested).toBe(subchannels);
    expect(old.subchannelsGranted).toBe(subchannels);
    expect(old.subchannelErrors).toEqual([]);
    expect(old.queues.map((q) => q.index)).toEqual(Array.from({ length: subchannels + 1 }, (_, i) => i));
    expect(devices[0]!.subchannels()).toHaveLength(subchannels);
    expect(hosts[0]!.queueStats()).toHaveLength(subchannels + 1);
    expect(nvsp["SUBCHANNEL"] ?? 0).toBe(multi ? 1 : 0);
    expect(old.driverStats.sendTableUpdates).toBe(multi ? 1 : 0);
    // LINK_SPEED is queried from v5 only (§13.8).
    expect(old.linkSpeedBps).toBe(multi ? 10_000_000_000 : 0);
    // The v6.1 guest next to it always has its subchannels (min(8 queues, 4 vCPUs) = 4).
    expect(cur.queues).toHaveLength(VCPUS);

    // Traffic both ways, every frame recorded (responders' replies included).
    const st = [station("old", old), station("new", cur)];
    respond(old, MACS[0]!, IPS[0]!);
    respond(cur, MACS[1]!, IPS[1]!);
    const udp = (from: number, to: number, srcPort: number, n: number) =>
      buildUdpFrame({
        srcMac: MACS[from]!,
        dstMac: MACS[to]!,
        srcIp: IPS[from]!,
        dstIp: IPS[to]!,
        srcPort,
        dstPort: 9000,
        payload: Uint8Array.from({ length: n }, (_, k) => (k * 31 + srcPort + from) & 0xff),
      });
    await sys.run(old.send(buildArpRequestFrame(MACS[0]!, IPS[0]!, IPS[1]!)));
    await sys.run(cur.send(buildArpRequestFrame(MACS[1]!, IPS[1]!, IPS[0]!)));
    await sys.run(sys.sim.scheduler.sleep(2_000_000));
    for (let seq = 1; seq <= 2; seq++) {
      for (const [from, to] of [
        [0, 1],
        [1, 0],
      ] as const) {
        const data = Uint8Array.from({ length: seq === 1 ? 56 : 1472 }, (_, k) => (k ^ (seq + from * 0x40)) & 0xff);
        await sys.run(st[from]!.nic.send(buildIcmpEchoFrame({ srcMac: MACS[from]!, dstMac: MACS[to]!, srcIp: IPS[from]!, dstIp: IPS[to]!, type: ICMP_ECHO, identifier: 0x51 + from, sequence: seq, data })));
      }
    }
    // UDP: 60-byte (minimum) and 1514-byte (MTU) frames on 8 flows each way, in one burst.
    const burst: Promise<void>[] = [];
    for (let flow = 0; flow < 8; flow++) {
      for (const [from, to] of [
        [0, 1],
        [1, 0],
      ] as const) {
        burst.push(st[from]!.nic.send(udp(from, to, 4000 + flow, 18)), st[from]!.nic.send(udp(from, to, 4000 + flow, 1472)));
      }
    }
    await sys.run(Promise.all(burst));
    await sys.run(sys.sim.scheduler.sleep(5_000_000));

    for (const s of st) {
      const lengths = s.sent.map((f) => f.length);
      expect(lengths.filter((n) => n === 60)).toHaveLength(8);
      // 8 datagrams, its own 1472-byte echo request and its reply to the other's.
      expect(lengths.filter((n) => n === 1514)).toHaveLength(8 + 2);
      // Each side got its ARP answered and both echoes replied to.
      const got = s.received.map(parseFrame);
      expect(got.filter((f) => f.arp?.op === ARPOP_REPLY)).toHaveLength(1);
      expect(got.filter((f) => f.icmp?.type === ICMP_ECHOREPLY).map((f) => f.icmp!.sequence)).toEqual([1, 2]);
      expect(got.filter((f) => f.udp)).toHaveLength(16);
    }
    // 2 ARP requests + 2 replies + 4 echo requests + 4 replies + 32 datagrams.
    expect(expectLedgerBalanced(st)).toBe(44);
    // The host of the old guest moved exactly those frames.
    expect(hosts[0]!.counters.txFrames).toBe(st[0]!.sent.length);
    expect(hosts[0]!.counters.rxFrames).toBe(st[0]!.received.length);
    expect(hosts[0]!.counters.txPacketsFailed).toBe(0);
    // From v5 its transmit is spread over the subchannels; below, queue 0 carries all.
    const txQueues = hosts[0]!.queueStats().filter((q) => q.txFrames > 0).map((q) => q.queue);
    if (multi) expect(txQueues.length).toBeGreaterThan(1);
    else expect(txQueues).toEqual([0]);
  });
});
