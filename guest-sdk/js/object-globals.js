// The globals Cloudflare gives a Durable Object's module, so code written
// against them runs unchanged: `Response` (the SDK's, which allows
// `new Response(null, { status: 101, webSocket })`), `WebSocket` (with
// `READY_STATE_*`; `new WebSocket(url)` — an outbound client — throws),
// `WebSocketPair` and `WebSocketRequestResponsePair`. Installed when index.js
// is loaded (at build time); calls no host import. The entry worker keeps the
// engine's `Response` (it answers 101 only by forwarding an object's).

import { Response } from './http.js';
import { WebSocket, WebSocketPair, WebSocketRequestResponsePair } from './websocket.js';

for (const [name, value] of Object.entries({ Response, WebSocket, WebSocketPair, WebSocketRequestResponsePair })) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}
