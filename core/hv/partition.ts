/**
 * Partitions (issue 3, core/hv): the host (root) partition and guest VM
 * partitions. A VM owns its guest memory, its vCPUs with their SynICs, its
 * monitor pages, its connection tables (the message ports and event
 * connections the host registered for it) and its counters.
 */
import { InvalidArgumentError } from "../errors.js";
import type { GuestMemory } from "../memory/guest-memory.js";
import type { Timer } from "../sim/scheduler.js";
import { PartitionCounters } from "./counters.js";
import { HV_EVENT_FLAGS_COUNT } from "./constants.js";
import type { Hypervisor, HostEventConnection, HostMessagePort } from "./hypervisor.js";
import { MonitorPages } from "./monitor.js";
import { Synic, type SynicPages } from "./synic.js";
import { Vcpu } from "./vcpu.js";

export type PartitionKind = "host" | "guest";

/**
 * The GPAs of a VM's hypervisor pages: each vCPU's SIMP and SIEFP (by CPU
 * number) and the two monitor pages. Threaded mode builds the host
 * thread's view of a VM from the guest thread's layout, so that both
 * threads name the same bytes (see core/threads).
 */
export interface SharedPartitionLayout {
  readonly synic: readonly SynicPages[];
  readonly monitorPages: readonly [number, number];
}

export abstract class Partition {
  abstract readonly kind: PartitionKind;
  constructor(
    readonly hypervisor: Hypervisor,
    /** 0 = host; VMs 1..N in creation order. */
    readonly id: number,
    readonly name: string,
  ) {}
}

export class HostPartition extends Partition {
  readonly kind = "host";
}

export class GuestPartition extends Partition {
  readonly kind = "guest";
  readonly counters = new PartitionCounters();
  readonly vcpus: readonly Vcpu[];
  readonly monitor: MonitorPages;
  /** Int32 view of all of guest memory, for atomics on shared pages. */
  readonly words: Int32Array;

  /** @internal Host message ports and event connections, by connection id. */
  readonly messagePorts = new Map<number, HostMessagePort>();
  /** @internal */
  readonly eventConnections = new Map<number, HostEventConnection>();

  /** @internal Throttling window state (see Hypervisor). */
  throttleWindowStartNs = 0;
  /** @internal */
  throttleWindowCount = 0;
  /** @internal */
  suspendedSinceNs = 0;
  /** @internal */
  suspendedUntilNs = 0;
  /** @internal */
  resumeTimer: Timer | undefined;

  private readonly byVpIndex = new Map<number, Vcpu>();

  constructor(
    hypervisor: Hypervisor,
    id: number,
    name: string,
    readonly memory: GuestMemory,
    vpIndexes: readonly number[],
    asyncVcpuContext: boolean,
    layout?: SharedPartitionLayout,
  ) {
    super(hypervisor, id, name);
    this.words = new Int32Array(memory.buffer);
    const vcpus: Vcpu[] = [];
    for (let cpu = 0; cpu < vpIndexes.length; cpu++) {
      const vp = vpIndexes[cpu] as number;
      if (!Number.isInteger(vp) || vp < 0 || this.byVpIndex.has(vp)) {
        throw new InvalidArgumentError(`vpIndexes[${cpu}]`, vp, "must be a distinct non-negative integer");
      }
      const synic = new Synic(memory, this.words, layout?.synic[cpu]);
      const vcpu = new Vcpu(this, cpu, vp, synic, asyncVcpuContext);
      synic.attach(vcpu);
      vcpus.push(vcpu);
      this.byVpIndex.set(vp, vcpu);
    }
    this.vcpus = vcpus;
    this.monitor = new MonitorPages(this, memory, this.words, layout?.monitorPages);
  }

  /** Where this VM's SynIC and monitor pages are: what another thread needs to share them. */
  get layout(): SharedPartitionLayout {
    return {
      synic: this.vcpus.map((v) => ({ simpGpa: v.synic.simpGpa, siefpGpa: v.synic.siefpGpa })),
      monitorPages: [this.monitor.pageGpa[0], this.monitor.pageGpa[1]],
    };
  }

  /** The vCPU with hypervisor VP index `vpIndex`, if any. */
  vcpuByVpIndex(vpIndex: number): Vcpu | undefined {
    return this.byVpIndex.get(vpIndex);
  }

  /** True while the VM is suspended by throttling. */
  get suspended(): boolean {
    return this.hypervisor.sim.scheduler.now < this.suspendedUntilNs;
  }

  /** Channel interrupts delivered to relid `relid` so far. */
  relidInterrupts(relid: number): number {
    if (!Number.isInteger(relid) || relid < 0 || relid >= HV_EVENT_FLAGS_COUNT) {
      throw new InvalidArgumentError("relid", relid, `must be in [0, ${HV_EVENT_FLAGS_COUNT})`);
    }
    return this.counters.relidInterrupts[relid] as number;
  }
}
