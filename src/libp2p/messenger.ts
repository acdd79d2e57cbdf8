/**
 * The message-oriented send layer: callers send a DHT message to a peer and
 * get the response (or a typed failure); streams never leak out of here.
 *
 * Implementation notes
 *
 * The dial is separate from the request so failures classify correctly. An
 * existing open connection is used as is; otherwise `onDial` is called and
 * `connectionManager.openConnection` runs under `dialTimeout`. Then the
 * request window (`requestTimeout`) covers opening or reusing a stream,
 * writing the request and reading the response. Framing is a varint length
 * prefix and the protobuf message, capped at `maxMessageSize` both ways.
 * Both windows are measured in time our event loop was free to read the
 * peer's answer: a timer that fires late after a blocked loop extends its
 * window by the time lost (`arm`), so a stall of ours is not blamed on the
 * peers whose answers were waiting unread in the socket.
 *
 * After a clean exchange the stream is parked in a per-peer idle pool and
 * reused by the next request to that peer. If a reused stream fails before any
 * response byte arrives (the remote closed it meanwhile), the request is
 * retried once on a fresh stream and no failure is reported. Every stream is
 * closed (idle in the pool for `idleStreamTimeout`) or aborted (any failure,
 * unsolicited data, `stop()`) on every path.
 *
 * Outcomes: every dial attempt yields one `dial` outcome, and every
 * `request()`/`send()` call that passes local validation yields exactly one
 * `request` outcome. A request whose dial failed reports both, with the same
 * reason. `latencyMs` counts from the start of the request window and is 0 when
 * the request failed before it (dial failure, overload, abort while queued).
 *
 * Usage: each call passing local validation counts one request, each dial
 * attempt one dial, each stream opened one stream, and the framed bytes
 * written and read, in `stats` and, under the caller's `purpose` (default
 * 'other'), in the sink (`metrics.ts`). A stream reused from the pool counts
 * no new stream.
 *
 * Bounds (the behaviour at each is tested)
 *
 * Concurrent requests per peer: `maxStreamsPerPeer`. More wait in a per-peer
 * list of at most `maxQueuedPerPeer` (FIFO, except that upkeep, purposes
 * 'refresh' and 'republish', waits behind other work: `wait-list.ts`); beyond that a request fails at once with
 * reason `overloaded`. Idle pooled streams per peer: at most
 * `maxStreamsPerPeer` (requests take idle streams before opening new ones, so
 * a peer never holds more; a stream beyond it would be closed, not parked). Peers
 * with state (pooled streams, requests in flight or queued): `maxPeers`. A new
 * peer evicts the least recently used peer that only has idle streams (they are
 * closed); if every tracked peer is busy the request fails with `overloaded`.
 */

