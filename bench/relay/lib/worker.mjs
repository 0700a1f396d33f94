// A client worker process: runs many stock y-websocket providers (each with its own Y.Doc)
// and answers the coordinator's commands over the fork IPC channel.
//
// Each client owns one line of its cart (created in ONE transaction, as livecart's schema
// wants) and, during the measured window, sets that line's `qty` (cycling 1..99) and
// `addedAt` (the send time) in one transaction. A receiver sees the change as a remote
// YMapEvent on that line and computes latency = arrival − addedAt. The pair
// (lineId, addedAt) identifies an edit: addedAt is strictly increasing per sender.
//
// Accounting (lib/accounting.mjs): every window edit × every other client of its cart is
// delivered (observed, with a latency), superseded (never observed, but a later edit of the same
// sender's line was: merged away while the server was behind, which the contract allows) or
// lost (neither by the end of the drain, or the final state lacks the sender's last edit).
// Senders log their window edits; after the window the coordinator hands every worker the logs
// of the carts (`expect`), and receivers classify what they observed against them.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { makeClock, sleep } from './util.mjs'
import { classify, pending } from './accounting.mjs'

process.setMaxListeners(0) // every provider adds an 'exit' listener
process.on('disconnect', () => process.exit(0)) // the coordinator went away: never linger

let now = () => Date.now()
let url = ''
/** @type {Client[]} */
let clients = []
const win = { start: Infinity, end: -Infinity, delivered: 0, latencies: [], sentAts: [], docUpdates: 0, docBytes: 0 }
let deliveredTotal = 0
/** cartId → lineId → { sent: addedAts in the window, ascending; last: {qty, addedAt} } (from `expect`) */
let expected = null
let sendTimers = []
const eld = monitorEventLoopDelay({ resolution: 10 })
eld.enable()

// Every frame clients receive, by y-protocols message type, inside the window.
const frames = { sync: 0, awareness: 0, other: 0, bytes: 0 }
class CountingWebSocket extends WebSocket {
  constructor (...args) {
    super(...args)
    this.on('message', (data) => {
      const t = now()
      if (t < win.start || t >= win.end) return
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
      frames.bytes += buf.length
      if (buf[0] === 0) frames.sync++
      else if (buf[0] === 1) frames.awareness++
      else frames.other++
    })
  }
}

class Client {
  constructor (spec) {
    this.spec = spec // { cartId, cartIdx, clientIdx, cartSize, token, lineId, sku, url? }
    this.doc = new Y.Doc()
    this.lines = this.doc.getMap('lines')
    this.provider = null
    this.connectStart = 0
    this.syncedAt = 0
    this.closes = [] // {code, reason} of every server close
    this.disconnects = 0
    this.seq = 0
    this.sentInWindow = 0
    this.last = null // {qty, addedAt} of the last sent edit
    this.sentLog = [] // addedAt of every edit sent in the window, ascending
    // per remote line: what this receiver observed of its owner's edits
    /** @type {Map<string, {max: number, window: [number, number][]}>} */
    this.seen = new Map()
    // every remote document update this client applies in the window (line edits, and on
    // livecart also the server's own writes: holds and pricing)
    this.doc.on('update', (update, origin) => {
      if (origin !== this.provider) return
      const t = now()
      if (t >= win.start && t < win.end) {
        win.docUpdates++
        win.docBytes += update.length
      }
    })
    this.lines.observeDeep((events, txn) => {
      if (txn.local) return
      const t = now()
      for (const ev of events) {
        if (ev.path.length === 1 && ev.keysChanged.has('addedAt')) {
          deliveredTotal++
          const sentAt = ev.target.get('addedAt')
          const lineId = ev.path[0]
          let seen = this.seen.get(lineId)
          if (!seen) this.seen.set(lineId, (seen = { max: -Infinity, window: [] }))
          if (sentAt > seen.max) seen.max = sentAt
          if (sentAt >= win.start && sentAt < win.end) {
            win.delivered++
            win.latencies.push(t - sentAt)
            win.sentAts.push(sentAt - win.start)
            seen.window.push([sentAt, t])
          }
        }
      }
    })
  }

  connect () {
    this.connectStart = now()
    return new Promise((resolve) => {
      // spec.url: this client's own server (scale-out: client i of a cart → process i % N)
      const provider = this.provider = new WebsocketProvider(this.spec.url || url, this.spec.cartId, this.doc, {
        params: { token: this.spec.token },
        WebSocketPolyfill: CountingWebSocket,
        disableBc: true // in Node, BroadcastChannel would let same-process clients bypass the server
      })
      let done = false
      const finish = (ok) => { if (!done) { done = true; resolve(ok) } }
      provider.on('sync', (synced) => {
        if (synced && !this.syncedAt) {
          this.syncedAt = now()
          finish(true)
        }
      })
      provider.on('connection-close', (event) => {
        if (event) this.closes.push({ code: event.code, reason: String(event.reason || '') })
      })
      provider.on('status', ({ status }) => { if (status === 'disconnected') this.disconnects++ })
      provider.on('closed', () => finish(false))
      setTimeout(() => finish(false), 30000).unref()
    })
  }

