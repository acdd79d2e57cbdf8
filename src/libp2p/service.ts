/**
 * The priority-dht libp2p service: wires the pure core to libp2p. This and
 * the coordinator are the only places where parts are put together.
 */
import { NotFoundError, contentRoutingSymbol, peerDiscoverySymbol, peerRoutingSymbol, serviceCapabilities, serviceDependencies, start, stop } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { TypedEventEmitter } from 'main-event'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { NEUTRAL_QUALITY } from '../core/contact.ts'
import { Coordinator } from '../core/coordinator.ts'
import { SeededRandom } from '../core/env.ts'
import { PeerStack } from '../core/peer-stack/index.ts'
import { ProviderStore } from '../records/provider-store.ts'
import { ValueStore } from '../records/value-store.ts'
import { withGroup } from './address-group.ts'
import { ProvideBatcher } from './batcher.ts'
import { BulkProvider } from './bulk.ts'
import { ContentOperations } from './content.ts'
import { Driver } from './driver.ts'
import { Durability } from './durability.ts'
import { EventTypes, progressName } from './events.ts'
import { InboundHandler } from './handler.ts'
import { IdentifyListener } from './identify.ts'
import { Messenger } from './messenger.ts'
import { Accounting } from './metrics.ts'
import { fromPbPeer, kadKey, refreshKey, removePrivateAddressesMapper, toContact } from './peer-info.ts'
import { connectedQuality, PeerValues } from './peer-values.ts'
import { RegionStore, estimateNetworkSize } from './regions.ts'
import { Republisher } from './republisher.ts'
import { Rpc } from './rpc.ts'
import type { ProvideBatchStats } from './batcher.ts'
import type { BulkProgress, BulkProvideOptions } from './bulk.ts'
import type { DurabilityStats } from './durability.ts'
import type { QueryEvent } from './events.ts'
import type { InboundStats } from './handler.ts'
import type { NewPeer } from './identify.ts'
import type { PriorityDHTComponents, PriorityDHTInit } from './init.ts'
import type { Usage } from './metrics.ts'
import type { PeerContact, PeerInfoMapper } from './peer-info.ts'
import type { RegionCacheInit, RegionCacheStats } from './regions.ts'
import type { PeerQuality } from '../core/contact.ts'
import type { Category } from '../core/peer-stack/index.ts'
import type { AbortOptions, Connection, ContentRouting, Logger, PeerDiscovery, PeerDiscoveryEvents, PeerId, PeerInfo, PeerRouting, Provider, RoutingOptions, Startable } from '@libp2p/interface'
import type { ProgressEvent } from 'progress-events'

export const DEFAULT_PROTOCOL = '/ipfs/kad/1.0.0'
const TABLE_TAG = 'priority-dht-routing'
const MAX_ANNOUNCED = 4096
const RAW_CODE = 0x55
/** After a restart with an empty table, how many of the most valuable known peers we dial first */
const BOOTSTRAP_BEST = 20
/** Bucket refresh lookups `refreshRoutingTable` runs at once */
const REFRESH_CONCURRENCY = 4

export type DHTMode = 'client' | 'server'

export interface PeerValueInfo {
  /** 0..1; 0.5 means no evidence either way */
  value: number
  category: Category
  /** ms since the epoch; undefined when not backed off */
  backoffUntil?: number
  /** the peer store tag value (`priority-dht-value`) it earns, 0..100 */
  tag: number
}

export class PriorityDHT extends TypedEventEmitter<PeerDiscoveryEvents> implements Startable, PeerDiscovery {
  readonly protocol: string
  private readonly components: PriorityDHTComponents
  private readonly log: Logger
  private readonly coordinator: Coordinator
  private readonly messenger: Messenger
  private readonly handler: InboundHandler
  private readonly rpc: Rpc
  private readonly identify: IdentifyListener
  private readonly driver: Driver
  private readonly content: ContentOperations
  private readonly republisher: Republisher
  /** A FIND_NODE key and target in the bucket at a common prefix length (see `refreshKey`) */
  private readonly refreshKey: (cpl: number) => { target: Uint8Array, key: Uint8Array } | undefined
  private readonly bulk: BulkProvider
  private readonly durability: Durability
  private readonly batcher: ProvideBatcher | undefined
  private readonly regions: RegionStore | undefined
  private readonly providers: ProviderStore
  private readonly values: ValueStore
  private readonly mapper: PeerInfoMapper
  private readonly peerValues: PeerValues
  private readonly accounting: Accounting
  private readonly explicitMode?: DHTMode
  private readonly announced = new Set<string>()
  private mode: DHTMode
  /** peers we hold a connection to (libp2p's peer:connect / peer:disconnect; as many as its connections) */
  private readonly connected = new Set<string>()
  private running = false
  private selfLookup?: Promise<void>

