import { multiaddr } from '@multiformats/multiaddr'
import { expect } from 'aegir/chai'
import { addressGroup } from '../../src/libp2p/address-group.ts'

describe('libp2p/address-group', () => {
  it('groups public IPv4 addresses by /16 and IPv6 by /32', () => {
    expect(addressGroup([multiaddr('/ip4/93.184.216.34/tcp/4001')])).to.equal('ip4:93.184')
    expect(addressGroup([multiaddr('/ip4/93.184.1.1/udp/4001/quic-v1')])).to.equal('ip4:93.184')
    expect(addressGroup([multiaddr('/ip6/2606:4700:85a3::8a2e:370:7334/tcp/4001')])).to.equal('ip6:2606:4700')
    expect(addressGroup([multiaddr('/ip6/2606:4700::1/tcp/1')])).to.equal(addressGroup([multiaddr('/ip6/2606:4700:ffff::2/tcp/1')]))
  })

  it('gives loopback, private and non-IP addresses no group, and takes the first public one', () => {
    expect(addressGroup([multiaddr('/ip4/127.0.0.1/tcp/1')])).to.equal(undefined)
    expect(addressGroup([multiaddr('/ip4/192.168.1.2/tcp/1'), multiaddr('/ip4/10.0.0.1/tcp/1')])).to.equal(undefined)
    expect(addressGroup([multiaddr('/dns4/example.com/tcp/1')])).to.equal(undefined)
    expect(addressGroup([])).to.equal(undefined)
    expect(addressGroup([multiaddr('/ip4/10.0.0.1/tcp/1'), multiaddr('/ip4/8.8.4.4/tcp/1')])).to.equal('ip4:8.8')
  })
})
