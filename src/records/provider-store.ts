/**
 * Provider records ("peer P can serve the content with multihash M") kept in
 * an `interface-datastore`, so a persistent datastore keeps them across
 * restarts.
 *
 * Layout: one datastore entry per (key, provider):
 * `<prefix>/<base32 multihash>/<peer id>` -> the time it was (re)added,
 * 8 bytes big-endian milliseconds. Base32 is multiformats' (`b` + RFC 4648,
 * lower case, unpadded), so keys never contain a slash.
 *
 * Bounds and what happens at them:
 * - `maxKeySize` (80 bytes, as go-libp2p-kad-dht's ADD_PROVIDER handler):
 * longer or empty keys are refused with {@link InvalidRecordError}.
 * - `maxProvidersPerKey`: adding a new provider to a full key evicts the one
 * added (or refreshed) longest ago.
 * - `maxKeys`: a new key is refused with {@link ProviderStoreFullError};
 * keys already held keep accepting new providers and refreshes. Expired
 * records count until `removeExpired` deletes them, so call it regularly.
 *
 * Implementation notes:
 * - A record added at `t` is returned while `now < t + provideValidity` and is
 * expired from `now = t + provideValidity` on.
 * - The per-key counts the bounds need live in memory (one map entry per
 * key). After a restart they are rebuilt on first use by one keys-only scan
 * of `<prefix>/`, O(records) datastore reads; later calls are O(1) apart
 * from the datastore operations themselves.
 * - `getProviders` reads one key's entries (at most `maxProvidersPerKey`);
 * `removeExpired` scans all records (there is no time index) but deletes at
 * most `limit` per call.
 * - Writes run one at a time (see {@link Serial}); reads do not wait for them.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { checkPrefix, checkTime, decodeTime, encodeTime } from './datastore-utils.ts'
import { Serial } from './serial.ts'
import { InvalidRecordError } from './validation.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export interface ProviderStoreInit {
  /**
   * A provider record expires this long after it was (re)added.
   *
   * @default 172800000 (48 hours; range 1..31536000000)
   */
  provideValidity?: number
  /**
   * Most providers kept per key; at the bound the provider added longest ago
   * is evicted.
   *
   * @default 64 (range 1..10000)
   */
  maxProvidersPerKey?: number
  /**
   * Most distinct keys; at the bound a new key is refused with
   * {@link ProviderStoreFullError} while existing keys keep accepting refreshes.
   *
   * @default 100000 (range 1..1000000000)
   */
  maxKeys?: number
  /**
   * Longest key (multihash bytes) accepted.
   *
   * @default 80 (go-libp2p-kad-dht's limit; range 1..4096)
   */
  maxKeySize?: number
  /**
   * Datastore prefix of all provider records.
   *
   * @default '/dht/providers'
   */
  prefix?: string
}

export type ProviderStoreConfig = Required<ProviderStoreInit>

export function defaultProviderStoreConfig (): ProviderStoreConfig {
  return {
    provideValidity: 48 * 60 * 60_000,
    maxProvidersPerKey: 64,
    maxKeys: 100_000,
    maxKeySize: 80,
    prefix: '/dht/providers'
  }
}

export function validateProviderStoreConfig (init: ProviderStoreInit = {}): ProviderStoreConfig {
  const c = { ...defaultProviderStoreConfig(), ...stripUndefined(init) }
  checkRange('providers.provideValidity', c.provideValidity, 1, 365 * 86_400_000)
  checkRange('providers.maxProvidersPerKey', c.maxProvidersPerKey, 1, 10_000)
  checkRange('providers.maxKeys', c.maxKeys, 1, 1_000_000_000)
  checkRange('providers.maxKeySize', c.maxKeySize, 1, 4096)
  checkPrefix('providers.prefix', c.prefix)
  return c
}

const CACHED_KEYS = 1024

export class ProviderStoreFullError extends Error {
  name = 'ProviderStoreFullError'
  code = 'ERR_PROVIDER_STORE_FULL'
}

export interface RemoveExpiredOptions extends AbortOptions {
  /**
   * Most records deleted by one call.
   *
   * @default 10000
   */
  limit?: number
}

interface ProviderEntry {
  key: Key
  peer: string
  addedAt: number | undefined
}

