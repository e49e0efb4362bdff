/**
 * A scripted guest for the netvsp tests: the real system (VMBus client and
 * server, SynIC, rings in guest memory), one netvsp host device on a
 * virtual switch, no guest network driver — the test opens the channel
 * itself and speaks NVSP and RNDIS byte by byte (storvsc-netvsc.md §10–§14).
 */
import {
  HV_NIC_GUID,
  PAGE_SIZE,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_DATA_USING_XFER_PAGES,
  VmbusSystem,
  decodeXferPages,
  registerHostDevice,
  type GuestChannel,
  type HostDevice,
  type IncomingPacket,
  type PageBufferEntry,
  type Vm,
  type XferPageRange,
} from "../../../../core/index.js";
import {
  NETVSC_INVALID_INDEX,
  NETVSC_RECEIVE_BUFFER_ID,
  NVSP_PROTOCOL_VERSION_61,
  decodeRndisMessage,
  encodeNvspMessage,
  encodeRndisMessage,
  linuxNdisConfigCapabilities,
  linuxNdisVersion,
  type NvspMessage,
  type RndisMessage,
} from "../../../../drivers/netvsc/protocol/index.js";
import { NetvspDevice, registerNetworkSwitches, NETWORK_SWITCHES, type NetvspConfig, type SwitchPort, type SwitchRegistry } from "../../../../drivers/netvsc/host/index.js";

export const RING_BYTES = 64 * 1024;
export const NIC_MAC = "00:15:5d:00:00:01";
export const PEER_MAC = "00:15:5d:00:00:02";

export interface HostPacket {
  readonly type: number;
  readonly transId: bigint;
  readonly flags: number;
  readonly data: Uint8Array;
  /** Transfer-page packets only. */
  readonly setId?: number;
  readonly ranges?: readonly XferPageRange[];
}

export function netvspPlugin(c: Parameters<typeof registerHostDevice>[0]): void {
  registerNetworkSwitches(c, { latencyNs: 1000 });
  registerHostDevice(c, { name: "netvsp", classId: HV_NIC_GUID, subchannelLimit: 8 }, NetvspDevice);
}

export interface Buffer {
  readonly handle: number;
  readonly gpa: number;
  readonly bytes: number;
}

/** The §10 messages a guest sends after INIT (Linux order: config, version, receive buffer, send buffer). */
export type InitStep = "ndis_config" | "ndis_ver" | "recv_buf" | "send_buf";
export const LINUX_INIT_ORDER: readonly InitStep[] = ["ndis_config", "ndis_ver", "recv_buf", "send_buf"];

/** One piece of an RNDIS message in guest pages: `length` bytes at `offset` of its page (page-buffer entries stay inside their page). */
export interface RndisPiece {
  readonly offset: number;
  readonly length: number;
}

/** Keeps every packet of a channel, decoding transfer-page headers (what the tests read back). */
export function packetRecorder(into: HostPacket[]): (p: IncomingPacket) => void {
  return (p) => {
    const base = { type: p.type, transId: p.transId, flags: p.flags, data: p.data().slice() };
    if (p.type === VM_PKT_DATA_USING_XFER_PAGES) {
      const h = decodeXferPages(p);
      into.push({ ...base, setId: h.xferPagesetId, ranges: h.ranges });
    } else into.push(base);
  };
}

export class ScriptedNetGuest {
  readonly packets: HostPacket[] = [];
  /** Packets the host sent on each subchannel `openSubchannels` opened. */
  readonly subPackets = new Map<GuestChannel, HostPacket[]>();
  recvBuf: Buffer | null = null;
  sendBuf: Buffer | null = null;
  /** Frames the fake peer NIC received from the switch. */
  readonly peerFrames: Uint8Array[] = [];
  readonly peer: SwitchPort;
  private nextRid = 1;

  constructor(
    readonly sys: VmbusSystem,
    readonly vm: Vm,
    readonly device: HostDevice,
    readonly nic: NetvspDevice,
    readonly primary: GuestChannel,
    readonly switches: SwitchRegistry,
  ) {
    this.peer = switches.get("default").attach("peer", (f) => this.peerFrames.push(f.slice()));
  }

