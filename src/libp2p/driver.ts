/**
 * The adapter's event loop: feeds the pure {@link Coordinator} with events
 * stamped with the wall clock, and carries out the effects it returns
 * (requests through the {@link Messenger}, routing table changes, the
 * maintenance timer). Lookups started here surface as async iterables of
 * {@link QueryEvent}s.
 *
 * Bounds: lookups running at once = the coordinator's `maxLookups`; further
 * queries wait in a list of at most `maxQueuedQueries` (beyond it they fail
 * with QueryOverloadedError). Each query keeps at most `MAX_PEER_INFOS`
 * learned addresses and its event channel holds at most what one lookup can
 * produce (its request bound times four events).
 */
import { pushable } from 'it-pushable'
import { assertNever } from '../core/env.ts'
import { namesCloser } from '../core/key.ts'
import { SETTLED_AFTER } from '../core/publish/optimistic.ts'
import { Message, MessageType } from '../generated/dht.ts'
import { withGroup } from './address-group.ts'
import { RequestFailedError, ServiceStoppedError } from './errors.ts'
import { EventTypes, SINGLE_PATH } from './events.ts'
import { fromPbPeer, toContact, wireKadKey } from './peer-info.ts'
import { Slots } from './slots.ts'
import { isBackground } from './wait-list.ts'
import type { FailureReason } from './errors.ts'
import type { QueryEvent } from './events.ts'
import type { Messenger } from './messenger.ts'
import type { Accounting, Purpose } from './metrics.ts'
import type { PeerContact, PeerInfoMapper } from './peer-info.ts'
import type { Contact } from '../core/contact.ts'
import type { Coordinator, CoreEffect, CoreEvent, RequestKind } from '../core/coordinator.ts'
import type { LookupConfig } from '../core/query/config.ts'
import type { FinishReason } from '../core/query/lookup.ts'
import type { Logger, PeerId, PeerInfo, PeerStore } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Pushable } from 'it-pushable'

const MAX_PEER_INFOS = 2048

export interface DriverComponents {
  peerId: PeerId
  peerStore: PeerStore
  connectionManager: ConnectionManager
}

export interface DriverInit {
  coordinator: Coordinator
  messenger: Messenger
  peerInfoMapper: PeerInfoMapper
  log: Logger
  maxQueuedQueries: number
  maxLookups: number
  /** Called for every routing table change */
  onTableChange(change: 'added' | 'removed', peer: PeerContact): void
  /** Peers learned with addresses (for peer discovery) */
  onPeerLearned(peer: PeerInfo): void
  /**
   * Called when a FIND_NODE lookup converged or exhausted its candidates,
   * before its caller sees the result (the region cache learns from it)
   */
  onFindNodeFinished?(target: Uint8Array, result: LookupResult): void
  /** A lookup took this peer for a liar: it named only peers that failed (the peer stack holds it against it) */
  onMisled?(id: string): void
  /** Per-peer dial and request timeouts (the peer stack's adaptive ones); the messenger's defaults otherwise */
  timeouts?: {
    dial(id: string): number
    request(id: string): number
  }
  /** Counts finished lookups, hedged requests and back-off skips (metrics) */
  accounting?: Pick<Accounting, 'lookupFinished' | 'hedged' | 'backoffSkips'>
}

/** What a response handler tells the lookup */
export type ResponseVerdict = 'continue' | 'stop'

export interface LookupOptions {
  signal?: AbortSignal
  /** Sees every response; returning 'stop' ends the lookup (found what we need) */
  onResponse?(from: PeerContact, message: Message): ResponseVerdict
  /**
   * What the lookup is for: its requests are billed to it. Requests of no
   * lookup of ours (bucket refresh lookups, liveness pings, verifies) are
   * billed to 'refresh'.
   *
   * @default 'lookup'
   */
  purpose?: Purpose
  /**
   * Whether a FIND_NODE lookup's result feeds `onFindNodeFinished` (the
   * region cache). Bucket refresh lookups say no: run when a node starts,
   * in a network that may still be filling, they would leave regions that
   * stay fresh for minutes while closer peers join.
   *
   * @default true
   */
  learn?: boolean
  /** Per-lookup settings of the core's lookup (see `LookupConfig`) */
  config?: Partial<LookupConfig>
  /**
   * After each response while the lookup runs: once its head has settled
   * (`Coordinator.settledHead` over `size` candidates, `SETTLED_AFTER`
   * responses in a row), the peers that answered in it, nearest first
   */
  settledHead?: { size: number, onHead(peers: PeerContact[]): void }
}

