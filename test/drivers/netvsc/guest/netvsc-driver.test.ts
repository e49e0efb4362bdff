/**
 * The guest netvsc driver against a scripted host (scripted-host.ts):
 * NVSP initialization and version fallback (§9.3, §10), RNDIS bring-up in
 * Linux's order (§13.8), receive indications and their completions
 * (§11.2), link status (§13.4), transmit through send-buffer sections and
 * page buffers with queue stop/wake (§11.1), subchannels and the send
 * indirection table (§12), remove.
 */
import { describe, expect, it } from "vitest";
import { RingWriter, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_DATA_INBAND, VM_PKT_DATA_USING_GPA_DIRECT } from "../../../../core/index.js";
import {
  NDIS_HASH_FUNC_TOEPLITZ,
  NDIS_HASH_IPV4,
  NDIS_HASH_IPV6,
  NDIS_HASH_TCP_IPV4,
  NDIS_HASH_TCP_IPV6,
  NDIS_RSS_PARAM_FLAG_DISABLE_RSS,
  NETVSC_INVALID_INDEX,
  NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
  NVSP_RNDIS_CHANNEL_TYPE_CONTROL,
  NVSP_STAT_FAIL,
  NVSP_STAT_SUCCESS,
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
  decodeNdisRecvScaleParam,
  encodeRndisMessage,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NetvscFrameError, NetvscHandshakeError, NetvscRemovedError, NetvscSendError } from "../../../../drivers/netvsc/guest/index.js";
import { NetScript, bootNic, testFrame } from "./scripted-host.js";

const hex8 = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

function u32s(bytes: Uint8Array, count: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Array.from({ length: count }, (_, i) => v.getUint32(4 * i, true));
}

/**
 * The guest's NVSP messages in the order the host took them, a control
 * SEND_RNDIS_PKT named by the RNDIS request it carried (as `controlOrder`).
 */
