/* eslint-env browser */
/**
 * What the demo pages share: a tiny DOM builder, toasts, money, sessions and sign-in, the live
 * catalog, and the cart view (lines with live holds, personalisation co-typing, pricing,
 * presence) that the cart, assistant, call-centre, kiosk and admin pages all use.
 */
import {
  createClient, tokenClaims, MergedError, NotAvailableError, RejectedError, UnauthorizedError,
  ForbiddenError, NotFoundError, RateLimitedError, DisconnectedError, Y
} from '../src/index.js'
import { productArt, svgIcon } from './art.js'

export { svgIcon, productArt }

// -- DOM --------------------------------------------------------------------------------

/**
 * Creates an element: `h('button.primary', {onclick}, 'Add')`, `h('section.card#lookup')`. Props: `class`, `on*`
 * handlers, `style` (object), `dataset`, anything else as an attribute (false/null: left out).
 */
export function h (spec, props, ...children) {
  if (props == null || typeof props !== 'object' || props instanceof Node || Array.isArray(props)) {
    if (props !== undefined) children.unshift(props)
    props = {}
  }
  const [head, id] = spec.split('#')
  const [tag, ...classes] = head.split('.')
  const el = document.createElement(tag || 'div')
  if (classes.length) el.className = classes.join(' ')
  if (id) el.id = id
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue
    if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ')
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'style' && typeof v === 'object') for (const [sk, sv] of Object.entries(v)) el.style.setProperty(sk.startsWith('--') ? sk : sk.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()), sv)
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (k in el && typeof v !== 'string') el[k] = v
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
}

/** Replaces an element's children. */
export function fill (el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

export const icon = (name, size = 18) => svgIcon(name, { size, stroke: 1.8 })

/** Money in minor units → "€12.90". */
export function money (minor, currency = 'EUR') {
  try {
    return new Intl.NumberFormat('en-IE', { style: 'currency', currency }).format((minor || 0) / 100)
  } catch {
    return `${((minor || 0) / 100).toFixed(2)} ${currency}`
  }
}

/** "14:05" from milliseconds left. */
export function clock (ms) {
  const s = Math.max(0, Math.ceil(ms / 1000))
  const m = Math.floor(s / 60)
  return `${m}:${String(s % 60).padStart(2, '0')}`
}

export function initials (name) {
  const parts = String(name || '?').replace(/^anon-/, '').split(/[\s._-]+/).filter(Boolean)
  return ((parts[0]?.[0] || '?') + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase()
}

export const titleCase = (s) => String(s).replace(/[-_]/g, ' ').replace(/^\w/, (c) => c.toUpperCase())

// Every `[data-expires]` element shows a live countdown; `[data-ago]` a relative time.
setInterval(tickClocks, 1000)
export function tickClocks () {
  const now = Date.now()
  for (const el of document.querySelectorAll('[data-expires]')) {
    const left = Number(el.dataset.expires) - now
    el.textContent = left > 0 ? clock(left) : 'ending…'
    el.closest('.chip')?.classList.toggle('soon', left < 60_000)
  }
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = clock(now - Number(el.dataset.since))
}

// -- toasts -------------------------------------------------------------------------------

let toastBox = null

/**
 * Shows a toast. Errors stay until dismissed (or 9 s); others fade after 4.5 s.
 * @param {string} message
 * @param {{kind?: 'info'|'success'|'warn'|'error', title?: string, action?: {label: string, run: () => void}, timeout?: number}} [options]
 */
export function toast (message, { kind = 'info', title, action, timeout } = {}) {
  if (!toastBox) {
    toastBox = h('div.toasts', { role: 'status', 'aria-live': 'polite' })
    document.body.append(toastBox)
  }
  const glyph = { success: 'check', warn: 'alert', error: 'alert', info: 'bolt' }[kind]
  const el = h(`div.toast.toast-${kind}`,
    h('span.toast-icon', icon(glyph, 18)),
    h('div.toast-body', title ? h('strong', title) : null, h('span', message)),
    action ? h('button.toast-action', { onclick: () => { action.run(); close() } }, action.label) : null,
    h('button.toast-close', { 'aria-label': 'Dismiss', onclick: () => close() }, icon('x', 14)))
  const close = () => { el.classList.add('leaving'); setTimeout(() => el.remove(), 250) }
  toastBox.append(el)
  while (toastBox.children.length > 4) toastBox.firstElementChild.remove()
  setTimeout(close, timeout ?? (kind === 'error' ? 9000 : 4500))
  return close
}

/** Words for a person for any error the library throws. */
export function describeError (err) {
  if (err instanceof NotAvailableError) return 'This server does not offer that yet.'
  if (err instanceof MergedError) return err.into ? 'This cart was combined with another one: showing the combined cart.' : 'This cart was closed.'
  if (err instanceof RejectedError) {
    const lost = describeDiscarded(err.discarded)
    return `That change was not accepted (${err.reason}).${lost ? ` Not saved: ${lost}.` : ''} The cart was reloaded from the shop.`
  }
  if (err instanceof UnauthorizedError) return 'You are signed out (your session ended). Sign in again to go on.'
  if (err instanceof ForbiddenError) return `Not allowed: ${err.reason}.`
  if (err instanceof NotFoundError) return `Not found: ${err.reason}.`
  if (err instanceof RateLimitedError) return 'Too many changes at once: slowing down and reconnecting.'
  if (err instanceof DisconnectedError) return 'Connection lost: reconnecting…'
  return err?.message || String(err)
}

let catalogNames = new Map()
function describeDiscarded (d) {
  if (!d) return ''
  const name = (sku) => catalogNames.get(sku) || sku
  return [
    ...d.added.map((l) => `${l.qty} × ${name(l.sku)}`),
    ...d.changed.map((l) => `quantity ${l.qty} of ${name(l.sku)}`),
    ...d.removed.map((l) => `removing ${name(l.sku)}`),
    ...d.personalisation.map((p) => `${p.field} of ${name(p.sku)}`),
    ...d.meta.map((k) => (k === 'note' ? 'the note' : 'discount codes'))
  ].join(', ')
}

// -- storage and sessions ----------------------------------------------------------------

export const store = {
  get (key) {
    try { return JSON.parse(localStorage.getItem(key)) } catch { return null }
  },
  set (key, value) {
    try { value == null ? localStorage.removeItem(key) : localStorage.setItem(key, JSON.stringify(value)) } catch { /* private mode */ }
  }
}

/** Whether a token is missing or expires within a minute. */
export function expired (token) {
  const claims = tokenClaims(token)
  return !claims || (claims.exp && claims.exp * 1000 < Date.now() + 60_000)
}

const SHOPPER = 'livecart.shopper'
const SHOPPER_CART = 'livecart.cart'

/**
 * The shopper on this device: a signed-in customer token if one was given, else an anonymous
 * session from `POST /api/sessions/anonymous`, kept in localStorage.
 */
export async function shopper () {
  const lc = createClient({ channel: 'web' })
  let session = store.get(SHOPPER)
  const fresh = async () => {
    session = await lc.anonymousSession()
    store.set(SHOPPER, session)
    store.set(SHOPPER_CART, null)
  }
  if (!session || expired(session.token)) {
    if (session && !String(tokenClaims(session.token)?.sub).startsWith('anon-')) {
      toast('Your sign-in has ended: you are shopping as a guest now.', { kind: 'warn', title: 'Signed out' })
    }
    await fresh()
  } else {
    // A token this server no longer accepts (another server, a new secret): start over as a guest.
    lc.token = session.token
    try {
      await lc.listCarts()
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err
      toast('Your session ended: you are shopping as a guest now.', { kind: 'warn', title: 'Signed out' })
      await fresh()
    }
  }
  lc.token = session.token
  const claims = tokenClaims(session.token) || {}
  return { lc, token: session.token, customerId: session.customerId || claims.sub, signedIn: !String(claims.sub || '').startsWith('anon-') }
}

/** Replaces the shopper's session (sign-in, sign-out). */
export function setShopperSession (session) {
  store.set(SHOPPER, session)
}

/**
 * The shopper's cart id: the one kept here if it is still open, else their newest open cart,
 * else (with `create`) a new one. Follows a merge to the cart it went into.
 */
export async function shopperCartId (lc, { create = true } = {}) {
  let id = store.get(SHOPPER_CART)
  for (let hops = 0; id && hops < 3; hops++) {
    try {
      const cart = await lc.getCart(id)
      if (cart.status === 'merged' && cart.mergedInto) { id = cart.mergedInto; continue }
      if (cart.status === 'open' || cart.status === 'checking_out') { store.set(SHOPPER_CART, id); return id }
      break
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof ForbiddenError) break
      throw err
    }
  }
  try {
    const { carts } = await lc.listCarts()
    const newest = [...(carts || [])].sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0))
    for (const c of newest) {
      if (c.status && !['open', 'checking_out'].includes(c.status)) continue
      const full = await lc.getCart(c.id).catch(() => null)
      if (full && (full.status === 'open' || full.status === 'checking_out')) { store.set(SHOPPER_CART, c.id); return c.id }
    }
  } catch { /* fall through to a new cart */ }
  if (!create) { store.set(SHOPPER_CART, null); return null }
  const { cartId } = await lc.createCart({ channel: 'web' })
  store.set(SHOPPER_CART, cartId)
  return cartId
}

