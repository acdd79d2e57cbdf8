/**
 * 10 000 fuzz inputs through the inbound path (see test/fuzz/run.ts); the
 * 1 000 000-input run is `npm run fuzz -- --count 1000000 --seed S`.
 */
import { expect } from 'aegir/chai'
import { runFuzz } from './run.ts'

describe('fuzz: inbound wire path', function () {
  this.timeout(120_000)

  it('answers or refuses with a typed error 10 000 hostile inputs; stores bounded, canaries intact, heap bounded', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
    // eslint-disable-next-line no-console
    console.log(`      fuzz seed ${seed} (FUZZ_SEED=${seed} to repeat)`)
    const stats = await runFuzz({ count: 10_000, seed, checkEvery: 1000 })
    expect(stats.crashes).to.equal(0)
    expect(stats.inputs).to.equal(10_000)
    expect(stats.lostCanaries).to.equal(0)
    // every kind of outcome was reached, so the inputs get past the decoder
    expect(stats.answered).to.be.greaterThan(1000)
    expect(stats.errors.InvalidRecordError ?? 0).to.be.greaterThan(50)
    expect(stats.errors.InvalidDhtMessageError ?? 0).to.be.greaterThan(100)
    expect(stats.heapMax - stats.heapBefore).to.be.lessThan(64 * 1024 * 1024)
  })
})
