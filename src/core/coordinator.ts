/**
 * The coordinator: the one place where the pure machines are wired together.
 * Both drivers (the libp2p adapter and the simulator) feed it events with the
 * current time and carry out the effects it returns.
 * Entry point: `handle(event, now)`; `nextDeadline()` says when to deliver the
 * next `tick`.
 * Events accepted:
 * - `peer-identified { peer, protocols, dialled }`: identify finished for
 * `peer` on a connection we opened (`dialled`) or it opened. Peers listing
 * one of our DHT protocols enter the routing table if we have reached them
 * ourselves (`dialled`, or `quality.reached`), else they wait as unproven
 * replacements and get a `verify` request (see table.ts, "Admission");
 * others that were in it are removed (they stopped serving the DHT).
 * - `inbound-request { from }`: `from` sent us a request (refreshes it if known;
 * a client is never added just for asking).
 * - `peer-disconnected { id }`: our last connection to `id` closed and we did
 * not close it. The quality hears of it (`quality.disconnected`: the peer
 * stack holds the peer back for `suspectFor`, so lookups pass it by while
 * others remain and answers do not name it); nothing is dialled. A table
 * entry held back that way is questionable, so the next newcomer to its
 * bucket gets it pinged (table.ts), and only a failed ping evicts it.
 * - `start-lookup { queryId, target, request }`, `stop-lookup { queryId }`.
 * - `response { requestId, closer }`, `request-failed { requestId, reason }`:
 * the outcome of a `send-request` effect, exactly one per request.
 * - `tick`: the deadline from `nextDeadline()` has passed: stale buckets are
 * refreshed, lookup requests past their hedge delay are marked slow, and
 * slow ones past a second hedge delay overdue (see lookup.ts).
 * Effects emitted:
 * - `send-request { requestId, queryId, peer, request, fresh }`: ask `peer`;
 * with `fresh` (a verify) over a connection the driver opens for it, never
 * one the peer opened.
 * - `lookup-finished { queryId, closest, spares, reason }` (internal refresh
 * lookups have negative ids and the driver may ignore their completion).
 * - `peer-added`, `peer-removed`: routing table changes.
 * - `peer-misled { peer, queryId }`: a lookup took `peer` for a liar (it
 * named only peers that failed; see lookup.ts).
 * Timeouts: none of its own; request timeouts belong to the driver. Hedge
 * deadlines (`quality.hedgeDelay` after a lookup request left) are part of
 * `nextDeadline()`.
 * Capacity: lookups in flight are bounded by `maxLookups` (a start beyond it
 * finishes at once with reason `overloaded`); requests in flight by
 * `maxLookups * alpha + maxPendingPings`.
 */
import { NEUTRAL_QUALITY } from './contact.ts'
import { assertNever } from './env.ts'
import { validateLookupConfig } from './query/config.ts'
import { DisjointLookup } from './query/disjoint.ts'
import { Lookup } from './query/lookup.ts'
import { checkRange } from './routing-table/config.ts'
import { RoutingTable } from './routing-table/table.ts'
import type { Contact, PeerQuality } from './contact.ts'
import type { Millis, Random } from './env.ts'
import type { Key } from './key.ts'
import type { LookupConfig } from './query/config.ts'
import type { FailureReason, FinishReason, LookupEffect } from './query/lookup.ts'
import type { RoutingTableConfig } from './routing-table/config.ts'
import type { RoutingTableEffect } from './routing-table/table.ts'

/** What a request asks; the driver turns it into a wire message */
export type RequestKind =
  | { kind: 'find-node', key: Uint8Array }
  | { kind: 'get-value', key: Uint8Array }
  | { kind: 'get-providers', key: Uint8Array }
  | { kind: 'ping' }

