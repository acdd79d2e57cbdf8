/**
 * Value records (PUT_VALUE / GET_VALUE) kept in an `interface-datastore`.
 *
 * Layout: `<prefix>/<base32 key>` -> the libp2p `Record` protobuf (`key`,
 * `value`, `timeReceived` as RFC 3339), the same bytes the wire carries.
 *
 * Rules:
 * - `put` validates first ({@link InvalidRecordError} on failure), so an
 * invalid record never touches the store. If a valid, unexpired record is
 * stored, the namespace's selector picks between `[new, stored]`; only index
 * 0 replaces, so a worse record never replaces a better one and a tie (for
 * the built-in selectors) keeps the newer arrival. Identical bytes refresh
 * the received time. A stored record that has expired or no longer validates
 * is simply overwritten.
 * - `get` returns `undefined` for a record that has expired
 * (`now >= received + recordValidity`) or no longer validates (an IPNS
 * record past its EOL, a validator that changed), and deletes it.
 *
 * Bounds and what happens at them:
 * - `maxRecords` distinct keys: `put` of a new key throws
 * {@link ValueStoreFullError}; held keys can still be replaced by better
 * records. Expired records count until `get` or `removeExpired` deletes them.
 * - `maxRecordSize` (10 KiB, the IPNS limit) and `maxKeySize` (1 KiB) bytes.
 *
 * Implementation notes:
 * - The key count lives in memory; after a restart it is rebuilt on first
 * write by one keys-only scan of `<prefix>/` (O(records) datastore reads).
 * - `removeExpired` checks only the received time, never the validators (an
 * IPNS signature check per record would make a sweep CPU-bound); records
 * that fail validation are caught by `get` and `put`.
 * - Writes run one at a time (see {@link Serial}); `get` validates without
 * waiting and deletes under the lock, only if the bytes are still the same.
 */
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { Record } from '../generated/dht.ts'
import { checkPrefix, checkTime, getOrUndefined } from './datastore-utils.ts'
import { parseRFC3339, toRFC3339 } from './rfc3339.ts'
import { Serial } from './serial.ts'
import { DEFAULT_MAX_RECORD_SIZE, InvalidRecordError, mergeSelectors, mergeValidators, selectBest, validateRecord } from './validation.ts'
import type { RemoveExpiredOptions } from './provider-store.ts'
import type { Selectors, Validators } from './validation.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export interface ValueStoreInit {
  /**
   * A stored value expires this long after it was received.
   *
   * @default 172800000 (48 hours; range 1..31536000000)
   */
  recordValidity?: number
  /**
   * Most distinct keys; at the bound a new key is refused with
   * {@link ValueStoreFullError}, held keys can still be replaced.
   *
   * @default 10000 (range 1..1000000000)
   */
  maxRecords?: number
  /**
   * Largest value accepted, in bytes.
   *
   * @default 10240 (10 KiB, the IPNS record limit; range 1..4194304)
   */
  maxRecordSize?: number
  /**
   * Longest key accepted, in bytes.
   *
   * @default 1024 (range 1..65536)
   */
  maxKeySize?: number
  /** Merged over the built-ins (`pk`, `ipns`); keyed by namespace without slashes */
  validators?: Validators
  /** Merged over the built-ins (`pk`, `ipns`); keyed by namespace without slashes */
  selectors?: Selectors
  /**
   * Datastore prefix of all value records.
   *
   * @default '/dht/record'
   */
  prefix?: string
}

export interface ValueStoreConfig {
  recordValidity: number
  maxRecords: number
  maxRecordSize: number
  maxKeySize: number
  prefix: string
}

export function defaultValueStoreConfig (): ValueStoreConfig {
  return {
    recordValidity: 48 * 60 * 60_000,
    maxRecords: 10_000,
    maxRecordSize: DEFAULT_MAX_RECORD_SIZE,
    maxKeySize: 1024,
    prefix: '/dht/record'
  }
}

export function validateValueStoreConfig (init: ValueStoreInit = {}): ValueStoreConfig {
  const { validators, selectors, ...rest } = init
  const c = { ...defaultValueStoreConfig(), ...stripUndefined(rest) }
  checkRange('records.recordValidity', c.recordValidity, 1, 365 * 86_400_000)
  checkRange('records.maxRecords', c.maxRecords, 1, 1_000_000_000)
  checkRange('records.maxRecordSize', c.maxRecordSize, 1, 4 * 1024 * 1024)
  checkRange('records.maxKeySize', c.maxKeySize, 1, 65_536)
  checkPrefix('records.prefix', c.prefix)
  return c
}

