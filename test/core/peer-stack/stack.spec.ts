import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { PeerStack, applyObservation, backoffFor, computeScore, emptyStats, peerStackConfig } from '../../../src/core/peer-stack/index.ts'
import { InvalidConfigError } from '../../../src/core/routing-table/config.ts'
import type { Observation } from '../../../src/core/peer-stack/index.ts'

const MIN = 60_000
const params = peerStackConfig()
const ok: Observation = { type: 'response', latency: 50, useful: true }
const fail: Observation = { type: 'dial-failed', reason: 'timeout' }

const observation = fc.oneof(
  fc.record({ type: fc.constant('dial-ok' as const), duration: fc.nat(10_000) }),
  fc.record({ type: fc.constant('dial-failed' as const), reason: fc.constantFrom('timeout' as const, 'refused' as const, 'unreachable' as const) }),
  fc.record({ type: fc.constant('response' as const), latency: fc.nat(10_000), useful: fc.boolean() }),
  fc.record({ type: fc.constant('request-failed' as const), reason: fc.constantFrom('timeout' as const, 'reset' as const, 'bad-response' as const, 'protocol-unsupported' as const) }),
  fc.constant({ type: 'invalid-response' as const })
)

/** A history: observations at increasing times */
const history = fc.array(fc.tuple(observation, fc.nat(10 * MIN)), { maxLength: 40 })

function replay (steps: Array<[Observation, number]>): { stats: ReturnType<typeof emptyStats>, now: number } {
  let now = 0
  let stats = emptyStats(0)
  for (const [obs, dt] of steps) {
    now += dt
    stats = applyObservation(stats, obs, params, now)
  }
  return { stats, now }
}

