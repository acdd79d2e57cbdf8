/**
 * Bulk provide (and bulk put of value records): thousands of keys without
 * one lookup per key.
 *
 * Keys are sorted by their position in the keyspace and taken a chunk at a
 * time. The first key's lookup tells the region depth, so how many regions
 * the chunk spans; a chunk that spans several is cut into up to
 * `lookupConcurrency` contiguous slices walked at once (one per two regions),
 * each with its own region (see `src/core/publish/region.ts`): a key
 * inside the slice's current region is placed on the k closest peers that
 * region's lookup found; a key outside it starts a new lookup, and so a new
 * region. Then every target peer gets all of its chunk's records, one
 * ADD_PROVIDER after another on one stream, in batches of 512 to 1024
 * (larger while the peer answers fast), each closed by a FIND_NODE for our
 * own key whose answer says the peer served the batch (so the writer keeps
 * to the peer's pace and a record counts as delivered only once taken),
 * `concurrency` peers at once. A peer that fails is abandoned for the chunk
 * and each key it did not take goes to that key's next spare (the core's
 * `FanOut`, as single puts do), pass after pass until none is left.
 *
 * Bounds: memory holds one chunk (`chunkSize` keys, their targets, at most
 * k + 4 spares each); at most `concurrency` peers are written to and
 * `lookupConcurrency` lookups run at once; nothing is kept per key once its
 * chunk is done.
 */
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { FanOut } from '../core/publish/fan-out.ts'
import { RegionCache, regionsSpanned, sliceCount, sliceStarts, sortByKey } from '../core/publish/region.ts'
import { MessageType } from '../generated/dht.ts'
import { RequestFailedError } from './errors.ts'
import { addProviderEncoder, kadKey, putValueMessage, toContact, toPbPeer } from './peer-info.ts'
import { Slots } from './slots.ts'
import type { Driver } from './driver.ts'
import type { Messenger } from './messenger.ts'
import type { Accounting, Purpose } from './metrics.ts'
import type { PeerContact } from './peer-info.ts'
import type { Key } from '../core/key.ts'
import type { ProviderStore } from '../records/provider-store.ts'
import type { AbortOptions, Logger, PeerId, PeerInfo } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface BulkProvideOptions extends AbortOptions {
  /** Peers written to at once (default 16) */
  concurrency?: number
  /**
   * Region lookups run at once (default 8): a chunk whose keys span several
   * regions is cut into up to this many contiguous slices of the keyspace
   * (one per two regions), each walked with its own region, so a large
   * network's many regions are not looked up one after another. A chunk of
   * one or two regions is walked in one slice. Costs at most one lookup
   * more per slice.
   */
  lookupConcurrency?: number
  /** Called after each chunk and at the end */
  onBulkProgress?(progress: BulkProgress): void
  /** Called once per key (multihash bytes) that at least one peer took, when its chunk is done */
  onDelivered?(key: Uint8Array): void
  /**
   * Who the lookups and deliveries are billed to in the usage table.
   *
   * @default 'provide' (provideMany) or 'put' (putMany)
   */
  purpose?: Purpose
}

export interface BulkProgress {
  /** CIDs asked for (after removing duplicates) */
  keys: number
  /** CIDs whose deliveries have all been tried */
  keysDone: number
  /** CIDs at least one peer took */
  provided: number
  /** lookups run */
  lookups: number
  /** ADD_PROVIDER messages written */
  messages: number
  /** distinct peers that took at least one record */
  peersReached: number
  /** deliveries that failed (each failed key-peer pair) */
  failures: number
}

export class BulkAbortedError extends Error {
  name = 'AbortError'
  code = 'ABORT_ERR'
  /** what was done before the abort */
  readonly progress: BulkProgress

  constructor (progress: BulkProgress) {
    super(`bulk provide aborted after ${progress.keysDone} of ${progress.keys} keys (${progress.provided} provided)`)
    this.progress = progress
  }
}

export interface BulkInit {
  driver: Driver
  messenger: Messenger
  providers: ProviderStore
  log: Logger
  k: number
  self: PeerId
  selfInfo(): PeerInfo
  /**
   * Keys handled per chunk.
   *
   * @default 1024
   */
  chunkSize?: number
  /** Counts keys requested, done and provided (metrics) */
  accounting?: Pick<Accounting, 'bulk'>
}

interface Item {
  key: Key
  /** the key as it goes on the wire (a multihash, or a record key) */
  mh: Uint8Array
  /** for value records: the value, sent with PUT_VALUE and echoed back */
  value?: Uint8Array
  /** the k closest known peers first, then farther ones for when a target fails */
  plan: FanOut<PeerContact>
  ok: number
}