export class ProviderStore {
  readonly config: ProviderStoreConfig
  private readonly datastore: Datastore
  private readonly serial = new Serial()
  private counts?: Map<string, number>
  private records = 0
  /**
   * Recently read provider lists by key, so a hot key is not a datastore
   * prefix query each time; at most CACHED_KEYS, dropped whenever the key
   * changes (and all of them on a sweep).
   */
  private readonly cache = new Map<string, ProviderEntry[]>()

  constructor (datastore: Datastore, init: ProviderStoreInit = {}) {
    this.datastore = datastore
    this.config = validateProviderStoreConfig(init)
  }

  /**
   * Records that `provider` provides `key` (multihash bytes) as of `now`.
   * Throws {@link InvalidRecordError} for a bad key or peer id and
   * {@link ProviderStoreFullError} for a new key at `maxKeys`.
   */
  async addProvider (key: Uint8Array, provider: PeerId | string, now: number, options: AbortOptions = {}): Promise<void> {
    await this.addProviders([key], provider, now, options)
  }

  /**
   * Records that `provider` provides every key of `keys` as of `now`, in one
   * datastore batch (what a bulk provide stores for itself: one write, not
   * one per key). Every key is checked before anything is written; a new
   * key beyond `maxKeys` throws {@link ProviderStoreFullError} after the keys
   * before it were stored.
   */
  async addProviders (keys: Iterable<Uint8Array>, provider: PeerId | string, now: number, options: AbortOptions = {}): Promise<void> {
    const mhs = [...keys].map(key => this.encodeKey(key))
    const peer = canonicalPeerId(provider)
    checkTime(now)
    await this.serial.run(async () => {
      const counts = await this.load(options)
      const batch = this.datastore.batch()
      // one value for every record of the call (nothing writes into it)
      const time = encodeTime(now)
      // the counts change only once the batch is written
      const added = new Map<string, number>()
      let newKeys = 0
      let records = 0
      try {
        for (const mh of mhs) {
          this.cache.delete(mh)
          // already clean (a checked prefix, base32 and a peer id, none holding a slash): no normalising pass
          const dsKey = new Key(`${this.config.prefix}/${mh}/${peer}`, false)
          // a key nobody provides yet cannot hold this provider's record: no read for it (a bulk's new keys)
          if (added.has(mh) || ((counts.get(mh) ?? 0) > 0 && await this.datastore.has(dsKey, options))) {
            batch.put(dsKey, time)
            continue
          }
          let count = counts.get(mh) ?? 0
          if (count === 0) {
            if (counts.size + newKeys >= this.config.maxKeys) {
              throw new ProviderStoreFullError(`provider store holds the maximum of ${this.config.maxKeys} keys`)
            }
            newKeys++
          }
          if (count >= this.config.maxProvidersPerKey) {
            const entries = await this.entries(mh, options)
            entries.sort(oldestFirst)
            const evict = entries.slice(0, Math.max(0, entries.length - this.config.maxProvidersPerKey + 1))
            for (const e of evict) {
              batch.delete(e.key)
            }
            records += entries.length - evict.length - count
            count = entries.length - evict.length
          }
          batch.put(dsKey, time)
          added.set(mh, count + 1)
          records++
        }
      } finally {
        // what came before a full store is kept, as one call per key would have kept it
        if (mhs.length > 0) {
          await batch.commit(options)
          for (const [mh, count] of added) {
            counts.set(mh, count)
          }
          this.records += records
        }
      }
    }, options)
  }

  /** Providers of `key` not expired at `now`, most recently added first */
  async getProviders (key: Uint8Array, now: number, options: AbortOptions = {}): Promise<string[]> {
    const mh = this.encodeKey(key)
    let entries = this.cache.get(mh)
    if (entries == null) {
      entries = await this.serial.run(async () => {
        const counts = await this.load(options)
        const read = (counts.get(mh) ?? 0) === 0 ? [] : await this.entries(mh, options)
        if (this.cache.size >= CACHED_KEYS) {
          this.cache.delete(this.cache.keys().next().value as string)
        }
        this.cache.set(mh, read)
        return read
      }, options)
    }
    return entries
      .filter(e => e.addedAt != null && now < e.addedAt + this.config.provideValidity)
      .sort((a, b) => -oldestFirst(a, b))
      .map(e => e.peer)
  }

