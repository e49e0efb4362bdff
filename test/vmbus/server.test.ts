/**
 * The VMBus server (core/vmbus/server.ts, host-channel.ts) against a
 * scripted guest: raw channel messages posted with HvPostMessage from vCPU 0,
 * the host's replies read out of SynIC message slot 2 with the EOM
 * handshake, rings written and read with the same ring code a guest uses.
 */
import { describe, expect, it } from "vitest";
import { GpadlAccessError, ProtocolError } from "../../core/errors.js";
import {
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_SUCCESS,
  HVMSG_NONE,
  Hypervisor,
  VMBUS_MESSAGE_SINT,
  installVmbusIsr,
  type GuestPartition,
  type Vcpu,
} from "../../core/hv/index.js";
import { PAGE_SIZE } from "../../core/memory/guest-memory.js";
import { RingBuffer, RingReader, RingWriter, VM_PKT_COMP, VM_PKT_DATA_INBAND } from "../../core/ring/index.js";
import { Simulation, type CostModel } from "../../core/sim/index.js";
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_TEARDOWN,
  CHANNELMSG_GPADL_TORNDOWN,
  CHANNELMSG_INITIATE_CONTACT,
  CHANNELMSG_MODIFYCHANNEL,
  CHANNELMSG_MODIFYCHANNEL_RESPONSE,
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  CHANNELMSG_RELID_RELEASED,
  CHANNELMSG_REQUESTOFFERS,
  CHANNELMSG_RESCIND_CHANNELOFFER,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  Guid,
  HostChannel,
  VERSION_WIN10,
  VERSION_WIN10_V5_3,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VMBUS_STATUS_UNSUCCESSFUL,
  VmbusServer,
  decodeChannelMessage,
  encodeChannelMessage,
  splitGpadl,
  type ChannelMessage,
  type HostChannelHandler,
  type HostDeviceOffer,
  type OfferChannelMessage,
  type VmbusServerOptions,
} from "../../core/vmbus/index.js";

const SCSI_CLASS = Guid.parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
const NET_CLASS = Guid.parse("f8615163-df3e-46c5-913f-f2d2f965ed0e");
const INSTANCE_1 = Guid.parse("11111111-2222-3333-4444-555555555555");
const INSTANCE_2 = Guid.parse("66666666-7777-8888-9999-aaaaaaaaaaaa");

interface Received {
  /** The channel message bytes as the guest copied them out of the slot. */
  readonly bytes: Uint8Array;
  readonly msg: ChannelMessage;
}

/** A host device that records what the server tells it and answers every packet with a completion. */
class RecordingDevice implements HostChannelHandler {
  readonly opened: HostChannel[] = [];
  readonly closed: HostChannel[] = [];
  readonly packets: { relid: number; type: number; transId: bigint; data: Uint8Array }[] = [];
  refuseOpen: Error | null = null;
  replyTo = true;

  open(ch: HostChannel): void {
    if (this.refuseOpen !== null) throw this.refuseOpen;
    this.opened.push(ch);
    ch.onPacket((p, c) => {
      this.packets.push({ relid: c.relid, type: p.type, transId: p.transId, data: p.data().slice() });
      if (!this.replyTo) return;
      const reply = Uint8Array.of(0xc0, 0xde, 0, 0, 0, 0, 0, 0);
      const id = p.transId;
      void c.send((w) => w.writeCompletion(id, reply), RingWriter.packetTotal(0, reply.length));
    });
  }

  close(ch: HostChannel): void {
    this.closed.push(ch);
  }
}

/** A guest scripted message by message. */
class ScriptedGuest {
  readonly sim: Simulation;
  readonly hv: Hypervisor;
  readonly vm: GuestPartition;
  readonly server: VmbusServer;
  readonly v0: Vcpu;
  /** Where messages go: 4 for INITIATE_CONTACT at 5.x, then the msg_conn_id the host gave. */
  conn = VMBUS_MESSAGE_CONNECTION_ID_4;

  constructor(options: VmbusServerOptions = {}, costs: Partial<CostModel> = {}) {
    this.sim = new Simulation({ seed: 7, costs });
    this.hv = new Hypervisor(this.sim);
    this.vm = this.hv.createVm({ vcpuCount: 2, memory: { bytes: 4 * 1024 * 1024 } });
    this.server = new VmbusServer(this.hv, this.vm, options);
    this.v0 = this.vm.vcpus[0]!;
  }

  post(msg: ChannelMessage, conn = this.conn): void {
    this.postRaw(encodeChannelMessage(msg), conn);
  }

  postRaw(bytes: Uint8Array, conn = this.conn): void {
    expect(this.v0.postMessage(conn, 1, bytes)).toBe(HV_STATUS_SUCCESS);
  }

  run(): Promise<void> {
    return this.sim.scheduler.runUntilIdle();
  }

  /** Copies the message in SIMP slot 2 of vCPU 0, decodes it as Linux would, and EOMs. */
  take(): Received | undefined {
    const synic = this.v0.synic;
    if (synic.messageType(VMBUS_MESSAGE_SINT) === HVMSG_NONE) return undefined;
    const m = synic.readMessage(VMBUS_MESSAGE_SINT);
    const bytes = m.payload.slice();
    const msg = decodeChannelMessage(bytes, m.payloadSize, "toGuest");
    expect(synic.endOfMessage(VMBUS_MESSAGE_SINT, m.messageType)).toBe(true);
    return { bytes, msg };
  }