export type CoreEvent =
  | { type: 'peer-identified', peer: Contact, protocols: readonly string[], dialled?: boolean }
  | { type: 'inbound-request', from: Contact }
  | { type: 'peer-disconnected', id: string }
  | { type: 'start-lookup', queryId: number, target: Key, request: RequestKind, seeds?: readonly Contact[], config?: Partial<LookupConfig> }
  | { type: 'stop-lookup', queryId: number }
  | { type: 'response', requestId: number, closer: readonly Contact[] }
  | { type: 'request-failed', requestId: number, reason: FailureReason }
  | { type: 'tick' }

export type CoreEffect =
  | { type: 'send-request', requestId: number, queryId: number | undefined, peer: Contact, request: RequestKind, fresh?: boolean }
  | { type: 'lookup-finished', queryId: number, closest: Contact[], spares: Contact[], reason: FinishReason | 'overloaded', requests: number }
  | { type: 'peer-added', peer: Contact }
  | { type: 'peer-removed', peer: Contact }
  | { type: 'peer-misled', peer: Contact, queryId: number }

export interface CoordinatorConfig {
  /**
   * Protocols that make a peer a DHT server.
   *
   * @default ['/ipfs/kad/1.0.0']
   */
  protocols: string[]
  /**
   * Lookups running at once.
   *
   * @default 64 (range 1..10000)
   */
  maxLookups: number
  /**
   * Whether the maintenance timer refreshes stale buckets.
   *
   * @default true
   */
  refresh: boolean
  /**
   * The request key and lookup target refreshing the bucket at common
   * prefix length `cpl`; undefined skips that bucket this time. On the
   * wire a server hashes the key it is sent, so the key must be a
   * preimage of the target (the libp2p service searches one, see
   * `refreshKey` in src/libp2p/peer-info.ts). Without it, the target
   * itself is sent as the key, which is right where the key is the target
   * (the simulator).
   */
  refreshKey?(cpl: number): { target: Key, key: Uint8Array } | undefined
  routingTable: Partial<RoutingTableConfig>
  lookup: Partial<LookupConfig>
}

export function defaultCoordinatorConfig (): CoordinatorConfig {
  return { protocols: ['/ipfs/kad/1.0.0'], maxLookups: 64, refresh: true, routingTable: {}, lookup: {} }
}

interface Pending {
  peer: Contact
  queryId: number | undefined
  ping: boolean
  /** when the request left */
  sentAt: Millis
  /** a verify: proves an unproven replacement */
  verify?: boolean
  /** when a lookup request counts as slow; undefined once it has, or for pings */
  hedgeAt?: Millis
  /** when a slow request stops holding up its lookup's convergence */
  overdueAt?: Millis
}

/** Peers that answered beyond the k closest, kept so a failed put can move on */
const SPARES = 10

export class Coordinator {
  readonly self: Contact
  readonly routingTable: RoutingTable
  readonly quality: PeerQuality
  private readonly config: CoordinatorConfig
  private readonly random: Random
  private readonly lookups = new Map<number, { lookup: Lookup | DisjointLookup, request: RequestKind }>()
  private readonly pending = new Map<number, Pending>()
  private nextRequestId = 1
  private nextInternalQueryId = -1
  /**
   * Over every finished lookup: requests that ran past their hedge delay
   * (another peer was asked meanwhile), and candidates in back-off that were
   * never asked (tarpit-like peers avoided). Counted when a lookup finishes.
   */
  readonly totals = { hedged: 0, skipped: 0 }

  constructor (self: Contact, config: Partial<CoordinatorConfig>, random: Random, now: Millis, quality: PeerQuality = NEUTRAL_QUALITY) {
    this.self = self
    this.config = { ...defaultCoordinatorConfig(), ...config }
    checkRange('maxLookups', this.config.maxLookups, 1, 10_000)
    if (!Array.isArray(this.config.protocols) || this.config.protocols.length === 0) {
      throw new RangeError('protocols must list at least one protocol')
    }
    validateLookupConfig(this.config.lookup)
    this.random = random
    this.quality = quality
    this.routingTable = new RoutingTable(self.key, this.config.routingTable, quality, now)
  }

