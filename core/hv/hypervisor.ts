/**
 * The hypervisor model (issue 3; vmbus-core.md §3.4, §5, §6, §7.4, §7.5):
 * partitions, hypercalls, connection ids, host wakeups and throttling.
 *
 * One `Hypervisor` per simulation holds the host partition and N guest VM
 * partitions. The host side registers, per VM, *message ports* (targets of
 * HVCALL_POST_MESSAGE) and *event connections* (targets of
 * HVCALL_SIGNAL_EVENT and of monitor-page wakeups) by connection id; the
 * guest side issues hypercalls from a vCPU (`Vcpu.postMessage`,
 * `Vcpu.signalEvent`). Host → guest traffic goes through the target vCPU's
 * SynIC: `postMessageToGuest` (SIMP slot + msg_pending/EOM handshake) and
 * `signalGuest` (SIEFP relid bit + SINT2).
 *
 * Timing (see CostModel): a hypercall charges `hypercallNs` of busy time to
 * the calling vCPU; its effect reaches the host after `hypercallNs` plus the
 * delivery latency. Host wakeups for one event connection are serialised and
 * coalesced — a signal that arrives while a wakeup is pending or running
 * folds into it, as repeated sets of one event flag do on Hyper-V — because
 * the host drains the whole ring on each wakeup anyway.
 *
 * Throttling (§3.4, vmbus.rst): Hyper-V expects guest → host interrupts only
 * on ring state transitions and may suspend a guest that sends too many
 * others. The host registers a classifier per event connection; every guest
 * signal the hypervisor sees (a signal-event hypercall, or a monitor wakeup)
 * is classified necessary or unnecessary and counted. More than
 * `throttleUnnecessaryLimit` unnecessary signals within one
 * `throttleWindowNs` window suspend all of the VM's vCPUs for
 * `throttleSuspendNs`: they run nothing and interrupts queue until then.
 */
import { InvalidArgumentError } from "../errors.js";
import { GuestMemory, type GuestMemoryConfig } from "../memory/guest-memory.js";
import type { Timer } from "../sim/scheduler.js";
import type { Simulation } from "../sim/simulation.js";
import {
  HV_CONNECTION_ID_MASK,
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
  VMBUS_MESSAGE_SINT,
  VMBUS_MESSAGE_TYPE_CHANNEL,
  type HvStatus,
} from "./constants.js";
import { FaultInjector } from "./faults.js";
import { GuestPartition, HostPartition, type SharedPartitionLayout } from "./partition.js";
import { currentVcpu, type Vcpu } from "./vcpu.js";
import { runSettled } from "../sim/settle.js";

export interface HypervisorOptions {
  /** Track `currentVcpu()` across awaits with AsyncLocalStorage (slower; see vcpu.ts). Default false. */
  readonly asyncVcpuContext?: boolean;
}

export interface VmOptions {
  readonly name?: string;
  /** Number of vCPUs (default 1, or the length of `vpIndexes`). */
  readonly vcpuCount?: number;
  /** VP index of each vCPU (default: the CPU number). */
  readonly vpIndexes?: readonly number[];
  /** The VM's memory, or a configuration for a new one (default 16 MiB). */
  readonly memory?: GuestMemory | GuestMemoryConfig;
  /**
   * Threaded mode, host thread: the SynIC and monitor pages already exist
   * in (shared) guest memory at these GPAs; use them instead of
   * allocating. Must have one SynIC entry per vCPU.
   */
  readonly sharedLayout?: SharedPartitionLayout;
}

/** A guest → host message as the host port receives it. `payload` is the hypervisor's copy. */
export interface HostMessage {
  readonly vm: GuestPartition;
  readonly vpIndex: number;
  readonly connectionId: number;
  readonly messageType: number;
  readonly payload: Uint8Array;
}

export type HostMessageHandler = (message: HostMessage) => void | PromiseLike<void>;

export type SignalVia = "hypercall" | "monitor";

/** Host wakeup for an event connection. */
export type HostEventHandler = (vm: GuestPartition, connectionId: number, via: SignalVia) => void | PromiseLike<void>;

/**
 * Host-side judgement of one guest signal: true = necessary (the guest →
 * host ring went empty → non-empty, or the host → guest ring crossed
 * pending_send_sz), false = unnecessary.
 */
export type SignalClassifier = (connectionId: number) => boolean;

