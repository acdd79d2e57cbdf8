/**
 * Bulk provide: a thousand CIDs with a keyspace sweep, found by other nodes;
 * an aborted bulk provide reports what other nodes can find.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { SeededRandom } from '../../src/core/env.ts'
import { BulkAbortedError, InvalidRecordError } from '../../src/index.ts'
import { kadKey } from '../../src/libp2p/peer-info.ts'
import { ipnsKey, ipnsRecord, tamper } from '../records/fixtures.ts'
import { startNetwork, stopAll } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { BulkProgress } from '../../src/index.ts'

const N = 22
const K = 6

async function cids (prefix: string, n: number): Promise<CID[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`${prefix}-${i}`)))))
}

/** Whether `node` finds `provider` for `cid` through the network */
async function finds (node: OurNode, cid: CID, provider: OurNode): Promise<boolean> {
  for await (const p of node.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(20_000) })) {
    if (p.id.equals(provider.peerId)) {
      return true
    }
  }
  return false
}

function sample<T> (items: T[], n: number, random: SeededRandom): T[] {
  const copy = [...items]
  const out: T[] = []
  while (out.length < n && copy.length > 0) {
    out.push(copy.splice(random.int(copy.length), 1)[0])
  }
  return out
}

describe('libp2p/bulk: provideMany and putMany', function () {
  this.timeout(300_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K, bulk: { chunkSize: 250 } })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('provides 1000 CIDs with far fewer lookups than keys, and other nodes find a sample of 200, all of them', async () => {
    const provider = nodes[3]
    const list = await cids('bulk', 1000)
    const seen: BulkProgress[] = []
    const result = await provider.services.dht.provideMany(list, { onBulkProgress: p => seen.push(p) })
    expect(result).to.deep.include({ keys: 1000, keysDone: 1000, provided: 1000 })
    expect(result.lookups).to.be.at.most(100)
    expect(result.messages).to.be.at.least(1000)
    expect(seen.map(p => p.keysDone)).to.deep.equal([250, 500, 750, 1000])
    expect(provider.services.dht.reproviding).to.be.at.least(1000)
    const random = new SeededRandom(42)
    let i = 0
    for (const cid of sample(list, 200, random)) {
      const seeker = nodes[(i++ % (N - 1) + 4) % N]
      expect(await finds(seeker === provider ? nodes[0] : seeker, cid, provider), cid.toString()).to.equal(true)
    }
  })

  it('writes a peer that answers fast larger and larger batches, from 512 up to 1024 records per answer', async () => {
    const provider = nodes[5]
    const messenger = (provider.services.dht as unknown as { messenger: { writeAcknowledged(...args: any[]): Promise<unknown> } }).messenger
    const original = messenger.writeAcknowledged.bind(messenger)
    // each batch's size, by peer
    const batches = new Map<string, number[]>()
    messenger.writeAcknowledged = async (peer: { toString(): string }, messages: { count?: number }, ...rest: unknown[]) => {
      // bulk's batches come encoded; the handover of earlier tests' records to a newly admitted peer comes as a list
      if (messages.count != null) {
        batches.set(peer.toString(), [...(batches.get(peer.toString()) ?? []), messages.count])
      }
      return original(peer, messages, ...rest)
    }
    // one chunk for all 5000 keys (the network's 250 would cap every batch at 250):
    // each peer's share is about 5000 * K / (N - 1), room for batches to grow
    const bulk = (provider.services.dht as unknown as { bulk: { chunkSize: number } }).bulk
    const chunkSize = bulk.chunkSize
    bulk.chunkSize = 5000
    try {
      const list = await cids('growing', 5000)
      const result = await provider.services.dht.provideMany(list)
      expect(result.provided).to.equal(5000)
    } finally {
      messenger.writeAcknowledged = original
      bulk.chunkSize = chunkSize
    }
    const sizes = [...batches.values()]
    expect(sizes.every(s => s[0] <= 512), 'every peer starts at 512').to.equal(true)
    expect(sizes.flat().every(n => n <= 1024), 'never beyond 1024').to.equal(true)
    expect(Math.max(...sizes.flat()), 'a local peer answers fast: batches grow').to.be.greaterThan(512)
  })

  it('a server records a bulk provider\'s addresses once and stores its records in batches, not once per ADD_PROVIDER', async () => {
    const provider = nodes[7]
    // merges of the provider's addresses into each server's peer store
    const merges = new Map<OurNode, number>()
    const originals = nodes.map(n => n.peerStore.merge.bind(n.peerStore))
    // the servers' provider store writes of the provider's records: records per write
    const writes: number[] = []
    const stores = nodes.map(n => (n.services.dht as unknown as { providers: { addProviders(keys: Uint8Array[], provider: unknown, ...rest: unknown[]): Promise<void> } }).providers)
    const addProviders = stores.map(store => store.addProviders.bind(store))
    stores.forEach((store, i) => {
      if (nodes[i] !== provider) {
        store.addProviders = async (keys: Uint8Array[], who: unknown, ...rest: unknown[]) => {
          if (String(who) === provider.peerId.toString()) {
            writes.push([...keys].length)
          }
          return addProviders[i](keys, who, ...rest)
        }
      }
    })
    nodes.forEach(n => {
      const original = n.peerStore.merge.bind(n.peerStore)
      n.peerStore.merge = async (peer, data, options) => {
        if (peer.equals(provider.peerId) && data.multiaddrs != null) {
          merges.set(n, (merges.get(n) ?? 0) + 1)
        }
        return original(peer, data, options)
      }
    })
    try {
      const result = await provider.services.dht.provideMany(await cids('addresses', 600))
      expect(result.provided).to.equal(600)
      // every server that took records got 600 * K / N = 160 on average
      expect(result.messages).to.equal(600 * K)
    } finally {
      nodes.forEach((n, i) => { n.peerStore.merge = originals[i] })
      stores.forEach((store, i) => { store.addProviders = addProviders[i] })
    }
    for (const [server, count] of merges) {
      expect(count, `merges at ${server.peerId.toString()}`).to.be.at.most(1)
    }
    // every record stored (and any the provider's handover of earlier tests' records sent meanwhile),
    // each write a run of them (what arrived together on a stream)
    const stored = writes.reduce((a, b) => a + b, 0)
    expect(stored).to.be.at.least(600 * K)
    expect(stored / writes.length, 'records per write').to.be.at.least(16)
  })

  it('walks a chunk in one slice or many with the same outcome, and refuses a lookup concurrency below one', async () => {
    const provider = nodes[5]
    const list = await cids('slices', 300)
    const one = await provider.services.dht.provideMany(list, { lookupConcurrency: 1 })
    const many = await provider.services.dht.provideMany(list, { lookupConcurrency: 16 })
    expect(one).to.deep.include({ keys: 300, keysDone: 300, provided: 300 })
    expect(many).to.deep.include({ keys: 300, keysDone: 300, provided: 300 })
    // each slice starts its own region: at most one more lookup per extra slice, per chunk (250 + 50 keys)
    expect(many.lookups).to.be.at.most(one.lookups + 2 * 15)
    await expect(provider.services.dht.provideMany(list, { lookupConcurrency: 0 })).to.eventually.be.rejectedWith(RangeError)
  })

  it('writes a region\'s records while it looks up the next region, and every CID is still found', async () => {
    const provider = nodes[9]
    const dht = provider.services.dht as unknown as {
      bulk: { lookup(...args: unknown[]): Promise<void> }
      messenger: { writeAcknowledged(...args: unknown[]): Promise<unknown> }
    }
    const lookup = dht.bulk.lookup.bind(dht.bulk)
    const write = dht.messenger.writeAcknowledged.bind(dht.messenger)
    // what happened, in order: a lookup that ended, a batch that started
    const events: string[] = []
    dht.bulk.lookup = async (...args: unknown[]) => {
      await lookup(...args)
      events.push('lookup')
    }
    dht.messenger.writeAcknowledged = async (...args: unknown[]) => {
      events.push('write')
      return write(...args)
    }
    const list = await cids('overlap', 250)
    try {
      // one slice, so the chunk's lookups come one after the other
      const result = await provider.services.dht.provideMany(list, { lookupConcurrency: 1 })
      expect(result).to.deep.include({ keys: 250, keysDone: 250, provided: 250 })
    } finally {
      dht.bulk.lookup = lookup
      dht.messenger.writeAcknowledged = write
    }
    expect(events.filter(e => e === 'lookup').length, 'a chunk of several regions').to.be.at.least(3)
    expect(events.indexOf('write'), 'records written before the last lookup ended').to.be.below(events.lastIndexOf('lookup'))
    const random = new SeededRandom(9)
    for (const cid of sample(list, 20, random)) {
      expect(await finds(nodes[0], cid, provider), cid.toString()).to.equal(true)
    }
  })

  it('an aborted bulk provide says what was done, and that is what others find', async () => {
    const provider = nodes[8]
    const list = await cids('aborted', 1000)
    const controller = new AbortController()
    let err: any
    try {
      await provider.services.dht.provideMany(list, {
        signal: controller.signal,
        onBulkProgress: p => { if (p.keysDone >= 500) { controller.abort() } }
      })
    } catch (e) {
      err = e
    }
    expect(err).to.be.instanceOf(BulkAbortedError)
    const progress: BulkProgress = err.progress
    expect(progress.keysDone).to.equal(500)
    expect(progress.provided).to.equal(500)
    // which keys were done: the first 500 in keyspace order
    const order = [...list].sort((a, b) => compareKad(a, b))
    const done = order.slice(0, 500)
    const notDone = order.slice(500)
    const random = new SeededRandom(7)
    for (const cid of sample(done, 25, random)) {
      expect(await finds(nodes[1], cid, provider), `done ${cid.toString()}`).to.equal(true)
    }
    for (const cid of sample(notDone, 10, random)) {
      expect(await finds(nodes[1], cid, provider), `not done ${cid.toString()}`).to.equal(false)
    }
  })
})