export class ValueStoreFullError extends Error {
  name = 'ValueStoreFullError'
  code = 'ERR_VALUE_STORE_FULL'
}

export interface StoredValue {
  value: Uint8Array
  /** When it was received, milliseconds on the caller's clock */
  received: number
}

export class ValueStore {
  readonly config: ValueStoreConfig
  private readonly datastore: Datastore
  private readonly validators: Validators
  private readonly selectors: Selectors
  private readonly serial = new Serial()
  private count?: number

  constructor (datastore: Datastore, init: ValueStoreInit = {}) {
    this.datastore = datastore
    this.config = validateValueStoreConfig(init)
    this.validators = mergeValidators(init.validators)
    this.selectors = mergeSelectors(init.selectors)
  }

  /** Throws {@link InvalidRecordError} unless `value` may be stored under `key` */
  async validate (key: Uint8Array, value: Uint8Array, options: AbortOptions = {}): Promise<void> {
    await validateRecord(this.validators, key, value, { signal: options.signal, maxRecordSize: this.config.maxRecordSize })
  }

  /** The index of the best of `values` for `key` (see {@link selectBest}) */
  async best (key: Uint8Array, values: Uint8Array[]): Promise<number> {
    return selectBest(this.selectors, key, values)
  }

  /**
   * Stores `value` under `key`, received at `now`, unless a better valid
   * record is held ('kept-existing'). Throws {@link InvalidRecordError} for an
   * invalid record and {@link ValueStoreFullError} for a new key at
   * `maxRecords`. `validated: true` says the caller has just run
   * {@link validate} on this value (a get keeping the best record it
   * checked), so it is not checked twice.
   */
  async put (key: Uint8Array, value: Uint8Array, now: number, options: AbortOptions & { validated?: boolean } = {}): Promise<'stored' | 'kept-existing'> {
    const dsKey = this.dsKey(key)
    checkTime(now)
    if (options.validated !== true) {
      await this.validate(key, value, options)
    }
    const bytes = Record.encode({ key: new Uint8Array(key), value: new Uint8Array(value), timeReceived: toRFC3339(now) })
    return this.serial.run(async () => {
      const count = await this.load(options)
      const stored = await getOrUndefined(this.datastore, dsKey, options)
      if (stored == null) {
        if (count >= this.config.maxRecords) {
          throw new ValueStoreFullError(`value store holds the maximum of ${this.config.maxRecords} records`)
        }
      } else if (!this.holds(stored, value)) {
        // the same value again only gets a new received time: no need to judge what is held
        const existing = await this.judge(stored, key, now, options)
        if (existing != null && await this.best(key, [value, existing.value]) !== 0) {
          return 'kept-existing'
        }
      }
      await this.datastore.put(dsKey, bytes, options)
      if (stored == null) {
        this.count = count + 1
      }
      return 'stored'
    }, options)
  }

  /**
   * The record under `key` if it is unexpired at `now` and still valid; else
   * deletes it. With `verify: false` the validator is not run again (the
   * record was validated when stored): what a server does before answering
   * GET_VALUE, as go-libp2p-kad-dht's does, since the requester validates
   * whatever it is sent; a record past `recordValidity` is still dropped.
   */
  async get (key: Uint8Array, now: number, options: AbortOptions & { verify?: boolean } = {}): Promise<StoredValue | undefined> {
    const dsKey = this.dsKey(key)
    const stored = await getOrUndefined(this.datastore, dsKey, options)
    if (stored == null) {
      return undefined
    }
    const result = await this.judge(stored, key, now, options, options.verify !== false)
    if (result == null) {
      await this.serial.run(async () => {
        const current = await getOrUndefined(this.datastore, dsKey, options)
        if (current != null && uint8ArrayEquals(current, stored)) {
          const count = await this.load(options)
          await this.datastore.delete(dsKey, options)
          this.count = count - 1
        }
      }, options)
    }
    return result
  }