export function rememberCart (cartId) {
  store.set(SHOPPER_CART, cartId)
}

/**
 * A staff page's token: `?token=` (kept, then removed from the address bar) or the one kept
 * for this page. Null when there is none or it has expired.
 */
export function staffToken (key) {
  const params = new URLSearchParams(location.search)
  const fromUrl = params.get('token')
  if (fromUrl) {
    store.set(key, fromUrl)
    params.delete('token')
    const q = params.toString()
    history.replaceState(null, '', location.pathname + (q ? `?${q}` : '') + location.hash)
  }
  const token = store.get(key)
  return token && !expired(token) ? token : null
}

/**
 * The sign-in card of a staff page: paste a token (the host platform issues them;
 * `livecart token --sub … --role …` mints one for development).
 */
export function signInCard ({ title, roles, key, lead, onSignedIn }) {
  const input = h('textarea.token-input', { rows: 3, placeholder: 'eyJhbGciOiJIUzI1NiIs…', spellcheck: false, autocomplete: 'off', 'aria-label': 'Staff token' })
  const error = h('p.form-error', { hidden: true })
  const submit = (e) => {
    e.preventDefault()
    const token = input.value.trim()
    const claims = tokenClaims(token)
    if (!claims) return showError('That does not look like a token.')
    if (expired(token)) return showError('That token has expired.')
    if (roles && !roles.includes(claims.role)) return showError(`This page is for ${roles.join(' or ')} staff; that token is for a ${claims.role}.`)
    store.set(key, token)
    onSignedIn(token)
  }
  const showError = (text) => { error.textContent = text; error.hidden = false }
  const role = roles[0]
  const picker = demoPicker({ roles, onToken: (token) => { store.set(key, token); onSignedIn(token) } })
  return h('div.signin-wrap',
    h('form.card.signin', { onsubmit: submit },
      h('div.signin-icon', icon('lock', 22)),
      h('h1', title),
      h('p.lead', lead || 'Sign in with your staff token.'),
      picker,
      h('details.token-signin',
        h('summary', 'Sign in with a token'),
        h('label.field', h('span', 'Staff token'), input),
        error,
        h('button.btn.primary.wide', { type: 'submit' }, 'Sign in'),
        h('p.hint', 'Tokens come from your shop platform. For development, mint one with ', h('code', `livecart token --sub ${role === 'admin' ? 'root' : 'sam'} --role ${role}`), ' or open this page with ', h('code', '?token=…'), '.'))))
}

