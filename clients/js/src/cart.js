/**
 * `openCart()`: one live cart over the stock y-websocket provider, with plain snapshots,
 * change events, typed errors, a fresh-document restart after a rejected edit, and merge
 * following.
 * @module livecart/cart
 */
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { WebsocketProvider } from 'y-websocket'
import {
  CloseCode, DisconnectedError, LivecartError, MergedError, RejectedError, UnauthorizedError,
  errorFromClose, errorFromResponse
} from './errors.js'
import { Presence } from './presence.js'
import { Emitter, defaults, randomId, resolveToken, serverUrls, tokenClaims } from './util.js'

/** More restarts than this within RESTART_WINDOW_MS and the cart gives up (something is wrong). */
const MAX_RESTARTS = 5
const RESTART_WINDOW_MS = 10_000
/** How long a restart waits for the server's state before it reports what it knows. */
const RESYNC_REPORT_MS = 3_000
/**
 * Right after following a merge, access to the new cart may still be on its way (a server
 * grants it to staff who helped with the old cart as part of the merge): a 4403 within this
 * window is retried, not final.
 */
const FOLLOW_GRACE_MS = 3_000
const FOLLOW_RETRY_MS = 250

/**
 * Opens a live cart. Edits can be made at once; they reach the server as soon as it is connected.
 *
 * @example
 *   const cart = openCart({ url: 'http://127.0.0.1:8080', cartId, token, channel: 'web', user: { name: 'Ada' } })
 *   cart.on('change', () => render(cart.lines, cart.holds, cart.pricing))
 *   cart.on('error', (err) => toast(err.message))
 *   const lineId = cart.addLine('MUG-CLASSIC', 2)
 *
 * @param {import('./index.js').OpenCartOptions} options
 * @returns {Cart}
 */
export function openCart (options) {
  return new Cart(options)
}

/**
 * A live cart. Snapshots (`lines`, `holds`, `pricing`, `status`, `meta`, `checkout`) are plain,
 * frozen-by-convention objects replaced on every change, so comparing by reference works.
 *
 * Events (`cart.on(name, fn)` returns an unsubscribe function):
 * - `change` (cart): anything in the document changed
 * - `lines`, `holds`, `pricing`, `status`, `meta`, `checkout`, `chat` (value): that part changed
 * - `connection` ({status, code?, reason?, error?}): connecting / connected / disconnected / closed
 * - `synced` (cart): the document matches the server (after every (re)connection)
 * - `rejected` (RejectedError): an edit was refused; the cart restarted from the server's state
 *   and `err.discarded` lists the local changes that did not survive
 * - `merged` ({from, to, reason}): the cart was merged; this object now follows `to`
 * - `doc` (Y.Doc): the underlying document was replaced (restart or merge): re-bind Y types
 * - `error` (LivecartError): every error, recoverable or not, for the user to see
 * - `closed` (LivecartError | null): the cart stopped for good (fatal error or `close()`)
 */