  addLine () {
    const s = this.spec
    const addedAt = now()
    this.lines.set(s.lineId, new Y.Map(Object.entries({
      sku: s.sku, qty: 1, addedBy: `bench-${s.cartIdx}-${s.clientIdx}`, channel: 'web', addedAt
    })))
    this.last = { qty: 1, addedAt }
  }

  edit () {
    const line = this.lines.get(this.spec.lineId)
    if (!line) return
    this.seq++
    const qty = (this.seq % 99) + 1
    const addedAt = now()
    this.doc.transact(() => {
      line.set('qty', qty)
      line.set('addedAt', addedAt)
    })
    this.last = { qty, addedAt }
    if (addedAt >= win.start && addedAt < win.end) {
      this.sentInWindow++
      this.sentLog.push(addedAt)
    }
  }

  /** The other lines of this client's cart, with their owners' window edits (after `expect`). */
  peers () {
    const lines = expected?.[this.spec.cartId] ?? {}
    return Object.entries(lines).filter(([lineId]) => lineId !== this.spec.lineId)
  }

  /** Edits of cart-mates neither observed nor superseded yet (the drain waits for 0). */
  pending () {
    let n = 0
    for (const [lineId, { sent }] of this.peers()) n += pending(sent, this.seen.get(lineId)?.max)
    return n
  }

  /** delivered / superseded / lost of every cart-mate's window edits, as this receiver saw them. */
  account () {
    const acc = { delivered: 0, superseded: 0, lost: 0, lastMissing: 0, supersededDelayMs: [] }
    for (const [lineId, { sent, last }] of this.peers()) {
      const seen = this.seen.get(lineId) ?? { max: null, window: [] }
      const c = classify(sent, seen.window, seen.max)
      acc.delivered += c.delivered
      acc.superseded += c.superseded
      acc.lost += c.lost
      for (const d of c.supersededDelayMs) acc.supersededDelayMs.push(d)
      // the final state must hold the owner's last edit; a miss not already counted is a loss
      const line = this.lines.get(lineId)
      const holdsLast = last && line instanceof Y.Map && line.get('addedAt') === last.addedAt && line.get('qty') === last.qty
      if (!holdsLast) {
        acc.lastMissing++
        if (c.lost === 0) acc.lost++
      }
    }
    return acc
  }

  state () {
    const json = this.lines.toJSON()
    const sorted = {}
    for (const k of Object.keys(json).sort()) {
      const line = json[k]
      sorted[k] = Object.fromEntries(Object.keys(line).sort().map((f) => [f, line[f]]))
    }
    return {
      cartId: this.spec.cartId,
      lineId: this.spec.lineId,
      sv: Buffer.from(Y.encodeStateVector(this.doc)).toString('base64'),
      lines: JSON.stringify(sorted),
      nLines: Object.keys(sorted).length,
      last: this.last,
      synced: !!this.provider?.synced,
      closes: this.closes,
      disconnects: this.disconnects
    }
  }
}

