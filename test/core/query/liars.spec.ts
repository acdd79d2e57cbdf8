/**
 * Lying peers (issue #12) on the static network of test/core/fixtures: 300
 * nodes with full routing tables, 30% of them liars of one kind (liars.ts:
 * fabricated peers nearer the target than anyone, the farthest real peers,
 * or themselves repeated). 40 lookups (k = 20) from one honest node, with a
 * priority peer stack fed what the adapter would tell it: each answer
 * (useful when it names a peer nearer the target than the responder, as
 * driver.ts judges), each failed request, each `misled` effect as an
 * invalid response.
 *
 * Checked for every lookup: it returns every honest peer among the true k
 * closest, and only real peers (fewer than k when liars are among the true
 * k closest: the discredited and those in back-off are left out, and honest
 * answers, capped at k, name nobody beyond the true k closest); it sends at most 100 requests (5k; at most
 * 30 without liars, 200 is `maxRequests`) and holds at most 100 candidates
 * (`maxCandidates`). The fixture answers one request per tick, so time is
 * bounded with the requests. After the 40 lookups: liars are valued below
 * honest peers (fabricators all below every honest peer).
 */
import { expect } from 'aegir/chai'
import { SeededRandom } from '../../../src/core/env.ts'
import { KEY_BYTES, namesCloser } from '../../../src/core/key.ts'
import { PeerStack } from '../../../src/core/peer-stack/index.ts'
import { bruteForceClosest, randomContacts } from '../fixtures/keys.ts'
import { LyingNetwork, pickLiars } from '../fixtures/liars.ts'
import type { Contact } from '../../../src/core/contact.ts'
import type { LookupConfig } from '../../../src/core/query/config.ts'
import type { LiarKind } from '../fixtures/liars.ts'

const K = 20
const NODES = 300
const SHARE = 0.3
const LOOKUPS = 40
const MAX_REQUESTS = 5 * K
const MAX_CANDIDATES = 100

interface Outcome {
  /** lookups that missed an honest peer among the true k closest, or returned one that does not exist */
  wrong: number
  maxRequests: number
  meanRequests: number
  maxCandidates: number
  liarValues: number[]
  honestValues: number[]
}

function run (kind: LiarKind | 'none', seed: number, config: Partial<LookupConfig> = {}): Outcome {
  const nodes = randomContacts(NODES, seed)
  const liars = kind === 'none' ? new Map<string, LiarKind>() : pickLiars(nodes, kind, SHARE, seed + 1)
  const net = new LyingNetwork(nodes, liars, K, seed + 2)
  const byId = new Map(nodes.map(n => [n.id, n]))
  const random = new SeededRandom(seed + 3)
  const stack = new PeerStack()
  const from = nodes[0]
  const out: Outcome = { wrong: 0, maxRequests: 0, meanRequests: 0, maxCandidates: 0, liarValues: [], honestValues: [] }
  let now = 1_000_000
  for (let i = 0; i < LOOKUPS; i++) {
    const target = random.fill(new Uint8Array(KEY_BYTES))
    let candidates = 0
    const r = net.lookup(from, target, { k: K, ...config }, i, {
      quality: stack,
      startAt: now,
      onOutcome: (id, closer, t) => {
        const responder = byId.get(id)
        stack.observe(id, closer == null || responder == null
          ? { type: 'dial-failed', reason: 'timeout' }
          : { type: 'response', latency: 50, useful: namesCloser(target, responder.key, closer.map(c => c.key)) }, t)
      },
      onEffect: (e, t) => {
        if (e.type === 'misled') {
          stack.observe(e.peer.id, { type: 'invalid-response' }, t)
        }
      }
    })
    candidates = Math.max(candidates, r.lookup.stats().candidates)
    now = r.endedAt + 1000
    const truth = bruteForceClosest(nodes.slice(1), target, K)
    const got = new Set(r.closest.map(c => c.id))
    const missed = truth.filter(c => !liars.has(c.id) && !got.has(c.id))
    const unreal = r.closest.filter(c => !byId.has(c.id))
    if (missed.length > 0 || unreal.length > 0) {
      out.wrong++
    }
    out.maxRequests = Math.max(out.maxRequests, r.requested.length)
    out.meanRequests += r.requested.length / LOOKUPS
    out.maxCandidates = Math.max(out.maxCandidates, candidates)
  }
  const asked = (c: Contact): boolean => stack.stats(c.id) != null
  out.liarValues = nodes.filter(c => liars.has(c.id) && asked(c)).map(c => stack.value(c.id, now))
  out.honestValues = nodes.slice(1).filter(c => !liars.has(c.id) && asked(c)).map(c => stack.value(c.id, now))
  return out
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

/** The figures README quotes, printed with LIARS_REPORT=1 */
function report (kind: string, seed: number, o: Outcome): void {
  if (process.env.LIARS_REPORT != null) {
    const f = (x: number): string => x.toFixed(2)
    // eslint-disable-next-line no-console
    console.log(`      ${kind} seed ${seed}: wrong ${o.wrong}/${LOOKUPS}, requests mean ${o.meanRequests.toFixed(1)} max ${o.maxRequests}, candidates max ${o.maxCandidates}, value liars mean ${o.liarValues.length > 0 ? f(mean(o.liarValues)) : '-'} max ${o.liarValues.length > 0 ? f(Math.max(...o.liarValues)) : '-'}, honest mean ${f(mean(o.honestValues))} min ${f(Math.min(...o.honestValues))}`)
  }
}

describe('core/query/liars: lookups among lying peers', function () {
  this.timeout(60_000)

  it('without liars: the true k closest, at most 30 requests', () => {
    const o = run('none', 7)
    report('none', 7, o)
    expect(o.wrong).to.equal(0)
    expect(o.maxRequests).to.be.at.most(30)
  })

  for (const kind of ['fabricate', 'far', 'self'] as const) {
    it(`30% ${kind} liars: every lookup returns the honest true k closest, within ${MAX_REQUESTS} requests and ${MAX_CANDIDATES} candidates, and liars are valued below honest peers`, () => {
      for (const seed of [7, 8]) {
        const o = run(kind, seed)
        report(kind, seed, o)
        expect(o.wrong, `seed ${seed}`).to.equal(0)
        expect(o.maxRequests, `seed ${seed}`).to.be.at.most(MAX_REQUESTS)
        expect(o.maxCandidates, `seed ${seed}`).to.be.at.most(MAX_CANDIDATES)
        expect(o.liarValues.length, `seed ${seed}`).to.be.greaterThan(0)
        expect(mean(o.liarValues), `seed ${seed}`).to.be.below(mean(o.honestValues) - 0.05)
        if (kind === 'fabricate') {
          expect(Math.max(...o.liarValues), `seed ${seed}`).to.be.below(Math.min(...o.honestValues))
        }
      }
    })
  }

  it('a lookup that never discredits fabricators (misledAfter 10000) costs more than the bound: the protection is what holds it', () => {
    const o = run('fabricate', 7, { misledAfter: 10_000 })
    report('fabricate, misledAfter 10000', 7, o)
    expect(o.maxRequests).to.be.greaterThan(MAX_REQUESTS)
  })
})
