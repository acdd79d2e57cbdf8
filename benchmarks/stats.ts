/** Summaries of measured operations */

export interface Sample {
  /** wall time of the operation, ms (the op timeout when it timed out) */
  ms: number
  ok: boolean
  /** TCP connections accepted by tarpits while it ran */
  tarpitDials: number
  error?: string
}

export interface Summary {
  ops: number
  p50: number
  p95: number
  mean: number
  success: number
  tarpitDialsMean: number
  tarpitDialsMax: number
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) {
    return NaN
  }
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[i]
}

export function summarize (samples: Sample[]): Summary {
  const ms = samples.map(s => s.ms).sort((a, b) => a - b)
  const dials = samples.map(s => s.tarpitDials)
  return {
    ops: samples.length,
    p50: percentile(ms, 0.5),
    p95: percentile(ms, 0.95),
    mean: ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length),
    success: samples.filter(s => s.ok).length / Math.max(1, samples.length),
    tarpitDialsMean: dials.reduce((a, b) => a + b, 0) / Math.max(1, dials.length),
    tarpitDialsMax: Math.max(0, ...dials)
  }
}