import { InvalidParametersError } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { Message } from '../generated/dht.ts'
import { InvalidMessageError, MessageTooLargeError, RequestFailedError } from './errors.ts'
import { DEFAULT_MAX_MESSAGE_SIZE, decodeMessage, frameAll, framedLength, lpOptions, writeBytes } from './handler.ts'
import { emptyTraffic } from './metrics.ts'
import { WaitList, isBackground } from './wait-list.ts'
import type { FailureReason } from './errors.ts'
import type { OutboundSink, Purpose, TrafficFigures } from './metrics.ts'
import type { MessageType } from '../generated/dht.ts'
import type { ComponentLogger, Connection, Logger, PeerId, Startable, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { LengthPrefixedStream } from '@libp2p/utils'

export interface MessengerInit {
  /** Protocol to open streams on, e.g. '/ipfs/kad/1.0.0' */
  protocol: string
  /**
   * Time allowed to get a connection, in ms (> 0)
   *
   * @default 5000
   */
  dialTimeout?: number
  /**
   * Time from stream open (or reuse) to response, in ms (> 0)
   *
   * @default 10000
   */
  requestTimeout?: number
  /**
   * Largest message in bytes, both directions (4 MiB)
   *
   * @default 4194304
   */
  maxMessageSize?: number
  /**
   * Concurrent outbound requests per peer (>= 1); more wait in a FIFO (upkeep behind other work)
   *
   * @default 2
   */
  maxStreamsPerPeer?: number
  /**
   * Requests waiting per peer (>= 0); beyond that a request fails with 'overloaded'
   *
   * @default 32
   */
  maxQueuedPerPeer?: number
  /**
   * Peers with pooled or queued state (>= 1); idle pools are evicted LRU beyond it
   *
   * @default 1024
   */
  maxPeers?: number
  /**
   * An idle pooled stream is closed after this many ms. Keep it below the 10 s
   * inbound idle timeout used by `@libp2p/kad-dht` and go-libp2p-kad-dht.
   *
   * @default 4000
   */
  idleStreamTimeout?: number
}

export interface MessengerComponents {
  connectionManager: ConnectionManager
  logger: ComponentLogger
}

/**
 * What happened to one dial or one request, for peer scoring. Reasons
 * 'aborted' and 'overloaded' are local and say nothing about the peer.
 */
export type Outcome =
  | { type: 'dial', peer: PeerId, ok: true, durationMs: number }
  | { type: 'dial', peer: PeerId, ok: false, durationMs: number, reason: FailureReason }
  | { type: 'request', peer: PeerId, messageType: MessageType, ok: true, latencyMs: number, useful: boolean }
  | { type: 'request', peer: PeerId, messageType: MessageType, ok: false, latencyMs: number, reason: FailureReason }

export interface RequestOptions {
  signal?: AbortSignal
  /** Overrides `requestTimeout` for this request */
  timeout?: number
  /** Overrides `dialTimeout` for this request's dial, if it needs one */
  dialTimeout?: number
  /**
   * Judges whether a response helped (brought closer peers, a record,
   * providers); reported as `useful` in the outcome. Default: any response
   * did.
   */
  useful?(response: Message): boolean
  /**
   * Send over a connection we opened, dialling a new one (even while the
   * peer has connections of its own to us) if there is none: the request
   * then proves the peer can be dialled. Used for the routing table's verify.
   */
  ownConnection?: boolean
  /** Called before a new connection is dialled (not when one exists) */
  onDial?(): void
  /** Called just before the message is written */
  onSend?(): void
  /**
   * The operation this request serves: its requests, dials, streams and
   * bytes are billed to it in the usage table. Upkeep ('refresh',
   * 'republish') waits behind other requests queued for the same peer.
   *
   * @default 'other'
   */
  purpose?: Purpose
}

export type OutboundMessage = Partial<Message> & { type: MessageType }

/**
 * Messages of one type already encoded and framed: `count` messages, each
 * behind its varint length prefix, in one buffer, the largest of them
 * `largest` bytes (its prefix not counted)
 */
export interface EncodedMessages {
  type: MessageType
  bytes: Uint8Array
  count: number
  largest: number
}

/** A stream with its framing, parked in or taken from a peer's pool */
interface Pooled {
  stream: Stream
  lp: LengthPrefixedStream<Stream>
  connection: Connection
  /** bytes received and bytes consumed as messages: equal means nothing unread */
  received: number
  consumed: number
  parked: boolean
  timer?: ReturnType<typeof setTimeout>
}

interface Waiter { resolve(): void }

interface PeerState {
  active: number
  waiters: WaitList<Waiter>
  idle: Pooled[]
}

/** Per-request state: one controller aborted by the caller, stop() or the current phase's timer */
interface Ctx {
  controller: AbortController
  /** the request window's length */
  timeout: number
  phase: 'queued' | 'dial' | 'request'
  expired: boolean
  timer?: ReturnType<typeof setTimeout>
  windowStart?: number
  sent: boolean
  purpose: Purpose
  /** the connection this request dialled, if it dialled one */
  dialled?: Connection
}

/**
 * Milliseconds a dial or request timer may fire late before we take it that
 * our own event loop, not the peer, used up the window (timers on a busy but
 * healthy loop fire a few ms late; a blocked one, hundreds)
 */
export const STALL_SLACK = 50

/** Times one dial or request window is extended for our own stalls before it expires regardless */
export const MAX_STALL_EXTENSIONS = 3

/** How a failure to open a stream on a live connection is classified, by error name */
const STREAM_OPEN_FAILURES: Record<string, FailureReason> = {
  UnsupportedProtocolError: 'protocol-unsupported',
  TooManyOutboundProtocolStreamsError: 'overloaded'
}

type MessengerConfig = Required<Omit<MessengerInit, 'protocol'>>

const DEFAULTS: MessengerConfig = {
  dialTimeout: 5_000,
  requestTimeout: 10_000,
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  maxStreamsPerPeer: 2,
  maxQueuedPerPeer: 32,
  maxPeers: 1024,
  idleStreamTimeout: 4_000
}

function checkInteger (name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidParametersError(`${name} must be an integer >= ${min}, got ${value}`)
  }
  return value
}

