/**
 * Scenario: a live network over virtual hours, sampled at fixed intervals.
 *
 * Every node runs its own maintenance as the core schedules it (bucket
 * refresh, liveness checks, admission); meanwhile probe lookups of random
 * keys start at an even pace from random nodes (`RandomLookups`), so each
 * interval has lookups to time. At the end of every interval a sample
 * records, for classic nodes and for adopters apart:
 * - the probe lookups that finished in the interval: count, latency p50 and
 * p95, undialable dials per lookup;
 * - what their routing tables hold: entries, the share whose node is
 * undialable, the share whose node is offline at that moment;
 * and network-wide the requests sent per node per virtual minute and the
 * refresh lookups that finished.
 *
 * Records over time: `provides` provide probes per interval, evenly
 * spaced, each from a random online node, run by a `RecordOps` (lookup,
 * then the core's `FanOut`), whose publishers republish on their
 * `RepublishSchedule`. A sample reports per group the provides that
 * reported in the interval (latency at quorum plus grace, as `records.ts`)
 * and seeks `findableSample` records drawn among those published so far
 * whose latest placement is younger than the record TTL: findProviders
 * from a random online node other than the publisher, counted in that
 * node's group. The share found is filled into the sample as the searches
 * end; the run is done once the last sample's searches have.
 *
 * Run it on an eager world (`--eager`): a lazily built one has no history,
 * untouched nodes never refresh. The trace hash covers the whole run, so
 * the same seed gives the same samples.
 *
 * Bounds: one sample per interval (`duration / sampleEvery`, at most
 * 10 000); the probes are a `RandomLookups`, bounded as it is; the
 * provide probes at most `provides` per interval, their republishes and
 * searches bounded as `records.ts` says; at most `findableSample`
 * searches in flight per sample.
 */
import { SeededRandom } from '../core/env.ts'
import { validateLookupConfig } from '../core/query/config.ts'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { Arrivals } from './arrivals.ts'
import { validateSimDurability } from './durability.ts'
import { hash32 } from './hash.ts'
import { Initiators } from './initiators.ts'
import { RecordOps } from './records.ts'
import { RandomLookups } from './scenarios.ts'
import type { DurabilityCost, SimDurabilityOptions } from './durability.ts'
import type { SimContact } from './node.ts'
import type { RecordOpRecord } from './records.ts'
import type { LookupRecord } from './report.ts'
import type { World, WorldListener } from './world.ts'
import type { Millis, Random } from '../core/env.ts'

export interface LiveOptions {
  /**
   * Virtual ms to run.
   *
   * @default 7_200_000 (2 h; range 1 min .. 30 days)
   */
  duration: Millis
  /**
   * Virtual ms between two samples.
   *
   * @default 600_000 (10 min; range 1 s .. duration)
   */
  sampleEvery: Millis
  /**
   * Probe lookups started per interval, evenly spaced.
   *
   * @default 50 (range 1 .. 100 000)
   */
  probes: number
  /**
   * Provide probes started per interval, evenly spaced, each from a random
   * online node, as a publication of the records scenario (lookup, then
   * `FanOut` deliveries); the publisher then republishes it on its
   * `RepublishSchedule`.
   *
   * @default 5 (range 0 .. 10 000)
   */
  provides: number
  /**
   * Records sought at each sample (findProviders from a random online node
   * other than the publisher), drawn among those published so far whose
   * latest placement is younger than the record TTL.
   *
   * @default 50 (range 0 .. 10 000)
   */
  findableSample: number
  /**
   * Virtual ms from a publication to its republish (`records.ts`); 0: off.
   *
   * @default 79 200 000 (22 h)
   */
  republishInterval: Millis
  /**
   * Value puts started per interval, evenly spaced, each from a random
   * online node (IPNS-like: a sequence number), sought like the provide
   * probes (a get that must return the newest value).
   *
   * @default 0 (range 0 .. 10 000)
   */
  puts: number
  /**
   * The durability rules (`durability.ts`).
   *
   * @default the library's defaults (`validateSimDurability()`: handover of what the wire allows, store on get, hourly held re-publish)
   */
  durability: Partial<SimDurabilityOptions>
}

export function validateLiveOptions (partial: Partial<LiveOptions> = {}): LiveOptions {
  const o: LiveOptions = { duration: 7_200_000, sampleEvery: 600_000, probes: 50, provides: 5, findableSample: 50, republishInterval: 22 * 3_600_000, puts: 0, durability: {}, ...stripUndefined(partial) }
  checkRange('live.duration', o.duration, 60_000, 30 * 86_400_000, false)
  checkRange('live.sampleEvery', o.sampleEvery, 1000, o.duration, false)
  checkRange('live.probes', o.probes, 1, 100_000)
  checkRange('live.provides', o.provides, 0, 10_000)
  checkRange('live.findableSample', o.findableSample, 0, 10_000)
  checkRange('live.puts', o.puts, 0, 10_000)
  validateSimDurability(o.durability)
  if (o.duration / o.sampleEvery > 10_000) {
    throw new RangeError(`live: at most 10 000 samples, got ${Math.floor(o.duration / o.sampleEvery)}`)
  }
  return o
}

