/**
 * The fuzz oracle sees a violation when there is one (fuzz/lib/oracle.ts,
 * target.ts, campaign.ts): an untyped error in an event, a request that
 * never settles, an event storm, a write to a secret page or a read of one,
 * a promise rejection nobody handled — and a planted bug in a host device
 * is found, shrunk, and reported with the seed and path that replay it.
 */
import fc from "fast-check";
import { injectable, type DependencyContainer } from "tsyringe";
import { describe, expect, it } from "vitest";
import {
  GuestMemory,
  PAGE_SIZE,
  ProtocolError,
  RingWriter,
  Simulation,
  registerGuestDriver,
  registerHostDevice,
  type HostChannel,
  type HostChannelHandler,
} from "../../core/index.js";
import { ECHO_CLASS_ID, EchoDriver } from "../../drivers/echo/index.js";
import { runTarget } from "../../fuzz/campaign.js";
import { CANARY, FuzzViolation, SecretPages, SimDriver, UnhandledRejections, containsCanary } from "../../fuzz/lib/oracle.js";
import { Tally, defineTarget } from "../../fuzz/lib/target.js";
import { bootEcho } from "../system/helpers.js";

async function violation(p: Promise<unknown>): Promise<FuzzViolation> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FuzzViolation) return e;
    throw e;
  }
  throw new Error("expected a FuzzViolation");
}

describe("SimDriver", () => {
  it("lets typed errors reported to the scheduler pass, counted, and the run goes on", async () => {
    const sim = new Simulation({ seed: 1 });
    const d = new SimDriver(sim.scheduler);
    let later = false;
    sim.scheduler.schedule(10, () => {
      throw new ProtocolError("test", "field", 1, "is bad");
    });
    sim.scheduler.schedule(20, () => {
      later = true;
    });
    await d.runFor(100);
    expect(d.typedSchedulerErrors).toBe(1);
    expect(later).toBe(true);
  });

  it("an untyped error in an event is a violation naming the event", async () => {
    const sim = new Simulation({ seed: 1 });
    const d = new SimDriver(sim.scheduler);
    sim.scheduler.schedule(10, () => {
      throw new RangeError("Invalid typed array length");
    }, "host wakeup");
    const v = await violation(d.runFor(100));
    expect(v.property).toBe("typed-errors");
    expect(v.message).toMatch(/host wakeup.*RangeError: Invalid typed array length/);
  });

  it("work that never settles is a violation; a typed rejection is an outcome; an untyped one a violation", async () => {
    const sim = new Simulation({ seed: 1 });
    const d = new SimDriver(sim.scheduler);
    sim.scheduler.schedule(1_000_000, () => undefined);
    expect((await violation(d.settle(new Promise(() => undefined), 1000, "a lost request"))).property).toBe("settles");
    const typed = await d.settle(Promise.reject(new ProtocolError("x", "y", 1, "z")), 1000, "typed");
    expect(typed.ok).toBe(false);
    expect((await violation(d.settle(Promise.reject(new TypeError("boom")), 1000, "untyped"))).property).toBe("typed-errors");
  });

  it("an event storm is a violation", async () => {
    const sim = new Simulation({ seed: 1 });
    const d = new SimDriver(sim.scheduler, { maxEvents: 5000 });
    const again = (): void => void sim.scheduler.schedule(100, again);
    again();
    // Caught at the end of the first slice (1 ms past the first event), not after the whole second.
    expect((await violation(d.runFor(1_000_000_000))).property).toBe("scheduler");
    expect(sim.scheduler.now).toBeLessThanOrEqual(2_000_000);
  });
});

