/**
 * The Kademlia routing table: one bucket per common prefix length with our own
 * key, each holding at most `k` entries plus a bounded list of replacements.
 *
 * Methods (all synchronous, time passed in):
 * - `observe(contact, now, proven)`: a DHT server was seen alive (identify
 * listed the protocol, or it answered one of our requests). `proven` says
 * whether we reached it ourselves (see "Admission" below).
 * - `verifyResult(id, ok, now)`: the outcome of a `verify` effect.
 * - `requestFailed(id, now)`, `pingResult(id, ok, now)`, `remove(id)`.
 * - `closest(target, n)`, `refreshTargets(now, random)`, `markRefreshed(key, now)`.
 *
 * Effects returned: `peer-added`, `peer-removed` (for peer store tags and
 * events), `ping` (the driver sends a probe, FIND_NODE for our own id, and reports `pingResult`) and
 * `verify` (the driver opens a connection of its own to the peer, even if one
 * exists, sends the probe over it and reports `verifyResult`).
 *
 * Admission: only a peer we have reached ourselves becomes an entry. A DHT
 * server seen only over connections it opened (it dialled us, then identify
 * listed the protocol) may sit behind a NAT that nobody can dial through; it
 * waits in the replacement list marked unproven, and is sent a `verify` when
 * its bucket has room or a questionable entry to replace. A successful verify
 * makes it proven (an entry if there is room, else a proven replacement); a
 * failed one drops it. A peer that only ever dials us and cannot be dialled
 * back therefore never enters a bucket and is never named in our answers; we
 * still answer its requests. Replacements are promoted proven ones first; an
 * unproven one is verified before it can take a freed place.
 *
 * Diversity (Sybil resistance, `diversity.ts`): at most
 * `maxPerGroupPerBucket` entries of one address group per bucket and
 * `maxPerGroupPerTable` in the table; contacts without a group are not
 * limited.
 *
 * Implementation notes:
 * - A newcomer to a full bucket never displaces a live entry directly. It waits
 * in the replacement list; if some entry is *questionable* (it failed a
 * request, has not been heard from for `staleAfter`, or is in back-off) the
 * worst of those is pinged, and only a failed ping evicts it. A long-known
 * active peer is therefore never evicted for an unknown one.
 * - "Worst" and "best" come from {@link PeerQuality}: lowest value first, then
 * least recently seen. With {@link NEUTRAL_QUALITY} that is plain Kademlia
 * LRU order.
 * - Capacity: at most 257 buckets x (k + replacements) entries; pings in flight
 * are bounded by `maxPendingPings` (at the bound, no ping is sent and the
 * newcomer just waits as a replacement).
 */
import { commonPrefixLength, compareDistance, keyWithPrefixLength, KEY_BITS, KEY_BYTES } from '../key.ts'
import { validateRoutingTableConfig } from './config.ts'
import { Diversity } from './diversity.ts'
import type { RoutingTableConfig } from './config.ts'
import type { Contact, PeerQuality } from '../contact.ts'
import type { Millis, Random } from '../env.ts'
import type { Key } from '../key.ts'

export type RoutingTableEffect =
  | { type: 'peer-added', peer: Contact }
  | { type: 'peer-removed', peer: Contact, reason: 'failed' | 'ping-failed' | 'removed' }
  | { type: 'ping', peer: Contact }
  | { type: 'verify', peer: Contact }

export interface EntrySnapshot {
  readonly id: string
  readonly key: Key
  readonly cpl: number
  readonly addedAt: Millis
  readonly lastSeen: Millis
  readonly failures: number
  readonly replacement: boolean
  /** an unproven replacement: seen only over connections it opened */
  readonly unproven: boolean
}

interface Entry {
  contact: Contact
  addedAt: Millis
  lastSeen: Millis
  failures: number
  /** seen only over connections it opened (replacements only) */
  unproven: boolean
}

interface Bucket {
  entries: Entry[]
  replacements: Entry[]
}

