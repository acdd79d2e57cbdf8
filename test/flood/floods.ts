/**
 * Floods against a priority-dht server on 127.0.0.1 (TCP, noise, yamux), and
 * an honest peer measuring its requests meanwhile. Used by
 * test/flood/flood.spec.ts (small sizes, behaviour only) and by
 * `npm run flood` (benchmarks/flood.ts: full sizes, latency figures).
 *
 * Flooders are plain libp2p nodes that speak the DHT wire protocol by hand
 * (length-prefixed protobuf on raw streams), as a hostile peer would.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { sha256 } from 'multiformats/hashes/sha2'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { LOCAL_CONNECTIONS, createOurNode } from '../libp2p/fixtures/network.ts'
import { pkRecord } from '../records/fixtures.ts'
import type { PriorityDHTInit } from '../../src/index.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { Connection, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Datastore } from 'interface-datastore'

export const PROTOCOL = '/ipfs/kad/1.0.0'

/** A libp2p node with no DHT service: it speaks the protocol by hand */
export async function createRawNode (privateKey?: PrivateKey): Promise<Libp2p> {
  return createLibp2p({
    privateKey,
    connectionManager: { ...LOCAL_CONNECTIONS },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: 10_000, maxOutboundStreams: 10_000 } as any)]
  })
}

export async function createServer (init: PriorityDHTInit = {}, datastore?: Datastore): Promise<OurNode> {
  return createOurNode(init, { datastore })
}

/** Provider records and distinct keys in a server's datastore (default prefix) */
export async function providerRecords (datastore: Datastore): Promise<{ keys: number, records: number }> {
  const keys = new Set<string>()
  let records = 0
  for await (const key of datastore.queryKeys({ prefix: '/dht/providers/' })) {
    keys.add(key.toString().split('/')[3])
    records++
  }
  return { keys: keys.size, records }
}

export async function multihashOf (s: string): Promise<Uint8Array<ArrayBuffer>> {
  return (await sha256.digest(new TextEncoder().encode(s))).bytes as Uint8Array<ArrayBuffer>
}

/** One request on a fresh stream: write, read the answer, close */
export async function request (node: Libp2p, server: Multiaddr[] | PeerId, msg: Partial<Message> & { type: MessageType }, signal?: AbortSignal): Promise<Message> {
  const stream = await node.dialProtocol(server as any, PROTOCOL, { signal })
  try {
    const lp = lpStream(stream)
    await lp.write(Message.encode(msg), { signal })
    const answer = Message.decode(await lp.read({ signal }))
    await stream.close({ signal })
    return answer
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/** Writes a message that takes no answer on a fresh stream and closes it */
export async function send (node: Libp2p, server: Multiaddr[] | PeerId, msg: Partial<Message> & { type: MessageType }): Promise<void> {
  const stream = await node.dialProtocol(server as any, PROTOCOL)
  const lp = lpStream(stream)
  await lp.write(Message.encode(msg))
  await stream.close()
}

export interface Honest {
  node: Libp2p
  /** the honest peer's value record (a /pk/ record) and provider key, stored on the server */
  valueKey: Uint8Array<ArrayBuffer>
  value: Uint8Array
  providerKey: Uint8Array<ArrayBuffer>
}

/** An honest peer that stored a value record and a provider record on the server */
export async function createHonest (server: OurNode): Promise<Honest> {
  const key = await generateKeyPair('Ed25519')
  const node = await createRawNode(key)
  const pk = pkRecord(key)
  const valueKey = pk.key as Uint8Array<ArrayBuffer>
  const providerKey = await multihashOf(`honest-${node.peerId.toString()}`)
  const addrs = server.getMultiaddrs()
  const put = await request(node, addrs, { type: MessageType.PUT_VALUE, key: valueKey, record: { key: valueKey, value: pk.value as Uint8Array<ArrayBuffer> } })
  if (put.record?.value == null) {
    throw new Error('server did not store the honest record')
  }
  await send(node, addrs, { type: MessageType.ADD_PROVIDER, key: providerKey, providerPeers: [{ id: node.peerId.toMultihash().bytes, addrs: node.getMultiaddrs().map(a => a.bytes) }] })
  return { node, valueKey, value: pk.value, providerKey }
}

export interface ProbeResult {
  latencies: number[]
  failures: string[]
  /** honest records not found in an answer */
  missing: number
}

/**
 * The honest peer's requests, one after another (each on a fresh stream, as
 * @libp2p/kad-dht clients do): GET_VALUE of its record, GET_PROVIDERS of its
 * key, FIND_NODE; until `stop` fires or `count` requests were made. Every
 * answer is checked for the honest records.
 */
export async function probe (honest: Honest, server: OurNode, opts: { count?: number, stop?: AbortSignal, gap?: number }): Promise<ProbeResult> {
  const result: ProbeResult = { latencies: [], failures: [], missing: 0 }
  for (let i = 0; (opts.count == null || i < opts.count) && opts.stop?.aborted !== true; i++) {
    const kind = i % 3
    const started = performance.now()
    try {
      if (kind === 0) {
        const res = await request(honest.node, server.peerId, { type: MessageType.GET_VALUE, key: honest.valueKey }, AbortSignal.timeout(20_000))
        if (res.record?.value == null || !equal(res.record.value, honest.value)) {
          result.missing++
        }
      } else if (kind === 1) {
        const res = await request(honest.node, server.peerId, { type: MessageType.GET_PROVIDERS, key: honest.providerKey }, AbortSignal.timeout(20_000))
        if (!res.providerPeers.some(p => equal(p.id, honest.node.peerId.toMultihash().bytes))) {
          result.missing++
        }
      } else {
        await request(honest.node, server.peerId, { type: MessageType.FIND_NODE, key: honest.providerKey }, AbortSignal.timeout(20_000))
      }
      result.latencies.push(performance.now() - started)
    } catch (err: any) {
      result.failures.push(`${err?.name}: ${err?.message}`)
    }
    if (opts.gap != null) {
      await new Promise(resolve => setTimeout(resolve, opts.gap))
    }
  }
  return result
}

export interface FloodResult {
  /** messages or streams the flooder got out */
  sent: number
  /** answers it got back */
  answered: number
  /** streams the server reset or refused */
  resets: number
}

/**
 * One peer opening `count` streams over `connections` connections, each
 * sending a PING and then holding the stream open until `hold` ends.
 */
export async function floodStreams (node: Libp2p, server: Multiaddr[], count: number, connections: number, hold: AbortSignal): Promise<FloodResult> {
  const result: FloodResult = { sent: 0, answered: 0, resets: 0 }
  const conns: Connection[] = []
  for (let i = 0; i < connections; i++) {
    conns.push(await node.dial(server, { force: true } as any))
  }
  const open: Stream[] = []
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    let stream: Stream
    try {
      stream = await conns[i % conns.length].newStream(PROTOCOL)
    } catch {
      result.resets++
      return
    }
    open.push(stream)
    result.sent++
    try {
      const lp = lpStream(stream)
      await lp.write(Message.encode({ type: MessageType.PING }))
      await lp.read({ signal: hold })
      result.answered++
    } catch {
      if (!hold.aborted) {
        result.resets++
      }
    }
  }))
  await new Promise(resolve => { if (hold.aborted) { resolve(undefined) } else { hold.addEventListener('abort', resolve, { once: true }) } })
  for (const s of open) {
    s.abort(new Error('flood over'))
  }
  for (const c of conns) {
    await c.close().catch(() => {})
  }
  return result
}

