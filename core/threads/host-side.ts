/**
 * The host thread of threaded mode: the hypervisor's host half, the VMBus
 * server and the host devices (VSPs) of one VM, over a *view* of the
 * guest's memory (the same SharedArrayBuffer; see `GuestMemoryConfig.shared`).
 *
 * The host's `GuestPartition` here is the hypervisor's picture of the VM:
 * its SynIC and monitor pages are the guest's own pages (same GPAs, passed
 * in `layout`), its message queues behind the SIMP slots live here, and its
 * vCPUs run no guest code — each one's SINT handlers forward the interrupt
 * to the guest thread (a pending-SINT bit and a doorbell ring). Everything
 * the server and the devices do is unchanged: same rings, same GPADL views,
 * same validation of everything read from guest memory.
 *
 * Input from the guest thread is untrusted like any hypercall input: a
 * mailbox message is copied out of the ring by `RingReader` (which checks
 * the packet framing), then its fields are checked (VP, size) before
 * `Hypervisor.deliverPostMessage` checks type, size and port as for a
 * hypercall on one thread. A message whose port's queue is full is left in
 * the mailbox (with those behind it) and taken after the port's delivery
 * time — the guest already had HV_STATUS_SUCCESS, so it must not be lost;
 * a full mailbox then makes the guest's posts fail and back off.
 */
import { container as tsyringeRoot, type DependencyContainer } from "tsyringe";
import { InvalidArgumentError } from "../errors.js";
import { DisposableStore } from "../driver/disposable.js";
import { HOST_DEVICES, applyPlugins, resolveAllOrNone, type PluginManifest } from "../driver/plugin.js";
import { HV_MESSAGE_PAYLOAD_BYTE_COUNT, HV_SYNIC_SINT_COUNT } from "../hv/constants.js";
import type { FaultTotals, InjectedFault } from "../hv/faults.js";
import { Hypervisor, type HostEventHandler, type HostMessageHandler, type SignalClassifier } from "../hv/hypervisor.js";
import type { GuestPartition, SharedPartitionLayout } from "../hv/partition.js";
import { GuestMemory } from "../memory/guest-memory.js";
import { RingBuffer } from "../ring/ring-buffer.js";
import { RingReader } from "../ring/ring-reader.js";
import type { CostModel } from "../sim/cost-model.js";
import type { Timer } from "../sim/scheduler.js";
import { Simulation } from "../sim/simulation.js";
import { instantiateHostDevice, type HostDeviceOptions } from "../system/system.js";
import { HOST_VM, HOST_VMBUS_SERVER, SIMULATION } from "../system/tokens.js";
import { InstanceGuidGenerator } from "../vmbus/guid.js";
import { VmbusServer, type HostDevice } from "../vmbus/server.js";
import { DoorbellGate } from "./gate.js";
import { hostFaultReport, injectHostFaults, type HostFaultReport, type HostFaultSpec } from "./host-faults.js";
import {
  C_EOM_FORWARDS,
  C_EVENT_SIGNALS,
  C_HOST_NOTIFIES,
  C_HOST_POLLS,
  C_HOST_WAITS,
  C_HOST_WAKEUPS,
  C_MAILBOX_DEFERRALS,
  C_MAILBOX_MALFORMED,
  C_MAILBOX_MESSAGES,
  C_SINT_FORWARDS,
  LINK_MAX_VCPUS,
  MAILBOX_HEADER_BYTES,
  STATE_FAILED,
  STATE_RUNNING,
  STATE_STARTING,
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
  checkConnectionId,
  ring,
  setTableBit,
  type ThreadLinkBuffers,
} from "./link.js";

/** A plugin manifest the host thread imports: `(await import(module))[exportName]`. */
export interface PluginModuleSpec {
  /** Module URL (file: URL string) that the worker can import. */
  readonly module: string;
  /** Name of the exported manifest function (default "default"). */
  readonly exportName?: string;
}

