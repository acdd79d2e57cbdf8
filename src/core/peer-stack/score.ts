/**
 * The value of a peer, as pure functions of its statistics, the parameters
 * and the current time. See docs/peer-stack.md for the reasoning.
 *
 * value = reliability * (1 - latencyWeight + latencyWeight * latencyFactor)
 * reliability = (s + prior) / (s + f + 2 * prior), with s and f the
 * successes and failures decayed by 2^(-age / halfLife)
 * latencyFactor = latencyScale / (latencyScale + smoothed latency), 1 while
 * no latency has been seen
 */
import type { Category, Observation, PeerStackConfig } from './params.ts'
import type { Millis } from '../env.ts'

/** What the stack remembers about one peer (plain numbers: it is saved as JSON) */
export interface PeerStats {
  /** decayed success and failure evidence, as of `updated` */
  successes: number
  failures: number
  updated: Millis
  firstSeen: Millis
  lastSeen: Millis
  /** last success; -Infinity is stored as null-free -1 sentinel: see NEVER */
  lastSuccess: Millis
  consecutiveFailures: number
  backoffUntil: Millis
  /** smoothed response latency and its mean deviation (RFC 6298); -1: none yet */
  srtt: Millis
  rttvar: Millis
  /** smoothed dial duration and deviation; -1: none yet */
  sdial: Millis
  dialvar: Millis
  /** interactions observed in all (not decayed) */
  interactions: number
  /**
   * After our last connection to it broke (a `disconnected` observation):
   * until when it is held back (`suspectFor` later). NEVER when it has
   * answered us since, or never broke.
   */
  heldUntil: Millis
}

/** "Never" for time fields */
export const NEVER = -1

export function emptyStats (now: Millis): PeerStats {
  return {
    successes: 0,
    failures: 0,
    updated: now,
    firstSeen: now,
    lastSeen: now,
    lastSuccess: NEVER,
    consecutiveFailures: 0,
    backoffUntil: NEVER,
    srtt: NEVER,
    rttvar: NEVER,
    sdial: NEVER,
    dialvar: NEVER,
    interactions: 0,
    heldUntil: NEVER
  }
}

/** The decay multiplier for evidence `dt` ms old */
export function decay (dt: Millis, params: PeerStackConfig): number {
  return dt <= 0 ? 1 : Math.pow(2, -dt / params.halfLife)
}

/** Successes and failures as of `now` */
export function evidenceAt (stats: PeerStats, params: PeerStackConfig, now: Millis): { successes: number, failures: number } {
  const d = decay(now - stats.updated, params)
  return { successes: stats.successes * d, failures: stats.failures * d }
}

/** RFC 6298 smoothing: the first sample sets the mean and half of it as deviation */
export function smooth (mean: Millis, dev: Millis, sample: Millis): [Millis, Millis] {
  if (mean < 0) {
    return [sample, sample / 2]
  }
  const nextDev = 0.75 * dev + 0.25 * Math.abs(mean - sample)
  return [0.875 * mean + 0.125 * sample, nextDev]
}

/**
 * Exponential back-off after `n` consecutive failures; `unreached`: of a
 * peer never reached, whose dial failed while others answer us
 */
export function backoffFor (n: number, params: PeerStackConfig, unreached = false): Millis {
  if (n <= 0) {
    return 0
  }
  const [base, max] = unreached ? [params.unreachedBackoffBase, params.unreachedBackoffMax] : [params.backoffBase, params.backoffMax]
  return Math.min(max, base * Math.pow(2, Math.min(n - 1, 40)))
}

/** Whether we never reached this peer: no dial of ours succeeded, it never answered */
export function neverReached (stats: PeerStats): boolean {
  return stats.sdial < 0 && stats.lastSuccess === NEVER
}

/**
 * The statistics after one more observation (pure: a new object).
 * `othersAnswer`: another peer answered us within `activeWindow` (our own
 * network works), which makes a second failed dial in a row to a peer never
 * reached the longer `unreachedBackoff*` kind.
 */
export function applyObservation (stats: PeerStats, obs: Observation, params: PeerStackConfig, now: Millis, othersAnswer = false): PeerStats {
  const at = Math.max(now, stats.updated)
  if (obs.type === 'disconnected') {
    // no evidence either way and no interaction: only a short back-off
    return { ...stats, heldUntil: at + params.suspectFor }
  }
  if (obs.type === 'closed-by-us') {
    return stats.heldUntil === NEVER ? stats : { ...stats, heldUntil: NEVER }
  }
  const { successes, failures } = evidenceAt(stats, params, at)
  const next: PeerStats = { ...stats, successes, failures, updated: at, lastSeen: Math.max(stats.lastSeen, at), interactions: stats.interactions + 1 }
  switch (obs.type) {
    case 'dial-ok':
      [next.sdial, next.dialvar] = smooth(stats.sdial, stats.dialvar, Math.max(0, obs.duration))
      return next // a dial alone proves reachability, not service: no evidence either way
    case 'response': {
      next.successes += obs.useful ? params.successWeight : params.successWeight / 2
      ;[next.srtt, next.rttvar] = smooth(stats.srtt, stats.rttvar, Math.max(0, obs.latency))
      next.lastSuccess = at
      next.consecutiveFailures = 0
      next.backoffUntil = NEVER
      next.heldUntil = NEVER
      return next
    }
    case 'dial-failed':
    case 'request-failed':
      next.failures += params.failureWeight
      break
    case 'invalid-response':
      next.failures += params.invalidWeight
      break
    default:
      return next
  }
  next.consecutiveFailures = stats.consecutiveFailures + 1
  // the long kind from the second failed dial in a row: one dial that ran
  // out of time (a busy machine, a slow path) shuts nobody out for long
  const unreached = obs.type === 'dial-failed' && othersAnswer && neverReached(stats) && next.consecutiveFailures >= 2
  next.backoffUntil = at + backoffFor(next.consecutiveFailures - (unreached ? 1 : 0), params, unreached)
  return next
}

