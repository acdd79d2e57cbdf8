/**
 * Ground truth for lookups: the k dialable nodes closest to a key (the
 * simulator knows the whole network; the nodes do not).
 *
 * - `closestDialable`: a walk of the world's sorted key index (`key-index.ts`),
 * O(log N + k) per query plus the undialable nodes it skips.
 * - `closestDialableBruteForce`: one pass over all N keys keeping the best k
 * in a sorted array; O(N). Kept as the obviously-correct reference the tests
 * compare the index walk against.
 */
import { compareDistance } from '../core/key.ts'
import type { World } from './world.ts'
import type { Key } from '../core/key.ts'

/**
 * Indices of the `k` dialable nodes closest to `target`, nearest first,
 * leaving out `exclude` (the node that looks: it never returns itself).
 */
export function closestDialable (world: World, target: Key, k: number, exclude = -1): number[] {
  return world.keyIndex.closest(target, k, i => i !== exclude && world.network.dialable(i))
}

/** The same as {@link closestDialable}, by a scan of every node */
export function closestDialableBruteForce (world: World, target: Key, k: number, exclude = -1): number[] {
  const contacts = world.contacts
  const best: number[] = []
  for (let i = 0; i < world.size; i++) {
    if (i === exclude || !world.network.dialable(i)) {
      continue
    }
    const key = contacts[i].key
    if (best.length === k && compareDistance(key, contacts[best[k - 1]].key, target) >= 0) {
      continue
    }
    let at = best.length
    while (at > 0 && compareDistance(key, contacts[best[at - 1]].key, target) < 0) {
      at--
    }
    best.splice(at, 0, i)
    if (best.length > k) {
      best.pop()
    }
  }
  return best
}
