import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import all from 'it-all'
import { base32 } from 'multiformats/bases/base32'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { ProviderStore, ProviderStoreFullError, defaultProviderStoreConfig } from '../../src/records/provider-store.ts'
import { InvalidRecordError } from '../../src/records/validation.ts'
import { HOUR, mh, peers } from './fixtures.ts'
import type { PeerId } from '@libp2p/interface'

const VALIDITY = 48 * HOUR

describe('records/provider-store', () => {
  let p: PeerId[]
  let ids: string[]
  let k1: Uint8Array
  let k2: Uint8Array
  let k3: Uint8Array

  before(async () => {
    p = await peers(6)
    ids = p.map(id => id.toString())
    k1 = await mh('one')
    k2 = await mh('two')
    k3 = await mh('three')
  })

  it('has documented defaults and rejects invalid config at construction', () => {
    expect(defaultProviderStoreConfig()).to.deep.equal({ provideValidity: VALIDITY, maxProvidersPerKey: 64, maxKeys: 100_000, maxKeySize: 80, prefix: '/dht/providers' })
    const ds = new MemoryDatastore()
    expect(() => new ProviderStore(ds, { maxProvidersPerKey: 0 })).to.throw(InvalidConfigError, /maxProvidersPerKey/)
    expect(() => new ProviderStore(ds, { provideValidity: -1 })).to.throw(InvalidConfigError, /provideValidity/)
    expect(() => new ProviderStore(ds, { prefix: '/a/' })).to.throw(InvalidConfigError, /prefix/)
  })

  it('returns providers most recently added first, as peer id strings', async () => {
    const store = new ProviderStore(new MemoryDatastore())
    await store.addProvider(k1, p[0], 1)
    await store.addProvider(k1, ids[1], 2)
    await store.addProvider(k1, p[2], 3)
    await store.addProvider(k2, p[0], 3)
    expect(await store.getProviders(k1, 10)).to.deep.equal([ids[2], ids[1], ids[0]])
    // a refresh moves a provider to the front
    await store.addProvider(k1, p[0], 4)
    expect(await store.getProviders(k1, 10)).to.deep.equal([ids[0], ids[2], ids[1]])
    expect(await store.getProviders(k3, 10)).to.deep.equal([])
    // what a read saw (even nothing) never hides a later add
    await store.addProvider(k3, p[1], 5)
    expect(await store.getProviders(k3, 10)).to.deep.equal([ids[1]])
    expect(await store.size()).to.deep.equal({ keys: 3, records: 5 })
  })

  it('lays records out as <prefix>/<base32 multihash>/<peer id>', async () => {
    const ds = new MemoryDatastore()
    const store = new ProviderStore(ds)
    await store.addProvider(k1, p[0], 1)
    const keys = await all(ds.queryKeys({}))
    expect(keys.map(k => k.toString())).to.deep.equal([`/dht/providers/${base32.encode(k1)}/${ids[0]}`])
  })

  it('expires a provider exactly provideValidity after it was added', async () => {
    const store = new ProviderStore(new MemoryDatastore())
    await store.addProvider(k1, p[0], 1000)
    expect(await store.getProviders(k1, 1000 + VALIDITY - 1)).to.deep.equal([ids[0]])
    expect(await store.getProviders(k1, 1000 + VALIDITY)).to.deep.equal([])
    // a refresh extends it
    await store.addProvider(k1, p[0], 2000)
    expect(await store.getProviders(k1, 1000 + VALIDITY)).to.deep.equal([ids[0]])
  })

  it('at maxProvidersPerKey evicts the provider added longest ago', async () => {
    const store = new ProviderStore(new MemoryDatastore(), { maxProvidersPerKey: 3 })
    await store.addProvider(k1, p[0], 1)
    await store.addProvider(k1, p[1], 2)
    await store.addProvider(k1, p[2], 3)
    await store.addProvider(k1, p[0], 4) // refresh at the bound: nothing evicted
    expect(await store.getProviders(k1, 5)).to.deep.equal([ids[0], ids[2], ids[1]])
    await store.addProvider(k1, p[3], 5)
    expect(await store.getProviders(k1, 6)).to.deep.equal([ids[3], ids[0], ids[2]])
    expect(await store.size()).to.deep.equal({ keys: 1, records: 3 })
  })

  it('addProviders writes many keys in one datastore batch, with the bounds of one add per key', async () => {
    const ds = new MemoryDatastore()
    // puts outside a batch's commit, and batches committed
    let puts = 0
    let batches = 0
    let committing = false
    const put = ds.put.bind(ds)
    ds.put = async (...args) => { puts += committing ? 0 : 1; return put(...args) }
    const batch = ds.batch.bind(ds)
    ds.batch = () => {
      const b = batch()
      const commit = b.commit.bind(b)
      b.commit = async (...args) => {
        batches++
        committing = true
        try { await commit(...args) } finally { committing = false }
      }
      return b
    }
    const store = new ProviderStore(ds, { maxKeys: 4, maxProvidersPerKey: 2 })
    const k4 = await mh('four')
    const k5 = await mh('five')
    await store.addProvider(k1, p[1], 1)
    await store.addProvider(k1, p[2], 2)
    puts = 0
    batches = 0
    // k1 is at maxProvidersPerKey (its oldest goes), k2 twice counts once
    await store.addProviders([k1, k2, k2, k3], p[0], 5)
    expect({ puts, batches }).to.deep.equal({ puts: 0, batches: 1 })
    expect(await store.getProviders(k1, 6)).to.deep.equal([ids[0], ids[2]])
    expect(await store.getProviders(k2, 6)).to.deep.equal([ids[0]])
    expect(await store.size()).to.deep.equal({ keys: 3, records: 4 })
    // one key of room left: k4 is kept, k5 is refused, nothing after it is written
    await expect(store.addProviders([k4, k5, k1], p[3], 6)).to.eventually.be.rejectedWith(ProviderStoreFullError)
    expect(await store.getProviders(k4, 7)).to.deep.equal([ids[3]])
    expect(await store.getProviders(k5, 7)).to.deep.equal([])
    expect(await store.getProviders(k1, 7)).to.deep.equal([ids[0], ids[2]])
    expect(await store.size()).to.deep.equal({ keys: 4, records: 5 })
    // a bad key refuses the whole call before anything is written
    await expect(store.addProviders([k1, new Uint8Array(0)], p[4], 8)).to.eventually.be.rejectedWith(InvalidRecordError)
    expect(await store.getProviders(k1, 9)).to.deep.equal([ids[0], ids[2]])
  })

  it('at maxKeys refuses a new key but accepts refreshes and new providers for held keys', async () => {
    const store = new ProviderStore(new MemoryDatastore(), { maxKeys: 2 })
    await store.addProvider(k1, p[0], 1)
    await store.addProvider(k2, p[0], 1)
    await expect(store.addProvider(k3, p[0], 2)).to.eventually.be.rejectedWith(ProviderStoreFullError).with.property('code', 'ERR_PROVIDER_STORE_FULL')
    await store.addProvider(k1, p[0], 2)
    await store.addProvider(k1, p[1], 2)
    expect(await store.size()).to.deep.equal({ keys: 2, records: 3 })
    // once k2 expires and is removed, there is room again
    await store.addProvider(k1, p[0], 10)
    await store.addProvider(k1, p[1], 10)
    expect(await store.removeExpired(1 + VALIDITY)).to.equal(1)
    await store.addProvider(k3, p[0], 1 + VALIDITY)
    expect(await store.size()).to.deep.equal({ keys: 2, records: 3 })
  })

  it('removeExpired deletes at most limit records per call', async () => {
    const store = new ProviderStore(new MemoryDatastore())
    for (let i = 0; i < 5; i++) {
      await store.addProvider(i < 3 ? k1 : k2, p[i], i)
    }
    await store.addProvider(k3, p[5], 100)
    const now = VALIDITY + 10 // everything added at 0..4 has expired, k3 has not
    expect(await store.removeExpired(now, { limit: 2 })).to.equal(2)
    expect(await store.removeExpired(now, { limit: 2 })).to.equal(2)
    expect(await store.removeExpired(now, { limit: 2 })).to.equal(1)
    expect(await store.removeExpired(now)).to.equal(0)
    expect(await store.size()).to.deep.equal({ keys: 1, records: 1 })
    expect(await store.getProviders(k3, now)).to.deep.equal([ids[5]])
    await expect(store.removeExpired(now, { limit: -1 })).to.eventually.be.rejectedWith(RangeError)
  })

  it('refuses bad keys and provider ids', async () => {
    const store = new ProviderStore(new MemoryDatastore())
    await expect(store.addProvider(new Uint8Array(0), p[0], 1)).to.eventually.be.rejectedWith(InvalidRecordError).with.property('code', 'ERR_INVALID_RECORD')
    await expect(store.addProvider(new Uint8Array(81), p[0], 1)).to.eventually.be.rejected.with.property('code', 'ERR_RECORD_TOO_LARGE')
    await expect(store.getProviders(new Uint8Array(81), 1)).to.eventually.be.rejected.with.property('code', 'ERR_RECORD_TOO_LARGE')
    await expect(store.addProvider(k1, 'not/a peer', 1)).to.eventually.be.rejectedWith(InvalidRecordError)
    await expect(store.addProvider(k1, p[0], Number.NaN)).to.eventually.be.rejectedWith(RangeError)
    expect(await store.size()).to.deep.equal({ keys: 0, records: 0 })
  })

  it('survives a restart with the same datastore, counts rebuilt for the bounds', async () => {
    const ds = new MemoryDatastore()
    const first = new ProviderStore(ds, { maxKeys: 2, maxProvidersPerKey: 2 })
    await first.addProvider(k1, p[0], 1)
    await first.addProvider(k1, p[1], 2)
    await first.addProvider(k2, p[2], 3)
    const second = new ProviderStore(ds, { maxKeys: 2, maxProvidersPerKey: 2 })
    expect(await second.getProviders(k1, 10)).to.deep.equal([ids[1], ids[0]])
    expect(await second.size()).to.deep.equal({ keys: 2, records: 3 })
    await expect(second.addProvider(k3, p[0], 10)).to.eventually.be.rejectedWith(ProviderStoreFullError)
    await second.addProvider(k1, p[3], 10)
    expect(await second.getProviders(k1, 11)).to.deep.equal([ids[3], ids[1]])
  })

  it('persists in a datastore-level database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'provider-store-'))
    try {
      const ds1 = new LevelDatastore(dir)
      await ds1.open()
      const first = new ProviderStore(ds1)
      await first.addProvider(k1, p[0], 1)
      await first.addProvider(k1, p[1], 2)
      await ds1.close()
      const ds2 = new LevelDatastore(dir)
      await ds2.open()
      const second = new ProviderStore(ds2)
      expect(await second.size()).to.deep.equal({ keys: 1, records: 2 })
      expect(await second.getProviders(k1, 3)).to.deep.equal([ids[1], ids[0]])
      expect(await second.removeExpired(2 + VALIDITY)).to.equal(2)
      await ds2.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('keeps counts right under concurrent adds', async () => {
    const store = new ProviderStore(new MemoryDatastore(), { maxKeys: 3, maxProvidersPerKey: 2 })
    const keys = [k1, k2, k3, await mh('four')]
    const results = await Promise.allSettled(keys.flatMap((k, i) => p.map(async (peer, j) => store.addProvider(k, peer, i * 10 + j))))
    expect(results.filter(r => r.status === 'rejected')).to.have.length(p.length)
    expect(await store.size()).to.deep.equal({ keys: 3, records: 6 })
  })
})
