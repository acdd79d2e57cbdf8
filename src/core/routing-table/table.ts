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
 * active peer is therefore never evicted for an unknown one. The exception
 * is an entry in back-off that never failed a request of ours: held back
 * because its connection broke (the peer stack's `suspectFor`). A proven
 * newcomer takes its place without a ping (reason `held`), since the ping
 * would dial a peer that most likely went away, and a tarpit would cost a
 * full dial timeout.
 * - "Worst" and "best" come from {@link PeerQuality}: lowest value first, then
 * least recently seen. With {@link NEUTRAL_QUALITY} that is plain Kademlia
 * LRU order.
 * - Capacity: at most 257 buckets x (k + replacements) entries; pings in flight
 * are bounded by `maxPendingPings` (at the bound, no ping is sent and the
 * newcomer just waits as a replacement).
 * - Storage is compact, because a simulator holds a million of these tables
 * (see `slots.ts`): entries live in parallel typed arrays, bucket by bucket
 * (a bucket's entries, then its replacements, then the next bucket's), with
 * no object, map entry or array per entry. A lookup by id compares a 32-bit
 * hash of the id per slot. Order within a bucket is insertion order, as
 * with arrays.
 */
import { commonPrefixLength, compareDistance, keyWithPrefixLength, KEY_BITS, KEY_BYTES } from '../key.ts'
import { validateRoutingTableConfig } from './config.ts'
import { Diversity } from './diversity.ts'
import { Slots } from './slots.ts'
import type { RoutingTableConfig } from './config.ts'
import type { Contact, PeerQuality } from '../contact.ts'
import type { Millis, Random } from '../env.ts'
import type { Key } from '../key.ts'

export type RoutingTableEffect =
  | { type: 'peer-added', peer: Contact }
  | { type: 'peer-removed', peer: Contact, reason: 'failed' | 'ping-failed' | 'held' | 'removed' }
  | { type: 'ping', peer: Contact }
  | { type: 'verify', peer: Contact }

export interface EntrySnapshot {
  readonly id: string
  readonly key: Key
  readonly cpl: number
  readonly lastSeen: Millis
  readonly failures: number
  readonly replacement: boolean
  /** an unproven replacement: seen only over connections it opened */
  readonly unproven: boolean
}

export class RoutingTable {
  readonly self: Key
  readonly config: RoutingTableConfig
  private readonly quality: PeerQuality
  private readonly slots = new Slots()
  /** per bucket up to maxRefreshCpl: when a lookup last ran into it */
  private readonly lastRefreshed: Float64Array
  /** ids with a ping or verify in flight (at most maxPendingPings) */
  private readonly pinging: string[] = []
  /** created with the first contact that has an address group */
  private diversity: Diversity | undefined
  private count = 0

  constructor (self: Key, config: Partial<RoutingTableConfig>, quality: PeerQuality, now: Millis) {
    this.self = self
    this.config = validateRoutingTableConfig(config)
    this.quality = quality
    this.lastRefreshed = new Float64Array(Math.min(this.config.maxRefreshCpl, KEY_BITS) + 1).fill(now)
  }

  /** Number of entries (replacements not counted) */
  get size (): number {
    return this.count
  }

  has (id: string): boolean {
    const i = this.slots.find(id)
    return i >= 0 && !this.slots.isReplacement(i, this.slots.bucketOf(i))
  }

  /** A copy of the entry (or replacement) for `id` */
  entry (id: string): EntrySnapshot | undefined {
    const i = this.slots.find(id)
    if (i < 0) {
      return undefined
    }
    const cpl = this.slots.bucketOf(i)
    return this.snapshot(i, cpl, this.slots.isReplacement(i, cpl))
  }

  /** All entries (not replacements), in bucket order */
  * contacts (): Generator<Contact> {
    const s = this.slots
    for (let c = 0; c < s.bucketCount; c++) {
      for (let i = s.entriesStart(c); i < s.entriesEnd(c); i++) {
        yield s.contacts[i]
      }
    }
  }

  snapshots (): EntrySnapshot[] {
    const out: EntrySnapshot[] = []
    const s = this.slots
    for (let c = 0; c < s.bucketCount; c++) {
      for (let i = s.entriesStart(c); i < s.replacementsEnd(c); i++) {
        out.push(this.snapshot(i, c, s.isReplacement(i, c)))
      }
    }
    return out
  }

  /** Entries per bucket, index = common prefix length (up to the deepest bucket ever used) */
  bucketSizes (): number[] {
    return Array.from({ length: this.slots.bucketCount }, (_, c) => this.slots.entryCount(c))
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
    const s = this.slots
    s.track(cpl)
    // ids are unique in the table: one seen before with another key stays
    // where it is
    const i = s.find(contact.id)
    if (i >= 0) {
      const at = s.bucketOf(i)
      s.setLastSeen(i, now)
      s.setFailures(i, 0)
      if (!s.isReplacement(i, at) || !s.unproven(i)) {
        return []
      }
      if (!proven) {
        return this.verifyIfRoom(at, i, now)
      }
      // an unproven replacement just proved itself
      s.setUnproven(i, false)
      this.unping(contact.id)
      if (s.entryCount(at) < this.config.k && this.allows(contact.group, at)) {
        return this.promote(at, i)
      }
      return this.maybeEvict(at, now)
    }

    if (proven && s.entryCount(cpl) < this.config.k && this.allows(contact.group, cpl)) {
      return this.admit(cpl, contact, now, 0)
    }
    const r = this.addReplacement(cpl, contact, now, !proven)
    if (r < 0) {
      return []
    }
    return proven ? this.maybeEvict(cpl, now) : this.verifyIfRoom(cpl, r, now)
  }

  /**
   * The outcome of a `verify` effect for `id`: a success proves it (see
   * `observe`), a failure drops it.
   */
  verifyResult (id: string, ok: boolean, now: Millis): RoutingTableEffect[] {
    if (!this.unping(id)) {
      return []
    }
    const i = this.slots.find(id)
    if (i < 0) {
      return []
    }
    const cpl = this.slots.bucketOf(i)
    if (!this.slots.isReplacement(i, cpl)) {
      return []
    }
    if (ok) {
      return this.observe(this.slots.contacts[i], now, true)
    }
    this.dropReplacement(cpl, i)
    return []
  }

  /** A request to `id` failed */
  requestFailed (id: string, now: Millis): RoutingTableEffect[] {
    const s = this.slots
    const i = s.find(id)
    if (i < 0) {
      return []
    }
    const failures = s.failures(i) + 1
    s.setFailures(i, failures)
    const cpl = s.bucketOf(i)
    if (s.isReplacement(i, cpl)) {
      if (failures >= this.config.maxFailures) {
        this.dropReplacement(cpl, i)
      }
      return []
    }
    if (failures >= this.config.maxFailures && s.replacementCount(cpl) > 0 && !this.pinging.includes(id)) {
      return this.evict(cpl, i, 'failed', now)
    }
    return []
  }

  /** The answer to a `ping` effect */
  pingResult (id: string, ok: boolean, now: Millis): RoutingTableEffect[] {
    if (!this.unping(id)) {
      return []
    }
    const s = this.slots
    const i = s.find(id)
    if (i < 0) {
      return []
    }
    const cpl = s.bucketOf(i)
    if (s.isReplacement(i, cpl)) {
      return []
    }
    if (ok) {
      s.setLastSeen(i, now)
      s.setFailures(i, 0)
      return []
    }
    s.setFailures(i, s.failures(i) + 1)
    if (s.replacementCount(cpl) > 0) {
      return this.evict(cpl, i, 'ping-failed', now)
    }
    return []
  }

  /** A ping or verify for `id` ended without an answer either way (our own abort) */
  cancelCheck (id: string): RoutingTableEffect[] {
    this.unping(id)
    return []
  }

  /** Removes `id` (for example: it no longer speaks the DHT protocol) */
  remove (id: string, now: Millis): RoutingTableEffect[] {
    const i = this.slots.find(id)
    if (i < 0) {
      return []
    }
    const cpl = this.slots.bucketOf(i)
    if (this.slots.isReplacement(i, cpl)) {
      this.dropReplacement(cpl, i)
      return []
    }
    this.unping(id)
    return this.evict(cpl, i, 'removed', now)
  }

  /**
   * The `n` entries closest to `target`, nearest first. `exclude` filters
   * entries out before counting.
   */
  closest (target: Key, n: number, exclude?: (c: Contact) => boolean): Contact[] {
    // Walk buckets in distance order instead of sorting the table; only one
    // bucket (at most k entries plus none) is ever sorted at a time. With
    // c = cpl(self, target) and x = self XOR target:
    // - bucket c's entries agree with target through bit c: nearest of all;
    // - a deeper bucket j's entries have a distance to target whose bits
    //   c+1..j-1 are x's and whose bit j is the complement of x's bit j, so
    //   where x has a 1 at bit j the bucket is nearer than every deeper one,
    //   where it has a 0, farther: the 1-buckets in increasing j, then the
    //   0-buckets in decreasing j;
    // - then buckets c-1 .. 0, each farther than the one before.
    const out: Contact[] = []
    const s = this.slots
    const self = this.self
    const c = Math.min(commonPrefixLength(self, target), KEY_BITS)
    const group: Contact[] = []
    const lead: number[] = []
    const t0 = ((target[0] << 24) | (target[1] << 16) | (target[2] << 8) | target[3]) >>> 0
    const take = (b: number): void => {
      // insertion sort by the first 32 bits of the distance, ties by the
      // whole distance: a bucket holds at most k entries
      group.length = 0
      lead.length = 0
      for (let i = s.entriesStart(b); i < s.entriesEnd(b); i++) {
        const contact = s.contacts[i]
        if (exclude != null && exclude(contact)) {
          continue
        }
        const key = contact.key
        const d = (((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) ^ t0) >>> 0
        let j = group.length
        while (j > 0 && (lead[j - 1] > d || (lead[j - 1] === d && compareDistance(group[j - 1].key, key, target) > 0))) {
          group[j] = group[j - 1]
          lead[j] = lead[j - 1]
          j--
        }
        group[j] = contact
        lead[j] = d
      }
      for (let i = 0; i < group.length && out.length < n; i++) {
        out.push(group[i])
      }
    }
    const xBit = (j: number): number => ((self[j >> 3] ^ target[j >> 3]) >> (7 - (j & 7))) & 1
    const last = s.bucketCount - 1
    if (c <= last) {
      take(c)
    }
    for (let j = c + 1; j <= last && out.length < n; j++) {
      if (xBit(j) === 1) {
        take(j)
      }
    }
    for (let j = last; j > c && out.length < n; j--) {
      if (xBit(j) === 0) {
        take(j)
      }
    }
    for (let b = Math.min(c, last + 1) - 1; b >= 0 && out.length < n; b--) {
      take(b)
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
    const s = this.slots
    let c = 0
    while (c < KEY_BITS && s.entryCount(c) >= this.config.k) {
      c++
    }
    let known = 1 // ourselves
    for (let i = c; i < s.bucketCount; i++) {
      known += s.entryCount(i)
    }
    return this.count === 0 ? 0 : known * Math.pow(2, c)
  }

  /** A lookup for `target` ran: the bucket it falls in counts as refreshed */
  markRefreshed (target: Key, now: Millis): void {
    const cpl = commonPrefixLength(this.self, target)
    if (cpl < this.lastRefreshed.length) {
      this.lastRefreshed[cpl] = now
    }
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

  /** The deepest common prefix length a refresh covers: min(deepest non-empty bucket, maxRefreshCpl) */
  get refreshDepth (): number {
    return this.maxRefreshCpl()
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
    let deepest = this.slots.bucketCount - 1
    while (deepest > 0 && this.slots.entryCount(deepest) === 0) {
      deepest--
    }
    return Math.min(Math.max(deepest, 0), this.config.maxRefreshCpl)
  }

  private snapshot (i: number, cpl: number, replacement: boolean): EntrySnapshot {
    const s = this.slots
    const contact = s.contacts[i]
    return { id: contact.id, key: contact.key, cpl, lastSeen: s.lastSeen(i), failures: s.failures(i), replacement, unproven: s.unproven(i) }
  }

  /** Ends the ping or verify of `id`; false when none was in flight */
  private unping (id: string): boolean {
    const at = this.pinging.indexOf(id)
    if (at < 0) {
      return false
    }
    this.pinging.splice(at, 1)
    return true
  }

  private allows (group: string | undefined, cpl: number): boolean {
    return group == null || this.diversity == null || this.diversity.allows(group, cpl)
  }

  private counted (group: string | undefined, cpl: number, replacement: boolean, added: boolean): void {
    if (group == null) {
      return
    }
    this.diversity ??= new Diversity(this.config.maxPerGroupPerBucket, this.config.maxPerGroupPerTable)
    if (added) {
      this.diversity.added(group, cpl, replacement)
    } else {
      this.diversity.removed(group, cpl, replacement)
    }
  }

  /** Lower is worse: (quality value, then recency) */
  private worse (a: number, b: number, now: Millis): number {
    const s = this.slots
    return this.compare(s.contacts[a].id, s.lastSeen(a), s.contacts[b].id, s.lastSeen(b), now)
  }

  private compare (a: string, seenA: Millis, b: string, seenB: Millis, now: Millis): number {
    const va = this.quality.value(a, now)
    const vb = this.quality.value(b, now)
    if (va !== vb) {
      return va - vb
    }
    return seenA - seenB
  }

  /**
   * Adds `contact` to bucket `cpl`'s replacements and returns its slot; -1
   * when it is no better than anything waiting.
   */
  private addReplacement (cpl: number, contact: Contact, now: Millis, unproven: boolean): number {
    const s = this.slots
    if (this.config.replacements === 0 || !(contact.group == null || this.diversity == null || this.diversity.allowsReplacement(contact.group, cpl))) {
      return -1
    }
    if (s.replacementCount(cpl) >= this.config.replacements) {
      let worst = s.entriesEnd(cpl)
      for (let r = worst + 1; r < s.replacementsEnd(cpl); r++) {
        if (this.worse(r, worst, now) < 0) {
          worst = r
        }
      }
      if (this.compare(contact.id, now, s.contacts[worst].id, s.lastSeen(worst), now) <= 0) {
        return -1 // the newcomer is no better than anything waiting
      }
      const dropped = s.contacts[worst].id
      this.dropReplacement(cpl, worst)
      this.unping(dropped)
    }
    this.counted(contact.group, cpl, true, true)
    return s.insert(cpl, true, contact, now, 0, unproven)
  }

  private dropReplacement (cpl: number, i: number): void {
    this.counted(this.slots.contacts[i].group, cpl, true, false)
    this.slots.remove(i)
  }

  private admit (cpl: number, contact: Contact, lastSeen: Millis, failures: number): RoutingTableEffect[] {
    this.slots.insert(cpl, false, contact, lastSeen, failures, false)
    this.counted(contact.group, cpl, false, true)
    this.count++
    return [{ type: 'peer-added', peer: contact }]
  }

  /** Moves replacement `i` of bucket `cpl` to the end of its entries */
  private promote (cpl: number, i: number): RoutingTableEffect[] {
    const s = this.slots
    const contact = s.contacts[i]
    const lastSeen = s.lastSeen(i)
    const failures = s.failures(i)
    this.dropReplacement(cpl, i)
    return this.admit(cpl, contact, lastSeen, failures)
  }

  /**
   * Sends unproven replacement `i` a `verify` when proving it would let it
   * in: its bucket has room or holds a questionable entry. Bounded by
   * `maxPendingPings`.
   */
  private verifyIfRoom (cpl: number, i: number, now: Millis): RoutingTableEffect[] {
    const s = this.slots
    const contact = s.contacts[i]
    if (this.pinging.includes(contact.id) || this.pinging.length >= this.config.maxPendingPings) {
      return []
    }
    if (s.entryCount(cpl) >= this.config.k && !this.anyQuestionable(cpl, now)) {
      return []
    }
    this.pinging.push(contact.id)
    return [{ type: 'verify', peer: contact }]
  }

  private anyQuestionable (cpl: number, now: Millis): boolean {
    for (let e = this.slots.entriesStart(cpl); e < this.slots.entriesEnd(cpl); e++) {
      if (this.questionable(e, now)) {
        return true
      }
    }
    return false
  }

  private questionable (i: number, now: Millis): boolean {
    const s = this.slots
    return s.failures(i) > 0 || now - s.lastSeen(i) >= this.config.staleAfter || this.quality.backedOff(s.contacts[i].id, now)
  }

  private maybeEvict (cpl: number, now: Millis): RoutingTableEffect[] {
    const s = this.slots
    let candidate = -1
    for (let e = s.entriesStart(cpl); e < s.entriesEnd(cpl); e++) {
      if (this.pinging.includes(s.contacts[e].id) || !this.questionable(e, now)) {
        continue
      }
      if (candidate < 0 || this.worse(e, candidate, now) < 0) {
        candidate = e
      }
    }
    if (candidate < 0) {
      return []
    }
    if (s.failures(candidate) >= this.config.maxFailures) {
      return this.evict(cpl, candidate, 'failed', now)
    }
    if (s.failures(candidate) === 0 && this.quality.backedOff(s.contacts[candidate].id, now)) {
      // held back with no failure of ours: its connection broke (the peer
      // stack's suspicion), so a ping would dial a peer that most likely
      // went away, a full dial timeout for a tarpit. A proven replacement
      // is waiting: it takes the place, no dial
      return this.evict(cpl, candidate, 'held', now)
    }
    if (this.pinging.length >= this.config.maxPendingPings) {
      return []
    }
    const peer = s.contacts[candidate]
    this.pinging.push(peer.id)
    return [{ type: 'ping', peer }]
  }

  private evict (cpl: number, i: number, reason: 'failed' | 'ping-failed' | 'held' | 'removed', now: Millis): RoutingTableEffect[] {
    const s = this.slots
    const gone = s.contacts[i]
    this.counted(gone.group, cpl, false, false)
    s.remove(i)
    this.count--
    const effects: RoutingTableEffect[] = [{ type: 'peer-removed', peer: gone, reason }]
    let best = -1
    let bestUnproven = -1
    for (let r = s.entriesEnd(cpl); r < s.replacementsEnd(cpl); r++) {
      if (s.unproven(r)) {
        if (!this.pinging.includes(s.contacts[r].id) && (bestUnproven < 0 || this.worse(r, bestUnproven, now) > 0)) {
          bestUnproven = r
        }
      } else if (this.allows(s.contacts[r].group, cpl) && (best < 0 || this.worse(r, best, now) > 0)) {
        best = r
      }
    }
    if (best >= 0) {
      effects.push(...this.promote(cpl, best))
    } else if (bestUnproven >= 0 && this.pinging.length < this.config.maxPendingPings) {
      const peer = s.contacts[bestUnproven]
      this.pinging.push(peer.id)
      effects.push({ type: 'verify', peer })
    }
    return effects
  }
}
