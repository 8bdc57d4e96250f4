// `node:async_hooks`: `AsyncLocalStorage` and `AsyncResource`, as far as an
// engine without async-context hooks allows. Events of an object never
// interleave, so the store of `run(store, fn)` is the current one from the
// call until the promise `fn` returns settles (nested runs stack). What differs
// from Node: two runs whose promises are pending at once inside one event see
// the store of the last one started, and a callback scheduled inside a run
// (setTimeout) runs later without it.

let current = new Map(); // AsyncLocalStorage → store

function settle(result, restore) {
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    return Promise.resolve(result).finally(restore);
  }
  restore();
  return result;
}

export class AsyncLocalStorage {
  getStore() {
    return current.get(this);
  }
  run(store, fn, ...args) {
    const saved = current;
    current = new Map(saved).set(this, store);
    let result;
    try {
      result = fn(...args);
    } catch (e) {
      current = saved;
      throw e;
    }
    return settle(result, () => {
      current = saved;
    });
  }
  exit(fn, ...args) {
    const saved = current;
    current = new Map(saved);
    current.delete(this);
    try {
      return fn(...args);
    } finally {
      current = saved;
    }
  }
  enterWith(store) {
    current = new Map(current).set(this, store);
  }
  disable() {
    current.delete(this);
  }
  static bind(fn) {
    return AsyncResource.bind(fn);
  }
  static snapshot() {
    const captured = current;
    return (fn, ...args) => withContext(captured, fn, args);
  }
}

function withContext(captured, fn, args) {
  const saved = current;
  current = captured;
  try {
    return fn(...args);
  } finally {
    current = saved;
  }
}

export class AsyncResource {
  #captured = current;
  constructor(type = 'AsyncResource') {
    this.type = type;
  }
  runInAsyncScope(fn, thisArg, ...args) {
    return withContext(this.#captured, fn.bind(thisArg), args);
  }
  bind(fn) {
    return (...args) => this.runInAsyncScope(fn, undefined, ...args);
  }
  static bind(fn, type) {
    return new AsyncResource(type).bind(fn);
  }
}

export default { AsyncLocalStorage, AsyncResource };
