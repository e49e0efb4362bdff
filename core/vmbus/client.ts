/**
 * The guest's VMBus client — vmbus-core.md §7 (control messages, version
 * negotiation, offers, GPADLs, open/close, rescind, unload) and the
 * channel-array seed document.
 *
 * Control messages arrive in the SynIC message slot of vCPU 0 (SINT 2). The
 * handler copies the slot, releases it (EOM), and only then looks at the
 * copy: the host may reuse the slot at once, and a message validated in
 * place could change under us. Offers and rescinds are processed one at a
 * time in arrival order (Linux's single-threaded work queue); responses
 * complete the request waiting for them.
 *
 * Channels are found by relid in one array that every vCPU's interrupt
 * handler reads. A channel is stored there while its offer is processed,
 * before its device is probed and so before it can be opened: by the time
 * the host can signal it, any vCPU finds it. An event bit for a relid that
 * is not (or no longer) in the array is counted by the ISR and ignored.
 */
import { ErrnoError, InvalidArgumentError, ProtocolError, VmbusSimError } from "../errors.js";
import { HVMSG_NONE, HV_MESSAGE_SIZE, HV_STATUS_SUCCESS, VMBUS_MESSAGE_SINT } from "../hv/constants.js";
import { postMessageWithRetry } from "../hv/guest.js";
import type { GuestPartition } from "../hv/partition.js";
import { installVmbusIsr, type VmbusIsr } from "../hv/vmbus-isr.js";
import { currentVcpu, type Vcpu } from "../hv/vcpu.js";
import type { EventHandle } from "../sim/scheduler.js";
import { PAGE_SIZE } from "../memory/guest-memory.js";
import { deviceClassForOffer } from "./device-classes.js";
import { VmbusDevice } from "./device.js";
import { CHANNEL_OPENED_STATE, GuestChannel, type ChannelControl } from "./guest-channel.js";
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_TEARDOWN,
  CHANNELMSG_GPADL_TORNDOWN,
  CHANNELMSG_INITIATE_CONTACT,
  CHANNELMSG_MODIFYCHANNEL,
  CHANNELMSG_MODIFYCHANNEL_RESPONSE,
  CHANNELMSG_OFFERCHANNEL,
  CHANNELMSG_OPENCHANNEL,
  CHANNELMSG_OPENCHANNEL_RESULT,
  CHANNELMSG_RELID_RELEASED,
  CHANNELMSG_REQUESTOFFERS,
  CHANNELMSG_RESCIND_CHANNELOFFER,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  GPADL_FIRST_HANDLE,
  VMBUS_MESSAGE_TYPE_CHANNEL,
  decodeChannelMessage,
  describeChannelMessage,
  encodeChannelMessage,
  splitGpadl,
  type ChannelMessage,
  type OfferChannelMessage,
} from "./messages.js";
import {
  VERSION_WIN10_V5,
  VMBUS_DEFAULT_MAX_VERSION,
  VMBUS_MESSAGE_CONNECTION_ID,
  VmbusConnectState,
  formatVersion,
  initiateContactConnectionId,
  supportsModifyChannelResponse,
  supportsUnload,
  versionsToTry,
} from "./versions.js";

/** `MAX_CHANNEL_RELIDS`: the size of the relid → channel array. */
export const MAX_CHANNEL_RELIDS = 2048;

export interface VmbusClientOptions {
  /** Highest protocol version to try (`max_version`); default 5.3. */
  readonly maxVersion?: number;
  /**
   * How long a control request waits for the host's response, ns of
   * virtual time, before it fails with ETIMEDOUT (default
   * `VMBUS_CONTROL_TIMEOUT_NS`, 5 s).
   */
  readonly controlTimeoutNs?: number;
}

/**
 * Default wait for a control-plane response: Linux gives version
 * negotiation 5 s (`wait_for_completion_timeout(…, 5*HZ)`). Linux waits
 * for the rest (GPADL_CREATED, OPENCHANNEL_RESULT, …) without a bound; we
 * bound them too, because a host that drops or garbles one response (an
 * OPENCHANNEL_RESULT with the wrong open id is ignored, as Linux ignores
 * it) would otherwise hang the probe for ever — the fuzzer found that one.
 */
export const VMBUS_CONTROL_TIMEOUT_NS = 5_000_000_000;

