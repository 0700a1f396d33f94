#!/usr/bin/env node
// bench/relay: livecart vs @y/websocket-server, side by side, driven by the same stock
// y-websocket clients (in forked worker processes). See README.md.
import { fork } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { execSync } from 'node:child_process'
import { Floor, Livecart, LivecartCluster, Reference, children, clockTicks, cpuSeconds, killAll, machineCpu, rssKiB, skuFor, threadCpu } from './lib/servers.mjs'
import { startPySpy, summarizeProfile } from './lib/profile.mjs'
import { fmtInt, makeClock, monoMs, sleep, summarize } from './lib/util.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '..', '..')
const require = createRequire(import.meta.url)

const HELP = `Usage: node bench/relay/run.mjs [options]

Runs each selected load against livecart and then against the reference server
(@y/websocket-server, in memory), with the same stock y-websocket clients, and prints
the two side by side with ratios livecart/reference, plus PASS/MISS per target.
Results are also written to bench/results/relay-<timestamp>.json.

Loads:
  1  200 carts × 3 clients × 2 updates/s, 20 s     (fan-out latency, CPU per 1k)
  2  1 cart × 50 clients × 1 update/s, 20 s        (convergence, p99)
  3  2,000 idle clients, one cart each             (server RSS per client)
  4  20 fresh carts × 3 clients joining at once    (time until all synced)

Options:
  --quick                 ~5 s per measured window (loads 1, 2) and a short settle (3);
                          the whole run takes under 2 minutes
  --loads LIST            which loads, e.g. 1,2 (default 1,2,3,4)
  --servers LIST          livecart,reference (default both; ratios need both), and any of
                          py-relay, py-store, py-validate: the Python floor (floor.py), the
                          reference's relay on aiohttp + pycrdt, then with livecart's store,
                          then its validator too (where livecart's cost comes from)
  --duration S            measured window of loads 1 and 2, seconds (default 20, quick 5)
  --settle S              idle seconds before measuring load 3 RSS (default 5, quick 2)
  --stock N               on-hand set per SKU on livecart before the run (default 1000000, so
                          every line is really held; 0 leaves stock unset: holds 'unavailable')
  --scale F               multiply the number of carts of every load (default 1)
  --repeat N              run every load N times per server, alternating which server goes first,
                          and report the median of each figure (default 1)
  --workers N             client worker processes (default 2)
  --connect-concurrency N clients connecting at once while ramping up loads 1-3 (default 64)
  --drain S               max seconds to wait for in-flight updates after a window (default 5): until
                          every (edit, other client) pair is delivered or superseded
  --livecart-bin PATH     the livecart command (default <repo>/.venv/bin/livecart, or $LIVECART_BIN)
  --livecart-rev REV      bench the server/ and crdt/ of git commit REV (e.g. HEAD) instead of the
                          working tree: exported to a temp dir and run with the venv's python
  --out FILE              JSON results path (default bench/results/relay-<timestamp>.json)
  --py-spy                sample livecart and the py-* servers with py-spy (<venv>/bin/py-spy)
                          during the windows of loads 1 and 2; the hottest functions are printed
                          and saved with the JSON
  --keep-logs             keep the servers' logs and data dirs (path printed at the end)
  --max-minutes M         abort the whole run after M minutes (default 30)
  --scaleout LIST         scale-out mode instead of the side-by-side: load 1 only, on livecart
                          alone, once on 1 process with its embedded SQLite (the default), then
                          on each listed number of processes (e.g. 1,2,3) sharing one fresh
                          redis-server (--store/--bus redis://…; every client of a cart connects to
                          the process picked by a hash of the cart id, as a balancer hashing the
                          URI would; --route client: client i of a cart on process i % N).
                          Prints one row per configuration; JSON goes to
                          bench/results/relay-scaleout-<timestamp>.json. --quick, --duration,
                          --repeat, --scale, --workers apply.
  --redis-bin PATH        redis-server binary for --scaleout (default redis-server on PATH)
  --haproxy               scale-out/capacity: clients connect through a real HAProxy on
                          deploy/haproxy/livecart.cfg (one server line per process) instead of
                          the bench picking the process; its CPU is shown
  --haproxy-bin PATH      haproxy binary (default haproxy on PATH, else /usr/sbin/haproxy)
  --capacity              capacity mode: for each configuration of --scaleout (default 1), step
                          the edit rate per client (--capacity-start, × --capacity-factor per
                          step) until p99 > --p99-limit ms or anything is lost / not converged;
                          print the highest rate that held, then run --overload multiples of it
  --capacity-start R      first edit rate per client, edits/s (default 1)
  --capacity-factor F     rate multiplier per step (default 1.5)
  --capacity-steps N      at most N steps per configuration (default 8)
  --p99-limit MS          the latency a step must hold (default 100)
  --overload LIST         multiples of the capacity to run after it (default 1.5,2; '' for none):
                          accepted rate, p99 of what was accepted, last edits lost, time to converge
                          after the load drops, pushbacks (4429 closes)
  -h, --help              this text

Every edit sent in a window × every other client of its cart is counted once as:
  delivered   the receiver observed it (its addedAt); fan-out latency is over these
  superseded  never observed, but a later edit by the same sender of the same line was: merged
              away while the server was behind (server/sync/inbox.py; docs/DESIGN.md allows
              intermediate states not to be relayed); "visible after" = until that later edit
              arrived
  lost        neither observed nor superseded by the end of the drain, or the receiver's final
              state lacks the sender's last edit; must be 0 in a healthy run
delivered + superseded + lost = expected (edits sent × (clients of the cart − 1)).
`

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    loads: { type: 'string', default: '1,2,3,4' },
    servers: { type: 'string', default: 'livecart,reference' },
    duration: { type: 'string' },
    settle: { type: 'string' },
    scale: { type: 'string', default: '1' },
    stock: { type: 'string', default: '1000000' },
    workers: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '1' },
    'connect-concurrency': { type: 'string', default: '64' },
    drain: { type: 'string', default: '5' },
    'livecart-bin': { type: 'string' },
    'livecart-rev': { type: 'string' },
    out: { type: 'string' },
    'keep-logs': { type: 'boolean', default: false },
    'py-spy': { type: 'boolean', default: false },
    'max-minutes': { type: 'string', default: '30' },
    scaleout: { type: 'string' },
    route: { type: 'string', default: 'cart' },
    'redis-bin': { type: 'string', default: 'redis-server' },
    haproxy: { type: 'boolean', default: false },
    'haproxy-bin': { type: 'string' },
    capacity: { type: 'boolean', default: false },
    'capacity-start': { type: 'string', default: '1' },
    'capacity-factor': { type: 'string', default: '1.5' },
    'capacity-steps': { type: 'string', default: '8' },
    'p99-limit': { type: 'string', default: '100' },
    overload: { type: 'string', default: '1.5,2' },
    help: { type: 'boolean', short: 'h', default: false }
  }
})
if (opt.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
for (const dep of ['yjs', 'y-websocket', 'ws', '@y/websocket-server/package.json']) {
  try { require.resolve(dep) } catch {
    console.error(`missing ${dep}: run \`npm ci\` in ${path.relative(process.cwd(), here) || '.'} first`)
    process.exit(2)
  }
}
const { default: WebSocket } = await import('ws')
const Y = await import('yjs')
const { WebsocketProvider } = await import('y-websocket')

const num = (v, name, min = 0) => {
  const n = Number(v)
  if (!Number.isFinite(n) || n < min) {
    console.error(`bad --${name}: ${v}`)
    process.exit(2)
  }
  return n
}
const quick = opt.quick
const duration = num(opt.duration ?? (quick ? 5 : 20), 'duration', 1)
const settle = num(opt.settle ?? (quick ? 2 : 5), 'settle', 0)
const scale = num(opt.scale, 'scale', 0.001)
const onHand = Math.floor(num(opt.stock, 'stock', 0))
const nWorkers = Math.floor(num(opt.workers, 'workers', 1))
const repeat = Math.floor(num(opt.repeat, 'repeat', 1))
const connectConcurrency = Math.floor(num(opt['connect-concurrency'], 'connect-concurrency', 1))
const drainMs = num(opt.drain, 'drain', 0) * 1000
const loadsWanted = opt.loads.split(',').map((s) => s.trim()).filter(Boolean)
const FLOOR_STEPS = ['relay', 'store', 'validate'] // bench/relay/floor.py
const serversWanted = opt.servers.split(',').map((s) => s.trim()).filter(Boolean)
for (const s of serversWanted) {
  if (!['livecart', 'reference', ...FLOOR_STEPS.map((step) => `py-${step}`)].includes(s)) {
    console.error(`unknown server ${s}`)
    process.exit(2)
  }
}
const livecartBin = opt['livecart-bin'] || process.env.LIVECART_BIN || path.join(repo, '.venv', 'bin', 'livecart')

const LOADS = {
  1: { key: 'load1', kind: 'relay', carts: 200, perCart: 3, rate: 2, title: 'carts × 3 clients × 2 updates/s' },
  2: { key: 'load2', kind: 'relay', carts: 1, perCart: 50, rate: 1, title: 'cart × 50 clients × 1 update/s' },
  3: { key: 'load3', kind: 'idle', carts: 2000, perCart: 1, title: 'idle clients, one cart each' },
  4: { key: 'load4', kind: 'burst', carts: 20, perCart: 3, title: 'fresh carts × 3 clients joining at once' }
}
for (const l of loadsWanted) {
  if (!LOADS[l]) { console.error(`unknown load ${l} (1..4)`); process.exit(2) }
}

// -- process hygiene: never leave a server or a worker behind ---------------------------------
const runStamp = new Date().toISOString().replace(/[:.]/g, '-').replace('Z', 'Z')
const resultsDir = path.join(repo, 'bench', 'results')
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'livecart-relay-'))
const cleanupDirs = () => {
  if (!opt['keep-logs']) fs.rmSync(runDir, { recursive: true, force: true })
}
process.on('exit', () => killAll('SIGKILL'))
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping servers and workers\n`)
    killAll('SIGKILL')
    cleanupDirs()
    process.exit(130)
  })
}
const fail = (err) => {
  process.stderr.write(`\nerror: ${err?.stack || err}\n`)
  killAll('SIGKILL')
  process.stderr.write(`logs kept in ${runDir}\n`)
  process.exit(1)
}
process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)
setTimeout(() => fail(new Error(`run exceeded --max-minutes ${opt['max-minutes']}`)),
  num(opt['max-minutes'], 'max-minutes', 0.1) * 60000).unref()

const clockAnchor = { wall: Date.now(), mono: monoMs() }
const clock = makeClock(clockAnchor)
const log = (s) => process.stderr.write(s + '\n')

// -- workers ---------------------------------------------------------------------------------
class Worker {
  constructor (i) {
    this.i = i
    this.child = fork(path.join(here, 'lib', 'worker.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.add(this.child)
    this.child.on('exit', () => children.delete(this.child))
    this.pending = new Map()
    this.nextId = 1
    this.progress = {}
    this.up = new Promise((resolve) => {
      this.child.on('message', (m) => {
        if (m.ev === 'up') return resolve()
        if (m.ev === 'progress') { this.progress = m; return }
        const p = this.pending.get(m.id)
        if (!p) return
        this.pending.delete(m.id)
        m.ok ? p.resolve(m.result) : p.reject(new Error(`worker ${this.i}: ${m.error}`))
      })
    })
    this.child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`worker ${this.i} exited (${code})`))
      this.pending.clear()
    })
  }

  call (cmd, args) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, cmd, args })
    })
  }

  async stop () {
    if (this.child.exitCode != null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    try { await Promise.race([this.call('shutdown'), sleep(3000)]) } catch {}
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(t)
  }

  cpuSeconds () { try { return cpuSeconds(this.child.pid) } catch { return null } }
}

/** Prints a progress line per second while `promise` runs. */
const withProgress = async (promise, line) => {
  const t = setInterval(() => log(line()), 1000)
  try { return await promise } finally { clearInterval(t) }
}

// -- one server × one load ---------------------------------------------------------------------
const warmUp = async (server) => {
  // One unrelated cart opened and edited once, so that process start-up costs are not
  // charged to the first measured join. Done before the RSS/CPU baselines.
  // Scale-out: the same cart on every process in turn (so the relay path is warmed too).
  const [{ cartId, token }] = await server.createCarts(1, 'warmup')
  for (const [i, url] of (server.wsUrls ?? [server.wsUrl]).entries()) {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(url, cartId, doc, {
      params: { token }, WebSocketPolyfill: WebSocket, disableBc: true
    })
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${server.name}: warm-up client did not sync`)), 15000)
      provider.on('sync', (s) => { if (s) { clearTimeout(t); resolve() } })
    })
    doc.getMap('lines').set(`warm-${i}`, new Y.Map(Object.entries({
      sku: skuFor(0), qty: 1, addedBy: 'warmup', channel: 'web', addedAt: Date.now()
    })))
    await sleep(200)
    provider.destroy()
    doc.destroy()
  }
  return { cartId, token }
}

