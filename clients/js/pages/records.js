/* eslint-env browser */
/**
 * The shop's memory on the pages: the checkout details form bound live to the cart's
 * `meta.details` (co-edited: an operator types the address while the shopper watches), a
 * read-only live summary of them for staff, and an order history list that follows status
 * changes (the cart page feeds it from /ws/me; the staff pages let it follow /ws/orders).
 */
import { describeError, fill, h, icon, money, Y } from './ui.js'

// The server's bounds (crdt/details.py): the inputs never let a client type past them.
const LIMITS = { name: 200, email: 254, phone: 32, store: 100, line1: 200, line2: 200, city: 100, postcode: 20, country: 56 }
const EMAIL = /^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$/
export const STORES = ['London Soho', 'London Camden', 'Manchester Arndale', 'Edinburgh Princes St']
const FIELDS = [
  { key: 'name', label: 'Full name', autocomplete: 'name' },
  { key: 'email', label: 'Email', type: 'email', autocomplete: 'email', inputmode: 'email' },
  { key: 'phone', label: 'Phone', type: 'tel', autocomplete: 'tel', inputmode: 'tel', optional: true }
]
const ADDRESS = [
  { key: 'line1', label: 'Address', autocomplete: 'address-line1' },
  { key: 'line2', label: 'Flat, floor', autocomplete: 'address-line2', optional: true },
  { key: 'city', label: 'Town or city', autocomplete: 'address-level2' },
  { key: 'postcode', label: 'Postcode', autocomplete: 'postal-code' },
  { key: 'country', label: 'Country', autocomplete: 'country-name' }
]
const MESSAGES = { email: 'Enter an email address like name@example.com.', delivery: 'Choose delivery or collection.' }

/** The details as plain data (what the doc holds now). */
export function readDetails (cart) {
  const details = cart.doc?.getMap('meta').get('details')
  return details instanceof Y.Map ? details.toJSON() : {}
}

/**
 * The details step: labelled inputs with autocomplete hints, each written to `meta.details` as it
 * is typed and updated live when someone else types. `showMissing(fields)` puts an error next to
 * each field the server named (409 details_incomplete). `editable: false` shows them read-only.
 */
