/**
 * A bounded-by-its-owner wait list with two classes: work for the
 * application (foreground) is served before upkeep (background: routing
 * table refresh, republishing), FIFO within each class. So that upkeep is
 * late under load but never starved, a background waiter is served after
 * at most `BACKGROUND_EVERY` foreground ones were served ahead of it.
 *
 * The owner bounds the total (`size`) and decides what happens at the
 * bound; `remove` takes out an aborted waiter in O(n).
 */
import type { Purpose } from './metrics.ts'

/** Foreground waiters served in a row, while background ones wait, before one background waiter is */
export const BACKGROUND_EVERY = 4

/** Purposes that are upkeep rather than the application's own work */
export function isBackground (purpose: Purpose | undefined): boolean {
  return purpose === 'refresh' || purpose === 'republish'
}

export class WaitList<T> {
  private readonly foreground: T[] = []
  private readonly background: T[] = []
  /** foreground waiters served in a row while background ones were waiting */
  private passedOver = 0

  get size (): number {
    return this.foreground.length + this.background.length
  }

  push (item: T, background = false): void {
    (background ? this.background : this.foreground).push(item)
  }

  /** The next waiter to serve, or undefined when none waits */
  shift (): T | undefined {
    if (this.background.length > 0 && (this.foreground.length === 0 || this.passedOver >= BACKGROUND_EVERY)) {
      this.passedOver = 0
      return this.background.shift()
    }
    const next = this.foreground.shift()
    if (next != null && this.background.length > 0) {
      this.passedOver++
    } else {
      this.passedOver = 0
    }
    return next
  }

  /** Takes `item` out (an aborted waiter); false if it was not waiting */
  remove (item: T): boolean {
    for (const list of [this.foreground, this.background]) {
      const i = list.indexOf(item)
      if (i !== -1) {
        list.splice(i, 1)
        return true
      }
    }
    return false
  }
}