  run<T>(p: PromiseLike<T> | (() => PromiseLike<T>)): Promise<T> {
    return this.sys.run(p);
  }
  settle(): Promise<void> {
    return this.sys.sim.scheduler.runUntilIdle();
  }

  async request(msg: NvspMessage | Uint8Array, channel: GuestChannel = this.primary): Promise<Uint8Array> {
    const bytes = msg instanceof Uint8Array ? msg : encodeNvspMessage(msg);
    return (await this.run(channel.sendRequest(bytes))).data;
  }
  async post(msg: NvspMessage | Uint8Array, channel: GuestChannel = this.primary): Promise<void> {
    const bytes = msg instanceof Uint8Array ? msg : encodeNvspMessage(msg);
    await this.run(channel.sendPacket(bytes, 0, 0));
    await this.settle();
  }

  async buffer(bytes: number): Promise<Buffer> {
    const pages = Math.ceil(bytes / 4096);
    const first = this.vm.partition.memory.allocContiguous(pages);
    const pfns = Array.from({ length: pages }, (_, i) => first + i);
    const handle = await this.run(this.primary.createGpadl(pfns, bytes));
    return { handle, gpa: first * 4096, bytes };
  }

  /**
   * INIT then the post-INIT messages in `order` (default Linux's §10
   * sequence: NDIS_CONFIG, NDIS_VER, receive buffer, send buffer); returns
   * the replies (INIT, receive buffer, send buffer — those asking for one).
   */
  async init(o: { version?: number; recvBytes?: number; sendBytes?: number; order?: readonly InitStep[] } = {}): Promise<Uint8Array[]> {
    const version = o.version ?? NVSP_PROTOCOL_VERSION_61;
    const out: Uint8Array[] = [];
    out.push(await this.request({ kind: "init", minProtocolVersion: version, maxProtocolVersion: version }));
    for (const step of o.order ?? LINUX_INIT_ORDER) {
      const reply = await this.initStep(step, { version, ...(o.recvBytes !== undefined ? { recvBytes: o.recvBytes } : {}), ...(o.sendBytes !== undefined ? { sendBytes: o.sendBytes } : {}) });
      if (reply !== null) out.push(reply);
    }
    return out;
  }

  /**
   * One post-INIT message as Linux sends it: NDIS_CONFIG and NDIS_VER
   * without completion, the buffers (allocated on first use, then reused)
   * with one. `expectReply: false` posts a buffer message without asking
   * for a completion (for messages the host is expected to refuse).
   */
  async initStep(step: InitStep, o: { version?: number; recvBytes?: number; sendBytes?: number; expectReply?: boolean } = {}): Promise<Uint8Array | null> {
    const version = o.version ?? NVSP_PROTOCOL_VERSION_61;
    const ask = o.expectReply ?? true;
    switch (step) {
      case "ndis_config":
        await this.post({ kind: "send_ndis_config", mtu: 1514, reserved: 0, capability: linuxNdisConfigCapabilities(version) });
        return null;
      case "ndis_ver": {
        const ndis = linuxNdisVersion(version);
        await this.post({ kind: "send_ndis_ver", ndisMajorVersion: ndis.major, ndisMinorVersion: ndis.minor });
        return null;
      }
      case "recv_buf": {
        this.recvBuf ??= await this.buffer(o.recvBytes ?? 1024 * 1024);
        const msg: NvspMessage = { kind: "send_recv_buf", gpadlHandle: this.recvBuf.handle, id: NETVSC_RECEIVE_BUFFER_ID };
        if (!ask) return this.post(msg).then(() => null);
        return this.request(msg);
      }
      case "send_buf": {
        this.sendBuf ??= await this.buffer(o.sendBytes ?? 64 * 6144);
        const msg: NvspMessage = { kind: "send_send_buf", gpadlHandle: this.sendBuf.handle, id: 0 };
        if (!ask) return this.post(msg).then(() => null);
        return this.request(msg);
      }
    }
  }

