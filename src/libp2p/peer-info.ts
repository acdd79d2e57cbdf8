/**
 * Conversions between wire peers, libp2p peer info and core contacts, plus the
 * address filters (`peerInfoMapper`).
 */
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { isPrivate } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { sha256 } from '@noble/hashes/sha2.js'
import * as Digest from 'multiformats/hashes/digest'
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

export function toContact (peerId: PeerId): PeerContact {
  return { id: peerId.toString(), key: kadKey(peerId.toMultihash().bytes), peerId }
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

export function toPbPeer (peer: PeerInfo): Peer {
  return { id: peer.id.toMultihash().bytes, addrs: peer.multiaddrs.map(ma => ma.bytes) }
}

/**
 * Decodes a wire peer. Returns undefined (and never throws) for a malformed id;
 * undecodable addresses are dropped.
 */
export function fromPbPeer (peer: Peer): PeerInfo | undefined {
  let id: PeerId
  try {
    id = peerIdFromMultihash(Digest.decode(peer.id))
  } catch {
    return undefined
  }
  const multiaddrs: Multiaddr[] = []
  for (const bytes of peer.addrs) {
    try {
      multiaddrs.push(multiaddr(bytes))
    } catch {
      // skip an address we cannot parse
    }
  }
  return { id, multiaddrs }
}
