/**
 * The slow, faithful bootstrap: nodes join one after another and build their
 * routing tables with the real lookup machine, the way a libp2p node does on
 * start.
 *
 * Steps (queue `step` events, one scheduled at a time): node i joins at
 * `i * duration / N` virtual ms. It is built with an empty table, connects to
 * up to `bootstrapPeers` dialable nodes that joined before it (the
 * connection is taken as already open; identify runs both ways), and looks
 * up its own key. When that lookup ends it looks up one random key in each
 * bucket range 0..min(deepest non-empty bucket, `maxRefreshCpl`), as
 * `@libp2p/kad-dht`'s routing table refresh does on start. The core has no
 * "refresh now" event, so the driver starts these lookups itself (see the
 * report's core change requests).
 *
 * Who ends up in tables: only peers identify reports as DHT servers, that
 * is dialable ones (the world's identify rule). Undialable nodes join and
 * look up like everyone else but nobody lists them, so this mode models a
 * network that keeps clients out of its tables. Use the seeded bootstrap
 * with `listUndialable` for the measured, polluted tables.
 *
 * Bounds: `lookups` holds the join lookups in flight (at most
 * 1 + maxRefreshCpl + 1 per joining node, over the nodes joining at once);
 * `joinedDialable` at most N indices.
 */
import { KEY_BYTES, keyWithPrefixLength } from '../core/key.ts'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import type { LookupFinished, World, WorldListener } from './world.ts'
import type { Millis, Random } from '../core/env.ts'

export interface JoinOptions {
  /**
   * Virtual ms over which all nodes join, evenly spaced. Keep it below the
   * routing table's `refreshInterval` (10 min) unless refresh traffic is
   * wanted in the run.
   *
   * @default 300000 (range 0..86,400,000)
   */
  duration: Millis
  /**
   * Dialable earlier joiners each new node connects to first.
   *
   * @default 4 (range 1..100)
   */
  bootstrapPeers: number
  /**
   * Deepest bucket refreshed by the start-up refresh lookups.
   *
   * @default 15 (range 0..255)
   */
  maxRefreshCpl: number
}

export function validateJoinOptions (partial: Partial<JoinOptions> = {}): JoinOptions {
  const o: JoinOptions = { duration: 300_000, bootstrapPeers: 4, maxRefreshCpl: 15, ...stripUndefined(partial) }
  checkRange('join.duration', o.duration, 0, 86_400_000, false)
  checkRange('join.bootstrapPeers', o.bootstrapPeers, 1, 100)
  checkRange('join.maxRefreshCpl', o.maxRefreshCpl, 0, 255)
  return o
}

export class JoinBootstrap implements WorldListener {
  readonly options: JoinOptions
  private readonly world: World
  private readonly random: Random
  private readonly joinedDialable: number[] = []
  private readonly lookups = new Map<number, { node: number, self: boolean }>()
  private joined = 0
  /** Lookups started by joining nodes */
  started = 0

  constructor (world: World, options: Partial<JoinOptions>, random: Random) {
    this.world = world
    this.options = validateJoinOptions(options)
    this.random = random
  }

  get done (): boolean {
    return this.joined === this.world.size && this.lookups.size === 0
  }

  /** Nodes joined so far */
  get joinedNodes (): number {
    return this.joined
  }

  /** Installs itself as the world's listener and schedules the first join */
  start (): void {
    this.world.listener = this
    this.world.at(this.world.now, 'join', () => { this.join() })
  }

  onLookupFinished (node: number, e: LookupFinished): void {
    const l = this.lookups.get(e.queryId)
    if (l == null) {
      return
    }
    this.lookups.delete(e.queryId)
    if (!l.self) {
      return
    }
    const n = this.world.node(node)
    const sizes = n.coordinator.routingTable.bucketSizes()
    let deepest = 0
    sizes.forEach((s, cpl) => { if (s > 0) { deepest = cpl } })
    for (let cpl = 0; cpl <= Math.min(deepest, this.options.maxRefreshCpl); cpl++) {
      const key = keyWithPrefixLength(n.contact.key, cpl, this.random.fill(new Uint8Array(KEY_BYTES)))
      this.track(node, this.world.startLookup(node, key), false)
    }
  }

  private join (): void {
    const i = this.joined++
    const now = this.world.now
    const node = this.world.node(i, now)
    const peers = new Set<number>()
    const want = Math.min(this.options.bootstrapPeers, this.joinedDialable.length)
    while (peers.size < want) {
      peers.add(this.joinedDialable[this.random.int(this.joinedDialable.length)])
    }
    for (const p of peers) {
      this.world.connect(i, p, now)
    }
    if (this.world.network.dialable(i)) {
      this.joinedDialable.push(i)
    }
    if (peers.size > 0) {
      this.track(i, this.world.startLookup(i, node.contact.key), true)
    }
    if (this.joined < this.world.size) {
      const next = Math.floor(this.joined * this.options.duration / this.world.size)
      this.world.at(next, 'join', () => { this.join() })
    }
  }

  private track (node: number, queryId: number, self: boolean): void {
    this.lookups.set(queryId, { node, self })
    this.started++
  }
}