const SPARES = 4

/**
 * ADD_PROVIDER messages written to a peer before waiting for it to answer
 * the request behind them, at first: about 48 KB, well inside a yamux
 * stream's 256 KB window, and inside the burst of 600 requests our own
 * servers allow a peer they have no history with. Each answer waited for
 * costs a round trip, a FIND_NODE answer to decode and a yamux window
 * update: 1 000 CIDs into 40 of go-libp2p-kad-dht's servers (each peer's
 * share about 500 records) went from a median 2 338 to 2 982 keys/s with
 * 512 instead of 128 (five runs each, alternating).
 */
const ACK_FIRST = 512
/**
 * The most: about 100 KB. A peer whose answer came back within
 * `GROW_WITHIN` gets a batch twice as large next time, up to this; one
 * slower than `SHRINK_AFTER`, half as large, down to `ACK_FIRST`. Each
 * batch costs an answer (FIND_NODE: k peers to decode), the window updates
 * yamux sends for it, and a wait: on go-libp2p-kad-dht's servers, which
 * answer at once, 10 000 CIDs went from 3 206 to 4 857 keys/s with batches
 * of 1024 instead of 128, and the provider's CPU from 2.7 to 1.6 s.
 */
const ACK_MAX = 1024
const GROW_WITHIN = 250
const SHRINK_AFTER = 1000

export class BulkProvider {
  private readonly init: BulkInit
  private readonly chunkSize: number

  constructor (init: BulkInit) {
    this.init = init
    this.chunkSize = init.chunkSize ?? 1024
  }

  async provideMany (cids: Iterable<CID>, options: BulkProvideOptions = {}): Promise<BulkProgress> {
    const seen = new Set<string>()
    const all: Array<{ key: Key, mh: Uint8Array }> = []
    for (const cid of cids) {
      const id = cid.multihash.bytes.toString()
      if (!seen.has(id)) {
        seen.add(id)
        all.push({ key: kadKey(cid.multihash.bytes), mh: cid.multihash.bytes })
      }
    }
    const now = Date.now()
    return this.run(all, async keys => { await this.init.providers.addProviders(keys, this.init.self, now, options) }, { ...options, purpose: options.purpose ?? 'provide' })
  }

  /**
   * Many value records (e.g. IPNS records), each already validated and
   * stored locally by the caller: the same sweep, with PUT_VALUE requests
   * whose echo confirms each record was stored.
   */
  async putMany (records: Array<{ key: Uint8Array, value: Uint8Array }>, options: BulkProvideOptions = {}): Promise<BulkProgress> {
    const byKey = new Map<string, { key: Key, mh: Uint8Array, value: Uint8Array }>()
    for (const r of records) {
      byKey.set(r.key.toString(), { key: kadKey(r.key), mh: r.key, value: r.value })
    }
    return this.run([...byKey.values()], async () => {}, { ...options, purpose: options.purpose ?? 'put' })
  }

