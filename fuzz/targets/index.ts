/**
 * Every fuzz target, in the order the campaign runs them: the shared ring
 * first (both directions), then the control plane (both directions), then
 * the storage and network device pairs (each side hostile to the other).
 */
import type { FuzzTarget } from "../lib/target.js";
import { chanGuestToServer, chanHostToClient } from "./channel-messages.js";
import { netvscTarget } from "./netvsc.js";
import { netvspTarget } from "./netvsp.js";
import { ringGuestToHost, ringHostToGuest } from "./ring.js";
import { storvscTarget } from "./storvsc.js";
import { storvspTarget } from "./storvsp.js";

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  ringHostToGuest,
  ringGuestToHost,
  chanHostToClient,
  chanGuestToServer,
  storvspTarget,
  storvscTarget,
  netvspTarget,
  netvscTarget,
];

export function findTarget(name: string): FuzzTarget | undefined {
  return FUZZ_TARGETS.find((t) => t.name === name);
}
