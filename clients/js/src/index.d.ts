// Type declarations for the livecart client (src/index.js). Hand-written; keep in step with the JSDoc.
import * as Y from 'yjs'
import type { WebsocketProvider } from 'y-websocket'

export { Y }

// -- data --------------------------------------------------------------------------------

/** Server-side cart status. */
export type CartStatus = 'open' | 'checking_out' | 'ordered' | 'merged' | 'closed'

/** A cart line as a plain snapshot. */
export interface Line {
  id: string
  sku: string
  /** Requested quantity (what is actually held is in `holds[id].qty`). */
  qty: number
  addedBy: string | null
  channel: string | null
  /** ms since the epoch */
  addedAt: number
  /** field → text, or list of entries; null when the line has none */
  personalisation: Record<string, string | string[]> | null
}

/** What stock holds for a line (`server.holds[lineId]`). */
export interface Hold {
  status: 'held' | 'partial' | 'unavailable' | 'expired' | 'released' | 'sold'
  qty: number
  /** ms since the epoch; null when nothing is held */
  expiresAt: number | null
}

export interface PricedLine {
  sku: string
  unitPrice: number
  qty: number
  total: number
  error?: string
}

/** `server.pricing`, in minor units. */
export interface Pricing {
  currency: string
  lines: Record<string, PricedLine>
  subtotal: number
  discounts: Array<{ code?: string, amount?: number, percentOff?: number, amountOff?: number, [k: string]: unknown }>
  total: number
}

export interface Meta {
  note: string
  discountCodes: string[]
}

export interface Checkout {
  state: string
  step: string | null
  orderId: string | null
}

/** The cart as `GET /api/carts/{id}` returns it. */
export interface CartJson {
  id: string
  owner: string
  channel: string
  createdAt: number
  lines: Record<string, Omit<Line, 'id'>>
  meta: Meta
  holds: Record<string, Hold>
  pricing: Pricing | null
  checkout: Checkout | null
  status: CartStatus
  mergedInto: string | null
  conflicts: Conflict[]
}

/** Lines that may not be checked out together (`server.conflicts`). */
export interface Conflict {
  lineIds: string[]
  groups: string[]
  message: string
}

export interface PersonalisationField {
  kind: 'text' | 'list'
  maxLength: number
  maxItems: number
  required: boolean
}

/** A catalog product (`GET /api/catalog`). */
export interface Product {
  sku: string
  name: string
  price: number
  currency: string
  maxQty: number
  personalisation: Record<string, PersonalisationField>
  available: number
}

/** Local changes a rejected edit took with it (only things this tab touched). */
export interface Discarded {
  /** lines added here that the server does not have */
  added: Array<{ id: string, sku: string, qty: number }>
  /** lines removed here that the server still has */
  removed: Array<{ id: string, sku: string, qty: number }>
  /** quantities set here that the server does not have */
  changed: Array<{ id: string, sku: string, qty: number, serverQty: number }>
  /** personalisation fields whose local text did not survive */
  personalisation: Array<{ id: string, sku: string, field: string }>
  /** meta keys (`note`, `discountCodes`) whose local value did not survive */
  meta: string[]
}

/** A stock feed message. */
export type StockMessage =
  | { sku: string, available: number, at: number }
  | { sku: string, viewers: number }

// -- errors ------------------------------------------------------------------------------

export declare const CloseCode: Readonly<{
  REJECTED: 4400, UNAUTHORIZED: 4401, FORBIDDEN: 4403, NOT_FOUND: 4404, MERGED: 4409,
  TOO_LARGE: 4413, TOO_FAST: 4429, SERVER_ERROR: 1011, TRY_AGAIN: 1013
}>

export interface ErrorDetails {
  code?: string
  closeCode?: number
  status?: number
  reason?: string
  retryable?: boolean
  cause?: unknown
}

