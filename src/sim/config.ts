/**
 * Simulator configuration: the network model and the world around it.
 *
 * Each config has `defaultXConfig()` and `validateXConfig()`; every field
 * documents its default and range. Where a default comes from a measurement
 * the source is named; where it is our own assumption it says so (see also
 * `src/sim/README.md`, "Network model").
 */
import { checkRange, stripUndefined } from '../core/routing-table/config.ts'
import { DEFAULT_RECORD_TTL } from './store.ts'
import type { CoordinatorConfig } from '../core/coordinator.ts'
import type { Millis } from '../core/env.ts'
import type { PeerStackConfig } from '../core/peer-stack/index.ts'

export interface NetworkConfig {
  /**
   * Share of nodes that cannot be dialled: a dial to one of them fails with
   * `dial-timeout` after `dialTimeout`. They can still dial out (NAT'd peers).
   * The default is the share of undialable peers attributed to the IPFS DHT
   * measurements of Trautwein et al., "Design and evaluation of IPFS: a
   * storage layer for the decentralized web", ACM SIGCOMM 2022. Henningsen
   * et al. (IFIP Networking 2020, "Mapping the Interplanetary Filesystem")
   * found at least 52.19 % of the nodes behind NATs and unreachable.
   *
   * @default 0.45 (range 0..1)
   */
  undialable: number
  /**
   * Share of the undialable nodes that still announce the DHT protocol in
   * identify: they run in server mode though nobody can dial them (a NAT
   * their AutoNAT has not detected, a firewall, a wrong config), so a node
   * they dial learns them as a server. Classic nodes put them in their
   * tables; priority-dht nodes verify them first (and drop them). This is
   * how undialable peers keep entering tables on the real network; with 0
   * they only come from the seeded tables and fade out in a live run.
   *
   * @default 0 (range 0..1)
   */
  announcing: number
  /**
   * How long a dial to an undialable node takes to fail (virtual ms).
   * js-libp2p@3 uses 10 s per dial and 6 s per address; 5 s is the issue's
   * default and a common per-address timeout.
   *
   * @default 5000 (range 1..600000)
   */
  dialTimeout: Millis
  /**
   * Round trips a successful dial costs before the first request can be sent
   * (TCP handshake, Noise XX, muxer negotiation). Assumption: TCP + Noise +
   * Yamux is about 3 round trips; QUIC would be 1 to 2.
   *
   * @default 3 (range 0..10)
   */
  dialRoundTrips: number
  /**
   * Median round-trip time between two nodes (virtual ms). Per-pair RTTs are
   * drawn once, deterministically from the seed and the pair, from a
   * log-normal distribution with this median and `rttP95` as its 95th
   * percentile. Assumption, not a measurement: right-skewed and unimodal as
   * Internet RTT studies report (Acharya and Saltz 1998; Valadão et al. 2012
   * found pairwise PlanetLab averages below 500 ms for over 99 % of pairs).
   *
   * @default 100 (range 1..10000)
   */
  rttMedian: Millis
  /**
   * 95th percentile of the per-pair round-trip time (virtual ms).
   *
   * @default 300 (range rttMedian..10000)
   */
  rttP95: Millis
  /**
   * Round-trip times are clamped to [rttMin, rttMax].
   *
   * @default 10 (range 0..rttMedian)
   */
  rttMin: Millis
  /**
   * @default 2000 (range rttP95..requestTimeout)
   */
  rttMax: Millis
  /**
   * Probability that one message (a request or a response) is lost. A lost
   * message makes the request fail with `timeout` after `requestTimeout`.
   * Dials themselves are not subject to loss.
   *
   * @default 0 (range 0..1)
   */
  loss: number
  /**
   * How long a requester waits for a response once the request is sent
   * (`@libp2p/kad-dht` reads messages with a 10 s timeout).
   *
   * @default 10000 (range 1..600000)
   */
  requestTimeout: Millis
  /**
   * Open connections kept per node; beyond it the least recently used one is
   * closed (on both sides), and the next contact dials again and re-runs
   * identify. js-libp2p@3's connection manager allows 300.
   *
   * @default 300 (range 1..100000)
   */
  maxConnections: number
  /**
   * Share of the dialable nodes that churn: each goes offline and comes back
   * on its own schedule (sessions and absences of random length around
   * `sessionMedian`, a fixed random phase). The others form the stable core.
   * An offline node refuses dials and resets open connections (the request
   * fails with `dial-refused` after one round trip).
   *
   * @default 0 (range 0..1)
   */
  churn: number
  /**
   * Median length of a churning node's sessions and of its absences (virtual
   * ms); each node's lengths are drawn once, log-uniform within 4x either side.
   *
   * @default 1800000 (30 minutes; range 1000..86400000)
   */
  sessionMedian: Millis
  /**
   * Rate at which dialable nodes leave for good, per virtual hour: node i
   * leaves at an exponentially distributed time (hash-derived, fixed per
   * node) and never comes back, taking its records with it; until then it
   * churns (or not) as above. Nobody joins in their place.
   *
   * @default 0 (range 0..100)
   */
  departRate: number
  /**
   * Rate at which new nodes join, per virtual hour, as a share of the
   * nodes there: a hash-derived share x / (1 + x) of the world's nodes,
   * with x = `joinRate` times `joinWindow` in hours (at most 0.9), is not
   * there at first and arrives at uniformly random moments within
   * `joinWindow`; each then joins (connects to a few online
   * dialable nodes, looks up its own key, then refreshes its buckets) and
   * from then on departs and churns like any other. Equal to `departRate`,
   * the network size stays about steady. Nodes still to arrive are in no
   * table and in no ground truth until they do.
   *
   * @default 0 (range 0..100)
   */
  joinRate: number
  /**
   * Virtual ms over which the joining nodes arrive (a live run sets it to
   * its duration).
   *
   * @default 7200000 (2 h; range 1000..2592000000)
   */
  joinWindow: Millis
}

