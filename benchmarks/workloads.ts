/**
 * The four measured operations, each from a live node picked by the seeded
 * random source: provide, findProviders by another node, an IPNS put, and a
 * get by another node. Operations run one at a time, so the tarpit dials
 * counted in an operation's window are that operation's (plus any background
 * work it set off).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createIPNSRecord, marshalIPNSRecord, multihashToIPNSRoutingKey } from 'ipns'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import type { BenchNetwork } from './network.ts'
import type { Sample } from './stats.ts'
import type { SeededRandom } from '../src/core/env.ts'
import type { AnyNode } from '../test/libp2p/fixtures/network.ts'

export type Workload = 'provide' | 'findProviders' | 'put' | 'get'
export const WORKLOADS: Workload[] = ['provide', 'findProviders', 'put', 'get']

const DAY = 24 * 60 * 60 * 1000

async function measure (net: BenchNetwork, timeout: number, op: (signal: AbortSignal) => Promise<boolean>): Promise<Sample> {
  const dials = net.tarpitDials()
  const start = performance.now()
  const signal = AbortSignal.timeout(timeout)
  let ok = false
  let error: string | undefined
  try {
    ok = await op(signal)
  } catch (err: any) {
    error = `${err?.name ?? 'Error'}: ${String(err?.message ?? err).slice(0, 120)}`
  }
  const ms = signal.aborted ? timeout : performance.now() - start
  return { ms: Math.round(ms), ok: ok && !signal.aborted, tarpitDials: net.tarpitDials() - dials, error }
}

function pickTwo (live: AnyNode[], random: SeededRandom): [AnyNode, AnyNode] {
  const a = random.int(live.length)
  let b = random.int(live.length - 1)
  if (b >= a) {
    b++
  }
  return [live[a], live[b]]
}

/** One round: each workload once; returns a sample per workload */
export async function round (net: BenchNetwork, random: SeededRandom, tag: string, timeout: number): Promise<Record<Workload, Sample>> {
  const [provider, seeker] = pickTwo(net.live, random)
  const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`${tag}-${random.int(2 ** 32)}`)))
  const provide = await measure(net, timeout, async signal => {
    await provider.contentRouting.provide(cid, { signal })
    return true
  })
  const findProviders = await measure(net, timeout, async signal => {
    for await (const p of seeker.contentRouting.findProviders(cid, { signal })) {
      if (p.id.equals(provider.peerId)) {
        return true
      }
    }
    return false
  })

  const [publisher, resolver] = pickTwo(net.live, random)
  const key = await generateKeyPair('Ed25519')
  const name = multihashToIPNSRoutingKey(key.publicKey.toMultihash())
  const record = marshalIPNSRecord(await createIPNSRecord(key, `/ipfs/${cid.toString()}`, 1n, DAY))
  const put = await measure(net, timeout, async signal => {
    await publisher.contentRouting.put(name, record, { signal })
    return true
  })
  const get = await measure(net, timeout, async signal => {
    return uint8ArrayEquals(await resolver.contentRouting.get(name, { signal }), record)
  })
  return { provide, findProviders, put, get }
}