export class RoutingTable {
  readonly self: Key
  readonly config: RoutingTableConfig
  private readonly quality: PeerQuality
  private readonly buckets: Array<Bucket | undefined>
  private readonly lastRefreshed: Float64Array
  /** id -> 2 * cpl + (1 if a replacement): a small integer, no object per entry */
  private readonly index = new Map<string, number>()
  private readonly pinging = new Set<string>()
  private readonly diversity: Diversity
  private count = 0

  constructor (self: Key, config: Partial<RoutingTableConfig>, quality: PeerQuality, now: Millis) {
    this.self = self
    this.config = validateRoutingTableConfig(config)
    this.quality = quality
    this.buckets = new Array(KEY_BITS + 1)
    this.lastRefreshed = new Float64Array(KEY_BITS + 1).fill(now)
    this.diversity = new Diversity(this.config.maxPerGroupPerBucket, this.config.maxPerGroupPerTable)
  }

  /** Number of entries (replacements not counted) */
  get size (): number {
    return this.count
  }

  has (id: string): boolean {
    const at = this.locate(id)
    return at != null && !at.replacement
  }

  /** A copy of the entry (or replacement) for `id` */
  entry (id: string): EntrySnapshot | undefined {
    const at = this.locate(id)
    if (at == null) {
      return undefined
    }
    const bucket = this.buckets[at.cpl] as Bucket
    const list = at.replacement ? bucket.replacements : bucket.entries
    const e = list.find(e => e.contact.id === id)
    return e == null ? undefined : snapshot(e, at.cpl, at.replacement)
  }

  /** All entries (not replacements), in bucket order */
  * contacts (): Generator<Contact> {
    for (const bucket of this.buckets) {
      if (bucket == null) {
        continue
      }
      for (const e of bucket.entries) {
        yield e.contact
      }
    }
  }

  snapshots (): EntrySnapshot[] {
    const out: EntrySnapshot[] = []
    this.buckets.forEach((bucket, cpl) => {
      bucket?.entries.forEach(e => out.push(snapshot(e, cpl, false)))
      bucket?.replacements.forEach(e => out.push(snapshot(e, cpl, true)))
    })
    return out
  }

  /** Entries per bucket, index = common prefix length */
  bucketSizes (): number[] {
    const sizes: number[] = []
    this.buckets.forEach((b, cpl) => { sizes[cpl] = b?.entries.length ?? 0 })
    return Array.from(sizes, s => s ?? 0)
  }

  /**
   * A DHT server was seen alive. `proven`: we reached it ourselves (an entry
   * needs that); otherwise it can only wait as an unproven replacement.
   */
  observe (contact: Contact, now: Millis, proven = true): RoutingTableEffect[] {
    if (contact.key.length !== KEY_BYTES) {
      return []
    }
    const cpl = commonPrefixLength(this.self, contact.key)
    if (cpl === KEY_BITS) {
      return [] // ourselves
    }
    const at = this.locate(contact.id)
    const bucket = this.bucket(cpl)
    if (at != null) {
      const e = this.find(contact.id)
      if (e == null) {
        return []
      }
      e.lastSeen = now
      e.failures = 0
      if (!at.replacement || !e.unproven) {
        return []
      }
      if (!proven) {
        return this.verifyIfRoom(bucket, cpl, e, now)
      }
      // an unproven replacement just proved itself
      e.unproven = false
      this.pinging.delete(contact.id)
      if (bucket.entries.length < this.config.k && this.diversity.allows(contact.group, cpl)) {
        this.dropReplacement(bucket, cpl, e)
        return this.admit(bucket, cpl, e)
      }
      return this.maybeEvict(bucket, cpl, now)
    }

    const entry: Entry = { contact, addedAt: now, lastSeen: now, failures: 0, unproven: !proven }
    if (proven && bucket.entries.length < this.config.k && this.diversity.allows(contact.group, cpl)) {
      return this.admit(bucket, cpl, entry)
    }
    if (!this.addReplacement(bucket, cpl, entry, now)) {
      return []
    }
    return proven ? this.maybeEvict(bucket, cpl, now) : this.verifyIfRoom(bucket, cpl, entry, now)
  }

