/**
 * VMBus channel messages (vmbus-core.md §7), both ways:
 *
 * - `chan-host-to-client`: a hostile host posts CHANNELMSG_* messages into
 *   the guest's SynIC message slot — every host→guest type built with the
 *   real encoder, then corrupted (msgtype, relids, open ids, GPADL handles,
 *   statuses, monitor ids, connection ids, payload size), wrong-way and
 *   unused types, raw bytes, other SINTs and message types — while the guest
 *   has control operations in flight (GPADL creation, MODIFYCHANNEL, close
 *   and reopen of the victim channel) whose responses it can forge.
 * - `chan-guest-to-server`: a hostile guest posts guest→host messages
 *   (INITIATE_CONTACT, OPENCHANNEL, GPADL_HEADER/BODY with corrupted
 *   range_buflen, rangecount, byte counts and PFNs, TEARDOWN, CLOSE,
 *   RELID_RELEASED, MODIFYCHANNEL, TL_CONNECT, wrong-way types) with
 *   corrupted fields to every message port, from any vCPU.
 *
 * Properties: nothing but typed errors; every control operation of the
 * guest settles; the bystander echo device keeps working (its relid is the
 * one thing the hostile side may not rescind or close — doing that is a
 * legitimate way to take a channel away); no message is lost or doubled
 * (what was posted equals what the receiver counted); secret pages intact.
 */
import fc from "fast-check";
import {
  CHANNELMSG_ALLOFFERS_DELIVERED,
  CHANNELMSG_CLOSECHANNEL,
  CHANNELMSG_COUNT,
  CHANNELMSG_GPADL_BODY,
  CHANNELMSG_GPADL_CREATED,
  CHANNELMSG_GPADL_HEADER,
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
  CHANNELMSG_TL_CONNECT_REQUEST,
  CHANNELMSG_UNLOAD,
  CHANNELMSG_UNLOAD_RESPONSE,
  CHANNELMSG_VERSION_RESPONSE,
  CHANNEL_MESSAGE_HEADER_LAYOUT,
  CHANNEL_OPENED_STATE,
  CHANNEL_OPEN_STATE,
  GPADL_BODY_LAYOUT,
  GPADL_CREATED_LAYOUT,
  GPADL_FIRST_HANDLE,
  GPADL_HEADER_LAYOUT,
  GPADL_TEARDOWN_LAYOUT,
  GPADL_TORNDOWN_LAYOUT,
  Guid,
  HV_NIC_GUID,
  HV_SCSI_GUID,
  INITIATE_CONTACT_LAYOUT,
  MODIFYCHANNEL_LAYOUT,
  MODIFYCHANNEL_RESPONSE_LAYOUT,
  OFFER_LAYOUT,
  OPENCHANNEL_LAYOUT,
  OPENCHANNEL_RESULT_LAYOUT,
  PAGE_SIZE,
  RELID_RELEASED_LAYOUT,
  RESCIND_CHANNELOFFER_LAYOUT,
  VERSION_RESPONSE_LAYOUT,
  VMBUS_MESSAGE_CONNECTION_ID,
  VMBUS_MESSAGE_CONNECTION_ID_4,
  VMBUS_MESSAGE_SINT,
  VMBUS_MESSAGE_TYPE_CHANNEL,
  VmbusSimError,
  decodeChannelMessage,
  encodeChannelMessage,
  type ChannelMessage,
} from "../../core/index.js";
import { ECHO_CLASS_ID, ECHO_RING_BYTES } from "../../drivers/echo/index.js";
import { BYSTANDER_DEADLINE_NS, bootEchoWorld, checkEchoBystander, type EchoWorld } from "../harness/echo.js";
import { applyMutations, arrayFields, interestingInt, mutations, offsetFields, type Field, type Hints, type Mutation } from "../lib/mutate.js";
import { FuzzViolation, isTyped, requireTyped } from "../lib/oracle.js";
import { defineTarget, type Tally } from "../lib/target.js";

