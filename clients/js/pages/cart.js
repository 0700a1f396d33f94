/* eslint-env browser */
/**
 * Cart `/cart`: the shopper's cart, live — holds with a countdown, server pricing, who else is
 * in the cart, personalisation co-typed with staff, checkout steps, sign-in (which merges the
 * guest cart), a code for a kiosk and one to share with a shop assistant; the details step (name,
 * email, delivery, co-edited live with staff), the shopper's order history, live, and a chat with the shop.
 * `?cart=ID` opens another cart this shopper may open. Lines that may not be bought together
 * (`server.conflicts`) show a banner that splits them into a cart of their own in one click.
 */
import {
  ForbiddenError, NotAvailableError, NotFoundError, UnauthorizedError, createClient, tokenClaims
} from '../src/index.js'
import {
  LiveCatalog, cartView, chatPanel, demoPicker, notHeld as lineNotHeld, comingSoon, describeError, fill, h, icon, liveDot, money, presenceBar, reportCartEvents,
  rememberCart, setShopperSession, shopper, shopperCartId, siteFooter, store, toast, topbar, watchHoldLosses
} from './ui.js'
import { detailsForm, orderHistory } from './records.js'

const app = document.getElementById('app')
const STEPS = [['personalise', 'Personalise'], ['details', 'Details'], ['payment', 'Payment']]

const dot = liveDot('Live')
const head = h('div.page-head')
const body = h('div.cart-layout', h('div.card.loading-card', h('i.spinner'), 'Opening your cart…'))
const account = h('section.card.account-card')
const orderCard = h('section.card.order-card', { hidden: true })
const historyBox = h('div.history-box')
fill(app, topbar({ right: [dot.el] }), h('main.page.cart-page', head, body), siteFooter())

let session
let cart
let chat
let catalog
let details
let orderList

main().catch((err) => {
  fill(body, h('div.card.error-card', icon('alert', 22), h('div', h('strong', 'Your cart could not be opened.'), h('p', describeError(err))),
    h('button.btn', { onclick: () => location.reload() }, 'Try again')))
})

async function main () {
  session = await shopper()
  catalog = await new LiveCatalog(session.lc).load()
  const params = new URLSearchParams(location.search)
  let wanted = params.get('cart')
  const invite = params.get('invite')
  if (invite) {
    // A code from a shop assistant (QR on their tablet): this shopper takes over that cart.
    try {
      wanted = (await session.lc.acceptInvite(invite)).cartId
      rememberCart(wanted)
      toast('The cart from the shop is now yours.', { kind: 'success', title: 'Cart claimed' })
    } catch (err) {
      toast(err instanceof NotAvailableError ? 'Claiming a cart by code is not switched on on this server yet.' : describeError(err), { kind: 'error', title: 'Could not claim the cart' })
    }
    history.replaceState(null, '', location.pathname)
  }
  const cartId = wanted || await shopperCartId(session.lc)
  open(cartId)
}

