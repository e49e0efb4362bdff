/**
 * A scripted storvsp for the guest driver's tests: just enough of a VSTOR
 * host (§4 handshake, §6 commands) to drive the guest, built from the
 * protocol codecs, with knobs for what the tests need — refused versions,
 * subchannel limits, missing LUNs, LUNs at any path / target, REPORT LUNS
 * or READ CAPACITY(16) refused, injected sense, swallowed requests answered
 * late, ENUMERATE_BUS. Every request is logged with its raw bytes and the
 * channel it came on.
 *
 * It is deliberately not the project's host VSP (drivers/storvsc/host),
 * which is written separately: the guest is tested against this peer alone.
 */
import { inject, injectable, type DependencyContainer } from "tsyringe";
import {
  GpaDirectRanges,
  HOST_DEVICE_CONFIG,
  HOST_VMBUS_SERVER,
  HV_IDE_GUID,
  HV_SCSI_GUID,
  RingWriter,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
  VmbusSystem,
  registerGuestDriver,
  registerHostDevice,
  type GpaRange,
  type HostChannel,
  type HostChannelHandler,
  type IncomingPacket,
  type VmbusServer,
} from "../../../../core/index.js";
import {
  INQUIRY,
  REPORT_LUNS,
  SCSI_STATUS_CHECK_CONDITION,
  SENSE_INVALID_COMMAND_OPERATION_CODE,
  SENSE_LBA_OUT_OF_RANGE,
  SRB_STATUS_ERROR,
  SRB_STATUS_INVALID_LUN,
  SRB_STATUS_INVALID_REQUEST,
  SRB_STATUS_SUCCESS,
  STATUS_REVISION_MISMATCH,
  STATUS_SUCCESS,
  STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL,
  ScsiCheckConditionError,
  VMSTOR_PROTO_VERSION_WIN8,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_EXECUTE_SRB,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  buildFixedSenseData,
  buildReadCapacity10Data,
  buildReadCapacity16Data,
  buildReportLunsData,
  buildStandardInquiryData,
  decodeVstorPacket,
  encodeVstorPacket,
  makeSrbCompletionPacket,
  makeVstorCompletionPacket,
  parseCdb,
  parseUnmapParameterList,
  srbCdb,
  type ScsiCommand,
  type SenseCode,
  type VmscsiRequest,
  type VstorPacket,
} from "../../../../drivers/storvsc/protocol/index.js";
import { STORVSC_CONFIG, StorvscDriver, type StorvscConfig } from "../../../../drivers/storvsc/guest/index.js";

/** Every supported version is ≥ Win8: 64-byte packets throughout. */
const V = VMSTOR_PROTO_VERSION_WIN8;
const NO_LUNS: ReadonlyMap<number, ScriptedLun> = new Map();

export interface ScriptedLun {
  blocks: bigint;
  blockSize: number;
  vendor: string;
  product: string;
  /** INQUIRY peripheral device type (0 = disk). */
  readonly deviceType: number;
  /** INQUIRY VERSION byte (5 = SPC-3). */
  readonly version: number;
  /** Sparse contents: LBA → one block. Unwritten blocks read as zeros. */
  readonly data: Map<bigint, Uint8Array>;
  /** Returned once to the next command other than INQUIRY / REPORT LUNS (OV's capacity-change UA). */
  pendingUnitAttention: SenseCode | null;
}

/** What the host answers instead of executing a command. */
export interface ScriptedFault {
  readonly srbStatus: number;
  readonly scsiStatus?: number;
  readonly sense?: SenseCode;
}

/** One packet the host received. */
export interface LoggedRequest {
  readonly relid: number;
  readonly subchannelIndex: number;
  readonly type: number;
  readonly flags: number;
  readonly transId: bigint;
  /** The VSTOR packet bytes (the payload after any GPA-direct header). */
  readonly payload: Uint8Array;
  readonly operation: number;
  readonly cdb: Uint8Array | null;
  /** The SRB's address (null for packets without an SRB). */
  readonly pathId: number | null;
  readonly targetId: number | null;
  readonly lun: number | null;
  readonly ranges: readonly GpaRange[];
}

interface Swallowed {
  readonly ch: HostChannel;
  readonly transId: bigint;
  readonly srb: VmscsiRequest;
  readonly ranges: readonly GpaRange[];
}

