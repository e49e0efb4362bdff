/**
 * A scripted guest for the netvsp tests: the real system (VMBus client and
 * server, SynIC, rings in guest memory), one netvsp host device on a
 * virtual switch, no guest network driver — the test opens the channel
 * itself and speaks NVSP and RNDIS byte by byte (storvsc-netvsc.md §10–§14).
 */
import {
  HV_NIC_GUID,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_DATA_USING_XFER_PAGES,
  VmbusSystem,
  decodeXferPages,
  registerHostDevice,
  type GuestChannel,
  type HostDevice,
  type Vm,
  type XferPageRange,
} from "../../../../core/index.js";
import {
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

export class ScriptedNetGuest {
  readonly packets: HostPacket[] = [];
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

  /** Linux's §10 sequence: INIT, NDIS_CONFIG, NDIS_VER, receive buffer, send buffer; returns the replies. */
  async init(o: { version?: number; recvBytes?: number; sendBytes?: number } = {}): Promise<Uint8Array[]> {
    const version = o.version ?? NVSP_PROTOCOL_VERSION_61;
    const out: Uint8Array[] = [];
    out.push(await this.request({ kind: "init", minProtocolVersion: version, maxProtocolVersion: version }));
    await this.post({ kind: "send_ndis_config", mtu: 1514, reserved: 0, capability: linuxNdisConfigCapabilities(version) });
    const ndis = linuxNdisVersion(version);
    await this.post({ kind: "send_ndis_ver", ndisMajorVersion: ndis.major, ndisMinorVersion: ndis.minor });
    this.recvBuf = await this.buffer(o.recvBytes ?? 1024 * 1024);
    out.push(await this.request({ kind: "send_recv_buf", gpadlHandle: this.recvBuf.handle, id: NETVSC_RECEIVE_BUFFER_ID }));
    this.sendBuf = await this.buffer(o.sendBytes ?? 64 * 6144);
    out.push(await this.request({ kind: "send_send_buf", gpadlHandle: this.sendBuf.handle, id: 0 }));
    return out;
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
    const nvsp = await this.sendRndis(encodeRndisMessage(msg), 1);
    if (new DataView(nvsp.buffer, nvsp.byteOffset).getUint32(4, true) !== 1) throw new Error("control SEND_RNDIS_PKT failed");
    await this.settle();
    const x = this.takeXfer();
    if (x.length !== 1) throw new Error(`expected one indication, got ${x.length}`);
    const p = x[0] as HostPacket;
    const range = (p.ranges ?? [])[0];
    if (range === undefined) throw new Error("no range");
    const resp = decodeRndisMessage(this.readRecv(range));
    await this.complete(p);
    return resp;
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
      onPacket: (p) => {
        const base = { type: p.type, transId: p.transId, flags: p.flags, data: p.data().slice() };
        if (p.type === VM_PKT_DATA_USING_XFER_PAGES) {
          const h = decodeXferPages(p);
          g.packets.push({ ...base, setId: h.xferPagesetId, ranges: h.ranges });
        } else g.packets.push(base);
      },
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
