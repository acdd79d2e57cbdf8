/**
 * An iterative Kademlia lookup as a state machine.
 *
 * Entry point: `handle(event, now)`.
 * Events accepted:
 * - `start`: seeds are already in; send the first requests.
 * - `response { peer, closer }`: `peer` answered, naming closer peers.
 * - `failure { peer, reason }`: the request to `peer` failed (dial failure,
 * timeout, bad response). Failed peers are never asked again in this lookup.
 * - `slow { peer }`: the request to `peer` has run past its hedge delay. It
 * stops holding an α slot (at most `maxSlow` at once; beyond that the event
 * is ignored) but still holds up convergence: a peer among the closest that
 * is merely slow must not be left out of the result.
 * - `overdue { peer }`: a slow request has run on for another hedge delay:
 * it stops holding up convergence too (a dead peer costs at most two hedge
 * delays); a late answer still counts.
 * - `stop`: the caller has what it needs (found the peer, enough values).
 * Effects emitted:
 * - `request { peer }`: ask `peer` (FIND_NODE, GET_VALUE or GET_PROVIDERS: the
 * lookup does not care which). Exactly one `response` or `failure` must be
 * reported for each.
 * - `finished { closest, reason }`: the lookup is over; `closest` holds up to k
 * peers that answered, nearest first.
 * - `misled { peer }`: `peer` named `misledAfter` peers that could not be
 * reached at all (`dial-refused`: refused, no usable address, another peer
 * id there; or `protocol-unsupported`) and none that answered: fabricated
 * peers. Its other unconfirmed candidates are dropped and it is left out of
 * `closest` and `spares`. Timeouts are not held against whoever named the
 * peer: on a loaded host honest peers' contacts time out too. At most once per
 * peer and lookup; the driver may hold it against the peer.
 * Timeouts: none of its own. The driver applies request timeouts and reports
 * them as failures, so the machine never waits on real time.
 *
 * Implementation notes:
 * - Candidates are kept sorted by XOR distance to the target (at most
 * `maxCandidates`; the farthest idle ones are forgotten first).
 * - Only candidates among the `beta` closest not-yet-failed ones are asked:
 * asking peers farther than that cannot change the result.
 * - Converged when the `beta` closest not-yet-failed candidates have all
 * answered; exhausted when nobody is left to ask and nothing is in flight.
 * - Peer quality: within the window of the `beta` closest live candidates the
 * most valuable waiting peers are asked first (all of them must answer for
 * convergence, so this changes the order, not the result). Peers in back-off
 * are skipped while anyone else is left; if the lookup would otherwise end
 * with nobody having answered, they are tried after all.
 * - `closest()` and `spares()` are by distance alone (less discredited peers).
 * - Settled head (`settledHead(n, after)`, for early placement of puts): once
 * `after` responses in a row have named no new candidate among the k closest
 * live ones, the candidate list near the target has stopped changing, and
 * those that answered among its `n` closest live candidates are, short of
 * peers nobody named, among the k closest the lookup will return.
 * - Lying peers: every candidate remembers who named it first. A failed
 * candidate leaves the candidate list at once (its id stays in a set of at
 * most `maxRequests`, so it is never asked again): failures hold no slots
 * near the target. A peer that named `misledAfter` unreachable candidates
 * and no answering one is discredited (see `misled`; a candidate another
 * peer named too is kept) and no longer counts towards convergence, so the
 * window reaches past it. Candidates that answered are never forgotten (at
 * most `maxRequests` of them, so the list holds at most `maxCandidates` +
 * `maxRequests`): fabricated peers nearer the target than everyone can push
 * out only peers not yet asked, which honest answers name again. Peers
 * naming far peers or themselves cost nothing: known and far candidates are
 * ignored.
 */