function open (cartId) {
  cart?.close()
  chat?.destroy()
  cart = session.lc.openCart(cartId, { user: { name: session.signedIn ? session.customerId : 'Guest' } })
  reportCartEvents(cart)
  watchHoldLosses(cart, catalog)
  cart.on('connection', ({ status }) => dot.set(status))
  cart.on('merged', ({ to }) => { rememberCart(to); renderHead() })
  cart.on('closed', (err) => {
    if (err instanceof ForbiddenError || err instanceof NotFoundError) store.set('livecart.cart', null)
  })
  const checkout = checkoutPanel()
  const view = cartView(cart, catalog, {
    lc: session.lc,
    emptyText: 'Your cart is empty. Everything you add is held for you for a while.',
    emptyAction: h('a.btn.primary', { href: '/' }, 'Browse the shop'),
    footer: checkout.el,
    onClosedAction: h('button.btn.sm', {
      onclick: () => {
        store.set('livecart.cart', null)
        if (cart.error instanceof UnauthorizedError) store.set('livecart.shopper', null)
        location.href = '/cart'
      }
    }, 'Start again')
  })
  const conflicts = conflictBanner()
  chat = chatPanel(cart, { title: 'Ask the shop' })
  fill(body, h('div.cart-main', conflicts.el, view.el), h('aside.cart-side', orderCard, chat.el, account, historyBox))
  // The summary card moves to the side column on wide screens.
  body.querySelector('.cart-side').prepend(view.el.querySelector('.summary'))
  renderHead()
  renderAccount()
  cart.on('change', checkout.render)
  cart.on('change', conflicts.render)
  cart.on('checkout', (c) => { if (c?.orderId) loadOrder(c.orderId) })
  cart.on('synced', () => {
    checkout.render()
    if (cart.checkout?.orderId) loadOrder(cart.checkout.orderId)
    const target = location.hash.startsWith('#line-') && document.querySelector(`[data-line="${CSS.escape(location.hash.slice(6))}"]`)
    if (target) {
      target.scrollIntoView({ block: 'center' })
      target.querySelector('.perso input, .perso textarea')?.focus()
      history.replaceState(null, '', location.pathname + location.search)
    }
  })
  watchOrders()
}

function renderHistory () {
  orderList = orderHistory(session.lc, { title: 'Your orders', limit: 5 })
  fill(historyBox, orderList.el)
  orderList.load()
}

function renderHead () {
  fill(head,
    h('a.back', { href: '/' }, icon('back', 16), 'Continue shopping'),
    h('div.page-title-row',
      h('h1', 'Your cart'),
      presenceBar(cart)),
    h('p.cart-id', 'Cart ', h('code', cart.cartId)))
}

// -- what may not be bought together ---------------------------------------------------------

/**
 * The lines to move so that no conflict is left: those of the group named in the most conflicts
 * (on a tie, the group with fewer lines), e.g. the wine that shares a checkout with nothing else.
 */
function linesToSplit (found) {
  const count = new Map()
  for (const c of found) for (const g of c.groups) count.set(g, (count.get(g) || 0) + 1)
  const groupOf = (line) => catalog.get(line.sku)?.checkoutGroup || 'general'
  const inConflict = new Set(found.flatMap((c) => c.lineIds))
  const size = (g) => cart.lines.filter((l) => inConflict.has(l.id) && groupOf(l) === g).length
  const [group] = [...count.keys()].sort((a, b) => (count.get(b) - count.get(a)) || (size(a) - size(b)) || (a < b ? -1 : 1))
  return cart.lines.filter((l) => inConflict.has(l.id) && groupOf(l) === group).map((l) => l.id)
}

function conflictBanner () {
  const el = h('div.banners.conflicts', { 'aria-live': 'polite' })
  let busy = false
  let moved = null // the cart the last split made, linked until the shopper goes there
  const render = () => {
    const found = cart.status === 'open' ? (cart.conflicts || []) : []
    const rows = found.map((c) => h('div.banner.warn.conflict', { 'data-groups': c.groups.join(' ') }, icon('alert', 18), h('span', c.message)))
    if (found.length) {
      const lineIds = linesToSplit(found)
      rows.push(h('div.banner.info',
        h('span', `${lineIds.length === 1 ? 'This item goes' : `These ${lineIds.length} items go`} to a cart of their own, still held for you.`),
        h('button.btn.sm.primary.split', { disabled: busy || !lineIds.length, onclick: () => split(lineIds) }, 'Check these out separately')))
    }
    if (moved) {
      rows.push(h('div.banner.success.split-done', icon('check', 18),
        h('span', `${moved.count === 1 ? 'One item is' : `${moved.count} items are`} now in a cart of their own.`),
        h('a.btn.sm', { href: `/cart?cart=${encodeURIComponent(moved.cartId)}` }, 'Open that cart')))
    }
    fill(el, rows)
  }
  const split = async (lineIds) => {
    busy = true
    render()
    try {
      const { cartId } = await session.lc.splitCart(cart.cartId, lineIds)
      moved = { cartId, count: lineIds.length }
      toast('Check out this cart now, and the other one whenever you like.', { kind: 'success', title: 'Split into two carts' })
    } catch (err) {
      toast(describeError(err), { kind: 'error', title: 'Could not split the cart' })
    } finally {
      busy = false
      render()
    }
  }
  return { el, render }
}

