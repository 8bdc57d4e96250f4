// `cloudflare:workers` in the bundle of a project's Worker entry: the entry
// imports the project's main module, classes and all, but an entry component
// has no object imports (wit/entry), so here `DurableObject` is only the
// base the classes extend (they run in their own components, with
// cloudflare-workers.js).

export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

export class WebSocketPair {
  constructor() {
    throw new TypeError('new WebSocketPair() in a Worker entry is not supported on dohost: forward the upgrade to an object (return stub.fetch(request))');
  }
}

import './globals.js';
export { RpcTarget, WorkerEntrypoint } from './cloudflare-workers-base.js';
