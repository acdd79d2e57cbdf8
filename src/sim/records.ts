/**
 * Scenario: records. Publishers provide keys and put values, then other
 * nodes look for them: provide, findProviders, put and get, as the libp2p
 * adapter runs them (`src/libp2p/content.ts`), on the simulated network.
 *
 * Publication (`provide`, `put`): one every `interval` virtual ms from the
 * publishers in turn. Each runs a FIND_NODE lookup for its key on the
 * publisher's real coordinator, then hands the k closest that answered and
 * the spares beyond them to the core's `FanOut` (the same placement rules
 * the adapter uses): deliveries to the k closest at once, a failed one
 * replaced by the next spare. It reports success once `putQuorum` peers hold
 * the record plus a grace of `putGrace` for the rest (or when every
 * delivery has ended, if sooner), as the adapter does; `complete` is when
 * the last delivery ended. The publisher also keeps the record itself.
 *
 * Retrieval (`find-providers`, `get`): once every publication has settled
 * and `findAfter` more virtual ms have passed (churn carries on meanwhile),
 * a random node other than the publisher looks for each record, one every
 * `findInterval` ms, with a GET_PROVIDERS or GET_VALUE lookup. A node that
 * holds the record itself answers at once. findProviders reports at the
 * first provider and stops the lookup (an application that wants one
 * provider); get stops once `getQuorum` responders returned a value, or
 * when the lookup ends, and succeeds if the newest value was among them.
 * The share of records found is the "findable after churn" figure.
 *
 * Republish: with `republishInterval` (22 h by default, as the adapter),
 * each publisher keeps the core's `RepublishSchedule` of what it published
 * and, on the virtual clock, republishes every record that comes due
 * exactly as a publication (lookup, then `FanOut` deliveries; the holders
 * refresh the record's 48 h). A publisher that left for good stops; one
 * that is away keeps its records due and republishes them once back.
 * Republishes are operations of their own (`republish: true`), left out of
 * the per-kind summaries. `publish` and `seek` are also the live scenario's
 * way in (`live.ts`), without the two phases `start` runs.
 *
 * Durability (`durability.ts`, all off here unless `durability` says
 * otherwise; the live scenario runs the library's defaults): handover to
 * peers newly in a holder's table, a get storing the best value at the
 * closest peer that answered without it (after `onLookupFinished`, from its
 * closest and spares), and holders re-publishing values as operations of
 * their own (`held: true`, counted with the republishes).
 *
 * Bounds: `ops` holds one entry per operation (2 x (provides + puts),
 * plus one per republish: at most records x run time / republishInterval);
 * `running` the operations in flight; one `RepublishSchedule` per
 * publisher, each holding that publisher's records and one queued wake-up;
 * the record stores are bounded per node (`store.ts`).
 */
import { SeededRandom } from '../core/env.ts'
import { KEY_BYTES } from '../core/key.ts'
import { RepublishSchedule } from '../core/maintenance/schedule.ts'
import { FanOut } from '../core/publish/fan-out.ts'
import { headSize, likelyAmongClosest, SETTLED_AFTER } from '../core/publish/optimistic.ts'
import { validateLookupConfig } from '../core/query/config.ts'
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { DURABILITY_OFF, SimDurability } from './durability.ts'
import { hash32 } from './hash.ts'
import { Initiators } from './initiators.ts'
import { distribution } from './report.ts'
import { formatTable } from './report.ts'
import { storeKey } from './store.ts'
import { indexOf } from './world.ts'
import type { SimDurabilityOptions } from './durability.ts'
import type { SimContact } from './node.ts'
import type { Distribution } from './report.ts'
import type { Found, LookupFinished, RecordOutcome, World, WorldListener } from './world.ts'
import type { Contact } from '../core/contact.ts'
import type { Millis, Random } from '../core/env.ts'
import type { Key } from '../core/key.ts'

export type RecordOpKind = 'provide' | 'put' | 'find-providers' | 'get'

