/**
 * Ring headers and packet descriptors as a ring reader sees them
 * (vmbus-core.md §1, §2, §4.1), in both directions:
 *
 * - `ring-host-to-guest`: a hostile host writes the victim channel's
 *   host→guest ring — packets of every kind with corrupted descriptors and
 *   type-specific headers, garbage in the data area, impossible header words
 *   (write/read index out of range or unaligned, interrupt mask, pending
 *   send size, feature bits) — and signals the guest. The guest channel must
 *   take valid packets and fail itself with a typed error on the rest.
 * - `ring-guest-to-host`: the same from a hostile guest on the guest→host
 *   ring, signalled by hypercall; the host channel must fail (and be
 *   rescinded) with a typed error or carry on.
 *
 * After the input, a second echo device on the same VM must still echo, no
 * secret page may have changed, and a standalone RingReader over a copy of
 * the attacked ring must only ever return in-bounds packets or
 * RingCorruptError.
 */
import fc from "fast-check";
import {
  CHANNEL_OPENED_STATE,
  HV_RING_BUFFER,
  copyToRing,
  type ChannelEndpoint,
  type RingBuffer,
} from "../../core/index.js";
import { ECHO_OP_REQUEST, ECHO_OP_RESPONSE, encodeEcho } from "../../drivers/echo/index.js";
import { bootEchoWorld, checkEchoBystander, type EchoWorld } from "../harness/echo.js";
import { fieldValue, type Field, type FieldValue } from "../lib/mutate.js";
import { FuzzViolation, isTyped, requireTyped } from "../lib/oracle.js";
import { packetSpec, preparePacket, sendCorrupted, type PacketContext, type PacketSpec } from "../lib/packets.js";
import { probeRing } from "../lib/ring-probe.js";
import { defineTarget, type Tally } from "../lib/target.js";

const HEADER_WORDS = ["write_index", "read_index", "interrupt_mask", "pending_send_sz", "feature_bits"] as const;

export type RingStep =
  /** A packet of any kind through the hostile side's endpoint, corrupted in place once published. */
  | { readonly kind: "packet"; readonly spec: PacketSpec; readonly signal: boolean }
  /** One header word of the ring the victim reads ("victim-in") or writes ("victim-out"). */
  | { readonly kind: "header"; readonly ring: "victim-in" | "victim-out"; readonly word: number; readonly value: FieldValue; readonly signal: boolean }
  /** Raw bytes into the victim's incoming data area at the write index + `at`; `publish` moves the write index past them. */
  | { readonly kind: "garbage"; readonly at: number; readonly bytes: Uint8Array; readonly publish: boolean }
  /** The guest sends echo requests on the victim channel: ids for completions to name, packets for the host to read. */
  | { readonly kind: "request"; readonly count: number }
  | { readonly kind: "signal" }
  | { readonly kind: "run"; readonly ns: number };

export interface RingInput {
  readonly steps: readonly RingStep[];
  /** Bounce-buffer size of the standalone reader run over a copy of the attacked ring. */
  readonly probeMaxPacket: number;
}

/** Echo messages (well-formed and not) as packet payloads; their header fields can be corrupted too. */
const echoPayload: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .record({ op: fc.constantFrom(ECHO_OP_REQUEST, ECHO_OP_RESPONSE, 0, 3), status: fc.constantFrom(0, 0xc000000d), data: fc.uint8Array({ maxLength: 96 }) })
    .map((m) => encodeEcho(m)),
  fc.uint8Array({ maxLength: 160 }),
);

const ECHO_FIELDS: readonly Field[] = [
  { name: "echo.op", offset: 0, size: 4 },
  { name: "echo.status", offset: 4, size: 4 },
  { name: "echo.length", offset: 8, size: 4 },
  { name: "echo.reserved", offset: 12, size: 4 },
];

const ringStep: fc.Arbitrary<RingStep> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("packet" as const), spec: packetSpec(echoPayload), signal: fc.boolean() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("header" as const),
      ring: fc.constantFrom("victim-in" as const, "victim-out" as const),
      word: fc.nat(HEADER_WORDS.length - 1),
      value: fieldValue,
      signal: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("garbage" as const), at: fc.nat(256), bytes: fc.uint8Array({ minLength: 1, maxLength: 96 }), publish: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("request" as const), count: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant<RingStep>({ kind: "signal" }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("run" as const), ns: fc.nat(400_000) }) },
);

