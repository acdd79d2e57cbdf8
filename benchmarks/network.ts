/**
 * One benchmark network: N nodes of one implementation on 127.0.0.1 (TCP,
 * noise, yamux, identify, ping), routing tables filled, then a share of the
 * nodes turned into tarpits.
 */
import { createOurNode, createTheirNode, routingTableSize, stopAll } from '../test/libp2p/fixtures/network.ts'
import { becomeTarpit } from '../test/libp2p/fixtures/tarpit.ts'
import type { GoImplementation } from './go-network.ts'
import type { SeededRandom } from '../src/core/env.ts'
import type { PriorityDHTInit } from '../src/libp2p/init.ts'
import type { AnyNode } from '../test/libp2p/fixtures/network.ts'
import type { Tarpit } from '../test/libp2p/fixtures/tarpit.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export type Implementation = 'priority-dht' | 'priority-dht-neutral' | 'priority-dht-batched' | 'priority-dht-single' | 'kad-dht' | GoImplementation

export const GO_IMPLEMENTATIONS: Implementation[] = ['go', 'go-optimistic']

/** What the workloads and checks use of a node: a js-libp2p node is one, a Go peer is wrapped as one (go-network.ts) */
export interface BenchNode {
  peerId: PeerId
  contentRouting: {
    provide(cid: CID, options?: AbortOptions): Promise<void>
    findProviders(cid: CID, options?: AbortOptions): AsyncIterable<{ id: PeerId }>
    put(key: Uint8Array, value: Uint8Array, options?: AbortOptions): Promise<void>
    get(key: Uint8Array, options?: AbortOptions): Promise<Uint8Array>
  }
  peerRouting: {
    getClosestPeers(key: Uint8Array, options?: AbortOptions): AsyncIterable<{ id: PeerId }>
  }
}

export interface BenchNetwork<N extends BenchNode = AnyNode> {
  impl: Implementation
  live: N[]
  tarpits: Tarpit[]
  /** peer ids of the nodes that became tarpits */
  tarpitIds: Set<string>
  /** TCP connections accepted by all tarpits so far */
  tarpitDials(): number
  close(): Promise<void>
}

export const BOOTSTRAPS = 2

/** `node` dials `to`; a dial that fails (a loaded machine times out upgrades) is tried up to 3 times */
export async function dialRetrying (node: AnyNode, to: AnyNode, log: (msg: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await node.dial(to.getMultiaddrs())
      return
    } catch (err: any) {
      if (attempt === 3) {
        throw err
      }
      log(`dial to a bootstrap failed (${err.name}), again`)
    }
  }
}

/** Every node dials the first BOOTSTRAPS nodes */
async function connect (nodes: AnyNode[], log: (msg: string) => void): Promise<void> {
  for (let i = 1; i < nodes.length; i++) {
    for (let b = 0; b < Math.min(BOOTSTRAPS, i); b++) {
      await dialRetrying(nodes[i], nodes[b], log)
    }
  }
}

/** How long `createNetwork` waits by default for the routing tables to fill before it goes on with what it has */
export const TABLE_TIMEOUT = 60_000

/**
 * Polls `count` every `tick` ms until it has not changed for `ticks` polls
 * in a row, at most `timeout` ms. Resolves to the ms waited and the last count.
 */
export async function untilSteady (count: () => number | Promise<number>, tick: number, ticks: number, timeout: number): Promise<{ ms: number, requests: number }> {
  const start = Date.now()
  let last = await count()
  let still = 0
  while (Date.now() - start < timeout && still < ticks) {
    await new Promise(resolve => setTimeout(resolve, tick))
    const now = await count()
    still = now === last ? still + 1 : 0
    last = now
  }
  return { ms: Date.now() - start, requests: last }
}

/**
 * Waits until our nodes' start-up refresh (the self lookup, then one per
 * bucket) has gone quiet: no refresh request from any of them for 600 ms,
 * at most `timeout` ms. A Go network has done its refresh by the time its
 * tables are full; ours was still refreshing, dialling and verifying when
 * the measurement began. Resolves to the ms waited and the refresh requests
 * sent by then.
 */
