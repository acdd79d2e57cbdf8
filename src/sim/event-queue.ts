/**
 * The simulator's event queue: a binary min-heap ordered by (time, seq).
 *
 * `seq` is a counter assigned at `push`, so events due at the same virtual
 * time come out in the order they were scheduled. Together with the seeded
 * random sources this makes a run a pure function of its seed and
 * configuration.
 *
 * Operations: `push(time, item)`, `pop()`, `peekTime()`, `size`.
 * Capacity: at most `maxSize` queued items; a push beyond it throws
 * {@link QueueFullError} (a simulation that queues that much is broken or too
 * large for the machine, and failing loudly beats swapping). The world keeps
 * the queue small by construction: at most one outcome per request in flight,
 * at most one scheduled step per scenario, and a bounded number of tick
 * entries per node (see `world.ts`).
 *
 * Storage is three parallel arrays (times, sequence numbers, items) rather
 * than one object per entry, to keep allocation per event low.
 */
import type { Millis } from '../core/env.ts'

export class QueueFullError extends Error {
  name = 'QueueFullError'
  code = 'ERR_QUEUE_FULL'
}

export class EventQueue<T> {
  readonly maxSize: number
  private readonly times: number[] = []
  private readonly seqs: number[] = []
  private readonly items: T[] = []
  private nextSeq = 0

  /** @param maxSize - the most items queued at once (default 10,000,000) */
  constructor (maxSize = 10_000_000) {
    if (!(Number.isInteger(maxSize) && maxSize > 0)) {
      throw new RangeError(`maxSize must be a positive integer, got ${maxSize}`)
    }
    this.maxSize = maxSize
  }

  get size (): number {
    return this.items.length
  }

  /** Sequence numbers handed out so far (pushes since construction) */
  get pushed (): number {
    return this.nextSeq
  }

  /** Queues `item` at virtual time `time` */
  push (time: Millis, item: T): void {
    if (Number.isNaN(time)) {
      throw new RangeError('event time is NaN')
    }
    if (this.items.length >= this.maxSize) {
      throw new QueueFullError(`event queue is full (${this.maxSize} events)`)
    }
    const seq = this.nextSeq++
    let i = this.items.length
    this.times.push(time)
    this.seqs.push(seq)
    this.items.push(item)
    // sift up
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(time, seq, this.times[parent], this.seqs[parent])) {
        break
      }
      this.move(parent, i)
      i = parent
    }
    this.set(i, time, seq, item)
  }

  /** Time of the earliest item, or undefined when empty */
  peekTime (): Millis | undefined {
    return this.items.length === 0 ? undefined : this.times[0]
  }

  /** Removes and returns the earliest item with its time */
  pop (): { time: Millis, item: T } | undefined {
    const n = this.items.length
    if (n === 0) {
      return undefined
    }
    const time = this.times[0]
    const item = this.items[0]
    const lastTime = this.times[n - 1]
    const lastSeq = this.seqs[n - 1]
    const lastItem = this.items[n - 1]
    this.times.pop()
    this.seqs.pop()
    this.items.pop()
    if (n > 1) {
      // sift the last item down from the root
      const size = n - 1
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= size) {
          break
        }
        const r = l + 1
        const c = r < size && this.less(this.times[r], this.seqs[r], this.times[l], this.seqs[l]) ? r : l
        if (!this.less(this.times[c], this.seqs[c], lastTime, lastSeq)) {
          break
        }
        this.move(c, i)
        i = c
      }
      this.set(i, lastTime, lastSeq, lastItem)
    }
    return { time, item }
  }

  private less (t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2)
  }

  private move (from: number, to: number): void {
    this.times[to] = this.times[from]
    this.seqs[to] = this.seqs[from]
    this.items[to] = this.items[from]
  }

  private set (i: number, time: number, seq: number, item: T): void {
    this.times[i] = time
    this.seqs[i] = seq
    this.items[i] = item
  }
}
