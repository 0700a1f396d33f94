/* eslint-env browser */
/**
 * Shop floor `/admin`: the live board of open carts (from `/ws/admin`), a toast whenever an item
 * is carted, checkout progress and focused/away presence, any cart opened live (watch the
 * personalisation being typed, send a discount into it), stock levels with in-store sales and
 * deliveries, orders with payment and dispatch buttons, and the nudge rules.
 */
import { NotAvailableError } from '../src/index.js'
import {
  cartView, chatPanel, clock, comingSoon, describeError, fill, h, icon, initials, items, liveCatalogIn, money, presenceBar,
  productArt, reportCartEvents, siteFooter, staffPage, toast
} from './ui.js'
import { mailPanels } from './admin-mail.js'
import { rulesPanel } from './admin-rules.js'
import { detailsSummary } from './records.js'

// An order in one of these states has left its cart behind: paid, on its way, done or called off.
const ORDER_DONE = new Set(['confirmed', 'dispatched', 'delivered', 'cancelled'])
const STAFF = new Set(['assistant', 'operator', 'admin'])
/** Messages from the shopper's side since staff last wrote. */
const unanswered = (chat) => {
  let n = 0
  for (let i = chat.length - 1; i >= 0 && !STAFF.has(chat[i].role); i--) n++
  return n
}

staffPage({
  key: 'livecart.staff.admin',
  roles: ['admin'],
  title: 'Shop floor',
  lead: 'Carts filling up in real time, stock, checkouts and orders.',
  render: start
})

