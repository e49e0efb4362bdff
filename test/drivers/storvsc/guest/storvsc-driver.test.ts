/**
 * The guest storvsc driver against a scripted host (scripted-host.ts):
 * handshake and version fallback (§4), subchannel count (§4 step 6), LUN
 * scan (§6), READ CAPACITY fallback (§7.2), data through GPA ranges (§5.1),
 * channel choice (§5.1), sense → typed errors (§5.2, §7.6), ENUMERATE_BUS
 * and capacity-change rescans (§5.2, §5.3), timeouts and late completions,
 * request-id exhaustion, remove.
 */
import { describe, expect, it } from "vitest";
import {
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VM_PKT_DATA_INBAND,
  VM_PKT_DATA_USING_GPA_DIRECT,
} from "../../../../core/index.js";
import {
  DATA_PROTECT,
  INQUIRY,
  MEDIUM_ERROR,
  READ_10,
  READ_16,
  READ_CAPACITY,
  REPORT_LUNS,
  SENSE_CAPACITY_DATA_CHANGED,
  SENSE_INVALID_FIELD_IN_CDB,
  SENSE_MEDIUM_NOT_PRESENT,
  SENSE_POWER_ON_RESET,
  SENSE_UNRECOVERED_READ_ERROR,
  SENSE_WRITE_PROTECTED,
  SERVICE_ACTION_IN_16,
  SRB_STATUS_BUSY,
  SRB_STATUS_ERROR,
  SRB_STATUS_INVALID_REQUEST,
  STATUS_REVISION_MISMATCH,
  SYNCHRONIZE_CACHE,
  UNMAP,
  VSTOR_OPERATION_BEGIN_INITIALIZATION,
  VSTOR_OPERATION_CREATE_SUB_CHANNELS,
  VSTOR_OPERATION_END_INITIALIZATION,
  VSTOR_OPERATION_QUERY_PROPERTIES,
  VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
  WRITE_10,
} from "../../../../drivers/storvsc/protocol/index.js";
import {
  DataProtectError,
  DiskGoneError,
  IllegalRequestError,
  MediumError,
  NotReadyError,
  SD_MAX_RETRIES,
  STORVSC_DEFAULT_REQUEST_TIMEOUT_NS,
  SrbStatusError,
  StorvscRemovedError,
  StorvscTimeoutError,
  UnitAttentionError,
  VstorHandshakeError,
  storvscCanQueue,
  type RescanResult,
  type ScsiDisk,
} from "../../../../drivers/storvsc/guest/index.js";
import { StorScript, bootScripted, pattern, type LoggedRequest } from "./scripted-host.js";

