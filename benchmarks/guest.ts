/* eslint-disable no-console */
/**
 * `npm run bench:guest`: one priority-dht node, default configuration, joins
 * a network of Go peers (go-libp2p-kad-dht, one process each, no tarpits)
 * and does the four operations next to a Go peer of the same network doing
 * the same, one operation at a time, alternating who goes first. Each record
 * is then looked for by the other implementation, so every round also checks
 * interop both ways.
 *
 * Why: in `npm run bench` all of our nodes share one Node process while each
 * Go peer has its own, so on a healthy network the rows compare 40 nodes on
 * one event loop with 40 processes. Here the servers are the same Go peers
 * for both, and only the client differs.
 */
import { SeededRandom } from '../src/core/env.ts'
import { createOurNode } from '../test/libp2p/fixtures/network.ts'
import { createGoNetwork } from './go-network.ts'
import { flagReader, startProfile, stopProfile } from './measure.ts'
import { refreshQuiet, TABLE_TIMEOUT } from './network.ts'
import { summarize } from './stats.ts'
import { DialLedger, round } from './workloads.ts'
import type { BenchNode } from './network.ts'
import type { Sample } from './stats.ts'
import type { Workload } from './workloads.ts'

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`npm run bench:guest -- [options]: one priority-dht node on a network of Go peers vs a Go peer of it

  --nodes N     Go peers (40)
  --rounds N    rounds of provide, findProviders, put, get for each side (20)
  --seed N      seed of the peers' choice (1)
  --cpu-prof F  write a CPU profile of the measured rounds to F (for benchmarks/cpu-profile.ts)
`)
  process.exit(0)
}

const { get, num } = flagReader(process.argv)
const cpuProf = get('cpu-prof')
const nodes = Math.max(4, num('nodes', 40))
const rounds = Math.max(1, num('rounds', 20))
const random = new SeededRandom(num('seed', 1))
const OP_TIMEOUT = 20_000
const log = (msg: string): void => { console.error(msg) }

const net = await createGoNetwork('go', nodes, 20, 0, random, log, TABLE_TIMEOUT, OP_TIMEOUT)
const guest = await createOurNode({ kBucketSize: 20 })
try {
  for (const peer of net.peers.slice(0, 2)) {
    await guest.dial(peer.p2pAddrs())
  }
  const joined = Date.now()
  while (guest.services.dht.routingTable.size < Math.min(20, nodes - 1) && Date.now() - joined < TABLE_TIMEOUT) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const quiet = await refreshQuiet([guest])
  log(`our node joined and settled in ${Date.now() - joined} ms, routing table ${guest.services.dht.routingTable.size}, ${quiet.requests} refresh requests`)

  // the Go peer that works next to ours, and the ones that look for what each published (never a bootstrap)
  const pick = (): BenchNode => net.live[2 + random.int(net.live.length - 2)]
  const goPeer = pick()
  const ours = guest as unknown as BenchNode
  const samples: Record<'ours' | 'go', Record<Workload, Sample[]>> = {
    ours: { provide: [], findProviders: [], put: [], get: [] },
    go: { provide: [], findProviders: [], put: [], get: [] }
  }
  const ledger = new DialLedger(net)
  const profile = cpuProf != null ? await startProfile() : undefined
  const cpu0 = process.cpuUsage()
  for (let r = 0; r < rounds; r++) {
    let seeker = pick()
    while (seeker === goPeer) {
      seeker = pick()
    }
    const order: Array<['ours' | 'go', BenchNode]> = r % 2 === 0 ? [['ours', ours], ['go', goPeer]] : [['go', goPeer], ['ours', ours]]
    for (const [side, node] of order) {
      // what this side publishes is looked for by the other: ours by a Go seeker, Go's by ours
      const other = side === 'ours' ? seeker : ours
      const otherSide = side === 'ours' ? 'go' : 'ours'
      const cidTag = `guest-${side}-${r}-${random.int(2 ** 32)}`
      const done = await round(ledger, { provider: node, seeker: other, cidTag, publisher: node, resolver: other }, OP_TIMEOUT)
      samples[side].provide.push(done.provide)
      samples[side].put.push(done.put)
      samples[otherSide].findProviders.push(done.findProviders)
      samples[otherSide].get.push(done.get)
    }
  }
  const cpu = process.cpuUsage(cpu0)
  if (profile != null && cpuProf != null) {
    await stopProfile(profile, cpuProf)
  }
  const ms = (v: number): string => v >= 100 ? v.toFixed(0) : v.toFixed(1)
  console.log(`\n${nodes} Go peers (go-libp2p-kad-dht), no tarpits, ${rounds} rounds each side, one operation at a time\n`)
  console.log('| operation | priority-dht p50 / p95 | ok | Go p50 / p95 | ok | ours / Go p50 |\n| --- | --- | --- | --- | --- | --- |')
  for (const w of ['provide', 'findProviders', 'put', 'get'] as Workload[]) {
    const a = summarize(samples.ours[w])
    const b = summarize(samples.go[w])
    console.log(`| ${w} | ${ms(a.p50)} / ${ms(a.p95)} ms | ${Math.round(a.success * 100)}% | ${ms(b.p50)} / ${ms(b.p95)} ms | ${Math.round(b.success * 100)}% | ${(a.p50 / b.p50).toFixed(2)}x |`)
  }
  console.log(`\nthis process's CPU (our node, and the harness driving the Go peers) over the measured rounds: ${((cpu.user + cpu.system) / 1000 / (rounds * 4)).toFixed(1)} ms per operation of ours`)
} finally {
  await guest.stop()
  await net.close()
}
