/**
 * netvsp against a scripted guest (storvsc-netvsc.md §10 init, §11 data
 * path, §13 RNDIS, §14 host reactions): init bytes, RNDIS bring-up answers,
 * transmit to the switch, receive into the receive buffer, sub-allocation
 * reuse, packet filter, link state, malformed input.
 */
import { describe, expect, it } from "vitest";
import { VM_PKT_DATA_INBAND } from "../../../../core/index.js";
import {
  NVSP_PROTOCOL_VERSION_5,
  buildEthernetFrame,
  decodeRndisMessage,
  encodeRndisMessage,
  parseMac,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NetvspPacketError } from "../../../../drivers/netvsc/host/index.js";
import { NIC_MAC, PEER_MAC, bootNetvsp, toHex, u32, type ScriptedNetGuest } from "./harness.js";

function frame(dst: string, src: string, len: number, seed = 1): Uint8Array {
  const payload = Uint8Array.from({ length: len - 14 }, (_, i) => (i * 7 + seed) & 0xff);
  return buildEthernetFrame({ dst, src, etherType: 0x0800, payload });
}

function packetMsg(f: Uint8Array): Uint8Array {
  return encodeRndisMessage({ kind: "packet", data: f, ppis: [] });
}

async function ready(): Promise<ScriptedNetGuest> {
  const g = await bootNetvsp();
  await g.init();
  await g.bringUp();
  return g;
}

describe("netvsp §10 initialization", () => {
  it("answers INIT, receive and send buffer byte for byte (v6.1: 40-byte replies)", async () => {
    const g = await bootNetvsp();
    const [init, recv, send] = await g.init();
    expect(toHex(init as Uint8Array)).toBe(toHex(Uint8Array.from([2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 34, 0, 0, 0, 1, 0, 0, 0, ...new Array<number>(24).fill(0)])));
    const r = recv as Uint8Array;
    expect(r.length).toBe(40);
    const size = 256 + 1514 + 36;
    const count = Math.floor((1024 * 1024) / size);
    expect([u32(r, 0), u32(r, 4), u32(r, 8), u32(r, 12), u32(r, 16), u32(r, 20), u32(r, 24)]).toEqual([102, 1, 1, 0, size, count, size * count]);
    const s = send as Uint8Array;
    expect([s.length, u32(s, 0), u32(s, 4), u32(s, 8)]).toEqual([40, 105, 1, 6144]);
    expect(g.nic.nvspVersion).toBe(0x00060001);
  });

  it("replies with 28 bytes below v6.1 and NONE for an unknown version (the guest may retry)", async () => {
    const g = await bootNetvsp();
    const bad = await g.request({ kind: "init", minProtocolVersion: 0x00070000, maxProtocolVersion: 0x00070000 });
    // 28 bytes, padded to 8 in the ring (what the guest's packet shows).
    expect([bad.length, u32(bad, 0), u32(bad, 12), u32(bad, 28)]).toEqual([32, 2, 0, 0]);
    const [init] = await g.init({ version: NVSP_PROTOCOL_VERSION_5 });
    expect([(init as Uint8Array).length, u32(init as Uint8Array, 12)]).toEqual([32, 1]);
  });

  it("a duplicate init message or a message before INIT fails the channel", async () => {
    const g = await bootNetvsp();
    await g.post({ kind: "send_ndis_ver", ndisMajorVersion: 6, ndisMinorVersion: 30 });
    await g.settle();
    expect(g.primary.rescinded).toBe(true);
    expect(g.nic.lastFatalError).toBeInstanceOf(NetvspPacketError);
  });
});

