/**
 * Durability rules: the three ways Kademlia keeps a record near its key
 * while the nodes that hold it come and go, as pure decisions both drivers
 * (the libp2p adapter and the simulator) run.
 *
 * 1. **Handover to a new closer peer** (`handsOver`). When a peer enters our
 * routing table, a record we hold goes to it if the peer is among the k
 * closest to the record's key that we know (counting it) and we are closer
 * to the key than every other peer we know: of the nodes that learn the
 * newcomer, only the one nearest the key sends, not all k holders (the
 * original paper's rule that keeps handover from costing k copies).
 * `senders` widens it to our rank among the holders we know (1: only the
 * nearest; 2: the two nearest, and so on).
 * 2. **Store on get** (`cacheTarget`). After a get, the closest peer that
 * answered without the record gets the best one.
 * 3. **Hourly re-publish of held values** (`heldRepublishDue`). A value we
 * hold is put again to the k closest once `heldRepublishInterval` has
 * passed since anyone else stored it with us and since we last did so
 * ourselves: when one holder re-publishes, the others see a fresh store
 * and skip, so a value costs about one re-publish per interval across the
 * network rather than one per holder.
 *
 * {@link HandoverQueue} holds the records chosen for handover until a rate
 * lets them out, one batch per peer. Events: `offer(peer, keys, now)`;
 * effects: `take(now)` returns the next batch allowed; `nextAt(now)` says
 * when the next one will be. Capacity: at most `maxHandoverPeers` peers with
 * a batch waiting (a new peer beyond that is refused: `offer` returns the
 * keys it could not take), `maxHandoverKeys` keys waiting in all (the rest
 * refused the same way), `maxHandoverBatch` keys per batch; records leave
 * at `handoverRate` per minute (a token bucket holding one batch).
 */
import { compareDistance } from '../key.ts'
import { checkRange, InvalidConfigError, stripUndefined } from '../routing-table/config.ts'
import type { Contact } from '../contact.ts'
import type { Millis } from '../env.ts'
import type { Key } from '../key.ts'

export interface DurabilityConfig {
  /**
   * Hand the records we hold to a peer newly admitted to the routing table
   * when it is among their key's k closest we know and we are the nearest
   * holder (see `handoverSenders`).
   *
   * @default true
   */
  handover: boolean
  /**
   * How many of the nearest holders (ourselves counted among what our table
   * knows) send a record to a newcomer.
   *
   * @default 1 (range 1..20)
   */
  handoverSenders: number
  /**
   * Records handed over per minute, all peers together.
   *
   * @default 600 (range 1..1 000 000)
   */
  handoverRate: number
  /**
   * Records waiting for handover, all peers together; beyond it a record is
   * not handed over (it still reaches the newcomer at its next republish).
   *
   * @default 10 000 (range 1..1 000 000)
   */
  maxHandoverKeys: number
  /**
   * Peers with a handover batch waiting.
   *
   * @default 64 (range 1..10 000)
   */
  maxHandoverPeers: number
  /**
   * Records sent to one peer in one batch (one stream).
   *
   * @default 100 (range 1..10 000)
   */
  maxHandoverBatch: number
  /**
   * After a get, store the best record at the closest peer that answered
   * without it (peers that returned an outdated one are always corrected).
   *
   * @default true
   */
  storeOnGet: boolean
  /**
   * Re-publish values held (ours and others') every
   * `heldRepublishInterval` unless someone else stored them with us within
   * it.
   *
   * @default true
   */
  heldRepublish: boolean
  /**
   * @default 3 600 000 (1 hour; range 60 000..86 400 000)
   */
  heldRepublishInterval: Millis
}

export function defaultDurabilityConfig (): DurabilityConfig {
  return {
    handover: true,
    handoverSenders: 1,
    handoverRate: 600,
    maxHandoverKeys: 10_000,
    maxHandoverPeers: 64,
    maxHandoverBatch: 100,
    storeOnGet: true,
    heldRepublish: true,
    heldRepublishInterval: 3_600_000
  }
}

/**
 * Holders look for due values this many times per `heldRepublishInterval`
 * (every 10 minutes by default), each at a phase of its own: a lost copy is
 * back within the interval and a sixth, and the first holder to find a value
 * due re-publishes it before the others look
 */
export const HELD_SWEEPS_PER_INTERVAL = 6

/** Throws InvalidConfigError for anything out of range */
export function validateDurabilityConfig (partial: Partial<DurabilityConfig> = {}): DurabilityConfig {
  const c = { ...defaultDurabilityConfig(), ...stripUndefined(partial) }
  for (const flag of ['handover', 'storeOnGet', 'heldRepublish'] as const) {
    if (typeof c[flag] !== 'boolean') {
      throw new InvalidConfigError(`durability.${flag} must be a boolean, got ${String(c[flag])}`)
    }
  }
  checkRange('durability.handoverSenders', c.handoverSenders, 1, 20)
  checkRange('durability.handoverRate', c.handoverRate, 1, 1_000_000)
  checkRange('durability.maxHandoverKeys', c.maxHandoverKeys, 1, 1_000_000)
  checkRange('durability.maxHandoverPeers', c.maxHandoverPeers, 1, 10_000)
  checkRange('durability.maxHandoverBatch', c.maxHandoverBatch, 1, 10_000)
  checkRange('durability.heldRepublishInterval', c.heldRepublishInterval, 60_000, 86_400_000, false)
  return c
}

