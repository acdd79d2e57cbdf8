import { expect } from 'aegir/chai'
import { SeededRandom } from '../../src/core/env.ts'
import { validateLookupConfig } from '../../src/core/query/config.ts'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { createWorld, runRecords } from '../../src/sim/experiment.ts'
import { Initiators } from '../../src/sim/initiators.ts'
import { validateRecordOpsOptions } from '../../src/sim/records.ts'
import { RecordStore } from '../../src/sim/store.ts'
import { closestDialable } from '../../src/sim/truth.ts'
import { World } from '../../src/sim/world.ts'
import type { ExperimentOptions } from '../../src/sim/experiment.ts'

const perfect = { undialable: 0, loss: 0 }

function run (options: Partial<ExperimentOptions>): ReturnType<typeof runRecords> {
  return runRecords(createWorld(options), options)
}

describe('sim/records', () => {
  it('on a static network every record lands on the true k closest and every retrieval finds it', () => {
    const r = run({ world: { nodes: 400, seed: 3, network: perfect }, records: { provides: 30, puts: 20, publishers: 3 } })
    expect(r.ops).to.have.length(100)
    const k = validateLookupConfig({}).k
    const publications = r.ops.filter(o => o.kind === 'provide' || o.kind === 'put')
    expect(publications).to.have.length(50)
    for (const o of publications) {
      expect(o, `${o.kind} ${o.record}`).to.include({ success: true, copies: k, undialableDials: 0 })
      expect(o.latency).to.be.at.most(o.complete as number)
      expect(o.latency).to.be.at.least(o.lookupLatency)
    }
    for (const o of r.ops.filter(o => o.kind === 'find-providers' || o.kind === 'get')) {
      expect(o, `${o.kind} ${o.record}`).to.include({ success: true })
      expect(o.holdersOnline).to.equal(k)
    }
    expect(r.summary.get?.copies.mean).to.be.at.least(validateLookupConfig({}).k * 0.5)
  })

  it('stores each record on exactly the k closest dialable nodes to its key', () => {
    const world = createWorld({ world: { nodes: 300, seed: 4, network: perfect } })
    const r = runRecords(world, { records: { provides: 10, puts: 0, publishers: 1 } })
    const publisher = r.ops[0].node
    const k = validateLookupConfig({}).k
    const provides = r.ops.filter(o => o.kind === 'provide')
    expect(provides).to.have.length(10)
    // every store outside the publisher, compared with the truth for each key
    const expected = new Map<number, number>()
    for (const key of r.keys) {
      for (const i of closestDialable(world, key, k, publisher)) {
        expected.set(i, (expected.get(i) ?? 0) + 1)
      }
    }
    const held = new Map<number, number>()
    for (let i = 0; i < world.size; i++) {
      const size = world.built(i) && i !== publisher ? world.node(i).records?.size ?? 0 : 0
      if (size > 0) {
        held.set(i, size)
      }
    }
    expect(held).to.deep.equal(expected)
  })

  it('optimistic placement delivers before the lookup ends and still leaves every record on the true k closest', () => {
    // a static network with little latency spread: no request runs overdue, so every lookup is exact
    const world = createWorld({ world: { nodes: 3000, seed: 5, peerStack: true, network: { ...perfect, rttMedian: 100, rttP95: 120 } } })
    const r = runRecords(world, { records: { provides: 20, puts: 0, publishers: 1 } })
    const publisher = r.ops[0].node
    const k = validateLookupConfig({}).k
    const provides = r.ops.filter(o => o.kind === 'provide')
    expect(provides).to.have.length(20)
    let early = 0
    r.keys.forEach((key, n) => {
      for (const i of closestDialable(world, key, k, publisher)) {
        expect(world.node(i).records?.providersOf(key, world.now) ?? [], `record ${n} on node ${i}`).to.include(publisher)
      }
      early += provides[n].early ?? 0
    })
    // most copies went out while the lookup was still running, and success came before it ended
    expect(early).to.be.above(provides.length * k / 2)
    const faster = provides.filter(o => o.latency < o.lookupLatency).length
    expect(faster).to.be.above(provides.length / 2)
  })

  it('with the peer stack on, provide latency at 45% undialable is lower than with every peer equal, on the same seed', () => {
    const options = (peerStack: boolean): Partial<ExperimentOptions> => ({
      world: { nodes: 2000, seed: 6, peerStack, network: { undialable: 0.45 } },
      records: { provides: 80, puts: 40, publishers: 4 }
    })
    const off = run(options(false))
    const on = run(options(true))
    for (const kind of ['provide', 'put'] as const) {
      const a = off.summary[kind]
      const b = on.summary[kind]
      expect(b?.latencyMs.p50, `${kind} p50`).to.be.below(a?.latencyMs.p50 as number)
      expect(b?.latencyMs.p95, `${kind} p95`).to.be.below(a?.latencyMs.p95 as number)
      expect(b?.undialableDials.mean, `${kind} undialable dials`).to.be.below(a?.undialableDials.mean as number)
      expect(b?.successRate).to.equal(1)
    }
    // the records are as findable either way
    expect(on.summary['find-providers']?.successRate).to.be.at.least((off.summary['find-providers']?.successRate ?? 0) - 0.02)
    expect(on.summary.get?.successRate).to.be.at.least((off.summary.get?.successRate ?? 0) - 0.02)
    expect(run(options(true)).traceHash).to.equal(on.traceHash)
  })

  it('after churn some holders are offline when the record is sought; the records stay findable through the rest; deterministic', () => {
    const options = (churn: number): Partial<ExperimentOptions> => ({
      world: { nodes: 1500, seed: 9, peerStack: true, network: { undialable: 0.3, churn, sessionMedian: 2 * 60_000 } },
      // retrieve 9 virtual minutes later: holders come and go meanwhile (before the 10-minute bucket refresh)
      records: { provides: 60, puts: 0, publishers: 4, findAfter: 9 * 60_000, putQuorum: 1 }
    })
    const k = validateLookupConfig({}).k
    const finds = (r: ReturnType<typeof run>): typeof r.ops => r.ops.filter(o => o.kind === 'find-providers')
    const still = run(options(0))
    expect(finds(still)).to.have.length(60)
    // optimistic placement may leave a copy or two beyond the k closest
    expect(finds(still).every(o => o.success && (o.holdersOnline ?? 0) >= k)).to.equal(true)
    const churned = run(options(0.95))
    const online = finds(churned).map(o => o.holdersOnline ?? 0)
    expect(Math.max(...online)).to.be.below(k)
    expect(churned.world.stats.offlineContacts).to.be.above(0)
    expect(churned.summary['find-providers']?.successRate).to.be.at.least(0.9)
    expect(run(options(0.95)).traceHash).to.equal(churned.traceHash)
  })
})

