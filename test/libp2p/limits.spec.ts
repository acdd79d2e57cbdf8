import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { PeerBuckets, PeerCounts } from '../../src/libp2p/limits.ts'

describe('inbound limits: per-peer token buckets and counts', () => {
  it('spends the burst, then asks for waits that grow, then refuses beyond maxDelay', () => {
    const b = new PeerBuckets({ burst: 2, perSecond: 10, maxDelay: 250, maxPeers: 10 })
    expect([b.take('p', 0), b.take('p', 0)]).to.deep.equal([0, 0])
    expect(b.take('p', 0)).to.equal(100)
    expect(b.take('p', 0)).to.equal(200)
    expect(b.take('p', 0)).to.equal(undefined) // would be 300 ms
    expect(b.take('q', 0)).to.equal(0) // other peers are not affected
    // 1 s later the bucket is full again (at most burst)
    expect([b.take('p', 1300), b.take('p', 1300), b.take('p', 1300)]).to.deep.equal([0, 0, 100])
  })

  it('never tracks more than maxPeers peers; the one used longest ago goes first', () => {
    fc.assert(fc.property(fc.array(fc.nat({ max: 50 }), { maxLength: 300 }), fc.integer({ min: 1, max: 20 }), (peers, maxPeers) => {
      const b = new PeerBuckets({ burst: 1, perSecond: 1, maxDelay: 0, maxPeers })
      peers.forEach((p, t) => {
        b.take(`p${p}`, t)
        expect(b.size).to.be.at.most(maxPeers)
      })
    }))
    const b = new PeerBuckets({ burst: 1, perSecond: 0.001, maxDelay: 0, maxPeers: 2 })
    b.take('a', 0)
    b.take('b', 0)
    b.take('a', 0) // refused, but a is now the most recently used
    b.take('c', 0) // drops b
    expect(b.take('a', 0)).to.equal(undefined)
    expect(b.take('b', 0)).to.equal(0) // forgotten, so full again
  })

  it('counts hold an entry only while above zero', () => {
    const c = new PeerCounts()
    c.increment('a')
    c.increment('a')
    c.decrement('a')
    expect(c.get('a')).to.equal(1)
    c.decrement('a')
    expect(c.size).to.equal(0)
  })
})
