/**
 * `netvsp`: NVSP and RNDIS from a hostile guest to the host's synthetic NIC
 * (storvsc-netvsc.md §10–§14), through the scripted network guest of
 * test/drivers/netvsc/host/harness.ts after a complete initialization and
 * RNDIS bring-up.
 *
 * Each step is one of: an NVSP message of any kind (INIT, NDIS config and
 * version, receive/send buffers naming its own GPADLs, the bystander's or
 * none, revokes, SEND_RNDIS_PKT with any section index and size, subchannel
 * requests, OID_QUERY_EX, datapath switches, completions, send tables,
 * unknown types) with its fields corrupted, in any packet kind and with the
 * descriptor corrupted in the ring; an RNDIS message of any kind (PACKET
 * with per-packet info and frames of every size, INITIALIZE, QUERY/SET/
 * SET_EX with the information buffers of the OIDs the host handles — packet
 * filter, RSS parameters, offload and config parameters — HALT, RESET,
 * KEEPALIVE, INDICATE_STATUS, completions) with its fields corrupted, carried
 * in a send-buffer section or in GPA ranges; a receive completion with the
 * right, another or a repeated id; a frame from the network.
 *
 * Properties: typed errors only; the host never acknowledges more receive
 * completions than it sent indications; the bystander NIC on the same switch
 * still sends and receives intact frames; nothing read from guest memory
 * outside what was shared reaches the network (canary); secret pages intact.
 */
import fc from "fast-check";
import { PAGE_SIZE, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VM_PKT_DATA_USING_XFER_PAGES } from "../../core/index.js";
import { NETVSC_INVALID_INDEX, NETVSC_SEND_SECTION_SIZE, encodeNvspMessage } from "../../drivers/netvsc/protocol/index.js";
import { BYSTANDER_MAC_BYTES, VICTIM_MAC_BYTES, bootNetWorld, checkNetBystander, type NetWorld } from "../harness/net.js";
import { applyMutations, mutations, type Mutation } from "../lib/mutate.js";
import { FuzzViolation, requireTyped, typedOnly } from "../lib/oracle.js";
import { NVSP_FIELDS, RNDIS_FIELDS, buildFrame, buildNvsp, buildRndis, encodeNvsp, encodeRndis, frameSpec, nvspSpec, rndisSpec, type FrameSpec, type NvspSpec, type RndisSpec } from "../lib/net.js";
import { packetShape, preparePacket, sendCorrupted, transIdSpec, type PacketContext, type PacketShape, type PacketSpec } from "../lib/packets.js";
import { defineTarget, type Tally } from "../lib/target.js";

export type NetvspStep =
  | {
      readonly kind: "nvsp";
      readonly spec: NvspSpec;
      readonly muts: readonly Mutation[];
      readonly shape: PacketShape;
      readonly flags: number;
      readonly transId: PacketSpec["transId"];
      readonly ringMuts: readonly Mutation[];
    }
  | {
      readonly kind: "rndis";
      readonly spec: RndisSpec;
      readonly muts: readonly Mutation[];
      readonly via: "section" | "gpa";
      readonly section: number;
      readonly sizeDelta: number;
      readonly channelType: number;
      readonly poolIndex: number;
    }
  | { readonly kind: "complete"; readonly which: number; readonly id: "right" | "other" | "twice" | "zero"; readonly muts: readonly Mutation[] }
  | { readonly kind: "peer"; readonly frame: FrameSpec; readonly count: number }
  | { readonly kind: "run"; readonly ns: number };

export interface NetvspInput {
  readonly steps: readonly NetvspStep[];
}

