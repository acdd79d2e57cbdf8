/**
 * Who starts a scenario's operations: a random node (any, or only dialable
 * ones), or a fixed set of publishers in turn, drawn once on first use.
 * Draws come from the scenario's own random stream. Bounds: at most
 * `publishers` nodes kept.
 */
import type { World } from './world.ts'
import type { Random } from '../core/env.ts'

export class Initiators {
  private readonly world: World
  private readonly random: Random
  private readonly mode: 'any' | 'dialable'
  private readonly publishers: number
  private readonly chosen: number[] = []

  constructor (world: World, random: Random, mode: 'any' | 'dialable', publishers: number) {
    if (mode !== 'any' && mode !== 'dialable') {
      throw new RangeError(`initiators must be 'any' or 'dialable', got ${String(mode)}`)
    }
    if (mode === 'dialable' && world.network.dialableNodes === 0) {
      throw new RangeError('no dialable node can start an operation')
    }
    this.world = world
    this.random = random
    this.mode = mode
    this.publishers = publishers
  }

  /** The node that starts operation `index`: publisher `index` mod the count, or a random node without publishers */
  publisher (index: number): number {
    if (this.publishers === 0) {
      return this.any()
    }
    while (this.chosen.length < this.publishers) {
      this.chosen.push(this.any())
    }
    return this.chosen[index % this.publishers]
  }

  /** A random node, dialable if the mode says so */
  any (): number {
    for (;;) {
      const i = this.random.int(this.world.size)
      if (this.mode === 'any' || this.world.network.dialable(i)) {
        return i
      }
    }
  }
}