  /** Runs the simulation and collects every message the host sent. */
  async receive(): Promise<Received[]> {
    const out: Received[] = [];
    for (;;) {
      await this.run();
      const r = this.take();
      if (r === undefined) return out;
      out.push(r);
    }
  }

  async receiveOne(): Promise<Received> {
    const all = await this.receive();
    expect(all).toHaveLength(1);
    return all[0]!;
  }

  async connect(version = VERSION_WIN10_V5_3): Promise<Received> {
    const isNew = version >= 0x50000;
    this.post(
      {
        msgtype: CHANNELMSG_INITIATE_CONTACT,
        versionRequested: version,
        targetVcpu: 0,
        contact: isNew ? { kind: "sint", msgSint: 2, msgVtl: 0 } : { kind: "interruptPage", interruptPage: 0x7000 },
        monitorPage1: this.vm.monitor.serverGpa,
        monitorPage2: this.vm.monitor.clientGpa,
      },
      isNew ? VMBUS_MESSAGE_CONNECTION_ID_4 : VMBUS_MESSAGE_CONNECTION_ID,
    );
    const r = await this.receiveOne();
    if (r.msg.msgtype === CHANNELMSG_VERSION_RESPONSE && r.msg.versionSupported) {
      this.conn = isNew ? r.msg.msgConnId : VMBUS_MESSAGE_CONNECTION_ID;
    }
    return r;
  }

  async requestOffers(): Promise<Received[]> {
    this.post({ msgtype: CHANNELMSG_REQUESTOFFERS });
    return this.receive();
  }

  /** Creates a GPADL the Linux way (header + bodies) and returns the host's GPADL_CREATED. */
  async gpadl(relid: number, handle: number, pfns: readonly number[], byteCount = pfns.length * PAGE_SIZE): Promise<Received> {
    for (const m of splitGpadl(handle, relid, byteCount, pfns)) this.post(m);
    return this.receiveOne();
  }

  /** A ring GPADL of `sendPages + recvPages` contiguous pages with both rings initialised by the guest. */
  rings(sendPages: number, recvPages: number): { pfns: number[]; out: RingBuffer; inbound: RingBuffer } {
    const total = sendPages + recvPages;
    const first = this.vm.memory.allocContiguous(total);
    const pfns = Array.from({ length: total }, (_, i) => first + i);
    const gpa = first * PAGE_SIZE;
    const out = new RingBuffer(this.vm.memory.span(gpa, sendPages * PAGE_SIZE), "guest out");
    const inbound = new RingBuffer(this.vm.memory.span(gpa + sendPages * PAGE_SIZE, recvPages * PAGE_SIZE), "guest in");
    out.init();
    inbound.init();
    return { pfns, out, inbound };
  }

  open(relid: number, gpadl: number, downstream: number, targetVp = 0): void {
    this.post({
      msgtype: CHANNELMSG_OPENCHANNEL,
      childRelid: relid,
      openId: relid,
      ringBufferGpadlHandle: gpadl,
      targetVp,
      downstreamRingBufferPageOffset: downstream,
      userData: Uint8Array.of(9, 8, 7),
    });
  }
}

function offerOf(name: string, classId: Guid, instanceId: Guid, extra: Partial<HostDeviceOffer> = {}): HostDeviceOffer {
  return { name, classId, instanceId, monitored: true, subchannelLimit: 0, ...extra };
}

function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

/** Whether relid's bit is set in the SINT-2 event flags of the vCPU with `vpIndex` (SIEFP + 512 + relid/8). */
function eventFlag(vm: GuestPartition, vpIndex: number, relid: number): boolean {
  const v = vm.vcpuByVpIndex(vpIndex)!;
  const byte = vm.memory.u8[v.synic.siefpGpa + 512 + (relid >> 3)]!;
  return (byte & (1 << (relid & 7))) !== 0;
}

function clearEventFlags(vm: GuestPartition): void {
  for (const v of vm.vcpus) vm.memory.u8.fill(0, v.synic.siefpGpa + 512, v.synic.siefpGpa + 768);
}

/** Connected, offered, one opened channel with a 4+4-page ring (relid 1, GPADL 0xe1e10). */
async function openedChannel(targetVp = 0) {
  const g = new ScriptedGuest();
  const dev = new RecordingDevice();
  const device = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1, { monitored: false }), dev);
  await g.connect();
  await g.requestOffers();
  const rings = g.rings(4, 4);
  expect((await g.gpadl(1, 0xe1e10, rings.pfns)).msg).toMatchObject({ creationStatus: 0 });
  g.open(1, 0xe1e10, 4, targetVp);
  const r = await g.receiveOne();
  expect(r.msg).toMatchObject({ msgtype: CHANNELMSG_OPENCHANNEL_RESULT, childRelid: 1, openId: 1, status: 0 });
  return { g, dev, device, ch: device.primary, ...rings };
}