export class Messenger implements Startable {
  private readonly components: MessengerComponents
  private readonly log: Logger
  private readonly protocol: string
  private readonly config: MessengerConfig
  private readonly onOutcome?: (o: Outcome) => void
  /** insertion order is recency order: the first entry is the least recently used */
  private readonly peers = new Map<string, PeerState>()
  /** requests in flight or queued; bounded by maxPeers * (maxStreamsPerPeer + maxQueuedPerPeer) */
  private readonly requests = new Map<Ctx, Promise<unknown>>()
  private readonly sink?: OutboundSink
  /**
   * What went through here, whatever the purpose: requests that passed
   * local validation, their failures, dials, streams opened, framed bytes
   */
  readonly stats: TrafficFigures = emptyTraffic()
  /** connections dialled for a verify and closed after it, the peer's own connection to us being open */
  closedDuplicates = 0
  /** dial and request windows extended because their timer fired late (our event loop was blocked) */
  stalledTimeouts = 0
  private running = false

  constructor (components: MessengerComponents, init: MessengerInit, onOutcome?: (o: Outcome) => void, sink?: OutboundSink) {
    this.components = components
    this.log = components.logger.forComponent('priority-dht:messenger')
    if (typeof init.protocol !== 'string' || init.protocol === '') {
      throw new InvalidParametersError('protocol is required')
    }
    this.protocol = init.protocol
    this.config = { ...DEFAULTS }
    for (const name of Object.keys(DEFAULTS) as Array<keyof MessengerConfig>) {
      this.config[name] = checkInteger(name, init[name] ?? DEFAULTS[name], name === 'maxQueuedPerPeer' ? 0 : 1)
    }
    this.onOutcome = onOutcome
    this.sink = sink
  }

  start (): void {
    this.running = true
  }

  /** Abort in-flight and queued requests ('aborted'), abort pooled streams, clear all timers */
  async stop (): Promise<void> {
    this.running = false
    for (const ctx of this.requests.keys()) {
      ctx.controller.abort()
    }
    for (const state of this.peers.values()) {
      for (const entry of state.idle.splice(0)) {
        this.unpark(entry)
        entry.stream.abort(new Error('Messenger stopped'))
      }
    }
    this.peers.clear()
    await Promise.allSettled([...this.requests.values()])
  }

  /**
   * Send a request and wait for the response of the same type. Rejects with
   * `RequestFailedError` (its `reason` classifies the failure), or with
   * `MessageTooLargeError` before anything is sent.
   */
  async request (peer: PeerId, message: OutboundMessage, options: RequestOptions = {}): Promise<Message> {
    const response = await this.track(peer, message, true, options)
    return response as Message
  }

  /**
   * Best effort, no response expected (e.g. ADD_PROVIDER): resolves once the
   * message is written. Peer failures and 'overloaded' are reported through
   * onOutcome only; rejects when the caller's signal fires (reason 'aborted'),
   * or with `MessageTooLargeError` before anything is sent.
   */
  async send (peer: PeerId, message: OutboundMessage, options: { signal?: AbortSignal, purpose?: Purpose } = {}): Promise<void> {
    try {
      await this.track(peer, message, false, options)
    } catch (err) {
      // peer failures always arrive as RequestFailedError; anything else is local
      if (!(err instanceof RequestFailedError) || options.signal?.aborted === true) {
        throw err
      }
    }
  }

