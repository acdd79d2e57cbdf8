/**
 * @packageDocumentation
 *
 * priority-dht: a Kademlia DHT for js-libp2p that speaks `/ipfs/kad/1.0.0`
 * and learns which peers answer.
 *
 * @example
 *
 * ```ts
 * import { createLibp2p } from 'libp2p'
 * import { identify } from '@libp2p/identify'
 * import { priorityDHT } from 'priority-dht'
 *
 * const node = await createLibp2p({
 *   // transports, connectionEncrypters, streamMuxers ...
 *   services: {
 *     identify: identify(),
 *     dht: priorityDHT({ clientMode: false })
 *   }
 * })
 * const peer = await node.peerRouting.findPeer(someId)
 * ```
 */
import { PriorityDHT } from './libp2p/service.ts'
import type { PriorityDHTComponents, PriorityDHTInit } from './libp2p/init.ts'

/** The service factory, for `createLibp2p({ services: { dht: priorityDHT() } })` */
export function priorityDHT (init: PriorityDHTInit = {}): (components: PriorityDHTComponents) => PriorityDHT {
  return (components) => new PriorityDHT(components, init)
}

export { PriorityDHT }
export type { PriorityDHTComponents, PriorityDHTInit } from './libp2p/init.ts'
export { passthroughMapper, removePrivateAddressesMapper } from './libp2p/peer-info.ts'
export type { PeerInfoMapper } from './libp2p/peer-info.ts'
export { EventTypes } from './libp2p/events.ts'
export type { QueryEvent, DisjointPath, DHTRecord } from './libp2p/events.ts'
export { RequestFailedError } from './libp2p/errors.ts'
export type { FailureReason } from './libp2p/errors.ts'
export { QueryOverloadedError } from './libp2p/slots.ts'
export { InvalidConfigError } from './core/routing-table/config.ts'
export { InvalidRecordError } from './records/validation.ts'
export type { Validators, Selectors, ValidateFn, SelectFn } from './records/validation.ts'
export { NoPeersError, PutFailedError, ServiceStoppedError } from './libp2p/errors.ts'
export { BulkAbortedError } from './libp2p/bulk.ts'
export type { BulkProgress, BulkProvideOptions } from './libp2p/bulk.ts'
export type { ProvideBatchingInit, ProvideBatchStats } from './libp2p/batcher.ts'
export type { RegionCacheInit, RegionCacheStats } from './libp2p/regions.ts'
export type { DurabilityConfig } from './core/publish/durability.ts'
export type { DurabilityStats } from './libp2p/durability.ts'
export type { DHTMode, PeerValueInfo } from './libp2p/service.ts'
export { PURPOSES, METRICS_PREFIX } from './libp2p/metrics.ts'
export type { Purpose, Usage, UsageFigures, TrafficFigures } from './libp2p/metrics.ts'
export type { Category, PeerStackConfig, Observation } from './core/peer-stack/index.ts'
export { VALUE_TAG } from './libp2p/peer-values.ts'
