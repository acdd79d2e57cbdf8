/**
 * Per-peer token buckets for inbound limits (request rate, provider records).
 *
 * A bucket holds at most `burst` tokens and gains `perSecond` tokens a
 * second. `take(peer, now)` spends one token and says how long the caller
 * should wait before acting on it:
 * - 0: a token was there;
 * - d > 0: the bucket was empty; the token is borrowed from the future
 * (the bucket goes negative), so concurrent callers of one peer queue up
 * behind each other rather than all waking at once;
 * - `undefined`: the wait would exceed `maxDelay`; nothing was spent.
 *
 * Bounds: buckets of at most `maxPeers` peers are kept; taking a token for a
 * new peer beyond that drops the bucket used longest ago. A dropped peer
 * starts again with a full bucket, so `maxPeers` should exceed the number of
 * peers that talk to a node within `burst / perSecond` seconds.
 */
export interface TokenBucketInit {
  /** Tokens a bucket holds at most (and starts with) */
  burst: number
  /** Tokens added per second */
  perSecond: number
  /** Longest wait in ms a caller is asked to take before being refused (0: never wait) */
  maxDelay: number
  /** Peers whose buckets are kept at most */
  maxPeers: number
}

interface Bucket {
  tokens: number
  at: number
}

export class PeerBuckets {
  private readonly init: TokenBucketInit
  /** insertion order is use order: a touched bucket moves to the end */
  private readonly buckets = new Map<string, Bucket>()

  constructor (init: TokenBucketInit) {
    this.init = init
  }

  get size (): number {
    return this.buckets.size
  }

  /**
   * `rate` overrides the bucket's burst and refill for this call (e.g. a
   * lower rate for peers we have no good history with); a bucket holding
   * more than that burst is cut down to it
   */
  take (peer: string, now: number, rate?: Pick<TokenBucketInit, 'burst' | 'perSecond'>): number | undefined {
    const { maxDelay, maxPeers } = this.init
    const { burst, perSecond } = rate ?? this.init
    let bucket = this.buckets.get(peer)
    if (bucket == null) {
      if (this.buckets.size >= maxPeers) {
        this.buckets.delete(this.buckets.keys().next().value as string)
      }
      bucket = { tokens: burst, at: now }
    } else {
      this.buckets.delete(peer)
      bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * perSecond / 1000)
      bucket.at = now
    }
    this.buckets.set(peer, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    const wait = (1 - bucket.tokens) * 1000 / perSecond
    if (wait > maxDelay) {
      return undefined
    }
    bucket.tokens -= 1
    return Math.ceil(wait)
  }
}

/**
 * One token bucket shared by many peers (the strangers' pool), same rules
 * as a peer's bucket: `burst` tokens at most, `perSecond` added a second.
 * `take(now, true)` spends a token and returns the wait (0, or the time the
 * borrowed token takes to come; `undefined` past `maxDelay`, nothing
 * spent); `take(now, false)` spends a token without waiting, down to a debt
 * of `maxDelay` worth of tokens, so what passes that way lengthens the waits
 * of those who do wait (and gets them refused once it alone fills the
 * rate), never by more than `maxDelay`.
 */
export class SharedBucket {
  private readonly init: Omit<TokenBucketInit, 'maxPeers'>
  private tokens: number
  private at = Number.NEGATIVE_INFINITY

  constructor (init: Omit<TokenBucketInit, 'maxPeers'>) {
    this.init = init
    this.tokens = init.burst
  }

  take (now: number, wait: boolean): number | undefined {
    const { burst, perSecond, maxDelay } = this.init
    if (this.at !== Number.NEGATIVE_INFINITY) {
      this.tokens = Math.min(burst, this.tokens + Math.max(0, now - this.at) * perSecond / 1000)
    }
    this.at = now
    if (this.tokens >= 1) {
      this.tokens -= 1
      return 0
    }
    const debt = (1 - this.tokens) * 1000 / perSecond
    if (!wait) {
      this.tokens = Math.max(this.tokens - 1, -maxDelay * perSecond / 1000)
      return 0
    }
    if (debt > maxDelay) {
      return undefined
    }
    this.tokens -= 1
    return Math.ceil(debt)
  }
}

/**
 * Counts held per peer (e.g. open inbound streams), an entry existing only
 * while its count is above zero, so the map never holds more entries than the
 * resources counted.
 */
export class PeerCounts {
  private readonly counts = new Map<string, number>()

  get size (): number {
    return this.counts.size
  }

  get (peer: string): number {
    return this.counts.get(peer) ?? 0
  }

  increment (peer: string): void {
    this.counts.set(peer, this.get(peer) + 1)
  }

  decrement (peer: string): void {
    const n = this.get(peer) - 1
    if (n > 0) {
      this.counts.set(peer, n)
    } else {
      this.counts.delete(peer)
    }
  }
}