/**
 * A host-thread setup hook (`ThreadedSystemOptions.hostSetup`): the worker
 * imports `module` and calls `(await import(module))[exportName]` — a
 * `HostSetup` — once, after the host plugins are applied and before the
 * host devices are created. This is how host-side objects that are not
 * VMBus devices (a virtual switch's other ports, a responder on them) get
 * into the host thread without core importing drivers/.
 */
export interface HostSetupSpec extends PluginModuleSpec {
  /** Handed to the hook as `HostSetupContext.config` (structured-cloned into the worker). */
  readonly config?: unknown;
}

/** What a `HostSetup` hook is given, in the host thread. */
export interface HostSetupContext {
  /** The host thread's root container (plugin manifests applied; SIMULATION registered). */
  readonly root: DependencyContainer;
  /** The container host devices are created from (HOST_VM, HOST_VMBUS_SERVER registered). */
  readonly hostContainer: DependencyContainer;
  /** The host thread's simulation (its scheduler and virtual clock). */
  readonly sim: Simulation;
  /** The host's picture of the VM. */
  readonly partition: GuestPartition;
  readonly server: VmbusServer;
  /** `HostSetupSpec.config`, as structured-cloned into the worker (untrusted: validate it). */
  readonly config: unknown;
}

/** What a `HostSetup` hook may return: figures for the host report, and cleanup at shutdown. */
export interface HostSetupResult {
  /** Called once when the host thread stops; must return a structured-cloneable value (`HostReportMessage.setup`). */
  readonly report?: () => unknown;
  /** Called after the report, before the host's containers are disposed. */
  readonly dispose?: () => void | Promise<void>;
}

/** The function a `HostSetupSpec` names. */
export type HostSetup = (context: HostSetupContext) => HostSetupResult | void;

/** A host device for the host thread to create (structured-cloneable: `config` is copied). */
export interface HostDeviceSpec {
  readonly type: string;
  readonly instanceId?: string;
  readonly config?: unknown;
  readonly monitored?: boolean;
  readonly monitorLatencyNs?: number;
}

/** What the host thread receives in `workerData`. */
export interface HostThreadParams {
  readonly tag: "vmbus-sim-host-thread";
  readonly link: ThreadLinkBuffers;
  readonly memory: SharedArrayBuffer;
  readonly vmName: string;
  readonly vpIndexes: readonly number[];
  readonly layout: SharedPartitionLayout;
  readonly seed: string | number;
  readonly costs?: Partial<CostModel>;
  readonly hostMaxVersion?: number;
  readonly plugins: readonly PluginModuleSpec[];
  readonly devices: readonly HostDeviceSpec[];
  /** See `HostSetupSpec`. */
  readonly setup?: HostSetupSpec;
  /** See `ThreadedSystemOptions.hostFaults` (checked in the host thread: it was cloned). */
  readonly faults?: readonly HostFaultSpec[];
  readonly maxLeadNs: number;
}

/** Sent by the host thread once its devices are offered-ready. */
export interface HostReadyMessage {
  readonly kind: "ready";
  readonly threadId: number;
  readonly devices: readonly { readonly type: string; readonly instanceId: string }[];
}

/** A host device's figures at shutdown. */
export interface HostDeviceReport {
  readonly type: string;
  readonly instanceId: string;
  /** Structured clone of the device's `counters` property, if it has one. */
  readonly counters: unknown;
  /** The device's `channelStats()`, if it has one. */
  readonly channelStats: unknown;
}

