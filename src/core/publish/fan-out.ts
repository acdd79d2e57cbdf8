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
 * Bounds: at most `closest.length` deliveries in flight at once, and at most
 * `closest.length + spares.length` attempts in all.
 */
import type { Contact } from '../contact.ts'

export class FanOut<C extends Pick<Contact, 'id'> = Contact> {
  readonly quorum: number
  private readonly closest: readonly C[]
  private readonly spares: C[]
  private readonly inFlight = new Set<string>()
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
  }

  /** The first deliveries: every one of the closest (once) */
  start (): C[] {
    if (this.started) {
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
    return this.started && this.storedCount >= this.quorum && this.quorum > 0
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
