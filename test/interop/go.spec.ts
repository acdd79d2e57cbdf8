/**
 * A network of one go-libp2p-kad-dht v0.42.2 peer (test/interop/go-peer, in
 * server mode, Go's own /pk and /ipns validators) and priority-dht nodes over
 * TCP on 127.0.0.1: every operation in both directions.
 *
 * The spec builds the Go peer itself into `.cache/go/bin` (see
 * fixtures/go-peer.ts). Without `go` on the PATH it is skipped, except under
 * CI (`CI=true`), where a missing toolchain fails it.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { createOurNode, stopAll } from '../libp2p/fixtures/network.ts'
import { expiredIpnsRecord, ipnsKey, ipnsRecord, pkRecord, tamper } from '../records/fixtures.ts'
import { buildGoPeer, goVersion, GoPeer } from './fixtures/go-peer.ts'
import { cidOf, requireToolchains, take } from './fixtures/helpers.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { Datastore } from 'interface-datastore'

const OURS = 5

describe('interop with go-libp2p-kad-dht v0.42.2 (Go peer on TCP)', function () {
  this.timeout(120_000)

  let go: GoPeer | undefined
  let ours: OurNode[] = []

  before(async function () {
    this.timeout(15 * 60_000)
    requireToolchains(this, (await goVersion()) == null ? ['go'] : [], 'go-libp2p-kad-dht interop')
    await buildGoPeer()
    go = await GoPeer.start()
    ours = await Promise.all(Array.from({ length: OURS }, async () => createOurNode()))
    // everyone bootstraps off the Go peer and our first node
    await ours[0].dial(go.multiaddrs.map(a => a.encapsulate(`/p2p/${go?.id.toString()}`)))
    for (const node of ours.slice(1)) {
      await node.dial(ours[0].getMultiaddrs())
      await go.connect(node.getMultiaddrs()[0])
    }
    const goPeer = go
    await pWaitFor(async () => (await goPeer.routingTable()).length >= OURS && ours.every(n => n.services.dht.routingTable.size >= OURS), { timeout: 30_000, interval: 100 })
  })

  after(async () => {
    await stopAll(ours)
    await go?.stop()
  })

  function theGoPeer (): GoPeer {
    if (go == null) {
      throw new Error('the Go peer did not start')
    }
    return go
  }

  it('routing tables contain each other', async () => {
    const goPeer = theGoPeer()
    const table = await goPeer.routingTable()
    expect(table).to.have.members(ours.map(n => n.peerId.toString()))
    for (const node of ours) {
      expect(node.services.dht.routingTable.peers()).to.include(goPeer.id.toString())
    }
  })

  it('Go provides, our findProviders finds it', async () => {
    const goPeer = theGoPeer()
    for (let i = 0; i < 3; i++) {
      const cid = await cidOf(`go-provides-${i}`)
      await goPeer.provide(cid)
      const found = await all(take(ours[(i + 1) % OURS].contentRouting.findProviders(cid), 1))
      expect(found.map(p => p.id.toString())).to.deep.equal([goPeer.id.toString()])
      expect(found[0].multiaddrs.map(a => a.toString())).to.include.members(goPeer.multiaddrs.map(a => a.toString()))
    }
  })

  it('we provide, Go findprovs finds it', async () => {
    const goPeer = theGoPeer()
    for (let i = 0; i < 3; i++) {
      const cid = await cidOf(`ours-provides-${i}`)
      await ours[i].contentRouting.provide(cid)
      const found = await goPeer.findProviders(cid, 1)
      expect(found.map(p => p.id.toString())).to.deep.equal([ours[i].peerId.toString()])
      expect(found[0].multiaddrs.length).to.be.greaterThan(0)
    }
  })

  it('IPNS put and get in both directions, Go validating ours, newer sequence winning', async () => {
    const goPeer = theGoPeer()
    const key = await generateKeyPair('Ed25519')
    const name = ipnsKey(key)
    const v1 = await ipnsRecord(key, 1)
    await ours[1].contentRouting.put(name, v1)
    expect(await goPeer.get(name)).to.equalBytes(v1)

    const v2 = await ipnsRecord(key, 2)
    await goPeer.put(name, v2)
    for (const node of ours) {
      expect(await node.contentRouting.get(name)).to.equalBytes(v2)
    }

    // a record Go put first, that we read
    const other = await generateKeyPair('Ed25519')
    const w1 = await ipnsRecord(other, 7)
    await goPeer.put(ipnsKey(other), w1)
    expect(await ours[3].contentRouting.get(ipnsKey(other))).to.equalBytes(w1)
  })

  it("Go's validator is the one deciding: it refuses a tampered and an expired record", async () => {
    const goPeer = theGoPeer()
    const key = await generateKeyPair('Ed25519')
    await expect(goPeer.put(ipnsKey(key), tamper(await ipnsRecord(key, 1)))).to.eventually.be.rejectedWith(/signature verification failed/)
    await expect(goPeer.put(ipnsKey(key), await expiredIpnsRecord(key, 1))).to.eventually.be.rejectedWith(/record is expired/)
    await expect(goPeer.get(ipnsKey(key))).to.eventually.be.rejectedWith(/not found/)
  })

  it('/pk/ records in both directions', async () => {
    const goPeer = theGoPeer()
    const a = pkRecord(await generateKeyPair('Ed25519'))
    await ours[2].contentRouting.put(a.key, a.value)
    expect(await goPeer.get(a.key)).to.equalBytes(a.value)

    const b = pkRecord(await generateKeyPair('Ed25519'))
    await goPeer.put(b.key, b.value)
    expect(await ours[4].contentRouting.get(b.key)).to.equalBytes(b.value)
  })

  it('findPeer in both directions', async () => {
    const goPeer = theGoPeer()
    for (const node of ours) {
      const found = await goPeer.findPeer(node.peerId)
      expect(found.id.equals(node.peerId)).to.equal(true)
      expect(found.multiaddrs.map(a => a.toString())).to.include.members(node.getMultiaddrs().map(a => a.decapsulateCode(421).toString()))

      const info = await node.peerRouting.findPeer(goPeer.id, { useCache: false })
      expect(info.id.equals(goPeer.id)).to.equal(true)
      expect(info.multiaddrs.map(a => a.toString())).to.include.members(goPeer.multiaddrs.map(a => a.toString()))
    }
  })

  it('getClosestPeers in both directions returns everyone else', async () => {
    const goPeer = theGoPeer()
    const everyone = [goPeer.id.toString(), ...ours.map(n => n.peerId.toString())]
    for (let i = 0; i < 3; i++) {
      const key = new TextEncoder().encode(`closest-${i}`)
      const byGo = await goPeer.closest(key)
      expect(byGo).to.have.members(everyone.filter(id => id !== goPeer.id.toString()))

      const from = ours[i]
      const byUs = (await all(from.peerRouting.getClosestPeers(key))).map(p => p.id.toString())
      expect(byUs).to.have.members(everyone.filter(id => id !== from.peerId.toString()))
    }
  })

  // Above, records land on every node and everyone is connected, so answers
  // may come from local stores. A late joiner that knows one peer of the other
  // implementation must get them over the wire, from the other implementation's
  // answers.
  it('a late Go peer knowing only one of ours finds our peers, providers and records through us', async () => {
    const cid = await cidOf('ours-provides-before-go-late')
    await ours[2].contentRouting.provide(cid)
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 3)
    await ours[3].contentRouting.put(ipnsKey(key), record)

    const late = await GoPeer.start({ noRefresh: true })
    try {
      await late.connect(ours[0].getMultiaddrs()[0])
      await pWaitFor(async () => (await late.routingTable()).includes(ours[0].peerId.toString()), { timeout: 20_000, interval: 50 })
      const connected = await late.connections()
      const target = ours.slice(1).find(n => !connected.includes(n.peerId.toString()))
      expect(target, `the late Go peer is already connected to all of ours: ${connected.join(', ')}`).to.not.equal(undefined)
      if (target == null) {
        return
      }
      const found = await late.findPeer(target.peerId)
      expect(found.id.equals(target.peerId)).to.equal(true)
      expect(found.multiaddrs.length).to.be.greaterThan(0)

      const providers = await late.findProviders(cid, 1)
      expect(providers.map(p => p.id.toString())).to.deep.equal([ours[2].peerId.toString()])
      expect(await late.get(ipnsKey(key))).to.equalBytes(record)
    } finally {
      await late.stop()
    }
  })

  it('a late node of ours knowing only the Go peer finds its peers, providers and records through it', async () => {
    const goPeer = theGoPeer()
    const cid = await cidOf('go-provides-before-ours-late')
    await goPeer.provide(cid)
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 4)
    await goPeer.put(ipnsKey(key), record)

    const late = await createOurNode()
    try {
      await late.dial(goPeer.multiaddrs.map(a => a.encapsulate(`/p2p/${goPeer.id.toString()}`)))
      await pWaitFor(() => late.services.dht.routingTable.peers().includes(goPeer.id.toString()), { timeout: 20_000, interval: 50 })
      const target = ours[3]
      const info = await late.peerRouting.findPeer(target.peerId, { useCache: false })
      expect(info.id.equals(target.peerId)).to.equal(true)
      expect(info.multiaddrs.length).to.be.greaterThan(0)

      const providers = await all(take(late.contentRouting.findProviders(cid), 1))
      expect(providers.map(p => p.id.toString())).to.deep.equal([goPeer.id.toString()])
      expect(await late.contentRouting.get(ipnsKey(key))).to.equalBytes(record)
    } finally {
      await late.stop()
    }
  })

  it('a Go peer in client mode uses our nodes as its servers and stays out of our tables', async () => {
    const cid = await cidOf('go-client-provides')
    const key = await generateKeyPair('Ed25519')
    const ours1 = await ipnsRecord(key, 1)
    await ours[1].contentRouting.put(ipnsKey(key), ours1)

    const client = await GoPeer.start({ client: true })
    try {
      await client.connect(ours[0].getMultiaddrs()[0])
      await pWaitFor(async () => (await client.routingTable()).includes(ours[0].peerId.toString()), { timeout: 20_000, interval: 50 })
      await client.provide(cid)
      const found = await all(take(ours[4].contentRouting.findProviders(cid), 1))
      expect(found.map(p => p.id.toString())).to.deep.equal([client.id.toString()])
      expect(await client.get(ipnsKey(key))).to.equalBytes(ours1)
      const other = await generateKeyPair('Ed25519')
      const record = await ipnsRecord(other, 5)
      await client.put(ipnsKey(other), record)
      expect(await ours[2].contentRouting.get(ipnsKey(other))).to.equalBytes(record)
      for (const node of ours) {
        expect(node.services.dht.routingTable.peers()).to.not.include(client.id.toString())
      }
    } finally {
      await client.stop()
    }
  })

  it('a node of ours in client mode uses the Go peer as a server and stays out of its table', async () => {
    const goPeer = theGoPeer()
    const key = await generateKeyPair('Ed25519')
    const record = await ipnsRecord(key, 6)
    await goPeer.put(ipnsKey(key), record)

    const client = await createOurNode({ clientMode: true })
    try {
      await client.dial(goPeer.multiaddrs.map(a => a.encapsulate(`/p2p/${goPeer.id.toString()}`)))
      await pWaitFor(() => client.services.dht.routingTable.peers().includes(goPeer.id.toString()), { timeout: 20_000, interval: 50 })
      const cid = await cidOf('our-client-provides')
      await client.contentRouting.provide(cid)
      const found = await goPeer.findProviders(cid, 1)
      expect(found.map(p => p.id.toString())).to.deep.equal([client.peerId.toString()])
      expect(await client.contentRouting.get(ipnsKey(key))).to.equalBytes(record)
      expect(await goPeer.routingTable()).to.not.include(client.peerId.toString())
    } finally {
      await client.stop()
    }
  })

  it("Go's sweeping provider (the provider package, as Kubo runs it) announces 200 CIDs and our nodes accept every batched ADD_PROVIDER", async function () {
    this.timeout(180_000)
    // a network of its own: 5 of ours, whose provider stores we can read,
    // and a Go peer that knows only them; once it is gone, only our stores
    // can name it
    const datastores: Datastore[] = Array.from({ length: OURS }, () => new MemoryDatastore())
    const holders = await Promise.all(datastores.map(async datastore => createOurNode({}, { datastore })))
    const sweeper = await GoPeer.start({ timeout: 120_000 })
    try {
      for (const node of holders.slice(1)) {
        await node.dial(holders[0].getMultiaddrs())
      }
      for (const node of holders) {
        await sweeper.connect(node.getMultiaddrs()[0])
      }
      await pWaitFor(async () => (await sweeper.routingTable()).length >= OURS, { timeout: 30_000, interval: 100 })
      const cids = await Promise.all(Array.from({ length: 200 }, async (_, i) => cidOf(`go-sweep-${i}`)))
      const result = await sweeper.provideSweep(cids, 120_000)
      expect(result.drained, `the sweep's provide queue drained: ${JSON.stringify(result)}`).to.equal(true)
      expect(result.keys).to.equal(200)
      // its ADD_PROVIDERs were written by the time the queue drained; wait
      // for every holder's store to name the Go peer for all 200 keys
      const goId = sweeper.id.toString()
      const stored = async (datastore: Datastore): Promise<number> => {
        let n = 0
        for await (const key of datastore.queryKeys({ prefix: '/dht/providers/' })) {
          if (key.toString().endsWith(`/${goId}`)) {
            n++
          }
        }
        return n
      }
      await pWaitFor(async () => (await Promise.all(datastores.map(stored))).every(n => n === cids.length), { timeout: 10_000, interval: 100 }).catch(() => {})
      expect(await Promise.all(datastores.map(stored)), 'records naming the Go peer in each of our stores (every node is among the k = 20 closest of 6)').to.deep.equal(holders.map(() => cids.length))
      await sweeper.stop()
      let found = 0
      for (const [i, cid] of cids.entries()) {
        const providers = await all(take(holders[i % OURS].contentRouting.findProviders(cid, { signal: AbortSignal.timeout(10_000) }), 1))
        if (providers.some(p => p.id.toString() === goId)) {
          found++
        }
      }
      expect(found, 'CIDs our findProviders names the (stopped) Go peer for').to.equal(cids.length)
    } finally {
      await sweeper.stop()
      await stopAll(holders)
    }
  })
})
