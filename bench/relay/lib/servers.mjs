// Starting, measuring and stopping the two servers under test.
import { spawn, execSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { freePort, mintJwt, pool, sleep } from './util.mjs'

const require = createRequire(import.meta.url)

/** Every child process still alive, so that exit handlers can kill them. */
export const children = new Set()

export const killAll = (signal = 'SIGKILL') => {
  for (const child of children) {
    try { child.kill(signal) } catch {}
  }
}

let clkTck = null
export const clockTicks = () => {
  if (clkTck == null) {
    try { clkTck = Number(execSync('getconf CLK_TCK').toString().trim()) || 100 } catch { clkTck = 100 }
  }
  return clkTck
}

/** utime+stime of a process (all its threads), in seconds. */
export const cpuSeconds = (pid) => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // after "pid (comm) ": state is fields[0]; utime is field 14 overall → index 11 here
  return (Number(fields[11]) + Number(fields[12])) / clockTicks()
}

/** utime+stime of each thread of a process, in seconds: {tid: {comm, cpu}}. */
export const threadCpu = (pid) => {
  const out = {}
  let tids = []
  try { tids = fs.readdirSync(`/proc/${pid}/task`) } catch { return out }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out[tid] = { comm, cpu: (Number(f[11]) + Number(f[12])) / clockTicks() }
    } catch {}
  }
  return out
}

/** VmRSS of a process in KiB. */
export const rssKiB = (pid) => {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m)
  return m ? Number(m[1]) : null
}

const logTail = (file, n = 6) => {
  try { return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).map((l) => '    ' + l).join('\n') } catch { return '' }
}

const waitHttp = async (url, child, timeoutMs = 20000, logFile = null) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode != null) {
      throw new Error(`server exited with code ${child.exitCode} before it listened` +
        (logFile ? `; the end of ${logFile}:\n${logTail(logFile)}` : ''))
    }
    try {
      const res = await fetch(url)
      if (res.ok) return
    } catch {}
    await sleep(100)
  }
  throw new Error(`server did not answer ${url} within ${timeoutMs} ms`)
}

const startProcess = (cmd, args, env, logFile) => {
  const log = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  children.add(child)
  child.on('exit', () => children.delete(child))
  return child
}