export async function refreshQuiet (nodes: Array<{ services: { dht: { usage(): { purposes: { refresh: { requests: number } } } } } }>, timeout = TABLE_TIMEOUT): Promise<{ ms: number, requests: number }> {
  return untilSteady(() => nodes.reduce((sum, node) => sum + node.services.dht.usage().purposes.refresh.requests, 0), 200, 3, timeout)
}

/** A seeded choice of `round(share * n)` nodes among the non-bootstrap ones */
export function chooseTarpits <T> (nodes: T[], share: number, random: SeededRandom): Set<T> {
  const candidates = nodes.slice(BOOTSTRAPS)
  const count = Math.round(share * nodes.length)
  const chosen = new Set<T>()
  while (chosen.size < Math.min(count, candidates.length)) {
    chosen.add(candidates[random.int(candidates.length)])
  }
  return chosen
}

/**
 * Turns the seeded choice of `chooseTarpits` into tarpits (`become`: the
 * node stops and a server that never answers takes its port): the live
 * rest, the tarpits, their peer ids and a count of the connections they
 * accepted
 */
export async function makeTarpits <T> (nodes: T[], share: number, random: SeededRandom, idOf: (node: T) => PeerId, become: (node: T) => Promise<Tarpit>): Promise<{ live: T[], tarpits: Tarpit[], tarpitIds: Set<string>, tarpitDials(): number }> {
  const chosen = chooseTarpits(nodes, share, random)
  const tarpits = await Promise.all([...chosen].map(become))
  return {
    live: nodes.filter(node => !chosen.has(node)),
    tarpits,
    tarpitIds: new Set([...chosen].map(node => idOf(node).toString())),
    tarpitDials: () => tarpits.reduce((sum, t) => sum + t.accepted, 0)
  }
}

export async function createNetwork (impl: Implementation, n: number, k: number, tarpitShare: number, random: SeededRandom, log: (msg: string) => void, tableTimeout = TABLE_TIMEOUT, ours: PriorityDHTInit = {}): Promise<BenchNetwork> {
  if (GO_IMPLEMENTATIONS.includes(impl)) {
    throw new RangeError(`${impl} is a network of Go peers: createGoNetwork (go-network.ts) builds it`)
  }
  const nodes: AnyNode[] = await Promise.all(Array.from({ length: n }, async () => {
    switch (impl) {
      case 'kad-dht': return createTheirNode({ kBucketSize: k })
      case 'priority-dht-neutral': return createOurNode({ ...ours, kBucketSize: k, neutral: true })
      case 'priority-dht-batched': return createOurNode({ ...ours, kBucketSize: k, provideBatching: { window: 50 } })
      default: return createOurNode({ ...ours, kBucketSize: k })
    }
  }))
  await connect(nodes, log)
  // tables: everyone knows at least min(k, n/2) servers (kad-dht fills its table slowly)
  const want = Math.min(k, Math.floor(n / 2))
  const deadline = Date.now() + tableTimeout
  while (nodes.some(node => routingTableSize(node) < want) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const sizes = nodes.map(routingTableSize)
  const short = Math.min(...sizes) < want ? ` (waited ${tableTimeout / 1000} s for at least ${want} each, going on without)` : ''
  log(`${impl}: ${n} nodes up, routing tables ${Math.min(...sizes)}..${Math.max(...sizes)}${short}`)
  if (impl !== 'kad-dht') {
    // settled before conditions change, as a Go network is (kad-dht nodes report no refresh traffic)
    const quiet = await refreshQuiet(nodes as Array<AnyNode & { services: { dht: { usage(): { purposes: { refresh: { requests: number } } } } } }>, tableTimeout)
    log(`${impl}: refresh quiet after ${quiet.ms} ms more (${quiet.requests} refresh requests in all)`)
  }

  // tarpits: a seeded choice among the non-bootstrap nodes
  const { live, tarpits, tarpitIds, tarpitDials } = await makeTarpits(nodes, tarpitShare, random, node => node.peerId, becomeTarpit)
  if (tarpits.length > 0) {
    log(`${impl}: ${tarpits.length} nodes became tarpits`)
  }
  return {
    impl,
    live,
    tarpits,
    tarpitIds,
    tarpitDials,
    close: async () => {
      await stopAll(live)
      await Promise.all(tarpits.map(async t => t.close()))
    }
  }
}
