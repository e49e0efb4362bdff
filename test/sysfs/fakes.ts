/** Hand-built SysfsBus / SysfsDevice / SysfsChannel for the sysfs tests. */
import { ErrnoError } from "../../core/errors.js";
import { RingBuffer } from "../../core/ring/ring-buffer.js";
import type { SysfsBus, SysfsChannel, SysfsDevice } from "../../core/sysfs/source.js";
import { Guid } from "../../core/vmbus/guid.js";

/** A ring of `pages` pages (header + data) over its own SharedArrayBuffer, initialised. */
export function makeRing(name: string, pages = 2): RingBuffer {
  const ring = new RingBuffer(new Uint8Array(new SharedArrayBuffer(pages * 4096)), name);
  ring.init();
  return ring;
}

/** One monitor page slot per page [0] (server) / [1] (client). */
export interface MonitorSlot {
  pending: number;
  latency: number;
  connId: number;
}

export class FakeChannel implements SysfsChannel {
  subchannelIndex = 0;
  targetCpu = 0;
  state = 3;
  monitorAllocated = false;
  monitorId = 0;
  outbound: RingBuffer | null = null;
  inbound: RingBuffer | null = null;
  interrupts = 0;
  sigEvents = 0;
  intrInFull = 0;
  intrOutEmpty = 0;
  outFullFirst = 0;
  outFullTotal = 0;
  monitor: [MonitorSlot, MonitorSlot] = [
    { pending: 0, latency: 0, connId: 0 },
    { pending: 0, latency: 0, connId: 0 },
  ];
  /** CPUs passed to setTargetCpu, in order. */
  readonly cpuWrites: number[] = [];
  /** When set, setTargetCpu rejects with it. */
  failWith: Error | null = null;

  constructor(readonly relid: number, init: Partial<Omit<FakeChannel, "relid">> = {}) {
    Object.assign(this, init);
  }

  monitorPending(page: 0 | 1): number {
    return this.monitor[page].pending;
  }
  monitorLatency(page: 0 | 1): number {
    return this.monitor[page].latency;
  }
  monitorConnectionId(page: 0 | 1): number {
    return this.monitor[page].connId;
  }
  async setTargetCpu(cpu: number): Promise<void> {
    this.cpuWrites.push(cpu);
    await Promise.resolve();
    if (this.failWith) throw this.failWith;
    this.targetCpu = cpu;
  }
}

export class FakeDevice implements SysfsDevice {
  driverOverride: string | null = null;
  driverName: string | null = null;
  vendorId = 0x1414;

  constructor(
    readonly instanceId: Guid,
    readonly classId: Guid,
    readonly deviceTypeIndex: number,
    private readonly chans: FakeChannel[],
  ) {}

  get primary(): FakeChannel {
    const p = this.chans[0];
    if (!p) throw new Error("device without channels");
    return p;
  }

  channels(): readonly FakeChannel[] {
    return this.chans;
  }
}

export class FakeBus implements SysfsBus {
  hibernation = false;
  vcpuCount = 4;
  hyp: number[] = [0, 0, 0, 0];
  offline = new Set<number>();
  /** Dynamic ids per driver, as the driver bus keeps them. */
  readonly dynids = new Map<string, string[]>();
  readonly calls: string[] = [];

  constructor(
    readonly devs: FakeDevice[],
    readonly drivers: string[] = ["hv_netvsc", "hv_storvsc"],
  ) {}

  devices(): readonly FakeDevice[] {
    return this.devs;
  }
  driverNames(): readonly string[] {
    return this.drivers;
  }
  async newId(driver: string, guid: string): Promise<void> {
    this.calls.push(`newId ${driver} ${guid}`);
    const list = this.dynids.get(driver) ?? [];
    if (list.includes(guid)) {
      throw new ErrnoError("EEXIST", `new_id ${driver}`, `${guid} is already an id of ${driver}`);
    }
    list.push(guid);
    this.dynids.set(driver, list);
  }
  removeId(driver: string, guid: string): void {
    this.calls.push(`removeId ${driver} ${guid}`);
    const list = this.dynids.get(driver) ?? [];
    const i = list.indexOf(guid);
    if (i < 0) throw new ErrnoError("ENODEV", `remove_id ${driver}`, `${guid} is not a dynamic id of ${driver}`);
    list.splice(i, 1);
  }
  hypervisorCallbackInterrupts(): readonly number[] {
    return this.hyp;
  }
  vcpuOnline(cpu: number): boolean {
    return !this.offline.has(cpu);
  }
}

export const SCSI_CLASS = Guid.parse("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
export const NIC_CLASS = Guid.parse("f8615163-df3e-46c5-913f-f2d2f965ed0e");
/** Sorts before NIC_INSTANCE, so that lsvmbus must reorder by id. */
export const SCSI_INSTANCE = Guid.parse("3a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d");
export const NIC_INSTANCE = Guid.parse("f00dcafe-0123-4567-89ab-cdef01234567");

export const SCSI_DIR = `/sys/bus/vmbus/devices/${SCSI_INSTANCE.toString()}`;
export const NIC_DIR = `/sys/bus/vmbus/devices/${NIC_INSTANCE.toString()}`;

/**
 * Two devices: a monitored SCSI controller bound to hv_storvsc with relids
 * 14 (primary, open, rings mapped), 16 and 15 (sub-channels, listed out of
 * order; 15 not opened), and an unmonitored, unbound, unopened NIC with
 * relid 2.
 */
export function twoDevices(): { bus: FakeBus; scsi: FakeDevice; nic: FakeDevice; ch: Record<14 | 15 | 16 | 2, FakeChannel> } {
  const out14 = makeRing("relid 14 out");
  const in14 = makeRing("relid 14 in");
  // Outbound: 0x40 bytes written and not yet read by the host.
  out14.storeReadIndex(0x28);
  out14.storeWriteIndex(0x68);
  // Inbound: the guest masked interrupts while draining 0x18 bytes across the wrap.
  in14.storeReadIndex(0xff8);
  in14.storeWriteIndex(0x10);
  in14.storeInterruptMask(1);
  const c14 = new FakeChannel(14, {
    targetCpu: 0,
    monitorAllocated: true,
    monitorId: 3,
    outbound: out14,
    inbound: in14,
    interrupts: 1234,
    sigEvents: 567,
    intrInFull: 2,
    intrOutEmpty: 89,
    outFullFirst: 1,
    outFullTotal: 3,
    monitor: [
      { pending: 0x8, latency: 100, connId: 0x2000e },
      { pending: 0x8000_0008, latency: 50, connId: 0x2000e },
    ],
  });
  const c16 = new FakeChannel(16, {
    subchannelIndex: 2,
    targetCpu: 3,
    monitorAllocated: true,
    monitorId: 5,
    outbound: makeRing("relid 16 out"),
    inbound: makeRing("relid 16 in"),
  });
  const c15 = new FakeChannel(15, { subchannelIndex: 1, targetCpu: 1, state: 0, monitorAllocated: true, monitorId: 4 });
  const c2 = new FakeChannel(2, { targetCpu: 0, state: 0 });
  const scsi = new FakeDevice(SCSI_INSTANCE, SCSI_CLASS, 1, [c14, c16, c15]);
  scsi.driverName = "hv_storvsc";
  const nic = new FakeDevice(NIC_INSTANCE, NIC_CLASS, 3, [c2]);
  const bus = new FakeBus([nic, scsi]);
  bus.hyp = [1234, 0, 17, 4294967295];
  return { bus, scsi, nic, ch: { 14: c14, 15: c15, 16: c16, 2: c2 } };
}
