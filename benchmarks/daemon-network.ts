/**
 * A benchmark network of our own nodes, one process each: `priority-dht
 * daemon` (src/cli, default configuration; loopback addresses kept, server
 * mode), built like go-network.ts builds Go's: every daemon bootstrapped
 * from the first two, routing tables filled, then a seeded share turned
 * into tarpits (the process stops and a plain TCP server takes over its
 * port). Each server then has an event loop of its own, as each Go peer
 * has, where network.ts runs every node in the benchmark's one process.
 *
 * Each daemon is wrapped as a `BenchNode` driven through
 * `@libp2p/daemon-client`, so the bulk benchmark's checks look for
 * providers from it as they do from a Go peer.
 */
import { createClient } from '@libp2p/daemon-client'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { daemon } from '../test/cli/fixtures/daemon.ts'
import { listenTarpit } from '../test/libp2p/fixtures/tarpit.ts'
import { BOOTSTRAPS, makeTarpits, untilSteady } from './network.ts'
import type { BenchNetwork, BenchNode } from './network.ts'
import type { SeededRandom } from '../src/core/env.ts'
import type { Daemon } from '../test/cli/fixtures/daemon.ts'
import type { PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** Daemons started at once: each takes about a CPU second to load */
const STARTING = 4

export interface ProcessPeer {
  daemon: Daemon
  id: PeerId
  /** its listen addresses, `/p2p/` included */
  addrs: string[]
}

/**
 * A network of daemons; `peers` are the live ones, in the order of `live`;
 * `inbound()` sums what the live daemons' inbound limits counted
 * (`services.dht.inbound`, from each one's `/stats`)
 */
export type DaemonNetwork = BenchNetwork<BenchNode> & { peers: ProcessPeer[], inbound(): Promise<Record<string, number>> }

function tcpPort (peer: ProcessPeer): number {
  const match = peer.addrs.map(a => /^\/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(a)).find(m => m != null)
  if (match == null) {
    throw new Error(`daemon ${peer.id.toString()} has no TCP address on 127.0.0.1`)
  }
  return Number(match[1])
}

async function stats (peer: ProcessPeer): Promise<{ routingTable: { size: number }, usage: { purposes: Record<string, { requests: number }> }, inbound: Record<string, number> }> {
  const res = await fetch(`${peer.daemon.metrics}/stats`, { signal: AbortSignal.timeout(10_000) })
  return res.json()
}

async function stop (peer: ProcessPeer): Promise<void> {
  if (peer.daemon.child.exitCode == null && peer.daemon.child.signalCode == null) {
    peer.daemon.child.kill('SIGTERM')
  }
  const timeout = setTimeout(() => peer.daemon.child.kill('SIGKILL'), 10_000)
  await peer.daemon.exited
  clearTimeout(timeout)
}

function benchNode (peer: ProcessPeer): BenchNode {
  const client = createClient(multiaddr(peer.daemon.api))
  return {
    peerId: peer.id,
    contentRouting: {
      async provide (cid: CID) { await client.dht.provide(cid) },
      // one provider per key in the checks, as the Go peers are asked
      async * findProviders (cid: CID, options: { signal?: AbortSignal } = {}) {
        const found = client.dht.findProviders(cid, 1)[Symbol.asyncIterator]()
        while (true) {
          options.signal?.throwIfAborted()
          const next = await (options.signal == null ? found.next() : Promise.race([found.next(), abortion(options.signal)]))
          if (next.done === true) {
            return
          }
          yield next.value
        }
      },
      async put (key: Uint8Array, value: Uint8Array) { await client.dht.put(key, value) },
      async get (key: Uint8Array) { return client.dht.get(key) }
    },
    peerRouting: {
      async * getClosestPeers (key: Uint8Array) { yield * client.dht.getClosestPeers(key) }
    }
  }
}

async function abortion (signal: AbortSignal): Promise<never> {
  return new Promise((resolve, reject) => {
    signal.addEventListener('abort', () => { reject(signal.reason) }, { once: true })
  })
}

export async function createDaemonNetwork (n: number, k: number, tarpitShare: number, random: SeededRandom, log: (msg: string) => void, tableTimeout: number): Promise<DaemonNetwork> {
  const peers: ProcessPeer[] = []
  const start = async (bootstraps: string[]): Promise<ProcessPeer> => {
    const d = await daemon('--k', String(k), ...bootstraps.flatMap(b => ['--bootstrap', b]))
    return { daemon: d, id: peerIdFromString(d.peerId), addrs: d.listen }
  }
  try {
    peers.push(await start([]))
    while (peers.length < n) {
      const bootstraps = peers.slice(0, BOOTSTRAPS).map(p => p.addrs[0])
      peers.push(...await Promise.all(Array.from({ length: Math.min(STARTING, n - peers.length) }, async () => start(bootstraps))))
    }
    const want = Math.min(k, Math.floor(n / 2))
    const sizes = new Map<ProcessPeer, number>()
    const deadline = Date.now() + tableTimeout
    do {
      await Promise.all(peers.map(async p => { sizes.set(p, (await stats(p)).routingTable.size) }))
      if (peers.every(p => (sizes.get(p) ?? 0) >= want)) {
        break
      }
      await new Promise(resolve => setTimeout(resolve, 250))
    } while (Date.now() < deadline)
    // then until their start-up refreshes are over (no refresh request for a second), as
    // the Go peers' are by the time anything is measured: a daemon's first peer starts a
    // lookup per bucket, and 40 of them at once would take the provider's CPU
    const quiet = await untilSteady(async () => (await Promise.all(peers.map(async p => (await stats(p)).usage.purposes.refresh?.requests ?? 0))).reduce((a, b) => a + b, 0), 250, 4, Math.max(0, deadline + tableTimeout - Date.now()))
    const all = [...sizes.values()]
    const short = Math.min(...all) < want ? ` (waited ${tableTimeout / 1000} s for at least ${want} each, going on without)` : ''
    log(`priority-dht-procs: ${n} daemons up, routing tables ${Math.min(...all)}..${Math.max(...all)}${short}, refreshes quiet after ${quiet.ms} ms (${quiet.requests} refresh requests)`)
  } catch (err) {
    await Promise.all(peers.map(stop))
    throw err
  }

  const { live, tarpits, tarpitIds, tarpitDials } = await makeTarpits(peers, tarpitShare, random, p => p.id, async p => {
    const port = tcpPort(p)
    await stop(p)
    return listenTarpit(port)
  })
  if (tarpits.length > 0) {
    log(`priority-dht-procs: ${tarpits.length} daemons became tarpits`)
  }
  return {
    impl: 'priority-dht',
    peers: live,
    live: live.map(benchNode),
    tarpits,
    tarpitIds,
    tarpitDials,
    inbound: async () => {
      const totals: Record<string, number> = {}
      for (const { inbound } of await Promise.all(live.map(stats))) {
        for (const [key, value] of Object.entries(inbound)) {
          totals[key] = (totals[key] ?? 0) + (typeof value === 'number' ? value : 0)
        }
      }
      return totals
    },
    close: async () => {
      await Promise.all(live.map(stop))
      await Promise.all(tarpits.map(async t => t.close()))
    }
  }
}
