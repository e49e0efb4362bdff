/**
 * The guest netvsc driver against a scripted host (scripted-host.ts):
 * NVSP initialization and version fallback (§9.3, §10), RNDIS bring-up in
 * Linux's order (§13.8), receive indications and their completions
 * (§11.2), link status (§13.4), transmit through send-buffer sections and
 * page buffers with queue stop/wake (§11.1), subchannels and the send
 * indirection table (§12), remove.
 */
import { describe, expect, it } from "vitest";
import { VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_DATA_INBAND, VM_PKT_DATA_USING_GPA_DIRECT } from "../../../../core/index.js";
import {
  NETVSC_INVALID_INDEX,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_PROTOCOL_VERSION_5,
  NVSP_PROTOCOL_VERSION_6,
  NVSP_PROTOCOL_VERSION_61,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_CURRENT_PACKET_FILTER,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_LINK_SPEED,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_GEN_RECEIVE_SCALE_PARAMETERS,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  OID_TCP_OFFLOAD_PARAMETERS,
  RNDIS_STATUS_MEDIA_CONNECT,
  RNDIS_STATUS_MEDIA_DISCONNECT,
  encodeRndisMessage,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NetvscHandshakeError, NetvscRemovedError } from "../../../../drivers/netvsc/guest/index.js";
import { NetScript, bootNic, testFrame } from "./scripted-host.js";

const hex8 = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

function u32s(bytes: Uint8Array, count: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: count }, (_, i) => v.getUint32(4 * i, true));
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("netvsc guest: NVSP initialization (§10)", () => {
  it("falls back 6.1 → 6 → 5, then NDIS config, NDIS version, receive and send buffers, in that order and bytes", async () => {
    const s = new NetScript();
    s.acceptedVersions = [NVSP_PROTOCOL_VERSION_5, 0x00040000];
    const { drv } = await bootNic(s);
    expect(drv).toBeDefined();
    expect(drv!.nvspVersion).toBe(NVSP_PROTOCOL_VERSION_5);
    expect(drv!.versionAttempts).toEqual([
      { version: NVSP_PROTOCOL_VERSION_61, status: 0 },
      { version: NVSP_PROTOCOL_VERSION_6, status: 0 },
      { version: NVSP_PROTOCOL_VERSION_5, status: 1 },
    ]);
    const inband = s.nvsp.filter((m) => m.type === VM_PKT_DATA_INBAND);
    expect(inband.slice(0, 7).map((m) => m.msg.kind)).toEqual(["init", "init", "init", "send_ndis_config", "send_ndis_ver", "send_recv_buf", "send_send_buf"]);
    // INIT: 40 bytes, min = max, completion requested.
    for (const [i, v] of [NVSP_PROTOCOL_VERSION_61, NVSP_PROTOCOL_VERSION_6, NVSP_PROTOCOL_VERSION_5].entries()) {
      const m = inband[i]!;
      expect(m.bytes.length).toBe(40);
      expect(u32s(m.bytes, 10)).toEqual([1, v, v, 0, 0, 0, 0, 0, 0, 0]);
      expect(m.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED).toBe(1);
    }
    // NDIS_CONFIG {mtu 1514, reserved, capability 802.1Q | SR-IOV | teaming} and NDIS_VER 6.30: no completion requested.
    expect(u32s(inband[3]!.bytes, 5)).toEqual([125, 1514, 0, 0x8 | 0x4 | 0x20, 0]);
    expect(inband[3]!.flags).toBe(0);
    expect(u32s(inband[4]!.bytes, 3)).toEqual([100, 6, 30]);
    expect(inband[4]!.flags).toBe(0);
    const rb = inband[5]!.msg;
    expect(rb).toMatchObject({ kind: "send_recv_buf", id: 0xcafe });
    expect(inband[6]!.msg).toMatchObject({ kind: "send_send_buf", id: 0 });
    expect(drv!.recvSubAllocSize).toBe(1806);
    expect(drv!.sendSectionSize).toBe(6144);
    expect(drv!.sendSectionCount).toBe(4);
  });

  it("fails the probe with a typed error when every version is refused", async () => {
    const s = new NetScript();
    s.acceptedVersions = [];
    const { vm, device, drv } = await bootNic(s);
    expect(drv).toBeUndefined();
    const err = vm.bus.probeError(device);
    expect(err).toBeInstanceOf(NetvscHandshakeError);
    expect((err as Error).message).toMatch(/v6\.1, v6, v5, v4, v2, v1/);
    expect(s.closed).toHaveLength(1);
  });
});