/** Base of every livecart error. */
export declare class LivecartError extends Error {
  constructor (message: string, details?: ErrorDetails)
  /** short machine code: `rejected`, `unauthorized`, … or the server's HTTP error code */
  code: string
  /** websocket close code, when a socket was closed */
  closeCode?: number
  /** HTTP status, when a request failed */
  status?: number
  /** the server's own words */
  reason: string
  /** whether trying again later can succeed unchanged */
  retryable: boolean
}
/** 4400 / HTTP 400: an edit was refused; on a cart the library restarted from the server's state. */
export declare class RejectedError extends LivecartError {
  constructor (message: string, details?: ErrorDetails & { discarded?: Discarded | null })
  /** what local changes did not survive (null if the server's state could not be read in time) */
  discarded: Discarded | null
}
/** 4413 / HTTP 413 */
export declare class TooLargeError extends RejectedError {}
/** 4401 / HTTP 401 */
export declare class UnauthorizedError extends LivecartError {}
/** 4403 / HTTP 403 */
export declare class ForbiddenError extends LivecartError {}
/** 4404 / HTTP 404 */
export declare class NotFoundError extends LivecartError {}
/** 4409: merged into `into`, or closed (`into` null) */
export declare class MergedError extends LivecartError {
  constructor (message: string, details?: ErrorDetails & { into?: string | null })
  into: string | null
}
/** HTTP 409 */
export declare class ConflictError extends LivecartError {}
/** 4429 / HTTP 429 (retryable) */
export declare class RateLimitedError extends LivecartError {}
/** Connection dropped, 1011/1013, HTTP 5xx, network error (retryable) */
export declare class DisconnectedError extends LivecartError {}
/** The server has no such route or feed (yet). */
export declare class NotAvailableError extends LivecartError {}

export declare function errorFromClose (code: number, reason?: string): LivecartError
export declare function errorFromResponse (status: number, body: { error?: { code?: string, message?: string } } | null, what?: string): LivecartError
/** The cart id a 4409 close reason names, or null. */
export declare function mergeTarget (reason: string): string | null

// -- events ------------------------------------------------------------------------------

export type Unsubscribe = () => void

declare class Emitter<Events extends Record<string, (...args: any[]) => void>> {
  on<E extends keyof Events & string> (event: E, fn: Events[E]): Unsubscribe
  once<E extends keyof Events & string> (event: E, fn: Events[E]): Unsubscribe
  off<E extends keyof Events & string> (event: E, fn: Events[E]): void
  emit<E extends keyof Events & string> (event: E, ...args: Parameters<Events[E]>): void
  removeAllListeners (): void
}

// -- settings ----------------------------------------------------------------------------

export type TokenOption = string | (() => string | Promise<string>)

/** Library-wide defaults, e.g. `configure({WebSocket: (await import('ws')).default})` in Node < 22. */
export declare function configure (options: { WebSocket?: any, fetch?: typeof fetch }): void
/** A JWT's claims, unverified (null if it is not one). */
export declare function tokenClaims (token: string | null | undefined): { sub?: string, role?: string, exp?: number, [k: string]: unknown } | null
/** A stable colour for a person id. */
export declare function colorFor (id: string): string

// -- presence ----------------------------------------------------------------------------

export interface Peer {
  /** Yjs client id of their connection (one per tab) */
  clientId: number
  id: string
  name: string
  role: string
  channel: string
  color: string
  /** their tab is visible (Page Visibility API) */
  focus: boolean
  /** the personalisation field they are typing in */
  editing: { lineId: string, field: string } | null
  /** they are typing a chat message */
  typing: boolean
}

/** One message of the cart's chat (append only; `from`/`role` are the sender's token). */
export interface ChatMessage {
  id: string
  from: string
  role: string
  text: string
  /** ms since the epoch, the sender's clock */
  at: number
}

/**
 * Presence in a cart (y-protocols awareness). Published state:
 * `{user: {id, name, role, channel, color}, focus: boolean, editing: {lineId, field} | null}`.
 */
