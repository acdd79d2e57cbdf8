import { expect } from 'aegir/chai'
import { commonPrefixLength } from '../../src/core/key.ts'
import { NEVER } from '../../src/core/peer-stack/score.ts'
import { bootstrap, createWorld, runExperiment } from '../../src/sim/experiment.ts'
import { TableSeeder } from '../../src/sim/seed-tables.ts'
import { World } from '../../src/sim/world.ts'
import type { LookupFinished } from '../../src/sim/world.ts'

const small = { nodes: 300, seed: 1 }

describe('sim/world', () => {
  it('same seed, same trace hash; another seed, another hash', () => {
    const options = { world: { ...small, network: { loss: 0.02 } }, lookups: { lookups: 30 } }
    const a = runExperiment(options)
    const b = runExperiment(options)
    const c = runExperiment({ ...options, world: { ...options.world, seed: 2 } })
    expect(a.traceHash).to.equal(b.traceHash)
    expect(a.records).to.deep.equal(b.records)
    expect(a.world.stats).to.deep.equal(b.world.stats)
    expect(c.traceHash).to.not.equal(a.traceHash)
  })

  it('a node whose connection the other side closed to stay within its bound holds that side back (our nodes only)', () => {
    // 10 connections per node: lookups keep closing the least recently used
    const world = { ...small, network: { maxConnections: 10, undialable: 0 } }
    const classic = runExperiment({ world, lookups: { lookups: 20 } })
    expect(classic.world.stats.connectionsClosed).to.be.above(0)
    expect(classic.world.stats.disconnectsHeard, 'classic nodes have no peer stack to tell').to.equal(0)
    const ours = runExperiment({ world: { ...world, peerStack: true }, lookups: { lookups: 20 } })
    expect(ours.world.stats.disconnectsHeard).to.be.above(0)
    expect(ours.world.stats.disconnectsHeard).to.be.at.most(ours.world.stats.connectionsClosed)
    // some node holds a peer back that it never saw fail
    const w = ours.world
    let held = 0
    for (let i = 0; i < small.nodes; i++) {
      const n = w.built(i) ? w.node(i) : undefined
      for (const c of w.contacts) {
        const stats = n?.stack?.stats(c.id)
        if (stats != null && stats.heldUntil !== NEVER && stats.consecutiveFailures === 0) {
          held++
        }
      }
    }
    expect(held).to.be.above(0)
  })

  it('builds the same nodes lazily as eagerly (same trace)', () => {
    // without maintenance: eager nodes refresh at their own phases, untouched lazy ones never
    const world = { ...small, coordinator: { refresh: false } }
    const lazy = runExperiment({ world, lookups: { lookups: 20 } })
    const eager = runExperiment({ world: { ...world, eager: true }, lookups: { lookups: 20 } })
    expect(lazy.world.stats.nodesBuilt).to.be.below(300)
    expect(eager.world.stats.nodesBuilt).to.equal(300)
    expect(lazy.traceHash).to.equal(eager.traceHash)
  })

  it('an eager world refreshes at spread-out phases, not every node at once', () => {
    const world = createWorld({ world: { ...small, eager: true } })
    bootstrap(world, {})
    const cumulative: number[] = []
    for (let m = 1; m <= 10; m++) {
      world.at(m * 60_000, 'sample', () => { cumulative.push(world.stats.refreshLookups) })
    }
    world.run({ maxTime: 10 * 60_000 + 1 })
    const perMinute = cumulative.map((n, m) => n - (cumulative[m - 1] ?? 0))
    const total = cumulative[9]
    expect(total).to.be.above(300) // every node refreshed its buckets within one interval
    expect(perMinute.filter(n => n > 0)).to.have.length(10)
    expect(Math.max(...perMinute)).to.be.below(total / 4)
  })

  it('seeds each bucket with peers of that bucket, up to k', () => {
    const world = new World({ nodes: 500, seed: 3, network: { undialable: 0 } })
    new TableSeeder(world).install()
    const node = world.node(7)
    const table = node.coordinator.routingTable
    for (const e of table.snapshots()) {
      expect(commonPrefixLength(node.contact.key, e.key)).to.equal(e.cpl)
    }
    // buckets whose range holds fewer than k peers hold all of them
    const sizes = table.bucketSizes()
    const population: number[] = []
    for (const c of world.contacts) {
      if (c.index !== 7) {
        const cpl = commonPrefixLength(node.contact.key, c.key)
        population[cpl] = (population[cpl] ?? 0) + 1
      }
    }
    population.forEach((n, cpl) => { expect(sizes[cpl]).to.equal(Math.min(n, 20)) })
  })

  it('fails dials to undialable nodes after the dial timeout; identify admits dialable peers only', () => {
    const world = new World({ nodes: 40, seed: 5, network: { undialable: 0.5, dialTimeout: 4_000 } })
    const undialable = world.contacts.filter(c => !world.network.dialable(c.index)).map(c => c.index)
    const dialable = world.contacts.filter(c => world.network.dialable(c.index)).map(c => c.index)
    const [u1, u2] = undialable
    const [d1] = dialable
    // u1 knows d1 and u2 (as a stale entry would); it looks up u2's key
    world.deliverAt(u1, { type: 'peer-identified', peer: world.contacts[d1], protocols: ['/ipfs/kad/1.0.0'] })
    world.deliverAt(u1, { type: 'peer-identified', peer: world.contacts[u2], protocols: ['/ipfs/kad/1.0.0'] })
    const finished: LookupFinished[] = []
    world.listener = { onLookupFinished: (_, e) => finished.push(e) }
    world.startLookup(u1, world.contacts[u2].key)
    world.run({ until: () => finished.length > 0 })
    // u1 dialled out to d1 (fine) and to u2 (timed out after 4 s)
    expect(world.stats.undialableDials).to.equal(1)
    expect(world.now).to.be.at.least(4_000)
    expect(finished[0].closest.map(c => c.id)).to.deep.equal([`n${d1}`])
    // d1 heard from u1 but did not list it: u1 is undialable
    expect(world.node(d1).coordinator.routingTable.has(`n${u1}`)).to.equal(false)
    expect(world.node(u1).coordinator.routingTable.has(`n${d1}`)).to.equal(true)
  })

  it('honours maintenance deadlines with refresh lookups', () => {
    const world = new World({ nodes: 60, seed: 1, network: { undialable: 0 }, coordinator: { routingTable: { refreshInterval: 5_000 } } })
    new TableSeeder(world).install()
    world.node(0)
    expect(world.run({ maxTime: 4_999 })).to.equal('max-time')
    expect(world.stats.refreshLookups).to.equal(0)
    expect(world.run({ maxTime: 7_000 })).to.equal('max-time')
    expect(world.stats.refreshLookups).to.be.above(0)
  })
})