describe("SecretPages", () => {
  it("sees a write to a secret page and a read of one, and scrubs their PFNs out of hostile bytes", () => {
    const memory = new GuestMemory({ bytes: 32 * PAGE_SIZE });
    const s = SecretPages.plant(memory, 2);
    s.verify("fresh");
    const pfn = s.pfns[1]!;
    // A read: 8 bytes of the page at an odd phase carry the canary.
    const leaked = memory.read(pfn * PAGE_SIZE + 13, 9);
    expect(containsCanary(leaked)).toBe(true);
    expect(() => s.assertNotLeaked(leaked, "a frame")).toThrow(FuzzViolation);
    expect(containsCanary(CANARY.subarray(0, 7))).toBe(false);
    // A write of one byte.
    memory.writeU32(pfn * PAGE_SIZE + 100, memory.readU32(pfn * PAGE_SIZE + 100) ^ 1);
    expect(() => s.verify("after")).toThrow(/PFN \d+ \(first changed byte at \+100/);
    // Scrubbing: the PFN as a u32 at an unaligned offset is moved outside guest memory.
    const bytes = new Uint8Array(12);
    new DataView(bytes.buffer).setUint32(3, pfn, true);
    expect(new DataView(s.scrubBytes(bytes).buffer).getUint32(3, true)).toBe(pfn + memory.pageCount);
    expect(s.scrubPfn(pfn)).toBe(pfn + memory.pageCount);
    expect(s.scrubPfn(30)).toBe(30);
  });
});

describe("UnhandledRejections", () => {
  it("catches a rejection nobody handled during a run", async () => {
    const u = new UnhandledRejections().start();
    void Promise.reject(new TypeError("lost"));
    await expect(u.check("run")).rejects.toThrow(/1 promise rejection\(s\) nobody handled, first: TypeError: lost/);
  });
});

/** An echo host with a planted bug: a request whose first data byte is 0x42 makes it throw a TypeError. */
@injectable()
class PlantedBugHost implements HostChannelHandler {
  open(ch: HostChannel): void {
    ch.onPacket((p, c) => {
      const data = p.data();
      if (data[16] === 0x42) throw new TypeError("planted bug");
      const reply = Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
      const id = p.transId;
      void c.send((w) => w.writeCompletion(id, reply), RingWriter.packetTotal(0, reply.length)).catch(() => undefined);
    });
  }
  close(): void {}
}

function plantedPlugin(c: DependencyContainer): void {
  registerGuestDriver(c, { name: "echo", classIds: [ECHO_CLASS_ID] }, EchoDriver);
  registerHostDevice(c, { name: "echo", classId: ECHO_CLASS_ID }, PlantedBugHost);
}

const planted = defineTarget<number[]>({
  name: "planted",
  title: "test",
  corrupts: "the first data byte of echo requests",
  arbitrary: fc.array(fc.nat(255), { minLength: 1, maxLength: 8 }),
  async run(bytes, tally) {
    const { sys, echo } = await bootEcho({ plugins: [plantedPlugin], devices: 1, vcpus: 1 });
    const d = new SimDriver(sys.sim.scheduler);
    for (const b of bytes) {
      void echo[0]!.echo(Uint8Array.of(b, 1, 2, 3)).catch(() => undefined);
      // Past the monitor latency (100 µs): the host has read the request.
      await d.runFor(1_000_000);
      tally.add("requests");
    }
    d.finish();
  },
});

describe("a planted bug", () => {
  it("is found, shrunk around the one byte that matters, and reported with its seed and path", async () => {
    const r = await planted.check({ seed: 7, numRuns: 2000 });
    expect(r.failed).toBe(true);
    const shrunk = JSON.parse(r.counterexample!) as number[];
    expect(shrunk).toContain(0x42);
    expect(shrunk.length).toBeLessThanOrEqual(2);
    expect(r.error).toMatch(/typed-errors.*TypeError: planted bug/);
    expect(r.report).toMatch(/seed: 7, path: "[\d:]+"/);
    // The path replays the shrunk counterexample alone.
    const again = await planted.check({ seed: 7, numRuns: 1, path: r.path! });
    expect(again.failed).toBe(true);
    expect(again.counterexample).toBe(r.counterexample);
  });

  it("the campaign reports it with the command line that replays it, and counts the inputs", async () => {
    const rep = await runTarget(planted, { runs: 3000, seed: 7, shrink: true, maxFailures: 2 });
    expect(rep.failures.length).toBeGreaterThanOrEqual(1);
    const f = rep.failures[0]!;
    expect(f.replay).toBe(`npm run fuzz -- --target planted --seed 7 --path ${f.path} --runs 1`);
    expect(rep.inputs).toBeGreaterThan(0);
    expect(rep.inputs).toBeLessThanOrEqual(3000);
    expect(rep.outcomes["requests"]).toBeGreaterThan(0);
  });

  it("a target that holds reports no failure and every input tried", async () => {
    const fine = defineTarget<number>({ name: "fine", title: "", corrupts: "", arbitrary: fc.nat(), run: async () => undefined });
    const tally = new Tally();
    const rep = await runTarget(fine, { runs: 50, seed: 1, shrink: true, maxFailures: 3 });
    expect(rep.failures).toEqual([]);
    expect(rep.inputs).toBe(50);
    expect(tally.entries()).toEqual([]);
  });
});
