/**
 * The durability rules on the simulated network, run through the core's
 * decisions (`src/core/publish/durability.ts`), as the adapter runs them
 * (`src/libp2p/durability.ts`):
 *
 * - handover: when `peer` enters `node`'s table, every record `node` holds
 * whose key `handsOver` says so is queued in the node's `HandoverQueue`
 * and sent at its rate. `handover: 'own'` is what the wire allows (values,
 * and provider records naming the sender itself: receivers accept
 * ADD_PROVIDER only for the sender's own id); `'any'` also hands over
 * provider records held for others, a what-if no deployed receiver would
 * accept;
 * - store on get: `afterGet` stores the best value at the closest peer that
 * answered without one (`cacheTarget`) and corrects those that returned an
 * older one (the latter always, as the adapter does);
 * - held re-publish: every node sweeps its values `HELD_SWEEPS_PER_INTERVAL`
 * times per `heldRepublishInterval`, at a phase of its own, and re-publishes (lookup,
 * then `FanOut` deliveries, by the records scenario) each one
 * `heldRepublishDue` says is due.
 *
 * Messages each rule sent are counted in `cost` (handover: records sent;
 * store on get and corrections: PUT_VALUE sent; held re-publish: the
 * lookups' requests and the deliveries, added by the records scenario).
 *
 * Bounds: one `HandoverQueue` per node that handed over (bounded as the
 * core says), one step queued per such node; one sweep step queued at a
 * time, none past the run's end; `republished` about one entry per value a
 * node holds (pruned once it holds more entries than the store has keys).
 */
import { cacheTarget, handsOver, heldRepublishDue, HandoverQueue, HELD_SWEEPS_PER_INTERVAL, validateDurabilityConfig } from '../core/publish/durability.ts'
import { hash32 } from './hash.ts'
import { storeKey } from './store.ts'
import type { World } from './world.ts'
import type { Contact } from '../core/contact.ts'
import type { Millis } from '../core/env.ts'
import type { Key } from '../core/key.ts'
import type { DurabilityConfig } from '../core/publish/durability.ts'

export interface SimDurabilityOptions extends Omit<DurabilityConfig, 'handover'> {
  /** 'own': what the wire allows; 'any': provider records of others too (a what-if); 'off' */
  handover: 'off' | 'own' | 'any'
}

export function validateSimDurability (partial: Partial<SimDurabilityOptions> = {}): SimDurabilityOptions {
  const handover = partial.handover ?? 'own'
  if (handover !== 'off' && handover !== 'own' && handover !== 'any') {
    throw new RangeError(`handover must be off, own or any, got ${String(handover)}`)
  }
  return { ...validateDurabilityConfig({ ...partial, handover: handover !== 'off' }), handover }
}

/** Everything off: the records scenario's behaviour before the durability rules */
export const DURABILITY_OFF: Partial<SimDurabilityOptions> = { handover: 'off', storeOnGet: false, heldRepublish: false }

type Item = { kind: 'provider', key: Key, provider: number } | { kind: 'value', key: Key, seq: number }

export interface DurabilityCost {
  handover: number
  storeOnGet: number
  corrections: number
  heldRepublish: number
  /** held re-publishes started */
  heldRepublishes: number
  /** records a full handover queue refused */
  handoverRefused: number
}

const MINUTE = 60_000
/** Salt of the nodes' sweep phases */
const SALT_SWEEP = 0x73776570

export class SimDurability {
  readonly options: SimDurabilityOptions
  readonly cost: DurabilityCost = { handover: 0, storeOnGet: 0, corrections: 0, heldRepublish: 0, heldRepublishes: 0, handoverRefused: 0 }
  private readonly world: World
  private readonly k: number
  private readonly queues = new Map<number, { queue: HandoverQueue<Item>, wakeAt: Millis }>()
  /** node -> store key -> when it last re-published that value itself */
  private readonly republished = new Map<number, Map<string, Millis>>()
  private readonly republish: (node: number, key: Key, seq: number) => void

  constructor (world: World, options: Partial<SimDurabilityOptions>, k: number, republish: (node: number, key: Key, seq: number) => void) {
    this.world = world
    this.options = validateSimDurability(options)
    this.k = k
    this.republish = republish
  }

  private end: Millis = Infinity

  /** Starts the sweeps (held re-publish) from `at`, the last before `end` */
  start (at: Millis, end: Millis = Infinity): void {
    this.end = end
    if (this.options.heldRepublish) {
      this.world.at(at + MINUTE, 'held-sweep', () => { this.sweep() })
    }
  }

