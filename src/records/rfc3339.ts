/**
 * The `timeReceived` field of a libp2p `Record` is an RFC 3339 string with
 * nanoseconds (Go's `time.RFC3339Nano` in UTC, as `@libp2p/record` writes it:
 * `2006-01-02T15:04:05.999999999Z`). We store milliseconds since the Unix
 * epoch and convert at the edges.
 */

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/

/** Milliseconds since the Unix epoch to `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (UTC) */
export function toRFC3339 (ms: number): string {
  if (!Number.isFinite(ms)) {
    throw new RangeError(`cannot format time ${ms}`)
  }
  const whole = Math.floor(ms)
  const d = new Date(whole)
  const pad = (n: number, w: number = 2): string => String(n).padStart(w, '0')
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.` +
    `${pad(d.getUTCMilliseconds(), 3)}000000Z`
}

/**
 * Parses an RFC 3339 date-time (fractional seconds optional, `Z` or a numeric
 * offset) to milliseconds since the Unix epoch, truncating below the
 * millisecond. Returns `undefined` if the string is not one.
 */
export function parseRFC3339 (s: string): number | undefined {
  const m = RFC3339.exec(s.trim())
  if (m == null) {
    return undefined
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return undefined
  }
  const millis = m[7] == null ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'))
  let t = Date.UTC(year, month - 1, day, hour, minute, second, millis)
  if (m[8] == null) {
    const offset = (Number(m[10]) * 60 + Number(m[11])) * 60_000
    t = m[9] === '+' ? t - offset : t + offset
  }
  return Number.isFinite(t) ? t : undefined
}