/** Every server process of a run (a scale-out cluster has several). */
const pidsOf = (server) => server.pids ?? [server.pid]
const srvCpu = (server) => pidsOf(server).reduce((n, pid) => n + cpuSeconds(pid), 0)
const srvRss = (server) => pidsOf(server).reduce((n, pid) => n + rssKiB(pid), 0)
/** CPU of the main threads (tid = pid: the event loops), summed, and the number of threads. */
const srvThreads = (server) => {
  let main = 0
  let threads = 0
  for (const pid of pidsOf(server)) {
    const th = threadCpu(pid)
    main += th[pid]?.cpu ?? 0
    threads += Object.keys(th).length
  }
  return { main, threads }
}
const redisCpu = (server) => (server.redisPid ? cpuSeconds(server.redisPid) : 0)
const proxyCpu = (server) => (server.proxyPid ? cpuSeconds(server.proxyPid) : 0)
const haproxyBin = () => opt['haproxy-bin'] ||
  (() => { try { return execSync('command -v haproxy', { shell: '/bin/sh' }).toString().trim() } catch { return '/usr/sbin/haproxy' } })()

/** cfg (scale-out only): {processes, redis, name}. */
const runOne = async (serverName, loadNo, rep = 0, cfg = null) => {
  const L = LOADS[loadNo]
  const rate = cfg?.rate ?? L.rate // capacity mode steps the rate
  const carts = Math.max(1, Math.round(L.carts * scale))
  const nClients = carts * L.perCart
  const tag = cfg ? `${L.key}-${cfg.processes}p-${cfg.redis ? 'redis' : 'sqlite'}` : `${L.key}`
  const server = cfg
    ? new LivecartCluster({ processes: cfg.processes, redis: cfg.redis, redisBin: opt['redis-bin'],
      haproxyBin: cfg.haproxy ? haproxyBin() : null, bin: livecartBin, pythonPath: livecartSnapshot, runDir, tag, onHand })
    : serverName === 'livecart'
      ? new Livecart({ bin: livecartBin, pythonPath: livecartSnapshot, runDir, tag, onHand })
      : serverName.startsWith('py-')
        ? new Floor({ python: path.join(path.dirname(livecartBin), 'python'), pythonPath: livecartSnapshot,
          runDir, tag, step: serverName.slice(3) })
        : new Reference({ runDir, tag })
  const label = `${L.key} ${cfg ? cfg.name : serverName}` + (cfg?.rate != null ? ` @ ${f(rate, 2)}/s per client` : '') + (repeat > 1 ? ` (run ${rep + 1}/${repeat})` : '')
  log(`${label}: starting server`)
  await server.start()
  const workers = []
  try {
    const warm = await warmUp(server)
    const t0 = Date.now()
    const cartList = await server.createCarts(carts, L.key)
    const setupMs = Date.now() - t0
    const specs = []
    cartList.forEach(({ cartId, token }, cartIdx) => {
      for (let clientIdx = 0; clientIdx < L.perCart; clientIdx++) {
        specs.push({
          cartId, cartIdx, clientIdx, cartSize: L.perCart, token,
          lineId: `l-${cartIdx}-${clientIdx}`, sku: skuFor(cartIdx + clientIdx),
          // scale-out: by cart (every client of a cart on the process a balancer hashing the
          // cart id picks), or by client index (each cart's clients spread, relay crosses them)
          // (--haproxy: every client to the balancer, which picks)
          ...(server.clientUrl ? { url: server.clientUrl }
            : server.wsUrls ? { url: server.wsUrls[routeFor(cartId, clientIdx, server.wsUrls.length)] } : {})
        })
      }
    })
    const nw = Math.min(nWorkers, specs.length)
    for (let i = 0; i < nw; i++) workers.push(new Worker(i))
    await Promise.all(workers.map((w) => w.up))
    for (const url of server.wsUrls ?? [server.wsUrl]) {
      await Promise.all(workers.map((w) => w.call('warm', {
        spec: { ...warm, cartIdx: -1, clientIdx: w.i, cartSize: 1, lineId: 'warm', sku: skuFor(0) },
        serverUrl: url, clock: clockAnchor
      })))
    }
    const share = workers.map((_, i) => specs.filter((_, j) => j % nw === i))

    await sleep(500)
    const rssBase = srvRss(server)
    const cpuBase = srvCpu(server)

    // connect
    const at = L.kind === 'burst' ? clock() + 300 : null
    const perWorker = Math.max(1, Math.ceil(connectConcurrency / nw))
    log(`${label}: connecting ${fmtInt(nClients)} clients to ${carts} cart(s)${at ? ' all at once' : ''}`)
    const conn = await withProgress(
      Promise.all(workers.map((w, i) => w.call('connect', {
        specs: share[i], serverUrl: server.wsUrl, clock: clockAnchor, concurrency: perWorker, at
      }))),
      () => `${label} connecting: ${fmtInt(workers.reduce((n, w) => n + (w.progress.synced || 0), 0))}/${fmtInt(nClients)} synced`)
    const syncMs = conn.flatMap((c) => c.syncMs)
    const syncFailed = conn.reduce((n, c) => n + c.failed, 0)
    const firstStart = at ?? Math.min(...conn.map((c) => c.firstStart))
    const lastSynced = Math.max(...conn.map((c) => c.lastSynced))
    const allSyncedMs = syncFailed ? null : lastSynced - firstStart

    // every client adds its line; wait until every client sees its whole cart
    const ready = await Promise.all(workers.map((w) => w.call('addLines', { timeoutMs: 30000 })))
    const notReady = ready.reduce((n, r) => n + r.notReady, 0)
    if (notReady) log(`${label}: ${notReady} client(s) never saw their whole cart`)

    const result = {
      server: serverName,
      params: { carts, clientsPerCart: L.perCart, clients: nClients, rate: rate ?? 0, workers: nw },
      ...(cfg ? { scaleout: { ...cfg, pids: server.pids, redisPid: server.redisPid, haproxyPid: server.proxyPid ?? null } } : {}),
      setupMs,
      stockSet: server.stockSet ?? null,
      sync: { perClientMs: summarize(syncMs), allSyncedMs, failed: syncFailed },
      readyMs: Math.max(...ready.map((r) => r.ms)),
      notReady
    }

    // Let the server finish what the connects and the line edits left it (bounded).
    result.quiesceMs = await quiesce(() => srvCpu(server) + redisCpu(server), 20000)
    if (L.kind === 'idle') {
      log(`${label}: idle ${settle} s before measuring RSS`)
      const c0 = srvCpu(server)
      await sleep(settle * 1000)
      result.idleCpuSecondsPerMinute = (srvCpu(server) - c0) / Math.max(settle, 0.001) * 60
    }
    const rssReady = srvRss(server)
    result.rss = {
      baselineKiB: rssBase,
      withClientsKiB: rssReady,
      perConnectionKiB: (rssReady - rssBase) / nClients
    }

    if (L.kind === 'relay') {
      // Edits start `warmup` ms before the window; only edits sent inside [start, end) count,
      // and the server's CPU is read at `start` and again once the window has drained.
      const warmupMs = quick ? 1000 : 2000
      const sendFrom = clock() + 200
      const start = sendFrom + warmupMs
      const end = start + duration * 1000
      log(`${label}: ${warmupMs / 1000} s of unmeasured edits, then measuring ${duration} s`)
      const running = Promise.all(workers.map((w) => w.call('run', { sendFrom, start, end, rate })))
      await sleep(start - clock())
      const cpu0 = srvCpu(server)
      const rd0 = redisCpu(server)
      const px0 = proxyCpu(server)
      const th0 = srvThreads(server)
      const m0 = machineCpu()
      const wc0 = workers.map((w) => w.cpuSeconds())
      const own0 = process.cpuUsage()
      await Promise.all(workers.map((w) => w.call('resetEld')))
      const profiling = opt['py-spy'] && serverName !== 'reference' // livecart and the Python floor
        ? startPySpy(path.join(path.dirname(livecartBin), 'py-spy'), server.pid, duration,
          path.join(runDir, `${L.key}-${serverName}.pyspy.txt`))
        : null
      // a timeline, one sample a second: server CPU, clients' CPU, other processes' CPU
      const timeline = []
      let prev = { t: clock(), srv: cpu0, rd: rd0, m: m0, cl: wc0.reduce((a, b) => a + b, 0), own: process.cpuUsage() }
      await withProgress(running, () => {
        const t = clock()
        const s = Math.min(duration, Math.max(0, (t - start) / 1000))
        const d = workers.reduce((n, w) => n + (w.progress.delivered || 0), 0)
        try {
          const cur = { t, srv: srvCpu(server), rd: redisCpu(server), m: machineCpu(), cl: workers.reduce((n, w) => n + (w.cpuSeconds() || 0), 0), own: process.cpuUsage() }
          const dt = (cur.t - prev.t) / 1000
          const busy = (cur.m.busy - prev.m.busy) / clockTicks()
          const ownS = ((cur.own.user - prev.own.user) + (cur.own.system - prev.own.system)) / 1e6
          const srv = cur.srv - prev.srv
          const cl = cur.cl - prev.cl
          const rd = cur.rd - prev.rd
          timeline.push({ second: Math.round(s), delivered: d, serverPct: +(srv / dt * 100).toFixed(0),
            ...(server.redisPid ? { redisPct: +(rd / dt * 100).toFixed(0) } : {}),
            clientsPct: +(cl / dt * 100).toFixed(0), otherPct: +(Math.max(0, busy - srv - rd - cl - ownS) / dt * 100).toFixed(0) })
          prev = cur
        } catch {}
        const last = timeline[timeline.length - 1]
        return `${label} ${Math.round(s)}/${duration} s, ${fmtInt(d)} delivered` +
          (last ? ` (server ${last.serverPct}%,${last.redisPct != null ? ` redis ${last.redisPct}%,` : ''} clients ${last.clientsPct}%, other ${last.otherPct}% of a core)` : '')
      })
      // every worker learns every sender's window edits, so its receivers can tell a superseded
      // edit (merged away, a later one observed) from a lost one (lib/accounting.mjs)
      const logs = {}
      for (const part of await Promise.all(workers.map((w) => w.call('sentLogs')))) {
        for (const [cartId, lines] of Object.entries(part)) Object.assign(logs[cartId] ??= {}, lines)
      }
      await Promise.all(workers.map((w) => w.call('expect', { logs })))
      // drain: wait until every edit is delivered or superseded (bounded; overload rows of
      // --capacity wait as long as they wait for convergence)
      const drainEnd = Date.now() + (cfg?.convergeMs ?? drainMs)
      let counts
      let convergedAt = null // capacity mode: when every cart is identical with every last edit
      for (let i = 0; ; i++) {
        counts = await Promise.all(workers.map((w) => w.call('counts')))
        const d = counts.reduce((n, c) => n + c.delivered, 0)
        const e = counts.reduce((n, c) => n + c.expected, 0)
        const pend = counts.reduce((n, c) => n + (c.pending ?? Infinity), 0)
        const accounted = d >= e || pend === 0 // every edit delivered or superseded
        if (cfg?.rate != null && (accounted || i % 5 === 0)) { // capacity mode: converged ends the drain too
          const c = convergence((await Promise.all(workers.map((w) => w.call('states')))).flat(), carts, L.perCart)
          if (c.allConverged && c.complete === carts) { convergedAt = clock(); break }
        }
        if (accounted || Date.now() >= drainEnd) break
        await sleep(50)
      }
      const cpu1 = srvCpu(server)
      const rd1 = redisCpu(server)
      const px1 = proxyCpu(server)
      const th1 = srvThreads(server)
      const m1 = machineCpu()
      const wc1 = workers.map((w) => w.cpuSeconds())
      const own = process.cpuUsage(own0)
      const measuredS = (clock() - start) / 1000
      const windowS = (end - start) / 1000
      const accounts = await Promise.all(workers.map((w) => w.call('account')))
      const collected = await Promise.all(workers.map((w) => w.call('collect')))
      const lat = summarize(collected.flatMap((c) => c.latencies))
      const delivered = collected.reduce((n, c) => n + c.delivered, 0)
      const expected = collected.reduce((n, c) => n + c.expected, 0)
      const sent = collected.reduce((n, c) => n + c.sent, 0)
      result.window = { seconds: windowS, cpuMeasuredSeconds: measuredS, sent, expected, delivered }
      const docUpdates = collected.reduce((n, c) => n + c.docUpdates, 0)
      const docBytes = collected.reduce((n, c) => n + c.docBytes, 0)
      result.docUpdatesPerSecond = docUpdates / windowS
      result.docUpdatesPerEdit = sent ? docUpdates / sent : null
      const dt = m1.total - m0.total
      const busyS = (m1.busy - m0.busy) / clockTicks()
      const clientS = wc1.reduce((n, c, i) => n + (c - wc0[i]), 0)
      const benchS = (cpu1 - cpu0) + (rd1 - rd0) + (px1 - px0) + clientS + (own.user + own.system) / 1e6
      result.machine = {
        busyPct: (m1.busy - m0.busy) / dt * 100,
        stealPct: (m1.steal - m0.steal) / dt * 100,
        // CPU used by processes that are not part of this bench (other work on the machine)
        otherPctOfCore: Math.max(0, (busyS - benchS) / measuredS * 100)
      }
      result.latencyPerSecond = perSecond(collected, windowS)
      result.timeline = timeline
      result.docBytesPerEdit = sent ? docBytes / sent : null
      const fr = (k) => collected.reduce((n, c) => n + c.frames[k], 0)
      result.framesReceived = { syncPerSecond: fr('sync') / windowS, awarenessPerSecond: fr('awareness') / windowS,
        otherPerSecond: fr('other') / windowS, bytesPerSecond: fr('bytes') / windowS }
      result.latencyMs = lat
      result.deliveredPerSecond = delivered / windowS
      // delivered + superseded + lost (pending at the drain's end) = expected; lost also counts a
      // final state that lacks an owner's last edit (lib/accounting.mjs)
      const acc = (k) => accounts.reduce((n, a) => n + a[k], 0)
      result.accounting = { expected, delivered: acc('delivered'), superseded: acc('superseded'), lost: acc('lost'),
        lastMissing: acc('lastMissing'), unobserved: Math.max(0, expected - delivered),
        // per superseded edit: until the receiver saw the edit that overwrote it
        supersededVisibleMs: summarize(accounts.flatMap((a) => a.supersededDelayMs)) }
      result.superseded = result.accounting.superseded
      result.lost = result.accounting.lost
      result.serverCpuSeconds = cpu1 - cpu0
      // the main thread (tid = pid) runs the event loop; the others are e.g. SQLite's thread
      // (scale-out: summed over the processes)
      const mainS = th1.main - th0.main
      result.serverThreads = {
        mainPctOfCore: mainS / measuredS * 100,
        otherThreadsPctOfCore: Math.max(0, (cpu1 - cpu0) - mainS) / measuredS * 100,
        threads: th1.threads
      }
      result.cpuSecondsPer1kDelivered = delivered ? (cpu1 - cpu0) / delivered * 1000 : null
      if (server.proxyPid) result.haproxyCpuSeconds = px1 - px0
      if (server.redisPid) {
        result.redisCpuSeconds = rd1 - rd0
        result.redisCpuSecondsPer1kDelivered = delivered ? (rd1 - rd0) / delivered * 1000 : null
      }
      result.clientCpuSeconds = clientS
      result.clientEventLoopDelayMs = {
        p99: Math.max(...collected.map((c) => c.eventLoopDelayMs.p99)),
        max: Math.max(...collected.map((c) => c.eventLoopDelayMs.max))
      }
      result.rss.afterRunKiB = srvRss(server)
      // capacity mode waits longer (bounded) and for every last edit: the time to converge after
      // the load drops is one of its figures
      result.convergence = await settleConvergence(workers, collected.flatMap((c) => c.states), carts, L.perCart,
        cfg?.convergeMs ?? 5000, cfg?.rate != null)
      result.convergedAfterLoadMs = convergedAt != null ? Math.max(0, convergedAt - end)
        : result.convergence.allConverged ? clock() - end : null
      if (profiling) {
        const file = await profiling
        if (file) {
          result.profile = summarizeProfile(file)
          const keep = path.join(resultsDir, `relay-${runStamp}-${L.key}-${serverName}.pyspy.txt`)
          fs.mkdirSync(resultsDir, { recursive: true })
          fs.copyFileSync(file, keep)
          result.profile.file = path.relative(repo, keep)
        }
      }
    } else {
      const collected = await Promise.all(workers.map((w) => w.call('collect')))
      result.lost = null
      result.convergence = await settleConvergence(workers, collected.flatMap((c) => c.states), carts, L.perCart)
    }
    result.serverCpuSecondsTotal = srvCpu(server) - cpuBase
    return result
  } finally {
    await Promise.all(workers.map((w) => w.stop()))
    await server.stop()
    if (!opt['keep-logs']) server.cleanup()
  }
}

