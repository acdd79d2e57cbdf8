/**
 * ADD_PROVIDER and the peer store: a provider announcing the same addresses
 * in message after message (a bulk provide) is merged into the peer store
 * once; new addresses are merged at once.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { Message, MessageType } from '../../src/generated/dht.ts'
import { createTarget } from '../fuzz/target.ts'
import type { Target } from '../fuzz/target.ts'

describe('libp2p/rpc: provider addresses from ADD_PROVIDER', () => {
  let target: Target

  afterEach(async () => {
    await target?.stop()
  })

  it('merges a provider announcing the same addresses in 50 messages once, and a new address at once', async () => {
    target = await createTarget({ senders: 1 })
    const sender = target.senders[0]
    let merges = 0
    const peerStore = (target.rpc as any).components.peerStore
    const merge = peerStore.merge.bind(peerStore)
    peerStore.merge = async (...args: any[]) => {
      merges++
      return merge(...args)
    }
    const announce = async (i: number, addrs: string[]): Promise<void> => {
      const bytes = Message.encode({ type: MessageType.ADD_PROVIDER, key: new TextEncoder().encode(`k-${i}`), providerPeers: [{ id: sender.toMultihash().bytes, addrs: addrs.map(a => multiaddr(a).bytes) }] })
      await target.handler.answer(sender, bytes, undefined, { signal: AbortSignal.timeout(5000) })
    }
    for (let i = 0; i < 50; i++) {
      await announce(i, ['/ip4/10.9.0.1/tcp/4001'])
    }
    expect(merges).to.equal(1)
    expect(await target.providers.getProviders(new TextEncoder().encode('k-49'), Date.now())).to.have.lengthOf(1)
    await announce(50, ['/ip4/10.9.0.1/tcp/4001', '/ip4/10.9.0.2/tcp/4001'])
    expect(merges).to.equal(2)
    const known = (await target.node.peerStore.get(sender)).addresses.map(a => a.multiaddr.toString())
    expect(known).to.include.members(['/ip4/10.9.0.1/tcp/4001', '/ip4/10.9.0.2/tcp/4001'])
  })
})
