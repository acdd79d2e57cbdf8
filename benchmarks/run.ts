/* eslint-disable no-console */
/**
 * `npm run bench` (and `npm run bench:quick`): priority-dht and
 * `@libp2p/kad-dht` side by side in one run, same size, same seed, real TCP
 * on 127.0.0.1, with and without tarpits. See benchmarks/README.md.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SeededRandom } from '../src/core/env.ts'
import { createNetwork } from './network.ts'
import { summarize } from './stats.ts'
import { WORKLOADS, round } from './workloads.ts'
import type { Implementation } from './network.ts'
import type { Sample, Summary } from './stats.ts'
import type { Workload } from './workloads.ts'

interface Options {
  nodes: number
  k: number
  ops: number
  warmup: number
  tarpits: number[]
  seed: number
  opTimeout: number
  neutral: boolean
  out?: string
}

function parse (argv: string[]): Options {
  const quick = argv.includes('--quick')
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i === -1 ? undefined : argv[i + 1]
  }
  const num = (name: string, fallback: number): number => {
    const v = get(name)
    if (v == null) {
      return fallback
    }
    const n = Number(v)
    if (!Number.isFinite(n) || n < 0) {
      throw new RangeError(`--${name} must be a non-negative number, got ${v}`)
    }
    return n
  }
  const share = num('tarpits', 0.3)
  if (share >= 1) {
    throw new RangeError('--tarpits must be below 1')
  }
  return {
    nodes: num('nodes', quick ? 30 : 40),
    k: num('k', 20),
    ops: num('ops', quick ? 8 : 20),
    warmup: num('warmup', quick ? 3 : 5),
    tarpits: share === 0 ? [0] : [0, share],
    seed: num('seed', 1),
    opTimeout: num('op-timeout', 60_000),
    neutral: argv.includes('--neutral'),
    out: get('out')
  }
}

interface Cell {
  impl: Implementation
  tarpits: number
  samples: Record<Workload, Sample[]>
  summary: Record<Workload, Summary>
  wallMs: number
}

async function measureCell (impl: Implementation, tarpits: number, o: Options): Promise<Cell> {
  const started = performance.now()
  // the same seed for every implementation: same tarpit positions in the node list, same choices of nodes
  const random = new SeededRandom(o.seed * 1000 + Math.round(tarpits * 100))
  const log = (msg: string): void => { console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${msg}`) }
  const net = await createNetwork(impl, o.nodes, o.k, tarpits, random, log)
  const samples: Record<Workload, Sample[]> = { provide: [], findProviders: [], put: [], get: [] }
  try {
    for (let i = 0; i < o.warmup; i++) {
      await round(net, random, `warmup-${i}`, o.opTimeout)
    }
    log(`${impl}: warm-up done (${o.warmup} rounds)`)
    for (let i = 0; i < o.ops; i++) {
      const r = await round(net, random, `op-${i}`, o.opTimeout)
      for (const w of WORKLOADS) {
        samples[w].push(r[w])
      }
      if ((i + 1) % 5 === 0 || i + 1 === o.ops) {
        log(`${impl} @ ${tarpits * 100}% tarpits: ${i + 1}/${o.ops} rounds`)
      }
    }
  } finally {
    await net.close()
  }
  const summary = Object.fromEntries(WORKLOADS.map(w => [w, summarize(samples[w])])) as Record<Workload, Summary>
  return { impl, tarpits, samples, summary, wallMs: Math.round(performance.now() - started) }
}

function fmt (ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`
}

function ratio (a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(3)}x` : 'n/a'
}

function table (cells: Cell[], impls: Implementation[], o: Options): string {
  const lines: string[] = []
  const head = ['tarpits', 'workload']
  for (const impl of impls) {
    head.push(`${impl} p50`, 'p95', 'ok', 'tarpit dials/op')
  }
  head.push('p50 ours/theirs', 'p95 ours/theirs')
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => ' --- ').join('|')}|`)
  for (const t of o.tarpits) {
    for (const w of WORKLOADS) {
      const row = [`${Math.round(t * 100)}%`, w]
      const byImpl = new Map(impls.map(impl => [impl, cells.find(c => c.impl === impl && c.tarpits === t)?.summary[w]]))
      for (const impl of impls) {
        const s = byImpl.get(impl)
        row.push(s == null ? '-' : fmt(s.p50), s == null ? '-' : fmt(s.p95), s == null ? '-' : `${Math.round(s.success * 100)}%`, s == null ? '-' : `${s.tarpitDialsMean.toFixed(2)} (max ${s.tarpitDialsMax})`)
      }
      const ours = byImpl.get('priority-dht')
      const theirs = byImpl.get('kad-dht')
      row.push(ours != null && theirs != null ? ratio(ours.p50, theirs.p50) : '-', ours != null && theirs != null ? ratio(ours.p95, theirs.p95) : '-')
      lines.push(`| ${row.join(' | ')} |`)
    }
  }
  return lines.join('\n')
}

const o = parse(process.argv.slice(2))
const impls: Implementation[] = o.neutral ? ['priority-dht', 'priority-dht-neutral', 'kad-dht'] : ['priority-dht', 'kad-dht']
console.error(`benchmark: ${o.nodes} nodes, k = ${o.k}, tarpits ${o.tarpits.map(t => `${t * 100}%`).join(' and ')}, ${o.warmup} warm-up + ${o.ops} measured rounds, seed ${o.seed}`)
const cells: Cell[] = []
for (const t of o.tarpits) {
  for (const impl of impls) {
    cells.push(await measureCell(impl, t, o))
  }
}
console.log(table(cells, impls, o))
const result = { date: new Date().toISOString(), options: o, node: process.version, cells }
const dir = join(import.meta.dirname, 'results')
await mkdir(dir, { recursive: true })
const file = o.out ?? join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify(result, null, 2))
console.error(`raw results: ${file}`)