/**
 * Waits until the server uses < 5% of a core over 250 ms (twice in a row), at most `maxMs`.
 * `readCpu`: the server's CPU-s (scale-out: every process and Redis, summed).
 */
const quiesce = async (readCpu, maxMs) => {
  const t0 = Date.now()
  let quiet = 0
  let prev = readCpu()
  while (Date.now() - t0 < maxMs && quiet < 2) {
    await sleep(250)
    const c = readCpu()
    quiet = c - prev < 0.0125 ? quiet + 1 : 0
    prev = c
  }
  return Date.now() - t0
}

/** p50/p99/max of the latencies by the second of the window in which the edit was sent. */
const perSecond = (collected, windowS) => {
  const buckets = Array.from({ length: Math.ceil(windowS) }, () => [])
  for (const c of collected) {
    for (let i = 0; i < c.latencies.length; i++) {
      const b = Math.floor(c.sentAts[i] / 1000)
      if (b >= 0 && b < buckets.length) buckets[b].push(c.latencies[i])
    }
  }
  return buckets.map((b, i) => {
    const s = summarize(b)
    return { second: i, n: s.count, p50: s.p50, p99: s.p99, max: s.max }
  })
}

/**
 * Checks convergence; while some cart differs (e.g. a server write still in flight), asks the
 * workers again every 100 ms, for at most 5 s. `settledMs` says how long that took.
 */