import { NEUTRAL_QUALITY } from '../contact.ts'
import { assertNever } from '../env.ts'
import { compareDistance } from '../key.ts'
import { validateLookupConfig } from './config.ts'
import type { LookupConfig } from './config.ts'
import type { Contact, PeerQuality } from '../contact.ts'
import type { Millis } from '../env.ts'
import type { Key } from '../key.ts'

export type FailureReason = 'dial-timeout' | 'dial-refused' | 'protocol-unsupported' | 'stream-reset' | 'timeout' | 'bad-response' | 'aborted' | 'overloaded'

/** Failures that say the peer is not there at all, rather than slow or busy */
const FABRICATED = new Set<FailureReason>(['dial-refused', 'protocol-unsupported'])

export type LookupEvent =
  | { type: 'start' }
  | { type: 'response', peer: string, closer: readonly Contact[] }
  | { type: 'failure', peer: string, reason: FailureReason }
  | { type: 'slow', peer: string }
  | { type: 'overdue', peer: string }
  | { type: 'stop' }

export type FinishReason = 'converged' | 'exhausted' | 'stopped' | 'request-limit'

export type LookupEffect =
  | { type: 'request', peer: Contact }
  | { type: 'finished', closest: Contact[], reason: FinishReason }
  | { type: 'misled', peer: Contact }

/**
 * `slow`: in flight past its hedge delay (no α slot); `overdue`: past two
 * (no longer awaited for convergence); `skipped`: in back-off, left aside
 */
/** Namers remembered per candidate (advice is credited to each) */
const MAX_NAMERS = 4

type State = 'waiting' | 'in-flight' | 'slow' | 'overdue' | 'responded' | 'failed' | 'skipped'

interface Candidate {
  contact: Contact
  state: State
  sentAt: Millis
  /** who named it, the first few (undefined: a seed from our own table) */
  namers?: string[]
  /** skipped because its namer's advice is doubtful, not for back-off */
  doubted?: boolean
  /** the responder that named it first (undefined for a seed) */
  by?: string
  /** whether a second responder (or the seeds) named it too */
  vouched: boolean
  /** past its hedge delay (1) or its second one too (2) while every slow slot was taken */
  due?: 1 | 2
}

/** What the candidates one responder named turned out to be, in this lookup */
interface Credit {
  contact: Contact
  failed: number
  answered: number
  discredited: boolean
}

export interface LookupStats {
  requests: number
  responses: number
  failures: number
  inFlight: number
  slow: number
  skipped: number
  candidates: number
  /** requests that became slow (the lookup asked another peer past them), ever */
  hedged: number
  /** responders discredited for naming only peers that failed */
  misled: number
}

export class Lookup {
  readonly target: Key
  readonly config: LookupConfig
  private readonly candidates: Candidate[] = []
  private readonly byId = new Map<string, Candidate>()
  private readonly selfId: string
  private readonly quality: PeerQuality
  private inFlight = 0
  private slow = 0
  /** requests past two hedge delays: they hold no slot (bounded by maxRequests), but the lookup still hears them out */
  private overdue = 0
  /** in-flight requests past their hedge delay waiting for a slow slot, longest waiting first (at most α) */
  private readonly due: Candidate[] = []
  private skipped = 0
  private hedged = 0
  private retriedSkipped = false
  private retriedDoubted = false
  private requests = 0
  private responses = 0
  private failures = 0
  private done = false
  /** ids that failed: never asked again (at most maxRequests) */
  private readonly failed = new Set<string>()
  /** by responder (at most maxRequests) */
  private readonly credit = new Map<string, Credit>()
  private misled: LookupEffect[] = []
  /** responses in a row that named no new candidate among the k closest live ones */
  private stableFor = 0

  constructor (target: Key, selfId: string, seeds: readonly Contact[], config: Partial<LookupConfig> = {}, quality: PeerQuality = NEUTRAL_QUALITY) {
    this.target = target
    this.selfId = selfId
    this.quality = quality
    this.config = validateLookupConfig(config)
    for (const s of seeds) {
      this.add(s)
    }
  }

