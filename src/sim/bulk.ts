/**
 * Scenario: bulk provide. One publisher announces `keys` provider records
 * at once, as `provideMany` does (`src/libp2p/bulk.ts`), with the core's
 * region logic (`RegionCache`) and placement rules (`FanOut`):
 *
 * 1. keys are sorted in keyspace order and taken `chunkSize` at a time;
 * 2. the first key's lookup gives the region depth, so the regions the chunk
 * spans; the chunk is cut into that many halved, at most
 * `lookupConcurrency`, contiguous slices walked at once (as `provideMany`
 * does, with the same core functions); walking a slice, a key its current
 * region covers is placed on the k closest peers that region knows; any
 * other key starts a FIND_NODE lookup whose result becomes the slice's next
 * region;
 * 3. then each target peer gets all of its chunk's keys in one pooled
 * exchange (one message here, carrying the keys), `concurrency` peers at
 * once; when a peer fails, each of its keys goes to that key's next spare
 * (the next closest peer its region knows), batched by peer again.
 *
 * Reported: virtual time until the last delivery ended, lookups, key-peer
 * deliveries, dials and undialable dials, and per key the copies stored.
 * After it, a random node other than the publisher runs findProviders for a
 * sample of `sample` keys (as the records scenario does).
 *
 * Bounds: one chunk's plans at a time (`chunkSize` keys, each at most
 * k + spares targets); at most `concurrency` batches in flight.
 */
import { compareBytes, KEY_BYTES } from '../core/key.ts'
import { FanOut } from '../core/publish/fan-out.ts'
import { RegionCache, regionsSpanned, sliceCount, sliceStarts } from '../core/publish/region.ts'
import { validateLookupConfig } from '../core/query/config.ts'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { indexOf } from './world.ts'
import type { SimContact } from './node.ts'
import type { Found, LookupFinished, World, WorldListener } from './world.ts'
import type { Millis, Random } from '../core/env.ts'
import type { Key } from '../core/key.ts'

export interface BulkOptions {
  /**
   * Keys to provide.
   *
   * @default 1000 (range 1..1,000,000)
   */
  keys: number
  /**
   * Keys per chunk (the adapter's chunk).
   *
   * @default 1024 (range 1..100,000)
   */
  chunkSize: number
  /**
   * Peers written to at once (the adapter's default).
   *
   * @default 16 (range 1..1024)
   */
  concurrency: number
  /**
   * Lookups run at once: a chunk spanning several regions is cut into up to
   * this many contiguous slices of the keyspace (one per two regions), each
   * walked with its own region (at most one lookup more per slice). 1: one
   * walk, one lookup after another.
   *
   * @default 8 (range 1..256)
   */
  lookupConcurrency: number
  /**
   * Spares per key beyond the k closest.
   *
   * @default 10 (range 0..256)
   */
  spares: number
  /**
   * Keys sought afterwards with findProviders from random nodes.
   *
   * @default 100 (range 0..1,000,000)
   */
  sample: number
}

export function validateBulkOptions (partial: Partial<BulkOptions> = {}): BulkOptions {
  const o: BulkOptions = { keys: 1000, chunkSize: 1024, concurrency: 16, lookupConcurrency: 8, spares: 10, sample: 100, ...stripUndefined(partial) }
  checkRange('bulk.keys', o.keys, 1, 1_000_000)
  checkRange('bulk.chunkSize', o.chunkSize, 1, 100_000)
  checkRange('bulk.concurrency', o.concurrency, 1, 1024)
  checkRange('bulk.spares', o.spares, 0, 256)
  checkRange('bulk.lookupConcurrency', o.lookupConcurrency, 1, 256)
  checkRange('bulk.sample', o.sample, 0, 1_000_000)
  return o
}

export interface BulkResult {
  publisher: number
  keys: number
  /** Virtual ms from the start until the last delivery ended */
  durationMs: Millis
  lookups: number
  /** Key-peer deliveries attempted (each ADD_PROVIDER) */
  deliveries: number
  /** Pooled exchanges (one per peer per chunk, plus retries) */
  batches: number
  dials: number
  undialableDials: number
  /** Keys that reached at least one peer */
  provided: number
  /** Mean copies per key */
  copiesMean: number
  /** Sampled findProviders from other nodes: how many found a provider */
  sampled: number
  found: number
}

type Target = SimContact

interface Slice {
  next: number
  end: number
  /** placed keys not handed to delivery yet, by target peer */
  pending: Map<string, { peer: Target, keys: number[] }>
  /** the targets of the last key placed */
  last: Set<string>
  region: RegionCache<Target>
  lookupQuery?: number
  lookedUp: number
}