  /** Lookups currently running */
  get activeLookups (): number {
    return this.lookups.size
  }

  /**
   * The settled head of lookup `queryId` (`Lookup.settledHead`): once `after`
   * responses in a row named no new candidate among its k closest live
   * ones, those that answered among its `n` closest live candidates. None
   * for a lookup over several disjoint paths, or one not running.
   */
  settledHead (queryId: number, n: number, after: number): Contact[] {
    const l = this.lookups.get(queryId)?.lookup
    return l instanceof Lookup ? l.settledHead(n, after) : []
  }

  /** Requests currently awaiting an outcome */
  get pendingRequests (): number {
    return this.pending.size
  }

  handle (event: CoreEvent, now: Millis): CoreEffect[] {
    switch (event.type) {
      case 'peer-identified': {
        if (event.peer.id === this.self.id) {
          return []
        }
        const server = event.protocols.some(p => this.config.protocols.includes(p))
        return this.fromTable(server
          ? this.routingTable.observe(event.peer, now, event.dialled === true || this.quality.reached(event.peer.id, now))
          : this.routingTable.remove(event.peer.id, now))
      }
      case 'inbound-request':
        if (this.routingTable.has(event.from.id)) {
          return this.fromTable(this.routingTable.observe(event.from, now))
        }
        return []
      case 'peer-disconnected':
        this.quality.disconnected?.(event.id, now)
        return []
      case 'start-lookup':
        return this.startLookup(event.queryId, event.target, event.request, event.seeds, event.config, now)
      case 'stop-lookup': {
        const l = this.lookups.get(event.queryId)
        return l == null ? [] : this.fromLookup(event.queryId, l.lookup.handle({ type: 'stop' }, now), now)
      }
      case 'response':
        return this.onResponse(event.requestId, event.closer, now)
      case 'request-failed':
        return this.onFailure(event.requestId, event.reason, now)
      case 'tick':
        return this.maintain(now)
      default:
        return assertNever(event)
    }
  }

  private onResponse (requestId: number, closer: readonly Contact[], now: Millis): CoreEffect[] {
    const p = this.pending.get(requestId)
    if (p == null) {
      return []
    }
    this.pending.delete(requestId)
    // it answered a DHT request: it is a live server (an entry only if we reached it)
    let outcome
    if (p.verify === true) {
      outcome = this.routingTable.verifyResult(p.peer.id, true, now)
    } else if (p.ping) {
      outcome = this.routingTable.pingResult(p.peer.id, true, now)
    } else {
      outcome = this.routingTable.observe(p.peer, now, this.quality.reached(p.peer.id, now))
    }
    const effects = this.fromTable(outcome)
    const l = p.queryId == null ? undefined : this.lookups.get(p.queryId)
    if (l != null && p.queryId != null) {
      effects.push(...this.fromLookup(p.queryId, l.lookup.handle({ type: 'response', peer: p.peer.id, closer }, now), now))
    }
    return effects
  }

  private onFailure (requestId: number, reason: FailureReason, now: Millis): CoreEffect[] {
    const p = this.pending.get(requestId)
    if (p == null) {
      return []
    }
    this.pending.delete(requestId)
    // our own abort or a local bound says nothing about the peer
    const local = reason === 'aborted' || reason === 'overloaded'
    let effects: CoreEffect[] = []
    if (p.verify === true) {
      // our own abort says nothing: the peer stays an unproven replacement
      effects = local ? this.fromTable(this.routingTable.cancelCheck(p.peer.id)) : this.fromTable(this.routingTable.verifyResult(p.peer.id, false, now))
    } else if (p.ping) {
      effects = this.fromTable(this.routingTable.pingResult(p.peer.id, local, now))
    } else if (reason === 'protocol-unsupported') {
      effects = this.fromTable(this.routingTable.remove(p.peer.id, now))
    } else if (!local) {
      effects = this.fromTable(this.routingTable.requestFailed(p.peer.id, now))
    }
    const l = p.queryId == null ? undefined : this.lookups.get(p.queryId)
    if (l != null && p.queryId != null) {
      effects.push(...this.fromLookup(p.queryId, l.lookup.handle({ type: 'failure', peer: p.peer.id, reason }, now), now))
    }
    return effects
  }