export declare class Presence extends Emitter<{ change: (presence: Presence) => void }> {
  readonly self: Peer
  /** everyone else in the cart */
  others: Peer[]
  /** self first, then others */
  readonly all: Peer[]
  set (patch: { focus?: boolean, editing?: { lineId: string, field: string } | null, name?: string, typing?: boolean }): void
}

// -- carts -------------------------------------------------------------------------------

export interface OpenCartOptions {
  /** server base: `http://host:port`, `ws://host:port` or `ws://host:port/ws/carts`; default: the page's origin */
  url?: string
  cartId: string
  token?: TokenOption
  /** written into new lines and presence; default `web` */
  channel?: string
  /** who is editing (default id: the token's `sub`; role: the token's `role`) */
  user?: { id?: string, name?: string, role?: string, color?: string }
  /** a WebSocket class (Node < 22: the `ws` package) */
  WebSocket?: any
  fetch?: typeof fetch
  /** follow a 4409 merge to the new cart (default true) */
  followMerges?: boolean
  /** longest reconnect back-off in ms (default 5000) */
  maxBackoff?: number
  /** `auto` (default): Page Visibility API; or a fixed value */
  focus?: boolean | 'auto'
}

export type ConnectionStatus = 'connecting' | 'connected' | 'disconnected' | 'closed'

export interface CartEvents {
  [event: string]: (...args: any[]) => void
  change: (cart: Cart) => void
  lines: (lines: Line[]) => void
  holds: (holds: Record<string, Hold>) => void
  pricing: (pricing: Pricing | null) => void
  status: (status: CartStatus) => void
  meta: (meta: Meta) => void
  checkout: (checkout: Checkout | null) => void
  conflicts: (conflicts: Conflict[]) => void
  chat: (chat: ChatMessage[]) => void
  connection: (event: { status: ConnectionStatus, code?: number, reason?: string, error?: LivecartError }) => void
  synced: (cart: Cart) => void
  rejected: (error: RejectedError) => void
  merged: (event: { from: string, to: string, reason: string }) => void
  doc: (doc: Y.Doc) => void
  error: (error: LivecartError) => void
  closed: (error: LivecartError | null) => void
}

/** A live cart (see `openCart`). */
export declare class Cart extends Emitter<CartEvents> {
  constructor (options: OpenCartOptions)
  /** the cart shown now (changes when a merge is followed) */
  cartId: string
  channel: string
  user: { id: string, name: string, role: string, color?: string }
  presence: Presence
  connection: ConnectionStatus
  synced: boolean
  /** the fatal error that stopped the cart */
  error: LivecartError | null
  lines: Line[]
  holds: Record<string, Hold>
  pricing: Pricing | null
  status: CartStatus
  meta: Meta
  checkout: Checkout | null
  conflicts: Conflict[]
  /** the conversation, in document order */
  chat: ChatMessage[]
  mergedInto: string | null
  /** the current Y.Doc (replaced after a restart or merge: listen to `doc`) */
  readonly doc: Y.Doc
  readonly provider: WebsocketProvider | null
  readonly httpUrl: string
  readonly token: string | undefined

  /** Adds a line in one transaction; returns its id. */
  addLine (sku: string, qty?: number, options?: { personalisation?: Record<string, string | string[]>, addedBy?: string, channel?: string }): string
  setQty (lineId: string, qty: number): void
  removeLine (lineId: string): void
  /** The live Y.Text / Y.Array of a personalisation field (created if missing). */
  personalise (lineId: string, field: string, options?: { kind?: 'text' }): Y.Text
  personalise (lineId: string, field: string, options: { kind: 'list' }): Y.Array<string>
  personalise (lineId: string, field: string, options?: { kind?: 'text' | 'list' }): Y.Text | Y.Array<string>
  /** Binds an input/textarea to a text field for live co-typing; returns unbind. */
  bindText (lineId: string, field: string, element: HTMLInputElement | HTMLTextAreaElement): () => void
  setNote (note: string): void
  addDiscountCode (code: string): void
  removeDiscountCode (code: string): void
  /** Writes in the cart's chat in the token's name; returns the message id. */
  say (text: string): string
  /** Tells the others (and the shop floor) whether this tab is typing a message. */
  setTyping (typing: boolean): void
  line (lineId: string): Line | undefined
  /** resolves once synced; rejects with the typed error if the cart stops first */
  whenSynced (timeout?: number): Promise<Cart>
  /** connects again after a fatal stop, e.g. with a new token */
  reconnect (options?: { token?: TokenOption, cartId?: string }): void
  close (): void
}

