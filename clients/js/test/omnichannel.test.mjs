/**
 * Stock and identity with the unmodified npm y-websocket client: holds arriving in the doc,
 * and a walk-in cart claimed into the customer's open cart while a third shopper races for the last unit.
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { Clients, LivecartServer, SUITE_TIMEOUT_MS, addLine, closeOf, linesOf, mintToken, waitFor } from './helpers.mjs'

const LAST = 'last-one'
const TEE = 'tee'

describe('stock and identity through y-websocket', { timeout: SUITE_TIMEOUT_MS }, () => {
  /** @type {LivecartServer} */
  let server
  const clients = new Clients()
  const token = (sub, role = 'customer') => mintToken(sub, role, { secret: server.secret })
  const admin = () => token('root', 'admin')
  const holdsOf = (provider) => provider.doc.getMap('server').get('holds')?.toJSON() ?? {}

  before(async () => {
    server = await LivecartServer.start()
    await server.putProduct(LAST, { name: 'Vintage vase', price: 12900 })
    await server.putProduct(TEE, { name: 'Tee', price: 2500 })
    await server.call(200, 'PUT', `/api/stock/${LAST}`, { token: admin(), body: { onHand: 1 } })
    await server.call(200, 'PUT', `/api/stock/${TEE}`, { token: admin(), body: { onHand: 20 } })
  })

  afterEach(() => clients.destroyAll())
  after(async () => {
    clients.destroyAll()
    await server?.dispose()
  })

  test('server.holds and pricing arrive for a line', async () => {
    const bearer = token('hana')
    const cartId = await server.createCart(bearer)
    const shopper = await clients.synced(server, cartId, bearer)
    const line = addLine(shopper.doc, TEE, { qty: 2, addedBy: 'hana' })
    await waitFor(() => holdsOf(shopper)[line]?.status === 'held', 'the hold to arrive')
    const hold = holdsOf(shopper)[line]
    assert.equal(hold.qty, 2)
    assert.ok(hold.expiresAt > Date.now(), 'the hold has an expiry in the future')
    await waitFor(() => shopper.doc.getMap('server').get('pricing')?.toJSON().total === 5000, 'pricing')
  })

  test('a walk-in cart claimed by invite merges live; the last unit stays held; the assistant is sent on', async () => {
    const amy = token('amy', 'assistant')
    const walkIn = (await server.call(201, 'POST', '/api/carts', { token: amy, body: { channel: 'store' } })).cartId
    const tablet = await clients.synced(server, walkIn, amy)
    const vase = addLine(tablet.doc, LAST, { addedBy: 'amy', channel: 'store' })
    addLine(tablet.doc, TEE, { qty: 2, addedBy: 'amy', channel: 'store' })
    await waitFor(() => Object.values(holdsOf(tablet)).filter((h) => h.status === 'held').length === 2,
      'both walk-in lines held')

    const carol = token('carol')
    const own = await server.createCart(carol, 'app')
    const phone = await clients.synced(server, own, carol)
    const { code } = await server.call(201, 'POST', `/api/carts/${walkIn}/invites`, { token: amy })

    const rita = token('rita')
    const rival = await clients.synced(server, await server.createCart(rita), rita)
    const claim = server.call(200, 'POST', `/api/invites/${code}/accept`, { token: carol })
    const attempts = []
    for (let i = 0; i < 15; i++) { // a third shopper tries for the vase during the claim
      attempts.push(addLine(rival.doc, LAST, { addedBy: 'rita' }))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    assert.deepEqual(await claim, { cartId: own })

    await waitFor(() => Object.values(linesOf(phone.doc)).some((l) => l.sku === LAST), 'the vase on the phone, live')
    const mine = Object.entries(linesOf(phone.doc)).find(([, l]) => l.sku === LAST)[0]
    await waitFor(() => holdsOf(phone)[mine]?.status === 'held', 'the vase still held for carol')
    await waitFor(() => attempts.every((id) => holdsOf(rival)[id]), 'every rival line decided')
    assert.ok(attempts.every((id) => holdsOf(rival)[id].status === 'unavailable'), 'the rival never got it')
    const levels = await server.call(200, 'GET', `/api/stock?skus=${LAST}`)
    assert.deepEqual(levels[LAST], { onHand: 1, held: 1, available: 0 })

    const closed = await closeOf(tablet)
    assert.equal(closed.code, 4409)
    assert.match(closed.reason, new RegExp(own))
    assert.ok(vase)
    const follow = await clients.synced(server, own, amy) // the assistant follows to the merged cart
    assert.ok(Object.values(linesOf(follow.doc)).some((l) => l.sku === LAST))
  })
})