/** Sizes of the fields of each layout (the layout tables give offsets only). */
const FIELDS: Readonly<Record<number, readonly Field[]>> = {
  [CHANNELMSG_OFFERCHANNEL]: offsetFields(OFFER_LAYOUT, {
    if_type: 16, if_instance: 16, chn_flags: 2, mmio_megabytes: 2, pipe_mode: 4, sub_channel_index: 2,
    child_relid: 4, monitorid: 1, monitor_allocated: 1, is_dedicated_interrupt: 2, connection_id: 4,
  }),
  [CHANNELMSG_RESCIND_CHANNELOFFER]: offsetFields(RESCIND_CHANNELOFFER_LAYOUT, { child_relid: 4 }),
  [CHANNELMSG_OPENCHANNEL]: offsetFields(OPENCHANNEL_LAYOUT, {
    child_relid: 4, openid: 4, ringbuffer_gpadlhandle: 4, target_vp: 4, downstream_ringbuffer_pageoffset: 4,
  }),
  [CHANNELMSG_OPENCHANNEL_RESULT]: offsetFields(OPENCHANNEL_RESULT_LAYOUT, { child_relid: 4, openid: 4, status: 4 }),
  [CHANNELMSG_CLOSECHANNEL]: offsetFields(RESCIND_CHANNELOFFER_LAYOUT, { child_relid: 4 }),
  [CHANNELMSG_GPADL_HEADER]: [
    ...offsetFields(GPADL_HEADER_LAYOUT, { child_relid: 4, gpadl: 4, range_buflen: 2, rangecount: 2, byte_count: 4, byte_offset: 4 }),
    ...arrayFields("pfn", GPADL_HEADER_LAYOUT.pfn_array, 8, 4),
  ],
  [CHANNELMSG_GPADL_BODY]: [...offsetFields(GPADL_BODY_LAYOUT, { msgnumber: 4, gpadl: 4 }), ...arrayFields("pfn", GPADL_BODY_LAYOUT.pfn, 8, 4)],
  [CHANNELMSG_GPADL_CREATED]: offsetFields(GPADL_CREATED_LAYOUT, { child_relid: 4, gpadl: 4, creation_status: 4 }),
  [CHANNELMSG_GPADL_TEARDOWN]: offsetFields(GPADL_TEARDOWN_LAYOUT, { child_relid: 4, gpadl: 4 }),
  [CHANNELMSG_GPADL_TORNDOWN]: offsetFields(GPADL_TORNDOWN_LAYOUT, { gpadl: 4 }),
  [CHANNELMSG_RELID_RELEASED]: offsetFields(RELID_RELEASED_LAYOUT, { child_relid: 4 }),
  [CHANNELMSG_INITIATE_CONTACT]: offsetFields(INITIATE_CONTACT_LAYOUT, {
    vmbus_version_requested: 4, target_vcpu: 4, interrupt_page: 8, msg_sint: 1, msg_vtl: 1, monitor_page1: 8, monitor_page2: 8,
  }),
  [CHANNELMSG_VERSION_RESPONSE]: offsetFields(VERSION_RESPONSE_LAYOUT, { version_supported: 1, connection_state: 1, msg_conn_id: 4 }),
  [CHANNELMSG_MODIFYCHANNEL]: offsetFields(MODIFYCHANNEL_LAYOUT, { child_relid: 4, target_vp: 4 }),
  [CHANNELMSG_MODIFYCHANNEL_RESPONSE]: offsetFields(MODIFYCHANNEL_RESPONSE_LAYOUT, { child_relid: 4, status: 4 }),
};
const HEADER_FIELDS: readonly Field[] = [{ name: "msgtype", offset: CHANNEL_MESSAGE_HEADER_LAYOUT.msgtype, size: 4 }, { name: "padding", offset: 4, size: 4 }];

function fieldsOf(msgtype: number): Field[] {
  return [...HEADER_FIELDS, ...(FIELDS[msgtype] ?? [])];
}

// ---- message arbitraries (values that fit their fields; meaning comes from hints) ----

/** A relid: the n-th live one (victim, bystander…) or a literal. */
type RelidSpec = { readonly kind: "live"; readonly index: number } | { readonly kind: "lit"; readonly value: number };
const relidSpec: fc.Arbitrary<RelidSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.nat(7).map((index): RelidSpec => ({ kind: "live", index })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 3, 100, 2047, 2048, 0xffff_ffff).map((value): RelidSpec => ({ kind: "lit", value })) },
);
const u32 = fc.oneof(fc.constantFrom(0, 1, 0xc000_0001, 0xffff_ffff), fc.nat());
const handleSpec = fc.oneof(fc.integer({ min: GPADL_FIRST_HANDLE, max: GPADL_FIRST_HANDLE + 12 }), u32);
const guidBytes = fc.uint8Array({ minLength: 16, maxLength: 16 });
const guidSpec = fc.oneof(
  fc.constantFrom("echo", "scsi", "nic", "victim", "bystander"),
  guidBytes,
);

export type ToGuestSpec =
  | { readonly t: "offer"; readonly ifType: string | Uint8Array; readonly ifInstance: string | Uint8Array; readonly chnFlags: number; readonly sub: number; readonly relid: RelidSpec; readonly monitorId: number; readonly monitorAllocated: boolean; readonly connectionId: number; readonly userDef: Uint8Array }
  | { readonly t: "rescind"; readonly relid: RelidSpec }
  | { readonly t: "alloffers" | "unload-response" }
  | { readonly t: "open-result"; readonly relid: RelidSpec; readonly openId: RelidSpec; readonly status: number }
  | { readonly t: "gpadl-created"; readonly relid: RelidSpec; readonly gpadl: number; readonly status: number }
  | { readonly t: "gpadl-torndown"; readonly gpadl: number }
  | { readonly t: "version"; readonly supported: boolean; readonly state: number; readonly connId: number }
  | { readonly t: "modify-response"; readonly relid: RelidSpec; readonly status: number }
  /** A guest→host message sent the wrong way, or an unused number. */
  | { readonly t: "wrong-way"; readonly msgtype: number; readonly body: Uint8Array };

