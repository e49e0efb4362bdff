/**
 * `networkResponderSetup`'s config crosses a thread (structured clone), so
 * its shape is untrusted: every field is checked and a bad one is named.
 */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../../../core/index.js";
import { validateResponderSetupConfig } from "../../../../drivers/netvsc/index.js";

const good = { mac: "00:15:5d:00:00:fe", ip: "10.0.0.254" };

describe("validateResponderSetupConfig", () => {
  it("fills the defaults and keeps a pcap path", () => {
    expect(validateResponderSetupConfig(good)).toEqual({ switch: "default", ...good, udpEcho: true });
    expect(validateResponderSetupConfig({ ...good, switch: "lan", udpEcho: false, pcap: "out/lan.pcap" })).toEqual({
      switch: "lan",
      ...good,
      udpEcho: false,
      pcap: "out/lan.pcap",
    });
  });

  it.each([
    [null, "responder config"],
    [[1], "responder config"],
    [{ ...good, colour: "red" }, "responder config key"],
    [{ ...good, switch: "" }, "responder config.switch"],
    [{ ip: good.ip }, "responder config.mac"],
    [{ mac: good.mac, ip: 254 }, "responder config.ip"],
    [{ ...good, udpEcho: "yes" }, "responder config.udpEcho"],
    [{ ...good, pcap: "" }, "responder config.pcap"],
    [{ ...good, pcap: 7 }, "responder config.pcap"],
  ] as const)("rejects %j, naming %s", (input, field) => {
    let error: unknown;
    try {
      validateResponderSetupConfig(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as InvalidArgumentError).message).toContain(field);
  });
});
