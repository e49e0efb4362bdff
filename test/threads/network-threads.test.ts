/**
 * Threaded mode end to end: the network sample with the guest (vCPUs,
 * VMBus client, netvsc) in this thread and the host (VMBus server, netvsp,
 * a virtual switch and an IP responder on its second port) in a worker
 * thread. The worker gets the switch's responder port from a `hostSetup`
 * hook named by module URL (`networkResponderSetup`), as it gets netvsp
 * from a plugin manifest: core never imports drivers/.
 *
 * Every frame goes guest → netvsc → ring → netvsp → switch → responder →
 * switch → netvsp → receive buffer → netvsc → guest. Each reply is
 * compared byte for byte with the reply this test builds from the request
 * (the responder builds it with the same deterministic builders), its
 * payload with what was sent, and the sum of the received frames' digests
 * with the sum the responder reports over the frames it built — so the
 * bytes that arrived are the bytes built in the other thread. Counts are
 * checked on both sides (no loss), then the link's doorbell and mailbox
 * counters and a clean shutdown.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { threadId } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { expectCrossThreadTraffic, expectStartFails } from "./link-checks.js";
import { ThreadedSystem, type PluginModuleSpec } from "../../core/index.js";
import {
  ARPOP_REPLY,
  ETH_HLEN,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  IPV4_HEADER_SIZE,
  UDP_HEADER_SIZE,
  addFrameDigest,
  buildArpReplyFrame,
  buildArpRequestFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  networkPlugin,
  parseArp,
  parseEthernetFrame,
  parseFrame,
  type IpResponderCounters,
  type NetvscDriver,
} from "../../drivers/netvsc/index.js";
import { transpiledModules } from "./transpile.js";

const MiB = 1024 * 1024;
const [workerUrl, networkUrl] = transpiledModules([
  fileURLToPath(new URL("../../core/threads/host-worker.ts", import.meta.url)),
  fileURLToPath(new URL("../../drivers/netvsc/index.ts", import.meta.url)),
]) as [URL, URL];
const hostPlugins: PluginModuleSpec[] = [{ module: networkUrl.href, exportName: "networkPlugin" }];

const GUEST_MAC = "00:15:5d:00:00:01";
const GUEST_IP = "10.0.0.1";
const RESPONDER_MAC = "00:15:5d:00:00:fe";
const RESPONDER_IP = "10.0.0.254";
const MTU = 1500;
/** UDP/ICMP payload that makes the IPv4 packet exactly MTU bytes. */
const MTU_PAYLOAD = MTU - IPV4_HEADER_SIZE - UDP_HEADER_SIZE;

type ResponderReport = IpResponderCounters & { readonly switchPorts: readonly { readonly name: string; readonly framesIn: number; readonly framesOut: number }[] };

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

function boot(seed: number, udpEcho: boolean, pcap?: string): ThreadedSystem {
  const sys = new ThreadedSystem(
    {
      seed,
      plugins: [networkPlugin],
      hostPlugins,
      hostSetup: {
        module: networkUrl.href,
        exportName: "networkResponderSetup",
        config: { switch: "lan", mac: RESPONDER_MAC, ip: RESPONDER_IP, udpEcho, ...(pcap !== undefined ? { pcap } : {}) },
      },
      workerUrl,
    },
    { name: "vm1", vcpus: 2, memoryBytes: 64 * MiB },
  );
  // netvsc's defaults (Linux's): a 16 MiB receive buffer, whose GPADL is
  // ~160 GPADL_BODY messages — more than the link's mailbox holds, so the
  // host's back-pressure on a full message port and the guest's
  // post-message backoff both take part in bring-up.
  sys.addHostDevice("netvsp", { config: { mac: GUEST_MAC, switch: "lan", mtu: MTU } });
  return sys;
}

/** Runs the guest until `rx` holds `n` frames, or `limitNs` of guest virtual time (bounded by real time) passed. */
async function waitForFrames(sys: ThreadedSystem, rx: readonly Uint8Array[], n: number, limitNs = 5_000_000_000): Promise<void> {
  await sys.run(async () => {
    for (let waited = 0; rx.length < n && waited < limitNs; waited += 1_000_000) await sys.sim.scheduler.sleep(1_000_000);
  }, `waiting for ${n} frames`);
}