/** Sent by the host thread after it stopped. */
export interface HostReportMessage {
  readonly kind: "report";
  readonly threadId: number;
  /** The host thread's virtual clock and events run. */
  readonly virtualTimeNs: number;
  readonly eventsRun: number;
  /** The host-side partition counters (messages to guest, host signals, wakeups, monitor scans …). */
  readonly partition: Readonly<Record<string, unknown>>;
  readonly server: Readonly<Record<string, unknown>>;
  readonly devices: readonly HostDeviceReport[];
  /** What the `hostSetup` hook's `report()` returned (undefined without a hook or a report). */
  readonly setup?: unknown;
  /** The faults of `ThreadedSystemOptions.hostFaults`, in order, and the totals of the host's fault injector. */
  readonly faults: { readonly injected: readonly HostFaultReport[]; readonly totals: FaultTotals };
}

export interface HostFailedMessage {
  readonly kind: "failed";
  readonly message: string;
  readonly stack?: string;
}

export type HostThreadMessage = HostReadyMessage | HostReportMessage | HostFailedMessage;

/**
 * The host thread's hypervisor: as `Hypervisor`, plus the registration
 * tables the guest thread reads to answer hypercalls with the right status.
 */
export class ThreadHostHypervisor extends Hypervisor {
  constructor(
    sim: Simulation,
    private readonly words: Int32Array,
  ) {
    super(sim);
  }

  override connectMessagePort(vm: GuestPartition, connectionId: number, handler: HostMessageHandler): void {
    checkConnectionId(connectionId);
    super.connectMessagePort(vm, connectionId, handler);
    // Atomics.or (in setTableBit), sequentially consistent: the bit is
    // visible before any message this thread writes afterwards — the
    // server connects its msg_conn_id port *before* it posts the
    // VERSION_RESPONSE that tells the guest to use it.
    setTableBit(this.words, W_PORTS, connectionId, true);
  }

  override connectEvent(vm: GuestPartition, connectionId: number, handler: HostEventHandler, classifier?: SignalClassifier): void {
    checkConnectionId(connectionId);
    super.connectEvent(vm, connectionId, handler, classifier);
    // Before OPENCHANNEL_RESULT goes out: the guest's first signal finds it.
    setTableBit(this.words, W_EVENTS, connectionId, true);
  }

  override disconnect(vm: GuestPartition, connectionId: number): boolean {
    if (connectionId >= 0 && connectionId < 1 << 17 && Number.isInteger(connectionId)) {
      setTableBit(this.words, W_PORTS, connectionId, false);
      setTableBit(this.words, W_EVENTS, connectionId, false);
    }
    return super.disconnect(vm, connectionId);
  }
}

/** The running host thread (for the worker entry and for tests that run it in-process). */
export class HostThread {
  readonly sim: Simulation;
  readonly hv: ThreadHostHypervisor;
  readonly vm: GuestPartition;
  readonly server: VmbusServer;
  readonly root: DependencyContainer;
  readonly devices: HostDevice[] = [];
  private readonly words: Int32Array;
  private readonly gate: DoorbellGate;
  private readonly reader: RingReader;
  private readonly stores: DisposableStore[] = [];
  private readonly setupResult: HostSetupResult | undefined;
  private readonly injected: InjectedFault[];
  /** Looks at the mailbox again after a message was left there because its port's queue was full. */
  private readonly mailboxRetry: Timer;
  private stopRequested = false;
  private stopResolve: (() => void) | undefined;
  private readonly stopped: Promise<void>;

