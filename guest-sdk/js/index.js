// dohost guest SDK for JavaScript (componentize-js 0.23 / StarlingMonkey).
//
// A Durable-Objects-like API over the imports of the WIT world
// `dohost:object/object`. A class module looks like:
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
// auto-response pair. See the WebSockets section below for handle lifetimes.
//
// Build it with componentize-js from the repository root (see build.sh) with
// `--disable http fetch-event`. Module top levels run once at build time (the
// wizer snapshot): call no host import there, only from handlers.
//
// Type mapping and known componentize-js issues: README.md beside this file.
//
// Errors:
// - every host import that returns `result<_, string>` and fails throws a
//   `DohostError` (message = the host's string; `unsupported` is true when the
//   host does not implement the function yet).
// - an exception that escapes `fetch` or an RPC method TRAPS the instance: the host
//   rolls the event back, answers 500 and builds a fresh instance for the next event.
// - an exception that escapes the constructor, `alarm` or a `webSocket*` handler
//   becomes the handler's `err(string)`: init → 500 "constructor failed";
//   alarm → writes are committed and the alarm is retried (as on Cloudflare);
//   webSocket* → logged by the host, writes and socket operations kept.
// - `ctx.abort(reason)` traps from anywhere (rolls back the event).

import * as wsql from 'dohost:object/sql@0.1.0';
import * as wkv from 'dohost:object/kv@0.1.0';
import * as walarms from 'dohost:object/alarms@0.1.0';
import * as wws from 'dohost:object/websockets@0.1.0';
import * as wstate from 'dohost:object/state@0.1.0';
import * as wns from 'dohost:object/namespaces@0.1.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// Workaround for a componentize-js 0.23.0 bug (ComponentizeJS issue #343): a
// negative s64 passed as a flat core-wasm value — an import argument such as
// `set-alarm(epoch-ms)` or an export's return value such as an RPC method's
// `-> s64` — makes the engine abort (`unreachable`), because its C++ side accepts
// only BigInts that fit a *u64*. The generated bindings run in their own realm
// and convert every s64 with that realm's `BigInt.asIntN(64, v)`; making it
// return the same 64 bits as an unsigned BigInt hands the engine a value it
// accepts, with identical bits. Memory stores (`setBigInt64`) wrap either way.
// Runs once at build time (in the wizer snapshot); skipped if the bindings ever
// share this realm.
//
// The other half of the bug cannot be fixed here: a negative s64 *argument* of
// an exported function arrives as its unsigned value (2^64 + v). Use `s64(v)`.
(function fixS64Lowering() {
  try {
    const BindingsFunction = Object.getPrototypeOf(wsql.exec).constructor;
    const bindingsGlobal = BindingsFunction('return globalThis')();
    if (!bindingsGlobal || bindingsGlobal === globalThis || bindingsGlobal.BigInt === BigInt) return;
    const B = bindingsGlobal.BigInt;
    const asIntN = B.asIntN;
    B.asIntN = function (bits, value) {
      return bits === 64 ? B.asUintN(64, value) : asIntN.call(B, bits, value);
    };
  } catch (e) {
    console.error(`dohost: cannot apply the s64 workaround: ${e}`);
  }
})();

/**
 * An exported function's s64 argument as a signed BigInt (componentize-js 0.23
 * delivers negative ones as 2^64 + v): `increment(by) { by = s64(by); … }`.
 */
export function s64(value) {
  return BigInt.asIntN(64, BigInt(value));
}

// ---------------------------------------------------------------------------
// Timers
//
// Each export call runs the engine's event loop only until its own promise
// settles, so a timer still pending when an event ends would fire inside a
// later event — its callback writing into that event's transaction. Until
// timers get events of their own, every timer still pending when an event
// ends is cleared (README: "Timers").

const pendingTimers = new Set();
const hostSetTimeout = globalThis.setTimeout;
const hostClearTimeout = globalThis.clearTimeout;
const hostSetInterval = globalThis.setInterval;
const hostClearInterval = globalThis.clearInterval;

globalThis.setTimeout = function setTimeout(callback, delay, ...args) {
  const id = hostSetTimeout(
    (...a) => {
      pendingTimers.delete(id);
      if (typeof callback === 'function') callback(...a);
    },
    delay,
    ...args,
  );
  pendingTimers.add(id);
  return id;
};
globalThis.clearTimeout = function clearTimeout(id) {
  pendingTimers.delete(id);
  hostClearTimeout(id);
};
globalThis.setInterval = function setInterval(callback, delay, ...args) {
  const id = hostSetInterval(callback, delay, ...args);
  pendingTimers.add(id);
  return id;
};
globalThis.clearInterval = function clearInterval(id) {
  pendingTimers.delete(id);
  hostClearInterval(id);
};