export interface LookupResult {
  closest: PeerInfo[]
  /** Peers that answered beyond the k closest, nearest first: replacements for a failed put */
  spares: PeerInfo[]
  reason: FinishReason | 'overloaded'
  requests: number
}

interface QueryState {
  target: Uint8Array
  request: RequestKind
  channel: Pushable<QueryEvent>
  controller: AbortController
  infos: Map<string, PeerInfo>
  onResponse?: LookupOptions['onResponse']
  settledHead?: LookupOptions['settledHead']
  result?: LookupResult
  purpose: Purpose
  /** feeds onFindNodeFinished (LookupOptions.learn) */
  learn: boolean
}

export class Driver {
  private readonly components: DriverComponents
  private readonly init: DriverInit
  private readonly queries = new Map<number, QueryState>()
  private readonly slots: Slots
  private readonly shutdown = new AbortController()
  private nextQueryId = 1
  private timer?: ReturnType<typeof setTimeout>
  private timerAt = Infinity
  private running = true
  /** the coordinator's totals last passed on to the accounting */
  private readonly counted = { hedged: 0, skipped: 0 }

  constructor (components: DriverComponents, init: DriverInit) {
    this.components = components
    this.init = init
    this.slots = new Slots(init.maxLookups, init.maxQueuedQueries)
  }

  /** Feeds one event to the core and carries out what it says */
  handle (event: CoreEvent): void {
    if (!this.running) {
      return
    }
    const effects = this.init.coordinator.handle(event, Date.now())
    this.apply(effects)
    this.arm()
    const accounting = this.init.accounting
    if (accounting != null) {
      const totals = this.init.coordinator.totals
      if (totals.hedged !== this.counted.hedged) {
        accounting.hedged(totals.hedged - this.counted.hedged)
        this.counted.hedged = totals.hedged
      }
      if (totals.skipped !== this.counted.skipped) {
        accounting.backoffSkips(totals.skipped - this.counted.skipped)
        this.counted.skipped = totals.skipped
      }
    }
  }

  stop (): void {
    this.running = false
    clearTimeout(this.timer)
    this.timer = undefined
    this.shutdown.abort()
    for (const q of this.queries.values()) {
      q.controller.abort()
      q.channel.end()
    }
    this.queries.clear()
  }

