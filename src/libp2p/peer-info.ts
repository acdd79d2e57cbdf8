/**
 * Conversions between wire peers, libp2p peer info and core contacts, plus the
 * address filters (`peerInfoMapper`).
 */
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { sha256 } from '@noble/hashes/sha2.js'
import * as Digest from 'multiformats/hashes/digest'
import * as varint from 'uint8-varint'
import { commonPrefixLength } from '../core/key.ts'
import { Message, MessageType } from '../generated/dht.ts'
import type { Contact } from '../core/contact.ts'
import type { Peer } from '../generated/dht.ts'
import type { PeerId, PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** A core contact that remembers its libp2p peer id */
export interface PeerContact extends Contact {
  readonly peerId: PeerId
}

/** The Kademlia key of some bytes: their sha256 digest */
export function kadKey (bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

/**
 * Hashes tried at most by {@link refreshKey}: 16 384, about 40 ms of
 * sha256 in the worst case; enough for buckets up to a common prefix
 * length of about 12 (a bucket deeper than that is found by the lookup of
 * our own key, which every refresh runs first)
 */
export const REFRESH_KEY_TRIES = 1 << 14

/**
 * A FIND_NODE key for refreshing the bucket at common prefix length `cpl`:
 * bytes shaped as a sha2-256 multihash whose Kademlia key (what every
 * server computes from the key it is sent) shares exactly `cpl` leading
 * bits with `self`. A random target with that prefix, sent as it is, would
 * be hashed again by the server, which would then answer about an
 * unrelated point of the keyspace. Searched by trial (one in 2^(cpl+1)
 * candidates fits), at most `tries` hashes; undefined when none fitted.
 */
export function refreshKey (self: Uint8Array, cpl: number, random: { fill(bytes: Uint8Array): Uint8Array }, tries: number = REFRESH_KEY_TRIES): { target: Uint8Array, key: Uint8Array } | undefined {
  const key = new Uint8Array(34)
  key[0] = 0x12
  key[1] = 0x20
  random.fill(key.subarray(2))
  const view = new DataView(key.buffer)
  for (let i = 0; i < tries; i++) {
    view.setUint32(30, i)
    const target = sha256(key)
    if (commonPrefixLength(target, self) === cpl) {
      return { target, key: key.slice() }
    }
  }
  return undefined
}

/**
 * Contacts by peer id object: the same object recurs (wire peers decode to
 * cached ids, see `fromPbPeer`), and each contact costs a sha256 and a
 * base58 encoding. Contacts are immutable, so sharing one is safe.
 */
const contacts = new WeakMap<PeerId, PeerContact>()

export function toContact (peerId: PeerId): PeerContact {
  let contact = contacts.get(peerId)
  if (contact == null) {
    contact = { id: peerId.toString(), key: kadKey(peerId.toMultihash().bytes), peerId }
    contacts.set(peerId, contact)
  }
  return contact
}

/**
 * Decoded wire values by their bytes: every response names the same few
 * peers and addresses again, and decoding them (a multihash, a public key, a
 * multiaddr) is a large part of the CPU a response costs. Peer ids and
 * multiaddrs are immutable; they are decoded from copies so that no entry
 * holds on to a message buffer. Bounded; the oldest half goes when full.
 */
class DecodeCache<T> {
  private readonly map = new Map<string, T>()
  private readonly max: number

  constructor (max: number) {
    this.max = max
  }

  get (key: string): T | undefined {
    return this.map.get(key)
  }

  set (key: string, value: T): void {
    if (this.map.size >= this.max) {
      let drop = this.max >> 1
      for (const k of this.map.keys()) {
        if (drop-- <= 0) {
          break
        }
        this.map.delete(k)
      }
    }
    this.map.set(key, value)
  }
}

const MAX_CACHED = 4096
const peerIds = new DecodeCache<PeerId>(MAX_CACHED)
const addrs = new DecodeCache<Multiaddr>(MAX_CACHED)

/**
 * A map key for some bytes: one UTF-16 unit per byte. One call makes a flat
 * string, which hashes at once; appending a byte at a time made a chain of
 * pieces that the map lookup then had to flatten (9 ms of a 1 000-CID
 * `provideMany`'s 320 busy ms). Longer inputs (a peer's address can be
 * long) take the loop, so no call gets more arguments than the stack holds.
 */
function bytesKey (bytes: Uint8Array): string {
  if (bytes.length <= 256) {
    // apply takes the typed array as it is: several times faster than spreading it into arguments
    return String.fromCharCode.apply(null, bytes as unknown as number[])
  }
  let s = ''
  for (let i = 0; i < bytes.length; i++) {
    s += String.fromCharCode(bytes[i])
  }
  return s
}

/** Filters or rewrites the addresses of a peer before we use or share them */
export interface PeerInfoMapper {
  (peer: PeerInfo): PeerInfo
}

/** Keeps every address (what local networks and tests need) */
export const passthroughMapper: PeerInfoMapper = (peer) => peer

/** Keeps public addresses only (the default, as on the public network) */
export const removePrivateAddressesMapper: PeerInfoMapper = (peer) => ({
  ...peer,
  multiaddrs: peer.multiaddrs.filter(ma => isPrivate(ma) !== true)
})

/** PUT_VALUE of `value` under `key`, the record received at `receivedAt` (ms since the epoch) */
export function putValueMessage (key: Uint8Array, value: Uint8Array, receivedAt: number): Partial<Message> & { type: MessageType } {
  const k = key as Uint8Array<ArrayBuffer>
  return { type: MessageType.PUT_VALUE, key: k, record: { key: k, value: value as Uint8Array<ArrayBuffer>, timeReceived: new Date(receivedAt).toISOString() } }
}

/** `type: ADD_PROVIDER` as Message.encode writes it: field 1, varint */
const ADD_PROVIDER_TYPE = Message.encode({ type: MessageType.ADD_PROVIDER })
/** field 2 (`key`), length-delimited */
const KEY_TAG = 0x12

/**
 * Encodes batches of ADD_PROVIDER messages of one provider, framed as they
 * go on a stream (each behind its varint length prefix, in one buffer),
 * the provider's part encoded once:
 * `Message.encode` writes a message's fields in their order in the schema
 * (type, key, ..., providerPeers), so the type, then the key, then the
 * encoding of `{ providerPeers }` is, byte for byte, the encoding of the
 * whole message (test/libp2p/peer-info.spec.ts checks it against
 * `Message.encode` for arbitrary keys and providers). A bulk provide sends
 * the same provider, id and addresses, with every key, 20 messages per key:
 * protons' writer, for the whole message each time, cost about 2.4 µs per
 * message, 15% of the provider's CPU in a 10 000-CID `provideMany`.
 */
export function addProviderEncoder (provider: Peer): (keys: readonly Uint8Array[]) => { bytes: Uint8Array<ArrayBuffer>, count: number, largest: number } {
  const tail = Message.encode({ providerPeers: [provider] })
  const length = (key: Uint8Array): number => ADD_PROVIDER_TYPE.byteLength + 1 + varint.encodingLength(key.byteLength) + key.byteLength + tail.byteLength
  return keys => {
    let size = 0
    let largest = 0
    for (const key of keys) {
      const n = length(key)
      size += varint.encodingLength(n) + n
      largest = Math.max(largest, n)
    }
    // one buffer for the batch, each message behind its length prefix: no array per message
    const bytes = new Uint8Array(size)
    let at = 0
    for (const key of keys) {
      const n = length(key)
      varint.encodeUint8Array(n, bytes, at)
      at += varint.encodingLength(n)
      bytes.set(ADD_PROVIDER_TYPE, at)
      at += ADD_PROVIDER_TYPE.byteLength
      bytes[at++] = KEY_TAG
      varint.encodeUint8Array(key.byteLength, bytes, at)
      at += varint.encodingLength(key.byteLength)
      bytes.set(key, at)
      at += key.byteLength
      bytes.set(tail, at)
      at += tail.byteLength
    }
    return { bytes, count: keys.length, largest }
  }
}

/**
 * The Kademlia key of a wire peer id: through the decoded id and its contact
 * when that peer was decoded before (no hashing), else hashed here
 */
export function wireKadKey (id: Uint8Array): Uint8Array {
  const peerId = peerIds.get(bytesKey(id))
  return peerId == null ? kadKey(id) : toContact(peerId).key
}

export function toPbPeer (peer: PeerInfo): Peer {
  return { id: peer.id.toMultihash().bytes, addrs: peer.multiaddrs.map(ma => ma.bytes) }
}

/**
 * Decodes a wire peer. Returns undefined (and never throws) for a malformed id;
 * undecodable addresses are dropped.
 */
export function fromPbPeer (peer: Peer): PeerInfo | undefined {
  const idKey = bytesKey(peer.id)
  let id = peerIds.get(idKey)
  if (id == null) {
    try {
      id = peerIdFromMultihash(Digest.decode(peer.id.slice()))
    } catch {
      return undefined
    }
    peerIds.set(idKey, id)
  }
  const multiaddrs: Multiaddr[] = []
  for (const bytes of peer.addrs) {
    const key = bytesKey(bytes)
    let ma = addrs.get(key)
    if (ma == null) {
      try {
        ma = multiaddr(bytes.slice())
      } catch {
        // skip an address we cannot parse
        continue
      }
      addrs.set(key, ma)
    }
    multiaddrs.push(ma)
  }
  return { id, multiaddrs }
}
