// The object and the exports: the base class `DurableObject`, and
// `exportObject`/`exportRpc`, which build the `handler` and RPC interface
// exports around the one live instance. Every event settles `ctx` (its promises,
// then its timers) before it ends.

import { encoder } from './bytes.js';
import { isLazy, resolveLazy } from './lazy.js';
import { runStarted } from './globals.js';
import { buildEnv } from './env.js';
import { errorMessage } from './error.js';
import { parseJson, stringifyJson } from './json.js';
import { requestFromWit, responseToWit } from './http.js';
import { DurableObjectState, endEvent } from './state.js';
import { runDueTimers, setEventRunning } from './timers.js';
import { DISPATCH, LISTENING, MARK_CLOSED, ORPHANED, RELEASE, eventSockets, messageFromWit, socketFromHandle } from './websocket.js';

/**
 * Base class of an object class: `this.ctx` and `this.env` (the manifest's
 * vars and secrets, a frozen object of strings: see env.js).
 */
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

let instance = null;
let instanceCtx = null;

// Every export but init starts here: the event is running (timers.js).
function live() {
  if (instance === null) throw new Error('dohost: event delivered before init');
  setEventRunning(true);
  return instance;
}

// For handlers whose WIT result is `result<_, string>`: an exception becomes
// `err(message)` (a thrown Error would otherwise trap with a misleading message).
async function asResult(f) {
  try {
    await f();
    return { tag: 'ok', val: undefined };
  } catch (e) {
    console.error(`dohost: handler failed: ${e && e.stack ? e.stack : errorMessage(e)}`);
    endEvent(); // the instance lives on: its timers are parked all the same
    return { tag: 'err', val: errorMessage(e) };
  }
}

// Runs a webSocket* handler with the socket's one wrapper (the event's own
// handle is disposed unless it becomes that wrapper's): the class's handler for
// a hibernatable socket, the socket's listeners (`event`) for one accepted with
// `ws.accept()`, nothing for one of an earlier instance (closed: ORPHANED).
// After a close event the socket is gone: its handle is dropped (tags and
// attachment stay readable).
function socketEvent(handle, call, event, closing = false) {
  return asResult(async () => {
    const obj = live();
    const socket = socketFromHandle(handle);
    if (closing) socket[MARK_CLOSED]();
    const orphaned = socket[ORPHANED];
    eventSockets.current = socket;
    try {
      if (socket[LISTENING]) await socket[DISPATCH](event.type, event);
      else if (!orphaned) await call(obj, socket);
      await instanceCtx._settle();
    } finally {
      eventSockets.current = null;
      if (closing) socket[RELEASE]({ snapshot: true, forget: true });
    }
  });
}

/**
 * The `dohost:object/handler` export for a class:
 * `export const handler = exportObject(MyClass, extra?)`. Each instance gets
 * `new MyClass(ctx, env)`: `env` holds the manifest's vars and secrets (read
 * from the host when the instance is built), plus the entries of `extra`.
 * `MyClass` may be `lazy(() => import(…))` (lazy.js: the module then runs
 * when an instance starts).
 */
export function exportObject(Class, extra = {}) {
  return {
    init() {
      runStarted();
      setEventRunning(true);
      return asResult(async () => {
        instance = null;
        const ctx = new DurableObjectState();
        instanceCtx = ctx;
        const Resolved = await resolveLazy(Class);
        instance = new Resolved(ctx, buildEnv(extra));
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
      const data = messageFromWit(message);
      return socketEvent(
        ws,
        (obj, socket) => (typeof obj.webSocketMessage === 'function' ? obj.webSocketMessage(socket, data) : undefined),
        { type: 'message', data },
      );
    },
    webSocketClose(ws, code, reason, wasClean) {
      return socketEvent(
        ws,
        (obj, socket) => (typeof obj.webSocketClose === 'function' ? obj.webSocketClose(socket, code, reason, wasClean) : undefined),
        { type: 'close', code, reason, wasClean },
        true,
      );
    },
    webSocketError(ws, error) {
      const e = new Error(error);
      return socketEvent(
        ws,
        (obj, socket) => (typeof obj.webSocketError === 'function' ? obj.webSocketError(socket, e) : undefined),
        { type: 'error', error: e, message: error },
      );
    },
  };
}

/**
 * The `dohost:object/timer-events` export (world `js-object`):
 * `export { timerEvents } from '…/index.js'`. The host calls `fire` when the
 * earliest timer an event left pending is due: the due callbacks run as one
 * event of their own (its writes commit together, behind the output gate).
 * A callback's exception is logged; the other callbacks and the writes stand.
 */
export const timerEvents = {
  fire() {
    return asResult(async () => {
      live();
      const failure = runDueTimers();
      await instanceCtx._settle();
      if (failure !== null) throw failure;
    });
  },
};

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

// Methods that are events or internals, never RPC.
const NOT_RPC = new Set(['constructor', 'fetch', 'alarm', 'webSocketMessage', 'webSocketClose', 'webSocketError']);

/** The public methods of `Class` (and its bases below DurableObject), by name. */
function publicMethods(Class) {
  const names = new Set();
  for (let p = Class.prototype; p && p !== DurableObject.prototype && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      const desc = Object.getOwnPropertyDescriptor(p, name);
      if (typeof desc.value === 'function' && !NOT_RPC.has(name) && !name.startsWith('_')) names.add(name);
    }
  }
  return names;
}

/**
 * Untyped RPC, as on Cloudflare (`dohost:object/dynamic`):
 * `export const dynamic = exportDynamic(MyClass)` makes every public method of
 * the class (not `fetch`, `alarm`, `webSocket*`, nor names starting with `_`)
 * callable as `await env.MY_CLASS.getByName('a').method(...args)` or over
 * `POST /rpc/<Class>/<name>/<method>`. Arguments and result are JSON (BigInts
 * beyond 2^53 survive); a result that is a Promise is awaited. An exception
 * reaches the caller with its name and message, and the event is rolled back
 * (as when `fetch` throws). Build against world `dynamic-object`.
 */
export function exportDynamic(ClassOrLazy) {
  let Class = isLazy(ClassOrLazy) ? null : ClassOrLazy;
  let methods = Class === null ? null : publicMethods(Class);
  const known = () => (methods.size ? [...methods].sort().join(', ') : 'none');
  return {
    async call(method, argsJson) {
      if (Class === null) {
        Class = await resolveLazy(ClassOrLazy);
        methods = publicMethods(Class);
      }
      if (!methods.has(method)) {
        return { tag: 'err', val: { tag: 'not-found', val: `${Class.name} has no public method ${JSON.stringify(method)}; its methods: ${known()}` } };
      }
      try {
        const args = parseJson(argsJson);
        const result = await live()[method](...(Array.isArray(args) ? args : [args]));
        await instanceCtx._settle();
        return { tag: 'ok', val: result === undefined ? 'null' : stringifyJson(result) };
      } catch (e) {
        endEvent();
        const name = e instanceof Error ? e.name : 'Error';
        const message = e instanceof Error ? e.message : errorMessage(e);
        console.error(`dohost: ${Class.name}.${method} threw ${name}: ${message}`);
        return { tag: 'err', val: { tag: 'thrown', val: { name, message } } };
      }
    },
  };
}
