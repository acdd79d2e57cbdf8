/**
 * Keeps our own provider records alive: every CID we provide is remembered in
 * the datastore and re-provided on the pure {@link RepublishSchedule} (22 h
 * by default, before the 48 h expiry); expired records of others are swept
 * from the stores every `sweepInterval`.
 *
 * Bounds: republishes run `concurrency` at a time from one timer; the
 * schedule holds at most its `maxEntries` keys; each sweep deletes at most
 * `sweepLimit` records.
 */
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import * as Digest from 'multiformats/hashes/digest'
import { RepublishSchedule } from '../core/maintenance/schedule.ts'
import type { Accounting } from './metrics.ts'
import type { SeededRandom } from '../core/env.ts'
import type { RepublishScheduleConfig } from '../core/maintenance/schedule.ts'
import type { ProviderStore } from '../records/provider-store.ts'
import type { ValueStore } from '../records/value-store.ts'
import type { Logger } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

const PREFIX = '/dht/provided'
/** Unreadable entries deleted per start at most (the rest on the next) */
const MAX_DROPPED = 10_000

export interface RepublisherInit {
  schedule?: Partial<RepublishScheduleConfig>
  /**
   * Re-provides running at once
   *
   * @default 8
   */
  concurrency?: number
  /**
   * How often expired records are swept, in ms (one hour)
   *
   * @default 3600000
   */
  sweepInterval?: number
  /**
   * Records deleted per sweep at most
   *
   * @default 10000
   */
  sweepLimit?: number
  /**
   * When a republish sweep runs, it also takes the keys due within this many
   * ms (one hour), so keys published around the same time go out together
   *
   * @default 3600000
   */
  sweepWindow?: number
}

export interface RepublisherDeps {
  datastore: Datastore
  providers: ProviderStore
  values: ValueStore
  random: SeededRandom
  log: Logger
  /** Re-announces one of our CIDs (by its multihash bytes) */
  reprovide(key: Uint8Array): Promise<void>
  /**
   * Re-announces many at once (a keyspace sweep, not a lookup per key);
   * resolves to the keys at least one peer took. When given, due keys go
   * through it in one batch.
   */
  reprovideMany?(keys: Uint8Array[]): Promise<Uint8Array[]>
  /** The clock and timers (tests pass a fake); the system's by default */
  timers?: Timers
  /** Counts keys re-announced and keys that could not be (metrics) */
  accounting?: Pick<Accounting, 'republished'>
}

/** What the republisher needs of time: a clock and one-shot and repeating timers */
export interface Timers {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  setInterval(fn: () => void, ms: number): unknown
  clearInterval(handle: unknown): void
}

const SYSTEM_TIMERS: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return t
  },
  clearTimeout: handle => { clearTimeout(handle as ReturnType<typeof setTimeout>) },
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms)
    t.unref?.()
    return t
  },
  clearInterval: handle => { clearInterval(handle as ReturnType<typeof setInterval>) }
}

export class Republisher {
  private readonly deps: RepublisherDeps
  private readonly schedule: RepublishSchedule
  private readonly concurrency: number
  private readonly sweepInterval: number
  private readonly sweepLimit: number
  private readonly sweepWindow: number
  private readonly timers: Timers
  private timer?: unknown
  private sweepTimer?: unknown
  private running = false
  private busy?: Promise<void>

  constructor (deps: RepublisherDeps, init: RepublisherInit = {}) {
    this.deps = deps
    this.timers = deps.timers ?? SYSTEM_TIMERS
    this.schedule = new RepublishSchedule(init.schedule ?? {}, deps.random)
    this.concurrency = init.concurrency ?? 8
    this.sweepInterval = init.sweepInterval ?? 3_600_000
    this.sweepLimit = init.sweepLimit ?? 10_000
    this.sweepWindow = init.sweepWindow ?? 3_600_000
  }

  /** Keys we currently republish */
  get size (): number {
    return this.schedule.size
  }

  async start (): Promise<void> {
    this.running = true
    const now = this.timers.now()
    // an entry that does not decode (a foreign or damaged write) is dropped with
    // a log: read as it is, it would stop the start or fail every sweep it is in
    const corrupt: Key[] = []
    for await (const { key, value } of this.deps.datastore.query({ prefix: `${PREFIX}/` })) {
      const name = key.baseNamespace()
      const providedAt = decodeProvidedAt(value)
      if (providedAt == null || key.toString() !== `${PREFIX}/${name}` || !isMultihash(name)) {
        if (corrupt.length < MAX_DROPPED) {
          corrupt.push(key)
        }
        continue
      }
      if (!this.schedule.has(name) && this.schedule.size >= this.schedule.config.maxEntries) {
        this.deps.log.error('more provided keys saved than the republish schedule holds (%d): the rest are not republished', this.schedule.config.maxEntries)
        break
      }
      // a key provided long ago is due at once; otherwise its first republish follows the interval
      this.schedule.add(name, Math.min(now, providedAt))
    }
    if (corrupt.length > 0) {
      this.deps.log.error('dropping %d unreadable entries under %s, e.g. %s', corrupt.length, PREFIX, corrupt[0].toString())
      const batch = this.deps.datastore.batch()
      for (const key of corrupt) {
        batch.delete(key)
      }
      await batch.commit()
    }
    this.sweepTimer = this.timers.setInterval(() => { void this.sweep() }, this.sweepInterval)
    this.arm()
  }

