/**
 * Kademlia keys: 256-bit identifiers compared by XOR distance.
 *
 * A key is the sha256 digest of a peer id's multihash bytes or of a record key,
 * as in the libp2p Kademlia specification. Hashing happens at the boundary (the
 * adapter or the simulator); the core only handles the 32-byte digests.
 */

export const KEY_BYTES = 32
export const KEY_BITS = KEY_BYTES * 8

export type Key = Uint8Array

export class InvalidKeyError extends Error {
  name = 'InvalidKeyError'
  code = 'ERR_INVALID_KEY'
}

export function assertKey (key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.byteLength !== KEY_BYTES) {
    throw new InvalidKeyError(`a key must be ${KEY_BYTES} bytes, got ${key?.byteLength}`)
  }
}

/** The XOR of two keys */
export function xor (a: Key, b: Key): Uint8Array {
  const out = new Uint8Array(a.length)
  for (let i = 0; i < a.length; i++) {
    out[i] = a[i] ^ b[i]
  }
  return out
}

/**
 * Compares the distances of `a` and `b` to `target` without allocating.
 * Negative when `a` is closer, positive when `b` is closer, 0 when equal.
 */
export function compareDistance (a: Key, b: Key, target: Key): number {
  for (let i = 0; i < target.length; i++) {
    const da = a[i] ^ target[i]
    const db = b[i] ^ target[i]
    if (da !== db) {
      return da - db
    }
  }
  return 0
}

/**
 * Whether any of `named` is strictly nearer `target` than `responder`: an
 * answer that moves a lookup on. With complete tables an honest peer names
 * one whenever a nearer peer exists; one that names only far peers or itself
 * does not.
 */
export function namesCloser (target: Key, responder: Key, named: Iterable<Key>): boolean {
  for (const key of named) {
    if (key.length === target.length && compareDistance(key, responder, target) < 0) {
      return true
    }
  }
  return false
}

/** Compares two byte strings as big-endian unsigned integers */
export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) {
      return a[i] - b[i]
    }
  }
  return a.length - b.length
}

export function keysEqual (a: Key, b: Key): boolean {
  return a.length === b.length && compareBytes(a, b) === 0
}

/** Number of leading bits `a` and `b` share (KEY_BITS when equal) */
export function commonPrefixLength (a: Key, b: Key): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] ^ b[i]
    if (x !== 0) {
      return i * 8 + Math.clz32(x) - 24
    }
  }
  return a.length * 8
}

/**
 * A key that shares exactly `cpl` leading bits with `self`: the first `cpl`
 * bits copied, bit `cpl` flipped, the rest taken from `random` (which must be
 * `self.length` bytes and is overwritten).
 */
export function keyWithPrefixLength (self: Key, cpl: number, random: Uint8Array): Key {
  if (cpl < 0 || cpl >= self.length * 8) {
    throw new RangeError(`common prefix length must be in [0, ${self.length * 8}), got ${cpl}`)
  }
  const out = random
  const byte = cpl >> 3
  const bit = cpl & 7
  for (let i = 0; i < byte; i++) {
    out[i] = self[i]
  }
  const keepMask = (0xff << (8 - bit)) & 0xff
  const flip = 0x80 >> bit
  out[byte] = ((self[byte] & keepMask) | (out[byte] & ~keepMask & 0xff)) & ~flip & 0xff
  out[byte] |= (self[byte] & flip) ^ flip
  return out
}

/** Lower-case hex of a key, for logs and map keys in tests */
export function keyToHex (key: Key): string {
  let s = ''
  for (let i = 0; i < key.length; i++) {
    s += key[i].toString(16).padStart(2, '0')
  }
  return s
}
