/**
 * Threaded mode (issue 9): the host half of a VM — VMBus server and host
 * devices (VSPs) — runs in a `worker_threads` worker; the guest — vCPUs,
 * SynIC interrupt handling, VMBus client, guest drivers — runs in this
 * thread. Both share the guest's memory (one SharedArrayBuffer), so the
 * rings, GPADLs, SynIC message and event-flag pages and monitor pages are
 * the same bytes on both sides, read and written by the same code as in
 * the deterministic mode. What crosses between the threads is what
 * crosses the partition boundary on Hyper-V (see link.ts).
 *
 *     const sys = new ThreadedSystem({ plugins: [storagePlugin],
 *       hostPlugins: [{ module: storageModuleUrl, exportName: "storagePlugin" }] },
 *       { name: "vm1", vcpus: 4 });
 *     sys.addHostDevice("storvsp", { config: { disks: [...] } });
 *     // optional `hostSetup: { module, exportName, config }` in the options:
 *     // a hook the worker calls before creating the devices (e.g. a virtual
 *     // switch's responder port; see HostSetupSpec)
 *     await sys.start();                       // host thread up, devices created
 *     await sys.boot();                        // connect, offers, probes
 *     const drv = sys.vm.drivers<StorvscDriver>("storvsc")[0];
 *     await sys.run(drv.disks[0].write(0, data));
 *     const report = await sys.shutdown();     // host thread stopped, worker gone
 *
 * What a racing peer may observe (each side is a real thread now):
 * - ring contents and indices at any moment between the ring code's own
 *   Atomics operations: never a torn packet (data is copied before the
 *   index that publishes it; see core/ring), possibly a stale index;
 * - a SynIC slot's message_type before the rest only if it is HVMSG_NONE:
 *   the hypervisor writes payload and header first and message_type last;
 * - an event-flag or monitor bit set before the interrupt or doorbell that
 *   announces it (never after);
 * - a signal-event bit or pending SINT bit that merged with an earlier one
 *   not yet taken (as a latched interrupt or a set event flag merges).
 *
 * Timing: each thread has its own virtual clock. A thread's virtual time
 * may run ahead of real elapsed time by at most `maxLeadNs`; when nothing
 * may run it sleeps on its doorbell with `Atomics.waitAsync` (this thread
 * never blocks). Virtual times of the two threads are therefore not
 * comparable, figures in virtual time are per thread, and runs are not
 * reproducible event for event — the deterministic mode is the default and
 * the one for traces and exact figures.
 *
 * Not covered: several VMs per host thread, guest vCPUs in workers of their
 * own, fault injection and throttling of the guest's vCPUs (throttling is
 * classified and counted in the host thread; its suspension only delays the
 * host's forwarding of interrupts), and hot-adding host devices after start.
 */