  constructor(
    private readonly params: HostThreadParams,
    manifests: readonly PluginManifest[],
    setup?: HostSetup,
  ) {
    if (params.vpIndexes.length > LINK_MAX_VCPUS) {
      throw new InvalidArgumentError("vcpus", params.vpIndexes.length, `must be at most ${LINK_MAX_VCPUS} in threaded mode`);
    }
    this.words = new Int32Array(params.link.control);
    this.sim = new Simulation({ seed: params.seed, costs: params.costs });
    this.hv = new ThreadHostHypervisor(this.sim, this.words);
    const memory = new GuestMemory({ shared: params.memory });
    this.vm = this.hv.createVm({ name: params.vmName, vpIndexes: params.vpIndexes, memory, sharedLayout: params.layout });
    // The vCPUs here run no guest code: an interrupt raised on one (a
    // message landed in its SIMP slot, or signalGuest set an event flag
    // and the delivery latency passed) goes to the guest thread.
    for (const v of this.vm.vcpus) {
      for (let sint = 0; sint < HV_SYNIC_SINT_COUNT; sint++) v.setSintHandler(sint, (vcpu, s) => this.raiseGuestSint(vcpu.cpu, s));
    }
    this.root = tsyringeRoot.createChildContainer();
    this.root.registerInstance(SIMULATION, this.sim);
    applyPlugins(this.root, manifests);
    const hostContainer = this.root.createChildContainer();
    hostContainer.registerInstance(HOST_VM, { name: this.vm.name, partition: this.vm, sim: this.sim });
    this.server = new VmbusServer(this.hv, this.vm, { maxVersion: params.hostMaxVersion });
    hostContainer.registerInstance(HOST_VMBUS_SERVER, this.server);
    if (setup !== undefined) {
      const r = setup({ root: this.root, hostContainer, sim: this.sim, partition: this.vm, server: this.server, config: params.setup?.config });
      this.setupResult = r === undefined || r === null ? undefined : r;
    }
    const rng = this.sim.rng.fork("instance guids");
    const guids = new InstanceGuidGenerator(() => rng.nextU32());
    const regs = resolveAllOrNone(this.root, HOST_DEVICES);
    for (const d of params.devices) {
      const options: HostDeviceOptions = {
        instanceId: d.instanceId,
        config: d.config,
        monitored: d.monitored,
        monitorLatencyNs: d.monitorLatencyNs,
      };
      const { device, store } = instantiateHostDevice(hostContainer, this.server, regs, d.type, options, () => guids.next());
      this.devices.push(device);
      this.stores.push(store);
    }
    // After the devices (a host stall names one), before the gate: windows count from now.
    this.injected = injectHostFaults(this.hv.faults, this.devices, params.faults);
    this.reader = new RingReader(new RingBuffer(new Uint8Array(params.link.mailbox), `${this.vm.name} mailbox`), { maxPacketSize: 1024 });
    this.mailboxRetry = this.sim.scheduler.timer(`${this.vm.name} mailbox retry`, () => this.drainMailbox());
    this.stopped = new Promise<void>((resolve) => (this.stopResolve = resolve));
    this.gate = new DoorbellGate({
      words: this.words,
      bell: W_HOST_BELL,
      waitsCounter: C_HOST_WAITS,
      wakeupsCounter: C_HOST_WAKEUPS,
      pollsCounter: C_HOST_POLLS,
      drain: () => this.drain(),
      maxLeadNs: params.maxLeadNs,
    });
    this.sim.scheduler.setGate(this.gate);
  }

  /** Runs until the guest thread asks to stop; then returns the report. */
  async run(): Promise<HostReportMessage> {
    // Compare-and-swap, not a store: a STOP the guest stored as soon as it
    // saw our "ready" message must not be overwritten (the word is
    // informational otherwise: the guest waits for the message).
    Atomics.compareExchange(this.words, W_STATE, STATE_STARTING, STATE_RUNNING);
    await this.sim.scheduler.runUntilSettled(this.stopped, { what: "host thread" });
    this.gate.close();
    this.sim.scheduler.setGate(undefined);
    this.mailboxRetry.cancel();
    const report: HostReportMessage = {
      kind: "report",
      threadId: 0,
      virtualTimeNs: this.sim.now,
      eventsRun: this.sim.scheduler.eventsRun,
      partition: plain(this.vm.counters),
      server: plain(this.server.counters),
      devices: this.devices.map((d) => deviceReport(d)),
      setup: this.setupResult?.report?.(),
      faults: { injected: this.injected.map(hostFaultReport), totals: this.hv.faults.totals },
    };
    for (const s of this.stores) await s.dispose();
    await this.setupResult?.dispose?.();
    await this.root.dispose();
    return report;
  }