  /**
   * Like `send`, but a peer failure rejects with `RequestFailedError`: for
   * callers that move on to another peer when one fails (puts).
   */
  async write (peer: PeerId, message: OutboundMessage, options: RequestOptions = {}): Promise<void> {
    await this.track(peer, message, false, options)
  }

  /**
   * Writes `messages` (none of which takes a response, e.g. ADD_PROVIDER)
   * on one stream followed by `ack`, a request every peer answers (PING),
   * and resolves with the answer to `ack`. A peer serves the messages of a
   * stream one after another, so the answer says it has handled every
   * message before it: a bulk writer that waits for it never has more than
   * one batch unread at the peer (it goes at the pace the peer serves,
   * limits included, instead of filling the stream's window and timing
   * out), and counts a record as delivered only once the peer took it. One
   * slot, one stream and one request window (`requestTimeout`) for the
   * batch; each message counts as a request in `stats` and the sink, the
   * batch yields one outcome (for `ack`). Rejects like `request`; then no
   * message of the batch may be taken as delivered.
   */
  async writeAcknowledged (peer: PeerId, messages: OutboundMessage[] | EncodedMessages, ack: OutboundMessage, options: RequestOptions = {}): Promise<Message> {
    let before: Uint8Array
    if (Array.isArray(messages)) {
      before = frameAll(messages.map(m => this.encode(m)))
    } else {
      this.checkLength(messages.largest)
      before = messages.bytes
    }
    const count = Array.isArray(messages) ? messages.length : messages.count
    for (let i = 0; i < count; i++) {
      this.stats.requests++
      this.sink?.request(options.purpose ?? 'other', Array.isArray(messages) ? messages[i].type : messages.type)
    }
    const response = await this.track(peer, ack, true, options, before)
    return response as Message
  }

  private encode (message: OutboundMessage): Uint8Array {
    return this.checkSize(Message.encode(message))
  }

  private checkSize (bytes: Uint8Array): Uint8Array {
    this.checkLength(bytes.byteLength)
    return bytes
  }

  private checkLength (length: number): void {
    if (length > this.config.maxMessageSize) {
      throw new MessageTooLargeError(`Message of ${length} bytes exceeds the ${this.config.maxMessageSize} byte limit`)
    }
  }

  /** `before`: messages (framed, see `frameAll`) written ahead of `message` on the same stream, in the same window */
  private async track (peer: PeerId, message: OutboundMessage, expectResponse: boolean, options: RequestOptions, before?: Uint8Array): Promise<Message | undefined> {
    const bytes = this.encode(message)
    const timeout = checkInteger('timeout', options.timeout ?? this.config.requestTimeout, 1)
    const ctx: Ctx = { timeout, controller: new AbortController(), phase: 'queued', expired: false, sent: false, purpose: options.purpose ?? 'other' }
    this.stats.requests++
    this.sink?.request(ctx.purpose, message.type)
    const onAbort = (): void => { ctx.controller.abort() }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    const run = this.run(peer, message.type, frameAll([bytes], before), expectResponse, ctx, options)
    this.requests.set(ctx, run)
    try {
      return await run
    } finally {
      this.disarm(ctx)
      options.signal?.removeEventListener('abort', onAbort)
      this.requests.delete(ctx)
    }
  }

  /** `payload`: what goes on the stream, every message framed (see `frameAll`) */
  private async run (peer: PeerId, messageType: MessageType, payload: Uint8Array, expectResponse: boolean, ctx: Ctx, options: RequestOptions): Promise<Message | undefined> {
    const key = peer.toString()
    try {
      if (!this.running || options.signal?.aborted === true) {
        throw new RequestFailedError('aborted', key, 'Messenger not running or request aborted')
      }
      const state = this.stateFor(key)
      await this.acquire(key, state, ctx)
      let response: Message | undefined
      try {
        response = await this.exchange(peer, state, messageType, payload, expectResponse, ctx, options)
      } finally {
        this.release(key, state)
      }
      const latencyMs = this.latency(ctx)
      this.sink?.requestDone(ctx.purpose, messageType, latencyMs)
      this.report({ type: 'request', peer, messageType, ok: true, latencyMs, useful: response == null || options.useful == null || options.useful(response) })
      return response
    } catch (err: any) {
      const failure = this.fail(key, ctx, err, 'stream-reset')
      this.log('%s to %p failed: %s', messageType, peer, failure.reason)
      this.stats.failures++
      this.sink?.requestFailed(ctx.purpose, messageType, failure.reason)
      this.report({ type: 'request', peer, messageType, ok: false, latencyMs: this.latency(ctx), reason: failure.reason })
      throw failure
    }
  }