  onPeerAdded (node: number, peer: number): void {
    if (this.options.handover === 'off') {
      return
    }
    const n = this.world.node(node)
    const store = n.records
    if (store == null || store.size === 0) {
      return
    }
    const now = this.world.now
    const newcomer = this.world.contacts[peer]
    const items: Item[] = []
    for (const held of store.held(now)) {
      const known = n.coordinator.routingTable.closest(held.key, this.k, (c: Contact) => c.id === newcomer.id)
      if (!handsOver(n.contact.key, newcomer.key, held.key, known, this.k, this.options.handoverSenders)) {
        continue
      }
      if (held.value != null) {
        items.push({ kind: 'value', key: held.key, seq: held.value.seq })
      }
      for (const provider of held.providers ?? []) {
        if (this.options.handover === 'any' || provider === node) {
          items.push({ kind: 'provider', key: held.key, provider })
        }
      }
    }
    if (items.length === 0) {
      return
    }
    let q = this.queues.get(node)
    if (q == null) {
      q = { queue: new HandoverQueue<Item>({ ...this.options, handover: true }, now), wakeAt: Infinity }
      this.queues.set(node, q)
    }
    this.cost.handoverRefused += q.queue.offer(String(peer), items, now)
    this.wake(node, q)
  }

  /**
   * A get by `node` for `key` ended with `best`: store it at the closest
   * of `answered` without a value, correct those in `returned` with an
   * older one
   */
  afterGet (node: number, key: Key, best: number | undefined, answered: readonly Contact[], returned: ReadonlyMap<number, number>): void {
    if (best === undefined) {
      return
    }
    for (const [peer, seq] of returned) {
      if (peer !== node && seq < best) {
        this.cost.corrections++
        this.world.sendRecord(node, peer, { kind: 'put-value', key, seq: best }, () => {})
      }
    }
    if (!this.options.storeOnGet) {
      return
    }
    const holders = new Set([...returned.keys()].map(i => this.world.contacts[i].id))
    const target = cacheTarget(key, answered, holders)
    if (target != null) {
      this.cost.storeOnGet++
      this.world.sendRecord(node, (target as Contact & { index: number }).index, { kind: 'put-value', key, seq: best }, () => {})
    }
  }

  private wake (node: number, q: { queue: HandoverQueue<Item>, wakeAt: Millis }): void {
    const at = q.queue.nextAt(this.world.now)
    if (at === undefined || q.wakeAt <= at) {
      return
    }
    q.wakeAt = at
    this.world.at(at, 'handover', () => {
      if (q.wakeAt !== at) {
        return
      }
      q.wakeAt = Infinity
      this.drain(node, q)
    })
  }

  private drain (node: number, q: { queue: HandoverQueue<Item>, wakeAt: Millis }): void {
    const now = this.world.now
    if (!this.world.network.online(node, now)) {
      return
    }
    for (let batch = q.queue.take(now); batch != null; batch = q.queue.take(now)) {
      const peer = Number(batch.peer)
      for (const item of batch.keys) {
        this.cost.handover++
        const message = item.kind === 'value'
          ? { kind: 'put-value' as const, key: item.key, seq: item.seq }
          : { kind: 'add-provider' as const, key: item.key, provider: item.provider }
        this.world.sendRecord(node, peer, message, () => {})
      }
    }
    this.wake(node, q)
  }

  /**
   * Once a minute: the nodes whose phase falls in this minute sweep their
   * values (each node every interval / HELD_SWEEPS_PER_INTERVAL)
   */
  private sweep (): void {
    const world = this.world
    const now = world.now
    const interval = this.options.heldRepublishInterval
    const slots = Math.max(1, Math.round(interval / HELD_SWEEPS_PER_INTERVAL / MINUTE))
    const slot = Math.floor(now / MINUTE) % slots
    for (let i = 0; i < world.size; i++) {
      const store = world.built(i) ? world.node(i).records : undefined
      if (store == null || hash32(world.config.seed, i, SALT_SWEEP) % slots !== slot || !world.network.online(i, now)) {
        continue
      }
      let mine = this.republished.get(i)
      for (const held of store.held(now)) {
        if (held.value == null) {
          continue
        }
        const k = storeKey(held.key)
        if (heldRepublishDue(held.value.storedAt, mine?.get(k), now, interval)) {
          if (mine == null) {
            mine = new Map()
            this.republished.set(i, mine)
          }
          mine.set(k, now)
          this.cost.heldRepublishes++
          this.republish(i, held.key, held.value.seq)
        }
      }
      // forget what the store no longer holds
      if (mine != null && mine.size > store.size) {
        for (const k of mine.keys()) {
          if (!store.has(k)) {
            mine.delete(k)
          }
        }
      }
    }
    if (now + MINUTE < this.end) {
      world.at(now + MINUTE, 'held-sweep', () => { this.sweep() })
    }
  }
}
