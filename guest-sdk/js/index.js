// dohost guest SDK for JavaScript (componentize-js 0.23 / StarlingMonkey).
//
// A Durable-Objects-like API over the imports of the WIT world
// `dohost:object/object@0.2.0`. A class module looks like:
//
//   import { DurableObject, Response, exportObject, exportRpc } from '../../../guest-sdk/js/index.js';
//   export class Counter extends DurableObject {
//     constructor(ctx, env) { super(ctx, env); ctx.storage.sql.exec('CREATE TABLE ...'); }
//     async fetch(request) { return new Response('hello'); }
//   }
//   export const handler = exportObject(Counter);              // dohost:object/handler
//   export const counter = exportRpc(Counter, ['increment']);  // an RPC interface, if any
//
// WebSockets (host-owned, hibernatable) as on Cloudflare: in `fetch`,
// `const ws = ctx.acceptWebSocket(tags); return new Response(null, { status: 101 })`;
// then `webSocketMessage(ws, message)`, `webSocketClose(ws, code, reason, wasClean)`,
// `webSocketError(ws, error)`, `ctx.getWebSockets(tag)`, attachments and the
// auto-response pair. See websocket.js for handle lifetimes.
//
// Build it with componentize-js from the repository root (see
// scripts/build-polyglot.sh) with `--disable fetch-event` (wasi:http stays on:
// `fetch()` goes out through the class's egress policy and the output gate,
// see the README's "Outbound HTTP"). Module top levels
// run once at build time (the wizer snapshot): no module of the SDK calls a host
// import at its top level (s64.js and timers.js patch globals there), only from
// handlers.
//
// This file only re-exports; the SDK's modules mirror guest-sdk/src/ of the Rust SDK:
//   error.js     DohostError (`kind`, `message`), host(): an import's error → DohostError
//   sql.js       ctx.storage.sql: SqlStorage, SqlStorageCursor
//   storage.js   ctx.storage: DurableObjectStorage (KV, alarm, transactions, deleteAll)
//   websocket.js WebSocket, WebSocketPair, WebSocketRequestResponsePair
//   stub.js      getNamespace, DurableObjectNamespace, DurableObjectId, stubs
//   state.js     ctx: DurableObjectState
//   http.js      Response, Request, Headers
//   runtime.js   DurableObject, exportObject, exportRpc, timerEvents
//   env.js       `env` (constructor argument, this.env): the manifest's vars and secrets
//   object-globals.js  the globals Cloudflare gives a class: Response, WebSocket, WebSocketPair
//   bytes.js, json.js, s64.js, timers.js: values at the WIT boundary, JSON with
//                BigInts, the s64 workaround and s64(), per-event timers
//
// Type mapping and known componentize-js issues: README.md beside this file.
//
// Errors:
// - every host import that fails throws a `DohostError`: `message` is the host's
//   message, `kind` the case of the WIT error variant ('refused', 'invalid',
//   'quota', 'sql' for storage; 'overloaded', 'timeout', 'cycle',
//   'unknown-class', 'not-found', 'invalid', 'failed' for calls to other objects;
//   'unsupported' when the host does not implement the function; 'other' for
//   WebSocket errors, which are plain strings). `unsupported` and `overloaded`
//   are shorthands for two kinds.
// - a storage failure the object cannot go on after (the database itself, the
//   event's deadline) is not an error but a trap: the host rolls the event back.
// - an exception that escapes `fetch` or an RPC method TRAPS the instance: the host
//   rolls the event back, answers 500 and builds a fresh instance for the next event.
// - an exception that escapes the constructor, `alarm` or a `webSocket*` handler
//   becomes the handler's `err(string)`: init → 500 "constructor failed";
//   alarm → writes are committed and the alarm is retried (as on Cloudflare);
//   webSocket* → logged by the host, writes and socket operations kept.
// - `ctx.abort(reason)` traps from anywhere (rolls back the event).

import './globals.js';
export { s64 } from './s64.js';
import './timers.js';
export { DohostError } from './error.js';
export { SqlStorage, SqlStorageCursor } from './sql.js';
export { DurableObjectStorage } from './storage.js';
export { WebSocket, WebSocketPair, WebSocketRequestResponsePair } from './websocket.js';
export { DurableObjectId, DurableObjectNamespace, getNamespace } from './stub.js';
export { DurableObjectState } from './state.js';
export { Headers, Request, Response } from './http.js';
export { DurableObject, exportDynamic, exportObject, exportRpc, timerEvents } from './runtime.js';
export { lazy } from './lazy.js';
import './object-globals.js';