function checkControlTimeout(ns: number): number {
  if (!Number.isSafeInteger(ns) || ns <= 0) throw new InvalidArgumentError("controlTimeoutNs", ns, "must be a positive safe integer of nanoseconds");
  return ns;
}

/** How the client hands devices to the driver core. */
export interface DeviceHooks {
  /** A new primary offer became a device: find it a driver (probe). */
  add(device: VmbusDevice): Promise<void>;
  /** The device's offer was rescinded: unbind it (driver `remove`). */
  remove(device: VmbusDevice): Promise<void>;
}

/** One line of the boot summary: a control message as it went by. */
export interface ControlLogEntry {
  readonly timeNs: number;
  readonly direction: "guest→host" | "host→guest";
  readonly text: string;
  readonly msgtype: number;
  /** The message bytes as they crossed (encoded by the guest, or the payload copied from the slot). */
  readonly bytes: Uint8Array;
}

interface Waiter {
  resolve(m: ChannelMessage): void;
  reject(e: unknown): void;
  /** The timeout; cancelled when the waiter is settled. */
  timer: EventHandle | null;
}

export class VmbusClient implements ChannelControl {
  version = 0;
  connectState: VmbusConnectState = VmbusConnectState.DISCONNECTED;
  /** The connection id of later messages (5.0+: from VERSION_RESPONSE). */
  msgConnId = VMBUS_MESSAGE_CONNECTION_ID;
  readonly channels: (GuestChannel | undefined)[] = new Array<GuestChannel | undefined>(MAX_CHANNEL_RELIDS).fill(undefined);
  readonly devices: VmbusDevice[] = [];
  readonly counters = {
    messagesIn: 0,
    messagesOut: 0,
    malformedMessages: 0,
    unexpectedMessages: 0,
    droppedOffers: 0,
    probeErrors: 0,
  };
  /** The control-plane conversation, for the boot summary. */
  readonly log: ControlLogEntry[] = [];
  logEnabled = true;
  readonly isr: VmbusIsr;
  /** Lost-interrupt watchdog of this VM's channels, ns; 0 = off (see `setLostInterruptWatchdog`). */
  lostInterruptPollNs = 0;
  lostInterruptMaxPollNs = 0;

  private readonly maxVersion: number;
  /** See `VmbusClientOptions.controlTimeoutNs`; change it with `setControlTimeout`. */
  controlTimeoutNs: number;
  /** Control requests that got no response in time. */
  controlTimeouts = 0;
  /**
   * Requests waiting for a response, by key, oldest first: two requests with
   * the same key (two MODIFYCHANNELs of one channel in flight) each get one
   * response, in order — as Linux completes the first matching entry of
   * `chn_msg_list` — instead of the second hiding the first forever.
   */
  private readonly waiters = new Map<string, Waiter[]>();
  private nextGpadl = GPADL_FIRST_HANDLE;
  private work: Promise<void> = Promise.resolve();
  private probes: Promise<void>[] = [];
  private nextPerfCpu = 0;
  private interruptPageGpa = -1;
  private readonly slot = new Uint8Array(HV_MESSAGE_SIZE);

  constructor(
    readonly vm: GuestPartition,
    private readonly hooks: DeviceHooks,
    options: VmbusClientOptions = {},
  ) {
    this.maxVersion = options.maxVersion ?? VMBUS_DEFAULT_MAX_VERSION;
    this.controlTimeoutNs = checkControlTimeout(options.controlTimeoutNs ?? VMBUS_CONTROL_TIMEOUT_NS);
    this.isr = installVmbusIsr(vm, {
      lookupChannel: (relid) => {
        const ch = this.channels[relid];
        return ch === undefined ? undefined : () => ch.onInterrupt();
      },
      onMessage: (vcpu, sint) => this.onMessage(vcpu, sint),
    });
  }

  get sim() {
    return this.vm.hypervisor.sim;
  }