export class Cart extends Emitter {
  /** @param {import('./index.js').OpenCartOptions} options */
  constructor (options) {
    super()
    const { url, cartId, token, channel = 'web', user = {}, WebSocket, fetch, followMerges = true, maxBackoff = 5000, focus = 'auto' } = options || {}
    if (!cartId) throw new TypeError('openCart: cartId is required')
    this._urls = serverUrls(url)
    this._tokenOption = token
    this._token = typeof token === 'string' ? token : undefined
    this._WebSocket = WebSocket || defaults.WebSocket
    this._fetch = fetch || defaults.fetch
    if (!this._WebSocket) throw new TypeError('openCart: no WebSocket here; pass {WebSocket} (e.g. the "ws" package) or call configure()')
    this._followMerges = followMerges
    this._maxBackoff = maxBackoff
    /** The cart this object shows now (changes when a merge is followed). */
    this.cartId = String(cartId)
    /** The channel written into new lines and presence. */
    this.channel = String(channel)
    const claims = tokenClaims(this._token)
    const id = String(user.id || claims?.sub || user.name || 'anonymous')
    /** Who is editing: written into `addedBy` and presence. */
    this.user = { id, name: String(user.name || id), role: String(user.role || claims?.role || 'customer'), color: user.color }
    /** Presence of everyone in the cart (awareness). */
    this.presence = new Presence({ ...this.user, channel: this.channel }, { focus })
    /** Connection state: `connecting`, `connected`, `disconnected` (retrying) or `closed` (stopped). */
    this.connection = 'connecting'
    /** Whether the document matches the server right now. */
    this.synced = false
    /** The fatal error that stopped the cart, if any. @type {LivecartError | null} */
    this.error = null
    /** @type {import('./index.js').Line[]} */
    this.lines = []
    /** @type {Record<string, import('./index.js').Hold>} */
    this.holds = {}
    /** @type {import('./index.js').Pricing | null} */
    this.pricing = null
    /** @type {import('./index.js').CartStatus} */
    this.status = 'open'
    /** @type {import('./index.js').Meta} */
    this.meta = { note: '', discountCodes: [] }
    /** @type {import('./index.js').Checkout | null} */
    this.checkout = null
    /** lines that may not be checked out together (`server.conflicts`): [{lineIds, groups, message}] */
    this.conflicts = []
    /** The conversation (root `chat`), in document order. @type {import('./index.js').ChatMessage[]} */
    this.chat = []
    /** @type {string | null} */
    this.mergedInto = null
    this._closed = false
    this._restarts = []
    /** @type {{error: RejectedError, before: any, touched: Set<string>, timer: any} | null} */
    this._pending = null
    this._parts = {}
    this._open()
  }

  /** The current Y.Doc (replaced after a restart or merge: listen to `doc`). @returns {Y.Doc} */
  get doc () {
    return this._doc
  }

  /** The current stock y-websocket provider (replaced like `doc`). */
  get provider () {
    return this._provider
  }

  /** The server's http(s) base URL. */
  get httpUrl () {
    return this._urls.http
  }

  /** The token in use now. */
  get token () {
    return this._token
  }

  // -- edits ------------------------------------------------------------------------

  /**
   * Adds a line in one transaction and returns its id. Personalisation fields are created
   * with the line (text → Y.Text, list → Y.Array of strings), so nobody races to create them.
   * @param {string} sku
   * @param {number} [qty]
   * @param {{personalisation?: Record<string, string | string[]>, addedBy?: string, channel?: string}} [options]
   * @returns {string} the new line's id
   */
  addLine (sku, qty = 1, { personalisation, addedBy, channel } = {}) {
    this._checkWritable()
    if (typeof sku !== 'string' || !sku) throw new TypeError('addLine: sku must be a non-empty string')
    checkQty(qty)
    const id = randomId()
    const fields = {
      sku, qty, addedBy: String(addedBy || this.user.id), channel: String(channel || this.channel), addedAt: Date.now()
    }
    if (personalisation && Object.keys(personalisation).length) {
      const p = new Y.Map()
      for (const [field, value] of Object.entries(personalisation)) {
        if (Array.isArray(value)) {
          const list = new Y.Array()
          list.push(value.map(String))
          p.set(field, list)
        } else {
          p.set(field, new Y.Text(String(value ?? '')))
        }
      }
      fields.personalisation = p
    }
    this._doc.transact(() => {
      this._doc.getMap('lines').set(id, new Y.Map(Object.entries(fields)))
    })
    return id
  }

  /**
   * Sets a line's quantity (last writer wins). Setting the same quantity again asks the
   * server to hold it again (e.g. after the hold expired).
   * @param {string} lineId
   * @param {number} qty
   */
  setQty (lineId, qty) {
    this._checkWritable()
    checkQty(qty)
    this._line(lineId).set('qty', qty)
  }

  /**
   * Removes a line (its hold goes back to stock at once).
   * @param {string} lineId
   */
  removeLine (lineId) {
    this._checkWritable()
    this._line(lineId)
    this._doc.getMap('lines').delete(lineId)
  }

