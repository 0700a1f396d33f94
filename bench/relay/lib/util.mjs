// Small helpers shared by the coordinator and the client workers.
import crypto from 'node:crypto'
import net from 'node:net'

/** Monotonic milliseconds (CLOCK_MONOTONIC, the same clock in every process of this machine). */
export const monoMs = () => Number(process.hrtime.bigint()) / 1e6

/**
 * A wall-clock-like ms timestamp with sub-ms resolution that agrees across processes:
 * anchored once by the coordinator (wall, mono) and advanced with the shared monotonic clock,
 * so NTP slewing of the wall clock during a run cannot skew the latencies.
 */
export const makeClock = ({ wall, mono }) => () => wall + (monoMs() - mono)

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Value at quantile q (0..1) of an ascending sorted array (nearest rank). */
export const quantile = (sorted, q) => {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]
}

export const summarize = (values) => {
  const sorted = Float64Array.from(values).sort()
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : null,
    mean: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url')

/** An HS256 JWT with sub, role, iat, exp (what livecart's auth expects). */
export const mintJwt = (secret, sub, role, ttlSeconds = 3600) => {
  const now = Math.floor(Date.now() / 1000)
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = b64url(JSON.stringify({ sub, role, iat: now, exp: now + ttlSeconds }))
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export const freePort = () => new Promise((resolve, reject) => {
  const srv = net.createServer()
  srv.unref()
  srv.on('error', reject)
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address()
    srv.close(() => resolve(port))
  })
})

/** Runs `fn` over `items` with at most `limit` in flight; returns the results in order. */
export const pool = async (items, limit, fn) => {
  const out = new Array(items.length)
  let next = 0
  const lane = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
  return out
}

export const fmtInt = (n) => (n == null ? '—' : Math.round(n).toLocaleString('en-US'))