const settleConvergence = async (workers, states, carts, perCart, maxMs = 5000, complete = false) => {
  const t0 = Date.now()
  let c = convergence(states, carts, perCart)
  const done = () => c.allConverged && (!complete || c.complete === carts)
  while (!done() && Date.now() - t0 < maxMs) {
    await sleep(100)
    states = (await Promise.all(workers.map((w) => w.call('states')))).flat()
    c = convergence(states, carts, perCart)
  }
  c.settledMs = Date.now() - t0
  return c
}

/** All clients of a cart identical (state vector + lines JSON), complete, and the last edits seen. */
const convergence = (states, carts, perCart) => {
  const byCart = new Map()
  for (const s of states) {
    if (!byCart.has(s.cartId)) byCart.set(s.cartId, [])
    byCart.get(s.cartId).push(s)
  }
  let converged = 0
  let complete = 0
  const closes = {}
  let disconnects = 0
  const examples = []
  for (const [cartId, list] of byCart) {
    for (const s of list) {
      disconnects += s.disconnects
      for (const c of s.closes) {
        const k = `${c.code}${c.reason ? ' ' + c.reason : ''}`
        closes[k] = (closes[k] || 0) + 1
      }
    }
    const same = list.length === perCart && list.every((s) =>
      s.synced && s.sv === list[0].sv && s.lines === list[0].lines)
    if (same) converged++
    else if (examples.length < 3) examples.push({ cartId, clients: list.length, nLines: list.map((s) => s.nLines) })
    // every client holds each owner's last edit
    const ok = list.length === perCart && list.every((s) => {
      const lines = JSON.parse(s.lines)
      return list.every((owner) => {
        const line = lines[owner.lineId]
        return owner.last && line && line.qty === owner.last.qty && line.addedAt === owner.last.addedAt
      })
    })
    if (ok) complete++
  }
  return { carts, converged, complete, allConverged: converged === carts && byCart.size === carts,
    closes, disconnects, examples }
}

