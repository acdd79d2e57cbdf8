/**
 * Query events with the same `type` and `name` shapes as `@libp2p/kad-dht`'s
 * QueryEvent, so `@libp2p/daemon-server` and existing applications can consume
 * them unchanged.
 */
import type { MessageType } from '../generated/dht.ts'
import type { PeerId, PeerInfo } from '@libp2p/interface'

/** Numeric event types, equal to `@libp2p/kad-dht`'s `EventTypes` */
export const EventTypes = {
  SEND_QUERY: 0,
  PEER_RESPONSE: 1,
  FINAL_PEER: 2,
  QUERY_ERROR: 3,
  PROVIDER: 4,
  VALUE: 5,
  ADD_PEER: 6,
  DIAL_PEER: 7,
  PATH_ENDED: 8
} as const

export type MessageName = `${MessageType}`

/**
 * Where an event happened. We run one path per query (no disjoint paths), so
 * `index` is 0 and `total` 1; `queued` and `running` are the lookup's waiting
 * candidates and requests in flight.
 */
export interface DisjointPath {
  index: number
  queued: number
  running: number
  total: number
}

export interface DHTRecord {
  key: Uint8Array
  value: Uint8Array
  timeReceived?: Date
}

export interface SendQueryEvent { type: 0, name: 'SEND_QUERY', to: PeerId, messageName: MessageName, messageType: MessageType, path: DisjointPath }
export interface PeerResponseEvent { type: 1, name: 'PEER_RESPONSE', from: PeerId, messageName: MessageName, messageType: MessageType, closer: PeerInfo[], providers: PeerInfo[], record?: DHTRecord, path: DisjointPath }
export interface FinalPeerEvent { type: 2, name: 'FINAL_PEER', from: PeerId, peer: PeerInfo, path: DisjointPath }
export interface QueryErrorEvent { type: 3, name: 'QUERY_ERROR', from: PeerId, error: Error, path: DisjointPath }
export interface ProviderEvent { type: 4, name: 'PROVIDER', from: PeerId, providers: PeerInfo[], path: DisjointPath }
export interface ValueEvent { type: 5, name: 'VALUE', from: PeerId, value: Uint8Array, path: DisjointPath }
export interface AddPeerEvent { type: 6, name: 'ADD_PEER', peer: PeerId, path: DisjointPath }
export interface DialPeerEvent { type: 7, name: 'DIAL_PEER', peer: PeerId, path: DisjointPath }
export interface PathEndedEvent { type: 8, name: 'PATH_ENDED', path: DisjointPath }

export type QueryEvent = SendQueryEvent | PeerResponseEvent | FinalPeerEvent | QueryErrorEvent | ProviderEvent | ValueEvent | AddPeerEvent | DialPeerEvent | PathEndedEvent

export const SINGLE_PATH: DisjointPath = Object.freeze({ index: 0, queued: 0, running: 0, total: 1 })

/** Progress event names, as `@libp2p/kad-dht` reports them through `onProgress` */
export function progressName (event: QueryEvent): string {
  return `kad-dht:query:${event.name.toLowerCase().replace(/_/g, '-')}`
}
