/**
 * The frame toolkit (Ethernet II + 802.1Q, ARP, IPv4, ICMP echo, UDP):
 * checksums against hand-computed values and the RFC examples, golden
 * bytes, round trips, malformed input.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, ProtocolError } from "../../../core/index.js";
import {
  ARPOP_REPLY,
  ARPOP_REQUEST,
  BROADCAST_MAC,
  ETH_P_ARP,
  ETH_P_IP,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  IPPROTO_UDP,
  buildArp,
  buildArpReplyFrame,
  buildArpRequestFrame,
  buildEthernetFrame,
  buildIcmp,
  buildIcmpEchoFrame,
  buildIpv4Packet,
  buildUdpDatagram,
  buildUdpFrame,
  formatIpv4Address,
  formatMac,
  internetChecksum,
  isBroadcastMac,
  isMulticastMac,
  parseArp,
  parseEthernetFrame,
  parseFrame,
  parseIcmp,
  parseIpv4Address,
  parseIpv4Packet,
  parseMac,
  parseUdpDatagram,
  udpChecksum,
} from "../../../drivers/netvsc/protocol/index.js";
import { FC_RUNS, FUZZ_RUNS, bytesOf, expectTypedError, hexOf, onlyTypedErrors, thrown } from "./helpers.js";

const MAC_A = "00:15:5d:00:00:01";
const MAC_B = "00:15:5d:00:00:02";

describe("addresses", () => {
  it("parses and formats MAC addresses", () => {
    expect(hexOf(parseMac("00:15:5D:01:02:03"))).toBe("00 15 5d 01 02 03");
    expect(hexOf(parseMac("00-15-5d-01-02-03"))).toBe("00 15 5d 01 02 03");
    expect(formatMac(bytesOf("00 15 5d 0a bc ff"))).toBe("00:15:5d:0a:bc:ff");
    for (const bad of ["00:15:5d:01:02", "00:15:5d:01:02:030", "g0:15:5d:01:02:03", ""]) {
      expectTypedError(thrown(() => parseMac(bad)), InvalidArgumentError, { field: "mac", value: bad });
    }
    expect([isBroadcastMac(BROADCAST_MAC), isMulticastMac("01:00:5e:00:00:01"), isMulticastMac(MAC_A)]).toEqual([true, true, false]);
  });

  it("parses and formats IPv4 addresses", () => {
    expect(hexOf(parseIpv4Address("192.168.0.199"))).toBe("c0 a8 00 c7");
    expect(formatIpv4Address(bytesOf("0a 00 00 01"))).toBe("10.0.0.1");
    for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "a.b.c.d"]) expect(thrown(() => parseIpv4Address(bad))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe("Internet checksum", () => {
  it("matches the RFC 1071 §3 example (sum ddf2, checksum 220d)", () => {
    expect(internetChecksum(bytesOf("00 01 f2 03 f4 f5 f6 f7"))).toBe(0x220d);
  });

  it("matches the well-known IPv4 header example (checksum b861)", () => {
    // 45 00 0073 0000 4000 40 11 [b861] c0a80001 c0a800c7
    const header = bytesOf("45 00 00 73 00 00 40 00 40 11 00 00 c0 a8 00 01 c0 a8 00 c7");
    expect(internetChecksum(header)).toBe(0xb861);
    header.set([0xb8, 0x61], 10);
    expect(internetChecksum(header)).toBe(0);
  });

  it("pads an odd byte with zero and folds carries", () => {
    expect(internetChecksum(bytesOf("01"))).toBe(0xfeff);
    expect(internetChecksum(bytesOf("ff ff ff ff"))).toBe(0x0000);
    expect(internetChecksum(new Uint8Array(0))).toBe(0xffff);
  });
});

describe("IPv4", () => {
  it("builds the example header byte for byte", () => {
    const packet = buildIpv4Packet({ src: "192.168.0.1", dst: "192.168.0.199", protocol: IPPROTO_UDP, payload: new Uint8Array(0x73 - 20) });
    expect(hexOf(packet.subarray(0, 20))).toBe(hexOf(bytesOf("45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7")));
    const parsed = parseIpv4Packet(packet);
    expect(parsed).toMatchObject({ version: 4, headerLength: 20, totalLength: 0x73, ttl: 64, protocol: 17, headerChecksum: 0xb861, dontFragment: true, src: "192.168.0.1" });
    expect(parsed.payload.length).toBe(0x73 - 20);
  });

  it("drops link-layer padding after total_length and keeps options", () => {
    const withOptions = bytesOf("46 00 00 1c 00 00 00 00 40 01 00 00 0a 00 00 01 0a 00 00 02 01 01 01 00 aa bb cc dd 00 00 00 00");
    withOptions.set([(internetChecksum(withOptions.subarray(0, 24)) >> 8) & 0xff, internetChecksum(withOptions.subarray(0, 24)) & 0xff], 10);
    const p = parseIpv4Packet(withOptions);
    expect([p.headerLength, hexOf(p.options), hexOf(p.payload)]).toEqual([24, "01 01 01 00", "aa bb cc dd"]);
  });

  it("rejects malformed headers, naming the field", () => {
    const good = buildIpv4Packet({ src: "10.0.0.1", dst: "10.0.0.2", protocol: 1, payload: bytesOf("00 00 00 00") });
    const with1 = (at: number, b: number): Uint8Array => {
      const c = good.slice();
      c[at] = b;
      return c;
    };
    expectTypedError(thrown(() => parseIpv4Packet(good.subarray(0, 19))), ProtocolError, { protocol: "IPv4", field: "packet length", value: 19 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(0, 0x65))), ProtocolError, { field: "version", value: 6 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(0, 0x44))), ProtocolError, { field: "ihl", value: 4 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(0, 0x4f))), ProtocolError, { field: "ihl", value: 15 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(3, 0x19))), ProtocolError, { field: "total_length", value: 25 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(3, 0x10))), ProtocolError, { field: "total_length", value: 16 });
    expectTypedError(thrown(() => parseIpv4Packet(with1(8, 63))), ProtocolError, { field: "header checksum" });
    expect(parseIpv4Packet(with1(8, 63), { verifyChecksum: false }).ttl).toBe(63);
  });
});

describe("UDP", () => {
  it("computes the checksum of a hand-worked example", () => {
    // pseudo: 0a00+0001+0a00+0002+0011+000a = 141e; udp: 04d2+162e+000a+0000+6869 = 8373;
    // total 9791 → checksum ~9791 = 686e
    const udp = buildUdpDatagram({ srcPort: 1234, dstPort: 5678, payload: bytesOf("68 69") }, "10.0.0.1", "10.0.0.2");
    expect(hexOf(udp)).toBe("04 d2 16 2e 00 0a 68 6e 68 69");
    expect(udpChecksum("10.0.0.1", "10.0.0.2", bytesOf("04 d2 16 2e 00 0a 00 00 68 69"))).toBe(0x686e);
    expect(parseUdpDatagram(udp, "10.0.0.1", "10.0.0.2")).toEqual({ srcPort: 1234, dstPort: 5678, length: 10, checksum: 0x686e, payload: bytesOf("68 69") });
  });

  it("sends a computed 0 as ffff and accepts 0 as 'no checksum'", () => {
    // Choose a payload word that makes the sum ffff: 0x141e (pseudo) + 0x1b0a (ports + length) + x = 0xffff → x = 0xd0d7
    const udp = buildUdpDatagram({ srcPort: 1234, dstPort: 5678, payload: bytesOf("d0 d7") }, "10.0.0.1", "10.0.0.2");
    expect(hexOf(udp.subarray(6, 8))).toBe("ff ff");
    expect(parseUdpDatagram(udp, "10.0.0.1", "10.0.0.2").checksum).toBe(0xffff);
    const none = bytesOf("04 d2 16 2e 00 0a 00 00 68 69");
    expect(parseUdpDatagram(none, "10.0.0.1", "10.0.0.2").checksum).toBe(0);
  });

  it("rejects bad lengths and checksums (checksum covers the addresses)", () => {
    const udp = buildUdpDatagram({ srcPort: 1, dstPort: 2, payload: bytesOf("01 02 03") }, "10.0.0.1", "10.0.0.2");
    expectTypedError(thrown(() => parseUdpDatagram(udp, "10.0.0.1", "10.0.0.3")), ProtocolError, { protocol: "UDP", field: "checksum" });
    const long = udp.slice();
    long[5] = 12;
    expectTypedError(thrown(() => parseUdpDatagram(long, "10.0.0.1", "10.0.0.2")), ProtocolError, { field: "length", value: 12 });
    expectTypedError(thrown(() => parseUdpDatagram(udp.subarray(0, 7), "10.0.0.1", "10.0.0.2")), ProtocolError, { field: "datagram length", value: 7 });
  });
});

describe("ICMP echo", () => {
  it("computes the checksum of a hand-worked echo request", () => {
    // 0800 + 0000 + 0001 + 0001 + 6162 + 6364 = ccc8 → checksum 3337
    const icmp = buildIcmp({ type: ICMP_ECHO, code: 0, identifier: 1, sequence: 1, data: bytesOf("61 62 63 64") });
    expect(hexOf(icmp)).toBe("08 00 33 37 00 01 00 01 61 62 63 64");
    expect(parseIcmp(icmp)).toEqual({ type: 8, code: 0, checksum: 0x3337, identifier: 1, sequence: 1, data: bytesOf("61 62 63 64") });
  });

  it("rejects a wrong checksum and a short message", () => {
    const icmp = buildIcmp({ type: ICMP_ECHOREPLY, code: 0, identifier: 7, sequence: 9, data: new Uint8Array(3) });
    const bad = icmp.slice();
    bad[10] = 1;
    expectTypedError(thrown(() => parseIcmp(bad)), ProtocolError, { protocol: "ICMP", field: "checksum" });
    expectTypedError(thrown(() => parseIcmp(icmp.subarray(0, 7))), ProtocolError, { field: "message length", value: 7 });
  });
});

describe("Ethernet and ARP", () => {
  it("builds the ARP request golden frame", () => {
    const frame = buildArpRequestFrame(MAC_A, "10.0.0.1", "10.0.0.2");
    expect(hexOf(frame)).toBe(
      hexOf(
        bytesOf(
          "ff ff ff ff ff ff | 00 15 5d 00 00 01 | 08 06 | 00 01 | 08 00 | 06 | 04 | 00 01 | 00 15 5d 00 00 01 | 0a 00 00 01 | 00 00 00 00 00 00 | 0a 00 00 02",
        ),
      ),
    );
    const parsed = parseFrame(frame);
    expect(parsed.ethernet).toMatchObject({ dst: BROADCAST_MAC, src: MAC_A, etherType: ETH_P_ARP, headerLength: 14 });
    expect(parsed.arp).toEqual({ op: ARPOP_REQUEST, senderMac: MAC_A, senderIp: "10.0.0.1", targetMac: "00:00:00:00:00:00", targetIp: "10.0.0.2" });
  });

  it("answers an ARP request", () => {
    const request = parseArp(buildArp({ op: ARPOP_REQUEST, senderMac: MAC_A, senderIp: "10.0.0.1", targetMac: "00:00:00:00:00:00", targetIp: "10.0.0.2" }));
    const reply = parseFrame(buildArpReplyFrame(request, MAC_B));
    expect(reply.ethernet).toMatchObject({ dst: MAC_A, src: MAC_B });
    expect(reply.arp).toEqual({ op: ARPOP_REPLY, senderMac: MAC_B, senderIp: "10.0.0.2", targetMac: MAC_A, targetIp: "10.0.0.1" });
  });

  it("rejects non-Ethernet/IPv4 ARP", () => {
    const arp = buildArp({ op: 1, senderMac: MAC_A, senderIp: "10.0.0.1", targetMac: MAC_B, targetIp: "10.0.0.2" });
    const c = arp.slice();
    c[4] = 8;
    expectTypedError(thrown(() => parseArp(c)), ProtocolError, { protocol: "ARP", field: "hlen", value: 8 });
    expectTypedError(thrown(() => parseArp(arp.subarray(0, 27))), ProtocolError, { field: "packet length", value: 27 });
  });

  it("adds and reads an 802.1Q tag", () => {
    const frame = buildEthernetFrame({ dst: MAC_B, src: MAC_A, etherType: ETH_P_IP, vlan: { pcp: 5, dei: 1, vid: 0x123 }, payload: bytesOf("01 02") });
    expect(hexOf(frame)).toBe("00 15 5d 00 00 02 00 15 5d 00 00 01 81 00 b1 23 08 00 01 02");
    expect(parseEthernetFrame(frame)).toEqual({
      dst: MAC_B,
      src: MAC_A,
      etherType: ETH_P_IP,
      vlan: { pcp: 5, dei: 1, vid: 0x123 },
      payload: bytesOf("01 02"),
      headerLength: 18,
    });
    expectTypedError(thrown(() => parseEthernetFrame(frame.subarray(0, 16))), ProtocolError, { protocol: "Ethernet", field: "frame length", value: 16 });
    expectTypedError(thrown(() => parseEthernetFrame(frame.subarray(0, 13))), ProtocolError, { field: "frame length", value: 13 });
    expect(thrown(() => buildEthernetFrame({ dst: MAC_B, src: MAC_A, etherType: 1, vlan: { pcp: 0, dei: 0, vid: 4096 }, payload: new Uint8Array(0) }))).toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it("pads to 60 bytes on request", () => {
    expect(buildEthernetFrame({ dst: MAC_B, src: MAC_A, etherType: ETH_P_ARP, payload: new Uint8Array(28), padToMinimum: true }).length).toBe(60);
    // A padded ARP frame still parses; a padded IPv4 frame drops the padding.
    const ping = buildIcmpEchoFrame({ srcMac: MAC_A, dstMac: MAC_B, srcIp: "10.0.0.1", dstIp: "10.0.0.2", type: ICMP_ECHO, identifier: 1, sequence: 1, data: bytesOf("01") });
    const padded = new Uint8Array(60);
    padded.set(ping);
    expect(parseFrame(padded).icmp?.data).toEqual(bytesOf("01"));
  });
});

describe("whole frames", () => {
  it("a ping round-trips through every layer", () => {
    const data = new Uint8Array(56).map((_, i) => i);
    const frame = buildIcmpEchoFrame({ srcMac: MAC_A, dstMac: MAC_B, srcIp: "10.0.0.1", dstIp: "10.0.0.2", type: ICMP_ECHO, identifier: 0x1c, sequence: 3, data, ttl: 64 });
    expect(frame.length).toBe(14 + 20 + 8 + 56);
    const p = parseFrame(frame);
    expect(p.ipv4).toMatchObject({ src: "10.0.0.1", dst: "10.0.0.2", protocol: 1, totalLength: 84 });
    expect(p.icmp).toMatchObject({ type: ICMP_ECHO, identifier: 0x1c, sequence: 3, data });
  });

  it("UDP frames round-trip for any ports, payloads, addresses and tags", () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const ip = fc.tuple(octet, octet, octet, octet).map((o) => o.join("."));
    const mac = fc.uint8Array({ minLength: 6, maxLength: 6 }).map(formatMac);
    fc.assert(
      fc.property(
        mac,
        mac,
        ip,
        ip,
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.uint8Array({ maxLength: 1472 }),
        fc.option(fc.record({ pcp: fc.integer({ min: 0, max: 7 }), dei: fc.integer({ min: 0, max: 1 }), vid: fc.integer({ min: 0, max: 4095 }) }), { nil: undefined }),
        (srcMac, dstMac, srcIp, dstIp, srcPort, dstPort, payload, vlan) => {
          const frame = buildUdpFrame({ srcMac, dstMac, srcIp, dstIp, srcPort, dstPort, payload, ...(vlan ? { vlan } : {}) });
          const p = parseFrame(frame);
          expect(p.ethernet).toMatchObject({ src: srcMac, dst: dstMac, etherType: ETH_P_IP });
          expect(p.ethernet.vlan).toEqual(vlan);
          expect(p.ipv4).toMatchObject({ src: srcIp, dst: dstIp, protocol: IPPROTO_UDP });
          expect(p.udp).toMatchObject({ srcPort, dstPort, payload });
          expect(p.udp?.checksum).not.toBe(0);
        },
      ),
      FC_RUNS,
    );
  });

  it("random frames only ever raise typed errors", () => {
    const ipHeader = fc.constantFrom("08 00 45", "08 06 00 01 08 00 06 04", "81 00 00 05 08 00 45").map((h) => bytesOf(h));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.option(ipHeader), fc.uint8Array({ maxLength: 120 }), (macs, h, rest) => {
        const frame = new Uint8Array(12 + (h?.length ?? 0) + rest.length);
        frame.set(macs);
        if (h) frame.set(h, 12);
        frame.set(rest, 12 + (h?.length ?? 0));
        onlyTypedErrors(() => parseFrame(frame));
      }),
      FUZZ_RUNS,
    );
  });
});
