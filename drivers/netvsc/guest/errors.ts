/**
 * Typed errors of the guest netvsc driver — storvsc-netvsc.md §10 (a
 * handshake step the host refused), §13.8 (an RNDIS request that failed or
 * was not answered), §11.1 (frames that cannot be sent).
 */
import { VmbusSimError } from "../../../core/index.js";

/** A step of the NVSP / RNDIS bring-up failed: names the step, the field, the value and what was expected. */
export class NetvscHandshakeError extends VmbusSimError {
  readonly code = "NETVSC_HANDSHAKE";
  constructor(
    readonly step: string,
    readonly field: string,
    readonly value: string | number,
    readonly expected: string,
  ) {
    super(`netvsc ${step}: ${field}=${typeof value === "number" ? `0x${(value >>> 0).toString(16)}` : value} ${expected}`);
  }
}

/** A request (NVSP step or RNDIS control message) got no answer in time. */
export class NetvscTimeoutError extends VmbusSimError {
  readonly code = "NETVSC_TIMEOUT";
  constructor(
    readonly what: string,
    readonly channel: string,
    readonly timeoutNs: number,
  ) {
    super(`netvsc ${what} on ${channel}: no answer within ${timeoutNs / 1e9} s (virtual time)`);
  }
}

/** The NIC was removed (or its probe failed): the frame or request was not / will not be sent. */
export class NetvscRemovedError extends VmbusSimError {
  readonly code = "NETVSC_REMOVED";
  constructor(
    readonly what: string,
    readonly nic: string,
    readonly reason: string,
  ) {
    super(`${nic}: ${what} failed: ${reason}`);
  }
}

/** A frame the NIC cannot carry (too short, longer than MTU + headers) — Linux drops it and counts tx_dropped. */
export class NetvscFrameError extends VmbusSimError {
  readonly code = "NETVSC_FRAME";
  constructor(
    readonly nic: string,
    readonly length: number,
    readonly limit: string,
  ) {
    super(`${nic}: frame of ${length} bytes ${limit}`);
  }
}

/** The host completed a transmit with a status other than NVSP_STAT_SUCCESS. */
export class NetvscSendError extends VmbusSimError {
  readonly code = "NETVSC_SEND";
  constructor(
    readonly nic: string,
    readonly status: number,
  ) {
    super(`${nic}: the host completed SEND_RNDIS_PKT with status ${status} (not NVSP_STAT_SUCCESS 1)`);
  }
}
