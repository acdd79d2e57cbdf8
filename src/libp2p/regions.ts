/**
 * Recently looked-up keyspace regions, shared by single `provide` and `put`:
 * a burst of single calls costs about one FIND_NODE lookup per region of the
 * keyspace, not one per key.
 *
 * A lookup for target `t` that converged (or exhausted its candidates) on at
 * least k peers defines a region (`RegionCache` in
 * `src/core/publish/region.ts`): every key sharing at least `depth` leading
 * bits with `t` (one more than `t` shares with the farthest of its k closest)
 * has its true k closest among the peers that lookup heard from, the
 * closest and the spares. This store keeps up to `maxRegions` such regions,
 * keyed by the region's prefix (the first `depth` bits of `t`; a newer lookup
 * of the same prefix replaces the older), in least-recently-used order.
 *
 * Events (calls) and effects:
 * - `learn(target, closest, spares)`: from the driver, for every FIND_NODE
 * lookup that converged or exhausted its candidates (provide, put,
 * getClosestPeers, provideMany's region lookups, the self lookup; not the
 * core's internal bucket refreshes, which the driver does not see). With fewer than k results the
 * region is exact (depth 256) and only helps the same key again.
 * - `place(key, n)`: the `n` closest good peers of the freshest region that
 * covers `key` (nearest first, plus spares), or undefined. A region is
 * fresh for `freshFor` ms after its lookup; a stale one found on the way is
 * dropped. A peer is good unless the peer stack has it in back-off now or a
 * delivery to it failed since the region was learned. A region with fewer
 * than k good peers left places nothing: the caller looks up again.
 * - `seeds(key, n)`: when `place` found a fresh covering region with fewer
 * than k good peers, those good peers (nearest first, at most n): the put
 * delivers to them while its own lookup runs (content.ts).
 * - `arrived(id, key)`: a DHT server entered our routing table. Every
 * region it touches (it shares at least the region's depth - 1 bits with
 * the region's target, see `RegionCache.touches`) that does not hold it was
 * learned before it joined, or without hearing of it: the region is
 * dropped, and the next put there looks its key up, so a joiner near a
 * cached region gets its records at once rather than after `freshFor`.
 * O(regions) per table addition.
 * - `failed(id)`: a delivery to `id` failed; it is no longer good in any
 * region (the put itself moves on to a spare, as `FanOut` does). When every
 * target and spare of a cached placement failed, the put looks its key up
 * and delivers once more (`content.ts`), so a region whose peers all left
 * costs one lookup, not the record.
 * - `inFlightNear(key)` / `begin(target)`: single flight. A region's depth is
 * only known once its lookup has finished, so a caller whose key shares at
 * least the *expected* depth with the target of a lookup in flight waits
 * for it, then calls `place` again (and looks up itself if the region did
 * not cover its key after all; it waits at most once). The expected depth
 * is floor(log2(n / k)) + 1 for a network of n peers (the k closest of a
 * target share about log2(n / k) bits with it, and a region is one bit
 * deeper), n estimated from the routing table (`networkSize()`), minus
 * `joinMargin` bits, and never below 1.
 *
 * Why the defaults. `freshFor` = 5 minutes: the peers of a region are those
 * that answered a lookup moments ago; the peer stack puts a peer that stops
 * answering in back-off within one failed exchange, and a failed delivery
 * goes to a spare, so what staleness can cost is a peer that *joined* the
 * region since and has not entered our routing table (`arrived` drops the
 * region for those that have), missing one copy out of k (the routing table itself treats
 * entries as fresh for 15 minutes and refreshes buckets every 10). `maxRegions`
 * = 256: a region holds about k peers plus 10 spares (some 30 peer infos
 * whose peer ids and addresses libp2p holds anyway), so the store stays at a
 * few MiB at most, and 256 regions cover a network of about 256 * k peers.
 *
 * Bounds: at most `maxRegions` regions (LRU: a `place` that uses a region
 * moves it to the back; learning a new prefix beyond the bound evicts the
 * least recently used); at most `maxInFlight` lookups are registered for
 * others to wait for (beyond it a lookup runs unregistered, nobody waits for
 * it); a region's failed peers are among its own. Finding a region scans the regions: O(maxRegions) per call. Callers
 * waiting for an in-flight lookup hold no lookup slot; each waits at most once.
 */