export interface RecordOpsOptions {
  /**
   * Provider records to announce.
   *
   * @default 200 (range 0..1,000,000)
   */
  provides: number
  /**
   * Values (IPNS-like, a sequence number each) to put.
   *
   * @default 100 (range 0..1,000,000)
   */
  puts: number
  /**
   * Virtual ms between the starts of two publications (network-wide).
   *
   * @default 500 (range 0..3,600,000)
   */
  interval: Millis
  /**
   * Fixed nodes that publish in turn (a node announcing its content); 0: a
   * fresh random node for each record.
   *
   * @default 4 (range 0..1,000,000)
   */
  publishers: number
  /**
   * Which nodes publish and look: any node, or only dialable ones.
   *
   * @default 'any'
   */
  initiators: 'any' | 'dialable'
  /**
   * Virtual ms between the last publication settling and the first lookup
   * for a record: with churn, the holders come and go meanwhile.
   *
   * @default 0 (range 0..86,400,000)
   */
  findAfter: Millis
  /**
   * Virtual ms between the starts of two retrievals.
   *
   * @default 100 (range 0..3,600,000)
   */
  findInterval: Millis
  /**
   * Peers that must hold a record before a publication reports success
   * (the adapter's default: half of k, rounded up).
   *
   * @default ceil(k / 2) (range 1..256)
   */
  putQuorum: number
  /**
   * Virtual ms a publication waits for the remaining deliveries once the
   * quorum has the record (the adapter's `putGrace`).
   *
   * @default 200 (range 0..600,000)
   */
  putGrace: Millis
  /**
   * Values a get collects before it stops (the adapter's `getQuorum`).
   *
   * @default 16 (range 1..256)
   */
  getQuorum: number
  /**
   * Virtual ms from a publication to its republish by the same publisher
   * (the core's `RepublishSchedule`, as `src/libp2p/republisher.ts` uses
   * it, with its jitter of a tenth on top); 0: nobody republishes.
   *
   * @default 79,200,000 (22 h; 0 or 1000..2,592,000,000)
   */
  republishInterval: Millis
  /**
   * The durability rules (`durability.ts`): handover to new closer peers,
   * store on get, held re-publish.
   *
   * @default all off (`DURABILITY_OFF`); the live scenario runs the library's defaults
   */
  durability: Partial<SimDurabilityOptions>
}

export function validateRecordOpsOptions (partial: Partial<RecordOpsOptions>, k: number): RecordOpsOptions {
  const o: RecordOpsOptions = {
    provides: 200,
    puts: 100,
    interval: 500,
    publishers: 4,
    initiators: 'any',
    findAfter: 0,
    findInterval: 100,
    putQuorum: Math.ceil(k / 2),
    putGrace: 200,
    getQuorum: 16,
    republishInterval: 22 * 3_600_000,
    durability: DURABILITY_OFF,
    ...stripUndefined(partial)
  }
  checkRange('provides', o.provides, 0, 1_000_000)
  checkRange('puts', o.puts, 0, 1_000_000)
  checkRange('interval', o.interval, 0, 3_600_000, false)
  checkRange('publishers', o.publishers, 0, 1_000_000)
  checkRange('findAfter', o.findAfter, 0, 86_400_000, false)
  checkRange('findInterval', o.findInterval, 0, 3_600_000, false)
  checkRange('putQuorum', o.putQuorum, 1, 256)
  checkRange('putGrace', o.putGrace, 0, 600_000, false)
  checkRange('getQuorum', o.getQuorum, 1, 256)
  if (o.republishInterval !== 0) {
    checkRange('republishInterval', o.republishInterval, 1000, 2_592_000_000, false)
  }
  if (o.initiators !== 'any' && o.initiators !== 'dialable') {
    throw new RangeError(`initiators must be 'any' or 'dialable', got ${String(o.initiators)}`)
  }
  if (o.provides + o.puts === 0) {
    throw new RangeError('nothing to publish: provides and puts are both 0')
  }
  return o
}

