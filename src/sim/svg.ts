/**
 * Standalone SVG charts, no dependencies; the CLI writes them next to the
 * JSON, and `npm start` inlines them in its HTML report. `cdfSvg`: a latency
 * CDF, one line per run (peer stack off and on), virtual seconds on the x
 * axis, the share of lookups finished by then on the y axis. `lineSvg`: time
 * series (the live scenario's samples). `barSvg`: grouped bars. Every mark
 * drawn from data carries `data-series` (its series' label).
 */

export interface CdfSeries {
  label: string
  /** latencies in ms, any order */
  values: number[]
}

const WIDTH = 720
const HEIGHT = 420
const MARGIN = { left: 60, right: 20, top: 30, bottom: 50 }
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom
const COLOURS = ['#d1495b', '#00798c', '#edae49', '#30638e', '#66a182', '#8d6a9f']

/** Text made safe for XML and HTML content and attribute values */
export function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A tick step of 1, 2 or 5 times a power of ten giving about `count` ticks */
function niceStep (max: number, count: number): number {
  const raw = max / count
  const power = Math.pow(10, Math.floor(Math.log10(raw)))
  for (const m of [1, 2, 5, 10]) {
    if (m * power >= raw) {
      return m * power
    }
  }
  return 10 * power
}

/** Legend entry `i`: a colour swatch and the label */
function legend (out: string[], i: number, label: string, colour: string): void {
  out.push(`<rect x="${MARGIN.left + 12}" y="${MARGIN.top + 10 + i * 18}" width="14" height="4" fill="${colour}"/>`)
  out.push(`<text x="${MARGIN.left + 32}" y="${MARGIN.top + 16 + i * 18}">${escape(label)}</text>`)
}

/** Horizontal grid lines with their values on the y axis, from 0 to `yMax` */
function yGrid (out: string[], y: (v: number) => number, yMax: number, yStep: number, x0: number, x1: number): void {
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toFixed(3))}</text>`)
  }
}

/** Axis titles: `xLabel` under the plot, `yLabel` turned along its left side */
function axisTitles (out: string[], xLabel: string, yLabel: string): void {
  out.push(`<text x="${MARGIN.left + PLOT_W / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escape(xLabel)}</text>`)
  out.push(`<text transform="translate(16 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`)
}

/** A data line of `label`'s series through `points` ("x,y") */
function polyline (out: string[], label: string, colour: string, points: string[]): void {
  out.push(`<polyline data-series="${escape(label)}" fill="none" stroke="${colour}" stroke-width="2" points="${points.join(' ')}"/>`)
}

/** The end of a chart: the whole svg element as text */
function close (out: string[]): string {
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** The opening of a chart: the svg element, a white background, the title */
function open (title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">${escape(title)}</text>`
  ]
}

export interface CdfAxes {
  /** under the x axis, whose values are seconds */
  x: string
  /** along the y axis (the share finished) */
  y: string
}

export function cdfSvg (title: string, series: CdfSeries[], axes: CdfAxes = { x: 'lookup latency (virtual seconds)', y: 'lookups finished' }): string {
  const maxMs = Math.max(1, ...series.flatMap(s => s.values))
  const maxS = maxMs / 1000
  const step = niceStep(maxS, 8)
  const xMax = Math.ceil(maxS / step) * step
  const x = (s: number): number => MARGIN.left + (s / xMax) * PLOT_W
  const y = (p: number): number => MARGIN.top + (1 - p) * PLOT_H
  const out = open(title)
  for (let s = 0; s <= xMax + 1e-9; s += step) {
    out.push(`<line x1="${x(s)}" x2="${x(s)}" y1="${y(0)}" y2="${y(1)}" stroke="#eee"/>`)
    out.push(`<text x="${x(s)}" y="${y(0) + 16}" text-anchor="middle">${Number(s.toFixed(3))}</text>`)
  }
  for (let p = 0; p <= 1.0001; p += 0.25) {
    out.push(`<line x1="${x(0)}" x2="${x(xMax)}" y1="${y(p)}" y2="${y(p)}" stroke="#eee"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${y(p) + 4}" text-anchor="end">${Math.round(p * 100)}%</text>`)
  }
  axisTitles(out, axes.x, axes.y)
  series.forEach((s, i) => {
    const sorted = [...s.values].sort((a, b) => a - b)
    const points: string[] = [`${x(0)},${y(0)}`]
    sorted.forEach((v, j) => {
      points.push(`${x(v / 1000).toFixed(1)},${y(j / sorted.length).toFixed(1)}`, `${x(v / 1000).toFixed(1)},${y((j + 1) / sorted.length).toFixed(1)}`)
    })
    const colour = COLOURS[i % COLOURS.length]
    polyline(out, s.label, colour, points)
    legend(out, i, s.label, colour)
  })
  return close(out)
}

