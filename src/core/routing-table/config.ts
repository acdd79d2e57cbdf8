import type { Millis } from '../env.ts'

export interface RoutingTableConfig {
  /**
   * Bucket size: the most peers kept per common-prefix-length bucket.
   *
   * @default 20 (range 1..256)
   */
  k: number
  /**
   * Replacement (pending) entries kept per full bucket: peers we have seen but
   * had no room for. When a bucket entry is evicted the best replacement takes
   * its place. At the bound the least valuable, least recently seen
   * replacement is dropped.
   *
   * @default 10 (range 0..256)
   */
  replacements: number
  /**
   * Eviction pings in flight at once across the table. At the bound a full
   * bucket simply keeps the newcomer as a replacement without pinging.
   *
   * @default 8 (range 1..1024)
   */
  maxPendingPings: number
  /**
   * Consecutive failed requests after which an entry is evicted in favour of a
   * replacement (if the bucket has one). An entry with no replacement waiting
   * is kept: a stale peer is still better than an empty slot.
   *
   * @default 2 (range 1..100)
   */
  maxFailures: number
  /**
   * A bucket not touched by a lookup for this long is refreshed with a lookup
   * of a random key in its range.
   *
   * @default 600000 (10 minutes; range 1000..86400000)
   */
  refreshInterval: Millis
  /**
   * An entry not heard from for this long is pinged before it may be used to
   * refuse a newcomer (a "questionable" entry in BEP 5's words).
   *
   * @default 900000 (15 minutes; range 1000..86400000)
   */
  staleAfter: Millis
  /**
   * Buckets whose common prefix length is above this are not refreshed by
   * random lookups (they are almost always empty and the self lookup covers
   * them).
   *
   * @default 15 (range 0..255)
   */
  maxRefreshCpl: number
  /**
   * Entries of one address group (`Contact.group`: an IPv4 /16 or IPv6 /32
   * in the libp2p adapter) allowed per bucket, as go-libp2p-kad-dht's
   * diversity filter.
   *
   * @default 2 (range 1..256)
   */
  maxPerGroupPerBucket: number
  /**
   * Entries of one address group allowed in the whole table.
   *
   * @default 3 (range 1..100000)
   */
  maxPerGroupPerTable: number
}

export function defaultRoutingTableConfig (): RoutingTableConfig {
  return {
    k: 20,
    replacements: 10,
    maxPendingPings: 8,
    maxFailures: 2,
    refreshInterval: 10 * 60_000,
    staleAfter: 15 * 60_000,
    maxRefreshCpl: 15,
    maxPerGroupPerBucket: 2,
    maxPerGroupPerTable: 3
  }
}

export class InvalidConfigError extends Error {
  name = 'InvalidConfigError'
  code = 'ERR_INVALID_CONFIG'
}

/** Throws {@link InvalidConfigError} naming the first field out of range */
export function checkRange (name: string, value: unknown, min: number, max: number, integer = true): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new InvalidConfigError(`${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${String(value)}`)
  }
}

export function validateRoutingTableConfig (partial: Partial<RoutingTableConfig> = {}): RoutingTableConfig {
  const c = { ...defaultRoutingTableConfig(), ...stripUndefined(partial) }
  checkRange('routingTable.k', c.k, 1, 256)
  checkRange('routingTable.replacements', c.replacements, 0, 256)
  checkRange('routingTable.maxPendingPings', c.maxPendingPings, 1, 1024)
  checkRange('routingTable.maxFailures', c.maxFailures, 1, 100)
  checkRange('routingTable.refreshInterval', c.refreshInterval, 1000, 86_400_000)
  checkRange('routingTable.staleAfter', c.staleAfter, 1000, 86_400_000)
  checkRange('routingTable.maxRefreshCpl', c.maxRefreshCpl, 0, 255)
  checkRange('routingTable.maxPerGroupPerBucket', c.maxPerGroupPerBucket, 1, 256)
  checkRange('routingTable.maxPerGroupPerTable', c.maxPerGroupPerTable, 1, 100_000)
  return c
}

export function stripUndefined<T extends object> (o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) {
      (out as any)[k] = v
    }
  }
  return out
}
