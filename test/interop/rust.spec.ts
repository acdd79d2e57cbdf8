/**
 * A network of rust-libp2p 0.57.1 / libp2p-kad 0.49 peers
 * (test/interop/rust-peer, Kademlia on /ipfs/kad/1.0.0 in explicit server
 * mode) and priority-dht nodes over TCP on 127.0.0.1, with k = 4 on both
 * sides so that the true k closest of the mixed set is a real check: every
 * operation in both directions.
 *
 * libp2p-kad stores inbound records unfiltered (its default,
 * `StoreInserts::Unfiltered`): a Rust peer keeps and serves a forged or
 * expired IPNS record, or a key in a namespace nobody validates, where Go and
 * we refuse them. The tests below name what Rust accepts and we reject.
 *
 * The spec builds the Rust peer itself into `.cache/rust/` (see
 * fixtures/rust-peer.ts). Without `cargo` on the PATH it is skipped, except
 * under CI (`CI=true`), where a missing toolchain fails it.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { createOurNode, stopAll, trueClosest } from '../libp2p/fixtures/network.ts'
import { expiredIpnsRecord, ipnsKey, ipnsRecord, pkRecord, tamper } from '../records/fixtures.ts'
import { cidOf, providersOf, requireToolchains, take } from './fixtures/helpers.ts'
import { buildRustPeer, cargoVersion, RustPeer } from './fixtures/rust-peer.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'

const OURS = 6
const RUST = 4
const K = 4

/** Addresses without `/p2p/<id>`: Rust answers with its table's addresses, which carry it */
function transports (addrs: Multiaddr[]): string[] {
  return addrs.map(a => a.decapsulateCode(421).toString())
}

async function ourFind (node: OurNode, cid: CID): Promise<Array<{ id: PeerId, multiaddrs: Multiaddr[] }>> {
  return providersOf(async () => all(take(node.contentRouting.findProviders(cid), 1)))
}

async function rustFind (peer: RustPeer, cid: CID): Promise<Array<{ id: PeerId, multiaddrs: Multiaddr[] }>> {
  return providersOf(async () => peer.findProviders(cid, 1))
}

