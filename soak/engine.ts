/**
 * The soak engine (issue 8 "Soak"): two VMs run mixed storage and network
 * load while faults are injected at random (seeded), and every byte that
 * comes back is checked.
 *
 * - Storage: each VM has one controller with two memory disks (one with
 *   backend latency). Workers write and read random block ranges from
 *   random vCPUs. The engine keeps a model of each disk: per block the
 *   generation of the last write that completed, plus the generations of
 *   writes that failed — a failed write (a timeout, a rescind) may still
 *   have landed, or land later, so its generation stays possible for ever.
 *   Every block read is compared with the pattern of an allowed
 *   generation; the pattern names the disk, the LBA and the generation, so
 *   a stale, misplaced or torn block never passes. A range is never read
 *   while a write to it is in flight, nor written twice at once, so the
 *   model needs no ordering guesses. At the end every block of every disk
 *   is read back and checked.
 * - Network: each VM sends UDP frames to the other, a window at a time.
 *   Each payload carries the sender, a sequence number and its length; the
 *   receiver rebuilds the exact frame that was sent and compares it
 *   byte for byte. Frames may be lost (a dropping switch port, a full
 *   receive buffer) but never corrupted, invented or delivered twice.
 * - Faults, one every few ms of virtual time, drawn from the seeded RNG:
 *   interrupts dropped or delayed, monitor scans delayed, a host device
 *   stalled (sometimes longer than the storage timeout), disk errors on an
 *   LBA range, a throttled VM, a switch port dropping frames, and — rarely
 *   — the storage controller rescinded with I/O in flight and a new one hot
 *   added a little later (its disks start empty; the model is reset).
 * - Every request (block I/O, frame send) is tracked: it must complete or
 *   fail with a typed error, once. Requests still outstanding when the
 *   run's settle window ends are lost.
 *
 * The engine knows nothing of wall-clock time: `run` is told when to stop
 * by its caller (soak/main.ts: after N wall-clock seconds; the test: after
 * a fixed amount of virtual work), so a given seed and a given number of
 * steps always do the same thing.
 */
import "reflect-metadata";
import {
  SimDeadlineError,
  SimDeadlockError,
  VmbusSimError,
  VmbusSystem,
  type HostDevice,
  type Rng,
  type Vm,
} from "../core/index.js";
import { NETWORK_SWITCHES, NetvscDriver, NetvspDevice, buildUdpFrame, networkPlugin, type SwitchRegistry } from "../drivers/netvsc/index.js";
import { STORVSC_CONFIG, StorvscDriver, StorvspDevice, storagePlugin, type DiskSpec, type ScsiDisk } from "../drivers/storvsc/index.js";

const MS = 1_000_000;
const US = 1_000;

export interface SoakOptions {
  readonly seed?: number;
  /** vCPUs per VM (default 4). */
  readonly vcpus?: number;
  /** Concurrent storage workers per disk (default 4). */
  readonly storageWorkers?: number;
  /** Frames in flight per sender (default 16). */
  readonly frameWindow?: number;
  /** storvsc request timeout, ns of virtual time (default 20 ms: some stalls outlast it). */
  readonly storageTimeoutNs?: number;
  /** Lost-interrupt watchdog period, ns (default 200 µs). */
  readonly watchdogNs?: number;
  /** Mean virtual time between two injected faults, ns (default 5 ms). */
  readonly meanFaultGapNs?: number;
  /** Virtual time each `step` runs, ns (default 10 ms). */
  readonly stepNs?: number;
}

/** Requests by outcome. */
export interface SoakTally {
  issued: number;
  completed: number;
  failed: number;
  lost: number;
  duplicates: number;
  readonly failedByType: Record<string, number>;
}

export interface SoakResult {
  readonly seed: number;
  readonly steps: number;
  readonly virtualMs: number;
  readonly storage: SoakTally;
  readonly network: SoakTally;
  /** Requests of both kinds. */
  readonly requests: { readonly issued: number; readonly completed: number; readonly failed: number; readonly lost: number; readonly duplicates: number; readonly failedByType: Record<string, number> };
  /** Blocks and frames whose content matched nothing that was written or sent (must be 0). */
  readonly silentCorruptions: number;
  readonly corruptionSamples: readonly string[];
  /** Frames delivered twice to the same receiver (must be 0). */
  readonly duplicateFrames: number;
  readonly blocksVerified: number;
  readonly finalScanBlocks: number;
  readonly framesSent: number;
  readonly framesReceived: number;
  readonly framesDroppedBySwitch: number;
  readonly faults: Readonly<Record<string, number>>;
  /** Errors the simulation reported from an event (a simulator bug; must be 0). */
  readonly internalErrors: number;
  readonly internalErrorSamples: readonly string[];
}

