/**
 * `storvsc`: completions and notifications from a hostile host to the guest
 * SCSI driver (storvsc-netvsc.md §4, §5.2, §5.3, §7), through the scripted
 * storvsp of test/drivers/storvsc/guest/scripted-host.ts.
 *
 * The victim controller boots against a host whose answers are themselves
 * fuzzed (accepted versions, multichannel, sub-channel and transfer limits,
 * LUN list, capacities and block sizes, READ CAPACITY(16) support), then the
 * host keeps every EXECUTE_SRB and answers it when the input says: the
 * COMPLETE_IO a correct host would send, with its VSTOR and SRB fields
 * corrupted (operation, status, SRB/SCSI status, data_transfer_length far
 * beyond the buffer, sense length and bytes), truncated or extended, under
 * the right, another, a zero or a huge transaction id, twice, or as another
 * packet kind; it scribbles over the request's data buffer, and sends
 * unsolicited packets (ENUMERATE_BUS, REMOVE_DEVICE, garbage) that trigger
 * rescans. At the end it answers everything it still holds correctly.
 *
 * Properties: typed errors only; every disk request of the guest settles
 * (value or typed error, timeouts included) and the driver holds no command
 * afterwards; read data carries nothing of the guest's secret pages; a
 * second, honest controller's disk still writes and reads back; secret
 * pages unchanged.
 */
import fc from "fast-check";
import { RingWriter, VM_PKT_DATA_INBAND, VmbusSystem, type HostChannel } from "../../core/index.js";
import { STORVSC_CONFIG, type ScsiDisk, type StorvscDriver } from "../../drivers/storvsc/guest/index.js";
import {
  STATUS_SUCCESS,
  VMSTOR_PROTO_VERSION_WIN8,
  VSTOR_OPERATION_COMPLETE_IO,
  VSTOR_OPERATION_ENUMERATE_BUS,
  VSTOR_OPERATION_REMOVE_DEVICE,
  encodeVstorPacket,
} from "../../drivers/storvsc/protocol/index.js";
import { StorScript, scriptedPlugin, pattern } from "../../test/drivers/storvsc/guest/scripted-host.js";
import { applyMutations, interestingInt, mutations, type Mutation } from "../lib/mutate.js";
import { FuzzViolation, SecretPages, SimDriver, requireTyped, typedOnly } from "../lib/oracle.js";
import { packetShape, preparePacket, sendCorrupted, type PacketContext, type PacketShape } from "../lib/packets.js";
import { defineTarget, type Tally } from "../lib/target.js";
import { VSTOR_FIELDS } from "../lib/vstor.js";

const VICTIM_ID = "5c0ff5e1-0000-4000-8000-000000000001";
const BYSTANDER_ID = "5c0ff5e1-0000-4000-8000-000000000002";
const TIMEOUT_NS = 20_000_000;

export interface HostKnobs {
  readonly versions: readonly number[];
  readonly multichannel: boolean;
  readonly maxSubchannels: number;
  readonly maxTransferBytes: number;
  readonly rc16: boolean;
  readonly luns: readonly { readonly lun: number; readonly blocks: bigint; readonly blockSize: number }[];
  readonly phantom: readonly number[];
}

const knobs: fc.Arbitrary<HostKnobs> = fc.oneof(
  // An honest host most of the time: the fuzzing is in the completions.
  {
    weight: 3,
    arbitrary: fc.constant<HostKnobs>({ versions: [0x0602, 0x0600, 0x0501], multichannel: true, maxSubchannels: 1, maxTransferBytes: 0x40000, rc16: true, luns: [{ lun: 0, blocks: 2048n, blockSize: 512 }], phantom: [] }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      versions: fc.subarray([0x0602, 0x0600, 0x0501, 0x0402, 0x0200]),
      multichannel: fc.boolean(),
      maxSubchannels: fc.oneof(fc.constantFrom(0, 1, 2, 64, 0xffff), fc.nat(8)),
      maxTransferBytes: fc.constantFrom(0, 1, 511, 4096, 0x40000, 0x100000, 0xffff_ffff),
      rc16: fc.boolean(),
      luns: fc.uniqueArray(
        fc.record({
          lun: fc.nat(7),
          blocks: fc.constantFrom(0n, 1n, 8n, 2048n, 0xffff_ffffn, 0x1_0000_0000n, 0xffff_ffff_ffff_ffffn),
          blockSize: fc.constantFrom(512, 4096, 520, 1, 0, 0x10000, 0x8000_0000),
        }),
        { selector: (l) => l.lun, maxLength: 3 },
      ),
      phantom: fc.subarray([1, 3, 6]),
    }),
  },
);

export type DiskOp = { readonly op: "read" | "write" | "unmap"; readonly lba: number; readonly blocks: number } | { readonly op: "flush" };