export const ringInput: fc.Arbitrary<RingInput> = fc.record({
  steps: fc.array(ringStep, { minLength: 1, maxLength: 10 }),
  probeMaxPacket: fc.constantFrom(64, 256, 4096, 65536),
});

/** The hostile side of the victim channel, in one direction. */
interface HostileSide {
  /** The endpoint the hostile side writes with, while its channel is up. */
  endpoint(): ChannelEndpoint | null;
  /** The ring the victim reads (hostile writes) and the ring the victim writes. */
  readonly victimIn: RingBuffer;
  readonly victimOut: RingBuffer;
  /** Still allowed to touch the rings (they are shared: mapped and not freed). */
  live(): boolean;
  /** Interrupt or event to the victim, whatever the rings say. */
  signal(): void;
}

function hostSide(w: EchoWorld): HostileSide {
  const ch = w.victim.channel;
  const inbound = ch.inbound;
  const outbound = ch.outbound;
  if (inbound === null || outbound === null) throw new Error("victim channel not open");
  return {
    endpoint: () => w.victimHost.endpoint,
    victimIn: inbound,
    victimOut: outbound,
    // The host keeps the ring GPADL mapped until the guest tears it down.
    live: () => ch.state === CHANNEL_OPENED_STATE,
    signal: () => w.victimHost.signalGuest(),
  };
}

function guestSide(w: EchoWorld): HostileSide {
  const ch = w.victim.channel;
  const inbound = ch.inbound;
  const outbound = ch.outbound;
  if (inbound === null || outbound === null) throw new Error("victim channel not open");
  const vcpu = w.vm.partition.vcpus[0];
  if (vcpu === undefined) throw new Error("no vCPU");
  return {
    endpoint: () => (ch.state === CHANNEL_OPENED_STATE ? ch.endpoint : null),
    victimIn: outbound,
    victimOut: inbound,
    // The guest's own memory: its to write while the rings are allocated.
    live: () => ch.state === CHANNEL_OPENED_STATE,
    signal: () => {
      vcpu.signalEvent(ch.connectionId);
    },
  };
}

function headerWordValue(ring: RingBuffer, word: number, v: FieldValue): number {
  const idx = (HV_RING_BUFFER[HEADER_WORDS[word % HEADER_WORDS.length] as (typeof HEADER_WORDS)[number]] >> 2) as number;
  const current = Atomics.load(ring.header, idx) >>> 0;
  const d = ring.dataSize;
  if (v.kind === "const") return Number(v.value & 0xffff_ffffn);
  if (v.kind === "delta") return (current + v.delta) >>> 0;
  const hints = [0, 8, d - 8, d, d + 8, ring.loadWriteIndex(), ring.loadReadIndex(), 1, 0x8000_0000, 0xffff_fff8];
  return (hints[v.index % hints.length] as number) >>> 0;
}