function twoDisks(): StorScript {
  const s = new StorScript();
  s.addLun(0, 2048n, { product: "Disk Zero" });
  s.addLun(2, 4096n, { product: "Disk Two" });
  s.phantomLuns = [1];
  return s;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("storvsc guest: handshake (§4)", () => {
  it("falls back 6.2 → 6.0 → 5.1 and sends each step as a 64-byte inband request", async () => {
    const s = twoDisks();
    s.acceptedVersions = [0x0501];
    const { drv } = await bootScripted(s);
    expect(drv!.protocolVersion).toBe(0x0501);
    expect(drv!.versionAttempts).toEqual([
      { version: 0x0602, status: STATUS_REVISION_MISMATCH },
      { version: 0x0600, status: STATUS_REVISION_MISMATCH },
      { version: 0x0501, status: 0 },
    ]);
    const init = s.log.filter((r) => r.cdb === null).map((r) => r.operation);
    expect(init.slice(0, 6)).toEqual([
      VSTOR_OPERATION_BEGIN_INITIALIZATION,
      VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
      VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
      VSTOR_OPERATION_QUERY_PROTOCOL_VERSION,
      VSTOR_OPERATION_QUERY_PROPERTIES,
      VSTOR_OPERATION_END_INITIALIZATION,
    ]);
    const qpv = s.log.filter((r) => r.operation === VSTOR_OPERATION_QUERY_PROTOCOL_VERSION);
    for (const [i, v] of [0x0602, 0x0600, 0x0501].entries()) {
      const r = qpv[i]!;
      expect(r.type).toBe(VM_PKT_DATA_INBAND);
      expect(r.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED).toBe(1);
      expect(r.transId).not.toBe(0n);
      const expected = new Uint8Array(64);
      const dv = new DataView(expected.buffer);
      dv.setUint32(0, VSTOR_OPERATION_QUERY_PROTOCOL_VERSION, true); // operation
      dv.setUint32(4, 1, true); // REQUEST_COMPLETION_FLAG
      dv.setUint16(12, v, true); // major_minor; revision 0; the rest zero
      expect(r.payload.subarray(0, 64)).toEqual(expected);
    }
  });

  it("fails the probe with a typed error when the host refuses every version", async () => {
    const s = twoDisks();
    s.acceptedVersions = [0x0402];
    const { vm, device, drv } = await bootScripted(s);
    expect(drv).toBeUndefined();
    const err = vm.bus.probeError(device);
    expect(err).toBeInstanceOf(VstorHandshakeError);
    expect(String((err as Error).message)).toMatch(/6\.2.*6\.0.*5\.1/);
    // The probe's cleanup closed the primary channel.
    expect(s.closed.length).toBe(1);
  });

  it("maxVersion limits the offers", async () => {
    const s = twoDisks();
    const { drv } = await bootScripted(s, { config: { maxVersion: 0x0600 } });
    expect(drv?.protocolVersion).toBe(0x0600);
    expect(drv?.versionAttempts.map((a) => a.version)).toEqual([0x0600]);
  });
});

describe("storvsc guest: subchannels (§4 step 6)", () => {
  for (const [vcpus, hostMax, expected] of [
    [4, 8, 3],
    [8, 8, 7],
    [8, 2, 2],
    [1, 8, 0],
  ] as const) {
    it(`${vcpus} vCPUs, host max ${hostMax}: asks for min(CPUs − 1, max_channel_cnt) = ${expected}`, async () => {
      const s = twoDisks();
      s.maxSubchannels = hostMax;
      const { drv } = await bootScripted(s, { vcpus });
      const create = s.log.filter((r) => r.operation === VSTOR_OPERATION_CREATE_SUB_CHANNELS);
      if (expected === 0) {
        expect(create).toEqual([]);
      } else {
        expect(create).toHaveLength(1);
        expect(new DataView(create[0]!.payload.buffer).getUint16(12, true)).toBe(expected);
      }
      expect(drv!.subchannelsRequested).toBe(expected);
      expect(drv!.channels).toHaveLength(expected + 1);
      // Each subchannel opened with the primary's ring size.
      expect(s.opened).toHaveLength(expected + 1);
      for (const ch of drv!.channels) expect(ch.outbound?.ringSize).toBe(128 * 1024);
    });
  }

  it("no multichannel flag: the primary only", async () => {
    const s = twoDisks();
    s.multichannel = false;
    const { drv } = await bootScripted(s, { vcpus: 4 });
    expect(s.log.some((r) => r.operation === VSTOR_OPERATION_CREATE_SUB_CHANNELS)).toBe(false);
    expect(drv!.channels).toHaveLength(1);
  });

  it("can_queue follows storvsc_vcpus_per_sub_channel (it does not change the subchannel count)", async () => {
    const a = await bootScripted(twoDisks(), { vcpus: 8 });
    expect(a.drv!.canQueue).toBe(Math.floor((352 * 2 * 90) / 100));
    const b = await bootScripted(twoDisks(), { vcpus: 8, config: { vcpusPerSubchannel: 1 } });
    expect(b.drv!.canQueue).toBe(storvscCanQueue(128 * 1024, 8, 1, false));
    expect(b.drv!.canQueue).toBe(Math.floor((352 * 8 * 90) / 100));
    expect(b.drv!.subchannelsRequested).toBe(7);
    // The SCSI midlayer clamps cmd_per_lun (2048) to can_queue: that is each disk's queue depth.
    expect(b.drv!.disks[0]!.queueDepth).toBe(2048);
    const c = await bootScripted(twoDisks(), { vcpus: 2 });
    expect(c.drv!.canQueue).toBe(316);
    expect(c.drv!.disks[0]!.queueDepth).toBe(316);
  });
});

describe("storvsc guest: LUN scan (§6, §7.2–§7.4)", () => {
  it("REPORT LUNS lists 0, 1, 2; LUN 1 answers INQUIRY 0x7F and is skipped", async () => {
    const s = twoDisks();
    const { drv } = await bootScripted(s);
    expect(drv!.disks.map((d) => d.lun)).toEqual([0, 2]);
    const [d0, d2] = drv!.disks as [ScsiDisk, ScsiDisk];
    expect(d0.vendor).toBe("Msft");
    expect(d0.product).toBe("Disk Zero");
    expect(d2.product).toBe("Disk Two");
    expect(d0.capacityBlocks).toBe(2048n);
    expect(d2.capacityBlocks).toBe(4096n);
    expect(d2.blockSize).toBe(512);
    expect(d2.capacitySource).toBe("READ CAPACITY(16)");
    expect(d2.thinProvisioned).toBe(true);
    // At 0:0, REPORT LUNS once, INQUIRY for each listed LUN, READ CAPACITY only for present disks.
    const at00 = (r: LoggedRequest) => r.pathId === 0 && r.targetId === 0;
    expect(s.srbs(REPORT_LUNS).filter(at00)).toHaveLength(1);
    expect(s.srbs(INQUIRY).filter(at00).map((r) => r.lun)).toEqual([0, 1, 2]);
    expect(s.srbs(SERVICE_ACTION_IN_16).map((r) => `${r.pathId}:${r.targetId}:${r.lun}`)).toEqual(["0:0:0", "0:0:2"]);
  });

  it("READ CAPACITY(16) refused → READ CAPACITY(10)", async () => {
    const s = twoDisks();
    s.rc16Supported = false;
    const { drv } = await bootScripted(s);
    const d = drv!.disk(2)!;
    expect(d.capacityBlocks).toBe(4096n);
    expect(d.capacitySource).toBe("READ CAPACITY(10)");
    expect(d.thinProvisioned).toBe(false);
    expect(s.srbs().filter((r) => r.lun === 2).map((r) => r.cdb![0])).toEqual([INQUIRY, SERVICE_ACTION_IN_16, READ_CAPACITY]);
  });

  it("a multi-terabyte disk: bigint capacity and READ(16)", async () => {
    const s = new StorScript();
    s.addLun(0, 1n << 33n); // 4 TiB of 512-byte blocks
    const { sys, drv } = await bootScripted(s);
    const d = drv!.disks[0]!;
    expect(d.capacityBlocks).toBe(8589934592n);
    expect(d.capacityBytes).toBe(4n << 40n);
    const data = pattern(1024, 3);
    await sys.run(d.write(d.capacityBlocks - 2n, data));
    expect(await sys.run(d.read(d.capacityBlocks - 2n, 2))).toEqual(data);
    expect(s.srbs(READ_16)).toHaveLength(1);
    expect(s.srbs(READ_10)).toHaveLength(0);
  });

  it("IDE: no REPORT LUNS; LUN 0 of the target named by instance bytes 5:4", async () => {
    const s = new StorScript();
    s.multichannel = false;
    s.addLun(0, 100n, { targetId: 1 });
    s.addLun(1, 100n, { targetId: 1 }); // IDE probes LUN 0 only
    s.addLun(0, 100n); // another target: not scanned
    const { drv } = await bootScripted(s, { ide: { instanceId: "00000000-0001-8899-0000-000000000000" } });
    expect(drv!.isIde).toBe(true);
    expect(s.srbs(REPORT_LUNS)).toHaveLength(0);
    const inq = s.srbs(INQUIRY);
    expect(inq).toHaveLength(1);
    expect(inq[0]!.payload[18]).toBe(1); // target_id
    expect(drv!.disks.map((d) => d.address)).toEqual(["0:1:0"]);
  });
});

describe("storvsc guest: data through GPA ranges (§5.1)", () => {
  it("writes and reads back 300 blocks, split at max_transfer_bytes, one range per command", async () => {
    const s = twoDisks();
    s.maxTransferBytes = 64 * 1024 + 100; // rounded down to 64 KiB: 128 blocks per command
    const { sys, vm, drv } = await bootScripted(s);
    const d = drv!.disk(2)!;
    expect(drv!.maxTransferBytes).toBe(64 * 1024);
    const free = vm.partition.memory.freePages;
    const data = pattern(300 * 512, 42);
    await sys.run(d.write(7, data));
    const writes = s.srbs(WRITE_10);
    expect(writes.map((r) => r.ranges[0]!.byteCount)).toEqual([65536, 65536, 44 * 512]);
    for (const w of writes) {
      expect(w.type).toBe(VM_PKT_DATA_USING_GPA_DIRECT);
      expect(w.ranges).toHaveLength(1);
      expect(w.ranges[0]!.byteOffset).toBe(0);
      expect(w.ranges[0]!.pfns).toHaveLength(Math.ceil(w.ranges[0]!.byteCount / 4096));
      // data_transfer_length @24 equals the range's byte_count; data_in WRITE_TYPE @22.
      expect(new DataView(w.payload.buffer).getUint32(24, true)).toBe(w.ranges[0]!.byteCount);
      expect(w.payload[22]).toBe(0);
    }
    // The host really has the bytes.
    expect(s.luns.get(2)!.data.get(7n)).toEqual(data.subarray(0, 512));
    const back = await sys.run(d.read(7, 300));
    expect(back).toEqual(data);
    expect(s.srbs(READ_10)).toHaveLength(3);
    expect(s.srbs(READ_10)[0]!.payload[22]).toBe(1); // READ_TYPE
    // Every I/O buffer page went back to the allocator.
    expect(vm.partition.memory.freePages).toBe(free);
  });

  it("flush and unmap: SYNCHRONIZE CACHE inband, UNMAP with a parameter list", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s);
    const d = drv!.disk(0)!;
    await sys.run(d.write(10, pattern(1024, 1)));
    await sys.run(d.flush());
    const sync = s.srbs(SYNCHRONIZE_CACHE);
    expect(sync).toHaveLength(1);
    expect(sync[0]!.type).toBe(VM_PKT_DATA_INBAND);
    expect(sync[0]!.payload[22]).toBe(2); // UNKNOWN_TYPE
    expect(s.flushes).toBe(1);
    await sys.run(d.unmap(10, 2));
    expect(s.srbs(UNMAP)).toHaveLength(1);
    expect(s.unmapped).toEqual([{ lba: 10n, blocks: 2 }]);
    expect(await sys.run(d.read(10, 2))).toEqual(new Uint8Array(1024));
  });

  it("refuses I/O past the end of the disk before sending anything", async () => {
    const s = twoDisks();
    const { drv } = await bootScripted(s);
    const before = s.log.length;
    await expect(drv!.disk(0)!.read(2047, 2)).rejects.toThrow(/exceeds the capacity of 2048 blocks/);
    expect(s.log.length).toBe(before);
  });
});

