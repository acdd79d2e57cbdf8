/* eslint-disable no-console */
/**
 * `npm run crash -- --runs 20 --seed S`: SIGKILLs a priority-dht node on
 * datastore-level `--runs` times at seeded random moments (during
 * provideMany, republish sweeps and peer-value saves), checks the datastore
 * after each kill and the republishing after the last restart; see
 * test/crash/harness.ts. Prints one line per run and a summary; exits 1
 * unless every restart was clean, nothing was lost and every key reported
 * done was republished.
 */
import { runCrashes } from '../test/crash/harness.ts'

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}

const runs = arg('runs', 20)
const seed = arg('seed', Math.floor(Math.random() * 2 ** 31))
console.log(`crash: ${runs} kills, seed ${seed}`)
const started = Date.now()
const s = await runCrashes({ runs, seed, log: line => { console.log(`  ${line}`) } })
const byMode = (mode: string): number => s.results.filter(r => r.mode === mode).length
console.log(`runs ${s.runs} (${byMode('provide')} during provideMany, ${byMode('republish')} during republish sweeps, ${byMode('peer-values')} during peer-value saves), clean restarts ${s.cleanRestarts}, records checked ${s.recordsChecked}, reported done ${s.reported}, lost ${s.lost}, republished after the last restart ${s.republished} of ${s.provides}, ${((Date.now() - started) / 1000).toFixed(1)} s`)
process.exit(s.cleanRestarts === s.runs && s.lost === 0 && s.republished === s.provides ? 0 : 1)