  constructor (components: PriorityDHTComponents, init: PriorityDHTInit = {}) {
    super()
    this.components = components
    this.protocol = init.protocol ?? DEFAULT_PROTOCOL
    this.log = components.logger.forComponent('priority-dht')
    this.mapper = init.peerInfoMapper ?? removePrivateAddressesMapper
    if (init.clientMode != null) {
      this.explicitMode = init.clientMode ? 'client' : 'server'
    }
    this.mode = this.explicitMode ?? 'client'
    const k = init.kBucketSize ?? 20
    const maxLookups = init.maxConcurrentQueries ?? 64
    const seed = init.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]
    const random = new SeededRandom(seed)
    // each constructor throws InvalidConfigError for anything out of range, here and not later
    this.providers = new ProviderStore(components.datastore, init.providers)
    this.values = new ValueStore(components.datastore, { ...init.records, validators: init.validators, selectors: init.selectors })
    const stack = new PeerStack(init.peerStack)
    // gauges are computed on scrape, after construction
    const accounting = this.accounting = new Accounting(components.metrics, {
      routingTableSize: () => this.coordinator.routingTable.size,
      bucketSizes: () => this.coordinator.routingTable.bucketSizes(),
      peerCategories: () => stack.categoryCounts(Date.now()),
      storeSizes: async () => {
        const providers = await this.providers.size()
        return { provider_keys: providers.keys, provider_records: providers.records, value_records: await this.values.size() }
      },
      republishing: () => this.republisher.size
    }, init.metricsPrefix)
    this.peerValues = new PeerValues(components, stack, this.log.newScope('peer-values'), init.peerValues, accounting.backoffHook())
    const quality = init.neutral === true ? NEUTRAL_QUALITY : connectedQuality(stack, id => this.connected.has(id), id => { this.peerValues.disconnected(id) })
    const self = toContact(components.peerId)
    // its own stream, so the other components' seeded streams stay as they were
    const refreshRandom = new SeededRandom((seed ^ 0x5eed) >>> 0)
    this.refreshKey = cpl => refreshKey(self.key, cpl, refreshRandom)
    this.coordinator = new Coordinator(self, {
      protocols: [this.protocol],
      maxLookups,
      refreshKey: this.refreshKey,
      routingTable: { k, ...init.routingTable },
      lookup: { k, alpha: init.alpha, disjointPaths: init.disjointPaths ?? 3, ...init.lookup }
    }, random.fork(), Date.now(), quality)
    this.regions = regionStore(init.regionCache, k, quality, () => this.coordinator.routingTable.bucketSizes())
    this.messenger = new Messenger(components, { protocol: this.protocol, ...init.network }, outcome => { this.peerValues.onOutcome(outcome) }, accounting)
    const rpc = this.rpc = new Rpc(components, {
      coordinator: this.coordinator,
      providerQuota: init.providerQuota,
      mapper: this.mapper,
      providers: this.providers,
      values: this.values,
      onInbound: from => { this.driver.handle({ type: 'inbound-request', from }) }
    })
    this.handler = new InboundHandler(components, { protocol: this.protocol, ...init.inbound, isValued: valuation(stack, init.neutral), session: peer => rpc.session(peer) }, async (from, message, _connection, options) => rpc.dispatch(from, message, options), accounting)
    this.identify = new IdentifyListener(components, peer => { this.onNewPeer(peer) })
    this.driver = new Driver(components, {
      coordinator: this.coordinator,
      messenger: this.messenger,
      peerInfoMapper: this.mapper,
      log: this.log,
      maxLookups,
      maxQueuedQueries: init.maxQueuedQueries ?? 1024,
      onTableChange: (change, peer) => { this.onTableChange(change, peer) },
      onPeerLearned: peer => { this.announce(peer) },
      onFindNodeFinished: (target, result) => { this.regions?.learn(target, result.closest, result.spares) },
      onMisled: id => { this.peerValues.invalid(id) },
      accounting,
      timeouts: init.neutral === true
        ? undefined
        : { dial: id => this.peerValues.dialTimeout(id), request: id => this.peerValues.requestTimeout(id) }
    })
    this.content = new ContentOperations(components, {
      driver: this.driver,
      messenger: this.messenger,
      providers: this.providers,
      values: this.values,
      mapper: this.mapper,
      log: this.log,
      getQuorum: init.getQuorum ?? 16,
      storeOnGet: init.durability?.storeOnGet ?? true,
      maxProviders: init.maxProviders ?? 20,
      putQuorum: init.putQuorum ?? Math.ceil(k / 2),
      maxBackgroundPuts: init.maxBackgroundPuts ?? 64,
      putGrace: init.putGrace ?? 200,
      k,
      networkSize: () => this.coordinator.routingTable.sizeEstimate(),
      regions: this.regions,
      onInvalid: peer => { this.peerValues.invalid(peer.toString()) }
    })
    this.republisher = new Republisher({
      datastore: components.datastore,
      providers: this.providers,
      values: this.values,
      random: random.fork(),
      log: this.log,
      accounting,
      reprovide: async key => {
        await drain(accounting.events('republish', this.content.provide(cidOfMultihash(key), { purpose: 'republish' })))
      },
      reprovideMany: async keys => accounting.track('republish', async () => {
        const cids = keys.map(cidOfMultihash)
        const done: Uint8Array[] = []
        await this.bulk.provideMany(cids, { purpose: 'republish', onDelivered: key => { done.push(key) } })
        return done
      })
    }, init.reprovide)
    this.batcher = init.provideBatching == null
      ? undefined
      : new ProvideBatcher({
        ...init.provideBatching,
        provideMany: async (cids, onDelivered) => this.provideMany(cids, { onDelivered }),
        provideOne: async (cid, options) => { await drain(this.provide(cid, options)) }
      })
    this.bulk = new BulkProvider({
      driver: this.driver,
      messenger: this.messenger,
      providers: this.providers,
      log: this.log.newScope('bulk'),
      k,
      self: components.peerId,
      selfInfo: () => this.content.selfInfo(),
      chunkSize: init.bulk?.chunkSize,
      accounting
    })
    this.durability = new Durability({
      table: () => this.coordinator.routingTable,
      messenger: this.messenger,
      values: this.values,
      republisher: this.republisher,
      bulk: this.bulk,
      log: this.log.newScope('durability'),
      k,
      self: components.peerId,
      selfInfo: () => this.content.selfInfo(),
      backedOff: id => quality.backedOff(id, Date.now()),
      config: init.durability
    })
    this.onSelfPeerUpdate = this.onSelfPeerUpdate.bind(this)
    this.onPeerDisconnect = this.onPeerDisconnect.bind(this)
    this.onPeerConnect = this.onPeerConnect.bind(this)
    this.onPrune = this.onPrune.bind(this)
  }

  readonly [Symbol.toStringTag] = 'priority-dht'

  readonly [serviceCapabilities]: string[] = [
    '@libp2p/content-routing',
    '@libp2p/peer-routing',
    '@libp2p/peer-discovery',
    '@libp2p/kad-dht'
  ]

  readonly [serviceDependencies]: string[] = [
    '@libp2p/identify'
  ]

  get [peerRoutingSymbol] (): PeerRouting {
    return {
      findPeer: async (peerId, options) => this.findPeerInfo(peerId, options),
      getClosestPeers: (key, options) => this.closestPeerInfos(key, options)
    }
  }

  get [contentRoutingSymbol] (): ContentRouting {
    return {
      provide: async (cid, options) => {
        await (this.batcher == null ? drain(this.provide(cid, options)) : this.batcher.provide(cid, options))
      },
      cancelReprovide: async (cid) => { await this.cancelReprovide(cid) },
      findProviders: (cid, options) => this.providerInfos(cid, options),
      put: async (key, value, options) => { await drain(this.put(key, value, options)) },
      get: async (key, options) => this.getValue(key, options)
    }
  }

  get [peerDiscoverySymbol] (): PeerDiscovery {
    return this
  }

  /** Bucket size and lookup result size */
  get k (): number {
    return this.coordinator.k
  }

  /** Routing table view, as `@libp2p/kad-dht` exposes `routingTable.size` */
  get routingTable (): { size: number, peers(): string[] } {
    const rt = this.coordinator.routingTable
    return { size: rt.size, peers: () => [...rt.contacts()].map(c => c.id) }
  }

  /** What transparent provide batching has done (undefined when it is off) */
  get provideBatching (): ProvideBatchStats | undefined {
    return this.batcher == null ? undefined : { ...this.batcher.stats }
  }

  /**
   * What the region cache has done: provides and puts placed from a cached
   * region (`hits`), after waiting for another call's lookup (`joined`), or
   * with a lookup of their own (`misses`); undefined when it is off
   */
  get regionCache (): RegionCacheStats | undefined {
    return this.regions?.stats
  }

  /**
   * What the DHT's work cost, by purpose (the operation that caused it:
   * provide, put, get, findProviders, lookup, refresh, republish, and
   * inbound for serving others): operations, requests, failures, dials,
   * streams, bytes. `outbound` and `inbound` are the messenger's and the
   * handler's own totals, which the purposes add up to. The same figures
   * are the `priority_dht_usage_*` metrics.
   */
  usage (): Usage {
    return { purposes: this.accounting.purposes(), outbound: { ...this.messenger.stats }, inbound: { ...this.handler.stats } }
  }

  /**
   * What the inbound limits refused or delayed since construction, and the
   * ADD_PROVIDER entries ignored because their peer was over its
   * `providerQuota`
   */
  get inbound (): InboundStats & { droppedProviders: number } {
    return { ...this.handler.limits(), droppedProviders: this.rpc.droppedProviders }
  }

  /** What the priority peer stack thinks of `peer` */
  peerValue (peer: PeerId): PeerValueInfo {
    const id = peer.toString()
    const now = Date.now()
    const stack = this.peerValues.stack
    return {
      value: stack.value(id, now),
      category: stack.category(id, now),
      backoffUntil: stack.backoffUntil(id),
      tag: stack.tag(id, now)
    }
  }

  isStarted (): boolean {
    return this.running
  }

  async start (): Promise<void> {
    if (this.running) {
      return
    }
    this.running = true
    this.batcher?.start()
    await this.peerValues.start()
    await start(this.messenger)
    if (this.mode === 'server') {
      await start(this.handler)
    }
    if (this.explicitMode == null) {
      this.components.events.addEventListener('self:peer:update', this.onSelfPeerUpdate)
      this.updateAutoMode()
    }
    await start(this.identify)
    this.components.events.addEventListener('peer:connect', this.onPeerConnect)
    this.components.events.addEventListener('peer:disconnect', this.onPeerDisconnect)
    for (const c of this.components.connectionManager.getConnections()) {
      this.connected.add(c.remotePeer.toString())
    }
    this.components.events.addEventListener('connection:prune', this.onPrune)
    await this.republisher.start()
    this.durability.start()
    this.bootstrapFromBest()
  }

  async stop (): Promise<void> {
    if (!this.running) {
      return
    }
    this.running = false
    this.components.events.removeEventListener('self:peer:update', this.onSelfPeerUpdate)
    this.components.events.removeEventListener('peer:connect', this.onPeerConnect)
    this.components.events.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    this.connected.clear()
    this.components.events.removeEventListener('connection:prune', this.onPrune)
    this.batcher?.stop()
    await this.durability.stop()
    await this.republisher.stop()
    this.driver.stop()
    await stop(this.identify, this.handler, this.messenger)
    await this.peerValues.stop()
    await this.selfLookup
  }

  getMode (): DHTMode {
    return this.mode
  }

  /** Switches between answering DHT queries (server) and not (client) */
  async setMode (mode: DHTMode): Promise<void> {
    if (mode === this.mode) {
      return
    }
    this.mode = mode
    if (!this.running) {
      return
    }
    this.log('switching to %s mode', mode)
    await (mode === 'server' ? start(this.handler) : stop(this.handler))
  }

  /**
   * Refreshes the whole table now: a lookup of our own key, then one lookup
   * per bucket from the farthest to the deepest non-empty one (at most
   * `routingTable.maxRefreshCpl` + 1, REFRESH_CONCURRENCY at a time), each
   * for a key in that bucket's range (`refreshKey`), as go-libp2p-kad-dht
   * refreshes every bucket at start. The same runs when the table gets its
   * first peer; each bucket is then refreshed when it has had no lookup
   * for `routingTable.refreshInterval`.
   */
  async refreshRoutingTable (options: AbortOptions = {}): Promise<void> {
    await this.refresh(true, options)
  }

  /** The lookup of our own key, then (with `buckets`) one per bucket: see `refreshRoutingTable` */
  private async refresh (buckets: boolean, options: AbortOptions = {}): Promise<void> {
    await this.accounting.track('refreshRoutingTable', async () => {
      const run = async (target: Uint8Array, key: Uint8Array, learn: boolean): Promise<void> => {
        for await (const event of this.driver.lookup(target, { kind: 'find-node', key }, { signal: options.signal, purpose: 'refresh', learn })) {
          void event
        }
      }
      const self = this.components.peerId.toMultihash().bytes
      await run(kadKey(self), self, true)
      const cpls = buckets ? Array.from({ length: this.coordinator.routingTable.refreshDepth + 1 }, (_, cpl) => cpl) : []
      const worker = async (): Promise<void> => {
        for (let cpl = cpls.shift(); cpl != null; cpl = cpls.shift()) {
          const wire = this.refreshKey(cpl)
          if (!this.running || options.signal?.aborted === true) {
            return
          }
          if (wire != null) {
            // the region cache does not learn from them (see LookupOptions.learn)
            await run(wire.target, wire.key, false)
          }
        }
      }
      await Promise.all(Array.from({ length: REFRESH_CONCURRENCY }, worker))
    })
  }

  /** Finds the addresses of `peerId`, from the routing table or by a lookup */
  findPeer (peerId: PeerId, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('findPeer', this.findPeerEvents(peerId, options))
  }

  private async * findPeerEvents (peerId: PeerId, options: RoutingOptions): AsyncGenerator<QueryEvent, void, undefined> {
    const self = this.components.peerId
    if (options.useCache !== false && this.coordinator.routingTable.has(peerId.toString())) {
      const local = await this.localInfo(peerId, options)
      if (local != null) {
        yield this.progress({ type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: self, peer: local, path: singlePath() }, options)
        return
      }
    }
    if (options.useNetwork === false) {
      return
    }
    const wanted = peerId.toMultihash().bytes
    let found: PeerInfo | undefined
    const lookup = this.driver.lookup(kadKey(wanted), { kind: 'find-node', key: wanted }, {
      signal: options.signal,
      purpose: 'lookup',
      onResponse: (_from, message) => {
        for (const pb of message.closerPeers) {
          const info = fromPbPeer(pb)
          if (info?.id.equals(peerId) === true) {
            const mapped = this.mapper(info)
            if (mapped.multiaddrs.length > 0) {
              found = mapped
              return 'stop'
            }
          }
        }
        return 'continue'
      }
    })
    for await (const event of lookup) {
      yield this.progress(event, options)
      if (found != null) {
        yield this.progress({ type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: event.name === 'PEER_RESPONSE' ? event.from : self, peer: found, path: singlePath() }, options)
        return
      }
    }
  }

  /** The k peers closest to `key` that answered, as FINAL_PEER events */
  getClosestPeers (key: Uint8Array, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('getClosestPeers', this.closestPeerEvents(key, options))
  }

  private async * closestPeerEvents (key: Uint8Array, options: RoutingOptions): AsyncGenerator<QueryEvent, void, undefined> {
    // the caller asked for the k closest: a slow peer among them is waited
    // for rather than left out (see LookupConfig.awaitOverdue)
    const lookup = this.driver.lookup(kadKey(key), { kind: 'find-node', key }, { signal: options.signal, purpose: 'lookup', config: { awaitOverdue: true } })
    let step = await lookup.next()
    while (step.done !== true) {
      yield this.progress(step.value, options)
      step = await lookup.next()
    }
    for (const peer of step.value.closest) {
      const info = peer.multiaddrs.length > 0 ? peer : (await this.localInfo(peer.id, options)) ?? peer
      yield this.progress({ type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: this.components.peerId, peer: info, path: singlePath() }, options)
    }
  }

  /** Announces that we provide `cid` to the k closest peers, and keeps re-announcing it */
  provide (cid: CID, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('provide', this.provideEvents(cid, options))
  }

  private async * provideEvents (cid: CID, options: RoutingOptions): AsyncGenerator<QueryEvent, void, undefined> {
    await this.republisher.add(cid.multihash.bytes)
    for await (const event of this.content.provide(cid, { ...options, purpose: 'provide' })) {
      yield this.progress(event, options)
    }
  }

  /**
   * Announces many CIDs at once: keys sorted by keyspace position, one lookup
   * per region of the keyspace rather than per key, each peer sent all of its
   * records over one stream. Every CID is also re-announced on schedule, the
   * same way. Progress: `onProgress` gets `priority-dht:provide-many:progress`
   * events (and `onBulkProgress` the same counts). An aborted signal rejects
   * with an AbortError whose `progress` says what was done.
   */
  async provideMany (cids: Iterable<CID>, options: BulkProvideOptions & RoutingOptions = {}): Promise<BulkProgress> {
    return this.accounting.track('provideMany', async () => {
      const list = [...cids]
      await this.republisher.addMany(list.map(cid => cid.multihash.bytes))
      return this.bulk.provideMany(list, bulkOptions(options, 'provide', 'priority-dht:provide-many:progress'))
    })
  }

  /**
   * Stores many value records (IPNS records, say) the same way as
   * `provideMany`: each is validated and stored locally first (any invalid
   * record rejects the whole call with InvalidRecordError before anything is
   * sent), then the keyspace sweep delivers them with PUT_VALUE. `provided`
   * in the result counts records at least one peer confirmed storing.
   */
  async putMany (records: Iterable<{ key: Uint8Array, value: Uint8Array }>, options: BulkProvideOptions & RoutingOptions = {}): Promise<BulkProgress> {
    return this.accounting.track('putMany', async () => {
      const list = [...records]
      for (const r of list) {
        await this.values.validate(r.key, r.value, options)
      }
      const now = Date.now()
      for (const r of list) {
        await this.values.put(r.key, r.value, now, options)
      }
      return this.bulk.putMany(list, bulkOptions(options, 'put', 'priority-dht:put-many:progress'))
    })
  }

  /**
   * What the durability rules did: records handed to newcomers (and
   * dropped), held values re-published, sweeps run, records waiting for
   * handover
   */
  get durabilityStats (): DurabilityStats & { pending: number } {
    return { ...this.durability.stats, pending: this.durability.pending }
  }

  /** Runs a held-republish sweep now (the timer runs one every 10 minutes) */
  async republishHeld (): Promise<void> {
    await this.durability.sweep()
  }

  /** How many of our own CIDs are being re-announced */
  get reproviding (): number {
    return this.republisher.size
  }

  /** Stops re-announcing `cid` (records already out there expire on their own) */
  async cancelReprovide (cid: CID): Promise<void> {
    await this.republisher.remove(cid.multihash.bytes)
  }

  /** Yields PROVIDER events (and the lookup's events) for `cid` */
  findProviders (cid: CID, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('findProviders', this.withProgress(this.content.findProviders(cid, options), options))
  }

  /** Validates and stores a record locally and on the k closest peers */
  put (key: Uint8Array, value: Uint8Array, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('put', this.withProgress(this.content.put(key, value, options), options))
  }

  /** Yields one VALUE event with the best valid record for `key` */
  get (key: Uint8Array, options: RoutingOptions = {}): AsyncGenerator<QueryEvent, void, undefined> {
    return this.accounting.events('get', this.withProgress(this.content.get(key, options), options))
  }

  private async * withProgress (events: AsyncIterable<QueryEvent>, options: RoutingOptions): AsyncGenerator<QueryEvent, void, undefined> {
    for await (const event of events) {
      yield this.progress(event, options)
    }
  }

  private async getValue (key: Uint8Array, options?: RoutingOptions): Promise<Uint8Array> {
    for await (const event of this.get(key, options)) {
      if (event.name === 'VALUE') {
        return event.value
      }
    }
    throw new NotFoundError('no value found for that key')
  }

  private async * providerInfos (cid: CID, options?: RoutingOptions): AsyncGenerator<Provider> {
    for await (const event of this.findProviders(cid, options)) {
      if (event.name === 'PROVIDER') {
        for (const p of event.providers) {
          yield { ...p, routing: 'priority-dht' }
        }
      }
    }
  }

  private async findPeerInfo (peerId: PeerId, options?: RoutingOptions): Promise<PeerInfo> {
    for await (const event of this.findPeer(peerId, options)) {
      if (event.name === 'FINAL_PEER' && event.peer.id.equals(peerId)) {
        return event.peer
      }
    }
    throw new NotFoundError(`could not find ${peerId.toString()}`)
  }

  private async * closestPeerInfos (key: Uint8Array, options?: RoutingOptions): AsyncGenerator<PeerInfo> {
    for await (const event of this.getClosestPeers(key, options)) {
      if (event.name === 'FINAL_PEER') {
        yield event.peer
      }
    }
  }

  private progress (event: QueryEvent, options: RoutingOptions): QueryEvent {
    options.onProgress?.(new CustomProgressEvent(progressName(event), event))
    return event
  }

  private async localInfo (peerId: PeerId, options: AbortOptions): Promise<PeerInfo | undefined> {
    try {
      const peer = await this.components.peerStore.get(peerId, options)
      const info = this.mapper({ id: peerId, multiaddrs: peer.addresses.map(a => a.multiaddr) })
      return info.multiaddrs.length > 0 ? info : undefined
    } catch {
      return undefined
    }
  }

  /**
   * After a restart the saved peer values name who served us best: dial those
   * first (in the background, a few at a time), so the table fills with peers
   * that answer rather than whoever a bootstrap list offers.
   */
  private bootstrapFromBest (): void {
    const best = this.peerValues.best(BOOTSTRAP_BEST)
    if (best.length === 0 || this.coordinator.routingTable.size > 0) {
      return
    }
    const queue = [...best]
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id != null && this.running; id = queue.shift()) {
        try {
          this.accounting.dial('refresh')
          await this.components.connectionManager.openConnection(peerIdFromString(id), { signal: AbortSignal.timeout(this.peerValues.dialTimeout(id)) })
        } catch (err) {
          this.log('could not reach saved peer %s - %e', id, err)
        }
      }
    }
    void Promise.all([worker(), worker(), worker()])
  }

  private onNewPeer (peer: NewPeer): void {
    if (!this.running || peer.peerId.equals(this.components.peerId)) {
      return
    }
    const mapped = this.mapper({ id: peer.peerId, multiaddrs: [...peer.addresses] })
    const speaksDht = peer.protocols.includes(this.protocol)
    // a DHT server we could never tell anyone how to reach is of no use in the table
    const protocols = mapped.multiaddrs.length > 0 || !speaksDht ? peer.protocols : []
    this.driver.handle({ type: 'peer-identified', peer: withGroup(toContact(peer.peerId), mapped.multiaddrs), protocols, dialled: peer.dialled })
  }

  private onTableChange (change: 'added' | 'removed', peer: PeerContact): void {
    if (change === 'added') {
      this.regions?.arrived(peer.id, peer.key)
      this.durability.onPeerAdded(peer)
    } else {
      this.durability.onPeerRemoved(peer.id)
    }
    const tags = change === 'added' ? { [TABLE_TAG]: { value: 50 } } : { [TABLE_TAG]: undefined }
    this.components.peerStore.merge(peer.peerId, { tags }).catch(err => {
      this.log.trace('could not tag %p - %e', peer.peerId, err)
    })
    if (change === 'added' && this.coordinator.routingTable.size === 1 && this.selfLookup == null) {
      // the first peer: find our neighbourhood, then fill every bucket
      this.selfLookup = this.refresh(true).catch(err => {
        this.log('self lookup failed - %e', err)
      }).finally(() => {
        this.selfLookup = undefined
      })
    }
  }

  private announce (peer: PeerInfo): void {
    const id = peer.id.toString()
    if (this.announced.has(id)) {
      return
    }
    if (this.announced.size >= MAX_ANNOUNCED) {
      this.announced.clear()
    }
    this.announced.add(id)
    this.safeDispatchEvent('peer', { detail: peer })
  }

  private onPeerConnect (evt: CustomEvent<PeerId>): void {
    this.connected.add(evt.detail.toString())
  }

  /**
   * A peer we lost every connection to is held back for a while (the peer
   * stack's `suspectFor`): the next operation does not dial it and our
   * answers do not name it. Nothing is dialled to check it: after a node
   * went away, every peer that was connected to it would otherwise dial it
   * at once. libp2p announces the connections its pruner closed right after
   * closing them (`onPrune`): those closes were ours, and the suspicion is
   * taken back.
   */
  private onPeerDisconnect (evt: CustomEvent<PeerId>): void {
    const id = evt.detail.toString()
    this.connected.delete(id)
    // a DHT peer we know of (not any peer libp2p connected us to)
    if (this.running && (this.coordinator.routingTable.has(id) || this.peerValues.stack.stats(id) != null)) {
      this.driver.handle({ type: 'peer-disconnected', id })
    }
  }

  private onPrune (evt: CustomEvent<Connection[]>): void {
    for (const connection of evt.detail) {
      this.peerValues.observe(connection.remotePeer.toString(), { type: 'closed-by-us' })
    }
  }

  private onSelfPeerUpdate (): void {
    this.updateAutoMode()
  }

  /** Automatic mode: server while we have an address the mapper lets through */
  private updateAutoMode (): void {
    const addrs = this.components.addressManager.getAddresses()
    const dialable = this.mapper({ id: this.components.peerId, multiaddrs: addrs }).multiaddrs.length > 0
    this.setMode(dialable ? 'server' : 'client').catch(err => {
      this.log.error('could not switch mode - %e', err)
    })
  }
}

