import type { Millis } from './env.ts'
import type { Key } from './key.ts'

/**
 * A peer as the core sees it: an opaque id (the adapter uses the peer id
 * string, the simulator a short node name) and its Kademlia key.
 */
export interface Contact {
  readonly id: string
  readonly key: Key
  /**
   * The address group the routing table's diversity rule counts (an IPv4 /16,
   * an IPv6 /32); undefined: not limited (no public address known, or a
   * simulated node)
   */
  readonly group?: string
}

/**
 * How good a peer has been to us. The routing table and the lookups consult it
 * when they choose whom to keep, whom to evict and whom to ask first. The
 * priority peer stack implements it; {@link NEUTRAL_QUALITY} treats every peer
 * alike, as classic Kademlia does: every identified server is admitted and
 * every entry may be named in answers.
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
  /**
   * Whether we have opened a connection to the peer ourselves: the proof
   * that others can dial it too. A connection it opened to us proves nothing
   * (a peer behind a NAT can dial out and still announce the DHT protocol).
   */
  reached(id: string, now: Millis): boolean
  /** How the peer stands when we consider naming it to others (see {@link Standing}) */
  standing(id: string, now: Millis): Standing
  /**
   * A peer that `advisor` named in an answer was asked: it answered (`good`)
   * or could not be reached. What makes an advisor's advice worth following.
   */
  advice(advisor: string, good: boolean, now: Millis): void
  /**
   * Whether the peers `advisor` names have failed us so often that one we
   * have never reached, named only by it, is left aside while others remain
   */
  doubtful(advisor: string, now: Millis): boolean
  /**
   * Our last connection to the peer closed and we did not close it: the
   * quality may hold it back for a while (see the peer stack's
   * `suspectFor`). Optional: without it a broken connection changes nothing.
   */
  disconnected?(id: string, now: Millis): void
}

/**
 * - `verified`: we reached it and it answered a request of ours recently;
 * - `unverified`: nothing recent either way;
 * - `failed`: in back-off, or our last contact with it failed.
 */
export type Standing = 'verified' | 'unverified' | 'failed'

export const NEUTRAL_QUALITY: PeerQuality = {
  value: () => 0.5,
  backedOff: () => false,
  hedgeDelay: () => Infinity,
  reached: () => true,
  standing: () => 'unverified',
  advice: () => {},
  doubtful: () => false
}