export interface GuestMessageOptions {
  /** Target VP (default 0: VMBus control messages all arrive on CPU 0, §7.4). */
  readonly vpIndex?: number;
  /** Target SINT (default VMBUS_MESSAGE_SINT = 2). */
  readonly sint?: number;
  /** Default VMBUS_MESSAGE_TYPE_CHANNEL (1). */
  readonly messageType?: number;
  /** Sender port id written in the header (24 bits; default 0). */
  readonly port?: number;
}


interface QueuedHostMessage {
  readonly vpIndex: number;
  readonly messageType: number;
  readonly payload: Uint8Array;
  readonly readyAt: number;
}

/** @internal A host message port of one VM: a bounded queue drained one message at a time. */
export class HostMessagePort {
  readonly queue: QueuedHostMessage[] = [];
  private busy = false;
  private readonly timer: Timer;
  private readonly label: string;
  private readonly onDone: () => void;
  private readonly onFail: (e: unknown) => void;

  constructor(
    readonly vm: GuestPartition,
    readonly connectionId: number,
    readonly handler: HostMessageHandler,
  ) {
    this.label = `${vm.name} message port ${connectionId}`;
    this.timer = vm.hypervisor.sim.scheduler.timer(this.label, () => this.deliver());
    this.onDone = () => {
      this.busy = false;
      this.schedule();
    };
    this.onFail = (e: unknown) => {
      this.onDone();
      this.vm.hypervisor.sim.scheduler.reportError(this.label, e);
    };
  }

  enqueue(m: QueuedHostMessage): void {
    this.queue.push(m);
    this.schedule();
  }

  cancel(): void {
    this.timer.cancel();
    this.queue.length = 0;
  }

  private schedule(): void {
    const head = this.queue[0];
    if (this.busy || head === undefined) return;
    const at = Math.max(head.readyAt, this.vm.hypervisor.sim.scheduler.now);
    if (!this.timer.armed || this.timer.dueNs > at) this.timer.armAt(at);
  }

  private deliver(): void {
    const m = this.queue.shift();
    if (m === undefined || this.busy) return;
    const hv = this.vm.hypervisor;
    const tracer = hv.sim.tracer;
    if (tracer.wants("messageDelivered")) {
      tracer.emit("messageDelivered", {
        timeNs: hv.sim.scheduler.now,
        partitionId: hv.host.id,
        vpIndex: null,
        direction: "to-host",
        connectionId: this.connectionId,
        messageType: m.messageType,
        sint: null,
        queued: this.queue.length,
      });
    }
    this.busy = true;
    const message: HostMessage = {
      vm: this.vm,
      vpIndex: m.vpIndex,
      connectionId: this.connectionId,
      messageType: m.messageType,
      payload: m.payload,
    };
    runSettled(() => this.handler(message), this.onDone, this.onFail);
  }
}

/** @internal A host event connection of one VM: serialised, coalescing wakeups. */
export class HostEventConnection {
  classifier: SignalClassifier | undefined;
  /** Fires the hypercall-path wakeup after the signal's latency. */
  readonly timer: Timer;
  private busy = false;
  private again = false;
  private againVia: SignalVia = "hypercall";
  /** The path of the wakeup being run; `invoke` reads it (bound once: no closure per wakeup). */
  private via: SignalVia = "hypercall";
  private readonly invoke = (): unknown => this.handler(this.vm, this.connectionId, this.via);
  private readonly label: string;
  private readonly onDone: () => void;
  private readonly onFail: (e: unknown) => void;

  constructor(
    readonly vm: GuestPartition,
    readonly connectionId: number,
    readonly handler: HostEventHandler,
    classifier: SignalClassifier | undefined,
  ) {
    this.classifier = classifier;
    this.label = `${vm.name} event connection ${connectionId}`;
    this.timer = vm.hypervisor.sim.scheduler.timer(this.label, () => this.wake("hypercall"));
    this.onDone = () => {
      this.busy = false;
      if (this.again) {
        this.again = false;
        this.wake(this.againVia);
      }
    };
    this.onFail = (e: unknown) => {
      this.onDone();
      this.vm.hypervisor.sim.scheduler.reportError(this.label, e);
    };
  }

  /** Runs the host handler now, or once more after the running one if busy. */
  wake(via: SignalVia): void {
    if (this.busy) {
      this.again = true;
      this.againVia = via;
      return;
    }
    this.busy = true;
    this.vm.counters.hostWakeups++;
    this.via = via;
    runSettled(this.invoke, this.onDone, this.onFail);
  }
}

