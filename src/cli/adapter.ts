/**
 * What `@libp2p/daemon-server` is given as `services.dht`: the six methods
 * its DHT handlers call, in the shape they read.
 *
 * The server reads `@libp2p/kad-dht`'s event streams its own way, so three
 * methods are adapted and three passed through:
 * - `findProviders`: the server reads providers from PEER_RESPONSE events
 * only (raw, repeated, never our own store's). Our PROVIDER events (local
 * providers first, each provider once, addresses filtered) are handed to
 * it as PEER_RESPONSE events carrying them.
 * - `getClosestPeers`: the server names every peer of every PEER_RESPONSE's
 * closer list, that is everyone the lookup heard of. We hand it the
 * lookup's result, the k closest that answered (FINAL_PEER events), one
 * PEER_RESPONSE each.
 * - `provide`: goes through `contentRouting.provide`, so with the
 * `provideBatching` option many clients' provides made close together
 * travel as one `provideMany` sweep.
 * - `get`, `put`, `findPeer`: our events already have the shape it reads
 * (one VALUE with the best record or a NotFoundError; FINAL_PEER only for
 * the peer asked for).
 */
import { MessageType } from '../generated/dht.ts'
import { EventTypes } from '../libp2p/events.ts'
import type { QueryEvent } from '../libp2p/events.ts'
import type { PriorityDHT } from '../libp2p/service.ts'
import type { ContentRouting, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface DaemonDHT {
  provide(cid: CID): AsyncGenerator<QueryEvent, void, undefined>
  findProviders(cid: CID): AsyncGenerator<QueryEvent, void, undefined>
  getClosestPeers(key: Uint8Array): AsyncGenerator<QueryEvent, void, undefined>
  get(key: Uint8Array): AsyncGenerator<QueryEvent, void, undefined>
  put(key: Uint8Array, value: Uint8Array): AsyncGenerator<QueryEvent, void, undefined>
  findPeer(peerId: PeerId): AsyncGenerator<QueryEvent, void, undefined>
}

export function daemonDHT (dht: PriorityDHT, contentRouting: ContentRouting): DaemonDHT {
  return {
    // eslint-disable-next-line require-yield -- the daemon server drains it and answers OK once it ends
    async * provide (cid) {
      await contentRouting.provide(cid)
    },
    async * findProviders (cid) {
      for await (const event of dht.findProviders(cid)) {
        if (event.name !== 'PROVIDER') {
          continue
        }
        // one provider per event: the server checks its count after each event
        for (const provider of event.providers) {
          yield { type: EventTypes.PEER_RESPONSE, name: 'PEER_RESPONSE', from: event.from, messageName: 'GET_PROVIDERS', messageType: MessageType.GET_PROVIDERS, closer: [], providers: [provider], path: event.path }
        }
      }
    },
    async * getClosestPeers (key) {
      for await (const event of dht.getClosestPeers(key)) {
        if (event.name === 'FINAL_PEER') {
          yield { type: EventTypes.PEER_RESPONSE, name: 'PEER_RESPONSE', from: event.from, messageName: 'FIND_NODE', messageType: MessageType.FIND_NODE, closer: [event.peer], providers: [], path: event.path }
        }
      }
    },
    get: (key) => dht.get(key),
    put: (key, value) => dht.put(key, value),
    findPeer: (peerId) => dht.findPeer(peerId)
  }
}
