/**
 * Content routing and records over the network: provide, findProviders, put
 * and get. Each is a lookup run by the {@link Driver} followed (for puts) by a
 * fan-out to the closest peers through the {@link Messenger}. Events have the
 * `@libp2p/kad-dht` shapes, so the daemon and existing applications read them
 * unchanged.
 *
 * `provide` and `put` first ask the {@link RegionStore} (`regions.ts`) for a
 * fresh region covering their key, or wait for a lookup of it in flight,
 * and run their own lookup only when neither places the record: a burst of
 * single calls costs about one lookup per keyspace region. Either way they
 * yield a FINAL_PEER event per target before the deliveries' PEER_RESPONSE
 * (or QUERY_ERROR) events; a delivery that fails marks its peer as failed in
 * every cached region. When no target nor spare of a cached placement took
 * the record, the call looks its key up and delivers once more.
 */
import { NotFoundError } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { pushable } from 'it-pushable'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { cacheTarget } from '../core/publish/durability.ts'
import { FanOut } from '../core/publish/fan-out.ts'
import { headSize, likelyAmongClosest } from '../core/publish/optimistic.ts'
import { checkRange } from '../core/routing-table/config.ts'
import { MessageType } from '../generated/dht.ts'
import { isExpiredRecord } from '../records/validation.ts'
import { NoPeersError, PutFailedError, RequestFailedError } from './errors.ts'
import { EventTypes, SINGLE_PATH } from './events.ts'
import { kadKey, putValueMessage, toContact, toPbPeer } from './peer-info.ts'
import type { Driver } from './driver.ts'
import type { QueryEvent } from './events.ts'
import type { Messenger } from './messenger.ts'
import type { Purpose } from './metrics.ts'
import type { PeerContact, PeerInfoMapper } from './peer-info.ts'
import type { RegionStore } from './regions.ts'
import type { ProviderStore } from '../records/provider-store.ts'
import type { ValueStore } from '../records/value-store.ts'
import type { AbortOptions, Logger, PeerId, PeerInfo, PeerStore } from '@libp2p/interface'
import type { AddressManager } from '@libp2p/interface-internal'
import type { Pushable } from 'it-pushable'
import type { CID } from 'multiformats/cid'

export interface ContentComponents {
  peerId: PeerId
  peerStore: PeerStore
  addressManager: AddressManager
}

export interface ContentInit {
  driver: Driver
  messenger: Messenger
  providers: ProviderStore
  values: ValueStore
  mapper: PeerInfoMapper
  log: Logger
  /** Valid records a get collects before choosing (fewer if the lookup ends first) */
  getQuorum: number
  /** After a get, store the best record at the closest peer that answered without one (durability.storeOnGet) */
  storeOnGet?: boolean
  /** Providers a findProviders yields before it stops */
  maxProviders: number
  /** Peers that must have taken a record before a put reports success */
  putQuorum: number
  /** Puts whose remaining deliveries may run on after they reported success */
  maxBackgroundPuts: number
  /** Milliseconds a put waits for the remaining deliveries once the quorum has the record */
  putGrace: number
  /** Kademlia's k, for optimistic placement */
  k?: number
  /** The network size our routing table suggests (optimistic placement; none or 0: no early deliveries) */
  networkSize?(): number
  /** Recently looked-up regions provide and put reuse (none: every put runs its own lookup) */
  regions?: RegionStore
  /** A peer sent us a record that failed validation */
  onInvalid?(peer: PeerId): void
}

/** Where a record goes: the k closest that answered, then spares in order */
interface Targets {
  closest: PeerInfo[]
  spares: PeerInfo[]
}

/** PUT_VALUE sent by gets after they reported, in flight at once; beyond it they are skipped */
const MAX_GET_STORES = 64

/** Spares taken from a cached region beyond its k closest (as many as a lookup returns) */
const SPARES = 10

/** A delivery target as the fan-out plan tracks it */
interface Target {
  id: string
  info: PeerInfo
}

const entry = (info: PeerInfo): Target => ({ id: info.id.toString(), info })

