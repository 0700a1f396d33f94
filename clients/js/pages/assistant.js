/* eslint-env browser */
/**
 * Shop assistant `/assistant` (store tablet): start a cart for a walk-in customer and show its
 * invite code (and a QR code) so they can claim it; join a customer's own cart by their code;
 * see the customer's favourites, past orders (live) and suggestions and add from them. Follows the
 * cart when the customer signs in and their walk-in cart merges into their own.
 */
import qrcode from 'qrcode-generator'
import { ForbiddenError, NotAvailableError } from '../src/index.js'
import {
  addProduct, cartView, chatPanel, comingSoon, describeError, fill, h, icon, liveCatalogIn, presenceBar,
  productArt, productPicker, reportCartEvents, siteFooter, staffPage, store, toast
} from './ui.js'
import { detailsForm, orderHistory } from './records.js'

const RECENT = 'livecart.assistant.recent'
let past = null // the served customer's order history, live
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

staffPage({
  key: 'livecart.staff.assistant',
  roles: ['assistant', 'admin'],
  title: 'Assistant',
  lead: 'Start carts for walk-in customers, join a customer’s cart with their code, and sell from their favourites.',
  render: start
})

async function start ({ lc, claims, main, right }) {
  const catalog = await liveCatalogIn(lc, right)
  let cart = null
  let view = null
  let chat = null

  const home = () => {
    past?.destroy()
    cart?.close()
    view?.destroy()
    cart = null
    const walkInNote = h('div')
    const walkIn = h('button.btn.primary.wide', { onclick: () => startWalkIn(walkIn, walkInNote) }, icon('plus', 16), 'Start a walk-in cart')
    const code = h('input.code-input', { maxlength: 6, placeholder: 'ABC123', autocomplete: 'off', 'aria-label': 'Customer code' })
    const joinNote = h('div')
    const join = h('form.inline-form', {
      onsubmit: async (e) => {
        e.preventDefault()
        if (!code.value.trim()) return
        try {
          const { cartId } = await lc.acceptInvite(code.value)
          open(cartId, { joined: true })
        } catch (err) {
          if (err instanceof NotAvailableError) fill(joinNote, comingSoon('Joining by code', 'Customers show a 6-character code from their cart; the assistant types it here to join their cart live.', 'POST /api/invites/{code}/accept'))
          else toast(describeError(err), { kind: 'error', title: 'Could not join' })
        }
      }
    }, code, h('button.btn.primary', { type: 'submit' }, 'Join'))
    const byId = h('input', { placeholder: 'Cart id (c-…)', autocomplete: 'off', 'aria-label': 'Cart id' })
    const recent = (store.get(RECENT) || []).slice(0, 5)
    fill(main,
      h('div.section-title', h('h1', 'Help a customer')),
      h('div.start-grid',
        h('section.card.action-card',
          h('div.action-icon', icon('store', 22)),
          h('h2', 'Walk-in customer'),
          h('p', 'Start a cart for someone in the shop before they sign in. They claim it from their phone with a code, and it merges into their own cart.'),
          walkIn, walkInNote),
        h('section.card.action-card',
          h('div.action-icon', icon('phone', 22)),
          h('h2', 'Customer’s own cart'),
          h('p', 'The customer taps “Get help in store” in their cart and shows you the code. You both edit the same cart, live.'),
          join, joinNote)),
      h('section.card', { style: { marginTop: '16px' } },
        h('div.card-head', h('h3', 'Open a cart by id'), h('small.muted', 'Carts you were invited to or started')),
        h('form.inline-form', { onsubmit: (e) => { e.preventDefault(); if (byId.value.trim()) open(byId.value.trim()) } }, byId, h('button.btn', { type: 'submit' }, 'Open')),
        recent.length
          ? h('ul.cart-list', { style: { marginTop: '12px' } }, recent.map((r) => h('li', icon('cart', 18), h('div', h('strong', r.label || 'Cart'), h('small', r.id)), h('button.btn.sm', { onclick: () => open(r.id) }, 'Open'))))
          : null),
      siteFooter('staff'))
  }

  const startWalkIn = async (button, note) => {
    button.disabled = true
    try {
      // An assistant's cart belongs to a new walk-in shopper; an admin names one.
      const owner = claims.role === 'admin' ? `walkin-${Math.random().toString(36).slice(2, 10)}` : undefined
      const { cartId } = await lc.createCart({ channel: 'store', owner })
      open(cartId, { walkIn: true })
    } catch (err) {
      if (err instanceof ForbiddenError || err instanceof NotAvailableError) {
        fill(note, comingSoon('Walk-in carts for assistants', `The server does not let a ${claims.role} start carts yet (${err.reason}). Sign in with an admin token to try it now.`, 'POST /api/carts as assistant'))
      } else toast(describeError(err), { kind: 'error' })
    } finally {
      button.disabled = false
    }
  }

  const open = (cartId, { walkIn = false, joined = false } = {}) => {
    cart?.close()
    view?.destroy()
    chat?.destroy()
    remember(cartId, walkIn ? 'Walk-in cart' : joined ? 'Customer’s cart' : 'Cart')
    cart = lc.openCart(cartId, { channel: 'store', user: { name: claims.sub, role: claims.role } })
    reportCartEvents(cart)
    const header = h('div.cart-header')
    const invite = h('section.card')
    const customer = h('section.card')
    view = cartView(cart, catalog, { emptyText: 'No items yet: add some from the list.', showNote: true, staff: true, lc })
    const details = detailsForm(cart, { title: 'Checkout details' })
    const renderHeader = () => {
      const tags = [h('span.tag', icon('store', 12), walkIn ? 'Walk-in' : 'Customer cart')]
      if (cart.status !== 'open') tags.push(h('span.tag.info', cart.status.replace('_', ' ')))
      fill(header,
        h('div.cart-header-row',
          h('button.icon-btn', { 'aria-label': 'Back', onclick: home }, icon('back', 18)),
          h('h2', walkIn ? 'Walk-in cart' : 'Customer’s cart'),
          tags,
          presenceBar(cart)),
        h('p.cart-id', 'Cart ', h('code', cart.cartId)))
    }
    renderHeader()
    cart.on('merged', ({ to }) => {
      walkIn = false
      remember(to, 'Customer’s cart')
      toast('The customer signed in: their carts were combined and you now see their cart.', { kind: 'success', title: 'Cart claimed' })
      renderHeader()
      loadCustomer(customer, cart, catalog, lc)
      fill(invite, h('div.card-head', h('h3', icon('check', 18), 'Claimed by the customer')), h('p.muted', 'You are now in the customer’s own cart.'))
    })
    cart.on('status', renderHeader)
    renderInvite(invite, cart, lc, walkIn)
    chat = chatPanel(cart, { title: 'Chat with the customer', staff: true })
    fill(main,
      header,
      h('div.staff-grid',
        h('div.staff-main', view.el, h('section.card.details-card', { style: { marginTop: '16px' } }, details.el)),
        h('aside.staff-side',
          chat.el,
          invite,
          customer,
          productPicker(catalog, { onAdd: (p) => add(p) }))),
      siteFooter('staff'))
    loadCustomer(customer, cart, catalog, lc)
  }

  const add = (product) => {
    try {
      addProduct(cart, product)
    } catch (err) {
      toast(describeError(err), { kind: 'error', title: 'Could not add' })
    }
  }
  customerAdd = add

  home()
}