  /** Waits for the host's subchannel offers (after a SUBCHANNEL request) and opens `n` of them, recording what each receives. */
  async openSubchannels(n: number): Promise<GuestChannel[]> {
    await this.run(async () => {
      while (this.primary.subchannels.length < n) await this.sys.sim.scheduler.sleep(10_000);
    });
    const subs = this.primary.subchannels.slice(0, n);
    for (const sc of subs) {
      const into: HostPacket[] = [];
      this.subPackets.set(sc, into);
      await this.run(sc.open({ sendRingBytes: RING_BYTES, recvRingBytes: RING_BYTES, requestorSize: 1024, onPacket: packetRecorder(into) }));
    }
    await this.settle();
    return subs;
  }

  /**
   * `bytes` written into fresh guest pages, piece by piece (each piece in
   * its own page at its offset, pages not adjacent), and sent as
   * SEND_RNDIS_PKT {channelType} by `vmbus_sendpacket_pagebuffer` with one
   * entry per piece; the pieces must cover `bytes`. With `section`, its
   * bytes go first into that send-buffer section (Linux's partial copy).
   * Returns the NVSP completion.
   */
  async sendRndisPageBuffer(
    bytes: Uint8Array,
    channelType: number,
    pieces: readonly RndisPiece[],
    o: { channel?: GuestChannel; section?: { index: number; bytes: Uint8Array } } = {},
  ): Promise<Uint8Array> {
    const total = pieces.reduce((n, p) => n + p.length, 0);
    if (total !== bytes.length) throw new Error(`pieces cover ${total} bytes, the message has ${bytes.length}`);
    const pfns = this.scatteredPages(pieces.length);
    const entries: PageBufferEntry[] = [];
    let at = 0;
    pieces.forEach((piece, i) => {
      const pfn = pfns[i] as number;
      if (piece.offset + piece.length > PAGE_SIZE) throw new Error(`piece ${i} crosses its page`);
      this.vm.partition.memory.write(pfn * PAGE_SIZE + piece.offset, bytes.subarray(at, at + piece.length));
      entries.push({ pfn, offset: piece.offset, len: piece.length });
      at += piece.length;
    });
    const s = o.section;
    if (s !== undefined) this.writeSection(s.index, s.bytes);
    const nvsp = encodeNvspMessage({
      kind: "send_rndis_pkt",
      channelType,
      sendBufferSectionIndex: s === undefined ? NETVSC_INVALID_INDEX : s.index,
      sendBufferSectionSize: s === undefined ? 0 : s.bytes.length,
    });
    return (await this.run((o.channel ?? this.primary).sendPacketPageBuffer(entries, nvsp))).data;
  }

  /**
   * `bytes` written from `offset` of the first of as many fresh,
   * non-adjacent guest pages as they need, and sent as SEND_RNDIS_PKT
   * {channelType} by `vmbus_sendpacket_mpb_desc` with that one multi-page
   * range. Returns the NVSP completion and the page list.
   */
  async sendRndisMpb(bytes: Uint8Array, channelType: number, offset: number, channel: GuestChannel = this.primary): Promise<{ completion: Uint8Array; pfns: number[] }> {
    const pages = Math.ceil((offset + bytes.length) / PAGE_SIZE);
    const pfns = this.scatteredPages(pages);
    for (let at = 0, page = 0, inPage = offset; at < bytes.length; page++, inPage = 0) {
      const n = Math.min(PAGE_SIZE - inPage, bytes.length - at);
      this.vm.partition.memory.write((pfns[page] as number) * PAGE_SIZE + inPage, bytes.subarray(at, at + n));
      at += n;
    }
    const nvsp = encodeNvspMessage({ kind: "send_rndis_pkt", channelType, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 });
    const c = await this.run(channel.sendPacketMpbDesc([{ byteCount: bytes.length, byteOffset: offset, pfns }], nvsp));
    return { completion: c.data, pfns };
  }

  /** `count` guest pages, no two adjacent and in descending order, so a reader that assumed one run of pages would read the wrong bytes. */
  scatteredPages(count: number): number[] {
    const first = this.vm.partition.memory.allocContiguous(2 * count);
    return Array.from({ length: count }, (_, i) => first + 2 * (count - 1 - i));
  }

  writeSection(index: number, bytes: Uint8Array): void {
    const sb = this.sendBuf;
    if (sb === null) throw new Error("no send buffer");
    this.vm.partition.memory.write(sb.gpa + index * 6144, bytes);
  }