  /**
   * The outcome of a `verify` effect for `id`: a success proves it (see
   * `observe`), a failure drops it.
   */
  verifyResult (id: string, ok: boolean, now: Millis): RoutingTableEffect[] {
    if (!this.pinging.delete(id)) {
      return []
    }
    const at = this.locate(id)
    const e = this.find(id)
    if (at == null || e == null || !at.replacement) {
      return []
    }
    if (ok) {
      return this.observe(e.contact, now, true)
    }
    this.dropReplacement(this.buckets[at.cpl] as Bucket, at.cpl, e)
    return []
  }

  /** A request to `id` failed */
  requestFailed (id: string, now: Millis): RoutingTableEffect[] {
    const at = this.locate(id)
    const e = this.find(id)
    if (at == null || e == null) {
      return []
    }
    e.failures++
    const bucket = this.buckets[at.cpl] as Bucket
    if (at.replacement) {
      if (e.failures >= this.config.maxFailures) {
        this.dropReplacement(bucket, at.cpl, e)
      }
      return []
    }
    if (e.failures >= this.config.maxFailures && bucket.replacements.length > 0 && !this.pinging.has(id)) {
      return this.evict(bucket, at.cpl, e, 'failed', now)
    }
    return []
  }

  /** The answer to a `ping` effect */
  pingResult (id: string, ok: boolean, now: Millis): RoutingTableEffect[] {
    if (!this.pinging.delete(id)) {
      return []
    }
    const at = this.locate(id)
    const e = this.find(id)
    if (at == null || e == null || at.replacement) {
      return []
    }
    if (ok) {
      e.lastSeen = now
      e.failures = 0
      return []
    }
    e.failures++
    const bucket = this.buckets[at.cpl] as Bucket
    if (bucket.replacements.length > 0) {
      return this.evict(bucket, at.cpl, e, 'ping-failed', now)
    }
    return []
  }

  /**
   * Asks for a liveness check of entry `id` (for example: its connection just
   * closed). Emits a ping unless one is already running or `maxPendingPings`
   * are; the answer goes to `pingResult` as usual.
   */
  check (id: string): RoutingTableEffect[] {
    const at = this.locate(id)
    const e = this.find(id)
    if (at == null || e == null || at.replacement || this.pinging.has(id) || this.pinging.size >= this.config.maxPendingPings) {
      return []
    }
    this.pinging.add(id)
    return [{ type: 'ping', peer: e.contact }]
  }

  /** A ping or verify for `id` ended without an answer either way (our own abort) */
  cancelCheck (id: string): RoutingTableEffect[] {
    this.pinging.delete(id)
    return []
  }

  /** Removes `id` (for example: it no longer speaks the DHT protocol) */
  remove (id: string, now: Millis): RoutingTableEffect[] {
    const at = this.locate(id)
    const e = this.find(id)
    if (at == null || e == null) {
      return []
    }
    const bucket = this.buckets[at.cpl] as Bucket
    if (at.replacement) {
      this.dropReplacement(bucket, at.cpl, e)
      return []
    }
    this.pinging.delete(id)
    return this.evict(bucket, at.cpl, e, 'removed', now)
  }

  /**
   * The `n` entries closest to `target`, nearest first. `exclude` filters
   * entries out before counting.
   */
  closest (target: Key, n: number, exclude?: (c: Contact) => boolean): Contact[] {
    // Walk buckets in distance order instead of sorting the whole table. With
    // c = cpl(self, target): bucket c's entries agree with target through bit
    // c, so they come first; every deeper bucket's entries differ from target
    // first at bit c, so they come next (together); then buckets c-1 .. 0, each
    // farther than the one before. Only the groups needed are sorted.
    const out: Contact[] = []
    const c = Math.min(commonPrefixLength(this.self, target), KEY_BITS)
    const take = (group: Contact[]): void => {
      group.sort((a, b) => compareDistance(a.key, b.key, target))
      for (const contact of group) {
        if (out.length >= n) {
          return
        }
        out.push(contact)
      }
    }
    const collect = (from: number, to: number): Contact[] => {
      const group: Contact[] = []
      for (let i = from; i <= to; i++) {
        for (const e of this.buckets[i]?.entries ?? []) {
          if (exclude == null || !exclude(e.contact)) {
            group.push(e.contact)
          }
        }
      }
      return group
    }
    take(collect(c, c))
    if (c < KEY_BITS && out.length < n) {
      take(collect(c + 1, KEY_BITS))
    }
    for (let i = c - 1; i >= 0 && out.length < n; i--) {
      take(collect(i, i))
    }
    return out
  }