describe('core/peer-stack', () => {
  it('validates its config', () => {
    expect(() => peerStackConfig({ halfLife: 0 })).to.throw(InvalidConfigError, /halfLife/)
    expect(() => peerStackConfig({ backoffBase: 10_000, backoffMax: 5000 })).to.throw(InvalidConfigError, /backoffMax/)
    expect(() => peerStackConfig({ dialTimeoutFloor: 6000, dialTimeoutCeiling: 5000 })).to.throw(InvalidConfigError, /dialTimeoutCeiling/)
    expect(() => new PeerStack({ latencyWeight: 2 })).to.throw(InvalidConfigError, /latencyWeight/)
  })

  it('values an unknown peer at 0.5, a reliable one higher and a failing one lower', () => {
    const s = new PeerStack()
    expect(s.value('nobody', 0)).to.equal(0.5)
    expect(s.category('nobody', 0)).to.equal('unknown')
    for (let i = 0; i < 5; i++) {
      s.observe('good', ok, i)
      s.observe('bad', fail, i)
    }
    expect(s.value('good', 10)).to.be.greaterThan(0.7)
    expect(s.value('bad', 10)).to.be.lessThan(0.2)
    expect(s.category('good', 10)).to.equal('active')
    expect(s.category('bad', 10)).to.equal('bad')
  })

  it('a fast peer is worth more than an equally reliable slow one', () => {
    const s = new PeerStack()
    for (let i = 0; i < 5; i++) {
      s.observe('fast', { type: 'response', latency: 20, useful: true }, i)
      s.observe('slow', { type: 'response', latency: 4000, useful: true }, i)
    }
    expect(s.value('fast', 10)).to.be.greaterThan(s.value('slow', 10))
  })

  it('backs a failing peer off exponentially, bounded, until exactly the end of its back-off', () => {
    const s = new PeerStack({ backoffBase: 1000, backoffMax: 4000 })
    s.observe('p', fail, 0)
    expect(s.backoffUntil('p')).to.equal(1000)
    expect(s.backedOff('p', 999)).to.equal(true)
    expect(s.backedOff('p', 1000)).to.equal(false)
    s.observe('p', fail, 1000)
    expect(s.backoffUntil('p')).to.equal(3000)
    s.observe('p', fail, 3000)
    s.observe('p', fail, 7000)
    expect(s.backoffUntil('p')).to.equal(11_000) // capped at 4000
    // a success resets it
    s.observe('p', ok, 11_000)
    expect(s.backedOff('p', 11_000)).to.equal(false)
    expect(s.backoffUntil('p')).to.equal(undefined)
  })

  it('backs a peer never reached off for the long kind once its dial fails while others answer', () => {
    const s = new PeerStack({ backoffBase: 1000, backoffMax: 4000, unreachedBackoffBase: 100_000, unreachedBackoffMax: 300_000 })
    const dialFailed = { type: 'dial-failed', reason: 'timeout' } as const
    // nobody has answered us yet: our own network may be down, the short kind
    s.observe('early', dialFailed, 0)
    expect(s.backoffUntil('early')).to.equal(1000)
    s.observe('other', ok, 10)
    // now others answer: a peer never reached whose dial fails twice in a
    // row is most likely NAT'd (once may be a slow dial on a busy machine)
    s.observe('nat', dialFailed, 20)
    expect(s.backoffUntil('nat')).to.equal(1020)
    s.observe('nat', dialFailed, 1020)
    expect(s.backoffUntil('nat')).to.equal(101_020)
    s.observe('nat', dialFailed, 101_020)
    expect(s.backoffUntil('nat')).to.equal(301_020) // doubled, capped
    // a peer we reached before gets the short kind: it may just be offline for now
    s.observe('known', { type: 'dial-ok', duration: 10 }, 30)
    s.observe('known', dialFailed, 40)
    expect(s.backoffUntil('known')).to.equal(1040)
    // a request failing over a connection it opened proves nothing either way: short
    s.observe('inbound', { type: 'request-failed', reason: 'timeout' }, 50)
    expect(s.backoffUntil('inbound')).to.equal(1050)
    // a success ends it as any back-off
    s.observe('nat', ok, 301_020)
    expect(s.backedOff('nat', 301_020)).to.equal(false)
  })

  it('doubts an advisor whose named peers failed, once there is enough evidence, and forgets with time', () => {
    const s = new PeerStack({ adviceEvidence: 4, adviceThreshold: 0.5, halfLife: 1000, maxPeers: 16 })
    expect(s.doubtful('a', 0)).to.equal(false) // unknown advisor
    for (let i = 0; i < 3; i++) {
      s.advice('a', false, 0)
    }
    expect(s.doubtful('a', 0)).to.equal(false) // 3 outcomes: not enough
    s.advice('a', false, 0)
    expect(s.doubtful('a', 0)).to.equal(true) // 0 of 4: (0 + 1) / (4 + 2) < 0.5
    // evidence halves every halfLife: after one, 2 outcomes are left, not enough
    expect(s.doubtful('a', 1000)).to.equal(false)
    // an advisor whose named peers answer is not doubted
    for (let i = 0; i < 6; i++) {
      s.advice('b', i % 3 !== 0, 0)
    }
    expect(s.doubtful('b', 0)).to.equal(false) // 4 of 6
    // bounded by maxPeers: the least recently updated advisor goes first
    for (let i = 0; i < 16; i++) {
      s.advice(`x${i}`, false, 0)
    }
    for (let i = 0; i < 4; i++) {
      s.advice('x15', false, 0)
    }
    expect(s.doubtful('a', 0)).to.equal(false) // forgotten
    expect(s.doubtful('x15', 0)).to.equal(true)
  })

  it('rejects an unreached back-off shorter than the ordinary one', () => {
    expect(() => peerStackConfig({ backoffBase: 10_000, unreachedBackoffBase: 5000 })).to.throw(InvalidConfigError, /unreachedBackoffBase/)
  })

  it('gives new peers proving slots within the exploration budget, and takes them back', () => {
    const s = new PeerStack({ maxProving: 2, provingInteractions: 3, provingWindow: 10_000 })
    s.observe('a', { type: 'dial-ok', duration: 10 }, 0)
    s.observe('b', { type: 'dial-ok', duration: 10 }, 0)
    s.observe('c', { type: 'dial-ok', duration: 10 }, 0)
    expect(s.category('a', 1)).to.equal('proving')
    expect(s.category('b', 1)).to.equal('proving')
    expect(s.category('c', 1)).to.not.equal('proving') // budget spent
    expect(s.tryExplore('d', 1)).to.equal(false)
    expect(s.provingCount).to.equal(2)
    // a's slot ends after its third interaction, b's on its first failure
    s.observe('a', ok, 2)
    s.observe('a', ok, 3)
    expect(s.category('a', 4)).to.equal('active')
    s.observe('b', fail, 4)
    expect(s.category('b', 5)).to.equal('bad')
    expect(s.tryExplore('d', 5)).to.equal(true)
    expect(s.tryExplore('e', 5)).to.equal(true)
    expect(s.tryExplore('f', 5)).to.equal(false)
    // slots expire with the proving window
    expect(s.tryExplore('f', 10_005)).to.equal(true)
  })

  it('a peer is reached only after a dial of ours, verified only after an answer within the active window, failed after a failure', () => {
    const stack = new PeerStack({ activeWindow: 60_000 })
    expect(stack.reached('a', 0)).to.equal(false)
    expect(stack.standing('a', 0)).to.equal('unverified')
    // an answer over a connection the peer opened: live, but not reached
    stack.observe('a', { type: 'response', latency: 10, useful: true }, 0)
    expect(stack.reached('a', 0)).to.equal(false)
    expect(stack.standing('a', 0)).to.equal('unverified')
    stack.observe('a', { type: 'dial-ok', duration: 30 }, 1)
    stack.observe('a', { type: 'response', latency: 10, useful: true }, 2)
    expect(stack.reached('a', 2)).to.equal(true)
    expect(stack.standing('a', 2)).to.equal('verified')
    expect(stack.standing('a', 60_003)).to.equal('unverified')
    stack.observe('a', { type: 'request-failed', reason: 'timeout' }, 60_004)
    // failed long after its back-off ended, until it answers again
    expect(stack.standing('a', 10_000_000)).to.equal('failed')
    stack.observe('a', { type: 'response', latency: 10, useful: true }, 10_000_001)
    expect(stack.standing('a', 10_000_001)).to.equal('verified')
  })

  it('a peer whose connection broke is held back for suspectFor without losing value, verified again only after it answers', () => {
    const stack = new PeerStack({ suspectFor: 30_000 })
    stack.disconnected('new', 0)
    expect(stack.backedOff('new', 0)).to.equal(true)
    expect(stack.value('new', 0)).to.equal(0.5)
    expect(stack.provingCount).to.equal(0)
    stack.observe('a', { type: 'dial-ok', duration: 30 }, 0)
    stack.observe('a', ok, 1)
    const before = stack.value('a', 10)
    const interactions = stack.stats('a')?.interactions
    stack.disconnected('a', 10)
    expect(stack.backedOff('a', 10)).to.equal(true)
    expect(stack.standing('a', 10)).to.equal('failed')
    expect(stack.category('a', 10)).to.equal('bad')
    expect(stack.value('a', 10)).to.equal(before, 'a broken connection is no failure evidence')
    expect(stack.stats('a')?.interactions).to.equal(interactions)
    expect(stack.backedOff('a', 30_009)).to.equal(true)
    expect(stack.backedOff('a', 30_010)).to.equal(false)
    // its last success came before the break: unverified, not verified
    expect(stack.standing('a', 30_010)).to.equal('unverified')
    stack.observe('a', ok, 30_011)
    expect(stack.standing('a', 30_011)).to.equal('verified')
    // an answer lifts the hold at once
    stack.disconnected('a', 40_000)
    stack.observe('a', ok, 40_001)
    expect(stack.backedOff('a', 40_001)).to.equal(false)
    expect(stack.standing('a', 40_001)).to.equal('verified')
  })

  it('a close that was ours after all takes the hold back, but never a failure\'s back-off', () => {
    const stack = new PeerStack()
    stack.observe('a', { type: 'dial-ok', duration: 30 }, 0)
    stack.observe('a', ok, 1)
    stack.disconnected('a', 2)
    stack.observe('a', { type: 'closed-by-us' }, 3)
    expect(stack.backedOff('a', 3)).to.equal(false)
    expect(stack.standing('a', 3)).to.equal('verified')
    stack.observe('b', fail, 0)
    const until = stack.backoffUntil('b')
    stack.disconnected('b', 1)
    stack.observe('b', { type: 'closed-by-us' }, 2)
    expect(stack.backoffUntil('b')).to.equal(until)
    // a close of ours with no break behind it changes nothing
    stack.observe('c', ok, 0)
    const c = stack.stats('c')
    stack.observe('c', { type: 'closed-by-us' }, 1)
    expect(stack.stats('c')).to.deep.equal(c)
  })

  it('tags active peers by value, proving ones lightly, unknown and bad ones not at all', () => {
    const s = new PeerStack()
    for (let i = 0; i < 10; i++) {
      s.observe('good', ok, i)
    }
    s.observe('new', { type: 'dial-ok', duration: 5 }, 0)
    s.observe('bad', fail, 0)
    expect(s.tag('good', 20)).to.be.greaterThan(80)
    expect(s.tag('new', 20)).to.equal(10)
    expect(s.tag('bad', 20)).to.equal(0)
    expect(s.tag('nobody', 20)).to.equal(0)
    // a good peer silent for longer than the active window is inactive: tagged lower
    expect(s.tag('good', 20 * MIN)).to.be.lessThan(s.tag('good', 20))
  })

  it('adapts timeouts to what it observed, within floor and ceiling', () => {
    const s = new PeerStack()
    // nothing observed: the ceilings
    expect(s.dialTimeout('x', 0)).to.equal(params.dialTimeoutCeiling)
    expect(s.requestTimeout('x', 0)).to.equal(params.requestTimeoutCeiling)
    for (let i = 0; i < 20; i++) {
      s.observe('fast', { type: 'dial-ok', duration: 10 }, i)
      s.observe('fast', { type: 'response', latency: 5, useful: true }, i)
    }
    expect(s.dialTimeout('fast', 30)).to.equal(params.dialTimeoutFloor)
    expect(s.requestTimeout('fast', 30)).to.equal(params.requestTimeoutFloor)
    expect(s.hedgeDelay('fast', 30)).to.equal(params.hedgeFloor)
    // an unknown peer now gets the global estimate, not the ceiling
    expect(s.dialTimeout('other', 30)).to.be.lessThan(params.dialTimeoutCeiling)
    for (let i = 0; i < 20; i++) {
      s.observe('slow', { type: 'dial-ok', duration: 4000 }, 100 + i)
      s.observe('slow', { type: 'response', latency: 3000, useful: true }, 100 + i)
    }
    expect(s.dialTimeout('slow', 200)).to.be.within(4000, params.dialTimeoutCeiling)
    expect(s.requestTimeout('slow', 200)).to.be.within(6000, params.requestTimeoutCeiling)
  })

  it('ranks and picks the best peers, skipping bad ones', () => {
    const s = new PeerStack()
    for (let i = 0; i < 3; i++) {
      s.observe('a', ok, i)
    }
    s.observe('b', ok, 0)
    s.observe('c', fail, 0)
    expect(s.rank(['c', 'b', 'a', 'z'], 5)).to.deep.equal(['a', 'b', 'z', 'c'])
    expect(s.best(5, 5)).to.deep.equal(['a', 'b'])
  })

  it('saves and restores, skipping malformed entries without throwing', () => {
    const s = new PeerStack()
    s.observe('a', ok, 0)
    s.observe('b', fail, 0)
    const saved = JSON.parse(JSON.stringify(s.export(1)))
    const t = new PeerStack()
    expect(t.import([...saved, null, 7, { id: 'x' }, { id: 'y', stats: { successes: 'lots' } }, { id: '', stats: saved[0].stats }, { id: 'z', stats: { ...saved[0].stats, failures: -1 } }], 1)).to.equal(2)
    expect(t.value('a', 1)).to.equal(s.value('a', 1))
    expect(t.backedOff('b', 1)).to.equal(true)
    // state saved before brokenAt existed is still taken
    const { heldUntil, ...older } = saved[0].stats
    expect(heldUntil).to.equal(-1)
    expect(new PeerStack().import([{ id: 'old', stats: older }], 1)).to.equal(1)
    expect(t.import('garbage', 1)).to.equal(0)
    expect(t.import(undefined, 1)).to.equal(0)
  })

  it('never tracks more than maxPeers', () => {
    const s = new PeerStack({ maxPeers: 100 })
    for (let i = 0; i < 1000; i++) {
      s.observe(`p${i}`, i % 3 === 0 ? fail : ok, i)
      expect(s.size).to.be.at.most(100)
    }
    // the valuable ones are the ones kept
    const kept = s.export(1000)
    expect(kept.filter(e => e.stats.failures > 0).length).to.be.lessThan(kept.length / 2)
  })

  describe('properties', () => {
    it('the value stays in [0, 1]', () => {
      fc.assert(fc.property(history, fc.nat(1_000_000), (steps, later) => {
        const { stats, now } = replay(steps)
        const v = computeScore(stats, params, now + later)
        return v >= 0 && v <= 1
      }))
    })

    it('one more failure never raises the value; one more success (at the same latency) never lowers it', () => {
      fc.assert(fc.property(history, fc.nat(MIN), (steps, dt) => {
        const { stats, now } = replay(steps)
        const t = now + dt
        const before = computeScore(stats, params, t)
        const failed = computeScore(applyObservation(stats, fail, params, t), params, t)
        const latency = stats.srtt < 0 ? 0 : stats.srtt
        const succeeded = computeScore(applyObservation(stats, { type: 'response', latency, useful: true }, params, t), params, t)
        return failed <= before + 1e-12 && succeeded >= before - 1e-12
      }))
    })

    it('decay is monotone: with no news the value moves steadily toward its prior', () => {
      fc.assert(fc.property(history, fc.nat(10 * MIN), fc.nat(10 * MIN), (steps, a, b) => {
        const { stats, now } = replay(steps)
        const prior = computeScore({ ...stats, successes: 0, failures: 0 }, params, now)
        const v0 = computeScore(stats, params, now)
        const v1 = computeScore(stats, params, now + a)
        const v2 = computeScore(stats, params, now + a + b)
        return Math.abs(v2 - prior) <= Math.abs(v1 - prior) + 1e-12 && Math.abs(v1 - prior) <= Math.abs(v0 - prior) + 1e-12
      }))
    })

    it('a bad peer is never eligible before its back-off ends', () => {
      fc.assert(fc.property(history, fc.integer({ min: 1, max: 10 }), (steps, n) => {
        const s = new PeerStack()
        let now = 0
        for (const [obs, dt] of steps) {
          now += dt
          s.observe('p', obs, now)
        }
        for (let i = 0; i < n; i++) {
          s.observe('p', fail, now)
        }
        const until = s.backoffUntil('p') ?? 0
        return until >= now + backoffFor(1, params) && s.backedOff('p', until - 1) && !s.backedOff('p', until)
      }))
    })

    it('proving slots never exceed the budget', () => {
      fc.assert(fc.property(fc.array(fc.tuple(fc.nat(50), observation, fc.nat(1000)), { maxLength: 200 }), fc.integer({ min: 0, max: 10 }), (steps, budget) => {
        const s = new PeerStack({ maxProving: budget })
        let now = 0
        for (const [peer, obs, dt] of steps) {
          now += dt
          s.observe(`p${peer}`, obs, now)
          if (s.provingCount > budget) {
            return false
          }
        }
        return true
      }))
    })
  })
})
