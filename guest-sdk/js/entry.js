// The entry worker's side of the SDK: serves a Cloudflare-style Worker,
// `export default { async fetch(request, env, ctx) { … } }`, from a component
// of world `dohost:entry/entry` (wit/entry): wasi:http/proxy plus dohost's
// `env` and `namespaces`. Build it with componentize-js with its default
// features (http and fetch-event on), from a shim that calls
// `serveWorker(worker)` at its top level (scripts/build-polyglot.sh writes it).
//
// - `env`: the manifest's vars and secrets (strings) and one
//   DurableObjectNamespace per `[bindings]` entry (`env.COUNTER.getByName(n)`;
//   stubs have `fetch(request)` and the class's RPC methods).
// - A WebSocket upgrade forwarded to an object (`return stub.fetch(request)`,
//   also as `new Request(url, request)`) becomes the object's hibernatable
//   socket when the object accepts it: the host restores the handshake
//   headers that the Request constructor drops, and answers the client's 101.
// - `ctx.waitUntil(promise)`: the request's instance lives until it settles.
// - `fetch()` to the outside world goes through the host's egress policy
//   (`[entry] allow`); a denied host fails with a TypeError (NetworkError).
// - An exception that escapes `fetch` answers 500 with its message.
//
// One instance per request (a FetchEvent is one-shot): module state does
// not survive between requests, as on Cloudflare where it may not either.

import { buildEnv } from './env.js';
import { errorMessage } from './error.js';
import { Response } from './http.js';

/**
 * A stub's answer as the platform's Response, but for a WebSocket accepted
 * by the object: a 101, which the platform's constructor refuses. The entry
 * returns it as it is (`return stub.fetch(request)`); once an object has
 * accepted the connection the host answers the client's upgrade itself.
 */
function stubResponse(body, init) {
  return init.status === 101 ? new Response(body, init) : new globalThis.Response(body, init);
}

/** Serves `worker.fetch` for every request the host hands the entry. */
export function serveWorker(worker) {
  if (worker === null || typeof worker !== 'object' || typeof worker.fetch !== 'function') {
    throw new TypeError('serveWorker: the Worker module must `export default { async fetch(request, env, ctx) { … } }`');
  }
  addEventListener('fetch', (event) => {
    const ctx = {
      waitUntil: (promise) => event.waitUntil(promise),
      passThroughOnException() {},
    };
    event.respondWith(
      (async () => {
        try {
          return await worker.fetch(event.request, buildEnv({}, stubResponse), ctx);
        } catch (e) {
          console.error(`dohost entry: fetch threw ${e && e.stack ? `${errorMessage(e)}\n${e.stack}` : errorMessage(e)}`);
          return new globalThis.Response(JSON.stringify({ error: `the entry threw ${errorMessage(e)}` }), {
            status: 500,
            headers: { 'content-type': 'application/json' },
          });
        }
      })(),
    );
  });
}
