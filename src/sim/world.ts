/**
 * The world: N simulated nodes, each a real `Coordinator`, on a virtual
 * network with a virtual clock. A seeded discrete-event loop: nothing reads
 * the wall clock, nothing uses `Math.random`; same config and seed, same
 * trace (see `traceHash()`).
 *
 * Queue events (see `SimEvent`):
 * - `core { node, event }`: deliver a core event (`peer-identified`,
 * `response`, `request-failed`, `start-lookup`) to a node.
 * - `arrive { from, to, requestId, request, sentAt }`: a request reaches its
 * responder, which answers FIND_NODE with `closerPeers(key, from)` and a PING
 * with nothing; the response reaches the requester half a round trip later.
 * - `tick { node, due }`: the deadline from `nextDeadline()` has come.
 * - `step { label, run }`: a scenario step (its label goes into the trace).
 * Effects carried out for each node:
 * - `send-request`: over an open connection the request leaves at once; else
 * the node dials. A dial to an undialable node fails with `dial-timeout`
 * after `dialTimeout`; a successful one takes `dialRoundTrips` round trips,
 * after which each side gets `peer-identified` for the other with
 * `/ipfs/kad/1.0.0`, but only when that other side announces it (identify
 * runs on every new connection; an undialable node is a client that can
 * dial out, unless it is one of the `announcing` share that run in server
 * mode anyway). A lost request or response fails with `timeout` after
 * `requestTimeout` counted from when the request left.
 * - `lookup-finished`: reported to the listener (driver-started lookups have
 * positive query ids; a node's own refresh lookups negative ones).
 * - `peer-added`, `peer-removed`: counted.
 * Timeouts: `dialTimeout` and `requestTimeout` from the network config.
 *
 * Bounds: the queue holds at most one outcome event per request in flight,
 * the steps the scenario keeps scheduled (one at a time in ours), and per
 * node at most one valid tick plus stale ones: a new tick is queued only
 * when a node's deadline moves earlier, which happens when its table goes
 * from empty to non-empty or a deeper bucket becomes non-empty (at most
 * ~17 times), so stale ticks are bounded per node. `maxQueued` is the hard
 * cap (see `event-queue.ts`). Connections per node are bounded by
 * `maxConnections` (least recently used closed on both sides; the closed
 * side's `peer-disconnected` is one queued event per close, and a close
 * happens only when a message opens a connection).
 *
 * Nodes are built on first contact unless `eager` is set: memory grows with
 * the nodes a run touches, not the network size (see README, "Scale").
 */
import { assertNever, SeededRandom } from '../core/env.ts'
import { KEY_BYTES } from '../core/key.ts'
import { PeerStack } from '../core/peer-stack/index.ts'
import { validateRoutingTableConfig } from '../core/routing-table/config.ts'
import { validateWorldConfig } from './config.ts'
import { EventQueue } from './event-queue.ts'
import { hash32, TraceHash } from './hash.ts'
import { KeyIndex } from './key-index.ts'
import { Network } from './network.ts'
import { SimNode } from './node.ts'
import type { NetworkConfig, WorldConfig } from './config.ts'
import type { SimContact } from './node.ts'
import type { Contact } from '../core/contact.ts'
import type { CoreEffect, CoreEvent, RequestKind } from '../core/coordinator.ts'
import type { Millis } from '../core/env.ts'
import type { Key } from '../core/key.ts'
import type { Observation } from '../core/peer-stack/index.ts'

export const KAD_PROTOCOLS: readonly string[] = ['/ipfs/kad/1.0.0']

export type SimEvent =
  | { type: 'core', node: number, event: CoreEvent, observation?: { peer: string, what: Observation }, found?: Found, responded?: { queryId: number, peer: number } }
  | { type: 'arrive', from: number, to: number, requestId: number, queryId: number | undefined, request: RequestKind, sentAt: Millis }
  | { type: 'record', from: number, to: number, message: RecordMessage, sentAt: Millis, done: RecordDone }
  | { type: 'record-outcome', node: number, peer: number, outcome: RecordOutcome, what: Observation | undefined, done: RecordDone }
  | { type: 'tick', node: number, due: Millis }
  | { type: 'step', label: string, run(): void }