describe("threaded mode: netvsc in the main thread; netvsp, a switch and a responder in a worker", () => {
  it("ARP, ICMP echo and UDP echo at minimum and MTU size: every reply byte-identical, none lost", async () => {
    const sys = boot(21, true);
    const ready = await sys.start();
    expect(ready.devices.map((d) => d.type)).toEqual(["netvsp"]);
    expect(sys.hostThreadId).not.toBe(threadId);
    const rx: Uint8Array[] = [];
    const expected = new Map<string, number>();
    const expect1 = (frame: Uint8Array) => expected.set(hex(frame), (expected.get(hex(frame)) ?? 0) + 1);
    let sentIcmp = 0;
    let sentUdp = 0;
    const udpPayloads = new Map<number, Uint8Array>(); // by source port
    let report;
    try {
      await sys.boot();
      const nics = sys.vm.drivers<NetvscDriver>("netvsc");
      expect(nics).toHaveLength(1);
      const nic = nics[0]!;
      expect(nic.mac).toBe(GUEST_MAC);
      expect(nic.mtu).toBe(MTU);
      nic.onReceive((f) => rx.push(f.slice()));
      const vcpus = sys.vm.partition.vcpus;

      // ARP: who has the responder's address?
      const arpRequest = buildArpRequestFrame(GUEST_MAC, GUEST_IP, RESPONDER_IP);
      const arpWant = buildArpReplyFrame(parseArp(parseEthernetFrame(arpRequest).payload), RESPONDER_MAC);
      await sys.run(vcpus[0]!.issue(() => nic.send(arpRequest)));
      await waitForFrames(sys, rx, 1);
      expect(rx).toHaveLength(1);
      expect(hex(rx[0]!)).toBe(hex(arpWant));
      const arp = parseFrame(rx[0]!).arp!;
      expect(arp.op).toBe(ARPOP_REPLY);
      const responderMac = arp.senderMac;
      expect(responderMac).toBe(RESPONDER_MAC);

      const rng = sys.sim.rng.fork("network workload");
      const addresses = { srcMac: GUEST_MAC, dstMac: responderMac, srcIp: GUEST_IP, dstIp: RESPONDER_IP };
      const reply = { srcMac: responderMac, dstMac: GUEST_MAC, srcIp: RESPONDER_IP, dstIp: GUEST_IP };
      // Sizes: minimum (empty payload: a 42-byte frame, below ETH_ZLEN), MTU, and a few between.
      const sizes = [0, MTU_PAYLOAD, 1, 56, 512, MTU_PAYLOAD - 1, 1024, 0];
      const BATCHES = 6;
      for (let batch = 0; batch < BATCHES; batch++) {
        const frames: Uint8Array[] = [];
        for (let k = 0; k < sizes.length; k++) {
          const data = rng.bytes(sizes[(k + batch) % sizes.length]!);
          const seq = batch * sizes.length + k + 1;
          if (k % 2 === 0) {
            frames.push(buildIcmpEchoFrame({ ...addresses, type: ICMP_ECHO, identifier: 0x4242, sequence: seq, data }));
            expect1(buildIcmpEchoFrame({ ...reply, type: ICMP_ECHOREPLY, identifier: 0x4242, sequence: seq, data }));
            sentIcmp++;
          } else {
            const srcPort = 40_000 + seq;
            udpPayloads.set(srcPort, data);
            frames.push(buildUdpFrame({ ...addresses, srcPort, dstPort: 7, payload: data }));
            expect1(buildUdpFrame({ ...reply, srcPort: 7, dstPort: srcPort, payload: data }));
            sentUdp++;
          }
        }
        for (const f of frames) expect(f.length).toBeLessThanOrEqual(MTU + ETH_HLEN);
        expect(frames.some((f) => f.length === MTU + ETH_HLEN)).toBe(true);
        expect(frames.some((f) => f.length === ETH_HLEN + IPV4_HEADER_SIZE + UDP_HEADER_SIZE)).toBe(true);
        const before = rx.length;
        // A modest rate: one batch in flight at a time, its frames from both vCPUs.
        await sys.run(Promise.all(frames.map((f, i) => vcpus[i % vcpus.length]!.issue(() => nic.send(f)))));
        await waitForFrames(sys, rx, before + frames.length);
        expect(rx.length).toBe(before + frames.length);
      }
      // Nothing late or extra.
      await sys.run(sys.sim.scheduler.sleep(2_000_000));
      expect(rx.length).toBe(1 + sentIcmp + sentUdp);

      // Every reply is one we expect, byte for byte, each exactly once.
      const got = new Map<string, number>();
      for (const f of rx.slice(1)) got.set(hex(f), (got.get(hex(f)) ?? 0) + 1);
      expect(got).toEqual(expected);
      // UDP echoes carry exactly the payload that was sent; ICMP replies their request's data.
      let udpChecked = 0;
      for (const f of rx.slice(1).map(parseFrame)) {
        if (f.udp !== undefined) {
          expect(hex(f.udp.payload)).toBe(hex(udpPayloads.get(f.udp.dstPort)!));
          udpChecked++;
        } else {
          expect(f.icmp?.type).toBe(ICMP_ECHOREPLY);
        }
      }
      expect(udpChecked).toBe(sentUdp);
      expect(nic.stats.tx.packets).toBe(1 + sentIcmp + sentUdp);
      expect(nic.stats.tx.drops).toBe(0);
      expect(nic.stats.rx.packets).toBe(1 + sentIcmp + sentUdp);
      expect(nic.stats.rx.drops).toBe(0);
    } finally {
      report = await sys.shutdown();
    }

    // The responder in the worker saw every request and built every reply we received.
    const r = report.host.setup as ResponderReport;
    expect(r.framesReceived).toBe(1 + sentIcmp + sentUdp);
    expect(r.arpReplies).toBe(1);
    expect(r.icmpEchoReplies).toBe(sentIcmp);
    expect(r.udpEchoes).toBe(sentUdp);
    expect(r.malformed).toBe(0);
    expect(r.ignored).toBe(0);
    expect(r.framesSent).toBe(rx.length);
    expect(r.digest).toBe(rx.reduce((d, f) => addFrameDigest(d, f), 0));
    expect(r.bytesSent).toBe(rx.reduce((n, f) => n + f.length, 0));
    // Two switch ports — the responder's (attached by the setup hook, before
    // the devices) and the guest's NIC — every frame through both.
    expect(r.switchPorts.map((p) => p.name)).toEqual([`responder/${RESPONDER_MAC}`, `vm1/${GUEST_MAC}`]);
    const [responderPort, nicPort] = r.switchPorts as [ResponderReport["switchPorts"][number], ResponderReport["switchPorts"][number]];
    expect(nicPort.framesIn).toBe(rx.length);
    expect(nicPort.framesOut).toBe(rx.length);
    expect(responderPort.framesIn).toBe(rx.length);
    expect(responderPort.framesOut).toBe(rx.length);

    // The host is another thread, and the traffic went through the link.
    expectCrossThreadTraffic(report);
    // Nothing the guest posted was lost: the host's port never refused a message.
    expect((report.host.partition as { messagesRejected: number }).messagesRejected).toBe(0);
    const dev = report.host.devices[0]!;
    expect(dev.type).toBe("netvsp");
    expect(report.host.eventsRun).toBeGreaterThan(0);
  }, 90_000);

  it("a responder that does not echo UDP: ICMP replies arrive, UDP ones do not, the counts say so, and the host thread's pcap holds every frame", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmbus-sim-threads-"));
    const path = join(dir, "captures", "lan.pcap"); // the directory does not exist yet
    const sys = boot(22, false, path);
    await sys.start();
    const rx: Uint8Array[] = [];
    let report;
    const addresses = { srcMac: GUEST_MAC, dstMac: RESPONDER_MAC, srcIp: GUEST_IP, dstIp: RESPONDER_IP };
    const frames = [
      buildUdpFrame({ ...addresses, srcPort: 5000, dstPort: 7, payload: new Uint8Array(0) }),
      buildIcmpEchoFrame({ ...addresses, type: ICMP_ECHO, identifier: 1, sequence: 1, data: new Uint8Array(56) }),
      buildUdpFrame({ ...addresses, srcPort: 5001, dstPort: 7, payload: new Uint8Array(MTU_PAYLOAD) }),
    ];
    try {
      await sys.boot();
      const nic = sys.vm.drivers<NetvscDriver>("netvsc")[0]!;
      nic.onReceive((f) => rx.push(f.slice()));
      await sys.run(Promise.all(frames.map((f) => nic.send(f))));
      await waitForFrames(sys, rx, 1);
      await sys.run(sys.sim.scheduler.sleep(5_000_000));
      expect(rx.map((f) => parseFrame(f).icmp?.type)).toEqual([ICMP_ECHOREPLY]);
    } finally {
      report = await sys.shutdown();
    }
    const r = report.host.setup as ResponderReport & { readonly pcap: { readonly path: string; readonly frames: number } };
    expect(r.framesReceived).toBe(3);
    expect(r.icmpEchoReplies).toBe(1);
    expect(r.udpEchoes).toBe(0);
    expect(r.ignored).toBe(2);

    // The worker wrote the capture: libpcap, Ethernet, the three requests and the one reply, byte for byte.
    expect(r.pcap).toEqual({ path, frames: 4 });
    const bytes = new Uint8Array(readFileSync(path));
    rmSync(dir, { recursive: true, force: true });
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(v.getUint32(0, true)).toBe(0xa1b2c3d4);
    expect(v.getUint32(20, true)).toBe(1); // LINKTYPE_ETHERNET
    const captured: Uint8Array[] = [];
    let last = -1;
    for (let at = 24; at < bytes.length; ) {
      const t = v.getUint32(at, true) * 1e6 + v.getUint32(at + 4, true);
      expect(t).toBeGreaterThanOrEqual(last);
      last = t;
      const incl = v.getUint32(at + 8, true);
      expect(v.getUint32(at + 12, true)).toBe(incl);
      captured.push(bytes.slice(at + 16, at + 16 + incl));
      at += 16 + incl;
    }
    const sorted = (list: Uint8Array[]) => list.map(hex).sort();
    expect(sorted(captured)).toEqual(sorted([...frames, ...rx]));
  }, 60_000);

  it("a bad hostSetup config fails start() with a typed error naming the field, and the worker is gone", async () => {
    const sys = new ThreadedSystem(
      {
        plugins: [networkPlugin],
        hostPlugins,
        hostSetup: { module: networkUrl.href, exportName: "networkResponderSetup", config: { switch: "lan", mac: RESPONDER_MAC, ip: 254 } },
        workerUrl,
      },
      { vcpus: 1 },
    );
    sys.addHostDevice("netvsp", { config: { mac: GUEST_MAC, switch: "lan" } });
    await expectStartFails(sys, "responder config.ip");
  }, 30_000);
});