/**
 * The demo's sign-in: one button per demo person of the allowed roles; the server mints their
 * token (`POST /api/demo/sessions`, only `livecart demo` has it: elsewhere this stays empty).
 */
export function demoPicker ({ roles, onToken }) {
  const el = h('div.demo-people', { hidden: true, 'aria-label': 'Demo sign-in' })
  const lc = createClient()
  lc.demoPeople().then(({ people }) => {
    const mine = people.filter((p) => roles.includes(p.role))
    if (!mine.length) return
    fill(el, h('p.demo-title', icon('user', 14), 'Demo: sign in as'),
      mine.map((p) => h('button.demo-person', {
        type: 'button',
        dataset: { person: p.id },
        onclick: async (e) => {
          const button = e.currentTarget
          button.disabled = true
          try {
            const { token } = await lc.demoSession(p.id)
            onToken(token, p)
          } catch (err) {
            toast(describeError(err), { kind: 'error', title: 'Demo sign-in' })
          } finally {
            button.disabled = false
          }
        }
      }, h('span.avatar.sm', { style: { background: 'var(--brand-2)' } }, initials(p.name)), h('span', h('strong', `${p.name} · ${p.role}`), h('small', p.about)))))
    el.hidden = false
  }).catch(() => { /* not a demo server: the token form is the way in */ })
  return el
}

// -- layout -------------------------------------------------------------------------------

/** Where each kind of page may link: shoppers never see staff pages; a kiosk links nowhere. */
export const NAV = {
  shop: [['/', 'Shop'], ['/cart', 'Cart']],
  staff: [['/assistant', 'Assistant'], ['/call-centre', 'Call centre'], ['/admin', 'Shop floor'], ['/', 'Shop']],
  none: []
}

/**
 * The top bar: brand, a title, navigation and whatever `right` holds. `nav` is 'shop', 'staff'
 * or 'none' (default: 'staff' on staff pages, else 'shop'). At phone width the links stay, in a
 * scrollable row under the brand.
 */
export function topbar ({ title, right = [], nav, staff = false } = {}) {
  const links = NAV[nav || (staff ? 'staff' : 'shop')] || []
  return h('header.topbar', { class: staff ? 'staff' : '' },
    h('div.topbar-inner',
      h(nav === 'none' ? 'span.brand' : 'a.brand', { href: nav === 'none' ? null : staff ? location.pathname : '/' }, h('span.brand-mark', icon('bag', 18)), h('span.brand-name', 'Hearth', h('span.amp', ' & '), 'Co.'), title ? h('span.brand-title', title) : null),
      links.length ? h('nav.topnav', { 'aria-label': 'Pages' }, links.map(([href, label]) => h('a', { href, class: location.pathname === href ? 'active' : '' }, label))) : null,
      h('div.topbar-right', right)))
}

/** An account chip for staff pages with a sign-out button. */
export function accountChip (token, key) {
  const c = tokenClaims(token) || {}
  return h('div.account',
    h('span.avatar.sm.account-avatar', initials(c.sub)),
    h('span.account-text', h('strong', c.sub || 'staff'), h('small', c.role || '')),
    h('button.icon-btn', { title: 'Sign out', 'aria-label': 'Sign out', onclick: () => { store.set(key, null); location.reload() } }, icon('logout', 18)))
}

/** A "waits for the server" panel: what will be here, and which server feature it needs. */
export function comingSoon (title, text, feature) {
  return h('div.soon',
    h('div.soon-head', h('span.soon-badge', 'Coming with the server'), h('strong', title)),
    h('p', text),
    feature ? h('p.soon-feature', 'Needs: ', h('code', feature)) : null)
}

/** A small connection indicator: Live / Reconnecting… / Offline. */
export function liveDot (label = 'Live') {
  const el = h('span.live', h('i'), h('span', label))
  return {
    el,
    set (status) {
      const map = { open: ['live', label], connected: ['live', label], connecting: ['wait', 'Connecting…'], reconnecting: ['wait', 'Reconnecting…'], disconnected: ['wait', 'Reconnecting…'], closed: ['off', 'Offline'], unavailable: ['off', 'Not available'] }
      const [cls, text] = map[status] || ['wait', status]
      el.className = `live ${cls}`
      el.lastChild.textContent = text
    }
  }
}

// -- the live catalog ----------------------------------------------------------------------

/** The catalog with live availability and viewers (one `/ws/stock` socket for every SKU). */
export class LiveCatalog {
  constructor (lc) {
    this.lc = lc
    /** @type {any[]} */
    this.products = []
    this.bySku = new Map()
    this.levels = new Map()
    this.viewers = new Map()
    this._listeners = new Set()
    this.status = 'connecting'
  }

  async load () {
    const { products } = await this.lc.catalog()
    this.products = products
    this.bySku = new Map(products.map((p) => [p.sku, p]))
    catalogNames = new Map(products.map((p) => [p.sku, p.name]))
    for (const p of products) this.levels.set(p.sku, p.available)
    return this
  }

  /**
   * Starts the live feed; `fn(sku | null)` is called on every change. With `browsing`, the feed
   * carries the shopper's token and says what they view and whether this tab is visible.
   */
  watch ({ browsing = false } = {}) {
    if (this.feed || !this.products.length) return this
    this.feed = this.lc.watchStock(this.products.map((p) => p.sku), (m) => {
      if (typeof m.available === 'number') this.levels.set(m.sku, m.available)
      if (typeof m.viewers === 'number') this.viewers.set(m.sku, m.viewers)
      this._emit(m.sku)
    }, browsing ? { token: this.lc.token } : {})
    this.feed.on('status', (s) => { this.status = s; this._emit(null) })
    if (browsing) {
      const say = () => this.feed.visibility(document.visibilityState === 'hidden' ? 'hidden' : 'visible')
      document.addEventListener('visibilitychange', say)
      say()
    }
    return this
  }

