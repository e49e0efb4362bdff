/**
 * A minimal IP host on a NIC for end-to-end tests: answers ARP requests for
 * its address and ICMP echo requests to it (the reply carries the request's
 * identifier, sequence and data).
 */
import {
  ARPOP_REQUEST,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  buildArpReplyFrame,
  buildIcmpEchoFrame,
  parseFrame,
  type NetvscDriver,
} from "../../../../drivers/netvsc/index.js";

export function respond(nic: NetvscDriver, mac: string, ip: string): void {
  nic.onReceive((frame) => {
    const f = parseFrame(frame);
    if (f.arp && f.arp.op === ARPOP_REQUEST && f.arp.targetIp === ip) void nic.send(buildArpReplyFrame(f.arp, mac));
    if (f.icmp && f.icmp.type === ICMP_ECHO && f.ipv4 && f.ipv4.dst === ip) {
      void nic.send(
        buildIcmpEchoFrame({
          srcMac: mac,
          dstMac: f.ethernet.src,
          srcIp: ip,
          dstIp: f.ipv4.src,
          type: ICMP_ECHOREPLY,
          identifier: f.icmp.identifier,
          sequence: f.icmp.sequence,
          data: f.icmp.data,
        }),
      );
    }
  });
}
