/**
 * What the sysfs view reads from the guest's VMBus layer. The VMBus client
 * implements these interfaces for its devices and channels; sysfs only
 * formats (vmbus-core.md §9) and never changes state except through the
 * writable attributes' methods.
 */
import type { RingBuffer } from "../ring/ring-buffer.js";
import type { Guid } from "../vmbus/guid.js";

/** A guest channel as sysfs sees it (`/sys/bus/vmbus/devices/<dev>/channels/<relid>/`). */
export interface SysfsChannel {
  readonly relid: number;
  /** `sub_channel_index` of the offer (0 = primary). */
  readonly subchannelIndex: number;
  /** `target_cpu`: the vCPU index interrupts for this channel go to. */
  readonly targetCpu: number;
  /** Channel state number (§7.6: OFFER 0, OPENING 1, OPEN 2, OPENED 3). */
  readonly state: number;
  readonly monitorAllocated: boolean;
  readonly monitorId: number;
  /** The channel's rings when mapped (opened), else null: ring attributes then fail with EINVAL. */
  readonly outbound: RingBuffer | null;
  readonly inbound: RingBuffer | null;
  /** Counters where Linux keeps them (`struct vmbus_channel`). */
  readonly interrupts: number;
  readonly sigEvents: number;
  readonly intrInFull: number;
  readonly intrOutEmpty: number;
  readonly outFullFirst: number;
  readonly outFullTotal: number;
  /** `trigger_group[monitor_grp].pending` of monitor page [0] (server) or [1] (client), whole 32-bit word. */
  monitorPending(page: 0 | 1): number;
  /** `latency[monitor_grp][monitor_bit]` of monitor page [0] or [1]. */
  monitorLatency(page: 0 | 1): number;
  /** `parameter[grp][bit].connectionid.id` of monitor page [0] or [1]. */
  monitorConnectionId(page: 0 | 1): number;
  /**
   * `target_cpu_store`: retarget the channel. Rejects with an `ErrnoError`
   * carrying the errno Linux returns (EIO below protocol 4.1 or when not
   * opened, EINVAL for a CPU out of range or offline).
   */
  setTargetCpu(cpu: number): Promise<void>;
}

/** A guest VMBus device as sysfs sees it (`/sys/bus/vmbus/devices/<instance>/`). */
export interface SysfsDevice {
  readonly instanceId: Guid;
  readonly classId: Guid;
  /** dev-type index of §10 (`device` attribute, `0x%x`). */
  readonly deviceTypeIndex: number;
  readonly vendorId: number;
  /** The primary channel. */
  readonly primary: SysfsChannel;
  /** Primary first, then subchannels. */
  channels(): readonly SysfsChannel[];
  /** `driver_override`; null when unset. */
  driverOverride: string | null;
  /** Name of the bound driver, if any (the `driver` link). */
  readonly driverName: string | null;
}

/** The whole bus, per VM. */
export interface SysfsBus {
  devices(): readonly SysfsDevice[];
  /** Names of registered guest drivers (`/sys/bus/vmbus/drivers/<name>`). */
  driverNames(): readonly string[];
  /** `new_id` / `remove_id` writes. */
  newId(driver: string, guid: string): Promise<void>;
  removeId(driver: string, guid: string): void;
  /** Host supports hibernation ("1"/"0"). */
  readonly hibernation: boolean;
  /** Per-vCPU VMBus interrupt counts (the HYP line of /proc/interrupts), index = vCPU. */
  hypervisorCallbackInterrupts(): readonly number[];
  /** Number of vCPUs (CPU0 … CPU<n-1>). */
  readonly vcpuCount: number;
  /** Whether vCPU `cpu` is online (`/proc/interrupts` has a column per online CPU); all are when absent. */
  vcpuOnline?(cpu: number): boolean;
}