const toGuestSpec: fc.Arbitrary<ToGuestSpec> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("offer" as const),
      ifType: guidSpec,
      ifInstance: guidSpec,
      chnFlags: fc.oneof(fc.constantFrom(0, 0x2000, 0x400), fc.nat(0xffff)),
      sub: fc.oneof(fc.constantFrom(0, 1, 2), fc.nat(0xffff)),
      relid: relidSpec,
      monitorId: fc.nat(255),
      monitorAllocated: fc.boolean(),
      connectionId: fc.oneof(fc.constantFrom(0, 2, 0x10001, 0x10002), u32),
      userDef: fc.uint8Array({ maxLength: 120 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("rescind" as const), relid: relidSpec }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constantFrom("alloffers" as const, "unload-response" as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("open-result" as const), relid: relidSpec, openId: relidSpec, status: u32 }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("gpadl-created" as const), relid: relidSpec, gpadl: handleSpec, status: u32 }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("gpadl-torndown" as const), gpadl: handleSpec }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("version" as const), supported: fc.boolean(), state: fc.nat(255), connId: u32 }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("modify-response" as const), relid: relidSpec, status: u32 }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("wrong-way" as const), msgtype: fc.nat(30), body: fc.uint8Array({ maxLength: 200 }) }) },
);

export type ToHostSpec =
  | { readonly t: "contact"; readonly version: number; readonly vcpu: number; readonly newMethod: boolean; readonly sint: number; readonly vtl: number; readonly page: number }
  | { readonly t: "request-offers" | "unload" }
  | { readonly t: "open"; readonly relid: RelidSpec; readonly openId: number; readonly gpadl: number; readonly vp: number; readonly downstream: number; readonly userData: Uint8Array }
  | { readonly t: "close" | "relid-released"; readonly relid: RelidSpec }
  /** A whole GPADL (header + bodies) as Linux splits it, over pool pages, with the relid and handle given. */
  | { readonly t: "gpadl"; readonly relid: RelidSpec; readonly gpadl: number; readonly pages: number; readonly byteOffset: number; readonly firstPool: number; readonly outside: boolean }
  | { readonly t: "gpadl-body"; readonly gpadl: number; readonly pfns: readonly number[] }
  | { readonly t: "teardown"; readonly relid: RelidSpec; readonly gpadl: number }
  | { readonly t: "modify"; readonly relid: RelidSpec; readonly vp: number }
  | { readonly t: "tl-connect"; readonly a: Uint8Array; readonly b: Uint8Array }
  | { readonly t: "wrong-way"; readonly msgtype: number; readonly body: Uint8Array };

const toHostSpec: fc.Arbitrary<ToHostSpec> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("contact" as const),
      version: fc.oneof(fc.constantFrom(0x50003, 0x50002, 0x50000, 0x40001, 0x40000, 0x30000, 0x20004, 0x10001, 0xd), u32),
      vcpu: fc.oneof(fc.constantFrom(0, 1, 2, 0xffff_ffff), u32),
      newMethod: fc.boolean(),
      sint: fc.nat(255),
      vtl: fc.constantFrom(0, 0, 1, 255),
      page: fc.nat(4096),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constantFrom("request-offers" as const, "unload" as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("open" as const),
      relid: relidSpec,
      openId: u32,
      gpadl: handleSpec,
      vp: fc.oneof(fc.constantFrom(0, 1, 2, 64), u32),
      downstream: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 8, 0xffff_ffff), u32),
      userData: fc.uint8Array({ maxLength: 120 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constantFrom("close" as const, "relid-released" as const), relid: relidSpec }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant("gpadl" as const),
      relid: relidSpec,
      gpadl: fc.oneof(fc.integer({ min: 0x100000, max: 0x100004 }), handleSpec),
      pages: fc.integer({ min: 1, max: 60 }),
      byteOffset: fc.constantFrom(0, 0, 0, 8, 4095),
      firstPool: fc.nat(15),
      outside: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("gpadl-body" as const),
      gpadl: fc.oneof(fc.integer({ min: 0x100000, max: 0x100004 }), handleSpec),
      pfns: fc.array(fc.oneof(fc.nat(0xffff), fc.constantFrom(0, 2 ** 40)), { maxLength: 28 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("teardown" as const), relid: relidSpec, gpadl: handleSpec }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("modify" as const), relid: relidSpec, vp: fc.oneof(fc.constantFrom(0, 1, 2, 99), u32) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("tl-connect" as const), a: guidBytes, b: guidBytes }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("wrong-way" as const), msgtype: fc.nat(30), body: fc.uint8Array({ maxLength: 200 }) }) },
);

