import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { ipnsKey, ipnsRecord } from '../records/fixtures.ts'
import { connectToBootstraps, createOurNode, formNetwork, startNetwork, stopAll, waitForTables } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'

const N = 22
const K = 6

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(text)))
}

describe('libp2p/content: provide, findProviders, put and get across 22 nodes', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K })
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('every provided CID is found by a different node', async () => {
    for (let i = 0; i < 10; i++) {
      const cid = await cidOf(`content-${i}`)
      const provider = nodes[i]
      await provider.contentRouting.provide(cid)
      const finder = nodes[(i + 7) % N]
      const found = await all(finder.contentRouting.findProviders(cid))
      expect(found.map(p => p.id.toString())).to.include(provider.peerId.toString())
      const info = found.find(p => p.id.equals(provider.peerId))
      expect(info?.multiaddrs.length).to.be.greaterThan(0)
    }
  })

  it('an IPNS record put by one node is returned by get on another, and a newer sequence wins', async () => {
    const key = await generateKeyPair('Ed25519')
    const routingKey = ipnsKey(key)
    const v1 = await ipnsRecord(key, 1)
    await nodes[2].contentRouting.put(routingKey, v1)
    expect(await nodes[15].contentRouting.get(routingKey)).to.equalBytes(v1)

    const v2 = await ipnsRecord(key, 2)
    await nodes[9].contentRouting.put(routingKey, v2)
    expect(await nodes[19].contentRouting.get(routingKey)).to.equalBytes(v2)

    // an older record is refused locally and never replaces the newer one remotely
    await all(nodes[4].services.dht.put(routingKey, v1)).catch(() => {})
    expect(await nodes[12].contentRouting.get(routingKey)).to.equalBytes(v2)
  })

  it('a record with a bad signature is rejected with a typed error before anything is sent', async () => {
    const key = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    // a record signed by another key under this key's name
    const forged = await ipnsRecord(other, 5)
    await expect(nodes[0].contentRouting.put(ipnsKey(key), forged)).to.eventually.be.rejected.with.property('name', 'InvalidRecordError')
    // (libp2p.contentRouting wraps router errors in an AggregateError; the service throws ours)
    await expect(all(nodes[1].services.dht.get(ipnsKey(key)))).to.eventually.be.rejected.with.property('name', 'NotFoundError')
  })

  it('/pk/ records validate against the peer id', async () => {
    const key = await generateKeyPair('Ed25519')
    const pkKey = new Uint8Array([...new TextEncoder().encode('/pk/'), ...key.publicKey.toMultihash().bytes])
    await nodes[5].contentRouting.put(pkKey, publicKeyToProtobuf(key.publicKey))
    expect(await nodes[17].contentRouting.get(pkKey)).to.equalBytes(publicKeyToProtobuf(key.publicKey))
    const wrong = publicKeyToProtobuf((await generateKeyPair('Ed25519')).publicKey)
    await expect(nodes[5].contentRouting.put(pkKey, wrong)).to.eventually.be.rejected.with.property('name', 'InvalidRecordError')
  })

  it('cancelReprovide forgets the CID', async () => {
    const cid = await cidOf('cancel-me')
    const before = nodes[3].services.dht.reproviding
    await nodes[3].contentRouting.provide(cid)
    expect(nodes[3].services.dht.reproviding).to.equal(before + 1)
    await nodes[3].contentRouting.cancelReprovide(cid)
    expect(nodes[3].services.dht.reproviding).to.equal(before)
    // the providers already out there remain until they expire
    const found = await all(nodes[10].contentRouting.findProviders(cid))
    expect(found.map(p => p.id.toString())).to.include(nodes[3].peerId.toString())
  })
})

