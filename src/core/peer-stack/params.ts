/**
 * Parameters of the priority peer stack, defaulted and validated in one
 * place. docs/peer-stack.md explains each default.
 */
import { checkRange, stripUndefined } from '../routing-table/config.ts'
import type { Millis } from '../env.ts'

/** One interaction with a peer, as the drivers report it */
export type Observation =
  | { type: 'dial-ok', duration: Millis }
  | { type: 'dial-failed', reason: 'timeout' | 'refused' | 'unreachable' }
  | { type: 'response', latency: Millis, useful: boolean }
  | { type: 'request-failed', reason: 'timeout' | 'reset' | 'bad-response' | 'protocol-unsupported' }
  | { type: 'invalid-response' }
  /** our last connection to the peer closed and we did not close it (see `suspectFor`) */
  | { type: 'disconnected' }
  /** the connection reported `disconnected` was closed by our own side after all (libp2p's pruner): the suspicion is taken back */
  | { type: 'closed-by-us' }

export type Category = 'unknown' | 'proving' | 'active' | 'inactive' | 'bad'

export interface PeerStackConfig {
  /**
   * Half-life of evidence: after this long without news, successes and
   * failures weigh half as much.
   *
   * @default 1800000 (30 minutes; range 1000..604800000)
   */
  halfLife: Millis
  /**
   * Beta prior pseudo-counts (successes, failures). Equal values make an
   * unknown peer worth 0.5.
   *
   * @default 1 (range 0.01..100)
   */
  priorWeight: number
  /**
   * Weight of a useful response (closer peers, a record, providers) as
   * success evidence; an answered but useless request counts half of it.
   *
   * @default 1 (range 0..100)
   */
  successWeight: number
  /**
   * Weight of a failed dial or request as failure evidence.
   *
   * @default 1 (range 0..100)
   */
  failureWeight: number
  /**
   * Weight of an invalid response (a forged or malformed record).
   *
   * @default 3 (range 0..100)
   */
  invalidWeight: number
  /**
   * Latency at which the latency factor is 0.5, in ms.
   *
   * @default 1000 (range 1..600000)
   */
  latencyScale: Millis
  /**
   * Share of the value that latency can take away (0: latency ignored).
   *
   * @default 0.25 (range 0..1)
   */
  latencyWeight: number
  /**
   * A peer that succeeded within this window is active (seed 003: 15 minutes).
   *
   * @default 900000 (range 1000..86400000)
   */
  activeWindow: Millis
  /**
   * First back-off after a failure; each further consecutive failure doubles it.
   *
   * @default 60000 (range 0..86400000)
   */
  backoffBase: Millis
  /**
   * Longest back-off.
   *
   * @default 3600000 (range 0..604800000)
   */
  backoffMax: Millis
  /**
   * Back-off after a second failed dial in a row to a peer we have never
   * reached (no dial of ours ever succeeded and it never answered us; the
   * first failure gets `backoffBase`, as one dial that ran out of time on a
   * busy machine proves little), while other peers answer us (a response within `activeWindow`, so the failure is
   * the peer's, not our own network's). Such a peer is most likely behind
   * a NAT: on a network where classic nodes keep naming undialable peers,
   * retrying it after a minute (`backoffBase`) is what made an adopter dial
   * 10 to 15 of them per lookup (issue #10). Each further consecutive
   * failure doubles it.
   *
   * @default 1800000 (30 minutes; range backoffBase..604800000)
   */
  unreachedBackoffBase: Millis
  /**
   * Longest back-off of a peer never reached.
   *
   * @default 86400000 (24 hours; range unreachedBackoffBase..604800000)
   */
  unreachedBackoffMax: Millis
  /**
   * How long a peer whose connection broke (the other side closed our last
   * connection to it, or it reset) counts as in back-off, unless it connects
   * again or answers first. A peer that went away looks exactly like this,
   * and so does one whose connection manager trimmed us; neither is failure
   * evidence (its value does not change), but for this long lookups ask it
   * only when they run short of others and our answers do not name it, so
   * a node that just lost a peer neither dials it on the next operation nor
   * sends others to it. Afterwards it is unverified (never `verified` again
   * until it answers us).
   *
   * @default 60000 (range 0..86400000)
   */
  suspectFor: Millis
  /**
   * Outcomes (decayed by `halfLife`) of the peers an advisor named before
   * its advice can be doubted.
   *
   * @default 4 (range 0..1000)
   */
  adviceEvidence: number
  /**
   * An advisor whose named peers answered at a rate below this (with a
   * uniform prior) is doubtful: a peer we never reached that only it named
   * is left aside while others remain. 0 never doubts.
   *
   * @default 0.7 (range 0..1)
   */
  adviceThreshold: number
  /**
   * Below this value (with enough evidence) a peer is bad even outside back-off.
   *
   * @default 0.2 (range 0..1)
   */
  badValue: number
  /**
   * Evidence (decayed successes plus failures) needed before `badValue` applies.
   *
   * @default 3 (range 0..1000)
   */
  badEvidence: number
  /**
   * New peers that may be proving themselves at once (the exploration budget).
   *
   * @default 64 (range 0..100000)
   */
  maxProving: number
  /**
   * Interactions a proving peer gets before it is judged like any other.
   *
   * @default 5 (range 1..1000)
   */
  provingInteractions: number
  /**
   * Longest time a peer may hold a proving slot.
   *
   * @default 600000 (10 minutes; range 1000..86400000)
   */
  provingWindow: Millis
  /**
   * Dial timeout bounds, in ms. Without observations the ceiling applies.
   *
   * @default 1000
   */
  dialTimeoutFloor: Millis
  /** @default 5000 */
  dialTimeoutCeiling: Millis
  /**
   * Request timeout bounds, in ms.
   *
   * @default 1000
   */
  requestTimeoutFloor: Millis
  /** @default 10000 */
  requestTimeoutCeiling: Millis
  /**
   * Hedge delay bounds, in ms: how long a lookup waits for an answer before
   * it also asks the next candidate.
   *
   * @default 200
   */
  hedgeFloor: Millis
  /** @default 3000 */
  hedgeCeiling: Millis
  /**
   * Peers tracked at most; beyond it the least valuable, longest-unseen ones
   * are forgotten in batches of 1%.
   *
   * @default 10000 (range 16..10000000)
   */
  maxPeers: number
}

