/**
 * The fuzz target: the real inbound path of a DHT server in one process,
 * without a network. An `InboundHandler` whose dispatch is a real `Rpc`
 * over real record stores (an in-memory datastore), a real routing table
 * (a `Coordinator` with peers in it) and a real libp2p peer store, wired as
 * `service.ts` wires them. Inputs enter through `InboundHandler.answer`, the
 * function every inbound stream's loop calls with each message body.
 *
 * Canaries: valid records stored before the run (a `/pk/` record, IPNS
 * records, provider records of peers that never send fuzz input) that must
 * read back identical afterwards.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { memory } from '@libp2p/memory'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p } from 'libp2p'
import { Coordinator } from '../../src/core/coordinator.ts'
import { SeededRandom } from '../../src/core/env.ts'
import { HandlerAbortedError, InvalidMessageError, MessageTooLargeError, RateLimitedError } from '../../src/libp2p/errors.ts'
import { InboundHandler } from '../../src/libp2p/handler.ts'
import { passthroughMapper, toContact } from '../../src/libp2p/peer-info.ts'
import { Rpc } from '../../src/libp2p/rpc.ts'
import { ProviderStore, ProviderStoreFullError } from '../../src/records/provider-store.ts'
import { InvalidRecordError, SelectorError } from '../../src/records/validation.ts'
import { ValueStore, ValueStoreFullError } from '../../src/records/value-store.ts'
import { ipnsKey, ipnsRecord, mh, pkRecord } from '../records/fixtures.ts'
import type { InboundHandlerInit } from '../../src/libp2p/handler.ts'
import type { ProviderStoreInit } from '../../src/records/provider-store.ts'
import type { ValueStoreInit } from '../../src/records/value-store.ts'
import type { ComponentLogger, Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import type { AddressManager, Registrar } from '@libp2p/interface-internal'

export const PROTOCOL = '/ipfs/kad/1.0.0'

/** Errors the inbound path may throw for a hostile message; anything else is a crash */
export const TYPED_ERRORS = [InvalidMessageError, RateLimitedError, MessageTooLargeError, HandlerAbortedError, InvalidRecordError, ProviderStoreFullError, ValueStoreFullError, SelectorError]

export function isTyped (err: unknown): boolean {
  return TYPED_ERRORS.some(E => err instanceof E)
}

export interface Canary {
  kind: 'value' | 'provider'
  key: Uint8Array
  value?: Uint8Array
  provider?: string
}

export interface Target {
  node: Libp2p
  handler: InboundHandler
  rpc: Rpc
  providers: ProviderStore
  values: ValueStore
  self: PeerId
  /** peers that send fuzz input (the fuzz picks one per input) */
  senders: PeerId[]
  /** peers in the routing table (named in answers) */
  tablePeers: PeerId[]
  /** keys that sign IPNS records the fuzz may replay (not the canaries' keys) */
  ipnsKeys: PrivateKey[]
  canaries: Canary[]
  stop(): Promise<void>
}

export interface TargetOptions {
  senders?: number
  tablePeers?: number
  handler?: Partial<InboundHandlerInit>
  providers?: ProviderStoreInit
  values?: Omit<ValueStoreInit, 'validators' | 'selectors'>
}

/** A test namespace `/v/`: values up to 256 bytes not starting with 0xff are valid; the longer wins */
const validators = {
  v: (key: Uint8Array, value: Uint8Array): void => {
    if (value.byteLength > 256 || value[0] === 0xff) {
      throw new Error('not a valid /v/ value')
    }
  }
}
const selectors = {
  v: (key: Uint8Array, values: Uint8Array[]): number => {
    let best = 0
    values.forEach((v, i) => { if (v.byteLength > values[best].byteLength) { best = i } })
    return best
  }
}

async function ed25519Peer (): Promise<{ key: PrivateKey, id: PeerId }> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key) }
}

