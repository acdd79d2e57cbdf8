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

  it('joins replace departures: same seed, same trace; joiners build tables and are found', () => {
    const world = { nodes: 200, seed: 8, eager: true, peerStack: true, adoption: 0.5, network: { churn: 0.2, departRate: 0.5, joinRate: 0.5, joinWindow: live.duration, sessionMedian: 600_000 } }
    const a = createWorld({ world })
    // before the run nobody knows a joiner, and joiners are not built
    const joiners = new Set([...Array(a.size).keys()].filter(i => a.network.arrivesAt(i) > 0).map(i => a.contacts[i].id))
    for (let i = 0; i < a.size; i++) {
      expect(a.built(i)).to.equal(!joiners.has(a.contacts[i].id))
      if (a.built(i)) {
        expect([...a.node(i).coordinator.routingTable.contacts()].filter(c => joiners.has(c.id))).to.deep.equal([])
      }
    }
    const ra = runLive(a, { live })
    const rb = runLive(createWorld({ world }), { live })
    expect(ra.traceHash).to.equal(rb.traceHash)
    expect(ra.samples).to.deep.equal(rb.samples)
    const joining = [...Array(a.size).keys()].filter(i => a.network.arrivesAt(i) > 0)
    // x = 0.5/h x 1/3 h: a share x / (1 + x) of the nodes joins during the run
    expect(joining.length).to.be.within(20, 45)
    const last = ra.samples[ra.samples.length - 1]
    expect(last.joined).to.be.at.least(joining.length * 0.5)
    // the network stays about its size: departures and joins balance
    expect(last.online).to.be.within(ra.samples[0].online * 0.8, ra.samples[0].online * 1.25)
    // a joiner that arrived early has a table, and others know it
    const early = joining.filter(i => a.network.arrivesAt(i) < live.duration / 2 && a.built(i) && a.network.online(i, a.now))
    expect(early.length).to.be.above(0)
    for (const i of early) {
      expect(a.node(i).coordinator.routingTable.size).to.be.above(5)
    }
    const knownBy = early.map(i => [...Array(a.size).keys()].filter(j => a.built(j) && a.node(j).coordinator.routingTable.has(a.contacts[i].id)).length)
    expect(Math.max(...knownBy)).to.be.above(0)
  })

  it('provide probes, republishes and findable samples, with joins and departures: same seed, same samples and trace', () => {
    const world = { nodes: 200, seed: 9, eager: true, peerStack: true, adoption: 0.5, network: { churn: 0.3, departRate: 0.5, joinRate: 0.5, joinWindow: live.duration, sessionMedian: 600_000 } }
    const records = { ...live, provides: 3, findableSample: 8, republishInterval: 6 * 60_000 }
    const a = runLive(createWorld({ world }), { live: records })
    const b = runLive(createWorld({ world }), { live: records })
    const c = runLive(createWorld({ world: { ...world, seed: 10 } }), { live: records })
    expect(a.traceHash).to.equal(b.traceHash)
    expect(a.samples).to.deep.equal(b.samples)
    expect(c.traceHash).to.not.equal(a.traceHash)
    for (const [i, s] of a.samples.entries()) {
      const groups = [s.classic, s.adopters].filter(g => g != null)
      // 3 provides per interval, reported at quorum; every record published so far can be sought
      expect(groups.reduce((n, g) => n + g.provides, 0)).to.be.within(1, 4)
      expect(s.records).to.be.within(1, 3 * (i + 1))
      expect(groups.reduce((n, g) => n + g.sought, 0)).to.equal(Math.min(8, s.records))
      for (const g of groups) {
        expect(g.found).to.be.at.most(g.sought)
        if (g.sought > 0) {
          expect(g.findable).to.equal(g.found / g.sought)
        }
      }
    }
    // every record is republished about every 6 to 6.6 minutes once published
    expect(a.samples.slice(1).every(s => s.republishes > 0)).to.equal(true)
    expect(a.samples[0].joined + a.samples[3].joined).to.be.above(0)
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
