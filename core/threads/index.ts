/** core/threads: threaded mode — the host half of a VM in a worker thread over shared guest memory. */
export { ThreadedSystem, ThreadedVm, RemoteHostHypervisor, HostThreadError } from "./threaded-system.js";
export type { ThreadedSystemOptions, ThreadedRunReport } from "./threaded-system.js";
export { HostThread, ThreadHostHypervisor, importHostSetup, importPluginManifests } from "./host-side.js";
export type {
  HostDeviceReport,
  HostFailedMessage,
  HostDeviceSpec,
  HostReadyMessage,
  HostReportMessage,
  HostThreadMessage,
  HostThreadParams,
  HostSetup,
  HostSetupContext,
  HostSetupResult,
  HostSetupSpec,
  PluginModuleSpec,
} from "./host-side.js";
export { injectHostFaults, hostFaultReport } from "./host-faults.js";
export type { HostFaultReport, HostFaultSpec, HostFaultWindow } from "./host-faults.js";
export { DoorbellGate } from "./gate.js";
export type { DoorbellGateOptions } from "./gate.js";
export { LINK_MAX_CONNECTION_ID, LINK_MAX_VCPUS, MAILBOX_BYTES, createLinkBuffers, readLinkCounters } from "./link.js";
export type { ThreadLinkBuffers, ThreadLinkCounters } from "./link.js";
