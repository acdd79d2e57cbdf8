import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { SeededRandom } from '../../../src/core/env.ts'
import { KEY_BYTES, commonPrefixLength } from '../../../src/core/key.ts'
import { RegionCache, regionsSpanned, sliceCount, sliceStarts, sortByKey } from '../../../src/core/publish/region.ts'
import { bruteForceClosest, ids, randomContacts } from '../fixtures/keys.ts'
import type { Key } from '../../../src/core/key.ts'

const K = 20

/** A key sharing at least `bits` leading bits with `base` */
function near (base: Key, bits: number, random: SeededRandom): Key {
  const out = random.fill(new Uint8Array(KEY_BYTES))
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3
    const mask = 0x80 >> (i & 7)
    out[byte] = (out[byte] & ~mask) | (base[byte] & mask)
  }
  return out
}

describe('core/publish/region', () => {
  it('covers nothing until it has learned a region of at least k peers', () => {
    const net = randomContacts(100, 3)
    const random = new SeededRandom(1)
    const target = random.fill(new Uint8Array(KEY_BYTES))
    const r = new RegionCache(K)
    expect(r.covers(target)).to.equal(false)
    r.learn(target, bruteForceClosest(net, target, 5))
    expect(r.covers(near(target, 200, random))).to.equal(false)
  })

  it('after a second short lookup in a row, takes its results for the region; a full one resets that', () => {
    const net = randomContacts(100, 4)
    const random = new SeededRandom(4)
    const r = new RegionCache(K)
    const first = random.fill(new Uint8Array(KEY_BYTES))
    r.learn(first, bruteForceClosest(net, first, 5))
    expect(r.covers(near(first, 200, random)), 'one short lookup: exact').to.equal(false)
    const second = near(first, 3, random)
    const short = bruteForceClosest(net, second, 5)
    r.learn(second, short)
    const depth = Math.min(...short.map(c => commonPrefixLength(second, c.key))) + 1
    expect(r.regionDepth).to.equal(depth)
    const inside = near(second, depth, random)
    expect(r.covers(inside), 'two in a row: a region').to.equal(true)
    expect(ids(r.closest(inside, K))).to.have.members(ids(short))
    const third = random.fill(new Uint8Array(KEY_BYTES))
    r.learn(third, bruteForceClosest(net, third, K))
    const fourth = random.fill(new Uint8Array(KEY_BYTES))
    r.learn(fourth, bruteForceClosest(net, fourth, 5))
    expect(r.covers(near(fourth, 200, random)), 'short again after a full one: exact').to.equal(false)
    expect(r.covers(fourth)).to.equal(false)
  })

  it('covers keys sharing more bits with its target than its farthest result does, and no others', () => {
    const net = randomContacts(2000, 5)
    const random = new SeededRandom(2)
    const target = random.fill(new Uint8Array(KEY_BYTES))
    const closest = bruteForceClosest(net, target, K)
    const r = new RegionCache(K)
    r.learn(target, closest)
    const depth = Math.min(...closest.map(c => commonPrefixLength(target, c.key))) + 1
    expect(r.regionDepth).to.equal(depth)
    expect(r.covers(target)).to.equal(true)
    expect(r.covers(near(target, depth, random))).to.equal(true)
    // shares exactly depth - 1 bits: the next one differs from the target's
    const outside = near(target, depth - 1, random)
    const byte = (depth - 1) >> 3
    const mask = 0x80 >> ((depth - 1) & 7)
    outside[byte] = (outside[byte] & ~mask) | (~target[byte] & mask)
    expect(r.covers(outside)).to.equal(false)
  })

  it('places covered keys on (nearly) their true k closest: property over a static network', () => {
    const net = randomContacts(5000, 9)
    const random = new SeededRandom(3)
    let overlap = 0
    let trials = 0
    for (let t = 0; t < 20; t++) {
      const target = random.fill(new Uint8Array(KEY_BYTES))
      const r = new RegionCache(K)
      const around = bruteForceClosest(net, target, K + 10)
      r.learn(target, around.slice(0, K), around.slice(K))
      for (let i = 0; i < 10; i++) {
        const key = near(target, r.regionDepth, random)
        expect(r.covers(key)).to.equal(true)
        const placed = new Set(ids(r.closest(key, K)))
        const truth = ids(bruteForceClosest(net, key, K))
        // the nearest half is always exact; the tail may differ
        expect(truth.slice(0, K / 2).every(id => placed.has(id))).to.equal(true)
        overlap += truth.filter(id => placed.has(id)).length
        trials++
      }
    }
    expect(overlap / trials).to.be.at.least(0.8 * K)
  })

  it('sorts by keyspace position', () => {
    const items = [{ key: new Uint8Array([3, 0]) }, { key: new Uint8Array([1, 9]) }, { key: new Uint8Array([1, 2]) }]
    expect(sortByKey(items).map(i => [...i.key])).to.deep.equal([[1, 2], [1, 9], [3, 0]])
  })
})

