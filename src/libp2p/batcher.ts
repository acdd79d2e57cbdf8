/**
 * Transparent batching of single provides: `libp2p.contentRouting.provide`
 * calls that arrive within `window` ms of each other are announced together
 * through the bulk path (`provideMany`: one lookup per keyspace region
 * instead of one per key, one pooled exchange per peer). Each call still
 * resolves when its own record has reached at least one peer, and rejects
 * when none took it, as an unbatched provide does; it just starts up to
 * `window` ms later.
 *
 * - A batch is flushed `window` ms after its first key, or at once when it
 * holds `maxKeys`; one batch runs at a time, and keys arriving meanwhile
 * wait for the next (a call for a key the running batch is sending waits
 * for that batch instead).
 * - Bounds: at most `maxPending` distinct keys wait; a call beyond that is
 * not queued but provided on its own (nothing is refused or lost).
 * - A caller's abort signal rejects that call with its reason; a key nobody
 * waits for any more is dropped from the waiting batch. Keys already in a
 * running batch are announced anyway (others may wait for them).
 * - `stop()` rejects every waiting call with `ServiceStoppedError`.
 */
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import { PutFailedError, ServiceStoppedError } from './errors.ts'
import type { BulkProgress } from './bulk.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface ProvideBatchingInit {
  /**
   * Milliseconds a batch waits for more keys after its first.
   *
   * @default 50
   */
  window?: number
  /**
   * Keys that flush a batch at once.
   *
   * @default 1024
   */
  maxKeys?: number
  /**
   * Distinct keys that may wait; further calls are provided on their own.
   *
   * @default 10000
   */
  maxPending?: number
}

export interface ProvideBatcherInit extends ProvideBatchingInit {
  /** Announces many CIDs; calls `onDelivered` with each multihash at least one peer took */
  provideMany(cids: CID[], onDelivered: (multihash: Uint8Array) => void): Promise<BulkProgress>
  /** Announces one CID on its own */
  provideOne(cid: CID, options: AbortOptions): Promise<void>
}

interface Waiter {
  resolve(): void
  reject(err: unknown): void
}

interface Entry {
  cid: CID
  waiters: Set<Waiter>
}

export interface ProvideBatchStats {
  /** Batches run */
  batches: number
  /** Keys announced in batches */
  keys: number
  /** Lookups the batches needed */
  lookups: number
  /** Calls provided on their own because the queue was full */
  overflow: number
}

export class ProvideBatcher {
  readonly stats: ProvideBatchStats = { batches: 0, keys: 0, lookups: 0, overflow: 0 }
  private readonly init: ProvideBatcherInit
  private readonly window: number
  private readonly maxKeys: number
  private readonly maxPending: number
  private pending = new Map<string, Entry>()
  /** the running batch's keys not delivered yet: a call for one of them waits for that batch */
  private inFlight = new Map<string, Entry>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private running: Promise<void> | undefined
  private stopped = false

  constructor (init: ProvideBatcherInit) {
    this.init = init
    this.window = init.window ?? 50
    this.maxKeys = init.maxKeys ?? 1024
    this.maxPending = init.maxPending ?? 10_000
    for (const [name, value, min] of [['window', this.window, 0], ['maxKeys', this.maxKeys, 1], ['maxPending', this.maxPending, 1]] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new RangeError(`provideBatching.${name} must be an integer >= ${min}, got ${String(value)}`)
      }
    }
  }

  /** Keys waiting for a batch */
  get waiting (): number {
    return this.pending.size
  }

  async provide (cid: CID, options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    if (this.stopped) {
      throw new ServiceStoppedError('the DHT service is stopped')
    }
    const id = uint8ArrayToString(cid.multihash.bytes, 'base64')
    let entry = this.inFlight.get(id) ?? this.pending.get(id)
    if (entry == null) {
      if (this.pending.size >= this.maxPending) {
        this.stats.overflow++
        return this.init.provideOne(cid, options)
      }
      entry = { cid, waiters: new Set() }
      this.pending.set(id, entry)
    }
    const e = entry
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        e.waiters.delete(waiter)
        if (e.waiters.size === 0 && this.pending.get(id) === e) {
          this.pending.delete(id)
        }
        reject(options.signal?.reason)
      }
      const waiter: Waiter = {
        resolve: () => { options.signal?.removeEventListener('abort', onAbort); resolve() },
        reject: err => { options.signal?.removeEventListener('abort', onAbort); reject(err) }
      }
      e.waiters.add(waiter)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.schedule()
    })
  }

  /** Takes calls again (after `stop`) */
  start (): void {
    this.stopped = false
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    const err = new ServiceStoppedError('the DHT service stopped before this provide was sent')
    for (const entry of this.pending.values()) {
      for (const w of entry.waiters) {
        w.reject(err)
      }
    }
    this.pending.clear()
  }

  private schedule (): void {
    if (this.running != null) {
      return
    }
    if (this.pending.size >= this.maxKeys) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.flush()
    } else if (this.timer == null) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.flush()
      }, this.window)
    }
  }

  private flush (): void {
    if (this.running != null || this.pending.size === 0 || this.stopped) {
      return
    }
    const batch = new Map<string, Entry>()
    for (const [id, entry] of this.pending) {
      if (batch.size >= this.maxKeys) {
        break
      }
      batch.set(id, entry)
    }
    for (const id of batch.keys()) {
      this.pending.delete(id)
    }
    this.inFlight = batch
    this.running = this.runBatch(batch).finally(() => {
      this.running = undefined
      this.inFlight = new Map()
      if (this.pending.size > 0) {
        this.schedule()
      }
    })
  }

  private async runBatch (batch: Map<string, Entry>): Promise<void> {
    this.stats.batches++
    this.stats.keys += batch.size
    try {
      const progress = await this.init.provideMany([...batch.values()].map(e => e.cid), multihash => {
        const entry = batch.get(uint8ArrayToString(multihash, 'base64'))
        batch.delete(uint8ArrayToString(multihash, 'base64'))
        entry?.waiters.forEach(w => { w.resolve() })
      })
      this.stats.lookups += progress.lookups
      const err = new PutFailedError('no peer took the provider record')
      for (const entry of batch.values()) {
        entry.waiters.forEach(w => { w.reject(err) })
      }
    } catch (err) {
      for (const entry of batch.values()) {
        entry.waiters.forEach(w => { w.reject(err) })
      }
    }
  }
}
