/**
 * The address group of a peer for the routing table's diversity rule
 * (`src/core/routing-table/diversity.ts`): the IPv4 /16 or the IPv6 /32 of
 * its first public IP address, as go-libp2p-kad-dht groups peers. Peers with
 * only loopback, private or non-IP addresses (relays, DNS names not yet
 * resolved) have no group and are not limited, so local networks and tests
 * behave as before.
 */
import { isPrivateIp } from '@libp2p/utils'
import type { Contact } from '../core/contact.ts'
import type { Multiaddr } from '@multiformats/multiaddr'

export function addressGroup (multiaddrs: readonly Multiaddr[]): string | undefined {
  for (const ma of multiaddrs) {
    const group = groupOf(ma)
    if (group != null) {
      return group
    }
  }
  return undefined
}

/**
 * Each address's group, remembered for as long as the address object lives:
 * decoded addresses are shared (`fromPbPeer`'s cache), and every answer that
 * names a peer asks for its group again
 */
const groups = new WeakMap<Multiaddr, string | null>()

function groupOf (ma: Multiaddr): string | null {
  let group = groups.get(ma)
  if (group === undefined) {
    group = computeGroup(ma)
    groups.set(ma, group)
  }
  return group
}

function computeGroup (ma: Multiaddr): string | null {
  for (const { name, value } of ma.getComponents()) {
    if (value == null || (name !== 'ip4' && name !== 'ip6')) {
      continue
    }
    if (isPrivateIp(value) !== false) {
      return null // private, loopback, or not an address we understand
    }
    return name === 'ip4' ? `ip4:${value.split('.').slice(0, 2).join('.')}` : `ip6:${ip6Prefix32(value)}`
  }
  return null
}

/** `contact` with the group of `multiaddrs` (the same object when it has none) */
export function withGroup<C extends Contact> (contact: C, multiaddrs: readonly Multiaddr[]): C {
  const group = addressGroup(multiaddrs)
  return group == null || contact.group === group ? contact : { ...contact, group }
}

/** The first 32 bits of an IPv6 address, as two normalised hextets */
function ip6Prefix32 (address: string): string {
  const [head] = address.toLowerCase().split('::')
  const parts = head === '' ? [] : head.split(':')
  const hextet = (i: number): string => (parts[i] ?? '0').replace(/^0+(?=.)/, '')
  return `${hextet(0)}:${hextet(1)}`
}
