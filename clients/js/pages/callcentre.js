/* eslint-env browser */
/**
 * Call centre `/call-centre`: find the customer on the phone (by name, email, phone, id, or
 * "bought MUG-LAST"), see their orders (live), open one of their carts (or start one), and edit it live,
 * the checkout details included — every line records who added it and that it came from the call centre.
 */
import { ForbiddenError, NotAvailableError } from '../src/index.js'
import {
  addProduct, cartView, chatPanel, clock, comingSoon, describeError, fill, h, icon, liveCatalogIn, money,
  presenceBar, productArt, productPicker, reportCartEvents, siteFooter, staffPage, toast
} from './ui.js'
import { detailsForm, orderHistory } from './records.js'

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
  let details = null
  let callStarted = null
  let past = null // the caller's order history, live
  const timer = h('span.call-timer')
  setInterval(() => { if (callStarted) timer.textContent = clock(Date.now() - callStarted) }, 1000)

  const input = h('input', { placeholder: 'Name, email, phone, id, or “bought MUG-LAST”', autocomplete: 'off', 'aria-label': 'Find a customer' })
  const results = h('div.customer-search')
  const caller = h('div.caller')
  const cartPane = h('div.staff-main')
  const side = h('div.cc-picker')
  const lookup = h('section.card#lookup',
    h('div.card-head', h('h2', icon('phone', 18), 'Caller')),
    h('form.inline-form', { onsubmit: (e) => { e.preventDefault(); search(input.value.trim()) } }, input, h('button.btn.primary', { type: 'submit' }, icon('search', 16), 'Find')),
    results,
    caller)
  fill(main,
    h('div.section-title', h('h1', 'On the phone'), h('span.tag.info', icon('phone', 12), 'call-centre channel')),
    h('div.cc-grid', lookup, cartPane, side),
    siteFooter('staff'))
  fill(cartPane, h('div.empty', h('div.empty-icon', icon('phone', 26)), h('p', 'Look up the caller to see and edit their carts.')))

  /** "bought SKU,SKU [since DATE]", "category NAME", or words of a name, email or phone. */
  async function search (text) {
    if (!text) return
    const bought = /^bought\s+(\S+)(?:\s+since\s+(\S+))?$/i.exec(text)
    const category = /^category\s+(.+)$/i.exec(text)
    const query = bought ? { bought: bought[1].toUpperCase(), since: bought[2] } : category ? { category: category[1].trim() } : { q: text }
    fill(results, h('p.muted', h('i.spinner'), ' Searching…'))
    let found = []
    try {
      found = (await lc.searchCustomers({ ...query, limit: 20 })).customers
    } catch (err) {
      fill(results, h('p.form-error', describeError(err)))
      return
    }
    // An id nobody has ordered with yet (a guest, a new customer) is looked up as it is.
    if (!found.length && !bought && !category && !/[\s@]/.test(text)) {
      fill(results)
      return find(text)
    }
    fill(results, found.length
      ? h('ul.customer-results', found.map((c) => h('li', { dataset: { customer: c.id } },
        h('span.avatar', { style: { background: '#2d5f8b', margin: 0, border: 0 } }, (c.name || c.id).slice(0, 1).toUpperCase()),
        h('div', h('strong', c.name || c.id), h('small', [c.email, c.phone].filter(Boolean).join(' · ') || c.id),
          h('small', `${c.orders} ${c.orders === 1 ? 'order' : 'orders'} · ${money(c.spent)}${c.lastOrderAt ? ` · last ${new Date(c.lastOrderAt).toLocaleDateString()}` : ''}`)),
        h('button.btn.sm.primary', { onclick: () => find(c.id) }, 'Open'))))
      : h('p.muted', { style: { marginTop: '10px' } }, 'Nobody found.'))
  }

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
    past?.destroy()
    past = orderHistory(lc, { customer: customerId, title: 'Orders', limit: 5 })
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
      profile,
      past.el)
    past.load()
    past.follow()
    lc.customer(customerId).then((p) => {
      if (p.name || p.email) caller.querySelector('.cart-header-row strong').textContent = [p.name, p.email].filter(Boolean).join(' · ')
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
    details?.destroy()
    details = detailsForm(cart, { title: 'Delivery details' })
    const head = h('div.cart-header')
    const renderHead = () => fill(head,
      h('div.cart-header-row', h('h2', 'Customer’s cart'), presenceBar(cart)),
      h('p.cart-id', 'Cart ', h('code', cart.cartId)))
    renderHead()
    fill(cartPane, head, view.el, h('section.card.details-card', details.el))
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
