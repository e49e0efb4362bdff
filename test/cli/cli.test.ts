/**
 * The CLI end to end, spawned as a user runs it: `node dist/cli/main.js …`
 * after one build. Checks exit codes, that results are parseable and
 * deterministic, that errors name what to fix, and that the trace file is
 * Trace Event JSON.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const main = join(root, "dist", "cli", "main.js");
const tmp = mkdtempSync(join(tmpdir(), "vmbus-sim-cli-"));
const STORAGE = join(root, "scenarios", "storage-only.json");

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, ...args], { cwd: tmp, encoding: "utf8", timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  // tsc exits non-zero while another sample is half-written; it still emits, so check the output exists.
  spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.build.json")], { cwd: root, encoding: "utf8" });
  if (!existsSync(main)) throw new Error(`build did not produce ${main}`);
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("vmbus-sim run", () => {
  it("--json: IOPS, percentiles, the same output for the same seed", () => {
    const trace = join(tmp, "t.json");
    const a = cli("run", STORAGE, "--json", "--no-progress", "--trace", trace);
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    const r = JSON.parse(a.stdout) as {
      seed: number;
      storage: { iops: number; ios: number; errors: number; latencyUs: Record<string, number> }[];
      vms: { boot: { version: string; offers: number; channelsOpened: number }; channels: { relid: number; cpu: number; interrupts: number }[] }[];
      actions: { result: string }[];
    };
    expect(r.seed).toBe(1);
    expect(r.storage).toHaveLength(2);
    for (const s of r.storage) {
      expect(s.iops).toBeGreaterThan(0);
      expect(s.errors).toBe(0);
      for (const p of ["p50", "p90", "p99", "p999"]) expect(s.latencyUs[p]).toBeGreaterThan(0);
      expect(s.latencyUs["p50"]).toBeLessThanOrEqual(s.latencyUs["p999"] as number);
    }
    expect(r.storage[0]?.ios).toBe(1000);
    expect(r.vms[0]?.boot).toMatchObject({ version: "5.3", offers: 4, channelsOpened: 4 });
    // The scenario's action moved relid 1 to CPU 2.
    expect(r.actions).toEqual([expect.objectContaining({ result: "ok" })]);
    expect(r.vms[0]?.channels.find((c) => c.relid === 1)?.cpu).toBe(2);

    const b = cli("run", STORAGE, "--json", "--no-progress", "--trace", trace);
    expect(b.stdout).toBe(a.stdout);
    const c = cli("run", STORAGE, "--json", "--no-progress", "--trace", trace, "--seed", "9");
    expect(JSON.parse(c.stdout).seed).toBe(9);

    // The trace: Trace Event JSON, object form.
    const t = JSON.parse(readFileSync(trace, "utf8")) as { traceEvents: { ph: string; ts: number; pid: number }[] };
    expect(Array.isArray(t.traceEvents)).toBe(true);
    expect(t.traceEvents.length).toBeGreaterThan(100);
    for (const e of t.traceEvents) {
      expect(typeof e.ph).toBe("string");
      expect(typeof e.ts).toBe("number");
    }
    expect(new Set(t.traceEvents.map((e) => e.ph)).size).toBeGreaterThan(2);
  });

  it("text output: boot summary, lsvmbus -vv, /proc/interrupts, channel counters, storage table", () => {
    const r = cli("run", STORAGE, "--no-progress", "--trace", join(tmp, "t2.json"));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/vm1: VMBus 5\.3 · 4 offer\(s\) · 4 channel\(s\) opened/);
    expect(r.stdout).toContain("→ INITIATE_CONTACT version=5.3");
    expect(r.stdout).toContain("== lsvmbus -vv (vm1) ==");
    expect(r.stdout).toMatch(/HYP:\s+\d+/);
    expect(r.stdout).toMatch(/relid\s+cpu\s+interrupts\s+events\s+intr_in_full/);
    expect(r.stdout).toMatch(/p50\s+p90\s+p99\s+p99\.9/);
    expect(r.stderr).toBe("");
  });

  it("a bad scenario: exit 2 and a message naming the file, field, value and what is allowed", () => {
    const bad = join(tmp, "bad.json");
    const s = JSON.parse(readFileSync(STORAGE, "utf8")) as { vms: { devices: { disks: { sizeBytes: number }[] }[] }[] };
    s.vms[0]!.devices[0]!.disks[1]!.sizeBytes = 1000;
    writeFileSync(bad, JSON.stringify(s));
    const r = cli("run", bad, "--no-progress");
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`vmbus-sim: ${bad}: vms[0].devices[0].disks[1].sizeBytes = 1000: must be a positive safe integer, a multiple of blockSize 512\n`);
    const missing = cli("run", join(tmp, "nope.json"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("nope.json: (file)");
    const syntax = join(tmp, "syntax.json");
    writeFileSync(syntax, "{ seed: 1 }");
    expect(cli("run", syntax).stderr).toMatch(/syntax\.json: \(file\) = .*is not valid JSON/);
  });

  it("usage errors exit 2; --help exits 0 with examples", () => {
    const r = cli("run", STORAGE, "--seed", "x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--seed must be an integer");
    const h = cli("run", "--help");
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("Examples:");
    expect(h.stdout).toContain("--no-progress");
    for (const sub of ["lsvmbus", "sysfs", "decode", "bench"]) expect(cli(sub, "--help").stdout).toContain("Examples:");
    expect(cli("--help").stdout).toContain("Examples:");
    expect(cli("frobnicate").code).toBe(2);
  });
});

interface NetJson {
  seed: number;
  storage: { iops: number; errors: number }[];
  network: {
    ping: { sent: number; count: number; replies: number; lost: number; corrupt: number; rttUs: { min: number; avg: number; max: number; all: number[] } }[];
    udp: { count: number; sent: number; received: number; inOrder: number; intact: number; lost: number; mbitPerSec: number; framesPerSec: number }[];
    nics: { vm: string; ip: string }[];
  };
  files: { pcap: { switch: string; path: string; frames: number }[] };
}

/** The records of a classic pcap file: header checked, timestamps in µs. */
function readPcap(bytes: Uint8Array): { tsUs: number; frame: Uint8Array }[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(bytes.length).toBeGreaterThanOrEqual(24);
  expect(v.getUint32(0, true)).toBe(0xa1b2c3d4);
  expect(v.getUint16(4, true)).toBe(2);
  expect(v.getUint16(6, true)).toBe(4);
  expect(v.getUint32(20, true)).toBe(1); // LINKTYPE_ETHERNET
  const out: { tsUs: number; frame: Uint8Array }[] = [];
  for (let off = 24; off < bytes.length; ) {
    expect(off + 16).toBeLessThanOrEqual(bytes.length);
    const incl = v.getUint32(off + 8, true);
    expect(v.getUint32(off + 12, true)).toBe(incl);
    out.push({ tsUs: v.getUint32(off, true) * 1e6 + v.getUint32(off + 4, true), frame: bytes.subarray(off + 16, off + 16 + incl) });
    off += 16 + incl;
    expect(off).toBeLessThanOrEqual(bytes.length);
  }
  return out;
}

