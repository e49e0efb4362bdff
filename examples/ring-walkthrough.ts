/**
 * A walk through one VMBus ring (vmbus-core.md §1–§4): a guest writes
 * packets of every kind into its outbound ring, the host reads them, and
 * after each step the ring's header fields and counters are printed — the
 * same numbers Linux shows in sysfs (`out_write_index`, `intr_out_empty`, …).
 *
 * Run it with `npm start` (or `node dist/examples/ring-walkthrough.js`).
 */
import {
  GpaDirectRanges,
  GuestMemory,
  PAGE_SIZE,
  RingBuffer,
  RingReader,
  RingWriter,
  VM_PKT_NAMES,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VmbusRequestor,
  decodeXferPages,
  type IncomingPacket,
} from "../core/index.js";

const memory = new GuestMemory({ bytes: 1024 * 1024 });
// Linux allocates a channel's two rings as one contiguous block: outbound first.
const ringPages = 2; // one header page + one 4 KiB data page each, to see wrap-around soon
const first = memory.allocContiguous(2 * ringPages);
const outbound = new RingBuffer(memory.span(first * PAGE_SIZE, ringPages * PAGE_SIZE), "guest→host");
const inbound = new RingBuffer(memory.span((first + ringPages) * PAGE_SIZE, ringPages * PAGE_SIZE), "host→guest");
outbound.init();
inbound.init();

const guestOut = new RingWriter(outbound);
const hostIn = new RingReader(outbound, { maxPacketSize: 4096 });
const hostOut = new RingWriter(inbound);
const guestIn = new RingReader(inbound);
const requests = new VmbusRequestor<string>(64, "demo channel");

function show(step: string): void {
  const o = outbound.debugInfo();
  const i = inbound.debugInfo();
  console.log(`\n── ${step}`);
  console.log(
    `   out ring: write_index=${o.writeIndex} read_index=${o.readIndex} interrupt_mask=${o.interruptMask} ` +
      `pending_send_sz=${o.pendingSendSize} feature_bits=${o.featureBits} to_read=${o.bytesAvailToRead} to_write=${o.bytesAvailToWrite}`,
  );
  console.log(
    `   in  ring: write_index=${i.writeIndex} read_index=${i.readIndex} interrupt_mask=${i.interruptMask} ` +
      `pending_send_sz=${i.pendingSendSize} to_read=${i.bytesAvailToRead} to_write=${i.bytesAvailToWrite}`,
  );
  console.log(
    `   counters: intr_out_empty=${guestOut.intrOutEmpty} out_full_first=${guestOut.outFullFirst} ` +
      `out_full_total=${guestOut.outFullTotal} intr_in_full=${guestIn.intrInFull} host intr_in_full=${hostIn.intrInFull}`,
  );
}

function describe(p: IncomingPacket): string {
  const base = `${VM_PKT_NAMES[p.type] ?? p.type} len8=${p.len8} offset8=${p.offset8} flags=${p.flags} trans_id=${p.transId}`;
  if (p.type === 0x9) {
    const r = new GpaDirectRanges().parse(p);
    const parts = [];
    for (let k = 0; k < r.count; k++) parts.push(`${r.byteCount(k)}B@${r.byteOffset(k)} pfns=[${Array.from({ length: r.pfnCount(k) }, (_, j) => r.pfn(k, j)).join(",")}]`);
    return `${base} ranges: ${parts.join("; ")}`;
  }
  if (p.type === 0x7) {
    const x = decodeXferPages(p);
    return `${base} pageset=0x${x.xferPagesetId.toString(16)} ranges=${x.ranges.map((q) => `${q.byteCount}B@${q.byteOffset}`).join(",")}`;
  }
  return `${base} payload=${p.dataLength}B`;
}

function hostDrain(): void {
  // The host's contract: mask interrupts while draining, drain completely,
  // unmask, and look once more (data may have arrived while masked).
  hostIn.beginRead();
  for (;;) {
    for (let p = hostIn.first(); p; p = hostIn.next()) {
      console.log(`   host reads ${describe(p)}`);
      if (p.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) {
        if (!hostOut.writeCompletion(p.transId, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0))) console.log("   host: inbound ring full");
      }
    }
    const wake = hostIn.close();
    if (wake) console.log("   host → guest: signal (the guest was blocked and now has room)");
    if (hostIn.endRead() === 0) break;
  }
  if (hostOut.commit()) console.log("   host → guest: interrupt (inbound ring went empty → non-empty)");
}

function guestDrain(): void {
  for (let p = guestIn.first(); p; p = guestIn.next()) {
    const what = requests.complete(p.transIdLo, p.transIdHi);
    console.log(`   guest reads ${VM_PKT_NAMES[p.type]} for request ${p.transId} ("${what}")`);
  }
  if (guestIn.close()) console.log("   guest → host: signal (host was blocked)");
}

console.log("vmbus-sim ring walkthrough: two rings of one channel in guest memory (4 KiB data each)");
show("fresh rings: indices 0, feat_pending_send_sz set by the guest");

let id = requests.next("inband read request");
guestOut.writeInband(id, new TextEncoder().encode("hello host"), VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED);
console.log(guestOut.commit() ? "\n   guest → host: signal (ring went empty → non-empty)" : "\n   no signal");
show("guest wrote VM_PKT_DATA_INBAND (16 B descriptor + 10 B payload + 6 B padding + 8 B trailer = 40 B)");

id = requests.next("page buffer write");
guestOut.writePageBuffer(id, [
  { len: 512, offset: 0, pfn: first + 10 },
  { len: 512, offset: 512, pfn: first + 11 },
], new Uint8Array(0));
id = requests.next("multi-page buffer write");
guestOut.writeMpb(id, [{ byteCount: 3 * 4096, byteOffset: 0, pfns: [first + 20, first + 21, first + 22] }], new Uint8Array(16));
console.log(guestOut.commit() ? "\n   guest → host: signal" : "\n   no signal: the host has not read the first packet yet, so the ring was not empty");
show("guest wrote two GPA-direct packets (page buffer and multi-page buffer) in one batch, one index update");

hostDrain();
show("host drained the outbound ring and wrote three completions");

guestDrain();
show("guest read the completions; its request ids are free again");

hostOut.writeXferPages(0, 0xcafe, [{ byteCount: 1514, byteOffset: 0 }], new Uint8Array(0), 0);
hostOut.commit();
for (let p = guestIn.first(); p; p = guestIn.next()) console.log(`   guest reads ${describe(p)}`);
guestIn.close();
show("host sent a transfer-page packet (netvsc receive style)");

// Fill the outbound ring until a write is refused.
let n = 0;
while (guestOut.writeInband(1000 + n, new Uint8Array(400))) n++;
guestOut.commit();
const needed = RingWriter.packetTotal(0, 400);
const retry = guestOut.block(needed);
show(`guest filled the ring with ${n} packets; the next write was refused (the ring never fills completely) and the guest blocked on pending_send_sz=${needed} (retry now: ${retry})`);

let freed = 0;
hostIn.beginRead();
for (let p = hostIn.first(); p && freed < 2; p = hostIn.next()) freed++;
// The loop stopped holding a third packet it did not step past: close()
// publishes only the two it consumed, as Linux's iterator does.
const woke = hostIn.close();
hostIn.endRead();
show(`host read ${freed} packets; signal the blocked guest: ${woke} (only on the not-enough → enough transition)`);
guestOut.unblock();
console.log(guestOut.writeInband(2000, new Uint8Array(400)) ? "\n   guest's retry fits" : "\n   guest's retry still does not fit");
guestOut.commit();
show("done");