export class BulkProvide implements WorldListener {
  readonly options: BulkOptions
  private readonly world: World
  private readonly random: Random
  private readonly k: number
  private readonly publisher: number
  private readonly keys: Key[]
  private readonly result: BulkResult
  private startedAt = 0
  /** first key of the chunk being placed or delivered */
  private next = 0
  private chunkEnd = 0
  private plans = new Map<number, FanOut<Target>>()
  private slices: Slice[] = []
  private readonly lookups = new Map<number, Slice>()
  /** the region the last slice ended in; the next chunk starts there */
  private shared: RegionCache<Target>
  /** the lookup for a chunk's first key, when its region was not known */
  private probe: number | undefined
  private readonly queue: Array<{ peer: Target, keys: number[] }> = []
  private inFlight = 0
  /** every key of the chunk is placed (the chunk is done once its deliveries are) */
  private placed = false
  private copies = 0
  private phase: 'provide' | 'find' | 'done' = 'provide'
  private readonly finds = new Map<number, number>()
  private sampleNext = 0

  constructor (world: World, options: Partial<BulkOptions>, random: Random) {
    this.world = world
    this.options = validateBulkOptions(options)
    this.random = random
    this.k = validateLookupConfig(world.config.coordinator.lookup).k
    this.shared = new RegionCache<Target>(this.k, this.k + this.options.spares + 64)
    let publisher = random.int(world.size)
    while (!world.network.dialable(publisher) && world.network.dialableNodes > 0) {
      publisher = random.int(world.size)
    }
    this.publisher = publisher
    this.keys = Array.from({ length: this.options.keys }, () => random.fill(new Uint8Array(KEY_BYTES))).sort(compareBytes)
    this.result = { publisher, keys: this.options.keys, durationMs: 0, lookups: 0, deliveries: 0, batches: 0, dials: 0, undialableDials: 0, provided: 0, copiesMean: 0, sampled: 0, found: 0 }
  }

  get done (): boolean {
    return this.phase === 'done'
  }

  /** Keys placed so far (their chunk looked up and handed to delivery) */
  get progress (): number {
    return this.next
  }

  get report (): BulkResult {
    return this.result
  }

  start (at: Millis = this.world.now): void {
    this.world.listener = this
    this.world.at(at, 'bulk', () => {
      this.startedAt = this.world.now
      this.nextChunk()
    })
  }

  onRequest (node: number, queryId: number | undefined, peer: number, dialed: boolean): void {
    // the bulk lookups' dials (the sampled finds are not part of the provide)
    if (queryId === undefined || (!this.lookups.has(queryId) && queryId !== this.probe) || !dialed) {
      return
    }
    this.result.dials++
    if (!this.world.network.dialable(peer)) {
      this.result.undialableDials++
    }
  }

  onFound (node: number, found: Found): void {
    if (this.finds.has(found.queryId) && found.providers.length > 0) {
      this.finds.set(found.queryId, 1)
      this.world.stopLookup(node, found.queryId)
    }
  }

  onLookupFinished (node: number, e: LookupFinished): void {
    if (e.queryId === this.probe) {
      this.probe = undefined
      this.shared.learn(this.keys[this.next], e.closest.map(c => this.target(c)), e.spares.map(c => this.target(c)))
      this.split()
      return
    }
    const slice = this.lookups.get(e.queryId)
    if (slice != null) {
      this.lookups.delete(e.queryId)
      slice.lookupQuery = undefined
      slice.region.learn(this.keys[slice.next], e.closest.map(c => this.target(c)), e.spares.map(c => this.target(c)))
      this.place(slice)
      return
    }
    const found = this.finds.get(e.queryId)
    if (found !== undefined) {
      this.finds.delete(e.queryId)
      this.result.found += found
      if (this.finds.size === 0 && this.sampleNext >= this.result.sampled) {
        this.phase = 'done'
      }
    }
  }

  private target (c: { id: string }): Target {
    return this.world.contacts[indexOf(c as Target)]
  }

  private nextChunk (): void {
    if (this.next >= this.keys.length) {
      this.finish()
      return
    }
    this.chunkEnd = Math.min(this.keys.length, this.next + this.options.chunkSize)
    this.plans = new Map()
    this.placed = false
    if (this.shared.covers(this.keys[this.next])) {
      this.split()
      return
    }
    // the first key's lookup tells the region depth, so how many slices are worth walking at once
    this.result.lookups++
    this.probe = this.world.startLookup(this.publisher, this.keys[this.next])
  }

  /** Cuts the chunk into slices as provideMany does, and walks them at once */
  private split (): void {
    const keys = this.keys.slice(this.next, this.chunkEnd)
    const starts = sliceStarts(keys, this.shared.regionDepth, sliceCount(regionsSpanned(keys, this.shared.regionDepth), this.options.lookupConcurrency))
    this.slices = []
    for (let i = 0; i < starts.length; i++) {
      const start = this.next + starts[i]
      const end = this.next + (starts[i + 1] ?? keys.length)
      const region = i === 0 ? this.shared : new RegionCache<Target>(this.k, this.k + this.options.spares + 64)
      // the first slice's first key was just looked up: place it even if the region is too small to cover it
      this.slices.push({ next: start, end, pending: new Map(), last: new Set(), lookedUp: i === 0 ? start : -1, region })
    }
    for (const slice of this.slices) {
      this.place(slice)
    }
  }

