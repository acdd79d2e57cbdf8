/* eslint-disable no-console */
/**
 * `npm run bench:bulk`: announcing many CIDs. priority-dht's `provideMany`
 * against `@libp2p/kad-dht`, which has no bulk API: its `provide` per key with
 * the concurrency its reprovider uses (10). Same size, same seed, real TCP on
 * 127.0.0.1, with and without tarpits. kad-dht is given a time budget
 * (`--budget`, default 120 s) and measured on the keys it finishes within it.
 * Always (for the 1000-key size), a `priority-dht-single` row: the DEFAULT
 * configuration, every key announced by its own `contentRouting.provide`
 * call, 10 calls in flight (a pool of 10 workers, as kad-dht's row): what the
 * region cache makes of a burst of single calls. With `--batched`, another
 * row: priority-dht with `provideBatching`, one `contentRouting.provide` call
 * per key, all calls made at once (an application announcing a directory's
 * blocks one by one). After every priority-dht row, other live nodes look
 * for every CID (`findProviders`, 10 at a time; for more than 1000 keys an
 * even sample of 1000) and the row reports how many found the provider.
 *
 * With `--against go` (or `--against kad-dht,go`), the same workload on a
 * network of Go peers (benchmarks/go-network.ts: go-libp2p-kad-dht v0.42.2,
 * one process each, same size, seed and tarpit choice): a `go-sweep` row,
 * the same CIDs announced by the provider's SweepingProvider (the `provider`
 * package Kubo uses, Kubo's default workers; `provide-sweep` in
 * test/interop/go-peer/main.go says how its end is detected), checked by
 * other Go peers' findprovs like ours; and for 1000 keys a `go-burst` row:
 * `dht.Provide` per CID, 10 in flight, within `--budget` (the pre-sweep
 * reprovider), not checked. Ratios are then taken against `go-sweep`.
 * A `priority-dht-on-go` row puts one node of ours (default configuration)
 * into the same Go network as its provider and runs `provideMany` there,
 * checked by the Go peers: the provider side alone, with Go's servers
 * taking the records in their own processes, as they do for `go-sweep`
 * (our own network runs all of its servers in this one Node process).
 * A `priority-dht-procs` row (with `--against go`) runs that workload on a
 * network of our own nodes instead, each a `priority-dht daemon` in its own
 * process (daemon-network.ts) as each Go peer is: our provider and our
 * servers, with the servers' work off the provider's event loop.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { SeededRandom } from '../src/core/env.ts'
import { createOurNode, routingTableSize, trueClosest } from '../test/libp2p/fixtures/network.ts'
import { createDaemonNetwork } from './daemon-network.ts'
import { createGoNetwork } from './go-network.ts'
import { startProfile, stopProfile } from './measure.ts'
import { createNetwork, dialRetrying, refreshQuiet, TABLE_TIMEOUT } from './network.ts'
import type { DaemonNetwork } from './daemon-network.ts'
import type { GoNetwork } from './go-network.ts'
import type { BenchNetwork, BenchNode } from './network.ts'
import type { Implementation } from './network.ts'
import type { PriorityDHTInit } from '../src/libp2p/init.ts'
import type { AnyNode, OurNode } from '../test/libp2p/fixtures/network.ts'

const KAD_DHT_CONCURRENCY = 10
/** The Go peers' timeout of each findprovs in the check, as ours get 20 s */
const GO_CHECK_TIMEOUT = 20_000

/** The rows: ours and kad-dht, and on networks of Go peers its sweeping provider and its per-CID provide */
type BulkImpl = Implementation | 'go-sweep' | 'go-burst' | 'priority-dht-on-go' | 'priority-dht-procs'
/** CIDs other nodes look for after a priority-dht row: all of them up to this many, an even sample beyond */
const CHECK_MAX = 1000

