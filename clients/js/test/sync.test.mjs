/**
 * End-to-end sync tests: the unmodified npm y-websocket client against a real `livecart serve`.
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import {
  Clients, LivecartServer, SUITE_TIMEOUT_MS, addLine, closeOf, linesOf, mintToken, sleep, waitFor
} from './helpers.mjs'

const MUG = 'mug'
const TEA = 'tea'

/** The client-written roots of a cart document as plain JSON. */
const contentOf = (doc) => ({ lines: linesOf(doc), meta: doc.getMap('meta').toJSON() })

describe('y-websocket client against livecart serve', { timeout: SUITE_TIMEOUT_MS }, () => {
  /** @type {LivecartServer} */
  let server
  const clients = new Clients()
  const token = (sub, role = 'customer') => mintToken(sub, role, { secret: server.secret })

  /** A server with this file's two products. */
  async function startShop () {
    const shop = await LivecartServer.start()
    await shop.putProduct(MUG, { name: 'Mug', price: 900 })
    await shop.putProduct(TEA, { name: 'Tea', price: 450, maxQty: 10 })
    return shop
  }

  before(async () => { server = await startShop() })

  afterEach(() => clients.destroyAll())

  after(async () => {
    clients.destroyAll()
    await server?.dispose()
  })

  /** A new cart of `sub` and that customer's token. */
  async function newCart (sub) {
    const bearer = token(sub)
    return { cartId: await server.createCart(bearer), bearer }
  }

  test('two providers converge on concurrent edits', async () => {
    const { cartId, bearer } = await newCart('alice')
    const a = await clients.synced(server, cartId, bearer)
    const b = await clients.synced(server, cartId, bearer)
    const shared = addLine(a.doc, MUG)
    await waitFor(() => b.doc.getMap('lines').has(shared), 'b to see the first line')

    // Same tick: neither side has seen the other's edits when it makes its own.
    for (let i = 0; i < 5; i++) {
      addLine(a.doc, MUG, { qty: i + 1, addedBy: 'alice-web' })
      addLine(b.doc, TEA, { qty: i + 1, addedBy: 'alice-app', channel: 'app' })
    }
    a.doc.getMap('lines').get(shared).set('qty', 3)
    b.doc.getMap('lines').get(shared).set('qty', 7)

    await waitFor(() => a.doc.getMap('lines').size === 11 && b.doc.getMap('lines').size === 11,
      'both providers to hold all 11 lines')
    await waitFor(() => isDeepStrictEqual(linesOf(a.doc), linesOf(b.doc)),
      'both providers to agree on every line (last writer wins on qty)')
    assert.deepEqual(linesOf(a.doc), linesOf(b.doc))
    assert.ok([3, 7].includes(linesOf(a.doc)[shared].qty))
    assert.deepEqual((await server.getCart(cartId, bearer)).lines, linesOf(a.doc))
  })

  test('a late joiner gets the full state', async () => {
    const { cartId, bearer } = await newCart('bob')
    const a = await clients.synced(server, cartId, bearer)
    const ids = [addLine(a.doc, MUG, { qty: 2 }), addLine(a.doc, TEA), addLine(a.doc, MUG)]
    a.doc.getMap('lines').delete(ids[2])
    a.doc.getMap('meta').set('note', 'gift wrap, please')
    await waitFor(async () => (await server.getCart(cartId, bearer)).meta.note === 'gift wrap, please',
      'the server to hold every edit')
    const expected = contentOf(a.doc)
    clients.destroy(a)

    const late = await clients.synced(server, cartId, bearer)
    assert.deepEqual(contentOf(late.doc), expected, 'the state right after the initial sync')
    assert.deepEqual(Object.keys(linesOf(late.doc)).sort(), ids.slice(0, 2).sort())
  })

  test('awareness of a closed provider disappears for the others', async () => {
    const { cartId, bearer } = await newCart('carol')
    const a = await clients.synced(server, cartId, bearer)
    const b = await clients.synced(server, cartId, bearer)
    a.awareness.setLocalStateField('user', { name: 'carol on the web' })
    b.awareness.setLocalStateField('user', { name: 'carol on the app' })
    const aId = a.doc.clientID
    await waitFor(() => b.awareness.getStates().get(aId)?.user?.name === 'carol on the web',
      "b to see a's presence")

    clients.destroy(a)
    await waitFor(() => !b.awareness.getStates().has(aId), "a's presence to leave b")

    const c = await clients.synced(server, cartId, bearer)
    await waitFor(() => c.awareness.getStates().has(b.doc.clientID), "a late joiner to see b's presence")
    assert.ok(!c.awareness.getStates().has(aId), "a late joiner must not see a's presence")
  })

  test('awareness of a dropped connection disappears for the others', async () => {
    const { cartId, bearer } = await newCart('carol')
    const a = await clients.synced(server, cartId, bearer)
    const b = await clients.synced(server, cartId, bearer)
    a.awareness.setLocalStateField('user', { name: 'carol in the store' })
    const aId = a.doc.clientID
    await waitFor(() => b.awareness.getStates().has(aId), "b to see a's presence")

    // No goodbye from the client this time: only the server can tell b that a is gone.
    a.shouldConnect = false
    a.ws.terminate()
    await waitFor(() => !b.awareness.getStates().has(aId), "a's presence to leave b")
  })

  test('edits another client received survive SIGKILL and restart', async () => {
    // A server of its own: killing the shared one would leave the tests after this one its state
    // (and a dead server, should this test fail before the restart).
    const server = await startShop()
    try {
      await killedMidBurst(server)
    } finally {
      clients.destroyAll()
      await server.dispose()
    }
  })

  /** A burst of edits; the server is SIGKILLed once another client has some; it restarts with them. */
  async function killedMidBurst (server) {
    const bearer = mintToken('dave', 'customer', { secret: server.secret })
    const cartId = await server.createCart(bearer)
    const a = await clients.synced(server, cartId, bearer)
    const b = await clients.synced(server, cartId, bearer)
    const kept = addLine(a.doc, MUG, { qty: 1 })
    const removed = addLine(a.doc, TEA)
    a.doc.getMap('lines').get(kept).set('qty', 4)
    a.doc.getMap('lines').delete(removed)
    a.doc.getMap('meta').set('note', 'ring twice')
    await waitFor(() => b.doc.getMap('meta').get('note') === 'ring twice' &&
      b.doc.getMap('lines').get(kept)?.get('qty') === 4, 'b to receive the first edits')

    // A burst of edits; the server is killed the moment b has received some of them.
    const burst = 40
    const threshold = 1 + burst / 2
    let seen = null
    let killed = null
    b.doc.getMap('lines').observe(() => {
      if (!seen && b.doc.getMap('lines').size >= threshold) {
        seen = contentOf(b.doc)
        killed = server.kill() // sends SIGKILL synchronously
      }
    })
    for (let i = 0; i < burst; i++) addLine(a.doc, i % 2 ? TEA : MUG, { qty: 1 + (i % 5) })
    await waitFor(() => seen, `b to receive ${threshold} lines`)
    await killed
    clients.destroy(a)
    clients.destroy(b) // nobody may push the edits back after the restart

    await server.restart()
    const stored = await server.getCart(cartId, bearer)
    const fresh = await clients.synced(server, cartId, bearer)
    for (const [source, lines, note] of [
      ['GET /api/carts/{id}', stored.lines, stored.meta.note],
      ['a fresh provider', linesOf(fresh.doc), fresh.doc.getMap('meta').get('note')]
    ]) {
      for (const [id, line] of Object.entries(seen.lines)) {
        assert.deepEqual(lines[id], line, `${source}: line ${id} as b had received it`)
      }
      assert.ok(!(removed in lines), `${source}: the removed line stays removed`)
      assert.equal(note, 'ring twice', `${source}: meta.note`)
    }
  }

  test("a provider writing the 'server' root is closed with 4400; the others edit on", async () => {
    const { cartId, bearer } = await newCart('erin')
    const [bad, good, watcher] = await Promise.all([0, 1, 2].map(() => clients.synced(server, cartId, bearer)))
    // Presence as a real app sets it; the next test covers a provider that never does.
    bad.awareness.setLocalStateField('user', { name: 'erin on the kiosk' })
    const first = addLine(good.doc, MUG)
    await waitFor(() => watcher.doc.getMap('lines').has(first) && watcher.awareness.getStates().has(bad.doc.clientID),
      "the watcher to see the first line and the bad provider's presence")

    bad.doc.getMap('server').set('x', 1)
    const close = await closeOf(bad)
    assert.equal(close.code, 4400)
    assert.match(close.reason, /server/)

    const later = [addLine(good.doc, TEA, { qty: 2 }), addLine(good.doc, MUG, { qty: 3 })]
    good.doc.getMap('meta').set('note', 'still here')
    await waitFor(() => later.every((id) => watcher.doc.getMap('lines').has(id)) &&
      watcher.doc.getMap('meta').get('note') === 'still here', "the good provider's later edits to reach the watcher")
    assert.deepEqual(good.closes, [], 'the good provider was not disturbed')
    assert.deepEqual(watcher.closes, [], 'the watcher was not disturbed')
    assert.ok(good.wsconnected && watcher.wsconnected)
    assert.equal(watcher.doc.getMap('server').get('x'), undefined, 'the rejected write was not relayed')
    assert.equal((await server.getCart(cartId, bearer)).lines[first].sku, MUG)
    await sleep(300)
    assert.equal(bad.wsconnected, false, 'the stock client does not reconnect after 4400')
    assert.equal(bad.closes.length, 1)
  })

  test('a provider that never set its presence is closed with 4400 too', async () => {
    const { cartId, bearer } = await newCart('ivan')
    const bad = await clients.synced(server, cartId, bearer)
    bad.doc.getMap('server').set('x', 1)
    assert.equal((await closeOf(bad)).code, 4400)
  })

  describe('refused connections', () => {
    test('no token: 4401', async () => {
      const { cartId } = await newCart('frank')
      assert.equal((await closeOf(clients.open(server, cartId, null))).code, 4401)
    })

    test('a forged token: 4401', async () => {
      const { cartId } = await newCart('frank')
      const forged = mintToken('frank', 'customer', { secret: 'not-the-server-secret' })
      assert.equal((await closeOf(clients.open(server, cartId, forged))).code, 4401)
    })

    test("another customer's cart: 4403", async () => {
      const { cartId } = await newCart('grace')
      assert.equal((await closeOf(clients.open(server, cartId, token('mallory')))).code, 4403)
    })

    test('a cart that does not exist: 4404', async () => {
      assert.equal((await closeOf(clients.open(server, 'c-no-such-cart', token('heidi')))).code, 4404)
    })
  })
})