  /** Browsing presence: the product this shopper looks at now (null: none). */
  view (sku) {
    this.feed?.view?.(sku)
  }

  /** How many others view this product (this tab not counted). */
  others (sku) {
    const n = this.viewers.get(sku) || 0
    return Math.max(0, n - (this.feed?.viewing === sku && this.feed?.visible ? 1 : 0))
  }

  onChange (fn) {
    this._listeners.add(fn)
    return () => this._listeners.delete(fn)
  }

  _emit (sku) {
    for (const fn of this._listeners) fn(sku)
  }

  get (sku) {
    return this.bySku.get(sku)
  }

  name (sku) {
    return this.bySku.get(sku)?.name || sku
  }
}

// -- presence ---------------------------------------------------------------------------------

/** How to call someone in a cart: "Your other screen", "Guest", or their name. */
export function peerLabel (peer, cart) {
  if (peer.id === cart.user.id) return 'Your other screen'
  if (/^anon-/.test(peer.name) || peer.name === 'Guest') return peer.role === 'customer' ? 'The customer' : 'Guest'
  return peer.name
}

const CHANNEL_ICON = { web: 'globe', app: 'phone', kiosk: 'monitor', store: 'store', 'call-centre': 'phone', api: 'bolt' }

/** Avatars of everyone in a cart: you first, away people faded, a tooltip with role and channel. */
export function presenceBar (cart) {
  const el = h('div.presence', { 'aria-label': 'People in this cart' })
  const render = () => {
    const all = cart.presence.all
    const avatars = all.slice(0, 6).map((p, i) => h('span.avatar', {
      style: { background: p.color },
      class: p.focus ? '' : 'away',
      title: `${i === 0 ? 'You' : peerLabel(p, cart)} · ${p.role} · ${p.channel}${p.focus ? '' : ' · away'}`
    }, p.name === 'Guest' || /^anon-/.test(p.name) ? icon('user', 15) : initials(p.name), h('i.channel', icon(CHANNEL_ICON[p.channel] || 'globe', 10))))
    const others = all.length - 1
    fill(el, h('div.avatars', avatars),
      h('span.presence-text', others === 0 ? 'Only you here' : `You + ${others} ${others === 1 ? 'other' : 'others'} in this cart`))
  }
  cart.presence.on('change', render)
  render()
  return el
}

// -- holds -----------------------------------------------------------------------------------

/** The hold chip of a line: held with a countdown, partial, sold out, expired… */
export function holdChip (line, hold, { onRetry, staff = false } = {}) {
  if (!hold) return h('span.chip.pending', h('i.spinner'), 'Checking stock…')
  const until = hold.expiresAt ? h('span.countdown', { dataset: { expires: String(hold.expiresAt) } }, clock(hold.expiresAt - Date.now())) : null
  switch (hold.status) {
    case 'held':
      return h('span.chip.held', icon('lock', 13), hold.qty !== line.qty ? `${hold.qty} held` : staff ? 'Held' : 'Held for you', until ? [' · ', until] : null)
    case 'partial':
      return h('span.chip.partial', icon('alert', 13), `Only ${hold.qty} of ${line.qty} available`, until ? [' · ', until] : null)
    case 'unavailable':
      return h('span.chip.sold', icon('x', 13), 'Sold out · not held')
    case 'expired':
      return h('span.chip.expired', icon('clock', 13), 'Hold expired', onRetry ? h('button.link', { onclick: onRetry }, 'Hold again') : null)
    case 'released':
      return h('span.chip.expired', 'Released')
    case 'sold':
      return h('span.chip.held', icon('check', 13), 'Bought')
    default:
      return h('span.chip', hold.status)
  }
}

/** Toasts when a hold is lost (someone else got the last one, or it timed out): never silent. */
export function watchHoldLosses (cart, catalog) {
  let last = { ...cart.holds }
  cart.on('holds', (holds) => {
    for (const [lineId, hold] of Object.entries(holds)) {
      const before = last[lineId]
      const line = cart.line(lineId)
      if (!line || (before && before.status === hold.status && before.qty === hold.qty)) continue
      const name = catalog.name(line.sku)
      if (hold.status === 'unavailable' && before?.status !== 'unavailable') {
        toast(`${name} is sold out: someone else has the last one. It stays in your cart in case it comes back.`, { kind: 'error', title: 'Sold out' })
      } else if (hold.status === 'partial' && (!before || before.status !== 'partial' || before.qty !== hold.qty)) {
        toast(`Only ${hold.qty} of the ${line.qty} ${name} you asked for could be held.`, { kind: 'warn', title: 'Not enough stock' })
      } else if (hold.status === 'expired' && before?.status !== 'expired') {
        toast(`Your hold on ${name} ran out and went back to the shop.`, { kind: 'warn', title: 'Hold expired', action: { label: 'Hold again', run: () => { try { cart.setQty(lineId, line.qty) } catch (err) { toast(describeError(err), { kind: 'error' }) } } } })
      }
    }
    last = { ...holds }
  })
}

/** "1 item", "3 items". */
export const items = (n) => `${n} ${n === 1 ? 'item' : 'items'}`

function heldQty (hold) {
  return hold && (hold.status === 'held' || hold.status === 'partial' || hold.status === 'sold') ? hold.qty || 0 : 0
}

/**
 * Whether a line lacks its hold: expired, released, sold out or only partly held (not while the
 * shop is still deciding). Such a line is not in the total and blocks payment.
 */
