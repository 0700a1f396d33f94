/**
 * Typed errors for everything the livecart server can say no with: websocket close codes
 * (DESIGN.md "WebSocket close codes") and HTTP error bodies (`{"error": {"code", "message"}}`).
 * One class per meaning, used for both transports, so `err instanceof ForbiddenError` holds
 * whether a socket was closed with 4403 or a request answered 403.
 * @module livecart/errors
 */

/** Close codes of the public contract. */
export const CloseCode = Object.freeze({
  REJECTED: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  MERGED: 4409,
  TOO_LARGE: 4413,
  TOO_FAST: 4429,
  SERVER_ERROR: 1011,
  TRY_AGAIN: 1013
})

/**
 * The base class of every livecart error.
 * - `code`: a short machine code (`rejected`, `unauthorized`, … or the server's HTTP error code)
 * - `closeCode`: the websocket close code, when a socket was closed
 * - `status`: the HTTP status, when a request failed
 * - `reason`: the server's own words (close reason or error message)
 * - `retryable`: whether trying again later can succeed without changing anything
 */
export class LivecartError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string, closeCode?: number, status?: number, reason?: string, retryable?: boolean, cause?: unknown}} [details]
   */
  constructor (message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = new.target.name
    this.code = details.code ?? 'error'
    this.closeCode = details.closeCode
    this.status = details.status
    this.reason = details.reason ?? message
    this.retryable = details.retryable ?? false
  }
}

/**
 * 4400 / HTTP 400: the server refused an edit (the reason names the rule). On a cart socket
 * the library has already started over from the server's state; `discarded` says which local
 * changes did not survive (lines added, quantities, removals, note, discount codes).
 */
export class RejectedError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'rejected', ...details })
    /** @type {import('./index.js').Discarded | null} */
    this.discarded = details.discarded ?? null
  }
}

/** 4413 / HTTP 413: a message or document over the server's size limit (also a rejection). */
export class TooLargeError extends RejectedError {
  constructor (message, details = {}) {
    super(message, { code: 'too_large', ...details })
  }
}

/** 4401 / HTTP 401: no token, a bad one, or an expired one: sign in again. */
export class UnauthorizedError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'unauthorized', ...details })
  }
}

/** 4403 / HTTP 403: the token is fine but may not do this (or its access was revoked). */
export class ForbiddenError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'forbidden', ...details })
  }
}

/** 4404 / HTTP 404: no such cart (or order, customer, invite…). */
export class NotFoundError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'not_found', ...details })
  }
}

/**
 * 4409: the cart was merged into another one (`into` names it) or closed (`into` is null).
 * A cart opened with `followMerges` (the default) moves to `into` by itself.
 */
export class MergedError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: details.into ? 'merged' : 'closed', ...details })
    /** @type {string | null} */
    this.into = details.into ?? null
  }
}

/** HTTP 409: the request conflicts with the current state (e.g. stock below what carts hold). */
export class ConflictError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'conflict', ...details })
  }
}

/** 4429 / HTTP 429: too many messages or requests; slow down (retryable). */
export class RateLimitedError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'too_fast', retryable: true, ...details })
  }
}

/**
 * The connection dropped or the server failed (1006, 1011, 1013, HTTP 5xx, network error).
 * Retryable: a cart reconnects by itself with back-off.
 */
export class DisconnectedError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'disconnected', retryable: true, ...details })
  }
}

/**
 * The server does not offer this feature (its route answers 404 `not_found`): an older
 * server, or one without that part enabled. Not retryable.
 */
export class NotAvailableError extends LivecartError {
  constructor (message, details = {}) {
    super(message, { code: 'not_available', ...details })
  }
}

/**
 * The typed error for a websocket close.
 * @param {number} code
 * @param {string} [reason]
 * @returns {LivecartError}
 */
export function errorFromClose (code, reason = '') {
  reason = String(reason ?? '')
  const d = { closeCode: code, reason }
  switch (code) {
    case CloseCode.REJECTED: return new RejectedError(`edit rejected: ${reason || 'no reason given'}`, d)
    case CloseCode.UNAUTHORIZED: return new UnauthorizedError(`not signed in: ${reason || 'invalid token'}`, d)
    case CloseCode.FORBIDDEN: return new ForbiddenError(`not allowed: ${reason || 'this token may not open the cart'}`, d)
    case CloseCode.NOT_FOUND: return new NotFoundError(`no such cart${reason ? `: ${reason}` : ''}`, d)
    case CloseCode.MERGED: {
      const into = mergeTarget(reason)
      return new MergedError(into ? `cart merged into ${into}` : `cart closed${reason ? `: ${reason}` : ''}`, { ...d, into })
    }
    case CloseCode.TOO_LARGE: return new TooLargeError(`too large: ${reason || 'over the server limit'}`, d)
    case CloseCode.TOO_FAST: return new RateLimitedError(`too fast: ${reason || 'slow down'}`, d)
    default: return new DisconnectedError(`connection closed (${code}${reason ? `: ${reason}` : ''})`, d)
  }
}

/**
 * The cart id a 4409 close reason names, if any (`c-…` ids, or "into X" / "mergedInto=X").
 * @param {string} reason
 * @returns {string | null}
 */
export function mergeTarget (reason) {
  const text = String(reason ?? '')
  const id = /\bc-[A-Za-z0-9_-]{4,}/.exec(text)
  if (id) return id[0]
  const named = /(?:merged\s*into|mergedInto|into)\s*[:=]?\s*["']?([A-Za-z0-9][A-Za-z0-9_-]{2,})/i.exec(text)
  return named ? named[1] : null
}

/**
 * The typed error for a failed HTTP response.
 * @param {number} status
 * @param {{error?: {code?: string, message?: string}} | null} body
 * @param {string} [what] what was asked, for the message (e.g. "POST /api/carts")
 * @returns {LivecartError}
 */
export function errorFromResponse (status, body, what = 'request') {
  const code = body?.error?.code
  const message = body?.error?.message || `HTTP ${status}`
  const d = { status, reason: message, ...(code ? { code } : {}) }
  const text = `${what}: ${message}`
  if ((status === 404 && (code === 'not_found' || !code)) || status === 405 || status === 501) {
    return new NotAvailableError(`${what}: not available on this server`, { ...d, code: 'not_available' })
  }
  if (status === 400 || status === 422) return new RejectedError(text, d)
  if (status === 401) return new UnauthorizedError(text, d)
  if (status === 403) return new ForbiddenError(text, d)
  if (status === 404) return new NotFoundError(text, d)
  if (status === 409) return code === 'merged' ? new MergedError(text, d) : new ConflictError(text, d)
  if (status === 413) return new TooLargeError(text, d)
  if (status === 429) return new RateLimitedError(text, d)
  if (status >= 500) return new DisconnectedError(text, d)
  return new LivecartError(text, d)
}