  /** Deletes records expired at `now` (by received time only), at most `limit`; returns how many */
  async removeExpired (now: number, options: RemoveExpiredOptions = {}): Promise<number> {
    const limit = options.limit ?? 10_000
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`limit must be a non-negative integer, got ${limit}`)
    }
    return this.serial.run(async () => {
      const count = await this.load(options)
      const expired: Key[] = []
      if (limit > 0) {
        for await (const { key, value } of this.datastore.query({ prefix: `${this.config.prefix}/` }, options)) {
          if (!this.isOurs(key)) {
            continue
          }
          const received = this.receivedAt(value)
          if (received == null || now >= received + this.config.recordValidity) {
            expired.push(key)
            if (expired.length >= limit) {
              break
            }
          }
        }
      }
      const batch = this.datastore.batch()
      for (const key of expired) {
        batch.delete(key)
      }
      await batch.commit(options)
      this.count = count - expired.length
      return expired.length
    }, options)
  }

  /**
   * Every record unexpired at `now` (by received time; not validated, so
   * callers validate what they send on), at most `limit`
   */
  async * entries (now: number, options: AbortOptions & { limit?: number } = {}): AsyncGenerator<{ key: Uint8Array, value: Uint8Array, received: number }> {
    let n = 0
    const limit = options.limit ?? this.config.maxRecords
    for await (const { key, value } of this.datastore.query({ prefix: `${this.config.prefix}/` }, options)) {
      if (n >= limit) {
        return
      }
      if (!this.isOurs(key)) {
        continue
      }
      let record: Record
      try {
        record = Record.decode(value)
      } catch {
        continue
      }
      const received = parseRFC3339(record.timeReceived ?? '')
      if (record.key == null || record.value == null || received == null || now >= received + this.config.recordValidity) {
        continue
      }
      n++
      yield { key: record.key, value: record.value, received }
    }
  }

  /** Records held, expired ones included until removed */
  async size (options: AbortOptions = {}): Promise<number> {
    return this.serial.run(async () => this.load(options), options)
  }

  private dsKey (key: Uint8Array): Key {
    if (!(key instanceof Uint8Array) || key.byteLength === 0 || key.byteLength > this.config.maxKeySize) {
      throw new InvalidRecordError(key?.byteLength > 0 ? 'ERR_RECORD_TOO_LARGE' : 'ERR_MISSING_NAMESPACE',
        `record key must be 1..${this.config.maxKeySize} bytes, got ${String(key?.byteLength)}`)
    }
    return new Key(`${this.config.prefix}/${base32.encode(key)}`)
  }

  /** A direct child of the prefix (anything deeper is not one of our records) */
  private isOurs (key: Key): boolean {
    return key.toString().lastIndexOf('/') === this.config.prefix.length
  }

  private receivedAt (bytes: Uint8Array): number | undefined {
    try {
      return parseRFC3339(Record.decode(bytes).timeReceived ?? '')
    } catch {
      return undefined
    }
  }

  /** Whether the stored record `bytes` holds exactly `value` */
  private holds (bytes: Uint8Array, value: Uint8Array): boolean {
    try {
      const held = Record.decode(bytes).value
      return held != null && uint8ArrayEquals(held, value)
    } catch {
      return false
    }
  }

  /** The stored record if it is for `key`, unexpired and valid (unless `verify` is false); undefined if not */
  private async judge (bytes: Uint8Array, key: Uint8Array, now: number, options: AbortOptions, verify = true): Promise<StoredValue | undefined> {
    let record: Record
    try {
      record = Record.decode(bytes)
    } catch {
      return undefined
    }
    const received = parseRFC3339(record.timeReceived ?? '')
    if (record.key == null || !uint8ArrayEquals(record.key, key) || record.value == null ||
      received == null || now >= received + this.config.recordValidity) {
      return undefined
    }
    try {
      if (verify) {
        await this.validate(key, record.value, options)
      }
    } catch (err) {
      if (err instanceof InvalidRecordError) {
        return undefined
      }
      throw err
    }
    return { value: record.value, received }
  }

  /** The record count, rebuilt from the datastore on first use (O(records) keys-only scan) */
  private async load (options: AbortOptions): Promise<number> {
    if (this.count == null) {
      let count = 0
      for await (const key of this.datastore.queryKeys({ prefix: `${this.config.prefix}/` }, options)) {
        if (this.isOurs(key)) {
          count++
        }
      }
      this.count = count
    }
    return this.count
  }
}
