/**
 * Fuzz inputs for the inbound path: message bodies (what one length-prefixed
 * frame carries) from one of the target's senders.
 *
 * Two families, both fast-check arbitraries (seeded):
 * - structured: valid protobuf of a `Message` with hostile values: empty,
 * oversize and wrong-namespace keys, up to 150 closer/provider peers (over
 * the decode limit of 100), garbage, empty and huge peer ids and
 * multiaddrs, records of the wrong type or for another namespace, invalid,
 * tampered and expired IPNS, ADD_PROVIDER naming other peers, unknown
 * message types and fields (deeply nested groups too), truncated and
 * concatenated bodies;
 * - mutated: a real message (a request as our clients encode it, or an
 * answer the target itself gave) with bytes flipped, set, inserted, deleted,
 * a range duplicated, truncated, or spliced with another.
 */
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import fc from 'fast-check'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { toPbPeer } from '../../src/libp2p/peer-info.ts'
import { expiredIpnsRecord, ipnsKey, ipnsRecord, pkRecord, tamper } from '../records/fixtures.ts'
import type { Target } from './target.ts'
import type { Peer, Record as PbRecord } from '../../src/generated/dht.ts'

export interface FuzzInput {
  /** index into target.senders */
  sender: number
  bytes: Uint8Array
  /** which generator made it, for the report */
  family: 'structured' | 'mutated' | 'raw'
}

const enc = new TextEncoder()

// hand-made protobuf pieces, for what the generated encoder refuses to write
export function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}
function field (no: number, wire: number): number[] {
  return varint(no * 8 + wire)
}
function bytesField (no: number, bytes: Uint8Array | number[]): number[] {
  return [...field(no, 2), ...varint(bytes.length), ...bytes]
}

/** Values collected once (signing is slow), replayed by the arbitraries */
export interface Pool {
  peerIds: Uint8Array[]
  addrs: Uint8Array[]
  records: Array<{ key: Uint8Array, value: Uint8Array }>
  corpus: Uint8Array[]
}