describe("VmbusServer: version negotiation (§7.5)", () => {
  it("accepts 5.3 on connection 4 with CONNECTED and a msg_conn_id the guest must use from then on", async () => {
    const g = new ScriptedGuest();
    const r = await g.connect(VERSION_WIN10_V5_3);
    expect(r.bytes).toHaveLength(16);
    expect(u32(r.bytes, 0)).toBe(CHANNELMSG_VERSION_RESPONSE);
    expect(r.bytes[8]).toBe(1); // version_supported
    expect(r.bytes[9]).toBe(2); // connection_state CONNECTED
    const id = u32(r.bytes, 12);
    expect(id).toBe(0x1000 + g.vm.id);
    expect(g.server.version).toBe(VERSION_WIN10_V5_3);
    expect(g.server.connected).toBe(true);
    expect(g.server.contact).toMatchObject({ targetVcpu: 0, messageSint: 2, monitorPage2: g.vm.monitor.clientGpa });
    // Later messages on connection 4 break the rule; on msg_conn_id they are served.
    g.post({ msgtype: CHANNELMSG_REQUESTOFFERS }, VMBUS_MESSAGE_CONNECTION_ID_4);
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(1);
    expect((await g.requestOffers()).map((m) => m.msg.msgtype)).toEqual([CHANNELMSG_ALLOFFERS_DELIVERED]);
  });

  it("a host with maxVersion 4.0 refuses 5.3 and accepts 4.0 (msg_conn_id 0, later messages on connection 1)", async () => {
    const g = new ScriptedGuest({ maxVersion: VERSION_WIN10 });
    const refused = await g.connect(VERSION_WIN10_V5_3);
    expect(refused.bytes[8]).toBe(0);
    expect(g.server.connected).toBe(false);
    expect(g.server.counters.rejectedMessages).toBe(0); // a refusal is negotiation, not a broken rule
    const accepted = await g.connect(VERSION_WIN10);
    expect(accepted.bytes[8]).toBe(1);
    expect(accepted.bytes[9]).toBe(2);
    expect(u32(accepted.bytes, 12)).toBe(0);
    expect(g.server.version).toBe(VERSION_WIN10);
    expect(g.conn).toBe(VMBUS_MESSAGE_CONNECTION_ID);
    expect((await g.requestOffers()).map((m) => m.msg.msgtype)).toEqual([CHANNELMSG_ALLOFFERS_DELIVERED]);
    expect(g.server.counters.versionsRefused).toBe(1);
    expect(g.server.counters.versionsAccepted).toBe(1);
  });

  it("refuses unknown versions and a second INITIATE_CONTACT while connected; rejects messages before connecting", async () => {
    const g = new ScriptedGuest();
    g.post({ msgtype: CHANNELMSG_REQUESTOFFERS }, VMBUS_MESSAGE_CONNECTION_ID);
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(1);
    expect((await g.connect(0x00050007)).bytes[8]).toBe(0);
    expect((await g.connect(0x00010001)).bytes[8]).toBe(0); // WIN7: too old
    expect((await g.connect()).bytes[8]).toBe(1);
    const again = await g.connect();
    expect(again.bytes[8]).toBe(0);
    expect(g.server.version).toBe(VERSION_WIN10_V5_3);
    expect(g.server.counters.rejectedMessages).toBe(2);
  });
});