// ---- resolving specs against the running world ----

interface Live {
  /** Relids that mean something: the victim's first. */
  readonly relids: readonly number[];
  readonly victim: EchoWorld["victim"];
  readonly bystander: EchoWorld["bystander"];
}

function liveOf(w: EchoWorld): Live {
  const relids = [w.victim.channel.relid, w.bystander.channel.relid];
  for (const d of w.vm.client.devices) if (!relids.includes(d.primary.relid)) relids.push(d.primary.relid);
  return { relids, victim: w.victim, bystander: w.bystander };
}

function relid(s: RelidSpec, live: Live): number {
  return s.kind === "lit" ? s.value >>> 0 : (live.relids[s.index % live.relids.length] as number);
}

function guid(g: string | Uint8Array, live: Live): Guid {
  if (g instanceof Uint8Array) return Guid.fromBytes(g);
  switch (g) {
    case "echo":
      return ECHO_CLASS_ID;
    case "scsi":
      return HV_SCSI_GUID;
    case "nic":
      return HV_NIC_GUID;
    case "victim":
      return live.victim.channel.offer.ifInstance;
    default:
      return live.bystander.channel.offer.ifInstance;
  }
}

/** A message body of `msgtype` as raw bytes (wrong-way and unused types the encoder would refuse). */
function rawMessage(msgtype: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.min(240, 8 + body.length));
  new DataView(out.buffer).setUint32(0, msgtype, true);
  out.set(body.subarray(0, out.length - 8), 8);
  return out;
}

function encodeToGuest(s: ToGuestSpec, live: Live): Uint8Array {
  let msg: ChannelMessage;
  switch (s.t) {
    case "offer":
      msg = {
        msgtype: CHANNELMSG_OFFERCHANNEL,
        ifType: guid(s.ifType, live),
        ifInstance: guid(s.ifInstance, live),
        chnFlags: s.chnFlags,
        mmioMegabytes: 0,
        userDef: s.userDef,
        subChannelIndex: s.sub,
        childRelid: relid(s.relid, live),
        monitorId: s.monitorId,
        monitorAllocated: s.monitorAllocated,
        isDedicatedInterrupt: false,
        connectionId: s.connectionId >>> 0,
      };
      break;
    case "rescind":
      msg = { msgtype: CHANNELMSG_RESCIND_CHANNELOFFER, childRelid: relid(s.relid, live) };
      break;
    case "alloffers":
      msg = { msgtype: CHANNELMSG_ALLOFFERS_DELIVERED };
      break;
    case "unload-response":
      msg = { msgtype: CHANNELMSG_UNLOAD_RESPONSE };
      break;
    case "open-result":
      msg = { msgtype: CHANNELMSG_OPENCHANNEL_RESULT, childRelid: relid(s.relid, live), openId: relid(s.openId, live), status: s.status >>> 0 };
      break;
    case "gpadl-created":
      msg = { msgtype: CHANNELMSG_GPADL_CREATED, childRelid: relid(s.relid, live), gpadl: s.gpadl >>> 0, creationStatus: s.status >>> 0 };
      break;
    case "gpadl-torndown":
      msg = { msgtype: CHANNELMSG_GPADL_TORNDOWN, gpadl: s.gpadl >>> 0 };
      break;
    case "version":
      msg = { msgtype: CHANNELMSG_VERSION_RESPONSE, versionSupported: s.supported, connectionState: s.state, msgConnId: s.connId >>> 0 };
      break;
    case "modify-response":
      msg = { msgtype: CHANNELMSG_MODIFYCHANNEL_RESPONSE, childRelid: relid(s.relid, live), status: s.status >>> 0 };
      break;
    case "wrong-way":
      return rawMessage(s.msgtype, s.body);
  }
  return encodeChannelMessage(msg);
}

