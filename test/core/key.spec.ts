import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { SeededRandom } from '../../src/core/env.ts'
import { commonPrefixLength, compareDistance, keyWithPrefixLength, xor, compareBytes, KEY_BYTES } from '../../src/core/key.ts'

const key = fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES })

describe('core/key', () => {
  it('common prefix length counts shared leading bits', () => {
    const a = new Uint8Array(32)
    const b = new Uint8Array(32)
    expect(commonPrefixLength(a, b)).to.equal(256)
    b[0] = 0b1000_0000
    expect(commonPrefixLength(a, b)).to.equal(0)
    b[0] = 0b0000_0001
    expect(commonPrefixLength(a, b)).to.equal(7)
    b[0] = 0
    b[3] = 0b0010_0000
    expect(commonPrefixLength(a, b)).to.equal(26)
  })

  it('compareDistance agrees with comparing XOR distances', () => {
    fc.assert(fc.property(key, key, key, (a, b, t) => {
      const expected = Math.sign(compareBytes(xor(a, t), xor(b, t)))
      expect(Math.sign(compareDistance(a, b, t))).to.equal(expected)
    }), { verbose: true })
  })

  it('keyWithPrefixLength yields a key with exactly that common prefix', () => {
    fc.assert(fc.property(key, fc.integer({ min: 0, max: 255 }), fc.integer(), (self, cpl, seed) => {
      const out = keyWithPrefixLength(self, cpl, new SeededRandom(seed).fill(new Uint8Array(32)))
      expect(commonPrefixLength(self, out)).to.equal(cpl)
    }), { verbose: true })
  })

  it('seeded random is reproducible', () => {
    const a = new SeededRandom(42)
    const b = new SeededRandom(42)
    const xs = Array.from({ length: 100 }, () => a.int(1000))
    expect(xs).to.deep.equal(Array.from({ length: 100 }, () => b.int(1000)))
    expect(new Set(xs).size).to.be.greaterThan(50)
  })
})
