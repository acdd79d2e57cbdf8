/**
 * Inbound protocol handler: reads length-prefixed DHT messages from each
 * inbound stream in a loop (clients such as go-libp2p-kad-dht and
 * `@libp2p/kad-dht` send several sequential requests on one stream), hands
 * each to `dispatch` and writes the response, if any.
 *
 * A stream ends when:
 * - the remote closes its write end between messages: we close ours;
 * - no message starts within `idleTimeout`: we close it;
 * - a message is malformed (undecodable, oversize, unknown type, truncated): an `InvalidMessageError` is logged and only that stream is aborted;
 * - `dispatch` throws or takes longer than `handlerTimeout`: logged, aborted;
 * - `stop()`: every open inbound stream is aborted.
 *
 * Inbound messages are capped at `maxMessageSize` and decoded with
 * `MESSAGE_LIMITS`; the messenger applies the same to responses.
 *
 * Usage: streams accepted, messages received and their framed bytes,
 * responses written, and failures (streams refused, malformed messages,
 * messages not answered) are counted in `stats` and reported to the sink
 * (`metrics.ts`), all under the purpose 'inbound'.
 *
 * Bounds: libp2p enforces `maxInboundStreams`/`maxOutboundStreams` per
 * connection. Across all connections at most `maxStreams` inbound streams are
 * served at once, and at most `maxStreamsPerPeer` of one peer; a stream
 * arriving beyond either is aborted immediately. Peers `isValued` does not
 * vouch for (strangers) may hold only `strangerShare` of `maxStreams`: the
 * rest stays for valued peers, so under load a stranger's stream is refused
 * before a valued peer's.
 *
 * Rate and concurrency (see {@link InboundHandler.answer}): each valued
 * peer has a token bucket of `requestBurst` messages refilled at
 * `requestsPerSecond`. A stranger has a small bucket of its own
 * (`lightRequestBurst`, `lightRequestsPerSecond`): while it has tokens the
 * stranger is light and passes; beyond it the stranger is heavy and waits
 * for a token of one pool all strangers share (`strangerRequestBurst`,
 * `strangerRequestsPerSecond`; light strangers spend its tokens too), so
 * many peer ids get no more together than one. A message arriving on an
 * empty bucket waits for its token (the stream is not read meanwhile, so a
 * flooder is slowed by back-pressure) unless the wait would exceed
 * `maxRequestDelay`: then its stream is aborted with a
 * {@link RateLimitedError}. At most `maxRequestsInFlight` messages are
 * dispatched at once across all peers; others wait their turn (one per
 * stream at most, so the wait list is bounded by `maxStreams`).
 */

