import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { EventQueue, QueueFullError } from '../../src/sim/event-queue.ts'

function drain<T> (q: EventQueue<T>): Array<{ time: number, item: T }> {
  const out: Array<{ time: number, item: T }> = []
  for (let e = q.pop(); e != null; e = q.pop()) {
    out.push(e)
  }
  return out
}

describe('sim/event-queue', () => {
  it('pops by time, and by push order among equal times', () => {
    const q = new EventQueue<string>()
    q.push(5, 'a')
    q.push(1, 'b')
    q.push(5, 'c')
    q.push(0, 'd')
    q.push(1, 'e')
    q.push(5, 'f')
    expect(q.peekTime()).to.equal(0)
    expect(drain(q).map(e => `${e.time}${e.item}`)).to.deep.equal(['0d', '1b', '1e', '5a', '5c', '5f'])
    expect(q.pop()).to.equal(undefined)
    expect(q.peekTime()).to.equal(undefined)
  })

  it('orders any interleaving of pushes and pops by (time, seq)', () => {
    // property: the queue agrees with a stable sort of what was pushed
    fc.assert(fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(-1)), { maxLength: 200 }), ops => {
      const q = new EventQueue<number>()
      const reference: Array<{ time: number, seq: number }> = []
      let seq = 0
      for (const op of ops) {
        if (op >= 0) {
          q.push(op, seq)
          reference.push({ time: op, seq: seq++ })
        } else {
          reference.sort((a, b) => a.time - b.time || a.seq - b.seq)
          const want = reference.shift()
          const got = q.pop()
          expect(got?.item).to.equal(want?.seq)
        }
      }
      reference.sort((a, b) => a.time - b.time || a.seq - b.seq)
      expect(drain(q).map(e => e.item)).to.deep.equal(reference.map(r => r.seq))
    }), { seed: 42 })
  })

  it('refuses pushes beyond its bound and NaN times', () => {
    const q = new EventQueue<number>(2)
    q.push(1, 1)
    q.push(2, 2)
    expect(() => { q.push(3, 3) }).to.throw(QueueFullError)
    expect(q.size).to.equal(2)
    expect(() => { new EventQueue<number>().push(NaN, 1) }).to.throw(RangeError)
  })
})