  /** Runs while holding a slot: pick or open a stream, write, read, park */
  /** `payload`: the messages written in turn, framed; the response, if any, answers the last */
  private async exchange (peer: PeerId, state: PeerState, messageType: MessageType, payload: Uint8Array, expectResponse: boolean, ctx: Ctx, options: RequestOptions): Promise<Message | undefined> {
    let entry = options.ownConnection === true ? undefined : this.takeIdle(state)
    let reused = entry != null
    if (entry == null) {
      const connection = await this.connect(peer, ctx, options)
      this.openWindow(ctx)
      entry = await this.openStream(peer, connection, ctx)
    } else {
      this.openWindow(ctx)
    }
    const signal = ctx.controller.signal
    while (true) {
      const before = entry.received
      try {
        if (!ctx.sent) {
          ctx.sent = true
          options.onSend?.()
        }
        this.counted(ctx, await writeBytes(entry.stream, payload, { signal }), 0)
        let response: Message | undefined
        if (expectResponse) {
          const buf = await entry.lp.read({ signal })
          entry.consumed += framedLength(buf.byteLength)
          this.counted(ctx, 0, framedLength(buf.byteLength))
          response = decodeMessage(buf)
          if (response.type !== messageType) {
            throw new InvalidMessageError(`Expected a ${messageType} response, got ${response.type}`)
          }
        }
        if (options.ownConnection === true && ctx.dialled === entry.connection && this.otherConnection(peer, entry.connection)) {
          // the dial has proved the peer dialable, and its own connection to us
          // carries the traffic: two connections to one peer would each be
          // kept alive (libp2p's connection monitor pings every connection)
          const connection = entry.connection
          this.close(entry)
          connection.close().catch(err => { connection.abort(err) })
          this.closedDuplicates++
          return response
        }
        this.park(state, entry)
        return response
      } catch (err: any) {
        entry.stream.abort(err)
        const failure = this.fail(peer.toString(), ctx, err, badResponse(err) ? 'bad-response' : 'stream-reset')
        if (!reused || failure.reason !== 'stream-reset' || entry.received !== before) {
          throw failure
        }
        // the pooled stream died before any response byte: retry once on a
        // fresh stream, with a fresh request window
        this.log('reused stream to %p failed before a response, retrying on a new stream', peer)
        reused = false
        const connection = await this.connect(peer, ctx, options)
        this.openWindow(ctx)
        entry = await this.openStream(peer, connection, ctx)
      }
    }
  }

  private async connect (peer: PeerId, ctx: Ctx, options: RequestOptions): Promise<Connection> {
    const own = options.ownConnection === true
    const existing = this.components.connectionManager.getConnections(peer)
      .find(c => c.status === 'open' && c.limits == null && (!own || c.direction === 'outbound'))
    if (existing != null) {
      return existing
    }
    options.onDial?.()
    this.stats.dials++
    this.sink?.dial(ctx.purpose)
    ctx.phase = 'dial'
    this.arm(ctx, options.dialTimeout ?? this.config.dialTimeout)
    const start = Date.now()
    try {
      const connection = await this.components.connectionManager.openConnection(peer, { signal: ctx.controller.signal, force: own })
      this.report({ type: 'dial', peer, ok: true, durationMs: Date.now() - start })
      ctx.dialled = connection
      return connection
    } catch (err: any) {
      const failure = this.fail(peer.toString(), ctx, err, err?.name === 'TimeoutError' ? 'dial-timeout' : 'dial-refused')
      this.report({ type: 'dial', peer, ok: false, durationMs: Date.now() - start, reason: failure.reason })
      throw failure
    } finally {
      this.disarm(ctx)
    }
  }

