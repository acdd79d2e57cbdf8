/**
 * Memory per simulated node, measured on an eagerly built test-sized world
 * and bounded, so a change that fattens the per-node state (routing table,
 * peer stack, connections) shows up here. Measured: 34.5 KB per classic
 * node and 24.4 KB per priority-dht node at 5 000 nodes (seeded tables of
 * about 250 and 140 entries with replacements; 45 and 34 KB at 20 000
 * nodes); a million live nodes in 16 GB (issue #13) needs about 16 KB.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { expect } from 'aegir/chai'
import { bootstrap, createWorld } from '../../src/sim/experiment.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function bytesPerNode (nodes: number, peerStack: boolean): number {
  gc()
  const before = process.memoryUsage().heapUsed
  const world = createWorld({ world: { nodes, seed: 3, peerStack, eager: true } })
  bootstrap(world, {})
  gc()
  const used = process.memoryUsage().heapUsed - before
  expect(world.stats.nodesBuilt).to.equal(nodes)
  return used / nodes
}

describe('sim/memory: bytes per live node', function () {
  this.timeout(120_000)

  // the heap also holds whatever earlier specs leave behind while it is
  // measured: the smaller of two measurements, and a margin of a third
  it('a classic node stays under 46 KB and a priority-dht node under 33 KB', () => {
    const classic = Math.min(bytesPerNode(5000, false), bytesPerNode(5000, false))
    const adopter = Math.min(bytesPerNode(5000, true), bytesPerNode(5000, true))
    expect(classic, `classic ${Math.round(classic)} B`).to.be.below(46_000)
    expect(adopter, `priority-dht ${Math.round(adopter)} B`).to.be.below(33_000)
  })
})