  /** Deletes records expired at `now`, at most `limit` of them; returns how many */
  async removeExpired (now: number, options: RemoveExpiredOptions = {}): Promise<number> {
    const limit = options.limit ?? 10_000
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`limit must be a non-negative integer, got ${limit}`)
    }
    return this.serial.run(async () => {
      const counts = await this.load(options)
      const expired: Array<{ key: Key, mh: string }> = []
      if (limit > 0) {
        for await (const { key, value } of this.datastore.query({ prefix: `${this.config.prefix}/` }, options)) {
          const parsed = this.parseKey(key)
          if (parsed == null) {
            continue
          }
          const addedAt = decodeTime(value)
          if (addedAt == null || now >= addedAt + this.config.provideValidity) {
            expired.push({ key, mh: parsed.mh })
            if (expired.length >= limit) {
              break
            }
          }
        }
      }
      const batch = this.datastore.batch()
      for (const { key } of expired) {
        batch.delete(key)
      }
      await batch.commit(options)
      this.cache.clear()
      for (const { mh } of expired) {
        const left = (counts.get(mh) ?? 1) - 1
        if (left > 0) {
          counts.set(mh, left)
        } else {
          counts.delete(mh)
        }
      }
      this.records -= expired.length
      return expired.length
    }, options)
  }

  /** Distinct keys and records held, expired ones included until removed */
  async size (options: AbortOptions = {}): Promise<{ keys: number, records: number }> {
    return this.serial.run(async () => {
      const counts = await this.load(options)
      return { keys: counts.size, records: this.records }
    }, options)
  }

  /**
   * New keys the store still has room for (`maxKeys` less the keys held),
   * as far as it knows: Infinity before it first read its datastore
   */
  get room (): number {
    return this.counts == null ? Infinity : Math.max(0, this.config.maxKeys - this.counts.size)
  }

  /** Throws {@link InvalidRecordError} for a key `addProvider` would refuse */
  checkKey (key: Uint8Array): void {
    if (!(key instanceof Uint8Array) || key.byteLength === 0 || key.byteLength > this.config.maxKeySize) {
      throw new InvalidRecordError(key?.byteLength > 0 ? 'ERR_RECORD_TOO_LARGE' : 'ERR_INVALID_RECORD',
        `provider key must be 1..${this.config.maxKeySize} bytes, got ${String(key?.byteLength)}`)
    }
  }

  private encodeKey (key: Uint8Array): string {
    this.checkKey(key)
    return base32.encode(key)
  }

  private parseKey (key: Key): { mh: string, peer: string } | undefined {
    const rest = key.toString().slice(this.config.prefix.length + 1)
    const parts = rest.split('/')
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      return undefined
    }
    return { mh: parts[0], peer: parts[1] }
  }

  private async entries (mh: string, options: AbortOptions): Promise<ProviderEntry[]> {
    const out: ProviderEntry[] = []
    for await (const { key, value } of this.datastore.query({ prefix: `${this.config.prefix}/${mh}/` }, options)) {
      const parsed = this.parseKey(key)
      if (parsed?.mh === mh) {
        out.push({ key, peer: parsed.peer, addedAt: decodeTime(value) })
      }
    }
    return out
  }

  /** The per-key counts, rebuilt from the datastore on first use (O(records) keys-only scan) */
  private async load (options: AbortOptions): Promise<Map<string, number>> {
    if (this.counts != null) {
      return this.counts
    }
    const counts = new Map<string, number>()
    let records = 0
    for await (const key of this.datastore.queryKeys({ prefix: `${this.config.prefix}/` }, options)) {
      const parsed = this.parseKey(key)
      if (parsed != null) {
        counts.set(parsed.mh, (counts.get(parsed.mh) ?? 0) + 1)
        records++
      }
    }
    this.counts = counts
    this.records = records
    return counts
  }
}

/** Unparseable times sort first (they are evicted first); ties by peer id, for determinism */
function oldestFirst (a: ProviderEntry, b: ProviderEntry): number {
  const ta = a.addedAt ?? -Infinity
  const tb = b.addedAt ?? -Infinity
  if (ta !== tb) {
    return ta < tb ? -1 : 1
  }
  if (a.peer === b.peer) {
    return 0
  }
  return a.peer < b.peer ? -1 : 1
}

function canonicalPeerId (provider: PeerId | string): string {
  if (typeof provider !== 'string') {
    return provider.toString()
  }
  try {
    return peerIdFromString(provider).toString()
  } catch (err) {
    throw new InvalidRecordError('ERR_INVALID_RECORD', `"${provider}" is not a peer id`, { cause: err })
  }
}