describe("netvsp RNDIS device (§13)", () => {
  it("INITIALIZE, the bring-up queries with real answers, unknown OID → NOT_SUPPORTED", async () => {
    const g = await bootNetvsp();
    await g.init();
    const init = await g.rndis({ kind: "initialize", requestId: 5, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 });
    expect(init).toMatchObject({ kind: "initialize_cmplt", requestId: 5, status: 0, majorVersion: 1, deviceFlags: 1, medium: 0, maxPacketsPerMessage: 8, packetAlignmentFactor: 3 });
    const q = async (oid: number, info = new Uint8Array(0)) => g.rndis({ kind: "query", requestId: g.rid(), oid, deviceVcHandle: 0, info });
    const mac = await q(0x01010101);
    expect(mac.kind === "query_cmplt" && toHex(mac.info)).toBe(toHex(parseMac(NIC_MAC)));
    const mfs = await q(0x00010106);
    expect(mfs.kind === "query_cmplt" && u32(mfs.info, 0)).toBe(1500);
    const media = await q(0x00010114);
    expect(media.kind === "query_cmplt" && u32(media.info, 0)).toBe(0);
    const speed = await q(0x00010107);
    expect(speed.kind === "query_cmplt" && u32(speed.info, 0)).toBe(100_000_000);
    const hw = await q(0xfc01020d, Uint8Array.from([0xa7, 3, 156, 0]));
    expect(hw.kind === "query_cmplt" && [hw.status, hw.info.length, hw.info[0]]).toEqual([0, 156, 0xa7]);
    const rss = await q(0x00010203, Uint8Array.from([0x88, 2, 18, 0]));
    expect(rss.kind === "query_cmplt" && [rss.info.length, u32(rss.info, 12)]).toEqual([18, 8]);
    const unknown = await q(0x00010999);
    expect(unknown).toMatchObject({ kind: "query_cmplt", status: 0xc00000bb });
    expect(unknown.kind === "query_cmplt" && unknown.info.length).toBe(0);
    const ka = await g.rndis({ kind: "keepalive", requestId: 77 });
    expect(ka).toMatchObject({ kind: "keepalive_cmplt", requestId: 77, status: 0 });
  });

  it("control responses come in xfer-page packets with set id 0xCAFE and channel type 1", async () => {
    const g = await bootNetvsp();
    await g.init();
    const nvsp = await g.sendRndis(encodeRndisMessage({ kind: "initialize", requestId: 1, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 }), 1);
    expect([u32(nvsp, 0), u32(nvsp, 4)]).toEqual([108, 1]);
    await g.settle();
    const [x] = g.takeXfer();
    expect(x?.setId).toBe(0xcafe);
    expect([u32(x?.data as Uint8Array, 0), u32(x?.data as Uint8Array, 4), u32(x?.data as Uint8Array, 8)]).toEqual([107, 1, 0xffffffff]);
    expect(x?.ranges?.[0]?.byteOffset).toBe(0);
  });

  it("a second INITIALIZE fails the channel", async () => {
    const g = await ready();
    await g.sendRndis(encodeRndisMessage({ kind: "initialize", requestId: 9, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 }), 1).catch(() => null);
    await g.settle();
    expect(g.primary.rescinded).toBe(true);
    expect(g.nic.counters.channelsFailed).toBe(1);
  });

  it("an unknown RNDIS type and offsets outside the message fail the packet (status 2), the channel goes on", async () => {
    const g = await ready();
    const unknown = new Uint8Array(16);
    new DataView(unknown.buffer).setUint32(0, 0x77, true);
    new DataView(unknown.buffer).setUint32(4, 16, true);
    const r1 = await g.sendRndis(unknown, 1);
    expect([u32(r1, 0), u32(r1, 4)]).toEqual([108, 2]);
    const pkt = packetMsg(frame(PEER_MAC, NIC_MAC, 60));
    new DataView(pkt.buffer).setUint32(8, 4000, true); // data_offset past msg_len
    const r2 = await g.sendRndis(pkt, 0);
    expect([u32(r2, 0), u32(r2, 4)]).toEqual([108, 2]);
    expect(g.nic.counters.drops["tx-invalid"]).toBe(1);
    expect(g.primary.rescinded).toBe(false);
    const ok = await g.sendRndis(packetMsg(frame(PEER_MAC, NIC_MAC, 60)), 0);
    expect(u32(ok, 4)).toBe(1);
  });

  it("a section index outside the send buffer and an unknown NVSP type fail the channel", async () => {
    for (const bad of ["section", "type"] as const) {
      const g = await ready();
      const bytes =
        bad === "section"
          ? (() => {
              const b = new Uint8Array(40);
              const v = new DataView(b.buffer);
              v.setUint32(0, 107, true);
              v.setUint32(4, 0, true);
              v.setUint32(8, 9999, true);
              v.setUint32(12, 60, true);
              return b;
            })()
          : Uint8Array.from([0x55, 0, 0, 0, ...new Array<number>(36).fill(0)]);
      await g.run(g.primary.sendRequest(bytes).catch(() => null));
      await g.settle();
      expect(g.primary.rescinded).toBe(true);
      expect(g.nic.lastFatalError).toBeInstanceOf(Error);
    }
  });
});

