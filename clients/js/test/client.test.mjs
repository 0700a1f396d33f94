/**
 * The client library (src/) against a real `livecart demo`: carts, holds, rejections, typed
 * errors, the stock feed. Merge following and retryable closes, which the server cannot be
 * made to produce on demand yet, run against a tiny y-protocols server in this process.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, afterEach, before, describe, test } from 'node:test'
import WebSocket, { WebSocketServer } from 'ws'
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import {
  ForbiddenError, MergedError, NotAvailableError, NotFoundError, RejectedError, UnauthorizedError,
  createClient, errorFromClose, mergeTarget, openCart, watchStock
} from '../src/index.js'
import { LivecartServer, SUITE_TIMEOUT_MS, mintToken, waitFor } from './helpers.mjs'

const LAST = 'MUG-LAST' // demo catalog: one on hand
const MUG = 'MUG-CLASSIC' // maxQty 10
const INVITE = 'INVITE-WEDDING' // personalisation: names, date, wording (text), guests (list)

/** Everything opened in a test, closed after it (provider timers would keep node alive). */
const open = new Set()
const track = (thing) => { open.add(thing); return thing }

describe('client library against livecart demo', { timeout: SUITE_TIMEOUT_MS }, () => {
  /** @type {LivecartServer} */
  let server

  before(async () => { server = await LivecartServer.start({ command: 'demo' }) })
  afterEach(() => { for (const thing of open) thing.close(); open.clear() })
  after(async () => { await server?.dispose() })

  /** An anonymous shopper with a fresh cart. */
  async function shopper () {
    const lc = createClient({ url: server.httpUrl, WebSocket })
    const { customerId } = await lc.anonymousSession()
    const { cartId } = await lc.createCart({ channel: 'web' })
    return { lc, cartId, customerId }
  }

  test('addLine, setQty, removeLine round trip with holds and pricing arriving', async () => {
    const { lc, cartId, customerId } = await shopper()
    const cart = track(lc.openCart(cartId, { user: { name: 'Ada' }, focus: true }))
    await cart.whenSynced()
    assert.equal(cart.status, 'open')
    assert.equal(cart.user.id, customerId, 'addedBy defaults to the token subject')

    const changes = []
    cart.on('holds', (holds) => changes.push(holds))
    const lineId = cart.addLine(MUG, 2)
    assert.equal(cart.lines.length, 1, 'the snapshot shows the edit at once')
    assert.deepEqual({ ...cart.lines[0], addedAt: 0 }, {
      id: lineId, sku: MUG, qty: 2, addedBy: customerId, channel: 'web', addedAt: 0, personalisation: null
    })
    await waitFor(() => cart.holds[lineId]?.status === 'held' && cart.holds[lineId].qty === 2, 'the hold for 2')
    assert.ok(cart.holds[lineId].expiresAt > Date.now(), 'the hold has an expiry in the future')
    await waitFor(() => cart.pricing?.total === 2 * 1290, 'pricing from the server')
    assert.equal(cart.pricing.currency, 'EUR')
    assert.ok(changes.length >= 1, 'a holds event fired')

    // A second tab of the same shopper sees it all, and both see each other's presence.
    const other = track(lc.openCart(cartId, { user: { name: 'Ada on the app' }, channel: 'app', focus: false }))
    await other.whenSynced()
    assert.deepEqual(other.lines.map((l) => [l.id, l.qty]), [[lineId, 2]])
    await waitFor(() => cart.presence.others.some((p) => p.name === 'Ada on the app' && p.channel === 'app' && p.focus === false),
      'presence of the second tab')
    await waitFor(() => other.presence.others.some((p) => p.name === 'Ada' && p.role === 'customer' && p.focus === true),
      'presence of the first tab')

    cart.setQty(lineId, 5)
    await waitFor(() => other.line(lineId)?.qty === 5, 'the new qty in the other tab')
    await waitFor(() => cart.holds[lineId]?.qty === 5 && cart.pricing.total === 5 * 1290, 'the hold and price for 5')

    other.removeLine(lineId)
    await waitFor(() => cart.lines.length === 0 && !cart.holds[lineId] && cart.pricing.total === 0,
      'the line, its hold and its price gone')
    const json = await lc.getCart(cartId)
    assert.deepEqual(json.lines, {})
    assert.deepEqual(json.holds, {})
  })

  test('personalisation fields are created with the line and co-typed', async () => {
    const { lc, cartId } = await shopper()
    const a = track(lc.openCart(cartId))
    const b = track(lc.openCart(cartId))
    await Promise.all([a.whenSynced(), b.whenSynced()])
    const lineId = a.addLine(INVITE, 1, { personalisation: { names: 'Ada & ', date: '', wording: '', guests: ['Grace'] } })
    await waitFor(() => b.line(lineId), 'the line in b')
    b.personalise(lineId, 'names').insert(6, 'Charles')
    b.personalise(lineId, 'guests', { kind: 'list' }).push(['Alan'])
    await waitFor(() => a.line(lineId)?.personalisation?.names === 'Ada & Charles', 'typed text in a')
    await waitFor(() => a.line(lineId).personalisation.guests.length === 2, 'the new guest in a')
    assert.deepEqual(a.line(lineId).personalisation.guests, ['Grace', 'Alan'])
    await waitFor(async () => (await lc.getCart(cartId)).lines[lineId]?.personalisation?.names === 'Ada & Charles',
      'the server stored the text')
  })

  test('a rejected edit restarts from a fresh doc and says what was lost', async () => {
    const { lc, cartId } = await shopper()
    const cart = track(lc.openCart(cartId))
    const bystander = track(lc.openCart(cartId))
    await Promise.all([cart.whenSynced(), bystander.whenSynced()])
    const kept = cart.addLine(MUG, 1)
    await waitFor(() => bystander.line(kept), 'the accepted line relayed')
    const firstDoc = cart.doc

    const rejected = new Promise((resolve) => cart.once('rejected', resolve))
    const errors = []
    cart.on('error', (err) => errors.push(err))
    const bad = cart.addLine(MUG, 50) // over maxQty 10: the server closes with 4400
    const err = await rejected
    assert.ok(err instanceof RejectedError)
    assert.equal(err.closeCode, 4400)
    assert.match(err.reason, /qty/)
    assert.deepEqual(err.discarded.added.map((l) => [l.id, l.sku, l.qty]), [[bad, MUG, 50]])
    assert.deepEqual(errors, [err], 'reported once as an error too')

    assert.notEqual(cart.doc, firstDoc, 'a fresh Y.Doc')
    assert.ok(cart.synced)
    assert.deepEqual(cart.lines.map((l) => l.id), [kept], 'the rejected line is gone, the accepted one kept')
    assert.equal(cart.doc.getMap('lines').has(bad), false)

    // The cart works on, the rejected state is never replayed, and the other tab saw nothing of it.
    const next = cart.addLine(MUG, 3)
    await waitFor(() => bystander.line(next)?.qty === 3, 'a later edit relayed')
    await waitFor(async () => (await lc.getCart(cartId)).holds[next]?.status === 'held', 'its hold')
    const stored = await lc.getCart(cartId)
    assert.deepEqual(Object.keys(stored.lines).sort(), [kept, next].sort())
    assert.equal(bystander.connection, 'connected')
    assert.equal(bystander.error, null)
  })

  test('chat: say() reaches the other tab and typing shows; a message in another name is rejected (4400)', async () => {
    const { lc, cartId, customerId } = await shopper()
    const cart = track(lc.openCart(cartId, { focus: true }))
    const other = track(lc.openCart(cartId, { focus: true }))
    await Promise.all([cart.whenSynced(), other.whenSynced()])
    cart.setTyping(true)
    await waitFor(() => other.presence.others.some((p) => p.typing), 'typing seen by the other tab')
    const id = cart.say('Is the mug dishwasher safe?')
    await waitFor(() => other.chat.length === 1, 'the message relayed')
    assert.deepEqual(other.chat.map((m) => [m.id, m.from, m.role, m.text]), [[id, customerId, 'customer', 'Is the mug dishwasher safe?']])
    await waitFor(() => !other.presence.others.some((p) => p.typing), 'typing over once sent')
    assert.throws(() => cart.say(''), TypeError)
    assert.throws(() => cart.say('x'.repeat(2001)), TypeError)

    const rejected = new Promise((resolve) => cart.once('rejected', resolve))
    cart.doc.getArray('chat').push([new Y.Map(Object.entries({ id: 'forged', from: 'root', role: 'admin', text: 'Free mugs!', at: Date.now() }))])
    const err = await rejected
    assert.equal(err.closeCode, 4400)
    assert.match(err.reason, /chat/)
    assert.deepEqual(cart.chat.map((m) => m.id), [id], 'the forged message is gone')
    assert.equal(other.connection, 'connected', 'the other tab goes on')
    const stored = await lc.getCart(cartId)
    assert.deepEqual(stored.chat.map((m) => m.text), ['Is the mug dishwasher safe?'])
  })

  test('typed errors for 4401, 4403 and 4404, and for HTTP errors', async () => {
    const { lc, cartId } = await shopper()
    const stranger = mintToken('someone-else', 'customer', { secret: server.secret })
    const cases = [
      [{ cartId, token: 'not-a-jwt' }, UnauthorizedError, 4401],
      [{ cartId, token: stranger }, ForbiddenError, 4403],
      [{ cartId: 'c-does-not-exist', token: lc.token }, NotFoundError, 4404]
    ]
    for (const [options, ErrorClass, code] of cases) {
      const cart = track(openCart({ url: server.httpUrl, WebSocket, ...options }))
      const errors = []
      cart.on('error', (err) => errors.push(err))
      await assert.rejects(cart.whenSynced(), (err) => err instanceof ErrorClass && err.closeCode === code)
      assert.equal(cart.connection, 'closed')
      assert.ok(errors[0] instanceof ErrorClass, `${ErrorClass.name} emitted`)
      assert.throws(() => cart.addLine(MUG, 1), ErrorClass, 'edits after a fatal close throw it')
    }
    const anonymous = createClient({ url: server.httpUrl })
    await assert.rejects(anonymous.getCart(cartId), (err) => err instanceof UnauthorizedError && err.status === 401)
    await assert.rejects(createClient({ url: server.httpUrl, token: stranger }).getCart(cartId),
      (err) => err instanceof ForbiddenError && err.status === 403)
    await assert.rejects(lc.getCart('c-nope'), (err) => err instanceof NotFoundError && err.code === 'no_cart')
    await assert.rejects(lc.request('GET', '/api/no-such-route'), NotAvailableError)
  })

  test('a cart follows a merge: the walk-in cart of an assistant moves into the cart of the customer', async () => {
    const assistant = createClient({ url: server.httpUrl, WebSocket, token: mintToken('sam', 'assistant', { secret: server.secret }), channel: 'store' })
    const { cartId: walkIn } = await assistant.createCart()
    const cart = track(assistant.openCart(walkIn, { user: { name: 'Sam' } }))
    const lineId = cart.addLine(MUG, 2)
    await waitFor(() => cart.holds[lineId]?.status === 'held', 'the walk-in hold')
    const { code } = await assistant.createInvite(walkIn)

    const customer = createClient({ url: server.httpUrl, WebSocket, token: mintToken('ada', 'customer', { secret: server.secret }) })
    const merged = new Promise((resolve) => cart.once('merged', resolve))
    const errors = []
    cart.on('error', (err) => errors.push(err))
    const { cartId: target } = await customer.acceptInvite(code)
    assert.deepEqual(await merged, { from: walkIn, to: target, reason: `cart merged into ${target}` })
    await cart.whenSynced()
    assert.equal(cart.cartId, target)
    await waitFor(() => cart.lines.some((l) => l.sku === MUG && l.qty === 2), 'the merged line in the followed cart')
    const moved = cart.lines.find((l) => l.sku === MUG)
    await waitFor(() => cart.holds[moved.id]?.status === 'held', 'the hold moved with the line')
    assert.ok(errors.some((e) => e instanceof MergedError && e.into === target), 'the app is told about the merge')
    assert.equal(cart.error, null)
  })

  test('a kiosk signed out by the server gets ForbiddenError', async () => {
    const customer = createClient({ url: server.httpUrl, WebSocket, token: mintToken('kim', 'customer', { secret: server.secret }) })
    const kiosk = createClient({ url: server.httpUrl, WebSocket, token: mintToken('k1', 'kiosk', { secret: server.secret }), channel: 'kiosk' })
    const { code } = await customer.createKioskCode()
    const { cartId } = await kiosk.startKioskSession('k1', code)
    const cart = track(kiosk.openCart(cartId))
    await cart.whenSynced()
    const closed = new Promise((resolve) => cart.once('closed', resolve))
    await kiosk.endKioskSession('k1')
    const err = await closed
    assert.ok(err instanceof ForbiddenError && err.closeCode === 4403, String(err))
    assert.throws(() => cart.addLine(MUG, 1), ForbiddenError)
    await assert.rejects(kiosk.getCart(cartId), ForbiddenError)
  })

  /** A client signed in as `sub` with `role`. */
  function signedIn (sub, role = 'customer') {
    return createClient({ url: server.httpUrl, WebSocket, token: mintToken(sub, role, { secret: server.secret }) })
  }

  /** An order of the bearer of `lc`: a held line, checked out. */
  async function anOrder (lc) {
    const { cartId } = await lc.createCart({ channel: 'web' })
    const cart = track(lc.openCart(cartId))
    const lineId = cart.addLine(MUG, 1)
    await waitFor(() => cart.holds[lineId]?.status === 'held', 'the line held')
    return (await lc.checkout(cartId)).orderId
  }

  test("watchOrders: a customer's feed gets its order's status change; an admin's without a customer gets every order's", async () => {
    const n = randomUUID().slice(0, 8)
    const admin = signedIn(`root-${n}`, 'admin')
    const ann = signedIn(`ann-${n}`)
    const bob = signedIn(`bob-${n}`)
    const annSeen = []
    const everySeen = []
    const annFeed = track(ann.watchOrders(`ann-${n}`, (e) => annSeen.push(e)))
    const everyFeed = track(admin.watchOrders(null, (e) => everySeen.push(e)))
    await waitFor(() => annFeed.status === 'open' && everyFeed.status === 'open', 'both feeds open')
    const annOrder = await anOrder(ann)
    const bobOrder = await anOrder(bob)
    await admin.setPayment(annOrder, 'paid', 'psp-ann')
    await admin.setPayment(bobOrder, 'paid', 'psp-bob')
    await admin.setOrderStatus(annOrder, 'dispatched')

    const statuses = (seen, orderId) => seen.filter((e) => e.orderId === orderId).map((e) => e.status)
    await waitFor(() => statuses(annSeen, annOrder).includes('dispatched'), "Ann's order dispatched on her feed")
    assert.deepEqual(statuses(annSeen, annOrder), ['awaiting_payment', 'confirmed', 'dispatched'])
    assert.ok(annSeen.every((e) => e.customerId === `ann-${n}`), "only Ann's orders on Ann's feed")
    await waitFor(() => statuses(everySeen, annOrder).includes('dispatched') && statuses(everySeen, bobOrder).includes('confirmed'),
      "both customers' orders on the admin's feed")
    assert.deepEqual(statuses(everySeen, annOrder), ['awaiting_payment', 'confirmed', 'dispatched'])
    assert.deepEqual(statuses(everySeen, bobOrder), ['awaiting_payment', 'confirmed'])
    assert.ok(everySeen.every((e) => e.type === 'order.created' || e.type === 'order.status'), 'order events only')
  })

  test('watchOrders without a customer is refused to staff (4403); a kiosk\'s stops when its customer signs out', async () => {
    const n = randomUUID().slice(0, 8)
    const otto = track(signedIn(`otto-${n}`, 'operator').watchOrders(null, () => {}))
    await waitFor(() => otto.status === 'closed', "the operator's feed refused")
    assert.ok(otto.error instanceof ForbiddenError && otto.error.closeCode === 4403, String(otto.error))

    const kim = signedIn(`kim-${n}`)
    const kiosk = signedIn(`kiosk-${n}`, 'kiosk')
    await kiosk.startKioskSession(`kiosk-${n}`, (await kim.createKioskCode()).code)
    const feed = track(kiosk.watchOrders(`kim-${n}`, () => {}))
    await waitFor(() => feed.status === 'open', "the kiosk's feed open")
    await kiosk.endKioskSession(`kiosk-${n}`)
    await waitFor(() => feed.status === 'closed', "the kiosk's feed stopped at sign-out")
    assert.ok(feed.error instanceof ForbiddenError && feed.error.closeCode === 4403, String(feed.error))
  })

  test('watchStock sees the last unit sold and back', async () => {
    const seen = []
    const stock = track(watchStock([LAST], (m) => seen.push(m), { url: server.httpUrl, WebSocket }))
    await waitFor(() => stock.levels.get(LAST) === 1, 'the initial level')
    await waitFor(() => stock.viewers.get(LAST) === 0, 'a viewers count (nobody views it yet)')
    stock.view(LAST) // browsing presence: this watcher now looks at the product
    await waitFor(() => stock.viewers.get(LAST) === 1, 'counted as its viewer')

    const { lc, cartId } = await shopper()
    const cart = track(lc.openCart(cartId))
    const lineId = cart.addLine(LAST, 1)
    await waitFor(() => stock.levels.get(LAST) === 0, 'sold out pushed')
    assert.ok(seen.some((m) => m.sku === LAST && m.available === 0 && typeof m.at === 'number'))
    await waitFor(() => cart.holds[lineId]?.status === 'held', 'the hold in the cart')

    // Another shopper gets nothing and is told so in the hold.
    const late = await shopper()
    const lateCart = track(late.lc.openCart(late.cartId))
    const lateLine = lateCart.addLine(LAST, 1)
    await waitFor(() => lateCart.holds[lateLine]?.status === 'unavailable', 'unavailable for the second shopper')

    cart.removeLine(lineId)
    await waitFor(() => stock.levels.get(LAST) === 1 || lateCart.holds[lateLine]?.status === 'held',
      'the unit back in stock (or re-held)')
  })
})

