/**
 * `priority-dht COMMAND [flags]`: the command table, flag parsing
 * (`util.parseArgs`, strict), help texts and exit codes.
 */
import { parseArgs } from 'node:util'
import { parseApiAddr, parseInteger } from './args.ts'
import { closest, findPeer, findProviders, get, provide, put, stats } from './commands.ts'
import { DEFAULT_API, DEFAULT_LISTEN } from './defaults.ts'
import { EXIT_OK, EXIT_USAGE, UsageError, exitCodeOf } from './errors.ts'
import type { ClientContext, Values } from './commands.ts'
import type { Io } from './io.ts'
import type { ParseArgsConfig } from 'node:util'

type Options = NonNullable<ParseArgsConfig['options']>

interface Command {
  usage: string
  summary: string
  flags: string
  options: Options
  run(values: Values, positionals: string[], io: Io): Promise<number>
}

const HELP = { help: { type: 'boolean', short: 'h' } } satisfies Options

const CLIENT = {
  ...HELP,
  api: { type: 'string' },
  timeout: { type: 'string' }
} satisfies Options

const CLIENT_FLAGS = `  --api ADDR         the daemon's API multiaddr (default ${DEFAULT_API})
  --timeout SECONDS  give up on one operation after this long (default 60)
  -h, --help         this text`

function clientContext (values: Values, io: Io): ClientContext {
  return {
    api: parseApiAddr((values.api as string | undefined) ?? DEFAULT_API),
    timeout: parseInteger(values.timeout as string | undefined, '--timeout', 60, 1, 86_400) * 1000,
    io
  }
}