const stopProcess = async (child) => {
  if (child.exitCode != null || child.signalCode != null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

const SKUS = ['bench-mug', 'bench-tee', 'bench-cap', 'bench-pen', 'bench-bag']
export const skuFor = (i) => SKUS[i % SKUS.length]

/**
 * livecart: `livecart serve` on a fresh data dir. Setup creates the catalog (admin token)
 * and each cart (POST /api/carts with its owner's customer token).
 */
export class Livecart {
  constructor ({ bin, pythonPath = null, runDir, tag, maxMessagesPerSecond = 1000, onHand = 1000000,
    secret = null, extraArgs = [], setup = true }) {
    this.onHand = onHand
    this.name = 'livecart'
    this.bin = bin
    this.pythonPath = pythonPath // a snapshot of livecart's sources to run instead of the installed tree
    this.runDir = runDir
    this.tag = tag
    this.secret = secret || 'bench-' + Math.random().toString(36).slice(2)
    this.maxMps = maxMessagesPerSecond
    this.extraArgs = extraArgs // e.g. --store/--bus redis://… (scale-out)
    this.setup = setup // create the catalog and stock (once per shared store)
  }

  async start () {
    this.port = await freePort()
    this.dataDir = fs.mkdtempSync(path.join(this.runDir, `livecart-${this.tag}-data-`))
    this.logFile = path.join(this.runDir, `livecart-${this.tag}.log`)
    this.stockSet = null
    // With a snapshot: the venv's python, `-m livecart.server.cli`, the snapshot first on the path.
    const [cmd, pre, env] = this.pythonPath
      ? [path.join(path.dirname(this.bin), 'python'), ['-m', 'livecart.server.cli'], { PYTHONPATH: this.pythonPath }]
      : [this.bin, [], {}]
    this.child = startProcess(cmd, [...pre,
      'serve', '--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir,
      '--jwt-secret', this.secret, '--max-messages-per-second', String(this.maxMps),
      '--log-level', 'warning', ...this.extraArgs
    ], env, this.logFile)
    this.pid = this.child.pid
    this.base = `http://127.0.0.1:${this.port}`
    this.wsUrl = `ws://127.0.0.1:${this.port}/ws/carts`
    await waitHttp(`${this.base}/healthz`, this.child, 20000, this.logFile)
    this.admin = mintJwt(this.secret, 'bench-admin', 'admin', 6 * 3600)
    if (this.setup) await this.setupCatalog()
  }

  /** The bench's products, and their stock (`onHand`). */
  async setupCatalog () {
    for (let i = 0; i < SKUS.length; i++) {
      await this.http('PUT', `/api/catalog/${SKUS[i]}`, this.admin, { name: SKUS[i], price: 900 + i })
    }
    // Plenty of stock, so that every line gets a real hold (as in a shop), not 'unavailable'.
    // A server without the stock routes (older revisions) answers 404/405: then there is none.
    this.stockSet = false
    if (this.onHand > 0) {
      for (const sku of SKUS) {
        const res = await fetch(`${this.base}/api/stock/${sku}`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${this.admin}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ onHand: this.onHand })
        })
        await res.text()
        if (res.status === 404 || res.status === 405) break
        if (!res.ok) throw new Error(`PUT /api/stock/${sku} → ${res.status}`)
        this.stockSet = true
      }
    }
  }

  async http (method, route, token, body) {
    const res = await fetch(this.base + route, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body == null ? undefined : JSON.stringify(body)
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${text}`)
    return text ? JSON.parse(text) : null
  }

  /** Creates `n` carts; returns [{cartId, token}] (the owner's customer token). */
  async createCarts (n, prefix) {
    return pool(Array.from({ length: n }, (_, i) => i), 16, async (i) => {
      const token = mintJwt(this.secret, `${prefix}-owner-${i}`, 'customer', 6 * 3600)
      const { cartId } = await this.http('POST', '/api/carts', token, { channel: 'web' })
      return { cartId, token }
    })
  }

  async stop () { if (this.child) await stopProcess(this.child) }
  cleanup () { if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true }) }

  version () {
    try {
      const py = path.join(path.dirname(this.bin), 'python')
      return execSync(`${py} -c "import importlib.metadata as m; print(m.version('livecart'))"`).toString().trim()
    } catch { return null }
  }
}

/**
 * A redis-server of our own (from the binary) on a free loopback port, with a temp --dir,
 * no RDB snapshots, AOF with fsync every second. Killed by stop() (and by killAll on exit).
 */
export class RedisServer {
  constructor ({ runDir, tag, bin = 'redis-server' }) {
    this.runDir = runDir
    this.tag = tag
    this.bin = bin
  }

  async start () {
    this.port = await freePort()
    this.dir = fs.mkdtempSync(path.join(this.runDir, `redis-${this.tag}-`))
    this.logFile = path.join(this.runDir, `redis-${this.tag}.log`)
    this.child = startProcess(this.bin, ['--port', String(this.port), '--bind', '127.0.0.1',
      '--dir', this.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--protected-mode', 'no', '--daemonize', 'no', '--logfile', ''], {}, this.logFile)
    this.pid = this.child.pid
    this.url = `redis://127.0.0.1:${this.port}/0`
    const deadline = Date.now() + 10000
    while (!(await this.ping())) {
      if (this.child.exitCode != null) {
        throw new Error(`redis-server exited with code ${this.child.exitCode}:\n${logTail(this.logFile)}`)
      }
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING within 10 s')
      await sleep(100)
    }
  }

  ping () {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1', () => socket.write('PING\r\n'))
      const done = (ok) => { socket.destroy(); resolve(ok) }
      socket.setTimeout(1000, () => done(false))
      socket.on('data', (d) => done(String(d).startsWith('+PONG')))
      socket.on('error', () => done(false))
    })
  }

  async stop () { if (this.child) await stopProcess(this.child) }
  cleanup () { if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true }) }
}

