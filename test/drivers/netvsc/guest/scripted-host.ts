/**
 * A scripted netvsp for the guest driver's tests: just enough of an NVSP /
 * RNDIS host (§10 initialization, §13.8 bring-up answers, §11.1 transmit
 * from sections and GPA ranges, §11.2 receive indications) to drive the
 * guest, built from the protocol codecs, with knobs for what the tests
 * need — refused versions, answers to the queries, held or failed
 * transmit completions, a paused or stepped drain. Every NVSP and RNDIS
 * message is logged.
 *
 * It is deliberately not the project's host VSP (drivers/netvsc/host),
 * which is written separately: the guest is tested against this peer alone.
 */
import { inject, injectable, type DependencyContainer } from "tsyringe";
import {
  GpaDirectRanges,
  HOST_DEVICE_CONFIG,
  HOST_VMBUS_SERVER,
  HV_NIC_GUID,
  RingWriter,
  VM_PKT_COMP,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VmbusSystem,
  registerGuestDriver,
  registerHostDevice,
  type GpaRange,
  type GpadlView,
  type HostChannel,
  type HostChannelHandler,
  type IncomingPacket,
  type VmbusServer,
} from "../../../../core/index.js";
import {
  NDIS_MEDIA_STATE_CONNECTED,
  NDIS_MEDIA_STATE_DISCONNECTED,
  NETVSC_INVALID_INDEX,
  NETVSC_RECEIVE_BUFFER_ID,
  NETVSC_SEND_SECTION_SIZE,
  NVSP_RNDIS_CHANNEL_TYPE_CONTROL,
  NVSP_RNDIS_CHANNEL_TYPE_DATA,
  NVSP_STAT_NONE,
  NVSP_STAT_SUCCESS,
  OID_802_3_PERMANENT_ADDRESS,
  OID_GEN_FRIENDLY_NAME,
  OID_GEN_LINK_SPEED,
  OID_GEN_MAXIMUM_FRAME_SIZE,
  OID_GEN_MEDIA_CONNECT_STATUS,
  OID_GEN_RECEIVE_SCALE_CAPABILITIES,
  OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES,
  RNDIS_STATUS_NOT_SUPPORTED,
  RNDIS_STATUS_SUCCESS,
  decodeNvspMessage,
  decodeRndisMessage,
  emptyNdisOffload,
  encodeFriendlyName,
  encodeNdisOffload,
  encodeNdisRecvScaleCap,
  encodeNvspMessage,
  encodeRndisMessage,
  encodeU32Info,
  makeNdisRecvScaleCap,
  nvspHostMessageSize,
  parseMac,
  splitRndisMessages,
  type NvspMessage,
  type RndisMessage,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NETVSC_CONFIG, NetvscDriver, type NetvscConfig } from "../../../../drivers/netvsc/guest/index.js";

/** One NVSP message the host received. */
export interface LoggedNvsp {
  readonly relid: number;
  readonly subchannelIndex: number;
  readonly type: number;
  readonly flags: number;
  readonly transId: bigint;
  readonly bytes: Uint8Array;
  readonly msg: NvspMessage;
  readonly ranges: readonly GpaRange[];
}

/** One RNDIS message the host received, with where it came from. */
export interface LoggedRndis {
  readonly relid: number;
  readonly via: "section" | "gpa";
  readonly sectionIndex: number;
  /** Offset of the message inside its section (0 for GPA ranges). */
  readonly offset: number;
  readonly bytes: Uint8Array;
  readonly msg: RndisMessage;
}

interface HeldCompletion {
  readonly ch: HostChannel;
  readonly transId: bigint;
}

export class NetScript {
  acceptedVersions: number[] = [0x00060001, 0x00060000, 0x00050000, 0x00040000, 0x00030002, 0x00000002];
  mac = "00:15:5d:12:34:56";
  /** Answer to MAXIMUM_FRAME_SIZE (the host's MTU). */
  maxFrameSize = 1500;
  mediaConnected = true;
  linkSpeed100Bps = 100_000_000;
  rssQueues = 8;
  subAllocSize = 1806;
  sectionSize = NETVSC_SEND_SECTION_SIZE;
  /** Transmit completions are kept (see releaseHeld) while true. */
  holdTx = false;
  /** The host stops draining the primary's ring while true (see resume). */
  paused = false;
  /** While paused, the host still takes this many packets from the primary's ring (see step). */
  drainBudget = 0;
  /** NVSP status of the completion of every data SEND_RNDIS_PKT (held ones excepted, see releaseHeld). */
  txStatus: number = NVSP_STAT_SUCCESS;
  /** Send an indirection table with these entries after the subchannels are offered. */
  sendTable: number[] | null = null;
  readonly nvsp: LoggedNvsp[] = [];
  readonly rndis: LoggedRndis[] = [];
  /** Transaction ids of the transfer-page packets sent by `indicate`, in order. */
  readonly indicated: bigint[] = [];
  /** Receive completions from the guest: {transId, payload}. */
  readonly recvCompletions: { transId: bigint; payload: Uint8Array }[] = [];
  readonly held: HeldCompletion[] = [];
  readonly opened: HostChannel[] = [];
  readonly closed: HostChannel[] = [];
  primary: HostChannel | null = null;
  recvBuf: GpadlView | null = null;
  sendBuf: GpadlView | null = null;
  device: FakeNetvsp | null = null;
  private nextSlot = 0;
  private nextXferId = 1n;

