/**
 * A VM with two echo devices (test/system/helpers.ts `bootEcho`): the
 * victim, whose channel or control messages the fuzz input attacks, and the
 * bystander, which must still echo correctly afterwards. Both are real
 * channels of the real client and server, so hostile bytes go through the
 * same ring, SynIC and control-plane code as any I/O.
 */
import { CHANNEL_OPENED_STATE, type HostChannel, type Vm, type VmbusSystem } from "../../core/index.js";
import type { EchoDriver } from "../../drivers/echo/index.js";
import { bootEcho } from "../../test/system/helpers.js";
import { FuzzViolation, SecretPages, SimDriver } from "../lib/oracle.js";

/** Virtual time the bystander's requests get (far more than a round trip takes). */
export const BYSTANDER_DEADLINE_NS = 50_000_000;
/**
 * The client's control-request timeout in these runs: well inside the
 * deadline above, so a response the hostile host garbled or provoked the
 * server into withholding (a GPADL_TEARDOWN after a forged failing
 * OPENCHANNEL_RESULT) ends in ETIMEDOUT before the oracle calls it a hang.
 */
export const FUZZ_CONTROL_TIMEOUT_NS = 5_000_000;

export interface EchoWorld {
  readonly sys: VmbusSystem;
  readonly vm: Vm;
  readonly victim: EchoDriver;
  readonly bystander: EchoDriver;
  /** The host side of the victim's channel. */
  readonly victimHost: HostChannel;
  readonly bystanderHost: HostChannel;
  /** Pages the hostile side may name (allocated for it, so legitimately shared when named). */
  readonly pool: readonly number[];
  readonly secrets: SecretPages;
  readonly sim: SimDriver;
}

export async function bootEchoWorld(): Promise<EchoWorld> {
  const { sys, vm, echo } = await bootEcho({ devices: 2, vcpus: 2 });
  const [victim, bystander] = echo;
  if (victim === undefined || bystander === undefined) throw new Error("bootEcho did not bind two echo drivers");
  const host = (d: EchoDriver): HostChannel => {
    const ch = vm.server.channel(d.channel.relid);
    if (ch === undefined) throw new Error(`no host channel for relid ${d.channel.relid}`);
    return ch;
  };
  vm.client.setControlTimeout(FUZZ_CONTROL_TIMEOUT_NS);
  const mem = vm.partition.memory;
  const first = mem.allocContiguous(16);
  const pool = Array.from({ length: 16 }, (_, i) => first + i);
  return {
    sys,
    vm,
    victim,
    bystander,
    victimHost: host(victim),
    bystanderHost: host(bystander),
    pool,
    // Right behind the pool: a pool overrun lands in a secret page.
    secrets: SecretPages.plant(mem, 4),
    sim: new SimDriver(sys.sim.scheduler),
  };
}

/** The bystander echoes 64 bytes correctly and its channel is whole on both sides. */
export async function checkEchoBystander(w: EchoWorld, tag: number): Promise<void> {
  const data = Uint8Array.from({ length: 64 }, (_, i) => (i * 7 + tag) & 0xff);
  const back = await w.sim.expectOk(w.bystander.echo(data), BYSTANDER_DEADLINE_NS, "bystander echo");
  if (back.length !== data.length || back.some((b, i) => b !== data[i])) {
    throw new FuzzViolation("bystander", `bystander echo came back different: ${back.length} bytes`);
  }
  if (w.bystander.channel.state !== CHANNEL_OPENED_STATE || w.bystander.channel.lastError !== null) {
    throw new FuzzViolation("bystander", `bystander channel is in state ${w.bystander.channel.state} (${String(w.bystander.channel.lastError)})`);
  }
  if (w.bystanderHost.failed) throw new FuzzViolation("bystander", `the host failed the bystander's channel: ${String(w.bystanderHost.lastError)}`);
}
