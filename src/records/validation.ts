/**
 * Record validators and selectors, keyed by namespace.
 *
 * A DHT record key looks like `/<namespace>/<rest>`: `/pk/<peer id multihash>`
 * or `/ipns/<public key multihash>` (binary after the second slash). The
 * namespace picks the validator that decides whether a value may be stored
 * under the key, and the selector that picks the best of several valid values.
 * The types match `@libp2p/kad-dht`'s `ValidateFn` / `SelectFn`, and maps are
 * keyed by the namespace without slashes (`pk`, `ipns`, `v`), as there.
 *
 * Implementation notes:
 * - The value size bound is checked before any validator runs: 10 KiB by
 * default, the limit of the IPNS record specification (and of the `ipns`
 * package's own validator), so every built-in record type fits.
 * - The `ipns` validator checks an EOL record's validity against the wall
 * clock (the `ipns` package reads `Date.now()`), not against the `now` a
 * store is given; store-level expiry (`recordValidity`) uses `now`.
 * - An error thrown by a validator because `options.signal` was aborted is
 * passed through unchanged, not reported as an invalid record.
 */
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { ipnsSelector } from 'ipns/selector'
import { ipnsValidator } from 'ipns/validator'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import { toString as uint8ArrayToString } from 'uint8arrays/to-string'
import { InvalidConfigError } from '../core/routing-table/config.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Throws if `value` may not be stored under `key` (same shape as `@libp2p/kad-dht`'s) */
export type ValidateFn = (key: Uint8Array, value: Uint8Array, options?: AbortOptions) => void | Promise<void>
/** The index of the best of `records`, all valid for `key` (same shape as `@libp2p/kad-dht`'s) */
export type SelectFn = (key: Uint8Array, records: Uint8Array[]) => number | Promise<number>
/** Validators by namespace, without slashes (`pk`, `ipns`) */
export type Validators = Record<string, ValidateFn>
/** Selectors by namespace, without slashes (`pk`, `ipns`) */
export type Selectors = Record<string, SelectFn>

/** 10 KiB, the IPNS specification's record size limit */
export const DEFAULT_MAX_RECORD_SIZE = 10 * 1024

export type InvalidRecordCode = 'ERR_MISSING_NAMESPACE' | 'ERR_NO_VALIDATOR' | 'ERR_INVALID_RECORD' | 'ERR_RECORD_TOO_LARGE'

export class InvalidRecordError extends Error {
  name = 'InvalidRecordError'
  readonly code: InvalidRecordCode