describe('sim/records, departures', () => {
  it('as holders leave for good fewer records are findable, never one whose holders are all gone', () => {
    const options = (departRate: number): Partial<ExperimentOptions> => ({
      world: { nodes: 1500, seed: 12, peerStack: true, coordinator: { refresh: false }, network: { undialable: 0.3, departRate } },
      records: { provides: 60, puts: 0, publishers: 4, findAfter: 6 * 3_600_000 }
    })
    const finds = (r: ReturnType<typeof run>): typeof r.ops => r.ops.filter(o => o.kind === 'find-providers')
    const mild = run(options(0.05))
    const harsh = run(options(0.6))
    const rate = (r: ReturnType<typeof run>): number => finds(r).filter(o => o.success).length / 60
    expect(rate(mild)).to.equal(1)
    expect(rate(harsh)).to.be.below(rate(mild))
    // a find needs a holder that is still there: a peer that took the record, or the publisher itself when others can reach it
    const publishers = new Map(harsh.ops.filter(o => o.kind === 'provide').map(o => [o.record, o.node]))
    const world = harsh.world
    let orphansFound = 0
    for (const o of finds(harsh)) {
      const publisher = publishers.get(o.record) as number
      const publisherThere = world.network.dialable(publisher) && world.network.online(publisher, o.startedAt)
      if (o.success && o.holdersOnline === 0 && !publisherThere) {
        orphansFound++
      }
    }
    expect(orphansFound).to.equal(0)
    expect(finds(harsh).some(o => o.holdersOnline === 0)).to.equal(true)
  })
})

describe('sim/records, republish', () => {
  it('a record whose holders all left is findable again after its publisher republishes it; not without republishing', () => {
    // 4 copies per record (k = 4) and fast departures, so that every holder of some records is gone when they are sought
    const options = (republishInterval: number): Partial<ExperimentOptions> => ({
      world: { nodes: 1000, seed: 21, coordinator: { refresh: false, lookup: { k: 4, beta: 2 } }, network: { undialable: 0.3, departRate: 0.6 } },
      records: { provides: 80, puts: 0, publishers: 8, findAfter: 2 * 3_600_000, republishInterval }
    })
    const off = run(options(0))
    const on = run(options(20 * 60_000))
    const finds = (r: ReturnType<typeof run>): typeof r.ops => r.ops.filter(o => o.kind === 'find-providers')
    expect(off.ops.filter(o => o.republish === true)).to.deep.equal([])
    expect(on.ops.filter(o => o.republish === true).length).to.be.above(80)
    // records sought with every holder gone while their publisher is still there
    const world = off.world
    const publisherOf = new Map(off.ops.filter(o => o.kind === 'provide').map(o => [o.record, o.node]))
    const orphans = finds(off).filter(o => o.holdersOnline === 0 && o.startedAt < world.network.departsAt(publisherOf.get(o.record) as number))
    expect(orphans.length).to.be.at.least(3)
    expect(orphans.filter(o => o.success)).to.deep.equal([])
    const found = new Set(finds(on).filter(o => o.success).map(o => o.record))
    const refound = orphans.filter(o => found.has(o.record)).length
    expect(refound).to.be.at.least(Math.ceil(0.8 * orphans.length))
  })
})

