/**
 * Routing table diversity (Sybil resistance): at most `perBucket` entries of
 * one address group in a bucket and `perTable` in the whole table, as
 * go-libp2p-kad-dht's IP diversity filter does (2 and 3 by default). One
 * operator with many peer ids on one network cannot take more table slots
 * than that, however many ids it makes.
 *
 * A contact's group is decided by the driver (`Contact.group`): the libp2p
 * adapter uses the /16 of an IPv4 address and the /32 of an IPv6 one
 * (`src/libp2p/peer-info.ts`); loopback and private addresses, and contacts
 * without one, have no group and are not limited, so local networks and
 * tests work. The counts cover table entries; replacements are limited
 * separately to `perBucket` per group per bucket, and a replacement is
 * promoted only where its group has room.
 *
 * Bounds: one counter per group present (at most the table's entries) and
 * one per group and bucket.
 */

export class Diversity {
  readonly perBucket: number
  readonly perTable: number
  private readonly table = new Map<string, number>()
  private readonly bucket = new Map<string, number>()
  private readonly waiting = new Map<string, number>()

  constructor (perBucket: number, perTable: number) {
    this.perBucket = perBucket
    this.perTable = perTable
  }

  /** Whether an entry of `group` may join bucket `cpl` */
  allows (group: string | undefined, cpl: number): boolean {
    if (group == null) {
      return true
    }
    return (this.table.get(group) ?? 0) < this.perTable && (this.bucket.get(`${cpl}/${group}`) ?? 0) < this.perBucket
  }

  /** Whether a replacement of `group` may wait in bucket `cpl` */
  allowsReplacement (group: string | undefined, cpl: number): boolean {
    return group == null || (this.waiting.get(`${cpl}/${group}`) ?? 0) < this.perBucket
  }

  added (group: string | undefined, cpl: number, replacement: boolean): void {
    if (group == null) {
      return
    }
    if (replacement) {
      bump(this.waiting, `${cpl}/${group}`, 1)
      return
    }
    bump(this.table, group, 1)
    bump(this.bucket, `${cpl}/${group}`, 1)
  }

  removed (group: string | undefined, cpl: number, replacement: boolean): void {
    if (group == null) {
      return
    }
    if (replacement) {
      bump(this.waiting, `${cpl}/${group}`, -1)
      return
    }
    bump(this.table, group, -1)
    bump(this.bucket, `${cpl}/${group}`, -1)
  }
}

function bump (map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by
  if (n <= 0) {
    map.delete(key)
  } else {
    map.set(key, n)
  }
}
