/**
 * The region cache on a 22-node network: a burst of single provides into one
 * keyspace region costs one lookup, concurrently and one after another; a
 * cached region's peer in back-off gets nothing; a region past its freshness
 * window is looked up again.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { commonPrefixLength } from '../../src/core/key.ts'
import { MessageType } from '../../src/generated/dht.ts'
import { kadKey } from '../../src/libp2p/peer-info.ts'
import { createOurNode, providesTo, startNetworkWithStores, stopAll, trueClosest } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { QueryEvent } from '../../src/index.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { ProgressEvent } from 'progress-events'

const N = 22
const K = 6
const FRESH = 300_000

/** `n` CIDs whose Kademlia keys share their first `bits` bits with the first one's */
async function regionCids (prefix: string, n: number, bits = 8): Promise<CID[]> {
  const out: CID[] = []
  let first: Uint8Array | undefined
  for (let i = 0; out.length < n; i++) {
    const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`${prefix}-${i}`)))
    const key = kadKey(cid.multihash.bytes)
    first ??= key
    if (commonPrefixLength(key, first) >= bits) {
      out.push(cid)
    }
  }
  return out
}

async function finds (node: OurNode, cid: CID, provider: OurNode): Promise<boolean> {
  for await (const p of node.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(20_000) })) {
    if (p.id.equals(provider.peerId)) {
      return true
    }
  }
  return false
}

/** Counts the FIND_NODE requests a call sends (its lookups' SEND_QUERY events) */
function findNodeCounter (): { count: number, onProgress(evt: ProgressEvent<any, any>): void } {
  const counter = {
    count: 0,
    onProgress: (evt: ProgressEvent<any, any>) => {
      const e = evt.detail as QueryEvent
      if (e?.name === 'SEND_QUERY' && e.messageType === MessageType.FIND_NODE) {
        counter.count++
      }
    }
  }
  return counter
}

