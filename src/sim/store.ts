/**
 * A simulated node's record store: the provider records and values other
 * nodes put on it (ADD_PROVIDER, PUT_VALUE), answered to GET_PROVIDERS and
 * GET_VALUE.
 *
 * Keys are the first 12 bytes of the 32-byte key as a string (96 bits: no
 * collision among the records a run can hold). Values are stood for by
 * their sequence number: a put keeps the higher one, as IPNS selection
 * does.
 *
 * Expiry: every provider record and value carries the virtual time it was
 * stored or last refreshed here; `ttl` after that (48 h by default, the
 * provider record validity of the Go and JS DHTs) it is no longer served,
 * and it is deleted when next touched or when a full store needs room.
 * Every method takes the virtual time `now`.
 *
 * Bounds: at most `maxKeys` keys per node (a full store first drops its
 * expired records, then refuses new keys and keeps what it has, as
 * `src/records/` does) and `maxProvidersPerKey` providers per key (the
 * oldest is replaced).
 */
import type { Millis } from '../core/env.ts'
import type { Key } from '../core/key.ts'

export const STORE_KEY_BYTES = 12

/** Provider record and value validity of the Go and JS DHTs: 48 h */
export const DEFAULT_RECORD_TTL: Millis = 48 * 3_600_000

/** The store's name for a key */
export function storeKey (key: Key): string {
  let s = ''
  for (let i = 0; i < STORE_KEY_BYTES && i < key.length; i++) {
    s += String.fromCharCode(key[i])
  }
  return s
}

/** A full-length key from a store key (the bytes beyond STORE_KEY_BYTES zero) */
export function fullKey (k: string): Key {
  const key = new Uint8Array(32)
  for (let i = 0; i < k.length; i++) {
    key[i] = k.charCodeAt(i)
  }
  return key
}

interface Provider { node: number, storedAt: Millis }
interface Value { seq: number, storedAt: Millis }

export class RecordStore {
  private readonly providers = new Map<string, Provider[]>()
  private readonly values = new Map<string, Value>()
  private readonly maxKeys: number
  private readonly maxProvidersPerKey: number
  readonly ttl: Millis

  constructor (maxKeys = 100_000, maxProvidersPerKey = 20, ttl: Millis = DEFAULT_RECORD_TTL) {
    this.maxKeys = maxKeys
    this.maxProvidersPerKey = maxProvidersPerKey
    this.ttl = ttl
  }

  /** Keys held (provider keys and value keys), expired ones not yet deleted included */
  get size (): number {
    return this.providers.size + this.values.size
  }

  /** Stores (or refreshes) `provider` for `key` at `now`; false when the store is full */
  addProvider (key: Key, provider: number, now: Millis): boolean {
    const k = storeKey(key)
    let list = this.live(k, now)
    if (list == null) {
      if (!this.room(now)) {
        return false
      }
      list = []
      this.providers.set(k, list)
    }
    const held = list.findIndex(p => p.node === provider)
    if (held >= 0) {
      list.splice(held, 1)
    }
    list.push({ node: provider, storedAt: now })
    if (list.length > this.maxProvidersPerKey) {
      list.shift()
    }
    return true
  }

  /** The providers of `key` not expired at `now`, oldest refresh first */
  providersOf (key: Key, now: Millis): readonly number[] {
    return (this.live(storeKey(key), now) ?? []).map(p => p.node)
  }

  /** Stores value `seq` for `key` at `now` unless a higher one is held; false when refused */
  putValue (key: Key, seq: number, now: Millis): boolean {
    const k = storeKey(key)
    const held = this.valueAt(k, now)
    if (held == null && !this.room(now)) {
      return false
    }
    if (held != null && held.seq > seq) {
      return false
    }
    this.values.set(k, { seq, storedAt: now })
    return true
  }

  /** The value of `key`, unless none or expired at `now` */
  valueOf (key: Key, now: Millis): number | undefined {
    return this.valueAt(storeKey(key), now)?.seq
  }

  /** Whether the store has an entry (expired or not) under store key `k` */
  has (k: string): boolean {
    return this.providers.has(k) || this.values.has(k)
  }

  /** When value `key` was last stored here (by anyone), unless none or expired at `now` */
  valueStoredAt (key: Key, now: Millis): Millis | undefined {
    return this.valueAt(storeKey(key), now)?.storedAt
  }

  /**
   * Every key held and unexpired at `now` (its first STORE_KEY_BYTES bytes,
   * zero-padded to a full key: distances to node keys order the same), with
   * its providers or its value; expired records met on the way are deleted
   */
  * held (now: Millis): Generator<{ key: Key, providers?: readonly number[], value?: { seq: number, storedAt: Millis } }> {
    for (const k of [...this.providers.keys()]) {
      const list = this.live(k, now)
      if (list != null) {
        yield { key: fullKey(k), providers: list.map(p => p.node) }
      }
    }
    for (const k of [...this.values.keys()]) {
      const v = this.valueAt(k, now)
      if (v != null) {
        yield { key: fullKey(k), value: { seq: v.seq, storedAt: v.storedAt } }
      }
    }
  }

  private expired (storedAt: Millis, now: Millis): boolean {
    return now - storedAt >= this.ttl
  }

  /** The unexpired providers of `k`, deleting the expired ones (and the key when none is left) */
  private live (k: string, now: Millis): Provider[] | undefined {
    const list = this.providers.get(k)
    if (list == null) {
      return undefined
    }
    // refreshes move a provider to the end: the expired ones are a prefix
    let n = 0
    while (n < list.length && this.expired(list[n].storedAt, now)) {
      n++
    }
    if (n === list.length) {
      this.providers.delete(k)
      return undefined
    }
    if (n > 0) {
      list.splice(0, n)
    }
    return list
  }

  private valueAt (k: string, now: Millis): Value | undefined {
    const v = this.values.get(k)
    if (v != null && this.expired(v.storedAt, now)) {
      this.values.delete(k)
      return undefined
    }
    return v
  }

  /** Whether a new key fits; at the bound, drops every expired record first (O(size)) */
  private room (now: Millis): boolean {
    if (this.size < this.maxKeys) {
      return true
    }
    for (const k of [...this.providers.keys()]) {
      this.live(k, now)
    }
    for (const k of [...this.values.keys()]) {
      this.valueAt(k, now)
    }
    return this.size < this.maxKeys
  }
}