  /** Marks the link failed and wakes the guest thread, which reports the error. */
  fail(): void {
    // Store the state, then ring: the guest's drain, run because the bell
    // moved, loads the state after our store.
    Atomics.store(this.words, W_STATE, STATE_FAILED);
    ring(this.words, W_GUEST_BELL, C_HOST_NOTIFIES);
  }

  private raiseGuestSint(cpu: number, sint: number): void {
    const bit = 1 << sint;
    // Atomics.or, then the ring: the flag or message this interrupt
    // announces was stored (Atomics) before, so the guest's ISR, which runs
    // after it took this bit, finds it. A bit still set from an earlier
    // raise merges, as a latched interrupt does.
    const old = Atomics.or(this.words, W_PENDING_SINTS + cpu, bit);
    Atomics.add(this.words, C_SINT_FORWARDS, 1);
    if ((old & bit) === 0) ring(this.words, W_GUEST_BELL, C_HOST_NOTIFIES);
  }

  /** Everything the guest thread published since the last look. */
  private drain(): void {
    const w = this.words;
    // Atomics.load of the state: the guest stored STOP before it rang.
    if (!this.stopRequested && Atomics.load(w, W_STATE) === STATE_STOP) {
      this.stopRequested = true;
      (this.stopResolve as () => void)();
    }
    this.drainMailbox();
    // EOM MSR writes: Atomics.exchange takes and clears the request in one
    // step, so an EOM the guest writes right after is never lost.
    for (const v of this.vm.vcpus) {
      if (Atomics.exchange(w, W_EOM + v.cpu, 0) !== 0) {
        Atomics.add(w, C_EOM_FORWARDS, 1);
        v.synic.eom();
      }
    }
    this.drainSignals();
    // Monitor pages are guest memory: look at the pending bits ourselves.
    this.vm.monitor.watchPending();
  }

  private drainMailbox(): void {
    const r = this.reader;
    const w = this.words;
    for (;;) {
      // hv_begin_read: the guest's commit() sees the mask and does not ring
      // while we drain.
      r.beginRead();
      let blocked = false;
      let p = r.first();
      while (p !== null) {
        if (!this.takeMessage(p.buffer, p.dataOffset, p.dataLength)) {
          // The target port's queue is full: leave this message (and those
          // behind it, to keep their order) in the mailbox — not stepped
          // past, so close() does not consume it — and look again once the
          // port had time to deliver. Meanwhile the mailbox fills and the
          // guest's HVCALL_POST_MESSAGE gets HV_STATUS_INSUFFICIENT_BUFFERS
          // and backs off, as with a full port on one thread.
          blocked = true;
          break;
        }
        Atomics.add(w, C_MAILBOX_MESSAGES, 1);
        p = r.next();
      }
      r.close();
      // hv_end_read: unmask, then look again — a message committed while
      // we were masked drew no ring, so it must be taken now.
      const more = r.endRead();
      if (blocked) {
        Atomics.add(w, C_MAILBOX_DEFERRALS, 1);
        if (!this.mailboxRetry.armed) this.mailboxRetry.arm(this.sim.costs.messageDeliveryNs);
        return;
      }
      if (more === 0) return;
    }
  }

  /** Takes one mailbox message; false (nothing taken) when its port's queue is full. */
  private takeMessage(buf: Uint8Array, off: number, len: number): boolean {
    // `buf` is the reader's private copy: the guest can no longer change it.
    const view = new DataView(buf.buffer, buf.byteOffset + off, len);
    if (len < MAILBOX_HEADER_BYTES) return this.malformed();
    const vp = view.getUint32(0, true);
    const connectionId = view.getUint32(4, true);
    const messageType = view.getUint32(8, true);
    const size = view.getUint32(12, true);
    if (size > HV_MESSAGE_PAYLOAD_BYTE_COUNT || MAILBOX_HEADER_BYTES + size > len) return this.malformed();
    if (this.vm.vcpuByVpIndex(vp) === undefined) return this.malformed();
    const port = this.vm.messagePorts.get(connectionId);
    if (port !== undefined && port.queue.length >= this.sim.costs.messageQueueDepth) return false;
    const payload = buf.subarray(off + MAILBOX_HEADER_BYTES, off + MAILBOX_HEADER_BYTES + size);
    // Type, size and port checks as for a hypercall; the status is lost
    // (the guest got its status when it posted), so failures only count.
    // (A full port queue cannot fail it: that was checked above.)
    this.hv.deliverPostMessage(this.vm, vp, connectionId, messageType, payload);
    return true;
  }

