/**
 * The commands that talk to a running daemon over the libp2p daemon
 * protocol (`@libp2p/daemon-client`), and `stats`, which reads the
 * daemon's HTTP `/stats` (or `/metrics`).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { createClient } from '@libp2p/daemon-client'
import { parseCid, parseInteger, parseLookupKey, parsePeerId, parseRecordKey, readCidFile } from './args.ts'
import { DaemonUnreachableError, OperationFailedError, UsageError } from './errors.ts'
import { Progress } from './progress.ts'
import type { Io } from './io.ts'
import type { DaemonClient } from '@libp2p/daemon-client'
import type { PeerInfo } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { CID } from 'multiformats/cid'

export type Values = Record<string, string | boolean | string[] | undefined>

export interface ClientContext {
  api: Multiaddr
  /** Milliseconds one operation may take */
  timeout: number
  io: Io
}

/** A client for the daemon at `api`, once it has answered an IDENTIFY */
export async function connect (api: Multiaddr): Promise<DaemonClient> {
  const client = createClient(api)
  try {
    await client.identify()
  } catch (err: any) {
    throw new DaemonUnreachableError(`cannot reach the daemon at ${api.toString()}: ${err.message ?? err}`, { cause: err })
  }
  return client
}

/** `work`, or an OperationFailedError naming `what` when it fails or takes longer than `ms` */
async function operation <T> (what: string, ms: number, work: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new OperationFailedError(`${what}: timed out after ${ms / 1000} s`)) }, ms)
  })
  try {
    return await Promise.race([work(), timeout])
  } catch (err: any) {
    if (err instanceof OperationFailedError) {
      throw err
    }
    throw new OperationFailedError(`${what}: ${err.message ?? err}`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

function peerLine (peer: PeerInfo): string {
  return [peer.id.toString(), ...peer.multiaddrs.map(a => a.toString())].join(' ') + '\n'
}

function onePositional (positionals: string[], name: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(`expected one ${name}, got ${positionals.length}`)
  }
  return positionals[0]
}

export async function provide (ctx: ClientContext, values: Values, positionals: string[]): Promise<number> {
  const file = values.file as string | undefined
  if ((file == null) === (positionals.length === 0) || positionals.length > 1) {
    throw new UsageError('expected one CID or --file FILE')
  }
  const cids: CID[] = file != null ? await readCidFile(file) : [parseCid(positionals[0])]
  const concurrency = parseInteger(values.concurrency as string | undefined, '--concurrency', 32, 1, 1024)
  const client = await connect(ctx.api)
  const started = performance.now()
  const progress = cids.length > 1 ? new Progress(ctx.io, 'provide', cids.length) : undefined
  const failed: Array<{ cid: CID, error: string }> = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < cids.length) {
      const cid = cids[next++]
      try {
        await operation(`provide ${cid.toString()}`, ctx.timeout, async () => client.dht.provide(cid))
        progress?.tick(true)
      } catch (err: any) {
        failed.push({ cid, error: err.message })
        progress?.tick(false)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, cids.length) }, worker))
  for (const f of failed) {
    ctx.io.stderr(`${f.error}\n`)
  }
  const ms = Math.round(performance.now() - started)
  ctx.io.stdout(JSON.stringify({ provided: cids.length - failed.length, failed: failed.length, ms }) + '\n')
  return failed.length === 0 ? 0 : 1
}

export async function findProviders (ctx: ClientContext, values: Values, positionals: string[]): Promise<number> {
  const cid = parseCid(onePositional(positionals, 'CID'))
  const count = parseInteger(values.count as string | undefined, '--count', 20, 1, 1000)
  const client = await connect(ctx.api)
  const found = await operation(`find-providers ${cid.toString()}`, ctx.timeout, async () => {
    const providers: PeerInfo[] = []
    for await (const provider of client.dht.findProviders(cid, count)) {
      providers.push(provider)
      ctx.io.stdout(peerLine(provider))
      if (providers.length >= count) {
        break
      }
    }
    return providers.length
  })
  if (found === 0) {
    throw new OperationFailedError(`find-providers ${cid.toString()}: no providers found`)
  }
  return 0
}

export async function put (ctx: ClientContext, _values: Values, positionals: string[]): Promise<number> {
  if (positionals.length !== 2) {
    throw new UsageError(`expected KEY VALUE-FILE, got ${positionals.length} arguments`)
  }
  const key = parseRecordKey(positionals[0])
  let value: Uint8Array
  try {
    value = await readFile(positionals[1])
  } catch (err: any) {
    throw new UsageError(`VALUE-FILE: cannot read ${positionals[1]}: ${err.code ?? err.message}`, { cause: err })
  }
  const client = await connect(ctx.api)
  await operation(`put ${positionals[0]}`, ctx.timeout, async () => client.dht.put(key, value))
  return 0
}

export async function get (ctx: ClientContext, values: Values, positionals: string[]): Promise<number> {
  const text = onePositional(positionals, 'KEY')
  const key = parseRecordKey(text)
  const client = await connect(ctx.api)
  const value = await operation(`get ${text}`, ctx.timeout, async () => client.dht.get(key))
  if (values.out != null) {
    await writeFile(values.out as string, value)
  } else {
    ctx.io.stdout(value)
  }
  return 0
}

export async function findPeer (ctx: ClientContext, _values: Values, positionals: string[]): Promise<number> {
  const peer = parsePeerId(onePositional(positionals, 'PEERID'))
  const client = await connect(ctx.api)
  const info = await operation(`find-peer ${peer.toString()}`, ctx.timeout, async () => client.dht.findPeer(peer))
  ctx.io.stdout(peerLine(info))
  return 0
}

export async function closest (ctx: ClientContext, _values: Values, positionals: string[]): Promise<number> {
  const text = onePositional(positionals, 'KEY')
  const key = parseLookupKey(text)
  const client = await connect(ctx.api)
  const seen = await operation(`closest ${text}`, ctx.timeout, async () => {
    const ids = new Set<string>()
    for await (const peer of client.dht.getClosestPeers(key)) {
      const id = peer.id.toString()
      if (!ids.has(id)) {
        ids.add(id)
        ctx.io.stdout(`${id}\n`)
      }
    }
    return ids.size
  })
  if (seen === 0) {
    throw new OperationFailedError(`closest ${text}: no peers answered`)
  }
  return 0
}

export async function stats (ctx: Pick<ClientContext, 'io' | 'timeout'>, values: Values): Promise<number> {
  if (values['metrics-port'] == null) {
    throw new UsageError('stats needs --metrics-port PORT (the daemon\'s --metrics-port)')
  }
  const port = parseInteger(values['metrics-port'] as string, '--metrics-port', 0, 1, 65535)
  const url = `http://127.0.0.1:${port}/${values.prometheus === true ? 'metrics' : 'stats'}`
  let response: Response
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(ctx.timeout) })
  } catch (err: any) {
    throw new DaemonUnreachableError(`cannot reach the daemon's metrics at ${url}: ${err.cause?.code ?? err.message}`, { cause: err })
  }
  if (!response.ok) {
    throw new OperationFailedError(`${url}: HTTP ${response.status}`)
  }
  const body = await response.text()
  ctx.io.stdout(values.prometheus === true ? body : JSON.stringify(JSON.parse(body), null, 2) + '\n')
  return 0
}
