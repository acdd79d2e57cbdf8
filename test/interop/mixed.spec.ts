/**
 * One network of four implementations over TCP on 127.0.0.1: 12 priority-dht
 * nodes, 4 go-libp2p-kad-dht v0.42.2 peers, 4 rust-libp2p 0.57.1 peers and 4
 * `@libp2p/kad-dht` nodes, all with k = 20 (Go refuses any other bucket size
 * under /ipfs). With 24 nodes the 20 closest are a real choice: the lookup
 * of every implementation must return exactly the true 20 closest of the
 * whole set, and a provide by each implementation must be found by every
 * other.
 *
 * It needs both `go` and `cargo`; without one of them it is skipped, except
 * under CI (`CI=true`), where a missing toolchain fails it.
 */
import { expect } from 'aegir/chai'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { createOurNode, createTheirNode, stopAll, trueClosest } from '../libp2p/fixtures/network.ts'
import { buildGoPeer, goVersion, GoPeer } from './fixtures/go-peer.ts'
import { cidOf, requireToolchains, take } from './fixtures/helpers.ts'
import { buildRustPeer, cargoVersion, RustPeer } from './fixtures/rust-peer.ts'
import type { LinePeer } from './fixtures/line-peer.ts'
import type { AnyNode, OurNode } from '../libp2p/fixtures/network.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const K = 20

/** One participant, whatever its implementation, seen through the operations the spec uses */
interface Member {
  impl: 'ours' | 'go' | 'rust' | 'kad-dht'
  id: PeerId
  provide(cid: CID): Promise<void>
  findProviders(cid: CID): Promise<string[]>
  closest(key: Uint8Array): Promise<string[]>
  tableSize(): Promise<number>
}