describe("storvsc guest: channel choice (§5.1)", () => {
  it("a CPU with its own channel sends on the next CPU's channel (storvsc_do_io)", async () => {
    const s = twoDisks();
    const { sys, vm, drv } = await bootScripted(s, { vcpus: 4 });
    const d = drv!.disk(0)!;
    const byCpu = new Map(drv!.channels.map((c) => [c.targetCpu, c.relid]));
    expect([...byCpu.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (let cpu = 0; cpu < 4; cpu++) {
      const before = s.srbs(READ_10).length;
      await sys.run(vm.partition.vcpus[cpu]!.run(() => d.read(0, 1)));
      const sent = s.srbs(READ_10).slice(before);
      expect(sent).toHaveLength(1);
      expect(sent[0]!.relid).toBe(byCpu.get((cpu + 1) % 4));
    }
  });

  it("CPUs without a channel map onto the channels' CPUs modulo their number (get_og_chn)", async () => {
    const s = twoDisks();
    s.maxSubchannels = 2;
    const { sys, vm, drv } = await bootScripted(s, { vcpus: 6 });
    const chans = drv!.channels;
    expect(chans).toHaveLength(3);
    const alloced = chans.map((c) => c.targetCpu).sort((a, b) => a - b);
    const relidOf = (cpu: number) => chans.find((c) => c.targetCpu === cpu)!.relid;
    const d = drv!.disk(0)!;
    for (let cpu = 0; cpu < 6; cpu++) {
      const before = s.srbs(READ_10).length;
      await sys.run(vm.partition.vcpus[cpu]!.run(() => d.read(0, 1)));
      const got = s.srbs(READ_10).slice(before)[0]!.relid;
      const i = alloced.indexOf(cpu);
      const expected = i >= 0 ? relidOf(alloced[(i + 1) % alloced.length]!) : relidOf(alloced[cpu % alloced.length]!);
      expect(got, `cpu ${cpu}`).toBe(expected);
    }
  });
});

describe("storvsc guest: sense → typed errors (§5.2, §7.6)", () => {
  it("MEDIUM ERROR, DATA PROTECT, ILLEGAL REQUEST, NOT READY carry key/ASC/ASCQ, LBA and command", async () => {
    const s = twoDisks();
    s.fault = (cdb, lun) => {
      if (lun !== 2) return undefined;
      const lba = new DataView(cdb.buffer, cdb.byteOffset).getUint32(2, false);
      if (cdb[0] === READ_10 && lba === 100) return { srbStatus: SRB_STATUS_ERROR, sense: SENSE_UNRECOVERED_READ_ERROR };
      if (cdb[0] === WRITE_10) return { srbStatus: SRB_STATUS_ERROR, sense: SENSE_WRITE_PROTECTED };
      if (cdb[0] === READ_10 && lba === 200) return { srbStatus: SRB_STATUS_INVALID_REQUEST, sense: SENSE_INVALID_FIELD_IN_CDB };
      if (cdb[0] === SYNCHRONIZE_CACHE) return { srbStatus: SRB_STATUS_ERROR, sense: SENSE_MEDIUM_NOT_PRESENT };
      return undefined;
    };
    const { sys, drv } = await bootScripted(s);
    const d = drv!.disk(2)!;

    const medium = await sys.run(rejection(d.read(100, 4)));
    expect(medium).toBeInstanceOf(MediumError);
    const m = medium as MediumError;
    expect([m.senseKey, m.asc, m.ascq]).toEqual([MEDIUM_ERROR, 0x11, 0x00]);
    expect(m.lba).toBe(100n);
    expect(m.lun).toBe(2);
    expect(m.command).toBe("READ(10)");
    expect(m.message).toMatch(/0:0:2: READ\(10\) lba=100 \(0x64\) blocks=4: MEDIUM ERROR 03\/11\/00 UNRECOVERED READ ERROR/);
    expect(m.message).toMatch(/srb_status=ERROR\|AUTOSENSE_VALID, scsi_status=CHECK_CONDITION/);

    const dp = await sys.run(rejection(d.write(5, new Uint8Array(512))));
    expect(dp).toBeInstanceOf(DataProtectError);
    expect((dp as DataProtectError).senseKey).toBe(DATA_PROTECT);
    expect((dp as DataProtectError).message).toMatch(/WRITE PROTECTED/);

    const ir = await sys.run(rejection(d.read(200, 1)));
    expect(ir).toBeInstanceOf(IllegalRequestError);
    expect((ir as IllegalRequestError).asc).toBe(0x24);

    const nr = await sys.run(rejection(d.flush()));
    expect(nr).toBeInstanceOf(NotReadyError);
    expect((nr as NotReadyError).message).toMatch(/SYNCHRONIZE CACHE\(10\).*MEDIUM NOT PRESENT/);
  });

  it("a persistent UNIT ATTENTION is retried SD_MAX_RETRIES times, then a UnitAttentionError", async () => {
    const s = twoDisks();
    s.fault = (cdb, lun) => (lun === 0 && cdb[0] === READ_10 ? { srbStatus: SRB_STATUS_ERROR, sense: SENSE_POWER_ON_RESET } : undefined);
    const { sys, drv } = await bootScripted(s);
    const before = s.srbs(READ_10).length;
    const e = await sys.run(rejection(drv!.disk(0)!.read(0, 1)));
    expect(e).toBeInstanceOf(UnitAttentionError);
    expect((e as UnitAttentionError).asc).toBe(0x29);
    expect(s.srbs(READ_10).length - before).toBe(SD_MAX_RETRIES + 1);
  });

  it("an SRB error without sense names srb_status", async () => {
    const s = twoDisks();
    s.fault = (cdb) => (cdb[0] === READ_10 ? { srbStatus: SRB_STATUS_BUSY, scsiStatus: 0 } : undefined);
    const { sys, drv } = await bootScripted(s);
    const e = await sys.run(rejection(drv!.disk(0)!.read(3, 1)));
    expect(e).toBeInstanceOf(SrbStatusError);
    expect((e as SrbStatusError).srbStatusCode).toBe(SRB_STATUS_BUSY);
    expect((e as Error).message).toMatch(/srb_status=BUSY \(0x05\).*status=STATUS_DEVICE_BUSY/);
  });
});

describe("storvsc guest: rescans (§5.2, §5.3)", () => {
  it("ENUMERATE_BUS from the host adds new LUNs and drops removed ones", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s);
    const old2 = drv!.disk(2)!;
    const events: RescanResult[] = [];
    let seen: (r: RescanResult) => void = () => undefined;
    const next = new Promise<RescanResult>((resolve) => {
      seen = resolve;
    });
    drv!.onRescan((r) => {
      events.push(r);
      seen(r);
    });
    s.luns.delete(2);
    s.addLun(3, 777n, { product: "Hot Added" });
    await sys.run(s.notifyEnumerateBus());
    const r = await sys.run(next);
    expect(r.reason).toMatch(/^ENUMERATE_BUS from the host/);
    expect(r.added.map((d) => [d.lun, d.product, d.capacityBlocks])).toEqual([[3, "Hot Added", 777n]]);
    expect(r.removed).toEqual([old2]);
    expect(drv!.disks.map((d) => d.lun)).toEqual([0, 3]);
    expect(drv!.stats.busNotifications).toBe(1);
    expect(old2.gone).toBe(true);
    await expect(old2.read(0, 1)).rejects.toBeInstanceOf(DiskGoneError);
    expect(events).toHaveLength(1);
  });

  it("UNIT ATTENTION 2A/09 (capacity changed): rescan, new capacity, the I/O retried and served", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s);
    const d = drv!.disk(0)!;
    await sys.run(d.write(1, pattern(512, 9)));
    const results: RescanResult[] = [];
    drv!.onRescan((r) => results.push(r));
    const lun = s.luns.get(0)!;
    lun.blocks = 4096n;
    lun.pendingUnitAttention = SENSE_CAPACITY_DATA_CHANGED;
    expect(await sys.run(d.read(1, 1))).toEqual(pattern(512, 9));
    expect(d.capacityBlocks).toBe(4096n);
    expect(results).toHaveLength(1);
    expect(results[0]!.reason).toMatch(/UNIT ATTENTION 2A\/09 on READ\(10\) of LUN 0/);
    expect(results[0]!.resized).toEqual([{ disk: d, oldBlocks: 2048n, newBlocks: 4096n }]);
    expect(drv!.stats.unitAttentionRetries).toBe(1);
  });
});