export type StorvscStep =
  | { readonly kind: "io"; readonly disk: number; readonly io: DiskOp }
  /** Answer the n-th request the host holds, corrupted. */
  | {
      readonly kind: "answer";
      readonly which: number;
      readonly muts: readonly Mutation[];
      readonly id: "right" | "other" | "zero" | "huge" | "twice";
      readonly shape: PacketShape | "completion";
      readonly ringMuts: readonly Mutation[];
      readonly scribble: Uint8Array | null;
    }
  | { readonly kind: "unsolicited"; readonly op: number; readonly muts: readonly Mutation[]; readonly transId: bigint; readonly onSub: boolean }
  | { readonly kind: "run"; readonly ns: number };

export interface StorvscInput {
  readonly knobs: HostKnobs;
  readonly steps: readonly StorvscStep[];
}

const diskOp: fc.Arbitrary<DiskOp> = fc.oneof(
  fc.record({ op: fc.constantFrom("read" as const, "write" as const, "unmap" as const), lba: interestingInt(4096), blocks: fc.oneof(fc.constantFrom(0, 1, 8, 600), fc.nat(16)) }),
  fc.constant<DiskOp>({ op: "flush" }),
);

const stepArb: fc.Arbitrary<StorvscStep> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("io" as const), disk: fc.nat(3), io: diskOp }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("answer" as const),
      which: fc.nat(7),
      muts: mutations(3, { noneWeight: 1 }),
      id: fc.oneof({ weight: 6, arbitrary: fc.constant("right" as const) }, { weight: 1, arbitrary: fc.constantFrom("other" as const, "zero" as const, "huge" as const, "twice" as const) }),
      shape: fc.oneof({ weight: 8, arbitrary: fc.constant("completion" as const) }, { weight: 1, arbitrary: packetShape }),
      ringMuts: mutations(2, { rawWeight: 0, noneWeight: 6 }),
      scribble: fc.option(fc.uint8Array({ minLength: 1, maxLength: 64 }), { nil: null, freq: 5 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("unsolicited" as const),
      op: fc.constantFrom(VSTOR_OPERATION_ENUMERATE_BUS, VSTOR_OPERATION_REMOVE_DEVICE, VSTOR_OPERATION_COMPLETE_IO, 0, 99),
      muts: mutations(2),
      transId: fc.constantFrom(0n, 0n, 0n, 1n, 0xffff_ffff_ffff_ffffn),
      onSub: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: fc.constantFrom(10_000, 1_000_000, TIMEOUT_NS + 1_000_000) }) },
);

const inputArb: fc.Arbitrary<StorvscInput> = fc.record({ knobs, steps: fc.array(stepArb, { minLength: 1, maxLength: 14 }) });

interface World {
  readonly sys: VmbusSystem;
  readonly script: StorScript;
  readonly victim: StorvscDriver | undefined;
  readonly bystander: StorvscDriver;
  readonly secrets: SecretPages;
  readonly sim: SimDriver;
}

async function boot(k: HostKnobs): Promise<World> {
  const sys = new VmbusSystem({ seed: 11, plugins: [scriptedPlugin] });
  sys.root.register(STORVSC_CONFIG, { useValue: { requestTimeoutNs: TIMEOUT_NS, ringBytes: 64 * 1024 } });
  const vm = sys.addVm({ name: "vm1", vcpus: 2 });
  const script = new StorScript();
  script.acceptedVersions = [...k.versions];
  script.multichannel = k.multichannel;
  script.maxSubchannels = k.maxSubchannels;
  script.maxTransferBytes = k.maxTransferBytes;
  script.rc16Supported = k.rc16;
  script.phantomLuns = [...k.phantom];
  for (const l of k.luns) {
    script.addLun(l.lun, l.blocks, { blockSize: l.blockSize });
  }
  const honest = new StorScript();
  honest.addLun(0, 2048n);
  sys.addHostDevice(vm, "scripted-storvsp", { config: script, instanceId: VICTIM_ID });
  sys.addHostDevice(vm, "scripted-storvsp", { config: honest, instanceId: BYSTANDER_ID });
  const sim = new SimDriver(sys.sim.scheduler);
  // The victim's probe may fail (that is its business); the boot itself must not throw.
  // What `sys.boot()` does, under the fuzz driver's run loop.
  const booted = await sim.settle(
    (async () => {
      await vm.client.connect();
      await vm.client.requestOffers();
    })(),
    1_000_000_000,
    "boot",
  );
  if (!booted.ok) throw new FuzzViolation("bystander", `boot failed: ${booted.error.message}`);
  const driverOf = (id: string): StorvscDriver | undefined => {
    const dev = vm.client.devices.find((d) => d.primary.offer.ifInstance.toString() === id);
    return dev === undefined ? undefined : vm.driverOf<StorvscDriver>(dev);
  };
  const bystander = driverOf(BYSTANDER_ID);
  if (bystander === undefined || bystander.disks.length === 0) throw new FuzzViolation("bystander", "the honest controller has no disk after boot");
  return { sys, script, victim: driverOf(VICTIM_ID), bystander, secrets: SecretPages.plant(vm.partition.memory, 4), sim };
}

