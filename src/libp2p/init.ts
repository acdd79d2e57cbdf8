/**
 * The init options and components of the service, apart from `index.ts` so
 * the service class can import them without an import circle.
 */
import type { ProvideBatchingInit } from './batcher.ts'
import type { InboundHandlerInit } from './handler.ts'
import type { MessengerInit } from './messenger.ts'
import type { PeerInfoMapper } from './peer-info.ts'
import type { PeerValuesInit } from './peer-values.ts'
import type { RegionCacheInit } from './regions.ts'
import type { RepublisherInit } from './republisher.ts'
import type { ProviderQuotaInit } from './rpc.ts'
import type { RepublishScheduleConfig } from '../core/maintenance/schedule.ts'
import type { PeerStackConfig } from '../core/peer-stack/index.ts'
import type { DurabilityConfig } from '../core/publish/durability.ts'
import type { LookupConfig } from '../core/query/config.ts'
import type { RoutingTableConfig } from '../core/routing-table/config.ts'
import type { ProviderStoreInit } from '../records/provider-store.ts'
import type { Selectors, Validators } from '../records/validation.ts'
import type { ValueStoreInit } from '../records/value-store.ts'
import type { ComponentLogger, Libp2pEvents, Metrics, PeerId, PeerStore, PrivateKey, TypedEventTarget } from '@libp2p/interface'
import type { AddressManager, ConnectionManager, Registrar } from '@libp2p/interface-internal'
import type { Datastore } from 'interface-datastore'

