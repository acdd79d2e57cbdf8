/**
 * A binary min-heap of string keys ordered by deadline, then by insertion
 * sequence (so equal deadlines come out oldest first). Every entry knows its
 * position, so `remove` and `update` are O(log n) and `peek` is O(1).
 *
 * The heap holds whatever it is given; bounds are the caller's job.
 */
import type { Millis } from '../env.ts'

export interface HeapEntry {
  readonly key: string
  deadline: Millis
  seq: number
  index: number
}

export class DeadlineHeap {
  private readonly items: HeapEntry[] = []
  private readonly byKey = new Map<string, HeapEntry>()
  private nextSeq = 0

  get size (): number {
    return this.items.length
  }

  has (key: string): boolean {
    return this.byKey.has(key)
  }

  deadlineOf (key: string): Millis | undefined {
    return this.byKey.get(key)?.deadline
  }

  peek (): HeapEntry | undefined {
    return this.items[0]
  }

  /** Inserts `key`, or moves it to `deadline` (and to the back of its ties) if present */
  set (key: string, deadline: Millis): void {
    const existing = this.byKey.get(key)
    if (existing != null) {
      const older = deadline < existing.deadline
      existing.deadline = deadline
      existing.seq = this.nextSeq++
      if (older) {
        this.up(existing.index)
      } else {
        this.down(existing.index)
      }
      return
    }
    const entry: HeapEntry = { key, deadline, seq: this.nextSeq++, index: this.items.length }
    this.items.push(entry)
    this.byKey.set(key, entry)
    this.up(entry.index)
  }

  remove (key: string): boolean {
    const entry = this.byKey.get(key)
    if (entry == null) {
      return false
    }
    this.byKey.delete(key)
    const last = this.items.pop()
    if (last != null && last !== entry) {
      this.items[entry.index] = last
      last.index = entry.index
      this.down(last.index)
      this.up(last.index)
    }
    return true
  }

  private less (a: HeapEntry, b: HeapEntry): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq)
  }

  private swap (i: number, j: number): void {
    const a = this.items[i]
    const b = this.items[j]
    this.items[i] = b
    this.items[j] = a
    b.index = i
    a.index = j
  }

  private up (i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.less(this.items[i], this.items[parent])) {
        return
      }
      this.swap(i, parent)
      i = parent
    }
  }

  private down (i: number): void {
    const n = this.items.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let min = i
      if (l < n && this.less(this.items[l], this.items[min])) { min = l }
      if (r < n && this.less(this.items[r], this.items[min])) { min = r }
      if (min === i) {
        return
      }
      this.swap(i, min)
      i = min
    }
  }
}