describe("netvsp data path (§11)", () => {
  it("a transmitted frame comes out of the switch byte-identical; two packets may share a section", async () => {
    const g = await ready();
    const f1 = frame(PEER_MAC, NIC_MAC, 60, 1);
    const f2 = frame(PEER_MAC, NIC_MAC, 1514, 2);
    const m1 = packetMsg(f1);
    const pad = new Uint8Array(Math.ceil(m1.length / 8) * 8);
    pad.set(m1);
    new DataView(pad.buffer).setUint32(4, pad.length, true);
    const both = new Uint8Array(pad.length + packetMsg(f2).length);
    both.set(pad);
    both.set(packetMsg(f2), pad.length);
    const c = await g.sendRndis(both, 0, 3);
    expect(u32(c, 4)).toBe(1);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f1), toHex(f2)]);
    expect(g.nic.counters.txFrames).toBe(2);
    const tooBig = await g.sendRndis(packetMsg(frame(PEER_MAC, NIC_MAC, 1515)), 0);
    expect(u32(tooBig, 4)).toBe(2);
  });

  it("a frame from the switch arrives as RNDIS PACKET in an xfer-page packet; its sub-allocation is reused only after completion", async () => {
    const g = await bootNetvsp();
    // 16 control + 2 data sub-allocations.
    await g.init({ recvBytes: 18 * 1806 });
    await g.bringUp();
    const f = (n: number) => frame(NIC_MAC, PEER_MAC, 100, n);
    for (let i = 1; i <= 3; i++) g.peer.send(f(i));
    await g.settle();
    const xs = g.takeXfer();
    expect(xs.length).toBe(1); // one batch of the frames that found a buffer
    const x = xs[0]!;
    expect(x.setId).toBe(0xcafe);
    expect(x.ranges?.map((r) => r.byteOffset)).toEqual([16 * 1806, 17 * 1806]);
    expect(u32(x.data, 4)).toBe(0); // channel type data
    const got = (x.ranges ?? []).map((r) => decodeRndisMessage(g.readRecv(r)));
    expect(got.map((m) => (m.kind === "packet" ? toHex(m.data) : m.kind))).toEqual([toHex(f(1)), toHex(f(2))]);
    expect(g.nic.counters.drops["no-buffer"]).toBe(1);
    g.peer.send(f(4));
    await g.settle();
    expect(g.takeXfer().length).toBe(0);
    expect(g.nic.counters.drops["no-buffer"]).toBe(2);
    await g.complete(x);
    g.peer.send(f(5));
    await g.settle();
    const [y] = g.takeXfer();
    expect(y?.ranges?.[0]?.byteOffset).toBe(16 * 1806);
    const m = decodeRndisMessage(g.readRecv(y!.ranges![0]!));
    expect(m.kind === "packet" && toHex(m.data)).toBe(toHex(f(5)));
  });

  it("an unknown completion id fails the channel", async () => {
    const g = await ready();
    await g.complete({ type: 7, transId: 4242n, flags: 0, data: new Uint8Array(0) });
    expect(g.primary.rescinded).toBe(true);
  });

  it("packet filter 0 → nothing indicated; broadcast passes with 0x0D; other unicast filtered", async () => {
    const g = await bootNetvsp();
    await g.init();
    await g.bringUp(0);
    g.peer.send(frame(NIC_MAC, PEER_MAC, 64));
    g.peer.send(frame("ff:ff:ff:ff:ff:ff", PEER_MAC, 64));
    await g.settle();
    expect(g.takeXfer().length).toBe(0);
    expect(g.nic.counters.drops.filtered).toBe(2);
    const info = Uint8Array.of(0x0d, 0, 0, 0);
    await g.rndis({ kind: "set", requestId: g.rid(), oid: 0x0001010e, deviceVcHandle: 0, info });
    g.peer.send(frame("ff:ff:ff:ff:ff:ff", PEER_MAC, 64));
    g.peer.send(frame("00:15:5d:00:00:99", PEER_MAC, 64));
    await g.settle();
    const xs = g.takeXfer();
    expect(xs.length).toBe(1);
    expect(xs[0]?.ranges?.length).toBe(1);
    expect(g.nic.counters.drops.filtered).toBe(3);
  });

  it("link down → INDICATE_STATUS MEDIA_DISCONNECT, nothing delivered; up → MEDIA_CONNECT", async () => {
    const g = await ready();
    g.nic.setLink(false);
    await g.settle();
    const [ind] = g.takeXfer();
    const m = decodeRndisMessage(g.readRecv(ind!.ranges![0]!));
    expect(m).toMatchObject({ kind: "indicate_status", status: 0x4001000c });
    expect(m.kind === "indicate_status" && m.payload.length).toBe(0);
    await g.complete(ind!);
    g.peer.send(frame(NIC_MAC, PEER_MAC, 64));
    await g.settle();
    expect(g.takeXfer().length).toBe(0);
    expect(g.nic.counters.drops["link-down"]).toBe(1);
    g.nic.setLink(true);
    await g.settle();
    const [up] = g.takeXfer();
    expect(decodeRndisMessage(g.readRecv(up!.ranges![0]!))).toMatchObject({ kind: "indicate_status", status: 0x4001000b });
  });

  it("subchannel allocation: completion with the count, offers, then SEND_INDIRECTION_TABLE", async () => {
    const g = await ready();
    const c = await g.request({ kind: "subchn_req", op: 1, numSubchannels: 3 });
    expect([u32(c, 0), u32(c, 4), u32(c, 8)]).toEqual([133, 1, 3]);
    await g.run(async () => {
      while (g.primary.subchannels.length < 3) await g.sys.sim.scheduler.sleep(10_000);
    });
    for (const sc of g.primary.subchannels) await g.run(sc.open({ sendRingBytes: 64 * 1024, recvRingBytes: 64 * 1024 }));
    await g.settle();
    const table = g.packets.find((p) => p.type === VM_PKT_DATA_INBAND && u32(p.data, 0) === 134);
    expect(table).toBeDefined();
    const d = table!.data;
    expect([u32(d, 4), u32(d, 8)]).toEqual([16, 12]);
    expect(Array.from({ length: 16 }, (_, i) => u32(d, 12 + 4 * i))).toEqual(Array.from({ length: 16 }, (_, i) => i % 4));
    // A data packet on a subchannel goes out too.
    const sc = g.primary.subchannels[1]!;
    const f = frame(PEER_MAC, NIC_MAC, 80, 9);
    const r = await g.sendRndis(packetMsg(f), 0, 5, sc);
    expect(u32(r, 4)).toBe(1);
    await g.settle();
    expect(toHex(g.peerFrames.at(-1)!)).toBe(toHex(f));
  });
});
