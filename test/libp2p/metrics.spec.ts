/**
 * Metrics and usage accounting through the public API: one node runs with
 * `@libp2p/prometheus-metrics` and every metric the README's "Operating a
 * node" table names shows up in its registry with a non-zero value after
 * operations that should move it; the usage figures of a node without a
 * metrics component bill each operation's requests to its purpose and add
 * up to the messenger's and the handler's own totals.
 */
import { readFile } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { lpStream } from '@libp2p/utils'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { Registry } from 'prom-client'
import { MessageType } from '../../src/generated/dht.ts'
import { passthroughMapper, priorityDHT } from '../../src/index.ts'
import { Accounting, OPERATIONS, PURPOSES } from '../../src/libp2p/metrics.ts'
import { ipnsKey, ipnsRecord } from '../records/fixtures.ts'
import { connectToBootstraps, createOurNode, localNodeOptions, stopAll, waitForTables } from './fixtures/network.ts'
import type { OurNode } from './fixtures/network.ts'
import type { PriorityDHTInit } from '../../src/index.ts'
import type { QueryEvent } from '../../src/libp2p/events.ts'
import type { Purpose, TrafficFigures, Usage } from '../../src/libp2p/metrics.ts'

const N = 8
const K = 4

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(text)))
}

/** The metric names in the README's "Operating a node" table */
async function documentedNames (): Promise<string[]> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
  const section = readme.split('\n## Operating a node')[1]?.split('\n## ')[0] ?? ''
  return [...section.matchAll(/^\| `(priority_dht_[a-z_]+)` \|/gm)].map(m => m[1])
}

/** A scraped metric as prom-client gives it (histograms name each sample) */
interface Scraped {
  type: string
  values: Array<{ value: number, labels: Record<string, string | number | undefined>, metricName?: string }>
}

async function scrape (registry: Registry, name: string): Promise<Scraped | undefined> {
  return registry.getSingleMetric(name)?.get() as Promise<Scraped> | undefined
}

/** Sum over a metric's samples; for a histogram, its observation count */
async function total (registry: Registry, name: string): Promise<number | undefined> {
  const metric = await scrape(registry, name)
  if (metric == null) {
    return undefined
  }
  const { type, values } = metric
  const samples = type === 'histogram' ? values.filter(v => v.metricName === `${name}_count`) : values
  return samples.reduce((sum, v) => sum + v.value, 0)
}

async function sample (registry: Registry, name: string, label: string, value: string): Promise<number> {
  const values = (await scrape(registry, name))?.values ?? []
  return values.filter(v => v.labels[label] === value && (v.metricName == null || !v.metricName.endsWith('_bucket'))).reduce((sum, v) => sum + v.value, 0)
}

async function drain (events: AsyncIterable<QueryEvent>): Promise<QueryEvent[]> {
  return all(events)
}

function sum (usage: Usage, field: keyof TrafficFigures): number {
  return PURPOSES.filter(p => p !== 'inbound').reduce((s, p) => s + usage.purposes[p][field], 0)
}

function requestsOf (usage: Usage, purpose: Purpose): number {
  return usage.purposes[purpose].requests
}

/** Requests an operation's own events show it made: lookup queries and deliveries that were answered */
function visibleRequests (events: QueryEvent[]): number {
  return events.filter(e => e.name === 'SEND_QUERY' || (e.name === 'PEER_RESPONSE' && (e.messageName === 'ADD_PROVIDER' || e.messageName === 'PUT_VALUE'))).length
}

