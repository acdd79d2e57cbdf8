/**
 * The wire encodings built in peer-info.ts are what protons' own encoder
 * produces for the whole message.
 */
import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { addProviderEncoder } from '../../src/libp2p/peer-info.ts'

const bytes = (min: number, max: number): fc.Arbitrary<Uint8Array<ArrayBuffer>> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map(b => new Uint8Array(b))

describe('libp2p/peer-info', () => {
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
