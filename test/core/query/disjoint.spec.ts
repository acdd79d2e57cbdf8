/**
 * Disjoint paths (issue #12) on the static network of test/core/fixtures:
 * 500 honest nodes with full routing tables plus 30 Sybils whose ids share
 * their first 24 bits with one key, nearer it than any honest node, that
 * answer every request with Sybils only and hold no record: an eclipse of
 * the region around the key. The record is held by the 20 honest nodes
 * nearest the key. A get finds it if its lookup hears from one of them.
 */
import { expect } from 'aegir/chai'
import { SeededRandom } from '../../../src/core/env.ts'
import { KEY_BYTES } from '../../../src/core/key.ts'
import { DisjointLookup } from '../../../src/core/query/disjoint.ts'
import { bruteForceClosest, ids, randomContacts } from '../fixtures/keys.ts'
import { StaticNetwork } from '../fixtures/static-network.ts'
import type { Contact } from '../../../src/core/contact.ts'
import type { Key } from '../../../src/core/key.ts'
import type { LookupEffect } from '../../../src/core/query/lookup.ts'
import type { RoutingTable } from '../../../src/core/routing-table/table.ts'

const K = 20

class EclipsedNetwork extends StaticNetwork {
  readonly sybils: Set<string>
  constructor (nodes: Contact[], sybils: Contact[], random: SeededRandom) {
    // each node meets honest nodes and Sybils in its own random order
    const all = [...nodes, ...sybils]
    const shuffled = (): Contact[] => {
      const out = [...all]
      for (let i = out.length - 1; i > 0; i--) {
        const j = random.int(i + 1)
        const t = out[i]
        out[i] = out[j]
        out[j] = t
      }
      return out
    }
    super(all, [], K, 'everyone', shuffled)
    this.sybils = new Set(sybils.map(s => s.id))
  }

  answer (peer: Contact, target: Key, from: Contact, k: number): Contact[] {
    const all = super.answer(peer, target, from, k * 4)
    return this.sybils.has(peer.id) ? all.filter(c => this.sybils.has(c.id)).slice(0, k) : all.slice(0, k)
  }
}

function eclipse (seed: number): { net: EclipsedNetwork, honest: Contact[], key: Key, holders: Set<string> } {
  const random = new SeededRandom(seed)
  const honest = randomContacts(500, seed)
  const key = random.fill(new Uint8Array(KEY_BYTES))
  const sybils = Array.from({ length: 30 }, (_, i) => {
    const k = random.fill(new Uint8Array(KEY_BYTES))
    k.set(key.subarray(0, 3))
    return { id: `sybil${i}`, key: k }
  })
  const holders = new Set(ids(bruteForceClosest(honest, key, K)))
  return { net: new EclipsedNetwork(honest, sybils, random), honest, key, holders }
}

/** Of 20 gets from honest nodes, how many heard from a holder */
function found (seed: number, paths: number): { found: number, requests: number[], sybilsInResult: number } {
  const { net, honest, key, holders } = eclipse(seed)
  const out = { found: 0, requests: [] as number[], sybilsInResult: 0 }
  // initiators that do not list a holder among their seeds, as nodes far
  // from the key in a network larger than this one do not
  const initiators = honest.filter(n => !holders.has(n.id) && !(net.stale.get(n.id) as RoutingTable).closest(key, K).some(c => holders.has(c.id)))
  expect(initiators.length).to.be.at.least(20)
  for (let i = 0; i < 20; i++) {
    const from = initiators[i]
    let heard = false
    let requests = 0
    const r = net.lookup(from, key, { k: K }, i, {
      make: paths > 1 ? (target, self, seeds) => new DisjointLookup(target, self, seeds, { k: K }, undefined, paths) : undefined,
      onOutcome: (id, closer) => { heard ||= closer != null && holders.has(id) },
      onEffect: (e: LookupEffect) => { requests += e.type === 'request' ? 1 : 0 }
    })
    out.found += heard ? 1 : 0
    out.requests.push(requests)
    out.sybilsInResult += r.closest.filter(c => net.sybils.has(c.id)).length
  }
  return out
}

describe('core/query/disjoint: disjoint paths against an eclipse of a key', () => {
  it('one path is captured by 30 Sybils nearest the key in most gets; three disjoint paths reach the honest holders every time', () => {
    for (const seed of [1, 2]) {
      const one = found(seed, 1)
      const three = found(seed, 3)
      if (process.env.DISJOINT_REPORT != null) {
        // eslint-disable-next-line no-console
        console.log(`      seed ${seed}: found by one path ${one.found}/20 (requests max ${Math.max(...one.requests)}), by three ${three.found}/20 (requests max ${Math.max(...three.requests)})`)
      }
      expect(one.found, `seed ${seed}: one path`).to.be.at.most(10)
      expect(three.found, `seed ${seed}: three paths`).to.equal(20)
      // bounded: three paths cost at most three lookups' worth of requests
      expect(Math.max(...three.requests)).to.be.at.most(3 * 200)
    }
  })

  it('asks no peer twice, and returns the k closest of all paths', () => {
    const { net, honest, key } = eclipse(3)
    const asked: string[] = []
    const r = net.lookup(honest[0], key, { k: K }, 0, {
      make: (target, self, seeds) => new DisjointLookup(target, self, seeds, { k: K }, undefined, 3),
      onEffect: e => { if (e.type === 'request') { asked.push(e.peer.id) } }
    })
    expect(new Set(asked).size).to.equal(asked.length)
    expect(r.closest).to.have.length(K)
    // the Sybils are nearest and answer: every one of them is in the result
    expect(r.closest.slice(0, K).filter(c => net.sybils.has(c.id))).to.have.length(K)
  })
})