describe('client library across a server restart', { timeout: SUITE_TIMEOUT_MS }, () => {
  test('the cart and the stock feed reconnect by themselves; edits made while down are kept', async () => {
    const server = await LivecartServer.start({ command: 'demo' })
    try {
      const lc = createClient({ url: server.httpUrl, WebSocket })
      await lc.anonymousSession()
      const { cartId } = await lc.createCart()
      const cart = track(lc.openCart(cartId, { maxBackoff: 300 }))
      const stock = track(lc.watchStock([MUG], () => {}, { maxBackoff: 300 }))
      const first = cart.addLine(MUG, 1)
      await waitFor(() => cart.holds[first]?.status === 'held' && stock.levels.get(MUG) === 39, 'hold and level before')
      const statuses = []
      cart.on('connection', (e) => statuses.push(e.status))

      await server.kill() // SIGKILL: no goodbye, the sockets just drop
      await waitFor(() => cart.connection !== 'connected' && stock.status !== 'open', 'both to notice')
      const offline = cart.addLine(MUG, 2) // made while the server is down
      await server.restart()

      await waitFor(() => cart.connection === 'connected' && cart.synced, 'the cart to reconnect')
      await waitFor(() => cart.holds[offline]?.status === 'held', 'the offline edit reached the server and got its hold')
      await waitFor(() => stock.status === 'open' && stock.levels.get(MUG) === 37, 'the feed to reconnect with the new level')
      assert.ok(statuses.includes('disconnected') || statuses.includes('connecting'), JSON.stringify(statuses))
      assert.equal(cart.error, null)
    } finally {
      for (const thing of open) thing.close()
      open.clear()
      await server.dispose()
    }
  })
})

