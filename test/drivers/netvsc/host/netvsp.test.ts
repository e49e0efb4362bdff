/**
 * netvsp against a scripted guest (storvsc-netvsc.md §10 init, §11 data
 * path, §12 subchannels, §13 RNDIS, §14 host reactions): init bytes and
 * acceptance (any order, each once, nothing else until init ends), RNDIS
 * bring-up answers and OIDs, transmit to the switch from sections and GPA
 * ranges (header and PPIs in the first range), receive into the receive
 * buffer, sub-allocation reuse, packet filter, link state, RSS across four
 * queue workers, malformed input.
 */
import { describe, expect, it } from "vitest";
import { ProtocolError, VM_PKT_DATA_INBAND, type GuestChannel } from "../../../../core/index.js";
import {
  NBL_HASH_VALUE,
  NDIS_HASH_FUNC_TOEPLITZ,
  NDIS_HASH_IPV4,
  NDIS_HASH_IPV6,
  NDIS_HASH_TCP_IPV4,
  NDIS_HASH_TCP_IPV6,
  NVSP_PROTOCOL_VERSION_1,
  NVSP_PROTOCOL_VERSION_2,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_61,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  buildEthernetFrame,
  buildIpv4Packet,
  buildUdpDatagram,
  decodeRndisMessage,
  defaultIndirectionTable,
  encodeNdisRecvScaleParam,
  encodeNvspMessage,
  encodeRndisMessage,
  findPpi,
  hashValuePpi,
  netvscDefaultHashKey,
  parseMac,
  ppiU32,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NetvspPacketError, rssHash } from "../../../../drivers/netvsc/host/index.js";
import { LINUX_INIT_ORDER, NIC_MAC, PEER_MAC, bootNetvsp, toHex, u32, type HostPacket, type InitStep, type ScriptedNetGuest } from "./harness.js";

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

  it("a message before INIT fails the channel (§10: only INIT is legal)", async () => {
    const before: { name: string; send: (g: ScriptedNetGuest) => Promise<unknown> }[] = [
      { name: "SEND_NDIS_VER", send: (g) => g.initStep("ndis_ver") },
      { name: "SEND_RECV_BUF", send: (g) => g.initStep("recv_buf", { expectReply: false }) },
      { name: "SUBCHANNEL", send: (g) => g.post({ kind: "subchn_req", op: 1, numSubchannels: 1 }) },
      { name: "SEND_RNDIS_PKT", send: (g) => g.post({ kind: "send_rndis_pkt", channelType: 1, sendBufferSectionIndex: 0xffffffff, sendBufferSectionSize: 0 }) },
    ];
    for (const c of before) {
      const g = await bootNetvsp();
      await c.send(g);
      await expectFailed(g, { value: c.name, limit: /arrived before a successful INIT/ });
      expect(g.nic.nvspVersion).toBeNull();
    }
  });
});

/** The last message failed the primary (and only it) with a NetvspPacketError naming `field` (default msg_type), `value` and a limit matching `limit`. */
async function expectFailed(g: ScriptedNetGuest, e: { field?: string; value: string | number | RegExp; limit: RegExp }): Promise<void> {
  await g.settle();
  expect(g.primary.rescinded).toBe(true);
  expect(g.nic.counters.channelsFailed).toBe(1);
  const err = g.nic.lastFatalError;
  expect(err).toBeInstanceOf(NetvspPacketError);
  const pe = err as NetvspPacketError;
  expect(pe.field).toBe(e.field ?? "msg_type");
  if (e.value instanceof RegExp) expect(String(pe.value)).toMatch(e.value);
  else expect(pe.value).toBe(e.value);
  expect(pe.limit).toMatch(e.limit);
}

/** After init: RNDIS bring-up, then one frame each way, byte for byte. */
async function framesPass(g: ScriptedNetGuest, seed: number): Promise<void> {
  await g.bringUp();
  const out = frame(PEER_MAC, NIC_MAC, 120, seed);
  const before = g.peerFrames.length;
  const c = await g.sendRndis(packetMsg(out), 0, 2);
  expect([u32(c, 0), u32(c, 4)]).toEqual([108, 1]);
  await g.settle();
  expect(g.peerFrames.slice(before).map(toHex)).toEqual([toHex(out)]);
  const inbound = frame(NIC_MAC, PEER_MAC, 90, seed + 1);
  g.peer.send(inbound);
  await g.settle();
  const [x] = g.takeXfer();
  const m = decodeRndisMessage(g.readRecv(x!.ranges![0]!));
  expect(m.kind === "packet" && toHex(m.data)).toBe(toHex(inbound));
  await g.complete(x!);
}