  /**
   * Runs a lookup for the Kademlia key `target`, yielding query events; the
   * generator's return value is the result.
   */
  async * lookup (target: Uint8Array, request: RequestKind, options: LookupOptions = {}): AsyncGenerator<QueryEvent, LookupResult> {
    await this.slots.acquire(options.signal, isBackground(options.purpose))
    if (!this.running) {
      // nothing would send its requests: it would never end
      this.slots.release()
      throw new ServiceStoppedError('the DHT is stopped: no lookup can start')
    }
    const queryId = this.nextQueryId++
    const state: QueryState = {
      target,
      request,
      channel: pushable<QueryEvent>({ objectMode: true }),
      controller: new AbortController(),
      infos: new Map(),
      onResponse: options.onResponse,
      settledHead: options.settledHead,
      purpose: options.purpose ?? 'lookup',
      learn: options.learn !== false
    }
    const onAbort = (): void => {
      state.controller.abort()
      this.handle({ type: 'stop-lookup', queryId })
    }
    this.queries.set(queryId, state)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      this.handle({ type: 'start-lookup', queryId, target, request, config: options.config })
      for await (const event of state.channel) {
        yield event
      }
      options.signal?.throwIfAborted()
      return state.result ?? { closest: [], spares: [], reason: 'stopped', requests: 0 }
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      if (state.result == null) {
        this.handle({ type: 'stop-lookup', queryId })
      }
      this.queries.delete(queryId)
      if (options.signal?.aborted === true) {
        state.controller.abort()
      }
      // otherwise requests still in flight (slow peers) run to their own
      // timeout in the background, so the peer stack learns how they end
      this.slots.release()
    }
  }

  private apply (effects: CoreEffect[]): void {
    for (const e of effects) {
      switch (e.type) {
        case 'send-request':
          void this.send(e)
          break
        case 'lookup-finished': {
          this.init.accounting?.lookupFinished(e.reason)
          const q = this.queries.get(e.queryId)
          if (q != null) {
            q.result = {
              closest: e.closest.map(c => this.infoOf(q, c as PeerContact)),
              spares: e.spares.map(c => this.infoOf(q, c as PeerContact)),
              reason: e.reason,
              requests: e.requests
            }
            if (q.request.kind === 'find-node' && q.learn && (e.reason === 'converged' || e.reason === 'exhausted')) {
              this.init.onFindNodeFinished?.(q.target, q.result)
            }
            q.channel.end()
          }
          break
        }
        case 'peer-added':
          this.init.onTableChange('added', e.peer as PeerContact)
          break
        case 'peer-removed':
          this.init.onTableChange('removed', e.peer as PeerContact)
          break
        case 'peer-misled':
          this.init.onMisled?.(e.peer.id)
          break
        default:
          break
      }
    }
  }

  private infoOf (q: QueryState, c: PeerContact): PeerInfo {
    return q.infos.get(c.id) ?? { id: c.peerId, multiaddrs: [] }
  }

  private async send (e: Extract<CoreEffect, { type: 'send-request' }>): Promise<void> {
    const peer = e.peer as PeerContact
    const q = e.queryId != null ? this.queries.get(e.queryId) : undefined
    const signal = q == null ? this.shutdown.signal : AbortSignal.any([q.controller.signal, this.shutdown.signal])
    const message = toWire(e.request, this.components.peerId)
    const push = (event: QueryEvent): void => { q?.channel.push(event) }
    try {
      const learned = q?.infos.get(peer.id)
      if (learned != null && learned.multiaddrs.length > 0 && (e.fresh === true || !this.connected(peer.peerId))) {
        // make the addresses a response gave us dialable by peer id
        await this.components.peerStore.merge(peer.peerId, { multiaddrs: learned.multiaddrs })
      }
      const response = await this.init.messenger.request(peer.peerId, message, {
        signal,
        dialTimeout: this.init.timeouts?.dial(peer.id),
        timeout: this.init.timeouts?.request(peer.id),
        useful: response => isUseful(response, q == null || e.request.kind === 'ping' ? undefined : { target: q.target, responder: peer.key }),
        ownConnection: e.fresh === true,
        purpose: purposeOf(q),
        onDial: () => { push({ type: EventTypes.DIAL_PEER, name: 'DIAL_PEER', peer: peer.peerId, path: SINGLE_PATH }) },
        onSend: () => { push({ type: EventTypes.SEND_QUERY, name: 'SEND_QUERY', to: peer.peerId, messageName: message.type, messageType: message.type, path: SINGLE_PATH }) }
      })
      // a probe's answer only tells that the peer serves us; its closer peers are not a lookup's
      const closer = e.request.kind === 'ping' ? [] : this.decodeCloser(response)
      const contacts = this.learn(q, closer)
      push(peerResponseEvent(peer.peerId, response, closer))
      const verdict = q?.result == null ? (q?.onResponse?.(peer, response) ?? 'continue') : 'continue'
      this.handle({ type: 'response', requestId: e.requestId, closer: contacts })
      if (verdict === 'stop' && e.queryId != null) {
        this.handle({ type: 'stop-lookup', queryId: e.queryId })
      } else if (q?.settledHead != null && q.result == null && e.queryId != null) {
        const head = this.init.coordinator.settledHead(e.queryId, q.settledHead.size, SETTLED_AFTER)
        if (head.length > 0) {
          q.settledHead.onHead(head as PeerContact[])
        }
      }
    } catch (err: any) {
      const reason = failureReason(err, signal)
      if (reason !== 'aborted') {
        push({ type: EventTypes.QUERY_ERROR, name: 'QUERY_ERROR', from: peer.peerId, error: err, path: SINGLE_PATH })
      }
      this.handle({ type: 'request-failed', requestId: e.requestId, reason })
    }
  }

  /**
   * An open unlimited connection the messenger will use as it is, so the
   * request needs no dial (and no addresses in the peer store). The peer store
   * merge it saves takes a write lock, a datastore read and write and an
   * event per request.
   */
  private connected (peer: PeerId): boolean {
    return this.components.connectionManager.getConnections(peer).some(c => c.status === 'open' && c.limits == null)
  }

  /** Remembers the addresses of closer peers for this query, bounded */
  private learn (q: QueryState | undefined, closer: PeerInfo[]): Contact[] {
    const contacts: Contact[] = []
    for (const info of closer) {
      if (q != null && q.infos.size < MAX_PEER_INFOS && !q.infos.has(info.id.toString())) {
        q.infos.set(info.id.toString(), info)
      }
      contacts.push(withGroup(toContact(info.id), info.multiaddrs))
    }
    return contacts
  }

  /** Closer peers from a response: decodable, not us, with usable addresses */
  private decodeCloser (response: Message): PeerInfo[] {
    const out: PeerInfo[] = []
    const self = this.components.peerId
    for (const pb of response.closerPeers) {
      const info = fromPbPeer(pb)
      if (info == null || info.id.equals(self)) {
        continue
      }
      const mapped = this.init.peerInfoMapper(info)
      if (mapped.multiaddrs.length > 0) {
        out.push(mapped)
        this.init.onPeerLearned(mapped)
      }
    }
    return out
  }

  /** Keeps one timer at the core's next deadline */
  private arm (): void {
    const deadline = this.init.coordinator.nextDeadline()
    if (deadline == null) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.timerAt = Infinity
      return
    }
    if (this.timer != null && this.timerAt <= deadline) {
      return
    }
    clearTimeout(this.timer)
    this.timerAt = deadline
    const delay = Math.min(Math.max(0, deadline - Date.now()), 2 ** 31 - 1)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = Infinity
      this.handle({ type: 'tick' })
    }, delay)
    this.timer.unref?.()
  }
}

