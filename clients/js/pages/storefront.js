/* eslint-env browser */
/**
 * Storefront `/`: the catalog with live availability ("sold", "only N left"), how many people
 * are looking, and add to cart. An item turns "sold" on every open storefront the moment
 * another shopper holds the last unit, and back when the hold ends.
 */
import {
  LiveCatalog, addProduct, availabilityText, describeError, fill, h, icon, items, liveDot, money, productArt, reportCartEvents,
  shopper, shopperCartId, siteFooter, store, toast, topbar, watchHoldLosses
} from './ui.js'

const CATEGORIES = [
  ['all', 'Everything', () => true],
  ['kitchen', 'Kitchen & pantry', (s) => /^(MUG|COFFEE|TEA|CHOC)/.test(s)],
  ['wear', 'Wear', (s) => /^(TEE|HOODIE|CAP|SCARF|SOCKS|UMBRELLA|WATCH|TOTE)/.test(s)],
  ['home', 'Home', (s) => /^(CANDLE|PLANT|VASE|THROW|CUSHION|LAMP|SOAP)/.test(s)],
  ['paper', 'Paper & art', (s) => /^(NOTEBOOK|PEN|PRINT|BOOK|INVITE)/.test(s)],
  ['gifts', 'Gifts & games', (s) => /^(GIFT|BOARDGAME|INVITE)/.test(s)]
]

const app = document.getElementById('app')
const state = { cart: null, category: store.get('livecart.category') || 'all', pendingAdds: new Map() }

// Hidden until this shopper has a cart: an empty pill before there is one says nothing.
const cartButton = h('a.cart-button', { href: '/cart', 'aria-label': 'Your cart', hidden: true }, icon('cart', 20), h('span.cart-count', { hidden: true }), h('span.cart-total'))
const dot = liveDot('Live stock')
const grid = h('div.grid', { 'aria-busy': 'true' }, Array.from({ length: 8 }, () => h('div.product.skeleton', h('div.product-media'), h('div.product-body', h('i'), h('i'), h('i')))))
const chips = h('nav.chips', { 'aria-label': 'Categories' })
const miniCart = h('a.minicart', { href: '/cart', hidden: true })

fill(app,
  topbar({ right: [cartButton] }),
  h('main.shop',
    h('section.hero',
      h('div.hero-text',
        h('p.eyebrow', 'Small-batch goods · made to last'),
        h('h1', 'What you see is what’s on the shelf.'),
        h('p.lead', 'Stock here is live. When someone carts the last one, it shows as sold on every screen at once — and comes back if they let it go.')),
      h('div.hero-side', dot.el)),
    chips,
    grid),
  siteFooter(),
  miniCart)

const cards = new Map()
let catalog

main().catch((err) => {
  fill(grid, h('div.card.error-card', icon('alert', 22), h('div', h('strong', 'The shop could not load.'), h('p', describeError(err))), h('button.btn', { onclick: () => location.reload() }, 'Try again')))
  grid.removeAttribute('aria-busy')
})

async function main () {
  const session = await shopper()
  catalog = await new LiveCatalog(session.lc).load()
  catalog.watch({ browsing: true }) // the shop floor sees which product this shopper looks at
  catalog.onChange((sku) => {
    dot.set(catalog.status)
    if (sku) updateCard(sku)
    else for (const p of catalog.products) updateCard(p.sku)
    if (detail && (!sku || sku === detail.sku)) detail.update()
  })
  renderChips()
  fill(grid, catalog.products.map(card))
  grid.removeAttribute('aria-busy')
  applyFilter()
  for (const p of catalog.products) updateCard(p.sku)
  state.session = session
  if (session.signedIn) showFavourites(session)
  const linked = /^#product=(.+)$/.exec(location.hash)
  if (linked && catalog.get(decodeURIComponent(linked[1]))) openDetail(catalog.get(decodeURIComponent(linked[1])))
  // A shopper who already has a cart sees what is in it (and their holds) on the cards.
  const existing = await shopperCartId(session.lc, { create: false }).catch(() => null)
  if (existing) openCart(existing)
}

function renderChips () {
  fill(chips, CATEGORIES.map(([id, label, test]) => {
    const count = catalog.products.filter((p) => test(p.sku)).length
    return h('button.chip-filter', {
      class: state.category === id ? 'active' : '',
      'aria-pressed': String(state.category === id),
      onclick: () => { state.category = id; store.set('livecart.category', id); renderChips(); applyFilter() }
    }, label, h('small', String(count)))
  }))
}