  private async openStream (peer: PeerId, connection: Connection, ctx: Ctx): Promise<Pooled> {
    let stream: Stream
    try {
      stream = await connection.newStream(this.protocol, { signal: ctx.controller.signal })
    } catch (err: any) {
      throw this.fail(peer.toString(), ctx, err, STREAM_OPEN_FAILURES[err?.name] ?? 'stream-reset')
    }
    this.stats.streams++
    this.sink?.stream(ctx.purpose)
    const entry: Pooled = { stream, lp: lpStream(stream, lpOptions(this.config.maxMessageSize)), connection, received: 0, consumed: 0, parked: false }
    stream.addEventListener('message', (evt: StreamMessageEvent) => {
      entry.received += evt.data.byteLength
      if (entry.parked) {
        // unsolicited data on an idle stream: it cannot be trusted any more
        this.evict(peer.toString(), entry)
        stream.abort(new InvalidMessageError('Unsolicited data on an idle stream'))
      }
    })
    const onGone = (): void => {
      if (entry.parked) {
        this.evict(peer.toString(), entry)
        this.close(entry)
      }
    }
    stream.addEventListener('close', onGone)
    stream.addEventListener('remoteCloseWrite', onGone)
    return entry
  }

  /** Turn any error into a classified failure; a fired signal decides first */
  private fail (peer: string, ctx: Ctx, err: any, fallback: FailureReason): RequestFailedError {
    if (err instanceof RequestFailedError) {
      return err
    }
    let reason = fallback
    if (ctx.controller.signal.aborted && !ctx.expired) {
      reason = 'aborted'
    } else if (ctx.controller.signal.aborted) {
      reason = ctx.phase === 'dial' ? 'dial-timeout' : 'timeout'
    }
    return new RequestFailedError(reason, peer, `Request to ${peer} failed (${reason}): ${err?.message ?? err}`, { cause: err })
  }

  /** Framed bytes written and read for a request, in the totals and for its purpose */
  private counted (ctx: Ctx, sent: number, received: number): void {
    this.stats.bytesSent += sent
    this.stats.bytesReceived += received
    this.sink?.bytes(ctx.purpose, sent, received)
  }

  private openWindow (ctx: Ctx): void {
    ctx.phase = 'request'
    ctx.windowStart = Date.now()
    this.arm(ctx, ctx.timeout)
  }

  /**
   * Starts the current phase's timer. A timer that fires more than
   * STALL_SLACK late says our own event loop was blocked: what the peer
   * sent meanwhile is still unread (timers run before the poll phase reads
   * sockets), so the phase gets the time it lost back, up to another `ms`,
   * at most MAX_STALL_EXTENSIONS times, before it counts as the peer's
   * timeout.
   */
  private arm (ctx: Ctx, ms: number): void {
    this.disarm(ctx)
    let deadline = Date.now() + ms
    let extensions = 0
    const fire = (): void => {
      const late = Date.now() - deadline
      if (late > STALL_SLACK && extensions < MAX_STALL_EXTENSIONS) {
        extensions++
        this.stalledTimeouts++
        this.sink?.stalled?.()
        const more = Math.min(late, ms)
        deadline = Date.now() + more
        ctx.timer = setTimeout(fire, more)
        return
      }
      ctx.expired = true
      ctx.controller.abort()
    }
    ctx.timer = setTimeout(fire, ms)
  }

  private disarm (ctx: Ctx): void {
    clearTimeout(ctx.timer)
    ctx.timer = undefined
  }

  private latency (ctx: Ctx): number {
    return ctx.windowStart == null ? 0 : Date.now() - ctx.windowStart
  }

  private report (outcome: Outcome): void {
    try {
      this.onOutcome?.(outcome)
    } catch (err) {
      this.log.error('onOutcome threw - %e', err)
    }
  }

  /** Look up (and mark as most recently used) or create a peer's state */
  private stateFor (key: string): PeerState {
    let state = this.peers.get(key)
    if (state != null) {
      this.peers.delete(key)
      this.peers.set(key, state)
      return state
    }
    if (this.peers.size >= this.config.maxPeers && !this.evictIdlePeer()) {
      throw new RequestFailedError('overloaded', key, `All ${this.config.maxPeers} tracked peers are busy`)
    }
    state = { active: 0, waiters: new WaitList(), idle: [] }
    this.peers.set(key, state)
    return state
  }