describe('core/publish/region slices', () => {
  const key = (first: number): Uint8Array => { const k = new Uint8Array(32); k[0] = first; return k }

  it('counts the regions sorted keys fall into at a depth', () => {
    const keys = [key(0b00000000), key(0b00000001), key(0b01000000), key(0b10000000), key(0b11000000)]
    expect(regionsSpanned(keys, 0)).to.equal(1)
    expect(regionsSpanned(keys, 1)).to.equal(2)
    expect(regionsSpanned(keys, 2)).to.equal(4)
    expect(regionsSpanned(keys, 8)).to.equal(5)
    expect(regionsSpanned([], 4)).to.equal(0)
  })

  it('slices only walks that span several regions, one slice per two, up to the bound', () => {
    expect(sliceCount(0, 8)).to.equal(1)
    expect(sliceCount(3, 8)).to.equal(1)
    expect(sliceCount(4, 8)).to.equal(2)
    expect(sliceCount(500, 8)).to.equal(8)
    expect(sliceCount(500, 1)).to.equal(1)
  })

  it('cuts slices on region boundaries, never inside a region', () => {
    // regions at depth 2: 00 (indexes 0-4), 01 (5-6), 10 (7-9), 11 (10-11)
    const firsts = [0b00000000, 0b00000001, 0b00000010, 0b00100000, 0b00110000, 0b01000000, 0b01100000, 0b10000000, 0b10000001, 0b10100000, 0b11000000, 0b11111111]
    const keys = firsts.map(key)
    expect(sliceStarts(keys, 2, 2)).to.deep.equal([0, 7])
    expect(sliceStarts(keys, 2, 4)).to.deep.equal([0, 5, 7, 10])
    // more slices than regions: one per region
    expect(sliceStarts(keys, 2, 8)).to.deep.equal([0, 5, 7, 10])
    expect(sliceStarts(keys, 1, 8)).to.deep.equal([0, 7])
    expect(sliceStarts(keys, 0, 8)).to.deep.equal([0])
    expect(sliceStarts(keys, 2, 1)).to.deep.equal([0])
    expect(sliceStarts([], 2, 4)).to.deep.equal([])
  })

  it('starts every slice where its keys leave the region of the key before (property)', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 200 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 1, max: 8 }), (raw, depth, count) => {
      const keys = sortByKey(raw.map(k => ({ key: k }))).map(i => i.key)
      const starts = sliceStarts(keys, depth, count)
      const regions = regionsSpanned(keys, depth)
      expect(starts.length).to.equal(Math.min(count, regions))
      for (let i = 1; i < starts.length; i++) {
        expect(starts[i]).to.be.above(starts[i - 1])
        expect(commonPrefixLength(keys[starts[i]], keys[starts[i] - 1])).to.be.below(depth)
      }
      if (keys.length > 0) {
        expect(starts[0]).to.equal(0)
      }
    }))
  })
})