/** Opens a live cart. */
export declare function openCart (options: OpenCartOptions): Cart

// -- feeds -------------------------------------------------------------------------------

export interface FeedOptions {
  url?: string
  token?: TokenOption
  WebSocket?: any
  fetch?: typeof fetch
  /** longest reconnect back-off in ms (default 10000) */
  maxBackoff?: number
}

export type FeedStatus = 'connecting' | 'open' | 'reconnecting' | 'closed' | 'unavailable'

/** A JSON feed socket that reconnects with back-off. */
export declare class Feed<M = any> extends Emitter<{
  message: (message: M) => void
  status: (status: FeedStatus) => void
  error: (error: LivecartError) => void
}> {
  constructor (path: string, options?: FeedOptions & { params?: Record<string, string> })
  path: string
  status: FeedStatus
  error: LivecartError | null
  setParams (params: Record<string, string>): void
  close (): void
}

export declare class StockWatcher extends Feed<StockMessage> {
  /** latest availability per SKU */
  levels: Map<string, number>
  /** latest viewers per SKU (this watcher included) */
  viewers: Map<string, number>
  skus: string[]
  setSkus (skus: string[]): void
  /** the product this shopper views (browsing presence) */
  viewing: string | null
  visible: boolean
  view (sku: string | null): void
  visibility (state: 'visible' | 'hidden'): void
}

/** Live availability of SKUs over `/ws/stock`, with reconnect. */
export declare function watchStock (skus: string[], cb: (message: StockMessage) => void, options?: FeedOptions): StockWatcher

export interface AdminEvent {
  type: 'cart.created' | 'cart.line_added' | 'cart.line_removed' | 'cart.presence' | 'checkout.step' | 'order.created' | 'order.status' | string
  [k: string]: unknown
}
/** The admin live feed `/ws/admin` (admin token). */
export declare function watchAdmin (cb: (event: AdminEvent) => void, options?: FeedOptions): Feed<AdminEvent>
/** The customer's own feed `/ws/me`. */
export declare function watchMe (cb: (event: any) => void, options?: FeedOptions): Feed<any>
/** One customer's orders, live: `/ws/orders?customer=` (`order.created`, `order.status`); without a
 * customer (null), every order's for an admin's token (a customer's own for a customer's). Stops with
 * a ForbiddenError (4403) once the reader may no longer list those orders. */
export declare function watchOrders (customer: string | null | undefined, cb: (event: AdminEvent) => void, options?: FeedOptions): Feed<AdminEvent>

// -- HTTP --------------------------------------------------------------------------------

export interface ClientOptions {
  url?: string
  token?: TokenOption
  WebSocket?: any
  fetch?: typeof fetch
  /** default channel for carts and lines (default `web`) */
  channel?: string
  user?: { id?: string, name?: string, role?: string, color?: string }
}

/** The HTTP API bound to a server and a token, plus carts and feeds. */
export declare class Client {
  constructor (options?: ClientOptions)
  token: TokenOption | undefined
  channel: string
  user?: { id?: string, name?: string, role?: string, color?: string }
  readonly url: string
  readonly identity: { sub?: string, role?: string, exp?: number, [k: string]: unknown } | null
  request<T = any> (method: string, path: string, options?: { body?: unknown, token?: string | null }): Promise<T>

