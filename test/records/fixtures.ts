import { generateKeyPair, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createIPNSRecord, createIPNSRecordWithExpiration, marshalIPNSRecord, multihashToIPNSRoutingKey, unmarshalIPNSRecord } from 'ipns'
import { sha256 } from 'multiformats/hashes/sha2'
import { concat as uint8ArrayConcat } from 'uint8arrays/concat'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import type { PeerId, PrivateKey } from '@libp2p/interface'

export const HOUR = 60 * 60_000
export const DAY = 24 * HOUR

export async function ed25519 (): Promise<PrivateKey> {
  return generateKeyPair('Ed25519')
}

export async function peers (n: number): Promise<PeerId[]> {
  return Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await ed25519())))
}

/** Multihash bytes of sha256(`name`), a provider record key */
export async function mh (name: string): Promise<Uint8Array> {
  return (await sha256.digest(uint8ArrayFromString(name))).bytes
}

/** `/pk/<multihash>` and the protobuf public key */
export function pkRecord (key: PrivateKey): { key: Uint8Array, value: Uint8Array } {
  return {
    key: uint8ArrayConcat([uint8ArrayFromString('/pk/'), key.publicKey.toMultihash().bytes]),
    value: publicKeyToProtobuf(key.publicKey)
  }
}

export function ipnsKey (key: PrivateKey): Uint8Array {
  return multihashToIPNSRoutingKey(key.publicKey.toMultihash())
}

/** A marshalled IPNS record valid for a day of wall-clock time */
export async function ipnsRecord (key: PrivateKey, seq: number, path = `/ipfs/bafkqaaa/${seq}`, lifetime = DAY): Promise<Uint8Array> {
  return marshalIPNSRecord(await createIPNSRecord(key, path, seq, lifetime))
}

/** A marshalled, correctly signed IPNS record whose EOL passed in 2000 */
export async function expiredIpnsRecord (key: PrivateKey, seq: number): Promise<Uint8Array> {
  return marshalIPNSRecord(await createIPNSRecordWithExpiration(key, '/ipfs/bafkqaaa', seq, '2000-01-01T00:00:00.000000000Z'))
}

/** `record` with one bit of its V2 signature flipped */
export function tamper (record: Uint8Array): Uint8Array {
  const parsed = unmarshalIPNSRecord(record)
  const signatureV2 = new Uint8Array(parsed.signatureV2)
  signatureV2[0] ^= 1
  return marshalIPNSRecord({ ...parsed, signatureV2 })
}