describe('libp2p/metrics: the service\'s metrics through libp2p\'s Metrics component', function () {
  this.timeout(180_000)
  const registry = new Registry()
  let observed: OurNode
  let plain: OurNode[] = []

  before(async () => {
    const init: PriorityDHTInit = {
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      // buckets that never fill on N nodes: a held-back entry is replaced
      // by a proven newcomer without a dial, and then the lookups below
      // would never meet the failure they are here to count
      kBucketSize: 2 * N,
      // a republish soon after each provide, and hedges on any request slower than a few ms
      reprovide: { schedule: { republishInterval: 1500, jitter: 0 } },
      // a peer whose connection broke is held back for only 300 ms, so a lookup after that meets its failure
      peerStack: { hedgeFloor: 0, hedgeCeiling: 5, suspectFor: 300 }
    }
    observed = await createLibp2p({
      ...localNodeOptions(priorityDHT(init)),
      metrics: prometheusMetrics({ registry, collectDefaultMetrics: false })
    }) as unknown as OurNode
    plain = await Promise.all(Array.from({ length: N - 1 }, async () => createOurNode({ kBucketSize: K })))
    const nodes = [...plain, observed]
    await connectToBootstraps(nodes, 2)
    await waitForTables(nodes, K)
  })

  after(async () => {
    await stopAll([observed, ...plain])
  })

  it('every metric the README names is registered and non-zero after operations that move it', async () => {
    const dht = observed.services.dht
    const cid = await cidOf('metrics-provide')
    await drain(dht.provide(cid))
    await drain(dht.findProviders(cid))
    const key = await generateKeyPair('Ed25519')
    await drain(dht.put(ipnsKey(key), await ipnsRecord(key, 1)))
    await drain(dht.get(ipnsKey(key)))
    await dht.provideMany([await cidOf('metrics-bulk-1'), await cidOf('metrics-bulk-2')])
    // an error: nobody holds this record
    const missing = await generateKeyPair('Ed25519')
    await expect(drain(dht.get(ipnsKey(missing)))).to.eventually.be.rejected()
    // inbound: another node looks up our own key (so it must ask us), and one sends us garbage
    await drain(plain[3].services.dht.getClosestPeers(observed.peerId.toMultihash().bytes))
    const stream = await plain[4].dialProtocol(observed.peerId, dht.protocol)
    await lpStream(stream).write(new Uint8Array([0xff, 0xff, 0xff]))
    // failures, back-off and skipped candidates: a peer goes away and we look near it twice
    const gone = plain[N - 2]
    // asked first (it is nearest its own key), so we know it and hold a connection when it stops
    await drain(dht.getClosestPeers(gone.peerId.toMultihash().bytes))
    await pWaitFor(() => observed.getConnections(gone.peerId).length > 0, { timeout: 10_000 })
    await gone.stop()
    // the disconnect holds it back (a lookup racing it would meet a failure first); then the hold ends
    await pWaitFor(() => dht.peerValue(gone.peerId).category === 'bad', { timeout: 10_000, interval: 10 })
    await new Promise(resolve => setTimeout(resolve, 400))
    await drain(dht.getClosestPeers(gone.peerId.toMultihash().bytes))
    await drain(dht.getClosestPeers(gone.peerId.toMultihash().bytes))
    // a stall of ours: the event loop blocked past a request's window (the
    // 1 s floor) while a lookup's requests are in flight, from the check
    // phase so their timers are armed and fire before the answers are read
    let blocked = false
    for await (const event of dht.getClosestPeers((await cidOf('metrics-stall')).multihash.bytes)) {
      if (event.name === 'SEND_QUERY' && !blocked) {
        blocked = true
        setImmediate(() => {
          const until = Date.now() + 1500
          while (Date.now() < until) {
            // blocking the event loop on purpose
          }
        })
      }
    }
    // the republish runs 1.5 s after the provides
    await new Promise(resolve => setTimeout(resolve, 2500))

    const names = await documentedNames()
    expect(names).to.have.length.above(20)
    const zero: string[] = []
    for (const name of names) {
      const value = await total(registry, name)
      expect(value, `${name} is not registered`).to.not.equal(undefined)
      if (value === 0) {
        zero.push(name)
      }
    }
    expect(zero, 'metrics still at zero').to.deep.equal([])

    // every label value comes from a fixed set: never a peer id or a key
    const fixed = new Set<string>([
      ...PURPOSES, ...Object.keys(OPERATIONS), ...Object.keys(MessageType),
      'dial-timeout', 'dial-refused', 'protocol-unsupported', 'stream-reset', 'timeout', 'bad-response', 'aborted', 'overloaded',
      'converged', 'exhausted', 'stopped', 'request-limit', 'refused', 'malformed', 'failed',
      'unknown', 'proving', 'active', 'inactive', 'bad', 'requested', 'done', 'provided', 'ok',
      'provider_keys', 'provider_records', 'value_records', 'failure', 'disconnect'
    ])
    for (const metric of await registry.getMetricsAsJSON()) {
      if (!metric.name.startsWith('priority_dht_')) {
        continue
      }
      for (const v of metric.values) {
        for (const [label, value] of Object.entries(v.labels)) {
          if (label === 'le') {
            continue
          }
          const ok = label === 'cpl' ? /^\d+$/.test(String(value)) && Number(value) <= 256 : fixed.has(String(value))
          expect(ok, `${metric.name}{${label}="${value}"}`).to.equal(true)
        }
      }
    }

    // a few labels that must carry the counts
    expect(await sample(registry, 'priority_dht_operations_total', 'operation', 'provide'), 'provides').to.be.at.least(1)
    expect(await sample(registry, 'priority_dht_operation_errors_total', 'operation', 'get'), 'failed gets').to.equal(1)
    expect(await sample(registry, 'priority_dht_outbound_requests_total', 'type', 'ADD_PROVIDER'), 'ADD_PROVIDER sent').to.be.at.least(1)
    expect(await sample(registry, 'priority_dht_inbound_requests_total', 'type', 'FIND_NODE'), 'FIND_NODE received').to.be.at.least(1)
    expect(await sample(registry, 'priority_dht_inbound_errors_total', 'reason', 'malformed'), 'malformed received').to.be.at.least(1)
    expect(await sample(registry, 'priority_dht_usage_requests_total', 'purpose', 'get'), 'requests billed to get').to.be.at.least(1)
    expect(await sample(registry, 'priority_dht_store_size', 'store', 'value_records'), 'value records').to.be.at.least(1)
    expect(await total(registry, 'priority_dht_routing_table_size')).to.be.at.least(K)
    // the peer that went away was connected: held back, not dialled
    expect(await sample(registry, 'priority_dht_backoffs_total', 'reason', 'disconnect'), 'held back after a disconnect').to.be.at.least(1)

    // the usage metrics say what usage() says
    const usage = dht.usage()
    for (const purpose of ['provide', 'get', 'lookup', 'inbound'] as const) {
      expect(await sample(registry, 'priority_dht_usage_requests_total', 'purpose', purpose)).to.equal(usage.purposes[purpose].requests, purpose)
    }
  })
})

