/**
 * The worker entry of threaded mode's host thread. Started by
 * `ThreadedSystem.start` with `HostThreadParams` in `workerData`; imports
 * the plugin manifests and the optional setup hook named there (core never
 * imports drivers/), builds
 * the `HostThread`, tells the guest thread it is ready, runs until asked to
 * stop, and posts its report. A failure is posted and also marked in the
 * shared state word, so a guest thread asleep on its doorbell wakes.
 */
import "reflect-metadata";
import { parentPort, threadId, workerData } from "node:worker_threads";
import { HostThread, importHostSetup, importPluginManifests, type HostThreadMessage, type HostThreadParams } from "./host-side.js";
import { STATE_FAILED, W_GUEST_BELL, W_STATE, C_HOST_NOTIFIES, ring } from "./link.js";

function post(m: HostThreadMessage): void {
  parentPort?.postMessage(m);
}

async function main(): Promise<void> {
  const params = workerData as HostThreadParams;
  if (params === null || typeof params !== "object" || params.tag !== "vmbus-sim-host-thread") {
    throw new Error("host-worker.ts must be started by ThreadedSystem (workerData is not HostThreadParams)");
  }
  const words = new Int32Array(params.link.control);
  // A pending Atomics.waitAsync does not keep a worker's event loop alive;
  // a listened-to parent port does, until `close()` below.
  parentPort?.on("message", () => undefined);
  let host: HostThread | undefined;
  try {
    const manifests = await importPluginManifests(params.plugins);
    const setup = params.setup === undefined ? undefined : await importHostSetup(params.setup);
    host = new HostThread(params, manifests, setup);
    post({ kind: "ready", threadId, devices: host.devices.map((d) => ({ type: d.offer.name, instanceId: d.offer.instanceId.toString() })) });
    const report = await host.run();
    post({ ...report, threadId });
  } catch (e) {
    // State first, then the ring: the guest's drain loads the state after the bell moved.
    Atomics.store(words, W_STATE, STATE_FAILED);
    ring(words, W_GUEST_BELL, C_HOST_NOTIFIES);
    const err = e instanceof Error ? e : new Error(String(e));
    post({ kind: "failed", message: err.message, stack: err.stack });
  } finally {
    parentPort?.close();
  }
}

void main();
