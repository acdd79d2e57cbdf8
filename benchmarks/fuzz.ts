/* eslint-disable no-console */
/**
 * `npm run fuzz -- --count N --seed S`: structure-aware fuzzing of the inbound
 * wire path (decode, limits, dispatch, record stores) through
 * `InboundHandler.answer`; see test/fuzz/. Prints the seed first, progress
 * every 100 000 inputs and a JSON summary; exits 1 on a crash, a lost
 * canary or a heap growth over `--heap-bound` MiB (default 64).
 */
import { runFuzz } from '../test/fuzz/run.ts'

function arg (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? fallback : Number(process.argv[i + 1])
}

const count = arg('count', 100_000)
const seed = arg('seed', Math.floor(Math.random() * 2 ** 31))
const heapBound = arg('heap-bound', 64) * 1024 * 1024
const mib = (n: number): string => (n / 1024 / 1024).toFixed(1)
console.log(`fuzz: ${count} inputs, seed ${seed}`)
const stats = await runFuzz({
  count,
  seed,
  checkEvery: 10_000,
  heapBound,
  onProgress: (done, s) => {
    if (done % 50_000 === 0) {
      const m = process.memoryUsage()
      console.log(`  ${done} inputs, ${Object.entries(s.errors).map(([k, v]) => `${k} ${v}`).join(', ')}, answered ${s.answered}, rss ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)} MiB, external ${mib(m.external)} MiB`)
    }
  }
})
console.log(JSON.stringify(stats, null, 2))
console.log(`inputs ${stats.inputs}, crashes ${stats.crashes}, ${stats.inputsPerSecond} inputs/s, heap after GC ${mib(stats.heapBefore)} -> ${mib(stats.heapAfter)} MiB, at most ${mib(stats.heapMax)} MiB (bound +${mib(heapBound)}), canaries lost ${stats.lostCanaries}, peak RSS ${mib(stats.peakRss)} MiB`)
if (stats.crashes > 0 || stats.lostCanaries > 0 || stats.heapMax - stats.heapBefore > heapBound) {
  process.exit(1)
}
process.exit(0)
