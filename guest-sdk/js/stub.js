// Other objects: `getNamespace(className)` (`DurableObjectNamespace`), their ids
// (`DurableObjectId`, also `ctx.id`) and stubs (`call` an RPC method, `fetch`),
// over the `namespaces` import. A failed call throws a DohostError whose `kind`
// is the `call-error` case ('overloaded', 'not-found', 'unknown-class', …).

import * as wns from 'dohost:object/namespaces@0.2.0';
import { ownBytes } from './bytes.js';
import { host } from './error.js';
import { Response } from './http.js';
import { parseJson, stringifyJson } from './json.js';

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

// What a stub answers itself; any other property is an RPC method.
const STUB_OWN = new Set(['id', 'name', 'call', 'fetch', 'then', 'constructor', 'toJSON']);

/**
 * A stub to another object served by the same host (`namespaces`). As on
 * Cloudflare, `await stub.increment(5)` calls the object's method `increment`
 * (a typed WIT method, or any public method of a JavaScript or Python class)
 * and resolves to its result; a thrown exception rejects with an Error of the
 * callee's name and message.
 */
class DurableObjectStub {
  #class;
  constructor(className, id, makeResponse = (body, init) => new Response(body, init)) {
    this.#class = className;
    this.#makeResponse = makeResponse;
    this.id = id;
    if (id.name !== undefined) this.name = id.name;
    return new Proxy(this, {
      get(target, prop, receiver) {
        if (typeof prop !== 'string' || STUB_OWN.has(prop) || prop in target) {
          // Bound: the methods read private fields, which a Proxy does not have.
          const value = Reflect.get(target, prop, target);
          return typeof value === 'function' ? value.bind(target) : value;
        }
        return async (...args) => target.call(prop, ...args);
      },
    });
  }
  #makeResponse;
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
    return this.#makeResponse(body, { status, headers: res.headers });
  }
}

/** `getNamespace('Counter')`: ids and stubs of the objects of a class. */
export class DurableObjectNamespace {
  #class;
  #makeResponse;
  constructor(className, makeResponse) {
    this.#class = className;
    this.#makeResponse = makeResponse;
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
    if (!(id instanceof DurableObjectId)) throw new TypeError(`${this.#class}.get: pass an id from idFromName, newUniqueId or idFromString`);
    return new DurableObjectStub(this.#class, id, this.#makeResponse);
  }
  getByName(name) {
    return this.get(this.idFromName(name));
  }
}

export function getNamespace(className, makeResponse) {
  return new DurableObjectNamespace(className, makeResponse);
}
