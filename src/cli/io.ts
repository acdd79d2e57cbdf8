/** Where a command writes: the process's streams, or a test's buffers */
export interface Io {
  stdout(text: string | Uint8Array): void
  stderr(text: string): void
  /** Whether stderr is a terminal (a progress bar) or not (progress lines) */
  stderrIsTTY: boolean
  /** Terminal width for the progress bar */
  columns: number
}

export const processIo: Io = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) },
  stderrIsTTY: process.stderr.isTTY === true,
  columns: process.stderr.columns ?? 80
}