/** Several runs of one server × load: the median of every number, the worst of the correctness. */
const combineRuns = (list) => {
  if (list.length === 1) return list[0]
  const median = (xs) => {
    const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
    if (!v.length) return xs[0]
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
  }
  const merge = (xs) => {
    const x0 = xs[0]
    if (typeof x0 === 'number' || x0 === null) return median(xs)
    if (Array.isArray(x0) || typeof x0 !== 'object') return x0
    return Object.fromEntries(Object.keys(x0).map((k) => [k, merge(xs.map((x) => x?.[k]))]))
  }
  const out = merge(list)
  const worst = [...list].sort((a, b) => a.convergence.converged - b.convergence.converged)[0]
  out.convergence = worst.convergence
  out.lost = list.some((r) => r.lost != null) ? Math.max(...list.map((r) => r.lost ?? 0)) : null
  if (out.accounting) out.accounting.lost = out.lost
  out.sync.failed = Math.max(...list.map((r) => r.sync.failed))
  out.runs = list
  out.combined = `median of ${list.length} runs (correctness: worst run)`
  return out
}

// -- reporting -----------------------------------------------------------------------------------
const f = (v, d = 1) => (v == null || Number.isNaN(v) ? '—' : Number(v).toFixed(d))
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b)

const rowsFor = (L, r) => {
  const rows = []
  const get = (fn) => { try { return fn(r) } catch { return null } }
  if (L.kind === 'relay') {
    rows.push(['fan-out latency p50 (ms)', (x) => x.latencyMs.p50, 2])
    rows.push(['fan-out latency p95 (ms)', (x) => x.latencyMs.p95, 2])
    rows.push(['fan-out latency p99 (ms)', (x) => x.latencyMs.p99, 2])
    rows.push(['fan-out latency max (ms)', (x) => x.latencyMs.max, 1])
    rows.push(['delivered updates/s', (x) => x.deliveredPerSecond, 0])
    rows.push(['doc updates received per edit', (x) => x.docUpdatesPerEdit, 2])
    rows.push(['doc bytes received per edit', (x) => x.docBytesPerEdit, 0])
    rows.push(['frames to clients/s: sync', (x) => x.framesReceived.syncPerSecond, 0])
    rows.push(['frames to clients/s: awareness', (x) => x.framesReceived.awarenessPerSecond, 0])
    rows.push(['bytes to clients/s (KiB)', (x) => x.framesReceived.bytesPerSecond / 1024, 0])
    rows.push(['server CPU-s per 1k delivered', (x) => x.cpuSecondsPer1kDelivered, 4])
    rows.push(['server CPU (% of a core)', (x) => x.serverCpuSeconds / x.window.cpuMeasuredSeconds * 100, 0])
    rows.push(['  of which main thread (event loop)', (x) => x.serverThreads.mainPctOfCore, 0])
    rows.push(['  of which other threads', (x) => x.serverThreads.otherThreadsPctOfCore, 0])
  }
  rows.push(['server RSS per connection (KiB)', (x) => x.rss.perConnectionKiB, 1])
  rows.push(['server RSS with clients (MiB)', (x) => x.rss.withClientsKiB / 1024, 1])
  rows.push(['sync time per client p50 (ms)', (x) => x.sync.perClientMs.p50, 1])
  rows.push(['sync time per client p99 (ms)', (x) => x.sync.perClientMs.p99, 1])
  rows.push([L.kind === 'burst' ? 'all synced, from joint start (ms)' : 'all synced, whole ramp (ms)', (x) => x.sync.allSyncedMs, 0])
  if (L.kind === 'idle') rows.push(['idle server CPU (s per minute)', (x) => x.idleCpuSecondsPerMinute, 2])
  return rows.map(([name, fn, d]) => ({ name, fn, d, get }))
}

const printLoad = (L, res, out) => {
  const servers = Object.keys(res)
  const lc = res.livecart
  const ref = res.reference
  const any = res[servers[0]] // the load's own figures (the same for every server)
  const p = any.params
  const head = `${L.key}: ${fmtInt(p.carts)} ${L.title}` +
    (L.kind === 'relay' ? `, ${f(any.window.seconds, 0)} s window` : '') +
    ` — ${fmtInt(p.clients)} clients, ${p.workers} client worker process(es)`
  out.push('', head + (any.combined ? ` — ${any.combined}` : ''))
  const w0 = 36
  const w = 13
  const hdr = 'metric'.padEnd(w0) + servers.map((s) => s.padStart(w)).join('') + (lc && ref ? 'ratio'.padStart(9) : '')
  out.push(hdr, '-'.repeat(hdr.length))
  for (const row of rowsFor(L, any)) {
    const vals = servers.map((s) => { try { return row.fn(res[s]) } catch { return null } })
    let line = row.name.padEnd(w0) + vals.map((v) => f(v, row.d).padStart(w)).join('')
    if (lc && ref) {
      const rr = ratio(vals[servers.indexOf('livecart')], vals[servers.indexOf('reference')])
      line += (rr == null ? '—' : f(rr, 2) + '×').padStart(9)
    }
    out.push(line)
  }
  const textRow = (name, fn) => {
    out.push(name.padEnd(w0) + servers.map((s) => (' ' + String(fn(res[s]))).padStart(w)).join(''))
  }
  textRow('carts converged', (x) => `${x.convergence.converged}/${x.convergence.carts}`)
  textRow('carts holding every last edit', (x) => `${x.convergence.complete}/${x.convergence.carts}`)
  textRow('extra wait to converge (ms)', (x) => x.convergence.allConverged ? fmtInt(x.convergence.settledMs) : 'never')
  if (L.kind === 'relay') {
    textRow('delivered (observed)', (x) => `${fmtInt(x.accounting.delivered)}/${fmtInt(x.window.expected)}`)
    textRow('superseded (merged, allowed)', (x) => `${fmtInt(x.superseded)}/${fmtInt(x.window.expected)}`)
    textRow('  visible after p50/p99 (ms)', (x) => x.superseded
      ? `${f(x.accounting.supersededVisibleMs.p50, 0)}/${f(x.accounting.supersededVisibleMs.p99, 0)}` : '—')
    textRow('lost updates', (x) => `${fmtInt(x.lost)}/${fmtInt(x.window.expected)}`)
    textRow('client event-loop delay p99 (ms)', (x) => f(x.clientEventLoopDelayMs.p99, 1))
    textRow('client CPU-s (all workers)', (x) => f(x.clientCpuSeconds, 1))
    textRow('machine CPU busy % (steal %)', (x) => `${f(x.machine.busyPct, 0)} (${f(x.machine.stealPct, 1)})`)
    textRow('other processes, % of a core', (x) => f(x.machine.otherPctOfCore, 0))
  }
  textRow('clients that failed to sync', (x) => x.sync.failed)
  textRow('server closes / disconnects', (x) => `${Object.values(x.convergence.closes).reduce((a, b) => a + b, 0)}/${x.convergence.disconnects}`)
  for (const s of servers) {
    const other = res[s].machine?.otherPctOfCore
    if (other != null && other > 15) {
      out.push(`  ! ${s}: other processes on this machine used ${f(other, 0)}% of a core during the window; figures are noisy`)
    }
    const steal = res[s].machine?.stealPct
    if (steal != null && steal > 5) {
      out.push(`  ! ${s}: the hypervisor stole ${f(steal, 0)}% of the machine's CPU time during the window; figures are noisy`)
    }
  }
  for (const s of servers) {
    const prof = res[s].profile
    if (!prof) continue
    out.push(`  ${s} py-spy, ${fmtInt(prof.samples)} samples (${prof.file}); self time:`)
    for (const x of prof.self.slice(0, 8)) out.push(`    ${f(x.pct, 1).padStart(5)}%  ${x.fn}`)
    out.push('  self time by file:')
    for (const x of prof.selfByFile.slice(0, 8)) out.push(`    ${f(x.pct, 1).padStart(5)}%  ${x.fn}`)
    out.push('  inclusive (event-loop plumbing left out):')
    for (const x of prof.inclusive.slice(0, 12)) out.push(`    ${f(x.pct, 1).padStart(5)}%  ${x.fn}`)
  }
  for (const s of servers) {
    const c = res[s].convergence
    if (Object.keys(c.closes).length) out.push(`  ${s} close codes: ${JSON.stringify(c.closes)}`)
    if (c.examples.length) out.push(`  ${s} not converged, e.g. ${JSON.stringify(c.examples)}`)
  }
}