  /**
   * The live Y.Text (text field) or Y.Array of strings (list field) of a line's
   * personalisation, created if missing. Bound to the current document: after a `doc` event
   * (restart or merge) call it again — or use `bindText()`, which does that for you.
   * @param {string} lineId
   * @param {string} field
   * @param {{kind?: 'text' | 'list'}} [options] the kind, used only when the field must be created
   * @returns {Y.Text | Y.Array<string>}
   */
  personalise (lineId, field, { kind = 'text' } = {}) {
    const line = this._line(lineId)
    let p = line.get('personalisation')
    if (p instanceof Y.Map && p.get(field) instanceof Y.AbstractType) return p.get(field)
    this._checkWritable()
    this._doc.transact(() => {
      if (!(p instanceof Y.Map)) {
        p = new Y.Map()
        line.set('personalisation', p)
      }
      p.set(field, kind === 'list' ? new Y.Array() : new Y.Text())
    })
    return p.get(field)
  }

  /**
   * Binds a `<textarea>` or `<input>` to a text personalisation field for live co-typing:
   * local typing becomes minimal Y.Text edits, remote edits update the element and keep the
   * caret in place, presence shows which field this tab is editing, and the binding survives
   * restarts and merges. Returns a function that unbinds.
   * @param {string} lineId
   * @param {string} field
   * @param {HTMLInputElement | HTMLTextAreaElement} element
   * @returns {() => void}
   */
  bindText (lineId, field, element) {
    let ytext = null
    let unobserve = () => {}
    const origin = { binding: field }
    const attach = () => {
      unobserve()
      ytext = null
      const line = this._doc.getMap('lines').get(lineId)
      const p = line instanceof Y.Map ? line.get('personalisation') : null
      const t = p instanceof Y.Map ? p.get(field) : null
      if (!(t instanceof Y.Text)) {
        unobserve = () => {}
        return
      }
      ytext = t
      if (element.value !== t.toString()) element.value = t.toString()
      const observer = (event, tr) => {
        if (tr.origin === origin) return
        const active = typeof document !== 'undefined' && document.activeElement === element
        let start = element.selectionStart ?? 0
        let end = element.selectionEnd ?? 0
        let index = 0
        for (const op of event.delta) {
          if (op.retain) index += op.retain
          else if (op.insert) {
            const n = op.insert.length
            if (index <= start) start += n
            if (index < end) end += n
            index += n
          } else if (op.delete) {
            const n = op.delete
            if (index < start) start -= Math.min(n, start - index)
            if (index < end) end -= Math.min(n, end - index)
          }
        }
        element.value = t.toString()
        if (active) element.setSelectionRange(start, end)
      }
      t.observe(observer)
      unobserve = () => t.unobserve(observer)
    }
    const onInput = () => {
      if (!ytext) attach()
      if (!ytext) return
      const before = ytext.toString()
      const after = element.value
      if (before === after) return
      let prefix = 0
      const max = Math.min(before.length, after.length)
      while (prefix < max && before.charCodeAt(prefix) === after.charCodeAt(prefix)) prefix++
      let suffix = 0
      while (suffix < max - prefix && before.charCodeAt(before.length - 1 - suffix) === after.charCodeAt(after.length - 1 - suffix)) suffix++
      try {
        this._checkWritable()
      } catch (err) {
        element.value = before
        this.emit('error', err)
        return
      }
      this._doc.transact(() => {
        const removed = before.length - prefix - suffix
        if (removed > 0) ytext.delete(prefix, removed)
        const inserted = after.slice(prefix, after.length - suffix)
        if (inserted) ytext.insert(prefix, inserted)
      }, origin)
    }
    const onFocus = () => this.presence.set({ editing: { lineId, field } })
    const onBlur = () => {
      const e = this.presence._state.editing
      if (e && e.lineId === lineId && e.field === field) this.presence.set({ editing: null })
    }
    element.addEventListener('input', onInput)
    element.addEventListener('focus', onFocus)
    element.addEventListener('blur', onBlur)
    const offDoc = this.on('doc', attach)
    const offSynced = this.on('synced', () => { if (!ytext) attach() })
    attach()
    return () => {
      unobserve()
      offDoc()
      offSynced()
      element.removeEventListener('input', onInput)
      element.removeEventListener('focus', onFocus)
      element.removeEventListener('blur', onBlur)
    }
  }

