/** core/hv: the hypervisor model — partitions, vCPUs, SynIC, monitor pages, hypercalls, throttling. */
export * from "./constants.js";
export * from "./layout.js";
export { HypercallCounters, PartitionCounters, VcpuCounters } from "./counters.js";
export { Vcpu, currentVcpu } from "./vcpu.js";
export type { SintHandler } from "./vcpu.js";
export { Synic } from "./synic.js";
export type { SynicPages } from "./synic.js";
export { MonitorPages, MONITOR_PAGE_CLIENT, MONITOR_PAGE_SERVER } from "./monitor.js";
export type { MonitorChannelConfig } from "./monitor.js";
export { GuestPartition, HostPartition, Partition } from "./partition.js";
export type { PartitionKind, SharedPartitionLayout } from "./partition.js";
export { Hypervisor } from "./hypervisor.js";
export { FaultInjector, FaultSpecError, HostStallFault, InjectedFault, InterruptFault, MonitorFault, SuspendFault } from "./faults.js";
export type {
  FaultKind,
  FaultState,
  FaultTotals,
  FaultWindow,
  InterruptFaultOptions,
  MonitorFaultOptions,
  StallableHostDevice,
  SuspendFaultOptions,
} from "./faults.js";
export type {
  GuestMessageOptions,
  HostEventHandler,
  HostMessage,
  HostMessageHandler,
  HypervisorOptions,
  SignalClassifier,
  SignalVia,
  VmOptions,
} from "./hypervisor.js";
export { VmbusIsr, installVmbusIsr } from "./vmbus-isr.js";
export type { ChannelInterruptHandler, ChannelLookup, SynicMessageHandler, VmbusIsrOptions } from "./vmbus-isr.js";
export * from "./guest.js";
