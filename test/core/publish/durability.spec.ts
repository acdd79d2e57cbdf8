import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { cacheTarget, handsOver, heldRepublishDue, HandoverQueue, validateDurabilityConfig } from '../../../src/core/publish/durability.ts'
import { bruteForceClosest, randomContacts, tinyContact, tinyKey } from '../fixtures/keys.ts'

const without = <T extends { id: string }>(list: readonly T[], id: string): T[] => list.filter(c => c.id !== id)

describe('core/publish/durability', () => {
  // key 0b0000_0000; distances are the first byte
  const key = tinyKey(0)

  it('hands a record over to a newcomer nearer than the k-th known when we are the nearest holder', () => {
    const known = [tinyContact(8), tinyContact(9), tinyContact(10)]
    // we (4) are nearer than 8: the nearest holder; k = 3
    expect(handsOver(tinyKey(4), tinyKey(2), key, known, 3)).to.equal(true)
    expect(handsOver(tinyKey(4), tinyKey(9), key, known, 3)).to.equal(true) // 4, 8, 9: among the 3 closest
    expect(handsOver(tinyKey(4), tinyKey(9), key, [...known.slice(0, 1), tinyContact(5), known[1]], 3)).to.equal(false) // 4, 5, 8 are nearer
    expect(handsOver(tinyKey(4), tinyKey(11), key, known, 3)).to.equal(false) // 4, 8, 9 and 10 are nearer
  })

  it('leaves the handover to a nearer holder: only the nearest sends unless senders says more', () => {
    const known = [tinyContact(3), tinyContact(9), tinyContact(10)]
    // 3 is nearer to the key than we are (4): it hands over, we do not
    expect(handsOver(tinyKey(4), tinyKey(2), key, known, 3)).to.equal(false)
    expect(handsOver(tinyKey(4), tinyKey(2), key, known, 3, 2)).to.equal(true)
  })

  it('hands over when fewer than k are known', () => {
    expect(handsOver(tinyKey(4), tinyKey(200), key, [tinyContact(100)], 20)).to.equal(true)
    expect(handsOver(tinyKey(4), tinyKey(200), key, [], 20)).to.equal(true)
  })

  it('exactly one holder of a record hands it to a newcomer among the k closest, when every holder knows all (fast-check)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 2, max: 8 }), (seed, k) => {
      const nodes = randomContacts(40, seed)
      const [newcomer, target] = [nodes[0], nodes[1].key]
      const rest = nodes.slice(2)
      const holders = bruteForceClosest(rest, target, k)
      const withNew = bruteForceClosest([newcomer, ...rest], target, k)
      const senders = holders.filter(h => handsOver(h.key, newcomer.key, target, bruteForceClosest(without(rest, h.id), target, k), k))
      const expected = withNew.some(c => c.id === newcomer.id) ? 1 : 0
      return senders.length === expected
    }), { seed: 20261201 })
  })

  it('stores on get at the closest peer that answered without a record', () => {
    const answered = [tinyContact(1), tinyContact(2), tinyContact(3)]
    expect(cacheTarget(key, answered, new Set(['p1']))?.id).to.equal('p2')
    expect(cacheTarget(key, answered, new Set(['p1', 'p2', 'p3']))).to.equal(undefined)
  })

  it('re-publishes a held value only when nobody stored it within the interval, nor we did', () => {
    const hour = 3_600_000
    expect(heldRepublishDue(0, undefined, hour, hour)).to.equal(true)
    expect(heldRepublishDue(10, undefined, hour, hour)).to.equal(false) // someone stored it 59:59.99 ago
    expect(heldRepublishDue(0, hour / 2, hour, hour)).to.equal(false) // we did half an hour ago
    expect(heldRepublishDue(0, hour, 2 * hour, hour)).to.equal(true)
  })

  it('queues handover batches per peer, bounded, released at the rate', () => {
    const q = new HandoverQueue<number>({ handoverRate: 60, maxHandoverBatch: 2, maxHandoverKeys: 5, maxHandoverPeers: 2 }, 0)
    expect(q.offer('a', [1, 2, 3], 0)).to.equal(0)
    expect(q.offer('b', [4, 5, 6], 0)).to.equal(1) // 5 keys in all
    expect(q.offer('c', [7], 0)).to.equal(1) // 2 peers at most
    expect(q.size).to.equal(5)
    expect(q.take(0)).to.deep.equal({ peer: 'a', keys: [1, 2] })
    expect(q.take(0)).to.equal(undefined) // the bucket held one batch
    expect(q.nextAt(0)).to.equal(1000) // one record a second
    expect(q.take(1000)).to.deep.equal({ peer: 'b', keys: [4] })
    expect(q.take(3000)).to.deep.equal({ peer: 'a', keys: [3] })
    q.drop('b')
    expect(q.size).to.equal(0)
    expect(q.nextAt(3000)).to.equal(undefined)
    expect(q.refused).to.equal(2)
  })

  it('rejects configuration out of range', () => {
    expect(() => validateDurabilityConfig({ handoverRate: 0 })).to.throw(/handoverRate/)
    expect(() => validateDurabilityConfig({ heldRepublish: 'yes' as unknown as boolean })).to.throw(/heldRepublish/)
  })
})
