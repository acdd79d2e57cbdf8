#!/usr/bin/env node
/**
 * The `priority-dht` executable (package.json `bin`): runs the CLI on the
 * process's arguments and exits with its code (see `errors.ts`).
 */
import { processIo } from './io.ts'
import { main } from './main.ts'

const code = await main(process.argv.slice(2), processIo)
process.exit(code)
