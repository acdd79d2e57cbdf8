/**
 * Peer values reach libp2p: peer store tags keep the connections that carry
 * our lookups when the connection manager prunes, and values and back-off
 * survive a restart over a persistent datastore.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { expect } from 'aegir/chai'
import { LevelDatastore } from 'datastore-level'
import all from 'it-all'
import pWaitFor from 'p-wait-for'
import { MessageType } from '../../src/generated/dht.ts'
import { VALUE_TAG } from '../../src/index.ts'
import { observationOf } from '../../src/libp2p/peer-values.ts'
import { createOurNode, routingTableSize, stopAll } from './fixtures/network.ts'
import { becomeTarpit } from './fixtures/tarpit.ts'
import type { OurNode } from './fixtures/network.ts'
import type { Tarpit } from './fixtures/tarpit.ts'
import type { PeerValues } from '../../src/libp2p/peer-values.ts'
import type { PeerId } from '@libp2p/interface'

async function hasValueTag (node: OurNode, peer: PeerId): Promise<boolean> {
  const p = await node.peerStore.get(peer).catch(() => undefined)
  return (p?.tags.get(VALUE_TAG)?.value ?? 0) > 0
}

describe('libp2p/peer-values', function () {
  this.timeout(120_000)
  let nodes: OurNode[] = []
  let tarpits: Tarpit[] = []

  afterEach(async () => {
    await stopAll(nodes)
    await Promise.all(tarpits.map(async t => t.close()))
    nodes = []
    tarpits = []
  })

  it('maps messenger outcomes to observations, leaving out our own aborts and double-counted dial failures', () => {
    const peer = {} as unknown as PeerId
    expect(observationOf({ type: 'dial', peer, ok: true, durationMs: 12 })).to.deep.equal({ type: 'dial-ok', duration: 12 })
    expect(observationOf({ type: 'dial', peer, ok: false, durationMs: 5, reason: 'dial-timeout' })).to.deep.equal({ type: 'dial-failed', reason: 'timeout' })
    expect(observationOf({ type: 'dial', peer, ok: false, durationMs: 5, reason: 'aborted' })).to.equal(undefined)
    expect(observationOf({ type: 'request', peer, messageType: MessageType.FIND_NODE, ok: true, latencyMs: 7, useful: false })).to.deep.equal({ type: 'response', latency: 7, useful: false })
    expect(observationOf({ type: 'request', peer, messageType: MessageType.FIND_NODE, ok: false, latencyMs: 0, reason: 'dial-timeout' })).to.equal(undefined)
    expect(observationOf({ type: 'request', peer, messageType: MessageType.FIND_NODE, ok: false, latencyMs: 9, reason: 'timeout' })).to.deep.equal({ type: 'request-failed', reason: 'timeout' })
    expect(observationOf({ type: 'request', peer, messageType: MessageType.FIND_NODE, ok: false, latencyMs: 0, reason: 'overloaded' })).to.equal(undefined)
  })

  it('under a small maxConnections, connections to valuable peers survive pruning', async () => {
    // libp2p prunes the lowest tag value first; among equal values, inbound
    // connections go first. The valuable peers dial in, the others are dialled
    // out, so without value tags the valuable peers would be the ones pruned.
    // libp2p never prunes a connection with a DHT stream open: idle streams close fast here
    const network = { idleStreamTimeout: 50 }
    const a = await createOurNode({ kBucketSize: 20, network, peerValues: { tagInterval: 50 } })
    const valuable = await Promise.all(Array.from({ length: 3 }, async () => createOurNode({ kBucketSize: 20, network })))
    nodes.push(a, ...valuable)
    for (const v of valuable) {
      await v.dial(a.getMultiaddrs())
    }
    await pWaitFor(() => routingTableSize(a) >= 3, { timeout: 20_000 })
    // lookups through them: every answer is an observation, and the tags follow
    for (let i = 0; i < 3; i++) {
      await all(a.services.dht.getClosestPeers(new TextEncoder().encode(`key-${i}`)))
    }
    await pWaitFor(async () => (await Promise.all(valuable.map(async v => hasValueTag(a, v.peerId)))).every(Boolean), { timeout: 20_000 })

    const others = await Promise.all(Array.from({ length: 4 }, async () => createOurNode({ kBucketSize: 20, network })))
    nodes.push(...others)
    for (const o of others) {
      await a.dial(o.getMultiaddrs())
    }
    await pWaitFor(() => routingTableSize(a) >= 7, { timeout: 20_000 })
    // once the self lookups' streams have closed, lower the limit: libp2p prunes at once
    await pWaitFor(() => a.getConnections().every(c => c.streams.length === 0), { timeout: 20_000 })
    const connectionManager = (a as unknown as { components: { connectionManager: { setMaxConnections(n: number): void } } }).components.connectionManager
    connectionManager.setMaxConnections(5)
    await pWaitFor(() => a.getConnections().length <= 5, { timeout: 20_000 })
    for (const v of valuable) {
      expect(a.getConnections(v.peerId).length, 'a valuable peer lost its connection').to.be.greaterThan(0)
    }
    // the pruned lost their connection to our own pruner: not held back as if they had gone away
    const pruned = others.filter(o => a.getConnections(o.peerId).length === 0)
    expect(pruned).to.have.length.greaterThan(0)
    await pWaitFor(() => pruned.every(o => a.services.dht.peerValue(o.peerId).category !== 'bad'), { timeout: 5000 })
      .catch(() => {})
    for (const o of pruned) {
      expect(a.services.dht.peerValue(o.peerId).category, 'a pruned peer is held back').to.not.equal('bad')
    }
  })

  it('values and back-off survive a restart over a persistent datastore', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'priority-dht-values-'))
    const ds = new LevelDatastore(join(dir, 'a'))
    await ds.open()
    try {
      const key = await generateKeyPair('Ed25519')
      const a = await createOurNode({ kBucketSize: 4 }, { privateKey: key, datastore: ds })
      const good = await createOurNode({ kBucketSize: 4 })
      const doomed = await createOurNode({ kBucketSize: 4 })
      nodes.push(a, good)
      await a.dial(good.getMultiaddrs())
      await a.dial(doomed.getMultiaddrs())
      await pWaitFor(() => routingTableSize(a) >= 2, { timeout: 20_000 })
      await all(a.services.dht.getClosestPeers(new TextEncoder().encode('warm')))
      // doomed turns into a tarpit: a finds out (its connection closed, the liveness ping fails)
      tarpits.push(await becomeTarpit(doomed))
      await pWaitFor(() => a.services.dht.peerValue(doomed.peerId).backoffUntil != null, { timeout: 20_000 })
      const goodBefore = a.services.dht.peerValue(good.peerId)
      const doomedBefore = a.services.dht.peerValue(doomed.peerId)
      expect(goodBefore.category).to.equal('active')
      expect(doomedBefore.category).to.equal('bad')
      await a.stop()
      nodes = nodes.filter(n => n !== a)

      const a2 = await createOurNode({ kBucketSize: 4 }, { privateKey: key, datastore: ds })
      nodes.push(a2)
      const goodAfter = a2.services.dht.peerValue(good.peerId)
      const doomedAfter = a2.services.dht.peerValue(doomed.peerId)
      expect(goodAfter.category).to.equal('active')
      expect(goodAfter.value).to.be.closeTo(goodBefore.value, 0.05)
      expect(doomedAfter.category).to.equal('bad')
      expect(doomedAfter.backoffUntil).to.equal(doomedBefore.backoffUntil)
      // and it bootstraps from its best peer: the good one, not the tarpit
      await pWaitFor(() => a2.getConnections(good.peerId).length > 0, { timeout: 20_000 })
    } finally {
      await stopAll(nodes)
      nodes = []
      await ds.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a peer in back-off that we hold a connection to is still asked, and its answer lifts the back-off', async () => {
    const a = await createOurNode({ kBucketSize: 20 })
    const peers = await Promise.all(Array.from({ length: 4 }, async () => createOurNode({ kBucketSize: 20 })))
    nodes.push(a, ...peers)
    for (const p of peers) {
      await a.dial(p.getMultiaddrs())
    }
    await pWaitFor(() => routingTableSize(a) >= 4, { timeout: 20_000 })
    // one failed dial, as a live peer's dial on a loaded host can run out of time: a minute of back-off
    const [slow] = peers
    const stack = (a.services.dht as unknown as { peerValues: PeerValues }).peerValues
    stack.observe(slow.peerId.toString(), { type: 'dial-failed', reason: 'timeout' })
    expect(a.services.dht.peerValue(slow.peerId).backoffUntil).to.be.a('number')
    expect(a.getConnections(slow.peerId)).to.have.length.greaterThan(0)
    // the lookup needs no dial to ask it: it is among the results, and answered
    const closest = (await all(a.services.dht.getClosestPeers(slow.peerId.toMultihash().bytes)))
      .filter(e => e.name === 'FINAL_PEER').map(e => e.peer.id.toString())
    expect(closest).to.include(slow.peerId.toString())
    expect(a.services.dht.peerValue(slow.peerId).backoffUntil).to.equal(undefined)
  })
})
