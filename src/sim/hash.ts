/**
 * Stateless hashing for the simulator.
 *
 * - `mix32` / `hash32`: deterministic 32-bit values derived from a seed and
 * some integers. Used where a value must not depend on the order in which
 * the simulation asks for it: per-pair round-trip times and per-node seeds
 * (so a node built lazily on first contact is identical to one built
 * eagerly at the start).
 * - `TraceHash`: a running 64-bit (two 32-bit lanes) hash of everything the
 * event loop processes. Same seed, same configuration: same trace hash.
 *
 * Not cryptographic; these only need to spread bits well and be fast.
 */

/** The murmur3 32-bit finaliser: a bijection on 32-bit integers */
export function mix32 (x: number): number {
  x = x >>> 0
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

/** A 32-bit hash of a seed and any number of 32-bit integers, order-sensitive */
export function hash32 (seed: number, ...values: number[]): number {
  let h = mix32(seed ^ 0x9e3779b9)
  for (const v of values) {
    h = mix32(h ^ Math.imul(v >>> 0, 0xcc9e2d51) ^ (v / 4294967296 >>> 0))
    h = (Math.imul(h, 5) + 0xe6546b64) >>> 0
  }
  return mix32(h)
}

/** A float in [0, 1) from a 32-bit hash */
export function unitFloat (h: number): number {
  return (h >>> 0) / 4294967296
}

/**
 * A running hash of the trace: feed it integers (times are rounded to
 * microseconds, so fractional virtual times still hash exactly).
 */
export class TraceHash {
  private a = 0x811c9dc5
  private b = 0x1b873593
  private n = 0

  /** Adds an integer (or a time in ms) to the trace */
  add (value: number): void {
    const v = Math.round(value * 1000)
    const lo = v >>> 0
    const hi = Math.floor(v / 4294967296) >>> 0
    this.a = Math.imul(this.a ^ lo, 0x01000193) >>> 0
    this.a = Math.imul(this.a ^ hi, 0x01000193) >>> 0
    this.b = mix32(this.b ^ lo ^ Math.imul(hi, 0x27d4eb2f) ^ this.n)
    this.n = (this.n + 1) >>> 0
  }

  /** Adds every character code of a short label */
  addString (s: string): void {
    for (let i = 0; i < s.length; i++) {
      this.add(s.charCodeAt(i))
    }
  }

  /** Number of values added */
  get count (): number {
    return this.n
  }

  /** 16 lower-case hex digits */
  digest (): string {
    return mix32(this.a ^ this.n).toString(16).padStart(8, '0') + mix32(this.b ^ this.a).toString(16).padStart(8, '0')
  }
}
