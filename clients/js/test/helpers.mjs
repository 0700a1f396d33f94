/**
 * Test helpers: a real `livecart serve` child process, tokens, the HTTP API, and stock
 * y-websocket providers with bounded waits.
 */
import { spawn } from 'node:child_process'
import { createHmac, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

/** The server binary: $LIVECART_BIN, else the repo's virtualenv (relative to clients/js). */
export const LIVECART_BIN = process.env.LIVECART_BIN ||
  fileURLToPath(new URL('../../../.venv/bin/livecart', import.meta.url))

const SECRET = 'livecart-js-test-secret-of-at-least-32-bytes'
const STARTUP_TIMEOUT_MS = 60_000 // a busy machine starts Python slowly; this only stops a hang
/**
 * How long any wait for a condition may take before it counts as a hang. The suite runs on a busy
 * 2-core machine beside pytest and Chromium: waits assert that something happens, never how fast
 * (latency is measured in bench/).
 */
export const WAIT_MS = 30_000
/** How long one describe() may run in all (servers started, every test in it): again only a hang stopper. */
export const SUITE_TIMEOUT_MS = 300_000
const LOG_TAIL_CHARS = 4_000

/** Server processes still running; killed when this process exits, however it exits. */
const running = new Set()
process.on('exit', () => { for (const child of running) child.kill('SIGKILL') })

/** Resolves once `predicate()` is truthy; rejects after `timeout` ms naming `what`. */
export async function waitFor (predicate, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await sleep(20)
  }
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A TCP port that was free a moment ago on 127.0.0.1. */
async function freePort () {
  const probe = createServer()
  await new Promise((resolve, reject) => probe.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = probe.address()
  await new Promise((resolve) => probe.close(resolve))
  return port
}

/** The environment without LIVECART_* variables, so only the flags we pass configure the server. */
function cleanEnv () {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIVECART_')))
}

/** An HS256 JWT with `sub`, `role` and `exp`, as the host platform (or `livecart token`) mints it. */
export function mintToken (sub, role, { secret = SECRET, ttlSeconds = 3600 } = {}) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, role, iat: now, exp: now + ttlSeconds })}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

/** A `livecart serve` child process on a free port with a fresh data dir; kill/restart keep both. */
export class LivecartServer {
  /**
   * Starts a server and waits until /healthz answers. `command: 'demo'` loads the demo catalog;
   * `args` are extra flags (e.g. `['--hold-ttl', '2']`).
   */
  static async start ({ command = 'serve', args = [] } = {}) {
    const server = new LivecartServer(await freePort(), await mkdtemp(join(tmpdir(), 'livecart-js-')))
    server.command = command
    server.extraArgs = args
    try {
      await server.#spawn()
    } catch (err) {
      await server.dispose()
      throw err
    }
    return server
  }

  constructor (port, dataDir) {
    this.port = port
    this.dataDir = dataDir
    this.secret = SECRET
    this.httpUrl = `http://127.0.0.1:${port}`
    this.wsUrl = `ws://127.0.0.1:${port}/ws/carts`
    this.command = 'serve'
    this.extraArgs = []
    this.child = null
    this.output = ''
    this.exited = null
  }

  /** Runs `livecart serve` (or `demo`) on this port and data dir; resolves once /healthz answers. */
  async #spawn () {
    const args = [this.command, '--host', '127.0.0.1', '--port', String(this.port),
      '--data-dir', this.dataDir, '--jwt-secret', this.secret, ...this.extraArgs]
    const child = spawn(LIVECART_BIN, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    running.add(child)
    const record = (chunk) => { this.output = (this.output + chunk).slice(-LOG_TAIL_CHARS) }
    child.stdout.on('data', record)
    child.stderr.on('data', record)
    child.once('error', (err) => record(`could not run ${LIVECART_BIN}: ${err.message}\n`))
    let gone = null
    this.exited = new Promise((resolve) => child.once('close', (code, signal) => {
      running.delete(child)
      gone = { code, signal }
      resolve(gone)
    }))
    try {
      await waitFor(() => {
        if (gone) throw new Error(`${LIVECART_BIN} ${this.command} exited during startup: ${JSON.stringify(gone)}`)
        return this.#healthy()
      }, `${this.httpUrl}/healthz`, STARTUP_TIMEOUT_MS)
    } catch (err) {
      await this.stop()
      throw new Error(`${err.message}\n--- server output ---\n${this.output}`)
    }
  }

