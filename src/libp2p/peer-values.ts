/**
 * The adapter's side of the priority peer stack: turns every messenger
 * outcome (dials and requests) into an observation for the pure
 * {@link PeerStack}, hands the stack's adaptive timeouts to the driver, keeps
 * libp2p peer store tags in step with peer values (so the connection manager
 * prunes worthless connections first), and saves the stack to the datastore so
 * values and back-off survive a restart.
 *
 * Bounds: tag updates wait in a map of at most `maxPendingTags` peers (newer
 * values overwrite older ones; beyond the bound new peers wait for the next
 * observation) and are written `tagBatch` at a time every `tagInterval`; the
 * saved state holds at most `maxSaved` peers, most valuable first.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { Key } from 'interface-datastore'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import type { Outcome } from './messenger.ts'
import type { BackoffReason } from './metrics.ts'
import type { PeerQuality } from '../core/contact.ts'
import type { Observation, PeerStack } from '../core/peer-stack/index.ts'
import type { Logger, PeerStore } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

/** The peer store tag carrying a peer's value (0..100) */
export const VALUE_TAG = 'priority-dht-value'

const STATE_KEY = new Key('/dht/peer-stack')

export interface PeerValuesInit {
  /**
   * Peers whose tag update may wait at once.
   *
   * @default 4096
   */
  maxPendingTags?: number
  /**
   * Tag updates written per flush.
   *
   * @default 256
   */
  tagBatch?: number
  /**
   * Milliseconds between tag flushes.
   *
   * @default 1000
   */
  tagInterval?: number
  /**
   * Milliseconds between saves of the stack to the datastore (also saved on stop).
   *
   * @default 300000
   */
  saveInterval?: number
  /**
   * Peers saved at most, most valuable first.
   *
   * @default 2000
   */
  maxSaved?: number
}

export interface PeerValuesComponents {
  peerStore: PeerStore
  datastore: Datastore
}

export class PeerValues {
  readonly stack: PeerStack
  private readonly components: PeerValuesComponents
  private readonly log: Logger
  private readonly config: Required<PeerValuesInit>
  /** peer id -> tag value waiting to be written */
  private readonly pendingTags = new Map<string, number>()
  /** peer id -> tag value last written; at most the stack's `maxPeers` */
  private readonly written = new Map<string, number>()
  private tagTimer?: ReturnType<typeof setInterval>
  private saveTimer?: ReturnType<typeof setInterval>
  private flushing?: Promise<void>
  /** Called when an observation puts a peer that was not in back-off into it (metrics) */
  private readonly onBackoff?: (reason: BackoffReason) => void

  constructor (components: PeerValuesComponents, stack: PeerStack, log: Logger, init: PeerValuesInit = {}, onBackoff?: (reason: BackoffReason) => void) {
    this.components = components
    this.stack = stack
    this.log = log
    this.onBackoff = onBackoff
    this.config = {
      maxPendingTags: init.maxPendingTags ?? 4096,
      tagBatch: init.tagBatch ?? 256,
      tagInterval: init.tagInterval ?? 1000,
      saveInterval: init.saveInterval ?? 300_000,
      maxSaved: init.maxSaved ?? 2000
    }
  }

  async start (): Promise<void> {
    await this.load()
    this.tagTimer = setInterval(() => { this.flushing ??= this.flushTags().finally(() => { this.flushing = undefined }) }, this.config.tagInterval)
    this.tagTimer.unref?.()
    this.saveTimer = setInterval(() => { void this.save() }, this.config.saveInterval)
    this.saveTimer.unref?.()
  }

  async stop (): Promise<void> {
    clearInterval(this.tagTimer)
    clearInterval(this.saveTimer)
    await this.flushing
    await this.save()
  }

  /** One messenger outcome, as an observation of the peer */
  onOutcome (o: Outcome): void {
    const obs = observationOf(o)
    if (obs != null) {
      this.observe(o.peer.toString(), obs)
    }
  }

  /** A response failed validation (a forged or malformed record) */
  invalid (id: string): void {
    this.observe(id, { type: 'invalid-response' })
  }

  /** Our last connection to `id` broke (not by our hand, as far as we know): held back for the stack's `suspectFor` */
  disconnected (id: string): void {
    this.observe(id, { type: 'disconnected' })
  }

  observe (id: string, obs: Observation): void {
    const now = Date.now()
    const wasBackedOff = this.onBackoff != null && this.stack.backedOff(id, now)
    this.stack.observe(id, obs, now)
    if (this.onBackoff != null && !wasBackedOff && this.stack.backedOff(id, now)) {
      this.onBackoff(obs.type === 'disconnected' ? 'disconnect' : 'failure')
    }
    const tag = this.stack.tag(id, now)
    if ((this.written.get(id) ?? 0) === tag) {
      this.pendingTags.delete(id)
      return
    }
    if (this.pendingTags.has(id) || this.pendingTags.size < this.config.maxPendingTags) {
      this.pendingTags.set(id, tag)
    }
  }

