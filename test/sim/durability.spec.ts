import { expect } from 'aegir/chai'
import { SeededRandom } from '../../src/core/env.ts'
import { compareDistance } from '../../src/core/key.ts'
import { createWorld } from '../../src/sim/experiment.ts'
import { LiveRun } from '../../src/sim/live.ts'
import type { SimDurabilityOptions } from '../../src/sim/durability.ts'
import type { World } from '../../src/sim/world.ts'

const K = 8
const world = { nodes: 150, seed: 12, eager: true, peerStack: true, coordinator: { routingTable: { k: K }, lookup: { k: K } }, network: { departRate: 2, joinRate: 2, joinWindow: 90 * 60_000 } }
const live = { duration: 90 * 60_000, sampleEvery: 15 * 60_000, probes: 4, provides: 0, puts: 4, findableSample: 12 }

interface Outcome { run: LiveRun, world: World, coverage: number, findable: number }

/**
 * One live run of values under harsh departures; `coverage` is the mean
 * share of each value's k closest online nodes at the end that hold it
 */
function run (durability: Partial<SimDurabilityOptions>): Outcome {
  const w = createWorld({ world })
  const r = new LiveRun(w, { ...live, durability }, new SeededRandom(3))
  r.start()
  w.run({ until: () => r.done })
  const online = [...Array(w.size).keys()].filter(i => w.built(i) && w.network.online(i, w.now))
  let covered = 0
  for (const key of r.records.keys) {
    const closest = [...online].sort((a, b) => compareDistance(w.contacts[a].key, w.contacts[b].key, key)).slice(0, K)
    covered += closest.filter(i => w.node(i).records?.valueOf(key, w.now) !== undefined).length / K
  }
  let found = 0
  let sought = 0
  for (const s of r.samples) {
    found += s.adopters?.found ?? 0
    sought += s.adopters?.sought ?? 0
  }
  return { run: r, world: w, coverage: covered / r.records.keys.length, findable: found / sought }
}

const OFF = { handover: 'off', storeOnGet: false, heldRepublish: false } as const

describe('sim/durability: the rules on a live network with harsh departures', function () {
  this.timeout(300_000)
  let off: Outcome

  before(() => {
    off = run(OFF)
  })

  it('handover: joiners near a key get its value, so more of the k closest hold it', () => {
    const on = run({ ...OFF, handover: 'own' })
    expect(on.run.records.durability.cost.handover).to.be.above(0)
    expect(on.coverage).to.be.above(off.coverage)
  })

  it('store on get: the closest peer that answered a get without the value gets it', () => {
    const on = run({ ...OFF, storeOnGet: true })
    expect(on.run.records.durability.cost.storeOnGet).to.be.above(0)
    expect(on.coverage).to.be.above(off.coverage)
  })

  it('held re-publish: lost copies come back, and the value is found more often', () => {
    const on = run({ ...OFF, heldRepublish: true })
    expect(on.run.records.durability.cost.heldRepublishes).to.be.above(0)
    expect(on.coverage).to.be.above(off.coverage)
    expect(on.findable).to.be.at.least(off.findable)
  })

  it('all rules (the defaults): same seed, same samples and trace', () => {
    const a = run({})
    const b = run({})
    expect(a.run.samples).to.deep.equal(b.run.samples)
    expect(a.world.traceHash()).to.equal(b.world.traceHash())
    expect(a.coverage).to.be.above(off.coverage)
    for (const s of a.run.samples) {
      expect(s.durability.heldRepublish + s.durability.handover + s.durability.storeOnGet).to.be.above(0)
    }
  })
})