/** Clears the timers the event left pending (called when every event ends). */
function clearEventTimers() {
  for (const id of pendingTimers) {
    hostClearTimeout(id);
    hostClearInterval(id);
  }
  pendingTimers.clear();
}

// ---------------------------------------------------------------------------
// Errors

/** An error reported by the host (an `err(string)` of an import). */
export class DohostError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'DohostError';
  }
  /** True when the host version does not implement the called function. */
  get unsupported() {
    return this.message.startsWith('unsupported:');
  }
}

// Calls an import; its `err(string)` (thrown by the bindings as a ComponentError
// whose `payload` is the string) becomes a DohostError.
function host(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    if (e && typeof e.payload === 'string') throw new DohostError(e.payload, { cause: e });
    throw e;
  }
}

function errorMessage(e) {
  if (e instanceof Error) return e.stack ? `${e.name}: ${e.message}` : String(e);
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}

// ---------------------------------------------------------------------------
// Bytes

// `instanceof` is avoided: values may come from the bindings' realm.
function isArrayBuffer(v) {
  return Object.prototype.toString.call(v) === '[object ArrayBuffer]';
}

function toBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (isArrayBuffer(v)) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'string') return encoder.encode(v);
  throw new TypeError(`expected a string, Uint8Array or ArrayBuffer, got ${typeof v}`);
}

// ---------------------------------------------------------------------------
// SQL

// JS value → WIT `sql-value` ({tag, val}).
function toSqlValue(v) {
  if (v === null || v === undefined) return { tag: 'null' };
  switch (typeof v) {
    case 'bigint':
      return { tag: 'integer', val: v };
    case 'number':
      return Number.isInteger(v) ? { tag: 'integer', val: BigInt(v) } : { tag: 'real', val: v };
    case 'boolean':
      return { tag: 'integer', val: v ? 1n : 0n };
    case 'string':
      return { tag: 'text', val: v };
    default:
      if (isArrayBuffer(v) || ArrayBuffer.isView(v)) return { tag: 'blob', val: toBytes(v) };
      throw new TypeError(`cannot bind a ${v?.constructor?.name ?? typeof v} as an SQL parameter`);
  }
}

// The generated bindings run in their own realm: a Uint8Array they return is
// not `instanceof Uint8Array` here. Copy it into this realm.
function ownBytes(v) {
  return new Uint8Array(v);
}

// WIT `sql-value` → JS: integers are numbers when safe, BigInt beyond 2^53.
function fromSqlValue(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'integer':
      return v.val >= -9007199254740991n && v.val <= 9007199254740991n ? Number(v.val) : v.val;
    case 'real':
    case 'text':
      return v.val;
    case 'blob':
      return ownBytes(v.val);
    default:
      throw new TypeError(`unknown sql-value ${v.tag}`);
  }
}

/** The result of `sql.exec`: all rows of the last statement (fetched eagerly). */
export class SqlStorageCursor {
  #columns;
  #rows;
  #pos = 0;
  #rowsRead;
  #rowsWritten;

