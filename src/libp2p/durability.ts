/**
 * Two of the durability rules on libp2p (the third, store on get, is in
 * `content.ts`); the decisions are the core's (`src/core/publish/durability.ts`).
 *
 * **Handover.** A peer newly admitted to the routing table (`onPeerAdded`,
 * so one we reached) is queued for a scan of what we hold: our own provider
 * records (the keys the republisher announces) and every value record
 * (ours and held for others). A record goes to the newcomer when `handsOver`
 * says so: it is among the key's k closest we know and we are the nearest
 * holder. Provider records of *other* peers are not handed over: every
 * implementation (ours included) accepts ADD_PROVIDER only for the sender's
 * own id, and the wire format has no way to vouch for someone else's (a
 * provider record is unsigned), so those come back when their provider
 * republishes. Values go with PUT_VALUE (one request each), our provider
 * records as ADD_PROVIDER batches on one stream closed by a FIND_NODE whose
 * answer acknowledges them (`Messenger.writeAcknowledged`, as `bulk.ts`).
 * Scans run one at a time and at most one every 10 s (SCAN_INTERVAL);
 * newcomers that arrive meanwhile wait for the next one (at most
 * `maxHandoverPeers`; more are not handed anything);
 * records leave through the core's `HandoverQueue` (rate, caps, a batch per
 * peer, one batch in flight).
 *
 * **Held re-publish.** Every `heldRepublishInterval / HELD_SWEEPS_PER_INTERVAL`
 * (10 min; the first at a random phase), each value record that
 * `heldRepublishDue` says is due (nobody stored it with us for an hour, we
 * did not re-publish it within the hour) and still validates is put to its
 * k closest through the bulk path (`BulkProvider.putMany`: one lookup per
 * keyspace region), without storing it again here, so our own re-publish
 * does not count as someone else's. `republished` keeps when we did, at most
 * one entry per record held (pruned at each sweep).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { base32 } from 'multiformats/bases/base32'
import { handsOver, heldRepublishDue, HandoverQueue, HELD_SWEEPS_PER_INTERVAL, validateDurabilityConfig } from '../core/publish/durability.ts'
import { MessageType } from '../generated/dht.ts'
import { kadKey, putValueMessage, toPbPeer } from './peer-info.ts'
import type { BulkProvider } from './bulk.ts'
import type { Messenger } from './messenger.ts'
import type { PeerContact } from './peer-info.ts'
import type { Republisher } from './republisher.ts'
import type { DurabilityConfig } from '../core/publish/durability.ts'
import type { RoutingTable } from '../core/routing-table/table.ts'
import type { ValueStore } from '../records/value-store.ts'
import type { Logger, PeerId, PeerInfo } from '@libp2p/interface'

export interface DurabilityInit {
  table(): RoutingTable
  messenger: Messenger
  values: ValueStore
  republisher: Republisher
  bulk: BulkProvider
  log: Logger
  k: number
  self: PeerId
  selfInfo(): PeerInfo
  /**
   * Whether the peer stack holds `id` back or backs it off now (and we have
   * no connection to it): a handover batch for it is dropped rather than
   * dialled (see `send`)
   */
  backedOff?(id: string): boolean
  config?: Partial<DurabilityConfig>
  /** the clock (ms since the epoch) */
  now?(): number
}

/** What the rules did since construction */
export interface DurabilityStats {
  /** records sent to newcomers (values and our provider records) */
  handedOver: number
  /** records not handed over: a queue at its bound, the peer failed, or it was in back-off when its turn came */
  handoverDropped: number
  /** held values re-published */
  heldRepublished: number
  /** held-republish sweeps that ran */
  sweeps: number
}

type Item = { kind: 'provider', key: Uint8Array } | { kind: 'value', key: Uint8Array, value: Uint8Array }

/**
 * Least ms between the starts of two handover scans. A scan costs one
 * routing-table `closest` per key held: about 0.2 s of CPU for 110 000 keys
 * and a 150-peer table, plus reading the keys from the datastore
 */
const SCAN_INTERVAL = 10_000

/** Resolves after `ms` (at once if `ms <= 0`) or when `signal` aborts */
async function delay (ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) {
    return
  }
  await new Promise<void>(resolve => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    timer.unref?.()
    signal.addEventListener('abort', done, { once: true })
  })
}

