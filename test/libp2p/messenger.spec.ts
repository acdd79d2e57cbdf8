import { createServer } from 'node:net'
import { defaultLogger } from '@libp2p/logger'
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { MessageType } from '../../src/generated/dht.ts'
import { MessageTooLargeError, RequestFailedError } from '../../src/libp2p/errors.ts'
import { Messenger } from '../../src/libp2p/messenger.ts'
import { createNode, echo, introduce, lpStream, Message, protocolStreams, PROTOCOL, stopAll, waitFor } from './fixtures/nodes.ts'
import type { TestServices } from './fixtures/nodes.ts'
import type { FailureReason } from '../../src/libp2p/errors.ts'
import type { Dispatch } from '../../src/libp2p/handler.ts'
import type { Outcome } from '../../src/libp2p/messenger.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Server, Socket } from 'node:net'

const key = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s)

async function expectFailure (promise: Promise<unknown>, reason: FailureReason): Promise<RequestFailedError> {
  const err = await promise.then(() => { throw new Error(`expected a '${reason}' failure`) }, (err: unknown) => err)
  expect(err).to.be.an.instanceOf(RequestFailedError)
  expect(err).to.have.property('reason', reason)
  expect(err).to.have.property('code', 'ERR_REQUEST_FAILED')
  return err as RequestFailedError
}

function requestFailures (outcomes: Outcome[]): FailureReason[] {
  return outcomes.flatMap(o => o.type === 'request' && !o.ok ? [o.reason] : [])
}

function dialFailures (outcomes: Outcome[]): FailureReason[] {
  return outcomes.flatMap(o => o.type === 'dial' && !o.ok ? [o.reason] : [])
}

/** Ids of inbound protocol streams the server has seen while dispatching */
function streamRecorder (ids: Set<string>, inner: Dispatch = echo): Dispatch {
  return async (from, message, connection: Connection | undefined, options) => {
    connection?.streams.filter(s => s.protocol === PROTOCOL && s.direction === 'inbound').forEach(s => ids.add(s.id))
    return inner(from, message, connection, options)
  }
}

/** A dispatch that holds every request until `release()`; counts those in progress */
function gated (): { dispatch: Dispatch, release(): void, inProgress(): number, max(): number } {
  const gate = Promise.withResolvers<void>()
  let current = 0
  let max = 0
  return {
    dispatch: async (from, message) => {
      current++
      max = Math.max(max, current)
      await gate.promise
      current--
      return { type: message.type, key: message.key }
    },
    release: () => { gate.resolve() },
    inProgress: () => current,
    max: () => max
  }
}

/** A dispatch that never answers (until its signal fires) */
const silent: Dispatch = async (from, message, connection, { signal }) => {
  await new Promise((resolve) => { signal.addEventListener('abort', resolve) })
  return undefined
}

