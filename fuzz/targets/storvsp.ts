/**
 * `storvsp`: VSTOR packets and SCSI CDBs from a hostile guest to the host's
 * SCSI controller (storvsc-netvsc.md §4, §5, §8), through the scripted guest
 * of test/drivers/storvsc/host/harness.ts after a complete handshake with
 * two sub-channels.
 *
 * The victim is a sub-channel (or, less often, the primary). Each step
 * sends one VSTOR packet built from the layouts — every guest operation,
 * SRBs with every command the host answers and raw CDBs — with its VSTOR,
 * SRB and CDB fields corrupted, in any VMBus packet kind (inband, GPA
 * direct in both layouts with ranges over the guest's I/O pool or outside
 * memory, transfer pages, completions, unknown types), with any flags and
 * transaction id, and the descriptor and GPA-range header corrupted in the
 * ring.
 *
 * Properties: typed errors only; every request the host took got exactly
 * one completion (or was dropped because its channel closed): completions +
 * dropped + in flight = requests taken; every channel still open — the
 * victim included when it survived — writes and reads back data; secret
 * guest pages unchanged and their canary nowhere on the disks.
 */
import fc from "fast-check";
import { PAGE_SIZE, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, type GuestChannel } from "../../core/index.js";
import { buildReadCdb, buildWriteCdb, VMSTOR_PROTO_VERSION_WIN10 } from "../../drivers/storvsc/protocol/index.js";
import { bootStorvsp, pattern, type ScriptedGuest } from "../../test/drivers/storvsc/host/harness.js";
import { applyMutations, mutations, type Mutation } from "../lib/mutate.js";
import { FuzzViolation, SecretPages, SimDriver, requireTyped, typedOnly } from "../lib/oracle.js";
import { packetShape, preparePacket, sendCorrupted, transIdSpec, type PacketContext, type PacketShape, type PacketSpec } from "../lib/packets.js";
import { defineTarget, type Tally } from "../lib/target.js";
import { VSTOR_FIELDS, buildVstor, vstorSpec, type VstorSpec } from "../lib/vstor.js";

const DISK_BYTES = 256 << 10;
const POOL_PAGES = 64;

export interface StorvspStep {
  readonly vstor: VstorSpec;
  /** Corruption of the VSTOR packet before it is sent (fields, truncation, extension, raw bytes). */
  readonly vstorMuts: readonly Mutation[];
  /** How it travels; GPA direct most often, as Linux sends I/O. */
  readonly shape: PacketShape | "gpa";
  readonly flags: number;
  readonly transId: PacketSpec["transId"];
  /** Corruption in the ring: descriptor, GPA-direct header, VSTOR fields. */
  readonly ringMuts: readonly Mutation[];
  /** Bytes put at the start of the data buffer (an UNMAP parameter list, write data). */
  readonly data: Uint8Array;
  /** Where the data buffer starts in the pool and in its first page. */
  readonly poolIndex: number;
  readonly byteOffset: number;
  readonly onVictim: boolean;
}

export interface StorvspInput {
  readonly victim: "subchannel" | "primary";
  readonly steps: readonly StorvspStep[];
}

const step: fc.Arbitrary<StorvspStep> = fc.record({
  vstor: vstorSpec,
  vstorMuts: mutations(3, { noneWeight: 3 }),
  shape: fc.oneof(
    { weight: 4, arbitrary: fc.constant("gpa" as const) },
    { weight: 3, arbitrary: fc.constant<PacketShape>({ kind: "inband" }) },
    { weight: 1, arbitrary: packetShape },
  ),
  flags: fc.oneof({ weight: 8, arbitrary: fc.constant(VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) }, { weight: 1, arbitrary: fc.constantFrom(0, 3, 0x8001) }),
  transId: transIdSpec,
  ringMuts: mutations(2, { rawWeight: 0, noneWeight: 9 }),
  data: fc.uint8Array({ maxLength: 64 }),
  poolIndex: fc.nat(POOL_PAGES - 1),
  byteOffset: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(8, 512, 4095) }),
  onVictim: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
});

const input: fc.Arbitrary<StorvspInput> = fc.record({
  victim: fc.oneof({ weight: 3, arbitrary: fc.constant("subchannel" as const) }, { weight: 1, arbitrary: fc.constant("primary" as const) }),
  steps: fc.array(step, { minLength: 1, maxLength: 10 }),
});

interface World {
  readonly g: ScriptedGuest;
  readonly channels: readonly GuestChannel[];
  readonly victim: GuestChannel;
  readonly pool: readonly number[];
  readonly secrets: SecretPages;
  readonly sim: SimDriver;
}

async function boot(victim: StorvspInput["victim"]): Promise<World> {
  const g = await bootStorvsp({ disks: [{ kind: "memory", sizeBytes: DISK_BYTES }, { kind: "memory", sizeBytes: DISK_BYTES, readOnly: true }] });
  await g.handshake(VMSTOR_PROTO_VERSION_WIN10, 2);
  const subs = await g.openSubchannels(2);
  const mem = g.vm.partition.memory;
  const first = mem.allocContiguous(POOL_PAGES);
  const pool = Array.from({ length: POOL_PAGES }, (_, i) => first + i);
  for (const pfn of pool) mem.write(pfn * PAGE_SIZE, pattern(PAGE_SIZE, pfn));
  const channels = [g.primary, ...subs];
  return {
    g,
    channels,
    victim: victim === "primary" ? g.primary : (subs[0] as GuestChannel),
    pool,
    secrets: SecretPages.plant(mem, 4),
    sim: new SimDriver(g.sys.sim.scheduler),
  };
}