async function start ({ lc, claims, main, right }) {
  const catalog = await liveCatalogIn(lc, right)

  const kpis = h('div.kpis')
  const board = h('div.board')
  const boardCard = h('section.card', h('div.card-head', h('h2', icon('cart', 18), 'Live carts'), h('span.tag', { id: 'feed-status' }, 'connecting…')), board)
  const activity = h('ul.feed-list', h('li.muted', 'Carts, checkouts and orders appear here as they happen.'))
  const activityCard = h('section.card', h('div.card-head', h('h2', icon('bolt', 18), 'Activity')), activity)
  const stock = stockTable(lc, catalog)
  const browsing = browsingPanel(catalog)
  const cartPanel = h('section.card#open-cart')
  const orders = ordersPanel(lc)
  const mail = mailPanels(lc)
  const rules = rulesPanel(lc)
  fill(main,
    h('div.section-title', h('h1', 'Shop floor'), h('span.muted', `Signed in as ${claims.sub}`)),
    kpis,
    h('div.admin-grid',
      h('div.admin-col', boardCard, browsing.el, stock.el),
      h('div.admin-col', cartPanel, activityCard, orders.el, rules.el, mail.customers, mail.caught)),
    siteFooter('staff'))

  // -- KPIs ----------------------------------------------------------------------------------
  const counts = { carts: new Map(), carted: 0, feed: 'connecting' }
  const hydrated = new Set()
  const renderKpis = () => {
    const levels = [...catalog.levels.values()]
    const sold = levels.filter((a) => a <= 0).length
    const low = levels.filter((a) => a > 0 && a <= 3).length
    const live = counts.feed === 'open'
    fill(kpis,
      h('div.card.kpi', h('small', 'Open carts'), h('strong', live ? String(counts.carts.size) : '—'), h('span.kpi-note', live ? 'live from the floor' : 'waits for the admin feed')),
      h('div.card.kpi', h('small', 'Items carted'), h('strong', live ? String(counts.carted) : '—'), h('span.kpi-note', 'since you opened this page')),
      h('div.card.kpi', h('small', 'Sold out'), h('strong', { style: { color: sold ? 'var(--bad)' : '' } }, String(sold)), h('span.kpi-note', 'products at 0 available')),
      h('div.card.kpi', h('small', 'Running low'), h('strong', { style: { color: low ? 'var(--warn)' : '' } }, String(low)), h('span.kpi-note', '3 or fewer available')))
  }
  catalog.onChange(renderKpis)
  renderKpis()

  // -- the live board (/ws/admin) ------------------------------------------------------------
  const cardsById = new Map()
  const closedCarts = new Set() // carts that became orders: later events about them do not bring them back
  // Every cart open before this page was: the board starts full, then the feed keeps it current.
  lc.openCarts().then(({ carts }) => {
    for (const s of [...carts].reverse()) {
      if (counts.carts.has(s.id) || closedCarts.has(s.id)) continue
      hydrated.add(s.id)
      counts.carts.set(s.id, { owner: s.owner, channel: s.channel, items: s.items, total: s.total, step: s.step, name: s.name, lines: s.lineItems || {} })
    }
    renderBoard()
    renderKpis()
  }, (err) => { if (!(err instanceof NotAvailableError)) toast(describeError(err), { kind: 'warn', title: 'Open carts' }) })
  lc.orders({ limit: 20 }).then(({ orders: recent }) => { for (const o of [...recent].reverse()) orders.upsert(o) }, () => {})
  const renderBoard = () => {
    if (!counts.carts.size) {
      for (const el of cardsById.values()) el.remove()
      cardsById.clear()
      fill(board, h('p.muted.board-empty', { style: { gridColumn: '1 / -1' } }, counts.feed === 'open'
        ? 'No open carts right now: a cart appears here the moment a shopper starts one.'
        : counts.feed === 'unavailable' ? '' : 'Connecting to the shop floor…'))
      if (counts.feed === 'unavailable') renderUnavailable()
      return
    }
    for (const [id, c] of counts.carts) {
      let el = cardsById.get(id)
      if (!el) {
        el = h('article.board-card', { onclick: () => openCart(id), dataset: { cart: id } })
        cardsById.set(id, el)
      }
      const people = c.presence || []
      fill(el,
        h('header', h('strong', { title: id }, c.name || (!c.owner ? id : c.owner.startsWith('anon-') ? 'Guest shopper' : c.owner.startsWith('walkin-') ? 'Walk-in customer' : c.owner)), h('span.tag', c.channel || 'web'), c.step ? h('span.tag.info', c.step) : null),
        h('div.events', `${items(c.items || 0)}${c.total != null ? ` · ${money(c.total)}` : ''}${c.last ? ` · ${c.last}` : ''}`),
        people.length
          ? h('div.avatars', people.slice(0, 5).map((p) => h('span.avatar.sm', { class: p.focus === false ? 'away' : '', title: `${p.name} · ${p.role} · ${p.channel} · ${p.focus === false ? 'away' : 'focused'}`, style: { background: p.color || '#4f6d7a', marginLeft: '-4px', border: '2px solid #fbf9f6' } }, initials(p.name))))
          : h('small.muted', 'nobody in it now'),
        c.unread || c.typing || c.lastChat
          ? h('div.chat-line', c.unread ? h('span.tag.warn.chat-unread', icon('chat', 12), `${c.unread} unread`) : null,
            c.typing ? h('small.chat-typing', 'typing…') : c.lastChat ? h('small.chat-last', `${c.lastChat.from}: “${c.lastChat.text.slice(0, 60)}”`) : null)
          : null)
      if (!el.isConnected) board.prepend(el)
    }
    for (const [id, el] of cardsById) if (!counts.carts.has(id)) { el.remove(); cardsById.delete(id) }
    board.querySelector('p.board-empty')?.remove()
  }
  const bump = (id) => {
    const el = cardsById.get(id)
    if (el) { el.classList.remove('bump'); el.getBoundingClientRect(); el.classList.add('bump') }
  }
  const log = (text, kind = 'cart') => {
    activity.querySelector('li.muted')?.remove()
    activity.prepend(h('li', icon(kind, 16), h('span', text), h('time', new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }))))
    while (activity.children.length > 40) activity.lastChild.remove()
  }
  // A cart first seen mid-way (opened before this page was): read what it holds once.
  const hydrate = async (id) => {
    if (hydrated.has(id)) return
    hydrated.add(id)
    try {
      const cart = await lc.getCart(id)
      const c = counts.carts.get(id)
      if (!c) return
      if (cart.status !== 'open' && cart.status !== 'checking_out') { counts.carts.delete(id); renderBoard(); return }
      c.owner = c.owner || cart.owner
      c.channel = c.channel || cart.channel
      c.lines = Object.fromEntries(Object.entries(cart.lines).map(([lineId, l]) => [lineId, { sku: l.sku, qty: l.qty }]))
      c.items = Object.values(c.lines).reduce((n, l) => n + l.qty, 0)
      c.total = cart.pricing?.total
      c.step = c.step || cart.checkout?.step
      const chat = Array.isArray(cart.chat) ? cart.chat : []
      if (chat.length && !c.lastChat) {
        c.unread = unanswered(chat)
        c.lastChat = chat[chat.length - 1]
      }
      renderBoard()
    } catch { /* gone meanwhile */ }
  }
  function renderUnavailable () {
    fill(board, h('div', { style: { gridColumn: '1 / -1' } }, comingSoon('Live board of open carts',
      'Every open cart appears here as it fills up: who is in it (focused or away), its checkout step, and a toast for each item carted. Meanwhile, open any cart by id on the right.',
      '/ws/admin (cart.created, cart.line_added, cart.presence, checkout.step, order.*)')))
  }
  const whoName = (e) => (!e.who ? 'Someone' : e.who.startsWith('anon-') ? 'A guest' : e.who.startsWith('walkin-') ? 'A walk-in customer' : e.who)
  const feed = lc.watchAdmin((e) => {
    const type = e.type
    if (type === 'gap') return log(`${e.dropped} events were skipped (this page fell behind)`, 'alert')
    if (type.startsWith('browse.')) return browsing.event(e)
    if (type === 'rule.fired') {
      rules.onFired(e)
      return log(`Rule ${e.rule} fired for cart ${e.cartId}${e.action === 'offer' ? `: offered ${e.code}` : ''}`, 'bolt')
    }
    const id = e.cartId
    if ((type === 'order.created' || type === 'order.status') && ORDER_DONE.has(e.state)) {
      // The cart became an order: it leaves the board (and the open-cart count) for good.
      orders.upsert(e)
      log(`Order ${e.orderId} is ${e.state.replace('_', ' ')}${e.total != null ? ` (${money(e.total)})` : ''}`, 'box')
      if (id) { counts.carts.delete(id); closedCarts.add(id) }
      renderBoard()
      renderKpis()
      return
    }
    if (id && closedCarts.has(id) && type !== 'order.status') return
    const c = id ? (counts.carts.get(id) || { items: 0, lines: {} }) : null
    if (c && id && !counts.carts.has(id)) {
      counts.carts.set(id, c)
      if (type === 'cart.created') hydrated.add(id)
      else hydrate(id)
    }
    const who = whoName(e)
    switch (type) {
      case 'cart.created':
        Object.assign(c, { owner: e.owner, channel: e.channel })
        log(`New cart from ${e.owner || 'a shopper'} (${e.channel || 'web'})`)
        break
      case 'cart.line_added': {
        c.lines[e.lineId] = { sku: e.sku, qty: e.qty || 1 }
        c.items = (c.items || 0) + (e.qty || 1)
        c.last = `${catalog.name(e.sku)} added`
        counts.carted += e.qty || 1
        const text = `${who} added ${e.qty || 1} × ${catalog.name(e.sku)} (${e.channel || 'web'})`
        toast(text, { kind: 'success', title: 'Item carted', action: { label: 'Open', run: () => openCart(id) } })
        log(text)
        break
      }
      case 'cart.line_removed': {
        const line = c.lines[e.lineId]
        delete c.lines[e.lineId]
        c.items = Math.max(0, (c.items || 0) - (line?.qty || 1))
        c.last = `${line ? catalog.name(line.sku) : 'a line'} removed`
        log(`${who} removed ${line ? catalog.name(line.sku) : 'a line'}`)
        break
      }
      case 'cart.presence':
        c.presence = (e.present || []).map((p) => ({ ...p, name: p.name || 'someone' }))
        c.typing = c.presence.some((p) => p.typing && !STAFF.has(p.role))
        break
      case 'chat.message': {
        const seen = cart?.cartId === id // this page has the cart open: its chat shows the message
        c.unread = seen ? 0 : e.unread
        c.lastChat = { from: e.from, text: e.text }
        if (!STAFF.has(e.role)) {
          const text = `${whoName({ who: e.from })}: “${e.text.slice(0, 80)}”`
          if (!seen) toast(text, { kind: 'info', title: 'New message', action: { label: 'Answer', run: () => openCart(id) } })
          log(text, 'chat')
        } else {
          log(`${e.from} answered in a chat`, 'chat')
        }
        break
      }
      case 'checkout.step':
        c.step = e.step
        log(`${who} is at checkout step “${e.step}”`, 'lock')
        break
      case 'order.created':
      case 'order.status':
        orders.upsert(e)
        log(`Order ${e.orderId} is ${e.state.replace('_', ' ')}${e.total != null ? ` (${money(e.total)})` : ''}`, 'box')
        if (type === 'order.created') toast(`Order ${e.orderId} placed: ${money(e.total)}.`, { kind: 'success', title: 'New order' })
        if (id) c.step = e.state.replace('_', ' ')
        break
      case 'discount.offered':
        log(`Discount ${e.code} sent to a cart`, 'tag')
        break
    }
    if (typeof e.total === 'number' && c) c.total = e.total
    renderBoard()
    renderKpis()
    if (id) bump(id)
  })
  const feedStatus = boardCard.querySelector('#feed-status')
  feed.on('status', (s) => {
    counts.feed = s
    feedStatus.className = `tag ${s === 'open' ? 'ok' : s === 'unavailable' ? '' : 'warn'}`
    feedStatus.textContent = { open: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', closed: 'stopped', unavailable: 'not on this server yet' }[s] || s
    renderBoard()
    renderKpis()
  })
  renderBoard()
  feed.on('error', (err) => { if (!(err instanceof NotAvailableError)) toast(describeError(err), { kind: 'error', title: 'Admin feed' }) })

  // -- open a cart ---------------------------------------------------------------------------
  let cart = null
  let view = null
  let chat = null
  const idInput = h('input', { placeholder: 'Cart id (c-…)', autocomplete: 'off', 'aria-label': 'Cart id' })
  const cartBody = h('div')
  fill(cartPanel,
    h('div.card-head', h('h2', icon('search', 18), 'Open a cart')),
    h('form.inline-form', { onsubmit: (e) => { e.preventDefault(); if (idInput.value.trim()) openCart(idInput.value.trim()) } }, idInput, h('button.btn.primary', { type: 'submit' }, 'Open')),
    cartBody)

  function openCart (id) {
    idInput.value = id
    cart?.close()
    view?.destroy()
    chat?.destroy()
    cart = lc.openCart(id, { channel: 'api', user: { name: claims.sub, role: 'admin' } })
    chat = chatPanel(cart, { title: 'Chat with the shopper', staff: true })
    const seen = counts.carts.get(id)
    if (seen?.unread) { seen.unread = 0; renderBoard() }
    reportCartEvents(cart)
    view = cartView(cart, catalog, { emptyText: 'This cart is empty.', showNote: true, showCodes: false, staff: true, lc })
    const details = detailsSummary(cart)
    const code = h('input', { placeholder: 'Code, e.g. STAY10', autocomplete: 'off', maxlength: 64, 'aria-label': 'Discount code' })
    const pct = h('input', { type: 'number', min: 1, max: 100, value: 10, 'aria-label': 'Percent off' })
    const discountNote = h('div')
    const send = h('form.discount-form', {
      onsubmit: async (e) => {
        e.preventDefault()
        const c = code.value.trim().toUpperCase()
        if (!c) return
        try {
          await lc.addDiscount(cart.cartId, { code: c, percentOff: Number(pct.value) })
          toast(`${c} sent: the shopper sees it now.`, { kind: 'success', title: 'Discount sent' })
          code.value = ''
          fill(discountNote)
        } catch (err) {
          if (err instanceof NotAvailableError) fill(discountNote, comingSoon('Live discounts', 'The code appears in the shopper’s cart and price at once.', 'POST /api/carts/{id}/discounts'))
          else toast(describeError(err), { kind: 'error' })
        }
      }
    }, code, pct, h('button.btn.accent', { type: 'submit' }, icon('tag', 15), 'Send'))
    fill(cartBody,
      h('div.cart-header', { style: { marginTop: '14px' } },
        h('div.cart-header-row', h('strong', { style: { marginRight: 'auto' } }, 'Cart ', h('code', id)), presenceBar(cart))),
      view.el,
      chat.el,
      h('div.details-card', { style: { marginTop: '14px' } }, h('h3', { style: { marginBottom: '8px' } }, 'Checkout details'), details.el),
      h('div', { style: { marginTop: '14px' } }, h('h3', { style: { marginBottom: '8px' } }, 'Send a discount'), send, discountNote))
  }

  // -- admin's own tools react to the stock feed too -------------------------------------------
  stock.start()
}