export class StorScript {
  acceptedVersions: number[] = [0x0602, 0x0600, 0x0501];
  multichannel = true;
  maxSubchannels = 8;
  maxTransferBytes = 0x40000;
  rc16Supported = true;
  /** False: REPORT LUNS gets ILLEGAL REQUEST (invalid opcode), as from a pre-SCSI-3 target. */
  reportLunsSupported = true;
  /** LUNs REPORT LUNS of path 0 / target 0 lists that answer INQUIRY with 0x7F (no LU). */
  phantomLuns: number[] = [];
  /** The LUNs of path 0 / target 0 (the address Hyper-V uses). */
  readonly luns = new Map<number, ScriptedLun>();
  /** The LUNs of every target, by "path:target" ("0:0" is `luns`). */
  readonly targets = new Map<string, Map<number, ScriptedLun>>([["0:0", this.luns]]);
  readonly log: LoggedRequest[] = [];
  /** Decides a fault for a command (checked before it runs). */
  fault: ((cdb: Uint8Array, lun: number) => ScriptedFault | undefined) | null = null;
  /** Returns true for an EXECUTE_SRB the host keeps without answering (see answerSwallowed). */
  swallow: ((cdb: Uint8Array, lun: number) => boolean) | null = null;
  readonly swallowed: Swallowed[] = [];
  readonly opened: HostChannel[] = [];
  readonly closed: HostChannel[] = [];
  primary: HostChannel | null = null;
  device: ScriptedStorvsp | null = null;
  flushes = 0;
  readonly unmapped: { lba: bigint; blocks: number }[] = [];

  addLun(
    lun: number,
    blocks: bigint,
    options: { blockSize?: number; vendor?: string; product?: string; pathId?: number; targetId?: number; deviceType?: number; version?: number } = {},
  ): ScriptedLun {
    const l: ScriptedLun = {
      blocks,
      blockSize: options.blockSize ?? 512,
      vendor: options.vendor ?? "Msft",
      product: options.product ?? "Virtual Disk",
      deviceType: options.deviceType ?? 0,
      version: options.version ?? 5,
      data: new Map(),
      pendingUnitAttention: null,
    };
    const at = `${options.pathId ?? 0}:${options.targetId ?? 0}`;
    let t = this.targets.get(at);
    if (t === undefined) {
      t = new Map();
      this.targets.set(at, t);
    }
    t.set(lun, l);
    return l;
  }

  /** The LUNs at a path / target (empty when none were added there). */
  lunsAt(pathId: number, targetId: number): ReadonlyMap<number, ScriptedLun> {
    return this.targets.get(`${pathId}:${targetId}`) ?? NO_LUNS;
  }

  /** EXECUTE_SRB requests logged so far (optionally of one opcode). */
  srbs(opcode?: number): LoggedRequest[] {
    return this.log.filter((r) => r.operation === VSTOR_OPERATION_EXECUTE_SRB && (opcode === undefined || r.cdb?.[0] === opcode));
  }

  /** Sends the unsolicited ENUMERATE_BUS (trans id 0, no completion requested) on the primary, as OV on hot plug. */
  notifyEnumerateBus(): Promise<void> {
    const ch = this.primary;
    if (ch === null) throw new Error("no open primary channel");
    const payload = encodeVstorPacket({ operation: VSTOR_OPERATION_ENUMERATE_BUS, flags: 0, status: STATUS_SUCCESS, payload: { kind: "none" } }, V);
    return ch.send((w) => w.writeInband(0, payload, 0), RingWriter.packetTotal(0, payload.length));
  }

  /** Answers every swallowed request now (a late completion). */
  answerSwallowed(): void {
    for (const s of this.swallowed.splice(0)) {
      const reply = (this.device as ScriptedStorvsp).execute(s.srb, s.ranges, s.ch);
      complete(s.ch, s.transId, reply);
    }
  }
}

function complete(ch: HostChannel, transId: bigint, pkt: VstorPacket): void {
  const reply = encodeVstorPacket(pkt, V);
  void ch.send((w) => w.writeCompletion(transId, reply), RingWriter.packetTotal(0, reply.length)).catch(() => undefined);
}

@injectable()
export class ScriptedStorvsp implements HostChannelHandler {
  readonly script: StorScript;
  private readonly ranges = new GpaDirectRanges();

  constructor(
    @inject(HOST_DEVICE_CONFIG) config: unknown,
    @inject(HOST_VMBUS_SERVER) private readonly server: VmbusServer,
  ) {
    if (!(config instanceof StorScript)) throw new Error("ScriptedStorvsp needs a StorScript as its config");
    this.script = config;
    config.device = this;
  }

  open(ch: HostChannel): void {
    this.script.opened.push(ch);
    if (ch.subchannelIndex === 0) this.script.primary = ch;
    ch.onPacket((p, c) => this.onPacket(p, c));
  }

  close(ch: HostChannel): void {
    this.script.closed.push(ch);
  }

