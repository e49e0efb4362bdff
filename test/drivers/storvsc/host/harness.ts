/**
 * A scripted guest for the storvsp tests: the real system (VMBus client and
 * server, SynIC, rings in guest memory), the storvsp host device, and no
 * guest storage driver — the test opens the channel itself and sends VSTOR
 * packets byte by byte (storvsc-netvsc.md §4, §5.1).
 */
import {
  HV_SCSI_GUID,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VmbusSystem,
  registerHostDevice,
  type Completion,
  type GpaRange,
  type GuestChannel,
  type HostDevice,
  type Vm,
} from "../../../../core/index.js";
import {
  READ_TYPE,
  UNKNOWN_TYPE,
  VMSTOR_PROTO_VERSION_WIN10,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  WRITE_TYPE,
  decodeVstorPacket,
  encodeVstorPacket,
  makeExecuteSrbPacket,
  makeVstorRequestPacket,
  srbSenseData,
  type VmscsiRequest,
  type VstorPacket,
} from "../../../../drivers/storvsc/protocol/index.js";
import { StorvspDevice, type StorvspConfig } from "../../../../drivers/storvsc/host/index.js";

export const RING_BYTES = 64 * 1024;

/** A packet the host sent that was not a completion of ours (ENUMERATE_BUS). */
export interface Unsolicited {
  readonly type: number;
  readonly transId: bigint;
  readonly flags: number;
  readonly data: Uint8Array;
}

export interface BootOptions {
  readonly vcpus?: number;
  readonly subchannelLimit?: number;
  readonly instanceId?: string;
  readonly sendRingBytes?: number;
  readonly recvRingBytes?: number;
  readonly requestorSize?: number;
  readonly memoryBytes?: number;
}

export interface SrbOptions {
  readonly lun?: number;
  readonly pathId?: number;
  readonly targetId?: number;
  /** Data to send (data-out). */
  readonly out?: Uint8Array;
  /** Bytes to receive (data-in). */
  readonly inLength?: number;
  /** Override data_in. */
  readonly dataIn?: number;
  /** Override data_transfer_length. */
  readonly dataTransferLength?: number;
  /** Offset of the buffer in its first page. */
  readonly byteOffset?: number;
  readonly channel?: GuestChannel;
  readonly version?: number;
}

export interface SrbOutcome {
  readonly completion: Completion;
  readonly packet: VstorPacket;
  readonly srb: VmscsiRequest;
  /** The whole data buffer after the completion (data-in lands here). */
  readonly data: Uint8Array;
  /** The sense bytes (sense_info_length of them) when AUTOSENSE_VALID. */
  readonly sense: Uint8Array;
}

export class ScriptedGuest {
  readonly unsolicited: Unsolicited[] = [];
  version = VMSTOR_PROTO_VERSION_WIN10;

  constructor(
    readonly sys: VmbusSystem,
    readonly vm: Vm,
    readonly device: HostDevice,
    readonly vsp: StorvspDevice,
    readonly primary: GuestChannel,
  ) {}

  run<T>(p: PromiseLike<T> | (() => PromiseLike<T>)): Promise<T> {
    return this.sys.run(p);
  }

  /** Runs the simulation until nothing is left to do (rescinds, offers…). */
  settle(): Promise<void> {
    return this.sys.sim.scheduler.runUntilIdle();
  }

  /** Sends a VSTOR packet (inband, completion requested) and returns the completion payload. */
  async control(packet: VstorPacket | Uint8Array, channel: GuestChannel = this.primary): Promise<Uint8Array> {
    const bytes = packet instanceof Uint8Array ? packet : encodeVstorPacket(packet, VMSTOR_PROTO_VERSION_WIN10);
    const c = await this.run(channel.sendRequest(bytes));
    return c.data;
  }

