/* eslint-disable no-console */
/**
 * `npm run example`: runs a local network of priority-dht nodes on 127.0.0.1 (no
 * internet needed), then does real lookups through it and prints what
 * happened: findPeer, getClosestPeers, provide/findProviders and an IPNS
 * put/get, each from a different node. Options: --nodes N (default 20),
 * --k K (default 8).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createIPNSRecord, marshalIPNSRecord, multihashToIPNSRoutingKey, unmarshalIPNSRecord } from 'ipns'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { passthroughMapper, priorityDHT } from '../src/index.ts'
import type { PriorityDHT } from '../src/index.ts'
import type { Libp2p } from '@libp2p/interface'

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const v = i === -1 ? NaN : Number(process.argv[i + 1])
  return Number.isFinite(v) && v > 0 ? v : fallback
}

const N = arg('nodes', 20)
const K = arg('k', 8)

async function createNode (): Promise<Libp2p<{ dht: PriorityDHT }>> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    connectionManager: { inboundConnectionThreshold: 10_000, maxIncomingPendingConnections: 1_000 },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: priorityDHT({ clientMode: false, kBucketSize: K, peerInfoMapper: passthroughMapper })
    }
  })
}

const t0 = performance.now()
const ms = (): string => `${(performance.now() - t0).toFixed(0)} ms`.padStart(8)

console.log(`starting ${N} priority-dht nodes on 127.0.0.1 (k = ${K})`)
const nodes = await Promise.all(Array.from({ length: N }, createNode))
for (let i = 1; i < nodes.length; i++) {
  await nodes[i].dial(nodes[0].getMultiaddrs())
}
// let identify and the self lookups settle
while (nodes.some(n => n.services.dht.routingTable.size < Math.min(K, N - 1))) {
  await new Promise(resolve => setTimeout(resolve, 50))
}
const sizes = nodes.map(n => n.services.dht.routingTable.size)
console.log(`${ms()}  routing tables filled: min ${Math.min(...sizes)}, max ${Math.max(...sizes)} peers`)

let found = 0
const started = performance.now()
for (let i = 0; i < N; i++) {
  const from = nodes[i]
  const target = nodes[(i + Math.floor(N / 2)) % N]
  const info = await from.peerRouting.findPeer(target.peerId, { useCache: false })
  if (info.id.equals(target.peerId)) {
    found++
  }
}
console.log(`${ms()}  findPeer over the network: ${found}/${N} found, ${((performance.now() - started) / N).toFixed(1)} ms each`)

const key = new TextEncoder().encode('hello priority-dht')
const closest = []
for await (const peer of nodes[1].peerRouting.getClosestPeers(key)) {
  closest.push(peer.id.toString())
}
console.log(`${ms()}  getClosestPeers("hello priority-dht") from node 1: ${closest.length} peers`)
for (const id of closest) {
  console.log(`            ${id}`)
}

// content routing: node 2 provides a CID, the last node finds it
const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode('hello priority-dht')))
const provider = nodes[2 % N]
const seeker = nodes[N - 1]
await provider.contentRouting.provide(cid)
let providerFound = false
for await (const p of seeker.contentRouting.findProviders(cid)) {
  if (p.id.equals(provider.peerId)) {
    providerFound = true
    break
  }
}
console.log(`${ms()}  provide ${cid.toString().slice(0, 16)}... from node 2, findProviders from node ${N - 1}: ${providerFound ? 'found' : 'NOT found'}`)

// records: an IPNS name published by one node, resolved by another; the newer sequence wins
const nameKey = await generateKeyPair('Ed25519')
const routingKey = multihashToIPNSRoutingKey(nameKey.publicKey.toMultihash())
const day = 24 * 60 * 60 * 1000
await nodes[3 % N].contentRouting.put(routingKey, marshalIPNSRecord(await createIPNSRecord(nameKey, '/ipfs/bafkqaaa', 1n, day)))
await nodes[4 % N].contentRouting.put(routingKey, marshalIPNSRecord(await createIPNSRecord(nameKey, '/ipfs/bafkqaaa', 2n, day)))
const resolved = unmarshalIPNSRecord(await nodes[N - 2].contentRouting.get(routingKey))
console.log(`${ms()}  IPNS sequence 1 put from node 3, sequence 2 from node 4; get from node ${N - 2}: sequence ${resolved.sequence}`)

await Promise.all(nodes.map(async n => n.stop()))
console.log(`${ms()}  stopped`)
if (found !== N || closest.length !== Math.min(K, N - 1) || !providerFound || resolved.sequence !== 2n) {
  process.exitCode = 1
}