  /**
   * Writes in the cart's chat (append only). The message names this connection's token (its `sub`
   * and `role`): the server closes a socket that writes in anyone else's name.
   * @param {string} text 1..2000 characters
   * @returns {string} the message's id
   */
  say (text) {
    this._checkWritable()
    text = String(text ?? '')
    if (!text.trim() || text.length > 2000) throw new TypeError('say: a message is 1..2000 characters')
    const claims = tokenClaims(this._token)
    const id = randomId()
    const fields = { id, from: String(claims?.sub || this.user.id), role: String(claims?.role || this.user.role), text, at: Date.now() }
    this._doc.getArray('chat').push([new Y.Map(Object.entries(fields))])
    this.presence.set({ typing: false })
    return id
  }

  /**
   * Says whether this tab is typing a chat message (presence: others and the shop floor see it).
   * @param {boolean} typing
   */
  setTyping (typing) {
    if (Boolean(typing) !== Boolean(this.presence.self.typing)) this.presence.set({ typing: Boolean(typing) })
  }

  /**
   * Sets the cart note (`meta.note`, last writer wins).
   * @param {string} note
   */
  setNote (note) {
    this._checkWritable()
    this._doc.getMap('meta').set('note', String(note))
  }

  /**
   * Adds a discount code to `meta.discountCodes` (the server decides whether it changes the price).
   * @param {string} code
   */
  addDiscountCode (code) {
    this._checkWritable()
    code = String(code).trim()
    if (!code) throw new TypeError('addDiscountCode: empty code')
    const meta = this._doc.getMap('meta')
    this._doc.transact(() => {
      let codes = meta.get('discountCodes')
      if (!(codes instanceof Y.Array)) {
        codes = new Y.Array()
        meta.set('discountCodes', codes)
      }
      if (!codes.toArray().includes(code)) codes.push([code])
    })
  }

  /**
   * Removes a discount code from `meta.discountCodes`.
   * @param {string} code
   */
  removeDiscountCode (code) {
    this._checkWritable()
    const codes = this._doc.getMap('meta').get('discountCodes')
    if (!(codes instanceof Y.Array)) return
    const i = codes.toArray().indexOf(code)
    if (i >= 0) codes.delete(i, 1)
  }

  /**
   * A line's snapshot by id (or undefined).
   * @param {string} lineId
   * @returns {import('./index.js').Line | undefined}
   */
  line (lineId) {
    return this.lines.find((l) => l.id === lineId)
  }

  // -- lifecycle ------------------------------------------------------------------------

  /**
   * Resolves once the cart is synced with the server; rejects with the typed error if the
   * cart stops first (4401, 4403, 4404, …) or after `timeout` ms.
   * @param {number} [timeout]
   * @returns {Promise<Cart>}
   */
  whenSynced (timeout = 10_000) {
    if (this.synced) return Promise.resolve(this)
    if (this.error) return Promise.reject(this.error)
    return new Promise((resolve, reject) => {
      const offs = []
      const done = (fn, value) => { offs.forEach((off) => off()); clearTimeout(timer); fn(value) }
      const timer = setTimeout(() => done(reject, new DisconnectedError(`cart ${this.cartId} did not sync within ${timeout} ms`)), timeout)
      offs.push(this.on('synced', () => done(resolve, this)))
      offs.push(this.on('closed', (err) => done(reject, err || new LivecartError('cart closed'))))
    })
  }

  /**
   * Connects again after a fatal stop (e.g. with a new token after 4401), from a fresh document.
   * @param {{token?: string | (() => string | Promise<string>), cartId?: string}} [options]
   */
  reconnect ({ token, cartId } = {}) {
    if (this._destroyed) throw new LivecartError('this cart was closed with close(): open a new one', { code: 'closed' })
    if (token !== undefined) {
      this._tokenOption = token
      this._token = typeof token === 'string' ? token : undefined
    }
    if (cartId) this.cartId = String(cartId)
    this._teardown()
    this._closed = false
    this.error = null
    this._restarts = []
    this._holdSnapshot = true
    this._open()
  }

  /** Disconnects for good and frees timers; snapshots keep their last values. */
  close () {
    if (this._destroyed) return
    this._destroyed = true
    const wasOpen = !this._closed
    this._closed = true
    this._teardown()
    if (this._pending) clearTimeout(this._pending.timer)
    this._pending = null
    this.presence._destroy()
    if (wasOpen) {
      this._setConnection('closed')
      this.emit('closed', null)
    }
  }