export function notHeld (line, hold) {
  if (!hold) return false
  return ['expired', 'released', 'unavailable'].includes(hold.status) || heldQty(hold) < line.qty
}

const CHANNEL_WORDS = { web: 'web', app: 'app', kiosk: 'kiosk', store: 'in store', 'call-centre': 'call centre', api: 'shop floor' }

/**
 * Who added a line, and where: "added by ada · kiosk". A kiosk acts for its signed-in customer, and a
 * guest's lines in a customer's cart are that customer's own (signing in merged them), so both show
 * the owner. Nothing for the viewer's own lines made on this channel.
 */
export function attribution (line, cart, owner) {
  const by = line.addedBy
  if (!by) return ''
  const ownerKnown = owner && !/^(anon|walkin)-/.test(owner)
  let person = by
  if (ownerKnown && (line.channel === 'kiosk' || /^(anon|walkin)-/.test(by))) person = owner
  const me = person === cart.user.id || (by === cart.user.id && !ownerKnown)
  if (me && (!line.channel || line.channel === cart.channel)) return ''
  const name = me ? 'you' : /^anon-/.test(person) ? 'a guest' : /^walkin-/.test(person) ? 'the walk-in customer' : person
  const where = line.channel ? CHANNEL_WORDS[line.channel] || line.channel : ''
  return `added by ${name}${where ? ` · ${where}` : ''}`
}

// -- the cart view ---------------------------------------------------------------------------

/**
 * A live cart: lines (art, name, qty stepper, hold with countdown, total, who added it),
 * personalisation editors bound to Y.Text / Y.Array with typing indicators, pricing summary,
 * note and discount codes, and banners for connection and cart status.
 *
 * @param {import('../src/index.js').Cart} cart
 * @param {LiveCatalog} catalog
 * @param {{readOnly?: boolean, showNote?: boolean, showCodes?: boolean, emptyText?: string, footer?: HTMLElement}} [options]
 */