import { InvalidParametersError } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { pEvent } from 'p-event'
import * as varint from 'uint8-varint'
import { alloc } from 'uint8arrays/alloc'
import { Message } from '../generated/dht.ts'
import { HandlerAbortedError, InvalidMessageError, MessageTooLargeError, RateLimitedError } from './errors.ts'
import { PeerBuckets, PeerCounts, SharedBucket } from './limits.ts'
import { emptyTraffic } from './metrics.ts'
import { Slots } from './slots.ts'
import type { InboundError, InboundSink, TrafficFigures } from './metrics.ts'
import type { MessageType } from '../generated/dht.ts'
import type { AbortOptions, ComponentLogger, Connection, Logger, PeerId, Startable, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { Registrar } from '@libp2p/interface-internal'
import type { Uint8ArrayList } from 'uint8arraylist'

// Framing and decode limits, shared with the messenger (the outbound side)

/** 4 MiB, the largest message (excluding its length prefix) sent or accepted */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024

/**
 * Repeated-field limits applied when decoding any message; a message over a
 * limit is rejected as a whole. Real peers send at most k = 20 closer peers and
 * a handful of providers, each with a few addresses.
 * - closerPeers: 100, providerPeers: 100, addrs per peer: 64
 */
export const MESSAGE_LIMITS = {
  closerPeers: 100,
  providerPeers: 100,
  closerPeers$: { addrs: 64 },
  providerPeers$: { addrs: 64 }
}

/** Decode one message body, throwing `InvalidMessageError` on any problem */
export function decodeMessage (buf: Uint8Array | Uint8ArrayList): Message {
  try {
    return Message.decode(buf, { limits: MESSAGE_LIMITS })
  } catch (err: any) {
    throw new InvalidMessageError(`Could not decode message: ${err.message}`, { cause: err })
  }
}

/** Bytes a message of `length` bytes occupies on the wire, prefix included */
export function framedLength (length: number): number {
  let prefix = 1
  for (let n = length; n >= 0x80; n = Math.floor(n / 0x80)) {
    prefix++
  }
  return prefix + length
}

/**
 * `frames` in one buffer, each behind its length prefix, after `leading`
 * (bytes already framed the same way). The length-prefixed wrapper of
 * `@libp2p/utils` hands the stream a list of pieces (a prefix and a body
 * per message), and noise 17 and the TCP transport keep that segmentation
 * down to the socket: one `write` per piece, so 128 messages made about 400
 * socket writes (and as many noise frames for the receiver to decrypt); one
 * contiguous buffer goes out in a few.
 */
export function frameAll (frames: Uint8Array[], leading?: Uint8Array): Uint8Array {
  let size = leading?.byteLength ?? 0
  for (const f of frames) {
    size += framedLength(f.byteLength)
  }
  // not allocUnsafe, whose small buffers are slices of one shared pool:
  // with it, test/libp2p/bulk.spec.ts's aborted case found a provider for
  // a key never provided, in every run (cause not pinned down)
  const out = alloc(size)
  let at = 0
  if (leading != null) {
    out.set(leading, 0)
    at = leading.byteLength
  }
  for (const f of frames) {
    varint.encodeUint8Array(f.byteLength, out, at)
    at += varint.encodingLength(f.byteLength)
    out.set(f, at)
    at += f.byteLength
  }
  return out
}

/**
 * Writes `bytes` (messages already framed, see `frameAll`) to `stream` and
 * waits for the stream to drain if it is full. Resolves to the bytes
 * written.
 */
export async function writeBytes (stream: Stream, bytes: Uint8Array, options: AbortOptions = {}): Promise<number> {
  if (!stream.send(bytes)) {
    await pEvent(stream, 'drain', { signal: options.signal, rejectionEvents: ['close'] })
  }
  return bytes.byteLength
}

/** Writes `frames` to `stream` as one buffer (see `frameAll`, `writeBytes`) */
export async function writeFramed (stream: Stream, frames: Uint8Array[], options: AbortOptions = {}): Promise<number> {
  return writeBytes(stream, frameAll(frames), options)
}

/** Options for the length-prefixed wrapper so an oversize prefix is caught before buffering */
export function lpOptions (maxMessageSize: number): { maxDataLength: number, maxBufferSize: number } {
  return { maxDataLength: maxMessageSize, maxBufferSize: framedLength(maxMessageSize) }
}

export interface InboundHandlerInit {
  protocol: string
  /**
   * Largest message in bytes, accepted or sent (4 MiB)
   *
   * @default 4194304
   */
  maxMessageSize?: number
  /**
   * Inbound streams per connection (>= 1), passed to `registrar.handle`
   *
   * @default 64
   */
  maxInboundStreams?: number
  /**
   * Outbound streams per connection (>= 1), passed to `registrar.handle`
   *
   * @default 64
   */
  maxOutboundStreams?: number
  /**
   * Inbound streams served at once across all connections (>= 1); a stream
   * beyond that is aborted immediately
   *
   * @default 1024
   */
  maxStreams?: number
  /**
   * Inbound streams one peer may hold open at once across all its
   * connections (>= 1); a stream beyond that is aborted immediately
   *
   * @default 32
   */
  maxStreamsPerPeer?: number
  /**
   * Messages dispatched at once across all peers (>= 1); more wait for a
   * turn, one per stream at most
   *
   * @default 128
   */
  maxRequestsInFlight?: number
  /**
   * Sustained messages per second accepted from one valued peer (>= 1;
   * strangers: see `strangerRequestsPerSecond`). Sized for
   * an honest bulk provider: `provideMany` of 10 000 CIDs on 40 nodes sends
   * each node about 5 000 ADD_PROVIDER messages within seconds (at 100/s
   * that run took 66.7 s instead of 22 s)
   *
   * @default 1000
   */
  requestsPerSecond?: number
  /**
   * Messages one peer may send at once above the sustained rate (>= 1)
   *
   * @default 2000
   */
  requestBurst?: number
  /**
   * Sustained messages per second of all heavy strangers together (>= 1),
   * in place of each one's `requestsPerSecond`. A stranger is a peer
   * `isValued` does not vouch for; a heavy one sends beyond
   * `lightRequestsPerSecond`. Heavy strangers wait for a token of this one
   * pool, so however many peer ids a flood uses, together they get this
   * rate (less what light strangers spend), and valued peers and light
   * strangers keep the rest of the event loop. A bulk provider we have no
   * history with is paced to it, not refused
   *
   * @default 300
   */
  strangerRequestsPerSecond?: number
  /**
   * Tokens the strangers' pool holds at most (>= 1)
   *
   * @default 600
   */
  strangerRequestBurst?: number
  /**
   * A stranger sending within this rate (messages per second, >= 1) and
   * `lightRequestBurst`, with at most one other message of its own being
   * answered, is light: its messages never wait for the strangers' pool
   * (they spend its tokens all the same). A client's lookup sends a peer a
   * few messages, one at a time
   *
   * @default 100
   */
  lightRequestsPerSecond?: number
  /**
   * Messages a light stranger may send at once (>= 1); every fresh peer
   * id starts with this many, so a flood of fresh ids gets this many each
   * before it waits for the pool
   *
   * @default 20
   */
  lightRequestBurst?: number
  /**
   * Longest time in ms a message over its peer's rate waits for a token
   * (>= 0); a message that would wait longer aborts its stream with
   * RateLimitedError
   *
   * @default 2000
   */
  maxRequestDelay?: number
  /**
   * Peers whose request rate is tracked at once (>= 1); beyond that the peer
   * heard from longest ago is forgotten (and starts again with a full bucket)
   *
   * @default 4096
   */
  maxTrackedPeers?: number
  /**
   * A stream on which no message arrives within this many ms is closed
   *
   * @default 10000
   */
  idleTimeout?: number
  /**
   * Time in ms allowed to dispatch one message and write its response
   *
   * @default 10000
   */
  handlerTimeout?: number
  /**
   * Share of `maxStreams` (0 < share <= 1) that streams from peers
   * `isValued` does not vouch for may hold; at least one stream
   *
   * @default 0.75
   */
  strangerShare?: number
  /** Whether `peer` may use all of `maxStreams` (the service: peers that have served us and are not bad now); unset: every peer may */
  isValued?(peer: PeerId): boolean
  /**
   * A session for each inbound stream from `peer`, handed to dispatch with
   * every message of the stream (see {@link InboundSession})
   */
  session?(peer: PeerId): InboundSession
}

/**
 * What dispatch may leave undone for one stream: messages that take no
 * response (ADD_PROVIDER) whose writes it deferred, so that a run of them
 * is stored together. The handler flushes the session before it writes any
 * response on the stream (a response acknowledges what came before it),
 * when nothing more has arrived on the stream (what was sent is all
 * stored before the handler waits for more), and when the stream ends,
 * however it ends. Dispatch bounds `pending` itself.
 */
export interface InboundSession {
  /** deferred messages not written yet */
  readonly pending: number
  flush(options: AbortOptions): Promise<void>
}

export interface InboundHandlerComponents {
  registrar: Registrar
  logger: ComponentLogger
}

/**
 * Answer one inbound message; `undefined` means no response (e.g.
 * ADD_PROVIDER). `connection` is the one the message came on, if any.
 */
export type Dispatch = (from: PeerId, message: Message, connection: Connection | undefined, options: { signal: AbortSignal, session?: InboundSession }) => Promise<Partial<Message> & { type: MessageType } | undefined>

/** What the inbound limits refused since start (counters only grow) */
export interface InboundStats {
  /** messages decoded (each then answered, refused or failed) */
  messages: number
  /** streams aborted on arrival: `maxStreams` reached */
  refusedStreams: number
  /** streams aborted on arrival: the peer's `maxStreamsPerPeer` reached */
  refusedPeerStreams: number
  /** messages that waited for their peer's rate */
  delayedRequests: number
  /** messages refused (their stream aborted): the wait would exceed `maxRequestDelay` */
  rateLimitedRequests: number
  /** messages that waited for a `maxRequestsInFlight` turn */
  queuedRequests: number
  /** messages of heavy strangers that waited for the strangers' pool (`strangerRequestsPerSecond`) */
  pooledRequests: number
}

/** A stranger with this many of its messages being answered already is heavy, whatever its rate */
const LIGHT_IN_FLIGHT = 2

const DATA_ERRORS = ['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError', 'StreamBufferError']

function positiveInteger (name: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidParametersError(`${name} must be an integer >= ${min}, got ${value}`)
  }
  return value
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** A controller aborted by a timer or by `parent`; `clear()` drops both */
function timed (ms: number, parent: AbortSignal): { signal: AbortSignal, expired(): boolean, clear(): void } {
  const controller = new AbortController()
  let expired = false
  const onAbort = (): void => { controller.abort() }
  if (parent.aborted) {
    controller.abort()
  }
  parent.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(() => {
    expired = true
    controller.abort()
  }, ms)
  return {
    signal: controller.signal,
    expired: () => expired,
    clear: () => {
      clearTimeout(timer)
      parent.removeEventListener('abort', onAbort)
    }
  }
}

/** Settle with `promise`, or reject as soon as `signal` fires */
async function raceSignal <T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(new HandlerAbortedError('Handler timed out or was stopped')) }
    if (signal.aborted) {
      onAbort()
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}