function jsMember (impl: 'ours' | 'kad-dht', node: AnyNode): Member {
  return {
    impl,
    id: node.peerId,
    provide: async cid => { await node.contentRouting.provide(cid) },
    findProviders: async cid => (await all(take(node.contentRouting.findProviders(cid), 1))).map(p => p.id.toString()),
    closest: async key => (await all(node.peerRouting.getClosestPeers(key))).map(p => p.id.toString()),
    tableSize: async () => (node.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
  }
}

function lineMember (impl: 'go' | 'rust', peer: LinePeer): Member {
  return {
    impl,
    id: peer.id,
    provide: async cid => { await peer.provide(cid) },
    findProviders: async cid => (await peer.findProviders(cid, 1)).map(p => p.id.toString()),
    closest: async key => peer.closest(key),
    tableSize: async () => (await peer.routingTable()).length
  }
}

describe('a mixed network: priority-dht, go-libp2p-kad-dht, rust-libp2p and @libp2p/kad-dht', function () {
  this.timeout(120_000)

  let goPeers: GoPeer[] = []
  let rustPeers: RustPeer[] = []
  let jsNodes: AnyNode[] = []
  const members: Member[] = []

  before(async function () {
    this.timeout(25 * 60_000)
    const missing = [(await goVersion()) == null ? 'go' : undefined, (await cargoVersion()) == null ? 'cargo' : undefined].filter(t => t != null)
    requireToolchains(this, missing, 'mixed-network interop')
    await buildGoPeer()
    await buildRustPeer()
    goPeers = await Promise.all(Array.from({ length: 4 }, async () => GoPeer.start()))
    rustPeers = await Promise.all(Array.from({ length: 4 }, async () => RustPeer.start({ k: K })))
    const ours = await Promise.all(Array.from({ length: 12 }, async () => createOurNode()))
    const theirs = await Promise.all(Array.from({ length: 4 }, async () => createTheirNode()))
    jsNodes = [...ours, ...theirs]
    members.push(
      ...ours.map(n => jsMember('ours', n)),
      ...goPeers.map(p => lineMember('go', p)),
      ...rustPeers.map(p => lineMember('rust', p)),
      ...theirs.map(n => jsMember('kad-dht', n))
    )
    // everyone bootstraps off two of ours
    const bootstraps = ours.slice(0, 2)
    await ours[1].dial(ours[0].getMultiaddrs())
    for (const node of [...ours.slice(2), ...theirs]) {
      for (const b of bootstraps) {
        await node.dial(b.getMultiaddrs())
      }
    }
    for (const peer of [...goPeers, ...rustPeers]) {
      for (const b of bootstraps) {
        await peer.connect(b.getMultiaddrs()[0])
      }
    }
    // half full tables are enough to start from: the lookups under test do the rest
    let sizes: number[] = []
    await pWaitFor(async () => (sizes = await Promise.all(members.map(async m => m.tableSize()))).every(size => size >= K / 2), { timeout: 60_000, interval: 200 })
      .catch(err => { throw new Error(`routing tables did not fill: ${members.map((m, i) => `${m.impl} ${sizes[i]}`).join(', ')}`, { cause: err }) })
    // then a refresh everywhere, as on a network that has run a while (Go
    // refreshes by itself when its table is small): the last to join are
    // not yet known to the first, and a lookup asking only those misses
    // them (from ours, 2 of the true 20 closest once in a clean-clone run)
    await Promise.all([
      ...jsNodes.map(async n => (n.services.dht as { refreshRoutingTable(): Promise<void> }).refreshRoutingTable()),
      ...rustPeers.map(async p => p.bootstrap())
    ])
  })

  after(async () => {
    await stopAll(jsNodes)
    await Promise.all([...goPeers, ...rustPeers].map(async p => p.stop()))
  })

  for (const impl of ['ours', 'go', 'rust', 'kad-dht'] as const) {
    it(`getClosestPeers from ${impl} returns exactly the true ${K} closest of all 24`, async () => {
      const ids = members.map(m => m.id)
      const from = members.filter(m => m.impl === impl)
      for (let i = 0; i < 3; i++) {
        const m = from[i % from.length]
        const key = new TextEncoder().encode(`mixed-closest-${impl}-${i}`)
        const found = await m.closest(key)
        expect(found, `from ${impl} ${m.id.toString()}`).to.have.members(trueClosest(ids.filter(id => !id.equals(m.id)), key, K))
      }
    })
  }

  it('a provideMany by ours (batches closed by an answered request) is found by every other implementation', async () => {
    // provideMany writes ADD_PROVIDER in batches, each closed by a request
    // whose answer says the batch was served: every implementation must
    // answer it on the same stream (libp2p-kad closes the stream on PING)
    const provider = jsNodes.find(n => members.find(m => m.impl === 'ours' && m.id.equals(n.peerId)) != null) as OurNode
    const cids = await Promise.all(Array.from({ length: 300 }, async (_, i) => cidOf(`mixed-provide-many-${i}`)))
    const result = await provider.services.dht.provideMany(cids)
    expect(result.provided, 'keys some peer took').to.equal(cids.length)
    expect(result.failures, 'deliveries that failed (a batch whose closing request was not answered)').to.equal(0)
    for (const other of ['go', 'rust', 'kad-dht'] as const) {
      const finder = members.filter(m => m.impl === other).at(-1) as Member
      for (const cid of [cids[0], cids[150], cids[299]]) {
        let found: string[] = []
        await pWaitFor(async () => (found = await finder.findProviders(cid)).length > 0, { timeout: 10_000, interval: 100 }).catch(() => {})
        expect(found, `provideMany looked up by ${other}`).to.deep.equal([provider.peerId.toString()])
      }
    }
  })

  for (const impl of ['ours', 'go', 'rust', 'kad-dht'] as const) {
    it(`a provide by ${impl} is found by every other implementation`, async () => {
      const provider = members.find(m => m.impl === impl)
      if (provider == null) {
        throw new Error(`no ${impl} member`)
      }
      const cid = await cidOf(`mixed-provide-by-${impl}`)
      await provider.provide(cid)
      for (const other of ['ours', 'go', 'rust', 'kad-dht'].filter(x => x !== impl)) {
        const finder = members.filter(m => m.impl === other).at(-1)
        if (finder == null) {
          throw new Error(`no ${other} member`)
        }
        // ADD_PROVIDER has no response: a holder stores it a moment after
        // the provider reports done, so ask until someone is named (10 s)
        let found: string[] = []
        await pWaitFor(async () => (found = await finder.findProviders(cid)).length > 0, { timeout: 10_000, interval: 100 }).catch(() => {})
        expect(found, `${impl}'s provide looked up by ${other}`).to.deep.equal([provider.id.toString()])
      }
    })
  }
})