interface Tracked {
  readonly kind: "storage" | "network";
  settled: number;
}

/** One disk and its model. */
class DiskModel {
  /** Generation of the last completed write of each block (0: never written, reads as zeros). */
  gen: Uint32Array;
  /** Generations of failed writes that may have landed (or may still land), by block. */
  ghosts = new Map<number, number[]>();
  /** In-flight writes / reads per block. */
  writers: Uint8Array;
  readers: Uint16Array;

  constructor(
    readonly id: number,
    public disk: ScsiDisk,
  ) {
    const blocks = Number(disk.capacityBlocks);
    this.gen = new Uint32Array(blocks);
    this.writers = new Uint8Array(blocks);
    this.readers = new Uint16Array(blocks);
  }

  get blocks(): number {
    return this.gen.length;
  }

  /** A new (empty) disk replaced this one: reset the model. */
  replace(disk: ScsiDisk): void {
    this.disk = disk;
    this.gen.fill(0);
    this.ghosts.clear();
  }

  free(lba: number, count: number, write: boolean): boolean {
    for (let i = lba; i < lba + count; i++) if (this.writers[i] !== 0 || (write && this.readers[i] !== 0)) return false;
    return true;
  }
}

/** The block pattern of (disk, lba, generation): header words then a xorshift stream seeded by all three. */
export function blockPattern(out: Uint8Array, offset: number, blockSize: number, diskId: number, lba: number, gen: number): void {
  const v = new DataView(out.buffer, out.byteOffset + offset, blockSize);
  v.setUint32(0, gen, true);
  v.setUint32(4, lba, true);
  v.setUint32(8, diskId, true);
  let x = (Math.imul(gen + 1, 0x9e3779b1) ^ Math.imul(lba + 7, 0x85ebca6b) ^ Math.imul(diskId + 3, 0xc2b2ae35)) | 0;
  if (x === 0) x = 1;
  for (let i = 12; i + 4 <= blockSize; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v.setUint32(i, x >>> 0, true);
  }
}

const SOAK_PORT = 47000;
const FRAME_MAGIC = 0x534f414b; // "SOAK"

interface NetSide {
  readonly vm: Vm;
  readonly index: number;
  readonly ip: string;
  readonly nicHost: HostDevice;
  nic: NetvscDriver;
  nextSeq: number;
  inFlight: number;
  /** Sequence numbers received from the other side (a bitmap grown on demand). */
  received: Uint8Array;
}

interface StorageSide {
  readonly vm: Vm;
  readonly index: number;
  host: HostDevice;
  driver: StorvscDriver;
  readonly disks: DiskModel[];
  /** Rescinded and not yet replaced: workers pause. */
  offline: boolean;
}

export class SoakEngine {
  readonly sys: VmbusSystem;
  readonly seed: number;
  private readonly o: Required<SoakOptions>;
  private readonly rng: Rng;
  private readonly faultRng: Rng;
  private storage: StorageSide[] = [];
  private net: NetSide[] = [];
  private readonly tallies = { storage: newTally(), network: newTally() };
  private readonly pending = new Set<Tracked>();
  private corruptions = 0;
  private readonly corruptionSamples: string[] = [];
  private duplicateFrames = 0;
  private blocksVerified = 0;
  private finalScanBlocks = 0;
  private framesReceived = 0;
  private readonly faultCounts: Record<string, number> = {};
  private internalErrors = 0;
  private readonly internalSamples: string[] = [];
  private stopping = false;
  private readonly workers: Promise<void>[] = [];
  private steps = 0;
  private booted = false;
  private nextGen = 1;
  private readonly diskSpecs: DiskSpec[] = [
    { kind: "memory", sizeBytes: 4 * 1024 * 1024 },
    { kind: "memory", sizeBytes: 1024 * 1024, latency: { readNs: 30_000, writeNs: 50_000, perBlockNs: 100 } },
  ];