export class InboundHandler implements Startable {
  private readonly components: InboundHandlerComponents
  private readonly log: Logger
  private readonly protocol: string
  private readonly maxMessageSize: number
  private readonly maxInboundStreams: number
  private readonly maxOutboundStreams: number
  private readonly maxStreams: number
  private readonly idleTimeout: number
  private readonly handlerTimeout: number
  private readonly maxStreamsPerPeer: number
  private readonly maxRequestDelay: number
  private readonly dispatch: Dispatch
  /** streams strangers may hold at once (see `strangerShare`) */
  private readonly strangerStreams: number
  private readonly isValued?: (peer: PeerId) => boolean
  private readonly session?: (peer: PeerId) => InboundSession
  private readonly sink?: InboundSink
  /**
   * What was served, whatever the sink: streams accepted, messages
   * received, failures (streams refused, messages malformed or not
   * answered), framed bytes; `dials` stays 0
   */
  readonly stats: TrafficFigures = emptyTraffic()
  /** open inbound streams and their serving loops; at most maxStreams */
  private readonly streams = new Map<Stream, Promise<void>>()
  /** open inbound streams by peer; at most maxStreams entries */
  private readonly peerStreams = new PeerCounts()
  /** request rate by peer; at most maxTrackedPeers entries */
  private readonly rates: PeerBuckets
  /** a stranger's own bucket: within it the stranger is light */
  private readonly lightRate: { burst: number, perSecond: number }
  /** what heavy strangers share */
  private readonly strangerPool: SharedBucket
  /** strangers' messages being answered (waits included), by peer; at most maxStreams entries */
  private readonly strangerBusy = new PeerCounts()
  /** turns to dispatch; waiters at most one per open stream */
  private readonly inFlight: Slots
  private readonly counters: InboundStats = { messages: 0, refusedStreams: 0, refusedPeerStreams: 0, delayedRequests: 0, rateLimitedRequests: 0, queuedRequests: 0, pooledRequests: 0 }
  private shutdown = new AbortController()
  private running = false