describe("VmbusServer: offers (§7.3, §7.6)", () => {
  it("offers two devices (relids 1 and 2, monitor ids, connection ids, GUID bytes) then ALLOFFERS_DELIVERED", async () => {
    const g = new ScriptedGuest();
    const d1 = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1, { chnFlags: 0x4, mmioMegabytes: 0 }), new RecordingDevice());
    const d2 = g.server.addDevice(offerOf("nic", NET_CLASS, INSTANCE_2, { monitored: false, userDef: Uint8Array.of(1, 2, 3) }), new RecordingDevice());
    await g.connect();
    const msgs = await g.requestOffers();
    expect(msgs.map((m) => m.msg.msgtype)).toEqual([CHANNELMSG_OFFERCHANNEL, CHANNELMSG_OFFERCHANNEL, CHANNELMSG_ALLOFFERS_DELIVERED]);
    const [a, b] = msgs.map((m) => m.bytes);
    for (const bytes of [a!, b!]) {
      expect(bytes).toHaveLength(196);
      expect(u32(bytes, 0)).toBe(CHANNELMSG_OFFERCHANNEL);
      expect(bytes[180]).toBe(0); // sub_channel_index 0: a primary
      expect(bytes[190]).toBe(0); // is_dedicated_interrupt
    }
    expect(a!.subarray(8, 24)).toEqual(SCSI_CLASS.toBytes());
    expect(a!.subarray(24, 40)).toEqual(INSTANCE_1.toBytes());
    expect(u32(a!, 184)).toBe(1);
    expect(a![188]).toBe(0); // monitorid
    expect(a![189]).toBe(1); // monitor_allocated
    expect(u32(a!, 192)).toBe(0x10001);
    expect(a![56]).toBe(0x4); // chn_flags
    expect(b!.subarray(8, 24)).toEqual(NET_CLASS.toBytes());
    expect(b!.subarray(24, 40)).toEqual(INSTANCE_2.toBytes());
    expect(u32(b!, 184)).toBe(2);
    expect(b![189]).toBe(0);
    expect(u32(b!, 192)).toBe(0x10002);
    expect(Array.from(b!.subarray(60, 64))).toEqual([1, 2, 3, 0]); // user_def
    // The monitored channel's monitor entry is armed with its connection id and the default 100 µs.
    expect(g.vm.monitor.isArmed(0)).toBe(true);
    expect(g.vm.monitor.connectionId(0)).toBe(0x10001);
    expect(g.vm.monitor.latencyNs(0)).toBe(100_000);
    expect(d1.primary.monitorId).toBe(0);
    expect(d2.primary.monitorId).toBeUndefined();
    expect(g.server.devices()).toEqual([d1, d2]);
    expect(g.server.channel(2)).toBe(d2.primary);
    // A second REQUESTOFFERS in one connection is a broken rule: no second round of offers.
    expect(await g.requestOffers()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(1);
  });

  it("hot-adds a device after the offers: its OFFERCHANNEL arrives at once, with its monitor latency", async () => {
    const g = new ScriptedGuest();
    await g.connect();
    await g.requestOffers();
    const d = g.server.addDevice(offerOf("late", SCSI_CLASS, INSTANCE_2, { monitorLatencyNs: 50_000 }), new RecordingDevice());
    const r = await g.receiveOne();
    expect(r.msg).toMatchObject({ msgtype: CHANNELMSG_OFFERCHANNEL, childRelid: 1, monitorAllocated: true, monitorId: 0, connectionId: 0x10001 });
    expect((r.msg as OfferChannelMessage).ifInstance.equals(INSTANCE_2)).toBe(true);
    expect(g.vm.monitor.latencyNs(0)).toBe(50_000);
    expect(d.primary.offerSent).toBe(true);
  });

  it("offers sub-channels up to the limit with the primary's GUIDs and sub_channel_index 1..n", async () => {
    const g = new ScriptedGuest();
    const d = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1, { subchannelLimit: 2 }), new RecordingDevice());
    expect(() => g.server.offerSubchannels(d, 1)).toThrow(/requested offers/);
    await g.connect();
    await g.requestOffers();
    const subs = g.server.offerSubchannels(d, 3);
    expect(subs.map((c) => [c.relid, c.subchannelIndex, c.monitorId])).toEqual([
      [2, 1, 1],
      [3, 2, 2],
    ]);
    const msgs = (await g.receive()).map((m) => m.msg as OfferChannelMessage);
    expect(msgs.map((m) => [m.childRelid, m.subChannelIndex])).toEqual([
      [2, 1],
      [3, 2],
    ]);
    for (const m of msgs) {
      expect(m.ifType.equals(SCSI_CLASS) && m.ifInstance.equals(INSTANCE_1)).toBe(true);
    }
    expect(d.channels().map((c) => c.subchannelIndex)).toEqual([0, 1, 2]);
    expect(g.server.offerSubchannels(d, 1)).toEqual([]);
  });

  it("keeps message order through a full guest message queue: the outbox retries while the guest reads", async () => {
    const g = new ScriptedGuest({}, { messageQueueDepth: 2 });
    for (let i = 0; i < 5; i++) {
      g.server.addDevice(offerOf(`d${i}`, SCSI_CLASS, Guid.parse(`00000000-0000-0000-0000-00000000000${i}`)), new RecordingDevice());
    }
    await g.connect();
    // A guest with an ISR reads each message as it lands (copy, EOM), 20 µs apiece.
    const seen: (number | string)[] = [];
    installVmbusIsr(g.vm, {
      lookupChannel: () => undefined,
      onMessage: async (vcpu: Vcpu, sint: number) => {
        const m = vcpu.synic.readMessage(sint);
        const msg = decodeChannelMessage(m.payload.slice(), m.payloadSize, "toGuest");
        seen.push(msg.msgtype === CHANNELMSG_OFFERCHANNEL ? msg.childRelid : "all");
        await g.sim.scheduler.sleep(20_000);
        vcpu.synic.endOfMessage(sint, m.messageType);
      },
    });
    g.post({ msgtype: CHANNELMSG_REQUESTOFFERS });
    await g.run();
    expect(seen).toEqual([1, 2, 3, 4, 5, "all"]);
    expect(g.server.counters.outboxDeferred).toBe(4); // 6 posted at once, the hypervisor holds 2
    expect(g.server.counters.outboxRetries).toBeGreaterThan(0);
    expect(g.server.outboxLength).toBe(0);
    expect(g.server.counters.messagesOut).toBe(7); // VERSION_RESPONSE, 5 offers, ALLOFFERS_DELIVERED
  });

  it("stops polling a guest that does not read, and resumes with its next message", async () => {
    const g = new ScriptedGuest({}, { messageQueueDepth: 1 });
    for (let i = 0; i < 3; i++) {
      g.server.addDevice(offerOf(`d${i}`, SCSI_CLASS, Guid.parse(`00000000-0000-0000-0000-00000000000${i}`)), new RecordingDevice());
    }
    await g.connect();
    g.post({ msgtype: CHANNELMSG_REQUESTOFFERS });
    await g.run(); // returns: the outbox gave up polling instead of keeping the queue busy forever
    expect(g.server.counters.outboxStalls).toBe(1);
    const first = await g.receive(); // the guest reads the slot and the one queued message
    expect(first.map((m) => m.msg.msgtype)).toEqual([CHANNELMSG_OFFERCHANNEL, CHANNELMSG_OFFERCHANNEL]);
    g.post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: 99 }); // any message: the guest is alive
    const rest = await g.receive();
    expect(rest.map((m) => (m.msg.msgtype === CHANNELMSG_OFFERCHANNEL ? m.msg.childRelid : "all"))).toEqual([3, "all"]);
  });
});

