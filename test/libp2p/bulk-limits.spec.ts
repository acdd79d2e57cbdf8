/**
 * Bulk provide under the inbound limits: provideMany goes at the pace its
 * holders serve, so when it resolves every record it counts as delivered
 * is stored at its holders, and the limits (defaults, or much tighter ones)
 * refuse nothing of an honest bulk provider.
 */
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { providerRecords } from '../flood/floods.ts'
import { connectToBootstraps, createOurNode, stopAll, waitForTables } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { PriorityDHTInit } from '../../src/index.ts'

async function cids (prefix: string, n: number): Promise<CID[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`${prefix}-${i}`)))))
}

/** A provider and two servers (k = 2: every key goes to both), the servers with `inbound` limits and their own datastores */
async function network (inbound: PriorityDHTInit['inbound']): Promise<{ provider: OurNode, servers: OurNode[], stores: MemoryDatastore[] }> {
  const stores = [new MemoryDatastore(), new MemoryDatastore()]
  const servers = await Promise.all(stores.map(async datastore => createOurNode({ kBucketSize: 2, inbound }, { datastore })))
  const provider = await createOurNode({ kBucketSize: 2 })
  const nodes = [...servers, provider]
  await connectToBootstraps(nodes, 2)
  await waitForTables(nodes, 2)
  return { provider, servers, stores }
}

describe('libp2p/bulk under the inbound limits', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  afterEach(async () => {
    await stopAll(nodes)
    nodes = []
  })

  it('with the default limits, 3000 records to each holder are all stored when provideMany resolves, none refused', async () => {
    const { provider, servers, stores } = await network(undefined)
    nodes = [provider, ...servers]
    const result = await provider.services.dht.provideMany(await cids('defaults', 3000))
    expect(result).to.deep.include({ keys: 3000, keysDone: 3000, provided: 3000, failures: 0, messages: 6000 })
    for (const [i, server] of servers.entries()) {
      // read at once: what was counted as delivered is there, not still in a stream's buffer
      expect(await providerRecords(stores[i])).to.deep.equal({ keys: 3000, records: 3000 })
      expect(server.services.dht.inbound).to.deep.include({ refusedStreams: 0, refusedPeerStreams: 0, rateLimitedRequests: 0, droppedProviders: 0 })
    }
  })

  it('holders that serve 200 messages a second slow provideMany down but neither refuse nor lose a record', async () => {
    const { provider, servers, stores } = await network({ requestsPerSecond: 200, requestBurst: 20 })
    nodes = [provider, ...servers]
    const result = await provider.services.dht.provideMany(await cids('tight', 400))
    expect(result).to.deep.include({ keys: 400, keysDone: 400, provided: 400, failures: 0, messages: 800 })
    for (const [i, server] of servers.entries()) {
      expect(await providerRecords(stores[i])).to.deep.equal({ keys: 400, records: 400 })
      const inbound = server.services.dht.inbound
      expect(inbound).to.deep.include({ refusedStreams: 0, refusedPeerStreams: 0, rateLimitedRequests: 0, droppedProviders: 0 })
      // the bucket did pace the provider: it went no faster than the holder served
      expect(inbound.delayedRequests).to.be.greaterThan(0)
    }
  })
})