// -- checkout steps ------------------------------------------------------------------------

function checkoutPanel () {
  const el = h('div.checkout')
  const note = h('p.checkout-note', { hidden: true })
  details?.destroy()
  details = detailsForm(cart, { title: 'Your details' })
  const detailsBox = h('div.details-box', details.el)
  let busy = false
  const render = () => {
    const personalised = cart.lines.filter((l) => Object.keys(catalog.get(l.sku)?.personalisation || {}).length)
    const missing = personalised.filter((l) => Object.entries(catalog.get(l.sku).personalisation)
      .some(([f, s]) => s.required && !(typeof l.personalisation?.[f] === 'string' ? l.personalisation[f].trim() : (l.personalisation?.[f] || []).length)))
    const notHeld = cart.lines.filter((l) => { const hd = cart.holds[l.id]; return !hd || hd.status !== 'held' || hd.qty < l.qty })
    // An expired or lost hold blocks payment (the total covers only what is held) until it is held again.
    const lost = cart.lines.filter((l) => lineNotHeld(l, cart.holds[l.id]))
    const step = cart.checkout?.step || (personalised.length ? 'personalise' : 'details')
    const apart = cart.conflicts?.length > 0 // checkout would answer 409 not_combinable
    const index = STEPS.findIndex(([s]) => s === step)
    const next = STEPS[index + 1]
    let action
    if (cart.status === 'checking_out' || cart.status === 'ordered') {
      action = h('button.btn.primary.wide', { disabled: true }, cart.status === 'ordered' ? 'Ordered' : 'Waiting for payment…')
    } else if (next) {
      const blocked = step === 'personalise' && missing.length
      const unheld = next[0] === 'payment' && lost.length
      action = h('button.btn.primary.wide', { disabled: busy || !cart.lines.length || blocked || unheld || apart, onclick: () => go(next[0]) },
        apart
          ? 'Check the items out separately first'
          : blocked
          ? `Personalise ${missing.length} ${missing.length === 1 ? 'item' : 'items'} first`
          : unheld ? `Hold ${lost.length === 1 ? 'every item' : `all ${lost.length} lines`} again to pay` : [`Continue to ${next[1].toLowerCase()}`, icon('arrow', 16)])
    } else {
      action = h('button.btn.primary.wide', { disabled: busy || !cart.lines.length || notHeld.length > 0 || apart, onclick: placeOrder },
        apart ? 'Check the items out separately first' : notHeld.length ? 'Some items are not held' : [icon('lock', 16), 'Place order'])
    }
    detailsBox.hidden = index < 1 || !['open', 'checking_out'].includes(cart.status)
    fill(el,
      h('ol.steps', STEPS.map(([s, label], i) => h('li', { class: i < index ? 'done' : i === index ? 'current' : '' }, h('span.step-dot', i < index ? icon('check', 12) : String(i + 1)), label))),
      detailsBox,
      action,
      note,
      h('p.fine', 'Your checkout step is kept: finish on any device.'))
  }
  const go = async (step) => {
    busy = true
    render()
    try {
      await session.lc.checkoutStep(cart.cartId, step)
      note.hidden = true
    } catch (err) {
      showNote(err)
    } finally {
      busy = false
      render()
    }
  }
  const placeOrder = async () => {
    busy = true
    render()
    try {
      const order = await session.lc.checkout(cart.cartId)
      toast(`Order ${order.orderId} placed: waiting for payment.`, { kind: 'success', title: 'Thank you!' })
    } catch (err) {
      showNote(err)
    } finally {
      busy = false
      render()
    }
  }
  const showNote = (err) => {
    if (err?.code === 'details_incomplete') {
      // "checkout details missing or invalid: name, email, address.city": each gets its error.
      details.showMissing(String(err.reason || '').split(':').pop().split(',').map((f) => f.trim()).filter(Boolean))
    }
    note.hidden = false
    note.className = 'checkout-note'
    if (err instanceof NotAvailableError) {
      note.classList.add('soon-inline')
      fill(note, h('span.soon-badge', 'Coming with the server'), ' Checkout is not switched on on this server yet. Your cart and holds are saved.')
    } else {
      note.classList.add('error')
      note.textContent = describeError(err)
    }
  }
  return { el, render }
}

