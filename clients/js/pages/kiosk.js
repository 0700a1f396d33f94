/* eslint-env browser */
/**
 * Kiosk `/kiosk/{kioskId}` (a shared in-store screen): a customer signs in with the code shown
 * on their phone, edits their cart, and signs out — or is signed out after a spell of idleness
 * (the server's `--kiosk-idle`, read from `GET /api/kiosks/{id}`; `?idle=SECONDS` shortens it on this screen).
 * Taps reset the server's idle clock (throttled pings). Signing out clears the screen; when the
 * server signs the kiosk out (idle, or another customer) its socket closes (4403) and the
 * screen clears too.
 */
import { ForbiddenError, NotAvailableError, NotFoundError, RateLimitedError, UnauthorizedError } from '../src/index.js'
import {
  addProduct, cartView, chatPanel, clock, describeError, fill, h, icon, liveCatalogIn, money, presenceBar,
  productArt, staffPage, toast
} from './ui.js'
import { orderHistory } from './records.js'

const kioskId = decodeURIComponent(location.pathname.split('/')[2] || 'front-door')
const localIdle = Number(new URLSearchParams(location.search).get('idle')) || 0
const PING_EVERY_MS = 10_000

staffPage({
  key: `livecart.kiosk.${kioskId}`,
  roles: ['kiosk', 'admin'],
  title: `Kiosk · ${kioskId}`,
  nav: 'none', // a shared screen in the shop: customers must not wander into staff pages
  lead: `Set up this kiosk once with its device token (a kiosk token whose subject is “${kioskId}”). Customers then sign in with a code from their phone.`,
  render: (ctx) => {
    if (ctx.claims.role === 'kiosk' && ctx.claims.sub !== kioskId) {
      // A kiosk token names its kiosk: go to that kiosk's page.
      location.replace(`/kiosk/${encodeURIComponent(ctx.claims.sub)}?token=${encodeURIComponent(ctx.token)}`)
      return
    }
    return start(ctx)
  }
})

