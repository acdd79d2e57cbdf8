/**
 * Where a record goes once the lookup for its key has finished: to the k
 * closest peers that answered, at once; each delivery that fails is replaced
 * by the next spare (the next closest peer that answered), so the record
 * still lands near the key when some of the closest do not take it.
 *
 * A put reports success once `quorum` peers hold the record; the driver
 * decides how long to wait for the rest. This class only keeps the count
 * and the order: it does no I/O and reads no clock, so the libp2p adapter
 * (`src/libp2p/content.ts`) and the simulator (`src/sim/records.ts`) run the
 * same placement rules.
 *
 * Optimistic placement (`FanOut.optimistic(quorum)`, see optimistic.ts):
 * before the lookup has finished, `early(peer)` admits deliveries to peers
 * that answered and are already very likely among the k closest; they count
 * towards the quorum like any other. When the lookup finishes, `plan(closest,
 * spares)` sets the true targets and `start()` returns those not tried yet,
 * so the record still lands on the k closest the lookup found.
 *
 * Bounds: at most `closest.length` deliveries in flight at once (plus at most
 * `maxEarly` early ones), and at most `closest.length + spares.length +
 * maxEarly` attempts in all.
 */
import type { Contact } from '../contact.ts'

export class FanOut<C extends Pick<Contact, 'id'> = Contact> {
  quorum: number
  private closest: readonly C[]
  private spares: C[]
  private readonly inFlight = new Set<string>()
  /** early deliveries (optimistic placement), by peer id */
  private readonly tried = new Set<string>()
  private maxEarly: number
  private planned: boolean
  private storedCount = 0
  private failedCount = 0
  private started = false

  /**
   * @param closest - the k closest peers that answered the lookup, nearest first
   * @param spares - peers that answered beyond them, nearest first
   * @param quorum - peers that must hold the record for the put to succeed (capped at `closest.length`)
   */
  constructor (closest: readonly C[], spares: readonly C[], quorum: number) {
    if (!Number.isInteger(quorum) || quorum < 1) {
      throw new RangeError(`quorum must be a positive integer, got ${quorum}`)
    }
    this.closest = closest
    this.spares = spares.filter(s => !closest.some(c => c.id === s.id))
    this.quorum = Math.min(quorum, closest.length)
    this.maxEarly = 0
    this.planned = true
  }

  /**
   * A fan-out whose targets are not known yet: `early()` deliveries until
   * `plan()` (at most `maxEarly` of them, default 2 x quorum).
   */
  static optimistic<C extends Pick<Contact, 'id'>> (quorum: number, maxEarly = 2 * quorum): FanOut<C> {
    const f = new FanOut<C>([], [], quorum)
    f.quorum = quorum
    f.maxEarly = maxEarly
    f.planned = false
    return f
  }

  /**
   * Before `plan()`: whether to deliver to `peer` now. True at most once per
   * peer and `maxEarly` times in all; the delivery is then in flight and its
   * outcome goes to `result()` as usual.
   */
  early (peer: C): boolean {
    if (this.planned || this.tried.has(peer.id) || this.tried.size >= this.maxEarly) {
      return false
    }
    this.tried.add(peer.id)
    this.inFlight.add(peer.id)
    return true
  }

  /** Early deliveries made */
  get earlyCount (): number {
    return this.tried.size
  }

  /**
   * The lookup finished: `closest` and `spares` as for the constructor.
   * Peers already tried early are not tried again; the quorum is capped at
   * the targets known (closest plus early).
   */
  plan (closest: readonly C[], spares: readonly C[]): void {
    if (this.planned) {
      return
    }
    this.planned = true
    this.closest = closest.filter(c => !this.tried.has(c.id))
    this.spares = spares.filter(s => !this.tried.has(s.id) && !closest.some(c => c.id === s.id))
    this.quorum = Math.min(this.quorum, closest.length + [...this.tried].filter(id => !closest.some(c => c.id === id)).length)
  }

  /** The first deliveries: every one of the closest not tried early (once, after `plan()`) */
  start (): C[] {
    if (this.started || !this.planned) {
      return []
    }
    this.started = true
    for (const c of this.closest) {
      this.inFlight.add(c.id)
    }
    return [...this.closest]
  }

  /**
   * The outcome of the delivery to `peer`. Returns the spare to try next
   * when it failed and one is left (and `replace` is true: an aborted put
   * tries no more), else undefined.
   */
  result (peer: C, stored: boolean, replace = true): C | undefined {
    if (!this.inFlight.delete(peer.id)) {
      return undefined
    }
    if (stored) {
      this.storedCount++
      return undefined
    }
    this.failedCount++
    const next = replace ? this.spares.shift() : undefined
    if (next != null) {
      this.inFlight.add(next.id)
    }
    return next
  }

  /** Peers that took the record so far */
  get stored (): number {
    return this.storedCount
  }

  /** Deliveries that failed so far */
  get failed (): number {
    return this.failedCount
  }

  /** Enough peers hold the record to report success */
  get quorumReached (): boolean {
    return (this.started || this.tried.size > 0) && this.storedCount >= this.quorum && this.quorum > 0
  }

  /** No delivery is in flight now (early ones included); more may start when the lookup ends */
  get idle (): boolean {
    return this.inFlight.size === 0
  }

  /** Every attempt has ended and no spare is being tried */
  get settled (): boolean {
    return this.started && this.inFlight.size === 0
  }

  /** Spares not tried yet */
  get sparesLeft (): number {
    return this.spares.length
  }
}
