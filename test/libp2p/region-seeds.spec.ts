/**
 * A fresh cached region that has lost peers: fewer than k of its peers are
 * still good, so a provide into it looks its key up, but it delivers to the
 * good ones at once instead of after the lookup, and the record still ends
 * on the true k closest live nodes.
 */
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { commonPrefixLength, compareDistance } from '../../src/core/key.ts'
import { MessageType } from '../../src/generated/dht.ts'
import { kadKey } from '../../src/libp2p/peer-info.ts'
import { providesTo, startNetworkWithStores, stopAll, trueClosest } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { QueryEvent } from '../../src/index.ts'

const N = 16
const K = 4

/** Two CIDs whose keys share 10 leading bits with each other and none with `avoid` (so no region of `avoid`'s own lookups covers them) */
async function twoNear (avoid: Uint8Array): Promise<[CID, CID]> {
  for (let p = 0; ; p++) {
    const first = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`seeds-${p}-0`)))
    const key = kadKey(first.multihash.bytes)
    if (commonPrefixLength(key, avoid) > 0) {
      continue
    }
    for (let i = 1; i < 20_000; i++) {
      const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`seeds-${p}-${i}`)))
      if (commonPrefixLength(kadKey(cid.multihash.bytes), key) >= 10) {
        return [first, cid]
      }
    }
  }
}

const findNodeResponders = (events: QueryEvent[]): string[] =>
  events.flatMap(e => e.name === 'PEER_RESPONSE' && e.messageType === MessageType.FIND_NODE ? [e.from.toString()] : [])

describe('libp2p/region-seeds: a region with fewer than k good peers left still serves its good ones at once', function () {
  this.timeout(180_000)
  let nodes: OurNode[] = []
  let stores: MemoryDatastore[] = []

  before(async () => {
    // a quorum of k: the first provide reports once its lookup has ended
    // (with a smaller one it may report at the lookup's settled head, and
    // its events would not name every peer that answered the lookup)
    ({ nodes, stores } = await startNetworkWithStores(N, { kBucketSize: K, putQuorum: K }))
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('delivers to the region\'s good peers before its lookup ends, and the record reaches the true k closest live nodes', async () => {
    const provider = nodes[0]
    const [a, b] = await twoNear(kadKey(provider.peerId.toMultihash().bytes))
    const stats = (): { misses: number, seeded: number } => {
      const s = provider.services.dht.regionCache
      if (s == null) {
        throw new Error('no region cache')
      }
      return s
    }
    const before = stats()
    const first = await all(provider.services.dht.provide(a))
    expect(stats().misses - before.misses, 'the first provide looked its region up').to.equal(1)

    // stop every peer that answered that lookup but the k - 1 nearest to b:
    // the region then has fewer than k good peers
    const answered = [...new Set(findNodeResponders(first))]
    const bKey = kadKey(b.multihash.bytes)
    const byId = new Map(nodes.map(n => [n.peerId.toString(), n]))
    const nearest = answered.sort((x, y) => compareDistance(kadKey(byId.get(x)?.peerId.toMultihash().bytes ?? new Uint8Array()), kadKey(byId.get(y)?.peerId.toMultihash().bytes ?? new Uint8Array()), bKey))
    const keep = nearest.slice(0, K - 1)
    const stopped = nearest.slice(K - 1).map(id => byId.get(id)).filter((n): n is OurNode => n != null)
    expect(stopped.length, 'peers to stop').to.be.greaterThan(0)
    await Promise.all(stopped.map(async n => n.stop()))
    // their connections broke: the provider holds them back (no dial, no ping)
    await pWaitFor(() => stopped.every(n => (provider.services.dht.peerValue(n.peerId).backoffUntil ?? 0) > Date.now()), { timeout: 20_000, interval: 20 })

    const second = await all(provider.services.dht.provide(b))
    expect(stats().seeded - before.seeded, 'the second provide delivered to the region\'s good peers').to.equal(1)
    const firstDelivery = second.findIndex(e => e.name === 'PEER_RESPONSE' && e.messageType === MessageType.ADD_PROVIDER)
    // the provide may reach its quorum (the seeded peers and the lookup's
    // settled head) and report before its lookup's FINAL_PEER events: then
    // every event it yielded came before the lookup ended
    const finalAt = second.findIndex(e => e.name === 'FINAL_PEER')
    const lookupEnd = finalAt === -1 ? second.length : finalAt
    expect(firstDelivery, 'a delivery succeeded').to.be.at.least(0)
    expect(firstDelivery, 'the first delivery came before the lookup ended').to.be.below(lookupEnd)
    const delivered = second.flatMap(e => e.name === 'PEER_RESPONSE' && e.messageType === MessageType.ADD_PROVIDER ? [e.from.toString()] : [])
    expect(delivered.slice(0, keep.length), 'the first deliveries went to the good peers the region kept').to.have.members(keep)

    // the lookup goes on and corrects: every one of the true k closest live nodes gets the record
    const live = nodes.filter(n => n.status === 'started' && n !== provider)
    const closest = trueClosest(live.map(n => n.peerId), b.multihash.bytes, K)
    const storeOf = (id: string): MemoryDatastore => stores[nodes.findIndex(n => n.peerId.toString() === id)]
    await pWaitFor(async () => (await Promise.all(closest.map(async id => providesTo(storeOf(id), b, provider.peerId)))).every(Boolean), { timeout: 30_000, interval: 50 })
  })
})
