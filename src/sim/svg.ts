/**
 * Standalone SVG charts, no dependencies; the CLI writes them next to the
 * JSON. `cdfSvg`: a latency CDF, one line per run (peer stack off and on),
 * virtual seconds on the x axis, the share of lookups finished by then on
 * the y axis. `lineSvg`: time series (the live scenario's samples).
 */

export interface CdfSeries {
  label: string
  /** latencies in ms, any order */
  values: number[]
}

const WIDTH = 720
const HEIGHT = 420
const MARGIN = { left: 60, right: 20, top: 30, bottom: 50 }
const COLOURS = ['#d1495b', '#00798c', '#edae49', '#30638e']

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
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

/** The opening of a chart: the svg element, a white background, the title */
function open (title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">${escape(title)}</text>`
  ]
}

export function cdfSvg (title: string, series: CdfSeries[]): string {
  const maxMs = Math.max(1, ...series.flatMap(s => s.values))
  const maxS = maxMs / 1000
  const step = niceStep(maxS, 8)
  const xMax = Math.ceil(maxS / step) * step
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (s: number): number => MARGIN.left + (s / xMax) * plotW
  const y = (p: number): number => MARGIN.top + (1 - p) * plotH
  const out = open(title)
  for (let s = 0; s <= xMax + 1e-9; s += step) {
    out.push(`<line x1="${x(s)}" x2="${x(s)}" y1="${y(0)}" y2="${y(1)}" stroke="#eee"/>`)
    out.push(`<text x="${x(s)}" y="${y(0) + 16}" text-anchor="middle">${Number(s.toFixed(3))}</text>`)
  }
  for (let p = 0; p <= 1.0001; p += 0.25) {
    out.push(`<line x1="${x(0)}" x2="${x(xMax)}" y1="${y(p)}" y2="${y(p)}" stroke="#eee"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${y(p) + 4}" text-anchor="end">${Math.round(p * 100)}%</text>`)
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">lookup latency (virtual seconds)</text>`)
  out.push(`<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">lookups finished</text>`)
  series.forEach((s, i) => {
    const sorted = [...s.values].sort((a, b) => a - b)
    const points: string[] = [`${x(0)},${y(0)}`]
    sorted.forEach((v, j) => {
      points.push(`${x(v / 1000).toFixed(1)},${y(j / sorted.length).toFixed(1)}`, `${x(v / 1000).toFixed(1)},${y((j + 1) / sorted.length).toFixed(1)}`)
    })
    const colour = COLOURS[i % COLOURS.length]
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${points.join(' ')}"/>`)
    out.push(`<rect x="${MARGIN.left + 12}" y="${MARGIN.top + 10 + i * 18}" width="14" height="4" fill="${colour}"/>`)
    out.push(`<text x="${MARGIN.left + 32}" y="${MARGIN.top + 16 + i * 18}">${escape(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
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
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (v: number): number => MARGIN.left + (v / xMax) * plotW
  const y = (v: number): number => MARGIN.top + (1 - v / yMax) * plotH
  const out = open(title)
  for (let v = 0; v <= xMax + 1e-9; v += xStep) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${y(0)}" y2="${y(yMax)}" stroke="#eee"/>`)
    out.push(`<text x="${x(v)}" y="${y(0) + 16}" text-anchor="middle">${Number(v.toFixed(3))}</text>`)
  }
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(`<line x1="${x(0)}" x2="${x(xMax)}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${y(v) + 4}" text-anchor="end">${Number(v.toFixed(3))}</text>`)
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escape(xLabel)}</text>`)
  out.push(`<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`)
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
      out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${run.join(' ')}"/>`)
    }
    out.push(`<rect x="${MARGIN.left + 12}" y="${MARGIN.top + 10 + i * 18}" width="14" height="4" fill="${colour}"/>`)
    out.push(`<text x="${MARGIN.left + 32}" y="${MARGIN.top + 16 + i * 18}">${escape(s.label)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