let customerAdd = () => {}

function remember (id, label) {
  const list = (store.get(RECENT) || []).filter((r) => r.id !== id)
  list.unshift({ id, label, at: Date.now() })
  store.set(RECENT, list.slice(0, 8))
}

function renderInvite (el, cart, lc, walkIn) {
  const body = h('div')
  const button = h('button.btn.primary', {
    onclick: async () => {
      button.disabled = true
      try {
        const { code, expiresAt } = await lc.createInvite(cart.cartId)
        const qr = qrcode(0, 'M')
        qr.addData(`${location.origin}/cart?invite=${encodeURIComponent(code)}`)
        qr.make()
        const box = h('div.qr')
        box.innerHTML = qr.createSvgTag({ cellSize: 4, margin: 0, scalable: true })
        fill(body, h('div.invite', box, h('div', h('small.muted', 'Code'), h('div.big-code', code),
          expiresAt ? h('small.muted', 'Valid until ', new Date(expiresAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })) : null)))
      } catch (err) {
        if (err instanceof NotAvailableError) fill(body, comingSoon('Invite codes', 'A 6-character code and a QR code the customer scans to claim this cart on their phone.', 'POST /api/carts/{id}/invites'))
        else toast(describeError(err), { kind: 'error' })
      } finally {
        button.disabled = false
      }
    }
  }, icon('qr', 16), 'Show code for the customer')
  fill(el,
    h('div.card-head', h('h3', walkIn ? 'Hand over to the customer' : 'Invite someone')),
    h('p.muted', { style: { fontSize: '14px', marginBottom: '12px' } }, walkIn
      ? 'When they sign in on their phone and enter this code, this cart becomes theirs — holds included.'
      : 'Another person can join this cart with a code.'),
    button, body)
}

