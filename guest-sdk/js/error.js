// Errors: `DohostError`, what a failing host import throws (a kind to match on
// and the host's message), `host()`, which calls an import and converts its
// error, and `errorMessage()` for what a handler reports. Imports nothing of the host.

/**
 * An error reported by the host: an `err(...)` of an import, or a misuse the
 * SDK refuses before the host would (a closed socket).
 *
 * `kind` is the WIT case of the error, with its WIT name:
 * - storage (`storage-error`: `sql`, `kv`, `alarms`, `storage`): 'refused',
 *   'invalid', 'quota', 'sql', 'unsupported';
 * - calls to other objects (`call-error`: `getNamespace`, stubs): 'overloaded',
 *   'timeout', 'cycle', 'unknown-class', 'not-found', 'invalid', 'failed',
 *   'unsupported', and 'thrown' when the called method threw: `name` and
 *   `message` are the callee's exception's;
 * - 'other' for errors without cases (WebSockets: a string to fix in the class).
 */
export class DohostError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'DohostError';
    this.kind = options?.kind ?? 'other';
  }
  /** True when the host version does not implement the called function. */
  get unsupported() {
    return this.kind === 'unsupported';
  }
  /** True when a called object is overloaded; retrying later may succeed. */
  get overloaded() {
    return this.kind === 'overloaded';
  }
}

// A ComponentError's payload (the import's `err` value, from the bindings' realm)
// → [kind, message]: a variant `{tag, val: message}` or a string.
function fromPayload(payload) {
  if (typeof payload === 'string') {
    return [payload.startsWith('unsupported:') ? 'unsupported' : 'other', payload];
  }
  if (payload !== null && typeof payload === 'object' && payload.tag === 'thrown' && payload.val) {
    return ['thrown', String(payload.val.message), String(payload.val.name)];
  }
  if (payload !== null && typeof payload === 'object' && typeof payload.tag === 'string') {
    return [payload.tag, typeof payload.val === 'string' ? payload.val : payload.tag];
  }
  return null;
}

/**
 * Calls an import; its `err(...)` (thrown by the bindings as a ComponentError
 * whose `payload` is the error value) becomes a DohostError.
 */
export function host(fn, ...args) {
  try {
    return fn(...args);
  } catch (e) {
    const error = e != null && typeof e === 'object' && 'payload' in e ? fromPayload(e.payload) : null;
    if (error === null) throw e;
    const thrown = new DohostError(error[1], { cause: e, kind: error[0] });
    // A called method's exception keeps its name (`RangeError`), as on Cloudflare.
    if (error[0] === 'thrown') thrown.name = error[2];
    throw thrown;
    throw e;
  }
}

/** What a handler reports of an exception: `Name: message` for Errors. */
export function errorMessage(e) {
  if (e instanceof Error) return e.stack ? `${e.name}: ${e.message}` : String(e);
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