import { commonPrefixLength } from '../core/key.ts'
import { RegionCache } from '../core/publish/region.ts'
import { checkRange } from '../core/routing-table/config.ts'
import { toContact } from './peer-info.ts'
import type { PeerContact } from './peer-info.ts'
import type { PeerQuality } from '../core/contact.ts'
import type { Key } from '../core/key.ts'
import type { PeerInfo } from '@libp2p/interface'

export interface RegionCacheInit {
  /**
   * Milliseconds a region stays usable after its lookup.
   *
   * @default 300000 (5 minutes); range 0 (never reuse) to 3600000
   */
  freshFor?: number
  /**
   * Regions kept at most (least recently used evicted first).
   *
   * @default 256; range 1 to 65536
   */
  maxRegions?: number
  /**
   * Lookups in flight that other calls may wait for.
   *
   * @default 64; range 0 to 4096
   */
  maxInFlight?: number
  /**
   * Bits below the expected region depth a key may share with the target of
   * a lookup in flight and still wait for it rather than look up itself.
   *
   * @default 1; range 0 to 16
   */
  joinMargin?: number
  /**
   * The clock for freshness and back-off (ms since the epoch), for tests.
   *
   * @default Date.now
   */
  now?(): number
}

export interface RegionCacheStats {
  /** provides and puts placed from a fresh cached region, without a lookup */
  hits: number
  /** provides and puts placed after waiting for another call's lookup of their region */
  joined: number
  /** provides and puts that ran their own lookup (also: a second one after every target of a cached region failed) */
  misses: number
  /** of the misses: a covering region was there but stale */
  stale: number
  /** of the misses: a fresh covering region had fewer than k good peers left */
  tooFewGood: number
  /** of those: the put delivered to the region's good peers while its lookup ran */
  seeded: number
  /** regions learned from converged lookups (any FIND_NODE lookup) */
  learned: number
  /** regions dropped because a server that entered our routing table belongs in them (`arrived`) */
  outdated: number
  /** regions evicted at the `maxRegions` bound */
  evicted: number
  /** regions held now */
  regions: number
}

/** A contact that keeps the addresses the lookup learned */
interface InfoContact extends PeerContact {
  info: PeerInfo
}

interface Region {
  cache: RegionCache<InfoContact>
  learnedAt: number
  /** the region's peers (closest and spares) */
  members: Set<string>
  /** those a delivery failed to since the region was learned (a subset of `members`) */
  failed: Set<string>
}

export interface Placement {
  closest: PeerInfo[]
  spares: PeerInfo[]
}

export interface RegionStoreInit extends RegionCacheInit {
  k: number
  quality: Pick<PeerQuality, 'backedOff'>
  /** Estimated number of DHT servers in the network */
  networkSize(): number
}

export function validateRegionCacheInit (init: RegionCacheInit): Required<Omit<RegionCacheInit, 'now'>> {
  const config = {
    freshFor: init.freshFor ?? 300_000,
    maxRegions: init.maxRegions ?? 256,
    maxInFlight: init.maxInFlight ?? 64,
    joinMargin: init.joinMargin ?? 1
  }
  checkRange('regionCache.freshFor', config.freshFor, 0, 3_600_000)
  checkRange('regionCache.maxRegions', config.maxRegions, 1, 65_536, true)
  checkRange('regionCache.maxInFlight', config.maxInFlight, 0, 4096, true)
  checkRange('regionCache.joinMargin', config.joinMargin, 0, 16, true)
  return config
}

export class RegionStore {
  private readonly k: number
  private readonly config: Required<Omit<RegionCacheInit, 'now'>>
  private readonly quality: Pick<PeerQuality, 'backedOff'>
  private readonly networkSize: () => number
  readonly now: () => number
  /** region prefix -> region, least recently used first */
  private readonly regions = new Map<string, Region>()
  /** lookups in flight others may wait for */
  private readonly inFlight = new Set<{ target: Key, done: Promise<void> }>()
  private readonly counts: Omit<RegionCacheStats, 'regions'> = { hits: 0, joined: 0, misses: 0, stale: 0, tooFewGood: 0, seeded: 0, learned: 0, outdated: 0, evicted: 0 }
  /** why the last `place` found nothing, for `missed()` to count */
  private lastMiss: 'none' | 'stale' | 'too-few-good' = 'none'