export interface OpOptions extends AbortOptions {
  onEvent?(event: QueryEvent): void
}

/** Options of provide (and the internal delivery path): who the work is billed to */
export interface PurposeOptions extends AbortOptions {
  /** @default the operation's own ('provide', 'put') */
  purpose?: Purpose
}

export class ContentOperations {
  private readonly components: ContentComponents
  private readonly init: ContentInit
  /** puts still delivering after they reported success (bounded by maxBackgroundPuts) */
  private readonly background = new Set<Promise<unknown>>()
  /** PUT_VALUE a get sends after it reported (corrections and store on get), at most MAX_GET_STORES */
  private getStores = 0
  /** what gets sent after they reported: corrections of outdated peers, stores at the closest without, and those skipped at the bound */
  readonly getStats = { corrected: 0, stored: 0, skipped: 0 }

  constructor (components: ContentComponents, init: ContentInit) {
    checkRange('putQuorum', init.putQuorum, 1, 10_000)
    checkRange('getQuorum', init.getQuorum, 1, 10_000)
    this.components = components
    this.init = init
  }

  /** Our own peer info as we announce it in ADD_PROVIDER */
  selfInfo (): PeerInfo {
    const multiaddrs = this.components.addressManager.getAddresses().map(ma => ma.decapsulateCode(421))
    return this.init.mapper({ id: this.components.peerId, multiaddrs })
  }

  /** Stores a provider record for `cid` on the k closest peers (and locally) */
  async * provide (cid: CID, provideOptions: PurposeOptions = {}): AsyncGenerator<QueryEvent> {
    const options = { ...provideOptions, purpose: provideOptions.purpose ?? 'provide' }
    const key = cid.multihash.bytes
    await this.init.providers.addProvider(key, this.components.peerId, Date.now(), options)
    const message = { type: MessageType.ADD_PROVIDER, key, providerPeers: [toPbPeer(this.selfInfo())] }
    yield * this.deliver(key, async peer => {
      await this.init.messenger.write(peer.id, message, options)
      return true
    }, MessageType.ADD_PROVIDER, options)
  }

  /** Yields PROVIDER events: local providers first, then what the network says */
  async * findProviders (cid: CID, options: AbortOptions = {}): AsyncGenerator<QueryEvent> {
    const key = cid.multihash.bytes
    const seen = new Set<string>()
    const local: PeerInfo[] = []
    for (const id of await this.init.providers.getProviders(key, Date.now(), options)) {
      const info = await this.addressesOf(id, options)
      if (info != null && !seen.has(id)) {
        seen.add(id)
        local.push(info)
      }
    }
    if (local.length > 0) {
      yield { type: EventTypes.PROVIDER, name: 'PROVIDER', from: this.components.peerId, providers: local, path: SINGLE_PATH }
    }
    const lookup = this.init.driver.lookup(kadKey(key), { kind: 'get-providers', key }, {
      signal: options.signal,
      purpose: 'findProviders',
      onResponse: () => seen.size >= this.init.maxProviders ? 'stop' : 'continue'
    })
    for await (const event of lookup) {
      yield event
      if (event.name !== 'PEER_RESPONSE') {
        continue
      }
      const fresh: PeerInfo[] = []
      for (const p of event.providers) {
        const id = p.id.toString()
        if (seen.has(id) || seen.size >= this.init.maxProviders) {
          continue
        }
        seen.add(id)
        const mapped = this.init.mapper(p)
        if (mapped.multiaddrs.length > 0) {
          await this.components.peerStore.merge(p.id, { multiaddrs: mapped.multiaddrs }).catch(() => {})
        }
        fresh.push(mapped)
      }
      if (fresh.length > 0) {
        yield { type: EventTypes.PROVIDER, name: 'PROVIDER', from: event.from, providers: fresh, path: SINGLE_PATH }
      }
    }
  }

