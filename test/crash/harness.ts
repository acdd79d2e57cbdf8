/**
 * Crash safety on datastore-level (issue #12): a child process (worker.ts)
 * runs one priority-dht node on a LevelDatastore in a temp dir, dialled to
 * six priority-dht peers in this process. It is SIGKILLed at seeded random
 * moments: during provideMany (and the IPNS puts between calls), during a
 * republish sweep (1 s interval), during peer-value saves (every 5 ms).
 * After each kill this process opens the same directory itself and checks:
 * the datastore opens; every provider record, republish entry, value record
 * and the saved peer values decode and validate; every key the child had
 * reported done (provideMany's onDelivered, a resolved put) is still there.
 * Then the child restarts on the directory and must schedule every
 * remembered key (`ready <reproviding>`). After the last kill a final run
 * (`verify`) must republish every key reported done to the peers within
 * its first two sweeps, and record that it did.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { SeededRandom } from '../../src/core/env.ts'
import { PeerStack } from '../../src/core/peer-stack/index.ts'
import { Record } from '../../src/generated/dht.ts'
import { decodeTime } from '../../src/records/datastore-utils.ts'
import { mergeValidators, validateRecord } from '../../src/records/validation.ts'
import { createOurNode, stopAll, waitForTables } from '../libp2p/fixtures/network.ts'
import type { WorkerArgs, WorkerMode } from './worker.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { PeerId } from '@libp2p/interface'
import type { ChildProcess } from 'node:child_process'

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
const MODES: WorkerMode[] = ['provide', 'republish', 'peer-values']
const PEERS = 6
/** a line the harness waits for longer than this is a hung worker */
const LINE_TIMEOUT = 30_000

export interface CrashOptions {
  runs: number
  seed: number
  /** progress lines (default: none) */
  log?(text: string): void
  /** skip the final republish check (tests of the checks themselves) */
  verify?: boolean
}

export interface RunResult {
  run: number
  mode: WorkerMode
  /** ms after the trigger line the kill came */
  delay: number
  /** what the restarted child said it schedules, and what the datastore holds */
  scheduled: number
  clean: boolean
  problems: string[]
}

export interface CrashSummary {
  runs: number
  cleanRestarts: number
  /** records decoded and validated over all inspections */
  recordsChecked: number
  /** keys reported done (provides and puts) over the whole run */
  reported: number
  /** reported keys missing at some inspection */
  lost: number
  /** keys reported done that the final run republished to a peer (of `reported` provides) */
  republished: number
  provides: number
  results: RunResult[]
}

interface Inspection {
  records: number
  provided: Set<string>
  problems: string[]
}

interface Seen {
  provided: Set<string>
  held: Set<string>
  values: Set<string>
}

const VALIDATORS = mergeValidators()

/** Throws unless `value` under `/dht/<parts>` is a record the node could have written */
async function check (parts: string[], value: Uint8Array, self: PeerId, seen: Seen): Promise<boolean> {
  if (parts[0] === 'providers') {
    if (parts.length !== 3) {
      throw new Error('not /dht/providers/<mh>/<peer>')
    }
    base32.decode(parts[1])
    peerIdFromString(parts[2])
    if (decodeTime(value) == null) {
      throw new Error('time is not 8 bytes')
    }
    if (parts[2] === self.toString()) {
      seen.held.add(parts[1])
    }
  } else if (parts[0] === 'provided') {
    base32.decode(parts[1])
    const at = value.byteLength === 8 ? new DataView(value.buffer, value.byteOffset, 8).getFloat64(0) : NaN
    if (!Number.isFinite(at) || at <= 0) {
      throw new Error('time is not a float64')
    }
    seen.provided.add(parts[1])
  } else if (parts[0] === 'record') {
    const record = Record.decode(value)
    if (record.key == null || record.value == null || !uint8ArrayEquals(record.key, base32.decode(parts[1]))) {
      throw new Error('record key does not match')
    }
    await validateRecord(VALIDATORS, record.key, record.value)
    seen.values.add(parts[1])
  } else if (parts[0] === 'peer-stack') {
    const saved = JSON.parse(new TextDecoder().decode(value))
    if (saved?.version !== 1 || !Array.isArray(saved.entries)) {
      throw new Error('not a version 1 save')
    }
    const accepted = new PeerStack().import(saved.entries, Date.now())
    if (accepted !== saved.entries.length) {
      throw new Error(`${saved.entries.length - accepted} of ${saved.entries.length} entries refused`)
    }
  } else {
    return false
  }
  return true
}

