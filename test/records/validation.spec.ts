import { expect } from 'aegir/chai'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { InvalidConfigError } from '../../src/core/routing-table/config.ts'
import { parseRFC3339, toRFC3339 } from '../../src/records/rfc3339.ts'
import {
  DEFAULT_MAX_RECORD_SIZE, InvalidRecordError, SelectorError, defaultSelectors, defaultValidators,
  mergeSelectors, mergeValidators, namespaceOf, selectBest, validateRecord
} from '../../src/records/validation.ts'
import { ed25519, expiredIpnsRecord, ipnsKey, ipnsRecord, pkRecord, tamper } from './fixtures.ts'
import type { InvalidRecordCode } from '../../src/records/validation.ts'

const bytes = (s: string): Uint8Array => uint8ArrayFromString(s)

async function rejectsWith (p: Promise<unknown>, code: InvalidRecordCode): Promise<InvalidRecordError> {
  try {
    await p
  } catch (err) {
    expect(err).to.be.an.instanceOf(InvalidRecordError)
    expect(err).to.have.property('name', 'InvalidRecordError')
    expect(err).to.have.property('code', code)
    return err as InvalidRecordError
  }
  throw new Error(`expected InvalidRecordError ${code}`)
}

describe('records/validation', () => {
  const validators = defaultValidators()
  const selectors = defaultSelectors()

  it('has pk and ipns built-ins', () => {
    expect(Object.keys(validators).sort()).to.deep.equal(['ipns', 'pk'])
    expect(Object.keys(selectors).sort()).to.deep.equal(['ipns', 'pk'])
    expect(DEFAULT_MAX_RECORD_SIZE).to.equal(10 * 1024)
  })

  it('namespaceOf wants /<ns>/<rest>', () => {
    expect(namespaceOf(bytes('/v/x'))).to.equal('v')
    expect(namespaceOf(bytes('/ipns/a/b'))).to.equal('ipns')
    for (const bad of ['', 'v', 'v/x', '/v', '/v/', '//x', 'x/v/y']) {
      expect(() => namespaceOf(bytes(bad)), bad).to.throw(InvalidRecordError).with.property('code', 'ERR_MISSING_NAMESPACE')
    }
  })

  it('accepts a valid pk record', async () => {
    const { key, value } = pkRecord(await ed25519())
    await validateRecord(validators, key, value)
  })

  it('rejects a pk record for another key, or garbage', async () => {
    const a = pkRecord(await ed25519())
    const b = pkRecord(await ed25519())
    const err = await rejectsWith(validateRecord(validators, a.key, b.value), 'ERR_INVALID_RECORD')
    expect(err.cause).to.be.an.instanceOf(Error)
    await rejectsWith(validateRecord(validators, a.key, bytes('not a key')), 'ERR_INVALID_RECORD')
  })

  it('accepts a valid ipns record', async () => {
    const key = await ed25519()
    await validateRecord(validators, ipnsKey(key), await ipnsRecord(key, 1))
  })

  it('rejects an ipns record with a bad signature, for another key, or past its EOL', async () => {
    const key = await ed25519()
    const other = await ed25519()
    const good = await ipnsRecord(key, 1)
    const badSig = await rejectsWith(validateRecord(validators, ipnsKey(key), tamper(good)), 'ERR_INVALID_RECORD')
    expect(badSig.cause).to.have.property('name', 'SignatureVerificationError')
    await rejectsWith(validateRecord(validators, ipnsKey(other), good), 'ERR_INVALID_RECORD')
    const expired = await rejectsWith(validateRecord(validators, ipnsKey(key), await expiredIpnsRecord(key, 1)), 'ERR_INVALID_RECORD')
    expect(expired.cause).to.have.property('name', 'RecordExpiredError')
  })

  it('rejects oversize values before running the validator', async () => {
    let called = false
    const v = mergeValidators({ v: () => { called = true } })
    await validateRecord(v, bytes('/v/x'), new Uint8Array(DEFAULT_MAX_RECORD_SIZE))
    called = false
    await rejectsWith(validateRecord(v, bytes('/v/x'), new Uint8Array(DEFAULT_MAX_RECORD_SIZE + 1)), 'ERR_RECORD_TOO_LARGE')
    await rejectsWith(validateRecord(v, bytes('/v/x'), new Uint8Array(11), { maxRecordSize: 10 }), 'ERR_RECORD_TOO_LARGE')
    expect(called).to.equal(false)
  })

  it('rejects keys without a namespace or validator', async () => {
    await rejectsWith(validateRecord(validators, bytes('no-namespace'), bytes('x')), 'ERR_MISSING_NAMESPACE')
    await rejectsWith(validateRecord(validators, bytes('/v/x'), bytes('x')), 'ERR_NO_VALIDATOR')
    // inherited object properties are not validators
    await rejectsWith(validateRecord(validators, bytes('/toString/x'), bytes('x')), 'ERR_NO_VALIDATOR')
  })

  it('passes an abort through unchanged', async () => {
    const controller = new AbortController()
    const v = mergeValidators({
      v: async (_k, _v, options) => {
        controller.abort()
        options?.signal?.throwIfAborted()
      }
    })
    await expect(validateRecord(v, bytes('/v/x'), bytes('x'), { signal: controller.signal })).to.eventually.be.rejected.with.property('name', 'AbortError')
  })

  it('merges user validators and selectors over the defaults, keyed without slashes', async () => {
    const v = mergeValidators({ v: () => {} })
    expect(Object.keys(v).sort()).to.deep.equal(['ipns', 'pk', 'v'])
    const s = mergeSelectors({ pk: () => 1 })
    expect(await selectBest(s, bytes('/pk/x'), [bytes('a'), bytes('b')])).to.equal(1)
    expect(() => mergeValidators({ '/v/': () => {} })).to.throw(InvalidConfigError)
    expect(() => mergeSelectors({ '': () => 0 })).to.throw(InvalidConfigError)
  })

  it('selectBest: the ipns selector prefers the higher sequence', async () => {
    const key = await ed25519()
    const records = [await ipnsRecord(key, 1), await ipnsRecord(key, 3), await ipnsRecord(key, 2)]
    expect(await selectBest(selectors, ipnsKey(key), records)).to.equal(1)
  })

  it('selectBest: no selector or one record picks 0; bad selectors throw', async () => {
    expect(await selectBest(selectors, bytes('/v/x'), [bytes('a'), bytes('b')])).to.equal(0)
    expect(await selectBest(mergeSelectors({ v: () => 5 }), bytes('/v/x'), [bytes('a')])).to.equal(0)
    await expect(selectBest(selectors, bytes('/v/x'), [])).to.eventually.be.rejectedWith(RangeError)
    await expect(selectBest(mergeSelectors({ v: () => 2 }), bytes('/v/x'), [bytes('a'), bytes('b')])).to.eventually.be.rejectedWith(SelectorError)
    await expect(selectBest(mergeSelectors({ v: () => 0.5 }), bytes('/v/x'), [bytes('a'), bytes('b')])).to.eventually.be.rejectedWith(SelectorError)
    await expect(selectBest(mergeSelectors({ v: () => { throw new Error('boom') } }), bytes('/v/x'), [bytes('a'), bytes('b')])).to.eventually.be.rejectedWith(SelectorError)
    await expect(selectBest(selectors, bytes('x'), [bytes('a')])).to.eventually.be.rejected.with.property('code', 'ERR_MISSING_NAMESPACE')
  })

  it('formats and parses RFC 3339 times as `@libp2p/record` does', () => {
    const t = Date.UTC(2024, 1, 29, 23, 59, 58, 7)
    expect(toRFC3339(t)).to.equal('2024-02-29T23:59:58.007000000Z')
    expect(parseRFC3339(toRFC3339(t))).to.equal(t)
    expect(parseRFC3339('2024-02-29T23:59:58Z')).to.equal(t - 7)
    expect(parseRFC3339('2024-02-29T23:59:58.007123456Z')).to.equal(t)
    expect(parseRFC3339('2024-03-01T01:59:58.007+02:00')).to.equal(t)
    expect(parseRFC3339('yesterday')).to.equal(undefined)
    expect(parseRFC3339('2024-13-01T00:00:00Z')).to.equal(undefined)
  })
})