export function defaultNetworkConfig (): NetworkConfig {
  return {
    undialable: 0.45,
    announcing: 0,
    dialTimeout: 5_000,
    dialRoundTrips: 3,
    rttMedian: 100,
    rttP95: 300,
    rttMin: 10,
    rttMax: 2_000,
    loss: 0,
    requestTimeout: 10_000,
    maxConnections: 300,
    churn: 0,
    sessionMedian: 30 * 60_000,
    departRate: 0,
    joinRate: 0,
    joinWindow: 7_200_000
  }
}

export function validateNetworkConfig (partial: Partial<NetworkConfig> = {}): NetworkConfig {
  const c = { ...defaultNetworkConfig(), ...stripUndefined(partial) }
  checkRange('network.undialable', c.undialable, 0, 1, false)
  checkRange('network.announcing', c.announcing, 0, 1, false)
  checkRange('network.dialTimeout', c.dialTimeout, 1, 600_000, false)
  checkRange('network.dialRoundTrips', c.dialRoundTrips, 0, 10, false)
  checkRange('network.rttMedian', c.rttMedian, 1, 10_000, false)
  checkRange('network.rttP95', c.rttP95, c.rttMedian, 10_000, false)
  checkRange('network.rttMin', c.rttMin, 0, c.rttMedian, false)
  checkRange('network.requestTimeout', c.requestTimeout, 1, 600_000, false)
  checkRange('network.rttMax', c.rttMax, c.rttP95, c.requestTimeout, false)
  checkRange('network.loss', c.loss, 0, 1, false)
  checkRange('network.maxConnections', c.maxConnections, 1, 100_000)
  checkRange('network.churn', c.churn, 0, 1, false)
  checkRange('network.sessionMedian', c.sessionMedian, 1000, 86_400_000, false)
  checkRange('network.departRate', c.departRate, 0, 100, false)
  checkRange('network.joinRate', c.joinRate, 0, 100, false)
  checkRange('network.joinWindow', c.joinWindow, 1000, 2_592_000_000, false)
  return c
}

