/**
 * Who starts a scenario's operations: a random node online at the time
 * (any, or only dialable ones), or a fixed set of publishers in turn, drawn
 * once on first use.
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

  /**
   * A random node online now (a node that left for good or is away does
   * not start anything), dialable if the mode says so. After `size` draws
   * without one, the last draw (a network nearly all gone still runs).
   */
  any (): number {
    const now = this.world.now
    let i = 0
    for (let tries = 0; tries < this.world.size; tries++) {
      i = this.random.int(this.world.size)
      if ((this.mode === 'any' || this.world.network.dialable(i)) && this.world.network.online(i, now)) {
        return i
      }
    }
    return i
  }
}
