import { expect } from 'aegir/chai'
import { barSvg, cdfSvg, lineSvg } from '../../src/sim/svg.ts'

describe('sim/svg', () => {
  it('draws one rising step line per series, ending at 100%, with escaped labels', () => {
    const svg = cdfSvg('a <title>', [{ label: 'off & on', values: [3000, 1000, 2000] }, { label: 'on', values: [500] }])
    expect(svg).to.match(/^<svg /)
    expect(svg).to.include('a &lt;title&gt;')
    expect(svg).to.include('off &amp; on')
    const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map(m => m[1].split(' ').map(p => p.split(',').map(Number)))
    expect(lines).to.have.length(2)
    for (const points of lines) {
      // y decreases (the line rises) monotonically and x never goes back
      for (let i = 1; i < points.length; i++) {
        expect(points[i][1]).to.be.at.most(points[i - 1][1])
        expect(points[i][0]).to.be.at.least(points[i - 1][0])
      }
      expect(points[points.length - 1][1]).to.equal(30) // the top of the plot: 100%
    }
    // three lookups: three steps of a third each
    expect(lines[0]).to.have.length(1 + 2 * 3)
  })

  it('draws time series as lines, broken where a value is missing, the largest value at the top', () => {
    const svg = lineSvg('t', 'hours', 'share', [
      { label: 'a', points: [[0, 0.5], [1, 1], [2, NaN], [3, 0.25]] },
      { label: 'b', points: [[0, 0], [3, 0]] }
    ])
    expect(svg).to.match(/^<svg /)
    const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map(m => m[1].split(' ').map(p => p.split(',').map(Number)))
    // series a: two runs around the gap; series b: one
    expect(lines.map(l => l.length)).to.deep.equal([2, 1, 2])
    // y = 1 is the largest value: the top of the plot
    expect(lines[0][1][1]).to.equal(30)
    // x increases along a run
    expect(lines[0][1][0]).to.be.above(lines[0][0][0])
  })

  it('draws grouped bars, one per series and group, as tall as their values, each tagged with its series', () => {
    const svg = barSvg('dials', 'operation', 'per op', ['provide', 'get'], [
      { label: 'ours', values: [2, 0] },
      { label: 'their "dht"', values: [4, 1] }
    ])
    expect(svg).to.match(/^<svg /)
    const bars = [...svg.matchAll(/<rect data-series="([^"]+)" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"/g)]
      .map(m => ({ series: m[1], x: Number(m[2]), y: Number(m[3]), width: Number(m[4]), height: Number(m[5]) }))
    expect(bars.map(b => b.series)).to.deep.equal(['ours', 'ours', 'their &quot;dht&quot;', 'their &quot;dht&quot;'])
    // heights in proportion to the values, a zero value has none, all stand on the same baseline
    expect(bars[0].height).to.be.closeTo(bars[2].height / 2, 0.2)
    expect(bars[3].height).to.be.closeTo(bars[2].height / 4, 0.2)
    expect(bars[1].height).to.equal(0)
    expect(new Set(bars.map(b => (b.y + b.height).toFixed(0))).size).to.equal(1)
    // the largest value at the top of the plot, the groups left to right, the series side by side in a group
    expect(bars[2].y).to.equal(30)
    expect(bars[1].x).to.be.above(bars[2].x)
    expect(bars[2].x).to.be.above(bars[0].x)
    expect(bars.every(b => b.width > 0)).to.equal(true)
  })
})