  /** BEGIN_INITIALIZATION, QUERY_PROTOCOL_VERSION, QUERY_PROPERTIES, (CREATE_SUB_CHANNELS), END_INITIALIZATION. */
  async handshake(version = VMSTOR_PROTO_VERSION_WIN10, subchannels = 0): Promise<Uint8Array[]> {
    this.version = version;
    const out: Uint8Array[] = [];
    out.push(await this.control(makeVstorRequestPacket(VSTOR_OPERATION_BEGIN_INITIALIZATION)));
    out.push(await this.control(makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, { kind: "version", version: { majorMinor: version, revision: 0 } })));
    out.push(await this.control(makeVstorRequestPacket(VSTOR_OPERATION_QUERY_PROPERTIES)));
    if (subchannels > 0) {
      out.push(await this.control(makeVstorRequestPacket(VSTOR_OPERATION_CREATE_SUB_CHANNELS, { kind: "sub-channels", subChannelCount: subchannels })));
    }
    out.push(await this.control(makeVstorRequestPacket(VSTOR_OPERATION_END_INITIALIZATION)));
    return out;
  }

  /** Waits for `n` sub-channel offers and opens them. */
  async openSubchannels(n: number): Promise<GuestChannel[]> {
    await this.run(async () => {
      while (this.primary.subchannels.length < n) await this.sys.sim.scheduler.sleep(10_000);
    });
    const subs = this.primary.subchannels.slice(0, n);
    for (const sc of subs) await this.run(sc.open({ sendRingBytes: RING_BYTES, recvRingBytes: RING_BYTES }));
    return subs;
  }

  /** Allocates a data buffer of `length` bytes at `byteOffset` in its first page. */
  allocBuffer(length: number, byteOffset = 0): GpaRange {
    const pages = Math.ceil((byteOffset + length) / 4096);
    const first = this.vm.partition.memory.allocContiguous(pages);
    return { byteCount: length, byteOffset, pfns: Array.from({ length: pages }, (_, i) => first + i) };
  }

  readBuffer(r: GpaRange): Uint8Array {
    const first = r.pfns[0] ?? 0;
    return this.vm.partition.memory.read(first * 4096 + r.byteOffset, r.byteCount);
  }

  writeBuffer(r: GpaRange, data: Uint8Array): void {
    const first = r.pfns[0] ?? 0;
    this.vm.partition.memory.write(first * 4096 + r.byteOffset, data);
  }

  freeBuffer(r: GpaRange): void {
    this.vm.partition.memory.free(r.pfns);
  }

  /** Starts one EXECUTE_SRB; resolves (inside the simulation) with its decoded completion. */
  startSrb(cdb: Uint8Array, o: SrbOptions = {}): Promise<SrbOutcome> {
    const version = o.version ?? this.version;
    const channel = o.channel ?? this.primary;
    const length = o.out?.length ?? o.inLength ?? 0;
    const dataIn = o.dataIn ?? (o.out !== undefined ? WRITE_TYPE : length > 0 ? READ_TYPE : UNKNOWN_TYPE);
    const dtl = o.dataTransferLength ?? length;
    const pkt = encodeVstorPacket(
      makeExecuteSrbPacket({ protocolVersion: version, cdb, dataIn, dataTransferLength: dtl, lun: o.lun ?? 0, pathId: o.pathId ?? 0, targetId: o.targetId ?? 0 }),
      version,
    );
    let range: GpaRange | null = null;
    if (length > 0) {
      range = this.allocBuffer(length, o.byteOffset ?? 0);
      if (o.out !== undefined) this.writeBuffer(range, o.out);
    }
    const sent = range === null ? channel.sendRequest(pkt) : channel.sendPacketMpbDesc([range], pkt);
    return sent.then((completion) => {
      const packet = decodeVstorPacket(completion.data, { protocolVersion: version, sender: "host", completes: VSTOR_OPERATION_EXECUTE_SRB });
      if (packet.operation !== VSTOR_OPERATION_COMPLETE_IO || packet.payload.kind !== "srb") throw new Error("not an SRB completion");
      const srb = packet.payload.srb;
      const data = range === null ? new Uint8Array(0) : this.readBuffer(range);
      if (range !== null) this.freeBuffer(range);
      return { completion, packet, srb, data, sense: (srb.srbStatus & 0x80) !== 0 ? srbSenseData(srb).slice() : new Uint8Array(0) };
    });
  }

  /** One EXECUTE_SRB, run to completion. */
  srb(cdb: Uint8Array, o: SrbOptions = {}): Promise<SrbOutcome> {
    return this.run(() => this.startSrb(cdb, o));
  }

  /** A raw inband packet with the caller's id and flags (hostile input). */
  async raw(bytes: Uint8Array, transId = 1, flags = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, channel: GuestChannel = this.primary): Promise<void> {
    await this.run(channel.sendPacket(bytes, transId, flags));
    await this.settle();
  }
}

export function storvspPlugin(subchannelLimit = 8) {
  return (c: Parameters<typeof registerHostDevice>[0]) =>
    registerHostDevice(c, { name: "storvsp", classId: HV_SCSI_GUID, subchannelLimit }, StorvspDevice);
}

/** Boots a VM with one storvsp, connects VMBus, takes the offer, opens the primary channel by hand. */
export async function bootStorvsp(config: StorvspConfig, o: BootOptions = {}): Promise<ScriptedGuest> {
  const sys = new VmbusSystem({ seed: 11, plugins: [storvspPlugin(o.subchannelLimit ?? 8)] });
  const vm = sys.addVm({ name: "vm1", vcpus: o.vcpus ?? 4, ...(o.memoryBytes !== undefined ? { memoryBytes: o.memoryBytes } : {}) });
  const device = sys.addHostDevice(vm, "storvsp", { config, instanceId: o.instanceId ?? "1a2b3c4d-0000-4000-8000-000000000001" });
  if (!(device.handler instanceof StorvspDevice)) throw new Error("not a StorvspDevice");
  await sys.run(vm.client.connect());
  await sys.run(vm.client.requestOffers());
  const dev = vm.client.devices[0];
  if (dev === undefined) throw new Error("no device offered");
  const guest = new ScriptedGuest(sys, vm, device, device.handler, dev.primary);
  await sys.run(
    dev.primary.open({
      sendRingBytes: o.sendRingBytes ?? RING_BYTES,
      recvRingBytes: o.recvRingBytes ?? RING_BYTES,
      requestorSize: o.requestorSize ?? 1024,
      onPacket: (p) => guest.unsolicited.push({ type: p.type, transId: p.transId, flags: p.flags, data: p.data().slice() }),
    }),
  );
  return guest;
}

/** "01 00 | 00 01" → bytes; whitespace and `|` ignored. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/[\s|]/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

/** A deterministic byte pattern (no Math.random in tests either: failures must replay). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
