/**
 * Compact storage for a routing table's entries: parallel typed arrays,
 * bucket by bucket, so an entry costs about 24 bytes (a contact reference,
 * when it was last seen, an id hash and a flags word) instead of an object, a
 * map entry and an array slot (about 145 bytes). A simulator holds a table per node,
 * a million of them (issue #13); the libp2p adapter holds one.
 *
 * Layout: slots `[0, used)` hold every bucket's entries and replacements in
 * bucket order. Bucket `c`'s entries are `[bounds[2c], bounds[2c+1])` and its
 * replacements `[bounds[2c+1], bounds[2c+2])`; buckets at or beyond
 * `tracked` are empty and sit at `used`. Inserting or removing shifts the
 * slots after it (a few hundred at most, a memmove) and moves the later
 * bounds by one; order within a bucket's entries and within its replacements
 * is insertion order.
 *
 * Capacity: grows by a quarter at a time up to what the table admits (at
 * most 257 x (k + replacements) slots); never shrinks.
 */
import type { Contact } from '../contact.ts'
import type { Millis } from '../env.ts'

const UNPROVEN = 1
const FAILURE_SHIFT = 1
const MAX_FAILURES = 0xffff

/** A 32-bit FNV-1a hash of a string's UTF-16 code units */
export function idHash (id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) {
    h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  }
  return h | 0
}

export class Slots {
  /** The contact in each slot */
  readonly contacts: Contact[] = []
  /** lastSeen per slot */
  private times = new Float64Array(0)
  /** id hash, (failures << 1) | unproven per slot */
  private ints = new Int32Array(0)
  private bounds = new Int32Array(1)
  private tracked = 0

  get used (): number {
    return this.contacts.length
  }

  /** Buckets that have ever been used (higher ones are empty) */
  get bucketCount (): number {
    return this.tracked
  }

  entriesStart (c: number): number {
    return c < this.tracked ? this.bounds[2 * c] : this.used
  }

  entriesEnd (c: number): number {
    return c < this.tracked ? this.bounds[2 * c + 1] : this.used
  }

  replacementsEnd (c: number): number {
    return c < this.tracked ? this.bounds[2 * c + 2] : this.used
  }

  entryCount (c: number): number {
    return this.entriesEnd(c) - this.entriesStart(c)
  }

  replacementCount (c: number): number {
    return this.replacementsEnd(c) - this.entriesEnd(c)
  }

  /** Makes bucket `c` (and every shallower one) tracked */
  track (c: number): void {
    if (c < this.tracked) {
      return
    }
    const bounds = new Int32Array(2 * (c + 1) + 1)
    bounds.set(this.bounds.subarray(0, 2 * this.tracked + 1))
    bounds.fill(this.used, 2 * this.tracked + 1)
    this.bounds = bounds
    this.tracked = c + 1
  }

  /** The bucket slot `i` belongs to */
  bucketOf (i: number): number {
    let lo = 0
    let hi = this.tracked - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.bounds[2 * mid] <= i) {
        lo = mid
      } else {
        hi = mid - 1
      }
    }
    // empty buckets share their start with the next non-empty one
    while (lo + 1 < this.tracked && this.bounds[2 * (lo + 1)] <= i) {
      lo++
    }
    return lo
  }

  isReplacement (i: number, c: number): boolean {
    return i >= this.bounds[2 * c + 1]
  }

  /** The slot holding `id` within `[from, to)`, or -1 */
  find (id: string, from = 0, to = this.used): number {
    const h = idHash(id)
    const ints = this.ints
    for (let i = from; i < to; i++) {
      if (ints[2 * i] === h && this.contacts[i].id === id) {
        return i
      }
    }
    return -1
  }

  lastSeen (i: number): Millis {
    return this.times[i]
  }

  setLastSeen (i: number, now: Millis): void {
    this.times[i] = now
  }

  failures (i: number): number {
    return this.ints[2 * i + 1] >>> FAILURE_SHIFT
  }

  setFailures (i: number, n: number): void {
    this.ints[2 * i + 1] = (Math.min(n, MAX_FAILURES) << FAILURE_SHIFT) | (this.ints[2 * i + 1] & UNPROVEN)
  }

  unproven (i: number): boolean {
    return (this.ints[2 * i + 1] & UNPROVEN) !== 0
  }

  setUnproven (i: number, unproven: boolean): void {
    this.ints[2 * i + 1] = (this.ints[2 * i + 1] & ~UNPROVEN) | (unproven ? UNPROVEN : 0)
  }

  /**
   * Adds `contact` at the end of bucket `c`'s entries (or its replacements)
   * and returns its slot.
   */
  insert (c: number, replacement: boolean, contact: Contact, lastSeen: Millis, failures: number, unproven: boolean): number {
    this.track(c)
    const boundary = 2 * c + (replacement ? 2 : 1)
    const at = this.bounds[boundary]
    const used = this.used
    this.reserve(used + 1)
    this.times.copyWithin(at + 1, at, used)
    this.ints.copyWithin(2 * at + 2, 2 * at, 2 * used)
    this.contacts.splice(at, 0, contact)
    for (let j = boundary; j <= 2 * this.tracked; j++) {
      this.bounds[j]++
    }
    this.times[at] = lastSeen
    this.ints[2 * at] = idHash(contact.id)
    this.ints[2 * at + 1] = (Math.min(failures, MAX_FAILURES) << FAILURE_SHIFT) | (unproven ? UNPROVEN : 0)
    return at
  }

  /** Removes slot `i`; later slots move down by one */
  remove (i: number): void {
    const used = this.used
    this.times.copyWithin(i, i + 1, used)
    this.ints.copyWithin(2 * i, 2 * i + 2, 2 * used)
    this.contacts.splice(i, 1)
    for (let j = 0; j <= 2 * this.tracked; j++) {
      if (this.bounds[j] > i) {
        this.bounds[j]--
      }
    }
  }

  private reserve (n: number): void {
    if (n <= this.times.length) {
      return
    }
    // grow by a quarter (at least 16 slots): at most a fifth stays unused
    const capacity = Math.max(n, this.times.length + Math.max(16, this.times.length >> 2))
    const times = new Float64Array(capacity)
    times.set(this.times)
    this.times = times
    const ints = new Int32Array(2 * capacity)
    ints.set(this.ints)
    this.ints = ints
  }
}