describe("VmbusServer: GPADLs (§7.7)", () => {
  it("assembles a 60-PFN GPADL from a header and two bodies: GPADL_CREATED status 0", async () => {
    const g = new ScriptedGuest();
    const d = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), new RecordingDevice());
    const d2 = g.server.addDevice(offerOf("nic", NET_CLASS, INSTANCE_2), new RecordingDevice());
    await g.connect();
    await g.requestOffers();
    const pfns = g.vm.memory.allocScattered(60);
    const parts = splitGpadl(0xe1e10, 1, 60 * PAGE_SIZE, pfns);
    expect(parts).toHaveLength(3);
    const r = await g.gpadl(1, 0xe1e10, pfns);
    expect(r.bytes).toHaveLength(20);
    expect(u32(r.bytes, 0)).toBe(CHANNELMSG_GPADL_CREATED);
    expect(u32(r.bytes, 8)).toBe(1);
    expect(u32(r.bytes, 12)).toBe(0xe1e10);
    expect(u32(r.bytes, 16)).toBe(0);
    const view = d.primary.gpadl(0xe1e10);
    expect(view.length).toBe(60 * PAGE_SIZE);
    expect(view.gpaOf(59 * PAGE_SIZE)).toBe(pfns[59]! * PAGE_SIZE);
    // Another channel's device cannot read it; an unknown handle is a typed error too.
    expect(() => d2.primary.gpadl(0xe1e10)).toThrow(ProtocolError);
    expect(() => d.primary.gpadl(0xbad)).toThrow(ProtocolError);
    // The same handle again: refused, the first one stays.
    expect(u32((await g.gpadl(1, 0xe1e10, pfns.slice(0, 2))).bytes, 16)).toBe(VMBUS_STATUS_UNSUCCESSFUL);
    expect(g.server.gpadlCount).toBe(1);
    // Teardown → TORNDOWN with the handle at @8.
    g.post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: 1, gpadl: 0xe1e10 });
    const t = await g.receiveOne();
    expect(u32(t.bytes, 0)).toBe(CHANNELMSG_GPADL_TORNDOWN);
    expect(u32(t.bytes, 8)).toBe(0xe1e10);
    expect(g.server.gpadlCount).toBe(0);
  });

  it("refuses a GPADL with a PFN beyond guest memory (non-zero status, nothing stored) and a body without a header", async () => {
    const g = new ScriptedGuest();
    g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), new RecordingDevice());
    await g.connect();
    await g.requestOffers();
    const beyond = g.vm.memory.pageCount + 5;
    const r = await g.gpadl(1, 0xe1e11, [10, 11, beyond]);
    expect(r.msg).toMatchObject({ msgtype: CHANNELMSG_GPADL_CREATED, childRelid: 1, gpadl: 0xe1e11, creationStatus: VMBUS_STATUS_UNSUCCESSFUL });
    expect(g.server.gpadlCount).toBe(0);
    // A GPADL on a relid that was never offered.
    expect((await g.gpadl(9, 0xe1e12, [10])).msg).toMatchObject({ creationStatus: VMBUS_STATUS_UNSUCCESSFUL });
    // A body for an unknown handle: no (relid, gpadl) request to answer; counted.
    const before = g.server.counters.rejectedMessages;
    const [, body] = splitGpadl(0xe1e13, 1, 30 * PAGE_SIZE, Array.from({ length: 30 }, (_, i) => 100 + i));
    g.post(body!);
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(before + 1);
  });
});