  private onPacket(p: IncomingPacket, ch: HostChannel): void {
    const s = this.script;
    const ranges = p.type === VM_PKT_DATA_USING_GPA_DIRECT ? this.ranges.parse(p).toRanges() : [];
    const payload = p.data().slice();
    const transId = p.transId;
    const req = decodeVstorPacket(payload, { protocolVersion: V, sender: "guest" });
    const srb = req.payload.kind === "srb" ? req.payload.srb : null;
    s.log.push({
      relid: ch.relid,
      subchannelIndex: ch.subchannelIndex,
      type: p.type,
      flags: p.flags,
      transId,
      payload,
      operation: req.operation,
      cdb: srb === null ? null : srbCdb(srb).slice(),
      pathId: srb === null ? null : srb.pathId,
      targetId: srb === null ? null : srb.targetId,
      lun: srb === null ? null : srb.lun,
      ranges,
    });
    if (p.type !== VM_PKT_DATA_INBAND && p.type !== VM_PKT_DATA_USING_GPA_DIRECT) return;
    switch (req.operation) {
      case VSTOR_OPERATION_BEGIN_INITIALIZATION:
      case VSTOR_OPERATION_END_INITIALIZATION:
        complete(ch, transId, makeVstorCompletionPacket(STATUS_SUCCESS));
        return;
      case VSTOR_OPERATION_QUERY_PROTOCOL_VERSION: {
        const v = req.payload.kind === "version" ? req.payload.version : { majorMinor: 0, revision: 0 };
        const ok = s.acceptedVersions.includes(v.majorMinor);
        complete(ch, transId, makeVstorCompletionPacket(ok ? STATUS_SUCCESS : STATUS_REVISION_MISMATCH, { kind: "version", version: v }));
        return;
      }
      case VSTOR_OPERATION_QUERY_PROPERTIES:
        complete(
          ch,
          transId,
          makeVstorCompletionPacket(STATUS_SUCCESS, {
            kind: "properties",
            properties: {
              maxChannelCount: s.multichannel ? s.maxSubchannels : 0,
              flags: s.multichannel ? STORAGE_CHANNEL_SUPPORTS_MULTI_CHANNEL : 0,
              maxTransferBytes: s.maxTransferBytes,
            },
          }),
        );
        return;
      case VSTOR_OPERATION_CREATE_SUB_CHANNELS: {
        const n = req.payload.kind === "sub-channels" ? req.payload.subChannelCount : 0;
        complete(ch, transId, makeVstorCompletionPacket(STATUS_SUCCESS));
        this.server.offerSubchannels(ch.device, n);
        return;
      }
      case VSTOR_OPERATION_EXECUTE_SRB: {
        if (srb === null) return;
        if (s.swallow?.(srbCdb(srb), srb.lun) === true) {
          s.swallowed.push({ ch, transId, srb, ranges });
          return;
        }
        complete(ch, transId, this.execute(srb, ranges, ch));
        return;
      }
      default:
        return;
    }
  }