function startIo(disk: ScsiDisk, io: DiskOp): Promise<Uint8Array | void> {
  switch (io.op) {
    case "read":
      return disk.read(io.lba, io.blocks);
    case "write":
      return disk.write(io.lba, pattern(io.blocks * disk.blockSize, io.lba + 1));
    case "unmap":
      return disk.unmap(io.lba, io.blocks);
    case "flush":
      return disk.flush();
  }
}

function answer(w: World, s: Extract<StorvscStep, { kind: "answer" }>, owed: { ch: HostChannel; transId: bigint; bytes: Uint8Array }[], tally: Tally): void {
  const held = w.script.swallowed;
  if (held.length === 0) return;
  const [h] = held.splice(s.which % held.length, 1);
  if (h === undefined) return;
  const device = w.script.device;
  if (device === null) return;
  // What an honest host answers (it moves the data through the request's range).
  const correct = typedOnly("scripted execute", () => encodeVstorPacket(device.execute(h.srb, h.ranges, h.ch), VMSTOR_PROTO_VERSION_WIN8));
  if (!correct.ok) {
    tally.add("requests the scripted host could not execute");
    return;
  }
  if (s.scribble !== null && h.ranges[0] !== undefined) {
    typedOnly("scribble", () => h.ch.gpaRange(h.ranges[0]!, "scribble").write(0, s.scribble!.subarray(0, h.ranges[0]!.byteCount)));
  }
  const bytes = applyMutations(correct.value, VSTOR_FIELDS, s.muts);
  const ep = h.ch.endpoint;
  if (ep === null || ep.closed) return;
  const ids = [h.transId, ...held.map((x) => x.transId)];
  const transId = s.id === "right" || s.id === "twice" ? h.transId : s.id === "other" ? (ids[1] ?? h.transId + 1n) : s.id === "zero" ? 0n : 0xffff_ffff_ffff_fff0n;
  // The right answer is still owed when this one names another id or is not a completion.
  if (transId !== h.transId || s.shape !== "completion") owed.push({ ch: h.ch, transId: h.transId, bytes: correct.value });
  const shape: PacketShape = s.shape === "completion" ? { kind: "completion" } : s.shape;
  const ctx: PacketContext = { pool: [], secrets: w.secrets, ids: () => [transId] };
  for (let n = 0; n < (s.id === "twice" ? 2 : 1); n++) {
    const p = preparePacket({ shape, flags: 0, transId: { kind: "hint", index: 0 }, payload: bytes, muts: s.ringMuts }, ctx, VSTOR_FIELDS);
    const r = typedOnly("hostile completion", () => sendCorrupted(ep, p, s.ringMuts));
    if (r.ok) r.value.sent.catch((e: unknown) => requireTyped(e, "hostile completion send"));
  }
  tally.add(`answers ${s.id}${s.muts.length > 0 ? " corrupted" : ""}`);
}

function unsolicited(w: World, s: Extract<StorvscStep, { kind: "unsolicited" }>): void {
  const chs = w.script.opened.filter((c) => c.state === "open");
  const ch = s.onSub ? (chs.find((c) => c.subchannelIndex !== 0) ?? chs[0]) : chs[0];
  if (ch === undefined) return;
  const base = encodeVstorPacket({ operation: s.op, flags: 0, status: STATUS_SUCCESS, payload: { kind: "none" } }, VMSTOR_PROTO_VERSION_WIN8);
  const bytes = applyMutations(base, VSTOR_FIELDS, s.muts);
  const r = typedOnly("unsolicited send", () => ch.send((wr) => wr.writePacket(VM_PKT_DATA_INBAND, 0, s.transId, 0, bytes), RingWriter.packetTotal(0, bytes.length)));
  if (r.ok) r.value.catch((e: unknown) => requireTyped(e, "unsolicited send"));
}

/**
 * Answers every request the host still holds, correctly. A request whose
 * buffer the guest already reused (its id was completed early by a wrong-id
 * answer) may not execute — the scripted host refuses a garbage UNMAP list
 * with a typed error — and is left to the guest's timeout.
 */
