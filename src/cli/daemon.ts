/**
 * `priority-dht daemon`: a libp2p node with priority-dht, served over the
 * libp2p daemon protocol (`@libp2p/daemon-server`) on `--api`, with
 * Prometheus metrics and a JSON `/stats` on a loopback HTTP port.
 *
 * Its first line on stdout is one JSON object, `{ peerId, listen, api,
 * metrics }`, for scripts; everything after goes to stderr.
 */
import { createServer as createHttpServer } from 'node:http'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { createServer } from '@libp2p/daemon-server'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { tcp } from '@libp2p/tcp'
import { CODE_P2P } from '@multiformats/multiaddr'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { createLibp2p } from 'libp2p'
import { Registry } from 'prom-client'
import { passthroughMapper, priorityDHT } from '../index.ts'
import { daemonDHT } from './adapter.ts'
import { parseApiAddr, parseInteger, parseMultiaddr } from './args.ts'
import { DEFAULT_API, DEFAULT_LISTEN } from './defaults.ts'
import { UsageError } from './errors.ts'
import type { Io } from './io.ts'
import type { PriorityDHT } from '../libp2p/service.ts'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Datastore } from 'interface-datastore'
import type { Server as HttpServer } from 'node:http'

/** Where the daemon keeps its private key in `--datastore`, so its peer id survives restarts */
const SELF_KEY = new Key('/priority-dht/cli/self-key')
/** How often the daemon dials its bootstrap peers again while its routing table is empty */
const REBOOTSTRAP_INTERVAL = 10_000

export interface DaemonOptions {
  listen: Multiaddr[]
  bootstrap: Multiaddr[]
  api: Multiaddr
  datastore?: string
  clientMode?: boolean
  metricsPort?: number
  privateAddrs: boolean
  k?: number
}

/** The daemon's flags after parseArgs, checked */
export function daemonOptions (values: Record<string, string | boolean | string[] | undefined>): DaemonOptions {
  const list = (name: string): string[] => (values[name] as string[] | undefined) ?? []
  if (values.client === true && values.server === true) {
    throw new UsageError('--client and --server exclude each other')
  }
  const bootstrap = list('bootstrap').map(a => parseMultiaddr(a, '--bootstrap'))
  for (const addr of bootstrap) {
    if (!addr.getComponents().some(c => c.code === CODE_P2P)) {
      throw new UsageError(`--bootstrap: ${addr.toString()} has no /p2p/PEERID`)
    }
  }
  const listen = list('listen')
  return {
    listen: (listen.length > 0 ? listen : [DEFAULT_LISTEN]).map(a => parseMultiaddr(a, '--listen')),
    bootstrap,
    api: parseApiAddr((values.api as string | undefined) ?? DEFAULT_API),
    datastore: values.datastore as string | undefined,
    clientMode: values.client === true || (values.server === true ? false : undefined),
    metricsPort: values['metrics-port'] == null ? undefined : parseInteger(values['metrics-port'] as string, '--metrics-port', 0, 0, 65535),
    privateAddrs: values['private-addrs'] === true,
    k: values.k == null ? undefined : parseInteger(values.k as string, '--k', 20, 1, 1000)
  }
}

type Node = Libp2p<{ dht: PriorityDHT }>

/** What `/stats` serves */
export function stats (node: Node): Record<string, unknown> {
  const dht = node.services.dht
  return {
    peerId: node.peerId.toString(),
    mode: dht.getMode(),
    k: dht.k,
    routingTable: { size: dht.routingTable.size },
    connections: node.getConnections().length,
    reproviding: dht.reproviding,
    usage: dht.usage(),
    inbound: dht.inbound,
    regionCache: dht.regionCache ?? null,
    provideBatching: dht.provideBatching ?? null
  }
}

async function selfKey (datastore: Datastore | undefined): Promise<PrivateKey> {
  if (datastore != null && await datastore.has(SELF_KEY)) {
    return privateKeyFromProtobuf(await datastore.get(SELF_KEY))
  }
  const key = await generateKeyPair('Ed25519')
  await datastore?.put(SELF_KEY, privateKeyToProtobuf(key))
  return key
}

async function listenHttp (server: HttpServer, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address != null ? address.port : port)
    })
  })
}

/**
 * Runs the daemon until SIGINT or SIGTERM (or `signal`), then stops the node,
 * the API and HTTP listeners and the datastore, and resolves with exit code 0
 */
