/**
 * One experiment, in phases a driver (the CLI, a test) runs in order:
 * `createWorld` (keys, dialability, the seeded tables if chosen),
 * `bootstrap` (the join phase, if chosen), then the scenarios on the same
 * world: `runLookups` (random-key lookups) and `runRecords` (provide,
 * findProviders, put, get).
 * `runExperiment` runs all three. Each phase is a function of the options
 * and the seed only; nothing here reads the wall clock.
 *
 * Random streams: every consumer gets its own generator derived from the
 * seed by hashing (world keys and dialability inside `World`; the join
 * phase; the scenario), so adding draws to one never shifts another.
 */
import { SeededRandom } from '../core/env.ts'
import { validateLookupConfig } from '../core/query/config.ts'
import { BulkProvide } from './bulk.ts'
import { hash32 } from './hash.ts'
import { JoinBootstrap } from './join.ts'
import { LiveRun } from './live.ts'
import { RecordOps, summarizeRecords } from './records.ts'
import { summarize } from './report.ts'
import { RandomLookups } from './scenarios.ts'
import { TableSeeder } from './seed-tables.ts'
import { World } from './world.ts'
import type { BulkOptions, BulkResult } from './bulk.ts'
import type { WorldConfig } from './config.ts'
import type { JoinOptions } from './join.ts'
import type { LiveOptions, LiveSample } from './live.ts'
import type { RecordOpRecord, RecordOpsOptions, RecordSummary } from './records.ts'
import type { LookupRecord, LookupSummary } from './report.ts'
import type { RandomLookupsOptions } from './scenarios.ts'
import type { SeedOptions } from './seed-tables.ts'
import type { Key } from '../core/key.ts'

export interface ExperimentOptions {
  world: Partial<WorldConfig>
  /**
   * `seed`: tables filled directly with uniform samples of each bucket's
   * range (fast; see `seed-tables.ts`). `join`: nodes join one by one and
   * build their tables with real lookups (slow; see `join.ts`).
   *
   * @default 'seed'
   */
  bootstrap: 'seed' | 'join'
  seedTables: Partial<SeedOptions>
  join: Partial<JoinOptions>
  lookups: Partial<RandomLookupsOptions>
  records: Partial<RecordOpsOptions>
  bulk: Partial<BulkOptions>
  live: Partial<LiveOptions>
}

export interface ExperimentResult {
  world: World
  records: LookupRecord[]
  summary: LookupSummary
  traceHash: string
}

export interface LiveResult {
  world: World
  samples: LiveSample[]
  /** The scenario's options, defaults filled in */
  options: LiveOptions
  traceHash: string
}

export interface RecordsResult {
  world: World
  ops: RecordOpRecord[]
  /** The published keys, in publication order */
  keys: Key[]
  /** The scenario's options, defaults filled in */
  options: RecordOpsOptions
  summary: RecordSummary
  traceHash: string
}

export interface PhaseProgress {
  /** Called now and then during long phases */
  onProgress?(phase: Phase, done: number, total: number, world: World): void
}

const SALT_JOIN = 0x6a6f696e
const SALT_LOOKUPS = 0x6c6f6f6b
const SALT_RECORDS = 0x7265636f
const SALT_BULK = 0x62756c6b
const SALT_LIVE = 0x6c697665

/** Builds the world; with the seeded bootstrap, nodes get their tables as they are built */
export function createWorld (options: Partial<ExperimentOptions>): World {
  const world = new World(options.world)
  if ((options.bootstrap ?? 'seed') === 'seed') {
    new TableSeeder(world, options.seedTables).install()
  } else if (world.config.eager) {
    throw new RangeError('eager building needs the seeded bootstrap (joining nodes are built when they join)')
  }
  if (world.config.eager) {
    world.buildAll()
  }
  return world
}

/** Runs the join phase when the join bootstrap was chosen (no-op for seeded tables) */
export function bootstrap (world: World, options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): void {
  if ((options.bootstrap ?? 'seed') !== 'join') {
    return
  }
  const join = new JoinBootstrap(world, options.join ?? {}, new SeededRandom(hash32(world.config.seed, SALT_JOIN)))
  join.start()
  world.run({
    until: () => join.done,
    onProgress: w => progress.onProgress?.('bootstrap', join.joinedNodes, w.size, w)
  })
  if (!join.done) {
    throw new Error('the join phase ran out of events before every node joined')
  }
}

type Phase = 'bootstrap' | 'lookups' | 'records' | 'bulk' | 'live'

/**
 * Starts a scenario and runs the world until it is done; throws when the
 * events run out first. `counts` says how far it is, for progress.
 */
function drive (world: World, phase: Phase, scenario: { done: boolean, start(): void }, counts: () => [number, number], progress: PhaseProgress): void {
  scenario.start()
  world.run({
    until: () => scenario.done,
    onProgress: w => progress.onProgress?.(phase, ...counts(), w)
  })
  if (!scenario.done) {
    throw new Error(`the ${phase} scenario ran out of events before it finished`)
  }
}

/** Runs the random-lookups scenario from the world's current time */
export function runLookups (world: World, options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): ExperimentResult {
  const scenario = new RandomLookups(world, options.lookups ?? {}, new SeededRandom(hash32(world.config.seed, SALT_LOOKUPS)))
  drive(world, 'lookups', scenario, () => [scenario.finished, scenario.options.lookups], progress)
  const k = validateLookupConfig(world.config.coordinator.lookup).k
  return { world, records: scenario.records, summary: summarize(scenario.records, k), traceHash: world.traceHash() }
}

/** Runs the records scenario (publish, then retrieve) from the world's current time */
export function runRecords (world: World, options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): RecordsResult {
  const scenario = new RecordOps(world, options.records ?? {}, new SeededRandom(hash32(world.config.seed, SALT_RECORDS)))
  drive(world, 'records', scenario, () => [scenario.finishedOps, scenario.total], progress)
  return { world, ops: scenario.ops, keys: scenario.keys, options: scenario.options, summary: summarizeRecords(scenario.ops), traceHash: world.traceHash() }
}

/** Runs the live scenario (maintenance plus probe lookups, sampled) from the world's current time */
export function runLive (world: World, options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): LiveResult {
  const scenario = new LiveRun(world, options.live ?? {}, new SeededRandom(hash32(world.config.seed, SALT_LIVE)))
  drive(world, 'live', scenario, () => [scenario.progress, scenario.total], progress)
  return { world, samples: scenario.samples, options: scenario.options, traceHash: world.traceHash() }
}

/** Runs the bulk-provide scenario (one publisher, many keys, then a sample sought) from the world's current time */
export function runBulk (world: World, options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): BulkResult {
  const scenario = new BulkProvide(world, options.bulk ?? {}, new SeededRandom(hash32(world.config.seed, SALT_BULK)))
  drive(world, 'bulk', scenario, () => [scenario.progress, scenario.options.keys], progress)
  return scenario.report
}

export function runExperiment (options: Partial<ExperimentOptions>, progress: PhaseProgress = {}): ExperimentResult {
  const world = createWorld(options)
  bootstrap(world, options, progress)
  return runLookups(world, options, progress)
}
