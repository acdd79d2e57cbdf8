/**
 * Summaries of a run: percentiles over the per-lookup records and a plain
 * text table for the terminal. Pure functions; nothing here reads the clock.
 */

/** One scenario lookup, as recorded by `scenarios.ts` */
export interface LookupRecord {
  queryId: number
  node: number
  /** Whether the node that looked is dialable itself */
  nodeDialable: boolean
  /** Whether the node that looked runs priority-dht */
  adopter: boolean
  startedAt: number
  /** Virtual ms from start to `lookup-finished` */
  latency: number
  reason: string
  requests: number
  /** Requests that needed a new connection (successful or not) */
  dials: number
  /** Dials to undialable nodes (each costs a `dialTimeout`) */
  undialableDials: number
  /** How many of the true k closest dialable nodes the lookup returned */
  found: number
  /** Returned exactly the true k closest dialable nodes */
  success: boolean
}

export interface Distribution {
  mean: number
  p50: number
  p95: number
  p99: number
  max: number
}

export interface LookupSummary {
  lookups: number
  successRate: number
  /** Mean share of the true k closest found */
  recall: number
  latencyMs: Distribution
  requests: Distribution
  dials: Distribution
  undialableDials: Distribution
  reasons: Record<string, number>
}

/** Nearest-rank percentile of an ascending array (0 for an empty one) */
export function percentile (sorted: readonly number[], p: number): number {
  if (sorted.length === 0) {
    return 0
  }
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export function distribution (values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b)
  const sum = sorted.reduce((s, v) => s + v, 0)
  return {
    mean: sorted.length === 0 ? 0 : sum / sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? 0 : sorted[sorted.length - 1]
  }
}

export function summarize (records: readonly LookupRecord[], k: number): LookupSummary {
  const reasons: Record<string, number> = {}
  for (const r of records) {
    reasons[r.reason] = (reasons[r.reason] ?? 0) + 1
  }
  const n = records.length
  return {
    lookups: n,
    successRate: n === 0 ? 0 : records.filter(r => r.success).length / n,
    recall: n === 0 ? 0 : records.reduce((s, r) => s + r.found, 0) / (n * k),
    latencyMs: distribution(records.map(r => r.latency)),
    requests: distribution(records.map(r => r.requests)),
    dials: distribution(records.map(r => r.dials)),
    undialableDials: distribution(records.map(r => r.undialableDials)),
    reasons
  }
}

const fmt = (v: number, digits = 1): string => Number.isInteger(v) ? String(v) : v.toFixed(digits)

/** A text table of a lookup summary (one row per metric) */
export function formatSummary (s: LookupSummary): string {
  const rows: string[][] = [['metric', 'mean', 'p50', 'p95', 'p99', 'max']]
  const add = (name: string, d: Distribution): void => {
    rows.push([name, fmt(d.mean), fmt(d.p50), fmt(d.p95), fmt(d.p99), fmt(d.max)])
  }
  add('latency (virtual ms)', s.latencyMs)
  add('requests / lookup', s.requests)
  add('dials / lookup', s.dials)
  add('undialable dials / lookup', s.undialableDials)
  const table = formatTable(rows)
  const reasons = Object.entries(s.reasons).map(([k, v]) => `${k} ${v}`).join(', ')
  return `${table}\nlookups ${s.lookups}, exact k closest ${(100 * s.successRate).toFixed(1)} %, recall ${(100 * s.recall).toFixed(1)} % (${reasons})`
}

/** Left-aligned first column, right-aligned others */
export function formatTable (rows: readonly string[][]): string {
  const widths: number[] = []
  for (const row of rows) {
    row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  }
  return rows.map(row => row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join('  ')).join('\n')
}
