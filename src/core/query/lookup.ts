/**
 * An iterative Kademlia lookup as a state machine.
 *
 * Entry point: `handle(event, now)`.
 * Events accepted:
 * - `start`: seeds are already in; send the first requests.
 * - `response { peer, closer }`: `peer` answered, naming closer peers.
 * - `failure { peer, reason }`: the request to `peer` failed (dial failure,
 * timeout, bad response). Failed peers are never asked again in this lookup.
 * - `stop`: the caller has what it needs (found the peer, enough values).
 * Effects emitted:
 * - `request { peer }`: ask `peer` (FIND_NODE, GET_VALUE or GET_PROVIDERS: the
 * lookup does not care which). Exactly one `response` or `failure` must be
 * reported for each.
 * - `finished { closest, reason }`: the lookup is over; `closest` holds up to k
 * peers that answered, nearest first.
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
 * - Among candidates the peer quality is used only to order requests of equal
 * eligibility (a later issue adds hedging); the result is by distance alone.
 */
import { assertNever } from '../env.ts'
import { compareDistance } from '../key.ts'
import { validateLookupConfig } from './config.ts'
import type { LookupConfig } from './config.ts'
import type { Contact } from '../contact.ts'
import type { Millis } from '../env.ts'
import type { Key } from '../key.ts'

export type FailureReason = 'dial-timeout' | 'dial-refused' | 'protocol-unsupported' | 'stream-reset' | 'timeout' | 'bad-response' | 'aborted' | 'overloaded'

export type LookupEvent =
  | { type: 'start' }
  | { type: 'response', peer: string, closer: readonly Contact[] }
  | { type: 'failure', peer: string, reason: FailureReason }
  | { type: 'stop' }

export type FinishReason = 'converged' | 'exhausted' | 'stopped' | 'request-limit'

export type LookupEffect =
  | { type: 'request', peer: Contact }
  | { type: 'finished', closest: Contact[], reason: FinishReason }

type State = 'waiting' | 'in-flight' | 'responded' | 'failed'

interface Candidate {
  contact: Contact
  state: State
  sentAt: Millis
}

export interface LookupStats {
  requests: number
  responses: number
  failures: number
  inFlight: number
  candidates: number
}

export class Lookup {
  readonly target: Key
  readonly config: LookupConfig
  private readonly candidates: Candidate[] = []
  private readonly byId = new Map<string, Candidate>()
  private readonly selfId: string
  private inFlight = 0
  private requests = 0
  private responses = 0
  private failures = 0
  private done = false

  constructor (target: Key, selfId: string, seeds: readonly Contact[], config: Partial<LookupConfig> = {}) {
    this.target = target
    this.selfId = selfId
    this.config = validateLookupConfig(config)
    for (const s of seeds) {
      this.add(s)
    }
  }

  get finished (): boolean {
    return this.done
  }

  stats (): LookupStats {
    return { requests: this.requests, responses: this.responses, failures: this.failures, inFlight: this.inFlight, candidates: this.candidates.length }
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
      case 'response': {
        const c = this.byId.get(event.peer)
        if (c?.state !== 'in-flight') {
          return [] // unsolicited or duplicate: ignore
        }
        c.state = 'responded'
        this.inFlight--
        this.responses++
        for (const p of event.closer) {
          this.add(p)
        }
        break
      }
      case 'failure': {
        const c = this.byId.get(event.peer)
        if (c?.state !== 'in-flight') {
          return []
        }
        c.state = 'failed'
        this.inFlight--
        this.failures++
        break
      }
      case 'stop':
        return this.finish('stopped')
      default:
        assertNever(event)
    }
    return this.advance(now)
  }

  /** The closest peers that answered, nearest first (at most k) */
  closest (): Contact[] {
    const out: Contact[] = []
    for (const c of this.candidates) {
      if (c.state === 'responded') {
        out.push(c.contact)
        if (out.length === this.config.k) {
          break
        }
      }
    }
    return out
  }

  private add (contact: Contact): void {
    if (contact.id === this.selfId || this.byId.has(contact.id) || contact.key.length !== this.target.length) {
      return
    }
    const c: Candidate = { contact, state: 'waiting', sentAt: 0 }
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
      return // farther than everything we keep
    }
    this.candidates.splice(lo, 0, c)
    this.byId.set(contact.id, c)
    // forget the farthest idle candidates beyond the bound
    for (let i = this.candidates.length - 1; this.candidates.length > this.config.maxCandidates && i >= 0; i--) {
      const far = this.candidates[i]
      if (far.state !== 'in-flight') {
        this.candidates.splice(i, 1)
        this.byId.delete(far.contact.id)
      }
    }
  }

  private advance (now: Millis): LookupEffect[] {
    const effects: LookupEffect[] = []
    let live = 0
    let allAnswered = true
    let anyWaiting = false
    for (const c of this.candidates) {
      if (c.state === 'failed') {
        continue
      }
      if (live >= this.config.beta) {
        break
      }
      live++
      if (c.state !== 'responded') {
        allAnswered = false
      }
      if (c.state === 'waiting') {
        anyWaiting = true
        if (this.inFlight < this.config.alpha && this.requests < this.config.maxRequests) {
          c.state = 'in-flight'
          c.sentAt = now
          this.inFlight++
          this.requests++
          effects.push({ type: 'request', peer: c.contact })
        }
      }
    }
    if (live > 0 && allAnswered) {
      return this.finish('converged')
    }
    if (this.inFlight === 0) {
      if (!anyWaiting || live === 0) {
        return this.finish('exhausted')
      }
      if (this.requests >= this.config.maxRequests) {
        return this.finish('request-limit')
      }
    }
    return effects
  }

  private finish (reason: FinishReason): LookupEffect[] {
    this.done = true
    return [{ type: 'finished', closest: this.closest(), reason }]
  }
}
