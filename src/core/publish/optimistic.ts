/**
 * Optimistic placement: which peers that answered a lookup are, already
 * before it converges, very likely among the k closest to its target.
 *
 * With n reachable DHT servers spread uniformly over the keyspace, the number
 * of them closer to a target than distance d is about n * d / 2^256 (d read
 * as a fraction of the keyspace). A peer at distance d therefore has an
 * expected rank of n * d / 2^256 + 1. When that is at most `share * k`, the
 * peer is among the k closest with high probability (the count of peers
 * closer is Poisson with that mean: at share 0.5 and k = 20, one in a
 * thousand lands beyond k, if n is right), and a put can deliver to it at
 * once instead of waiting for the lookup to converge. go-libp2p-kad-dht's
 * optimistic provide rests on the same estimate.
 *
 * n comes from the routing table (`RoutingTable.sizeEstimate()`): the peers
 * we know in the first bucket that is not full, and every deeper one, cover
 * the 2^-c of the keyspace that shares c leading bits with us, so n is about
 * their count times 2^c.
 *
 * A wrong n costs copies, not correctness: the lookup goes on, and the
 * fan-out still delivers to the k closest it finds (fan-out.ts, `plan`). An
 * n too large makes us deliver early to peers a little too far (extra
 * copies), too small makes us deliver early to fewer (no gain).
 *
 * The estimate needs a large table; on a small network (below
 * `MIN_SIZE_FACTOR * k`) or early in any lookup, the lookup itself says more.
 * Once `SETTLED_AFTER` responses in a row have named no new candidate among
 * its k closest live ones, its candidate list near the target has stopped
 * changing: the peers that answered among its `headSize(k)` closest live
 * candidates (`Lookup.settledHead`) would be among the k closest it returns
 * unless more than k - headSize(k) peers nobody has named are nearer. Those
 * get the record at once too, whatever the network's size.
 *
 * Pure: no clock, no I/O.
 */
import { KEY_BYTES } from '../key.ts'
import type { Key } from '../key.ts'

/**
 * Share of k the expected rank may reach for an early delivery: 1, "expected
 * to be among the k closest". At 10 000 simulated nodes this cut provide p50
 * from 3.5 s to 1.9 s for 0.7 extra copies per put (0.5: 2.2 s, 0.4 copies).
 *
 * @default 1
 */
export const EARLY_RANK_SHARE = 1

/**
 * Below this many times k peers (estimated) nobody is placed early: the
 * estimate from a small table is too noisy (a quorum could be reached by
 * peers just beyond the k closest, and a reader right after the put would
 * ask the true closest before the background deliveries reach them), and
 * the lookup of a small network is short anyway. Measured as a flaky
 * interop test on 20 nodes with k = 4 (a provide reported done, kad-dht's
 * findProviders right after found nothing).
 */
export const MIN_SIZE_FACTOR = 10

/**
 * Responses in a row that named no new candidate among a lookup's k closest
 * live ones before its head counts as settled. 2: one response can name
 * nothing new by chance (a responder far from the target that knows little
 * near it); two in a row from the closest candidates, which the lookup asks
 * first, rarely do while nearer peers remain unnamed.
 */
export const SETTLED_AFTER = 2

/**
 * Share of k a settled head covers: 0.75, so a peer given the record early
 * is off the k closest only if k / 4 peers nobody named are nearer, and with
 * a quorum of k / 2 a put can report success even when a quarter of the head
 * fails to take the record.
 */
export const HEAD_SHARE = 0.75

/** Candidates a settled head covers for Kademlia's `k` (at least 1) */
export function headSize (k: number): number {
  return Math.max(1, Math.ceil(HEAD_SHARE * k))
}

/** XOR distance of `a` and `b` as a fraction of the keyspace in [0, 1) (53 bits of precision) */
export function distanceFraction (a: Key, b: Key): number {
  let f = 0
  let scale = 1 / 256
  for (let i = 0; i < Math.min(KEY_BYTES, 7, a.length, b.length); i++) {
    f += (a[i] ^ b[i]) * scale
    scale /= 256
  }
  return f
}

/** The expected rank (1 = nearest) of a peer at `peer` among `networkSize` peers near `target` */
export function expectedRank (target: Key, peer: Key, networkSize: number): number {
  return 1 + Math.max(0, networkSize) * distanceFraction(target, peer)
}

/**
 * Whether a peer that answered is very likely among the `k` closest to
 * `target`: its expected rank is at most `share * k`. False when the size
 * is unknown (0 or not finite) or below `MIN_SIZE_FACTOR * k`.
 */
export function likelyAmongClosest (target: Key, peer: Key, networkSize: number, k: number, share = EARLY_RANK_SHARE): boolean {
  if (!Number.isFinite(networkSize) || networkSize < MIN_SIZE_FACTOR * k) {
    return false
  }
  return expectedRank(target, peer, networkSize) <= share * k
}