// -- account: sign in (claim), kiosk code, share with an assistant ---------------------------

function renderAccount () {
  const claims = tokenClaims(session.token) || {}
  const guest = !session.signedIn
  const result = h('div.account-result')
  const run = async (button, fn) => {
    button.disabled = true
    try {
      await fn()
    } catch (err) {
      if (err instanceof NotAvailableError) fill(result, comingSoon(button.textContent, 'This needs a server feature that is not switched on here yet.', null))
      else toast(describeError(err), { kind: 'error' })
    } finally {
      button.disabled = false
    }
  }
  const signIn = h('button.btn.sm', { onclick: () => showSignIn(result) }, icon('user', 15), guest ? 'Sign in' : 'Switch account')
  const kiosk = h('button.btn.ghost.sm', {
    onclick: () => run(kiosk, async () => {
      const { code } = await session.lc.createKioskCode()
      fill(result, h('div.code-box', h('small', 'Type this code at a kiosk'), h('strong.big-code', code), h('small', 'Valid for a few minutes')))
    })
  }, icon('monitor', 15), 'Use a kiosk')
  const share = h('button.btn.ghost.sm', {
    onclick: () => run(share, async () => {
      const { code, expiresAt } = await session.lc.createInvite(cart.cartId)
      fill(result, h('div.code-box', h('small', 'Show this to a shop assistant'), h('strong.big-code', code), expiresAt ? h('small', 'Expires at ', new Date(expiresAt).toLocaleTimeString()) : null))
    })
  }, icon('store', 15), 'Get help in store')
  fill(account,
    h('div.account-head',
      h('span.avatar', { style: { background: cart.presence.self.color } }, guest ? icon('user', 16) : (claims.sub || '?')[0].toUpperCase()),
      h('div', h('strong', guest ? 'Shopping as a guest' : `Signed in as ${claims.sub}`), h('small', guest ? 'Sign in to keep this cart on every device.' : 'Your cart follows you to the app, the kiosk and the shop.'))),
    h('div.account-actions', signIn, kiosk, share),
    result)
}

function showSignIn (result) {
  const input = h('textarea.token-input', { rows: 3, placeholder: 'Customer token', spellcheck: false, 'aria-label': 'Customer token' })
  const error = h('p.form-error', { hidden: true })
  const form = h('form.signin-inline', {
    onsubmit: (e) => {
      e.preventDefault()
      signInWith(input.value.trim())
    }
  },
  demoPicker({ roles: ['customer'], onToken: (token) => signInWith(token) }),
  h('label.field', h('span', 'Customer token'), input),
  h('p.hint', 'Your shop’s sign-in gives this. For development: ', h('code', 'livecart token --sub ada --role customer')),
  error,
  h('button.btn.primary.sm', { type: 'submit' }, 'Sign in and keep my cart'))
  async function signInWith (token) {
    const claims = tokenClaims(token)
    if (!claims || claims.role !== 'customer') {
      error.hidden = false
      error.textContent = 'That is not a customer token.'
      return
    }
    const customer = createClient({ token })
    try {
      const anonymous = session.signedIn ? null : session.token
      const { cartId } = anonymous ? await customer.claim(anonymous) : await customer.createCart({ channel: 'web' })
      setShopperSession({ token, customerId: claims.sub })
      session = { lc: customer, token, customerId: claims.sub, signedIn: true }
      rememberCart(cartId)
      cart.reconnect({ token, cartId })
      renderHead()
      renderAccount()
      watchOrders()
      toast(anonymous ? 'Your guest cart was added to your account.' : 'Signed in.', { kind: 'success', title: `Welcome, ${claims.sub}` })
    } catch (err) {
      error.hidden = false
      error.textContent = err instanceof NotAvailableError
        ? 'Signing in is not switched on on this server yet (it needs the claim endpoint).'
        : describeError(err)
    }
  }
  fill(result, form)
  input.focus()
}