describe("netvsc guest: RNDIS bring-up (§13.8)", () => {
  it("sends Linux's requests in order and learns MAC, MTU, link and speed", async () => {
    const s = new NetScript();
    s.maxFrameSize = 1400;
    s.mac = "00:15:5d:aa:bb:cc";
    const { drv } = await bootNic(s);
    expect(s.controlOrder()).toEqual([
      "initialize",
      `query ${hex8(OID_GEN_MAXIMUM_FRAME_SIZE)}`,
      `query ${hex8(OID_802_3_PERMANENT_ADDRESS)}`,
      `query ${hex8(OID_GEN_FRIENDLY_NAME)}`,
      `query ${hex8(OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES)}`,
      `set ${hex8(OID_TCP_OFFLOAD_PARAMETERS)}`,
      `query ${hex8(OID_GEN_MEDIA_CONNECT_STATUS)}`,
      `query ${hex8(OID_GEN_LINK_SPEED)}`,
      `query ${hex8(OID_GEN_RECEIVE_SCALE_CAPABILITIES)}`,
      `set ${hex8(OID_GEN_CURRENT_PACKET_FILTER)}`,
    ]);
    // INITIALIZE: type 2, len 24, request id, 1.0, max_xfer 0x4000; sent as a control page buffer.
    const init = s.rndis[0]!;
    expect(init.via).toBe("gpa");
    const rid = u32s(init.bytes, 3)[2]!;
    expect(rid).not.toBe(0);
    expect(u32s(init.bytes, 6)).toEqual([2, 24, rid, 1, 0, 0x4000]);
    const ctl = s.nvsp.find((m) => m.type === VM_PKT_DATA_USING_GPA_DIRECT)!;
    expect(u32s(ctl.bytes, 4)).toEqual([107, 1, NETVSC_INVALID_INDEX, 0]);
    expect(ctl.ranges).toHaveLength(1);
    // The filter: directed | all-multicast | broadcast.
    const filter = s.rndis.at(-1)!.msg;
    expect(filter.kind === "set" ? Array.from(filter.info) : null).toEqual([0x0d, 0, 0, 0]);
    expect(drv!.mac).toBe("00:15:5d:aa:bb:cc");
    expect(Array.from(drv!.macBytes)).toEqual([0x00, 0x15, 0x5d, 0xaa, 0xbb, 0xcc]);
    expect(drv!.mtu).toBe(1400);
    expect(drv!.linkUp).toBe(true);
    expect(drv!.linkSpeedBps).toBe(10_000_000_000);
    expect(drv!.friendlyName).toBe("Network Device");
    expect(drv!.packetFilter).toBe(0x0d);
  });
});

