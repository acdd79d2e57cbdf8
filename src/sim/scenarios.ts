/**
 * Scenario: `getClosestPeers`-style lookups of random keys from random nodes.
 *
 * Steps (queue `step` events, one scheduled at a time): every `interval`
 * virtual ms a node drawn uniformly (from all nodes, or only dialable ones)
 * starts a FIND_NODE lookup of a fresh random key, until `lookups` have
 * started. Lookups overlap freely; the scenario is done when all finished.
 *
 * Observations (as the world's listener): for each lookup the requests, the
 * dials (requests that needed a new connection) and the dials to undialable
 * nodes; at `lookup-finished` the latency, the reason and the result checked
 * against the true k closest dialable nodes (`truth.ts`).
 *
 * Bounds: `running` holds the lookups started and not yet finished (at most
 * `lookups`); `records` one entry per finished lookup (exactly `lookups`).
 */
import { KEY_BYTES } from '../core/key.ts'
import { validateLookupConfig } from '../core/query/config.ts'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { Initiators } from './initiators.ts'
import { closestDialable } from './truth.ts'
import type { LookupRecord } from './report.ts'
import type { LookupFinished, World, WorldListener } from './world.ts'
import type { Millis, Random } from '../core/env.ts'
import type { Key } from '../core/key.ts'

export interface RandomLookupsOptions {
  /**
   * Lookups to run.
   *
   * @default 500 (range 1..10,000,000)
   */
  lookups: number
  /**
   * Virtual ms between the starts of two lookups (network-wide).
   *
   * @default 100 (range 0..3,600,000)
   */
  interval: Millis
  /**
   * Which nodes start lookups: any node (NAT'd clients look things up too)
   * or only dialable ones.
   *
   * @default 'any'
   */
  initiators: 'any' | 'dialable'
  /**
   * When above 0, lookups come from this many fixed nodes in turn (chosen
   * once as `initiators` says): publishers that look up key after key, as a
   * node announcing its content does. 0: a fresh random node each time.
   *
   * @default 0 (range 0..1,000,000)
   */
  publishers: number
  /**
   * What a result is checked against: the k closest dialable nodes, or the
   * k closest dialable nodes online when the lookup ends (for runs with
   * churn or departures, where the others cannot answer).
   *
   * @default 'dialable'
   */
  truth: 'dialable' | 'online'
}

export function validateRandomLookupsOptions (partial: Partial<RandomLookupsOptions> = {}): RandomLookupsOptions {
  const o: RandomLookupsOptions = { lookups: 500, interval: 100, initiators: 'any', publishers: 0, truth: 'dialable', ...stripUndefined(partial) }
  checkRange('lookups', o.lookups, 1, 10_000_000)
  checkRange('publishers', o.publishers, 0, 1_000_000)
  checkRange('interval', o.interval, 0, 3_600_000, false)
  if (o.initiators !== 'any' && o.initiators !== 'dialable') {
    throw new RangeError(`initiators must be 'any' or 'dialable', got ${String(o.initiators)}`)
  }
  if (o.truth !== 'dialable' && o.truth !== 'online') {
    throw new RangeError(`truth must be 'dialable' or 'online', got ${String(o.truth)}`)
  }
  return o
}

interface Running {
  node: number
  target: Key
  startedAt: Millis
  dials: number
  undialableDials: number
}

export class RandomLookups implements WorldListener {
  readonly options: RandomLookupsOptions
  readonly records: LookupRecord[] = []
  private readonly world: World
  private readonly random: Random
  private readonly k: number
  private readonly running = new Map<number, Running>()
  private started = 0
  private readonly initiators: Initiators

  constructor (world: World, options: Partial<RandomLookupsOptions>, random: Random) {
    this.world = world
    this.options = validateRandomLookupsOptions(options)
    this.random = random
    this.k = validateLookupConfig(world.config.coordinator.lookup).k
    this.initiators = new Initiators(world, random, this.options.initiators, this.options.publishers)
  }

  get done (): boolean {
    return this.records.length >= this.options.lookups
  }

  /** Lookups finished so far */
  get finished (): number {
    return this.records.length
  }

  /** Installs itself as the world's listener and schedules the first lookup */
  start (at: Millis = this.world.now): void {
    this.world.listener = this
    this.world.at(at, 'lookup', () => { this.step() })
  }

  onRequest (node: number, queryId: number | undefined, peer: number, dialed: boolean): void {
    const r = queryId === undefined ? undefined : this.running.get(queryId)
    if (r == null || !dialed) {
      return
    }
    r.dials++
    if (!this.world.network.dialable(peer)) {
      r.undialableDials++
    }
  }

  onLookupFinished (node: number, e: LookupFinished): void {
    const r = this.running.get(e.queryId)
    if (r == null) {
      return
    }
    this.running.delete(e.queryId)
    const world = this.world
    const truth = new Set(this.options.truth === 'dialable'
      ? closestDialable(world, r.target, this.k, r.node)
      : world.keyIndex.closest(r.target, this.k, i => i !== r.node && world.network.dialable(i) && world.network.online(i, world.now)))
    let found = 0
    for (const c of e.closest) {
      if (truth.has((c as { index?: number }).index ?? -1)) {
        found++
      }
    }
    this.records.push({
      queryId: e.queryId,
      node: r.node,
      nodeDialable: this.world.network.dialable(r.node),
      adopter: this.world.adopter(r.node),
      startedAt: r.startedAt,
      latency: this.world.now - r.startedAt,
      reason: e.reason,
      requests: e.requests,
      dials: r.dials,
      undialableDials: r.undialableDials,
      found,
      success: found === truth.size && e.closest.length === truth.size
    })
  }

  private step (): void {
    const node = this.initiators.publisher(this.started)
    const target = this.random.fill(new Uint8Array(KEY_BYTES))
    const queryId = this.world.startLookup(node, target)
    this.running.set(queryId, { node, target, startedAt: this.world.now, dials: 0, undialableDials: 0 })
    this.started++
    if (this.started < this.options.lookups) {
      this.world.at(this.world.now + this.options.interval, 'lookup', () => { this.step() })
    }
  }
}
