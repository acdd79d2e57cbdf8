import { checkRange, stripUndefined } from '../routing-table/config.ts'

export interface LookupConfig {
  /**
   * How many closest peers a lookup returns.
   *
   * @default 20 (range 1..256)
   */
  k: number
  /**
   * Requests in flight at once per lookup. Kademlia's α. We default to 3 as
   * the Kademlia paper and `@libp2p/kad-dht` do (go-libp2p-kad-dht's Amino
   * default is 10); the priority peer stack (not α) is what keeps slow peers
   * from stalling a lookup. In the simulator (10 000 nodes, all
   * priority-dht, seed 1) α 5 shortens lookups from 3.4 to 2.4 s and
   * provides from 1.9 to 1.3 s for 12% more requests, with recall of the
   * true k closest 98.5% instead of 99.0% (slow peers among the closest
   * are left out more often when the lookup ends sooner); α 10: 1.7 s and
   * 0.9 s for 38% more requests, recall 98.1%.
   *
   * @default 3 (range 1..64)
   */
  alpha: number
  /**
   * The lookup converges when this many of the closest not-yet-failed
   * candidates have answered. Setting it to `k` (the default) makes the
   * result the true k closest reachable peers on a static network; smaller
   * values trade accuracy for fewer round trips.
   *
   * @default 20 (range 1..256, at most k)
   */
  beta: number
  /**
   * Candidates remembered per lookup. Beyond this the farthest candidates not
   * in flight are forgotten.
   *
   * @default 100 (range k..10000)
   */
  maxCandidates: number
  /**
   * Requests a single lookup may send in total. At the bound the lookup ends
   * with what it has (reason `request-limit`).
   *
   * @default 200 (range 1..100000)
   */
  maxRequests: number
  /**
   * Requests that may be outstanding as *slow* at once. A request is slow once
   * the peer quality's `hedgeDelay` has passed without an answer; it then no
   * longer holds one of the α slots (the next candidate is asked) but still
   * holds up convergence; an answer that arrives later counts. A request
   * that passes its hedge delay while all slow slots are taken keeps its α
   * slot and waits for the next one freed (longest waiting first). A slow
   * request past a second hedge delay is *overdue*: it no longer holds up
   * convergence and gives up its slow slot (it is still heard out;
   * `maxRequests` bounds how many a lookup can have).
   * 0 disables hedging.
   *
   * @default 6 (range 0..256)
   */
  maxSlow: number
  /**
   * A peer that named this many candidates that could not be reached at all
   * (dial refused, protocol unsupported), and none that answered, is taken
   * for a liar (fabricated peers): its other unconfirmed candidates are
   * dropped and it is left out of the result.
   *
   * @default 3 (range 1..10000)
   */
  misledAfter: number
  /**
   * Wait for slow requests to the closest candidates until they answer or
   * fail (their request timeout), instead of leaving them out of the result
   * once overdue (two hedge delays). For callers that want the exact k
   * closest more than speed, as `getClosestPeers` does: a slow peer among
   * the closest stays in the result; a dead one still costs at most its
   * dial timeout. Hedging still asks the next candidates meanwhile.
   *
   * @default false
   */
  awaitOverdue: boolean
  /**
   * Disjoint paths for GET_VALUE and GET_PROVIDERS lookups (S/Kademlia, as
   * `@libp2p/kad-dht`'s `disjointPaths`): that many lookups, each seeded
   * with every d-th of our closest peers and learning only from its own
   * responses, no peer asked by two of them (`src/core/query/disjoint.ts`).
   * Peers that name only each other near a key then have to capture every
   * path to hide a record. FIND_NODE lookups (puts, getClosestPeers,
   * refresh) use one path: they must converge on the true k closest.
   *
   * @default 1 (range 1..16)
   */
  disjointPaths: number
}

export function defaultLookupConfig (): LookupConfig {
  return { k: 20, alpha: 3, beta: 20, maxCandidates: 100, maxRequests: 200, maxSlow: 6, misledAfter: 3, awaitOverdue: false, disjointPaths: 1 }
}

export function validateLookupConfig (partial: Partial<LookupConfig> = {}): LookupConfig {
  const c = { ...defaultLookupConfig(), ...stripUndefined(partial) }
  if (partial.beta === undefined && partial.k !== undefined) {
    c.beta = c.k
  }
  checkRange('lookup.k', c.k, 1, 256)
  checkRange('lookup.alpha', c.alpha, 1, 64)
  checkRange('lookup.beta', c.beta, 1, c.k)
  checkRange('lookup.maxCandidates', c.maxCandidates, c.k, 10_000)
  checkRange('lookup.maxRequests', c.maxRequests, 1, 100_000)
  checkRange('lookup.maxSlow', c.maxSlow, 0, 256)
  checkRange('lookup.misledAfter', c.misledAfter, 1, 10_000)
  checkRange('lookup.disjointPaths', c.disjointPaths, 1, 16)
  return c
}