  constructor(cursor) {
    this.#columns = cursor.columns;
    this.#rows = cursor.rows;
    this.#rowsRead = Number(cursor.rowsRead);
    this.#rowsWritten = Number(cursor.rowsWritten);
  }
  get columnNames() {
    return this.#columns.slice();
  }
  get rowsRead() {
    return this.#rowsRead;
  }
  get rowsWritten() {
    return this.#rowsWritten;
  }
  #object(row) {
    const o = {};
    this.#columns.forEach((c, i) => (o[c] = fromSqlValue(row[i])));
    return o;
  }
  /** The next row as an object keyed by column name. */
  next() {
    if (this.#pos >= this.#rows.length) return { done: true, value: undefined };
    return { done: false, value: this.#object(this.#rows[this.#pos++]) };
  }
  [Symbol.iterator]() {
    return this;
  }
  /** The remaining rows as objects. */
  toArray() {
    const out = [];
    for (const row of this) out.push(row);
    return out;
  }
  /** The only row; throws unless there is exactly one. */
  one() {
    const rows = this.toArray();
    if (rows.length !== 1) {
      throw new Error(`Expected exactly one result from SQL query, but got ${rows.length === 0 ? 'no' : rows.length} results.`);
    }
    return rows[0];
  }
  /** The remaining rows as arrays of values (column order). */
  raw() {
    const self = this;
    const rows = this.#rows;
    return {
      columnNames: this.columnNames,
      next() {
        if (self.#pos >= rows.length) return { done: true, value: undefined };
        return { done: false, value: rows[self.#pos++].map(fromSqlValue) };
      },
      [Symbol.iterator]() {
        return this;
      },
      toArray() {
        const out = [];
        for (const r of this) out.push(r);
        return out;
      },
    };
  }
}

/** `ctx.storage.sql`. */
export class SqlStorage {
  /** Runs one or more `;`-separated statements; `?` parameters bind in order across them. */
  exec(query, ...bindings) {
    return new SqlStorageCursor(host(wsql.exec, query, bindings.map(toSqlValue)));
  }
  /** Bytes used by the database. */
  get databaseSize() {
    return Number(host(wsql.databaseSize));
  }
}

// ---------------------------------------------------------------------------
// KV storage, alarms, transactions

function encodeValue(key, value) {
  if (value === undefined) throw new TypeError(`cannot store undefined under key ${JSON.stringify(key)}`);
  return encoder.encode(JSON.stringify(value));
}

function decodeValue(key, bytes) {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new Error(`value of key ${JSON.stringify(key)} is not JSON: ${e.message}`);
  }
}

/** The key-value API: values are stored as JSON (UTF-8), keys are strings. */
class KvStorage {
  /** `get(key)` → value or undefined; `get([keys])` → Map of the keys that exist. */
  get(keys) {
    if (Array.isArray(keys)) {
      const map = new Map();
      for (const [k, v] of host(wkv.getMany, keys)) map.set(k, decodeValue(k, v));
      return map;
    }
    const v = host(wkv.get, keys);
    return v === undefined ? undefined : decodeValue(keys, v);
  }
  /** `put(key, value)` or `put({key: value, ...})`. */
  put(keyOrEntries, value) {
    if (typeof keyOrEntries === 'string') {
      host(wkv.put, keyOrEntries, encodeValue(keyOrEntries, value));
      return;
    }
    const entries = keyOrEntries instanceof Map ? [...keyOrEntries] : Object.entries(keyOrEntries);
    host(wkv.putMany, entries.map(([k, v]) => [k, encodeValue(k, v)]));
  }
  /** `delete(key)` → whether it existed; `delete([keys])` → how many existed. */
  delete(keys) {
    return Array.isArray(keys) ? host(wkv.deleteMany, keys) : host(wkv.delete, keys);
  }
  /** Map of entries in key order: `{prefix, start, startAfter, end, reverse, limit}`. */
  list(options = {}) {
    let start = options.start;
    if (options.startAfter !== undefined) {
      // The smallest key greater than startAfter.
      const after = options.startAfter + '\u0000';
      start = start === undefined || after > start ? after : start;
    }
    const entries = host(wkv.list, {
      prefix: options.prefix,
      start,
      end: options.end,
      reverse: !!options.reverse,
      limit: options.limit,
    });
    const map = new Map();
    for (const [k, v] of entries) map.set(k, decodeValue(k, v));
    return map;
  }
}

/**
 * `ctx.storage`. All methods are synchronous (the host answers in microseconds);
 * `await storage.get(...)` works too. Everything belongs to the current event's
 * transaction.
 */
export class DurableObjectStorage extends KvStorage {
  constructor() {
    super();
    this.sql = new SqlStorage();
    /** Cloudflare's synchronous KV API of SQLite-backed objects (same methods). */
    this.kv = new KvStorage();
  }
  /** Deletes every SQL table, every key and the alarm. */
  deleteAll() {
    host(wkv.deleteAll);
  }
  /** The alarm time in epoch milliseconds, or null. */
  getAlarm() {
    const t = host(walarms.getAlarm);
    return t === undefined ? null : Number(t);
  }
  /** `setAlarm(epochMs | Date)`. */
  setAlarm(time) {
    const ms = time instanceof Date ? time.getTime() : Number(time);
    if (!Number.isFinite(ms)) throw new TypeError('setAlarm expects a Date or epoch milliseconds');
    host(walarms.setAlarm, BigInt(Math.trunc(ms)));
  }
  deleteAlarm() {
    host(walarms.deleteAlarm);
  }
  /** Runs `fn` in a nested transaction: an exception rolls back its writes and is rethrown. */
  transactionSync(fn) {
    host(wsql.beginNested);
    let result;
    try {
      result = fn();
    } catch (e) {
      host(wsql.rollbackNested);
      throw e;
    }
    if (result && typeof result.then === 'function') {
      host(wsql.rollbackNested);
      throw new TypeError('transactionSync callback must not return a Promise; use transaction()');
    }
    host(wsql.commitNested);
    return result;
  }
  /**
   * Async variant: `await storage.transaction(async (txn) => { ...; txn.rollback(); })`.
   * Safe because the host delivers one event at a time and imports are synchronous.
   */
  async transaction(fn) {
    host(wsql.beginNested);
    let rolledBack = false;
    const txn = Object.create(this);
    txn.rollback = () => {
      rolledBack = true;
    };
    let result;
    try {
      result = await fn(txn);
    } catch (e) {
      host(wsql.rollbackNested);
      throw e;
    }
    host(rolledBack ? wsql.rollbackNested : wsql.commitNested);
    return result;
  }
  /** Always durable: the host commits (fsync) before it releases the reply. */
  sync() {
    return Promise.resolve();
  }
}

// ---------------------------------------------------------------------------
// WebSockets
//
// Handle lifetimes. Every `web-socket` handle the host gives the guest (from
// `accept`, from `get-web-sockets`, and the argument of every webSocket* event)
// stays allocated in the host until the guest drops it, and the host traps a
// guest that holds more than 100,000 handles. The bindings generated by
// componentize-js 0.23.0 drop a handle only from a FinalizationRegistry, and
// they *unregister* the handle from it on every method call: a handle that was
// used once is never dropped unless disposed explicitly. So the SDK keeps
// exactly one handle per socket it knows: wrappers are cached by socket id (the
// same socket is the same `WebSocket` object in every event of an instance, as
// on Cloudflare), every further handle for a known socket is disposed at once,
// and a socket's handle is disposed after its close event has run, when
// `getWebSockets()` no longer lists it, or when the fetch that accepted it did
// not answer 101.

const symbolDispose = Symbol.dispose || Symbol.for('dispose');
const INTERNAL = Symbol('dohost.internal');
const BIND = Symbol('dohost.bind');
const RELEASE = Symbol('dohost.release');
const HAS_HANDLE = Symbol('dohost.hasHandle');
const MARK_CLOSED = Symbol('dohost.markClosed');

/** Socket id → WebSocket wrapper, for the life of this instance. */
const knownSockets = new Map();

/** The socket accepted by the current fetch, and the socket of the current webSocket* event. */
const eventSockets = { accepted: null, current: null };

function disposeHandle(res) {
  try {
    res[symbolDispose]();
  } catch (e) {
    console.error(`dohost: cannot drop a web-socket handle: ${errorMessage(e)}`);
  }
}

// A handle from the bindings → the one wrapper of its socket.
function socketFromHandle(res) {
  let id;
  try {
    id = res.id();
  } catch (e) {
    disposeHandle(res);
    throw e;
  }
  const known = knownSockets.get(id);
  if (known === undefined) return new WebSocket(INTERNAL)[BIND](res, id);
  if (known[HAS_HANDLE]) disposeHandle(res);
  else known[BIND](res, id); // released earlier (e.g. pruned): rebound for this event
  return known;
}

function closeCode(code) {
  if (!Number.isInteger(code) || code < 0 || code > 65535) {
    throw new RangeError(`close code must be an integer in 0..65535, got ${code}`);
  }
  return code;
}

/**
 * A host-owned WebSocket (the WIT resource `web-socket`): from
 * `ctx.acceptWebSocket()`, `ctx.getWebSockets()` or the webSocket* handlers.
 * `send` and `close` take effect when the current event commits.
 */
export class WebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  #res = null;
  #id = null;
  #closing = false;
  #released = false;
  // What a closed socket still answers (read during its close event).
  #last = { tags: [], attachment: undefined, autoResponseTimestamp: undefined };

  constructor(token) {
    if (token !== INTERNAL) {
      throw new TypeError('WebSocket objects come from ctx.acceptWebSocket(), ctx.getWebSockets() or new WebSocketPair()');
    }
  }

  [BIND](res, id) {
    this.#res = res;
    this.#id = id;
    this.#released = false;
    knownSockets.set(id, this);
    return this;
  }

  get [HAS_HANDLE]() {
    return this.#res !== null;
  }

  /** The peer closed the socket (its close event runs now): readyState is CLOSED. */
  [MARK_CLOSED]() {
    this.#released = true;
  }

  /**
   * Drops the handle. `snapshot`: remember tags, attachment and auto-response
   * time first (the close event, while the host still shows the closed socket).
   * `forget`: also forget the socket (its close event has run).
   */
  [RELEASE]({ snapshot = false, forget = false } = {}) {
    const res = this.#res;
    if (res !== null) {
      if (snapshot) {
        try {
          this.#last = {
            tags: Array.from(res.tags()),
            attachment: res.deserializeAttachment(),
            autoResponseTimestamp: res.autoResponseTimestamp(),
          };
        } catch (e) {
          console.error(`dohost: cannot read a closed socket: ${errorMessage(e)}`);
        }
      }
      this.#res = null;
      disposeHandle(res);
    }
    this.#released = true;
    if (forget && this.#id !== null && knownSockets.get(this.#id) === this) knownSockets.delete(this.#id);
  }

  #live() {
    if (this.#res !== null) return this.#res;
    if (this.#id === null) throw new DohostError('this WebSocket was not accepted (pass it to ctx.acceptWebSocket)');
    throw new DohostError(`socket ${this.#id} is closed`);
  }

  /** Stable id of the socket within the object (null before it is accepted). */
  get id() {
    return this.#id;
  }
  /** `WebSocket.OPEN` (1), `CLOSING` (2, after `close()`), `CLOSED` (3) or `CONNECTING` (0, an unaccepted pair side). */
  get readyState() {
    if (this.#released) return WebSocket.CLOSED;
    if (this.#res === null) return WebSocket.CONNECTING;
    return this.#closing ? WebSocket.CLOSING : WebSocket.OPEN;
  }
  /** The tags given to `acceptWebSocket`. */
  get tags() {
    return this.#res === null ? this.#last.tags.slice() : Array.from(this.#res.tags());
  }
  /**
   * Queues a message: a string is a text frame, an ArrayBuffer or a typed array
   * (Uint8Array, …) or DataView a binary frame. Sent when the event commits.
   * Throws DohostError on a closed socket or above limits.max_ws_message_bytes.
   */
  send(message) {
    let m;
    if (typeof message === 'string') m = { tag: 'text', val: message };
    else if (isArrayBuffer(message) || ArrayBuffer.isView(message)) m = { tag: 'binary', val: toBytes(message) };
    else throw new TypeError(`WebSocket.send expects a string, ArrayBuffer or ArrayBufferView, got ${describe(message)}`);
    const res = this.#live();
    host(() => res.send(m));
  }
  /** Closes the socket when the event commits: code 1000 or 3000-4999, reason ≤ 123 bytes. */
  close(code = 1000, reason = '') {
    closeCode(code);
    const res = this.#live();
    host(() => res.close(code, String(reason)));
    this.#closing = true;
  }
  /**
   * Stores a JSON value with the socket (at most 2,048 bytes encoded; BigInts
   * are written as JSON integers). It lives in the host: it survives hibernation.
   */
  serializeAttachment(value) {
    const json = value === undefined ? 'null' : stringifyJson(value);
    if (json === undefined) throw new TypeError(`cannot serialize ${describe(value)} as an attachment`);
    const bytes = encoder.encode(json);
    const res = this.#live();
    host(() => res.serializeAttachment(bytes));
  }
  /** The value stored by `serializeAttachment`, or null. */
  deserializeAttachment() {
    const b = this.#res === null ? this.#last.attachment : this.#res.deserializeAttachment();
    return b === undefined ? null : parseJson(decoder.decode(ownBytes(b)));
  }
  /** Epoch ms when the host last answered this socket with the auto-response, or null. */
  get autoResponseTimestamp() {
    const t = this.#res === null ? this.#last.autoResponseTimestamp : this.#res.autoResponseTimestamp();
    return t === undefined ? null : Number(t);
  }
}

/**
 * Cloudflare's `WebSocketPair`, for code written against it:
 * `const [client, server] = Object.values(new WebSocketPair());
 *  ctx.acceptWebSocket(server, tags); return new Response(null, { status: 101, webSocket: client });`
 * The host owns the connection: `client` is only a placeholder.
 */
export class WebSocketPair {
  constructor() {
    this[0] = new WebSocket(INTERNAL);
    this[1] = new WebSocket(INTERNAL);
  }
}

/** Cloudflare's `WebSocketRequestResponsePair`: `ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'))`. */
export class WebSocketRequestResponsePair {
  #request;
  #response;
  constructor(request, response) {
    if (typeof request !== 'string' || typeof response !== 'string') {
      throw new TypeError('WebSocketRequestResponsePair(request, response) takes two strings');
    }
    this.#request = request;
    this.#response = response;
  }
  get request() {
    return this.#request;
  }
  get response() {
    return this.#response;
  }
}

// WIT `ws-message` → string (text frame) or ArrayBuffer (binary frame, copied into this realm).
function messageFromWit(m) {
  return m.tag === 'text' ? m.val : ownBytes(m.val).buffer;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}

// ---------------------------------------------------------------------------
// Identity, state, namespaces

/** The object's id: `toString()` is 64 lowercase hex characters. */
export class DurableObjectId {
  #hex;
  constructor(hex, name) {
    this.#hex = hex;
    if (name !== undefined) this.name = name;
  }
  toString() {
    return this.#hex;
  }
  equals(other) {
    return other != null && String(other) === this.#hex;
  }
}

/** A stub to another object served by the same host (`namespaces`). */
class DurableObjectStub {
  #class;
  constructor(className, id) {
    this.#class = className;
    this.id = id;
  }
  /**
   * Calls an RPC method of the object: arguments and result in the host's JSON
   * mapping of WIT values (BigInts are sent as JSON integers; integers beyond 2^53
   * come back as BigInts; a WIT `result` comes back as `{ok: v}` / `{err: e}`).
   */
  call(method, ...args) {
    return parseJson(host(wns.call, this.#class, String(this.id), method, stringifyJson(args)));
  }
  /** Sends a request to the object's `fetch` (a path like `/x?y=1`, a URL or a Request). */
  async fetch(input, init) {
    const req =
      input instanceof globalThis.Request
        ? input
        : new globalThis.Request(typeof input === 'string' && input.startsWith('/') ? `http://object${input}` : input, init);
    const u = new URL(req.url);
    const res = host(wns.fetch, this.#class, String(this.id), {
      method: req.method,
      url: u.pathname + u.search,
      headers: [...req.headers],
      body: new Uint8Array(await req.arrayBuffer()),
    });
    const status = res.status;
    const body = status === 101 || status === 204 || status === 304 ? null : ownBytes(res.body);
    return new Response(body, { status, headers: res.headers });
  }
}

// JSON with exact 64-bit integers: BigInts are written as integer literals, and
// integer literals beyond 2^53 are read back as BigInts.
function stringifyJson(value) {
  const marks = [];
  const text = JSON.stringify(value, (_, v) => {
    if (typeof v !== 'bigint') return v;
    marks.push(v.toString());
    return `\u0000bigint${marks.length - 1}\u0000`;
  });
  return text.replace(/"\\u0000bigint(\d+)\\u0000"/g, (_, i) => marks[Number(i)]);
}

function parseJson(text) {
  const big = [];
  const marked = text.replace(/("(?:[^"\\]|\\.)*")|(?<![\d.eE+-])(-?\d{16,})(?![.eE\d])/g, (m, str, int) => {
    if (str !== undefined) return str;
    const n = BigInt(int);
    if (n >= -9007199254740991n && n <= 9007199254740991n) return int;
    big.push(n);
    return `{"\\u0000bigint":${big.length - 1}}`;
  });
  if (big.length === 0) return JSON.parse(text);
  return JSON.parse(marked, (_, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, '\u0000bigint') ? big[v['\u0000bigint']] : v,
  );
}

/** `getNamespace('Counter')`: ids and stubs of the objects of a class. */
export class DurableObjectNamespace {
  #class;
  constructor(className) {
    this.#class = className;
  }
  idFromName(name) {
    return new DurableObjectId(host(wns.idFromName, this.#class, name), name);
  }
  newUniqueId() {
    return new DurableObjectId(host(wns.newUniqueId, this.#class));
  }
  idFromString(hex) {
    return new DurableObjectId(host(wns.idFromString, this.#class, hex));
  }
  get(id) {
    return new DurableObjectStub(this.#class, id);
  }
  getByName(name) {
    return this.get(this.idFromName(name));
  }
}

export function getNamespace(className) {
  return new DurableObjectNamespace(className);
}

/** `ctx`: the object's identity, storage and WebSockets. */
export class DurableObjectState {
  #pending = [];
  constructor() {
    this.id = new DurableObjectId(wstate.id(), wstate.name());
    /** The class name as configured in the manifest. */
    this.className = wstate.className();
    this.storage = new DurableObjectStorage();
  }
  /**
   * Runs `fn`; the current event (the constructor too) ends only after its
   * promise settles. Events never interleave in dohost, so this is only about waiting.
   */
  blockConcurrencyWhile(fn) {
    const p = Promise.resolve().then(fn);
    this.#pending.push(p);
    return p;
  }
  waitUntil(promise) {
    this.#pending.push(Promise.resolve(promise));
  }
  async _settle() {
    while (this.#pending.length) {
      const ps = this.#pending.splice(0);
      await Promise.all(ps);
    }
    clearEventTimers();
  }
  /**
   * Accepts the WebSocket upgrade of the current request and returns its
   * `WebSocket`; the fetch handler must then return
   * `new Response(null, { status: 101 })`. `acceptWebSocket(tags)` or Cloudflare's
   * `acceptWebSocket(server, tags)` with the server side of a `WebSocketPair`.
   * At most 10 tags of ≤ 256 chars. Throws DohostError when the request does not
   * ask for an upgrade, on a second accept, or above limits.max_sockets_per_object.
   */
  acceptWebSocket(wsOrTags, maybeTags) {
    let target = null;
    let tags = wsOrTags;
    if (wsOrTags instanceof WebSocket) {
      if (wsOrTags.id !== null || wsOrTags.readyState !== WebSocket.CONNECTING) {
        throw new TypeError('this WebSocket was already accepted');
      }
      target = wsOrTags;
      tags = maybeTags;
    }
    tags = tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
      throw new TypeError('acceptWebSocket: tags must be an array of strings');
    }
    const res = host(wws.accept, tags);
    let ws;
    try {
      ws = (target ?? new WebSocket(INTERNAL))[BIND](res, res.id());
    } catch (e) {
      disposeHandle(res);
      throw e;
    }
    eventSockets.accepted = ws;
    return ws;
  }
  /** The open sockets of this object (those with `tag`, if given), oldest first. */
  getWebSockets(tag) {
    if (tag !== undefined && tag !== null && typeof tag !== 'string') throw new TypeError('getWebSockets: tag must be a string');
    const list = host(wws.getWebSockets, tag ?? undefined);
    const out = [];
    let failure = null;
    for (const res of list) {
      if (failure !== null) {
        disposeHandle(res);
        continue;
      }
      try {
        out.push(socketFromHandle(res));
      } catch (e) {
        failure = e;
      }
    }
    if (failure !== null) throw failure;
    if (tag === undefined || tag === null) {
      // Every open socket is listed: a known socket that is not has closed.
      const open = new Set(out);
      for (const ws of knownSockets.values()) {
        if (!open.has(ws) && ws !== eventSockets.current && ws[HAS_HANDLE]) ws[RELEASE]();
      }
    }
    return out;
  }
  /** The tags of a socket (`ws.tags`). */
  getTags(ws) {
    return ws.tags;
  }
  /**
   * Sets the request/response pair the host answers by itself, without waking
   * the object (`new WebSocketRequestResponsePair('ping', 'pong')`); no argument
   * (or null) clears it. The pair lives in the host and survives hibernation.
   */
  setWebSocketAutoResponse(pair) {
    if (pair === undefined || pair === null) {
      host(wws.setAutoResponse, undefined);
      return;
    }
    const { request, response } = pair;
    if (typeof request !== 'string' || typeof response !== 'string') {
      throw new TypeError('setWebSocketAutoResponse expects a WebSocketRequestResponsePair');
    }
    host(wws.setAutoResponse, { request, response });
  }
  /** The current auto-response pair, or null. */
  getWebSocketAutoResponse() {
    const p = wws.getAutoResponse();
    return p === undefined ? null : new WebSocketRequestResponsePair(p.request, p.response);
  }
  /** When the host last auto-responded to `ws` (a Date), or null. */
  getWebSocketAutoResponseTimestamp(ws) {
    const t = ws.autoResponseTimestamp;
    return t === null ? null : new Date(t);
  }
  /** Rolls back the current event and resets the object (a trap). Never returns. */
  abort(reason = 'aborted') {
    wstate.abort(String(reason));
    throw new Error('unreachable: abort returned');
  }
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * The platform `Response` (StarlingMonkey's Fetch API), extended to allow
 * status 101 (a WebSocket upgrade accepted with `ctx.acceptWebSocket`).
 */
export class Response extends globalThis.Response {
  #upgrade = false;
  #webSocket = null;
  constructor(body, init) {
    const upgrade = init && init.status === 101;
    super(upgrade ? null : body, upgrade ? { ...init, status: 200 } : init);
    this.#upgrade = upgrade;
    // Cloudflare's `{ status: 101, webSocket: client }`: kept, not needed (the host owns the socket).
    if (init && init.webSocket) this.#webSocket = init.webSocket;
  }
  get webSocket() {
    return this.#webSocket;
  }
  get status() {
    return this.#upgrade ? 101 : super.status;
  }
  get ok() {
    return !this.#upgrade && super.ok;
  }
  static json(data, init = {}) {
    const headers = new Headers(init.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(data), { ...init, headers });
  }
}

export const Request = globalThis.Request;
export const Headers = globalThis.Headers;

function requestFromWit(req) {
  const headers = new Headers();
  let host = 'localhost';
  for (const [name, value] of req.headers) {
    try {
      headers.append(name, value);
    } catch {
      // A name or value the Fetch API refuses: skipped.
    }
    if (name.toLowerCase() === 'host' && /^[A-Za-z0-9.\-\[\]:]+$/.test(value)) host = value;
  }
  const hasBody = req.body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD';
  const request = new Request(`http://${host}${req.url.startsWith('/') ? '' : '/'}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? req.body : undefined,
  });
  // The Request constructor drops the "forbidden" request headers of the Fetch
  // spec (Host, Upgrade, Connection, Keep-Alive, TE, …), so `Upgrade: websocket`
  // would be invisible. An own `headers` property shows every header received.
  Object.defineProperty(request, 'headers', { value: headers, enumerable: false, configurable: true, writable: false });
  return request;
}

const HOP_BY_HOP = new Set(['content-length', 'transfer-encoding', 'connection']);

async function responseToWit(res) {
  if (typeof res === 'string') res = new Response(res);
  if (!res || typeof res.status !== 'number' || !res.headers) {
    throw new TypeError(`fetch must return a Response, got ${res === null ? 'null' : typeof res}`);
  }
  const status = res.status;
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid HTTP status ${status}`);
  const headers = [];
  for (const [name, value] of res.headers) if (!HOP_BY_HOP.has(name)) headers.push([name, value]);
  const body = status === 101 ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer());
  return { status, headers, body };
}

// ---------------------------------------------------------------------------
// The base class and the exports

/** Base class of an object class: `this.ctx` and `this.env`. */
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

let instance = null;
let instanceCtx = null;

function live() {
  if (instance === null) throw new Error('dohost: event delivered before init');
  return instance;
}

// For handlers whose WIT result is `result<_, string>`: an exception becomes
// `err(message)` (a thrown Error would otherwise trap with a misleading message).
async function asResult(f) {
  try {
    await f();
    return { tag: 'ok', val: undefined };
  } catch (e) {
    console.error(`dohost: handler failed: ${e && e.stack ? `${errorMessage(e)}\n${e.stack}` : errorMessage(e)}`);
    return { tag: 'err', val: errorMessage(e) };
  }
}

// Runs a webSocket* handler with the socket's one wrapper (the event's own
// handle is disposed unless it becomes that wrapper's). After a close event the
// socket is gone: its handle is dropped (tags and attachment stay readable).
function socketEvent(handle, call, closing = false) {
  return asResult(async () => {
    const obj = live();
    const socket = socketFromHandle(handle);
    if (closing) socket[MARK_CLOSED]();
    eventSockets.current = socket;
    try {
      await call(obj, socket);
      await instanceCtx._settle();
    } finally {
      eventSockets.current = null;
      if (closing) socket[RELEASE]({ snapshot: true, forget: true });
    }
  });
}

/**
 * The `dohost:object/handler` export for a class:
 * `export const handler = exportObject(MyClass, env?)`.
 */
export function exportObject(Class, env = {}) {
  return {
    init() {
      return asResult(async () => {
        instance = null;
        const ctx = new DurableObjectState();
        instanceCtx = ctx;
        instance = new Class(ctx, env);
        await ctx._settle();
      });
    },
    // No try/catch: an exception here traps, so the host rolls the event back.
    async fetch(req) {
      const obj = live();
      eventSockets.accepted = null;
      if (typeof obj.fetch !== 'function') return { status: 501, headers: [], body: encoder.encode('no fetch handler') };
      const res = await obj.fetch(requestFromWit(req));
      await instanceCtx._settle();
      const wit = await responseToWit(res);
      const accepted = eventSockets.accepted;
      eventSockets.accepted = null;
      // Accepted but not answered with 101: the host drops the socket.
      if (accepted !== null && wit.status !== 101) accepted[RELEASE]({ forget: true });
      return wit;
    },
    alarm(info) {
      return asResult(async () => {
        const obj = live();
        if (typeof obj.alarm === 'function') await obj.alarm({ retryCount: info.retryCount, isRetry: info.isRetry });
        await instanceCtx._settle();
      });
    },
    webSocketMessage(ws, message) {
      return socketEvent(ws, (obj, socket) =>
        typeof obj.webSocketMessage === 'function' ? obj.webSocketMessage(socket, messageFromWit(message)) : undefined,
      );
    },
    webSocketClose(ws, code, reason, wasClean) {
      return socketEvent(
        ws,
        (obj, socket) => (typeof obj.webSocketClose === 'function' ? obj.webSocketClose(socket, code, reason, wasClean) : undefined),
        true,
      );
    },
    webSocketError(ws, error) {
      return socketEvent(ws, (obj, socket) =>
        typeof obj.webSocketError === 'function' ? obj.webSocketError(socket, new Error(error)) : undefined,
      );
    },
  };
}

/**
 * An RPC interface export: `export const counter = exportRpc(MyClass, ['increment', 'get'])`
 * (the export's name is the WIT interface name in camelCase, or its full id
 * `'dohost:examples/counter@0.1.0'`). Each function calls the method of the same
 * name on the live instance, with the WIT-mapped arguments (s64 → BigInt, …).
 * An exception traps (rolls the call back) unless the WIT function returns a result.
 */
export function exportRpc(Class, methods) {
  const iface = {};
  for (const m of methods) {
    if (typeof Class.prototype[m] !== 'function') throw new TypeError(`${Class.name} has no method ${m}`);
    iface[m] = async (...args) => {
      const result = await live()[m](...args);
      await instanceCtx._settle();
      return result;
    };
  }
  return iface;
}
