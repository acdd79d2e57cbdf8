import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { NEUTRAL_QUALITY } from '../../../src/core/contact.ts'
import { SeededRandom } from '../../../src/core/env.ts'
import { KEY_BYTES } from '../../../src/core/key.ts'
import { Lookup } from '../../../src/core/query/lookup.ts'
import { InvalidConfigError } from '../../../src/core/routing-table/config.ts'
import { bruteForceClosest, ids, randomContacts, tinyContact, tinyKey } from '../fixtures/keys.ts'
import { StaticNetwork } from '../fixtures/static-network.ts'
import type { Contact, PeerQuality } from '../../../src/core/contact.ts'
import type { LookupEffect } from '../../../src/core/query/lookup.ts'

function pickDead (nodes: Contact[], random: SeededRandom, share: number): string[] {
  const out: string[] = []
  for (const c of nodes.slice(1)) {
    if (random.float() < share) {
      out.push(c.id)
    }
  }
  return out
}

const notIn = (set: Set<string>) => (c: Contact): boolean => !set.has(c.id)

const requests = (effects: LookupEffect[]): string[] => effects.flatMap(e => e.type === 'request' ? [e.peer.id] : [])

describe('core/query/lookup', () => {
  it('validates its config', () => {
    expect(() => new Lookup(tinyKey(0), 'me', [], { alpha: 0 })).to.throw(InvalidConfigError, /alpha/)
    expect(() => new Lookup(tinyKey(0), 'me', [], { k: 2, beta: 3 })).to.throw(InvalidConfigError, /beta/)
  })

  it('asks the alpha closest first and converges when the beta closest have answered', () => {
    // target 0x00; distances are the first byte
    const seeds = [0x40, 0x10, 0x80, 0x20].map(tinyContact)
    const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 2 })
    expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p16', 'p32'])
    // 0x10 names 0x08 and 0x04: they become the closest and are asked next
    expect(requests(l.handle({ type: 'response', peer: 'p16', closer: [tinyContact(0x08), tinyContact(0x04)] }, 1))).to.deep.equal(['p4'])
    // 0x20 answers; 0x08 is now within the 2 closest and gets asked
    expect(requests(l.handle({ type: 'response', peer: 'p32', closer: [] }, 2))).to.deep.equal(['p8'])
    expect(requests(l.handle({ type: 'response', peer: 'p4', closer: [] }, 3))).to.deep.equal([])
    const end = l.handle({ type: 'response', peer: 'p8', closer: [] }, 4)
    expect(end).to.deep.equal([{ type: 'finished', closest: [tinyContact(0x04), tinyContact(0x08)], reason: 'converged' }])
    expect(l.finished).to.equal(true)
    expect(l.handle({ type: 'response', peer: 'p64', closer: [] }, 5)).to.deep.equal([])
  })

  it('skips failed peers and replaces them with the next closest', () => {
    const seeds = [0x01, 0x02, 0x03].map(tinyContact)
    const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 1 })
    expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p1'])
    expect(requests(l.handle({ type: 'failure', peer: 'p1', reason: 'dial-timeout' }, 1))).to.deep.equal(['p2'])
    expect(requests(l.handle({ type: 'response', peer: 'p2', closer: [tinyContact(0x01)] }, 2))).to.deep.equal(['p3'])
    const end = l.handle({ type: 'response', peer: 'p3', closer: [] }, 3)
    expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
    expect(ids((end[0] as any).closest)).to.deep.equal(['p2', 'p3'])
    expect(l.stats()).to.deep.include({ requests: 3, responses: 2, failures: 1, inFlight: 0 })
  })

  it('never asks itself and ignores unsolicited responses', () => {
    const l = new Lookup(tinyKey(0), 'p1', [tinyContact(1), tinyContact(2)], { k: 2, alpha: 3 })
    expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p2'])
    expect(l.handle({ type: 'response', peer: 'p9', closer: [tinyContact(3)] }, 1)).to.deep.equal([])
    expect(l.stats().candidates).to.equal(1)
  })

  it('finishes exhausted when everyone failed, and stopped on request', () => {
    const l = new Lookup(tinyKey(0), 'me', [tinyContact(1)], { k: 2 })
    l.handle({ type: 'start' }, 0)
    expect(l.handle({ type: 'failure', peer: 'p1', reason: 'timeout' }, 1)).to.deep.equal([{ type: 'finished', closest: [], reason: 'exhausted' }])
    const empty = new Lookup(tinyKey(0), 'me', [], {})
    expect(empty.handle({ type: 'start' }, 0)).to.deep.equal([{ type: 'finished', closest: [], reason: 'exhausted' }])
    const s = new Lookup(tinyKey(0), 'me', [tinyContact(1)], {})
    s.handle({ type: 'start' }, 0)
    expect(s.handle({ type: 'stop' }, 1)[0]).to.deep.include({ reason: 'stopped' })
  })

  it('discredits a peer whose named peers cannot be reached at all, not one whose named peers time out', () => {
    // p128 answers naming p1..p4; each request to them fails with `reason`, one at a time
    const run = (reason: 'dial-refused' | 'timeout'): LookupEffect[] => {
      const l = new Lookup(tinyKey(0), 'me', [tinyContact(0x80)], { k: 2, alpha: 1 })
      const effects = [...l.handle({ type: 'start' }, 0), ...l.handle({ type: 'response', peer: 'p128', closer: [1, 2, 3, 4].map(tinyContact) }, 1)]
      for (let t = 2; !l.finished; t++) {
        const asked = requests(effects).at(-1) as string
        effects.push(...l.handle({ type: 'failure', peer: asked, reason }, t))
      }
      return effects
    }
    const refused = run('dial-refused')
    // three refused: p4, named by p128 alone, is dropped unasked and p128 is left out of the result
    expect(requests(refused)).to.deep.equal(['p128', 'p1', 'p2', 'p3'])
    expect(refused.filter(e => e.type === 'misled')).to.deep.equal([{ type: 'misled', peer: tinyContact(0x80) }])
    expect(refused.at(-1)).to.deep.include({ type: 'finished', closest: [] })
    const slow = run('timeout')
    expect(requests(slow)).to.deep.equal(['p128', 'p1', 'p2', 'p3', 'p4'])
    expect(slow.filter(e => e.type === 'misled')).to.deep.equal([])
    expect(slow.at(-1)).to.deep.include({ type: 'finished', closest: [tinyContact(0x80)] })
  })

  it('a discredited peer neither counts towards convergence nor is returned: the next closest is asked instead', () => {
    // p2 names p0 and p1, both refused: with misledAfter 2 it is discredited, so k = 2 needs p64 and p128
    const l = new Lookup(tinyKey(0), 'me', [2, 0x40, 0x80].map(tinyContact), { k: 2, alpha: 1, misledAfter: 2 })
    const effects = [...l.handle({ type: 'start' }, 0), ...l.handle({ type: 'response', peer: 'p2', closer: [0, 1].map(tinyContact) }, 1)]
    effects.push(...l.handle({ type: 'failure', peer: 'p0', reason: 'dial-refused' }, 2))
    effects.push(...l.handle({ type: 'failure', peer: 'p1', reason: 'dial-refused' }, 3))
    effects.push(...l.handle({ type: 'response', peer: 'p64', closer: [] }, 4))
    effects.push(...l.handle({ type: 'response', peer: 'p128', closer: [] }, 5))
    expect(requests(effects)).to.deep.equal(['p2', 'p0', 'p1', 'p64', 'p128'])
    expect(effects.at(-1)).to.deep.equal({ type: 'finished', closest: [tinyContact(0x40), tinyContact(0x80)], reason: 'converged' })
  })

  it('respects maxRequests', () => {
    const l = new Lookup(tinyKey(0), 'me', [tinyContact(0x80)], { k: 2, alpha: 1, maxRequests: 2 })
    l.handle({ type: 'start' }, 0)
    expect(requests(l.handle({ type: 'response', peer: 'p128', closer: [tinyContact(0x40)] }, 1))).to.deep.equal(['p64'])
    const end = l.handle({ type: 'response', peer: 'p64', closer: [tinyContact(0x20)] }, 2)
    expect(end[0]).to.deep.include({ type: 'finished', reason: 'request-limit' })
  })

  it('keeps at most maxCandidates candidates, forgetting the farthest', () => {
    const l = new Lookup(tinyKey(0), 'me', [tinyContact(1)], { k: 2, alpha: 1, maxCandidates: 3 })
    l.handle({ type: 'start' }, 0)
    l.handle({ type: 'response', peer: 'p1', closer: [0x90, 0x10, 0x20, 0x30, 0x40].map(tinyContact) }, 1)
    expect(l.stats().candidates).to.equal(3)
  })

  it('settles its head once responses in a row name nobody new among the k closest live, and names only those that answered', () => {
    const seeds = [0x40, 0x30, 0x20, 0x10].map(tinyContact)
    const l = new Lookup(tinyKey(0), 'me', seeds, { k: 4, alpha: 1 })
    expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p16'])
    expect(l.settledHead(3, 2), 'nobody answered').to.deep.equal([])
    // p16 names two peers nearer than everyone: the head moved
    expect(requests(l.handle({ type: 'response', peer: 'p16', closer: [tinyContact(0x08), tinyContact(0x04)] }, 1))).to.deep.equal(['p4'])
    expect(l.settledHead(3, 2)).to.deep.equal([])
    // p4 names only a peer beyond the 4 closest: one response without change
    expect(requests(l.handle({ type: 'response', peer: 'p4', closer: [tinyContact(0x50)] }, 2))).to.deep.equal(['p8'])
    expect(l.settledHead(3, 2), 'one response in a row is not enough').to.deep.equal([])
    expect(ids(l.settledHead(3, 1))).to.deep.equal(['p4', 'p16'])
    // p8 names nobody: settled; the 3 closest live all answered
    expect(requests(l.handle({ type: 'response', peer: 'p8', closer: [] }, 3))).to.deep.equal(['p32'])
    expect(l.finished).to.equal(false)
    expect(ids(l.settledHead(3, 2))).to.deep.equal(['p4', 'p8', 'p16'])
    // p32 is among the 4 closest but has not answered: it counts towards n, and is not named
    expect(ids(l.settledHead(4, 2))).to.deep.equal(['p4', 'p8', 'p16'])
    expect(ids(l.settledHead(2, 2))).to.deep.equal(['p4', 'p8'])
    // p32 names a peer nearer than all: unsettled again
    expect(requests(l.handle({ type: 'response', peer: 'p32', closer: [tinyContact(0x02)] }, 4))).to.deep.equal(['p2'])
    expect(l.settledHead(3, 2)).to.deep.equal([])
    // a finished lookup has no head
    expect(l.handle({ type: 'response', peer: 'p2', closer: [] }, 5)[0]).to.deep.include({ type: 'finished', reason: 'converged' })
    expect(l.settledHead(3, 0)).to.deep.equal([])
  })

  it('a failed peer is no part of the settled head and is not counted towards n', () => {
    const seeds = [0x01, 0x02, 0x03, 0x04, 0x05].map(tinyContact)
    const l = new Lookup(tinyKey(0), 'me', seeds, { k: 4, alpha: 1 })
    expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p1'])
    expect(requests(l.handle({ type: 'failure', peer: 'p1', reason: 'dial-timeout' }, 1))).to.deep.equal(['p2'])
    l.handle({ type: 'response', peer: 'p2', closer: [] }, 2)
    l.handle({ type: 'response', peer: 'p3', closer: [] }, 3)
    expect(ids(l.settledHead(2, 2))).to.deep.equal(['p2', 'p3'])
  })

  describe('with a peer quality', () => {
    const quality = (values: Record<string, number>, backedOff: string[] = []): PeerQuality => ({
      ...NEUTRAL_QUALITY,
      value: id => values[id] ?? 0.5,
      backedOff: id => backedOff.includes(id),
      hedgeDelay: () => 100,
      reached: () => true,
      standing: () => 'unverified'
    })

    it('asks the most valuable of the beta closest first, and the result is still by distance', () => {
      const seeds = [0x01, 0x02, 0x03, 0x04].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 4, alpha: 2 }, quality({ p3: 0.9, p4: 0.8, p1: 0.1 }))
      expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p3', 'p4'])
      expect(requests(l.handle({ type: 'response', peer: 'p3', closer: [] }, 1))).to.deep.equal(['p2'])
      expect(requests(l.handle({ type: 'response', peer: 'p4', closer: [] }, 2))).to.deep.equal(['p1'])
      l.handle({ type: 'response', peer: 'p2', closer: [] }, 3)
      const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 4)
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p2', 'p3', 'p4'])
    })

    it('skips peers in back-off while others remain', () => {
      const seeds = [0x01, 0x02, 0x03].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 3 }, quality({}, ['p1']))
      expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p2', 'p3'])
      l.handle({ type: 'response', peer: 'p2', closer: [] }, 1)
      const end = l.handle({ type: 'response', peer: 'p3', closer: [] }, 2)
      expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
      expect(ids((end[0] as any).closest)).to.deep.equal(['p2', 'p3'])
      expect(l.stats()).to.deep.include({ requests: 2, skipped: 1 })
    })

    describe('advice', () => {
      // p64 names peers that fail us; p1 and p2 we never reached
      const advised = (log: string[]): PeerQuality => ({
        ...NEUTRAL_QUALITY,
        hedgeDelay: () => 100,
        reached: id => id !== 'p1' && id !== 'p2',
        advice: (advisor, good) => { log.push(`${advisor}:${good ? 'good' : 'bad'}`) },
        doubtful: advisor => advisor === 'p64'
      })

      it('leaves aside a peer never reached that only a doubtful advisor named', () => {
        const l = new Lookup(tinyKey(0), 'me', [0x40, 0x41].map(tinyContact), { k: 2, alpha: 2 }, advised([]))
        expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p64', 'p65'])
        expect(requests(l.handle({ type: 'response', peer: 'p64', closer: [tinyContact(1)] }, 1))).to.deep.equal([])
        const end = l.handle({ type: 'response', peer: 'p65', closer: [] }, 2)
        expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
        expect(ids((end[0] as any).closest)).to.deep.equal(['p64', 'p65'])
        expect(l.stats()).to.deep.include({ requests: 2, skipped: 1 })
      })

      it('asks it once an advisor in good standing names it too, and credits both namers', () => {
        const log: string[] = []
        const l = new Lookup(tinyKey(0), 'me', [0x40, 0x41].map(tinyContact), { k: 2, alpha: 2 }, advised(log))
        l.handle({ type: 'start' }, 0)
        l.handle({ type: 'response', peer: 'p64', closer: [tinyContact(1)] }, 1)
        expect(requests(l.handle({ type: 'response', peer: 'p65', closer: [tinyContact(1), tinyContact(2)] }, 2))).to.deep.equal(['p1', 'p2'])
        l.handle({ type: 'response', peer: 'p1', closer: [] }, 3)
        const end = l.handle({ type: 'failure', peer: 'p2', reason: 'dial-timeout' }, 4)
        expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p64'])
        expect(log).to.deep.equal(['p64:good', 'p65:good', 'p65:bad'])
      })

      it('asks the doubted peers rather than end short when nobody else is left', () => {
        const l = new Lookup(tinyKey(0), 'me', [tinyContact(0x40)], { k: 2, alpha: 2 }, advised([]))
        l.handle({ type: 'start' }, 0)
        expect(requests(l.handle({ type: 'response', peer: 'p64', closer: [tinyContact(1)] }, 1))).to.deep.equal(['p1'])
        const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 2)
        expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p64'])
      })
    })

    it('tries peers in back-off when nobody else answered', () => {
      const seeds = [0x01, 0x02].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 3 }, quality({}, ['p1']))
      expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p2'])
      expect(requests(l.handle({ type: 'failure', peer: 'p2', reason: 'dial-timeout' }, 1))).to.deep.equal(['p1'])
      const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 2)
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1'])
    })

    it('a slow request frees its slot, stops holding up convergence, and a late answer still counts', () => {
      const seeds = [0x01, 0x02, 0x03].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 1 })
      expect(requests(l.handle({ type: 'start' }, 0))).to.deep.equal(['p1'])
      // p1 is slow: p2 is asked without waiting for it
      expect(requests(l.handle({ type: 'slow', peer: 'p1' }, 100))).to.deep.equal(['p2'])
      expect(requests(l.handle({ type: 'response', peer: 'p2', closer: [] }, 110))).to.deep.equal(['p3'])
      // p1 answers late, before p3: the two closest have answered
      const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 150)
      expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p2'])
    })

    it('a slow peer among the closest holds up convergence until it is overdue', () => {
      const seeds = [0x01, 0x02, 0x03].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 1 })
      l.handle({ type: 'start' }, 0)
      l.handle({ type: 'slow', peer: 'p1' }, 100)
      l.handle({ type: 'response', peer: 'p2', closer: [] }, 110)
      // p2 and p3 answered, but p1 may still: no result without it yet
      expect(l.handle({ type: 'response', peer: 'p3', closer: [] }, 120)).to.deep.equal([])
      const end = l.handle({ type: 'overdue', peer: 'p1' }, 200)
      expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
      expect(ids((end[0] as any).closest)).to.deep.equal(['p2', 'p3'])
      expect(l.stats()).to.deep.include({ slow: 1, inFlight: 0 })
    })

    it('with awaitOverdue a slow peer among the closest holds up convergence until it answers', () => {
      const seeds = [0x01, 0x02, 0x03].map(tinyContact)
      const l = new Lookup(tinyKey(0), 'me', seeds, { k: 2, alpha: 1, awaitOverdue: true })
      l.handle({ type: 'start' }, 0)
      l.handle({ type: 'slow', peer: 'p1' }, 100)
      l.handle({ type: 'response', peer: 'p2', closer: [] }, 110)
      l.handle({ type: 'response', peer: 'p3', closer: [] }, 120)
      // overdue changes nothing: p1 may still answer, and it is the nearest
      expect(l.handle({ type: 'overdue', peer: 'p1' }, 200)).to.deep.equal([])
      const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 900)
      expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p2'])
    })

    it('waits for slow requests when nothing else is left, and bounds them by maxSlow', () => {
      const l = new Lookup(tinyKey(0), 'me', [tinyContact(1), tinyContact(2)], { k: 2, alpha: 1, maxSlow: 1 })
      l.handle({ type: 'start' }, 0)
      expect(requests(l.handle({ type: 'slow', peer: 'p1' }, 100))).to.deep.equal(['p2'])
      // a second slow request is over the bound: p2 keeps its slot
      expect(l.handle({ type: 'slow', peer: 'p2' }, 200)).to.deep.equal([])
      expect(l.stats()).to.deep.include({ slow: 1, inFlight: 1 })
      expect(l.handle({ type: 'failure', peer: 'p2', reason: 'timeout' }, 300)).to.deep.equal([])
      const end = l.handle({ type: 'response', peer: 'p1', closer: [] }, 400)
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1'])
    })

    it('a request past its hedge delay while every slow slot is taken gets the next one freed', () => {
      const l = new Lookup(tinyKey(0), 'me', [1, 2, 3, 4].map(tinyContact), { k: 2, alpha: 1, maxSlow: 1 })
      l.handle({ type: 'start' }, 0)
      expect(requests(l.handle({ type: 'slow', peer: 'p1' }, 100))).to.deep.equal(['p2'])
      expect(l.handle({ type: 'slow', peer: 'p2' }, 200)).to.deep.equal([])
      // p1 is overdue: it gives up its slow slot, p2 takes it and frees its α slot for p3
      expect(requests(l.handle({ type: 'overdue', peer: 'p1' }, 200))).to.deep.equal(['p3'])
      expect(l.stats()).to.deep.include({ slow: 2, inFlight: 1 })
    })

    it('a request that waited for a slow slot past its second hedge delay is overdue as soon as it gets one', () => {
      const l = new Lookup(tinyKey(0), 'me', [1, 2, 3].map(tinyContact), { k: 2, alpha: 1, maxSlow: 1 })
      l.handle({ type: 'start' }, 0)
      l.handle({ type: 'slow', peer: 'p1' }, 100)
      l.handle({ type: 'slow', peer: 'p2' }, 200)
      expect(l.handle({ type: 'overdue', peer: 'p2' }, 300)).to.deep.equal([])
      expect(requests(l.handle({ type: 'overdue', peer: 'p1' }, 300))).to.deep.equal(['p3'])
      // neither dead-looking peer holds up the result
      const end = l.handle({ type: 'response', peer: 'p3', closer: [] }, 310)
      expect(end[0]).to.deep.include({ type: 'finished', reason: 'converged' })
      expect(ids((end[0] as any).closest)).to.deep.equal(['p3'])
    })

    it('keeps answers beyond k as spares', () => {
      const l = new Lookup(tinyKey(0), 'me', [0x10, 0x20].map(tinyContact), { k: 2, alpha: 3 })
      l.handle({ type: 'start' }, 0)
      l.handle({ type: 'response', peer: 'p16', closer: [tinyContact(0x01), tinyContact(0x02)] }, 1)
      l.handle({ type: 'response', peer: 'p32', closer: [] }, 2)
      l.handle({ type: 'response', peer: 'p1', closer: [] }, 3)
      const end = l.handle({ type: 'response', peer: 'p2', closer: [] }, 4)
      expect(ids((end[0] as any).closest)).to.deep.equal(['p1', 'p2'])
      expect(ids(l.spares(5))).to.deep.equal(['p16', 'p32'])
      expect(ids(l.spares(1))).to.deep.equal(['p16'])
    })
  })

  describe('properties', () => {
    it('over a static network returns exactly the true k closest live peers', () => {
      // dead peers linger only in the initiator's (stale) table: live nodes have evicted them
      fc.assert(fc.property(
        fc.integer({ min: 1, max: 120 }), fc.integer(), fc.double({ min: 0, max: 0.3, noNaN: true }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 1000 }),
        (n, seed, deadShare, alpha, order) => {
          const k = 8
          const nodes = randomContacts(n, seed)
          const random = new SeededRandom(seed)
          const dead = pickDead(nodes, random, deadShare)
          const net = new StaticNetwork(nodes, dead, k, 'initiators')
          const target = random.fill(new Uint8Array(KEY_BYTES))
          const result = net.lookup(nodes[0], target, { k, alpha }, order)
          const live = nodes.slice(1).filter(notIn(net.dead))
          expect(ids(result.closest)).to.deep.equal(ids(bruteForceClosest(live, target, k)))
          // a failed peer is never asked twice
          expect(new Set(result.requested).size).to.equal(result.requested.length)
        }), { verbose: true, numRuns: 60 })
    })

    it('a settled head forms before the lookup ends and names peers among the true k closest live', () => {
      // fixed seeds, not fast-check: this is a rate, not an invariant (a
      // head can in principle name a peer that nodes nobody named push
      // out of the k closest); 100 lookups, 300 nodes, 30% dead
      const k = 20
      let lookups = 0
      let settledEarly = 0
      let named = 0
      let outside = 0
      for (let seed = 1; seed <= 20; seed++) {
        const nodes = randomContacts(300, seed)
        const random = new SeededRandom(seed)
        const net = new StaticNetwork(nodes, pickDead(nodes, random, 0.3), k, 'initiators')
        for (let t = 0; t < 5; t++) {
          const target = random.fill(new Uint8Array(KEY_BYTES))
          const head = new Set<string>()
          let firstAt = -1
          const result = net.lookup(nodes[0], target, { k, alpha: 3 }, t, {
            make: (key, self, seeds) => {
              const lookup = new Lookup(key, self, seeds, { k, alpha: 3 })
              return {
                handle: (event, now) => {
                  const effects = lookup.handle(event, now)
                  for (const c of lookup.settledHead(15, 2)) {
                    firstAt = firstAt < 0 ? now : firstAt
                    head.add(c.id)
                  }
                  return effects
                }
              }
            }
          })
          lookups++
          settledEarly += firstAt >= 0 && firstAt < result.endedAt ? 1 : 0
          const truth = new Set(ids(bruteForceClosest(nodes.slice(1).filter(notIn(net.dead)), target, k)))
          named += head.size
          outside += [...head].filter(id => !truth.has(id)).length
        }
      }
      expect(settledEarly, 'lookups whose head settled before they ended').to.equal(lookups)
      expect(named / lookups, 'peers named by heads per lookup').to.be.at.least(14)
      expect(outside, `of ${named} head peers, beyond the true k closest`).to.be.at.most(named / 100)
    })

    it('with dead peers in every table, returns only live peers from among the true closest', () => {
      // a dead peer listed by everyone can crowd a live one out of every answer,
      // so exactness is not guaranteed (nor being among the true k + dead
      // closest: seed 94011529 finds a live peer of rank 25 with 13 dead);
      // what is: the k closest of the peers that answered, in distance order
      fc.assert(fc.property(
        fc.integer({ min: 1, max: 120 }), fc.integer(), fc.double({ min: 0, max: 0.3, noNaN: true }), fc.integer({ min: 1, max: 6 }),
        (n, seed, deadShare, alpha) => {
          const k = 8
          const nodes = randomContacts(n, seed)
          const random = new SeededRandom(seed)
          const dead = pickDead(nodes, random, deadShare)
          const net = new StaticNetwork(nodes, dead, k, 'everyone')
          const target = random.fill(new Uint8Array(KEY_BYTES))
          const result = net.lookup(nodes[0], target, { k, alpha })
          const others = nodes.slice(1)
          const requested = new Set(result.requested)
          const answered = others.filter(c => requested.has(c.id) && !net.dead.has(c.id))
          expect(ids(result.closest)).to.deep.equal(ids(bruteForceClosest(answered, target, k)))
          // crowding can shorten the result, but a live network always yields someone
          expect(result.closest.length).to.be.at.least(Math.min(1, others.length - dead.length))
        }), { verbose: true, numRuns: 60 })
    })
  })
})
