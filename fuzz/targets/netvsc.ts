/**
 * `netvsc`: transfer-page packets, RNDIS completions and indications, and
 * transmit completions from a hostile host to the guest NIC driver
 * (storvsc-netvsc.md §11, §12, §13), through the scripted netvsp of
 * test/drivers/netvsc/guest/scripted-host.ts after a complete bring-up.
 *
 * Each step is one of: a transfer-page packet whose RNDIS messages (PACKETs
 * with per-packet info and frames of every size, INDICATE_STATUS with every
 * status and payload, INITIALIZE/QUERY/SET/KEEPALIVE/SET_EX/RESET
 * completions with any request id, requests) are corrupted field by field
 * and written into the receive buffer, with the NVSP header, the page-set
 * id, the range count and the ranges (outside the buffer, overlapping)
 * corrupted and the descriptor corrupted in the ring; an inband NVSP
 * message from the host (send tables with any count and offset, others); a
 * frame the guest transmits; the host's completion of a held transmit with a
 * corrupted status and payload, under the right, another, a zero id, twice,
 * or as another packet kind. At the end the host answers every transmit
 * correctly.
 *
 * Properties: typed errors only; every transmit of the guest settles once
 * the host answered it; every transfer-page packet the guest took is
 * completed exactly once; no frame handed to the guest's listeners carries
 * the canary of its secret pages; a second, honest NIC still sends and
 * receives; secret pages intact.
 */
import fc from "fast-check";
import { RingWriter, VmbusSystem, type HostChannel } from "../../core/index.js";
import { NETVSC_CONFIG, type NetvscDriver } from "../../drivers/netvsc/guest/index.js";
import {
  NETVSC_INVALID_INDEX,
  NETVSC_RECEIVE_BUFFER_ID,
  NVSP_RNDIS_CHANNEL_TYPE_DATA,
  NVSP_STAT_SUCCESS,
  encodeNvspMessage,
  parseMac,
} from "../../drivers/netvsc/protocol/index.js";
import { NetScript, SMALL, fakePlugin, testFrame } from "../../test/drivers/netvsc/guest/scripted-host.js";
import { applyMutations, interestingInt, mutations, type Mutation } from "../lib/mutate.js";
import { FuzzViolation, SecretPages, SimDriver, requireTyped, typedOnly } from "../lib/oracle.js";
import { NVSP_FIELDS, RNDIS_FIELDS, buildNvsp, buildRndisToGuest, encodeRndis, nvspSpec, rndisToGuestSpec, type NvspSpec, type RndisToGuestSpec } from "../lib/net.js";
import { packetShape, preparePacket, sendCorrupted, type PacketContext, type PacketShape } from "../lib/packets.js";
import { defineTarget, type Tally } from "../lib/target.js";

const VICTIM_ID = "0e7c0000-0000-4000-8000-000000000001";
const BYSTANDER_ID = "0e7c0000-0000-4000-8000-000000000002";

/** Where one message goes in the receive buffer, and the range that names it. */
export interface Placement {
  /** Sub-allocation slot it is written at. */
  readonly slot: number;
  /** The range as indicated: as written, or corrupted. */
  readonly range: "exact" | { readonly byteCount: number; readonly byteOffset: number };
}

export type NetvscStep =
  | {
      readonly kind: "indicate";
      readonly messages: readonly { readonly spec: RndisToGuestSpec; readonly muts: readonly Mutation[]; readonly at: Placement }[];
      readonly setId: number;
      readonly nvspMuts: readonly Mutation[];
      readonly ringMuts: readonly Mutation[];
      readonly flags: number;
    }
  | { readonly kind: "inband"; readonly spec: NvspSpec; readonly muts: readonly Mutation[]; readonly shape: PacketShape }
  | { readonly kind: "send"; readonly length: number; readonly count: number }
  | {
      readonly kind: "tx-complete";
      readonly which: number;
      readonly status: number;
      readonly muts: readonly Mutation[];
      readonly id: "right" | "other" | "zero" | "twice";
      readonly shape: PacketShape | "completion";
      readonly ringMuts: readonly Mutation[];
    }
  | { readonly kind: "run"; readonly ns: number };

export interface NetvscInput {
  readonly steps: readonly NetvscStep[];
}

