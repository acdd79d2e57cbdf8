import { expect } from 'aegir/chai'
import { SeededRandom } from '../../src/core/env.ts'
import { KEY_BYTES } from '../../src/core/key.ts'
import { runExperiment } from '../../src/sim/experiment.ts'
import { percentile, summarize } from '../../src/sim/report.ts'
import { closestDialable, closestDialableBruteForce } from '../../src/sim/truth.ts'
import { World } from '../../src/sim/world.ts'

const perfect = { undialable: 0, loss: 0 }

describe('sim/scenarios', () => {
  it('on a static network with no loss and no undialable nodes every lookup returns the true k closest', () => {
    const r = runExperiment({ world: { nodes: 400, seed: 11, network: perfect }, lookups: { lookups: 60 } })
    expect(r.records).to.have.length(60)
    for (const rec of r.records) {
      expect(rec, `lookup ${rec.queryId}`).to.deep.include({ success: true, found: 20, reason: 'converged', undialableDials: 0 })
    }
    expect(r.summary.successRate).to.equal(1)
  })

  it('also does with tables built by nodes joining through real lookups', () => {
    const r = runExperiment({ world: { nodes: 150, seed: 4, network: perfect }, bootstrap: 'join', join: { duration: 15_000 }, lookups: { lookups: 30 } })
    expect(r.world.stats.nodesBuilt).to.equal(150)
    expect(r.summary.successRate).to.equal(1)
  })

  it('with undialable nodes in tables, lookups pay dial timeouts and still finish', () => {
    const r = runExperiment({ world: { nodes: 400, seed: 2, network: { undialable: 0.45, loss: 0.05 } }, lookups: { lookups: 40 } })
    expect(r.records).to.have.length(40)
    expect(r.summary.undialableDials.mean).to.be.above(0)
    expect(r.world.stats.lostMessages).to.be.above(0)
    expect(r.records.every(rec => rec.found <= 20 && rec.dials <= rec.requests && rec.undialableDials <= rec.dials)).to.equal(true)
  })

  it('with clean tables (dialable nodes only) nobody dials an undialable node', () => {
    const r = runExperiment({ world: { nodes: 300, seed: 2, network: { undialable: 0.45 } }, seedTables: { listUndialable: false }, lookups: { lookups: 20 } })
    expect(r.world.stats.undialableDials).to.equal(0)
    expect(r.summary.successRate).to.equal(1)
  })

  it('finds the true closest dialable nodes by index walk exactly as by brute force', () => {
    const world = new World({ nodes: 3000, seed: 9, network: { undialable: 0.45 } })
    const random = new SeededRandom(9)
    for (let i = 0; i < 50; i++) {
      const target = i % 5 === 0 ? world.contacts[i].key : random.fill(new Uint8Array(KEY_BYTES))
      const exclude = i % 5 === 0 ? i : -1
      expect(closestDialable(world, target, 20, exclude)).to.deep.equal(closestDialableBruteForce(world, target, 20, exclude))
    }
  })

  it('summarises with nearest-rank percentiles', () => {
    expect(percentile([1, 2, 3, 4], 50)).to.equal(2)
    expect(percentile([1, 2, 3, 4], 99)).to.equal(4)
    expect(percentile([], 50)).to.equal(0)
    const s = summarize([
      { queryId: 1, node: 0, nodeDialable: true, adopter: false, startedAt: 0, latency: 100, reason: 'converged', requests: 3, dials: 2, undialableDials: 1, found: 2, success: true },
      { queryId: 2, node: 1, nodeDialable: false, adopter: false, startedAt: 0, latency: 300, reason: 'exhausted', requests: 5, dials: 5, undialableDials: 0, found: 1, success: false }
    ], 2)
    expect(s).to.deep.include({ lookups: 2, successRate: 0.5, recall: 0.75, reasons: { converged: 1, exhausted: 1 } })
    expect(s.latencyMs).to.deep.equal({ mean: 200, p50: 100, p95: 300, p99: 300, max: 300 })
  })

  it('with the peer stack on, lookups at 45% undialable finish sooner than with every peer equal, on the same seed', () => {
    const run = (peerStack: boolean): ReturnType<typeof runExperiment> =>
      runExperiment({ world: { nodes: 2000, seed: 5, peerStack, network: { undialable: 0.45 } }, lookups: { lookups: 120, publishers: 4 } })
    const off = run(false)
    const on = run(true)
    expect(on.records).to.have.length(120)
    expect(on.summary.latencyMs.p50).to.be.below(off.summary.latencyMs.p50)
    expect(on.summary.latencyMs.p95).to.be.below(off.summary.latencyMs.p95)
    // it finds the same neighbourhoods: no loss of recall for the speed
    expect(on.summary.recall).to.be.at.least(off.summary.recall - 0.02)
    // and it is as deterministic as the rest
    expect(run(true).traceHash).to.equal(on.traceHash)
  })

  it('with churn, offline nodes refuse contact, every lookup still finishes, and the run is deterministic', () => {
    const run = (peerStack: boolean): ReturnType<typeof runExperiment> =>
      runExperiment({ world: { nodes: 2000, seed: 8, peerStack, network: { undialable: 0.3, churn: 0.5, sessionMedian: 60_000 } }, lookups: { lookups: 80, publishers: 4, interval: 1000 } })
    const off = run(false)
    const on = run(true)
    expect(off.world.stats.offlineContacts).to.be.above(0)
    expect(on.records).to.have.length(80)
    expect(on.records.every(r => r.reason === 'converged' || r.reason === 'exhausted')).to.equal(true)
    expect(on.summary.latencyMs.p50).to.be.below(off.summary.latencyMs.p50)
    expect(run(true).traceHash).to.equal(on.traceHash)
  })
})