  // -- internals --------------------------------------------------------------------------

  _open () {
    const doc = new Y.Doc()
    this._doc = doc
    this._touched = new Set()
    this._dirty = true
    this._observe(doc)
    this.synced = false
    this._setConnection('connecting')
    const generation = (this._generation = (this._generation || 0) + 1)
    const start = (token) => {
      if (generation !== this._generation || this._closed) return
      this._token = token
      const awareness = new Awareness(doc)
      const provider = new WebsocketProvider(this._urls.ws + '/ws/carts', this.cartId, doc, {
        params: token ? { token } : {},
        WebSocketPolyfill: this._WebSocket,
        disableBc: true, // tabs sync through the server only: a rejected state must never spread
        awareness,
        maxBackoffTime: this._maxBackoff,
        // 44xx are final, except 4429 (slow down): the provider backs off and tries again.
        shouldReconnect: (event) => event.code === CloseCode.TOO_FAST || !(event.code >= 4400 && event.code < 4500)
      })
      this._provider = provider
      this.presence._attach(awareness)
      provider.on('status', ({ status }) => { if (provider === this._provider) this._setConnection(status) })
      provider.on('sync', (synced) => { if (provider === this._provider) this._onSync(synced) })
      provider.on('connection-close', (event) => {
        if (provider !== this._provider || !event) return
        const code = event.code
        if (code >= 4400 && code < 4500 && code !== CloseCode.TOO_FAST) return // handled by 'closed'
        const error = errorFromClose(code, String(event.reason ?? ''))
        this._setConnection('disconnected', { code, reason: String(event.reason ?? ''), error })
        if (code === CloseCode.TOO_FAST || code === CloseCode.SERVER_ERROR || code === CloseCode.TRY_AGAIN) this.emit('error', error)
      })
      provider.on('closed', ({ code, reason }) => {
        if (provider === this._provider) this._onFinalClose(code, String(reason ?? ''))
      })
    }
    if (typeof this._tokenOption === 'function') {
      resolveToken(this._tokenOption).then(start, (cause) => {
        if (generation === this._generation) this._fail(new UnauthorizedError(`could not get a token: ${cause?.message || cause}`, { cause }))
      })
    } else {
      start(this._token)
    }
    this._refresh(true)
    this.emit('doc', doc)
  }

  _observe (doc) {
    const lines = doc.getMap('lines')
    const meta = doc.getMap('meta')
    const server = doc.getMap('server')
    lines.observeDeep((events, tr) => {
      this._dirty = true
      if (!tr.local) return
      for (const ev of events) {
        if (ev.path.length) this._touched.add('line:' + ev.path[0])
        else for (const key of ev.keysChanged) this._touched.add('line:' + key)
      }
    })
    meta.observeDeep((events, tr) => {
      this._dirty = true
      if (!tr.local) return
      for (const ev of events) {
        if (ev.path.length) this._touched.add('meta:' + ev.path[0])
        else for (const key of ev.keysChanged) this._touched.add('meta:' + key)
      }
    })
    server.observeDeep(() => { this._dirty = true })
    doc.getArray('chat').observeDeep(() => { this._dirty = true })
    doc.on('afterTransaction', () => {
      if (this._dirty && doc === this._doc) this._refresh()
    })
  }

