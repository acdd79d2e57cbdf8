/**
 * 10 000 fuzz inputs through the inbound path (see test/fuzz/run.ts); the
 * 1 000 000-input run is `npm run fuzz -- --count 1000000 --seed S`.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { decodeMessage } from '../../src/libp2p/handler.ts'
import { runFuzz } from './run.ts'
import { createTarget } from './target.ts'

describe('fuzz: inbound wire path', function () {
  this.timeout(120_000)

  it('answers or refuses with a typed error 10 000 hostile inputs; stores bounded, canaries intact, heap bounded', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
    // eslint-disable-next-line no-console
    console.log(`      fuzz seed ${seed} (FUZZ_SEED=${seed} to repeat)`)
    const stats = await runFuzz({ count: 10_000, seed, checkEvery: 1000 })
    expect(stats.crashes).to.equal(0)
    expect(stats.inputs).to.equal(10_000)
    expect(stats.lostCanaries).to.equal(0)
    // every kind of outcome was reached, so the inputs get past the decoder
    expect(stats.answered).to.be.greaterThan(1000)
    expect(stats.errors.InvalidRecordError ?? 0).to.be.greaterThan(50)
    expect(stats.errors.InvalidDhtMessageError ?? 0).to.be.greaterThan(100)
    expect(stats.heapMax - stats.heapBefore).to.be.lessThan(64 * 1024 * 1024)
  })
})

describe('answers stay decodable whatever peers announce (found by the fuzzer)', function () {
  this.timeout(60_000)

  it('a provider announcing new addresses in every ADD_PROVIDER is kept with at most 16, and GET_PROVIDERS answers decode', async () => {
    const target = await createTarget({ senders: 1, tablePeers: 2 })
    try {
      const sender = target.senders[0]
      const key = new Uint8Array([0x12, 0x20, ...new Uint8Array(32).fill(7)])
      const signal = new AbortController().signal
      for (let i = 0; i < 10; i++) {
        const addrs = Array.from({ length: 16 }, (_, j) => multiaddr(`/ip4/10.1.${i}.${j}/tcp/4001`).bytes)
        await target.handler.answer(sender, Message.encode({ type: MessageType.ADD_PROVIDER, key, providerPeers: [{ id: sender.toMultihash().bytes, addrs }] }), undefined, { signal })
      }
      expect((await target.node.peerStore.get(sender)).addresses.length).to.equal(16)
      const answer = await target.handler.answer(sender, Message.encode({ type: MessageType.GET_PROVIDERS, key }), undefined, { signal })
      const decoded = decodeMessage(answer ?? new Uint8Array())
      expect(decoded.providerPeers).to.have.length(1)
      expect(decoded.providerPeers[0].addrs).to.have.length(16)
    } finally {
      await target.stop()
    }
  })

  it('a table peer with more addresses than the decode limit is named with 64 of them', async () => {
    const target = await createTarget({ senders: 1, tablePeers: 1 })
    try {
      const peer = target.tablePeers[0]
      await target.node.peerStore.merge(peer, { multiaddrs: Array.from({ length: 100 }, (_, j) => multiaddr(`/ip4/10.2.0.${j}/tcp/4001`)) })
      const answer = await target.handler.answer(target.senders[0], Message.encode({ type: MessageType.FIND_NODE, key: peer.toMultihash().bytes }), undefined, { signal: new AbortController().signal })
      const decoded = decodeMessage(answer ?? new Uint8Array())
      expect(decoded.closerPeers).to.have.length(1)
      expect(decoded.closerPeers[0].addrs).to.have.length(64)
    } finally {
      await target.stop()
    }
  })
})