  constructor (init: RegionStoreInit) {
    this.config = validateRegionCacheInit(init)
    this.k = init.k
    this.quality = init.quality
    this.networkSize = init.networkSize
    this.now = init.now ?? Date.now
  }

  get stats (): RegionCacheStats {
    return { ...this.counts, regions: this.regions.size }
  }

  /** A FIND_NODE lookup for `target` converged on `closest` (nearest first), with `spares` beyond */
  learn (target: Key, closest: readonly PeerInfo[], spares: readonly PeerInfo[]): void {
    if (this.config.freshFor === 0 || closest.length === 0) {
      return
    }
    const asContact = (info: PeerInfo): InfoContact => ({ ...toContact(info.id), info })
    const cache = new RegionCache<InfoContact>(this.k)
    const known = [...closest, ...spares].map(asContact)
    cache.learn(target, known.slice(0, closest.length), known.slice(closest.length))
    const prefix = prefixOf(target, cache.regionDepth)
    this.regions.delete(prefix)
    if (this.regions.size >= this.config.maxRegions) {
      const oldest = this.regions.keys().next().value
      if (oldest != null) {
        this.regions.delete(oldest)
        this.counts.evicted++
      }
    }
    this.regions.set(prefix, { cache, learnedAt: this.now(), members: new Set(known.map(c => c.id)), failed: new Set() })
    this.counts.learned++
  }

  /**
   * Where a record for `key` goes without a lookup: the k closest good peers
   * of a fresh region covering it, then up to `spares` more; undefined when
   * no fresh region covers it with k good peers. Counts a hit when placed;
   * otherwise the caller's `missed()` or `joined()` says what happened next.
   */
  place (key: Key, spares: number): Placement | undefined {
    const now = this.now()
    let best: Region | undefined
    let bestPrefix = ''
    let sawStale = false
    let sawTooFew = false
    let good: InfoContact[] = []
    for (const [prefix, region] of this.regions) {
      if (!region.cache.covers(key)) {
        continue
      }
      if (!this.isFresh(region, now)) {
        this.regions.delete(prefix)
        sawStale = true
        continue
      }
      if (best != null && best.learnedAt >= region.learnedAt) {
        continue
      }
      const candidates = this.goodPeers(region, key, now)
      if (candidates.length < this.k) {
        sawTooFew = true
        continue
      }
      best = region
      bestPrefix = prefix
      good = candidates
    }
    if (best == null) {
      this.lastMiss = 'none'
      if (sawTooFew) {
        this.lastMiss = 'too-few-good'
      } else if (sawStale) {
        this.lastMiss = 'stale'
      }
      return undefined
    }
    // least recently used order: this region was just used
    this.regions.delete(bestPrefix)
    this.regions.set(bestPrefix, best)
    this.counts.hits++
    return {
      closest: good.slice(0, this.k).map(c => c.info),
      spares: good.slice(this.k, this.k + spares).map(c => c.info)
    }
  }

  /**
   * When `place` refused `key` because the freshest fresh region covering it
   * has fewer than k good peers left: those good peers, nearest to `key`
   * first, at most `n`. A put delivers to them while its own lookup runs
   * (they were the nearest answering peers moments ago, so they are very
   * likely among the true k closest), and the lookup then delivers to the
   * k closest it finds that they are not. Empty when no such region is
   * held; counts `seeded` otherwise.
   */
  seeds (key: Key, n: number): PeerInfo[] {
    const now = this.now()
    let best: Region | undefined
    for (const region of this.regions.values()) {
      if (!region.cache.covers(key) || !this.isFresh(region, now)) {
        continue
      }
      if (best == null || region.learnedAt > best.learnedAt) {
        best = region
      }
    }
    if (best == null) {
      return []
    }
    const seeds = this.goodPeers(best, key, now).slice(0, Math.min(n, this.k)).map(c => c.info)
    if (seeds.length > 0) {
      this.counts.seeded++
    }
    return seeds
  }