  get finished (): boolean {
    return this.done
  }

  stats (): LookupStats {
    return { requests: this.requests, responses: this.responses, failures: this.failures, inFlight: this.inFlight, slow: this.slow + this.overdue, skipped: this.skipped, candidates: this.candidates.length, hedged: this.hedged, misled: [...this.credit.values()].filter(c => c.discredited).length }
  }

  /** Whether `id` was asked and answered during this lookup */
  responded (id: string): boolean {
    return this.byId.get(id)?.state === 'responded'
  }

  handle (event: LookupEvent, now: Millis): LookupEffect[] {
    if (this.done) {
      return []
    }
    switch (event.type) {
      case 'start':
        break
      case 'response':
        if (!this.onResponse(event.peer, event.closer, now)) {
          return [] // unsolicited or duplicate: ignore
        }
        break
      case 'failure':
        if (!this.onFailure(event.peer, event.reason, now)) {
          return []
        }
        break
      case 'slow': {
        const c = this.byId.get(event.peer)
        if (c?.state !== 'in-flight') {
          return []
        }
        if (this.slow >= this.config.maxSlow) {
          // it waits for a slow slot (the first one freed goes to the longest waiting)
          c.due = 1
          this.due.push(c)
          return []
        }
        this.makeSlow(c)
        break
      }
      case 'overdue': {
        const c = this.byId.get(event.peer)
        if (c?.state === 'in-flight' && c.due === 1) {
          c.due = 2 // it becomes overdue as soon as it gets its slow slot
          return []
        }
        if (c?.state !== 'slow' || this.config.awaitOverdue) {
          return []
        }
        this.makeOverdue(c)
        break
      }
      case 'stop':
        return this.finish('stopped')
      default:
        assertNever(event)
    }
    const effects = this.advance(now)
    if (this.misled.length === 0) {
      return effects
    }
    const out = [...this.misled, ...effects]
    this.misled = []
    return out
  }

  /** `peer` answered naming `closer`; false if it had nothing in flight */
  private onResponse (peer: string, closer: readonly Contact[], now: Millis): boolean {
    const c = this.byId.get(peer)
    if (c == null || !this.settle(c)) {
      return false
    }
    c.state = 'responded'
    this.responses++
    for (const n of c.namers ?? []) {
      this.quality.advice(n, true, now)
    }
    if (c.by != null) {
      this.creditOf(c.by).answered++
    }
    this.credit.set(c.contact.id, this.credit.get(c.contact.id) ?? { contact: c.contact, failed: 0, answered: 0, discredited: false })
    let changed = false
    for (const p of closer) {
      const at = this.add(p, c.contact.id, now)
      changed ||= at !== -1 && this.liveBefore(at, this.config.k) < this.config.k
    }
    this.stableFor = changed ? 0 : this.stableFor + 1
    return true
  }

  /** Candidates before index `i` that count as live (not `isDead`, as `window` counts them), counting no further than `cap` */
  private liveBefore (i: number, cap: number): number {
    let live = 0
    for (let j = 0; j < i && live < cap; j++) {
      if (!this.isDead(this.candidates[j])) {
        live++
      }
    }
    return live
  }

  /** Failed, overdue, skipped or discredited: no part of the result as it stands */
  private isDead (c: Candidate): boolean {
    return c.state === 'failed' || c.state === 'overdue' || c.state === 'skipped' || (c.state === 'responded' && this.isDiscredited(c.contact.id))
  }

  /**
   * Once `after` responses in a row named no new candidate among the k
   * closest live ones: the peers that answered among the `n` closest live
   * candidates (slow and waiting ones count towards `n` too), nearest first.
   * Otherwise, and once the lookup has finished, none. O(candidates).
   */
  settledHead (n: number, after: number): Contact[] {
    if (this.done || this.stableFor < after) {
      return []
    }
    const out: Contact[] = []
    let live = 0
    for (const c of this.candidates) {
      if (live >= n) {
        break
      }
      if (this.isDead(c)) {
        continue
      }
      live++
      if (c.state === 'responded') {
        out.push(c.contact)
      }
    }
    return out
  }