const stepArb: fc.Arbitrary<NetvspStep> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("nvsp" as const),
      spec: nvspSpec,
      muts: mutations(3, { noneWeight: 2 }),
      shape: fc.oneof({ weight: 6, arbitrary: fc.constant<PacketShape>({ kind: "inband" }) }, { weight: 1, arbitrary: packetShape }),
      flags: fc.oneof({ weight: 5, arbitrary: fc.constant(VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) }, { weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(3, 0xffff) }),
      transId: transIdSpec,
      ringMuts: mutations(2, { rawWeight: 0, noneWeight: 8 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("rndis" as const),
      spec: rndisSpec,
      muts: mutations(3, { noneWeight: 4 }),
      via: fc.oneof({ weight: 3, arbitrary: fc.constant("section" as const) }, { weight: 1, arbitrary: fc.constant("gpa" as const) }),
      section: fc.oneof({ weight: 6, arbitrary: fc.nat(7) }, { weight: 1, arbitrary: fc.constantFrom(63, 64, 1000, NETVSC_INVALID_INDEX) }),
      sizeDelta: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, -8, 1, 8, 6144, -100000) }),
      // Data (0) for PACKETs, control (1) for the rest, as Linux; the other way round and garbage sometimes.
      channelType: fc.oneof({ weight: 8, arbitrary: fc.constant(-1) }, { weight: 2, arbitrary: fc.constantFrom(0, 1) }, { weight: 1, arbitrary: fc.constantFrom(2, 0xffff_ffff) }),
      poolIndex: fc.nat(15),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("complete" as const),
      which: fc.nat(7),
      id: fc.oneof({ weight: 4, arbitrary: fc.constant("right" as const) }, { weight: 1, arbitrary: fc.constantFrom("other" as const, "twice" as const, "zero" as const) }),
      muts: mutations(2, { noneWeight: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("peer" as const), frame: frameSpec, count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: fc.constantFrom(1_000, 100_000, 2_000_000) }) },
);

const inputArb: fc.Arbitrary<NetvspInput> = fc.record({ steps: fc.array(stepArb, { minLength: 1, maxLength: 12 }) });

function watch(p: Promise<unknown>, what: string, tally: Tally): void {
  p.then(
    () => tally.add(`${what} completed`),
    (e: unknown) => {
      requireTyped(e, what);
      tally.add(`${what} failed: ${e.code}`);
    },
  ).catch(() => undefined);
}

function sendNvsp(w: NetWorld, s: Extract<NetvspStep, { kind: "nvsp" }>, tally: Tally): void {
  const ch = w.victim.primary;
  const ep = ch.endpoint;
  if (ep === null || ep.closed || ch.rescinded) return;
  const built = typedOnly("encode NVSP", () => encodeNvsp(buildNvsp(s.spec, w.handles)));
  if (!built.ok) return;
  const payload = applyMutations(built.value, NVSP_FIELDS, s.muts);
  const ctx: PacketContext = { pool: w.pool, secrets: w.secrets, ids: () => [1n, 2n, 3n] };
  const p = preparePacket({ shape: s.shape, flags: s.flags, transId: s.transId, payload, muts: s.ringMuts }, ctx, NVSP_FIELDS);
  const r = typedOnly("hostile NVSP send", () => sendCorrupted(ep, p, s.ringMuts));
  if (r.ok) watch(r.value.sent, "hostile NVSP send", tally);
  tally.add(`nvsp ${s.spec.m}`);
}

function sendRndis(w: NetWorld, s: Extract<NetvspStep, { kind: "rndis" }>, tally: Tally): void {
  const g = w.victim;
  const ch = g.primary;
  if (ch.endpoint === null || ch.endpoint.closed || ch.rescinded) return;
  const built = typedOnly("encode RNDIS", () => encodeRndis(buildRndis(s.spec, BYSTANDER_MAC_BYTES, VICTIM_MAC_BYTES)));
  if (!built.ok) return;
  const bytes = w.secrets.scrubBytes(applyMutations(built.value, RNDIS_FIELDS, s.muts));
  const size = Math.max(0, bytes.length + s.sizeDelta) >>> 0;
  const channelType = s.channelType === -1 ? (s.spec.r === "packet" ? 0 : 1) : s.channelType;
  const mem = g.vm.partition.memory;
  let sent: Promise<unknown>;
  if (s.via === "section") {
    const sb = g.sendBuf;
    if (sb === null) return;
    // The guest writes its own send buffer only (a hostile guest may name any section; it writes where it owns).
    if (s.section !== NETVSC_INVALID_INDEX && (s.section + 1) * NETVSC_SEND_SECTION_SIZE <= sb.bytes) {
      mem.write(sb.gpa + s.section * NETVSC_SEND_SECTION_SIZE, bytes.subarray(0, NETVSC_SEND_SECTION_SIZE));
    }
    const nvsp = encodeNvspMessage({ kind: "send_rndis_pkt", channelType: channelType >>> 0, sendBufferSectionIndex: s.section >>> 0, sendBufferSectionSize: size });
    sent = ch.sendRequest(nvsp);
  } else {
    const first = w.pool[s.poolIndex] as number;
    const room = (w.pool.length - s.poolIndex) * PAGE_SIZE;
    const data = bytes.subarray(0, room);
    mem.write(first * PAGE_SIZE, data);
    const count = Math.max(1, Math.min(size || 1, room));
    const pages = Math.ceil(count / PAGE_SIZE);
    const nvsp = encodeNvspMessage({ kind: "send_rndis_pkt", channelType: channelType >>> 0, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 });
    sent = ch.sendPacketMpbDesc([{ byteCount: count, byteOffset: 0, pfns: w.pool.slice(s.poolIndex, s.poolIndex + pages) }], nvsp);
  }
  watch(sent, "RNDIS send", tally);
  tally.add(`rndis ${s.spec.r} via ${s.via}`);
}

