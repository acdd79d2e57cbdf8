/* eslint-disable no-console */
/**
 * One measured cell of a comparison (an implementation at one tarpit share:
 * network, optional warm-up, measured rounds, getClosestPeers checks) and the
 * side-by-side table of cells. `npm run bench` (run.ts) and `npm start`
 * (examples/demo.ts) both measure through here.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { SeededRandom } from '../src/core/env.ts'
import { trueClosest } from '../test/libp2p/fixtures/network.ts'
import { createGoNetwork } from './go-network.ts'
import { createNetwork, GO_IMPLEMENTATIONS, TABLE_TIMEOUT } from './network.ts'
import { percentile, summarize } from './stats.ts'
import { DialLedger, WORKLOADS, rounds } from './workloads.ts'
import type { GoImplementation } from './go-network.ts'
import type { BenchNetwork, BenchNode, Implementation } from './network.ts'
import type { Sample, Summary } from './stats.ts'
import type { Workload } from './workloads.ts'
import type { PeerId } from '@libp2p/interface'
import type { EventLoopUtilization } from 'node:perf_hooks'

export interface Options {
  nodes: number
  k: number
  ops: number
  warmup: number
  inFlight: number
  tarpits: number[]
  seed: number
  opTimeout: number
  closestChecks: number
  neutral: boolean
  impls?: Implementation[]
  cpuProf?: string
  out?: string
  /** how long to wait for the routing tables to fill (ms; createNetwork's TABLE_TIMEOUT when unset) */
  tableTimeout?: number
}

/** getClosestPeers from a live node for a random key, against the true k closest of the live nodes */
export interface ClosestCheck {
  ms: number
  /** the result is the set of the true k closest */
  exact: boolean
  /** ... and in the same order, nearest first */
  ordered: boolean
  /** peers returned that are tarpits */
  tarpits: number
  /** how many of the true k closest the result holds */
  found: number
  /** size of the true k closest (fewer than k when there are fewer live nodes) */
  truth: number
  returned: number
  error?: string
  /** ours: each true closest peer left out, and what the lookup saw of it */
  missing?: string[]
}

export interface Cell {
  impl: Implementation
  tarpits: number
  inFlight: number
  samples: Record<Workload, Sample[]>
  summary: Record<Workload, Summary>
  /** measured phase: wall time, CPU (user + system, whole process), event-loop utilisation */
  measured: { wallMs: number, cpuUserMs: number, cpuSystemMs: number, cpuMsPerOp: number, elu: number, operations: number, tarpitDials: number, tarpitDialsPerOp: number, maxInFlight: number }
  closest: ClosestCheck[]
  wallMs: number
}

/** What one of our query events says of a peer (see `missing` in ClosestCheck) */
function noteFate (e: any, fate: Map<string, string>, found: string[]): void {
  if (e.name === 'FINAL_PEER') {
    found.push(e.peer.id.toString())
  } else if (e.name === 'SEND_QUERY') {
    fate.set(e.to.toString(), 'asked')
  } else if (e.name === 'QUERY_ERROR') {
    fate.set(e.from.toString(), `failed: ${e.error?.name} ${String(e.error?.message).slice(0, 60)}`)
  } else if (e.name === 'PEER_RESPONSE') {
    fate.set(e.from.toString(), 'answered')
    for (const c of e.closer) {
      const id = c.id.toString()
      if (!fate.has(id)) {
        fate.set(id, `named by ${e.from.toString().slice(-6)}`)
      }
    }
  }
}

/** One true closest peer a lookup of ours left out: what the lookup saw of it, and how our node stands with it */
function leftOut (from: BenchNode, peer: PeerId | undefined, id: string, fate: Map<string, string>): string {
  const dht = (from as any).services.dht
  const info = peer == null ? undefined : dht.peerValue(peer)
  const backoff = info?.backoffUntil == null ? '' : `, back-off ${Math.round(info.backoffUntil - Date.now())} ms more`
  const connected = peer == null ? 0 : (from as any).getConnections(peer).length as number
  return `${id.slice(-6)}: ${fate.get(id) ?? 'never heard of'}${dht.routingTable.peers().includes(id) === true ? ' (in our table)' : ''}; ${info?.category ?? 'unknown'}${backoff}, ${connected} connection(s)`
}

