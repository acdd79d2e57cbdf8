/**
 * The region store step by step, with a fake clock and a fake peer stack:
 * freshness, back-off and failed peers, the k-good-peers rule, the LRU bound,
 * single flight and the network size estimate.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import { commonPrefixLength, compareDistance } from '../../src/core/key.ts'
import { InvalidConfigError } from '../../src/index.ts'
import { kadKey } from '../../src/libp2p/peer-info.ts'
import { RegionStore, estimateNetworkSize } from '../../src/libp2p/regions.ts'
import type { PeerInfo } from '@libp2p/interface'

const K = 4

function keyOf (first: number, last = 0): Uint8Array {
  const key = new Uint8Array(32)
  key[0] = first
  key[31] = last
  return key
}

describe('libp2p/region-store: the region cache step by step', function () {
  this.timeout(30_000)
  let peers: PeerInfo[] = []
  let now = 1_000_000
  let backedOff = new Set<string>()

  before(async () => {
    peers = await Promise.all(Array.from({ length: 64 }, async () => ({ id: peerIdFromPrivateKey(await generateKeyPair('Ed25519')), multiaddrs: [] })))
  })

  beforeEach(() => {
    now = 1_000_000
    backedOff = new Set()
  })

  function store (init: Partial<ConstructorParameters<typeof RegionStore>[0]> = {}): RegionStore {
    return new RegionStore({ k: K, quality: { backedOff: id => backedOff.has(id) }, networkSize: () => 64, now: () => now, ...init })
  }

  /** The k closest and 3 spares of `target` among the 64 peers, nearest first */
  function lookupOf (target: Uint8Array): { closest: PeerInfo[], spares: PeerInfo[] } {
    const sorted = [...peers].sort((a, b) => compareDistance(kadKey(a.id.toMultihash().bytes), kadKey(b.id.toMultihash().bytes), target))
    return { closest: sorted.slice(0, K), spares: sorted.slice(K, K + 3) }
  }

  const ids = (list: PeerInfo[]): string[] => list.map(p => p.id.toString())

  it('places a key of a fresh region on its closest peers, and nothing once the window has passed', () => {
    const s = store({ freshFor: 1000 })
    const target = keyOf(0x10)
    const { closest, spares } = lookupOf(target)
    s.learn(target, closest, spares)
    const near = keyOf(0x10, 1)
    expect(ids(s.place(near, 10)?.closest ?? [])).to.have.members(ids(closest))
    expect(s.place(keyOf(0x90), 10), 'a key outside the region').to.equal(undefined)
    now += 999
    expect(s.place(near, 10)).to.not.equal(undefined)
    now += 1
    expect(s.place(near, 10), 'stale').to.equal(undefined)
    s.missed()
    expect(s.stats).to.include({ hits: 2, misses: 1, stale: 1, regions: 0 })
  })

  it('drops a region when a server it does not hold enters the routing table near it; members and far servers leave it', () => {
    const s = store()
    const keyOfPeer = (p: PeerInfo): Uint8Array => kadKey(p.id.toMultihash().bytes)
    // the joiner sits on the target: the region was learned before it joined
    const [joiner, ...others] = peers
    const target = keyOfPeer(joiner)
    const sorted = [...others].sort((a, b) => compareDistance(keyOfPeer(a), keyOfPeer(b), target))
    const closest = sorted.slice(0, K)
    s.learn(target, closest, sorted.slice(K, K + 3))
    const depth = 1 + Math.min(...closest.map(p => commonPrefixLength(keyOfPeer(p), target)))
    const far = others.find(p => commonPrefixLength(keyOfPeer(p), target) < depth - 1)
    if (far == null) {
      throw new Error('no peer outside the region')
    }
    s.arrived(far.id.toString(), keyOfPeer(far))
    s.arrived(closest[0].id.toString(), keyOfPeer(closest[0]))
    expect(s.stats).to.include({ outdated: 0, regions: 1 })
    expect(s.place(target, 10)).to.not.equal(undefined)
    s.arrived(joiner.id.toString(), target)
    expect(s.stats).to.include({ outdated: 1, regions: 0 })
    expect(s.place(target, 10), 'the next put looks up and finds the joiner').to.equal(undefined)
  })

  it('skips peers in back-off or that failed a delivery, and places nothing with fewer than k good peers left', () => {
    const s = store()
    const target = keyOf(0x20)
    const { closest, spares } = lookupOf(target)
    s.learn(target, closest, spares)
    backedOff.add(closest[0].id.toString())
    s.failed(closest[1].id.toString())
    const placed = s.place(target, 10)
    expect(ids(placed?.closest ?? [])).to.not.include.members([closest[0].id.toString()])
    expect(ids(placed?.closest ?? [])).to.not.include(closest[1].id.toString())
    expect(placed?.closest).to.have.length(K)
    expect(ids(placed?.closest ?? [])).to.include.members(ids(spares.slice(0, 2)))
    // 7 known, 2 out: 5 good; two more in back-off leave 3 < k
    backedOff.add(closest[2].id.toString())
    backedOff.add(closest[3].id.toString())
    expect(s.place(target, 10)).to.equal(undefined)
    s.missed()
    expect(s.stats).to.include({ hits: 1, misses: 1, tooFewGood: 1 })
    // the good peers left are what a put delivers to while it looks up: nearest first, none in back-off or failed
    const seeds = s.seeds(target, 10)
    expect(ids(seeds)).to.deep.equal(ids(spares))
    expect(s.seeds(target, 2)).to.have.length(2)
    expect(s.seeds(keyOf(0x90), 10), 'no region covers the key').to.deep.equal([])
    expect(s.stats).to.include({ seeded: 2 })
    // the back-off ends: the region serves again
    backedOff.clear()
    expect(s.place(target, 10)?.closest).to.have.length(K)
  })

  it('keeps at most maxRegions, evicting the least recently used', () => {
    const s = store({ maxRegions: 2 })
    const [a, b, c] = [keyOf(0x00), keyOf(0x80), keyOf(0x40)]
    for (const t of [a, b]) {
      const { closest, spares } = lookupOf(t)
      s.learn(t, closest, spares)
    }
    expect(s.place(a, 0)).to.not.equal(undefined) // a is now the most recently used
    const { closest, spares } = lookupOf(c)
    s.learn(c, closest, spares)
    expect(s.stats).to.include({ regions: 2, evicted: 1, learned: 3 })
    expect(s.place(a, 0)).to.not.equal(undefined)
    expect(s.place(c, 0)).to.not.equal(undefined)
    expect(s.place(b, 0), 'b was the least recently used').to.equal(undefined)
  })

  it('a region learned from fewer than k peers covers only its own target', () => {
    const s = store()
    const target = keyOf(0x30)
    s.learn(target, lookupOf(target).closest.slice(0, K - 1), [])
    expect(s.place(keyOf(0x30, 1), 0)).to.equal(undefined)
  })

  it('single flight: a key sharing the expected depth with a lookup in flight waits for it, a far key does not', async () => {
    // 64 peers, k = 4: a region's depth is about log2(64 / 4) + 1 = 5 bits, minus a margin of 1: 4 bits
    const s = store()
    const target = keyOf(0b1010_0000)
    const end = s.begin(target)
    expect(commonPrefixLength(keyOf(0b1010_1111), target)).to.equal(4)
    expect(s.inFlightNear(keyOf(0b1011_0000)), 'shares 3 bits').to.equal(undefined)
    let resolved = false
    const wait = s.inFlightNear(keyOf(0b1010_1111))
    expect(wait).to.be.instanceOf(Promise)
    void wait?.then(() => { resolved = true })
    await Promise.resolve()
    expect(resolved).to.equal(false)
    end()
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(resolved).to.equal(true)
    expect(s.inFlightNear(keyOf(0b1010_1111)), 'ended').to.equal(undefined)
  })

  it('refuses a bad configuration with InvalidConfigError', () => {
    expect(() => store({ freshFor: -1 })).to.throw(InvalidConfigError)
    expect(() => store({ maxRegions: 0 })).to.throw(InvalidConfigError)
    expect(() => store({ joinMargin: 1.5 })).to.throw(InvalidConfigError)
  })

  it('estimates the network size from bucket sizes', () => {
    expect(estimateNetworkSize([15, 3, 1], 20)).to.equal(19)
    // buckets 0..2 full (k = 20), then 12, 6, 2: peers sharing >= 3 bits with us, about n / 8
    expect(estimateNetworkSize([20, 20, 20, 12, 6, 2], 20)).to.equal(160)
    expect(estimateNetworkSize([], 20)).to.equal(1)
  })
})
