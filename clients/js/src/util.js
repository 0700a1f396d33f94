/* global location */
/**
 * Small shared pieces: an event emitter, server URLs, ids, token claims, colours, settings.
 * @module livecart/util
 */

/** Library-wide defaults that `configure()` changes (e.g. a WebSocket class for Node). */
export const defaults = {
  /** @type {any} */
  WebSocket: typeof globalThis.WebSocket === 'function' ? globalThis.WebSocket : undefined,
  /** @type {typeof fetch | undefined} */
  fetch: typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : undefined
}

/**
 * Sets library-wide defaults: `configure({WebSocket: (await import('ws')).default})` in Node < 22.
 * @param {{WebSocket?: any, fetch?: typeof fetch}} options
 */
export function configure (options) {
  if (options.WebSocket) defaults.WebSocket = options.WebSocket
  if (options.fetch) defaults.fetch = options.fetch
}

/** A minimal event emitter: `on` returns an unsubscribe function; listener errors never break the emitter. */
export class Emitter {
  constructor () {
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map()
  }

  /**
   * @param {string} event
   * @param {Function} fn
   * @returns {() => void} unsubscribe
   */
  on (event, fn) {
    let set = this._listeners.get(event)
    if (!set) this._listeners.set(event, (set = new Set()))
    set.add(fn)
    return () => this.off(event, fn)
  }

  /**
   * @param {string} event
   * @param {Function} fn
   * @returns {() => void} unsubscribe
   */
  once (event, fn) {
    const off = this.on(event, (...args) => { off(); fn(...args) })
    return off
  }

  /**
   * @param {string} event
   * @param {Function} fn
   */
  off (event, fn) {
    this._listeners.get(event)?.delete(fn)
  }

  /**
   * @param {string} event
   * @param {...any} args
   */
  emit (event, ...args) {
    const set = this._listeners.get(event)
    if (!set) return
    for (const fn of [...set]) {
      try {
        fn(...args)
      } catch (err) {
        // A broken listener must not stop the others, nor the sync machinery that emits.
        setTimeout(() => { throw err }, 0)
      }
    }
  }

  /** Removes every listener. */
  removeAllListeners () {
    this._listeners.clear()
  }
}

/**
 * The server's http(s) and ws(s) bases from any of: `http://host:port`, `ws://host:port`,
 * `ws://host:port/ws/carts` (what a stock y-websocket provider is given), or nothing (the page's origin).
 * @param {string} [url]
 * @returns {{http: string, ws: string}}
 */
export function serverUrls (url) {
  let base = url
  if (!base) {
    if (typeof location === 'undefined') throw new TypeError('livecart: give the server url (e.g. http://127.0.0.1:8080)')
    base = location.origin
  }
  base = String(base).replace(/\/+$/, '').replace(/\/ws\/carts$/, '').replace(/\/+$/, '')
  const http = base.replace(/^ws(s?):/i, 'http$1:')
  const ws = base.replace(/^http(s?):/i, 'ws$1:')
  return { http, ws }
}

/**
 * A random id for a line (crypto.randomUUID where there is one; it is missing on plain-http pages).
 * @returns {string}
 */
export function randomId () {
  const c = globalThis.crypto
  if (c?.randomUUID) return c.randomUUID()
  const bytes = new Uint8Array(16)
  if (c?.getRandomValues) c.getRandomValues(bytes)
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256)
  bytes[6] = (bytes[6] & 0x0f) | 0x40
  bytes[8] = (bytes[8] & 0x3f) | 0x80
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * The claims of a JWT (not verified: only the server can do that). Null when it is not a JWT.
 * @param {string | null | undefined} token
 * @returns {{sub?: string, role?: string, exp?: number, [k: string]: unknown} | null}
 */
export function tokenClaims (token) {
  if (typeof token !== 'string') return null
  const part = token.split('.')[1]
  if (!part) return null
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=')
    const json = typeof atob === 'function'
      ? decodeURIComponent(Array.from(atob(b64), (ch) => '%' + ch.charCodeAt(0).toString(16).padStart(2, '0')).join(''))
      : Buffer.from(b64, 'base64').toString('utf8')
    const claims = JSON.parse(json)
    return claims && typeof claims === 'object' ? claims : null
  } catch {
    return null
  }
}

const PALETTE = ['#e4572e', '#2e86ab', '#8f5fbf', '#3f9f6b', '#d1495b', '#c98a0c', '#1f7a8c', '#b65f9a', '#4f6d7a', '#6a994e']

/**
 * A stable colour for a person (same id, same colour on every screen).
 * @param {string} id
 * @returns {string}
 */
export function colorFor (id) {
  let h = 2166136261
  for (const ch of String(id)) h = Math.imul(h ^ ch.codePointAt(0), 16777619)
  return PALETTE[(h >>> 0) % PALETTE.length]
}

/**
 * Resolves a token option: a string, or a (possibly async) function returning one.
 * @param {string | (() => string | Promise<string>) | undefined} token
 * @returns {Promise<string | undefined>}
 */
export async function resolveToken (token) {
  return typeof token === 'function' ? await token() : token
}