interface BulkRow {
  impl: BulkImpl
  tarpits: number
  keys: number
  /** keys finished (ours: all of them; kad-dht: those done within the budget) */
  keysDone: number
  /** CIDs other nodes found the provider for afterwards (not checked for kad-dht: undefined) */
  found?: number
  /** CIDs looked for (all of them up to 1000, an even sample of 1000 beyond) */
  checked: number
  seconds: number
  /** our networks: seconds from the start until the servers' holdings of a sample of 50 CIDs stopped growing (see `drained`; after `seconds` when provide calls resolved first) */
  servedSeconds?: number
  /** CPU seconds of this process (the provider, and on our networks the servers too) and its event loop's busy share, over \`seconds\` */
  cpuSeconds: number
  eventLoopBusy: number
  keysPerSecond: number
  /** lookups per key done (go-sweep: the provider's GetClosestPeers calls, counted in the Go peer) */
  lookupsPerKey: number
  tarpitDialsPerKey: number
  /** go-sweep: seconds its provider took to be online with a prefix length estimate, before the measured seconds; its region count and prefix length; whether its queue drained */
  goSweep?: { readySeconds: number, regions: number, prefixLen: number, drained: boolean, failed: number }
  peakRssMb: number
  /** with --churn: nodes that left (and as many joined) during the provide, CIDs found before the republish sweep, and the sweep's seconds */
  churn?: { left: number, joined: number, foundBeforeSweep: number, sweepSeconds: number }
  /** priority-dht rows: what the inbound limits of all live nodes counted during the provide (summed), and provideMany's own figures */
  limits?: Record<string, number>
}