  readRecv(r: XferPageRange): Uint8Array {
    const rb = this.recvBuf;
    if (rb === null) throw new Error("no receive buffer");
    return this.vm.partition.memory.read(rb.gpa + r.byteOffset, r.byteCount);
  }

  /** SEND_RNDIS_PKT from send-buffer section `index`; returns the NVSP completion. */
  async sendRndis(bytes: Uint8Array, channelType: number, index = 0, channel: GuestChannel = this.primary): Promise<Uint8Array> {
    this.writeSection(index, bytes);
    return this.request({ kind: "send_rndis_pkt", channelType, sendBufferSectionIndex: index, sendBufferSectionSize: bytes.length }, channel);
  }

  /** Transfer-page packets received so far and not yet taken. */
  takeXfer(): HostPacket[] {
    const out: HostPacket[] = [];
    for (let i = 0; i < this.packets.length; ) {
      const p = this.packets[i] as HostPacket;
      if (p.type === VM_PKT_DATA_USING_XFER_PAGES) {
        out.push(p);
        this.packets.splice(i, 1);
      } else i++;
    }
    return out;
  }

  /** Completes a transfer-page packet as Linux does ({108, status 1}, 8 bytes). */
  async complete(p: HostPacket, channel: GuestChannel = this.primary): Promise<void> {
    await this.run(channel.sendCompletion(p.transId, encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: 1 }, { size: 8 })));
    await this.settle();
  }

  /** One RNDIS control request; returns the decoded response (the indication is completed). */
  async rndis(msg: RndisMessage): Promise<RndisMessage> {
    const all = await this.rndisAll(msg);
    if (all.length !== 1) throw new Error(`expected one indication, got ${all.length}`);
    return all[0] as RndisMessage;
  }

  /** One RNDIS control request; every RNDIS message the host indicated in answer, in order (each completed). */
  async rndisAll(msg: RndisMessage): Promise<RndisMessage[]> {
    const nvsp = await this.sendRndis(encodeRndisMessage(msg), 1);
    if (new DataView(nvsp.buffer, nvsp.byteOffset).getUint32(4, true) !== 1) throw new Error("control SEND_RNDIS_PKT failed");
    await this.settle();
    const out: RndisMessage[] = [];
    for (const p of this.takeXfer()) {
      for (const range of p.ranges ?? []) out.push(decodeRndisMessage(this.readRecv(range)));
      await this.complete(p);
    }
    return out;
  }

  rid(): number {
    return this.nextRid++;
  }

  /** INITIALIZE then SET packet filter 0x0D (Linux ifup). */
  async bringUp(filter = 0x0d): Promise<void> {
    await this.rndis({ kind: "initialize", requestId: this.rid(), majorVersion: 1, minorVersion: 0, maxTransferSize: 0x4000 });
    const info = new Uint8Array(4);
    new DataView(info.buffer).setUint32(0, filter, true);
    await this.rndis({ kind: "set", requestId: this.rid(), oid: 0x0001010e, deviceVcHandle: 0, info });
  }
}

export async function bootNetvsp(config: Partial<NetvspConfig> = {}, o: { memoryBytes?: number } = {}): Promise<ScriptedNetGuest> {
  const sys = new VmbusSystem({ seed: 7, plugins: [netvspPlugin] });
  const vm = sys.addVm({ name: "vm1", vcpus: 2, memoryBytes: o.memoryBytes ?? 64 * 1024 * 1024 });
  const device = sys.addHostDevice(vm, "netvsp", { config: { mac: NIC_MAC, ...config } });
  if (!(device.handler instanceof NetvspDevice)) throw new Error("not a NetvspDevice");
  await sys.run(vm.client.connect());
  await sys.run(vm.client.requestOffers());
  const dev = vm.client.devices[0];
  if (dev === undefined) throw new Error("no device offered");
  const g = new ScriptedNetGuest(sys, vm, device, device.handler, dev.primary, sys.root.resolve(NETWORK_SWITCHES));
  await sys.run(
    dev.primary.open({
      sendRingBytes: RING_BYTES,
      recvRingBytes: RING_BYTES,
      requestorSize: 1024,
      onPacket: packetRecorder(g.packets),
    }),
  );
  return g;
}

export function u32(b: Uint8Array, off: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

export { VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED };
