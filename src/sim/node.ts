/**
 * One simulated node: a real `Coordinator` plus the little state a driver
 * keeps around it (open connections, when its next maintenance tick is due).
 *
 * The node does not run anything itself; `world.ts` delivers events to its
 * coordinator and carries out the effects.
 *
 * Connections: `connections` maps a peer's index to the virtual time from
 * which the connection is usable (a dial in progress has a time in the
 * future). It is kept in least-recently-used order (a use re-inserts the
 * key) and bounded by `maxConnections`; `touch` returns the peer it evicted
 * so the world can close the other side as well.
 */
import { NEUTRAL_QUALITY } from '../core/contact.ts'
import { Coordinator } from '../core/coordinator.ts'
import { DEFAULT_RECORD_TTL, RecordStore } from './store.ts'
import type { Contact } from '../core/contact.ts'
import type { CoordinatorConfig } from '../core/coordinator.ts'
import type { Millis, Random } from '../core/env.ts'
import type { PeerStack } from '../core/peer-stack/index.ts'

/** A contact that also carries its node index in the simulation */
export interface SimContact extends Contact {
  readonly index: number
}

export class SimNode {
  readonly index: number
  readonly contact: SimContact
  readonly coordinator: Coordinator
  /** The node's priority peer stack, when the world runs with one */
  readonly stack?: PeerStack
  /** When the currently scheduled tick is due (Infinity: none scheduled) */
  tickAt: Millis = Infinity
  /** Dials this node made to undialable nodes, all purposes (lookups, refresh, verifies, records) */
  undialableDials = 0
  private readonly maxConnections: number
  private connections: Map<number, Millis> | undefined
  private recordStore: RecordStore | undefined
  /** How long records stay valid in this node's store (set by the world before the first record) */
  recordTtl: Millis = DEFAULT_RECORD_TTL

  constructor (contact: SimContact, config: Partial<CoordinatorConfig>, random: Random, now: Millis, maxConnections: number, stack?: PeerStack) {
    this.index = contact.index
    this.contact = contact
    this.stack = stack
    this.coordinator = new Coordinator({ id: contact.id, key: contact.key }, config, random, now, stack ?? NEUTRAL_QUALITY)
    this.maxConnections = maxConnections
  }

  /** The records other nodes stored here; undefined until the first one */
  get records (): RecordStore | undefined {
    return this.recordStore
  }

  /** The record store, created on first use */
  get store (): RecordStore {
    this.recordStore ??= new RecordStore(undefined, undefined, this.recordTtl)
    return this.recordStore
  }

  /** When the connection to `peer` is (or becomes) usable; undefined when there is none */
  connectedAt (peer: number): Millis | undefined {
    return this.connections?.get(peer)
  }

  /** Number of open (or opening) connections */
  get connectionCount (): number {
    return this.connections?.size ?? 0
  }

  /**
   * Records a use of (or a new) connection to `peer`, usable from `readyAt`.
   * Returns the least recently used peer it closed to stay within the bound.
   */
  touch (peer: number, readyAt: Millis): number | undefined {
    if (this.connections == null) {
      this.connections = new Map()
    }
    const known = this.connections.get(peer)
    this.connections.delete(peer)
    this.connections.set(peer, known ?? readyAt)
    if (this.connections.size > this.maxConnections) {
      const oldest = this.connections.keys().next().value as number
      this.connections.delete(oldest)
      return oldest
    }
    return undefined
  }

  /** Forgets the connection to `peer` (the other side closed it) */
  disconnect (peer: number): void {
    this.connections?.delete(peer)
  }
}