export interface LineSeries {
  label: string
  /** [x, y] points in x order; NaN y values leave a gap */
  points: Array<[number, number]>
}

/** Lines over an x axis (e.g. virtual hours), y from 0 to the largest value */
export function lineSvg (title: string, xLabel: string, yLabel: string, series: LineSeries[]): string {
  const xs = series.flatMap(s => s.points.map(p => p[0]))
  const ys = series.flatMap(s => s.points.map(p => p[1]).filter(v => Number.isFinite(v)))
  const xStep = niceStep(Math.max(1e-9, ...xs), 8)
  const xMax = Math.max(xStep, Math.ceil(Math.max(0, ...xs) / xStep) * xStep)
  const yStep = niceStep(Math.max(1e-9, ...ys), 5)
  const yMax = Math.max(yStep, Math.ceil(Math.max(0, ...ys) / yStep) * yStep)
  const x = (v: number): number => MARGIN.left + (v / xMax) * PLOT_W
  const y = (v: number): number => MARGIN.top + (1 - v / yMax) * PLOT_H
  const out = open(title)
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${y(0)}" y2="${y(yMax)}" stroke="#eee"/>`)
    out.push(`<text x="${x(v)}" y="${y(0) + 16}" text-anchor="middle">${Number(v.toFixed(3))}</text>`)
  }
  yGrid(out, y, yMax, yStep, x(0), x(xMax))
  axisTitles(out, xLabel, yLabel)
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]
    const runs: string[][] = [[]]
    for (const [px, py] of s.points) {
      if (Number.isFinite(py)) {
        runs[runs.length - 1].push(`${x(px).toFixed(1)},${y(py).toFixed(1)}`)
      } else if (runs[runs.length - 1].length > 0) {
        runs.push([])
      }
    }
    for (const run of runs.filter(r => r.length > 0)) {
      polyline(out, s.label, colour, run)
    }
    legend(out, i, s.label, colour)
  })
  return close(out)
}

export interface BarSeries {
  label: string
  /** one value per group, in the groups' order */
  values: number[]
}

/** Grouped bars: one group per name in `groups` along the x axis, one bar per series in each, y from 0 */
export function barSvg (title: string, xLabel: string, yLabel: string, groups: string[], series: BarSeries[]): string {
  const ys = series.flatMap(s => s.values.filter(v => Number.isFinite(v)))
  const yStep = niceStep(Math.max(1e-9, ...ys), 5)
  const yMax = Math.max(yStep, Math.ceil(Math.max(0, ...ys) / yStep) * yStep)
  const y = (v: number): number => MARGIN.top + (1 - v / yMax) * PLOT_H
  const groupW = PLOT_W / Math.max(1, groups.length)
  const barW = (groupW * 0.7) / Math.max(1, series.length)
  const out = open(title)
  yGrid(out, y, yMax, yStep, MARGIN.left, MARGIN.left + PLOT_W)
  axisTitles(out, xLabel, yLabel)
  groups.forEach((group, g) => {
    out.push(`<text x="${(MARGIN.left + (g + 0.5) * groupW).toFixed(1)}" y="${y(0) + 16}" text-anchor="middle">${escape(group)}</text>`)
  })
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]
    groups.forEach((_, g) => {
      const v = Number.isFinite(s.values[g]) ? s.values[g] : 0
      const left = MARGIN.left + g * groupW + groupW * 0.15 + i * barW
      out.push(`<rect data-series="${escape(s.label)}" x="${left.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${colour}"/>`)
      out.push(`<text x="${(left + barW / 2).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${Number(v.toFixed(2))}</text>`)
    })
    legend(out, i, s.label, colour)
  })
  return close(out)
}
