// `cloudflare:workers` for projects written for Cloudflare: `dohost build`
// bundles their classes with this module in its place (esbuild alias; the
// entry gets cloudflare-workers-entry.js). What a name
// here lacks next to Cloudflare's is in README.md ("Cloudflare compatibility");
// a name not exported here fails the build, naming it.

export { DurableObject } from './runtime.js';
export { WebSocketPair } from './websocket.js';

import './globals.js';
export { RpcTarget, WorkerEntrypoint } from './cloudflare-workers-base.js';
