/**
 * A socket closes with 4401 when its token expires (issue 16). A stock y-websocket provider
 * stops there (44xx are final by default); with a `shouldReconnect` that puts a fresh token
 * into `provider.params`, it reconnects and edits on.
 */
import assert from 'node:assert/strict'
import { after, afterEach, before, describe, test } from 'node:test'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { LivecartServer, addLine, mintToken, waitFor } from './helpers.mjs'

describe('token expiry on an open socket', { timeout: 60_000 }, () => {
  /** @type {LivecartServer} */
  let server
  const providers = []

  before(async () => {
    server = await LivecartServer.start()
    await server.putProduct('mug', { name: 'Mug', price: 900 })
  })

  afterEach(() => {
    for (const provider of providers.splice(0)) {
      provider.destroy()
      provider.doc.destroy() // its awareness timer goes with it
    }
  })

  after(async () => {
    await server?.dispose()
  })

  test('the stock provider is closed with 4401 at exp and reconnects with a fresh token from its params', async () => {
    const token = (ttlSeconds) => mintToken('dora', 'customer', { secret: server.secret, ttlSeconds })
    const cartId = await server.createCart(token(3600))
    const closes = []
    const provider = new WebsocketProvider(server.wsUrl, cartId, new Y.Doc(), {
      params: { token: token(2) },
      WebSocketPolyfill: WebSocket,
      disableBc: true,
      shouldReconnect: (event, p) => {
        closes.push({ code: event.code, reason: String(event.reason) })
        if (event.code !== 4401) return !(event.code >= 4400 && event.code < 4500)
        p.params = { ...p.params, token: token(3600) } // the app's fresh token
        return true
      }
    })
    providers.push(provider)
    await waitFor(() => provider.synced, 'the first sync')
    await waitFor(() => closes.length > 0, 'the close at the token\'s exp', 30_000)
    assert.deepEqual(closes[0], { code: 4401, reason: 'token expired' })
    await waitFor(() => provider.synced && provider.wsconnected, 'the reconnect with the fresh token', 15_000)
    const line = addLine(provider.doc, 'mug')
    await waitFor(async () => line in (await server.getCart(cartId, token(60))).lines, 'the edit made after it')
    assert.equal(closes.length, 1)
  })
})
