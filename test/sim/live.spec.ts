import { expect } from 'aegir/chai'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { bootstrap, createWorld, runLive } from '../../src/sim/experiment.ts'
import { validateLiveOptions } from '../../src/sim/live.ts'
import type { ExperimentOptions } from '../../src/sim/experiment.ts'

const live = { duration: 20 * 60_000, sampleEvery: 5 * 60_000, probes: 4 }

function run (options: Partial<ExperimentOptions>): ReturnType<typeof runLive> {
  const world = createWorld(options)
  bootstrap(world, options)
  return runLive(world, { ...options, live })
}

describe('sim/live', function () {
  this.timeout(120_000)

  it('rejects bad options', () => {
    expect(() => validateLiveOptions({ duration: 1000 })).to.throw(InvalidConfigError, /live.duration/)
    expect(() => validateLiveOptions({ duration: 3_600_000, sampleEvery: 7_200_000 })).to.throw(InvalidConfigError, /live.sampleEvery/)
    expect(() => validateLiveOptions({ duration: 30 * 86_400_000, sampleEvery: 1000 })).to.throw(RangeError, /10 000 samples/)
  })

  it('same seed, same samples and trace, with churn and departures in an eager world', () => {
    const options = { world: { nodes: 150, seed: 4, eager: true, peerStack: true, adoption: 0.5, network: { churn: 0.3, departRate: 0.2, sessionMedian: 600_000, announcing: 0.5 } } }
    const a = run(options)
    const b = run(options)
    const c = run({ world: { ...options.world, seed: 5 } })
    expect(a.samples).to.have.length(4)
    expect(a.samples).to.deep.equal(b.samples)
    expect(a.traceHash).to.equal(b.traceHash)
    expect(c.traceHash).to.not.equal(a.traceHash)
    // every interval has probe lookups from both groups, and maintenance traffic
    for (const s of a.samples) {
      expect((s.classic?.lookups ?? 0) + (s.adopters?.lookups ?? 0)).to.be.at.least(3)
      expect(s.requestsPerNodeMinute).to.be.above(0)
    }
  })

  it('undialable servers keep entering classic tables, never the adopters\'', () => {
    // every undialable node announces the DHT protocol: classic nodes admit
    // those that dial them, adopters verify them and drop them
    const { samples } = run({ world: { nodes: 150, seed: 6, eager: true, peerStack: true, adoption: 0.5, network: { announcing: 1 } }, seedTables: { listUndialable: false } })
    const last = samples[samples.length - 1]
    expect(last.classic?.undialableShare).to.be.above(0.02)
    expect(last.adopters?.undialableShare).to.equal(0)
  })

  it('upgraded adopters start from a classic table, undialable entries included', () => {
    const world = { nodes: 150, seed: 6, eager: true, peerStack: true, adoption: 0.5, network: { announcing: 1 } }
    const upgraded = run({ world, seedTables: { upgraded: true } })
    const fresh = run({ world })
    expect(upgraded.samples[0].adopters?.undialableShare).to.be.above(0.3)
    expect(fresh.samples[0].adopters?.undialableShare).to.equal(0)
  })

  it('calibration: classic tables settle near 45% unreachable entries (within 10 points) with --announcing 1 --churn 0.8', () => {
    // SIGCOMM 2022: about 45% of the peers in IPFS routing tables could not
    // be reached. Here: entries whose node is undialable or offline, the
    // mean of the last three 10-minute samples of a one-hour run
    const options = { world: { nodes: 300, seed: 1, eager: true, network: { announcing: 1, churn: 0.8 } } }
    const world = createWorld(options)
    bootstrap(world, options)
    const { samples } = runLive(world, { ...options, live: { duration: 3_600_000, sampleEvery: 600_000, probes: 2 } })
    const tail = samples.slice(-3).map(s => (s.classic?.undialableShare ?? 0) + (s.classic?.offlineShare ?? 0))
    const share = tail.reduce((a, b) => a + b, 0) / tail.length
    expect(share).to.be.within(0.35, 0.55)
  })
})