/** The peer's value in [0, 1]; 0.5 with no evidence */
export function computeScore (stats: PeerStats, params: PeerStackConfig, now: Millis): number {
  const { successes, failures } = evidenceAt(stats, params, now)
  const prior = params.priorWeight
  const reliability = (successes + prior) / (successes + failures + 2 * prior)
  const latencyFactor = stats.srtt < 0 ? 1 : params.latencyScale / (params.latencyScale + stats.srtt)
  return reliability * (1 - params.latencyWeight + params.latencyWeight * latencyFactor)
}

/** In back-off after failures, or held back after a broken connection */
export function inBackoff (stats: PeerStats, now: Millis): boolean {
  return stats.backoffUntil > now || stats.heldUntil > now
}

/**
 * The category, as seed 003 and BEP 5 sort peers: bad (in back-off, or a
 * low value on enough evidence), active (a success within `activeWindow`),
 * inactive (known, no recent success), unknown (nothing to go on).
 * `proving` is decided by the stack, which holds the exploration slots.
 */
export function categorize (stats: PeerStats, params: PeerStackConfig, now: Millis): Exclude<Category, 'proving'> {
  if (inBackoff(stats, now)) {
    return 'bad'
  }
  const { successes, failures } = evidenceAt(stats, params, now)
  if (successes + failures >= params.badEvidence && computeScore(stats, params, now) < params.badValue) {
    return 'bad'
  }
  if (stats.lastSuccess !== NEVER && now - stats.lastSuccess <= params.activeWindow) {
    return 'active'
  }
  if (stats.interactions === 0 || successes + failures < 0.05) {
    return 'unknown'
  }
  return 'inactive'
}

function clamp (x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x))
}

/** Mean plus four deviations, the RFC 6298 retransmission timeout */
function rto (mean: Millis, dev: Millis): Millis {
  return mean + 4 * dev
}

export interface GlobalEstimates {
  srtt: Millis
  rttvar: Millis
  sdial: Millis
  dialvar: Millis
}

/**
 * A dial is about four round trips (TCP, multistream-select, the noise
 * handshake, muxer negotiation): the estimate when no dial has been timed,
 * as when every connection so far was opened by someone else.
 */
const DIAL_ROUND_TRIPS = 4

/** The typical dial (mean, deviation) when this peer's own is unknown */
function globalDial (global: GlobalEstimates): [Millis, Millis] | undefined {
  if (global.sdial >= 0) {
    return [global.sdial, global.dialvar]
  }
  if (global.srtt >= 0) {
    return [DIAL_ROUND_TRIPS * global.srtt, DIAL_ROUND_TRIPS * global.rttvar]
  }
  return undefined
}

export function dialTimeoutOf (stats: PeerStats | undefined, global: GlobalEstimates, params: PeerStackConfig): Millis {
  const g = globalDial(global)
  let est = params.dialTimeoutCeiling
  if (stats != null && stats.sdial >= 0) {
    est = rto(stats.sdial, stats.dialvar)
  } else if (g != null) {
    est = 2 * rto(g[0], g[1])
  }
  return Math.round(clamp(est, params.dialTimeoutFloor, params.dialTimeoutCeiling))
}

export function requestTimeoutOf (stats: PeerStats | undefined, global: GlobalEstimates, params: PeerStackConfig): Millis {
  let est = params.requestTimeoutCeiling
  if (stats != null && stats.srtt >= 0) {
    est = 2 * rto(stats.srtt, stats.rttvar)
  } else if (global.srtt >= 0) {
    est = 4 * rto(global.srtt, global.rttvar)
  }
  return Math.round(clamp(est, params.requestTimeoutFloor, params.requestTimeoutCeiling))
}

/**
 * How long to wait for an answer before also asking the next candidate: the
 * time a dial plus a request usually takes (mean plus one deviation, not the
 * four of a timeout: hedging early costs one extra request, waiting costs the
 * whole lookup), from the peer's own record where it has one and the global
 * one otherwise.
 */
export function hedgeDelayOf (stats: PeerStats | undefined, global: GlobalEstimates, params: PeerStackConfig): Millis {
  const g = globalDial(global)
  let dial = params.hedgeCeiling
  if (stats != null && stats.sdial >= 0) {
    dial = stats.sdial + stats.dialvar
  } else if (g != null) {
    dial = g[0] + g[1]
  }
  let req = 0
  if (stats != null && stats.srtt >= 0) {
    req = stats.srtt + stats.rttvar
  } else if (global.srtt >= 0) {
    req = global.srtt + global.rttvar
  }
  return Math.round(clamp(dial + req, params.hedgeFloor, params.hedgeCeiling))
}

/** Whether `x` looks like PeerStats (for restoring saved state) */
export function isPeerStats (x: unknown): x is PeerStats {
  if (x == null || typeof x !== 'object') {
    return false
  }
  const fields: Array<keyof PeerStats> = ['successes', 'failures', 'updated', 'firstSeen', 'lastSeen', 'lastSuccess', 'consecutiveFailures', 'backoffUntil', 'srtt', 'rttvar', 'sdial', 'dialvar', 'interactions']
  const o = x as Record<string, unknown>
  return fields.every(f => typeof o[f] === 'number' && Number.isFinite(o[f])) &&
    (o.heldUntil === undefined || (typeof o.heldUntil === 'number' && Number.isFinite(o.heldUntil))) &&
    (o.successes as number) >= 0 && (o.failures as number) >= 0 && (o.consecutiveFailures as number) >= 0 && (o.interactions as number) >= 0
}