  /** `storeLocally`: keeps a chunk's keys (multihash bytes) in our own store, one call per chunk */
  private async run (all: Array<{ key: Key, mh: Uint8Array, value?: Uint8Array }>, storeLocally: (keys: Uint8Array[]) => Promise<void>, options: BulkProvideOptions): Promise<BulkProgress> {
    sortByKey(all)
    const progress: BulkProgress = { keys: all.length, keysDone: 0, provided: 0, lookups: 0, messages: 0, peersReached: 0, failures: 0 }
    // peers that took records, each with the batch size it gets next (see ACK_MAX)
    const reached = new Map<string, number>()
    const concurrency = options.concurrency ?? 16
    const lookupConcurrency = options.lookupConcurrency ?? 8
    if (!Number.isInteger(lookupConcurrency) || lookupConcurrency < 1) {
      throw new RangeError(`lookupConcurrency must be a positive integer, got ${lookupConcurrency}`)
    }
    // the last region walked carries over to the next chunk, which starts where it ended
    let region = new RegionCache<PeerContact>(this.init.k)
    this.init.accounting?.bulk(all.length, 0, 0)
    for (let start = 0; start < all.length; start += this.chunkSize) {
      if (aborted(options.signal)) {
        throw new BulkAbortedError({ ...progress, peersReached: reached.size })
      }
      const items = all.slice(start, start + this.chunkSize)
      // our own store takes the chunk while the lookups run (1 000 keys took 15 to 20 ms before the first
      // lookup could start); its refusal still stops the chunk before anything is sent
      const stored = storeLocally(items.map(item => item.mh))
      stored.catch(() => {})
      // peers written at once, across the deliveries of this chunk's regions
      const slots = new Slots(concurrency, Number.MAX_SAFE_INTEGER)
      const deliveries: Array<Promise<void>> = []
      // each region's records go out as soon as its keys are placed, while
      // the slice looks up the next region (a lookup mostly waits on the
      // network), and never before our own store took the chunk; a peer
      // among the last placed key's targets is held back, since the next
      // region's keys may go to it too and one batch costs less than two
      const send = (work: Work, hold: ReadonlySet<string>): void => {
        const ready: Work = new Map()
        for (const [id, w] of work) {
          if (!hold.has(id)) {
            ready.set(id, w)
            work.delete(id)
          }
        }
        if (ready.size > 0) {
          deliveries.push(stored.then(async () => { await this.deliver(ready, slots, progress, reached, options) }))
        }
      }
      const chunk: Item[] = []
      let walked: unknown
      try {
        // the first key's region tells how many regions the chunk spans, so how many slices are worth walking at once
        if (!region.covers(items[0].key)) {
          await this.lookup(items[0].key, items[0].mh, region, options)
          progress.lookups++
        }
        const keys = items.map(i => i.key)
        const starts = sliceStarts(keys, region.regionDepth, sliceCount(regionsSpanned(keys, region.regionDepth), lookupConcurrency))
        const current = region
        const regions = starts.map((_, i) => i === 0 ? current : new RegionCache<PeerContact>(this.init.k))
        const placed = await Promise.allSettled(regions.map(async (sliceRegion, i) => {
          const work: Work = new Map()
          let last = new Set<string>()
          for (const { key, mh, value } of items.slice(starts[i], starts[i + 1] ?? items.length)) {
            if (aborted(options.signal)) {
              break
            }
            if (!sliceRegion.covers(key)) {
              send(work, last)
              await this.lookup(key, mh, sliceRegion, options)
              progress.lookups++
            }
            const near = sliceRegion.closest(key, this.init.k + SPARES)
            const item = { key, mh, value, plan: new FanOut(near.slice(0, this.init.k), near.slice(this.init.k), 1), ok: 0 }
            chunk.push(item)
            last = new Set()
            for (const peer of item.plan.start()) {
              addWork(work, peer, item)
              last.add(peer.id)
            }
          }
          send(work, new Set())
        }))
        region = regions[regions.length - 1]
        walked = placed.find(p => p.status === 'rejected')
      } catch (err) {
        walked = { reason: err }
      }
      // nothing of ours is left running when the call ends, however it ends
      const sent = await Promise.allSettled(deliveries)
      await stored
      if (walked != null) {
        throw (walked as PromiseRejectedResult).reason
      }
      for (const result of sent) {
        if (result.status === 'rejected') {
          throw result.reason
        }
      }
      let provided = 0
      for (const item of chunk) {
        if (item.ok > 0) {
          provided++
          options.onDelivered?.(item.mh)
        }
      }
      progress.provided += provided
      this.init.accounting?.bulk(0, aborted(options.signal) ? 0 : chunk.length, provided)
      progress.peersReached = reached.size
      if (aborted(options.signal)) {
        // part of this chunk went out: `provided` counts it, `keysDone` does not
        throw new BulkAbortedError({ ...progress })
      }
      progress.keysDone += chunk.length
      options.onBulkProgress?.({ ...progress })
    }
    return progress
  }

  /** A FIND_NODE lookup for `key` (the Kademlia key of `mh`, which is what goes on the wire) */
  private async lookup (key: Key, mh: Uint8Array, region: RegionCache<PeerContact>, options: BulkProvideOptions): Promise<void> {
    const lookup = this.init.driver.lookup(key, { kind: 'find-node', key: mh }, { signal: options.signal, purpose: options.purpose })
    let step = await lookup.next()
    while (step.done !== true) {
      step = await lookup.next()
    }
    const asContact = (info: PeerInfo): PeerContact => toContact(info.id)
    region.learn(key, step.value.closest.map(asContact), step.value.spares.map(asContact))
  }