export function cartView (cart, catalog, options = {}) {
  const { showNote = true, showCodes = true, emptyText = 'Your cart is empty.', emptyAction = null } = options
  const banner = h('div.banners')
  const list = h('ul.lines')
  const empty = h('div.empty', h('div.empty-icon', icon('cart', 28)), h('p', emptyText), emptyAction)
  const summary = h('div.summary')
  const el = h('section.cartview', banner, list, empty, summary)
  const rows = new Map()
  const readOnly = () => options.readOnly || cart.status !== 'open' || cart.connection === 'closed'
  // Whose cart it is, for attribution: given, or asked of the server once (staff pages).
  let owner = options.owner || null
  if (!owner && options.lc) {
    options.lc.getCart(cart.cartId).then((c) => { owner = c.owner || null; render() }).catch(() => {})
  }

  const act = (fn) => {
    try { fn() } catch (err) { toast(describeError(err), { kind: 'error' }) }
  }

  function renderBanner () {
    const items = []
    if (cart.connection === 'closed' && cart.error) {
      items.push(h('div.banner.error', icon('alert', 18), h('span', describeError(cart.error)), options.onClosedAction || null))
    } else if (cart.connection === 'disconnected' || (cart.connection === 'connecting' && !cart.synced && cart.lines.length)) {
      items.push(h('div.banner.warn', h('i.spinner'), h('span', 'Reconnecting… your changes are kept and will sync.')))
    }
    if (cart.status === 'checking_out') items.push(h('div.banner.info', icon('lock', 18), h('span', 'Checkout in progress: this cart is locked until payment is done.')))
    if (cart.status === 'ordered') items.push(h('div.banner.success', icon('check', 18), h('span', `Ordered${cart.checkout?.orderId ? ` · order ${cart.checkout.orderId}` : ''}. Thank you!`)))
    if (cart.status === 'merged') items.push(h('div.banner.info', h('i.spinner'), h('span', 'This cart was combined with another one: opening it…')))
    if (cart.status === 'closed') items.push(h('div.banner.info', icon('lock', 18), h('span', 'This cart is closed.')))
    fill(banner, items)
  }

  function row (line) {
    const product = catalog.get(line.sku)
    const qty = h('span.qty-value')
    const minus = h('button.icon-btn', { 'aria-label': 'One less', onclick: () => act(() => { const l = cart.line(line.id); if (l.qty > 1) cart.setQty(line.id, l.qty - 1) }) }, icon('minus', 16))
    const plus = h('button.icon-btn', { 'aria-label': 'One more', onclick: () => act(() => { const l = cart.line(line.id); cart.setQty(line.id, Math.min(l.qty + 1, product?.maxQty || 99)) }) }, icon('plus', 16))
    const remove = h('button.icon-btn.remove', { 'aria-label': `Remove ${product?.name || line.sku}`, title: 'Remove', onclick: () => act(() => cart.removeLine(line.id)) }, icon('x', 16))
    const chip = h('div.hold')
    const total = h('div.line-total')
    const unit = h('span.unit')
    const by = h('span.by')
    const perso = personalisationEditor(cart, line, product)
    const li = h('li.line', { dataset: { line: line.id, sku: line.sku } },
      h('div.line-main',
        productArt(line.sku, { size: 'sm' }),
        h('div.line-info',
          h('div.line-name', product?.name || line.sku),
          h('div.line-meta', unit, by),
          chip),
        h('div.line-side',
          total,
          h('div.stepper', minus, qty, plus),
          remove)),
      perso?.el)
    let lastHold = null
    return {
      li,
      update (l) {
        qty.textContent = String(l.qty)
        const ro = readOnly()
        minus.disabled = ro || l.qty <= 1
        plus.disabled = ro || l.qty >= (product?.maxQty || 99)
        remove.disabled = ro
        unit.textContent = product ? `${money(product.price, product.currency)} each` : ''
        by.textContent = attribution(l, cart, owner)
        by.hidden = !by.textContent
        const hold = cart.holds[l.id]
        const key = JSON.stringify([hold, l.qty])
        if (key !== lastHold) {
          lastHold = key
          fill(chip, holdChip(l, hold, { staff: options.staff, onRetry: ro ? null : () => act(() => cart.setQty(l.id, cart.line(l.id).qty)) }))
        }
        const priced = cart.pricing?.lines?.[l.id]
        fill(total, priced ? money(priced.total, cart.pricing.currency) : '—')
        total.classList.toggle('muted', !priced || priced.qty < l.qty)
        li.classList.toggle('is-sold', hold?.status === 'unavailable')
        li.classList.toggle('is-unheld', notHeld(l, hold))
        total.title = notHeld(l, hold) ? 'Not held: not in the total' : ''
        perso?.update(l, ro)
      },
      destroy () { perso?.destroy() }
    }
  }

  function renderLines () {
    const seen = new Set()
    let prev = null
    for (const line of cart.lines) {
      seen.add(line.id)
      let r = rows.get(line.id)
      if (!r) {
        r = row(line)
        rows.set(line.id, r)
        r.li.classList.add('enter')
        setTimeout(() => r.li.classList.remove('enter'), 400)
      }
      r.update(line)
      const want = prev ? prev.nextSibling : list.firstChild
      if (want !== r.li) list.insertBefore(r.li, want)
      prev = r.li
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) { r.destroy(); r.li.remove(); rows.delete(id) }
    }
    empty.hidden = cart.lines.length > 0 || !cart.synced
    list.hidden = cart.lines.length === 0
  }

  const note = h('textarea.note', { rows: 2, placeholder: 'Gift wrap, delivery instructions…', maxlength: 2000 })
  let noteTimer = null
  note.addEventListener('input', () => {
    clearTimeout(noteTimer)
    noteTimer = setTimeout(() => act(() => cart.setNote(note.value)), 500)
  })
  const codeInput = h('input', { placeholder: 'Discount code', autocomplete: 'off', maxlength: 64, 'aria-label': 'Discount code' })
  const codes = h('div.codes')
  const codeForm = h('form.code-form', {
    onsubmit: (e) => { e.preventDefault(); if (codeInput.value.trim()) act(() => { cart.addDiscountCode(codeInput.value.trim().toUpperCase()); codeInput.value = '' }) }
  }, icon('tag', 16), codeInput, h('button.btn.ghost.sm', { type: 'submit' }, 'Apply'))
  const totals = h('dl.totals')

  function renderSummary () {
    const p = cart.pricing
    const cur = p?.currency || 'EUR'
    const count = cart.lines.reduce((n, l) => n + l.qty, 0)
    const unheld = cart.lines.filter((l) => notHeld(l, cart.holds[l.id]))
    const held = count - unheld.reduce((n, l) => n + l.qty - heldQty(cart.holds[l.id]), 0)
    const discounts = (p?.discounts || []).map((d) => [h('dt.discount', icon('tag', 14), d.code || 'Discount'), h('dd.discount', `−${money(d.amount ?? d.total ?? 0, cur)}`)])
    fill(totals,
      h('dt', unheld.length ? `Subtotal · ${items(held)} held of ${count}` : `Subtotal · ${items(count)}`), h('dd', money(p?.subtotal || 0, cur)),
      discounts,
      h('dt.total', unheld.length ? 'Total of what is held' : 'Total'), h('dd.total', money(p?.total || 0, cur)),
      unheld.length
        ? h('dd.not-held', icon('alert', 14), `${unheld.length === 1 ? '1 line is' : `${unheld.length} lines are`} not held and not in the total. Hold ${unheld.length === 1 ? 'it' : 'them'} again (or remove ${unheld.length === 1 ? 'it' : 'them'}) to pay.`)
        : null)
    const applied = new Set((p?.discounts || []).map((d) => d.code))
    fill(codes, cart.meta.discountCodes.map((c) => h('span.code', { class: applied.has(c) ? 'applied' : '' }, icon('tag', 12), c,
      applied.has(c) ? null : h('small', 'not recognised'),
      readOnly() ? null : h('button', { 'aria-label': `Remove ${c}`, onclick: () => act(() => cart.removeDiscountCode(c)) }, icon('x', 12)))))
    if (document.activeElement !== note && note.value !== cart.meta.note) note.value = cart.meta.note
    note.disabled = codeInput.disabled = readOnly()
    summary.hidden = cart.lines.length === 0
  }

  fill(summary,
    h('div.summary-card',
      h('h3', 'Summary'),
      totals,
      h('p.fine', icon('lock', 12), ' Prices and holds come from the shop, live.'),
      showCodes ? [codeForm, codes] : null,
      showNote ? h('label.field.note-field', h('span', 'Note for the shop'), note) : null,
      options.footer || null))

  const render = () => { renderBanner(); renderLines(); renderSummary() }
  const offs = [cart.on('change', render), cart.on('connection', render), cart.on('synced', render), cart.on('closed', render)]
  render()
  return {
    el,
    render,
    destroy () { offs.forEach((off) => off()); for (const r of rows.values()) r.destroy() }
  }
}

