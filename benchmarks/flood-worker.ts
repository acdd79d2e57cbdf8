/* eslint-disable no-console */
/**
 * One flood against a server, in its own process (so the flooder's CPU is not
 * the server's event loop): `flood-worker.ts <kind> <server multiaddr> <seconds>`.
 * Prints one JSON line with what it sent, what was answered and how many
 * streams were reset. Kinds: streams, requests, providers, gets.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { MessageType } from '../src/generated/dht.ts'
import { createRawNode, floodProviders, floodRequests, floodStreams, randomKey } from '../test/flood/floods.ts'

const [kind, addr, seconds, extra] = process.argv.slice(2)
const server = [multiaddr(addr)]
const stop = AbortSignal.timeout(Number(seconds) * 1000)
let result: unknown
if (kind === 'streams') {
  const node = await createRawNode()
  result = await floodStreams(node, server, 5000, 4, stop)
  await node.stop()
} else if (kind === 'requests') {
  const node = await createRawNode()
  await node.dial(server)
  result = await floodRequests(node, server, () => ({ type: MessageType.FIND_NODE, key: randomKey() }), { total: 10_000_000, streams: 64, stop })
  await node.stop()
} else if (kind === 'providers') {
  result = await floodProviders(server, 1000, 1000, 16, stop, 8)
} else if (kind === 'gets') {
  const honestKey = Uint8Array.from(Buffer.from(extra, 'hex'))
  const nodes = await Promise.all([1, 2, 3].map(async () => createRawNode()))
  const results = await Promise.all(nodes.map(async (node, i) => {
    await node.dial(server)
    return floodRequests(node, server, n => ({ type: (n + i) % 2 === 0 ? MessageType.GET_VALUE : MessageType.GET_PROVIDERS, key: n % 10 === 0 ? honestKey : randomKey() }), { total: 10_000_000, streams: 32, stop })
  }))
  result = results.reduce((a, r) => ({ sent: a.sent + r.sent, answered: a.answered + r.answered, resets: a.resets + r.resets }))
  await Promise.all(nodes.map(async n => n.stop()))
} else {
  throw new Error(`unknown flood ${kind}`)
}
console.log(JSON.stringify(result))
process.exit(0)
