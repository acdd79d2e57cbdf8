/**
 * Observability: the service's metrics, registered through libp2p's
 * `Metrics` component (so `@libp2p/prometheus-metrics` and
 * `@libp2p/simple-metrics` pick them up as they are), and the usage table
 * that attributes every request, dial, stream and byte to the purpose of
 * the operation that caused it.
 *
 * The rest of the adapter talks to one {@link Accounting} object through a
 * few calls (`request`, `dial`, `stream`, `bytes`, `inbound`...). With no
 * metrics component it holds no metric objects: each call is a few integer
 * increments in the usage table and a null check.
 *
 * Implementation notes
 *
 * - Every label value comes from a fixed set (purposes, message types,
 * failure reasons, peer stack categories, bucket indexes 0..256, lookup
 * finish reasons, store names): never a peer id or a key, so no metric can
 * grow without bound.
 * - Counters are incremented where the event happens. Gauges (table size,
 * bucket occupancy, peer stack categories, store sizes, keys republished) are
 * calculated metrics: computed on scrape, no timers of ours.
 * - Calculated counters are avoided: `@libp2p/prometheus-metrics` adds what
 * a counter's `calculate` returns at every scrape, so only a delta would be
 * right there, and a delta is wrong elsewhere.
 */
import type { FailureReason } from './errors.ts'
import type { MessageType } from '../generated/dht.ts'
import type { Counter, CounterGroup, HistogramGroup, Metrics } from '@libp2p/interface'

/**
 * Why work was done. `lookup`: findPeer and getClosestPeers; `refresh`:
 * routing table upkeep (refreshRoutingTable, bucket refresh lookups,
 * liveness pings, verifying new peers, dials of saved peers at start);
 * `inbound`: serving other peers; `other`: a request no operation claimed
 * (stays 0 unless a new caller forgets to say).
 */
export const PURPOSES = ['provide', 'put', 'get', 'findProviders', 'lookup', 'refresh', 'republish', 'inbound', 'other'] as const
export type Purpose = typeof PURPOSES[number]

/** The operations timed in `priority_dht_operations_total` and friends, with the purpose each bills */
export const OPERATIONS = {
  provide: 'provide',
  provideMany: 'provide',
  put: 'put',
  putMany: 'put',
  get: 'get',
  findProviders: 'findProviders',
  findPeer: 'lookup',
  getClosestPeers: 'lookup',
  refreshRoutingTable: 'refresh',
  republish: 'republish'
} as const satisfies Record<string, Purpose>
export type Operation = keyof typeof OPERATIONS

/** What one purpose cost; for `inbound`, what serving others cost */
export interface UsageFigures {
  /** operations started (inbound: always 0, see `requests`) */
  operations: number
  /** requests and messages sent (inbound: received) */
  requests: number
  /** of those, how many failed (inbound: malformed, refused or not answered) */
  failures: number
  /** connections dialled (inbound: 0) */
  dials: number
  /** streams opened (inbound: accepted) */
  streams: number
  bytesSent: number
  bytesReceived: number
}

/** Figures the messenger (or the handler) keeps by itself, whatever the purpose */
export type TrafficFigures = Omit<UsageFigures, 'operations'>

export interface Usage {
  /** Every purpose, always all of them (zeros included) */
  purposes: Record<Purpose, UsageFigures>
  /**
   * The messenger's own totals, counted apart from the table: the outbound
   * purposes add up to these (dials of saved peers at start are made outside
   * the messenger: billed to `refresh`, not counted here)
   */
  outbound: TrafficFigures
  /** The inbound handler's own totals, counted apart: `purposes.inbound` equals these */
  inbound: TrafficFigures
}

/** What the messenger reports (outbound) */
export interface OutboundSink {
  request(purpose: Purpose, type: MessageType): void
  requestDone(purpose: Purpose, type: MessageType, latencyMs: number): void
  requestFailed(purpose: Purpose, type: MessageType, reason: FailureReason): void
  dial(purpose: Purpose): void
  stream(purpose: Purpose): void
  bytes(purpose: Purpose, sent: number, received: number): void
  /** A dial or request window was extended: its timer fired late because our event loop was blocked */
  stalled?(): void
}