function applyFilter () {
  const test = (CATEGORIES.find(([id]) => id === state.category) || CATEGORIES[0])[2]
  for (const [sku, c] of cards) c.el.hidden = !test(sku)
}

function card (product) {
  const badge = h('span.badge', { hidden: true })
  const looking = h('p.looking', { hidden: true })
  const mine = h('p.mine', { hidden: true })
  const button = h('button.btn.primary.add', { onclick: () => add(product, button) })
  const personalised = Object.keys(product.personalisation || {}).length > 0
  const show = () => openDetail(product)
  // A signed-in shopper keeps favourites (shop assistants and the call centre sell from them).
  const fav = h('button.icon-btn.fav', { type: 'button', hidden: true, 'aria-pressed': 'false', 'aria-label': `Favourite: ${product.name}`, title: 'Favourite', onclick: (e) => { e.stopPropagation(); toggleFavourite(product.sku, fav) } }, icon('heart', 18))
  const el = h('article.product', { dataset: { sku: product.sku } },
    h('div.product-media', { onclick: show, title: `Look at ${product.name}` }, productArt(product.sku, { size: 'lg' }), badge, fav),
    h('div.product-body',
      h('h3.product-name', h('button.product-open', { onclick: show }, product.name)),
      h('p.product-price', money(product.price, product.currency), personalised ? h('span.perso-tag', icon('pencil', 12), 'Personalised') : null),
      looking,
      mine,
      button))
  cards.set(product.sku, { el, badge, looking, mine, button, product, fav })
  return el
}

async function showFavourites (session) {
  let favourites = []
  try {
    favourites = (await session.lc.customer(session.customerId)).favourites || []
  } catch { return }
  for (const { fav, product } of cards.values()) {
    fav.hidden = false
    fav.setAttribute('aria-pressed', String(favourites.includes(product.sku)))
  }
}

async function toggleFavourite (sku, button) {
  const on = button.getAttribute('aria-pressed') !== 'true'
  button.setAttribute('aria-pressed', String(on))
  try {
    await state.session.lc.setFavourite(state.session.customerId, sku, on)
  } catch (err) {
    button.setAttribute('aria-pressed', String(!on))
    toast(describeError(err), { kind: 'error', title: 'Favourites' })
  }
}

function heldForMe (sku) {
  const cart = state.cart
  if (!cart) return { qty: 0, lines: 0 }
  let qty = 0
  let lines = 0
  for (const line of cart.lines) {
    if (line.sku !== sku) continue
    lines++
    const hold = cart.holds[line.id]
    if (hold && (hold.status === 'held' || hold.status === 'partial')) qty += hold.qty
  }
  return { qty, lines }
}

function updateCard (sku) {
  const c = cards.get(sku)
  if (!c) return
  const available = catalog.levels.get(sku) ?? c.product.available
  const others = catalog.others(sku) // viewers of this product, this tab not counted
  const mine = heldForMe(sku)
  const personalised = Object.keys(c.product.personalisation || {}).length > 0
  c.el.classList.toggle('is-sold', available <= 0 && mine.qty === 0)
  c.el.dataset.available = String(available)
  let badge = null
  if (available <= 0 && mine.qty > 0) badge = ['mine', mine.qty === 1 ? 'Yours — the last one' : 'Yours — all in your cart']
  else if (available <= 0) badge = ['sold', 'Sold']
  else if (available <= 3) badge = ['low', `Only ${available} left`]
  c.badge.hidden = !badge
  if (badge) {
    c.badge.className = `badge badge-${badge[0]}`
    c.badge.textContent = badge[1]
  }
  c.looking.hidden = others === 0
  fill(c.looking, icon('eye', 14), ` ${others} ${others === 1 ? 'person is' : 'people are'} looking at this`)
  c.mine.hidden = mine.lines === 0
  fill(c.mine, icon('check', 14), ` ${mine.qty || 'None'} held in your cart`)
  c.button.disabled = available <= 0 || c.button.classList.contains('busy')
  if (!c.button.classList.contains('busy')) {
    fill(c.button, available <= 0 ? 'Sold out' : personalised ? ['Personalise', icon('arrow', 16)] : mine.lines ? ['Add one more'] : [icon('plus', 16), 'Add to cart'])
  }
}

async function ensureCart () {
  if (state.cart && !state.cart.error) return state.cart
  const cartId = await shopperCartId(state.session.lc)
  return openCart(cartId)
}