  /** Rebuilds the snapshots from the document and emits what changed. */
  _refresh (quiet = false) {
    this._dirty = false
    // While a restart or merge waits for the server's state, the empty new document is not shown.
    if (this._holdSnapshot && !this.synced) return
    const doc = this._doc
    const server = doc.getMap('server')
    const raw = doc.getMap('lines').toJSON()
    const lines = Object.entries(raw).map(([id, l]) => ({
      id,
      sku: String(l?.sku ?? ''),
      qty: Number(l?.qty ?? 0),
      addedBy: l?.addedBy ?? null,
      channel: l?.channel ?? null,
      addedAt: Number(l?.addedAt ?? 0),
      personalisation: l?.personalisation && typeof l.personalisation === 'object' ? l.personalisation : null
    }))
    lines.sort((a, b) => (a.addedAt - b.addedAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const metaJson = doc.getMap('meta').toJSON()
    const parts = {
      lines,
      holds: plain(server.get('holds')) || {},
      pricing: plain(server.get('pricing')) || null,
      status: server.get('status') || 'open',
      meta: { note: typeof metaJson.note === 'string' ? metaJson.note : '', discountCodes: Array.isArray(metaJson.discountCodes) ? metaJson.discountCodes : [] },
      checkout: plain(server.get('checkout')) || null,
      conflicts: plain(server.get('conflicts')) || [],
      chat: doc.getArray('chat').toJSON().filter((m) => m && typeof m === 'object').map((m) => ({
        id: String(m.id ?? ''), from: String(m.from ?? ''), role: String(m.role ?? ''), text: String(m.text ?? ''), at: Number(m.at ?? 0)
      }))
    }
    this.mergedInto = server.get('mergedInto') || null
    const changed = []
    for (const [key, value] of Object.entries(parts)) {
      const json = JSON.stringify(value)
      if (this._parts[key] !== json) {
        this._parts[key] = json
        this[key] = value
        changed.push(key)
      }
    }
    if (quiet || !changed.length) return
    for (const key of changed) this.emit(key, this[key])
    this.emit('change', this)
  }

  _onSync (synced) {
    this.synced = synced
    if (!synced) return
    this._holdSnapshot = false
    this._followGrace = 0
    if (this._pending) {
      const pending = this._pending
      this._pending = null
      clearTimeout(pending.timer)
      this._refresh()
      this._reportRejection(pending, discardedBetween(pending.before, clientState(this._doc), pending.touched))
    } else {
      this._refresh()
    }
    this.emit('synced', this)
  }

  _onFinalClose (code, reason) {
    const error = errorFromClose(code, reason)
    if (code === CloseCode.REJECTED || code === CloseCode.TOO_LARGE) return this._restart(error)
    if (code === CloseCode.MERGED) return this._followMerge(error)
    if (code === CloseCode.FORBIDDEN && this._followGrace > Date.now()) {
      this._teardown()
      this._retryTimer = setTimeout(() => { if (!this._closed) this._open() }, FOLLOW_RETRY_MS)
      return
    }
    if (code === CloseCode.UNAUTHORIZED && typeof this._tokenOption === 'function' && !this._retriedToken) {
      // The token ran out: ask the app for a fresh one, once, before giving up.
      this._retriedToken = true
      this.once('synced', () => { this._retriedToken = false })
      this._teardown()
      this._open()
      return
    }
    this._fail(error)
  }

  /** After 4400/4413: a fresh document from the server's state; the rejected one is dropped. */
  _restart (error) {
    const now = Date.now()
    this._restarts = this._restarts.filter((t) => now - t < RESTART_WINDOW_MS)
    this._restarts.push(now)
    if (this._restarts.length > MAX_RESTARTS) {
      return this._fail(new RejectedError(`${error.message} (gave up after ${MAX_RESTARTS} rejections in ${RESTART_WINDOW_MS / 1000} s)`, { closeCode: error.closeCode, reason: error.reason }))
    }
    const before = clientState(this._doc)
    const touched = this._touched
    this._teardown()
    const ErrorClass = error.constructor
    const rejected = new ErrorClass(error.message, { closeCode: error.closeCode, reason: error.reason })
    this._pending = { error: rejected, before, touched, timer: null }
    this._holdSnapshot = true
    this._open()
    const pending = this._pending
    pending.timer = setTimeout(() => {
      if (this._pending !== pending) return
      // No server state in time: say what was rejected now; the cart keeps trying to sync.
      this._reportRejection(pending, null)
    }, RESYNC_REPORT_MS)
  }

  _reportRejection (pending, discarded) {
    if (pending.reported) return
    pending.reported = true
    pending.error.discarded = discarded
    this.emit('rejected', pending.error)
    this.emit('error', pending.error)
  }

  /** After 4409: open the cart this one was merged into (named by the doc, the reason, or the API). */
  async _followMerge (error) {
    const from = this.cartId
    let into = this.mergedInto || error.into
    this._teardown()
    if (!into && this._fetch) {
      try {
        const res = await this._fetch(`${this._urls.http}/api/carts/${encodeURIComponent(from)}`, {
          headers: this._token ? { authorization: `Bearer ${this._token}` } : {}
        })
        const body = await res.json().catch(() => null)
        if (res.ok) into = body?.mergedInto || null
        else if (res.status !== 404) this.emit('error', errorFromResponse(res.status, body, `GET /api/carts/${from}`))
      } catch { /* the reason is all we have */ }
    }
    if (this._closed) return
    const merged = new MergedError(into ? `cart ${from} was merged into ${into}` : `cart ${from} was closed${error.reason ? `: ${error.reason}` : ''}`,
      { closeCode: CloseCode.MERGED, reason: error.reason, into })
    if (!into || !this._followMerges) return this._fail(merged)
    this.cartId = into
    this._restarts = []
    this._holdSnapshot = true
    this._followGrace = Date.now() + FOLLOW_GRACE_MS
    this._open()
    this.emit('merged', { from, to: into, reason: error.reason })
    this.emit('error', merged)
  }

  _fail (error) {
    this._teardown()
    if (this._pending) clearTimeout(this._pending.timer)
    this._pending = null
    this._holdSnapshot = false
    this._closed = true
    this.error = error
    this._setConnection('closed', { code: error.closeCode, reason: error.reason, error })
    this.emit('error', error)
    this.emit('closed', error)
  }

  _teardown () {
    this._generation = (this._generation || 0) + 1
    clearTimeout(this._retryTimer)
    const provider = this._provider
    this._provider = null
    this.presence._detach()
    this.synced = false
    if (provider) {
      const awareness = provider.awareness
      provider.destroy()
      awareness.destroy()
    }
    // The old document is left to the garbage collector: bound Y types see no more updates.
  }

  _setConnection (status, details = {}) {
    if (this.connection === status && !details.code) return
    this.connection = status
    this.emit('connection', { status, ...details })
  }

  _checkWritable () {
    if (this.error) throw this.error
    if (this._closed) throw new LivecartError('cart is closed', { code: 'closed' })
    if (this.status && this.status !== 'open') {
      throw new RejectedError(`this cart is ${this.status.replace('_', ' ')}: it takes no edits`, { code: 'cart_not_open', reason: `cart ${this.status}` })
    }
  }

  /** @returns {Y.Map<any>} */
  _line (lineId) {
    const line = this._doc.getMap('lines').get(lineId)
    if (!(line instanceof Y.Map)) throw new RangeError(`no line ${lineId} in cart ${this.cartId}`)
    return line
  }
}

function checkQty (qty) {
  if (!Number.isInteger(qty) || qty < 1) throw new RangeError(`qty must be a positive integer, got ${qty}`)
}

function plain (value) {
  if (value instanceof Y.AbstractType) return value.toJSON()
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value))
}