  /** Within `freshFor` of its lookup (a clock that went back that far counts as stale too) */
  private isFresh (region: Region, now: number): boolean {
    return now - region.learnedAt < this.config.freshFor && now >= region.learnedAt - this.config.freshFor
  }

  /** The region's peers nearest `key` first, without those in back-off now or that a delivery failed to */
  private goodPeers (region: Region, key: Key, now: number): InfoContact[] {
    return region.cache.closest(key, Infinity).filter(c => !region.failed.has(c.id) && !this.quality.backedOff(c.id, now))
  }

  /** The caller runs its own lookup (after `place` found nothing usable) */
  missed (): void {
    this.counts.misses++
    if (this.lastMiss === 'stale') {
      this.counts.stale++
    } else if (this.lastMiss === 'too-few-good') {
      this.counts.tooFewGood++
    }
    this.lastMiss = 'none'
  }

  /** The caller was placed after waiting for another call's lookup (its `place` counted a hit: move it here) */
  joined (): void {
    this.counts.hits--
    this.counts.joined++
  }

  /** `id`, at Kademlia key `key`, entered our routing table: the regions it belongs in without holding it are dropped */
  arrived (id: string, key: Key): void {
    for (const [prefix, region] of this.regions) {
      if (!region.members.has(id) && region.cache.touches(key)) {
        this.regions.delete(prefix)
        this.counts.outdated++
      }
    }
  }

  /** A delivery to `id` failed: it is not good in any region any more */
  failed (id: string): void {
    for (const region of this.regions.values()) {
      if (region.members.has(id)) {
        region.failed.add(id)
      }
    }
  }

  /**
   * A lookup in flight whose target shares at least the expected region
   * depth with `key`: resolves when it has ended (the region, if any, is
   * learned by then). Undefined when there is none.
   */
  inFlightNear (key: Key): Promise<void> | undefined {
    if (this.inFlight.size === 0 || this.config.freshFor === 0) {
      return undefined
    }
    const expected = Math.max(1, Math.floor(Math.log2(Math.max(1, this.networkSize() / this.k))) + 1 - this.config.joinMargin)
    for (const f of this.inFlight) {
      if (commonPrefixLength(key, f.target) >= expected) {
        return f.done
      }
    }
    return undefined
  }

  /** Registers a lookup for `target` others may wait for; call the returned function when it has ended */
  begin (target: Key): () => void {
    if (this.inFlight.size >= this.config.maxInFlight || this.config.freshFor === 0) {
      return () => {}
    }
    let end: () => void = () => {}
    const entry = { target, done: new Promise<void>(resolve => { end = resolve }) }
    this.inFlight.add(entry)
    return () => {
      this.inFlight.delete(entry)
      end()
    }
  }
}

/**
 * Estimated number of peers in the network from routing table bucket sizes
 * (index = common prefix length with us): below the first bucket that is not
 * full, each bucket holds k of the half of the keyspace it covers, so with
 * `j` that first non-full bucket, the peers sharing at least `j` bits with us
 * (about n / 2^j) are all in buckets `j` and deeper.
 */
export function estimateNetworkSize (bucketSizes: readonly number[], k: number): number {
  let j = bucketSizes.findIndex(s => s < k)
  if (j === -1) {
    j = bucketSizes.length
  }
  let deeper = 0
  for (let i = j; i < bucketSizes.length; i++) {
    deeper += bucketSizes[i]
  }
  return Math.max(1, deeper * 2 ** j, j > 0 ? k * 2 ** j : 0)
}

/** The first `depth` bits of `key`, as a map key */
function prefixOf (key: Key, depth: number): string {
  const bytes = Math.ceil(depth / 8)
  const out: string[] = [String(depth)]
  for (let i = 0; i < bytes; i++) {
    const bits = Math.min(8, depth - i * 8)
    const mask = (0xff << (8 - bits)) & 0xff
    out.push((key[i] & mask).toString(16).padStart(2, '0'))
  }
  return out.join(':')
}