function complete(w: NetWorld, s: Extract<NetvspStep, { kind: "complete" }>): void {
  const g = w.victim;
  const ch = g.primary;
  const xfers = g.packets.filter((p) => p.type === VM_PKT_DATA_USING_XFER_PAGES);
  const p = xfers[s.which % Math.max(1, xfers.length)];
  if (p === undefined || ch.endpoint === null || ch.endpoint.closed || ch.rescinded) return;
  g.packets.splice(g.packets.indexOf(p), 1);
  const other = xfers.find((x) => x !== p)?.transId ?? p.transId + 7n;
  const id = s.id === "zero" ? 0n : s.id === "other" ? other : p.transId;
  const payload = applyMutations(encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: 1 }, { size: 8 }), NVSP_FIELDS, s.muts);
  for (let n = 0; n < (s.id === "twice" ? 2 : 1); n++) {
    const r = typedOnly("receive completion", () => ch.sendCompletion(id, payload));
    if (r.ok) r.value.catch((e: unknown) => requireTyped(e, "receive completion"));
  }
}

async function run(input: NetvspInput, tally: Tally): Promise<void> {
  const w = await bootNetWorld();
  const g = w.victim;
  for (const s of input.steps) {
    switch (s.kind) {
      case "nvsp":
        sendNvsp(w, s, tally);
        break;
      case "rndis":
        sendRndis(w, s, tally);
        break;
      case "complete":
        complete(w, s);
        break;
      case "peer":
        for (let i = 0; i < s.count; i++) g.peer.send(buildFrame(s.frame, VICTIM_MAC_BYTES, Uint8Array.of(0x02, 0, 0, 0, 0, 0x55)));
        break;
      case "run":
        await w.sim.runFor(s.ns, "netvsp step");
        break;
    }
    await w.sim.runFor(30_000, "netvsp step");
  }
  await w.sim.runFor(5_000_000, "after the hostile NVSP/RNDIS");
  const nic = g.nic;
  const c = nic.counters;
  if (nic.lastFatalError !== null) {
    requireTyped(nic.lastFatalError, "netvsp lastFatalError");
    tally.add(`victim channel failed: ${nic.lastFatalError.code} ${"field" in nic.lastFatalError ? String(nic.lastFatalError.field) : ""}`);
  }
  if (c.rxCompletions > c.rxPackets) {
    throw new FuzzViolation("completions", `netvsp took ${c.rxCompletions} receive completions for ${c.rxPackets} transfer-page packets`);
  }
  tally.add("tx packets failed (per-packet errors)", c.txPacketsFailed);
  tally.add("tx frames", c.txFrames);
  for (const f of [...g.peerFrames, ...w.bystander.peerFrames]) w.secrets.assertNotLeaked(f, "a frame on the switch");
  await checkNetBystander(w, input.steps.length);
  w.secrets.verify("after the hostile NVSP/RNDIS");
  w.sim.finish();
}

export const netvspTarget = defineTarget<NetvspInput>({
  name: "netvsp",
  title: "hostile guest → netvsp (NVSP messages and RNDIS in send-buffer sections and GPA ranges)",
  corrupts:
    "NVSP messages of every kind (type, versions, GPADL handles incl. another NIC's, buffer ids, section index/size, channel type, subchannel count, send table), RNDIS messages of every kind (type, msg_len, request id, OID, info buffer length/offset, RSS table/key sizes and offsets, offload and config parameters, PACKET data/OOB/PPI offsets and lengths, frame sizes), receive completions (ids, repeats, payload), packet kinds and descriptors",
  arbitrary: inputArb,
  run,
});
