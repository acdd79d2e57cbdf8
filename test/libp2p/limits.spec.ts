import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { PeerBuckets, PeerCounts, SharedBucket } from '../../src/libp2p/limits.ts'

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

  it('a take with its own rate uses that burst and refill, and cuts a fuller bucket down to that burst', () => {
    const b = new PeerBuckets({ burst: 100, perSecond: 100, maxDelay: 1000, maxPeers: 10 })
    const low = { burst: 2, perSecond: 10 }
    expect([b.take('p', 0, low), b.take('p', 0, low), b.take('p', 0, low)]).to.deep.equal([0, 0, 100])
    // a bucket filled at the high rate holds at most the low burst for a low take
    expect(b.take('q', 0)).to.equal(0)
    expect([b.take('q', 0, low), b.take('q', 0, low), b.take('q', 0, low)]).to.deep.equal([0, 0, 100])
  })

  it('a shared bucket makes waiters wait and refuses beyond maxDelay; takes that do not wait still spend, down to maxDelay of debt', () => {
    const pool = new SharedBucket({ burst: 2, perSecond: 10, maxDelay: 300 })
    expect([pool.take(0, true), pool.take(0, true)]).to.deep.equal([0, 0])
    expect(pool.take(0, true)).to.equal(100)
    // a light take passes at once but lengthens the next wait
    expect(pool.take(0, false)).to.equal(0)
    expect(pool.take(0, true)).to.equal(300)
    expect(pool.take(0, true)).to.equal(undefined)
    // light takes alone never push the debt past maxDelay: a waiter is refused, not asked to wait longer
    for (let i = 0; i < 100; i++) {
      expect(pool.take(0, false)).to.equal(0)
    }
    expect(pool.take(0, true)).to.equal(undefined)
    // 0.5 s later 5 tokens came back: the debt of 3 is paid and 2 are there
    expect(pool.take(500, true)).to.equal(0)
    // and 1.5 s of quiet fills it to its burst, no more
    expect([pool.take(2000, true), pool.take(2000, true), pool.take(2000, true)]).to.deep.equal([0, 0, 100])
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