describe("VmbusServer: open, close, modify (§7.8, §8.2)", () => {
  it("opens a channel: handler.open sees the rings mapped at the GPADL's GPAs, userdata and target VP", async () => {
    const { g, dev, ch, pfns } = await openedChannel(1);
    expect(dev.opened).toEqual([ch]);
    expect(ch.state).toBe("open");
    expect(ch.targetVp).toBe(1);
    expect(Array.from(ch.userData.subarray(0, 4))).toEqual([9, 8, 7, 0]);
    const ep = ch.endpoint!;
    const u8 = g.vm.memory.u8;
    // Host in = guest→host ring at GPADL offset 0; host out = host→guest ring at 4 pages.
    expect(ep.reader.ring.ringSize).toBe(4 * PAGE_SIZE);
    expect(ep.reader.ring.data.byteOffset - u8.byteOffset).toBe(pfns[0]! * PAGE_SIZE + PAGE_SIZE);
    expect(ep.writer.ring.data.byteOffset - u8.byteOffset).toBe(pfns[4]! * PAGE_SIZE + PAGE_SIZE);
    expect(ep.writer.ring.ringSize).toBe(4 * PAGE_SIZE);
    expect(g.server.counters.channelsOpened).toBe(1);
    expect(g.server.counters.messagesIn[CHANNELMSG_OPENCHANNEL]).toBe(1);
    expect(g.server.counters.messagesOutByType[CHANNELMSG_OPENCHANNEL_RESULT]).toBe(1);
    // A packet's GPA range: checked against guest memory.
    g.vm.memory.u8[pfns[2]! * PAGE_SIZE + 10] = 0xab;
    expect(ch.gpaRange({ byteOffset: 10, byteCount: 1, pfns: [pfns[2]!] }, "range 0").read(0, 1)[0]).toBe(0xab);
    expect(() => ch.gpaRange({ byteOffset: 0, byteCount: 8, pfns: [g.vm.memory.pageCount] }, "range 1")).toThrow(GpadlAccessError);
  });

  it("refuses OPENCHANNEL for an unknown relid, a bad downstream offset, an unknown GPADL, a bad VP, and a second open", async () => {
    const g = new ScriptedGuest();
    const dev = new RecordingDevice();
    g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), dev);
    await g.connect();
    await g.requestOffers();
    const rings = g.rings(4, 4);
    await g.gpadl(1, 0xe1e10, rings.pfns);
    const status = async (relid: number, gpadl: number, down: number, vp = 0): Promise<number> => {
      g.open(relid, gpadl, down, vp);
      const r = await g.receiveOne();
      expect(u32(r.bytes, 0)).toBe(CHANNELMSG_OPENCHANNEL_RESULT);
      expect(u32(r.bytes, 8)).toBe(relid);
      expect(u32(r.bytes, 12)).toBe(relid); // openid echoed
      return u32(r.bytes, 16);
    };
    expect(await status(7, 0xe1e10, 4)).toBe(VMBUS_STATUS_UNSUCCESSFUL);
    expect(await status(1, 0xe1e10, 1)).toBe(VMBUS_STATUS_UNSUCCESSFUL); // guest→host ring of 1 page
    expect(await status(1, 0xe1e10, 7)).toBe(VMBUS_STATUS_UNSUCCESSFUL); // host→guest ring of 1 page
    expect(await status(1, 0xe1e10, 0xffffffff)).toBe(VMBUS_STATUS_UNSUCCESSFUL);
    expect(await status(1, 0xabcdef, 4)).toBe(VMBUS_STATUS_UNSUCCESSFUL);
    expect(await status(1, 0xe1e10, 4, 5)).toBe(VMBUS_STATUS_UNSUCCESSFUL); // no VP 5
    expect(dev.opened).toEqual([]);
    expect(g.server.counters.openFailures).toBe(6);
    expect(await status(1, 0xe1e10, 4)).toBe(0);
    expect(await status(1, 0xe1e10, 4)).toBe(VMBUS_STATUS_UNSUCCESSFUL); // already open
    expect(dev.opened).toHaveLength(1);
    expect(g.server.counters.rejectedMessages).toBe(7);
  });

  it("refuses a ring GPADL of non-adjacent pages and a device that refuses the open; the channel stays offered", async () => {
    const g = new ScriptedGuest();
    const dev = new RecordingDevice();
    const d = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), dev);
    await g.connect();
    await g.requestOffers();
    const scattered = [40, 42, 44, 46];
    await g.gpadl(1, 0x100, scattered);
    g.open(1, 0x100, 2);
    expect((await g.receiveOne()).msg).toMatchObject({ status: VMBUS_STATUS_UNSUCCESSFUL });
    const rings = g.rings(2, 2);
    await g.gpadl(1, 0x101, rings.pfns);
    dev.refuseOpen = new ProtocolError("test device", "open", 1, "refused on purpose");
    g.open(1, 0x101, 2);
    expect((await g.receiveOne()).msg).toMatchObject({ status: VMBUS_STATUS_UNSUCCESSFUL });
    expect(d.primary.state).toBe("offered");
    expect(d.primary.endpoint).toBeNull();
    dev.refuseOpen = null;
    g.open(1, 0x101, 2);
    expect((await g.receiveOne()).msg).toMatchObject({ status: 0 });
    expect(d.primary.state).toBe("open");
  });

  it("MODIFYCHANNEL at 5.3: MODIFYCHANNEL_RESPONSE status 0 and later interrupts go to the new VP; failures get a status", async () => {
    const { g, ch, out } = await openedChannel(0);
    g.post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: 1, targetVp: 1 });
    const r = await g.receiveOne();
    expect(r.bytes).toHaveLength(16);
    expect(u32(r.bytes, 0)).toBe(CHANNELMSG_MODIFYCHANNEL_RESPONSE);
    expect(u32(r.bytes, 8)).toBe(1);
    expect(u32(r.bytes, 12)).toBe(0);
    expect(ch.targetVp).toBe(1);
    // A packet from the guest now gets its completion interrupt on VP 1.
    clearEventFlags(g.vm);
    const w = new RingWriter(out);
    expect(w.writeInband(5, new Uint8Array(8), 1)).toBe(true);
    expect(w.commit()).toBe(true);
    g.v0.signalEvent(ch.connectionId);
    await g.run();
    expect(eventFlag(g.vm, 1, 1)).toBe(true);
    expect(eventFlag(g.vm, 0, 1)).toBe(false);
    // Bad VP, unknown relid: non-zero status.
    g.post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: 1, targetVp: 9 });
    g.post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: 4, targetVp: 0 });
    const fails = await g.receive();
    expect(fails.map((f) => [f.msg.msgtype, u32(f.bytes, 8), u32(f.bytes, 12)])).toEqual([
      [CHANNELMSG_MODIFYCHANNEL_RESPONSE, 1, VMBUS_STATUS_UNSUCCESSFUL],
      [CHANNELMSG_MODIFYCHANNEL_RESPONSE, 4, VMBUS_STATUS_UNSUCCESSFUL],
    ]);
    expect(ch.targetVp).toBe(1);
  });

  it("MODIFYCHANNEL below 4.1 is rejected without a reply", async () => {
    const g = new ScriptedGuest({ maxVersion: VERSION_WIN10 });
    g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), new RecordingDevice());
    await g.connect(VERSION_WIN10);
    await g.requestOffers();
    g.post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: 1, targetVp: 1 });
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(1);
  });

  it("CLOSECHANNEL closes (handler.close, no reply); a teardown of the open ring waits for the close", async () => {
    const { g, dev, ch } = await openedChannel();
    g.post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: 1, gpadl: 0xe1e10 });
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.teardownsDeferred).toBe(1);
    expect(() => ch.gpadl(0xe1e10)).toThrow(/torn down/);
    g.post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: 1 });
    const r = await g.receiveOne();
    expect(r.msg).toEqual({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: 0xe1e10 });
    expect(dev.closed).toEqual([ch]);
    expect(ch.state).toBe("offered");
    expect(ch.endpoint).toBeNull();
    expect(g.server.gpadlCount).toBe(0);
    // Closing again breaks the rule; no reply.
    g.post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: 1 });
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.rejectedMessages).toBe(1);
  });
});

