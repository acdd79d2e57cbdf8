/**
 * Nodes joining a running network (`joinRate`): each node whose
 * `arrivesAt` is after 0 is built at that moment with an empty table,
 * connects to up to `bootstrapPeers` online dialable nodes (the connection
 * is taken as open; identify runs both ways), looks up its own key at once
 * and, `refreshAfter` later, one random key in each bucket range up to its
 * deepest non-empty bucket (at most `maxRefreshCpl`), as `@libp2p/kad-dht`
 * does on start. From then on its own maintenance runs as the core
 * schedules it, and it churns and departs as the network says.
 *
 * The lookups it starts go through `world.startLookup`, so a scenario
 * listening to the world sees their events but none of its own query ids.
 *
 * Bounds: the arrival times are one sorted array of the joining nodes'
 * indices (at most `nodes`); one arrival step queued at a time, plus one
 * refresh step per node that joined in the last `refreshAfter` and one
 * retry step per node waiting for its first session.
 */
import { KEY_BYTES, keyWithPrefixLength } from '../core/key.ts'
import type { World } from './world.ts'
import type { Millis, Random } from '../core/env.ts'

/** How often a node whose arrival fell in an absence checks whether its session has started */
const RETRY = 60_000

export interface ArrivalOptions {
  /**
   * Online dialable nodes a joining node connects to first.
   *
   * @default 4
   */
  bootstrapPeers: number
  /**
   * From its self lookup to its bucket refresh (virtual ms).
   *
   * @default 30000
   */
  refreshAfter: Millis
  /**
   * Deepest bucket refreshed on joining.
   *
   * @default 15
   */
  maxRefreshCpl: number
}

export class Arrivals {
  readonly options: ArrivalOptions
  /** Nodes joined so far */
  joined = 0
  /** Joining nodes that found no online dialable node to connect to */
  stranded = 0
  private readonly world: World
  private readonly random: Random
  private readonly order: Int32Array
  private next = 0

  constructor (world: World, random: Random, options: Partial<ArrivalOptions> = {}) {
    this.world = world
    this.random = random
    this.options = { bootstrapPeers: 4, refreshAfter: 30_000, maxRefreshCpl: 15, ...options }
    const joining: number[] = []
    for (let i = 0; i < world.size; i++) {
      if (world.network.arrivesAt(i) > 0) {
        joining.push(i)
      }
    }
    joining.sort((a, b) => world.network.arrivesAt(a) - world.network.arrivesAt(b) || a - b)
    this.order = Int32Array.from(joining)
  }

  /** Nodes that join over the run */
  get total (): number {
    return this.order.length
  }

  /** Schedules the first arrival */
  start (): void {
    this.schedule()
  }

  private schedule (): void {
    if (this.next < this.order.length) {
      const i = this.order[this.next]
      this.world.at(this.world.network.arrivesAt(i), 'arrive', () => { this.arrive(i) })
    }
  }

  private arrive (i: number): void {
    this.next++
    this.schedule()
    this.join(i)
  }

  private join (i: number): void {
    const world = this.world
    const now = world.now
    if (!world.network.online(i, now)) {
      // its arrival falls in an absence of its own churn: it joins when its
      // first session starts (checked every minute), unless it has left
      if (now < world.network.departsAt(i)) {
        world.at(now + RETRY, 'join-retry', () => { this.join(i) })
      }
      return
    }
    const node = world.node(i, now)
    const peers = new Set<number>()
    // bounded draws: on a network with few online dialable nodes some find fewer
    for (let tries = 0; peers.size < this.options.bootstrapPeers && tries < 64 * this.options.bootstrapPeers; tries++) {
      const p = this.random.int(world.size)
      if (p !== i && world.network.dialable(p) && world.network.online(p, now)) {
        peers.add(p)
      }
    }
    if (peers.size === 0) {
      this.stranded++
      return
    }
    for (const p of peers) {
      world.connect(i, p, now)
    }
    this.joined++
    world.startLookup(i, node.contact.key)
    world.at(now + this.options.refreshAfter, 'join-refresh', () => { this.refresh(i) })
  }

  private refresh (i: number): void {
    const node = this.world.node(i)
    let deepest = -1
    node.coordinator.routingTable.bucketSizes().forEach((s, cpl) => { if (s > 0) { deepest = cpl } })
    for (let cpl = 0; cpl <= Math.min(deepest, this.options.maxRefreshCpl); cpl++) {
      this.world.startLookup(i, keyWithPrefixLength(node.contact.key, cpl, this.random.fill(new Uint8Array(KEY_BYTES))))
    }
  }
}