  /** Data frames received (RNDIS PACKET payloads), in order. */
  get frames(): Uint8Array[] {
    return this.rndis.flatMap((r) => (r.msg.kind === "packet" ? [r.msg.data] : []));
  }

  /** Names of the control messages received, in order ("QUERY 0x…", "SET 0x…", "initialize", "halt"). */
  controlOrder(): string[] {
    return this.rndis
      .filter((r) => r.msg.kind !== "packet")
      .map((r) => (r.msg.kind === "query" || r.msg.kind === "set" ? `${r.msg.kind} 0x${r.msg.oid.toString(16).padStart(8, "0")}` : r.msg.kind));
  }

  /**
   * Indicates RNDIS messages through the receive buffer, one sub-allocation
   * and one range per message, in one transfer-page packet on `ch` (default
   * the primary). `rangeOverride` replaces the ranges (for malformed tests).
   */
  indicate(messages: readonly Uint8Array[], options: { ch?: HostChannel; ranges?: { byteCount: number; byteOffset: number }[] } = {}): Promise<void> {
    const ch = options.ch ?? this.primary;
    const buf = this.recvBuf;
    if (ch === null || buf === null) throw new Error("no receive buffer yet");
    const count = Math.floor(buf.length / this.subAllocSize);
    const ranges = messages.map((m) => {
      const slot = this.nextSlot++ % count;
      buf.write(slot * this.subAllocSize, m);
      return { byteCount: m.length, byteOffset: slot * this.subAllocSize };
    });
    const payload = encodeNvspMessage(
      { kind: "send_rndis_pkt", channelType: NVSP_RNDIS_CHANNEL_TYPE_DATA, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 },
      { size: 28 },
    );
    const r = options.ranges ?? ranges;
    const id = this.nextXferId++;
    this.indicated.push(id);
    return ch.send((w) => w.writeXferPages(id, NETVSC_RECEIVE_BUFFER_ID, r, payload), RingWriter.packetTotal(8 + 8 * r.length, payload.length));
  }

  indicateFrames(frames: readonly Uint8Array[]): Promise<void> {
    return this.indicate(frames.map((f) => encodeRndisMessage({ kind: "packet", data: f, ppis: [] })));
  }

  indicateStatus(status: number): Promise<void> {
    return this.indicate([encodeRndisMessage({ kind: "indicate_status", status, payload: new Uint8Array(0) })]);
  }

  /** Sends every held transmit completion. */
  releaseHeld(): void {
    for (const h of this.held.splice(0)) completeTx(h.ch, h.transId, NVSP_STAT_SUCCESS);
  }

  resume(): void {
    this.paused = false;
    this.primary?.service();
  }

  /** While paused: take exactly `n` more packets from the primary's ring now (and complete them), then stay paused. */
  step(n: number): void {
    this.drainBudget = n;
    this.primary?.service();
  }
}

function completeTx(ch: HostChannel, transId: bigint, status: number): void {
  const reply = encodeNvspMessage({ kind: "send_rndis_pkt_complete", status }, { size: 28 });
  void ch.send((w) => w.writeCompletion(transId, reply), RingWriter.packetTotal(0, reply.length)).catch(() => undefined);
}

@injectable()
export class FakeNetvsp implements HostChannelHandler {
  readonly script: NetScript;
  private readonly ranges = new GpaDirectRanges();
  private version = 0;

  constructor(
    @inject(HOST_DEVICE_CONFIG) config: unknown,
    @inject(HOST_VMBUS_SERVER) private readonly server: VmbusServer,
  ) {
    if (!(config instanceof NetScript)) throw new Error("FakeNetvsp needs a NetScript as its config");
    this.script = config;
    config.device = this;
  }