describe("VmbusServer: malformed input", () => {
  it("drops and counts a message shorter than its type's minimum and an unknown msgtype, then answers the next good one", async () => {
    const g = new ScriptedGuest();
    g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1), new RecordingDevice());
    await g.connect();
    const open = encodeChannelMessage({
      msgtype: CHANNELMSG_OPENCHANNEL,
      childRelid: 1,
      openId: 1,
      ringBufferGpadlHandle: 1,
      targetVp: 0,
      downstreamRingBufferPageOffset: 2,
      userData: new Uint8Array(0),
    });
    g.postRaw(open.subarray(0, 100)); // OPENCHANNEL needs 148 bytes
    const type30 = new Uint8Array(8);
    type30[0] = 30;
    g.postRaw(type30);
    g.postRaw(Uint8Array.of(1, 2, 3)); // shorter than the header
    g.postRaw(encodeChannelMessage({ msgtype: CHANNELMSG_VERSION_RESPONSE, versionSupported: true, connectionState: 2, msgConnId: 0 })); // a host→guest message
    expect(await g.receive()).toEqual([]);
    expect(g.server.counters.malformedMessages).toBe(4);
    expect(g.server.counters.lastMalformed).toMatch(/VERSION_RESPONSE/);
    expect(g.sim.scheduler.pendingErrors).toEqual([]);
    const offers = await g.requestOffers();
    expect(offers.map((m) => m.msg.msgtype)).toEqual([CHANNELMSG_OFFERCHANNEL, CHANNELMSG_ALLOFFERS_DELIVERED]);
  });

  it("fails a channel whose ring is corrupt: device closed, channel rescinded, nothing escapes into the scheduler", async () => {
    const { g, dev, ch, out } = await openedChannel();
    const released = ch.released;
    out.storeWriteIndex(13); // not 8-aligned
    g.v0.signalEvent(ch.connectionId);
    const r = await g.receiveOne();
    expect(r.msg).toEqual({ msgtype: CHANNELMSG_RESCIND_CHANNELOFFER, childRelid: 1 });
    expect(r.bytes).toHaveLength(12);
    expect(dev.closed).toEqual([ch]);
    expect(ch.state).toBe("rescinded");
    expect(ch.counters.errors).toBe(1);
    expect(String(ch.lastError)).toMatch(/write_index/);
    expect(g.server.counters.channelFailures).toBe(1);
    g.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: 1 });
    await g.run();
    await released;
    expect(ch.state).toBe("released");
    expect(g.server.devices()).toEqual([]);
    expect(g.sim.scheduler.pendingErrors).toEqual([]);
  });
});

describe("VmbusServer: rescind and UNLOAD (§7.9, §7.11)", () => {
  it("rescinds: RESCIND bytes, then the guest's RELID_RELEASED frees the relid, monitor id and event connection", async () => {
    const g = new ScriptedGuest();
    const dev = new RecordingDevice();
    const d = g.server.addDevice(offerOf("disk", SCSI_CLASS, INSTANCE_1, { subchannelLimit: 1 }), dev);
    await g.connect();
    await g.requestOffers();
    const [sub] = g.server.offerSubchannels(d, 1);
    await g.receive();
    let done = false;
    const p = g.server.rescind(d).then(() => {
      done = true;
    });
    expect(g.server.rescind(d)).toBe(d.rescindRequested);
    const msgs = await g.receive();
    expect(msgs.map((m) => Array.from(m.bytes))).toEqual([
      [2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0], // the sub-channel first
      [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    ]);
    expect(d.primary.state).toBe("rescinded");
    expect(done).toBe(false);
    // A second OPEN of a rescinded channel fails.
    g.open(1, 0x1, 2);
    expect((await g.receiveOne()).msg).toMatchObject({ status: VMBUS_STATUS_UNSUCCESSFUL });
    g.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: 2 });
    g.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: 1 });
    await g.run();
    await p;
    expect(done).toBe(true);
    expect(sub!.state).toBe("released");
    expect(g.server.channel(1)).toBeUndefined();
    expect(g.vm.monitor.isArmed(0)).toBe(false);
    expect(g.v0.signalEvent(0x10001)).toBe(HV_STATUS_INVALID_CONNECTION_ID);
    expect(g.server.devices()).toEqual([]);
    // A RELID_RELEASED for a relid that is not rescinded is rejected.
    g.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: 1 });
    await g.run();
    expect(g.server.counters.rejectedMessages).toBe(2); // with the OPEN above
    // The relid and monitor id are reused.
    const again = g.server.addDevice(offerOf("disk2", SCSI_CLASS, INSTANCE_2), dev);
    expect((await g.receiveOne()).msg).toMatchObject({ msgtype: CHANNELMSG_OFFERCHANNEL, childRelid: 1, monitorId: 0, connectionId: 0x10001 });
    expect(again.primary.relid).toBe(1);
  });

  it("closes an open channel on rescind before announcing it", async () => {
    const { g, dev, ch, device } = await openedChannel();
    const p = g.server.rescind(device);
    const r = await g.receiveOne();
    expect(r.msg).toEqual({ msgtype: CHANNELMSG_RESCIND_CHANNELOFFER, childRelid: 1 });
    expect(dev.closed).toEqual([ch]);
    expect(ch.endpoint).toBeNull();
    // The guest's close path still sends CLOSECHANNEL and tears its ring GPADL down: tolerated and answered.
    g.post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: 1 });
    g.post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: 1, gpadl: 0xe1e10 });
    expect((await g.receiveOne()).msg).toEqual({ msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: 0xe1e10 });
    expect(g.server.counters.closesAfterHostClose).toBe(1);
    expect(g.server.counters.rejectedMessages).toBe(0);
    g.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: 1 });
    await g.run();
    await p;
    expect(g.server.gpadlCount).toBe(0);
  });

  it("UNLOAD closes open channels, forgets GPADLs and replies; a new connection is offered the same relids", async () => {
    const { g, dev, ch } = await openedChannel();
    g.post({ msgtype: CHANNELMSG_UNLOAD });
    const r = await g.receiveOne();
    expect(r.msg).toEqual({ msgtype: CHANNELMSG_UNLOAD_RESPONSE });
    expect(dev.closed).toEqual([ch]);
    expect(g.server.connected).toBe(false);
    expect(g.server.version).toBeNull();
    expect(g.server.gpadlCount).toBe(0);
    g.conn = VMBUS_MESSAGE_CONNECTION_ID_4;
    expect((await g.connect()).bytes[8]).toBe(1);
    const offers = await g.requestOffers();
    expect(offers[0]!.msg).toMatchObject({ msgtype: CHANNELMSG_OFFERCHANNEL, childRelid: 1, connectionId: 0x10001 });
  });
});