const targets = (all) => {
  const t = []
  const lc = (k) => all[k]?.livecart
  const rf = (k) => all[k]?.reference
  const add = (id, desc, value, limit, pass, detail) =>
    t.push({ id, target: desc, value, limit, pass, detail })
  if (lc('load1')) {
    const a = lc('load1').latencyMs.p99
    const b = rf('load1')?.latencyMs.p99
    add('load1.p99', 'load1 p99 ≤ 1.5× reference', a, b != null ? 1.5 * b : null,
      b != null && a != null ? a <= 1.5 * b : null,
      b != null ? `${f(a, 2)} ms vs ${f(b, 2)} ms (${f(a / b, 2)}×)` : `${f(a, 2)} ms (no reference run)`)
    const c = lc('load1').cpuSecondsPer1kDelivered
    const d = rf('load1')?.cpuSecondsPer1kDelivered
    add('load1.cpu', 'load1 CPU per 1k delivered ≤ 1.5× reference', c, d != null ? 1.5 * d : null,
      c != null && d != null ? c <= 1.5 * d : null,
      d != null ? `${f(c, 4)} s vs ${f(d, 4)} s (${f(c / d, 2)}×)` : `${f(c, 4)} s (no reference run)`)
  }
  if (lc('load2')) {
    const r = lc('load2')
    add('load2.converged', 'load2 converged', r.convergence.converged, r.convergence.carts,
      r.convergence.allConverged, `${r.convergence.converged}/${r.convergence.carts} carts, ${fmtInt(r.lost)} lost`)
    add('load2.p99', 'load2 p99 < 100 ms', r.latencyMs.p99, 100, r.latencyMs.p99 != null && r.latencyMs.p99 < 100,
      `${f(r.latencyMs.p99, 2)} ms`)
  }
  if (lc('load3')) {
    const v = lc('load3').rss.perConnectionKiB
    add('load3.rss', 'load3 ≤ 60 KB RSS per client', v, 60, v <= 60,
      `${f(v, 1)} KiB` + (rf('load3') ? ` (reference ${f(rf('load3').rss.perConnectionKiB, 1)} KiB)` : ''))
  }
  if (lc('load4')) {
    const v = lc('load4').sync.allSyncedMs
    add('load4.sync', 'load4 all synced < 0.5 s', v, 500, v != null && v < 500,
      `${f(v, 0)} ms` + (rf('load4') ? ` (reference ${f(rf('load4').sync.allSyncedMs, 0)} ms)` : ''))
  }
  return t
}

// -- main ------------------------------------------------------------------------------------------
let livecartSnapshot = null
let livecartSource = 'installed working tree'

/** Exports server/ and crdt/ of a commit as the package livecart.{server,crdt} under runDir. */
const exportSnapshot = (rev) => {
  const sha = execSync(`git rev-parse --verify ${JSON.stringify(rev + '^{commit}')}`, { cwd: repo }).toString().trim()
  const dir = path.join(runDir, 'livecart-src')
  fs.mkdirSync(path.join(dir, 'livecart'), { recursive: true })
  execSync(`git archive ${sha} server crdt | tar -x -C ${JSON.stringify(path.join(dir, 'livecart'))}`, { cwd: repo })
  return { dir, sha }
}

// -- scale-out mode (--scaleout 1,2,3) -------------------------------------------------------------
/** FNV-1a of the cart id: the same cart always lands on the same process, as with a balancer hashing the URI. */
const cartHash = (id) => {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0
  return h
}
function routeFor (cartId, clientIdx, n) {
  return opt.route === 'client' ? clientIdx % n : cartHash(cartId) % n
}

const scaleoutConfigs = (list) => {
  const ns = list.split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    const n = Number(x)
    if (!Number.isInteger(n) || n < 1 || n > 16) { console.error(`bad --scaleout entry ${x}`); process.exit(2) }
    return n
  })
  const hp = opt.haproxy ? ', HAProxy' : ''
  return [{ name: `1 proc, SQLite${hp}`, processes: 1, redis: false, haproxy: opt.haproxy },
    ...ns.map((n) => ({ name: `${n} proc${n > 1 ? 's' : ''}, Redis${hp}`, processes: n, redis: true, haproxy: opt.haproxy }))]
}

const printScaleout = (rows, out) => {
  const r0 = rows[0].r
  const p = r0.params
  out.push('', `load1 scale-out: ${fmtInt(p.carts)} carts × ${p.clientsPerCart} clients × ${p.rate} updates/s, ` +
    `${f(r0.window.seconds, 0)} s window — ${fmtInt(p.clients)} clients in ${p.workers} client worker process(es); ` +
    (opt.haproxy ? 'every client through HAProxy (deploy/haproxy/livecart.cfg: consistent hash of the cart id)'
      : opt.route === 'client' ? 'client i of a cart on process i % N' : 'every client of a cart on one process (hash of the cart id)') +
    (r0.combined ? ` — ${r0.combined}` : ''))
  const cols = [
    ['processes', 15, (c) => c.name],
    ['delivered/s', 12, (c, r) => f(r.deliveredPerSecond, 0)],
    ['p50 ms', 8, (c, r) => f(r.latencyMs.p50, 2)],
    ['p95 ms', 8, (c, r) => f(r.latencyMs.p95, 2)],
    ['p99 ms', 8, (c, r) => f(r.latencyMs.p99, 2)],
    ['lost', 14, (c, r) => `${fmtInt(r.lost)}/${fmtInt(r.window.expected)}`],
    ['superseded', 14, (c, r) => `${fmtInt(r.superseded)}/${fmtInt(r.window.expected)}`],
    ['converged', 10, (c, r) => `${r.convergence.converged}/${r.convergence.carts}`],
    ['srv CPU-s/1k', 13, (c, r) => f(r.cpuSecondsPer1kDelivered, 4)],
    ['Redis CPU-s/1k', 15, (c, r) => (c.redis ? f(r.redisCpuSecondsPer1kDelivered, 4) : '—')]
  ]
  const line = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(cols[i][1]) : String(v).padStart(cols[i][1]))).join('')
  const hdr = line(cols.map((c) => c[0]))
  out.push(hdr, '-'.repeat(hdr.length))
  for (const { c, r } of rows) out.push(line(cols.map((col) => col[2](c, r))))
  // where the CPU went, per configuration
  const cols2 = [
    ['processes', 15, (c) => c.name],
    ['srv %core', 10, (c, r) => f(r.serverCpuSeconds / r.window.cpuMeasuredSeconds * 100, 0)],
    ['main thr', 9, (c, r) => f(r.serverThreads.mainPctOfCore, 0)],
    ['Redis %core', 12, (c, r) => (c.redis ? f(r.redisCpuSeconds / r.window.cpuMeasuredSeconds * 100, 0) : '—')],
    ['HAProxy %core', 14, (c, r) => (c.haproxy ? f(r.haproxyCpuSeconds / r.window.cpuMeasuredSeconds * 100, 0) : '—')],
    ['clients %core', 14, (c, r) => f(r.clientCpuSeconds / r.window.cpuMeasuredSeconds * 100, 0)],
    ['machine busy %', 15, (c, r) => f(r.machine.busyPct, 0)],
    ['other %core', 12, (c, r) => f(r.machine.otherPctOfCore, 0)],
    ['client ELD p99', 15, (c, r) => f(r.clientEventLoopDelayMs.p99, 1)],
    ['max ms', 9, (c, r) => f(r.latencyMs.max, 1)]
  ]
  const line2 = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(cols2[i][1]) : String(v).padStart(cols2[i][1]))).join('')
  out.push('', line2(cols2.map((c) => c[0])), '-'.repeat(line2(cols2.map((c) => c[0])).length))
  for (const { c, r } of rows) out.push(line2(cols2.map((col) => col[2](c, r))))
  out.push('(% of a core over the measured window incl. drain; srv = all livecart processes summed, ' +
    'main thr = their event-loop threads; client ELD = client worker event-loop delay p99, ms)')
  coresLine(rows.map((x) => x.c), p.workers, out)
  for (const { c, r } of rows) {
    const other = r.machine?.otherPctOfCore
    if (other != null && other > 15) out.push(`  ! ${c.name}: other processes used ${f(other, 0)}% of a core during the window; figures are noisy`)
    if (r.machine?.stealPct > 5) out.push(`  ! ${c.name}: steal ${f(r.machine.stealPct, 0)}%; figures are noisy`)
    if (Object.keys(r.convergence.closes).length) {
      // one entry per reason (the ids in e.g. "missing dependencies (client N)" left out)
      const byReason = {}
      for (const [k, n] of Object.entries(r.convergence.closes)) {
        const key = k.replace(/\(client \d+\)/, '(client …)')
        byReason[key] = (byReason[key] || 0) + n
      }
      out.push(`  ${c.name} close codes: ${JSON.stringify(byReason)}`)
    }
    if (r.convergence.examples.length) out.push(`  ${c.name} not converged, e.g. ${JSON.stringify(r.convergence.examples)}`)
    if (r.sync.failed) out.push(`  ${c.name}: ${r.sync.failed} client(s) failed to sync`)
  }
}