export class Durability {
  readonly config: DurabilityConfig
  readonly stats: DurabilityStats = { handedOver: 0, handoverDropped: 0, heldRepublished: 0, sweeps: 0 }
  private readonly init: DurabilityInit
  private readonly now: () => number
  private readonly queue: HandoverQueue<Item>
  /** admitted peers waiting for a scan (at most maxHandoverPeers) */
  private readonly newcomers = new Map<string, PeerContact>()
  private readonly republished = new Map<string, number>()
  private scanning?: Promise<void>
  private sending?: Promise<void>
  private sweepRun?: Promise<void>
  private pumpTimer?: ReturnType<typeof setTimeout>
  private sweepTimer?: ReturnType<typeof setTimeout>
  private running = false
  private lastScan = -Infinity
  private readonly shutdown = new AbortController()

  constructor (init: DurabilityInit) {
    this.init = init
    this.config = validateDurabilityConfig(init.config)
    this.now = init.now ?? Date.now
    this.queue = new HandoverQueue<Item>(this.config, this.now())
  }

  /** Records waiting for handover */
  get pending (): number {
    return this.queue.size
  }

  start (): void {
    this.running = true
    if (this.config.heldRepublish) {
      const every = this.config.heldRepublishInterval / HELD_SWEEPS_PER_INTERVAL
      this.armSweep(Math.floor(Math.random() * every))
    }
  }

  async stop (): Promise<void> {
    this.running = false
    this.shutdown.abort()
    clearTimeout(this.pumpTimer)
    clearTimeout(this.sweepTimer)
    await Promise.allSettled([this.scanning, this.sending, this.sweepRun])
  }

  /** `peer` entered the routing table */
  onPeerAdded (peer: PeerContact): void {
    if (!this.running || !this.config.handover) {
      return
    }
    if (this.newcomers.size >= this.config.maxHandoverPeers && !this.newcomers.has(peer.id)) {
      return
    }
    this.newcomers.set(peer.id, peer)
    this.scan()
  }

  /** `peer` left the routing table: what waits for it is dropped */
  onPeerRemoved (id: string): void {
    this.newcomers.delete(id)
    this.queue.drop(id)
  }

  /** Runs one held-republish sweep now (tests, and the timer) */
  async sweep (): Promise<void> {
    if (this.sweepRun == null) {
      this.sweepRun = this.republishHeld().finally(() => { this.sweepRun = undefined })
    }
    await this.sweepRun
  }

  private scan (): void {
    if (this.scanning != null) {
      return
    }
    this.scanning = (async () => {
      while (this.running && this.newcomers.size > 0) {
        // at most one scan per SCAN_INTERVAL: newcomers admitted meanwhile wait for the next
        await delay(this.lastScan + SCAN_INTERVAL - this.now(), this.shutdown.signal)
        if (!this.running) {
          return
        }
        this.lastScan = this.now()
        const peers = [...this.newcomers.values()]
        this.newcomers.clear()
        try {
          await this.scanFor(peers)
        } catch (err) {
          this.init.log('handover scan failed - %e', err)
        }
        this.pump()
      }
    })().finally(() => { this.scanning = undefined })
  }

  /** Which records go to which of `peers` (each checked against the table as it is now) */
  private async scanFor (peers: PeerContact[]): Promise<void> {
    const signal = this.shutdown.signal
    const byPeer = new Map<string, Item[]>()
    const consider = (key: Uint8Array, item: Item): void => {
      const target = kadKey(key)
      const table = this.init.table()
      const known = table.closest(target, this.init.k)
      for (const peer of peers) {
        if (!known.some(c => c.id === peer.id)) {
          continue
        }
        const others = known.filter(c => c.id !== peer.id)
        if (handsOver(table.self, peer.key, target, others, this.init.k, this.config.handoverSenders)) {
          const list = byPeer.get(peer.id) ?? []
          list.push(item)
          byPeer.set(peer.id, list)
        }
      }
    }
    for await (const key of this.init.republisher.provided({ signal })) {
      consider(key, { kind: 'provider', key })
    }
    for await (const entry of this.init.values.entries(this.now(), { signal })) {
      consider(entry.key, { kind: 'value', key: entry.key, value: entry.value })
    }
    for (const [peer, items] of byPeer) {
      this.stats.handoverDropped += this.queue.offer(peer, items, this.now())
    }
  }