export type LookupFinished = Extract<CoreEffect, { type: 'lookup-finished' }>

/** A record message sent outside lookups (a put's deliveries) */
export type RecordMessage =
  | { kind: 'add-provider', key: Key, provider: number }
  | { kind: 'add-providers', keys: readonly Key[], provider: number }
  | { kind: 'put-value', key: Key, seq: number }

/** What a GET_PROVIDERS or GET_VALUE response carried besides closer peers */
export interface Found {
  queryId: number
  from: number
  providers: readonly number[]
  /** the value's sequence number, when the responder held one */
  value?: number
}

/**
 * How a record delivery ended, as the sender sees it. ADD_PROVIDER has no
 * response: it counts as delivered once written (a lost one is never
 * noticed). PUT_VALUE is answered with the record stored.
 */
export interface RecordOutcome {
  ok: boolean
  reason?: 'dial-timeout' | 'dial-refused' | 'timeout' | 'refused'
  /** it needed a new connection */
  dialed: boolean
  /** the dial went to an undialable node */
  undialable: boolean
}

export type RecordDone = (outcome: RecordOutcome) => void

/** Observations a scenario may want; called synchronously from the loop */
export interface WorldListener {
  /** A node sent a request; `dialed` when it had to open a connection first */
  onRequest?(node: number, queryId: number | undefined, peer: number, dialed: boolean): void
  /** A lookup finished on `node` */
  onLookupFinished?(node: number, effect: LookupFinished): void
  /** `peer` answered a request of lookup `queryId` on `node` (after its coordinator saw it) */
  onResponse?(node: number, queryId: number, peer: number): void
  /** A GET_PROVIDERS or GET_VALUE response reached `node` (after its coordinator saw it) */
  onFound?(node: number, found: Found): void
  /** `peer` entered `node`'s routing table (after its coordinator emitted it) */
  onPeerAdded?(node: number, peer: number): void
}

export interface WorldStats {
  events: number
  requests: number
  pings: number
  dials: number
  undialableDials: number
  lostMessages: number
  responses: number
  peersAdded: number
  peersRemoved: number
  connectionsClosed: number
  /** of those, closes the other side's peer stack heard of (and held the closer back for) */
  disconnectsHeard: number
  /** requests to nodes that were offline (churn) */
  offlineContacts: number
  nodesBuilt: number
  refreshLookups: number
  /** ADD_PROVIDER and PUT_VALUE messages sent (deliveries of puts) */
  recordMessages: number
}

const EVENT_CODE = { core: 1, arrive: 2, tick: 3, step: 4, record: 5, 'record-outcome': 6 } as const
const CORE_CODE = { 'peer-identified': 1, 'inbound-request': 2, 'start-lookup': 3, 'stop-lookup': 4, response: 5, 'request-failed': 6, tick: 7, 'peer-disconnected': 8 } as const

export interface RunOptions {
  /** Stop as soon as this returns true (checked before each event) */
  until?(): boolean
  /** Stop before processing an event later than this */
  maxTime?: Millis
  /** Called every `progressEvery` events */
  onProgress?(world: World): void
  /** @default 100000 */
  progressEvery?: number
}

export type RunResult = 'done' | 'empty' | 'max-time'

export class World {
  readonly config: WorldConfig & { network: NetworkConfig }
  readonly size: number
  readonly network: Network
  readonly contacts: readonly SimContact[]
  readonly stats: WorldStats = { events: 0, requests: 0, pings: 0, dials: 0, undialableDials: 0, lostMessages: 0, responses: 0, peersAdded: 0, peersRemoved: 0, connectionsClosed: 0, disconnectsHeard: 0, offlineContacts: 0, nodesBuilt: 0, refreshLookups: 0, recordMessages: 0 }
  listener: WorldListener = {}
  /**
   * Called once for each node right after it is built (at virtual time 0 for
   * lazily built nodes): the hook the seeded bootstrap fills tables with.
   */
  onBuild: ((node: SimNode, random: SeededRandom) => void) | undefined
  private readonly nodes: Array<SimNode | undefined>
  private readonly queue: EventQueue<SimEvent>
  private readonly trace = new TraceHash()
  private nextQueryId = 1
  private clock: Millis = 0
  private index: KeyIndex | undefined