/** One operation, as the scenario observed it */
export interface RecordOpRecord {
  kind: RecordOpKind
  /** Which record (0-based, in publication order) */
  record: number
  node: number
  nodeDialable: boolean
  /** Whether the node runs priority-dht */
  adopter: boolean
  startedAt: Millis
  /** Virtual ms until the operation reported (see the file comment) */
  latency: Millis
  /** Virtual ms its lookup took (0 when answered locally) */
  lookupLatency: Millis
  /** Publications: virtual ms until the last delivery ended */
  complete?: Millis
  /** Publications: a republish by the publisher (its `RepublishSchedule` said the record was due) */
  republish?: boolean
  /** Publications: a held re-publish by a holder (`durability.ts`), counted with the republishes */
  held?: boolean
  /** Publications: deliveries made before the lookup finished (optimistic placement) */
  early?: number
  /** Publications: peers that took the record; retrievals: responders that had it */
  copies: number
  success: boolean
  /** Lookup requests plus record deliveries */
  requests: number
  /** Requests that needed a new connection */
  dials: number
  /** Dials to undialable nodes (each costs a dial timeout) */
  undialableDials: number
  /** Retrievals: peers that took the record at publication and are online when the retrieval starts */
  holdersOnline?: number
}

export interface RecordOpSummary {
  ops: number
  successRate: number
  latencyMs: Distribution
  lookupMs: Distribution
  completeMs?: Distribution
  copies: Distribution
  requests: Distribution
  dials: Distribution
  undialableDials: Distribution
  /** Retrievals: holders online when the search started */
  holdersOnline?: Distribution
  /** Retrievals that started with no holder online */
  noHolderOnline?: number
}

export type RecordSummary = Partial<Record<RecordOpKind, RecordOpSummary>>

interface Running {
  op: RecordOpRecord
  key: Key
  queryId?: number
  plan?: FanOut<{ id: string, index: number }>
  /** publications by adopters: the network size their table estimates, for early deliveries */
  networkSize?: number
  quorumAt?: Millis
  /** when the quorum had the record and no delivery was in flight (the adapter reports then, grace or not) */
  idleAt?: Millis
  lookupDone?: Millis
  /** retrievals: distinct responders that held the record, and the best value seen */
  responders?: Set<number>
  best?: number
  /** gets: the value each responder returned */
  values?: Map<number, number>
  /** held re-publishes: the value the holder has (not necessarily the publisher's) */
  seq?: number
  /** retrievals: called once the retrieval reported */
  done?(op: RecordOpRecord): void
}

interface Published {
  key: Key
  kind: 'provide' | 'put'
  publisher: number
  seq: number
  /** distinct peers that took the record, over its publications */
  holders: number[]
  /** when its latest publication that placed a copy settled (undefined before the first) */
  placedAt?: Millis
}

/** Virtual ms between two checks of an offline publisher with republishes due */
const REPUBLISH_RETRY = 60_000
/** Salt of each publisher's republish jitter stream */
const SALT_REPUBLISH = 0x72657075

export class RecordOps implements WorldListener {
  readonly options: RecordOpsOptions
  readonly ops: RecordOpRecord[] = []
  private readonly world: World
  private readonly random: Random
  private readonly k: number
  private readonly running = new Map<number, Running>()
  private readonly published: Published[] = []
  private readonly initiators: Initiators
  private publications = 0
  private settled = 0
  private retrievals = 0
  private finished = 0
  /** true once `start` ran the two phases (publish all, then retrieve all) */
  private phased = false
  /** per publisher: the core's schedule of its records (by record index), and the time of its queued wake-up */
  private readonly schedules = new Map<number, { schedule: RepublishSchedule, wakeAt: Millis }>()
  /** republishes started */
  republishes = 0
  /** the durability rules and what they cost */
  readonly durability: SimDurability
  /** store key -> record index */
  private readonly byKey = new Map<string, number>()

  constructor (world: World, options: Partial<RecordOpsOptions>, random: Random) {
    this.world = world
    this.k = validateLookupConfig(world.config.coordinator.lookup).k
    this.options = validateRecordOpsOptions(options, this.k)
    this.random = random
    this.initiators = new Initiators(world, random, this.options.initiators, this.options.publishers)
    this.durability = new SimDurability(world, this.options.durability, this.k, (node, key, seq) => { this.republishHeld(node, key, seq) })
  }