describe("VmbusServer: the data path (§3)", () => {
  it("drains a guest packet into the device, which completes it; the host signals the target VP's relid bit", async () => {
    const { g, dev, ch, out, inbound } = await openedChannel(1);
    const payload = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    const w = new RingWriter(out);
    expect(w.writeInband(0x77, payload, 1)).toBe(true);
    expect(w.commit()).toBe(true); // empty → non-empty: signal
    clearEventFlags(g.vm);
    expect(g.v0.signalEvent(ch.connectionId)).toBe(HV_STATUS_SUCCESS);
    await g.run();
    expect(dev.packets).toHaveLength(1);
    expect(dev.packets[0]).toMatchObject({ relid: 1, type: VM_PKT_DATA_INBAND, transId: 0x77n });
    expect(dev.packets[0]!.data.subarray(0, 24)).toEqual(payload);
    expect(ch.counters.packetsIn).toBe(1);
    expect(ch.counters.hostWakeups).toBe(1);
    // The completion's interrupt: bit 1 of VP 1's SINT-2 event flags.
    expect(eventFlag(g.vm, 1, 1)).toBe(true);
    expect(eventFlag(g.vm, 0, 1)).toBe(false);
    expect(ch.counters.interruptsToGuest).toBe(1);
    const reader = new RingReader(inbound);
    const p = reader.first();
    expect(p).not.toBeNull();
    expect(p!.type).toBe(VM_PKT_COMP);
    expect(p!.transId).toBe(0x77n);
    expect(Array.from(p!.data().subarray(0, 2))).toEqual([0xc0, 0xde]);
    // The guest→host ring was consumed.
    expect(out.loadReadIndex()).toBe(out.loadWriteIndex());
    expect(g.vm.counters.signalsNecessary).toBe(1);
  });

  it("classifies signals: empty → non-empty after a drain is necessary, a repeat without a drain is not", async () => {
    const { g, ch, out } = await openedChannel();
    const w = new RingWriter(out);
    w.writeInband(1, new Uint8Array(8), 0);
    w.commit();
    g.v0.signalEvent(ch.connectionId);
    // A second signal before the host drained: unnecessary.
    g.v0.signalEvent(ch.connectionId);
    await g.run();
    expect(ch.counters.signalsNecessary).toBe(1);
    expect(ch.counters.signalsUnnecessary).toBe(1);
    // After a full drain, the next packet's signal is necessary again; a signal with an empty ring is not.
    w.writeInband(2, new Uint8Array(8), 0);
    w.commit();
    g.v0.signalEvent(ch.connectionId);
    await g.run();
    g.v0.signalEvent(ch.connectionId);
    await g.run();
    expect(ch.counters.signalsNecessary).toBe(2);
    expect(ch.counters.signalsUnnecessary).toBe(2);
    expect(g.vm.counters.signalsUnnecessary).toBe(2);
  });

  it("a host blocked on a full host→guest ring is woken by the guest's read (necessary signal) and sends the rest in order", async () => {
    const { g, ch, inbound } = await openedChannel();
    const data = new Uint8Array(1000);
    const total = RingWriter.packetTotal(0, data.length);
    const sent: number[] = [];
    // 3 data pages hold 12 such packets; 16 block.
    for (let i = 0; i < 16; i++) {
      void ch.send((w) => w.writeInband(i, data, 0), total).then(() => sent.push(i));
    }
    await g.run();
    expect(sent.length).toBeLessThan(16);
    expect(ch.endpoint!.blockedSenders).toBe(16 - sent.length);
    expect(inbound.loadPendingSendSize()).toBe(total);
    // The guest reads everything and signals the host (§3.2: not enough → enough).
    const reader = new RingReader(inbound);
    const got: number[] = [];
    for (let p = reader.first(); p !== null; p = reader.next()) got.push(p.transIdNumber);
    expect(reader.close()).toBe(true);
    g.v0.signalEvent(ch.connectionId);
    await g.run();
    expect(ch.counters.signalsNecessary).toBe(1);
    for (let p = reader.first(); p !== null; p = reader.next()) got.push(p.transIdNumber);
    reader.close();
    expect(got).toEqual([...Array(16).keys()]);
    expect(sent).toEqual([...Array(16).keys()]);
  });
});