  /** Places a slice's keys while its region covers them; looks up the first it does not */
  private place (slice: Slice): void {
    while (slice.next < slice.end) {
      const key = this.keys[slice.next]
      // the key a lookup was for is placed even when the region is too small to cover it
      if (!slice.region.covers(key) && slice.lookedUp !== slice.next) {
        if (slice.lookupQuery === undefined) {
          // what the slice placed so far goes out while it looks up the next region, as provideMany does
          this.handOver(slice, slice.last)
          this.result.lookups++
          slice.lookedUp = slice.next
          slice.lookupQuery = this.world.startLookup(this.publisher, key)
          this.lookups.set(slice.lookupQuery, slice)
        }
        return
      }
      const near = slice.region.closest(key, this.k + this.options.spares)
      const plan = new FanOut(near.slice(0, this.k), near.slice(this.k), 1)
      this.plans.set(slice.next, plan)
      slice.last = new Set()
      for (const peer of plan.start()) {
        const batch = slice.pending.get(peer.id) ?? { peer, keys: [] }
        batch.keys.push(slice.next)
        slice.pending.set(peer.id, batch)
        slice.last.add(peer.id)
      }
      slice.next++
    }
    this.handOver(slice, new Set())
    if (this.slices.every(s => s.next >= s.end)) {
      this.next = this.chunkEnd
      this.shared = this.slices[this.slices.length - 1].region
      this.placed = true
      if (this.inFlight === 0 && this.queue.length === 0) {
        this.chunkDone()
      }
    }
  }

  /**
   * The slice's placed keys go to delivery, a batch per target peer, but for
   * the peers in `hold` (as provideMany holds back the last placed key's
   * targets while it looks up the next region)
   */
  private handOver (slice: Slice, hold: ReadonlySet<string>): void {
    for (const [id, batch] of slice.pending) {
      if (!hold.has(id)) {
        this.queue.push(batch)
        slice.pending.delete(id)
      }
    }
    this.pump()
  }

  private pump (): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const batch = this.queue.shift() as { peer: Target, keys: number[] }
      this.inFlight++
      this.result.batches++
      this.result.deliveries += batch.keys.length
      const keys = batch.keys.map(i => this.keys[i])
      this.world.sendRecord(this.publisher, batch.peer.index, { kind: 'add-providers', keys, provider: this.publisher }, outcome => {
        this.inFlight--
        if (outcome.dialed) {
          this.result.dials++
          this.result.undialableDials += outcome.undialable ? 1 : 0
        }
        const retry = new Map<string, { peer: Target, keys: number[] }>()
        for (const i of batch.keys) {
          const plan = this.plans.get(i) as FanOut<Target>
          const next = plan.result(batch.peer, outcome.ok)
          if (outcome.ok) {
            this.copies++
          }
          if (next != null) {
            const r = retry.get(next.id) ?? { peer: next, keys: [] }
            r.keys.push(i)
            retry.set(next.id, r)
          }
        }
        this.queue.push(...retry.values())
        if (this.inFlight === 0 && this.queue.length === 0) {
          if (this.placed) {
            this.chunkDone()
          }
        } else {
          this.pump()
        }
      })
    }
  }

  private chunkDone (): void {
    for (const plan of this.plans.values()) {
      if (plan.stored > 0) {
        this.result.provided++
      }
    }
    this.nextChunk()
  }

  private finish (): void {
    this.result.durationMs = this.world.now - this.startedAt
    this.result.copiesMean = this.copies / this.keys.length
    this.phase = 'find'
    this.result.sampled = Math.min(this.options.sample, this.keys.length)
    if (this.result.sampled === 0) {
      this.phase = 'done'
      return
    }
    this.world.at(this.world.now, 'bulk-find', () => { this.findNext() })
  }

  private findNext (): void {
    const key = this.keys[this.random.int(this.keys.length)]
    let node = this.random.int(this.world.size)
    while (node === this.publisher) {
      node = this.random.int(this.world.size)
    }
    this.sampleNext++
    if ((this.world.node(node).records?.providersOf(key, this.world.now).length ?? 0) > 0) {
      this.result.found++
      if (this.sampleNext >= this.result.sampled && this.finds.size === 0) {
        this.phase = 'done'
      }
    } else {
      this.finds.set(this.world.startLookup(node, key, { kind: 'get-providers', key }), 0)
    }
    if (this.sampleNext < this.result.sampled) {
      this.world.at(this.world.now + 100, 'bulk-find', () => { this.findNext() })
    }
  }
}