describe("vmbus-sim run (default scenario: storage, ping, UDP)", () => {
  it("--json: ping replies, UDP delivered intact, IOPS; deterministic; the pcap parses and holds the echo exchange", () => {
    const pcap = join(tmp, "lan.pcap");
    const args = ["run", "--json", "--no-progress", "--trace", join(tmp, "d.json"), "--pcap", pcap];
    const a = cli(...args);
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    const r = JSON.parse(a.stdout) as NetJson;
    expect(r.storage.length).toBeGreaterThan(0);
    for (const s of r.storage) {
      expect(s.iops).toBeGreaterThan(0);
      expect(s.errors).toBe(0);
    }
    expect(r.network.nics.map((n) => [n.vm, n.ip])).toEqual([
      ["vm1", "10.0.0.1"],
      ["vm2", "10.0.0.2"],
    ]);
    expect(r.network.ping).toHaveLength(1);
    for (const p of r.network.ping) {
      expect(p.sent).toBe(p.count);
      expect(p.replies).toBe(p.count);
      expect(p.lost).toBe(0);
      expect(p.corrupt).toBe(0);
      expect(p.rttUs.min).toBeGreaterThan(0);
      expect(p.rttUs.min).toBeLessThanOrEqual(p.rttUs.avg);
      expect(p.rttUs.avg).toBeLessThanOrEqual(p.rttUs.max);
      expect(p.rttUs.all).toHaveLength(p.count);
    }
    expect(r.network.udp).toHaveLength(1);
    for (const u of r.network.udp) {
      expect(u.sent).toBe(u.count);
      expect(u.received).toBe(u.sent);
      expect(u.inOrder).toBe(u.sent);
      expect(u.intact).toBe(u.sent);
      expect(u.lost).toBe(0);
      expect(u.mbitPerSec).toBeGreaterThan(0);
      expect(u.framesPerSec).toBeGreaterThan(0);
    }
    expect(r.files.pcap).toEqual([{ switch: "sw0", path: pcap, frames: expect.any(Number) }]);

    // The same seed: the same JSON, byte for byte.
    const b = cli(...args);
    expect(b.stdout).toBe(a.stdout);

    // The pcap: classic header, records in time order, the ICMP echo requests and replies.
    const records = readPcap(new Uint8Array(readFileSync(pcap)));
    expect(records).toHaveLength(r.files.pcap[0]!.frames);
    for (let i = 1; i < records.length; i++) expect(records[i]!.tsUs).toBeGreaterThanOrEqual(records[i - 1]!.tsUs);
    const icmp = records.map((x) => x.frame).filter((f) => f.length >= 34 && f[12] === 0x08 && f[13] === 0x00 && f[23] === 1);
    const ihl = (f: Uint8Array): number => ((f[14] ?? 0) & 0x0f) * 4;
    const requests = icmp.filter((f) => f[14 + ihl(f)] === 8);
    const replies = icmp.filter((f) => f[14 + ihl(f)] === 0);
    expect(requests).toHaveLength(r.network.ping[0]!.count);
    expect(replies).toHaveLength(r.network.ping[0]!.count);
    // Two ARP frames per resolution at least (request and reply).
    expect(records.filter((x) => x.frame[12] === 0x08 && x.frame[13] === 0x06).length).toBeGreaterThanOrEqual(2);
  });

  it("text output: the network tables and where the pcap went (default out/sw0.pcap)", () => {
    const r = cli("run", "--no-progress", "--trace", join(tmp, "d2.json"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("== network (virtual time) ==");
    expect(r.stdout).toMatch(/ping\s+from\s+to\s+sent\s+replies\s+lost\s+loss %\s+arp µs\s+min µs\s+avg µs\s+max µs/);
    expect(r.stdout).toMatch(/udp\s+from\s+to\s+bytes\s+sent\s+received\s+in order\s+intact\s+lost\s+elapsed µs\s+Mbit\/s\s+frames\/s/);
    expect(r.stdout).toContain("pcap: out/sw0.pcap (switch sw0,");
    expect(existsSync(join(tmp, "out", "sw0.pcap"))).toBe(true);
  });
});

describe("vmbus-sim lsvmbus / sysfs", () => {
  it("lsvmbus -vv lists the controller and every channel with its CPU", () => {
    const r = cli("lsvmbus", STORAGE, "-vv");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^VMBUS ID\s+1: Class_ID = \{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f\} - Synthetic SCSI Controller$/);
    expect(lines[1]).toMatch(/^\tDevice_ID = \{[0-9a-f-]{36}\}$/);
    expect(lines[2]).toMatch(/^\tSysfs path: \/sys\/bus\/vmbus\/devices\/[0-9a-f-]{36}$/);
    expect(lines.filter((l) => /^\tRel_ID=\d+, target_cpu=\d+$/.test(l))).toEqual([
      "\tRel_ID=1, target_cpu=0",
      "\tRel_ID=2, target_cpu=1",
      "\tRel_ID=3, target_cpu=2",
      "\tRel_ID=4, target_cpu=3",
    ]);
    expect(cli("lsvmbus", STORAGE).stdout.trim().split("\n")).toHaveLength(1);
  });

  it("sysfs write of a channel's CPU, read back; cat; ls; a bad write fails with exit 1", () => {
    const w = cli("sysfs", "write", "channels/2/cpu", "3", "--scenario", STORAGE);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/^\/sys\/bus\/vmbus\/devices\/[0-9a-f-]{36}\/channels\/2\/cpu: 3\n$/);
    expect(cli("sysfs", "cat", "channels/2/cpu", "--scenario", STORAGE).stdout).toBe("1\n");
    const ls = cli("sysfs", "ls", "/sys/bus/vmbus/devices", "--scenario", STORAGE);
    expect(ls.stdout.trim()).toMatch(/^[0-9a-f-]{36}$/);
    const bad = cli("sysfs", "write", "channels/2/cpu", "99", "--scenario", STORAGE);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^vmbus-sim: .*/);
    const vm = cli("sysfs", "ls", "--scenario", STORAGE, "--vm", "vm7");
    expect(vm.code).toBe(2);
    expect(vm.stderr).toContain("--vm vm7: no such VM");
  });

  it("sysfs export writes the tree", () => {
    const dir = join(tmp, "sys");
    const r = cli("sysfs", "export", dir, "--scenario", STORAGE);
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, "vm1", "sys", "bus", "vmbus", "devices"))).toBe(true);
  });

  it("lsvmbus -vv of the default scenario: a SCSI controller and a network adapter per VM", () => {
    const r = cli("lsvmbus", "-vv");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.filter((l) => /^VMBUS ID\s+\d+: Class_ID = \{ba6163d9-04a1-4d29-b605-72e2ffb1dc7f\} - Synthetic SCSI Controller$/.test(l))).toHaveLength(2);
    expect(lines.filter((l) => /^VMBUS ID\s+\d+: Class_ID = \{f8615163-df3e-46c5-913f-f2d2f965ed0e\} - Synthetic network adapter$/.test(l))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith("# "))).toEqual(["# vm1", "# vm2"]);
  });
});

