/**
 * Command line for the simulator:
 *
 * ```sh
 * npx node --experimental-transform-types --no-warnings src/sim/cli.ts --nodes 10000 --undialable 0.45 --lookups 500 --seed 1 --out sim-results/run.json
 * ```
 *
 * Prints progress to stderr on long runs, a summary table to stdout, and
 * writes everything (config, summary, per-lookup records, trace hash, wall
 * time, peak RSS) as JSON to `--out`. `--help` lists the options.
 *
 * This is the only simulator file that reads the wall clock: to report how
 * long phases took. Nothing it measures feeds back into the simulation.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { parseArgs } from 'node:util'
import { validateLookupConfig } from '../core/query/config.ts'
import { stripUndefined } from '../core/routing-table/config.ts'
import { bootstrap, createWorld, runBulk, runLive, runLookups, runRecords } from './experiment.ts'
import { formatRecordSummary, summarizeRecords } from './records.ts'
import { formatSummary, formatTable, summarize } from './report.ts'
import { cdfSvg, lineSvg } from './svg.ts'
import type { SimDurabilityOptions } from './durability.ts'
import type { ExperimentOptions } from './experiment.ts'
import type { LiveGroup, LiveSample } from './live.ts'
import type { RecordOpRecord } from './records.ts'
import type { LookupRecord } from './report.ts'
import type { World } from './world.ts'

const USAGE = `usage: cli.ts [options]
  --nodes N             nodes in the network (default 1000)
  --seed N              random seed (default 1)
  --lookups N           random-key lookups to run (default 500)
  --interval MS         virtual ms between lookup starts (default 100)
  --initiators any|dialable  who starts lookups (default any)
  --publishers N        lookups come from N fixed nodes in turn (default 0: a random node each time)
  --undialable P        share of undialable nodes (default 0.45)
  --announcing P        share of the undialable nodes that announce the DHT protocol anyway (default 0)
  --dial-timeout MS     virtual ms before a dial to an undialable node fails (default 5000)
  --loss P              probability a message is lost (default 0)
  --churn P             share of dialable nodes that go offline and come back (default 0)
  --session-median MS   median session and absence of a churning node (default 1800000)
  --depart-rate R       share of nodes that leave for good per virtual hour, exponentially (default 0)
  --join-rate R         live scenario: share of nodes that join per virtual hour, arriving over the run (default: the depart rate, so the size stays about steady)
  --rtt-median MS       median round-trip time (default 100)
  --rtt-p95 MS          95th percentile round-trip time (default 300)
  --bootstrap seed|join seeded tables (fast, default) or nodes joining with real lookups (slow)
  --clean-tables        seeded tables list dialable nodes only (default: undialable ones too)
  --upgraded            adopters start from a classic node's seeded table, undialable peers included (default: the state their admission converges to)
  --join-duration MS    virtual ms over which nodes join (default 300000)
  --eager               build every node up front instead of on first contact
  --k N                 bucket size and lookup result size (default 20)
  --alpha N             requests in flight per lookup (default 3)
  --disjoint-paths N    disjoint paths of the get and findProviders lookups of priority-dht nodes (default 3, as the library; classic nodes: 1)
  --scenario lookups|records|all|bulk|live  random-key lookups, records (provide, findProviders, put, get), both in turn (default all), a bulk provide, or a live network sampled over time (use with --eager)
  --hours H             live scenario: virtual hours to run (default 2)
  --sample-minutes M    live scenario: virtual minutes between samples (default 10)
  --probes N            live scenario: probe lookups per sample interval (default 50)
  --provides-per-interval N  live scenario: provides per sample interval from random online nodes (default 5)
  --findable-sample N   live scenario: records sought at each sample, among those published and not expired (default 50)
  --republish-hours H   records and live scenarios: a publisher republishes each record H virtual hours (plus up to a tenth) after publishing it; 0: never (default 22)
  --puts-per-interval N live scenario: value puts per sample interval from random online nodes, sought by get (default 0)
  --handover off|own|any  live scenario: hand records to peers newly in a holder's table: own = what the wire allows (values, our own provider records; default), any = provider records of others too (a what-if), off
  --handover-senders N  live scenario: how many of the nearest holders hand a record over (default 1)
  --handover-rate N     live scenario: records a node hands over per minute (default 600)
  --store-on-get on|off live scenario: a get stores the best value at the closest peer that answered without it (default on)
  --held-republish-minutes M  live scenario: holders re-publish a value M minutes after anyone last stored it with them; 0: off (default 60)
  --record-ttl-hours H  a record expires at a node H virtual hours after it was stored or refreshed there (default 48)
  --bulk-keys N         bulk scenario: keys one publisher provides at once (default 1000)
  --lookup-concurrency N  bulk scenario: region lookups at once (default 8, as provideMany)
  --no-refresh          no bucket refresh (long runs: every built node refreshes each 10 virtual minutes)
  --provides N          records scenario: provider records to announce (default 200)
  --puts N              records scenario: values to put (default 100)
  --publish-interval MS virtual ms between two publications (default 500)
  --find-after MS       virtual ms between the last publication and the first retrieval (default 0)
  --adoption P          with the stack on: share of nodes running priority-dht, the rest classic (default 1); adopters and classic nodes reported apart
  --stack on|off|both   peer stack on, off (every peer equal), or both in turn on the same seed (default both)
  --out FILE            write the JSON results here, and latency CDFs (stack off and on) as FILE.svg (lookups) and FILE.records.svg
  --quiet               no progress on stderr
  --help`

const num = (v: string | undefined): number | undefined => v === undefined ? undefined : Number(v)

const OPTIONS = {
  nodes: { type: 'string' },
  seed: { type: 'string' },
  lookups: { type: 'string' },
  interval: { type: 'string' },
  initiators: { type: 'string' },
  publishers: { type: 'string' },
  undialable: { type: 'string' },
  announcing: { type: 'string' },
  'dial-timeout': { type: 'string' },
  loss: { type: 'string' },
  churn: { type: 'string' },
  'session-median': { type: 'string' },
  'depart-rate': { type: 'string' },
  'join-rate': { type: 'string' },
  'rtt-median': { type: 'string' },
  'rtt-p95': { type: 'string' },
  bootstrap: { type: 'string' },
  'clean-tables': { type: 'boolean' },
  upgraded: { type: 'boolean' },
  'join-duration': { type: 'string' },
  eager: { type: 'boolean' },
  adoption: { type: 'string' },
  k: { type: 'string' },
  alpha: { type: 'string' },
  'disjoint-paths': { type: 'string' },
  stack: { type: 'string' },
  scenario: { type: 'string' },
  'bulk-keys': { type: 'string' },
  'lookup-concurrency': { type: 'string' },
  'no-refresh': { type: 'boolean' },
  provides: { type: 'string' },
  puts: { type: 'string' },
  'publish-interval': { type: 'string' },
  'find-after': { type: 'string' },
  hours: { type: 'string' },
  'sample-minutes': { type: 'string' },
  probes: { type: 'string' },
  'provides-per-interval': { type: 'string' },
  'findable-sample': { type: 'string' },
  'republish-hours': { type: 'string' },
  'record-ttl-hours': { type: 'string' },
  'puts-per-interval': { type: 'string' },
  handover: { type: 'string' },
  'handover-senders': { type: 'string' },
  'handover-rate': { type: 'string' },
  'store-on-get': { type: 'string' },
  'held-republish-minutes': { type: 'string' },
  out: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean' }
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values']

/** The experiment the flags describe, with the modes checked */
function experimentOptions (values: Values): { base: ExperimentOptions, bootstrapMode: 'seed' | 'join', stackMode: 'on' | 'off' | 'both', scenario: 'lookups' | 'records' | 'all' | 'bulk' | 'live' } {
  const bootstrapMode = values.bootstrap ?? 'seed'
  if (bootstrapMode !== 'seed' && bootstrapMode !== 'join') {
    throw new RangeError(`--bootstrap must be seed or join, got ${bootstrapMode}`)
  }
  const stackMode = values.stack ?? 'both'
  if (stackMode !== 'on' && stackMode !== 'off' && stackMode !== 'both') {
    throw new RangeError(`--stack must be on, off or both, got ${stackMode}`)
  }
  const scenario = values.scenario ?? 'all'
  if (scenario !== 'lookups' && scenario !== 'records' && scenario !== 'all' && scenario !== 'bulk' && scenario !== 'live') {
    throw new RangeError(`--scenario must be lookups, records, all, bulk or live, got ${scenario}`)
  }
  const k = num(values.k)
  const hours = values.hours === undefined ? undefined : Number(values.hours)
  const joinRate = num(values['join-rate']) ?? (scenario === 'live' ? num(values['depart-rate']) : undefined)
  if (joinRate !== undefined && joinRate > 0 && scenario !== 'live') {
    throw new RangeError('--join-rate needs --scenario live (nodes join over the live run)')
  }
  const base: ExperimentOptions = {
    world: {
      nodes: num(values.nodes) ?? 1000,
      seed: num(values.seed) ?? 1,
      eager: values.eager ?? false,
      adoption: num(values.adoption),
      adopterDisjointPaths: num(values['disjoint-paths']),
      recordTtl: hoursMs(values['record-ttl-hours']),
      network: {
        undialable: num(values.undialable),
        announcing: num(values.announcing),
        dialTimeout: num(values['dial-timeout']),
        loss: num(values.loss),
        churn: num(values.churn),
        sessionMedian: num(values['session-median']),
        departRate: num(values['depart-rate']),
        joinRate,
        joinWindow: joinRate === undefined ? undefined : (hours ?? 2) * 3_600_000,
        rttMedian: num(values['rtt-median']),
        rttP95: num(values['rtt-p95'])
      },
      coordinator: {
        refresh: values['no-refresh'] !== true,
        routingTable: { k },
        lookup: { k, alpha: num(values.alpha) }
      }
    },
    bootstrap: bootstrapMode,
    seedTables: { listUndialable: values['clean-tables'] !== true, upgraded: values.upgraded === true },
    join: { duration: num(values['join-duration']) },
    lookups: {
      lookups: num(values.lookups) ?? 500,
      interval: num(values.interval),
      initiators: values.initiators as 'any' | 'dialable' | undefined,
      publishers: num(values.publishers)
    },
    live: {
      duration: hours === undefined ? undefined : hours * 3_600_000,
      sampleEvery: values['sample-minutes'] === undefined ? undefined : Number(values['sample-minutes']) * 60_000,
      probes: num(values.probes),
      provides: num(values['provides-per-interval']),
      findableSample: num(values['findable-sample']),
      republishInterval: hoursMs(values['republish-hours']),
      puts: num(values['puts-per-interval']),
      durability: durabilityOptions(values)
    },
    bulk: {
      keys: num(values['bulk-keys']),
      lookupConcurrency: num(values['lookup-concurrency'])
    },
    records: {
      provides: num(values.provides),
      puts: num(values.puts),
      interval: num(values['publish-interval']),
      findAfter: num(values['find-after']),
      publishers: num(values.publishers),
      initiators: values.initiators as 'any' | 'dialable' | undefined,
      republishInterval: hoursMs(values['republish-hours'])
    }
  }
  return { base, bootstrapMode, stackMode, scenario }
}

