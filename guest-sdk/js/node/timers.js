// `node:timers`: the global timers (which fire as events of their own when an
// event leaves them pending: guest-sdk/js/timers.js), and setImmediate.

export const setTimeout = (...a) => globalThis.setTimeout(...a);
export const clearTimeout = (id) => globalThis.clearTimeout(id);
export const setInterval = (...a) => globalThis.setInterval(...a);
export const clearInterval = (id) => globalThis.clearInterval(id);
export const setImmediate = (fn, ...args) => globalThis.setTimeout(fn, 0, ...args);
export const clearImmediate = (id) => globalThis.clearTimeout(id);
export const promises = {
  setTimeout: (ms, value) => new Promise((resolve) => globalThis.setTimeout(resolve, ms, value)),
  setImmediate: (value) => new Promise((resolve) => globalThis.setTimeout(resolve, 0, value)),
};
export default { setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate, promises };
