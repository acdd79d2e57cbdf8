/**
 * A counting semaphore with a bounded wait list, for queries waiting to start.
 * At the bound `acquire` rejects with {@link QueryOverloadedError}; an aborted
 * waiter leaves the list at once.
 */
export class QueryOverloadedError extends Error {
  name = 'QueryOverloadedError'
  code = 'ERR_QUERY_OVERLOADED'
}

export class Slots {
  private free: number
  private readonly maxWaiting: number
  private readonly waiting: Array<() => void> = []

  constructor (size: number, maxWaiting: number) {
    this.free = size
    this.maxWaiting = maxWaiting
  }

  get waiters (): number {
    return this.waiting.length
  }

  async acquire (signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (this.free > 0) {
      this.free--
      return
    }
    if (this.waiting.length >= this.maxWaiting) {
      throw new QueryOverloadedError(`${this.maxWaiting} queries are already waiting to start`)
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiting.indexOf(wake)
        if (i !== -1) {
          this.waiting.splice(i, 1)
        }
        reject(signal?.reason)
      }
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      this.waiting.push(wake)
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
