/**
 * The wire encodings built in peer-info.ts are what protons' own encoder
 * produces for the whole message.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import fc from 'fast-check'
import * as varint from 'uint8-varint'
import { concat as uint8ArrayConcat } from 'uint8arrays/concat'
import { SeededRandom } from '../../src/core/env.ts'
import { commonPrefixLength } from '../../src/core/key.ts'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { addProviderEncoder, fromPbPeer, kadKey, refreshKey, wireKadKey } from '../../src/libp2p/peer-info.ts'

const bytes = (min: number, max: number): fc.Arbitrary<Uint8Array<ArrayBuffer>> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map(b => new Uint8Array(b))

describe('libp2p/peer-info', () => {
  it('refreshKey: a sha2-256-shaped key whose Kademlia key (what a server hashes it to) is in the bucket asked for; undefined when the tries run out', () => {
    const random = new SeededRandom(3)
    const self = kadKey(new TextEncoder().encode('self'))
    for (let cpl = 0; cpl <= 10; cpl++) {
      const found = refreshKey(self, cpl, random)
      if (found == null) {
        throw new Error(`no key for cpl ${cpl}`)
      }
      expect([found.key.length, found.key[0], found.key[1]]).to.deep.equal([34, 0x12, 0x20])
      expect(found.target).to.deep.equal(kadKey(found.key))
      expect(commonPrefixLength(kadKey(found.key), self), `cpl ${cpl}`).to.equal(cpl)
    }
    // one candidate in 2^41 fits a bucket at 40: 64 tries find none
    expect(refreshKey(self, 40, random, 64)).to.equal(undefined)
  })

  it('addProviderEncoder: the provider encoded once gives, framed in one buffer, the bytes Message.encode gives for each whole ADD_PROVIDER', () => {
    fc.assert(fc.property(
      fc.record({ id: bytes(0, 80), addrs: fc.array(bytes(0, 60), { maxLength: 8 }) }),
      fc.array(bytes(0, 200), { minLength: 1, maxLength: 5 }),
      (provider, keys) => {
        const encode = addProviderEncoder(provider)
        const batch = encode(keys)
        const each = keys.map(key => Message.encode({ type: MessageType.ADD_PROVIDER, key, providerPeers: [provider] }))
        expect(batch.count).to.equal(keys.length)
        expect(batch.largest).to.equal(Math.max(...each.map(m => m.byteLength)))
        // the same bytes as each message behind its varint length prefix, one after another
        expect(batch.bytes).to.deep.equal(uint8ArrayConcat(each.flatMap(m => [varint.encode(m.byteLength), m])))
        let at = 0
        for (const key of keys) {
          const length = varint.decode(batch.bytes, at)
          at += varint.encodingLength(length)
          const decoded = Message.decode(batch.bytes.subarray(at, at + length))
          at += length
          expect(decoded.type).to.equal(MessageType.ADD_PROVIDER)
          expect(decoded.key).to.deep.equal(key)
          expect(decoded.providerPeers).to.deep.equal([provider])
        }
        expect(at).to.equal(batch.bytes.byteLength)
      }
    ), { numRuns: 300 })
  })

  it('wireKadKey: the sha256 of the wire id, whether the id was decoded before (cached) or not', async () => {
    for (let i = 0; i < 20; i++) {
      const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toMultihash().bytes
      expect(wireKadKey(id), 'never decoded').to.deep.equal(kadKey(id))
      expect(fromPbPeer({ id, addrs: [] })).to.not.equal(undefined)
      expect(wireKadKey(id), 'decoded, from its contact').to.deep.equal(kadKey(id))
    }
  })
})
