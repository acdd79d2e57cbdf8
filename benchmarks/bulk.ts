/* eslint-disable no-console */
/**
 * `npm run bench:bulk`: announcing many CIDs. priority-dht's `provideMany`
 * against `@libp2p/kad-dht`, which has no bulk API: its `provide` per key with
 * the concurrency its reprovider uses (10). Same size, same seed, real TCP on
 * 127.0.0.1, with and without tarpits. kad-dht is given a time budget
 * (`--budget`, default 120 s) and measured on the keys it finishes within it.
 * With `--batched`, a third row: priority-dht with `provideBatching`, every
 * key announced by its own `contentRouting.provide` call, all calls made at
 * once (an application announcing a directory's blocks one by one).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { SeededRandom } from '../src/core/env.ts'
import { createNetwork } from './network.ts'
import type { Implementation } from './network.ts'
import type { OurNode } from '../test/libp2p/fixtures/network.ts'

const KAD_DHT_CONCURRENCY = 10

interface BulkRow {
  impl: Implementation
  tarpits: number
  keys: number
  /** keys finished (ours: all of them; kad-dht: those done within the budget) */
  keysDone: number
  seconds: number
  keysPerSecond: number
  lookupsPerKey: number
  tarpitDialsPerKey: number
  peakRssMb: number
}

function arg (argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`)
  const v = i === -1 ? NaN : Number(argv[i + 1])
  return Number.isFinite(v) && v >= 0 ? v : fallback
}

async function makeCids (n: number, seed: number): Promise<CID[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`bulk-${seed}-${i}`)))))
}

async function runOne (impl: Implementation, nodes: number, tarpits: number, keys: number, seed: number, budget: number): Promise<BulkRow> {
  const random = new SeededRandom(seed * 1000 + Math.round(tarpits * 100))
  const log = (msg: string): void => { console.error(`  ${msg}`) }
  const net = await createNetwork(impl, nodes, 20, tarpits, random, log)
  try {
    const provider = net.live[random.int(net.live.length)]
    const cids = await makeCids(keys, seed)
    const dials = net.tarpitDials()
    const start = performance.now()
    let done = 0
    let lookups = 0
    if (impl === 'kad-dht') {
      const deadline = Date.now() + budget * 1000
      const queue = [...cids]
      await Promise.all(Array.from({ length: KAD_DHT_CONCURRENCY }, async () => {
        for (let cid = queue.shift(); cid != null && Date.now() < deadline; cid = queue.shift()) {
          try {
            await provider.contentRouting.provide(cid, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
            done++
          } catch {
            // a failed or timed-out provide counts as not done
          }
          lookups++
        }
      }))
    } else if (impl === 'priority-dht-batched') {
      const results = await Promise.allSettled(cids.map(async cid => provider.contentRouting.provide(cid)))
      done = results.filter(r => r.status === 'fulfilled').length
      lookups = (provider as OurNode).services.dht.provideBatching?.lookups ?? 0
    } else {
      const result = await (provider as OurNode).services.dht.provideMany(cids)
      done = result.provided
      lookups = result.lookups
    }
    const seconds = (performance.now() - start) / 1000
    return {
      impl,
      tarpits,
      keys,
      keysDone: done,
      seconds: Math.round(seconds * 10) / 10,
      keysPerSecond: Math.round(done / seconds),
      lookupsPerKey: Math.round(100_000 * lookups / Math.max(1, done)) / 100_000,
      tarpitDialsPerKey: Math.round(1000 * (net.tarpitDials() - dials) / Math.max(1, done)) / 1000,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024)
    }
  } finally {
    await net.close()
  }
}

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const nodes = arg(argv, 'nodes', quick ? 30 : 40)
const seed = arg(argv, 'seed', 1)
const budget = arg(argv, 'budget', quick ? 60 : 120)
const sizes = quick ? [1000] : [1000, 10_000]
const shares = [0, arg(argv, 'tarpits', 0.3)].filter((t, i, a) => a.indexOf(t) === i)
const rows: BulkRow[] = []
for (const tarpits of shares) {
  for (const keys of sizes) {
    const impls: Implementation[] = argv.includes('--batched') ? ['priority-dht', 'priority-dht-batched', 'kad-dht'] : ['priority-dht', 'kad-dht']
    for (const impl of impls) {
      console.error(`${impl}: ${keys} keys, ${nodes} nodes, ${tarpits * 100}% tarpits`)
      rows.push(await runOne(impl, nodes, tarpits, keys, seed, budget))
    }
  }
}
const lines = ['| tarpits | keys | implementation | keys done | seconds | keys/s | lookups/key | tarpit dials/key | ratio keys/s |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
for (const r of rows) {
  const theirs = rows.find(o => o.impl === 'kad-dht' && o.keys === r.keys && o.tarpits === r.tarpits)
  const ratio = r.impl !== 'kad-dht' && theirs != null && theirs.keysPerSecond > 0 ? `${(r.keysPerSecond / theirs.keysPerSecond).toFixed(1)}x` : ''
  lines.push(`| ${r.tarpits * 100}% | ${r.keys} | ${r.impl} | ${r.keysDone} | ${r.seconds} | ${r.keysPerSecond} | ${r.lookupsPerKey} | ${r.tarpitDialsPerKey} | ${ratio} |`)
}
console.log(lines.join('\n'))
const dir = join(import.meta.dirname, 'results')
await mkdir(dir, { recursive: true })
const file = join(dir, `bulk-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify({ date: new Date().toISOString(), nodes, seed, budget, rows }, null, 2))
console.error(`raw results: ${file}`)
