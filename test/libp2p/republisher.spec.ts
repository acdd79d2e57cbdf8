/**
 * The republisher on a fake clock: a sweep refreshes every provided key
 * before its record expires, keys added while a sweep runs are not lost, the
 * schedule resumes from the datastore after a restart, and unreadable saved
 * entries are dropped rather than fatal.
 */
import { defaultLogger } from '@libp2p/logger'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import all from 'it-all'
import { base32 } from 'multiformats/bases/base32'
import { SeededRandom } from '../../src/core/env.ts'
import { ScheduleFullError } from '../../src/core/maintenance/schedule.ts'
import { Republisher } from '../../src/libp2p/republisher.ts'
import { ProviderStore } from '../../src/records/provider-store.ts'
import { ValueStore } from '../../src/records/value-store.ts'
import type { RepublisherInit, Timers } from '../../src/libp2p/republisher.ts'

const HOUR = 3_600_000
const VALIDITY = 48 * HOUR

/** A clock that moves only when told, firing due timers in order */
class FakeTimers implements Timers {
  private t = 0
  private nextId = 1
  private readonly pending = new Map<number, { at: number, fn(): void, every?: number }>()

  now (): number { return this.t }
  setTimeout (fn: () => void, ms: number): unknown { return this.add(fn, ms) }
  clearTimeout (handle: unknown): void { this.pending.delete(handle as number) }
  setInterval (fn: () => void, ms: number): unknown { return this.add(fn, ms, ms) }
  clearInterval (handle: unknown): void { this.pending.delete(handle as number) }

  /** Moves the clock to `to`, firing every timer due on the way and letting its work finish */
  async advance (to: number): Promise<void> {
    for (;;) {
      let next: [number, { at: number, fn(): void, every?: number }] | undefined
      for (const entry of this.pending) {
        if (entry[1].at <= to && (next == null || entry[1].at < next[1].at)) {
          next = entry
        }
      }
      if (next == null) {
        break
      }
      const [id, timer] = next
      this.t = Math.max(this.t, timer.at)
      if (timer.every != null) {
        timer.at += timer.every
      } else {
        this.pending.delete(id)
      }
      timer.fn()
      await flush()
    }
    this.t = to
  }

  private add (fn: () => void, ms: number, every?: number): number {
    const id = this.nextId++
    this.pending.set(id, { at: this.t + Math.max(0, ms), fn, every })
    return id
  }
}

async function flush (): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await new Promise(resolve => setImmediate(resolve))
  }
}

function make (datastore: MemoryDatastore, timers: FakeTimers, announced: Map<string, number[]>, during?: () => Promise<void>, sweeps: number[] = [], init: RepublisherInit = {}): Republisher {
  return new Republisher({
    datastore,
    providers: new ProviderStore(datastore),
    values: new ValueStore(datastore),
    random: new SeededRandom(1),
    log: defaultLogger().forComponent('test'),
    timers,
    reprovide: async () => { throw new Error('a sweep is expected, not one key at a time') },
    reprovideMany: async keys => {
      sweeps.push(keys.length)
      await during?.()
      for (const key of keys) {
        const name = base32.encode(key)
        announced.set(name, [...(announced.get(name) ?? []), timers.now()])
      }
      return keys
    }
  }, init)
}

const key = (i: number): Uint8Array => new Uint8Array([0x12, 0x20, ...new Uint8Array(32).fill(i)])

