import { expect } from 'aegir/chai'
import { TypedEventEmitter } from 'main-event'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { writeFramed } from '../../src/libp2p/handler.ts'
import type { Stream } from '@libp2p/interface'

/** A stream that records what it is sent; `full` makes send report back-pressure */
function recordingStream (full = false): { stream: Stream, sent: Array<Uint8Array | Uint8ArrayList>, drain(): void, close(): void } {
  const events = new TypedEventEmitter<Record<string, Event>>()
  const sent: Array<Uint8Array | Uint8ArrayList> = []
  const stream = Object.assign(events, {
    send: (data: Uint8Array | Uint8ArrayList): boolean => { sent.push(data); return !full }
  }) as unknown as Stream
  return {
    stream,
    sent,
    drain: () => { events.dispatchEvent(new Event('drain')) },
    close: () => { events.dispatchEvent(new Event('close')) }
  }
}

/** Splits length-prefixed bytes back into frames */
function unframe (bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = 0; at < bytes.byteLength;) {
    const length = varint.decode(bytes, at)
    at += varint.encodingLength(length)
    out.push(bytes.subarray(at, at + length))
    at += length
  }
  return out
}

describe('writeFramed', () => {
  it('hands the stream a whole batch as one contiguous buffer, each frame behind its length prefix', async () => {
    // 128 frames of assorted sizes, some needing a two-byte prefix
    const frames = Array.from({ length: 128 }, (_, i) => new Uint8Array(i % 3 === 0 ? 200 : 90).fill(i))
    const { stream, sent } = recordingStream()
    await writeFramed(stream, frames)
    // one send, of a plain Uint8Array: a list of pieces would reach the socket as one write per piece
    expect(sent).to.have.lengthOf(1)
    expect(sent[0]).to.be.an.instanceOf(Uint8Array)
    const decoded = unframe(sent[0] as Uint8Array)
    expect(decoded).to.have.lengthOf(128)
    decoded.forEach((f, i) => { expect(f).to.deep.equal(frames[i]) })
  })

  it('waits for the stream to drain when it is full, and fails if it closes instead', async () => {
    const full = recordingStream(true)
    let done = false
    const write = writeFramed(full.stream, [new Uint8Array([1, 2, 3])]).then(() => { done = true })
    await new Promise(resolve => setTimeout(resolve, 10))
    expect(done).to.equal(false)
    full.drain()
    await write
    expect(done).to.equal(true)

    const closing = recordingStream(true)
    const failed = writeFramed(closing.stream, [new Uint8Array([1])])
    closing.close()
    await expect(failed).to.eventually.be.rejected()
  })

  it('gives up when its signal aborts while waiting', async () => {
    const { stream } = recordingStream(true)
    const controller = new AbortController()
    const write = writeFramed(stream, [new Uint8Array([1])], { signal: controller.signal })
    controller.abort()
    await expect(write).to.eventually.be.rejected()
  })
})
