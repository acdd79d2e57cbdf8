import { expect } from 'aegir/chai'
import { NEUTRAL_QUALITY } from '../../src/core/contact.ts'
import { Coordinator } from '../../src/core/coordinator.ts'
import { SeededRandom } from '../../src/core/env.ts'
import { commonPrefixLength } from '../../src/core/key.ts'
import { PeerStack } from '../../src/core/peer-stack/index.ts'
import { tinyContact, tinyKey } from './fixtures/keys.ts'
import type { PeerQuality } from '../../src/core/contact.ts'
import type { CoreEffect } from '../../src/core/coordinator.ts'

const KAD = '/ipfs/kad/1.0.0'
const self = { id: 'me', key: tinyKey(0) }
const make = (config = {}): Coordinator => new Coordinator(self, { routingTable: { k: 2 }, lookup: { k: 2, alpha: 1 }, ...config }, new SeededRandom(7), 0)
const sends = (effects: CoreEffect[]): Array<Extract<CoreEffect, { type: 'send-request' }>> => effects.flatMap(e => e.type === 'send-request' ? [e] : [])

describe('core/coordinator', () => {
  it('admits only peers that list a DHT protocol, and removes those that stop', () => {
    const c = make()
    expect(c.handle({ type: 'peer-identified', peer: tinyContact(0x80), protocols: ['/ipfs/id/1.0.0'] }, 0)).to.deep.equal([])
    expect(c.routingTable.size).to.equal(0)
    expect(c.handle({ type: 'peer-identified', peer: tinyContact(0x80), protocols: [KAD] }, 0)).to.deep.equal([{ type: 'peer-added', peer: tinyContact(0x80) }])
    expect(c.handle({ type: 'peer-identified', peer: tinyContact(0x80), protocols: ['/other'] }, 1)).to.deep.equal([{ type: 'peer-removed', peer: tinyContact(0x80) }])
  })

  it('never adds a client just because it sent a request', () => {
    const c = make()
    c.handle({ type: 'inbound-request', from: tinyContact(0x80) }, 0)
    expect(c.routingTable.size).to.equal(0)
  })

  it('runs a lookup: requests go out, responders join the table, the result comes back', () => {
    const c = make()
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    const first = sends(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(0x01), request: { kind: 'find-node', key: new Uint8Array([1]) } }, 1))
    expect(first.map(s => s.peer.id)).to.deep.equal(['p64'])
    expect(first[0].request).to.deep.equal({ kind: 'find-node', key: new Uint8Array([1]) })
    // 0x40 names 0x02 and 0x03, which are closer to 0x01
    const second = sends(c.handle({ type: 'response', requestId: first[0].requestId, closer: [tinyContact(0x02), tinyContact(0x03)] }, 2))
    expect(second.map(s => s.peer.id)).to.deep.equal(['p3'])
    // 0x03 answers and enters the table (it answered a DHT request)
    const third = c.handle({ type: 'response', requestId: second[0].requestId, closer: [] }, 3)
    expect(third).to.deep.include({ type: 'peer-added', peer: tinyContact(0x03) })
    // 0x02 fails: the lookup ends with the two closest that answered
    const last = sends(third)[0]
    expect(last.peer.id).to.equal('p2')
    const end = c.handle({ type: 'request-failed', requestId: last.requestId, reason: 'dial-timeout' }, 4)
    const finished = end.find(e => e.type === 'lookup-finished')
    expect(finished).to.deep.include({ queryId: 1, reason: 'converged', requests: 3 })
    expect((finished as any).closest.map((p: any) => p.id)).to.deep.equal(['p3', 'p64'])
    expect(c.activeLookups).to.equal(0)
    expect(c.pendingRequests).to.equal(0)
  })

  it('bounds concurrent lookups', () => {
    const c = make({ maxLookups: 1 })
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(1), request: { kind: 'find-node', key: tinyKey(1) } }, 0)
    expect(c.handle({ type: 'start-lookup', queryId: 2, target: tinyKey(1), request: { kind: 'find-node', key: tinyKey(1) } }, 0))
      .to.deep.equal([{ type: 'lookup-finished', queryId: 2, closest: [], spares: [], reason: 'overloaded', requests: 0 }])
  })

  it('does not blame a peer for our own abort', () => {
    const c = make({ routingTable: { k: 2, maxFailures: 1 } })
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x41), protocols: [KAD] }, 0)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x42), protocols: [KAD] }, 0) // replacement
    const [req] = sends(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(0x40), request: { kind: 'find-node', key: tinyKey(0x40) } }, 1))
    c.handle({ type: 'request-failed', requestId: req.requestId, reason: 'aborted' }, 2)
    expect(c.routingTable.has(req.peer.id)).to.equal(true)
  })

  it('a peer that does not speak the protocol is dropped from the table at once', () => {
    const c = make()
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    const [req] = sends(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(1), request: { kind: 'find-node', key: tinyKey(1) } }, 1))
    expect(c.handle({ type: 'request-failed', requestId: req.requestId, reason: 'protocol-unsupported' }, 2)).to.deep.include({ type: 'peer-removed', peer: tinyContact(0x40) })
  })

  it('answers FIND_NODE with its closest entries, never the requester', () => {
    const c = make({ routingTable: { k: 3 } })
    for (const b of [0x10, 0x20, 0x30, 0x80]) {
      c.handle({ type: 'peer-identified', peer: tinyContact(b), protocols: [KAD] }, 0)
    }
    expect(c.closerPeers(tinyKey(0x11), 'p16', 0).map(p => p.id)).to.deep.equal(['p48', 'p32', 'p128']) // 0x30^0x11=0x21 < 0x20^0x11=0x31
  })

  it('refreshes stale buckets on tick with lookups of keys in their range', () => {
    const c = new Coordinator(self, { routingTable: { refreshInterval: 1_000 } }, new SeededRandom(1), 0)
    expect(c.nextDeadline()).to.equal(undefined)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    expect(c.nextDeadline()).to.equal(1_000)
    const effects = sends(c.handle({ type: 'tick' }, 1_000))
    // buckets 0 and 1 are due; each gets one lookup whose first request goes to 0x40
    expect(effects.map(e => commonPrefixLength(self.key, (e.request as any).key))).to.deep.equal([0, 1])
    expect(effects.every(e => e.queryId != null && e.queryId < 0)).to.equal(true)
    expect(c.nextDeadline()).to.equal(2_000)
  })

  it('with refreshKey, a bucket refresh sends the key it gives and looks up its target; a bucket it gives none is skipped until the next interval', () => {
    const asked: number[] = []
    const refreshKey = (cpl: number): { target: Uint8Array, key: Uint8Array } | undefined => {
      asked.push(cpl)
      // bucket 1 has no key this time; bucket 0's wire key differs from its target
      return cpl === 1 ? undefined : { target: tinyKey(0x80 ^ (self.key[0] & 0x80)), key: new Uint8Array([0x12, 0x20, cpl]) }
    }
    const c = new Coordinator(self, { refreshKey, routingTable: { refreshInterval: 1_000 } }, new SeededRandom(1), 0)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x40), protocols: [KAD] }, 0)
    const effects = sends(c.handle({ type: 'tick' }, 1_000))
    expect(asked).to.deep.equal([0, 1])
    expect(effects.map(e => [...(e.request as any).key])).to.deep.equal([[0x12, 0x20, 0]])
    expect(c.activeLookups).to.equal(1)
    // both buckets count as refreshed: nothing is due before the next interval
    expect(c.nextDeadline()).to.equal(2_000)
  })

  it('a table peer whose connection broke is held back without a dial; a proven newcomer to its bucket takes its place, still without a dial', () => {
    const stack = new PeerStack()
    const c = new Coordinator(self, { refresh: false, routingTable: { k: 1, maxPendingPings: 1 } }, new SeededRandom(1), 0, stack)
    // known to the stack as a good peer
    stack.observe('p128', { type: 'dial-ok', duration: 10 }, 0)
    stack.observe('p128', { type: 'response', latency: 10, useful: true }, 0)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x80), protocols: [KAD], dialled: true }, 0)
    expect(c.handle({ type: 'peer-disconnected', id: 'nobody' }, 1)).to.deep.equal([])
    expect(c.handle({ type: 'peer-disconnected', id: 'p128' }, 1)).to.deep.equal([], 'nothing is dialled')
    expect(stack.backedOff('p128', 1)).to.equal(true)
    expect(stack.standing('p128', 1)).to.equal('failed')
    // a newcomer we reached, for the full bucket: it replaces the held-back entry, nobody is pinged
    const out = c.handle({ type: 'peer-identified', peer: tinyContact(0xc0), protocols: [KAD], dialled: true }, 2)
    expect(sends(out)).to.deep.equal([])
    expect(out).to.deep.include({ type: 'peer-added', peer: tinyContact(0xc0) })
    expect(c.routingTable.has('p128')).to.equal(false)
  })

  it('a table peer that failed a request and is in back-off is still pinged before a newcomer takes its place', () => {
    const stack = new PeerStack()
    const c = new Coordinator(self, { refresh: false, routingTable: { k: 1, maxPendingPings: 1, maxFailures: 3 } }, new SeededRandom(1), 0, stack)
    stack.observe('p128', { type: 'dial-ok', duration: 10 }, 0)
    c.handle({ type: 'peer-identified', peer: tinyContact(0x80), protocols: [KAD], dialled: true }, 0)
    c.routingTable.requestFailed('p128', 1)
    stack.observe('p128', { type: 'dial-failed', reason: 'timeout' }, 1)
    expect(stack.backedOff('p128', 2)).to.equal(true)
    const ping = sends(c.handle({ type: 'peer-identified', peer: tinyContact(0xc0), protocols: [KAD], dialled: true }, 2))
    expect(ping.map(p => [p.peer.id, p.request.kind])).to.deep.equal([['p128', 'ping']])
    const out = c.handle({ type: 'request-failed', requestId: ping[0].requestId, reason: 'dial-timeout' }, 3)
    expect(out).to.deep.include({ type: 'peer-added', peer: tinyContact(0xc0) })
    expect(c.routingTable.has('p128')).to.equal(false)
  })

  describe('with a peer quality', () => {
    const quality = (backedOff: string[], verified: string[] = [], reached?: string[]): PeerQuality => ({
      ...NEUTRAL_QUALITY,
      value: () => 0.5,
      backedOff: id => backedOff.includes(id),
      hedgeDelay: () => 250,
      reached: id => reached == null || reached.includes(id),
      standing: id => {
        if (backedOff.includes(id)) {
          return 'failed'
        }
        return verified.includes(id) ? 'verified' : 'unverified'
      }
    })
    const withQuality = (q: PeerQuality): Coordinator =>
      new Coordinator(self, { refresh: false, routingTable: { k: 2 }, lookup: { k: 2, alpha: 1 } }, new SeededRandom(7), 0, q)

    it('wakes at the hedge deadline and asks the next candidate when a request is slow', () => {
      const c = withQuality(quality([]))
      for (const p of [0x01, 0x02, 0x03]) {
        c.handle({ type: 'peer-identified', peer: tinyContact(p), protocols: [KAD] }, 0)
      }
      const first = sends(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(0), request: { kind: 'find-node', key: tinyKey(0) } }, 1000))
      expect(first.map(s => s.peer.id)).to.deep.equal(['p1'])
      expect(c.nextDeadline()).to.equal(1250)
      expect(sends(c.handle({ type: 'tick' }, 1249))).to.deep.equal([])
      const next = sends(c.handle({ type: 'tick' }, 1250))
      expect(next.map(s => s.peer.id)).to.deep.equal(['p2'])
      expect(c.nextDeadline()).to.equal(1500)
    })

    it('never names a peer in back-off or whose last contact failed in an answer', () => {
      const c = withQuality(quality(['p1']))
      for (const p of [0x01, 0x02, 0x03]) {
        c.handle({ type: 'peer-identified', peer: tinyContact(p), protocols: [KAD] }, 0)
      }
      expect(c.closerPeers(tinyKey(0), 'someone', 0).map(p => p.id)).to.deep.equal(['p2', 'p3'])
      const onlyBad = withQuality(quality(['p1']))
      onlyBad.handle({ type: 'peer-identified', peer: tinyContact(0x01), protocols: [KAD] }, 0)
      expect(onlyBad.closerPeers(tinyKey(0), 'someone', 0).map(p => p.id)).to.deep.equal([])
    })

    it('names the k nearest peers that did not fail, verified ones first', () => {
      // k = 2; 0x01 failed, 0x02 unverified, 0x03 and 0x80 verified
      const c = withQuality(quality(['p1'], ['p3', 'p128']))
      for (const p of [0x01, 0x02, 0x03, 0x80]) {
        c.handle({ type: 'peer-identified', peer: tinyContact(p), protocols: [KAD] }, 0)
      }
      // p1 left out and replaced by the next nearest; the verified p3 listed first; p128 is not among the nearest
      expect(c.closerPeers(tinyKey(0), 'someone', 0).map(p => p.id)).to.deep.equal(['p3', 'p2'])
      // the classic answer: the k nearest, by distance
      const classic = new Coordinator(self, { refresh: false, routingTable: { k: 2 }, lookup: { k: 2, alpha: 1 } }, new SeededRandom(7), 0)
      for (const p of [0x01, 0x02, 0x03, 0x80]) {
        classic.handle({ type: 'peer-identified', peer: tinyContact(p), protocols: [KAD] }, 0)
      }
      expect(classic.closerPeers(tinyKey(0), 'someone', 0).map(p => p.id)).to.deep.equal(['p1', 'p2'])
    })

    it('admits a server seen only over its own connections after a fresh-connection verify', () => {
      const c = withQuality(quality([], [], []))
      // identify over a connection the peer opened: not an entry, verified first
      const out = c.handle({ type: 'peer-identified', peer: tinyContact(0x01), protocols: [KAD], dialled: false }, 0)
      expect(c.routingTable.has('p1')).to.equal(false)
      const verify = sends(out)
      expect(verify.map(s => [s.peer.id, s.request.kind, s.fresh])).to.deep.equal([['p1', 'ping', true]])
      expect(c.handle({ type: 'response', requestId: verify[0].requestId, closer: [] }, 10)).to.deep.include({ type: 'peer-added', peer: tinyContact(0x01) })
      expect(c.routingTable.has('p1')).to.equal(true)
      // one that fails its verify is dropped, never an entry, and a new identify tries again
      const v2 = sends(c.handle({ type: 'peer-identified', peer: tinyContact(0x02), protocols: [KAD], dialled: false }, 20))
      c.handle({ type: 'request-failed', requestId: v2[0].requestId, reason: 'dial-timeout' }, 25)
      expect(c.routingTable.has('p2')).to.equal(false)
      expect(c.routingTable.entry('p2')).to.equal(undefined)
      // answering one of our requests over its own connection proves nothing either
      const l = sends(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(0), request: { kind: 'find-node', key: tinyKey(0) } }, 30))
      expect(l.map(s => s.peer.id)).to.deep.equal(['p1'])
      const ask3 = sends(c.handle({ type: 'response', requestId: l[0].requestId, closer: [tinyContact(0x03)] }, 31))
      expect(ask3.map(s => [s.peer.id, s.fresh])).to.deep.equal([['p3', undefined]])
      const after = sends(c.handle({ type: 'response', requestId: ask3[0].requestId, closer: [] }, 32))
      expect(c.routingTable.has('p3')).to.equal(false)
      expect(after.map(s => [s.peer.id, s.fresh])).to.deep.equal([['p3', true]])
      // a server identified over a connection we opened is an entry at once
      c.handle({ type: 'peer-identified', peer: tinyContact(0x04), protocols: [KAD], dialled: true }, 40)
      expect(c.routingTable.has('p4')).to.equal(true)
    })

    it('a classic node (neutral quality) admits every identified server', () => {
      const c = new Coordinator(self, { refresh: false, routingTable: { k: 2 }, lookup: { k: 2, alpha: 1 } }, new SeededRandom(7), 0)
      expect(sends(c.handle({ type: 'peer-identified', peer: tinyContact(0x01), protocols: [KAD], dialled: false }, 0))).to.deep.equal([])
      expect(c.routingTable.has('p1')).to.equal(true)
    })
  })

  describe('cold start: peers known as good that stopped answering', () => {
    // A fake clock and driver: live peers answer after 40 ms; tarpits (known
    // good until now) accept the dial and never answer, so each request to
    // them fails only at the dial timeout the driver applies.
    const run = (quality: PeerQuality | undefined, dialTimeout: (id: string) => number): { finishedAt: number, closest: string[] } => {
      const c = new Coordinator(self, { refresh: false, routingTable: { k: 4 }, lookup: { k: 4, alpha: 3 } }, new SeededRandom(7), 0, quality)
      const all = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]
      for (const p of all) {
        c.handle({ type: 'peer-identified', peer: tinyContact(p), protocols: [KAD], dialled: true }, 0)
      }
      const tarpits = new Set(['p1', 'p2'])
      const start = 600_000
      const queue: Array<{ at: number, event: Parameters<Coordinator['handle']>[0] }> = []
      const out: { result?: { finishedAt: number, closest: string[] } } = {}
      const apply = (effects: CoreEffect[], now: number): void => {
        for (const e of effects) {
          if (e.type === 'send-request') {
            queue.push(tarpits.has(e.peer.id)
              ? { at: now + dialTimeout(e.peer.id), event: { type: 'request-failed', requestId: e.requestId, reason: 'dial-timeout' } }
              : { at: now + 40, event: { type: 'response', requestId: e.requestId, closer: [] } })
          } else if (e.type === 'lookup-finished' && e.queryId === 1) {
            out.result = { finishedAt: now - start, closest: e.closest.map(x => x.id) }
          }
        }
      }
      apply(c.handle({ type: 'start-lookup', queryId: 1, target: tinyKey(0), request: { kind: 'find-node', key: tinyKey(0) } }, start), start)
      for (let steps = 0; out.result == null && steps < 1000; steps++) {
        queue.sort((a, b) => a.at - b.at)
        const deadline = c.nextDeadline() ?? Infinity
        const next = queue[0]
        if (next != null && next.at <= deadline) {
          queue.shift()
          apply(c.handle(next.event, next.at), next.at)
        } else if (Number.isFinite(deadline)) {
          apply(c.handle({ type: 'tick' }, deadline), deadline)
        } else {
          break
        }
      }
      if (out.result == null) {
        throw new Error('lookup never finished')
      }
      return out.result
    }

    it('the next lookup does not wait a dial timeout on peers that just stopped answering', () => {
      const stack = new PeerStack()
      for (const p of [1, 2, 3, 4, 5, 6, 7, 8]) {
        // every peer was dialled (30 ms) and answered (10 ms) many times
        for (let t = 0; t < 10; t++) {
          stack.observe(`p${p}`, { type: 'dial-ok', duration: 30 }, t * 1000)
          stack.observe(`p${p}`, { type: 'response', latency: 10, useful: true }, t * 1000 + 1)
        }
      }
      const withStack = run(stack, id => stack.dialTimeout(id, 600_000))
      expect(withStack.closest).to.deep.equal(['p3', 'p4', 'p5', 'p6'])
      // done well before a dial to either tarpit would have failed
      expect(withStack.finishedAt).to.be.below(stack.dialTimeout('p1', 600_000))
      // every peer equal (no stack): the lookup waits for the dial timeouts
      const classic = run(undefined, () => 5000)
      expect(classic.closest).to.deep.equal(['p3', 'p4', 'p5', 'p6'])
      expect(classic.finishedAt).to.be.at.least(5000)
    })
  })
})