export function defaultPeerStackConfig (): PeerStackConfig {
  return {
    halfLife: 30 * 60_000,
    priorWeight: 1,
    successWeight: 1,
    failureWeight: 1,
    invalidWeight: 3,
    latencyScale: 1000,
    latencyWeight: 0.25,
    activeWindow: 15 * 60_000,
    backoffBase: 60_000,
    backoffMax: 60 * 60_000,
    unreachedBackoffBase: 30 * 60_000,
    unreachedBackoffMax: 24 * 60 * 60_000,
    suspectFor: 60_000,
    adviceEvidence: 4,
    adviceThreshold: 0.7,
    badValue: 0.2,
    badEvidence: 3,
    maxProving: 64,
    provingInteractions: 5,
    provingWindow: 10 * 60_000,
    dialTimeoutFloor: 1000,
    dialTimeoutCeiling: 5000,
    requestTimeoutFloor: 1000,
    requestTimeoutCeiling: 10_000,
    hedgeFloor: 200,
    hedgeCeiling: 3000,
    maxPeers: 10_000
  }
}

/** The full config from a partial one; throws InvalidConfigError naming the first bad field */
export function peerStackConfig (init: Partial<PeerStackConfig> = {}): PeerStackConfig {
  const c = { ...defaultPeerStackConfig(), ...stripUndefined(init) }
  checkRange('peerStack.halfLife', c.halfLife, 1000, 604_800_000)
  checkRange('peerStack.priorWeight', c.priorWeight, 0.01, 100, false)
  checkRange('peerStack.successWeight', c.successWeight, 0, 100, false)
  checkRange('peerStack.failureWeight', c.failureWeight, 0, 100, false)
  checkRange('peerStack.invalidWeight', c.invalidWeight, 0, 100, false)
  checkRange('peerStack.latencyScale', c.latencyScale, 1, 600_000)
  checkRange('peerStack.latencyWeight', c.latencyWeight, 0, 1, false)
  checkRange('peerStack.activeWindow', c.activeWindow, 1000, 86_400_000)
  checkRange('peerStack.backoffBase', c.backoffBase, 0, 86_400_000)
  checkRange('peerStack.backoffMax', c.backoffMax, c.backoffBase, 604_800_000)
  checkRange('peerStack.unreachedBackoffBase', c.unreachedBackoffBase, c.backoffBase, 604_800_000)
  checkRange('peerStack.unreachedBackoffMax', c.unreachedBackoffMax, c.unreachedBackoffBase, 604_800_000)
  checkRange('peerStack.suspectFor', c.suspectFor, 0, 86_400_000)
  checkRange('peerStack.adviceEvidence', c.adviceEvidence, 0, 1000, false)
  checkRange('peerStack.adviceThreshold', c.adviceThreshold, 0, 1, false)
  checkRange('peerStack.badValue', c.badValue, 0, 1, false)
  checkRange('peerStack.badEvidence', c.badEvidence, 0, 1000, false)
  checkRange('peerStack.maxProving', c.maxProving, 0, 100_000)
  checkRange('peerStack.provingInteractions', c.provingInteractions, 1, 1000)
  checkRange('peerStack.provingWindow', c.provingWindow, 1000, 86_400_000)
  checkRange('peerStack.dialTimeoutFloor', c.dialTimeoutFloor, 1, 600_000)
  checkRange('peerStack.dialTimeoutCeiling', c.dialTimeoutCeiling, c.dialTimeoutFloor, 600_000)
  checkRange('peerStack.requestTimeoutFloor', c.requestTimeoutFloor, 1, 600_000)
  checkRange('peerStack.requestTimeoutCeiling', c.requestTimeoutCeiling, c.requestTimeoutFloor, 600_000)
  checkRange('peerStack.hedgeFloor', c.hedgeFloor, 0, 600_000)
  checkRange('peerStack.hedgeCeiling', c.hedgeCeiling, c.hedgeFloor, 600_000)
  checkRange('peerStack.maxPeers', c.maxPeers, 16, 10_000_000)
  return c
}
