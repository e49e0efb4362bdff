/**
 * Interrupt reports: the part of /proc/interrupts VMBus shows in a Linux
 * guest on x86, and a per-channel table of the §9.3 counters.
 *
 * /proc/interrupts (`kernel/irq/proc.c` `show_interrupts`, x86
 * `arch_show_interrupts`), for fewer than 1000 IRQs (`prec` = 3):
 * - header: `%*s` of prec + 8 blanks, then `CPU%-8d` per online CPU, "\n";
 * - the VMBus row: `%*s: ` of "HYP", `%10u ` per online CPU, then
 *   "  Hypervisor callback interrupts\n" (`irq_hv_callback_count`, bumped
 *   once per VMBus interrupt on that CPU).
 * Only the header and the HYP row are produced: the simulation has no other
 * interrupt sources.
 */
import type { SysfsBus } from "./source.js";

/** Width of the label column for fewer than 1000 IRQs (`show_interrupts`' `prec`). */
export const PROC_INTERRUPTS_PREC = 3;

/** The online vCPU numbers, ascending (`for_each_online_cpu`). */
export function onlineVcpus(bus: SysfsBus): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < bus.vcpuCount; cpu++) {
    if (bus.vcpuOnline === undefined || bus.vcpuOnline(cpu)) out.push(cpu);
  }
  return out;
}

/** The header and HYP lines of /proc/interrupts. */
export function procInterrupts(bus: SysfsBus): string {
  const cpus = onlineVcpus(bus);
  const counts = bus.hypervisorCallbackInterrupts();
  let header = " ".repeat(PROC_INTERRUPTS_PREC + 8);
  for (const j of cpus) header += `CPU${String(j).padEnd(8, " ")}`;
  let hyp = `${"HYP".padStart(PROC_INTERRUPTS_PREC, " ")}: `;
  for (const j of cpus) hyp += `${String((counts[j] ?? 0) >>> 0).padStart(10, " ")} `;
  return `${header}\n${hyp}  Hypervisor callback interrupts\n`;
}

/** One channel's counters, as its `channels/<relid>/` directory shows them. */
export interface ChannelInterruptRow {
  /** Instance GUID of the device (the sysfs directory name). */
  readonly device: string;
  readonly relid: number;
  readonly cpu: number;
  readonly interrupts: number;
  readonly events: number;
  readonly intrInFull: number;
  readonly intrOutEmpty: number;
  readonly outFullFirst: number;
  readonly outFullTotal: number;
}

/** Every channel of every device, sorted by relid. */
export function channelInterruptRows(bus: SysfsBus): ChannelInterruptRow[] {
  const rows: ChannelInterruptRow[] = [];
  for (const d of bus.devices()) {
    for (const c of d.channels()) {
      rows.push({
        device: d.instanceId.toString(),
        relid: c.relid,
        cpu: c.targetCpu,
        interrupts: c.interrupts,
        events: c.sigEvents,
        intrInFull: c.intrInFull,
        intrOutEmpty: c.intrOutEmpty,
        outFullFirst: c.outFullFirst,
        outFullTotal: c.outFullTotal,
      });
    }
  }
  return rows.sort((a, b) => a.relid - b.relid);
}

const COLUMNS: readonly [string, (r: ChannelInterruptRow) => string][] = [
  ["device", (r) => r.device],
  ["relid", (r) => String(r.relid)],
  ["cpu", (r) => String(r.cpu)],
  ["interrupts", (r) => String(r.interrupts)],
  ["events", (r) => String(r.events)],
  ["intr_in_full", (r) => String(r.intrInFull)],
  ["intr_out_empty", (r) => String(r.intrOutEmpty)],
  ["out_full_first", (r) => String(r.outFullFirst)],
  ["out_full_total", (r) => String(r.outFullTotal)],
];

/**
 * A fixed-width text table of the rows, headed by the sysfs attribute names:
 * the device column left-aligned, numbers right-aligned, columns two blanks
 * apart, each line ending in "\n".
 */
export function formatChannelInterruptTable(rows: readonly ChannelInterruptRow[]): string {
  const cells = [COLUMNS.map(([h]) => h), ...rows.map((r) => COLUMNS.map(([, f]) => f(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((line) => (line[i] ?? "").length)));
  return cells
    .map(
      (line) =>
        line
          .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0, " ") : cell.padStart(widths[i] ?? 0, " ")))
          .join("  ") + "\n",
    )
    .join("");
}

/** `formatChannelInterruptTable(channelInterruptRows(bus))`. */
export function channelInterruptTable(bus: SysfsBus): string {
  return formatChannelInterruptTable(channelInterruptRows(bus));
}