describe('libp2p/content: signature checks a get costs', function () {
  this.timeout(120_000)
  const N = 10
  const K = 6
  /** validator runs per node */
  const calls = new Array<number>(N).fill(0)
  /** values every validator refuses from now on, and how: as expired (as the ipns package does) or as forged */
  const refused = new Map<string, 'expired' | 'forged'>()
  let nodes: OurNode[] = []

  /** a get to abort from inside this node's validator, as if its caller gave up while it validated */
  let abortIn: { node: number, controller: AbortController } | undefined
  const validate = (i: number) => (_key: Uint8Array, value: Uint8Array): void => {
    calls[i]++
    const text = new TextDecoder().decode(value)
    if (abortIn?.node === i) {
      abortIn.controller.abort()
      throw new Error('checked after the caller gave up')
    }
    const how = refused.get(text)
    if (how === 'expired') {
      throw Object.assign(new Error('record has expired'), { name: 'RecordExpiredError' })
    }
    if (how === 'forged' || !text.startsWith('ok')) {
      throw new Error('not ok')
    }
  }

  before(async () => {
    nodes = await Promise.all(Array.from({ length: N }, async (_, i) => createOurNode({
      kBucketSize: K,
      validators: { v: validate(i) },
      selectors: { v: () => 0 }
    })))
    await connectToBootstraps(nodes, 2)
    await waitForTables(nodes, 1)
    await formNetwork(nodes, K)
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('validates each distinct value once, and holders serve theirs without validating it again', async () => {
    const key = new TextEncoder().encode('/v/counted')
    const value = new TextEncoder().encode('ok')
    await all(nodes[0].services.dht.put(key, value))
    // the put reports at its quorum: let its other deliveries arrive
    await new Promise(resolve => setTimeout(resolve, 1_500))
    const getter = nodes.findIndex((n, i) => i > 0 && calls[i] === 0)
    expect(getter, 'a node that holds nothing').to.be.greaterThan(0)
    calls.fill(0)
    const answered: string[] = []
    for await (const event of nodes[getter].services.dht.get(key)) {
      if (event.name === 'PEER_RESPONSE' && event.record != null) {
        answered.push(event.from.toString())
      }
    }
    expect(answered.length, 'peers that sent the record').to.be.at.least(3)
    // one check of the one value, however many copies came back
    expect(calls[getter]).to.equal(1)
    // the holders that answered read theirs without running the validator
    for (const id of answered) {
      const i = nodes.findIndex(n => n.peerId.toString() === id)
      expect(calls[i], `holder ${i}`).to.equal(0)
    }
  })

  it('a record refused only because it expired is not held against the holders that sent it; a forged one is', async () => {
    const sent = async (value: string): Promise<{ getter: OurNode, holders: OurNode[] }> => {
      const key = new TextEncoder().encode(`/v/${value}`)
      await all(nodes[0].services.dht.put(key, new TextEncoder().encode(value)))
      await new Promise(resolve => setTimeout(resolve, 1_500))
      // the holders keep serving it once it no longer validates, as go-libp2p-kad-dht's servers do
      refused.set(value, value.includes('expired') ? 'expired' : 'forged')
      const holders: OurNode[] = []
      const getter = nodes[N - 1]
      await expect((async () => {
        for await (const event of getter.services.dht.get(key)) {
          if (event.name === 'PEER_RESPONSE' && event.record != null) {
            holders.push(nodes.find(n => n.peerId.equals(event.from)) as OurNode)
          }
        }
      })()).to.eventually.be.rejected.with.property('name', 'NotFoundError')
      expect(holders.length, 'holders that sent it').to.be.at.least(2)
      return { getter, holders }
    }
    const expired = await sent('ok-expired')
    for (const h of expired.holders) {
      expect(expired.getter.services.dht.peerValue(h.peerId).backoffUntil ?? 0, 'an expired record backs nobody off').to.be.at.most(Date.now())
    }
    const forged = await sent('ok-forged')
    for (const h of forged.holders) {
      expect(forged.getter.services.dht.peerValue(h.peerId).backoffUntil ?? 0, 'a forged record backs its sender off').to.be.above(Date.now())
    }
  })

  it('a get aborted while it validates ends as aborted and counts no sender as invalid', async () => {
    const key = new TextEncoder().encode('/v/aborted')
    const before = [...calls]
    await all(nodes[0].services.dht.put(key, new TextEncoder().encode('ok-aborted')))
    await new Promise(resolve => setTimeout(resolve, 1_500))
    // a node the put did not reach: it validates only what the get brings
    const index = calls.findIndex((n, i) => i > 0 && n === before[i])
    expect(index, 'a node that holds nothing').to.be.greaterThan(0)
    const getter = nodes[index]
    const controller = new AbortController()
    const senders: OurNode[] = []
    abortIn = { node: index, controller }
    try {
      await expect((async () => {
        for await (const event of getter.services.dht.get(key, { signal: controller.signal })) {
          if (event.name === 'PEER_RESPONSE' && event.record != null) {
            senders.push(nodes.find(n => n.peerId.equals(event.from)) as OurNode)
          }
        }
      })()).to.eventually.be.rejected.with.property('name', 'AbortError')
    } finally {
      abortIn = undefined
    }
    expect(senders.length, 'peers that sent the record').to.be.at.least(1)
    for (const s of senders) {
      expect(getter.services.dht.peerValue(s.peerId).backoffUntil ?? 0, 'no sender backed off').to.be.at.most(Date.now())
    }
  })
})
