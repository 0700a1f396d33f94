/**
 * The HTTP JSON API of DESIGN.md as plain async functions, plus `createClient()`, which binds
 * a server URL and a token once for the API, carts and feeds.
 * @module livecart/api
 */
import { openCart } from './cart.js'
import { errorFromResponse, DisconnectedError } from './errors.js'
import { watchAdmin, watchMe, watchOrders, watchStock } from './feeds.js'
import { defaults, resolveToken, serverUrls, tokenClaims } from './util.js'

const enc = encodeURIComponent

/**
 * A livecart client: one server, one identity. Every API method returns the response's JSON
 * or throws a typed error (`UnauthorizedError`, `ForbiddenError`, `NotFoundError`,
 * `RejectedError`, `ConflictError`, `RateLimitedError`, `NotAvailableError` for a route this
 * server does not have yet, `DisconnectedError` for network and 5xx failures).
 *
 * @example
 *   const lc = createClient({ url: 'http://127.0.0.1:8080' })
 *   const { token } = await lc.anonymousSession()   // also adopted as lc's token
 *   const { cartId } = await lc.createCart({ channel: 'web' })
 *   const cart = lc.openCart(cartId, { user: { name: 'Ada' } })
 *
 * @param {import('./index.js').ClientOptions} [options]
 * @returns {Client}
 */
export function createClient (options = {}) {
  return new Client(options)
}

/** See `createClient`. */
export class Client {
  /** @param {import('./index.js').ClientOptions} [options] */
  constructor ({ url, token, WebSocket, fetch, channel = 'web', user } = {}) {
    this._urls = serverUrls(url)
    /** The token sent as bearer and to sockets (string or function returning one). */
    this.token = token
    this.channel = channel
    this.user = user
    this._WebSocket = WebSocket
    this._fetch = fetch
  }

  /** The server's http(s) base URL. */
  get url () {
    return this._urls.http
  }

  /** The token's claims (`sub`, `role`, `exp`) as far as they can be read here (not verified). */
  get identity () {
    return typeof this.token === 'string' ? tokenClaims(this.token) : null
  }