  /**
   * The answer to an inbound FIND_NODE (and the closer peers of GET_VALUE and
   * GET_PROVIDERS): the k entries nearest to `key` that are not `failed` (in
   * back-off, or their last contact failed: never named, the next nearest
   * takes the place; of our 2k nearest at most), never the requester.
   * `verified` peers (we reached them and they answered us within the
   * stack's active window: seed 003's active lines) are listed first, then
   * the others, each by distance. The set is the nearest, not the most
   * verified: preferring farther verified peers over nearer unverified ones
   * (which admission already proved dialable once) cost lookups their
   * exactness (2 of 5 getClosestPeers calls exact instead of 10 of 10 on
   * 40 nodes, `npm run bench -- --in-flight 4 --warmup 0`). Cost: one
   * table walk of 2k entries and no dials. With {@link NEUTRAL_QUALITY}
   * nobody is failed or verified: the classic k closest.
   */
  closerPeers (key: Key, requester: string, now: Millis): Contact[] {
    const near = this.routingTable.closest(key, 2 * this.k, c => c.id === requester)
    const verified: Contact[] = []
    const others: Contact[] = []
    for (const c of near) {
      if (verified.length + others.length >= this.k) {
        break
      }
      const standing = this.quality.standing(c.id, now)
      if (standing === 'verified') {
        verified.push(c)
      } else if (standing === 'unverified') {
        others.push(c)
      }
    }
    return [...verified, ...others]
  }

  /** The replication parameter k (bucket size, lookup result size) */
  get k (): number {
    return this.routingTable.config.k
  }

  /** When the driver should deliver the next `tick` (undefined: never) */
  nextDeadline (): Millis | undefined {
    let next = !this.config.refresh || this.routingTable.size === 0 ? Infinity : this.routingTable.nextRefreshAt()
    for (const p of this.pending.values()) {
      if (p.hedgeAt != null && p.hedgeAt < next) {
        next = p.hedgeAt
      }
      if (p.overdueAt != null && p.overdueAt < next) {
        next = p.overdueAt
      }
    }
    return next === Infinity ? undefined : next
  }

  private startLookup (queryId: number, target: Key, request: RequestKind, seeds: readonly Contact[] | undefined, config: Partial<LookupConfig> | undefined, now: Millis): CoreEffect[] {
    if (this.lookups.has(queryId)) {
      throw new RangeError(`query ${queryId} is already running`)
    }
    if (this.lookups.size >= this.config.maxLookups) {
      return [{ type: 'lookup-finished', queryId, closest: [], spares: [], reason: 'overloaded', requests: 0 }]
    }
    const lookupConfig = { ...this.config.lookup, ...config }
    const { maxCandidates, disjointPaths } = validateLookupConfig(lookupConfig)
    const initial = [...this.routingTable.closest(target, maxCandidates), ...(seeds ?? [])]
    const lookup = disjointPaths > 1 && request.kind !== 'find-node'
      ? new DisjointLookup(target, this.self.id, initial, lookupConfig, this.quality, disjointPaths)
      : new Lookup(target, this.self.id, initial, lookupConfig, this.quality)
    this.lookups.set(queryId, { lookup, request })
    this.routingTable.markRefreshed(target, now)
    return this.fromLookup(queryId, lookup.handle({ type: 'start' }, now), now)
  }

