/**
 * `npm start`'s report, end to end: the demo runs at a small size in a child
 * process, then headless Chromium (Debian's package, driven by
 * playwright-core) opens the HTML it wrote and the test checks that every
 * plot drew the run's data (marks with geometry for every series, as many
 * points or bars as the JSON has values, legends naming both
 * implementations) and that the tables show the JSON's numbers. Without
 * Chromium on the PATH the suite is skipped with the reason, except under CI
 * (`CI=true`), where that fails.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { expect } from 'aegir/chai'
import { chromium } from 'playwright-core'
import { WORKLOADS } from '../../benchmarks/workloads.ts'
import { CATEGORIES } from '../../examples/report.ts'
import { requireToolchains } from '../interop/fixtures/helpers.ts'
import type { DemoResult } from '../../examples/report.ts'
import type { Category } from '../../src/core/peer-stack/params.ts'
import type { Browser, Page } from 'playwright-core'

const DEMO = fileURLToPath(new URL('../../examples/demo.ts', import.meta.url))
const NODES = 10
const ROUNDS = 2
/** flags TOOLCHAIN.md found necessary for Debian's chromium in a container, offline */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

function executable (file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `chromium` (or `chromium-browser`) on the PATH */
function findChromium (): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(d => d !== '')
  return dirs.flatMap(d => ['chromium', 'chromium-browser'].map(name => join(d, name))).find(executable)
}

/** Runs the demo; resolves with its stdout once it exits with 0 */
async function runDemo (args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--experimental-transform-types', '--no-warnings', DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += String(chunk) })
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  if (code !== 0) {
    throw new Error(`the demo exited with ${code}:\n${stderr}`)
  }
  return stdout
}

/** "65 ms" or "12.1 s" as ms */
function ms (text: string): number {
  const m = /^([\d.]+) (ms|s)$/.exec(text)
  if (m == null) {
    throw new Error(`not a latency: ${text}`)
  }
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1)
}

/**
 * Within half a unit of the last digit shown: a value halfway between two
 * displayed numbers (0.3625 shown as 0.362) is still a correct display, and
 * floating point can put the difference a hair above the half unit
 */
function shownTolerance (unit: number): number {
  return unit / 2 + 1e-9
}

interface Mark { series: string, tag: string, width: number, height: number, y: number, points: number }
interface Figure { id: string, texts: string[], marks: Mark[] }

/** Every figure of the page: its SVG's texts and its data marks with their rendered geometry */
async function figures (page: Page): Promise<Figure[]> {
  return page.evaluate(() => [...document.querySelectorAll('figure')].map(f => ({
    id: f.id,
    texts: [...f.querySelectorAll('svg text')].map(t => t.textContent ?? ''),
    marks: [...f.querySelectorAll<SVGGraphicsElement>('[data-series]')].map(e => {
      const box = e.getBBox()
      return {
        series: e.getAttribute('data-series') ?? '',
        tag: e.tagName,
        width: box.width,
        height: box.height,
        y: box.y,
        points: e instanceof SVGPolylineElement ? e.points.numberOfItems : 0
      }
    })
  })))
}

async function tableRows (page: Page, id: string): Promise<string[][]> {
  return page.evaluate(id => [...document.querySelectorAll(`#${id} tbody tr`)].map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent ?? '')), id)
}