import { Worker } from "node:worker_threads";
import { container as tsyringeRoot, type DependencyContainer } from "tsyringe";
import { InvalidArgumentError, VmbusSimError } from "../errors.js";
import type { DriverBus } from "../driver/bus.js";
import { DisposableStore, toDisposable } from "../driver/disposable.js";
import { applyPlugins, type PluginManifest, type VmbusDriver } from "../driver/plugin.js";
import {
  HV_MESSAGE_PAYLOAD_BYTE_COUNT,
  HV_MESSAGE_TYPE_HYPERVISOR_MASK,
  HV_STATUS_INSUFFICIENT_BUFFERS,
  HV_STATUS_INVALID_CONNECTION_ID,
  HV_STATUS_INVALID_PARAMETER,
  HV_STATUS_SUCCESS,
  HV_SYNIC_SINT_COUNT,
  HVCALL_POST_MESSAGE,
  HVCALL_SIGNAL_EVENT,
  HVMSG_NONE,
  type HvStatus,
} from "../hv/constants.js";
import { Hypervisor, type HostEventHandler, type HostMessageHandler, type SignalClassifier } from "../hv/hypervisor.js";
import type { GuestPartition } from "../hv/partition.js";
import type { Vcpu } from "../hv/vcpu.js";
import { RingBuffer } from "../ring/ring-buffer.js";
import { RingWriter } from "../ring/ring-writer.js";
import type { CostModel } from "../sim/cost-model.js";
import { Simulation } from "../sim/simulation.js";
import type { VmbusSysfs } from "../sysfs/sysfs.js";
import { boundDrivers, buildGuestHalf, type VmSpec } from "../system/system.js";
import { SIMULATION, VM_CONTEXT, type VmContext } from "../system/tokens.js";
import type { VmbusClient } from "../vmbus/client.js";
import type { VmbusDevice } from "../vmbus/device.js";
import { VMBUS_DEFAULT_MAX_VERSION } from "../vmbus/versions.js";
import { DoorbellGate } from "./gate.js";
import type { HostDeviceSpec, HostReadyMessage, HostReportMessage, HostSetupSpec, HostThreadMessage, HostThreadParams, PluginModuleSpec } from "./host-side.js";
import type { HostFaultSpec } from "./host-faults.js";
import {
  C_EOM_FORWARDS,
  C_GUEST_NOTIFIES,
  C_GUEST_POLLS,
  C_GUEST_WAITS,
  C_GUEST_WAKEUPS,
  C_MONITOR_RINGS,
  LINK_MAX_CONNECTION_ID,
  LINK_MAX_VCPUS,
  MAILBOX_HEADER_BYTES,
  STATE_FAILED,
  STATE_STOP,
  W_EOM,
  W_EVENTS,
  W_GUEST_BELL,
  W_HOST_BELL,
  W_PENDING_SINTS,
  W_PORTS,
  W_SIGNAL_BITS,
  W_SIGNAL_SUMMARY,
  W_STATE,
  createLinkBuffers,
  readLinkCounters,
  ring,
  tableBit,
  type ThreadLinkBuffers,
  type ThreadLinkCounters,
} from "./link.js";

/** Raised in the guest thread when the host thread failed or exited early. */
export class HostThreadError extends VmbusSimError {
  readonly code = "HOST_THREAD";
  constructor(message: string) {
    super(`host thread: ${message}`);
    this.name = "HostThreadError";
  }
}

export interface ThreadedSystemOptions {
  /** Seed of the guest thread's (and, derived, the host thread's) random choices. */
  readonly seed?: number;
  /** Cost model for both threads (copied to the host thread). */
  readonly costs?: Partial<CostModel>;
  /** Manifests applied in this (guest) thread: the guest drivers. */
  readonly plugins?: readonly PluginManifest[];
  /** Manifests the host thread imports (module URL + export name): the host devices. */
  readonly hostPlugins: readonly PluginModuleSpec[];
  /**
   * A hook the host thread imports (module URL + export name) and calls
   * before it creates the host devices, with its containers, simulation and
   * `config` (structured-cloned): e.g. a virtual switch's other ports.
   */
  readonly hostSetup?: HostSetupSpec;
  /**
   * Faults the host thread injects into its hypervisor from the start
   * (interrupt drop/delay, monitor delay, a host device stall; windows in
   * the host thread's virtual time). See host-faults.ts. What they did
   * comes back in the report (`host.faults`).
   */
  readonly hostFaults?: readonly HostFaultSpec[];
  readonly hostMaxVersion?: number;
  /**
   * URL of the host worker entry. Default: host-worker.js next to this
   * module (right for the built package; tests that run TypeScript sources
   * pass a transpiled copy).
   */
  readonly workerUrl?: URL | string;
  /** How far a thread's virtual time may run ahead of real time. Default 5 ms. */
  readonly maxLeadNs?: number;
}

/** What `shutdown` returns. */
export interface ThreadedRunReport {
  /** `threadId` of the host worker (≠ 0, the main thread's). */
  readonly hostThreadId: number;
  readonly link: ThreadLinkCounters;
  readonly host: HostReportMessage;
}

/** The guest half of a VM in threaded mode: same shape as `Vm` for driver code, without a server. */
export class ThreadedVm implements VmContext {
  readonly container: DependencyContainer;
  readonly bus: DriverBus<VmbusDevice>;
  readonly client: VmbusClient;
  readonly sysfs: VmbusSysfs;
  readonly store = new DisposableStore();