  /** Counts a malformed mailbox message, which is consumed (dropped). */
  private malformed(): true {
    Atomics.add(this.words, C_MAILBOX_MALFORMED, 1);
    return true;
  }

  private drainSignals(): void {
    const w = this.words;
    const summaryWords = W_SIGNAL_BITS - W_SIGNAL_SUMMARY;
    for (let s = 0; s < summaryWords; s++) {
      // Summary first, then the words it names, each with Atomics.exchange:
      // a guest that sets a bit in a word we already emptied sees the word
      // at 0 and sets the summary bit again, so its signal is taken by the
      // next drain (it rang the doorbell after setting both).
      let sum = Atomics.load(w, W_SIGNAL_SUMMARY + s) === 0 ? 0 : Atomics.exchange(w, W_SIGNAL_SUMMARY + s, 0);
      while (sum !== 0) {
        const b = 31 - Math.clz32(sum & -sum);
        sum &= ~(1 << b);
        const word = s * 32 + b;
        let bits = Atomics.exchange(w, W_SIGNAL_BITS + word, 0);
        while (bits !== 0) {
          const bit = 31 - Math.clz32(bits & -bits);
          bits &= ~(1 << bit);
          Atomics.add(w, C_EVENT_SIGNALS, 1);
          this.hv.deliverSignalEvent(this.vm, word * 32 + bit, null);
        }
      }
    }
  }
}

function plain(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") out[k] = v;
    else if (Array.isArray(v) || ArrayBuffer.isView(v)) out[k] = Array.from(v as ArrayLike<number>);
    else if (v !== null && typeof v === "object") out[k] = plain(v as object);
  }
  return out;
}

function deviceReport(d: HostDevice): HostDeviceReport {
  const h = d.handler as { counters?: unknown; channelStats?: () => unknown };
  let channelStats: unknown = undefined;
  try {
    channelStats = typeof h.channelStats === "function" ? structuredClone(h.channelStats()) : undefined;
  } catch {
    channelStats = undefined;
  }
  return {
    type: d.offer.name,
    instanceId: d.offer.instanceId.toString(),
    counters: h.counters !== undefined && h.counters !== null && typeof h.counters === "object" ? plain(h.counters) : undefined,
    channelStats,
  };
}

/** Loads the `HostSetup` hook `spec` names (in the host thread). */
export async function importHostSetup(spec: HostSetupSpec): Promise<HostSetup> {
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const name = spec.exportName ?? "default";
  const f = mod[name];
  if (typeof f !== "function") throw new InvalidArgumentError(`hostSetup ${spec.module}`, name, "is not an exported function (a HostSetup)");
  return f as HostSetup;
}

/** Loads the plugin manifests named in `specs` (in the host thread). */
export async function importPluginManifests(specs: readonly PluginModuleSpec[]): Promise<PluginManifest[]> {
  const out: PluginManifest[] = [];
  for (const s of specs) {
    const mod = (await import(s.module)) as Record<string, unknown>;
    const name = s.exportName ?? "default";
    const f = mod[name];
    if (typeof f !== "function") throw new InvalidArgumentError(`plugin ${s.module}`, name, "is not an exported function (a PluginManifest)");
    out.push(f as PluginManifest);
  }
  return out;
}