/**
 * Whether a record under `key` that we (`self`) hold goes to `peer`, just
 * admitted: `known` are the k closest to `key` in our table, nearest first,
 * `peer` and we left out. Yes when `peer` is among the k closest to `key`
 * of everyone we know, ourselves included (fewer than k of them are
 * nearer), and fewer than `senders` of the known peers are nearer to `key`
 * than we are.
 */
export function handsOver (self: Key, peer: Key, key: Key, known: readonly Contact[], k: number, senders = 1): boolean {
  // the newcomer must be among the k closest of everyone we know, ourselves included
  let ahead = compareDistance(self, peer, key) < 0 ? 1 : 0
  for (const c of known) {
    if (compareDistance(c.key, peer, key) >= 0) {
      break
    }
    ahead++
  }
  if (ahead >= k) {
    return false
  }
  let nearer = 0
  for (const c of known) {
    if (compareDistance(c.key, self, key) >= 0) {
      break
    }
    if (++nearer >= senders) {
      return false
    }
  }
  return true
}

/**
 * The peer a get stores its best record at: the closest to `key` of
 * `answered` (peers that answered the lookup) that is not in `holders`
 * (those that returned a record, current or outdated); undefined if none.
 */
export function cacheTarget<C extends Contact> (key: Key, answered: readonly C[], holders: ReadonlySet<string>): C | undefined {
  let best: C | undefined
  for (const c of answered) {
    if (!holders.has(c.id) && (best == null || compareDistance(c.key, best.key, key) < 0)) {
      best = c
    }
  }
  return best
}

/**
 * Whether a held value is due for re-publishing at `now`: nobody stored it
 * with us for `interval` (`received` is the last time one did), nor did we
 * re-publish it ourselves within `interval` (`republished`; undefined:
 * never).
 */
export function heldRepublishDue (received: Millis, republished: Millis | undefined, now: Millis, interval: Millis): boolean {
  return now - received >= interval && (republished == null || now - republished >= interval)
}

/** A batch of records for one peer */
export interface HandoverBatch<K> {
  peer: string
  keys: K[]
}

/**
 * Records waiting to be handed over, one batch per peer, released at a
 * rate (see the file comment for the bounds). Generic in the key type so
 * the adapter queues datastore keys and the simulator its own.
 */
export class HandoverQueue<K> {
  private readonly config: DurabilityConfig
  private readonly pending = new Map<string, K[]>()
  private waiting = 0
  private tokens: number
  private updatedAt: Millis
  /** records refused at a bound, since construction */
  refused = 0

  constructor (config: Partial<DurabilityConfig>, now: Millis) {
    this.config = validateDurabilityConfig(config)
    this.tokens = this.config.maxHandoverBatch
    this.updatedAt = now
  }

  /** Records waiting in all */
  get size (): number {
    return this.waiting
  }

  /** Peers with records waiting */
  get peers (): number {
    return this.pending.size
  }

  /** Queues `keys` for `peer`; returns how many were refused at a bound */
  offer (peer: string, keys: readonly K[], now: Millis): number {
    void now
    if (keys.length === 0) {
      return 0
    }
    let list = this.pending.get(peer)
    if (list == null) {
      if (this.pending.size >= this.config.maxHandoverPeers) {
        this.refused += keys.length
        return keys.length
      }
      list = []
      this.pending.set(peer, list)
    }
    const room = Math.max(0, this.config.maxHandoverKeys - this.waiting)
    const taken = keys.slice(0, room)
    list.push(...taken)
    this.waiting += taken.length
    if (list.length === 0) {
      this.pending.delete(peer)
    }
    const refused = keys.length - taken.length
    this.refused += refused
    return refused
  }

  /** Forgets what waits for `peer` (it left the table) */
  drop (peer: string): void {
    const list = this.pending.get(peer)
    if (list != null) {
      this.waiting -= list.length
      this.pending.delete(peer)
    }
  }

  /**
   * The next batch the rate allows at `now` (the peer that has waited
   * longest, up to `maxHandoverBatch` of its records, no more than the
   * tokens available); undefined when nothing waits or no token is left.
   */
  take (now: Millis): HandoverBatch<K> | undefined {
    this.refill(now)
    const first = this.pending.entries().next()
    if (first.done === true || this.tokens < 1) {
      return undefined
    }
    const [peer, list] = first.value
    const n = Math.min(list.length, this.config.maxHandoverBatch, Math.floor(this.tokens))
    const keys = list.splice(0, n)
    this.tokens -= n
    this.waiting -= n
    this.pending.delete(peer)
    if (list.length > 0) {
      // what is left goes to the back of the line
      this.pending.set(peer, list)
    }
    return { peer, keys }
  }

  /** When `take` will next return a batch (undefined: nothing waits) */
  nextAt (now: Millis): Millis | undefined {
    if (this.waiting === 0) {
      return undefined
    }
    this.refill(now)
    return this.tokens >= 1 ? now : now + Math.ceil((1 - this.tokens) * 60_000 / this.config.handoverRate)
  }

  private refill (now: Millis): void {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.config.maxHandoverBatch, this.tokens + (now - this.updatedAt) * this.config.handoverRate / 60_000)
      this.updatedAt = now
    }
  }
}