  constructor(
    readonly system: ThreadedSystem,
    readonly partition: GuestPartition,
    options: VmSpec,
  ) {
    this.container = system.root.createChildContainer();
    this.container.registerInstance(VM_CONTEXT, this);
    this.store.add(toDisposable(() => this.container.dispose()));
    const g = buildGuestHalf(this.container, partition, options.guestMaxVersion ?? VMBUS_DEFAULT_MAX_VERSION);
    this.bus = g.bus;
    this.client = g.client;
    this.sysfs = g.sysfs;
  }

  get name(): string {
    return this.partition.name;
  }
  get sim(): Simulation {
    return this.system.sim;
  }

  drivers<T extends VmbusDriver = VmbusDriver>(driverName?: string): T[] {
    return boundDrivers<T>(this.client, this.bus, driverName);
  }
}

/**
 * The guest thread's hypervisor: hypercalls go to the host thread through
 * the link; host → guest traffic arrives as pending SINT bits (see
 * `ThreadedSystem`). Registering host ports here is an error — they live in
 * the host thread.
 */
export class RemoteHostHypervisor extends Hypervisor {
  private words: Int32Array | undefined;
  private writer: RingWriter | undefined;
  private readonly staging = new Uint8Array(MAILBOX_HEADER_BYTES + HV_MESSAGE_PAYLOAD_BYTE_COUNT);
  private readonly stagingView = new DataView(this.staging.buffer);

  /** @internal */
  attachLink(words: Int32Array, mailbox: RingBuffer): void {
    this.words = words;
    this.writer = new RingWriter(mailbox);
  }

  override connectMessagePort(_vm: GuestPartition, connectionId: number, _handler: HostMessageHandler): void {
    throw new InvalidArgumentError("connectionId", connectionId, "cannot be connected in the guest thread: host ports live in the host thread");
  }

  override connectEvent(_vm: GuestPartition, connectionId: number, _handler: HostEventHandler, _classifier?: SignalClassifier): void {
    throw new InvalidArgumentError("connectionId", connectionId, "cannot be connected in the guest thread: host event connections live in the host thread");
  }

  override hypercallPostMessage(vcpu: Vcpu, connectionId: number, messageType: number, payload: Uint8Array): HvStatus {
    const vm = vcpu.partition;
    vm.counters.hypercalls.postMessage++;
    vcpu.counters.hypercalls.postMessage++;
    vcpu.charge(this.sim.costs.hypercallNs);
    const words = this.linkWords();
    let status: HvStatus;
    if (
      payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT ||
      !Number.isInteger(messageType) ||
      messageType <= HVMSG_NONE ||
      messageType >= HV_MESSAGE_TYPE_HYPERVISOR_MASK
    ) {
      status = HV_STATUS_INVALID_PARAMETER;
    } else if (!tableBit(words, W_PORTS, connectionId)) {
      status = HV_STATUS_INVALID_CONNECTION_ID;
    } else {
      const v = this.stagingView;
      v.setUint32(0, vcpu.vpIndex, true);
      v.setUint32(4, connectionId, true);
      v.setUint32(8, messageType, true);
      v.setUint32(12, payload.length, true);
      this.staging.set(payload, MAILBOX_HEADER_BYTES);
      const w = this.writer as RingWriter;
      // The ring writer copies the packet, then commit() publishes
      // write_index (Atomics.store) and only then loads the host's
      // interrupt mask and read_index (seed 001: publish, then decide).
      // The host masks while it drains and looks again after unmasking,
      // so a commit that saw the mask needs no ring.
      if (!w.writeInband(0, this.staging.subarray(0, MAILBOX_HEADER_BYTES + payload.length))) {
        status = HV_STATUS_INSUFFICIENT_BUFFERS; // the hypervisor's queue is full: vmbus_post_msg retries
        vm.counters.messagesRejected++;
      } else {
        if (w.commit()) ring(words, W_HOST_BELL, C_GUEST_NOTIFIES);
        vm.counters.messagesToHost++;
        status = HV_STATUS_SUCCESS;
      }
    }
    const t = this.sim.tracer;
    if (t.wants("hypercall")) {
      t.emit("hypercall", {
        timeNs: this.sim.now,
        partitionId: vm.id,
        vpIndex: vcpu.vpIndex,
        code: HVCALL_POST_MESSAGE,
        name: "HVCALL_POST_MESSAGE",
        connectionId,
        status,
      });
    }
    return status;
  }

