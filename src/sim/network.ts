/**
 * The link and network model: who can be dialled, how long a round trip
 * takes between two nodes, and whether a message is lost.
 *
 * - Dialability: each node is undialable with probability
 * `config.undialable`, drawn once from the network's seeded stream in node
 * order. A dial to an undialable node fails with `dial-timeout` after
 * `config.dialTimeout`; an undialable node can still dial out.
 * - Round-trip time: per unordered pair, a log-normal draw with median
 * `rttMedian` and 95th percentile `rttP95`, clamped to [rttMin, rttMax] and
 * rounded to whole ms. The draw is a hash of (seed, pair), not a stream, so
 * the RTT of a pair never depends on the order in which pairs are used and
 * nothing is stored per pair (memory O(1) whatever the network size).
 * - Loss: each message is lost with probability `config.loss`, drawn from
 * the network's stream in the order messages are sent (no draw at all when
 * the loss is 0).
 * - Churn: a share `config.churn` of the dialable nodes alternate between
 * sessions and absences, each node with its own lengths (log-uniform within
 * 4x of `sessionMedian`) and phase, all from hashes of (seed, node): nothing
 * stored, nothing drawn from the stream, so a churn-free run is unchanged.
 *
 * Capacity: one byte per node for dialability; nothing per pair.
 */
import { hash32, unitFloat } from './hash.ts'
import type { NetworkConfig } from './config.ts'
import type { Millis, Random } from '../core/env.ts'

/** z-score of the 95th percentile of the standard normal distribution */
const Z95 = 1.6448536269514722

export class Network {
  readonly config: NetworkConfig
  readonly size: number
  private readonly dialableFlags: Uint8Array
  private readonly seed: number
  private readonly random: Random
  private readonly mu: number
  private readonly sigma: number
  private dialableCount = 0

  /**
   * @param config - a validated network config
   * @param size - number of nodes
   * @param seed - seeds the per-pair RTT hash
   * @param random - a stream for dialability and message loss
   */
  constructor (config: NetworkConfig, size: number, seed: number, random: Random) {
    this.config = config
    this.size = size
    this.seed = seed >>> 0
    this.random = random
    this.mu = Math.log(config.rttMedian)
    this.sigma = Math.log(config.rttP95 / config.rttMedian) / Z95
    this.dialableFlags = new Uint8Array(size)
    for (let i = 0; i < size; i++) {
      const ok = config.undialable === 0 || random.float() >= config.undialable
      this.dialableFlags[i] = ok ? 1 : 0
      if (ok) {
        this.dialableCount++
      }
    }
  }

  /** Whether dials to node `i` succeed */
  dialable (i: number): boolean {
    return this.dialableFlags[i] === 1
  }

  /**
   * Whether node `i` announces the DHT protocol to the nodes it connects
   * to: every dialable node, and the `announcing` share of undialable ones
   * (drawn per node from a hash, so the network's random stream is the
   * same whatever the share)
   */
  announces (i: number): boolean {
    return this.dialableFlags[i] === 1 || (this.config.announcing > 0 && hash32(this.seed, i, 0x616e6e63) / 4294967296 < this.config.announcing)
  }

  /** When node `i` leaves for good (Infinity without departures) */
  departsAt (i: number): Millis {
    const rate = this.config.departRate
    if (rate === 0) {
      return Infinity
    }
    // exponential with `rate` per hour; u in (0, 1]
    const u = 1 - unitFloat(hash32(this.seed, i, 0x64657061))
    return this.arrivesAt(i) + -Math.log(u) / rate * 3_600_000
  }

  /**
   * Share of the nodes that join during the run (see `joinRate`): with x =
   * joinRate x window (in hours), x / (1 + x), so that arrivals per hour
   * (share x N / window) match `joinRate` times the nodes already there,
   * N (1 - share): equal to `departRate`, joins replace departures
   */
  get joiningShare (): number {
    const x = this.config.joinRate * this.config.joinWindow / 3_600_000
    return Math.min(0.9, x / (1 + x))
  }

  /** When node `i` joins: 0 for the nodes there from the start (all of them without joins) */
  arrivesAt (i: number): Millis {
    const share = this.joiningShare
    if (share === 0) {
      return 0
    }
    const u = unitFloat(hash32(this.seed, i, 0x6a6f696e))
    return u < share ? Math.max(1, Math.floor(u / share * this.config.joinWindow)) : 0
  }

  /** Whether node `i` is online at virtual time `t` (always, without churn, joins or departures) */
  online (i: number, t: Millis): boolean {
    if (t >= this.departsAt(i) || (this.config.joinRate > 0 && t < this.arrivesAt(i))) {
      return false
    }
    const churn = this.config.churn
    if (churn === 0 || unitFloat(hash32(this.seed, i, 0x63687572, 0)) >= churn) {
      return true
    }
    const median = this.config.sessionMedian
    const on = median * Math.pow(4, 2 * unitFloat(hash32(this.seed, i, 0x63687572, 1)) - 1)
    const off = median * Math.pow(4, 2 * unitFloat(hash32(this.seed, i, 0x63687572, 2)) - 1)
    const phase = unitFloat(hash32(this.seed, i, 0x63687572, 3)) * (on + off)
    return (t + phase) % (on + off) < on
  }

  /** Number of dialable nodes */
  get dialableNodes (): number {
    return this.dialableCount
  }

  /** The round-trip time between `a` and `b` (symmetric, whole ms) */
  rtt (a: number, b: number): Millis {
    const lo = a < b ? a : b
    const hi = a < b ? b : a
    // Box-Muller from two hashed uniforms; u1 in (0, 1]
    const u1 = 1 - unitFloat(hash32(this.seed, lo, hi, 1))
    const u2 = unitFloat(hash32(this.seed, lo, hi, 2))
    const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
    const rtt = Math.exp(this.mu + this.sigma * z)
    return Math.round(Math.min(this.config.rttMax, Math.max(this.config.rttMin, rtt)))
  }

  /** Time from `from` to `to` for one message: half the RTT, rounded down */
  oneWay (from: number, to: number): Millis {
    const rtt = this.rtt(from, to)
    return from < to ? Math.floor(rtt / 2) : rtt - Math.floor(rtt / 2)
  }

  /** How long a successful dial from `a` to `b` takes */
  dialDelay (a: number, b: number): Millis {
    return this.config.dialRoundTrips * this.rtt(a, b)
  }

  /** Whether the next message is lost (consumes randomness only when loss > 0) */
  lost (): boolean {
    return this.config.loss > 0 && this.random.float() < this.config.loss
  }
}