  /** Whether GET /healthz answers 200 right now. */
  async #healthy () {
    try {
      return (await fetch(`${this.httpUrl}/healthz`)).ok
    } catch {
      return false
    }
  }

  /** Whether the current child process is still running. */
  #alive () {
    return running.has(this.child)
  }

  /** Kills the server at once with SIGKILL (no shutdown, no flush) and waits for it to be gone. */
  async kill () {
    if (!this.#alive()) return
    this.child.kill('SIGKILL')
    await this.exited
  }

  /** Starts the server again on the same port and data dir. */
  async restart () {
    await this.kill()
    await this.#spawn()
  }

  /** Stops the server (SIGTERM, SIGKILL after 5 s). */
  async stop () {
    if (!this.#alive()) return
    const child = this.child
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
    await this.exited
    clearTimeout(timer)
  }

  /** Stops the server and removes its data dir. */
  async dispose () {
    await this.stop()
    await rm(this.dataDir, { recursive: true, force: true })
  }

  /** Calls the HTTP API; returns `{status, body}` with the JSON body parsed. */
  async api (method, path, { token, body } = {}) {
    const headers = { 'content-type': 'application/json' }
    if (token) headers.authorization = `Bearer ${token}`
    const res = await fetch(this.httpUrl + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body)
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }

  /** Like api(), but throws unless the status is `expected`; returns the body. */
  async call (expected, method, path, options) {
    const { status, body } = await this.api(method, path, options)
    if (status !== expected) {
      throw new Error(`${method} ${path}: expected ${expected}, got ${status} ${JSON.stringify(body)}`)
    }
    return body
  }

  /** Creates or replaces a catalog product (as admin). */
  putProduct (sku, product = {}) {
    const body = { name: sku, price: 900, currency: 'EUR', maxQty: 99, ...product }
    return this.call(200, 'PUT', `/api/catalog/${encodeURIComponent(sku)}`,
      { token: mintToken('test-admin', 'admin', { secret: this.secret }), body })
  }

  /** Creates a cart owned by the bearer of `token`; returns its id. */
  async createCart (token, channel = 'web') {
    return (await this.call(201, 'POST', '/api/carts', { token, body: { channel } })).cartId
  }

  /** The cart as JSON, read through the HTTP API. */
  getCart (cartId, token) {
    return this.call(200, 'GET', `/api/carts/${encodeURIComponent(cartId)}`, { token })
  }
}

/** Opens stock y-websocket providers and destroys them all afterwards (their timers keep node alive). */
export class Clients {
  constructor () {
    this.providers = new Set()
  }

  /**
   * A stock WebsocketProvider on `cartId` with a fresh Y.Doc; `closes` collects its server close events.
   * BroadcastChannel is off: providers in one process would otherwise sync without the server.
   */
  open (server, cartId, token) {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(server.wsUrl, cartId, doc, {
      params: token ? { token } : {}, WebSocketPolyfill: WebSocket, disableBc: true
    })
    provider.closes = []
    provider.on('connection-close', (event) => {
      if (event) provider.closes.push({ code: event.code, reason: String(event.reason) })
    })
    this.providers.add(provider)
    return provider
  }

  /** Like open(), and waits until the initial sync with the server is done. */
  async synced (server, cartId, token, timeout = WAIT_MS) {
    const provider = this.open(server, cartId, token)
    await waitFor(() => provider.synced, `provider on ${cartId} to sync`, timeout)
    return provider
  }

  /** Destroys one provider (disconnects and stops its timers). */
  destroy (provider) {
    provider.destroy()
    provider.doc.destroy()
    this.providers.delete(provider)
  }

  /** Destroys every provider still open. */
  destroyAll () {
    for (const provider of this.providers) this.destroy(provider)
  }
}

/** The first close the server sent to `provider`: `{code, reason}`. */
export async function closeOf (provider, timeout = WAIT_MS) {
  await waitFor(() => provider.closes.length > 0, `a close from the server on ${provider.url}`, timeout)
  return provider.closes[0]
}

/** Adds a complete line in one transaction; returns its id. */
export function addLine (doc, sku, { qty = 1, addedBy = 'tester', channel = 'web' } = {}) {
  const id = randomUUID()
  const fields = { sku, qty, addedBy, channel, addedAt: Date.now() }
  doc.getMap('lines').set(id, new Y.Map(Object.entries(fields)))
  return id
}

/** The `lines` root as plain JSON. */
export const linesOf = (doc) => doc.getMap('lines').toJSON()