export async function createTarget (options: TargetOptions = {}): Promise<Target> {
  let captured: { registrar: Registrar, addressManager: AddressManager, logger: ComponentLogger } | undefined
  const node = await createLibp2p({
    addresses: { listen: [`/memory/fuzz-${Math.random().toString(36).slice(2)}`] },
    transports: [memory()],
    services: {
      capture: (components: any) => {
        captured = components
        return {}
      }
    }
  })
  if (captured == null) {
    throw new Error('components not captured')
  }
  const components = { peerId: node.peerId, peerStore: node.peerStore, addressManager: captured.addressManager, registrar: captured.registrar, logger: captured.logger }
  const datastore = new MemoryDatastore()
  const providers = new ProviderStore(datastore, { maxKeys: 2000, ...options.providers })
  const values = new ValueStore(datastore, { maxRecords: 500, ...options.values, validators, selectors })
  const coordinator = new Coordinator(toContact(node.peerId), { protocols: [PROTOCOL] }, new SeededRandom(1), Date.now())

  const tablePeers: PeerId[] = []
  for (let i = 0; i < (options.tablePeers ?? 40); i++) {
    const { id } = await ed25519Peer()
    await node.peerStore.merge(id, { multiaddrs: [multiaddr(`/ip4/10.0.${i >> 8}.${i & 255}/tcp/4001`)] })
    coordinator.handle({ type: 'peer-identified', peer: toContact(id), protocols: [PROTOCOL], dialled: true }, Date.now())
    tablePeers.push(id)
  }
  const senders: PeerId[] = []
  for (let i = 0; i < (options.senders ?? 16); i++) {
    senders.push((await ed25519Peer()).id)
  }

  const rpc = new Rpc(components, { coordinator, mapper: passthroughMapper, providers, values, onInbound: from => { coordinator.handle({ type: 'inbound-request', from }, Date.now()) } })
  const handler = new InboundHandler(components, {
    protocol: PROTOCOL,
    // the rate limits are exercised, but must not refuse most of the run
    requestsPerSecond: 1_000_000,
    requestBurst: 1_000_000,
    ...options.handler
  }, async (from, message, _connection, opts) => rpc.dispatch(from, message, opts))

  // canaries: stored before the run, by peers that never send fuzz input
  const canaries: Canary[] = []
  const now = Date.now()
  for (let i = 0; i < 3; i++) {
    const owner = await ed25519Peer()
    const pk = pkRecord(owner.key)
    await values.put(pk.key, pk.value, now)
    canaries.push({ kind: 'value', key: pk.key, value: pk.value })
    const ipns = await ipnsRecord(owner.key, 5)
    await values.put(ipnsKey(owner.key), ipns, now)
    canaries.push({ kind: 'value', key: ipnsKey(owner.key), value: ipns })
    const key = await mh(`canary-${i}`)
    await providers.addProvider(key, owner.id, now)
    canaries.push({ kind: 'provider', key, provider: owner.id.toString() })
  }
  const ipnsKeys = await Promise.all([1, 2, 3, 4].map(async () => generateKeyPair('Ed25519')))

  return {
    node,
    handler,
    rpc,
    providers,
    values,
    self: node.peerId,
    senders,
    tablePeers,
    ipnsKeys,
    canaries,
    stop: async () => { await node.stop() }
  }
}

/** Canaries that no longer read back identical (empty: none lost or changed) */
export async function lostCanaries (target: Target): Promise<Canary[]> {
  const lost: Canary[] = []
  const now = Date.now()
  for (const c of target.canaries) {
    if (c.kind === 'value') {
      const stored = await target.values.get(c.key, now)
      if (stored == null || !equal(stored.value, c.value ?? new Uint8Array())) {
        lost.push(c)
      }
    } else if (!(await target.providers.getProviders(c.key, now)).includes(c.provider ?? '')) {
      lost.push(c)
    }
  }
  return lost
}

function equal (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i])
}