  /** Validates and stores `value` under `key` locally and on the k closest peers */
  async * put (key: Uint8Array, value: Uint8Array, putOptions: AbortOptions = {}): AsyncGenerator<QueryEvent> {
    const options: PurposeOptions = { ...putOptions, purpose: 'put' }
    const received = new Date()
    await this.init.values.put(key, value, received.getTime(), options) // throws InvalidRecordError
    const message = putValueMessage(key, value, received.getTime())
    const { stored, targets } = yield * this.deliver(key, async peer => {
      const response = await this.init.messenger.request(peer.id, message, options)
      // a server echoes the record it stored
      return response.record?.value != null && uint8ArrayEquals(response.record.value, value)
    }, MessageType.PUT_VALUE, options)
    if (stored === 0) {
      throw new PutFailedError(`none of the ${targets.closest.length} closest peers (nor ${targets.spares.length} spares) stored the record`)
    }
  }

  /**
   * Finds the targets for `key` and delivers to them; when targets from a
   * cached region all failed (none took the record), looks the key up and
   * delivers once more (those that failed are marked failed by then).
   */
  private async * deliver (key: Uint8Array, send: (peer: PeerInfo) => Promise<boolean>, messageType: MessageType, options: PurposeOptions): AsyncGenerator<QueryEvent, { stored: number, targets: Targets }> {
    const cached = await this.cachedTargets(key, options)
    if (cached != null) {
      yield * this.finalPeers(cached)
      const stored = yield * this.fanOut(cached, send, messageType, options)
      if (stored > 0) {
        return { stored, targets: cached }
      }
    }
    // a fresh region with too few good peers left still names the nearest of them
    const seeds = cached == null ? this.init.regions?.seeds(kadKey(key), this.init.k ?? 20) ?? [] : []
    return yield * this.lookupAndPlace(key, send, messageType, options, seeds)
  }

  /**
   * Yields one VALUE event with the best valid record found (ours included),
   * then, without waiting, corrects peers that returned an outdated one and
   * (with `storeOnGet`) stores it at the closest peer that answered the
   * lookup without any record (Kademlia's caching rule; `cacheTarget`).
   * At most MAX_GET_STORES of these PUT_VALUE are in flight; more are skipped.
   */
  async * get (key: Uint8Array, options: AbortOptions = {}): AsyncGenerator<QueryEvent> {
    const found: Array<{ from: PeerId, value: Uint8Array }> = []
    const local = await this.init.values.get(key, Date.now(), options)
    if (local != null) {
      found.push({ from: this.components.peerId, value: local.value })
    }
    const candidates: Array<{ from: PeerId, value: Uint8Array }> = []
    const lookup = this.init.driver.lookup(kadKey(key), { kind: 'get-value', key }, {
      signal: options.signal,
      purpose: 'get',
      onResponse: (from, message) => {
        const value = message.record?.value
        if (value != null && message.record?.key != null && uint8ArrayEquals(message.record.key, key)) {
          candidates.push({ from: from.peerId, value })
        }
        return found.length + candidates.length >= this.init.getQuorum ? 'stop' : 'continue'
      }
    })
    let step = await lookup.next()
    while (step.done !== true) {
      yield step.value
      step = await lookup.next()
    }
    // the k closest that answered, then the others that answered (spares), nearest first
    const answered = [...step.value.closest, ...step.value.spares]
    // each distinct value is validated once: peers that hold the same record
    // send the same bytes (one signature check, not one per copy), and ours
    // passed when the store read it
    const checked: Array<{ value: Uint8Array, error?: unknown }> = local == null ? [] : [{ value: local.value }]
    for (const c of candidates) {
      let seen = checked.find(v => uint8ArrayEquals(v.value, c.value))
      if (seen == null) {
        seen = { value: c.value }
        try {
          await this.init.values.validate(key, c.value, options)
        } catch (err) {
          // our own abort says nothing about the record or its sender
          options.signal?.throwIfAborted()
          seen.error = err
        }
        checked.push(seen)
      }
      if (seen.error == null) {
        found.push(c)
        continue
      }
      this.init.log('invalid record for %b from %p - %e', key, c.from, seen.error)
      // an expired record was genuine when stored, and servers (ours and
      // go-libp2p-kad-dht's) serve what they stored without checking it again
      if (!isExpiredRecord(seen.error)) {
        this.init.onInvalid?.(c.from)
      }
    }
    if (found.length === 0) {
      throw new NotFoundError('no valid record found for that key')
    }
    // the selector sees each distinct valid value once; the first peer that sent the best names it
    const distinct = checked.filter(v => v.error == null).map(v => v.value)
    const chosen = distinct[await this.init.values.best(key, distinct)]
    const best = found.find(f => uint8ArrayEquals(f.value, chosen)) ?? found[0]
    // before the VALUE event: a caller that stops at it (contentRouting.get
    // does) ends this generator there. Keep the best locally if it beats
    // ours, correct outdated peers and store at the closest without, all in
    // the background (best effort)
    if (local == null || !uint8ArrayEquals(local.value, best.value)) {
      this.init.values.put(key, best.value, Date.now(), { validated: true }).catch(() => {})
    }
    const outdated = found.filter(f => !f.from.equals(this.components.peerId) && !uint8ArrayEquals(f.value, best.value)).map(f => f.from)
    const holders = new Set(candidates.map(c => c.from.toString()))
    const target = this.init.storeOnGet === true
      ? cacheTarget(kadKey(key), answered.map(p => toContact(p.id)), holders)
      : undefined
    const message = putValueMessage(key, best.value, Date.now())
    for (const peer of [...outdated, ...(target == null ? [] : [target.peerId])]) {
      if (this.getStores >= MAX_GET_STORES) {
        this.getStats.skipped++
        continue
      }
      this.getStores++
      if (peer === target?.peerId) {
        this.getStats.stored++
      } else {
        this.getStats.corrected++
      }
      this.init.messenger.request(peer, message, { purpose: 'get' }).catch(err => {
        this.init.log('could not store the record at %p - %e', peer, err)
      }).finally(() => { this.getStores-- })
    }
    yield { type: EventTypes.VALUE, name: 'VALUE', from: best.from, value: best.value, path: SINGLE_PATH }
  }

