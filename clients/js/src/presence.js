/**
 * Presence: who else has a cart open, on which channel and in which role, whether their
 * tab is focused (Page Visibility API) and which personalisation field they are typing in.
 * Carried in y-protocols awareness, so every stock y-websocket client sees it too.
 *
 * The awareness state this library publishes (the server's admin feed reads it):
 * `{user: {id, name, role, channel, color}, focus: boolean, editing: {lineId, field} | null}`
 * @module livecart/presence
 */
import { Emitter, colorFor } from './util.js'

/**
 * One person in a cart, as `presence.others` lists them.
 * @typedef {object} Peer
 * @property {number} clientId the Yjs client id of their connection (one per tab)
 * @property {string} id
 * @property {string} name
 * @property {string} role
 * @property {string} channel
 * @property {string} color
 * @property {boolean} focus
 * @property {{lineId: string, field: string} | null} editing
 */

/**
 * Presence of one open cart. Survives restarts and merges: the local state moves to the new
 * connection. Events: `change` (others or self changed).
 */
export class Presence extends Emitter {
  /**
   * @param {{id: string, name: string, role: string, channel: string, color?: string}} user
   * @param {{focus?: boolean | 'auto'}} [options]
   */
  constructor (user, { focus = 'auto' } = {}) {
    super()
    /** @type {any} */
    this._state = {
      user: { id: user.id, name: user.name, role: user.role, channel: user.channel, color: user.color || colorFor(user.id) },
      focus: focus === 'auto' ? pageVisible() : Boolean(focus),
      editing: null
    }
    /** @type {Peer[]} */
    this.others = []
    /** @type {any} */
    this._awareness = null
    this._onChange = () => this._refresh()
    this._cleanup = []
    if (focus === 'auto' && typeof document !== 'undefined' && typeof document.addEventListener === 'function') {
      const onVisibility = () => this.set({ focus: pageVisible() })
      const onHide = () => { this._awareness?.setLocalState(null) }
      const onShow = () => { if (this._awareness && !this._awareness.getLocalState()) this._awareness.setLocalState(this._state) }
      document.addEventListener('visibilitychange', onVisibility)
      globalThis.addEventListener?.('pagehide', onHide)
      globalThis.addEventListener?.('pageshow', onShow)
      this._cleanup.push(() => {
        document.removeEventListener('visibilitychange', onVisibility)
        globalThis.removeEventListener?.('pagehide', onHide)
        globalThis.removeEventListener?.('pageshow', onShow)
      })
    }
  }

  /** This tab's own presence as others see it. @returns {Peer} */
  get self () {
    const aw = this._awareness
    return toPeer(aw ? aw.clientID : 0, this._state)
  }

  /** Everyone in the cart, this tab first. @returns {Peer[]} */
  get all () {
    return [this.self, ...this.others]
  }

  /**
   * Changes this tab's presence, e.g. `set({editing: {lineId, field}})` or `set({focus: false})`.
   * @param {{focus?: boolean, editing?: {lineId: string, field: string} | null, name?: string, typing?: boolean}} patch
   */
  set (patch) {
    const next = { ...this._state }
    if ('focus' in patch) next.focus = Boolean(patch.focus)
    if ('editing' in patch) next.editing = patch.editing ?? null
    if ('typing' in patch) next.typing = Boolean(patch.typing)
    if ('name' in patch && patch.name) next.user = { ...next.user, name: String(patch.name) }
    this._state = next
    this._awareness?.setLocalState(next)
    this.emit('change', this)
  }

  /** @internal Moves presence onto a new connection's awareness. */
  _attach (awareness) {
    this._detach()
    this._awareness = awareness
    awareness.setLocalState(this._state)
    awareness.on('change', this._onChange)
    this._refresh()
  }

  /** @internal */
  _detach () {
    if (this._awareness) {
      this._awareness.off('change', this._onChange)
      this._awareness = null
    }
    if (this.others.length) {
      this.others = []
      this.emit('change', this)
    }
  }

  /** @internal */
  _destroy () {
    this._detach()
    for (const fn of this._cleanup.splice(0)) fn()
    this.removeAllListeners()
  }

  _refresh () {
    const aw = this._awareness
    if (!aw) return
    const others = []
    for (const [clientId, state] of aw.getStates()) {
      if (clientId === aw.clientID || !state || !state.user) continue
      others.push(toPeer(clientId, state))
    }
    others.sort((a, b) => a.clientId - b.clientId)
    const changed = JSON.stringify(others) !== JSON.stringify(this.others)
    this.others = others
    if (changed) this.emit('change', this)
  }
}

/** @returns {Peer} */
function toPeer (clientId, state) {
  const user = state.user || {}
  const id = String(user.id ?? user.name ?? clientId)
  return {
    clientId,
    id,
    name: String(user.name || id),
    role: String(user.role || 'customer'),
    channel: String(user.channel || 'web'),
    color: String(user.color || colorFor(id)),
    focus: state.focus !== false,
    editing: state.editing && typeof state.editing === 'object'
      ? { lineId: String(state.editing.lineId), field: String(state.editing.field) }
      : null,
    typing: state.typing === true
  }
}

function pageVisible () {
  return typeof document === 'undefined' || document.visibilityState !== 'hidden'
}