describe('demo report (npm start) in a browser', function () {
  let dir: string
  let stdout: string
  let result: DemoResult
  let browser: Browser
  let page: Page
  let figs: Figure[]
  const requests: string[] = []

  before(async function () {
    const executablePath = findChromium()
    requireToolchains(this, executablePath == null ? ['chromium'] : [], 'demo report browser')
    this.timeout(240_000)
    dir = await mkdtemp(join(tmpdir(), 'priority-dht-demo-'))
    const out = join(dir, 'report.html')
    stdout = await runDemo(['--nodes', String(NODES), '--ops', String(ROUNDS), '--out', out])
    result = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8'))
    browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS })
    page = await browser.newPage({ viewport: { width: 1500, height: 1000 } })
    page.on('request', request => { requests.push(request.url()) })
    await page.goto(pathToFileURL(out).href)
    figs = await figures(page)
  })

  after(async () => {
    await browser?.close()
    if (dir != null) {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('prints the report path and the JSON holds both implementations at the size asked for', () => {
    expect(stdout).to.include(`report: ${join(dir, 'report.html')}`)
    expect(stdout).to.match(/took \d+\.\d s/)
    expect(result.cells.map(c => c.impl)).to.deep.equal(['priority-dht', 'kad-dht'])
    expect(result.options.nodes).to.equal(NODES)
    for (const cell of result.cells) {
      for (const w of WORKLOADS) {
        expect(cell.samples[w]).to.have.length(ROUNDS)
      }
    }
  })

  it('is one self-contained file: the browser fetched nothing else', () => {
    expect(requests).to.deep.equal([pathToFileURL(join(dir, 'report.html')).href])
  })

  it('draws a latency distribution per operation with every sample of both implementations', () => {
    for (const w of WORKLOADS) {
      const fig = figs.find(f => f.id === `latency-${w}`)
      expect(fig, w).to.not.equal(undefined)
      const lines = fig?.marks ?? []
      expect(lines.map(m => m.series), w).to.deep.equal(result.impls)
      for (const [i, line] of lines.entries()) {
        // the step line starts at the origin, then two points per sample
        expect(line.points, `${w} ${line.series}`).to.equal(1 + 2 * result.cells[i].samples[w].length)
        expect(line.width, `${w} ${line.series}`).to.be.above(0)
        expect(line.height, `${w} ${line.series}`).to.be.above(0)
      }
      // every line climbs from 0% to 100%: the same height
      expect(lines[0].height).to.be.closeTo(lines[1].height, 0.5)
      for (const impl of result.impls) {
        expect(fig?.texts, `${w} legend`).to.include(impl)
      }
    }
  })

  it('draws tarpit dials per operation as bars as tall as the JSON means', () => {
    const fig = figs.find(f => f.id === 'tarpit-dials')
    const bars = fig?.marks ?? []
    expect(bars.map(b => b.series)).to.deep.equal(result.impls.flatMap(impl => WORKLOADS.map(() => impl)))
    const values = result.cells.flatMap(c => WORKLOADS.map(w => c.summary[w].tarpitDialsMean))
    // with tarpits in the network some operation dialled one
    expect(Math.max(...values)).to.be.above(0)
    const scale = Math.max(...bars.map(b => b.height)) / Math.max(...values)
    bars.forEach((bar, i) => {
      expect(bar.width).to.be.above(0)
      // a bar stands where its mean is above zero, and only there
      expect(bar.height > 0, `bar ${i} drawn`).to.equal(values[i] > 0)
      expect(bar.height, `bar ${i}`).to.be.closeTo(values[i] * scale, 0.5)
    })
    for (const impl of result.impls) {
      expect(fig?.texts).to.include(impl)
    }
  })

  it('draws the peer-stack categories over time, one line per category with every sample', () => {
    const live = NODES - Math.round(0.3 * NODES)
    const tarpits = NODES - live
    expect(result.categories.length).to.be.above(1)
    for (const s of result.categories) {
      // every live node classified every tarpit and every other live node
      expect(CATEGORIES.reduce((sum, c) => sum + s.tarpits[c], 0)).to.equal(live * tarpits)
      expect(CATEGORIES.reduce((sum, c) => sum + s.live[c], 0)).to.equal(live * (live - 1))
    }
    const held = (key: 'tarpits' | 'live', line: Mark): boolean => result.categories.some(s => s[key][line.series as Category] > 0)
    for (const id of ['categories-tarpits', 'categories-live']) {
      const fig = figs.find(f => f.id === id)
      const lines = fig?.marks ?? []
      expect(lines.map(m => m.series), id).to.deep.equal(CATEGORIES)
      for (const line of lines) {
        expect(line.points, `${id} ${line.series}`).to.equal(result.categories.length)
        expect(line.width, `${id} ${line.series}`).to.be.above(0)
      }
      // a category that ever holds pairs is drawn above the baseline (where the empty ones lie flat);
      // a category may hold the same pairs all along (a settled network's live nodes all stay active)
      const key = id === 'categories-tarpits' ? 'tarpits' : 'live'
      const empty = lines.filter(l => !held(key, l))
      if (empty.length === 0) {
        // no empty category to mark the baseline: the counts moved, so some line climbs
        expect(Math.max(...lines.map(l => l.height)), id).to.be.above(0)
        continue
      }
      const baseline = empty[0].y
      for (const line of empty) {
        expect(line.height, `${id} ${line.series} flat`).to.be.below(0.5)
        expect(line.y, `${id} ${line.series} on the baseline`).to.be.closeTo(baseline, 0.5)
      }
      for (const line of lines.filter(l => held(key, l))) {
        expect(line.y, `${id} ${line.series} above the baseline`).to.be.below(baseline - 0.5)
      }
      for (const c of CATEGORIES) {
        expect(fig?.texts, `${id} legend`).to.include(c)
      }
    }
  })

  it('shows the JSON numbers in the operations table, the same rows as the console table', async () => {
    const rows = await tableRows(page, 'operations')
    expect(rows.map(r => r[1])).to.deep.equal(WORKLOADS)
    const [ours, theirs] = result.cells
    for (const [i, w] of WORKLOADS.entries()) {
      const row = rows[i]
      for (const [j, cell] of [ours, theirs].entries()) {
        const s = cell.summary[w]
        const at = 2 + 4 * j
        expect(ms(row[at]), `${w} ${cell.impl} p50`).to.be.closeTo(s.p50, shownTolerance(s.p50 >= 10_000 ? 100 : 1))
        expect(ms(row[at + 1]), `${w} ${cell.impl} p95`).to.be.closeTo(s.p95, shownTolerance(s.p95 >= 10_000 ? 100 : 1))
        expect(row[at + 2]).to.equal(`${Math.round(s.success * 100)}%`)
        expect(Number(row[at + 3].split(' ')[0])).to.be.closeTo(s.tarpitDialsMean, shownTolerance(0.01))
      }
      if (theirs.summary[w].p50 > 0) {
        expect(Number(row[10].replace(/x$/, ''))).to.be.closeTo(ours.summary[w].p50 / theirs.summary[w].p50, shownTolerance(0.001))
      } else {
        expect(row[10]).to.equal('n/a')
      }
      // the console printed the same row
      expect(stdout).to.include(`| ${row.join(' | ')} |`)
    }
    const phases = await tableRows(page, 'phases')
    expect(phases.map(r => r[1])).to.deep.equal(result.impls)
    phases.forEach((r, i) => {
      expect(r[6]).to.equal(`${result.cells[i].measured.tarpitDials} / ${result.cells[i].measured.tarpitDialsPerOp.toFixed(2)}`)
    })
  })
})
