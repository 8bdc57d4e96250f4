// The entry worker's side of the SDK: serves a Cloudflare-style Worker,
// `export default { async fetch(request, env, ctx) { … } }`, from a component
// of world `dohost:entry/entry` (wit/entry): wasi:http/proxy plus dohost's
// `env` and `namespaces`. Build it with componentize-js `--disable
// fetch-event`, from a shim that exports `serveWorker(worker)` as
// `incomingHandler` and `reuse` (scripts/build-polyglot.sh writes it).
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
// The instance serves one request after another (it exports `reuse`), as a
// Cloudflare isolate does: module state may survive between requests, or not.
// Timers a request leaves pending are cleared when it ends.

import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingResponse,
  ResponseOutparam,
} from 'wasi:http/types@0.2.10';
import { decoder, encoder } from './bytes.js';
import { buildEnv } from './env.js';
import { errorMessage } from './error.js';
import { runStarted } from './globals.js';
import { Response, requestFromWit } from './http.js';
import { isLazy, resolveLazy } from './lazy.js';
import { clearEventTimers, setEventRunning, setOnParked } from './timers.js';

// A timer set outside a request (by a chain no request awaits) has no event to
// fire in: it is dropped, as the request's own are when it ends.
setOnParked(clearEventTimers);

// wasi:io's blocking-write-and-flush takes at most 4096 bytes per call.
const WRITE_CHUNK = 4096;
const READ_CHUNK = 65536n;
const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade']);
const dispose = (resource) => resource[Symbol.dispose]();

/**
 * A stub's answer as the platform's Response, but for a WebSocket accepted
 * by the object: a 101, which the platform's constructor refuses. The entry
 * returns it as it is (`return stub.fetch(request)`); once an object has
 * accepted the connection the host answers the client's upgrade itself.
 */
function stubResponse(body, init) {
  return init.status === 101 ? new Response(body, init) : new globalThis.Response(body, init);
}

function methodName(method) {
  return method.tag === 'other' ? method.val : method.tag.toUpperCase();
}

/** The whole body of `incoming` (consumed). */
function readBody(incoming) {
  const body = incoming.consume();
  const stream = body.stream();
  const chunks = [];
  let length = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(READ_CHUNK);
    } catch (e) {
      if (e && e.payload && e.payload.tag === 'closed') break;
      throw e;
    }
    chunks.push(chunk);
    length += chunk.length;
  }
  dispose(stream);
  dispose(IncomingBody.finish(body));
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

/** The incoming request as a Request, with every header it came with. */
function requestFromIncoming(incoming) {
  const method = methodName(incoming.method());
  const fields = incoming.headers();
  const headers = fields.entries().map(([name, value]) => [name, decoder.decode(value)]);
  dispose(fields);
  const bodyless = method === 'GET' || method === 'HEAD';
  const body = bodyless ? new Uint8Array(0) : readBody(incoming);
  const url = incoming.pathWithQuery() ?? '/';
  return requestFromWit({ method, url, headers, body });
}

/** Sets `outparam` to the answer `{ status, headers, bytes }` and writes its body. */
function respond(outparam, { status, headers, bytes }) {
  const fields = new Fields();
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name)) continue;
    try {
      fields.append(name, encoder.encode(value));
    } catch {
      // A header wasi:http refuses in a response: skipped, as on the direct route.
    }
  }
  const response = new OutgoingResponse(fields);
  // An accepted upgrade: the host answers the 101 itself.
  response.setStatusCode(status === 101 ? 200 : status);
  const body = response.body();
  ResponseOutparam.set(outparam, { tag: 'ok', val: response });
  const stream = body.write();
  for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
    stream.blockingWriteAndFlush(bytes.subarray(at, at + WRITE_CHUNK));
  }
  dispose(stream);
  OutgoingBody.finish(body, undefined);
}

function failure(message) {
  return {
    status: 500,
    headers: [['content-type', 'application/json']],
    bytes: encoder.encode(JSON.stringify({ error: message })),
  };
}

/** `worker.fetch`'s answer, or a 500 naming what it threw or returned. */
async function answer(worker, request, env, ctx) {
  try {
    const res = await worker.fetch(request, env, ctx);
    if (typeof res !== 'object' || res === null || typeof res.status !== 'number' || !res.headers) {
      return failure(`the entry's fetch must return a Response, got ${res === null ? 'null' : typeof res}`);
    }
    const bytes = res.status === 101 ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, bytes };
  } catch (e) {
    console.error(`dohost entry: fetch threw ${e && e.stack ? e.stack : errorMessage(e)}`);
    return failure(`the entry threw ${errorMessage(e)}`);
  }
}

/**
 * The exports of an entry serving `worker.fetch`: `incomingHandler`
 * (wasi:http) and `reuse` (dohost:entry).
 */
export function serveWorker(workerOrLazy) {
  const check = (worker) => {
    if (worker === null || typeof worker !== 'object' || typeof worker.fetch !== 'function') {
      throw new TypeError('serveWorker: the Worker module must `export default { async fetch(request, env, ctx) { … } }`');
    }
    return worker;
  };
  // `lazy(() => import(…))` (lazy.js): the module runs at the first request.
  let worker = isLazy(workerOrLazy) ? null : check(workerOrLazy);
  // Built at the first request: a host call is not possible at the top level.
  let env = null;
  const incomingHandler = {
    async handle(incoming, outparam) {
      runStarted();
      setEventRunning(true);
      const waiting = [];
      const ctx = {
        waitUntil: (promise) => void waiting.push(Promise.resolve(promise)),
        passThroughOnException() {},
      };
      try {
        worker ??= check(await resolveLazy(workerOrLazy));
        env ??= buildEnv({}, stubResponse);
        const request = requestFromIncoming(incoming);
        dispose(incoming);
        respond(outparam, await answer(worker, request, env, ctx));
        await Promise.allSettled(waiting);
      } finally {
        setEventRunning(false);
        clearEventTimers();
      }
    },
  };
  return { incomingHandler, reuse: { reusable: () => true } };
}