  onPeerAdded (node: number, peer: number): void {
    this.durability.onPeerAdded(node, peer)
  }

  /** Operations to run in all: a publication and a retrieval per record */
  get total (): number {
    return 2 * (this.options.provides + this.options.puts)
  }

  get done (): boolean {
    return this.finished >= this.total
  }

  /** The keys published so far, in publication order */
  get keys (): Key[] {
    return this.published.map(p => p.key)
  }

  /** Operations finished so far */
  get finishedOps (): number {
    return this.finished
  }

  /** Installs itself as the world's listener and schedules the first publication */
  start (at: Millis = this.world.now): void {
    this.world.listener = this
    this.phased = true
    this.world.at(at, 'publish', () => { this.publishNext() })
  }

  onRequest (node: number, queryId: number | undefined, peer: number, dialed: boolean): void {
    const r = queryId === undefined ? undefined : this.running.get(queryId)
    if (r == null) {
      return
    }
    r.op.requests++
    if (dialed) {
      r.op.dials++
      if (!this.world.network.dialable(peer)) {
        r.op.undialableDials++
      }
    }
  }

  /** Optimistic placement: a publication by an adopter delivers at once to a peer that answered and is likely among the k closest */
  onResponse (node: number, queryId: number, peer: number): void {
    const r = this.running.get(queryId)
    if (r?.plan == null || r.networkSize == null) {
      return
    }
    const contact = this.world.contacts[peer]
    const target = { id: contact.id, index: peer }
    if (likelyAmongClosest(r.key, contact.key, r.networkSize, this.k) && r.plan.early(target)) {
      this.deliver(r, target)
    }
    // the lookup's settled head, as the adapter's lookupAndPlace delivers to it
    for (const c of this.world.node(node).coordinator.settledHead(queryId, headSize(this.k), SETTLED_AFTER)) {
      const head = { id: c.id, index: (c as SimContact).index }
      if (r.plan.early(head)) {
        this.deliver(r, head)
      }
    }
  }

  onFound (node: number, found: Found): void {
    const r = this.running.get(found.queryId)
    if (r?.responders == null) {
      return
    }
    const has = r.op.kind === 'find-providers' ? found.providers.length > 0 : found.value !== undefined
    if (!has || r.responders.has(found.from)) {
      return
    }
    r.responders.add(found.from)
    r.best = Math.max(r.best ?? -1, found.value ?? -1)
    if (found.value !== undefined) {
      r.values?.set(found.from, found.value)
    }
    if (r.op.kind === 'find-providers' || r.responders.size >= this.options.getQuorum) {
      this.world.stopLookup(node, found.queryId)
    }
  }

  onLookupFinished (node: number, e: LookupFinished): void {
    const r = this.running.get(e.queryId)
    if (r == null) {
      return
    }
    this.running.delete(e.queryId)
    r.lookupDone = this.world.now
    r.op.lookupLatency = this.world.now - r.op.startedAt
    if (r.responders != null) {
      this.finishRetrieval(r, [...e.closest, ...e.spares])
      return
    }
    const toTarget = (c: { id: string }): { id: string, index: number } => ({ id: c.id, index: indexOf(c as Parameters<typeof indexOf>[0]) })
    if (r.plan == null) {
      r.plan = new FanOut(e.closest.map(toTarget), e.spares.map(toTarget), this.options.putQuorum)
    } else {
      r.plan.plan(e.closest.map(toTarget), e.spares.map(toTarget))
    }
    for (const peer of r.plan.start()) {
      this.deliver(r, peer)
    }
    if (r.plan.settled) {
      this.finishPublication(r)
    }
  }

  private publishNext (): void {
    const index = this.publications++
    const total = this.options.provides + this.options.puts
    // interleave the two kinds evenly
    const isPut = Math.floor((index + 1) * this.options.puts / total) > Math.floor(index * this.options.puts / total)
    const kind = isPut ? 'put' : 'provide'
    this.publish(this.initiators.publisher(index), kind)
    if (this.publications < total) {
      this.world.at(this.world.now + this.options.interval, 'publish', () => { this.publishNext() })
    }
  }