  constructor(options: SoakOptions = {}) {
    this.seed = options.seed ?? 1;
    this.o = {
      seed: this.seed,
      vcpus: options.vcpus ?? 4,
      storageWorkers: options.storageWorkers ?? 4,
      frameWindow: options.frameWindow ?? 16,
      storageTimeoutNs: options.storageTimeoutNs ?? 20 * MS,
      watchdogNs: options.watchdogNs ?? 200 * US,
      meanFaultGapNs: options.meanFaultGapNs ?? 5 * MS,
      stepNs: options.stepNs ?? 10 * MS,
    };
    this.sys = new VmbusSystem({ seed: this.seed, plugins: [storagePlugin, networkPlugin] });
    this.rng = this.sys.sim.rng.fork("soak/workload");
    this.faultRng = this.sys.sim.rng.fork("soak/faults");
  }

  /** Builds the two VMs and boots them. */
  async boot(): Promise<void> {
    if (this.booted) return;
    this.booted = true;
    const { sys } = this;
    const built: { vm: Vm; storage: HostDevice; nic: HostDevice }[] = [];
    for (let i = 0; i < 2; i++) {
      const vm = sys.addVm({ name: `vm${i + 1}`, vcpus: this.o.vcpus, memoryBytes: 96 * 1024 * 1024 });
      vm.container.register(STORVSC_CONFIG, { useValue: { requestTimeoutNs: this.o.storageTimeoutNs } });
      vm.client.setLostInterruptWatchdog(this.o.watchdogNs);
      const storage = sys.addHostDevice(vm, "storvsp", { config: { disks: this.diskSpecs } });
      const nic = sys.addHostDevice(vm, "netvsp", { config: { mac: `00:15:5d:50:00:0${i + 1}`, switch: "soak" } });
      built.push({ vm, storage, nic });
    }
    await sys.boot();
    let diskId = 0;
    built.forEach(({ vm, storage, nic }, i) => {
      const driver = driverFor<StorvscDriver>(vm, storage);
      this.storage.push({ vm, index: i, host: storage, driver, disks: driver.disks.map((d) => new DiskModel(diskId++, d)), offline: false });
      this.net.push({ vm, index: i, ip: `10.9.0.${i + 1}`, nicHost: nic, nic: driverFor<NetvscDriver>(vm, nic), nextSeq: 0, inFlight: 0, received: new Uint8Array(1024) });
    });
    for (const side of this.net) {
      const peer = this.net[1 - side.index] as NetSide;
      side.nic.onReceive((frame) => this.onFrame(side, peer, frame));
    }
    // Workers and the fault injector run until `stop`.
    for (const s of this.storage) for (const d of s.disks) for (let w = 0; w < this.o.storageWorkers; w++) this.workers.push(this.storageWorker(s, d, w));
    for (const side of this.net) this.workers.push(this.sender(side));
    this.workers.push(this.faultLoop());
  }

  /**
   * Runs steps of `stepNs` virtual time while `more()` says so, then stops
   * the load, lets everything outstanding settle, reads every block back
   * and returns the figures. `onStep` is called after each step.
   */
  async run(more: (steps: number) => boolean, onStep?: (r: SoakResult) => void): Promise<SoakResult> {
    await this.boot();
    while (more(this.steps)) {
      await this.guarded(this.sys.sim.scheduler.sleep(this.o.stepNs, "soak step"), this.o.stepNs + 1);
      this.steps++;
      onStep?.(this.result());
    }
    await this.finish();
    return this.result();
  }

  /** The figures so far. */
  result(): SoakResult {
    const s = this.tallies.storage;
    const n = this.tallies.network;
    const failedByType: Record<string, number> = { ...s.failedByType };
    for (const [k, v] of Object.entries(n.failedByType)) failedByType[k] = (failedByType[k] ?? 0) + v;
    const sw = this.booted ? (this.sys.root.resolve(NETWORK_SWITCHES) as SwitchRegistry).get("soak") : null;
    return {
      seed: this.seed,
      steps: this.steps,
      virtualMs: Math.round(this.sys.sim.now / 1000) / 1000,
      storage: { ...s, failedByType: { ...s.failedByType } },
      network: { ...n, failedByType: { ...n.failedByType } },
      requests: {
        issued: s.issued + n.issued,
        completed: s.completed + n.completed,
        failed: s.failed + n.failed,
        lost: s.lost + n.lost,
        duplicates: s.duplicates + n.duplicates,
        failedByType,
      },
      silentCorruptions: this.corruptions,
      corruptionSamples: this.corruptionSamples.slice(),
      duplicateFrames: this.duplicateFrames,
      blocksVerified: this.blocksVerified,
      finalScanBlocks: this.finalScanBlocks,
      framesSent: this.net.reduce((a, x) => a + x.nextSeq, 0),
      framesReceived: this.framesReceived,
      framesDroppedBySwitch: sw === null ? 0 : sw.ports().reduce((a, p) => a + p.stats.drops.fault, 0),
      faults: { ...this.faultCounts },
      internalErrors: this.internalErrors,
      internalErrorSamples: this.internalSamples.slice(),
    };
  }

