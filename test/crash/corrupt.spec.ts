/**
 * A damaged or foreign entry among the saved republish keys (a truncated
 * time, a name that is not base32, base32 that is not a multihash, a key one
 * level too deep) is dropped with a log at start: the start does not throw,
 * and the sweep still republishes every readable key. Read as it was, the
 * truncated time threw a RangeError out of `start` (so out of libp2p's
 * start), and a bad name made every sweep it was in fail as a whole.
 */
import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import all from 'it-all'
import { base32 } from 'multiformats/bases/base32'
import { sha256 } from 'multiformats/hashes/sha2'
import { SeededRandom } from '../../src/core/env.ts'
import { Republisher } from '../../src/libp2p/republisher.ts'
import { ProviderStore } from '../../src/records/provider-store.ts'
import { ValueStore } from '../../src/records/value-store.ts'
import type { Timers } from '../../src/libp2p/republisher.ts'

const NOW = 1_000_000_000_000

function time (ms: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setFloat64(0, ms)
  return out
}

describe('crash/corrupt: unreadable republish entries are dropped, not fatal', () => {
  it('start succeeds, the unreadable entries are deleted and the sweep republishes the readable keys', async () => {
    const datastore = new MemoryDatastore()
    const good = await Promise.all(['a', 'b'].map(async s => base32.encode((await sha256.digest(new TextEncoder().encode(s))).bytes)))
    for (const name of good) {
      await datastore.put(new Key(`/dht/provided/${name}`), time(1))
    }
    const bad = [
      [`/dht/provided/${base32.encode((await sha256.digest(new TextEncoder().encode('c'))).bytes)}`, new Uint8Array(3)],
      ['/dht/provided/not-base32!', time(1)],
      [`/dht/provided/${base32.encode(new Uint8Array([1, 2, 3]))}`, time(1)],
      [`/dht/provided/x/${good[0]}`, time(1)],
      [`/dht/provided/${base32.encode((await sha256.digest(new TextEncoder().encode('d'))).bytes)}`, time(NaN)]
    ] as const
    for (const [key, value] of bad) {
      await datastore.put(new Key(key), value)
    }
    // one-shot timers that fire only when the test says so
    const armed: Array<() => void> = []
    const timers: Timers = {
      now: () => NOW,
      setTimeout: fn => { armed.push(fn); return armed.length },
      clearTimeout: () => {},
      setInterval: () => 0,
      clearInterval: () => {}
    }
    const swept: string[][] = []
    const republisher = new Republisher({
      datastore,
      providers: new ProviderStore(datastore),
      values: new ValueStore(datastore),
      random: new SeededRandom(1),
      log: defaultLogger().forComponent('test'),
      timers,
      reprovide: async () => { throw new Error('a sweep is expected') },
      reprovideMany: async keys => {
        swept.push(keys.map(k => base32.encode(k)))
        return keys
      }
    }, { schedule: { republishInterval: 1000, jitter: 0 } })

    await republisher.start()
    expect(republisher.size).to.equal(2)
    const left = (await all(datastore.queryKeys({ prefix: '/dht/provided/' }))).map(k => k.toString()).sort()
    expect(left).to.deep.equal(good.map(n => `/dht/provided/${n}`).sort())

    armed.at(-1)?.()
    await republisher.stop()
    expect(swept).to.have.length(1)
    expect([...swept[0]].sort()).to.deep.equal([...good].sort())
    // and the sweep's time is what the next start reads
    const saved = await datastore.get(new Key(`/dht/provided/${good[0]}`))
    expect(new DataView(saved.buffer, saved.byteOffset, 8).getFloat64(0)).to.equal(NOW)
  })
})
