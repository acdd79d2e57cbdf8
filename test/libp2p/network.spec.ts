import { expect } from 'aegir/chai'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { createOurNode, startNetwork, stopAll, tableGaps, trueClosest } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'

const N = 24
const K = 6

describe('libp2p/network: a network of priority-dht nodes over TCP', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('only DHT servers are in the routing tables, never the node itself', () => {
    const all = new Set(nodes.map(n => n.peerId.toString()))
    for (const n of nodes) {
      const peers = n.services.dht.routingTable.peers()
      expect(peers).to.not.include(n.peerId.toString())
      for (const p of peers) {
        expect(all.has(p)).to.equal(true)
      }
    }
  })

  it('getClosestPeers returns exactly the k closest of the node set', async () => {
    const ids = nodes.map(n => n.peerId)
    for (let i = 0; i < 8; i++) {
      const from = nodes[(i * 7) % N]
      const key = new TextEncoder().encode(`key-${i}`)
      const found = await all(from.peerRouting.getClosestPeers(key))
      const others = ids.filter(id => !id.equals(from.peerId))
      expect(found.map(p => p.id.toString())).to.deep.equal(trueClosest(others, key, K))
      for (const p of found) {
        expect(p.multiaddrs.length).to.be.greaterThan(0)
      }
    }
  })

  it('findPeer finds every node through the network', async () => {
    for (let i = 0; i < N; i++) {
      const from = nodes[i]
      const target = nodes[(i + 11) % N]
      const info = await from.peerRouting.findPeer(target.peerId, { useCache: false })
      expect(info.id.equals(target.peerId)).to.equal(true)
      expect(info.multiaddrs.map(String)).to.include.members(target.getMultiaddrs().map(ma => ma.decapsulateCode(421).toString()))
    }
  })

  it('query events have the `@libp2p/kad-dht` shapes', async () => {
    const events = await all(nodes[3].services.dht.getClosestPeers(new Uint8Array([1, 2, 3])))
    const names = new Set(events.map(e => e.name))
    expect(names).to.include('SEND_QUERY')
    expect(names).to.include('PEER_RESPONSE')
    expect(names).to.include('FINAL_PEER')
    const response = events.find(e => e.name === 'PEER_RESPONSE')
    expect(response).to.have.property('type', 1)
    expect(response).to.have.property('messageName', 'FIND_NODE')
    expect(events.filter(e => e.name === 'FINAL_PEER')).to.have.length(K)
  })

  it('an aborted query stops with the abort reason', async () => {
    const controller = new AbortController()
    controller.abort(new Error('enough'))
    await expect(all(nodes[0].services.dht.getClosestPeers(new Uint8Array([9]), { signal: controller.signal }))).to.eventually.be.rejectedWith('enough')
  })

  it('refreshRoutingTable fills every bucket as far as the network allows; a lookup after stop rejects with ServiceStoppedError', async () => {
    const joiner = await createOurNode({ kBucketSize: K })
    try {
      await joiner.dial(nodes[0].getMultiaddrs())
      await pWaitFor(() => joiner.services.dht.routingTable.size > 0, { timeout: 10_000 })
      await joiner.services.dht.refreshRoutingTable()
      const short = tableGaps(joiner, nodes, K)
      expect(short, 'buckets short of what the network holds').to.deep.equal([])
    } finally {
      await joiner.stop()
    }
    await expect(all(joiner.services.dht.getClosestPeers(new Uint8Array([9])))).to.eventually.be.rejected.with.property('name', 'ServiceStoppedError')
  })
})
