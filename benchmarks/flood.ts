/* eslint-disable no-console */
/**
 * `npm run flood [-- --seconds S --only kind,kind]`: floods on a real
 * priority-dht server over TCP on 127.0.0.1 with its DEFAULT limits, and an
 * honest peer's request latency idle vs. during each flood.
 *
 * The server and the honest peer run in this process; each flood runs in a
 * child process (benchmarks/flood-worker.ts), so the flooder's own CPU is not
 * spent on the server's event loop (on a 2-core machine it still competes for
 * the cores). The honest peer sends GET_VALUE of its record, GET_PROVIDERS of
 * its key and FIND_NODE in turn, one at a time, each on a fresh stream, and
 * checks every answer for its records. Floods:
 * - streams: one peer opens 5000 streams over 4 connections and holds them;
 * - requests: one peer writes FIND_NODE requests on 64 streams as fast as it can;
 * - providers: 1000 fresh peer ids, 16 at a time, each writing ADD_PROVIDER
 * for 1000 random keys on 8 streams (1 000 000 keys in all);
 * - gets: 3 peers writing GET_VALUE and GET_PROVIDERS (random keys and the
 * honest peer's) on 32 streams each.
 * Each flood runs until its worker is done or its time is up (streams 20 s,
 * requests 30 s, providers 300 s, gets 30 s; `--seconds S` sets all).
 * Reports per flood: honest latency p50/p95/max, failures, records missing,
 * the flooder's sent/answered/reset, what the limits counted, the provider
 * store's size, the server process's peak RSS and heap, its event-loop
 * utilisation and CPU ms per second (server and honest peer; the flooder's
 * process is not counted).
 */
import { spawn } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { MemoryDatastore } from 'datastore-core'
import { createHonest, createServer, percentile, probe, providerRecords } from '../test/flood/floods.ts'
import type { ProbeResult } from '../test/flood/floods.ts'

function arg (name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : process.argv[i + 1]
}
const DURATIONS: Record<string, number> = { streams: 20, requests: 30, providers: 300, gets: 30 }
const fixed = arg('seconds', '')
const seconds = (kind: string): number => fixed === '' ? DURATIONS[kind] ?? 30 : Number(fixed)
const only = arg('only', 'streams,requests,providers,gets').split(',')
const mib = (n: number): number => Math.round(n / 1024 / 1024)

const datastore = new MemoryDatastore()
const server = await createServer({}, datastore)
const honest = await createHonest(server)
const addr = server.getMultiaddrs()[0].toString()

function summary (r: ProbeResult): { n: number, p50: number, p95: number, max: number, failures: number, missing: number } {
  return {
    n: r.latencies.length,
    p50: Number(percentile(r.latencies, 50).toFixed(2)),
    p95: Number(percentile(r.latencies, 95).toFixed(2)),
    max: Number(Math.max(...r.latencies).toFixed(2)),
    failures: r.failures.length,
    missing: r.missing
  }
}

async function runWorker (kind: string, extra = ''): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--experimental-transform-types', '--no-warnings', join(import.meta.dirname, 'flood-worker.ts'), kind, addr, String(seconds(kind)), extra], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', d => { out += String(d) })
    child.on('error', reject)
    child.on('exit', code => {
      try {
        resolve({ code, ...JSON.parse(out.trim().split('\n').pop() ?? '{}') })
      } catch {
        resolve({ code, output: out })
      }
    })
  })
}

// the honest peer waits 20 ms between requests (at most 50 a second), below
// the light rate of strangers (100 a second): it never waits for the strangers'
// pool, so its latency is the server's, not a bucket's
const GAP = 20
// warm up, then idle latency
await probe(honest, server, { count: 60, gap: GAP })
const idle = summary(await probe(honest, server, { count: 300, gap: GAP }))
console.log('idle', JSON.stringify(idle))
const rows: any[] = []
for (const kind of only) {
  const before = server.services.dht.inbound
  let peakRss = 0
  let peakHeap = 0
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakRss = Math.max(peakRss, m.rss)
    peakHeap = Math.max(peakHeap, m.heapUsed)
  }, 100)
  const stop = new AbortController()
  const elu = performance.eventLoopUtilization()
  const cpu = process.cpuUsage()
  const worker = runWorker(kind, Buffer.from(honest.providerKey).toString('hex'))
  // let the flood get going before measuring
  await new Promise(resolve => setTimeout(resolve, 1500))
  const probing = probe(honest, server, { stop: stop.signal, gap: GAP })
  const started = Date.now()
  const flood = await worker
  stop.abort()
  const during = summary(await probing)
  clearInterval(sampler)
  const after = server.services.dht.inbound
  const limits = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before as any)[k]]))
  const busy = performance.eventLoopUtilization(elu)
  const used = process.cpuUsage(cpu)
  const held = await providerRecords(datastore)
  const row = { flood: kind, providerStore: held, seconds: Math.round((Date.now() - started) / 1000), idle, during, ratioP50: Number((during.p50 / idle.p50).toFixed(2)), ratioP95: Number((during.p95 / idle.p95).toFixed(2)), flooder: flood, limits, peakRssMiB: mib(peakRss), peakHeapMiB: mib(peakHeap), serverLoopUtilisation: Number(busy.utilization.toFixed(2)), serverCpuMsPerSecond: Math.round((used.user + used.system) / 1000 / (busy.idle + busy.active) * 1000) }
  rows.push(row)
  console.log(JSON.stringify(row))
  // let the server drain before the next flood
  await new Promise(resolve => setTimeout(resolve, 3000))
}
const after = summary(await probe(honest, server, { count: 30, gap: GAP }))
console.log('after all floods', JSON.stringify(after))
await mkdir('benchmarks/results', { recursive: true })
const file = join('benchmarks/results', `flood-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify({ idle, rows, after }, null, 2))
console.log(`written ${file}`)
await honest.node.stop()
await server.stop()
process.exit(0)