  // ---- running ------------------------------------------------------------------

  /** Runs the scheduler until `p` settles or `limitNs` of virtual time passed; simulator errors are counted, not thrown. */
  private async guarded(p: Promise<unknown>, limitNs: number): Promise<boolean> {
    const sched = this.sys.sim.scheduler;
    const deadlineNs = sched.now + limitNs;
    for (;;) {
      try {
        await sched.runUntilSettled(p, { what: "soak", deadlineNs });
        return true;
      } catch (e) {
        if (e instanceof SimDeadlineError || e instanceof SimDeadlockError) return false;
        // An error from an event (reported by the scheduler): a simulator bug. Count it and go on.
        this.internalErrors++;
        if (this.internalSamples.length < 5) this.internalSamples.push(e instanceof Error ? e.message : String(e));
        if (sched.now >= deadlineNs) return false;
      }
    }
  }

  /** Stops issuing, waits for the outstanding requests (bounded), counts the rest as lost, scans every disk. */
  private async finish(): Promise<void> {
    this.stopping = true;
    // Longest fault window + the storage timeout + margin: everything must settle within it.
    const settleNs = 60 * MS + this.o.storageTimeoutNs * 2 + 50 * MS;
    await this.guarded(Promise.all(this.workers), settleNs);
    // Lift every fault before the final scan (a stalled host would only time it out).
    this.sys.hv.faults.faults.forEach((f) => f.remove());
    for (const sw of this.net) (sw.nicHost.handler as NetvspDevice).port.setFault(null);
    for (const s of this.storage) if (!s.offline) for (const d of s.disks) (s.host.handler as StorvspDevice).lunAt(d.disk.lun)?.disk.faults.clearFaults();
    await this.guarded(this.sys.sim.scheduler.sleep(this.o.storageTimeoutNs * 2, "soak settle"), this.o.storageTimeoutNs * 2 + 1);
    for (const t of this.pending) if (t.settled === 0) this.lostOne(t);
    this.pending.clear();
    // The final scan: every block of every disk, against the model.
    for (const s of this.storage) {
      if (s.offline) continue;
      for (const d of s.disks) {
        for (const r of d.disk.gone ? [] : [d]) {
          const chunk = 64;
          for (let lba = 0; lba < r.blocks; lba += chunk) {
            const count = Math.min(chunk, r.blocks - lba);
            const vcpu = s.vm.partition.vcpus[(lba / chunk) % s.vm.partition.vcpus.length];
            if (vcpu === undefined) continue;
            let data: Uint8Array | null = null;
            const ok = await this.guarded(
              vcpu.issue(() => r.disk.read(lba, count)).then((x) => {
                data = x;
              }, () => undefined),
              this.o.storageTimeoutNs * 2,
            );
            if (ok && data !== null) this.finalScanBlocks += this.verify(r, lba, count, data);
          }
        }
      }
    }
  }

  private track<T>(kind: "storage" | "network", p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    const tally = this.tallies[kind];
    tally.issued++;
    const t: Tracked = { kind, settled: 0 };
    this.pending.add(t);
    return p.then(
      (value) => {
        if (++t.settled > 1) tally.duplicates++;
        else tally.completed++;
        this.pending.delete(t);
        return { ok: true as const, value };
      },
      (error: unknown) => {
        if (++t.settled > 1) tally.duplicates++;
        else {
          tally.failed++;
          const k = error instanceof VmbusSimError ? error.code : error instanceof Error ? error.name : String(error);
          tally.failedByType[k] = (tally.failedByType[k] ?? 0) + 1;
        }
        this.pending.delete(t);
        return { ok: false as const, error };
      },
    );
  }

  private lostOne(t: Tracked): void {
    this.tallies[t.kind].lost++;
  }

