/**
 * Shared rig of the fault-injection tests: VMs with a storage controller,
 * optionally a NIC on one switch and an echo device, booted; plus a ledger
 * that counts every settlement of every request, so a test can assert that
 * each request completed or failed exactly once and nothing was lost.
 */
import { expect } from "vitest";
import { VmbusSystem, VmbusSimError, type HostDevice, type Vm } from "../../core/index.js";
import { EchoDriver, EchoHostDevice, echoPlugin } from "../../drivers/echo/index.js";
import { NETWORK_SWITCHES, NetvscDriver, NetvspDevice, networkPlugin, type SwitchRegistry, type VirtualSwitch } from "../../drivers/netvsc/index.js";
import { STORVSC_CONFIG, StorvscDriver, StorvspDevice, storagePlugin, type ScsiDisk, type StorvscConfig } from "../../drivers/storvsc/index.js";

export const MiB = 1024 * 1024;
export const US = 1_000;
export const MS = 1_000_000;

export interface RigOptions {
  readonly seed?: number;
  readonly vms?: number;
  readonly vcpus?: number;
  readonly nic?: boolean;
  readonly echo?: boolean;
  /** Guest storvsc configuration (e.g. a short request timeout). */
  readonly storvsc?: StorvscConfig;
  /** Disk latency of every disk, ns (reads and writes). */
  readonly diskLatencyNs?: number;
  /** Lost-interrupt watchdog period of every VM, ns (0: off). */
  readonly watchdogNs?: number;
}

export interface RigVm {
  readonly vm: Vm;
  readonly storageHost: HostDevice;
  readonly storvsp: StorvspDevice;
  readonly storvsc: StorvscDriver;
  readonly disk: ScsiDisk;
  readonly nicHost: HostDevice | null;
  readonly netvsp: NetvspDevice | null;
  readonly nic: NetvscDriver | null;
  readonly echoHost: HostDevice | null;
  readonly echoDevice: EchoHostDevice | null;
  readonly echo: EchoDriver | null;
}

export async function bootRig(o: RigOptions = {}): Promise<{ sys: VmbusSystem; vms: RigVm[]; sw: VirtualSwitch | null }> {
  const plugins = [storagePlugin, ...(o.nic === true ? [networkPlugin] : []), ...(o.echo === true ? [echoPlugin] : [])];
  const sys = new VmbusSystem({ seed: o.seed ?? 11, plugins });
  const latency = o.diskLatencyNs === undefined ? {} : { latency: { readNs: o.diskLatencyNs, writeNs: o.diskLatencyNs } };
  const built: { vm: Vm; storage: HostDevice; nic: HostDevice | null; echo: HostDevice | null }[] = [];
  for (let i = 0; i < (o.vms ?? 1); i++) {
    const vm = sys.addVm({ name: `vm${i + 1}`, vcpus: o.vcpus ?? 2, memoryBytes: 64 * MiB });
    if (o.storvsc !== undefined) vm.container.register(STORVSC_CONFIG, { useValue: o.storvsc });
    if (o.watchdogNs !== undefined) vm.client.setLostInterruptWatchdog(o.watchdogNs);
    const storage = sys.addHostDevice(vm, "storvsp", { config: { disks: [{ kind: "memory", sizeBytes: 16 * MiB, ...latency }] } });
    const nic = o.nic === true ? sys.addHostDevice(vm, "netvsp", { config: { mac: `00:15:5d:00:00:0${i + 1}`, switch: "lan" } }) : null;
    const echo = o.echo === true ? sys.addHostDevice(vm, "echo") : null;
    built.push({ vm, storage, nic, echo });
  }
  await sys.boot();
  const vms = built.map(({ vm, storage, nic, echo }): RigVm => {
    const storvsc = vm.drivers<StorvscDriver>("storvsc")[0] as StorvscDriver;
    return {
      vm,
      storageHost: storage,
      storvsp: storage.handler as StorvspDevice,
      storvsc,
      disk: storvsc.disks[0] as ScsiDisk,
      nicHost: nic,
      netvsp: nic === null ? null : (nic.handler as NetvspDevice),
      nic: nic === null ? null : (vm.drivers<NetvscDriver>("netvsc")[0] as NetvscDriver),
      echoHost: echo,
      echoDevice: echo === null ? null : (echo.handler as EchoHostDevice),
      echo: echo === null ? null : (vm.drivers<EchoDriver>("echo")[0] as EchoDriver),
    };
  });
  const sw = o.nic === true ? (sys.root.resolve(NETWORK_SWITCHES) as SwitchRegistry).get("lan") : null;
  return { sys, vms, sw };
}

export type Outcome<T> = { readonly ok: true; readonly value: T; readonly atNs: number } | { readonly ok: false; readonly error: unknown; readonly atNs: number };

/**
 * Counts every settlement of every tracked request. A promise settles once
 * by construction; the ledger still counts callbacks, so that a test reads
 * "completed exactly once" as an assertion rather than an assumption.
 */
export class Ledger {
  private readonly settlements: number[] = [];
  readonly outcomes: (Outcome<unknown> | undefined)[] = [];
  constructor(private readonly sys: VmbusSystem) {}

  track<T>(p: Promise<T>): Promise<Outcome<T>> {
    const id = this.settlements.push(0) - 1;
    this.outcomes.push(undefined);
    return p.then(
      (value) => this.settle(id, { ok: true, value, atNs: this.sys.sim.now }),
      (error: unknown) => this.settle(id, { ok: false, error, atNs: this.sys.sim.now }),
    );
  }

  private settle<T>(id: number, o: Outcome<T>): Outcome<T> {
    this.settlements[id] = (this.settlements[id] as number) + 1;
    this.outcomes[id] = o;
    return o;
  }

  get requests(): number {
    return this.settlements.length;
  }
  get completed(): number {
    return this.outcomes.filter((o) => o?.ok === true).length;
  }
  get failed(): number {
    return this.outcomes.filter((o) => o?.ok === false).length;
  }
  get lost(): number {
    return this.settlements.filter((n) => n === 0).length;
  }
  get duplicates(): number {
    return this.settlements.filter((n) => n > 1).length;
  }
  /** Failures by error code (typed errors) or name. */
  get failuresByType(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.outcomes) {
      if (o === undefined || o.ok) continue;
      const k = o.error instanceof VmbusSimError ? o.error.code : o.error instanceof Error ? o.error.name : String(o.error);
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** Every request settled exactly once. */
  expectSettledOnce(): void {
    expect(this.lost).toBe(0);
    expect(this.duplicates).toBe(0);
  }
}

/** A block-sized pattern that names the disk, the LBA and a generation: a misplaced or stale block never matches. */
export function pattern(blockSize: number, lba: number, generation: number, tag = 0): Uint8Array {
  const out = new Uint8Array(blockSize);
  const v = new DataView(out.buffer);
  for (let i = 0; i < blockSize; i += 4) v.setUint32(i, (Math.imul(lba + 1, 0x9e3779b1) ^ Math.imul(generation + 7, 0x85ebca6b) ^ (i * 0x27d4eb2f) ^ tag) >>> 0, true);
  return out;
}