  open(ch: HostChannel): void {
    this.script.opened.push(ch);
    if (ch.subchannelIndex === 0) this.script.primary = ch;
    ch.onPacket((p, c) => this.onPacket(p, c));
  }

  close(ch: HostChannel): void {
    this.script.closed.push(ch);
  }

  private reply(ch: HostChannel, transId: bigint, msg: NvspMessage): void {
    const bytes = encodeNvspMessage(msg, { size: nvspHostMessageSize(this.version) });
    void ch.send((w) => w.writeCompletion(transId, bytes), RingWriter.packetTotal(0, bytes.length)).catch(() => undefined);
  }

  private onPacket(p: IncomingPacket, ch: HostChannel): boolean | void {
    const s = this.script;
    if (s.paused && ch.subchannelIndex === 0) {
      if (s.drainBudget <= 0) return false;
      s.drainBudget--;
    }
    if (p.type === VM_PKT_COMP) {
      s.recvCompletions.push({ transId: p.transId, payload: p.data().slice() });
      return;
    }
    const ranges = p.type === VM_PKT_DATA_USING_GPA_DIRECT ? this.ranges.parse(p).toRanges() : [];
    const bytes = p.data().slice();
    const msg = decodeNvspMessage(bytes, { sender: "guest" });
    s.nvsp.push({ relid: ch.relid, subchannelIndex: ch.subchannelIndex, type: p.type, flags: p.flags, transId: p.transId, bytes, msg, ranges });
    if (p.type !== VM_PKT_DATA_INBAND && p.type !== VM_PKT_DATA_USING_GPA_DIRECT) return;
    switch (msg.kind) {
      case "init": {
        const ok = s.acceptedVersions.includes(msg.minProtocolVersion);
        if (ok) this.version = msg.minProtocolVersion;
        this.reply(ch, p.transId, { kind: "init_complete", negotiatedProtocolVersion: 0xffffffff, maxMdlChainLength: 34, status: ok ? NVSP_STAT_SUCCESS : NVSP_STAT_NONE });
        return;
      }
      case "send_recv_buf": {
        s.recvBuf = ch.gpadl(msg.gpadlHandle);
        const n = Math.floor(s.recvBuf.length / s.subAllocSize);
        this.reply(ch, p.transId, {
          kind: "send_recv_buf_complete",
          status: NVSP_STAT_SUCCESS,
          sections: [{ offset: 0, subAllocSize: s.subAllocSize, numSubAllocs: n, endOffset: n * s.subAllocSize }],
        });
        return;
      }
      case "send_send_buf":
        s.sendBuf = ch.gpadl(msg.gpadlHandle);
        this.reply(ch, p.transId, { kind: "send_send_buf_complete", status: NVSP_STAT_SUCCESS, sectionSize: s.sectionSize });
        return;
      case "subchn_req": {
        const n = Math.min(msg.numSubchannels, s.rssQueues - 1);
        this.reply(ch, p.transId, { kind: "subchn_comp", status: NVSP_STAT_SUCCESS, numSubchannels: n });
        this.server.offerSubchannels(ch.device, n);
        if (s.sendTable !== null) {
          const t = encodeNvspMessage({ kind: "send_table", table: s.sendTable });
          void ch.send((w) => w.writeInband(0, t, 0), RingWriter.packetTotal(0, t.length));
        }
        return;
      }
      case "send_rndis_pkt":
        this.onRndisPacket(ch, p.transId, msg.channelType, msg.sendBufferSectionIndex, msg.sendBufferSectionSize, ranges);
        return;
      default:
        return;
    }
  }

