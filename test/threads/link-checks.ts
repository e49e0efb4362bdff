/**
 * What every threaded-mode test asserts about a run's report: the host ran
 * on another thread, and the guest and the host really talked through the
 * link (doorbells both ways, mailbox messages, SINTs forwarded, signals by
 * monitor page or hypercall bit), with no malformed mailbox packet.
 */
import { threadId } from "node:worker_threads";
import { expect } from "vitest";
import { HostThreadError, type ThreadedRunReport, type ThreadedSystem } from "../../core/index.js";

export function expectCrossThreadTraffic(report: ThreadedRunReport): void {
  expect(report.hostThreadId).not.toBe(threadId);
  expect(report.hostThreadId).toBeGreaterThan(0);
  const link = report.link;
  expect(link.guestToHostNotifies).toBeGreaterThan(0);
  expect(link.hostToGuestNotifies).toBeGreaterThan(0);
  expect(link.mailboxMessages).toBeGreaterThan(0);
  expect(link.mailboxMalformed).toBe(0);
  expect(link.sintForwards).toBeGreaterThan(0);
  expect(link.monitorRings + link.eventSignals).toBeGreaterThan(0);
}

/** `start()` must fail with a HostThreadError whose message contains `text`, and the worker must be gone (shutdown rejects too). */
export async function expectStartFails(sys: ThreadedSystem, text: string): Promise<void> {
  const err = await sys.start().then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HostThreadError);
  expect(String((err as Error).message)).toContain(text);
  await expect(sys.shutdown()).rejects.toBeInstanceOf(HostThreadError);
}