describe('libp2p/regions: single provides reuse fresh keyspace regions', function () {
  this.timeout(300_000)
  let nodes: OurNode[] = []
  let stores: MemoryDatastore[] = []
  let offset = 0

  /** Where `cid`'s record from `provider` is, for a failed find: which true k closest hold it, and what their inbound limits refused */
  async function whereIs (cid: CID, provider: OurNode, seeker: OurNode): Promise<string> {
    const closest = trueClosest(nodes.map(n => n.peerId), cid.multihash.bytes, K)
    const held = await Promise.all(nodes.map(async (n, i) => await providesTo(stores[i], cid, provider.peerId) ? i : -1))
    const holders = held.filter(i => i >= 0)
    const closeIdx = closest.map(id => nodes.findIndex(n => n.peerId.toString() === id))
    const refused = closeIdx.map(i => { const s = nodes[i].services.dht.inbound; return `${i}:${s.rateLimitedRequests}/${s.refusedStreams + s.refusedPeerStreams}/${s.droppedProviders}` })
    return `${cid.toString()} not found by node ${nodes.indexOf(seeker)}: held by ${JSON.stringify(holders)}, true ${K} closest ${JSON.stringify(closeIdx)}, refused (rate/streams/quota) ${refused.join(' ')}, seeker backs off ${closeIdx.filter(i => seeker.services.dht.peerValue(nodes[i].peerId).backoffUntil != null).length} of them`
  }

  before(async () => {
    // one clock for every node's region cache, moved forward by the staleness test (no sleeping)
    // a quorum of k: a provide that looks its key up reports once its lookup
    // has ended, so its events name the k targets (with a smaller quorum it
    // may report at the lookup's settled head, before its FINAL_PEER events)
    const net = await startNetworkWithStores(N, { kBucketSize: K, putQuorum: K, regionCache: { freshFor: FRESH, now: () => Date.now() + offset } })
    nodes = net.nodes
    stores = net.stores
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('a burst of 50 provides into one region does one lookup, concurrently and sequentially, and every CID is found by another node', async () => {
    const provider = nodes[3]
    const list = await regionCids('burst', 50)
    const before = provider.services.dht.regionCache
    expect(before, 'the region cache is on by default').to.not.equal(undefined)
    const counter = findNodeCounter()
    // 25 at once, then 25 one after another
    await Promise.all(list.slice(0, 25).map(async cid => provider.contentRouting.provide(cid, { onProgress: counter.onProgress })))
    for (const cid of list.slice(25)) {
      await provider.contentRouting.provide(cid, { onProgress: counter.onProgress })
    }
    const after = provider.services.dht.regionCache
    if (before == null || after == null) {
      throw new Error('no region cache stats')
    }
    const misses = after.misses - before.misses
    const placed = (after.hits - before.hits) + (after.joined - before.joined)
    expect(misses, 'lookups run by the 50 provides').to.be.at.most(1)
    expect(misses + placed).to.equal(50)
    // one lookup on 22 nodes sends at most about N FIND_NODE requests; one per provide would be hundreds
    expect(counter.count, 'FIND_NODE requests sent by the 50 provides').to.be.at.most(N)
    // ADD_PROVIDER has no answer: a provide resolves once its messages are
    // written, and the holders may not have read them yet (50 from one
    // sender, paced by their inbound limits). A seeker asking a holder before
    // that finds nothing, which is the protocol, not a lost record: wait
    // until k nodes besides the provider hold each record, then look
    const holders = async (cid: CID): Promise<number> => (await Promise.all(stores.map(async (s, i) => nodes[i] !== provider && await providesTo(s, cid, provider.peerId)))).filter(Boolean).length
    await pWaitFor(async () => (await Promise.all(list.map(holders))).every(n => n >= K), { timeout: 30_000, interval: 50 }).catch(async () => {
      const short = (await Promise.all(list.map(async cid => ({ cid: cid.toString(), held: await holders(cid) })))).filter(x => x.held < K)
      throw new Error(`records on fewer than ${K} nodes 30 s after the provides resolved: ${JSON.stringify(short)}`)
    })
    const missed: string[] = []
    for (let i = 0; i < list.length; i++) {
      const next = nodes[(i % (N - 1) + 4) % N]
      const seeker = next === provider ? nodes[0] : next
      if (!await finds(seeker, list[i], provider)) {
        missed.push(await whereIs(list[i], provider, seeker))
      }
    }
    expect(missed, 'CIDs another node did not find').to.deep.equal([])
  })

  it('a cached region peer in back-off does not get the record; the next good peer does', async () => {
    const provider = nodes[5]
    const [a, b] = await regionCids('backoff', 2, 10)
    // a's provide looks the region up (or reuses it): its FINAL_PEER events
    // name the targets; a provide seeded from a region with fewer than k good
    // peers may reach its quorum before its lookup's FINAL_PEER events, and
    // then its ADD_PROVIDER answers name them
    const first = await all(provider.services.dht.provide(a))
    const targets = [...new Set(first.flatMap(e => {
      if (e.name === 'FINAL_PEER') {
        return [e.peer.id.toString()]
      }
      return e.name === 'PEER_RESPONSE' && e.messageType === MessageType.ADD_PROVIDER ? [e.from.toString()] : []
    }))]
    expect(targets).to.have.length.at.least(K)
    const victimId = targets.find(id => nodes.findIndex(n => n.peerId.toString() === id) > 7)
    const victim = nodes.find(n => n.peerId.toString() === victimId)
    if (victim == null || victimId == null) {
      throw new Error('no target to stop')
    }
    await victim.stop()
    // a GET_PROVIDERS lookup (which feeds no region) meets the stopped peer: the peer stack backs it off
    for (let i = 0; i < 3 && provider.services.dht.peerValue(victim.peerId).backoffUntil == null; i++) {
      await all(provider.contentRouting.findProviders(b, { signal: AbortSignal.timeout(20_000) })).catch(() => {})
    }
    expect(provider.services.dht.peerValue(victim.peerId).backoffUntil ?? 0, 'the stopped peer is in back-off').to.be.greaterThan(Date.now())
    const before = provider.services.dht.regionCache?.misses ?? 0
    const events = await all(provider.services.dht.provide(b))
    const named = new Set(events.flatMap(e => {
      if (e.name === 'FINAL_PEER') {
        return [e.peer.id.toString()]
      }
      return e.name === 'PEER_RESPONSE' || e.name === 'QUERY_ERROR' ? [e.from.toString()] : []
    }))
    expect(named.has(victimId), 'the peer in back-off was targeted').to.equal(false)
    const finals = events.filter(e => e.name === 'FINAL_PEER')
    expect(finals).to.have.length(K)
    expect(events.filter(e => e.name === 'PEER_RESPONSE' && e.messageType === MessageType.ADD_PROVIDER)).to.have.length.at.least(K)
    // served from the region (its other peers are still good) or a fresh lookup: at most one
    expect((provider.services.dht.regionCache?.misses ?? 0) - before).to.be.at.most(1)
    expect(await finds(nodes[1], b, provider)).to.equal(true)
  })

  it('after the freshness window a provide looks its region up again', async () => {
    const provider = nodes[7]
    const [a, b, c] = await regionCids('stale', 3, 10)
    await provider.contentRouting.provide(a)
    const warm = provider.services.dht.regionCache
    await provider.contentRouting.provide(b)
    const fresh = provider.services.dht.regionCache
    offset += FRESH + 1
    await provider.contentRouting.provide(c)
    const stale = provider.services.dht.regionCache
    if (warm == null || fresh == null || stale == null) {
      throw new Error('no region cache stats')
    }
    expect(fresh.misses - warm.misses, 'within the window: no lookup').to.equal(0)
    expect(fresh.hits - warm.hits).to.equal(1)
    expect(stale.misses - fresh.misses, 'past the window: a lookup').to.equal(1)
    expect(stale.stale - fresh.stale).to.equal(1)
    expect(await finds(nodes[2], c, provider)).to.equal(true)
  })
})

describe('libp2p/regions: a server that joins a cached region', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  after(async () => {
    await stopAll(nodes)
  })

  it('a provide after it entered the routing table looks the region up again and reaches it', async () => {
    const k = 3
    // no handover: the joiner would get the record from its holders, whatever the provide did
    const init = { kBucketSize: k, durability: { handover: false } }
    const net = await startNetworkWithStores(7, init)
    nodes = net.nodes
    const servers = net.nodes
    // a joiner's key, and a provider whose bucket for it has room (so the joiner enters its table)
    let joinerKey: PrivateKey | undefined
    let provider: OurNode | undefined
    for (let i = 0; i < 200 && provider == null; i++) {
      joinerKey = await generateKeyPair('Ed25519')
      const j = kadKey(peerIdFromPrivateKey(joinerKey).toMultihash().bytes)
      provider = servers.find(p => {
        const self = kadKey(p.peerId.toMultihash().bytes)
        return servers.filter(o => o !== p && commonPrefixLength(self, kadKey(o.peerId.toMultihash().bytes)) === commonPrefixLength(self, j)).length < k
      })
    }
    if (joinerKey == null || provider == null) {
      throw new Error('no joiner key with a provider that has room for it')
    }
    const joinerId = peerIdFromPrivateKey(joinerKey)
    const everyone = [...nodes.map(n => n.peerId), joinerId]
    // two CIDs near the joiner's key, the joiner among the k closest of each once it has joined
    const near: CID[] = []
    for (let i = 0; near.length < 2; i++) {
      const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`joiner-${i}`)))
      if (commonPrefixLength(kadKey(cid.multihash.bytes), kadKey(joinerId.toMultihash().bytes)) >= 6 && trueClosest(everyone, cid.multihash.bytes, k).includes(joinerId.toString())) {
        near.push(cid)
      }
    }
    // the first provide looks the region up: the joiner is not there yet
    await provider.contentRouting.provide(near[0])
    const learned = provider.services.dht.regionCache
    const joinerStore = new MemoryDatastore()
    const joiner = await createOurNode(init, { privateKey: joinerKey, datastore: joinerStore })
    nodes.push(joiner)
    await joiner.dial(nodes[0].getMultiaddrs())
    await pWaitFor(() => joiner.services.dht.routingTable.size > 0, { timeout: 10_000 })
    await joiner.services.dht.refreshRoutingTable()
    await pWaitFor(() => provider.services.dht.routingTable.peers().includes(joinerId.toString()), { timeout: 20_000, interval: 50 })
    // the second provide, well within the region's freshness: the region no longer holds every peer near it
    await provider.contentRouting.provide(near[1])
    const after = provider.services.dht.regionCache
    if (learned == null || after == null) {
      throw new Error('no region cache stats')
    }
    expect(after.outdated - learned.outdated, 'regions dropped for the joiner').to.be.at.least(1)
    expect(after.misses - learned.misses, 'the second provide looked its key up').to.equal(1)
    await pWaitFor(async () => providesTo(joinerStore, near[1], provider.peerId), { timeout: 10_000, interval: 50 })
  })
})