describe("storvsc guest: timeouts and request ids", () => {
  it("a swallowed request times out in virtual time; the next works; the late completion is harmless", async () => {
    const s = twoDisks();
    const { sys, vm, drv } = await bootScripted(s);
    const d = drv!.disk(0)!;
    await sys.run(d.write(0, pattern(4096, 5)));
    const free = vm.partition.memory.freePages;
    let swallowOne = true;
    s.swallow = (cdb) => {
      if (cdb[0] !== READ_10 || !swallowOne) return false;
      swallowOne = false;
      return true;
    };
    const t0 = sys.sim.now;
    const e = await sys.run(rejection(d.read(0, 8)));
    expect(e).toBeInstanceOf(StorvscTimeoutError);
    expect((e as StorvscTimeoutError).phase).toBe("sent");
    expect((e as Error).message).toMatch(/READ\(10\) of 0:0:0 lba=0 blocks=8 got no completion within 60 s/);
    expect(sys.sim.now - t0).toBeGreaterThanOrEqual(STORVSC_DEFAULT_REQUEST_TIMEOUT_NS);
    // The swallowed request keeps its id and its pages.
    expect(drv!.channel.outstanding).toBe(1);
    expect(vm.partition.memory.freePages).toBe(free - 1);

    expect(await sys.run(d.read(1, 1))).toEqual(pattern(4096, 5).subarray(512, 1024));

    s.answerSwallowed();
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(drv!.stats.lateCompletions).toBe(1);
    expect(drv!.channel.outstanding).toBe(0);
    expect(drv!.channel.rejectedCompletions).toBe(0);
    expect(vm.partition.memory.freePages).toBe(free);
    expect(await sys.run(d.read(0, 8))).toEqual(pattern(4096, 5));
  });

  it("an id stays reserved until its completion: with one id per channel, the next command waits behind it", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s, { config: { requestsPerChannel: 1, requestTimeoutNs: 1_000_000_000 } });
    const d = drv!.disk(0)!;
    await sys.run(d.write(0, pattern(1024, 8)));
    let swallowOne = true;
    s.swallow = (cdb) => {
      if (cdb[0] !== READ_10 || !swallowOne) return false;
      swallowOne = false;
      return true;
    };
    const first = rejection(d.read(0, 1));
    const second = rejection(d.read(1, 1));
    const [e1, e2] = (await sys.run(Promise.all([first, second]))) as [StorvscTimeoutError, StorvscTimeoutError];
    expect(e1).toBeInstanceOf(StorvscTimeoutError);
    expect(e1.phase).toBe("sent");
    expect(e2).toBeInstanceOf(StorvscTimeoutError);
    expect(e2.phase).toBe("queued");
    expect(s.srbs(READ_10)).toHaveLength(1);
    // The late completion frees the id; the next command gets its own answer.
    s.answerSwallowed();
    expect(await sys.run(d.read(1, 1))).toEqual(pattern(1024, 8).subarray(512));
    expect(drv!.stats.lateCompletions).toBe(1);
  });

  it("an exhausted request-id table queues commands instead of failing them", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s, { config: { requestsPerChannel: 2 } });
    const d = drv!.disk(0)!;
    const data = pattern(8 * 512, 4);
    await sys.run(d.write(0, data));
    const reads = Array.from({ length: 8 }, (_, i) => d.read(i, 1));
    const got = await sys.run(Promise.all(reads));
    expect(got).toEqual(Array.from({ length: 8 }, (_, i) => data.subarray(i * 512, (i + 1) * 512)));
    expect(drv!.stats.commandsQueued).toBeGreaterThanOrEqual(6);
  });
});

