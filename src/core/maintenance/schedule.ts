/**
 * When to republish our own records (CIDs we provide, values we put).
 *
 * Methods (all synchronous, time passed in):
 * - `add(key, now)`: `key` was just published; its first republish is due at
 * `now + republishInterval + j` with `j` drawn uniformly from `[0, jitter)`.
 * Adding a key that is already scheduled reschedules it the same way (it was
 * just published again).
 * - `remove(key)`: stop republishing `key`.
 * - `due(now, limit)`: emits the keys whose republish time has come (deadline
 * `<= now`), oldest deadline first (ties: the longest scheduled first), at
 * most `limit` of them. Each emitted key is rescheduled at once for
 * `now + republishInterval + j`, so the caller owns the republish from then
 * on; a key left over by `limit` stays due and comes out of the next call.
 * - `nextDeadline()`: the earliest deadline, for the driver's single wake-up
 * timer; `undefined` when nothing is scheduled.
 *
 * Implementation notes:
 * - Jitter is one-sided (added, never subtracted) so that between two
 * emissions of the same key there is always at least one full
 * `republishInterval`, and at most `republishInterval + jitter` as long as the
 * driver calls `due` by `nextDeadline()`. With the defaults (22 h + up to
 * 2.2 h) a record is republished well inside the 48 h record validity used by
 * the Go and JS DHTs.
 * - A binary heap keyed by deadline: `add`/`remove` O(log n), `due` O(k log n)
 * for k keys emitted, `nextDeadline` O(1).
 * - Capacity: at most `maxEntries` keys. At the bound `add` of a new key throws
 * {@link ScheduleFullError}; re-adding a scheduled key always works.
 */
import { checkRange, stripUndefined } from '../routing-table/config.ts'
import { DeadlineHeap } from './deadline-heap.ts'
import type { Millis, Random } from '../env.ts'

export interface RepublishScheduleConfig {
  /**
   * Time from a publish to the next republish of the same key.
   *
   * @default 79200000 (22 hours; range 1000..2592000000, i.e. up to 30 days)
   */
  republishInterval: Millis
  /**
   * Upper bound of the random delay added to each republish deadline, spreading
   * republishes of keys published together.
   *
   * @default 10% of `republishInterval`, rounded down (range 0..republishInterval)
   */
  jitter: Millis
  /**
   * Most keys scheduled at once. At the bound `add` of a new key throws
   * {@link ScheduleFullError}.
   *
   * @default 1000000 (range 1..100000000)
   */
  maxEntries: number
}

export function defaultRepublishScheduleConfig (): RepublishScheduleConfig {
  const republishInterval = 22 * 60 * 60_000
  return {
    republishInterval,
    jitter: Math.floor(republishInterval / 10),
    maxEntries: 1_000_000
  }
}

export function validateRepublishScheduleConfig (partial: Partial<RepublishScheduleConfig> = {}): RepublishScheduleConfig {
  const given = stripUndefined(partial)
  const c = { ...defaultRepublishScheduleConfig(), ...given }
  checkRange('republish.republishInterval', c.republishInterval, 1000, 30 * 86_400_000)
  if (given.jitter === undefined) {
    c.jitter = Math.floor(c.republishInterval / 10)
  }
  checkRange('republish.jitter', c.jitter, 0, c.republishInterval, false)
  checkRange('republish.maxEntries', c.maxEntries, 1, 100_000_000)
  return c
}

export class ScheduleFullError extends Error {
  name = 'ScheduleFullError'
  code = 'ERR_SCHEDULE_FULL'
}

export class RepublishSchedule {
  readonly config: RepublishScheduleConfig
  private readonly random: Random
  private readonly heap = new DeadlineHeap()

  constructor (config: Partial<RepublishScheduleConfig>, random: Random) {
    this.config = validateRepublishScheduleConfig(config)
    this.random = random
  }

  /** Number of keys scheduled */
  get size (): number {
    return this.heap.size
  }

  has (key: string): boolean {
    return this.heap.has(key)
  }

  /** The time `key` is next due, or `undefined` if it is not scheduled */
  deadlineOf (key: string): Millis | undefined {
    return this.heap.deadlineOf(key)
  }

  /**
   * Schedules `key`, just published at `now`, for republishing. Throws
   * {@link ScheduleFullError} if `key` is new and `maxEntries` keys are
   * already scheduled.
   */
  add (key: string, now: Millis): void {
    if (!this.heap.has(key) && this.heap.size >= this.config.maxEntries) {
      throw new ScheduleFullError(`republish schedule is full (${this.config.maxEntries} keys)`)
    }
    this.heap.set(key, this.nextTime(now))
  }

  /** Returns whether `key` was scheduled */
  remove (key: string): boolean {
    return this.heap.remove(key)
  }

  /**
   * Keys due at `now`, oldest deadline first, at most `limit`; each is
   * rescheduled for `now + republishInterval + jitter`.
   */
  due (now: Millis, limit: number = Infinity): string[] {
    const out: string[] = []
    while (out.length < limit) {
      const top = this.heap.peek()
      if (top == null || top.deadline > now) {
        break
      }
      out.push(top.key)
      this.heap.set(top.key, this.nextTime(now))
    }
    return out
  }

  /** The earliest deadline, or `undefined` when nothing is scheduled */
  nextDeadline (): Millis | undefined {
    return this.heap.peek()?.deadline
  }

  private nextTime (now: Millis): Millis {
    return now + this.config.republishInterval + Math.floor(this.random.float() * this.config.jitter)
  }
}