export interface WorldConfig {
  /**
   * Number of nodes.
   *
   * @default 1000 (range 2..10,000,000)
   */
  nodes: number
  /**
   * The seed every random choice derives from.
   *
   * @default 1 (any 32-bit unsigned integer)
   */
  seed: number
  /**
   * Build every node's coordinator at the start (true) or on first contact
   * (false). Lazy nodes are seeded from a per-node seed, so a node is the same
   * whichever way it is built; the two modes give the same trace as long as
   * no maintenance tick falls inside the run (untouched lazy nodes do not
   * refresh their buckets; eager nodes are built at spread-out phases of
   * their refresh interval, so their first refreshes fall anywhere in it).
   *
   * @default false
   */
  eager: boolean
  /**
   * The most events queued at once (see `event-queue.ts`).
   *
   * @default 10,000,000 (range 1000..100,000,000)
   */
  maxQueued: number
  network: Partial<NetworkConfig>
  /**
   * Passed to every node's `Coordinator`.
   *
   * @default {} (the core's defaults)
   */
  coordinator: Partial<CoordinatorConfig>
  /**
   * Give every node a priority peer stack (observations from every dial and
   * request, value-ordered and hedged lookups, back-off), or none: every peer
   * equal, as classic Kademlia.
   *
   * @default false
   */
  peerStack: boolean
  /**
   * With `peerStack`, the share of nodes that run priority-dht (peer stack,
   * admission that proves dialability, curated answers); the others are
   * classic nodes (every peer equal, every identified server admitted,
   * unfiltered answers), as `@libp2p/kad-dht` and go-libp2p-kad-dht behave.
   * Which nodes adopt is hash-derived from the seed and the node index.
   *
   * @default 1 (range 0..1)
   */
  adoption: number
  /**
   * Tuning of each node's stack. `maxPeers` defaults to 2000 here to keep a
   * million nodes in memory.
   *
   * @default { maxPeers: 2000 }
   */
  peerStackConfig: Partial<PeerStackConfig>
  /**
   * Disjoint paths of the get and findProviders lookups of nodes running
   * priority-dht (its adapter's default); classic nodes use one, as
   * go-libp2p-kad-dht does.
   *
   * @default 3 (range 1..16)
   */
  adopterDisjointPaths: number
  /**
   * Virtual ms a provider record or value stays valid at a node after it
   * was stored or refreshed there (`store.ts`): 48 h in the Go and JS DHTs.
   *
   * @default 172800000 (48 h; range 1000..2592000000)
   */
  recordTtl: Millis
}

export function defaultWorldConfig (): WorldConfig {
  return { nodes: 1000, seed: 1, eager: false, maxQueued: 10_000_000, network: {}, coordinator: {}, peerStack: false, adoption: 1, peerStackConfig: { maxPeers: 2000 }, adopterDisjointPaths: 3, recordTtl: DEFAULT_RECORD_TTL }
}

export function validateWorldConfig (partial: Partial<WorldConfig> = {}): WorldConfig & { network: NetworkConfig } {
  const c = { ...defaultWorldConfig(), ...stripUndefined(partial) }
  checkRange('nodes', c.nodes, 2, 10_000_000)
  checkRange('seed', c.seed, 0, 4294967295)
  checkRange('maxQueued', c.maxQueued, 1000, 100_000_000)
  checkRange('adoption', c.adoption, 0, 1, false)
  checkRange('adopterDisjointPaths', c.adopterDisjointPaths, 1, 16)
  checkRange('recordTtl', c.recordTtl, 1000, 2_592_000_000, false)
  return { ...c, network: validateNetworkConfig(c.network) }
}