  private fromLookup (queryId: number, effects: LookupEffect[], now: Millis): CoreEffect[] {
    const out: CoreEffect[] = []
    const l = this.lookups.get(queryId)
    for (const e of effects) {
      switch (e.type) {
        case 'request': {
          const requestId = this.nextRequestId++
          const hedge = this.quality.hedgeDelay(e.peer.id, now)
          this.pending.set(requestId, { peer: e.peer, queryId, ping: false, sentAt: now, hedgeAt: Number.isFinite(hedge) ? now + Math.max(0, hedge) : undefined })
          out.push({ type: 'send-request', requestId, queryId, peer: e.peer, request: l?.request ?? { kind: 'find-node', key: new Uint8Array(0) } })
          break
        }
        case 'finished': {
          const stats = l?.lookup.stats()
          this.totals.hedged += stats?.hedged ?? 0
          this.totals.skipped += stats?.skipped ?? 0
          this.lookups.delete(queryId)
          out.push({ type: 'lookup-finished', queryId, closest: e.closest, spares: l?.lookup.spares(SPARES) ?? [], reason: e.reason, requests: stats?.requests ?? 0 })
          break
        }
        case 'misled':
          out.push({ type: 'peer-misled', peer: e.peer, queryId })
          break
        default:
          assertNever(e)
      }
    }
    return out
  }

  private fromTable (effects: RoutingTableEffect[]): CoreEffect[] {
    const out: CoreEffect[] = []
    for (const e of effects) {
      switch (e.type) {
        case 'peer-added':
          out.push({ type: 'peer-added', peer: e.peer })
          break
        case 'peer-removed':
          out.push({ type: 'peer-removed', peer: e.peer })
          break
        case 'ping': {
          const requestId = this.nextRequestId++
          this.pending.set(requestId, { peer: e.peer, queryId: undefined, ping: true, sentAt: 0 })
          out.push({ type: 'send-request', requestId, queryId: undefined, peer: e.peer, request: { kind: 'ping' } })
          break
        }
        case 'verify': {
          const requestId = this.nextRequestId++
          this.pending.set(requestId, { peer: e.peer, queryId: undefined, ping: true, sentAt: 0, verify: true })
          out.push({ type: 'send-request', requestId, queryId: undefined, peer: e.peer, request: { kind: 'ping' }, fresh: true })
          break
        }
        default:
          assertNever(e)
      }
    }
    return out
  }

  private maintain (now: Millis): CoreEffect[] {
    const out: CoreEffect[] = this.hedge(now)
    if (!this.config.refresh) {
      return out
    }
    for (const { cpl, key } of this.routingTable.refreshTargets(now, this.random)) {
      if (this.lookups.size >= this.config.maxLookups) {
        break
      }
      const wire = this.config.refreshKey == null ? { target: key, key } : this.config.refreshKey(cpl)
      if (wire == null) {
        // no key for this bucket this time: try again after the interval
        this.routingTable.markRefreshed(key, now)
        continue
      }
      out.push(...this.startLookup(this.nextInternalQueryId--, wire.target, { kind: 'find-node', key: wire.key }, undefined, undefined, now))
    }
    return out
  }

  /**
   * Marks lookup requests past their hedge delay as slow, and slow ones past
   * a second hedge delay as overdue
   */
  private hedge (now: Millis): CoreEffect[] {
    const out: CoreEffect[] = []
    const due: Array<[Pending, 'slow' | 'overdue']> = []
    for (const p of this.pending.values()) {
      if (p.hedgeAt != null && p.hedgeAt <= now) {
        due.push([p, 'slow'])
      } else if (p.overdueAt != null && p.overdueAt <= now) {
        due.push([p, 'overdue'])
      }
    }
    for (const [p, type] of due) {
      if (type === 'slow') {
        const delay = (p.hedgeAt as Millis) - p.sentAt
        p.hedgeAt = undefined
        p.overdueAt = now + delay
      } else {
        p.overdueAt = undefined
      }
      const l = p.queryId == null ? undefined : this.lookups.get(p.queryId)
      if (l != null && p.queryId != null) {
        out.push(...this.fromLookup(p.queryId, l.lookup.handle({ type, peer: p.peer.id }, now), now))
      }
    }
    return out
  }
}