const handlers = {
  /** One throw-away client on the warm-up cart, so JIT and module loading are not measured. */
  async warm ({ spec, serverUrl, clock }) {
    now = makeClock(clock)
    url = serverUrl
    const c = new Client(spec)
    const ok = await c.connect()
    c.provider.destroy()
    c.doc.destroy()
    return { ok }
  },

  /** Connect clients: all at one instant (`at`), or with at most `concurrency` connecting. */
  async connect ({ specs, serverUrl, clock, concurrency, at }) {
    now = makeClock(clock)
    url = serverUrl
    const fresh = specs.map((s) => new Client(s))
    clients.push(...fresh)
    const t0 = now()
    const progress = setInterval(() => {
      process.send({ ev: 'progress', synced: fresh.filter((c) => c.syncedAt).length })
    }, 1000)
    if (at != null) {
      const wait = at - now()
      if (wait > 0) await sleep(wait)
      await Promise.all(fresh.map((c) => c.connect()))
    } else {
      let next = 0
      const lane = async () => {
        while (next < fresh.length) await fresh[next++].connect()
      }
      await Promise.all(Array.from({ length: Math.min(concurrency, fresh.length) }, lane))
    }
    clearInterval(progress)
    return {
      syncMs: fresh.filter((c) => c.syncedAt).map((c) => c.syncedAt - c.connectStart),
      firstStart: Math.min(...fresh.map((c) => c.connectStart)),
      lastSynced: Math.max(...fresh.map((c) => c.syncedAt || Infinity)),
      failed: fresh.filter((c) => !c.syncedAt).length,
      wallMs: now() - t0
    }
  },

  /** Every client adds its own line, then waits until it sees every line of its cart. */
  async addLines ({ timeoutMs }) {
    for (const c of clients) if (c.provider?.synced) c.addLine()
    const t0 = now()
    const deadline = t0 + timeoutMs
    const pending = () => clients.filter((c) => c.lines.size < c.spec.cartSize).length
    while (pending() > 0 && now() < deadline) await sleep(20)
    return { ms: now() - t0, notReady: pending() }
  },

  /** Sends `rate` edits per second per client in [start, end), each client with its own phase. */
  async run ({ sendFrom, start, end, rate, senders }) {
    sendFrom = sendFrom ?? start
    win.start = start
    win.end = end
    win.delivered = 0
    win.latencies = []
    win.sentAts = []
    win.docUpdates = 0
    win.docBytes = 0
    expected = null
    for (const c of clients) { c.sentLog = []; c.seen.clear() }
    Object.assign(frames, { sync: 0, awareness: 0, other: 0, bytes: 0 })
    const period = 1000 / rate
    const active = senders == null ? clients : clients.filter((c) => senders.includes(c.spec.clientIdx))
    for (const c of active) {
      const first = sendFrom + Math.random() * period
      let due = first
      const tick = () => {
        if (now() >= end) return
        c.edit()
        due += period
        const t = setTimeout(tick, Math.max(0, due - now()))
        sendTimers.push(t)
      }
      sendTimers.push(setTimeout(tick, Math.max(0, first - now())))
    }
    const progress = setInterval(() => {
      process.send({ ev: 'progress', sent: sumSent(), delivered: win.delivered })
    }, 1000)
    await sleep(Math.max(0, end - now()) + 20)
    clearInterval(progress)
    for (const t of sendTimers) clearTimeout(t)
    sendTimers = []
    return { sent: sumSent(), expected: sumExpected() }
  },

  async counts () {
    return { delivered: win.delivered, deliveredTotal, sent: sumSent(), expected: sumExpected(),
      pending: expected ? clients.reduce((n, c) => n + c.pending(), 0) : null }
  },

  /** This worker's senders' window edits and last edits: cartId → lineId → {sent, last}. */
  async sentLogs () {
    const out = {}
    for (const c of clients) {
      (out[c.spec.cartId] ??= {})[c.spec.lineId] = { sent: c.sentLog, last: c.last }
    }
    return out
  },

  /** Every sender's log (all workers merged), against which receivers classify what they saw. */
  async expect ({ logs }) {
    expected = logs
    return {}
  },

  /** delivered / superseded / lost, summed over this worker's receivers (null before `expect`). */
  async account () {
    if (!expected) return null
    const acc = { delivered: 0, superseded: 0, lost: 0, lastMissing: 0, supersededDelayMs: [] }
    for (const c of clients) {
      const a = c.account()
      acc.delivered += a.delivered
      acc.superseded += a.superseded
      acc.lost += a.lost
      acc.lastMissing += a.lastMissing
      for (const d of a.supersededDelayMs) acc.supersededDelayMs.push(d)
    }
    return acc
  },

  async collect () {
    const h = eld
    const res = {
      latencies: win.latencies,
      sentAts: win.sentAts,
      docUpdates: win.docUpdates,
      docBytes: win.docBytes,
      frames: { ...frames },
      delivered: win.delivered,
      sent: sumSent(),
      expected: sumExpected(),
      states: clients.map((c) => c.state()),
      eventLoopDelayMs: { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6 },
      cpu: process.cpuUsage()
    }
    return res
  },

  async states () {
    return clients.map((c) => c.state())
  },

  async resetEld () {
    eld.reset()
    return {}
  },

  async shutdown () {
    for (const c of clients) {
      try { c.provider?.destroy() } catch {}
      c.doc.destroy()
    }
    clients = []
    setTimeout(() => process.exit(0), 50)
    return {}
  }
}

const sumSent = () => clients.reduce((n, c) => n + c.sentInWindow, 0)
const sumExpected = () => clients.reduce((n, c) => n + c.sentInWindow * (c.spec.cartSize - 1), 0)

process.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await handlers[cmd](args || {})
    process.send({ id, ok: true, result })
  } catch (err) {
    process.send({ id, ok: false, error: String(err?.stack || err) })
  }
})
process.send({ ev: 'up' })