  override hypercallSignalEvent(vcpu: Vcpu, connectionId: number): HvStatus {
    const vm = vcpu.partition;
    vm.counters.hypercalls.signalEvent++;
    vcpu.counters.hypercalls.signalEvent++;
    vcpu.charge(this.sim.costs.hypercallNs);
    const words = this.linkWords();
    let status: HvStatus = HV_STATUS_INVALID_CONNECTION_ID;
    if (tableBit(words, W_EVENTS, connectionId)) {
      status = HV_STATUS_SUCCESS;
      const word = connectionId >>> 5;
      const bit = 1 << (connectionId & 31);
      // Atomics.or on the bit, then on the summary, then the ring: the ring
      // data this signal announces was published (Atomics.store of
      // write_index) before all three, and the host takes summary, then
      // word, each with Atomics.exchange (see HostThread.drainSignals).
      const old = Atomics.or(words, W_SIGNAL_BITS + word, bit);
      if ((old & bit) === 0) {
        if (old === 0) Atomics.or(words, W_SIGNAL_SUMMARY + (word >>> 5), 1 << (word & 31));
        ring(words, W_HOST_BELL, C_GUEST_NOTIFIES);
      }
      // else: the bit is still set — the host has not taken the earlier
      // signal yet and will find this one's packet with it (an event flag
      // set twice is one event on Hyper-V too).
    }
    const t = this.sim.tracer;
    if (t.wants("hypercall")) {
      t.emit("hypercall", {
        timeNs: this.sim.now,
        partitionId: vm.id,
        vpIndex: vcpu.vpIndex,
        code: HVCALL_SIGNAL_EVENT,
        name: "HVCALL_SIGNAL_EVENT",
        connectionId,
        status,
      });
    }
    return status;
  }

  private linkWords(): Int32Array {
    if (this.words === undefined) throw new InvalidArgumentError("threaded system", "not started", "hypercalls need the host thread: call start() first");
    return this.words;
  }
}

/**
 * A guest VM in this thread, its host half in a worker thread (see the file
 * comment for the whole design).
 *
 * A racing peer (the host thread) may observe: ring indices that are stale
 * but never a torn packet; a SynIC slot whose message_type is set only
 * after the rest of the message; an event-flag, monitor or pending-SINT bit
 * before the interrupt or doorbell that announces it, never after; and
 * repeated signals merged into one, as set event flags merge on Hyper-V.
 * Virtual time is per thread and bounded by real time (`maxLeadNs`).
 */
export class ThreadedSystem {
  readonly sim: Simulation;
  readonly hv: RemoteHostHypervisor;
  readonly root: DependencyContainer;
  readonly vm: ThreadedVm;
  readonly link: ThreadLinkBuffers;
  private readonly words: Int32Array;
  private readonly devices: HostDeviceSpec[] = [];
  private readonly gate: DoorbellGate;
  private worker: Worker | undefined;
  private hostThreadIdValue = 0;
  private failure: HostThreadError | undefined;
  private reportPromise: Promise<HostReportMessage> | undefined;
  private exitPromise: Promise<number> | undefined;
  private readonly maxLeadNs: number;

