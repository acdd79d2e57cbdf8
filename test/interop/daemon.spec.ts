/**
 * The standard interop suite: `@libp2p/interop`'s DHT tests (content
 * fetching, content routing, peer routing) between libp2p daemons.
 *
 * The suite labels its two implementations 'js' and 'go' and spawns daemons
 * through a factory. Here both run in this process over
 * `@libp2p/daemon-server`, and the labels mean:
 * - 'js': a libp2p node with `@libp2p/kad-dht`;
 * - 'go': a libp2p node with priority-dht (no Go DHT is available here).
 * So the suite's js-to-go and go-to-js cases are kad-dht-to-priority-dht and
 * back, and its go-to-go cases (peer routing) are priority-dht alone. The
 * suite itself skips go-to-go for content routing and fetching.
 */
import { createClient } from '@libp2p/daemon-client'
import { createServer } from '@libp2p/daemon-server'
import { dhtInteropTests } from '@libp2p/interop'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { passthroughMapper, priorityDHT } from '../../src/index.ts'
import { localNodeOptions, theirDHT } from '../libp2p/fixtures/network.ts'
import type { Daemon, DaemonFactory, SpawnOptions } from '@libp2p/interop'

const factory: DaemonFactory = {
  async spawn (options: SpawnOptions): Promise<Daemon> {
    if (options.dht !== true || (options.encryption ?? 'noise') !== 'noise' || (options.muxer ?? 'yamux') !== 'yamux') {
      throw new Error(`this factory only spawns DHT daemons with noise and yamux, not ${JSON.stringify(options)}`)
    }
    const dht = options.type === 'js' ? theirDHT() : priorityDHT({ clientMode: false, peerInfoMapper: passthroughMapper })
    const node = await createLibp2p({ ...localNodeOptions(dht), start: false })
    // the daemon server speaks to the DHT through the `@libp2p/kad-dht` API, which both implement
    const server = createServer(multiaddr('/ip4/127.0.0.1/tcp/0'), node as unknown as Parameters<typeof createServer>[1])
    await server.start()
    const client = createClient(server.getMultiaddr())
    return {
      client,
      stop: async () => {
        await server.stop()
      }
    }
  }
}

describe('`@libp2p/interop` DHT suite (js = `@libp2p/kad-dht`, go = priority-dht)', function () {
  this.timeout(60_000)
  void dhtInteropTests(factory)
})
