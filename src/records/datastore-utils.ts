/**
 * Small helpers shared by the datastore-backed record stores.
 */
import { InvalidConfigError } from '../core/routing-table/config.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { Datastore, Key } from 'interface-datastore'

/** `datastore.get`, with `undefined` for a missing key instead of a NotFoundError */
export async function getOrUndefined (datastore: Datastore, key: Key, options?: AbortOptions): Promise<Uint8Array | undefined> {
  try {
    return await datastore.get(key, options)
  } catch (err: any) {
    if (err?.name === 'NotFoundError' || err?.code === 'ERR_NOT_FOUND') {
      return undefined
    }
    throw err
  }
}

/** A datastore prefix: starts with `/`, has no empty segment and no trailing `/` */
export function checkPrefix (name: string, prefix: unknown): string {
  if (typeof prefix !== 'string' || !/^(\/[^/]+)+$/.test(prefix)) {
    throw new InvalidConfigError(`${name} must look like "/a/b" (leading slash, no trailing slash), got ${String(prefix)}`)
  }
  return prefix
}

/** A time in milliseconds as 8 bytes, big-endian unsigned */
export function encodeTime (ms: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, Math.floor(ms))))
  return out
}

/** The inverse of {@link encodeTime}; `undefined` for anything that is not 8 bytes */
export function decodeTime (bytes: Uint8Array): number | undefined {
  if (bytes.byteLength !== 8) {
    return undefined
  }
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0))
}

/** `now` must be a finite, non-negative number of milliseconds */
export function checkTime (now: number): void {
  if (!Number.isFinite(now) || now < 0) {
    throw new RangeError(`now must be a finite, non-negative number of milliseconds, got ${now}`)
  }
}