  constructor(
    private readonly options: ThreadedSystemOptions,
    vmSpec: VmSpec = {},
  ) {
    const vcpus = vmSpec.vcpus ?? 1;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > LINK_MAX_VCPUS) {
      throw new InvalidArgumentError("vcpus", vcpus, `must be in [1, ${LINK_MAX_VCPUS}] in threaded mode`);
    }
    this.maxLeadNs = options.maxLeadNs ?? 5_000_000;
    if (!Number.isSafeInteger(this.maxLeadNs) || this.maxLeadNs < 0) {
      throw new InvalidArgumentError("maxLeadNs", this.maxLeadNs, "must be a non-negative safe integer of nanoseconds");
    }
    this.sim = new Simulation({ seed: options.seed ?? 0, costs: options.costs });
    this.hv = new RemoteHostHypervisor(this.sim);
    this.root = tsyringeRoot.createChildContainer();
    this.root.registerInstance(SIMULATION, this.sim);
    applyPlugins(this.root, options.plugins ?? []);
    this.link = createLinkBuffers();
    this.words = new Int32Array(this.link.control);
    this.hv.attachLink(this.words, initMailbox(this.link.mailbox));
    const partition = this.hv.createVm({ name: vmSpec.name ?? "vm1", vcpuCount: vcpus, memory: { bytes: vmSpec.memoryBytes ?? 32 * 1024 * 1024 } });
    this.vm = new ThreadedVm(this, partition, vmSpec);
    const words = this.words;
    for (const v of partition.vcpus) {
      // EOM MSR write → host thread. Atomics.store of the request, then the
      // ring; the host takes it with Atomics.exchange.
      v.synic.remoteEom = () => {
        Atomics.store(words, W_EOM + v.cpu, 1);
        Atomics.add(words, C_EOM_FORWARDS, 1);
        ring(words, W_HOST_BELL, C_GUEST_NOTIFIES);
      };
    }
    partition.monitor.remoteScanner = () => {
      Atomics.add(words, C_MONITOR_RINGS, 1);
      ring(words, W_HOST_BELL, C_GUEST_NOTIFIES);
    };
    this.gate = new DoorbellGate({
      words,
      bell: W_GUEST_BELL,
      waitsCounter: C_GUEST_WAITS,
      wakeupsCounter: C_GUEST_WAKEUPS,
      pollsCounter: C_GUEST_POLLS,
      drain: () => this.drain(),
      maxLeadNs: this.maxLeadNs,
    });
  }

  /** `threadId` of the host worker (0 before `start`). */
  get hostThreadId(): number {
    return this.hostThreadIdValue;
  }

  /** The link's counters now (doorbell rings, sleeps, messages, signals). */
  get linkCounters(): ThreadLinkCounters {
    return readLinkCounters(this.words);
  }

  /** Queues a host device for the host thread to create at `start` (config is structured-cloned). */
  addHostDevice(type: string, options: Omit<HostDeviceSpec, "type"> = {}): void {
    if (this.worker !== undefined) throw new InvalidArgumentError("host device", type, "must be added before start() in threaded mode");
    this.devices.push({ type, ...options });
  }

  /** Starts the host thread; resolves when its devices exist (ready to be offered). */
  async start(): Promise<HostReadyMessage> {
    if (this.worker !== undefined) throw new InvalidArgumentError("threaded system", "started", "start() runs once");
    const p = this.vm.partition;
    const params: HostThreadParams = {
      tag: "vmbus-sim-host-thread",
      link: this.link,
      memory: p.memory.buffer,
      vmName: p.name,
      vpIndexes: p.vcpus.map((v) => v.vpIndex),
      layout: p.layout,
      seed: this.sim.rng.fork("host thread").nextU32(),
      costs: this.options.costs,
      hostMaxVersion: this.options.hostMaxVersion,
      plugins: this.options.hostPlugins,
      devices: this.devices,
      ...(this.options.hostSetup !== undefined ? { setup: this.options.hostSetup } : {}),
      ...(this.options.hostFaults !== undefined ? { faults: this.options.hostFaults } : {}),
      maxLeadNs: this.maxLeadNs,
    };
    const url = this.options.workerUrl ?? new URL("./host-worker.js", import.meta.url);
    const worker = new Worker(url, { workerData: params });
    this.worker = worker;
    let onReady: (m: HostReadyMessage) => void = () => undefined;
    let onFail: (e: Error) => void = () => undefined;
    const ready = new Promise<HostReadyMessage>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    this.reportPromise = new Promise<HostReportMessage>((resolve, reject) => {
      worker.on("message", (m: HostThreadMessage) => {
        if (m.kind === "ready") onReady(m);
        else if (m.kind === "report") resolve(m);
        else {
          const e = new HostThreadError(m.message);
          this.setFailure(e);
          onFail(e);
          reject(e);
        }
      });
      worker.on("error", (err: Error) => {
        const e = new HostThreadError(err.message);
        this.setFailure(e);
        onFail(e);
        reject(e);
      });
    });
    this.reportPromise.catch(() => undefined); // observed through shutdown() or run()
    this.exitPromise = new Promise<number>((resolve) => {
      worker.once("exit", (code) => {
        if (this.reportSettled === false) {
          const e = new HostThreadError(`exited (code ${code}) before its report`);
          this.setFailure(e);
          onFail(e);
        }
        resolve(code);
      });
    });
    const r = await ready;
    this.hostThreadIdValue = worker.threadId;
    this.sim.scheduler.setGate(this.gate);
    return r;
  }

  private reportSettled = false;

  /** Runs the guest scheduler until `work` settles (the host thread runs meanwhile). */
  run<T>(work: PromiseLike<T> | (() => PromiseLike<T>), what?: string): Promise<T> {
    if (this.worker === undefined) throw new InvalidArgumentError("threaded system", "not started", "call start() before run()");
    return this.sim.scheduler.runUntilSettled(work, { what });
  }

  /** Connects VMBus, takes the offers and probes the drivers. */
  async boot(): Promise<void> {
    await this.run(async () => {
      await this.vm.client.connect();
      await this.vm.client.requestOffers();
    }, "boot");
  }

  /**
   * Stops the host thread and waits for its report and its exit; the guest
   * scheduler's gate is removed (deterministic again, with nothing left to
   * talk to). Safe to call after a failure: then it rejects with it.
   */
  async shutdown(): Promise<ThreadedRunReport> {
    const worker = this.worker;
    if (worker === undefined) throw new InvalidArgumentError("threaded system", "not started", "nothing to shut down");
    this.gate.close();
    this.sim.scheduler.setGate(undefined);
    // Atomics.store of the state, then the ring: the host's drain sees STOP.
    if (this.failure === undefined) {
      Atomics.store(this.words, W_STATE, STATE_STOP);
      ring(this.words, W_HOST_BELL, C_GUEST_NOTIFIES);
    }
    try {
      const host = await (this.reportPromise as Promise<HostReportMessage>);
      this.reportSettled = true;
      await this.exitPromise;
      await this.vm.store.dispose();
      await this.root.dispose();
      return { hostThreadId: this.hostThreadIdValue, link: readLinkCounters(this.words), host };
    } finally {
      await worker.terminate();
    }
  }

  private setFailure(e: HostThreadError): void {
    if (this.failure !== undefined) return;
    this.failure = e;
    Atomics.store(this.words, W_STATE, STATE_FAILED);
    // Wake our own gate: a guest asleep on its doorbell reports the failure.
    Atomics.add(this.words, W_GUEST_BELL, 1);
    Atomics.notify(this.words, W_GUEST_BELL);
  }

  /** Takes what the host thread published: interrupts for our vCPUs, or its failure. */
  private drain(): void {
    const w = this.words;
    // Atomics.load: the host (or our worker-exit handler) stored FAILED before ringing.
    if (Atomics.load(w, W_STATE) === STATE_FAILED) {
      const e = this.failure ?? new HostThreadError("failed (see the worker's report)");
      this.failure = e;
      this.sim.scheduler.reportError("host thread", e);
      this.gate.close();
      return;
    }
    for (const v of this.vm.partition.vcpus) {
      // Atomics.exchange takes and clears the pending bits in one step: a
      // SINT the host raises right after lands in the cleared word and
      // rings again. The SynIC slot or event flag it announces was stored
      // before the host set the bit, so the ISR this raise runs finds it.
      let bits = Atomics.load(w, W_PENDING_SINTS + v.cpu) === 0 ? 0 : Atomics.exchange(w, W_PENDING_SINTS + v.cpu, 0);
      while (bits !== 0) {
        const sint = 31 - Math.clz32(bits & -bits);
        bits &= ~(1 << sint);
        if (sint < HV_SYNIC_SINT_COUNT) v.raiseSint(sint);
      }
    }
  }
}

function initMailbox(buf: SharedArrayBuffer): RingBuffer {
  const r = new RingBuffer(new Uint8Array(buf), "mailbox");
  r.init();
  return r;
}



