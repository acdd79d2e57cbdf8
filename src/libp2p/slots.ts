/**
 * A counting semaphore with a bounded wait list, for queries waiting to start.
 * At the bound `acquire` rejects with {@link QueryOverloadedError}; an aborted
 * waiter leaves the list at once. Background queries (table refresh,
 * republishing) wait behind the application's, within the same bound (see
 * `wait-list.ts`).
 */
import { WaitList } from './wait-list.ts'

export class QueryOverloadedError extends Error {
  name = 'QueryOverloadedError'
  code = 'ERR_QUERY_OVERLOADED'
}

export class Slots {
  private free: number
  private readonly maxWaiting: number
  private readonly waiting = new WaitList<() => void>()

  constructor (size: number, maxWaiting: number) {
    this.free = size
    this.maxWaiting = maxWaiting
  }

  get waiters (): number {
    return this.waiting.size
  }

  async acquire (signal?: AbortSignal, background = false): Promise<void> {
    signal?.throwIfAborted()
    if (this.free > 0) {
      this.free--
      return
    }
    if (this.waiting.size >= this.maxWaiting) {
      throw new QueryOverloadedError(`${this.maxWaiting} queries are already waiting to start`)
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.waiting.remove(wake)
        reject(signal?.reason)
      }
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      this.waiting.push(wake, background)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  release (): void {
    const next = this.waiting.shift()
    if (next != null) {
      next() // the slot passes straight to the next waiter
    } else {
      this.free++
    }
  }
}