  private corrupt(what: string): void {
    this.corruptions++;
    if (this.corruptionSamples.length < 10) this.corruptionSamples.push(what);
  }

  // ---- storage ------------------------------------------------------------------

  private async storageWorker(s: StorageSide, d: DiskModel, w: number): Promise<void> {
    const rng = this.rng;
    const sched = this.sys.sim.scheduler;
    while (!this.stopping) {
      if (s.offline || d.disk.gone) {
        await sched.sleep(500 * US, "soak storage offline");
        continue;
      }
      const count = rng.int(1, 16);
      const lba = rng.int(0, d.blocks - count);
      const write = rng.chance(0.55);
      if (!d.free(lba, count, write)) {
        await sched.sleep(rng.int(1, 20) * US, "soak storage busy");
        continue;
      }
      const vcpu = s.vm.partition.vcpus[rng.int(0, s.vm.partition.vcpus.length - 1)];
      if (vcpu === undefined) return;
      const disk = d.disk;
      const t0 = sched.now;
      if (write) {
        const gen = this.nextGen++;
        const bs = disk.blockSize;
        const data = new Uint8Array(count * bs);
        for (let i = 0; i < count; i++) blockPattern(data, i * bs, bs, d.id, lba + i, gen);
        mark(d.writers, lba, count, 1);
        const r = await this.track("storage", vcpu.issue(() => disk.write(lba, data)));
        mark(d.writers, lba, count, -1);
        if (d.disk !== disk) continue; // replaced meanwhile: the model was reset
        if (r.ok) {
          for (let i = lba; i < lba + count; i++) d.gen[i] = gen;
        } else {
          // It may have landed, or land later (a timed-out command is still at the host).
          for (let i = lba; i < lba + count; i++) {
            const g = d.ghosts.get(i);
            if (g === undefined) d.ghosts.set(i, [gen]);
            else g.push(gen);
          }
        }
      } else {
        mark(d.readers, lba, count, 1);
        const r = await this.track("storage", vcpu.issue(() => disk.read(lba, count)));
        mark(d.readers, lba, count, -1);
        if (r.ok && d.disk === disk) this.blocksVerified += this.verify(d, lba, count, r.value);
      }
      // A failure that took no virtual time (a gone disk): do not spin.
      if (sched.now === t0) await sched.sleep(50 * US, "soak storage backoff");
      void w;
    }
  }

  /** Checks `count` blocks read at `lba`; returns how many were checked. */
  private verify(d: DiskModel, lba: number, count: number, data: Uint8Array): number {
    const bs = d.disk.blockSize;
    if (data.length !== count * bs) {
      this.corrupt(`disk ${d.id}: read of ${count} blocks at ${lba} returned ${data.length} bytes`);
      return 0;
    }
    const expect = new Uint8Array(bs);
    for (let i = 0; i < count; i++) {
      const at = lba + i;
      const block = data.subarray(i * bs, (i + 1) * bs);
      const v = new DataView(block.buffer, block.byteOffset, bs);
      const gen = v.getUint32(0, true);
      const allowed = gen === d.gen[at] || (d.ghosts.get(at)?.includes(gen) ?? false);
      if (!allowed) {
        this.corrupt(`disk ${d.id} lba ${at}: generation ${gen} is neither the last completed write (${d.gen[at]}) nor a failed one`);
        continue;
      }
      if (gen === 0) {
        if (block.some((b) => b !== 0)) this.corrupt(`disk ${d.id} lba ${at}: never written, but not zero`);
        continue;
      }
      blockPattern(expect, 0, bs, d.id, at, gen);
      for (let k = 0; k < bs; k++) {
        if (block[k] !== expect[k]) {
          this.corrupt(`disk ${d.id} lba ${at}: generation ${gen} differs from its pattern at byte ${k}`);
          break;
        }
      }
    }
    return count;
  }

  // ---- network ------------------------------------------------------------------

  private frame(from: NetSide, to: NetSide, seq: number, len: number): Uint8Array {
    const payload = new Uint8Array(len);
    const v = new DataView(payload.buffer);
    v.setUint32(0, FRAME_MAGIC);
    v.setUint32(4, from.index);
    v.setUint32(8, seq);
    v.setUint32(12, len);
    let x = (Math.imul(seq + 1, 0x2545f491) ^ Math.imul(from.index + 1, 0x9e3779b9)) | 1;
    for (let i = 16; i < len; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      payload[i] = x & 0xff;
    }
    return buildUdpFrame({ srcMac: from.nic.mac, dstMac: to.nic.mac, srcIp: from.ip, dstIp: to.ip, srcPort: SOAK_PORT, dstPort: SOAK_PORT, payload, identification: seq & 0xffff });
  }