describe("netvsc guest: receive (§11.2)", () => {
  it("delivers indicated frames byte-identical and completes each transfer packet with {108, SUCCESS}", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    const got: Uint8Array[] = [];
    drv!.onReceive((f) => got.push(f));
    const before = s.recvCompletions.length;
    const frames = [testFrame(60, 1), testFrame(1514, 2), testFrame(342, 3)];
    await sys.run(s.indicateFrames(frames));
    await sys.run(s.indicateFrames([testFrame(64, 4)]));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(got).toEqual([...frames, testFrame(64, 4)]);
    expect(drv!.stats.rx).toEqual({ packets: 4, bytes: 60 + 1514 + 342 + 64, drops: 0 });
    const done = s.recvCompletions.slice(before);
    expect(done).toHaveLength(2);
    for (const c of done) expect(Array.from(c.payload)).toEqual([108, 0, 0, 0, 1, 0, 0, 0]);
    expect(done.map((c) => c.transId)).toEqual([done[0]!.transId, done[0]!.transId + 1n]);
  });

  it("drops a range outside the receive buffer and a malformed RNDIS message (counted, status FAIL), keeps the good ones", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    const got: Uint8Array[] = [];
    drv!.onReceive((f) => got.push(f));
    const good = testFrame(100, 9);
    const before = s.recvCompletions.length;
    await sys.run(s.indicate([encodeRndisMessage({ kind: "packet", data: good, ppis: [] })], { ranges: [{ byteCount: 144, byteOffset: 256 * 1024 - 16 }] }));
    // data_offset past msg_len.
    const bad = encodeRndisMessage({ kind: "packet", data: good, ppis: [] });
    new DataView(bad.buffer).setUint32(8, 4096, true);
    await sys.run(s.indicate([bad, encodeRndisMessage({ kind: "packet", data: good, ppis: [] })]));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(got).toEqual([good]);
    expect(drv!.driverStats.rxMalformed).toBe(2);
    expect(drv!.stats.rx.drops).toBe(2);
    const done = s.recvCompletions.slice(before);
    expect(done.map((c) => u32s(c.payload, 2))).toEqual([
      [NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, 2],
      [NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, 2],
    ]);
  });

  it("MEDIA_DISCONNECT / MEDIA_CONNECT change linkUp and call the listeners", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    const seen: boolean[] = [];
    drv!.onLinkChange((up) => seen.push(up));
    await sys.run(s.indicateStatus(RNDIS_STATUS_MEDIA_DISCONNECT));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(drv!.linkUp).toBe(false);
    await sys.run(s.indicateStatus(RNDIS_STATUS_MEDIA_CONNECT));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(drv!.linkUp).toBe(true);
    expect(seen).toEqual([false, true]);
  });
});

describe("netvsc guest: transmit (§11.1)", () => {
  it("copies a small frame into a send-buffer section: the host reads RNDIS PACKET + frame at the section offset", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    const frame = testFrame(60, 5);
    await sys.run(drv!.send(frame));
    const nv = s.nvsp.filter((m) => m.msg.kind === "send_rndis_pkt" && m.type === VM_PKT_DATA_INBAND);
    expect(nv).toHaveLength(1);
    const [type, channelType, index, size] = u32s(nv[0]!.bytes, 4);
    expect([type, channelType]).toEqual([107, 0]);
    expect(size).toBe(44 + 60);
    expect(nv[0]!.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED).toBe(1);
    // The raw section: header {1, 104}, data_offset 36, data_len 60, ppi offset 36 len 0, then the frame at 44.
    const raw = s.sendBuf!.read(index! * 6144, size!);
    expect(u32s(raw, 11)).toEqual([1, 104, 36, 60, 0, 0, 0, 36, 0, 0, 0]);
    expect(raw.subarray(44)).toEqual(frame);
    expect(s.frames).toEqual([frame]);
    expect(drv!.stats.tx).toEqual({ packets: 1, bytes: 60, drops: 0 });
  });

  it("batches frames sent in the same instant into one section (msg_len padded to 8 but the last)", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    const frames = [testFrame(61, 1), testFrame(77, 2), testFrame(60, 3)];
    await sys.run(Promise.all(frames.map((f) => drv!.send(f))));
    const sends = s.nvsp.filter((m) => m.msg.kind === "send_rndis_pkt" && m.type === VM_PKT_DATA_INBAND);
    expect(sends).toHaveLength(1);
    const recs = s.rndis.filter((r) => r.via === "section");
    expect(recs.map((r) => [r.offset, r.bytes.length])).toEqual([
      [0, 112],
      [112, 128],
      [240, 104],
    ]);
    expect(s.frames).toEqual(frames);
    expect(drv!.driverStats.batchedFrames).toBe(2);
  });

  it("sends a frame larger than a section by page buffer, RNDIS header at the start of the first range", async () => {
    const s = new NetScript();
    s.maxFrameSize = 9000;
    const { sys, drv } = await bootNic(s, { config: { mtu: 9000 } });
    const frame = testFrame(9014, 8);
    await sys.run(drv!.send(frame));
    const pb = s.nvsp.filter((m) => m.type === VM_PKT_DATA_USING_GPA_DIRECT && m.msg.kind === "send_rndis_pkt");
    const data = pb.at(-1)!;
    expect(u32s(data.bytes, 4)).toEqual([107, 0, NETVSC_INVALID_INDEX, 0]);
    expect(data.ranges.map((r) => r.byteCount)).toEqual([4096, 4096, 9014 + 44 - 8192]);
    expect(data.ranges[0]!.byteOffset).toBe(0);
    expect(s.frames).toEqual([frame]);
    expect(drv!.driverStats.pageBufferSends).toBe(1);
  });

  it("a burst larger than the send buffer arrives complete and in order; the queue stops and wakes", async () => {
    const s = new NetScript();
    s.holdTx = true;
    const { sys, drv } = await bootNic(s);
    const frames = Array.from({ length: 400 }, (_, i) => testFrame(60 + (i % 1400), i + 1));
    const all = Promise.all(frames.map((f) => drv!.send(f)));
    // The host answers late: first everything the guest could send is held.
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    const q = drv!.queues[0]!;
    expect(q.stopped).toBe(true);
    expect(q.pending.length).toBeGreaterThan(0);
    s.holdTx = false;
    s.releaseHeld();
    await sys.run(all);
    expect(s.frames).toEqual(frames);
    expect(q.stops).toBeGreaterThanOrEqual(1);
    expect(q.wakes).toBe(q.stops);
    expect(drv!.stats.tx.packets).toBe(400);
    expect(drv!.driverStats.pageBufferSends).toBeGreaterThan(0);
    expect(drv!.driverStats.sectionSends).toBeGreaterThan(0);
  });

  it("stops below 10 % free ring while the host does not drain, wakes above 20 %", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s, { config: { ringPages: 2 } });
    s.paused = true;
    const frames = Array.from({ length: 300 }, (_, i) => testFrame(1514, i + 1));
    const all = Promise.all(frames.map((f) => drv!.send(f)));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    const q = drv!.queues[0]!;
    expect(q.stopped).toBe(true);
    expect(q.ringFreePercent).toBeLessThan(10);
    s.resume();
    await sys.run(all);
    expect(s.frames).toEqual(frames);
    expect(q.wakes).toBeGreaterThanOrEqual(1);
  });
});