async function loadCustomer (el, cart, catalog, lc, retry = true) {
  past?.destroy()
  past = null
  fill(el, h('div.card-head', h('h3', 'Customer')), h('p.muted', h('i.spinner'), ' Loading…'))
  let owner = null
  try {
    owner = (await lc.getCart(cart.cartId)).owner
  } catch { /* an assistant may not read the cart record yet */ }
  if (!owner || owner.startsWith('walkin-') || owner.startsWith('anon-')) {
    fill(el, h('div.card-head', h('h3', 'Customer')),
      h('p.muted', { style: { fontSize: '14px' } }, owner?.startsWith('anon-') ? 'A guest who has not signed in yet.' : 'Walk-in customer: not signed in yet. Their favourites and past orders show here once they claim the cart.'))
    return
  }
  try {
    let profile
    try {
      profile = await lc.customer(owner)
    } catch (err) {
      // Right after a claim, access to the customer's profile may be a moment behind the merge.
      if (!(err instanceof ForbiddenError) || !retry) throw err
      await sleep(1000)
      return loadCustomer(el, cart, catalog, lc, false)
    }
    const skuOf = (x) => (typeof x === 'string' ? x : x?.sku)
    const item = (sku, note) => {
      const p = catalog.get(sku)
      if (!p) return null
      return h('li', productArt(sku, { size: 'sm' }), h('span', p.name, note ? h('small.muted', ` · ${note}`) : null), h('button.btn.sm', { onclick: () => customerAdd(p) }, 'Add'))
    }
    const favourites = (profile.favourites || []).map(skuOf).filter(Boolean)
    const orders = profile.recentOrders || profile.orders || []
    const suggestions = profile.suggestions || []
    past?.destroy()
    past = orderHistory(lc, { customer: owner, title: 'Orders', limit: 5 })
    past.load()
    past.follow()
    fill(el,
      h('div.card-head', h('h3', profile.name || owner), h('span.tag', icon('user', 12), owner)),
      h('div.profile',
        h('div', h('h4', 'Favourites'), favourites.length ? h('ul.mini-list', favourites.map((s) => item(s))) : h('p.muted', 'None yet.')),
        h('div', h('h4', 'Past orders'), orders.length
          ? h('ul.mini-list', orders.slice(0, 3).flatMap((o) => (o.lines ? Object.values(o.lines) : o.items || []).slice(0, 3).map((l) => item(l.sku, `ordered ${o.createdAt ? new Date(o.createdAt).toLocaleDateString() : ''}`))))
          : h('p.muted', 'No orders yet.')),
        h('div', h('h4', 'Suggestions'), suggestions.length
          ? h('ul.mini-list', suggestions.slice(0, 5).map((s) => item(skuOf(s), s.reason)))
          : h('p.muted', 'Nothing to suggest yet.'))),
      past.el)
  } catch (err) {
    if (err instanceof NotAvailableError) {
      fill(el, h('div.card-head', h('h3', 'Customer'), h('span.tag', icon('user', 12), owner)),
        comingSoon('Favourites, past orders, suggestions', 'The customer’s profile — favourites, recent orders and suggestions — with one-tap add.', 'GET /api/customers/{id}'))
    } else {
      fill(el, h('div.card-head', h('h3', 'Customer')), h('p.form-error', describeError(err)))
    }
  }
}