  /**
   * Targets for `key` from a fresh cached region, waiting for a lookup of
   * the region in flight if there is one; undefined when none places it.
   */
  private async cachedTargets (key: Uint8Array, options: AbortOptions): Promise<Targets | undefined> {
    const regions = this.init.regions
    if (regions == null) {
      return undefined
    }
    const target = kadKey(key)
    let targets = regions.place(target, SPARES)
    const wait = targets == null ? regions.inFlightNear(target) : undefined
    if (wait != null) {
      await abortable(wait, options.signal)
      targets = regions.place(target, SPARES)
      if (targets != null) {
        regions.joined()
      }
    }
    if (targets == null) {
      regions.missed()
    }
    return targets
  }

  private * finalPeers (targets: Targets): Generator<QueryEvent> {
    const self = this.components.peerId
    for (const peer of targets.closest) {
      yield { type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: self, peer, path: SINGLE_PATH }
    }
  }

  /**
   * A FIND_NODE lookup for `key` (the region cache learns from it through
   * the driver), with `seeds` (the good peers left in a fresh region that
   * has fewer than k: `RegionStore.seeds`) given the record at once, and
   * optimistic placement (`src/core/publish/optimistic.ts`):
   * each peer that answers and is, by the network size our routing table
   * estimates, expected among the k closest gets the record at once; when
   * the lookup ends, the k closest it found that were not tried yet get it
   * too, and failures move to spares (`FanOut`). Success is reported once
   * `putQuorum` peers hold the record, plus `putGrace`, even while the lookup
   * still runs: the rest goes on in the background (at most
   * `maxBackgroundPuts` puts at once; beyond that the put waits for all).
   * Yields the lookup's events, a FINAL_PEER per target, and a PEER_RESPONSE
   * or QUERY_ERROR per delivery.
   */
  private async * lookupAndPlace (key: Uint8Array, send: (peer: PeerInfo) => Promise<boolean>, messageType: MessageType, options: PurposeOptions, seeds: readonly PeerInfo[] = []): AsyncGenerator<QueryEvent, { stored: number, targets: Targets }> {
    const target = kadKey(key)
    const plan = FanOut.optimistic<Target>(this.init.putQuorum)
    const events = pushable<QueryEvent>({ objectMode: true })
    const attempt = this.attempter(plan, events, send, messageType, options)
    const size = this.init.networkSize?.() ?? 0
    const k = this.init.k ?? 20
    const deliveries: Array<Promise<void>> = []
    for (const info of seeds) {
      const early = entry(info)
      if (plan.early(early)) {
        deliveries.push(attempt(early))
      }
    }
    const targets: Targets = { closest: [], spares: [] }
    const end = this.init.regions?.begin(target)
    // a peer that answered the lookup gets the record now, unless the plan has tried it
    const deliverEarly = (peer: PeerContact): void => {
      const early: Target = { id: peer.id, info: { id: peer.peerId, multiaddrs: [] } }
      if (plan.early(early)) {
        deliveries.push(attempt(early))
      }
    }
    const run = async (): Promise<void> => {
      try {
        const lookup = this.init.driver.lookup(target, { kind: 'find-node', key }, {
          signal: options.signal,
          purpose: options.purpose,
          onResponse: (from) => {
            if (likelyAmongClosest(target, from.key, size, k)) {
              deliverEarly(from)
            }
            return 'continue'
          },
          settledHead: {
            size: headSize(k),
            onHead: (peers) => { peers.forEach(deliverEarly) }
          }
        })
        let step = await lookup.next()
        while (step.done !== true) {
          events.push(step.value)
          step = await lookup.next()
        }
        targets.closest = step.value.closest
        targets.spares = step.value.spares
      } finally {
        end?.()
      }
      for (const event of this.finalPeers(targets)) {
        events.push(event)
      }
      plan.plan(targets.closest.map(entry), targets.spares.map(entry))
      deliveries.push(...plan.start().map(attempt))
      // early deliveries may still be running, and each may try spares in turn
      for (let done = 0; done < deliveries.length; done = deliveries.length) {
        await Promise.all(deliveries.slice(done))
      }
    }
    yield * this.untilQuorum(plan, events, run(), options)
    if (targets.closest.length === 0 && plan.stored === 0) {
      throw new NoPeersError('no DHT peers to store the record on')
    }
    return { stored: plan.stored, targets }
  }

