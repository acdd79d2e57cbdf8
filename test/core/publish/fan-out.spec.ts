import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { FanOut } from '../../../src/core/publish/fan-out.ts'

const peers = (prefix: string, n: number): Array<{ id: string }> => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}` }))

describe('core/publish/fan-out', () => {
  it('delivers to every one of the closest at once, and only once', () => {
    const plan = new FanOut(peers('c', 4), peers('s', 2), 2)
    expect(plan.start().map(p => p.id)).to.deep.equal(['c0', 'c1', 'c2', 'c3'])
    expect(plan.start()).to.deep.equal([])
    expect(plan.settled).to.equal(false)
  })

  it('replaces each failed delivery with the next spare, nearest first, until none is left', () => {
    const closest = peers('c', 3)
    const plan = new FanOut(closest, peers('s', 1), 3)
    plan.start()
    expect(plan.result(closest[0], false)?.id).to.equal('s0')
    expect(plan.result(closest[1], false)).to.equal(undefined)
    expect(plan.settled).to.equal(false)
    expect(plan.result(closest[2], true)).to.equal(undefined)
    expect(plan.result({ id: 's0' }, true)).to.equal(undefined)
    expect(plan).to.include({ stored: 2, failed: 2, settled: true, quorumReached: false })
  })

  it('reports the quorum once enough peers hold the record, capped at the peers there are', () => {
    const closest = peers('c', 2)
    const plan = new FanOut(closest, [], 10)
    expect(plan.quorum).to.equal(2)
    plan.start()
    plan.result(closest[0], true)
    expect(plan.quorumReached).to.equal(false)
    plan.result(closest[1], true)
    expect(plan.quorumReached).to.equal(true)
  })

  it('tries no spare once the caller stops replacing (an aborted put)', () => {
    const closest = peers('c', 1)
    const plan = new FanOut(closest, peers('s', 3), 1)
    plan.start()
    expect(plan.result(closest[0], false, false)).to.equal(undefined)
    expect(plan).to.include({ settled: true, sparesLeft: 3 })
  })

  it('ignores outcomes for peers it did not send to, and spares that are among the closest', () => {
    const closest = peers('c', 2)
    const plan = new FanOut(closest, [closest[1], { id: 's0' }], 1)
    plan.start()
    expect(plan.result({ id: 'x' }, true)).to.equal(undefined)
    expect(plan.stored).to.equal(0)
    expect(plan.result(closest[0], false)?.id).to.equal('s0')
    expect(plan.sparesLeft).to.equal(0)
  })

  it('refuses a quorum below one', () => {
    expect(() => new FanOut(peers('c', 2), [], 0)).to.throw(RangeError)
  })

  it('never has more attempts in flight than the closest, and attempts each peer at most once', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), fc.array(fc.boolean(), { maxLength: 60 }), (k, s, outcomes) => {
      const plan = new FanOut(peers('c', k), peers('s', s), 1)
      const queue = plan.start()
      const tried = new Set(queue.map(p => p.id))
      let i = 0
      while (queue.length > 0) {
        expect(queue.length).to.be.at.most(k)
        const peer = queue.shift() as { id: string }
        const next = plan.result(peer, outcomes[i++ % Math.max(1, outcomes.length)] ?? false)
        if (next != null) {
          expect(tried.has(next.id)).to.equal(false)
          tried.add(next.id)
          queue.push(next)
        }
      }
      expect(plan.settled).to.equal(true)
      expect(plan.stored + plan.failed).to.equal(tried.size)
      expect(tried.size).to.be.at.most(k + s)
    }))
  })

  describe('optimistic', () => {
    it('counts early deliveries towards the quorum and does not repeat them once the targets are known', () => {
      const plan = FanOut.optimistic<{ id: string }>(2, 3)
      expect(plan.start()).to.deep.equal([]) // nothing planned yet
      expect(plan.early({ id: 'c1' })).to.equal(true)
      expect(plan.early({ id: 'c1' })).to.equal(false)
      expect(plan.early({ id: 'x' })).to.equal(true)
      expect(plan.result({ id: 'c1' }, true)).to.equal(undefined)
      expect(plan.quorumReached).to.equal(false)
      expect(plan.result({ id: 'x' }, true)).to.equal(undefined)
      expect(plan.quorumReached).to.equal(true)
      expect(plan.settled).to.equal(false) // the lookup has not finished
      plan.plan(peers('c', 3), peers('s', 1))
      expect(plan.early({ id: 'c2' })).to.equal(false) // planned: no more early ones
      expect(plan.start().map(p => p.id)).to.deep.equal(['c0', 'c2'])
      expect(plan.earlyCount).to.equal(2)
    })

    it('bounds early deliveries, and failed early ones leave the true closest to the plan', () => {
      const plan = FanOut.optimistic<{ id: string }>(1, 2)
      expect(['a', 'b', 'c'].map(id => plan.early({ id }))).to.deep.equal([true, true, false])
      expect(plan.result({ id: 'a' }, false)).to.equal(undefined)
      plan.plan([{ id: 'a' }, { id: 'd' }], [])
      expect(plan.start().map(p => p.id)).to.deep.equal(['d'])
      expect(plan.result({ id: 'b' }, true)).to.equal(undefined)
      expect(plan.result({ id: 'd' }, true)).to.equal(undefined)
      expect(plan).to.include({ settled: true, quorumReached: true, stored: 2, failed: 1 })
    })
  })
})