  /** The request to `peer` failed; false if it had nothing in flight */
  private onFailure (peer: string, reason: FailureReason, now: Millis): boolean {
    const c = this.byId.get(peer)
    if (c == null || !this.settle(c)) {
      return false
    }
    c.state = 'failed'
    this.failures++
    // only a failed dial says the advice was bad (the peer cannot be
    // reached); a request that timed out over a connection reached a
    // peer that is merely slow or busy, as under load
    if (reason === 'dial-timeout' || reason === 'dial-refused') {
      for (const n of c.namers ?? []) {
        this.quality.advice(n, false, now)
      }
    }
    this.forget(c)
    if (c.by != null && FABRICATED.has(reason)) {
      this.blame(c.by)
    }
    return true
  }

  private creditOf (id: string): Credit {
    let c = this.credit.get(id)
    if (c == null) {
      // a responder is in the list once it answered; only a forgotten one lands here
      c = { contact: { id, key: new Uint8Array(0) }, failed: 0, answered: 0, discredited: false }
      this.credit.set(id, c)
    }
    return c
  }

  /** A candidate `by` named failed: at `misledAfter` with none answering, `by` is discredited */
  private blame (by: string): void {
    const credit = this.creditOf(by)
    credit.failed++
    if (credit.discredited || credit.answered > 0 || credit.failed < this.config.misledAfter) {
      return
    }
    credit.discredited = true
    for (let i = this.candidates.length - 1; i >= 0; i--) {
      const c = this.candidates[i]
      if (c.by === by && !c.vouched && (c.state === 'waiting' || c.state === 'skipped')) {
        this.candidates.splice(i, 1)
        this.byId.delete(c.contact.id)
      }
    }
    if (credit.contact.key.length > 0) {
      this.misled.push({ type: 'misled', peer: credit.contact })
    }
  }

  /** Takes a failed candidate out of the list; its id stays known, so it is never asked again */
  private forget (c: Candidate): void {
    this.failed.add(c.contact.id)
    this.byId.delete(c.contact.id)
    const i = this.candidates.indexOf(c)
    if (i !== -1) {
      this.candidates.splice(i, 1)
    }
  }

  private isDiscredited (id: string): boolean {
    return this.credit.get(id)?.discredited === true
  }

  /** Releases the slot of an in-flight or slow candidate; false if it had none */
  private settle (c: Candidate): boolean {
    if (c.state === 'in-flight') {
      this.inFlight--
      if (c.due != null) {
        c.due = undefined
        this.due.splice(this.due.indexOf(c), 1)
      }
      return true
    }
    if (c.state === 'slow') {
      this.slow--
      this.promoteDue()
      return true
    }
    if (c.state === 'overdue') {
      this.overdue--
      return true
    }
    return false
  }

  /** Marks an in-flight request slow: it frees its α slot (the caller checked a slow slot is free) */
  private makeSlow (c: Candidate): void {
    c.state = 'slow'
    c.due = undefined
    this.inFlight--
    this.slow++
    this.hedged++
  }

  /**
   * A slow slot came free: the request that has waited longest for one
   * (past its hedge delay while all were taken) gets it, and is overdue at
   * once if its second delay has passed too
   */
  private promoteDue (): void {
    while (this.due.length > 0 && this.slow < this.config.maxSlow) {
      const c = this.due.shift() as Candidate
      if (c.state !== 'in-flight' || c.due == null) {
        continue // answered or failed meanwhile
      }
      const overdue = c.due === 2 && !this.config.awaitOverdue
      this.makeSlow(c)
      if (overdue) {
        this.makeOverdue(c)
      }
    }
  }