  /** Sends the next batch the rate allows, one at a time; arms a timer for the one after */
  private pump (): void {
    if (!this.running || this.sending != null) {
      return
    }
    clearTimeout(this.pumpTimer)
    this.pumpTimer = undefined
    const batch = this.queue.take(this.now())
    if (batch == null) {
      const at = this.queue.nextAt(this.now())
      if (at != null) {
        this.pumpTimer = setTimeout(() => { this.pumpTimer = undefined; this.pump() }, Math.max(1, at - this.now()))
        this.pumpTimer.unref?.()
      }
      return
    }
    this.sending = this.send(batch.peer, batch.keys).finally(() => {
      this.sending = undefined
      this.pump()
    })
  }

  private async send (id: string, items: Item[]): Promise<void> {
    if (this.init.backedOff?.(id) === true) {
      // it left, or failed, since it was queued (a batch waits for the rate
      // and for the batches before it): dialling it could cost a full dial
      // timeout for nothing. Should it be back, it gets these records from
      // their next re-publish (or a handover if it enters the table again)
      this.stats.handoverDropped += items.length
      this.queue.drop(id)
      return
    }
    const peer = peerIdFromString(id)
    const options = { signal: this.shutdown.signal, purpose: 'republish' as const }
    const providers = items.filter(i => i.kind === 'provider')
    try {
      if (providers.length > 0) {
        const self = this.init.selfInfo()
        const provider = toPbPeer(self)
        const messages = providers.map(i => ({ type: MessageType.ADD_PROVIDER, key: i.key as Uint8Array<ArrayBuffer>, providerPeers: [provider] }))
        const ack = { type: MessageType.FIND_NODE, key: this.init.self.toMultihash().bytes as Uint8Array<ArrayBuffer> }
        await this.init.messenger.writeAcknowledged(peer, messages, ack, options)
        this.stats.handedOver += providers.length
      }
      for (const item of items) {
        if (item.kind !== 'value') {
          continue
        }
        try {
          await this.init.values.validate(item.key, item.value, options)
        } catch {
          this.stats.handoverDropped++
          continue // an IPNS record past its EOL, say: the newcomer would refuse it
        }
        await this.init.messenger.request(peer, putValueMessage(item.key, item.value, this.now()), options)
        this.stats.handedOver++
      }
    } catch (err) {
      this.init.log('handover to %p failed - %e', peer, err)
      this.stats.handoverDropped += items.length
      this.queue.drop(id)
    }
  }

  private armSweep (delay: number): void {
    if (!this.running) {
      return
    }
    this.sweepTimer = setTimeout(() => {
      this.sweep().catch(err => { this.init.log('held republish failed - %e', err) }).finally(() => {
        this.armSweep(this.config.heldRepublishInterval / HELD_SWEEPS_PER_INTERVAL)
      })
    }, delay)
    this.sweepTimer.unref?.()
  }

  private async republishHeld (): Promise<void> {
    const signal = this.shutdown.signal
    const now = this.now()
    const interval = this.config.heldRepublishInterval
    const due: Array<{ key: Uint8Array, value: Uint8Array }> = []
    const seen = new Set<string>()
    for await (const entry of this.init.values.entries(now, { signal })) {
      const name = base32.encode(entry.key)
      seen.add(name)
      if (!heldRepublishDue(entry.received, this.republished.get(name), now, interval)) {
        continue
      }
      try {
        await this.init.values.validate(entry.key, entry.value, { signal })
      } catch {
        continue // an IPNS record past its EOL, say: let it expire
      }
      due.push({ key: entry.key, value: entry.value })
    }
    for (const name of this.republished.keys()) {
      if (!seen.has(name)) {
        this.republished.delete(name)
      }
    }
    this.stats.sweeps++
    if (due.length === 0 || !this.running) {
      return
    }
    for (const d of due) {
      this.republished.set(base32.encode(d.key), now)
    }
    const progress = await this.init.bulk.putMany(due, { signal, purpose: 'republish' })
    this.stats.heldRepublished += progress.provided
  }
}