/** Every order of `items` (small lists only). */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

/** The four post-INIT messages as a guest would send them once more, for the duplicate cases (buffers without asking for a completion). */
const AGAIN: Record<InitStep, string> = { ndis_config: "SEND_NDIS_CONFIG", ndis_ver: "SEND_NDIS_VER", recv_buf: "SEND_RECV_BUF", send_buf: "SEND_SEND_BUF" };

describe("netvsp §10 init acceptance: after INIT the rest in any order, each once; anything else is fatal", () => {
  it("(a) every order with NDIS_CONFIG before the receive buffer completes init at v6.1, and frames then pass", async () => {
    const orders = permutations(LINUX_INIT_ORDER).filter((o) => o.indexOf("ndis_config") < o.indexOf("recv_buf"));
    expect(orders.length).toBe(12);
    let seed = 1;
    for (const order of orders) {
      const g = await bootNetvsp();
      const replies = await g.init({ order: order.slice(0, 3) });
      // Three of four: init is not over until the last one (or a SEND_RNDIS_PKT) arrives.
      expect(g.nic.nvspInitialized).toBe(false);
      const last = await g.initStep(order[3]!);
      expect(g.nic.nvspInitialized, order.join(",")).toBe(true);
      // INIT_COMPLETE, SEND_RECV_BUF_COMPLETE and SEND_SEND_BUF_COMPLETE, all status SUCCESS, whatever the order.
      const all = [...replies, ...(last === null ? [] : [last])];
      expect(all.map((r) => [u32(r, 0), u32(r, r[0] === 2 ? 12 : 4)]).sort((a, b) => a[0]! - b[0]!)).toEqual([
        [2, 1],
        [102, 1],
        [105, 1],
      ]);
      expect(g.nic.receiveBufferLayout?.count).toBe(Math.floor((1024 * 1024) / 1806));
      await framesPass(g, (seed += 2));
      expect(g.nic.counters.channelsFailed).toBe(0);
    }
  });

  it("(a) a SEND_RNDIS_PKT with everything but the send buffer ends init (OV); the data path then runs on GPA ranges", async () => {
    const g = await bootNetvsp();
    await g.init({ order: ["ndis_ver", "ndis_config", "recv_buf"] });
    expect(g.nic.nvspInitialized).toBe(false);
    const initMsg = encodeRndisMessage({ kind: "initialize", requestId: 3, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 });
    const c = await g.sendRndisPageBuffer(initMsg, 1, [{ offset: 0, length: initMsg.length }]);
    expect([u32(c, 0), u32(c, 4)]).toEqual([108, 1]);
    expect(g.nic.nvspInitialized).toBe(true);
    expect(g.nic.rndisState).toBe("operational");
    await g.settle();
    const [x] = g.takeXfer();
    expect(decodeRndisMessage(g.readRecv(x!.ranges![0]!))).toMatchObject({ kind: "initialize_cmplt", requestId: 3, status: 0 });
    await g.complete(x!);
    const f = frame(PEER_MAC, NIC_MAC, 200, 4);
    const msg = packetMsg(f);
    const d = await g.sendRndisPageBuffer(msg, 0, [{ offset: 64, length: msg.length }]);
    expect(u32(d, 4)).toBe(1);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
  });

  it("(b) each post-INIT message sent twice fails the channel, during init and after it", async () => {
    for (const step of LINUX_INIT_ORDER) {
      // During init: the messages Linux sends before it (NDIS_CONFIG needs to precede the receive buffer), then this one twice.
      const during = await bootNetvsp();
      const prefix = LINUX_INIT_ORDER.slice(0, LINUX_INIT_ORDER.indexOf(step)).filter((s) => s === "ndis_config");
      await during.init({ order: [...prefix, step] });
      expect(during.nic.nvspInitialized).toBe(false);
      await during.initStep(step, { expectReply: false });
      await expectFailed(during, { value: AGAIN[step], limit: /was already received \(each init message at most once\)/ });
      // After init: the full Linux sequence, then this one again.
      const after = await bootNetvsp();
      await after.init();
      expect(after.nic.nvspInitialized).toBe(true);
      await after.initStep(step, { expectReply: false });
      await expectFailed(after, { value: AGAIN[step], limit: /was already received/ });
    }
  });

  it("(c) a second INIT fails the channel, during init and after it", async () => {
    for (const order of [[], ["ndis_config", "ndis_ver"], LINUX_INIT_ORDER] as const) {
      const g = await bootNetvsp();
      await g.init({ order });
      await g.post({ kind: "init", minProtocolVersion: NVSP_PROTOCOL_VERSION_61, maxProtocolVersion: NVSP_PROTOCOL_VERSION_61 });
      await expectFailed(g, { value: "INIT", limit: /repeated after a successful INIT/ });
    }
  });

  it("(d) SEND_RECV_BUF before SEND_NDIS_CONFIG fails at v6.1; at v1 (no NDIS_CONFIG exists) it is accepted", async () => {
    const v61 = await bootNetvsp();
    await v61.init({ order: ["ndis_ver"] });
    await v61.initStep("recv_buf", { expectReply: false });
    await expectFailed(v61, { value: "SEND_RECV_BUF", limit: /needs SEND_NDIS_CONFIG first from NVSP v2 on/ });
    expect(v61.nic.receiveBufferLayout).toBeNull();

    const v1 = await bootNetvsp();
    const [init, recv, send] = await v1.init({ version: NVSP_PROTOCOL_VERSION_1, order: ["recv_buf", "send_buf", "ndis_ver"] });
    expect([u32(init!, 4), u32(init!, 12)]).toEqual([2, 1]);
    expect([u32(recv!, 0), u32(recv!, 4), u32(recv!, 16)]).toEqual([102, 1, 1806]);
    expect([u32(send!, 0), u32(send!, 4)]).toEqual([105, 1]);
    expect(v1.nic.nvspVersion).toBe(NVSP_PROTOCOL_VERSION_1);
    expect(v1.nic.nvspInitialized).toBe(true);
    await framesPass(v1, 40);

    // And at v1 the NDIS_CONFIG message itself is a type newer than the version.
    const cfg = await bootNetvsp();
    await cfg.init({ version: NVSP_PROTOCOL_VERSION_1, order: [] });
    await cfg.initStep("ndis_config", { version: NVSP_PROTOCOL_VERSION_2 });
    await cfg.settle();
    expect(cfg.primary.rescinded).toBe(true);
    expect(cfg.nic.lastFatalError).toBeInstanceOf(ProtocolError);
    expect((cfg.nic.lastFatalError as ProtocolError).value).toBe("125 (SEND_NDIS_CONFIG)");
  });

  it("(e) messages out of phase during init fail the channel: SUBCHANNEL, OID_QUERY_EX, SWITCH_DATA_PATH, revokes, an early SEND_RNDIS_PKT, a completion", async () => {
    const rndisInit = encodeRndisMessage({ kind: "initialize", requestId: 1, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 });
    const cases: { what: string; prefix: readonly InitStep[]; send: (g: ScriptedNetGuest) => Promise<unknown>; field?: string; value: string | RegExp; limit: RegExp }[] = [
      { what: "SUBCHANNEL before the buffers", prefix: [], send: (g) => g.post({ kind: "subchn_req", op: 1, numSubchannels: 1 }), value: "SUBCHANNEL", limit: /arrived during NVSP initialization/ },
      {
        what: "OID_QUERY_EX",
        prefix: ["ndis_config", "ndis_ver"],
        send: (g) => g.post({ kind: "oid_query_ex", header: { type: 0x96, revision: 1, size: 8 }, oid: 0x00010202 }),
        value: "OID_QUERY_EX",
        limit: /arrived during NVSP initialization/,
      },
      { what: "SWITCH_DATA_PATH", prefix: ["ndis_config", "ndis_ver", "recv_buf"], send: (g) => g.post({ kind: "active_dp", activeDatapath: 1 }), value: "SWITCH_DATA_PATH", limit: /arrived during NVSP initialization/ },
      { what: "REVOKE_RECV_BUF", prefix: ["ndis_config", "recv_buf"], send: (g) => g.post({ kind: "revoke_recv_buf", id: 0xcafe }), value: "REVOKE_RECV_BUF", limit: /arrived during NVSP initialization/ },
      { what: "REVOKE_SEND_BUF", prefix: ["send_buf"], send: (g) => g.post({ kind: "revoke_send_buf", id: 0 }), value: "REVOKE_SEND_BUF", limit: /arrived during NVSP initialization/ },
      {
        what: "SEND_RNDIS_PKT with both buffers but no NDIS_VER",
        prefix: ["ndis_config", "recv_buf", "send_buf"],
        send: (g) => g.run(g.primary.sendPacket(encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 1, sendBufferSectionIndex: 0, sendBufferSectionSize: rndisInit.length }), 0, 0)),
        value: "SEND_RNDIS_PKT",
        limit: /before SEND_NDIS_VER \(§10\)$/,
      },
      {
        what: "SEND_RNDIS_PKT right after INIT",
        prefix: [],
        send: (g) => g.run(g.primary.sendPacket(encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 0, sendBufferSectionIndex: 0xffffffff, sendBufferSectionSize: 0 }), 0, 0)),
        value: "SEND_RNDIS_PKT",
        limit: /before SEND_NDIS_CONFIG, SEND_NDIS_VER, SEND_RECV_BUF/,
      },
      {
        what: "a completion (nothing was indicated yet)",
        prefix: ["ndis_config", "ndis_ver", "recv_buf"],
        send: (g) => g.run(g.primary.sendCompletion(1n, encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: 1 }, { size: 8 }))),
        field: "completion transaction id",
        value: /^1$/,
        limit: /names no transfer-page packet in flight/,
      },
    ];
    for (const c of cases) {
      const g = await bootNetvsp();
      await g.init({ order: c.prefix });
      expect(g.nic.nvspInitialized, c.what).toBe(false);
      await c.send(g);
      await expectFailed(g, { ...(c.field !== undefined ? { field: c.field } : {}), value: c.value, limit: c.limit });
      expect(g.peerFrames.length).toBe(0);
    }
  });

  it("(e) a send buffer offered after a SEND_RNDIS_PKT ended init without one fails the channel", async () => {
    const g = await bootNetvsp();
    await g.init({ order: ["ndis_config", "ndis_ver", "recv_buf"] });
    const initMsg = encodeRndisMessage({ kind: "initialize", requestId: 1, majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 });
    expect(u32(await g.sendRndisPageBuffer(initMsg, 1, [{ offset: 0, length: initMsg.length }]), 4)).toBe(1);
    expect(g.nic.nvspInitialized).toBe(true);
    await g.initStep("send_buf", { expectReply: false });
    await expectFailed(g, { value: "SEND_SEND_BUF", limit: /arrived after NVSP initialization ended/ });
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

describe("netvsp transmit from GPA ranges (§11.1 page-buffer path)", () => {
  it("one multi-page-buffer range inside one page: the frame reaches the peer byte for byte, completion SUCCESS", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 300, 11);
    const { completion } = await g.sendRndisMpb(packetMsg(f), 0, 1000);
    expect([u32(completion, 0), u32(completion, 4)]).toEqual([108, 1]);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
    expect([g.nic.counters.txFrames, g.nic.counters.txPacketsFailed]).toEqual([1, 0]);
  });

  it("one range over two non-adjacent pages, the header itself straddling the boundary (legal: it is one range)", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 1514, 12);
    // The 44-byte header starts 20 bytes before the end of the first page.
    const { completion, pfns } = await g.sendRndisMpb(packetMsg(f), 0, 4096 - 20);
    expect(pfns.length).toBe(2);
    expect(Math.abs((pfns[0] as number) - (pfns[1] as number))).toBeGreaterThan(1);
    expect([u32(completion, 0), u32(completion, 4)]).toEqual([108, 1]);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
    expect(g.nic.counters.drops["tx-header-split"]).toBe(0);
  });

  it("one range over three non-adjacent pages (MTU 9000 frame)", async () => {
    const g = await bootNetvsp({ mtu: 9000 });
    await g.init();
    await g.bringUp();
    const f = frame(PEER_MAC, NIC_MAC, 9014, 13);
    const { completion, pfns } = await g.sendRndisMpb(packetMsg(f), 0, 2000);
    expect(pfns.length).toBe(3);
    expect([u32(completion, 0), u32(completion, 4)]).toEqual([108, 1]);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
  });

  it("a page buffer split across pages: header range then the frame in two more pages (and header + head of frame in one, rest in another)", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 1514, 14);
    const msg = packetMsg(f);
    // Linux before 2025: header in its own entry, the data one entry per page.
    const c1 = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 4096 - 44, length: 44 },
      { offset: 3000, length: 1096 },
      { offset: 0, length: msg.length - 44 - 1096 },
    ]);
    expect([u32(c1, 0), u32(c1, 4)]).toEqual([108, 1]);
    const c2 = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 3500, length: 596 },
      { offset: 0, length: msg.length - 596 },
    ]);
    expect([u32(c2, 0), u32(c2, 4)]).toEqual([108, 1]);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f), toHex(f)]);
    expect(g.nic.counters.txPacketsFailed).toBe(0);
  });

  it("partial copy: the header in a send-buffer section, the frame in a GPA range (section bytes first)", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 800, 15);
    const msg = packetMsg(f);
    const c = await g.sendRndisPageBuffer(msg.subarray(44), 0, [{ offset: 128, length: msg.length - 44 }], { section: { index: 6, bytes: msg.subarray(0, 44) } });
    expect([u32(c, 0), u32(c, 4)]).toEqual([108, 1]);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
  });
});