const placement: fc.Arbitrary<Placement> = fc.record({
  slot: fc.nat(200),
  range: fc.oneof(
    { weight: 5, arbitrary: fc.constant("exact" as const) },
    { weight: 1, arbitrary: fc.record({ byteCount: interestingInt(0x100000), byteOffset: interestingInt(0x100000) }) },
  ),
});

const stepArb: fc.Arbitrary<NetvscStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("indicate" as const),
      messages: fc.array(fc.record({ spec: rndisToGuestSpec, muts: mutations(3, { noneWeight: 2 }), at: placement }), { minLength: 1, maxLength: 3 }),
      setId: fc.oneof({ weight: 8, arbitrary: fc.constant(NETVSC_RECEIVE_BUFFER_ID) }, { weight: 1, arbitrary: fc.nat(0xffff) }),
      nvspMuts: mutations(2, { noneWeight: 6 }),
      ringMuts: mutations(2, { rawWeight: 0, noneWeight: 6 }),
      flags: fc.constantFrom(1, 1, 1, 0),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("inband" as const),
      spec: nvspSpec,
      muts: mutations(3),
      shape: fc.oneof({ weight: 4, arbitrary: fc.constant<PacketShape>({ kind: "inband" }) }, { weight: 1, arbitrary: packetShape }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("send" as const), length: fc.oneof(fc.constantFrom(14, 60, 1514, 4000), fc.integer({ min: 14, max: 1514 })), count: fc.integer({ min: 1, max: 3 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("tx-complete" as const),
      which: fc.nat(7),
      status: fc.oneof({ weight: 4, arbitrary: fc.constant(NVSP_STAT_SUCCESS) }, { weight: 1, arbitrary: fc.constantFrom(0, 2, 5, 0xffff_ffff) }),
      muts: mutations(2, { noneWeight: 3 }),
      id: fc.oneof({ weight: 5, arbitrary: fc.constant("right" as const) }, { weight: 1, arbitrary: fc.constantFrom("other" as const, "zero" as const, "twice" as const) }),
      shape: fc.oneof({ weight: 8, arbitrary: fc.constant("completion" as const) }, { weight: 1, arbitrary: packetShape }),
      ringMuts: mutations(2, { rawWeight: 0, noneWeight: 8 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: fc.constantFrom(1_000, 100_000, 3_000_000_000) }) },
);

const inputArb: fc.Arbitrary<NetvscInput> = fc.record({ steps: fc.array(stepArb, { minLength: 1, maxLength: 12 }) });

interface World {
  readonly sys: VmbusSystem;
  readonly script: NetScript;
  readonly honest: NetScript;
  readonly victim: NetvscDriver;
  readonly bystander: NetvscDriver;
  readonly secrets: SecretPages;
  readonly sim: SimDriver;
  /** Frames the guest's listeners got, on each NIC. */
  readonly received: Uint8Array[];
  readonly bystanderReceived: Uint8Array[];
}

async function boot(): Promise<World> {
  const sys = new VmbusSystem({ seed: 7, plugins: [fakePlugin] });
  sys.root.register(NETVSC_CONFIG, { useValue: SMALL });
  const vm = sys.addVm({ name: "vm1", vcpus: 1 });
  const script = new NetScript();
  const honest = new NetScript();
  honest.mac = "00:15:5d:12:34:57";
  sys.addHostDevice(vm, "fakevsp", { config: script, instanceId: VICTIM_ID });
  sys.addHostDevice(vm, "fakevsp", { config: honest, instanceId: BYSTANDER_ID });
  await sys.boot();
  await sys.run(sys.sim.scheduler.sleep(1_000_000));
  const driverOf = (id: string): NetvscDriver => {
    const dev = vm.client.devices.find((d) => d.primary.offer.ifInstance.toString() === id);
    const drv = dev === undefined ? undefined : vm.driverOf<NetvscDriver>(dev);
    if (drv === undefined) throw new Error(`no netvsc driver for ${id}`);
    return drv;
  };
  const victim = driverOf(VICTIM_ID);
  const bystander = driverOf(BYSTANDER_ID);
  const received: Uint8Array[] = [];
  const bystanderReceived: Uint8Array[] = [];
  victim.onReceive((f) => received.push(f.slice()));
  bystander.onReceive((f) => bystanderReceived.push(f.slice()));
  return { sys, script, honest, victim, bystander, secrets: SecretPages.plant(vm.partition.memory, 4), sim: new SimDriver(sys.sim.scheduler), received, bystanderReceived };
}

function indicate(w: World, s: Extract<NetvscStep, { kind: "indicate" }>, tally: Tally): void {
  const ch = w.script.primary;
  const buf = w.script.recvBuf;
  if (ch === null || buf === null || ch.endpoint === null || ch.endpoint.closed) return;
  const self = parseMac(w.script.mac);
  const slots = Math.max(1, Math.floor(buf.length / w.script.subAllocSize));
  const ranges: { byteCount: number; byteOffset: number }[] = [];
  for (const m of s.messages) {
    const built = typedOnly("encode RNDIS", () => encodeRndis(buildRndisToGuest(m.spec, self, Uint8Array.of(0x02, 0, 0, 0, 0, 0x44))));
    if (!built.ok) continue;
    const bytes = applyMutations(built.value, RNDIS_FIELDS, m.muts);
    const offset = (m.at.slot % slots) * w.script.subAllocSize;
    // The host writes through its GPADL view: past the buffer is a typed error, and nothing is written.
    const wrote = typedOnly("write the receive buffer", () => buf.write(offset, bytes));
    if (!wrote.ok) continue;
    ranges.push(m.at.range === "exact" ? { byteCount: bytes.length, byteOffset: offset } : m.at.range);
  }
  const nvsp = applyMutations(
    encodeNvspMessage({ kind: "send_rndis_pkt", channelType: NVSP_RNDIS_CHANNEL_TYPE_DATA, sendBufferSectionIndex: NETVSC_INVALID_INDEX, sendBufferSectionSize: 0 }, { size: 28 }),
    NVSP_FIELDS,
    s.nvspMuts,
  );
  const ctx: PacketContext = { pool: [], secrets: w.secrets, ids: () => [BigInt(1000 + ranges.length)] };
  const p = preparePacket({ shape: { kind: "xfer", setId: s.setId, ranges }, flags: s.flags, transId: { kind: "hint", index: 0 }, payload: nvsp, muts: s.ringMuts }, ctx);
  const r = typedOnly("hostile indication", () => sendCorrupted(ch.endpoint!, p, s.ringMuts));
  if (r.ok) r.value.sent.catch((e: unknown) => requireTyped(e, "hostile indication"));
  tally.add(`indications of ${ranges.length} message(s)`);
}

function inband(w: World, s: Extract<NetvscStep, { kind: "inband" }>): void {
  const ch = w.script.primary;
  if (ch === null || ch.endpoint === null || ch.endpoint.closed) return;
  const built = typedOnly("encode NVSP", () => encodeNvspMessage(buildNvsp(s.spec, [])));
  if (!built.ok) return;
  const payload = applyMutations(built.value, NVSP_FIELDS, s.muts);
  const ctx: PacketContext = { pool: [], secrets: w.secrets, ids: () => [0n] };
  const p = preparePacket({ shape: s.shape, flags: 0, transId: { kind: "hint", index: 0 }, payload, muts: [] }, ctx, NVSP_FIELDS);
  const r = typedOnly("host NVSP", () => sendCorrupted(ch.endpoint!, p, []));
  if (r.ok) r.value.sent.catch((e: unknown) => requireTyped(e, "host NVSP"));
}

interface Owed {
  readonly ch: HostChannel;
  readonly transId: bigint;
}

function txComplete(w: World, s: Extract<NetvscStep, { kind: "tx-complete" }>, owed: Owed[], tally: Tally): void {
  const held = w.script.held;
  if (held.length === 0) return;
  const [h] = held.splice(s.which % held.length, 1);
  if (h === undefined || h.ch.endpoint === null || h.ch.endpoint.closed) return;
  const payload = applyMutations(encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: s.status >>> 0 }, { size: 28 }), NVSP_FIELDS, s.muts);
  const id = s.id === "zero" ? 0n : s.id === "other" ? (held[0]?.transId ?? h.transId + 3n) : h.transId;
  // The right answer is still owed when this one may not reach the request it belongs to.
  if (id !== h.transId || s.shape !== "completion" || s.ringMuts.length > 0) owed.push({ ch: h.ch, transId: h.transId });
  const shape: PacketShape = s.shape === "completion" ? { kind: "completion" } : s.shape;
  const ctx: PacketContext = { pool: [], secrets: w.secrets, ids: () => [id] };
  for (let n = 0; n < (s.id === "twice" ? 2 : 1); n++) {
    const p = preparePacket({ shape, flags: 0, transId: { kind: "hint", index: 0 }, payload, muts: s.ringMuts }, ctx, NVSP_FIELDS);
    const r = typedOnly("hostile transmit completion", () => sendCorrupted(h.ch.endpoint!, p, s.ringMuts));
    if (r.ok) r.value.sent.catch((e: unknown) => requireTyped(e, "hostile transmit completion"));
  }
  tally.add(`tx completions ${s.id}${s.muts.length > 0 ? " corrupted" : ""}`);
}

