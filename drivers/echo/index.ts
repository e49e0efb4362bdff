/**
 * The echo sample device pair: the plugin manifest and the public API.
 * Register with `new VmbusSystem({ plugins: [echoPlugin] })`.
 */
import type { DependencyContainer } from "tsyringe";
import { registerGuestDriver, registerHostDevice } from "../../core/index.js";
import { EchoDriver } from "./guest.js";
import { EchoHostDevice } from "./host.js";
import { ECHO_CLASS_ID } from "./protocol.js";

export * from "./protocol.js";
export { EchoDriver, ECHO_RING_BYTES } from "./guest.js";
export { EchoHostDevice, type EchoHostConfig } from "./host.js";

export function echoPlugin(container: DependencyContainer): void {
  registerGuestDriver(container, { name: "echo", classIds: [ECHO_CLASS_ID] }, EchoDriver);
  registerHostDevice(container, { name: "echo", classId: ECHO_CLASS_ID, subchannelLimit: 0, monitored: true }, EchoHostDevice);
}