  /**
   * Writes each peer its records, each peer's write taking one of `slots`
   * (shared by the deliveries of a chunk's regions: `concurrency` peers at a
   * time in all); the keys a failed peer did not take go to each key's next
   * spare (`FanOut`), in further passes until none is left.
   */
  private async deliver (first: Work, slots: Slots, progress: BulkProgress, reached: Map<string, number>, options: BulkProvideOptions): Promise<void> {
    let work = first
    while (work.size > 0 && !aborted(options.signal)) {
      const retry: Work = new Map()
      await Promise.all([...work.values()].map(async w => {
        await slots.acquire()
        let failed: Set<Item>
        try {
          failed = new Set(await this.writeAll(w.peer, w.items, progress, reached, options))
        } finally {
          slots.release()
        }
        for (const item of w.items) {
          const next = item.plan.result(w.peer, !failed.has(item), !aborted(options.signal))
          if (next != null) {
            addWork(retry, next, item)
          }
        }
      }))
      work = retry
    }
  }

  /** PUT_VALUE, answered with an echo of the record */
  private async put (peer: PeerContact, item: Item & { value: Uint8Array }, options: BulkProvideOptions): Promise<void> {
    const response = await this.init.messenger.request(peer.peerId, putValueMessage(item.mh, item.value, Date.now()), { signal: options.signal, purpose: options.purpose })
    if (response.record?.value == null || !uint8ArrayEquals(response.record.value, item.value)) {
      throw new RequestFailedError('bad-response', peer.id, 'the peer did not echo the record')
    }
  }

  /**
   * Sends `peer` every item's record in turn; returns the items it did not
   * take. Provider records go `ACK_FIRST` to `ACK_MAX` ADD_PROVIDER messages at a time,
   * each batch followed by a FIND_NODE for our own key on the same stream
   * whose answer says the peer served the batch (see `Messenger.writeAcknowledged`): a record
   * counts as delivered only then, and the next batch waits for it, so the
   * writer keeps to the pace the peer serves at (its inbound limits
   * included) instead of filling the stream's window faster than the peer
   * reads it, timing out and losing what was written but not read.
   */
  private async writeAll (peer: PeerContact, items: Item[], progress: BulkProgress, reached: Map<string, number>, options: BulkProvideOptions): Promise<Item[]> {
    const self = this.init.selfInfo()
    const encode = addProviderEncoder(toPbPeer(self))
    // the batch's closing request: FIND_NODE for our own key, which every
    // implementation answers (rust-libp2p's libp2p-kad closes the stream on
    // PING, as driver.ts's probes found)
    const ack = { type: MessageType.FIND_NODE, key: self.id.toMultihash().bytes as Uint8Array<ArrayBuffer> }
    for (let i = 0; i < items.length;) {
      if (aborted(options.signal)) {
        return items.slice(i)
      }
      const value = items[i].value
      const size = reached.get(peer.id) ?? ACK_FIRST
      const batch = value != null ? [items[i]] : takeWhile(items, i, size, item => item.value == null)
      const sent = performance.now()
      try {
        if (value != null) {
          await this.put(peer, { ...items[i], value }, options)
        } else {
          await this.init.messenger.writeAcknowledged(peer.peerId, { type: MessageType.ADD_PROVIDER, ...encode(batch.map(item => item.mh)) }, ack, { signal: options.signal, purpose: options.purpose })
        }
      } catch (err) {
        // the peer failed: everything it has not acknowledged goes elsewhere
        this.init.log('bulk provide to %p failed - %e', peer.peerId, err)
        progress.failures += items.length - i
        return items.slice(i)
      }
      for (const item of batch) {
        item.ok++
      }
      progress.messages += batch.length
      reached.set(peer.id, value != null ? size : nextBatchSize(size, performance.now() - sent))
      i += batch.length
    }
    return []
  }
}

/** Records to write, by peer */
type Work = Map<string, { peer: PeerContact, items: Item[] }>

function addWork (work: Work, peer: PeerContact, item: Item): void {
  const w = work.get(peer.id) ?? { peer, items: [] }
  w.items.push(item)
  work.set(peer.id, w)
}

/** The batch after one of `size` records whose answer took `tookMs` (see ACK_MAX) */
function nextBatchSize (size: number, tookMs: number): number {
  if (tookMs <= GROW_WITHIN) {
    return Math.min(ACK_MAX, size * 2)
  }
  return tookMs > SHRINK_AFTER ? Math.max(ACK_FIRST, size / 2) : size
}

/** Up to `max` items from `start` on while `ok` holds (at least the first) */
function takeWhile<T> (items: T[], start: number, max: number, ok: (item: T) => boolean): T[] {
  let end = start + 1
  while (end < items.length && end - start < max && ok(items[end])) {
    end++
  }
  return items.slice(start, end)
}

function aborted (signal?: AbortSignal): boolean {
  return signal?.aborted === true
}
