import type { Millis } from './env.ts'
import type { Key } from './key.ts'

/**
 * A peer as the core sees it: an opaque id (the adapter uses the peer id
 * string, the simulator a short node name) and its Kademlia key.
 */
export interface Contact {
  readonly id: string
  readonly key: Key
}

/**
 * How good a peer has been to us. The routing table and the lookups consult it
 * when they choose whom to keep, whom to evict and whom to ask first. The
 * priority peer stack implements it; {@link NEUTRAL_QUALITY} treats every peer
 * alike, as classic Kademlia does.
 */
export interface PeerQuality {
  /** A value in [0, 1]; 0.5 means "no evidence either way" */
  value(id: string, now: Millis): number
  /** True while the peer is in back-off and should not be contacted if avoidable */
  backedOff(id: string, now: Millis): boolean
  /**
   * How long an unanswered request to the peer may run before a lookup treats
   * it as slow and asks the next candidate; `Infinity` never hedges.
   */
  hedgeDelay(id: string, now: Millis): Millis
}

export const NEUTRAL_QUALITY: PeerQuality = {
  value: () => 0.5,
  backedOff: () => false,
  hedgeDelay: () => Infinity
}
