/* eslint-disable no-console */
/**
 * `npm run bench` (and `npm run bench:quick`): priority-dht and
 * `@libp2p/kad-dht` side by side in one run, same size, same seed, real TCP
 * on 127.0.0.1, with and without tarpits. See benchmarks/README.md.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { flagReader, measureCell, table } from './measure.ts'
import type { Cell, Options } from './measure.ts'
import type { Implementation } from './network.ts'

const ALL_IMPLS: Implementation[] = ['priority-dht', 'priority-dht-neutral', 'priority-dht-batched', 'kad-dht', 'go', 'go-optimistic']

function parse (argv: string[]): Options {
  const quick = argv.includes('--quick')
  const { get, num } = flagReader(argv)
  const share = num('tarpits', 0.3)
  if (share >= 1) {
    throw new RangeError('--tarpits must be below 1')
  }
  const inFlight = Math.floor(num('in-flight', 1))
  if (inFlight < 1) {
    throw new RangeError('--in-flight must be at least 1')
  }
  const impls = get('impls')?.split(',').map(s => s.trim()) as Implementation[] | undefined
  for (const impl of impls ?? []) {
    if (!ALL_IMPLS.includes(impl)) {
      throw new RangeError(`--impls: unknown implementation ${impl} (one of ${ALL_IMPLS.join(', ')})`)
    }
  }
  return {
    nodes: num('nodes', quick ? 30 : 40),
    k: num('k', 20),
    ops: num('ops', quick ? 8 : 20),
    warmup: argv.includes('--no-warmup') ? 0 : num('warmup', quick ? 3 : 5),
    inFlight,
    tarpits: share === 0 ? [0] : argv.includes('--tarpits-only') ? [share] : [0, share],
    seed: num('seed', 1),
    opTimeout: num('op-timeout', 60_000),
    closestChecks: num('closest-checks', 5),
    neutral: argv.includes('--neutral'),
    impls,
    cpuProf: get('cpu-prof'),
    out: get('out')
  }
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`npm run bench -- [options]: priority-dht and @libp2p/kad-dht (or Go) side by side, same size and seed, TCP on 127.0.0.1

  --quick               30 nodes, 3 warm-up and 8 measured rounds
  --nodes N             nodes per network (40)
  --k N                 Kademlia's k for every implementation (20)
  --ops N               measured rounds of provide, findProviders, put, get (20)
  --warmup N            warm-up rounds after the tarpits appear (5); --no-warmup for 0
  --in-flight N         rounds run at once (1)
  --tarpits S           share of nodes turned into tarpits (0.3); --tarpits-only skips the 0% networks
  --impls A,B           ${ALL_IMPLS.join(', ')}
  --neutral             also priority-dht with its peer stack off
  --seed N              seed of every random choice (1)
  --op-timeout MS       an operation's hard timeout, counted as a failure (60000)
  --closest-checks N    getClosestPeers calls compared with the true k closest afterwards (5)
  --cpu-prof DIR        a V8 CPU profile of the measured phase (for benchmarks/cpu-profile.ts)
  --out FILE            where the JSON goes (default benchmarks/results/DATE.json)

The issue #10 scenario: npm run bench -- --in-flight 4 --warmup 0 --tarpits-only --impls priority-dht,kad-dht
`)
  process.exit(0)
}
const o = parse(process.argv.slice(2))
const impls: Implementation[] = o.impls ?? (o.neutral ? ['priority-dht', 'priority-dht-neutral', 'kad-dht'] : ['priority-dht', 'kad-dht'])
console.error(`benchmark: ${o.nodes} nodes, k = ${o.k}, tarpits ${o.tarpits.map(t => `${t * 100}%`).join(' and ')}, ${o.warmup} warm-up + ${o.ops} measured rounds, ${o.inFlight} in flight, seed ${o.seed}`)
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