  /** Close the pool of the least recently used peer with nothing in flight; false if there is none */
  private evictIdlePeer (): boolean {
    for (const [key, state] of this.peers) {
      if (state.active === 0 && state.waiters.size === 0) {
        for (const entry of state.idle.splice(0)) {
          this.unpark(entry)
          this.close(entry)
        }
        this.peers.delete(key)
        return true
      }
    }
    return false
  }

  private async acquire (key: string, state: PeerState, ctx: Ctx): Promise<void> {
    if (state.active < this.config.maxStreamsPerPeer) {
      state.active++
      return
    }
    if (state.waiters.size >= this.config.maxQueuedPerPeer) {
      throw new RequestFailedError('overloaded', key, `${state.waiters.size} requests already queued for ${key}`)
    }
    const signal = ctx.controller.signal
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
      }
      const onAbort = (): void => {
        state.waiters.remove(waiter)
        reject(new Error('Aborted while queued'))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      state.waiters.push(waiter, isBackground(ctx.purpose))
    })
  }

  /** Hand the slot to the next waiter (FIFO) or free it */
  private release (key: string, state: PeerState): void {
    const next = state.waiters.shift()
    if (next != null) {
      next.resolve()
    } else {
      state.active--
    }
    this.gc(key, state)
  }

  private gc (key: string, state: PeerState): void {
    if (state.active === 0 && state.waiters.size === 0 && state.idle.length === 0 && this.peers.get(key) === state) {
      this.peers.delete(key)
    }
  }

  private healthy (entry: Pooled): boolean {
    const { stream } = entry
    return stream.status === 'open' && stream.writeStatus === 'writable' && stream.remoteWriteStatus === 'writable' &&
      entry.connection.status === 'open' && entry.received === entry.consumed
  }

  /** Most recently parked first; unusable streams found on the way are aborted */
  private takeIdle (state: PeerState): Pooled | undefined {
    while (state.idle.length > 0) {
      const entry = state.idle.pop() as Pooled
      this.unpark(entry)
      if (this.healthy(entry)) {
        return entry
      }
      entry.stream.abort(new Error('Pooled stream no longer usable'))
    }
  }

  /** Park for reuse, or close when stopped, unusable, or the pool is full */
  private park (state: PeerState, entry: Pooled): void {
    if (entry.received !== entry.consumed) {
      entry.stream.abort(new InvalidMessageError('Unsolicited data after the response'))
      return
    }
    if (!this.running || !this.healthy(entry) || state.idle.length >= this.config.maxStreamsPerPeer) {
      this.close(entry)
      return
    }
    const key = entry.connection.remotePeer.toString()
    entry.parked = true
    entry.timer = setTimeout(() => {
      this.evict(key, entry)
      this.close(entry)
    }, this.config.idleStreamTimeout)
    state.idle.push(entry)
  }

  private unpark (entry: Pooled): void {
    entry.parked = false
    clearTimeout(entry.timer)
    entry.timer = undefined
  }

  /** Remove a parked stream from its peer's pool */
  private evict (key: string, entry: Pooled): void {
    this.unpark(entry)
    const state = this.peers.get(key)
    if (state == null) {
      return
    }
    const index = state.idle.indexOf(entry)
    if (index !== -1) {
      state.idle.splice(index, 1)
    }
    this.gc(key, state)
  }

  /** Whether `peer` has an open, unlimited connection other than `connection` */
  private otherConnection (peer: PeerId, connection: Connection): boolean {
    return this.components.connectionManager.getConnections(peer).some(c => c !== connection && c.status === 'open' && c.limits == null)
  }

  private close (entry: Pooled): void {
    entry.stream.close().catch(err => { entry.stream.abort(err) })
  }
}

function badResponse (err: any): boolean {
  return err instanceof InvalidMessageError || ['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'StreamBufferError'].includes(err?.name)
}