describe("storvsc guest: remove", () => {
  it("outstanding and later commands fail with StorvscRemovedError; the channels are closed", async () => {
    const s = twoDisks();
    const { sys, vm, device, drv } = await bootScripted(s, { vcpus: 2 });
    const d = drv!.disk(0)!;
    s.swallow = (cdb) => cdb[0] === READ_10;
    const pending = rejection(d.read(0, 1));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.swallowed).toHaveLength(1);
    await sys.run(vm.bus.unbind(device));
    const e = await sys.run(pending);
    expect(e).toBeInstanceOf(StorvscRemovedError);
    expect((e as Error).message).toMatch(/READ\(10\) of 0:0:0 lba=0 blocks=1 failed: the storvsc driver was removed/);
    expect(s.closed).toHaveLength(2);
    expect(drv!.removed).toBe(true);
    await expect(d.read(0, 1)).rejects.toBeInstanceOf(StorvscRemovedError);
  });
});

describe("storvsc guest: ring size (storvsc_ringbuffer_size, §5.1)", () => {
  it("ringBytes 64 KiB: every channel's rings are 64 KiB both ways; 170 ids per channel and can_queue 306, as Linux derives them", async () => {
    const s = twoDisks();
    const { sys, drv } = await bootScripted(s, { vcpus: 8, config: { ringBytes: 64 * 1024 } });
    const chans = drv!.channels;
    expect(chans).toHaveLength(8);
    for (const ch of chans) {
      expect(ch.outbound!.ringSize, ch.name).toBe(64 * 1024);
      expect(ch.inbound!.ringSize, ch.name).toBe(64 * 1024);
    }
    // The host mapped the same sizes from the ring GPADL and OPENCHANNEL's downstream offset.
    expect(s.opened).toHaveLength(8);
    for (const h of s.opened) {
      expect(h.endpoint!.reader.ring.ringSize).toBe(64 * 1024); // guest → host
      expect(h.endpoint!.writer.ring.ringSize).toBe(64 * 1024); // host → guest
    }
    // max_outstanding_req_per_channel = (64 KiB − 4 KiB) / align8(288 + 64 + 8) = 61440 / 360 = 170.
    expect(drv!.config.requestsPerChannel).toBe(170);
    // can_queue = 170 × ((8 − 1) / 4 + 1) × (100 − 10) / 100 = 306; each disk's queue depth min(2048, 306).
    expect(drv!.canQueue).toBe(306);
    const d = drv!.disk(0)!;
    expect(d.queueDepth).toBe(306);

    // And a channel really hands out 170 ids: 200 reads from one CPU, host holding them.
    const data = pattern(200 * 512, 17);
    await sys.run(d.write(0, data));
    s.swallow = (cdb) => cdb[0] === READ_10;
    const reads = Promise.all(Array.from({ length: 200 }, (_, i) => d.read(i, 1)));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.swallowed).toHaveLength(170);
    expect(new Set(s.swallowed.map((w) => w.ch.relid)).size).toBe(1);
    expect(drv!.stats.commandsQueued).toBe(30);
    s.swallow = null;
    s.answerSwallowed();
    const got = await sys.run(reads);
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => data.subarray(i * 512, (i + 1) * 512)));
  });
});

