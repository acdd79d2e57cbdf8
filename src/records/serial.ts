/**
 * Runs async tasks one at a time, in call order. The record stores use one
 * to keep their in-memory counts consistent with the datastore: a task reads,
 * decides and writes without another write interleaving.
 *
 * A task whose `signal` is aborted while it waits is rejected, without
 * running, when its turn comes.
 * The queue itself is unbounded; callers bound their own concurrency (the
 * inbound handler limits requests in flight).
 */
import type { AbortOptions } from '@libp2p/interface'

export class Serial {
  private tail: Promise<unknown> = Promise.resolve()

  async run<T> (task: () => Promise<T>, options: AbortOptions = {}): Promise<T> {
    const previous = this.tail
    let release!: () => void
    this.tail = new Promise<void>(resolve => { release = resolve })
    try {
      await previous
      options.signal?.throwIfAborted()
      return await task()
    } finally {
      release()
    }
  }
}