  constructor (components: InboundHandlerComponents, init: InboundHandlerInit, dispatch: Dispatch, sink?: InboundSink) {
    if (typeof init.protocol !== 'string' || init.protocol === '') {
      throw new InvalidParametersError('protocol is required')
    }
    this.components = components
    this.log = components.logger.forComponent('priority-dht:handler')
    this.protocol = init.protocol
    this.maxMessageSize = positiveInteger('maxMessageSize', init.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE)
    this.maxInboundStreams = positiveInteger('maxInboundStreams', init.maxInboundStreams ?? 64)
    this.maxOutboundStreams = positiveInteger('maxOutboundStreams', init.maxOutboundStreams ?? 64)
    this.maxStreams = positiveInteger('maxStreams', init.maxStreams ?? 1024)
    this.idleTimeout = positiveInteger('idleTimeout', init.idleTimeout ?? 10_000)
    this.handlerTimeout = positiveInteger('handlerTimeout', init.handlerTimeout ?? 10_000)
    this.maxStreamsPerPeer = positiveInteger('maxStreamsPerPeer', init.maxStreamsPerPeer ?? 32)
    const maxRequestsInFlight = positiveInteger('maxRequestsInFlight', init.maxRequestsInFlight ?? 128)
    this.maxRequestDelay = positiveInteger('maxRequestDelay', init.maxRequestDelay ?? 2000, 0)
    this.rates = new PeerBuckets({
      perSecond: positiveInteger('requestsPerSecond', init.requestsPerSecond ?? 1000),
      burst: positiveInteger('requestBurst', init.requestBurst ?? 2000),
      maxDelay: this.maxRequestDelay,
      maxPeers: positiveInteger('maxTrackedPeers', init.maxTrackedPeers ?? 4096)
    })
    this.lightRate = {
      perSecond: positiveInteger('lightRequestsPerSecond', init.lightRequestsPerSecond ?? 100),
      burst: positiveInteger('lightRequestBurst', init.lightRequestBurst ?? 20)
    }
    this.strangerPool = new SharedBucket({
      perSecond: positiveInteger('strangerRequestsPerSecond', init.strangerRequestsPerSecond ?? 300),
      burst: positiveInteger('strangerRequestBurst', init.strangerRequestBurst ?? 600),
      maxDelay: this.maxRequestDelay
    })
    // never more waiters than streams, each of which has one message at a time
    this.inFlight = new Slots(maxRequestsInFlight, Number.MAX_SAFE_INTEGER)
    this.dispatch = dispatch
    const share = init.strangerShare ?? 0.75
    if (!(share > 0 && share <= 1)) {
      throw new InvalidParametersError(`strangerShare must be in (0, 1], got ${share}`)
    }
    this.strangerStreams = Math.max(1, Math.floor(this.maxStreams * share))
    this.isValued = init.isValued
    this.session = init.session
    this.sink = sink
  }