describe('messenger', () => {
  let outcomes: Outcome[]

  beforeEach(() => {
    outcomes = []
  })

  afterEach(async () => {
    await stopAll()
  })

  async function pair (dispatch: Dispatch = echo, init = {}): Promise<[Libp2p<TestServices>, Libp2p<TestServices>]> {
    const server = await createNode({ dispatch })
    const client = await createNode({ messenger: init, outcomes })
    await introduce(client, server)
    return [client, server]
  }

  it('rejects invalid config at construction', () => {
    const components = { connectionManager: {} as any, logger: defaultLogger() }
    expect(() => new Messenger(components, { protocol: PROTOCOL, maxStreamsPerPeer: 0 })).to.throw().with.property('name', 'InvalidParametersError')
    expect(() => new Messenger(components, { protocol: PROTOCOL, requestTimeout: -1 })).to.throw().with.property('name', 'InvalidParametersError')
    expect(() => new Messenger(components, { protocol: '' })).to.throw().with.property('name', 'InvalidParametersError')
    expect(() => new Messenger(components, { protocol: PROTOCOL, maxQueuedPerPeer: 0 })).to.not.throw()
  })

  it('answers PING and FIND_NODE through the inbound handler', async () => {
    const [client, server] = await pair(async (from, message) => message.type === MessageType.FIND_NODE
      ? { type: message.type, key: message.key, closerPeers: [{ id: from.toMultihash().bytes, addrs: [] }] }
      : { type: message.type })

    const ping = await client.services.messenger.request(server.peerId, { type: MessageType.PING })
    expect(ping.type).to.equal(MessageType.PING)

    const found = await client.services.messenger.request(server.peerId, { type: MessageType.FIND_NODE, key: key('target') })
    expect(found.type).to.equal(MessageType.FIND_NODE)
    expect(found.key).to.equalBytes(key('target'))
    expect(found.closerPeers.map(p => p.id)).to.deep.equal([client.peerId.toMultihash().bytes])

    expect(outcomes.filter(o => o.type === 'dial' && o.ok)).to.have.lengthOf(1)
    expect(outcomes.filter(o => o.type === 'request' && o.ok)).to.have.lengthOf(2)
  })

  it('reuses one stream for sequential requests and calls onDial only when dialling', async () => {
    const ids = new Set<string>()
    const [client, server] = await pair(streamRecorder(ids))
    const calls = { dial: 0, send: 0 }
    const hooks = { onDial: () => { calls.dial++ }, onSend: () => { calls.send++ } }
    for (let i = 0; i < 5; i++) {
      const res = await client.services.messenger.request(server.peerId, { type: MessageType.GET_VALUE, key: key(`k${i}`) }, hooks)
      expect(res.key).to.equalBytes(key(`k${i}`))
    }
    expect(ids.size).to.equal(1)
    expect(calls).to.deep.equal({ dial: 1, send: 5 })
  })

  it('a request over its own connection dials one, and closes it afterwards when the peer\'s connection to us is open', async () => {
    const [client, server] = await pair()
    // alone, the dialled connection is the only one: it stays
    await client.services.messenger.request(server.peerId, { type: MessageType.PING }, { ownConnection: true })
    expect(client.getConnections(server.peerId).map(c => c.direction)).to.deep.equal(['outbound'])
    expect(client.services.messenger.closedDuplicates).to.equal(0)
    await client.hangUp(server.peerId)
    await waitFor(() => server.getConnections(client.peerId).length === 0, 3000, 'the server to see the hang-up')

    // the server has dialled the client: the client's verify dials its own, then closes it
    await introduce(server, client)
    await server.dial(client.peerId)
    const response = await client.services.messenger.request(server.peerId, { type: MessageType.PING }, { ownConnection: true })
    expect(response.type).to.equal(MessageType.PING)
    expect(outcomes.filter(o => o.type === 'dial' && o.ok)).to.have.lengthOf(2)
    await waitFor(() => client.getConnections(server.peerId).length === 1, 3000, 'one connection left')
    expect(client.getConnections(server.peerId).map(c => c.direction)).to.deep.equal(['inbound'])
    expect(client.services.messenger.closedDuplicates).to.equal(1)
    // and requests go on over the peer's connection
    expect((await client.services.messenger.request(server.peerId, { type: MessageType.GET_VALUE, key: key('after') })).key).to.equalBytes(key('after'))
    expect(outcomes.filter(o => o.type === 'dial' && o.ok)).to.have.lengthOf(2)
  })

  it('uses an existing connection without calling onDial or reporting a dial', async () => {
    const [client, server] = await pair()
    await client.dial(server.peerId)
    let dials = 0
    await client.services.messenger.request(server.peerId, { type: MessageType.PING }, { onDial: () => { dials++ } })
    expect(dials).to.equal(0)
    expect(outcomes.filter(o => o.type === 'dial')).to.be.empty()
  })

  it('runs at most maxStreamsPerPeer requests to a peer at once and queues the rest', async () => {
    const gate = gated()
    const ids = new Set<string>()
    const [client, server] = await pair(streamRecorder(ids, gate.dispatch), { maxStreamsPerPeer: 2 })
    const requests = Array.from({ length: 5 }, async (_, i) => client.services.messenger.request(server.peerId, { type: MessageType.PING, key: key(`${i}`) }))
    await waitFor(() => gate.inProgress() === 2, 3000, 'two requests in progress')
    // give a third request the chance to (wrongly) arrive
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(gate.inProgress()).to.equal(2)
    expect(protocolStreams(client, server.peerId, 'outbound')).to.have.lengthOf(2)
    gate.release()
    const responses = await Promise.all(requests)
    expect(responses.map(r => r.type)).to.deep.equal(Array(5).fill(MessageType.PING))
    expect(gate.max()).to.equal(2)
    expect(ids.size).to.equal(2)
  })

  it('serves queued application requests to a peer before queued upkeep (refresh, republish)', async () => {
    const gate = gated()
    const order: string[] = []
    const recording: Dispatch = async (from, message, connection, options) => {
      order.push(new TextDecoder().decode(message.key))
      return gate.dispatch(from, message, connection, options)
    }
    const [client, server] = await pair(recording, { maxStreamsPerPeer: 1 })
    const messenger = client.services.messenger
    const first = messenger.request(server.peerId, { type: MessageType.PING, key: key('first') })
    await waitFor(() => gate.inProgress() === 1, 3000, 'the first request in progress')
    const later = [
      messenger.request(server.peerId, { type: MessageType.PING, key: key('refresh') }, { purpose: 'refresh' }),
      messenger.request(server.peerId, { type: MessageType.PING, key: key('republish') }, { purpose: 'republish' }),
      messenger.request(server.peerId, { type: MessageType.PING, key: key('get') }, { purpose: 'get' }),
      messenger.request(server.peerId, { type: MessageType.PING, key: key('provide') }, { purpose: 'provide' })
    ]
    gate.release()
    await Promise.all([first, ...later])
    expect(order).to.deep.equal(['first', 'get', 'provide', 'refresh', 'republish'])
  })

  it('rejects with overloaded beyond maxQueuedPerPeer', async () => {
    const gate = gated()
    const [client, server] = await pair(gate.dispatch, { maxStreamsPerPeer: 1, maxQueuedPerPeer: 1 })
    const first = client.services.messenger.request(server.peerId, { type: MessageType.PING })
    const second = client.services.messenger.request(server.peerId, { type: MessageType.PING })
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.PING }), 'overloaded')
    gate.release()
    await Promise.all([first, second])
    expect(requestFailures(outcomes)).to.deep.equal(['overloaded'])
  })

  it('evicts the least recently used idle pool beyond maxPeers, and rejects with overloaded when all are busy', async () => {
    const gate = gated()
    const a = await createNode({ dispatch: echo })
    const b = await createNode({ dispatch: gate.dispatch })
    const client = await createNode({ messenger: { maxPeers: 1 }, outcomes })
    await introduce(client, a)
    await introduce(client, b)

    await client.services.messenger.request(a.peerId, { type: MessageType.PING })
    expect(protocolStreams(a, client.peerId, 'inbound')).to.have.lengthOf(1)

    // b takes the only peer slot, so a's pooled stream is closed
    const pending = client.services.messenger.request(b.peerId, { type: MessageType.PING })
    await waitFor(() => protocolStreams(a, client.peerId).length === 0, 3000, 'a pooled stream closed')

    // b is busy: a cannot get a slot back
    await waitFor(() => gate.inProgress() === 1)
    await expectFailure(client.services.messenger.request(a.peerId, { type: MessageType.PING }), 'overloaded')
    gate.release()
    await pending
  })

  it('closes a pooled stream after idleStreamTimeout', async () => {
    const [client, server] = await pair(echo, { idleStreamTimeout: 200 })
    await client.services.messenger.request(server.peerId, { type: MessageType.PING })
    expect(protocolStreams(server, client.peerId, 'inbound')).to.have.lengthOf(1)
    // the server's own idle timeout is 10 s: only the client can close it this soon
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'idle stream closed')
    await waitFor(() => protocolStreams(client, server.peerId).length === 0, 3000, 'client side closed')
  })

  it('retries once on a fresh stream when a reused stream dies before responding', async () => {
    const server = await createNode({})
    let streams = 0
    // answers the first message on each stream, resets the stream on the second
    await server.handle(PROTOCOL, async (stream) => {
      streams++
      const lp = lpStream(stream)
      const request = Message.decode(await lp.read())
      await lp.write(Message.encode({ type: request.type, key: request.key }))
      await lp.read()
      stream.abort(new Error('server gave up on this stream'))
    })
    const client = await createNode({ messenger: {}, outcomes })
    await introduce(client, server)

    await client.services.messenger.request(server.peerId, { type: MessageType.PING, key: key('1') })
    const second = await client.services.messenger.request(server.peerId, { type: MessageType.PING, key: key('2') })
    expect(second.key).to.equalBytes(key('2'))
    expect(streams).to.equal(2)
    expect(requestFailures(outcomes)).to.be.empty()
  })

  for (const when of ['with the response', 'while the stream is idle']) {
    it(`aborts a stream that receives unsolicited data ${when}, and never reads it as a response`, async () => {
      const server = await createNode({})
      const serverStreams: Stream[] = []
      // answers the first message on each stream, then sends an extra message
      await server.handle(PROTOCOL, async (stream) => {
        serverStreams.push(stream)
        const lp = lpStream(stream)
        const request = Message.decode(await lp.read())
        const response = Message.encode({ type: request.type, key: request.key })
        const extra = Message.encode({ type: MessageType.PING, key: key('unsolicited') })
        if (when === 'with the response') {
          await lp.writeV([response, extra])
        } else {
          await lp.write(response)
          await new Promise(resolve => setTimeout(resolve, 100))
          await lp.write(extra)
        }
      })
      const seen: Outcome[] = []
      const client = await createNode({ messenger: {}, outcomes: seen })
      await introduce(client, server)

      const first = await client.services.messenger.request(server.peerId, { type: MessageType.PING, key: key('1') })
      expect(first.key).to.equalBytes(key('1'))
      // idleStreamTimeout is 4 s: only the guard can abort it this soon
      await waitFor(() => serverStreams[0]?.status === 'reset', 3000, 'stream aborted')
      const second = await client.services.messenger.request(server.peerId, { type: MessageType.PING, key: key('2') })
      expect(second.key).to.equalBytes(key('2'))
      expect(serverStreams).to.have.lengthOf(2)
      expect(requestFailures(seen)).to.be.empty()
    })
  }

  it('fails with timeout when the handler never answers, and aborts the stream', async () => {
    const [client, server] = await pair(silent, { requestTimeout: 200 })
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.PING }), 'timeout')
    expect(requestFailures(outcomes)).to.deep.equal(['timeout'])
    await waitFor(() => protocolStreams(client, server.peerId).length === 0, 3000, 'client stream gone')
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'server stream gone')
  })

  it('does not blame the peer when our own event loop was blocked past the timeout: the answer waiting unread is taken', async () => {
    const gate = gated()
    // real sockets: the answer then reaches the client only when its poll phase reads it
    const server = await createNode({ dispatch: gate.dispatch, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const client = await createNode({ messenger: { requestTimeout: 200 }, outcomes })
    await introduce(client, server)
    const request = client.services.messenger.request(server.peerId, { type: MessageType.PING })
    await waitFor(() => gate.inProgress() === 1, 3000, 'request reached the server')
    // from the check phase: the next loop iteration runs its timers before
    // its poll phase reads sockets. The server answers now, but nothing runs
    // until this block ends; by then the client's 200 ms timer is overdue
    // and fires before the answer is read
    await new Promise(resolve => setImmediate(resolve))
    gate.release()
    const until = Date.now() + 800
    while (Date.now() < until) {
      // blocking the event loop on purpose
    }
    const response = await request
    expect(response.type).to.equal(MessageType.PING)
    expect(requestFailures(outcomes)).to.be.empty()
    expect(client.services.messenger.stalledTimeouts).to.be.at.least(1)
  })

  it('still times out a silent peer after our event loop was blocked, within the bounded extensions', async () => {
    const [client, server] = await pair(silent, { requestTimeout: 200 })
    const started = Date.now()
    const request = client.services.messenger.request(server.peerId, { type: MessageType.PING })
    await new Promise(resolve => setTimeout(resolve, 20))
    await new Promise(resolve => setImmediate(resolve))
    const until = Date.now() + 800
    while (Date.now() < until) {
      // blocking the event loop on purpose
    }
    await expectFailure(request, 'timeout')
    // one extension of at most 200 ms: well under the 4 windows allowed
    expect(Date.now() - started).to.be.below(800 + 4 * 200 + 500)
    expect(requestFailures(outcomes)).to.deep.equal(['timeout'])
  })

  it('honours a per-request timeout', async () => {
    const [client, server] = await pair(silent)
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.PING }, { timeout: 200 }), 'timeout')
  })

  it('fails with dial-refused for a peer without addresses or not listening', async () => {
    const client = await createNode({ messenger: {}, outcomes })
    const nowhere = await createNode({})
    await expectFailure(client.services.messenger.request(nowhere.peerId, { type: MessageType.PING }), 'dial-refused')

    const gone = await createNode({})
    await introduce(client, gone)
    await gone.stop()
    await expectFailure(client.services.messenger.request(gone.peerId, { type: MessageType.PING }), 'dial-refused')

    expect(dialFailures(outcomes)).to.deep.equal(['dial-refused', 'dial-refused'])
    expect(requestFailures(outcomes)).to.deep.equal(['dial-refused', 'dial-refused'])
  })

  describe('with a TCP server that accepts and never answers', () => {
    let server: Server
    const sockets: Socket[] = []

    beforeEach(async () => {
      server = createServer(socket => { sockets.push(socket) })
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    })

    afterEach(async () => {
      sockets.splice(0).forEach(s => s.destroy())
      await new Promise(resolve => server.close(resolve))
    })

    it('fails with dial-timeout', async () => {
      const client = await createNode({ messenger: { dialTimeout: 300 }, outcomes })
      const target = await createNode({})
      const address = server.address()
      if (address == null || typeof address === 'string') {
        throw new Error('no TCP address')
      }
      await client.peerStore.merge(target.peerId, { multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${address.port}`)] })
      await expectFailure(client.services.messenger.request(target.peerId, { type: MessageType.PING }), 'dial-timeout')
      expect(sockets).to.not.be.empty()
      expect(dialFailures(outcomes)).to.deep.equal(['dial-timeout'])
      expect(requestFailures(outcomes)).to.deep.equal(['dial-timeout'])
    })
  })

  it('fails with protocol-unsupported when the peer does not speak the protocol', async () => {
    const server = await createNode({})
    const client = await createNode({ messenger: {}, outcomes })
    await introduce(client, server)
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.PING }), 'protocol-unsupported')
    expect(requestFailures(outcomes)).to.deep.equal(['protocol-unsupported'])
  })

  it('fails with bad-response for a response of the wrong type, and aborts the stream', async () => {
    const [client, server] = await pair(async () => ({ type: MessageType.FIND_NODE }))
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.PING }), 'bad-response')
    expect(requestFailures(outcomes)).to.deep.equal(['bad-response'])
    await waitFor(() => protocolStreams(server, client.peerId).length === 0, 3000, 'server stream gone')
  })

  it('fails with bad-response for an oversize response', async () => {
    const [client, server] = await pair(async (from, message) => ({ type: message.type, record: { value: new Uint8Array(4096) } }), { maxMessageSize: 1024 })
    await expectFailure(client.services.messenger.request(server.peerId, { type: MessageType.GET_VALUE, key: key('k') }), 'bad-response')
  })

  it('fails with aborted when the caller aborts, in flight or queued', async () => {
    const [client, server] = await pair(silent, { maxStreamsPerPeer: 1 })
    const controller = new AbortController()
    const inFlight = client.services.messenger.request(server.peerId, { type: MessageType.PING }, { signal: controller.signal })
    const queued = client.services.messenger.request(server.peerId, { type: MessageType.PING }, { signal: controller.signal })
    await waitFor(() => protocolStreams(server, client.peerId).length === 1)
    controller.abort()
    await expectFailure(inFlight, 'aborted')
    await expectFailure(queued, 'aborted')
    expect(requestFailures(outcomes)).to.deep.equal(['aborted', 'aborted'])
    await waitFor(() => protocolStreams(client, server.peerId).length === 0, 3000, 'client stream gone')
  })

  it('send() writes without waiting for a response and reuses the stream', async () => {
    const received: Message[] = []
    const ids = new Set<string>()
    const [client, server] = await pair(streamRecorder(ids, async (from, message) => { received.push(message); return undefined }))
    await client.services.messenger.send(server.peerId, { type: MessageType.ADD_PROVIDER, key: key('a') })
    await client.services.messenger.send(server.peerId, { type: MessageType.ADD_PROVIDER, key: key('b') })
    await waitFor(() => received.length === 2)
    expect(received.map(m => m.key)).to.deep.equal([key('a'), key('b')])
    expect(ids.size).to.equal(1)
    expect(outcomes.filter(o => o.type === 'request' && o.ok)).to.have.lengthOf(2)
  })

  it('send() reports peer failures through onOutcome without rejecting, and rejects on caller abort', async () => {
    const client = await createNode({ messenger: {}, outcomes })
    const nowhere = await createNode({})
    await client.services.messenger.send(nowhere.peerId, { type: MessageType.ADD_PROVIDER })
    expect(requestFailures(outcomes)).to.deep.equal(['dial-refused'])
    await expectFailure(client.services.messenger.send(nowhere.peerId, { type: MessageType.ADD_PROVIDER }, { signal: AbortSignal.abort() }), 'aborted')
  })

  it('rejects an oversize outbound message before sending anything', async () => {
    const [client, server] = await pair(echo, { maxMessageSize: 1024 })
    const err = await client.services.messenger.request(server.peerId, { type: MessageType.PUT_VALUE, key: new Uint8Array(2048) }).catch((err: unknown) => err)
    expect(err).to.be.an.instanceOf(MessageTooLargeError)
    expect(outcomes).to.be.empty()
  })

  it('stop() rejects in-flight requests with aborted and leaves no streams open', async () => {
    const gate = gated()
    const [client, busy] = await pair(gate.dispatch)
    const idle = await createNode({ dispatch: echo })
    await introduce(client, idle)
    await client.services.messenger.request(idle.peerId, { type: MessageType.PING })
    expect(protocolStreams(idle, client.peerId)).to.have.lengthOf(1)

    const inFlight = client.services.messenger.request(busy.peerId, { type: MessageType.PING })
    await waitFor(() => gate.inProgress() === 1)
    await client.services.messenger.stop()
    await expectFailure(inFlight, 'aborted')
    await expectFailure(client.services.messenger.request(idle.peerId, { type: MessageType.PING }), 'aborted')
    gate.release()

    for (const node of [idle, busy]) {
      await waitFor(() => protocolStreams(node, client.peerId).length === 0, 3000, 'remote streams gone')
      await waitFor(() => protocolStreams(client, node.peerId).length === 0, 3000, 'local streams gone')
    }
  })
})
