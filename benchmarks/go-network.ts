/**
 * A benchmark network of Go peers (test/interop/go-peer: go-libp2p +
 * go-libp2p-kad-dht, one process each, driven over its line protocol), built
 * like network.ts builds ours: every peer dialled to the first two, routing
 * tables filled, then a seeded share turned into tarpits (the process quits
 * and a plain TCP server takes over its port).
 *
 * Each Go peer is wrapped as a `BenchNode`, so the workloads and the
 * getClosestPeers checks drive it exactly as they drive a js-libp2p node.
 * A command cannot be cancelled from here: the Go peer runs each one under
 * its own `-timeout`, set to the operation timeout.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { buildGoPeer, GoPeer } from '../test/interop/fixtures/go-peer.ts'
import { listenTarpit } from '../test/libp2p/fixtures/tarpit.ts'
import { BOOTSTRAPS, makeTarpits } from './network.ts'
import type { BenchNetwork, BenchNode } from './network.ts'
import type { SeededRandom } from '../src/core/env.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export type GoImplementation = 'go' | 'go-optimistic'

function goNode (peer: GoPeer): BenchNode {
  const toPeers = (ids: string[]): Array<{ id: PeerId }> => ids.map(id => ({ id: peerIdFromString(id) }))
  return {
    peerId: peer.id,
    contentRouting: {
      async provide (cid: CID) { await peer.provide(cid) },
      // one provider per key in the workloads: asking for one ends the lookup when it is found, as the JS side stops at it
      async * findProviders (cid: CID) { yield * (await peer.findProviders(cid, 1)) },
      async put (key: Uint8Array, value: Uint8Array) { await peer.put(key, value) },
      async get (key: Uint8Array) { return peer.get(key) }
    },
    peerRouting: {
      async * getClosestPeers (key: Uint8Array) { yield * toPeers(await peer.closest(key)) }
    }
  }
}

function tcpPort (peer: GoPeer): number {
  const match = peer.multiaddrs.map(ma => /^\/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(ma.toString())).find(m => m != null)
  if (match == null) {
    throw new Error(`go-peer ${peer.id.toString()} has no TCP address on 127.0.0.1`)
  }
  return Number(match[1])
}

/** A network of Go peers; `peers` are the live ones, in the order of `live` (for commands beyond the BenchNode ones, e.g. `provideSweep`) */
export type GoNetwork = BenchNetwork<BenchNode> & { peers: GoPeer[] }

export async function createGoNetwork (impl: GoImplementation, n: number, k: number, tarpitShare: number, random: SeededRandom, log: (msg: string) => void, tableTimeout: number, opTimeout: number): Promise<GoNetwork> {
  if (k !== 20) {
    throw new RangeError('the Go peer runs with go-libp2p-kad-dht\'s bucket size, 20: --k must be 20 with the Go implementations')
  }
  if (await buildGoPeer()) {
    log('built test/interop/go-peer')
  }
  const peers = await Promise.all(Array.from({ length: n }, async () => GoPeer.start({ timeout: opTimeout, optimistic: impl === 'go-optimistic' })))
  const sizes = new Map<GoPeer, number>()
  try {
    for (let i = 1; i < peers.length; i++) {
      for (let b = 0; b < Math.min(BOOTSTRAPS, i); b++) {
        await peers[i].connect(peers[b].p2pAddrs()[0])
      }
    }
    const want = Math.min(k, Math.floor(n / 2))
    const deadline = Date.now() + tableTimeout
    do {
      await Promise.all(peers.map(async p => { sizes.set(p, (await p.routingTable()).length) }))
      if (peers.every(p => (sizes.get(p) ?? 0) >= want)) {
        break
      }
      await new Promise(resolve => setTimeout(resolve, 250))
    } while (Date.now() < deadline)
    const all = [...sizes.values()]
    const short = Math.min(...all) < want ? ` (waited ${tableTimeout / 1000} s for at least ${want} each, going on without)` : ''
    log(`${impl}: ${n} Go peers up, routing tables ${Math.min(...all)}..${Math.max(...all)}${short}`)
  } catch (err) {
    await Promise.all(peers.map(async p => p.stop()))
    throw err
  }

  const { live, tarpits, tarpitIds, tarpitDials } = await makeTarpits(peers, tarpitShare, random, p => p.id, async p => {
    const port = tcpPort(p)
    await p.stop()
    return listenTarpit(port)
  })
  if (tarpits.length > 0) {
    log(`${impl}: ${tarpits.length} Go peers became tarpits`)
  }
  return {
    impl,
    peers: live,
    live: live.map(goNode),
    tarpits,
    tarpitIds,
    tarpitDials,
    close: async () => {
      await Promise.all(live.map(async p => p.stop()))
      await Promise.all(tarpits.map(async t => t.close()))
    }
  }
}
