/**
 * The four measured operations, each from a live node picked by the seeded
 * random source: provide, findProviders by another node, an IPNS put, and a
 * get by another node.
 *
 * Tarpit dials: every operation's start and end is booked in a `DialLedger`.
 * Between two such events the set of operations in flight is fixed, so the
 * tarpit connections accepted in that interval are split equally among the
 * operations in flight then. With one operation at a time this is exactly the
 * dials in its window (plus any background work it set off); with several in
 * flight a dial cannot be traced to the operation that made it, and the split
 * is an estimate (the total over all operations is exact).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createIPNSRecord, marshalIPNSRecord, multihashToIPNSRoutingKey } from 'ipns'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import type { BenchNetwork, BenchNode } from './network.ts'
import type { Sample } from './stats.ts'
import type { SeededRandom } from '../src/core/env.ts'

export type Workload = 'provide' | 'findProviders' | 'put' | 'get'
export const WORKLOADS: Workload[] = ['provide', 'findProviders', 'put', 'get']

const DAY = 24 * 60 * 60 * 1000

/** Splits tarpit connections among the operations in flight when they were accepted */
export class DialLedger {
  private readonly net: BenchNetwork<BenchNode>
  private readonly open = new Set<{ dials: number }>()
  private last: number
  /** highest number of operations in flight at once */
  maxInFlight = 0

  constructor (net: BenchNetwork<BenchNode>) {
    this.net = net
    this.last = net.tarpitDials()
  }

  private settle (): void {
    const now = this.net.tarpitDials()
    const delta = now - this.last
    this.last = now
    if (delta > 0 && this.open.size > 0) {
      const share = delta / this.open.size
      for (const op of this.open) {
        op.dials += share
      }
    }
  }

  begin (): { dials: number } {
    this.settle()
    const op = { dials: 0 }
    this.open.add(op)
    this.maxInFlight = Math.max(this.maxInFlight, this.open.size)
    return op
  }

  end (op: { dials: number }): number {
    this.settle()
    this.open.delete(op)
    return op.dials
  }
}

async function measure (ledger: DialLedger, timeout: number, op: (signal: AbortSignal) => Promise<boolean>): Promise<Sample> {
  const entry = ledger.begin()
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
  // a tenth of a ms: on loopback an operation can take a few ms
  return { ms: Math.round(ms * 10) / 10, ok: ok && !signal.aborted, tarpitDials: ledger.end(entry), error }
}

function pickTwo (live: BenchNode[], random: SeededRandom): [BenchNode, BenchNode] {
  const a = random.int(live.length)
  let b = random.int(live.length - 1)
  if (b >= a) {
    b++
  }
  return [live[a], live[b]]
}

/** The random choices of one round, drawn before it starts so that overlapping rounds draw in a fixed order */
export interface RoundPlan {
  provider: BenchNode
  seeker: BenchNode
  cidTag: string
  publisher: BenchNode
  resolver: BenchNode
}

export function planRound (net: BenchNetwork<BenchNode>, random: SeededRandom, tag: string): RoundPlan {
  // the same draws in the same order as when rounds drew as they went
  const [provider, seeker] = pickTwo(net.live, random)
  const cidTag = `${tag}-${random.int(2 ** 32)}`
  const [publisher, resolver] = pickTwo(net.live, random)
  return { provider, seeker, cidTag, publisher, resolver }
}

/** One round: each workload once, one after the other; returns a sample per workload */
export async function round (ledger: DialLedger, plan: RoundPlan, timeout: number): Promise<Record<Workload, Sample>> {
  const { provider, seeker, publisher, resolver } = plan
  const cid = CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(plan.cidTag)))
  const provide = await measure(ledger, timeout, async signal => {
    await provider.contentRouting.provide(cid, { signal })
    return true
  })
  const findProviders = await measure(ledger, timeout, async signal => {
    for await (const p of seeker.contentRouting.findProviders(cid, { signal })) {
      if (p.id.equals(provider.peerId)) {
        return true
      }
    }
    return false
  })

  const key = await generateKeyPair('Ed25519')
  const name = multihashToIPNSRoutingKey(key.publicKey.toMultihash())
  const record = marshalIPNSRecord(await createIPNSRecord(key, `/ipfs/${cid.toString()}`, 1n, DAY))
  const put = await measure(ledger, timeout, async signal => {
    await publisher.contentRouting.put(name, record, { signal })
    return true
  })
  const get = await measure(ledger, timeout, async signal => {
    return uint8ArrayEquals(await resolver.contentRouting.get(name, { signal }), record)
  })
  return { provide, findProviders, put, get }
}

/**
 * Runs `count` rounds with at most `inFlight` of them at once: a new round
 * starts as soon as one ends. Plans are drawn in round order as rounds start.
 */
export async function rounds (net: BenchNetwork<BenchNode>, ledger: DialLedger, random: SeededRandom, prefix: string, count: number, inFlight: number, timeout: number, onDone?: (done: number) => void): Promise<Array<Record<Workload, Sample>>> {
  const results: Array<Record<Workload, Sample>> = new Array(count)
  let next = 0
  let done = 0
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++
      const plan = planRound(net, random, `${prefix}-${i}`)
      results[i] = await round(ledger, plan, timeout)
      onDone?.(++done)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, count)) }, lane))
  return results
}
