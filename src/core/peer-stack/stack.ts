/**
 * The priority peer stack: every interaction with a peer is an observation;
 * from them each peer earns a value (see score.ts) and a category, bad peers
 * back off exponentially, new peers get a bounded chance to prove themselves,
 * and timeouts adapt to what was observed. It implements the core's
 * {@link PeerQuality}, so the routing table and lookups consult it directly.
 *
 * Exploration: a peer seen for the first time takes one of `maxProving`
 * proving slots if one is free. While it holds the slot (at most
 * `provingInteractions` interactions or `provingWindow`, and until its first
 * failure) it carries a small peer store tag, so libp2p does not prune its
 * connection before it has had a chance to serve. Peers that find no free
 * slot are still used, just not protected.
 *
 * Bounds: at most `maxPeers` peers; when full, the least valuable 1% (ties:
 * longest unseen) are forgotten in one pass, so each insertion costs O(log n)
 * amortised. Proving slots: `maxProving`.
 */
import { peerStackConfig } from './params.ts'
import { applyObservation, categorize, computeScore, decay, dialTimeoutOf, emptyStats, hedgeDelayOf, inBackoff, isPeerStats, NEVER, requestTimeoutOf, smooth } from './score.ts'
import type { Category, Observation, PeerStackConfig } from './params.ts'
import type { GlobalEstimates, PeerStats } from './score.ts'
import type { PeerQuality, Standing } from '../contact.ts'
import type { Millis } from '../env.ts'

/** Tag given to a peer holding a proving slot */
const PROVING_TAG = 10

export class PeerStack implements PeerQuality {
  readonly config: PeerStackConfig
  private readonly peers = new Map<string, PeerStats>()
  /** peer id -> when it took its proving slot */
  private readonly proving = new Map<string, Millis>()
  private readonly global: GlobalEstimates = { srtt: -1, rttvar: -1, sdial: -1, dialvar: -1 }
  /** when any peer last answered us */
  private lastResponse: Millis = NEVER
  /** per advisor: decayed outcomes of the peers it named, least recently updated first */
  private readonly advisors = new Map<string, { good: number, bad: number, updated: Millis }>()

  constructor (init: Partial<PeerStackConfig> = {}) {
    this.config = peerStackConfig(init)
  }

  get size (): number {
    return this.peers.size
  }

  /** Proving slots in use */
  get provingCount (): number {
    return this.proving.size
  }

  stats (id: string): PeerStats | undefined {
    return this.peers.get(id)
  }

  observe (id: string, obs: Observation, now: Millis): void {
    let stats = this.peers.get(id)
    if (stats == null && obs.type === 'closed-by-us') {
      return // nothing held back to take back
    }
    if (stats == null) {
      this.makeRoom(now)
      stats = emptyStats(now)
      if (obs.type !== 'disconnected') {
        this.tryExplore(id, now)
      }
    }
    const othersAnswer = this.lastResponse !== NEVER && now - this.lastResponse <= this.config.activeWindow
    const next = applyObservation(stats, obs, this.config, now, othersAnswer)
    this.peers.set(id, next)
    if (obs.type === 'response') {
      this.lastResponse = Math.max(this.lastResponse, now)
    }
    if (obs.type === 'dial-ok') {
      [this.global.sdial, this.global.dialvar] = smooth(this.global.sdial, this.global.dialvar, Math.max(0, obs.duration))
    } else if (obs.type === 'response') {
      [this.global.srtt, this.global.rttvar] = smooth(this.global.srtt, this.global.rttvar, Math.max(0, obs.latency))
    }
    const since = this.proving.get(id)
    if (since != null && (next.consecutiveFailures > 0 || next.interactions >= this.config.provingInteractions || now - since >= this.config.provingWindow)) {
      this.proving.delete(id)
    }
  }

