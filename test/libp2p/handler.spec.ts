import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { MessageType } from '../../src/generated/dht.ts'
import { InboundHandler } from '../../src/libp2p/handler.ts'
import { closed, createNode, echo, introduce, lpStream, Message, protocolStreams, PROTOCOL, stopAll, waitFor } from './fixtures/nodes.ts'
import type { TestServices } from './fixtures/nodes.ts'
import type { Dispatch, InboundHandlerInit, InboundSession } from '../../src/libp2p/handler.ts'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'

interface Raw { stream: Stream, lp: LengthPrefixedStream<Stream> }

const key = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s)

/** Encodes one varint, for hand-made length prefixes */
function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

async function ping (raw: Raw, k = 'p'): Promise<Message> {
  await raw.lp.write(Message.encode({ type: MessageType.PING, key: key(k) }))
  return Message.decode(await raw.lp.read())
}

/** Resolves once the remote has reset the stream; hangs (and the test times out) otherwise */
async function expectReset (stream: Stream): Promise<void> {
  await closed(stream)
  expect(stream.status).to.equal('reset')
}

describe('inbound handler', () => {
  let server: Libp2p<TestServices>
  let client: Libp2p<TestServices>

  afterEach(async () => {
    await stopAll()
  })

  async function setup (dispatch: Dispatch = echo, init: Partial<InboundHandlerInit> = {}): Promise<void> {
    server = await createNode({ dispatch, handler: init })
    client = await createNode({})
    await introduce(client, server)
  }

  async function open (): Promise<Raw> {
    const stream = await client.dialProtocol(server.peerId, PROTOCOL)
    return { stream, lp: lpStream(stream) }
  }

  /** A request from a fresh node through the messenger: the server still serves others */
  async function stillServes (): Promise<void> {
    const other = await createNode({ messenger: {} })
    await introduce(other, server)
    const res = await other.services.messenger.request(server.peerId, { type: MessageType.PING, key: key('ok') })
    expect(res.key).to.equalBytes(key('ok'))
  }

  it('rejects invalid config at construction', () => {
    const components = { registrar: {} as any, logger: defaultLogger() }
    expect(() => new InboundHandler(components, { protocol: PROTOCOL, idleTimeout: 0 }, echo)).to.throw().with.property('name', 'InvalidParametersError')
    expect(() => new InboundHandler(components, { protocol: PROTOCOL, maxStreams: 1.5 }, echo)).to.throw().with.property('name', 'InvalidParametersError')
  })

  it('answers several sequential requests on one stream, in order', async () => {
    await setup()
    const raw = await open()
    await raw.lp.writeV([1, 2, 3].map(i => Message.encode({ type: MessageType.GET_VALUE, key: key(`${i}`) })))
    for (const i of [1, 2, 3]) {
      const res = Message.decode(await raw.lp.read())
      expect(res.type).to.equal(MessageType.GET_VALUE)
      expect(res.key).to.equalBytes(key(`${i}`))
    }
    expect((await ping(raw, 'again')).key).to.equalBytes(key('again'))
  })

  it('writes nothing when dispatch returns undefined and keeps serving the stream', async () => {
    const received: MessageType[] = []
    await setup(async (from, message) => {
      received.push(message.type)
      return message.type === MessageType.ADD_PROVIDER ? undefined : { type: message.type, key: message.key }
    })
    const raw = await open()
    await raw.lp.write(Message.encode({ type: MessageType.ADD_PROVIDER, key: key('provided') }))
    const res = await ping(raw, 'after')
    expect(res.type).to.equal(MessageType.PING)
    expect(res.key).to.equalBytes(key('after'))
    expect(received).to.deep.equal([MessageType.ADD_PROVIDER, MessageType.PING])
  })

  it('flushes what a stream\'s session deferred before its next response, once nothing more has arrived, and when the stream ends', async () => {
    // a session per stream, as the service's Rpc keeps (ADD_PROVIDER records stored together)
    const sessions: Array<{ pending: number, stored: number, flushes: number[], flush(): Promise<void> }> = []
    const session = (): InboundSession => {
      const s = {
        pending: 0,
        stored: 0,
        flushes: [] as number[],
        async flush () {
          s.flushes.push(s.pending)
          s.stored += s.pending
          s.pending = 0
        }
      }
      sessions.push(s)
      return s
    }
    await setup(async (from, message, _connection, options) => {
      if (message.type === MessageType.ADD_PROVIDER) {
        (options.session as unknown as { pending: number }).pending++
        return undefined
      }
      return { type: message.type, key: message.key }
    }, { session })
    const raw = await open()
    const add = (k: string): Uint8Array => Message.encode({ type: MessageType.ADD_PROVIDER, key: key(k) })
    // three records and a request arrive together: stored in one go, before the answer
    await raw.lp.writeV([add('a'), add('b'), add('c'), Message.encode({ type: MessageType.PING, key: key('ack') })])
    const res = Message.decode(await raw.lp.read())
    expect(res.key).to.equalBytes(key('ack'))
    expect(sessions).to.have.length(1)
    const [s] = sessions
    expect(s.stored, 'stored before the answer').to.equal(3)
    expect(s.flushes).to.deep.equal([3])
    // two more, then silence with the stream open: stored without waiting for a next message
    await raw.lp.writeV([add('d'), add('e')])
    await waitFor(() => s.stored === 5, 3000, 'the records sent before a pause')
    expect(raw.stream.status).to.equal('open')
    // the last one and, in the same write, the start of a message never finished: the handler waits
    // for the rest, then the remote closes and the stream ends malformed; the record is still stored
    const last = add('f')
    const framed = Uint8Array.from([...varint(last.byteLength), ...last, ...varint(10), 1, 2, 3])
    raw.stream.send(framed)
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(s.stored, 'held while a message is half-way').to.equal(5)
    await raw.stream.close()
    await waitFor(() => s.stored === 6, 3000, 'the record sent before the stream ended')
    expect(s.flushes.reduce((a, b) => a + b, 0)).to.equal(6)
  })

  it('aborts a stream that sends undecodable bytes, and keeps serving others', async () => {
    await setup()
    const raw = await open()
    await raw.lp.write(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff]))
    await expectReset(raw.stream)
    await stillServes()
  })

  it('aborts a stream announcing an oversize message', async () => {
    await setup(echo, { maxMessageSize: 1024 })
    const raw = await open()
    raw.stream.send(varint(1_000_000))
    raw.stream.send(new Uint8Array(16))
    await expectReset(raw.stream)
    await stillServes()
  })

  it('aborts a stream sending an unknown message type', async () => {
    await setup()
    const raw = await open()
    await raw.lp.write(Uint8Array.from([0x08, 99]))
    await expectReset(raw.stream)
  })

  it('aborts a stream sending more closer peers than the decode limit', async () => {
    await setup()
    const raw = await open()
    const closerPeers = Array.from({ length: 101 }, (_, i) => ({ id: key(`peer-${i}`), addrs: [] }))
    await raw.lp.write(Message.encode({ type: MessageType.FIND_NODE, closerPeers }))
    await expectReset(raw.stream)
  })

  it('closes a stream on which no message arrives within idleTimeout', async () => {
    await setup(echo, { idleTimeout: 200 })
    const raw = await open()
    expect((await ping(raw)).type).to.equal(MessageType.PING)
    // a graceful close of the server's write end, not a reset
    await waitFor(() => raw.stream.remoteWriteStatus === 'closed', 3000, 'server closed its end')
    expect(raw.stream.status).to.not.equal('reset')
    await raw.stream.close()
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'server stream gone')
  })

  it('closes its end when the remote closes between messages', async () => {
    await setup()
    const raw = await open()
    await ping(raw)
    await raw.stream.close()
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'server stream gone')
    expect(raw.stream.status).to.not.equal('reset')
  })

  it('aborts the stream when dispatch throws, and keeps serving others', async () => {
    await setup(async (from, message, connection, options) => {
      if (message.type === MessageType.PUT_VALUE) {
        throw new Error('boom')
      }
      return echo(from, message, connection, options)
    })
    const raw = await open()
    await raw.lp.write(Message.encode({ type: MessageType.PUT_VALUE }))
    await expectReset(raw.stream)
    await stillServes()
  })

  it('aborts the stream and the dispatch signal after handlerTimeout', async () => {
    let signal: AbortSignal | undefined
    await setup(async (from, message, connection, options) => {
      signal = options.signal
      return new Promise(() => {})
    }, { handlerTimeout: 200 })
    const raw = await open()
    await raw.lp.write(Message.encode({ type: MessageType.PING }))
    await expectReset(raw.stream)
    expect(signal?.aborted).to.be.true()
  })

  it('aborts the dispatch signal when the remote gives up on the stream', async () => {
    const started = Promise.withResolvers<AbortSignal>()
    await setup(async (from, message, connection, options) => {
      started.resolve(options.signal)
      return new Promise(() => {})
    })
    const raw = await open()
    await raw.lp.write(Message.encode({ type: MessageType.PING }))
    const signal = await started.promise
    raw.stream.abort(new Error('client gave up'))
    // handlerTimeout is 10 s: only the stream closing can fire the signal this soon
    await waitFor(() => signal.aborted, 3000, 'dispatch signal aborted')
  })

  it('aborts new streams beyond maxStreams, and accepts again once one closes', async () => {
    await setup(echo, { maxStreams: 1 })
    const first = await open()
    await ping(first)
    const second = await open()
    await expectReset(second.stream)
    expect((await ping(first, 'still')).key).to.equalBytes(key('still'))

    await first.stream.close()
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'first stream gone')
    expect((await ping(await open(), 'third')).key).to.equalBytes(key('third'))
  })

  it('keeps the streams beyond strangerShare of maxStreams for valued peers', async () => {
    const friend = await createNode({})
    await setup(echo, { maxStreams: 4, strangerShare: 0.5, isValued: peer => friend.peerId.equals(peer) })
    await introduce(friend, server)
    const openFrom = async (node: Libp2p<TestServices>): Promise<Raw> => {
      const stream = await node.dialProtocol(server.peerId, PROTOCOL)
      return { stream, lp: lpStream(stream) }
    }
    // a stranger gets two of the four
    const strangers = [await open(), await open()]
    for (const raw of strangers) {
      await ping(raw)
    }
    await expectReset((await open()).stream)
    // a valued peer still gets the other two, and no more
    const valued = [await openFrom(friend), await openFrom(friend)]
    for (const raw of valued) {
      await ping(raw)
    }
    await expectReset((await openFrom(friend)).stream)
    expect(server.services.handler.stats.failures).to.equal(2)
  })

  it('rejects a strangerShare outside (0, 1]', () => {
    const components = { registrar: {} as any, logger: defaultLogger() }
    for (const strangerShare of [0, -0.5, 1.5, Number.NaN]) {
      expect(() => new InboundHandler(components, { protocol: PROTOCOL, strangerShare }, echo), String(strangerShare)).to.throw().with.property('name', 'InvalidParametersError')
    }
  })

  it('stop() aborts open streams and dispatches, and unregisters the protocol', async () => {
    let signal: AbortSignal | undefined
    await setup(async (from, message, connection, options) => {
      if (message.type === MessageType.PING) {
        return { type: message.type }
      }
      signal = options.signal
      return new Promise(() => {})
    })
    const idle = await open()
    await ping(idle)
    const busy = await open()
    await busy.lp.write(Message.encode({ type: MessageType.FIND_NODE }))
    await waitFor(() => signal != null)

    await server.services.handler.stop()
    await expectReset(idle.stream)
    await expectReset(busy.stream)
    expect(signal?.aborted).to.be.true()
    expect(protocolStreams(server, client.peerId)).to.be.empty()
    await expect(client.dialProtocol(server.peerId, PROTOCOL)).to.eventually.be.rejected.with.property('name', 'UnsupportedProtocolError')
  })

  it('dispatches at most maxRequestsInFlight messages at once across peers; the others wait their turn', async () => {
    let current = 0
    let max = 0
    const gate = Promise.withResolvers<void>()
    await setup(async (from, message) => {
      current++
      max = Math.max(max, current)
      await gate.promise
      current--
      return { type: message.type, key: message.key }
    }, { maxRequestsInFlight: 2 })
    const clients = [client, ...await Promise.all([1, 2, 3, 4].map(async () => createNode({})))]
    const raws = await Promise.all(clients.map(async c => {
      await introduce(c, server)
      const stream = await c.dialProtocol(server.peerId, PROTOCOL)
      return { stream, lp: lpStream(stream) }
    }))
    const answers = Promise.all(raws.map(async (raw, i) => ping(raw, `c${i}`)))
    await waitFor(() => server.services.handler.limits().queuedRequests >= 1 && current === 2, 3000, 'two dispatching, others waiting')
    gate.resolve()
    const res = await answers
    expect(res.map(r => new TextDecoder().decode(r.key))).to.deep.equal(['c0', 'c1', 'c2', 'c3', 'c4'])
    expect(max).to.equal(2)
  })

  it('a peer over its request rate waits for tokens, and is reset when the wait would exceed maxRequestDelay', async () => {
    await setup(echo, { requestsPerSecond: 10, requestBurst: 2, maxRequestDelay: 150 })
    const raw = await open()
    // 2 from the burst, then 1 token per 100 ms: the 3rd waits ~100 ms; a 4th and 5th in parallel would wait 200 and 300 ms
    expect((await ping(raw, 'a')).key).to.equalBytes(key('a'))
    expect((await ping(raw, 'b')).key).to.equalBytes(key('b'))
    expect((await ping(raw, 'c')).key).to.equalBytes(key('c'))
    expect(server.services.handler.limits().delayedRequests).to.be.at.least(1)
    const others = await Promise.all([open(), open(), open()])
    await Promise.all(others.map(async r => r.lp.write(Message.encode({ type: MessageType.PING, key: key('x') }))))
    await waitFor(() => others.some(r => r.stream.status === 'reset'), 3000, 'a stream reset')
    expect(server.services.handler.limits().rateLimitedRequests).to.be.at.least(1)
  })

  it('heavy strangers wait for one shared pool; a valued peer and a light stranger do not', async () => {
    const friend = await createNode({})
    const light = await createNode({})
    // per-peer rates far above what is sent: only the pool can delay anyone
    await setup(echo, { isValued: peer => friend.peerId.equals(peer), strangerRequestsPerSecond: 10, strangerRequestBurst: 1, lightRequestsPerSecond: 1, lightRequestBurst: 2, maxRequestDelay: 5000 })
    const other = await createNode({})
    for (const node of [friend, light, other]) {
      await introduce(node, server)
    }
    const openFrom = async (node: Libp2p<TestServices>): Promise<Raw> => {
      const stream = await node.dialProtocol(server.peerId, PROTOCOL)
      return { stream, lp: lpStream(stream) }
    }
    // two strangers, 4 messages each: 2 within their light burst, then heavy
    await Promise.all([await open(), await openFrom(other)].map(async raw => {
      for (let i = 0; i < 4; i++) {
        expect((await ping(raw, `h${i}`)).key).to.equalBytes(key(`h${i}`))
      }
    }))
    const limits = server.services.handler.limits()
    expect(limits.pooledRequests).to.be.at.least(2)
    expect(limits.delayedRequests).to.equal(limits.pooledRequests)
    // the pool is in debt now; the friend's messages and a light stranger's first one pass without waiting
    const valued = await openFrom(friend)
    for (let i = 0; i < 5; i++) {
      await ping(valued, `f${i}`)
    }
    await ping(await openFrom(light), 'l')
    expect(server.services.handler.limits()).to.deep.include({ pooledRequests: limits.pooledRequests, delayedRequests: limits.delayedRequests, rateLimitedRequests: 0 })
  })

  it('a stranger with two messages being answered is heavy whatever its rate: a third waits for the pool', async () => {
    const gate = Promise.withResolvers<void>()
    let dispatching = 0
    await setup(async (from, message) => {
      dispatching++
      await gate.promise
      return { type: message.type, key: message.key }
    }, { isValued: () => false, strangerRequestsPerSecond: 10, strangerRequestBurst: 1, lightRequestsPerSecond: 1000, lightRequestBurst: 1000, maxRequestDelay: 5000 })
    const raws = [await open(), await open()]
    const first = Promise.all(raws.map(async (raw, i) => ping(raw, `a${i}`)))
    await waitFor(() => dispatching === 2, 3000, 'two messages dispatching')
    // far within its own rate and burst, but two of its messages are being answered
    const third = ping(await open(), 'c')
    await waitFor(() => server.services.handler.limits().pooledRequests === 1, 3000, 'the third waits for the pool')
    gate.resolve()
    await first
    expect((await third).key).to.equalBytes(key('c'))
  })

  it('rejects invalid limits at construction', () => {
    const components = { registrar: {} as any, logger: defaultLogger() }
    for (const init of [{ maxStreamsPerPeer: 0 }, { maxRequestsInFlight: -1 }, { requestsPerSecond: 0 }, { requestBurst: 1.5 }, { maxRequestDelay: -1 }, { maxTrackedPeers: 0 }, { strangerRequestsPerSecond: 0 }, { strangerRequestBurst: 0.5 }, { lightRequestsPerSecond: -1 }, { lightRequestBurst: 0 }]) {
      expect(() => new InboundHandler(components, { protocol: PROTOCOL, ...init }, echo), JSON.stringify(init)).to.throw().with.property('name', 'InvalidParametersError')
    }
  })
})