describe("netvsp §11.1: the RNDIS header and PPIs must lie in the first GPA range", () => {
  it("a header split across two page-buffer entries fails that packet (status 2, counted), the channel goes on", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 600, 16);
    const msg = packetMsg(f);
    const c = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 4096 - 20, length: 20 },
      { offset: 0, length: msg.length - 20 },
    ]);
    expect([u32(c, 0), u32(c, 4)]).toEqual([108, 2]);
    expect(g.nic.counters.drops["tx-header-split"]).toBe(1);
    expect(g.nic.counters.txPacketsFailed).toBe(1);
    expect(g.nic.counters.txFrames).toBe(0);
    const e = g.nic.lastTxError;
    expect(e).toBeInstanceOf(ProtocolError);
    expect([e?.field, e?.value]).toEqual(["PACKET 0 header and PPI bytes", 44]);
    expect(e?.limit).toMatch(/holds 20 of them/);
    await g.settle();
    expect(g.peerFrames.length).toBe(0);
    expect(g.primary.rescinded).toBe(false);
    // The same bytes with the header whole in the first entry pass.
    const ok = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 4096 - 44, length: 44 },
      { offset: 0, length: msg.length - 44 },
    ]);
    expect(u32(ok, 4)).toBe(1);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
    // OID_GEN_XMIT_ERROR counts it.
    const xe = await g.rndis({ kind: "query", requestId: g.rid(), oid: 0x00020103, deviceVcHandle: 0, info: new Uint8Array(0) });
    expect(xe.kind === "query_cmplt" && u32(xe.info, 0)).toBe(1);
  });

  it("PPIs running past the first range fail the packet; a header that fits but whose frame runs on is fine", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 400, 17);
    // 44-byte header + one 16-byte PPI (the hash value Linux sends with several queues).
    const msg = encodeRndisMessage({ kind: "packet", data: f, ppis: [hashValuePpi(0x04030201)] });
    expect(u32(msg, 28)).toBe(36);
    expect(u32(msg, 32)).toBe(16);
    const bad = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 0, length: 50 },
      { offset: 0, length: msg.length - 50 },
    ]);
    expect(u32(bad, 4)).toBe(2);
    expect([g.nic.lastTxError?.value, g.nic.counters.drops["tx-header-split"]]).toEqual([60, 1]);
    const good = await g.sendRndisPageBuffer(msg, 0, [
      { offset: 0, length: 60 },
      { offset: 0, length: msg.length - 60 },
    ]);
    expect(u32(good, 4)).toBe(1);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(f)]);
    expect(g.primary.rescinded).toBe(false);
  });

  it("with a section, a header that runs out of the section into the GPA range fails too", async () => {
    const g = await ready();
    const f = frame(PEER_MAC, NIC_MAC, 300, 18);
    const msg = packetMsg(f);
    const c = await g.sendRndisPageBuffer(msg.subarray(30), 0, [{ offset: 0, length: msg.length - 30 }], { section: { index: 1, bytes: msg.subarray(0, 30) } });
    expect(u32(c, 4)).toBe(2);
    expect(g.nic.counters.drops["tx-header-split"]).toBe(1);
    await g.settle();
    expect(g.peerFrames.length).toBe(0);
    expect(g.primary.rescinded).toBe(false);
  });
});