async function checkClosest (net: BenchNetwork<BenchNode>, random: SeededRandom, k: number, count: number, timeout: number): Promise<ClosestCheck[]> {
  const checks: ClosestCheck[] = []
  const ids = net.live.map(n => n.peerId)
  for (let i = 0; i < count; i++) {
    const from = net.live[random.int(net.live.length)]
    const key = new TextEncoder().encode(`closest-${i}-${random.int(2 ** 32)}`)
    const truth = trueClosest(ids.filter(id => !id.equals(from.peerId)), key, k)
    const start = performance.now()
    const found: string[] = []
    let error: string | undefined
    // ours: what became of each peer the lookup heard from or about, to say why a true closest one is missing
    const fate = new Map<string, string>()
    const dht = (from as any).services?.dht
    try {
      if (typeof dht?.usage === 'function') {
        for await (const e of dht.getClosestPeers(key, { signal: AbortSignal.timeout(timeout) })) {
          noteFate(e, fate, found)
        }
      } else {
        for await (const p of from.peerRouting.getClosestPeers(key, { signal: AbortSignal.timeout(timeout) })) {
          found.push(p.id.toString())
        }
      }
    } catch (err: any) {
      error = `${err?.name ?? 'Error'}: ${String(err?.message ?? err).slice(0, 120)}`
    }
    const hits = truth.filter(id => found.includes(id)).length
    const exact = error == null && found.length === truth.length && hits === truth.length
    checks.push({
      ms: Math.round(performance.now() - start),
      exact,
      ordered: exact && found.every((id, j) => id === truth[j]),
      tarpits: found.filter(id => net.tarpitIds.has(id)).length,
      found: hits,
      truth: truth.length,
      returned: found.length,
      error,
      missing: fate.size === 0 ? undefined : truth.filter(id => !found.includes(id)).map(id => leftOut(from, ids.find(p => p.toString() === id), id, fate))
    })
  }
  return checks
}

/** A CPU profile of this process from now on, sampled every 0.5 ms */
export async function startProfile (): Promise<Session> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 500 })
  await session.post('Profiler.start')
  return session
}

/** Ends the profile `startProfile` began and writes it to `file` (a .cpuprofile) */
export async function stopProfile (session: Session, file: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop')
  session.disconnect()
  await writeFile(file, JSON.stringify(profile))
}

/** What a caller may add to a cell's measurement */
export interface CellHooks {
  /** progress lines (default: stderr, prefixed by the seconds since the cell started) */
  log?(msg: string): void
  /** after each measured round (default: a log line every 5 rounds and at the last) */
  onRound?(done: number, total: number): void
  /**
   * Called as the measured phase starts (with no warm-up: just after the
   * tarpits appeared); the function it returns is called as the phase ends,
   * before the network stops
   */
  measuring?(net: BenchNetwork<BenchNode>): () => void
}