describe('libp2p/bulk: putMany', function () {
  this.timeout(300_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K, bulk: { chunkSize: 64 } })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('stores 200 IPNS records with one sweep, and other nodes get a sample of them', async () => {
    const keys = await Promise.all(Array.from({ length: 200 }, async () => generateKeyPair('Ed25519')))
    const records = await Promise.all(keys.map(async key => ({ key: ipnsKey(key), value: await ipnsRecord(key, 3) })))
    const result = await nodes[5].services.dht.putMany(records)
    expect(result).to.deep.include({ keys: 200, keysDone: 200, provided: 200 })
    expect(result.lookups).to.be.below(50)
    const random = new SeededRandom(3)
    for (const r of sample(records, 20, random)) {
      expect(await nodes[(random.int(N - 1) + 6) % N].contentRouting.get(r.key)).to.equalBytes(r.value)
    }
  })

  it('rejects the whole batch with a typed error before sending anything when one record is invalid', async () => {
    const good = await generateKeyPair('Ed25519')
    const bad = await generateKeyPair('Ed25519')
    const records = [{ key: ipnsKey(good), value: await ipnsRecord(good, 1) }, { key: ipnsKey(bad), value: tamper(await ipnsRecord(bad, 1)) }]
    const err = await nodes[7].services.dht.putMany(records).catch(e => e)
    expect(err).to.be.instanceOf(InvalidRecordError)
    // not even the valid record of the batch went out
    const found = await all(nodes[12].services.dht.get(records[0].key)).catch(e => e)
    expect(found).to.have.property('name', 'NotFoundError')
  })
})

function compareKad (a: CID, b: CID): number {
  const ka = kad(a)
  const kb = kad(b)
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) {
      return ka[i] - kb[i]
    }
  }
  return 0
}

function kad (cid: CID): Uint8Array {
  return kadKey(cid.multihash.bytes)
}

describe('libp2p/bulk: transparent batching of contentRouting.provide', function () {
  this.timeout(300_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await startNetwork(14, { kBucketSize: K, provideBatching: { window: 50 } })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('300 single provides at once go out in a few batches with far fewer lookups, each resolves, and others find them', async () => {
    const provider = nodes[2]
    const list = await cids('batched', 300)
    await Promise.all(list.map(async cid => provider.contentRouting.provide(cid)))
    const stats = provider.services.dht.provideBatching
    expect(stats?.keys).to.equal(300)
    expect(stats?.batches).to.be.at.most(3)
    expect(stats?.lookups).to.be.below(300 / 10)
    const random = new SeededRandom(7)
    for (const cid of sample(list, 30, random)) {
      expect(await finds(nodes[9], cid, provider), cid.toString()).to.equal(true)
    }
  })
})
