/**
 * The text `vmbus-sim run` prints: boot summaries, lsvmbus -vv, the
 * /proc/interrupts view, per-channel counters and the workload figures.
 * Kept apart from the run so `--json` can print the same results as data.
 */
import { formatChannelInterruptTable, lsvmbus, procInterrupts } from "../core/index.js";
import { formatFailures, type RequestTally } from "./ledger.js";
import type { BootSummary, BuiltSystem, RunResults } from "./simulate.js";

/** A fixed-width table: first column left-aligned, the rest right-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ").trimEnd()).join("\n");
}

export function formatBoot(s: BootSummary): string {
  const head = `${s.vm}: VMBus ${s.version} · ${s.offers} offer(s) · ${s.channelsOpened} channel(s) opened · handshake ${s.handshakeUs.toFixed(1)} µs of virtual time`;
  return [head, ...s.steps.map((l) => `  ${l}`)].join("\n");
}

const f1 = (x: number): string => x.toFixed(1);

export function formatResults(built: BuiltSystem, r: RunResults): string {
  const out: string[] = [];
  const section = (title: string): void => {
    out.push("", `== ${title} ==`);
  };
  section(`boot (seed ${r.seed})`);
  for (const v of r.vms) out.push(formatBoot(v.boot));
  section(`run: ${(r.runUs / 1000).toFixed(3)} ms of virtual time`);
  for (const a of r.actions) out.push(`t=${a.atMs} ms ${a.vm}: ${a.what}: ${a.result}`);
  for (const b of built.vms) {
    section(`lsvmbus -vv (${b.vm.name})`);
    out.push(lsvmbus(b.vm.sysfs, 2).trimEnd());
    section(`/proc/interrupts (${b.vm.name})`);
    out.push(procInterrupts(b.vm.sysfs.bus).trimEnd());
    section(`channels (${b.vm.name}): interrupts, events, full-ring hits`);
    const v = r.vms.find((x) => x.boot.vm === b.vm.name);
    out.push(formatChannelInterruptTable(v?.channels ?? []).trimEnd());
  }
  if (r.storage.length > 0) {
    section("storage (latency in µs of virtual time)");
    out.push(
      table(
        ["workload", "vm", "lun", "pattern", "bs", "qd", "I/Os", "errors", "IOPS", "MiB/s", "p50", "p90", "p99", "p99.9", "max"],
        r.storage.map((s) => [
          String(s.workload),
          s.vm,
          String(s.disk),
          s.pattern,
          String(s.blockSize),
          String(s.queueDepth),
          String(s.ios),
          String(s.errors),
          String(s.iops),
          f1(s.mibPerSec),
          f1(s.latencyUs.p50),
          f1(s.latencyUs.p90),
          f1(s.latencyUs.p99),
          f1(s.latencyUs.p999),
          f1(s.latencyUs.max),
        ]),
      ),
    );
    for (const s of r.storage) if (s.firstError !== null) out.push(`workload ${s.workload}: first error: ${s.firstError}`);
  }
  const net = r.network;
  if (net.ping.length > 0 || net.udp.length > 0) {
    section("network (virtual time)");
    if (net.ping.length > 0) {
      out.push(
        table(
          ["ping", "from", "to", "sent", "replies", "lost", "loss %", "arp µs", "min µs", "avg µs", "max µs"],
          net.ping.map((p) => [
            String(p.workload),
            `${p.from} ${p.fromIp}`,
            `${p.to} ${p.toIp}`,
            String(p.sent),
            String(p.replies),
            String(p.lost),
            f1(p.sent === 0 ? 0 : (100 * p.lost) / p.sent),
            f1(p.arpUs),
            f1(p.rttUs.min),
            f1(p.rttUs.avg),
            f1(p.rttUs.max),
          ]),
        ),
      );
      for (const p of net.ping) if (!p.arpResolved) out.push(`ping ${p.workload}: ${p.toIp} did not answer ARP`);
    }
    if (net.udp.length > 0) {
      if (net.ping.length > 0) out.push("");
      out.push(
        table(
          ["udp", "from", "to", "bytes", "sent", "received", "in order", "intact", "lost", "elapsed µs", "Mbit/s", "frames/s"],
          net.udp.map((u) => [
            String(u.workload),
            `${u.from} ${u.fromIp}:${u.srcPort}`,
            `${u.to} ${u.toIp}:${u.dstPort}`,
            String(u.bytes),
            String(u.sent),
            String(u.received),
            String(u.inOrder),
            String(u.intact),
            String(u.lost),
            f1(u.elapsedUs),
            f1(u.mbitPerSec),
            String(u.framesPerSec),
          ]),
        ),
      );
    }
  }
  if (net.nics.length > 0) {
    section("NICs and switch ports");
    out.push(
      table(
        ["vm", "mac", "ip", "switch", "tx pkts", "tx bytes", "rx pkts", "rx bytes", "drops"],
        net.nics.map((n) => [n.vm, n.mac, n.ip, n.switch, String(n.tx.packets), String(n.tx.bytes), String(n.rx.packets), String(n.rx.bytes), String(n.tx.drops + n.rx.drops)]),
      ),
    );
    out.push("");
    out.push(
      table(
        ["switch port", "frames in", "frames out", "bytes in", "bytes out", "drops"],
        net.switches.flatMap((s) => s.ports.map((p) => [`${s.name}:${p.name}`, String(p.framesIn), String(p.framesOut), String(p.bytesIn), String(p.bytesOut), String(p.drops)])),
      ),
    );
  }
  if (r.faults.length > 0) {
    section("faults (virtual time from the run's start)");
    for (const f of r.faults) {
      const when = f.durationMs === null ? `t=${f.atMs} ms, for ever` : `t=${f.atMs} ms for ${f.durationMs} ms`;
      out.push(`[${f.fault}] ${f.kind} ${f.target} (${when})`);
      out.push(`    ${f.outcome}`);
      const c = Object.entries(f.counters).map(([k, v]) => `${k}=${v}`);
      if (c.length > 0) out.push(`    ${c.join(" ")}`);
    }
  }
  out.push(...formatRequests(r));
  return out.join("\n").replace(/^\n/, "") + "\n";
}

/** The requests table: per workload (and per fault with its own traffic), completed, failed by error type, lost. */
export function formatRequests(r: RunResults): string[] {
  const rows: { name: string; t: RequestTally }[] = [];
  for (const s of r.storage) rows.push({ name: `workload ${s.workload} storage ${s.vm} lun ${s.disk}`, t: s.requests });
  for (const p of r.network.ping) rows.push({ name: `workload ${p.workload} ping ${p.from}→${p.to}`, t: p.requests });
  for (const u of r.network.udp) rows.push({ name: `workload ${u.workload} udp ${u.from}→${u.to}`, t: u.requests });
  for (const f of r.faults) if (f.requests !== null) rows.push({ name: `fault ${f.fault} ${f.kind} ${f.vm}`, t: f.requests });
  if (rows.length === 0) return [];
  const t = r.requests.total;
  const out = ["", `== requests (every one must settle by t=${r.requests.settleDeadlineMs} ms; the last workload ended at t=${r.requests.lastSettledMs} ms) ==`];
  out.push(
    table(
      ["requests", "issued", "completed", "failed", "lost", "dup"],
      [...rows, { name: "total", t }].map(({ name, t: x }) => [name, String(x.issued), String(x.completed), String(x.failedTotal), String(x.lost), String(x.duplicates)]),
    ),
  );
  for (const { name, t: x } of rows) if (x.failedTotal > 0) out.push(`${name}: failed with ${formatFailures(x.failed)}`);
  if (t.lost > 0 || t.duplicates > 0) out.push(`FAILED: ${t.lost} lost and ${t.duplicates} duplicated request(s) (both must be 0)`);
  else out.push("every request completed or failed with a typed error in bounded virtual time; none lost, none completed twice");
  return out;
}