  /**
   * Calls the API. `body` is sent as JSON.
   * @param {string} method
   * @param {string} path
   * @param {{body?: unknown, token?: string | null}} [options]
   * @returns {Promise<any>}
   */
  async request (method, path, { body, token } = {}) {
    const doFetch = this._fetch || defaults.fetch
    if (!doFetch) throw new TypeError('livecart: no fetch here; pass {fetch}')
    const bearer = token === null ? undefined : (token ?? await resolveToken(this.token))
    const headers = { accept: 'application/json' }
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (bearer) headers.authorization = `Bearer ${bearer}`
    let res
    try {
      res = await doFetch(this._urls.http + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    } catch (cause) {
      throw new DisconnectedError(`${method} ${path}: server unreachable`, { cause })
    }
    const text = await res.text()
    let data = null
    try {
      data = text ? JSON.parse(text) : null
    } catch {
      data = null
    }
    if (!res.ok) throw errorFromResponse(res.status, data, `${method} ${path.split('?')[0]}`)
    return data
  }

  // -- identity and carts ---------------------------------------------------------------

  /** A token for an anonymous shopper; adopted as this client's token. @returns {Promise<{token: string, customerId: string}>} */
  async anonymousSession () {
    const session = await this.request('POST', '/api/sessions/anonymous', { token: null })
    this.token = session.token
    return session
  }

  /**
   * Merges an anonymous shopper's open carts into the signed-in customer's (this client's token).
   * @param {string} anonymousToken
   * @returns {Promise<{cartId: string}>}
   */
  claim (anonymousToken) {
    return this.request('POST', '/api/sessions/claim', { body: { anonymousToken } })
  }

  /**
   * Creates a cart (a customer's own; staff and admins give `owner`).
   * @param {{channel?: string, owner?: string}} [options]
   * @returns {Promise<{cartId: string}>}
   */
  createCart ({ channel = this.channel, owner } = {}) {
    return this.request('POST', '/api/carts', { body: owner ? { channel, owner } : { channel } })
  }

  /** The cart as JSON. @param {string} cartId @returns {Promise<import('./index.js').CartJson>} */
  getCart (cartId) {
    return this.request('GET', `/api/carts/${enc(cartId)}`)
  }

  /** Carts of an owner (default: the caller). @param {string} [owner] @returns {Promise<{carts: any[]}>} */
  listCarts (owner) {
    return this.request('GET', '/api/carts' + (owner ? `?owner=${enc(owner)}` : ''))
  }

  /** @param {string} cartId @param {string} into @returns {Promise<any>} */
  mergeCart (cartId, into) {
    return this.request('POST', `/api/carts/${enc(cartId)}/merge`, { body: { into } })
  }

  /**
   * Moves some lines, with their holds, to a new cart of the same owner (to check them out separately).
   * @param {string} cartId @param {string[]} lineIds @returns {Promise<{cartId: string}>}
   */
  splitCart (cartId, lineIds) {
    return this.request('POST', `/api/carts/${enc(cartId)}/split`, { body: { lineIds } })
  }

  /**
   * Admin: which checkout groups a group may (combinesWith) or may not (conflictsWith) share a checkout with.
   * @param {string} group @param {{combinesWith?: string[], conflictsWith?: string[]}} rule @returns {Promise<any>}
   */
  putCheckoutGroup (group, rule) {
    return this.request('PUT', `/api/checkout-groups/${enc(group)}`, { body: rule })
  }

  /** An invite code for a cart. @param {string} cartId @returns {Promise<{code: string, expiresAt: number}>} */
  createInvite (cartId) {
    return this.request('POST', `/api/carts/${enc(cartId)}/invites`, { body: {} })
  }

  /** Accepts an invite code. @param {string} code @returns {Promise<{cartId: string}>} */
  acceptInvite (code) {
    return this.request('POST', `/api/invites/${enc(String(code).trim().toUpperCase())}/accept`, { body: {} })
  }

  // -- customers, staff, kiosks --------------------------------------------------------

  /** Profile with favourites, recent orders and suggestions. @param {string} customerId */
  customer (customerId) {
    return this.request('GET', `/api/customers/${enc(customerId)}`)
  }

  /** @param {string} customerId @param {string} sku @param {boolean} [on] */
  setFavourite (customerId, sku, on = true) {
    return this.request(on ? 'PUT' : 'DELETE', `/api/customers/${enc(customerId)}/favourites/${enc(sku)}`, on ? { body: {} } : {})
  }

  /** @param {string} customerId */
  customerOrders (customerId) {
    return this.request('GET', `/api/customers/${enc(customerId)}/orders`)
  }

  /** A code to show on the phone and type at a kiosk. @returns {Promise<{code: string}>} */
  createKioskCode () {
    return this.request('POST', '/api/kiosk-codes', { body: {} })
  }

  /** Signs a customer in at a kiosk (kiosk token). @param {string} kioskId @param {string} code */
  startKioskSession (kioskId, code) {
    return this.request('POST', `/api/kiosks/${enc(kioskId)}/sessions`, { body: { code: String(code).trim().toUpperCase() } })
  }

  /** The demo people one may sign in as (`livecart demo` only). @returns {Promise<{people: any[]}>} */
  demoPeople () {
    return this.request('GET', '/api/demo/people')
  }

  /** A token for a demo person (`livecart demo` only). @param {string} person */
  demoSession (person) {
    return this.request('POST', '/api/demo/sessions', { body: { person } })
  }

  /**
   * The kiosk as the server knows it: `{kioskId, idleSeconds, session}` (session null when nobody
   * is signed in: no 404). @param {string} kioskId
   */
  kiosk (kioskId) {
    return this.request('GET', `/api/kiosks/${enc(kioskId)}`)
  }

  /** Who is signed in at a kiosk: `{cartId, customerId, idleSecondsLeft}` (NotFoundError when nobody). @param {string} kioskId */
  kioskSession (kioskId) {
    return this.request('GET', `/api/kiosks/${enc(kioskId)}/sessions`)
  }

  /** The customer at the kiosk is still there: resets the server's idle clock. @param {string} kioskId */
  pingKiosk (kioskId) {
    return this.request('POST', `/api/kiosks/${enc(kioskId)}/sessions/ping`, { body: {} })
  }

  /** Signs the kiosk's customer out. @param {string} kioskId */
  endKioskSession (kioskId) {
    return this.request('DELETE', `/api/kiosks/${enc(kioskId)}/sessions`)
  }

  // -- catalog and stock ---------------------------------------------------------------

  /** Every product with availability. @returns {Promise<{products: import('./index.js').Product[]}>} */
  catalog () {
    return this.request('GET', '/api/catalog', { token: null })
  }

  /** @param {string} sku @param {object} product */
  putProduct (sku, product) {
    return this.request('PUT', `/api/catalog/${enc(sku)}`, { body: product })
  }

  /** On-hand, held and available per SKU. @param {string[]} skus @returns {Promise<Record<string, {onHand: number, held: number, available: number}>>} */
  stock (skus) {
    return this.request('GET', `/api/stock?skus=${skus.map(enc).join(',')}`, { token: null })
  }

  /** @param {string} sku @param {number} onHand */
  setStock (sku, onHand) {
    return this.request('PUT', `/api/stock/${enc(sku)}`, { body: { onHand } })
  }

  /** An in-store sale (negative) or a delivery (positive). @param {string} sku @param {number} delta @param {string} reason */
  adjustStock (sku, delta, reason) {
    return this.request('POST', `/api/stock/${enc(sku)}/adjust`, { body: { delta, reason } })
  }

  // -- checkout, orders, discounts -------------------------------------------------------

  /** @param {string} cartId @returns {Promise<{orderId: string, state: string, total: number}>} */
  checkout (cartId) {
    return this.request('POST', `/api/carts/${enc(cartId)}/checkout`, { body: {} })
  }

  /** Records the checkout step (personalise → details → payment). @param {string} cartId @param {string} step */
  checkoutStep (cartId, step) {
    return this.request('POST', `/api/carts/${enc(cartId)}/checkout/step`, { body: { step } })
  }

  /** @param {string} orderId */
  order (orderId) {
    return this.request('GET', `/api/orders/${enc(orderId)}`)
  }

  /** (platform, as admin) @param {string} orderId @param {'paid'|'failed'} status @param {string} [reference] */
  setPayment (orderId, status, reference = '') {
    return this.request('POST', `/api/orders/${enc(orderId)}/payment`, { body: { status, reference } })
  }

  /** (admin) @param {string} orderId @param {'dispatched'|'delivered'|'cancelled'} status */
  setOrderStatus (orderId, status, tracking) {
    return this.request('POST', `/api/orders/${enc(orderId)}/status`, { body: tracking ? { status, tracking } : { status } })
  }

  /**
   * Orders, newest first, a page at a time (pass the answer's `next` as `cursor`). A customer gets
   * its own; staff name the customer. @param {{status?: string, customer?: string, since?: string|number, limit?: number, cursor?: string}} [query]
   */
  orders (query = {}) {
    return this.request('GET', '/api/orders' + queryString(query))
  }

  /** (admin) Every open cart with a summary: the shop floor on load. */
  openCarts () {
    return this.request('GET', '/api/carts?status=open')
  }

  /** (admin, operator) Find customers. @param {{q?: string, bought?: string|string[], category?: string, since?: string|number, limit?: number, cursor?: string}} [query] */
  searchCustomers (query = {}) {
    const bought = Array.isArray(query.bought) ? query.bought.join(',') : query.bought
    return this.request('GET', '/api/customers' + queryString({ ...query, bought }))
  }

  /** (the customer, admin) Set profile fields. @param {string} customerId @param {{name?: string|null, email?: string|null, phone?: string|null, marketingConsent?: boolean}} profile */
  updateCustomer (customerId, profile) {
    return this.request('PUT', `/api/customers/${enc(customerId)}`, { body: profile })
  }

  /** (admin) A live discount into a cart. @param {string} cartId @param {{code: string, percentOff?: number, amountOff?: number}} discount */
  addDiscount (cartId, discount) {
    return this.request('POST', `/api/carts/${enc(cartId)}/discounts`, { body: discount })
  }

  // -- live ------------------------------------------------------------------------------

  /**
   * Opens a live cart with this client's server, token and channel.
   * @param {string} cartId
   * @param {Partial<import('./index.js').OpenCartOptions>} [options]
   */
  openCart (cartId, options = {}) {
    return openCart({ url: this._urls.http, token: this.token, channel: this.channel, user: this.user, WebSocket: this._WebSocket, fetch: this._fetch, ...options, cartId })
  }

  /** `watchStock` on this client's server. @param {string[]} skus @param {(m: any) => void} cb @param {object} [options] */
  watchStock (skus, cb, options = {}) {
    return watchStock(skus, cb, { url: this._urls.http, WebSocket: this._WebSocket, fetch: this._fetch, ...options })
  }

  /** `watchAdmin` with this client's token. @param {(e: any) => void} cb */
  watchAdmin (cb, options = {}) {
    return watchAdmin(cb, { url: this._urls.http, token: this.token, WebSocket: this._WebSocket, fetch: this._fetch, ...options })
  }

  /** `watchMe` with this client's token. @param {(e: any) => void} cb */
  watchMe (cb, options = {}) {
    return watchMe(cb, { url: this._urls.http, token: this.token, WebSocket: this._WebSocket, fetch: this._fetch, ...options })
  }

  /** `watchOrders` with this client's token. @param {string | null | undefined} customer @param {(e: any) => void} cb */
  watchOrders (customer, cb, options = {}) {
    return watchOrders(customer, cb, { url: this._urls.http, token: this.token, WebSocket: this._WebSocket, fetch: this._fetch, ...options })
  }
}

function queryString (query) {
  const params = Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')
  return params.length ? '?' + new URLSearchParams(params.map(([k, v]) => [k, String(v)])).toString() : ''
}
