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
 * Run it on an eager world (`--eager`): a lazily built one has no history,
 * untouched nodes never refresh. The trace hash covers the whole run, so
 * the same seed gives the same samples.
 *
 * Bounds: one sample per interval (`duration / sampleEvery`, at most
 * 10 000); the probes are a `RandomLookups`, bounded as it is.
 */
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { RandomLookups } from './scenarios.ts'
import type { SimContact } from './node.ts'
import type { LookupRecord } from './report.ts'
import type { World } from './world.ts'
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
}

export function validateLiveOptions (partial: Partial<LiveOptions> = {}): LiveOptions {
  const o: LiveOptions = { duration: 7_200_000, sampleEvery: 600_000, probes: 50, ...stripUndefined(partial) }
  checkRange('live.duration', o.duration, 60_000, 30 * 86_400_000, false)
  checkRange('live.sampleEvery', o.sampleEvery, 1000, o.duration, false)
  checkRange('live.probes', o.probes, 1, 100_000)
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
}

function quantile (sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

export class LiveRun {
  readonly options: LiveOptions
  readonly samples: LiveSample[] = []
  private readonly world: World
  private readonly probes: RandomLookups
  private readonly intervals: number
  private startedAt: Millis = 0
  private seenRecords = 0
  private lastRequests = 0
  private lastRefreshes = 0
  /** undialable dials of [classic, adopter] nodes as of the last sample */
  private readonly lastUndialable = [0, 0]

  constructor (world: World, options: Partial<LiveOptions>, random: Random) {
    this.world = world
    this.options = validateLiveOptions(options)
    this.intervals = Math.floor(this.options.duration / this.options.sampleEvery)
    this.probes = new RandomLookups(world, {
      lookups: this.intervals * this.options.probes,
      interval: this.options.sampleEvery / this.options.probes,
      initiators: 'any'
    }, random)
  }

  get done (): boolean {
    return this.samples.length >= this.intervals
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
    this.probes.start()
    for (let m = 1; m <= this.intervals; m++) {
      this.world.at(this.startedAt + m * this.options.sampleEvery, 'sample', () => { this.sample() })
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
      refreshLookups: world.stats.refreshLookups - this.lastRefreshes
    }
    this.lastRequests = world.stats.requests
    this.lastRefreshes = world.stats.refreshLookups
    const adoption = world.config.peerStack ? world.config.adoption : 0
    if (adoption < 1) {
      sample.classic = this.group(false, records)
    }
    if (adoption > 0) {
      sample.adopters = this.group(true, records)
    }
    this.samples.push(sample)
  }

  private group (adopter: boolean, all: readonly LookupRecord[]): LiveGroup {
    const world = this.world
    const records = all.filter(r => r.adopter === adopter)
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
      undialableDialsPerLookup: records.length === 0 ? NaN : records.reduce((s, r) => s + r.undialableDials, 0) / records.length,
      undialableDialsPerNodeMinute: nodes === 0 ? 0 : newDials / nodes / (this.options.sampleEvery / 60_000),
      entries,
      undialableShare: entries === 0 ? 0 : undialable / entries,
      offlineShare: entries === 0 ? 0 : offline / entries
    }
  }
}