/** Personalisation editors for one line: Y.Text fields co-typed live, list fields as chips. */
function personalisationEditor (cart, line, product) {
  const fields = Object.entries(product?.personalisation || {})
  if (!fields.length) return null
  const unbinds = []
  const updaters = []
  const typing = new Map()
  const body = h('div.perso-fields')
  const progress = h('span.perso-progress')
  const el = h('details.perso', { open: true },
    h('summary', icon('pencil', 15), h('span', 'Personalise'), progress),
    body)
  const sorted = fields.sort(([, a], [, b]) => (a.kind === 'list') - (b.kind === 'list'))
  for (const [field, spec] of sorted) {
    const who = h('span.typing')
    typing.set(field, who)
    const label = h('span.field-label', titleCase(field), spec.required ? h('em', 'required') : h('small', 'optional'))
    if (spec.kind === 'text') {
      const long = spec.maxLength > 120
      const input = long
        ? h('textarea', { rows: 4, maxlength: spec.maxLength, placeholder: field === 'wording' ? 'Together with their families…' : '' })
        : h('input', { type: 'text', maxlength: spec.maxLength, placeholder: field === 'names' ? 'Ada & Charles' : field === 'date' ? 'Saturday 14 June 2025' : '' })
      const count = h('span.count')
      const updateCount = () => { count.textContent = `${input.value.length}/${spec.maxLength}` }
      input.addEventListener('input', updateCount)
      unbinds.push(cart.bindText(line.id, field, input))
      updateCount()
      body.append(h('label.field.perso-field', h('span.field-head', label, who, count), input))
      updaters.push((l, ro) => { input.disabled = ro; updateCount() })
    } else {
      const chips = h('ul.entries')
      const add = h('input', { type: 'text', maxlength: spec.maxLength, placeholder: field === 'guests' ? 'Add a guest and press Enter' : 'Add an entry' })
      const count = h('span.count')
      const list = () => cart.personalise(line.id, field, { kind: 'list' })
      const form = h('form.entry-form', {
        onsubmit: (e) => {
          e.preventDefault()
          const value = add.value.trim()
          if (!value) return
          try {
            const arr = list()
            if (arr.length >= spec.maxItems) return toast(`At most ${spec.maxItems} entries.`, { kind: 'warn' })
            arr.push([value])
            add.value = ''
          } catch (err) { toast(describeError(err), { kind: 'error' }) }
        }
      }, add, h('button.btn.ghost.sm', { type: 'submit' }, 'Add'))
      add.addEventListener('focus', () => cart.presence.set({ editing: { lineId: line.id, field } }))
      add.addEventListener('blur', () => cart.presence.set({ editing: null }))
      body.append(h('div.field.perso-field', h('span.field-head', label, who, count), chips, form))
      let lastJson = null
      updaters.push((l, ro) => {
        const entries = Array.isArray(l.personalisation?.[field]) ? l.personalisation[field] : []
        count.textContent = `${entries.length}/${spec.maxItems}`
        add.disabled = ro
        const json = JSON.stringify([entries, ro])
        if (json === lastJson) return
        lastJson = json
        fill(chips, entries.map((entry, i) => h('li.entry', entry, ro
          ? null
          : h('button', {
            'aria-label': `Remove ${entry}`,
            onclick: () => { try { const arr = list(); if (arr.get(i) === entry) arr.delete(i, 1) } catch (err) { toast(describeError(err), { kind: 'error' }) } }
          }, icon('x', 12)))))
      })
    }
  }
  const renderTyping = () => {
    for (const [field, el2] of typing) {
      const people = cart.presence.others.filter((p) => p.editing?.lineId === line.id && p.editing?.field === field)
      fill(el2, people.map((p) => h('span.typing-who', { style: { '--c': p.color } }, h('i'), `${peerLabel(p, cart)} is typing`)))
    }
  }
  const offPresence = cart.presence.on('change', renderTyping)
  return {
    el,
    update (l, ro) {
      for (const u of updaters) u(l, ro)
      const p = l.personalisation || {}
      const required = fields.filter(([, s]) => s.required)
      const done = required.filter(([f]) => (typeof p[f] === 'string' ? p[f].trim() : (p[f] || []).length)).length
      progress.textContent = required.length ? `${done}/${required.length} required done` : ''
      progress.classList.toggle('complete', done === required.length)
      renderTyping()
    },
    destroy () { unbinds.forEach((u) => u()); offPresence() }
  }
}

// -- product picker (staff pages) ------------------------------------------------------------

/** A searchable list of products with live availability and an Add button. */
export function productPicker (catalog, { onAdd, title = 'Add products' } = {}) {
  const search = h('input.search', { type: 'search', placeholder: 'Search products', 'aria-label': 'Search products' })
  const list = h('ul.picker-list')
  const render = () => {
    const q = search.value.trim().toLowerCase()
    const items = catalog.products.filter((p) => !q || p.name.toLowerCase().includes(q) || p.sku.toLowerCase().includes(q))
    fill(list, items.slice(0, 40).map((p) => {
      const available = catalog.levels.get(p.sku) ?? p.available
      return h('li.pick',
        productArt(p.sku, { size: 'sm' }),
        h('div.pick-info', h('strong', p.name), h('small', `${money(p.price, p.currency)} · `, availabilityText(available))),
        h('button.btn.sm', { disabled: available <= 0, onclick: () => onAdd(p) }, available <= 0 ? 'Sold' : 'Add'))
    }))
  }
  search.addEventListener('input', render)
  catalog.onChange(() => render())
  render()
  return h('section.card.picker', h('div.card-head', h('h3', title), h('label.searchbox', icon('search', 16), search)), list)
}

export function availabilityText (available) {
  if (available <= 0) return h('span.avail.sold', 'sold')
  if (available <= 3) return h('span.avail.low', `only ${available} left`)
  return h('span.avail', `${available} in stock`)
}

/** Adds a product to a cart the way shoppers expect: one more of a plain line, a new line if personalised. */
export function addProduct (cart, product, qty = 1) {
  const fields = Object.entries(product.personalisation || {})
  if (!fields.length) {
    const existing = cart.lines.find((l) => l.sku === product.sku && !l.personalisation)
    if (existing) {
      const next = Math.min(existing.qty + qty, product.maxQty)
      if (next === existing.qty) throw new RangeError(`At most ${product.maxQty} of ${product.name} per order.`)
      cart.setQty(existing.id, next)
      return existing.id
    }
    return cart.addLine(product.sku, qty)
  }
  const personalisation = Object.fromEntries(fields.map(([f, s]) => [f, s.kind === 'list' ? [] : '']))
  return cart.addLine(product.sku, qty, { personalisation })
}