  /**
   * Yields the events of a put's `work` (its lookup, if any, and its
   * deliveries) until it ends, or until `plan` has its quorum plus
   * `putGrace`: then the rest runs on in the background (at most
   * `maxBackgroundPuts` puts at once; beyond that the put waits for all).
   * Rethrows what `work` threw if it was waited for.
   */
  private async * untilQuorum (plan: FanOut<Target>, events: Pushable<QueryEvent>, work: Promise<void>, options: AbortOptions): AsyncGenerator<QueryEvent, void> {
    let settled = false
    let failure: Error | undefined
    const all = work.catch((err: Error) => { failure = err }).finally(() => {
      settled = true
      events.end()
    })
    const early = this.background.size < this.init.maxBackgroundPuts
    let graceEnds = Infinity
    for await (const event of withDeadline(events, () => graceEnds)) {
      yield event
      if (early && plan.quorumReached) {
        // quorum reached: the stragglers get a short grace, then run on in
        // the background; with none in flight (the lookup still running,
        // its early deliveries done, their events all yielded) there is
        // nobody to wait for
        if (graceEnds === Infinity) {
          graceEnds = Date.now() + this.init.putGrace
        }
        if (plan.idle && events.readableLength === 0) {
          graceEnds = Date.now()
        }
      }
    }
    if (early && plan.quorumReached && !settled) {
      // the remaining work runs on; its outcomes still reach the peer stack
      this.background.add(all)
      void all.finally(() => this.background.delete(all))
    } else {
      await all
      if (failure != null) {
        throw failure
      }
    }
    options.signal?.throwIfAborted()
  }

