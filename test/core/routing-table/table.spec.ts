import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { NEUTRAL_QUALITY } from '../../../src/core/contact.ts'
import { SeededRandom } from '../../../src/core/env.ts'
import { commonPrefixLength, KEY_BYTES, keyWithPrefixLength } from '../../../src/core/key.ts'
import { InvalidConfigError } from '../../../src/core/routing-table/config.ts'
import { RoutingTable } from '../../../src/core/routing-table/table.ts'
import { bruteForceClosest, ids, randomContacts, tinyContact, tinyKey } from '../fixtures/keys.ts'
import type { PeerQuality } from '../../../src/core/contact.ts'

// self = 0x00..., so peers 0x80-0xff land in bucket 0, 0x40-0x7f in bucket 1, ...
const SELF = tinyKey(0)

describe('core/routing-table', () => {
  it('rejects invalid config at construction', () => {
    expect(() => new RoutingTable(SELF, { k: 0 }, NEUTRAL_QUALITY, 0)).to.throw(InvalidConfigError, /routingTable.k/)
    expect(() => new RoutingTable(SELF, { refreshInterval: -1 }, NEUTRAL_QUALITY, 0)).to.throw(InvalidConfigError)
  })

  it('adds peers to the bucket of their common prefix length', () => {
    const rt = new RoutingTable(SELF, { k: 2 }, NEUTRAL_QUALITY, 0)
    expect(rt.observe(tinyContact(0x80), 1)).to.deep.equal([{ type: 'peer-added', peer: tinyContact(0x80) }])
    rt.observe(tinyContact(0x40), 1)
    rt.observe(tinyContact(0x41), 1)
    expect(rt.size).to.equal(3)
    expect(rt.entry('p128')?.cpl).to.equal(0)
    expect(rt.entry('p65')?.cpl).to.equal(1)
    expect(rt.bucketSizes().slice(0, 2)).to.deep.equal([1, 2])
  })

  it('keeps an id once: the same id seen again with another key stays in its bucket', () => {
    // fast-check seed 1811776366 found a compact-table version that looked
    // an id up only in the new key's bucket and took it in twice
    const rt = new RoutingTable(SELF, { k: 1 }, NEUTRAL_QUALITY, 0)
    rt.observe({ id: 'n', key: tinyKey(0x80) }, 1)
    expect(rt.observe({ id: 'n', key: tinyKey(0x20) }, 2)).to.deep.equal([])
    expect(rt.size).to.equal(1)
    expect(rt.snapshots()).to.have.length(1)
    expect(rt.entry('n')).to.include({ cpl: 0, lastSeen: 2 })
  })

  it('ignores our own key', () => {
    const rt = new RoutingTable(SELF, {}, NEUTRAL_QUALITY, 0)
    expect(rt.observe({ id: 'me', key: tinyKey(0) }, 0)).to.deep.equal([])
    expect(rt.size).to.equal(0)
  })

  it('keeps a newcomer to a full bucket as a replacement and never evicts a fresh entry for it', () => {
    const rt = new RoutingTable(SELF, { k: 2, staleAfter: 10_000 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x81), 0)
    expect(rt.observe(tinyContact(0x82), 5)).to.deep.equal([])
    expect(rt.has('p130')).to.equal(false)
    expect(rt.entry('p130')?.replacement).to.equal(true)
    expect(rt.size).to.equal(2)
  })

  it('pings the least recently seen stale entry and evicts it only when the ping fails', () => {
    const rt = new RoutingTable(SELF, { k: 2, staleAfter: 10_000 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x81), 3_000)
    // at t=20s both are stale; 0x80 was seen least recently
    const effects = rt.observe(tinyContact(0x82), 20_000)
    expect(effects).to.deep.equal([{ type: 'ping', peer: tinyContact(0x80) }])
    // a second newcomer does not ping 0x80 twice; it pings the other stale entry
    expect(rt.observe(tinyContact(0x83), 20_001)).to.deep.equal([{ type: 'ping', peer: tinyContact(0x81) }])
    // 0x81 answers: it stays
    expect(rt.pingResult('p129', true, 20_002)).to.deep.equal([])
    expect(rt.has('p129')).to.equal(true)
    // 0x80 does not: the most recently seen replacement (0x83) takes its place
    expect(rt.pingResult('p128', false, 20_003)).to.deep.equal([
      { type: 'peer-removed', peer: tinyContact(0x80), reason: 'ping-failed' },
      { type: 'peer-added', peer: tinyContact(0x83) }
    ])
    expect(ids([...rt.contacts()]).sort()).to.deep.equal(['p129', 'p131'])
    // an unexpected ping result is ignored
    expect(rt.pingResult('p129', false, 20_004)).to.deep.equal([])
  })

  it('evicts an entry after maxFailures failed requests only when a replacement waits', () => {
    const rt = new RoutingTable(SELF, { k: 1, maxFailures: 2 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    expect(rt.requestFailed('p128', 1)).to.deep.equal([])
    expect(rt.requestFailed('p128', 2)).to.deep.equal([])
    expect(rt.has('p128')).to.equal(true) // nobody to replace it
    // a newcomer arrives: the failed entry is evicted at once, without a ping
    expect(rt.observe(tinyContact(0x81), 3)).to.deep.equal([
      { type: 'peer-removed', peer: tinyContact(0x80), reason: 'failed' },
      { type: 'peer-added', peer: tinyContact(0x81) }
    ])
  })

  it('a success resets the failure count', () => {
    const rt = new RoutingTable(SELF, { k: 1, maxFailures: 2, replacements: 1 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.requestFailed('p128', 1)
    rt.observe(tinyContact(0x80), 2)
    expect(rt.entry('p128')?.failures).to.equal(0)
  })

  it('bounds the replacement list, dropping the least valuable', () => {
    const values: Record<string, number> = { p130: 0.9, p131: 0.1, p132: 0.5 }
    const quality: PeerQuality = { ...NEUTRAL_QUALITY, value: id => values[id] ?? 0.5, backedOff: () => false, hedgeDelay: () => Infinity, reached: () => true, standing: () => 'unverified' }
    const rt = new RoutingTable(SELF, { k: 1, replacements: 2 }, quality, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x82), 1)
    rt.observe(tinyContact(0x83), 2)
    rt.observe(tinyContact(0x84), 3)
    const replacements = rt.snapshots().filter(s => s.replacement).map(s => s.id).sort()
    expect(replacements).to.deep.equal(['p130', 'p132'])
  })

  it('uses peer quality to choose whom to ping and whom to promote', () => {
    const values: Record<string, number> = { p128: 0.9, p129: 0.1, p130: 0.2, p131: 0.8 }
    const quality: PeerQuality = { ...NEUTRAL_QUALITY, value: id => values[id] ?? 0.5, backedOff: () => false, hedgeDelay: () => Infinity, reached: () => true, standing: () => 'unverified' }
    const rt = new RoutingTable(SELF, { k: 2, staleAfter: 1_000 }, quality, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x81), 500)
    // both stale; the low-value 0x81 is pinged even though 0x80 is older
    expect(rt.observe(tinyContact(0x82), 5_000)).to.deep.equal([{ type: 'ping', peer: tinyContact(0x81) }])
    rt.observe(tinyContact(0x83), 5_001)
    // on eviction the more valuable replacement (0x83) wins over the older 0x82
    const effects = rt.pingResult('p129', false, 5_002)
    expect(effects[1]).to.deep.equal({ type: 'peer-added', peer: tinyContact(0x83) })
  })

  it('estimates the network size from the first bucket that is not full', () => {
    for (const n of [500, 5000, 50000]) {
      const rt = new RoutingTable(SELF, { k: 20 }, NEUTRAL_QUALITY, 0)
      for (const c of randomContacts(n, n)) {
        rt.observe(c, 0)
      }
      const estimate = rt.sizeEstimate()
      expect(estimate, `n = ${n}`).to.be.within(n / 2, n * 2)
    }
    expect(new RoutingTable(SELF, {}, NEUTRAL_QUALITY, 0).sizeEstimate()).to.equal(0)
  })

  describe('diversity', () => {
    it('lets 200 ids from one address group take at most the configured slots, and honest peers still get in', () => {
      const rt = new RoutingTable(SELF, { k: 20 }, NEUTRAL_QUALITY, 0)
      const sybils = randomContacts(200, 11, 's').map(c => ({ ...c, group: '203.0' }))
      for (const c of sybils) {
        rt.observe(c, 0)
      }
      const entries = rt.snapshots().filter(e => !e.replacement)
      expect(entries.filter(e => e.id.startsWith('s'))).to.have.length(3)
      // per bucket: at most 2, replacements too
      const perBucket = new Map<string, number>()
      for (const e of rt.snapshots()) {
        const key = `${e.cpl}/${String(e.replacement)}`
        perBucket.set(key, (perBucket.get(key) ?? 0) + 1)
      }
      expect(Math.max(...perBucket.values())).to.be.at.most(2)
      // honest peers from other groups (or none) are admitted as usual
      const honest = randomContacts(100, 12, 'h').map((c, i) => ({ ...c, group: i % 2 === 0 ? undefined : `10.${i}` }))
      for (const c of honest) {
        rt.observe(c, 1)
      }
      const brute = rt.snapshots().filter(e => !e.replacement && e.id.startsWith('h')).length
      expect(brute).to.be.above(40)
      expect(rt.snapshots().filter(e => !e.replacement && e.id.startsWith('s'))).to.have.length(3)
    })

    it('frees a group slot when its entry leaves, and promotes only replacements whose group has room', () => {
      const rt = new RoutingTable(SELF, { k: 2, maxPerGroupPerBucket: 1, maxPerGroupPerTable: 1 }, NEUTRAL_QUALITY, 0)
      const a = { ...tinyContact(0x80), group: 'g' }
      const b = { ...tinyContact(0x81), group: 'g' }
      rt.observe(a, 0)
      rt.observe(b, 0)
      expect(rt.has('p128')).to.equal(true)
      expect(rt.has('p129')).to.equal(false)
      expect(rt.entry('p129')?.replacement).to.equal(true)
      // a third of the group never even waits: one replacement per group per bucket
      rt.observe({ ...tinyContact(0x82), group: 'g' }, 0)
      expect(rt.entry('p130')).to.equal(undefined)
      // a leaves: its slot goes to b, whose group has room again
      expect(rt.remove('p128', 1)).to.deep.equal([
        { type: 'peer-removed', peer: a, reason: 'removed' },
        { type: 'peer-added', peer: b }
      ])
    })

    it('refuses diversity limits out of range', () => {
      expect(() => new RoutingTable(SELF, { maxPerGroupPerBucket: 0 }, NEUTRAL_QUALITY, 0)).to.throw(InvalidConfigError)
    })
  })

  describe('admission', () => {
    it('keeps a server we have not reached as an unproven replacement and verifies it while its bucket has room', () => {
      const rt = new RoutingTable(SELF, { k: 2 }, NEUTRAL_QUALITY, 0)
      expect(rt.observe(tinyContact(0x80), 0, false)).to.deep.equal([{ type: 'verify', peer: tinyContact(0x80) }])
      expect(rt.has('p128')).to.equal(false)
      expect(rt.entry('p128')).to.include({ replacement: true, unproven: true })
      // seen again while the verify runs: no second one
      expect(rt.observe(tinyContact(0x80), 1, false)).to.deep.equal([])
      expect(rt.verifyResult('p128', true, 2)).to.deep.equal([{ type: 'peer-added', peer: tinyContact(0x80) }])
      expect(rt.has('p128')).to.equal(true)
      // a failed verify drops the candidate
      rt.observe(tinyContact(0x81), 3, false)
      expect(rt.verifyResult('p129', false, 4)).to.deep.equal([])
      expect(rt.entry('p129')).to.equal(undefined)
    })

    it('sends no verify while the bucket is full of good entries, and promotes proven replacements first', () => {
      const rt = new RoutingTable(SELF, { k: 1, maxFailures: 1 }, NEUTRAL_QUALITY, 0)
      rt.observe(tinyContact(0x80), 0)
      expect(rt.observe(tinyContact(0x81), 1, false)).to.deep.equal([])
      rt.observe(tinyContact(0x82), 2) // proven, waits
      const out = rt.requestFailed('p128', 3)
      expect(out).to.deep.equal([
        { type: 'peer-removed', peer: tinyContact(0x80), reason: 'failed' },
        { type: 'peer-added', peer: tinyContact(0x82) }
      ])
      // with only unproven replacements left, a freed place goes to a verify first
      expect(rt.requestFailed('p130', 4)).to.deep.equal([
        { type: 'peer-removed', peer: tinyContact(0x82), reason: 'failed' },
        { type: 'verify', peer: tinyContact(0x81) }
      ])
      expect(rt.size).to.equal(0)
      expect(rt.verifyResult('p129', true, 5)).to.deep.equal([{ type: 'peer-added', peer: tinyContact(0x81) }])
    })

    it('an unproven replacement that we then reach becomes an entry without a verify', () => {
      const rt = new RoutingTable(SELF, { k: 2, maxPendingPings: 1 }, NEUTRAL_QUALITY, 0)
      expect(rt.observe(tinyContact(0x40), 0, false)).to.have.length(1) // takes the one ping slot
      expect(rt.observe(tinyContact(0x80), 0, false)).to.deep.equal([]) // no ping budget: just waits
      expect(rt.observe(tinyContact(0x80), 1, true)).to.deep.equal([{ type: 'peer-added', peer: tinyContact(0x80) }])
      // the late verify answer for it changes nothing
      expect(rt.verifyResult('p128', false, 2)).to.deep.equal([])
      expect(rt.has('p128')).to.equal(true)
    })
  })

  it('bounds pings in flight', () => {
    const rt = new RoutingTable(SELF, { k: 1, staleAfter: 1_000, maxPendingPings: 1 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x40), 0)
    expect(rt.observe(tinyContact(0x81), 5_000)).to.have.length(1)
    expect(rt.observe(tinyContact(0x41), 5_000)).to.deep.equal([])
  })

  it('refresh targets fall in the stale buckets and stop after markRefreshed', () => {
    const random = new SeededRandom(1)
    const rt = new RoutingTable(SELF, { refreshInterval: 1_000 }, NEUTRAL_QUALITY, 0)
    rt.observe(tinyContact(0x80), 0)
    rt.observe(tinyContact(0x20), 0) // cpl 2
    expect(rt.refreshTargets(500, random)).to.deep.equal([])
    const targets = rt.refreshTargets(1_000, random)
    expect(targets.map(t => t.cpl)).to.deep.equal([0, 1, 2])
    for (const t of targets) {
      expect(commonPrefixLength(SELF, t.key)).to.equal(t.cpl)
      rt.markRefreshed(t.key, 1_000)
    }
    expect(rt.refreshTargets(1_500, random)).to.deep.equal([])
    expect(rt.nextRefreshAt()).to.equal(2_000)
  })

  describe('properties', () => {
    const contacts = fc.array(fc.record({ id: fc.string({ minLength: 1, maxLength: 6 }), key: fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES }) }), { maxLength: 300 })

    it('a bucket never exceeds k and each entry sits in its cpl bucket', () => {
      fc.assert(fc.property(contacts, fc.integer({ min: 1, max: 8 }), fc.uint8Array({ minLength: KEY_BYTES, maxLength: KEY_BYTES }), (cs, k, self) => {
        const rt = new RoutingTable(self, { k }, NEUTRAL_QUALITY, 0)
        let t = 0
        for (const c of cs) {
          for (const e of rt.observe(c, t++)) {
            if (e.type === 'ping') {
              rt.pingResult(e.peer.id, t % 2 === 0, t)
            }
          }
        }
        for (const size of rt.bucketSizes()) {
          expect(size).to.be.at.most(k)
        }
        for (const s of rt.snapshots()) {
          expect(s.cpl).to.equal(commonPrefixLength(self, s.key))
        }
        const entries = rt.snapshots().filter(s => !s.replacement)
        expect(rt.size).to.equal(entries.length)
        expect(new Set(entries.map(e => e.id)).size).to.equal(entries.length)
      }), { verbose: true })
    })

    it('closest() is sorted by XOR distance and equals a brute-force sort', () => {
      fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer(), fc.integer({ min: 1, max: 40 }), (n, seed, want) => {
        const all = randomContacts(n, seed)
        const self = new SeededRandom(seed ^ 0x55).fill(new Uint8Array(KEY_BYTES))
        const rt = new RoutingTable(self, { k: 256 }, NEUTRAL_QUALITY, 0)
        all.forEach(c => rt.observe(c, 0))
        const target = new SeededRandom(seed + 1).fill(new Uint8Array(KEY_BYTES))
        expect(ids(rt.closest(target, want))).to.deep.equal(ids(bruteForceClosest(all, target, want)))
      }), { verbose: true })
    })

    it('closest() equals a brute-force sort for targets near self (any shared prefix), with exclusions', () => {
      fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer(), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 256 }), (n, seed, want, cpl) => {
        const all = randomContacts(n, seed)
        const self = new SeededRandom(seed ^ 0x55).fill(new Uint8Array(KEY_BYTES))
        const rt = new RoutingTable(self, { k: 256 }, NEUTRAL_QUALITY, 0)
        all.forEach(c => rt.observe(c, 0))
        const target = cpl === 256 ? self : keyWithPrefixLength(self, cpl, new SeededRandom(seed + 1).fill(new Uint8Array(KEY_BYTES)))
        const excluded = (c: { id: string }): boolean => c.id.endsWith('3')
        const kept = all.filter(c => !excluded(c))
        expect(ids(rt.closest(target, want, excluded))).to.deep.equal(ids(bruteForceClosest(kept, target, want)))
      }), { verbose: true })
    })
  })
})
