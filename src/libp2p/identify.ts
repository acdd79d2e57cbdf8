/**
 * The new-peer handler: tells the service about each peer identify has just
 * described, *with the protocols it supports*, so that only DHT servers enter
 * the routing table.
 *
 * Sources: the `peer:identify` event (after every identify and identify push),
 * and at start the peers that were already connected (their protocols read
 * from the peer store). Each says whether the connection was one we opened
 * (`dialled`): only such a peer has shown that it can be dialled, which the
 * routing table requires of its entries.
 */
import type { ComponentLogger, Libp2pEvents, Logger, PeerId, PeerStore, Startable, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface NewPeer {
  peerId: PeerId
  protocols: readonly string[]
  addresses: readonly Multiaddr[]
  /** identify ran on a connection we opened (the peer is dialable), as opposed to one it opened */
  dialled: boolean
}

export type NewPeerHandler = (peer: NewPeer) => void

export interface IdentifyListenerComponents {
  events: TypedEventTarget<Libp2pEvents>
  peerStore: PeerStore
  connectionManager: ConnectionManager
  logger: ComponentLogger
}

export class IdentifyListener implements Startable {
  private readonly components: IdentifyListenerComponents
  private readonly onNewPeer: NewPeerHandler
  private readonly log: Logger
  private running = false

  constructor (components: IdentifyListenerComponents, onNewPeer: NewPeerHandler) {
    this.components = components
    this.onNewPeer = onNewPeer
    this.log = components.logger.forComponent('priority-dht:identify')
    this.onIdentify = this.onIdentify.bind(this)
  }

  async start (): Promise<void> {
    if (this.running) {
      return
    }
    this.running = true
    this.components.events.addEventListener('peer:identify', this.onIdentify)
    // peers that connected before we started
    const seen = new Set<string>()
    for (const connection of this.components.connectionManager.getConnections()) {
      const peerId = connection.remotePeer
      if (seen.has(peerId.toString())) {
        continue
      }
      seen.add(peerId.toString())
      try {
        const peer = await this.components.peerStore.get(peerId)
        if (!this.running) {
          return
        }
        const dialled = this.components.connectionManager.getConnections(peerId).some(c => c.direction === 'outbound')
        this.onNewPeer({ peerId, protocols: peer.protocols, addresses: peer.addresses.map(a => a.multiaddr), dialled })
      } catch (err) {
        this.log.trace('no peer store entry for connected peer %p - %e', peerId, err)
      }
    }
  }

  async stop (): Promise<void> {
    this.running = false
    this.components.events.removeEventListener('peer:identify', this.onIdentify)
  }

  private onIdentify (evt: CustomEvent<Libp2pEvents['peer:identify']['detail']>): void {
    const { peerId, protocols, listenAddrs, connection } = evt.detail
    try {
      this.onNewPeer({ peerId, protocols, addresses: listenAddrs, dialled: connection?.direction === 'outbound' })
    } catch (err) {
      this.log.error('new-peer handler failed for %p - %e', peerId, err)
    }
  }
}
