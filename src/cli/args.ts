/**
 * Turns command-line strings into CIDs, peer ids, DHT keys, multiaddrs and
 * numbers, or throws a `UsageError` that says what was wrong and where.
 */
import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { concat as uint8ArrayConcat } from 'uint8arrays/concat'
import { fromString as uint8ArrayFromString } from 'uint8arrays/from-string'
import { UsageError } from './errors.ts'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export function parseCid (text: string, where = 'CID'): CID {
  try {
    return CID.parse(text.trim())
  } catch (err) {
    throw new UsageError(`${where}: not a CID: ${JSON.stringify(text)}`, { cause: err })
  }
}

export function parsePeerId (text: string, where = 'PEERID'): PeerId {
  try {
    return peerIdFromString(text.trim())
  } catch (err) {
    throw new UsageError(`${where}: not a peer id: ${JSON.stringify(text)}`, { cause: err })
  }
}

export function parseMultiaddr (text: string, where: string): Multiaddr {
  try {
    return multiaddr(text)
  } catch (err) {
    throw new UsageError(`${where}: not a multiaddr: ${JSON.stringify(text)}`, { cause: err })
  }
}

/**
 * The daemon's API address: a TCP multiaddr, or `/unix/PATH` with PATH an
 * absolute path written plainly (`/unix/tmp/dht.sock` is /tmp/dht.sock) or
 * percent-encoded as multiaddr prints it (`/unix/%2Ftmp%2Fdht.sock`)
 */
export function parseApiAddr (text: string, where = '--api'): Multiaddr {
  if (text.startsWith('/unix/')) {
    let path: string
    try {
      path = decodeURIComponent(text.slice('/unix/'.length))
    } catch (err) {
      throw new UsageError(`${where}: bad unix socket path in ${JSON.stringify(text)}`, { cause: err })
    }
    return parseMultiaddr(`/unix/${encodeURIComponent(path.startsWith('/') ? path : `/${path}`)}`, where)
  }
  return parseMultiaddr(text, where)
}

/** A whole number in [min, max] */
export function parseInteger (text: string | undefined, where: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (text == null) {
    return fallback
  }
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${where}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`)
  }
  return n
}

/**
 * A DHT record key: `/ipns/NAME` (NAME a peer id or a libp2p-key CID, as the
 * IPNS routing key `/ipns/` + multihash bytes), `/pk/PEERID` (likewise), or
 * any other `/namespace/rest`, taken as its UTF-8 bytes.
 */
export function parseRecordKey (text: string, where = 'KEY'): Uint8Array {
  const match = /^\/([^/]+)\/(.+)$/.exec(text)
  if (match == null) {
    throw new UsageError(`${where}: expected /ipns/NAME, /pk/PEERID or /namespace/key, got ${JSON.stringify(text)}`)
  }
  const [, ns, rest] = match
  if (ns === 'ipns' || ns === 'pk') {
    const id = parsePeerId(rest, where)
    return uint8ArrayConcat([uint8ArrayFromString(`/${ns}/`), id.toMultihash().bytes])
  }
  return uint8ArrayFromString(text)
}

/**
 * A lookup key for `closest`: a record key (`/ns/...`, as parseRecordKey), a
 * CID (its multihash, as providers are keyed) or a peer id (its multihash, as
 * FIND_NODE asks for a peer)
 */
export function parseLookupKey (text: string, where = 'KEY'): Uint8Array {
  if (text.startsWith('/')) {
    return parseRecordKey(text, where)
  }
  try {
    return CID.parse(text).multihash.bytes
  } catch {
    // not a CID: perhaps a peer id
  }
  try {
    return peerIdFromString(text).toMultihash().bytes
  } catch {
    // neither
  }
  throw new UsageError(`${where}: expected a CID, a peer id or a /namespace/key, got ${JSON.stringify(text)}`)
}

/**
 * CIDs from a file, one per line; blank lines and lines starting with `#`
 * are skipped. Every line is checked before any is returned.
 */
export async function readCidFile (path: string): Promise<CID[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new UsageError(`--file: cannot read ${path}: ${err.code ?? err.message}`, { cause: err })
  }
  const cids: CID[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) {
      continue
    }
    cids.push(parseCid(line, `${path}:${i + 1}`))
  }
  return cids
}
