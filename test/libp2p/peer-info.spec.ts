/**
 * The wire encodings built in peer-info.ts are what protons' own encoder
 * produces for the whole message.
 */
import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { SeededRandom } from '../../src/core/env.ts'
import { commonPrefixLength } from '../../src/core/key.ts'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { addProviderEncoder, kadKey, refreshKey } from '../../src/libp2p/peer-info.ts'

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

  it('addProviderEncoder: the provider encoded once gives the bytes Message.encode gives for each whole ADD_PROVIDER', () => {
    fc.assert(fc.property(
      fc.record({ id: bytes(0, 80), addrs: fc.array(bytes(0, 60), { maxLength: 8 }) }),
      fc.array(bytes(0, 200), { minLength: 1, maxLength: 5 }),
      (provider, keys) => {
        const encode = addProviderEncoder(provider)
        for (const key of keys) {
          const bytes = encode(key)
          expect(bytes).to.deep.equal(Message.encode({ type: MessageType.ADD_PROVIDER, key, providerPeers: [provider] }))
          const decoded = Message.decode(bytes)
          expect(decoded.type).to.equal(MessageType.ADD_PROVIDER)
          expect(decoded.key).to.deep.equal(key)
          expect(decoded.providerPeers).to.deep.equal([provider])
        }
      }
    ), { numRuns: 300 })
  })
})