  /** What the limits refused or delayed so far */
  limits (): InboundStats {
    return { ...this.counters }
  }

  /**
   * Answers one inbound message body from `peer`: decode, the peer's rate,
   * a turn among `maxRequestsInFlight`, dispatch, encode. Resolves with the
   * response bytes, or undefined for a message that takes no response.
   * The inbound loop of every stream goes through here.
   *
   * Throws typed errors only: InvalidMessageError (undecodable, unknown type,
   * missing fields), RateLimitedError, MessageTooLargeError (our response),
   * HandlerAbortedError (`signal` fired), or what dispatch throws for a
   * message it refuses (the record stores' InvalidRecordError,
   * ProviderStoreFullError, ValueStoreFullError, SelectorError).
   */
  async answer (peer: PeerId, bytes: Uint8Array | Uint8ArrayList, connection: Connection | undefined, options: { signal: AbortSignal, session?: InboundSession }): Promise<Uint8Array | undefined> {
    const message = decodeMessage(bytes)
    this.counters.messages++
    this.stats.requests++
    this.stats.bytesReceived += framedLength(bytes.byteLength)
    this.sink?.inboundRequest(message.type, framedLength(bytes.byteLength))
    const id = peer.toString()
    const now = Date.now()
    let wait: number | undefined
    const stranger = this.isValued != null && !this.isValued(peer)
    if (!stranger) {
      wait = this.rates.take(id, now)
    } else {
      // a stranger's own bucket only tells light from heavy, and so does a
      // stranger with more than one other message being answered (a client
      // asks one thing at a time; a flood pipelines on many streams):
      // heavy ones wait for the shared pool
      const light = this.rates.take(id, now, this.lightRate) === 0 && this.strangerBusy.get(id) < LIGHT_IN_FLIGHT
      wait = this.strangerPool.take(now, !light)
      if (wait != null && wait > 0) {
        this.counters.pooledRequests++
      }
    }
    if (wait == null) {
      this.counters.rateLimitedRequests++
      throw new RateLimitedError(`${peer} is over its request rate`)
    }
    if (stranger) {
      this.strangerBusy.increment(id)
    }
    try {
      return await this.serveMessage(peer, message, connection, wait, options)
    } finally {
      if (stranger) {
        this.strangerBusy.decrement(id)
      }
    }
  }

