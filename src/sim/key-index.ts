/**
 * All node keys in sorted order: the leaves of a binary trie over the key
 * space, as one Int32Array of node indices.
 *
 * Nodes sharing a key prefix are one contiguous run of the order, so:
 * - `split(lo, hi, c)` cuts a run whose keys share bits 0..c-1 into the
 * halves with bit c clear and set (a binary search);
 * - `closest(target, k, accept)` walks the trie nearest half first and
 * returns the k accepted nodes closest to `target` by XOR distance, in
 * O(log N + k + rejected) rather than O(N): every key in the half that
 * agrees with the target at bit c is closer than every key in the other.
 *
 * Built once per world (O(N log N) comparisons); memory: an Int32Array and a
 * Float64Array of N entries (the latter only while sorting).
 */
import { compareBytes, compareDistance, KEY_BITS } from '../core/key.ts'
import type { Contact } from '../core/contact.ts'
import type { Key } from '../core/key.ts'

/** Runs this short are scanned and sorted rather than split further */
const LEAF_RUN = 32

export class KeyIndex {
  /** Node indices sorted by key */
  readonly order: Int32Array
  private readonly contacts: readonly Contact[]

  constructor (contacts: readonly Contact[]) {
    this.contacts = contacts
    const n = contacts.length
    // the first 48 bits as a number decide almost every comparison
    const head = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const k = contacts[i].key
      head[i] = ((((k[0] * 256 + k[1]) * 256 + k[2]) * 256 + k[3]) * 256 + k[4]) * 256 + k[5]
    }
    this.order = new Int32Array(n)
    for (let i = 0; i < n; i++) {
      this.order[i] = i
    }
    this.order.sort((a, b) => (head[a] - head[b]) || compareBytes(contacts[a].key, contacts[b].key))
  }

  get size (): number {
    return this.order.length
  }

  /** First position in [lo, hi) whose key has bit `c` set (keys there share bits 0..c-1) */
  split (lo: number, hi: number, c: number): number {
    while (lo < hi) {
      const m = (lo + hi) >>> 1
      if (bit(this.contacts[this.order[m]].key, c) === 0) {
        lo = m + 1
      } else {
        hi = m
      }
    }
    return lo
  }

  /** Up to `k` accepted node indices closest to `target`, nearest first */
  closest (target: Key, k: number, accept: (i: number) => boolean): number[] {
    const out: number[] = []
    this.collect(0, this.order.length, 0, target, k, accept, out)
    return out
  }

  private collect (lo: number, hi: number, c: number, target: Key, k: number, accept: (i: number) => boolean, out: number[]): void {
    if (out.length >= k || lo >= hi) {
      return
    }
    if (hi - lo <= LEAF_RUN || c >= KEY_BITS) {
      const run: number[] = []
      for (let p = lo; p < hi; p++) {
        if (accept(this.order[p])) {
          run.push(this.order[p])
        }
      }
      run.sort((a, b) => compareDistance(this.contacts[a].key, this.contacts[b].key, target))
      for (const i of run) {
        if (out.length >= k) {
          break
        }
        out.push(i)
      }
      return
    }
    const mid = this.split(lo, hi, c)
    if (bit(target, c) === 0) {
      this.collect(lo, mid, c + 1, target, k, accept, out)
      this.collect(mid, hi, c + 1, target, k, accept, out)
    } else {
      this.collect(mid, hi, c + 1, target, k, accept, out)
      this.collect(lo, mid, c + 1, target, k, accept, out)
    }
  }
}

/** Bit `c` of a key, most significant first */
export function bit (key: Uint8Array, c: number): number {
  return (key[c >> 3] >> (7 - (c & 7))) & 1
}