export interface PriorityDHTInit {
  /**
   * The protocol spoken and served.
   *
   * @default '/ipfs/kad/1.0.0'
   */
  protocol?: string
  /**
   * true: never answer DHT queries (others never add us); false: always
   * answer. Unset: answer while we have an address the `peerInfoMapper` keeps.
   *
   * @default undefined (automatic)
   */
  clientMode?: boolean
  /**
   * Bucket size and lookup result size (Kademlia's k).
   *
   * @default 20
   */
  kBucketSize?: number
  /**
   * Requests in flight per lookup (Kademlia's α).
   *
   * @default 3
   */
  alpha?: number
  /**
   * Disjoint paths of `get` and `findProviders` lookups (S/Kademlia, as
   * `@libp2p/kad-dht`'s option of the same name): that many lookups, each
   * from every d-th of our closest peers, learning only from its own
   * responses, no peer asked by two of them, so peers that name only each
   * other near a key must capture every path to hide its record. FIND_NODE
   * lookups (provide, put, getClosestPeers) use one path.
   *
   * @default 3 (range 1..16)
   */
  disjointPaths?: number
  /**
   * Filters addresses we use and share. The default keeps public addresses
   * only; local networks and tests want `passthroughMapper`.
   *
   * @default removePrivateAddressesMapper
   */
  peerInfoMapper?: PeerInfoMapper
  /**
   * Lookups running at once; more wait their turn.
   *
   * @default 64
   */
  maxConcurrentQueries?: number
  /**
   * Queries allowed to wait for a slot; beyond it they fail with
   * QueryOverloadedError.
   *
   * @default 1024
   */
  maxQueuedQueries?: number
  /**
   * Seed for the core's random source (tie breaks, refresh keys).
   *
   * @default random
   */
  seed?: number
  /** Fine tuning of the routing table (see RoutingTableConfig for defaults) */
  routingTable?: Partial<RoutingTableConfig>
  /** Fine tuning of lookups (see LookupConfig for defaults) */
  lookup?: Partial<LookupConfig>
  /** Timeouts and bounds of outbound requests (see MessengerInit) */
  network?: Partial<Omit<MessengerInit, 'protocol'>>
  /**
   * Bounds and limits of the inbound handler (see InboundHandlerInit): per
   * connection, per peer and global stream caps, a per-peer token bucket of
   * requests for valued peers, one pool shared by heavy strangers, and a
   * global cap on requests in flight.
   *
   * @default { maxStreams: 1024, maxStreamsPerPeer: 32, maxRequestsInFlight: 128, requestsPerSecond: 1000, requestBurst: 2000, strangerRequestsPerSecond: 300, strangerRequestBurst: 600, lightRequestsPerSecond: 100, lightRequestBurst: 20, maxRequestDelay: 2000, maxTrackedPeers: 4096 }
   */
  inbound?: Partial<Omit<InboundHandlerInit, 'protocol' | 'isValued'>>
  /**
   * Provider records one peer may add through ADD_PROVIDER per window (see
   * ProviderQuotaInit); entries beyond it are ignored.
   *
   * @default { records: 25000, window: 3600000, maxPeers: 4096 }
   */
  providerQuota?: ProviderQuotaInit
  /**
   * Record validators by namespace without slashes (`pk`, `ipns` built in),
   * as `@libp2p/kad-dht` takes them.
   */
  validators?: Validators
  /** Record selectors by namespace (`pk`, `ipns` built in) */
  selectors?: Selectors
  /** Provider record store (see ProviderStoreInit: validity 48 h, 64 providers per key, 100k keys) */
  providers?: ProviderStoreInit
  /** Value record store (see ValueStoreInit: validity 48 h, 10k records, 10 KiB each) */
  records?: Omit<ValueStoreInit, 'validators' | 'selectors'>
  /** Republishing of our own provider records (interval 22 h + up to 10% jitter) */
  reprovide?: RepublisherInit & { schedule?: Partial<RepublishScheduleConfig> }
  /**
   * Valid records a get collects before it chooses the best one.
   *
   * @default 16
   */
  getQuorum?: number
  /**
   * Providers a findProviders yields before it stops.
   *
   * @default 20
   */
  maxProviders?: number
  /**
   * Peers that must have taken a provider or value record before provide or
   * put reports success. The record still goes to all k closest reachable
   * peers: deliveries beyond the quorum finish in the background.
   *
   * @default ceil(kBucketSize / 2)
   */
  putQuorum?: number
  /**
   * Puts that may keep delivering in the background after reporting success;
   * beyond this a put waits for all its deliveries.
   *
   * @default 64
   */
  maxBackgroundPuts?: number
  /**
   * Milliseconds a put keeps waiting for the remaining deliveries once the
   * quorum has the record (they then finish in the background).
   *
   * @default 200
   */
  putGrace?: number
  /**
   * Tuning of the priority peer stack: decay, back-off, exploration budget,
   * timeout floors and ceilings (see PeerStackConfig and docs/peer-stack.md).
   */
  peerStack?: Partial<PeerStackConfig>
  /** Tag and persistence cadence of peer values (see PeerValuesInit) */
  peerValues?: PeerValuesInit
  /**
   * Bulk provide: keys handled per chunk (memory holds one chunk).
   *
   * @default { chunkSize: 1024 }
   */
  bulk?: { chunkSize?: number }
  /**
   * Transparent batching of `libp2p.contentRouting.provide` calls: calls
   * arriving within `window` ms go out together through the bulk path (one
   * lookup per keyspace region, one exchange per peer); each call still
   * resolves when its record reached a peer and rejects when none took it.
   * `dht.provide()` (the event generator) is never batched. Off unless set.
   *
   * @default undefined (off); when set: { window: 50, maxKeys: 1024, maxPending: 10000 }
   */
  provideBatching?: ProvideBatchingInit
  /**
   * Reuse of recent lookups by single `provide` and `put` calls (and
   * `contentRouting.provide`/`put`): every FIND_NODE lookup that converged
   * leaves its keyspace region (the keys whose k closest it found) in a
   * bounded cache; a later provide or put of a key in a fresh region, with at
   * least k of its peers not in back-off and not failed since, goes straight
   * to them; one whose region is being looked up by another call waits for
   * that lookup. `false` turns it off (one lookup per call).
   *
   * @default { freshFor: 300000, maxRegions: 256, maxInFlight: 64, joinMargin: 1 }
   */
  regionCache?: RegionCacheInit | false
  /**
   * The durability rules (README, "Durability"): records handed to a peer
   * newly admitted to the routing table when it is among their key's k
   * closest and we are the nearest holder (values, and our own provider
   * records: ADD_PROVIDER cannot carry someone else's); a get storing the
   * best value at the closest peer that answered without one; values held
   * re-published hourly unless someone else stored them within the hour.
   * Each rule can be switched off.
   *
   * @default { handover: true, handoverSenders: 1, handoverRate: 600, maxHandoverKeys: 10000, maxHandoverPeers: 64, maxHandoverBatch: 100, storeOnGet: true, heldRepublish: true, heldRepublishInterval: 3600000 }
   */
  durability?: Partial<DurabilityConfig>
  /**
   * Treat every peer alike, as classic Kademlia does: no hedging, no back-off,
   * no value ordering, fixed timeouts. Observations are still recorded. For
   * comparisons (the benchmark and simulator use it), not for production.
   *
   * @default false
   */
  neutral?: boolean
  /**
   * Prefix of every metric name (README, "Operating a node"); metrics exist
   * only when libp2p has a metrics component.
   *
   * @default 'priority_dht'
   */
  metricsPrefix?: string
}

export interface PriorityDHTComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  addressManager: AddressManager
  peerStore: PeerStore
  connectionManager: ConnectionManager
  datastore: Datastore
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
  /** libp2p's metrics, when configured: the service's metrics register there (README, "Operating a node") */
  metrics?: Metrics
}