/**
 * "Browsing now": who looks at which product, for how long, away or back, and whether they have a
 * cart. Bounded whatever the crowd: totals and the busiest products come from the server's
 * `browse.summary` (one per process, summed), the rows are the few most recent; at most KEEP
 * browsers are remembered here, the oldest forgotten first.
 */
function browsingPanel (catalog) {
  const ROWS = 12
  const KEEP = 500
  const browsers = new Map() // id → {id, who, sku, since, visible, hasCart, at}
  const summaries = new Map() // process → its latest summary
  const head = h('div.browse-summary')
  const top = h('div.browse-top')
  const list = h('ul.browse-list')
  const more = h('p.browse-more', { hidden: true })
  const el = h('section.card#browsing',
    h('div.card-head', h('h2', icon('eye', 18), 'Browsing now')),
    head, top, list, more)
  const label = (who) => (!who || who === 'anonymous' ? 'Anonymous shopper' : /^anon-/.test(who) ? 'Guest shopper' : who)
  const remember = (b) => {
    browsers.delete(b.id) // re-insert: the Map's order is the order of activity
    browsers.set(b.id, { ...b, at: Date.now() })
    while (browsers.size > KEEP) browsers.delete(browsers.keys().next().value)
  }
  let timer = null
  const later = () => { if (!timer) timer = setTimeout(() => { timer = null; render() }, 250) }
  function render () {
    const rows = [...browsers.values()].filter((b) => b.sku).sort((a, b) => b.at - a.at)
    const totals = { browsing: 0, away: 0, withCart: 0 }
    const products = new Map()
    if (summaries.size) {
      for (const s of summaries.values()) {
        totals.browsing += s.browsing
        totals.away += s.away
        totals.withCart += s.withCart
        for (const p of s.products) products.set(p.sku, (products.get(p.sku) || 0) + p.viewers)
      }
    } else {
      totals.browsing = rows.length
      totals.away = rows.filter((b) => !b.visible).length
      totals.withCart = rows.filter((b) => b.hasCart).length
      for (const b of rows) if (b.visible) products.set(b.sku, (products.get(b.sku) || 0) + 1)
    }
    fill(head,
      h('span', h('strong.browse-count', String(totals.browsing)), ' browsing'),
      h('span', h('strong', String(totals.away)), ' away'),
      h('span', h('strong', String(totals.withCart)), ' with a cart'))
    fill(top, [...products.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6)
      .map(([sku, n]) => h('span.tag', { title: sku }, `${catalog.name(sku)} · ${n}`)))
    if (!rows.length) {
      fill(list, h('li.muted.browse-empty', 'Nobody is looking at a product right now.'))
    } else {
      fill(list, rows.slice(0, ROWS).map((b) => h('li.browse-row', { class: b.visible ? '' : 'away', dataset: { who: b.who, sku: b.sku } },
        h('span.avatar.sm', { style: { background: b.hasCart ? 'var(--accent)' : 'var(--brand-2)' } }, b.who === 'anonymous' || /^anon-/.test(b.who) ? icon('user', 14) : initials(b.who)),
        h('div', h('span.who', label(b.who)), h('small', catalog.name(b.sku), ' · for ', h('span', { dataset: { since: String(b.since) } }, clock(Date.now() - b.since)),
          b.hasCart ? ' · has a cart' : '')),
        h('span.state', b.visible ? 'Viewing' : 'Away'))))
    }
    const hidden = Math.max(0, totals.browsing - Math.min(rows.length, ROWS))
    more.hidden = hidden === 0
    more.textContent = `+ ${hidden} more browsing`
  }
  render()
  return {
    el,
    event (e) {
      const known = browsers.get(e.id)
      switch (e.type) {
        case 'browse.view':
          remember(e)
          break
        case 'browse.away':
        case 'browse.back':
          if (known) remember({ ...known, visible: e.type === 'browse.back' })
          break
        case 'browse.left':
          browsers.delete(e.id)
          break
        case 'browse.summary':
          summaries.set(e.process, e)
          for (const b of e.recent) if (!browsers.has(b.id)) remember(b)
          break
      }
      later()
    }
  }
}

