/**
 * After a third of the network turns into tarpits (ports that accept TCP and
 * never answer), every record put is still found by other nodes, the nodes
 * that met a tarpit have it in back-off, and a node that was connected to a
 * node when it turned into a tarpit never dials it.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { ipnsKey, ipnsRecord } from '../records/fixtures.ts'
import { startNetwork, stopAll } from './fixtures/network.ts'
import { becomeTarpit } from './fixtures/tarpit.ts'
import type { OurNode } from './fixtures/network.ts'
import type { Tarpit } from './fixtures/tarpit.ts'

const N = 24
const K = 6
const TARPITS = 8

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(text)))
}

describe('libp2p/tarpits: records still land and are found when a third of the peers stop answering', function () {
  this.timeout(180_000)
  let nodes: OurNode[] = []
  let live: OurNode[] = []
  let tarpits: Tarpit[] = []
  let tarpitIds = new Set<string>()
  /** "live node index/tarpit id" pairs connected when the tarpits appeared, the tarpit in the node's routing table */
  const connectedPairs = new Set<string>()
  /** the same pairs for every dial a live node started to a tarpit */
  const dialled: string[] = []
  /** each live node's value of each tarpit when the tarpits appeared, by pair */
  const valueBefore = new Map<string, number>()
  /** dials to tarpits not ended yet (their failure is not recorded until they time out) */
  let pendingDials = 0

  before(async () => {
    nodes = await startNetwork(N, { kBucketSize: K })
    // the last TARPITS nodes (never a bootstrap) become tarpits
    const gone = nodes.slice(N - TARPITS)
    live = nodes.slice(0, N - TARPITS)
    tarpitIds = new Set(gone.map(n => n.peerId.toString()))
    live.forEach((node, i) => {
      const table = (node.services.dht as any).coordinator.routingTable
      for (const t of gone) {
        valueBefore.set(`${i}/${t.peerId.toString()}`, node.services.dht.peerValue(t.peerId).value)
      }
      for (const c of node.getConnections()) {
        if (tarpitIds.has(c.remotePeer.toString()) && table.has(c.remotePeer.toString()) === true) {
          connectedPairs.add(`${i}/${c.remotePeer.toString()}`)
        }
      }
      // every dial the node starts goes through its connection manager
      const cm = (node as any).components.connectionManager
      const open = cm.openConnection.bind(cm)
      cm.openConnection = async (peer: any, options: any) => {
        if (!tarpitIds.has(peer.toString())) {
          return open(peer, options)
        }
        dialled.push(`${i}/${peer.toString()}`)
        pendingDials++
        try {
          return await open(peer, options)
        } finally {
          pendingDials--
        }
      }
    })
    tarpits = await Promise.all(gone.map(becomeTarpit))
  })

  after(async () => {
    await stopAll(live)
    await Promise.all(tarpits.map(async t => t.close()))
  })

  it('every provided CID is found by a different live node', async () => {
    for (let i = 0; i < 8; i++) {
      const cid = await cidOf(`tarpit-provide-${i}`)
      const provider = live[i % live.length]
      const seeker = live[(i + 7) % live.length]
      await provider.contentRouting.provide(cid)
      const found = await all(seeker.contentRouting.findProviders(cid))
      expect(found.map(p => p.id.toString())).to.include(provider.peerId.toString(), `CID ${i}`)
    }
  })

  it('every IPNS record put is returned by get on a different live node', async () => {
    for (let i = 0; i < 4; i++) {
      const key = await generateKeyPair('Ed25519')
      const record = await ipnsRecord(key, 1)
      await live[(i * 3) % live.length].contentRouting.put(ipnsKey(key), record)
      expect(await live[(i * 3 + 5) % live.length].contentRouting.get(ipnsKey(key))).to.equalBytes(record)
    }
  })

  it('whoever dialled a tarpit has it in back-off, untagged and worth less; whoever was connected to one when it went away holds it back, undialled', async () => {
    // a dial still running has not failed yet: wait for every one to time out
    await pWaitFor(() => pendingDials === 0, { timeout: 60_000, interval: 50 })
    expect(connectedPairs.size).to.be.greaterThan(0)
    const now = Date.now()
    let failed = 0
    let held = 0
    live.forEach((node, i) => {
      for (const id of tarpitIds) {
        const info = node.services.dht.peerValue(nodes.find(n => n.peerId.toString() === id)!.peerId)
        const pair = `${i}/${id}`
        if (dialled.includes(pair)) {
          failed++
          expect(info.backoffUntil).to.be.greaterThan(now, pair)
          expect(info.category).to.equal('bad')
          expect(info.tag).to.equal(0)
          // worth less than before: how much less depends on how long it was good
          expect(info.value).to.be.lessThan(valueBefore.get(pair) ?? 0, pair)
        } else if (connectedPairs.has(pair)) {
          held++
          expect(info.backoffUntil).to.be.greaterThan(now, pair)
          expect(info.category).to.equal('bad')
          expect(info.tag).to.equal(0)
        }
      }
    })
    // nobody dials a node it saw go away: neither a liveness check nor the next operations
    expect(dialled.filter(pair => connectedPairs.has(pair))).to.deep.equal([])
    expect(held).to.equal(connectedPairs.size)
    // the pairs that were not connected still meet tarpits, and learn
    expect(failed).to.equal(new Set(dialled).size)
    expect(tarpits.reduce((sum, t) => sum + t.accepted, 0)).to.equal(dialled.length)
  })
})
