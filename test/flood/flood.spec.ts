/**
 * Floods on real nodes over TCP on 127.0.0.1 (see floods.ts), at sizes a test
 * can afford. Behaviour only, no timing: the honest peer's requests all
 * succeed and find its records during each flood, the flooder is refused or
 * reset, what the server holds stays bounded. Latency figures come from
 * `npm run flood` (benchmarks/flood.ts).
 */
import { expect } from 'aegir/chai'
import { MessageType } from '../../src/generated/dht.ts'
import { PROTOCOL, createHonest, createRawNode, createServer, floodProviders, floodRequests, floodStreams, multihashOf, probe, randomKey, request } from './floods.ts'
import type { Honest } from './floods.ts'
import type { PriorityDHTInit } from '../../src/index.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { Libp2p } from '@libp2p/interface'

describe('floods on a real node (TCP)', function () {
  this.timeout(120_000)
  let server: OurNode
  let honest: Honest
  const others: Libp2p[] = []

  async function setup (init: PriorityDHTInit = {}): Promise<void> {
    server = await createServer(init)
    honest = await createHonest(server)
  }

  async function flooder (): Promise<Libp2p> {
    const node = await createRawNode()
    others.push(node)
    return node
  }

  /** The honest peer's requests while `flood` runs: all succeed, all find its records */
  async function honestDuring (flood: (stop: AbortSignal) => Promise<unknown>): Promise<void> {
    const stop = new AbortController()
    const probing = probe(honest, server, { stop: stop.signal, gap: 20 })
    await flood(stop.signal)
    stop.abort()
    const result = await probing
    expect(result.failures).to.deep.equal([])
    expect(result.missing).to.equal(0)
    expect(result.latencies.length).to.be.greaterThan(0)
  }

  afterEach(async () => {
    await Promise.all([...others.splice(0), honest?.node, server].map(async n => n?.stop()))
  })

  it('one peer opening many streams over several connections holds at most maxStreamsPerPeer of them', async () => {
    await setup({ inbound: { maxStreamsPerPeer: 8 } })
    const bad = await flooder()
    const hold = new AbortController()
    let peak = 0
    await honestDuring(async () => {
      const flood = floodStreams(bad, server.getMultiaddrs(), 300, 3, hold.signal)
      for (let i = 0; i < 30; i++) {
        await new Promise(resolve => setTimeout(resolve, 50))
        const open = server.getConnections(bad.peerId).flatMap(c => c.streams).filter(s => s.protocol === PROTOCOL && s.direction === 'inbound' && s.status === 'open').length
        peak = Math.max(peak, open)
      }
      hold.abort()
      const result = await flood
      expect(result.resets).to.be.greaterThan(0)
    })
    expect(peak).to.be.at.most(8)
    expect(server.services.dht.inbound.refusedPeerStreams).to.be.greaterThan(0)
  })

  it('one peer sending requests as fast as it can is slowed, then reset, while the honest peer is served', async () => {
    // a stranger: after its light burst it waits for the strangers' pool, and 16
    // streams in parallel want more than 100 ms of the pool's future tokens
    await setup({ inbound: { strangerRequestsPerSecond: 100, strangerRequestBurst: 100, maxRequestDelay: 100 } })
    const bad = await flooder()
    await bad.dial(server.getMultiaddrs())
    let result
    await honestDuring(async () => {
      result = await floodRequests(bad, server.peerId, () => ({ type: MessageType.FIND_NODE, key: randomKey() }), { total: 1000, streams: 16 })
    })
    expect(result!.sent).to.equal(1000)
    // without the rate limit every request is answered and no stream is reset
    expect(result!.answered).to.be.lessThan(1000)
    expect(result!.resets).to.be.greaterThan(0)
    const stats = server.services.dht.inbound
    expect(stats.rateLimitedRequests).to.be.greaterThan(0)
    expect(stats.delayedRequests).to.be.greaterThan(0)
  })

  it('GET_VALUE and GET_PROVIDERS storms from several peers leave the honest peer served', async () => {
    await setup({ inbound: { strangerRequestsPerSecond: 100, strangerRequestBurst: 100, maxRequestDelay: 100 } })
    const bad = [await flooder(), await flooder(), await flooder()]
    for (const b of bad) {
      await b.dial(server.getMultiaddrs())
    }
    const results: Array<{ answered: number, sent: number }> = []
    await honestDuring(async () => {
      results.push(...await Promise.all(bad.map(async (b, i) => floodRequests(b, server.peerId, n => ({
        type: (n + i) % 2 === 0 ? MessageType.GET_VALUE : MessageType.GET_PROVIDERS,
        // the honest keys too: the storm reads the records the honest peer reads
        key: n % 10 === 0 ? honest.providerKey : randomKey()
      }), { total: 500, streams: 16 }))))
    })
    for (const r of results) {
      expect(r.answered).to.be.lessThan(r.sent)
    }
    expect(server.services.dht.inbound.rateLimitedRequests).to.be.greaterThan(0)
  })

  it('ADD_PROVIDER floods: one peer gets at most its quota stored; many peers never evict a held record', async () => {
    await setup({ providerQuota: { records: 50 }, providers: { maxKeys: 400 } })
    // one peer, 200 keys: only 50 are held for it
    const bad = await flooder()
    const keys = await Promise.all(Array.from({ length: 200 }, async (_, i) => multihashOf(`flood-${i}`)))
    await floodRequests(bad, server.getMultiaddrs(), i => ({ type: MessageType.ADD_PROVIDER, key: keys[i], providerPeers: [{ id: bad.peerId.toMultihash().bytes, addrs: [] }] }), { total: 200, streams: 1, answers: false })
    const asker = await flooder()
    await asker.dial(server.getMultiaddrs())
    let held = 0
    for (const key of keys) {
      const res = await request(asker, server.peerId, { type: MessageType.GET_PROVIDERS, key })
      held += res.providerPeers.length
    }
    expect(held).to.equal(50)
    expect(server.services.dht.inbound.droppedProviders).to.equal(150)

    // 20 more peers, 100 random keys each, more than the store holds: the honest record stays
    await honestDuring(async () => {
      const r = await floodProviders(server.getMultiaddrs(), 20, 100, 4)
      // the store refuses keys beyond maxKeys (ProviderStoreFullError resets the stream)
      expect(r.resets).to.be.greaterThan(0)
    })
    const res = await request(asker, server.peerId, { type: MessageType.GET_PROVIDERS, key: honest.providerKey })
    expect(res.providerPeers.map(p => Array.from(p.id).join())).to.include(Array.from(honest.node.peerId.toMultihash().bytes).join())
  })

  it('many fresh peer ids sending as fast as they can share one rate: the pool paces and then refuses them, the honest peer is served', async () => {
    // each id's own rate (requestsPerSecond, 1000 by default) is never reached: only the shared pool can hold them back
    await setup({ inbound: { strangerRequestsPerSecond: 200, strangerRequestBurst: 100, lightRequestBurst: 20, maxRequestDelay: 100 } })
    let result
    await honestDuring(async () => {
      result = await floodProviders(server.getMultiaddrs(), 20, 200, 8, undefined, 4)
    })
    expect(result!.peers).to.equal(20)
    const stats = server.services.dht.inbound
    expect(stats.pooledRequests).to.be.greaterThan(0)
    expect(stats.rateLimitedRequests).to.be.greaterThan(0)
    expect(result!.resets).to.be.greaterThan(0)
  })

  it('rejects invalid limits at construction', async () => {
    for (const init of [{ inbound: { maxStreamsPerPeer: 0 } }, { inbound: { requestsPerSecond: 0.5 } }, { inbound: { maxRequestDelay: -1 } }, { inbound: { strangerRequestsPerSecond: 0 } }, { providerQuota: { records: 0 } }] as PriorityDHTInit[]) {
      let failed: any
      try {
        const node = await createServer(init)
        await node.stop()
      } catch (err) {
        failed = err
      }
      expect(failed?.name, JSON.stringify(init)).to.equal('InvalidParametersError')
    }
  })
})