/** Shows a cart's errors and merges as toasts (never silent). */
export function reportCartEvents (cart) {
  cart.on('error', (err) => {
    if (err instanceof MergedError && err.into) {
      toast('This cart was combined with another one: you now see the combined cart.', { kind: 'info', title: 'Carts combined' })
    } else if (!(err instanceof DisconnectedError) || err.closeCode === 1011) {
      toast(describeError(err), { kind: err.retryable ? 'warn' : 'error', title: err instanceof RejectedError ? 'Change not saved' : undefined })
    }
  })
}

export { Y }

// -- staff pages ------------------------------------------------------------------------------

/**
 * Boots a staff page: the sign-in card until there is a token of an allowed role, then
 * `render(token, client)` under a staff top bar.
 */
export function staffPage ({ key, roles, title, lead, render, nav = 'staff' }) {
  const app = document.getElementById('app')
  const token = staffToken(key)
  const claims = tokenClaims(token)
  if (!token || !roles.includes(claims?.role)) {
    if (token) store.set(key, null)
    fill(app, topbar({ title, staff: true, nav }), h('main.page', signInCard({
      title, roles, key, lead, onSignedIn: () => location.reload()
    })))
    return
  }
  const right = h('div.topbar-right-slot')
  const main = h('main.page')
  fill(app, topbar({ title, staff: true, nav, right: [right, accountChip(token, key)] }), main)
  const lc = createClient({ token })
  // A page that fails to start says why, on the page (never a blank screen).
  Promise.resolve().then(() => render({ token, claims, lc, main, right }))
    .catch((err) => fill(main, h('div.card.error-card', icon('alert', 22), h('p', describeError(err)))))
}

/** The live catalog of a staff page, its status shown as a dot in the top bar. */
export async function liveCatalogIn (lc, right) {
  const catalog = await new LiveCatalog(lc).load()
  catalog.watch()
  const dot = liveDot('Live')
  right.append(dot.el)
  catalog.onChange(() => dot.set(catalog.status))
  return catalog
}

/** The footer: a shopper's pages for shoppers, the staff pages for staff. */
export function siteFooter (nav = 'shop') {
  return h('footer.site-foot', h('span', 'livecart demo ·'),
    (NAV[nav] || []).map(([href, label]) => h('a', { href }, label)))
}

// -- chat on the cart ---------------------------------------------------------------------

const STAFF_ROLES = new Set(['assistant', 'operator', 'admin'])

/**
 * The cart's conversation (root `chat`) with a box to write in: every page that has the cart open
 * live shows it. Typing is presence, so the others (and the shop floor) see "… is typing".
 * @param {import('../src/index.js').Cart} cart
 * @param {{title?: string, placeholder?: string, staff?: boolean}} [options]
 */
export function chatPanel (cart, { title = 'Chat', placeholder = 'Write a message…', staff = false } = {}) {
  const list = h('ol.chat-list', { 'aria-live': 'polite' })
  const typing = h('div.chat-typing', { hidden: true })
  const input = h('input', { name: 'message', placeholder, maxlength: 2000, autocomplete: 'off', 'aria-label': 'Message' })
  let typingTimer = null
  const stopTyping = () => { clearTimeout(typingTimer); cart.setTyping(false) }
  input.addEventListener('input', () => {
    cart.setTyping(input.value.length > 0)
    clearTimeout(typingTimer)
    typingTimer = setTimeout(stopTyping, 5000) // a pause is not typing
  })
  input.addEventListener('blur', stopTyping)
  const form = h('form.chat-form', {
    onsubmit: (e) => {
      e.preventDefault()
      const text = input.value.trim()
      if (!text) return
      try {
        cart.say(text)
        input.value = ''
        stopTyping()
      } catch (err) {
        toast(describeError(err), { kind: 'error', title: 'Message not sent' })
      }
    }
  }, input, h('button.btn.primary', { type: 'submit' }, 'Send'))
  const me = () => tokenClaims(cart.token)?.sub || cart.user.id
  const render = () => {
    const messages = [...cart.chat].sort((a, b) => a.at - b.at)
    if (!messages.length) {
      fill(list, h('li.chat-empty.muted', staff ? 'No messages yet. Say hello: the shopper sees it at once.' : 'Questions? Write here: the shop sees your message and answers live.'))
      return
    }
    fill(list, messages.map((m) => {
      const mine = m.from === me()
      const who = mine ? 'You' : STAFF_ROLES.has(m.role) ? (staff ? `${m.from} (${m.role})` : `${m.from} · shop ${m.role}`) : (/^anon-/.test(m.from) ? 'Guest' : m.from)
      return h('li.chat-msg', { class: `${mine ? 'mine' : 'theirs'} ${STAFF_ROLES.has(m.role) ? 'staff' : 'shopper'}`, dataset: { from: m.from, role: m.role } },
        h('small.chat-who', who, ' · ', new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
        h('span.chat-text', m.text))
    }))
    list.scrollTop = list.scrollHeight
  }
  const renderTyping = () => {
    const who = cart.presence.others.filter((p) => p.typing).map((p) => p.name)
    typing.hidden = !who.length
    typing.textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : ''
  }
  const offs = [cart.on('chat', render), cart.on('synced', render), cart.presence.on('change', renderTyping)]
  render()
  renderTyping()
  const el = h('section.card.chat-card', h('div.card-head', h('h2', icon('chat', 18), title)), list, typing, form)
  return {
    el,
    input,
    destroy () { stopTyping(); for (const off of offs) off?.() }
  }
}