  /**
   * How many DHT servers the network has, as seen from this table: with c
   * the first bucket holding fewer than k entries, the entries of buckets c
   * and deeper are every peer sharing c leading bits with us (if the table
   * is complete there), which is 2^-c of the keyspace. 0 for an empty table.
   */
  sizeEstimate (): number {
    let c = 0
    while (c < KEY_BITS && (this.buckets[c]?.entries.length ?? 0) >= this.config.k) {
      c++
    }
    let known = 1 // ourselves
    for (let i = c; i <= KEY_BITS; i++) {
      known += this.buckets[i]?.entries.length ?? 0
    }
    return this.count === 0 ? 0 : known * Math.pow(2, c)
  }

  /** A lookup for `target` ran: the bucket it falls in counts as refreshed */
  markRefreshed (target: Key, now: Millis): void {
    const cpl = commonPrefixLength(this.self, target)
    this.lastRefreshed[Math.min(cpl, KEY_BITS)] = now
  }

  /**
   * Random keys for the buckets due a refresh, at most one per bucket, for
   * common prefix lengths 0..min(deepest non-empty bucket, maxRefreshCpl).
   */
  refreshTargets (now: Millis, random: Random): Array<{ cpl: number, key: Key }> {
    const out: Array<{ cpl: number, key: Key }> = []
    const max = this.maxRefreshCpl()
    for (let cpl = 0; cpl <= max; cpl++) {
      if (this.lastRefreshed[cpl] + this.config.refreshInterval <= now) {
        out.push({ cpl, key: keyWithPrefixLength(this.self, cpl, random.fill(new Uint8Array(KEY_BYTES))) })
      }
    }
    return out
  }

  /** When the next bucket becomes due a refresh */
  nextRefreshAt (): Millis {
    let next = Infinity
    const max = this.maxRefreshCpl()
    for (let cpl = 0; cpl <= max; cpl++) {
      next = Math.min(next, this.lastRefreshed[cpl] + this.config.refreshInterval)
    }
    return next
  }

  private maxRefreshCpl (): number {
    let deepest = 0
    this.buckets.forEach((b, cpl) => {
      if (b != null && b.entries.length > 0) {
        deepest = cpl
      }
    })
    return Math.min(deepest, this.config.maxRefreshCpl)
  }

  private locate (id: string): { cpl: number, replacement: boolean } | undefined {
    const code = this.index.get(id)
    return code === undefined ? undefined : { cpl: code >> 1, replacement: (code & 1) === 1 }
  }

  private bucket (cpl: number): Bucket {
    let b = this.buckets[cpl]
    if (b == null) {
      b = { entries: [], replacements: [] }
      this.buckets[cpl] = b
    }
    return b
  }

  private find (id: string): Entry | undefined {
    const at = this.locate(id)
    if (at == null) {
      return undefined
    }
    const bucket = this.buckets[at.cpl] as Bucket
    return (at.replacement ? bucket.replacements : bucket.entries).find(e => e.contact.id === id)
  }

  /** Lower is worse: (quality value, then recency) */
  private worse (a: Entry, b: Entry, now: Millis): number {
    const va = this.quality.value(a.contact.id, now)
    const vb = this.quality.value(b.contact.id, now)
    if (va !== vb) {
      return va - vb
    }
    return a.lastSeen - b.lastSeen
  }

  /** Adds `entry` to the replacements; false when it is no better than anything waiting */
  private addReplacement (bucket: Bucket, cpl: number, entry: Entry, now: Millis): boolean {
    if (this.config.replacements === 0 || !this.diversity.allowsReplacement(entry.contact.group, cpl)) {
      return false
    }
    if (bucket.replacements.length >= this.config.replacements) {
      let worst = bucket.replacements[0]
      for (const r of bucket.replacements) {
        if (this.worse(r, worst, now) < 0) {
          worst = r
        }
      }
      if (this.worse(entry, worst, now) <= 0) {
        return false // the newcomer is no better than anything waiting
      }
      this.dropReplacement(bucket, cpl, worst)
      this.pinging.delete(worst.contact.id)
    }
    bucket.replacements.push(entry)
    this.index.set(entry.contact.id, 2 * cpl + 1)
    this.diversity.added(entry.contact.group, cpl, true)
    return true
  }