async function run(input: NetvscInput, tally: Tally): Promise<void> {
  const w = await boot();
  w.script.holdTx = true;
  const sends: Promise<void>[] = [];
  const owed: Owed[] = [];
  let n = 0;
  for (const s of input.steps) {
    switch (s.kind) {
      case "indicate":
        indicate(w, s, tally);
        break;
      case "inband":
        inband(w, s);
        break;
      case "send":
        for (let i = 0; i < s.count; i++) {
          const r = typedOnly("victim send", () => w.victim.send(testFrame(s.length, ++n, w.victim.mac)));
          if (r.ok) sends.push(r.value);
        }
        break;
      case "tx-complete":
        txComplete(w, s, owed, tally);
        break;
      case "run":
        await w.sim.runFor(s.ns, "netvsc step");
        break;
    }
    await w.sim.runFor(30_000, "netvsc step");
  }
  // The host answers every transmit it still holds, and those it answered under another id.
  w.script.holdTx = false;
  w.script.releaseHeld();
  const okReply = encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: NVSP_STAT_SUCCESS }, { size: 28 });
  for (const o of owed) {
    if (o.ch.endpoint === null) continue;
    o.ch.send((wr) => wr.writeCompletion(o.transId, okReply), RingWriter.packetTotal(0, okReply.length)).catch((e: unknown) => requireTyped(e, "owed completion"));
  }
  for (const [i, p] of sends.entries()) {
    const r = await w.sim.settle(p, 100_000_000, `victim transmit ${i}`);
    tally.add(r.ok ? "victim transmits ok" : `victim transmit failed: ${r.error.code}`);
  }
  await w.sim.runFor(5_000_000, "after the hostile host");
  const st = w.victim.driverStats;
  if (st.rxCompletions !== st.rxIndications) {
    throw new FuzzViolation("completions", `the victim completed ${st.rxCompletions} transfer-page packets but handled ${st.rxIndications}`);
  }
  tally.add("victim rx malformed", st.rxMalformed);
  tally.add("victim dropped packets", st.droppedPackets);
  tally.add("victim frames received", w.received.length);
  for (const f of [...w.received, ...w.bystanderReceived]) w.secrets.assertNotLeaked(f, "a frame a guest listener received");
  // The honest NIC: transmit and receive.
  const out = testFrame(300, 4242, w.bystander.mac);
  const before = w.honest.frames.length;
  await w.sim.expectOk(w.bystander.send(out), 50_000_000, "bystander transmit");
  if (!w.honest.frames.slice(before).some((f) => Buffer.from(f).equals(Buffer.from(out)))) throw new FuzzViolation("bystander", "the honest host did not get the bystander's frame intact");
  const inFrame = testFrame(200, 777, "00:15:5d:00:00:09");
  const got = w.bystanderReceived.length;
  await w.sim.expectOk(w.honest.indicateFrames([inFrame]), 50_000_000, "indicate to the bystander");
  await w.sim.runFor(2_000_000, "bystander receive");
  if (!w.bystanderReceived.slice(got).some((f) => Buffer.from(f).equals(Buffer.from(inFrame)))) throw new FuzzViolation("bystander", "the bystander did not receive the frame intact");
  w.secrets.verify("after the hostile host");
  w.sim.finish();
}

export const netvscTarget = defineTarget<NetvscInput>({
  name: "netvsc",
  title: "hostile host → netvsc (transfer-page packets, RNDIS completions and indications, transmit completions)",
  corrupts:
    "transfer-page packets (page-set id, range count, ranges outside or across the receive buffer, NVSP header, descriptor), the RNDIS messages in them (type, msg_len, PACKET data/OOB/PPI offsets and lengths, per-packet info, INDICATE_STATUS status and buffer, completions' request ids, statuses and info buffers), host NVSP (send tables), transmit completions (status, payload, id, repeats, packet kind)",
  arbitrary: inputArb,
  run,
});