/** Reads every record the node keeps and says what does not decode or validate, and which reported keys are missing */
export async function inspect (ds: LevelDatastore, self: PeerId, done: Set<string>, puts: Set<string>): Promise<Inspection> {
  const problems: string[] = []
  const seen: Seen = { provided: new Set(), held: new Set(), values: new Set() }
  let records = 0
  for await (const { key, value } of ds.query({ prefix: '/dht/' })) {
    try {
      if (await check(key.toString().split('/').slice(2), value, self, seen)) {
        records++
      }
    } catch (err: any) {
      records++
      problems.push(`corrupt ${key.toString()}: ${err.message}`)
    }
  }
  for (const name of done) {
    if (!seen.provided.has(name)) {
      problems.push(`lost: ${name} reported done, not in /dht/provided`)
    }
    if (!seen.held.has(name)) {
      problems.push(`lost: ${name} reported done, no own provider record`)
    }
  }
  for (const name of puts) {
    if (!seen.values.has(name)) {
      problems.push(`lost: record ${name} reported put, not in /dht/record`)
    }
  }
  return { records, provided: seen.provided, problems }
}

interface Worker {
  child: ChildProcess
  /** resolves with the first line matching (already read or to come), rejects on exit or timeout */
  waitFor(test: (line: string) => boolean): Promise<string>
  exited: Promise<void>
}