describe("storvsc guest: a full queue or ring makes callers wait, not fail (§5.1)", () => {
  it("more I/Os on one disk than its queue depth: the host never sees more than queueDepth, the rest wait for a slot and succeed", async () => {
    const s = twoDisks();
    // (16 KiB − 4 KiB) / 360 = 34 ids per channel; can_queue = 34 × 90 % = 30.
    const { sys, drv } = await bootScripted(s, { config: { ringBytes: 16 * 1024 } });
    const d = drv!.disk(0)!;
    expect(drv!.config.requestsPerChannel).toBe(34);
    expect(d.queueDepth).toBe(30);
    const data = pattern(50 * 512, 21);
    await sys.run(d.write(0, data));
    expect(d.slotWaits).toBe(0);
    // A slow host: it answers only when the test says so.
    s.swallow = (cdb) => cdb[0] === READ_10;
    const reads = Promise.all(Array.from({ length: 50 }, (_, i) => d.read(i, 1)));
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.swallowed).toHaveLength(30);
    expect(d.inFlight).toBe(30);
    expect(d.waitingForSlot).toBe(20);
    expect(d.slotWaits).toBe(20);
    // The disk's queue held them back, not the channel's request ids (34 > 30).
    expect(drv!.stats.commandsQueued).toBe(0);
    s.answerSwallowed();
    await sys.run(sys.sim.scheduler.sleep(1_000_000));
    expect(s.swallowed).toHaveLength(20);
    expect(d.waitingForSlot).toBe(0);
    s.swallow = null;
    s.answerSwallowed();
    const got = await sys.run(reads);
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => data.subarray(i * 512, (i + 1) * 512)));
    expect(d.inFlight).toBe(0);
    expect(drv!.stats.timeouts).toBe(0);
  });

  it("a ring smaller than the ids it serves fills: senders wait for space (pending_send_sz), every byte arrives intact", async () => {
    const s = twoDisks();
    s.multichannel = false; // every command on the primary
    // 8 KiB rings: 4 KiB of data, 36 one-page GPA-direct packets (112 bytes each).
    // 11 ids by Linux's rule, raised to 256; can_queue 11 × ((8 − 1) / 1 + 1) × 90 % = 79.
    const { sys, drv } = await bootScripted(s, { vcpus: 8, config: { ringBytes: 8 * 1024, requestsPerChannel: 256, vcpusPerSubchannel: 1 } });
    const d = drv!.disk(2)!;
    expect(drv!.channels).toHaveLength(1);
    expect(d.queueDepth).toBe(79);
    const ch = drv!.channel;
    expect(ch.outFullTotal).toBe(0);
    const data = pattern(79 * 512, 33);
    // 79 single-block writes at once, then 79 reads at once: each wave overfills the ring.
    await sys.run(Promise.all(Array.from({ length: 79 }, (_, i) => d.write(i * 3, data.subarray(i * 512, (i + 1) * 512)))));
    const afterWrites = ch.outFullTotal;
    expect(afterWrites).toBeGreaterThan(0);
    const got = await sys.run(Promise.all(Array.from({ length: 79 }, (_, i) => d.read(i * 3, 1))));
    expect(ch.outFullTotal).toBeGreaterThan(afterWrites);
    expect(got).toEqual(Array.from({ length: 79 }, (_, i) => data.subarray(i * 512, (i + 1) * 512)));
    for (let i = 0; i < 79; i++) expect(s.luns.get(2)!.data.get(BigInt(i * 3))).toEqual(data.subarray(i * 512, (i + 1) * 512));
    // Neither the ids (256) nor the disk's queue (79) held anything back: the ring did.
    expect(drv!.stats.commandsQueued).toBe(0);
    expect(d.slotWaits).toBe(0);
    expect(drv!.stats.timeouts).toBe(0);
  });
});

