/** Tests for core/vmbus/versions.ts (spec §7.5). */
import { describe, expect, it } from "vitest";
import * as v from "../../core/vmbus/versions.js";

describe("VMBus versions", () => {
  it("encodes (major << 16) | minor with the spec's values", () => {
    expect(v.VERSION_WS2008).toBe(0x0000000d);
    expect(v.VERSION_WIN7).toBe(0x00010001);
    expect(v.VERSION_WIN8).toBe(0x00020004);
    expect(v.VERSION_WIN8_1).toBe(0x00030000);
    expect(v.VERSION_WIN10).toBe(0x00040000);
    expect(v.VERSION_WIN10_V4_1).toBe(0x00040001);
    expect(v.VERSION_WIN10_V5).toBe(0x00050000);
    expect(v.VERSION_WIN10_V5_1).toBe(0x00050001);
    expect(v.VERSION_WIN10_V5_2).toBe(0x00050002);
    expect(v.VERSION_WIN10_V5_3).toBe(0x00050003);
    expect(v.vmbusVersion(5, 3)).toBe(v.VERSION_WIN10_V5_3);
    expect(v.versionMajor(v.VERSION_WIN8)).toBe(2);
    expect(v.versionMinor(v.VERSION_WIN8)).toBe(4);
  });

  it("formats as major.minor", () => {
    expect(v.formatVersion(v.VERSION_WIN10_V5_3)).toBe("5.3");
    expect(v.formatVersion(v.VERSION_WS2008)).toBe("0.13");
    expect(v.formatVersion(v.VERSION_WIN8_1)).toBe("3.0");
  });

  it("tries 5.3 down to 2.4, skipping versions above max_version", () => {
    expect(v.VMBUS_VERSIONS.map(v.formatVersion)).toEqual(["5.3", "5.2", "5.1", "5.0", "4.1", "4.0", "3.0", "2.4"]);
    expect(v.versionsToTry().length).toBe(8);
    expect(v.versionsToTry(v.VERSION_WIN10).map(v.formatVersion)).toEqual(["4.0", "3.0", "2.4"]);
    expect(v.isKnownVersion(v.VERSION_WIN7)).toBe(false);
    expect(v.isKnownVersion(v.VERSION_WIN10_V5_1)).toBe(true);
  });

  it("has the connection ids, ports and states of §7.5", () => {
    expect(v.VMBUS_MESSAGE_CONNECTION_ID).toBe(1);
    expect(v.VMBUS_MESSAGE_CONNECTION_ID_4).toBe(4);
    expect(v.VMBUS_MESSAGE_PORT_ID).toBe(1);
    expect(v.VMBUS_EVENT_CONNECTION_ID).toBe(2);
    expect(v.VMBUS_EVENT_PORT_ID).toBe(2);
    expect(v.VMBUS_MONITOR_CONNECTION_ID).toBe(3);
    expect(v.VMBUS_MONITOR_PORT_ID).toBe(3);
    expect(v.initiateContactConnectionId(v.VERSION_WIN10_V5)).toBe(4);
    expect(v.initiateContactConnectionId(v.VERSION_WIN10_V4_1)).toBe(1);
    expect(v.VmbusConnectState).toEqual({ DISCONNECTED: 0, CONNECTING: 1, CONNECTED: 2, DISCONNECTING: 3 });
    expect(v.connectStateName(2)).toBe("CONNECTED");
    expect(v.connectStateName(9)).toBe("UNKNOWN(9)");
  });

  it("gates features at the spec's versions", () => {
    expect(v.supportsUnload(v.VERSION_WIN8)).toBe(false);
    expect(v.supportsUnload(v.VERSION_WIN8_1)).toBe(true);
    expect(v.supportsHvSock(v.VERSION_WIN8_1)).toBe(false);
    expect(v.supportsHvSock(v.VERSION_WIN10)).toBe(true);
    expect(v.supportsModifyChannel(v.VERSION_WIN10)).toBe(false);
    expect(v.supportsModifyChannel(v.VERSION_WIN10_V4_1)).toBe(true);
    expect(v.usesNewContactMethod(v.VERSION_WIN10_V4_1)).toBe(false);
    expect(v.usesNewContactMethod(v.VERSION_WIN10_V5)).toBe(true);
    expect(v.supportsModifyChannelResponse(v.VERSION_WIN10_V5_2)).toBe(false);
    expect(v.supportsModifyChannelResponse(v.VERSION_WIN10_V5_3)).toBe(true);
    expect(v.VMBUS_MIN_VERSION_ISOLATED).toBe(v.VERSION_WIN10_V5_2);
  });
});
