/**
 * Inbound dispatch: one method per message type.
 *
 * - PING: echoed.
 * - FIND_NODE: our k closest peers (ourselves first if the key is our id).
 * - GET_VALUE: our record for the key, if valid and unexpired, plus closer peers.
 * - PUT_VALUE: the record's key must equal the message key; it is validated
 * and stored only if the selector prefers it to what we hold. The response
 * echoes the request (as the spec says) only when the record is valid; an
 * invalid record aborts the stream with InvalidRecordError and stores nothing.
 * - ADD_PROVIDER: only provider entries naming the sender itself are
 * accepted (anyone else's are ignored), at most the addresses the mapper
 * keeps, up to 16 per provider, and none once the peer store holds 16 or
 * more addresses of that peer (else each message could add 16 more; they
 * expire after an hour). Each peer may add or refresh at most
 * `providerQuota.records` records per `providerQuota.window` ms (a token
 * bucket); entries beyond it are ignored and counted. No response.
 * - GET_PROVIDERS: the providers we hold with their known addresses, plus
 * closer peers.
 *
 * Every peer named in an answer carries at most {@link MAX_ANSWER_ADDRS}
 * addresses, the decode limit peers apply (`MESSAGE_LIMITS`): one peer with
 * more would make the whole answer undecodable.
 */