function wireOrder(s: NetScript): string[] {
  const control = s.controlOrder();
  let next = 0;
  return s.nvsp.map((m) => (m.msg.kind === "send_rndis_pkt" && m.msg.channelType === NVSP_RNDIS_CHANNEL_TYPE_CONTROL ? (control[next++] ?? "?") : m.msg.kind));
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

  it("completes transfer-page packets found in one drain with one publication of the ring and one signal to the host", async () => {
    const s = new NetScript();
    const { sys, vm, drv } = await bootNic(s);
    const ch = drv!.channel;
    const out = ch.endpoint!.writer;
    const ring = out.ring;
    const host = s.primary!;
    const signals = () => vm.partition.counters.guestSignalsViaMonitor + vm.partition.counters.guestSignalsViaHypercall;
    const n = 8;
    const frames = Array.from({ length: n }, (_, i) => testFrame(60 + 97 * i, 40 + i));
    const got: Uint8Array[] = [];
    // The guest → host write index as the host would read it while each frame is handed up (mid-drain).
    const publishedMidDrain: number[] = [];
    drv!.onReceive((f) => {
      got.push(f);
      publishedMidDrain.push(ring.loadWriteIndex());
    });
    const before = {
      completions: s.recvCompletions.length,
      indicated: s.indicated.length,
      writeIndex: ring.loadWriteIndex(),
      intrOutEmpty: out.intrOutEmpty,
      signals: signals(),
      interrupts: ch.interrupts,
      hostWakeups: host.counters.hostWakeups,
      rxCompletions: drv!.driverStats.rxCompletions,
    };
    // All N packets are in the guest's inbound ring before its interrupt runs.
    const sent = frames.map((f) => s.indicateFrames([f]));
    await sys.run(Promise.all(sent));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(got).toEqual(frames);
    expect(ch.interrupts - before.interrupts).toBe(1);
    const ids = s.indicated.slice(before.indicated);
    expect(ids).toHaveLength(n);
    const done = s.recvCompletions.slice(before.completions);
    expect(done.map((c) => c.transId)).toEqual(ids);
    for (const c of done) expect(u32s(c.payload, 2)).toEqual([NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, 1]);
    expect(drv!.driverStats.rxCompletions - before.rxCompletions).toBe(n);
    // Nothing was published while the drain ran; then all N completions at once.
    expect(publishedMidDrain).toEqual(Array.from({ length: n }, () => before.writeIndex));
    expect(ring.loadWriteIndex()).toBe((before.writeIndex + n * RingWriter.packetTotal(0, 8)) % ring.dataSize);
    // One empty → non-empty transition, one signal, one host wakeup for all of them.
    expect(out.intrOutEmpty - before.intrOutEmpty).toBe(1);
    expect(signals() - before.signals).toBe(1);
    expect(host.counters.hostWakeups - before.hostWakeups).toBe(1);
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

  it("rejects frames shorter than 14 or longer than MTU + 18 bytes with NetvscFrameError, counts them as tx drops and sends nothing", async () => {
    const s = new NetScript();
    const { sys, drv } = await bootNic(s);
    expect(drv!.maxFrameBytes).toBe(1518);
    const sendsBefore = s.nvsp.filter((m) => m.msg.kind === "send_rndis_pkt").length;
    const short = await rejection(drv!.send(testFrame(13, 1)));
    const long = await rejection(drv!.send(testFrame(1519, 2)));
    for (const [e, length] of [
      [short, 13],
      [long, 1519],
    ] as const) {
      expect(e).toBeInstanceOf(NetvscFrameError);
      expect((e as NetvscFrameError).length).toBe(length);
      expect((e as NetvscFrameError).code).toBe("NETVSC_FRAME");
    }
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.nvsp.filter((m) => m.msg.kind === "send_rndis_pkt").length).toBe(sendsBefore);
    expect(drv!.stats.tx).toEqual({ packets: 0, bytes: 0, drops: 2 });
    // The limits themselves are carried.
    const edges = [testFrame(14, 3), testFrame(1518, 4)];
    await sys.run(Promise.all(edges.map((f) => drv!.send(f))));
    expect(s.frames).toEqual(edges);
    expect(drv!.stats.tx).toEqual({ packets: 2, bytes: 14 + 1518, drops: 2 });
  });

  it("a SEND_RNDIS_PKT the host completes with NVSP_STAT_FAIL rejects each of its frames with NetvscSendError and counts tx drops", async () => {
    const s = new NetScript();
    s.maxFrameSize = 9000;
    const { sys, drv } = await bootNic(s, { config: { mtu: 9000 } });
    s.txStatus = NVSP_STAT_FAIL;
    // Three small frames share a section; the jumbo one goes by page buffer: two SEND_RNDIS_PKT, both failed.
    const frames = [testFrame(60, 1), testFrame(61, 2), testFrame(62, 3), testFrame(9014, 4)];
    const errors = await sys.run(Promise.all(frames.map((f) => rejection(drv!.send(f)))));
    const sends = s.nvsp.filter((m) => m.msg.kind === "send_rndis_pkt" && u32s(m.bytes, 2)[1] === 0);
    expect(sends.map((m) => m.type)).toEqual([VM_PKT_DATA_INBAND, VM_PKT_DATA_USING_GPA_DIRECT]);
    expect(s.frames).toEqual(frames);
    for (const e of errors) {
      expect(e).toBeInstanceOf(NetvscSendError);
      expect((e as NetvscSendError).status).toBe(NVSP_STAT_FAIL);
      expect((e as NetvscSendError).code).toBe("NETVSC_SEND");
    }
    expect(drv!.stats.tx).toEqual({ packets: 0, bytes: 0, drops: 4 });
    const q = drv!.queues[0]!;
    expect([q.inFlight, q.pageBuffersInFlight]).toEqual([0, 0]);
    // The failed sends gave their section and pages back: the same mix now succeeds.
    s.txStatus = NVSP_STAT_SUCCESS;
    await sys.run(Promise.all(frames.map((f) => drv!.send(f))));
    expect(drv!.stats.tx).toEqual({ packets: 4, bytes: 60 + 61 + 62 + 9014, drops: 4 });
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

  it("stops below 10 % free ring and wakes at the first completion that leaves it above 20 %, never between (host drains one packet at a time)", async () => {
    const s = new NetScript();
    // 2 pages: Linux's percentage counts the header page too, so the ring is at most 50 % free and one packet moves it < 1.1 %.
    const { sys, drv } = await bootNic(s, { config: { ringPages: 2 } });
    s.paused = true;
    const frames = Array.from({ length: 200 }, (_, i) => testFrame(1514, i + 1));
    let settled = false;
    const all = Promise.all(frames.map((f) => drv!.send(f))).finally(() => {
      settled = true;
    });
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    const q = drv!.queues[0]!;
    expect(q.stopped).toBe(true);
    expect(q.ringFreePercent).toBeLessThan(10);
    // Free percent the guest saw at a completion that left the queue stopped,
    // at one that woke it, and where the refill after a wake stopped again.
    const heldAt = new Set<number>();
    const wokeAt = new Set<number>();
    const stoppedAt = new Set<number>();
    for (let step = 0; !settled && step < 1000; step++) {
      const wakes = q.wakes;
      s.step(1);
      await sys.run(sys.sim.scheduler.sleep(1_000_000));
      if (q.wakes !== wakes) {
        expect(q.wakes).toBe(wakes + 1);
        // A wake with nothing in flight may happen at any level (Linux's `queue_sends < 1`); here there is always plenty.
        expect(q.lastWakeInFlight).toBeGreaterThan(0);
        wokeAt.add(q.lastWakeFreePercent);
        if (q.pending.length > 0) {
          expect(q.stopped).toBe(true);
          stoppedAt.add(q.ringFreePercent);
        }
      } else if (q.stopped) {
        // No wake: nothing was written since the completion, so this is the level it saw.
        expect(q.inFlight).toBeGreaterThan(0);
        heldAt.add(q.ringFreePercent);
      }
    }
    expect(settled).toBe(true);
    // One packet moves the level by about 1 %: the completions walked through
    // every level from 10 % to 20 % without waking the queue, and the first
    // one past 20 % woke it — a wake threshold other than 20 % fails one of these.
    expect([...heldAt].sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(Math.min(...wokeAt)).toBe(21);
    for (const p of wokeAt) expect(p).toBeGreaterThan(20);
    expect(wokeAt.size).toBeGreaterThan(0);
    // Refills stop at the first packet that leaves the ring under 10 % free.
    expect(stoppedAt.size).toBeGreaterThan(0);
    for (const p of stoppedAt) {
      expect(p).toBeLessThan(10);
      expect(p).toBeGreaterThanOrEqual(8);
    }
    expect(q.wakes).toBeGreaterThanOrEqual(5);
    expect(q.wakes).toBe(q.stops);
    s.resume();
    await sys.run(all);
    expect(s.frames).toEqual(frames);
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
    // rndis_filter_device_add ends with the RSS capabilities; rndis_set_subchannel
    // then allocates, waits for the opens and calls rndis_filter_set_rss_param
    // (disable, then enable); the packet filter comes with ifup, after it.
    const order = wireOrder(s);
    const caps = order.indexOf(`query ${hex8(OID_GEN_RECEIVE_SCALE_CAPABILITIES)}`);
    expect(order.slice(caps)).toEqual([
      `query ${hex8(OID_GEN_RECEIVE_SCALE_CAPABILITIES)}`,
      "subchn_req",
      `set ${hex8(OID_GEN_RECEIVE_SCALE_PARAMETERS)}`,
      `set ${hex8(OID_GEN_RECEIVE_SCALE_PARAMETERS)}`,
      `set ${hex8(OID_GEN_CURRENT_PACKET_FILTER)}`,
    ]);
    const rssSets = s.rndis.filter((r) => r.msg.kind === "set" && r.msg.oid === OID_GEN_RECEIVE_SCALE_PARAMETERS);
    // The flags word, read raw: NDIS_RSS_PARAM_FLAG_DISABLE_RSS first, then 0 (enable).
    const infos = rssSets.map((r) => r.bytes.subarray(28));
    expect(infos.map((i) => new DataView(i.buffer, i.byteOffset, i.byteLength).getUint16(4, true))).toEqual([NDIS_RSS_PARAM_FLAG_DISABLE_RSS, 0]);
    for (const r of rssSets) {
      // SET {type 5, len, rid, oid, info_buflen 40 + 512 + 40, info_buf_offset 20, dev_vc_handle 0}.
      expect(u32s(r.bytes, 7)).toEqual([5, 28 + 592, u32s(r.bytes, 3)[2], OID_GEN_RECEIVE_SCALE_PARAMETERS, 592, 20, 0]);
      const p = decodeNdisRecvScaleParam(r.bytes.subarray(28));
      expect(p.header).toEqual({ type: 0x89, revision: 2, size: 40 });
      expect(p.hashinfo).toBe(NDIS_HASH_FUNC_TOEPLITZ | NDIS_HASH_IPV4 | NDIS_HASH_TCP_IPV4 | NDIS_HASH_IPV6 | NDIS_HASH_TCP_IPV6);
      expect([p.indirectTabsize, p.indirectTaboffset, p.hashkeySize, p.hashkeyOffset]).toEqual([512, 40, 40, 552]);
      // Linux's rx_table (ethtool_rxfh_indir_default over the 3 channels), not the host's send table.
      expect(p.indirectionTable).toEqual(Array.from({ length: 128 }, (_, i) => i % 3));
      expect(Buffer.from(p.hashKey).toString("hex")).toBe("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa");
    }
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
    expect(drv!.stats.tx).toEqual({ packets: 0, bytes: 0, drops: 1 });
    expect(s.closed).toHaveLength(1);
    await expect(drv!.send(testFrame(60, 2))).rejects.toBeInstanceOf(NetvscRemovedError);
  });
});
