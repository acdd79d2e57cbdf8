/**
 * Optimistic placement through the libp2p adapter: on a 60-node network a
 * provide delivers to peers that answered its lookup and are expected among
 * the k closest before the lookup has finished, and once it has (the rest
 * runs in the background) every one of the true k closest holds the record.
 */
import { expect } from 'aegir/chai'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { MessageType } from '../../src/generated/dht.ts'
import { startNetwork, stopAll, trueClosest } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'

// k small enough that 60 nodes are above optimistic placement's minimum of 10 k
const N = 60
const K = 4

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(text)))
}

/** Whether `node` holds a provider record of `provider` for `cid` in its own store */
async function holds (node: OurNode, cid: CID, provider: OurNode): Promise<boolean> {
  for await (const event of node.services.dht.findProviders(cid)) {
    if (event.name === 'PROVIDER') {
      return event.from.equals(node.peerId) && event.providers.some(p => p.id.equals(provider.peerId))
    }
    if (event.name === 'SEND_QUERY') {
      return false // nothing local: the search went to the network
    }
  }
  return false
}

describe('libp2p/optimistic: provides deliver before the lookup ends and still reach the true k closest', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  before(async () => {
    // no region cache: every provide runs its own lookup
    nodes = await startNetwork(N, { kBucketSize: K, regionCache: false })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('some ADD_PROVIDER goes out before the lookup ends, and every one of the true k closest ends up with the record', async () => {
    let beforeEnd = 0
    for (let i = 0; i < 6; i++) {
      const cid = await cidOf(`optimistic-${i}`)
      const provider = nodes[(i * 5) % N]
      let finalSeen = false
      for await (const event of provider.services.dht.provide(cid)) {
        if (event.name === 'FINAL_PEER') {
          finalSeen = true
        }
        if (event.name === 'PEER_RESPONSE' && event.messageType === MessageType.ADD_PROVIDER && !finalSeen) {
          beforeEnd++
        }
      }
      const closest = trueClosest(nodes.map(n => n.peerId).filter(id => !id.equals(provider.peerId)), cid.multihash.bytes, K)
      const holders = nodes.filter(n => closest.includes(n.peerId.toString()))
      // the background part (the end of the lookup, the last deliveries) finishes shortly
      await pWaitFor(async () => (await Promise.all(holders.map(async h => holds(h, cid, provider)))).every(Boolean), { timeout: 15_000, interval: 100 })
    }
    expect(beforeEnd).to.be.above(0)
  })
})
