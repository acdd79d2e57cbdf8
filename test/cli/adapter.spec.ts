/**
 * The daemon server's view of our DHT (`src/cli/adapter.ts`): what it reads
 * from findProviders and getClosestPeers events, on a fake service.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import all from 'it-all'
import { CID } from 'multiformats/cid'
import { daemonDHT } from '../../src/cli/adapter.ts'
import { MessageType } from '../../src/generated/dht.ts'
import { EventTypes } from '../../src/libp2p/events.ts'
import type { QueryEvent } from '../../src/libp2p/events.ts'
import type { PriorityDHT } from '../../src/libp2p/service.ts'
import type { ContentRouting, PeerId, PeerInfo } from '@libp2p/interface'

const path = { index: 0, queued: 0, running: 0, total: 1 }
const cid = CID.parse('bafkqaaa')

async function peers (n: number): Promise<PeerInfo[]> {
  return Promise.all(Array.from({ length: n }, async () => ({ id: peerIdFromPrivateKey(await generateKeyPair('Ed25519')), multiaddrs: [] })))
}

function response (from: PeerId, closer: PeerInfo[], providers: PeerInfo[] = []): QueryEvent {
  return { type: EventTypes.PEER_RESPONSE, name: 'PEER_RESPONSE', from, messageName: 'FIND_NODE', messageType: MessageType.FIND_NODE, closer, providers, path }
}

/** What the daemon server takes from events: providers and closer peers of PEER_RESPONSE events */
function served (events: QueryEvent[], field: 'providers' | 'closer'): string[] {
  return events.flatMap(e => e.name === 'PEER_RESPONSE' ? e[field].map(p => p.id.toString()) : [])
}

function fakeService (events: QueryEvent[]): PriorityDHT {
  async function * replay (): AsyncGenerator<QueryEvent> { yield * events }
  return { findProviders: replay, getClosestPeers: replay } as unknown as PriorityDHT
}

describe('cli/adapter: what the daemon server reads from our events', () => {
  it('findProviders hands over our PROVIDER events (local providers included), one provider per event, not the raw responses', async () => {
    const [self, remote, local, far, raw] = await peers(5)
    const events: QueryEvent[] = [
      { type: EventTypes.PROVIDER, name: 'PROVIDER', from: self.id, providers: [local], path },
      response(remote.id, [far], [raw, local, far]),
      { type: EventTypes.PROVIDER, name: 'PROVIDER', from: remote.id, providers: [raw, far], path }
    ]
    const out = await all(daemonDHT(fakeService(events), {} as unknown as ContentRouting).findProviders(cid))
    expect(served(out, 'providers')).to.deep.equal([local.id.toString(), raw.id.toString(), far.id.toString()])
    // one provider per event, so the server's count (checked after each event) stops it exactly
    expect(out.map(e => e.name === 'PEER_RESPONSE' ? e.providers.length : 0)).to.deep.equal([1, 1, 1])
  })

  it('getClosestPeers hands over the lookup\'s result (FINAL_PEER), not every peer a response named', async () => {
    const [a, b, heard, other] = await peers(4)
    const events: QueryEvent[] = [
      response(other.id, [a, b, heard]),
      { type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: other.id, peer: a, path },
      { type: EventTypes.FINAL_PEER, name: 'FINAL_PEER', from: other.id, peer: b, path }
    ]
    const out = await all(daemonDHT(fakeService(events), {} as unknown as ContentRouting).getClosestPeers(new Uint8Array(4)))
    expect(served(out, 'closer')).to.deep.equal([a.id.toString(), b.id.toString()])
  })

  it('provide goes through contentRouting.provide (where provide batching happens)', async () => {
    const provided: string[] = []
    const routing = { provide: async (c: CID) => { provided.push(c.toString()) } } as unknown as ContentRouting
    await all(daemonDHT(fakeService([]), routing).provide(cid))
    expect(provided).to.deep.equal([cid.toString()])
  })
})