function answerHeld(w: World, tally: Tally): void {
  const device = w.script.device;
  if (device === null) return;
  for (const h of w.script.swallowed.splice(0)) {
    const reply = typedOnly("scripted execute", () => encodeVstorPacket(device.execute(h.srb, h.ranges, h.ch), VMSTOR_PROTO_VERSION_WIN8));
    if (!reply.ok) {
      tally.add("held requests left to time out");
      continue;
    }
    if (h.ch.endpoint === null) continue;
    h.ch.send((wr) => wr.writeCompletion(h.transId, reply.value), RingWriter.packetTotal(0, reply.value.length)).catch((e: unknown) => requireTyped(e, "final completion"));
  }
}

async function run(input: StorvscInput, tally: Tally): Promise<void> {
  const w = await boot(input.knobs);
  const victimDisks = w.victim?.disks ?? [];
  tally.add(w.victim === undefined || w.victim.removed ? "victim probe failed" : `victim disks ${victimDisks.length}`);
  w.script.swallow = () => true;
  const ios: { what: string; p: Promise<Uint8Array | void> }[] = [];
  const owed: { ch: HostChannel; transId: bigint; bytes: Uint8Array }[] = [];
  const reads: Uint8Array[] = [];
  for (const s of input.steps) {
    switch (s.kind) {
      case "io": {
        const disk = victimDisks[s.disk % Math.max(1, victimDisks.length)];
        if (disk === undefined) break;
        const r = typedOnly("victim disk request", () => startIo(disk, s.io));
        if (!r.ok) break;
        r.value.then((v) => v instanceof Uint8Array && reads.push(v), () => undefined);
        ios.push({ what: `${s.io.op} on ${disk.name}`, p: r.value });
        break;
      }
      case "answer":
        answer(w, s, owed, tally);
        break;
      case "unsolicited":
        unsolicited(w, s);
        break;
      case "run":
        await w.sim.runFor(s.ns, "storvsc step");
        break;
    }
    await w.sim.runFor(20_000, "storvsc step");
  }
  // The host answers what it still holds, and what it owes after answering with a wrong id.
  w.script.swallow = null;
  answerHeld(w, tally);
  for (const o of owed) {
    if (o.ch.endpoint === null) continue;
    o.ch.send((wr) => wr.writeCompletion(o.transId, o.bytes), RingWriter.packetTotal(0, o.bytes.length)).catch((e: unknown) => requireTyped(e, "owed completion"));
  }
  for (const io of ios) {
    const r = await w.sim.settle(io.p, 4 * TIMEOUT_NS, `victim ${io.what}`);
    tally.add(r.ok ? `victim ${io.what.split(" ")[0] ?? ""} ok` : `victim I/O failed: ${r.error.code}`);
  }
  await w.sim.runFor(2 * TIMEOUT_NS, "after the hostile completions");
  // Rescans the hostile host triggered may have sent commands since: answered now, they end too.
  answerHeld(w, tally);
  await w.sim.runFor(2 * TIMEOUT_NS, "after the hostile completions");
  if (w.victim !== undefined && w.victim.outstandingCommands !== 0) {
    throw new FuzzViolation("completions", `the victim driver still holds ${w.victim.outstandingCommands} command(s) after every request was answered or timed out`);
  }
  if (w.victim !== undefined && w.victim.lastRescanError !== null) requireTyped(w.victim.lastRescanError, "victim rescan");
  for (const d of reads) w.secrets.assertNotLeaked(d, "data the victim disk read");
  tally.add("victim late completions", w.victim?.stats.lateCompletions ?? 0);
  tally.add("victim timeouts", w.victim?.stats.timeouts ?? 0);
  tally.add("victim dropped packets", w.victim?.stats.droppedPackets ?? 0);
  // The honest controller: write and read back.
  const disk = w.bystander.disks[0];
  if (disk === undefined) throw new FuzzViolation("bystander", "the honest controller lost its disk");
  const data = pattern(4096, input.steps.length);
  await w.sim.expectOk(disk.write(8, data), 4 * TIMEOUT_NS, "bystander write");
  const back = await w.sim.expectOk(disk.read(8, 4096 / disk.blockSize), 4 * TIMEOUT_NS, "bystander read");
  if (!Buffer.from(back).equals(Buffer.from(data))) throw new FuzzViolation("bystander", "the honest controller read back different data");
  w.secrets.verify("after the hostile completions");
  w.sim.finish();
}

export const storvscTarget = defineTarget<StorvscInput>({
  name: "storvsc",
  title: "hostile host → storvsc (COMPLETE_IO completions, notifications, handshake answers)",
  corrupts:
    "COMPLETE_IO packets (operation, NTSTATUS, SRB status, SCSI status, data_transfer_length, sense length and bytes, size) sent under right/other/zero/huge ids, twice or as other packet kinds; the data buffer; unsolicited ENUMERATE_BUS/REMOVE_DEVICE/garbage; the handshake's versions, channel properties, LUN list, capacities and block sizes",
  arbitrary: inputArb,
  run,
});
