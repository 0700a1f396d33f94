/**
 * Live JSON feeds over websocket, with reconnect and back-off: stock (`/ws/stock`), the admin
 * board (`/ws/admin`) and a customer's own events (`/ws/me`).
 * @module livecart/feeds
 */
import {
  ForbiddenError, NotAvailableError, UnauthorizedError, errorFromClose, errorFromResponse
} from './errors.js'
import { Emitter, defaults, resolveToken, serverUrls } from './util.js'

const MIN_BACKOFF_MS = 250

/**
 * One JSON feed socket that reconnects by itself. Events: `message` (object), `status`
 * (`connecting` | `open` | `reconnecting` | `closed` | `unavailable`), `error` (LivecartError).
 */
export class Feed extends Emitter {
  /**
   * @param {string} path e.g. `/ws/stock`
   * @param {import('./index.js').FeedOptions & {params?: Record<string, string>}} [options]
   */
  constructor (path, options = {}) {
    super()
    this.path = path
    this._urls = serverUrls(options.url)
    this._params = { ...(options.params || {}) }
    this._token = options.token
    this._WebSocket = options.WebSocket || defaults.WebSocket
    this._fetch = options.fetch || defaults.fetch
    if (!this._WebSocket) throw new TypeError(`${path}: no WebSocket here; pass {WebSocket} or call configure()`)
    this._maxBackoff = options.maxBackoff ?? 10_000
    this._attempts = 0
    this._timer = null
    this._ws = null
    this._closed = false
    /** `connecting`, `open`, `reconnecting`, `closed` (stopped) or `unavailable` (no such feed on this server). */
    this.status = 'connecting'
    /** The error that stopped the feed, if any. @type {import('./errors.js').LivecartError | null} */
    this.error = null
    queueMicrotask(() => this._connect())
  }

  /**
   * Changes the query parameters (e.g. the SKUs) and reconnects.
   * @param {Record<string, string>} params
   */
  setParams (params) {
    this._params = { ...params }
    if (this._closed) return
    this._drop()
    this._attempts = 0
    this._connect()
  }

  /**
   * Sends a JSON message on the open socket; false when it is not open (say it again on `open`).
   * @param {object} message
   */
  send (message) {
    const ws = this._ws
    if (!ws || ws.readyState !== 1) return false
    ws.send(JSON.stringify(message))
    return true
  }

  /** Stops the feed for good. */
  close () {
    if (this._closed) return
    this._closed = true
    clearTimeout(this._timer)
    this._drop()
    this._setStatus('closed')
  }

  async _connect () {
    if (this._closed || this._ws) return
    this._setStatus(this._attempts ? 'reconnecting' : 'connecting')
    let token
    try {
      token = await resolveToken(this._token)
    } catch (cause) {
      return this._stop(new UnauthorizedError(`${this.path}: could not get a token: ${cause?.message || cause}`, { cause }))
    }
    if (this._closed || this._ws) return
    const params = { ...this._params, ...(token ? { token } : {}) }
    const query = new URLSearchParams(params).toString()
    const ws = new this._WebSocket(this._urls.ws + this.path + (query ? `?${query}` : ''))
    this._ws = ws
    let opened = false
    ws.onopen = () => {
      if (ws !== this._ws) return
      opened = true
      this._openedAt = Date.now()
      this._setStatus('open')
    }
    ws.onmessage = (event) => {
      if (ws !== this._ws) return
      const data = typeof event.data === 'string' ? event.data : new TextDecoder().decode(event.data)
      let message
      try {
        message = JSON.parse(data)
      } catch {
        return
      }
      this._attempts = 0
      this.emit('message', message)
    }
    ws.onerror = () => {}
    ws.onclose = (event) => {
      if (ws !== this._ws) return
      this._ws = null
      const code = event?.code ?? 1006
      if (code >= 4400 && code < 4500 && code !== 4429) {
        return this._stop(errorFromClose(code, String(event.reason ?? '')))
      }
      if (opened && Date.now() - this._openedAt > 5_000) this._attempts = 0
      if (!opened) this._probe()
      else this._retry()
    }
  }

  /** The socket never opened: ask over HTTP why (a missing route is "not available", not "retry"). */
  async _probe () {
    if (!this._fetch) return this._retry()
    try {
      const res = await this._fetch(this._urls.http + this.path + '?' + new URLSearchParams(this._params).toString())
      const body = await res.json().catch(() => null)
      if (this._closed) return
      if (res.status === 404 && (!body?.error?.code || body.error.code === 'not_found')) {
        return this._stop(new NotAvailableError(`${this.path} is not available on this server yet`, { status: 404 }), 'unavailable')
      }
      if (res.status === 401 || res.status === 403) {
        const err = errorFromResponse(res.status, body, this.path)
        if (err instanceof UnauthorizedError || err instanceof ForbiddenError) return this._stop(err)
      }
    } catch { /* the server is away: retry */ }
    this._retry()
  }

  _retry () {
    if (this._closed) return
    this._attempts++
    const delay = Math.min(this._maxBackoff, MIN_BACKOFF_MS * 2 ** (this._attempts - 1))
    const jittered = delay / 2 + Math.random() * delay / 2
    this._setStatus('reconnecting')
    clearTimeout(this._timer)
    this._timer = setTimeout(() => this._connect(), jittered)
  }

  _stop (error, status = 'closed') {
    this._closed = true
    clearTimeout(this._timer)
    this._drop()
    this.error = error
    this._setStatus(status)
    this.emit('error', error)
  }

