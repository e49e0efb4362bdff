/**
 * Two scripted network guests in one VM (test/drivers/netvsc/host/harness.ts):
 * the victim NIC, whose primary channel the fuzz input speaks NVSP and RNDIS
 * on, and a bystander NIC on the same virtual switch that must still send
 * and receive frames afterwards. Both talk to the real netvsp; each has a
 * "peer" port on the switch standing in for the rest of the network.
 */
import { VM_PKT_DATA_USING_XFER_PAGES, decodeXferPages, type GuestChannel, type HostDevice, type IncomingPacket } from "../../core/index.js";
import { NetvspDevice } from "../../drivers/netvsc/host/index.js";
import { decodeRndisMessage, encodeNvspMessage, encodeRndisMessage, parseMac } from "../../drivers/netvsc/protocol/index.js";
import { NIC_MAC, RING_BYTES, ScriptedNetGuest, bootNetvsp } from "../../test/drivers/netvsc/host/harness.js";
import { FuzzViolation, SecretPages, SimDriver } from "../lib/oracle.js";

export const BYSTANDER_MAC = "00:15:5d:00:00:03";
const POOL_PAGES = 32;

export interface NetWorld {
  readonly victim: ScriptedNetGuest;
  readonly bystander: ScriptedNetGuest;
  readonly pool: readonly number[];
  readonly secrets: SecretPages;
  readonly sim: SimDriver;
  /** GPADL handles a hostile guest might name: its own buffers', then the bystander's. */
  readonly handles: readonly number[];
}

/** What bootNetvsp's channel callback does, for a device added later: keep every packet, decode transfer-page headers. */
function collect(g: ScriptedNetGuest): (p: IncomingPacket) => void {
  return (p) => {
    const base = { type: p.type, transId: p.transId, flags: p.flags, data: p.data().slice() };
    if (p.type === VM_PKT_DATA_USING_XFER_PAGES) {
      const h = decodeXferPages(p);
      g.packets.push({ ...base, setId: h.xferPagesetId, ranges: h.ranges });
    } else g.packets.push(base);
  };
}

export async function bootNetWorld(): Promise<NetWorld> {
  const victim = await bootNetvsp();
  await victim.init();
  await victim.bringUp();
  const { sys, vm } = victim;
  // The bystander: a second NIC on the same switch, hot-added (the guest has asked for offers already).
  const device: HostDevice = sys.addHostDevice(vm, "netvsp", { config: { mac: BYSTANDER_MAC } });
  const handler = device.handler;
  if (!(handler instanceof NetvspDevice)) throw new Error("not a NetvspDevice");
  const offered = (): GuestChannel | undefined => vm.client.devices.find((d) => d.primary.offer.ifInstance.equals(device.offer.instanceId))?.primary;
  await sys.run(async () => {
    while (offered() === undefined) await sys.sim.scheduler.sleep(10_000);
  });
  const primary = offered() as GuestChannel;
  const bystander = new ScriptedNetGuest(sys, vm, device, handler, primary, victim.switches);
  await sys.run(primary.open({ sendRingBytes: RING_BYTES, recvRingBytes: RING_BYTES, requestorSize: 1024, onPacket: collect(bystander) }));
  await bystander.init();
  await bystander.bringUp();
  const mem = vm.partition.memory;
  const first = mem.allocContiguous(POOL_PAGES);
  const handles = [victim.recvBuf?.handle, victim.sendBuf?.handle, bystander.recvBuf?.handle, bystander.sendBuf?.handle].filter((h): h is number => h !== undefined);
  return {
    victim,
    bystander,
    pool: Array.from({ length: POOL_PAGES }, (_, i) => first + i),
    secrets: SecretPages.plant(mem, 4),
    sim: new SimDriver(sys.sim.scheduler),
    handles,
  };
}

/** The victim's MAC and the bystander's, as bytes. */
export const VICTIM_MAC_BYTES = parseMac(NIC_MAC);
export const BYSTANDER_MAC_BYTES = parseMac(BYSTANDER_MAC);

/**
 * The bystander still sends (a frame from a send-buffer section reaches its
 * peer port intact) and receives (a frame from the peer is indicated through
 * its receive buffer intact, and completed).
 */
export async function checkNetBystander(w: NetWorld, tag: number): Promise<void> {
  const g = w.bystander;
  const out = new Uint8Array(200);
  out.set(Uint8Array.of(0x02, 0, 0, 0, 0, 0x77), 0);
  out.set(BYSTANDER_MAC_BYTES, 6);
  out[12] = 0x88;
  out[13] = 0xb5;
  for (let i = 14; i < out.length; i++) out[i] = (i + tag) & 0xff;
  const before = g.peerFrames.length;
  const rndis = encodeRndisMessage({ kind: "packet", data: out, ppis: [] });
  g.writeSection(1, rndis);
  const c = await w.sim.expectOk(
    g.primary.sendRequest(encodeNvspMessage({ kind: "send_rndis_pkt", channelType: 0, sendBufferSectionIndex: 1, sendBufferSectionSize: rndis.length })),
    50_000_000,
    "bystander transmit",
  );
  if (new DataView(c.data.buffer, c.data.byteOffset).getUint32(4, true) !== 1) throw new FuzzViolation("bystander", "the bystander's transmit was completed with a failure status");
  await w.sim.runFor(1_000_000, "bystander frame crossing the switch");
  if (!g.peerFrames.slice(before).some((f) => Buffer.from(f).equals(Buffer.from(out)))) {
    throw new FuzzViolation("bystander", "the bystander's frame did not reach the switch intact");
  }
  // Receive: the peer sends to the bystander's MAC.
  const inFrame = out.slice();
  inFrame.set(BYSTANDER_MAC_BYTES, 0);
  inFrame.set(Uint8Array.of(0x02, 0, 0, 0, 0, 0x78), 6);
  g.takeXfer();
  g.peer.send(inFrame);
  await w.sim.runFor(1_000_000, "frame to the bystander");
  const xfers = g.takeXfer();
  let got = false;
  for (const p of xfers) {
    for (const r of p.ranges ?? []) {
      const m = decodeRndisMessage(g.readRecv(r));
      if (m.kind === "packet" && Buffer.from(m.data).equals(Buffer.from(inFrame))) got = true;
    }
    await w.sim.expectOk(g.primary.sendCompletion(p.transId, encodeNvspMessage({ kind: "send_rndis_pkt_complete", status: 1 }, { size: 8 })), 50_000_000, "bystander receive completion");
  }
  if (!got) throw new FuzzViolation("bystander", `the bystander did not receive the peer's frame (${xfers.length} transfer-page packets)`);
}