/** Stock levels per SKU, live: on hand, held, available, with an in-store sale and a delivery button. */
function stockTable (lc, catalog) {
  const rows = new Map()
  const body = h('tbody')
  let lowFirst = false
  const sortButton = h('button.btn.sm.ghost', { onclick: () => { lowFirst = !lowFirst; sortButton.textContent = lowFirst ? 'Catalog order' : 'Lowest first'; order() } }, 'Lowest first')
  const el = h('section.card',
    h('div.card-head', h('h2', icon('box', 18), 'Stock'), sortButton),
    h('div.table-wrap', h('table.stock',
      h('thead', h('tr', h('th', 'Product'), h('th.num.col-levels', 'On hand'), h('th.num.col-levels', 'Held'), h('th', 'Available'), h('th.num', 'Adjust'))),
      body)))
  const levels = new Map()
  for (const p of catalog.products) {
    const onHand = h('td.num.col-levels')
    const held = h('td.num.col-levels')
    const inline = h('small.inline-levels')
    const avail = h('td')
    const adjust = (delta, reason) => async () => {
      try {
        const level = await lc.adjustStock(p.sku, delta, reason)
        levels.set(p.sku, level)
        render(p.sku)
      } catch (err) {
        toast(describeError(err), { kind: 'error', title: 'Stock not changed' })
      }
    }
    const tr = h('tr', { dataset: { sku: p.sku } },
      h('td', h('div.sku-cell', productArt(p.sku, { size: 'sm' }), h('div', p.name, h('small', p.sku), inline))),
      onHand, held, avail,
      h('td', h('div.adjust',
        h('button.btn', { title: 'Sold one in the shop', onclick: adjust(-1, 'in-store sale') }, '−1 sale'),
        h('button.btn', { title: 'A delivery came in', onclick: adjust(+1, 'delivery') }, '+1 in'))))
    rows.set(p.sku, { tr, onHand, held, avail, inline })
    body.append(tr)
  }
  const render = (sku) => {
    const r = rows.get(sku)
    const level = levels.get(sku)
    if (!r || !level) return
    const max = Math.max(level.onHand, 1)
    const a = level.available
    r.onHand.textContent = String(level.onHand)
    r.held.textContent = String(level.held)
    r.inline.textContent = `${level.onHand} on hand · ${level.held} held`
    fill(r.avail, h('span', { style: { display: 'inline-flex', alignItems: 'center', gap: '8px', fontWeight: '600', color: a <= 0 ? 'var(--bad)' : a <= 3 ? 'var(--warn)' : '' } },
      h('span.bar', { class: a <= 0 ? 'out' : a <= 3 ? 'low' : '' }, h('i', { style: { width: `${Math.round(100 * Math.max(0, a) / max)}%` } })), a <= 0 ? 'sold out' : String(a)))
    r.tr.classList.remove('changed')
    r.tr.getBoundingClientRect() // restart the flash animation
    r.tr.classList.add('changed')
  }
  const order = () => {
    const skus = catalog.products.map((p) => p.sku)
    if (lowFirst) skus.sort((a, b) => (levels.get(a)?.available ?? 0) - (levels.get(b)?.available ?? 0))
    for (const sku of skus) body.append(rows.get(sku).tr)
  }
  let pending = new Set()
  let timer = null
  const refresh = async (skus) => {
    try {
      const got = await lc.stock(skus)
      for (const [sku, level] of Object.entries(got)) { levels.set(sku, level); render(sku) }
      if (lowFirst) order()
    } catch (err) {
      toast(describeError(err), { kind: 'warn', title: 'Stock' })
    }
  }
  return {
    el,
    async start () {
      await refresh(catalog.products.map((p) => p.sku))
      for (const tr of body.querySelectorAll('tr.changed')) tr.classList.remove('changed')
      // The feed says what is available; on hand and held come from the API, batched.
      catalog.onChange((sku) => {
        if (!sku) return
        pending.add(sku)
        clearTimeout(timer)
        timer = setTimeout(() => { const skus = [...pending]; pending = new Set(); refresh(skus) }, 120)
      })
    }
  }
}

