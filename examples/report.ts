/**
 * The HTML report of `npm start` (examples/demo.ts): one self-contained
 * file (inline SVG and CSS, no scripts, nothing fetched) with the comparison
 * tables, latency distributions per operation for both implementations,
 * tarpit dials per operation, and the categories priority-dht's peer stack
 * gave the other peers while the operations ran.
 */
import { tables } from '../benchmarks/measure.ts'
import { TABLE_TIMEOUT } from '../benchmarks/network.ts'
import { WORKLOADS } from '../benchmarks/workloads.ts'
import { barSvg, cdfSvg, escape, lineSvg } from '../src/sim/svg.ts'
import type { Cell, Options, TextTable } from '../benchmarks/measure.ts'
import type { Implementation } from '../benchmarks/network.ts'
import type { Category } from '../src/core/peer-stack/params.ts'

export const CATEGORIES: Category[] = ['unknown', 'proving', 'active', 'inactive', 'bad']

/** How the live priority-dht nodes classified the other nodes at one moment */
export interface CategorySample {
  /** seconds since the measured phase started (the moment the tarpits appeared) */
  t: number
  /** summed over live nodes: how many of the tarpits each puts in each category */
  tarpits: Record<Category, number>
  /** summed over live nodes: how many of the other live nodes each puts in each category */
  live: Record<Category, number>
}

/** What `npm start` writes as JSON next to the report, and what the report is made of */
export interface DemoResult {
  date: string
  node: string
  options: Options
  impls: Implementation[]
  cells: Cell[]
  /** priority-dht only, sampled through `services.dht.peerValue(peer).category` */
  categories: CategorySample[]
  /** from the start of the process to the end of the last network */
  wallMs: number
}

function htmlTable (id: string, t: TextTable): string {
  const row = (cells: string[], tag: string): string => `<tr>${cells.map(c => `<${tag}>${escape(c)}</${tag}>`).join('')}</tr>`
  return `<table id="${id}">\n<thead>${row(t.head, 'th')}</thead>\n<tbody>\n${t.rows.map(r => row(r, 'td')).join('\n')}\n</tbody>\n</table>`
}

function figure (id: string, svg: string, caption: string): string {
  return `<figure id="${id}">\n${svg}<figcaption>${escape(caption)}</figcaption>\n</figure>`
}

export function renderReport (result: DemoResult): string {
  const { options: o, impls, cells, categories } = result
  const share = o.tarpits[0]
  const cellOf = (impl: Implementation): Cell | undefined => cells.find(c => c.impl === impl && c.tarpits === share)
  const [ops, phases] = tables(cells, impls, o)
  const figures: string[] = []
  for (const w of WORKLOADS) {
    const series = impls.map(impl => ({ label: impl, values: (cellOf(impl)?.samples[w] ?? []).map(s => s.ms) }))
    figures.push(figure(`latency-${w}`, cdfSvg(`${w}: latency distribution`, series, { x: 'latency (seconds)', y: `${w} operations finished` }),
      `${w}: share of the ${o.ops} operations finished within each latency (a timed-out or failed operation counts at its latency)`))
  }
  const dials = impls.map(impl => ({ label: impl, values: WORKLOADS.map(w => cellOf(impl)?.summary[w].tarpitDialsMean ?? 0) }))
  figures.push(figure('tarpit-dials', barSvg('tarpit dials per operation (mean)', 'operation', 'TCP connections to tarpits', [...WORKLOADS], dials),
    o.inFlight > 1
      ? `TCP connections the tarpits accepted, per operation; with ${o.inFlight} rounds in flight each connection is split among the operations running when it was accepted`
      : 'TCP connections the tarpits accepted while each operation ran'))
  for (const [key, whom] of [['tarpits', 'the tarpits'], ['live', 'the other live nodes']] as const) {
    const series = CATEGORIES.map(c => ({ label: c, points: categories.map(s => [s.t, s[key][c]] as [number, number]) }))
    figures.push(figure(`categories-${key}`, lineSvg(`priority-dht peer stack: how live nodes classify ${whom}`, 'seconds since the tarpits appeared', '(node, peer) pairs', series),
      `For every live priority-dht node and every one of ${whom}, the category its peer stack gives that peer (services.dht.peerValue(peer).category), counted per category`))
  }
  const title = `priority-dht vs @libp2p/kad-dht: ${o.nodes} nodes, ${Math.round(share * 100)}% tarpits`
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escape(title)}</title>
<style>
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
figure { display: inline-block; margin: 4px; vertical-align: top; }
figcaption { max-width: 720px; font-size: 13px; color: #444; }
</style>
</head>
<body>
<h1>${escape(title)}</h1>
<p id="setup">${escape(`${o.nodes} real libp2p nodes per implementation on 127.0.0.1 (TCP, noise, yamux, identify, ping; k = ${o.k}), the same seed (${o.seed}) for both. Once the routing tables had filled (or after ${(o.tableTimeout ?? TABLE_TIMEOUT) / 1000} s), ${Math.round(share * 100)}% of the nodes became tarpits (their port accepts TCP connections and never answers). Then ${o.ops} rounds of provide, findProviders by another node, an IPNS put and a get by another node, ${o.inFlight} rounds in flight, no warm-up: the nodes meet the dead peers cold. Whole run ${(result.wallMs / 1000).toFixed(1)} s on Node ${result.node}, ${result.date}.`)}</p>
<h2>Per operation</h2>
${htmlTable('operations', ops)}
<h2>Measured phase</h2>
${htmlTable('phases', phases)}
<h2>Plots</h2>
${figures.join('\n')}
</body>
</html>
`
}