function encodeToHost(s: ToHostSpec, w: EchoWorld, live: Live): Uint8Array[] {
  const mem = w.vm.partition.memory;
  switch (s.t) {
    case "contact":
      return [
        encodeChannelMessage({
          msgtype: CHANNELMSG_INITIATE_CONTACT,
          versionRequested: s.version >>> 0,
          targetVcpu: s.vcpu >>> 0,
          contact: s.newMethod ? { kind: "sint", msgSint: s.sint, msgVtl: s.vtl } : { kind: "interruptPage", interruptPage: (w.pool[0] ?? 0) * PAGE_SIZE + s.page },
          monitorPage1: (w.pool[1] ?? 0) * PAGE_SIZE,
          monitorPage2: (w.pool[2] ?? 0) * PAGE_SIZE,
        }),
      ];
    case "request-offers":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_REQUESTOFFERS })];
    case "unload":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_UNLOAD })];
    case "open":
      return [
        encodeChannelMessage({
          msgtype: CHANNELMSG_OPENCHANNEL,
          childRelid: relid(s.relid, live),
          openId: s.openId >>> 0,
          ringBufferGpadlHandle: s.gpadl >>> 0,
          targetVp: s.vp >>> 0,
          downstreamRingBufferPageOffset: s.downstream >>> 0,
          userData: s.userData,
        }),
      ];
    case "close":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_CLOSECHANNEL, childRelid: relid(s.relid, live) })];
    case "relid-released":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_RELID_RELEASED, childRelid: relid(s.relid, live) })];
    case "gpadl": {
      const pfns = Array.from({ length: s.pages }, (_, i) =>
        s.outside && i === s.pages - 1 ? mem.pageCount + i : w.secrets.scrubPfn(w.pool[(s.firstPool + i) % w.pool.length] ?? 0),
      );
      const bytes = s.pages * PAGE_SIZE - s.byteOffset;
      // Linux's split (header with 26 PFNs, bodies of 28), built by hand to allow a byte_offset.
      const msgs: Uint8Array[] = [
        encodeChannelMessage({
          msgtype: CHANNELMSG_GPADL_HEADER,
          childRelid: relid(s.relid, live),
          gpadl: s.gpadl >>> 0,
          rangeBufLen: 8 + 8 * s.pages,
          rangeCount: 1,
          byteCount: bytes,
          byteOffset: s.byteOffset,
          pfns: pfns.slice(0, 26),
        }),
      ];
      for (let i = 26; i < pfns.length; i += 28) {
        msgs.push(encodeChannelMessage({ msgtype: CHANNELMSG_GPADL_BODY, msgNumber: 0, gpadl: s.gpadl >>> 0, pfns: pfns.slice(i, i + 28) }));
      }
      return msgs;
    }
    case "gpadl-body":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_GPADL_BODY, msgNumber: 0, gpadl: s.gpadl >>> 0, pfns: s.pfns.map((p) => w.secrets.scrubPfn(p)) })];
    case "teardown":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_GPADL_TEARDOWN, childRelid: relid(s.relid, live), gpadl: s.gpadl >>> 0 })];
    case "modify":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_MODIFYCHANNEL, childRelid: relid(s.relid, live), targetVp: s.vp >>> 0 })];
    case "tl-connect":
      return [encodeChannelMessage({ msgtype: CHANNELMSG_TL_CONNECT_REQUEST, guestEndpointId: Guid.fromBytes(s.a), hostServiceId: Guid.fromBytes(s.b) })];
    case "wrong-way":
      return [rawMessage(s.msgtype, s.body)];
  }
}

/** Runtime hints for corrupted fields: live relids, GPADL handles near the ones in use, VP indexes. */
function hintsFor(w: EchoWorld, live: Live): Hints {
  return (f) => {
    if (f.name === "child_relid" || f.name === "openid") return live.relids.map(BigInt);
    if (f.name === "gpadl" || f.name === "ringbuffer_gpadlhandle") {
      return Array.from({ length: 8 }, (_, i) => BigInt(GPADL_FIRST_HANDLE + i));
    }
    if (f.name === "target_vp" || f.name === "target_vcpu") return w.vm.partition.vcpus.map((v) => BigInt(v.vpIndex));
    if (f.name === "connection_id") return [0x10000n + BigInt(live.relids[0] ?? 0), 0x10000n + BigInt(live.relids[1] ?? 0)];
    if (f.name === "msgtype") return Array.from({ length: CHANNELMSG_COUNT + 2 }, (_, i) => BigInt(i));
    return undefined;
  };
}

// ---- guest control operations whose responses a hostile host can forge ----

export type GuestOp =
  | { readonly op: "gpadl"; readonly pages: number }
  | { readonly op: "modify"; readonly cpu: number }
  | { readonly op: "close" }
  | { readonly op: "open" };

const guestOp: fc.Arbitrary<GuestOp> = fc.oneof(
  fc.record({ op: fc.constant("gpadl" as const), pages: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ op: fc.constant("modify" as const), cpu: fc.nat(2) }),
  fc.constant<GuestOp>({ op: "close" }),
  fc.constant<GuestOp>({ op: "open" }),
);