  /**
   * Publishes a new record from `node` now (a fresh key; for a put, a
   * sequence number) and, with republishing on, schedules it in the node's
   * `RepublishSchedule`. Returns the record's index.
   */
  publish (node: number, kind: 'provide' | 'put'): number {
    const key = this.random.fill(new Uint8Array(KEY_BYTES))
    const record = this.published.length
    this.published.push({ key, kind, publisher: node, seq: 1 + this.random.int(1000), holders: [] })
    this.byKey.set(storeKey(key), record)
    this.startPublication(record, false)
    if (this.options.republishInterval > 0) {
      let s = this.schedules.get(node)
      if (s == null) {
        const random = new SeededRandom(hash32(this.world.config.seed, node, SALT_REPUBLISH))
        s = { schedule: new RepublishSchedule({ republishInterval: this.options.republishInterval }, random), wakeAt: Infinity }
        this.schedules.set(node, s)
      }
      s.schedule.add(String(record), this.world.now)
      this.wakeBy(node, s.schedule.nextDeadline() as Millis)
    }
    return record
  }

  /** Records published so far */
  get recordCount (): number {
    return this.published.length
  }

  /** Record `record`'s publisher, and when its latest publication that placed a copy settled */
  recordInfo (record: number): { publisher: number, placedAt?: Millis } {
    const p = this.published[record]
    return { publisher: p.publisher, placedAt: p.placedAt }
  }

  /** Queues a wake-up of `node`'s republisher at `at` unless one is queued by then */
  private wakeBy (node: number, at: Millis): void {
    const s = this.schedules.get(node)
    if (s == null || s.wakeAt <= at) {
      return
    }
    s.wakeAt = at
    this.world.at(Math.max(at, this.world.now), 'republish', () => { this.wake(node, at) })
  }

  /**
   * The publisher's republish timer: a node that left for good stops; one
   * that is away (churn) keeps its due records due and checks again a minute
   * later, so it republishes when it is back, as a restarted node's
   * republisher does; an online one republishes every due record.
   */
  private wake (node: number, at: Millis): void {
    const s = this.schedules.get(node)
    if (s == null || s.wakeAt !== at) {
      return
    }
    s.wakeAt = Infinity
    const now = this.world.now
    if (now >= this.world.network.departsAt(node)) {
      this.schedules.delete(node)
      return
    }
    if (!this.world.network.online(node, now)) {
      this.wakeBy(node, now + REPUBLISH_RETRY)
      return
    }
    for (const key of s.schedule.due(now)) {
      this.republishes++
      this.startPublication(Number(key), true)
    }
    const next = s.schedule.nextDeadline()
    if (next !== undefined) {
      this.wakeBy(node, next)
    }
  }

  /**
   * A held re-publish: `node` puts value `seq` it holds for `key` to the
   * key's k closest (lookup, then `FanOut` deliveries), without storing it
   * again itself
   */
  private republishHeld (node: number, key: Key, seq: number): void {
    const record = this.byKey.get(storeKey(key))
    if (record !== undefined) {
      this.startPublication(record, true, node, seq)
    }
  }

  /**
   * A publication of record `record` by its publisher: it keeps the record
   * itself, looks up the key, then `FanOut` deliveries; with `holder`, a
   * held re-publish of value `seq` by that node instead
   */
  private startPublication (record: number, republish: boolean, holder?: number, seq?: number): void {
    const p = this.published[record]
    const node = holder ?? p.publisher
    if (holder === undefined) {
      const store = this.world.node(node).store
      if (p.kind === 'provide') {
        store.addProvider(p.key, node, this.world.now)
      } else {
        store.putValue(p.key, p.seq, this.world.now)
      }
    }
    const op = this.newOp(p.kind, record, node)
    if (republish) {
      op.republish = true
    }
    if (holder !== undefined) {
      op.held = true
    }
    const key = p.key
    const queryId = this.world.startLookup(node, key)
    const running: Running = { op, key, queryId, seq }
    if (this.world.adopter(node)) {
      // priority-dht places optimistically (optimistic.ts); classic nodes wait for the lookup
      running.plan = FanOut.optimistic(this.options.putQuorum)
      running.networkSize = this.world.node(node).coordinator.routingTable.sizeEstimate()
    }
    this.running.set(queryId, running)
  }

