/**
 * The channel choice of storvsc_do_io / get_og_chn (storvsc-netvsc.md §5.1)
 * on fake channels, where ring occupancy and target CPUs can be set freely.
 */
import { describe, expect, it } from "vitest";
import { RING_AVAIL_PERCENT_LOWATER, StorChannelMap, type SelectableChannel } from "../../../../drivers/storvsc/guest/index.js";

class FakeChannel implements SelectableChannel {
  rescinded = false;
  state = 3;
  percentFree = 100;
  readonly outbound = { availToWritePercent: (): number => this.percentFree };
  constructor(
    readonly name: string,
    public targetCpu: number,
  ) {}
}

function setup(cpus: readonly number[]) {
  const chans = cpus.map((cpu, i) => new FakeChannel(i === 0 ? "primary" : `sc${i}`, cpu));
  const map = new StorChannelMap<FakeChannel>(chans[0]!, (c) => c.state === 3 && !c.rescinded, RING_AVAIL_PERCENT_LOWATER);
  for (const c of chans.slice(1)) map.add(c);
  map.numSc = chans.length - 1;
  return { map, chans };
}

describe("StorChannelMap", () => {
  it("without subchannels every CPU uses the primary", () => {
    const { map, chans } = setup([0]);
    map.numSc = 0;
    for (let cpu = 0; cpu < 4; cpu++) expect(map.choose(cpu)).toBe(chans[0]);
  });

  it("own channel bound here: the next CPU's channel above 10 % free, wrapping; else own", () => {
    const { map, chans } = setup([0, 1, 2, 3]);
    expect(map.choose(1).name).toBe("sc2");
    expect(map.choose(3).name).toBe("primary");
    chans[2]!.percentFree = RING_AVAIL_PERCENT_LOWATER; // not above the mark
    expect(map.choose(1).name).toBe("sc3");
    for (const c of chans) c.percentFree = 5;
    expect(map.choose(1).name).toBe("sc1");
  });

  it("CPUs without a channel: (cpu mod n)-th allocated CPU, cached", () => {
    const { map, chans } = setup([0, 2, 4]);
    expect(map.choose(1).name).toBe("sc1"); // 1 mod 3 = 1 → CPU 2
    expect(map.choose(5).name).toBe("sc2"); // 5 mod 3 = 2 → CPU 4
    expect(map.choose(3).name).toBe("primary"); // 3 mod 3 = 0 → CPU 0
    // Cached: a busy ring does not move it (the 10 % rule is for own channels only).
    chans[1]!.percentFree = 0;
    expect(map.choose(1).name).toBe("sc1");
  });

  it("re-targeting a channel (MODIFYCHANNEL) rebuilds the map and drops cached choices", () => {
    const { map, chans } = setup([0, 2]);
    expect(map.choose(1).name).toBe("sc1"); // 1 mod 2 → CPU 2
    chans[1]!.targetCpu = 1;
    expect(map.choose(1).name).toBe("primary"); // now its own channel: prefer the other one
    expect(map.choose(3).name).toBe("sc1"); // 3 mod 2 = 1 → CPU 1
  });

  it("a rescinded subchannel is no longer chosen", () => {
    const { map, chans } = setup([0, 1]);
    expect(map.choose(0).name).toBe("sc1");
    chans[1]!.rescinded = true;
    expect(map.choose(0).name).toBe("primary");
    expect(map.list().map((c) => c.name)).toEqual(["primary"]);
  });
});