  private async serveMessage (peer: PeerId, message: Message, connection: Connection | undefined, wait: number, options: { signal: AbortSignal, session?: InboundSession }): Promise<Uint8Array | undefined> {
    try {
      if (wait > 0) {
        this.counters.delayedRequests++
        await sleep(wait, options.signal)
      }
      if (this.inFlight.waiters > 0) {
        this.counters.queuedRequests++
      }
      await this.inFlight.acquire(options.signal)
    } catch (err) {
      throw new HandlerAbortedError('Handler timed out or was stopped while waiting for a turn', { cause: err })
    }
    let response
    try {
      response = await raceSignal(this.dispatch(peer, message, connection, { signal: options.signal, session: options.session }), options.signal)
    } finally {
      this.inFlight.release()
    }
    if (response == null) {
      return undefined
    }
    const out = Message.encode(response)
    if (out.byteLength > this.maxMessageSize) {
      throw new MessageTooLargeError(`${response.type} response of ${out.byteLength} bytes exceeds ${this.maxMessageSize}`)
    }
    this.stats.bytesSent += framedLength(out.byteLength)
    this.sink?.inboundResponse(framedLength(out.byteLength))
    return out
  }

  async start (): Promise<void> {
    if (this.running) {
      return
    }
    this.shutdown = new AbortController()
    await this.components.registrar.handle(this.protocol, (stream, connection) => {
      this.accept(stream, connection)
    }, {
      maxInboundStreams: this.maxInboundStreams,
      maxOutboundStreams: this.maxOutboundStreams
    })
    this.running = true
  }

  /** Unregister the protocol, abort every open inbound stream and wait for their loops to end */
  async stop (): Promise<void> {
    if (!this.running) {
      return
    }
    this.running = false
    this.shutdown.abort()
    try {
      await this.components.registrar.unhandle(this.protocol)
    } catch (err) {
      this.log.error('could not unregister %s - %e', this.protocol, err)
    }
    for (const stream of this.streams.keys()) {
      stream.abort(new Error('DHT inbound handler stopped'))
    }
    await Promise.allSettled([...this.streams.values()])
  }

  private accept (stream: Stream, connection: Connection): void {
    if (!this.running) {
      stream.abort(new Error('DHT inbound handler is not running'))
      return
    }
    if (this.streams.size >= this.limitFor(connection.remotePeer)) {
      this.counters.refusedStreams++
      this.failed('refused')
      this.log('refusing stream from %p: %d inbound streams already open', connection.remotePeer, this.streams.size)
      stream.abort(new Error('Too many inbound DHT streams'))
      return
    }
    const peer = connection.remotePeer.toString()
    if (this.peerStreams.get(peer) >= this.maxStreamsPerPeer) {
      this.counters.refusedPeerStreams++
      this.failed('refused')
      this.log('refusing stream from %p: %d of its inbound streams already open', connection.remotePeer, this.maxStreamsPerPeer)
      stream.abort(new Error('Too many inbound DHT streams from this peer'))
      return
    }
    this.peerStreams.increment(peer)
    this.stats.streams++
    this.sink?.inboundStream()
    const loop = this.serve(stream, connection)
      .catch(err => {
        this.log.error('inbound stream from %p failed - %e', connection.remotePeer, err)
        stream.abort(err)
      })
      .finally(() => {
        this.streams.delete(stream)
        this.peerStreams.decrement(peer)
      })
    this.streams.set(stream, loop)
  }

  private async serve (stream: Stream, connection: Connection): Promise<void> {
    // aborted by stop() or when the stream closes, so a dispatch still running
    // learns that nobody is waiting for its answer
    const ended = new AbortController()
    const onEnd = (): void => { ended.abort() }
    this.shutdown.signal.addEventListener('abort', onEnd, { once: true })
    stream.addEventListener('close', onEnd, { once: true })
    try {
      await this.loop(stream, connection, ended.signal)
    } finally {
      this.shutdown.signal.removeEventListener('abort', onEnd)
    }
  }