function startGuestOp(w: EchoWorld, op: GuestOp): Promise<unknown> | null {
  const ch = w.victim.channel;
  switch (op.op) {
    case "gpadl":
      return ch.createGpadl(
        Array.from({ length: op.pages }, (_, i) => w.pool[i % w.pool.length] ?? 0),
        op.pages * PAGE_SIZE,
      );
    case "modify":
      return ch.setTargetCpu(op.cpu);
    case "close":
      return ch.state === CHANNEL_OPENED_STATE ? ch.close() : null;
    case "open":
      return ch.state === CHANNEL_OPEN_STATE && !ch.rescinded ? ch.open({ sendRingBytes: ECHO_RING_BYTES, recvRingBytes: ECHO_RING_BYTES }) : null;
  }
}

// ---- chan-host-to-client ------------------------------------------------------------

export type HostToClientStep =
  | { readonly kind: "post"; readonly spec: ToGuestSpec; readonly muts: readonly Mutation[]; readonly vp: number; readonly sint: number; readonly messageType: number }
  | { readonly kind: "op"; readonly op: GuestOp }
  | { readonly kind: "run"; readonly ns: number };

export interface HostToClientInput {
  readonly steps: readonly HostToClientStep[];
}

const hostToClientInput: fc.Arbitrary<HostToClientInput> = fc.record({
  steps: fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("post" as const),
          spec: toGuestSpec,
          muts: mutations(3),
          vp: fc.nat(1),
          sint: fc.oneof({ weight: 6, arbitrary: fc.constant(VMBUS_MESSAGE_SINT) }, { weight: 1, arbitrary: fc.nat(15) }),
          messageType: fc.oneof({ weight: 6, arbitrary: fc.constant(VMBUS_MESSAGE_TYPE_CHANNEL) }, { weight: 1, arbitrary: fc.constantFrom(2, 0x80000000, 0xffffffff) }),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("op" as const), op: guestOp }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: interestingInt(300_000) }) },
    ),
    { minLength: 1, maxLength: 12 },
  ),
});

async function runHostToClient(input: HostToClientInput, tally: Tally): Promise<void> {
  const w = await bootEchoWorld();
  const { sys, vm } = w;
  const live = liveOf(w);
  const hints = hintsFor(w, live);
  const bystanderRelid = w.bystander.channel.relid;
  const ops: { op: GuestOp; p: Promise<unknown> }[] = [];
  let acceptedOnSint2 = 0;
  for (const step of input.steps) {
    if (step.kind === "post") {
      let bytes = applyMutations(encodeToGuest(step.spec, live), fieldsOf(msgtypeOfGuestSpec(step.spec)), step.muts, hints);
      // Rescinding the bystander is a legitimate way to take it away; keep it out.
      bytes = protectRelid(bytes, CHANNELMSG_RESCIND_CHANNELOFFER, RESCIND_CHANNELOFFER_LAYOUT.child_relid, bystanderRelid, live.relids[0] ?? 1, "toGuest");
      const vcpu = vm.partition.vcpus[step.vp % vm.partition.vcpus.length];
      if (vcpu === undefined) continue;
      let st: number;
      try {
        st = sys.hv.postMessageToGuest(vm.partition, bytes, { vpIndex: vcpu.vpIndex, sint: step.sint, messageType: step.messageType });
      } catch (e) {
        requireTyped(e, "postMessageToGuest");
        continue;
      }
      if (st === 0 && step.sint === VMBUS_MESSAGE_SINT) acceptedOnSint2++;
      tally.add(st === 0 ? "messages posted" : "messages refused by the hypervisor");
    } else if (step.kind === "op") {
      let p: Promise<unknown> | null;
      try {
        p = startGuestOp(w, step.op);
      } catch (e) {
        requireTyped(e, `guest ${step.op.op}`);
        continue;
      }
      if (p !== null) {
        p.catch(() => undefined);
        ops.push({ op: step.op, p });
      }
    } else {
      await w.sim.runFor(step.ns, "host→client step");
    }
    await w.sim.runFor(10_000, "host→client step");
  }
  // Every control operation the guest started settles: the real server answers each one.
  for (const { op, p } of ops) {
    const r = await w.sim.settle(p, BYSTANDER_DEADLINE_NS, `guest ${op.op} on the victim channel`);
    tally.add(r.ok ? `guest ${op.op} ok` : `guest ${op.op} failed: ${r.error.code}`);
  }
  await w.sim.runFor(2_000_000, "after the hostile messages");
  const c = vm.client.counters;
  tally.add("malformed messages dropped", c.malformedMessages);
  tally.add("unexpected messages dropped", c.unexpectedMessages);
  tally.add("offers dropped", c.droppedOffers);
  // Nothing lost or doubled between the slot and the client: every message
  // accepted for SINT 2 (the hostile ones and the server's) was read once.
  // Messages still waiting behind the hypervisor's queue do not count yet.
  const expected = acceptedOnSint2 + vm.server.counters.messagesOut;
  if (c.messagesIn !== expected) {
    throw new FuzzViolation("messages", `the client read ${c.messagesIn} messages, but ${acceptedOnSint2} hostile + ${vm.server.counters.messagesOut} server messages were accepted for SINT 2`);
  }
  await checkEchoBystander(w, input.steps.length);
  w.secrets.verify("after the hostile host's messages");
  w.sim.finish();
}

