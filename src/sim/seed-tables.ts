/**
 * The quick bootstrap: fill a node's routing table directly with a uniform
 * sample of the peers each of its buckets could hold, as a long-running
 * Kademlia network converges to, without running the lookups that build
 * such tables for real.
 *
 * How: the world's key index (`key-index.ts`) holds all node indices sorted
 * by key (the leaves of a binary trie). For node x the peers of bucket c (exactly c leading bits shared
 * with x) are one contiguous run of that order: inside the run sharing c
 * bits with x, the half whose bit c differs from x's. For each bucket we draw
 * up to `k + replacements` peers uniformly from the run and deliver them as
 * `peer-identified` events at time 0, in random order, so the table's own
 * rules decide which become entries and which wait as replacements.
 *
 * Which peers are listed: with `listUndialable` (the default) undialable
 * nodes are drawn like any other. That reproduces what crawls of the IPFS
 * DHT find: a large share of the peers named in routing tables cannot be
 * dialled (stale entries, NAT'd peers that announced themselves as
 * servers). Without it tables hold dialable peers only (a network where
 * identify keeps clients out, as in `join.ts`).
 *
 * Classic nodes (no peer stack) take every drawn peer as identified, as
 * they would over a connection either side opened: that is how undialable
 * peers get into real tables (a NAT'd peer dials out and identify lists the
 * DHT protocol). A priority-dht node admits only peers it reached itself
 * (table.ts, "Admission"); the state its table converges to under that
 * rule is the same draw with the undialable peers left out (their verify
 * dial can never succeed) and each dialable one identified over a
 * connection it opened (`dialled`). Its peer stack starts with no history:
 * it has never exchanged a request with any of them. With `upgraded`,
 * adopters take the classic draw instead (undialable peers included, as
 * entries), as a node that switched to priority-dht and kept its table.
 *
 * Cost: O(log N) binary searches and at most `k + replacements` draws per
 * bucket for each node built (plus the key index, built once). Memory:
 * nothing beyond the key index.
 */
import { KEY_BITS } from '../core/key.ts'
import { bit } from './key-index.ts'
import { KAD_PROTOCOLS } from './world.ts'
import type { KeyIndex } from './key-index.ts'
import type { SimNode } from './node.ts'
import type { World } from './world.ts'
import type { Random } from '../core/env.ts'

export interface SeedOptions {
  /**
   * Draw undialable nodes into tables too.
   *
   * @default true
   */
  listUndialable: boolean
  /**
   * Adopters start from the table a classic node would have (they just
   * upgraded and kept it): the same draw, undialable peers included, taken
   * in as entries we had reached. A live run then shows how they learn
   * which entries are dead, instead of starting from the state their
   * admission rule converges to.
   *
   * @default false
   */
  upgraded: boolean
}

export class TableSeeder {
  readonly options: SeedOptions
  private readonly world: World
  private readonly index: KeyIndex
  /** Peers delivered to tables so far */
  delivered = 0

  constructor (world: World, options: Partial<SeedOptions> = {}) {
    this.world = world
    this.options = { listUndialable: options.listUndialable ?? true, upgraded: options.upgraded ?? false }
    this.index = world.keyIndex
  }

  /** Makes the world seed every node it builds */
  install (): this {
    this.world.onBuild = (node, random) => { this.seed(node, random) }
    return this
  }

  /** Fills `node`'s routing table (at virtual time 0); returns the peers delivered */
  seed (node: SimNode, random: Random): number {
    const self = node.contact.key
    const table = node.coordinator.routingTable
    const want = table.config.k + table.config.replacements
    const adopter = node.stack != null
    if (this.world.network.arrivesAt(node.index) > 0) {
      return 0 // joins later, with an empty table (see arrivals.ts)
    }
    let lo = 0
    let hi = this.index.size
    let count = 0
    for (let c = 0; c < KEY_BITS && hi - lo > 1; c++) {
      const mid = this.index.split(lo, hi, c)
      let bucketLo: number
      let bucketHi: number
      if (bit(self, c) === 0) {
        bucketLo = mid
        bucketHi = hi
        hi = mid
      } else {
        bucketLo = lo
        bucketHi = mid
        lo = mid
      }
      for (const i of this.sample(bucketLo, bucketHi, want, random)) {
        const dialable = this.world.network.dialable(i)
        if (adopter && !dialable && !this.options.upgraded) {
          continue
        }
        const effects = node.coordinator.handle({ type: 'peer-identified', peer: this.world.contacts[i], protocols: KAD_PROTOCOLS, dialled: adopter ? true : undefined }, 0)
        for (const e of effects) {
          if (e.type !== 'peer-added' && e.type !== 'peer-removed') {
            throw new Error(`seeding a table produced an unexpected ${e.type} effect`)
          }
        }
        count++
      }
    }
    this.delivered += count
    return count
  }

  /** Up to `want` distinct eligible node indices from positions [lo, hi), in random order */
  private sample (lo: number, hi: number, want: number, random: Random): number[] {
    const size = hi - lo
    if (size <= 0) {
      return []
    }
    const network = this.world.network
    const eligible = (i: number): boolean => (this.options.listUndialable || network.dialable(i)) && network.arrivesAt(i) === 0
    if (size <= 4 * want) {
      const all: number[] = []
      for (let p = lo; p < hi; p++) {
        const i = this.index.order[p]
        if (eligible(i)) {
          all.push(i)
        }
      }
      // partial Fisher-Yates: the first `want` are a uniform sample in random order
      const take = Math.min(want, all.length)
      for (let j = 0; j < take; j++) {
        const r = j + random.int(all.length - j)
        const t = all[j]
        all[j] = all[r]
        all[r] = t
      }
      return all.slice(0, take)
    }
    // a large run: rejection sampling (at most 64 draws per wanted peer)
    const picked = new Set<number>()
    const out: number[] = []
    for (let attempts = 0; out.length < want && attempts < 64 * want; attempts++) {
      const p = lo + random.int(size)
      if (picked.has(p)) {
        continue
      }
      picked.add(p)
      const i = this.index.order[p]
      if (eligible(i)) {
        out.push(i)
      }
    }
    return out
  }
}