  dialTimeout (id: string): number {
    return this.stack.dialTimeout(id, Date.now())
  }

  requestTimeout (id: string): number {
    return this.stack.requestTimeout(id, Date.now())
  }

  /** The most valuable peers we know, for bootstrapping after a restart */
  best (n: number): string[] {
    return this.stack.best(n, Date.now())
  }

  /** Writes pending tag values to the peer store, a batch at a time */
  async flushTags (): Promise<void> {
    const batch = [...this.pendingTags].slice(0, this.config.tagBatch)
    for (const [id, value] of batch) {
      this.pendingTags.delete(id)
      try {
        const peerId = peerIdFromString(id)
        if (value > 0) {
          await this.components.peerStore.merge(peerId, { tags: { [VALUE_TAG]: { value } } })
          this.written.set(id, value)
        } else if (this.written.has(id)) {
          await this.components.peerStore.merge(peerId, { tags: { [VALUE_TAG]: undefined } })
          this.written.delete(id)
        }
      } catch (err) {
        this.log('could not tag %s - %e', id, err)
      }
    }
    // bounded like the stack: forget the oldest written tags beyond its size bound
    for (const id of this.written.keys()) {
      if (this.written.size <= this.stack.config.maxPeers) {
        break
      }
      this.written.delete(id)
    }
  }

  async save (): Promise<void> {
    try {
      const entries = this.stack.export(Date.now(), this.config.maxSaved)
      await this.components.datastore.put(STATE_KEY, uint8ArrayFromString(JSON.stringify({ version: 1, entries })))
    } catch (err) {
      this.log('could not save peer values - %e', err)
    }
  }

  private async load (): Promise<void> {
    let raw: Uint8Array
    try {
      raw = await this.components.datastore.get(STATE_KEY)
    } catch {
      return // nothing saved yet
    }
    try {
      const parsed = JSON.parse(uint8ArrayToString(raw))
      const entries = Array.isArray(parsed?.entries) ? parsed.entries.slice(0, this.config.maxSaved) : []
      const accepted = this.stack.import(entries, Date.now())
      this.log('restored %d of %d saved peer values', accepted, entries.length)
    } catch (err) {
      this.log.error('saved peer values are unreadable, starting afresh - %e', err)
    }
  }
}

/** What a messenger outcome says about the peer; undefined when it says nothing (our abort, our bound) */
export function observationOf (o: Outcome): Observation | undefined {
  if (o.type === 'dial') {
    if (o.ok) {
      return { type: 'dial-ok', duration: o.durationMs }
    }
    switch (o.reason) {
      case 'dial-timeout': return { type: 'dial-failed', reason: 'timeout' }
      case 'dial-refused': return { type: 'dial-failed', reason: 'refused' }
      default: return undefined
    }
  }
  if (o.ok) {
    return { type: 'response', latency: o.latencyMs, useful: o.useful }
  }
  switch (o.reason) {
    case 'timeout': return { type: 'request-failed', reason: 'timeout' }
    case 'stream-reset': return { type: 'request-failed', reason: 'reset' }
    case 'bad-response': return { type: 'request-failed', reason: 'bad-response' }
    case 'protocol-unsupported': return { type: 'request-failed', reason: 'protocol-unsupported' }
    // dial failures were reported by the dial outcome; aborts and overload are ours
    default: return undefined
  }
}

/**
 * The stack as the core consults it, with one thing only the adapter knows:
 * which peers we hold an open connection to. Back-off spares us dials that
 * would wait on a peer that is not there; a request over an open connection
 * needs no dial, so a connected peer is never skipped for back-off (lookups
 * still hedge past it if it is slow). The benchmark showed why it matters:
 * on a loaded host a live peer's dial can run out of time, and for the
 * minute of back-off that followed, lookups left it out of their results
 * although it had a connection open (issue #10's `getClosestPeers` misses).
 * Its standing (whether we name it to others) is the stack's: a peer whose
 * last contact failed is not named until it answers again. `disconnected`
 * (our last connection to a peer broke) goes to the stack, by default
 * directly; the service sends it through {@link PeerValues} so tags and the
 * back-off metric follow.
 */
export function connectedQuality (stack: PeerStack, connected: (id: string) => boolean, disconnected: (id: string) => void = id => { stack.disconnected(id, Date.now()) }): PeerQuality {
  return {
    value: (id, now) => stack.value(id, now),
    backedOff: (id, now) => stack.backedOff(id, now) && !connected(id),
    hedgeDelay: (id, now) => stack.hedgeDelay(id, now),
    reached: (id, now) => stack.reached(id, now),
    standing: (id, now) => stack.standing(id, now),
    advice: (advisor, good, now) => { stack.advice(advisor, good, now) },
    doubtful: (advisor, now) => stack.doubtful(advisor, now),
    disconnected: id => { disconnected(id) }
  }
}