async function start ({ lc, claims, main, right }) {
  main.className = 'kiosk'
  const catalog = await liveCatalogIn(lc, right)
  let cart = null
  let view = null
  let chat = null
  let past = null // the signed-in customer's order history, live while they are signed in
  let idleMs = (localIdle || 120) * 1000
  let idleAt = 0
  let idleTimer = null
  let overlay = null
  let lastPing = 0

  const welcome = (message) => {
    stopIdle()
    const code = h('input.code-input', { maxlength: 6, placeholder: '••••••', autocomplete: 'off', 'aria-label': 'Code from your phone' })
    const note = h('p.form-error', { hidden: !message }, message || '')
    const submit = h('button.btn.primary.wide', { type: 'submit' }, 'Sign in', icon('arrow', 18))
    const staffOpen = h('input', { placeholder: 'Cart id', autocomplete: 'off', 'aria-label': 'Cart id' })
    fill(main, h('div.kiosk-welcome',
      h('form.card.kiosk-card', {
        onsubmit: async (e) => {
          e.preventDefault()
          if (!code.value.trim()) return
          submit.disabled = true
          try {
            const session = await lc.startKioskSession(kioskId, code.value)
            signedIn(session.cartId, session.customerId, session.idleSeconds)
          } catch (err) {
            note.hidden = false
            if (err instanceof NotAvailableError) note.textContent = 'Signing in at a kiosk is not switched on on this server yet.'
            else if (err instanceof NotFoundError) note.textContent = 'That code is not valid (or it expired, or it was used). Make a new one on your phone.'
            else if (err instanceof RateLimitedError) note.textContent = 'Too many tries: wait a minute, then try again.'
            else note.textContent = describeError(err)
          } finally {
            submit.disabled = false
          }
        }
      },
      h('span.brand-mark', { style: { width: '56px', height: '56px', borderRadius: '16px' } }, icon('bag', 28)),
      h('h1', 'Welcome to Hearth & Co.'),
      h('ol.kiosk-steps',
        h('li', 'Open your cart on your phone'),
        h('li', 'Tap “Use a kiosk” to get a code'),
        h('li', 'Type the code here')),
      code, note, submit,
      h('p.hint.idle-note', 'For your privacy you are signed out after ', h('strong.idle-seconds', String(Math.round(idleMs / 1000))), ' seconds without a tap.'),
      claims.role === 'admin'
        ? h('details', { style: { width: '100%', textAlign: 'left' } }, h('summary.hint', 'Staff: open a cart by id'),
          h('div.inline-form', { style: { marginTop: '8px' } }, staffOpen, h('button.btn', { type: 'button', onclick: () => staffOpen.value.trim() && signedIn(staffOpen.value.trim(), null, null) }, 'Open')))
        : null)))
    code.focus()
  }

  const signedIn = (cartId, customer, idleSeconds, leftSeconds) => {
    cart?.close()
    view?.destroy()
    chat?.destroy()
    past?.destroy()
    if (idleSeconds && !localIdle) idleMs = idleSeconds * 1000
    cart = lc.openCart(cartId, { channel: 'kiosk', user: { name: `Kiosk ${kioskId}`, role: claims.role } })
    cart.on('error', (err) => {
      if (err instanceof ForbiddenError || err instanceof UnauthorizedError) {
        signOut(/idle/.test(err.reason) ? 'Signed out after a while without a tap. Your cart is saved on your phone.' : 'This kiosk was signed out. Sign in again with a new code.', false)
      } else if (!err.retryable) {
        toast(describeError(err), { kind: 'error' })
      }
    })
    view = cartView(cart, catalog, { emptyText: 'Tap a product to add it.', showNote: false, owner: customer })
    const idle = idleRing()
    // The signed-in customer's orders, for as long as they are signed in here.
    past = orderHistory(lc, { customer, title: 'Your orders', limit: 5 })
    past.el.hidden = !customer
    const products = h('div.kiosk-products', catalog.products.map((p) => {
      const button = h('button.kiosk-product', { onclick: () => { try { addProduct(cart, p) } catch (err) { toast(describeError(err), { kind: 'error' }) } } },
        productArt(p.sku, { size: 'lg' }), h('span', p.name), h('small', money(p.price, p.currency)))
      const update = () => { button.disabled = (catalog.levels.get(p.sku) ?? p.available) <= 0 }
      catalog.onChange((sku) => { if (!sku || sku === p.sku) update() })
      update()
      return button
    }))
    fill(main,
      h('div.kiosk-bar',
        h('h1', customer ? `Hello, ${customer.startsWith('anon-') ? 'there' : customer}` : 'Your cart'),
        presenceBar(cart),
        idle.el,
        h('button.btn', { onclick: () => signOut('Signed out. See you soon!', true) }, icon('logout', 18), 'Sign out')),
      h('div.kiosk-grid', h('section', products), h('aside', view.el, (chat = chatPanel(cart, { title: 'Ask the shop' })).el, past.el)))
    if (customer) {
      past.load()
      past.follow()
    }
    startIdle(idle, leftSeconds ? Math.min(idleMs, leftSeconds * 1000) : idleMs)
  }

  const signOut = async (message, tellServer) => {
    if (!cart) return
    stopIdle()
    overlay?.remove()
    overlay = null
    const had = cart
    cart = null
    view?.destroy()
    view = null
    chat?.destroy()
    chat = null
    past?.destroy()
    past = null
    had.close()
    welcome()
    toast(message, { kind: 'info', title: 'Signed out' })
    if (tellServer) {
      try {
        await lc.endKioskSession(kioskId)
      } catch (err) {
        if (!(err instanceof NotAvailableError)) toast(describeError(err), { kind: 'warn' })
      }
    }
  }

  // -- idle sign-out ----------------------------------------------------------------------------

  const activity = () => {
    if (!cart) return
    idleAt = Date.now() + idleMs
    if (overlay) { overlay.remove(); overlay = null }
    if (Date.now() - lastPing > PING_EVERY_MS) {
      lastPing = Date.now()
      lc.pingKiosk(kioskId).catch((err) => {
        if (err instanceof NotFoundError) signOut('This kiosk was signed out. Sign in again with a new code.', false)
      })
    }
  }
  for (const type of ['pointerdown', 'keydown', 'input', 'wheel', 'touchstart']) window.addEventListener(type, activity, { passive: true })

  function startIdle (ring, first) {
    idleAt = Date.now() + first
    lastPing = Date.now()
    clearInterval(idleTimer)
    const warnMs = Math.min(20_000, idleMs / 3)
    idleTimer = setInterval(() => {
      const left = idleAt - Date.now()
      ring.set(left, idleMs, warnMs)
      if (left <= 0) return signOut('Signed out after a while without a tap. Your cart is saved on your phone.', true)
      if (left <= warnMs && !overlay) {
        const count = h('div.big')
        overlay = h('div.overlay', h('div.card', h('h2', 'Still there?'), h('p.muted', 'For your privacy this kiosk signs out soon.'), count,
          h('button.btn.primary.wide', { onclick: activity }, 'I’m still here')))
        overlay.update = () => { count.textContent = clock(idleAt - Date.now()) }
        document.body.append(overlay)
      }
      overlay?.update?.()
    }, 250)
  }

  function stopIdle () {
    clearInterval(idleTimer)
    idleTimer = null
  }

  // The server's idle limit (what the welcome promises), and whoever is still signed in here
  // (the page was reloaded): carry on with them. Nobody signed in is an answer, not a 404.
  let info = null
  try {
    info = await lc.kiosk(kioskId)
  } catch (err) {
    toast(describeError(err), { kind: 'warn', title: 'Kiosk' })
  }
  if (info?.idleSeconds && !localIdle) idleMs = info.idleSeconds * 1000
  if (info?.session) signedIn(info.session.cartId, info.session.customerId, null, info.session.idleSecondsLeft)
  else welcome()
}

function idleRing () {
  const r = 12
  const c = 2 * Math.PI * r
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.createElementNS(ns, 'svg')
  svg.setAttribute('viewBox', '0 0 30 30')
  svg.classList.add('ring')
  svg.innerHTML = `<circle class="bg" cx="15" cy="15" r="${r}"/><circle class="fg" cx="15" cy="15" r="${r}" stroke-dasharray="${c}" stroke-dashoffset="0"/>`
  const text = h('span', 'Signed in')
  const el = h('span.idle', { title: 'Signs out by itself when nobody taps' }, svg, text)
  return {
    el,
    set (left, total, warn) {
      svg.querySelector('.fg').setAttribute('stroke-dashoffset', String(c * (1 - Math.max(0, left) / total)))
      text.textContent = `Signing out in ${clock(left)}`
      el.classList.toggle('low', left < warn)
    }
  }
}