import { InvalidParametersError } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { MessageType } from '../generated/dht.ts'
import { InvalidMessageError } from './errors.ts'
import { MESSAGE_LIMITS } from './handler.ts'
import { PeerBuckets } from './limits.ts'
import { fromPbPeer, kadKey, toContact, toPbPeer } from './peer-info.ts'
import type { InboundSession } from './handler.ts'
import type { PeerContact, PeerInfoMapper } from './peer-info.ts'
import type { Coordinator } from '../core/coordinator.ts'
import type { Message, Peer } from '../generated/dht.ts'
import type { ProviderStore } from '../records/provider-store.ts'
import type { ValueStore } from '../records/value-store.ts'
import type { AbortOptions, PeerId, PeerStore } from '@libp2p/interface'
import type { AddressManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface RpcComponents {
  peerId: PeerId
  peerStore: PeerStore
  addressManager: AddressManager
}

export type Reply = (Partial<Message> & { type: MessageType }) | undefined

const MAX_PROVIDER_ADDRS = 16
/**
 * ADD_PROVIDER records one inbound stream defers before it stores them
 * (see `ProviderSession`): a bulk provider's batch of hundreds is written as
 * a few datastore batches, not one each
 */
export const MAX_DEFERRED = 256
/** How long a provider's announced addresses, once recorded, are not looked at again when they are the same */
const RECORDED_FOR = 600_000
/** Providers whose recorded addresses are remembered (the longest unheard-of forgotten first) */
const MAX_RECORDED = 4096

/** Addresses per peer in an answer: the decode limit of `MESSAGE_LIMITS` */
export const MAX_ANSWER_ADDRS = Math.min(MESSAGE_LIMITS.closerPeers$.addrs, MESSAGE_LIMITS.providerPeers$.addrs)

/** The wire form of a peer for an answer, its addresses capped at MAX_ANSWER_ADDRS */
function answerPeer (info: { id: PeerId, multiaddrs: Multiaddr[] }): Peer {
  return toPbPeer({ id: info.id, multiaddrs: info.multiaddrs.slice(0, MAX_ANSWER_ADDRS) })
}

/** How many provider records one peer may add through ADD_PROVIDER */
export interface ProviderQuotaInit {
  /**
   * Records (new or refreshed) one peer may add per `window` (a token
   * bucket of this size, refilled over the window). Sized for honest bulk
   * providers: 10 000 CIDs on 40 nodes are about 5 000 records per node,
   * and a pinning service announcing 10 M CIDs to a 10 000-server network
   * sends each server about 20 000 per pass; a quarter of the provider
   * store's 100 000 keys
   *
   * @default 25000
   */
  records?: number
  /**
   * The window in ms
   *
   * @default 3600000 (1 hour)
   */
  window?: number
  /**
   * Peers whose quota is tracked at once; beyond that the peer heard from
   * longest ago is forgotten (and starts again with a full quota)
   *
   * @default 4096
   */
  maxPeers?: number
}

export interface RpcInit {
  coordinator: Coordinator
  providerQuota?: ProviderQuotaInit
  mapper: PeerInfoMapper
  providers: ProviderStore
  values: ValueStore
  onInbound(from: PeerContact): void
}

export class Rpc {
  private readonly components: RpcComponents
  private readonly coordinator: Coordinator
  private readonly mapper: PeerInfoMapper
  private readonly providers: ProviderStore
  private readonly values: ValueStore
  private readonly onInbound: (from: PeerContact) => void
  /** peer id -> its wire form (undefined: no usable address) and until when it may be reused */
  private readonly wirePeers = new Map<string, { pb: Peer | undefined, until: number }>()
  /** provider records each peer may still add; at most providerQuota.maxPeers entries */
  private readonly quota: PeerBuckets
  /**
   * provider id -> the addresses it announced that we last recorded, and
   * when: the same addresses again within RECORDED_FOR cost no peer store
   * access (at most MAX_RECORDED entries)
   */
  private readonly recorded = new Map<string, { addrs: string, at: number }>()
  /** ADD_PROVIDER entries naming their sender that were ignored because it was over quota */
  droppedProviders = 0

  constructor (components: RpcComponents, init: RpcInit) {
    const records = init.providerQuota?.records ?? 25_000
    const window = init.providerQuota?.window ?? 3_600_000
    const maxPeers = init.providerQuota?.maxPeers ?? 4096
    for (const [name, value] of [['records', records], ['window', window], ['maxPeers', maxPeers]] as const) {
      if (!Number.isInteger(value) || value < 1) {
        throw new InvalidParametersError(`providerQuota.${name} must be a positive integer, got ${value}`)
      }
    }
    this.quota = new PeerBuckets({ burst: records, perSecond: records * 1000 / window, maxDelay: 0, maxPeers })
    this.components = components
    this.coordinator = init.coordinator
    this.mapper = init.mapper
    this.providers = init.providers
    this.values = init.values
    this.onInbound = init.onInbound
  }

  /** The session of an inbound stream from `from` (see `InboundSession`, `ProviderSession`) */
  session (from: PeerId): InboundSession {
    return new ProviderSession(this, from)
  }

  async dispatch (from: PeerId, message: Message, options: AbortOptions & { session?: InboundSession }): Promise<Reply> {
    const contact = toContact(from)
    this.onInbound(contact)
    switch (message.type) {
      case MessageType.PING:
        return { type: MessageType.PING }
      case MessageType.FIND_NODE: {
        const key = requireKey(message)
        return { type: message.type, key, closerPeers: await this.closerPeers(key, contact, options) }
      }
      case MessageType.GET_VALUE:
        return this.getValue(requireKey(message), contact, options)
      case MessageType.PUT_VALUE:
        return this.putValue(requireKey(message), message, options)
      case MessageType.ADD_PROVIDER:
        await this.addProvider(requireKey(message), from, message, options)
        return undefined
      case MessageType.GET_PROVIDERS:
        return this.getProviders(requireKey(message), contact, options)
      default:
        throw new InvalidMessageError(`unknown message type ${String(message.type)}`)
    }
  }

  private async getValue (key: Uint8Array<ArrayBuffer>, from: PeerContact, options: AbortOptions): Promise<Reply> {
    // validated when stored; the requester validates what it gets (as go-libp2p-kad-dht serves)
    const stored = await this.values.get(key, Date.now(), { ...options, verify: false })
    const closerPeers = await this.closerPeers(key, from, options)
    if (stored == null) {
      return { type: MessageType.GET_VALUE, key, closerPeers }
    }
    return {
      type: MessageType.GET_VALUE,
      key,
      record: { key, value: stored.value as Uint8Array<ArrayBuffer>, timeReceived: new Date(stored.received).toISOString() },
      closerPeers
    }
  }

  private async putValue (key: Uint8Array<ArrayBuffer>, message: Message, options: AbortOptions): Promise<Reply> {
    const record = message.record
    if (record?.key == null || record.value == null) {
      throw new InvalidMessageError('PUT_VALUE without a record')
    }
    if (!uint8ArrayEquals(record.key, key)) {
      throw new InvalidMessageError('PUT_VALUE record key differs from the message key')
    }
    await this.values.put(key, record.value, Date.now(), options) // throws InvalidRecordError
    return { type: MessageType.PUT_VALUE, key, record }
  }

  private async addProvider (key: Uint8Array, from: PeerId, message: Message, options: AbortOptions & { session?: InboundSession }): Promise<void> {
    const sender = from.toMultihash().bytes
    for (const pb of message.providerPeers) {
      if (!uint8ArrayEquals(pb.id, sender)) {
        continue // a peer may only announce itself
      }
      if (this.quota.take(from.toString(), Date.now()) !== 0) {
        this.droppedProviders++
        continue
      }
      const session = options.session
      if (session instanceof ProviderSession && session.rpc === this && session.from.equals(from)) {
        // refused now, as storing it now would refuse it; stored with the rest of the run
        this.providers.checkKey(key)
        session.keys.push(key)
        session.provider = pb
        // a store close to full refuses at once, as before (ProviderStoreFullError resets the stream)
        if (session.keys.length >= Math.min(MAX_DEFERRED, this.providers.room)) {
          await this.storeProviders(session, options)
        }
        return
      }
      await this.providers.addProvider(key, from, Date.now(), options)
      await this.recordProvider(from, pb, options)
      return // one record per message: further entries naming the sender add nothing
    }
  }

  /** Stores what `session` deferred: one `addProviders`, and the sender's addresses once */
  async storeProviders (session: ProviderSession, options: AbortOptions): Promise<void> {
    const { keys, provider } = session
    session.keys = []
    session.provider = undefined
    if (keys.length === 0 || provider == null) {
      return
    }
    await this.providers.addProviders(keys, session.from, Date.now(), options)
    await this.recordProvider(session.from, provider, options)
  }

  /** The addresses a provider announced with its record, those the mapper keeps */
  private async recordProvider (from: PeerId, pb: Peer, options: AbortOptions): Promise<void> {
    const info = fromPbPeer(pb)
    if (info == null) {
      return
    }
    const mapped = this.mapper({ id: from, multiaddrs: info.multiaddrs.slice(0, MAX_PROVIDER_ADDRS) })
    if (mapped.multiaddrs.length > 0) {
      await this.recordAddresses(from, mapped.multiaddrs, options)
    }
  }

  /**
   * Keeps a provider's announced addresses in the peer store, so that
   * GET_PROVIDERS can hand them out: those it lacks, up to
   * MAX_PROVIDER_ADDRS per peer. A bulk provider sends the same addresses
   * with each of thousands of ADD_PROVIDER: after the first, the same ones
   * within RECORDED_FOR are skipped without reading the peer store. Before,
   * each message merged them again (a locked read and write of the peer's
   * record, and a peer:update event), which made 1 000 CIDs provided into
   * 40 of our nodes take 15 s of CPU.
   */
  private async recordAddresses (from: PeerId, multiaddrs: Multiaddr[], options: AbortOptions): Promise<void> {
    const id = from.toString()
    const now = Date.now()
    const addrs = multiaddrs.map(ma => ma.toString()).join(' ')
    const last = this.recorded.get(id)
    if (last != null && last.addrs === addrs && now - last.at >= 0 && now - last.at < RECORDED_FOR) {
      return
    }
    const known = new Set((await this.components.peerStore.get(from, options).catch(() => undefined))?.addresses.map(a => a.multiaddr.toString()))
    const fresh = multiaddrs.filter(ma => !known.has(ma.toString())).slice(0, Math.max(0, MAX_PROVIDER_ADDRS - known.size))
    if (fresh.length > 0) {
      await this.components.peerStore.merge(from, { multiaddrs: fresh }, options)
    }
    this.recorded.delete(id)
    this.recorded.set(id, { addrs, at: now })
    if (this.recorded.size > MAX_RECORDED) {
      this.recorded.delete(this.recorded.keys().next().value as string)
    }
  }

  private async getProviders (key: Uint8Array<ArrayBuffer>, from: PeerContact, options: AbortOptions): Promise<Reply> {
    const providerPeers: Peer[] = []
    for (const id of await this.providers.getProviders(key, Date.now(), options)) {
      let peerId: PeerId
      try {
        peerId = peerIdFromString(id)
      } catch {
        continue
      }
      const multiaddrs = peerId.equals(this.components.peerId)
        ? this.ownAddresses()
        : ((await this.components.peerStore.get(peerId, options).catch(() => undefined))?.addresses.map(a => a.multiaddr) ?? [])
      providerPeers.push(answerPeer(this.mapper({ id: peerId, multiaddrs })))
    }
    return { type: MessageType.GET_PROVIDERS, key, providerPeers, closerPeers: await this.closerPeers(key, from, options) }
  }

  private ownAddresses (): Multiaddr[] {
    return this.components.addressManager.getAddresses().map(ma => ma.decapsulateCode(421))
  }

  /**
   * Our closest known peers to `key` with addresses we may share; ourselves
   * first when the key is our own peer id.
   */
  /** The wire form of a table peer, from the cache or the peer store (undefined: no usable address) */
  private async wirePeer (c: PeerContact, now: number, options: AbortOptions): Promise<Peer | undefined> {
    const cached = this.wirePeers.get(c.id)
    if (cached != null && cached.until > now) {
      return cached.pb
    }
    let pb: Peer | undefined
    try {
      const peer = await this.components.peerStore.get(c.peerId, options)
      const mapped = this.mapper({ id: c.peerId, multiaddrs: peer.addresses.map(a => a.multiaddr) })
      pb = mapped.multiaddrs.length > 0 ? answerPeer(mapped) : undefined
    } catch {
      // not in the peer store any more: we cannot tell anyone how to reach it
    }
    this.wirePeers.delete(c.id)
    if (this.wirePeers.size >= MAX_WIRE_PEERS) {
      this.wirePeers.delete(this.wirePeers.keys().next().value as string)
    }
    this.wirePeers.set(c.id, { pb, until: now + WIRE_PEER_TTL })
    return pb
  }

  async closerPeers (key: Uint8Array, requester: PeerContact, options: AbortOptions = {}): Promise<Peer[]> {
    const out: Peer[] = []
    const self = this.components.peerId
    if (uint8ArrayEquals(key, self.toMultihash().bytes)) {
      const mine = this.mapper({ id: self, multiaddrs: this.ownAddresses() })
      if (mine.multiaddrs.length > 0) {
        out.push(answerPeer(mine))
      }
    }
    const now = Date.now()
    const near = this.coordinator.closerPeers(kadKey(key), requester.id, now)
    const peers = await Promise.all(near.map(async c => this.wirePeer(c as PeerContact, now, options)))
    for (const pb of peers) {
      if (pb != null) {
        out.push(pb)
      }
    }
    return out
  }
}

/**
 * How long the wire form of a table peer (its id and mapped addresses, read
 * from the peer store) is reused in answers. Every FIND_NODE, GET_VALUE and
 * GET_PROVIDERS names up to k peers, mostly the same ones; reading each from
 * the peer store takes its lock every time, which profiles showed as the
 * largest cost of serving (issue #10). Addresses change rarely; an answer at
 * most this stale names the addresses the peer had a moment ago.
 */
const WIRE_PEER_TTL = 30_000

/** Wire peers cached at most (the oldest dropped first) */
const MAX_WIRE_PEERS = 4096

function requireKey (message: Message): Uint8Array<ArrayBuffer> {
  if (message.key == null || message.key.byteLength === 0) {
    throw new InvalidMessageError(`${message.type} without a key`)
  }
  return message.key
}

/**
 * The ADD_PROVIDER records of one inbound stream, each checked as it
 * arrives (sender, quota, key) and stored with the rest of the run: at most
 * MAX_DEFERRED wait, or no more than the provider store has room for new
 * keys (so a full store still refuses the record that does not fit at once),
 * and the handler flushes them before the stream's next response, when
 * nothing more has arrived, and when the stream ends (`InboundSession`). A bulk provider's batch of 500 records, each stored
 * on its own (a serialised datastore batch of one, and the provider's
 * addresses checked again), had cost our servers more than anything else
 * they did for it.
 */
export class ProviderSession implements InboundSession {
  readonly rpc: Rpc
  readonly from: PeerId
  keys: Uint8Array[] = []
  /** the sender's entry in the last record (its addresses) */
  provider?: Peer

  constructor (rpc: Rpc, from: PeerId) {
    this.rpc = rpc
    this.from = from
  }

  get pending (): number {
    return this.keys.length
  }

  async flush (options: AbortOptions): Promise<void> {
    await this.rpc.storeProviders(this, options)
  }
}