describe('libp2p/republisher on a fake clock', () => {
  it('refreshes every key in sweeps, each well before its record would expire', async () => {
    const timers = new FakeTimers()
    const announced = new Map<string, number[]>()
    const sweeps: number[] = []
    const r = make(new MemoryDatastore(), timers, announced, undefined, sweeps)
    await r.start()
    for (let i = 0; i < 200; i++) {
      await r.add(key(i))
      await timers.advance(timers.now() + 60_000) // provided over 200 minutes
    }
    await timers.advance(96 * HOUR)
    await r.stop()
    expect(announced.size).to.equal(200)
    // keys provided within a few hours of each other go out together
    const republishes = sweeps.reduce((a, b) => a + b, 0)
    expect(sweeps.length).to.be.below(republishes / 10)
    for (let i = 0; i < 200; i++) {
      const times = announced.get(base32.encode(key(i))) ?? []
      const providedAt = i * 60_000
      expect(times.length, `key ${i}`).to.be.at.least(3)
      let last = providedAt
      for (const t of times) {
        expect(t - last, `key ${i}`).to.be.below(VALIDITY)
        last = t
      }
      expect(96 * HOUR - last).to.be.below(VALIDITY)
    }
  })

  it('addMany remembers and schedules many keys in one batch, and at maxEntries keeps those before the first key without room', async () => {
    const timers = new FakeTimers()
    const datastore = new MemoryDatastore()
    const r = make(datastore, timers, new Map(), undefined, [], { schedule: { maxEntries: 3 } })
    await r.start()
    await r.add(key(0))
    // key 0 is held already and key 1 comes twice: keys 1 and 2 fill the schedule, key 3 has no room
    await expect(r.addMany([key(0), key(1), key(1), key(2), key(3), key(4)])).to.eventually.be.rejectedWith(ScheduleFullError)
    expect(r.size).to.equal(3)
    const saved = (await all(datastore.queryKeys({ prefix: '/dht/provided/' }))).map(k => k.baseNamespace()).sort()
    expect(saved).to.deep.equal([0, 1, 2].map(i => base32.encode(key(i))).sort())
    await r.stop()
    // a restart resumes exactly those
    const again = make(datastore, timers, new Map(), undefined, [], { schedule: { maxEntries: 3 } })
    await again.start()
    expect(again.size).to.equal(3)
    await again.stop()
  })

  it('drops unreadable saved entries at start with a log, and the sweep still republishes every readable key', async () => {
    // read as they were, the truncated time threw a RangeError out of start (so
    // out of libp2p's start), and a name that is not a multihash failed every sweep it was in
    const time = (ms: number): Uint8Array => {
      const out = new Uint8Array(8)
      new DataView(out.buffer).setFloat64(0, ms)
      return out
    }
    const datastore = new MemoryDatastore()
    const good = [key(1), key(2)].map(k => base32.encode(k))
    for (const name of good) {
      await datastore.put(new Key(`/dht/provided/${name}`), time(0))
    }
    for (const [bad, value] of [
      [base32.encode(key(3)), new Uint8Array(3)],
      [base32.encode(key(4)), time(NaN)],
      ['not-base32!', time(0)],
      [base32.encode(new Uint8Array([1, 2, 3])), time(0)],
      [`x/${good[0]}`, time(0)]
    ] as const) {
      await datastore.put(new Key(`/dht/provided/${bad}`), value)
    }
    const timers = new FakeTimers()
    const announced = new Map<string, number[]>()
    const r = make(datastore, timers, announced)
    await r.start()
    expect(r.size).to.equal(2)
    const left = (await all(datastore.queryKeys({ prefix: '/dht/provided/' }))).map(k => k.toString()).sort()
    expect(left).to.deep.equal(good.map(n => `/dht/provided/${n}`).sort())
    await timers.advance(30 * HOUR)
    await r.stop()
    expect([...announced.keys()].sort()).to.deep.equal([...good].sort())
  })

  it('keeps keys added while a sweep runs, and resumes the schedule after a restart', async () => {
    const timers = new FakeTimers()
    const datastore = new MemoryDatastore()
    const announced = new Map<string, number[]>()
    let r: Republisher | undefined
    let added = false
    r = make(datastore, timers, announced, async () => {
      if (!added) {
        added = true
        await r?.add(key(99)) // arrives in the middle of the first sweep
      }
    })
    await r.start()
    await r.add(key(1))
    await timers.advance(30 * HOUR)
    expect(announced.has(base32.encode(key(1)))).to.equal(true)
    expect(r.size).to.equal(2)
    await r.stop()

    // a new republisher over the same datastore knows both keys and keeps them fresh
    const again = new Map<string, number[]>()
    r = make(datastore, timers, again)
    await r.start()
    expect(r.size).to.equal(2)
    await timers.advance(80 * HOUR)
    await r.stop()
    expect(again.get(base32.encode(key(99)))?.length).to.be.at.least(1)
    expect(again.get(base32.encode(key(1)))?.length).to.be.at.least(1)
  })
})