  private onRndisPacket(ch: HostChannel, transId: bigint, channelType: number, index: number, size: number, ranges: readonly GpaRange[]): void {
    const s = this.script;
    if (index !== NETVSC_INVALID_INDEX) {
      const section = (s.sendBuf as GpadlView).read(index * s.sectionSize, size);
      let at = 0;
      for (const m of splitRndisMessages(section)) {
        s.rndis.push({ relid: ch.relid, via: "section", sectionIndex: index, offset: at, bytes: m.slice(), msg: decodeRndisMessage(m) });
        at += m.length;
      }
    } else {
      const parts = ranges.map((r) => ch.gpaRange(r, "rndis").read(0, r.byteCount));
      const all = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of parts) {
        all.set(b, at);
        at += b.length;
      }
      const msg = decodeRndisMessage(all);
      s.rndis.push({ relid: ch.relid, via: "gpa", sectionIndex: index, offset: 0, bytes: all, msg });
      if (channelType === NVSP_RNDIS_CHANNEL_TYPE_CONTROL) this.onControl(msg);
    }
    if (s.holdTx && channelType === NVSP_RNDIS_CHANNEL_TYPE_DATA) {
      s.held.push({ ch, transId });
      return;
    }
    completeTx(ch, transId, channelType === NVSP_RNDIS_CHANNEL_TYPE_DATA ? s.txStatus : NVSP_STAT_SUCCESS);
  }

  /** The RNDIS device: answers through the receive buffer (channel_type 1 in the NVSP header is not checked by Linux). */
  private onControl(msg: RndisMessage): void {
    const s = this.script;
    const answer = (m: RndisMessage): void => void s.indicate([encodeRndisMessage(m)]);
    switch (msg.kind) {
      case "initialize":
        answer({
          kind: "initialize_cmplt",
          requestId: msg.requestId,
          status: RNDIS_STATUS_SUCCESS,
          majorVersion: 1,
          minorVersion: 0,
          deviceFlags: 1,
          medium: 0,
          maxPacketsPerMessage: 8,
          maxTransferSize: 0xefffffff,
          packetAlignmentFactor: 3,
          afListOffset: 0,
          afListSize: 0,
        });
        return;
      case "query": {
        const info = this.queryAnswer(msg.oid);
        answer({ kind: "query_cmplt", requestId: msg.requestId, status: info === null ? RNDIS_STATUS_NOT_SUPPORTED : RNDIS_STATUS_SUCCESS, info: info ?? new Uint8Array(0) });
        return;
      }
      case "set":
        answer({ kind: "set_cmplt", requestId: msg.requestId, status: RNDIS_STATUS_SUCCESS });
        return;
      default:
        return;
    }
  }

  private queryAnswer(oid: number): Uint8Array | null {
    const s = this.script;
    switch (oid) {
      case OID_GEN_MAXIMUM_FRAME_SIZE:
        return encodeU32Info(s.maxFrameSize);
      case OID_802_3_PERMANENT_ADDRESS:
        return parseMac(s.mac);
      case OID_GEN_FRIENDLY_NAME:
        return encodeFriendlyName("Network Device");
      case OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES:
        return encodeNdisOffload(emptyNdisOffload());
      case OID_GEN_MEDIA_CONNECT_STATUS:
        return encodeU32Info(s.mediaConnected ? NDIS_MEDIA_STATE_CONNECTED : NDIS_MEDIA_STATE_DISCONNECTED);
      case OID_GEN_LINK_SPEED:
        return encodeU32Info(s.linkSpeed100Bps);
      case OID_GEN_RECEIVE_SCALE_CAPABILITIES:
        return encodeNdisRecvScaleCap(makeNdisRecvScaleCap(0x301, 1, s.rssQueues, 128));
      default:
        return null;
    }
  }
}

/** The test plugin: the real guest driver, the scripted host for the NIC class. */
export function fakePlugin(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "netvsc", classIds: [HV_NIC_GUID] }, NetvscDriver);
  registerHostDevice(c, { name: "fakevsp", classId: HV_NIC_GUID, subchannelLimit: 4 }, FakeNetvsp);
}

/** Small buffers so a test VM stays small: 256 KiB receive, 4 sections of send buffer, 16-page rings. */
export const SMALL: NetvscConfig = { recvBufferBytes: 256 * 1024, sendBufferBytes: 6 * 4096, ringPages: 16 };

/** A VM with one scripted NIC, booted (the driver probed). */
export async function bootNic(script: NetScript, options: { vcpus?: number; config?: NetvscConfig } = {}) {
  const sys = new VmbusSystem({ seed: 7, plugins: [fakePlugin] });
  sys.root.register(NETVSC_CONFIG, { useValue: { ...SMALL, ...options.config } });
  const vm = sys.addVm({ name: "vm1", vcpus: options.vcpus ?? 1 });
  sys.addHostDevice(vm, "fakevsp", { config: script });
  await sys.boot();
  // Let the last receive completions of the bring-up reach the host.
  await sys.run(sys.sim.scheduler.sleep(1_000_000));
  const device = vm.client.devices[0];
  if (device === undefined) throw new Error("no device offered");
  const drv = vm.driverOf<NetvscDriver>(device);
  return { sys, vm, device, drv };
}

/** A frame of `length` bytes: broadcast dst, the given src, a test ethertype, a byte pattern. */
export function testFrame(length: number, seed: number, src = "00:15:5d:00:00:01"): Uint8Array {
  const f = new Uint8Array(length);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  f.set(parseMac(src), 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  let x = seed >>> 0 || 1;
  for (let i = 14; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    f[i] = x >>> 24;
  }
  return f;
}