  advice (advisor: string, good: boolean, now: Millis): void {
    const a = this.advisors.get(advisor)
    const d = a == null ? 0 : decay(now - a.updated, this.config)
    const next = { good: (a?.good ?? 0) * d + (good ? 1 : 0), bad: (a?.bad ?? 0) * d + (good ? 0 : 1), updated: Math.max(now, a?.updated ?? now) }
    this.advisors.delete(advisor)
    this.advisors.set(advisor, next)
    if (this.advisors.size > this.config.maxPeers) {
      this.advisors.delete(this.advisors.keys().next().value as string)
    }
  }

  disconnected (id: string, now: Millis): void {
    this.observe(id, { type: 'disconnected' }, now)
  }

  doubtful (advisor: string, now: Millis): boolean {
    const a = this.advisors.get(advisor)
    if (a == null) {
      return false
    }
    const d = decay(now - a.updated, this.config)
    const good = a.good * d
    const bad = a.bad * d
    return good + bad >= this.config.adviceEvidence && (good + 1) / (good + bad + 2) < this.config.adviceThreshold
  }

  value (id: string, now: Millis): number {
    const stats = this.peers.get(id)
    return stats == null ? computeScore(emptyStats(now), this.config, now) : computeScore(stats, this.config, now)
  }

  backedOff (id: string, now: Millis): boolean {
    const stats = this.peers.get(id)
    return stats != null && inBackoff(stats, now)
  }

  reached (id: string, now: Millis): boolean {
    void now
    const stats = this.peers.get(id)
    return stats != null && stats.sdial >= 0
  }

  /**
   * Verified: reached by us and answered one of our requests within
   * `activeWindow` (seed 003's "active line"), and not since lost our
   * connection to it; failed: in back-off (a broken connection puts it there
   * for `suspectFor`) or its last contact failed; unverified otherwise.
   */
  standing (id: string, now: Millis): Standing {
    const stats = this.peers.get(id)
    if (stats == null) {
      return 'unverified'
    }
    if (stats.consecutiveFailures > 0 || inBackoff(stats, now)) {
      return 'failed'
    }
    if (stats.sdial >= 0 && stats.lastSuccess !== NEVER && stats.heldUntil === NEVER && now - stats.lastSuccess <= this.config.activeWindow) {
      return 'verified'
    }
    return 'unverified'
  }

  backoffUntil (id: string): Millis | undefined {
    const stats = this.peers.get(id)
    const until = stats == null ? -1 : Math.max(stats.backoffUntil, stats.heldUntil)
    return until < 0 ? undefined : until
  }

  category (id: string, now: Millis): Category {
    const stats = this.peers.get(id)
    if (stats == null) {
      return 'unknown'
    }
    const c = categorize(stats, this.config, now)
    // a proving peer that has served us is simply active
    if ((c === 'unknown' || c === 'inactive') && this.isProving(id, now)) {
      return 'proving'
    }
    return c
  }

  dialTimeout (id: string, now: Millis): Millis {
    void now
    return dialTimeoutOf(this.peers.get(id), this.global, this.config)
  }

  requestTimeout (id: string, now: Millis): Millis {
    void now
    return requestTimeoutOf(this.peers.get(id), this.global, this.config)
  }

  hedgeDelay (id: string, now: Millis): Millis {
    void now
    return hedgeDelayOf(this.peers.get(id), this.global, this.config)
  }

  /**
   * Gives `id` a proving slot if it has none and one is free; true if it
   * holds one afterwards. Known peers (with a success) never need one.
   */
  tryExplore (id: string, now: Millis): boolean {
    if (this.isProving(id, now)) {
      return true
    }
    const stats = this.peers.get(id)
    if (stats != null && (stats.interactions > 0 || inBackoff(stats, now))) {
      return false
    }
    this.expireProving(now)
    if (this.proving.size >= this.config.maxProving) {
      return false
    }
    this.proving.set(id, now)
    return true
  }

