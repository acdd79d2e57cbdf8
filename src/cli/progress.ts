/**
 * Progress of a batch on stderr: a bar redrawn in place on a terminal,
 * otherwise a plain line at every tenth of the way (and at the end), so logs
 * stay short and readable.
 */
import type { Io } from './io.ts'

export class Progress {
  private readonly io: Io
  private readonly label: string
  private readonly total: number
  private done = 0
  private failed = 0
  private shown = 0

  constructor (io: Io, label: string, total: number) {
    this.io = io
    this.label = label
    this.total = total
  }

  /** One item finished, `ok` or not */
  tick (ok: boolean): void {
    this.done++
    if (!ok) {
      this.failed++
    }
    const steps = this.io.stderrIsTTY ? 100 : 10
    const step = this.total === 0 ? steps : Math.floor(this.done * steps / this.total)
    if (step === this.shown && this.done !== this.total) {
      return
    }
    this.shown = step
    const counts = `${this.done}/${this.total} done, ${this.failed} failed`
    if (this.io.stderrIsTTY) {
      const width = Math.max(10, Math.min(50, this.io.columns - counts.length - this.label.length - 6))
      const filled = this.total === 0 ? width : Math.floor(this.done * width / this.total)
      this.io.stderr(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${counts}${this.done === this.total ? '\n' : ''}`)
    } else {
      this.io.stderr(`${this.label}: ${counts}\n`)
    }
  }
}