function failureReason (err: unknown, signal: AbortSignal): FailureReason {
  if (err instanceof RequestFailedError) {
    return err.reason
  }
  return signal.aborted ? 'aborted' : 'bad-response'
}

/** Requests of no lookup of ours (or of the core's own refresh lookups) are table upkeep */
function purposeOf (q: QueryState | undefined): Purpose {
  return q?.purpose ?? 'refresh'
}

/**
 * A response helped if it carried records or providers, or (for a lookup)
 * named a peer nearer the target than the responder: a peer that names only
 * far peers, or itself, earns half a success (see the peer stack)
 */
function isUseful (response: Message, route?: { target: Uint8Array, responder: Uint8Array }): boolean {
  if (response.providerPeers.length > 0 || response.record != null) {
    return true
  }
  if (route == null) {
    return response.closerPeers.length > 0
  }
  return namesCloser(route.target, route.responder, response.closerPeers.map(p => wireKadKey(p.id)))
}

function isDefined<T> (x: T | undefined): x is T {
  return x != null
}

/**
 * The wire message of a request. A `ping` (the routing table's liveness
 * check and the verify of a new contact) goes out as FIND_NODE for our own
 * id, not as the protocol's PING: every /ipfs/kad/1.0.0 server answers
 * FIND_NODE, while rust-libp2p's libp2p-kad closes the stream on PING
 * ("Kademlia PING messages are unsupported"), which would put every Rust
 * peer in back-off (test/interop/rust.spec.ts).
 */
function toWire (request: RequestKind, self: PeerId): Partial<Message> & { type: MessageType } {
  switch (request.kind) {
    case 'ping': return { type: MessageType.FIND_NODE, key: self.toMultihash().bytes as Uint8Array<ArrayBuffer> }
    case 'find-node': return { type: MessageType.FIND_NODE, key: request.key as Uint8Array<ArrayBuffer> }
    case 'get-value': return { type: MessageType.GET_VALUE, key: request.key as Uint8Array<ArrayBuffer> }
    case 'get-providers': return { type: MessageType.GET_PROVIDERS, key: request.key as Uint8Array<ArrayBuffer> }
    default: return assertNever(request)
  }
}

function peerResponseEvent (from: PeerId, response: Message, closer: PeerInfo[]): QueryEvent {
  const record = response.record
  return {
    type: EventTypes.PEER_RESPONSE,
    name: 'PEER_RESPONSE',
    from,
    messageName: response.type,
    messageType: response.type,
    closer,
    providers: response.providerPeers.map(fromPbPeer).filter(isDefined),
    record: record?.key != null && record.value != null ? { key: record.key, value: record.value } : undefined,
    path: SINGLE_PATH
  }
}