  /** Best first: value descending, then input order */
  rank (ids: string[], now: Millis): string[] {
    const value = new Map(ids.map(id => [id, this.value(id, now)]))
    return [...ids].sort((a, b) => (value.get(b) ?? 0) - (value.get(a) ?? 0))
  }

  /**
   * A peer store tag value in 0..100: active peers 20..100 by value, inactive
   * ones up to 40, proving ones 10, unknown and bad ones 0 (no tag).
   */
  tag (id: string, now: Millis): number {
    switch (this.category(id, now)) {
      case 'active': return Math.round(20 + 80 * this.value(id, now))
      case 'inactive': return Math.round(40 * this.value(id, now))
      case 'proving': return PROVING_TAG
      default: return 0
    }
  }

  /** How many known peers are in each category now (one pass over them: for metrics, on scrape) */
  categoryCounts (now: Millis): Record<Category, number> {
    const counts: Record<Category, number> = { unknown: 0, proving: 0, active: 0, inactive: 0, bad: 0 }
    for (const id of this.peers.keys()) {
      counts[this.category(id, now)]++
    }
    return counts
  }

  forget (id: string): void {
    this.peers.delete(id)
    this.proving.delete(id)
  }

  /** The most valuable peers that are not bad, best first */
  best (n: number, now: Millis): string[] {
    const out: Array<[string, number]> = []
    for (const [id, stats] of this.peers) {
      const c = categorize(stats, this.config, now)
      if (c === 'active' || c === 'inactive') {
        out.push([id, computeScore(stats, this.config, now)])
      }
    }
    return out.sort((a, b) => b[1] - a[1]).slice(0, n).map(([id]) => id)
  }

  /** Entries to save, most valuable first */
  export (now: Millis, limit = this.config.maxPeers): Array<{ id: string, stats: PeerStats }> {
    return [...this.peers]
      .map(([id, stats]) => ({ id, stats, v: computeScore(stats, this.config, now) }))
      .sort((a, b) => b.v - a.v)
      .slice(0, limit)
      .map(({ id, stats }) => ({ id, stats: { ...stats } }))
  }

  /** Restores saved entries; malformed ones are skipped. Returns how many were taken. */
  import (entries: unknown, now: Millis): number {
    if (!Array.isArray(entries)) {
      return 0
    }
    let accepted = 0
    for (const e of entries) {
      if (e == null || typeof e !== 'object' || typeof e.id !== 'string' || e.id === '' || e.id.length > 256 || !isPeerStats(e.stats)) {
        continue
      }
      if (this.peers.has(e.id)) {
        continue
      }
      this.makeRoom(now)
      // saved times in the future (clock moved back) are pulled to now
      const s: PeerStats = { ...e.stats, heldUntil: e.stats.heldUntil ?? NEVER }
      s.updated = Math.min(s.updated, now)
      s.lastSeen = Math.min(s.lastSeen, now)
      s.firstSeen = Math.min(s.firstSeen, now)
      s.lastSuccess = Math.min(s.lastSuccess, now)
      this.peers.set(e.id, s)
      accepted++
    }
    return accepted
  }

  private isProving (id: string, now: Millis): boolean {
    const since = this.proving.get(id)
    return since != null && now - since < this.config.provingWindow
  }

  private expireProving (now: Millis): void {
    for (const [id, since] of this.proving) {
      if (now - since >= this.config.provingWindow) {
        this.proving.delete(id)
      }
    }
  }

  /** When full, forgets the least valuable 1% (ties: longest unseen) */
  private makeRoom (now: Millis): void {
    if (this.peers.size < this.config.maxPeers) {
      return
    }
    const victims = [...this.peers]
      .map(([id, stats]) => ({ id, v: computeScore(stats, this.config, Math.max(now, stats.updated)), seen: stats.lastSeen }))
      .sort((a, b) => a.v - b.v || a.seen - b.seen)
      .slice(0, Math.max(1, Math.ceil(this.peers.size / 100)))
    for (const { id } of victims) {
      this.forget(id)
    }
  }
}
