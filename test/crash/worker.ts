/**
 * The process the crash harness kills: one priority-dht node on a
 * datastore-level store in `dir`, dialled to the harness's peers, doing one
 * kind of work until it is SIGKILLed (or, in `verify`, until told to stop).
 *
 * Run: `node --experimental-transform-types --no-warnings test/crash/worker.ts '<json WorkerArgs>'`
 *
 * Lines on stdout (a pipe: synchronous writes on Linux, so a line written is
 * a line the parent reads, even when the kill follows at once):
 * - `ready <reproviding>`: started on the datastore, `<reproviding>` keys scheduled
 * - `done <base32 multihash>`: provideMany reported the key delivered
 * (onDelivered), which it does only after the key was stored and scheduled
 * - `put <base32 record key>`: `dht.put` of an IPNS record resolved
 * - `sweep <n>`: a republish sweep started (n-th since start)
 * - `save <n>`: a write of the peer values began
 */
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { LevelDatastore } from 'datastore-level'
import { createIPNSRecord, marshalIPNSRecord, multihashToIPNSRoutingKey } from 'ipns'
import { createLibp2p } from 'libp2p'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { SeededRandom } from '../../src/core/env.ts'
import { passthroughMapper, priorityDHT } from '../../src/index.ts'
import { localNodeOptions } from '../libp2p/fixtures/network.ts'
import type { OurNode } from '../libp2p/fixtures/network.ts'
import type { Datastore, Key } from 'interface-datastore'

export type WorkerMode = 'provide' | 'republish' | 'peer-values' | 'verify'

export interface WorkerArgs {
  dir: string
  /** hex protobuf of the node's private key (the same id on every restart) */
  key: string
  peers: string[]
  mode: WorkerMode
  /** distinguishes the CIDs and records of each run */
  run: number
  seed: number
  republishInterval: number
  /** keys per provideMany call, and per bulk chunk */
  batch: number
  chunk: number
}

function line (text: string): void {
  process.stdout.write(text + '\n')
}

/** The datastore, with a line when a peer-value save begins */
function watchSaves (ds: Datastore): Datastore {
  let saves = 0
  const put = ds.put.bind(ds)
  ds.put = async (key: Key, value: Uint8Array, options?: any) => {
    if (key.toString() === '/dht/peer-stack') {
      line(`save ${++saves}`)
    }
    return put(key, value, options)
  }
  return ds
}

async function main (): Promise<void> {
  const args: WorkerArgs = JSON.parse(process.argv[2])
  // a harness that died without killing us (a test runner stopped mid-run)
  // leaves us to init: the peer-values mode would loop for ever
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) {
      process.exit(3)
    }
  }, 1000).unref()
  const ds = new LevelDatastore(`${args.dir}/ds`)
  await ds.open()
  const privateKey = privateKeyFromProtobuf(Buffer.from(args.key, 'hex'))
  const node = await createLibp2p(localNodeOptions(priorityDHT({
    clientMode: false,
    peerInfoMapper: passthroughMapper,
    kBucketSize: 4,
    seed: args.seed,
    bulk: { chunkSize: args.chunk },
    // sweeps of only the keys due (many small ones) give the republish mode
    // kills mid-sweep; the verify run takes every key due within one interval
    // per sweep, so "two sweeps" is two passes over every key
    reprovide: { schedule: { republishInterval: args.republishInterval, jitter: 0 }, sweepWindow: args.mode === 'verify' ? args.republishInterval : 0 },
    peerValues: { saveInterval: args.mode === 'peer-values' ? 5 : 200 }
  }), { privateKey, datastore: watchSaves(ds) })) as unknown as OurNode
  const dht = node.services.dht
  line(`ready ${dht.reproviding}`)
  for (const addr of args.peers) {
    await node.dial(multiaddr(addr)).catch(() => {})
  }
  let sweeps = 0
  setInterval(() => {
    const ops = dht.usage().purposes.republish.operations
    while (sweeps < ops) {
      line(`sweep ${++sweeps}`)
    }
  }, 5)
  const random = new SeededRandom(args.seed)
  if (args.mode === 'provide') {
    for (let call = 0; ; call++) {
      const cids = await Promise.all(Array.from({ length: args.batch }, async (_, i) =>
        CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`crash ${args.seed} ${args.run} ${call} ${i}`)))))
      await dht.provideMany(cids, { onDelivered: key => { line(`done ${base32.encode(key)}`) } })
      const { generateKeyPair } = await import('@libp2p/crypto/keys')
      const owner = await generateKeyPair('Ed25519')
      const key = multihashToIPNSRoutingKey(owner.publicKey.toMultihash())
      const value = marshalIPNSRecord(await createIPNSRecord(owner, `/ipfs/bafkqaaa/${args.run}/${call}`, call, 24 * 60 * 60_000))
      for await (const event of dht.put(key, value)) { void event }
      line(`put ${base32.encode(key)}`)
    }
  }
  if (args.mode === 'peer-values') {
    // lookups of random keys: every answer is an observation, every 5 ms a save
    for (;;) {
      const key = random.fill(new Uint8Array(32))
      for await (const event of dht.getClosestPeers(key)) { void event }
    }
  }
  // republish and verify: the republisher's timer does the work; verify stops on stdin's end
  process.stdin.resume()
  process.stdin.on('end', () => {
    void (async () => {
      await node.stop()
      await ds.close()
      process.exit(0)
    })()
  })
}

main().catch(err => {
  process.stderr.write(`worker failed: ${err?.stack ?? err}\n`)
  process.exit(1)
})
