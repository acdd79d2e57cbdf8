/* eslint-disable no-console */
/**
 * `node benchmarks/cpu-profile.ts FILE.cpuprofile [--top N]`: where the CPU of
 * a profile went. Prints self time grouped by package or source file, the top
 * functions by self time, and the project's own functions by inclusive time
 * (time with the function anywhere on the stack). Idle time is left out of
 * every share. Profiles come from `npm run bench -- --cpu-prof DIR`, which
 * profiles only the measured phase. `--callers NAME`: the stacks (six frames,
 * `--depth N` frames past node's built-ins) under which functions named NAME
 * spent their self time. `--ops N`: adds
 * ms per operation.
 */
import { readFile } from 'node:fs/promises'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number, columnNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** A package name for node_modules files, the path under the project for ours, or the V8 pseudo frame */
export function where (url: string, fn: string): string {
  if (url === '') {
    return fn.startsWith('(') ? fn : '(native)'
  }
  const nm = url.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  if (url.startsWith('node:')) {
    return 'node: (built-ins)'
  }
  const m = /\/(src|benchmarks|test)\/(.*)$/.exec(url)
  return m != null ? `${m[1]}/${m[2]}` : url
}

const argv = process.argv.slice(2)
const file = argv.find(a => !a.startsWith('--'))
if (file == null) {
  throw new Error('usage: cpu-profile.ts FILE.cpuprofile [--top N] [--ops N]')
}
const topIdx = argv.indexOf('--top')
const top = topIdx === -1 ? 30 : Number(argv[topIdx + 1])
const opsIdx = argv.indexOf('--ops')
const ops = opsIdx === -1 ? undefined : Number(argv[opsIdx + 1])
const callersIdx = argv.indexOf('--callers')
const callers = callersIdx === -1 ? undefined : argv[callersIdx + 1]
const depthIdx = argv.indexOf('--depth')
const depth = depthIdx === -1 ? undefined : Number(argv[depthIdx + 1])
const profile: Profile = JSON.parse(await readFile(file, 'utf8'))
const byId = new Map(profile.nodes.map(n => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) {
  for (const c of n.children ?? []) {
    parent.set(c, n.id)
  }
}
const self = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000
  self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt)
}
let idle = 0
let busy = 0
const byWhere = new Map<string, number>()
const byFn = new Map<string, number>()
const inclusive = new Map<string, number>()
const label = (n: ProfileNode): string => `${n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName} ${where(n.callFrame.url, n.callFrame.functionName)}:${n.callFrame.lineNumber + 1}`
for (const [id, ms] of self) {
  const n = byId.get(id)
  if (n == null) {
    continue
  }
  if (n.callFrame.functionName === '(idle)') {
    idle += ms
    continue
  }
  busy += ms
  const w = where(n.callFrame.url, n.callFrame.functionName)
  byWhere.set(w, (byWhere.get(w) ?? 0) + ms)
  byFn.set(label(n), (byFn.get(label(n)) ?? 0) + ms)
  // inclusive time for our own functions: once per function per sample stack
  const seen = new Set<string>()
  for (let at: number | undefined = id; at != null; at = parent.get(at)) {
    const f = byId.get(at)
    if (f == null) {
      break
    }
    const fw = where(f.callFrame.url, f.callFrame.functionName)
    if (fw.startsWith('src/')) {
      const l = label(f)
      if (!seen.has(l)) {
        seen.add(l)
        inclusive.set(l, (inclusive.get(l) ?? 0) + ms)
      }
    }
  }
}
const pct = (ms: number): string => `${(100 * ms / busy).toFixed(1)}%`
const perOp = (ms: number): string => ops == null ? '' : ` | ${(ms / ops).toFixed(2)}`
const head = ops == null ? '' : ' | ms/op'
const rule = ops == null ? '' : ' | ---'
console.log(`profile: ${((profile.endTime - profile.startTime) / 1000).toFixed(0)} ms, busy ${busy.toFixed(0)} ms, idle ${idle.toFixed(0)} ms${ops == null ? '' : `, ${ops} operations`}\n`)
console.log(`| self time by package / file | ms | share of busy${head} |\n| --- | --- | ---${rule} |`)
for (const [w, ms] of [...byWhere].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${w} | ${ms.toFixed(0)} | ${pct(ms)}${perOp(ms)} |`)
}
console.log(`\n| function (self time) | ms | share of busy${head} |\n| --- | --- | ---${rule} |`)
for (const [f, ms] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${f} | ${ms.toFixed(0)} | ${pct(ms)}${perOp(ms)} |`)
}
console.log(`\n| our function (inclusive time) | ms | share of busy${head} |\n| --- | --- | ---${rule} |`)
for (const [f, ms] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${f} | ${ms.toFixed(0)} | ${pct(ms)}${perOp(ms)} |`)
}

if (callers != null) {
  const stacks = new Map<string, number>()
  for (const [id, ms] of self) {
    const n = byId.get(id)
    if (n == null || n.callFrame.functionName !== callers) {
      continue
    }
    const frames: string[] = []
    for (let at = parent.get(id); at != null && frames.length < (depth ?? 6); at = parent.get(at)) {
      const f = byId.get(at)
      if (f == null) {
        break
      }
      // with --depth, node's own frames are passed over to reach the code that called into them
      if (depth == null || !label(f).includes('node: (built-ins)')) {
        frames.push(label(f))
      }
    }
    const k = frames.join(' < ')
    stacks.set(k, (stacks.get(k) ?? 0) + ms)
  }
  console.log(`\n| callers of ${callers} (self time) | ms | share of busy |\n| --- | --- | --- |`)
  for (const [k, ms] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`| ${k} | ${ms.toFixed(0)} | ${pct(ms)} |`)
  }
}
