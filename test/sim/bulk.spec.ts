import { expect } from 'aegir/chai'
import { validateLookupConfig } from '../../src/core/query/config.ts'
import { createWorld, runBulk } from '../../src/sim/experiment.ts'
import type { ExperimentOptions } from '../../src/sim/experiment.ts'

function run (options: Partial<ExperimentOptions>): ReturnType<typeof runBulk> & { hash: string } {
  const world = createWorld(options)
  const r = runBulk(world, options)
  return { ...r, hash: world.traceHash() }
}

describe('sim/bulk', () => {
  it('provides every key on a static network with far fewer lookups than keys, and others find them', () => {
    const k = validateLookupConfig({}).k
    const r = run({ world: { nodes: 2000, seed: 2, network: { undialable: 0 } }, bulk: { keys: 600, sample: 50 } })
    expect(r).to.include({ keys: 600, provided: 600, copiesMean: k, deliveries: 600 * k, sampled: 50, found: 50, undialableDials: 0 })
    // one lookup per keyspace region, not per key
    expect(r.lookups).to.be.below(600 / 3)
    // pooled: a peer gets all of its keys of the chunk in one exchange
    expect(r.batches).to.be.below(r.deliveries / 3)
  })

  it('at 45% undialable, failed deliveries move to spares and every key still lands; same seed, same trace', () => {
    const options: Partial<ExperimentOptions> = { world: { nodes: 2000, seed: 3, peerStack: true, network: { undialable: 0.45, loss: 0.02 } }, bulk: { keys: 300, sample: 30 } }
    const r = run(options)
    expect(r.provided).to.equal(300)
    expect(r.copiesMean).to.be.above(15)
    expect(r.found).to.be.at.least(27)
    expect(run(options).hash).to.equal(r.hash)
  })

  it('one lookup at a time needs no more lookups but takes longer than eight at once', () => {
    // no bucket refresh: one lookup at a time spans many virtual minutes, and refreshing every built node is slow to simulate
    const base = { world: { nodes: 2000, seed: 4, peerStack: true, coordinator: { refresh: false }, network: { undialable: 0.45 } } }
    const one = run({ ...base, bulk: { keys: 300, sample: 0, lookupConcurrency: 1 } })
    const eight = run({ ...base, bulk: { keys: 300, sample: 0, lookupConcurrency: 8 } })
    expect(one.lookups).to.be.at.most(eight.lookups)
    expect(eight.durationMs).to.be.below(one.durationMs)
  })
})