/**
 * One peer sending requests as fast as it can: `streams` streams, each
 * writing `make(i)` messages back to back without waiting for answers (and
 * reading whatever answers come), reopening a stream the server resets,
 * until `total` messages were written or `stop` fires.
 */
export async function floodRequests (node: Libp2p, server: Multiaddr[] | PeerId, make: (i: number) => Partial<Message> & { type: MessageType }, opts: { total: number, streams: number, stop?: AbortSignal, answers?: boolean }): Promise<FloodResult> {
  const result: FloodResult = { sent: 0, answered: 0, resets: 0 }
  let next = 0
  const share = Math.ceil(opts.total / opts.streams)
  const stopped = (): boolean => opts.stop?.aborted ?? false
  await Promise.all(Array.from({ length: opts.streams }, async () => {
    // each stream sends its share, so all of them are busy at once
    let mine = Math.min(share, opts.total - next)
    next += mine
    let n = next - mine
    while (mine > 0 && opts.stop?.aborted !== true) {
      let stream: Stream
      try {
        stream = await node.dialProtocol(server as any, PROTOCOL)
      } catch {
        result.resets++
        await new Promise(resolve => setTimeout(resolve, 10))
        continue
      }
      const lp = lpStream(stream)
      const onStop = (): void => { stream.abort(new Error('flood over')) }
      opts.stop?.addEventListener('abort', onStop, { once: true })
      const reader = opts.answers === false
        ? Promise.resolve()
        : (async (): Promise<void> => {
            try {
              while (true) {
                await lp.read()
                result.answered++
              }
            } catch {}
          })()
      try {
        while (mine > 0 && !(opts.stop?.aborted ?? false) && stream.status === 'open') {
          const batch = []
          for (let b = 0; b < 16 && mine > 0; b++, mine--) {
            batch.push(Message.encode(make(n++)))
          }
          await lp.writeV(batch)
          result.sent += batch.length
          await new Promise(resolve => setImmediate(resolve))
        }
        await stream.close()
      } catch {
        stream.abort(new Error('reset'))
      }
      await reader
      opts.stop?.removeEventListener('abort', onStop)
      if (stopped()) {
        break
      }
      // without reading, the remote's end is not seen closing: only a failed write tells
      if (stream.status === 'reset' || stream.status === 'aborted' || (opts.answers !== false && stream.remoteWriteStatus !== 'closed')) {
        result.resets++
      }
    }
  }))
  return result
}

/**
 * ADD_PROVIDER for `peers * keysPerPeer` random keys from `peers` fresh peer
 * ids, `concurrency` of them at once, each naming itself as the provider (the
 * only entries a server accepts), as fast as it can.
 */
export async function floodProviders (server: Multiaddr[], peers: number, keysPerPeer: number, concurrency: number, stop?: AbortSignal, streams = 1): Promise<FloodResult & { peers: number }> {
  const result = { sent: 0, answered: 0, resets: 0, peers: 0 }
  let nextPeer = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (nextPeer < peers && stop?.aborted !== true) {
      const p = nextPeer++
      const node = await createRawNode()
      try {
        const self = { id: node.peerId.toMultihash().bytes, addrs: [] }
        const r = await floodRequests(node, server, i => {
          const key = new Uint8Array(34)
          key[0] = 0x12
          key[1] = 32
          crypto.getRandomValues(key.subarray(2))
          void i
          return { type: MessageType.ADD_PROVIDER, key, providerPeers: [self] }
        }, { total: keysPerPeer, streams, stop, answers: false })
        result.sent += r.sent
        result.resets += r.resets
        result.peers++
      } finally {
        await node.stop()
      }
      void p
    }
  }))
  return result
}

export function randomKey (): Uint8Array<ArrayBuffer> {
  const key = new Uint8Array(34)
  key[0] = 0x12
  key[1] = 32
  crypto.getRandomValues(key.subarray(2))
  return key
}

function equal (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i])
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) {
    return NaN
  }
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}
