/**
 * A lying peer on real nodes (issue #12): a libp2p node that serves
 * /ipfs/kad/1.0.0 and answers every FIND_NODE with 20 fabricated peers: of
 * 1000 fresh ids, the 20 nearest its own key, at a closed port of 127.0.0.1
 * (dials are refused). Lookups for the
 * liar's own key, from every honest node that has it in its table, must
 * return the true k closest honest nodes (the liar, taken for a liar, is
 * left out), and each of those nodes must value the liar below one half and
 * below every honest peer in the result (the adapter records the core's
 * `peer-misled` as an invalid response). On main the liar was in every
 * result and valued like an honest peer.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { createLibp2p } from 'libp2p'
import pWaitFor from 'p-wait-for'
import { compareDistance } from '../../src/core/key.ts'
import { Message } from '../../src/generated/dht.ts'
import { kadKey } from '../../src/libp2p/peer-info.ts'
import { LOCAL_CONNECTIONS, startNetwork, stopAll, trueClosest } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { Libp2p, PeerId } from '@libp2p/interface'

const N = 10
const K = 4
const FAKES = 20
const CANDIDATES = 1000

async function startLiar (): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    connectionManager: LOCAL_CONNECTIONS,
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
  // port 1 on the loopback: nothing listens, every dial is refused
  const nowhere = multiaddr('/ip4/127.0.0.1/tcp/1').bytes
  // the lookups are for the liar's own key: name the FAKES of CANDIDATES fresh ids nearest it
  const target = kadKey(node.peerId.toMultihash().bytes)
  const ids = await Promise.all(Array.from({ length: CANDIDATES }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toMultihash().bytes))
  const closerPeers = ids
    .sort((a, b) => compareDistance(kadKey(a), kadKey(b), target))
    .slice(0, FAKES)
    .map(id => ({ id, addrs: [nowhere] }))
  await node.handle('/ipfs/kad/1.0.0', async stream => {
    const lp = lpStream(stream)
    try {
      for (;;) {
        const request = Message.decode(await lp.read())
        await lp.write(Message.encode({ type: request.type, key: request.key, closerPeers, providerPeers: [] }))
      }
    } catch {
      stream.abort(new Error('done'))
    }
  })
  return node
}

describe('libp2p/liars: a peer answering FIND_NODE with fabricated peers', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []
  let liar: Libp2p

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K })
    liar = await startLiar()
    for (const n of nodes) {
      await liar.dial(n.getMultiaddrs())
    }
    // honest nodes verify the liar (it answers) and take it into their tables
    await pWaitFor(() => nodes.filter(n => n.services.dht.routingTable.peers().includes(liar.peerId.toString())).length >= 3, { timeout: 30_000, interval: 100 })
  })

  after(async () => {
    await stopAll(nodes)
    await liar?.stop()
  })

  it('lookups next to the liar return the true k closest honest nodes, and the liar ends up valued below them', async () => {
    const key = liar.peerId.toMultihash().bytes
    const ids = nodes.map(n => n.peerId)
    const askers = nodes.filter(n => n.services.dht.routingTable.peers().includes(liar.peerId.toString()))
    expect(askers.length).to.be.at.least(3)
    for (const from of askers) {
      const found = await all(from.peerRouting.getClosestPeers(key))
      const others = ids.filter(id => !id.equals(from.peerId))
      expect(found.map(p => p.id.toString()), from.peerId.toString()).to.deep.equal(trueClosest(others, key, K))
      const value = (id: PeerId): number => from.services.dht.peerValue(id).value
      const liarValue = value(liar.peerId)
      expect(liarValue).to.be.below(0.5)
      for (const p of found) {
        expect(liarValue).to.be.below(value(p.id))
      }
    }
  })
})
