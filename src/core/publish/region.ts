/**
 * Keyspace regions for bulk puts: one lookup serves every key near its
 * target, instead of one lookup per key.
 *
 * A lookup for target `t` that converged on the k closest peers P1..Pk tells
 * us more than their names: let `c` be the common prefix length of `t` and
 * its farthest result. Every peer sharing more than `c` leading bits with `t`
 * is closer to `t` than Pk, so the lookup found all of them. For a key `t'`
 * sharing more than `c` bits with `t`, the peers nearest to it are first
 * those in that same subtree (all known), then the nearest of the rest (of
 * which we know the ones nearest to `t`). The k closest known peers are
 * therefore the true k closest, or differ from them only in the last places,
 * which only moves where a few of the k copies land.
 *
 * `RegionCache` keeps the last region (its target, depth and the peers that
 * answered: the k closest and the spares beyond them) and answers whether a
 * key falls inside and which known peers are closest to it. Bulk puts walk
 * their keys in keyspace order, so each region is looked up once.
 *
 * Bounds: at most `maxKnown` peers per region.
 */
import { commonPrefixLength, compareDistance } from '../key.ts'
import type { Contact } from '../contact.ts'
import type { Key } from '../key.ts'

/**
 * Lookups in a row that return fewer than k peers before the last one's
 * results are taken as a region anyway (its depth from its farthest
 * result, as with k). One short lookup may be a peer that failed once, and
 * the next lookup finds k again; two in a row say that is all the walk can
 * reach there (fewer than k live servers, or some that fail every time).
 * Without this, a bulk provide into 28 live Go servers whose first lookups
 * came back with fewer than 20 looked up every fifth key: 2 068 lookups for
 * 10 000 CIDs, 20 s instead of 2.6 s.
 */
export const SHORT_TRUSTED = 2

export class RegionCache<C extends Contact = Contact> {
  private readonly k: number
  private readonly maxKnown: number
  private target?: Key
  private depth = 0
  private known: C[] = []
  /** lookups learned in a row that returned fewer than k peers */
  private shortInARow = 0

  constructor (k: number, maxKnown = 256) {
    if (!Number.isInteger(k) || k < 1) {
      throw new RangeError(`k must be a positive integer, got ${k}`)
    }
    this.k = k
    this.maxKnown = Math.max(k, maxKnown)
  }

  /** Whether the current region can place `key` without a lookup */
  covers (key: Key): boolean {
    return this.target != null && this.known.length >= (this.shortInARow >= SHORT_TRUSTED ? 1 : this.k) && commonPrefixLength(key, this.target) >= this.depth
  }

  /**
   * Starts a region from a lookup for `target` that returned `closest` (its
   * k closest that answered, nearest first) and `spares` (answered, farther).
   * With fewer than k results the region covers nothing beyond `target`,
   * unless the lookup before it came back short too: then this one's
   * results are taken for all there is near it (see SHORT_TRUSTED).
   */
  learn (target: Key, closest: readonly C[], spares: readonly C[] = []): void {
    this.target = target
    this.known = [...closest, ...spares].slice(0, this.maxKnown)
    this.shortInARow = closest.length < this.k ? this.shortInARow + 1 : 0
    if (closest.length === 0 || (closest.length < this.k && this.shortInARow < SHORT_TRUSTED)) {
      // a small network, or peers that failed: keep the region exact
      this.depth = 256
      return
    }
    let depth = 256
    for (const c of closest) {
      depth = Math.min(depth, commonPrefixLength(target, c.key))
    }
    this.depth = Math.min(256, depth + 1)
  }

  /** The `n` known peers closest to `key`, nearest first */
  closest (key: Key, n: number): C[] {
    return [...this.known].sort((a, b) => compareDistance(a.key, b.key, key)).slice(0, n)
  }

  /**
   * Whether a peer at `key` would change what the region places: it shares
   * at least depth - 1 bits with the target, the subtree the region's k
   * closest came from, so it is nearer some covered key than a peer the
   * region holds (false for an exact region of fewer than k peers, which
   * covers one key only)
   */
  touches (key: Key): boolean {
    return this.target != null && this.depth < 256 && commonPrefixLength(key, this.target) >= this.depth - 1
  }

  /** The region's depth (common prefix bits a key must share with its target) */
  get regionDepth (): number {
    return this.depth
  }
}

/** Sorts items by their key, so keys near each other in the keyspace are next to each other */
export function sortByKey<T extends { key: Key }> (items: T[]): T[] {
  return items.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++) {
      if (a.key[i] !== b.key[i]) {
        return a.key[i] - b.key[i]
      }
    }
    return 0
  })
}

/**
 * How many regions of depth `depth` the sorted `keys` fall into: one more
 * each time a key shares fewer than `depth` leading bits with the key before
 * it. Regions of a converged network have about the same depth near each
 * other, so one lookup's depth estimates how many lookups a walk will need.
 */
export function regionsSpanned (keys: readonly Key[], depth: number): number {
  let regions = keys.length > 0 ? 1 : 0
  for (let i = 1; i < keys.length; i++) {
    if (commonPrefixLength(keys[i], keys[i - 1]) < depth) {
      regions++
    }
  }
  return regions
}

/**
 * Slices to cut a walk into so its lookups run in parallel: none beyond one
 * while the keys span few regions (each slice boundary can cost a lookup,
 * so slicing a walk of one or two regions only adds lookups), then one per
 * two regions, at most `max`.
 */
export function sliceCount (regions: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(regions / 2)))
}

/**
 * Where to cut sorted `keys` into `count` slices walked at once: the index
 * each slice starts at (the first is 0), on a region boundary at `depth`
 * (a key that shares fewer than `depth` leading bits with the key before
 * it), each as near an even share of the keys as the boundaries allow. A
 * slice that starts inside a region looks it up again: cutting at even
 * shares of the keys cost one lookup more per slice than the regions
 * needed (five lookups where three served, 1 000 CIDs into 40 of
 * go-libp2p-kad-dht's servers). Fewer slices than `count` when the keys
 * span fewer regions; none for no keys.
 */
export function sliceStarts (keys: readonly Key[], depth: number, count: number): number[] {
  if (keys.length === 0) {
    return []
  }
  const boundaries = [0]
  for (let i = 1; i < keys.length; i++) {
    if (commonPrefixLength(keys[i], keys[i - 1]) < depth) {
      boundaries.push(i)
    }
  }
  const n = Math.max(1, Math.min(count, boundaries.length))
  const starts = [0]
  let b = 0
  for (let i = 1; i < n; i++) {
    // the boundary nearest to an even share of the keys, after the last start, leaving one for each slice still to cut
    const target = i * keys.length / n
    const last = boundaries.length - (n - i)
    while (b < last && (boundaries[b] <= starts[starts.length - 1] || Math.abs(boundaries[b + 1] - target) <= Math.abs(boundaries[b] - target))) {
      b++
    }
    starts.push(boundaries[b])
  }
  return starts
}
