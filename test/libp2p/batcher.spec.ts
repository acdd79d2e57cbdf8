import { expect } from 'aegir/chai'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import { PutFailedError } from '../../src/index.ts'
import { ProvideBatcher } from '../../src/libp2p/batcher.ts'
import { ServiceStoppedError } from '../../src/libp2p/errors.ts'
import type { BulkProgress } from '../../src/index.ts'

async function cids (prefix: string, n: number): Promise<CID[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`${prefix}-${i}`)))))
}

const b64 = (c: CID): string => uint8ArrayToString(c.multihash.bytes, 'base64')

/** A fake bulk path: records each batch, delivers every key except those in `refuse` */
function fake (refuse = new Set<string>(), gate?: Promise<void>): { batches: string[][], singles: string[], init: ConstructorParameters<typeof ProvideBatcher>[0] } {
  const batches: string[][] = []
  const singles: string[] = []
  return {
    batches,
    singles,
    init: {
      provideMany: async (list, onDelivered) => {
        batches.push(list.map(b64))
        await gate
        for (const c of list) {
          if (!refuse.has(b64(c))) {
            onDelivered(c.multihash.bytes)
          }
        }
        const progress: BulkProgress = { keys: list.length, keysDone: list.length, provided: list.length - refuse.size, lookups: 1, messages: 0, peersReached: 0, failures: 0 }
        return progress
      },
      provideOne: async cid => { singles.push(b64(cid)) }
    }
  }
}

describe('libp2p/batcher: transparent batching of single provides', () => {
  it('sends calls arriving together as one batch, and resolves each when its key was delivered', async () => {
    const f = fake()
    const batcher = new ProvideBatcher({ ...f.init, window: 20 })
    const list = await cids('a', 50)
    await Promise.all(list.map(async c => batcher.provide(c)))
    expect(f.batches).to.have.length(1)
    expect(f.batches[0]).to.have.members(list.map(b64))
    expect(batcher.stats).to.include({ batches: 1, keys: 50, lookups: 1, overflow: 0 })
  })

  it('flushes at maxKeys, runs one batch at a time, and sends the same key once per batch', async () => {
    let open: () => void = () => {}
    const gate = new Promise<void>(resolve => { open = resolve })
    const f = fake(new Set(), gate)
    const batcher = new ProvideBatcher({ ...f.init, window: 200, maxKeys: 10 })
    const list = await cids('b', 25)
    const calls = [...list, ...list.slice(0, 5)].map(async c => batcher.provide(c))
    // the first 10 flushed at once without waiting for the window; the rest wait for that batch
    await new Promise(resolve => setTimeout(resolve, 10))
    expect(f.batches).to.have.length(1)
    expect(f.batches[0]).to.have.length(10)
    open()
    await Promise.all(calls)
    expect(f.batches.map(b => b.length)).to.deep.equal([10, 10, 5])
    expect(new Set(f.batches.flat()).size).to.equal(25)
  })

  it('rejects the calls whose key no peer took with PutFailedError, the others resolve', async () => {
    const list = await cids('c', 4)
    const f = fake(new Set([b64(list[2])]))
    const batcher = new ProvideBatcher({ ...f.init, window: 5 })
    const results = await Promise.allSettled(list.map(async c => batcher.provide(c)))
    expect(results.map(r => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
    expect((results[2] as PromiseRejectedResult).reason).to.be.instanceOf(PutFailedError)
  })

  it('an aborted call rejects with its reason and its key is not sent when nobody else waits for it', async () => {
    const f = fake()
    const batcher = new ProvideBatcher({ ...f.init, window: 30 })
    const [kept, dropped] = await cids('d', 2)
    const controller = new AbortController()
    const a = batcher.provide(kept)
    const b = batcher.provide(dropped, { signal: controller.signal })
    controller.abort(new Error('changed my mind'))
    await expect(b).to.eventually.be.rejectedWith('changed my mind')
    await a
    expect(f.batches).to.deep.equal([[b64(kept)]])
    await expect(batcher.provide(kept, { signal: AbortSignal.abort() })).to.eventually.be.rejected()
  })

  it('beyond maxPending a call is provided on its own: nothing refused, nothing lost', async () => {
    const f = fake()
    const batcher = new ProvideBatcher({ ...f.init, window: 20, maxPending: 5, maxKeys: 100 })
    const list = await cids('e', 8)
    await Promise.all(list.map(async c => batcher.provide(c)))
    expect(f.singles).to.have.length(3)
    expect([...f.batches.flat(), ...f.singles]).to.have.members(list.map(b64))
    expect(batcher.stats.overflow).to.equal(3)
  })

  it('stop rejects waiting calls with ServiceStoppedError and refuses new ones until started again', async () => {
    const f = fake()
    const batcher = new ProvideBatcher({ ...f.init, window: 100 })
    const [c] = await cids('f', 1)
    const waiting = batcher.provide(c)
    batcher.stop()
    await expect(waiting).to.eventually.be.rejected().with.property('name', 'ServiceStoppedError')
    await expect(batcher.provide(c)).to.eventually.be.rejectedWith(ServiceStoppedError)
    expect(f.batches).to.have.length(0)
    batcher.start()
    await batcher.provide(c)
    expect(f.batches).to.have.length(1)
  })

  it('refuses a bad configuration with a RangeError', () => {
    const f = fake()
    expect(() => new ProvideBatcher({ ...f.init, window: -1 })).to.throw(RangeError)
    expect(() => new ProvideBatcher({ ...f.init, maxKeys: 0 })).to.throw(RangeError)
    expect(() => new ProvideBatcher({ ...f.init, maxPending: 1.5 })).to.throw(RangeError)
  })
})