  /**
   * `vmbus_negotiate_version` over the try list, newest first: INITIATE_CONTACT
   * (connection id 4 and msg_sint from 5.0, else id 1 and the interrupt
   * page), wait for VERSION_RESPONSE, fall back on refusal. All refused →
   * EDOM.
   */
  async connect(): Promise<number> {
    if (this.connectState === VmbusConnectState.CONNECTED) return this.version;
    this.connectState = VmbusConnectState.CONNECTING;
    const vcpu0 = this.vm.vcpus[0] as Vcpu;
    for (const v of versionsToTry(this.maxVersion)) {
      if (v < VERSION_WIN10_V5 && this.interruptPageGpa < 0) this.interruptPageGpa = this.vm.memory.allocContiguous(1) * PAGE_SIZE;
      const reply = this.expect(`version`);
      await this.post(
        {
          msgtype: CHANNELMSG_INITIATE_CONTACT,
          versionRequested: v,
          targetVcpu: vcpu0.vpIndex,
          contact: v >= VERSION_WIN10_V5 ? { kind: "sint", msgSint: VMBUS_MESSAGE_SINT, msgVtl: 0 } : { kind: "interruptPage", interruptPage: this.interruptPageGpa },
          monitorPage1: this.vm.monitor.serverGpa,
          monitorPage2: this.vm.monitor.clientGpa,
        },
        initiateContactConnectionId(v),
      );
      const r = await reply;
      if (r.msgtype !== CHANNELMSG_VERSION_RESPONSE) continue;
      if (r.versionSupported) {
        this.version = v;
        this.connectState = VmbusConnectState.CONNECTED;
        this.msgConnId = v >= VERSION_WIN10_V5 ? r.msgConnId : VMBUS_MESSAGE_CONNECTION_ID;
        return v;
      }
    }
    this.connectState = VmbusConnectState.DISCONNECTED;
    throw new ErrnoError("EDOM", `vmbus_connect ${this.vm.name}`, `the host refused every version from ${formatVersion(this.maxVersion)} down to 2.4`);
  }

  /**
   * REQUESTOFFERS, then wait for ALLOFFERS_DELIVERED, for every offer to be
   * processed and every probe it started to finish.
   */
  async requestOffers(): Promise<void> {
    this.requireConnected("vmbus_request_offers");
    const done = this.expect("alloffers");
    await this.post({ msgtype: CHANNELMSG_REQUESTOFFERS });
    await done;
    await this.settle();
  }

  /** Waits until queued offer/rescind work and the probes it started are done. */
  async settle(): Promise<void> {
    for (;;) {
      const work = this.work;
      await work;
      const probes = this.probes;
      this.probes = [];
      await Promise.all(probes);
      if (work === this.work && this.probes.length === 0) return;
    }
  }

  /** `vmbus_initiate_unload`: UNLOAD and wait for UNLOAD_RESPONSE (nothing below 3.0). */
  async unload(): Promise<void> {
    if (this.connectState !== VmbusConnectState.CONNECTED) return;
    this.connectState = VmbusConnectState.DISCONNECTED;
    if (!supportsUnload(this.version)) return;
    const done = this.expect("unload");
    await this.post({ msgtype: CHANNELMSG_UNLOAD });
    await done;
  }

  /**
   * Turns on (pollNs > 0) or off (0) the lost-interrupt watchdog of every
   * channel of this VM: the simulator's recovery model for dropped
   * interrupts, not a Linux mechanism (see `GuestChannel`). Off by default,
   * so runs without faults keep their traces. `maxPollNs` (default 16 ×
   * pollNs) bounds the back-off of polls that find nothing.
   */
  setLostInterruptWatchdog(pollNs: number, maxPollNs = pollNs * 16): void {
    if (!Number.isSafeInteger(pollNs) || pollNs < 0) throw new InvalidArgumentError("lost-interrupt watchdog pollNs", pollNs, "must be a non-negative safe integer of nanoseconds");
    if (!Number.isSafeInteger(maxPollNs) || maxPollNs < pollNs) {
      throw new InvalidArgumentError("lost-interrupt watchdog maxPollNs", maxPollNs, `must be a safe integer ≥ pollNs (${pollNs})`);
    }
    this.lostInterruptPollNs = pollNs;
    this.lostInterruptMaxPollNs = maxPollNs;
  }

  /**
   * How long later control requests wait for the host's response (ns of
   * virtual time) before failing with ETIMEDOUT; requests already waiting
   * keep the timeout they started with.
   */
  setControlTimeout(ns: number): void {
    this.controlTimeoutNs = checkControlTimeout(ns);
  }

  /** The channel with this relid, if offered and not released. */
  channel(relid: number): GuestChannel | undefined {
    return Number.isInteger(relid) && relid >= 0 && relid < MAX_CHANNEL_RELIDS ? this.channels[relid] : undefined;
  }