/** What clients write (lines and meta), as plain data. */
function clientState (doc) {
  return { lines: doc.getMap('lines').toJSON(), meta: doc.getMap('meta').toJSON() }
}

/**
 * The local changes (to things this tab touched) that the server's state does not have.
 * @returns {import('./index.js').Discarded}
 */
function discardedBetween (before, after, touched) {
  const out = { added: [], removed: [], changed: [], personalisation: [], meta: [] }
  for (const key of touched) {
    const [kind, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)]
    if (kind === 'meta') {
      if (JSON.stringify(before.meta[id]) !== JSON.stringify(after.meta[id])) out.meta.push(id)
      continue
    }
    const mine = before.lines[id]
    const theirs = after.lines[id]
    if (mine && !theirs) out.added.push({ id, sku: mine.sku, qty: mine.qty })
    else if (!mine && theirs) out.removed.push({ id, sku: theirs.sku, qty: theirs.qty })
    else if (mine && theirs) {
      if (mine.qty !== theirs.qty) out.changed.push({ id, sku: mine.sku, qty: mine.qty, serverQty: theirs.qty })
      const a = mine.personalisation || {}
      const b = theirs.personalisation || {}
      for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (JSON.stringify(a[field]) !== JSON.stringify(b[field])) out.personalisation.push({ id, sku: mine.sku, field })
      }
    }
  }
  return out
}