const mainScaleout = async () => {
  if (!fs.existsSync(livecartBin)) throw new Error(`livecart command not found at ${livecartBin}`)
  try { execSync(`${JSON.stringify(opt['redis-bin'])} --version`, { stdio: 'ignore' }) } catch {
    throw new Error(`redis-server not found (${opt['redis-bin']}); use --redis-bin`)
  }
  const configs = scaleoutConfigs(opt.scaleout)
  log(`livecart: ${livecartSource}; scale-out on ${configs.map((c) => c.name).join(' | ')}`)
  if (os.cpus().length <= 2) {
    log(`note: ${os.cpus().length} cores — more than one livecart process competes with Redis and the client workers for CPU`)
  }
  const started = new Date()
  const runs = configs.map(() => [])
  for (let rep = 0; rep < repeat; rep++) {
    const order = configs.map((_, i) => i)
    if (rep % 2) order.reverse()
    for (const i of order) runs[i].push(await runOne('livecart', 1, rep, configs[i]))
  }
  const rows = configs.map((c, i) => ({ c, r: combineRuns(runs[i]) }))
  const out = []
  const cpu = os.cpus()
  out.push(`bench/relay --scaleout — ${started.toISOString()} — ${cpu.length} × ${cpu[0]?.model?.trim()}, node ${process.version}` +
    (quick ? ' — QUICK' : ''))
  let redisVersion = null
  try { redisVersion = execSync(`${JSON.stringify(opt['redis-bin'])} --version`).toString().trim() } catch {}
  out.push(`livecart: ${livecartSource}; ${redisVersion ?? 'redis-server'} (AOF, appendfsync everysec, fresh per row)`)
  printScaleout(rows, out)
  process.stdout.write(out.join('\n') + '\n')

  writeResults(`relay-scaleout-${runStamp}.json`, started, {
    bench: 'relay-scaleout',
    options: { scaleout: opt.scaleout, route: opt.route, duration, scale, workers: nWorkers, repeat, onHand,
      connectConcurrency, drainSeconds: drainMs / 1000, livecartBin, redisBin: opt['redis-bin'] },
    extraVersions: { redis: redisVersion },
    note: 'serverCpuSeconds / cpuSecondsPer1kDelivered / rss / serverThreads are summed over all livecart ' +
      'processes of a row; redisCpuSeconds is utime+stime of the redis-server PID over the same interval',
    rows: rows.map(({ c, r }) => ({ config: c, result: r }))
  })
  if (opt['keep-logs']) log(`logs and data kept in ${runDir}`)
  else cleanupDirs()
}

/**
 * The machine's cores against what one configuration keeps busy (livecart processes, redis-server,
 * haproxy, client workers, this coordinator): a warning when they compete for them.
 */
function coresLine (configs, workers, out) {
  const ncpu = os.cpus().length
  const need = (c) => c.processes + (c.redis ? 1 : 0) + (c.haproxy ? 1 : 0) + workers + 1
  const worst = Math.max(...configs.map(need))
  out.push(`cores: ${ncpu}; the largest configuration runs ${worst} busy processes ` +
    `(livecart × N, redis-server, haproxy, ${workers} client worker(s), this coordinator)`)
  if (worst > ncpu) {
    out.push(`  ! clients and servers compete for ${ncpu} core(s): rows with more processes measure contention as ` +
      'much as scale-out; run it on a machine with ≥ ' + worst + ' cores for capacity figures (ratios from one run here)')
  }
}

// -- capacity mode (--capacity) --------------------------------------------------------------------
/**
 * One configuration's rate steps; held = p99 within the limit (of delivered edits, and of when
 * superseded ones were overwritten in the receivers' view), nothing lost, every cart converged.
 */
const held = (r, limit) => r.latencyMs.p99 != null && r.latencyMs.p99 <= limit && r.lost === 0 &&
  (!r.superseded || (r.accounting.supersededVisibleMs.p99 ?? Infinity) <= limit) &&
  r.convergence.allConverged && r.convergence.complete === r.convergence.carts && !r.sync.failed

const pushbacks = (r) => Object.entries(r.convergence.closes)
  .filter(([k]) => k.startsWith('4429')).reduce((n, [, v]) => n + v, 0)

const mainCapacity = async () => {
  if (!fs.existsSync(livecartBin)) throw new Error(`livecart command not found at ${livecartBin}`)
  const configs = scaleoutConfigs(opt.scaleout ?? '1')
  if (configs.some((c) => c.redis)) {
    try { execSync(`${JSON.stringify(opt['redis-bin'])} --version`, { stdio: 'ignore' }) } catch {
      throw new Error(`redis-server not found (${opt['redis-bin']}); use --redis-bin`)
    }
  }
  const start = num(opt['capacity-start'], 'capacity-start', 0.01)
  const factor = num(opt['capacity-factor'], 'capacity-factor', 1.01)
  const steps = Math.floor(num(opt['capacity-steps'], 'capacity-steps', 1))
  const limit = num(opt['p99-limit'], 'p99-limit', 1)
  const overloads = opt.overload.split(',').map((x) => x.trim()).filter(Boolean).map((x) => num(x, 'overload', 1))
  const started = new Date()
  const head = []
  head.push(`bench/relay --capacity — ${started.toISOString()} — ${os.cpus().length} × ${os.cpus()[0]?.model?.trim()}, node ${process.version}`)
  coresLine(configs, nWorkers, head)
  log(head.join('\n'))
  const results = []
  for (const c of configs) {
    const tried = []
    let best = null
    for (let i = 0, rate = start; i < steps; i++, rate *= factor) {
      const r = await runOne('livecart', 1, 0, { ...c, rate })
      const ok = held(r, limit)
      tried.push({ rate, ok, r })
      log(`${c.name} @ ${f(rate, 2)}/s per client: p99 ${f(r.latencyMs.p99, 1)} ms, lost ${r.lost}, ` +
        `converged ${r.convergence.converged}/${r.convergence.carts} → ${ok ? 'held' : 'did not hold'}`)
      if (!ok) break
      best = { rate, r }
    }
    const over = []
    if (best) {
      for (const m of overloads) {
        const r = await runOne('livecart', 1, 0, { ...c, rate: best.rate * m, convergeMs: 60000 })
        over.push({ multiple: m, rate: best.rate * m, r })
      }
    }
    results.push({ c, tried, best, over, capped: tried.length === steps && tried[tried.length - 1].ok })
  }
  const out = [...head]
  out.push(`livecart: ${livecartSource}; load 1 shape (${results[0].tried[0].r.params.carts} carts × 3 clients), ` +
    `${duration} s windows; a step holds when p99 ≤ ${limit} ms, nothing is lost and every cart converges` +
    (opt.haproxy ? '; clients through HAProxy' : ''))
  const cols = [['configuration', 24], ['edits/s/client', 15], ['edits/s', 9], ['delivered/s', 12],
    ['p50 ms', 8], ['p99 ms', 9], ['lost', 12], ['superseded', 12], ['converged', 10], ['srv %core', 10], ['', 14]]
  const line = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(cols[i][1]) : String(v).padStart(cols[i][1]))).join('')
  out.push('', line(cols.map((x) => x[0])), '-'.repeat(line(cols.map((x) => x[0])).length))
  const row = (name, rate, r, verdict) => line([name, f(rate, 2), f(rate * r.params.clients, 0),
    f(r.deliveredPerSecond, 0), f(r.latencyMs.p50, 1), f(r.latencyMs.p99, 1),
    `${fmtInt(r.lost)}/${fmtInt(r.window.expected)}`, fmtInt(r.superseded), `${r.convergence.converged}/${r.convergence.carts}`,
    f(r.serverCpuSeconds / r.window.cpuMeasuredSeconds * 100, 0), verdict])
  for (const { c, tried } of results) for (const t of tried) out.push(row(c.name, t.rate, t.r, t.ok ? 'held' : 'DID NOT HOLD'))
  out.push('', 'Capacity (highest rate that held):')
  const base = results[0].best
  for (const { c, best, capped } of results) {
    if (!best) { out.push(`  ${c.name.padEnd(24)} none: the first step (${f(start, 2)}/s per client) did not hold`); continue }
    const edits = best.rate * best.r.params.clients
    out.push(`  ${c.name.padEnd(24)} ${f(edits, 0)} edits/s (${f(best.rate, 2)}/s per client), ` +
      `${f(best.r.deliveredPerSecond, 0)} delivered/s, p99 ${f(best.r.latencyMs.p99, 1)} ms` +
      (base && c !== results[0].c ? ` — ${f(best.rate / base.rate, 2)}× ${results[0].c.name}` : '') +
      (capped ? ` (at least: the last of --capacity-steps ${steps} still held)` : ''))
  }
  if (results.some((x) => x.over.length)) {
    out.push('', 'Past capacity (rate = multiple × the capacity above; lost must be 0):')
    const oc = [['configuration', 24], ['load', 6], ['edits/s', 9], ['accepted/s', 11], ['p99 ms', 9],
      ['superseded', 12], ['lost', 8], ['converged', 10], ['converge after', 15], ['4429s', 7]]
    const ol = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(oc[i][1]) : String(v).padStart(oc[i][1]))).join('')
    out.push(ol(oc.map((x) => x[0])), '-'.repeat(ol(oc.map((x) => x[0])).length))
    for (const { c, over } of results) {
      for (const { multiple, rate, r } of over) {
        out.push(ol([c.name, `${multiple}×`, f(rate * r.params.clients, 0),
          // accepted edits/s: each accepted edit reaches the cart's other clients
          f(r.deliveredPerSecond / Math.max(1, r.params.clientsPerCart - 1), 0), f(r.latencyMs.p99, 1),
          fmtInt(r.superseded), fmtInt(r.lost), `${r.convergence.converged}/${r.convergence.carts}`,
          r.convergedAfterLoadMs == null ? 'never (60 s)' : `${fmtInt(r.convergedAfterLoadMs)} ms`, pushbacks(r)]))
      }
    }
    out.push('(accepted/s = edits that reached the other clients of their cart, per second of the window; ' +
      'superseded = intermediate edits a peer never saw because it saw a later edit of the same line (merged away, ' +
      'allowed); lost = (edit, peer) pairs neither seen nor superseded once drained, or a last edit missing; ' +
      'converge after = from the end of the window, when the load drops, to every cart identical with every last edit)')
  }
  process.stdout.write(out.join('\n') + '\n')
  writeResults(`relay-capacity-${runStamp}.json`, started, {
    bench: 'relay-capacity',
    options: { scaleout: opt.scaleout ?? '1', haproxy: opt.haproxy, start, factor, steps, p99LimitMs: limit, overloads,
      duration, scale, workers: nWorkers, onHand, livecartBin },
    extraVersions: {},
    configurations: results.map(({ c, tried, best, over }) => ({ config: c, capacityRatePerClient: best?.rate ?? null,
      steps: tried.map((t) => ({ rate: t.rate, held: t.ok, result: t.r })), overload: over }))
  })
  if (opt['keep-logs']) log(`logs and data kept in ${runDir}`)
  else cleanupDirs()
}