describe("netvsc guest: subchannels (§12)", () => {
  it("asks for min(queues, vCPUs, RSS queues) − 1, opens them, applies the host's send table and spreads flows", async () => {
    const s = new NetScript();
    s.rssQueues = 3;
    s.sendTable = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 0 : 2));
    const { sys, drv } = await bootNic(s, { vcpus: 4 });
    const req = s.nvsp.find((m) => m.msg.kind === "subchn_req")!;
    // min(8 queues, 4 vCPUs, 3 RSS queues) = 3 → 2 subchannels.
    expect(u32s(req.bytes, 3)).toEqual([133, 1, 2]);
    expect(drv!.subchannelsGranted).toBe(2);
    expect(drv!.queues.map((q) => q.index)).toEqual([0, 1, 2]);
    expect(drv!.sendTable).toEqual(s.sendTable);
    const rssSets = s.controlOrder().filter((n) => n === `set ${hex8(OID_GEN_RECEIVE_SCALE_PARAMETERS)}`);
    expect(rssSets).toHaveLength(2);
    // Many flows (distinct source MACs): only queues 0 and 2 carry frames.
    const frames = Array.from({ length: 32 }, (_, i) => testFrame(80, i, `00:15:5d:00:01:${i.toString(16).padStart(2, "0")}`));
    await sys.run(Promise.all(frames.map((f) => drv!.send(f))));
    const used = new Set(s.rndis.filter((r) => r.msg.kind === "packet").map((r) => s.opened.find((c) => c.relid === r.relid)!.subchannelIndex));
    expect([...used].sort()).toEqual([0, 2]);
    expect(s.frames.length).toBe(32);
  });
});

describe("netvsc guest: remove", () => {
  it("fails sends in flight and later with NetvscRemovedError and closes the channel", async () => {
    const s = new NetScript();
    const { sys, vm, device, drv } = await bootNic(s);
    s.holdTx = true;
    const pending = rejection(drv!.send(testFrame(60, 1)));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.held).toHaveLength(1);
    await sys.run(vm.bus.unbind(device));
    const e = await sys.run(pending);
    expect(e).toBeInstanceOf(NetvscRemovedError);
    expect((e as Error).message).toMatch(/send of a 60-byte frame failed: the netvsc driver was removed/);
    expect(s.closed).toHaveLength(1);
    await expect(drv!.send(testFrame(60, 2))).rejects.toBeInstanceOf(NetvscRemovedError);
  });
});
