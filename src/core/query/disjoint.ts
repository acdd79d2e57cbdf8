/**
 * A lookup over `d` disjoint paths (S/Kademlia, as `@libp2p/kad-dht`'s
 * `disjointPaths`): `d` independent {@link Lookup}s, each seeded with every
 * d-th of the seeds (nearest first, dealt in turn), each learning only from
 * its own responses, and no peer asked by more than one of them. Peers that
 * name only each other (an eclipse of the region around a key) can fill
 * the window of one path; to capture all `d` they must outnumber the
 * honest peers of every path, so a record held by honest peers near the
 * key is still reached.
 *
 * The same surface as `Lookup` (`handle`, `stats`, `spares`, `finished`),
 * so the coordinator drives either:
 * - a `request` effect of path i for a peer another path has asked already
 * is not emitted: path i is told the request failed (reason `timeout`,
 * which blames nobody and debits no advice) and goes on without it;
 * - `response`, `failure`, `slow` and `overdue` go to the path that asked
 * the peer;
 * - `stop` stops every path;
 * - one `finished` once every path has finished: the k closest of all the
 * paths' results, nearest first; reason `stopped` if stopped, else
 * `converged` if any path converged, else the first path's reason.
 *
 * Bounds: `d` paths (at most 16), each bounded as a `Lookup` is; the map of
 * who asked whom holds at most `d * maxRequests` ids.
 */
import { compareDistance } from '../key.ts'
import { validateLookupConfig } from './config.ts'
import { Lookup } from './lookup.ts'
import type { LookupConfig } from './config.ts'
import type { FinishReason, LookupEffect, LookupEvent, LookupStats } from './lookup.ts'
import type { Contact, PeerQuality } from '../contact.ts'
import type { Millis } from '../env.ts'
import type { Key } from '../key.ts'

export class DisjointLookup {
  private readonly target: Key
  private readonly k: number
  private readonly paths: Lookup[]
  /** peer id → the path that asked it */
  private readonly askedBy = new Map<string, number>()
  private readonly results: Array<{ closest: Contact[], reason: FinishReason } | undefined>
  private stopped = false
  private done = false
  /** requests not sent because another path had asked the peer (each path counted them) */
  private declined = 0

  constructor (target: Key, selfId: string, seeds: readonly Contact[], config: Partial<LookupConfig>, quality: PeerQuality | undefined, paths: number) {
    const c = validateLookupConfig(config)
    this.target = target
    this.k = c.k
    const d = Math.max(1, Math.min(paths, 16))
    const dealt: Contact[][] = Array.from({ length: d }, () => [])
    const seen = new Set<string>()
    for (const s of seeds) {
      if (!seen.has(s.id)) {
        seen.add(s.id)
        dealt[(seen.size - 1) % d].push(s)
      }
    }
    this.paths = dealt.map(own => new Lookup(target, selfId, own, config, quality))
    this.results = new Array(d).fill(undefined)
  }

  get finished (): boolean {
    return this.done
  }

  handle (event: LookupEvent, now: Millis): LookupEffect[] {
    if (this.done) {
      return []
    }
    switch (event.type) {
      case 'start':
        return this.collect(this.paths.map((p, i) => [i, p.handle(event, now)] as const), now)
      case 'stop': {
        this.stopped = true
        return this.collect(this.paths.map((p, i) => [i, p.handle(event, now)] as const), now)
      }
      default: {
        const i = this.askedBy.get(event.peer)
        if (i == null) {
          return []
        }
        return this.collect([[i, this.paths[i].handle(event, now)]], now)
      }
    }
  }

  /** Passes the paths' effects on: requests not yet claimed, misled; finishes once all have */
  private collect (batches: ReadonlyArray<readonly [number, LookupEffect[]]>, now: Millis): LookupEffect[] {
    const out: LookupEffect[] = []
    const queue: Array<[number, LookupEffect]> = []
    for (const [i, effects] of batches) {
      for (const e of effects) {
        queue.push([i, e])
      }
    }
    while (queue.length > 0) {
      const [i, e] = queue.shift() as [number, LookupEffect]
      if (e.type === 'request') {
        const owner = this.askedBy.get(e.peer.id)
        if (owner == null) {
          this.askedBy.set(e.peer.id, i)
          out.push(e)
        } else if (owner !== i) {
          // another path has it: this one goes on without it
          this.declined++
          for (const next of this.paths[i].handle({ type: 'failure', peer: e.peer.id, reason: 'timeout' }, now)) {
            queue.push([i, next])
          }
        }
      } else if (e.type === 'finished') {
        this.results[i] = { closest: e.closest, reason: e.reason }
      } else {
        out.push(e)
      }
    }
    if (!this.done && this.results.every(r => r != null)) {
      this.done = true
      out.push({ type: 'finished', closest: this.merged(), reason: this.reason() })
    }
    return out
  }

  private merged (): Contact[] {
    return this.nearest(this.results.flatMap(r => r?.closest ?? [])).slice(0, this.k)
  }

  private reason (): FinishReason {
    if (this.stopped) {
      return 'stopped'
    }
    if (this.results.some(r => r?.reason === 'converged')) {
      return 'converged'
    }
    return this.results[0]?.reason ?? 'exhausted'
  }

  private nearest (contacts: Contact[]): Contact[] {
    const seen = new Set<string>()
    return contacts
      .filter(c => seen.has(c.id) ? false : (seen.add(c.id), true))
      .sort((a, b) => compareDistance(a.key, b.key, this.target))
  }

  /** Peers that answered beyond the k closest of all paths, nearest first (at most `n`) */
  spares (n: number): Contact[] {
    const closest = new Set(this.merged().map(c => c.id))
    const all = this.nearest([...this.results.flatMap(r => r?.closest ?? []), ...this.paths.flatMap(p => p.spares(n))])
    return all.filter(c => !closest.has(c.id)).slice(0, n)
  }

  stats (): LookupStats {
    const sum = this.paths.map(p => p.stats()).reduce((a, b) => ({
      requests: a.requests + b.requests,
      responses: a.responses + b.responses,
      failures: a.failures + b.failures,
      inFlight: a.inFlight + b.inFlight,
      slow: a.slow + b.slow,
      skipped: a.skipped + b.skipped,
      candidates: a.candidates + b.candidates,
      hedged: a.hedged + b.hedged,
      misled: a.misled + b.misled
    }))
    return { ...sum, requests: sum.requests - this.declined, failures: sum.failures - this.declined }
  }
}