  anonymousSession (): Promise<{ token: string, customerId: string }>
  claim (anonymousToken: string): Promise<{ cartId: string }>
  createCart (options?: { channel?: string, owner?: string }): Promise<{ cartId: string }>
  getCart (cartId: string): Promise<CartJson>
  listCarts (owner?: string): Promise<{ carts: Array<{ id: string, owner: string, channel: string, createdAt: number, [k: string]: unknown }> }>
  mergeCart (cartId: string, into: string): Promise<any>
  createInvite (cartId: string): Promise<{ code: string, expiresAt: number }>
  acceptInvite (code: string): Promise<{ cartId: string }>

  customer (customerId: string): Promise<any>
  setFavourite (customerId: string, sku: string, on?: boolean): Promise<any>
  customerOrders (customerId: string): Promise<any>
  createKioskCode (): Promise<{ code: string }>
  startKioskSession (kioskId: string, code: string): Promise<{ cartId: string, customerId: string, idleSeconds: number }>
  demoPeople (): Promise<{ people: Array<{ id: string, sub: string, role: string, name: string, about: string }> }>
  demoSession (person: string): Promise<{ token: string, person: string, sub: string, role: string }>
  kiosk (kioskId: string): Promise<{ kioskId: string, idleSeconds: number, session: { cartId: string, customerId: string, idleSecondsLeft: number } | null }>
  kioskSession (kioskId: string): Promise<{ cartId: string, customerId: string, idleSecondsLeft: number }>
  pingKiosk (kioskId: string): Promise<{ idleSeconds: number }>
  endKioskSession (kioskId: string): Promise<{ signedOut: boolean }>

  catalog (): Promise<{ products: Product[] }>
  putProduct (sku: string, product: Partial<Product>): Promise<Product>
  stock (skus: string[]): Promise<Record<string, { onHand: number, held: number, available: number }>>
  setStock (sku: string, onHand: number): Promise<{ onHand: number, held: number, available: number }>
  adjustStock (sku: string, delta: number, reason: string): Promise<{ onHand: number, held: number, available: number }>

  checkout (cartId: string): Promise<{ orderId: string, state: string, total: number }>
  splitCart (cartId: string, lineIds: string[]): Promise<{ cartId: string }>
  putCheckoutGroup (group: string, rule: { combinesWith?: string[], conflictsWith?: string[] }): Promise<any>
  checkoutStep (cartId: string, step: string): Promise<any>
  order (orderId: string): Promise<any>
  setPayment (orderId: string, status: 'paid' | 'failed', reference?: string): Promise<any>
  setOrderStatus (orderId: string, status: 'dispatched' | 'delivered' | 'cancelled', tracking?: { carrier: string, number: string, url: string }): Promise<any>
  orders (query?: { status?: string, customer?: string, since?: string | number, limit?: number, cursor?: string }): Promise<{ orders: any[], next: string | null }>
  openCarts (): Promise<{ carts: Array<{ id: string, owner: string, channel: string, createdAt: number, status: string, lines: number, items: number, total: number, step: string | null, name: string | null }> }>
  searchCustomers (query?: { q?: string, bought?: string | string[], category?: string, since?: string | number, limit?: number, cursor?: string }): Promise<{ customers: Array<{ id: string, name: string | null, email: string | null, phone: string | null, orders: number, spent: number, lastOrderAt: number | null }>, next: string | null }>
  updateCustomer (customerId: string, profile: { name?: string | null, email?: string | null, phone?: string | null, marketingConsent?: boolean }): Promise<any>
  addDiscount (cartId: string, discount: { code: string, percentOff?: number, amountOff?: number }): Promise<any>

  openCart (cartId: string, options?: Partial<OpenCartOptions>): Cart
  watchStock (skus: string[], cb: (message: StockMessage) => void, options?: FeedOptions): StockWatcher
  watchAdmin (cb: (event: AdminEvent) => void, options?: FeedOptions): Feed<AdminEvent>
  watchMe (cb: (event: any) => void, options?: FeedOptions): Feed<any>
  watchOrders (customer: string | null | undefined, cb: (event: AdminEvent) => void, options?: FeedOptions): Feed<AdminEvent>
}

export declare function createClient (options?: ClientOptions): Client