describe('sim/store', () => {
  it('keeps the higher sequence number of a value', () => {
    const s = new RecordStore()
    const key = new Uint8Array(32).fill(7)
    expect(s.putValue(key, 3, 0)).to.equal(true)
    expect(s.putValue(key, 2, 0)).to.equal(false)
    expect(s.valueOf(key, 0)).to.equal(3)
    expect(s.putValue(key, 5, 0)).to.equal(true)
    expect(s.valueOf(key, 0)).to.equal(5)
  })

  it('refuses new keys when full and keeps what it holds; bounds providers per key', () => {
    const s = new RecordStore(2, 3)
    const key = (b: number): Uint8Array => new Uint8Array(32).fill(b)
    expect(s.addProvider(key(1), 1, 0)).to.equal(true)
    expect(s.putValue(key(2), 1, 0)).to.equal(true)
    expect(s.addProvider(key(3), 1, 0)).to.equal(false)
    expect(s.putValue(key(4), 1, 0)).to.equal(false)
    expect(s.size).to.equal(2)
    for (let p = 2; p <= 5; p++) {
      expect(s.addProvider(key(1), p, 0)).to.equal(true)
    }
    expect(s.providersOf(key(1), 0)).to.deep.equal([3, 4, 5])
    expect(s.providersOf(key(3), 0)).to.deep.equal([])
  })

  it('serves a record 47 h after it was stored, not 49 h after; a refresh restarts the 48 h', () => {
    const h = 3_600_000
    const s = new RecordStore()
    const key = (b: number): Uint8Array => new Uint8Array(32).fill(b)
    const t = 5 * h
    s.addProvider(key(1), 9, t)
    s.putValue(key(2), 4, t)
    s.addProvider(key(3), 9, t)
    expect(s.providersOf(key(1), t + 47 * h)).to.deep.equal([9])
    expect(s.valueOf(key(2), t + 47 * h)).to.equal(4)
    s.addProvider(key(3), 9, t + 40 * h)
    expect(s.providersOf(key(1), t + 49 * h)).to.deep.equal([])
    expect(s.valueOf(key(2), t + 49 * h)).to.equal(undefined)
    expect(s.providersOf(key(3), t + 49 * h)).to.deep.equal([9])
    expect(s.providersOf(key(3), t + 89 * h)).to.deep.equal([])
    // an expired value does not outrank a lower sequence number put later
    expect(s.putValue(key(2), 1, t + 49 * h)).to.equal(true)
    expect(s.valueOf(key(2), t + 49 * h)).to.equal(1)
  })

  it('a full store makes room by dropping expired records', () => {
    const s = new RecordStore(2, 3, 1000)
    const key = (b: number): Uint8Array => new Uint8Array(32).fill(b)
    s.addProvider(key(1), 1, 0)
    s.putValue(key(2), 1, 500)
    expect(s.addProvider(key(3), 1, 999)).to.equal(false)
    expect(s.addProvider(key(3), 1, 1000)).to.equal(true)
    expect(s.size).to.equal(2)
    expect(s.valueOf(key(2), 1000)).to.equal(1)
  })
})

describe('sim/records options and initiators', () => {
  it('refuses options out of range with a typed error, and a run with nothing to publish', () => {
    expect(() => validateRecordOpsOptions({ provides: 0, puts: 0 }, 20)).to.throw(RangeError)
    expect(() => validateRecordOpsOptions({ putQuorum: 0 }, 20)).to.throw(InvalidConfigError)
    expect(() => validateRecordOpsOptions({ findAfter: -1 }, 20)).to.throw(InvalidConfigError)
    expect(() => validateRecordOpsOptions({ initiators: 'some' as 'any' }, 20)).to.throw(RangeError)
    expect(validateRecordOpsOptions({}, 20)).to.include({ putQuorum: 10, getQuorum: 16, putGrace: 200 })
  })

  it('draws initiators among nodes online at the time, and publishers in turn', () => {
    const world = new World({ nodes: 500, seed: 5, network: { undialable: 0.5, churn: 1, sessionMedian: 60_000 } })
    const initiators = new Initiators(world, new SeededRandom(1), 'dialable', 3)
    for (let i = 0; i < 100; i++) {
      const n = initiators.any()
      expect(world.network.dialable(n) && world.network.online(n, world.now)).to.equal(true)
    }
    const first = [0, 1, 2].map(i => initiators.publisher(i))
    expect([3, 4, 5].map(i => initiators.publisher(i))).to.deep.equal(first)
    expect(() => new Initiators(new World({ nodes: 10, network: { undialable: 1 } }), new SeededRandom(1), 'dialable', 0)).to.throw(RangeError)
  })
})
