/**
 * The CLI's errors and the exit code each one maps to. Scripts rely on the
 * codes (README, "Daemon and CLI"): 0 ok, 1 the operation failed or found
 * nothing, 2 usage error (bad flag, bad CID, bad key, unreadable file),
 * 3 the daemon could not be reached.
 */

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
export const EXIT_UNREACHABLE = 3

/** A bad command line: unknown flag, missing or malformed argument */
export class UsageError extends Error {
  readonly exitCode = EXIT_USAGE
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UsageError'
  }
}

/** The daemon's API (or metrics) address did not accept a connection */
export class DaemonUnreachableError extends Error {
  readonly exitCode = EXIT_UNREACHABLE
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DaemonUnreachableError'
  }
}

/** The daemon answered, but the operation failed or found nothing */
export class OperationFailedError extends Error {
  readonly exitCode = EXIT_FAILED
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'OperationFailedError'
  }
}

export type CliError = UsageError | DaemonUnreachableError | OperationFailedError

/** The exit code for anything thrown by a command: 1 unless it says otherwise */
export function exitCodeOf (err: unknown): number {
  if (err instanceof UsageError || err instanceof DaemonUnreachableError || err instanceof OperationFailedError) {
    return err.exitCode
  }
  return EXIT_FAILED
}