/** The region cache single provides and puts share, unless `init` is false */
function regionStore (init: RegionCacheInit | false | undefined, k: number, quality: PeerQuality, bucketSizes: () => number[]): RegionStore | undefined {
  if (init === false) {
    return undefined
  }
  return new RegionStore({ ...init, k, quality, networkSize: () => estimateNetworkSize(bucketSizes(), k) })
}

/**
 * Which peers get all of the inbound streams: those that served us recently
 * (active), or ever and are not bad now (inactive with a success); in
 * neutral mode every peer
 */
function valuation (stack: PeerStack, neutral?: boolean): ((peer: PeerId) => boolean) | undefined {
  if (neutral === true) {
    return undefined
  }
  return peer => {
    const id = peer.toString()
    const category = stack.category(id, Date.now())
    return category === 'active' || (category === 'inactive' && (stack.stats(id)?.successes ?? 0) > 0)
  }
}

async function drain (events: AsyncIterable<unknown>): Promise<void> {
  for await (const event of events) {
    void event
  }
}

function cidOfMultihash (bytes: Uint8Array): CID {
  return CID.createV1(RAW_CODE, Digest.decode(bytes))
}

function singlePath (): { index: number, queued: number, running: number, total: number } {
  return { index: 0, queued: 0, running: 0, total: 1 }
}

class CustomProgressEvent<T> extends Event implements ProgressEvent<string, T> {
  readonly detail: T
  constructor (type: string, detail: T) {
    super(type)
    this.detail = detail
  }
}

/** A bulk call's options for the sweep: its purpose, and progress as both a callback and progress events */
function bulkOptions (options: BulkProvideOptions & RoutingOptions, purpose: 'provide' | 'put', event: string): BulkProvideOptions & RoutingOptions & { purpose: 'provide' | 'put' } {
  return {
    ...options,
    purpose,
    onBulkProgress: progress => {
      options.onBulkProgress?.(progress)
      options.onProgress?.(new CustomProgressEvent(event, progress))
    }
  }
}