  /** Runs one SRB against the scripted LUNs and returns its COMPLETE_IO. */
  execute(srb: VmscsiRequest, ranges: readonly GpaRange[], ch: HostChannel): VstorPacket {
    const s = this.script;
    const cdb = srbCdb(srb);
    const op = cdb[0] ?? 0;
    const view = ranges[0] === undefined ? null : ch.gpaRange(ranges[0], "data");
    const done = (srbStatus: number, transferred: number, extra: { scsiStatus?: number; sense?: SenseCode } = {}): VstorPacket =>
      makeSrbCompletionPacket({
        protocolVersion: V,
        request: srb,
        srbStatus,
        scsiStatus: extra.scsiStatus,
        dataTransferLength: transferred,
        sense: extra.sense === undefined ? undefined : buildFixedSenseData(extra.sense),
      });
    const check = (sense: SenseCode, srbStatus = SRB_STATUS_ERROR): VstorPacket => done(srbStatus, 0, { scsiStatus: SCSI_STATUS_CHECK_CONDITION, sense });
    const dataIn = (bytes: Uint8Array): VstorPacket => {
      const n = Math.min(bytes.length, srb.dataTransferLength);
      view?.write(0, bytes.subarray(0, n));
      return done(SRB_STATUS_SUCCESS, n);
    };
    const here = s.lunsAt(srb.pathId, srb.targetId);
    const lun = here.get(srb.lun);
    if (op === REPORT_LUNS) {
      if (!s.reportLunsSupported) return check(SENSE_INVALID_COMMAND_OPERATION_CODE, SRB_STATUS_INVALID_REQUEST);
      const phantoms = srb.pathId === 0 && srb.targetId === 0 ? s.phantomLuns : [];
      return dataIn(buildReportLunsData([...here.keys(), ...phantoms].sort((a, b) => a - b)));
    }
    if (op === INQUIRY) {
      return dataIn(
        lun === undefined
          ? buildStandardInquiryData({ peripheralQualifier: 3, peripheralDeviceType: 0x1f, vendor: "", product: "", revision: "" })
          : buildStandardInquiryData({ peripheralDeviceType: lun.deviceType, version: lun.version, vendor: lun.vendor, product: lun.product, revision: "1.0" }),
      );
    }
    if (lun === undefined) return done(SRB_STATUS_INVALID_LUN, 0, { scsiStatus: SCSI_STATUS_CHECK_CONDITION });
    const f = s.fault?.(cdb, srb.lun);
    if (f !== undefined) return done(f.srbStatus, 0, { scsiStatus: f.scsiStatus ?? (f.sense ? SCSI_STATUS_CHECK_CONDITION : 0), sense: f.sense });
    if (lun.pendingUnitAttention !== null) {
      const ua = lun.pendingUnitAttention;
      lun.pendingUnitAttention = null;
      return check(ua);
    }
    let cmd: ScsiCommand;
    try {
      cmd = parseCdb(cdb, { blockSize: lun.blockSize });
    } catch (e) {
      if (e instanceof ScsiCheckConditionError) return check(e.sense, SRB_STATUS_INVALID_REQUEST);
      throw e;
    }
    const bs = lun.blockSize;
    switch (cmd.kind) {
      case "READ_CAPACITY_16":
        if (!s.rc16Supported) return check(SENSE_INVALID_COMMAND_OPERATION_CODE, SRB_STATUS_INVALID_REQUEST);
        return dataIn(buildReadCapacity16Data({ lastLba: lun.blocks - 1n, blockLength: bs, lbpme: true }));
      case "READ_CAPACITY_10":
        return dataIn(buildReadCapacity10Data(lun.blocks - 1n, bs));
      case "READ":
      case "WRITE": {
        if (cmd.lba + BigInt(cmd.blocks) > lun.blocks) return check(SENSE_LBA_OUT_OF_RANGE, SRB_STATUS_INVALID_REQUEST);
        const bytes = cmd.blocks * bs;
        if (view === null || view.length < bytes) return check(SENSE_LBA_OUT_OF_RANGE, SRB_STATUS_INVALID_REQUEST);
        if (cmd.kind === "READ") {
          const out = new Uint8Array(bytes);
          for (let i = 0; i < cmd.blocks; i++) {
            const b = lun.data.get(cmd.lba + BigInt(i));
            if (b !== undefined) out.set(b, i * bs);
          }
          return dataIn(out);
        }
        const data = view.read(0, bytes);
        for (let i = 0; i < cmd.blocks; i++) lun.data.set(cmd.lba + BigInt(i), data.slice(i * bs, (i + 1) * bs));
        return done(SRB_STATUS_SUCCESS, bytes);
      }
      case "SYNCHRONIZE_CACHE":
        s.flushes++;
        return done(SRB_STATUS_SUCCESS, 0);
      case "UNMAP": {
        const list = parseUnmapParameterList((view as NonNullable<typeof view>).read(0, cmd.parameterListLength));
        for (const d of list) {
          s.unmapped.push(d);
          for (let i = 0n; i < BigInt(d.blocks); i++) lun.data.delete(d.lba + i);
        }
        return done(SRB_STATUS_SUCCESS, cmd.parameterListLength);
      }
      default:
        return check(SENSE_INVALID_COMMAND_OPERATION_CODE, SRB_STATUS_INVALID_REQUEST);
    }
  }
}

/** The test plugin: the real guest driver, the scripted host for the SCSI (and IDE) class. */
export function scriptedPlugin(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "storvsc", classIds: [HV_SCSI_GUID, HV_IDE_GUID] }, StorvscDriver);
  registerHostDevice(c, { name: "scripted-storvsp", classId: HV_SCSI_GUID, subchannelLimit: 16 }, ScriptedStorvsp);
  registerHostDevice(c, { name: "scripted-ide", classId: HV_IDE_GUID, subchannelLimit: 0 }, ScriptedStorvsp);
}

export interface BootOptions {
  readonly vcpus?: number;
  readonly config?: StorvscConfig;
  readonly ide?: { readonly instanceId: string };
}

/** A VM with one scripted controller, booted (the driver probed). */
export async function bootScripted(script: StorScript, options: BootOptions = {}) {
  const sys = new VmbusSystem({ seed: 11, plugins: [scriptedPlugin] });
  if (options.config !== undefined) sys.root.register(STORVSC_CONFIG, { useValue: options.config });
  const vm = sys.addVm({ name: "vm1", vcpus: options.vcpus ?? 1 });
  if (options.ide !== undefined) sys.addHostDevice(vm, "scripted-ide", { config: script, instanceId: options.ide.instanceId });
  else sys.addHostDevice(vm, "scripted-storvsp", { config: script });
  await sys.boot();
  const device = vm.client.devices[0];
  if (device === undefined) throw new Error("no device offered");
  const drv = vm.driverOf<StorvscDriver>(device);
  return { sys, vm, device, drv };
}

/** A deterministic byte pattern (an LCG; the tests need no randomness source). */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