export function detailsForm (cart, { editable = true, title = 'Your details' } = {}) {
  const inputs = new Map()
  const errors = new Map()
  const uid = Math.random().toString(36).slice(2, 8)
  let bound = null

  const field = ({ key, label, type = 'text', autocomplete, inputmode, optional }, path) => {
    const id = `d-${uid}-${path.join('-')}`
    const input = h('input', {
      id, name: path.join('.'), type, autocomplete, inputmode, maxlength: LIMITS[key], disabled: !editable,
      'aria-describedby': `${id}-error`,
      oninput: () => write(path, input.value),
      onblur: () => check(path, input.value)
    })
    const error = h('p.form-error.field-error', { id: `${id}-error`, role: 'alert', hidden: true })
    inputs.set(path.join('.'), input)
    errors.set(path.join('.'), error)
    return h('div.field', { dataset: { field: path.join('.') } }, h('label', { for: id }, label, optional ? h('small.muted', ' optional') : null), input, error)
  }

  const radios = ['ship', 'collect'].map((value) => {
    const input = h('input', { type: 'radio', name: `delivery-${uid}`, value, disabled: !editable, onchange: () => { write(['delivery'], value); render() } })
    inputs.set(`delivery:${value}`, input)
    return h('label.choice', input, value === 'ship' ? ' Deliver to an address' : ' Collect in a shop')
  })
  const deliveryError = h('p.form-error.field-error', { role: 'alert', hidden: true })
  errors.set('delivery', deliveryError)
  const storeId = `d-${uid}-store`
  const store = h('select', { id: storeId, name: 'store', disabled: !editable, onchange: () => write(['store'], store.value) },
    h('option', { value: '' }, 'Choose a shop…'), STORES.map((s) => h('option', { value: s }, s)))
  inputs.set('store', store)
  const storeError = h('p.form-error.field-error', { role: 'alert', hidden: true })
  errors.set('store', storeError)

  const address = h('div.details-address', ADDRESS.map((f) => field(f, ['address', f.key])))
  const collect = h('div.field', { dataset: { field: 'store' } }, h('label', { for: storeId }, 'Shop'), store, storeError)
  const who = h('small.muted.details-live')
  const el = h('section.details-form', { 'aria-label': title },
    h('div.card-head', h('h3', icon('user', 18), title), who),
    h('div.details-grid', FIELDS.map((f) => field(f, [f.key]))),
    h('fieldset.details-delivery', h('legend', 'Delivery'), h('div.choices', radios), deliveryError),
    address, collect)

  function detailsMap (create) {
    const meta = cart.doc?.getMap('meta')
    if (!meta) return null
    let details = meta.get('details')
    if (!(details instanceof Y.Map) && create) {
      details = new Y.Map()
      meta.set('details', details)
    }
    return details instanceof Y.Map ? details : null
  }

  function write (path, value) {
    if (!editable || !cart.synced || cart.status !== 'open') return
    try {
      cart.doc.transact(() => {
        let map = detailsMap(true)
        if (path.length === 2) {
          let inner = map.get(path[0])
          if (!(inner instanceof Y.Map)) { inner = new Y.Map(); map.set(path[0], inner) }
          map = inner
        }
        map.set(path[path.length - 1], value)
      })
    } catch (err) {
      showError(path.join('.'), describeError(err))
    }
    const error = errors.get(path.join('.'))
    if (error && !error.hidden && check(path, value, true)) error.hidden = true
  }

  function check (path, value, quiet = false) {
    const key = path.join('.')
    if (key === 'email' && value && !EMAIL.test(value.trim())) {
      if (!quiet) showError(key, MESSAGES.email)
      return false
    }
    return true
  }

  function showError (key, text) {
    const error = errors.get(key)
    if (!error) return
    error.hidden = false
    error.textContent = text
    inputs.get(key)?.setAttribute('aria-invalid', 'true')
  }

  /** Marks the fields the server named, e.g. ["email", "address.city"]; focuses the first. */
  function showMissing (fields) {
    for (const key of fields) showError(key, MESSAGES[key] || 'Please fill this in.')
    const first = fields.map((k) => inputs.get(k) || inputs.get(`${k}:ship`)).find(Boolean)
    first?.focus()
  }

  function render () {
    const data = readDetails(cart)
    for (const [key, input] of inputs) {
      if (key.startsWith('delivery:')) {
        input.checked = data.delivery === key.slice(9)
        continue
      }
      const [a, b] = key.split('.')
      const value = (b ? data[a]?.[b] : data[a]) ?? ''
      // The field being typed in is the typist's own; every other field follows the doc.
      if (document.activeElement !== input && input.value !== value) input.value = value
      input.disabled = !editable || cart.status !== 'open'
      if (value && errors.get(key) && !errors.get(key).hidden && check(key.split('.'), value, true)) {
        errors.get(key).hidden = true
        input.removeAttribute('aria-invalid')
      }
    }
    if (data.delivery) deliveryError.hidden = true
    address.hidden = data.delivery !== 'ship'
    collect.hidden = data.delivery !== 'collect'
    const editors = cart.presence.others.filter((p) => p.role !== 'customer')
    who.textContent = editors.length ? `${editors.map((p) => p.name).join(', ')} can see and edit these with you` : ''
  }

  function bind () {
    bound?.()
    const meta = cart.doc?.getMap('meta')
    if (!meta) return
    const changed = () => render()
    meta.observeDeep(changed)
    bound = () => meta.unobserveDeep(changed)
    render()
  }
  cart.on('doc', bind)
  cart.on('synced', render)
  cart.on('status', render)
  cart.presence.on('change', render)
  bind()
  return { el, render, showMissing, destroy: () => bound?.() }
}

/** A read-only, live summary of the details (admin's cart panel). */
export function detailsSummary (cart) {
  const el = h('div.details-summary')
  let bound = null
  const render = () => {
    const d = readDetails(cart)
    const a = d.address || {}
    const where = d.delivery === 'collect' ? `Collect at ${d.store || '—'}` : d.delivery === 'ship' ? [a.line1, a.line2, a.city, a.postcode, a.country].filter(Boolean).join(', ') || 'Delivery: no address yet' : 'Delivery not chosen'
    fill(el, Object.keys(d).length
      ? h('dl.details-list', h('dt', 'Name'), h('dd', d.name || '—'), h('dt', 'Email'), h('dd', d.email || '—'),
        h('dt', 'Phone'), h('dd', d.phone || '—'), h('dt', d.delivery === 'collect' ? 'Collect' : 'Ship to'), h('dd.details-where', where))
      : h('p.muted', 'No checkout details yet.'))
  }
  const bind = () => {
    bound?.()
    const meta = cart.doc?.getMap('meta')
    if (!meta) return
    meta.observeDeep(render)
    bound = () => meta.unobserveDeep(render)
    render()
  }
  cart.on('doc', bind)
  cart.on('synced', render)
  bind()
  return { el, destroy: () => bound?.() }
}

// -- order history -----------------------------------------------------------------------