export class Hypervisor {
  readonly host: HostPartition;
  /** Fault injection (dropped or late interrupts, late monitor scans, stalled host devices, forced suspensions). */
  readonly faults: FaultInjector;
  private readonly guests: GuestPartition[] = [];
  private readonly asyncVcpuContext: boolean;

  constructor(
    readonly sim: Simulation,
    options: HypervisorOptions = {},
  ) {
    this.asyncVcpuContext = options.asyncVcpuContext ?? false;
    this.host = new HostPartition(this, 0, "host");
    this.faults = new FaultInjector(this);
    const t = sim.tracer;
    if (t.wants("partitionCreated")) {
      t.emit("partitionCreated", { timeNs: sim.now, partitionId: 0, vpIndex: null, name: "host", kind: "host" });
    }
  }

  get vms(): readonly GuestPartition[] {
    return this.guests;
  }

  /** The vCPU whose handler is running (see vcpu.ts for the rule across awaits). */
  get currentVcpu(): Vcpu | undefined {
    return currentVcpu();
  }

  /** Creates a VM partition: memory, vCPUs with SynIC pages, monitor pages. */
  createVm(options: VmOptions = {}): GuestPartition {
    const id = this.guests.length + 1;
    const name = options.name ?? `vm${id}`;
    let vpIndexes = options.vpIndexes;
    const count = options.vcpuCount ?? vpIndexes?.length ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 1024) {
      throw new InvalidArgumentError("vcpuCount", count, "must be in [1, 1024]");
    }
    if (vpIndexes === undefined) vpIndexes = Array.from({ length: count }, (_, i) => i);
    else if (vpIndexes.length !== count) {
      throw new InvalidArgumentError("vpIndexes.length", vpIndexes.length, `must equal vcpuCount (${count})`);
    }
    const memory = options.memory instanceof GuestMemory ? options.memory : new GuestMemory(options.memory);
    const layout = options.sharedLayout;
    if (layout !== undefined && layout.synic.length !== count) {
      throw new InvalidArgumentError("sharedLayout.synic.length", layout.synic.length, `must equal vcpuCount (${count})`);
    }
    const vm = new GuestPartition(this, id, name, memory, vpIndexes, this.asyncVcpuContext, layout);
    vm.resumeTimer = this.sim.scheduler.timer(`${name} throttle end`, () => this.endThrottle(vm));
    this.guests.push(vm);
    const t = this.sim.tracer;
    if (t.wants("partitionCreated")) {
      t.emit("partitionCreated", { timeNs: this.sim.now, partitionId: id, vpIndex: null, name, kind: "guest" });
    }
    if (t.wants("vcpuCreated")) {
      for (const v of vm.vcpus) t.emit("vcpuCreated", { timeNs: this.sim.now, partitionId: id, vpIndex: v.vpIndex, cpu: v.cpu });
    }
    return vm;
  }

  // ---- host side: connection ids ----------------------------------------

  /** Registers the host's message port for `connectionId` in `vm`. */
  connectMessagePort(vm: GuestPartition, connectionId: number, handler: HostMessageHandler): void {
    this.checkNewConnection(vm, connectionId);
    vm.messagePorts.set(connectionId, new HostMessagePort(vm, connectionId, handler));
  }

  /** Registers the host's event connection for `connectionId` in `vm`, with an optional signal classifier. */
  connectEvent(vm: GuestPartition, connectionId: number, handler: HostEventHandler, classifier?: SignalClassifier): void {
    this.checkNewConnection(vm, connectionId);
    vm.eventConnections.set(connectionId, new HostEventConnection(vm, connectionId, handler, classifier));
  }

  /** Sets (or clears) the classifier of an event connection. */
  setSignalClassifier(vm: GuestPartition, connectionId: number, classifier: SignalClassifier | undefined): void {
    const c = vm.eventConnections.get(connectionId);
    if (c === undefined) throw new InvalidArgumentError("connectionId", connectionId, `is not an event connection of ${vm.name}`);
    c.classifier = classifier;
  }

  /** Removes a port or event connection; later hypercalls to it get HV_STATUS_INVALID_CONNECTION_ID. */
  disconnect(vm: GuestPartition, connectionId: number): boolean {
    const port = vm.messagePorts.get(connectionId);
    port?.cancel();
    const ev = vm.eventConnections.get(connectionId);
    ev?.timer.cancel();
    return vm.messagePorts.delete(connectionId) || vm.eventConnections.delete(connectionId);
  }

  // ---- host side: host → guest ------------------------------------------

  /**
   * Host posts a message to a VM's vCPU SINT slot. The message lands in the
   * slot after `messageDeliveryNs` if the slot is free, else waits (msg_pending)
   * for the guest's EOM. Returns HV_STATUS_INVALID_PARAMETER for a payload
   * over 240 bytes or a message type of HVMSG_NONE, and
   * HV_STATUS_INSUFFICIENT_BUFFERS when `messageQueueDepth` messages already wait.
   */
  postMessageToGuest(vm: GuestPartition, payload: Uint8Array, options: GuestMessageOptions = {}): HvStatus {
    const vpIndex = options.vpIndex ?? 0;
    const sint = options.sint ?? VMBUS_MESSAGE_SINT;
    const messageType = options.messageType ?? VMBUS_MESSAGE_TYPE_CHANNEL;
    const port = options.port ?? 0;
    const vcpu = this.vcpuOf(vm, vpIndex);
    if (!Number.isInteger(sint) || sint < 0 || sint >= HV_SYNIC_SINT_COUNT) {
      throw new InvalidArgumentError("sint", sint, `must be in [0, ${HV_SYNIC_SINT_COUNT})`);
    }
    if (!Number.isInteger(port) || port < 0 || port > HV_CONNECTION_ID_MASK) {
      throw new InvalidArgumentError("port", port, `must be in [0, ${HV_CONNECTION_ID_MASK}] (24 bits)`);
    }
    const now = this.sim.scheduler.now;
    let status: HvStatus;
    if (payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT || !Number.isInteger(messageType) || messageType >>> 0 === HVMSG_NONE) {
      status = HV_STATUS_INVALID_PARAMETER;
    } else {
      status = vcpu.synic.enqueueMessage(
        sint,
        messageType >>> 0,
        port,
        payload,
        this.sim.costs.messageQueueDepth,
        now + this.sim.costs.messageDeliveryNs,
      );
      if (status === HV_STATUS_SUCCESS) vm.counters.messagesToGuest++;
      else vm.counters.messagesRejected++;
    }
    const t = this.sim.tracer;
    if (t.wants("messagePosted")) {
      t.emit("messagePosted", {
        timeNs: now,
        partitionId: this.host.id,
        vpIndex: null,
        direction: "to-guest",
        connectionId: port,
        messageType: messageType >>> 0,
        payloadSize: payload.length,
        status,
        peerPartitionId: vm.id,
      });
    }
    return status;
  }

  /**
   * Host signals channel `relid` on a VM vCPU: set the relid bit in that
   * vCPU's SINT2 event flags, then raise SINT2 after `interruptDeliveryNs`.
   * The flag is set first so that an ISR already running on that vCPU may
   * pick it up early — never the other way round, which could deliver an
   * interrupt that finds no flag and loses the signal. Allocates nothing.
   */
  signalGuest(vm: GuestPartition, vpIndex: number, relid: number): void {
    const vcpu = this.vcpuOf(vm, vpIndex);
    vcpu.synic.setEventFlag(VMBUS_MESSAGE_SINT, relid);
    vm.counters.hostSignals++;
    let delay = this.sim.costs.interruptDeliveryNs;
    // Fault injection: one length test when no interrupt fault is active.
    if (this.faults.interruptRules.length !== 0) {
      const extra = this.faults.interruptFate(vm);
      // Dropped: the flag above stays set and SINT2 is not raised; the next
      // interrupt on this vCPU (or the guest's watchdog) finds the flag.
      if (extra < 0) return;
      delay += extra;
    }
    const t = this.sim.tracer;
    if (t.wants("interruptRaised")) {
      const now = this.sim.scheduler.now;
      t.emit("interruptRaised", {
        timeNs: now,
        partitionId: vm.id,
        vpIndex,
        sint: VMBUS_MESSAGE_SINT,
        relid,
        deliverAtNs: now + delay,
      });
    }
    vcpu.raiseSintAfter(VMBUS_MESSAGE_SINT, delay);
  }

  // ---- hypercalls (called through Vcpu) -----------------------------------

  /** @internal HVCALL_POST_MESSAGE. */
  hypercallPostMessage(vcpu: Vcpu, connectionId: number, messageType: number, payload: Uint8Array): HvStatus {
    const vm = vcpu.partition;
    const costs = this.sim.costs;
    vm.counters.hypercalls.postMessage++;
    vcpu.counters.hypercalls.postMessage++;
    vcpu.charge(costs.hypercallNs);
    const now = this.sim.scheduler.now;
    const status = this.deliverPostMessage(vm, vcpu.vpIndex, connectionId, messageType, payload);
    const t = this.sim.tracer;
    if (t.wants("hypercall")) {
      t.emit("hypercall", {
        timeNs: now,
        partitionId: vm.id,
        vpIndex: vcpu.vpIndex,
        code: HVCALL_POST_MESSAGE,
        name: "HVCALL_POST_MESSAGE",
        connectionId,
        status,
      });
    }
    if (t.wants("messagePosted")) {
      t.emit("messagePosted", {
        timeNs: now,
        partitionId: vm.id,
        vpIndex: vcpu.vpIndex,
        direction: "to-host",
        connectionId,
        messageType,
        payloadSize: payload.length,
        status,
        peerPartitionId: this.host.id,
      });
    }
    return status;
  }

  /**
   * @internal The hypervisor's half of HVCALL_POST_MESSAGE from VP
   * `vpIndex` of `vm`: check the input, find the port, queue a copy of
   * `payload`. Threaded mode's host thread calls it for each message the
   * guest thread posted (after copying it out of the shared mailbox).
   */
  deliverPostMessage(vm: GuestPartition, vpIndex: number, connectionId: number, messageType: number, payload: Uint8Array): HvStatus {
    const costs = this.sim.costs;
    const now = this.sim.scheduler.now;
    let status: HvStatus;
    const port = vm.messagePorts.get(connectionId);
    // Parameter checks come first: a malformed input is rejected whatever it targets.
    if (
      payload.length > HV_MESSAGE_PAYLOAD_BYTE_COUNT ||
      !Number.isInteger(messageType) ||
      messageType <= HVMSG_NONE ||
      messageType >= HV_MESSAGE_TYPE_HYPERVISOR_MASK
    ) {
      status = HV_STATUS_INVALID_PARAMETER;
    } else if (port === undefined) {
      status = HV_STATUS_INVALID_CONNECTION_ID;
    } else if (port.queue.length >= costs.messageQueueDepth) {
      status = HV_STATUS_INSUFFICIENT_BUFFERS;
      vm.counters.messagesRejected++;
    } else {
      port.enqueue({
        vpIndex,
        messageType,
        payload: payload.slice(),
        readyAt: now + costs.hypercallNs + costs.messageDeliveryNs,
      });
      vm.counters.messagesToHost++;
      status = HV_STATUS_SUCCESS;
    }
    return status;
  }

  /** @internal HVCALL_SIGNAL_EVENT. Allocates nothing when untraced. */
  hypercallSignalEvent(vcpu: Vcpu, connectionId: number): HvStatus {
    const vm = vcpu.partition;
    const costs = this.sim.costs;
    vm.counters.hypercalls.signalEvent++;
    vcpu.counters.hypercalls.signalEvent++;
    vcpu.charge(costs.hypercallNs);
    const status = this.deliverSignalEvent(vm, connectionId, vcpu.vpIndex);
    const t = this.sim.tracer;
    if (t.wants("hypercall")) {
      t.emit("hypercall", {
        timeNs: this.sim.scheduler.now,
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

  /**
   * @internal The hypervisor's half of HVCALL_SIGNAL_EVENT: classify the
   * signal and wake the event connection after the signal's latency.
   * Threaded mode's host thread calls it for each event bit the guest
   * thread set (`vpIndex` null: the bit does not say which VP signalled).
   */
  deliverSignalEvent(vm: GuestPartition, connectionId: number, vpIndex: number | null): HvStatus {
    const conn = vm.eventConnections.get(connectionId);
    if (conn === undefined) return HV_STATUS_INVALID_CONNECTION_ID;
    const costs = this.sim.costs;
    this.classify(vm, conn, "hypercall", null, vpIndex);
    // A wakeup already in flight will find whatever this signal announced.
    if (!conn.timer.armed) conn.timer.arm(costs.hypercallNs + costs.interruptDeliveryNs);
    return HV_STATUS_SUCCESS;
  }

  /** @internal A monitor scan found `monitorId` pending: wake the host. False if no such connection. */
  monitorWake(vm: GuestPartition, connectionId: number, monitorId: number): boolean {
    const conn = vm.eventConnections.get(connectionId);
    if (conn === undefined) return false;
    vm.counters.monitorWakeups++;
    this.classify(vm, conn, "monitor", monitorId, null);
    conn.wake("monitor");
    return true;
  }

  // ---- throttling ----------------------------------------------------------

  private classify(
    vm: GuestPartition,
    conn: HostEventConnection,
    via: SignalVia,
    monitorId: number | null,
    vpIndex: number | null,
  ): void {
    const necessary = conn.classifier === undefined ? true : conn.classifier(conn.connectionId);
    const t = this.sim.tracer;
    if (t.wants("signal")) {
      t.emit("signal", {
        timeNs: this.sim.scheduler.now,
        partitionId: vm.id,
        vpIndex,
        connectionId: conn.connectionId,
        via,
        necessary,
        monitorId,
      });
    }
    if (necessary) {
      vm.counters.signalsNecessary++;
      return;
    }
    vm.counters.signalsUnnecessary++;
    const costs = this.sim.costs;
    const now = this.sim.scheduler.now;
    if (now - vm.throttleWindowStartNs >= costs.throttleWindowNs) {
      vm.throttleWindowStartNs = now;
      vm.throttleWindowCount = 0;
    }
    if (++vm.throttleWindowCount > costs.throttleUnnecessaryLimit) this.throttle(vm);
  }

  private throttle(vm: GuestPartition): void {
    const now = this.sim.scheduler.now;
    const until = now + this.sim.costs.throttleSuspendNs;
    const count = vm.throttleWindowCount;
    vm.counters.throttleEvents++;
    // A fresh window after the suspension: the guest is judged on new behaviour.
    vm.throttleWindowStartNs = until;
    vm.throttleWindowCount = 0;
    this.suspendAll(vm, until, count);
  }

  /**
   * @internal Suspends every vCPU of `vm` until `untilNs`, as throttling
   * does (`FaultInjector.suspendVm`: a throttled guest on demand). Extends
   * a suspension under way, never shortens it.
   */
  suspendVm(vm: GuestPartition, untilNs: number): void {
    vm.counters.faultSuspensions++;
    this.suspendAll(vm, untilNs, 0);
  }

  private suspendAll(vm: GuestPartition, until: number, unnecessarySignals: number): void {
    const now = this.sim.scheduler.now;
    if (vm.suspendedUntilNs <= now) vm.suspendedSinceNs = now;
    // max: a throttle during a longer forced suspension must not cut it short.
    if (until > vm.suspendedUntilNs) vm.suspendedUntilNs = until;
    for (const v of vm.vcpus) v.suspendUntil(until);
    (vm.resumeTimer as Timer).armAt(vm.suspendedUntilNs);
    const t = this.sim.tracer;
    if (t.wants("throttle")) {
      t.emit("throttle", { timeNs: now, partitionId: vm.id, vpIndex: null, phase: "begin", unnecessarySignals, untilNs: vm.suspendedUntilNs });
    }
  }

  private endThrottle(vm: GuestPartition): void {
    const now = this.sim.scheduler.now;
    vm.counters.throttledNs += vm.suspendedUntilNs - vm.suspendedSinceNs;
    const t = this.sim.tracer;
    if (t.wants("throttle")) {
      t.emit("throttle", { timeNs: now, partitionId: vm.id, vpIndex: null, phase: "end", unnecessarySignals: 0, untilNs: now });
    }
  }

  private vcpuOf(vm: GuestPartition, vpIndex: number): Vcpu {
    const v = vm.vcpuByVpIndex(vpIndex);
    if (v === undefined) throw new InvalidArgumentError("vpIndex", vpIndex, `is not a VP of ${vm.name}`);
    return v;
  }

  private checkNewConnection(vm: GuestPartition, connectionId: number): void {
    if (vm.hypervisor !== this) throw new InvalidArgumentError("vm", vm.name, "belongs to another hypervisor");
    if (!Number.isInteger(connectionId) || connectionId < 0 || connectionId > HV_CONNECTION_ID_MASK) {
      throw new InvalidArgumentError("connectionId", connectionId, `must be in [0, ${HV_CONNECTION_ID_MASK}] (24 bits)`);
    }
    if (vm.messagePorts.has(connectionId) || vm.eventConnections.has(connectionId)) {
      throw new InvalidArgumentError("connectionId", connectionId, `is already connected in ${vm.name}`);
    }
  }
}