export async function runDaemon (options: DaemonOptions, io: Io, signal?: AbortSignal): Promise<number> {
  let datastore: LevelDatastore | undefined
  if (options.datastore != null) {
    datastore = new LevelDatastore(options.datastore)
    try {
      await datastore.open()
    } catch (err: any) {
      throw new UsageError(`--datastore: cannot open ${options.datastore}: ${err.message}`, { cause: err })
    }
  }
  const registry = new Registry()
  const node: Node = await createLibp2p({
    start: false,
    privateKey: await selfKey(datastore),
    ...(datastore != null ? { datastore } : {}),
    addresses: { listen: options.listen.map(a => a.toString()) },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(options.metricsPort != null ? { metrics: prometheusMetrics({ registry }) } : {}),
    services: {
      identify: identify(),
      ping: ping(),
      dht: priorityDHT({
        clientMode: options.clientMode,
        kBucketSize: options.k,
        provideBatching: {},
        ...(options.privateAddrs ? { peerInfoMapper: passthroughMapper } : {})
      })
    }
  })

  // the daemon server only reads these members of the node; services.dht is our adapter
  const served = {
    peerId: node.peerId,
    peerStore: node.peerStore,
    start: async () => node.start(),
    stop: async () => node.stop(),
    dial: node.dial.bind(node),
    handle: node.handle.bind(node),
    getMultiaddrs: node.getMultiaddrs.bind(node),
    getConnections: node.getConnections.bind(node),
    services: { dht: daemonDHT(node.services.dht, node.contentRouting) }
  }
  const api = createServer(options.api, served as unknown as Parameters<typeof createServer>[1])
  // the daemon server adds SIGINT/SIGTERM/SIGHUP handlers that stop it without exiting; we shut down ourselves
  const before = new Map(['SIGINT', 'SIGTERM', 'SIGHUP'].map(s => [s, new Set(process.listeners(s as NodeJS.Signals))]))
  try {
    await node.start()
  } catch (err: any) {
    await datastore?.close()
    throw new UsageError(`--listen: cannot start the node on ${options.listen.join(' ')}: ${err.message}`, { cause: err })
  }
  try {
    // starts the API listener (the node is started already)
    await api.start()
  } catch (err: any) {
    await node.stop()
    await datastore?.close()
    throw new UsageError(`--api: cannot listen on ${options.api.toString()}: ${err.message}`, { cause: err })
  }
  for (const [name, had] of before) {
    for (const listener of process.listeners(name as NodeJS.Signals)) {
      if (!had.has(listener)) {
        process.off(name, listener)
      }
    }
  }

  let http: HttpServer | undefined
  let metricsPort: number | undefined
  if (options.metricsPort != null) {
    http = createHttpServer((req, res) => {
      void (async () => {
        if (req.url === '/metrics') {
          res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics())
        } else if (req.url === '/stats') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats(node)))
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /stats\n')
        }
      })().catch(err => { res.writeHead(500).end(String(err)) })
    })
    metricsPort = await listenHttp(http, options.metricsPort)
  }

  const bootstrap = async (): Promise<void> => {
    const results = await Promise.allSettled(options.bootstrap.map(async addr => node.dial(addr)))
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        io.stderr(`bootstrap ${options.bootstrap[i].toString()} failed: ${r.reason?.message ?? r.reason}\n`)
      }
    })
  }
  await bootstrap()
  const rebootstrap = setInterval(() => {
    if (options.bootstrap.length > 0 && node.services.dht.routingTable.size === 0) {
      void bootstrap()
    }
  }, REBOOTSTRAP_INTERVAL)

  io.stdout(JSON.stringify({
    peerId: node.peerId.toString(),
    listen: node.getMultiaddrs().map(a => a.toString()),
    api: api.getMultiaddr().toString(),
    metrics: metricsPort == null ? null : `http://127.0.0.1:${metricsPort}`
  }) + '\n')

  let onSignal = (_name: string): void => {}
  const stopped = await new Promise<string>(resolve => {
    onSignal = resolve
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    signal?.addEventListener('abort', () => { resolve('abort') }, { once: true })
  })
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  io.stderr(`${stopped}: stopping\n`)
  clearInterval(rebootstrap)
  await api.stop()
  if (http != null) {
    const closed = new Promise(resolve => http?.close(resolve))
    http.closeAllConnections()
    await closed
  }
  await datastore?.close()
  io.stderr('stopped\n')
  return 0
}