/** Plays the steps; returns how many echo requests the victim driver sent. */
async function playRing(w: EchoWorld, side: HostileSide, input: RingInput, tally: Tally): Promise<number> {
  let issued = 0;
  const ctx: PacketContext = {
    pool: w.pool,
    secrets: w.secrets,
    // Request ids are slot + 1: the first few name the victim's outstanding requests.
    ids: () => [1n, 2n, 3n, 4n],
  };
  // Victim requests may hang (the hostile side can swallow them), but any
  // that ends must end typed.
  const untyped: unknown[] = [];
  for (const step of input.steps) {
    switch (step.kind) {
      case "packet": {
        const ep = side.endpoint();
        if (ep === null || ep.closed || !side.live()) break;
        const p = preparePacket(step.spec, ctx, ECHO_FIELDS);
        const r = sendCorrupted(ep, p, step.spec.muts);
        if (r.corrupted) tally.add("packets corrupted in the ring");
        r.sent.catch((e: unknown) => requireTyped(e, "hostile send"));
        if (step.signal) side.signal();
        break;
      }
      case "header": {
        if (!side.live()) break;
        const ring = step.ring === "victim-in" ? side.victimIn : side.victimOut;
        const word = step.word % HEADER_WORDS.length;
        const idx = HV_RING_BUFFER[HEADER_WORDS[word] as (typeof HEADER_WORDS)[number]] >> 2;
        Atomics.store(ring.header, idx, headerWordValue(ring, word, step.value) | 0);
        if (step.signal) side.signal();
        break;
      }
      case "garbage": {
        if (!side.live()) break;
        const ring = side.victimIn;
        const d = ring.dataSize;
        const at = ((ring.loadWriteIndex() % d) + step.at) % d & ~7;
        const bytes = w.secrets.scrubBytes(step.bytes);
        copyToRing(ring, at, bytes, 0, Math.min(bytes.length, d));
        if (step.publish) ring.storeWriteIndex((at + ((bytes.length + 7) & ~7)) % d);
        break;
      }
      case "request":
        for (let i = 0; i < step.count; i++) {
          const data = Uint8Array.from({ length: 24 + i }, (_, k) => (k * 13 + i) & 0xff);
          issued++;
          w.victim.echo(data).then(
            () => tally.add("victim echoes completed"),
            (e: unknown) => {
              if (isTyped(e)) tally.add(`victim echo failed: ${e.code}`);
              else untyped.push(e);
            },
          );
        }
        break;
      case "signal":
        if (side.live()) side.signal();
        break;
      case "run":
        await w.sim.runFor(step.ns, "ring fuzz step");
        break;
    }
    await w.sim.runFor(20_000, "ring fuzz step");
  }
  await w.sim.runFor(2_000_000, "after the hostile ring input");
  if (untyped.length > 0) requireTyped(untyped[0], "victim echo request");
  return issued;
}

async function checkAfter(w: EchoWorld, side: HostileSide, input: RingInput, issued: number, tally: Tally): Promise<void> {
  // A completion the hostile side repeats or forges must not complete a request twice (the requestor's ids).
  if (w.victim.completed > issued) {
    throw new FuzzViolation("completions", `the victim driver counted ${w.victim.completed} echo replies for ${issued} requests`);
  }
  const guestErr = w.victim.channel.lastError;
  if (guestErr !== null) {
    requireTyped(guestErr, "victim guest channel lastError");
    tally.add(`guest failed the channel: ${guestErr.code}`);
  }
  const hostErr: unknown = w.victimHost.lastError;
  if (hostErr !== undefined) {
    requireTyped(hostErr, "victim host channel lastError");
    tally.add(`host failed the channel: ${hostErr.code}`);
  }
  if (side.live()) tally.add(`standalone reader packets`, probeRing(side.victimIn, input.probeMaxPacket));
  await checkEchoBystander(w, input.steps.length);
  w.secrets.verify("after the hostile ring input");
  w.sim.finish();
}

export const ringHostToGuest = defineTarget<RingInput>({
  name: "ring-host-to-guest",
  title: "hostile host → guest ring reader (host→guest ring of an echo channel)",
  corrupts:
    "descriptors (type, offset8, len8, flags, trans_id), GPA-direct / transfer-page headers (counts, ranges, PFNs), payload fields, raw data-area bytes, and header words (write/read index, interrupt mask, pending_send_sz, feature bits) of both rings",
  arbitrary: ringInput,
  async run(input, tally) {
    const w = await bootEchoWorld();
    const side = hostSide(w);
    const issued = await playRing(w, side, input, tally);
    await checkAfter(w, side, input, issued, tally);
  },
});

export const ringGuestToHost = defineTarget<RingInput>({
  name: "ring-guest-to-host",
  title: "hostile guest → host ring reader (guest→host ring of an echo channel)",
  corrupts:
    "descriptors (type, offset8, len8, flags, trans_id), GPA-direct / transfer-page headers (counts, ranges, PFNs), payload fields, raw data-area bytes, and header words (write/read index, interrupt mask, pending_send_sz, feature bits) of both rings",
  arbitrary: ringInput,
  async run(input, tally) {
    const w = await bootEchoWorld();
    const side = guestSide(w);
    const issued = await playRing(w, side, input, tally);
    await checkAfter(w, side, input, issued, tally);
  },
});
