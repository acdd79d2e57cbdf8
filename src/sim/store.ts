/**
 * A simulated node's record store: the provider records and values other
 * nodes put on it (ADD_PROVIDER, PUT_VALUE), answered to GET_PROVIDERS and
 * GET_VALUE.
 *
 * Keys are the first 12 bytes of the 32-byte key as a string (96 bits: no
 * collision among the records a run can hold). Values are stood for by
 * their sequence number: a put keeps the higher one, as IPNS selection
 * does. Records do not expire here (a run spans hours of virtual time;
 * provider records live 48 h, and republishing is left to the real node).
 *
 * Bounds: at most `maxKeys` keys per node (a full store refuses new keys
 * and keeps what it has, as `src/records/` does) and `maxProvidersPerKey`
 * providers per key (the oldest is replaced).
 */
import type { Key } from '../core/key.ts'

export const STORE_KEY_BYTES = 12

/** The store's name for a key */
export function storeKey (key: Key): string {
  let s = ''
  for (let i = 0; i < STORE_KEY_BYTES && i < key.length; i++) {
    s += String.fromCharCode(key[i])
  }
  return s
}

export class RecordStore {
  private readonly providers = new Map<string, number[]>()
  private readonly values = new Map<string, number>()
  private readonly maxKeys: number
  private readonly maxProvidersPerKey: number

  constructor (maxKeys = 100_000, maxProvidersPerKey = 20) {
    this.maxKeys = maxKeys
    this.maxProvidersPerKey = maxProvidersPerKey
  }

  /** Keys held (provider keys and value keys) */
  get size (): number {
    return this.providers.size + this.values.size
  }

  /** Stores `provider` for `key`; false when the store is full */
  addProvider (key: Key, provider: number): boolean {
    const k = storeKey(key)
    let list = this.providers.get(k)
    if (list == null) {
      if (this.size >= this.maxKeys) {
        return false
      }
      list = []
      this.providers.set(k, list)
    }
    if (!list.includes(provider)) {
      list.push(provider)
      if (list.length > this.maxProvidersPerKey) {
        list.shift()
      }
    }
    return true
  }

  providersOf (key: Key): readonly number[] {
    return this.providers.get(storeKey(key)) ?? []
  }

  /** Stores value `seq` for `key` unless a higher one is held; false when refused */
  putValue (key: Key, seq: number): boolean {
    const k = storeKey(key)
    const held = this.values.get(k)
    if (held == null && this.size >= this.maxKeys) {
      return false
    }
    if (held != null && held > seq) {
      return false
    }
    this.values.set(k, seq)
    return true
  }

  valueOf (key: Key): number | undefined {
    return this.values.get(storeKey(key))
  }
}