  _drop () {
    const ws = this._ws
    this._ws = null
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null
      ws.onerror = () => {}
      try { ws.close() } catch { /* already closing */ }
    }
  }

  _setStatus (status) {
    if (this.status === status) return
    this.status = status
    this.emit('status', status)
  }
}

/**
 * Watches live availability of some SKUs over `/ws/stock`; reconnects with back-off and gets
 * the current levels again on every reconnect. `cb` gets each message:
 * `{sku, available, at}` on every change, `{sku, viewers}` as people come and go.
 * The returned watcher also keeps the latest `levels` and `viewers` per SKU.
 *
 * @example
 *   const stock = watchStock(['MUG-LAST'], (m) => { if (m.available === 0) showSold(m.sku) }, { url })
 *
 * @param {string[]} skus
 * @param {(message: import('./index.js').StockMessage) => void} cb
 * @param {import('./index.js').FeedOptions} [options]
 * @returns {StockWatcher}
 */
export function watchStock (skus, cb, options = {}) {
  return new StockWatcher(skus, cb, options)
}

/** A live stock subscription (see `watchStock`). */
export class StockWatcher extends Feed {
  constructor (skus, cb, options = {}) {
    const list = normaliseSkus(skus)
    super('/ws/stock', { ...options, params: { skus: list.join(',') } })
    /** Latest availability per SKU. @type {Map<string, number>} */
    this.levels = new Map()
    /** Latest number of viewers per SKU (this watcher included). @type {Map<string, number>} */
    this.viewers = new Map()
    /** @type {string[]} */
    this.skus = list
    /** What this shopper views (browsing presence), said again after every reconnect. */
    this.viewing = null
    this.visible = true
    this.on('status', (status) => {
      if (status !== 'open') return
      if (this.viewing) this.send({ type: 'view', sku: this.viewing })
      if (!this.visible) this.send({ type: 'visibility', state: 'hidden' })
    })
    this.on('message', (m) => {
      if (!m || typeof m.sku !== 'string') return
      if (typeof m.available === 'number') this.levels.set(m.sku, m.available)
      if (typeof m.viewers === 'number') this.viewers.set(m.sku, m.viewers)
      if (cb) cb(m)
    })
  }

  /**
   * Says which product this shopper is looking at (null: none); the shop floor sees it and
   * `{sku, viewers}` counts it. An unknown SKU is answered with `{type: 'error', code: 'unknown_sku'}`.
   * @param {string | null} sku
   */
  view (sku) {
    if (sku === this.viewing) return
    this.viewing = sku || null
    this.send({ type: 'view', sku: this.viewing })
  }

  /**
   * Says whether this tab is visible (the Page Visibility API's `document.visibilityState`).
   * @param {'visible' | 'hidden'} state
   */
  visibility (state) {
    const visible = state !== 'hidden'
    if (visible === this.visible) return
    this.visible = visible
    this.send({ type: 'visibility', state: visible ? 'visible' : 'hidden' })
  }

  /**
   * Watches another set of SKUs (reconnects).
   * @param {string[]} skus
   */
  setSkus (skus) {
    this.skus = normaliseSkus(skus)
    this.setParams({ skus: this.skus.join(',') })
  }
}

/**
 * The admin live feed (`/ws/admin`): `cart.created`, `cart.line_added`, `cart.line_removed`,
 * `cart.presence`, `checkout.step`, `order.created`, `order.status`. Needs an admin token.
 * Status `unavailable` (and a NotAvailableError) when the server has no such feed yet.
 * @param {(event: any) => void} cb
 * @param {import('./index.js').FeedOptions} options
 * @returns {Feed}
 */
export function watchAdmin (cb, options = {}) {
  const feed = new Feed('/ws/admin', options)
  if (cb) feed.on('message', cb)
  return feed
}

/**
 * The customer's own live feed (`/ws/me`): order status changes and discounts offered.
 * @param {(event: any) => void} cb
 * @param {import('./index.js').FeedOptions} options
 * @returns {Feed}
 */
export function watchMe (cb, options = {}) {
  const feed = new Feed('/ws/me', options)
  if (cb) feed.on('message', cb)
  return feed
}

/**
 * One customer's orders, live (`/ws/orders?customer=`): `order.created` and `order.status` of that
 * customer's orders only. For whoever may list them (`GET /api/orders?customer=`): the customer, an
 * admin, an operator after a lookup, an assistant serving them, a kiosk they signed in at. Without a
 * customer (null): an admin's token follows every order; a customer's, its own; others are refused.
 * The feed stops with a ForbiddenError (4403) when the reader may no longer list those orders
 * (the kiosk's customer signed out, the operator's lookup ran out).
 * @param {string | null | undefined} customer
 * @param {(event: any) => void} cb
 * @param {import('./index.js').FeedOptions} options
 * @returns {Feed}
 */
export function watchOrders (customer, cb, options = {}) {
  const params = customer === null || customer === undefined || customer === '' ? {} : { customer: String(customer) }
  const feed = new Feed('/ws/orders', { ...options, params })
  if (cb) feed.on('message', cb)
  return feed
}

function normaliseSkus (skus) {
  const list = [...new Set((Array.isArray(skus) ? skus : [skus]).map(String).filter(Boolean))]
  if (!list.length) throw new TypeError('watchStock: give at least one SKU')
  return list
}
