/**
 * Time and randomness for the pure core.
 *
 * Nothing under `src/core/` reads the wall clock, schedules timers or calls
 * `Math.random`. Time arrives as an argument (`now`, milliseconds on whatever
 * epoch the driver chooses) and randomness through a {@link Random} handed in at
 * construction. The libp2p adapter passes a system clock and a seed drawn from
 * the operating system; the simulator passes a virtual clock and a fixed seed,
 * so the same seed always produces the same trace.
 */

/** Milliseconds. The core never assumes a particular epoch. */
export type Millis = number

export interface Clock {
  now(): Millis
}

export interface Random {
  /** A float in [0, 1) */
  float(): number
  /** An integer in [0, n) for 0 < n <= 2^32 */
  int(n: number): number
  /** Fills `out` with random bytes and returns it */
  fill(out: Uint8Array): Uint8Array
}

/**
 * A small, fast, seedable generator (xoshiro128**, 128 bits of state, seeded
 * through splitmix32). Good statistical quality for simulation and tie
 * breaking; not a cryptographic source, and the core never needs one.
 */
export class SeededRandom implements Random {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: number) {
    let s = seed >>> 0
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    if ((this.a | this.b | this.c | this.d) === 0) {
      this.a = 1
    }
  }

  /** The next 32 random bits as an unsigned integer */
  uint32 (): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0
    const t = this.b << 9
    this.c ^= this.a
    this.d ^= this.b
    this.b ^= this.c
    this.a ^= this.d
    this.c ^= t
    this.d = rotl(this.d, 11)
    return result
  }

  float (): number {
    return this.uint32() / 4294967296
  }

  int (n: number): number {
    if (!(n > 0 && n <= 4294967296)) {
      throw new RangeError(`int(n) needs 0 < n <= 2^32, got ${n}`)
    }
    return Math.floor(this.float() * n)
  }

  fill (out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const r = this.uint32()
      out[i] = r & 0xff
      if (i + 1 < out.length) { out[i + 1] = (r >>> 8) & 0xff }
      if (i + 2 < out.length) { out[i + 2] = (r >>> 16) & 0xff }
      if (i + 3 < out.length) { out[i + 3] = (r >>> 24) & 0xff }
    }
    return out
  }

  /** An independent generator derived from this one, for a sub-component */
  fork (): SeededRandom {
    return new SeededRandom(this.uint32())
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

/** Exhaustiveness check for discriminated unions */
export function assertNever (x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`)
}