/** Writes one run's JSON: what ran, on which machine and versions, then the bench's own fields. */
function writeResults (fileName, started, { bench, options, extraVersions, ...rest }) {
  let gitRev = null
  try { gitRev = execSync('git rev-parse --short HEAD', { cwd: repo, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() } catch {}
  const cpu = os.cpus()
  const doc = {
    bench,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    quick,
    options,
    machine: { cpus: cpu.length, cpuModel: cpu[0]?.model, memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
      node: process.version, platform: `${os.platform()} ${os.release()}` },
    versions: { livecartGit: gitRev, livecartSource, yjs: pkgVersion('yjs'), 'y-websocket': pkgVersion('y-websocket'),
      ws: pkgVersion('ws'), ...extraVersions },
    ...rest
  }
  const outFile = opt.out || path.join(resultsDir, fileName)
  fs.mkdirSync(path.dirname(outFile), { recursive: true })
  fs.writeFileSync(outFile, JSON.stringify(doc, null, 2) + '\n')
  log(`results written to ${path.relative(process.cwd(), outFile) || outFile}`)
}

function pkgVersion (name) {
  try { return require(`${name}/package.json`).version } catch { return null }
}

/** Which livecart code is benched: a commit exported with --livecart-rev, or the working tree. */
const pickLivecartSource = () => {
  if (opt['livecart-rev']) {
    const { dir, sha } = exportSnapshot(opt['livecart-rev'])
    livecartSnapshot = dir
    livecartSource = `git ${sha.slice(0, 12)} (${opt['livecart-rev']})`
    return
  }
  try {
    const dirty = execSync('git status --porcelain -- server crdt', { cwd: repo }).toString().trim()
    const sha = execSync('git rev-parse --short=12 HEAD', { cwd: repo }).toString().trim()
    livecartSource = `working tree at ${sha}${dirty ? ' + uncommitted changes in server/ or crdt/' : ''}`
  } catch {}
}

const main = async () => {
  if (opt.capacity) {
    pickLivecartSource()
    return mainCapacity()
  }
  if (opt.scaleout) {
    pickLivecartSource()
    return mainScaleout()
  }
  if (serversWanted.includes('livecart') && !fs.existsSync(livecartBin)) {
    throw new Error(`livecart command not found at ${livecartBin} (use --livecart-bin or LIVECART_BIN)`)
  }
  pickLivecartSource()
  log(`livecart: ${livecartSource}`)
  const started = new Date()
  const all = {}
  const runs = {}
  for (const l of loadsWanted) {
    const L = LOADS[l]
    all[L.key] = {}
    runs[L.key] = Object.fromEntries(serversWanted.map((s) => [s, []]))
    for (let rep = 0; rep < repeat; rep++) {
      // alternate which server goes first, so neither always runs on a "fresher" machine
      const order = rep % 2 ? [...serversWanted].reverse() : serversWanted
      for (const s of order) runs[L.key][s].push(await runOne(s, l, rep))
    }
    for (const s of serversWanted) all[L.key][s] = combineRuns(runs[L.key][s])
  }

  const out = []
  const cpu = os.cpus()
  out.push(`bench/relay — ${started.toISOString()} — ${cpu.length} × ${cpu[0]?.model?.trim()}, node ${process.version}` +
    (quick ? ' — QUICK' : ''))
  out.push(`livecart: ${livecartSource}; reference: @y/websocket-server ${require('@y/websocket-server/package.json').version} (in memory)`)
  for (const l of loadsWanted) printLoad(LOADS[l], all[LOADS[l].key], out)
  const t = targets(all)
  if (t.length) {
    out.push('', 'Targets (livecart)')
    for (const x of t) {
      const verdict = x.pass == null ? 'n/a ' : x.pass ? 'PASS' : 'MISS'
      out.push(`  ${verdict}  ${x.target.padEnd(46)} ${x.detail}`)
    }
  }
  process.stdout.write(out.join('\n') + '\n')

  writeResults(`relay-${runStamp}.json`, started, {
    bench: 'relay',
    options: { loads: loadsWanted, servers: serversWanted, duration, settle, scale, workers: nWorkers, repeat, onHand,
      connectConcurrency, drainSeconds: drainMs / 1000, livecartBin },
    extraVersions: { '@y/websocket-server': pkgVersion('@y/websocket-server') },
    loads: Object.fromEntries(Object.entries(all).map(([k, v]) => {
      const ratios = {}
      if (v.livecart && v.reference) {
        const L = Object.values(LOADS).find((x) => x.key === k)
        for (const row of rowsFor(L, v.livecart)) {
          let a, b
          try { a = row.fn(v.livecart); b = row.fn(v.reference) } catch {}
          ratios[row.name] = ratio(a, b)
        }
      }
      return [k, { ...v, ratios }]
    })),
    targets: t
  })
  if (opt['keep-logs']) log(`logs and data kept in ${runDir}`)
  else cleanupDirs()
}

main().then(() => process.exit(0), fail)