  private async sender(side: NetSide): Promise<void> {
    const peer = this.net[1 - side.index] as NetSide;
    const rng = this.rng;
    const sched = this.sys.sim.scheduler;
    let wake: (() => void) | null = null;
    const sends: Promise<unknown>[] = [];
    while (!this.stopping) {
      if (side.inFlight >= this.o.frameWindow) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const seq = side.nextSeq++;
      const len = rng.int(16, 1400);
      const frame = this.frame(side, peer, seq, len);
      const vcpu = side.vm.partition.vcpus[0];
      if (vcpu === undefined) return;
      side.inFlight++;
      const p = this.track("network", vcpu.issue(() => side.nic.send(frame))).then(() => {
        side.inFlight--;
        const w = wake;
        wake = null;
        w?.();
      });
      sends.push(p);
      if (sends.length > 4096) sends.splice(0, 2048);
      // Pace: a few frames per instant, then a little virtual time.
      if (rng.chance(0.25)) await sched.sleep(rng.int(5, 60) * US, "soak send gap");
    }
    while (side.inFlight > 0) await new Promise<void>((r) => (wake = r));
  }

  private onFrame(me: NetSide, peer: NetSide, frame: Uint8Array): void {
    if (frame.length < 42 + 16) return;
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    if (dv.getUint16(12) !== 0x0800 || dv.getUint16(36) !== SOAK_PORT) return; // not ours (ARP etc.)
    const magic = dv.getUint32(42);
    const from = dv.getUint32(46);
    const seq = dv.getUint32(50);
    const len = dv.getUint32(54);
    if (magic !== FRAME_MAGIC || from !== peer.index || seq >= peer.nextSeq || len < 16 || len > 1400) {
      this.corrupt(`${me.vm.name}: a frame of ${frame.length} bytes that ${peer.vm.name} never sent (seq ${seq}, len ${len})`);
      return;
    }
    const expect = this.frame(peer, me, seq, len);
    if (expect.length !== frame.length || expect.some((b, i) => b !== frame[i])) {
      this.corrupt(`${me.vm.name}: frame seq ${seq} from ${peer.vm.name} differs from what was sent`);
      return;
    }
    if (seq >= me.received.length * 8) {
      const grown = new Uint8Array(Math.max(me.received.length * 2, (seq >> 3) + 1));
      grown.set(me.received);
      me.received = grown;
    }
    const bit = 1 << (seq & 7);
    if (((me.received[seq >> 3] as number) & bit) !== 0) {
      this.duplicateFrames++;
      return;
    }
    me.received[seq >> 3] = (me.received[seq >> 3] as number) | bit;
    this.framesReceived++;
  }

  // ---- faults ------------------------------------------------------------------

