// `env`: the manifest's `[vars]` and `[secrets]` (import `dohost:object/env`), as
// the second argument of the class constructor and `this.env`, as on Cloudflare:
// a plain frozen object with one string property per name (`env.GREETING`,
// `Object.keys(env)`), plus one `DurableObjectNamespace` per `[bindings]` entry
// (`env.COUNTER.getByName("a")`). runtime.js builds a fresh one for every instance, inside
// `init` (a host call is not possible at a module's top level: wizer snapshot).
//
// Secrets are ordinary strings here: the host never logs them, but whatever the
// class prints (console.log(env), an error message with a value in it) reaches
// the host's log as the guest's output.

import * as wenv from 'dohost:object/env@0.2.0';
import { getNamespace } from './stub.js';

const ASSETS_CLASS = '@assets';
// The host answers requests to this origin from `[assets] directory` itself.
const ASSETS_ORIGIN = 'http://assets.dohost.internal';

/**
 * `env.ASSETS`, as Cloudflare's assets binding: `fetch(request | path | URL)`
 * answers with the static file of that path (only the path and query count;
 * GET and HEAD, conditional and range headers as on the direct route).
 */
function assetsBinding() {
  return Object.freeze({
    fetch(input, init) {
      const relative = typeof input === 'string' && input.startsWith('/');
      const req = new Request(relative ? ASSETS_ORIGIN + input : input, init);
      const url = new URL(req.url);
      return fetch(new Request(ASSETS_ORIGIN + url.pathname + url.search, { method: req.method, headers: req.headers }));
    },
  });
}

/**
 * The `env` of a new instance: every var and secret of the manifest (in the
 * host's order: sorted by name), then the own enumerable entries of `extra`
 * (what the class gave `exportObject(Class, extra)`); a name in both throws.
 */
export function buildEnv(extra = {}, makeResponse = undefined) {
  if (extra === null || typeof extra !== 'object') throw new TypeError('exportObject: env must be an object');
  const env = {};
  const define = (name, value) =>
    Object.defineProperty(env, name, { value, enumerable: true, writable: false, configurable: false });
  // A nodejs_compat project's `process.env` (node/process.js) gets them too.
  const processEnv = globalThis.process?.[Symbol.for('dohost.process.env')] === true ? globalThis.process.env : null;
  for (const name of wenv.names()) {
    const value = wenv.get(name);
    if (value === undefined) continue;
    define(String(name), value);
    if (processEnv !== null) processEnv[String(name)] = value;
  }
  // `[bindings]`: `env.COUNTER` is the namespace of the bound class; the
  // `[assets] binding` (class '@assets') fetches the host's static files.
  for (const [name, className] of wenv.bindings()) {
    define(String(name), className === ASSETS_CLASS ? assetsBinding() : getNamespace(String(className), makeResponse));
  }
  for (const [name, value] of Object.entries(extra)) {
    if (Object.prototype.hasOwnProperty.call(env, name)) {
      throw new TypeError(`exportObject: env.${name} is also a var or secret of the manifest; rename one of them`);
    }
    define(name, value);
  }
  return Object.freeze(env);
}
