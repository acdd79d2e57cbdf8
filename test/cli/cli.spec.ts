/**
 * The `priority-dht` CLI end to end, through real child processes: three
 * daemons on 127.0.0.1 bootstrapped to each other, the client commands
 * against them, the exit codes scripts rely on, and a restart over
 * `--datastore`.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { expect } from 'aegir/chai'
import { createIPNSRecord, marshalIPNSRecord, unmarshalIPNSRecord } from 'ipns'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import pWaitFor from 'p-wait-for'
import { COMMANDS, main } from '../../src/cli/main.ts'
import { Progress } from '../../src/cli/progress.ts'
import { cli, daemon, killAll } from './fixtures/daemon.ts'
import type { Daemon, Run } from './fixtures/daemon.ts'

async function statsOf (d: Daemon): Promise<any> {
  return (await fetch(`${d.metrics}/stats`)).json()
}

/** A loopback TCP port nobody listens on (taken, then released) */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise(resolve => server.close(resolve))
  return typeof address === 'object' && address != null ? address.port : 1
}

function lines (run: Run): string[] {
  return run.stdout.toString().split('\n').filter(l => l !== '')
}

describe('cli: priority-dht daemon and client commands through child processes', function () {
  this.timeout(60_000)
  let dir: string
  let daemons: Daemon[]
  let cids: string[]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'priority-dht-cli-'))
    const first = await daemon()
    const second = await daemon('--bootstrap', first.listen[0], '--datastore', join(dir, 'ds-provider'))
    // the third serves its API on a unix socket
    const third = await daemon('--bootstrap', first.listen[0], '--bootstrap', second.listen[0], '--api', `/unix${join(dir, 'api.sock')}`)
    daemons = [first, second, third]
    await pWaitFor(async () => (await Promise.all(daemons.map(statsOf))).every(s => s.routingTable.size === 2), { timeout: 20_000, interval: 100 })
    cids = await Promise.all(Array.from({ length: 1000 }, async (_, i) => CID.createV1(0x55, await sha256.digest(new TextEncoder().encode(`cli spec ${i}`))).toString()))
    await writeFile(join(dir, 'cids.txt'), `# a thousand CIDs\n${cids.join('\n')}\n`)
  })

  after(async () => {
    killAll()
    await rm(dir, { recursive: true, force: true })
  })

  it('each daemon prints its peer id, listen addresses and API address (TCP or unix socket) on its first line', () => {
    for (const d of daemons) {
      expect(d.peerId).to.match(/^12D3KooW/)
      expect(d.listen[0]).to.match(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${d.peerId}$`))
      expect(d.api).to.match(d === daemons[2] ? /^\/unix\/%2F.*api\.sock$/ : /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
      expect(d.metrics).to.match(/^http:\/\/127\.0\.0\.1:\d+$/)
    }
  })

  it('provide --file of 1000 CIDs on one daemon: all provided, plain progress lines on a non-terminal stderr', async () => {
    const run = await cli('provide', '--file', join(dir, 'cids.txt'), '--api', daemons[1].api)
    expect(run.code, run.stderr).to.equal(0)
    const summary = JSON.parse(run.stdout.toString())
    expect(summary).to.include({ provided: 1000, failed: 0 })
    const progress = run.stderr.split('\n').filter(l => l.startsWith('provide: '))
    expect(progress).to.have.length(10)
    expect(progress.at(-1)).to.equal('provide: 1000/1000 done, 0 failed')
  })

  it('find-providers of a sample of them from the other daemons names the provider first', async () => {
    const sample = cids.filter((_, i) => i % 100 === 7)
    for (const [i, cid] of sample.entries()) {
      const from = daemons[i % 2 === 0 ? 0 : 2]
      const run = await cli('find-providers', cid, '--api', from.api, '--count', '1')
      expect(run.code, `${cid} from ${from.peerId}: ${run.stderr}`).to.equal(0)
      expect(lines(run)[0].split(' ')[0]).to.equal(daemons[1].peerId)
    }
  })

  it('find-providers on the provider itself names it (its own store)', async () => {
    const run = await cli('find-providers', cids[0], '--api', daemons[1].api)
    expect(run.code, run.stderr).to.equal(0)
    expect(lines(run).map(l => l.split(' ')[0])).to.include(daemons[1].peerId)
  })

  it('put of an IPNS record on one daemon, get from another returns it; a newer sequence put elsewhere wins', async () => {
    const key = await generateKeyPair('Ed25519')
    const name = `/ipns/${peerIdFromPrivateKey(key).toString()}`
    const day = 24 * 60 * 60 * 1000
    await writeFile(join(dir, 'ipns-1'), marshalIPNSRecord(await createIPNSRecord(key, '/ipfs/bafkqaaa', 1n, day)))
    await writeFile(join(dir, 'ipns-2'), marshalIPNSRecord(await createIPNSRecord(key, '/ipfs/bafkqaaa', 2n, day)))

    const put1 = await cli('put', name, join(dir, 'ipns-1'), '--api', daemons[0].api)
    expect(put1.code, put1.stderr).to.equal(0)
    const got1 = await cli('get', name, '--api', daemons[2].api)
    expect(got1.code, got1.stderr).to.equal(0)
    const record1 = unmarshalIPNSRecord(got1.stdout)
    expect(record1.sequence).to.equal(1n)
    expect(record1.value).to.equal('/ipfs/bafkqaaa')

    const put2 = await cli('put', name, join(dir, 'ipns-2'), '--api', daemons[2].api)
    expect(put2.code, put2.stderr).to.equal(0)
    const out = join(dir, 'got-2')
    const got2 = await cli('get', name, '--api', daemons[0].api, '--out', out)
    expect(got2.code, got2.stderr).to.equal(0)
    expect(unmarshalIPNSRecord(await readFile(out)).sequence).to.equal(2n)
  })

  it('put of a forged IPNS record is refused with exit code 1', async () => {
    const owner = await generateKeyPair('Ed25519')
    const other = await generateKeyPair('Ed25519')
    await writeFile(join(dir, 'forged'), marshalIPNSRecord(await createIPNSRecord(other, '/ipfs/bafkqaaa', 1n, 60_000)))
    const run = await cli('put', `/ipns/${peerIdFromPrivateKey(owner).toString()}`, join(dir, 'forged'), '--api', daemons[0].api)
    expect(run.code).to.equal(1)
    expect(run.stderr).to.match(/priority-dht put: /)
  })

  it('get of a key nobody stored exits 1', async () => {
    const nobody = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const run = await cli('get', `/ipns/${nobody.toString()}`, '--api', daemons[0].api)
    expect(run.code).to.equal(1)
    expect(run.stderr).to.match(/priority-dht get: /)
  })

  it('find-peer returns the peer and its listen address', async () => {
    const run = await cli('find-peer', daemons[2].peerId, '--api', daemons[0].api)
    expect(run.code, run.stderr).to.equal(0)
    const [id, ...addrs] = lines(run)[0].split(' ')
    expect(id).to.equal(daemons[2].peerId)
    expect(addrs).to.include(daemons[2].listen[0].replace(`/p2p/${daemons[2].peerId}`, ''))
  })

  it('closest names every other daemon, each once (the lookup\'s result, not every peer heard of)', async () => {
    const run = await cli('closest', cids[0], '--api', daemons[0].api)
    expect(run.code, run.stderr).to.equal(0)
    expect(lines(run).sort()).to.deep.equal([daemons[1].peerId, daemons[2].peerId].sort())
  })

  it('stats prints the daemon\'s usage, limits and table size; --prometheus its metrics', async () => {
    const run = await cli('stats', '--metrics-port', daemons[1].metricsPort)
    expect(run.code, run.stderr).to.equal(0)
    const stats = JSON.parse(run.stdout.toString())
    expect(stats.peerId).to.equal(daemons[1].peerId)
    expect(stats.routingTable.size).to.equal(2)
    expect(stats.reproviding).to.equal(1000)
    expect(stats.usage.purposes.provide.requests).to.be.greaterThan(0)
    expect(stats.inbound).to.have.property('rateLimitedRequests', 0)
    const prom = await cli('stats', '--metrics-port', daemons[1].metricsPort, '--prometheus')
    expect(prom.code, prom.stderr).to.equal(0)
    // the daemon batches its clients' provides: 1000 provides travel as a few provideMany sweeps
    expect(stats.provideBatching.keys).to.equal(1000)
    expect(prom.stdout.toString()).to.match(/^priority_dht_operations_total\{operation="provideMany"\} [1-9]/m)
  })

  it('a bad CID exits 2 with a message; so does a bad line in --file, with its line number', async () => {
    const run = await cli('find-providers', 'not-a-cid', '--api', daemons[0].api)
    expect(run.code).to.equal(2)
    expect(run.stderr).to.include('not a CID: "not-a-cid"')
    await writeFile(join(dir, 'bad.txt'), `${cids[0]}\n\nbafy-broken\n`)
    const file = await cli('provide', '--file', join(dir, 'bad.txt'), '--api', daemons[0].api)
    expect(file.code).to.equal(2)
    expect(file.stderr).to.include('bad.txt:3: not a CID: "bafy-broken"')
  })

  it('a listen or API address already in use exits 2 and names the flag', async () => {
    const taken = daemons[0].listen[0].replace(`/p2p/${daemons[0].peerId}`, '')
    const listen = await cli('daemon', '--listen', taken, '--api', '/ip4/127.0.0.1/tcp/0')
    expect(listen.code, listen.stderr).to.equal(2)
    expect(listen.stderr).to.include('--listen: cannot start the node')
    const api = await cli('daemon', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', daemons[0].api)
    expect(api.code, api.stderr).to.equal(2)
    expect(api.stderr).to.include(`--api: cannot listen on ${daemons[0].api}`)
  })

  it('an unreachable daemon exits 3, for the daemon protocol and for stats', async () => {
    const port = await closedPort()
    const run = await cli('find-providers', cids[0], '--api', `/ip4/127.0.0.1/tcp/${port}`)
    expect(run.code).to.equal(3)
    expect(run.stderr).to.include(`cannot reach the daemon at /ip4/127.0.0.1/tcp/${port}`)
    const stats = await cli('stats', '--metrics-port', String(port))
    expect(stats.code).to.equal(3)
  })

  it('SIGTERM stops a daemon cleanly; restarted over the same --datastore it keeps its peer id and its CIDs to re-announce', async () => {
    const provider = daemons[1]
    provider.child.kill('SIGTERM')
    expect(await provider.exited).to.equal(0)
    expect(provider.stderr()).to.include('SIGTERM: stopping\nstopped\n')

    const again = await daemon('--bootstrap', daemons[0].listen[0], '--datastore', join(dir, 'ds-provider'))
    expect(again.peerId).to.equal(provider.peerId)
    expect((await statsOf(again)).reproviding).to.equal(1000)
    again.child.kill('SIGINT')
    expect(await again.exited).to.equal(0)
  })
})

/** Runs `main` in this process with buffers for stdout and stderr */
async function inProcess (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io = { stdout: (t: string | Uint8Array) => { stdout += t.toString() }, stderr: (t: string) => { stderr += t }, stderrIsTTY: false, columns: 80 }
  const code = await main(args, io)
  return { code, stdout, stderr }
}

describe('cli: flags, usage errors and help (main, in process)', () => {
  it('bad flags and arguments exit 2 with the command\'s usage', async () => {
    const cases = [
      ['closest', 'bafkqaaa', '--bogus'],
      ['provide'],
      ['provide', 'bafkqaaa', '--concurrency', 'many'],
      ['find-peer', 'not-a-peer'],
      ['get', 'no-namespace'],
      ['daemon', '--client', '--server'],
      ['daemon', '--bootstrap', '/ip4/127.0.0.1/tcp/1'],
      ['stats'],
      ['frobnicate'],
      []
    ]
    for (const args of cases) {
      const run = await inProcess(...args)
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).to.equal(2)
      expect(run.stderr, args.join(' ')).to.match(/usage: priority-dht|priority-dht --help/i)
    }
  })

  it('--help works for every command and exits 0', async () => {
    for (const name of Object.keys(COMMANDS)) {
      const run = await inProcess(name, '--help')
      expect(run.code, name).to.equal(0)
      expect(run.stdout).to.include(`Usage: priority-dht ${name}`)
      expect(run.stdout).to.include('Exit codes: 0 ok')
    }
    const top = await inProcess('--help')
    expect(top.code).to.equal(0)
    expect(top.stdout).to.include('find-providers')
  })

  it('a terminal gets a progress bar redrawn in place, ending with a newline', () => {
    let out = ''
    const progress = new Progress({ stdout: () => {}, stderr: (t: string) => { out += t }, stderrIsTTY: true, columns: 100 }, 'provide', 4)
    for (let i = 0; i < 4; i++) {
      progress.tick(i !== 2)
    }
    const frames = out.split('\r').filter(f => f !== '')
    expect(frames).to.have.length(4)
    expect(frames[0]).to.equal(`provide [${'#'.repeat(12)}${'.'.repeat(38)}] 1/4 done, 0 failed`)
    expect(frames[3]).to.equal(`provide [${'#'.repeat(50)}] 4/4 done, 1 failed\n`)
  })
})
