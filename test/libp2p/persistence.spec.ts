/**
 * A persistent datastore is one line of libp2p config (`datastore`): provider
 * records held for others and the list of CIDs we re-announce survive a
 * restart.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import { LevelDatastore } from 'datastore-level'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { createOurNode, routingTableSize, stopAll } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { PrivateKey } from '@libp2p/interface'

/** The providers a node holds itself: the first PROVIDER event comes from its own store */
async function heldLocally (node: OurNode, cid: CID): Promise<string[]> {
  for await (const event of node.services.dht.findProviders(cid)) {
    if (event.name === 'PROVIDER') {
      return event.from.equals(node.peerId) ? event.providers.map(p => p.id.toString()) : []
    }
  }
  return []
}

describe('libp2p/persistence: provider state over datastore-level survives a restart', function () {
  this.timeout(60_000)
  let dir: string
  let stores: LevelDatastore[] = []
  let nodes: OurNode[] = []

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'priority-dht-'))
  })

  afterEach(async () => {
    await stopAll(nodes)
    await Promise.all(stores.map(async s => s.close()))
    nodes = []
    stores = []
    await rm(dir, { recursive: true, force: true })
  })

  async function level (name: string): Promise<LevelDatastore> {
    const ds = new LevelDatastore(join(dir, name))
    await ds.open()
    stores.push(ds)
    return ds
  }

  async function pair (keys: PrivateKey[], dsA: LevelDatastore, dsB: LevelDatastore): Promise<[OurNode, OurNode]> {
    const a = await createOurNode({ kBucketSize: 4 }, { privateKey: keys[0], datastore: dsA })
    const b = await createOurNode({ kBucketSize: 4 }, { privateKey: keys[1], datastore: dsB })
    nodes.push(a, b)
    return [a, b]
  }

  it('a provider keeps re-announcing and a server keeps serving the record after both restart', async () => {
    const keys = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')])
    const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('persist me')))
    const [dsA, dsB] = [await level('a'), await level('b')]

    const [a, b] = await pair(keys, dsA, dsB)
    await a.dial(b.getMultiaddrs())
    await pWaitFor(() => routingTableSize(a) >= 1 && routingTableSize(b) >= 1, { timeout: 20_000 })
    await a.contentRouting.provide(cid)
    expect(a.services.dht.reproviding).to.equal(1)
    // ADD_PROVIDER has no response: wait until b has stored the record
    await pWaitFor(async () => (await heldLocally(b, cid)).includes(a.peerId.toString()), { timeout: 20_000 })
    await stopAll([a, b])
    nodes = []

    const [a2, b2] = await pair(keys, dsA, dsB)
    // the provider's list of CIDs to re-announce came back from its datastore
    expect(a2.services.dht.reproviding).to.equal(1)
    expect(b2.services.dht.reproviding).to.equal(0)
    expect(await heldLocally(b2, cid)).to.deep.equal([a2.peerId.toString()])

    // the server still answers GET_PROVIDERS with the record it stored before the restart
    const c = await createOurNode({ kBucketSize: 4 })
    nodes.push(c)
    await c.dial(b2.getMultiaddrs())
    await pWaitFor(() => routingTableSize(c) >= 1, { timeout: 20_000 })
    const found = await all(c.contentRouting.findProviders(cid))
    expect(found.map(p => p.id.toString())).to.include(a2.peerId.toString())
  })
})