export const COMMANDS: Record<string, Command> = {
  daemon: {
    usage: 'daemon [--listen ADDR]... [--bootstrap ADDR]... [--api ADDR] [--datastore DIR] [--client | --server] [--metrics-port PORT]',
    summary: 'run a node and serve the libp2p daemon protocol on --api',
    flags: `  --listen ADDR       libp2p listen multiaddr, repeatable (default ${DEFAULT_LISTEN})
  --bootstrap ADDR    peer to dial at start, /p2p/PEERID included, repeatable
  --api ADDR          daemon protocol address: /ip4/127.0.0.1/tcp/PORT or /unix/PATH (default ${DEFAULT_API})
  --datastore DIR     keep the peer key, records, provider records and peer values in a LevelDB here
  --client            never serve DHT requests (client mode)
  --server            always serve DHT requests (default: serve while we have a kept address)
  --metrics-port PORT serve /metrics (Prometheus) and /stats (JSON) on http://127.0.0.1:PORT (0: any free port)
  --private-addrs     use and share private and loopback addresses (local networks, tests)
  --k N               bucket size and lookup result size (default 20)
  -h, --help          this text
Prints one JSON line on stdout, {"peerId","listen","api","metrics"}, then logs on stderr.
Stops cleanly on SIGINT or SIGTERM.`,
    options: {
      ...HELP,
      listen: { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      api: { type: 'string' },
      datastore: { type: 'string' },
      client: { type: 'boolean' },
      server: { type: 'boolean' },
      'metrics-port': { type: 'string' },
      'private-addrs': { type: 'boolean' },
      k: { type: 'string' }
    },
    run: async (values, positionals, io) => {
      if (positionals.length > 0) {
        throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
      }
      // loaded here: the client commands need none of libp2p
      const { daemonOptions, runDaemon } = await import('./daemon.ts')
      return runDaemon(daemonOptions(values), io)
    }
  },
  provide: {
    usage: 'provide (CID | --file FILE) [--concurrency N]',
    summary: 'announce that the daemon provides CIDs',
    flags: `  --file FILE        CIDs, one per line (blank lines and # comments skipped); all checked first
  --concurrency N    provides in flight at once (default 32)
${CLIENT_FLAGS}
Progress on stderr (a bar on a terminal); a JSON summary {"provided","failed","ms"} on stdout.`,
    options: { ...CLIENT, file: { type: 'string' }, concurrency: { type: 'string' } },
    run: async (values, positionals, io) => provide(clientContext(values, io), values, positionals)
  },
  'find-providers': {
    usage: 'find-providers CID [--count N]',
    summary: 'print providers of CID, one per line: PEERID ADDR...',
    flags: `  --count N          stop after N providers (default 20)
${CLIENT_FLAGS}`,
    options: { ...CLIENT, count: { type: 'string' } },
    run: async (values, positionals, io) => findProviders(clientContext(values, io), values, positionals)
  },
  put: {
    usage: 'put KEY VALUE-FILE',
    summary: 'store the record in VALUE-FILE under KEY (/ipns/NAME, /pk/PEERID, /ns/key)',
    flags: CLIENT_FLAGS,
    options: CLIENT,
    run: async (values, positionals, io) => put(clientContext(values, io), values, positionals)
  },
  get: {
    usage: 'get KEY [--out FILE]',
    summary: 'write the best valid record under KEY to stdout (or FILE)',
    flags: `  --out FILE         write the record here instead of stdout
${CLIENT_FLAGS}`,
    options: { ...CLIENT, out: { type: 'string' } },
    run: async (values, positionals, io) => get(clientContext(values, io), values, positionals)
  },
  'find-peer': {
    usage: 'find-peer PEERID',
    summary: 'print PEERID ADDR... of a peer',
    flags: CLIENT_FLAGS,
    options: CLIENT,
    run: async (values, positionals, io) => findPeer(clientContext(values, io), values, positionals)
  },
  closest: {
    usage: 'closest KEY',
    summary: 'print the peers closest to KEY (a CID, a peer id or /ns/key), one id per line',
    flags: CLIENT_FLAGS,
    options: CLIENT,
    run: async (values, positionals, io) => closest(clientContext(values, io), values, positionals)
  },
  stats: {
    usage: 'stats --metrics-port PORT [--prometheus]',
    summary: 'print the daemon\'s /stats JSON (or its Prometheus /metrics)',
    flags: `  --metrics-port PORT the daemon's --metrics-port (its HTTP server on 127.0.0.1)
  --prometheus       print /metrics (Prometheus text) instead of /stats
  --timeout SECONDS  give up after this long (default 60)
  -h, --help         this text`,
    options: { ...HELP, 'metrics-port': { type: 'string' }, prometheus: { type: 'boolean' }, timeout: { type: 'string' } },
    run: async (values, positionals, io) => {
      if (positionals.length > 0) {
        throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`)
      }
      return stats({ io, timeout: parseInteger(values.timeout as string | undefined, '--timeout', 60, 1, 86_400) * 1000 }, values)
    }
  }
}

const EXIT_CODES = 'Exit codes: 0 ok, 1 operation failed or found nothing, 2 usage error (bad flag, CID, key or file), 3 daemon unreachable.'

export function mainHelp (): string {
  const width = Math.max(...Object.keys(COMMANDS).map(n => n.length))
  return `Usage: priority-dht COMMAND [flags]   (priority-dht COMMAND --help for its flags)

Commands:
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`).join('\n')}

${EXIT_CODES}
`
}

export function commandHelp (name: string): string {
  const c = COMMANDS[name]
  return `Usage: priority-dht ${c.usage}

${c.summary}

Flags:
${c.flags}

${EXIT_CODES}
`
}

/** Runs the CLI on `argv` (without node and script) and resolves with its exit code */
export async function main (argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name == null) {
    io.stderr(mainHelp())
    return EXIT_USAGE
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout(mainHelp())
    return EXIT_OK
  }
  const command = COMMANDS[name]
  try {
    if (command == null) {
      throw new UsageError(`unknown command ${JSON.stringify(name)}`)
    }
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true })
    } catch (err: any) {
      throw new UsageError(err.message, { cause: err })
    }
    if (parsed.values.help === true) {
      io.stdout(commandHelp(name))
      return EXIT_OK
    }
    return await command.run(parsed.values as Values, parsed.positionals, io)
  } catch (err: any) {
    const code = exitCodeOf(err)
    io.stderr(`priority-dht ${name}: ${err.message ?? err}\n`)
    if (code === EXIT_USAGE) {
      io.stderr(command == null ? 'run priority-dht --help for the commands\n' : `usage: priority-dht ${command.usage}\n`)
    }
    return code
  }
}