describe("vmbus-sim decode", () => {
  it("a channel message (guessed)", () => {
    const r = cli("decode", "06000000 00000000 03000000 03000000 00000000");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("assumed --as channel-message");
    expect(r.stdout).toContain("CHANNELMSG_OPENCHANNEL_RESULT (host → guest, 20 bytes)");
    expect(r.stdout).toContain("summary: OPENCHANNEL_RESULT relid=3 openid=3 status=0x0");
    expect(r.stdout).toContain("childRelid=3");
  });

  it("a VSTOR packet", () => {
    const r = cli("decode", "--as", "vstor", "07000000 01000000", "00".repeat(56));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("vstor_packet BEGIN_INITIALIZATION(7) flags=0x1[REQUEST_COMPLETION_FLAG] status=0x00000000[STATUS_SUCCESS] size=64 protocol=6.2 (WIN10)\n");
  });

  it("a CDB and sense data", () => {
    expect(cli("decode", "28 00 00 00 10 00 00 00 08 00").stdout).toBe("assumed --as cdb: 10 bytes starting with opcode READ(10)\nREAD(10) lba=4096 (0x1000) blocks=8\n");
    expect(cli("decode", "--as", "sense", "70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00").stdout).toContain("ILLEGAL REQUEST 05/24/00 INVALID FIELD IN CDB");
  });

  it("a VMBus packet descriptor with its GPA range", () => {
    const r = cli("decode", "0900 0500 0600 0100 0500000000000000 00000000 01000000 00100000 00000000 3412000000000000 deadbeefcafebabe");
    expect(r.code).toBe(0);
    for (const s of [
      "vmpacket_descriptor VM_PKT_DATA_USING_GPA_DIRECT(9)",
      "offset8=5 (header 40 bytes)",
      "len8=6 (packet 48 bytes)",
      "flags=0x1 [VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED]",
      "trans_id=5",
      "rangecount=1",
      "range[0] len=4096 offset=0 pfn_array[1]=[0x1234]",
      "payload[8] de ad be ef ca fe ba be",
    ]) {
      expect(r.stdout).toContain(s);
    }
  });

  it("from a file; errors name the bad input and exit 2", () => {
    const f = join(tmp, "cdb.bin");
    writeFileSync(f, Uint8Array.from([0x12, 0, 0, 0, 0x24, 0]));
    expect(cli("decode", "--file", f).stdout).toContain("INQUIRY allocation_length=36");
    const bad = cli("decode", "12 3g");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("bad hex digit 'g' at position 4");
    expect(cli("decode", "123").stderr).toContain("odd number of hex digits (3)");
    expect(cli("decode", "ff ff ff").stderr).toContain("cannot tell what these 3 bytes are; pass --as KIND");
    expect(cli("decode", "--as", "foo", "00").code).toBe(2);
  });
});