function msgtypeOfGuestSpec(s: ToGuestSpec): number {
  switch (s.t) {
    case "offer":
      return CHANNELMSG_OFFERCHANNEL;
    case "rescind":
      return CHANNELMSG_RESCIND_CHANNELOFFER;
    case "alloffers":
      return CHANNELMSG_ALLOFFERS_DELIVERED;
    case "unload-response":
      return CHANNELMSG_UNLOAD_RESPONSE;
    case "open-result":
      return CHANNELMSG_OPENCHANNEL_RESULT;
    case "gpadl-created":
      return CHANNELMSG_GPADL_CREATED;
    case "gpadl-torndown":
      return CHANNELMSG_GPADL_TORNDOWN;
    case "version":
      return CHANNELMSG_VERSION_RESPONSE;
    case "modify-response":
      return CHANNELMSG_MODIFYCHANNEL_RESPONSE;
    case "wrong-way":
      return s.msgtype;
  }
}

/**
 * If `bytes` decodes (as the receiver will decode it) to a `msgtype`
 * message naming `relid`, renames it to `instead`.
 */
function protectRelid(bytes: Uint8Array, msgtype: number, offset: number, relidValue: number, instead: number, direction: "toGuest" | "toHost"): Uint8Array {
  let m: ChannelMessage;
  try {
    m = decodeChannelMessage(bytes, bytes.length, direction);
  } catch (e) {
    if (e instanceof VmbusSimError) return bytes;
    throw e;
  }
  if (m.msgtype !== msgtype || !("childRelid" in m) || m.childRelid !== relidValue) return bytes;
  const out = bytes.slice();
  new DataView(out.buffer).setUint32(offset, instead, true);
  return out;
}

export const chanHostToClient = defineTarget<HostToClientInput>({
  name: "chan-host-to-client",
  title: "hostile host → guest VMBus client (CHANNELMSG_* in the SynIC message slot)",
  corrupts:
    "host→guest channel messages (OFFER, RESCIND, OPEN_RESULT, GPADL_CREATED/TORNDOWN, VERSION/MODIFYCHANNEL/UNLOAD responses, ALLOFFERS): msgtype, relids, open ids, GPADL handles, statuses, monitor and connection ids, GUIDs, sizes; wrong-way and unused types; raw bytes; other SINTs and message types — during GPADL, MODIFYCHANNEL, close and open of the victim",
  arbitrary: hostToClientInput,
  run: runHostToClient,
});

// ---- chan-guest-to-server -----------------------------------------------------------

export type GuestToServerStep =
  | { readonly kind: "post"; readonly spec: ToHostSpec; readonly muts: readonly Mutation[]; readonly vp: number; readonly port: number; readonly messageType: number }
  | { readonly kind: "run"; readonly ns: number };

export interface GuestToServerInput {
  readonly steps: readonly GuestToServerStep[];
}

const guestToServerInput: fc.Arbitrary<GuestToServerInput> = fc.record({
  steps: fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("post" as const),
          spec: toHostSpec,
          muts: mutations(3),
          vp: fc.nat(1),
          // 0: the msg_conn_id the server handed out; 1 and 4: the contact ports; else a literal.
          port: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.constantFrom(VMBUS_MESSAGE_CONNECTION_ID, VMBUS_MESSAGE_CONNECTION_ID_4) }, { weight: 1, arbitrary: fc.nat(0xffffff) }),
          messageType: fc.oneof({ weight: 8, arbitrary: fc.constant(VMBUS_MESSAGE_TYPE_CHANNEL) }, { weight: 1, arbitrary: fc.constantFrom(2, 0x7fffffff) }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: interestingInt(300_000) }) },
    ),
    { minLength: 1, maxLength: 12 },
  ),
});

function msgtypeOfHostSpec(s: ToHostSpec): number {
  switch (s.t) {
    case "contact":
      return CHANNELMSG_INITIATE_CONTACT;
    case "request-offers":
      return CHANNELMSG_REQUESTOFFERS;
    case "unload":
      return CHANNELMSG_UNLOAD;
    case "open":
      return CHANNELMSG_OPENCHANNEL;
    case "close":
      return CHANNELMSG_CLOSECHANNEL;
    case "relid-released":
      return CHANNELMSG_RELID_RELEASED;
    case "gpadl":
      return CHANNELMSG_GPADL_HEADER;
    case "gpadl-body":
      return CHANNELMSG_GPADL_BODY;
    case "teardown":
      return CHANNELMSG_GPADL_TEARDOWN;
    case "modify":
      return CHANNELMSG_MODIFYCHANNEL;
    case "tl-connect":
      return CHANNELMSG_TL_CONNECT_REQUEST;
    case "wrong-way":
      return s.msgtype;
  }
}