  private deliver (r: Running, peer: { id: string, index: number }): void {
    const p = this.published[r.op.record]
    const message = r.op.kind === 'provide'
      ? { kind: 'add-provider' as const, key: r.key, provider: r.op.node }
      : { kind: 'put-value' as const, key: r.key, seq: r.seq ?? p.seq }
    r.op.requests++
    this.world.sendRecord(r.op.node, peer.index, message, (outcome: RecordOutcome) => {
      const plan = r.plan as FanOut<{ id: string, index: number }>
      if (outcome.dialed) {
        r.op.dials++
        r.op.undialableDials += outcome.undialable ? 1 : 0
      }
      if (outcome.ok && !p.holders.includes(peer.index)) {
        p.holders.push(peer.index)
      }
      const next = plan.result(peer, outcome.ok)
      if (plan.quorumReached && r.quorumAt === undefined) {
        r.quorumAt = this.world.now
      }
      if (plan.quorumReached && plan.idle && r.idleAt === undefined) {
        r.idleAt = this.world.now
      }
      if (next != null) {
        this.deliver(r, next)
      } else if (plan.settled) {
        this.finishPublication(r)
      }
    })
  }

  private finishPublication (r: Running): void {
    const now = this.world.now
    const op = r.op
    op.copies = r.plan?.stored ?? 0
    op.early = r.plan?.earlyCount ?? 0
    op.success = op.copies > 0
    op.complete = now - op.startedAt
    op.latency = r.quorumAt === undefined ? now - op.startedAt : Math.min(now, r.quorumAt + this.options.putGrace, r.idleAt ?? Infinity) - op.startedAt
    this.record(op)
    if (op.copies > 0) {
      this.published[op.record].placedAt = now
    }
    if (op.held === true) {
      this.durability.cost.heldRepublish += op.requests
    }
    if (op.republish === true) {
      return
    }
    this.settled++
    if (this.phased && this.settled === this.options.provides + this.options.puts) {
      this.world.at(now + this.options.findAfter, 'retrieve', () => { this.retrieveNext() })
    }
  }

  private retrieveNext (): void {
    const index = this.retrievals++
    const p = this.published[index]
    let node = this.initiators.any()
    while (node === p.publisher && this.world.size > 1) {
      node = this.initiators.any()
    }
    this.seek(index, node)
    if (this.retrievals < this.published.length) {
      this.world.at(this.world.now + this.options.findInterval, 'retrieve', () => { this.retrieveNext() })
    }
  }

  /**
   * Node `node` seeks record `record` now: GET_PROVIDERS (stopping at the
   * first provider) or GET_VALUE (stopping at `getQuorum` values); `done`
   * gets the operation once it reported.
   */
  seek (record: number, node: number, done?: (op: RecordOpRecord) => void): void {
    const index = record
    const p = this.published[index]
    const kind = p.kind === 'provide' ? 'find-providers' : 'get'
    const op = this.newOp(kind, index, node)
    op.holdersOnline = p.holders.filter(h => this.world.network.online(h, this.world.now)).length
    const r: Running = { op, key: p.key, responders: new Set(), done, values: kind === 'get' ? new Map() : undefined }
    const local = this.world.node(node).records
    const best = kind === 'get' ? local?.valueOf(p.key, this.world.now) : undefined
    const hasLocally = kind === 'find-providers' ? (local?.providersOf(p.key, this.world.now).length ?? 0) > 0 : best !== undefined
    if (hasLocally) {
      r.responders?.add(node)
      r.best = best
    }
    if (hasLocally && kind === 'find-providers') {
      this.finishRetrieval(r)
    } else {
      const request = kind === 'find-providers' ? { kind: 'get-providers' as const, key: p.key } : { kind: 'get-value' as const, key: p.key }
      const queryId = this.world.startLookup(node, p.key, request)
      r.queryId = queryId
      this.running.set(queryId, r)
    }
  }