describe('libp2p/metrics: usage by purpose adds up (no metrics component)', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []

  before(async () => {
    nodes = await Promise.all(Array.from({ length: N }, async () => createOurNode({ kBucketSize: K })))
    await connectToBootstraps(nodes, 2)
    await waitForTables(nodes, K)
  })

  after(async () => {
    await stopAll(nodes)
  })

  it('a provide\'s requests are billed to provide and a get\'s to get; purposes sum to the messenger\'s and the handler\'s totals', async () => {
    const node = nodes[5]
    const dht = node.services.dht
    const before = dht.usage()

    const provideEvents = await drain(dht.provide(await cidOf('usage-provide')))
    const afterProvide = dht.usage()
    expect(requestsOf(afterProvide, 'provide') - requestsOf(before, 'provide')).to.be.at.least(Math.max(1, visibleRequests(provideEvents)))
    expect(afterProvide.purposes.provide.operations - before.purposes.provide.operations).to.equal(1)
    expect(requestsOf(afterProvide, 'get')).to.equal(requestsOf(before, 'get'))
    expect(requestsOf(afterProvide, 'put')).to.equal(requestsOf(before, 'put'))

    const key = await generateKeyPair('Ed25519')
    await drain(nodes[2].services.dht.put(ipnsKey(key), await ipnsRecord(key, 1)))
    const beforeGet = dht.usage()
    const getEvents = await drain(dht.get(ipnsKey(key)))
    expect(getEvents.some(e => e.name === 'VALUE')).to.equal(true)
    const afterGet = dht.usage()
    expect(requestsOf(afterGet, 'get') - requestsOf(beforeGet, 'get')).to.be.at.least(Math.max(1, visibleRequests(getEvents)))
    expect(afterGet.purposes.get.operations - beforeGet.purposes.get.operations).to.equal(1)

    await drain(dht.getClosestPeers(new TextEncoder().encode('usage-lookup')))
    await drain(nodes[1].services.dht.findProviders(await cidOf('usage-provide')))

    const usage = dht.usage()
    expect(usage.purposes.lookup.requests).to.be.above(0)
    // nothing goes unattributed, and each request is billed once
    expect(usage.purposes.other).to.deep.equal({ operations: 0, requests: 0, failures: 0, dials: 0, streams: 0, bytesSent: 0, bytesReceived: 0 })
    for (const field of ['requests', 'failures', 'dials', 'streams', 'bytesSent', 'bytesReceived'] as const) {
      expect(sum(usage, field), field).to.equal(usage.outbound[field])
    }
    expect(usage.outbound.requests).to.be.above(0)
    expect(usage.outbound.bytesSent).to.be.above(0)
    expect(usage.outbound.bytesReceived).to.be.above(0)
    // serving others is billed to inbound, and only there
    const { operations, ...inbound } = usage.purposes.inbound
    expect(operations).to.equal(0)
    expect(inbound).to.deep.equal(usage.inbound)
    expect(usage.inbound.requests).to.be.above(0)
  })
})

describe('libp2p/metrics: without a metrics component', () => {
  it('registers nothing and hands operations their own event stream, unwrapped, while usage still counts', async () => {
    async function * events (): AsyncGenerator<number, void, undefined> {
      yield 1
    }
    const accounting = new Accounting(undefined)
    expect(accounting.enabled).to.equal(false)
    const source = events()
    expect(accounting.events('get', source)).to.equal(source)
    expect(accounting.backoffHook()).to.equal(undefined)
    accounting.request('get', MessageType.GET_VALUE)
    accounting.bytes('get', 10, 20)
    expect(accounting.purposes().get).to.deep.equal({ operations: 1, requests: 1, failures: 0, dials: 0, streams: 0, bytesSent: 10, bytesReceived: 20 })
  })

  it('with one, registers every metric under the prefix and wraps operations', async () => {
    const names: string[] = []
    const record = (name: string): any => {
      names.push(name)
      return { increment () {}, observe () {}, update () {}, reset () {} }
    }
    const metrics: any = { registerMetric: record, registerMetricGroup: record, registerCounter: record, registerCounterGroup: record, registerHistogramGroup: record }
    const accounting = new Accounting(metrics, { routingTableSize: () => 0 }, 'my_dht')
    expect(accounting.enabled).to.equal(true)
    expect(names).to.include('my_dht_operations_total')
    expect(names).to.include('my_dht_routing_table_size')
    expect(names.every(n => n.startsWith('my_dht_'))).to.equal(true)
    expect(names).to.not.include('my_dht_store_size') // its gauge was not given
    async function * events (): AsyncGenerator<number, void, undefined> {
      yield 1
    }
    const source = events()
    expect(accounting.events('get', source)).to.not.equal(source)
  })
})
