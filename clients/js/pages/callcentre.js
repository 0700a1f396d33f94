/* eslint-env browser */
/**
 * Call centre `/call-centre`: look a customer up by id while they are on the phone, open one
 * of their carts (or start one), and edit it live — every line records who added it and that
 * it came from the call centre.
 */
import { ForbiddenError, NotAvailableError } from '../src/index.js'
import {
  addProduct, cartView, chatPanel, clock, comingSoon, describeError, fill, h, icon, liveCatalogIn,
  presenceBar, productArt, productPicker, reportCartEvents, siteFooter, staffPage, toast
} from './ui.js'

staffPage({
  key: 'livecart.staff.callcentre',
  roles: ['operator', 'admin'],
  title: 'Call centre',
  lead: 'Look up the customer on the phone and edit their cart with them, live.',
  render: start
})

async function start ({ lc, claims, main, right }) {
  const catalog = await liveCatalogIn(lc, right)
  let cart = null
  let view = null
  let chat = null
  let callStarted = null
  const timer = h('span.call-timer')
  setInterval(() => { if (callStarted) timer.textContent = clock(Date.now() - callStarted) }, 1000)

  const input = h('input', { placeholder: 'Customer id, e.g. ada or anon-…', autocomplete: 'off', 'aria-label': 'Customer id' })
  const caller = h('div.caller')
  const cartPane = h('div.staff-main')
  const side = h('div.cc-picker')
  const lookup = h('section.card#lookup',
    h('div.card-head', h('h2', icon('phone', 18), 'Caller')),
    h('form.inline-form', { onsubmit: (e) => { e.preventDefault(); find(input.value.trim()) } }, input, h('button.btn.primary', { type: 'submit' }, icon('search', 16), 'Look up')),
    caller)
  fill(main,
    h('div.section-title', h('h1', 'On the phone'), h('span.tag.info', icon('phone', 12), 'call-centre channel')),
    h('div.cc-grid', lookup, cartPane, side),
    siteFooter('staff'))
  fill(cartPane, h('div.empty', h('div.empty-icon', icon('phone', 26)), h('p', 'Look up the caller to see and edit their carts.')))

  async function find (customerId) {
    if (!customerId) return
    callStarted = Date.now()
    timer.textContent = '0:00'
    fill(caller, h('p.muted', { style: { marginTop: '12px' } }, h('i.spinner'), ' Looking up…'))
    const profile = h('div')
    let carts = []
    try {
      carts = (await lc.listCarts(customerId)).carts || []
    } catch (err) {
      const msg = err instanceof ForbiddenError
        ? comingSoon('Operators opening customers’ carts', `The server does not let a ${claims.role} list a customer’s carts yet (${err.reason}).`, 'GET /api/carts?owner= as operator')
        : h('p.form-error', describeError(err))
      fill(caller, h('div', { style: { marginTop: '12px' } }, msg))
      return
    }
    const newCart = h('button.btn.sm', { onclick: () => create(customerId, newCart) }, icon('plus', 14), 'New cart')
    fill(caller,
      h('div.cart-header-row', { style: { margin: '14px 0 10px' } },
        h('span.avatar', { style: { background: '#2d5f8b', margin: 0, border: 0 } }, customerId.slice(0, 1).toUpperCase()),
        h('div', { style: { flex: 1 } }, h('strong', customerId), h('small.muted', { style: { display: 'block' } }, 'On call · ', timer)),
        newCart),
      carts.length
        ? h('ul.cart-list', [...carts].sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0)).map((c) => h('li',
          icon('cart', 18),
          h('div', h('strong', `Cart from ${c.channel || 'web'}`), h('small', `${c.id} · ${c.createdAt ? new Date(c.createdAt).toLocaleString() : ''}`)),
          h('button.btn.sm.primary', { onclick: () => open(c.id) }, 'Open'))))
        : h('p.muted', 'No carts yet.'),
      profile)
    lc.customer(customerId).then((p) => {
      const favs = (p.favourites || []).map((f) => (typeof f === 'string' ? f : f.sku)).filter((s) => catalog.get(s))
      fill(profile, h('div.profile', { style: { marginTop: '14px' } },
        h('div', h('h4', 'Favourites'), favs.length
          ? h('ul.mini-list', favs.map((s) => h('li', productArt(s, { size: 'sm' }), h('span', catalog.name(s)), h('button.btn.sm', { disabled: !cart, onclick: () => add(catalog.get(s)) }, 'Add'))))
          : h('p.muted', 'None yet.'))))
    }, (err) => {
      if (err instanceof NotAvailableError) fill(profile, h('div', { style: { marginTop: '14px' } }, comingSoon('Customer profile', 'Favourites and recent orders of the caller.', 'GET /api/customers/{id}')))
    })
  }

  async function create (owner, button) {
    button.disabled = true
    try {
      const { cartId } = await lc.createCart({ channel: 'call-centre', owner })
      open(cartId)
      find(owner)
    } catch (err) {
      toast(err instanceof ForbiddenError ? `A ${claims.role} cannot start carts on this server yet.` : describeError(err), { kind: 'error' })
    } finally {
      button.disabled = false
    }
  }

  function open (cartId) {
    cart?.close()
    view?.destroy()
    chat?.destroy()
    cart = lc.openCart(cartId, { channel: 'call-centre', user: { name: claims.sub, role: claims.role } })
    reportCartEvents(cart)
    cart.on('merged', () => renderHead())
    view = cartView(cart, catalog, { emptyText: 'This cart is empty.', staff: true, lc })
    const head = h('div.cart-header')
    const renderHead = () => fill(head,
      h('div.cart-header-row', h('h2', 'Customer’s cart'), presenceBar(cart)),
      h('p.cart-id', 'Cart ', h('code', cart.cartId)))
    renderHead()
    fill(cartPane, head, view.el)
    chat = chatPanel(cart, { title: 'Chat with the customer', staff: true })
    fill(side, chat.el, productPicker(catalog, { onAdd: add, title: 'Add for the caller' }))
  }

  function add (product) {
    if (!cart) return toast('Open a cart first.', { kind: 'warn' })
    try {
      addProduct(cart, product)
    } catch (err) {
      toast(describeError(err), { kind: 'error', title: 'Could not add' })
    }
  }
}
