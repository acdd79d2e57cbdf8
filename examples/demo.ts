/* eslint-disable no-console */
/**
 * `npm start`: priority-dht against @libp2p/kad-dht on the same local network
 * (real libp2p nodes on 127.0.0.1, nothing reaches the internet), built
 * twice with the same size and seed; 30% of each becomes tarpits; then
 * rounds of provide, findProviders, IPNS put and get on both. Prints the
 * side-by-side table and writes a self-contained HTML report (and the raw
 * JSON next to it). The measuring is the benchmark's (benchmarks/measure.ts)
 * with no warm-up and every round in flight. See `--help`.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { peerIdFromString } from '@libp2p/peer-id'
import { flagReader, measureCell, table } from '../benchmarks/measure.ts'
import { WORKLOADS } from '../benchmarks/workloads.ts'
import { CATEGORIES, renderReport } from './report.ts'
import type { CategorySample, DemoResult } from './report.ts'
import type { Cell, Options } from '../benchmarks/measure.ts'
import type { BenchNetwork, BenchNode, Implementation } from '../benchmarks/network.ts'
import type { Category } from '../src/core/peer-stack/params.ts'
import type { OurNode } from '../test/libp2p/fixtures/network.ts'

const USAGE = `npm start [-- options]
  --nodes N        nodes per network (20)
  --ops N          rounds of provide, findProviders, put, get per implementation (6)
  --in-flight N    rounds at once (all of them)
  --tarpits S      share of the nodes that become tarpits (0.3)
  --seed N         seed of every random choice (1)
  --k K            bucket size (20)
  --op-timeout MS  an operation still running after this fails (20000)
  --out FILE       the HTML report (benchmarks/results/demo.html); the JSON goes next to it`

const IMPLS: Implementation[] = ['priority-dht', 'kad-dht']
/** how often the peer stack's categories are sampled while priority-dht's operations run */
const SAMPLE_EVERY = 200

function parse (argv: string[]): Options & { out: string } {
  const { get, num } = flagReader(argv)
  const ops = Math.floor(num('ops', 6))
  const o = {
    nodes: Math.floor(num('nodes', 20)),
    k: Math.floor(num('k', 20)),
    ops,
    warmup: 0,
    inFlight: Math.floor(num('in-flight', ops)),
    tarpits: [num('tarpits', 0.3)],
    seed: num('seed', 1),
    opTimeout: num('op-timeout', 20_000),
    closestChecks: 0,
    neutral: false,
    // a loaded machine can take minutes to fill kad-dht's tables; the demo goes on after this
    tableTimeout: 15_000,
    out: resolve(get('out') ?? join(import.meta.dirname, '..', 'benchmarks', 'results', 'demo.html'))
  }
  if (o.nodes < 4) {
    throw new RangeError('--nodes must be at least 4')
  }
  if (o.ops < 1 || o.inFlight < 1 || o.k < 1) {
    throw new RangeError('--ops, --in-flight and --k must be at least 1')
  }
  if (o.tarpits[0] >= 1) {
    throw new RangeError('--tarpits must be below 1')
  }
  return o
}

/**
 * Progress on stderr: on a terminal, an update rewrites the last line until
 * one is `kept`; elsewhere every update is a line
 */
function progress (started: number): (line: string, keep?: boolean) => void {
  const tty = process.stderr.isTTY
  return (line, keep = false) => {
    const text = `[${((performance.now() - started) / 1000).toFixed(1)} s] ${line}`
    process.stderr.write(tty ? `\r\x1b[K${text}${keep ? '\n' : ''}` : `${text}\n`)
  }
}

/** Every SAMPLE_EVERY ms until stopped: how the live priority-dht nodes classify the tarpits and each other */
function watchCategories (net: BenchNetwork<BenchNode>, into: CategorySample[]): () => void {
  const started = performance.now()
  const nodes = net.live as OurNode[]
  const tarpits = [...net.tarpitIds].map(id => peerIdFromString(id))
  const zero = (): Record<Category, number> => Object.fromEntries(CATEGORIES.map(c => [c, 0])) as Record<Category, number>
  const sample = (): void => {
    const s: CategorySample = { t: (performance.now() - started) / 1000, tarpits: zero(), live: zero() }
    for (const node of nodes) {
      for (const id of tarpits) {
        s.tarpits[node.services.dht.peerValue(id).category]++
      }
      for (const other of nodes) {
        if (other !== node) {
          s.live[node.services.dht.peerValue(other.peerId).category]++
        }
      }
    }
    into.push(s)
  }
  sample()
  const timer = setInterval(sample, SAMPLE_EVERY)
  return () => {
    clearInterval(timer)
    sample()
  }
}

const argv = process.argv.slice(2)
if (argv.includes('--help')) {
  console.log(USAGE)
  process.exit(0)
}
const o = parse(argv)
const started = performance.now()
const status = progress(started)
const share = o.tarpits[0]
console.error(`demo: ${o.nodes} nodes per implementation on 127.0.0.1, k = ${o.k}, ${Math.round(share * 100)}% tarpits, ${o.ops} rounds (${o.ops * WORKLOADS.length} operations) each, ${o.inFlight} in flight, seed ${o.seed}`)
const cells: Cell[] = []
const categories: CategorySample[] = []
for (const impl of IMPLS) {
  cells.push(await measureCell(impl, share, o, {
    log: msg => { status(msg, true) },
    onRound: (done, total) => { status(`${impl}: ${done}/${total} rounds done`, done === total) },
    measuring: net => impl === 'priority-dht' ? watchCategories(net, categories) : () => {}
  }))
}
// performance.now() counts from the start of the process
const wallMs = Math.round(performance.now())
const result: DemoResult = { date: new Date().toISOString(), node: process.version, options: o, impls: IMPLS, cells, categories, wallMs }
await mkdir(dirname(o.out), { recursive: true })
const json = o.out.replace(/(\.html?)?$/, '.json')
await writeFile(o.out, renderReport(result))
await writeFile(json, JSON.stringify(result, null, 2))
console.log(table(cells, IMPLS, o))
console.log('')
console.log(`report: ${o.out}`)
console.log(`raw results: ${json}`)
console.log(`took ${(wallMs / 1000).toFixed(1)} s`)