function openCart (cartId) {
  state.cart?.close()
  const cart = state.session.lc.openCart(cartId, { user: { name: state.session.signedIn ? state.session.customerId : 'Guest' } })
  state.cart = cart
  reportCartEvents(cart)
  watchHoldLosses(cart, catalog)
  cart.on('change', () => { renderCartButton(); for (const p of catalog.products) updateCard(p.sku) })
  cart.on('merged', ({ to }) => store.set('livecart.cart', to))
  cart.on('holds', (holds) => {
    for (const [lineId, { product, want }] of state.pendingAdds) {
      const hold = holds[lineId]
      if (!hold || (hold.status === 'held' && hold.qty < want)) continue
      state.pendingAdds.delete(lineId)
      if (hold.status === 'held') {
        toast(`${product.name} is held for you for ${Math.round((hold.expiresAt - Date.now()) / 60000)} minutes.`, {
          kind: 'success', title: 'Added to your cart', action: { label: 'View cart', run: () => { location.href = '/cart' } }
        })
      }
    }
  })
  renderCartButton()
  return cart
}

function renderCartButton () {
  const cart = state.cart
  const count = cart ? cart.lines.reduce((n, l) => n + l.qty, 0) : 0
  const total = cart?.pricing ? money(cart.pricing.total, cart.pricing.currency) : ''
  const badge = cartButton.querySelector('.cart-count')
  cartButton.hidden = !cart
  badge.hidden = count === 0
  badge.textContent = String(count)
  cartButton.querySelector('.cart-total').textContent = count ? total : 'Cart'
  miniCart.hidden = count === 0
  fill(miniCart, h('span.minicart-count', items(count)), h('span.minicart-total', total), h('span.minicart-go', 'View cart', icon('arrow', 16)))
}

async function add (product, button) {
  button.classList.add('busy')
  button.disabled = true
  fill(button, h('i.spinner'), 'Adding…')
  try {
    const cart = await ensureCart()
    if (!cart.synced) await cart.whenSynced(8000)
    const personalised = Object.keys(product.personalisation || {}).length > 0
    const lineId = addProduct(cart, product)
    if (personalised) {
      // Leave only once the server has the line (its hold decision is the proof).
      await new Promise((resolve) => {
        const done = () => { off(); clearTimeout(timer); resolve() }
        const off = cart.on('holds', (holds) => { if (holds[lineId]) done() })
        const timer = setTimeout(done, 3000)
      })
      location.href = `/cart#line-${lineId}`
      return
    }
    state.pendingAdds.set(lineId, { product, want: cart.line(lineId)?.qty || 1 })
  } catch (err) {
    toast(describeError(err), { kind: 'error', title: 'Could not add' })
  } finally {
    button.classList.remove('busy')
    updateCard(product.sku)
  }
}

// -- one product, looked at (browsing presence) ----------------------------------------------

let detail = null

/** Opens a product's page over the grid; the shop floor sees this shopper looking at it. */
function openDetail (product) {
  closeDetail(false)
  const looking = h('p.looking')
  const avail = h('p.detail-avail')
  const button = h('button.btn.primary.add', { onclick: () => add(product, button).then(() => detail?.update()) })
  const close = h('button.icon-btn.detail-close', { 'aria-label': 'Close', onclick: () => closeDetail() }, icon('x', 18))
  const el = h('div.overlay.product-detail', {
    role: 'dialog',
    'aria-modal': 'true',
    'aria-label': product.name,
    dataset: { sku: product.sku },
    onclick: (e) => { if (e.target === el) closeDetail() }
  }, h('div.card.detail-card',
    close,
    h('div.detail-media', productArt(product.sku, { size: 'lg' })),
    h('div.detail-body',
      h('h2', product.name),
      h('p.product-price', money(product.price, product.currency)),
      avail, looking, button)))
  const update = () => {
    const available = catalog.levels.get(product.sku) ?? product.available
    const others = catalog.others(product.sku)
    looking.hidden = others === 0
    fill(looking, icon('eye', 14), ` ${others} ${others === 1 ? 'other person is' : 'other people are'} looking at this`)
    fill(avail, availabilityText(available))
    if (!button.classList.contains('busy')) {
      button.disabled = available <= 0
      fill(button, available <= 0 ? 'Sold out' : [icon('plus', 16), 'Add to cart'])
    }
  }
  detail = { sku: product.sku, el, update }
  document.body.append(el)
  update()
  catalog.view(product.sku)
  history.replaceState(null, '', `#product=${encodeURIComponent(product.sku)}`)
  close.focus()
}

function closeDetail (forget = true) {
  if (!detail) return
  detail.el.remove()
  detail = null
  if (forget) {
    catalog.view(null)
    history.replaceState(null, '', location.pathname + location.search)
  }
}

document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail() })