describe("storvsc guest: LUNs by path, target and LUN (scsi_scan_host)", () => {
  const every = (): string[] => {
    const out: string[] = [];
    for (let p = 0; p < 8; p++) for (let t = 0; t < 2; t++) out.push(`${p}:${t}`);
    return out;
  };
  const at = (r: LoggedRequest) => `${r.pathId}:${r.targetId}`;

  it("probes every path 0..7 and target 0..1 — INQUIRY of LUN 0, then REPORT LUNS — and nothing beyond", async () => {
    const s = twoDisks();
    await bootScripted(s);
    expect(s.srbs(REPORT_LUNS).map(at)).toEqual(every());
    expect(s.srbs(INQUIRY).filter((r) => r.lun === 0).map(at)).toEqual(every());
    // Per target, LUN 0 is probed before REPORT LUNS (__scsi_scan_target).
    const order = s.srbs().filter((r) => r.cdb![0] === REPORT_LUNS || (r.cdb![0] === INQUIRY && r.lun === 0)).map((r) => `${at(r)} ${r.cdb![0] === INQUIRY ? "INQUIRY" : "REPORT LUNS"}`);
    expect(order).toEqual(every().flatMap((t) => [`${t} INQUIRY`, `${t} REPORT LUNS`]));
  });

  it("disks at path 3 / target 0 and path 7 / target 1 appear and do I/O at their address; one at target 2 is never addressed", async () => {
    const s = twoDisks();
    s.addLun(0, 512n, { pathId: 3, targetId: 0, product: "Mid" });
    s.addLun(4, 1024n, { pathId: 7, targetId: 1, product: "Far" });
    s.addLun(0, 512n, { pathId: 0, targetId: 2, product: "Unscanned" });
    const { sys, drv } = await bootScripted(s);
    expect(drv!.disks.map((d) => [d.address, d.product])).toEqual([
      ["0:0:0", "Disk Zero"],
      ["0:0:2", "Disk Two"],
      ["3:0:0", "Mid"],
      ["7:1:4", "Far"],
    ]);
    const far = drv!.disk(4, 1, 7)!;
    expect(far.capacityBlocks).toBe(1024n);
    const data = pattern(8 * 512, 77);
    await sys.run(far.write(100, data));
    expect(await sys.run(far.read(100, 8))).toEqual(data);
    // The data went to 7:1:4, not to LUN 4 of another target.
    expect(s.lunsAt(7, 1).get(4)!.data.get(100n)).toEqual(data.subarray(0, 512));
    const io = s.srbs().filter((r) => r.cdb![0] === WRITE_10 || r.cdb![0] === READ_10);
    expect(io.map((r) => [r.payload[17], r.payload[18], r.payload[19]])).toEqual([
      [7, 1, 4],
      [7, 1, 4],
    ]);
    // Target 2 is past Linux's max_id: never probed, so its disk stays invisible.
    expect(s.srbs().filter((r) => r.targetId! >= 2 || r.pathId! >= 8)).toEqual([]);
  });

  it("ENUMERATE_BUS finds a disk hot-added at path 5 / target 1 and drops one removed there", async () => {
    const s = twoDisks();
    s.addLun(1, 64n, { pathId: 5, targetId: 1, product: "Old" });
    const { sys, drv } = await bootScripted(s);
    const old = drv!.disk(1, 1, 5)!;
    expect(old.product).toBe("Old");
    let seen: (r: RescanResult) => void = () => undefined;
    const next = new Promise<RescanResult>((resolve) => {
      seen = resolve;
    });
    drv!.onRescan((r) => seen(r));
    s.targets.get("5:1")!.delete(1);
    s.addLun(9, 128n, { pathId: 5, targetId: 1, product: "New" });
    await sys.run(s.notifyEnumerateBus());
    const r = await sys.run(next);
    expect(r.added.map((d) => d.address)).toEqual(["5:1:9"]);
    expect(r.removed).toEqual([old]);
    expect(old.gone).toBe(true);
    expect(drv!.disk(9, 1, 5)!.capacityBlocks).toBe(128n);
  });

  it("REPORT LUNS refused: LUN 1, 2, … until the first absent one; past LUN 7 only if LUN 0's answer says SCSI-3 (scsi_sequential_lun_scan)", async () => {
    const s = new StorScript();
    s.reportLunsSupported = false;
    // 0:0 — LUN 0 a disk, LUN 1 a CD-ROM (present, not a disk), LUN 2 a disk, LUN 3 absent, LUN 4 behind the gap.
    s.addLun(0, 100n);
    s.addLun(1, 100n, { deviceType: 5 });
    s.addLun(2, 200n);
    s.addLun(4, 300n);
    // 1:0 — LUN 0 a SCSI-2 disk (VERSION 2): LUNs 0..9, only 0..7 are scanned.
    for (let l = 0; l <= 9; l++) s.addLun(l, 10n, { pathId: 1, version: 2 });
    // 2:1 — no LUN 0, but its "no LU here" answer says SPC-3 and sets the target's level: LUNs 1..9 all found.
    for (let l = 1; l <= 9; l++) s.addLun(l, 20n, { pathId: 2, targetId: 1 });
    const { drv } = await bootScripted(s);
    const inquired = (p: number, t: number) => s.srbs(INQUIRY).filter((r) => r.pathId === p && r.targetId === t).map((r) => r.lun);
    const upTo = (n: number) => Array.from({ length: n + 1 }, (_, i) => i);
    expect(inquired(0, 0)).toEqual([0, 1, 2, 3]);
    expect(inquired(1, 0)).toEqual(upTo(7));
    expect(inquired(2, 1)).toEqual(upTo(10));
    // Every other target: LUN 0 absent, LUN 1 absent — the scan stops there.
    expect(inquired(0, 1)).toEqual([0, 1]);
    expect(inquired(7, 1)).toEqual([0, 1]);
    expect(drv!.disks.map((d) => d.address)).toEqual([
      "0:0:0",
      "0:0:2",
      ...upTo(7).map((l) => `1:0:${l}`),
      ...upTo(9).slice(1).map((l) => `2:1:${l}`),
    ]);
  });
});