  private dropReplacement (bucket: Bucket, cpl: number, e: Entry): void {
    bucket.replacements.splice(bucket.replacements.indexOf(e), 1)
    this.index.delete(e.contact.id)
    this.diversity.removed(e.contact.group, cpl, true)
  }

  private admit (bucket: Bucket, cpl: number, e: Entry): RoutingTableEffect[] {
    e.unproven = false
    bucket.entries.push(e)
    this.index.set(e.contact.id, 2 * cpl)
    this.diversity.added(e.contact.group, cpl, false)
    this.count++
    return [{ type: 'peer-added', peer: e.contact }]
  }

  /**
   * Sends unproven replacement `e` a `verify` when proving it would let it
   * in: its bucket has room or holds a questionable entry. Bounded by
   * `maxPendingPings`.
   */
  private verifyIfRoom (bucket: Bucket, cpl: number, e: Entry, now: Millis): RoutingTableEffect[] {
    void cpl
    if (this.pinging.has(e.contact.id) || this.pinging.size >= this.config.maxPendingPings) {
      return []
    }
    if (bucket.entries.length >= this.config.k && !bucket.entries.some(x => this.questionable(x, now))) {
      return []
    }
    this.pinging.add(e.contact.id)
    return [{ type: 'verify', peer: e.contact }]
  }

  private questionable (e: Entry, now: Millis): boolean {
    return e.failures > 0 || now - e.lastSeen >= this.config.staleAfter || this.quality.backedOff(e.contact.id, now)
  }

  private maybeEvict (bucket: Bucket, cpl: number, now: Millis): RoutingTableEffect[] {
    let candidate: Entry | undefined
    for (const e of bucket.entries) {
      if (this.pinging.has(e.contact.id) || !this.questionable(e, now)) {
        continue
      }
      if (candidate == null || this.worse(e, candidate, now) < 0) {
        candidate = e
      }
    }
    if (candidate == null) {
      return []
    }
    if (candidate.failures >= this.config.maxFailures) {
      return this.evict(bucket, cpl, candidate, 'failed', now)
    }
    if (this.pinging.size >= this.config.maxPendingPings) {
      return []
    }
    this.pinging.add(candidate.contact.id)
    return [{ type: 'ping', peer: candidate.contact }]
  }

  private evict (bucket: Bucket, cpl: number, e: Entry, reason: 'failed' | 'ping-failed' | 'removed', now: Millis): RoutingTableEffect[] {
    bucket.entries.splice(bucket.entries.indexOf(e), 1)
    this.index.delete(e.contact.id)
    this.diversity.removed(e.contact.group, cpl, false)
    this.count--
    const effects: RoutingTableEffect[] = [{ type: 'peer-removed', peer: e.contact, reason }]
    let best: Entry | undefined
    let bestUnproven: Entry | undefined
    for (const r of bucket.replacements) {
      if (r.unproven) {
        if (!this.pinging.has(r.contact.id) && (bestUnproven == null || this.worse(r, bestUnproven, now) > 0)) {
          bestUnproven = r
        }
      } else if (this.diversity.allows(r.contact.group, cpl) && (best == null || this.worse(r, best, now) > 0)) {
        best = r
      }
    }
    if (best != null) {
      this.dropReplacement(bucket, cpl, best)
      effects.push(...this.admit(bucket, cpl, best))
    } else if (bestUnproven != null && this.pinging.size < this.config.maxPendingPings) {
      this.pinging.add(bestUnproven.contact.id)
      effects.push({ type: 'verify', peer: bestUnproven.contact })
    }
    return effects
  }
}

function snapshot (e: Entry, cpl: number, replacement: boolean): EntrySnapshot {
  return { id: e.contact.id, key: e.contact.key, cpl, addedAt: e.addedAt, lastSeen: e.lastSeen, failures: e.failures, replacement, unproven: e.unproven }
}
