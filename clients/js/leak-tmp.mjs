import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { mintToken, sleep } from '/work/main/clients/js/test/helpers.mjs'
const tok = mintToken('zed', 'customer')
const cartId = (await (await fetch('http://127.0.0.1:18931/api/carts', {method: 'POST', headers: {authorization: 'Bearer ' + tok}, body: '{"channel":"web"}'})).json()).cartId
for (const withAwareness of [true, false]) {
  const p = new WebsocketProvider('ws://127.0.0.1:18931/ws/carts', cartId, new Y.Doc(), {params: {token: tok}, WebSocketPolyfill: WebSocket, disableBc: true})
  if (withAwareness) p.awareness.setLocalStateField('user', {name: 'z'})
  await sleep(300); p.destroy(); await sleep(1200)
  console.log({withAwareness}, await (await fetch('http://127.0.0.1:18931/healthz')).json())
}
