import { expect } from 'aegir/chai'
import fc from 'fast-check'
import { Slots } from '../../../src/core/routing-table/slots.ts'
import { tinyContact } from '../fixtures/keys.ts'

interface Model { entries: string[], replacements: string[] }

describe('core/routing-table/slots', () => {
  it('property: bucket by bucket, holds what a list per bucket would, in the same order', () => {
    // ops: [bucket, replacement?, remove?, which]
    const op = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.boolean(), fc.boolean(), fc.nat(40), fc.nat(1_000_000))
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const slots = new Slots()
      const model: Model[] = []
      let next = 0
      for (const [c, replacement, remove, which, seen] of ops) {
        model[c] ??= { entries: [], replacements: [] }
        const list = replacement ? model[c].replacements : model[c].entries
        if (remove && list.length > 0) {
          const id = list[which % list.length]
          const i = slots.find(id)
          expect(i).to.be.at.least(0)
          expect(slots.bucketOf(i)).to.equal(c)
          expect(slots.isReplacement(i, c)).to.equal(replacement)
          slots.remove(i)
          list.splice(list.indexOf(id), 1)
        } else {
          const contact = { ...tinyContact(next % 256), id: `n${next++}` }
          const i = slots.insert(c, replacement, contact, seen, which, remove)
          expect(slots.lastSeen(i)).to.equal(seen)
          expect(slots.failures(i)).to.equal(which)
          expect(slots.unproven(i)).to.equal(remove)
          list.push(contact.id)
        }
      }
      let used = 0
      for (let c = 0; c < Math.max(model.length, slots.bucketCount); c++) {
        const got = { entries: [] as string[], replacements: [] as string[] }
        for (let i = slots.entriesStart(c); i < slots.entriesEnd(c); i++) { got.entries.push(slots.contacts[i].id) }
        for (let i = slots.entriesEnd(c); i < slots.replacementsEnd(c); i++) { got.replacements.push(slots.contacts[i].id) }
        expect(got).to.deep.equal(model[c] ?? { entries: [], replacements: [] })
        used += got.entries.length + got.replacements.length
      }
      expect(slots.used).to.equal(used)
      expect(slots.find('absent')).to.equal(-1)
    }), { numRuns: 200 })
  })

  it('keeps flags and counts apart', () => {
    const slots = new Slots()
    const i = slots.insert(3, true, tinyContact(1), 12.5, 0, true)
    slots.setFailures(i, 70_000)
    expect(slots.failures(i)).to.equal(0xffff) // saturates
    expect(slots.unproven(i)).to.equal(true)
    slots.setUnproven(i, false)
    expect(slots.failures(i)).to.equal(0xffff)
    expect(slots.unproven(i)).to.equal(false)
    expect(slots.bucketCount).to.equal(4)
    expect(slots.entryCount(0)).to.equal(0)
    expect(slots.replacementCount(3)).to.equal(1)
  })
})