/** Orders seen on the feed or looked up by id, with payment and dispatch buttons. */
function ordersPanel (lc) {
  const list = h('div')
  const orders = new Map()
  const input = h('input', { placeholder: 'Order id', autocomplete: 'off', 'aria-label': 'Order id' })
  const note = h('div')
  const el = h('section.card',
    h('div.card-head', h('h2', icon('box', 18), 'Orders')),
    h('form.inline-form', {
      onsubmit: async (e) => {
        e.preventDefault()
        if (!input.value.trim()) return
        try {
          upsert(await lc.order(input.value.trim()))
          fill(note)
        } catch (err) {
          if (err instanceof NotAvailableError) fill(note, comingSoon('Orders', 'Orders appear here as they are placed, with buttons to record payment and move them through dispatch.', 'GET /api/orders/{id}, /ws/admin order.*'))
          else toast(describeError(err), { kind: 'error' })
        }
      }
    }, input, h('button.btn', { type: 'submit' }, 'Find')),
    note, list)
  const act = (id, fn, label) => async () => {
    try {
      upsert({ ...(orders.get(id) || {}), ...(await fn()), orderId: id })
      toast(`Order ${id}: ${label}.`, { kind: 'success' })
    } catch (err) {
      if (err instanceof NotAvailableError) toast('Orders are not switched on on this server yet.', { kind: 'warn' })
      else toast(describeError(err), { kind: 'error' })
    }
  }
  const render = () => {
    if (!orders.size) {
      fill(list, h('p.muted', { style: { marginTop: '10px', fontSize: '14px' } }, 'New orders show up here live.'))
      return
    }
    fill(list, [...orders.values()].reverse().map((o) => {
      const id = o.orderId || o.id
      const status = o.status || o.state || 'awaiting_payment'
      return h('div.order-row', { dataset: { order: id } },
        h('div', h('strong', id), h('small', h('span.tag', { class: status === 'delivered' || status === 'confirmed' ? 'ok' : status === 'cancelled' || status === 'payment_failed' ? 'bad' : 'info' }, status.replace('_', ' ')),
          o.total != null ? ` ${money(o.total, o.currency)}` : '')),
        status === 'awaiting_payment' ? h('button.btn.sm', { onclick: act(id, () => lc.setPayment(id, 'paid', `demo-${Date.now()}`), 'paid') }, 'Mark paid') : null,
        status === 'confirmed' ? dispatchForm(id) : null,
        o.tracking?.url ? h('a.order-tracking', { href: o.tracking.url, target: '_blank', rel: 'noopener' }, `${o.tracking.carrier} ${o.tracking.number}`) : null,
        status === 'dispatched' ? h('button.btn.sm', { onclick: act(id, () => lc.setOrderStatus(id, 'delivered'), 'delivered') }, 'Delivered') : null,
        ['awaiting_payment', 'confirmed'].includes(status) ? h('button.btn.sm.ghost.danger', { onclick: act(id, () => lc.setOrderStatus(id, 'cancelled'), 'cancelled') }, 'Cancel') : null)
    }))
  }
  // Dispatch goes with the carrier's tracking (prefilled for the demo; edit before sending).
  const dispatchForm = (id) => {
    const number = `JD${String(Date.now()).slice(-8)}`
    const carrier = h('input', { value: 'Royal Mail', maxlength: 100, 'aria-label': 'Carrier' })
    const no = h('input', { value: number, maxlength: 100, 'aria-label': 'Tracking number' })
    const url = h('input', { type: 'url', value: `https://track.example/${number}`, maxlength: 2000, 'aria-label': 'Tracking link' })
    return h('form.tracking-form', {
      onsubmit: (e) => {
        e.preventDefault()
        act(id, () => lc.setOrderStatus(id, 'dispatched', { carrier: carrier.value.trim(), number: no.value.trim(), url: url.value.trim() }), 'dispatched')()
      }
    }, carrier, no, url, h('button.btn.sm.primary', { type: 'submit' }, icon('box', 14), 'Dispatch'))
  }
  const upsert = (o) => {
    const id = o.orderId || o.id
    if (!id) return
    const { type, ...data } = o
    orders.set(id, { ...(orders.get(id) || {}), ...data, orderId: id })
    render()
  }
  render()
  return { el, upsert }
}