  /** A slow request past its second hedge delay: no longer awaited, and its slow slot goes to the next */
  private makeOverdue (c: Candidate): void {
    c.state = 'overdue'
    this.slow--
    this.overdue++
    this.promoteDue()
  }

  /**
   * Peers that answered beyond the k closest, nearest first (at most `n`):
   * where a put goes when one of the k closest fails to store.
   */
  spares (n: number): Contact[] {
    const out: Contact[] = []
    let seen = 0
    for (const c of this.candidates) {
      if (c.state === 'responded' && !this.isDiscredited(c.contact.id) && ++seen > this.config.k) {
        out.push(c.contact)
        if (out.length === n) {
          break
        }
      }
    }
    return out
  }

  /** The closest peers that answered, nearest first (at most k) */
  closest (): Contact[] {
    const out: Contact[] = []
    for (const c of this.candidates) {
      if (c.state === 'responded' && !this.isDiscredited(c.contact.id)) {
        out.push(c.contact)
        if (out.length === this.config.k) {
          break
        }
      }
    }
    return out
  }

  /** Adds `contact` as a candidate; its index if it is new and kept, else -1 */
  private add (contact: Contact, namer?: string, now: Millis = 0): number {
    if (contact.id === this.selfId || contact.key.length !== this.target.length || this.failed.has(contact.id)) {
      return -1
    }
    const known = this.byId.get(contact.id)
    if (known != null) {
      if (known.by !== namer) {
        known.vouched = true
      }
      // named again: if it was left aside for its namers' advice and this
      // namer is not doubtful, it is back in the running
      if (namer != null && known.namers != null && known.namers.length < MAX_NAMERS) {
        known.namers.push(namer)
      }
      if (known.doubted === true && namer != null && !this.quality.doubtful(namer, now)) {
        known.doubted = false
        if (known.state === 'skipped') {
          known.state = 'waiting'
          this.skipped--
          // back in the running: the live candidates changed as if it were new
          return this.candidates.indexOf(known)
        }
      }
      return -1
    }
    const c: Candidate = { contact, state: 'waiting', sentAt: 0, namers: namer == null ? undefined : [namer], by: namer, vouched: namer == null }
    // binary search for the insertion point
    let lo = 0
    let hi = this.candidates.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareDistance(this.candidates[mid].contact.key, contact.key, this.target) <= 0) {
        lo = mid + 1
      } else {
        hi = mid
      }
    }
    if (lo >= this.config.maxCandidates) {
      return -1 // farther than everything we keep
    }
    this.candidates.splice(lo, 0, c)
    this.byId.set(contact.id, c)
    // forget the farthest candidates not yet asked beyond the bound (those that answered are results)
    for (let i = this.candidates.length - 1; this.candidates.length > this.config.maxCandidates && i >= 0; i--) {
      const far = this.candidates[i]
      if (far.state === 'waiting' || far.state === 'skipped') {
        this.candidates.splice(i, 1)
        this.byId.delete(far.contact.id)
      }
    }
    return this.byId.has(contact.id) ? lo : -1
  }

  /**
   * The `beta` closest live candidates (slow ones do not count, so the window
   * reaches past them): how many, whether all answered (a slow one inside
   * the window counts as unanswered), who waits
   */
  private window (now: Millis): { live: number, allAnswered: boolean, waiting: Candidate[] } {
    const waiting: Candidate[] = []
    let live = 0
    let allAnswered = true
    for (const c of this.candidates) {
      if (live >= this.config.beta) {
        break
      }
      if (c.state === 'waiting' && !this.retriedSkipped) {
        if (this.quality.backedOff(c.contact.id, now)) {
          c.state = 'skipped'
          this.skipped++
        } else if (!this.retriedDoubted && c.namers != null && !this.quality.reached(c.contact.id, now) && c.namers.every(n => this.quality.doubtful(n, now))) {
          c.state = 'skipped'
          c.doubted = true
          this.skipped++
        }
      }
      if (c.state === 'slow') {
        // awaited, but the window reaches past it so the next one is asked
        allAnswered = false
        continue
      }
      if (this.isDead(c)) {
        // a discredited peer is no result, so the window reaches past it too
        continue
      }
      live++
      if (c.state !== 'responded') {
        allAnswered = false
      }
      if (c.state === 'waiting') {
        waiting.push(c)
      }
    }
    return { live, allAnswered, waiting }
  }

  private advance (now: Millis): LookupEffect[] {
    const { live, allAnswered, waiting } = this.window(now)
    if (live > 0 && allAnswered && (live >= this.config.beta || !this.retryDoubted())) {
      return this.finish('converged')
    }
    if (live > 0 && allAnswered) {
      return this.advance(now) // fewer than beta answered: the doubted are back in the running
    }
    const effects: LookupEffect[] = []
    if (waiting.length > 1) {
      // most valuable first; the sort is stable, so ties stay nearest first
      // (and when every value is the same, as with no peer stack, the
      // order is already right)
      const value = new Map<Candidate, number>()
      const first = this.quality.value(waiting[0].contact.id, now)
      let differ = false
      for (const c of waiting) {
        const v = value.size === 0 ? first : this.quality.value(c.contact.id, now)
        differ ||= v !== first
        value.set(c, v)
      }
      if (differ) {
        waiting.sort((a, b) => (value.get(b) ?? 0) - (value.get(a) ?? 0))
      }
    }
    for (const c of waiting) {
      if (this.inFlight >= this.config.alpha || this.requests >= this.config.maxRequests) {
        break
      }
      c.state = 'in-flight'
      c.sentAt = now
      this.inFlight++
      this.requests++
      effects.push({ type: 'request', peer: c.contact })
    }
    if (this.inFlight > 0 || this.slow > 0 || this.overdue > 0) {
      return effects // answers (or failures) are still to come
    }
    if (waiting.length > 0 && this.requests >= this.config.maxRequests) {
      return this.finish('request-limit')
    }
    if (this.responses === 0 && this.skipped > 0 && !this.retriedSkipped) {
      // nobody else answered: the peers in back-off are all we have
      this.retriedSkipped = true
      for (const c of this.candidates) {
        if (c.state === 'skipped') {
          c.state = 'waiting'
        }
      }
      this.skipped = 0
      return this.retrySkipped(now)
    }
    if (this.retryDoubted()) {
      return this.advance(now)
    }
    return this.finish('exhausted')
  }

  /**
   * When the lookup would end short (exhausted, or fewer than beta
   * answered), the peers left aside for their advisors' sake are asked
   * after all: true if there were any (once per lookup)
   */
  private retryDoubted (): boolean {
    if (this.retriedDoubted || !this.candidates.some(c => c.doubted === true && c.state === 'skipped')) {
      return false
    }
    this.retriedDoubted = true
    for (const c of this.candidates) {
      if (c.doubted === true && c.state === 'skipped') {
        c.state = 'waiting'
        c.doubted = false
        this.skipped--
      }
    }
    return true
  }

  /** Asks the candidates that were in back-off, ignoring back-off this time */
  private retrySkipped (now: Millis): LookupEffect[] {
    const effects: LookupEffect[] = []
    let live = 0
    for (const c of this.candidates) {
      if (live >= this.config.beta || this.inFlight >= this.config.alpha || this.requests >= this.config.maxRequests) {
        break
      }
      if (c.state === 'failed') {
        continue
      }
      live++
      if (c.state === 'waiting') {
        c.state = 'in-flight'
        c.sentAt = now
        this.inFlight++
        this.requests++
        effects.push({ type: 'request', peer: c.contact })
      }
    }
    return effects.length > 0 ? effects : this.finish('exhausted')
  }

  private finish (reason: FinishReason): LookupEffect[] {
    this.done = true
    return [{ type: 'finished', closest: this.closest(), reason }]
  }
}
