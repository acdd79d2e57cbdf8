/**
 * The framing layer under fuzzing: byte streams of length-prefixed frames
 * (valid messages, garbage bodies, a prefix over `maxMessageSize`, a
 * truncated last frame) concatenated and cut into random chunks, sent on
 * one inbound stream of a real node. The handler must answer the leading
 * valid frames in order, end the stream (close or reset) rather than hang
 * or crash, and keep serving new streams.
 */
import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { MessageType } from '../../src/generated/dht.ts'
import { closed, createNode, echo, introduce, lpStream, Message, PROTOCOL, stopAll } from '../libp2p/fixtures/nodes.ts'
import { varint } from './inputs.ts'
import type { TestServices } from '../libp2p/fixtures/nodes.ts'
import type { Libp2p } from '@libp2p/interface'

type Frame = { kind: 'valid' } | { kind: 'garbage', body: Uint8Array } | { kind: 'oversize' } | { kind: 'truncated', length: number, have: number }

describe('fuzz: inbound framing', function () {
  this.timeout(120_000)
  let server: Libp2p<TestServices>
  let client: Libp2p<TestServices>

  before(async () => {
    server = await createNode({ dispatch: echo, handler: { maxMessageSize: 1024, idleTimeout: 2000 } })
    client = await createNode({})
    await introduce(client, server)
  })

  after(async () => {
    await stopAll()
  })

  it('answers leading valid frames in order and ends the stream on anything else', async () => {
    const frame: fc.Arbitrary<Frame> = fc.oneof(
      { weight: 6, arbitrary: fc.constant({ kind: 'valid' as const }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map(body => ({ kind: 'garbage' as const, body })) },
      { weight: 1, arbitrary: fc.constant({ kind: 'oversize' as const }) },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 2, max: 1024 }), fc.nat()).map(([length, have]) => ({ kind: 'truncated' as const, length, have: have % length })) }
    )
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
    // eslint-disable-next-line no-console
    console.log(`      framing seed ${seed}`)
    await fc.assert(fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }), async (frames, cuts) => {
      const bytes: number[] = []
      let leadingValid = 0
      let broken = false
      for (const [i, f] of frames.entries()) {
        if (f.kind === 'valid') {
          const body = Message.encode({ type: MessageType.PING, key: new TextEncoder().encode(`m${i}`) })
          bytes.push(...varint(body.byteLength), ...body)
          if (!broken) {
            leadingValid++
          }
        } else if (f.kind === 'garbage') {
          bytes.push(...varint(f.body.byteLength), ...f.body)
          broken = true
        } else if (f.kind === 'oversize') {
          bytes.push(...varint(1025), 0)
          broken = true
        } else {
          bytes.push(...varint(f.length), ...new Array(f.have).fill(0x08))
          broken = true
          break // nothing after a truncated frame is a frame of its own
        }
      }
      const stream = await client.dialProtocol(server.peerId, PROTOCOL)
      const lp = lpStream(stream)
      const ended = closed(stream)
      // the bytes in random chunks
      for (let at = 0, c = 0; at < bytes.length; c++) {
        const n = cuts[c % cuts.length]
        stream.send(Uint8Array.from(bytes.slice(at, at + n)))
        at += n
      }
      await stream.close().catch(() => {})
      const answers: Message[] = []
      try {
        while (true) {
          answers.push(Message.decode(await lp.read({ signal: AbortSignal.timeout(5000) })))
        }
      } catch {}
      await ended
      // garbage may happen to decode as a message, so there may be more answers than leading valid frames
      expect(answers.length).to.be.at.least(leadingValid)
      for (let i = 0; i < leadingValid; i++) {
        expect(answers[i].type).to.equal(MessageType.PING)
      }
      expect(stream.status).to.be.oneOf(['closed', 'reset', 'aborted'])
    }), { seed, numRuns: 150 })

    // and still serves
    const stream = await client.dialProtocol(server.peerId, PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(Message.encode({ type: MessageType.PING, key: new TextEncoder().encode('ok') }))
    expect(new TextDecoder().decode(Message.decode(await lp.read()).key)).to.equal('ok')
  })
})
