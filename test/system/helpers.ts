import { inject, injectable, type DependencyContainer } from "tsyringe";
import {
  CHANNEL_OPENED_STATE,
  HV_DEVICE,
  VMBUS_CHANNEL,
  VmbusSystem,
  registerGuestDriver,
  registerHostDevice,
  type GuestChannel,
  type SystemOptions,
  type VmbusDevice,
  type VmbusDriver,
} from "../../core/index.js";
import { ECHO_CLASS_ID, EchoDriver, EchoHostDevice, echoPlugin } from "../../drivers/echo/index.js";

/** A guest driver for the echo class with 128 KiB rings: 64 pages, so the GPADL needs body messages. */
@injectable()
export class BigRingEchoDriver implements VmbusDriver {
  constructor(
    @inject(HV_DEVICE) readonly device: VmbusDevice,
    @inject(VMBUS_CHANNEL) readonly channel: GuestChannel,
  ) {}
  async probe(): Promise<void> {
    await this.channel.open({ sendRingBytes: 64 * 1024, recvRingBytes: 64 * 1024 });
  }
  async remove(): Promise<void> {
    if (this.channel.state === CHANNEL_OPENED_STATE && !this.channel.rescinded) await this.channel.close();
  }
}

/** The echo host device with a guest driver that uses big rings instead of the echo driver. */
export function bigRingPlugin(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "bigring", classIds: [ECHO_CLASS_ID] }, BigRingEchoDriver);
  registerHostDevice(c, { name: "echo", classId: ECHO_CLASS_ID }, EchoHostDevice);
}

export async function bootEcho(options: SystemOptions & { vcpus?: number; devices?: number; vms?: number } = {}) {
  const sys = new VmbusSystem({ seed: 7, ...options, plugins: options.plugins ?? [echoPlugin] });
  const vms = [];
  for (let i = 0; i < (options.vms ?? 1); i++) {
    const vm = sys.addVm({ name: `vm${i + 1}`, vcpus: options.vcpus ?? 4 });
    for (let d = 0; d < (options.devices ?? 1); d++) sys.addHostDevice(vm, "echo");
    vms.push(vm);
  }
  await sys.boot();
  return { sys, vm: vms[0]!, vms, echo: vms[0]!.drivers<EchoDriver>("echo") };
}
