/**
 * livecart client: live collaborative carts on yjs + the stock y-websocket provider.
 *
 * - `openCart()` — a live cart with plain snapshots, change events, presence and typed errors
 * - `createClient()` — the HTTP API bound to a server and a token, plus carts and feeds
 * - `watchStock()`, `watchAdmin()`, `watchMe()`, `watchOrders()` — live JSON feeds with reconnect
 * - error classes, one per close code / HTTP status
 *
 * Works in browsers and in Node (pass `{WebSocket}` from the `ws` package, or `configure()` once).
 * Types: `index.d.ts` beside this file.
 * @module livecart
 */
import * as Y from 'yjs'

export { openCart, Cart } from './cart.js'
export { createClient, Client } from './api.js'
export { watchStock, watchAdmin, watchMe, watchOrders, Feed, StockWatcher } from './feeds.js'
export { Presence } from './presence.js'
export {
  CloseCode, LivecartError, RejectedError, TooLargeError, UnauthorizedError, ForbiddenError,
  NotFoundError, MergedError, ConflictError, RateLimitedError, DisconnectedError, NotAvailableError,
  errorFromClose, errorFromResponse, mergeTarget
} from './errors.js'
export { configure, tokenClaims, colorFor } from './util.js'

/** The Yjs module the library uses (one copy: mixing two Yjs copies breaks `instanceof`). */
export { Y }