function startWorker (args: WorkerArgs, onLine: (line: string) => void): Worker {
  const child = spawn(process.execPath, ['--experimental-transform-types', '--no-warnings', WORKER, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'pipe'] })
  const waiting = new Set<{ test(line: string): boolean, resolve(line: string): void, reject(err: Error): void }>()
  let stderr = ''
  child.stderr?.on('data', chunk => { stderr = (stderr + String(chunk)).slice(-4000) })
  const exited = new Promise<void>(resolve => {
    child.on('exit', (code, signal) => {
      for (const w of waiting) {
        w.reject(new Error(`worker exited (${code ?? signal}) ${stderr}`))
      }
      resolve()
    })
  })
  // every line of this worker (a few thousand over its life at most): a wait for a line that came already ends at once
  const lines: string[] = []
  createInterface({ input: child.stdout! }).on('line', line => {
    lines.push(line)
    onLine(line)
    for (const w of [...waiting]) {
      if (w.test(line)) {
        waiting.delete(w)
        w.resolve(line)
      }
    }
  })
  return {
    child,
    exited,
    waitFor: async test => new Promise((resolve, reject) => {
      const seen = lines.find(l => test(l))
      if (seen != null) {
        resolve(seen)
        return
      }
      const w = { test, resolve, reject }
      const timer = setTimeout(() => { waiting.delete(w); reject(new Error(`no matching line in ${LINE_TIMEOUT} ms ${stderr}`)) }, LINE_TIMEOUT)
      w.resolve = l => { clearTimeout(timer); resolve(l) }
      w.reject = e => { clearTimeout(timer); reject(e) }
      waiting.add(w)
    })
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Whether some peer holds a provider record of `name` from `self` added at or after `since` */
async function republishedTo (stores: MemoryDatastore[], name: string, self: PeerId, since: number): Promise<boolean> {
  for (const ds of stores) {
    try {
      const at = decodeTime(await ds.get(new Key(`/dht/providers/${name}/${self.toString()}`)))
      if (at != null && at >= since) {
        return true
      }
    } catch {
      // this peer holds no such record
    }
  }
  return false
}

export async function runCrashes (options: CrashOptions): Promise<CrashSummary> {
  const log = options.log ?? (() => {})
  const random = new SeededRandom(options.seed)
  const dir = await mkdtemp(join(tmpdir(), 'priority-dht-crash-'))
  const privateKey = await generateKeyPair('Ed25519')
  const self = peerIdFromPrivateKey(privateKey)
  const stores = Array.from({ length: PEERS }, () => new MemoryDatastore())
  const peers: OurNode[] = []
  const done = new Set<string>()
  const puts = new Set<string>()
  const results: RunResult[] = []
  let recordsChecked = 0
  let remembered = 0
  const lostKeys = new Set<string>()
  try {
    for (const ds of stores) {
      peers.push(await createOurNode({ kBucketSize: 4, providerQuota: { records: 10_000_000 } }, { datastore: ds }))
    }
    for (let i = 1; i < peers.length; i++) {
      await peers[i].dial(peers[0].getMultiaddrs())
    }
    await waitForTables(peers, 3)
    const base: Omit<WorkerArgs, 'mode' | 'run' | 'seed' | 'republishInterval'> = {
      dir,
      key: Buffer.from(privateKeyToProtobuf(privateKey)).toString('hex'),
      peers: peers.map(p => p.getMultiaddrs()[0].toString()),
      batch: 48,
      chunk: 16
    }
    const onLine = (line: string): void => {
      const [what, name] = line.split(' ')
      if (what === 'done') {
        done.add(name)
      } else if (what === 'put') {
        puts.add(name)
      }
    }
    for (let run = 0; run < options.runs; run++) {
      const mode = MODES[run % MODES.length]
      const worker = startWorker({ ...base, mode, run, seed: random.uint32(), republishInterval: mode === 'republish' ? 1000 : 60_000 }, onLine)
      const problems: string[] = []
      const ready = await worker.waitFor(l => l.startsWith('ready '))
      const scheduled = Number(ready.split(' ')[1])
      if (scheduled !== remembered) {
        problems.push(`restart scheduled ${scheduled} keys, the datastore remembers ${remembered}`)
      }
      // the moment: a seeded delay after the work of this mode has begun
      let delay: number
      if (mode === 'provide') {
        await worker.waitFor(l => l.startsWith('done '))
        delay = random.int(1500)
      } else if (mode === 'republish') {
        await worker.waitFor(l => l.startsWith('sweep '))
        delay = random.int(400)
      } else {
        await worker.waitFor(l => l === 'save 3')
        delay = random.int(60)
      }
      await sleep(delay)
      worker.child.kill('SIGKILL')
      await worker.exited
      const ds = new LevelDatastore(join(dir, 'ds'))
      try {
        await ds.open()
        const seen = await inspect(ds, self, done, puts)
        recordsChecked += seen.records
        remembered = seen.provided.size
        problems.push(...seen.problems)
      } catch (err: any) {
        problems.push(`datastore does not open: ${err.message}`)
      } finally {
        await ds.close().catch(() => {})
      }
      for (const p of problems) {
        if (p.startsWith('lost: ')) {
          lostKeys.add(p.split(' ')[1])
        }
      }
      const result = { run, mode, delay, scheduled, clean: problems.length === 0, problems }
      results.push(result)
      log(`run ${run + 1}/${options.runs} ${mode}: killed ${delay} ms in, ${scheduled} scheduled, ${done.size} done, ${puts.size} put, ${problems.length === 0 ? 'clean' : problems.slice(0, 3).join('; ')}`)
    }
    let republished = 0
    if (options.verify !== false) {
      // a last restart, not killed: every key reported done goes out again within two sweeps
      const since = Date.now()
      const worker = startWorker({ ...base, mode: 'verify', run: options.runs, seed: random.uint32(), republishInterval: 2000 }, onLine)
      const ready = await worker.waitFor(l => l.startsWith('ready '))
      if (Number(ready.split(' ')[1]) !== remembered) {
        lostKeys.add('(verify restart scheduled fewer keys)')
      }
      const sweeps = { third: false }
      worker.waitFor(l => l === 'sweep 3').then(() => { sweeps.third = true }, () => {})
      let missing = [...done]
      while (!sweeps.third && missing.length > 0) {
        await sleep(200)
        const still: string[] = []
        for (const name of missing) {
          if (!await republishedTo(stores, name, self, since)) {
            still.push(name)
          }
        }
        missing = still
      }
      republished = done.size - missing.length
      worker.child.stdin?.end()
      await worker.exited
      log(`verify: ${republished} of ${done.size} keys reported done were republished to a peer within two sweeps of the restart`)
    }
    return {
      runs: options.runs,
      cleanRestarts: results.filter(r => r.clean).length,
      recordsChecked,
      reported: done.size + puts.size,
      lost: lostKeys.size,
      republished,
      provides: done.size,
      results
    }
  } finally {
    await stopAll(peers)
    await rm(dir, { recursive: true, force: true })
  }
}