function arg (argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`)
  const v = i === -1 ? NaN : Number(argv[i + 1])
  return Number.isFinite(v) && v >= 0 ? v : fallback
}

async function makeCids (n: number, seed: number): Promise<CID[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`bulk-${seed}-${i}`)))))
}

/** Runs `work` on each item, `concurrency` at a time */
async function pool<T> (items: T[], concurrency: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < items.length; i = next++) {
      await work(items[i], i)
    }
  }))
}

/** Why one CID was not found: what the seeker's lookup did and who holds the record */
interface Miss {
  cid: string
  seeker: string
  seekerJoined: boolean
  seekerTable: number
  /** 'timeout' (20 s), 'ended' (the lookup finished without the provider) or an error name */
  outcome: string
  ms: number
  /** peers that answered the lookup / queries that failed */
  answered: number
  errors: number
  /** live nodes holding the provider record */
  holders: number
  /** holders among the true k closest live nodes of the key */
  holdersInClosest: number
  /** holders that answered the seeker's lookup (they would have given the record) */
  holdersAnswered: number
  /** of the true k closest live nodes, those the seeker's lookup got an answer from */
  closestAnswered: number
}

/** How many of `cids` some other live node finds `provider` for (10 lookups at once, 20 s each); with `misses`, why each missing one was missed */
async function countFound (net: { live: BenchNode[] }, provider: BenchNode, cids: CID[], misses?: Miss[], joined?: Set<AnyNode>): Promise<number> {
  const seekers = net.live.filter(n => n !== provider)
  let found = 0
  await pool(cids, KAD_DHT_CONCURRENCY, async (cid, i) => {
    const seeker = seekers[i % seekers.length]
    const answered = new Set<string>()
    let errors = 0
    let outcome = 'ended'
    const start = performance.now()
    try {
      if (misses == null) {
        for await (const p of seeker.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(20_000) })) {
          if (p.id.equals(provider.peerId)) {
            found++
            return
          }
        }
      } else {
        for await (const event of (seeker as OurNode).services.dht.findProviders(cid, { signal: AbortSignal.timeout(20_000) })) {
          if (event.name === 'PEER_RESPONSE') {
            answered.add(event.from.toString())
          } else if (event.name === 'QUERY_ERROR') {
            errors++
          } else if (event.name === 'PROVIDER' && event.providers.some(p => p.id.equals(provider.peerId))) {
            found++
            return
          }
        }
      }
    } catch (err: any) {
      // not found in time
      outcome = err.name === 'TimeoutError' || err.name === 'AbortError' ? 'timeout' : err.name
    }
    if (misses == null) {
      return
    }
    const ms = Math.round(performance.now() - start)
    const live = net.live
    const holders = await holdersOf(live, provider, cid)
    const closest = new Set(trueClosest(live.map(n => n.peerId), cid.multihash.bytes, 20))
    misses.push({
      cid: cid.toString().slice(-8),
      seeker: seeker.peerId.toString().slice(-6),
      seekerJoined: joined?.has(seeker as AnyNode) ?? false,
      seekerTable: routingTableSize(seeker as AnyNode),
      outcome,
      ms,
      answered: answered.size,
      errors,
      holders: holders.length,
      holdersInClosest: holders.filter(h => closest.has(h)).length,
      holdersAnswered: holders.filter(h => answered.has(h)).length,
      closestAnswered: [...closest].filter(c => answered.has(c)).length
    })
  })
  return found
}

function logMisses (log: (msg: string) => void, when: string, misses: Miss[]): void {
  log(`missed ${when}: ${misses.length}`)
  for (const m of misses) {
    log(`  ${JSON.stringify(m)}`)
  }
}

/** The inbound limits' counters of every live priority-dht node, summed */
function inboundTotals (live: AnyNode[]): Record<string, number> {
  const sum: Record<string, number> = {}
  for (const node of live) {
    const inbound = (node as OurNode).services.dht.inbound as unknown as Record<string, number> | undefined
    const served = (node as OurNode).services.dht.usage?.().inbound
    for (const [k, v] of Object.entries({ ...inbound, inboundStreams: served?.streams ?? 0, inboundFailures: served?.failures ?? 0 })) {
      sum[k] = (sum[k] ?? 0) + v
    }
  }
  return sum
}

/** Peer ids of the live nodes whose provider store holds `provider`'s record for `cid` */
async function holdersOf (live: BenchNode[], provider: BenchNode, cid: CID): Promise<string[]> {
  const holders: string[] = []
  for (const node of live) {
    const ids: string[] = await (node as any).services.dht.providers.getProviders(cid.multihash.bytes, Date.now())
    if (ids.includes(provider.peerId.toString())) {
      holders.push(node.peerId.toString())
    }
  }
  return holders
}

/**
 * Polls how many of the live nodes hold `provider`'s record for an even
 * sample of 50 of `cids` until that count holds still for a second (at most
 * a minute); the seconds since `start` when it last grew
 */
async function drained (live: AnyNode[], provider: AnyNode, cids: CID[], start: number): Promise<number> {
  const sample = cids.filter((_, i) => i % Math.max(1, Math.floor(cids.length / 50)) === 0)
  const held = async (): Promise<number> => {
    let n = 0
    for (const cid of sample) {
      n += (await holdersOf(live, provider, cid)).length
    }
    return n
  }
  let last = await held()
  let movedAt = performance.now()
  const deadline = movedAt + 60_000
  while (performance.now() - movedAt < 1000 && performance.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
    const now = await held()
    if (now !== last) {
      last = now
      movedAt = performance.now()
    }
  }
  return Math.round((movedAt - start) / 100) / 10
}

/**
 * Churn during a bulk provide: `share` of the nodes (never the provider nor
 * the two bootstraps, which are live[0] and live[1]) leave, spread over the
 * provide's chunks, and as many new nodes join through the bootstraps. The
 * leavers are stopped for good; `net.live` is kept up to date, so the check
 * and `net.close()` see the nodes of the moment.
 */
class Churn {
  left = 0
  joined = 0
  /** the nodes that joined */
  readonly joiners = new Set<AnyNode>()
  private readonly total: number
  private readonly pending: Array<Promise<void>> = []

  constructor (private readonly net: BenchNetwork, private readonly provider: AnyNode, share: number, nodes: number, private readonly random: SeededRandom, private readonly ours: PriorityDHTInit, private readonly log: (msg: string) => void) {
    this.total = Math.round(share * nodes)
  }

  /** Up to the share due once `fraction` of the keys are started */
  step (fraction: number): void {
    const due = Math.min(this.total, Math.ceil(this.total * fraction))
    while (this.left < due) {
      const candidates = this.net.live.slice(2).filter(n => n !== this.provider)
      if (candidates.length === 0) {
        return
      }
      const leaver = candidates[this.random.int(candidates.length)]
      this.net.live.splice(this.net.live.indexOf(leaver), 1)
      this.left++
      this.pending.push(Promise.resolve(leaver.stop()), this.join())
    }
  }

  private async join (): Promise<void> {
    const node = await createOurNode({ ...this.ours, kBucketSize: 20 })
    try {
      for (const bootstrap of this.net.live.slice(0, 2)) {
        await dialRetrying(node, bootstrap, this.log)
      }
    } catch (err: any) {
      // a node that reached no bootstrap has no table: it would only fail the check's lookups
      this.log(`a new node could not join: ${err.name}`)
      await node.stop()
      return
    }
    this.net.live.push(node)
    this.joiners.add(node)
    this.joined++
  }

  async settle (): Promise<void> {
    await Promise.all(this.pending)
    this.log(`churn: ${this.left} nodes left, ${this.joined} joined`)
  }
}

async function runOne (impl: BulkImpl, nodes: number, tarpits: number, keys: number, seed: number, budget: number, goBudget: number, ours: PriorityDHTInit, churnShare = 0): Promise<BulkRow> {
  const random = new SeededRandom(seed * 1000 + Math.round(tarpits * 100))
  const log = (msg: string): void => { console.error(`  ${msg}`) }
  const isGo = impl === 'go-sweep' || impl === 'go-burst' || impl === 'priority-dht-on-go'
  // a guest of ours is the provider: on Go's network, or on our own with every server in its own process
  const hasGuest = impl === 'priority-dht-on-go' || impl === 'priority-dht-procs'
  // the same seeded draws on both: the tarpit choice, then the provider's index
  const net: BenchNetwork<BenchNode> = isGo
    ? await createGoNetwork('go', nodes, 20, tarpits, random, log, TABLE_TIMEOUT, GO_CHECK_TIMEOUT)
    : impl === 'priority-dht-procs'
      ? await createDaemonNetwork(nodes, 20, tarpits, random, log, TABLE_TIMEOUT)
      : await createNetwork(impl, nodes, 20, tarpits, random, log, undefined, ours)
  const isOurs = !isGo && !hasGuest && impl !== 'kad-dht'
  let guest: OurNode | undefined
  try {
    const limitsBefore = isOurs ? inboundTotals(net.live as AnyNode[]) : {}
    let bulkFigures: Record<string, number> = {}
    let churned: { left: number, joined: number, joiners: Set<AnyNode> } | undefined
    let goSweep: BulkRow['goSweep']
    let goSeconds: number | undefined
    let provider = net.live[random.int(net.live.length)] as AnyNode
    if (hasGuest) {
      // one of ours joins through the two bootstraps (never tarpits) and is the provider
      guest = await createOurNode({ ...ours, kBucketSize: 20 })
      const bootstraps = impl === 'priority-dht-on-go'
        ? (net as GoNetwork).peers.slice(0, 2).map(p => p.p2pAddrs())
        : (net as DaemonNetwork).peers.slice(0, 2).map(p => p.addrs.map(a => multiaddr(a)))
      for (const bootstrap of bootstraps) {
        await guest.dial(bootstrap)
      }
      // settled, as the Go provider is (a member of its network since it formed): the start-up
      // refresh (the self lookup, then one per bucket) has run and gone quiet
      const joinedAt = Date.now()
      const deadline = joinedAt + TABLE_TIMEOUT
      while (Date.now() < deadline && guest.services.dht.routingTable.size < 20) {
        await new Promise(resolve => setTimeout(resolve, 200))
      }
      const quiet = await refreshQuiet([guest], Math.max(0, deadline - Date.now()))
      log(`${impl}: our node joined and settled in ${Date.now() - joinedAt} ms, routing table ${guest.services.dht.routingTable.size}, ${guest.getConnections().length} connections, ${quiet.requests} refresh requests`)
      provider = guest
    }
    const cids = await makeCids(keys, seed)
    const dials = net.tarpitDials()
    const profile = cpuProf != null ? await startProfile() : undefined
    const start = performance.now()
    const cpu0 = process.cpuUsage()
    const elu0 = performance.eventLoopUtilization()
    let done = 0
    let lookups = 0
    if (hasGuest) {
      const result = await (provider as OurNode).services.dht.provideMany(cids)
      done = result.provided
      lookups = result.lookups
      log(`${impl}: ${JSON.stringify(result)}`)
    } else if (isGo) {
      const peer = (net as GoNetwork).peers[net.live.indexOf(provider)]
      if (impl === 'go-sweep') {
        const r = await peer.provideSweep(cids, goBudget * 1000)
        done = keys - (r.pending ?? 0)
        lookups = r.lookups ?? 0
        goSeconds = r.ms / 1000
        goSweep = { readySeconds: Math.round((r.readyMs ?? 0) / 100) / 10, regions: r.regions ?? 0, prefixLen: r.prefixLen ?? 0, drained: r.drained === true, failed: r.failed }
        log(`go-sweep: ${JSON.stringify(r)}`)
      } else {
        const r = await peer.provideBurst(cids, KAD_DHT_CONCURRENCY, budget * 1000)
        done = r.provided
        lookups = r.provided + r.failed
        log(`go-burst: ${JSON.stringify(r)}`)
      }
    } else if (impl === 'kad-dht') {
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
    } else if (impl === 'priority-dht-single') {
      // the default configuration: single provides, 10 in flight; the region cache is what saves the lookups
      const before = (provider as OurNode).services.dht.regionCache
      await pool(cids, KAD_DHT_CONCURRENCY, async cid => {
        try {
          await provider.contentRouting.provide(cid)
          done++
        } catch {
          // a failed provide counts as not done
        }
      })
      const after = (provider as OurNode).services.dht.regionCache
      lookups = (after?.misses ?? 0) - (before?.misses ?? 0)
    } else if (impl === 'priority-dht-batched') {
      const results = await Promise.allSettled(cids.map(async cid => provider.contentRouting.provide(cid)))
      done = results.filter(r => r.status === 'fulfilled').length
      lookups = (provider as OurNode).services.dht.provideBatching?.lookups ?? 0
    } else {
      const churning = churnShare > 0 ? new Churn(net as BenchNetwork, provider, churnShare, nodes, random, ours, log) : undefined
      // churn one chunk ahead, so that all of it happens while keys are still being provided
      const ahead = Math.min(1024, cids.length) / cids.length
      churning?.step(ahead)
      const result = await (provider as OurNode).services.dht.provideMany(cids, { onBulkProgress: p => { churning?.step(p.keysDone / p.keys + ahead) } })
      await churning?.settle()
      if (churning != null) {
        churned = { left: churning.left, joined: churning.joined, joiners: churning.joiners }
      }
      done = result.provided
      lookups = result.lookups
      const out = (provider as OurNode).services.dht.usage().outbound
      bulkFigures = { bulkMessages: result.messages, bulkFailures: result.failures, bulkPeersReached: result.peersReached, providerStreams: out.streams, providerFailures: out.failures }
    }
    // go-sweep: the Go peer's own figure, from StartProviding to the drained queue (its readiness wait before is reported apart)
    const seconds = goSeconds ?? (performance.now() - start) / 1000
    // this process only: the provider, and on our networks every server too
    const cpu = process.cpuUsage(cpu0)
    const processCpu = { cpuSeconds: Math.round((cpu.user + cpu.system) / 1e5) / 10, eventLoopBusy: Math.round(100 * performance.eventLoopUtilization(elu0).utilization) / 100 }
    log(`${impl}: ${JSON.stringify(processCpu)} in ${Math.round(seconds * 10) / 10} s`)
    if (profile != null && cpuProf != null) {
      await mkdir(cpuProf, { recursive: true })
      const file = join(cpuProf, `${impl}-${Math.round(tarpits * 100)}-${keys}.cpuprofile`)
      await stopProfile(profile, file)
      log(`CPU profile of the provide: ${file}`)
    }
    if (impl === 'priority-dht-procs') {
      log(`${impl}: the servers' inbound limits counted ${JSON.stringify(await (net as DaemonNetwork).inbound())} in all`)
    }
    const limitsAfter = isOurs ? inboundTotals(net.live as AnyNode[]) : {}
    const limits = !isOurs ? undefined : { ...Object.fromEntries(Object.entries(limitsAfter).map(([k, v]) => [k, v - (limitsBefore[k] ?? 0)])), ...bulkFigures }
    const tarpitDials = net.tarpitDials() - dials
    // our servers share this process: ADD_PROVIDER takes no answer, so a
    // provide call can resolve with its records still unread in the
    // servers' streams. Wait until they have stored them (the holders of a
    // sample of the CIDs stop growing), so that the check asks servers that
    // have what they were sent, as separate machines would have long
    // before; the wait is reported as `servedSeconds`
    const servedSeconds = isOurs ? await drained(net.live as AnyNode[], provider, cids, start) : undefined
    const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
    // every CID of a 1000-key run; a seeded sample of 1000 beyond that (10 000 lookups would take longer than the run)
    const checked = cids.length <= checkMax ? cids : cids.filter((_, i) => i % Math.ceil(cids.length / checkMax) === 0)
    let churn: BulkRow['churn']
    if (churned != null) {
      // what others find right after the provide, then after a republish sweep: the
      // republisher's sweep is this same call (provideMany with purpose 'republish'),
      // run here at once instead of after the republish interval
      const missesBefore: Miss[] = []
      const foundBeforeSweep = await countFound(net, provider, checked, missesBefore, churned.joiners)
      logMisses(log, 'before the sweep', missesBefore)
      const sweepStart = performance.now()
      const sweep = await (provider as OurNode).services.dht.provideMany(cids, { purpose: 'republish' })
      churn = { left: churned.left, joined: churned.joined, foundBeforeSweep, sweepSeconds: Math.round((performance.now() - sweepStart) / 100) / 10 }
      log(`churn: ${foundBeforeSweep}/${checked.length} found before the sweep, sweep took ${churn.sweepSeconds} s (${sweep.provided} provided, ${sweep.lookups} lookups, ${sweep.failures} failures)`)
    }
    const missesAfter: Miss[] = []
    // kad-dht and go-burst finish only part of the keys within the budget: not checked
    // our rows are checked with our findProviders, whose events say why a CID was missed
    const found = impl === 'kad-dht' || impl === 'go-burst' ? undefined : await countFound(net, provider, checked, isOurs ? missesAfter : undefined, churned?.joiners)
    if (missesAfter.length > 0) {
      logMisses(log, churned != null ? 'after the sweep' : 'after the provide', missesAfter)
    }
    if (limits != null) {
      // messages the servers decoded by the end of the check: those written but never read were lost with their streams
      limits.messagesAfterCheck = (inboundTotals(net.live as AnyNode[]).messages ?? 0) - (limitsBefore.messages ?? 0)
    }
    return {
      impl,
      tarpits,
      keys,
      keysDone: done,
      found,
      checked: checked.length,
      seconds: Math.round(seconds * 10) / 10,
      servedSeconds,
      ...processCpu,
      // two decimals: kad-dht does a few keys per second, and the ratio is taken from this
      keysPerSecond: Math.round(100 * done / seconds) / 100,
      lookupsPerKey: Math.round(100_000 * lookups / Math.max(1, done)) / 100_000,
      tarpitDialsPerKey: Math.round(1000 * tarpitDials / Math.max(1, done)) / 1000,
      peakRssMb,
      churn,
      goSweep,
      limits
    }
  } finally {
    await guest?.stop()
    await net.close()
  }
}