  async stop (): Promise<void> {
    this.running = false
    this.timers.clearTimeout(this.timer)
    this.timers.clearInterval(this.sweepTimer)
    await this.busy
  }

  /** Remember that we provide `key` (multihash bytes) */
  async add (key: Uint8Array): Promise<void> {
    await this.addMany([key])
  }

  /** Republishes every key of `keys` from now on: one datastore batch, one timer */
  async addMany (keys: Iterable<Uint8Array>): Promise<void> {
    const names = [...keys].map(key => base32.encode(key))
    if (names.length === 0) {
      return
    }
    // as one add per key would: the keys before a new one beyond `maxEntries`
    // are remembered and scheduled, then that one throws ScheduleFullError
    let room = this.schedule.config.maxEntries - this.schedule.size
    let fit = 0
    const fresh = new Set<string>()
    for (; fit < names.length; fit++) {
      const name = names[fit]
      if (!this.schedule.has(name) && !fresh.has(name)) {
        if (room === 0) {
          break
        }
        fresh.add(name)
        room--
      }
    }
    const now = this.timers.now()
    await this.remember(names.slice(0, fit), now)
    for (const name of names.slice(0, fit)) {
      this.schedule.add(name, now)
    }
    this.arm()
    if (fit < names.length) {
      // throws ScheduleFullError for the first key without room
      this.schedule.add(names[fit], now)
    }
  }

  /** Persists when each of `names` was last announced (one batch), so a restart resumes its schedule */
  private async remember (names: readonly string[], at: number): Promise<void> {
    const value = new Uint8Array(8)
    new DataView(value.buffer).setFloat64(0, at)
    const batch = this.deps.datastore.batch()
    for (const name of names) {
      batch.put(new Key(`${PREFIX}/${name}`), value)
    }
    await batch.commit()
  }

  /** The keys (multihash bytes) we provide and republish, as remembered in the datastore */
  async * provided (options: { signal?: AbortSignal } = {}): AsyncGenerator<Uint8Array> {
    for await (const key of this.deps.datastore.queryKeys({ prefix: `${PREFIX}/` }, options)) {
      const name = key.baseNamespace()
      if (this.schedule.has(name)) {
        yield base32.decode(name)
      }
    }
  }

  /** Stop republishing `key` */
  async remove (key: Uint8Array): Promise<void> {
    const name = base32.encode(key)
    this.schedule.remove(name)
    await this.deps.datastore.delete(new Key(`${PREFIX}/${name}`))
  }

  private arm (): void {
    if (!this.running) {
      return
    }
    const deadline = this.schedule.nextDeadline()
    this.timers.clearTimeout(this.timer)
    if (deadline == null) {
      return
    }
    const delay = Math.min(Math.max(0, deadline - this.timers.now()), 2 ** 31 - 1)
    this.timer = this.timers.setTimeout(() => { this.busy = this.run() }, delay)
  }

  private async run (): Promise<void> {
    // a sweep also takes the keys due within the next `sweepWindow`: a little
    // early is harmless (records live 48 h), and it keeps keys together
    const horizon = this.timers.now() + (this.deps.reprovideMany != null ? this.sweepWindow : 0)
    const due = this.schedule.due(horizon, this.deps.reprovideMany != null ? 10_000 : 1_000)
    if (this.deps.reprovideMany != null && due.length > 0) {
      try {
        const done = await this.deps.reprovideMany(due.map(name => base32.decode(name)))
        this.deps.accounting?.republished(done.length, due.length - done.length)
        await this.remember(done.map(key => base32.encode(key)).filter(name => this.schedule.has(name)), this.timers.now())
      } catch (err) {
        this.deps.log('republish sweep of %d keys failed - %e', due.length, err)
        this.deps.accounting?.republished(0, due.length)
      }
      this.arm()
      return
    }
    for (let i = 0; i < due.length && this.running; i += this.concurrency) {
      await Promise.all(due.slice(i, i + this.concurrency).map(async name => {
        try {
          await this.deps.reprovide(base32.decode(name))
          this.deps.accounting?.republished(1, 0)
          if (this.schedule.has(name)) {
            await this.remember([name], this.timers.now())
          }
        } catch (err) {
          this.deps.log('republish of %s failed - %e', name, err)
          this.deps.accounting?.republished(0, 1)
        }
      }))
    }
    this.arm()
  }

  private async sweep (): Promise<void> {
    const now = this.timers.now()
    try {
      await this.deps.providers.removeExpired(now, { limit: this.sweepLimit })
      await this.deps.values.removeExpired(now, { limit: this.sweepLimit })
    } catch (err) {
      this.deps.log('sweep failed - %e', err)
    }
  }
}

/** The time saved by {@link Republisher.remember}: 8 bytes, a finite float64; undefined for anything else */
function decodeProvidedAt (value: Uint8Array): number | undefined {
  if (value.byteLength !== 8) {
    return undefined
  }
  const at = new DataView(value.buffer, value.byteOffset, 8).getFloat64(0)
  return Number.isFinite(at) ? at : undefined
}

/** Whether `name` is the base32 of a multihash, as `add` writes it */
function isMultihash (name: string): boolean {
  try {
    Digest.decode(base32.decode(name))
    return true
  } catch {
    return false
  }
}