// -- order status, live ----------------------------------------------------------------------

const ORDER_STEPS = [['awaiting_payment', 'Payment'], ['confirmed', 'Confirmed'], ['dispatched', 'On its way'], ['delivered', 'Delivered']]
let shownOrder = null

async function loadOrder (orderId) {
  if (shownOrder?.id === orderId) return
  try {
    renderOrderStatus(await session.lc.order(orderId))
  } catch (err) {
    if (!(err instanceof NotAvailableError)) toast(describeError(err), { kind: 'warn', title: 'Order' })
  }
}

function renderOrderStatus (order) {
  const id = order.id || order.orderId
  if (!id || (order.cartId && cart && order.cartId !== cart.cartId)) return
  shownOrder = { ...(shownOrder?.id === id ? shownOrder : {}), ...order, id }
  const state = shownOrder.state
  const index = ORDER_STEPS.findIndex(([s]) => s === state)
  const failed = state === 'payment_failed' || state === 'cancelled'
  orderCard.hidden = false
  fill(orderCard,
    h('div.card-head', h('h3', icon('box', 18), 'Your order'), h('span.tag', { class: failed ? 'bad' : state === 'delivered' ? 'ok' : 'info' }, state.replace('_', ' '))),
    h('p.cart-id', 'Order ', h('code', id), shownOrder.total != null ? ` · ${money(shownOrder.total, shownOrder.currency)}` : ''),
    failed
      ? h('p.checkout-note.error', state === 'cancelled' ? 'This order was cancelled.' : 'The payment did not go through: your cart is open again, with its holds.')
      : h('ol.steps', { style: { marginTop: '12px' } }, ORDER_STEPS.map(([s, label], i) => h('li', { class: i < index || state === 'delivered' ? 'done' : i === index ? 'current' : '' }, h('span.step-dot', i < index || state === 'delivered' ? icon('check', 12) : String(i + 1)), label))),
    state === 'awaiting_payment' ? h('p.hint', { style: { marginTop: '10px' } }, 'The shop’s payment page takes it from here. In this demo, staff mark it paid on the Shop floor page.') : null)
}

let feed
function watchOrders () {
  renderHistory()
  feed?.close()
  feed = session.lc.watchMe((event) => {
    const type = event.type
    if (type === 'order.status' || type === 'order.created') {
      const words = { awaiting_payment: 'waiting for payment', confirmed: 'confirmed: payment received', payment_failed: 'not paid: the payment failed', dispatched: 'on its way', delivered: 'delivered', cancelled: 'cancelled' }
      toast(`Order ${event.orderId} is ${words[event.state] || event.state}.`, { kind: event.state === 'payment_failed' || event.state === 'cancelled' ? 'warn' : 'success', title: 'Your order' })
      renderOrderStatus(event)
      orderList?.update(event)
    } else if (type === 'gap') {
      orderList?.refresh() // events were missed: the newest orders again
    } else if (type === 'discount.offered') {
      const off = event.percentOff ? `${event.percentOff}% off` : event.amountOff ? `${money(event.amountOff)} off` : 'a discount'
      toast(`The shop gave you ${off} with ${event.code}. It is already in your total.`, { kind: 'success', title: 'A little something' })
    }
  })
  feed.on('error', (err) => {
    if (!(err instanceof NotAvailableError) && !(err instanceof UnauthorizedError)) toast(describeError(err), { kind: 'warn' })
  })
  let opened = false
  feed.on('status', (status) => { // after a reconnect: what changed while it was away
    if (status === 'open' && opened) orderList?.refresh()
    if (status === 'open') opened = true
  })
}