function main (): void {
  const { values } = parseArgs({ options: OPTIONS })
  if (values.help === true) {
    process.stdout.write(USAGE + '\n')
    return
  }
  const { base, bootstrapMode, stackMode, scenario } = experimentOptions(values)

  const quiet = values.quiet === true
  const t0 = performance.now()
  let lastReport = t0
  const log = (msg: string): void => {
    if (!quiet) {
      process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`)
    }
  }
  const progress = {
    onProgress: (phase: string, done: number, total: number, w: { now: number, queued: number }): void => {
      const t = performance.now()
      if (t - lastReport >= 2000) {
        lastReport = t
        log(`${phase} ${done}/${total}, virtual ${(w.now / 1000).toFixed(1)} s, ${w.queued} queued, rss ${mb(process.memoryUsage().rss)} MB`)
      }
    }
  }

  const runs: Array<Record<string, unknown>> = []
  const modes = stackMode === 'both' ? [false, true] : [stackMode === 'on']
  for (const stack of modes) {
    const options: ExperimentOptions = { ...base, world: { ...base.world, peerStack: stack } }
    process.stdout.write(`== peer stack ${stack ? 'on' : 'off (every peer equal)'} ==\n`)
    runs.push(runOne(options, stack))
  }

  function runOne (options: ExperimentOptions, stack: boolean): Record<string, unknown> {
    const t0 = performance.now()
    log(`building ${options.world.nodes} nodes (${bootstrapMode} bootstrap${options.world.eager === true ? ', eager' : ''})`)
    const world = createWorld(options)
    const tCreated = performance.now()
    bootstrap(world, options, progress)
    const tBootstrapped = performance.now()
    const bootVirtual = world.now
    const built = world.config.eager || bootstrapMode === 'join' ? `${world.stats.nodesBuilt} nodes built` : 'nodes are built on first contact'
    log(`bootstrap done (${built})`)
    const lookups = scenario === 'lookups' || scenario === 'all' ? runLookups(world, options, progress) : undefined
    const tLookups = performance.now()
    if (lookups != null) {
      process.stdout.write(formatSummary(lookups.summary) + '\n\n')
    }
    const lookupsVirtual = world.now - bootVirtual
    const records = scenario === 'records' || scenario === 'all' ? runRecords(world, options, progress) : undefined
    if (records != null) {
      process.stdout.write(formatRecordSummary(records.summary) + '\n\n')
    }
    printByAdoption(world, lookups?.records, records?.ops)
    const bulk = scenario === 'bulk' ? runBulk(world, options, progress) : undefined
    const live = scenario === 'live' ? runLive(world, options, progress) : undefined
    if (live != null) {
      process.stdout.write(formatLive(live.samples) + '\n\n')
    }
    const tDone = performance.now()
    if (bulk != null) {
      process.stdout.write(formatTable([
        ['bulk provide', 'keys', 'virtual time (s)', 'lookups / key', 'deliveries', 'pooled exchanges', 'dials', 'undialable dials', 'keys provided', 'sample found'],
        ['', String(bulk.keys), (bulk.durationMs / 1000).toFixed(1), (bulk.lookups / bulk.keys).toFixed(3), String(bulk.deliveries), String(bulk.batches), String(bulk.dials), String(bulk.undialableDials), String(bulk.provided), `${bulk.found}/${bulk.sampled}`]
      ]) + '\n\n')
    }
    const peakRss = process.resourceUsage().maxRSS * 1024
    const traceHash = world.traceHash()

    const wall = {
      createMs: Math.round(tCreated - t0),
      bootstrapMs: Math.round(tBootstrapped - tCreated),
      lookupsMs: Math.round(tLookups - tBootstrapped),
      recordsMs: Math.round(tDone - tLookups),
      totalMs: Math.round(tDone - t0)
    }
    const s = world.stats
    process.stdout.write(formatTable([
      ['nodes', String(world.size), 'dialable', String(world.network.dialableNodes)],
      ['nodes built', String(s.nodesBuilt), 'events', String(s.events)],
      ['requests (all)', String(s.requests), 'pings', String(s.pings)],
      ['record deliveries', String(s.recordMessages), 'lost messages', String(s.lostMessages)],
      ['dials', String(s.dials), 'to undialable', String(s.undialableDials)],
      ['contacts to offline nodes', String(s.offlineContacts), 'churn', String(world.config.network.churn)],
      ['virtual time (s)', (world.now / 1000).toFixed(1), 'of it bootstrap', (bootVirtual / 1000).toFixed(1)],
      ['wall time (s)', (wall.totalMs / 1000).toFixed(1), 'peak rss (MB)', String(mb(peakRss))],
      ['trace hash', traceHash, 'seed', String(world.config.seed)]
    ]) + '\n')
    return {
      peerStack: stack,
      config: { world: world.config, bootstrap: bootstrapMode, seedTables: options.seedTables, join: options.join, scenario, lookups: options.lookups, records: records?.options, bulk: options.bulk },
      traceHash,
      summary: lookups?.summary,
      records: records == null ? undefined : { summary: records.summary, ops: records.ops },
      bulk,
      live: live?.samples,
      stats: s,
      virtualTimeMs: world.now,
      bootstrapVirtualMs: bootVirtual,
      lookupsVirtualMs: lookupsVirtual,
      wallMs: wall,
      memory: { peakRssBytes: peakRss, finalRssBytes: process.memoryUsage().rss },
      lookups: lookups?.records
    }
  }

  if (values.out !== undefined) {
    mkdirSync(dirname(values.out), { recursive: true })
    writeFileSync(values.out, JSON.stringify({ version: 3, runs }, null, 2) + '\n')
    process.stderr.write(`wrote ${values.out}\n`)
    const stem = values.out.replace(/\.json$/, '')
    const where = `${base.world.nodes} nodes, ${Math.round((base.world.network?.undialable ?? 0.45) * 100)}% undialable`
    const label = (r: Record<string, unknown>): string => `stack ${r.peerStack === true ? 'on' : 'off'}`
    if (scenario === 'lookups' || scenario === 'all') {
      const series = runs.map(r => ({ label: `peer ${label(r)}`, values: (r.lookups as Array<{ latency: number }>).map(l => l.latency) }))
      writeFileSync(`${stem}.svg`, cdfSvg(`${where}: lookup latency CDF`, series))
      process.stderr.write(`wrote ${stem}.svg\n`)
    }
    if (scenario === 'live') {
      const hours = (t: number): number => t / 3_600_000
      const series = (pick: (g: LiveGroup) => number): Array<{ label: string, points: Array<[number, number]> }> => runs.flatMap(r => {
        const samples = r.live as LiveSample[]
        return (['classic', 'adopters'] as const).filter(g => samples.some(x => x[g] != null)).map(g => ({
          label: `${g === 'classic' ? 'classic nodes' : 'adopters'}, ${label(r)}`,
          points: samples.map(x => [hours(x.at), x[g] == null ? NaN : pick(x[g] as LiveGroup)] as [number, number])
        }))
      })
      writeFileSync(`${stem}.undialable-entries.svg`, lineSvg(`${where}: undialable share of routing table entries`, 'virtual hours', 'share of entries', series(g => g.undialableShare)))
      writeFileSync(`${stem}.undialable-dials.svg`, lineSvg(`${where}: undialable dials per lookup`, 'virtual hours', 'dials per lookup', series(g => g.undialableDialsPerLookup)))
      writeFileSync(`${stem}.lookup-p50.svg`, lineSvg(`${where}: lookup latency p50`, 'virtual hours', 'virtual seconds', series(g => g.latencyP50 / 1000)))
      writeFileSync(`${stem}.provide-p50.svg`, lineSvg(`${where}: provide latency p50 (at quorum)`, 'virtual hours', 'virtual seconds', series(g => g.provideP50 / 1000)))
      writeFileSync(`${stem}.findable.svg`, lineSvg(`${where}: share of the records sought that were found`, 'virtual hours', 'share found', series(g => g.findable)))
      process.stderr.write(`wrote ${stem}.undialable-entries.svg, ${stem}.undialable-dials.svg, ${stem}.lookup-p50.svg, ${stem}.provide-p50.svg, ${stem}.findable.svg\n`)
    }
    if (scenario === 'records' || scenario === 'all') {
      const series = []
      for (const kind of ['provide', 'find-providers'] as const) {
        for (const r of runs) {
          const ops = (r.records as { ops: Array<{ kind: string, latency: number }> }).ops
          series.push({ label: `${kind}, ${label(r)}`, values: ops.filter(o => o.kind === kind).map(o => o.latency) })
        }
      }
      writeFileSync(`${stem}.records.svg`, cdfSvg(`${where}: provide and findProviders latency CDF`, series))
      process.stderr.write(`wrote ${stem}.records.svg\n`)
    }
  }
}

/** With mixed adoption: the lookup and operation tables for adopters and classic nodes apart */
function printByAdoption (world: World, lookups: readonly LookupRecord[] | undefined, ops: readonly RecordOpRecord[] | undefined): void {
  if (!world.config.peerStack || world.config.adoption <= 0 || world.config.adoption >= 1) {
    return
  }
  const k = validateLookupConfig(world.config.coordinator.lookup).k
  for (const adopter of [true, false]) {
    const who = adopter ? 'adopters (priority-dht)' : 'classic nodes'
    if (lookups != null) {
      process.stdout.write(`-- lookups from ${who} --\n` + formatSummary(summarize(lookups.filter(r => r.adopter === adopter), k)) + '\n\n')
    }
    if (ops != null) {
      process.stdout.write(`-- operations from ${who} --\n` + formatRecordSummary(summarizeRecords(ops.filter(o => o.adopter === adopter))) + '\n\n')
    }
  }
}

/** The live scenario's samples as a table, a row per interval */
/** The live scenario's durability flags */
function durabilityOptions (values: Values): Partial<SimDurabilityOptions> {
  const onOff = (name: string, v: string | undefined): boolean | undefined => {
    if (v === undefined) {
      return undefined
    }
    if (v !== 'on' && v !== 'off') {
      throw new RangeError(`--${name} must be on or off, got ${v}`)
    }
    return v === 'on'
  }
  const held = num(values['held-republish-minutes'])
  return stripUndefined({
    handover: values.handover as SimDurabilityOptions['handover'] | undefined,
    handoverSenders: num(values['handover-senders']),
    handoverRate: num(values['handover-rate']),
    storeOnGet: onOff('store-on-get', values['store-on-get']),
    heldRepublish: held === undefined ? undefined : held > 0,
    heldRepublishInterval: held === undefined || held === 0 ? undefined : held * 60_000
  })
}

function formatLive (samples: readonly LiveSample[]): string {
  const groups = (['classic', 'adopters'] as const).filter(g => samples.some(x => x[g] != null))
  const header = ['virtual min', 'online', 'joined', 'requests/node/min', 'record msgs/node/min', 'handover', 'store on get', 'corrections', 'held republish', 'refreshes', 'records', 'republishes']
  for (const g of groups) {
    header.push(`${g}: undialable entries`, 'offline entries', 'lookups', 'p50 ms', 'p95 ms', 'recall', 'undialable dials/lookup', 'undialable dials/node/min', 'provides', 'provide p50 ms', 'provide p95 ms', 'findable')
  }
  const rows = samples.map(x => {
    const d = x.durability
    const row = [String(Math.round(x.at / 60_000)), String(x.online), String(x.joined), x.requestsPerNodeMinute.toFixed(1), x.recordMessagesPerNodeMinute.toFixed(2),
      d.handover.toFixed(3), d.storeOnGet.toFixed(3), d.corrections.toFixed(3), d.heldRepublish.toFixed(3), String(x.refreshLookups), String(x.records), String(x.republishes)]
    for (const g of groups) {
      const v = x[g] as LiveGroup
      row.push(`${(100 * v.undialableShare).toFixed(1)} %`, `${(100 * v.offlineShare).toFixed(1)} %`, String(v.lookups), String(v.latencyP50), String(v.latencyP95), `${(100 * v.recall).toFixed(1)} %`, v.undialableDialsPerLookup.toFixed(2), v.undialableDialsPerNodeMinute.toFixed(2),
        String(v.provides), String(v.provideP50), String(v.provideP95), v.sought === 0 ? '-' : `${v.found}/${v.sought}`)
    }
    return row
  })
  return formatTable([header, ...rows])
}

/** A number of hours given on the command line, in ms */
function hoursMs (v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v) * 3_600_000
}

function mb (bytes: number): number {
  return Math.round(bytes / 1e6)
}

try {
  main()
} catch (err: any) {
  process.stderr.write(`${err.name ?? 'Error'}: ${err.message}\n\n${USAGE}\n`)
  process.exitCode = 1
}
