/**
 * Runs fuzz inputs through `InboundHandler.answer` of a fuzz target and checks
 * after every input:
 * - it resolved with an answer that decodes under the same limits peers
 * apply, of the request's type, or with nothing; or it threw one of the
 * typed errors in {@link TYPED_ERRORS}. Anything else is a crash and fails
 * the run (fast-check then shrinks the input and prints seed and path);
 * and every `checkEvery` inputs and at the end:
 * - the record stores are within their bounds;
 * - at the end, every canary reads back identical.
 * Heap is measured after a forced GC once the target is warm, every
 * `checkEvery` inputs and at the end; more than `heapBound` above the warm
 * measurement fails the run. (Without the forced GCs V8 let collectable
 * garbage pile up in long runs: heapUsed reached 2.3 GB at 500 000 inputs
 * while a GC brought it back to about 20 MB.)
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import fc from 'fast-check'
import { decodeMessage } from '../../src/libp2p/handler.ts'
import { inputs, makePool } from './inputs.ts'
import { createTarget, isTyped, lostCanaries } from './target.ts'
import type { Target, TargetOptions } from './target.ts'

export interface FuzzOptions {
  count: number
  seed: number
  target?: TargetOptions
  /** store bounds and heap are checked every this many inputs */
  checkEvery?: number
  /** most heap growth (bytes, after GC) allowed over the warm measurement; default 64 MiB */
  heapBound?: number
  onProgress?(done: number, stats: FuzzStats): void
}

export interface FuzzStats {
  seed: number
  inputs: number
  answered: number
  noAnswer: number
  /** typed errors by name */
  errors: Record<string, number>
  byFamily: Record<string, number>
  crashes: number
  ms: number
  inputsPerSecond: number
  heapBefore: number
  heapAfter: number
  /** largest heap after GC at any check */
  heapMax: number
  /** largest resident set size seen (checked every `checkEvery` inputs) */
  peakRss: number
  lostCanaries: number
  stores: { providerKeys: number, providerRecords: number, values: number }
  limits: { providerKeys: number, providerRecords: number, values: number }
}

export class FuzzCrashError extends Error {
  name = 'FuzzCrashError'
  code = 'ERR_FUZZ_CRASH'
}

function gcFunction (): () => void {
  const exposed = (globalThis as any).gc
  if (typeof exposed === 'function') {
    return exposed
  }
  setFlagsFromString('--expose_gc')
  return runInNewContext('gc')
}

async function heapUsed (gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise(resolve => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

async function storeSizes (target: Target): Promise<FuzzStats['stores']> {
  const p = await target.providers.size()
  return { providerKeys: p.keys, providerRecords: p.records, values: await target.values.size() }
}

function checkBounds (stores: FuzzStats['stores'], limits: FuzzStats['limits']): void {
  if (stores.providerKeys > limits.providerKeys || stores.providerRecords > limits.providerRecords || stores.values > limits.values) {
    throw new FuzzCrashError(`store over its bound: ${JSON.stringify(stores)} vs ${JSON.stringify(limits)}`)
  }
}

export async function runFuzz (options: FuzzOptions): Promise<FuzzStats> {
  const gc = gcFunction()
  const target = await createTarget(options.target)
  try {
    const pool = await makePool(target)
    const arb = inputs(target, pool)
    const limits = {
      providerKeys: target.providers.config.maxKeys,
      providerRecords: target.providers.config.maxKeys * target.providers.config.maxProvidersPerKey,
      values: target.values.config.maxRecords
    }
    const stats: FuzzStats = {
      seed: options.seed,
      inputs: 0,
      answered: 0,
      noAnswer: 0,
      errors: {},
      byFamily: {},
      crashes: 0,
      ms: 0,
      inputsPerSecond: 0,
      heapBefore: 0,
      heapAfter: 0,
      heapMax: 0,
      peakRss: 0,
      lostCanaries: 0,
      stores: await storeSizes(target),
      limits
    }
    const checkEvery = options.checkEvery ?? 10_000
    const heapBound = options.heapBound ?? 64 * 1024 * 1024
    const warmup = Math.min(1000, Math.floor(options.count / 10))
    let started = performance.now()
    // one signal for every input (a timer per input would hold ~10 s of them alive)
    const signal = new AbortController().signal
    stats.peakRss = process.memoryUsage().rss

    await fc.assert(fc.asyncProperty(arb, async input => {
      if (stats.inputs === warmup) {
        stats.heapBefore = await heapUsed(gc)
        started = performance.now()
      }
      stats.inputs++
      stats.byFamily[input.family] = (stats.byFamily[input.family] ?? 0) + 1
      const peer = target.senders[input.sender]
      let answer: Uint8Array | undefined
      try {
        answer = await target.handler.answer(peer, input.bytes, undefined, { signal })
      } catch (err: any) {
        if (!isTyped(err)) {
          stats.crashes++
          throw new FuzzCrashError(`untyped ${err?.name}: ${err?.message} for ${Buffer.from(input.bytes.subarray(0, 256)).toString('hex')}`, { cause: err })
        }
        stats.errors[err.name] = (stats.errors[err.name] ?? 0) + 1
        return
      }
      if (answer == null) {
        stats.noAnswer++
      } else {
        const request = decodeMessage(input.bytes)
        let response
        try {
          response = decodeMessage(answer)
        } catch (err: any) {
          stats.crashes++
          throw new FuzzCrashError(`answer does not decode: ${err.message}`)
        }
        if (response.type !== request.type) {
          stats.crashes++
          throw new FuzzCrashError(`answer of type ${response.type} to a ${request.type}`)
        }
        stats.answered++
      }
      if (stats.inputs % checkEvery === 0) {
        stats.peakRss = Math.max(stats.peakRss, process.memoryUsage().rss)
        checkBounds(await storeSizes(target), limits)
        if (stats.inputs > warmup) {
          const heap = await heapUsed(gc)
          stats.heapMax = Math.max(stats.heapMax, heap)
          if (heap - stats.heapBefore > heapBound) {
            throw new FuzzCrashError(`heap grew from ${stats.heapBefore} to ${heap} bytes after ${stats.inputs} inputs`)
          }
        }
        options.onProgress?.(stats.inputs, stats)
      }
    }), { seed: options.seed, numRuns: options.count, endOnFailure: true })

    stats.ms = performance.now() - started
    stats.inputsPerSecond = Math.round((stats.inputs - warmup) / (stats.ms / 1000))
    stats.stores = await storeSizes(target)
    checkBounds(stats.stores, limits)
    stats.lostCanaries = (await lostCanaries(target)).length
    stats.heapAfter = await heapUsed(gc)
    stats.heapMax = Math.max(stats.heapMax, stats.heapAfter)
    return stats
  } finally {
    await target.stop()
  }
}