const WORDS = { awaiting_payment: 'awaiting payment', payment_failed: 'payment failed', confirmed: 'confirmed', dispatched: 'on its way', delivered: 'delivered', cancelled: 'cancelled' }
const TONE = { confirmed: 'ok', delivered: 'ok', dispatched: 'info', awaiting_payment: '', payment_failed: 'bad', cancelled: 'bad' }

export const statusOf = (o) => o.status || o.state || 'awaiting_payment'
const REFRESH_AFTER_MS = 300 // a burst of events (a reconnect, a gap, new orders) is one request

/**
 * A customer's orders, newest first, with their status and tracking link; `update(event)` takes an
 * order event (/ws/me, /ws/admin, /ws/orders) and moves the order on in place, or loads a new one.
 * `load(query)` fetches from `GET /api/orders` (a customer's own; staff pass `customer`).
 * `follow()` keeps the list live from `/ws/orders?customer=` (staff pages); `destroy()` stops that;
 * `refresh()` reads the newest page again (after a feed the caller owns reconnects or skips).
 */
export function orderHistory (lc, { customer, title = 'Your orders', limit = 10, empty = 'No orders yet.' } = {}) {
  const orders = new Map()
  const list = h('ul.order-history')
  const more = h('button.btn.sm.ghost', { hidden: true, onclick: () => load(next) }, 'Show older orders')
  const note = h('p.muted.order-note')
  const el = h('section.card.order-history-card', { 'aria-label': title },
    h('div.card-head', h('h3', icon('box', 18), title)), note, list, more)
  let next = null
  let feed = null
  let refreshTimer = null

  async function load (cursor = null) {
    try {
      const page = await lc.orders({ customer, limit, cursor })
      if (!cursor) orders.clear()
      for (const o of page.orders) orders.set(o.orderId || o.id, o)
      next = page.next
      render()
    } catch (err) {
      note.textContent = describeError(err)
    }
  }

  function render () {
    more.hidden = !next
    const sorted = [...orders.values()].sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0) || ((b.orderId || b.id) > (a.orderId || a.id) ? 1 : -1))
    note.textContent = sorted.length ? '' : empty
    fill(list, sorted.map((o) => {
      const id = o.orderId || o.id
      const status = statusOf(o)
      const lines = o.lines || []
      const items = lines.reduce((n, l) => n + (l.qty || 0), 0)
      return h('li.order-item', { dataset: { order: id, status } },
        h('div.order-item-main',
          h('strong', `Order ${id}`),
          h('small', [o.createdAt ? new Date(o.createdAt).toLocaleDateString() : '', items ? `${items} ${items === 1 ? 'item' : 'items'}` : '', o.total != null ? money(o.total, o.currency) : ''].filter(Boolean).join(' · ')),
          lines.length ? h('small.order-lines', lines.slice(0, 4).map((l) => `${l.qty} × ${l.name || l.sku}`).join(', ')) : null),
        h('span.tag.order-status', { class: TONE[status] || '' }, WORDS[status] || status),
        o.tracking?.url ? h('a.order-tracking', { href: o.tracking.url, target: '_blank', rel: 'noopener' }, icon('box', 14), `Track with ${o.tracking.carrier}`) : null)
    }))
  }

  /** The newest page again, merged into what is shown (older pages stay); debounced, so that a
   * burst of events costs one request, and only ever for this list's customer. */
  function refresh () {
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(async () => {
      try {
        const page = await lc.orders({ customer, limit })
        for (const o of page.orders) orders.set(o.orderId || o.id, o)
        if (next === null && orders.size === page.orders.length) next = page.next
        render()
      } catch { /* the next event or reconnect tries again */ }
    }, REFRESH_AFTER_MS)
  }

  /** Live from `/ws/orders`: each event moves its order on; after each (re)connect or a gap in the
   * feed the newest page is read again, since events may have been missed meanwhile. */
  function follow () {
    if (feed || !customer) return
    feed = lc.watchOrders(customer, (event) => {
      if (event?.type === 'gap') refresh()
      else if (!event?.customerId || event.customerId === customer) update(event)
    })
    feed.on('status', (status) => { if (status === 'open') refresh() })
  }

  function destroy () {
    feed?.close()
    feed = null
    clearTimeout(refreshTimer)
  }

  /** An order event: its status (and tracking) now; a new order is fetched whole (or, where this
   * caller may not read it alone, with the newest page). */
  async function update (event) {
    const id = event?.orderId
    if (!id) return
    const known = orders.get(id)
    if (!known) {
      try { orders.set(id, await lc.order(id)) } catch { return refresh() }
    } else {
      const { type, ...data } = event
      orders.set(id, { ...known, ...data, status: event.status || event.state })
    }
    render()
  }

  render()
  return { el, load, update, refresh, follow, destroy, orders }
}
