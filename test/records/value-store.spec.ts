import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect } from 'aegir/chai'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { Record } from '../../src/generated/dht.ts'
import { toRFC3339 } from '../../src/records/rfc3339.ts'
import { InvalidRecordError } from '../../src/records/validation.ts'
import { ValueStore, ValueStoreFullError } from '../../src/records/value-store.ts'
import { HOUR, ed25519, expiredIpnsRecord, ipnsKey, ipnsRecord, pkRecord, tamper } from './fixtures.ts'
import type { ValueStoreInit } from '../../src/records/value-store.ts'

const T0 = Date.UTC(2026, 0, 1)
const VALIDITY = 48 * HOUR
const bytes = (s: string): Uint8Array => uint8ArrayFromString(s)
const text = (b: Uint8Array | undefined): string | undefined => b == null ? undefined : uint8ArrayToString(b)

/** Namespace `v`: values must start with "ok"; the selector prefers the longest (ties: index 0) */
const custom: ValueStoreInit = {
  validators: { v: (_key, value) => { if (!text(value)?.startsWith('ok')) { throw new Error('not ok') } } },
  selectors: { v: (_key, values) => values.reduce((best, v, i) => v.byteLength > values[best].byteLength ? i : best, 0) }
}

describe('records/value-store', () => {
  it('rejects invalid config at construction', () => {
    const ds = new MemoryDatastore()
    expect(() => new ValueStore(ds, { maxRecords: 0 })).to.throw(InvalidConfigError, /maxRecords/)
    expect(() => new ValueStore(ds, { prefix: 'dht/' })).to.throw(InvalidConfigError, /prefix/)
    expect(() => new ValueStore(ds, { validators: { '/v/': () => {} } })).to.throw(InvalidConfigError)
  })

  it('stores a valid pk record as a libp2p Record protobuf and returns it', async () => {
    const ds = new MemoryDatastore()
    const store = new ValueStore(ds)
    const { key, value } = pkRecord(await ed25519())
    expect(await store.put(key, value, T0)).to.equal('stored')
    expect(await store.get(key, T0 + 1)).to.deep.equal({ value, received: T0 })
    const raw = await ds.get(new Key(`/dht/record/${base32.encode(key)}`))
    expect(Record.decode(raw)).to.deep.equal({ key, value, timeReceived: toRFC3339(T0) })
    expect(await store.size()).to.equal(1)
  })

  it('refuses invalid records with InvalidRecordError', async () => {
    const store = new ValueStore(new MemoryDatastore(), custom)
    const a = pkRecord(await ed25519())
    const b = pkRecord(await ed25519())
    await expect(store.put(a.key, b.value, T0)).to.eventually.be.rejectedWith(InvalidRecordError).with.property('code', 'ERR_INVALID_RECORD')
    await expect(store.put(bytes('/v/x'), bytes('bad'), T0)).to.eventually.be.rejected.with.property('code', 'ERR_INVALID_RECORD')
    await expect(store.put(bytes('/v/x'), bytes('ok'.padEnd(10 * 1024 + 1, '!')), T0)).to.eventually.be.rejected.with.property('code', 'ERR_RECORD_TOO_LARGE')
    await expect(store.put(bytes('/nope/x'), bytes('ok'), T0)).to.eventually.be.rejected.with.property('code', 'ERR_NO_VALIDATOR')
    await expect(store.put(bytes('nope'), bytes('ok'), T0)).to.eventually.be.rejected.with.property('code', 'ERR_MISSING_NAMESPACE')
    expect(await store.size()).to.equal(0)
  })

  it('keeps the higher IPNS sequence: a lower one never replaces it', async () => {
    const store = new ValueStore(new MemoryDatastore())
    const priv = await ed25519()
    const key = ipnsKey(priv)
    const seq1 = await ipnsRecord(priv, 1)
    const seq2 = await ipnsRecord(priv, 2)
    const seq3 = await ipnsRecord(priv, 3)
    expect(await store.put(key, seq2, T0)).to.equal('stored')
    expect(await store.put(key, seq1, T0 + 1)).to.equal('kept-existing')
    expect(await store.get(key, T0 + 2)).to.deep.equal({ value: seq2, received: T0 })
    expect(await store.put(key, seq3, T0 + 3)).to.equal('stored')
    expect((await store.get(key, T0 + 4))?.value).to.deep.equal(seq3)
    // the same record again refreshes the received time
    expect(await store.put(key, seq3, T0 + 5)).to.equal('stored')
    expect((await store.get(key, T0 + 6))?.received).to.equal(T0 + 5)
  })

  it('never lets an invalid record replace a valid one', async () => {
    const store = new ValueStore(new MemoryDatastore())
    const priv = await ed25519()
    const key = ipnsKey(priv)
    const good = await ipnsRecord(priv, 1)
    await store.put(key, good, T0)
    // a higher sequence with a bad signature, and a signed one past its EOL
    await expect(store.put(key, tamper(await ipnsRecord(priv, 9)), T0 + 1)).to.eventually.be.rejected.with.property('code', 'ERR_INVALID_RECORD')
    await expect(store.put(key, await expiredIpnsRecord(priv, 10), T0 + 1)).to.eventually.be.rejected.with.property('code', 'ERR_INVALID_RECORD')
    expect((await store.get(key, T0 + 2))?.value).to.deep.equal(good)
  })

  it('uses custom validators and selectors for a custom namespace; ties keep the newer arrival', async () => {
    const store = new ValueStore(new MemoryDatastore(), custom)
    const key = bytes('/v/thing')
    expect(await store.put(key, bytes('ok-long'), T0)).to.equal('stored')
    expect(await store.put(key, bytes('ok'), T0 + 1)).to.equal('kept-existing')
    // same length: a tie, the newer arrival is kept
    expect(await store.put(key, bytes('ok-tied'), T0 + 2)).to.equal('stored')
    expect(await store.get(key, T0 + 3)).to.deep.equal({ value: bytes('ok-tied'), received: T0 + 2 })
    expect(await store.best(key, [bytes('ok'), bytes('ok-longest')])).to.equal(1)
    await store.validate(key, bytes('ok'))
    await expect(store.validate(key, bytes('no'))).to.eventually.be.rejectedWith(InvalidRecordError)
  })

  it('expires a value recordValidity after it was received', async () => {
    const store = new ValueStore(new MemoryDatastore(), custom)
    const key = bytes('/v/x')
    await store.put(key, bytes('ok-long'), T0)
    expect(await store.get(key, T0 + VALIDITY - 1)).to.not.equal(undefined)
    expect(await store.get(key, T0 + VALIDITY)).to.equal(undefined)
    expect(await store.size()).to.equal(0)
    // an expired record is replaced even by a "worse" one
    await store.put(key, bytes('ok-long'), T0)
    expect(await store.put(key, bytes('ok'), T0 + VALIDITY)).to.equal('stored')
  })

  it('deletes a stored record that no longer validates', async () => {
    let accept = true
    const ds = new MemoryDatastore()
    const store = new ValueStore(ds, { validators: { v: () => { if (!accept) { throw new Error('revoked') } } } })
    await store.put(bytes('/v/x'), bytes('a'), T0)
    accept = false
    expect(await store.get(bytes('/v/x'), T0 + 1)).to.equal(undefined)
    expect(await store.size()).to.equal(0)

    // an IPNS record whose EOL has passed since it was stored (written as a previous run would have)
    const priv = await ed25519()
    const key = ipnsKey(priv)
    const dsKey = new Key(`/dht/record/${base32.encode(key)}`)
    await ds.put(dsKey, Record.encode({ key: new Uint8Array(key), value: new Uint8Array(await expiredIpnsRecord(priv, 1)), timeReceived: toRFC3339(T0) }))
    const fresh = new ValueStore(ds)
    expect(await fresh.size()).to.equal(1)
    expect(await fresh.get(key, T0 + 1)).to.equal(undefined)
    expect(await ds.has(dsKey)).to.equal(false)
    expect(await fresh.size()).to.equal(0)
  })

  it('runs the validator once per check: not when serving (verify: false), not on the held copy of the same value, not on a value the caller validated', async () => {
    let calls = 0
    let accept = true
    const store = new ValueStore(new MemoryDatastore(), { validators: { v: () => { calls++; if (!accept) { throw new Error('revoked') } } } })
    const key = bytes('/v/counted')
    await store.put(key, bytes('a'), T0)
    expect(calls).to.equal(1)
    // the same value again: its new received time is stored, the held copy is not judged
    expect(await store.put(key, bytes('a'), T0 + 1)).to.equal('stored')
    expect(calls).to.equal(2)
    expect((await store.get(key, T0 + 2))?.received).to.equal(T0 + 1)
    expect(calls).to.equal(3)
    // a value the caller has just validated is not validated again; the held, different one is judged
    await store.put(key, bytes('b'), T0 + 3, { validated: true })
    expect(calls).to.equal(4)
    // serving: no validator run, even for a record it would now refuse; the age limit still applies
    accept = false
    expect((await store.get(key, T0 + 4, { verify: false }))?.value).to.deep.equal(bytes('b'))
    expect(calls).to.equal(4)
    expect(await store.get(key, T0 + VALIDITY + 5, { verify: false })).to.equal(undefined)
  })

  it('refuses a new key at maxRecords but lets held keys be replaced', async () => {
    const store = new ValueStore(new MemoryDatastore(), { ...custom, maxRecords: 2 })
    await store.put(bytes('/v/a'), bytes('ok'), T0)
    await store.put(bytes('/v/b'), bytes('ok'), T0)
    await expect(store.put(bytes('/v/c'), bytes('ok'), T0)).to.eventually.be.rejectedWith(ValueStoreFullError).with.property('code', 'ERR_VALUE_STORE_FULL')
    expect(await store.put(bytes('/v/a'), bytes('ok-better'), T0 + 1)).to.equal('stored')
    expect(await store.removeExpired(T0 + VALIDITY)).to.equal(1)
    expect(await store.put(bytes('/v/c'), bytes('ok'), T0 + VALIDITY)).to.equal('stored')
  })

  it('removeExpired deletes at most limit records per call', async () => {
    const store = new ValueStore(new MemoryDatastore(), custom)
    for (let i = 0; i < 5; i++) {
      await store.put(bytes(`/v/${i}`), bytes('ok'), T0 + i)
    }
    const now = T0 + VALIDITY + 3 // records received at T0..T0+3 have expired
    expect(await store.removeExpired(now, { limit: 3 })).to.equal(3)
    expect(await store.removeExpired(now, { limit: 3 })).to.equal(1)
    expect(await store.removeExpired(now)).to.equal(0)
    expect(await store.size()).to.equal(1)
    expect(text((await store.get(bytes('/v/4'), now))?.value)).to.equal('ok')
  })

  it('survives a restart with the same datastore, bounds included', async () => {
    const ds = new MemoryDatastore()
    const first = new ValueStore(ds, { ...custom, maxRecords: 2 })
    await first.put(bytes('/v/a'), bytes('ok-a'), T0)
    await first.put(bytes('/v/b'), bytes('ok-b'), T0)
    const second = new ValueStore(ds, { ...custom, maxRecords: 2 })
    expect(await second.get(bytes('/v/a'), T0 + 1)).to.deep.equal({ value: bytes('ok-a'), received: T0 })
    await expect(second.put(bytes('/v/c'), bytes('ok'), T0)).to.eventually.be.rejectedWith(ValueStoreFullError)
    expect(await second.size()).to.equal(2)
  })

  it('persists in a datastore-level database', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'value-store-'))
    try {
      const priv = await ed25519()
      const record = await ipnsRecord(priv, 7)
      const ds1 = new LevelDatastore(dir)
      await ds1.open()
      await new ValueStore(ds1).put(ipnsKey(priv), record, T0)
      await ds1.close()
      const ds2 = new LevelDatastore(dir)
      await ds2.open()
      const store = new ValueStore(ds2)
      expect(await store.size()).to.equal(1)
      const got = await store.get(ipnsKey(priv), T0 + 1)
      expect(got?.received).to.equal(T0)
      expect(got?.value).to.equalBytes(record)
      await ds2.close()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('honours an aborted signal', async () => {
    const store = new ValueStore(new MemoryDatastore(), custom)
    const signal = AbortSignal.abort()
    await expect(store.put(bytes('/v/a'), bytes('ok'), T0, { signal })).to.eventually.be.rejected.with.property('name', 'AbortError')
    expect(await store.size()).to.equal(0)
  })
})