/**
 * What the bystander must be protected from, because a guest may do it to
 * its own channels: UNLOAD (closes everything), CLOSECHANNEL of the
 * bystander's relid. Returns null to skip the message.
 */
function allowedToHost(bytes: Uint8Array, bystanderRelid: number): Uint8Array | null {
  let m: ChannelMessage;
  try {
    m = decodeChannelMessage(bytes, bytes.length, "toHost");
  } catch (e) {
    if (e instanceof VmbusSimError) return bytes;
    throw e;
  }
  if (m.msgtype === CHANNELMSG_UNLOAD) return null;
  if (m.msgtype === CHANNELMSG_CLOSECHANNEL && m.childRelid === bystanderRelid) return null;
  return bytes;
}

async function runGuestToServer(input: GuestToServerInput, tally: Tally): Promise<void> {
  const w = await bootEchoWorld();
  const { vm } = w;
  const live = liveOf(w);
  const hints = hintsFor(w, live);
  const bystanderRelid = w.bystander.channel.relid;
  const server = vm.server;
  let delivered = 0;
  for (const step of input.steps) {
    if (step.kind === "run") {
      await w.sim.runFor(step.ns, "guest→server step");
      continue;
    }
    const msgs = encodeToHost(step.spec, w, live);
    const fields = fieldsOf(msgtypeOfHostSpec(step.spec));
    for (let i = 0; i < msgs.length; i++) {
      const raw = msgs[i] as Uint8Array;
      // Corrupt the first message of a split GPADL (the header) or the only one.
      const mutated = i === 0 ? applyMutations(raw, fields, step.muts, hints) : raw;
      const bytes = allowedToHost(w.secrets.scrubBytes(mutated), bystanderRelid);
      if (bytes === null) {
        tally.add("messages kept from the bystander (UNLOAD, its CLOSECHANNEL)");
        continue;
      }
      const vcpu = vm.partition.vcpus[step.vp % vm.partition.vcpus.length];
      if (vcpu === undefined) continue;
      const port = step.port === 0 ? (server.msgConnId ?? VMBUS_MESSAGE_CONNECTION_ID_4) : step.port;
      const st = vcpu.postMessage(port, step.messageType, bytes);
      if (st === 0) delivered++;
      tally.add(st === 0 ? "messages posted" : `messages refused by the hypervisor (status ${st})`);
    }
    await w.sim.runFor(10_000, "guest→server step");
  }
  await w.sim.runFor(2_000_000, "after the hostile messages");
  const c = server.counters;
  const decoded = c.messagesIn.reduce((a, b) => a + b, 0);
  tally.add("server: malformed", c.malformedMessages);
  tally.add("server: rejected", c.rejectedMessages);
  tally.add("server: GPADLs created", c.gpadlsCreated);
  tally.add("server: channels failed", c.channelFailures);
  // Nothing lost or doubled: every message the hypervisor accepted for the
  // server (the hostile ones and the client's) was handled exactly once.
  const expected = delivered + vm.client.counters.messagesOut;
  if (decoded + c.malformedMessages !== expected) {
    throw new FuzzViolation(
      "messages",
      `the server handled ${decoded} + ${c.malformedMessages} malformed messages, but ${delivered} hostile + ${vm.client.counters.messagesOut} client messages were posted`,
    );
  }
  if (!isTyped(w.victimHost.lastError) && w.victimHost.lastError !== undefined) requireTyped(w.victimHost.lastError, "victim host channel");
  await checkEchoBystander(w, input.steps.length);
  w.secrets.verify("after the hostile guest's messages");
  w.sim.finish();
}

export const chanGuestToServer = defineTarget<GuestToServerInput>({
  name: "chan-guest-to-server",
  title: "hostile guest → VMBus server (CHANNELMSG_* by HvPostMessage)",
  corrupts:
    "guest→host channel messages (INITIATE_CONTACT, REQUESTOFFERS, OPENCHANNEL, CLOSECHANNEL, GPADL_HEADER/BODY, GPADL_TEARDOWN, RELID_RELEASED, MODIFYCHANNEL, TL_CONNECT): msgtype, relids, GPADL handles, range_buflen, rangecount, byte_count/offset, PFNs, target VPs, ring page offsets, versions, SINT/VTL, sizes; wrong-way and unused types; raw bytes; every message port and vCPU",
  arbitrary: guestToServerInput,
  run: runGuestToServer,
});