  // --- ChannelControl: what channels ask of the control plane --------------

  async createGpadl(channel: GuestChannel, pfns: readonly number[], byteCount: number): Promise<number> {
    const handle = this.nextGpadl++;
    const msgs = splitGpadl(handle, channel.relid, byteCount, pfns);
    const reply = this.expect(`gpadl ${channel.relid} ${handle}`, channel.relid);
    for (const m of msgs) await this.post(m);
    const r = await reply;
    if (r.msgtype === CHANNELMSG_GPADL_CREATED && r.creationStatus !== 0) {
      throw new ErrnoError("EDQUOT", `vmbus_establish_gpadl ${channel.name}`, `the host answered creation_status 0x${(r.creationStatus >>> 0).toString(16)}`);
    }
    return handle;
  }

  async teardownGpadl(channel: GuestChannel, handle: number): Promise<void> {
    const reply = this.expect(`torndown ${handle}`, channel.relid);
    await this.post({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: channel.relid, gpadl: handle });
    await reply;
  }

  async openChannel(channel: GuestChannel, gpadl: number, downstreamPages: number, userData: Uint8Array): Promise<number> {
    const vp = (this.vm.vcpus[channel.targetCpu] as Vcpu).vpIndex;
    const reply = this.expect(`open ${channel.relid} ${channel.relid}`, channel.relid);
    await this.post({
      msgtype: CHANNELMSG_OPENCHANNEL,
      childRelid: channel.relid,
      openId: channel.relid,
      ringBufferGpadlHandle: gpadl,
      targetVp: vp,
      downstreamRingBufferPageOffset: downstreamPages,
      userData,
    });
    const r = await reply;
    return r.msgtype === CHANNELMSG_OPENCHANNEL_RESULT ? r.status : 0xffff_ffff;
  }

  async closeChannel(channel: GuestChannel): Promise<void> {
    await this.post({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: channel.relid });
  }

  /** MODIFYCHANNEL; from 5.3 wait for the response (non-zero status → error), before that fire and forget. */
  async modifyChannel(channel: GuestChannel, vpIndex: number): Promise<void> {
    const wait = supportsModifyChannelResponse(this.version);
    const reply = wait ? this.expect(`modify ${channel.relid}`, channel.relid) : null;
    await this.post({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: channel.relid, targetVp: vpIndex });
    if (reply === null) return;
    const r = await reply;
    if (r.msgtype === CHANNELMSG_MODIFYCHANNEL_RESPONSE && r.status !== 0) {
      throw new ErrnoError("EAGAIN", `vmbus_send_modifychannel ${channel.name}`, `the host answered status 0x${(r.status >>> 0).toString(16)}`);
    }
  }

  // --- messages --------------------------------------------------------------

  private async post(msg: ChannelMessage, connectionId = this.msgConnId): Promise<void> {
    const bytes = encodeChannelMessage(msg);
    const vcpu = currentVcpu() ?? (this.vm.vcpus[0] as Vcpu);
    this.note("guest→host", msg, bytes);
    const r = await postMessageWithRetry(vcpu, connectionId, VMBUS_MESSAGE_TYPE_CHANNEL, bytes, {
      abortOnInvalidConnectionId: msg.msgtype === CHANNELMSG_INITIATE_CONTACT,
    });
    this.counters.messagesOut++;
    if (r.status !== HV_STATUS_SUCCESS) {
      throw new ErrnoError(
        r.status === 0x12 ? "EINVAL" : "ENOBUFS",
        `vmbus_post_msg ${describeChannelMessage(msg)}`,
        `HvPostMessage failed with status 0x${r.status.toString(16)} after ${r.attempts} attempt(s)`,
      );
    }
  }

  private note(direction: ControlLogEntry["direction"], msg: ChannelMessage, bytes: Uint8Array): void {
    if (this.logEnabled) this.log.push({ timeNs: this.sim.now, direction, text: describeChannelMessage(msg), msgtype: msg.msgtype, bytes });
  }

