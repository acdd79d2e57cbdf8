import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { SeededRandom } from '../../../src/core/env.ts'
import { DeadlineHeap } from '../../../src/core/maintenance/deadline-heap.ts'
import { RepublishSchedule, ScheduleFullError, defaultRepublishScheduleConfig, validateRepublishScheduleConfig } from '../../../src/core/maintenance/schedule.ts'
import { InvalidConfigError } from '../../../src/core/routing-table/config.ts'

const HOUR = 60 * 60_000
const INTERVAL = 22 * HOUR
const JITTER = Math.floor(INTERVAL / 10)

describe('core/maintenance/schedule', () => {
  it('has documented defaults and rejects invalid config at construction', () => {
    expect(defaultRepublishScheduleConfig()).to.deep.equal({ republishInterval: INTERVAL, jitter: JITTER, maxEntries: 1_000_000 })
    expect(validateRepublishScheduleConfig({ republishInterval: 10_000 }).jitter).to.equal(1000)
    expect(validateRepublishScheduleConfig({ republishInterval: 10_000, jitter: 0 }).jitter).to.equal(0)
    expect(() => new RepublishSchedule({ republishInterval: 0 }, new SeededRandom(1))).to.throw(InvalidConfigError, /republishInterval/)
    expect(() => new RepublishSchedule({ republishInterval: 10_000, jitter: 20_000 }, new SeededRandom(1))).to.throw(InvalidConfigError, /jitter/)
    expect(() => new RepublishSchedule({ maxEntries: 0 }, new SeededRandom(1))).to.throw(InvalidConfigError, /maxEntries/)
  })

  it('emits a key once its interval (plus jitter) has passed, and reschedules it', () => {
    const s = new RepublishSchedule({}, new SeededRandom(7))
    s.add('a', 0)
    const deadline = s.nextDeadline()
    expect(deadline).to.be.a('number')
    expect(deadline).to.be.at.least(INTERVAL).and.below(INTERVAL + JITTER)
    expect(s.due(INTERVAL - 1, 10)).to.deep.equal([])
    expect(s.due(INTERVAL + JITTER, 10)).to.deep.equal(['a'])
    // rescheduled from the time it was emitted
    expect(s.deadlineOf('a')).to.be.at.least(2 * INTERVAL + JITTER)
    expect(s.due(INTERVAL + JITTER, 10)).to.deep.equal([])
    expect(s.size).to.equal(1)
  })

  it('without jitter emits exactly at the deadline, oldest first, bounded by limit', () => {
    const s = new RepublishSchedule({ republishInterval: 1000, jitter: 0 }, new SeededRandom(1))
    s.add('c', 2)
    s.add('a', 0)
    s.add('b', 0)
    expect(s.nextDeadline()).to.equal(1000)
    expect(s.due(999, 10)).to.deep.equal([])
    // a and b tie; a was scheduled first
    expect(s.due(1002, 2)).to.deep.equal(['a', 'b'])
    expect(s.due(1002, 2)).to.deep.equal(['c'])
    expect(s.nextDeadline()).to.equal(2002)
    expect(s.due(2002)).to.deep.equal(['a', 'b', 'c'])
  })

  it('re-adding a key reschedules it from the new publish time', () => {
    const s = new RepublishSchedule({ republishInterval: 1000, jitter: 0 }, new SeededRandom(1))
    s.add('a', 0)
    s.add('a', 500)
    expect(s.size).to.equal(1)
    expect(s.due(1000)).to.deep.equal([])
    expect(s.due(1500)).to.deep.equal(['a'])
  })

  it('removes keys', () => {
    const s = new RepublishSchedule({ republishInterval: 1000, jitter: 0 }, new SeededRandom(1))
    s.add('a', 0)
    s.add('b', 1)
    expect(s.remove('a')).to.equal(true)
    expect(s.remove('a')).to.equal(false)
    expect(s.has('a')).to.equal(false)
    expect(s.due(5000)).to.deep.equal(['b'])
    expect(s.remove('b')).to.equal(true)
    expect(s.nextDeadline()).to.equal(undefined)
    expect(s.size).to.equal(0)
  })

  it('refuses a new key at maxEntries but accepts a re-add', () => {
    const s = new RepublishSchedule({ maxEntries: 2 }, new SeededRandom(1))
    s.add('a', 0)
    s.add('b', 0)
    expect(() => { s.add('c', 0) }).to.throw(ScheduleFullError).with.property('code', 'ERR_SCHEDULE_FULL')
    s.add('a', 10)
    expect(s.size).to.equal(2)
    s.remove('b')
    s.add('c', 0)
    expect(s.has('c')).to.equal(true)
  })

  it('is deterministic for a given seed', () => {
    const run = (seed: number): number[] => {
      const s = new RepublishSchedule({}, new SeededRandom(seed))
      for (let i = 0; i < 20; i++) { s.add(`k${i}`, i) }
      return Array.from({ length: 20 }, (_, i) => s.deadlineOf(`k${i}`) ?? -1)
    }
    expect(run(3)).to.deep.equal(run(3))
    expect(run(3)).to.not.deep.equal(run(4))
  })

  it('property: over 72 h every key is republished at least every interval + jitter and never twice within one interval', () => {
    fc.assert(fc.property(
      fc.integer(),
      fc.integer({ min: 1, max: 60 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 72 * 60 })), { maxLength: 20 }),
      fc.integer({ min: 1, max: 60 }),
      (seed, nKeys, hours, removals, limit) => {
        const interval = hours * HOUR
        const jitter = Math.floor(interval / 10)
        const s = new RepublishSchedule({ republishInterval: interval, jitter }, new SeededRandom(seed))
        const end = 72 * HOUR
        const last = new Map<string, number>()
        for (let i = 0; i < nKeys; i++) {
          const at = i * 7_919
          s.add(`k${i}`, at)
          last.set(`k${i}`, at)
        }
        // removals, soonest first
        const pending = removals.filter(([i]) => i < nKeys).map(([i, minute]) => ({ key: `k${i}`, at: minute * 60_000 })).sort((a, b) => a.at - b.at)
        // an event-driven driver: it wakes at the earlier of nextDeadline() and the next removal
        let now = 0
        for (let steps = 0; steps < 100_000; steps++) {
          const next = Math.min(s.nextDeadline() ?? Infinity, pending[0]?.at ?? Infinity)
          if (next > end) { break }
          now = Math.max(now, next)
          while (pending.length > 0 && pending[0].at <= now) {
            const { key } = pending.shift() ?? { key: '' }
            s.remove(key)
            last.delete(key)
          }
          for (const key of s.due(now, limit)) {
            const prev = last.get(key)
            if (prev == null) { throw new Error(`removed key ${key} emitted`) }
            if (now - prev < interval) { throw new Error(`${key} republished ${now - prev} ms after the last time, < interval`) }
            last.set(key, now)
          }
          for (const [key, prev] of last) {
            const deadline = s.deadlineOf(key)
            if (deadline == null || deadline - prev < interval || deadline - prev > interval + jitter) {
              throw new Error(`${key} published at ${prev} is due at ${deadline}`)
            }
          }
        }
        // nothing overdue is left behind: a limited call is followed by another at the same time
        for (const [key, prev] of last) {
          if (end - prev > interval + jitter) { throw new Error(`${key} last republished at ${prev}`) }
        }
      }), { verbose: true, numRuns: 60 })
  })

  it('heap: extracts in deadline order after random updates and removals', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 1000 }), fc.boolean())), (ops) => {
      const heap = new DeadlineHeap()
      const model = new Map<string, number>()
      for (const [k, d, del] of ops) {
        if (del) {
          expect(heap.remove(`k${k}`)).to.equal(model.delete(`k${k}`))
        } else {
          heap.set(`k${k}`, d)
          model.set(`k${k}`, d)
        }
      }
      expect(heap.size).to.equal(model.size)
      const out: number[] = []
      for (let top = heap.peek(); top != null; top = heap.peek()) {
        expect(model.get(top.key)).to.equal(top.deadline)
        out.push(top.deadline)
        heap.remove(top.key)
      }
      expect(out).to.deep.equal([...model.values()].sort((a, b) => a - b))
    }), { verbose: true })
  })
})
