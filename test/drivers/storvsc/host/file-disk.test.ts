/**
 * The raw image file backend, alone and through the VSP: data written by the
 * guest is byte-identical in the file; an existing image is served as is;
 * creation, extension, read-only images, UNMAP as zeros, close.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  buildReadCapacity16Cdb,
  buildReadCdb,
  buildSynchronizeCacheCdb,
  buildUnmapCdb,
  buildUnmapParameterList,
  buildWriteCdb,
} from "../../../../drivers/storvsc/protocol/index.js";
import { DiskIoError, DiskSpecError, FileDiskBackend, createDisk } from "../../../../drivers/storvsc/host/index.js";
import { bootStorvsp, pattern, toHex } from "./harness.js";

let dir = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "storvsp-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("FileDiskBackend", () => {
  it("creates the image at sizeBytes, reads and writes at block offsets, unmaps to zeros", async () => {
    const path = join(dir, "a.img");
    const d = new FileDiskBackend({ path, sizeBytes: 1 << 20 });
    expect(statSync(path).size).toBe(1 << 20);
    expect(d.blockCount).toBe(2048);
    const data = pattern(1024, 1);
    await d.write(3, data);
    const back = new Uint8Array(1024);
    await d.read(3, 2, back);
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
    expect(Buffer.from(readFileSync(path).subarray(1536, 2560)).equals(Buffer.from(data))).toBe(true);
    await d.flush();
    await d.unmap(3, 1);
    expect(readFileSync(path).subarray(1536, 2048).every((b) => b === 0)).toBe(true);
    await expect(d.read(2047, 2, new Uint8Array(1024))).rejects.toThrow(/runs past the last block 2047/);
    d.close();
    d.close();
    await expect(d.read(0, 1, new Uint8Array(512))).rejects.toThrow(DiskIoError);
  });

  it("extends a shorter image keeping its bytes, and sizes itself from an existing file", () => {
    const path = join(dir, "b.img");
    const head = pattern(4096, 2);
    writeFileSync(path, head);
    const grown = new FileDiskBackend({ path, sizeBytes: 64 * 1024, blockSize: 4096 });
    grown.close();
    expect(statSync(path).size).toBe(64 * 1024);
    expect(Buffer.from(readFileSync(path).subarray(0, 4096)).equals(Buffer.from(head))).toBe(true);
    const sized = new FileDiskBackend({ path, blockSize: 4096 });
    expect(sized.blockCount).toBe(16);
    sized.close();
  });

  it("refuses a missing image without sizeBytes (creating nothing) and a read-only image smaller than asked", () => {
    const missing = join(dir, "missing.img");
    expect(() => createDisk({ kind: "file", path: missing })).toThrow(DiskIoError);
    expect(existsSync(missing)).toBe(false);
    const path = join(dir, "c.img");
    writeFileSync(path, new Uint8Array(4096));
    expect(() => createDisk({ kind: "file", path, sizeBytes: 8192, readOnly: true }, { where: "disks[3]" })).toThrow(DiskSpecError);
    expect(() => createDisk({ kind: "file", path, sizeBytes: 8192, readOnly: true }, { where: "disks[3]" })).toThrow(/disks\[3\]\.sizeBytes=8192/);
    const odd = join(dir, "odd.img");
    writeFileSync(odd, new Uint8Array(1000));
    expect(() => createDisk({ kind: "file", path: odd })).toThrow(/disk\.sizeBytes=1000/);
  });
});

describe("the file backend through the VSP", () => {
  it("data written by the guest is byte-identical in the image file", async () => {
    const path = join(dir, "disk.img");
    const g = await bootStorvsp({ disks: [{ kind: "file", path, sizeBytes: 4 << 20 }] });
    await g.handshake();
    const data = pattern(16 * 512, 42);
    expect((await g.srb(buildWriteCdb(10, 100n, 16), { out: data, byteOffset: 512 })).srb.srbStatus).toBe(0x01);
    expect((await g.srb(buildSynchronizeCacheCdb(10))).srb.srbStatus).toBe(0x01);
    const file = readFileSync(path);
    expect(file.length).toBe(4 << 20);
    expect(Buffer.from(file.subarray(100 * 512, 116 * 512)).equals(Buffer.from(data))).toBe(true);
    expect(file.subarray(0, 100 * 512).every((b) => b === 0)).toBe(true);
    const r = await g.srb(buildReadCdb(16, 100n, 16), { inLength: data.length });
    expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
    const list = buildUnmapParameterList([{ lba: 104n, blocks: 4 }]);
    expect((await g.srb(buildUnmapCdb(list.length), { out: list })).srb.srbStatus).toBe(0x01);
    expect(readFileSync(path).subarray(104 * 512, 108 * 512).every((b) => b === 0)).toBe(true);
    g.vsp.dispose();
  });

  it("serves an existing image (sized from the file) and refuses writes when read-only, leaving the file untouched", async () => {
    const path = join(dir, "ro.img");
    const image = pattern(64 * 1024, 7);
    writeFileSync(path, image);
    const g = await bootStorvsp({ disks: [{ kind: "file", path, readOnly: true }] });
    await g.handshake();
    const cap = await g.srb(buildReadCapacity16Cdb(), { inLength: 32 });
    expect(toHex(cap.data.subarray(0, 12))).toBe("00 00 00 00 00 00 00 7f 00 00 02 00");
    const r = await g.srb(buildReadCdb(10, 10n, 4), { inLength: 2048 });
    expect(Buffer.from(r.data).equals(Buffer.from(image.subarray(10 * 512, 14 * 512)))).toBe(true);
    const w = await g.srb(buildWriteCdb(10, 10n, 1), { out: new Uint8Array(512) });
    expect(w.sense[2]).toBe(0x07);
    expect(w.sense[12]).toBe(0x27);
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(image))).toBe(true);
    g.vsp.dispose();
  });
});