/**
 * N `livecart serve` processes sharing one store and bus. With `redis: true` a fresh
 * redis-server is started first and every process gets `--store/--bus redis://…`; without,
 * a single process on its embedded SQLite (the default). The catalog, stock and carts are
 * created through process 0 (the store is shared). Client i of a cart is meant to connect to
 * `wsUrls[i % N]`. `pids` are the livecart processes, `redisPid` the redis-server (or null).
 */
export class LivecartCluster {
  constructor ({ processes, redis, redisBin = 'redis-server', bin, pythonPath = null, runDir, tag, onHand = 1000000,
    haproxyBin = null }) {
    if (!redis && processes !== 1) throw new Error('more than one livecart process needs Redis')
    this.haproxyBin = haproxyBin // clients go through a real HAProxy on deploy/haproxy/livecart.cfg
    this.name = 'livecart'
    this.n = processes
    this.useRedis = redis
    this.opts = { bin, pythonPath, runDir, onHand }
    this.tag = tag
    this.redisBin = redisBin
    this.secret = 'bench-' + Math.random().toString(36).slice(2)
    this.redis = null
    this.procs = []
  }

  async start () {
    let extraArgs = []
    if (this.useRedis) {
      this.redis = new RedisServer({ runDir: this.opts.runDir, tag: this.tag, bin: this.redisBin })
      await this.redis.start()
      extraArgs = ['--store', this.redis.url, '--bus', this.redis.url]
    }
    this.procs = Array.from({ length: this.n }, (_, i) => new Livecart({
      ...this.opts, tag: `${this.tag}-p${i}`, secret: this.secret, extraArgs, setup: false
    }))
    await Promise.all(this.procs.map((p) => p.start()))
    // catalog + stock once, through process 0 (shared store)
    const p0 = this.procs[0]
    p0.setup = true
    await p0.setupCatalog()
    this.stockSet = p0.stockSet
    this.pid = p0.pid
    this.pids = this.procs.map((p) => p.pid)
    this.wsUrl = p0.wsUrl
    this.wsUrls = this.procs.map((p) => p.wsUrl)
    this.redisPid = this.redis?.pid ?? null
    if (this.haproxyBin) {
      this.proxy = new HAProxy({ runDir: this.opts.runDir, tag: this.tag, bin: this.haproxyBin, backends: this.procs })
      await this.proxy.start()
      this.proxyPid = this.proxy.pid
      this.clientUrl = this.proxy.wsUrl // every client through the balancer: it picks the process
    }
  }

  createCarts (n, prefix) { return this.procs[0].createCarts(n, prefix) }

  async stop () {
    if (this.proxy) await this.proxy.stop()
    await Promise.all(this.procs.map((p) => p.stop()))
    if (this.redis) await this.redis.stop()
  }

  cleanup () {
    for (const p of this.procs) p.cleanup()
    this.redis?.cleanup()
  }
}

/** deploy/haproxy/livecart.cfg with one `server appN` line per backend (the file lists app1, app2). */
export const haproxyConfig = (n) => {
  const cfg = fs.readFileSync(HAPROXY_CFG, 'utf8').split('\n')
  const out = []
  for (const line of cfg) {
    const m = line.match(/^(\s*)server app1 "\$\{LIVECART_APP1\}"(.*)$/)
    if (m) {
      for (let i = 1; i <= n; i++) out.push(`${m[1]}server app${i} "\${LIVECART_APP${i}}"${m[2]}`)
    } else if (!/^\s*server app\d+ /.test(line)) out.push(line)
  }
  return out.join('\n')
}
const HAPROXY_CFG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'deploy', 'haproxy', 'livecart.cfg')

/**
 * Debian's haproxy on a free loopback port in front of `backends`, on the shipped
 * deploy/haproxy/livecart.cfg (as tests/server/test_haproxy.py starts it: `haproxy -db -f`, the
 * addresses from LIVECART_BIND / LIVECART_APP<i>). start() returns once its health checks have
 * every backend up (the response header X-Livecart-Server names each).
 */
export class HAProxy {
  constructor ({ runDir, tag, bin = 'haproxy', backends }) {
    Object.assign(this, { runDir, tag, bin, backends })
  }