function sendStep(w: World, s: StorvspStep, tally: Tally): void {
  const ch = s.onVictim ? w.victim : (w.channels[2] as GuestChannel);
  const ep = ch.endpoint;
  if (ep === null || ep.closed || ch.rescinded) return;
  const built = typedOnly("buildVstor", () => buildVstor(s.vstor, BigInt(DISK_BYTES / 512)));
  if (!built.ok) return;
  const payload = applyMutations(built.value.bytes, VSTOR_FIELDS, s.vstorMuts);
  const mem = w.g.vm.partition.memory;
  const firstPfn = w.pool[s.poolIndex] as number;
  if (s.data.length > 0) mem.write(firstPfn * PAGE_SIZE + s.byteOffset, s.data.subarray(0, PAGE_SIZE - s.byteOffset));
  const length = Math.max(1, Math.min(built.value.dataLength, (POOL_PAGES - s.poolIndex) * PAGE_SIZE - s.byteOffset));
  const shape: PacketShape =
    s.shape === "gpa" ? { kind: "mpb", ranges: [{ byteOffset: s.byteOffset, byteCount: length, firstPfn: { kind: "pool", index: s.poolIndex } }] } : s.shape;
  const ctx: PacketContext = { pool: w.pool, secrets: w.secrets, ids: () => [1n, 2n, 0n] };
  const p = preparePacket({ shape, flags: s.flags, transId: s.transId, payload, muts: s.ringMuts }, ctx, VSTOR_FIELDS);
  const r = typedOnly("send a hostile VSTOR packet", () => sendCorrupted(ep, p, s.ringMuts));
  if (!r.ok) {
    tally.add(`send refused: ${r.error.code}`);
    return;
  }
  r.value.sent.catch((e: unknown) => requireTyped(e, "hostile VSTOR send"));
  tally.add(`sent ${shape.kind}`);
}

/** Writes then reads back 8 blocks on `ch`; both must succeed and the data must match. */
async function ioWorks(w: World, ch: GuestChannel, seed: number): Promise<void> {
  const data = pattern(4096, seed);
  const lba = 16n + BigInt(seed % 64) * 8n;
  const wr = await w.sim.expectOk(w.g.startSrb(buildWriteCdb(10, lba, 8), { out: data, channel: ch }), 50_000_000, `write on ${ch.name}`);
  if (wr.srb.srbStatus !== 0x01) throw new FuzzViolation("bystander", `write on ${ch.name} ended with SRB status 0x${wr.srb.srbStatus.toString(16)}`);
  const rd = await w.sim.expectOk(w.g.startSrb(buildReadCdb(10, lba, 8), { inLength: 4096, channel: ch }), 50_000_000, `read on ${ch.name}`);
  if (rd.srb.srbStatus !== 0x01 || !Buffer.from(rd.data).equals(Buffer.from(data))) {
    throw new FuzzViolation("bystander", `read back on ${ch.name} differs (SRB status 0x${rd.srb.srbStatus.toString(16)})`);
  }
}

async function run(inp: StorvspInput, tally: Tally): Promise<void> {
  const w = await boot(inp.victim);
  const vsp = w.g.vsp;
  for (const s of inp.steps) {
    sendStep(w, s, tally);
    await w.sim.runFor(50_000, "storvsp step");
  }
  await w.sim.runFor(5_000_000, "after the hostile VSTOR packets");
  const c = vsp.counters;
  // Exactly one answer per request taken: a second completion, or a lost one, breaks the sum.
  if (c.completions + c.completionsDropped + c.inFlight !== c.requests + c.controlRequests || c.inFlight !== 0) {
    throw new FuzzViolation(
      "completions",
      `storvsp took ${c.requests} SRBs + ${c.controlRequests} control requests but wrote ${c.completions} completions, dropped ${c.completionsDropped}, has ${c.inFlight} in flight`,
    );
  }
  if (vsp.lastFatalError !== null) {
    requireTyped(vsp.lastFatalError, "storvsp lastFatalError");
    tally.add(`channel failed: ${vsp.lastFatalError.code} ${"field" in vsp.lastFatalError ? String(vsp.lastFatalError.field) : ""}`);
  }
  for (const [k, n] of Object.entries(c.errors)) tally.add(`storvsp ${k}`, n);
  // Every channel still there serves I/O, the attacked one included.
  const alive = w.channels.filter((ch) => !ch.rescinded);
  if (inp.victim === "subchannel" && w.g.primary.rescinded) {
    throw new FuzzViolation("bystander", "the primary channel was rescinded though the attack was on sub-channels");
  }
  for (const [i, ch] of alive.entries()) await ioWorks(w, ch, i + inp.steps.length);
  tally.add("channels alive at the end", alive.length);
  w.secrets.verify("after the hostile VSTOR packets");
  // LUN 1 is read-only: only LUN 0 can hold what the host read from guest memory.
  const disk = vsp.lunAt(0);
  if (disk !== undefined) {
    const all = new Uint8Array(DISK_BYTES);
    await disk.disk.base.read(0, DISK_BYTES / 512, all);
    w.secrets.assertNotLeaked(all, "disk LUN 0");
  }
  w.sim.finish();
}

export const storvspTarget = defineTarget<StorvspInput>({
  name: "storvsp",
  title: "hostile guest → storvsp (VSTOR packets and SCSI CDBs)",
  corrupts:
    "VSTOR header (operation, flags, status), SRB fields (length, path/target/lun, cdb_length, sense length, data_in, data_transfer_length, Win8 extension), CDB bytes (opcode, LBA, length), union members (version, sub-channel count), packet kind, flags, trans_id, GPA ranges (count, byte count/offset, PFNs outside memory), sizes (truncated, extended, raw)",
  arbitrary: input,
  run,
});