  private async faultLoop(): Promise<void> {
    const rng = this.faultRng;
    const sched = this.sys.sim.scheduler;
    const faults = this.sys.hv.faults;
    const window = (lo: number, hi: number): number => rng.int(lo, hi) * 100 * US;
    while (!this.stopping) {
      await sched.sleep(rng.int(1, 2 * Math.max(1, Math.round(this.o.meanFaultGapNs / US))) * US, "soak fault gap");
      if (this.stopping) break;
      const vmIndex = rng.int(0, 1);
      const s = this.storage[vmIndex] as StorageSide;
      const n = this.net[vmIndex] as NetSide;
      const vm = s.vm.partition;
      const roll = rng.int(0, 99);
      let kind: string;
      if (roll < 18) {
        kind = "interrupt-drop";
        faults.injectInterruptFault({ vm, dropProbability: rng.pick([0.1, 0.5, 1]), durationNs: window(10, 100) });
      } else if (roll < 30) {
        kind = "interrupt-delay";
        faults.injectInterruptFault({ vm, delayNs: rng.int(50, 2000) * US, delayProbability: rng.pick([0.3, 1]), durationNs: window(10, 200) });
      } else if (roll < 42) {
        kind = "monitor-delay";
        faults.injectMonitorDelay({ vm, extraLatencyNs: rng.int(100, 3000) * US, durationNs: window(10, 200) });
      } else if (roll < 56) {
        kind = rng.chance(0.5) ? "host-stall-storage" : "host-stall-nic";
        if (kind === "host-stall-storage" && !s.offline) faults.stallHostDevice(s.host, { durationNs: window(10, 400) });
        else if (kind === "host-stall-nic") faults.stallHostDevice(n.nicHost, { durationNs: window(10, 300) });
      } else if (roll < 70) {
        kind = "disk-error";
        if (!s.offline) {
          const d = s.disks[rng.int(0, s.disks.length - 1)] as DiskModel;
          const lun = (s.host.handler as StorvspDevice).lunAt(d.disk.lun);
          if (lun !== undefined) {
            const count = rng.int(1, 64);
            const id = lun.disk.faults.addFault({ firstLba: rng.int(0, d.blocks - count), count, op: rng.pick(["read", "write", "both"] as const), kind: "medium-error" });
            void sched.sleep(window(10, 300), "soak disk error end").then(() => lun.disk.faults.removeFault(id));
          }
        }
      } else if (roll < 80) {
        kind = "throttle";
        faults.suspendVm(vm, { durationNs: window(5, 80) });
      } else if (roll < 92) {
        kind = "switch-drop";
        const port = (n.nicHost.handler as NetvspDevice).port;
        const fault = { dropProbability: rng.pick([0.05, 0.2, 0.5, 1]) };
        port.setFault(fault);
        void sched.sleep(window(10, 200), "soak switch drop end").then(() => {
          if (port.fault === fault) port.setFault(null);
        });
      } else {
        kind = "rescind-storage";
        if (!s.offline) {
          this.rescindAndReplace(s).catch((e: unknown) => {
            this.internalErrors++;
            if (this.internalSamples.length < 5) this.internalSamples.push(`rescind and re-add: ${e instanceof Error ? e.message : String(e)}`);
          });
        }
      }
      this.faultCounts[kind] = (this.faultCounts[kind] ?? 0) + 1;
    }
  }

  /** Rescinds the storage controller with I/O in flight, then hot-adds a fresh one (empty disks: the model is reset). */
  private async rescindAndReplace(s: StorageSide): Promise<void> {
    s.offline = true;
    const sched = this.sys.sim.scheduler;
    const old = s.host;
    await s.vm.server.rescind(old);
    // VmbusSystem keeps every host device instance it created until it is
    // disposed (its container tracks them); detaching the old disks lets
    // their memory go, so a long soak does not grow with every rescind.
    const oldStorvsp = old.handler as StorvspDevice;
    for (const d of s.disks) oldStorvsp.removeDisk(d.disk.lun);
    await sched.sleep(this.faultRng.int(1, 5) * MS, "soak re-add gap");
    const host = this.sys.addHostDevice(s.vm, "storvsp", { config: { disks: this.diskSpecs } });
    // Wait for the guest to take the offer and probe the driver (bounded).
    for (let i = 0; i < 2000; i++) {
      const dev = s.vm.client.devices.find((d) => d.instanceId.toString() === host.offer.instanceId.toString());
      const drv = dev === undefined ? undefined : s.vm.driverOf<StorvscDriver>(dev);
      if (drv !== undefined && drv.disks.length === s.disks.length) {
        s.host = host;
        s.driver = drv;
        s.disks.forEach((m, k) => m.replace(drv.disks[k] as ScsiDisk));
        s.offline = false;
        return;
      }
      await sched.sleep(500 * US, "soak re-add wait");
    }
    this.internalErrors++;
    if (this.internalSamples.length < 5) this.internalSamples.push(`${s.vm.name}: the hot-added storage controller never came up`);
  }
}

function mark(a: Uint8Array | Uint16Array, lba: number, count: number, by: number): void {
  for (let i = lba; i < lba + count; i++) a[i] = (a[i] as number) + by;
}

function newTally(): SoakTally {
  return { issued: 0, completed: 0, failed: 0, lost: 0, duplicates: 0, failedByType: {} };
}

function driverFor<T>(vm: Vm, host: HostDevice): T {
  const dev = vm.client.devices.find((d) => d.instanceId.toString() === host.offer.instanceId.toString());
  const drv = dev === undefined ? undefined : vm.driverOf(dev);
  if (drv === undefined) throw new Error(`${vm.name}: no driver bound to ${host.name}`);
  return drv as T;
}