describe('interop with rust-libp2p 0.57.1 / libp2p-kad 0.49 (Rust peers on TCP)', function () {
  this.timeout(120_000)

  let rust: RustPeer[] = []
  let ours: OurNode[] = []
  let everyone: PeerId[] = []

  before(async function () {
    this.timeout(25 * 60_000)
    requireToolchains(this, (await cargoVersion()) == null ? ['cargo'] : [], 'rust-libp2p kad interop')
    await buildRustPeer()
    rust = await Promise.all(Array.from({ length: RUST }, async () => RustPeer.start({ k: K })))
    ours = await Promise.all(Array.from({ length: OURS }, async () => createOurNode({ kBucketSize: K })))
    everyone = [...rust.map(r => r.id), ...ours.map(n => n.peerId)]
    // everyone bootstraps off the first Rust peer and our first node
    await ours[0].dial(rust[0].p2pAddrs())
    for (const node of ours.slice(1)) {
      await node.dial(ours[0].getMultiaddrs())
      await node.dial(rust[0].p2pAddrs())
    }
    for (const r of rust.slice(1)) {
      await r.connect(ours[0].getMultiaddrs()[0])
      await r.connect(rust[0].p2pAddrs()[0])
    }
    await pWaitFor(async () => {
      const tables = await Promise.all(rust.map(async r => r.routingTable()))
      return tables.every(t => t.length >= K) && ours.every(n => n.services.dht.routingTable.size >= K)
    }, { timeout: 30_000, interval: 100 })
  })

  after(async () => {
    await stopAll(ours)
    await Promise.all(rust.map(async r => r.stop()))
  })

  it('Rust peers are servers and the routing tables mix both implementations', async () => {
    const ourIds = ours.map(n => n.peerId.toString())
    const rustIds = rust.map(r => r.id.toString())
    for (const r of rust) {
      expect(await r.mode()).to.equal('server')
      expect((await r.routingTable()).filter(id => ourIds.includes(id))).to.not.be.empty()
    }
    for (const node of ours) {
      expect(node.services.dht.routingTable.peers().filter(id => rustIds.includes(id))).to.not.be.empty()
    }
  })

  it('our probes of Rust peers succeed: none of them is in back-off (libp2p-kad closes the stream on a kad PING, so we probe with FIND_NODE)', async () => {
    for (const node of ours) {
      for (const r of rust) {
        expect(node.services.dht.peerValue(r.id).category, `${r.id.toString()} as seen by ${node.peerId.toString()}`).to.not.equal('bad')
      }
    }
  })

  it('Rust provides (start_providing), our findProviders finds it with its addresses', async () => {
    for (let i = 0; i < 4; i++) {
      const provider = rust[i % RUST]
      const cid = await cidOf(`rust-provides-${i}`)
      await provider.provide(cid)
      const found = await ourFind(ours[(i + 1) % OURS], cid)
      expect(found.map(p => p.id.toString())).to.deep.equal([provider.id.toString()])
      expect(transports(found[0].multiaddrs)).to.include.members(transports(provider.multiaddrs))
    }
  })

  it('we provide, Rust get_providers finds it', async () => {
    for (let i = 0; i < 4; i++) {
      const cid = await cidOf(`ours-provides-${i}`)
      await ours[i].contentRouting.provide(cid)
      const found = await rustFind(rust[i % RUST], cid)
      expect(found.map(p => p.id.toString())).to.deep.equal([ours[i].peerId.toString()])
      expect(transports(found[0].multiaddrs)).to.include.members(transports(ours[i].getMultiaddrs()))
    }
  })

  it("our sender check accepts Rust's ADD_PROVIDER (it names the sender, with no addresses on loopback)", async () => {
    // a network of two: the Rust peer's only contact is our holder, so its
    // ADD_PROVIDER goes there; with the Rust peer gone, only the holder's
    // provider store can answer
    const datastore = new MemoryDatastore()
    const holder = await createOurNode({ kBucketSize: K }, { datastore })
    const provider = await RustPeer.start({ k: K })
    try {
      await provider.connect(holder.getMultiaddrs()[0])
      await pWaitFor(async () => (await provider.routingTable()).includes(holder.peerId.toString()), { timeout: 20_000, interval: 50 })
      const cid = await cidOf('rust-add-provider-to-one')
      await provider.provide(cid)
      // libp2p-kad reports start_providing done when it has handed the
      // ADD_PROVIDER to the connection, before it is written: wait for the
      // holder's provider store to name the Rust peer (a datastore we own)
      await pWaitFor(async () => {
        for await (const key of datastore.queryKeys({ prefix: '/dht/providers/' })) {
          if (key.toString().endsWith(`/${provider.id.toString()}`)) {
            return true
          }
        }
        return false
      }, { timeout: 10_000, interval: 50 })
      await provider.stop()
      const found = await all(take(holder.contentRouting.findProviders(cid), 1))
      expect(found.map(p => p.id.toString())).to.deep.equal([provider.id.toString()])
      // the addresses come from identify, not from the ADD_PROVIDER message
      expect(transports(found[0].multiaddrs)).to.include.members(transports(provider.multiaddrs))
    } finally {
      await provider.stop()
      await holder.stop()
    }
  })

  it('IPNS put and get in both directions, the newer sequence winning on our side', async () => {
    const key = await generateKeyPair('Ed25519')
    const name = ipnsKey(key)
    const v1 = await ipnsRecord(key, 1)
    await ours[1].contentRouting.put(name, v1)
    expect(await rust[0].get(name)).to.equalBytes(v1)

    const v2 = await ipnsRecord(key, 2)
    await rust[1].put(name, v2)
    for (const node of ours) {
      expect(await node.contentRouting.get(name)).to.equalBytes(v2)
    }

    // a record a Rust peer put first, that we read
    const other = await generateKeyPair('Ed25519')
    const w1 = await ipnsRecord(other, 7)
    await rust[2].put(ipnsKey(other), w1)
    expect(await ours[3].contentRouting.get(ipnsKey(other))).to.equalBytes(w1)
  })

  it('Rust has no selector: an older sequence it puts over a newer one stays its own answer, we keep the newer', async () => {
    // a name with one of ours among its true k closest, or every holder could be Rust
    const ourIds = ours.map(n => n.peerId.toString())
    let key = await generateKeyPair('Ed25519')
    while (!trueClosest(everyone, ipnsKey(key), K).some(id => ourIds.includes(id))) {
      key = await generateKeyPair('Ed25519')
    }
    const name = ipnsKey(key)
    const v5 = await ipnsRecord(key, 5)
    await ours[2].contentRouting.put(name, v5)
    // the put reports at its quorum and finishes its deliveries in the
    // background: one reaching rust[3] after its own put of v4 below would
    // overwrite v4 there (Rust has no selector), so let them end first
    await putsSettled(ours[2])
    const v4 = await ipnsRecord(key, 4)
    // Rust stores v4 locally over nothing and sends it to the k closest; the
    // Rust peers among them overwrite v5 with it, ours keep v5
    await rust[3].put(name, v4).catch(() => {})
    expect(await rust[3].get(name)).to.equalBytes(v4)
    for (const node of ours) {
      expect(await node.contentRouting.get(name)).to.equalBytes(v5)
    }
  })

  it('/pk/ records in both directions', async () => {
    const a = pkRecord(await generateKeyPair('Ed25519'))
    await ours[2].contentRouting.put(a.key, a.value)
    expect(await rust[1].get(a.key)).to.equalBytes(a.value)

    const b = pkRecord(await generateKeyPair('Ed25519'))
    await rust[2].put(b.key, b.value)
    expect(await ours[4].contentRouting.get(b.key)).to.equalBytes(b.value)
  })

  it('findPeer in both directions', async () => {
    for (const [i, node] of ours.entries()) {
      const r = rust[i % RUST]
      const found = await r.findPeer(node.peerId)
      expect(found.id.equals(node.peerId)).to.equal(true)
      expect(transports(found.multiaddrs)).to.include.members(transports(node.getMultiaddrs()))

      const info = await node.peerRouting.findPeer(r.id, { useCache: false })
      expect(info.id.equals(r.id)).to.equal(true)
      expect(transports(info.multiaddrs)).to.include.members(transports(r.multiaddrs))
    }
  })

  it('getClosestPeers from either side returns the true k closest of the mixed set', async () => {
    for (let i = 0; i < 4; i++) {
      const key = new TextEncoder().encode(`closest-${i}`)
      const r = rust[i % RUST]
      const byRust = await r.closest(key)
      expect(byRust, `from Rust peer ${r.id.toString()}`).to.deep.equal(trueClosest(everyone.filter(id => !id.equals(r.id)), key, K))

      const from = ours[i]
      const byUs = (await all(from.peerRouting.getClosestPeers(key))).map(p => p.id.toString())
      expect(byUs, `from ${from.peerId.toString()}`).to.deep.equal(trueClosest(everyone.filter(id => !id.equals(from.peerId)), key, K))
    }
  })

  // Above, a querier may hold what it asks for. A late joiner that knows one
  // peer of the other implementation gets it over the wire, from that
  // implementation's answers.
  it('a late Rust peer knowing only one of ours finds our peers, providers and records through us', async () => {
    const cid = await cidOf('ours-provides-before-rust-late')
    await ours[2].contentRouting.provide(cid)
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 3)
    await ours[3].contentRouting.put(ipnsKey(key), record)

    // libp2p-kad 0.57 bootstraps once when a peer enters a table of fewer
    // than k (that cannot be turned off), so this peer's self-lookup, answered
    // by our node, is how it learns the rest
    const late = await RustPeer.start({ k: K, noRefresh: true })
    try {
      await late.connect(ours[0].getMultiaddrs()[0])
      await pWaitFor(async () => (await late.routingTable()).includes(ours[0].peerId.toString()), { timeout: 20_000, interval: 50 })
      for (const target of ours.slice(1)) {
        const found = await late.findPeer(target.peerId)
        expect(found.id.equals(target.peerId)).to.equal(true)
        expect(found.multiaddrs.length).to.be.greaterThan(0)
      }
      const providers = await rustFind(late, cid)
      expect(providers.map(p => p.id.toString())).to.deep.equal([ours[2].peerId.toString()])
      expect(await late.get(ipnsKey(key))).to.equalBytes(record)
    } finally {
      await late.stop()
    }
  })

  it('a late node of ours knowing only a Rust peer finds its peers, providers and records through it', async () => {
    const cid = await cidOf('rust-provides-before-ours-late')
    await rust[1].provide(cid)
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 4)
    await rust[2].put(ipnsKey(key), record)

    const late = await createOurNode({ kBucketSize: K })
    try {
      await late.dial(rust[0].p2pAddrs())
      await pWaitFor(() => late.services.dht.routingTable.peers().includes(rust[0].id.toString()), { timeout: 20_000, interval: 50 })
      for (const target of [...ours.slice(1, 4), rust[3]]) {
        const id = 'peerId' in target ? target.peerId : target.id
        const info = await late.peerRouting.findPeer(id, { useCache: false })
        expect(info.id.equals(id)).to.equal(true)
        expect(info.multiaddrs.length).to.be.greaterThan(0)
      }
      const providers = await ourFind(late, cid)
      expect(providers.map(p => p.id.toString())).to.deep.equal([rust[1].id.toString()])
      expect(await late.contentRouting.get(ipnsKey(key))).to.equalBytes(record)
    } finally {
      await late.stop()
    }
  })

  it('a Rust peer in client mode uses our nodes as its servers and stays out of every table', async () => {
    const cid = await cidOf('rust-client-provides')
    const key = await generateKeyPair('Ed25519')
    const ours1 = await ipnsRecord(key, 1)
    await ours[1].contentRouting.put(ipnsKey(key), ours1)

    const client = await RustPeer.start({ client: true, k: K })
    try {
      expect(await client.mode()).to.equal('client')
      await client.connect(ours[0].getMultiaddrs()[0])
      await pWaitFor(async () => (await client.routingTable()).includes(ours[0].peerId.toString()), { timeout: 20_000, interval: 50 })
      await client.provide(cid)
      const found = await ourFind(ours[4], cid)
      expect(found.map(p => p.id.toString())).to.deep.equal([client.id.toString()])
      expect(await client.get(ipnsKey(key))).to.equalBytes(ours1)
      const other = await generateKeyPair('Ed25519')
      const record = await ipnsRecord(other, 5)
      await client.put(ipnsKey(other), record)
      expect(await ours[2].contentRouting.get(ipnsKey(other))).to.equalBytes(record)
      for (const node of ours) {
        expect(node.services.dht.routingTable.peers()).to.not.include(client.id.toString())
      }
      for (const r of rust) {
        expect(await r.routingTable()).to.not.include(client.id.toString())
      }
    } finally {
      await client.stop()
    }
  })

  it('a node of ours in client mode uses Rust peers as servers and stays out of their tables', async () => {
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 6)
    await rust[0].put(ipnsKey(key), record)

    const client = await createOurNode({ clientMode: true, kBucketSize: K })
    try {
      await client.dial(rust[0].p2pAddrs())
      await pWaitFor(() => client.services.dht.routingTable.peers().includes(rust[0].id.toString()), { timeout: 20_000, interval: 50 })
      const cid = await cidOf('our-client-provides')
      await client.contentRouting.provide(cid)
      const found = await rustFind(rust[1], cid)
      expect(found.map(p => p.id.toString())).to.deep.equal([client.peerId.toString()])
      expect(await client.contentRouting.get(ipnsKey(key))).to.equalBytes(record)
      for (const r of rust) {
        expect(await r.routingTable()).to.not.include(client.peerId.toString())
      }
    } finally {
      await client.stop()
    }
  })

  // Last, because it costs the Rust peers their standing with us: a peer
  // that answers GET_VALUE with an invalid record goes into our back-off,
  // and a peer in back-off is neither asked nor named to others, so our
  // findPeer for it fails for a while afterwards.
  it('Rust stores what Go and we reject (a forged IPNS record, an expired one, an unknown namespace); our get never returns them and backs off from Rust peers serving the forged and unvalidated ones', async () => {
    const rustIds = rust.map(r => r.id.toString())
    /** With a Rust peer among the true k closest, so that Rust peers hold it and our gets meet them */
    async function rustHeld <T> (make: () => Promise<T & { key: Uint8Array }>): Promise<T & { key: Uint8Array }> {
      let made = await make()
      while (!trueClosest(everyone, made.key, K).some(id => rustIds.includes(id))) {
        made = await make()
      }
      return made
    }
    const records = [
      await rustHeld(async () => {
        const key = await generateKeyPair('Ed25519')
        return { what: 'forged IPNS', key: ipnsKey(key), value: tamper(await ipnsRecord(key, 1)) }
      }),
      await rustHeld(async () => {
        const key = await generateKeyPair('Ed25519')
        return { what: 'expired IPNS', key: ipnsKey(key), value: await expiredIpnsRecord(key, 1) }
      }),
      await rustHeld(async () => ({ what: 'unknown namespace', key: uint8ArrayFromString(`/unvalidated/${Math.random()}`), value: uint8ArrayFromString('anything') }))
    ]
    // every record is put before any get of ours: a get that meets a Rust
    // peer serving one puts it in back-off, our answers then stop naming it,
    // and a later put by rust[0], whose own table may lack that peer, could
    // no longer find it through us
    for (const { what, key, value } of records) {
      // quorum one: it succeeds if a Rust peer among the k closest stores it
      // (each of ours refuses the PUT_VALUE); Rust's own store has it anyway
      await rust[0].put(key, value).catch(() => {})
      expect(await rust[0].get(key), what).to.equalBytes(value)
      const closest = trueClosest(everyone, key, K)
      for (const r of rust.slice(1)) {
        if (closest.includes(r.id.toString())) {
          expect(await r.get(key), `${what} held by ${r.id.toString()}`).to.equalBytes(value)
        }
      }
    }
    for (const { what, key } of records) {
      for (const node of ours) {
        await expect(node.contentRouting.get(key), `${what} from ${node.peerId.toString()}`).to.eventually.be.rejected()
      }
    }
    for (const node of ours) {
      const bad = rust.filter(r => node.services.dht.peerValue(r.id).category === 'bad')
      expect(bad, `Rust peers in back-off at ${node.peerId.toString()}`).to.not.be.empty()
    }
  })
})

/** Resolves once `node`'s put traffic (requests sent, bytes answered) has not moved for 450 ms */
async function putsSettled (node: OurNode): Promise<void> {
  const figures = (): string => {
    const put = node.services.dht.usage().purposes.put
    return `${put.requests}/${put.failures}/${put.bytesReceived}`
  }
  let last = figures()
  let still = 0
  await pWaitFor(() => {
    const now = figures()
    still = now === last ? still + 1 : 0
    last = now
    return still >= 3
  }, { timeout: 20_000, interval: 150 })
}