/** One group of nodes (classic or adopters) in one interval */
export interface LiveGroup {
  /** probe lookups started by the group that finished in the interval */
  lookups: number
  latencyP50: Millis
  latencyP95: Millis
  /**
   * mean share of the true k closest (dialable and online when the lookup
   * ended) that the probe lookups returned
   */
  recall: number
  /** share of the probe lookups that returned exactly those k */
  exact: number
  undialableDialsPerLookup: number
  /**
   * dials to undialable nodes per node per virtual minute during the
   * interval, whatever made them (probe and refresh lookups, verifies)
   */
  undialableDialsPerNodeMinute: number
  /** routing table entries of the group's nodes (replacements not counted) */
  entries: number
  /** share of those entries whose node is undialable */
  undialableShare: number
  /** share of those entries whose node is offline right now */
  offlineShare: number
  /** provide probes by the group's nodes that reported in the interval */
  provides: number
  /** their latency until the quorum had the record plus the grace, as `records.ts` reports it */
  provideP50: Millis
  provideP95: Millis
  /** records sought at the sample by the group's nodes */
  sought: number
  /** of them, those found (filled in as the searches end, shortly after the sample) */
  found: number
  /** found / sought (NaN when none was sought) */
  findable: number
}

export interface LiveSample {
  /** virtual ms since the run started */
  at: Millis
  classic?: LiveGroup
  adopters?: LiveGroup
  /** requests (all kinds) sent per node per virtual minute during the interval */
  requestsPerNodeMinute: number
  /** refresh lookups finished network-wide during the interval */
  refreshLookups: number
  /** nodes online at the end of the interval (joins and departures move it) */
  online: number
  /** nodes that joined so far (with `joinRate`) */
  joined: number
  /** records published so far whose latest placement is younger than the record TTL (those the findable share samples) */
  records: number
  /** republishes started network-wide during the interval */
  republishes: number
  /** record messages (ADD_PROVIDER, PUT_VALUE) sent per node per virtual minute during the interval, every purpose */
  recordMessagesPerNodeMinute: number
  /**
   * messages per node per virtual minute each durability rule sent during
   * the interval (handover: records; store on get and corrections:
   * PUT_VALUE; held re-publish: lookup requests plus deliveries)
   */
  durability: { handover: number, storeOnGet: number, corrections: number, heldRepublish: number }
}

/** Salt of the joining nodes' random stream (their bootstrap peers and refresh keys) */
const SALT_ARRIVALS = 0x61727276
/** Salt of the provide probes' stream (publishers, keys, which records are sought and by whom) */
const SALT_PROVIDES = 0x70726f76

/** A listener that passes every observation to `a`, then to `b` */
function both (a: WorldListener, b: WorldListener): WorldListener {
  return {
    onRequest: (n, q, p, d) => { a.onRequest?.(n, q, p, d); b.onRequest?.(n, q, p, d) },
    onLookupFinished: (n, e) => { a.onLookupFinished?.(n, e); b.onLookupFinished?.(n, e) },
    onResponse: (n, q, p) => { a.onResponse?.(n, q, p); b.onResponse?.(n, q, p) },
    onFound: (n, f) => { a.onFound?.(n, f); b.onFound?.(n, f) },
    onPeerAdded: (n, p) => { a.onPeerAdded?.(n, p); b.onPeerAdded?.(n, p) }
  }
}