describe('client library against a scripted y-protocols server', { timeout: SUITE_TIMEOUT_MS }, () => {
  /** A minimal y-websocket server: syncs each room's doc; `script[room]` may close sockets instead. */
  let wss
  let url
  const docs = new Map()
  const script = {}
  const connections = []

  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((resolve) => wss.once('listening', resolve))
    url = `http://127.0.0.1:${wss.address().port}`
    wss.on('connection', (ws, req) => {
      const room = decodeURIComponent(new URL(req.url, 'http://x').pathname.split('/').pop())
      connections.push(room)
      const action = script[room]?.shift()
      if (action) return ws.close(action.code, action.reason)
      if (!docs.has(room)) docs.set(room, new Y.Doc())
      const doc = docs.get(room)
      const send = (build) => { const e = encoding.createEncoder(); build(e); ws.send(encoding.toUint8Array(e)) }
      send((e) => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, doc) })
      ws.on('message', (data) => {
        const decoder = decoding.createDecoder(new Uint8Array(data))
        if (decoding.readVarUint(decoder) !== 0) return // awareness etc.: ignored here
        const reply = encoding.createEncoder()
        encoding.writeVarUint(reply, 0)
        syncProtocol.readSyncMessage(decoder, reply, doc, ws)
        if (encoding.length(reply) > 1) ws.send(encoding.toUint8Array(reply))
      })
    })
  })
  afterEach(() => { for (const thing of open) thing.close(); open.clear() })
  after(() => new Promise((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(resolve) }))

  test('a 4409 close is followed to the cart the reason names', async () => {
    const target = new Y.Doc()
    target.getMap('lines').set('l1', new Y.Map(Object.entries({ sku: MUG, qty: 2 })))
    docs.set('c-merged-target', target)
    script['c-walk-in'] = [{ code: 4409, reason: 'cart merged into c-merged-target' }]
    const cart = track(openCart({ url, cartId: 'c-walk-in', token: 't', WebSocket }))
    const merged = new Promise((resolve) => cart.once('merged', resolve))
    const errors = []
    cart.on('error', (err) => errors.push(err))
    assert.deepEqual(await merged, { from: 'c-walk-in', to: 'c-merged-target', reason: 'cart merged into c-merged-target' })
    await cart.whenSynced()
    assert.equal(cart.cartId, 'c-merged-target')
    assert.deepEqual(cart.lines.map((l) => [l.id, l.qty]), [['l1', 2]])
    assert.ok(errors[0] instanceof MergedError && errors[0].into === 'c-merged-target', 'the app is told')
  })

  test('a 4409 without a new cart stops with MergedError (closed)', async () => {
    script['c-closed'] = [{ code: 4409, reason: 'cart closed' }]
    const cart = track(openCart({ url, cartId: 'c-closed', token: 't', WebSocket, fetch: async () => ({ ok: false, status: 404, json: async () => null }) }))
    await assert.rejects(cart.whenSynced(), (err) => err instanceof MergedError && err.into === null && err.code === 'closed')
  })

  test('retryable closes (1013, 1011, 4429) reconnect with the same doc and keep local edits', async () => {
    script['c-flaky'] = [{ code: 1013, reason: 'too slow' }, { code: 1011, reason: 'storage failed; reconnect' }, { code: 4429, reason: 'too fast' }]
    const cart = track(openCart({ url, cartId: 'c-flaky', token: 't', WebSocket, maxBackoff: 200 }))
    const doc = cart.doc
    const lineId = cart.addLine(MUG, 1)
    const statuses = []
    cart.on('connection', (e) => statuses.push(e.code ?? e.status))
    await cart.whenSynced(5_000)
    assert.equal(cart.doc, doc, 'no restart for retryable closes')
    assert.ok(statuses.includes(1013) && statuses.includes(1011) && statuses.includes(4429), JSON.stringify(statuses))
    await waitFor(() => docs.get('c-flaky')?.getMap('lines').has(lineId), 'the local edit reached the server after reconnecting')
  })

  test('close reasons name the merge target; close codes map to error classes', () => {
    assert.equal(mergeTarget('merged into c-AbC_123-xyz'), 'c-AbC_123-xyz')
    assert.equal(mergeTarget('mergedInto=cart42'), 'cart42')
    assert.equal(mergeTarget('cart closed'), null)
    assert.ok(errorFromClose(4413, 'big') instanceof RejectedError, '4413 is a rejection too')
    assert.equal(errorFromClose(4429).retryable, true)
    assert.equal(errorFromClose(1006).retryable, true)
  })
})