export async function makePool (target: Target): Promise<Pool> {
  const peerIds = [...target.senders, ...target.tablePeers.slice(0, 4), target.self].map(p => p.toMultihash().bytes)
  const addrs = ['/ip4/1.2.3.4/tcp/4001', '/ip6/::1/udp/4001/quic-v1', '/dns4/example.com/tcp/443/wss', '/ip4/127.0.0.1/tcp/1/p2p/' + target.senders[0].toString()]
    .map(a => multiaddr(a).bytes)
  const records: Pool['records'] = []
  for (const key of target.ipnsKeys) {
    const good = await ipnsRecord(key, 1)
    records.push({ key: ipnsKey(key), value: good })
    records.push({ key: ipnsKey(key), value: await ipnsRecord(key, 2) })
    records.push({ key: ipnsKey(key), value: tamper(good) })
    records.push({ key: ipnsKey(key), value: await expiredIpnsRecord(key, 3) })
    const pk = pkRecord(key)
    records.push(pk)
    records.push({ key: pk.key, value: good }) // an IPNS record under a /pk/ key
    records.push({ key: ipnsKey(key), value: publicKeyToProtobuf(key.publicKey) }) // and the reverse
  }
  // a record of someone else's namespace and of ours that the canaries use
  for (const c of target.canaries) {
    if (c.value != null) {
      records.push({ key: c.key, value: c.value })
    }
  }
  records.push({ key: enc.encode('/v/hello'), value: enc.encode('world') })
  records.push({ key: enc.encode('/unknown/x'), value: enc.encode('y') })

  // requests as our clients encode them, and answers the target gave them
  const corpus: Uint8Array[] = []
  const provider = toPbPeer({ id: target.senders[0], multiaddrs: [multiaddr('/ip4/1.2.3.4/tcp/4001')] })
  const requests: Array<Partial<Message> & { type: MessageType }> = [
    { type: MessageType.PING },
    { type: MessageType.FIND_NODE, key: target.tablePeers[0].toMultihash().bytes },
    { type: MessageType.FIND_NODE, key: target.self.toMultihash().bytes },
    { type: MessageType.GET_PROVIDERS, key: target.canaries[2].key as Uint8Array<ArrayBuffer> },
    { type: MessageType.ADD_PROVIDER, key: target.canaries[2].key as Uint8Array<ArrayBuffer>, providerPeers: [provider] },
    ...records.slice(0, 8).map(r => ({ type: MessageType.PUT_VALUE, key: r.key as Uint8Array<ArrayBuffer>, record: { key: r.key, value: r.value, timeReceived: new Date().toISOString() } as PbRecord })),
    { type: MessageType.GET_VALUE, key: target.canaries[1].key as Uint8Array<ArrayBuffer> }
  ]
  for (const r of requests) {
    const bytes = Message.encode(r)
    corpus.push(bytes)
    const answer = await target.handler.answer(target.senders[0], bytes, undefined, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
    if (answer != null) {
      corpus.push(answer)
    }
  }
  return { peerIds, addrs, records, corpus }
}

export function inputs (target: Target, pool: Pool): fc.Arbitrary<FuzzInput> {
  const sender = fc.nat({ max: target.senders.length - 1 })
  const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max })
  const big = fc.integer({ min: 1000, max: 70_000 }).map(n => new Uint8Array(n).fill(0x41))

  const key = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...pool.peerIds, ...pool.records.map(r => r.key), ...target.canaries.map(c => c.key)) },
    { weight: 2, arbitrary: bytes(40) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 1, arbitrary: big },
    { weight: 1, arbitrary: fc.string({ maxLength: 20 }).map(s => enc.encode(`/${s}/${s}`)) }
  )
  const peerId = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...pool.peerIds) },
    { weight: 2, arbitrary: bytes(50) },
    { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 1, arbitrary: big }
  )
  // valid and all different: a peer announcing new addresses again and again
  const freshAddr = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.integer({ min: 1, max: 65535 }))
    .map(([a, b, c, d, port]) => multiaddr(`/ip4/${a}.${b}.${c}.${d}/tcp/${port}`).bytes)
  const addr = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...pool.addrs) },
    { weight: 2, arbitrary: freshAddr },
    { weight: 3, arbitrary: bytes(40) },
    { weight: 1, arbitrary: big }
  )
  const peer: fc.Arbitrary<Peer> = fc.record({
    id: peerId,
    addrs: fc.oneof({ weight: 60, arbitrary: fc.array(addr, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(addr, { minLength: 60, maxLength: 70 }) }),
    connection: fc.option(fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<any>, { nil: undefined })
  }) as fc.Arbitrary<Peer>
  const peers = fc.oneof(
    { weight: 10, arbitrary: fc.array(peer, { maxLength: 3 }) },
    { weight: 2, arbitrary: fc.array(peer, { maxLength: 25 }) },
    { weight: 1, arbitrary: fc.array(peer, { minLength: 95, maxLength: 150 }) }
  )
  const record = fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 6,
      arbitrary: fc.record({
        key: fc.option(key, { nil: undefined }),
        value: fc.option(fc.oneof(fc.constantFrom(...pool.records.map(r => r.value)), bytes(300), big), { nil: undefined }),
        timeReceived: fc.option(fc.oneof(fc.constant(new Date().toISOString()), fc.string({ maxLength: 40 })), { nil: undefined })
      })
    }
  )
  const type = fc.constantFrom(MessageType.PING, MessageType.FIND_NODE, MessageType.GET_VALUE, MessageType.PUT_VALUE, MessageType.ADD_PROVIDER, MessageType.GET_PROVIDERS)

  const message = fc.record({
    type,
    key: fc.option(key, { nil: undefined }),
    record,
    closerPeers: peers,
    providerPeers: peers,
    clusterLevelRaw: fc.option(fc.integer(), { nil: undefined })
  }).chain(m => {
    // a put whose record matches its key (so it reaches the validators), and a provider naming the sender
    return fc.tuple(fc.constant(m), fc.boolean(), sender, fc.nat({ max: pool.records.length - 1 }), fc.nat()).map(([m, align, s, r, salt]) => {
      const out: any = { ...m }
      if (align && m.type === MessageType.PUT_VALUE) {
        const rec = pool.records[r]
        out.key = rec.key
        out.record = { key: rec.key, value: rec.value, timeReceived: new Date().toISOString() }
      }
      if (align && m.type === MessageType.ADD_PROVIDER) {
        // 16 valid addresses this peer has not announced before
        const fresh = Array.from({ length: 16 }, (_, j) => multiaddr(`/ip4/${1 + (salt % 223)}.${(salt >> 8) & 255}.${(salt >> 16) & 255}.${j}/tcp/${1 + ((salt >> 4) % 65535)}`).bytes)
        out.providerPeers = [{ id: target.senders[s].toMultihash().bytes, addrs: fresh }, ...m.providerPeers]
      }
      return { sender: s, msg: out as Message }
    })
  })

  const structured: fc.Arbitrary<FuzzInput> = message.map(({ sender, msg }) => ({ sender, bytes: Message.encode(msg), family: 'structured' as const }))

  // what the generated encoder cannot write: unknown types and fields, wrong wire types, nested groups, truncation, concatenation
  const raw: fc.Arbitrary<FuzzInput> = fc.tuple(sender, fc.oneof(
    fc.integer({ min: 6, max: 2 ** 31 - 1 }).map(t => [...field(1, 0), ...varint(t)]),
    fc.tuple(fc.integer({ min: 11, max: 10_000 }), bytes(30)).map(([no, b]) => [...field(1, 0), 5, ...bytesField(no, b)]),
    fc.integer({ min: 1, max: 20_000 }).map(depth => [...field(1, 0), 4, ...Array(depth).fill(field(15, 3)).flat(), ...Array(depth).fill(field(15, 4)).flat()]),
    fc.integer({ min: 1, max: 5000 }).map(depth => {
      // closer peers nested inside closer peers' bytes, as length-delimited fields
      let inner: number[] = bytesField(1, [1, 2, 3])
      for (let i = 0; i < Math.min(depth, 200); i++) {
        inner = bytesField(8, inner)
      }
      return [...field(1, 0), 4, ...inner]
    }),
    fc.tuple(fc.constantFrom(1, 2, 3, 8, 9, 10), fc.constantFrom(0, 1, 2, 5)).map(([no, wire]) => [...field(1, 0), 1, ...field(no, wire), 0x80, 0x80, 0x01]),
    fc.tuple(fc.constantFrom(...pool.corpus), fc.constantFrom(...pool.corpus)).map(([a, b]) => [...a, ...b]),
    fc.tuple(fc.constantFrom(...pool.corpus), fc.nat()).map(([a, n]) => [...a.subarray(0, n % Math.max(1, a.byteLength))]),
    bytes(64).map(b => [...b])
  )).map(([sender, b]) => ({ sender, bytes: Uint8Array.from(b), family: 'raw' as const }))

  const mutation = fc.oneof(
    fc.tuple(fc.constant('flip'), fc.nat(), fc.integer({ min: 0, max: 7 })),
    fc.tuple(fc.constant('set'), fc.nat(), fc.integer({ min: 0, max: 255 })),
    fc.tuple(fc.constant('insert'), fc.nat(), fc.integer({ min: 0, max: 255 })),
    fc.tuple(fc.constant('delete'), fc.nat(), fc.integer({ min: 1, max: 16 })),
    fc.tuple(fc.constant('dup'), fc.nat(), fc.integer({ min: 1, max: 64 })),
    fc.tuple(fc.constant('truncate'), fc.nat(), fc.constant(0)),
    fc.tuple(fc.constant('splice'), fc.nat(), fc.nat({ max: pool.corpus.length - 1 }))
  )
  const mutated: fc.Arbitrary<FuzzInput> = fc.tuple(sender, fc.constantFrom(...pool.corpus), fc.array(mutation, { minLength: 1, maxLength: 6 }))
    .map(([sender, base, ms]) => {
      let b = [...base]
      for (const [op, at, arg] of ms) {
        const i = b.length === 0 ? 0 : at % b.length
        switch (op) {
          case 'flip': if (b.length > 0) { b[i] ^= 1 << arg } break
          case 'set': if (b.length > 0) { b[i] = arg } break
          case 'insert': b.splice(i, 0, arg); break
          case 'delete': b.splice(i, arg); break
          case 'dup': b.splice(i, 0, ...b.slice(i, i + arg)); break
          case 'truncate': b = b.slice(0, i); break
          case 'splice': { const other = pool.corpus[arg]; b = [...b.slice(0, i), ...other.subarray(at % Math.max(1, other.length))]; break }
          default: break
        }
      }
      return { sender, bytes: Uint8Array.from(b), family: 'mutated' as const }
    })

  return fc.oneof({ weight: 5, arbitrary: structured }, { weight: 4, arbitrary: mutated }, { weight: 1, arbitrary: raw })
}