  constructor (code: InvalidRecordCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/**
 * Whether `err` refused a record only because it expired: the validator
 * threw an error named `RecordExpiredError` (as the `ipns` package does once
 * a record's signature has checked out and its validity has passed). Such a
 * record was genuine when its holder stored it, so the holder is not a liar.
 */
export function isExpiredRecord (err: unknown): boolean {
  return err instanceof InvalidRecordError && (err.cause as Error | undefined)?.name === 'RecordExpiredError'
}

/** A selector threw, or returned something that is not an index of its input */
export class SelectorError extends Error {
  name = 'SelectorError'
  code = 'ERR_BAD_SELECTION'
}

const SLASH = 0x2f
const PK_PREFIX = new Uint8Array([SLASH, 0x70, 0x6b, SLASH]) // '/pk/'

/**
 * Validates a `/pk/<multihash>` record: the value is a protobuf public key
 * whose multihash is the key suffix.
 */
export function validatePublicKeyRecord (key: Uint8Array, value: Uint8Array): void {
  if (key.byteLength <= PK_PREFIX.byteLength || !uint8ArrayEquals(key.subarray(0, PK_PREFIX.byteLength), PK_PREFIX)) {
    throw new Error('key is not of the form /pk/<multihash>')
  }
  const publicKey = publicKeyFromProtobuf(value)
  if (!uint8ArrayEquals(key.subarray(PK_PREFIX.byteLength), publicKey.toMultihash().bytes)) {
    throw new Error('public key does not match the key')
  }
}

/** Public key records are all equal once valid: the first one */
export function selectPublicKeyRecord (): number {
  return 0
}

export function defaultValidators (): Validators {
  return {
    pk: validatePublicKeyRecord,
    ipns: ipnsValidator
  }
}

export function defaultSelectors (): Selectors {
  return {
    pk: selectPublicKeyRecord,
    ipns: ipnsSelector
  }
}

/** The defaults with `user` merged over them; throws {@link InvalidConfigError} on a namespace with a slash */
export function mergeValidators (user: Validators = {}): Validators {
  return mergeOver(defaultValidators(), user, 'validators')
}

/** The defaults with `user` merged over them; throws {@link InvalidConfigError} on a namespace with a slash */
export function mergeSelectors (user: Selectors = {}): Selectors {
  return mergeOver(defaultSelectors(), user, 'selectors')
}

function mergeOver<T> (defaults: Record<string, T>, user: Record<string, T>, what: string): Record<string, T> {
  const out: Record<string, T> = { ...defaults }
  for (const [ns, fn] of Object.entries(user)) {
    if (ns === '' || ns.includes('/')) {
      throw new InvalidConfigError(`${what}: namespace "${ns}" must be non-empty and have no slash (use "v", not "/v/")`)
    }
    if (typeof fn !== 'function') {
      throw new InvalidConfigError(`${what}.${ns} must be a function`)
    }
    out[ns] = fn
  }
  return out
}

/**
 * The namespace of `/<ns>/<rest>`: both parts non-empty, else
 * {@link InvalidRecordError} `ERR_MISSING_NAMESPACE`.
 */
export function namespaceOf (key: Uint8Array): string {
  const end = key[0] === SLASH ? key.indexOf(SLASH, 1) : -1
  if (end < 2 || end === key.byteLength - 1) {
    throw new InvalidRecordError('ERR_MISSING_NAMESPACE', 'record key is not of the form /<namespace>/<key>')
  }
  return uint8ArrayToString(key.subarray(1, end))
}

export interface ValidateRecordOptions extends AbortOptions {
  /**
   * Largest value accepted, in bytes.
   *
   * @default 10240 (DEFAULT_MAX_RECORD_SIZE, 10 KiB)
   */
  maxRecordSize?: number
}

/**
 * Throws {@link InvalidRecordError} unless `value` may be stored under `key`:
 * `ERR_MISSING_NAMESPACE`, `ERR_RECORD_TOO_LARGE`, `ERR_NO_VALIDATOR`, or
 * `ERR_INVALID_RECORD` with the validator's error as `cause`.
 */
export async function validateRecord (validators: Validators, key: Uint8Array, value: Uint8Array, options: ValidateRecordOptions = {}): Promise<void> {
  options.signal?.throwIfAborted()
  const ns = namespaceOf(key)
  const max = options.maxRecordSize ?? DEFAULT_MAX_RECORD_SIZE
  if (value.byteLength > max) {
    throw new InvalidRecordError('ERR_RECORD_TOO_LARGE', `record value of ${value.byteLength} bytes is over the ${max} byte limit`)
  }
  const validator = Object.hasOwn(validators, ns) ? validators[ns] : undefined
  if (validator == null) {
    throw new InvalidRecordError('ERR_NO_VALIDATOR', `no validator for namespace "${ns}"`)
  }
  try {
    await validator(key, value, { signal: options.signal })
  } catch (err) {
    if (options.signal?.aborted === true) {
      throw err
    }
    throw new InvalidRecordError('ERR_INVALID_RECORD', `invalid "${ns}" record: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  }
}

/**
 * The index of the best of `values` (all already valid for `key`). With one
 * value, or no selector for the namespace, that is 0. Throws
 * {@link InvalidRecordError} `ERR_MISSING_NAMESPACE` for a malformed key,
 * `RangeError` for no values, {@link SelectorError} if the selector throws or
 * returns a non-index.
 */
export async function selectBest (selectors: Selectors, key: Uint8Array, values: Uint8Array[]): Promise<number> {
  const ns = namespaceOf(key)
  if (values.length === 0) {
    throw new RangeError('no records to select from')
  }
  const selector = Object.hasOwn(selectors, ns) ? selectors[ns] : undefined
  if (selector == null || values.length === 1) {
    return 0
  }
  let index: number
  try {
    index = await selector(key, values)
  } catch (err) {
    throw new SelectorError(`"${ns}" selector failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  }
  if (!Number.isInteger(index) || index < 0 || index >= values.length) {
    throw new SelectorError(`"${ns}" selector returned ${String(index)} for ${values.length} records`)
  }
  return index
}
