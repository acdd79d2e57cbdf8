/**
 * Crash safety on datastore-level (issue #12), five SIGKILLs of a child
 * node (harness.ts): during provideMany, a republish sweep, peer-value
 * saves, provideMany, a sweep. After each kill the datastore opens, every
 * record decodes and validates, every key reported done is still held and
 * scheduled again on restart; after the last restart every key reported
 * done is republished within two sweeps. `npm run crash` runs 20 kills.
 * A random seed is printed; CRASH_SEED=S repeats one.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { sha256 } from 'multiformats/hashes/sha2'
import { encodeTime } from '../../src/records/datastore-utils.ts'
import { inspect, runCrashes } from './harness.ts'

describe('crash: SIGKILL during provideMany, republish sweeps and peer-value saves', function () {
  this.timeout(120_000)

  it('every restart is clean and nothing reported done is lost (5 kills)', async () => {
    const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))
    // eslint-disable-next-line no-console
    console.log(`      crash seed ${seed}`)
    const s = await runCrashes({ runs: 5, seed })
    const problems = s.results.flatMap(r => r.problems.map(p => `run ${r.run} (${r.mode}): ${p}`))
    expect(problems).to.deep.equal([])
    expect(s.cleanRestarts).to.equal(5)
    expect(s.lost).to.equal(0)
    expect(s.provides).to.be.greaterThan(0)
    expect(s.recordsChecked).to.be.greaterThan(s.provides)
    expect(s.republished).to.equal(s.provides)
  })

  it('the inspection names a corrupt record and a key reported done that is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'priority-dht-inspect-'))
    const ds = new LevelDatastore(dir)
    await ds.open()
    try {
      const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
      const kept = base32.encode((await sha256.digest(new TextEncoder().encode('kept'))).bytes)
      const time = new Uint8Array(8)
      new DataView(time.buffer).setFloat64(0, Date.now())
      await ds.put(new Key(`/dht/provided/${kept}`), time)
      await ds.put(new Key(`/dht/providers/${kept}/${self.toString()}`), encodeTime(Date.now()))
      await ds.put(new Key('/dht/record/bogus'), new Uint8Array([0xff, 0xff]))
      await ds.put(new Key('/dht/peer-stack'), new TextEncoder().encode('{"version":1,"entries":[{"id":"x"}]}'))
      const seen = await inspect(ds, self, new Set([kept, 'bmissing']), new Set())
      expect(seen.problems).to.have.length(4)
      expect(seen.problems.filter(p => p.startsWith('corrupt /dht/record/bogus'))).to.have.length(1)
      expect(seen.problems.filter(p => p.startsWith('corrupt /dht/peer-stack'))).to.have.length(1)
      expect(seen.problems.filter(p => p.startsWith('lost: bmissing'))).to.have.length(2)
    } finally {
      await ds.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
