/**
 * Scale-out with the unmodified npm y-websocket client: three `livecart serve` processes on one
 * real redis-server (started here from the binary), clients spread over them.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { Socket, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { Clients, LivecartServer, SUITE_TIMEOUT_MS, addLine, linesOf, mintToken, waitFor } from './helpers.mjs'

const MUG = 'mug'

/** A free loopback port. */
function freePort () {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    }).on('error', reject)
  })
}

/** A redis-server child on a free port with its own dir; resolves once it answers PING. */
async function startRedis () {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'livecart-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'yes', '--protected-mode', 'no'], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}/0`
  await waitFor(() => new Promise((resolve) => {
    const socket = createConnectionSafe(port, resolve)
    socket.on('error', () => resolve(false))
  }), 'redis-server to answer')
  return { url, stop: async () => { child.kill('SIGKILL'); await rm(dir, { recursive: true, force: true }) } }
}

function createConnectionSafe (port, resolve) {
  const socket = new Socket()
  socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
  socket.on('data', (data) => { socket.destroy(); resolve(String(data).startsWith('+PONG')) })
  return socket
}

describe('y-websocket clients on three processes sharing Redis', { timeout: SUITE_TIMEOUT_MS }, () => {
  let redis
  /** @type {LivecartServer[]} */
  let servers = []
  const clients = new Clients()
  const token = (sub, role = 'customer') => mintToken(sub, role, { secret: servers[0].secret })

  before(async () => {
    redis = await startRedis()
    const args = ['--store', redis.url, '--bus', redis.url]
    servers = await Promise.all([0, 1, 2].map(() => LivecartServer.start({ args })))
    await servers[0].putProduct(MUG, { name: 'Mug', price: 900 })
  })

  afterEach(() => clients.destroyAll())
  after(async () => {
    clients.destroyAll()
    await Promise.all(servers.map((s) => s.dispose()))
    await redis?.stop()
  })

  test('concurrent edits through two processes converge; a late joiner on a third gets everything', async () => {
    const bearer = token('alice')
    const cartId = await servers[0].createCart(bearer)
    const [a, b] = await Promise.all([clients.synced(servers[0], cartId, bearer), clients.synced(servers[1], cartId, bearer)])
    const ids = []
    for (let i = 0; i < 10; i++) {
      ids.push(addLine(a.doc, MUG, { addedBy: 'alice' }), addLine(b.doc, MUG, { qty: 2, addedBy: 'alice' }))
    }
    const same = () => isDeepStrictEqual(linesOf(a.doc), linesOf(b.doc)) // map order may differ
    await waitFor(() => Object.keys(linesOf(a.doc)).length === 20 && same(), 'both processes to converge')
    const late = await clients.synced(servers[2], cartId, bearer)
    await waitFor(() => ids.every((id) => id in linesOf(late.doc)), 'the late joiner to have every line')
    assert.deepEqual(linesOf(late.doc), linesOf(a.doc))
    await waitFor(() => Object.keys(late.doc.getMap('server').get('holds')?.toJSON() ?? {}).length === 20,
      'every line held, seen from the third process')
  })
})