  /** A retrieval reported; a get's lookup (`answered`: who answered, nearest first) goes on to the store-on-get rule */
  private finishRetrieval (r: Running, answered?: readonly Contact[]): void {
    const op = r.op
    const p = this.published[op.record]
    if (op.kind === 'get' && answered != null && r.values != null) {
      this.durability.afterGet(op.node, r.key, r.best === undefined || r.best < 0 ? undefined : r.best, answered, r.values)
    }
    op.copies = r.responders?.size ?? 0
    op.success = op.kind === 'find-providers' ? op.copies > 0 : r.best === p.seq
    op.latency = this.world.now - op.startedAt
    this.record(op)
    r.done?.(op)
  }

  private record (op: RecordOpRecord): void {
    this.ops.push(op)
    if (op.republish !== true) {
      this.finished++
    }
  }

  private newOp (kind: RecordOpKind, record: number, node: number): RecordOpRecord {
    return { kind, record, node, nodeDialable: this.world.network.dialable(node), adopter: this.world.adopter(node), startedAt: this.world.now, latency: 0, lookupLatency: 0, copies: 0, success: false, requests: 0, dials: 0, undialableDials: 0 }
  }
}

/** Per-kind summaries of a records run */
export function summarizeRecords (ops: readonly RecordOpRecord[]): RecordSummary {
  const out: RecordSummary = {}
  for (const kind of ['provide', 'put', 'find-providers', 'get'] as const) {
    const of = ops.filter(o => o.kind === kind && o.republish !== true)
    if (of.length === 0) {
      continue
    }
    const publication = kind === 'provide' || kind === 'put'
    out[kind] = {
      ops: of.length,
      successRate: of.filter(o => o.success).length / of.length,
      latencyMs: distribution(of.map(o => o.latency)),
      lookupMs: distribution(of.map(o => o.lookupLatency)),
      completeMs: publication ? distribution(of.map(o => o.complete ?? 0)) : undefined,
      copies: distribution(of.map(o => o.copies)),
      requests: distribution(of.map(o => o.requests)),
      dials: distribution(of.map(o => o.dials)),
      undialableDials: distribution(of.map(o => o.undialableDials)),
      holdersOnline: publication ? undefined : distribution(of.map(o => o.holdersOnline ?? 0)),
      noHolderOnline: publication ? undefined : of.filter(o => o.holdersOnline === 0).length
    }
  }
  return out
}

const ms = (v: number): string => String(Math.round(v))
const one = (v: number): string => v.toFixed(1)

/** A text table: one row per operation kind */
export function formatRecordSummary (s: RecordSummary): string {
  const rows: string[][] = [['operation', 'ops', 'success', 'p50 ms', 'p95 ms', 'p99 ms', 'lookup p50', 'all done p50', 'copies', 'requests', 'dials', 'undialable dials', 'holders online']]
  for (const [kind, k] of Object.entries(s) as Array<[RecordOpKind, RecordOpSummary]>) {
    rows.push([
      kind,
      String(k.ops),
      `${(100 * k.successRate).toFixed(1)} %`,
      ms(k.latencyMs.p50),
      ms(k.latencyMs.p95),
      ms(k.latencyMs.p99),
      ms(k.lookupMs.p50),
      k.completeMs == null ? '-' : ms(k.completeMs.p50),
      one(k.copies.mean),
      one(k.requests.mean),
      one(k.dials.mean),
      one(k.undialableDials.mean),
      k.holdersOnline == null ? '-' : `${one(k.holdersOnline.mean)} (none: ${k.noHolderOnline ?? 0})`
    ])
  }
  return formatTable(rows) + '\n(copies, requests, dials, holders online: means per operation; latency in virtual ms; holders online: of the peers that took the record, those online when the retrieval started)'
}
