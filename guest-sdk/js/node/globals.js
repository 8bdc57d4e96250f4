// The globals of a `nodejs_compat` project, as on Cloudflare: `process`,
// `Buffer`, `setImmediate`/`clearImmediate`. Loaded first by the bundles of
// `dohost build` when the wrangler config has the flag.

import { Buffer } from 'buffer';
import process from './process.js';
import { clearImmediate, setImmediate } from './timers.js';

for (const [name, value] of Object.entries({ process, Buffer, setImmediate, clearImmediate })) {
  if (globalThis[name] === undefined) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  }
}
