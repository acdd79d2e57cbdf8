import { expect } from 'aegir/chai'
import { SeededRandom } from '../../src/core/env.ts'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { validateNetworkConfig } from '../../src/sim/config.ts'
import { Network } from '../../src/sim/network.ts'
import { percentile } from '../../src/sim/report.ts'

const make = (config = {}, size = 2000, seed = 1): Network => new Network(validateNetworkConfig(config), size, seed, new SeededRandom(seed))

describe('sim/network', () => {
  it('draws per-pair RTTs that are symmetric, stable, clamped and near the configured median and p95', () => {
    const net = make()
    const again = make()
    const samples: number[] = []
    for (let a = 0; a < 200; a++) {
      for (let b = a + 1; b < 200; b += 7) {
        const rtt = net.rtt(a, b)
        expect(net.rtt(b, a)).to.equal(rtt)
        expect(again.rtt(a, b)).to.equal(rtt)
        expect(rtt).to.be.within(10, 2000)
        expect(net.oneWay(a, b) + net.oneWay(b, a)).to.equal(rtt)
        samples.push(rtt)
      }
    }
    samples.sort((x, y) => x - y)
    expect(percentile(samples, 50)).to.be.within(85, 115)
    expect(percentile(samples, 95)).to.be.within(250, 360)
    expect(make({}, 2000, 2).rtt(3, 4)).to.not.equal(net.rtt(3, 4))
  })

  it('makes the configured share of nodes undialable', () => {
    const net = make({ undialable: 0.45 }, 10_000)
    expect(net.dialableNodes / 10_000).to.be.within(0.53, 0.57)
    expect(make({ undialable: 0 }).dialableNodes).to.equal(2000)
    expect(make({ undialable: 1 }).dialableNodes).to.equal(0)
  })

  it('draws no randomness for loss when the loss is 0', () => {
    const random = new SeededRandom(5)
    const net = new Network(validateNetworkConfig({ undialable: 0 }), 10, 5, random)
    const before = new SeededRandom(5).uint32()
    expect(net.lost()).to.equal(false)
    expect(random.uint32()).to.equal(before)
  })

  it('validates its config', () => {
    expect(() => validateNetworkConfig({ undialable: 1.5 })).to.throw(InvalidConfigError, /undialable/)
    expect(() => validateNetworkConfig({ rttP95: 50 })).to.throw(InvalidConfigError, /rttP95/)
    expect(() => validateNetworkConfig({ churn: 1.1 })).to.throw(InvalidConfigError, /churn/)
    expect(() => validateNetworkConfig({ sessionMedian: 10 })).to.throw(InvalidConfigError, /sessionMedian/)
  })

  it('churning nodes alternate between online and offline; the stable core never leaves', () => {
    const config = validateNetworkConfig({ undialable: 0, churn: 0.5, sessionMedian: 60_000 })
    const net = new Network(config, 200, 3, new SeededRandom(1))
    let churning = 0
    for (let i = 0; i < 200; i++) {
      const states = new Set<boolean>()
      for (let t = 0; t < 3_600_000; t += 10_000) {
        states.add(net.online(i, t))
      }
      if (states.size === 2) {
        churning++
      } else {
        expect([...states]).to.deep.equal([true])
      }
    }
    expect(churning).to.be.within(70, 130)
    const still = new Network(validateNetworkConfig({ undialable: 0 }), 10, 3, new SeededRandom(1))
    expect(Array.from({ length: 10 }, (_, i) => still.online(i, 12345)).every(Boolean)).to.equal(true)
  })

  it('departed nodes never come back, and the share gone after t hours is about 1 - e^(-rate t)', () => {
    const net = make({ departRate: 0.5 }, 4000)
    const hour = 3_600_000
    let gone = 0
    for (let i = 0; i < 4000; i++) {
      const at = net.departsAt(i)
      expect(at).to.be.above(0)
      if (at <= 2 * hour) {
        gone++
        expect(net.online(i, at)).to.equal(false)
        expect(net.online(i, at + 10 * hour)).to.equal(false)
      }
    }
    expect(gone / 4000).to.be.closeTo(1 - Math.exp(-1), 0.03)
    expect(make().departsAt(7)).to.equal(Infinity)
    expect(() => make({ departRate: -1 })).to.throw(InvalidConfigError)
  })
})