  async start () {
    this.port = await freePort()
    this.logFile = path.join(this.runDir, `haproxy-${this.tag}.log`)
    this.cfgFile = path.join(this.runDir, `haproxy-${this.tag}.cfg`)
    fs.writeFileSync(this.cfgFile, haproxyConfig(this.backends.length))
    const env = { LIVECART_BIND: `127.0.0.1:${this.port}` }
    this.backends.forEach((b, i) => { env[`LIVECART_APP${i + 1}`] = `127.0.0.1:${b.port}` })
    this.child = startProcess(this.bin, ['-db', '-f', this.cfgFile], env, this.logFile)
    this.pid = this.child.pid
    this.base = `http://127.0.0.1:${this.port}`
    this.wsUrl = `ws://127.0.0.1:${this.port}/ws/carts`
    const want = this.backends.length
    const deadline = Date.now() + 30000
    for (;;) {
      if (this.child.exitCode != null) throw new Error(`haproxy exited with ${this.child.exitCode}:\n${logTail(this.logFile)}`)
      const seen = new Set()
      for (let i = 0; i < 2 * want; i++) {
        try {
          const res = await fetch(`${this.base}/healthz`)
          await res.text()
          if (res.ok) seen.add(res.headers.get('x-livecart-server'))
        } catch {}
      }
      if (seen.size >= want) return
      if (Date.now() > deadline) throw new Error(`haproxy saw ${seen.size}/${want} backends up within 30 s`)
      await sleep(250)
    }
  }

  async stop () { if (this.child) await stopProcess(this.child) }
}

/** @y/websocket-server's own server.js, in memory (no YPERSISTENCE), on HOST/PORT. */
export class Reference {
  constructor ({ runDir, tag }) {
    this.name = 'reference'
    this.runDir = runDir
    this.tag = tag
  }

  async start () {
    this.port = await freePort()
    this.logFile = path.join(this.runDir, `reference-${this.tag}.log`)
    const script = path.join(path.dirname(require.resolve('@y/websocket-server/package.json')), 'src', 'server.js')
    // in memory: no YPERSISTENCE, no CALLBACK_URL (undefined values are left out of the env)
    const env = { HOST: '127.0.0.1', PORT: String(this.port), YPERSISTENCE: undefined, CALLBACK_URL: undefined }
    this.child = startProcess(process.execPath, [script], env, this.logFile)
    this.pid = this.child.pid
    this.base = `http://127.0.0.1:${this.port}`
    this.wsUrl = `ws://127.0.0.1:${this.port}/ws/carts`
    await waitHttp(this.base, this.child, 20000, this.logFile)
  }

  /** No auth and no cart registry: a cart is just a room name. */
  async createCarts (n, prefix) {
    return Array.from({ length: n }, (_, i) => ({
      cartId: `c-${prefix}-${i}-${Math.random().toString(36).slice(2, 10)}`,
      token: 'unused'
    }))
  }

  async stop () { if (this.child) await stopProcess(this.child) }
  cleanup () {}

  version () {
    try { return require('@y/websocket-server/package.json').version } catch { return null }
  }
}

/** bench/relay/floor.py: the reference's relay in Python (aiohttp + pycrdt), then with
 * livecart's store (`store`) and validator (`validate`) added; the server is named py-<step>. */
export class Floor extends Reference {
  constructor ({ python, pythonPath = null, runDir, tag, step }) {
    super({ runDir, tag })
    this.name = `py-${step}`
    this.python = python
    this.pythonPath = pythonPath
    this.step = step
  }

  async start () {
    this.port = await freePort()
    this.logFile = path.join(this.runDir, `${this.name}-${this.tag}.log`)
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'floor.py')
    this.child = startProcess(this.python, [script, '--port', String(this.port), '--step', this.step],
      this.pythonPath ? { PYTHONPATH: this.pythonPath } : {}, this.logFile)
    this.pid = this.child.pid
    this.base = `http://127.0.0.1:${this.port}`
    this.wsUrl = `ws://127.0.0.1:${this.port}/ws/carts`
    await waitHttp(this.base, this.child, 20000, this.logFile)
  }

  version () { return null }
}

/** Machine-wide CPU jiffies from /proc/stat: {busy, idle, steal, total}. */
export const machineCpu = () => {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0)
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal, total }
}