function quantile (sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

export class LiveRun {
  readonly options: LiveOptions
  readonly samples: LiveSample[] = []
  private readonly world: World
  private readonly probes: RandomLookups
  private readonly arrivals: Arrivals | undefined
  /** the provide probes, their republishes and the searches for them */
  readonly records: RecordOps
  /** publishers, keys, and which records are sought and by whom */
  private readonly recordsRandom: Random
  private readonly initiators: Initiators
  /** provide probes started, record operations already sampled, republishes as of the last sample, searches not reported yet */
  private readonly provideCounts = { started: 0, puts: 0, seenOps: 0, republishes: 0, pendingSeeks: 0 }
  private readonly intervals: number
  private readonly k: number
  private startedAt: Millis = 0
  private seenRecords = 0
  private lastRequests = 0
  private lastRecordMessages = 0
  private lastCost: DurabilityCost = { handover: 0, storeOnGet: 0, corrections: 0, heldRepublish: 0, heldRepublishes: 0, handoverRefused: 0 }
  private lastRefreshes = 0
  /** undialable dials of [classic, adopter] nodes as of the last sample */
  private readonly lastUndialable = [0, 0]

  constructor (world: World, options: Partial<LiveOptions>, random: Random) {
    this.world = world
    this.options = validateLiveOptions(options)
    this.intervals = Math.floor(this.options.duration / this.options.sampleEvery)
    this.k = validateLookupConfig(world.config.coordinator.lookup).k
    this.probes = new RandomLookups(world, {
      lookups: this.intervals * this.options.probes,
      interval: this.options.sampleEvery / this.options.probes,
      initiators: 'any',
      truth: 'online'
    }, random)
    this.arrivals = world.network.config.joinRate > 0 ? new Arrivals(world, new SeededRandom(hash32(world.config.seed, SALT_ARRIVALS))) : undefined
    this.recordsRandom = new SeededRandom(hash32(world.config.seed, SALT_PROVIDES))
    this.records = new RecordOps(world, { publishers: 0, republishInterval: this.options.republishInterval, durability: this.options.durability }, this.recordsRandom)
    this.initiators = new Initiators(world, this.recordsRandom, 'any', 0)
  }

  get done (): boolean {
    return this.samples.length >= this.intervals && this.provideCounts.pendingSeeks === 0
  }

  /** Samples taken so far, out of `total` */
  get progress (): number {
    return this.samples.length
  }

  get total (): number {
    return this.intervals
  }

  start (): void {
    this.startedAt = this.world.now
    this.lastRequests = this.world.stats.requests
    this.lastRefreshes = this.world.stats.refreshLookups
    this.lastRecordMessages = this.world.stats.recordMessages
    this.records.durability.start(this.startedAt, this.startedAt + this.options.duration)
    this.probes.start()
    this.arrivals?.start()
    this.world.listener = both(this.probes, this.records)
    if (this.options.provides > 0) {
      this.world.at(this.startedAt + this.options.sampleEvery / this.options.provides / 2, 'provide', () => { this.provideNext() })
    }
    if (this.options.puts > 0) {
      this.world.at(this.startedAt + this.options.sampleEvery / this.options.puts / 3, 'put', () => { this.putNext() })
    }
    for (let m = 1; m <= this.intervals; m++) {
      this.world.at(this.startedAt + m * this.options.sampleEvery, 'sample', () => { this.sample() })
    }
  }

  private provideNext (): void {
    this.provideCounts.started++
    this.records.publish(this.initiators.any(), 'provide')
    if (this.provideCounts.started < this.intervals * this.options.provides) {
      this.world.at(this.world.now + this.options.sampleEvery / this.options.provides, 'provide', () => { this.provideNext() })
    }
  }

  private putNext (): void {
    this.provideCounts.puts++
    this.records.publish(this.initiators.any(), 'put')
    if (this.provideCounts.puts < this.intervals * this.options.puts) {
      this.world.at(this.world.now + this.options.sampleEvery / this.options.puts, 'put', () => { this.putNext() })
    }
  }

  private sample (): void {
    const world = this.world
    const records = this.probes.records.slice(this.seenRecords)
    this.seenRecords = this.probes.records.length
    const minutes = this.options.sampleEvery / 60_000
    const sample: LiveSample = {
      at: world.now - this.startedAt,
      requestsPerNodeMinute: (world.stats.requests - this.lastRequests) / world.size / minutes,
      refreshLookups: world.stats.refreshLookups - this.lastRefreshes,
      online: 0,
      joined: this.arrivals?.joined ?? 0,
      records: 0,
      republishes: this.records.republishes - this.provideCounts.republishes,
      recordMessagesPerNodeMinute: (world.stats.recordMessages - this.lastRecordMessages) / world.size / minutes,
      durability: { handover: 0, storeOnGet: 0, corrections: 0, heldRepublish: 0 }
    }
    const cost = this.records.durability.cost
    for (const rule of ['handover', 'storeOnGet', 'corrections', 'heldRepublish'] as const) {
      sample.durability[rule] = (cost[rule] - this.lastCost[rule]) / world.size / minutes
    }
    this.lastCost = { ...cost }
    this.lastRecordMessages = world.stats.recordMessages
    this.provideCounts.republishes = this.records.republishes
    const ops = this.records.ops.slice(this.provideCounts.seenOps).filter(o => o.kind === 'provide' && o.republish !== true)
    this.provideCounts.seenOps = this.records.ops.length
    let present = 0
    for (let i = 0; i < world.size; i++) {
      sample.online += world.network.online(i, world.now) ? 1 : 0
      present += world.network.arrivesAt(i) <= world.now && world.now < world.network.departsAt(i) ? 1 : 0
    }
    // per node of the network as it is now (joined and not departed, online or not)
    sample.requestsPerNodeMinute *= world.size / Math.max(1, present)
    sample.recordMessagesPerNodeMinute *= world.size / Math.max(1, present)
    for (const rule of ['handover', 'storeOnGet', 'corrections', 'heldRepublish'] as const) {
      sample.durability[rule] *= world.size / Math.max(1, present)
    }
    this.lastRequests = world.stats.requests
    this.lastRefreshes = world.stats.refreshLookups
    const adoption = world.config.peerStack ? world.config.adoption : 0
    if (adoption < 1) {
      sample.classic = this.group(false, records, ops)
    }
    if (adoption > 0) {
      sample.adopters = this.group(true, records, ops)
    }
    this.samples.push(sample)
    this.seekSample(sample)
  }

  /**
   * Seeks a sample of the records that should be there: published so far,
   * latest placement younger than the TTL. Each from a random online node
   * other than the publisher; the share found goes to that node's group.
   */
  private seekSample (sample: LiveSample): void {
    const now = this.world.now
    const eligible: number[] = []
    for (let r = 0; r < this.records.recordCount; r++) {
      const placedAt = this.records.recordInfo(r).placedAt
      if (placedAt !== undefined && now - placedAt < this.world.config.recordTtl) {
        eligible.push(r)
      }
    }
    sample.records = eligible.length
    const n = Math.min(this.options.findableSample, eligible.length)
    for (let i = 0; i < n; i++) {
      // partial Fisher-Yates: a uniform sample without repeats
      const j = i + this.recordsRandom.int(eligible.length - i)
      const record = eligible[j]
      eligible[j] = eligible[i]
      const publisher = this.records.recordInfo(record).publisher
      let node = this.initiators.any()
      while (node === publisher && this.world.size > 1) {
        node = this.initiators.any()
      }
      const g = this.world.adopter(node) && sample.adopters != null ? sample.adopters : sample.classic
      if (g == null) {
        continue
      }
      g.sought++
      this.provideCounts.pendingSeeks++
      this.records.seek(record, node, op => {
        this.provideCounts.pendingSeeks--
        g.found += op.success ? 1 : 0
        g.findable = g.found / g.sought
      })
    }
    for (const g of [sample.classic, sample.adopters]) {
      if (g != null && g.sought > 0) {
        g.findable = g.found / g.sought
      }
    }
  }

  private group (adopter: boolean, all: readonly LookupRecord[], provideOps: readonly RecordOpRecord[]): LiveGroup {
    const world = this.world
    const records = all.filter(r => r.adopter === adopter)
    const provides = provideOps.filter(o => o.adopter === adopter).map(o => o.latency).sort((a, b) => a - b)
    const latencies = records.map(r => r.latency).sort((a, b) => a - b)
    let entries = 0
    let undialable = 0
    let offline = 0
    let nodes = 0
    let dials = 0
    for (let i = 0; i < world.size; i++) {
      if (!world.built(i) || world.adopter(i) !== adopter) {
        continue
      }
      nodes++
      dials += world.node(i).undialableDials
      for (const c of world.node(i).coordinator.routingTable.contacts()) {
        const peer = (c as SimContact).index
        entries++
        if (!world.network.dialable(peer)) {
          undialable++
        }
        if (!world.network.online(peer, world.now)) {
          offline++
        }
      }
    }
    const g = adopter ? 1 : 0
    const newDials = dials - this.lastUndialable[g]
    this.lastUndialable[g] = dials
    return {
      lookups: records.length,
      latencyP50: quantile(latencies, 0.5),
      latencyP95: quantile(latencies, 0.95),
      recall: records.length === 0 ? NaN : records.reduce((s, r) => s + r.found, 0) / (records.length * this.k),
      exact: records.length === 0 ? NaN : records.filter(r => r.success).length / records.length,
      undialableDialsPerLookup: records.length === 0 ? NaN : records.reduce((s, r) => s + r.undialableDials, 0) / records.length,
      undialableDialsPerNodeMinute: nodes === 0 ? 0 : newDials / nodes / (this.options.sampleEvery / 60_000),
      entries,
      undialableShare: entries === 0 ? 0 : undialable / entries,
      offlineShare: entries === 0 ? 0 : offline / entries,
      provides: provides.length,
      provideP50: quantile(provides, 0.5),
      provideP95: quantile(provides, 0.95),
      sought: 0,
      found: 0,
      findable: NaN
    }
  }
}