  /**
   * One delivery to `target` as a plan tracks it: a PEER_RESPONSE or
   * QUERY_ERROR event, the outcome to the plan, and the next spare on failure
   */
  private attempter (plan: FanOut<Target>, events: Pushable<QueryEvent>, deliver: (peer: PeerInfo) => Promise<boolean>, messageType: MessageType, options: AbortOptions): (target: Target) => Promise<void> {
    const attempt = async (target: Target): Promise<void> => {
      const peer = target.info
      let ok = false
      try {
        if (!await deliver(peer)) {
          throw new RequestFailedError('bad-response', target.id, 'the peer did not echo the record')
        }
        ok = true
        events.push({ type: EventTypes.PEER_RESPONSE, name: 'PEER_RESPONSE', from: peer.id, messageName: messageType, messageType, closer: [], providers: [], path: SINGLE_PATH })
      } catch (err: any) {
        events.push({ type: EventTypes.QUERY_ERROR, name: 'QUERY_ERROR', from: peer.id, error: err, path: SINGLE_PATH })
        if (options.signal?.aborted !== true && !(err instanceof RequestFailedError && (err.reason === 'aborted' || err.reason === 'overloaded'))) {
          // the peer's own failure (not our abort or our full queue): no cached region offers it again
          this.init.regions?.failed(target.id)
        }
      }
      const next = plan.result(target, ok, options.signal?.aborted !== true)
      if (next != null) {
        await attempt(next)
      }
    }
    return attempt
  }

  /**
   * Delivers to the k closest at once; each one that fails is replaced by the
   * next spare (the next closest peer that answered the lookup), so the record
   * still lands near the key. Yields a PEER_RESPONSE or QUERY_ERROR per
   * attempt and returns how many peers took the record once `putQuorum` have
   * (the rest finish in the background, at most `maxBackgroundPuts` puts at
   * once; beyond that the put waits for all) or every attempt has ended.
   */
  private async * fanOut (targets: Targets, deliver: (peer: PeerInfo) => Promise<boolean>, messageType: MessageType, options: AbortOptions): AsyncGenerator<QueryEvent, number> {
    const plan = new FanOut(targets.closest.map(entry), targets.spares.map(entry), this.init.putQuorum)
    const events = pushable<QueryEvent>({ objectMode: true })
    const attempt = this.attempter(plan, events, deliver, messageType, options)
    yield * this.untilQuorum(plan, events, Promise.all(plan.start().map(attempt)).then(() => {}), options)
    return plan.stored
  }

  private async addressesOf (id: string, options: AbortOptions): Promise<PeerInfo | undefined> {
    if (id === this.components.peerId.toString()) {
      return this.selfInfo()
    }
    try {
      const peerId = peerIdFromString(id)
      const peer = await this.components.peerStore.get(peerId, options).catch(() => undefined)
      return this.init.mapper({ id: peerId, multiaddrs: peer?.addresses.map(a => a.multiaddr) ?? [] })
    } catch {
      return undefined
    }
  }
}

/** Yields from `source` until it ends or the time `deadline()` returns has passed */
async function * withDeadline<T> (source: AsyncIterable<T>, deadline: () => number): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]()
  try {
    while (true) {
      const wait = deadline() - Date.now()
      if (wait <= 0) {
        return
      }
      const next = it.next()
      const timer = wait === Infinity ? undefined : sleep(wait)
      const step = timer == null ? await next : await Promise.race([next, timer.promise])
      timer?.cancel()
      if (step == null || step.done === true) {
        return
      }
      yield step.value
    }
  } finally {
    await it.return?.()
  }
}

/** Waits for `promise`, or rejects when `signal` aborts first */
async function abortable (promise: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (signal == null) {
    return promise
  }
  signal.throwIfAborted()
  let onAbort: () => void = () => {}
  const aborted = new Promise<void>((_resolve, reject) => {
    onAbort = () => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

function sleep (ms: number): { promise: Promise<undefined>, cancel(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined
  const promise = new Promise<undefined>(resolve => {
    handle = setTimeout(() => { resolve(undefined) }, ms)
  })
  return { promise, cancel: () => { clearTimeout(handle) } }
}