// on a loaded machine libp2p's dial queue can reject with nobody waiting (an upgrade timing out): log it, do not end the run
process.on('unhandledRejection', err => { console.error(`  unhandled rejection (ignored): ${(err as Error)?.name} ${(err as Error)?.message}`) })

const argv = process.argv.slice(2)
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`npm run bench:bulk -- [options]: one node announces many CIDs; others look for them afterwards

  --quick             30 nodes, 1 000 CIDs, a 60 s budget
  --nodes N           nodes per network (40)
  --seed N            seed of every random choice (1)
  --keys N,N          CIDs per row (1000,10000)
  --tarpits S         share of tarpits in the second phase (0.3); --tarpits-only runs just that one
  --against A,A       kad-dht (default) and/or go: the rows to compare with
  --only ROW,ROW      just these rows (priority-dht, priority-dht-single, priority-dht-batched,
                      priority-dht-on-go, priority-dht-procs, kad-dht, go-sweep, go-burst)
  --ours-only         provideMany rows only
  --batched           also single provides with transparent batching
  --budget S          time limit of the provide-per-CID rows (120 s)
  --go-budget S       time limit of the go-sweep row (900 s)
  --check N           CIDs looked for afterwards, an even sample beyond (1000)
  --churn S           a share S of the nodes leave and as many join during provideMany, then a republish sweep
  --init '{json}'     PriorityDHTInit merged into every priority-dht node
  --cpu-prof DIR      a CPU profile of each row's provide (for benchmarks/cpu-profile.ts)
`)
  process.exit(0)
}
const quick = argv.includes('--quick')
const nodes = arg(argv, 'nodes', quick ? 30 : 40)
const seed = arg(argv, 'seed', 1)
const budget = arg(argv, 'budget', quick ? 60 : 120)
// --go-budget S: the go-sweep row's time limit (its queue not drained by then: the keys still queued count as not done)
const goBudget = arg(argv, 'go-budget', 900)
// --against kad-dht (default), go, or both (comma-separated)
const againstArg = argv.indexOf('--against')
const against = againstArg !== -1 ? argv[againstArg + 1].split(',').map(s => s.trim()) : ['kad-dht']
for (const a of against) {
  if (a !== 'kad-dht' && a !== 'go') {
    throw new RangeError(`--against: kad-dht or go, got ${a}`)
  }
}
const keysArg = argv.indexOf('--keys')
const sizes = keysArg !== -1 ? argv[keysArg + 1].split(',').map(Number) : quick ? [1000] : [1000, 10_000]
// --ours-only: provideMany rows only (no kad-dht, no single provides), for measuring our own changes
const oursOnly = argv.includes('--ours-only')
// --only ROW,ROW: run just these rows (e.g. priority-dht-single), for looking into one of them
const onlyArg = argv.indexOf('--only')
const only = onlyArg !== -1 ? argv[onlyArg + 1].split(',').map(s => s.trim()) : undefined
// --cpu-prof DIR: a CPU profile of each row's provide (this process: the provider, and on our networks the servers), for benchmarks/cpu-profile.ts
const cpuProfArg = argv.indexOf('--cpu-prof')
const cpuProf = cpuProfArg !== -1 ? argv[cpuProfArg + 1] : undefined
// --check N: other nodes look for at most N of the CIDs (an even sample beyond), default 1000
const checkMax = arg(argv, 'check', CHECK_MAX)
// --churn S: provideMany rows only; a share S of the nodes leave and as many join during the provide, then a republish sweep
const churnShare = arg(argv, 'churn', 0)
// --init '{json}': PriorityDHTInit merged into every priority-dht node (e.g. '{"inbound":{"maxRequestsInFlight":100000}}')
const initArg = argv.indexOf('--init')
const ours: PriorityDHTInit = initArg !== -1 ? JSON.parse(argv[initArg + 1]) : {}
// 0% and --tarpits (default 30%); with --tarpits-only, just the latter
const shares = argv.includes('--tarpits-only') ? [arg(argv, 'tarpits', 0.3)] : [...new Set([0, arg(argv, 'tarpits', 0.3)])]
const rows: BulkRow[] = []
for (const tarpits of shares) {
  for (const keys of sizes) {
    const impls: BulkImpl[] = ['priority-dht']
    if (keys <= 1000 && !oursOnly && churnShare === 0) {
      impls.push('priority-dht-single')
    }
    if (argv.includes('--batched') && churnShare === 0) {
      impls.push('priority-dht-batched')
    }
    if (!oursOnly && churnShare === 0 && against.includes('kad-dht')) {
      impls.push('kad-dht')
    }
    if (!oursOnly && churnShare === 0 && against.includes('go')) {
      impls.push('priority-dht-on-go', 'priority-dht-procs', 'go-sweep')
      if (keys <= 1000) {
        impls.push('go-burst')
      }
    }
    for (const impl of impls.filter(i => only == null || only.includes(i))) {
      console.error(`${impl}: ${keys} keys, ${nodes} nodes, ${tarpits * 100}% tarpits (load average ${loadavg().map(l => l.toFixed(1)).join(' ')})`)
      const row = await runOne(impl, nodes, tarpits, keys, seed, budget, goBudget, ours, churnShare)
      if (row.limits != null) {
        console.error(`  ${row.seconds} s, limits: ${JSON.stringify(row.limits)}`)
      }
      rows.push(row)
    }
  }
}
// ratios against Go's sweeping provider when it ran, else against kad-dht
const reference: BulkImpl = against.includes('go') ? 'go-sweep' : 'kad-dht'
const lines = [`| tarpits | keys | implementation | keys done | found by others | seconds | served by (s) | keys/s | lookups/key | tarpit dials/key | keys/s / ${reference} |`, '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
for (const r of rows) {
  const theirs = rows.find(o => o.impl === reference && o.keys === r.keys && o.tarpits === r.tarpits)
  const ratio = r.impl !== reference && theirs != null && theirs.keysPerSecond > 0 ? `${(r.keysPerSecond / theirs.keysPerSecond).toFixed(r.keysPerSecond / theirs.keysPerSecond < 1 ? 2 : 1)}x` : ''
  lines.push(`| ${r.tarpits * 100}% | ${r.keys} | ${r.impl} | ${r.keysDone} | ${r.found == null ? 'not checked' : `${r.found}/${r.checked}`} | ${r.seconds} | ${r.servedSeconds ?? ''} | ${r.keysPerSecond >= 100 ? Math.round(r.keysPerSecond) : r.keysPerSecond} | ${r.lookupsPerKey} | ${r.tarpitDialsPerKey} | ${ratio} |`)
}
console.log(lines.join('\n'))
const dir = join(import.meta.dirname, 'results')
await mkdir(dir, { recursive: true })
const file = join(dir, `bulk-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
await writeFile(file, JSON.stringify({ date: new Date().toISOString(), nodes, seed, budget, goBudget, against, init: ours, loadAverageAtEnd: loadavg(), rows }, null, 2))
console.error(`raw results: ${file}`)