  private async loop (stream: Stream, connection: Connection, ended: AbortSignal): Promise<void> {
    const session = this.session?.(connection.remotePeer)
    try {
      await this.serveStream(stream, connection, ended, session)
    } finally {
      if (session != null && session.pending > 0) {
        // the stream ended (closed, idle, reset or refused) with writes deferred: they were valid, store them
        // not tied to the shutdown: stop() waits for this, and what was taken is kept
        const scope = timed(this.handlerTimeout, new AbortController().signal)
        try {
          await session.flush({ signal: scope.signal })
        } catch (err) {
          this.failed('failed')
          this.log.error('could not store what %p sent before its stream ended - %e', connection.remotePeer, err)
        } finally {
          scope.clear()
        }
      }
    }
  }

  private async serveStream (stream: Stream, connection: Connection, ended: AbortSignal, session: InboundSession | undefined): Promise<void> {
    const peer = connection.remotePeer
    const lp = lpStream(stream, lpOptions(this.maxMessageSize))
    // bytes received vs. consumed as whole messages tell a clean end between
    // messages from a truncated message
    let received = 0
    let consumed = 0
    stream.addEventListener('message', (evt: StreamMessageEvent) => {
      received += evt.data.byteLength
    })

    while (true) {
      const idle = timed(this.idleTimeout, ended)
      let buf
      try {
        buf = await lp.read({ signal: idle.signal })
      } catch (err: any) {
        if (this.shutdown.signal.aborted) {
          stream.abort(new Error('DHT inbound handler stopped'))
        } else if (stream.status !== 'open') {
          this.log('stream from %p ended - %e', peer, err)
        } else if (idle.expired()) {
          this.log('closing stream from %p idle for %d ms', peer, this.idleTimeout)
          await this.close(stream, ended)
        } else if (err?.name === 'UnexpectedEOFError' && received === consumed) {
          await this.close(stream, ended)
        } else if (DATA_ERRORS.includes(err?.name) || err?.name === 'UnexpectedEOFError') {
          this.failed('malformed')
          this.invalid(stream, peer, new InvalidMessageError(`Malformed or oversize message: ${err.message}`, { cause: err }))
        } else {
          this.log('stream from %p failed - %e', peer, err)
          stream.abort(err)
        }
        return
      } finally {
        idle.clear()
      }
      consumed += framedLength(buf.byteLength)

      const scope = timed(this.handlerTimeout, ended)
      try {
        const response = await this.answer(peer, buf, connection, { signal: scope.signal, session })
        // a response acknowledges what came before it; and nothing deferred waits on the peer's next message
        if (session != null && session.pending > 0 && (response != null || received === consumed)) {
          await session.flush({ signal: scope.signal })
        }
        if (response != null) {
          await writeFramed(stream, [response], { signal: scope.signal })
        }
      } catch (err: any) {
        if (err instanceof InvalidMessageError) {
          this.failed('malformed')
          this.invalid(stream, peer, err)
        } else if (err instanceof RateLimitedError) {
          this.failed('refused')
          this.log('aborting stream from %p - %e', peer, err)
          stream.abort(err)
        } else {
          this.failed('failed')
          if (stream.status === 'open') {
            this.log.error('could not answer a message from %p - %e', peer, err)
          }
          stream.abort(err)
        }
        return
      } finally {
        scope.clear()
      }
    }
  }

  /** How many open inbound streams still leave room for one more from `peer` */
  private limitFor (peer: PeerId): number {
    return this.isValued == null || this.isValued(peer) ? this.maxStreams : this.strangerStreams
  }

  private failed (reason: InboundError): void {
    this.stats.failures++
    this.sink?.inboundError(reason)
  }

  private invalid (stream: Stream, peer: PeerId, err: InvalidMessageError): void {
    this.log.error('invalid message from %p, aborting its stream - %e', peer, err)
    stream.abort(err)
  }

  /** Close our write end; abort if that does not finish within handlerTimeout */
  private async close (stream: Stream, ended: AbortSignal): Promise<void> {
    const scope = timed(this.handlerTimeout, ended)
    try {
      await stream.close({ signal: scope.signal })
    } catch (err: any) {
      stream.abort(err)
    } finally {
      scope.clear()
    }
  }
}
