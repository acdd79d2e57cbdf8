/**
 * Upkeep waits behind the application's work, FIFO within each class, and
 * is never starved: the wait list, and the query slots built on it.
 */
import { expect } from 'aegir/chai'
import { Slots } from '../../src/libp2p/slots.ts'
import { BACKGROUND_EVERY, WaitList, isBackground } from '../../src/libp2p/wait-list.ts'

describe('libp2p/wait-list: application work before upkeep', () => {
  it('serves foreground waiters first, each class in arrival order', () => {
    const list = new WaitList<string>()
    list.push('refresh-1', true)
    list.push('get-1')
    list.push('refresh-2', true)
    list.push('provide-1')
    expect(list.size).to.equal(4)
    expect([list.shift(), list.shift(), list.shift(), list.shift(), list.shift()]).to.deep.equal(['get-1', 'provide-1', 'refresh-1', 'refresh-2', undefined])
    expect(list.size).to.equal(0)
  })

  it(`serves a waiting background item after at most ${BACKGROUND_EVERY} foreground ones`, () => {
    const list = new WaitList<string>()
    list.push('upkeep', true)
    for (let i = 0; i < 10; i++) {
      list.push(`app-${i}`)
    }
    const order = Array.from({ length: 11 }, () => list.shift())
    expect(order.indexOf('upkeep')).to.equal(BACKGROUND_EVERY)
    expect(order.filter(x => x !== 'upkeep')).to.deep.equal(Array.from({ length: 10 }, (_, i) => `app-${i}`))
  })

  it('removes an aborted waiter from either class', () => {
    const list = new WaitList<string>()
    list.push('a')
    list.push('b', true)
    expect(list.remove('b')).to.equal(true)
    expect(list.remove('b')).to.equal(false)
    expect(list.shift()).to.equal('a')
    expect(list.size).to.equal(0)
  })

  it('counts refresh and republish as upkeep, everything else as the application\'s', () => {
    expect(isBackground('refresh')).to.equal(true)
    expect(isBackground('republish')).to.equal(true)
    for (const p of ['provide', 'put', 'get', 'findProviders', 'lookup', 'inbound', 'other', undefined] as const) {
      expect(isBackground(p), String(p)).to.equal(false)
    }
  })

  it('query slots go to waiting application queries before waiting background ones', async () => {
    const slots = new Slots(1, 10)
    await slots.acquire()
    const started: string[] = []
    const refresh = slots.acquire(undefined, true).then(() => { started.push('refresh') })
    const get = slots.acquire().then(() => { started.push('get') })
    expect(slots.waiters).to.equal(2)
    slots.release()
    await get
    slots.release()
    await refresh
    expect(started).to.deep.equal(['get', 'refresh'])
  })
})
