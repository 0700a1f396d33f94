/**
 * Awareness a stock client cannot parse (issue 16, item 4): a raw socket sends a state of NaN;
 * the server closes it with 4400 and relays nothing, so stock y-websocket providers in the same
 * cart (whose applyAwarenessUpdate would throw on it, ending a Node process) keep going.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, afterEach, before, describe, test } from 'node:test'
import * as encoding from 'lib0/encoding'
import WebSocket from 'ws'
import { Clients, LivecartServer, mintToken, waitFor } from './helpers.mjs'

/** An awareness message (type 1) whose one entry carries `stateText` as its JSON, unchecked. */
function rawAwareness (clientId, clock, stateText) {
  const update = encoding.createEncoder()
  encoding.writeVarUint(update, 1)
  encoding.writeVarUint(update, clientId)
  encoding.writeVarUint(update, clock)
  encoding.writeVarString(update, stateText)
  const message = encoding.createEncoder()
  encoding.writeVarUint(message, 1)
  encoding.writeVarUint8Array(message, encoding.toUint8Array(update))
  return encoding.toUint8Array(message)
}

describe('awareness a stock provider cannot parse', { timeout: 60_000 }, () => {
  /** @type {LivecartServer} */
  let server
  const clients = new Clients()
  const uncaught = []
  const onUncaught = (err) => uncaught.push(err)

  before(async () => {
    server = await LivecartServer.start()
    process.on('uncaughtException', onUncaught)
  })

  afterEach(() => clients.destroyAll())

  after(async () => {
    process.off('uncaughtException', onUncaught)
    clients.destroyAll()
    await server?.dispose()
  })

  for (const state of ['NaN', '{"user":{"name":NaN}}', 'Infinity', '5']) {
    test(`a state of ${state} closes its sender with 4400 and reaches no stock provider`, async () => {
      const bearer = mintToken('ann', 'customer', { secret: server.secret })
      const cartId = await server.createCart(bearer)
      const a = await clients.synced(server, cartId, bearer)
      const b = await clients.synced(server, cartId, bearer)
      a.awareness.setLocalStateField('user', { name: 'Ann' })
      await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ann', "b to see a's presence")

      const raw = new WebSocket(`${server.wsUrl}/${cartId}?token=${bearer}`)
      await once(raw, 'open')
      raw.send(rawAwareness(4_000_000_001, 1, state))
      const [code, reason] = await once(raw, 'close')
      assert.equal(code, 4400)
      assert.match(String(reason), /awareness/)

      a.awareness.setLocalStateField('user', { name: 'Ann again' })
      await waitFor(() => b.awareness.getStates().get(a.awareness.clientID)?.user?.name === 'Ann again',
        "b to see a's next presence")
      assert.deepEqual(uncaught, [], 'no provider threw on what the server relayed')
      assert.ok(a.wsconnected && b.wsconnected)
      assert.ok(!b.awareness.getStates().has(4_000_000_001))
    })
  }
})