describe("netvsp OID answers (§13.5)", () => {
  const query = async (g: ScriptedNetGuest, oid: number, info = new Uint8Array(0)) => g.rndis({ kind: "query", requestId: g.rid(), oid, deviceVcHandle: 0, info });
  const set = async (g: ScriptedNetGuest, oid: number, info: Uint8Array) => g.rndis({ kind: "set", requestId: g.rid(), oid, deviceVcHandle: 0, info });

  it("FRIENDLY_NAME: 512 bytes of UTF-16LE \"Network Device\", zero-filled", async () => {
    const g = await ready();
    const r = await query(g, 0x00020216);
    expect(r.kind).toBe("query_cmplt");
    if (r.kind !== "query_cmplt") return;
    expect(r.status).toBe(0);
    const name = "4e 00 65 00 74 00 77 00 6f 00 72 00 6b 00 20 00 44 00 65 00 76 00 69 00 63 00 65 00";
    expect(toHex(r.info)).toBe(`${name} ${new Array<string>(512 - 28).fill("00").join(" ")}`);
  });

  it("SET TCP_OFFLOAD_PARAMETERS (Linux's 28 bytes) → SUCCESS and the host keeps the values; LSOv1 enable → NOT_SUPPORTED, kept values unchanged", async () => {
    const g = await ready();
    expect(g.nic.offloadParameters).toBeNull();
    // Linux rndis_filter_set_offload_params at NVSP ≥ v5: header {0x80, 3, 28}, IPv4 checksum off, TCP/UDP checksums tx+rx, LSOv2 on.
    const linux = Uint8Array.from([0x80, 3, 28, 0, 1, 4, 4, 4, 4, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // §13.4: the applied set is answered, then followed by TASK_OFFLOAD_CURRENT_CONFIG
    // carrying the configuration in force — a 156-byte NDIS_OFFLOAD {0xA7, 3, 156}
    // offloading nothing (this host computes no checksum or segmentation for the guest).
    const [r, current, ...rest] = await g.rndisAll({ kind: "set", requestId: g.rid(), oid: 0xfc01020c, deviceVcHandle: 0, info: linux });
    expect(r).toMatchObject({ kind: "set_cmplt", status: 0 });
    expect(rest).toEqual([]);
    expect(current).toMatchObject({ kind: "indicate_status", status: 0x40020006 });
    const offload = current!.kind === "indicate_status" ? current!.payload : new Uint8Array(0);
    expect(offload.length).toBe(156);
    expect(Array.from(offload.subarray(0, 4))).toEqual([0xa7, 3, 156, 0]);
    expect(offload.subarray(4).every((b) => b === 0)).toBe(true);
    expect(g.nic.offloadParameters).toMatchObject({ header: { type: 0x80, revision: 3, size: 28 }, ipV4Csum: 1, tcpIpV4Csum: 4, udpIpV4Csum: 4, tcpIpV6Csum: 4, udpIpV6Csum: 4, lsoV1: 0, lsoV2Ipv4: 2, lsoV2Ipv6: 2 });
    const lsoV1 = linux.slice();
    lsoV1[9] = 2;
    expect(await set(g, 0xfc01020c, lsoV1)).toMatchObject({ kind: "set_cmplt", status: 0xc00000bb });
    expect(g.nic.offloadParameters?.lsoV1).toBe(0);
    // A wrong object type is invalid data, not a crash.
    const badType = linux.slice();
    badType[0] = 0xa7;
    expect(await set(g, 0xfc01020c, badType)).toMatchObject({ kind: "set_cmplt", status: 0xc0010015 });
  });

  it("SET of an OID the host does not handle → NOT_SUPPORTED (unknown, query-only and unsupported ones)", async () => {
    const g = await ready();
    for (const oid of [0x00010999, 0x01010101, 0x0001021c, 0x00010209]) {
      const r = await set(g, oid, Uint8Array.of(1, 0, 0, 0));
      expect(r, oid.toString(16)).toMatchObject({ kind: "set_cmplt", status: 0xc00000bb });
    }
    expect(g.primary.rescinded).toBe(false);
  });
});

describe("netvsp subchannels: a worker per queue (§12, §14)", () => {
  const HASH_INFO = NDIS_HASH_FUNC_TOEPLITZ | NDIS_HASH_IPV4 | NDIS_HASH_TCP_IPV4 | NDIS_HASH_IPV6 | NDIS_HASH_TCP_IPV6;

  /** A UDP/IPv4 frame from the peer to the NIC. */
  function udpFrame(src: string, srcPort: number, dst: string, dstPort: number, fill = 0): Uint8Array {
    const udp = buildUdpDatagram({ srcPort, dstPort, payload: Uint8Array.from({ length: 32 }, (_, k) => (fill + k) & 0xff) }, src, dst);
    return buildEthernetFrame({ dst: NIC_MAC, src: PEER_MAC, etherType: 0x0800, payload: buildIpv4Packet({ src, dst, protocol: 17, payload: udp }) });
  }

  /** Flow `i`: source port 10000 + i. */
  function flow(i: number): Uint8Array {
    return udpFrame("10.0.0.2", 10000 + i, "10.0.0.1", 5001, i);
  }

  /** Linux's bring-up with 4 queues: SUBCHANNEL 3, open the three offers, SET RSS parameters (table i mod 4, its default key). */
  async function fourQueues(): Promise<{ g: ScriptedNetGuest; subs: GuestChannel[]; table: number[] }> {
    const g = await ready();
    const c = await g.request({ kind: "subchn_req", op: 1, numSubchannels: 3 });
    expect([u32(c, 0), u32(c, 4), u32(c, 8)]).toEqual([133, 1, 3]);
    const subs = await g.openSubchannels(3);
    const table = defaultIndirectionTable(4);
    const info = encodeNdisRecvScaleParam({ flags: 0, hashInformation: HASH_INFO, indirectionTable: table, hashKey: netvscDefaultHashKey() });
    expect(await g.rndis({ kind: "set", requestId: g.rid(), oid: OID_GEN_RECEIVE_SCALE_PARAMETERS, deviceVcHandle: 0, info })).toMatchObject({ kind: "set_cmplt", status: 0 });
    expect(g.nic.indirectionTable).toEqual(table);
    return { g, subs, table };
  }

  /** The frames indicated on `channel` since the last call (completing each transfer-page packet as Linux does). */
  async function received(g: ScriptedNetGuest, channel: GuestChannel): Promise<{ frame: string; hash: number | null }[]> {
    const list = channel === g.primary ? g.packets : (g.subPackets.get(channel) as HostPacket[]);
    const xs = list.filter((p) => p.type === 7);
    for (const x of xs) list.splice(list.indexOf(x), 1);
    const out: { frame: string; hash: number | null }[] = [];
    for (const x of xs) {
      for (const r of x.ranges ?? []) {
        const m = decodeRndisMessage(g.readRecv(r));
        if (m.kind !== "packet") continue;
        const h = findPpi(m.ppis, NBL_HASH_VALUE);
        out.push({ frame: toHex(m.data), hash: h === undefined ? null : ppiU32(h) });
      }
      await g.complete(x, channel);
    }
    return out;
  }

  it("with 4 queues, frames of many flows land on the queue the Toeplitz hash and indirection table name — more than one queue", async () => {
    const { g, subs, table } = await fourQueues();
    const key = netvscDefaultHashKey();
    const flows = Array.from({ length: 64 }, (_, i) => flow(i));
    const expected: string[][] = [[], [], [], []];
    for (const f of flows) expected[table[(rssHash(key, f) as number) & 127] as number]!.push(toHex(f));
    for (const f of flows) g.peer.send(f);
    await g.settle();
    const stats = g.nic.queueStats();
    expect(stats.map((s) => s.queue)).toEqual([0, 1, 2, 3]);
    expect(stats.map((s) => s.rxFrames)).toEqual(expected.map((e) => e.length));
    expect(stats.filter((s) => s.rxFrames > 0).length).toBeGreaterThan(1);
    expect(stats.map((s) => s.rxFrames)).toEqual([16, 16, 16, 16]);
    const channels = [g.primary, ...subs];
    for (let q = 0; q < 4; q++) {
      const got = await received(g, channels[q] as GuestChannel);
      expect(got.map((x) => x.frame), `queue ${q}`).toEqual(expected[q]);
      // Each indication carries the hash it was steered by (NBL_HASH_VALUE PPI).
      for (const x of got) expect(x.hash).toBe(rssHash(key, flows.find((f) => toHex(f) === x.frame) as Uint8Array));
    }
    // Each queue's sub-allocations were held until its own channel's completion, then given back.
    expect(stats.map((s) => s.rxInFlight > 0)).toEqual(expected.map((e) => e.length > 0));
    expect(g.nic.queueStats().map((s) => s.rxInFlight)).toEqual([0, 0, 0, 0]);
  });

  it("Microsoft's RSS verification vectors (default key, IPv4 + ports) arrive with their known hash on queue table[hash & 127]", async () => {
    const { g, subs } = await fourQueues();
    // {source, destination, Toeplitz hash over addresses and ports} from "Verifying the RSS Hash Calculation" (also DPDK test_thash).
    const vectors = [
      { src: "66.9.149.187", sport: 2794, dst: "161.142.100.80", dport: 1766, hash: 0x51ccc178, queue: 0 },
      { src: "199.92.111.2", sport: 14230, dst: "65.69.140.83", dport: 4739, hash: 0xc626b0ea, queue: 2 },
      { src: "24.19.198.95", sport: 12898, dst: "12.22.207.184", dport: 38024, hash: 0x5c2b394a, queue: 2 },
      { src: "38.27.205.30", sport: 48228, dst: "209.142.163.6", dport: 2217, hash: 0xafc7327f, queue: 3 },
      { src: "153.39.163.191", sport: 44251, dst: "202.188.127.2", dport: 1303, hash: 0x10e828a2, queue: 2 },
    ];
    for (const v of vectors) g.peer.send(udpFrame(v.src, v.sport, v.dst, v.dport));
    await g.settle();
    const channels = [g.primary, ...subs];
    const arrived: { queue: number; hash: number | null }[] = [];
    for (let q = 0; q < 4; q++) for (const x of await received(g, channels[q] as GuestChannel)) arrived.push({ queue: q, hash: x.hash });
    expect(arrived.sort((a, b) => (a.hash ?? 0) - (b.hash ?? 0))).toEqual(vectors.map((v) => ({ queue: v.queue, hash: v.hash })).sort((a, b) => a.hash - b.hash));
    expect(g.nic.queueStats().map((s) => s.rxFrames)).toEqual([1, 0, 3, 1]);
  });

  it("a fatal packet on one subchannel fails only it: the primary and the other subchannels still send and receive", async () => {
    const { g, subs, table } = await fourQueues();
    const key = netvscDefaultHashKey();
    const victim = subs[1] as GuestChannel; // queue 2
    const bad = encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 0, sendBufferSectionIndex: 9999, sendBufferSectionSize: 60 });
    await g.run(victim.sendRequest(bad).catch(() => null));
    await g.settle();
    expect(victim.rescinded).toBe(true);
    expect(g.nic.counters.channelsFailed).toBe(1);
    expect(g.nic.lastFatalError).toBeInstanceOf(NetvspPacketError);
    expect((g.nic.lastFatalError as NetvspPacketError).field).toBe("send_buf_section_index");
    expect(g.primary.rescinded).toBe(false);
    expect(g.nic.queueStats().map((s) => s.queue)).toEqual([0, 1, 3]);

    // The primary sends…
    const out = frame(PEER_MAC, NIC_MAC, 200, 30);
    expect(u32(await g.sendRndis(packetMsg(out), 0, 0), 4)).toBe(1);
    // …and so does subchannel 1.
    const out2 = frame(PEER_MAC, NIC_MAC, 210, 31);
    expect(u32(await g.sendRndis(packetMsg(out2), 0, 1, subs[0]), 4)).toBe(1);
    await g.settle();
    expect(g.peerFrames.map(toHex)).toEqual([toHex(out), toHex(out2)]);

    // The primary receives: a non-IP frame (no hash → queue 0), a flow of queue 0, and a flow of the dead queue 2 (falls back to the primary).
    const queueOf = (f: Uint8Array): number => table[(rssHash(key, f) as number) & 127] as number;
    const flows = Array.from({ length: 64 }, (_, i) => flow(100 + i));
    const q0 = flows.find((f) => queueOf(f) === 0) as Uint8Array;
    const q1 = flows.find((f) => queueOf(f) === 1) as Uint8Array;
    const q2 = flows.find((f) => queueOf(f) === 2) as Uint8Array;
    const nonIp = frame(NIC_MAC, PEER_MAC, 80, 32);
    for (const f of [nonIp, q0, q2, q1]) g.peer.send(f);
    await g.settle();
    expect((await received(g, g.primary)).map((x) => x.frame)).toEqual([toHex(nonIp), toHex(q0), toHex(q2)]);
    expect((await received(g, subs[0] as GuestChannel)).map((x) => x.frame)).toEqual([toHex(q1)]);
    expect(g.nic.counters.channelsFailed).toBe(1);
  });
});