/** Why an inbound stream or message went unanswered */
export type InboundError = 'refused' | 'malformed' | 'failed'

/** What the inbound handler reports */
export interface InboundSink {
  inboundStream(): void
  inboundRequest(type: MessageType, bytes: number): void
  inboundResponse(bytes: number): void
  inboundError(reason: InboundError): void
}

/** Gauges computed on scrape; each may be left out */
export interface Gauges {
  routingTableSize?(): number
  bucketSizes?(): number[]
  peerCategories?(): Record<string, number>
  storeSizes?(): Promise<Record<string, number>>
  republishing?(): number
}

export const METRICS_PREFIX = 'priority_dht'

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** Why a peer entered back-off: it failed us, or our connection to it broke (see the peer stack's `suspectFor`) */
export type BackoffReason = 'failure' | 'disconnect'

/** The metric objects, present only with a metrics component */
interface Registered {
  operations: CounterGroup
  operationErrors: CounterGroup
  operationDuration: HistogramGroup
  lookups: CounterGroup
  outbound: CounterGroup
  outboundFailures: CounterGroup
  outboundDuration: HistogramGroup
  inbound: CounterGroup
  inboundErrors: CounterGroup
  backoffs: CounterGroup
  hedged: Counter
  skipped: Counter
  stalled: Counter
  bulkKeys: CounterGroup
  republishKeys: CounterGroup
  usageOperations: CounterGroup
  usageRequests: CounterGroup
  usageFailures: CounterGroup
  usageDials: CounterGroup
  usageStreams: CounterGroup
  usageSent: CounterGroup
  usageReceived: CounterGroup
}

/** Traffic figures at zero */
export function emptyTraffic (): TrafficFigures {
  return { requests: 0, failures: 0, dials: 0, streams: 0, bytesSent: 0, bytesReceived: 0 }
}

/**
 * The usage table and, when `metrics` is given, the metrics. One per
 * service; every part of the adapter reports to it.
 */
export class Accounting implements OutboundSink, InboundSink {
  private readonly table = new Map<Purpose, UsageFigures>()
  private readonly m?: Registered

  constructor (metrics?: Metrics, gauges: Gauges = {}, prefix = METRICS_PREFIX) {
    for (const p of PURPOSES) {
      this.table.set(p, { operations: 0, ...emptyTraffic() })
    }
    if (metrics != null) {
      this.m = register(metrics, prefix)
      registerGauges(metrics, prefix, gauges)
    }
  }

  /** Whether metrics are collected (a metrics component was configured) */
  get enabled (): boolean {
    return this.m != null
  }

  /** A copy of the usage table */
  purposes (): Record<Purpose, UsageFigures> {
    const purposes = {} as Record<Purpose, UsageFigures>
    for (const [p, f] of this.table) {
      purposes[p] = { ...f }
    }
    return purposes
  }

  /**
   * An operation of kind `op` starts; the returned function ends it
   * (`failed`: it threw). Counts the operation under its purpose always,
   * its duration only with metrics.
   */
  operation (op: Operation): (failed: boolean) => void {
    const purpose = OPERATIONS[op]
    this.figures(purpose).operations++
    const m = this.m
    if (m == null) {
      return noop
    }
    m.operations.increment({ [op]: true })
    m.usageOperations.increment({ [purpose]: true })
    const start = performance.now()
    return failed => {
      if (failed) {
        m.operationErrors.increment({ [op]: true })
      }
      m.operationDuration.observe({ [op]: (performance.now() - start) / 1000 })
    }
  }

  /**
   * An operation's event stream, its start, end and errors counted. With no
   * metrics it is `events` itself (the operation counted at once), so an
   * operation costs one increment and no extra generator.
   */
  events<T> (op: Operation, events: AsyncGenerator<T, void, undefined>): AsyncGenerator<T, void, undefined> {
    if (this.m == null) {
      this.operation(op)
      return events
    }
    return this.trackEvents(op, events)
  }

  private async * trackEvents<T> (op: Operation, events: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
    const end = this.operation(op)
    let failed = false
    try {
      yield * events
    } catch (err) {
      failed = true
      throw err
    } finally {
      end(failed)
    }
  }

  /** Same for a promise-returning operation */
  async track<T> (op: Operation, work: () => Promise<T>): Promise<T> {
    const end = this.operation(op)
    let failed = false
    try {
      return await work()
    } catch (err) {
      failed = true
      throw err
    } finally {
      end(failed)
    }
  }

  request (purpose: Purpose, type: MessageType): void {
    this.figures(purpose).requests++
    if (this.m != null) {
      this.m.outbound.increment({ [type]: true })
      this.m.usageRequests.increment({ [purpose]: true })
    }
  }

  requestDone (purpose: Purpose, type: MessageType, latencyMs: number): void {
    this.m?.outboundDuration.observe({ [type]: latencyMs / 1000 })
  }

  requestFailed (purpose: Purpose, type: MessageType, reason: FailureReason): void {
    this.figures(purpose).failures++
    if (this.m != null) {
      this.m.outboundFailures.increment({ [reason]: true })
      this.m.usageFailures.increment({ [purpose]: true })
    }
  }

  dial (purpose: Purpose): void {
    this.figures(purpose).dials++
    this.m?.usageDials.increment({ [purpose]: true })
  }

  stream (purpose: Purpose): void {
    this.figures(purpose).streams++
    this.m?.usageStreams.increment({ [purpose]: true })
  }

  bytes (purpose: Purpose, sent: number, received: number): void {
    const f = this.figures(purpose)
    f.bytesSent += sent
    f.bytesReceived += received
    if (this.m != null) {
      if (sent > 0) {
        this.m.usageSent.increment({ [purpose]: sent })
      }
      if (received > 0) {
        this.m.usageReceived.increment({ [purpose]: received })
      }
    }
  }

  inboundStream (): void {
    this.figures('inbound').streams++
    this.m?.usageStreams.increment({ inbound: true })
  }

  inboundRequest (type: MessageType, bytes: number): void {
    const f = this.figures('inbound')
    f.requests++
    f.bytesReceived += bytes
    if (this.m != null) {
      this.m.inbound.increment({ [type]: true })
      this.m.usageRequests.increment({ inbound: true })
      this.m.usageReceived.increment({ inbound: bytes })
    }
  }

  inboundResponse (bytes: number): void {
    this.figures('inbound').bytesSent += bytes
    this.m?.usageSent.increment({ inbound: bytes })
  }

  inboundError (reason: InboundError): void {
    this.figures('inbound').failures++
    if (this.m != null) {
      this.m.inboundErrors.increment({ [reason]: true })
      this.m.usageFailures.increment({ inbound: true })
    }
  }

  /** A lookup ended: how, how many of its requests were hedged, how many backed-off peers it left unasked */
  lookupFinished (reason: string): void {
    this.m?.lookups.increment({ [reason]: true })
  }

  hedged (n: number): void {
    this.m?.hedged.increment(n)
  }

  stalled (): void {
    this.m?.stalled.increment()
  }

  backoffSkips (n: number): void {
    this.m?.skipped.increment(n)
  }

  backoffStarted (reason: BackoffReason): void {
    this.m?.backoffs.increment({ [reason]: true })
  }

  /** A callback for peers entering back-off; undefined without metrics, so the peer stack is not asked twice */
  backoffHook (): ((reason: BackoffReason) => void) | undefined {
    return this.m == null ? undefined : reason => { this.backoffStarted(reason) }
  }

  /** Bulk progress of one chunk: keys asked for, done and provided */
  bulk (requested: number, done: number, provided: number): void {
    this.m?.bulkKeys.increment({ requested, done, provided })
  }

  /** Keys a republish run re-announced (`ok`) or could not */
  republished (ok: number, failed: number): void {
    this.m?.republishKeys.increment({ ok, failed })
  }

  private figures (purpose: Purpose): UsageFigures {
    // every purpose is in the table from the start
    return this.table.get(purpose) as UsageFigures
  }
}

function noop (): void {}

function register (metrics: Metrics, prefix: string): Registered {
  const counters = (name: string, label: string, help: string): CounterGroup =>
    metrics.registerCounterGroup(`${prefix}_${name}`, { label, help })
  const histograms = (name: string, label: string, help: string): HistogramGroup =>
    metrics.registerHistogramGroup(`${prefix}_${name}`, { label, help, buckets: DURATION_BUCKETS })
  return {
    operations: counters('operations_total', 'operation', 'DHT operations started, by kind'),
    operationErrors: counters('operation_errors_total', 'operation', 'DHT operations that ended with an error, by kind'),
    operationDuration: histograms('operation_duration_seconds', 'operation', 'How long DHT operations ran, by kind'),
    lookups: counters('lookups_total', 'reason', 'Iterative lookups finished, by how they ended'),
    outbound: counters('outbound_requests_total', 'type', 'Requests and messages sent, by message type'),
    outboundFailures: counters('outbound_request_failures_total', 'reason', 'Outbound requests that failed, by reason'),
    outboundDuration: histograms('outbound_request_duration_seconds', 'type', 'Latency of answered outbound requests, by message type'),
    inbound: counters('inbound_requests_total', 'type', 'Requests received, by message type'),
    inboundErrors: counters('inbound_errors_total', 'reason', 'Inbound streams refused and messages not answered, by reason'),
    backoffs: counters('backoffs_total', 'reason', 'Peers that entered back-off, by why: a failure, or a connection that broke (held back)'),
    hedged: metrics.registerCounter(`${prefix}_hedged_requests_total`, { help: 'Lookup requests that ran past their hedge delay, so the lookup asked another peer' }),
    skipped: metrics.registerCounter(`${prefix}_backoff_skips_total`, { help: 'Lookup candidates in back-off that lookups finished without asking (tarpit-like dials avoided)' }),
    stalled: metrics.registerCounter(`${prefix}_stalled_timeouts_total`, { help: 'Dial and request windows extended because their timer fired late: our own event loop was blocked, not the peer slow' }),
    bulkKeys: counters('bulk_keys_total', 'stage', 'Keys of provideMany and putMany calls (and republish sweeps): requested, done, provided'),
    republishKeys: counters('republish_keys_total', 'outcome', 'Our provider records re-announced by the republisher, by outcome'),
    usageOperations: counters('usage_operations_total', 'purpose', 'Operations started, by purpose'),
    usageRequests: counters('usage_requests_total', 'purpose', 'Requests sent (inbound: received), by purpose'),
    usageFailures: counters('usage_request_failures_total', 'purpose', 'Requests that failed (inbound: not answered), by purpose'),
    usageDials: counters('usage_dials_total', 'purpose', 'Connections dialled, by purpose'),
    usageStreams: counters('usage_streams_total', 'purpose', 'Streams opened (inbound: accepted), by purpose'),
    usageSent: counters('usage_sent_bytes_total', 'purpose', 'Bytes sent, by purpose'),
    usageReceived: counters('usage_received_bytes_total', 'purpose', 'Bytes received, by purpose')
  }
}

function registerGauges (metrics: Metrics, prefix: string, gauges: Gauges): void {
  const { routingTableSize, bucketSizes, peerCategories, storeSizes, republishing } = gauges
  if (routingTableSize != null) {
    metrics.registerMetric(`${prefix}_routing_table_size`, { help: 'Entries in the routing table (replacements not counted)', calculate: routingTableSize })
  }
  if (bucketSizes != null) {
    metrics.registerMetricGroup(`${prefix}_routing_table_bucket_occupancy`, {
      label: 'cpl',
      help: 'Entries per k-bucket, by common prefix length with our key (up to the deepest non-empty bucket)',
      calculate: () => {
        const sizes = bucketSizes()
        let last = sizes.length - 1
        while (last > 0 && sizes[last] === 0) {
          last--
        }
        const out: Record<string, number> = {}
        for (let cpl = 0; cpl <= last; cpl++) {
          out[String(cpl)] = sizes[cpl] ?? 0
        }
        return out
      }
    })
  }
  if (peerCategories != null) {
    metrics.registerMetricGroup(`${prefix}_peer_stack_peers`, { label: 'category', help: 'Peers the peer stack knows, by category', calculate: peerCategories })
  }
  if (storeSizes != null) {
    metrics.registerMetricGroup(`${prefix}_store_size`, { label: 'store', help: 'Records held: provider keys, provider records, value records', calculate: storeSizes })
  }
  if (republishing != null) {
    metrics.registerMetric(`${prefix}_republish_scheduled_keys`, { help: 'Our own CIDs on the republish schedule', calculate: republishing })
  }
}
