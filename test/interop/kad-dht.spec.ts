/**
 * Mixed networks of priority-dht and `@libp2p/kad-dht` nodes over TCP: each
 * implementation's findPeer and getClosestPeers must work through the other's
 * nodes.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { connectToBootstraps, createOurNode, createTheirNode, routingTableSize, stopAll, trueClosest, waitForTables } from '../libp2p/fixtures/network.ts'
import { ipnsKey, ipnsRecord } from '../records/fixtures.ts'
import { cidOf, providersOf, take } from './fixtures/helpers.ts'
import type { AnyNode, OurNode, TheirNode } from '../libp2p/fixtures/network.ts'

const K = 4

describe('interop with `@libp2p/kad-dht`', function () {
  this.timeout(120_000)

  describe('a chain: ours -> theirs -> theirs, and theirs -> ours -> ours', () => {
    let nodes: AnyNode[] = []

    afterEach(async () => {
      await stopAll(nodes)
      nodes = []
    })

    it('our findPeer reaches a peer only their nodes know', async () => {
      const a = await createOurNode({ kBucketSize: K })
      const b = await createTheirNode({ kBucketSize: K })
      const c = await createTheirNode({ kBucketSize: K })
      nodes = [a, b, c]
      // a meets b while b knows nobody else, so a's own lookups cannot learn c
      await a.dial(b.getMultiaddrs())
      await pWaitFor(() => routingTableSize(a) >= 1 && routingTableSize(b) >= 1, { timeout: 20_000 })
      await a.services.dht.refreshRoutingTable()
      await b.dial(c.getMultiaddrs())
      await pWaitFor(() => routingTableSize(b) >= 2, { timeout: 20_000 })
      await a.hangUp(b.peerId) // a must now dial by what the network tells it
      expect(a.services.dht.routingTable.peers()).to.not.include(c.peerId.toString())
      const info = await a.peerRouting.findPeer(c.peerId, { useCache: false })
      expect(info.id.equals(c.peerId)).to.equal(true)
      expect(info.multiaddrs.length).to.be.greaterThan(0)
    })

    it('their findPeer reaches a peer only our nodes know', async () => {
      const x = await createTheirNode({ kBucketSize: K })
      const y = await createOurNode({ kBucketSize: K })
      const z = await createOurNode({ kBucketSize: K })
      nodes = [x, y, z]
      await y.dial(z.getMultiaddrs())
      await x.dial(y.getMultiaddrs())
      await pWaitFor(() => routingTableSize(x) >= 1 && routingTableSize(y) >= 2, { timeout: 20_000 })
      const info = await x.peerRouting.findPeer(z.peerId, { useCache: false })
      expect(info.id.equals(z.peerId)).to.equal(true)
      expect(info.multiaddrs.length).to.be.greaterThan(0)
    })
  })

  describe('a mixed network of 10 + 10 nodes', () => {
    let ours: OurNode[] = []
    let theirs: TheirNode[] = []
    let everyone: AnyNode[] = []

    before(async () => {
      ours = await Promise.all(Array.from({ length: 10 }, async () => createOurNode({ kBucketSize: K })))
      theirs = await Promise.all(Array.from({ length: 10 }, async () => createTheirNode({ kBucketSize: K })))
      // interleave so bootstraps are one of each
      everyone = ours.flatMap((o, i) => [theirs[i], o])
      await connectToBootstraps(everyone, 2)
      await waitForTables(everyone, K)
      // a network that has refreshed its tables once, as every node does
      // soon after start: right after the tables hold k peers, the last
      // nodes to join are not yet in the tables of all their neighbours
      // (3 of 125 of our lookups then missed one of them; 0 of 125 after)
      await Promise.all(everyone.map(async n => n.services.dht.refreshRoutingTable()))
    })

    after(async () => {
      await stopAll(everyone)
    })

    it('our getClosestPeers returns the true k closest across both implementations', async () => {
      const ids = everyone.map(n => n.peerId)
      for (let i = 0; i < 5; i++) {
        const from = ours[i]
        const key = new TextEncoder().encode(`mixed-${i}`)
        const found = await all(from.peerRouting.getClosestPeers(key))
        expect(found.map(p => p.id.toString())).to.deep.equal(trueClosest(ids.filter(id => !id.equals(from.peerId)), key, K))
      }
    })

    it('their getClosestPeers finds our nodes among the closest', async () => {
      const ids = everyone.map(n => n.peerId)
      const ourIds = new Set(ours.map(n => n.peerId.toString()))
      let hits = 0
      let ourHits = 0
      const queries = 5
      for (let i = 0; i < queries; i++) {
        const from = theirs[i]
        const key = new TextEncoder().encode(`theirs-${i}`)
        const found = (await all(from.peerRouting.getClosestPeers(key))).map(p => p.id.toString())
        const truth = trueClosest(ids.filter(id => !id.equals(from.peerId)), key, K)
        expect(found.length).to.be.at.least(K)
        const hit = truth.filter(id => found.includes(id))
        hits += hit.length
        ourHits += hit.filter(id => ourIds.has(id)).length
      }
      // `@libp2p/kad-dht` is not exact on its own: in all-kad-dht networks of
      // this shape (20 nodes, k = 4) it missed one or more of the true k closest
      // in 7 of 100 queries (98% of the true closest found); the same queries
      // through a mixed network missed in 2 of 60. Hold it to 75% here, and it
      // must find our nodes among them.
      expect(hits).to.be.at.least(Math.ceil(0.75 * queries * K))
      expect(ourHits).to.be.greaterThan(0)
    })

    it('provide and findProviders work in both directions', async () => {
      for (let i = 0; i < 4; i++) {
        const ourCid = await cidOf(`ours-provides-${i}`)
        await ours[i].contentRouting.provide(ourCid)
        const them = theirs[(i + 5) % 10]
        const us = ours[(i + 5) % 10]
        const foundByThem = await providersOf(async () => all(take(them.contentRouting.findProviders(ourCid), 1)))
        expect(foundByThem.map(p => p.id.toString())).to.include(ours[i].peerId.toString())

        const theirCid = await cidOf(`theirs-provides-${i}`)
        await theirs[i].contentRouting.provide(theirCid)
        const foundByUs = await providersOf(async () => all(us.contentRouting.findProviders(theirCid)))
        expect(foundByUs.map(p => p.id.toString())).to.include(theirs[i].peerId.toString())
      }
    })

    it('IPNS put and get work in both directions, newer sequence winning', async () => {
      const key = await generateKeyPair('Ed25519')
      const name = ipnsKey(key)
      const v1 = await ipnsRecord(key, 1)
      await ours[1].contentRouting.put(name, v1)
      expect(await theirs[6].contentRouting.get(name)).to.equalBytes(v1)

      const v2 = await ipnsRecord(key, 2)
      await theirs[2].contentRouting.put(name, v2)
      expect(await ours[7].contentRouting.get(name)).to.equalBytes(v2)
    })

    it('findPeer works in both directions across the mixed network', async () => {
      for (let i = 0; i < 10; i++) {
        const a = ours[i]
        const b = theirs[(i + 3) % 10]
        expect((await a.peerRouting.findPeer(b.peerId, { useCache: false })).id.equals(b.peerId)).to.equal(true)
        expect((await b.peerRouting.findPeer(a.peerId, { useCache: false })).id.equals(a.peerId)).to.equal(true)
      }
    })
  })
})