  constructor (config: Partial<WorldConfig> = {}) {
    this.config = validateWorldConfig(config)
    const seed = this.config.seed
    this.size = this.config.nodes
    const random = new SeededRandom(seed)
    // one contiguous buffer for all keys: a view per node, no per-key allocation
    const keys = random.fork().fill(new Uint8Array(this.size * KEY_BYTES))
    const contacts: SimContact[] = new Array(this.size)
    for (let i = 0; i < this.size; i++) {
      contacts[i] = { id: `n${i}`, key: keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES), index: i }
    }
    this.contacts = contacts
    this.network = new Network(this.config.network, this.size, hash32(seed, 0x6e6574), random.fork())
    this.nodes = new Array(this.size)
    this.queue = new EventQueue(this.config.maxQueued)
  }

  /** The current virtual time */
  get now (): Millis {
    return this.clock
  }

  /** All keys in sorted order, built on first use (see `key-index.ts`) */
  get keyIndex (): KeyIndex {
    this.index ??= new KeyIndex(this.contacts)
    return this.index
  }

  /** Events waiting in the queue */
  get queued (): number {
    return this.queue.size
  }

  /** The trace hash so far */
  traceHash (): string {
    return this.trace.digest()
  }

  /** The coordinator config of nodes running priority-dht: disjoint paths for gets, as its adapter */
  private get adopterCoordinator (): WorldConfig['coordinator'] {
    const c = this.config.coordinator
    return { ...c, lookup: { disjointPaths: this.config.adopterDisjointPaths, ...c.lookup } }
  }

  /** Whether node `i` runs priority-dht (see `WorldConfig.adoption`) */
  adopter (i: number): boolean {
    if (!this.config.peerStack) {
      return false
    }
    return this.config.adoption >= 1 || hash32(this.config.seed, i, 0x61646f70) / 4294967296 < this.config.adoption
  }

  /** Whether node `i` has been built */
  built (i: number): boolean {
    return this.nodes[i] != null
  }

  /**
   * Builds every node now (the `eager` mode). Each node is built as of a
   * moment within the last refresh interval (seeded per node), as if the
   * network had been running for a while: their maintenance then runs at
   * spread-out phases instead of every node refreshing every bucket in the
   * same virtual second (which a world built at time 0 would do, and no
   * real network does).
   */
  buildAll (): void {
    const interval = validateRoutingTableConfig(this.config.coordinator.routingTable ?? {}).refreshInterval
    for (let i = 0; i < this.size; i++) {
      if (this.network.arrivesAt(i) === 0) { // a node that joins later is built when it does
        this.node(i, -Math.floor(interval * hash32(this.config.seed, i, 0x70686173) / 0x1_0000_0000))
      }
    }
  }

  /**
   * Node `i`, built on first use. A node built lazily is built as of time 0
   * (it was in the network all along); `createdAt` builds it as of a later
   * time (a node that joins).
   */
  node (i: number, createdAt: Millis = 0): SimNode {
    let n = this.nodes[i]
    if (n == null) {
      const nodeRandom = new SeededRandom(hash32(this.config.seed, i, 0x6e6f6465))
      const adopter = this.adopter(i)
      n = new SimNode(this.contacts[i], adopter ? this.adopterCoordinator : this.config.coordinator, nodeRandom.fork(), createdAt, this.config.network.maxConnections, adopter ? new PeerStack(this.config.peerStackConfig) : undefined)
      n.recordTtl = this.config.recordTtl
      this.nodes[i] = n
      this.stats.nodesBuilt++
      this.onBuild?.(n, nodeRandom.fork())
      this.scheduleTick(n)
    }
    return n
  }

  /** Schedules `run` at virtual time `at` (not before now) */
  at (at: Millis, label: string, run: () => void): void {
    this.queue.push(Math.max(at, this.clock), { type: 'step', label, run })
  }

  /** Schedules a core event for node `i` at `at` (default: now) */
  deliverAt (i: number, event: CoreEvent, at: Millis = this.clock, observation?: { peer: string, what: Observation }): void {
    this.queue.push(Math.max(at, this.clock), { type: 'core', node: i, event, observation })
  }

  /**
   * Starts a lookup of `target` on node `i` now (FIND_NODE unless `request`
   * says otherwise); returns its query id.
   */
  startLookup (i: number, target: Key, request: RequestKind = { kind: 'find-node', key: target }): number {
    const queryId = this.nextQueryId++
    this.deliverAt(i, { type: 'start-lookup', queryId, target, request })
    return queryId
  }

  /** Stops a running lookup on node `i` now (it finishes with reason `stopped`) */
  stopLookup (i: number, queryId: number): void {
    this.deliver(this.node(i), { type: 'stop-lookup', queryId })
  }

  /**
   * Sends a record message from `from` to `to` over the virtual network
   * (dial, loss and churn as for lookup requests) and calls `done` with the
   * outcome at the virtual time the sender learns it. The receiver stores
   * the record in its `RecordStore`.
   */
  sendRecord (from: number, to: number, message: RecordMessage, done: RecordDone): void {
    this.stats.recordMessages++
    const n = this.node(from)
    this.trace.add(to)
    const fail = (reason: RecordOutcome['reason'], at: Millis, what: Observation | undefined, dialed: boolean, undialable: boolean): void => {
      this.queue.push(at, { type: 'record-outcome', node: from, peer: to, outcome: { ok: false, reason, dialed, undialable }, what, done })
    }
    const opened = this.open(n, to, fail)
    if (opened == null) {
      return
    }
    const { sendAt, dialed } = opened
    const lost = this.network.lost()
    if (lost) {
      this.stats.lostMessages++
    }
    if (message.kind !== 'put-value') {
      // written and forgotten: the sender counts it delivered once it is sent
      this.queue.push(sendAt, { type: 'record-outcome', node: from, peer: to, outcome: { ok: true, dialed, undialable: false }, what: undefined, done })
      if (!lost) {
        this.queue.push(sendAt + this.network.oneWay(from, to), { type: 'record', from, to, message, sentAt: sendAt, done: () => {} })
      }
      return
    }
    if (lost) {
      fail('timeout', sendAt + this.network.config.requestTimeout, { type: 'request-failed', reason: 'timeout' }, dialed, false)
      return
    }
    this.queue.push(sendAt + this.network.oneWay(from, to), { type: 'record', from, to, message, sentAt: sendAt, done })
  }

  /**
   * Opens a connection between `a` and `b` usable from `readyAt`, and queues
   * identify on both sides (each learns the other as a DHT server only if
   * it announces the protocol: dialable, or one of the `announcing` share).
   */
  connect (a: number, b: number, readyAt: Millis = this.clock): void {
    this.openSide(a, b, readyAt)
    this.openSide(b, a, readyAt)
    if (this.network.announces(b)) {
      this.deliverAt(a, { type: 'peer-identified', peer: this.contacts[b], protocols: KAD_PROTOCOLS, dialled: true }, readyAt)
    }
    if (this.network.announces(a)) {
      this.deliverAt(b, { type: 'peer-identified', peer: this.contacts[a], protocols: KAD_PROTOCOLS, dialled: false }, readyAt)
    }
  }

  /** Processes events until `until()` holds, the queue empties or `maxTime` passes */
  run (options: RunOptions = {}): RunResult {
    const every = options.progressEvery ?? 100_000
    for (;;) {
      if (options.until?.() === true) {
        return 'done'
      }
      const t = this.queue.peekTime()
      if (t === undefined) {
        return 'empty'
      }
      if (options.maxTime !== undefined && t > options.maxTime) {
        return 'max-time'
      }
      const next = this.queue.pop() as { time: Millis, item: SimEvent }
      this.clock = next.time
      this.stats.events++
      this.dispatch(next.item)
      if (options.onProgress != null && this.stats.events % every === 0) {
        options.onProgress(this)
      }
    }
  }

  private dispatch (e: SimEvent): void {
    this.trace.add(this.clock)
    this.trace.add(EVENT_CODE[e.type])
    switch (e.type) {
      case 'core':
        this.trace.add(e.node)
        this.trace.add(CORE_CODE[e.event.type])
        if (e.observation != null) {
          this.node(e.node).stack?.observe(e.observation.peer, e.observation.what, this.clock)
        }
        if (e.found != null) {
          // the caller sees the records first and may stop the lookup, as the adapter's onResponse does
          this.listener.onFound?.(e.node, e.found)
        }
        this.deliver(this.node(e.node), e.event)
        if (e.responded != null) {
          this.listener.onResponse?.(e.node, e.responded.queryId, e.responded.peer)
        }
        break
      case 'record':
        this.trace.add(e.from)
        this.trace.add(e.to)
        this.storeRecord(e)
        break
      case 'record-outcome':
        this.trace.add(e.node)
        this.trace.add(e.peer)
        this.trace.add(e.outcome.ok ? 1 : 0)
        if (e.what != null) {
          this.node(e.node).stack?.observe(this.contacts[e.peer].id, e.what, this.clock)
        }
        e.done(e.outcome)
        break
      case 'arrive':
        this.trace.add(e.from)
        this.trace.add(e.to)
        this.trace.add(e.requestId)
        this.arrive(e)
        break
      case 'tick': {
        this.trace.add(e.node)
        const n = this.node(e.node)
        if (n.tickAt === e.due) {
          n.tickAt = Infinity
          this.deliver(n, { type: 'tick' })
        }
        break
      }
      case 'step':
        this.trace.addString(e.label)
        e.run()
        break
      default:
        assertNever(e)
    }
  }

  private deliver (n: SimNode, event: CoreEvent): void {
    const effects = n.coordinator.handle(event, this.clock)
    for (const e of effects) {
      this.apply(n, e)
    }
    this.scheduleTick(n)
  }

  private apply (n: SimNode, e: CoreEffect): void {
    switch (e.type) {
      case 'send-request':
        this.send(n, e.requestId, e.queryId, indexOf(e.peer), e.request, e.fresh === true)
        break
      case 'lookup-finished':
        this.trace.add(e.queryId)
        this.trace.add(e.closest.length)
        for (const c of e.closest) {
          this.trace.add(indexOf(c))
        }
        if (e.queryId > 0) {
          this.listener.onLookupFinished?.(n.index, e)
        } else {
          this.stats.refreshLookups++
        }
        break
      case 'peer-added':
        this.stats.peersAdded++
        this.listener.onPeerAdded?.(n.index, indexOf(e.peer))
        break
      case 'peer-removed':
        this.stats.peersRemoved++
        break
      case 'peer-misled':
        // the simulated network has no liars: a dead peer named by an honest one is not a lie worth tracing
        break
      default:
        assertNever(e)
    }
  }

  private send (n: SimNode, requestId: number, queryId: number | undefined, peer: number, request: RequestKind, fresh = false): void {
    const a = n.index
    this.stats.requests++
    if (request.kind === 'ping') {
      this.stats.pings++
    }
    this.trace.add(requestId)
    this.trace.add(peer)
    const opened = this.open(n, peer, (reason, at, what) => {
      this.listener.onRequest?.(a, queryId, peer, true)
      this.deliverAt(a, { type: 'request-failed', requestId, reason }, at, { peer: this.contacts[peer].id, what })
    }, fresh)
    if (opened == null) {
      return
    }
    const { sendAt, dialed } = opened
    this.listener.onRequest?.(a, queryId, peer, dialed)
    if (this.network.lost()) {
      this.stats.lostMessages++
      this.deliverAt(a, { type: 'request-failed', requestId, reason: 'timeout' }, sendAt + this.network.config.requestTimeout, { peer: this.contacts[peer].id, what: { type: 'request-failed', reason: 'timeout' } })
      return
    }
    this.queue.push(sendAt + this.network.oneWay(a, peer), { type: 'arrive', from: a, to: peer, requestId, queryId, request, sentAt: sendAt })
  }

  private arrive (e: Extract<SimEvent, { type: 'arrive' }>): void {
    const remote = this.node(e.to)
    const from = this.contacts[e.from]
    this.deliver(remote, { type: 'inbound-request', from })
    const closer: Contact[] = e.request.kind === 'ping' ? [] : remote.coordinator.closerPeers(e.request.key, from.id, this.clock)
    this.trace.add(closer.length)
    if (this.network.lost()) {
      this.stats.lostMessages++
      this.deliverAt(e.from, { type: 'request-failed', requestId: e.requestId, reason: 'timeout' }, e.sentAt + this.network.config.requestTimeout, { peer: this.contacts[e.to].id, what: { type: 'request-failed', reason: 'timeout' } })
      return
    }
    this.stats.responses++
    const at = this.clock + this.network.oneWay(e.to, e.from)
    const found = this.recordsFor(remote, e)
    const useful = closer.length > 0 || (found != null && (found.providers.length > 0 || found.value !== undefined))
    this.queue.push(at, { type: 'core', node: e.from, event: { type: 'response', requestId: e.requestId, closer }, observation: { peer: this.contacts[e.to].id, what: { type: 'response', latency: at - e.sentAt, useful } }, found, responded: e.queryId === undefined ? undefined : { queryId: e.queryId, peer: e.to } })
  }

  /** The records a GET_PROVIDERS or GET_VALUE response carries (undefined for other requests) */
  private recordsFor (remote: SimNode, e: Extract<SimEvent, { type: 'arrive' }>): Found | undefined {
    if (e.queryId === undefined || remote.records == null || (e.request.kind !== 'get-providers' && e.request.kind !== 'get-value')) {
      return undefined
    }
    const found: Found = e.request.kind === 'get-providers'
      ? { queryId: e.queryId, from: e.to, providers: remote.records.providersOf(e.request.key, this.clock) }
      : { queryId: e.queryId, from: e.to, providers: [], value: remote.records.valueOf(e.request.key, this.clock) }
    this.trace.add(found.providers.length)
    this.trace.add(found.value ?? -1)
    return found
  }

  /**
   * The connection from `n` to `peer` for one message: when the message can
   * leave and whether it needed a dial. Undefined when the peer is offline
   * (the dial is refused, an open connection reset) or undialable (the dial
   * times out), after calling `fail` with when the sender learns it.
   * `fresh` (a verify) dials even when a connection is open, as the adapter
   * does, since the open one may be one the peer opened.
   */
  private open (n: SimNode, peer: number, fail: (reason: 'dial-refused' | 'dial-timeout', at: Millis, what: Observation, dialed: boolean, undialable: boolean) => void, fresh = false): { sendAt: Millis, dialed: boolean } | undefined {
    const a = n.index
    if (!this.network.online(peer, this.clock)) {
      // gone for now: a dial is refused, an open connection is reset
      this.stats.offlineContacts++
      n.disconnect(peer)
      fail('dial-refused', this.clock + this.network.rtt(a, peer), { type: 'dial-failed', reason: 'refused' }, true, false)
      return undefined
    }
    const ready = fresh ? undefined : n.connectedAt(peer)
    if (ready !== undefined) {
      this.evicted(a, n.touch(peer, ready))
      return { sendAt: Math.max(this.clock, ready), dialed: false }
    }
    this.stats.dials++
    if (!this.network.dialable(peer)) {
      this.stats.undialableDials++
      n.undialableDials++
      fail('dial-timeout', this.clock + this.dialTimeoutFor(n, peer), { type: 'dial-failed', reason: 'timeout' }, true, true)
      return undefined
    }
    const sendAt = this.clock + this.network.dialDelay(a, peer)
    this.connect(a, peer, sendAt)
    n.stack?.observe(this.contacts[peer].id, { type: 'dial-ok', duration: sendAt - this.clock }, this.clock)
    return { sendAt, dialed: true }
  }

  /** A record message reached its receiver: store it, and answer a PUT_VALUE */
  private storeRecord (e: Extract<SimEvent, { type: 'record' }>): void {
    const remote = this.node(e.to)
    this.deliver(remote, { type: 'inbound-request', from: this.contacts[e.from] })
    const m = e.message
    if (m.kind === 'add-providers') {
      for (const key of m.keys) {
        this.trace.add(remote.store.addProvider(key, m.provider, this.clock) ? 1 : 0)
      }
      return
    }
    const ok = m.kind === 'add-provider' ? remote.store.addProvider(m.key, m.provider, this.clock) : remote.store.putValue(m.key, m.seq, this.clock)
    this.trace.add(ok ? 1 : 0)
    if (m.kind === 'add-provider') {
      return
    }
    if (this.network.lost()) {
      this.stats.lostMessages++
      this.queue.push(e.sentAt + this.network.config.requestTimeout, { type: 'record-outcome', node: e.from, peer: e.to, outcome: { ok: false, reason: 'timeout', dialed: false, undialable: false }, what: { type: 'request-failed', reason: 'timeout' }, done: e.done })
      return
    }
    const at = this.clock + this.network.oneWay(e.to, e.from)
    this.queue.push(at, {
      type: 'record-outcome',
      node: e.from,
      peer: e.to,
      outcome: { ok, reason: ok ? undefined : 'refused', dialed: false, undialable: false },
      what: ok ? { type: 'response', latency: at - e.sentAt, useful: true } : { type: 'request-failed', reason: 'bad-response' },
      done: e.done
    })
  }

  /** A node with a stack gives up on a dial at the stack's adaptive timeout, at most the network's */
  private dialTimeoutFor (n: SimNode, peer: number): Millis {
    const configured = this.network.config.dialTimeout
    return n.stack == null ? configured : Math.min(configured, n.stack.dialTimeout(this.contacts[peer].id, this.clock))
  }

  private openSide (a: number, b: number, readyAt: Millis): void {
    this.evicted(a, this.node(a).touch(b, readyAt))
  }

  /**
   * `a` closed its connection to `peer` to stay within its bound: close the
   * other side. `peer` sees a close it did not make; a priority-dht node
   * that knows `a` (routing table or peer stack) hears `peer-disconnected`
   * half a round trip later and holds `a` back, as the adapter does on
   * libp2p's peer:disconnect (service.ts): it cannot tell a peer that
   * trimmed its connections from one that went away.
   */
  private evicted (a: number, peer: number | undefined): void {
    if (peer === undefined) {
      return
    }
    this.stats.connectionsClosed++
    const other = this.nodes[peer]
    if (other == null) {
      return
    }
    other.disconnect(a)
    const id = this.contacts[a].id
    if (other.stack != null && (other.coordinator.routingTable.has(id) || other.stack.stats(id) != null)) {
      this.stats.disconnectsHeard++
      this.queue.push(this.clock + this.network.rtt(a, peer) / 2, { type: 'core', node: peer, event: { type: 'peer-disconnected', id } })
    }
  }

  private scheduleTick (n: SimNode): void {
    const due = n.coordinator.nextDeadline()
    if (due !== undefined && due < n.tickAt) {
      n.tickAt = due
      this.queue.push(Math.max(due, this.clock), { type: 'tick', node: n.index, due })
    }
  }
}

/** The node index of a contact the simulation created */
export function indexOf (c: Contact): number {
  const index = (c as Partial<SimContact>).index
  if (typeof index === 'number') {
    return index
  }
  const parsed = Number(c.id.slice(1))
  if (!Number.isInteger(parsed)) {
    throw new RangeError(`not a simulated contact: ${c.id}`)
  }
  return parsed
}