export async function measureCell (impl: Implementation, tarpits: number, o: Options, hooks: CellHooks = {}): Promise<Cell> {
  const started = performance.now()
  // the same seed for every implementation: same tarpit positions in the node list, same choices of nodes
  const random = new SeededRandom(o.seed * 1000 + Math.round(tarpits * 100))
  const log = hooks.log ?? ((msg: string): void => { console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${msg}`) })
  const net: BenchNetwork<BenchNode> = GO_IMPLEMENTATIONS.includes(impl)
    ? await createGoNetwork(impl as GoImplementation, o.nodes, o.k, tarpits, random, log, o.tableTimeout ?? TABLE_TIMEOUT, o.opTimeout)
    : await createNetwork(impl, o.nodes, o.k, tarpits, random, log, o.tableTimeout)
  const samples: Record<Workload, Sample[]> = { provide: [], findProviders: [], put: [], get: [] }
  let measured: Cell['measured']
  let closest: ClosestCheck[] = []
  try {
    if (o.warmup > 0) {
      await rounds(net, new DialLedger(net), random, 'warmup', o.warmup, o.inFlight, o.opTimeout)
      log(`${impl}: warm-up done (${o.warmup} rounds)`)
    }
    const ledger = new DialLedger(net)
    const profile = o.cpuProf != null ? await startProfile() : undefined
    const dials0 = net.tarpitDials()
    const elu0: EventLoopUtilization = performance.eventLoopUtilization()
    const cpu0 = process.cpuUsage()
    const stopWatching = hooks.measuring?.(net)
    const regions0 = regionTotals(net)
    const traffic0 = trafficTotals(net)
    const t0 = performance.now()
    const results = await rounds(net, ledger, random, 'op', o.ops, o.inFlight, o.opTimeout, done => {
      if (hooks.onRound != null) {
        hooks.onRound(done, o.ops)
      } else if (done % 5 === 0 || done === o.ops) {
        log(`${impl} @ ${tarpits * 100}% tarpits: ${done}/${o.ops} rounds`)
      }
    })
    const wallMs = performance.now() - t0
    stopWatching?.()
    const cpu = process.cpuUsage(cpu0)
    const elu = performance.eventLoopUtilization(elu0)
    const dials = net.tarpitDials() - dials0
    const regions1 = regionTotals(net)
    if (regions0 != null && regions1 != null) {
      const delta = Object.fromEntries(Object.entries(regions1).map(([k, v]) => [k, v - (regions0[k] ?? 0)]))
      log(`${impl}: region cache over the measured phase, all live nodes: ${JSON.stringify(delta)}`)
    }
    const traffic1 = trafficTotals(net)
    if (traffic0 != null && traffic1 != null) {
      const per = (n: number): number => Math.round(n / (o.ops * WORKLOADS.length) * 10) / 10
      const rows = Object.entries(traffic1).map(([purpose, f]) => {
        const b = traffic0[purpose]
        return [purpose, per(f.requests - b.requests), per(f.streams - b.streams), per(f.dials - b.dials)] as const
      }).filter(([, r, s, d]) => r + s + d > 0)
      log(`${impl}: traffic per operation over the measured phase, all live nodes (purpose requests/streams/dials): ${rows.map(r => `${r[0]} ${r[1]}/${r[2]}/${r[3]}`).join(', ')}`)
    }
    if (profile != null && o.cpuProf != null) {
      await mkdir(o.cpuProf, { recursive: true })
      const file = join(o.cpuProf, `${impl}-${Math.round(tarpits * 100)}.cpuprofile`)
      await stopProfile(profile, file)
      log(`CPU profile of the measured phase: ${file}`)
    }
    for (const r of results) {
      for (const w of WORKLOADS) {
        samples[w].push(r[w])
      }
    }
    const operations = o.ops * WORKLOADS.length
    measured = {
      wallMs: Math.round(wallMs),
      cpuUserMs: Math.round(cpu.user / 1000),
      cpuSystemMs: Math.round(cpu.system / 1000),
      cpuMsPerOp: (cpu.user + cpu.system) / 1000 / Math.max(1, operations),
      elu: elu.utilization,
      operations,
      tarpitDials: dials,
      tarpitDialsPerOp: dials / Math.max(1, operations),
      maxInFlight: ledger.maxInFlight
    }
    if (o.closestChecks > 0) {
      closest = await checkClosest(net, random, o.k, o.closestChecks, o.opTimeout)
      log(`${impl}: getClosestPeers equal to the true ${o.k} closest live nodes in ${closest.filter(c => c.exact).length}/${closest.length}`)
      for (const c of closest.filter(c => c.missing != null && c.missing.length > 0)) {
        log(`  left out: ${c.missing?.join('; ')}`)
      }
    }
  } finally {
    await net.close()
  }
  const summary = Object.fromEntries(WORKLOADS.map(w => [w, summarize(samples[w])])) as Record<Workload, Summary>
  return { impl, tarpits, inFlight: o.inFlight, samples, summary, measured, closest, wallMs: Math.round(performance.now() - started) }
}

/** Requests, streams and dials by purpose summed over the live nodes (ours only; undefined for other implementations) */
function trafficTotals (net: BenchNetwork<BenchNode>): Record<string, { requests: number, streams: number, dials: number }> | undefined {
  let totals: Record<string, { requests: number, streams: number, dials: number }> | undefined
  for (const node of net.live) {
    const usage = (node as any).services?.dht?.usage?.()
    if (usage == null) {
      continue
    }
    totals ??= {}
    for (const [purpose, f] of Object.entries(usage.purposes as Record<string, { requests: number, streams: number, dials: number }>)) {
      const t = totals[purpose] ??= { requests: 0, streams: 0, dials: 0 }
      t.requests += f.requests
      t.streams += f.streams
      t.dials += f.dials
    }
  }
  return totals
}

/** The region cache counters summed over the live nodes (ours only; undefined for other implementations) */
function regionTotals (net: BenchNetwork<BenchNode>): Record<string, number> | undefined {
  let totals: Record<string, number> | undefined
  for (const node of net.live) {
    const stats: Record<string, number> | undefined = (node as any).services?.dht?.regionCache
    if (stats == null) {
      continue
    }
    totals ??= {}
    for (const [k, v] of Object.entries(stats)) {
      totals[k] = (totals[k] ?? 0) + v
    }
  }
  return totals
}

export function fmt (ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`
}

export function ratio (a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(3)}x` : 'n/a'
}

function dialsText (s: Summary): string {
  return `${s.tarpitDialsMean.toFixed(2)} (max ${Number(s.tarpitDialsMax.toFixed(2))})`
}

/** A table: its header and rows of cells, as text */
export interface TextTable {
  head: string[]
  rows: string[][]
}

function p50Ratio (ours: Summary | undefined, theirs: Summary | undefined): string {
  return ours != null && theirs != null ? ratio(ours.p50, theirs.p50) : '-'
}

/**
 * The comparison as two tables: per tarpit share and workload, each
 * implementation's p50, p95, success and tarpit dials per operation (and
 * ours/theirs ratios when both priority-dht and kad-dht ran); per tarpit
 * share and implementation, the measured phase
 */
export function tables (cells: Cell[], impls: Implementation[], o: Options): [TextTable, TextTable] {
  const head = ['tarpits', 'workload']
  for (const impl of impls) {
    head.push(`${impl} p50`, 'p95', 'ok', o.inFlight > 1 ? 'tarpit dials/op (split)' : 'tarpit dials/op')
  }
  const compare = impls.includes('priority-dht') && impls.includes('kad-dht')
  if (compare) {
    head.push('p50 ours/theirs', 'p95 ours/theirs')
  }
  // priority-dht against each Go network that ran
  const goBaselines = impls.includes('priority-dht') ? GO_IMPLEMENTATIONS.filter(impl => impls.includes(impl)) : []
  for (const impl of goBaselines) {
    head.push(`p50 ours/${impl}`)
  }
  const rows: string[][] = []
  for (const t of o.tarpits) {
    for (const w of WORKLOADS) {
      const row = [`${Math.round(t * 100)}%`, w]
      const byImpl = new Map(impls.map(impl => [impl, cells.find(c => c.impl === impl && c.tarpits === t)?.summary[w]]))
      for (const impl of impls) {
        const s = byImpl.get(impl)
        row.push(s == null ? '-' : fmt(s.p50), s == null ? '-' : fmt(s.p95), s == null ? '-' : `${Math.round(s.success * 100)}%`, s == null ? '-' : dialsText(s))
      }
      if (compare) {
        const ours = byImpl.get('priority-dht')
        const theirs = byImpl.get('kad-dht')
        row.push(ours != null && theirs != null ? ratio(ours.p50, theirs.p50) : '-', ours != null && theirs != null ? ratio(ours.p95, theirs.p95) : '-')
      }
      row.push(...goBaselines.map(impl => p50Ratio(byImpl.get('priority-dht'), byImpl.get(impl))))
      rows.push(row)
    }
  }
  const phases: TextTable = {
    head: ['tarpits', 'implementation', 'measured wall', 'operations', 'CPU ms/op (user + sys)', 'event-loop utilisation', 'tarpit dials (total / per op)', 'getClosestPeers = true k closest live (set)'],
    rows: []
  }
  for (const t of o.tarpits) {
    for (const impl of impls) {
      const c = cells.find(c => c.impl === impl && c.tarpits === t)
      if (c == null) {
        continue
      }
      const m = c.measured
      const exact = c.closest.filter(x => x.exact).length
      const recall = c.closest.reduce((a, x) => a + x.found, 0) / Math.max(1, c.closest.reduce((a, x) => a + x.truth, 0))
      phases.rows.push([`${Math.round(t * 100)}%`, impl, fmt(m.wallMs), String(m.operations), m.cpuMsPerOp.toFixed(1), `${(m.elu * 100).toFixed(0)}%`, `${m.tarpitDials} / ${m.tarpitDialsPerOp.toFixed(2)}`, c.closest.length === 0 ? '-' : `${exact}/${c.closest.length} (in order ${c.closest.filter(x => x.ordered).length}; ${(recall * 100).toFixed(0)}% of the true closest found; tarpits returned ${c.closest.reduce((a, x) => a + x.tarpits, 0)}; p50 ${fmt(summarizeMs(c.closest.map(x => x.ms)))})`])
    }
  }
  return [{ head, rows }, phases]
}

/** `tables` as Markdown, one after the other */
export function table (cells: Cell[], impls: Implementation[], o: Options): string {
  const markdown = (t: TextTable): string[] => [t.head, t.head.map(() => '---'), ...t.rows].map(cells => `| ${cells.join(' | ')} |`)
  const [ops, phases] = tables(cells, impls, o)
  return [...markdown(ops), '', ...markdown(phases)].join('\n')
}

function summarizeMs (ms: number[]): number {
  return percentile([...ms].sort((a, b) => a - b), 0.5)
}

/** Reads `--name value` flags: `get` the value as given, `num` a non-negative number (`fallback` when absent) */
export function flagReader (argv: string[]): { get(name: string): string | undefined, num(name: string, fallback: number): number } {
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
  return { get, num }
}