  /**
   * Registers interest in a response before the request goes out (so it
   * cannot be missed). The promise rejects with ETIMEDOUT after
   * `controlTimeoutNs` of virtual time without one; a response that comes
   * later finds no waiter and is counted unexpected.
   */
  private expect(key: string, relid?: number): Promise<ChannelMessage> {
    const k = relid === undefined ? key : `${key}@${relid}`;
    const p = new Promise<ChannelMessage>((resolve, reject) => {
      const w: Waiter = {
        resolve: (m) => {
          w.timer?.cancel();
          resolve(m);
        },
        reject: (e) => {
          w.timer?.cancel();
          reject(e);
        },
        timer: null,
      };
      w.timer = this.sim.scheduler.schedule(this.controlTimeoutNs, () => this.timeOut(k, w), `${this.vm.name} vmbus ${key} response timeout`);
      const list = this.waiters.get(k);
      if (list === undefined) this.waiters.set(k, [w]);
      else list.push(w);
    });
    // A caller whose request failed to post never awaits the response; its
    // later timeout must not become an unhandled rejection.
    p.catch(() => undefined);
    return p;
  }

  private timeOut(k: string, w: Waiter): void {
    const list = this.waiters.get(k);
    const i = list === undefined ? -1 : list.indexOf(w);
    if (list === undefined || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.waiters.delete(k);
    this.controlTimeouts++;
    w.timer = null;
    w.reject(new ErrnoError("ETIMEDOUT", `vmbus ${this.vm.name} ${k}`, `no response from the host within ${this.controlTimeoutNs} ns of virtual time`));
  }

  /** Takes the oldest waiter of `k`, if any. */
  private takeWaiter(k: string): Waiter | undefined {
    const list = this.waiters.get(k);
    const w = list?.shift();
    if (list !== undefined && list.length === 0) this.waiters.delete(k);
    return w;
  }

  private complete(key: string, relid: number | undefined, msg: ChannelMessage): void {
    const w = this.takeWaiter(relid === undefined ? key : `${key}@${relid}`);
    if (w === undefined) {
      this.counters.unexpectedMessages++;
      return;
    }
    w.resolve(msg);
  }

  /** Fails every request waiting on `relid` (the channel was rescinded). */
  private failWaiters(relid: number, error: unknown): void {
    for (const [k, list] of this.waiters) {
      if (k.endsWith(`@${relid}`)) {
        this.waiters.delete(k);
        for (const w of list) w.reject(error);
      }
    }
  }

  /** `vmbus_on_msg_dpc`: copy the slot, release it, then validate and dispatch the copy. */
  private onMessage(vcpu: Vcpu, sint: number): void {
    const synic = vcpu.synic;
    const type = synic.messageType(sint);
    if (type === HVMSG_NONE) return;
    const raw = synic.copyMessage(sint, this.slot);
    const payloadSize = raw[4] as number;
    const payload = raw.slice(16, 16 + Math.min(payloadSize, 240));
    synic.endOfMessage(sint, type);
    this.counters.messagesIn++;
    if (type !== VMBUS_MESSAGE_TYPE_CHANNEL) {
      this.counters.unexpectedMessages++;
      return;
    }
    let msg: ChannelMessage;
    try {
      msg = decodeChannelMessage(payload, payloadSize, "toGuest");
    } catch (e) {
      if (!(e instanceof VmbusSimError)) throw e;
      // Dropped, as Linux drops a message it cannot use; counted.
      this.counters.malformedMessages++;
      return;
    }
    this.note("host→guest", msg, payload.subarray(0, payloadSize));
    this.dispatch(msg);
  }

  private dispatch(msg: ChannelMessage): void {
    switch (msg.msgtype) {
      case CHANNELMSG_OFFERCHANNEL:
        this.queue(() => this.onOffer(msg));
        return;
      case CHANNELMSG_RESCIND_CHANNELOFFER:
        this.queue(() => this.onRescind(msg.childRelid));
        return;
      case CHANNELMSG_ALLOFFERS_DELIVERED:
        // Resolve after the offers before it have been taken in.
        this.queue(async () => this.complete("alloffers", undefined, msg));
        return;
      case CHANNELMSG_VERSION_RESPONSE:
        this.complete("version", undefined, msg);
        return;
      case CHANNELMSG_OPENCHANNEL_RESULT:
        this.complete(`open ${msg.childRelid} ${msg.openId}`, msg.childRelid, msg);
        return;
      case CHANNELMSG_GPADL_CREATED:
        this.complete(`gpadl ${msg.childRelid} ${msg.gpadl}`, msg.childRelid, msg);
        return;
      case CHANNELMSG_GPADL_TORNDOWN:
        this.completeTorndown(msg.gpadl, msg);
        return;
      case CHANNELMSG_MODIFYCHANNEL_RESPONSE:
        this.complete(`modify ${msg.childRelid}`, msg.childRelid, msg);
        return;
      case CHANNELMSG_UNLOAD_RESPONSE:
        this.complete("unload", undefined, msg);
        return;
      default:
        this.counters.unexpectedMessages++;
    }
  }

  private completeTorndown(gpadl: number, msg: ChannelMessage): void {
    for (const k of this.waiters.keys()) {
      if (k.startsWith(`torndown ${gpadl}@`)) {
        this.takeWaiter(k)?.resolve(msg);
        return;
      }
    }
    this.counters.unexpectedMessages++;
  }

  private queue(fn: () => Promise<void> | void): void {
    this.work = this.work.then(fn).catch((e: unknown) => {
      // Offer work must not stop the queue; the error is a simulator bug
      // or a probe failure already recorded by the driver core.
      this.sim.scheduler.reportError(`${this.vm.name} vmbus offer work`, e);
    });
  }

  /** `vmbus_onoffer` + `vmbus_process_offer`. */
  private onOffer(offer: OfferChannelMessage): void {
    const relid = offer.childRelid;
    if (this.channels[relid] !== undefined) {
      this.counters.droppedOffers++;
      return;
    }
    const primary = this.devices.find((d) => d.primary.offer.ifType.equals(offer.ifType) && d.primary.offer.ifInstance.equals(offer.ifInstance));
    if (primary !== undefined && offer.subChannelIndex === 0) {
      // Same GUIDs as a primary but index 0: Linux drops it with a warning.
      this.counters.droppedOffers++;
      return;
    }
    const cls = deviceClassForOffer(offer.ifType, offer.chnFlags);
    const cpu = this.initVpIndex(cls.perfDevice);
    const ch = new GuestChannel(offer, this, cpu);
    // Publish before anything can open the channel: from here on every
    // vCPU's interrupt handler finds it.
    this.channels[relid] = ch;
    if (primary !== undefined) {
      ch.primary = primary.primary;
      primary.primary.subchannels.push(ch);
      primary.primary.onSubchannel?.(ch);
      return;
    }
    const dev = new VmbusDevice(this.vm, ch, cls);
    this.devices.push(dev);
    this.probes.push(
      this.hooks.add(dev).catch(() => {
        this.counters.probeErrors++;
      }),
    );
  }

  /** `init_vp_index`: performance devices spread over the vCPUs, the rest on vCPU 0. */
  private initVpIndex(perf: boolean): number {
    if (!perf) return 0;
    const cpu = this.nextPerfCpu % this.vm.vcpus.length;
    this.nextPerfCpu++;
    return cpu;
  }

  /** `vmbus_onoffer_rescind`: fail what is outstanding, unbind, release the relid. */
  private async onRescind(relid: number): Promise<void> {
    const ch = this.channel(relid);
    if (ch === undefined || ch.rescinded) return;
    ch.markRescinded();
    this.failWaiters(relid, new ErrnoError("ENODEV", `${ch.name}`, "the channel was rescinded"));
    const dev = this.devices.find((d) => d.primary === ch);
    if (dev !== undefined) {
      for (const sc of ch.subchannels) {
        sc.markRescinded();
        this.failWaiters(sc.relid, new ErrnoError("ENODEV", sc.name, "the primary channel was rescinded"));
      }
      await this.hooks.remove(dev).catch(() => undefined);
      this.devices.splice(this.devices.indexOf(dev), 1);
      for (const sc of [...ch.subchannels]) await this.release(sc);
    }
    await this.release(ch);
  }

  /** `hv_process_channel_removal`: unmap the relid, free what is left, RELID_RELEASED. */
  private async release(ch: GuestChannel): Promise<void> {
    if (ch.state === CHANNEL_OPENED_STATE) await ch.close().catch(() => undefined);
    if (ch.primary !== null) {
      const i = ch.primary.subchannels.indexOf(ch);
      if (i >= 0) ch.primary.subchannels.splice(i, 1);
    }
    this.channels[ch.relid] = undefined;
    await this.post({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: ch.relid });
  }

  private requireConnected(op: string): void {
    if (this.connectState !== VmbusConnectState.CONNECTED) {
      throw new ProtocolError("VMBus client", `${op}: connection state`, this.connectState, "is not CONNECTED (2)");
    }
  }
}
